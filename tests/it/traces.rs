//! Trace export through the real binary: `flinkbroker serve --otlp-endpoint` against an
//! in-test OTLP/gRPC receiver and the SQL Gateway stand-in (which also plays the JobManager).

use crate::support::broker_binary::{PipedBroker, text_address};
use flinkbroker_testkit::standin as sql_gateway_standin;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flinkbroker_model::job::JobId;
use flinkbroker_proto::{GetJobRequest, JobState, RuntimeMode, SubmitSqlRequest, WatchJobRequest};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::trace::v1::Span;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use sql_gateway_standin::{Standin, StandinConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

const LIMIT: Duration = Duration::from_secs(30);

const SCRIPT: &str = "CREATE TABLE gen (id INT, name STRING) WITH ('connector'='datagen', 'number-of-rows'='10', 'fields.id.kind'='sequence', 'fields.id.start'='1', 'fields.id.end'='10');\nCREATE TABLE print_sink (id INT, name STRING) WITH ('connector'='print');\nINSERT INTO print_sink SELECT * FROM gen;";

/// An OTLP/gRPC trace receiver that keeps every span it is sent, with its resource's
/// `service.name`.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
    /// Counts the spans received so far, for waiting on them.
    received: Arc<watch::Sender<usize>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().expect("spans");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|resource| &resource.attributes)
                .find(|attribute| attribute.key == "service.name")
                .and_then(|attribute| text(attribute.value.as_ref()?.value.as_ref()?))
                .unwrap_or_default();
            for scope_spans in resource_spans.scope_spans {
                spans.extend(
                    scope_spans
                        .spans
                        .into_iter()
                        .map(|span| (service.clone(), span)),
                );
            }
        }
        self.received.send_replace(spans.len());
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// Serves the receiver on a free loopback port until `stop`.
    async fn serve(&self, stop: CancellationToken) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("receiver address");
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), stop.cancelled_owned())
                .await
                .expect("otlp receiver");
        });
        addr
    }

    /// Waits (at most `LIMIT`) until the spans received satisfy `done`; returns them.
    async fn wait_for(
        &self,
        what: &str,
        done: impl Fn(&[(String, Span)]) -> bool,
    ) -> Vec<(String, Span)> {
        let mut received = self.received.subscribe();
        let waited = tokio::time::timeout(LIMIT, async {
            loop {
                {
                    let spans = self.spans.lock().expect("spans");
                    if done(&spans) {
                        return spans.clone();
                    }
                }
                received.changed().await.expect("receiver alive");
            }
        })
        .await;
        match waited {
            Ok(spans) => spans,
            Err(_) => {
                let names: Vec<String> = self
                    .spans
                    .lock()
                    .expect("spans")
                    .iter()
                    .map(|(_, span)| span.name.clone())
                    .collect();
                panic!("timed out waiting for {what}; spans received: {names:?}")
            }
        }
    }
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::StringValue(text) => Some(text.clone()),
        _ => None,
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span
        .attributes
        .iter()
        .find(|attribute| attribute.key == key)?
        .value
        .as_ref()?
        .value
        .as_ref()?;
    match value {
        Value::StringValue(text) => Some(text.clone()),
        Value::IntValue(number) => Some(number.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// Submits the script (with a W3C `traceparent`, if given) and follows the job to its end;
/// returns its id and end time (ns).
async fn run_job(broker: &PipedBroker, traceparent: Option<&str>) -> (String, u64) {
    let mut client = broker.client().await;
    let mut request = Request::new(SubmitSqlRequest {
        script: SCRIPT.into(),
        runtime_mode: RuntimeMode::Streaming as i32,
        ..SubmitSqlRequest::default()
    });
    if let Some(traceparent) = traceparent {
        request
            .metadata_mut()
            .insert("traceparent", traceparent.parse().expect("traceparent"));
    }
    let job = client
        .submit_sql(request)
        .await
        .expect("submit")
        .into_inner();
    // Followed through WatchJob, whose call span lasts as long as its stream.
    let mut changes = client
        .watch_job(WatchJobRequest {
            job_id: job.id.clone(),
        })
        .await
        .expect("watch job")
        .into_inner();
    let ended = tokio::time::timeout(LIMIT, async {
        let mut last = None;
        while let Some(change) = changes.message().await.expect("watch stream") {
            last = Some(change);
        }
        last.expect("the watch sent the job")
    })
    .await
    .expect("job did not end in time");
    drop(changes);
    assert_eq!(ended.state(), JobState::Finished, "{ended:?}");
    let end = ended.end_time.expect("end time");
    let end_nanos = u64::try_from(end.seconds).expect("after 1970") * 1_000_000_000
        + u64::try_from(end.nanos).expect("nanos");
    (job.id, end_nanos)
}

/// What each test's broker runs against: an OTLP receiver and a SQL Gateway stand-in.
struct Harness {
    receiver: Receiver,
    /// Stops the receiver.
    stop: CancellationToken,
    standin: Standin,
    /// The receiver's OTLP endpoint URL.
    endpoint: String,
}

impl Harness {
    async fn start() -> Harness {
        let receiver = Receiver::default();
        let stop = CancellationToken::new();
        let collector = receiver.serve(stop.clone()).await;
        let standin = Standin::spawn(StandinConfig::default())
            .await
            .expect("stand-in");
        Harness {
            receiver,
            stop,
            standin,
            endpoint: format!("http://{collector}"),
        }
    }
}

#[tokio::test]
async fn a_submitted_job_is_traced_from_its_call_to_its_flink_job() {
    let Harness {
        receiver,
        stop,
        standin,
        endpoint,
    } = Harness::start().await;
    let broker = PipedBroker::start(
        &standin,
        &[
            "--otlp-endpoint",
            &endpoint,
            "--otlp-service-name",
            "broker-under-test",
        ],
        &[],
        text_address,
    )
    .await;
    // The caller's trace: the call's span joins it.
    let caller_trace = "0af7651916cd43dd8448eb211c80319c";
    let caller_span = "b7ad6b7169203331";
    let (job_id, job_end) = run_job(
        &broker,
        Some(&format!("00-{caller_trace}-{caller_span}-01")),
    )
    .await;
    let flink_job_id = job_id
        .parse::<JobId>()
        .expect("job id")
        .flink_job_id_for_statement(2);
    // The job's span ends with its driver; the batch still queued is exported at exit.
    let log = broker.terminate().await;
    let spans = receiver
        .wait_for("the job's span", |spans| {
            spans.iter().any(|(_, span)| {
                attribute(span, "job_id").as_deref() == Some(job_id.as_str())
                    && span.name.starts_with("job")
            })
        })
        .await;
    let by_id: HashMap<&[u8], &Span> = spans
        .iter()
        .map(|(_, span)| (span.span_id.as_slice(), span))
        .collect();
    let named = |name: &str| -> Vec<&Span> {
        spans
            .iter()
            .map(|(_, span)| span)
            .filter(|span| span.name == name)
            .collect()
    };
    assert!(
        spans
            .iter()
            .all(|(service, _)| service == "broker-under-test"),
        "service names: {:?}",
        spans.iter().map(|(service, _)| service).collect::<Vec<_>>()
    );

    // The call.
    let submits = named("flinkbroker.v1.JobService/SubmitSql");
    assert_eq!(submits.len(), 1, "{log:#?}");
    let submit = submits[0];
    assert_eq!(submit.kind, SpanKind::Server as i32);
    assert_eq!(hex(&submit.trace_id), caller_trace);
    assert_eq!(hex(&submit.parent_span_id), caller_span);
    assert_eq!(
        attribute(submit, "rpc.method").as_deref(),
        Some("SubmitSql")
    );
    assert_eq!(
        attribute(submit, "rpc.grpc.status_code").as_deref(),
        Some("0")
    );
    assert_eq!(
        attribute(submit, "job_id").as_deref(),
        Some(job_id.as_str())
    );

    // The watch's span lasts as long as its stream: until after the job ended.
    let watches = named("flinkbroker.v1.JobService/WatchJob");
    assert_eq!(watches.len(), 1);
    assert!(
        watches[0].end_time_unix_nano >= job_end,
        "the WatchJob span ended at {} before the job ended at {job_end}",
        watches[0].end_time_unix_nano
    );

    // The job: a child of the call, in its trace, with both ids.
    let job = spans
        .iter()
        .map(|(_, span)| span)
        .find(|span| span.name == "job SQL")
        .expect("the job's span");
    assert_eq!(job.trace_id, submit.trace_id);
    assert_eq!(job.parent_span_id, submit.span_id);
    assert_eq!(attribute(job, "job_id").as_deref(), Some(job_id.as_str()));
    assert_eq!(
        attribute(job, "flink.job_id").as_deref(),
        Some(flink_job_id.as_str())
    );

    // Each request to the gateway and the JobManager: in the call's trace, under the job
    // (the health probes' requests have traces of their own, and so do the reads of the jobs
    // overview, which serve every job at once).
    let probes = ["GET /api_versions", "GET /overview", "GET /jobs/overview"];
    let requests: Vec<&Span> = spans
        .iter()
        .map(|(_, span)| span)
        .filter(|span| span.kind == SpanKind::Client as i32)
        .filter(|span| !probes.contains(&span.name.as_str()))
        .collect();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(request.trace_id, submit.trace_id, "{}", request.name);
        assert!(
            descends_from(request, job, &by_id),
            "{} is not under the job's span",
            request.name
        );
    }
    let executes = named("POST /sessions/:session/statements");
    assert_eq!(executes.len(), 3, "one per statement");
    assert!(executes.iter().all(|span| {
        attribute(span, "sql_gateway.session").is_some()
            && attribute(span, "sql_gateway.operation").is_some()
            && attribute(span, "peer.service").as_deref() == Some("sql_gateway")
            && attribute(span, "http.response.status_code").as_deref() == Some("200")
    }));
    let insert = executes
        .iter()
        .find(|span| attribute(span, "flink.job_id").is_some())
        .expect("the INSERT's submission names its flink job");
    assert_eq!(
        attribute(insert, "flink.job_id").as_deref(),
        Some(flink_job_id.as_str())
    );
    let operation = attribute(insert, "sql_gateway.operation").expect("operation handle");
    assert!(
        named("GET /sessions/:session/operations/:operation/status")
            .iter()
            .any(|span| attribute(span, "sql_gateway.operation").as_deref()
                == Some(operation.as_str())),
        "the INSERT's operation is polled under its handle"
    );
    // Followed through the jobs overview, read for every job at once; a request about the
    // one job names it.
    let overviews = named("GET /jobs/overview");
    assert!(
        !overviews.is_empty()
            && overviews
                .iter()
                .all(|span| attribute(span, "peer.service").as_deref() == Some("jobmanager")),
        "the flink job is followed through the jobmanager's jobs overview"
    );
    let jobmanager = named("GET /jobs/:jobid");
    assert!(jobmanager.iter().all(|span| {
        attribute(span, "flink.job_id").as_deref() == Some(flink_job_id.as_str())
            && attribute(span, "peer.service").as_deref() == Some("jobmanager")
    }));

    stop.cancel();
    standin.shutdown().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// True when `span` is `ancestor` or below it.
fn descends_from(span: &Span, ancestor: &Span, by_id: &HashMap<&[u8], &Span>) -> bool {
    let mut current = span;
    for _ in 0..by_id.len() + 1 {
        if current.span_id == ancestor.span_id {
            return true;
        }
        match by_id.get(current.parent_span_id.as_slice()) {
            Some(parent) => current = parent,
            None => return false,
        }
    }
    false
}

#[tokio::test]
async fn without_an_endpoint_nothing_is_exported() {
    let Harness {
        receiver,
        stop,
        standin,
        endpoint,
    } = Harness::start().await;
    // No --otlp-endpoint, and the standard variable that would name one switched off.
    let broker = PipedBroker::start(
        &standin,
        &[],
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_SDK_DISABLED", "true"),
        ],
        text_address,
    )
    .await;
    run_job(&broker, None).await;
    // Whatever an exporter held would have been flushed by the time the broker exited.
    let log = broker.terminate().await;
    assert!(
        !log.iter().any(|line| line.contains("exporting traces")),
        "{log:#?}"
    );
    assert!(receiver.spans.lock().expect("spans").is_empty());
    stop.cancel();
    standin.shutdown().await;
}

#[tokio::test]
async fn a_calls_span_is_exported_while_the_job_it_started_still_runs() {
    let Harness {
        receiver,
        stop,
        standin,
        endpoint,
    } = Harness::start().await;
    // Batches leave every 50 ms, so the call's span arrives while the job runs on.
    let broker = PipedBroker::start(
        &standin,
        &["--otlp-endpoint", &endpoint],
        &[("OTEL_BSP_SCHEDULE_DELAY", "50")],
        text_address,
    )
    .await;
    let mut client = broker.client().await;
    let job = client
        .submit_sql(SubmitSqlRequest {
            script: "CREATE TABLE endless (id INT) WITH ('connector'='datagen', \
                     'fields.id.kind'='sequence', 'fields.id.start'='1', \
                     'fields.id.end'='100000000');\nSELECT * FROM endless;"
                .into(),
            runtime_mode: RuntimeMode::Streaming as i32,
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("submit")
        .into_inner();
    let spans = receiver
        .wait_for("the SubmitSql span", |spans| {
            spans
                .iter()
                .any(|(_, span)| span.name == "flinkbroker.v1.JobService/SubmitSql")
        })
        .await;
    assert!(
        !spans.iter().any(|(_, span)| span.name == "job SQL"),
        "the job's span ends only with the job"
    );
    let now = client
        .get_job(GetJobRequest {
            job_id: job.id.clone(),
        })
        .await
        .expect("get job")
        .into_inner();
    assert!(
        matches!(
            now.state(),
            JobState::Pending | JobState::Submitting | JobState::Running
        ),
        "the job still runs: {now:?}"
    );
    broker.terminate().await;
    stop.cancel();
    standin.shutdown().await;
}
