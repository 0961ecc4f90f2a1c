//! One `Store` suite, run against every backend: SQLite file, SQLite memory and PostgreSQL.
//!
//! PostgreSQL: the server `flinkbroker_testkit::postgres` chooses (`FLINKBROKER_TEST_POSTGRES_URL`,
//! else 127.0.0.1:5432, else a throwaway server of its own); each test gets a database of its
//! own, dropped afterwards.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use crate::support::postgres as postgres_support;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};
use tempfile::TempDir;

use postgres_support::{PostgresDatabase, with_database};

use flinkbroker_model::audit::{AuditAction, AuditFilter, AuditPage, NewAuditEvent};
use flinkbroker_model::job::LogEnd;
use flinkbroker_model::job::{
    Job, JobId, JobKind, JobSpec, JobState, NewJob, PythonSpec, RuntimeMode, SavepointFormat,
    SavepointKind, SavepointRecord, SavepointState, SqlSpec, StatementState,
};
use flinkbroker_model::sql_script::StatementKind;
use flinkbroker_store::{
    CreateOutcome, JobFilter, LogAppend, LogBatch, SeaStore, StatementUpdate, Store, StoreError,
    pending_statements,
};

const T0: i64 = 1_767_225_600_000;

// ---------------------------------------------------------------------------------------------
// Backends

/// A store under test and what keeps its database alive.
struct TestStore {
    store: Arc<dyn Store>,
    /// Where a second connection finds the same database (not for memory).
    url: String,
    _dir: Option<TempDir>,
    _postgres: Option<PostgresDatabase>,
}

async fn sqlite_file() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    // A directory that does not exist yet: connect creates it.
    let path = dir
        .path()
        .join("nested")
        .join("data")
        .join("flinkbroker.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let store = SeaStore::connect(&url).await.expect("connect sqlite file");
    assert!(path.exists(), "the database file is created");
    TestStore {
        store: Arc::new(store),
        url,
        _dir: Some(dir),
        _postgres: None,
    }
}

async fn sqlite_memory() -> TestStore {
    let url = "sqlite::memory:".to_owned();
    let store = SeaStore::connect(&url)
        .await
        .expect("connect sqlite memory");
    TestStore {
        store: Arc::new(store),
        url,
        _dir: None,
        _postgres: None,
    }
}

async fn postgres() -> TestStore {
    let database = PostgresDatabase::create("fb_test").await;
    let store = SeaStore::connect(&database.url)
        .await
        .expect("connect the test database");
    TestStore {
        store: Arc::new(store),
        url: database.url.clone(),
        _dir: None,
        _postgres: Some(database),
    }
}

/// A raw connection to the database behind a test store.
async fn raw_connection(url: &str) -> DatabaseConnection {
    let mut options = ConnectOptions::new(url);
    options.max_connections(1).sqlx_logging(false);
    Database::connect(options).await.expect("raw connection")
}

// ---------------------------------------------------------------------------------------------
// Instantiation: every case of the suite against every backend

macro_rules! store_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite_file {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let test_store = super::sqlite_file().await;
                    super::$case(test_store.store.clone()).await;
                }
            )*
        }
        mod sqlite_memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let test_store = super::sqlite_memory().await;
                    super::$case(test_store.store.clone()).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let test_store = super::postgres().await;
                    super::$case(test_store.store.clone()).await;
                }
            )*
        }
    };
}

/// Cases that open a second connection to the same database: not for memory.
macro_rules! shared_database_suite {
    ($($case:ident),* $(,)?) => {
        mod sqlite_file_shared {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let test_store = super::sqlite_file().await;
                    super::$case(&test_store).await;
                }
            )*
        }
        mod postgres_shared {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    let test_store = super::postgres().await;
                    super::$case(&test_store).await;
                }
            )*
        }
    };
}

store_suite!(
    created_job_reads_back_with_statements_and_history,
    python_job_reads_back_with_its_spec,
    same_request_id_and_payload_returns_the_existing_job,
    same_request_id_with_another_payload_conflicts,
    jobs_without_request_id_are_never_deduplicated,
    request_ids_and_listing_are_scoped_per_tenant,
    tenant_usage_sums_live_python_parallelism_and_log_bytes,
    job_metrics_count_jobs_by_kind_and_state_leases_and_the_largest_open_log,
    audit_events_are_listed_newest_first_filtered_paged_and_expired,
    audited_submissions_are_recorded_with_their_job,
    recording_one_job_id_twice_is_an_error,
    concurrent_creates_with_one_request_id_record_one_job,
    transitions_append_history_and_end_terminal_jobs,
    same_state_transition_records_the_new_reason,
    terminal_jobs_refuse_to_move,
    racing_terminal_transitions_let_exactly_one_win,
    statement_updates_change_only_the_given_fields,
    list_filters_by_state_kind_and_labels,
    list_pages_through_every_job_once,
    list_pages_of_combined_filters_hold_every_match_once_newest_first,
    list_pages_stay_stable_while_jobs_are_added,
    list_page_size_zero_uses_the_default,
    malformed_page_tokens_are_rejected,
    unknown_ids_are_not_found,
    list_unfinished_returns_jobs_not_ended,
    gateway_session_is_recorded_and_cleared,
    statement_kinds_and_attempts_are_recorded,
    savepoints_are_recorded,
    revisions_share_a_lineage_and_replace_a_job_once,
    submitter_output_is_recorded,
    result_log_appends_reads_from_any_offset_and_ends,
    result_log_window_drops_the_oldest_batches,
    result_log_of_a_new_attempt_starts_again_and_refuses_stale_appends,
    result_logs_expire_after_their_jobs_ended,
    leases_are_claimed_by_one_owner_renewed_and_taken_over_once_expired,
    cancel_requests_are_recorded_once_for_the_owner,
);

shared_database_suite!(
    migrations_run_again_without_changes,
    the_newest_migrations_roll_back_and_apply_again,
    corrupt_rows_are_reported_not_panicked_on,
    ended_jobs_expire_oldest_first_in_batches_with_their_records_but_not_their_audit_events,
);

// ---------------------------------------------------------------------------------------------
// Builders

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn sql_job(request_id: Option<&str>, label_pairs: &[(&str, &str)], created_at: i64) -> NewJob {
    let statements = [
        "CREATE TABLE src (x INT) WITH ('connector' = 'datagen')",
        "INSERT INTO sink SELECT * FROM src",
        "SELECT 1",
    ]
    .map(str::to_owned);
    NewJob {
        id: JobId::new_random(),
        request_id: request_id.map(str::to_owned),
        tenant: "default".into(),
        principal: "anonymous".into(),
        labels: labels(label_pairs),
        spec: JobSpec::Sql(SqlSpec {
            script: statements.join(";\n"),
            runtime_mode: RuntimeMode::Streaming,
            properties: labels(&[("parallelism.default", "2")]),
            result_limits: Default::default(),
            restore: None,
        }),
        statements: pending_statements(&statements),
        flink_job_id: None,
        created_at,
        lease: None,
        audited_as: None,
        lineage: None,
    }
}

fn python_job(label_pairs: &[(&str, &str)], created_at: i64) -> NewJob {
    let id = JobId::new_random();
    NewJob {
        id,
        request_id: None,
        tenant: "default".into(),
        principal: "anonymous".into(),
        labels: labels(label_pairs),
        spec: JobSpec::Python(PythonSpec {
            script: None,
            script_url: Some("s3://bucket/jobs/wordcount.py".into()),
            entry_module: None,
            py_files: vec!["s3://bucket/lib.zip".into()],
            py_archives: vec![],
            py_requirements: Some("requirements.txt".into()),
            program_args: vec!["--input".into(), "/data/in".into()],
            parallelism: Some(4),
            flink_configuration: labels(&[("taskmanager.numberOfTaskSlots", "2")]),
            inline_py_files: Default::default(),
            restore: None,
        }),
        statements: vec![],
        flink_job_id: Some(id.flink_job_id_for_program()),
        created_at,
        lease: None,
        audited_as: None,
        lineage: None,
    }
}

async fn create(store: &Arc<dyn Store>, job: NewJob) -> Job {
    match store.create_job(job).await.expect("create job") {
        CreateOutcome::Created(job) => job,
        other => panic!("expected Created, got {other:?}"),
    }
}

/// Pages through ListJobs and returns the ids in the order they came, checking each page.
async fn all_pages(store: &Arc<dyn Store>, filter: &JobFilter, page_size: u32) -> Vec<JobId> {
    let mut ids = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..1000 {
        let page = store
            .list_jobs(filter, page_size, token.as_deref())
            .await
            .expect("list jobs");
        assert!(page.jobs.len() <= page_size as usize);
        ids.extend(page.jobs.iter().map(|job| job.id));
        match page.next_page_token {
            Some(next) => {
                assert_eq!(
                    page.jobs.len(),
                    page_size as usize,
                    "only the last page is short"
                );
                token = Some(next);
            }
            None => return ids,
        }
    }
    panic!("pagination does not end");
}

/// The order ListJobs promises: newest first, then by id.
fn newest_first(jobs: &[Job]) -> Vec<JobId> {
    let mut keyed: Vec<(i64, String, JobId)> = jobs
        .iter()
        .map(|job| (job.created_at, job.id.to_string(), job.id))
        .collect();
    keyed.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
    keyed.into_iter().map(|(_, _, id)| id).collect()
}

// ---------------------------------------------------------------------------------------------
// The suite

async fn created_job_reads_back_with_statements_and_history(store: Arc<dyn Store>) {
    let new_job = sql_job(
        Some("order-42:v1"),
        &[("team", "recs"), ("env", "prod")],
        T0,
    );
    let created = create(&store, new_job.clone()).await;

    assert_eq!(created.id, new_job.id);
    assert_eq!(created.kind, JobKind::Sql);
    assert_eq!(created.state, JobState::Pending);
    assert_eq!(created.request_id.as_deref(), Some("order-42:v1"));
    assert_eq!(created.labels, new_job.labels);
    assert_eq!(created.spec, new_job.spec);
    assert_eq!(created.created_at, T0);
    assert_eq!(created.updated_at, T0);
    assert_eq!(created.ended_at, None);
    assert_eq!(created.gateway_session, None);
    assert_eq!(created.statements, new_job.statements);
    assert_eq!(created.history.len(), 1);
    assert_eq!(created.history[0].state, JobState::Pending);
    assert_eq!(created.history[0].at, T0);
    assert_eq!(created.state_reason, created.history[0].reason);

    let read = store.get_job(new_job.id).await.expect("get job");
    assert_eq!(read, created, "what create returns is what get reads");
    let indexes: Vec<u32> = read.statements.iter().map(|s| s.index).collect();
    assert_eq!(indexes, vec![0, 1, 2]);
    assert!(
        read.statements
            .iter()
            .all(|s| s.state == StatementState::Pending)
    );
}

async fn python_job_reads_back_with_its_spec(store: Arc<dyn Store>) {
    let new_job = python_job(&[("team", "ml")], T0);
    let created = create(&store, new_job.clone()).await;
    let read = store.get_job(new_job.id).await.expect("get job");
    assert_eq!(read, created);
    assert_eq!(read.kind, JobKind::Python);
    assert_eq!(read.spec, new_job.spec);
    assert_eq!(read.flink_job_id, new_job.flink_job_id);
    assert!(read.statements.is_empty());
}

async fn same_request_id_and_payload_returns_the_existing_job(store: Arc<dyn Store>) {
    let first = sql_job(Some("req-1"), &[("team", "recs")], T0);
    let created = create(&store, first.clone()).await;

    let mut again = first.clone();
    again.id = JobId::new_random();
    again.created_at = T0 + 5_000;
    match store.create_job(again.clone()).await.expect("create again") {
        CreateOutcome::Existing(job) => assert_eq!(job, created),
        other => panic!("expected Existing, got {other:?}"),
    }
    assert!(matches!(
        store.get_job(again.id).await,
        Err(StoreError::JobNotFound(id)) if id == again.id
    ));
}

async fn same_request_id_with_another_payload_conflicts(store: Arc<dyn Store>) {
    let first = sql_job(Some("req-2"), &[("team", "recs")], T0);
    let created = create(&store, first.clone()).await;

    let mut other_spec = first.clone();
    other_spec.id = JobId::new_random();
    if let JobSpec::Sql(spec) = &mut other_spec.spec {
        spec.runtime_mode = RuntimeMode::Batch;
    }
    match store.create_job(other_spec).await.expect("create") {
        CreateOutcome::Conflict(job) => assert_eq!(job, created),
        other => panic!("expected Conflict for another spec, got {other:?}"),
    }

    let mut other_labels = first.clone();
    other_labels.id = JobId::new_random();
    other_labels.labels = labels(&[("team", "search")]);
    match store.create_job(other_labels).await.expect("create") {
        CreateOutcome::Conflict(job) => assert_eq!(job.id, first.id),
        other => panic!("expected Conflict for other labels, got {other:?}"),
    }

    let all = store
        .list_jobs(&JobFilter::default(), 10, None)
        .await
        .expect("list");
    assert_eq!(
        all.jobs.len(),
        1,
        "neither conflicting create recorded a job"
    );
}

async fn request_ids_and_listing_are_scoped_per_tenant(store: Arc<dyn Store>) {
    let mut ml = sql_job(Some("nightly"), &[], T0);
    ml.tenant = "ml".into();
    ml.principal = "ml-backend".into();
    let ml = create(&store, ml).await;
    assert_eq!(
        (ml.tenant.as_str(), ml.principal.as_str()),
        ("ml", "ml-backend")
    );
    // The same request id in another tenant is another job, even with another payload.
    let mut ads = sql_job(Some("nightly"), &[("team", "ads")], T0 + 1);
    ads.tenant = "ads".into();
    ads.principal = "ads-backend".into();
    let ads = create(&store, ads).await;
    assert_ne!(ads.id, ml.id);
    let read = store.get_job(ads.id).await.expect("get job");
    assert_eq!(
        (read.tenant.as_str(), read.principal.as_str()),
        ("ads", "ads-backend")
    );

    let tenant = |name: &str| JobFilter {
        tenant: Some(name.to_owned()),
        ..JobFilter::default()
    };
    let ids = |page: flinkbroker_store::JobPage| page.jobs.iter().map(|j| j.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store
            .list_jobs(&tenant("ml"), 10, None)
            .await
            .expect("list")),
        vec![ml.id]
    );
    assert_eq!(
        ids(store
            .list_jobs(&tenant("ads"), 10, None)
            .await
            .expect("list")),
        vec![ads.id]
    );
    assert!(
        store
            .list_jobs(&tenant("search"), 10, None)
            .await
            .expect("list")
            .jobs
            .is_empty()
    );
    assert_eq!(
        ids(store
            .list_jobs(&JobFilter::default(), 10, None)
            .await
            .expect("list")),
        vec![ads.id, ml.id]
    );
    // Live jobs are counted per tenant; an ended job no longer counts.
    let live = |usage: flinkbroker_store::TenantUsage| usage.live_jobs;
    assert_eq!(live(store.tenant_usage("ml").await.expect("count")), 1);
    assert_eq!(live(store.tenant_usage("search").await.expect("count")), 0);
    store
        .transition(ml.id, JobState::Failed, "test")
        .await
        .expect("transition");
    assert_eq!(live(store.tenant_usage("ml").await.expect("count")), 0);
    assert_eq!(live(store.tenant_usage("ads").await.expect("count")), 1);
    let found = store
        .job_for_request("ads", "nightly")
        .await
        .expect("look up")
        .map(|job| job.id);
    assert_eq!(found, Some(ads.id));
    assert!(
        store
            .job_for_request("search", "nightly")
            .await
            .expect("look up")
            .is_none()
    );
}

async fn tenant_usage_sums_live_python_parallelism_and_log_bytes(store: Arc<dyn Store>) {
    let in_tenant = |mut job: NewJob, tenant: &str| {
        job.tenant = tenant.to_owned();
        job
    };
    // Parallelism 4, and one that names none but overrides parallelism.default to 3.
    let four = create(&store, in_tenant(python_job(&[], T0), "ml")).await;
    let mut three = python_job(&[], T0 + 1);
    if let JobSpec::Python(program) = &mut three.spec {
        program.parallelism = None;
        program
            .flink_configuration
            .insert("parallelism.default".into(), "3".into());
    }
    create(&store, in_tenant(three, "ml")).await;
    let query = create(&store, in_tenant(sql_job(None, &[], T0 + 2), "ml")).await;
    store
        .open_log(query.id, 0, 0, b"[]".to_vec())
        .await
        .expect("open");
    store
        .append_log(
            query.id,
            0,
            append(0, vec![batch(0, 10, 100), batch(10, 5, 60)], Some(2), None),
        )
        .await
        .expect("append");
    create(&store, in_tenant(python_job(&[], T0 + 3), "ads")).await;

    let usage = store.tenant_usage("ml").await.expect("usage");
    assert_eq!(
        (
            usage.live_jobs,
            usage.python_parallelism,
            usage.result_log_bytes
        ),
        (3, 7, 160)
    );
    // An ended job's parallelism is free again; its log is held until it expires.
    store
        .transition(four.id, JobState::Failed, "test")
        .await
        .expect("transition");
    store
        .transition(query.id, JobState::Finished, "test")
        .await
        .expect("transition");
    let usage = store.tenant_usage("ml").await.expect("usage");
    assert_eq!(
        (
            usage.live_jobs,
            usage.python_parallelism,
            usage.result_log_bytes
        ),
        (1, 3, 160)
    );
    // Once the ended query's log expires, its bytes no longer count.
    store.expire_logs(i64::MAX, 10).await.expect("expire");
    assert_eq!(
        store
            .tenant_usage("ml")
            .await
            .expect("usage")
            .result_log_bytes,
        0
    );
    let ads = store.tenant_usage("ads").await.expect("usage");
    assert_eq!(
        (ads.live_jobs, ads.python_parallelism, ads.result_log_bytes),
        (1, 4, 0)
    );
    assert_eq!(
        store.tenant_usage("search").await.expect("usage"),
        flinkbroker_store::TenantUsage::default()
    );
}

async fn job_metrics_count_jobs_by_kind_and_state_leases_and_the_largest_open_log(
    store: Arc<dyn Store>,
) {
    let empty = store.job_metrics(T0).await.expect("metrics");
    assert_eq!(empty, flinkbroker_store::JobMetrics::default());

    let held = create(&store, sql_job(None, &[], T0)).await;
    let unheld = create(&store, python_job(&[], T0 + 1)).await;
    let ended = create(&store, sql_job(None, &[], T0 + 2)).await;
    assert!(
        store
            .claim(held.id, "a", 1_000, 2_000)
            .await
            .expect("claim")
    );
    // The open log of a live job counts; an ended job's log and an ended log do not.
    store
        .open_log(held.id, 0, 0, b"[]".to_vec())
        .await
        .expect("open");
    store
        .append_log(
            held.id,
            0,
            append(0, vec![batch(0, 10, 160)], Some(2), None),
        )
        .await
        .expect("append");
    store
        .open_log(held.id, 1, 0, b"[]".to_vec())
        .await
        .expect("open");
    store
        .append_log(
            held.id,
            1,
            append(0, vec![batch(0, 10, 400)], None, Some(LogEnd::EndOfResults)),
        )
        .await
        .expect("append");
    store
        .open_log(ended.id, 0, 0, b"[]".to_vec())
        .await
        .expect("open");
    store
        .append_log(
            ended.id,
            0,
            append(0, vec![batch(0, 10, 900)], Some(2), None),
        )
        .await
        .expect("append");
    store
        .transition(ended.id, JobState::Finished, "test")
        .await
        .expect("transition");
    // Said again with another reason, an ended job is still counted once.
    store
        .transition(ended.id, JobState::Finished, "test again")
        .await
        .expect("transition again");
    let ended_too = create(&store, sql_job(None, &[], T0 + 3)).await;
    for state in [JobState::Running, JobState::Finished] {
        store
            .transition(ended_too.id, state, "test")
            .await
            .expect("transition");
    }

    let metrics = store.job_metrics(1_500).await.expect("metrics");
    let mut groups: Vec<(JobKind, JobState, u64, bool)> = metrics
        .by_kind_and_state
        .iter()
        .map(|group| {
            (
                group.kind,
                group.state,
                group.jobs,
                group.oldest_change.is_some(),
            )
        })
        .collect();
    groups.sort_by_key(|(kind, state, _, _)| (kind.as_str(), state.as_str()));
    assert_eq!(
        groups,
        vec![
            (JobKind::Python, JobState::Pending, 1, true),
            // Only the live states' oldest change is read (for the stuck-job gauge).
            (JobKind::Sql, JobState::Finished, 2, false),
            (JobKind::Sql, JobState::Pending, 1, true),
        ]
    );
    assert_eq!(metrics.live_without_lease, 1, "{} has no lease", unheld.id);
    assert_eq!(metrics.largest_open_log_bytes, 160);
    // Once the lease expired, the held job counts too.
    let later = store.job_metrics(2_500).await.expect("metrics");
    assert_eq!(later.live_without_lease, 2);
    // Deleted at retention, the ended jobs are no longer counted.
    assert_eq!(store.expire_jobs(i64::MAX, 10).await.expect("expire"), 2);
    let kept = store.job_metrics(2_500).await.expect("metrics");
    assert!(
        kept.by_kind_and_state
            .iter()
            .all(|group| !group.state.is_terminal()),
        "{kept:?}"
    );
}

fn audit_event(at: i64, tenant: &str, principal: &str, action: AuditAction) -> NewAuditEvent {
    NewAuditEvent {
        at,
        principal: principal.to_owned(),
        tenant: tenant.to_owned(),
        action,
        method: "SubmitSql".to_owned(),
        job_id: Some(JobId::new_random().to_string()),
        request_id: Some(format!("request-{at}")),
        outcome: if action == AuditAction::Denied {
            "PERMISSION_DENIED".to_owned()
        } else {
            "OK".to_owned()
        },
        detail: String::new(),
    }
}

async fn audit_events_are_listed_newest_first_filtered_paged_and_expired(store: Arc<dyn Store>) {
    let events = [
        audit_event(T0, "ml", "ml-backend", AuditAction::Submit),
        audit_event(T0 + 10, "ads", "ads-backend", AuditAction::Submit),
        audit_event(T0 + 20, "ml", "ml-dashboard", AuditAction::ReadResults),
        audit_event(T0 + 30, "ml", "ml-backend", AuditAction::Cancel),
        audit_event(T0 + 40, "ml", "ml-dashboard", AuditAction::Denied),
    ];
    for event in &events {
        store.record_audit(event.clone()).await.expect("record");
    }
    let times = |page: &AuditPage| page.events.iter().map(|e| e.at - T0).collect::<Vec<_>>();
    let all = store
        .list_audit(&AuditFilter::default(), 0, None)
        .await
        .expect("list");
    assert_eq!(times(&all), vec![40, 30, 20, 10, 0]);
    assert!(all.next_page_token.is_none());
    let first = &all.events[4];
    assert_eq!(
        (
            first.tenant.as_str(),
            first.principal.as_str(),
            first.action,
            first.method.as_str(),
            first.request_id.as_deref(),
            first.outcome.as_str(),
        ),
        (
            "ml",
            "ml-backend",
            AuditAction::Submit,
            "SubmitSql",
            Some("request-1767225600000"),
            "OK"
        )
    );
    assert_eq!(first.job_id, events[0].job_id);

    // Pages of two go through every event once.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let page = store
            .list_audit(&AuditFilter::default(), 2, token.as_deref())
            .await
            .expect("page");
        assert!(page.events.len() <= 2);
        seen.extend(times(&page));
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec![40, 30, 20, 10, 0]);

    let filtered = |filter: AuditFilter| {
        let store = Arc::clone(&store);
        async move { times(&store.list_audit(&filter, 10, None).await.expect("list")) }
    };
    assert_eq!(
        filtered(AuditFilter {
            tenant: Some("ml".into()),
            ..AuditFilter::default()
        })
        .await,
        vec![40, 30, 20, 0]
    );
    assert_eq!(
        filtered(AuditFilter {
            principal: Some("ml-dashboard".into()),
            ..AuditFilter::default()
        })
        .await,
        vec![40, 20]
    );
    assert_eq!(
        filtered(AuditFilter {
            action: Some(AuditAction::Denied),
            ..AuditFilter::default()
        })
        .await,
        vec![40]
    );
    assert_eq!(
        filtered(AuditFilter {
            since: Some(T0 + 10),
            until: Some(T0 + 30),
            ..AuditFilter::default()
        })
        .await,
        vec![20, 10]
    );
    assert!(matches!(
        store
            .list_audit(&AuditFilter::default(), 10, Some("not a token"))
            .await,
        Err(StoreError::InvalidPageToken)
    ));

    // Expiry deletes the oldest first, at most the limit at a time.
    assert_eq!(store.expire_audit(T0 + 25, 2).await.expect("expire"), 2);
    assert_eq!(store.expire_audit(T0 + 25, 2).await.expect("expire"), 1);
    assert_eq!(store.expire_audit(T0 + 25, 2).await.expect("expire"), 0);
    assert_eq!(filtered(AuditFilter::default()).await, vec![40, 30]);
}

async fn audited_submissions_are_recorded_with_their_job(store: Arc<dyn Store>) {
    let mut job = sql_job(Some("nightly"), &[], T0);
    job.tenant = "ml".into();
    job.principal = "ml-backend".into();
    job.audited_as = Some("SubmitSql");
    let created = create(&store, job.clone()).await;
    // The same submission again is answered with the job, and audited again.
    let mut again = job.clone();
    again.id = JobId::new_random();
    assert!(matches!(
        store.create_job(again).await.expect("repeat"),
        CreateOutcome::Existing(_)
    ));
    // A conflicting one is audited by its caller, with the refusal.
    let mut conflicting = sql_job(Some("nightly"), &[("team", "x")], T0);
    conflicting.tenant = "ml".into();
    conflicting.audited_as = Some("SubmitSql");
    assert!(matches!(
        store.create_job(conflicting).await.expect("conflict"),
        CreateOutcome::Conflict(_)
    ));
    // Not audited: no event.
    create(&store, sql_job(None, &[], T0)).await;
    let events = store
        .list_audit(&AuditFilter::default(), 10, None)
        .await
        .expect("list")
        .events;
    let expected_job = created.id.to_string();
    assert_eq!(events.len(), 2, "{events:?}");
    for event in &events {
        assert_eq!(
            (
                event.action,
                event.method.as_str(),
                event.principal.as_str(),
                event.tenant.as_str(),
                event.job_id.as_deref(),
                event.request_id.as_deref(),
                event.outcome.as_str()
            ),
            (
                AuditAction::Submit,
                "SubmitSql",
                "ml-backend",
                "ml",
                Some(expected_job.as_str()),
                Some("nightly"),
                "OK"
            )
        );
    }
}

async fn jobs_without_request_id_are_never_deduplicated(store: Arc<dyn Store>) {
    let first = sql_job(None, &[], T0);
    let mut second = first.clone();
    second.id = JobId::new_random();
    create(&store, first).await;
    create(&store, second).await;
    let all = store
        .list_jobs(&JobFilter::default(), 10, None)
        .await
        .expect("list");
    assert_eq!(all.jobs.len(), 2);
}

async fn recording_one_job_id_twice_is_an_error(store: Arc<dyn Store>) {
    let job = sql_job(None, &[], T0);
    let created = create(&store, job.clone()).await;
    match store.create_job(job.clone()).await {
        Err(StoreError::Database(message)) => {
            assert!(message.contains("already recorded"), "{message}");
        }
        other => panic!("expected a database error, got {other:?}"),
    }

    let mut duplicate_statements = sql_job(None, &[], T0);
    duplicate_statements.statements[1].index = 0;
    assert!(matches!(
        store.create_job(duplicate_statements.clone()).await,
        Err(StoreError::Database(_))
    ));
    assert!(
        matches!(
            store.get_job(duplicate_statements.id).await,
            Err(StoreError::JobNotFound(_))
        ),
        "a failed create leaves nothing behind"
    );
    assert_eq!(store.get_job(job.id).await.expect("get"), created);
}

async fn concurrent_creates_with_one_request_id_record_one_job(store: Arc<dyn Store>) {
    let template = sql_job(Some("burst"), &[("team", "recs")], T0);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let store = store.clone();
        let mut job = template.clone();
        job.id = JobId::new_random();
        tasks.push(tokio::spawn(async move { store.create_job(job).await }));
    }
    let mut created = Vec::new();
    let mut existing = Vec::new();
    for task in tasks {
        match task.await.expect("task").expect("create") {
            CreateOutcome::Created(job) => created.push(job),
            CreateOutcome::Existing(job) => existing.push(job),
            CreateOutcome::Conflict(job) => panic!("same payload conflicts: {job:?}"),
            CreateOutcome::Replaced(job) => panic!("no job is replaced here: {job:?}"),
        }
    }
    assert_eq!(created.len(), 1, "exactly one create wins");
    assert_eq!(existing.len(), 11);
    assert!(existing.iter().all(|job| job.id == created[0].id));
    let all = store
        .list_jobs(&JobFilter::default(), 50, None)
        .await
        .expect("list");
    assert_eq!(all.jobs.len(), 1);
    assert_eq!(all.jobs[0].history.len(), 1);
}

async fn transitions_append_history_and_end_terminal_jobs(store: Arc<dyn Store>) {
    let job = create(&store, sql_job(None, &[], T0)).await;

    let submitting = store
        .transition(job.id, JobState::Submitting, "opening a session")
        .await
        .expect("to submitting");
    assert_eq!(submitting.state, JobState::Submitting);
    assert_eq!(submitting.state_reason, "opening a session");
    assert_eq!(submitting.ended_at, None);
    assert!(submitting.updated_at >= T0);

    let running = store
        .transition(job.id, JobState::Running, "all statements submitted")
        .await
        .expect("to running");
    assert_eq!(running.ended_at, None);

    let finished = store
        .transition(job.id, JobState::Finished, "done")
        .await
        .expect("to finished");
    assert_eq!(finished.state, JobState::Finished);
    let ended_at = finished
        .ended_at
        .expect("ended_at is set on a terminal state");
    assert_eq!(ended_at, finished.updated_at);
    assert!(finished.updated_at >= running.updated_at);

    let states: Vec<JobState> = finished.history.iter().map(|t| t.state).collect();
    assert_eq!(
        states,
        vec![
            JobState::Pending,
            JobState::Submitting,
            JobState::Running,
            JobState::Finished
        ]
    );
    let reasons: Vec<&str> = finished.history[1..]
        .iter()
        .map(|t| t.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        vec!["opening a session", "all statements submitted", "done"]
    );
    assert!(finished.history.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(store.get_job(job.id).await.expect("get"), finished);
}

async fn same_state_transition_records_the_new_reason(store: Arc<dyn Store>) {
    let job = create(&store, sql_job(None, &[], T0)).await;
    store
        .transition(job.id, JobState::Running, "statement 1 of 3 running")
        .await
        .expect("to running");
    let updated = store
        .transition(job.id, JobState::Running, "statement 2 of 3 running")
        .await
        .expect("same state");
    assert_eq!(updated.state, JobState::Running);
    assert_eq!(updated.state_reason, "statement 2 of 3 running");
    assert_eq!(
        updated.history.len(),
        3,
        "a new reason in the same state is history"
    );
    assert_eq!(updated.history[1].reason, "statement 1 of 3 running");
    assert_eq!(updated.history[2].reason, "statement 2 of 3 running");

    let repeated = store
        .transition(job.id, JobState::Running, "statement 2 of 3 running")
        .await
        .expect("same state, same reason");
    assert_eq!(repeated, updated, "an identical transition changes nothing");

    let failed = store
        .transition(job.id, JobState::Failed, "statement 2 failed")
        .await
        .expect("to failed");
    let refailed = store
        .transition(
            job.id,
            JobState::Failed,
            "statement 2 failed: table not found",
        )
        .await
        .expect("same terminal state");
    assert_eq!(refailed.state_reason, "statement 2 failed: table not found");
    assert_eq!(refailed.ended_at, failed.ended_at, "the end time stays");
    assert_eq!(refailed.history, failed.history);
}

async fn terminal_jobs_refuse_to_move(store: Arc<dyn Store>) {
    for terminal in [JobState::Finished, JobState::Failed, JobState::Canceled] {
        let job = create(&store, sql_job(None, &[], T0)).await;
        let ended = store
            .transition(job.id, terminal, "ended")
            .await
            .expect("to terminal");
        for target in [
            JobState::Pending,
            JobState::Submitting,
            JobState::Running,
            JobState::Finished,
            JobState::Failed,
            JobState::Canceled,
        ] {
            if target == terminal {
                continue;
            }
            match store.transition(job.id, target, "too late").await {
                Err(StoreError::TerminalState { job_id, from, to }) => {
                    assert_eq!((job_id, from, to), (job.id, terminal, target));
                }
                other => {
                    panic!("{terminal:?} -> {target:?}: expected TerminalState, got {other:?}")
                }
            }
        }
        assert_eq!(
            store.get_job(job.id).await.expect("get"),
            ended,
            "nothing changed"
        );
    }
}

async fn racing_terminal_transitions_let_exactly_one_win(store: Arc<dyn Store>) {
    for _ in 0..8 {
        let job = create(&store, sql_job(None, &[], T0)).await;
        store
            .transition(job.id, JobState::Running, "running")
            .await
            .expect("to running");
        let targets = [JobState::Canceled, JobState::Failed, JobState::Finished];
        let tasks: Vec<_> = targets
            .into_iter()
            .map(|target| {
                let store = store.clone();
                tokio::spawn(async move { store.transition(job.id, target, "race").await })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.expect("task") {
                Ok(job) => winners.push(job.state),
                Err(StoreError::TerminalState { .. }) => {}
                Err(other) => panic!("unexpected error: {other}"),
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "exactly one terminal transition wins: {winners:?}"
        );
        let read = store.get_job(job.id).await.expect("get");
        assert_eq!(read.state, winners[0]);
        let terminal_entries = read
            .history
            .iter()
            .filter(|t| t.state.is_terminal())
            .count();
        assert_eq!(terminal_entries, 1);
    }
}

async fn statement_updates_change_only_the_given_fields(store: Arc<dyn Store>) {
    let job = create(&store, sql_job(None, &[], T0)).await;
    let flink_job_id = job.id.flink_job_id_for_statement(1);

    store
        .update_statement(
            job.id,
            1,
            StatementUpdate {
                state: Some(StatementState::Running),
                operation_handle: Some("op-1".into()),
                ..StatementUpdate::default()
            },
        )
        .await
        .expect("update 1");
    store
        .update_statement(
            job.id,
            1,
            StatementUpdate {
                flink_job_id: Some(flink_job_id.clone()),
                is_query: Some(false),
                ..StatementUpdate::default()
            },
        )
        .await
        .expect("update 2");
    store
        .update_statement(
            job.id,
            2,
            StatementUpdate {
                state: Some(StatementState::Failed),
                error: Some("table sink not found".into()),
                is_query: Some(true),
                ..StatementUpdate::default()
            },
        )
        .await
        .expect("update 3");
    store
        .update_statement(job.id, 0, StatementUpdate::default())
        .await
        .expect("an empty update of an existing statement");

    let read = store.get_job(job.id).await.expect("get");
    assert_eq!(
        read.statements[0], job.statements[0],
        "statement 0 untouched"
    );
    let second = &read.statements[1];
    assert_eq!(second.state, StatementState::Running);
    assert_eq!(second.operation_handle.as_deref(), Some("op-1"));
    assert_eq!(second.flink_job_id.as_deref(), Some(flink_job_id.as_str()));
    assert_eq!(second.error, None);
    assert!(!second.is_query);
    assert_eq!(second.sql, job.statements[1].sql);
    let third = &read.statements[2];
    assert_eq!(third.state, StatementState::Failed);
    assert_eq!(third.error.as_deref(), Some("table sink not found"));
    assert_eq!(third.operation_handle, None);
    assert!(third.is_query);

    for (id, index) in [(job.id, 3), (JobId::new_random(), 0)] {
        let update = StatementUpdate {
            state: Some(StatementState::Finished),
            ..StatementUpdate::default()
        };
        assert!(matches!(
            store.update_statement(id, index, update).await,
            Err(StoreError::JobNotFound(missing)) if missing == id
        ));
    }
}

async fn list_filters_by_state_kind_and_labels(store: Arc<dyn Store>) {
    let recs_prod = create(
        &store,
        sql_job(None, &[("team", "recs"), ("env", "prod")], T0),
    )
    .await;
    let recs_dev = create(
        &store,
        sql_job(None, &[("team", "recs"), ("env", "dev")], T0 + 1),
    )
    .await;
    let search = create(&store, sql_job(None, &[("team", "search")], T0 + 2)).await;
    let python = create(&store, python_job(&[("team", "recs")], T0 + 3)).await;
    let odd = create(
        &store,
        sql_job(
            None,
            &[
                ("example.com/owner", "o'brien \"quoted\" %_"),
                ("team", "recs"),
            ],
            T0 + 4,
        ),
    )
    .await;
    store
        .transition(recs_dev.id, JobState::Running, "running")
        .await
        .expect("running");
    store
        .transition(search.id, JobState::Failed, "failed")
        .await
        .expect("failed");

    let ids = |filter: JobFilter| {
        let store = store.clone();
        async move {
            let page = store.list_jobs(&filter, 100, None).await.expect("list");
            assert_eq!(page.next_page_token, None);
            page.jobs.iter().map(|job| job.id).collect::<Vec<_>>()
        }
    };

    assert_eq!(
        ids(JobFilter::default()).await,
        vec![odd.id, python.id, search.id, recs_dev.id, recs_prod.id]
    );
    assert_eq!(
        ids(JobFilter {
            states: vec![JobState::Running],
            ..JobFilter::default()
        })
        .await,
        vec![recs_dev.id]
    );
    assert_eq!(
        ids(JobFilter {
            states: vec![JobState::Running, JobState::Failed],
            ..JobFilter::default()
        })
        .await,
        vec![search.id, recs_dev.id]
    );
    assert_eq!(
        ids(JobFilter {
            kind: Some(JobKind::Python),
            ..JobFilter::default()
        })
        .await,
        vec![python.id]
    );
    assert_eq!(
        ids(JobFilter {
            labels: labels(&[("team", "recs")]),
            ..JobFilter::default()
        })
        .await,
        vec![odd.id, python.id, recs_dev.id, recs_prod.id]
    );
    assert_eq!(
        ids(JobFilter {
            labels: labels(&[("team", "recs"), ("env", "prod")]),
            ..JobFilter::default()
        })
        .await,
        vec![recs_prod.id]
    );
    assert_eq!(
        ids(JobFilter {
            labels: labels(&[("example.com/owner", "o'brien \"quoted\" %_")]),
            ..JobFilter::default()
        })
        .await,
        vec![odd.id]
    );
    assert_eq!(
        ids(JobFilter {
            labels: labels(&[("team", "rec")]),
            ..JobFilter::default()
        })
        .await,
        Vec::<JobId>::new(),
        "label values match exactly"
    );
    assert_eq!(
        ids(JobFilter {
            states: vec![JobState::Pending],
            kind: Some(JobKind::Sql),
            labels: labels(&[("team", "recs")]),
            tenant: None,
            lineage: None,
        })
        .await,
        vec![odd.id, recs_prod.id]
    );
}

async fn list_pages_through_every_job_once(store: Arc<dyn Store>) {
    // Groups of three jobs share a creation time, so pages split ties and rely on the id.
    let mut jobs = Vec::new();
    for n in 0..23_i64 {
        let label = if n % 2 == 0 { "even" } else { "odd" };
        jobs.push(create(&store, sql_job(None, &[("parity", label)], T0 + n / 3)).await);
    }

    let expected = newest_first(&jobs);
    for page_size in [1, 5, 6, 23, 50] {
        let ids = all_pages(&store, &JobFilter::default(), page_size).await;
        assert_eq!(ids, expected, "page size {page_size}");
    }

    let even: Vec<Job> = jobs
        .iter()
        .filter(|job| job.labels["parity"] == "even")
        .cloned()
        .collect();
    let filter = JobFilter {
        labels: labels(&[("parity", "even")]),
        ..JobFilter::default()
    };
    let ids = all_pages(&store, &filter, 4).await;
    assert_eq!(ids, newest_first(&even));
    let distinct: HashSet<JobId> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), ids.len(), "no job twice");
}

async fn list_pages_of_combined_filters_hold_every_match_once_newest_first(store: Arc<dyn Store>) {
    // Two tenants, two labels each, four states; pairs of jobs share a creation time.
    let states = [
        JobState::Pending,
        JobState::Running,
        JobState::Failed,
        JobState::Finished,
    ];
    let mut jobs = Vec::new();
    for n in 0..40_i64 {
        let team = ["recs", "search", "ads"][(n % 3) as usize];
        let env = if n % 5 < 2 { "prod" } else { "dev" };
        let mut new_job = sql_job(None, &[("team", team), ("env", env)], T0 + n / 2);
        new_job.tenant = if n % 4 == 0 { "ml" } else { "default" }.into();
        let job = create(&store, new_job).await;
        let state = states[(n * 7 % 4) as usize];
        if state != JobState::Pending {
            store
                .transition(job.id, JobState::Running, "running")
                .await
                .expect("running");
        }
        if state.is_terminal() {
            store.transition(job.id, state, "ended").await.expect("end");
        }
        jobs.push(store.get_job(job.id).await.expect("get"));
    }
    let filters = [
        JobFilter {
            states: vec![JobState::Running, JobState::Failed],
            ..JobFilter::default()
        },
        JobFilter {
            states: vec![JobState::Failed, JobState::Finished, JobState::Pending],
            tenant: Some("default".into()),
            ..JobFilter::default()
        },
        JobFilter {
            tenant: Some("ml".into()),
            labels: labels(&[("team", "recs")]),
            ..JobFilter::default()
        },
        JobFilter {
            states: vec![JobState::Finished, JobState::Running],
            labels: labels(&[("env", "prod"), ("team", "search")]),
            ..JobFilter::default()
        },
        JobFilter {
            states: vec![JobState::Pending, JobState::Failed],
            tenant: Some("default".into()),
            kind: Some(JobKind::Sql),
            labels: labels(&[("team", "ads")]),
            lineage: None,
        },
    ];
    for filter in filters {
        let expected: Vec<Job> = jobs
            .iter()
            .filter(|job| filter.states.is_empty() || filter.states.contains(&job.state))
            .filter(|job| {
                filter
                    .tenant
                    .as_ref()
                    .is_none_or(|tenant| &job.tenant == tenant)
            })
            .filter(|job| filter.kind.is_none_or(|kind| job.kind == kind))
            .filter(|job| {
                filter
                    .labels
                    .iter()
                    .all(|(key, value)| job.labels.get(key) == Some(value))
            })
            .cloned()
            .collect();
        assert!(!expected.is_empty(), "{filter:?} matches a job");
        for page_size in [1, 3, 50] {
            assert_eq!(
                all_pages(&store, &filter, page_size).await,
                newest_first(&expected),
                "{filter:?}, pages of {page_size}"
            );
        }
    }
}

async fn list_pages_stay_stable_while_jobs_are_added(store: Arc<dyn Store>) {
    let mut jobs = Vec::new();
    for n in 0..10_i64 {
        jobs.push(create(&store, sql_job(None, &[], T0 + n)).await);
    }
    let first = store
        .list_jobs(&JobFilter::default(), 4, None)
        .await
        .expect("first page");
    // A newer job arrives between pages: it belongs before the first page, not in the rest.
    create(&store, sql_job(None, &[], T0 + 100)).await;
    let mut seen: Vec<JobId> = first.jobs.iter().map(|job| job.id).collect();
    let mut token = first.next_page_token;
    while let Some(current) = token {
        let page = store
            .list_jobs(&JobFilter::default(), 4, Some(&current))
            .await
            .expect("next page");
        seen.extend(page.jobs.iter().map(|job| job.id));
        token = page.next_page_token;
    }
    assert_eq!(seen, newest_first(&jobs));
}

async fn list_page_size_zero_uses_the_default(store: Arc<dyn Store>) {
    for n in 0..3_i64 {
        create(&store, sql_job(None, &[], T0 + n)).await;
    }
    let page = store
        .list_jobs(&JobFilter::default(), 0, None)
        .await
        .expect("list");
    assert_eq!(page.jobs.len(), 3);
    assert_eq!(page.next_page_token, None);
}

async fn malformed_page_tokens_are_rejected(store: Arc<dyn Store>) {
    create(&store, sql_job(None, &[], T0)).await;
    let encode = |text: &str| URL_SAFE_NO_PAD.encode(text);
    let tokens = [
        String::new(),
        "not base64 at all!".to_owned(),
        encode("no separator"),
        encode("12:not-a-uuid"),
        encode(&format!("yesterday:{}", JobId::new_random())),
        encode(&format!(":{}", JobId::new_random())),
        URL_SAFE_NO_PAD.encode([0xff, 0xfe, b':', b'1']),
    ];
    for token in tokens {
        assert!(
            matches!(
                store
                    .list_jobs(&JobFilter::default(), 10, Some(&token))
                    .await,
                Err(StoreError::InvalidPageToken)
            ),
            "token {token:?} is rejected"
        );
    }
}

async fn unknown_ids_are_not_found(store: Arc<dyn Store>) {
    create(&store, sql_job(None, &[], T0)).await;
    let unknown = JobId::new_random();
    let is_not_found = |result: Result<(), StoreError>| matches!(result, Err(StoreError::JobNotFound(id)) if id == unknown);
    assert!(is_not_found(store.get_job(unknown).await.map(|_| ())));
    assert!(is_not_found(
        store
            .transition(unknown, JobState::Running, "x")
            .await
            .map(|_| ())
    ));
    assert!(is_not_found(
        store.set_gateway_session(unknown, Some("s")).await
    ));
    assert!(is_not_found(
        store.set_submitter_output(unknown, "out").await
    ));
    assert!(is_not_found(
        store
            .update_statement(unknown, 0, StatementUpdate::default())
            .await
    ));
}

async fn list_unfinished_returns_jobs_not_ended(store: Arc<dyn Store>) {
    let pending = create(&store, sql_job(None, &[], T0)).await;
    let running = create(&store, sql_job(None, &[], T0 + 1)).await;
    let finished = create(&store, sql_job(None, &[], T0 + 2)).await;
    let canceled = create(&store, python_job(&[], T0 + 3)).await;
    let submitting = create(&store, python_job(&[], T0 + 4)).await;
    store
        .transition(running.id, JobState::Running, "running")
        .await
        .expect("running");
    store
        .transition(finished.id, JobState::Finished, "done")
        .await
        .expect("finished");
    store
        .transition(canceled.id, JobState::Canceled, "canceled")
        .await
        .expect("canceled");
    store
        .transition(submitting.id, JobState::Submitting, "submitting")
        .await
        .expect("submitting");

    let unfinished = store.list_unfinished().await.expect("list unfinished");
    let ids: BTreeSet<JobId> = unfinished.iter().map(|job| job.id).collect();
    assert_eq!(ids, BTreeSet::from([pending.id, running.id, submitting.id]));
    for job in &unfinished {
        assert_eq!(
            *job,
            store.get_job(job.id).await.expect("get"),
            "jobs come complete"
        );
    }
    assert_eq!(
        unfinished
            .iter()
            .find(|job| job.id == pending.id)
            .map(|job| job.statements.len()),
        Some(3)
    );
}

async fn gateway_session_is_recorded_and_cleared(store: Arc<dyn Store>) {
    let job = create(&store, sql_job(None, &[], T0)).await;
    store
        .set_gateway_session(job.id, Some("a1b2c3d4-session"))
        .await
        .expect("set session");
    let read = store.get_job(job.id).await.expect("get");
    assert_eq!(read.gateway_session.as_deref(), Some("a1b2c3d4-session"));
    assert!(read.updated_at >= T0);
    assert_eq!(read.history, job.history, "no history entry");

    store
        .set_gateway_session(job.id, None)
        .await
        .expect("clear session");
    assert_eq!(
        store.get_job(job.id).await.expect("get").gateway_session,
        None
    );
}

async fn statement_kinds_and_attempts_are_recorded(store: Arc<dyn Store>) {
    let job = create(&store, sql_job(None, &[], T0)).await;
    let kinds: Vec<StatementKind> = job.statements.iter().map(|s| s.kind).collect();
    assert_eq!(
        kinds,
        [
            StatementKind::Ddl,
            StatementKind::Insert,
            StatementKind::Query
        ]
    );
    assert_eq!(
        store.get_job(job.id).await.expect("get").statements,
        job.statements,
        "kinds read back as classified at submission"
    );
    assert!(job.statements.iter().all(|s| s.attempt == 0));
    store
        .update_statement(
            job.id,
            2,
            StatementUpdate {
                attempt: Some(3),
                flink_job_id: Some(job.id.flink_job_id_for_statement_attempt(2, 3)),
                ..StatementUpdate::default()
            },
        )
        .await
        .expect("attempt");
    let read = store.get_job(job.id).await.expect("get");
    assert_eq!(read.statements[2].attempt, 3);
    assert_eq!(read.statements[2].kind, StatementKind::Query);
    assert_ne!(
        read.statements[2].flink_job_id.as_deref(),
        Some(job.id.flink_job_id_for_statement(2).as_str()),
        "a new attempt runs under a new flink job id"
    );
}

async fn savepoints_are_recorded(store: Arc<dyn Store>) {
    let job = create(&store, python_job(&[], T0)).await;
    assert_eq!(job.savepoint_path, None);
    assert!(job.savepoints.is_empty());
    let flink_job_id = job.id.flink_job_id_for_program();
    let mut savepoint = SavepointRecord {
        trigger_id: "0123456789abcdef0123456789abcdef".into(),
        flink_job_id: flink_job_id.clone(),
        statement_index: None,
        kind: SavepointKind::Triggered,
        format: SavepointFormat::Native,
        directory: Some("file:///savepoints".into()),
        state: SavepointState::InProgress,
        location: None,
        error: None,
        created_at: T0,
        ended_at: None,
    };
    store
        .set_savepoints(job.id, std::slice::from_ref(&savepoint))
        .await
        .expect("record the savepoint in progress");
    let read = store.get_job(job.id).await.expect("get");
    assert_eq!(read.savepoints, vec![savepoint.clone()]);
    assert_eq!(read.savepoint_path, None, "none completed yet");

    savepoint.state = SavepointState::Completed;
    savepoint.location = Some("file:/savepoints/savepoint-4f2a1c-0123456789ab".into());
    savepoint.ended_at = Some(T0 + 1_000);
    let failed = SavepointRecord {
        trigger_id: "fedcba9876543210fedcba9876543210".into(),
        kind: SavepointKind::Stop,
        format: SavepointFormat::Canonical,
        directory: None,
        state: SavepointState::Failed,
        location: None,
        error: Some("Not all required tasks are currently running.".into()),
        statement_index: Some(2),
        ..savepoint.clone()
    };
    store
        .set_savepoints(job.id, &[savepoint.clone(), failed.clone()])
        .await
        .expect("record the outcomes");
    let read = store.get_job(job.id).await.expect("get");
    assert_eq!(read.savepoints, vec![savepoint, failed]);
    assert_eq!(
        read.savepoint_path.as_deref(),
        Some("file:/savepoints/savepoint-4f2a1c-0123456789ab"),
        "the latest completed savepoint is the job's savepoint path"
    );
    assert!(matches!(
        store.set_savepoints(JobId::new_random(), &[]).await,
        Err(StoreError::JobNotFound(_))
    ));
}

async fn submitter_output_is_recorded(store: Arc<dyn Store>) {
    let job = create(&store, python_job(&[], T0)).await;
    store
        .set_submitter_output(job.id, "Job has been submitted with JobID 1234\n")
        .await
        .expect("set output");
    let tail = "line\n".repeat(2_000);
    store
        .set_submitter_output(job.id, &tail)
        .await
        .expect("replace output");
    let read = store.get_job(job.id).await.expect("get");
    assert_eq!(read.submitter_output.as_deref(), Some(tail.as_str()));
    assert_eq!(read.state, JobState::Pending);
}

// ---------------------------------------------------------------------------------------------
// Cases that look at the database directly

async fn migrations_run_again_without_changes(test_store: &TestStore) {
    let job = create(&test_store.store, sql_job(Some("kept"), &[], T0)).await;

    // A second store on the same database while the first is open, then a third after both.
    // (PostgreSQL: the second one spells the scheme the other accepted way.)
    let second_url = test_store.url.replacen("postgres://", "postgresql://", 1);
    let second = SeaStore::connect(&second_url).await.expect("connect again");
    assert_eq!(second.get_job(job.id).await.expect("get"), job);
    second.ping().await.expect("ping");
    drop(second);
    let third = SeaStore::connect(&test_store.url)
        .await
        .expect("connect a third time");
    assert_eq!(third.get_job(job.id).await.expect("get"), job);

    let raw = raw_connection(&test_store.url).await;
    let row = raw
        .query_one_raw(sea_orm::Statement::from_string(
            raw.get_database_backend(),
            "SELECT COUNT(*) AS applied FROM seaql_migrations",
        ))
        .await
        .expect("count migrations")
        .expect("a row");
    let applied: i64 = row.try_get("", "applied").expect("count");
    use sea_orm_migration::MigratorTrait;
    let migrations =
        i64::try_from(flinkbroker_store::migration::Migrator::migrations().len()).expect("count");
    assert_eq!(applied, migrations, "each migration is recorded once");
}

/// The schema changes of the job store at scale (labels table, indexes, replicas, the metrics
/// indexes) undo cleanly, and a store connecting afterwards applies them again over the same
/// jobs.
async fn the_newest_migrations_roll_back_and_apply_again(test_store: &TestStore) {
    use flinkbroker_store::migration::Migrator;
    use sea_orm_migration::MigratorTrait;
    let job = create(
        &test_store.store,
        sql_job(Some("kept"), &[("team", "a")], T0),
    )
    .await;
    let failed = create(&test_store.store, python_job(&[], T0 + 1)).await;
    test_store
        .store
        .transition(failed.id, JobState::Failed, "test")
        .await
        .expect("fail");
    let failed = test_store.store.get_job(failed.id).await.expect("get");
    let metrics = test_store.store.job_metrics(T0).await.expect("metrics");
    let raw = raw_connection(&test_store.url).await;
    let newest = Migrator::migrations()
        .iter()
        .rev()
        .take_while(|migration| migration.name() >= "m20261207_000001_jobs_at_scale")
        .count();
    assert!(newest >= 3, "the store-at-scale migrations are the newest");
    Migrator::down(&raw, Some(u32::try_from(newest).expect("count")))
        .await
        .expect("roll the newest migrations back");
    let pending = Migrator::get_pending_migrations(&raw)
        .await
        .expect("pending migrations");
    assert_eq!(
        pending.len(),
        newest,
        "every rolled-back migration is pending"
    );
    drop(raw);

    let again = SeaStore::connect(&test_store.url)
        .await
        .expect("connect and migrate again");
    assert_eq!(again.get_job(job.id).await.expect("get"), job);
    let by_label = again
        .list_jobs(
            &JobFilter {
                labels: labels(&[("team", "a")]),
                ..JobFilter::default()
            },
            10,
            None,
        )
        .await
        .expect("list by label");
    assert_eq!(
        by_label
            .jobs
            .iter()
            .map(|listed| listed.id)
            .collect::<Vec<_>>(),
        vec![job.id],
        "the labels table is filled again from the jobs"
    );
    assert_eq!(again.get_job(failed.id).await.expect("get"), failed);
    assert_eq!(
        again.job_metrics(T0).await.expect("metrics"),
        metrics,
        "the ended jobs are counted again from the jobs"
    );
}

async fn corrupt_rows_are_reported_not_panicked_on(test_store: &TestStore) {
    let store = &test_store.store;
    let bad_state = create(store, sql_job(None, &[], T0)).await;
    let bad_spec = create(store, sql_job(None, &[], T0 + 1)).await;
    let bad_index = create(store, sql_job(None, &[], T0 + 2)).await;
    let raw = raw_connection(&test_store.url).await;
    for sql in [
        format!(
            "UPDATE jobs SET state = 'EXPLODED' WHERE id = '{}'",
            bad_state.id
        ),
        format!(
            "UPDATE jobs SET spec_json = '{{\"kind\":' WHERE id = '{}'",
            bad_spec.id
        ),
        format!(
            "UPDATE job_statements SET idx = -1 WHERE job_id = '{}' AND idx = 0",
            bad_index.id
        ),
    ] {
        raw.execute_unprepared(&sql).await.expect("corrupt a row");
    }

    for id in [bad_state.id, bad_spec.id, bad_index.id] {
        match store.get_job(id).await {
            Err(StoreError::Corrupt { job_id, detail }) => {
                assert_eq!(job_id, id.to_string());
                assert!(!detail.is_empty());
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }
    assert!(matches!(
        store.list_jobs(&JobFilter::default(), 10, None).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.transition(bad_state.id, JobState::Running, "x").await,
        Err(StoreError::Corrupt { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// Connecting

#[tokio::test]
async fn unsupported_database_urls_are_refused() {
    match SeaStore::connect("mysql://root@127.0.0.1/flinkbroker").await {
        Err(StoreError::Database(message)) => {
            assert!(message.contains("mysql"), "{message}");
            assert_eq!(message, message.to_lowercase());
        }
        other => panic!("expected a database error, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_postgres_urls_are_refused_without_echoing_them() {
    match SeaStore::connect("postgres://user:s3cret@[bad-host/test").await {
        Err(StoreError::Database(message)) => {
            assert!(
                message.starts_with("invalid postgres database url"),
                "{message}"
            );
            assert!(!message.contains("s3cret"), "{message}");
        }
        other => panic!("expected a database error, got {other:?}"),
    }
}

#[tokio::test]
async fn postgres_stores_result_batches_uncompressed() {
    use sea_orm::{ConnectionTrait, Statement};
    let store = postgres().await;
    let raw = raw_connection(&store.url).await;
    let row = raw
        .query_one_raw(Statement::from_string(
            raw.get_database_backend(),
            "SELECT attstorage::text AS storage FROM pg_attribute WHERE attrelid = 'result_batches'::regclass AND attname = 'data'",
        ))
        .await
        .expect("pg_attribute")
        .expect("result_batches.data");
    let storage: String = row.try_get("", "storage").expect("storage");
    assert_eq!(
        storage, "e",
        "STORAGE EXTERNAL: kept uncompressed, out of line"
    );
}

#[tokio::test]
async fn unreachable_postgres_is_a_lowercase_database_error() {
    // Port 1 on loopback: nothing listens there.
    match SeaStore::connect("postgres://postgres@127.0.0.1:1/test").await {
        Err(StoreError::Database(message)) => {
            assert!(
                message.starts_with("cannot connect to the database"),
                "{message}"
            );
            assert_eq!(message, message.to_lowercase());
        }
        other => panic!("expected a database error, got {other:?}"),
    }
}

#[test]
fn postgres_urls_get_the_test_database_name() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/test", "fb_test_1"),
        "postgres://postgres@127.0.0.1:5432/fb_test_1"
    );
    assert_eq!(
        with_database("postgres://u:p@db:5432/test?sslmode=disable", "x"),
        "postgres://u:p@db:5432/x?sslmode=disable"
    );
    assert_eq!(with_database("postgres://db", "x"), "postgres://db/x");
}

// ---------------------------------------------------------------------------------------------
// The result log and leases

fn batch(first_row: u64, rows: u64, bytes: usize) -> LogBatch {
    LogBatch {
        first_row,
        rows,
        data: vec![u8::try_from(first_row % 251).unwrap_or(0); bytes],
    }
}

fn append(
    attempt: u32,
    batches: Vec<LogBatch>,
    next: Option<u64>,
    end: Option<LogEnd>,
) -> LogAppend {
    LogAppend {
        attempt,
        batches,
        next_token: next,
        end,
        window_bytes: None,
    }
}

async fn result_log_appends_reads_from_any_offset_and_ends(store: Arc<dyn Store>) {
    let job = create(&store, sql_job(None, &[], T0)).await;
    assert!(
        store
            .read_log(job.id, 2, 0, 10, 1 << 20)
            .await
            .expect("read")
            .is_none()
    );
    let head = store
        .open_log(job.id, 2, 0, b"[]".to_vec())
        .await
        .expect("open");
    assert_eq!(
        (head.rows_logged, head.next_token, head.end),
        (0, Some(0), None)
    );
    let head = store
        .append_log(
            job.id,
            2,
            append(0, vec![batch(0, 10, 100), batch(10, 5, 50)], Some(1), None),
        )
        .await
        .expect("append");
    assert_eq!(
        (head.rows_logged, head.bytes_held, head.next_token),
        (15, 150, Some(1))
    );
    // Opening the same attempt again returns the log as it is.
    let again = store
        .open_log(job.id, 2, 0, b"[]".to_vec())
        .await
        .expect("reopen");
    assert_eq!(again.rows_logged, 15);
    // A token without rows is recorded too.
    store
        .append_log(job.id, 2, append(0, Vec::new(), Some(2), None))
        .await
        .expect("empty page");
    let head = store
        .append_log(
            job.id,
            2,
            append(0, vec![batch(15, 7, 70)], None, Some(LogEnd::EndOfResults)),
        )
        .await
        .expect("last append");
    assert_eq!(
        (head.rows_logged, head.end, head.next_token),
        (22, Some(LogEnd::EndOfResults), None)
    );
    // From any offset: the batches that end after it, in order.
    let read = store
        .read_log(job.id, 2, 12, 10, 1 << 20)
        .await
        .expect("read")
        .expect("log");
    let firsts: Vec<u64> = read.batches.iter().map(|b| b.first_row).collect();
    assert_eq!(firsts, vec![10, 15]);
    assert_eq!(read.schema, b"[]".to_vec());
    let read = store
        .read_log(job.id, 2, 0, 1, 1 << 20)
        .await
        .expect("read")
        .expect("log");
    assert_eq!(read.batches.len(), 1, "at most max_batches");
    let read = store
        .read_log(job.id, 2, 0, 10, 1)
        .await
        .expect("read")
        .expect("log");
    assert_eq!(
        read.batches.len(),
        1,
        "at least one batch, then stops at max_bytes"
    );
    let read = store
        .read_log(job.id, 2, 22, 10, 1 << 20)
        .await
        .expect("read")
        .expect("log");
    assert!(read.batches.is_empty());
    assert_eq!(read.batches.len(), 0);
    // A batch that does not start at the end of the log is refused.
    let gap = store
        .append_log(job.id, 2, append(0, vec![batch(30, 1, 1)], Some(3), None))
        .await;
    assert!(matches!(gap, Err(StoreError::Corrupt { .. })), "{gap:?}");
    // GetJob shows the head with the statement.
    let read_back = store.get_job(job.id).await.expect("job");
    let log = read_back.statements[2].log.clone().expect("log summary");
    assert_eq!(
        (log.rows_logged, log.bytes_logged, log.end),
        (22, 220, Some(LogEnd::EndOfResults))
    );
    assert!(read_back.statements[0].log.is_none());
}

async fn result_log_window_drops_the_oldest_batches(store: Arc<dyn Store>) {
    let job = create(&store, sql_job(None, &[], T0)).await;
    store
        .open_log(job.id, 2, 0, Vec::new())
        .await
        .expect("open");
    let mut next = 0;
    for i in 0..10u64 {
        let mut write = append(0, vec![batch(i * 10, 10, 100)], Some(i + 1), None);
        write.window_bytes = Some(350);
        let head = store.append_log(job.id, 2, write).await.expect("append");
        next = head.rows_logged;
        assert!(head.bytes_held <= 350, "{head:?}");
    }
    let read = store
        .read_log(job.id, 2, 0, 100, 1 << 20)
        .await
        .expect("read")
        .expect("log");
    assert_eq!(read.head.rows_logged, next);
    assert_eq!(
        read.head.earliest_row, 70,
        "three newest batches of 100 bytes held"
    );
    assert_eq!(read.head.bytes_held, 300);
    assert_eq!(read.head.bytes_logged, 1000);
    let firsts: Vec<u64> = read.batches.iter().map(|b| b.first_row).collect();
    assert_eq!(firsts, vec![70, 80, 90]);
    // The newest batch stays even when alone it exceeds the window.
    let mut big = append(0, vec![batch(100, 10, 1000)], Some(11), None);
    big.window_bytes = Some(350);
    let head = store.append_log(job.id, 2, big).await.expect("append");
    assert_eq!((head.earliest_row, head.bytes_held), (100, 1000));
}

async fn result_log_of_a_new_attempt_starts_again_and_refuses_stale_appends(store: Arc<dyn Store>) {
    let job = create(&store, sql_job(None, &[], T0)).await;
    let before = flinkbroker_model::job::now_millis();
    let opened = store
        .open_log(job.id, 2, 0, Vec::new())
        .await
        .expect("open")
        .opened_at
        .expect("opened_at recorded");
    assert!(opened >= before && opened <= flinkbroker_model::job::now_millis());
    store
        .append_log(job.id, 2, append(0, vec![batch(0, 10, 10)], Some(1), None))
        .await
        .expect("append");
    // Opening the same attempt again (a resumed drain) keeps when it was first opened.
    let resumed = store
        .open_log(job.id, 2, 0, Vec::new())
        .await
        .expect("reopen");
    assert_eq!((resumed.opened_at, resumed.rows_logged), (Some(opened), 10));
    let head = store
        .open_log(job.id, 2, 1, b"x".to_vec())
        .await
        .expect("new attempt");
    assert_eq!((head.attempt, head.rows_logged, head.bytes_held), (1, 0, 0));
    assert!(head.opened_at.is_some_and(|at| at >= opened));
    let read = store
        .read_log(job.id, 2, 0, 10, 1 << 20)
        .await
        .expect("read")
        .expect("log");
    assert!(
        read.batches.is_empty(),
        "the earlier attempt's rows are gone"
    );
    let stale = store
        .append_log(job.id, 2, append(0, vec![batch(10, 1, 1)], Some(2), None))
        .await;
    assert!(
        matches!(
            stale,
            Err(StoreError::StaleLog {
                held: 1,
                appended: 0,
                ..
            })
        ),
        "{stale:?}"
    );
    // A stale append whose rows would follow on: still refused, and none of its rows is kept.
    let stale = store
        .append_log(job.id, 2, append(0, vec![batch(0, 3, 30)], Some(2), None))
        .await;
    assert!(
        matches!(stale, Err(StoreError::StaleLog { .. })),
        "{stale:?}"
    );
    let read = store
        .read_log(job.id, 2, 0, 10, 1 << 20)
        .await
        .expect("read")
        .expect("log");
    assert!(read.batches.is_empty(), "{:?}", read.batches);
    assert_eq!((read.head.attempt, read.head.rows_logged), (1, 0));
}

async fn result_logs_expire_after_their_jobs_ended(store: Arc<dyn Store>) {
    let ended = create(&store, sql_job(None, &[], T0)).await;
    let running = create(&store, sql_job(None, &[], T0)).await;
    for job in [&ended, &running] {
        store
            .open_log(job.id, 2, 0, Vec::new())
            .await
            .expect("open");
        store
            .append_log(
                job.id,
                2,
                append(0, vec![batch(0, 4, 40)], None, Some(LogEnd::EndOfResults)),
            )
            .await
            .expect("append");
    }
    store
        .transition(ended.id, JobState::Failed, "boom")
        .await
        .expect("end");
    let ended_at = store
        .get_job(ended.id)
        .await
        .expect("job")
        .ended_at
        .expect("ended");
    assert_eq!(
        store.expire_logs(ended_at, 10).await.expect("expire"),
        0,
        "not yet"
    );
    assert_eq!(
        store.expire_logs(ended_at + 1, 10).await.expect("expire"),
        1
    );
    assert_eq!(
        store.expire_logs(ended_at + 1, 10).await.expect("expire"),
        0,
        "once"
    );
    let read = store
        .read_log(ended.id, 2, 0, 10, 1 << 20)
        .await
        .expect("read")
        .expect("log");
    assert!(read.batches.is_empty());
    assert!(read.head.deleted_at.is_some());
    assert_eq!(
        (
            read.head.rows_logged,
            read.head.bytes_held,
            read.head.earliest_row
        ),
        (4, 0, 4)
    );
    let kept = store
        .read_log(running.id, 2, 0, 10, 1 << 20)
        .await
        .expect("read")
        .expect("log");
    assert_eq!(kept.batches.len(), 1);
}

async fn leases_are_claimed_by_one_owner_renewed_and_taken_over_once_expired(
    store: Arc<dyn Store>,
) {
    let job = create(&store, sql_job(None, &[], T0)).await;
    let other = create(&store, sql_job(None, &[], T0 + 1)).await;
    assert!(store.claim(job.id, "a", 1_000, 2_000).await.expect("claim"));
    assert!(
        store
            .claim(job.id, "a", 1_500, 2_500)
            .await
            .expect("own again")
    );
    assert!(
        !store
            .claim(job.id, "b", 1_600, 2_600)
            .await
            .expect("held by a")
    );
    let claimable = store.claimable(1_600, 10).await.expect("claimable");
    assert_eq!(claimable, vec![other.id], "only the job nobody holds");
    assert_eq!(store.renew("a", 5_000).await.expect("renew"), vec![job.id]);
    assert!(
        !store
            .claim(job.id, "b", 4_999, 6_000)
            .await
            .expect("renewed")
    );
    // Expired: another owner takes it, once.
    let (first, second) = tokio::join!(
        store.claim(job.id, "b", 5_001, 9_000),
        store.claim(job.id, "c", 5_001, 9_000)
    );
    assert_eq!(
        u8::from(first.expect("b")) + u8::from(second.expect("c")),
        1,
        "exactly one replica takes an expired lease"
    );
    assert!(store.renew("a", 10_000).await.expect("renew").is_empty());
    let owner = store
        .get_job(job.id)
        .await
        .expect("job")
        .owner
        .expect("owner");
    assert!(owner == "b" || owner == "c");
    store.release(&owner).await.expect("release");
    assert!(
        store
            .claim(job.id, "a", 5_002, 9_000)
            .await
            .expect("released")
    );
    // Ended jobs are never claimed.
    store
        .transition(other.id, JobState::Failed, "boom")
        .await
        .expect("end");
    assert!(!store.claim(other.id, "a", 0, 1).await.expect("ended"));
    assert!(store.claimable(0, 10).await.expect("claimable").is_empty());
}

async fn cancel_requests_are_recorded_once_for_the_owner(store: Arc<dyn Store>) {
    let job = create(&store, sql_job(None, &[], T0)).await;
    assert!(store.claim(job.id, "a", 0, i64::MAX).await.expect("claim"));
    assert!(
        store
            .cancel_requests("a")
            .await
            .expect("requests")
            .is_empty()
    );
    store
        .request_cancel(job.id, "{\"first\":true}")
        .await
        .expect("request");
    store
        .request_cancel(job.id, "{\"second\":true}")
        .await
        .expect("again");
    assert_eq!(
        store.cancel_requests("a").await.expect("requests"),
        vec![(job.id, "{\"first\":true}".to_owned())]
    );
    assert!(
        store
            .cancel_requests("b")
            .await
            .expect("requests")
            .is_empty()
    );
    assert_eq!(
        store
            .get_job(job.id)
            .await
            .expect("job")
            .cancel_request
            .as_deref(),
        Some("{\"first\":true}")
    );
    store
        .transition(job.id, JobState::Canceling, "cancel requested")
        .await
        .expect("canceling");
    assert!(
        store
            .cancel_requests("a")
            .await
            .expect("requests")
            .is_empty(),
        "acted on"
    );
    let missing = store.request_cancel(JobId::new_random(), "{}").await;
    assert!(matches!(missing, Err(StoreError::JobNotFound(_))));
}

async fn revisions_share_a_lineage_and_replace_a_job_once(store: Arc<dyn Store>) {
    use flinkbroker_model::job::{ClaimMode, Lineage, Restore, Upgrade, UpgradeKind, UpgradeStep};
    let first = create(&store, sql_job(None, &[], T0)).await;
    assert_eq!(
        first.lineage,
        Lineage::first(first.id),
        "revision 1 of its own"
    );
    let upgrade = Upgrade {
        kind: UpgradeKind::Upgrade,
        previous_job_id: first.id,
        step: UpgradeStep::StoppingPrevious,
        savepoint_directory: Some("file:///savepoints".into()),
        savepoint_format: SavepointFormat::Canonical,
        allow_non_restored_state: true,
        claim_mode: ClaimMode::NoClaim,
        savepoint_path: None,
        rollback_job_id: None,
        note: None,
    };
    let revision = |created_at, upgrade: Upgrade| {
        let mut job = sql_job(None, &[], created_at);
        job.lineage = Some(Lineage {
            lineage_id: first.id,
            revision: 2,
            savepoint_chain: Vec::new(),
            upgrade: Some(upgrade),
        });
        job
    };
    let second = create(&store, revision(T0 + 1, upgrade.clone())).await;
    assert_eq!(second.lineage.revision, 2);
    assert_eq!(
        store.get_job(second.id).await.expect("get").lineage,
        second.lineage
    );
    // A second revision replacing the same job is refused, naming the one recorded.
    match store
        .create_job(revision(T0 + 2, upgrade.clone()))
        .await
        .expect("create")
    {
        CreateOutcome::Replaced(existing) => assert_eq!(existing.id, second.id),
        other => panic!("expected Replaced, got {other:?}"),
    }
    assert_eq!(
        store
            .successor_of(first.id)
            .await
            .expect("successor")
            .map(|j| j.id),
        Some(second.id)
    );
    assert_eq!(
        store.successor_of(second.id).await.expect("successor"),
        None
    );
    assert_eq!(
        store
            .upgrades_in_progress()
            .await
            .expect("in progress")
            .iter()
            .map(|j| j.id)
            .collect::<Vec<_>>(),
        vec![second.id]
    );

    // The savepoint is known: the step and the restore written into the spec.
    let mut lineage = second.lineage.clone();
    let path = "file:/savepoints/savepoint-4f2a1c-0123456789ab".to_owned();
    lineage.savepoint_chain.push(path.clone());
    if let Some(upgrade) = lineage.upgrade.as_mut() {
        upgrade.step = UpgradeStep::Starting;
        upgrade.savepoint_path = Some(path.clone());
    }
    let restore = Restore {
        savepoint_path: path.clone(),
        allow_non_restored_state: true,
        claim_mode: ClaimMode::NoClaim,
    };
    store
        .set_lineage(second.id, &lineage, Some(&restore))
        .await
        .expect("record the step");
    let read = store.get_job(second.id).await.expect("get");
    assert_eq!(read.lineage, lineage);
    assert_eq!(read.spec.restore(), Some(&restore));

    // ListJobs by lineage: both revisions, newest first; an unknown lineage lists none.
    let by_lineage = |lineage| JobFilter {
        lineage: Some(lineage),
        ..JobFilter::default()
    };
    let listed = store
        .list_jobs(&by_lineage(first.id), 10, None)
        .await
        .expect("list");
    assert_eq!(
        listed.jobs.iter().map(|j| j.id).collect::<Vec<_>>(),
        vec![second.id, first.id]
    );
    assert!(
        store
            .list_jobs(&by_lineage(JobId::new_random()), 10, None)
            .await
            .expect("list")
            .jobs
            .is_empty()
    );

    // An abandoned upgrade replaced nothing: the job can be replaced again.
    if let Some(upgrade) = lineage.upgrade.as_mut() {
        upgrade.step = UpgradeStep::Abandoned;
        upgrade.note = Some("the previous revision runs on".into());
    }
    store
        .set_lineage(second.id, &lineage, None)
        .await
        .expect("abandon");
    assert_eq!(store.successor_of(first.id).await.expect("successor"), None);
    assert!(
        store
            .upgrades_in_progress()
            .await
            .expect("in progress")
            .is_empty()
    );
    let third = create(&store, revision(T0 + 3, upgrade)).await;
    assert_eq!(
        store
            .successor_of(first.id)
            .await
            .expect("successor")
            .map(|j| j.id),
        Some(third.id)
    );
}

// ---------------------------------------------------------------------------------------------
// Retention of ended jobs

/// Rows of `table` recorded under a job, read with a connection of its own.
async fn rows_of(raw: &DatabaseConnection, table: &str, job: JobId) -> i64 {
    let row = raw
        .query_one_raw(sea_orm::Statement::from_string(
            raw.get_database_backend(),
            format!("SELECT COUNT(*) AS n FROM {table} WHERE job_id = '{job}'"),
        ))
        .await
        .expect("count rows")
        .expect("a row");
    row.try_get("", "n").expect("count")
}

/// Returns once the clock reads later than `millis` (a millisecond at most, unless the clock
/// stands still).
async fn clock_past(millis: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while flinkbroker_model::job::now_millis() <= millis {
        assert!(
            std::time::Instant::now() < deadline,
            "the clock does not move"
        );
        tokio::task::yield_now().await;
    }
}

/// A revision of `previous`'s lineage replacing it, its upgrade at `step`.
fn revision_of(previous: &Job, step: flinkbroker_model::job::UpgradeStep) -> NewJob {
    use flinkbroker_model::job::{ClaimMode, Lineage, Upgrade, UpgradeKind};
    let mut job = sql_job(None, &[], previous.created_at + 1);
    job.lineage = Some(Lineage {
        lineage_id: previous.lineage.lineage_id,
        revision: previous.lineage.revision + 1,
        savepoint_chain: Vec::new(),
        upgrade: Some(Upgrade {
            kind: UpgradeKind::Upgrade,
            previous_job_id: previous.id,
            step,
            savepoint_directory: None,
            savepoint_format: SavepointFormat::Canonical,
            allow_non_restored_state: false,
            claim_mode: ClaimMode::NoClaim,
            savepoint_path: None,
            rollback_job_id: None,
            note: None,
        }),
    });
    job
}

async fn ended_jobs_expire_oldest_first_in_batches_with_their_records_but_not_their_audit_events(
    test_store: &TestStore,
) {
    use flinkbroker_model::job::UpgradeStep;
    let store = &test_store.store;
    let raw = raw_connection(&test_store.url).await;
    let end = |id: JobId, state: JobState| {
        let store = store.clone();
        async move {
            store
                .transition(id, JobState::Running, "running")
                .await
                .expect("running");
            store
                .transition(id, state, "ended")
                .await
                .expect("end")
                .ended_at
                .expect("ended at")
        }
    };

    // Five jobs that end before the cut, each with statements, history, a label, a result
    // log with rows and an audit event.
    let mut expired = Vec::new();
    let mut last_end = 0;
    for n in 0..5_i64 {
        let mut new_job = sql_job(Some(&format!("old-{n}")), &[("team", "recs")], T0 + n);
        new_job.audited_as = Some("SubmitSql");
        let job = create(store, new_job).await;
        store
            .open_log(job.id, 2, 0, Vec::new())
            .await
            .expect("open");
        store
            .append_log(
                job.id,
                2,
                append(0, vec![batch(0, 4, 40)], None, Some(LogEnd::EndOfResults)),
            )
            .await
            .expect("append");
        let state = [JobState::Finished, JobState::Failed, JobState::Canceled][n as usize % 3];
        // Each ends in a millisecond of its own, so that "oldest first" is one order.
        clock_past(last_end).await;
        last_end = last_end.max(end(job.id, state).await);
        expired.push(job.id);
    }
    // Revisions that end before the cut too, but that a revision still needs: one replaced by
    // a live revision (done upgrading), one replaced by an ended revision whose upgrade has a
    // step left (which stays too).
    let replaced = create(store, sql_job(None, &[], T0 + 10)).await;
    let successor = create(store, revision_of(&replaced, UpgradeStep::Done)).await;
    last_end = last_end.max(end(replaced.id, JobState::Canceled).await);
    store
        .transition(successor.id, JobState::Running, "running")
        .await
        .expect("running");
    let stopped = create(store, sql_job(None, &[], T0 + 20)).await;
    let stuck = create(store, revision_of(&stopped, UpgradeStep::StoppingPrevious)).await;
    last_end = last_end.max(end(stopped.id, JobState::Canceled).await);
    last_end = last_end.max(end(stuck.id, JobState::Failed).await);

    // The cut: every job above ended before it; the next ones end at it or later.
    let cut = last_end + 1;
    clock_past(last_end).await;
    let recent = create(store, sql_job(None, &[("team", "recs")], T0 + 30)).await;
    let recent_end = end(recent.id, JobState::Finished).await;
    assert!(recent_end >= cut);
    let live = create(store, sql_job(None, &[("team", "recs")], T0 + 40)).await;
    store
        .transition(live.id, JobState::Running, "running")
        .await
        .expect("running");

    let present = |ids: Vec<JobId>| {
        let store = store.clone();
        async move {
            let mut present = 0;
            for id in ids {
                match store.get_job(id).await {
                    Ok(_) => present += 1,
                    Err(StoreError::JobNotFound(missing)) => assert_eq!(missing, id),
                    Err(other) => panic!("get job {id}: {other:?}"),
                }
            }
            present
        }
    };
    // At most the limit per call, oldest first, until none is left.
    assert_eq!(store.expire_jobs(cut, 2).await.expect("expire"), 2);
    assert_eq!(present(expired.clone()).await, 3);
    assert_eq!(
        present(expired[..2].to_vec()).await,
        0,
        "the oldest go first"
    );
    assert_eq!(store.expire_jobs(cut, 2).await.expect("expire"), 2);
    assert_eq!(store.expire_jobs(cut, 2).await.expect("expire"), 1);
    assert_eq!(store.expire_jobs(cut, 2).await.expect("expire"), 0);
    assert_eq!(present(expired.clone()).await, 0);

    for id in &expired {
        for table in [
            "job_statements",
            "job_state_transitions",
            "job_labels",
            "result_logs",
            "result_batches",
        ] {
            assert_eq!(rows_of(&raw, table, *id).await, 0, "{table} of {id}");
        }
        assert_eq!(
            rows_of(&raw, "audit_events", *id).await,
            1,
            "the audit event stays"
        );
        assert!(
            store
                .read_log(*id, 2, 0, 10, 1 << 20)
                .await
                .expect("read")
                .is_none()
        );
    }
    let events = store
        .list_audit(&AuditFilter::default(), 100, None)
        .await
        .expect("list audit")
        .events;
    assert_eq!(events.len(), expired.len(), "{events:?}");
    let label_page = store
        .list_jobs(
            &JobFilter {
                labels: labels(&[("team", "recs")]),
                ..JobFilter::default()
            },
            100,
            None,
        )
        .await
        .expect("list by label");
    assert_eq!(
        label_page.jobs.iter().map(|job| job.id).collect::<Vec<_>>(),
        vec![live.id, recent.id]
    );
    assert_eq!(
        present(vec![
            replaced.id,
            successor.id,
            stopped.id,
            stuck.id,
            recent.id,
            live.id
        ])
        .await,
        6,
        "newer, live and needed jobs stay"
    );

    // Once the live revision ended, the revision it replaced goes with it; a revision whose
    // upgrade has a step left stays, and so does the revision it replaces.
    let successor_end = end(successor.id, JobState::Finished).await;
    let later = successor_end.max(recent_end) + 1;
    assert_eq!(store.expire_jobs(later, 100).await.expect("expire"), 3);
    assert_eq!(present(vec![replaced.id, successor.id, recent.id]).await, 0);
    assert_eq!(present(vec![stopped.id, stuck.id, live.id]).await, 3);
    // Given up, the upgrade replaced nothing: both revisions go.
    let mut lineage = store.get_job(stuck.id).await.expect("stuck").lineage;
    if let Some(upgrade) = lineage.upgrade.as_mut() {
        upgrade.step = UpgradeStep::Abandoned;
    }
    store
        .set_lineage(stuck.id, &lineage, None)
        .await
        .expect("abandon");
    assert_eq!(store.expire_jobs(later, 100).await.expect("expire"), 2);
    assert_eq!(present(vec![stopped.id, stuck.id]).await, 0);
    assert_eq!(present(vec![live.id]).await, 1, "the live job stays");
}
