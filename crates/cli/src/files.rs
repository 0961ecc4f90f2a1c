//! `results --format arrow|parquet --output FILE`: a statement's results read as Arrow record
//! batches and written batch by batch to an Arrow IPC file or a Parquet file, so that no
//! more than one batch is held in memory. The file appears under its name only once every row
//! is written; a stream that fails leaves nothing behind.

use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_ipc::writer::FileWriter;
use flinkbroker_arrow::{ArrowRecordBatch as RecordBatch, Decoder};
use flinkbroker_proto as proto;
use parquet::arrow::ArrowWriter;

use super::CliError;
use super::connect::Client;

/// The file written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileFormat {
    /// An Arrow IPC file (Feather v2).
    Arrow,
    /// Parquet, Snappy-compressed.
    Parquet,
}

enum Sink {
    Arrow(FileWriter<File>),
    Parquet(ArrowWriter<File>),
}

impl Sink {
    fn write(&mut self, batch: &RecordBatch) -> Result<(), CliError> {
        match self {
            Sink::Arrow(writer) => writer.write(batch).map_err(failed),
            Sink::Parquet(writer) => writer.write(batch).map_err(failed),
        }
    }

    fn close(self) -> Result<(), CliError> {
        match self {
            Sink::Arrow(mut writer) => writer.finish().map_err(failed),
            Sink::Parquet(writer) => writer.close().map(|_| ()).map_err(failed),
        }
    }
}

fn failed(error: impl std::fmt::Display) -> CliError {
    CliError::Failed(format!("cannot write the file: {error}"))
}

/// Reads the results `request` asks for (encoding ARROW) and writes them to `path`.
pub(crate) async fn write_results(
    client: &mut Client,
    request: proto::StreamOperationResultsRequest,
    format: FileFormat,
    path: &Path,
) -> Result<(), CliError> {
    let partial = partial_path(path);
    let written = write_to(client, request, format, &partial).await;
    match written {
        Ok(rows) => {
            std::fs::rename(&partial, path)
                .map_err(|e| CliError::Failed(format!("cannot write {}: {e}", path.display())))?;
            eprintln!("{rows} rows written to {}", path.display());
            Ok(())
        }
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

/// `FILE.partial` beside `FILE`.
fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}

async fn write_to(
    client: &mut Client,
    request: proto::StreamOperationResultsRequest,
    format: FileFormat,
    path: &Path,
) -> Result<u64, CliError> {
    use proto::stream_operation_results_response::Message;
    let mut stream = client.stream_operation_results(request).await?.into_inner();
    let mut decoder = Decoder::default();
    let mut sink: Option<Sink> = None;
    let mut rows = 0u64;
    let decode = |error: flinkbroker_arrow::Error| {
        CliError::Failed(format!("the broker's arrow batches do not read: {error}"))
    };
    while let Some(message) = stream.message().await? {
        match message.message {
            Some(Message::Schema(schema)) => {
                decoder.push(&schema.arrow_schema).map_err(decode)?;
                let arrow_schema = decoder
                    .schema()
                    .ok_or_else(|| CliError::Failed("the broker sent no arrow schema".into()))?;
                let file = File::create(path).map_err(|e| {
                    CliError::Failed(format!("cannot create {}: {e}", path.display()))
                })?;
                sink = Some(match format {
                    FileFormat::Arrow => {
                        Sink::Arrow(FileWriter::try_new(file, &arrow_schema).map_err(failed)?)
                    }
                    FileFormat::Parquet => Sink::Parquet(
                        ArrowWriter::try_new(
                            file,
                            arrow_schema,
                            Some(
                                parquet::file::properties::WriterProperties::builder()
                                    .set_compression(parquet::basic::Compression::SNAPPY)
                                    .build(),
                            ),
                        )
                        .map_err(failed)?,
                    ),
                });
            }
            Some(Message::Arrow(batch)) => {
                let Some(sink) = sink.as_mut() else {
                    return Err(CliError::Failed("rows came before their schema".into()));
                };
                for record_batch in decoder.push(&batch.ipc_message).map_err(decode)? {
                    rows += record_batch.num_rows() as u64;
                    sink.write(&record_batch)?;
                }
            }
            Some(Message::Rows(_) | Message::Snapshot(_)) => {
                return Err(CliError::Failed(
                    "the broker sent rows for results asked as arrow".into(),
                ));
            }
            Some(Message::Progress(_)) | None => {}
            Some(Message::End(end)) => {
                super::stream_failure(&end)?;
                let Some(sink) = sink else {
                    return Err(CliError::Failed(
                        "the results ended before their schema".into(),
                    ));
                };
                sink.close()?;
                return Ok(rows);
            }
        }
    }
    Err(CliError::Unreachable(
        "the result stream ended without its end message".into(),
    ))
}
