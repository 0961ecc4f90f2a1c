//! The client side of the `flinkbroker` binary: `sql run`, `python run`, `jobs …` and
//! `results`, talking gRPC to a broker (`--server`, `FLINKBROKER_SERVER`).
//!
//! Exit codes a script can rely on: 0 the job finished (or the call succeeded), 1 the job
//! failed or was cancelled (or the broker refused the call), 2 usage (bad flags, unreadable
//! files, a request the broker found invalid), 3 the broker is unreachable or the caller is
//! not authenticated. Errors are one line on stderr naming the cause.
//!
//! # Layout
//! - this file: the subcommands' flags ([`ClientCommand`] and its arguments), [`run`], which
//!   makes each subcommand's calls, and [`CliError`] with its exit codes.
//! - `connect`: the connection to the broker: the server address, a bearer token and TLS
//!   ([`ServerArgs`]).
//! - `follow`: following a job to its end, showing its progress.
//! - `output`: what is printed: jobs as tables or JSON, result rows in each [`Format`].
//! - `values`: result values as text (tables, CSV) and as JSON.

mod connect;
mod files;
mod follow;
mod output;
mod values;

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use tonic::Code;

use connect::Client;
pub use connect::ServerArgs;
pub use output::Format;

use flinkbroker_proto as proto;

/// Why a client command did not succeed; each maps to an exit code.
#[derive(Debug)]
pub enum CliError {
    /// Bad flags or files, or a request the broker found invalid: exit 2.
    Usage(String),
    /// The broker cannot be reached, or does not accept the caller's credential: exit 3.
    Unreachable(String),
    /// The job failed or was cancelled, or the broker refused the call: exit 1.
    Failed(String),
}

impl CliError {
    /// Returns the exit code the process ends with: 1 failed, 2 usage, 3 unreachable.
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Failed(_) => ExitCode::from(1),
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Unreachable(_) => ExitCode::from(3),
        }
    }

    /// Returns the one-line message naming the cause.
    pub fn message(&self) -> &str {
        match self {
            CliError::Usage(m) | CliError::Unreachable(m) | CliError::Failed(m) => m,
        }
    }
}

impl From<tonic::Status> for CliError {
    fn from(status: tonic::Status) -> Self {
        let message = format!(
            "{}: {}",
            flinkbroker_proto::code_name(status.code()),
            status.message().lines().next().unwrap_or_default()
        );
        match status.code() {
            Code::Unavailable | Code::Unauthenticated | Code::DeadlineExceeded => {
                CliError::Unreachable(message)
            }
            Code::InvalidArgument | Code::OutOfRange => CliError::Usage(message),
            _ => CliError::Failed(message),
        }
    }
}

/// `key=value`, for `--set`, `-D` and `--label`.
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("{text:?} is not key=value")),
    }
}

/// The client commands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Flink SQL scripts.
    #[command(subcommand)]
    Sql(SqlCommand),
    /// PyFlink programs.
    #[command(subcommand)]
    Python(PythonCommand),
    /// Jobs: list, get, watch, cancel, savepoint, upgrade.
    #[command(subcommand)]
    Jobs(JobsCommand),
    /// Prints a SQL job's results from its result log.
    Results(ResultsArgs),
}

// No `///` text here: clap derives `--help` text from doc comments.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum SqlCommand {
    /// Submits a script; with --follow shows its progress and prints its last query's results.
    Run(Box<SqlRunArgs>),
    /// Checks a script without running it; prints each statement's verdict (exit 1 when one
    /// is invalid).
    Validate(CheckArgs),
    /// Prints the plan of each query, INSERT and statement set of a script, without running it.
    Explain(CheckArgs),
}

// No `///` text here: clap derives `--help` text from doc comments.
#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The script file (`-` reads standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Check in batch mode (default: streaming).
    #[arg(long)]
    pub batch: bool,
    /// A session property, `key=value` (repeatable).
    #[arg(long = "set", value_parser = key_value)]
    pub properties: Vec<(String, String)>,
    /// A table, or one JSON document.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

// No `///` text here: clap derives `--help` text from doc comments.
#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct SqlRunArgs {
    /// The script file (`-` reads standard input).
    #[arg(short = 'f', long = "file")]
    pub file: PathBuf,
    /// Run in batch mode (default: streaming).
    #[arg(long)]
    pub batch: bool,
    /// A session property, `key=value` (repeatable).
    #[arg(long = "set", value_parser = key_value)]
    pub properties: Vec<(String, String)>,
    /// A label, `key=value` (repeatable).
    #[arg(long = "label", value_parser = key_value)]
    pub labels: Vec<(String, String)>,
    /// Idempotency key: submitting again with it returns the same job.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Follow the job to its end, showing progress, then print the last query's results.
    #[arg(long)]
    pub follow: bool,
    /// How results are printed.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// The most result rows printed (0: all; a table holds its rows in memory).
    #[arg(long, default_value_t = 10_000)]
    pub max_rows: u64,
    #[command(flatten)]
    pub restore: RestoreArgs,
    /// Validate the script first; an invalid one is refused before anything runs.
    #[arg(long)]
    pub validate_first: bool,
    /// With --follow, how the last query's results are printed: changelog (every row with
    /// its kind) or table (the changelog applied).
    #[arg(long, value_enum, default_value_t = ResultView::Changelog, requires = "follow")]
    pub view: ResultView,
}

// No `///` text here: clap derives `--help` text from doc comments.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum PythonCommand {
    /// Submits a PyFlink program; with --follow shows its progress until it ends.
    Run(Box<PythonRunArgs>),
}

// No `///` text here: clap derives `--help` text from doc comments.
#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct PythonRunArgs {
    /// The program: a local file, or an http(s):// URL the submitter downloads.
    pub script: String,
    /// A small local Python module shipped next to the script (repeatable).
    #[arg(long = "py-file")]
    pub py_files: Vec<PathBuf>,
    /// A requirements.txt to install (`-pyreq`).
    #[arg(long)]
    pub requirements: Option<PathBuf>,
    /// The job's parallelism.
    #[arg(short = 'p', long)]
    pub parallelism: Option<u32>,
    /// A Flink configuration override, `key=value` (repeatable).
    #[arg(short = 'D', value_parser = key_value)]
    pub configuration: Vec<(String, String)>,
    /// A label, `key=value` (repeatable).
    #[arg(long = "label", value_parser = key_value)]
    pub labels: Vec<(String, String)>,
    /// Idempotency key: submitting again with it returns the same job.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Follow the job to its end, showing progress.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub restore: RestoreArgs,
    /// Arguments passed to the program (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
}

// No `///` text here: clap derives `--help` text from doc comments.
#[allow(missing_docs)]
#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// Lists jobs, newest first.
    List(ListArgs),
    /// Prints one job with its statements.
    Get {
        id: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Follows a job until it ends; the exit code says how it ended.
    Watch { id: String },
    /// Cancels a job; with --savepoint stops its Flink jobs with a savepoint each.
    Cancel {
        id: String,
        /// Stop with a savepoint written here (`default` for the cluster's directory).
        #[arg(long)]
        savepoint: Option<String>,
        /// Write the savepoint in the state backend's native format (default: canonical).
        #[arg(long, requires = "savepoint")]
        native: bool,
    },
    /// Takes a savepoint of a running job's Flink jobs, which run on; prints where each was
    /// written.
    Savepoint {
        id: String,
        /// Where to write it (default: the cluster's savepoint directory).
        #[arg(long = "dir")]
        directory: Option<String>,
        /// Write it in the state backend's native format (default: canonical).
        #[arg(long)]
        native: bool,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Replaces a running job by a new revision that carries its state: the job stops with a
    /// savepoint and the new script (-f) or program (--python) starts from it. Prints the new
    /// revision's id; with --follow waits until the upgrade is done (exit 1 when it was
    /// rolled back or abandoned).
    Upgrade(Box<UpgradeArgs>),
}

// No `///` text here: clap derives `--help` text from doc comments.
#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct UpgradeArgs {
    /// The running job (revision) to replace.
    pub id: String,
    /// A SQL job's new script (`-` reads standard input).
    #[arg(
        short = 'f',
        long = "file",
        conflicts_with = "python",
        required_unless_present = "python"
    )]
    pub file: Option<PathBuf>,
    /// The new script runs in batch mode (default: streaming).
    #[arg(long, requires = "file")]
    pub batch: bool,
    /// A session property of the new script, `key=value` (repeatable).
    #[arg(long = "set", value_parser = key_value, requires = "file")]
    pub properties: Vec<(String, String)>,
    /// A Python job's new program: a local file, or an http(s):// URL.
    #[arg(long)]
    pub python: Option<String>,
    /// The new program's parallelism.
    #[arg(short = 'p', long, requires = "python")]
    pub parallelism: Option<u32>,
    /// A Flink configuration override of the new program, `key=value` (repeatable).
    #[arg(short = 'D', value_parser = key_value, requires = "python")]
    pub configuration: Vec<(String, String)>,
    /// Where the running job's savepoint is written (default: the cluster's directory).
    #[arg(long = "dir")]
    pub directory: Option<String>,
    /// Write the savepoint in the state backend's native format (default: canonical).
    #[arg(long)]
    pub native: bool,
    /// Start the new revision even when some of the savepoint's state maps to no operator.
    #[arg(long)]
    pub allow_non_restored_state: bool,
    /// The new revision takes ownership of the savepoint (Flink may delete it later).
    #[arg(long)]
    pub claim: bool,
    /// Idempotency key: upgrading again with it returns the same revision.
    #[arg(long)]
    pub request_id: Option<String>,
    /// Wait until the upgrade is done, rolled back or abandoned, and print the revision.
    #[arg(long)]
    pub follow: bool,
    /// How the followed revision is printed.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

/// Restoring a submitted job's state from a savepoint.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Restore the job's Flink jobs from this savepoint (a `jobs savepoint` location).
    #[arg(long = "restore")]
    pub savepoint_path: Option<String>,
    /// With --restore: start even when some of the savepoint's state maps to no operator.
    #[arg(long, requires = "savepoint_path")]
    pub allow_non_restored_state: bool,
    /// With --restore: the job takes ownership of the savepoint (Flink may delete it later).
    #[arg(long, requires = "savepoint_path")]
    pub claim: bool,
}

impl RestoreArgs {
    fn request(self) -> Option<proto::Restore> {
        Some(proto::Restore {
            savepoint_path: self.savepoint_path?,
            allow_non_restored_state: self.allow_non_restored_state,
            claim_mode: if self.claim {
                proto::ClaimMode::Claim
            } else {
                proto::ClaimMode::NoClaim
            } as i32,
        })
    }
}

fn savepoint_format(native: bool) -> i32 {
    if native {
        proto::SavepointFormat::Native as i32
    } else {
        proto::SavepointFormat::Canonical as i32
    }
}

// No `///` text here: clap derives `--help` text from doc comments.
#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only jobs in this state (repeatable): pending, submitting, running, canceling,
    /// finished, failed, canceled.
    #[arg(long = "state")]
    pub states: Vec<String>,
    /// Only jobs with this label, `key=value` (repeatable).
    #[arg(long = "label", value_parser = key_value)]
    pub labels: Vec<(String, String)>,
    /// Only the revisions of this lineage (a job's `lineage id`).
    #[arg(long)]
    pub lineage: Option<String>,
    /// The most jobs listed.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
}

// No `///` text here: clap derives `--help` text from doc comments.
#[allow(missing_docs)]
#[derive(Debug, Args)]
pub struct ResultsArgs {
    pub id: String,
    /// The statement (default: the last query).
    #[arg(long)]
    pub statement: Option<u32>,
    /// The first row offset.
    #[arg(long, default_value_t = 0)]
    pub from_row: u64,
    /// The most rows printed (0: all); files written with --output hold every row unless
    /// given.
    #[arg(long)]
    pub max_rows: Option<u64>,
    /// How rows are printed, or written to --output (arrow: an Arrow IPC file; parquet).
    #[arg(long, value_enum, default_value_t = ResultFormat::Table)]
    pub format: ResultFormat,
    /// changelog: every row as logged, with its kind; table: the current table (the
    /// changelog applied), printed once the stream ends.
    #[arg(long, value_enum, default_value_t = ResultView::Changelog)]
    pub view: ResultView,
    /// With --view table: keep applying the changes after the snapshot (a terminal shows the
    /// table as it changes) and print it when the results end; without, print the table as
    /// it is now.
    #[arg(long)]
    pub follow: bool,
    /// The file `--format arrow|parquet` writes (batch by batch, never the whole result in
    /// memory).
    #[arg(long, required_if_eq_any = [("format", "arrow"), ("format", "parquet")])]
    pub output: Option<PathBuf>,
}

/// How `results` reads a statement's results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResultView {
    /// Every row as logged, with its kind.
    Changelog,
    /// The current table: a snapshot from the broker, then its changes applied.
    Table,
}

/// How `results` prints rows, or the file it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ResultFormat {
    /// An aligned table.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON document.
    Json,
    /// One JSON object a line.
    Jsonl,
    /// An Arrow IPC file (Feather v2), written to --output.
    Arrow,
    /// A Parquet file, written to --output.
    Parquet,
}

/// Runs a client command; the error says what went wrong and how the process exits.
pub async fn run(server: &ServerArgs, command: ClientCommand) -> Result<(), CliError> {
    let mut client = connect::connect(server).await?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match command {
        ClientCommand::Sql(SqlCommand::Run(args)) => sql_run(&mut client, &mut out, *args).await,
        ClientCommand::Sql(SqlCommand::Validate(args)) => {
            let format = args.format;
            let checked = check(&mut client, args).await?;
            output::validation(&mut out, &checked, format)?;
            if checked.valid {
                Ok(())
            } else {
                let first = checked
                    .statements
                    .iter()
                    .find(|s| s.verdict == proto::statement_validation::Verdict::Invalid as i32);
                Err(CliError::Failed(match first {
                    Some(s) => format!(
                        "statement {} is invalid: {}",
                        s.index,
                        s.error.lines().next().unwrap_or_default()
                    ),
                    None => "the script is invalid".to_owned(),
                }))
            }
        }
        ClientCommand::Sql(SqlCommand::Explain(args)) => {
            let format = args.format;
            let checked = check(&mut client, args).await?;
            output::plans(&mut out, &checked, format)?;
            if checked.valid {
                Ok(())
            } else {
                Err(CliError::Failed(
                    "the script is invalid; `sql validate` says where".to_owned(),
                ))
            }
        }
        ClientCommand::Python(PythonCommand::Run(args)) => {
            python_run(&mut client, &mut out, *args).await
        }
        ClientCommand::Jobs(JobsCommand::List(args)) => {
            let states = args
                .states
                .iter()
                .map(|s| parse_state(s).map(|state| state as i32))
                .collect::<Result<Vec<_>, _>>()?;
            let page = client
                .list_jobs(proto::ListJobsRequest {
                    states,
                    labels: args.labels.into_iter().collect(),
                    lineage_id: args.lineage.unwrap_or_default(),
                    page_size: i32::try_from(args.limit).unwrap_or(i32::MAX),
                    ..proto::ListJobsRequest::default()
                })
                .await?
                .into_inner();
            output::jobs(&mut out, &page.jobs, args.format)
        }
        ClientCommand::Jobs(JobsCommand::Get { id, format }) => {
            let job = get(&mut client, &id).await?;
            output::job(&mut out, &job, format)
        }
        ClientCommand::Jobs(JobsCommand::Watch { id }) => {
            let job = follow::follow(&mut client, &id).await?;
            output::job(&mut out, &job, Format::Table)?;
            ended(&job)
        }
        ClientCommand::Jobs(JobsCommand::Cancel {
            id,
            savepoint,
            native,
        }) => {
            let job = client
                .cancel_job(proto::CancelJobRequest {
                    job_id: id,
                    stop_with_savepoint: savepoint.is_some(),
                    savepoint_directory: savepoint.filter(|d| d != "default").unwrap_or_default(),
                    savepoint_format: savepoint_format(native),
                })
                .await?
                .into_inner();
            writeln!(out, "{} {}", job.id, output::state_name(job.state))
                .map_err(|e| CliError::Failed(e.to_string()))
        }
        ClientCommand::Jobs(JobsCommand::Savepoint {
            id,
            directory,
            native,
            format,
        }) => {
            let before = get(&mut client, &id).await?;
            let job = client
                .trigger_savepoint(proto::TriggerSavepointRequest {
                    job_id: id,
                    directory: directory.unwrap_or_default(),
                    format: savepoint_format(native),
                })
                .await?
                .into_inner();
            let taken: Vec<&proto::Savepoint> = job
                .savepoints
                .iter()
                .filter(|s| {
                    s.kind == proto::savepoint::Kind::Triggered as i32
                        && !before
                            .savepoints
                            .iter()
                            .any(|b| b.trigger_id == s.trigger_id)
                })
                .collect();
            output::savepoints(&mut out, &taken, format)
        }
        ClientCommand::Jobs(JobsCommand::Upgrade(args)) => {
            upgrade(&mut client, &mut out, *args).await
        }
        ClientCommand::Results(args) => {
            let text = match args.format {
                ResultFormat::Table => Format::Table,
                ResultFormat::Csv => Format::Csv,
                ResultFormat::Json => Format::Json,
                ResultFormat::Jsonl => Format::Jsonl,
                ResultFormat::Arrow | ResultFormat::Parquet => {
                    if args.view == ResultView::Table {
                        return Err(CliError::Usage(
                            "--view table prints a table; write files of the changelog".into(),
                        ));
                    }
                    let path = args.output.ok_or_else(|| {
                        CliError::Usage("--format arrow|parquet needs --output FILE".into())
                    })?;
                    let file = if args.format == ResultFormat::Arrow {
                        files::FileFormat::Arrow
                    } else {
                        files::FileFormat::Parquet
                    };
                    return files::write_results(
                        &mut client,
                        proto::StreamOperationResultsRequest {
                            job_id: args.id,
                            statement_index: args.statement,
                            max_rows: i64::try_from(args.max_rows.unwrap_or(0)).unwrap_or(i64::MAX),
                            resume_from_row: args.from_row,
                            encoding: proto::ResultEncoding::Arrow as i32,
                            ..proto::StreamOperationResultsRequest::default()
                        },
                        file,
                        &path,
                    )
                    .await;
                }
            };
            let table = args.view == ResultView::Table;
            let request = proto::StreamOperationResultsRequest {
                statement_index: args.statement,
                resume_from_row: args.from_row,
                ..result_request(
                    args.id,
                    args.view,
                    args.max_rows.unwrap_or(if table { 0 } else { 10_000 }),
                )
            };
            if table && !args.follow {
                return print_table_now(&mut client, &mut out, request, text).await;
            }
            print_results(&mut client, &mut out, request, text).await
        }
    }
}

/// Sends a script to ValidateSql.
async fn check(
    client: &mut Client,
    args: CheckArgs,
) -> Result<proto::ValidateSqlResponse, CliError> {
    let script = read_text(&args.file, "the script")?;
    Ok(client
        .validate_sql(proto::ValidateSqlRequest {
            script,
            runtime_mode: if args.batch {
                proto::RuntimeMode::Batch
            } else {
                proto::RuntimeMode::Streaming
            } as i32,
            properties: args.properties.into_iter().collect(),
        })
        .await?
        .into_inner())
}

fn parse_state(text: &str) -> Result<proto::JobState, CliError> {
    let upper = text.trim().to_ascii_uppercase();
    proto::JobState::from_str_name(&format!("JOB_STATE_{upper}"))
        .filter(|s| *s != proto::JobState::Unspecified)
        .ok_or_else(|| {
            CliError::Usage(format!(
                "--state {text:?}: use pending, submitting, running, canceling, finished, failed or canceled"
            ))
        })
}

async fn get(client: &mut Client, id: &str) -> Result<proto::Job, CliError> {
    Ok(client
        .get_job(proto::GetJobRequest {
            job_id: id.to_owned(),
        })
        .await?
        .into_inner())
}

/// Ok for a finished job; a failed or cancelled one is an error naming why.
fn ended(job: &proto::Job) -> Result<(), CliError> {
    match proto::JobState::try_from(job.state) {
        Ok(proto::JobState::Finished) => Ok(()),
        _ => {
            let cause = job
                .statements
                .iter()
                .find(|s| !s.error.is_empty())
                .map(|s| format!("statement {}: {}", s.index, s.error))
                .unwrap_or_else(|| job.state_reason.clone());
            Err(CliError::Failed(format!(
                "job {} {}: {}",
                job.id,
                output::state_name(job.state),
                cause.lines().next().unwrap_or_default()
            )))
        }
    }
}

fn read_text(path: &PathBuf, what: &str) -> Result<String, CliError> {
    if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .map_err(|e| CliError::Usage(format!("cannot read {what} from stdin: {e}")))?;
        return Ok(text);
    }
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Usage(format!("cannot read {what} {}: {e}", path.display())))
}

async fn sql_run(
    client: &mut Client,
    out: &mut dyn Write,
    args: SqlRunArgs,
) -> Result<(), CliError> {
    let script = read_text(&args.file, "the script")?;
    let job = client
        .submit_sql(proto::SubmitSqlRequest {
            script,
            runtime_mode: if args.batch {
                proto::RuntimeMode::Batch
            } else {
                proto::RuntimeMode::Streaming
            } as i32,
            properties: args.properties.into_iter().collect(),
            request_id: args.request_id.unwrap_or_default(),
            labels: args.labels.into_iter().collect(),
            result_limits: None,
            restore: args.restore.request(),
            validate_first: args.validate_first,
        })
        .await?
        .into_inner();
    if !args.follow {
        return writeln!(out, "{}", job.id).map_err(|e| CliError::Failed(e.to_string()));
    }
    eprintln!("submitted job {}", job.id);
    let job = follow::follow(client, &job.id).await?;
    ended(&job)?;
    if job.statements.iter().any(|s| s.is_query) {
        let max_rows = if args.view == ResultView::Table {
            0
        } else {
            args.max_rows
        };
        let request = result_request(job.id.clone(), args.view, max_rows);
        print_results(client, out, request, args.format).await?;
    }
    Ok(())
}

async fn python_run(
    client: &mut Client,
    out: &mut dyn Write,
    args: PythonRunArgs,
) -> Result<(), CliError> {
    let program = python_program(&args.script)?;
    let mut inline = HashMap::new();
    for path in &args.py_files {
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| CliError::Usage(format!("--py-file {}: no file name", path.display())))?
            .to_owned();
        inline.insert(name, read_text(path, "--py-file")?);
    }
    let requirements = match &args.requirements {
        Some(path) => read_text(path, "--requirements")?,
        None => String::new(),
    };
    let job = client
        .submit_python(proto::SubmitPythonRequest {
            program: Some(program),
            py_requirements: requirements,
            program_args: args.args,
            parallelism: args
                .parallelism
                .map_or(0, |p| i32::try_from(p).unwrap_or(i32::MAX)),
            flink_configuration: args.configuration.into_iter().collect(),
            request_id: args.request_id.unwrap_or_default(),
            labels: args.labels.into_iter().collect(),
            inline_py_files: inline,
            restore: args.restore.request(),
            ..proto::SubmitPythonRequest::default()
        })
        .await?
        .into_inner();
    if !args.follow {
        return writeln!(out, "{}", job.id).map_err(|e| CliError::Failed(e.to_string()));
    }
    eprintln!("submitted job {}", job.id);
    let job = follow::follow(client, &job.id).await?;
    ended(&job)?;
    writeln!(out, "{} {}", job.id, output::state_name(job.state))
        .map_err(|e| CliError::Failed(e.to_string()))
}

/// `jobs upgrade`: sends UpgradeJob, and with --follow waits for the upgrade's end.
async fn upgrade(
    client: &mut Client,
    out: &mut dyn Write,
    args: UpgradeArgs,
) -> Result<(), CliError> {
    use proto::upgrade_job_request::Revision;
    let revision = match (&args.file, &args.python) {
        (Some(file), _) => Revision::Sql(proto::SubmitSqlRequest {
            script: read_text(file, "the script")?,
            runtime_mode: if args.batch {
                proto::RuntimeMode::Batch
            } else {
                proto::RuntimeMode::Streaming
            } as i32,
            properties: args.properties.into_iter().collect(),
            ..proto::SubmitSqlRequest::default()
        }),
        (None, Some(script)) => Revision::Python(proto::SubmitPythonRequest {
            program: Some(python_program(script)?),
            parallelism: args
                .parallelism
                .map_or(0, |p| i32::try_from(p).unwrap_or(i32::MAX)),
            flink_configuration: args.configuration.into_iter().collect(),
            ..proto::SubmitPythonRequest::default()
        }),
        (None, None) => {
            return Err(CliError::Usage(
                "give the new script (-f FILE) or program (--python FILE)".to_owned(),
            ));
        }
    };
    let job = client
        .upgrade_job(proto::UpgradeJobRequest {
            job_id: args.id,
            revision: Some(revision),
            savepoint_directory: args.directory.unwrap_or_default(),
            savepoint_format: savepoint_format(args.native),
            allow_non_restored_state: args.allow_non_restored_state,
            claim_mode: if args.claim {
                proto::ClaimMode::Claim
            } else {
                proto::ClaimMode::NoClaim
            } as i32,
            request_id: args.request_id.unwrap_or_default(),
        })
        .await?
        .into_inner();
    if !args.follow {
        return writeln!(out, "{}", job.id).map_err(|e| CliError::Failed(e.to_string()));
    }
    eprintln!("upgrading to revision {} (job {})", job.revision, job.id);
    let job = follow::follow_upgrade(client, &job.id).await?;
    output::job(out, &job, args.format)?;
    let upgrade = job.upgrade.clone().unwrap_or_default();
    match proto::upgrade::Step::try_from(upgrade.step) {
        Ok(proto::upgrade::Step::Done) => Ok(()),
        Ok(proto::upgrade::Step::RolledBack) => Err(CliError::Failed(format!(
            "revision {} rolled back; job {} runs: {}",
            job.revision,
            upgrade.rollback_job_id,
            upgrade.note.lines().next().unwrap_or_default()
        ))),
        _ => Err(CliError::Failed(format!(
            "upgrade to revision {} abandoned: {}",
            job.revision,
            upgrade.note.lines().next().unwrap_or_default()
        ))),
    }
}

/// A Python program: a URL the submitter downloads, or a local file sent inline.
fn python_program(script: &str) -> Result<proto::submit_python_request::Program, CliError> {
    Ok(
        if script.starts_with("http://") || script.starts_with("https://") {
            proto::submit_python_request::Program::ScriptUrl(script.to_owned())
        } else {
            proto::submit_python_request::Program::Script(read_text(
                &PathBuf::from(script),
                "the script",
            )?)
        },
    )
}

/// The error a result stream's end says the results have: the statement failed or the job
/// was cancelled.
pub(crate) fn stream_failure(end: &proto::StreamEnd) -> Result<(), CliError> {
    match proto::stream_end::Reason::try_from(end.reason) {
        Ok(proto::stream_end::Reason::Failed) => Err(CliError::Failed(format!(
            "the statement failed: {}",
            end.error.lines().next().unwrap_or_default()
        ))),
        Ok(proto::stream_end::Reason::Canceled) => {
            Err(CliError::Failed("the job was cancelled".into()))
        }
        _ => Ok(()),
    }
}

/// A result request of the changelog (up to `max_rows`, 0 for all), or of the table (whole:
/// the broker bounds it by --max-table-rows; `max_rows` then bounds the changes followed).
fn result_request(
    job_id: String,
    view: ResultView,
    max_rows: u64,
) -> proto::StreamOperationResultsRequest {
    proto::StreamOperationResultsRequest {
        job_id,
        max_rows: i64::try_from(max_rows).unwrap_or(i64::MAX),
        view: match view {
            ResultView::Table => proto::ResultView::Table,
            ResultView::Changelog => proto::ResultView::Changelog,
        } as i32,
        ..proto::StreamOperationResultsRequest::default()
    }
}

/// `results --view table` without --follow: prints the table as of its snapshot, and stops
/// reading there.
async fn print_table_now(
    client: &mut Client,
    out: &mut dyn Write,
    request: proto::StreamOperationResultsRequest,
    format: Format,
) -> Result<(), CliError> {
    use proto::stream_operation_results_response::Message;
    let mut stream = client.stream_operation_results(request).await?.into_inner();
    let mut writer = output::RowWriter::new(out, format).without_kinds();
    while let Some(message) = stream.message().await? {
        match message.message {
            Some(Message::Schema(schema)) => writer.schema(&schema)?,
            Some(Message::Snapshot(snapshot)) => {
                writer.rows(&snapshot.rows)?;
                if snapshot.last {
                    let rows = writer.finish()?;
                    eprintln!(
                        "{rows} rows as of row {} of the changelog",
                        snapshot.as_of_row_offset
                    );
                    return Ok(());
                }
            }
            Some(Message::End(end)) => {
                return Err(CliError::Failed(format!(
                    "the results ended before the table was sent: {}",
                    end.error.lines().next().unwrap_or("no rows were logged")
                )));
            }
            Some(Message::Rows(_) | Message::Arrow(_) | Message::Progress(_)) | None => {}
        }
    }
    Err(CliError::Unreachable(
        "the result stream ended without its end message".into(),
    ))
}

/// Streams a statement's results from the log and prints them.
async fn print_results(
    client: &mut Client,
    out: &mut dyn Write,
    request: proto::StreamOperationResultsRequest,
    format: Format,
) -> Result<(), CliError> {
    let table = request.view == proto::ResultView::Table as i32;
    let mut stream = client.stream_operation_results(request).await?.into_inner();
    let mut writer = output::RowWriter::new(out, format);
    if table {
        writer = writer.without_kinds();
    }
    let mut applied = table.then(values::Table::default);
    // A terminal shows the table as it changes.
    let live = (table && format == Format::Table && std::io::stdout().is_terminal())
        .then(follow::LiveTable::new);
    let mut columns: Vec<String> = Vec::new();
    use proto::stream_operation_results_response::Message;
    while let Some(message) = stream.message().await? {
        match message.message {
            Some(Message::Schema(schema)) => {
                columns = schema.columns.iter().map(|c| c.name.clone()).collect();
                writer.schema(&schema)?
            }
            Some(Message::Rows(batch)) => match applied.as_mut() {
                Some(held) => {
                    held.apply(&batch.rows);
                    if let Some(live) = &live {
                        live.show(&columns, held);
                    }
                }
                None => writer.rows(&batch.rows)?,
            },
            Some(Message::Snapshot(snapshot)) => match applied.as_mut() {
                Some(held) => {
                    held.apply(&snapshot.rows);
                    if let (Some(live), true) = (&live, snapshot.last) {
                        live.show(&columns, held);
                    }
                }
                None => {
                    return Err(CliError::Failed(
                        "the broker sent a table snapshot for a changelog".into(),
                    ));
                }
            },
            Some(Message::Progress(_)) | None => {}
            Some(Message::Arrow(_)) => {
                return Err(CliError::Failed(
                    "the broker sent arrow batches for rows asked as ROWS".into(),
                ));
            }
            Some(Message::End(end)) => {
                if let Some(live) = live {
                    live.finish();
                }
                if let Some(held) = applied.take() {
                    writer.rows(&held.rows())?;
                }
                let rows = writer.finish()?;
                stream_failure(&end)?;
                eprintln!("{rows} rows");
                return Ok(());
            }
        }
    }
    writer.finish()?;
    Err(CliError::Unreachable(
        "the result stream ended without its end message".into(),
    ))
}
