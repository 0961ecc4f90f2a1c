//! A row of `result_batches`: consecutive result rows of one query statement.

use sea_orm::entity::prelude::*;

/// Rows `first_row..end_row` of a statement's results, encoded as a protobuf `RowBatch`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "result_batches")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub(crate) job_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) idx: i64,
    /// One past the last row of the batch: batches are found by the rows they end at.
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) end_row: i64,
    pub(crate) first_row: i64,
    /// The encoded size, counted against the log's retention.
    pub(crate) bytes: i64,
    #[sea_orm(column_type = "Blob")]
    pub(crate) data: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
