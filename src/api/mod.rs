//! The tonic service: decodes and validates requests, calls `control`, encodes replies.

pub mod convert;
mod validate;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::{self, Principal, Role};
use crate::control::{CancelOptions, Controller, ResultRequest};
use crate::error::Error;
use crate::job::{Job, JobId};
use crate::proto;
use crate::proto::job_service_server::JobService;
use crate::store::JobFilter;

/// The `flinkbroker.v1.JobService` implementation.
pub struct JobApi {
    controller: Arc<Controller>,
}

impl JobApi {
    /// Creates the service over a controller.
    pub fn new(controller: Arc<Controller>) -> Self {
        Self { controller }
    }

    fn retention(&self) -> std::time::Duration {
        self.controller.limits().result_retention
    }

    /// Reads a job the caller may see: one of its own tenant's, or any for an administrator.
    /// Another tenant's job is NOT_FOUND, as an unknown id is, so that its existence is not
    /// revealed.
    async fn visible_job(&self, id: JobId, caller: &Principal) -> Result<Job, Status> {
        let job = self.controller.get_job(id).await?;
        if caller.has(Role::Admin) || job.tenant == caller.tenant {
            Ok(job)
        } else {
            Err(Error::JobNotFound(id).into())
        }
    }

    /// Wraps the service into its tonic server.
    pub fn into_server(self) -> proto::job_service_server::JobServiceServer<Self> {
        proto::job_service_server::JobServiceServer::new(self)
    }
}

/// The caller of a call, if it may act in `role`.
fn authorize<T>(request: &Request<T>, role: Role, call: &str) -> Result<Arc<Principal>, Status> {
    let caller = auth::caller(request)?;
    caller.require(role, call)?;
    Ok(caller)
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl JobService for JobApi {
    async fn submit_sql(
        &self,
        request: Request<proto::SubmitSqlRequest>,
    ) -> Result<Response<proto::Job>, Status> {
        let caller = authorize(&request, Role::Submitter, "SubmitSql")?;
        let submission = validate::sql_submission(request.into_inner(), &caller)?;
        let job = self.controller.submit_sql(submission).await?;
        Ok(Response::new(convert::job(&job, self.retention())))
    }

    async fn submit_python(
        &self,
        request: Request<proto::SubmitPythonRequest>,
    ) -> Result<Response<proto::Job>, Status> {
        let caller = authorize(&request, Role::Submitter, "SubmitPython")?;
        let submission = validate::python_submission(request.into_inner(), &caller)?;
        let job = self.controller.submit_python(submission).await?;
        Ok(Response::new(convert::job(&job, self.retention())))
    }

    type StreamOperationResultsStream = BoxStream<proto::StreamOperationResultsResponse>;

    async fn stream_operation_results(
        &self,
        request: Request<proto::StreamOperationResultsRequest>,
    ) -> Result<Response<Self::StreamOperationResultsStream>, Status> {
        let caller = authorize(&request, Role::Reader, "StreamOperationResults")?;
        let request = request.into_inner();
        let job_id = validate::job_id(&request.job_id)?;
        self.visible_job(job_id, &caller).await?;
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
        let receiver = self
            .controller
            .stream_results(ResultRequest {
                job_id,
                statement_index: request.statement_index,
                max_rows: (request.max_rows > 0).then_some(request.max_rows as u64),
                max_duration,
                resume_from_row: request.resume_from_row,
                attempt: request.attempt,
            })
            .await?;
        let stream = ReceiverStream::new(receiver)
            .map(|item| item.map(convert::result_message).map_err(Status::from));
        Ok(Response::new(Box::pin(stream)))
    }

    async fn get_job(
        &self,
        request: Request<proto::GetJobRequest>,
    ) -> Result<Response<proto::Job>, Status> {
        let caller = authorize(&request, Role::Reader, "GetJob")?;
        let id = validate::job_id(&request.into_inner().job_id)?;
        let job = self.visible_job(id, &caller).await?;
        Ok(Response::new(convert::job(&job, self.retention())))
    }

    async fn list_jobs(
        &self,
        request: Request<proto::ListJobsRequest>,
    ) -> Result<Response<proto::ListJobsResponse>, Status> {
        let caller = authorize(&request, Role::Reader, "ListJobs")?;
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

    async fn cancel_job(
        &self,
        request: Request<proto::CancelJobRequest>,
    ) -> Result<Response<proto::Job>, Status> {
        let caller = authorize(&request, Role::Submitter, "CancelJob")?;
        let request = request.into_inner();
        let id = validate::job_id(&request.job_id)?;
        self.visible_job(id, &caller).await?;
        let options = CancelOptions {
            stop_with_savepoint: request.stop_with_savepoint,
            savepoint_directory: (!request.savepoint_directory.is_empty())
                .then_some(request.savepoint_directory),
        };
        let job = self.controller.cancel_job(id, options).await?;
        Ok(Response::new(convert::job(&job, self.retention())))
    }

    type WatchJobStream = BoxStream<proto::Job>;

    async fn watch_job(
        &self,
        request: Request<proto::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        let caller = authorize(&request, Role::Reader, "WatchJob")?;
        let id = validate::job_id(&request.into_inner().job_id)?;
        self.visible_job(id, &caller).await?;
        let receiver = self.controller.watch_job(id).await?;
        let retention = self.retention();
        let stream = ReceiverStream::new(receiver).map(move |item| {
            item.map(|job| convert::job(&job, retention))
                .map_err(Status::from)
        });
        Ok(Response::new(Box::pin(stream)))
    }
}
