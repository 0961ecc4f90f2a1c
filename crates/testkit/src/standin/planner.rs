//! Validation and planning: binds parsed statements to the session catalog, infers Flink result
//! types and evaluates expressions.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::Arc;

use super::datagen::Datagen;
use super::parser::{BinaryOp, Expr, FromItem, Literal, Query, QueryBody, SelectItem, Span};
use super::types::{
    DataType, LogicalType, MAX_LENGTH, Timestamp, Value, parse_date, parse_time, parse_timestamp,
};

/// A table (or view) of the session's in-memory catalog.
#[derive(Clone, Debug)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<(String, DataType)>,
    pub options: Vec<(String, String)>,
    /// The query of a view; `None` for a table.
    pub view: Option<ViewDef>,
}

/// A view's query and the statement text its spans point into.
#[derive(Clone, Debug)]
pub struct ViewDef {
    pub query: Query,
    pub text: String,
}

impl TableDef {
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> String {
        format!("default_catalog.default_database.{}", self.name)
    }

    fn options_text(&self) -> String {
        self.options
            .iter()
            .map(|(k, v)| format!("'{k}'='{v}'"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Why a statement failed validation or planning.
#[derive(Clone, Debug, PartialEq)]
pub enum PlanError {
    /// Calcite validation: `SQL validation failed. From line ..: message`.
    Validation { span: Option<Span>, message: String },
    /// A planner-side `ValidationException` with nested causes.
    Planner {
        message: String,
        causes: Vec<String>,
    },
    /// A `TableException`.
    Table(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub ty: DataType,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggFunc {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

#[derive(Clone, Debug)]
pub struct AggSpec {
    pub func: AggFunc,
    pub arg: Option<Bound>,
    pub ty: DataType,
}

#[derive(Clone, Debug)]
pub enum OutputItem {
    Key(usize),
    Agg(usize),
}

#[derive(Clone, Debug)]
pub enum Shape {
    Project(Vec<Bound>),
    Aggregate {
        keys: Vec<Bound>,
        aggs: Vec<AggSpec>,
        output: Vec<OutputItem>,
    },
}

/// Where a query's rows come from.
#[derive(Clone, Debug)]
pub enum Input {
    /// `SELECT` without `FROM`: one empty row.
    OneRow,
    Values(Arc<Vec<Vec<Value>>>),
    Datagen(Arc<Datagen>),
    /// A source that never produces rows (e.g. a filesystem table).
    Empty,
}

#[derive(Clone, Debug)]
pub struct QueryPlan {
    pub columns: Vec<Column>,
    pub input: Input,
    pub filter: Option<Bound>,
    pub shape: Shape,
    pub limit: Option<u64>,
    pub streaming: bool,
    pub job_name: String,
}

impl QueryPlan {
    /// Rows the input produces, `None` when unbounded.
    pub fn input_rows(&self) -> Option<u64> {
        let rows = match &self.input {
            Input::OneRow => Some(1),
            Input::Values(rows) => Some(rows.len() as u64),
            Input::Datagen(d) => d.total,
            Input::Empty => Some(0),
        };
        match (rows, self.limit, &self.shape) {
            (Some(r), Some(l), Shape::Project(_)) => Some(r.min(l)),
            (None, Some(l), Shape::Project(_)) if self.filter.is_none() => Some(l),
            (r, _, _) => r,
        }
    }

    /// Columns of an input row.
    pub fn input_width(&self) -> usize {
        match &self.input {
            Input::OneRow | Input::Empty => 0,
            Input::Values(rows) => rows.first().map_or(0, Vec::len),
            Input::Datagen(d) => d.width(),
        }
    }

    /// Rows per second the input is throttled to, if any.
    pub fn rate(&self) -> Option<f64> {
        match &self.input {
            Input::Datagen(d) => Some(d.rows_per_second),
            _ => None,
        }
    }

    /// How long the job runs when the source is throttled; `None` when unbounded.
    pub fn duration(&self, honor_rate: bool) -> Option<std::time::Duration> {
        let rows = self.input_rows()?;
        match self.rate() {
            Some(rate) if honor_rate => {
                Some(std::time::Duration::from_secs_f64(rows as f64 / rate))
            }
            _ => Some(std::time::Duration::ZERO),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Bound expressions.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Func {
    ToTimestampLtz,
}

#[derive(Clone, Debug)]
pub enum Bound {
    Const(Value),
    Col(usize),
    Cast(Box<Bound>, DataType),
    Neg(Box<Bound>),
    Not(Box<Bound>),
    Arith(BinaryOp, Box<Bound>, Box<Bound>, DataType),
    Compare(BinaryOp, Box<Bound>, Box<Bound>),
    And(Box<Bound>, Box<Bound>),
    Or(Box<Bound>, Box<Bound>),
    Concat(Box<Bound>, Box<Bound>),
    Array(Vec<Bound>),
    Map(Vec<(Bound, Bound)>),
    Row(Vec<Bound>),
    Func(Func, Vec<Bound>, DataType),
}

impl Bound {
    /// Replaces each column reference by the expression that computes it from an inner row,
    /// which turns an expression over a view's rows into one over the view's input.
    pub fn substitute(&self, columns: &[Bound]) -> Bound {
        let sub = |b: &Bound| Box::new(b.substitute(columns));
        let all = |bs: &[Bound]| bs.iter().map(|b| b.substitute(columns)).collect();
        let pairs = |ps: &[(Bound, Bound)]| {
            ps.iter()
                .map(|(a, b)| (a.substitute(columns), b.substitute(columns)))
                .collect()
        };
        match self {
            Bound::Const(v) => Bound::Const(v.clone()),
            Bound::Col(i) => columns
                .get(*i)
                .cloned()
                .unwrap_or(Bound::Const(Value::Null)),
            Bound::Cast(b, ty) => Bound::Cast(sub(b), ty.clone()),
            Bound::Neg(b) => Bound::Neg(sub(b)),
            Bound::Not(b) => Bound::Not(sub(b)),
            Bound::Arith(op, l, r, ty) => Bound::Arith(*op, sub(l), sub(r), ty.clone()),
            Bound::Compare(op, l, r) => Bound::Compare(*op, sub(l), sub(r)),
            Bound::And(l, r) => Bound::And(sub(l), sub(r)),
            Bound::Or(l, r) => Bound::Or(sub(l), sub(r)),
            Bound::Concat(l, r) => Bound::Concat(sub(l), sub(r)),
            Bound::Array(items) => Bound::Array(all(items)),
            Bound::Map(entries) => Bound::Map(pairs(entries)),
            Bound::Row(items) => Bound::Row(all(items)),
            Bound::Func(func, args, ty) => Bound::Func(*func, all(args), ty.clone()),
        }
    }

    pub fn eval(&self, row: &[Value]) -> Value {
        match self {
            Bound::Const(v) => v.clone(),
            Bound::Col(i) => row.get(*i).cloned().unwrap_or(Value::Null),
            Bound::Cast(inner, ty) => cast(inner.eval(row), ty),
            Bound::Neg(inner) => match inner.eval(row) {
                Value::Int(i) => Value::Int(i.wrapping_neg()),
                Value::Double(d) => Value::Double(-d),
                Value::Float(f) => Value::Float(-f),
                Value::Decimal(u, s) => Value::Decimal(-u, s),
                _ => Value::Null,
            },
            Bound::Not(inner) => match inner.eval(row) {
                Value::Bool(b) => Value::Bool(!b),
                _ => Value::Null,
            },
            Bound::Arith(op, l, r, ty) => arith(*op, l.eval(row), r.eval(row), ty),
            Bound::Compare(op, l, r) => {
                let (a, b) = (l.eval(row), r.eval(row));
                match compare(&a, &b) {
                    None => Value::Null,
                    Some(ord) => Value::Bool(match op {
                        BinaryOp::Eq => ord == Ordering::Equal,
                        BinaryOp::NotEq => ord != Ordering::Equal,
                        BinaryOp::Lt => ord == Ordering::Less,
                        BinaryOp::LtEq => ord != Ordering::Greater,
                        BinaryOp::Gt => ord == Ordering::Greater,
                        _ => ord != Ordering::Less,
                    }),
                }
            }
            Bound::And(l, r) => match (l.eval(row), r.eval(row)) {
                (Value::Bool(false), _) | (_, Value::Bool(false)) => Value::Bool(false),
                (Value::Bool(true), Value::Bool(true)) => Value::Bool(true),
                _ => Value::Null,
            },
            Bound::Or(l, r) => match (l.eval(row), r.eval(row)) {
                (Value::Bool(true), _) | (_, Value::Bool(true)) => Value::Bool(true),
                (Value::Bool(false), Value::Bool(false)) => Value::Bool(false),
                _ => Value::Null,
            },
            Bound::Concat(l, r) => match (l.eval(row), r.eval(row)) {
                (Value::Str(a), Value::Str(b)) => Value::Str(a + &b),
                _ => Value::Null,
            },
            Bound::Array(items) => Value::Array(items.iter().map(|b| b.eval(row)).collect()),
            Bound::Map(entries) => Value::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.eval(row), v.eval(row)))
                    .collect(),
            ),
            Bound::Row(items) => Value::Row(items.iter().map(|b| b.eval(row)).collect()),
            Bound::Func(func, args, _) => {
                let values: Vec<Value> = args.iter().map(|a| a.eval(row)).collect();
                call(*func, values)
            }
        }
    }
}

fn decimal_to_scale(unscaled: i128, from: u32, to: u32) -> i128 {
    match from.cmp(&to) {
        Ordering::Equal => unscaled,
        Ordering::Less => unscaled * 10i128.pow(to - from),
        Ordering::Greater => {
            // HALF_UP, as Java's BigDecimal.setScale in Flink's casts
            let divisor = 10i128.pow(from - to);
            let q = unscaled / divisor;
            let r = unscaled % divisor;
            if r.abs() * 2 >= divisor {
                q + unscaled.signum()
            } else {
                q
            }
        }
    }
}

fn wrap_integral(v: i64, ty: &LogicalType) -> i64 {
    match ty {
        LogicalType::TinyInt => v as i8 as i64,
        LogicalType::SmallInt => v as i16 as i64,
        LogicalType::Integer => v as i32 as i64,
        _ => v,
    }
}

fn parse_decimal_text(text: &str) -> Option<(i128, u32)> {
    let t = text.trim();
    let (int_part, frac_part) = t.split_once('.').unwrap_or((t, ""));
    let negative = int_part.starts_with('-');
    let int_digits = int_part.trim_start_matches(['-', '+']);
    if !int_digits.chars().all(|c| c.is_ascii_digit())
        || !frac_part.chars().all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{int_digits}{frac_part}");
    let mut unscaled: i128 = if digits.is_empty() {
        0
    } else {
        digits.parse().ok()?
    };
    if negative {
        unscaled = -unscaled;
    }
    Some((unscaled, frac_part.len() as u32))
}

/// `CAST(v AS ty)`; an impossible cast yields NULL.
pub fn cast(v: Value, ty: &DataType) -> Value {
    if v.is_null() {
        return Value::Null;
    }
    match &ty.logical {
        LogicalType::TinyInt
        | LogicalType::SmallInt
        | LogicalType::Integer
        | LogicalType::BigInt => {
            let i = match v {
                Value::Int(i) => i,
                Value::Double(d) => d as i64,
                Value::Float(f) => f as i64,
                Value::Decimal(u, s) => (u / 10i128.pow(s)) as i64,
                Value::Bool(b) => b as i64,
                Value::Str(s) => match s.trim().parse() {
                    Ok(i) => i,
                    Err(_) => return Value::Null,
                },
                _ => return Value::Null,
            };
            Value::Int(wrap_integral(i, &ty.logical))
        }
        LogicalType::Float => {
            v.as_f64()
                .map(|f| Value::Float(f as f32))
                .unwrap_or_else(|| match v {
                    Value::Str(s) => s.trim().parse().map(Value::Float).unwrap_or(Value::Null),
                    _ => Value::Null,
                })
        }
        LogicalType::Double => v.as_f64().map(Value::Double).unwrap_or_else(|| match v {
            Value::Str(s) => s.trim().parse().map(Value::Double).unwrap_or(Value::Null),
            _ => Value::Null,
        }),
        LogicalType::Decimal { scale, .. } => match v {
            Value::Int(i) => Value::Decimal(i as i128 * 10i128.pow(*scale), *scale),
            Value::Decimal(u, s) => Value::Decimal(decimal_to_scale(u, s, *scale), *scale),
            Value::Double(d) => {
                Value::Decimal((d * 10f64.powi(*scale as i32)).round() as i128, *scale)
            }
            Value::Float(f) => Value::Decimal(
                (f as f64 * 10f64.powi(*scale as i32)).round() as i128,
                *scale,
            ),
            Value::Str(s) => match parse_decimal_text(&s) {
                Some((u, s)) => Value::Decimal(decimal_to_scale(u, s, *scale), *scale),
                None => Value::Null,
            },
            _ => Value::Null,
        },
        LogicalType::Char(n) | LogicalType::Varchar(n) => {
            let text = match &v {
                Value::Str(s) => s.clone(),
                other => super::types::plain_text(other, &value_type_hint(other)),
            };
            let mut text: String = text.chars().take(*n as usize).collect();
            if matches!(ty.logical, LogicalType::Char(_)) {
                while text.chars().count() < *n as usize && *n < 4096 {
                    text.push(' ');
                }
            }
            Value::Str(text)
        }
        LogicalType::Boolean => match v {
            Value::Bool(b) => Value::Bool(b),
            Value::Int(i) => Value::Bool(i != 0),
            Value::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "t" | "yes" | "y" | "1" => Value::Bool(true),
                "false" | "f" | "no" | "n" | "0" => Value::Bool(false),
                _ => Value::Null,
            },
            _ => Value::Null,
        },
        LogicalType::Binary(_) | LogicalType::Varbinary(_) => match v {
            Value::Bytes(b) => Value::Bytes(b),
            Value::Str(s) => Value::Bytes(s.into_bytes()),
            _ => Value::Null,
        },
        LogicalType::Date => match v {
            Value::Date(d) => Value::Date(d),
            Value::Timestamp(ts) | Value::TimestampLtz(ts) => {
                Value::Date(ts.millis.div_euclid(86_400_000) as i32)
            }
            Value::Str(s) => parse_date(&s).map(Value::Date).unwrap_or(Value::Null),
            _ => Value::Null,
        },
        LogicalType::Time(_) => match v {
            Value::Time(t) => Value::Time(t),
            Value::Timestamp(ts) | Value::TimestampLtz(ts) => {
                Value::Time(ts.millis.rem_euclid(86_400_000))
            }
            Value::Str(s) => parse_time(&s)
                .map(|(m, _, _)| Value::Time(m))
                .unwrap_or(Value::Null),
            _ => Value::Null,
        },
        LogicalType::Timestamp(_) | LogicalType::TimestampLtz(_) => {
            let ts = match v {
                Value::Timestamp(ts) | Value::TimestampLtz(ts) => ts,
                Value::Date(d) => Timestamp {
                    millis: d as i64 * 86_400_000,
                    nanos: 0,
                },
                Value::Str(s) => match parse_timestamp(&s) {
                    Some((ts, _)) => ts,
                    None => return Value::Null,
                },
                _ => return Value::Null,
            };
            if matches!(ty.logical, LogicalType::Timestamp(_)) {
                Value::Timestamp(ts)
            } else {
                Value::TimestampLtz(ts)
            }
        }
        LogicalType::Array(element) => match v {
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|i| cast(i, element)).collect())
            }
            _ => Value::Null,
        },
        LogicalType::Map(k, val) => match v {
            Value::Map(entries) => Value::Map(
                entries
                    .into_iter()
                    .map(|(a, b)| (cast(a, k), cast(b, val)))
                    .collect(),
            ),
            _ => Value::Null,
        },
        LogicalType::Row(fields) => match v {
            Value::Row(items) => Value::Row(
                items
                    .into_iter()
                    .zip(fields.iter())
                    .map(|(i, (_, t))| cast(i, t))
                    .collect(),
            ),
            _ => Value::Null,
        },
        LogicalType::Null => Value::Null,
    }
}

fn value_type_hint(v: &Value) -> DataType {
    DataType::nullable(match v {
        Value::Time(_) => LogicalType::Time(0),
        Value::Timestamp(_) => LogicalType::Timestamp(6),
        Value::TimestampLtz(_) => LogicalType::TimestampLtz(6),
        _ => LogicalType::Null,
    })
}

fn arith(op: BinaryOp, a: Value, b: Value, ty: &DataType) -> Value {
    if a.is_null() || b.is_null() {
        return Value::Null;
    }
    match &ty.logical {
        LogicalType::TinyInt
        | LogicalType::SmallInt
        | LogicalType::Integer
        | LogicalType::BigInt => {
            let (Value::Int(x), Value::Int(y)) = (a, b) else {
                return Value::Null;
            };
            let r = match op {
                BinaryOp::Add => x.wrapping_add(y),
                BinaryOp::Sub => x.wrapping_sub(y),
                BinaryOp::Mul => x.wrapping_mul(y),
                BinaryOp::Div if y != 0 => x.wrapping_div(y),
                BinaryOp::Mod if y != 0 => x.wrapping_rem(y),
                _ => return Value::Null,
            };
            Value::Int(wrap_integral(r, &ty.logical))
        }
        LogicalType::Decimal { scale, .. } => {
            let to_dec = |v: Value| match v {
                Value::Int(i) => Some((i as i128, 0u32)),
                Value::Decimal(u, s) => Some((u, s)),
                _ => None,
            };
            let (Some((x, sx)), Some((y, sy))) = (to_dec(a), to_dec(b)) else {
                return Value::Null;
            };
            match op {
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mod => {
                    let s = sx.max(sy);
                    let (x, y) = (decimal_to_scale(x, sx, s), decimal_to_scale(y, sy, s));
                    let r = match op {
                        BinaryOp::Add => x + y,
                        BinaryOp::Sub => x - y,
                        _ if y != 0 => x % y,
                        _ => return Value::Null,
                    };
                    Value::Decimal(decimal_to_scale(r, s, *scale), *scale)
                }
                BinaryOp::Mul => Value::Decimal(decimal_to_scale(x * y, sx + sy, *scale), *scale),
                _ => {
                    if y == 0 {
                        return Value::Null;
                    }
                    let xf = x as f64 / 10f64.powi(sx as i32);
                    let yf = y as f64 / 10f64.powi(sy as i32);
                    Value::Decimal(
                        (xf / yf * 10f64.powi(*scale as i32)).round() as i128,
                        *scale,
                    )
                }
            }
        }
        _ => {
            let (Some(x), Some(y)) = (a.as_f64(), b.as_f64()) else {
                return Value::Null;
            };
            let r = match op {
                BinaryOp::Add => x + y,
                BinaryOp::Sub => x - y,
                BinaryOp::Mul => x * y,
                BinaryOp::Div => x / y,
                _ => x % y,
            };
            if matches!(ty.logical, LogicalType::Float) {
                Value::Float(r as f32)
            } else {
                Value::Double(r)
            }
        }
    }
}

/// Orders two values of comparable types; `None` when either is NULL.
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, _) | (_, Value::Null) => None,
        (Value::Int(x), Value::Int(y)) => Some(x.cmp(y)),
        (Value::Decimal(x, sx), Value::Decimal(y, sy)) => {
            let s = (*sx).max(*sy);
            Some(decimal_to_scale(*x, *sx, s).cmp(&decimal_to_scale(*y, *sy, s)))
        }
        (Value::Int(x), Value::Decimal(y, sy)) => Some((*x as i128 * 10i128.pow(*sy)).cmp(y)),
        (Value::Decimal(x, sx), Value::Int(y)) => Some(x.cmp(&(*y as i128 * 10i128.pow(*sx)))),
        (Value::Str(x), Value::Str(y)) => Some(x.trim_end().cmp(y.trim_end())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        (Value::Date(x), Value::Date(y)) => Some(x.cmp(y)),
        (Value::Time(x), Value::Time(y)) => Some(x.cmp(y)),
        (Value::Timestamp(x), Value::Timestamp(y))
        | (Value::TimestampLtz(x), Value::TimestampLtz(y)) => Some(x.cmp(y)),
        (Value::Bytes(x), Value::Bytes(y)) => Some(x.cmp(y)),
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x.partial_cmp(&y),
            _ => Some(format!("{a:?}").cmp(&format!("{b:?}"))),
        },
    }
}

fn call(func: Func, args: Vec<Value>) -> Value {
    if args.iter().any(Value::is_null) {
        return Value::Null;
    }
    match func {
        Func::ToTimestampLtz => {
            let precision = match args.get(1) {
                Some(Value::Int(p)) => *p,
                _ => 3,
            };
            let millis = match &args[0] {
                Value::Int(i) if precision == 0 => i.saturating_mul(1000),
                Value::Int(i) => *i,
                other => match other.as_f64() {
                    Some(f) if precision == 0 => (f * 1000.0) as i64,
                    Some(f) => f as i64,
                    None => return Value::Null,
                },
            };
            Value::TimestampLtz(Timestamp { millis, nanos: 0 })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Typing.

fn integral_rank(l: &LogicalType) -> Option<u8> {
    match l {
        LogicalType::TinyInt => Some(1),
        LogicalType::SmallInt => Some(2),
        LogicalType::Integer => Some(3),
        LogicalType::BigInt => Some(4),
        _ => None,
    }
}

fn decimal_of(l: &LogicalType) -> Option<(u32, u32)> {
    match l {
        LogicalType::Decimal { precision, scale } => Some((*precision, *scale)),
        LogicalType::TinyInt => Some((3, 0)),
        LogicalType::SmallInt => Some((5, 0)),
        LogicalType::Integer => Some((10, 0)),
        LogicalType::BigInt => Some((19, 0)),
        _ => None,
    }
}

/// The least restrictive type of two types, as Calcite derives it for ARRAY, VALUES, CASE, ...
pub fn common_type(a: &DataType, b: &DataType) -> Option<DataType> {
    let nullable = a.nullable || b.nullable;
    let logical = match (&a.logical, &b.logical) {
        (LogicalType::Null, other) | (other, LogicalType::Null) => {
            return Some(DataType::new(other.clone(), true));
        }
        (x, y) if x == y => x.clone(),
        (LogicalType::Char(x), LogicalType::Char(y)) => LogicalType::Char(*x.max(y)),
        (
            LogicalType::Char(x) | LogicalType::Varchar(x),
            LogicalType::Char(y) | LogicalType::Varchar(y),
        ) => LogicalType::Varchar(*x.max(y)),
        (x, y) if integral_rank(x).is_some() && integral_rank(y).is_some() => {
            if integral_rank(x) >= integral_rank(y) {
                x.clone()
            } else {
                y.clone()
            }
        }
        (LogicalType::Double, y) | (y, LogicalType::Double)
            if decimal_of(y).is_some() || *y == LogicalType::Float =>
        {
            LogicalType::Double
        }
        (LogicalType::Float, y) | (y, LogicalType::Float) if decimal_of(y).is_some() => {
            LogicalType::Float
        }
        (x, y) if decimal_of(x).is_some() && decimal_of(y).is_some() => {
            let (px, sx) = decimal_of(x)?;
            let (py, sy) = decimal_of(y)?;
            let scale = sx.max(sy);
            LogicalType::Decimal {
                precision: ((px - sx).max(py - sy) + scale).min(38),
                scale,
            }
        }
        (LogicalType::Timestamp(x), LogicalType::Timestamp(y)) => LogicalType::Timestamp(*x.max(y)),
        (LogicalType::Array(x), LogicalType::Array(y)) => {
            LogicalType::Array(Box::new(common_type(x, y)?))
        }
        _ => return None,
    };
    Some(DataType::new(logical, nullable))
}

fn arith_type(op: BinaryOp, a: &DataType, b: &DataType) -> Option<DataType> {
    let nullable = a.nullable || b.nullable;
    if a.logical == LogicalType::Null || b.logical == LogicalType::Null {
        let other = if a.logical == LogicalType::Null { b } else { a };
        return Some(DataType::new(other.logical.clone(), true));
    }
    if !a.is_numeric() || !b.is_numeric() {
        return None;
    }
    let logical = if a.is_approximate() || b.is_approximate() {
        if a.logical == LogicalType::Float && b.logical == LogicalType::Float {
            LogicalType::Float
        } else {
            LogicalType::Double
        }
    } else if a.is_integral() && b.is_integral() {
        return common_type(a, b).map(|t| t.with_nullable(nullable));
    } else {
        let (p1, s1) = decimal_of(&a.logical)?;
        let (p2, s2) = decimal_of(&b.logical)?;
        let (p, s) = match op {
            BinaryOp::Mul => (p1 + p2, s1 + s2),
            BinaryOp::Div => {
                let s = 6.max(s1 + p2 + 1);
                (p1 - s1 + s2 + s, s)
            }
            _ => {
                let s = s1.max(s2);
                ((p1 - s1).max(p2 - s2) + s + 1, s)
            }
        };
        let p = p.min(38);
        LogicalType::Decimal {
            precision: p,
            scale: s.min(p),
        }
    };
    Some(DataType::new(logical, nullable))
}

fn type_category(t: &DataType) -> &'static str {
    if t.is_numeric() {
        "<NUMERIC>"
    } else if t.is_character() {
        "<CHARACTER>"
    } else {
        match t.logical {
            LogicalType::Boolean => "<BOOLEAN>",
            LogicalType::Date => "<DATE>",
            LogicalType::Time(_) => "<TIME>",
            LogicalType::Timestamp(_) | LogicalType::TimestampLtz(_) => "<TIMESTAMP>",
            LogicalType::Binary(_) | LogicalType::Varbinary(_) => "<BINARY>",
            LogicalType::Null => "<NULL>",
            _ => "<ANY>",
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Binding.

/// Columns visible to expressions.
pub struct Scope {
    pub columns: Vec<(String, DataType)>,
}

fn literal(lit: &Literal, span: Span) -> Result<(Bound, DataType), PlanError> {
    let invalid = |kind: &str, text: &str, format: &str| PlanError::Validation {
        span: Some(span),
        message: format!("Illegal {kind} literal '{text}': not in format '{format}'"),
    };
    Ok(match lit {
        Literal::Null => (
            Bound::Const(Value::Null),
            DataType::nullable(LogicalType::Null),
        ),
        Literal::Bool(b) => (
            Bound::Const(Value::Bool(*b)),
            DataType::not_null(LogicalType::Boolean),
        ),
        Literal::Str(s) => (
            Bound::Const(Value::Str(s.clone())),
            DataType::not_null(LogicalType::Char(s.chars().count() as u32)),
        ),
        Literal::Binary(hex) => {
            if hex.len() % 2 != 0 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(PlanError::Validation {
                    span: Some(span),
                    message: "Binary literal string must contain an even number of hexits".into(),
                });
            }
            let bytes: Vec<u8> = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap_or(0))
                .collect();
            let n = bytes.len() as u32;
            (
                Bound::Const(Value::Bytes(bytes)),
                DataType::not_null(LogicalType::Binary(n)),
            )
        }
        Literal::Number(text) => {
            if text.contains(['e', 'E']) {
                let v: f64 = text.parse().unwrap_or(0.0);
                (
                    Bound::Const(Value::Double(v)),
                    DataType::not_null(LogicalType::Double),
                )
            } else if text.contains('.') {
                let (unscaled, scale) = parse_decimal_text(text).unwrap_or((0, 0));
                let digits = unscaled.unsigned_abs().to_string().len() as u32;
                let precision = digits.max(scale).max(1);
                (
                    Bound::Const(Value::Decimal(unscaled, scale)),
                    DataType::not_null(LogicalType::Decimal { precision, scale }),
                )
            } else if let Ok(i) = text.parse::<i32>() {
                (
                    Bound::Const(Value::Int(i as i64)),
                    DataType::not_null(LogicalType::Integer),
                )
            } else if let Ok(i) = text.parse::<i64>() {
                (
                    Bound::Const(Value::Int(i)),
                    DataType::not_null(LogicalType::BigInt),
                )
            } else {
                let (unscaled, _) = parse_decimal_text(text).unwrap_or((0, 0));
                let digits = unscaled.unsigned_abs().to_string().len() as u32;
                (
                    Bound::Const(Value::Decimal(unscaled, 0)),
                    DataType::not_null(LogicalType::Decimal {
                        precision: digits.min(38),
                        scale: 0,
                    }),
                )
            }
        }
        Literal::Date(text) => {
            let days = parse_date(text).ok_or_else(|| invalid("DATE", text, "yyyy-MM-dd"))?;
            (
                Bound::Const(Value::Date(days)),
                DataType::not_null(LogicalType::Date),
            )
        }
        Literal::Time(text) => {
            let (millis, _, precision) =
                parse_time(text).ok_or_else(|| invalid("TIME", text, "HH:mm:ss"))?;
            (
                Bound::Const(Value::Time(millis)),
                DataType::not_null(LogicalType::Time(precision)),
            )
        }
        Literal::Timestamp(text) => {
            let (ts, precision) = parse_timestamp(text)
                .ok_or_else(|| invalid("TIMESTAMP", text, "yyyy-MM-dd HH:mm:ss"))?;
            (
                Bound::Const(Value::Timestamp(ts)),
                DataType::not_null(LogicalType::Timestamp(precision)),
            )
        }
    })
}

fn is_aggregate(name: &str) -> Option<AggFunc> {
    match name {
        "COUNT" => Some(AggFunc::Count),
        "SUM" => Some(AggFunc::Sum),
        "MIN" => Some(AggFunc::Min),
        "MAX" => Some(AggFunc::Max),
        "AVG" => Some(AggFunc::Avg),
        _ => None,
    }
}

fn contains_aggregate(expr: &Expr) -> bool {
    match expr {
        Expr::Call { name, args, .. } => {
            is_aggregate(name).is_some() || args.iter().any(contains_aggregate)
        }
        Expr::Cast(e, _, _) | Expr::Neg(e, _) | Expr::Not(e, _) => contains_aggregate(e),
        Expr::Binary(_, a, b, _) => contains_aggregate(a) || contains_aggregate(b),
        Expr::Array(items, _) | Expr::Map(items, _) | Expr::Row(items, _) => {
            items.iter().any(contains_aggregate)
        }
        Expr::Literal(..) | Expr::Column(_) => false,
    }
}

pub fn bind(expr: &Expr, scope: &Scope) -> Result<(Bound, DataType), PlanError> {
    match expr {
        Expr::Literal(lit, span) => literal(lit, *span),
        Expr::Column(ident) => match scope.columns.iter().position(|(n, _)| *n == ident.name) {
            Some(i) => Ok((Bound::Col(i), scope.columns[i].1.clone())),
            None => Err(PlanError::Validation {
                span: Some(ident.span),
                message: format!("Column '{}' not found in any table", ident.name),
            }),
        },
        Expr::Cast(inner, ty, _) => {
            let (b, t) = bind(inner, scope)?;
            let target = ty.with_nullable(t.nullable || t.logical == LogicalType::Null);
            Ok((Bound::Cast(Box::new(b), target.clone()), target))
        }
        Expr::Neg(inner, span) => {
            let (b, t) = bind(inner, scope)?;
            if !t.is_numeric() {
                return Err(cannot_apply(*span, "-", &[&t]));
            }
            Ok((Bound::Neg(Box::new(b)), t))
        }
        Expr::Not(inner, _) => {
            let (b, t) = bind(inner, scope)?;
            Ok((
                Bound::Not(Box::new(b)),
                DataType::new(LogicalType::Boolean, t.nullable),
            ))
        }
        Expr::Binary(op, l, r, span) => {
            let (lb, lt) = bind(l, scope)?;
            let (rb, rt) = bind(r, scope)?;
            let nullable = lt.nullable || rt.nullable;
            match op {
                BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
                    let ty = arith_type(*op, &lt, &rt).ok_or_else(|| {
                        let symbol = match op {
                            BinaryOp::Add => "+",
                            BinaryOp::Sub => "-",
                            BinaryOp::Mul => "*",
                            BinaryOp::Div => "/",
                            _ => "MOD",
                        };
                        cannot_apply(*span, symbol, &[&lt, &rt])
                    })?;
                    let (lb, rb) = if matches!(ty.logical, LogicalType::Decimal { .. }) {
                        (lb, rb)
                    } else {
                        (
                            Bound::Cast(Box::new(lb), ty.clone()),
                            Bound::Cast(Box::new(rb), ty.clone()),
                        )
                    };
                    Ok((
                        Bound::Arith(*op, Box::new(lb), Box::new(rb), ty.clone()),
                        ty,
                    ))
                }
                BinaryOp::Concat => {
                    let len = |t: &DataType| match t.logical {
                        LogicalType::Char(n) | LogicalType::Varchar(n) => n,
                        _ => MAX_LENGTH,
                    };
                    let total = len(&lt).saturating_add(len(&rt)).min(MAX_LENGTH);
                    let both_char = matches!(lt.logical, LogicalType::Char(_))
                        && matches!(rt.logical, LogicalType::Char(_));
                    let ty = DataType::new(
                        if both_char {
                            LogicalType::Char(total)
                        } else {
                            LogicalType::Varchar(total)
                        },
                        nullable,
                    );
                    Ok((Bound::Concat(Box::new(lb), Box::new(rb)), ty))
                }
                BinaryOp::And => Ok((
                    Bound::And(Box::new(lb), Box::new(rb)),
                    DataType::new(LogicalType::Boolean, nullable),
                )),
                BinaryOp::Or => Ok((
                    Bound::Or(Box::new(lb), Box::new(rb)),
                    DataType::new(LogicalType::Boolean, nullable),
                )),
                _ => Ok((
                    Bound::Compare(*op, Box::new(lb), Box::new(rb)),
                    DataType::new(LogicalType::Boolean, nullable),
                )),
            }
        }
        Expr::Array(items, span) => {
            let mut bound = Vec::new();
            let mut ty: Option<DataType> = None;
            for item in items {
                let (b, t) = bind(item, scope)?;
                ty = Some(match ty {
                    None => t,
                    Some(prev) => common_type(&prev, &t)
                        .ok_or_else(|| cannot_apply(*span, "ARRAY", &[&prev, &t]))?,
                });
                bound.push(b);
            }
            let element = ty.unwrap_or_else(|| DataType::nullable(LogicalType::Null));
            let bound = bound
                .into_iter()
                .map(|b| Bound::Cast(Box::new(b), element.clone()))
                .collect();
            Ok((
                Bound::Array(bound),
                DataType::not_null(LogicalType::Array(Box::new(element))),
            ))
        }
        Expr::Map(items, span) => {
            if items.len() % 2 != 0 {
                return Err(PlanError::Validation {
                    span: Some(*span),
                    message: "Map requires an even number of arguments".into(),
                });
            }
            let mut entries = Vec::new();
            let mut key_ty: Option<DataType> = None;
            let mut value_ty: Option<DataType> = None;
            for pair in items.chunks(2) {
                let (kb, kt) = bind(&pair[0], scope)?;
                let (vb, vt) = bind(&pair[1], scope)?;
                key_ty = Some(match key_ty {
                    None => kt,
                    Some(p) => common_type(&p, &kt).unwrap_or(p),
                });
                value_ty = Some(match value_ty {
                    None => vt,
                    Some(p) => common_type(&p, &vt).unwrap_or(p),
                });
                entries.push((kb, vb));
            }
            let key_ty = key_ty.unwrap_or_else(|| DataType::nullable(LogicalType::Null));
            let value_ty = value_ty.unwrap_or_else(|| DataType::nullable(LogicalType::Null));
            let entries = entries
                .into_iter()
                .map(|(k, v)| {
                    (
                        Bound::Cast(Box::new(k), key_ty.clone()),
                        Bound::Cast(Box::new(v), value_ty.clone()),
                    )
                })
                .collect();
            Ok((
                Bound::Map(entries),
                DataType::not_null(LogicalType::Map(Box::new(key_ty), Box::new(value_ty))),
            ))
        }
        Expr::Row(items, _) => {
            let mut bound = Vec::new();
            let mut fields = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let (b, t) = bind(item, scope)?;
                bound.push(b);
                fields.push((format!("EXPR${i}"), t));
            }
            Ok((
                Bound::Row(bound),
                DataType::not_null(LogicalType::Row(fields)),
            ))
        }
        Expr::Call {
            name, args, span, ..
        } => {
            if is_aggregate(name).is_some() {
                return Err(PlanError::Validation {
                    span: Some(*span),
                    message: "Aggregate expression is illegal in GROUP BY clause".to_string(),
                });
            }
            let mut bound = Vec::new();
            let mut types = Vec::new();
            for a in args {
                let (b, t) = bind(a, scope)?;
                bound.push(b);
                types.push(t);
            }
            let no_match = || {
                let signature = types
                    .iter()
                    .map(type_category)
                    .collect::<Vec<_>>()
                    .join(", ");
                PlanError::Validation {
                    span: Some(*span),
                    message: format!("No match found for function signature {name}({signature})"),
                }
            };
            let (func, ty) = match name.as_str() {
                "TO_TIMESTAMP_LTZ" => {
                    if types.is_empty() || types.len() > 2 {
                        return Err(no_match());
                    }
                    (
                        Func::ToTimestampLtz,
                        DataType::nullable(LogicalType::TimestampLtz(3)),
                    )
                }
                _ => return Err(no_match()),
            };
            Ok((Bound::Func(func, bound, ty.clone()), ty))
        }
    }
}

fn cannot_apply(span: Span, op: &str, types: &[&DataType]) -> PlanError {
    let signature = types
        .iter()
        .map(|t| format!("<{}>", t.sql()))
        .collect::<Vec<_>>();
    PlanError::Validation {
        span: Some(span),
        message: format!(
            "Cannot apply '{op}' to arguments of type '{}'. Supported form(s): '<NUMERIC> {op} <NUMERIC>'",
            signature.join(&format!(" {op} "))
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Queries.

/// Everything planning needs from the session.
#[derive(Clone, Copy)]
pub struct PlanContext<'a> {
    pub tables: &'a BTreeMap<String, TableDef>,
    pub streaming: bool,
    pub text: &'a str,
}

const FACTORIES: &str = "blackhole\ndatagen\nfilesystem\nprint\npython-input-format";

/// Checks that a table can be read and returns its input.
fn source_input(table: &TableDef) -> Result<Input, PlanError> {
    let unable = |causes: Vec<String>| PlanError::Planner {
        message: format!(
            "Unable to create a source for reading table '{}'.\n\nTable options are:\n\n{}",
            table.path(),
            table.options_text()
        ),
        causes,
    };
    match table.option("connector") {
        Some("datagen") => Datagen::new(&table.name, &table.columns, &table.options)
            .map(|d| Input::Datagen(Arc::new(d)))
            .map_err(|m| unable(vec![m])),
        Some(c @ ("print" | "blackhole")) => Err(unable(vec![format!(
            "Connector '{c}' can only be used as a sink. It cannot be used as a source."
        )])),
        Some("filesystem") => Ok(Input::Empty),
        Some(other) => Err(unable(vec![format!(
            "Could not find any factory for identifier '{other}' that implements 'org.apache.flink.table.factories.DynamicTableFactory' in the classpath.\n\nAvailable factory identifiers are:\n\n{FACTORIES}"
        )])),
        None => Err(unable(vec![
            "Table options do not contain an option key 'connector' for discovering a connector. Therefore, Flink assumes a managed table. However, a managed table factory that implements org.apache.flink.table.factories.ManagedTableFactory is not in the classpath.".to_string(),
        ])),
    }
}

/// Checks that a table can be written to.
pub fn check_sink(table: &TableDef) -> Result<(), PlanError> {
    let unable = |causes: Vec<String>| PlanError::Planner {
        message: format!(
            "Unable to create a sink for writing table '{}'.\n\nTable options are:\n\n{}",
            table.path(),
            table.options_text()
        ),
        causes,
    };
    match table.option("connector") {
        Some("print" | "blackhole" | "filesystem") => Ok(()),
        Some("datagen") => Err(unable(vec![
            "Connector 'datagen' can only be used as a source. It cannot be used as a sink."
                .to_string(),
        ])),
        Some(other) => Err(unable(vec![format!(
            "Could not find any factory for identifier '{other}' that implements 'org.apache.flink.table.factories.DynamicTableFactory' in the classpath.\n\nAvailable factory identifiers are:\n\n{FACTORIES}"
        )])),
        None => Err(unable(vec![
            "Table options do not contain an option key 'connector' for discovering a connector. Therefore, Flink assumes a managed table. However, a managed table factory that implements org.apache.flink.table.factories.ManagedTableFactory is not in the classpath.".to_string(),
        ])),
    }
}

fn values_input(
    rows: &[Vec<Expr>],
    names: &[String],
) -> Result<(Input, Vec<(String, DataType)>), PlanError> {
    let empty = Scope { columns: vec![] };
    let width = rows.first().map(|r| r.len()).unwrap_or(0);
    let mut types: Vec<Option<DataType>> = vec![None; width];
    let mut bound_rows = Vec::new();
    for row in rows {
        if row.len() != width {
            return Err(PlanError::Validation {
                span: row.first().map(|e| e.span()),
                message: "Values passed to VALUES operator must have compatible types".into(),
            });
        }
        let mut bound = Vec::new();
        for (i, e) in row.iter().enumerate() {
            let (b, t) = bind(e, &empty)?;
            types[i] = Some(match types[i].take() {
                None => t,
                Some(prev) => common_type(&prev, &t).ok_or_else(|| PlanError::Validation {
                    span: Some(e.span()),
                    message: "Values passed to VALUES operator must have compatible types".into(),
                })?,
            });
            bound.push(b);
        }
        bound_rows.push(bound);
    }
    let types: Vec<DataType> = types
        .into_iter()
        .map(|t| t.unwrap_or_else(|| DataType::nullable(LogicalType::Null)))
        .collect();
    let values: Vec<Vec<Value>> = bound_rows
        .iter()
        .map(|row| {
            row.iter()
                .zip(&types)
                .map(|(b, t)| cast(b.eval(&[]), t))
                .collect()
        })
        .collect();
    let columns = types
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            (
                names.get(i).cloned().unwrap_or_else(|| format!("EXPR${i}")),
                t,
            )
        })
        .collect();
    Ok((Input::Values(Arc::new(values)), columns))
}

fn normalized(ctx: &PlanContext, e: &Expr) -> String {
    let span = e.span();
    ctx.text
        .get(span.start..span.end)
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
}

/// Plans a query against the session catalog.
pub fn plan_query(query: &Query, ctx: &PlanContext) -> Result<QueryPlan, PlanError> {
    let select = match &query.body {
        QueryBody::Values(rows) => {
            let (input, columns) = values_input(rows, &[])?;
            let projection = (0..columns.len()).map(Bound::Col).collect();
            return Ok(QueryPlan {
                columns: columns
                    .into_iter()
                    .map(|(name, ty)| Column { name, ty })
                    .collect(),
                input,
                filter: None,
                shape: Shape::Project(projection),
                limit: query.limit,
                streaming: ctx.streaming,
                job_name: job_name_of(ctx, query),
            });
        }
        QueryBody::Select(select) => select,
    };
    let (input, scope_columns, table_name, nested) = match &select.from {
        None => (Input::OneRow, vec![], None, None),
        Some(FromItem::Values { rows, columns, .. }) => {
            let (input, cols) = values_input(rows, columns)?;
            (input, cols, None, None)
        }
        Some(FromItem::Subquery { query, .. }) => {
            let inner = Nested::of(plan_query(query, ctx)?)?;
            (
                inner.input.clone(),
                inner.columns.clone(),
                None,
                Some(inner),
            )
        }
        Some(FromItem::Table { name, .. }) => {
            let table = ctx
                .tables
                .get(&name.name)
                .ok_or_else(|| PlanError::Validation {
                    span: Some(name.span),
                    message: format!("Object '{}' not found", name.name),
                })?;
            match &table.view {
                Some(view) => {
                    let view_ctx = PlanContext {
                        text: &view.text,
                        ..*ctx
                    };
                    let inner = Nested::of(plan_query(&view.query, &view_ctx)?)?;
                    (
                        inner.input.clone(),
                        inner.columns.clone(),
                        None,
                        Some(inner),
                    )
                }
                // the connector is resolved after validation, as the planner does
                None => (Input::Empty, table.columns.clone(), Some(table), None),
            }
        }
    };
    let scope = Scope {
        columns: scope_columns.clone(),
    };
    let filter = match &select.filter {
        Some(f) => {
            if contains_aggregate(f) {
                return Err(PlanError::Validation {
                    span: Some(f.span()),
                    message: "Aggregate expression is illegal in WHERE clause".into(),
                });
            }
            let (b, t) = bind(f, &scope)?;
            if !matches!(t.logical, LogicalType::Boolean | LogicalType::Null) {
                return Err(PlanError::Validation {
                    span: Some(f.span()),
                    message: "WHERE clause must be a condition".into(),
                });
            }
            Some(b)
        }
        None => None,
    };
    let aggregate = !select.group_by.is_empty()
        || select.items.iter().any(|i| match i {
            SelectItem::Expr(e, _) => contains_aggregate(e),
            SelectItem::Star(_) => false,
        });
    let mut columns = Vec::new();
    let shape = if !aggregate {
        let mut projection = Vec::new();
        for (index, item) in select.items.iter().enumerate() {
            match item {
                SelectItem::Star(span) => {
                    if scope_columns.is_empty() {
                        return Err(PlanError::Validation {
                            span: Some(*span),
                            message: "SELECT * requires a FROM clause".into(),
                        });
                    }
                    for (i, (name, ty)) in scope_columns.iter().enumerate() {
                        projection.push(Bound::Col(i));
                        columns.push(Column {
                            name: name.clone(),
                            ty: ty.clone(),
                        });
                    }
                }
                SelectItem::Expr(e, alias) => {
                    let (b, t) = bind(e, &scope)?;
                    projection.push(b);
                    columns.push(Column {
                        name: output_name(e, alias, index),
                        ty: t,
                    });
                }
            }
        }
        Shape::Project(projection)
    } else {
        let mut keys = Vec::new();
        let mut key_texts = Vec::new();
        let mut key_types = Vec::new();
        for g in &select.group_by {
            let (b, t) = bind(g, &scope)?;
            keys.push(b);
            key_texts.push(normalized(ctx, g));
            key_types.push(t);
        }
        let mut aggs = Vec::new();
        let mut output = Vec::new();
        for (index, item) in select.items.iter().enumerate() {
            let SelectItem::Expr(e, alias) = item else {
                let span = match item {
                    SelectItem::Star(s) => *s,
                    _ => Span::default(),
                };
                return Err(PlanError::Validation {
                    span: Some(span),
                    message: "Expression '*' is not being grouped".into(),
                });
            };
            let name = output_name(e, alias, index);
            if let Expr::Call {
                name: fname,
                args,
                star,
                span,
                ..
            } = e
                && let Some(func) = is_aggregate(fname)
            {
                let (arg, arg_ty) = if *star || args.is_empty() {
                    if func != AggFunc::Count {
                        return Err(PlanError::Validation {
                            span: Some(*span),
                            message: format!(
                                "Invalid number of arguments to function '{fname}'. Was expecting 1 arguments"
                            ),
                        });
                    }
                    (None, None)
                } else {
                    let (b, t) = bind(&args[0], &scope)?;
                    (Some(b), Some(t))
                };
                let ty = match (func, &arg_ty) {
                    (AggFunc::Count, _) => DataType::not_null(LogicalType::BigInt),
                    (_, Some(t)) => {
                        if matches!(func, AggFunc::Sum | AggFunc::Avg) && !t.is_numeric() {
                            return Err(cannot_apply(*span, fname, &[t]));
                        }
                        t.with_nullable(true)
                    }
                    (_, None) => DataType::nullable(LogicalType::Null),
                };
                output.push(OutputItem::Agg(aggs.len()));
                columns.push(Column {
                    name,
                    ty: ty.clone(),
                });
                aggs.push(AggSpec { func, arg, ty });
                continue;
            }
            if contains_aggregate(e) {
                return Err(PlanError::Table(
                    "Unsupported query: expressions over aggregate results".into(),
                ));
            }
            let text = normalized(ctx, e);
            match key_texts.iter().position(|k| *k == text) {
                Some(k) => {
                    output.push(OutputItem::Key(k));
                    columns.push(Column {
                        name,
                        ty: key_types[k].clone(),
                    });
                }
                None => {
                    return Err(PlanError::Validation {
                        span: Some(e.span()),
                        message: format!(
                            "Expression '{}' is not being grouped",
                            ctx.text
                                .get(e.span().start..e.span().end)
                                .unwrap_or_default()
                        ),
                    });
                }
            }
        }
        Shape::Aggregate { keys, aggs, output }
    };
    let (filter, shape) = match nested {
        None => (filter, shape),
        Some(inner) => inner.compose(filter, shape),
    };
    let input = match table_name {
        None => input,
        Some(table) => {
            let input = source_input(table)?;
            if let Input::Datagen(d) = &input
                && d.total.is_none()
                && !ctx.streaming
            {
                return Err(PlanError::Planner {
                    message: format!(
                        "Querying an unbounded table '{}' in batch mode is not allowed. The table source is unbounded.",
                        table.path()
                    ),
                    causes: vec![],
                });
            }
            input
        }
    };
    Ok(QueryPlan {
        columns,
        input,
        filter,
        shape,
        limit: query.limit,
        streaming: ctx.streaming,
        job_name: job_name_of(ctx, query),
    })
}

/// A view or subquery read by another query: its rows are a projection of its own input, so
/// the outer query is rewritten to read that input directly.
struct Nested {
    input: Input,
    columns: Vec<(String, DataType)>,
    projection: Vec<Bound>,
    filter: Option<Bound>,
}

impl Nested {
    fn of(plan: QueryPlan) -> Result<Nested, PlanError> {
        match plan.shape {
            Shape::Project(projection) if plan.limit.is_none() => Ok(Nested {
                input: plan.input,
                columns: plan.columns.into_iter().map(|c| (c.name, c.ty)).collect(),
                projection,
                filter: plan.filter,
            }),
            _ => Err(PlanError::Table(
                "Unsupported query: aggregations or LIMIT in a view or subquery".into(),
            )),
        }
    }

    /// Rewrites the filter and shape of the outer query over the nested query's input.
    fn compose(self, filter: Option<Bound>, shape: Shape) -> (Option<Bound>, Shape) {
        let sub = |b: &Bound| b.substitute(&self.projection);
        let filter = match (self.filter.clone(), filter.as_ref().map(sub)) {
            (Some(inner), Some(outer)) => Some(Bound::And(Box::new(inner), Box::new(outer))),
            (inner, outer) => inner.or(outer),
        };
        let shape = match shape {
            Shape::Project(items) => Shape::Project(items.iter().map(sub).collect()),
            Shape::Aggregate { keys, aggs, output } => Shape::Aggregate {
                keys: keys.iter().map(sub).collect(),
                aggs: aggs
                    .into_iter()
                    .map(|a| AggSpec {
                        arg: a.arg.as_ref().map(sub),
                        ..a
                    })
                    .collect(),
                output,
            },
        };
        (filter, shape)
    }
}

fn output_name(e: &Expr, alias: &Option<String>, index: usize) -> String {
    match (alias, e) {
        (Some(a), _) => a.clone(),
        (None, Expr::Column(ident)) => ident.name.clone(),
        _ => format!("EXPR${index}"),
    }
}

fn job_name_of(ctx: &PlanContext, query: &Query) -> String {
    let text = ctx
        .text
        .get(query.span.start..query.span.end)
        .unwrap_or(ctx.text);
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
