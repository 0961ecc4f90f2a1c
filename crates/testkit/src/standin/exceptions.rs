//! Java-like exception texts in the two shapes the SQL Gateway REST endpoint uses.
//!
//! Handler failures answer `{"errors":["<RestHandlerException stack>"]}`; failures that escape a
//! handler answer `{"errors":["Internal server error.","<Exception on server side:\n...>"]}`.
//! Failures the recorded responses show (`tests/fixtures/sql-gateway/recorded-responses.json`:
//! malformed handles and bodies, unknown sessions and operations, token rules, rejected
//! statements) are answered with those bodies, ids replaced; the root causes of failed statements
//! are built with the recorded frames and "... N more" counts, so a client that digs the root
//! cause out of the stack text sees the same layout as with a real gateway.

use std::fmt::Write as _;
use std::sync::OnceLock;

/// Frames shared by every handler stack, below `AbstractHandler.respondAsLeader`.
const NETTY_FRAMES: &str =
    include_str!("../../../../tests/fixtures/sql-gateway/rest-handler-frames.txt");
const RECORDED: &str =
    include_str!("../../../../tests/fixtures/sql-gateway/recorded-responses.json");
/// Ids in the recorded bodies that `recorded` callers replace.
const RECORDED_UNKNOWN_SESSION: &str = "00000000-0000-0000-0000-000000000000";
const RECORDED_OPERATION: &str = "768cb8c8-c44d-4ea4-bf92-302b9ef018ae";
const RECORDED_CANCELED_OPERATION: &str = "c8c12e4f-4164-430d-b0cc-da35dedf8c16";

const RESPOND: [&str; 3] = [
    "org.apache.flink.table.gateway.rest.handler.AbstractSqlGatewayRestHandler.respondToRequest(AbstractSqlGatewayRestHandler.java:84)",
    "org.apache.flink.table.gateway.rest.handler.AbstractSqlGatewayRestHandler.respondToRequest(AbstractSqlGatewayRestHandler.java:52)",
    "org.apache.flink.runtime.rest.handler.AbstractHandler.respondAsLeader(AbstractHandler.java:196)",
];

const SQL_GATEWAY_EXCEPTION: &str = "org.apache.flink.table.gateway.api.utils.SqlGatewayException";
const SQL_EXECUTION_EXCEPTION: &str =
    "org.apache.flink.table.gateway.service.utils.SqlExecutionException";
const REST_HANDLER_EXCEPTION: &str = "org.apache.flink.runtime.rest.handler.RestHandlerException";

const OPERATION_THREAD: [&str; 8] = [
    "org.apache.flink.table.gateway.service.operation.OperationManager$Operation.processThrowable(OperationManager.java:414)",
    "org.apache.flink.table.gateway.service.operation.OperationManager$Operation.lambda$run$0(OperationManager.java:267)",
    "java.base/java.util.concurrent.Executors$RunnableAdapter.call(Executors.java:539)",
    "java.base/java.util.concurrent.FutureTask.run(FutureTask.java:264)",
    "java.base/java.util.concurrent.Executors$RunnableAdapter.call(Executors.java:539)",
    "java.base/java.util.concurrent.FutureTask.run(FutureTask.java:264)",
    "java.base/java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1136)",
    "java.base/java.util.concurrent.ThreadPoolExecutor$Worker.run(ThreadPoolExecutor.java:635)",
];

const EXECUTE_STATEMENT: [&str; 5] = [
    "org.apache.flink.table.gateway.service.operation.OperationExecutor.executeStatement(OperationExecutor.java:219)",
    "org.apache.flink.table.gateway.service.operation.OperationExecutor.executeStatement(OperationExecutor.java:199)",
    "org.apache.flink.table.gateway.service.SqlGatewayServiceImpl.lambda$executeStatement$1(SqlGatewayServiceImpl.java:214)",
    "org.apache.flink.table.gateway.service.operation.OperationManager.lambda$submitOperation$1(OperationManager.java:119)",
    "org.apache.flink.table.gateway.service.operation.OperationManager$Operation.lambda$run$0(OperationManager.java:258)",
];

const REFLECTION: [&str; 6] = [
    "java.base/jdk.internal.reflect.NativeConstructorAccessorImpl.newInstance0(Native Method)",
    "java.base/jdk.internal.reflect.NativeConstructorAccessorImpl.newInstance(NativeConstructorAccessorImpl.java:77)",
    "java.base/jdk.internal.reflect.DelegatingConstructorAccessorImpl.newInstance(DelegatingConstructorAccessorImpl.java:45)",
    "java.base/java.lang.reflect.Constructor.newInstanceWithCaller(Constructor.java:500)",
    "java.base/java.lang.reflect.Constructor.newInstance(Constructor.java:481)",
    "org.apache.calcite.runtime.Resources$ExInstWithCause.ex(Resources.java:505)",
];

/// One exception of a chain: header line, its own frames and the count of frames shared with
/// the exception that wraps it.
#[derive(Clone, Debug, PartialEq)]
pub struct Throwable {
    pub class: String,
    pub message: String,
    pub frames: Vec<String>,
    pub more: usize,
}

impl Throwable {
    pub fn new(class: &str, message: impl Into<String>) -> Self {
        Throwable {
            class: class.to_string(),
            message: message.into(),
            frames: Vec::new(),
            more: 0,
        }
    }

    pub fn at<'a>(mut self, frames: impl IntoIterator<Item = &'a str>) -> Self {
        self.frames.extend(frames.into_iter().map(str::to_string));
        self
    }

    pub fn more(mut self, more: usize) -> Self {
        self.more = more;
        self
    }

    /// The `toString()` of the exception: `class: message`.
    pub fn header(&self) -> String {
        if self.message.is_empty() {
            self.class.clone()
        } else {
            format!("{}: {}", self.class, self.message)
        }
    }
}

/// Renders `top` (followed by the shared REST frames) and its causes like `printStackTrace`.
pub fn render(top: &Throwable, causes: &[Throwable]) -> String {
    let mut out = String::with_capacity(8 * 1024);
    out.push_str(&top.header());
    out.push('\n');
    for frame in &top.frames {
        let _ = writeln!(out, "\tat {frame}");
    }
    out.push_str(NETTY_FRAMES);
    if !NETTY_FRAMES.ends_with('\n') {
        out.push('\n');
    }
    for cause in causes {
        let _ = writeln!(out, "Caused by: {}", cause.header());
        for frame in &cause.frames {
            let _ = writeln!(out, "\tat {frame}");
        }
        if cause.more > 0 {
            let _ = writeln!(out, "\t... {} more", cause.more);
        }
    }
    out
}

/// A REST error body: HTTP status and the `errors` array.
#[derive(Clone, Debug, PartialEq)]
pub struct ErrorBody {
    pub status: u16,
    pub errors: Vec<String>,
}

impl ErrorBody {
    pub fn to_json(&self) -> String {
        serde_json::json!({ "errors": self.errors }).to_string()
    }

    /// A failure caught by the REST handler itself (one element).
    pub fn handler(status: u16, top: &Throwable, causes: &[Throwable]) -> Self {
        ErrorBody {
            status,
            errors: vec![render(top, causes)],
        }
    }

    /// A failure that escaped the handler (two elements, "Internal server error." first).
    pub fn server_side(top: &Throwable, causes: &[Throwable]) -> Self {
        ErrorBody {
            status: 500,
            errors: vec![
                "Internal server error.".to_string(),
                format!(
                    "<Exception on server side:\n{}\nEnd of exception on server side>",
                    render(top, causes)
                ),
            ],
        }
    }

    /// The router's answer for an unknown path.
    pub fn not_found(uri: &str) -> Self {
        ErrorBody {
            status: 404,
            errors: vec![format!("Not found: {uri}")],
        }
    }
}

/// Which REST handler failed; each has its own frames and "Failed to ..." wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    GetSessionConfig,
    Heartbeat,
    CloseSession,
    ConfigureSession,
    CompleteStatement,
    OperationStatus,
    CancelOperation,
    CloseOperation,
}

/// The reason a session- or operation-level call failed inside the service.
#[derive(Clone, Debug, PartialEq)]
pub enum ServiceFailure {
    SessionNotFound(String),
    OperationNotFound(String),
    /// `Failed to convert the Operation Status from X to Y for op.`
    InvalidTransition {
        operation: String,
        from: &'static str,
        to: &'static str,
    },
    /// Any other root cause, already shaped as a chain.
    Chain(Vec<Throwable>),
}

fn session_not_found(session: &str, lookup_frames: &[&str], more: usize) -> Throwable {
    Throwable::new(
        SQL_GATEWAY_EXCEPTION,
        format!("Session '{session}' does not exist."),
    )
    .at([
        "org.apache.flink.table.gateway.service.session.SessionManagerImpl.getSession(SessionManagerImpl.java:135)",
    ])
    .at(lookup_frames.iter().copied())
    .more(more)
}

/// The failure of a REST handler (HTTP 500): the recorded body of the same failure (of
/// `GET /sessions/{id}` for an unknown session, of status or cancel for an unknown operation and
/// of cancelling a FINISHED operation), or a `configureSession` failure with `chain` as causes.
pub fn handler_failure(endpoint: Endpoint, failure: &ServiceFailure) -> ErrorBody {
    match failure {
        ServiceFailure::SessionNotFound(session) => {
            let name = match endpoint {
                Endpoint::Heartbeat => "unknown-session-heartbeat",
                Endpoint::CloseSession => "unknown-session-close",
                _ => "unknown-session-get",
            };
            recorded(name, &[(RECORDED_UNKNOWN_SESSION, session)])
        }
        ServiceFailure::OperationNotFound(operation) => {
            let name = match endpoint {
                Endpoint::CancelOperation => "cancel-closed-operation",
                _ => "status-closed-operation",
            };
            recorded(name, &[(RECORDED_OPERATION, operation)])
        }
        ServiceFailure::InvalidTransition {
            operation,
            from,
            to,
        } => recorded(
            "cancel-finished-operation",
            &[
                (RECORDED_OPERATION, operation),
                ("from FINISHED to CANCELED", &format!("from {from} to {to}")),
            ],
        ),
        ServiceFailure::Chain(chain) => {
            let message = "Failed to configureSession.";
            let top = Throwable::new(REST_HANDLER_EXCEPTION, message)
                .at(["org.apache.flink.table.gateway.rest.handler.session.ConfigureSessionHandler.handleRequest(ConfigureSessionHandler.java:67)"])
                .at(RESPOND);
            let wrapper = Throwable::new(SQL_GATEWAY_EXCEPTION, message)
                .at([
                    "org.apache.flink.table.gateway.service.SqlGatewayServiceImpl.configureSession(SqlGatewayServiceImpl.java:192)",
                    "org.apache.flink.table.gateway.rest.handler.session.ConfigureSessionHandler.handleRequest(ConfigureSessionHandler.java:63)",
                ])
                .more(48);
            let causes: Vec<Throwable> = std::iter::once(wrapper)
                .chain(chain.iter().cloned())
                .collect();
            ErrorBody::handler(500, &top, &causes)
        }
    }
}

/// `SqlGatewayException: Failed to execute statement.` (HTTP 500), as recorded.
pub fn execute_statement_failure(root: ExecuteStatementRoot) -> ErrorBody {
    match root {
        ExecuteStatementRoot::SessionNotFound(session) => recorded(
            "unknown-session-statement",
            &[(RECORDED_UNKNOWN_SESSION, &session)],
        ),
        ExecuteStatementRoot::TimeoutUnsupported => recorded("execution-timeout-rejected", &[]),
    }
}

/// Why `POST .../statements` failed before an operation existed.
#[derive(Clone, Debug, PartialEq)]
pub enum ExecuteStatementRoot {
    SessionNotFound(String),
    TimeoutUnsupported,
}

/// Why a fetch failed.
#[derive(Clone, Debug, PartialEq)]
pub enum FetchFailure {
    SessionNotFound(String),
    OperationNotFound(String),
    /// `Can not fetch results from the op in STATUS status.`
    WrongStatus {
        operation: String,
        status: &'static str,
    },
    /// `Expecting token to be ...`
    Token(String),
    /// The operation failed: `Failed to execute the operation op.` and its causes.
    OperationFailed {
        operation: String,
        causes: Vec<Throwable>,
    },
}

/// `SqlGatewayException: ...Failed to fetchResults.` (HTTP 500, server-side shape).
pub fn fetch_failure(failure: &FetchFailure) -> ErrorBody {
    let top = Throwable::new(
        SQL_GATEWAY_EXCEPTION,
        format!("{SQL_GATEWAY_EXCEPTION}: Failed to fetchResults."),
    )
    .at([
        "org.apache.flink.table.gateway.rest.handler.statement.FetchResultsHandler.handleRequest(FetchResultsHandler.java:91)",
    ])
    .at(RESPOND);
    let wrapper = Throwable::new(SQL_GATEWAY_EXCEPTION, "Failed to fetchResults.")
        .at([
            "org.apache.flink.table.gateway.service.SqlGatewayServiceImpl.fetchResults(SqlGatewayServiceImpl.java:231)",
            "org.apache.flink.table.gateway.rest.handler.statement.FetchResultsHandler.handleRequest(FetchResultsHandler.java:89)",
        ])
        .more(48);
    let mut causes = vec![wrapper];
    match failure {
        FetchFailure::SessionNotFound(session) => causes.push(session_not_found(
            session,
            &[
                "org.apache.flink.table.gateway.service.SqlGatewayServiceImpl.getSession(SqlGatewayServiceImpl.java:405)",
                "org.apache.flink.table.gateway.service.SqlGatewayServiceImpl.fetchResults(SqlGatewayServiceImpl.java:226)",
            ],
            49,
        )),
        FetchFailure::OperationNotFound(operation) => {
            return recorded("fetch-closed-operation", &[(RECORDED_OPERATION, operation)]);
        }
        FetchFailure::WrongStatus { operation, status } => {
            return recorded(
                "fetch-canceled-operation",
                &[
                    (RECORDED_CANCELED_OPERATION, operation),
                    ("in CANCELED status", &format!("in {status} status")),
                ],
            );
        }
        FetchFailure::Token(message) => {
            return recorded(
                "fetch-token-ahead",
                &[("Expecting token to be 1 or 0, but found 5.", message)],
            );
        }
        FetchFailure::OperationFailed {
            operation,
            causes: roots,
        } => {
            causes.push(
                Throwable::new(
                    SQL_EXECUTION_EXCEPTION,
                    format!("Failed to execute the operation {operation}."),
                )
                .at(OPERATION_THREAD)
                .more(1),
            );
            causes.extend(roots.iter().cloned());
        }
    }
    ErrorBody::server_side(&top, &causes)
}

/// The error body recorded under `name` in `tests/fixtures/sql-gateway/recorded-responses.json`,
/// with each `(recorded, actual)` pair of `substitutions` replaced.
fn recorded(name: &str, substitutions: &[(&str, &str)]) -> ErrorBody {
    static ALL: OnceLock<serde_json::Value> = OnceLock::new();
    let all = ALL.get_or_init(|| serde_json::from_str(RECORDED).expect("recorded responses parse"));
    let entry = &all[name];
    let errors = entry["body"]["errors"]
        .as_array()
        .expect("recorded errors")
        .iter()
        .map(|error| {
            let text = error.as_str().expect("recorded error text").to_string();
            substitutions
                .iter()
                .fold(text, |text, (from, to)| text.replace(from, to))
        })
        .collect();
    ErrorBody {
        status: entry["status"].as_u64().expect("recorded status") as u16,
        errors,
    }
}

/// `RestHandlerException: Bad request, could not parse parameters: ...` (HTTP 400), as recorded
/// for a malformed session handle.
pub fn bad_path_parameter(parameter: &str, value: &str) -> ErrorBody {
    recorded(
        "malformed-session-handle",
        &[
            ("(session_handle)", &format!("({parameter})")),
            ("\"not-a-uuid\"", &format!("\"{value}\"")),
        ],
    )
}

/// The same failure for a query parameter.
pub fn bad_query_parameter(parameter: &str, value: &str) -> ErrorBody {
    recorded(
        "malformed-session-handle",
        &[
            (
                "path parameter (session_handle)",
                &format!("query parameter ({parameter})"),
            ),
            ("\"not-a-uuid\"", &format!("\"{value}\"")),
            (
                "resolvePathParameters(HandlerRequest.java:177)",
                "resolveQueryParameters(HandlerRequest.java:201)",
            ),
            (
                "resolveParametersAndCreate(HandlerRequest.java:159)",
                "resolveParametersAndCreate(HandlerRequest.java:160)",
            ),
        ],
    )
}

/// `RestHandlerException: Request did not match expected format <Body>.` (HTTP 400). The
/// Jackson cause is the recorded one (`{bad json` for sessions, `not json` for the rest), whatever
/// the body was.
pub fn bad_request_body(body_class: &str) -> ErrorBody {
    if body_class == "OpenSessionRequestBody" {
        recorded("malformed-open-session-body", &[])
    } else {
        recorded(
            "malformed-statement-body",
            &[("ExecuteStatementRequestBody", body_class)],
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Root causes of failed operations (the part below "Failed to execute the operation ...").

/// `SqlParserException: SQL parse failed. <message>` with Calcite's causes.
pub fn parse_failure(message: &str, non_query: bool) -> Vec<Throwable> {
    let mut chain = vec![
        Throwable::new(
            "org.apache.flink.table.api.SqlParserException",
            format!("SQL parse failed. {message}"),
        )
        .at([
            "org.apache.flink.table.planner.parse.CalciteParser.parseSqlList(CalciteParser.java:81)",
            "org.apache.flink.table.planner.delegation.ParserImpl.parse(ParserImpl.java:102)",
        ])
        .at(EXECUTE_STATEMENT)
        .more(7),
        Throwable::new("org.apache.calcite.sql.parser.SqlParseException", message)
            .at([
                "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.convertException(FlinkSqlParserImpl.java:539)",
                "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.normalizeException(FlinkSqlParserImpl.java:292)",
                "org.apache.calcite.sql.parser.SqlParser.handleException(SqlParser.java:156)",
                "org.apache.calcite.sql.parser.SqlParser.parseStmtList(SqlParser.java:211)",
                "org.apache.flink.table.planner.parse.CalciteParser.parseSqlList(CalciteParser.java:76)",
            ])
            .more(13),
    ];
    if non_query {
        chain.push(
            Throwable::new("org.apache.calcite.runtime.CalciteException", message)
                .at(REFLECTION)
                .at([
                    "org.apache.calcite.runtime.Resources$ExInst.ex(Resources.java:599)",
                    "org.apache.calcite.sql.SqlUtil.newContextException(SqlUtil.java:932)",
                    "org.apache.calcite.sql.SqlUtil.newContextException(SqlUtil.java:917)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.checkNonQueryExpression(FlinkSqlParserImpl.java:455)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.Expression3(FlinkSqlParserImpl.java:26353)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.AddExpression2b(FlinkSqlParserImpl.java:26008)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.Expression2(FlinkSqlParserImpl.java:26049)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.Expression(FlinkSqlParserImpl.java:25981)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.LeafQueryOrExpr(FlinkSqlParserImpl.java:25952)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.QueryOrExpr(FlinkSqlParserImpl.java:25319)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.OrderedQueryOrExpr(FlinkSqlParserImpl.java:709)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.SqlStmt(FlinkSqlParserImpl.java:4310)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.SqlStmtList(FlinkSqlParserImpl.java:3181)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.parseSqlStmtList(FlinkSqlParserImpl.java:348)",
                    "org.apache.calcite.sql.parser.SqlParser.parseStmtList(SqlParser.java:209)",
                ])
                .more(14),
        );
    } else {
        chain.push(
            Throwable::new("org.apache.flink.sql.parser.impl.ParseException", message)
                .at([
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.generateParseException(FlinkSqlParserImpl.java:47612)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.jj_consume_token(FlinkSqlParserImpl.java:47423)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.SqlStmtList(FlinkSqlParserImpl.java:3190)",
                    "org.apache.flink.sql.parser.impl.FlinkSqlParserImpl.parseSqlStmtList(FlinkSqlParserImpl.java:348)",
                    "org.apache.calcite.sql.parser.SqlParser.parseStmtList(SqlParser.java:209)",
                ])
                .more(14),
        );
    }
    chain
}

/// `ValidationException: SQL validation failed. From line a, column b to line c, column d: msg`.
pub fn validation_failure(context: &str, message: &str) -> Vec<Throwable> {
    let full = if context.is_empty() {
        message.to_string()
    } else {
        format!("{context}: {message}")
    };
    vec![
        Throwable::new(
            "org.apache.flink.table.api.ValidationException",
            format!("SQL validation failed. {full}"),
        )
        .at([
            "org.apache.flink.table.planner.calcite.FlinkPlannerImpl.org$apache$flink$table$planner$calcite$FlinkPlannerImpl$$validate(FlinkPlannerImpl.scala:203)",
            "org.apache.flink.table.planner.calcite.FlinkPlannerImpl.validate(FlinkPlannerImpl.scala:117)",
            "org.apache.flink.table.planner.operations.SqlNodeToOperationConversion.convert(SqlNodeToOperationConversion.java:260)",
            "org.apache.flink.table.planner.delegation.ParserImpl.parse(ParserImpl.java:106)",
        ])
        .at(EXECUTE_STATEMENT)
        .more(7),
        Throwable::new("org.apache.calcite.runtime.CalciteContextException", full.clone())
            .at(REFLECTION)
            .at([
                "org.apache.calcite.sql.SqlUtil.newContextException(SqlUtil.java:932)",
                "org.apache.calcite.sql.SqlUtil.newContextException(SqlUtil.java:917)",
                "org.apache.calcite.sql.validate.SqlValidatorImpl.newValidationError(SqlValidatorImpl.java:5279)",
                "org.apache.calcite.sql.validate.IdentifierNamespace.resolveImpl(IdentifierNamespace.java:183)",
                "org.apache.calcite.sql.validate.IdentifierNamespace.validateImpl(IdentifierNamespace.java:188)",
                "org.apache.calcite.sql.validate.AbstractNamespace.validate(AbstractNamespace.java:89)",
                "org.apache.calcite.sql.validate.SqlValidatorImpl.validateNamespace(SqlValidatorImpl.java:1062)",
                "org.apache.calcite.sql.validate.SqlValidatorImpl.validateQuery(SqlValidatorImpl.java:1037)",
                "org.apache.calcite.sql.validate.SqlValidatorImpl.validateFrom(SqlValidatorImpl.java:3322)",
                "org.apache.calcite.sql.validate.SqlValidatorImpl.validateFrom(SqlValidatorImpl.java:3304)",
                "org.apache.calcite.sql.validate.SqlValidatorImpl.validateSelect(SqlValidatorImpl.java:3631)",
                "org.apache.calcite.sql.validate.SelectNamespace.validateImpl(SelectNamespace.java:64)",
                "org.apache.calcite.sql.validate.AbstractNamespace.validate(AbstractNamespace.java:89)",
                "org.apache.calcite.sql.validate.SqlValidatorImpl.validateNamespace(SqlValidatorImpl.java:1062)",
                "org.apache.calcite.sql.validate.SqlValidatorImpl.validateQuery(SqlValidatorImpl.java:1037)",
                "org.apache.calcite.sql.SqlSelect.validate(SqlSelect.java:248)",
                "org.apache.calcite.sql.validate.SqlValidatorImpl.validateScopedExpression(SqlValidatorImpl.java:1012)",
                "org.apache.calcite.sql.validate.SqlValidatorImpl.validate(SqlValidatorImpl.java:761)",
                "org.apache.flink.table.planner.calcite.FlinkPlannerImpl.org$apache$flink$table$planner$calcite$FlinkPlannerImpl$$validate(FlinkPlannerImpl.scala:199)",
            ])
            .more(15),
        Throwable::new("org.apache.calcite.sql.validate.SqlValidatorException", message)
            .at(REFLECTION)
            .at(["org.apache.calcite.runtime.Resources$ExInst.ex(Resources.java:599)"])
            .more(34),
    ]
}

/// A `ValidationException` raised while converting or planning (no Calcite context).
pub fn planner_validation_failure(message: &str, causes: &[&str]) -> Vec<Throwable> {
    let mut chain = vec![
        Throwable::new("org.apache.flink.table.api.ValidationException", message)
            .at([
                "org.apache.flink.table.planner.operations.SqlNodeToOperationConversion.convert(SqlNodeToOperationConversion.java:262)",
                "org.apache.flink.table.planner.delegation.ParserImpl.parse(ParserImpl.java:106)",
            ])
            .at(EXECUTE_STATEMENT)
            .more(7),
    ];
    for cause in causes {
        chain.push(
            Throwable::new("org.apache.flink.table.api.ValidationException", *cause)
                .at([
                    "org.apache.flink.table.factories.FactoryUtil.createDynamicTableSource(FactoryUtil.java:222)",
                ])
                .more(30),
        );
    }
    chain
}

/// `java.lang.IllegalArgumentException: only single statement supported`.
pub fn single_statement_failure() -> Vec<Throwable> {
    vec![
        Throwable::new(
            "java.lang.IllegalArgumentException",
            "only single statement supported",
        )
        .at([
            "org.apache.flink.util.Preconditions.checkArgument(Preconditions.java:138)",
            "org.apache.flink.table.planner.delegation.ParserImpl.parse(ParserImpl.java:104)",
        ])
        .at(EXECUTE_STATEMENT)
        .more(7),
    ]
}

/// An exception of `class` raised while executing an operation, with optional plain causes.
pub fn operation_failure(class: &str, message: &str, causes: &[(&str, String)]) -> Vec<Throwable> {
    let mut chain = vec![
        Throwable::new(class, message)
            .at([
                "org.apache.flink.table.gateway.service.operation.OperationExecutor.executeOperation(OperationExecutor.java:483)",
                "org.apache.flink.table.gateway.service.operation.OperationExecutor.executeStatement(OperationExecutor.java:243)",
            ])
            .at(EXECUTE_STATEMENT[1..].iter().copied())
            .more(7),
    ];
    for (class, message) in causes {
        chain.push(Throwable::new(class, message.clone()).more(16));
    }
    chain
}

/// A `TableException` raised while executing an operation, with optional plain causes.
pub fn table_failure(message: &str, causes: &[(&str, String)]) -> Vec<Throwable> {
    operation_failure("org.apache.flink.table.api.TableException", message, causes)
}

/// An `SqlExecutionException` raised by the gateway's operation executor.
pub fn execution_failure(message: &str, causes: &[(&str, String)]) -> Vec<Throwable> {
    let mut chain = vec![
        Throwable::new(SQL_EXECUTION_EXCEPTION, message)
            .at([
                "org.apache.flink.table.gateway.service.operation.OperationExecutor.executeOperation(OperationExecutor.java:531)",
                "org.apache.flink.table.gateway.service.operation.OperationExecutor.executeStatement(OperationExecutor.java:243)",
            ])
            .at(EXECUTE_STATEMENT[1..].iter().copied())
            .more(7),
    ];
    for (class, message) in causes {
        chain.push(Throwable::new(class, message.clone()).more(16));
    }
    chain
}

/// `Failed to execute sql` caused by Flink rejecting a job id that was already submitted.
pub fn duplicate_job_failure(job_name: &str, terminated: bool) -> Vec<Throwable> {
    let factory = if terminated {
        "org.apache.flink.runtime.client.DuplicateJobSubmissionException.ofGloballyTerminated(DuplicateJobSubmissionException.java:35)"
    } else {
        "org.apache.flink.runtime.client.DuplicateJobSubmissionException.of(DuplicateJobSubmissionException.java:31)"
    };
    let remote = format!(
        "[Internal server error., <Exception on server side:\n\
org.apache.flink.runtime.client.DuplicateJobSubmissionException: Job has already been submitted.\n\
\tat {factory}\n{}\nEnd of exception on server side>]",
        DISPATCHER_FRAMES
            .iter()
            .map(|f| format!("\tat {f}\n"))
            .collect::<String>()
    );
    vec![
        Throwable::new("org.apache.flink.table.api.TableException", "Failed to execute sql")
            .at([
                "org.apache.flink.table.api.internal.TableEnvironmentImpl.executeInternal(TableEnvironmentImpl.java:1060)",
                "org.apache.flink.table.api.internal.TableEnvironmentImpl.executeInternal(TableEnvironmentImpl.java:876)",
                "org.apache.flink.table.gateway.service.operation.OperationExecutor.callModifyOperations(OperationExecutor.java:644)",
                "org.apache.flink.table.gateway.service.operation.OperationExecutor.executeOperation(OperationExecutor.java:483)",
                "org.apache.flink.table.gateway.service.operation.OperationExecutor.executeStatement(OperationExecutor.java:243)",
            ])
            .at(EXECUTE_STATEMENT[1..].iter().copied())
            .more(7),
        Throwable::new(
            "org.apache.flink.util.FlinkException",
            format!("Failed to execute job '{job_name}'."),
        )
        .at([
            "org.apache.flink.streaming.api.environment.StreamExecutionEnvironment.executeAsync(StreamExecutionEnvironment.java:2487)",
            "org.apache.flink.table.planner.delegation.DefaultExecutor.executeAsync(DefaultExecutor.java:110)",
            "org.apache.flink.table.api.internal.TableEnvironmentImpl.executeInternal(TableEnvironmentImpl.java:1032)",
        ])
        .more(15),
        Throwable::new(
            "org.apache.flink.runtime.client.JobSubmissionException",
            "Failed to submit JobGraph.",
        )
        .at([
            "org.apache.flink.client.program.rest.RestClusterClient.lambda$submitJob$12(RestClusterClient.java:486)",
            "java.base/java.util.concurrent.CompletableFuture.uniExceptionally(CompletableFuture.java:990)",
            "java.base/java.util.concurrent.CompletableFuture$UniExceptionally.tryFire(CompletableFuture.java:974)",
            "java.base/java.util.concurrent.CompletableFuture.postComplete(CompletableFuture.java:510)",
            "java.base/java.util.concurrent.CompletableFuture.completeExceptionally(CompletableFuture.java:2162)",
            "org.apache.flink.util.concurrent.FutureUtils.lambda$retryOperationWithDelay$6(FutureUtils.java:272)",
            "java.base/java.util.concurrent.CompletableFuture.uniWhenComplete(CompletableFuture.java:863)",
            "java.base/java.util.concurrent.CompletableFuture$UniWhenComplete.tryFire(CompletableFuture.java:841)",
            "java.base/java.util.concurrent.CompletableFuture.postComplete(CompletableFuture.java:510)",
            "java.base/java.util.concurrent.CompletableFuture.postFire(CompletableFuture.java:614)",
            "java.base/java.util.concurrent.CompletableFuture$UniCompose.tryFire(CompletableFuture.java:1163)",
            "java.base/java.util.concurrent.CompletableFuture$Completion.run(CompletableFuture.java:482)",
        ])
        .more(3),
        Throwable::new("org.apache.flink.runtime.rest.util.RestClientException", remote)
            .at([
                "org.apache.flink.runtime.rest.RestClient.parseResponse(RestClient.java:644)",
                "org.apache.flink.runtime.rest.RestClient.lambda$submitRequest$6(RestClient.java:628)",
                "java.base/java.util.concurrent.CompletableFuture$UniCompose.tryFire(CompletableFuture.java:1150)",
            ])
            .more(4),
    ]
}

const DISPATCHER_FRAMES: [&str; 31] = [
    "org.apache.flink.runtime.dispatcher.Dispatcher.lambda$submitJob$3(Dispatcher.java:538)",
    "java.base/java.util.concurrent.CompletableFuture$UniCompose.tryFire(CompletableFuture.java:1150)",
    "java.base/java.util.concurrent.CompletableFuture$Completion.run(CompletableFuture.java:482)",
    "org.apache.flink.util.MdcUtils.lambda$wrapRunnable$1(MdcUtils.java:70)",
    "org.apache.flink.runtime.rpc.pekko.PekkoRpcActor.lambda$handleRunAsync$4(PekkoRpcActor.java:460)",
    "org.apache.flink.runtime.concurrent.ClassLoadingUtils.runWithContextClassLoader(ClassLoadingUtils.java:68)",
    "org.apache.flink.runtime.rpc.pekko.PekkoRpcActor.handleRunAsync(PekkoRpcActor.java:460)",
    "org.apache.flink.runtime.rpc.pekko.PekkoRpcActor.handleRpcMessage(PekkoRpcActor.java:225)",
    "org.apache.flink.runtime.rpc.pekko.FencedPekkoRpcActor.handleRpcMessage(FencedPekkoRpcActor.java:88)",
    "org.apache.flink.runtime.rpc.pekko.PekkoRpcActor.handleMessage(PekkoRpcActor.java:174)",
    "org.apache.pekko.japi.pf.UnitCaseStatement.apply(CaseStatements.scala:33)",
    "org.apache.pekko.japi.pf.UnitCaseStatement.apply(CaseStatements.scala:29)",
    "scala.PartialFunction.applyOrElse(PartialFunction.scala:127)",
    "scala.PartialFunction.applyOrElse$(PartialFunction.scala:126)",
    "org.apache.pekko.japi.pf.UnitCaseStatement.applyOrElse(CaseStatements.scala:29)",
    "scala.PartialFunction$OrElse.applyOrElse(PartialFunction.scala:175)",
    "scala.PartialFunction$OrElse.applyOrElse(PartialFunction.scala:176)",
    "scala.PartialFunction$OrElse.applyOrElse(PartialFunction.scala:176)",
    "org.apache.pekko.actor.Actor.aroundReceive(Actor.scala:547)",
    "org.apache.pekko.actor.Actor.aroundReceive$(Actor.scala:545)",
    "org.apache.pekko.actor.AbstractActor.aroundReceive(AbstractActor.scala:229)",
    "org.apache.pekko.actor.ActorCell.receiveMessage(ActorCell.scala:590)",
    "org.apache.pekko.actor.ActorCell.invoke(ActorCell.scala:557)",
    "org.apache.pekko.dispatch.Mailbox.processMailbox(Mailbox.scala:272)",
    "org.apache.pekko.dispatch.Mailbox.run(Mailbox.scala:233)",
    "org.apache.pekko.dispatch.Mailbox.exec(Mailbox.scala:245)",
    "java.base/java.util.concurrent.ForkJoinTask.doExec(ForkJoinTask.java:373)",
    "java.base/java.util.concurrent.ForkJoinPool$WorkQueue.topLevelExec(ForkJoinPool.java:1182)",
    "java.base/java.util.concurrent.ForkJoinPool.scan(ForkJoinPool.java:1655)",
    "java.base/java.util.concurrent.ForkJoinPool.runWorker(ForkJoinPool.java:1622)",
    "java.base/java.util.concurrent.ForkJoinWorkerThread.run(ForkJoinWorkerThread.java:165)",
];
