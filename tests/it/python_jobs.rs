//! Black-box tests of SubmitPython through the generated gRPC client.

use crate::support::broker;
use flinkbroker_testkit::standin as sql_gateway_standin;

use broker::TestBroker;
use flinkbroker_proto::submit_python_request::Program;
use flinkbroker_proto::{ListJobsRequest, SubmitPythonRequest};
use sql_gateway_standin::StandinConfig;
use tonic::Code;

fn inline(script: &str) -> SubmitPythonRequest {
    SubmitPythonRequest {
        program: Some(Program::Script(script.into())),
        ..SubmitPythonRequest::default()
    }
}

#[tokio::test]
async fn bad_python_input_is_rejected_naming_the_field_and_creates_nothing() {
    let broker = TestBroker::start_with(
        StandinConfig::default(),
        &[
            "--max-script-bytes",
            "1000",
            "--max-parallelism",
            "8",
            "--script-url-prefixes",
            "https://artifacts.example/jobs/",
        ],
    )
    .await;
    let mut client = broker.client().await;
    let with = |change: &dyn Fn(&mut SubmitPythonRequest)| {
        let mut request = inline("print('hi')");
        change(&mut request);
        request
    };
    let cases: Vec<(SubmitPythonRequest, &str)> = vec![
        (SubmitPythonRequest::default(), "script: must not be empty"),
        (inline("  \n"), "script: must not be empty"),
        (
            inline(&"x".repeat(1001)),
            "script: 1001 bytes with inline_py_files exceeds the limit of 1000 bytes",
        ),
        (
            with(&|r| r.entry_module = "1bad.module".into()),
            "entry_module: \"1bad.module\" is not a python module path",
        ),
        (
            with(&|r| r.entry_module = "recs/main".into()),
            "entry_module:",
        ),
        (
            SubmitPythonRequest {
                program: Some(Program::ScriptUrl("https://evil.example/job.py".into())),
                ..SubmitPythonRequest::default()
            },
            "script_url: \"https://evil.example/job.py\" is not under an allowed prefix",
        ),
        (
            with(&|r| r.py_requirements = "a==1\n".repeat(20_000)),
            "py_requirements: 100000 bytes exceeds the limit of 65536 bytes",
        ),
        (
            with(&|r| r.parallelism = -1),
            "parallelism: must be positive, got -1",
        ),
        (
            with(&|r| r.parallelism = 9),
            "parallelism: 9 exceeds the maximum of 8",
        ),
        (
            with(&|r| {
                r.flink_configuration.insert("bad key".into(), "1".into());
            }),
            "flink_configuration: key \"bad key\"",
        ),
        (
            with(&|r| {
                r.inline_py_files
                    .insert("../evil.py".into(), "x = 1".into());
            }),
            "inline_py_files: \"../evil.py\" is not a python file name",
        ),
        (
            with(&|r| r.py_files = vec!["a.py,b.py".into()]),
            "py_files: \"a.py,b.py\" must not contain commas",
        ),
        (
            with(&|r| r.request_id = "white space".into()),
            "request_id:",
        ),
    ];
    for (request, message) in cases {
        let error = client.submit_python(request).await.expect_err(message);
        assert_eq!(
            error.code(),
            Code::InvalidArgument,
            "{message}: {}",
            error.message()
        );
        assert!(
            error.message().starts_with(message),
            "expected {message:?}, got {:?}",
            error.message()
        );
    }
    let jobs = client
        .list_jobs(ListJobsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(jobs.jobs.is_empty(), "no job was recorded");
    let created: Vec<_> = std::fs::read_dir(broker.work_dir.path())
        .expect("work dir")
        .collect();
    assert!(
        created.is_empty(),
        "nothing was written to disk: {created:?}"
    );
    broker.stop().await;
}
