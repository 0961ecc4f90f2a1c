//! Serde models of the SQL Gateway's JSON, as the recorded transcripts show them
//! (`isQueryResult`, `columns`, `logicalType`; not the published spec's names).

use serde::{Deserialize, Serialize};

/// `GET /api_versions`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub(crate) struct ApiVersionsBody {
    /// The versions the gateway speaks (`V1`, `V2`, ...).
    pub(crate) versions: Vec<String>,
}

/// `POST /sessions` request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OpenSessionBody<'a> {
    /// The session's name, for the gateway's logs.
    pub(crate) session_name: &'a str,
    /// The session's configuration.
    pub(crate) properties: &'a std::collections::BTreeMap<String, String>,
}

/// `POST /sessions` response.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct OpenSessionResponse {
    /// The new session's handle.
    pub(crate) session_handle: String,
}

/// `POST /sessions/{s}/statements` request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExecuteStatementBody<'a> {
    /// The SQL text of one statement.
    pub(crate) statement: &'a str,
    /// The statement's time limit: 0, none, the only value the gateway accepts.
    pub(crate) execution_timeout: u64,
    /// Configuration for this statement only.
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub(crate) execution_config: &'a std::collections::BTreeMap<String, String>,
}

/// `POST /sessions/{s}/statements` response.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ExecuteStatementResponse {
    /// The handle of the operation that runs the statement.
    pub(crate) operation_handle: String,
}

/// `GET …/status`, `POST …/cancel`, `DELETE …/close`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct OperationStatusBody {
    /// The operation's status name (`RUNNING`, `FINISHED`, ...).
    pub(crate) status: String,
}

/// An error body: `{"errors": ["...", "<java stack text>"]}`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ErrorBody {
    /// Plain messages and Java stack text.
    #[serde(default)]
    pub(crate) errors: Vec<String>,
}

/// The kind of a result page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResultType {
    /// No rows yet: the same token is asked for again later.
    NotReady,
    /// Rows (possibly none) and, usually, the next page's token.
    Payload,
    /// The end of the results.
    Eos,
}

/// Flink's RowKind as the JSON row format spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RowKindJson {
    /// A new row.
    Insert,
    /// The previous content of an updated row.
    UpdateBefore,
    /// The new content of an updated row.
    UpdateAfter,
    /// A row taken back.
    Delete,
}

/// One row: its kind and one raw JSON value per column.
///
/// The values are kept as text, so that DECIMAL values are converted without passing
/// through a float.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RowData {
    /// The row's kind.
    pub kind: RowKindJson,
    /// One raw JSON value per column, in column order.
    pub fields: Vec<Box<serde_json::value::RawValue>>,
}

/// A Flink logical type in the gateway's JSON (`{"type":"INTEGER","nullable":false}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogicalTypeJson {
    /// The type's root (`INTEGER`, `VARCHAR`, `ROW`, ...).
    #[serde(rename = "type")]
    pub type_root: String,
    /// Whether values may be NULL; true when the JSON does not say.
    #[serde(default = "default_nullable")]
    pub nullable: bool,
    /// The length of CHAR, VARCHAR, BINARY and VARBINARY types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<i32>,
    /// The precision of DECIMAL, TIME, TIMESTAMP and INTERVAL types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<i32>,
    /// The scale of a DECIMAL type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<i32>,
    /// The element type of an ARRAY or MULTISET.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_type: Option<Box<LogicalTypeJson>>,
    /// The key type of a MAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<Box<LogicalTypeJson>>,
    /// The value type of a MAP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_type: Option<Box<LogicalTypeJson>>,
    /// The fields of a ROW, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Vec<RowFieldJson>>,
}

fn default_nullable() -> bool {
    true
}

/// A field of a ROW type.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RowFieldJson {
    /// The field's name.
    pub name: String,
    /// The field's type.
    pub field_type: LogicalTypeJson,
    /// The field's description, when the type declares one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnInfo {
    /// The column's name.
    pub name: String,
    /// The column's type.
    pub logical_type: LogicalTypeJson,
    /// The column's comment, if any.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The `results` object of a page.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultsBody {
    /// The result's columns.
    #[serde(default)]
    pub columns: Vec<ColumnInfo>,
    /// The format of the rows (`JSON`).
    #[serde(default)]
    pub row_format: Option<String>,
    /// The page's rows.
    #[serde(default)]
    pub data: Vec<RowData>,
}

/// `GET …/result/{token}` response as it is on the wire.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchResultsBody {
    /// The page's kind.
    pub result_type: ResultType,
    /// Whether the statement is a query (whose rows are its results).
    #[serde(default)]
    pub is_query_result: Option<bool>,
    /// The Flink job the statement started, if any.
    #[serde(default, rename = "jobID")]
    pub job_id: Option<String>,
    /// `SUCCESS` or `SUCCESS_WITH_CONTENT`.
    #[serde(default)]
    pub result_kind: Option<String>,
    /// The columns and rows.
    #[serde(default)]
    pub results: Option<ResultsBody>,
    /// The URI of the next page; none at the end.
    #[serde(default)]
    pub next_result_uri: Option<String>,
}

/// One result page, with the next token parsed out of `nextResultUri`.
#[derive(Debug, Clone)]
pub struct ResultPage {
    /// The page's kind.
    pub result_type: ResultType,
    /// Whether the statement is a query (whose rows are its results).
    pub is_query_result: Option<bool>,
    /// The Flink job the statement started, if any.
    pub job_id: Option<String>,
    /// `SUCCESS` or `SUCCESS_WITH_CONTENT`.
    pub result_kind: Option<String>,
    /// The result's columns.
    pub columns: Vec<ColumnInfo>,
    /// The page's rows.
    pub data: Vec<RowData>,
    /// The token of the next page, read from `nextResultUri`.
    ///
    /// None at EOS or when the gateway sent none.
    pub next_token: Option<u64>,
}

/// A result page, read once: what deciding on the next fetch needs, and its rows converted
/// while the body was read (`rows::convert_page`).
#[derive(Debug, Clone)]
pub struct RawPage {
    /// The page's kind.
    pub result_type: ResultType,
    /// The result's columns.
    pub columns: Vec<ColumnInfo>,
    /// How many rows the page holds.
    pub rows: usize,
    /// The token of the next page; None at EOS or when the gateway sent none.
    pub next_token: Option<u64>,
    /// The page's rows in the result log's encoding, or why they do not convert (the first
    /// row that does not).
    pub data: Result<crate::rows::EncodedRows, String>,
}

/// The parts of a `FetchResultsBody` read before its rows are converted.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PageHeader {
    /// The page's kind.
    pub(crate) result_type: ResultType,
    /// The columns, and the rows counted.
    #[serde(default)]
    pub(crate) results: Option<ResultsHeader>,
    /// The URI of the next page; none at the end.
    #[serde(default)]
    pub(crate) next_result_uri: Option<String>,
}

/// The `results` of a page, its rows only counted.
#[derive(Debug, Deserialize)]
pub(crate) struct ResultsHeader {
    /// The result's columns.
    #[serde(default)]
    pub(crate) columns: Vec<ColumnInfo>,
    /// One entry per row, its content skipped.
    #[serde(default)]
    pub(crate) data: Vec<serde::de::IgnoredAny>,
}
