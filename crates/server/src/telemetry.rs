//! Logging and trace export.
//!
//! Logs go to stdout through a `fmt` layer filtered by `RUST_LOG`, as text lines or as JSON
//! lines ([`LogFormat`]); text is coloured only on a terminal. Traces are exported over
//! OTLP/gRPC only when an endpoint is configured (`--otlp-endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`); without one no
//! exporter is built, and unless JSON log lines carry them the broker's spans are disabled at
//! their call sites.
//!
//! The spans (see the README's "Traces (OpenTelemetry)"): one per gRPC call
//! (`rpc_span`), one per job driver, a child of the call that submitted the job, and one
//! per HTTP request to the SQL Gateway or the JobManager (`http_request_span` in
//! `flinkbroker_flink`).

use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TraceId, TracerProvider as _};
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

/// How the targets of the broker's own crates begin (`flinkbroker_control::trace`, …).
const BROKER_TARGET_PREFIX: &str = "flinkbroker";

/// The log filter when `RUST_LOG` is unset or invalid.
const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,sea_orm=warn,h2=warn,hyper=warn";

/// How log lines are written on standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One line of text an event, for people: time, level, message and the event's fields.
    #[default]
    Text,
    /// One JSON object a line, for log pipelines: `timestamp`, `level`, `target`, `message`
    /// and the event's own fields at the top level; `span`, the innermost span the event
    /// happened in (its `name` and fields, e.g. a job's `job_id`), and `spans`, every span
    /// it is in, outermost first.
    Json,
}

/// How the log is written: its format, and whether text is coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOutput {
    /// Text or JSON lines.
    pub format: LogFormat,
    /// Whether text lines carry ANSI colour codes.
    pub colour: bool,
}

impl LogOutput {
    /// Decides how the log is written in `format`: coloured only as text, on a terminal
    /// (`stdout_is_terminal`), and unless `NO_COLOR` (read through `variable`) is set to
    /// anything but the empty string, so that files and pipes get no escape codes.
    pub fn decide(
        format: LogFormat,
        stdout_is_terminal: bool,
        variable: impl Fn(&str) -> Option<String>,
    ) -> LogOutput {
        let no_colour = variable("NO_COLOR").is_some_and(|value| !value.is_empty());
        LogOutput {
            format,
            colour: format == LogFormat::Text && stdout_is_terminal && !no_colour,
        }
    }
}

/// Where traces go, as the configuration decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceExport {
    /// No exporter: the default.
    Off,
    /// OTLP over gRPC to `endpoint`, the spans' resource named `service_name`.
    Otlp {
        /// The collector's OTLP/gRPC address, e.g. `http://collector:4317`.
        endpoint: String,
        /// The flag or variable that named the endpoint, for error messages.
        origin: &'static str,
        /// The `service.name` of the spans' resource.
        service_name: String,
    },
}

/// Errors setting trace export up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built for the endpoint.
    #[error("cannot export traces to {endpoint} ({origin})")]
    Exporter {
        /// The endpoint the exporter was built for.
        endpoint: String,
        /// The flag or variable that named the endpoint.
        origin: &'static str,
        /// Why it could not be built.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
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
        let endpoint = given(otlp_endpoint.map(str::to_owned))
            .map(|endpoint| (endpoint, "--otlp-endpoint"))
            .or_else(|| {
                let disabled = variable("OTEL_SDK_DISABLED")
                    .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
                if disabled {
                    return None;
                }
                STANDARD_ENDPOINT_VARIABLES
                    .iter()
                    .find_map(|name| given(variable(name)).map(|endpoint| (endpoint, *name)))
            });
        match endpoint {
            Some((endpoint, origin)) => TraceExport::Otlp {
                endpoint,
                origin,
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

/// Installs the global tracing subscriber: logs written as `logs` says and filtered as
/// `RUST_LOG` says (else `info` with sqlx quiet), and spans exported as `export` says. The
/// OTLP exporter needs a Tokio runtime entered. A second call (tests) keeps the first
/// subscriber.
pub fn init(logs: LogOutput, export: &TraceExport) -> Result<Telemetry, TelemetryError> {
    // Text lines stay as they are without spans; JSON lines carry the broker's spans (their
    // ids), not the libraries' (which would only lengthen each line).
    let text = (logs.format == LogFormat::Text).then(|| {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(logs.colour)
            .with_filter(filter_fn(|metadata| !metadata.is_span()))
            .with_filter(log_filter())
    });
    let json = (logs.format == LogFormat::Json).then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(true)
            .with_ansi(false)
            .with_filter(filter_fn(|metadata| {
                !metadata.is_span() || metadata.target().starts_with(BROKER_TARGET_PREFIX)
            }))
            .with_filter(log_filter())
    });
    let provider = match export {
        TraceExport::Off => None,
        TraceExport::Otlp {
            endpoint,
            origin,
            service_name,
        } => Some(tracer_provider(endpoint, origin, service_name)?),
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
        .with(text)
        .with(json)
        .with(spans)
        .try_init();
    if let TraceExport::Otlp {
        endpoint,
        service_name,
        ..
    } = export
    {
        info!(%endpoint, %service_name, "exporting traces over otlp/grpc");
    }
    Ok(Telemetry { traces: provider })
}

/// Which events (and spans) are logged: as `RUST_LOG` says, else the default.
fn log_filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER))
}

/// Builds the tracer provider: a batch processor with a bounded queue in front of an OTLP
/// gRPC exporter (whose channel connects lazily, so a collector that is down does not stop
/// the broker).
fn tracer_provider(
    endpoint: &str,
    origin: &'static str,
    service_name: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let mut exporter = SpanExporter::builder().with_tonic().with_endpoint(endpoint);
    if endpoint.starts_with("https://") {
        // Without roots of its own the exporter would trust no server.
        exporter = exporter.with_tls_config(ClientTlsConfig::new().with_webpki_roots());
    }
    let exporter = exporter
        .build()
        .map_err(|source| TelemetryError::Exporter {
            endpoint: endpoint.to_string(),
            origin,
            source,
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
/// W3C `traceparent`. It records `trace_id` now, when the call is in a trace: the exported
/// span's when traces are exported, else the caller's; the handler records `tenant` once the
/// caller is known, `request_id` and `job_id` once known, and `rpc.grpc.status_code` with the
/// answer.
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
        trace_id = Empty,
        tenant = Empty,
        request_id = Empty,
        job_id = Empty,
    );
    if span.is_disabled() {
        return span;
    }
    let caller = caller_context(metadata);
    if let Some(caller) = &caller {
        // Fails only for a span that was entered already; this one was not.
        let _ = span.set_parent(caller.clone());
    }
    // Log lines carry the trace id so that they can be joined with the trace: the exported
    // span's (valid only when traces are exported), else the caller's, which its own trace
    // holds.
    let exported = span.context().span().span_context().trace_id();
    let trace_id = if exported != TraceId::INVALID {
        Some(exported)
    } else {
        caller.map(|caller| caller.span().span_context().trace_id())
    };
    if let Some(trace_id) = trace_id {
        span.record("trace_id", tracing::field::display(trace_id));
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
        let logs = LogOutput::decide(LogFormat::Text, false, variables(&[]));
        let telemetry = init(logs, &TraceExport::Off).expect("init");
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
                origin: "--otlp-endpoint",
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
            TraceExport::Otlp { endpoint, origin: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", .. }
                if endpoint == "http://traces:4317"
        ));
        assert!(matches!(
            export(None, variables(&both[..1])),
            TraceExport::Otlp { endpoint, origin: "OTEL_EXPORTER_OTLP_ENDPOINT", .. }
                if endpoint == "http://general:4317"
        ));
        let disabled = [both[0], ("OTEL_SDK_DISABLED", "true")];
        assert_eq!(export(None, variables(&disabled)), TraceExport::Off);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn exporters_are_built_for_http_and_https_endpoints_and_refused_for_others() {
        // The channel connects lazily: nothing listens at these addresses.
        for endpoint in ["http://127.0.0.1:9", "https://collector.invalid:4317"] {
            let provider =
                tracer_provider(endpoint, "--otlp-endpoint", "flinkbroker").expect(endpoint);
            let _ = provider.shutdown_with_timeout(Duration::from_secs(1));
        }
        let Err(refused) = tracer_provider("not an endpoint", "--otlp-endpoint", "flinkbroker")
        else {
            panic!("an exporter was built for \"not an endpoint\"");
        };
        let message = refused.to_string();
        assert!(
            message.contains("not an endpoint") && message.contains("--otlp-endpoint"),
            "{message}"
        );
        // The exporter's own error stays the cause, not a copy of its text.
        let cause = std::error::Error::source(&refused).expect("the exporter's error");
        assert!(
            cause
                .downcast_ref::<opentelemetry_otlp::ExporterBuildError>()
                .is_some(),
            "{cause:?}"
        );
        assert!(!message.contains(&cause.to_string()), "{message}");
    }

    #[test]
    fn text_is_coloured_only_on_a_terminal_without_no_color() {
        let decide = |format, terminal, pairs: &[(&str, &str)]| {
            LogOutput::decide(format, terminal, variables(pairs)).colour
        };
        assert!(decide(LogFormat::Text, true, &[]));
        assert!(decide(LogFormat::Text, true, &[("NO_COLOR", "")]));
        assert!(!decide(LogFormat::Text, false, &[]));
        assert!(!decide(LogFormat::Text, true, &[("NO_COLOR", "1")]));
        assert!(!decide(LogFormat::Json, true, &[]));
        assert_eq!(
            LogOutput::decide(LogFormat::Json, false, variables(&[])).format,
            LogFormat::Json
        );
    }
}
