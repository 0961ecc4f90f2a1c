//! Serde models of the SQL Gateway's JSON, as the recorded transcripts show them
//! (`isQueryResult`, `columns`, `logicalType`; not the published spec's names).

use serde::{Deserialize, Serialize};

/// `GET /api_versions`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ApiVersionsBody {
    pub versions: Vec<String>,
}

/// `POST /sessions` request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenSessionBody<'a> {
    pub session_name: &'a str,
    pub properties: &'a std::collections::BTreeMap<String, String>,
}

/// `POST /sessions` response.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenSessionResponse {
    pub session_handle: String,
}

/// `POST /sessions/{s}/statements` request.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteStatementBody<'a> {
    pub statement: &'a str,
    pub execution_timeout: u64,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub execution_config: &'a std::collections::BTreeMap<String, String>,
}

/// `POST /sessions/{s}/statements` response.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteStatementResponse {
    pub operation_handle: String,
}

/// `GET …/status`, `POST …/cancel`, `DELETE …/close`.
#[derive(Debug, Clone, Deserialize)]
pub struct OperationStatusBody {
    pub status: String,
}

/// An error body: `{"errors": ["...", "<java stack text>"]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<String>,
}

/// The kind of a result page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResultType {
    NotReady,
    Payload,
    Eos,
}

/// Flink's RowKind as the JSON row format spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RowKindJson {
    Insert,
    UpdateBefore,
    UpdateAfter,
    Delete,
}

/// One row: its kind and one raw JSON value per column, kept as text so that DECIMAL
/// values are converted without passing through a float.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct RowData {
    pub kind: RowKindJson,
    pub fields: Vec<Box<serde_json::value::RawValue>>,
}

/// A Flink logical type in the gateway's JSON (`{"type":"INTEGER","nullable":false}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LogicalTypeJson {
    #[serde(rename = "type")]
    pub type_root: String,
    #[serde(default = "default_nullable")]
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub length: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub element_type: Option<Box<LogicalTypeJson>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_type: Option<Box<LogicalTypeJson>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_type: Option<Box<LogicalTypeJson>>,
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
    pub name: String,
    pub field_type: LogicalTypeJson,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One result column.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ColumnInfo {
    pub name: String,
    pub logical_type: LogicalTypeJson,
    #[serde(default)]
    pub comment: Option<String>,
}

/// The `results` object of a page.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultsBody {
    #[serde(default)]
    pub columns: Vec<ColumnInfo>,
    #[serde(default)]
    pub row_format: Option<String>,
    #[serde(default)]
    pub data: Vec<RowData>,
}

/// `GET …/result/{token}` response as it is on the wire.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchResultsBody {
    pub result_type: ResultType,
    #[serde(default)]
    pub is_query_result: Option<bool>,
    #[serde(default, rename = "jobID")]
    pub job_id: Option<String>,
    #[serde(default)]
    pub result_kind: Option<String>,
    #[serde(default)]
    pub results: Option<ResultsBody>,
    #[serde(default)]
    pub next_result_uri: Option<String>,
}

/// One result page, with the next token parsed out of `nextResultUri`.
#[derive(Debug, Clone)]
pub struct ResultPage {
    pub result_type: ResultType,
    pub is_query_result: Option<bool>,
    pub job_id: Option<String>,
    pub result_kind: Option<String>,
    pub columns: Vec<ColumnInfo>,
    pub data: Vec<RowData>,
    /// The token of the next page, read from `nextResultUri`; None at EOS or when the
    /// gateway sent none.
    pub next_token: Option<u64>,
}

/// A result page as it came, with what deciding on the next fetch needs read out of it: the
/// rows stay encoded in `body` until they are converted (`rows::convert_page`).
#[derive(Debug, Clone)]
pub struct RawPage {
    pub result_type: ResultType,
    pub columns: Vec<ColumnInfo>,
    /// How many rows the page holds.
    pub rows: usize,
    /// The token of the next page; None at EOS or when the gateway sent none.
    pub next_token: Option<u64>,
    /// The response body, a `FetchResultsBody`.
    pub body: Vec<u8>,
}

/// The parts of a `FetchResultsBody` read before its rows are converted.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageHeader {
    pub result_type: ResultType,
    #[serde(default)]
    pub results: Option<ResultsHeader>,
    #[serde(default)]
    pub next_result_uri: Option<String>,
}

/// The `results` of a page, its rows only counted.
#[derive(Debug, Deserialize)]
pub struct ResultsHeader {
    #[serde(default)]
    pub columns: Vec<ColumnInfo>,
    #[serde(default)]
    pub data: Vec<serde::de::IgnoredAny>,
}
