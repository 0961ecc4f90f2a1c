//! Scripted, in-memory fakes of the external systems the control crate talks to, for tests
//! that drive `flinkbroker_control::Controller` through its public API without HTTP:
//!
//! - [`FakeSqlGateway`] (`SqlGateway`): sessions, statements with their pinned
//!   `$internal.pipeline.job-id`, operation statuses and result pages, scripted per statement.
//! - [`FakeJobManager`] (`JobManager`): the status of each Flink job, which the test sets (and
//!   the fake gateway sets when a statement starts a Flink job).
//! - [`FakeRunner`] (`JobRunner`): Python submitters whose state the test sets.
//!
//! Every fake records each call it answers, so a test can assert what was sent and how often,
//! and can wait (without sleeping) until a call was made: `wait_until` wakes up on each change.
//!
//! # Crashes
//! A fake is a handle on a shared backend over a [`Link`]. [`FakeSqlGateway::reconnect`] (and
//! the same on the other fakes) gives another handle on the same backend over a new link, for
//! a second broker. Cutting a link ([`FakeSqlGateway::cut`]) makes every call over it, in flight
//! or later, never answer: the broker that held it is, as far as Flink can tell, dead. A
//! [`Hold`] stops one call at a chosen point (before or after the gateway took a statement,
//! say) until the test releases it or cuts the link, so a crash can be placed exactly.
//!
//! # Store
//! There is no fake store: tests use the real `SeaStore` on an in-memory SQLite database
//! ([`memory_store`]), which is what the store's own suite runs on. One `Arc` of it is shared by
//! the brokers of a test, as one database is shared by a broker and its restart.

mod gateway;
mod jobmanager;
mod runner;

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;

pub use gateway::{
    Executed, FakeSqlGateway, GatewayCall, GatewayPoint, Page, StatementScript, column,
    duplicate_submission,
};
pub use jobmanager::{FakeJobManager, JobManagerCall, OnCancel};
pub use runner::{FakeRunner, RunnerCall};

use flinkbroker_store::SeaStore;

/// Opens the real store on a fresh in-memory SQLite database (one connection, kept for the
/// life of the store), with its schema migrated.
///
/// # Panics
/// When the database cannot be opened: a test cannot go on without it.
pub async fn memory_store() -> Arc<SeaStore> {
    match SeaStore::connect("sqlite::memory:").await {
        Ok(store) => Arc::new(store),
        Err(error) => panic!("cannot open an in-memory sqlite store: {error}"),
    }
}

/// The connection of one broker to a fake. Once cut, calls over it never answer, as if the
/// process on this side had died: a call in flight is dropped (its effect happens only if it
/// had happened already) and its answer is never delivered.
#[derive(Debug, Clone)]
pub struct Link {
    cut: Arc<watch::Sender<bool>>,
}

impl Default for Link {
    fn default() -> Self {
        Self::new()
    }
}

impl Link {
    /// A new link, not cut.
    pub fn new() -> Self {
        let (cut, _) = watch::channel(false);
        Link { cut: Arc::new(cut) }
    }

    /// Cuts the link: every call over it, in flight or later, never answers.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Returns true once the link is cut.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }

    /// Waits until the link is cut.
    pub async fn cut_off(&self) {
        let mut cut = self.cut.subscribe();
        let _ = cut.wait_for(|cut| *cut).await;
    }

    /// Runs one call over the link: its answer, unless the link is (or gets) cut, in which
    /// case this never returns.
    pub(crate) async fn call<T>(&self, call: impl Future<Output = T>) -> T {
        if self.is_cut() {
            return std::future::pending().await;
        }
        let answer = tokio::select! {
            answer = call => answer,
            _ = self.cut_off() => std::future::pending().await,
        };
        if self.is_cut() {
            return std::future::pending().await;
        }
        answer
    }
}

/// A point where a fake stops one call until the test releases it: the first call that
/// reaches the point waits there; later calls pass (a hold is used once).
#[derive(Debug, Clone)]
pub struct Hold {
    inner: Arc<HoldInner>,
}

#[derive(Debug)]
struct HoldInner {
    /// How many calls reached the hold.
    reached: watch::Sender<u32>,
    released: watch::Sender<bool>,
}

impl Hold {
    pub(crate) fn new() -> Self {
        let (reached, _) = watch::channel(0);
        let (released, _) = watch::channel(false);
        Hold {
            inner: Arc::new(HoldInner { reached, released }),
        }
    }

    /// Waits until a call reached the hold (returns at once if one did before).
    pub async fn reached(&self) {
        let mut reached = self.inner.reached.subscribe();
        let _ = reached.wait_for(|count| *count > 0).await;
    }

    /// Returns true once a call reached the hold.
    pub fn is_reached(&self) -> bool {
        *self.inner.reached.borrow() > 0
    }

    /// Lets the held call go on.
    pub fn release(&self) {
        self.inner.released.send_replace(true);
    }

    /// Called by the fake: marks the hold reached and waits until it is released.
    pub(crate) async fn wait(&self) {
        let mut released = self.inner.released.subscribe();
        self.inner.reached.send_modify(|count| *count += 1);
        let _ = released.wait_for(|released| *released).await;
    }
}

/// A counter bumped on every change of a fake's state, for `wait_until`.
#[derive(Debug)]
pub(crate) struct Changes(watch::Sender<u64>);

impl Changes {
    pub(crate) fn new() -> Self {
        Changes(watch::channel(0).0)
    }

    /// Wakes up the waiters.
    pub(crate) fn bump(&self) {
        self.0
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// Waits until `done` is true, looking again after each change.
    pub(crate) async fn wait_until(&self, mut done: impl FnMut() -> bool) {
        // Subscribed before the first look: a change between the look and the wait wakes it.
        let mut changed = self.0.subscribe();
        loop {
            if done() {
                return;
            }
            if changed.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }
}

/// Locks a fake's state; a test that panicked while holding it poisons nothing of interest.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
