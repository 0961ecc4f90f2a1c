//! The `datagen` connector: deterministic per-row values from a small seeded generator, so any
//! row can be produced on demand (nothing is materialised ahead of a result page).

use super::types::{DataType, LogicalType, Timestamp, Value};

/// SplitMix64: one step of a tiny, good-enough generator.
pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = x;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A stable 64-bit hash of a name (FNV-1a).
pub fn name_seed(name: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.as_bytes() {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Random numbers for one field of one row.
struct Draw {
    state: u64,
}

impl Draw {
    fn new(seed: u64, row: u64) -> Self {
        Draw {
            state: splitmix64(seed ^ row.wrapping_mul(0xD6E8_FEB8_6659_FD93)),
        }
    }

    fn next(&mut self) -> u64 {
        self.state = splitmix64(self.state);
        self.state
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [min, max] (inclusive).
    fn range_i128(&mut self, min: i128, max: i128) -> i128 {
        if max <= min {
            return min;
        }
        let span = (max - min) as u128 + 1;
        let r = ((self.next() as u128) << 64 | self.next() as u128) % span;
        min + r as i128
    }
}

#[derive(Clone, Debug)]
enum FieldKind {
    Sequence {
        start: i128,
        end: i128,
    },
    Random {
        min: Option<String>,
        max: Option<String>,
        length: Option<usize>,
        max_past_ms: i64,
        null_rate: f64,
    },
}

#[derive(Clone, Debug)]
struct Field {
    ty: DataType,
    kind: FieldKind,
    seed: u64,
}

/// A configured datagen table.
#[derive(Clone, Debug)]
pub struct Datagen {
    fields: Vec<Field>,
    /// Rows the source produces before it ends; `None` when unbounded.
    pub total: Option<u64>,
    pub rows_per_second: f64,
}

impl Datagen {
    /// Builds the generator from a table's columns and `WITH` options; errors carry Flink's
    /// validation messages.
    pub fn new(
        table: &str,
        columns: &[(String, DataType)],
        options: &[(String, String)],
    ) -> Result<Datagen, String> {
        let opt = |key: &str| {
            options
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        let mut fields = Vec::new();
        let mut total: Option<u64> =
            match opt("number-of-rows") {
                Some(v) => Some(v.trim().parse().map_err(|_| {
                    format!("Could not parse value '{v}' for key 'number-of-rows'.")
                })?),
                None => None,
            };
        for (name, ty) in columns {
            let key = |suffix: &str| format!("fields.{name}.{suffix}");
            let kind_name = opt(&key("kind")).unwrap_or("random");
            let kind = if kind_name == "sequence" {
                let start = opt(&key("start")).ok_or_else(|| {
                    format!(
                        "Could not find required property '{}' for sequence generator.",
                        key("start")
                    )
                })?;
                let end = opt(&key("end")).ok_or_else(|| {
                    format!(
                        "Could not find required property '{}' for sequence generator.",
                        key("end")
                    )
                })?;
                let start: i128 = start.trim().parse().map_err(|_| {
                    format!(
                        "Could not parse value '{start}' for key '{}'.",
                        key("start")
                    )
                })?;
                let end: i128 = end.trim().parse().map_err(|_| {
                    format!("Could not parse value '{end}' for key '{}'.", key("end"))
                })?;
                let count = (end - start + 1).max(0) as u64;
                total = Some(total.map_or(count, |t| t.min(count)));
                FieldKind::Sequence { start, end }
            } else {
                FieldKind::Random {
                    min: opt(&key("min")).map(str::to_string),
                    max: opt(&key("max")).map(str::to_string),
                    length: opt(&key("length")).and_then(|v| v.trim().parse().ok()),
                    max_past_ms: opt(&key("max-past")).map(parse_duration_ms).unwrap_or(0),
                    null_rate: opt(&key("null-rate"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0.0),
                }
            };
            fields.push(Field {
                ty: ty.clone(),
                kind,
                seed: name_seed(&format!("{table}.{name}")),
            });
        }
        let rows_per_second = opt("rows-per-second")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|r| *r > 0.0)
            .unwrap_or(10_000.0);
        Ok(Datagen {
            fields,
            total,
            rows_per_second,
        })
    }

    /// Columns of a row.
    pub fn width(&self) -> usize {
        self.fields.len()
    }

    /// The values of row `index`; `now_millis` is when the row is emitted.
    pub fn row(&self, index: u64, now_millis: i64) -> Vec<Value> {
        self.fields
            .iter()
            .map(|f| field_value(f, index, now_millis))
            .collect()
    }
}

fn parse_duration_ms(text: &str) -> i64 {
    let t = text.trim().to_ascii_lowercase();
    let digits: String = t.chars().take_while(|c| c.is_ascii_digit()).collect();
    let n: i64 = digits.parse().unwrap_or(0);
    let unit = t[digits.len()..].trim();
    match unit {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n * 1000,
        "min" | "m" | "minute" | "minutes" => n * 60_000,
        "h" | "hour" | "hours" => n * 3_600_000,
        "d" | "day" | "days" => n * 86_400_000,
        _ => n,
    }
}

fn sequence_value(ty: &DataType, value: i128) -> Value {
    match &ty.logical {
        LogicalType::Float => Value::Float(value as f32),
        LogicalType::Double => Value::Double(value as f64),
        LogicalType::Decimal { scale, .. } => Value::Decimal(value * 10i128.pow(*scale), *scale),
        LogicalType::Char(_) | LogicalType::Varchar(_) => Value::Str(value.to_string()),
        _ => Value::Int(value as i64),
    }
}

fn bounds(ty: &LogicalType) -> (i128, i128) {
    match ty {
        LogicalType::TinyInt => (i8::MIN as i128, i8::MAX as i128),
        LogicalType::SmallInt => (i16::MIN as i128, i16::MAX as i128),
        LogicalType::Integer => (i32::MIN as i128, i32::MAX as i128),
        _ => (i64::MIN as i128, i64::MAX as i128),
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn random_value(ty: &DataType, f: &Field, draw: &mut Draw, row: u64, now_millis: i64) -> Value {
    let FieldKind::Random {
        min,
        max,
        length,
        max_past_ms,
        ..
    } = &f.kind
    else {
        return Value::Null;
    };
    let parse_i = |s: &Option<String>| s.as_deref().and_then(|v| v.trim().parse::<i128>().ok());
    let parse_f = |s: &Option<String>| s.as_deref().and_then(|v| v.trim().parse::<f64>().ok());
    match &ty.logical {
        LogicalType::TinyInt
        | LogicalType::SmallInt
        | LogicalType::Integer
        | LogicalType::BigInt => {
            let (lo, hi) = bounds(&ty.logical);
            Value::Int(
                draw.range_i128(parse_i(min).unwrap_or(lo), parse_i(max).unwrap_or(hi)) as i64,
            )
        }
        LogicalType::Float => {
            let lo = parse_f(min).unwrap_or(f32::MIN_POSITIVE as f64);
            let hi = parse_f(max).unwrap_or(f32::MAX as f64);
            Value::Float((lo + draw.unit() * (hi - lo)) as f32)
        }
        LogicalType::Double => {
            let lo = parse_f(min).unwrap_or(f64::MIN_POSITIVE);
            let hi = parse_f(max).unwrap_or(f64::MAX);
            Value::Double(lo + draw.unit() * (hi - lo))
        }
        LogicalType::Decimal { precision, scale } => {
            let factor = 10f64.powi(*scale as i32);
            let limit = 10i128.pow((*precision).min(38)) - 1;
            let lo = parse_f(min)
                .map(|v| (v * factor).round() as i128)
                .unwrap_or(-limit);
            let hi = parse_f(max)
                .map(|v| (v * factor).round() as i128)
                .unwrap_or(limit);
            Value::Decimal(draw.range_i128(lo.max(-limit), hi.min(limit)), *scale)
        }
        LogicalType::Boolean => Value::Bool(draw.next() & 1 == 1),
        LogicalType::Char(n) | LogicalType::Varchar(n) => {
            let len = length.unwrap_or(100).min(*n as usize);
            let mut s = String::with_capacity(len);
            let mut bits = 0u64;
            for i in 0..len {
                if i % 16 == 0 {
                    bits = draw.next();
                }
                s.push(HEX[(bits & 0xf) as usize] as char);
                bits >>= 4;
            }
            Value::Str(s)
        }
        LogicalType::Binary(n) | LogicalType::Varbinary(n) => {
            let len = length.unwrap_or(100).min(*n as usize);
            Value::Bytes((0..len).map(|_| draw.next() as u8).collect())
        }
        LogicalType::Date => {
            let past_days = if *max_past_ms > 0 {
                draw.range_i128(0, (*max_past_ms / 86_400_000) as i128) as i64
            } else {
                0
            };
            Value::Date((now_millis.div_euclid(86_400_000) - past_days) as i32)
        }
        LogicalType::Time(_) => Value::Time(now_millis.rem_euclid(86_400_000) / 1000 * 1000),
        LogicalType::Timestamp(_) | LogicalType::TimestampLtz(_) => {
            let past = if *max_past_ms > 0 {
                draw.range_i128(0, *max_past_ms as i128) as i64
            } else {
                0
            };
            let ts = Timestamp {
                millis: now_millis - past,
                nanos: 0,
            };
            if matches!(ty.logical, LogicalType::Timestamp(_)) {
                Value::Timestamp(ts)
            } else {
                Value::TimestampLtz(ts)
            }
        }
        LogicalType::Array(element) => {
            let n = length.unwrap_or(3);
            Value::Array(
                (0..n)
                    .map(|i| {
                        let mut d = Draw::new(f.seed ^ (i as u64 + 1), row);
                        random_value(element, f, &mut d, row, now_millis)
                    })
                    .collect(),
            )
        }
        LogicalType::Map(key, value) => {
            let n = length.unwrap_or(3);
            Value::Map(
                (0..n)
                    .map(|i| {
                        let mut dk = Draw::new(f.seed ^ (2 * i as u64 + 1), row);
                        let mut dv = Draw::new(f.seed ^ (2 * i as u64 + 2), row);
                        (
                            random_value(key, f, &mut dk, row, now_millis),
                            random_value(value, f, &mut dv, row, now_millis),
                        )
                    })
                    .collect(),
            )
        }
        LogicalType::Row(fields) => Value::Row(
            fields
                .iter()
                .enumerate()
                .map(|(i, (_, t))| {
                    let mut d = Draw::new(f.seed ^ (i as u64 + 17), row);
                    random_value(t, f, &mut d, row, now_millis)
                })
                .collect(),
        ),
        LogicalType::Null => Value::Null,
    }
}

fn field_value(f: &Field, row: u64, now_millis: i64) -> Value {
    match &f.kind {
        FieldKind::Sequence { start, end } => {
            let v = start + row as i128;
            if v > *end {
                Value::Null
            } else {
                sequence_value(&f.ty, v)
            }
        }
        FieldKind::Random { null_rate, .. } => {
            let mut draw = Draw::new(f.seed, row);
            if *null_rate > 0.0 && f.ty.nullable && draw.unit() < *null_rate {
                return Value::Null;
            }
            random_value(&f.ty, f, &mut draw, row, now_millis)
        }
    }
}
