//! The description of an exported metric series. Each crate lists the series it records next
//! to the code that records them; the server registers them all with the exporter.

/// What a series is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A count that only grows.
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// A distribution of observed values.
    Histogram,
}

/// One exported series: its name, kind, labels and meaning.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    /// The series name, e.g. `flinkbroker_submissions_total`.
    pub name: &'static str,
    /// What the series is.
    pub kind: MetricKind,
    /// The names of its labels.
    pub labels: &'static [&'static str],
    /// What it measures, as the exporter describes it.
    pub help: &'static str,
}
