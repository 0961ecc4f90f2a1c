//! SQLite file: result-log appends of batch queries on a connection of their own.
//!
//! Through the pool, an append was a round trip to SQLite's connection thread for each of
//! `BEGIN IMMEDIATE`, the update of the head, the insert of the batches and `COMMIT`, and one
//! more for the ping with which the pool takes a connection back: five wake-ups of that
//! thread and of the runtime per page of rows. Here the four statements go as one script, in
//! one round trip, on a connection no one else uses. The batches are inserted only if the head
//! moved (`changes() = 1`, the count of the update just before), so a refused append writes
//! nothing, and the caller reads the head through the pool to say why.
//!
//! The connection is taken out of its slot for the append and put back only when the script
//! ran to its end. An append given up half-way (its task aborted) or failed drops it, and
//! closing a connection rolls back whatever transaction it left open; the next append opens a
//! new one.

use sea_orm::sqlx::sqlite::{SqliteArguments, SqliteConnectOptions, SqliteConnection, SqliteRow};
use sea_orm::sqlx::{Arguments as _, Connection as _, Row as _};

use super::entities::result_log;
use super::sea_log::{Laid, corrupt, lay_out, to_i64};
use super::{LogAppend, SeaStore, StoreError};
use flinkbroker_model::job::{JobId, LogSummary, now_millis};

/// The result log's writer on SQLite: whose turn it is to write, and for a file, the
/// connection that appends to batch queries' logs.
#[derive(Debug)]
pub(super) struct LogWriter {
    /// How to open the appender's connection; None for an in-memory database, whose one
    /// connection is the pool's.
    options: Option<SqliteConnectOptions>,
    /// The appender's connection, opened at its first append.
    appender: Option<SqliteConnection>,
}

impl LogWriter {
    /// A writer of the database `options` opens (a file), or of an in-memory database (None).
    pub(super) fn new(options: Option<SqliteConnectOptions>) -> LogWriter {
        LogWriter {
            options,
            appender: None,
        }
    }

    /// Whether appends to logs without a window take the appender's connection.
    pub(super) fn has_appender(&self) -> bool {
        self.options.is_some()
    }
}

fn sqlx_error(what: &'static str) -> impl Fn(sea_orm::sqlx::Error) -> StoreError {
    move |error| StoreError::Database(format!("{what}: {}", error.to_string().to_lowercase()))
}

/// The update of the head: its eleven values, in order, are the rows added, the bytes added
/// (twice), the next token, the end, the time, the job, the statement, the attempt and the
/// first row (twice, or NULL for an append without rows).
const MOVE_HEAD: &str = "UPDATE result_logs SET rows_logged = rows_logged + ?, \
     bytes_held = bytes_held + ?, bytes_logged = bytes_logged + ?, next_token = ?, \
     end_reason = ?, updated_at = MAX(updated_at, ?) \
     WHERE job_id = ? AND idx = ? AND attempt = ? AND (? IS NULL OR rows_logged = ?) \
     RETURNING *;";

/// The insert of one batch, if the head moved: the job, the statement, the batch's end row,
/// first row, bytes and data.
const INSERT_BATCH: &str = "INSERT INTO result_batches \
     (job_id, idx, end_row, first_row, bytes, data) \
     SELECT ?, ?, ?, ?, ?, ? WHERE changes() = 1;";

/// The script of an append with `batches` batches. Its parameters are positional: each
/// statement takes the next of the values (sqlx binds numbered parameters of a script's later
/// statements wrongly).
fn append_script(batches: usize) -> String {
    let mut sql = String::from("BEGIN IMMEDIATE; ");
    sql.push_str(MOVE_HEAD);
    for _ in 0..batches {
        sql.push(' ');
        sql.push_str(INSERT_BATCH);
    }
    sql.push_str(" COMMIT;");
    sql
}

/// The head an append's update returned.
fn head_of(row: &SqliteRow) -> Result<result_log::Model, sea_orm::sqlx::Error> {
    Ok(result_log::Model {
        job_id: row.try_get("job_id")?,
        idx: row.try_get("idx")?,
        attempt: row.try_get("attempt")?,
        schema: row.try_get("schema")?,
        rows_logged: row.try_get("rows_logged")?,
        earliest_row: row.try_get("earliest_row")?,
        bytes_held: row.try_get("bytes_held")?,
        bytes_logged: row.try_get("bytes_logged")?,
        next_token: row.try_get("next_token")?,
        fetch_sent: row.try_get("fetch_sent")?,
        end_reason: row.try_get("end_reason")?,
        updated_at: row.try_get("updated_at")?,
        deleted_at: row.try_get("deleted_at")?,
        opened_at: row.try_get("opened_at")?,
    })
}

impl SeaStore {
    /// Appends to a log without a window on the appender's connection (see the module's
    /// documentation); the caller holds the writer's turn.
    pub(super) async fn append_log_on_appender(
        &self,
        writer: &mut LogWriter,
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
        let script = append_script(batches.len());
        let mut arguments = SqliteArguments::default();
        let bound = (|| {
            arguments.add(added_rows)?;
            arguments.add(added_bytes)?;
            arguments.add(added_bytes)?;
            arguments.add(append.next_token.map(to_i64))?;
            arguments.add(append.end.map(|end| end.as_str().to_owned()))?;
            arguments.add(now_millis())?;
            arguments.add(id.as_str())?;
            arguments.add(i64::from(index))?;
            arguments.add(i64::from(append.attempt))?;
            arguments.add(first_row)?;
            arguments.add(first_row)?;
            for batch in batches {
                arguments.add(id.as_str())?;
                arguments.add(i64::from(index))?;
                arguments.add(batch.end_row)?;
                arguments.add(batch.first_row)?;
                arguments.add(batch.bytes)?;
                arguments.add(batch.data)?;
            }
            Ok::<_, sea_orm::sqlx::error::BoxDynError>(())
        })();
        bound.map_err(|e| StoreError::Database(format!("cannot append to the result log: {e}")))?;
        let mut connection = match writer.appender.take() {
            Some(connection) => connection,
            None => {
                let options = writer.options.as_ref().ok_or_else(|| {
                    StoreError::Database("an in-memory database has no appender".into())
                })?;
                SqliteConnection::connect_with(options)
                    .await
                    .map_err(sqlx_error("cannot open the result log's connection"))?
            }
        };
        // Built from constants and batch numbers alone: nothing of the caller's is in the text.
        let script = sea_orm::sqlx::AssertSqlSafe(script);
        let heads = sea_orm::sqlx::query_with(script, arguments)
            .fetch_all(&mut connection)
            .await
            .map_err(sqlx_error("cannot append to the result log"))?;
        // The script ran to its end (COMMIT): the connection is fit for the next append.
        writer.appender = Some(connection);
        let Some(row) = heads.first() else {
            return Err(
                Self::refused_append(&self.db, job_id, index, append.attempt, first_row).await,
            );
        };
        let head = head_of(row).map_err(sqlx_error("cannot read the result log"))?;
        super::sea::log_summary(&head).map_err(|detail| corrupt(job_id, detail))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_insert_each_batch_after_moving_the_head() {
        let script = append_script(2);
        assert!(script.starts_with("BEGIN IMMEDIATE; UPDATE result_logs"));
        assert!(script.ends_with(" COMMIT;"));
        assert_eq!(script.matches("WHERE changes() = 1;").count(), 2);
        assert_eq!(script.matches('?').count(), 11 + 2 * 6);
        assert_eq!(append_script(0).matches("INSERT").count(), 0);
    }
}
