//! StreamOperationResults with encoding ARROW: the schema message gains the Arrow schema, and
//! each batch of rows becomes Arrow IPC record batches of at most `--max-message-bytes`.
//!
//! The rows are converted as they are read from the result log, not logged a second time:
//! converting costs less than reading the rows from the store and sending them (the
//! `result_log` bench measures both), and the log keeps one encoding.

use flinkbroker_arrow::Encoder;
use flinkbroker_control::ResultMessage;
use flinkbroker_control::error::Error;
use flinkbroker_proto as proto;

use super::convert;

/// Turns a result stream's messages into ARROW-encoded ones.
pub(super) struct ArrowResults {
    encoder: Option<Encoder>,
    changelog: bool,
    max_message_bytes: usize,
}

impl ArrowResults {
    /// A stream of a statement whose rows are a changelog (a streaming job's) or not.
    pub(super) fn new(changelog: bool, max_message_bytes: u64) -> Self {
        Self {
            encoder: None,
            changelog,
            max_message_bytes: usize::try_from(max_message_bytes).unwrap_or(usize::MAX),
        }
    }

    /// The messages one message of the stream becomes.
    pub(super) fn convert(
        &mut self,
        message: ResultMessage,
    ) -> Result<Vec<proto::StreamOperationResultsResponse>, Error> {
        use proto::stream_operation_results_response::Message;
        match message {
            ResultMessage::Schema(mut schema) => {
                let mut encoder = Encoder::new(&schema, self.changelog).map_err(|error| {
                    Error::FailedPrecondition(format!(
                        "the results cannot be sent as arrow: {error}; read them with encoding ROWS"
                    ))
                })?;
                schema.arrow_schema = encoder.schema_message().map_err(internal)?;
                self.encoder = Some(encoder);
                Ok(vec![respond(Message::Schema(schema))])
            }
            ResultMessage::Rows {
                rows,
                first_row_offset,
                attempt,
            } => {
                let Some(encoder) = self.encoder.as_mut() else {
                    return Err(Error::Internal(
                        "result rows came before their schema".into(),
                    ));
                };
                let mut out = Vec::new();
                encode_bounded(
                    encoder,
                    &rows,
                    first_row_offset,
                    attempt,
                    self.max_message_bytes,
                    &mut out,
                )?;
                Ok(out)
            }
            other => Ok(vec![convert::result_message(other)]),
        }
    }
}

/// Encodes rows as one batch, or as halves (recursively) while a batch is larger than
/// `max_bytes`; a single row is sent whatever its size, as with ROWS.
fn encode_bounded(
    encoder: &mut Encoder,
    rows: &[proto::Row],
    first_row_offset: u64,
    attempt: u32,
    max_bytes: usize,
    out: &mut Vec<proto::StreamOperationResultsResponse>,
) -> Result<(), Error> {
    let message = encoder.batch_message(rows).map_err(internal)?;
    if message.len() > max_bytes && rows.len() > 1 {
        let (head, tail) = rows.split_at(rows.len() / 2);
        encode_bounded(encoder, head, first_row_offset, attempt, max_bytes, out)?;
        let tail_offset = first_row_offset + head.len() as u64;
        return encode_bounded(encoder, tail, tail_offset, attempt, max_bytes, out);
    }
    out.push(respond(
        proto::stream_operation_results_response::Message::Arrow(proto::ArrowBatch {
            ipc_message: message,
            first_row_offset,
            attempt,
            row_count: rows.len() as u64,
        }),
    ));
    Ok(())
}

fn respond(
    message: proto::stream_operation_results_response::Message,
) -> proto::StreamOperationResultsResponse {
    proto::StreamOperationResultsResponse {
        message: Some(message),
    }
}

fn internal(error: flinkbroker_arrow::Error) -> Error {
    Error::Internal(format!("cannot encode results as arrow: {error}"))
}
