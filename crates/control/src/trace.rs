//! The span of a job's driver task.

use opentelemetry::trace::TraceContextExt;
use tracing::field::Empty;
use tracing::{Span, info_span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Opens the span of a job's driver: `job_id` and `job.kind` now, `flink.job_id` once a
/// statement has one.
pub(crate) fn job_span(job_id: &str, kind: &'static str) -> Span {
    // A root for tracing, so that the call's span closes (and is exported) when the call ends
    // rather than when the job does; its trace parent is the current span, the call that
    // submitted the job, when there is one.
    let span = info_span!(
        parent: None,
        "job",
        otel.name = %format_args!("job {kind}"),
        job_id,
        job.kind = kind,
        flink.job_id = Empty,
    );
    if !span.is_disabled() {
        let current = Span::current().context();
        if current.span().span_context().is_valid() {
            // Fails only for a span that was entered already; this one was not.
            let _ = span.set_parent(current);
        }
    }
    span
}
