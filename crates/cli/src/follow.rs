//! Following a job to its end: WatchJob for its state changes, GetJob now and then for the rows
//! its queries logged, shown as a live progress line when stdout is a terminal and as plain
//! lines on stderr otherwise.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::CliError;
use super::connect::Client;
use super::output::state_name;
use flinkbroker_proto as proto;

/// How often rows logged are refreshed while a job runs.
const REFRESH: Duration = Duration::from_millis(500);

fn terminal(job: &proto::Job) -> bool {
    matches!(
        proto::JobState::try_from(job.state),
        Ok(proto::JobState::Finished | proto::JobState::Failed | proto::JobState::Canceled)
    )
}

/// `RUNNING · statement 2/3 · 1200 rows logged`.
fn describe(job: &proto::Job) -> String {
    let mut text = state_name(job.state).to_owned();
    let count = job.statements.len();
    if count > 0 {
        let current = job
            .statements
            .iter()
            .rfind(|s| {
                !matches!(
                    proto::StatementState::try_from(s.state),
                    Ok(proto::StatementState::Pending)
                )
            })
            .map_or(0, |s| s.index as usize + 1);
        text.push_str(&format!(" · statement {current}/{count}"));
    }
    let rows: u64 = job
        .statements
        .iter()
        .filter_map(|s| s.result_log.as_ref())
        .map(|l| l.rows_logged)
        .sum();
    if rows > 0 {
        text.push_str(&format!(" · {rows} rows logged"));
    }
    text
}

/// How progress is shown.
enum Display {
    Bar(ProgressBar),
    Lines { last: String },
}

impl Display {
    fn new() -> Display {
        if std::io::stdout().is_terminal() {
            let bar = ProgressBar::new_spinner();
            if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}") {
                bar.set_style(style);
            }
            bar.enable_steady_tick(Duration::from_millis(120));
            Display::Bar(bar)
        } else {
            Display::Lines {
                last: String::new(),
            }
        }
    }

    fn show(&mut self, job: &proto::Job, started: Instant) {
        let text = describe(job);
        match self {
            Display::Bar(bar) => bar.set_message(text),
            Display::Lines { last } => {
                if *last != text {
                    eprintln!(
                        "{:>6.1}s job {} {text}",
                        started.elapsed().as_secs_f64(),
                        job.id
                    );
                    *last = text;
                }
            }
        }
    }

    fn done(self) {
        if let Display::Bar(bar) = self {
            bar.finish();
        }
    }
}

/// Follows a job until it ends and returns it as it ended.
pub(crate) async fn follow(client: &mut Client, job_id: &str) -> Result<proto::Job, CliError> {
    let started = Instant::now();
    let mut display = Display::new();
    let mut updates = client
        .watch_job(proto::WatchJobRequest {
            job_id: job_id.to_owned(),
        })
        .await?
        .into_inner();
    let mut refresh = tokio::time::interval(REFRESH);
    refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut poller = client.clone();
    let job = loop {
        let job = tokio::select! {
            update = updates.message() => match update? {
                Some(job) => job,
                // The watch ends with the job; read it as it ended.
                None => poller
                    .get_job(proto::GetJobRequest { job_id: job_id.to_owned() })
                    .await?
                    .into_inner(),
            },
            _ = refresh.tick() => poller
                .get_job(proto::GetJobRequest { job_id: job_id.to_owned() })
                .await?
                .into_inner(),
        };
        display.show(&job, started);
        if terminal(&job) {
            break job;
        }
    };
    display.done();
    Ok(job)
}

/// The longest `jobs upgrade --follow` waits for an upgrade to end.
const UPGRADE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Polls a revision until its upgrade is done, rolled back or abandoned (at most
/// [`UPGRADE_LIMIT`]), saying each step on stderr; returns the revision then.
pub(crate) async fn follow_upgrade(client: &mut Client, id: &str) -> Result<proto::Job, CliError> {
    use proto::upgrade::Step;
    let started = Instant::now();
    let mut last = None;
    loop {
        let job = client
            .get_job(proto::GetJobRequest {
                job_id: id.to_owned(),
            })
            .await?
            .into_inner();
        let step = job
            .upgrade
            .as_ref()
            .and_then(|u| Step::try_from(u.step).ok())
            .unwrap_or(Step::Unspecified);
        if last != Some(step) {
            eprintln!(
                "{:>6.1}s revision {}: {} ({})",
                started.elapsed().as_secs_f64(),
                job.revision,
                step.as_str_name().trim_start_matches("STEP_"),
                state_name(job.state)
            );
            last = Some(step);
        }
        if !matches!(step, Step::StoppingPrevious | Step::Starting) {
            return Ok(job);
        }
        if started.elapsed() >= UPGRADE_LIMIT {
            return Err(CliError::Failed(format!(
                "the upgrade to revision {} (job {id}) did not end within {} minutes; `jobs get {id}` shows where it is",
                job.revision,
                UPGRADE_LIMIT.as_secs() / 60
            )));
        }
        tokio::time::sleep(REFRESH).await;
    }
}

/// A table redrawn in place on the terminal as its changes arrive.
pub(crate) struct LiveTable {
    bar: ProgressBar,
}

impl LiveTable {
    /// The most rows shown while the table changes.
    const ROWS: usize = 40;

    pub(crate) fn new() -> LiveTable {
        let bar = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{msg}") {
            bar.set_style(style);
        }
        LiveTable { bar }
    }

    /// Shows the table as it is now.
    pub(crate) fn show(&self, columns: &[String], table: &super::values::Table) {
        self.bar.set_message(super::output::table_text(
            columns,
            &table.current(),
            Self::ROWS,
        ));
    }

    /// Clears the live view (the final table is printed after it).
    pub(crate) fn finish(self) {
        self.bar.finish_and_clear();
    }
}
