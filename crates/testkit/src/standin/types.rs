//! Flink logical types and row values, rendered as the gateway renders them in the JSON and
//! PLAIN_TEXT row formats.

use std::fmt::Write as _;

use base64::Engine as _;

/// `VARCHAR(2147483647)`, i.e. `STRING`.
pub const MAX_LENGTH: u32 = 2_147_483_647;

#[derive(Clone, Debug, PartialEq)]
pub enum LogicalType {
    Null,
    Boolean,
    TinyInt,
    SmallInt,
    Integer,
    BigInt,
    Float,
    Double,
    Decimal { precision: u32, scale: u32 },
    Char(u32),
    Varchar(u32),
    Binary(u32),
    Varbinary(u32),
    Date,
    Time(u32),
    Timestamp(u32),
    TimestampLtz(u32),
    Array(Box<DataType>),
    Map(Box<DataType>, Box<DataType>),
    Row(Vec<(String, DataType)>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct DataType {
    pub logical: LogicalType,
    pub nullable: bool,
}

impl DataType {
    pub fn new(logical: LogicalType, nullable: bool) -> Self {
        DataType { logical, nullable }
    }

    pub fn not_null(logical: LogicalType) -> Self {
        DataType::new(logical, false)
    }

    pub fn nullable(logical: LogicalType) -> Self {
        DataType::new(logical, true)
    }

    /// `STRING` (nullable), the type of every metadata column the gateway returns.
    pub fn string() -> Self {
        DataType::nullable(LogicalType::Varchar(MAX_LENGTH))
    }

    pub fn with_nullable(&self, nullable: bool) -> Self {
        DataType::new(self.logical.clone(), nullable)
    }

    pub fn is_integral(&self) -> bool {
        matches!(
            self.logical,
            LogicalType::TinyInt
                | LogicalType::SmallInt
                | LogicalType::Integer
                | LogicalType::BigInt
        )
    }

    pub fn is_approximate(&self) -> bool {
        matches!(self.logical, LogicalType::Float | LogicalType::Double)
    }

    pub fn is_numeric(&self) -> bool {
        self.is_integral()
            || self.is_approximate()
            || matches!(self.logical, LogicalType::Decimal { .. })
    }

    pub fn is_character(&self) -> bool {
        matches!(self.logical, LogicalType::Char(_) | LogicalType::Varchar(_))
    }

    /// The `logicalType` JSON object of a result column, keys in the gateway's order.
    pub fn write_json(&self, out: &mut String) {
        let name = match &self.logical {
            LogicalType::Null => "NULL",
            LogicalType::Boolean => "BOOLEAN",
            LogicalType::TinyInt => "TINYINT",
            LogicalType::SmallInt => "SMALLINT",
            LogicalType::Integer => "INTEGER",
            LogicalType::BigInt => "BIGINT",
            LogicalType::Float => "FLOAT",
            LogicalType::Double => "DOUBLE",
            LogicalType::Decimal { .. } => "DECIMAL",
            LogicalType::Char(_) => "CHAR",
            LogicalType::Varchar(_) => "VARCHAR",
            LogicalType::Binary(_) => "BINARY",
            LogicalType::Varbinary(_) => "VARBINARY",
            LogicalType::Date => "DATE",
            LogicalType::Time(_) => "TIME_WITHOUT_TIME_ZONE",
            LogicalType::Timestamp(_) => "TIMESTAMP_WITHOUT_TIME_ZONE",
            LogicalType::TimestampLtz(_) => "TIMESTAMP_WITH_LOCAL_TIME_ZONE",
            LogicalType::Array(_) => "ARRAY",
            LogicalType::Map(_, _) => "MAP",
            LogicalType::Row(_) => "ROW",
        };
        let _ = write!(out, "{{\"type\":\"{name}\",\"nullable\":{}", self.nullable);
        match &self.logical {
            LogicalType::Decimal { precision, scale } => {
                let _ = write!(out, ",\"precision\":{precision},\"scale\":{scale}");
            }
            LogicalType::Char(n)
            | LogicalType::Varchar(n)
            | LogicalType::Binary(n)
            | LogicalType::Varbinary(n) => {
                let _ = write!(out, ",\"length\":{n}");
            }
            LogicalType::Time(p) | LogicalType::Timestamp(p) | LogicalType::TimestampLtz(p) => {
                let _ = write!(out, ",\"precision\":{p}");
            }
            LogicalType::Array(element) => {
                out.push_str(",\"elementType\":");
                element.write_json(out);
            }
            LogicalType::Map(key, value) => {
                out.push_str(",\"keyType\":");
                key.write_json(out);
                out.push_str(",\"valueType\":");
                value.write_json(out);
            }
            LogicalType::Row(fields) => {
                out.push_str(",\"fields\":[");
                for (i, (name, ty)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"name\":");
                    write_json_string(out, name);
                    out.push_str(",\"fieldType\":");
                    ty.write_json(out);
                    out.push('}');
                }
                out.push(']');
            }
            _ => {}
        }
        out.push('}');
    }

    /// Flink's summary string, e.g. `INT NOT NULL`, `STRING`, `DECIMAL(10, 2)`.
    pub fn sql(&self) -> String {
        let base = match &self.logical {
            LogicalType::Null => return "NULL".to_string(),
            LogicalType::Boolean => "BOOLEAN".to_string(),
            LogicalType::TinyInt => "TINYINT".to_string(),
            LogicalType::SmallInt => "SMALLINT".to_string(),
            LogicalType::Integer => "INT".to_string(),
            LogicalType::BigInt => "BIGINT".to_string(),
            LogicalType::Float => "FLOAT".to_string(),
            LogicalType::Double => "DOUBLE".to_string(),
            LogicalType::Decimal { precision, scale } => format!("DECIMAL({precision}, {scale})"),
            LogicalType::Char(n) => format!("CHAR({n})"),
            LogicalType::Varchar(n) if *n == MAX_LENGTH => "STRING".to_string(),
            LogicalType::Varchar(n) => format!("VARCHAR({n})"),
            LogicalType::Binary(n) => format!("BINARY({n})"),
            LogicalType::Varbinary(n) if *n == MAX_LENGTH => "BYTES".to_string(),
            LogicalType::Varbinary(n) => format!("VARBINARY({n})"),
            LogicalType::Date => "DATE".to_string(),
            LogicalType::Time(p) => format!("TIME({p})"),
            LogicalType::Timestamp(p) => format!("TIMESTAMP({p})"),
            LogicalType::TimestampLtz(p) => format!("TIMESTAMP_LTZ({p})"),
            LogicalType::Array(e) => format!("ARRAY<{}>", e.sql()),
            LogicalType::Map(k, v) => format!("MAP<{}, {}>", k.sql(), v.sql()),
            LogicalType::Row(fields) => format!(
                "ROW<{}>",
                fields
                    .iter()
                    .map(|(n, t)| format!("`{n}` {}", t.sql()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        if self.nullable {
            base
        } else {
            format!("{base} NOT NULL")
        }
    }
}

/// A timestamp as Flink's `TimestampData`: epoch milliseconds plus nanoseconds of the millisecond.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp {
    pub millis: i64,
    pub nanos: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    /// TINYINT, SMALLINT, INT and BIGINT.
    Int(i64),
    Float(f32),
    Double(f64),
    /// Unscaled value and scale.
    Decimal(i128, u32),
    Str(String),
    Bytes(Vec<u8>),
    /// Days since the epoch.
    Date(i32),
    /// Milliseconds of the day.
    Time(i64),
    Timestamp(Timestamp),
    TimestampLtz(Timestamp),
    Array(Vec<Value>),
    Map(Vec<(Value, Value)>),
    Row(Vec<Value>),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// A stable text used to group rows by key.
    pub fn key_text(&self, out: &mut String) {
        let _ = write!(out, "{self:?}|");
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f as f64),
            Value::Double(d) => Some(*d),
            Value::Decimal(u, s) => Some(*u as f64 / 10f64.powi(*s as i32)),
            _ => None,
        }
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_json_string(out: &mut String, s: &str) {
    out.push('"');
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.push_str(s);
        out.push('"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Appends a field in the JSON row format.
pub fn write_json_value(out: &mut String, value: &Value, ty: &DataType) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => write_json_number_text(out, &java_float(*f)),
        Value::Double(d) if d.is_finite() && (1e-3..1e7).contains(&d.abs()) => {
            let start = out.len();
            let _ = write!(out, "{d}");
            if !out[start..].contains('.') {
                out.push_str(".0");
            }
        }
        Value::Double(d) => write_json_number_text(out, &java_double(*d)),
        Value::Decimal(unscaled, scale) => out.push_str(&json_decimal(*unscaled, *scale)),
        Value::Str(s) => write_json_string(out, s),
        Value::Bytes(b) => {
            write_json_string(out, &base64::engine::general_purpose::STANDARD.encode(b))
        }
        Value::Date(days) => {
            out.push('"');
            out.push_str(&format_date(*days));
            out.push('"');
        }
        Value::Time(millis) => {
            out.push('"');
            out.push_str(&format_time(*millis, 0));
            out.push('"');
        }
        Value::Timestamp(ts) => {
            out.push('"');
            write_iso_timestamp(out, *ts);
            out.push('"');
        }
        Value::TimestampLtz(ts) => {
            out.push('"');
            write_iso_timestamp(out, *ts);
            out.push_str("Z\"");
        }
        Value::Array(items) => {
            let element = match &ty.logical {
                LogicalType::Array(e) => (**e).clone(),
                _ => DataType::nullable(LogicalType::Null),
            };
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json_value(out, item, &element);
            }
            out.push(']');
        }
        Value::Map(entries) => {
            let (key_type, value_type) = match &ty.logical {
                LogicalType::Map(k, v) => ((**k).clone(), (**v).clone()),
                _ => (
                    DataType::nullable(LogicalType::Null),
                    DataType::nullable(LogicalType::Null),
                ),
            };
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let key = match k {
                    Value::Str(s) => s.clone(),
                    other => plain_text(other, &key_type),
                };
                write_json_string(out, &key);
                out.push(':');
                write_json_value(out, v, &value_type);
            }
            out.push('}');
        }
        Value::Row(fields) => {
            let names: Vec<(String, DataType)> = match &ty.logical {
                LogicalType::Row(f) => f.clone(),
                _ => (0..fields.len())
                    .map(|i| (format!("EXPR${i}"), DataType::nullable(LogicalType::Null)))
                    .collect(),
            };
            out.push('{');
            for (i, value) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let (name, field_type) = names
                    .get(i)
                    .cloned()
                    .unwrap_or((format!("f{i}"), DataType::nullable(LogicalType::Null)));
                write_json_string(out, &name);
                out.push(':');
                write_json_value(out, value, &field_type);
            }
            out.push('}');
        }
    }
}

fn write_json_number_text(out: &mut String, text: &str) {
    if text.chars().any(|c| c.is_ascii_alphabetic() && c != 'E') {
        write_json_string(out, text);
    } else {
        out.push_str(text);
    }
}

/// A field in the PLAIN_TEXT row format (a `CAST(x AS STRING)`; NULL is `NULL`).
pub fn plain_text(value: &Value, ty: &DataType) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => java_float(*f),
        Value::Double(d) => java_double(*d),
        Value::Decimal(unscaled, scale) => plain_decimal(*unscaled, *scale),
        Value::Str(s) => s.clone(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Date(days) => format_date(*days),
        Value::Time(millis) => {
            let precision = match ty.logical {
                LogicalType::Time(p) => p,
                _ => 0,
            };
            format_time(*millis, precision)
        }
        Value::Timestamp(ts) | Value::TimestampLtz(ts) => {
            let precision = match ty.logical {
                LogicalType::Timestamp(p) | LogicalType::TimestampLtz(p) => p,
                _ => 3,
            };
            format_sql_timestamp(*ts, precision)
        }
        Value::Array(items) => {
            let element = match &ty.logical {
                LogicalType::Array(e) => (**e).clone(),
                _ => DataType::nullable(LogicalType::Null),
            };
            format!(
                "[{}]",
                items
                    .iter()
                    .map(|v| plain_text(v, &element))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Value::Map(entries) => {
            let (k_ty, v_ty) = match &ty.logical {
                LogicalType::Map(k, v) => ((**k).clone(), (**v).clone()),
                _ => (
                    DataType::nullable(LogicalType::Null),
                    DataType::nullable(LogicalType::Null),
                ),
            };
            format!(
                "{{{}}}",
                entries
                    .iter()
                    .map(|(k, v)| format!("{}={}", plain_text(k, &k_ty), plain_text(v, &v_ty)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
        Value::Row(fields) => {
            let types: Vec<DataType> = match &ty.logical {
                LogicalType::Row(f) => f.iter().map(|(_, t)| t.clone()).collect(),
                _ => vec![],
            };
            format!(
                "({})",
                fields
                    .iter()
                    .enumerate()
                    .map(|(i, v)| plain_text(
                        v,
                        types
                            .get(i)
                            .unwrap_or(&DataType::nullable(LogicalType::Null))
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        }
    }
}

/// Java's `Double.toString`.
pub fn java_double(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let magnitude = v.abs();
    if (1e-3..1e7).contains(&magnitude) {
        let s = format!("{v}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        scientific(&format!("{v:e}"))
    }
}

/// Java's `Float.toString`.
pub fn java_float(v: f32) -> String {
    if v.is_nan() {
        return "NaN".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0.0" } else { "0.0" }.to_string();
    }
    let magnitude = v.abs();
    if (1e-3..1e7).contains(&magnitude) {
        let s = format!("{v}");
        if s.contains('.') { s } else { format!("{s}.0") }
    } else {
        scientific(&format!("{v:e}"))
    }
}

fn scientific(rust: &str) -> String {
    let (mantissa, exponent) = rust.split_once('e').unwrap_or((rust, "0"));
    let mantissa = if mantissa.contains('.') {
        mantissa.to_string()
    } else {
        format!("{mantissa}.0")
    };
    format!("{mantissa}E{exponent}")
}

/// A DECIMAL as the JSON row format writes it: trailing zeros stripped, then `BigDecimal.toString`.
pub fn json_decimal(unscaled: i128, scale: u32) -> String {
    if unscaled == 0 {
        return "0".to_string();
    }
    let mut unscaled = unscaled;
    let mut scale = scale as i64;
    while unscaled % 10 == 0 {
        unscaled /= 10;
        scale -= 1;
    }
    java_big_decimal(unscaled, scale)
}

/// Java's `BigDecimal.toString` for an unscaled value and a scale.
pub fn java_big_decimal(unscaled: i128, scale: i64) -> String {
    let negative = unscaled < 0;
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if negative { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let adjusted = -scale + (digits.len() as i64 - 1);
    if scale > 0 && adjusted >= -6 {
        return format!("{sign}{}", insert_point(&digits, scale as usize));
    }
    let mut out = String::from(sign);
    out.push_str(&digits[..1]);
    if digits.len() > 1 {
        out.push('.');
        out.push_str(&digits[1..]);
    }
    out.push('E');
    if adjusted >= 0 {
        out.push('+');
    }
    out.push_str(&adjusted.to_string());
    out
}

/// A DECIMAL with its declared scale, as `CAST(d AS STRING)` prints it.
pub fn plain_decimal(unscaled: i128, scale: u32) -> String {
    let sign = if unscaled < 0 { "-" } else { "" };
    let digits = unscaled.unsigned_abs().to_string();
    if scale == 0 {
        format!("{sign}{digits}")
    } else {
        format!("{sign}{}", insert_point(&digits, scale as usize))
    }
}

fn insert_point(digits: &str, scale: usize) -> String {
    if digits.len() > scale {
        let (a, b) = digits.split_at(digits.len() - scale);
        format!("{a}.{b}")
    } else {
        format!("0.{}{digits}", "0".repeat(scale - digits.len()))
    }
}

// ---------------------------------------------------------------------------------------------
// Dates and times (proleptic Gregorian, UTC).

/// Days since 1970-01-01 of a civil date.
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since the epoch.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub fn format_date(days: i32) -> String {
    let (y, m, d) = civil_from_days(days as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// `HH:mm:ss` plus `precision` fraction digits.
pub fn format_time(millis_of_day: i64, precision: u32) -> String {
    let total_seconds = millis_of_day.div_euclid(1000);
    let millis = millis_of_day.rem_euclid(1000);
    let mut s = format!(
        "{:02}:{:02}:{:02}",
        total_seconds / 3600,
        (total_seconds / 60) % 60,
        total_seconds % 60
    );
    if precision > 0 {
        let fraction = format!("{millis:03}000000");
        s.push('.');
        s.push_str(&fraction[..precision.min(9) as usize]);
    }
    s
}

fn split_timestamp(ts: Timestamp) -> (i64, i64, u32) {
    let days = ts.millis.div_euclid(86_400_000);
    let millis_of_day = ts.millis.rem_euclid(86_400_000);
    let nanos_of_second = (millis_of_day % 1000) as u32 * 1_000_000 + ts.nanos;
    (days, millis_of_day / 1000, nanos_of_second)
}

/// ISO-8601 without zone, fraction digits stripped of trailing zeros (Java's ISO_LOCAL_DATE_TIME).
pub fn format_iso_timestamp(ts: Timestamp) -> String {
    let mut s = String::with_capacity(32);
    write_iso_timestamp(&mut s, ts);
    s
}

/// Appends [`format_iso_timestamp`] to `out`.
pub fn write_iso_timestamp(out: &mut String, ts: Timestamp) {
    let (days, seconds_of_day, nanos) = split_timestamp(ts);
    let (y, m, d) = civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        seconds_of_day / 3600,
        (seconds_of_day / 60) % 60,
        seconds_of_day % 60
    );
    if nanos > 0 {
        let mut digits = 9;
        let mut fraction = nanos;
        while fraction % 10 == 0 {
            fraction /= 10;
            digits -= 1;
        }
        let _ = write!(out, ".{fraction:0digits$}");
    }
}

/// `yyyy-MM-dd HH:mm:ss` plus `precision` fraction digits (`CAST(ts AS STRING)`).
pub fn format_sql_timestamp(ts: Timestamp, precision: u32) -> String {
    let (days, seconds_of_day, nanos) = split_timestamp(ts);
    let (y, m, d) = civil_from_days(days);
    let mut s = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        seconds_of_day / 3600,
        (seconds_of_day / 60) % 60,
        seconds_of_day % 60
    );
    if precision > 0 {
        let fraction = format!("{nanos:09}");
        s.push('.');
        s.push_str(&fraction[..precision.min(9) as usize]);
    }
    s
}

/// Parses `yyyy-MM-dd`.
pub fn parse_date(text: &str) -> Option<i32> {
    let mut parts = text.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: u32 = parts.next()?.parse().ok()?;
    let d: u32 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) as i32)
}

/// Parses `HH:mm[:ss[.fffffffff]]` into milliseconds of the day, nanos of the millisecond and
/// the number of fraction digits.
pub fn parse_time(text: &str) -> Option<(i64, u32, u32)> {
    let text = text.trim();
    let (hms, fraction) = match text.split_once('.') {
        Some((a, b)) => (a, b),
        None => (text, ""),
    };
    let mut parts = hms.split(':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let s: i64 = match parts.next() {
        Some(p) => p.parse().ok()?,
        None => 0,
    };
    if h > 23 || m > 59 || s > 59 || !fraction.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let digits = fraction.len().min(9) as u32;
    let padded = format!("{:0<9}", &fraction[..digits as usize]);
    let nanos: i64 = padded.parse().unwrap_or(0);
    let millis = (h * 3600 + m * 60 + s) * 1000 + nanos / 1_000_000;
    Some((millis, (nanos % 1_000_000) as u32, digits))
}

/// Parses `yyyy-MM-dd[ HH:mm[:ss[.f...]]]` (a `T` separator is accepted too).
pub fn parse_timestamp(text: &str) -> Option<(Timestamp, u32)> {
    let text = text.trim();
    let (date, time) = match text.find([' ', 'T']) {
        Some(i) => (&text[..i], &text[i + 1..]),
        None => (text, "00:00:00"),
    };
    let days = parse_date(date)? as i64;
    let (millis, nanos, precision) = parse_time(time)?;
    Some((
        Timestamp {
            millis: days * 86_400_000 + millis,
            nanos,
        },
        precision,
    ))
}

/// Milliseconds since the epoch of a system time.
pub fn epoch_millis(time: std::time::SystemTime) -> i64 {
    match time.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}
