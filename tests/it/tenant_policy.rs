//! Each tenant's guardrails and quotas, from the flags and the tenant policy file, through the
//! public gRPC API.

use crate::support::broker;
use crate::support::callers;

use std::path::PathBuf;
use std::time::Duration;

use broker::{eventually, sql, wait_for_job};
use callers::{CallersBroker, Client, retry_delay};
use flinkbroker_proto::{
    CancelJobRequest, Job, JobState, ListJobsRequest, RuntimeMode, SubmitPythonRequest,
    SubmitSqlRequest, submit_python_request,
};
use tonic::{Code, Status};

fn python(parallelism: i32) -> SubmitPythonRequest {
    SubmitPythonRequest {
        program: Some(submit_python_request::Program::Script("print(1)".into())),
        parallelism,
        ..SubmitPythonRequest::default()
    }
}

fn from_url(url: &str) -> SubmitPythonRequest {
    SubmitPythonRequest {
        program: Some(submit_python_request::Program::ScriptUrl(url.into())),
        ..SubmitPythonRequest::default()
    }
}

fn set(key: &str) -> SubmitSqlRequest {
    sql(
        &format!("SET '{key}' = 'x';\nSELECT 1;"),
        RuntimeMode::Batch,
    )
}

fn with_property(key: &str) -> SubmitSqlRequest {
    let mut request = sql("SELECT 1", RuntimeMode::Batch);
    request.properties.insert(key.into(), "x".into());
    request
}

/// Checks that a call was refused with `code` and a message containing `naming`.
fn assert_refused<T: std::fmt::Debug>(
    result: Result<T, Status>,
    code: Code,
    naming: &str,
) -> Status {
    let refused = result.expect_err("refused");
    assert!(
        refused.code() == code && refused.message().contains(naming),
        "expected {code:?} naming {naming:?}, got {:?}: {}",
        refused.code(),
        refused.message()
    );
    refused
}

async fn jobs_of(admin: &mut Client, tenant: &str) -> Vec<Job> {
    admin
        .list_jobs(ListJobsRequest {
            tenant: tenant.into(),
            ..ListJobsRequest::default()
        })
        .await
        .expect("list")
        .into_inner()
        .jobs
}

/// Writes the tenant policy file and returns its path as a flag value.
fn write_policy(dir: &tempfile::TempDir, policy: serde_json::Value) -> PathBuf {
    let path = dir.path().join("tenants.json");
    std::fs::write(&path, policy.to_string()).expect("policy file");
    path
}

#[tokio::test]
async fn guardrails_follow_each_tenants_policy_and_its_changes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let policy = write_policy(
        &dir,
        serde_json::json!({"tenants": {"ml": {
            "forbidden_config_prefixes": ["state.backend"],
            "script_url_prefixes": ["https://ml.example/jobs/"],
            "max_parallelism": 2
        }}}),
    );
    let policy_flag = policy.display().to_string();
    let auth = CallersBroker::start(&[
        "--tenant-policy-file",
        &policy_flag,
        "--script-url-prefixes",
        "https://shared.example/",
        "--max-parallelism",
        "8",
    ])
    .await;
    let mut ml = auth.as_token("ml-submit-token").await;
    let mut ads = auth.as_token("ads-token").await;
    let mut admin = auth.as_token("admin-token").await;

    // ml: its own forbidden prefixes (which replace the defaults), $internal always.
    let own = "forbidden_config_prefixes in --tenant-policy-file";
    assert_refused(
        ml.submit_sql(set("state.backend.type")).await,
        Code::PermissionDenied,
        own,
    );
    assert_refused(
        ml.submit_sql(with_property("state.backend.incremental"))
            .await,
        Code::PermissionDenied,
        own,
    );
    let mut minus_d = python(1);
    minus_d
        .flink_configuration
        .insert("state.backend.type".into(), "x".into());
    assert_refused(ml.submit_python(minus_d).await, Code::PermissionDenied, own);
    assert_refused(
        ml.submit_sql(with_property("$internal.pipeline.job-id"))
            .await,
        Code::PermissionDenied,
        "$internal keys are set by the broker",
    );
    // ml: its script URL prefixes and its maximum parallelism.
    assert_refused(
        ml.submit_python(from_url("https://shared.example/job.py"))
            .await,
        Code::InvalidArgument,
        "https://ml.example/jobs/",
    );
    assert_refused(
        ml.submit_python(python(3)).await,
        Code::InvalidArgument,
        "maximum of 2 (max_parallelism in --tenant-policy-file)",
    );
    assert!(
        jobs_of(&mut admin, "ml").await.is_empty(),
        "nothing refused was recorded"
    );
    assert_eq!(
        auth.broker.standin.open_session_count(),
        0,
        "nothing reached the gateway"
    );

    // ads: the flags' guardrails.
    assert_refused(
        ads.submit_sql(with_property("env.java.opts.all")).await,
        Code::PermissionDenied,
        "(--forbidden-config-prefixes)",
    );
    assert_refused(
        ads.submit_python(from_url("https://ml.example/jobs/job.py"))
            .await,
        Code::InvalidArgument,
        "https://shared.example/",
    );
    ads.submit_sql(set("state.backend.type"))
        .await
        .expect("ads may set state.backend");
    ads.submit_python(python(3))
        .await
        .expect("ads may ask for 3");
    ads.submit_python(from_url("https://shared.example/job.py"))
        .await
        .expect("ads may use the shared prefix");
    assert_eq!(jobs_of(&mut admin, "ads").await.len(), 3);

    // A changed policy file takes effect without a restart.
    write_policy(
        &dir,
        serde_json::json!({"tenants": {"ml": {"forbidden_config_prefixes": []}}}),
    );
    eventually(
        "the changed policy to take effect",
        Duration::from_secs(20),
        || {
            let mut ml = ml.clone();
            async move { ml.submit_sql(set("state.backend.type")).await.ok() }
        },
    )
    .await;
    assert_eq!(jobs_of(&mut admin, "ml").await.len(), 1);
    auth.stop().await;
}

/// A Flink distribution whose `bin/flink` runs until it is killed: a submitter, and so its
/// Python job, stays live.
fn flink_that_waits(dir: &tempfile::TempDir) -> String {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.path().join("flink").join("bin");
    std::fs::create_dir_all(&bin).expect("bin");
    let launcher = bin.join("flink");
    std::fs::write(&launcher, "#!/bin/sh\nexec sleep 600\n").expect("launcher");
    std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    dir.path().join("flink").display().to_string()
}

#[tokio::test]
async fn live_python_parallelism_and_result_log_bytes_are_held_to_their_quotas() {
    let dir = tempfile::tempdir().expect("temp dir");
    let flink_home = flink_that_waits(&dir);
    let policy = write_policy(
        &dir,
        serde_json::json!({"tenants": {"ads": {"max_result_log_bytes": 1}}}),
    );
    let policy_flag = policy.display().to_string();
    let auth = CallersBroker::start(&[
        "--flink-home",
        &flink_home,
        "--tenant-max-python-parallelism",
        "4",
        "--tenant-policy-file",
        &policy_flag,
    ])
    .await;
    let mut ml = auth.as_token("ml-submit-token").await;
    let mut ads = auth.as_token("ads-token").await;

    let three = ml
        .submit_python(python(3))
        .await
        .expect("3 of 4")
        .into_inner();
    let refused = assert_refused(
        ml.submit_python(python(2)).await,
        Code::ResourceExhausted,
        "parallelism 3 in all; 2 more exceeds its quota of 4 (--tenant-max-python-parallelism)",
    );
    assert!(retry_delay(&refused).is_some(), "waiting helps");
    let alone = assert_refused(
        ml.submit_python(python(5)).await,
        Code::ResourceExhausted,
        "the job alone exceeds it",
    );
    assert!(retry_delay(&alone).is_none(), "waiting does not help");
    ml.submit_python(python(1)).await.expect("4 of 4");
    ads.submit_python(python(4))
        .await
        .expect("another tenant has its own quota");

    ml.cancel_job(CancelJobRequest {
        job_id: three.id.clone(),
        ..CancelJobRequest::default()
    })
    .await
    .expect("cancel");
    wait_for_job(&ml, &three.id, "ended", |job| {
        matches!(job.state(), JobState::Canceled | JobState::Failed)
    })
    .await;
    ml.submit_python(python(2))
        .await
        .expect("accepted once parallelism is free");

    // ads may hold 1 byte of result logs: one query's rows take it past its quota.
    let query = ads
        .submit_sql(sql("SELECT 1", RuntimeMode::Batch))
        .await
        .expect("first query")
        .into_inner();
    wait_for_job(&ads, &query.id, "finished", |job| {
        job.state() == JobState::Finished
    })
    .await;
    let refused = assert_refused(
        ads.submit_sql(sql("SELECT 2", RuntimeMode::Batch)).await,
        Code::ResourceExhausted,
        "its quota is 1 bytes (max_result_log_bytes in --tenant-policy-file)",
    );
    assert!(
        retry_delay(&refused).is_some(),
        "logs expire: waiting helps"
    );
    ml.submit_sql(sql("SELECT 2", RuntimeMode::Batch))
        .await
        .expect("another tenant's logs do not count");
    auth.stop().await;
}
