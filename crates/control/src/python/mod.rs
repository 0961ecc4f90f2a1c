//! Python jobs: SubmitPython, and the driver that runs a program's submitter and follows its
//! Flink job.

pub(super) mod driver;
mod submit;

pub use submit::PythonSubmission;
