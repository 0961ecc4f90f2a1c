//! Result production: lazy row sources (scan, filter, projection, aggregation) and the
//! gateway's token-based result fetcher.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use super::planner::{AggFunc, AggSpec, Bound, Input, OutputItem, QueryPlan, Shape, compare};
use super::types::{DataType, LogicalType, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowKind {
    Insert,
    UpdateBefore,
    UpdateAfter,
    Delete,
}

impl RowKind {
    pub fn name(self) -> &'static str {
        match self {
            RowKind::Insert => "INSERT",
            RowKind::UpdateBefore => "UPDATE_BEFORE",
            RowKind::UpdateAfter => "UPDATE_AFTER",
            RowKind::Delete => "DELETE",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub kind: RowKind,
    pub fields: Vec<Value>,
}

impl Row {
    pub fn insert(fields: Vec<Value>) -> Row {
        Row {
            kind: RowKind::Insert,
            fields,
        }
    }
}

/// Rows that become available over time.
pub trait RowSource: Send {
    /// Up to `max` rows available at `now`; `None` once no row will ever come.
    fn pull(&mut self, now: Instant, max: usize) -> Option<Vec<Row>>;
    /// Whether the source has nothing left to give.
    fn exhausted(&self) -> bool;
}

/// Fixed rows, all available at once.
pub struct StaticRows {
    rows: VecDeque<Row>,
}

impl StaticRows {
    pub fn new(rows: Vec<Row>) -> Self {
        StaticRows { rows: rows.into() }
    }
}

impl RowSource for StaticRows {
    fn pull(&mut self, _now: Instant, max: usize) -> Option<Vec<Row>> {
        if self.rows.is_empty() {
            return None;
        }
        let n = max.min(self.rows.len());
        Some(self.rows.drain(..n).collect())
    }

    fn exhausted(&self) -> bool {
        self.rows.is_empty()
    }
}

/// Reads the input of a plan, throttled to the source's rows per second.
pub struct Scan {
    input: Input,
    next: u64,
    total: Option<u64>,
    rate: Option<f64>,
    started: Instant,
    started_millis: i64,
}

impl Scan {
    pub fn new(plan: &QueryPlan, honor_rate: bool, started: Instant, started_millis: i64) -> Scan {
        let total = match &plan.input {
            Input::OneRow => Some(1),
            Input::Values(rows) => Some(rows.len() as u64),
            Input::Datagen(d) => d.total,
            Input::Empty => Some(0),
        };
        Scan {
            input: plan.input.clone(),
            next: 0,
            total,
            rate: if honor_rate { plan.rate() } else { None },
            started,
            started_millis,
        }
    }

    fn available(&self, now: Instant) -> u64 {
        let produced = match self.rate {
            None => u64::MAX,
            Some(rate) => (now.saturating_duration_since(self.started).as_secs_f64() * rate) as u64,
        };
        produced.min(self.total.unwrap_or(u64::MAX))
    }

    fn exhausted(&self) -> bool {
        self.total.is_some_and(|t| self.next >= t)
    }

    /// When the next row is emitted, in milliseconds since the epoch.
    fn emit_millis(&self) -> i64 {
        match self.rate {
            Some(rate) => self.started_millis + (self.next as f64 * 1000.0 / rate) as i64,
            None => self.started_millis,
        }
    }

    fn next_row(&mut self) -> Vec<Value> {
        let row = match &self.input {
            Input::OneRow | Input::Empty => vec![],
            Input::Values(rows) => rows[self.next as usize].clone(),
            Input::Datagen(d) => d.row(self.next, self.emit_millis()),
        };
        self.next += 1;
        row
    }
}

/// Filter and projection over a scan.
pub struct ProjectSource {
    scan: Scan,
    filter: Option<Bound>,
    projection: Vec<Bound>,
    /// The projection passes the input row through unchanged (`SELECT *`).
    identity: bool,
    limit: Option<u64>,
    emitted: u64,
}

impl ProjectSource {
    fn done(&self) -> bool {
        self.limit.is_some_and(|l| self.emitted >= l) || self.scan.exhausted()
    }
}

impl RowSource for ProjectSource {
    fn pull(&mut self, now: Instant, max: usize) -> Option<Vec<Row>> {
        if self.done() {
            return None;
        }
        let available = self.scan.available(now);
        let mut out = Vec::with_capacity(max.min(4096));
        let mut budget = max.saturating_mul(64).max(1024);
        while out.len() < max && self.scan.next < available && !self.done() && budget > 0 {
            budget -= 1;
            let input = self.scan.next_row();
            if let Some(f) = &self.filter
                && f.eval(&input) != Value::Bool(true)
            {
                continue;
            }
            let fields = if self.identity {
                input
            } else {
                self.projection.iter().map(|b| b.eval(&input)).collect()
            };
            out.push(Row::insert(fields));
            self.emitted += 1;
        }
        if out.is_empty() && self.done() {
            None
        } else {
            Some(out)
        }
    }

    fn exhausted(&self) -> bool {
        self.done()
    }
}

#[derive(Clone, Debug)]
enum Accumulator {
    Count(i64),
    Sum(Option<Value>),
    Min(Option<Value>),
    Max(Option<Value>),
    Avg(Option<f64>, Option<(i128, u32)>, i64),
}

impl Accumulator {
    fn new(spec: &AggSpec) -> Self {
        match spec.func {
            AggFunc::Count => Accumulator::Count(0),
            AggFunc::Sum => Accumulator::Sum(None),
            AggFunc::Min => Accumulator::Min(None),
            AggFunc::Max => Accumulator::Max(None),
            AggFunc::Avg => Accumulator::Avg(None, None, 0),
        }
    }

    fn add(&mut self, spec: &AggSpec, v: Option<Value>) {
        match self {
            Accumulator::Count(n) => {
                if v.as_ref().is_none_or(|v| !v.is_null()) {
                    *n += 1;
                }
            }
            Accumulator::Sum(acc) => {
                let Some(v) = v.filter(|v| !v.is_null()) else {
                    return;
                };
                *acc = Some(match acc.take() {
                    None => v,
                    Some(prev) => add_values(prev, v, &spec.ty),
                });
            }
            Accumulator::Min(acc) | Accumulator::Max(acc) => {
                let Some(v) = v.filter(|v| !v.is_null()) else {
                    return;
                };
                let is_min = matches!(spec.func, AggFunc::Min);
                let replace = match acc {
                    None => true,
                    Some(prev) => {
                        let ord = compare(&v, prev);
                        if is_min {
                            ord == Some(std::cmp::Ordering::Less)
                        } else {
                            ord == Some(std::cmp::Ordering::Greater)
                        }
                    }
                };
                if replace {
                    *acc = Some(v);
                }
            }
            Accumulator::Avg(float_sum, decimal_sum, n) => {
                let Some(v) = v.filter(|v| !v.is_null()) else {
                    return;
                };
                *n += 1;
                match v {
                    Value::Decimal(u, s) => {
                        let (pu, ps) = decimal_sum.unwrap_or((0, s));
                        *decimal_sum = Some((pu + u, ps));
                    }
                    other => {
                        *float_sum = Some(float_sum.unwrap_or(0.0) + other.as_f64().unwrap_or(0.0))
                    }
                }
            }
        }
    }

    fn value(&self, spec: &AggSpec) -> Value {
        match self {
            Accumulator::Count(n) => Value::Int(*n),
            Accumulator::Sum(v) | Accumulator::Min(v) | Accumulator::Max(v) => {
                v.clone().unwrap_or(Value::Null)
            }
            Accumulator::Avg(float_sum, decimal_sum, n) => {
                if *n == 0 {
                    return Value::Null;
                }
                if let Some((u, s)) = decimal_sum {
                    return super::planner::cast(Value::Decimal(u / *n as i128, *s), &spec.ty);
                }
                let avg = float_sum.unwrap_or(0.0) / *n as f64;
                match spec.ty.logical {
                    LogicalType::Double => Value::Double(avg),
                    LogicalType::Float => Value::Float(avg as f32),
                    _ => Value::Int(float_sum.unwrap_or(0.0) as i64 / *n),
                }
            }
        }
    }
}

fn add_values(a: Value, b: Value, ty: &DataType) -> Value {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => {
            let r = x.wrapping_add(y);
            Value::Int(match ty.logical {
                LogicalType::TinyInt => r as i8 as i64,
                LogicalType::SmallInt => r as i16 as i64,
                LogicalType::Integer => r as i32 as i64,
                _ => r,
            })
        }
        (Value::Decimal(x, s), Value::Decimal(y, _)) => Value::Decimal(x + y, s),
        (Value::Float(x), Value::Float(y)) => Value::Float(x + y),
        (x, y) => Value::Double(x.as_f64().unwrap_or(0.0) + y.as_f64().unwrap_or(0.0)),
    }
}

/// GROUP BY: a changelog (INSERT, UPDATE_BEFORE, UPDATE_AFTER) in streaming mode, final rows at
/// the end of input in batch mode.
pub struct AggregateSource {
    scan: Scan,
    filter: Option<Bound>,
    keys: Vec<Bound>,
    aggs: Vec<AggSpec>,
    output: Vec<OutputItem>,
    streaming: bool,
    groups: Vec<(Vec<Value>, Vec<Accumulator>)>,
    index: HashMap<String, usize>,
    pending: VecDeque<Row>,
    finished: bool,
}

impl AggregateSource {
    fn output_row(&self, group: usize) -> Vec<Value> {
        let (key, accs) = &self.groups[group];
        self.output
            .iter()
            .map(|o| match o {
                OutputItem::Key(k) => key[*k].clone(),
                OutputItem::Agg(a) => accs[*a].value(&self.aggs[*a]),
            })
            .collect()
    }

    fn accumulate(&mut self, input: &[Value]) {
        let key: Vec<Value> = self.keys.iter().map(|k| k.eval(input)).collect();
        let mut key_text = String::new();
        for v in &key {
            v.key_text(&mut key_text);
        }
        let (group, is_new) = match self.index.get(&key_text) {
            Some(g) => (*g, false),
            None => {
                let accs = self.aggs.iter().map(Accumulator::new).collect();
                self.groups.push((key, accs));
                self.index.insert(key_text, self.groups.len() - 1);
                (self.groups.len() - 1, true)
            }
        };
        let before = if self.streaming && !is_new {
            Some(self.output_row(group))
        } else {
            None
        };
        for (i, spec) in self.aggs.iter().enumerate() {
            let v = spec.arg.as_ref().map(|a| a.eval(input));
            self.groups[group].1[i].add(spec, v);
        }
        if self.streaming {
            let after = self.output_row(group);
            match before {
                None => self.pending.push_back(Row::insert(after)),
                Some(before) if before != after => {
                    self.pending.push_back(Row {
                        kind: RowKind::UpdateBefore,
                        fields: before,
                    });
                    self.pending.push_back(Row {
                        kind: RowKind::UpdateAfter,
                        fields: after,
                    });
                }
                Some(_) => {}
            }
        }
    }
}

impl RowSource for AggregateSource {
    fn pull(&mut self, now: Instant, max: usize) -> Option<Vec<Row>> {
        let available = self.scan.available(now);
        let mut budget = max.max(1);
        while self.pending.len() < max
            && self.scan.next < available
            && !self.scan.exhausted()
            && budget > 0
        {
            budget -= 1;
            let input = self.scan.next_row();
            if let Some(f) = &self.filter
                && f.eval(&input) != Value::Bool(true)
            {
                continue;
            }
            self.accumulate(&input);
        }
        if self.scan.exhausted() && !self.finished {
            self.finished = true;
            if !self.streaming {
                if self.groups.is_empty() && self.keys.is_empty() {
                    self.groups
                        .push((vec![], self.aggs.iter().map(Accumulator::new).collect()));
                }
                for g in 0..self.groups.len() {
                    let row = self.output_row(g);
                    self.pending.push_back(Row::insert(row));
                }
            }
        }
        if self.pending.is_empty() && self.finished {
            return None;
        }
        let n = max.min(self.pending.len());
        Some(self.pending.drain(..n).collect())
    }

    fn exhausted(&self) -> bool {
        self.finished && self.pending.is_empty()
    }
}

/// Builds the row source of a query plan, started at `started`.
pub fn source_for(
    plan: &QueryPlan,
    honor_rate: bool,
    started: Instant,
    started_millis: i64,
) -> Box<dyn RowSource> {
    let scan = Scan::new(plan, honor_rate, started, started_millis);
    match &plan.shape {
        Shape::Project(projection) => Box::new(ProjectSource {
            identity: projection.len() == plan.input_width()
                && projection
                    .iter()
                    .enumerate()
                    .all(|(i, b)| matches!(b, Bound::Col(c) if *c == i)),
            scan,
            filter: plan.filter.clone(),
            projection: projection.clone(),
            limit: plan.limit,
            emitted: 0,
        }),
        Shape::Aggregate { keys, aggs, output } => Box::new(AggregateSource {
            scan,
            filter: plan.filter.clone(),
            keys: keys.clone(),
            aggs: aggs.clone(),
            output: output.clone(),
            streaming: plan.streaming,
            groups: Vec::new(),
            index: HashMap::new(),
            pending: VecDeque::new(),
            finished: false,
        }),
    }
}

/// What a fetch of one token returns.
pub enum Page {
    /// The rows are in [`Fetcher::page`]; `next` is the next token.
    Payload {
        next: u64,
    },
    Eos,
    /// `Expecting token to be ...`.
    BadToken(String),
}

/// The gateway's `ResultFetcher`: the current token and the previous page may be fetched;
/// anything else is an error.
pub struct Fetcher {
    source: Box<dyn RowSource>,
    current: u64,
    prev: Vec<Row>,
    no_more: bool,
    rows_per_page: usize,
    empty_pages: bool,
    owe_empty: bool,
}

impl Fetcher {
    pub fn new(source: Box<dyn RowSource>, rows_per_page: usize, empty_pages: bool) -> Fetcher {
        Fetcher {
            source,
            current: 0,
            prev: Vec::new(),
            no_more: false,
            rows_per_page: rows_per_page.max(1),
            empty_pages,
            owe_empty: empty_pages,
        }
    }

    /// Rows of the last PAYLOAD page.
    pub fn page(&self) -> &[Row] {
        &self.prev
    }

    pub fn finished(&self) -> bool {
        self.no_more
    }

    pub fn fetch(&mut self, token: i64, now: Instant) -> Page {
        if token >= 0 && token as u64 == self.current {
            if self.no_more {
                return Page::Eos;
            }
            self.prev.clear();
            if self.owe_empty && !self.source.exhausted() {
                self.owe_empty = false;
                self.current += 1;
                return Page::Payload { next: self.current };
            }
            match self.source.pull(now, self.rows_per_page) {
                None => {
                    self.no_more = true;
                    Page::Eos
                }
                Some(rows) => {
                    self.owe_empty = self.empty_pages && !rows.is_empty();
                    self.prev = rows;
                    self.current += 1;
                    Page::Payload { next: self.current }
                }
            }
        } else if token >= 0 && token as u64 + 1 == self.current {
            Page::Payload { next: self.current }
        } else if self.current == 0 {
            Page::BadToken(format!("Expecting token to be 0, but found {token}."))
        } else {
            Page::BadToken(format!(
                "Expecting token to be {} or {}, but found {token}.",
                self.current,
                self.current - 1
            ))
        }
    }
}
