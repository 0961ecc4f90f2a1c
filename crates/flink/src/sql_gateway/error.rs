//! Errors of the SQL Gateway client, in the gateway's terms, and the classification of the
//! gateway's `{"errors": [...]}` bodies by their root cause ([`crate::java_error`]).

use thiserror::Error;

use crate::java_error::{ExceptionChain, truncate};
use crate::sql_gateway::wire::ErrorBody;

/// What went wrong talking to the SQL Gateway.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum GatewayError {
    /// The gateway could not be reached or did not answer in time.
    #[error("sql gateway unreachable: {0}")]
    Unreachable(String),
    /// The gateway speaks no REST API version the broker supports (V2 or newer).
    #[error("sql gateway supports only api versions {offered:?}; flinkbroker needs V2 or newer")]
    UnsupportedVersion {
        /// The versions the gateway offered (`V1`, ...).
        offered: Vec<String>,
    },
    /// The session does not exist (expired or closed).
    #[error("{message}")]
    UnknownSession {
        /// The session's handle.
        session: String,
        /// The gateway's root cause.
        message: String,
    },
    /// The operation does not exist in its session.
    #[error("{message}")]
    UnknownOperation {
        /// The operation's handle.
        operation: String,
        /// The gateway's root cause.
        message: String,
    },
    /// The statement failed: parse or validation errors, or a failure while it ran.
    #[error("{message}")]
    StatementFailed {
        /// The root cause of the failure, without stack frames or class names.
        message: String,
    },
    /// A result token the gateway no longer (or not yet) serves.
    #[error("{message}")]
    InvalidToken {
        /// The token that was asked for, or the one the gateway's message names.
        token: u64,
        /// The gateway's root cause.
        message: String,
    },
    /// The gateway rejected the request itself (HTTP 400): the broker's bug.
    #[error("sql gateway rejected the request: {message}")]
    BadRequest {
        /// The gateway's root cause, or the start of its answer.
        message: String,
    },
    /// Any other gateway failure, reduced to its root cause.
    #[error("sql gateway error (http {status}): {message}")]
    Server {
        /// The HTTP status of the answer.
        status: u16,
        /// The gateway's root cause, or the start of its answer.
        message: String,
    },
    /// A response the broker could not understand.
    #[error("unexpected sql gateway response: {0}")]
    Protocol(String),
}

/// The most text of a non-JSON error body kept in a message.
const MAX_PLAIN_BODY_CHARS: usize = 300;

impl GatewayError {
    /// Classifies a non-2xx response from its status and raw body; `requested_token` is the
    /// result token the request asked for, if it was a fetch.
    pub(crate) fn from_response(
        status: u16,
        body: &[u8],
        requested_token: Option<u64>,
    ) -> GatewayError {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) if !parsed.errors.is_empty() => {
                classify(status, &parsed.errors, requested_token)
            }
            _ => {
                // Not the gateway's own error format: a proxy page or an empty body.
                let text = String::from_utf8_lossy(body);
                let text = text.trim();
                let message = if text.is_empty() {
                    format!("http status {status} with an empty body")
                } else {
                    truncate(text, MAX_PLAIN_BODY_CHARS, "...")
                };
                match status {
                    400 => GatewayError::BadRequest { message },
                    502..=504 => GatewayError::Unreachable(format!("http {status}: {message}")),
                    _ => GatewayError::Server { status, message },
                }
            }
        }
    }
}

/// Classifies the `errors` of a failed response into the error the caller can act on.
fn classify(status: u16, errors: &[String], requested_token: Option<u64>) -> GatewayError {
    let chain = ExceptionChain::from_gateway_errors(errors);
    let message = chain.root_cause();
    if status == 400 {
        return GatewayError::BadRequest { message };
    }
    if let Some(session) = unknown_session_id(&message) {
        return GatewayError::UnknownSession {
            session: session.to_owned(),
            message,
        };
    }
    if let Some(operation) = unknown_operation_id(&message) {
        return GatewayError::UnknownOperation {
            operation: operation.to_owned(),
            message,
        };
    }
    if message.starts_with("Expecting token to be") {
        let token = requested_token
            .or_else(|| found_token(&message))
            .unwrap_or_default();
        return GatewayError::InvalidToken { token, message };
    }
    if status == 404 {
        // An unknown path, e.g. an API version the gateway no longer serves.
        return GatewayError::Server { status, message };
    }
    let statement_failed = chain.messages().any(|message| {
        message.starts_with("Failed to execute the operation")
            || message == "Failed to execute statement."
    });
    if statement_failed {
        return GatewayError::StatementFailed { message };
    }
    GatewayError::Server { status, message }
}

/// `Session '<id>' does not exist.` → the id.
fn unknown_session_id(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("Session '")?;
    let end = rest.find("' does not exist")?;
    Some(&rest[..end])
}

/// `Can not find the submitted operation in the OperationManager with the <id>.` → the id.
fn unknown_operation_id(message: &str) -> Option<&str> {
    let rest = message
        .strip_prefix("Can not find the submitted operation in the OperationManager with the ")?;
    Some(rest.trim_end_matches('.').trim())
}

/// `Expecting token to be 1 or 0, but found 5.` → 5.
fn found_token(message: &str) -> Option<u64> {
    let at = message.rfind("found ")?;
    message[at + "found ".len()..]
        .trim_end_matches('.')
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::java_error::gateway_root_cause;

    fn errors_of(body: &str) -> Vec<String> {
        match serde_json::from_str::<ErrorBody>(body) {
            Ok(parsed) => parsed.errors,
            Err(e) => panic!("fixture is not an error body: {e}"),
        }
    }

    fn fixture(name: &str) -> &'static str {
        match name {
            "bad-syntax" => {
                include_str!("../../../../tests/fixtures/gateway-bodies/error-bad-syntax.json")
            }
            "unknown-table" => {
                include_str!("../../../../tests/fixtures/gateway-bodies/error-unknown-table.json")
            }
            "fetch-canceled" => {
                include_str!("../../../../tests/fixtures/gateway-bodies/error-fetch-canceled.json")
            }
            "cancel-finished" => {
                include_str!("../../../../tests/fixtures/gateway-bodies/error-cancel-finished.json")
            }
            "status-unknown-operation" => include_str!(
                "../../../../tests/fixtures/gateway-bodies/error-status-unknown-operation.json"
            ),
            "cancel-unknown-operation" => include_str!(
                "../../../../tests/fixtures/gateway-bodies/error-cancel-unknown-operation.json"
            ),
            "fetch-unknown-operation" => include_str!(
                "../../../../tests/fixtures/gateway-bodies/error-fetch-unknown-operation.json"
            ),
            "token-v1" => {
                include_str!("../../../../tests/fixtures/gateway-bodies/error-token-v1.json")
            }
            "token-ahead" => {
                include_str!("../../../../tests/fixtures/gateway-bodies/error-token-ahead.json")
            }
            "not-found-version" => {
                include_str!(
                    "../../../../tests/fixtures/gateway-bodies/error-not-found-version.json"
                )
            }
            "not-found-path" => {
                include_str!("../../../../tests/fixtures/gateway-bodies/error-not-found-path.json")
            }
            "session-closed" => {
                include_str!("../../../../tests/fixtures/gateway-bodies/error-session-closed.json")
            }
            "execute-unknown-session" => include_str!(
                "../../../../tests/fixtures/gateway-bodies/error-execute-unknown-session.json"
            ),
            "heartbeat-unknown-session" => include_str!(
                "../../../../tests/fixtures/gateway-bodies/error-heartbeat-unknown-session.json"
            ),
            "close-unknown-session" => {
                include_str!(
                    "../../../../tests/fixtures/gateway-bodies/error-close-unknown-session.json"
                )
            }
            "bad-session-handle" => {
                include_str!(
                    "../../../../tests/fixtures/gateway-bodies/error-bad-session-handle.json"
                )
            }
            "bad-open-session-json" => {
                include_str!(
                    "../../../../tests/fixtures/gateway-bodies/error-bad-open-session-json.json"
                )
            }
            "bad-operation-handle" => {
                include_str!(
                    "../../../../tests/fixtures/gateway-bodies/error-bad-operation-handle.json"
                )
            }
            "two-statements" => {
                include_str!("../../../../tests/fixtures/gateway-bodies/error-two-statements.json")
            }
            "execution-timeout" => {
                include_str!(
                    "../../../../tests/fixtures/gateway-bodies/error-execution-timeout.json"
                )
            }
            "bad-execute-json" => {
                include_str!(
                    "../../../../tests/fixtures/gateway-bodies/error-bad-execute-json.json"
                )
            }
            "duplicate-job" => {
                include_str!("../../../../tests/fixtures/gateway-bodies/error-duplicate-job.json")
            }
            other => panic!("no fixture {other}"),
        }
    }

    /// Every distinct error body of the recorded transcripts, with the status it came with,
    /// the expected root cause and the expected class of error.
    fn cases() -> Vec<(&'static str, u16, &'static str, &'static str)> {
        vec![
            (
                "bad-syntax",
                500,
                "SQL parse failed. Non-query expression encountered in illegal context",
                "StatementFailed",
            ),
            (
                "unknown-table",
                500,
                "SQL validation failed. From line 1, column 15 to line 1, column 27: Object 'no_such_table' not found",
                "StatementFailed",
            ),
            (
                "fetch-canceled",
                500,
                "Can not fetch results from the c8c12e4f-4164-430d-b0cc-da35dedf8c16 in CANCELED status.",
                "Server",
            ),
            (
                "cancel-finished",
                500,
                "Failed to convert the Operation Status from FINISHED to CANCELED for 768cb8c8-c44d-4ea4-bf92-302b9ef018ae.",
                "Server",
            ),
            (
                "status-unknown-operation",
                500,
                "Can not find the submitted operation in the OperationManager with the 768cb8c8-c44d-4ea4-bf92-302b9ef018ae.",
                "UnknownOperation",
            ),
            (
                "cancel-unknown-operation",
                500,
                "Can not find the submitted operation in the OperationManager with the 768cb8c8-c44d-4ea4-bf92-302b9ef018ae.",
                "UnknownOperation",
            ),
            (
                "fetch-unknown-operation",
                500,
                "Can not find the submitted operation in the OperationManager with the 00000000-0000-0000-0000-000000000000.",
                "UnknownOperation",
            ),
            (
                "token-v1",
                500,
                "Expecting token to be 1 or 0, but found 2.",
                "InvalidToken",
            ),
            (
                "token-ahead",
                500,
                "Expecting token to be 1 or 0, but found 5.",
                "InvalidToken",
            ),
            (
                "not-found-path",
                404,
                "Not found: /v1/sessions/fc3e479a-f205-4ee1-8fd0-3be79ee661d0/configure-session",
                "Server",
            ),
            ("not-found-version", 404, "Not found: /v9/info", "Server"),
            (
                "session-closed",
                500,
                "Session 'fc3e479a-f205-4ee1-8fd0-3be79ee661d0' does not exist.",
                "UnknownSession",
            ),
            (
                "execute-unknown-session",
                500,
                "Session '00000000-0000-0000-0000-000000000000' does not exist.",
                "UnknownSession",
            ),
            (
                "heartbeat-unknown-session",
                500,
                "Session '00000000-0000-0000-0000-000000000000' does not exist.",
                "UnknownSession",
            ),
            (
                "close-unknown-session",
                500,
                "Session '00000000-0000-0000-0000-000000000000' does not exist.",
                "UnknownSession",
            ),
            (
                "bad-session-handle",
                400,
                "Bad request, could not parse parameters: Cannot resolve path parameter (session_handle) from value \"not-a-uuid\".",
                "BadRequest",
            ),
            (
                "bad-open-session-json",
                400,
                "Unexpected character ('b' (code 98)): was expecting double-quote to start field name at line 1, column 3",
                "BadRequest",
            ),
            (
                "bad-operation-handle",
                400,
                "Bad request, could not parse parameters: Cannot resolve path parameter (operation_handle) from value \"not-a-uuid\".",
                "BadRequest",
            ),
            (
                "two-statements",
                500,
                "only single statement supported",
                "StatementFailed",
            ),
            (
                "execution-timeout",
                500,
                "SqlGatewayService doesn't support timeout mechanism now.",
                "StatementFailed",
            ),
            (
                "bad-execute-json",
                400,
                "Unrecognized token 'not': was expecting (JSON String, Number, Array, Object or token 'null', 'true' or 'false') at line 1, column 5",
                "BadRequest",
            ),
            (
                "duplicate-job",
                500,
                "Job has already been submitted.",
                "StatementFailed",
            ),
        ]
    }

    fn class_of(error: &GatewayError) -> &'static str {
        match error {
            GatewayError::Unreachable(_) => "Unreachable",
            GatewayError::UnsupportedVersion { .. } => "UnsupportedVersion",
            GatewayError::UnknownSession { .. } => "UnknownSession",
            GatewayError::UnknownOperation { .. } => "UnknownOperation",
            GatewayError::StatementFailed { .. } => "StatementFailed",
            GatewayError::InvalidToken { .. } => "InvalidToken",
            GatewayError::BadRequest { .. } => "BadRequest",
            GatewayError::Server { .. } => "Server",
            GatewayError::Protocol(_) => "Protocol",
        }
    }

    #[test]
    fn root_cause_of_every_recorded_error_body() {
        for (name, _, expected, _) in cases() {
            let errors = errors_of(fixture(name));
            assert_eq!(gateway_root_cause(&errors), expected, "fixture {name}");
        }
    }

    #[test]
    fn root_cause_never_contains_stack_text() {
        for (name, status, _, _) in cases() {
            let error = GatewayError::from_response(status, fixture(name).as_bytes(), None);
            let text = error.to_string();
            assert!(!text.contains("\tat "), "fixture {name}: {text}");
            assert!(!text.contains("at org.apache"), "fixture {name}: {text}");
            assert!(!text.contains('\n'), "fixture {name}: {text}");
            assert!(
                !text.contains("Exception on server side"),
                "fixture {name}: {text}"
            );
        }
    }

    #[test]
    fn classifies_every_recorded_error_body() {
        for (name, status, _, expected_class) in cases() {
            let error = GatewayError::from_response(status, fixture(name).as_bytes(), None);
            assert_eq!(
                class_of(&error),
                expected_class,
                "fixture {name}: {error:?}"
            );
        }
    }

    #[test]
    fn unknown_session_names_the_session() {
        let error =
            GatewayError::from_response(500, fixture("execute-unknown-session").as_bytes(), None);
        assert_eq!(
            error,
            GatewayError::UnknownSession {
                session: "00000000-0000-0000-0000-000000000000".to_owned(),
                message: "Session '00000000-0000-0000-0000-000000000000' does not exist."
                    .to_owned(),
            }
        );
    }

    #[test]
    fn unknown_operation_names_the_operation() {
        let error =
            GatewayError::from_response(500, fixture("fetch-unknown-operation").as_bytes(), None);
        assert!(matches!(
            error,
            GatewayError::UnknownOperation { ref operation, .. }
                if operation == "00000000-0000-0000-0000-000000000000"
        ));
    }

    #[test]
    fn invalid_token_takes_the_requested_token_or_the_one_in_the_text() {
        let body = fixture("token-ahead").as_bytes();
        let from_text = GatewayError::from_response(500, body, None);
        assert!(matches!(
            from_text,
            GatewayError::InvalidToken { token: 5, .. }
        ));
        let from_context = GatewayError::from_response(500, body, Some(7));
        assert!(matches!(
            from_context,
            GatewayError::InvalidToken { token: 7, .. }
        ));
    }

    #[test]
    fn plain_text_bodies_are_kept_short() {
        let long = "x".repeat(2000);
        let error = GatewayError::from_response(500, long.as_bytes(), None);
        match error {
            GatewayError::Server { status, message } => {
                assert_eq!(status, 500);
                assert!(message.len() < 400);
            }
            other => panic!("unexpected {other:?}"),
        }
        let proxy = GatewayError::from_response(502, b"<html>bad gateway</html>", None);
        assert!(matches!(proxy, GatewayError::Unreachable(_)));
        let empty = GatewayError::from_response(400, b"", None);
        assert!(matches!(empty, GatewayError::BadRequest { .. }));
    }

    #[test]
    fn calcite_expectation_lists_are_cut() {
        let errors = vec![
            "Internal server error.".to_owned(),
            "<Exception on server side:\norg.apache.flink.table.gateway.api.utils.SqlGatewayException: Failed to fetchResults.\n\tat org.apache.X.y(X.java:1)\nCaused by: org.apache.flink.table.gateway.service.utils.SqlExecutionException: Failed to execute the operation abc.\n\tat org.apache.X.y(X.java:1)\nCaused by: org.apache.flink.table.api.SqlParserException: SQL parse failed. Encountered \"FROM\" at line 1, column 8.\nWas expecting one of:\n    \"ABS\" ...\n    \"ALL\" ...\n\n\tat org.apache.X.y(X.java:1)\nCaused by: org.apache.calcite.sql.parser.SqlParseException: Encountered \"FROM\" at line 1, column 8.\nWas expecting one of:\n    \"ABS\" ...\n\n\tat org.apache.X.y(X.java:1)\n\nEnd of exception on server side>".to_owned(),
        ];
        assert_eq!(
            gateway_root_cause(&errors),
            "SQL parse failed. Encountered \"FROM\" at line 1, column 8."
        );
        assert!(matches!(
            classify(500, &errors, None),
            GatewayError::StatementFailed { .. }
        ));
    }
}
