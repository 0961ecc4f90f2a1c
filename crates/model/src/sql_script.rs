//! Splits SQL scripts into statements and classifies them.
//!
//! The lexical rules are those of Flink SQL (the Calcite lexer in back-quoted identifier mode):
//! - `'...'` is a string literal, `''` inside it an escaped quote; a backslash escapes nothing;
//! - `` `...` `` is a quoted identifier, ` `` ` inside it an escaped backquote;
//! - `"..."` is quoted as well (`""` escapes a double quote), so that a `;` inside never splits;
//! - `--` and `//` start a comment that runs to the end of the line;
//! - `/* ... */` is a block comment; block comments do not nest.
//!
//! A `;` outside all of these ends a statement, except inside a statement set:
//! `EXECUTE STATEMENT SET BEGIN ... END` and `BEGIN STATEMENT SET; ... END` are one statement
//! each. The `END` closing a statement set is the first `END` that does not close a `CASE`.
//!
//! Lines and columns are 1-based; `\n`, `\r\n` and a lone `\r` each end a line, and columns
//! count Unicode scalar values.

/// A statement of a script: its text (trimmed, without the terminating semicolon, comments
/// inside kept) and where it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The text from the first to the last significant character: leading and trailing
    /// whitespace and comments are left out, comments between tokens are kept.
    pub text: String,
    /// The 1-based line of the first significant character.
    pub line: u32,
    /// The 1-based column, in characters, of the first significant character.
    pub column: u32,
}

impl Statement {
    /// Returns the kind of the statement.
    pub fn kind(&self) -> StatementKind {
        classify(&self.text)
    }
}

/// A script that cannot be split because a construct opened in it is never closed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ScriptError {
    /// A `'` string literal has no closing quote.
    #[error("unterminated string literal starting at line {line}, column {column}")]
    UnterminatedStringLiteral {
        /// The line of the opening quote.
        line: u32,
        /// The column of the opening quote.
        column: u32,
    },
    /// A `` ` `` quoted identifier has no closing backquote.
    #[error("unterminated quoted identifier starting at line {line}, column {column}")]
    UnterminatedQuotedIdentifier {
        /// The line of the opening backquote.
        line: u32,
        /// The column of the opening backquote.
        column: u32,
    },
    /// A `"` double-quoted string has no closing double quote.
    #[error("unterminated double-quoted string starting at line {line}, column {column}")]
    UnterminatedDoubleQuotedString {
        /// The line of the opening double quote.
        line: u32,
        /// The column of the opening double quote.
        column: u32,
    },
    /// A `/*` block comment has no closing `*/`.
    #[error("unterminated block comment starting at line {line}, column {column}")]
    UnterminatedBlockComment {
        /// The line of the opening `/*`.
        line: u32,
        /// The column of the opening `/*`.
        column: u32,
    },
    /// A statement set has no closing `END`.
    #[error("unterminated statement set starting at line {line}, column {column}: no END")]
    UnterminatedStatementSet {
        /// The line of the statement set's first keyword.
        line: u32,
        /// The column of the statement set's first keyword.
        column: u32,
    },
}

impl ScriptError {
    /// Returns the line and column where the unterminated construct starts.
    pub fn position(&self) -> (u32, u32) {
        match *self {
            Self::UnterminatedStringLiteral { line, column }
            | Self::UnterminatedQuotedIdentifier { line, column }
            | Self::UnterminatedDoubleQuotedString { line, column }
            | Self::UnterminatedBlockComment { line, column }
            | Self::UnterminatedStatementSet { line, column } => (line, column),
        }
    }
}

/// What a statement does, judged from its leading keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    /// A query: `SELECT`, `WITH`, `VALUES`, a parenthesised query, `EXECUTE SELECT`.
    Query,
    /// A statement writing to tables: `INSERT INTO` / `INSERT OVERWRITE`, `EXECUTE INSERT`,
    /// `EXECUTE PLAN`, `COMPILE AND EXECUTE PLAN`, and batch `DELETE` / `UPDATE`.
    Insert,
    /// `EXECUTE STATEMENT SET BEGIN ... END` or `BEGIN STATEMENT SET; ... END`.
    StatementSet,
    /// `SET`, with or without a key.
    Set,
    /// `RESET`, with or without a key.
    Reset,
    /// Catalog and session changes: `CREATE`, `DROP`, `ALTER`, `USE`, `LOAD`, `UNLOAD`,
    /// `ADD JAR`, `REMOVE JAR`, `TRUNCATE`, `ANALYZE`.
    Ddl,
    /// `SHOW`, `DESCRIBE`, `DESC`, `EXPLAIN`.
    Show,
    /// `STOP JOB`.
    StopJob,
    /// Anything else, including statements that are empty or not understood.
    Other,
}

impl StatementKind {
    /// True when the gateway starts a Flink job for the statement (Query, Insert, StatementSet).
    pub fn starts_flink_job(&self) -> bool {
        matches!(self, Self::Query | Self::Insert | Self::StatementSet)
    }

    /// True when the statement returns result rows worth streaming (Query, Show).
    pub fn returns_rows(&self) -> bool {
        matches!(self, Self::Query | Self::Show)
    }

    /// True when the statement's results are part of its job's outcome: queries, and a last
    /// statement that returns rows. The job waits until they were read to their end.
    pub fn is_result(&self, index: usize, count: usize) -> bool {
        *self == Self::Query || (self.returns_rows() && index + 1 == count)
    }

    /// True when the statement starts a Flink job that runs on after its submission and is
    /// followed to its end (INSERT, statement sets).
    pub fn runs_on_after_submission(&self) -> bool {
        matches!(self, Self::Insert | Self::StatementSet)
    }

    /// Returns the name stored in the database.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Query => "QUERY",
            Self::Insert => "INSERT",
            Self::StatementSet => "STATEMENT_SET",
            Self::Set => "SET",
            Self::Reset => "RESET",
            Self::Ddl => "DDL",
            Self::Show => "SHOW",
            Self::StopJob => "STOP_JOB",
            Self::Other => "OTHER",
        }
    }

    /// Parses a stored name.
    pub fn parse(stored: &str) -> Option<Self> {
        Some(match stored {
            "QUERY" => Self::Query,
            "INSERT" => Self::Insert,
            "STATEMENT_SET" => Self::StatementSet,
            "SET" => Self::Set,
            "RESET" => Self::Reset,
            "DDL" => Self::Ddl,
            "SHOW" => Self::Show,
            "STOP_JOB" => Self::StopJob,
            "OTHER" => Self::Other,
            _ => return None,
        })
    }
}

/// Returns true when `statement` (of `kind`) builds the state of its gateway session: `SET`,
/// `RESET`, and catalog and session changes (`CREATE`, `DROP`, `ALTER`, `USE`, `LOAD`,
/// `UNLOAD`, `ADD JAR`, `REMOVE JAR`). A new session must see them again before the script
/// goes on; data changes (`TRUNCATE`) and `ANALYZE` are not repeated.
pub fn builds_session_state(kind: StatementKind, statement: &str) -> bool {
    match kind {
        StatementKind::Set | StatementKind::Reset => true,
        StatementKind::Ddl => match Lexer::new(statement).map_while(Result::ok).next() {
            Some(first) => !["TRUNCATE", "ANALYZE"]
                .iter()
                .any(|keyword| first.is_keyword(statement, keyword)),
            None => false,
        },
        _ => false,
    }
}

/// Splits a script into its statements.
///
/// Statements end at a `;` outside literals, quoted identifiers, comments and statement sets;
/// statements that are empty or hold only comments are dropped, and a last statement without
/// `;` counts.
pub fn split_statements(script: &str) -> Result<Vec<Statement>, ScriptError> {
    let mut statements = Vec::new();
    let mut pending: Option<PendingStatement> = None;
    for token in Lexer::new(script) {
        let token = token?;
        let inside_statement_set = pending
            .as_ref()
            .is_some_and(PendingStatement::inside_statement_set);
        if token.kind == TokenKind::Semicolon && !inside_statement_set {
            if let Some(statement) = pending.take() {
                statements.push(statement.finish(script));
            }
            continue;
        }
        pending
            .get_or_insert_with(|| PendingStatement::new(&token))
            .push(&token, script);
    }
    if let Some(statement) = pending {
        if statement.inside_statement_set() {
            return Err(ScriptError::UnterminatedStatementSet {
                line: statement.line,
                column: statement.column,
            });
        }
        statements.push(statement.finish(script));
    }
    Ok(statements)
}

/// Classifies a statement by its leading keywords.
///
/// Leading whitespace and comments are skipped and keywords are matched case-insensitively.
pub fn classify(statement: &str) -> StatementKind {
    let tokens: Vec<Token> = Lexer::new(statement)
        .map_while(Result::ok)
        .take(3)
        .collect();
    let keyword_at = |index: usize, keyword: &str| {
        tokens
            .get(index)
            .is_some_and(|token| token.is_keyword(statement, keyword))
    };
    let symbol_at = |index: usize, symbol: &str| {
        tokens
            .get(index)
            .is_some_and(|token| token.kind == TokenKind::Symbol && token.text(statement) == symbol)
    };
    let query_at = |index: usize| {
        ["SELECT", "WITH", "VALUES"]
            .iter()
            .any(|keyword| keyword_at(index, keyword))
            || symbol_at(index, "(")
    };

    if query_at(0) {
        StatementKind::Query
    } else if ["INSERT", "DELETE", "UPDATE"]
        .iter()
        .any(|keyword| keyword_at(0, keyword))
    {
        StatementKind::Insert
    } else if keyword_at(0, "EXECUTE") {
        if keyword_at(1, "STATEMENT") && keyword_at(2, "SET") {
            StatementKind::StatementSet
        } else if keyword_at(1, "INSERT") || keyword_at(1, "PLAN") {
            StatementKind::Insert
        } else if query_at(1) {
            StatementKind::Query
        } else {
            StatementKind::Other
        }
    } else if keyword_at(0, "BEGIN") && keyword_at(1, "STATEMENT") && keyword_at(2, "SET") {
        StatementKind::StatementSet
    } else if keyword_at(0, "COMPILE") && keyword_at(1, "AND") && keyword_at(2, "EXECUTE") {
        StatementKind::Insert
    } else if keyword_at(0, "SET") {
        StatementKind::Set
    } else if keyword_at(0, "RESET") {
        StatementKind::Reset
    } else if [
        "CREATE", "DROP", "ALTER", "USE", "LOAD", "UNLOAD", "ADD", "REMOVE", "TRUNCATE", "ANALYZE",
    ]
    .iter()
    .any(|keyword| keyword_at(0, keyword))
    {
        StatementKind::Ddl
    } else if ["SHOW", "DESCRIBE", "DESC", "EXPLAIN"]
        .iter()
        .any(|keyword| keyword_at(0, keyword))
    {
        StatementKind::Show
    } else if keyword_at(0, "STOP") && keyword_at(1, "JOB") {
        StatementKind::StopJob
    } else {
        StatementKind::Other
    }
}

/// Parses `SET 'key' = 'value'` / `RESET 'key'` into `(key, Option<value>)`, None if not such a
/// statement.
///
/// Keys and values must be string literals; their doubled quotes are unescaped. Comments
/// between the tokens and a trailing `;` are accepted. `SET` and `RESET` without a key give
/// None.
pub fn parse_set(statement: &str) -> Option<(String, Option<String>)> {
    let tokens: Vec<Token> = Lexer::new(statement).collect::<Result<_, _>>().ok()?;
    let mut significant = tokens.as_slice();
    while let [rest @ .., last] = significant
        && last.kind == TokenKind::Semicolon
    {
        significant = rest;
    }
    match significant {
        [set, key, equals, value]
            if set.is_keyword(statement, "SET")
                && key.is_string_literal(statement)
                && equals.kind == TokenKind::Symbol
                && equals.text(statement) == "="
                && value.is_string_literal(statement) =>
        {
            Some((
                unquote_string_literal(key.text(statement)),
                Some(unquote_string_literal(value.text(statement))),
            ))
        }
        [reset, key]
            if reset.is_keyword(statement, "RESET") && key.is_string_literal(statement) =>
        {
            Some((unquote_string_literal(key.text(statement)), None))
        }
        _ => None,
    }
}

/// Returns the content of a `'...'` literal with its doubled quotes unescaped.
fn unquote_string_literal(literal: &str) -> String {
    let inner = literal
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
        .unwrap_or(literal);
    inner.replace("''", "'")
}

/// The keywords opening `EXECUTE STATEMENT SET BEGIN ... END`.
const EXECUTE_STATEMENT_SET: [&str; 4] = ["EXECUTE", "STATEMENT", "SET", "BEGIN"];

/// The keywords opening `BEGIN STATEMENT SET; ... END`.
const BEGIN_STATEMENT_SET: [&str; 3] = ["BEGIN", "STATEMENT", "SET"];

/// Where a statement stands with respect to statement sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatementSetState {
    /// The leading keywords may still open a statement set.
    Undecided,
    /// The statement is not a statement set, or its statement set is closed.
    Outside,
    /// Inside a statement set; `case_depth` counts the open `CASE` expressions, whose `END`
    /// does not close the set.
    Inside { case_depth: u32 },
}

/// A statement being collected from its tokens.
#[derive(Debug)]
struct PendingStatement {
    start: usize,
    end: usize,
    line: u32,
    column: u32,
    leading_words: Vec<Token>,
    statement_set: StatementSetState,
}

impl PendingStatement {
    fn new(first: &Token) -> Self {
        Self {
            start: first.start,
            end: first.end,
            line: first.line,
            column: first.column,
            leading_words: Vec::with_capacity(EXECUTE_STATEMENT_SET.len()),
            statement_set: StatementSetState::Undecided,
        }
    }

    fn inside_statement_set(&self) -> bool {
        matches!(self.statement_set, StatementSetState::Inside { .. })
    }

    fn push(&mut self, token: &Token, script: &str) {
        self.end = token.end;
        match &mut self.statement_set {
            StatementSetState::Undecided => self.check_statement_set_opening(token, script),
            StatementSetState::Inside { case_depth } => match token.kind {
                // A `CASE` left open by a broken inner statement must not swallow the `END`.
                TokenKind::Semicolon => *case_depth = 0,
                TokenKind::Word if token.is_keyword(script, "CASE") => {
                    *case_depth = case_depth.saturating_add(1);
                }
                TokenKind::Word if token.is_keyword(script, "END") => {
                    if *case_depth == 0 {
                        self.statement_set = StatementSetState::Outside;
                    } else {
                        *case_depth -= 1;
                    }
                }
                _ => {}
            },
            StatementSetState::Outside => {}
        }
    }

    fn check_statement_set_opening(&mut self, token: &Token, script: &str) {
        if token.kind != TokenKind::Word {
            self.statement_set = StatementSetState::Outside;
            return;
        }
        self.leading_words.push(*token);
        let matches = |keywords: &[&str]| {
            self.leading_words.len() <= keywords.len()
                && self
                    .leading_words
                    .iter()
                    .zip(keywords)
                    .all(|(word, keyword)| word.is_keyword(script, keyword))
        };
        let opens =
            |keywords: &[&str]| self.leading_words.len() == keywords.len() && matches(keywords);
        if opens(&EXECUTE_STATEMENT_SET) || opens(&BEGIN_STATEMENT_SET) {
            self.statement_set = StatementSetState::Inside { case_depth: 0 };
        } else if !matches(&EXECUTE_STATEMENT_SET) && !matches(&BEGIN_STATEMENT_SET) {
            self.statement_set = StatementSetState::Outside;
        }
    }

    fn finish(self, script: &str) -> Statement {
        Statement {
            text: script[self.start..self.end].to_owned(),
            line: self.line,
            column: self.column,
        }
    }
}

/// How `ValidateSql` checks one statement in its throwaway gateway session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ValidationStep {
    /// Runs the text: it only changes the session (SET, RESET, USE, temporary objects,
    /// catalogs and modules of the session), or only reads (SHOW, DESCRIBE, EXPLAIN).
    Run(Rewrite),
    /// Runs `EXPLAIN` of the statement: a query, INSERT or statement set is validated and
    /// planned without starting a Flink job.
    Explain(Rewrite),
    /// Not run, for this reason: it would change a catalog or a running job, or start one.
    Skip(&'static str),
}

/// The text run for a statement, and how to map a position in it back to the statement.
/// Rewrites change the first line only: columns on it from `shift_from` on move by `shift`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrite {
    /// The text sent to the gateway.
    pub text: String,
    shift_from: u32,
    shift: i64,
}

impl Rewrite {
    fn unchanged(statement: &str) -> Rewrite {
        Rewrite {
            text: statement.to_owned(),
            shift_from: u32::MAX,
            shift: 0,
        }
    }

    /// Maps a 1-based (line, column) of the text run to the statement's own.
    pub fn to_statement(&self, line: u32, column: u32) -> (u32, u32) {
        if line == 1 && column >= self.shift_from {
            let moved = i64::from(column) - self.shift;
            (line, u32::try_from(moved.max(1)).unwrap_or(1))
        } else {
            (line, column)
        }
    }
}

impl Statement {
    /// Maps a 1-based (line, column) within the statement's text to the script's.
    pub fn to_script(&self, line: u32, column: u32) -> (u32, u32) {
        if line <= 1 {
            (self.line, self.column + column.saturating_sub(1))
        } else {
            (self.line + line - 1, column)
        }
    }
}

/// Decides how `ValidateSql` checks a statement (see [`ValidationStep`]). `CREATE TABLE`,
/// `VIEW` and `FUNCTION` run as `CREATE TEMPORARY …`, so that later statements see them and
/// no catalog keeps them.
pub fn validation_step(statement: &str) -> ValidationStep {
    let kind = classify(statement);
    let tokens: Vec<Token> = Lexer::new(statement).map_while(Result::ok).collect();
    let word = |i: usize| -> String {
        tokens
            .get(i)
            .filter(|t| t.kind == TokenKind::Word)
            .map(|t| t.text(statement).to_ascii_uppercase())
            .unwrap_or_default()
    };
    match kind {
        StatementKind::Query | StatementKind::Insert | StatementKind::StatementSet => {
            let Some(first) = tokens.first() else {
                return ValidationStep::Skip("empty");
            };
            if first.is_keyword(statement, "EXECUTE") {
                // EXECUTE and EXPLAIN are both seven letters: positions do not move.
                let text = format!("EXPLAIN{}", &statement[first.end..]);
                return ValidationStep::Explain(Rewrite {
                    text,
                    shift_from: u32::MAX,
                    shift: 0,
                });
            }
            if first.is_keyword(statement, "BEGIN") {
                // `BEGIN STATEMENT SET;` is the SQL client's spelling.
                let Some(semicolon) = tokens.iter().find(|t| t.kind == TokenKind::Semicolon) else {
                    return ValidationStep::Skip("an unterminated statement set");
                };
                let prefix = "EXPLAIN STATEMENT SET BEGIN";
                let text = format!("{prefix}{}", &statement[semicolon.end..]);
                let old = i64::from(semicolon.column);
                return ValidationStep::Explain(Rewrite {
                    text,
                    shift_from: prefix.chars().count() as u32 + 1,
                    shift: prefix.chars().count() as i64 - old,
                });
            }
            if matches!(word(0).as_str(), "INSERT" | "SELECT" | "WITH" | "VALUES")
                || first.text(statement) == "("
                || kind == StatementKind::Insert
            {
                return ValidationStep::Explain(Rewrite {
                    text: format!("EXPLAIN {statement}"),
                    shift_from: 9,
                    shift: 8,
                });
            }
            ValidationStep::Skip("it starts a flink job that cannot be explained")
        }
        StatementKind::Set | StatementKind::Reset | StatementKind::Show => {
            ValidationStep::Run(Rewrite::unchanged(statement))
        }
        StatementKind::Ddl => match word(0).as_str() {
            "USE" | "LOAD" | "UNLOAD" => ValidationStep::Run(Rewrite::unchanged(statement)),
            "ADD" if word(1) == "JAR" => ValidationStep::Run(Rewrite::unchanged(statement)),
            "CREATE" => {
                let is_ctas = word(1) == "TABLE"
                    && tokens.windows(2).any(|pair| {
                        pair[0].is_keyword(statement, "AS")
                            && ["SELECT", "WITH", "VALUES"]
                                .iter()
                                .any(|k| pair[1].is_keyword(statement, k))
                    });
                let mut next = 1;
                if word(next) == "OR" && word(next + 1) == "REPLACE" {
                    next += 2;
                }
                match word(next).as_str() {
                    _ if is_ctas => ValidationStep::Skip(
                        "CREATE TABLE … AS SELECT would create the table and start a flink job",
                    ),
                    "TEMPORARY" | "CATALOG" => ValidationStep::Run(Rewrite::unchanged(statement)),
                    "TABLE" | "VIEW" | "FUNCTION" => {
                        // ` TEMPORARY` goes right after `CREATE` (or `OR REPLACE`), on line 1.
                        let before = &tokens[next - 1];
                        let inserted = " TEMPORARY";
                        let text = format!(
                            "{}{inserted}{}",
                            &statement[..before.end],
                            &statement[before.end..]
                        );
                        let end_column = before.column
                            + statement[before.start..before.end].chars().count() as u32;
                        let (shift_from, shift) = if before.line == 1 {
                            (end_column + inserted.len() as u32, inserted.len() as i64)
                        } else {
                            (u32::MAX, 0)
                        };
                        ValidationStep::Run(Rewrite {
                            text,
                            shift_from,
                            shift,
                        })
                    }
                    _ => ValidationStep::Skip("it would change a catalog"),
                }
            }
            _ => ValidationStep::Skip("it would change a catalog"),
        },
        StatementKind::StopJob => ValidationStep::Skip("it would stop a running flink job"),
        StatementKind::Other => ValidationStep::Skip("flinkbroker does not know the statement"),
    }
}

/// Finds every `line L, column C` in a message (Flink's parser and validator say where an
/// error is that way): the byte range of each and its position.
pub fn positions_in_message(message: &str) -> Vec<(std::ops::Range<usize>, u32, u32)> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = message[from..].find("line ") {
        let start = from + at;
        from = start + 5;
        let rest = &message[from..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let Ok(line) = rest[..digits].parse::<u32>() else {
            continue;
        };
        let Some(after) = rest[digits..].strip_prefix(", column ") else {
            continue;
        };
        let column_digits = after.chars().take_while(char::is_ascii_digit).count();
        let Ok(column) = after[..column_digits].parse::<u32>() else {
            continue;
        };
        let end = from + digits + ", column ".len() + column_digits;
        found.push((start..end, line, column));
        from = end;
    }
    found
}

/// The kinds of significant tokens; whitespace and comments are skipped between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    /// A run of letters, digits, `_` and `$`: a keyword, an identifier or a number.
    Word,
    /// A `'...'` literal, a `` `...` `` identifier or a `"..."` string.
    Quoted,
    /// A `;`.
    Semicolon,
    /// Any other single character.
    Symbol,
}

/// A significant token: its kind, byte range and starting position.
#[derive(Debug, Clone, Copy)]
struct Token {
    kind: TokenKind,
    start: usize,
    end: usize,
    line: u32,
    column: u32,
}

impl Token {
    fn text<'a>(&self, source: &'a str) -> &'a str {
        &source[self.start..self.end]
    }

    fn is_keyword(&self, source: &str, keyword: &str) -> bool {
        self.kind == TokenKind::Word && self.text(source).eq_ignore_ascii_case(keyword)
    }

    fn is_string_literal(&self, source: &str) -> bool {
        self.kind == TokenKind::Quoted && self.text(source).starts_with('\'')
    }
}

fn is_word_character(character: char) -> bool {
    character.is_alphanumeric() || character == '_' || character == '$'
}

fn is_space(character: char) -> bool {
    // A byte order mark is not whitespace to Rust, but editors put it at the start of files.
    character.is_whitespace() || character == '\u{feff}'
}

/// Cuts a source into significant tokens, tracking lines and columns.
struct Lexer<'a> {
    source: &'a str,
    offset: usize,
    line: u32,
    column: u32,
    failed: bool,
}

impl<'a> Lexer<'a> {
    fn new(source: &'a str) -> Self {
        Self {
            source,
            offset: 0,
            line: 1,
            column: 1,
            failed: false,
        }
    }

    fn rest(&self) -> &'a str {
        &self.source[self.offset..]
    }

    fn peek(&self) -> Option<char> {
        self.rest().chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let character = self.peek()?;
        self.offset += character.len_utf8();
        match character {
            '\n' => self.start_line(),
            // The `\n` of a `\r\n` ends the line.
            '\r' if self.peek() == Some('\n') => {}
            '\r' => self.start_line(),
            _ => self.column = self.column.saturating_add(1),
        }
        Some(character)
    }

    fn start_line(&mut self) {
        self.line = self.line.saturating_add(1);
        self.column = 1;
    }

    fn skip_whitespace_and_comments(&mut self) -> Result<(), ScriptError> {
        loop {
            let rest = self.rest();
            if rest.starts_with("--") || rest.starts_with("//") {
                while self.peek().is_some_and(|c| c != '\n' && c != '\r') {
                    self.bump();
                }
            } else if rest.starts_with("/*") {
                let (line, column) = (self.line, self.column);
                self.bump();
                self.bump();
                loop {
                    match self.bump() {
                        None => return Err(ScriptError::UnterminatedBlockComment { line, column }),
                        Some('*') if self.peek() == Some('/') => {
                            self.bump();
                            break;
                        }
                        Some(_) => {}
                    }
                }
            } else if self.peek().is_some_and(is_space) {
                self.bump();
            } else {
                return Ok(());
            }
        }
    }

    /// Skips to the closing `quote`, a doubled quote being an escaped one; false when the
    /// source ends first.
    fn skip_quoted(&mut self, quote: char) -> bool {
        loop {
            match self.bump() {
                None => return false,
                Some(character) if character == quote => {
                    if self.peek() == Some(quote) {
                        self.bump();
                    } else {
                        return true;
                    }
                }
                Some(_) => {}
            }
        }
    }

    fn next_token(&mut self) -> Result<Option<Token>, ScriptError> {
        self.skip_whitespace_and_comments()?;
        let (start, line, column) = (self.offset, self.line, self.column);
        let Some(first) = self.bump() else {
            return Ok(None);
        };
        let kind = match first {
            ';' => TokenKind::Semicolon,
            '\'' | '`' | '"' => {
                if !self.skip_quoted(first) {
                    return Err(match first {
                        '\'' => ScriptError::UnterminatedStringLiteral { line, column },
                        '`' => ScriptError::UnterminatedQuotedIdentifier { line, column },
                        _ => ScriptError::UnterminatedDoubleQuotedString { line, column },
                    });
                }
                TokenKind::Quoted
            }
            character if is_word_character(character) => {
                while self.peek().is_some_and(is_word_character) {
                    self.bump();
                }
                TokenKind::Word
            }
            _ => TokenKind::Symbol,
        };
        Ok(Some(Token {
            kind,
            start,
            end: self.offset,
            line,
            column,
        }))
    }
}

impl Iterator for Lexer<'_> {
    type Item = Result<Token, ScriptError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.next_token() {
            Ok(token) => token.map(Ok),
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn texts(script: &str) -> Vec<String> {
        split_statements(script)
            .expect("script splits")
            .into_iter()
            .map(|statement| statement.text)
            .collect()
    }

    fn positions(script: &str) -> Vec<(u32, u32)> {
        split_statements(script)
            .expect("script splits")
            .into_iter()
            .map(|statement| (statement.line, statement.column))
            .collect()
    }

    /// Lists the line and column of every character, independently of the lexer.
    fn character_positions(script: &str) -> Vec<(usize, u32, u32)> {
        let (mut line, mut column) = (1, 1);
        let mut positions = Vec::new();
        let mut characters = script.char_indices().peekable();
        while let Some((offset, character)) = characters.next() {
            positions.push((offset, line, column));
            let crlf =
                character == '\r' && characters.peek().is_some_and(|&(_, next)| next == '\n');
            if (character == '\n' || character == '\r') && !crlf {
                line += 1;
                column = 1;
            } else if !crlf {
                column += 1;
            }
        }
        positions.push((script.len(), line, column));
        positions
    }

    fn position_of(script: &str, offset: usize) -> (u32, u32) {
        character_positions(script)
            .into_iter()
            .find(|&(at, _, _)| at == offset)
            .map(|(_, line, column)| (line, column))
            .expect("offset is at a character boundary")
    }

    // ----- splitting ------------------------------------------------------------------------

    #[test]
    fn splits_statements_at_semicolons() {
        assert_eq!(
            texts("CREATE TABLE t (x INT);\nINSERT INTO t VALUES (1);\nSELECT * FROM t;"),
            vec![
                "CREATE TABLE t (x INT)",
                "INSERT INTO t VALUES (1)",
                "SELECT * FROM t"
            ]
        );
    }

    #[test]
    fn statements_report_line_and_column_of_first_character() {
        let script = "SELECT 1;\n  SELECT 2;   SELECT 3;\n\n\tSELECT 4";
        assert_eq!(positions(script), vec![(1, 1), (2, 3), (2, 15), (4, 2)]);
    }

    #[test]
    fn statement_text_is_trimmed_and_keeps_inner_whitespace() {
        assert_eq!(
            texts("  \n\t SELECT\n  a,\n  b\nFROM t \n\t ;"),
            vec!["SELECT\n  a,\n  b\nFROM t"]
        );
    }

    #[test]
    fn semicolon_inside_string_literal_does_not_split() {
        assert_eq!(
            texts("SELECT 'a;b' AS c; SELECT ';'"),
            vec!["SELECT 'a;b' AS c", "SELECT ';'"]
        );
    }

    #[test]
    fn doubled_single_quote_inside_string_literal_is_an_escaped_quote() {
        assert_eq!(
            texts("SELECT 'it''s; fine', ''''; SELECT 2"),
            vec!["SELECT 'it''s; fine', ''''", "SELECT 2"]
        );
    }

    #[test]
    fn empty_string_literal_closes_immediately() {
        assert_eq!(texts("SELECT ''; SELECT 2"), vec!["SELECT ''", "SELECT 2"]);
    }

    #[test]
    fn backslash_does_not_escape_a_quote_in_string_literals() {
        assert_eq!(
            texts(r"SELECT 'C:\'; SELECT 2"),
            vec![r"SELECT 'C:\'", "SELECT 2"]
        );
    }

    #[test]
    fn prefixed_string_literals_are_lexed_as_plain_literals() {
        assert_eq!(
            texts("SELECT X'CA;FE', E'it''s;'; SELECT 2"),
            vec!["SELECT X'CA;FE', E'it''s;'", "SELECT 2"]
        );
    }

    #[test]
    fn string_literal_may_span_lines() {
        let script = "SELECT 'first;\nsecond'\n; SELECT 2";
        assert_eq!(texts(script), vec!["SELECT 'first;\nsecond'", "SELECT 2"]);
        assert_eq!(positions(script), vec![(1, 1), (3, 3)]);
    }

    #[test]
    fn semicolon_inside_backquoted_identifier_does_not_split() {
        assert_eq!(
            texts("SELECT `a;b` FROM `my;table`; SELECT 2"),
            vec!["SELECT `a;b` FROM `my;table`", "SELECT 2"]
        );
    }

    #[test]
    fn doubled_backquote_inside_identifier_is_an_escaped_backquote() {
        assert_eq!(
            texts("SELECT `a``;b` FROM t; SELECT 2"),
            vec!["SELECT `a``;b` FROM t", "SELECT 2"]
        );
    }

    #[test]
    fn quotes_inside_backquoted_identifier_are_plain_characters() {
        assert_eq!(
            texts("SELECT `it's \"x\"; --`; SELECT 2"),
            vec!["SELECT `it's \"x\"; --`", "SELECT 2"]
        );
    }

    #[test]
    fn semicolon_inside_double_quoted_string_does_not_split() {
        assert_eq!(
            texts("SELECT \"a;b\", \"say \"\"hi\"\";\"; SELECT 2"),
            vec!["SELECT \"a;b\", \"say \"\"hi\"\";\"", "SELECT 2"]
        );
    }

    #[test]
    fn semicolon_and_quotes_inside_line_comment_do_not_split() {
        assert_eq!(
            texts("SELECT 1 -- it's; a `comment\" ;\n, 2; SELECT 3"),
            vec!["SELECT 1 -- it's; a `comment\" ;\n, 2", "SELECT 3"]
        );
    }

    #[test]
    fn double_slash_starts_a_line_comment_as_in_flink() {
        assert_eq!(
            texts("SELECT 1 // it's; hidden\n, 2; SELECT 3"),
            vec!["SELECT 1 // it's; hidden\n, 2", "SELECT 3"]
        );
    }

    #[test]
    fn semicolon_and_quotes_inside_block_comment_do_not_split() {
        assert_eq!(
            texts("SELECT /* it's; \"a\" `b;\n -- */ 1; SELECT 2"),
            vec!["SELECT /* it's; \"a\" `b;\n -- */ 1", "SELECT 2"]
        );
    }

    #[test]
    fn block_comments_do_not_nest() {
        assert_eq!(
            texts("SELECT /* outer /* inner */ 1; SELECT 2 */"),
            vec!["SELECT /* outer /* inner */ 1", "SELECT 2 */"]
        );
    }

    #[test]
    fn block_comment_closing_needs_its_own_star() {
        assert_eq!(
            texts("SELECT /*/ 1; */ 2; SELECT 3"),
            vec!["SELECT /*/ 1; */ 2", "SELECT 3"]
        );
        assert_eq!(
            texts("SELECT /**/ 1; SELECT 2"),
            vec!["SELECT /**/ 1", "SELECT 2"]
        );
    }

    #[test]
    fn hints_are_kept_in_the_text() {
        assert_eq!(
            texts("SELECT /*+ OPTIONS('a'=';') */ * FROM t;"),
            vec!["SELECT /*+ OPTIONS('a'=';') */ * FROM t"]
        );
    }

    #[test]
    fn comment_markers_inside_literals_are_text() {
        assert_eq!(
            texts("SELECT '--;', '/*', `//`; SELECT '*/'"),
            vec!["SELECT '--;', '/*', `//`", "SELECT '*/'"]
        );
    }

    #[test]
    fn minus_and_slash_operators_are_not_comments() {
        assert_eq!(
            texts("SELECT 10 - 2 / 1 - -3; SELECT 4/2"),
            vec!["SELECT 10 - 2 / 1 - -3", "SELECT 4/2"]
        );
    }

    #[test]
    fn leading_comments_are_dropped_and_position_points_past_them() {
        let script = "-- header; with 'quote\n/* block;\n comment */  SELECT 1;";
        let statements = split_statements(script).expect("script splits");
        assert_eq!(
            statements,
            vec![Statement {
                text: "SELECT 1".to_owned(),
                line: 3,
                column: 14,
            }]
        );
    }

    #[test]
    fn trailing_comments_are_dropped_and_inner_comments_kept() {
        assert_eq!(
            texts("SELECT 1 /* inner */ + 2 -- trailing\n/* trailing */ ; SELECT 3 -- last"),
            vec!["SELECT 1 /* inner */ + 2", "SELECT 3"]
        );
    }

    #[test]
    fn script_of_only_comments_and_whitespace_yields_no_statements() {
        assert_eq!(
            texts("-- only; a comment\n/* and ; another */\n\t \r\n"),
            Vec::<String>::new()
        );
        assert_eq!(texts("-- no newline at the end"), Vec::<String>::new());
    }

    #[test]
    fn empty_script_yields_no_statements() {
        assert_eq!(texts(""), Vec::<String>::new());
        assert_eq!(texts("   \n\t"), Vec::<String>::new());
    }

    #[test]
    fn empty_and_comment_only_statements_are_dropped() {
        assert_eq!(
            texts(";;SELECT 1;; ;\n; -- nothing\n; /* nothing */ ;SELECT 2;;"),
            vec!["SELECT 1", "SELECT 2"]
        );
    }

    #[test]
    fn trailing_statement_without_semicolon_counts() {
        assert_eq!(texts("SELECT 1; SELECT 2"), vec!["SELECT 1", "SELECT 2"]);
        assert_eq!(
            texts("SELECT 1; SELECT 2 -- done"),
            vec!["SELECT 1", "SELECT 2"]
        );
        assert_eq!(texts("SELECT 'x'"), vec!["SELECT 'x'"]);
    }

    #[test]
    fn execute_statement_set_block_is_one_statement() {
        let script = "CREATE TABLE s (x INT);\n\
                      EXECUTE STATEMENT SET BEGIN\n\
                      INSERT INTO a SELECT x FROM s;\n\
                      INSERT INTO b SELECT x + 1 FROM s;\n\
                      END;\n\
                      SELECT 1";
        let statements = split_statements(script).expect("script splits");
        let texts: Vec<&str> = statements.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "CREATE TABLE s (x INT)",
                "EXECUTE STATEMENT SET BEGIN\nINSERT INTO a SELECT x FROM s;\nINSERT INTO b SELECT x + 1 FROM s;\nEND",
                "SELECT 1",
            ]
        );
        assert_eq!((statements[1].line, statements[1].column), (2, 1));
        assert_eq!(statements[1].kind(), StatementKind::StatementSet);
    }

    #[test]
    fn execute_statement_set_on_one_line_is_one_statement() {
        assert_eq!(
            texts(
                "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; INSERT INTO b SELECT 2; END"
            ),
            vec!["EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; INSERT INTO b SELECT 2; END"]
        );
    }

    #[test]
    fn begin_statement_set_block_keeps_inner_statements_as_written() {
        let script = "SET 'k' = 'v';\n\
                      BEGIN STATEMENT SET;\n\
                      -- first sink\n\
                      INSERT INTO a SELECT ';' FROM s;\n\
                      INSERT INTO b /* second; sink */ SELECT 2;\n\
                      END;\n\
                      SELECT 3;";
        let statements = split_statements(script).expect("script splits");
        let texts: Vec<&str> = statements.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            vec![
                "SET 'k' = 'v'",
                "BEGIN STATEMENT SET;\n-- first sink\nINSERT INTO a SELECT ';' FROM s;\nINSERT INTO b /* second; sink */ SELECT 2;\nEND",
                "SELECT 3",
            ]
        );
        assert_eq!((statements[1].line, statements[1].column), (2, 1));
        assert_eq!(statements[1].kind(), StatementKind::StatementSet);
    }

    #[test]
    fn statement_set_keywords_are_case_insensitive() {
        assert_eq!(
            texts("execute Statement sEt begin insert into a select 1; end; select 2"),
            vec![
                "execute Statement sEt begin insert into a select 1; end",
                "select 2"
            ]
        );
        assert_eq!(
            texts("begin statement set; insert into a select 1; End; select 2"),
            vec![
                "begin statement set; insert into a select 1; End",
                "select 2"
            ]
        );
    }

    #[test]
    fn comments_between_statement_set_keywords_are_allowed() {
        assert_eq!(
            texts(
                "EXECUTE /* a */ STATEMENT -- b\n SET BEGIN INSERT INTO a SELECT 1; END; SELECT 2"
            ),
            vec![
                "EXECUTE /* a */ STATEMENT -- b\n SET BEGIN INSERT INTO a SELECT 1; END",
                "SELECT 2"
            ]
        );
    }

    #[test]
    fn case_expression_end_inside_statement_set_does_not_close_it() {
        assert_eq!(
            texts(
                "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT CASE WHEN x THEN CASE y WHEN 1 THEN 2 END END; \
                 INSERT INTO b SELECT x FROM s WHERE CASE WHEN x THEN TRUE ELSE FALSE END; END; SELECT 1"
            ),
            vec![
                "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT CASE WHEN x THEN CASE y WHEN 1 THEN 2 END END; \
                 INSERT INTO b SELECT x FROM s WHERE CASE WHEN x THEN TRUE ELSE FALSE END; END",
                "SELECT 1"
            ]
        );
        assert_eq!(
            texts(
                "BEGIN STATEMENT SET; INSERT INTO a SELECT CASE WHEN x THEN 1 END; END; SELECT 1"
            ),
            vec![
                "BEGIN STATEMENT SET; INSERT INTO a SELECT CASE WHEN x THEN 1 END; END",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn unclosed_case_in_one_inner_statement_does_not_swallow_the_end() {
        assert_eq!(
            texts("BEGIN STATEMENT SET; INSERT INTO a SELECT CASE WHEN x THEN 1; END; SELECT 1"),
            vec![
                "BEGIN STATEMENT SET; INSERT INTO a SELECT CASE WHEN x THEN 1; END",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn end_inside_literal_identifier_or_comment_does_not_close_statement_set() {
        assert_eq!(
            texts(
                "BEGIN STATEMENT SET; INSERT INTO `END` SELECT 'END;' -- END;\n; /* END; */ END; SELECT 1"
            ),
            vec![
                "BEGIN STATEMENT SET; INSERT INTO `END` SELECT 'END;' -- END;\n; /* END; */ END",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn words_containing_end_or_begin_are_not_keywords() {
        assert_eq!(
            texts(
                "BEGIN STATEMENT SET; INSERT INTO a SELECT end_time, ENDS, weekend FROM s; END; SELECT 1"
            ),
            vec![
                "BEGIN STATEMENT SET; INSERT INTO a SELECT end_time, ENDS, weekend FROM s; END",
                "SELECT 1"
            ]
        );
        assert_eq!(
            texts("BEGINS STATEMENT SET; SELECT 1"),
            vec!["BEGINS STATEMENT SET", "SELECT 1"]
        );
    }

    #[test]
    fn statement_set_keywords_later_in_a_statement_do_not_open_a_block() {
        assert_eq!(
            texts("SELECT 1 BEGIN STATEMENT SET; SELECT 2; SET 'a' = 'b'; STATEMENT SET BEGIN; x"),
            vec![
                "SELECT 1 BEGIN STATEMENT SET",
                "SELECT 2",
                "SET 'a' = 'b'",
                "STATEMENT SET BEGIN",
                "x"
            ]
        );
        assert_eq!(
            texts("EXECUTE STATEMENT SET; SELECT 1"),
            vec!["EXECUTE STATEMENT SET", "SELECT 1"]
        );
    }

    #[test]
    fn text_after_statement_set_end_belongs_to_the_statement() {
        assert_eq!(
            texts("BEGIN STATEMENT SET; INSERT INTO a SELECT 1; END trailing; SELECT 1"),
            vec![
                "BEGIN STATEMENT SET; INSERT INTO a SELECT 1; END trailing",
                "SELECT 1"
            ]
        );
    }

    #[test]
    fn statement_set_without_end_is_an_error_at_its_start() {
        assert_eq!(
            split_statements("SELECT 1;\n  BEGIN STATEMENT SET;\nINSERT INTO a SELECT 1;\n"),
            Err(ScriptError::UnterminatedStatementSet { line: 2, column: 3 })
        );
        assert_eq!(
            split_statements("EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; -- END;\n"),
            Err(ScriptError::UnterminatedStatementSet { line: 1, column: 1 })
        );
        assert_eq!(
            split_statements("BEGIN STATEMENT SET"),
            Err(ScriptError::UnterminatedStatementSet { line: 1, column: 1 })
        );
    }

    #[test]
    fn crlf_line_endings_count_as_one_line_break() {
        let script = "SELECT 1;\r\n-- c;\r\n  SELECT 'a\r\nb';\r\nSELECT 3\r\n";
        let statements = split_statements(script).expect("script splits");
        let found: Vec<(&str, u32, u32)> = statements
            .iter()
            .map(|s| (s.text.as_str(), s.line, s.column))
            .collect();
        assert_eq!(
            found,
            vec![
                ("SELECT 1", 1, 1),
                ("SELECT 'a\r\nb'", 3, 3),
                ("SELECT 3", 5, 1)
            ]
        );
    }

    #[test]
    fn line_comment_ends_at_carriage_return() {
        assert_eq!(
            texts("SELECT 1 -- c\r, 2; SELECT 3"),
            vec!["SELECT 1 -- c\r, 2", "SELECT 3"]
        );
    }

    #[test]
    fn lone_carriage_return_counts_as_line_break() {
        assert_eq!(
            positions("SELECT 1;\rSELECT 2;\r\r  SELECT 3"),
            vec![(1, 1), (2, 1), (4, 3)]
        );
    }

    #[test]
    fn unicode_characters_count_as_one_column_each() {
        let script = "SELECT 'héllo; 世界' AS `naïve;列`; /* ü */ SELECT ñ;\n😀 ;";
        let statements = split_statements(script).expect("script splits");
        let found: Vec<(&str, u32, u32)> = statements
            .iter()
            .map(|s| (s.text.as_str(), s.line, s.column))
            .collect();
        assert_eq!(
            found,
            vec![
                ("SELECT 'héllo; 世界' AS `naïve;列`", 1, 1),
                ("SELECT ñ", 1, 42),
                ("😀", 2, 1)
            ]
        );
    }

    #[test]
    fn byte_order_mark_is_skipped_like_whitespace() {
        assert_eq!(texts("\u{feff}SELECT 1"), vec!["SELECT 1"]);
        assert_eq!(classify("\u{feff}SELECT 1"), StatementKind::Query);
    }

    #[test]
    fn unterminated_string_literal_reports_its_start() {
        assert_eq!(
            split_statements("SELECT 1;\nSELECT 2;\nSELECT 'abc;\n-- not a comment"),
            Err(ScriptError::UnterminatedStringLiteral { line: 3, column: 8 })
        );
        assert_eq!(
            split_statements("SELECT 'it''s"),
            Err(ScriptError::UnterminatedStringLiteral { line: 1, column: 8 })
        );
        assert_eq!(
            split_statements("SELECT ''''"),
            Ok(vec![Statement {
                text: "SELECT ''''".to_owned(),
                line: 1,
                column: 1
            }])
        );
        assert_eq!(
            split_statements("SELECT '''"),
            Err(ScriptError::UnterminatedStringLiteral { line: 1, column: 8 })
        );
    }

    #[test]
    fn unterminated_backquoted_identifier_reports_its_start() {
        assert_eq!(
            split_statements("SELECT 1;\r\n  SELECT `a``b"),
            Err(ScriptError::UnterminatedQuotedIdentifier {
                line: 2,
                column: 10
            })
        );
    }

    #[test]
    fn unterminated_double_quoted_string_reports_its_start() {
        assert_eq!(
            split_statements("SELECT \"é\"; SELECT \"a"),
            Err(ScriptError::UnterminatedDoubleQuotedString {
                line: 1,
                column: 20
            })
        );
    }

    #[test]
    fn unterminated_block_comment_reports_its_start() {
        assert_eq!(
            split_statements("SELECT 1; -- x\n   /* never; closed *"),
            Err(ScriptError::UnterminatedBlockComment { line: 2, column: 4 })
        );
        assert_eq!(
            split_statements("SELECT /*/"),
            Err(ScriptError::UnterminatedBlockComment { line: 1, column: 8 })
        );
    }

    #[test]
    fn quote_opened_inside_a_comment_is_not_unterminated() {
        assert_eq!(texts("SELECT 1 -- don't\n"), vec!["SELECT 1"]);
        assert_eq!(texts("SELECT 1 /* ` \" ' */"), vec!["SELECT 1"]);
    }

    #[test]
    fn error_messages_name_the_construct_and_where_it_starts() {
        let cases = [
            (
                "SELECT 'x",
                "unterminated string literal starting at line 1, column 8",
            ),
            (
                "\n  SELECT `x",
                "unterminated quoted identifier starting at line 2, column 10",
            ),
            (
                "SELECT \"x",
                "unterminated double-quoted string starting at line 1, column 8",
            ),
            (
                "SELECT 1 /* x",
                "unterminated block comment starting at line 1, column 10",
            ),
            (
                "SELECT 1;\n\nBEGIN STATEMENT SET; INSERT INTO a SELECT 1;",
                "unterminated statement set starting at line 3, column 1: no END",
            ),
        ];
        for (script, message) in cases {
            let error = split_statements(script).expect_err("script is unterminated");
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn error_position_returns_line_and_column() {
        assert_eq!(
            ScriptError::UnterminatedBlockComment { line: 4, column: 2 }.position(),
            (4, 2)
        );
    }

    // ----- classification -------------------------------------------------------------------

    #[test]
    fn classify_recognises_queries() {
        for statement in [
            "SELECT 1",
            "select * from t",
            "WITH a AS (SELECT 1) SELECT * FROM a",
            "VALUES (1), (2)",
            "(SELECT 1) UNION ALL (SELECT 2)",
            "  (  SELECT 1)",
            "EXECUTE SELECT 1",
        ] {
            assert_eq!(classify(statement), StatementKind::Query, "{statement}");
        }
    }

    #[test]
    fn classify_recognises_inserts() {
        for statement in [
            "INSERT INTO t SELECT 1",
            "insert overwrite t SELECT 1",
            "EXECUTE INSERT INTO t SELECT 1",
            "EXECUTE PLAN '/tmp/plan.json'",
            "COMPILE AND EXECUTE PLAN '/tmp/plan.json' FOR INSERT INTO t SELECT 1",
            "DELETE FROM t WHERE x = 1",
            "UPDATE t SET x = 1",
        ] {
            assert_eq!(classify(statement), StatementKind::Insert, "{statement}");
        }
    }

    #[test]
    fn classify_recognises_statement_sets_in_both_forms() {
        for statement in [
            "EXECUTE STATEMENT SET BEGIN INSERT INTO a SELECT 1; END",
            "execute statement set begin insert into a select 1; end",
            "BEGIN STATEMENT SET; INSERT INTO a SELECT 1; END",
            "BEGIN STATEMENT SET",
        ] {
            assert_eq!(
                classify(statement),
                StatementKind::StatementSet,
                "{statement}"
            );
        }
    }

    #[test]
    fn classify_recognises_set_and_reset() {
        assert_eq!(classify("SET 'a' = 'b'"), StatementKind::Set);
        assert_eq!(classify("set"), StatementKind::Set);
        assert_eq!(classify("RESET 'a'"), StatementKind::Reset);
        assert_eq!(classify("reset"), StatementKind::Reset);
    }

    #[test]
    fn classify_recognises_ddl() {
        for statement in [
            "CREATE TABLE t (x INT)",
            "create temporary view v AS SELECT 1",
            "DROP TABLE t",
            "ALTER TABLE t RENAME TO u",
            "USE CATALOG c",
            "use db",
            "LOAD MODULE hive",
            "UNLOAD MODULE core",
            "ADD JAR '/tmp/a.jar'",
            "REMOVE JAR '/tmp/a.jar'",
            "TRUNCATE TABLE t",
            "ANALYZE TABLE t COMPUTE STATISTICS",
        ] {
            assert_eq!(classify(statement), StatementKind::Ddl, "{statement}");
        }
    }

    #[test]
    fn classify_recognises_show_describe_and_explain() {
        for statement in [
            "SHOW TABLES",
            "show jobs",
            "DESCRIBE t",
            "desc t",
            "EXPLAIN PLAN FOR SELECT 1",
            "EXPLAIN INSERT INTO t SELECT 1",
        ] {
            assert_eq!(classify(statement), StatementKind::Show, "{statement}");
        }
    }

    #[test]
    fn classify_recognises_stop_job() {
        assert_eq!(
            classify("STOP JOB 'bf4e2478387e73c4c54f5f5a4f26fa1b'"),
            StatementKind::StopJob
        );
        assert_eq!(
            classify("stop job 'x' WITH SAVEPOINT"),
            StatementKind::StopJob
        );
        assert_eq!(classify("STOP"), StatementKind::Other);
    }

    #[test]
    fn classify_returns_other_for_unknown_or_empty_statements() {
        for statement in [
            "",
            "   ",
            "-- only a comment",
            "/* only a comment */",
            "HELP",
            "CALL sys.proc()",
            "COMPILE PLAN '/tmp/p.json' FOR INSERT INTO t SELECT 1",
            "EXECUTE something",
            "BEGIN",
            "END",
            "; SELECT 1",
            "'SELECT'",
            "`SELECT` 1",
            "/* unterminated SELECT",
        ] {
            assert_eq!(classify(statement), StatementKind::Other, "{statement:?}");
        }
    }

    #[test]
    fn classify_does_not_match_keyword_prefixes() {
        for statement in [
            "SELECTED",
            "SETTINGS 'a'",
            "SHOWS",
            "INSERTS",
            "CREATED",
            "USER",
        ] {
            assert_eq!(classify(statement), StatementKind::Other, "{statement}");
        }
    }

    #[test]
    fn classify_skips_leading_comments_and_whitespace() {
        assert_eq!(
            classify("-- INSERT\n/* DROP; */\r\n\t// SHOW\n  sElEcT 1"),
            StatementKind::Query
        );
        assert_eq!(
            classify("/**/INSERT INTO t SELECT 1"),
            StatementKind::Insert
        );
    }

    #[test]
    fn only_query_insert_and_statement_set_start_a_flink_job() {
        let cases = [
            (StatementKind::Query, true),
            (StatementKind::Insert, true),
            (StatementKind::StatementSet, true),
            (StatementKind::Set, false),
            (StatementKind::Reset, false),
            (StatementKind::Ddl, false),
            (StatementKind::Show, false),
            (StatementKind::StopJob, false),
            (StatementKind::Other, false),
        ];
        for (kind, starts_job) in cases {
            assert_eq!(kind.starts_flink_job(), starts_job, "{kind:?}");
        }
    }

    #[test]
    fn only_query_and_show_return_rows() {
        let cases = [
            (StatementKind::Query, true),
            (StatementKind::Insert, false),
            (StatementKind::StatementSet, false),
            (StatementKind::Set, false),
            (StatementKind::Reset, false),
            (StatementKind::Ddl, false),
            (StatementKind::Show, true),
            (StatementKind::StopJob, false),
            (StatementKind::Other, false),
        ];
        for (kind, returns_rows) in cases {
            assert_eq!(kind.returns_rows(), returns_rows, "{kind:?}");
        }
    }

    #[test]
    fn split_statements_are_classified_by_their_own_keywords() {
        let kinds: Vec<StatementKind> = split_statements(
            "-- set up\nSET 'execution.runtime-mode' = 'batch';\nCREATE TABLE t (x INT);\n\
             /* load */ INSERT INTO t VALUES (1);\nSELECT * FROM t;\nSHOW JOBS;\nRESET 'execution.runtime-mode'",
        )
        .expect("script splits")
        .iter()
        .map(Statement::kind)
        .collect();
        assert_eq!(
            kinds,
            vec![
                StatementKind::Set,
                StatementKind::Ddl,
                StatementKind::Insert,
                StatementKind::Query,
                StatementKind::Show,
                StatementKind::Reset
            ]
        );
    }

    // ----- SET and RESET --------------------------------------------------------------------

    #[test]
    fn parse_set_reads_key_and_value() {
        assert_eq!(
            parse_set("SET 'table.local-time-zone' = 'UTC'"),
            Some(("table.local-time-zone".to_owned(), Some("UTC".to_owned())))
        );
        assert_eq!(
            parse_set("SET 'k'='v'"),
            Some(("k".to_owned(), Some("v".to_owned())))
        );
    }

    #[test]
    fn parse_set_unescapes_doubled_quotes_and_keeps_semicolons() {
        assert_eq!(
            parse_set("SET 'it''s' = 'a;b''c'"),
            Some(("it's".to_owned(), Some("a;b'c".to_owned())))
        );
        assert_eq!(
            parse_set("SET '' = ''"),
            Some((String::new(), Some(String::new())))
        );
    }

    #[test]
    fn parse_set_reads_reset_key() {
        assert_eq!(
            parse_set("RESET 'execution.runtime-mode'"),
            Some(("execution.runtime-mode".to_owned(), None))
        );
    }

    #[test]
    fn parse_set_is_case_insensitive_and_tolerates_comments_and_a_trailing_semicolon() {
        assert_eq!(
            parse_set("-- c\n set /* k */ 'a' -- x\n = 'b' ;"),
            Some(("a".to_owned(), Some("b".to_owned())))
        );
        assert_eq!(parse_set("reset\n'a';"), Some(("a".to_owned(), None)));
    }

    #[test]
    fn parse_set_rejects_other_statements() {
        for statement in [
            "",
            "SET",
            "RESET",
            "SET k = v",
            "SET 'k' = v",
            "SET 'k'",
            "SET 'k' 'v'",
            "SET 'k' = 'v' 'w'",
            "SET 'k' = 'v'; SELECT 1",
            "SET `k` = 'v'",
            "SET \"k\" = 'v'",
            "RESET 'k' = 'v'",
            "RESET k",
            "SELECT 'k' = 'v'",
            "SETTINGS 'k' = 'v'",
            "SET 'k' = 'v",
            "SET 'k' == 'v'",
        ] {
            assert_eq!(parse_set(statement), None, "{statement:?}");
        }
    }

    // ----- properties -----------------------------------------------------------------------

    /// Pieces that may appear inside any quoted token or comment.
    const INNER_PIECES: &[&str] = &[
        "a", "Z", "0", " ", ";", ";;", "--", "//", "/*", "-", "/", "*", "é", "世", "END", "BEGIN",
        "\t", "\\",
    ];

    fn inner_text(extra: &'static [&'static str]) -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(
                INNER_PIECES
                    .iter()
                    .chain(extra)
                    .copied()
                    .collect::<Vec<_>>(),
            ),
            0..8,
        )
        .prop_map(|pieces| pieces.concat())
    }

    fn string_literal() -> impl Strategy<Value = String> {
        inner_text(&["''", "\"", "`", "\n", "\r\n", "*/"]).prop_map(|inner| format!("'{inner}'"))
    }

    fn backquoted_identifier() -> impl Strategy<Value = String> {
        inner_text(&["``", "'", "\"", "*/"]).prop_map(|inner| format!("`{inner}`"))
    }

    fn double_quoted_string() -> impl Strategy<Value = String> {
        inner_text(&["\"\"", "'", "`", "*/"]).prop_map(|inner| format!("\"{inner}\""))
    }

    /// A significant token that opens no statement set and closes no `CASE`.
    fn safe_token() -> impl Strategy<Value = String> {
        prop_oneof![
            4 => prop::sample::select(vec![
                "SELECT", "insert", "INTO", "from", "t", "x1", "_y", "$v", "42", "3.5", "ñandú", "数据",
                "SET", "STATEMENT", "WHERE", "(", ")", ",", "=", "*", "+", "-", "/", "<>", ".",
                "CASE WHEN x THEN 1 ELSE 2 END",
            ])
            .prop_map(str::to_owned),
            1 => string_literal(),
            1 => backquoted_identifier(),
            1 => double_quoted_string(),
        ]
    }

    /// Whitespace or a comment; the spaces around comments keep `-` and `/` from joining them.
    fn separator() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => prop::sample::select(vec![" ", "\n", "\t", "\r\n", "  \n\t "]).prop_map(str::to_owned),
            1 => inner_text(&["'", "\"", "`", "\n"]).prop_map(|inner| format!(" /* {} */ ", without_comment_end(inner))),
            1 => inner_text(&["'", "\"", "`"]).prop_map(|inner| format!(" -- {inner}\n")),
            1 => inner_text(&["'", "\"", "`", "*/"]).prop_map(|inner| format!(" // {inner}\r\n")),
        ]
    }

    /// Removes every `*/`, including those that the removal itself brings together.
    fn without_comment_end(mut text: String) -> String {
        while text.contains("*/") {
            text = text.replace("*/", "");
        }
        text
    }

    /// A statement that starts and ends with a significant token.
    fn plain_statement() -> impl Strategy<Value = String> {
        (
            safe_token(),
            prop::collection::vec((separator(), safe_token()), 0..8),
        )
            .prop_map(|(first, rest)| {
                rest.into_iter()
                    .fold(first, |mut text, (separator, token)| {
                        text.push_str(&separator);
                        text.push_str(&token);
                        text
                    })
            })
    }

    fn statement() -> impl Strategy<Value = String> {
        prop_oneof![
            6 => plain_statement(),
            1 => prop::collection::vec(plain_statement(), 1..4)
                .prop_map(|inner| format!("EXECUTE STATEMENT SET BEGIN\n{};\nEND", inner.join(";\n"))),
            1 => prop::collection::vec(plain_statement(), 0..4)
                .prop_map(|inner| {
                    let body: String = inner.iter().map(|s| format!("{s};\n")).collect();
                    format!("begin statement set;\n{body}end")
                }),
        ]
    }

    /// What may stand between statements: whitespace, comments and empty statements.
    fn gap() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![3 => separator(), 1 => Just(";".to_owned())],
            0..4,
        )
        .prop_map(|pieces| pieces.concat())
    }

    /// A script built from statements, with the byte offset where each statement starts.
    fn script() -> impl Strategy<Value = (String, Vec<String>, Vec<usize>)> {
        (
            prop::collection::vec((gap(), statement(), gap()), 0..6),
            any::<bool>(),
        )
            .prop_map(|(parts, final_semicolon)| {
                let mut script = String::new();
                let mut statements = Vec::new();
                let mut offsets = Vec::new();
                let count = parts.len();
                for (index, (before, statement, after)) in parts.into_iter().enumerate() {
                    script.push_str(&before);
                    offsets.push(script.len());
                    script.push_str(&statement);
                    script.push_str(&after);
                    if index + 1 < count || final_semicolon {
                        script.push(';');
                    }
                    statements.push(statement);
                }
                (script, statements, offsets)
            })
    }

    /// Fragments that exercise every state of the lexer when concatenated at random.
    fn fragment_soup() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop::sample::select(vec![
                "SELECT",
                "x",
                "1",
                "BEGIN",
                "END",
                "CASE",
                "EXECUTE",
                "STATEMENT",
                "SET",
                ";",
                "'",
                "''",
                "`",
                "\"",
                "--",
                "//",
                "/*",
                "*/",
                "/",
                "-",
                "*",
                " ",
                "\n",
                "\r\n",
                "\r",
                "\t",
                "é",
                "数",
                "(",
                ")",
                "\u{feff}",
                " BEGIN STATEMENT SET;",
                "EXECUTE STATEMENT SET BEGIN ",
                " CASE WHEN x THEN ",
                " END;",
                "INSERT INTO t ",
            ]),
            0..40,
        )
        .prop_map(|fragments| fragments.concat())
    }

    fn assert_statements_point_at_their_text(script: &str, statements: &[Statement]) {
        let positions = character_positions(script);
        let mut after_previous = 0;
        for statement in statements {
            assert!(!statement.text.is_empty());
            assert_eq!(statement.text.trim_matches(is_space), statement.text);
            let start = positions
                .iter()
                .find(|&&(offset, line, column)| {
                    offset >= after_previous
                        && (line, column) == (statement.line, statement.column)
                        && script[offset..].starts_with(&statement.text)
                })
                .map(|&(offset, _, _)| offset)
                .expect("statement text starts at its line and column");
            after_previous = start + statement.text.len();
        }
    }

    proptest! {
        // Failures are reported with their minimal input; no regression file is written.
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn generated_statements_split_back_exactly((script, expected, offsets) in script()) {
            let statements = split_statements(&script).expect("generated script splits");
            let texts: Vec<&str> = statements.iter().map(|s| s.text.as_str()).collect();
            prop_assert_eq!(texts, expected.iter().map(String::as_str).collect::<Vec<_>>());
            let found: Vec<(u32, u32)> = statements.iter().map(|s| (s.line, s.column)).collect();
            let wanted: Vec<(u32, u32)> = offsets.iter().map(|&o| position_of(&script, o)).collect();
            prop_assert_eq!(found, wanted);
        }

        #[test]
        fn rejoined_generated_statements_split_to_a_fixpoint((script, _, _) in script()) {
            let first = texts(&script);
            let rejoined = first.join(";\n");
            prop_assert_eq!(texts(&rejoined), first);
        }

        #[test]
        fn splitting_arbitrary_input_never_panics(input in any::<String>()) {
            if let Ok(statements) = split_statements(&input) {
                assert_statements_point_at_their_text(&input, &statements);
            }
            let _ = classify(&input);
            let _ = parse_set(&input);
        }

        #[test]
        fn splitting_sql_fragments_reports_texts_where_they_are(input in fragment_soup()) {
            match split_statements(&input) {
                Ok(statements) => assert_statements_point_at_their_text(&input, &statements),
                Err(error) => {
                    let (line, column) = error.position();
                    prop_assert!(line >= 1 && column >= 1);
                }
            }
            let _ = classify(&input);
        }

        #[test]
        fn rejoined_split_of_sql_fragments_is_a_fixpoint(input in fragment_soup()) {
            if let Ok(statements) = split_statements(&input) {
                let first: Vec<String> = statements.into_iter().map(|s| s.text).collect();
                let rejoined = first.join(";\n");
                prop_assert_eq!(texts(&rejoined), first);
            }
        }

        #[test]
        fn each_split_statement_splits_to_itself((script, _, _) in script()) {
            for statement in split_statements(&script).expect("generated script splits") {
                prop_assert_eq!(texts(&statement.text), vec![statement.text.clone()]);
            }
        }

        #[test]
        fn parse_set_round_trips_any_key_and_value(key in any::<String>(), value in any::<String>()) {
            let statement = format!("SET '{}' = '{}'", key.replace('\'', "''"), value.replace('\'', "''"));
            prop_assert_eq!(parse_set(&statement), Some((key.clone(), Some(value))));
            let reset = format!("RESET '{}'", key.replace('\'', "''"));
            prop_assert_eq!(parse_set(&reset), Some((key, None)));
        }

        #[test]
        fn classify_ignores_case_and_leading_comments(
            keyword in prop::sample::select(vec![
                "SELECT 1", "WITH a AS (SELECT 1) SELECT 1", "INSERT INTO t SELECT 1",
                "EXECUTE STATEMENT SET BEGIN END", "BEGIN STATEMENT SET", "SET 'a' = 'b'",
                "RESET", "CREATE TABLE t", "DROP VIEW v", "SHOW TABLES", "EXPLAIN SELECT 1",
                "STOP JOB 'x'", "HELP",
            ]),
            uppercase in prop::collection::vec(any::<bool>(), 64),
            leading in prop::collection::vec(separator(), 0..3),
        ) {
            let mixed: String = keyword
                .chars()
                .zip(uppercase.iter().cycle())
                .map(|(c, &upper)| if upper { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
                .collect();
            let statement = format!("{}{mixed}", leading.concat());
            prop_assert_eq!(classify(&statement), classify(keyword));
        }
    }

    #[test]
    fn validation_runs_session_statements_and_explains_the_rest() {
        let explain = |s: &str| match validation_step(s) {
            ValidationStep::Explain(rewrite) => rewrite.text,
            other => panic!("{s}: {other:?}"),
        };
        let run = |s: &str| match validation_step(s) {
            ValidationStep::Run(rewrite) => rewrite.text,
            other => panic!("{s}: {other:?}"),
        };
        assert_eq!(explain("SELECT 1"), "EXPLAIN SELECT 1");
        assert_eq!(
            explain("INSERT INTO t SELECT * FROM s"),
            "EXPLAIN INSERT INTO t SELECT * FROM s"
        );
        assert_eq!(
            explain("EXECUTE STATEMENT SET BEGIN INSERT INTO t SELECT 1; END"),
            "EXPLAIN STATEMENT SET BEGIN INSERT INTO t SELECT 1; END"
        );
        assert_eq!(
            explain("BEGIN STATEMENT SET;\nINSERT INTO t SELECT 1;\nEND"),
            "EXPLAIN STATEMENT SET BEGIN\nINSERT INTO t SELECT 1;\nEND"
        );
        assert_eq!(
            run("CREATE TABLE t (id INT) WITH ('connector'='datagen')"),
            "CREATE TEMPORARY TABLE t (id INT) WITH ('connector'='datagen')"
        );
        assert_eq!(
            run("create view v as select 1"),
            "create TEMPORARY view v as select 1"
        );
        assert_eq!(
            run("CREATE TEMPORARY TABLE t (id INT)"),
            "CREATE TEMPORARY TABLE t (id INT)"
        );
        assert_eq!(run("SET 'a' = 'b'"), "SET 'a' = 'b'");
        assert_eq!(run("USE CATALOG c"), "USE CATALOG c");
        assert_eq!(run("SHOW TABLES"), "SHOW TABLES");
        for skipped in [
            "DROP TABLE t",
            "ALTER TABLE t RENAME TO u",
            "CREATE DATABASE d",
            "CREATE TABLE t AS SELECT * FROM s",
            "STOP JOB 'abc'",
            "TRUNCATE TABLE t",
        ] {
            assert!(
                matches!(validation_step(skipped), ValidationStep::Skip(_)),
                "{skipped}"
            );
        }
    }

    #[test]
    fn positions_map_from_the_text_run_to_the_script() {
        let script = "SET 'a' = 'b';\n\n  SELECT id,\n    k FRM src;";
        let statements = split_statements(script).unwrap();
        let select = &statements[1];
        assert_eq!((select.line, select.column), (3, 3));
        let ValidationStep::Explain(rewrite) = validation_step(&select.text) else {
            panic!("explained");
        };
        // The gateway says where in `EXPLAIN SELECT id,\n    k FRM src` it failed.
        assert_eq!(rewrite.to_statement(2, 11), (2, 11));
        assert_eq!(select.to_script(2, 11), (4, 11));
        assert_eq!(rewrite.to_statement(1, 16), (1, 8));
        assert_eq!(select.to_script(1, 8), (3, 10));
        let create = "CREATE TABLE t (x FOO)";
        let ValidationStep::Run(rewrite) = validation_step(create) else {
            panic!("run");
        };
        // `x FOO` is at column 17 of the statement, 27 of the text run.
        assert_eq!(rewrite.to_statement(1, 27), (1, 17));
        assert_eq!(rewrite.to_statement(1, 3), (1, 3));
    }

    #[test]
    fn positions_are_found_in_gateway_messages() {
        let message = "From line 1, column 15 to line 2, column 27: Object 'x' not found";
        let found = positions_in_message(message);
        assert_eq!(found.len(), 2);
        assert_eq!((found[0].1, found[0].2), (1, 15));
        assert_eq!((found[1].1, found[1].2), (2, 27));
        assert_eq!(&message[found[0].0.clone()], "line 1, column 15");
        assert!(positions_in_message("no line here; line x, column 3").is_empty());
    }
}
