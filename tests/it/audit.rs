//! The audit trail through the public gRPC API: every submission, cancellation, result read
//! and refused call leaves exactly one event, which administrators list with ListAuditEvents.

use crate::support::broker;
use crate::support::callers;

use broker::{sql, wait_for_job};
use callers::{CallersBroker, Client};
use flinkbroker_proto::{
    AuditAction, AuditEvent, CancelJobRequest, GetJobRequest, JobState, ListAuditEventsRequest,
    ListJobsRequest, RuntimeMode, StreamOperationResultsRequest,
};
use tokio_stream::StreamExt;
use tonic::Code;

/// (method, action, principal, tenant, outcome) of an event.
fn summary(event: &AuditEvent) -> (String, AuditAction, String, String, String) {
    (
        event.method.clone(),
        event.action(),
        event.principal.clone(),
        event.tenant.clone(),
        event.outcome.clone(),
    )
}

fn row(
    method: &str,
    action: AuditAction,
    principal: &str,
    tenant: &str,
    outcome: &str,
) -> (String, AuditAction, String, String, String) {
    (
        method.to_owned(),
        action,
        principal.to_owned(),
        tenant.to_owned(),
        outcome.to_owned(),
    )
}

/// The code of a call expected to fail.
fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> Code {
    result.expect_err("the call is refused").code()
}

async fn audit(admin: &mut Client, request: ListAuditEventsRequest) -> Vec<AuditEvent> {
    let mut events = Vec::new();
    let mut request = request;
    loop {
        let page = admin
            .list_audit_events(request.clone())
            .await
            .expect("ListAuditEvents")
            .into_inner();
        assert!(
            request.page_size == 0 || page.events.len() <= request.page_size as usize,
            "a page holds at most page_size events"
        );
        events.extend(page.events);
        if page.next_page_token.is_empty() {
            return events;
        }
        request.page_token = page.next_page_token;
    }
}

#[tokio::test]
async fn every_audited_call_leaves_exactly_one_event_and_admins_list_them() {
    let auth = CallersBroker::start(&[]).await;
    let mut ml = auth.as_token("ml-submit-token").await;
    let mut reader = auth.as_token("ml-read-token").await;
    let mut ads = auth.as_token("ads-token").await;
    let mut admin = auth.as_token("admin-token").await;
    let mut nobody = auth.client(None).await;
    let mut impostor = auth.as_token("not-a-token").await;

    let mut request = sql("SELECT 1", RuntimeMode::Batch);
    request.request_id = "nightly".into();
    let job = ml
        .submit_sql(request.clone())
        .await
        .expect("submit")
        .into_inner();
    let again = ml.submit_sql(request).await.expect("repeat").into_inner();
    assert_eq!(again.id, job.id);
    assert_eq!(
        code(reader.submit_sql(sql("SELECT 2", RuntimeMode::Batch)).await),
        Code::PermissionDenied
    );
    assert_eq!(
        code(ml.submit_sql(sql("  ", RuntimeMode::Batch)).await),
        Code::InvalidArgument
    );
    let get = || GetJobRequest {
        job_id: job.id.clone(),
    };
    assert_eq!(code(ads.get_job(get()).await), Code::NotFound);
    let cancel = || CancelJobRequest {
        job_id: job.id.clone(),
        ..CancelJobRequest::default()
    };
    assert_eq!(code(ads.cancel_job(cancel()).await), Code::NotFound);
    reader.get_job(get()).await.expect("a reader gets its job");
    wait_for_job(&reader, &job.id, "finished", |job| {
        job.state() == JobState::Finished
    })
    .await;
    let mut rows = reader
        .stream_operation_results(StreamOperationResultsRequest {
            job_id: job.id.clone(),
            ..StreamOperationResultsRequest::default()
        })
        .await
        .expect("read results")
        .into_inner();
    while let Some(message) = rows.next().await {
        message.expect("result message");
    }
    assert_eq!(code(nobody.get_job(get()).await), Code::Unauthenticated);
    assert_eq!(
        code(impostor.list_jobs(ListJobsRequest::default()).await),
        Code::Unauthenticated
    );
    assert_eq!(
        code(
            ml.list_audit_events(ListAuditEventsRequest::default())
                .await
        ),
        Code::PermissionDenied
    );
    ml.cancel_job(cancel()).await.expect("cancel an ended job");
    admin
        .list_jobs(ListJobsRequest::default())
        .await
        .expect("an allowed ListJobs is not audited");

    let events = audit(&mut admin, ListAuditEventsRequest::default()).await;
    let summaries: Vec<_> = events.iter().map(summary).collect();
    use AuditAction::{Cancel, Denied, ReadResults, Submit};
    assert_eq!(
        summaries,
        vec![
            row("CancelJob", Cancel, "ml-backend", "ml", "OK"),
            row(
                "ListAuditEvents",
                Denied,
                "ml-backend",
                "ml",
                "PERMISSION_DENIED"
            ),
            row("ListJobs", Denied, "", "", "UNAUTHENTICATED"),
            row("GetJob", Denied, "", "", "UNAUTHENTICATED"),
            row(
                "StreamOperationResults",
                ReadResults,
                "ml-dashboard",
                "ml",
                "OK"
            ),
            row("CancelJob", Denied, "ads-backend", "ads", "NOT_FOUND"),
            row("GetJob", Denied, "ads-backend", "ads", "NOT_FOUND"),
            row("SubmitSql", Submit, "ml-backend", "ml", "INVALID_ARGUMENT"),
            row(
                "SubmitSql",
                Denied,
                "ml-dashboard",
                "ml",
                "PERMISSION_DENIED"
            ),
            row("SubmitSql", Submit, "ml-backend", "ml", "OK"),
            row("SubmitSql", Submit, "ml-backend", "ml", "OK"),
        ],
        "one event per audited call, newest first"
    );
    // What each event says beyond its summary.
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "ids fall: {ids:?}");
    for submitted in &events[9..] {
        assert_eq!(
            (submitted.job_id.as_str(), submitted.request_id.as_str()),
            (job.id.as_str(), "nightly")
        );
        assert!(submitted.detail.is_empty());
        assert!(submitted.time.is_some());
    }
    assert!(
        events[8].detail.contains("needs the role submitter"),
        "{}",
        events[8].detail
    );
    assert!(events[7].detail.contains("script"), "{}", events[7].detail);
    for hidden in &events[5..7] {
        assert_eq!(hidden.job_id, job.id);
        assert_eq!(hidden.detail, "the job belongs to tenant ml");
    }
    assert!(
        !events[2].detail.contains("not-a-token"),
        "no token in the trail"
    );
    assert_eq!(
        (events[0].job_id.as_str(), events[0].request_id.as_str()),
        (job.id.as_str(), "nightly")
    );
    assert_eq!(events[4].job_id, job.id);

    // Filters and pages.
    let methods =
        |events: Vec<AuditEvent>| events.iter().map(|e| e.method.clone()).collect::<Vec<_>>();
    let denied = audit(
        &mut admin,
        ListAuditEventsRequest {
            action: AuditAction::Denied as i32,
            page_size: 2,
            ..ListAuditEventsRequest::default()
        },
    )
    .await;
    assert_eq!(
        methods(denied),
        [
            "ListAuditEvents",
            "ListJobs",
            "GetJob",
            "CancelJob",
            "GetJob",
            "SubmitSql"
        ]
    );
    let of_ads = audit(
        &mut admin,
        ListAuditEventsRequest {
            tenant: "ads".into(),
            ..ListAuditEventsRequest::default()
        },
    )
    .await;
    assert_eq!(methods(of_ads), ["CancelJob", "GetJob"]);
    let of_dashboard = audit(
        &mut admin,
        ListAuditEventsRequest {
            principal: "ml-dashboard".into(),
            ..ListAuditEventsRequest::default()
        },
    )
    .await;
    assert_eq!(
        methods(of_dashboard),
        ["StreamOperationResults", "SubmitSql"]
    );
    let first_time = events[10].time.expect("time");
    let last_time = events[0].time.expect("time");
    let in_range = audit(
        &mut admin,
        ListAuditEventsRequest {
            start_time: Some(first_time),
            end_time: Some(prost_types::Timestamp {
                seconds: last_time.seconds + 1,
                nanos: 0,
            }),
            page_size: 3,
            ..ListAuditEventsRequest::default()
        },
    )
    .await;
    assert_eq!(in_range.len(), 11, "every event lies in its own time range");
    let after = audit(
        &mut admin,
        ListAuditEventsRequest {
            start_time: Some(prost_types::Timestamp {
                seconds: last_time.seconds + 1,
                nanos: 0,
            }),
            ..ListAuditEventsRequest::default()
        },
    )
    .await;
    assert!(after.is_empty());
    let backwards = admin
        .list_audit_events(ListAuditEventsRequest {
            start_time: Some(last_time),
            end_time: Some(first_time),
            ..ListAuditEventsRequest::default()
        })
        .await;
    if first_time != last_time {
        let refused = backwards.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(
            refused.message().contains("end_time"),
            "{}",
            refused.message()
        );
    }
    let bad_token = admin
        .list_audit_events(ListAuditEventsRequest {
            page_token: "garbage!".into(),
            ..ListAuditEventsRequest::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_token.code(), Code::InvalidArgument);
    // Listing the trail is not itself an audited action.
    assert_eq!(
        audit(&mut admin, ListAuditEventsRequest::default())
            .await
            .len(),
        11
    );
    auth.stop().await;
}

#[tokio::test]
async fn unauthenticated_calls_beyond_the_budget_are_not_recorded() {
    let auth = CallersBroker::start(&["--audit-unauthenticated-per-second", "2"]).await;
    let mut nobody = auth.client(None).await;
    let mut admin = auth.as_token("admin-token").await;
    // Within one second at most two are recorded; the calls are refused all the same.
    let started = std::time::Instant::now();
    for _ in 0..5 {
        let refused = nobody
            .list_jobs(ListJobsRequest::default())
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    let recorded = audit(
        &mut admin,
        ListAuditEventsRequest {
            action: AuditAction::Denied as i32,
            ..ListAuditEventsRequest::default()
        },
    )
    .await
    .len();
    if started.elapsed() < std::time::Duration::from_millis(900) {
        assert_eq!(recorded, 2, "two a second");
    } else {
        // A slow machine spread the calls over more than one second's budget.
        assert!((2..=5).contains(&recorded), "{recorded}");
    }
    auth.stop().await;
}
