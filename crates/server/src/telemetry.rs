//! Logging and trace export.
//!
//! Logs go to stdout through a `fmt` layer filtered by `RUST_LOG`. Traces are exported over
//! OTLP/gRPC only when an endpoint is configured (`--otlp-endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`); without one no
//! exporter is built and the broker's spans are disabled at their call sites.
//!
//! The spans (see the README's "Traces (OpenTelemetry)"): one per gRPC call
//! (`rpc_span`), one per job driver, a child of the call that submitted the job, and one
//! per HTTP request to the SQL Gateway or the JobManager (`http_request_span` in
//! `flinkbroker_flink`).

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig, WithTonicConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tonic::metadata::{KeyRef, MetadataMap};
use tonic::transport::ClientTlsConfig;
use tracing::field::Empty;
use tracing::{Level, Span, info, info_span, warn};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{Targets, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The standard variables read when `--otlp-endpoint` is not given, in this order.
const STANDARD_ENDPOINT_VARIABLES: [&str; 2] = [
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
];

/// The spans finished but not exported yet that are kept; more are dropped (and counted by
/// the SDK), so a collector that is down cannot grow the broker's memory.
const MAX_QUEUED_SPANS: usize = 2048;

/// How long the exit waits for the last spans to be exported.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// The instrumentation scope the broker's spans are reported under.
const TRACER_NAME: &str = "flinkbroker";

/// Where traces go, as the configuration decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceExport {
    /// No exporter: the default.
    Off,
    /// OTLP over gRPC to `endpoint`, the spans' resource named `service_name`.
    Otlp {
        /// The collector's OTLP/gRPC address, e.g. `http://collector:4317`.
        endpoint: String,
        /// The `service.name` of the spans' resource.
        service_name: String,
    },
}

/// Errors setting trace export up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built for the endpoint.
    #[error("cannot build the otlp trace exporter for {endpoint}: {reason}")]
    Exporter {
        /// The endpoint the exporter was built for.
        endpoint: String,
        /// Why it could not be built.
        reason: String,
    },
}

impl TraceExport {
    /// Decides where traces go: `otlp_endpoint` (`--otlp-endpoint`), else the standard OTLP
    /// variables read through `variable`; `OTEL_SDK_DISABLED=true` turns the standard
    /// variables off. The spans' resource is named `service_name`.
    pub fn decide(
        otlp_endpoint: Option<&str>,
        service_name: &str,
        variable: impl Fn(&str) -> Option<String>,
    ) -> TraceExport {
        let given = |value: Option<String>| {
            value
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let endpoint = given(otlp_endpoint.map(str::to_owned)).or_else(|| {
            let disabled = variable("OTEL_SDK_DISABLED")
                .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
            if disabled {
                return None;
            }
            STANDARD_ENDPOINT_VARIABLES
                .iter()
                .find_map(|name| given(variable(name)))
        });
        match endpoint {
            Some(endpoint) => TraceExport::Otlp {
                endpoint,
                service_name: service_name.to_owned(),
            },
            None => TraceExport::Off,
        }
    }
}

/// The installed telemetry; [`Telemetry::shutdown`] exports the spans still queued.
#[must_use = "shut telemetry down at exit, or the last spans are lost"]
pub struct Telemetry {
    traces: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Returns true when spans are exported.
    #[cfg(test)]
    fn exports_traces(&self) -> bool {
        self.traces.is_some()
    }

    /// Exports the spans still queued (waiting at most a few seconds) and stops the exporter.
    /// Blocks: call it outside async code, while the runtime that built the exporter still
    /// runs.
    pub fn shutdown(self) {
        if let Some(provider) = self.traces
            && let Err(error) = provider.shutdown_with_timeout(SHUTDOWN_TIMEOUT)
        {
            warn!(%error, "cannot export the last spans");
        }
    }
}

/// Installs the global tracing subscriber: logs as `RUST_LOG` says (else `info` with sqlx
/// quiet), and spans exported as `export` says. The OTLP exporter needs a Tokio runtime
/// entered. A second call (tests) keeps the first subscriber.
pub fn init(export: &TraceExport) -> Result<Telemetry, TelemetryError> {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn,h2=warn,hyper=warn"));
    // Spans are for export: the log lines stay as they are without them.
    let logs = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_filter(filter_fn(|metadata| !metadata.is_span()))
        .with_filter(filter);
    let provider = match export {
        TraceExport::Off => None,
        TraceExport::Otlp {
            endpoint,
            service_name,
        } => Some(tracer_provider(endpoint, service_name)?),
    };
    // Only the broker's own spans (and the events inside them): the exporter's own gRPC
    // client must not trace itself.
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(TRACER_NAME))
            // The spans are opened by the helpers below: their code location, target and
            // thread would say nothing.
            .with_location(false)
            .with_target(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(Targets::new().with_target(TRACER_NAME, Level::INFO))
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(spans)
        .try_init();
    if let TraceExport::Otlp {
        endpoint,
        service_name,
    } = export
    {
        info!(%endpoint, %service_name, "exporting traces over otlp/grpc");
    }
    Ok(Telemetry { traces: provider })
}

/// Builds the tracer provider: a batch processor with a bounded queue in front of an OTLP
/// gRPC exporter (whose channel connects lazily, so a collector that is down does not stop
/// the broker).
fn tracer_provider(
    endpoint: &str,
    service_name: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let mut exporter = SpanExporter::builder().with_tonic().with_endpoint(endpoint);
    if endpoint.starts_with("https://") {
        // Without roots of its own the exporter would trust no server.
        exporter = exporter.with_tls_config(ClientTlsConfig::new().with_webpki_roots());
    }
    let exporter = exporter.build().map_err(|error| TelemetryError::Exporter {
        endpoint: endpoint.to_string(),
        reason: error.to_string(),
    })?;
    let batches = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(MAX_QUEUED_SPANS)
                .build(),
        )
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(batches)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_string())
                .build(),
        )
        .build())
}

/// Opens the span of one call of a `flinkbroker.v1.JobService` method (a server span named
/// `flinkbroker.v1.JobService/<method>`), in the caller's trace when its metadata carries a
/// W3C `traceparent`; the handler records `job_id` once known and `rpc.grpc.status_code` with
/// the answer.
pub(crate) fn rpc_span(method: &'static str, metadata: &MetadataMap) -> Span {
    let span = info_span!(
        "grpc call",
        otel.name = %format_args!("flinkbroker.v1.JobService/{method}"),
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = "flinkbroker.v1.JobService",
        rpc.method = method,
        rpc.grpc.status_code = Empty,
        job_id = Empty,
    );
    if !span.is_disabled()
        && let Some(caller) = caller_context(metadata)
    {
        // Fails only for a span that was entered already; this one was not.
        let _ = span.set_parent(caller);
    }
    span
}

/// The caller's span context from a `traceparent` (and `tracestate`) in the call's metadata,
/// if it is valid.
fn caller_context(metadata: &MetadataMap) -> Option<Context> {
    metadata.get("traceparent")?;
    let context = TraceContextPropagator::new().extract(&MetadataExtractor(metadata));
    context.span().span_context().is_valid().then_some(context)
}

/// Reads propagation headers out of gRPC metadata.
struct MetadataExtractor<'a>(&'a MetadataMap);

impl Extractor for MetadataExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|key| match key {
                KeyRef::Ascii(key) => Some(key.as_str()),
                KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// Records a call's answer on its span: the gRPC status code, and the span failed for the
/// codes that say the server failed (as the OpenTelemetry conventions for gRPC servers say).
pub(crate) fn record_rpc_answer(span: &Span, code: tonic::Code) {
    span.record("rpc.grpc.status_code", code as i32);
    if matches!(
        code,
        tonic::Code::Unknown
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unimplemented
            | tonic::Code::Internal
            | tonic::Code::Unavailable
            | tonic::Code::DataLoss
    ) {
        span.record("otel.status_code", "ERROR");
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn export(endpoint: Option<&str>, variable: impl Fn(&str) -> Option<String>) -> TraceExport {
        TraceExport::decide(endpoint, "flinkbroker", variable)
    }

    fn variables(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        assert_eq!(export(None, variables(&[])), TraceExport::Off);
        assert_eq!(export(Some(" "), variables(&[])), TraceExport::Off);
        let telemetry = init(&TraceExport::Off).expect("init");
        assert!(!telemetry.exports_traces());
        telemetry.shutdown();
    }

    #[test]
    fn the_flag_wins_over_the_standard_variables() {
        let export = export(
            Some("http://collector:4317"),
            variables(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://other:4317")]),
        );
        assert_eq!(
            export,
            TraceExport::Otlp {
                endpoint: "http://collector:4317".into(),
                service_name: "flinkbroker".into()
            }
        );
    }

    #[test]
    fn the_standard_variables_turn_export_on_unless_the_sdk_is_disabled() {
        let both = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://general:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317"),
        ];
        assert!(matches!(
            export(None, variables(&both)),
            TraceExport::Otlp { endpoint, .. } if endpoint == "http://traces:4317"
        ));
        assert!(matches!(
            export(None, variables(&both[..1])),
            TraceExport::Otlp { endpoint, .. } if endpoint == "http://general:4317"
        ));
        let disabled = [both[0], ("OTEL_SDK_DISABLED", "true")];
        assert_eq!(export(None, variables(&disabled)), TraceExport::Off);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn exporters_are_built_for_http_and_https_endpoints_and_refused_for_others() {
        // The channel connects lazily: nothing listens at these addresses.
        for endpoint in ["http://127.0.0.1:9", "https://collector.invalid:4317"] {
            let provider = tracer_provider(endpoint, "flinkbroker").expect(endpoint);
            let _ = provider.shutdown_with_timeout(Duration::from_secs(1));
        }
        let Err(refused) = tracer_provider("not an endpoint", "flinkbroker") else {
            panic!("an exporter was built for \"not an endpoint\"");
        };
        assert!(refused.to_string().contains("not an endpoint"), "{refused}");
    }
}
