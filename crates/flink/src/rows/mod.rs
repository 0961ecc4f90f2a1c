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
//!
//! # Layout
//! - this file: the entry points ([`convert_page`], [`convert_row`], [`schema_to_proto`]) and
//!   their errors.
//! - `page`: reads a result page and converts its rows in one pass.
//! - `encoded`: rows in the result log's encoding, written as they are converted.
//! - `typed`: values read by their JSON type as the page is parsed.
//! - `value`: converts the JSON text of one value by its logical type.
//! - `decimal`: DECIMAL values as exact plain text.
//! - `temporal`: DATE, TIME and TIMESTAMP text as days, nanoseconds and instants.
//! - `sql_type`: the Flink SQL text of a logical type.

mod decimal;
mod encoded;
mod page;
mod sql_type;
mod temporal;
#[cfg(test)]
mod test_support;
mod typed;
mod value;

use thiserror::Error;

use crate::sql_gateway::wire::FetchResultsBody;
use crate::sql_gateway::{ColumnInfo, LogicalTypeJson, RowData, RowKindJson};
use flinkbroker_proto as proto;

pub use self::encoded::EncodedRows;
use self::value::convert_json;

/// A row or value the broker could not convert.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RowError {
    /// The JSON value does not fit the column's type.
    #[error("column {column}: expected {expected}, got {got}")]
    InvalidValue {
        /// The column, with the path to the value inside it (`c_arr[1]`, `c_row.x`).
        column: String,
        /// What the column's type expects, e.g. `a DECIMAL number`.
        expected: String,
        /// The offending JSON, cut to its first 64 characters.
        got: String,
    },
    /// The column's type is one the broker cannot represent.
    #[error("column {column}: type {type_root} is not supported")]
    UnsupportedType {
        /// The column, with the path to the value inside it.
        column: String,
        /// The type's root, e.g. `RAW`.
        type_root: String,
    },
    /// The row does not have one field per column.
    #[error("row has {fields} fields but the result has {columns} columns")]
    FieldCount {
        /// How many fields the row has.
        fields: usize,
        /// How many columns the result has.
        columns: usize,
    },
}

/// Converts a Flink logical type into its protobuf form, with its Flink SQL text.
fn logical_type_to_proto(t: &LogicalTypeJson) -> proto::LogicalType {
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
        sql: sql_type::logical_type_sql(t),
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
        arrow_schema: Vec::new(),
    }
}

/// Converts Flink's row kind.
fn row_kind_to_proto(kind: RowKindJson) -> proto::RowKind {
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

/// A result page whose rows were converted while it was read.
#[derive(Debug, Clone)]
pub struct ConvertedPage {
    /// The page without its rows: `results.data` is empty; the rows are in `rows`.
    pub body: FetchResultsBody,
    /// One row per entry of the page's `results.data`, in order, in the result log's
    /// encoding.
    pub rows: EncodedRows,
}

/// A result page the broker could not read, or a row of it that it could not convert.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PageError {
    /// The body is not a result page.
    #[error("invalid result page: {0}")]
    Body(String),
    /// The first row that does not fit the page's columns, as [`convert_row`] reports it.
    #[error(transparent)]
    Row(#[from] RowError),
}

/// Reads a result page (the body of `GET …/result/{token}`) and converts its rows.
///
/// Each value is read straight from the body by its column's type, without an intermediate
/// `RowData`. The outcome is always the one of parsing the body into `FetchResultsBody` and
/// calling [`convert_row`] on each row: a page the single pass does not take (a value that
/// does not convert, rows before their columns, a shape serde would also accept) is read
/// again that way, so the errors are exactly those of the per-row path.
pub fn convert_page(body: &[u8]) -> Result<ConvertedPage, PageError> {
    match page::convert_page_in_one_pass(body) {
        Some(page) => Ok(page),
        None => convert_page_row_by_row(body),
    }
}

/// Parses a page into `FetchResultsBody`, then converts each row with [`convert_row`].
fn convert_page_row_by_row(body: &[u8]) -> Result<ConvertedPage, PageError> {
    let mut body: FetchResultsBody =
        serde_json::from_slice(body).map_err(|e| PageError::Body(e.to_string()))?;
    let mut rows = EncodedRows::default();
    if let Some(results) = body.results.as_mut() {
        let data = std::mem::take(&mut results.data);
        for row in &data {
            rows.push(&convert_row(row, &results.columns)?);
        }
    }
    Ok(ConvertedPage { body, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    use flinkbroker_proto::value::Kind;

    use super::temporal::NANOS_PER_SECOND;
    use super::test_support::{ALL_TYPES_PAGE, int, string, ts};

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
}
