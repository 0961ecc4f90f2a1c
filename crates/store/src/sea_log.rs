//! The result log on SQLite and PostgreSQL: one head row per query statement
//! (`result_logs`) and its rows in encoded batches (`result_batches`), keyed by the row each
//! batch ends at so that a read from any offset is one range scan.

use async_trait::async_trait;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ActiveValue, ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, Statement,
};

use super::entities::{job, result_batch, result_log};
use super::sea::{commit, db_error, limited_models, limited_tuples, log_summary, rollback};
use super::sea_log_sqlite::LogWriter;
use super::{LogAppend, LogBatch, LogRead, ResultLog, SeaStore, StoreError};
use flinkbroker_model::job::{JobId, LogSummary, UnixMillis, now_millis};

/// Oldest batches looked at per query while the sliding window drops rows.
const WINDOW_SCAN: u64 = 256;

pub(super) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn corrupt(job_id: JobId, detail: String) -> StoreError {
    StoreError::Corrupt {
        job_id: job_id.to_string(),
        detail,
    }
}

/// An append's batches, checked to follow one another from the first one's row on.
pub(super) struct Laid {
    /// The first row appended; None for an append without rows.
    pub(super) first_row: Option<i64>,
    pub(super) added_rows: i64,
    pub(super) added_bytes: i64,
    pub(super) batches: Vec<LaidBatch>,
}

/// One batch of an append, with the row it ends at.
pub(super) struct LaidBatch {
    pub(super) end_row: i64,
    pub(super) first_row: i64,
    pub(super) bytes: i64,
    pub(super) data: Vec<u8>,
}

/// Checks that `batches` follow one another and says where each ends.
pub(super) fn lay_out(
    job_id: JobId,
    index: u32,
    batches: Vec<LogBatch>,
) -> Result<Laid, StoreError> {
    let first_row = batches.first().map(|batch| to_i64(batch.first_row));
    let mut rows_logged = first_row.unwrap_or_default();
    let mut added_bytes = 0i64;
    let mut laid = Vec::with_capacity(batches.len());
    for batch in batches {
        if to_i64(batch.first_row) != rows_logged {
            return Err(corrupt(
                job_id,
                format!(
                    "statement {index}: a batch from row {} appended after row {rows_logged}",
                    batch.first_row
                ),
            ));
        }
        let bytes = to_i64(batch.data.len() as u64);
        let first = rows_logged;
        rows_logged += to_i64(batch.rows);
        added_bytes += bytes;
        laid.push(LaidBatch {
            end_row: rows_logged,
            first_row: first,
            bytes,
            data: batch.data,
        });
    }
    Ok(Laid {
        first_row,
        added_rows: first_row.map_or(0, |first| rows_logged - first),
        added_bytes,
        batches: laid,
    })
}

async fn find_head<C: ConnectionTrait>(
    txn: &C,
    job_id: JobId,
    index: u32,
) -> Result<Option<result_log::Model>, StoreError> {
    result_log::Entity::find_by_id((job_id.to_string(), i64::from(index)))
        .one(txn)
        .await
        .map_err(db_error("cannot read the result log"))
}

impl SeaStore {
    /// Waits for the turn of a result log writer (SQLite only).
    async fn log_writer(&self) -> Option<tokio::sync::OwnedMutexGuard<LogWriter>> {
        match &self.log_writers {
            Some(writers) => Some(std::sync::Arc::clone(writers).lock_owned().await),
            None => None,
        }
    }

    async fn open_log_in(
        txn: &DatabaseTransaction,
        job_id: JobId,
        index: u32,
        attempt: u32,
        schema: Vec<u8>,
    ) -> Result<LogSummary, StoreError> {
        let id = job_id.to_string();
        let existing = find_head(txn, job_id, index).await?;
        if let Some(head) = &existing
            && head.attempt == i64::from(attempt)
        {
            return log_summary(head).map_err(|detail| corrupt(job_id, detail));
        }
        result_batch::Entity::delete_many()
            .filter(result_batch::Column::JobId.eq(id.as_str()))
            .filter(result_batch::Column::Idx.eq(i64::from(index)))
            .exec(txn)
            .await
            .map_err(db_error("cannot delete an earlier attempt's results"))?;
        let head = result_log::ActiveModel {
            job_id: ActiveValue::Set(id),
            idx: ActiveValue::Set(i64::from(index)),
            attempt: ActiveValue::Set(i64::from(attempt)),
            schema: ActiveValue::Set(schema),
            rows_logged: ActiveValue::Set(0),
            earliest_row: ActiveValue::Set(0),
            bytes_held: ActiveValue::Set(0),
            bytes_logged: ActiveValue::Set(0),
            next_token: ActiveValue::Set(Some(0)),
            fetch_sent: ActiveValue::Set(None),
            end_reason: ActiveValue::Set(None),
            updated_at: ActiveValue::Set(now_millis()),
            deleted_at: ActiveValue::Set(None),
            opened_at: ActiveValue::Set(Some(now_millis())),
        };
        let written = if existing.is_some() {
            result_log::Entity::update(head).exec(txn).await
        } else {
            result_log::Entity::insert(head)
                .exec_with_returning(txn)
                .await
        }
        .map_err(db_error("cannot record the result log"))?;
        log_summary(&written).map_err(|detail| corrupt(job_id, detail))
    }

    async fn append_log_in(
        txn: &DatabaseTransaction,
        job_id: JobId,
        index: u32,
        append: LogAppend,
    ) -> Result<LogSummary, StoreError> {
        let id = job_id.to_string();
        if txn.get_database_backend() == DbBackend::Postgres {
            // As SQLite's WAL with `synchronous=NORMAL`: the commit survives the broker being
            // killed at any moment, without waiting for the server's WAL flush. Only a crash of
            // the database server itself can lose the last appends (about 3 × its
            // `wal_writer_delay`); the head and its rows are lost together, so the drain then
            // finds the gateway past the log and runs the query again: nothing is skipped.
            txn.execute_unprepared("SET LOCAL synchronous_commit TO OFF")
                .await
                .map_err(db_error("cannot append to the result log"))?;
        }
        let Laid {
            first_row,
            added_rows,
            added_bytes,
            batches,
        } = lay_out(job_id, index, append.batches)?;
        let batches: Vec<result_batch::ActiveModel> = batches
            .into_iter()
            .map(|batch| result_batch::ActiveModel {
                job_id: ActiveValue::Set(id.clone()),
                idx: ActiveValue::Set(i64::from(index)),
                end_row: ActiveValue::Set(batch.end_row),
                first_row: ActiveValue::Set(batch.first_row),
                bytes: ActiveValue::Set(batch.bytes),
                data: ActiveValue::Set(batch.data),
            })
            .collect();
        // One statement moves the head, only if it is this attempt's and ends where the batches
        // start; otherwise the head is read to say why not.
        let now = now_millis();
        let mut update = result_log::Entity::update_many()
            .col_expr(
                result_log::Column::RowsLogged,
                sea_orm::sea_query::ExprTrait::add(
                    Expr::col(result_log::Column::RowsLogged),
                    added_rows,
                ),
            )
            .col_expr(
                result_log::Column::BytesHeld,
                sea_orm::sea_query::ExprTrait::add(
                    Expr::col(result_log::Column::BytesHeld),
                    added_bytes,
                ),
            )
            .col_expr(
                result_log::Column::BytesLogged,
                sea_orm::sea_query::ExprTrait::add(
                    Expr::col(result_log::Column::BytesLogged),
                    added_bytes,
                ),
            )
            .col_expr(
                result_log::Column::NextToken,
                Expr::value(append.next_token.map(to_i64)),
            )
            .col_expr(
                result_log::Column::EndReason,
                Expr::value(append.end.map(|end| end.as_str().to_owned())),
            )
            .col_expr(
                result_log::Column::UpdatedAt,
                Expr::case(
                    sea_orm::sea_query::ExprTrait::gt(
                        Expr::col(result_log::Column::UpdatedAt),
                        now,
                    ),
                    Expr::col(result_log::Column::UpdatedAt),
                )
                .finally(now)
                .into(),
            )
            .filter(result_log::Column::JobId.eq(id.as_str()))
            .filter(result_log::Column::Idx.eq(i64::from(index)))
            .filter(result_log::Column::Attempt.eq(i64::from(append.attempt)));
        if let Some(first) = first_row {
            update = update.filter(result_log::Column::RowsLogged.eq(first));
        }
        let moved = update
            .exec_with_returning(txn)
            .await
            .map_err(db_error("cannot record the result log"))?;
        let Some(mut head) = moved.into_iter().next() else {
            return Err(Self::refused_append(txn, job_id, index, append.attempt, first_row).await);
        };
        if !batches.is_empty() {
            result_batch::Entity::insert_many(batches)
                .exec_without_returning(txn)
                .await
                .map_err(db_error("cannot append to the result log"))?;
        }
        if let Some(window) = append.window_bytes.map(to_i64)
            && head.bytes_held > window
        {
            // Drop whole batches, oldest first, while more than the window is held; the
            // newest batch always stays.
            let mut bytes_held = head.bytes_held;
            let mut cutoff = None;
            while bytes_held > window {
                let oldest_first = result_batch::Entity::find()
                    .select_only()
                    .columns([result_batch::Column::EndRow, result_batch::Column::Bytes])
                    .filter(result_batch::Column::JobId.eq(id.as_str()))
                    .filter(result_batch::Column::Idx.eq(i64::from(index)))
                    .filter(result_batch::Column::EndRow.gt(cutoff.unwrap_or(head.earliest_row)))
                    .filter(result_batch::Column::EndRow.lt(head.rows_logged))
                    .order_by_asc(result_batch::Column::EndRow);
                let oldest: Vec<(i64, i64)> = limited_tuples(txn, oldest_first, WINDOW_SCAN)
                    .await
                    .map_err(db_error("cannot read the result log"))?;
                if oldest.is_empty() {
                    break;
                }
                for (end_row, bytes) in oldest {
                    if bytes_held <= window {
                        break;
                    }
                    bytes_held -= bytes;
                    cutoff = Some(end_row);
                }
            }
            if let Some(cutoff) = cutoff {
                result_batch::Entity::delete_many()
                    .filter(result_batch::Column::JobId.eq(id.as_str()))
                    .filter(result_batch::Column::Idx.eq(i64::from(index)))
                    .filter(result_batch::Column::EndRow.lte(cutoff))
                    .exec(txn)
                    .await
                    .map_err(db_error("cannot drop rows beyond the result log's window"))?;
                let trimmed = result_log::ActiveModel {
                    job_id: ActiveValue::Unchanged(id),
                    idx: ActiveValue::Unchanged(i64::from(index)),
                    earliest_row: ActiveValue::Set(cutoff),
                    bytes_held: ActiveValue::Set(bytes_held),
                    ..Default::default()
                };
                head = result_log::Entity::update(trimmed)
                    .exec(txn)
                    .await
                    .map_err(db_error("cannot record the result log"))?;
            }
        }
        log_summary(&head).map_err(|detail| corrupt(job_id, detail))
    }

    /// PostgreSQL, a log without a sliding window (a batch query's): the append as one
    /// statement, which commits by itself. The head moves, and the batches are inserted only
    /// if it did, in data-modifying CTEs: one round trip to the server instead of five
    /// (`BEGIN`, `SET LOCAL`, the update, the insert, `COMMIT`), which over TLS was most of an
    /// append's time. It commits with `synchronous_commit` off, as `append_log_in` does.
    async fn append_log_in_one_statement(
        &self,
        job_id: JobId,
        index: u32,
        append: LogAppend,
    ) -> Result<LogSummary, StoreError> {
        let id = job_id.to_string();
        let Laid {
            first_row,
            added_rows,
            added_bytes,
            batches,
        } = lay_out(job_id, index, append.batches)?;
        // $1 … $9 are the head's; each batch brings six more.
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(9 + 6 * batches.len());
        let mut batch_rows = Vec::with_capacity(batches.len());
        let mut batch_values = Vec::with_capacity(6 * batches.len());
        for batch in batches {
            let at = 10 + batch_values.len();
            batch_rows.push(format!(
                "(${}::text, ${}::bigint, ${}::bigint, ${}::bigint, ${}::bigint, ${}::bytea)",
                at,
                at + 1,
                at + 2,
                at + 3,
                at + 4,
                at + 5
            ));
            batch_values.extend([
                id.clone().into(),
                i64::from(index).into(),
                batch.end_row.into(),
                batch.first_row.into(),
                batch.bytes.into(),
                batch.data.into(),
            ]);
        }
        values.extend([
            added_rows.into(),
            added_bytes.into(),
            append.next_token.map(to_i64).into(),
            append.end.map(|end| end.as_str().to_owned()).into(),
            now_millis().into(),
            id.clone().into(),
            i64::from(index).into(),
            i64::from(append.attempt).into(),
            first_row.into(),
        ]);
        values.extend(batch_values);
        // `set_config(…, true)` is `SET LOCAL` inside the statement's own transaction; joining
        // on its result makes sure it runs before the update does.
        let mut sql = String::from(
            "WITH durability AS (SELECT set_config('synchronous_commit', 'off', true) AS setting),              head AS (UPDATE result_logs SET              rows_logged = rows_logged + $1, bytes_held = bytes_held + $2,              bytes_logged = bytes_logged + $2, next_token = $3, end_reason = $4,              updated_at = GREATEST(updated_at, $5)              FROM durability WHERE durability.setting = 'off'              AND job_id = $6 AND idx = $7 AND attempt = $8              AND ($9::bigint IS NULL OR rows_logged = $9)              RETURNING result_logs.*)",
        );
        if !batch_rows.is_empty() {
            sql.push_str(
                ", added AS (INSERT INTO result_batches                  (job_id, idx, end_row, first_row, bytes, data)                  SELECT b.job_id, b.idx, b.end_row, b.first_row, b.bytes, b.data FROM (VALUES ",
            );
            sql.push_str(&batch_rows.join(", "));
            sql.push_str(
                ") AS b (job_id, idx, end_row, first_row, bytes, data)                  WHERE EXISTS (SELECT 1 FROM head))",
            );
        }
        sql.push_str(" SELECT * FROM head");
        let moved = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                sql,
                values,
            ))
            .await
            .map_err(db_error("cannot append to the result log"))?;
        let Some(row) = moved else {
            return Err(
                Self::refused_append(&self.db, job_id, index, append.attempt, first_row).await,
            );
        };
        let head = result_log::Model::from_query_result(&row, "")
            .map_err(db_error("cannot read the result log"))?;
        log_summary(&head).map_err(|detail| corrupt(job_id, detail))
    }

    /// Why an append did not move the head: no log, another attempt's log, or a log that does
    /// not end where the appended rows start.
    pub(super) async fn refused_append<C: ConnectionTrait>(
        txn: &C,
        job_id: JobId,
        index: u32,
        attempt: u32,
        first_row: Option<i64>,
    ) -> StoreError {
        let head = match find_head(txn, job_id, index).await {
            Ok(Some(head)) => head,
            Ok(None) => return corrupt(job_id, format!("statement {index} has no result log")),
            Err(error) => return error,
        };
        if head.attempt != i64::from(attempt) {
            return StoreError::StaleLog {
                job_id,
                index,
                held: u32::try_from(head.attempt).unwrap_or(u32::MAX),
                appended: attempt,
            };
        }
        corrupt(
            job_id,
            format!(
                "statement {index}: a batch from row {} appended after row {}",
                first_row.unwrap_or_default(),
                head.rows_logged
            ),
        )
    }
}

#[async_trait]
impl ResultLog for SeaStore {
    async fn open_log(
        &self,
        job_id: JobId,
        index: u32,
        attempt: u32,
        schema: Vec<u8>,
    ) -> Result<LogSummary, StoreError> {
        let _turn = self.log_writer().await;
        let txn = self.begin_write().await?;
        match Self::open_log_in(&txn, job_id, index, attempt, schema).await {
            Ok(head) => {
                commit(txn).await?;
                Ok(head)
            }
            Err(error) => {
                rollback(txn).await?;
                Err(error)
            }
        }
    }

    async fn append_log(
        &self,
        job_id: JobId,
        index: u32,
        append: LogAppend,
    ) -> Result<LogSummary, StoreError> {
        if self.backend() == DbBackend::Postgres && append.window_bytes.is_none() {
            return self
                .append_log_in_one_statement(job_id, index, append)
                .await;
        }
        let mut turn = self.log_writer().await;
        let bytes: u64 = append.batches.iter().map(|b| b.data.len() as u64).sum();
        if append.window_bytes.is_none()
            && let Some(writer) = turn.as_deref_mut()
            && writer.has_appender()
        {
            let head = self
                .append_log_on_appender(writer, job_id, index, append)
                .await?;
            if let Some(wal) = &self.wal {
                wal.appended(bytes);
            }
            return Ok(head);
        }
        let txn = self.begin_write().await?;
        match Self::append_log_in(&txn, job_id, index, append).await {
            Ok(head) => {
                commit(txn).await?;
                if let Some(wal) = &self.wal {
                    wal.appended(bytes);
                }
                Ok(head)
            }
            Err(error) => {
                rollback(txn).await?;
                Err(error)
            }
        }
    }

    async fn read_log(
        &self,
        job_id: JobId,
        index: u32,
        from_row: u64,
        max_batches: u64,
        max_bytes: u64,
    ) -> Result<Option<LogRead>, StoreError> {
        let txn = self.begin_read().await?;
        let read = async {
            let Some(head) = find_head(&txn, job_id, index).await? else {
                return Ok(None);
            };
            let from = result_batch::Entity::find()
                .filter(result_batch::Column::JobId.eq(job_id.to_string()))
                .filter(result_batch::Column::Idx.eq(i64::from(index)))
                .filter(result_batch::Column::EndRow.gt(to_i64(from_row)))
                .order_by_asc(result_batch::Column::EndRow);
            let rows: Vec<result_batch::Model> = limited_models(&txn, from, max_batches.max(1))
                .await
                .map_err(db_error("cannot read the result log"))?;
            let mut batches = Vec::with_capacity(rows.len());
            let mut bytes = 0u64;
            for row in rows {
                if !batches.is_empty() && bytes >= max_bytes {
                    break;
                }
                bytes += row.data.len() as u64;
                batches.push(LogBatch {
                    first_row: u64::try_from(row.first_row).unwrap_or_default(),
                    rows: u64::try_from(row.end_row - row.first_row).unwrap_or_default(),
                    data: row.data,
                });
            }
            let summary = log_summary(&head).map_err(|detail| corrupt(job_id, detail))?;
            Ok(Some(LogRead {
                head: summary,
                schema: head.schema,
                batches,
            }))
        }
        .await;
        rollback(txn).await?;
        read
    }

    async fn expire_logs(&self, ended_before: UnixMillis, limit: u64) -> Result<u64, StoreError> {
        let ended = Query::select()
            .column(job::Column::Id)
            .from(job::Entity)
            .and_where(job::Column::EndedAt.lt(ended_before))
            .to_owned();
        let expired = result_log::Entity::find()
            .select_only()
            .columns([result_log::Column::JobId, result_log::Column::Idx])
            .filter(result_log::Column::DeletedAt.is_null())
            .filter(result_log::Column::JobId.in_subquery(ended))
            .limit(limit)
            .into_tuple::<(String, i64)>()
            .all(&self.db)
            .await
            .map_err(db_error("cannot find expired result logs"))?;
        let mut deleted = 0;
        for (job_id, idx) in expired {
            let txn = self.begin_write().await?;
            let done = async {
                result_batch::Entity::delete_many()
                    .filter(result_batch::Column::JobId.eq(job_id.as_str()))
                    .filter(result_batch::Column::Idx.eq(idx))
                    .exec(&txn)
                    .await?;
                result_log::Entity::update_many()
                    .col_expr(result_log::Column::DeletedAt, Expr::value(now_millis()))
                    .col_expr(result_log::Column::BytesHeld, Expr::value(0i64))
                    .col_expr(
                        result_log::Column::EarliestRow,
                        Expr::col(result_log::Column::RowsLogged),
                    )
                    .filter(result_log::Column::JobId.eq(job_id.as_str()))
                    .filter(result_log::Column::Idx.eq(idx))
                    .exec(&txn)
                    .await
            }
            .await;
            match done {
                Ok(_) => {
                    commit(txn).await?;
                    deleted += 1;
                }
                Err(error) => {
                    rollback(txn).await?;
                    return Err(db_error("cannot delete an expired result log")(error));
                }
            }
        }
        Ok(deleted)
    }
}
