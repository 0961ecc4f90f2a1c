//! A row of `result_logs`: the head of one query statement's result log.

use sea_orm::entity::prelude::*;

/// How far a statement's results were logged; the rows are in `result_batches`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "result_logs")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub(crate) job_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) idx: i64,
    /// The statement's attempt the rows come from.
    pub(crate) attempt: i64,
    /// The result columns as the SQL Gateway reports them (JSON).
    #[sea_orm(column_type = "Blob")]
    pub(crate) schema: Vec<u8>,
    /// Rows logged since row 0 (the offset of the next row).
    pub(crate) rows_logged: i64,
    /// The first row still held (older ones were dropped by the sliding window).
    pub(crate) earliest_row: i64,
    pub(crate) bytes_held: i64,
    pub(crate) bytes_logged: i64,
    /// The SQL Gateway's token of the next page to fetch; NULL once the log ended.
    pub(crate) next_token: Option<i64>,
    /// The token of a fetch sent while the rows before it were still being appended, as
    /// drains of earlier versions recorded it (the drain now appends rows before the next
    /// fetch); a driver resuming such a log finds the gateway may be past `next_token`.
    pub(crate) fetch_sent: Option<i64>,
    /// `LogEnd::as_str` once the log ended.
    #[sea_orm(column_type = "Text", nullable)]
    pub(crate) end_reason: Option<String>,
    pub(crate) updated_at: i64,
    /// When the retention janitor deleted the rows.
    pub(crate) deleted_at: Option<i64>,
    /// When the log was opened for its attempt (NULL for logs opened before it was recorded).
    pub(crate) opened_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
