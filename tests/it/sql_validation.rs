//! ValidateSql and SubmitSql's `validate_first` through the gRPC API, and `sql validate` /
//! `sql explain` of the CLI, against the stand-in: verdicts per statement, the planner's
//! positions in the script's lines and columns, plans, and no Flink job started.

use crate::support::broker;

use broker::TestBroker;
use flinkbroker_proto::statement_validation::Verdict;
use flinkbroker_proto::{
    ListJobsRequest, RuntimeMode, ScriptPosition, SubmitSqlRequest, ValidateSqlRequest,
};
use tonic::Code;

/// Statement 3 (lines 3–4) names a table that does not exist; statement 4 reads a column
/// that does not exist on its first line.
const SCRIPT: &str = "CREATE TABLE src (id INT, k STRING) WITH ('connector'='datagen');
CREATE TABLE snk (k STRING, c BIGINT) WITH ('connector'='blackhole');
SELECT k,
  COUNT(*) FROM nope GROUP BY k;
   SELECT nope_col FROM src;
INSERT INTO snk SELECT k, COUNT(*) FROM src GROUP BY k;
DROP TABLE src";

fn position(line: u32, column: u32) -> Option<ScriptPosition> {
    Some(ScriptPosition { line, column })
}

#[tokio::test]
async fn validation_reports_each_statement_with_script_positions_and_starts_no_job() {
    let broker = TestBroker::start().await;
    let mut client = broker.client().await;
    let checked = client
        .validate_sql(ValidateSqlRequest {
            script: SCRIPT.into(),
            runtime_mode: RuntimeMode::Streaming as i32,
            ..ValidateSqlRequest::default()
        })
        .await
        .expect("validate")
        .into_inner();
    assert!(!checked.valid);
    let verdicts: Vec<Verdict> = checked.statements.iter().map(|s| s.verdict()).collect();
    assert_eq!(
        verdicts,
        [
            Verdict::Valid,
            Verdict::Valid,
            Verdict::Invalid,
            Verdict::Invalid,
            Verdict::Valid,
            Verdict::NotChecked
        ]
    );
    let kinds: Vec<&str> = checked.statements.iter().map(|s| s.kind.as_str()).collect();
    assert_eq!(kinds, ["DDL", "DDL", "QUERY", "QUERY", "INSERT", "DDL"]);

    // Statement 3: the error is on the statement's second line, the script's fourth.
    let third = &checked.statements[2];
    assert_eq!(third.start, position(3, 1));
    assert_eq!(third.error_start, position(4, 17), "{}", third.error);
    assert_eq!(third.error_end, position(4, 20), "{}", third.error);
    assert!(
        third
            .error
            .contains("From line 4, column 17 to line 4, column 20: Object 'nope' not found"),
        "{}",
        third.error
    );
    // Statement 4 starts at column 4 of line 5: its first line's columns move with it, and
    // not with the EXPLAIN the broker put in front.
    let fourth = &checked.statements[3];
    assert_eq!(fourth.start, position(5, 4));
    assert_eq!(fourth.error_start, position(5, 11), "{}", fourth.error);
    assert!(fourth.error.contains("nope_col"), "{}", fourth.error);

    let insert = &checked.statements[4];
    assert!(
        insert.plan.contains("== Optimized Execution Plan =="),
        "{}",
        insert.plan
    );
    assert!(insert.error.is_empty());
    assert_eq!(
        checked.statements[5].note,
        "not run: it would change a catalog"
    );

    // Nothing ran: no Flink job, no job recorded, the session closed.
    assert!(
        broker.standin.flink_jobs().is_empty(),
        "{:?}",
        broker.standin.flink_jobs()
    );
    let jobs = client
        .list_jobs(ListJobsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(jobs.jobs.is_empty());
    let statements = broker.standin.statements();
    assert!(
        statements
            .iter()
            .any(|s| s.statement.starts_with("CREATE TEMPORARY TABLE src")),
        "a table is created only for the session: {:?}",
        statements.iter().map(|s| &s.statement).collect::<Vec<_>>()
    );
    assert!(
        statements
            .iter()
            .all(|s| !s.statement.starts_with("DROP") && !s.statement.starts_with("INSERT")),
        "{:?}",
        statements.iter().map(|s| &s.statement).collect::<Vec<_>>()
    );

    // A valid script is valid; validate_first lets it through and refuses the invalid one.
    let valid = "CREATE TABLE src (id INT) WITH ('connector'='datagen', 'number-of-rows'='3');\nSELECT id FROM src";
    let checked = client
        .validate_sql(ValidateSqlRequest {
            script: valid.into(),
            runtime_mode: RuntimeMode::Batch as i32,
            ..ValidateSqlRequest::default()
        })
        .await
        .expect("validate")
        .into_inner();
    assert!(checked.valid, "{:?}", checked.statements);
    let refused = client
        .submit_sql(SubmitSqlRequest {
            script: SCRIPT.into(),
            validate_first: true,
            ..SubmitSqlRequest::default()
        })
        .await
        .expect_err("invalid");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused
            .message()
            .starts_with("script: statement 3 (line 4, column 17) is invalid: "),
        "{}",
        refused.message()
    );
    let jobs = client
        .list_jobs(ListJobsRequest::default())
        .await
        .expect("list")
        .into_inner();
    assert!(jobs.jobs.is_empty(), "nothing is recorded");
    let accepted = client
        .submit_sql(SubmitSqlRequest {
            script: valid.into(),
            runtime_mode: RuntimeMode::Batch as i32,
            validate_first: true,
            ..SubmitSqlRequest::default()
        })
        .await
        .expect("valid")
        .into_inner();
    broker::wait_for_state(&client, &accepted.id, flinkbroker_proto::JobState::Finished).await;

    // The same refusals as SubmitSql.
    let error = client
        .validate_sql(ValidateSqlRequest {
            script: "  ".into(),
            ..ValidateSqlRequest::default()
        })
        .await
        .expect_err("empty");
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().starts_with("script:"));
    broker.stop().await;
}
