//! Result rows as Apache Arrow.
//!
//! Every Flink logical type a result can hold maps to an Arrow type without loss:
//!
//! | Flink | Arrow |
//! | --- | --- |
//! | BOOLEAN | Boolean |
//! | TINYINT, SMALLINT, INTEGER, BIGINT | Int8, Int16, Int32, Int64 |
//! | FLOAT, DOUBLE | Float32, Float64 |
//! | DECIMAL(p, s) | Decimal128(p, s) |
//! | CHAR, VARCHAR | Utf8 |
//! | BINARY, VARBINARY | Binary |
//! | DATE | Date32 |
//! | TIME(p) | Time64(ns) |
//! | TIMESTAMP(p) | Timestamp(ms for p ≤ 3, µs for p ≤ 6, else ns), no zone |
//! | TIMESTAMP_LTZ(p) | the same unit, zone `UTC` |
//! | INTERVAL YEAR TO MONTH | Interval(YearMonth) |
//! | INTERVAL DAY TO SECOND | Duration(ms) |
//! | ARRAY<T> | List<T> |
//! | MAP<K, V> | Map<K, V> |
//! | MULTISET<T> | Map<T, Int32> (each element to its count) |
//! | ROW<…> | Struct<…> |
//! | NULL | Null |
//!
//! A changelog's rows carry their kind in a first column, [`ROW_KIND_COLUMN`] (`+I`, `-U`,
//! `+U`, `-D`). [`Encoder`] writes a result's schema once and then record batches, each as
//! an encapsulated Arrow IPC message: the messages of one stream, concatenated, are an Arrow
//! IPC stream. [`rows`] reads record batches back into rows (the tests compare both
//! encodings value by value).

use std::sync::Arc;

use arrow_array::types::{
    Date32Type, Decimal128Type, DurationMillisecondType, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, IntervalYearMonthType, Time64NanosecondType,
};
use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Decimal128Array, DurationMillisecondArray,
    ListArray, MapArray, NullArray, PrimitiveArray, RecordBatch, RecordBatchOptions, StringArray,
    StructArray, Time64NanosecondArray, TimestampMicrosecondArray, TimestampMillisecondArray,
    TimestampNanosecondArray,
};
use arrow_array::{Date32Array, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array};
use arrow_array::{Int64Array, IntervalYearMonthArray};
use arrow_buffer::{NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_ipc::writer::{
    DictionaryTracker, IpcDataGenerator, IpcWriteContext, IpcWriteOptions, write_message,
};
use arrow_schema::{
    ArrowError, DataType, Field, Fields, IntervalUnit, Schema, SchemaRef, TimeUnit,
};
use flinkbroker_proto as proto;
use proto::value::Kind;

pub use arrow_array::RecordBatch as ArrowRecordBatch;

/// The column a changelog's rows carry their kind in: `+I`, `-U`, `+U` or `-D`.
pub const ROW_KIND_COLUMN: &str = "$row_kind";

/// What could not be encoded or read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A column's type has no Arrow mapping.
    #[error("column {column}: type {type_sql} has no arrow mapping")]
    UnsupportedType {
        /// The column.
        column: String,
        /// The type, as Flink SQL.
        type_sql: String,
    },
    /// A value does not fit its column's type.
    #[error("column {column}: {message}")]
    Value {
        /// The column.
        column: String,
        /// What is wrong with the value.
        message: String,
    },
    /// Arrow refused the data.
    #[error("arrow: {0}")]
    Arrow(#[from] ArrowError),
}

/// The Arrow schema of a result: one field per column, after the row kind column for a
/// changelog.
pub fn schema(result: &proto::ResultSchema, changelog: bool) -> Result<Schema, Error> {
    let mut fields = Vec::with_capacity(result.columns.len() + 1);
    if changelog {
        fields.push(Field::new(ROW_KIND_COLUMN, DataType::Utf8, false));
    }
    for column in &result.columns {
        let t = column.r#type.clone().unwrap_or_default();
        let data_type = data_type(&t).map_err(|type_sql| Error::UnsupportedType {
            column: column.name.clone(),
            type_sql,
        })?;
        fields.push(Field::new(&column.name, data_type, nullable(&t)));
    }
    Ok(Schema::new(fields))
}

/// Whether a field of type `t` may hold NULL (a NULL-typed one always does).
fn nullable(t: &proto::LogicalType) -> bool {
    t.nullable || t.type_root == "NULL"
}

/// The Arrow type of a Flink logical type; the type's SQL when it has none.
fn data_type(t: &proto::LogicalType) -> Result<DataType, String> {
    let unsupported = || {
        if t.sql.is_empty() {
            t.type_root.clone()
        } else {
            t.sql.clone()
        }
    };
    let nested = |child: &Option<Box<proto::LogicalType>>| -> Result<proto::LogicalType, String> {
        child.as_deref().cloned().ok_or_else(unsupported)
    };
    Ok(match t.type_root.as_str() {
        "BOOLEAN" => DataType::Boolean,
        "TINYINT" => DataType::Int8,
        "SMALLINT" => DataType::Int16,
        "INTEGER" => DataType::Int32,
        "BIGINT" => DataType::Int64,
        "FLOAT" => DataType::Float32,
        "DOUBLE" => DataType::Float64,
        "DECIMAL" => {
            let precision = u8::try_from(t.precision.unwrap_or(10)).map_err(|_| unsupported())?;
            let scale = i8::try_from(t.scale.unwrap_or(0)).map_err(|_| unsupported())?;
            DataType::Decimal128(precision, scale)
        }
        "CHAR" | "VARCHAR" => DataType::Utf8,
        "BINARY" | "VARBINARY" => DataType::Binary,
        "DATE" => DataType::Date32,
        "TIME_WITHOUT_TIME_ZONE" => DataType::Time64(TimeUnit::Nanosecond),
        "TIMESTAMP_WITHOUT_TIME_ZONE" => DataType::Timestamp(timestamp_unit(t.precision), None),
        "TIMESTAMP_WITH_LOCAL_TIME_ZONE" | "TIMESTAMP_WITH_TIME_ZONE" => {
            DataType::Timestamp(timestamp_unit(t.precision), Some("UTC".into()))
        }
        "INTERVAL_YEAR_MONTH" => DataType::Interval(IntervalUnit::YearMonth),
        "INTERVAL_DAY_TIME" => DataType::Duration(TimeUnit::Millisecond),
        "ARRAY" => {
            let element = nested(&t.element_type)?;
            DataType::List(Arc::new(Field::new(
                "element",
                data_type(&element)?,
                nullable(&element),
            )))
        }
        "MAP" => map_type(&nested(&t.key_type)?, &nested(&t.value_type)?)?,
        "MULTISET" => map_type(&nested(&t.element_type)?, &multiset_count())?,
        "ROW" => DataType::Struct(row_fields(t)?),
        "NULL" => DataType::Null,
        _ => return Err(unsupported()),
    })
}

/// The unit a TIMESTAMP of this precision is held in: the coarsest that loses nothing.
fn timestamp_unit(precision: Option<i32>) -> TimeUnit {
    match precision.unwrap_or(6) {
        0..=3 => TimeUnit::Millisecond,
        4..=6 => TimeUnit::Microsecond,
        _ => TimeUnit::Nanosecond,
    }
}

/// The count of each distinct element of a MULTISET.
fn multiset_count() -> proto::LogicalType {
    proto::LogicalType {
        type_root: "INTEGER".into(),
        nullable: false,
        sql: "INT NOT NULL".into(),
        ..proto::LogicalType::default()
    }
}

fn map_type(key: &proto::LogicalType, value: &proto::LogicalType) -> Result<DataType, String> {
    let entries = Fields::from(vec![
        // Arrow's map keys are never null.
        Field::new("key", data_type(key)?, false),
        Field::new("value", data_type(value)?, nullable(value)),
    ]);
    Ok(DataType::Map(
        Arc::new(Field::new("entries", DataType::Struct(entries), false)),
        false,
    ))
}

fn row_fields(t: &proto::LogicalType) -> Result<Fields, String> {
    t.fields
        .iter()
        .map(|field| {
            let field_type = field.r#type.clone().unwrap_or_default();
            Ok(Field::new(
                &field.name,
                data_type(&field_type)?,
                nullable(&field_type),
            ))
        })
        .collect::<Result<Vec<_>, String>>()
        .map(Fields::from)
}

/// Writes a result's rows as Arrow IPC messages: the schema once, then record batches.
pub struct Encoder {
    schema: SchemaRef,
    types: Vec<proto::LogicalType>,
    names: Vec<String>,
    changelog: bool,
    generator: IpcDataGenerator,
    tracker: DictionaryTracker,
    options: IpcWriteOptions,
    context: IpcWriteContext,
}

impl Encoder {
    /// An encoder of rows of `result`; with `changelog`, each row's kind is a first column.
    pub fn new(result: &proto::ResultSchema, changelog: bool) -> Result<Self, Error> {
        Ok(Self {
            schema: Arc::new(schema(result, changelog)?),
            types: result
                .columns
                .iter()
                .map(|c| c.r#type.clone().unwrap_or_default())
                .collect(),
            names: result.columns.iter().map(|c| c.name.clone()).collect(),
            changelog,
            generator: IpcDataGenerator::default(),
            tracker: DictionaryTracker::new(false),
            options: IpcWriteOptions::default(),
            context: IpcWriteContext::default(),
        })
    }

    /// The Arrow schema of the batches.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The schema as an encapsulated Arrow IPC message (the start of an IPC stream).
    pub fn schema_message(&mut self) -> Result<Vec<u8>, Error> {
        let encoded = self.generator.schema_to_bytes_with_dictionary_tracker(
            &self.schema,
            &mut self.tracker,
            &self.options,
        );
        let mut message = Vec::new();
        write_message(&mut message, encoded, &self.options)?;
        Ok(message)
    }

    /// The rows as one record batch.
    pub fn record_batch(&self, rows: &[proto::Row]) -> Result<RecordBatch, Error> {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.schema.fields().len());
        if self.changelog {
            columns.push(Arc::new(StringArray::from_iter_values(
                rows.iter().map(|row| row_kind_text(row.kind)),
            )));
        }
        for (index, t) in self.types.iter().enumerate() {
            let values: Vec<&proto::Value> = rows
                .iter()
                .map(|row| row.values.get(index).unwrap_or(&NULL))
                .collect();
            let field = &self.schema.fields()[index + usize::from(self.changelog)];
            let array = build(&values, t, field.data_type()).map_err(|message| Error::Value {
                column: self.names[index].clone(),
                message,
            })?;
            columns.push(array);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        Ok(RecordBatch::try_new_with_options(
            Arc::clone(&self.schema),
            columns,
            &options,
        )?)
    }

    /// The rows as an encapsulated Arrow IPC record batch message.
    pub fn batch_message(&mut self, rows: &[proto::Row]) -> Result<Vec<u8>, Error> {
        let batch = self.record_batch(rows)?;
        // No column is dictionary-encoded: a batch is one message.
        let (_dictionaries, encoded) =
            self.generator
                .encode(&batch, &mut self.tracker, &self.options, &mut self.context)?;
        let mut message = Vec::new();
        write_message(&mut message, encoded, &self.options)?;
        Ok(message)
    }
}

/// A row kind as the changelog column holds it.
pub fn row_kind_text(kind: i32) -> &'static str {
    match proto::RowKind::try_from(kind) {
        Ok(proto::RowKind::UpdateBefore) => "-U",
        Ok(proto::RowKind::UpdateAfter) => "+U",
        Ok(proto::RowKind::Delete) => "-D",
        _ => "+I",
    }
}

/// A value that is not there (a missing column, a NULL struct's fields): NULL.
static NULL: proto::Value = proto::Value { kind: None };

/// The key and value types of a MAP, or of a MULTISET (each element to its count).
fn map_entry_types(t: &proto::LogicalType) -> (proto::LogicalType, proto::LogicalType) {
    if t.type_root == "MULTISET" {
        (
            t.element_type.as_deref().cloned().unwrap_or_default(),
            multiset_count(),
        )
    } else {
        (
            t.key_type.as_deref().cloned().unwrap_or_default(),
            t.value_type.as_deref().cloned().unwrap_or_default(),
        )
    }
}

fn is_null(value: &proto::Value) -> bool {
    matches!(value.kind, None | Some(Kind::NullValue(_)))
}

fn wrong(value: &proto::Value, t: &proto::LogicalType) -> String {
    format!("a {} value cannot hold {:?}", t.type_root, value.kind)
}

/// One column of values as an array of `data_type` (`data_type(t)`).
fn build(
    values: &[&proto::Value],
    t: &proto::LogicalType,
    data_type: &DataType,
) -> Result<ArrayRef, String> {
    let nulls = || NullBuffer::from_iter(values.iter().map(|v| !is_null(v)));
    macro_rules! primitive {
        ($arrow:ty, $pattern:pat => $converted:expr) => {{
            let array: PrimitiveArray<$arrow> = values
                .iter()
                .map(|value| match &value.kind {
                    None | Some(Kind::NullValue(_)) => Ok(None),
                    Some($pattern) => $converted.map(Some),
                    Some(_) => Err(wrong(value, t)),
                })
                .collect::<Result<_, String>>()?;
            Arc::new(array) as ArrayRef
        }};
    }
    let out_of_range =
        |v: &dyn std::fmt::Display| format!("{v} is out of range for {}", t.type_root);
    Ok(match data_type {
        DataType::Null => {
            if let Some(value) = values.iter().find(|v| !is_null(v)) {
                return Err(wrong(value, t));
            }
            Arc::new(NullArray::new(values.len()))
        }
        DataType::Boolean => {
            let array: BooleanArray = values
                .iter()
                .map(|value| match &value.kind {
                    None | Some(Kind::NullValue(_)) => Ok(None),
                    Some(Kind::BoolValue(b)) => Ok(Some(*b)),
                    Some(_) => Err(wrong(value, t)),
                })
                .collect::<Result<_, String>>()?;
            Arc::new(array)
        }
        DataType::Int8 => {
            primitive!(Int8Type, Kind::IntValue(i) => i8::try_from(*i).map_err(|_| out_of_range(i)))
        }
        DataType::Int16 => {
            primitive!(Int16Type, Kind::IntValue(i) => i16::try_from(*i).map_err(|_| out_of_range(i)))
        }
        DataType::Int32 => {
            primitive!(Int32Type, Kind::IntValue(i) => i32::try_from(*i).map_err(|_| out_of_range(i)))
        }
        DataType::Int64 => primitive!(Int64Type, Kind::IntValue(i) => Ok::<i64, String>(*i)),
        DataType::Float32 => {
            primitive!(Float32Type, Kind::DoubleValue(d) => Ok::<f32, String>(*d as f32))
        }
        DataType::Float64 => primitive!(Float64Type, Kind::DoubleValue(d) => Ok::<f64, String>(*d)),
        DataType::Decimal128(precision, scale) => {
            let array =
                primitive!(Decimal128Type, Kind::DecimalValue(text) => unscaled(text, *scale));
            let array = array
                .as_any()
                .downcast_ref::<Decimal128Array>()
                .cloned()
                .ok_or("a decimal column")?
                .with_precision_and_scale(*precision, *scale)
                .map_err(|e| e.to_string())?;
            Arc::new(array)
        }
        DataType::Utf8 => {
            let array: StringArray = values
                .iter()
                .map(|value| match &value.kind {
                    None | Some(Kind::NullValue(_)) => Ok(None),
                    Some(Kind::StringValue(s)) => Ok(Some(s.as_str())),
                    Some(_) => Err(wrong(value, t)),
                })
                .collect::<Result<_, String>>()?;
            Arc::new(array)
        }
        DataType::Binary => {
            let array: BinaryArray = values
                .iter()
                .map(|value| match &value.kind {
                    None | Some(Kind::NullValue(_)) => Ok(None),
                    Some(Kind::BytesValue(b)) => Ok(Some(b.as_slice())),
                    Some(_) => Err(wrong(value, t)),
                })
                .collect::<Result<_, String>>()?;
            Arc::new(array)
        }
        DataType::Date32 => primitive!(Date32Type, Kind::DateValue(d) => Ok::<i32, String>(*d)),
        DataType::Time64(_) => {
            primitive!(Time64NanosecondType, Kind::TimeValue(n) => Ok::<i64, String>(*n))
        }
        DataType::Interval(_) => {
            primitive!(IntervalYearMonthType, Kind::IntValue(i) => i32::try_from(*i).map_err(|_| out_of_range(i)))
        }
        DataType::Duration(_) => {
            primitive!(DurationMillisecondType, Kind::IntValue(i) => Ok::<i64, String>(*i))
        }
        DataType::Timestamp(unit, zone) => {
            let instant = |value: &proto::Value| -> Result<Option<i64>, String> {
                match &value.kind {
                    None | Some(Kind::NullValue(_)) => Ok(None),
                    Some(Kind::TimestampValue(ts) | Kind::InstantValue(ts)) => {
                        in_unit(ts, *unit).map(Some).ok_or_else(|| {
                            format!(
                                "{}.{:09} s does not fit a {unit:?} timestamp",
                                ts.seconds, ts.nanos
                            )
                        })
                    }
                    Some(_) => Err(wrong(value, t)),
                }
            };
            let held: Vec<Option<i64>> = values
                .iter()
                .map(|value| instant(value))
                .collect::<Result<_, String>>()?;
            match unit {
                TimeUnit::Millisecond => {
                    Arc::new(TimestampMillisecondArray::from(held).with_timezone_opt(zone.clone()))
                }
                TimeUnit::Microsecond => {
                    Arc::new(TimestampMicrosecondArray::from(held).with_timezone_opt(zone.clone()))
                }
                _ => Arc::new(TimestampNanosecondArray::from(held).with_timezone_opt(zone.clone())),
            }
        }
        DataType::List(field) => {
            let element = t.element_type.as_deref().cloned().unwrap_or_default();
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut elements: Vec<&proto::Value> = Vec::new();
            for value in values {
                match &value.kind {
                    None | Some(Kind::NullValue(_)) => {}
                    Some(Kind::ArrayValue(array)) => elements.extend(array.elements.iter()),
                    Some(_) => return Err(wrong(value, t)),
                }
                offsets.push(i32::try_from(elements.len()).map_err(|_| "too many elements")?);
            }
            let child = build(&elements, &element, field.data_type())?;
            Arc::new(
                ListArray::try_new(
                    Arc::clone(field),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    child,
                    Some(nulls()),
                )
                .map_err(|e| e.to_string())?,
            )
        }
        DataType::Map(entries, _) => {
            let (key_type, value_type) = map_entry_types(t);
            let DataType::Struct(fields) = entries.data_type() else {
                return Err("a map's entries are a struct".into());
            };
            let mut offsets = Vec::with_capacity(values.len() + 1);
            offsets.push(0i32);
            let mut keys: Vec<&proto::Value> = Vec::new();
            let mut items: Vec<&proto::Value> = Vec::new();
            for value in values {
                match &value.kind {
                    None | Some(Kind::NullValue(_)) => {}
                    Some(Kind::MapValue(map)) => {
                        for entry in &map.entries {
                            let key = entry.key.as_ref().unwrap_or(&NULL);
                            if is_null(key) {
                                return Err(
                                    "a map key is NULL, which arrow maps cannot hold".into()
                                );
                            }
                            keys.push(key);
                            items.push(entry.value.as_ref().unwrap_or(&NULL));
                        }
                    }
                    Some(_) => return Err(wrong(value, t)),
                }
                offsets.push(i32::try_from(keys.len()).map_err(|_| "too many entries")?);
            }
            let key_array = build(&keys, &key_type, fields[0].data_type())?;
            let value_array = build(&items, &value_type, fields[1].data_type())?;
            let entries_array =
                StructArray::try_new(fields.clone(), vec![key_array, value_array], None)
                    .map_err(|e| e.to_string())?;
            Arc::new(
                MapArray::try_new(
                    Arc::clone(entries),
                    OffsetBuffer::new(ScalarBuffer::from(offsets)),
                    entries_array,
                    Some(nulls()),
                    false,
                )
                .map_err(|e| e.to_string())?,
            )
        }
        DataType::Struct(fields) => {
            for value in values {
                if !matches!(
                    value.kind,
                    None | Some(Kind::NullValue(_)) | Some(Kind::RowValue(_))
                ) {
                    return Err(wrong(value, t));
                }
            }
            let children = fields
                .iter()
                .enumerate()
                .map(|(index, field)| {
                    let column: Vec<&proto::Value> = values
                        .iter()
                        .map(|value| match &value.kind {
                            Some(Kind::RowValue(row)) => row.fields.get(index).unwrap_or(&NULL),
                            _ => &NULL,
                        })
                        .collect();
                    let field_type = t
                        .fields
                        .get(index)
                        .and_then(|f| f.r#type.clone())
                        .unwrap_or_default();
                    build(&column, &field_type, field.data_type())
                })
                .collect::<Result<Vec<_>, String>>()?;
            if fields.is_empty() {
                Arc::new(StructArray::new_empty_fields(values.len(), Some(nulls())))
            } else {
                Arc::new(
                    StructArray::try_new(fields.clone(), children, Some(nulls()))
                        .map_err(|e| e.to_string())?,
                )
            }
        }
        other => return Err(format!("no arrow column of type {other}")),
    })
}

/// A DECIMAL's exact text (`-12.50`) as its unscaled integer at `scale`.
fn unscaled(text: &str, scale: i8) -> Result<i128, String> {
    let invalid = || format!("{text:?} is not a DECIMAL of scale {scale}");
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let scale = usize::try_from(scale).map_err(|_| invalid())?;
    if fraction.len() > scale
        || whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return Err(invalid());
    }
    let mut value: i128 = 0;
    for digit in whole
        .bytes()
        .chain(fraction.bytes())
        .chain(std::iter::repeat_n(b'0', scale - fraction.len()))
    {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i128::from(digit - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if negative { -value } else { value })
}

/// A protobuf timestamp in `unit`s since the epoch; None when it does not fit or would lose
/// digits.
fn in_unit(ts: &prost_types::Timestamp, unit: TimeUnit) -> Option<i64> {
    let (per_second, nanos_per_unit) = match unit {
        TimeUnit::Second => (1, 1_000_000_000),
        TimeUnit::Millisecond => (1_000, 1_000_000),
        TimeUnit::Microsecond => (1_000_000, 1_000),
        TimeUnit::Nanosecond => (1_000_000_000, 1),
    };
    if ts.nanos % nanos_per_unit != 0 {
        return None;
    }
    ts.seconds
        .checked_mul(per_second)?
        .checked_add(i64::from(ts.nanos / nanos_per_unit))
}

/// Reads record batches from Arrow IPC messages as they arrive (the schema message first).
#[derive(Debug, Default)]
pub struct Decoder {
    inner: arrow_ipc::reader::StreamDecoder,
    schema: Option<SchemaRef>,
}

impl Decoder {
    /// Reads one whole message or more; returns the batches it completed.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<RecordBatch>, Error> {
        if self.schema.is_none() {
            // The schema message has no body: the stream decoder takes it in only with the
            // next message's bytes, so it is read here at once.
            self.schema = Some(Arc::new(arrow_ipc::convert::try_schema_from_ipc_buffer(
                bytes,
            )?));
        }
        let mut buffer = arrow_buffer::Buffer::from(bytes.to_vec());
        let mut batches = Vec::new();
        while !buffer.is_empty() {
            if let Some(batch) = self.inner.decode(&mut buffer)? {
                batches.push(batch);
            }
        }
        Ok(batches)
    }

    /// The stream's schema, once its message was read.
    pub fn schema(&self) -> Option<SchemaRef> {
        self.schema.clone()
    }
}

/// Reads an Arrow IPC stream (a schema message and record batch messages, the end marker
/// optional) into its schema and record batches.
pub fn read_stream(stream: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), Error> {
    let reader = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(stream), None)?;
    let schema = reader.schema();
    let batches = reader.collect::<Result<Vec<_>, ArrowError>>()?;
    Ok((schema, batches))
}

/// Reads record batches back into rows of `result`'s columns (the row kind from the row
/// kind column of a changelog, else INSERT).
pub fn rows(batch: &RecordBatch, result: &proto::ResultSchema) -> Result<Vec<proto::Row>, Error> {
    let changelog = batch
        .schema()
        .fields()
        .first()
        .is_some_and(|f| f.name() == ROW_KIND_COLUMN);
    let offset = usize::from(changelog);
    let kinds = if changelog {
        batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .cloned()
    } else {
        None
    };
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let kind = match kinds.as_ref().map(|k| k.value(row)) {
            Some("-U") => proto::RowKind::UpdateBefore,
            Some("+U") => proto::RowKind::UpdateAfter,
            Some("-D") => proto::RowKind::Delete,
            _ => proto::RowKind::Insert,
        };
        let mut values = Vec::with_capacity(result.columns.len());
        for (index, column) in result.columns.iter().enumerate() {
            let t = column.r#type.clone().unwrap_or_default();
            let array = batch.column(index + offset);
            values.push(
                value(array.as_ref(), row, &t).map_err(|message| Error::Value {
                    column: column.name.clone(),
                    message,
                })?,
            );
        }
        rows.push(proto::Row {
            kind: kind as i32,
            values,
        });
    }
    Ok(rows)
}

fn downcast<T: 'static>(array: &dyn Array) -> Result<&T, String> {
    array
        .as_any()
        .downcast_ref::<T>()
        .ok_or_else(|| format!("unexpected arrow array {}", array.data_type()))
}

/// The value at `row` of an array of type `t`, as the ROWS encoding carries it.
fn value(array: &dyn Array, row: usize, t: &proto::LogicalType) -> Result<proto::Value, String> {
    if array.is_null(row) || matches!(array.data_type(), DataType::Null) {
        return Ok(proto::Value {
            kind: Some(Kind::NullValue(proto::NullValue::NullValue as i32)),
        });
    }
    let timestamp = |value: i64, unit: &TimeUnit| {
        let per_second: i64 = match unit {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        };
        let nanos_per_unit = 1_000_000_000 / per_second;
        prost_types::Timestamp {
            seconds: value.div_euclid(per_second),
            nanos: i32::try_from(value.rem_euclid(per_second) * nanos_per_unit).unwrap_or(0),
        }
    };
    let kind = match array.data_type() {
        DataType::Boolean => Kind::BoolValue(downcast::<BooleanArray>(array)?.value(row)),
        DataType::Int8 => Kind::IntValue(i64::from(downcast::<Int8Array>(array)?.value(row))),
        DataType::Int16 => Kind::IntValue(i64::from(downcast::<Int16Array>(array)?.value(row))),
        DataType::Int32 => Kind::IntValue(i64::from(downcast::<Int32Array>(array)?.value(row))),
        DataType::Int64 => Kind::IntValue(downcast::<Int64Array>(array)?.value(row)),
        DataType::Float32 => {
            // As the ROWS encoding reads a FLOAT: its shortest decimal text, as a double.
            let float = downcast::<Float32Array>(array)?.value(row);
            Kind::DoubleValue(float.to_string().parse().unwrap_or(f64::from(float)))
        }
        DataType::Float64 => Kind::DoubleValue(downcast::<Float64Array>(array)?.value(row)),
        DataType::Decimal128(_, scale) => {
            let unscaled = downcast::<Decimal128Array>(array)?.value(row);
            Kind::DecimalValue(decimal_text(unscaled, *scale))
        }
        DataType::Utf8 => Kind::StringValue(downcast::<StringArray>(array)?.value(row).to_owned()),
        DataType::Binary => Kind::BytesValue(downcast::<BinaryArray>(array)?.value(row).to_vec()),
        DataType::Date32 => Kind::DateValue(downcast::<Date32Array>(array)?.value(row)),
        DataType::Time64(_) => {
            Kind::TimeValue(downcast::<Time64NanosecondArray>(array)?.value(row))
        }
        DataType::Interval(_) => Kind::IntValue(i64::from(
            downcast::<IntervalYearMonthArray>(array)?.value(row),
        )),
        DataType::Duration(_) => {
            Kind::IntValue(downcast::<DurationMillisecondArray>(array)?.value(row))
        }
        DataType::Timestamp(unit, zone) => {
            let raw = match unit {
                TimeUnit::Millisecond => downcast::<TimestampMillisecondArray>(array)?.value(row),
                TimeUnit::Microsecond => downcast::<TimestampMicrosecondArray>(array)?.value(row),
                _ => downcast::<TimestampNanosecondArray>(array)?.value(row),
            };
            let ts = timestamp(raw, unit);
            if zone.is_some() {
                Kind::InstantValue(ts)
            } else {
                Kind::TimestampValue(ts)
            }
        }
        DataType::List(_) => {
            let list = downcast::<ListArray>(array)?;
            let elements = list.value(row);
            let element = t.element_type.as_deref().cloned().unwrap_or_default();
            Kind::ArrayValue(proto::ArrayValue {
                elements: (0..elements.len())
                    .map(|i| value(elements.as_ref(), i, &element))
                    .collect::<Result<_, String>>()?,
            })
        }
        DataType::Map(_, _) => {
            let map = downcast::<MapArray>(array)?;
            let entries = map.value(row);
            let (key_type, value_type) = map_entry_types(t);
            Kind::MapValue(proto::MapValue {
                entries: (0..entries.len())
                    .map(|i| {
                        Ok(proto::MapEntry {
                            key: Some(value(entries.column(0).as_ref(), i, &key_type)?),
                            value: Some(value(entries.column(1).as_ref(), i, &value_type)?),
                        })
                    })
                    .collect::<Result<_, String>>()?,
            })
        }
        DataType::Struct(_) => {
            let row_array = downcast::<StructArray>(array)?;
            Kind::RowValue(proto::RowValue {
                fields: row_array
                    .columns()
                    .iter()
                    .enumerate()
                    .map(|(i, column)| {
                        let field_type = t
                            .fields
                            .get(i)
                            .and_then(|f| f.r#type.clone())
                            .unwrap_or_default();
                        value(column.as_ref(), row, &field_type)
                    })
                    .collect::<Result<_, String>>()?,
            })
        }
        other => return Err(format!("no value of arrow type {other}")),
    };
    Ok(proto::Value { kind: Some(kind) })
}

/// An unscaled decimal as exact text at `scale` (`-1250`, 2 → `-12.50`).
fn decimal_text(unscaled: i128, scale: i8) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    let Ok(scale) = usize::try_from(scale) else {
        return format!("{sign}{digits}");
    };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{whole}.{fraction}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_keep_every_digit() {
        for (text, scale, unscaled_value) in [
            ("12.50", 2, 1250),
            ("-0.05", 2, -5),
            ("7", 2, 700),
            ("0.1", 3, 100),
            (
                "99999999999999999999999999999999999999",
                0,
                99_999_999_999_999_999_999_999_999_999_999_999_999,
            ),
        ] {
            assert_eq!(unscaled(text, scale), Ok(unscaled_value), "{text}");
        }
        assert_eq!(decimal_text(1250, 2), "12.50");
        assert_eq!(decimal_text(-5, 2), "-0.05");
        assert_eq!(decimal_text(0, 3), "0.000");
        assert!(unscaled("1.234", 2).is_err(), "more digits than the scale");
        assert!(unscaled("1e5", 2).is_err());
    }

    #[test]
    fn timestamps_use_the_unit_their_precision_needs() {
        let ts = prost_types::Timestamp {
            seconds: -1,
            nanos: 500_000_000,
        };
        assert_eq!(in_unit(&ts, TimeUnit::Millisecond), Some(-500));
        assert_eq!(in_unit(&ts, TimeUnit::Nanosecond), Some(-500_000_000));
        let far = prost_types::Timestamp {
            seconds: 253_402_300_799,
            nanos: 0,
        };
        assert_eq!(
            in_unit(&far, TimeUnit::Nanosecond),
            None,
            "year 9999 overflows ns"
        );
        assert_eq!(timestamp_unit(Some(3)), TimeUnit::Millisecond);
        assert_eq!(timestamp_unit(Some(6)), TimeUnit::Microsecond);
        assert_eq!(timestamp_unit(Some(9)), TimeUnit::Nanosecond);
    }
}
