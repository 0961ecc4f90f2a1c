//! The tonic service: decodes and validates requests, calls `control`, encodes replies.

mod arrow;
mod convert;
mod validate;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use tracing::{Instrument, Span};

use crate::audit::{Auditor, CallRecord};
use crate::auth::{self, Principal, Role};
use crate::error::{self as api_error, status};
use crate::metrics;
use crate::telemetry;
use flinkbroker_control::error::Error;
use flinkbroker_control::{CancelOptions, Controller, ResultRequest, SavepointRequest};
use flinkbroker_model::audit::AuditAction;
use flinkbroker_model::job::{Job, JobId, JobKind, JobSpec, RuntimeMode};
use flinkbroker_proto as proto;
use flinkbroker_proto::job_service_server::JobService;
use flinkbroker_store::JobFilter;

/// The `flinkbroker.v1.JobService` implementation.
pub(crate) struct JobApi {
    controller: Arc<Controller>,
    auditor: Arc<Auditor>,
}

impl JobApi {
    /// Creates the service over a controller, auditing through `auditor`.
    pub(crate) fn new(controller: Arc<Controller>, auditor: Arc<Auditor>) -> Self {
        Self {
            controller,
            auditor,
        }
    }

    fn retention(&self) -> std::time::Duration {
        self.controller.limits().result_retention
    }

    /// Reads a job the caller may see: one of its own tenant's, or any for an administrator.
    /// Another tenant's job is NOT_FOUND, as an unknown id is, so that its existence is not
    /// revealed (the audit trail records whose it was).
    async fn visible_job(
        &self,
        id: JobId,
        caller: &Principal,
        call: &mut CallRecord,
    ) -> api_error::Result<Job> {
        call.job_id = Some(id.to_string());
        let job = self.controller.get_job(id).await?;
        if caller.has(Role::Admin) || job.tenant == caller.tenant {
            Ok(job)
        } else {
            call.hidden_tenant = Some(job.tenant);
            Err(Error::JobNotFound(id).into())
        }
    }

    /// Records the call in the audit trail (if it is audited) and returns its answer.
    async fn audited<T>(
        &self,
        call: CallRecord,
        answer: Result<Response<T>, Status>,
    ) -> Result<Response<T>, Status> {
        let span = Span::current();
        if let Some(job_id) = &call.job_id {
            span.record("job_id", job_id.as_str());
        }
        telemetry::record_rpc_answer(
            &span,
            answer.as_ref().err().map_or(tonic::Code::Ok, Status::code),
        );
        self.auditor
            .answered(call, answer.as_ref().map(|_| ()))
            .await;
        answer
    }

    /// Wraps the service into its tonic server.
    pub(crate) fn into_server(self) -> proto::job_service_server::JobServiceServer<Self> {
        proto::job_service_server::JobServiceServer::new(self)
    }

    async fn submit_sql_call(
        &self,
        request: Request<proto::SubmitSqlRequest>,
        call: &mut CallRecord,
    ) -> api_error::Result<Response<proto::Job>> {
        let caller = authorize(&request, Role::Submitter, call)?;
        let request = request.into_inner();
        note_request_id(call, &request.request_id);
        let submission = validate::sql_submission(request, &caller)?;
        let started = std::time::Instant::now();
        let outcome = self.controller.submit_sql(submission).await;
        metrics::submission(JobKind::Sql, started, &outcome);
        let job = outcome?;
        Span::current().record("job_id", job.id.to_string());
        // The store recorded the submission's event with its job.
        call.recorded = true;
        Ok(Response::new(convert::job(&job, self.retention())))
    }

    async fn submit_python_call(
        &self,
        request: Request<proto::SubmitPythonRequest>,
        call: &mut CallRecord,
    ) -> api_error::Result<Response<proto::Job>> {
        let caller = authorize(&request, Role::Submitter, call)?;
        let request = request.into_inner();
        note_request_id(call, &request.request_id);
        let submission = validate::python_submission(request, &caller)?;
        let started = std::time::Instant::now();
        let outcome = self.controller.submit_python(submission).await;
        metrics::submission(JobKind::Python, started, &outcome);
        let job = outcome?;
        Span::current().record("job_id", job.id.to_string());
        call.recorded = true;
        Ok(Response::new(convert::job(&job, self.retention())))
    }

    async fn stream_operation_results_call(
        &self,
        request: Request<proto::StreamOperationResultsRequest>,
        call: &mut CallRecord,
    ) -> api_error::Result<Response<BoxStream<proto::StreamOperationResultsResponse>>> {
        let caller = authorize(&request, Role::Reader, call)?;
        let request = request.into_inner();
        let job_id = validate::job_id(&request.job_id)?;
        let job = self.visible_job(job_id, &caller, call).await?;
        let arrow = match proto::ResultEncoding::try_from(request.encoding) {
            Ok(proto::ResultEncoding::Unspecified | proto::ResultEncoding::Rows) => None,
            // A streaming job's results are a changelog: each row carries its kind.
            Ok(proto::ResultEncoding::Arrow) => Some(arrow::ArrowResults::new(
                matches!(&job.spec, JobSpec::Sql(spec) if spec.runtime_mode == RuntimeMode::Streaming),
                self.controller.limits().max_message_bytes,
            )),
            Err(_) => {
                return Err(Error::invalid(
                    "encoding",
                    format!(
                        "unknown value {}; use RESULT_ENCODING_ROWS or RESULT_ENCODING_ARROW",
                        request.encoding
                    ),
                )
                .into());
            }
        };
        if request.max_rows < 0 {
            return Err(Error::invalid(
                "max_rows",
                format!("must not be negative, got {}", request.max_rows),
            )
            .into());
        }
        let max_duration = request
            .max_duration
            .map(|d| validate::duration("max_duration", &d))
            .transpose()?;
        let table = match proto::ResultView::try_from(request.view) {
            Ok(proto::ResultView::Unspecified | proto::ResultView::Changelog) => false,
            Ok(proto::ResultView::Table) => true,
            Err(_) => {
                return Err(Error::invalid(
                    "view",
                    format!(
                        "unknown value {}; use RESULT_VIEW_CHANGELOG or RESULT_VIEW_TABLE",
                        request.view
                    ),
                )
                .into());
            }
        };
        if table && arrow.is_some() {
            return Err(Error::invalid(
                "encoding",
                "view TABLE is sent as ROWS; ask for RESULT_ENCODING_ROWS (or view CHANGELOG for arrow)",
            )
            .into());
        }
        let result_request = ResultRequest {
            job_id,
            statement_index: request.statement_index,
            max_rows: (request.max_rows > 0).then_some(request.max_rows as u64),
            max_duration,
            resume_from_row: request.resume_from_row,
            attempt: request.attempt,
        };
        let receiver = if table {
            self.controller.stream_table(result_request).await?
        } else {
            self.controller.stream_results(result_request).await?
        };
        let Some(mut arrow) = arrow else {
            let stream = ReceiverStream::new(receiver)
                .map(|item| item.map(convert::result_message).map_err(status));
            return Ok(Response::new(Box::pin(stream)));
        };
        // One message of rows may become several arrow batches (each within the size bound);
        // an error ends the stream.
        let stream = futures::StreamExt::flat_map(ReceiverStream::new(receiver), move |item| {
            let converted: Vec<Result<proto::StreamOperationResultsResponse, Status>> =
                match item.and_then(|message| arrow.convert(message)) {
                    Ok(messages) => messages.into_iter().map(Ok).collect(),
                    Err(error) => vec![Err(status(error))],
                };
            futures::stream::iter(converted)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_job_call(
        &self,
        request: Request<proto::GetJobRequest>,
        call: &mut CallRecord,
    ) -> api_error::Result<Response<proto::Job>> {
        let caller = authorize(&request, Role::Reader, call)?;
        let id = validate::job_id(&request.into_inner().job_id)?;
        let job = self.visible_job(id, &caller, call).await?;
        Ok(Response::new(convert::job(&job, self.retention())))
    }

    async fn list_jobs_call(
        &self,
        request: Request<proto::ListJobsRequest>,
        call: &mut CallRecord,
    ) -> api_error::Result<Response<proto::ListJobsResponse>> {
        let caller = authorize(&request, Role::Reader, call)?;
        let request = request.into_inner();
        let (filter, page_size): (JobFilter, u32) = validate::list_request(&request, &caller)?;
        let token = (!request.page_token.is_empty()).then_some(request.page_token.as_str());
        let page = self.controller.list_jobs(&filter, page_size, token).await?;
        Ok(Response::new(proto::ListJobsResponse {
            jobs: page
                .jobs
                .iter()
                .map(|job| convert::job(job, self.retention()))
                .collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn cancel_job_call(
        &self,
        request: Request<proto::CancelJobRequest>,
        call: &mut CallRecord,
    ) -> api_error::Result<Response<proto::Job>> {
        let caller = authorize(&request, Role::Submitter, call)?;
        let request = request.into_inner();
        let id = validate::job_id(&request.job_id)?;
        let job = self.visible_job(id, &caller, call).await?;
        if let Some(request_id) = &job.request_id {
            note_request_id(call, request_id);
        }
        let options = CancelOptions {
            stop_with_savepoint: request.stop_with_savepoint,
            savepoint_directory: (!request.savepoint_directory.is_empty())
                .then_some(request.savepoint_directory),
            savepoint_format: validate::savepoint_format(
                "savepoint_format",
                request.savepoint_format,
            )?,
        };
        let job = self.controller.cancel_job(id, options).await?;
        Ok(Response::new(convert::job(&job, self.retention())))
    }

    async fn trigger_savepoint_call(
        &self,
        request: Request<proto::TriggerSavepointRequest>,
        call: &mut CallRecord,
    ) -> api_error::Result<Response<proto::Job>> {
        let caller = authorize(&request, Role::Submitter, call)?;
        let request = request.into_inner();
        let id = validate::job_id(&request.job_id)?;
        let job = self.visible_job(id, &caller, call).await?;
        if let Some(request_id) = &job.request_id {
            note_request_id(call, request_id);
        }
        let savepoint = SavepointRequest {
            directory: (!request.directory.is_empty()).then_some(request.directory),
            format: validate::savepoint_format("format", request.format)?,
        };
        let job = self.controller.trigger_savepoint(id, savepoint).await?;
        Ok(Response::new(convert::job(&job, self.retention())))
    }

    async fn upgrade_job_call(
        &self,
        request: Request<proto::UpgradeJobRequest>,
        call: &mut CallRecord,
    ) -> api_error::Result<Response<proto::Job>> {
        let caller = authorize(&request, Role::Submitter, call)?;
        let request = request.into_inner();
        note_request_id(call, &request.request_id);
        let id = validate::job_id(&request.job_id)?;
        self.visible_job(id, &caller, call).await?;
        let upgrade = validate::upgrade_request(request, &caller)?;
        let kind = match upgrade.revision {
            flinkbroker_control::Revision::Sql(_) => JobKind::Sql,
            flinkbroker_control::Revision::Python(_) => JobKind::Python,
        };
        let started = std::time::Instant::now();
        let outcome = self.controller.upgrade_job(upgrade).await;
        metrics::submission(kind, started, &outcome);
        let job = outcome?;
        // The store recorded the upgrade's event with the new revision.
        call.job_id = Some(job.id.to_string());
        call.recorded = true;
        Ok(Response::new(convert::job(&job, self.retention())))
    }

    async fn validate_sql_call(
        &self,
        request: Request<proto::ValidateSqlRequest>,
        call: &mut CallRecord,
    ) -> api_error::Result<Response<proto::ValidateSqlResponse>> {
        let caller = authorize(&request, Role::Submitter, call)?;
        let request = validate::validate_request(request.into_inner(), &caller)?;
        let checks = self.controller.validate_sql(request).await?;
        Ok(Response::new(convert::validation(&checks)))
    }

    async fn watch_job_call(
        &self,
        request: Request<proto::WatchJobRequest>,
        call: &mut CallRecord,
    ) -> api_error::Result<Response<BoxStream<proto::Job>>> {
        let caller = authorize(&request, Role::Reader, call)?;
        let id = validate::job_id(&request.into_inner().job_id)?;
        self.visible_job(id, &caller, call).await?;
        let receiver = self.controller.watch_job(id).await?;
        let retention = self.retention();
        let stream = ReceiverStream::new(receiver).map(move |item| {
            item.map(|job| convert::job(&job, retention))
                .map_err(status)
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn list_audit_events_call(
        &self,
        request: Request<proto::ListAuditEventsRequest>,
        call: &mut CallRecord,
    ) -> api_error::Result<Response<proto::ListAuditEventsResponse>> {
        authorize(&request, Role::Admin, call)?;
        let request = request.into_inner();
        let (filter, page_size) = validate::audit_request(&request)?;
        let token = (!request.page_token.is_empty()).then_some(request.page_token.as_str());
        let page = self
            .controller
            .list_audit(&filter, page_size, token)
            .await?;
        Ok(Response::new(proto::ListAuditEventsResponse {
            events: page.events.iter().map(convert::audit_event).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }
}

/// The caller of a call, if it may act in `role`; the audit record and the call's span learn
/// who called (the span its tenant), whether or not the role allows the call.
fn authorize<T>(
    request: &Request<T>,
    role: Role,
    call: &mut CallRecord,
) -> api_error::Result<Arc<Principal>> {
    let caller = auth::caller(request)?;
    Span::current().record("tenant", caller.tenant.as_str());
    call.principal = Some(Arc::clone(&caller));
    caller.require(role, call.method)?;
    Ok(caller)
}

/// Notes the request id of the call (none when empty): on the audit record, and on the call's
/// span so that the call's log lines carry it.
fn note_request_id(call: &mut CallRecord, request_id: &str) {
    if request_id.is_empty() {
        return;
    }
    Span::current().record("request_id", request_id);
    call.request_id = Some(request_id.to_owned());
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

impl JobApi {
    /// Serves one call in its span: `handle` answers it, then the audit trail and the span
    /// learn the answer.
    async fn serve<Q, A>(
        &self,
        call: CallRecord,
        request: Request<Q>,
        handle: impl AsyncFnOnce(&Self, Request<Q>, &mut CallRecord) -> api_error::Result<Response<A>>,
    ) -> Result<Response<A>, Status> {
        let span = telemetry::rpc_span(call.method, request.metadata());
        self.serve_in(span, call, request, handle).await
    }

    /// Serves a streaming call as [`JobApi::serve`] does; its span lasts as long as the stream.
    async fn serve_stream<Q, T: 'static>(
        &self,
        call: CallRecord,
        request: Request<Q>,
        handle: impl AsyncFnOnce(
            &Self,
            Request<Q>,
            &mut CallRecord,
        ) -> api_error::Result<Response<BoxStream<T>>>,
    ) -> Result<Response<BoxStream<T>>, Status> {
        let span = telemetry::rpc_span(call.method, request.metadata());
        self.serve_in(span.clone(), call, request, handle)
            .await
            .map(|response| response.map(|stream| spanning(stream, span)))
    }

    async fn serve_in<Q, A>(
        &self,
        span: Span,
        mut call: CallRecord,
        request: Request<Q>,
        handle: impl AsyncFnOnce(&Self, Request<Q>, &mut CallRecord) -> api_error::Result<Response<A>>,
    ) -> Result<Response<A>, Status> {
        async move {
            let answer = handle(self, request, &mut call).await.map_err(Status::from);
            self.audited(call, answer).await
        }
        .instrument(span)
        .await
    }
}

/// Keeps a streaming call's span going while its stream lasts. An exported span ends when it
/// was last exited, so the span is entered for each message: it ends with the last message
/// sent, not when the stream opened.
fn spanning<T: 'static>(stream: BoxStream<T>, span: Span) -> BoxStream<T> {
    Box::pin(stream.map(move |item| {
        let _entered = span.enter();
        item
    }))
}

#[tonic::async_trait]
impl JobService for JobApi {
    async fn submit_sql(
        &self,
        request: Request<proto::SubmitSqlRequest>,
    ) -> Result<Response<proto::Job>, Status> {
        let call = CallRecord::new("SubmitSql", Some(AuditAction::Submit));
        self.serve(call, request, Self::submit_sql_call).await
    }

    async fn submit_python(
        &self,
        request: Request<proto::SubmitPythonRequest>,
    ) -> Result<Response<proto::Job>, Status> {
        let call = CallRecord::new("SubmitPython", Some(AuditAction::Submit));
        self.serve(call, request, Self::submit_python_call).await
    }

    type StreamOperationResultsStream = BoxStream<proto::StreamOperationResultsResponse>;

    async fn stream_operation_results(
        &self,
        request: Request<proto::StreamOperationResultsRequest>,
    ) -> Result<Response<Self::StreamOperationResultsStream>, Status> {
        let call = CallRecord::new("StreamOperationResults", Some(AuditAction::ReadResults));
        self.serve_stream(call, request, Self::stream_operation_results_call)
            .await
    }

    async fn get_job(
        &self,
        request: Request<proto::GetJobRequest>,
    ) -> Result<Response<proto::Job>, Status> {
        let call = CallRecord::new("GetJob", None);
        self.serve(call, request, Self::get_job_call).await
    }

    async fn list_jobs(
        &self,
        request: Request<proto::ListJobsRequest>,
    ) -> Result<Response<proto::ListJobsResponse>, Status> {
        let call = CallRecord::new("ListJobs", None);
        self.serve(call, request, Self::list_jobs_call).await
    }

    async fn cancel_job(
        &self,
        request: Request<proto::CancelJobRequest>,
    ) -> Result<Response<proto::Job>, Status> {
        let call = CallRecord::new("CancelJob", Some(AuditAction::Cancel));
        self.serve(call, request, Self::cancel_job_call).await
    }

    async fn trigger_savepoint(
        &self,
        request: Request<proto::TriggerSavepointRequest>,
    ) -> Result<Response<proto::Job>, Status> {
        let call = CallRecord::new("TriggerSavepoint", Some(AuditAction::Savepoint));
        self.serve(call, request, Self::trigger_savepoint_call)
            .await
    }

    async fn upgrade_job(
        &self,
        request: Request<proto::UpgradeJobRequest>,
    ) -> Result<Response<proto::Job>, Status> {
        let call = CallRecord::new("UpgradeJob", Some(AuditAction::Upgrade));
        self.serve(call, request, Self::upgrade_job_call).await
    }

    async fn validate_sql(
        &self,
        request: Request<proto::ValidateSqlRequest>,
    ) -> Result<Response<proto::ValidateSqlResponse>, Status> {
        let call = CallRecord::new("ValidateSql", None);
        self.serve(call, request, Self::validate_sql_call).await
    }

    type WatchJobStream = BoxStream<proto::Job>;

    async fn watch_job(
        &self,
        request: Request<proto::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let call = CallRecord::new("WatchJob", None);
        self.serve_stream(call, request, Self::watch_job_call).await
    }

    async fn list_audit_events(
        &self,
        request: Request<proto::ListAuditEventsRequest>,
    ) -> Result<Response<proto::ListAuditEventsResponse>, Status> {
        let call = CallRecord::new("ListAuditEvents", None);
        self.serve(call, request, Self::list_audit_events_call)
            .await
    }
}
