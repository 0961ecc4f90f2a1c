//! Result values as people and programs read them: text for tables and CSV, JSON for
//! `--format json|jsonl`.

use chrono::{DateTime, NaiveDate, NaiveTime, SecondsFormat, Utc};
use serde_json::{Map, Value as Json, json};

use flinkbroker_proto as proto;
use flinkbroker_proto::value::Kind;

/// A date: days since 1970-01-01.
fn date(days: i32) -> String {
    NaiveDate::from_ymd_opt(1970, 1, 1)
        .and_then(|epoch| epoch.checked_add_signed(chrono::Duration::days(i64::from(days))))
        .map_or_else(
            || format!("{days} days"),
            |d| d.format("%Y-%m-%d").to_string(),
        )
}

/// A time of day: nanoseconds since midnight (outside one day, the count itself).
fn time(nanos: i64) -> String {
    let (Ok(seconds), Ok(fraction)) = (
        u32::try_from(nanos.div_euclid(1_000_000_000)),
        u32::try_from(nanos.rem_euclid(1_000_000_000)),
    ) else {
        return format!("{nanos} ns");
    };
    NaiveTime::from_num_seconds_from_midnight_opt(seconds, fraction).map_or_else(
        || format!("{nanos} ns"),
        |t| t.format("%H:%M:%S%.f").to_string(),
    )
}

/// A timestamp; `zoned` adds the UTC offset (an instant), otherwise the wall-clock time.
fn timestamp(t: &prost_types::Timestamp, zoned: bool) -> String {
    let nanos = u32::try_from(t.nanos).unwrap_or(0);
    match DateTime::<Utc>::from_timestamp(t.seconds, nanos) {
        Some(at) if zoned => at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        Some(at) => at.naive_utc().format("%Y-%m-%d %H:%M:%S%.f").to_string(),
        None => format!("{}s", t.seconds),
    }
}

/// A value as text: NULL for SQL NULL, nested values in SQL-like brackets.
pub(crate) fn text(value: &proto::Value) -> String {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => "NULL".to_owned(),
        Some(Kind::BoolValue(b)) => b.to_string(),
        Some(Kind::IntValue(i)) => i.to_string(),
        Some(Kind::DoubleValue(d)) => d.to_string(),
        Some(Kind::DecimalValue(d)) | Some(Kind::StringValue(d)) => d.clone(),
        Some(Kind::BytesValue(b)) => format!("x'{}'", hex::encode(b)),
        Some(Kind::DateValue(d)) => date(*d),
        Some(Kind::TimeValue(t)) => time(*t),
        Some(Kind::TimestampValue(t)) => timestamp(t, false),
        Some(Kind::InstantValue(t)) => timestamp(t, true),
        Some(Kind::ArrayValue(a)) => format!(
            "[{}]",
            a.elements.iter().map(text).collect::<Vec<_>>().join(", ")
        ),
        Some(Kind::MapValue(m)) => format!(
            "{{{}}}",
            m.entries
                .iter()
                .map(|e| format!(
                    "{}={}",
                    e.key.as_ref().map_or_else(|| "NULL".to_owned(), text),
                    e.value.as_ref().map_or_else(|| "NULL".to_owned(), text)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Some(Kind::RowValue(r)) => format!(
            "({})",
            r.fields.iter().map(text).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// A value as JSON: numbers and booleans as such, DECIMAL as its exact text, bytes as hex,
/// dates and times as ISO 8601 text, maps as arrays of `{key, value}` (keys need not be
/// strings), rows as arrays.
pub(crate) fn json(value: &proto::Value) -> Json {
    match &value.kind {
        None | Some(Kind::NullValue(_)) => Json::Null,
        Some(Kind::BoolValue(b)) => json!(b),
        Some(Kind::IntValue(i)) => json!(i),
        Some(Kind::DoubleValue(d)) => json!(d),
        Some(Kind::DecimalValue(d)) | Some(Kind::StringValue(d)) => json!(d),
        Some(Kind::BytesValue(b)) => json!(hex::encode(b)),
        Some(Kind::DateValue(d)) => json!(date(*d)),
        Some(Kind::TimeValue(t)) => json!(time(*t)),
        Some(Kind::TimestampValue(t)) => json!(timestamp(t, false)),
        Some(Kind::InstantValue(t)) => json!(timestamp(t, true)),
        Some(Kind::ArrayValue(a)) => Json::Array(a.elements.iter().map(json).collect()),
        Some(Kind::MapValue(m)) => Json::Array(
            m.entries
                .iter()
                .map(|e| {
                    json!({
                        "key": e.key.as_ref().map_or(Json::Null, json),
                        "value": e.value.as_ref().map_or(Json::Null, json),
                    })
                })
                .collect(),
        ),
        Some(Kind::RowValue(r)) => Json::Array(r.fields.iter().map(json).collect()),
    }
}

/// The short name of a row kind: `+I`, `-U`, `+U`, `-D` (Flink's notation).
pub(crate) fn row_kind(kind: i32) -> &'static str {
    match proto::RowKind::try_from(kind) {
        Ok(proto::RowKind::UpdateBefore) => "-U",
        Ok(proto::RowKind::UpdateAfter) => "+U",
        Ok(proto::RowKind::Delete) => "-D",
        _ => "+I",
    }
}

/// A row as a JSON object of its columns, with its kind under `"$kind"` when not an insert.
pub(crate) fn json_row(columns: &[String], row: &proto::Row) -> Json {
    let mut object = Map::new();
    for (name, value) in columns.iter().zip(&row.values) {
        object.insert(name.clone(), json(value));
    }
    let kind = row_kind(row.kind);
    if kind != "+I" {
        object.insert("$kind".to_owned(), json!(kind));
    }
    Json::Object(object)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(kind: Kind) -> proto::Value {
        proto::Value { kind: Some(kind) }
    }

    #[test]
    fn values_read_as_text_and_json() {
        let stamp = prost_types::Timestamp {
            seconds: 1_700_000_000,
            nanos: 500_000_000,
        };
        for (value, as_text, as_json) in [
            (v(Kind::IntValue(-3)), "-3", json!(-3)),
            (v(Kind::DecimalValue("1.50".into())), "1.50", json!("1.50")),
            (
                v(Kind::DateValue(19_723)),
                "2024-01-01",
                json!("2024-01-01"),
            ),
            (
                v(Kind::TimeValue(3_723_000_000_000)),
                "01:02:03",
                json!("01:02:03"),
            ),
            (
                v(Kind::TimestampValue(stamp)),
                "2023-11-14 22:13:20.500",
                json!("2023-11-14 22:13:20.500"),
            ),
            (
                v(Kind::InstantValue(stamp)),
                "2023-11-14T22:13:20.500Z",
                json!("2023-11-14T22:13:20.500Z"),
            ),
            (
                v(Kind::BytesValue(vec![0xca, 0xfe])),
                "x'cafe'",
                json!("cafe"),
            ),
            (proto::Value { kind: None }, "NULL", Json::Null),
            (
                v(Kind::ArrayValue(proto::ArrayValue {
                    elements: vec![v(Kind::IntValue(1)), v(Kind::IntValue(2))],
                })),
                "[1, 2]",
                json!([1, 2]),
            ),
        ] {
            assert_eq!(text(&value), as_text);
            assert_eq!(json(&value), as_json);
        }
    }

    /// The cases the web console checks itself against too.
    #[test]
    fn values_read_as_the_shared_cases_say() {
        let fixture: Json =
            serde_json::from_str(include_str!("../../../tests/fixtures/value-text.json")).unwrap();
        let stamp = |value: &str| {
            let (seconds, nanos) = value.split_once(':').unwrap();
            prost_types::Timestamp {
                seconds: seconds.parse().unwrap(),
                nanos: nanos.parse().unwrap(),
            }
        };
        let cases = fixture["cases"].as_array().unwrap();
        assert!(cases.len() > 20);
        for case in cases {
            let value = case["value"].as_str().unwrap();
            let kind = match case["type"].as_str().unwrap() {
                "double" => Kind::DoubleValue(value.parse().unwrap()),
                "date" => Kind::DateValue(value.parse().unwrap()),
                "time" => Kind::TimeValue(value.parse().unwrap()),
                "timestamp" => Kind::TimestampValue(stamp(value)),
                "instant" => Kind::InstantValue(stamp(value)),
                other => panic!("unknown type {other}"),
            };
            assert_eq!(text(&v(kind)), case["text"].as_str().unwrap(), "{case}");
        }
    }
}

/// A statement's table on the client: a snapshot's rows and the changes after it applied
/// (+I and +U add a row, -U and -D take one away), in the order rows first appeared.
#[derive(Default)]
pub(crate) struct Table {
    rows: Vec<(proto::Row, u64)>,
    index: std::collections::HashMap<Vec<u8>, usize>,
}

impl Table {
    /// Applies changelog rows.
    pub(crate) fn apply(&mut self, rows: &[proto::Row]) {
        use prost::Message as _;
        for row in rows {
            let key = proto::Row {
                kind: 0,
                values: row.values.clone(),
            }
            .encode_to_vec();
            let retracts = matches!(
                proto::RowKind::try_from(row.kind),
                Ok(proto::RowKind::UpdateBefore | proto::RowKind::Delete)
            );
            match (self.index.get(&key), retracts) {
                (Some(&at), true) => {
                    self.rows[at].1 = self.rows[at].1.saturating_sub(1);
                }
                (Some(&at), false) => self.rows[at].1 += 1,
                (None, true) => {}
                (None, false) => {
                    self.index.insert(key, self.rows.len());
                    self.rows.push((
                        proto::Row {
                            kind: proto::RowKind::Insert as i32,
                            values: row.values.clone(),
                        },
                        1,
                    ));
                }
            }
        }
    }

    /// The rows the table holds now, each as many times as it is held.
    pub(crate) fn current(&self) -> Vec<proto::Row> {
        self.rows
            .iter()
            .flat_map(|(row, count)| std::iter::repeat_n(row.clone(), *count as usize))
            .collect()
    }

    /// The rows the table holds, each as many times as it is held.
    pub(crate) fn rows(self) -> Vec<proto::Row> {
        self.rows
            .into_iter()
            .flat_map(|(row, count)| std::iter::repeat_n(row, count as usize))
            .collect()
    }
}
