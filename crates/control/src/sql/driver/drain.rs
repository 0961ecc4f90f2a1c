//! The results of a query statement: its first page, and the drain that logs the rest.

use super::*;

impl SqlDriver {
    /// Fetches a query's first result page: its failure, or its schema and first rows, which
    /// are kept for the result streams.
    pub(super) async fn first_page(
        &mut self,
        index: u32,
        session: SessionHandle,
        operation: OperationHandle,
    ) -> Result<(), Interrupt> {
        let gateway = self.core.gateway().clone();
        let mut pause = FIRST_POLL;
        loop {
            let page = match self
                .retrying("fetch", || gateway.fetch_page(&session, &operation, 0))
                .await?
            {
                Ok(page) => page,
                Err(error) => return Err(self.statement_failed(index, &error).await),
            };
            if page.result_type != ResultType::NotReady {
                let rows = page.rows;
                let attempt = self.core.job.statements[index as usize].attempt;
                let schema = serde_json::to_vec(&page.columns).map_err(|e| {
                    Interrupt::Failed(format!("cannot record the result schema: {e}"))
                })?;
                let head = self.core.open_log(index, attempt, schema).await?;
                info!(job_id = %self.core.job.id, statement = index, rows, "query produced its first result page; logging its results");
                self.start_drain(index, session, operation, head, Some(page));
                // Result streams waiting for the verdict look again.
                self.core.publish();
                return Ok(());
            }
            self.core.pause(pause).await?;
            pause = (pause * 2).min(self.core.limits().max_fetch_backoff);
        }
    }

    /// Goes on logging a query's results from where its log stands, when the gateway still
    /// serves them there; Err(why) when the query must run again.
    pub(super) async fn continue_drain(
        &mut self,
        statement: &StatementRecord,
    ) -> Result<Result<(), String>, Interrupt> {
        let index = statement.index;
        let id = self.core.job.id;
        let read = self
            .core
            .controller
            .store
            .read_log(id, index, u64::MAX, 1, 0)
            .await?;
        let Some(read) = read else {
            return Ok(Err("it had not produced its first result page".into()));
        };
        let head = read.head;
        if head.attempt != statement.attempt {
            return Ok(Err(format!(
                "its result log holds attempt {}",
                head.attempt + 1
            )));
        }
        if let Some(end) = head.end {
            // Every row it gives was logged before the restart.
            if end != LogEnd::EndOfResults
                && let Some(flink_job_id) = &statement.flink_job_id
                && let Err(error) = self
                    .core
                    .controller
                    .request_cancel(self.session.as_ref(), flink_job_id)
                    .await
            {
                warn!(job_id = %id, statement = index, %flink_job_id, %error, "cannot stop the query's flink job");
            }
            self.core
                .statement_state(index, StatementState::Finished)
                .await?;
            return self
                .core
                .note(&format!(
                    "resumed {}: the results of statement {} were logged to their end ({} rows)",
                    self.core.resumed_because,
                    index + 1,
                    head.rows_logged
                ))
                .await
                .map(Ok);
        }
        // A page that carried rows was being appended when the page after it was asked for
        // (`fetch_sent`). That page is at the logged token, or at the one after it when the
        // empty page at the logged token was passed over unrecorded. The gateway still serves
        // it again as its previous token, unless the page after it ended the results and the
        // gateway let its pages go: only a page that comes back with rows is taken for it.
        let rows_page = match (head.fetch_sent, head.next_token) {
            (Some(sent), Some(next)) if sent == next + 1 || sent == next + 2 => Some(sent - 1),
            (Some(sent), Some(next)) if sent > next + 2 => {
                return Ok(Err(format!(
                    "the sql gateway had moved past its results after row {} (token {sent} was asked for before the page at token {next} was logged)",
                    head.rows_logged
                )));
            }
            _ => None,
        };
        let (Some(operation), Some(session), true, Some(token)) = (
            statement.operation_handle.clone(),
            self.session.clone(),
            self.continued_session,
            head.next_token,
        ) else {
            return Ok(Err(format!(
                "the sql gateway session its results were read from is gone ({} rows had been logged)",
                head.rows_logged
            )));
        };
        let operation = OperationHandle(operation);
        let gateway = self.core.gateway().clone();
        let mut head = head;
        let lost = |error: GatewayError, rows: u64| {
            format!("the sql gateway no longer serves its results after row {rows} ({error})")
        };
        let gone = |page: &RawPage, at: u64, rows: u64| {
            format!(
                "the sql gateway no longer serves the page at token {at} whose rows were being logged after row {rows} (it answers {:?} with {} rows)",
                page.result_type, page.rows
            )
        };
        let carries_rows =
            |page: &RawPage| page.result_type == ResultType::Payload && page.rows > 0;
        let page = match self
            .retrying("fetch", || gateway.fetch_page(&session, &operation, token))
            .await?
        {
            // The page with rows is this one.
            Ok(page) if rows_page == Some(token) && !carries_rows(&page) => {
                return Ok(Err(gone(&page, token, head.rows_logged)));
            }
            // An end of results here would pass over the page with rows after it.
            Ok(page) if rows_page.is_some() && page.result_type == ResultType::Eos => {
                return Ok(Err(gone(&page, token, head.rows_logged)));
            }
            Ok(page) => page,
            // The gateway may be one page past the log: fetched while an append without rows
            // was in flight, or past the empty page passed over before a page with rows.
            Err(GatewayError::InvalidToken { .. }) if rows_page != Some(token) => match self
                .retrying("fetch", || {
                    gateway.fetch_page(&session, &operation, token + 1)
                })
                .await?
            {
                Ok(page) if rows_page == Some(token + 1) && !carries_rows(&page) => {
                    return Ok(Err(gone(&page, token + 1, head.rows_logged)));
                }
                Ok(page) => {
                    head.next_token = Some(token + 1);
                    page
                }
                Err(error) => return Ok(Err(lost(error, head.rows_logged))),
            },
            Err(error) => return Ok(Err(lost(error, head.rows_logged))),
        };
        let rows = head.rows_logged;
        self.start_drain(index, session, operation, head, Some(page));
        self.core
            .note(&format!(
                "resumed {}: the results of statement {} are logged on from row {rows}",
                self.core.resumed_because,
                index + 1
            ))
            .await
            .map(Ok)
    }

    /// Starts the drain that logs a query's results from `head` on; `first` is the page at
    /// the log's next token, already fetched.
    pub(super) fn start_drain(
        &mut self,
        index: u32,
        session: SessionHandle,
        operation: OperationHandle,
        head: LogSummary,
        first: Option<RawPage>,
    ) {
        let statement = &self.core.job.statements[index as usize];
        let (bounded, limits) = match &self.core.job.spec {
            JobSpec::Sql(spec) => (spec.runtime_mode == RuntimeMode::Batch, spec.result_limits),
            JobSpec::Python(_) => (true, ResultLimits::default()),
        };
        let drain = Drain {
            controller: self.core.controller.clone(),
            job_id: self.core.job.id,
            index,
            attempt: statement.attempt,
            session,
            operation,
            flink_job_id: statement
                .kind
                .starts_flink_job()
                .then(|| statement.flink_job_id.clone())
                .flatten(),
            head: head.clone(),
            bounded,
            limits,
            driver: self.core.to_self.clone(),
        };
        self.core
            .controller
            .tails
            .publish(self.core.job.id, index, head);
        self.drains.insert(index, drain.spawn(first));
    }
}
