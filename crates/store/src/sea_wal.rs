//! SQLite's write-ahead log, checkpointed on a task of its own.
//!
//! SQLite checkpoints by itself in the commit that takes the WAL past 1 000 pages: that commit
//! copies the WAL into the database file and syncs both, on the writer's time. For a result
//! log drained at full speed that was about 40 % of each append of a 1 000-row page. The store
//! turns it off (`wal_autocheckpoint = 0`) and checkpoints here instead: as soon as about as
//! many bytes were appended to result logs as SQLite's own threshold, and otherwise every
//! second, for all other writes. A checkpoint is PASSIVE, as SQLite's own is: it waits for no
//! reader or writer and copies what they allow, so the WAL stays about as long as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use tokio::sync::{Notify, watch};
use tokio::time::MissedTickBehavior;
use tokio_util::task::AbortOnDropHandle;
use tracing::{debug, warn};

/// Result-log bytes appended that call for a checkpoint: about SQLite's own threshold of
/// 1 000 pages of 4 KiB.
const CHECKPOINT_BYTES: u64 = 4 << 20;
/// How often the WAL is checkpointed whatever was written.
pub(super) const CHECKPOINT_INTERVAL: Duration = Duration::from_secs(1);
/// The length the WAL file is cut back to after a checkpoint that emptied it.
pub(super) const JOURNAL_SIZE_LIMIT: u64 = 64 << 20;

/// The checkpointing task of one SQLite store; it stops when the store is dropped.
#[derive(Debug)]
pub(super) struct WalCheckpoints {
    pending: Arc<Pending>,
    _task: AbortOnDropHandle<()>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Result-log bytes appended since the last checkpoint began.
    appended: AtomicU64,
    wake: Notify,
    /// How many checkpoints were taken.
    taken: watch::Sender<u64>,
}

impl WalCheckpoints {
    /// Starts checkpointing the database `db` (a SQLite file in WAL mode): at once, then every
    /// `interval` and whenever enough was appended.
    pub(super) fn start(db: DatabaseConnection, interval: Duration) -> WalCheckpoints {
        let pending = Arc::new(Pending::default());
        let task = tokio::spawn(checkpoint_continually(db, interval, Arc::clone(&pending)));
        WalCheckpoints {
            pending,
            _task: AbortOnDropHandle::new(task),
        }
    }

    /// Counts bytes appended to a result log, and checkpoints once enough were.
    pub(super) fn appended(&self, bytes: u64) {
        let total = self.pending.appended.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if total >= CHECKPOINT_BYTES {
            self.pending.wake.notify_one();
        }
    }
}

async fn checkpoint_continually(db: DatabaseConnection, interval: Duration, pending: Arc<Pending>) {
    let mut every = tokio::time::interval(interval);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let checkpoint = Statement::from_string(DbBackend::Sqlite, "PRAGMA wal_checkpoint(PASSIVE)");
    loop {
        tokio::select! {
            _ = pending.wake.notified() => {}
            _ = every.tick() => {}
        }
        pending.appended.store(0, Ordering::Relaxed);
        match db.query_one_raw(checkpoint.clone()).await {
            // The WAL's length in frames, and how many of them are in the database now.
            Ok(Some(row)) => {
                let frames = row.try_get_by_index::<i64>(1).unwrap_or(-1);
                let copied = row.try_get_by_index::<i64>(2).unwrap_or(-1);
                if frames > 0 {
                    debug!(frames, copied, "sqlite wal checkpointed");
                }
            }
            Ok(None) => {}
            Err(error) => warn!(%error, "cannot checkpoint the sqlite wal; will try again"),
        }
        pending.taken.send_modify(|taken| *taken += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sea_orm::{ConnectOptions, Database};

    use crate::SeaStore;

    async fn scalar(db: &DatabaseConnection, sql: &str) -> i64 {
        let row = db
            .query_one_raw(Statement::from_string(DbBackend::Sqlite, sql))
            .await;
        match row {
            Ok(Some(row)) => row.try_get_by_index::<i64>(0).unwrap_or(i64::MIN),
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_stores_commits_leave_checkpoints_to_its_task() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}/wal.db?mode=rwc", dir.path().display());
        let store = SeaStore::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            store.wal.is_some(),
            "a SQLite file store checkpoints its WAL"
        );
        // Every connection of the pool: none checkpoints in a commit.
        for _ in 0..8 {
            assert_eq!(scalar(&store.db, "PRAGMA wal_autocheckpoint").await, 0);
            assert_eq!(
                scalar(&store.db, "PRAGMA journal_size_limit").await,
                JOURNAL_SIZE_LIMIT as i64
            );
        }
        let memory = SeaStore::connect("sqlite::memory:")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(memory.wal.is_none(), "an in-memory database has no WAL");
    }

    #[tokio::test]
    async fn appending_enough_bytes_calls_for_a_checkpoint_at_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let url = format!("sqlite://{}/wal.db?mode=rwc", dir.path().display());
        let mut options = ConnectOptions::new(&url);
        options.map_sqlx_sqlite_opts(|sqlite| {
            sqlite
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .pragma("wal_autocheckpoint", "0")
        });
        let db = Database::connect(options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let create = db
            .execute_unprepared("CREATE TABLE pages (data BLOB NOT NULL)")
            .await;
        assert!(create.is_ok(), "{create:?}");
        // The interval never comes round again in this test: only the bytes can wake the task.
        let wal = WalCheckpoints::start(db.clone(), Duration::from_secs(3600));
        let mut taken = wal.pending.taken.subscribe();
        let first = taken.wait_for(|taken| *taken >= 1).await.map(|t| *t);
        assert_eq!(first.ok(), Some(1), "the first checkpoint is taken at once");

        let page = vec![7u8; 1 << 20];
        for _ in 0..(CHECKPOINT_BYTES >> 20) {
            let insert = db
                .execute_raw(Statement::from_sql_and_values(
                    DbBackend::Sqlite,
                    "INSERT INTO pages (data) VALUES (?)",
                    [page.clone().into()],
                ))
                .await;
            assert!(insert.is_ok(), "{insert:?}");
        }
        // No commit checkpointed: the pages are in the WAL, not in the database file.
        let main_file = dir.path().join("wal.db");
        let main_len = || std::fs::metadata(&main_file).map(|m| m.len()).unwrap_or(0);
        assert!(main_len() < 1 << 20, "{} bytes", main_len());
        wal.appended(CHECKPOINT_BYTES - 1);
        wal.appended(1);
        let second =
            tokio::time::timeout(Duration::from_secs(60), taken.wait_for(|t| *t >= 2)).await;
        assert!(
            matches!(second, Ok(Ok(_))),
            "a checkpoint follows CHECKPOINT_BYTES appended"
        );
        // The task's checkpoint copied the WAL into the database file.
        assert!(
            main_len() >= CHECKPOINT_BYTES,
            "the database file holds the pages after the checkpoint: {} bytes",
            main_len()
        );
    }
}
