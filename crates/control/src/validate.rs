//! ValidateSql: checks a script statement by statement in a throwaway gateway session, without
//! starting a Flink job.
//!
//! Statements that only change the session (SET, RESET, USE, catalogs and modules of the
//! session) run as they are, and `CREATE TABLE` / `VIEW` / `FUNCTION` as `CREATE TEMPORARY …`,
//! so that later statements see their objects and no catalog keeps them. Queries, INSERTs and
//! statement sets are validated and planned with `EXPLAIN`. Statements that would change a
//! catalog or a running job are not run. The planner's positions, relative to the text the
//! gateway ran, are given in the script's lines and columns.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;
use tracing::{info, warn};

use super::{Controller, admission};
use crate::error::{Error, Result};
use flinkbroker_flink::sql_gateway::{
    GatewayError, OperationHandle, OperationStatus, ResultType, SessionHandle, SqlGateway,
};
use flinkbroker_model::job::{JobId, RuntimeMode};
use flinkbroker_model::sql_script::{
    Rewrite, Statement, StatementKind, ValidationStep, positions_in_message, split_statements,
    validation_step,
};

/// How long one statement may take to be checked.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);
const FIRST_POLL: Duration = Duration::from_millis(10);
/// The most result pages read for one EXPLAIN.
const MAX_PLAN_PAGES: usize = 64;

/// What ValidateSql is asked to check.
#[derive(Debug, Clone)]
pub struct ValidateRequest {
    /// The tenant of the caller (for its configuration guardrails).
    pub tenant: String,
    /// The script.
    pub script: String,
    /// Batch or streaming.
    pub runtime_mode: RuntimeMode,
    /// Session properties, as for SubmitSql.
    pub properties: BTreeMap<String, String>,
}

/// A 1-based position in the script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptPosition {
    /// The line.
    pub line: u32,
    /// The column, in characters.
    pub column: u32,
}

/// How one statement was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It is valid; `plan` holds the optimized plan of a query, INSERT or statement set.
    Valid {
        /// `EXPLAIN`'s output.
        plan: Option<String>,
    },
    /// The gateway refused it.
    Invalid {
        /// The planner's root cause, its positions given in the script's lines and columns.
        message: String,
        /// Where the error starts, when the planner said.
        start: Option<ScriptPosition>,
        /// Where it ends, when the planner said (`From line … to line …`).
        end: Option<ScriptPosition>,
    },
    /// It was not run (the reason says why); nothing is known of it.
    NotChecked(String),
}

/// One statement's check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementCheck {
    /// Zero-based position in the script.
    pub index: u32,
    /// The statement's text.
    pub sql: String,
    /// What it is.
    pub kind: StatementKind,
    /// Where it starts in the script.
    pub start: ScriptPosition,
    /// How it was found.
    pub verdict: Verdict,
}

impl Controller {
    /// Validates a script in a throwaway session of the gateway; starts no Flink job.
    pub async fn validate_sql(&self, request: ValidateRequest) -> Result<Vec<StatementCheck>> {
        let texts = admission::sql_statements(&self.limits, &request.script)?;
        let policy = self.limits.tenants.policy(&request.tenant);
        admission::sql_configuration(&policy, request.properties.keys(), &texts)?;
        let statements = split_statements(&request.script)
            .map_err(|e| Error::invalid("script", e.to_string()))?;
        let mut properties = request.properties.clone();
        properties.insert(
            "execution.runtime-mode".into(),
            request.runtime_mode.as_str().into(),
        );
        // A fresh id names the session, as a job's does.
        let name = format!("flinkbroker-validate-{}", JobId::new_random());
        let session = self
            .gateway
            .open_session(&name, &properties)
            .await
            .map_err(unavailable)?;
        info!(session = %session.0, statements = statements.len(), "validating a script in a throwaway sql gateway session");
        let checked = self.check_all(&session, &statements).await;
        if let Err(error) = self.gateway.close_session(&session).await {
            warn!(session = %session.0, %error, "cannot close the validation session; it expires on its own");
        }
        checked
    }

    async fn check_all(
        &self,
        session: &SessionHandle,
        statements: &[Statement],
    ) -> Result<Vec<StatementCheck>> {
        let mut checks = Vec::with_capacity(statements.len());
        for (index, statement) in statements.iter().enumerate() {
            if self.shutdown.is_cancelled() {
                return Err(Error::ShuttingDown);
            }
            let verdict = match validation_step(&statement.text) {
                ValidationStep::Skip(reason) => Verdict::NotChecked(format!("not run: {reason}")),
                ValidationStep::Run(rewrite) => {
                    self.check_one(session, statement, &rewrite, false).await?
                }
                ValidationStep::Explain(rewrite) => {
                    self.check_one(session, statement, &rewrite, true).await?
                }
            };
            checks.push(StatementCheck {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                sql: statement.text.clone(),
                kind: statement.kind(),
                start: ScriptPosition {
                    line: statement.line,
                    column: statement.column,
                },
                verdict,
            });
        }
        Ok(checks)
    }

    /// Runs one statement's check and reads its verdict (and the plan of an EXPLAIN).
    async fn check_one(
        &self,
        session: &SessionHandle,
        statement: &Statement,
        rewrite: &Rewrite,
        explain: bool,
    ) -> Result<Verdict> {
        let gateway = self.gateway.as_ref();
        let operation = match gateway
            .execute_statement(session, &rewrite.text, &BTreeMap::new())
            .await
        {
            Ok(operation) => operation,
            Err(GatewayError::StatementFailed { message }) => {
                return Ok(invalid(&message, statement, rewrite));
            }
            Err(error) => return Err(unavailable(error)),
        };
        let deadline = Instant::now() + STATEMENT_TIMEOUT;
        let mut pause = FIRST_POLL;
        loop {
            let status = gateway
                .operation_status(session, &operation)
                .await
                .map_err(unavailable)?;
            match status {
                OperationStatus::Error => {
                    // The cause is served at fetch time.
                    return Ok(match gateway.fetch_results(session, &operation, 0).await {
                        Err(GatewayError::StatementFailed { message }) => {
                            invalid(&message, statement, rewrite)
                        }
                        Err(error) => invalid(&error.to_string(), statement, rewrite),
                        Ok(_) => invalid(
                            "the sql gateway reported the statement as failed",
                            statement,
                            rewrite,
                        ),
                    });
                }
                OperationStatus::Finished => {
                    let plan = if explain {
                        Some(read_plan(gateway, session, &operation).await?)
                    } else {
                        None
                    };
                    let _ = gateway.close_operation(session, &operation).await;
                    return Ok(Verdict::Valid { plan });
                }
                status if status.is_terminal() => {
                    return Ok(Verdict::NotChecked(format!(
                        "the sql gateway reports the check {status:?}"
                    )));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                let _ = gateway.cancel_operation(session, &operation).await;
                return Err(Error::DeadlineExceeded(format!(
                    "the check of the statement at line {}, column {} did not end within {} s",
                    statement.line,
                    statement.column,
                    STATEMENT_TIMEOUT.as_secs()
                )));
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => return Err(Error::ShuttingDown),
                _ = tokio::time::sleep(pause) => {}
            }
            pause = (pause * 2).min(self.limits.poll_interval);
        }
    }
}

/// Reads the plan text an EXPLAIN returns: one row, one string column.
async fn read_plan(
    gateway: &dyn SqlGateway,
    session: &SessionHandle,
    operation: &OperationHandle,
) -> Result<String> {
    let mut token = 0;
    let mut plan = String::new();
    for _ in 0..MAX_PLAN_PAGES {
        let page = gateway
            .fetch_results(session, operation, token)
            .await
            .map_err(unavailable)?;
        for row in &page.data {
            if let Some(field) = row.fields.first() {
                let text: String = serde_json::from_str(field.get())
                    .map_err(|e| Error::Internal(format!("the plan is not a string: {e}")))?;
                plan.push_str(&text);
            }
        }
        match (page.result_type, page.next_token) {
            (ResultType::Eos, _) | (_, None) => return Ok(plan),
            (ResultType::NotReady, Some(next)) => {
                token = next;
                tokio::time::sleep(FIRST_POLL).await;
            }
            (ResultType::Payload, Some(next)) => token = next,
        }
    }
    Ok(plan)
}

/// An invalid statement: the message with its positions in the script's coordinates.
fn invalid(message: &str, statement: &Statement, rewrite: &Rewrite) -> Verdict {
    let found = positions_in_message(message);
    let mut rewritten = String::with_capacity(message.len());
    let mut last = 0;
    let mut positions = Vec::new();
    for (range, line, column) in found {
        let (line, column) = rewrite.to_statement(line, column);
        let (line, column) = statement.to_script(line, column);
        rewritten.push_str(&message[last..range.start]);
        rewritten.push_str(&format!("line {line}, column {column}"));
        last = range.end;
        positions.push(ScriptPosition { line, column });
    }
    rewritten.push_str(&message[last..]);
    Verdict::Invalid {
        message: rewritten,
        start: positions.first().copied(),
        end: positions.get(1).copied(),
    }
}

/// A gateway that cannot validate now.
fn unavailable(error: GatewayError) -> Error {
    match error {
        GatewayError::Unreachable(message) => Error::Unavailable(format!(
            "cannot validate: sql gateway unreachable: {message}"
        )),
        other => Error::Gateway(other),
    }
}
