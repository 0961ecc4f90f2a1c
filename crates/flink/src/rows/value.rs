//! Converts the JSON text of one value into a typed protobuf value, by the value's logical
//! type: scalars from their raw text, ARRAY, MAP, MULTISET and ROW element by element. An
//! error inside a composite value carries the path to the offending part.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use flinkbroker_proto::{self as proto, value::Kind};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::RowError;
use super::decimal::{decimal_text, write_decimal};
use super::encoded::ValueWriter;
use super::temporal::{parse_date, parse_time, parse_timestamp};
use crate::sql_gateway::LogicalTypeJson;
use crate::sql_gateway::wire::RowFieldJson;

/// The longest piece of offending JSON quoted in an error.
const MAX_QUOTED_CHARS: usize = 64;

// ---------------------------------------------------------------------------------------------
// Errors inside a value, with the path to the offending part.

enum PathSegment {
    Index(usize),
    Field(String),
    Key(String),
}

enum ValueErrorKind {
    Invalid { expected: String, got: String },
    Unsupported { type_root: String },
}

pub(super) struct ValueError {
    /// Innermost segment first: each enclosing value pushes its own on the way out.
    path: Vec<PathSegment>,
    kind: ValueErrorKind,
}

impl ValueError {
    fn invalid(text: &str, t: &LogicalTypeJson) -> ValueError {
        ValueError {
            path: Vec::new(),
            kind: ValueErrorKind::Invalid {
                expected: expectation(t),
                got: quote_excerpt(text),
            },
        }
    }

    fn unsupported(t: &LogicalTypeJson) -> ValueError {
        ValueError {
            path: Vec::new(),
            kind: ValueErrorKind::Unsupported {
                type_root: t.type_root.clone(),
            },
        }
    }

    fn at(mut self, segment: PathSegment) -> ValueError {
        self.path.push(segment);
        self
    }

    pub(super) fn into_row_error(self, base: &str) -> RowError {
        let mut column = base.to_owned();
        for segment in self.path.iter().rev() {
            match segment {
                PathSegment::Index(i) => column.push_str(&format!("[{i}]")),
                PathSegment::Field(name) => {
                    column.push('.');
                    column.push_str(name);
                }
                PathSegment::Key(key) => column.push_str(&format!("[{key:?}]")),
            }
        }
        match self.kind {
            ValueErrorKind::Invalid { expected, got } => RowError::InvalidValue {
                column,
                expected,
                got,
            },
            ValueErrorKind::Unsupported { type_root } => {
                RowError::UnsupportedType { column, type_root }
            }
        }
    }
}

fn expectation(t: &LogicalTypeJson) -> String {
    let root = t.type_root.as_str();
    let what = match root {
        "TINYINT"
        | "SMALLINT"
        | "INTEGER"
        | "BIGINT"
        | "FLOAT"
        | "DOUBLE"
        | "DECIMAL"
        | "INTERVAL_YEAR_MONTH"
        | "INTERVAL_DAY_TIME" => "number",
        "CHAR" | "VARCHAR" => "string",
        "BINARY" | "VARBINARY" => "base64 string",
        "DATE" => "string like 2024-01-02",
        "TIME_WITHOUT_TIME_ZONE" => "string like 03:04:05",
        "TIMESTAMP_WITHOUT_TIME_ZONE" => "string like 2024-01-02T03:04:05.678",
        "TIMESTAMP_WITH_LOCAL_TIME_ZONE" | "TIMESTAMP_WITH_TIME_ZONE" => {
            "string like 2024-01-02T03:04:05.678Z"
        }
        "MAP" | "MULTISET" => "object",
        "ROW" => "object or array",
        "NULL" => "null",
        _ => "value",
    };
    let article = if root.starts_with(['A', 'E', 'I', 'O', 'U']) {
        "an"
    } else {
        "a"
    };
    if root == "NULL" {
        return "null".to_owned();
    }
    if root == "BOOLEAN" || root == "ARRAY" {
        return format!("{article} {root}");
    }
    format!("{article} {root} {what}")
}

fn quote_excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_QUOTED_CHARS) {
        Some((at, _)) => format!("{}...", &text[..at]),
        None => text.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// Values.

pub(super) fn value(kind: Kind) -> proto::Value {
    proto::Value { kind: Some(kind) }
}

pub(super) fn null_value() -> proto::Value {
    value(Kind::NullValue(proto::NullValue::NullValue as i32))
}

/// How a value of one logical type is read: the type's root, decided once per column of a
/// page rather than once per value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ValuePlan {
    Integer,
    String,
    Double,
    Decimal { scale: Option<usize> },
    Boolean,
    Timestamp,
    Instant,
    Date,
    Time,
    Bytes,
    Array,
    Map,
    Multiset,
    Row,
    Null,
    Unsupported,
}

impl ValuePlan {
    pub(super) fn of(t: &LogicalTypeJson) -> ValuePlan {
        match t.type_root.as_str() {
            "INTEGER"
            | "BIGINT"
            | "SMALLINT"
            | "TINYINT"
            | "INTERVAL_YEAR_MONTH"
            | "INTERVAL_DAY_TIME" => ValuePlan::Integer,
            "VARCHAR" | "CHAR" => ValuePlan::String,
            "DOUBLE" | "FLOAT" => ValuePlan::Double,
            "DECIMAL" => ValuePlan::Decimal {
                scale: t.scale.and_then(|s| usize::try_from(s).ok()),
            },
            "BOOLEAN" => ValuePlan::Boolean,
            "TIMESTAMP_WITHOUT_TIME_ZONE" => ValuePlan::Timestamp,
            "TIMESTAMP_WITH_LOCAL_TIME_ZONE" | "TIMESTAMP_WITH_TIME_ZONE" => ValuePlan::Instant,
            "DATE" => ValuePlan::Date,
            "TIME_WITHOUT_TIME_ZONE" => ValuePlan::Time,
            "BINARY" | "VARBINARY" => ValuePlan::Bytes,
            "ARRAY" => ValuePlan::Array,
            "MAP" => ValuePlan::Map,
            "MULTISET" => ValuePlan::Multiset,
            "ROW" => ValuePlan::Row,
            "NULL" => ValuePlan::Null,
            _ => ValuePlan::Unsupported,
        }
    }
}

/// Converts the raw JSON text of one value.
pub(super) fn convert_json(text: &str, t: &LogicalTypeJson) -> Result<proto::Value, ValueError> {
    convert_planned(text.trim(), ValuePlan::of(t), t)
}

/// Converts the JSON text of one value of type `t`, read as `plan` (`ValuePlan::of(t)`). The
/// text has no surrounding whitespace, as serde_json's raw values never have.
pub(super) fn convert_planned(
    text: &str,
    plan: ValuePlan,
    t: &LogicalTypeJson,
) -> Result<proto::Value, ValueError> {
    if text == "null" {
        return Ok(null_value());
    }
    let invalid = || ValueError::invalid(text, t);
    let kind = match plan {
        ValuePlan::Integer => Kind::IntValue(parse_integer(text).ok_or_else(invalid)?),
        ValuePlan::String => Kind::StringValue(json_string(text).ok_or_else(invalid)?.into_owned()),
        ValuePlan::Double => Kind::DoubleValue(parse_double(text).ok_or_else(invalid)?),
        ValuePlan::Decimal { scale } => {
            let number = numeric_text(text).ok_or_else(invalid)?;
            Kind::DecimalValue(decimal_text(number, scale).ok_or_else(invalid)?)
        }
        ValuePlan::Boolean => match text {
            "true" => Kind::BoolValue(true),
            "false" => Kind::BoolValue(false),
            _ => return Err(invalid()),
        },
        ValuePlan::Timestamp => {
            let s = json_string(text).ok_or_else(invalid)?;
            let (seconds, nanos) = parse_timestamp(&s, false).ok_or_else(invalid)?;
            Kind::TimestampValue(prost_types::Timestamp { seconds, nanos })
        }
        ValuePlan::Instant => {
            let s = json_string(text).ok_or_else(invalid)?;
            let (seconds, nanos) = parse_timestamp(&s, true).ok_or_else(invalid)?;
            Kind::InstantValue(prost_types::Timestamp { seconds, nanos })
        }
        ValuePlan::Date => {
            let s = json_string(text).ok_or_else(invalid)?;
            Kind::DateValue(parse_date(&s).ok_or_else(invalid)?)
        }
        ValuePlan::Time => {
            let s = json_string(text).ok_or_else(invalid)?;
            Kind::TimeValue(parse_time(&s).ok_or_else(invalid)?)
        }
        ValuePlan::Bytes => {
            let s = json_string(text).ok_or_else(invalid)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|_| invalid())?;
            Kind::BytesValue(bytes)
        }
        ValuePlan::Array => {
            let element_type = t
                .element_type
                .as_deref()
                .ok_or_else(|| ValueError::unsupported(t))?;
            Kind::ArrayValue(
                convert_array(text, element_type).map_err(|e| e.unwrap_or_else(invalid))?,
            )
        }
        ValuePlan::Map => {
            let (Some(key_type), Some(value_type)) =
                (t.key_type.as_deref(), t.value_type.as_deref())
            else {
                return Err(ValueError::unsupported(t));
            };
            Kind::MapValue(
                convert_map(text, key_type, value_type).map_err(|e| e.unwrap_or_else(invalid))?,
            )
        }
        ValuePlan::Multiset => {
            let element_type = t
                .element_type
                .as_deref()
                .ok_or_else(|| ValueError::unsupported(t))?;
            if text.starts_with('[') {
                Kind::ArrayValue(
                    convert_array(text, element_type).map_err(|e| e.unwrap_or_else(invalid))?,
                )
            } else {
                Kind::MapValue(
                    convert_map(text, element_type, &multiset_count_type())
                        .map_err(|e| e.unwrap_or_else(invalid))?,
                )
            }
        }
        ValuePlan::Row => {
            let fields = t.fields.as_deref().unwrap_or_default();
            Kind::RowValue(convert_row_value(text, fields).map_err(|e| e.unwrap_or_else(invalid))?)
        }
        // The NULL type has only one value, and it was handled above.
        ValuePlan::Null => return Err(invalid()),
        ValuePlan::Unsupported => return Err(ValueError::unsupported(t)),
    };
    Ok(value(kind))
}

/// Writes the `Value` that [`convert_planned`] gives for `text` straight into `out`, byte for
/// byte as prost encodes it. The page's one pass reads strings, booleans, dates and times by
/// their JSON type (`typed`) and leaves the rest here: numbers without building the value
/// (`scratch` holds a decimal's text on its way), everything else converted and then encoded.
pub(super) fn encode_planned(
    text: &str,
    plan: ValuePlan,
    t: &LogicalTypeJson,
    out: ValueWriter<'_>,
    scratch: &mut String,
) -> Result<(), ValueError> {
    use super::encoded::value_field::{DECIMAL, DOUBLE, INT};
    if text == "null" {
        out.null();
        return Ok(());
    }
    let invalid = || ValueError::invalid(text, t);
    match plan {
        // Negative int64 and int32 values are sign-extended to ten bytes, as prost writes them.
        ValuePlan::Integer => out.varint(INT, parse_integer(text).ok_or_else(invalid)? as u64),
        ValuePlan::Double => out.double(DOUBLE, parse_double(text).ok_or_else(invalid)?),
        ValuePlan::Decimal { scale } => {
            let number = numeric_text(text).ok_or_else(invalid)?;
            scratch.clear();
            write_decimal(number, scale, scratch).ok_or_else(invalid)?;
            out.bytes(DECIMAL, scratch.as_bytes());
        }
        _ => out.message(&convert_planned(text, plan, t)?),
    }
    Ok(())
}

/// The count of a MULTISET element (Flink writes a multiset as `{"element": count}`).
fn multiset_count_type() -> LogicalTypeJson {
    LogicalTypeJson {
        type_root: "INTEGER".to_owned(),
        nullable: false,
        length: None,
        precision: None,
        scale: None,
        element_type: None,
        key_type: None,
        value_type: None,
        fields: None,
    }
}

/// Errors of composite values: `None` when the value itself has the wrong shape (the caller
/// reports it against its own type), `Some` for an error inside an element.
type CompositeResult<T> = Result<T, Option<ValueError>>;

fn convert_array(text: &str, element_type: &LogicalTypeJson) -> CompositeResult<proto::ArrayValue> {
    let elements: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| None)?;
    let mut converted = Vec::with_capacity(elements.len());
    for (index, element) in elements.into_iter().enumerate() {
        let v = convert_json(element.get(), element_type)
            .map_err(|e| Some(e.at(PathSegment::Index(index))))?;
        converted.push(v);
    }
    Ok(proto::ArrayValue {
        elements: converted,
    })
}

fn convert_map(
    text: &str,
    key_type: &LogicalTypeJson,
    value_type: &LogicalTypeJson,
) -> CompositeResult<proto::MapValue> {
    let mut entries = Vec::new();
    if text.starts_with('{') {
        let object: ObjectEntries<'_> = serde_json::from_str(text).map_err(|_| None)?;
        entries.reserve(object.0.len());
        for (key, raw) in object.0 {
            let k = convert_key(&key, key_type)
                .map_err(|e| Some(e.at(PathSegment::Key(key.clone().into_owned()))))?;
            let v = convert_json(raw.get(), value_type)
                .map_err(|e| Some(e.at(PathSegment::Key(key.into_owned()))))?;
            entries.push(proto::MapEntry {
                key: Some(k),
                value: Some(v),
            });
        }
    } else {
        // An array of entries, each `{"key": k, "value": v}` or `[k, v]`.
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| None)?;
        entries.reserve(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let (raw_key, raw_value) = map_entry_parts(item.get()).ok_or(None)?;
            let k = convert_json(raw_key, key_type)
                .map_err(|e| Some(e.at(PathSegment::Index(index))))?;
            let v = convert_json(raw_value, value_type)
                .map_err(|e| Some(e.at(PathSegment::Index(index))))?;
            entries.push(proto::MapEntry {
                key: Some(k),
                value: Some(v),
            });
        }
    }
    Ok(proto::MapValue { entries })
}

fn map_entry_parts(text: &str) -> Option<(&str, &str)> {
    let text = text.trim();
    if text.starts_with('[') {
        let pair: Vec<&RawValue> = serde_json::from_str(text).ok()?;
        match pair.as_slice() {
            [k, v] => Some((k.get(), v.get())),
            _ => None,
        }
    } else {
        let object: ObjectEntries<'_> = serde_json::from_str(text).ok()?;
        let find = |name: &str| {
            object
                .0
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.get())
        };
        Some((find("key")?, find("value")?))
    }
}

/// Converts a map key: JSON object keys are always strings, so the text is read by the key
/// type (`"1"` for an INT key is the number 1; the literal `null` is SQL NULL).
fn convert_key(key: &str, key_type: &LogicalTypeJson) -> Result<proto::Value, ValueError> {
    match key_type.type_root.as_str() {
        "CHAR" | "VARCHAR" => Ok(value(Kind::StringValue(key.to_owned()))),
        "TINYINT"
        | "SMALLINT"
        | "INTEGER"
        | "BIGINT"
        | "FLOAT"
        | "DOUBLE"
        | "DECIMAL"
        | "BOOLEAN"
        | "INTERVAL_YEAR_MONTH"
        | "INTERVAL_DAY_TIME" => convert_json(key, key_type),
        _ => {
            let quoted =
                serde_json::to_string(key).map_err(|_| ValueError::invalid(key, key_type))?;
            convert_json(&quoted, key_type)
        }
    }
}

fn convert_row_value(text: &str, fields: &[RowFieldJson]) -> CompositeResult<proto::RowValue> {
    let mut converted = Vec::with_capacity(fields.len());
    if text.starts_with('{') {
        let object: ObjectEntries<'_> = serde_json::from_str(text).map_err(|_| None)?;
        for field in fields {
            let raw = object
                .0
                .iter()
                .find(|(name, _)| *name == field.name)
                .map(|(_, raw)| raw.get());
            let v = match raw {
                Some(raw) => convert_json(raw, &field.field_type)
                    .map_err(|e| Some(e.at(PathSegment::Field(field.name.clone()))))?,
                None => null_value(),
            };
            converted.push(v);
        }
    } else {
        let items: Vec<&RawValue> = serde_json::from_str(text).map_err(|_| None)?;
        if items.len() != fields.len() {
            return Err(None);
        }
        for (raw, field) in items.into_iter().zip(fields) {
            let v = convert_json(raw.get(), &field.field_type)
                .map_err(|e| Some(e.at(PathSegment::Field(field.name.clone()))))?;
            converted.push(v);
        }
    }
    Ok(proto::RowValue { fields: converted })
}

/// The entries of a JSON object in document order, values kept raw, keys borrowed when they
/// need no unescaping.
struct ObjectEntries<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

impl<'de> Deserialize<'de> for ObjectEntries<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntriesVisitor;

        impl<'de> Visitor<'de> for EntriesVisitor {
            type Value = ObjectEntries<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(ObjectKey(key)) = map.next_key::<ObjectKey<'de>>()? {
                    let raw: &'de RawValue = map.next_value()?;
                    entries.push((key, raw));
                }
                Ok(ObjectEntries(entries))
            }
        }

        deserializer.deserialize_map(EntriesVisitor)
    }
}

struct ObjectKey<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for ObjectKey<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = ObjectKey<'de>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string key")
            }

            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(ObjectKey(Cow::Borrowed(v)))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(ObjectKey(Cow::Owned(v.to_owned())))
            }

            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(ObjectKey(Cow::Owned(v)))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

// ---------------------------------------------------------------------------------------------
// Scalars, parsed from their raw text.

/// The content of a JSON string token, unescaped only when it contains escapes.
fn json_string(text: &str) -> Option<Cow<'_, str>> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    // A plain loop: these strings are short, too short for memchr to pay off.
    if inner.bytes().any(|b| b == b'\\') {
        serde_json::from_str::<String>(text).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

/// A JSON number token, or the content of a string holding one.
fn numeric_text(text: &str) -> Option<&str> {
    match text.strip_prefix('"') {
        Some(rest) => rest.strip_suffix('"'),
        None => Some(text),
    }
}

fn parse_integer(text: &str) -> Option<i64> {
    numeric_text(text)?.parse().ok()
}

fn parse_double(text: &str) -> Option<f64> {
    let number = numeric_text(text)?;
    match number {
        "NaN" => Some(f64::NAN),
        "Infinity" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ if number.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => number.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::super::test_support::{convert, int, kind, string};

    #[test]
    fn integers_cover_their_ranges() {
        let bigint = r#"{"type":"BIGINT","nullable":false}"#;
        assert_eq!(
            kind("9223372036854775807", bigint),
            Kind::IntValue(i64::MAX)
        );
        assert_eq!(
            kind("-9223372036854775808", bigint),
            Kind::IntValue(i64::MIN)
        );
        assert_eq!(
            kind("-128", r#"{"type":"TINYINT","nullable":false}"#),
            Kind::IntValue(-128)
        );
        assert_eq!(
            kind("32767", r#"{"type":"SMALLINT","nullable":false}"#),
            Kind::IntValue(32767)
        );
        assert_eq!(
            kind("-959493302", r#"{"type":"INTEGER","nullable":true}"#),
            Kind::IntValue(-959_493_302)
        );
        assert_eq!(
            kind(
                "14",
                r#"{"type":"INTERVAL_YEAR_MONTH","nullable":false,"precision":2,"resolution":"YEAR_TO_MONTH"}"#
            ),
            Kind::IntValue(14)
        );
    }

    #[test]
    fn doubles_accept_the_special_values_written_as_strings() {
        let double = r#"{"type":"DOUBLE","nullable":true}"#;
        assert!(matches!(kind("\"NaN\"", double), Kind::DoubleValue(v) if v.is_nan()));
        assert_eq!(
            kind("\"Infinity\"", double),
            Kind::DoubleValue(f64::INFINITY)
        );
        assert_eq!(
            kind("\"-Infinity\"", double),
            Kind::DoubleValue(f64::NEG_INFINITY)
        );
        assert_eq!(
            kind("60.240259610903415", double),
            Kind::DoubleValue(60.240259610903415)
        );
        assert_eq!(kind("-1.0E-10", double), Kind::DoubleValue(-1.0e-10));
        assert_eq!(
            kind("1.1", r#"{"type":"FLOAT","nullable":true}"#),
            Kind::DoubleValue(1.1)
        );
    }

    #[test]
    fn strings_are_unescaped() {
        let varchar = r#"{"type":"VARCHAR","nullable":true,"length":2147483647}"#;
        assert_eq!(
            kind(r#""SELECT `t`.`id`\nFROM \"x\" \u00e9""#, varchar),
            Kind::StringValue("SELECT `t`.`id`\nFROM \"x\" é".to_owned())
        );
        assert_eq!(kind(r#""""#, varchar), Kind::StringValue(String::new()));
    }

    #[test]
    fn maps_rows_and_multisets_in_their_other_shapes() {
        let int_map = r#"{"type":"MAP","nullable":true,"keyType":{"type":"INTEGER","nullable":false},"valueType":{"type":"VARCHAR","nullable":true,"length":5}}"#;
        assert_eq!(
            kind(r#"{"1":"a","2":null}"#, int_map),
            Kind::MapValue(proto::MapValue {
                entries: vec![
                    proto::MapEntry {
                        key: Some(int(1)),
                        value: Some(string("a"))
                    },
                    proto::MapEntry {
                        key: Some(int(2)),
                        value: Some(null_value())
                    },
                ]
            })
        );
        assert_eq!(
            kind(r#"[{"key":3,"value":"c"},[4,"d"]]"#, int_map),
            Kind::MapValue(proto::MapValue {
                entries: vec![
                    proto::MapEntry {
                        key: Some(int(3)),
                        value: Some(string("c"))
                    },
                    proto::MapEntry {
                        key: Some(int(4)),
                        value: Some(string("d"))
                    },
                ]
            })
        );
        let date_map = r#"{"type":"MAP","nullable":true,"keyType":{"type":"DATE","nullable":false},"valueType":{"type":"INTEGER","nullable":true}}"#;
        assert_eq!(
            kind(r#"{"1970-01-02":5}"#, date_map),
            Kind::MapValue(proto::MapValue {
                entries: vec![proto::MapEntry {
                    key: Some(value(Kind::DateValue(1))),
                    value: Some(int(5))
                }]
            })
        );

        let row = r#"{"type":"ROW","nullable":true,"fields":[{"name":"a","fieldType":{"type":"INTEGER","nullable":true}},{"name":"b","fieldType":{"type":"VARCHAR","nullable":true,"length":3}}]}"#;
        // Object fields come back in the type's order, whatever the JSON order.
        assert_eq!(
            kind(r#"{"b":"x","a":1}"#, row),
            Kind::RowValue(proto::RowValue {
                fields: vec![int(1), string("x")]
            })
        );
        assert_eq!(
            kind(r#"[2,"y"]"#, row),
            Kind::RowValue(proto::RowValue {
                fields: vec![int(2), string("y")]
            })
        );
        assert_eq!(
            kind(r#"{"a":3}"#, row),
            Kind::RowValue(proto::RowValue {
                fields: vec![int(3), null_value()]
            })
        );

        let multiset = r#"{"type":"MULTISET","nullable":true,"elementType":{"type":"VARCHAR","nullable":true,"length":3}}"#;
        assert_eq!(
            kind(r#"{"x":2}"#, multiset),
            Kind::MapValue(proto::MapValue {
                entries: vec![proto::MapEntry {
                    key: Some(string("x")),
                    value: Some(int(2))
                }]
            })
        );

        let nested = r#"{"type":"ARRAY","nullable":true,"elementType":{"type":"ARRAY","nullable":true,"elementType":{"type":"DECIMAL","nullable":true,"precision":5,"scale":1}}}"#;
        assert_eq!(
            kind("[[1.5,null],[]]", nested),
            Kind::ArrayValue(proto::ArrayValue {
                elements: vec![
                    value(Kind::ArrayValue(proto::ArrayValue {
                        elements: vec![value(Kind::DecimalValue("1.5".to_owned())), null_value()]
                    })),
                    value(Kind::ArrayValue(proto::ArrayValue { elements: vec![] })),
                ]
            })
        );
    }

    #[test]
    fn invalid_scalars_are_rejected() {
        assert!(convert("\"2024-02-30\"", r#"{"type":"DATE"}"#).is_err());
        assert!(convert("\"2024-1-02\"", r#"{"type":"DATE"}"#).is_err());
        assert!(convert("\"24:00:00\"", r#"{"type":"TIME_WITHOUT_TIME_ZONE"}"#).is_err());
        assert!(
            convert(
                "\"03:04:05.1234567891\"",
                r#"{"type":"TIME_WITHOUT_TIME_ZONE"}"#
            )
            .is_err()
        );
        assert!(
            convert(
                "\"2024-01-02T03:04:05Z\"",
                r#"{"type":"TIMESTAMP_WITHOUT_TIME_ZONE"}"#
            )
            .is_err()
        );
        assert!(convert("\"not base64!\"", r#"{"type":"VARBINARY"}"#).is_err());
        assert!(convert("1", r#"{"type":"BOOLEAN"}"#).is_err());
        assert!(convert("1.5", r#"{"type":"BIGINT"}"#).is_err());
        assert!(
            convert(
                "\"1E+99999\"",
                r#"{"type":"DECIMAL","precision":10,"scale":2}"#
            )
            .is_err()
        );
        assert!(convert("\"1..2\"", r#"{"type":"DECIMAL","precision":10,"scale":2}"#).is_err());
        assert!(convert("\"abc\"", r#"{"type":"DOUBLE"}"#).is_err());
        assert!(convert("1", r#"{"type":"NULL"}"#).is_err());
        assert_eq!(
            convert("\"x\"", r#"{"type":"RAW","nullable":true}"#),
            Err(RowError::UnsupportedType {
                column: "value".to_owned(),
                type_root: "RAW".to_owned(),
            })
        );
        // NULL is accepted for every type, even ones the broker cannot otherwise represent.
        assert_eq!(convert("null", r#"{"type":"RAW"}"#), Ok(null_value()));
    }

    #[test]
    fn long_values_are_shortened_in_errors() {
        let long = format!("\"{}\"", "z".repeat(500));
        match convert(&long, r#"{"type":"INTEGER"}"#) {
            Err(RowError::InvalidValue { got, .. }) => assert!(got.len() < 80),
            other => panic!("{other:?}"),
        }
    }
}
