//! Reduces Java exception and stack text (SQL Gateway error bodies, JobManager exception
//! histories, `flink run` output) to the root cause a caller needs.
//!
//! - `ExceptionChain::root_cause`: the SQL Gateway's `errors`, reduced to the deepest cause
//!   widened to the causes that only add context to it, class names dropped.
//! - `innermost_cause`: a JobManager stack trace, reduced to the first line of its innermost
//!   cause, or to the Python exception line when that cause carries a Python traceback.
//! - [`submitter_failure`]: the output of `flink run`, reduced to its Python traceback (or the
//!   launcher's exception) without stack frames.

/// Longest message, in characters, kept from a JobManager error or root cause.
pub(crate) const MAX_MESSAGE_CHARS: usize = 500;

/// Lines of submitter output quoted in a failure reason.
const REASON_LINES: usize = 12;

/// Java's prefix of each enclosed cause's header line.
const CAUSED_BY: &str = "Caused by: ";

/// Flink's REST handlers wrap the stack trace of an unexpected failure in these markers.
const SERVER_SIDE_START: &str = "<Exception on server side:";
const SERVER_SIDE_END: &str = "End of exception on server side>";
/// The end marker inside a REST client's message, which quotes the whole `errors` list.
const SERVER_SIDE_END_IN_LIST: &str = "End of exception on server side>]";

/// Returns true for a line below a throwable's header in a printed Java trace: a frame
/// (`\tat …`), an elision (`\t... 3 more`), a suppressed exception and all nested in it. Java
/// indents every one of them with a tab, and none is ever part of a message.
fn is_trace_body(line: &str) -> bool {
    line.starts_with('\t')
}

/// Returns true for a Java stack frame line (`\tat …`, `\t... 14 more`), however the output
/// it came from indented it.
fn is_frame_line(line: &str) -> bool {
    let trimmed = line.trim_start();
    let indented = line.starts_with(char::is_whitespace);
    let frame = trimmed.starts_with("at ");
    let elided = trimmed.starts_with("... ") && trimmed.ends_with(" more");
    elided || (indented && frame)
}

/// Unwraps the `<Exception on server side: ... End of exception on server side>` text Flink
/// puts around the stack trace of an unexpected handler failure.
pub(crate) fn strip_server_side_wrapper(error: &str) -> &str {
    let error = error.trim();
    match error.strip_prefix(SERVER_SIDE_START) {
        Some(inner) => inner.strip_suffix(SERVER_SIDE_END).unwrap_or(inner).trim(),
        None => error,
    }
}

/// Drops the server-side markers at either end of one line: besides around the whole text,
/// they stand inside a message that quotes another REST error body.
fn strip_server_side_markers(line: &str) -> &str {
    line.trim_start_matches(SERVER_SIDE_START)
        .trim_end_matches(SERVER_SIDE_END_IN_LIST)
        .trim_end_matches(SERVER_SIDE_END)
}

/// Cuts `text` to `max_chars` characters, marking the cut with `ellipsis`.
pub(crate) fn truncate(text: &str, max_chars: usize, ellipsis: &str) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}{ellipsis}", &text[..end]),
        None => text.to_owned(),
    }
}

/// Reduces the SQL Gateway's `errors` to their root cause, as
/// [`ExceptionChain::root_cause`] does.
#[cfg(test)]
pub(crate) fn gateway_root_cause(errors: &[String]) -> String {
    ExceptionChain::from_gateway_errors(errors).root_cause()
}

/// The chain of exceptions a SQL Gateway error body describes, outermost first.
#[derive(Debug)]
pub(crate) struct ExceptionChain {
    entries: Vec<ChainEntry>,
}

/// One exception of a Java cause chain.
#[derive(Debug)]
struct ChainEntry {
    /// The simple class name, when the text named one.
    class: Option<String>,
    message: String,
}

impl ExceptionChain {
    /// Splits the gateway's `errors` into the chain of exceptions they describe.
    pub(crate) fn from_gateway_errors(errors: &[String]) -> Self {
        let mut entries: Vec<ChainEntry> = Vec::new();
        let has_details = errors.iter().any(|e| e.contains('\n'));
        for text in errors {
            if has_details && text.trim() == "Internal server error." {
                // The generic first entry that precedes the real stack text.
                continue;
            }
            let mut current: Option<(Option<String>, Vec<String>)> = None;
            for raw_line in text.lines() {
                if is_trace_body(raw_line) {
                    continue;
                }
                let line = strip_server_side_markers(raw_line.trim_end());
                if line.trim().is_empty() {
                    continue;
                }
                let header = line.strip_prefix(CAUSED_BY).unwrap_or(line);
                if let Some((class, message)) = split_exception_header(header) {
                    if let Some((class, lines)) = current.take() {
                        entries.push(finish_entry(class, &lines));
                    }
                    current = Some((Some(class), vec![message.to_owned()]));
                } else if let Some((_, lines)) = current.as_mut() {
                    lines.push(line.to_owned());
                } else {
                    current = Some((None, vec![line.to_owned()]));
                }
            }
            if let Some((class, lines)) = current.take() {
                entries.push(finish_entry(class, &lines));
            }
        }
        Self { entries }
    }

    /// Returns the cleaned message of each exception, outermost first (empty for an
    /// exception without one).
    pub(crate) fn messages(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|entry| entry.message.as_str())
    }

    /// Returns the root cause, the message a caller needs.
    ///
    /// It is the deepest cause, widened to the enclosing causes that only add context to it
    /// (`SQL parse failed. ...`, `SQL validation failed. From line 1, column 15 ...`). Stack
    /// frames, wrapper exceptions and class names are dropped.
    pub(crate) fn root_cause(&self) -> String {
        let chain = &self.entries;
        let Some(deepest) = chain.iter().rposition(|entry| !entry.message.is_empty()) else {
            return chain
                .last()
                .and_then(|entry| entry.class.clone())
                .unwrap_or_else(|| "unknown sql gateway error".to_owned());
        };
        let mut chosen = deepest;
        while chosen > 0 {
            let outer = &chain[chosen - 1].message;
            if outer.contains(chain[chosen].message.as_str()) {
                chosen -= 1;
            } else {
                break;
            }
        }
        chain[chosen].message.clone()
    }
}

fn finish_entry(class: Option<String>, lines: &[String]) -> ChainEntry {
    ChainEntry {
        class,
        message: clean_message(lines),
    }
}

/// Joins a message's lines, keeping what a reader needs: Calcite's "Was expecting one of"
/// lists are cut, Jackson's source locations reduced to line and column.
fn clean_message(lines: &[String]) -> String {
    let mut out = String::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim();
        if trimmed.starts_with("Was expecting") {
            break;
        }
        let piece = if index == 0 {
            strip_class_prefixes(trimmed).to_owned()
        } else if let Some(location) = jackson_location(trimmed) {
            location
        } else {
            trimmed.to_owned()
        };
        if piece.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(&piece);
    }
    out
}

/// Turns ` at [Source: (...); line: 1, column: 5]` into `at line 1, column 5`.
fn jackson_location(line: &str) -> Option<String> {
    let rest = line.strip_prefix("at [Source:")?;
    let at = rest.rfind("line: ")?;
    let position = rest[at..].trim_end_matches(']').replace("line: ", "line ");
    Some(format!("at {}", position.replace("column: ", "column ")))
}

/// Drops leading `org.example.SomeException: ` prefixes (Java's `Throwable(cause)` repeats
/// the cause's class name in the message).
fn strip_class_prefixes(mut message: &str) -> &str {
    while let Some((_, rest)) = split_exception_header(message) {
        message = rest;
    }
    message.trim()
}

/// Splits `org.example.SomeException: message` into the simple class name and the message.
fn split_exception_header(line: &str) -> Option<(String, &str)> {
    let (name, message) = match line.find(": ") {
        Some(at) => (&line[..at], &line[at + 2..]),
        None => (line.trim_end(), ""),
    };
    if !is_exception_class_name(name) {
        return None;
    }
    let simple = name.rsplit('.').next().unwrap_or(name);
    Some((simple.to_owned(), message))
}

fn is_exception_class_name(name: &str) -> bool {
    let mut segments = 0;
    for segment in name.split('.') {
        let mut chars = segment.chars();
        let Some(first) = chars.next() else {
            return false;
        };
        if !(first.is_ascii_alphabetic() || first == '_' || first == '$')
            || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
        {
            return false;
        }
        segments += 1;
    }
    let simple = name.rsplit('.').next().unwrap_or(name);
    segments >= 2
        && (simple.ends_with("Exception") || simple.ends_with("Error") || simple == "Throwable")
}

/// Reduces a Java stack trace to the first line of its innermost cause, e.g.
/// `java.lang.RuntimeException: boom`, cut to [`MAX_MESSAGE_CHARS`]. When that cause carries
/// a Python traceback (an exception raised in a PyFlink function), the Python exception line
/// is returned instead, e.g. `RuntimeError: row 3 is poison`.
pub(crate) fn innermost_cause(stack_trace: &str) -> String {
    // The message lines of the innermost throwable: its header line plus any continuation
    // lines, up to the first line of its trace body.
    let mut innermost: Vec<&str> = Vec::new();
    let mut in_message = true;
    for line in stack_trace.lines() {
        if let Some(cause) = line.strip_prefix(CAUSED_BY) {
            innermost.clear();
            innermost.push(cause);
            in_message = true;
        } else if is_trace_body(line) {
            in_message = false;
        } else if in_message {
            innermost.push(line);
        }
    }
    let message = python_exception_line(&innermost)
        .or_else(|| {
            innermost
                .iter()
                .map(|line| line.trim())
                .find(|line| !line.is_empty())
        })
        .unwrap_or_default();
    truncate(message, MAX_MESSAGE_CHARS, "…")
}

/// Finds the exception line of a Python traceback: the first unindented line after the
/// last `  File "...", line N` frame.
fn python_exception_line<'a>(lines: &[&'a str]) -> Option<&'a str> {
    let traceback_start = lines
        .iter()
        .position(|line| line.contains("Traceback (most recent call last):"))?;
    let frames = &lines[traceback_start + 1..];
    let after_last_frame = frames
        .iter()
        .rposition(|line| line.trim_start().starts_with("File \""))
        .map_or(0, |index| index + 1);
    frames[after_last_frame..]
        .iter()
        .map(|line| line.trim_end())
        .find(|line| !line.is_empty() && !line.starts_with(char::is_whitespace))
}

/// Returns the meaningful lines of a submitter's (`flink run`) output.
///
/// They run from the Python traceback (or the launcher's "program finished with the following
/// exception"), without Java stack frames, blank lines and log noise; otherwise they are its
/// last lines. `None` when the output has no such line.
pub fn submitter_failure(output: &str) -> Option<String> {
    // Only frames go: the `Caused by:` headers say how the Python failure reached Java.
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .filter(|line| !is_frame_line(line) && !line.starts_with("SLF4J:"))
        .collect();
    if lines.is_empty() {
        return None;
    }
    let start = lines
        .iter()
        .rposition(|line| line.starts_with("Traceback (most recent call last)"))
        .or_else(|| {
            lines.iter().rposition(|line| {
                line.contains("The program finished with the following exception")
            })
        });
    let chosen = match start {
        Some(start) => &lines[start..(start + REASON_LINES).min(lines.len())],
        None => &lines[lines.len().saturating_sub(REASON_LINES)..],
    };
    Some(chosen.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The recorded gateway bodies and their root causes are tested with their classification
    // in `sql_gateway::error`.

    #[test]
    fn exceptions_without_message_fall_back_to_the_outer_message() {
        let errors = vec![
            "org.apache.flink.runtime.rest.handler.RestHandlerException: Failed to getOperationInfo.\n\tat a.b(C.java:1)\nCaused by: java.lang.NullPointerException\n\tat a.b(C.java:1)\n".to_owned(),
        ];
        assert_eq!(gateway_root_cause(&errors), "Failed to getOperationInfo.");
        let nameless = vec!["Caused by: java.lang.NullPointerException".to_owned()];
        assert_eq!(gateway_root_cause(&nameless), "NullPointerException");
    }

    #[test]
    fn reduces_java_trace_to_innermost_cause() {
        let trace = "org.apache.flink.runtime.JobException: Recovery is suppressed\n\
                     \tat org.apache.flink.A.b(A.java:1)\n\
                     Caused by: java.lang.RuntimeException: boom\n\
                     \tat org.apache.flink.C.d(C.java:2)\n\
                     \t... 3 more\n";
        assert_eq!(innermost_cause(trace), "java.lang.RuntimeException: boom");
    }

    #[test]
    fn ignores_causes_of_suppressed_exceptions() {
        let trace = "java.lang.IllegalStateException: outer\n\
                     \tat A.b(A.java:1)\n\
                     \tSuppressed: java.io.IOException: close failed\n\
                     \t\tat C.d(C.java:2)\n\
                     \tCaused by: java.io.IOException: disk gone\n\
                     Caused by: java.lang.ArithmeticException: / by zero\n\
                     \tat E.f(E.java:3)\n";
        assert_eq!(
            innermost_cause(trace),
            "java.lang.ArithmeticException: / by zero"
        );
    }

    #[test]
    fn takes_the_exception_line_of_a_python_traceback() {
        let trace = "java.lang.RuntimeException: wrapper\n\
                     \tat A.b(A.java:1)\n\
                     Caused by: java.lang.RuntimeException: Error received from SDK harness: Traceback (most recent call last):\n  \
                       File \"/jobs/job.py\", line 6, in explode\n    \
                         raise ValueError(\"bad row\\nsecond line\")\n\
                     ValueError: bad row\n\
                     second line\n\
                     \n\
                     \t... 3 more\n";
        assert_eq!(innermost_cause(trace), "ValueError: bad row");
    }

    #[test]
    fn keeps_a_single_line_message() {
        assert_eq!(
            innermost_cause("Job could not be found."),
            "Job could not be found."
        );
        assert_eq!(innermost_cause(""), "");
    }

    #[test]
    fn truncates_long_messages() {
        let long = "x".repeat(MAX_MESSAGE_CHARS + 10);
        let message = truncate(&long, MAX_MESSAGE_CHARS, "…");
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS + 1);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn tail_prefers_the_python_traceback_end() {
        let output = "Some log\n\nTraceback (most recent call last):\n  File \"bad_driver.py\", line 1, in <module>\n    raise ValueError('boom')\nValueError: boom\norg.apache.flink.client.program.ProgramAbortException: java.lang.RuntimeException: Python process exits with code: 1\n";
        let tail = submitter_failure(output).unwrap_or_default();
        assert!(tail.starts_with("Traceback"), "{tail}");
        assert!(tail.contains("ValueError: boom"), "{tail}");
        let recorded = "Traceback (most recent call last):\n  File \"/jobs/bad_driver.py\", line 1, in <module>\n    raise ValueError(\"broken driver: missing config\")\nValueError: broken driver: missing config\norg.apache.flink.client.program.ProgramAbortException: java.lang.RuntimeException: Python process exits with code: 1\n\tat org.apache.flink.client.python.PythonDriver.main(PythonDriver.java:134)\n\tat org.apache.flink.client.cli.CliFrontend.main(CliFrontend.java:1335)\nCaused by: java.lang.RuntimeException: Python process exits with code: 1\n\tat org.apache.flink.client.python.PythonDriver.main(PythonDriver.java:124)\n\t... 14 more\n";
        let tail = submitter_failure(recorded).unwrap_or_default();
        assert!(!tail.contains("\tat "), "{tail}");
        assert!(
            tail.contains("ValueError: broken driver: missing config"),
            "{tail}"
        );
        assert!(
            tail.ends_with(
                "Caused by: java.lang.RuntimeException: Python process exits with code: 1"
            ),
            "{tail}"
        );
        assert_eq!(submitter_failure("\n  \n"), None);
    }
}
