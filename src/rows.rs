//! Converts the SQL Gateway's JSON rows and logical types into protobuf.
//!
//! The gateway writes rows with Flink's JSON format: integers and floats as JSON numbers
//! (NaN and infinities as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`), DECIMAL as a
//! normalised number that may lose trailing zeros or use an exponent (`1.5` for 1.50, `1E+2`
//! for 100), BINARY as base64, DATE / TIME / TIMESTAMP as ISO-8601 text, MAP and MULTISET as
//! objects keyed by the key text, ROW as an object keyed by field name. Values are read
//! straight from their raw JSON text; no `serde_json::Value` tree is built.
//!
//! A MULTISET becomes a `map_value` from each distinct element to its count (the form Flink
//! writes); MAP and ROW are also accepted in array form (`[[k, v], ...]`, `[f1, f2]`).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;
use thiserror::Error;

use crate::proto::{self, value::Kind};
use crate::sql_gateway::wire::RowFieldJson;
use crate::sql_gateway::{ColumnInfo, LogicalTypeJson, RowData, RowKindJson};

/// A row or value the broker could not convert.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RowError {
    /// The JSON value does not fit the column's type.
    #[error("column {column}: expected {expected}, got {got}")]
    InvalidValue {
        column: String,
        expected: String,
        got: String,
    },
    /// The column's type is one the broker cannot represent.
    #[error("column {column}: type {type_root} is not supported")]
    UnsupportedType { column: String, type_root: String },
    /// The row does not have one field per column.
    #[error("row has {fields} fields but the result has {columns} columns")]
    FieldCount { fields: usize, columns: usize },
}

/// The longest piece of offending JSON quoted in an error.
const MAX_QUOTED_CHARS: usize = 64;

/// The largest decimal exponent accepted; Flink's DECIMAL has at most 38 digits.
const MAX_DECIMAL_EXPONENT: i64 = 400;

const NANOS_PER_SECOND: i64 = 1_000_000_000;
const SECONDS_PER_DAY: i64 = 86_400;

/// Converts a Flink logical type into its protobuf form, with its Flink SQL text.
pub fn logical_type_to_proto(t: &LogicalTypeJson) -> proto::LogicalType {
    proto::LogicalType {
        type_root: t.type_root.clone(),
        nullable: t.nullable,
        length: t.length,
        precision: t.precision,
        scale: t.scale,
        element_type: t
            .element_type
            .as_deref()
            .map(|e| Box::new(logical_type_to_proto(e))),
        key_type: t
            .key_type
            .as_deref()
            .map(|k| Box::new(logical_type_to_proto(k))),
        value_type: t
            .value_type
            .as_deref()
            .map(|v| Box::new(logical_type_to_proto(v))),
        fields: t
            .fields
            .iter()
            .flatten()
            .map(|f| proto::RowField {
                name: f.name.clone(),
                r#type: Some(logical_type_to_proto(&f.field_type)),
            })
            .collect(),
        sql: logical_type_sql(t),
    }
}

/// Converts result columns into the schema message.
pub fn schema_to_proto(columns: &[ColumnInfo]) -> proto::ResultSchema {
    proto::ResultSchema {
        columns: columns
            .iter()
            .map(|c| proto::Column {
                name: c.name.clone(),
                r#type: Some(logical_type_to_proto(&c.logical_type)),
            })
            .collect(),
    }
}

/// Converts Flink's row kind.
pub fn row_kind_to_proto(kind: RowKindJson) -> proto::RowKind {
    match kind {
        RowKindJson::Insert => proto::RowKind::Insert,
        RowKindJson::UpdateBefore => proto::RowKind::UpdateBefore,
        RowKindJson::UpdateAfter => proto::RowKind::UpdateAfter,
        RowKindJson::Delete => proto::RowKind::Delete,
    }
}

/// Converts one row, one value per column, in column order.
pub fn convert_row(row: &RowData, columns: &[ColumnInfo]) -> Result<proto::Row, RowError> {
    if row.fields.len() != columns.len() {
        return Err(RowError::FieldCount {
            fields: row.fields.len(),
            columns: columns.len(),
        });
    }
    let mut values = Vec::with_capacity(columns.len());
    for (field, column) in row.fields.iter().zip(columns) {
        let value = convert_json(field.get(), &column.logical_type)
            .map_err(|e| e.into_row_error(&column.name))?;
        values.push(value);
    }
    Ok(proto::Row {
        kind: row_kind_to_proto(row.kind) as i32,
        values,
    })
}

/// Converts one raw JSON value of type `t`. Errors name the value `value` (with the path
/// inside it, e.g. `value[1].x`); `convert_row` names the column instead.
pub fn convert_value(raw: &RawValue, t: &LogicalTypeJson) -> Result<proto::Value, RowError> {
    convert_json(raw.get(), t).map_err(|e| e.into_row_error("value"))
}

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

struct ValueError {
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

    fn into_row_error(self, base: &str) -> RowError {
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

fn value(kind: Kind) -> proto::Value {
    proto::Value { kind: Some(kind) }
}

fn null_value() -> proto::Value {
    value(Kind::NullValue(proto::NullValue::NullValue as i32))
}

/// Converts the raw JSON text of one value.
fn convert_json(text: &str, t: &LogicalTypeJson) -> Result<proto::Value, ValueError> {
    let text = text.trim();
    if text == "null" {
        return Ok(null_value());
    }
    let invalid = || ValueError::invalid(text, t);
    let kind = match t.type_root.as_str() {
        "INTEGER"
        | "BIGINT"
        | "SMALLINT"
        | "TINYINT"
        | "INTERVAL_YEAR_MONTH"
        | "INTERVAL_DAY_TIME" => Kind::IntValue(parse_integer(text).ok_or_else(invalid)?),
        "VARCHAR" | "CHAR" => {
            Kind::StringValue(json_string(text).ok_or_else(invalid)?.into_owned())
        }
        "DOUBLE" | "FLOAT" => Kind::DoubleValue(parse_double(text).ok_or_else(invalid)?),
        "DECIMAL" => {
            let number = numeric_text(text).ok_or_else(invalid)?;
            let scale = t.scale.and_then(|s| usize::try_from(s).ok());
            Kind::DecimalValue(decimal_text(number, scale).ok_or_else(invalid)?)
        }
        "BOOLEAN" => match text {
            "true" => Kind::BoolValue(true),
            "false" => Kind::BoolValue(false),
            _ => return Err(invalid()),
        },
        "TIMESTAMP_WITHOUT_TIME_ZONE" => {
            let s = json_string(text).ok_or_else(invalid)?;
            let (seconds, nanos) = parse_timestamp(&s, false).ok_or_else(invalid)?;
            Kind::TimestampValue(prost_types::Timestamp { seconds, nanos })
        }
        "TIMESTAMP_WITH_LOCAL_TIME_ZONE" | "TIMESTAMP_WITH_TIME_ZONE" => {
            let s = json_string(text).ok_or_else(invalid)?;
            let (seconds, nanos) = parse_timestamp(&s, true).ok_or_else(invalid)?;
            Kind::InstantValue(prost_types::Timestamp { seconds, nanos })
        }
        "DATE" => {
            let s = json_string(text).ok_or_else(invalid)?;
            Kind::DateValue(parse_date(&s).ok_or_else(invalid)?)
        }
        "TIME_WITHOUT_TIME_ZONE" => {
            let s = json_string(text).ok_or_else(invalid)?;
            Kind::TimeValue(parse_time(&s).ok_or_else(invalid)?)
        }
        "BINARY" | "VARBINARY" => {
            let s = json_string(text).ok_or_else(invalid)?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(s.as_bytes())
                .map_err(|_| invalid())?;
            Kind::BytesValue(bytes)
        }
        "ARRAY" => {
            let element_type = t
                .element_type
                .as_deref()
                .ok_or_else(|| ValueError::unsupported(t))?;
            Kind::ArrayValue(
                convert_array(text, element_type).map_err(|e| e.unwrap_or_else(invalid))?,
            )
        }
        "MAP" => {
            let (Some(key_type), Some(value_type)) =
                (t.key_type.as_deref(), t.value_type.as_deref())
            else {
                return Err(ValueError::unsupported(t));
            };
            Kind::MapValue(
                convert_map(text, key_type, value_type).map_err(|e| e.unwrap_or_else(invalid))?,
            )
        }
        "MULTISET" => {
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
        "ROW" => {
            let fields = t.fields.as_deref().unwrap_or_default();
            Kind::RowValue(convert_row_value(text, fields).map_err(|e| e.unwrap_or_else(invalid))?)
        }
        // The NULL type has only one value, and it was handled above.
        "NULL" => return Err(invalid()),
        _ => return Err(ValueError::unsupported(t)),
    };
    Ok(value(kind))
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
    if inner.contains('\\') {
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

/// Writes a decimal number as exact plain text with `scale` fraction digits: `1.5` with
/// scale 2 is `1.50`, `1E+2` is `100.00`, `-0` is `0.00`. Fraction digits beyond the scale
/// are dropped only when they are zeros; the text is never rounded.
fn decimal_text(number: &str, scale: Option<usize>) -> Option<String> {
    let (negative, unsigned) = match number.as_bytes().first()? {
        b'-' => (true, &number[1..]),
        b'+' => (false, &number[1..]),
        _ => (false, number),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i64>().ok()?),
        None => (unsigned, 0),
    };
    if exponent.abs() > MAX_DECIMAL_EXPONENT {
        return None;
    }
    let (int_digits, frac_digits) = match mantissa.find('.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, ""),
    };
    if int_digits.is_empty() && frac_digits.is_empty()
        || !int_digits.bytes().all(|b| b.is_ascii_digit())
        || !frac_digits.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }

    // Fast path: plain notation without redundant leading zeros and at most `scale` fraction
    // digits (the usual shape, since Flink strips trailing zeros): copy and pad.
    if exponent == 0
        && scale.is_none_or(|s| frac_digits.len() <= s)
        && !int_digits.is_empty()
        && (int_digits.len() == 1 || !int_digits.starts_with('0'))
        && (!negative
            || int_digits
                .bytes()
                .chain(frac_digits.bytes())
                .any(|b| b != b'0'))
    {
        let fraction_len = scale.unwrap_or(frac_digits.len());
        let mut out = String::with_capacity(int_digits.len() + fraction_len + 2);
        if negative {
            out.push('-');
        }
        out.push_str(int_digits);
        if fraction_len > 0 {
            out.push('.');
            out.push_str(frac_digits);
            out.extend(std::iter::repeat_n('0', fraction_len - frac_digits.len()));
        }
        return Some(out);
    }

    // All digits, and where the decimal point falls among them.
    let digits: Vec<u8> = int_digits.bytes().chain(frac_digits.bytes()).collect();
    let point = int_digits.len() as i64 + exponent;
    let digit_at = |i: i64| -> u8 {
        if i >= 0 && (i as usize) < digits.len() {
            digits[i as usize]
        } else {
            b'0'
        }
    };
    let mut integer_part: String = (0..point.max(0)).map(|i| digit_at(i) as char).collect();
    let trimmed = integer_part.trim_start_matches('0').len();
    integer_part.drain(..integer_part.len() - trimmed);
    if integer_part.is_empty() {
        integer_part.push('0');
    }
    let frac_len = (digits.len() as i64 - point).max(0);
    let mut fraction: String = (point..point + frac_len)
        .map(|i| digit_at(i) as char)
        .collect();
    if let Some(scale) = scale {
        if fraction.len() > scale && fraction[scale..].bytes().all(|b| b == b'0') {
            fraction.truncate(scale);
        }
        while fraction.len() < scale {
            fraction.push('0');
        }
    }
    let is_zero = integer_part == "0" && fraction.bytes().all(|b| b == b'0');
    let mut out = String::with_capacity(integer_part.len() + fraction.len() + 2);
    if negative && !is_zero {
        out.push('-');
    }
    out.push_str(&integer_part);
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(&fraction);
    }
    Some(out)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = if year >= 0 { year } else { year - 399 } / 400;
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses exactly `n` ASCII digits.
fn fixed_digits(s: &str, n: usize) -> Option<u32> {
    if s.len() != n || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `[+-]YYYY-MM-DD` → days since the epoch.
fn parse_date_days(s: &str) -> Option<i64> {
    let (negative, unsigned) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let mut parts = unsigned.splitn(3, '-');
    let year_text = parts.next()?;
    if year_text.len() < 4 || year_text.len() > 9 || !year_text.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let year: i64 = year_text.parse().ok()?;
    let year = if negative { -year } else { year };
    let month = fixed_digits(parts.next()?, 2)?;
    let day = fixed_digits(parts.next()?, 2)?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

fn parse_date(s: &str) -> Option<i32> {
    i32::try_from(parse_date_days(s)?).ok()
}

/// `HH:MM[:SS[.fffffffff]]` → nanoseconds since midnight.
fn parse_time(s: &str) -> Option<i64> {
    let (clock, fraction) = match s.find('.') {
        Some(at) => (&s[..at], Some(&s[at + 1..])),
        None => (s, None),
    };
    let mut parts = clock.split(':');
    let hour = fixed_digits(parts.next()?, 2)?;
    let minute = fixed_digits(parts.next()?, 2)?;
    let second = match parts.next() {
        Some(text) => fixed_digits(text, 2)?,
        None if fraction.is_none() => 0,
        None => return None,
    };
    if parts.next().is_some() || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut nanos = 0i64;
    if let Some(fraction) = fraction {
        if fraction.is_empty()
            || fraction.len() > 9
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        nanos = fraction.parse::<i64>().ok()? * 10i64.pow(9 - fraction.len() as u32);
    }
    Some(
        (i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second)) * NANOS_PER_SECOND
            + nanos,
    )
}

/// `YYYY-MM-DD(T| )HH:MM[:SS[.f]]` with, when `zoned`, an optional `Z` or `±HH[:MM]` suffix
/// (none means UTC) → seconds and nanoseconds since the epoch.
fn parse_timestamp(s: &str, zoned: bool) -> Option<(i64, i32)> {
    let separator = s.find(['T', ' '])?;
    let (date, rest) = (&s[..separator], &s[separator + 1..]);
    let (clock, offset_seconds) = if zoned { split_zone(rest)? } else { (rest, 0) };
    let days = parse_date_days(date)?;
    let nanos_of_day = parse_time(clock)?;
    let seconds = days * SECONDS_PER_DAY + nanos_of_day / NANOS_PER_SECOND - offset_seconds;
    let nanos = i32::try_from(nanos_of_day % NANOS_PER_SECOND).ok()?;
    Some((seconds, nanos))
}

/// Splits a time-of-day from its zone suffix; returns the zone's offset in seconds.
fn split_zone(s: &str) -> Option<(&str, i64)> {
    if let Some(clock) = s.strip_suffix('Z').or_else(|| s.strip_suffix('z')) {
        return Some((clock, 0));
    }
    let Some(at) = s.rfind(['+', '-']) else {
        return Some((s, 0));
    };
    let (clock, zone) = (&s[..at], &s[at..]);
    let sign = if zone.starts_with('-') { -1 } else { 1 };
    let digits: String = zone[1..].chars().filter(|c| *c != ':').collect();
    let (hours, minutes, seconds) = match digits.len() {
        2 => (fixed_digits(&digits, 2)?, 0, 0),
        4 => (
            fixed_digits(&digits[..2], 2)?,
            fixed_digits(&digits[2..], 2)?,
            0,
        ),
        6 => (
            fixed_digits(&digits[..2], 2)?,
            fixed_digits(&digits[2..4], 2)?,
            fixed_digits(&digits[4..], 2)?,
        ),
        _ => return None,
    };
    if hours > 18 || minutes > 59 || seconds > 59 {
        return None;
    }
    let offset = i64::from(hours) * 3600 + i64::from(minutes) * 60 + i64::from(seconds);
    Some((clock, sign * offset))
}

// ---------------------------------------------------------------------------------------------
// Flink SQL text of a type.

fn logical_type_sql(t: &LogicalTypeJson) -> String {
    let with_precision = |name: &str| match t.precision {
        Some(p) => format!("{name}({p})"),
        None => name.to_owned(),
    };
    let base = match t.type_root.as_str() {
        "NULL" => return "NULL".to_owned(),
        "INTEGER" => "INT".to_owned(),
        "CHAR" => sized("CHAR", t.length),
        "VARCHAR" if t.length == Some(i32::MAX) => "STRING".to_owned(),
        "VARCHAR" => sized("VARCHAR", t.length),
        "BINARY" => sized("BINARY", t.length),
        "VARBINARY" if t.length == Some(i32::MAX) => "BYTES".to_owned(),
        "VARBINARY" => sized("VARBINARY", t.length),
        "DECIMAL" => match (t.precision, t.scale) {
            (Some(p), Some(s)) => format!("DECIMAL({p}, {s})"),
            (Some(p), None) => format!("DECIMAL({p})"),
            _ => "DECIMAL".to_owned(),
        },
        "TIME_WITHOUT_TIME_ZONE" => with_precision("TIME"),
        "TIMESTAMP_WITHOUT_TIME_ZONE" => with_precision("TIMESTAMP"),
        "TIMESTAMP_WITH_LOCAL_TIME_ZONE" => with_precision("TIMESTAMP_LTZ"),
        "TIMESTAMP_WITH_TIME_ZONE" => format!("{} WITH TIME ZONE", with_precision("TIMESTAMP")),
        "INTERVAL_YEAR_MONTH" => "INTERVAL YEAR TO MONTH".to_owned(),
        "INTERVAL_DAY_TIME" => "INTERVAL DAY TO SECOND".to_owned(),
        "ARRAY" => format!("ARRAY<{}>", nested_sql(t.element_type.as_deref())),
        "MULTISET" => format!("MULTISET<{}>", nested_sql(t.element_type.as_deref())),
        "MAP" => format!(
            "MAP<{}, {}>",
            nested_sql(t.key_type.as_deref()),
            nested_sql(t.value_type.as_deref())
        ),
        "ROW" => {
            let fields: Vec<String> = t
                .fields
                .iter()
                .flatten()
                .map(|f| {
                    let mut field = format!(
                        "`{}` {}",
                        f.name.replace('`', "``"),
                        logical_type_sql(&f.field_type)
                    );
                    if let Some(description) = &f.description {
                        field.push_str(&format!(" '{}'", description.replace('\'', "''")));
                    }
                    field
                })
                .collect();
            format!("ROW<{}>", fields.join(", "))
        }
        other => other.to_owned(),
    };
    if t.nullable {
        base
    } else {
        format!("{base} NOT NULL")
    }
}

fn sized(name: &str, length: Option<i32>) -> String {
    match length {
        Some(length) => format!("{name}({length})"),
        None => name.to_owned(),
    }
}

fn nested_sql(t: Option<&LogicalTypeJson>) -> String {
    t.map(logical_type_sql).unwrap_or_else(|| "?".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::sql_gateway::wire::FetchResultsBody;

    const ALL_TYPES_PAGE: &str =
        include_str!("../tests/fixtures/gateway-bodies/fetch-all-types-row.json");

    fn ty(json: &str) -> LogicalTypeJson {
        match serde_json::from_str(json) {
            Ok(t) => t,
            Err(e) => panic!("bad type {json}: {e}"),
        }
    }

    fn raw(json: &str) -> Box<RawValue> {
        match RawValue::from_string(json.to_owned()) {
            Ok(r) => r,
            Err(e) => panic!("bad json {json}: {e}"),
        }
    }

    fn convert(json: &str, t: &str) -> Result<proto::Value, RowError> {
        convert_value(&raw(json), &ty(t))
    }

    fn kind(json: &str, t: &str) -> Kind {
        match convert(json, t) {
            Ok(proto::Value { kind: Some(k) }) => k,
            other => panic!("{json} as {t}: {other:?}"),
        }
    }

    fn decimal(json: &str, precision: i32, scale: i32) -> String {
        let t = format!(
            r#"{{"type":"DECIMAL","nullable":false,"precision":{precision},"scale":{scale}}}"#
        );
        match kind(json, &t) {
            Kind::DecimalValue(s) => s,
            other => panic!("{json}: {other:?}"),
        }
    }

    fn ts(seconds: i64, nanos: i32) -> prost_types::Timestamp {
        prost_types::Timestamp { seconds, nanos }
    }

    fn int(v: i64) -> proto::Value {
        value(Kind::IntValue(v))
    }

    fn string(v: &str) -> proto::Value {
        value(Kind::StringValue(v.to_owned()))
    }

    #[test]
    fn converts_the_recorded_all_types_row_field_by_field() {
        let page: FetchResultsBody = match serde_json::from_str(ALL_TYPES_PAGE) {
            Ok(p) => p,
            Err(e) => panic!("fixture: {e}"),
        };
        let results = page.results.unwrap_or_default();
        assert_eq!(results.data.len(), 1);
        let row = match convert_row(&results.data[0], &results.columns) {
            Ok(row) => row,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(row.kind, proto::RowKind::Insert as i32);
        let v: Vec<Option<Kind>> = row.values.into_iter().map(|v| v.kind).collect();
        assert_eq!(v.len(), 15);
        // c_int 1
        assert_eq!(v[0], Some(Kind::IntValue(1)));
        // c_str 'a' (CHAR(1))
        assert_eq!(v[1], Some(Kind::StringValue("a".to_owned())));
        // c_null CAST(NULL AS INT)
        assert_eq!(
            v[2],
            Some(Kind::NullValue(proto::NullValue::NullValue as i32))
        );
        // c_bool TRUE
        assert_eq!(v[3], Some(Kind::BoolValue(true)));
        // c_bigint 7
        assert_eq!(v[4], Some(Kind::IntValue(7)));
        // c_arr ARRAY[1,2]
        assert_eq!(
            v[5],
            Some(Kind::ArrayValue(proto::ArrayValue {
                elements: vec![int(1), int(2)]
            }))
        );
        // c_map MAP['k', 1]
        assert_eq!(
            v[6],
            Some(Kind::MapValue(proto::MapValue {
                entries: vec![proto::MapEntry {
                    key: Some(string("k")),
                    value: Some(int(1)),
                }]
            }))
        );
        // c_row ROW(1, 'x')
        assert_eq!(
            v[7],
            Some(Kind::RowValue(proto::RowValue {
                fields: vec![int(1), string("x")]
            }))
        );
        // c_date DATE '2024-01-02': 19724 days after 1970-01-01
        assert_eq!(v[8], Some(Kind::DateValue(19_724)));
        // c_time TIME '03:04:05'
        assert_eq!(v[9], Some(Kind::TimeValue(11_045 * NANOS_PER_SECOND)));
        // c_ts TIMESTAMP '2024-01-02 03:04:05.678', wall clock read as UTC
        assert_eq!(
            v[10],
            Some(Kind::TimestampValue(ts(1_704_164_645, 678_000_000)))
        );
        // c_ltz TO_TIMESTAMP_LTZ(0, 3)
        assert_eq!(v[11], Some(Kind::InstantValue(ts(0, 0))));
        // c_dec CAST(1.5 AS DECIMAL(10,2)), sent as 1.5
        assert_eq!(v[12], Some(Kind::DecimalValue("1.50".to_owned())));
        // c_double 2.5
        assert_eq!(v[13], Some(Kind::DoubleValue(2.5)));
        // c_bytes X'CAFE', sent as base64 "yv4="
        assert_eq!(v[14], Some(Kind::BytesValue(vec![0xca, 0xfe])));
    }

    #[test]
    fn schema_of_the_recorded_all_types_page() {
        let page: FetchResultsBody = match serde_json::from_str(ALL_TYPES_PAGE) {
            Ok(p) => p,
            Err(e) => panic!("fixture: {e}"),
        };
        let schema = schema_to_proto(&page.results.unwrap_or_default().columns);
        let sql: Vec<(&str, &str)> = schema
            .columns
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.r#type.as_ref().map(|t| t.sql.as_str()).unwrap_or(""),
                )
            })
            .collect();
        assert_eq!(
            sql,
            vec![
                ("c_int", "INT NOT NULL"),
                ("c_str", "CHAR(1) NOT NULL"),
                ("c_null", "INT"),
                ("c_bool", "BOOLEAN NOT NULL"),
                ("c_bigint", "BIGINT NOT NULL"),
                ("c_arr", "ARRAY<INT NOT NULL> NOT NULL"),
                ("c_map", "MAP<CHAR(1) NOT NULL, INT NOT NULL> NOT NULL"),
                (
                    "c_row",
                    "ROW<`EXPR$0` INT NOT NULL, `EXPR$1` CHAR(1) NOT NULL> NOT NULL"
                ),
                ("c_date", "DATE NOT NULL"),
                ("c_time", "TIME(0) NOT NULL"),
                ("c_ts", "TIMESTAMP(3) NOT NULL"),
                ("c_ltz", "TIMESTAMP_LTZ(3)"),
                ("c_dec", "DECIMAL(10, 2) NOT NULL"),
                ("c_double", "DOUBLE NOT NULL"),
                ("c_bytes", "BINARY(2) NOT NULL"),
            ]
        );
        let row_type = schema.columns[7].r#type.clone().unwrap_or_default();
        assert_eq!(row_type.type_root, "ROW");
        assert!(!row_type.nullable);
        assert_eq!(row_type.fields.len(), 2);
        assert_eq!(row_type.fields[1].name, "EXPR$1");
        let field_type = row_type.fields[1].r#type.clone().unwrap_or_default();
        assert_eq!(field_type.type_root, "CHAR");
        assert_eq!(field_type.length, Some(1));
        let dec = schema.columns[12].r#type.clone().unwrap_or_default();
        assert_eq!((dec.precision, dec.scale), (Some(10), Some(2)));
        let map = schema.columns[6].r#type.clone().unwrap_or_default();
        assert_eq!(map.key_type.map(|k| k.type_root), Some("CHAR".to_owned()));
        assert_eq!(
            map.value_type.map(|v| v.type_root),
            Some("INTEGER".to_owned())
        );
        let arr = schema.columns[5].r#type.clone().unwrap_or_default();
        assert_eq!(
            arr.element_type.map(|e| e.type_root),
            Some("INTEGER".to_owned())
        );
    }

    #[test]
    fn string_and_bytes_types_get_their_short_names() {
        let string_type = ty(r#"{"type":"VARCHAR","nullable":true,"length":2147483647}"#);
        assert_eq!(logical_type_to_proto(&string_type).sql, "STRING");
        let bytes_type = ty(r#"{"type":"VARBINARY","nullable":false,"length":2147483647}"#);
        assert_eq!(logical_type_to_proto(&bytes_type).sql, "BYTES NOT NULL");
        let null_type = ty(r#"{"type":"NULL"}"#);
        assert_eq!(logical_type_to_proto(&null_type).sql, "NULL");
        let zoned = ty(r#"{"type":"TIMESTAMP_WITH_TIME_ZONE","nullable":true,"precision":6}"#);
        assert_eq!(
            logical_type_to_proto(&zoned).sql,
            "TIMESTAMP(6) WITH TIME ZONE"
        );
        let multiset = ty(
            r#"{"type":"MULTISET","nullable":true,"elementType":{"type":"VARCHAR","nullable":true,"length":10}}"#,
        );
        assert_eq!(
            logical_type_to_proto(&multiset).sql,
            "MULTISET<VARCHAR(10)>"
        );
    }

    #[test]
    fn decimals_are_exact_and_padded_to_the_scale() {
        assert_eq!(decimal("1.5", 10, 2), "1.50");
        assert_eq!(decimal("1.50", 10, 2), "1.50");
        assert_eq!(decimal("0", 10, 2), "0.00");
        assert_eq!(decimal("-0", 10, 2), "0.00");
        assert_eq!(decimal("-1.5", 10, 2), "-1.50");
        assert_eq!(decimal("1E+2", 10, 2), "100.00");
        assert_eq!(decimal("1.5E+3", 10, 2), "1500.00");
        assert_eq!(decimal("-1.23E+5", 10, 0), "-123000");
        assert_eq!(decimal("1E-8", 10, 8), "0.00000001");
        assert_eq!(decimal("-2.5E-7", 12, 9), "-0.000000250");
        assert_eq!(decimal("12", 5, 0), "12");
        assert_eq!(decimal("0.1", 5, 3), "0.100");
        assert_eq!(decimal("\"3.14\"", 5, 2), "3.14");
        // Trailing zeros beyond the scale are dropped; other digits are never rounded away.
        assert_eq!(decimal("1.2500", 10, 2), "1.25");
        assert_eq!(decimal("1.255", 10, 2), "1.255");
    }

    #[test]
    fn decimals_with_38_digits_stay_exact() {
        assert_eq!(
            decimal("12345678901234567890.123456789012345678", 38, 18),
            "12345678901234567890.123456789012345678"
        );
        assert_eq!(
            decimal("-99999999999999999999.999999999999999999", 38, 18),
            "-99999999999999999999.999999999999999999"
        );
        assert_eq!(
            decimal("1.234567890123456789E+19", 38, 18),
            "12345678901234567890.000000000000000000"
        );
        assert_eq!(decimal("1E-18", 38, 18), "0.000000000000000001");
        assert_eq!(
            decimal("99999999999999999999999999999999999999", 38, 0),
            "99999999999999999999999999999999999999"
        );
    }

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
    fn dates_times_and_timestamps_at_the_edges() {
        let date = r#"{"type":"DATE","nullable":false}"#;
        assert_eq!(kind("\"1970-01-01\"", date), Kind::DateValue(0));
        assert_eq!(kind("\"1969-12-31\"", date), Kind::DateValue(-1));
        assert_eq!(kind("\"2000-02-29\"", date), Kind::DateValue(11_016));
        assert_eq!(kind("\"0001-01-01\"", date), Kind::DateValue(-719_162));
        assert_eq!(kind("\"9999-12-31\"", date), Kind::DateValue(2_932_896));

        let time = r#"{"type":"TIME_WITHOUT_TIME_ZONE","nullable":false,"precision":9}"#;
        assert_eq!(kind("\"00:00:00\"", time), Kind::TimeValue(0));
        assert_eq!(
            kind("\"23:59:59.999999999\"", time),
            Kind::TimeValue(86_400 * NANOS_PER_SECOND - 1)
        );
        assert_eq!(
            kind("\"12:30:00.5\"", time),
            Kind::TimeValue(45_000_500_000_000)
        );

        let timestamp = r#"{"type":"TIMESTAMP_WITHOUT_TIME_ZONE","nullable":true,"precision":3}"#;
        assert_eq!(
            kind("\"2026-11-23T21:36:51.68\"", timestamp),
            Kind::TimestampValue(ts(1_795_469_811, 680_000_000))
        );
        assert_eq!(
            kind("\"1969-12-31T23:59:59.5\"", timestamp),
            Kind::TimestampValue(ts(-1, 500_000_000))
        );
        assert_eq!(
            kind("\"2024-01-02 03:04:05\"", timestamp),
            Kind::TimestampValue(ts(1_704_164_645, 0))
        );

        let ltz = r#"{"type":"TIMESTAMP_WITH_LOCAL_TIME_ZONE","nullable":true,"precision":6}"#;
        assert_eq!(
            kind("\"2026-11-23T21:43:20.53Z\"", ltz),
            Kind::InstantValue(ts(1_795_470_200, 530_000_000))
        );
        assert_eq!(
            kind("\"1970-01-01T01:00:00+01:00\"", ltz),
            Kind::InstantValue(ts(0, 0))
        );
        assert_eq!(
            kind("\"1970-01-01T00:00:00.000000001-00:30\"", ltz),
            Kind::InstantValue(ts(1800, 1))
        );
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
    fn row_kinds_map_one_to_one() {
        assert_eq!(
            row_kind_to_proto(RowKindJson::Insert),
            proto::RowKind::Insert
        );
        assert_eq!(
            row_kind_to_proto(RowKindJson::UpdateBefore),
            proto::RowKind::UpdateBefore
        );
        assert_eq!(
            row_kind_to_proto(RowKindJson::UpdateAfter),
            proto::RowKind::UpdateAfter
        );
        assert_eq!(
            row_kind_to_proto(RowKindJson::Delete),
            proto::RowKind::Delete
        );
    }

    #[test]
    fn errors_name_the_column_the_type_and_the_value() {
        let columns: Vec<ColumnInfo> = match serde_json::from_str(
            r#"[{"name":"c_dec","logicalType":{"type":"DECIMAL","nullable":false,"precision":10,"scale":2}},
                {"name":"c_arr","logicalType":{"type":"ARRAY","nullable":false,"elementType":{"type":"INTEGER","nullable":false}}}]"#,
        ) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let row = |json: &str| -> RowData {
            match serde_json::from_str(json) {
                Ok(r) => r,
                Err(e) => panic!("{e}"),
            }
        };
        let err = convert_row(&row(r#"{"kind":"INSERT","fields":["abc",[1]]}"#), &columns);
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err(r#"column c_dec: expected a DECIMAL number, got "abc""#.to_owned())
        );
        let err = convert_row(
            &row(r#"{"kind":"INSERT","fields":[1.5,[1,"x"]]}"#),
            &columns,
        );
        assert_eq!(
            err,
            Err(RowError::InvalidValue {
                column: "c_arr[1]".to_owned(),
                expected: "an INTEGER number".to_owned(),
                got: "\"x\"".to_owned(),
            })
        );
        let err = convert_row(&row(r#"{"kind":"DELETE","fields":[1.5]}"#), &columns);
        assert_eq!(
            err,
            Err(RowError::FieldCount {
                fields: 1,
                columns: 2
            })
        );
        let err = convert_row(
            &row(r#"{"kind":"INSERT","fields":[1.5,{"a":1}]}"#),
            &columns,
        );
        assert!(matches!(err, Err(RowError::InvalidValue { ref column, .. }) if column == "c_arr"));
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
