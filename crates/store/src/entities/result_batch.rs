//! A row of `result_batches`: consecutive result rows of one query statement.

use sea_orm::entity::prelude::*;

/// Rows `first_row..end_row` of a statement's results, encoded as a protobuf `RowBatch`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "result_batches")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false, column_type = "Text")]
    pub job_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub idx: i64,
    /// One past the last row of the batch: batches are found by the rows they end at.
    #[sea_orm(primary_key, auto_increment = false)]
    pub end_row: i64,
    pub first_row: i64,
    /// The encoded size, counted against the log's retention.
    pub bytes: i64,
    #[sea_orm(column_type = "Blob")]
    pub data: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
