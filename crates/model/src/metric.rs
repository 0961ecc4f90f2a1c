//! The description of an exported metric series. Each crate lists the series it records next
//! to the code that records them, with the label values each series is known to take; the
//! server registers them all with the exporter and exports the known ones at zero from
//! start-up.

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

/// One exported series: its name, kind, labels and meaning, and when it is first exported.
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
    /// When it is first exported, and under which label values.
    pub exported: Exported,
}

/// The label sets of a series, each a value per label in the order of [`Metric::labels`].
pub type LabelSets = Vec<Vec<&'static str>>;

/// When a series is first exported.
#[derive(Debug, Clone, Copy)]
pub enum Exported {
    /// From start-up, at zero, under every label set the function lists. Prometheus's
    /// `rate()` and `increase()` see a counter's first increment only when the series was
    /// exported before it, so every counter whose label values are known starts this way.
    AtZero(fn() -> LabelSets),
    /// Once first recorded or read: when zero would misstate it (a gauge read from the store
    /// or from Flink at each scrape, a dependency not probed yet), or when its label values
    /// are named only while running (TaskManager ids).
    OnceSet,
}

impl Metric {
    /// The label sets the series is exported under from start-up (none for
    /// [`Exported::OnceSet`]).
    pub fn initial_label_sets(&self) -> LabelSets {
        match self.exported {
            Exported::AtZero(label_sets) => label_sets(),
            Exported::OnceSet => Vec::new(),
        }
    }
}

/// The one label set of a series without labels.
pub fn no_labels() -> LabelSets {
    vec![Vec::new()]
}

/// Every combination of one value per label, given the values of each label in turn.
pub fn each_combination(values_per_label: &[&[&'static str]]) -> LabelSets {
    values_per_label
        .iter()
        .fold(no_labels(), |label_sets, values| {
            label_sets
                .iter()
                .flat_map(|label_set| {
                    values.iter().map(move |value| {
                        let mut extended = label_set.clone();
                        extended.push(*value);
                        extended
                    })
                })
                .collect()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_combination_takes_one_value_per_label_in_label_order() {
        assert_eq!(
            each_combination(&[&["sql", "python"], &["RUNNING", "FAILED"]]),
            vec![
                vec!["sql", "RUNNING"],
                vec!["sql", "FAILED"],
                vec!["python", "RUNNING"],
                vec!["python", "FAILED"],
            ]
        );
        assert_eq!(each_combination(&[]), no_labels());
        assert!(each_combination(&[&["a"], &[]]).is_empty());
    }
}
