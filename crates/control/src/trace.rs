//! The span of a job's driver task.

use opentelemetry::trace::{TraceContextExt, TraceId};
use tracing::field::Empty;
use tracing::{Span, info_span};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Opens the span of a job's driver: `job_id` and `job.kind` now, `trace_id` when traces are
/// exported (so that the job's log lines can be joined with its trace), `flink.job_id` once a
/// statement has one.
pub(crate) fn job_span(job_id: &str, kind: &'static str, tenant: &str) -> Span {
    // A root for tracing, so that the call's span closes (and is exported) when the call ends
    // rather than when the job does; its trace parent is the current span, the call that
    // submitted the job, when there is one.
    let span = info_span!(
        parent: None,
        "job",
        otel.name = %format_args!("job {kind}"),
        job_id,
        job.kind = kind,
        tenant,
        flink.job_id = Empty,
        trace_id = Empty,
    );
    if !span.is_disabled() {
        let current = Span::current().context();
        if current.span().span_context().is_valid() {
            // Fails only for a span that was entered already; this one was not.
            let _ = span.set_parent(current);
        }
        // Valid only when traces are exported: the submitting call's trace, else a new one.
        let trace_id = span.context().span().span_context().trace_id();
        if trace_id != TraceId::INVALID {
            span.record("trace_id", tracing::field::display(trace_id));
        }
    }
    span
}
