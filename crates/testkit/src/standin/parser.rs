//! A recursive-descent parser for the part of Flink SQL the stand-in understands, with
//! Calcite-shaped error messages.

use super::lexer::{Token, TokenKind, tokenize};
use super::types::{DataType, LogicalType, MAX_LENGTH};

/// A source range, 1-based like Calcite's positions, plus byte offsets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Span {
    pub line: u32,
    pub col: u32,
    pub end_line: u32,
    pub end_col: u32,
    pub start: usize,
    pub end: usize,
}

impl Span {
    fn of(token: &Token) -> Span {
        Span {
            line: token.line,
            col: token.col,
            end_line: token.end_line,
            end_col: token.end_col,
            start: token.start,
            end: token.end,
        }
    }

    fn to(self, other: Span) -> Span {
        Span {
            line: self.line,
            col: self.col,
            end_line: other.end_line,
            end_col: other.end_col,
            start: self.start,
            end: other.end,
        }
    }

    /// `From line a, column b to line c, column d`.
    pub fn context(&self) -> String {
        format!(
            "From line {}, column {} to line {}, column {}",
            self.line, self.col, self.end_line, self.end_col
        )
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    Number(String),
    Str(String),
    Binary(String),
    Bool(bool),
    Null,
    Date(String),
    Time(String),
    Timestamp(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Concat,
    Eq,
    NotEq,
    Lt,
    LtEq,
    Gt,
    GtEq,
    And,
    Or,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    Literal(Literal, Span),
    Column(Ident),
    Cast(Box<Expr>, DataType, Span),
    Array(Vec<Expr>, Span),
    Map(Vec<Expr>, Span),
    Row(Vec<Expr>, Span),
    Call {
        name: String,
        args: Vec<Expr>,
        star: bool,
        distinct: bool,
        span: Span,
    },
    Neg(Box<Expr>, Span),
    Not(Box<Expr>, Span),
    Binary(BinaryOp, Box<Expr>, Box<Expr>, Span),
}

impl Expr {
    pub fn span(&self) -> Span {
        match self {
            Expr::Literal(_, s)
            | Expr::Cast(_, _, s)
            | Expr::Array(_, s)
            | Expr::Map(_, s)
            | Expr::Row(_, s)
            | Expr::Neg(_, s)
            | Expr::Not(_, s)
            | Expr::Binary(_, _, _, s) => *s,
            Expr::Column(ident) => ident.span,
            Expr::Call { span, .. } => *span,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum SelectItem {
    Star(Span),
    Expr(Expr, Option<String>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum FromItem {
    Table {
        name: Ident,
        alias: Option<String>,
    },
    Values {
        rows: Vec<Vec<Expr>>,
        alias: Option<String>,
        columns: Vec<String>,
    },
    Subquery {
        query: Box<Query>,
        alias: Option<String>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct Select {
    pub items: Vec<SelectItem>,
    pub from: Option<FromItem>,
    pub filter: Option<Expr>,
    pub group_by: Vec<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum QueryBody {
    Select(Select),
    Values(Vec<Vec<Expr>>),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    pub body: QueryBody,
    pub limit: Option<u64>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Insert {
    pub table: Ident,
    pub columns: Option<Vec<Ident>>,
    pub source: Query,
    pub overwrite: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub struct CreateTable {
    pub name: Ident,
    pub columns: Vec<(String, DataType)>,
    pub options: Vec<(String, String)>,
    pub if_not_exists: bool,
    pub temporary: bool,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ShowKind {
    Tables,
    Views,
    Jobs,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Statement {
    Query(Query),
    Insert(Insert),
    InsertSet(Vec<Insert>),
    CreateTable(CreateTable),
    CreateView {
        name: Ident,
        query: Query,
        if_not_exists: bool,
    },
    Drop {
        name: Ident,
        if_exists: bool,
        view: bool,
    },
    Set(Option<(String, String)>),
    Reset(Option<String>),
    StopJob {
        job_id: String,
        savepoint: bool,
        drain: bool,
    },
    Show(ShowKind),
    Describe(Ident),
    /// `EXPLAIN [PLAN FOR | detail, ...] <query | insert | STATEMENT SET BEGIN ... END>`.
    Explain(Box<Statement>),
}

/// Why a statement did not parse.
#[derive(Clone, Debug, PartialEq)]
pub enum ParseError {
    /// `Encountered "x" at line l, column c.` plus what was expected.
    Unexpected {
        encountered: String,
        line: u32,
        col: u32,
        expected: Vec<String>,
    },
    /// Calcite's "Non-query expression encountered in illegal context".
    NonQuery,
    Lexical(String),
    /// Valid Flink SQL this parser does not implement.
    Unsupported(String),
}

impl ParseError {
    pub fn message(&self) -> String {
        match self {
            ParseError::Unexpected {
                encountered,
                line,
                col,
                expected,
            } => {
                let mut m = format!("Encountered \"{encountered}\" at line {line}, column {col}.");
                if !expected.is_empty() {
                    m.push_str(if expected.len() == 1 {
                        "\nWas expecting:\n"
                    } else {
                        "\nWas expecting one of:\n"
                    });
                    for e in expected {
                        m.push_str("    ");
                        m.push_str(e);
                        m.push_str(" ...\n");
                    }
                    m.pop();
                }
                m
            }
            ParseError::NonQuery => "Non-query expression encountered in illegal context".into(),
            ParseError::Lexical(message) => message.clone(),
            ParseError::Unsupported(message) => message.clone(),
        }
    }
}

const STATEMENT_KEYWORDS: [&str; 28] = [
    "SELECT", "VALUES", "WITH", "INSERT", "EXECUTE", "CREATE", "DROP", "ALTER", "SET", "RESET",
    "STOP", "SHOW", "DESCRIBE", "DESC", "USE", "EXPLAIN", "BEGIN", "END", "LOAD", "UNLOAD", "ADD",
    "REMOVE", "TRUNCATE", "DELETE", "UPDATE", "ANALYZE", "CALL", "COMPILE",
];

/// Words that cannot be used as plain identifiers or aliases.
const RESERVED: [&str; 40] = [
    "SELECT", "FROM", "WHERE", "GROUP", "BY", "HAVING", "ORDER", "LIMIT", "UNION", "AS", "AND",
    "OR", "NOT", "NULL", "TRUE", "FALSE", "IS", "IN", "LIKE", "BETWEEN", "CASE", "WHEN", "THEN",
    "ELSE", "END", "CAST", "INSERT", "INTO", "VALUES", "TABLE", "CREATE", "WITH", "ON", "JOIN",
    "DISTINCT", "ALL", "SET", "OFFSET", "FETCH", "WINDOW",
];

struct Parser<'a> {
    tokens: &'a [Token],
    pos: usize,
}

type Result<T> = std::result::Result<T, ParseError>;

/// Parses one statement (the caller has already rejected scripts with several).
pub fn parse_statement(text: &str) -> Result<Statement> {
    let tokens = tokenize(text).map_err(|e| ParseError::Lexical(e.message))?;
    let mut p = Parser {
        tokens: &tokens,
        pos: 0,
    };
    let first = p.peek().clone();
    let statement = match first.kind {
        TokenKind::Word => {
            let word = first.text.to_ascii_uppercase();
            if !STATEMENT_KEYWORDS.contains(&word.as_str()) {
                return Err(ParseError::NonQuery);
            }
            p.statement()?
        }
        TokenKind::Symbol if first.text == "(" => Statement::Query(p.query()?),
        TokenKind::Eof => return Err(p.unexpected(&["\"SELECT\"", "\"INSERT\"", "\"CREATE\""])),
        TokenKind::Symbol => return Err(p.unexpected(&["\"SELECT\"", "\"INSERT\"", "\"CREATE\""])),
        _ => return Err(ParseError::NonQuery),
    };
    if p.peek().is_symbol(";") {
        p.pos += 1;
    }
    if p.peek().kind != TokenKind::Eof {
        return Err(p.unexpected(&["<EOF>"]));
    }
    Ok(statement)
}

impl<'a> Parser<'a> {
    fn peek(&self) -> &'a Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &'a Token {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> &'a Token {
        let t = self.peek();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn previous(&self) -> &'a Token {
        &self.tokens[self.pos.saturating_sub(1)]
    }

    fn unexpected(&self, expected: &[&str]) -> ParseError {
        let t = self.peek();
        ParseError::Unexpected {
            encountered: t.encountered(),
            line: t.line,
            col: t.col,
            expected: expected.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn eat_word(&mut self, word: &str) -> bool {
        if self.peek().is_word(word) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn eat_symbol(&mut self, symbol: &str) -> bool {
        if self.peek().is_symbol(symbol) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn expect_word(&mut self, word: &str) -> Result<&'a Token> {
        if self.peek().is_word(word) {
            Ok(self.next())
        } else {
            Err(self.unexpected(&[&format!("\"{word}\"")]))
        }
    }

    fn expect_symbol(&mut self, symbol: &str) -> Result<&'a Token> {
        if self.peek().is_symbol(symbol) {
            Ok(self.next())
        } else {
            Err(self.unexpected(&[&format!("\"{symbol}\"")]))
        }
    }

    fn expect_string(&mut self) -> Result<String> {
        if self.peek().kind == TokenKind::Str {
            Ok(self.next().text.clone())
        } else {
            Err(self.unexpected(&["<QUOTED_STRING>"]))
        }
    }

    /// Whether the next token can be an alias written without `AS`.
    fn at_alias(&self) -> bool {
        matches!(self.peek().kind, TokenKind::Word | TokenKind::QuotedIdent)
            && !RESERVED.contains(&self.peek().text.to_ascii_uppercase().as_str())
    }

    fn identifier(&mut self) -> Result<Ident> {
        let t = self.peek();
        match t.kind {
            TokenKind::QuotedIdent => {
                self.pos += 1;
                Ok(Ident {
                    name: t.text.clone(),
                    span: Span::of(t),
                })
            }
            TokenKind::Word if !RESERVED.contains(&t.text.to_ascii_uppercase().as_str()) => {
                self.pos += 1;
                Ok(Ident {
                    name: t.text.clone(),
                    span: Span::of(t),
                })
            }
            _ => Err(self.unexpected(&["<IDENTIFIER>", "<QUOTED_IDENTIFIER>"])),
        }
    }

    /// `a.b.c`: the last part names the object (catalog and database are the defaults).
    fn compound_identifier(&mut self) -> Result<Ident> {
        let mut ident = self.identifier()?;
        while self.peek().is_symbol(".") {
            self.pos += 1;
            let next = self.identifier()?;
            ident = Ident {
                name: next.name,
                span: ident.span.to(next.span),
            };
        }
        Ok(ident)
    }

    fn statement(&mut self) -> Result<Statement> {
        let t = self.peek();
        let word = t.text.to_ascii_uppercase();
        match word.as_str() {
            "SELECT" | "VALUES" | "WITH" => Ok(Statement::Query(self.query()?)),
            "INSERT" => Ok(Statement::Insert(self.insert()?)),
            "EXPLAIN" => {
                self.pos += 1;
                if self.eat_word("PLAN") {
                    self.expect_word("FOR")?;
                } else {
                    const DETAILS: [&str; 4] = [
                        "ESTIMATED_COST",
                        "CHANGELOG_MODE",
                        "JSON_EXECUTION_PLAN",
                        "PLAN_ADVICE",
                    ];
                    while DETAILS.iter().any(|d| self.peek().is_word(d)) {
                        self.pos += 1;
                        if !self.peek().is_symbol(",") {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                let t = self.peek();
                let inner = match t.text.to_ascii_uppercase().as_str() {
                    "SELECT" | "VALUES" | "WITH" => Statement::Query(self.query()?),
                    "INSERT" => Statement::Insert(self.insert()?),
                    "STATEMENT" => {
                        self.pos += 1;
                        self.expect_word("SET")?;
                        self.expect_word("BEGIN")?;
                        let mut inserts = Vec::new();
                        while !self.peek().is_word("END") {
                            inserts.push(self.insert()?);
                            self.expect_symbol(";")?;
                        }
                        self.expect_word("END")?;
                        Statement::InsertSet(inserts)
                    }
                    _ if t.is_symbol("(") => Statement::Query(self.query()?),
                    _ => {
                        return Err(self.unexpected(&[
                            "\"SELECT\"",
                            "\"INSERT\"",
                            "\"STATEMENT\"",
                        ]));
                    }
                };
                Ok(Statement::Explain(Box::new(inner)))
            }
            "EXECUTE" => {
                self.pos += 1;
                if self.eat_word("STATEMENT") {
                    self.expect_word("SET")?;
                    self.expect_word("BEGIN")?;
                    let mut inserts = Vec::new();
                    while !self.peek().is_word("END") {
                        inserts.push(self.insert()?);
                        self.expect_symbol(";")?;
                    }
                    self.expect_word("END")?;
                    Ok(Statement::InsertSet(inserts))
                } else if self.peek().is_word("INSERT") {
                    Ok(Statement::Insert(self.insert()?))
                } else if self.peek().is_word("SELECT") {
                    Ok(Statement::Query(self.query()?))
                } else {
                    Err(self.unexpected(&["\"STATEMENT\"", "\"INSERT\""]))
                }
            }
            "CREATE" => self.create(),
            "DROP" => {
                self.pos += 1;
                let _ = self.eat_word("TEMPORARY");
                let view = if self.eat_word("VIEW") {
                    true
                } else {
                    self.expect_word("TABLE")?;
                    false
                };
                let if_exists = if self.eat_word("IF") {
                    self.expect_word("EXISTS")?;
                    true
                } else {
                    false
                };
                let name = self.compound_identifier()?;
                Ok(Statement::Drop {
                    name,
                    if_exists,
                    view,
                })
            }
            "SET" => {
                self.pos += 1;
                if self.peek().kind == TokenKind::Eof || self.peek().is_symbol(";") {
                    return Ok(Statement::Set(None));
                }
                let key = self.expect_string()?;
                self.expect_symbol("=")?;
                let value = self.expect_string()?;
                Ok(Statement::Set(Some((key, value))))
            }
            "RESET" => {
                self.pos += 1;
                if self.peek().kind == TokenKind::Eof || self.peek().is_symbol(";") {
                    return Ok(Statement::Reset(None));
                }
                Ok(Statement::Reset(Some(self.expect_string()?)))
            }
            "STOP" => {
                self.pos += 1;
                self.expect_word("JOB")?;
                let job_id = self.expect_string()?;
                let mut savepoint = false;
                let mut drain = false;
                while self.eat_word("WITH") {
                    if self.eat_word("SAVEPOINT") {
                        savepoint = true;
                    } else if self.eat_word("DRAIN") {
                        drain = true;
                    } else {
                        return Err(self.unexpected(&["\"SAVEPOINT\"", "\"DRAIN\""]));
                    }
                }
                Ok(Statement::StopJob {
                    job_id,
                    savepoint,
                    drain,
                })
            }
            "SHOW" => {
                self.pos += 1;
                let kind = if self.eat_word("TABLES") {
                    ShowKind::Tables
                } else if self.eat_word("VIEWS") {
                    ShowKind::Views
                } else if self.eat_word("JOBS") {
                    ShowKind::Jobs
                } else {
                    return Err(self.unexpected(&[
                        "\"CATALOGS\"",
                        "\"CURRENT\"",
                        "\"DATABASES\"",
                        "\"JOBS\"",
                        "\"TABLES\"",
                        "\"VIEWS\"",
                    ]));
                };
                Ok(Statement::Show(kind))
            }
            "DESCRIBE" | "DESC" => {
                self.pos += 1;
                let _ = self.eat_word("TABLE");
                Ok(Statement::Describe(self.compound_identifier()?))
            }
            other => Err(ParseError::Unsupported(format!(
                "{other} statements are not supported"
            ))),
        }
    }

    fn create(&mut self) -> Result<Statement> {
        self.expect_word("CREATE")?;
        let temporary = self.eat_word("TEMPORARY");
        if self.eat_word("VIEW") {
            let if_not_exists = self.if_not_exists()?;
            let name = self.compound_identifier()?;
            self.expect_word("AS")?;
            let query = self.query()?;
            return Ok(Statement::CreateView {
                name,
                query,
                if_not_exists,
            });
        }
        if !self.peek().is_word("TABLE") {
            return Err(self.unexpected(&["\"TABLE\"", "\"VIEW\"", "\"TEMPORARY\""]));
        }
        self.pos += 1;
        let if_not_exists = self.if_not_exists()?;
        let name = self.compound_identifier()?;
        self.expect_symbol("(")?;
        let mut columns = Vec::new();
        loop {
            if self.peek().is_word("WATERMARK") {
                // WATERMARK FOR col AS expr: the stand-in keeps no event time.
                self.pos += 1;
                self.expect_word("FOR")?;
                self.identifier()?;
                self.expect_word("AS")?;
                self.expression()?;
            } else if self.peek().is_word("PRIMARY") || self.peek().is_word("CONSTRAINT") {
                if self.eat_word("CONSTRAINT") {
                    self.identifier()?;
                }
                self.expect_word("PRIMARY")?;
                self.expect_word("KEY")?;
                self.expect_symbol("(")?;
                loop {
                    self.identifier()?;
                    if !self.eat_symbol(",") {
                        break;
                    }
                }
                self.expect_symbol(")")?;
                self.expect_word("NOT")?;
                self.expect_word("ENFORCED")?;
            } else {
                let column = self.identifier()?;
                let ty = self.data_type()?;
                if self.eat_word("PRIMARY") {
                    self.expect_word("KEY")?;
                    self.expect_word("NOT")?;
                    self.expect_word("ENFORCED")?;
                }
                if self.eat_word("COMMENT") {
                    self.expect_string()?;
                }
                columns.push((column.name, ty));
            }
            if self.eat_symbol(",") {
                continue;
            }
            self.expect_symbol(")")?;
            break;
        }
        if self.eat_word("COMMENT") {
            self.expect_string()?;
        }
        if self.eat_word("PARTITIONED") {
            self.expect_word("BY")?;
            self.expect_symbol("(")?;
            loop {
                self.identifier()?;
                if !self.eat_symbol(",") {
                    break;
                }
            }
            self.expect_symbol(")")?;
        }
        let mut options = Vec::new();
        if self.eat_word("WITH") {
            self.expect_symbol("(")?;
            if !self.peek().is_symbol(")") {
                loop {
                    let key = self.expect_string()?;
                    self.expect_symbol("=")?;
                    let value = self.expect_string()?;
                    options.push((key, value));
                    if !self.eat_symbol(",") {
                        break;
                    }
                }
            }
            self.expect_symbol(")")?;
        }
        Ok(Statement::CreateTable(CreateTable {
            name,
            columns,
            options,
            if_not_exists,
            temporary,
        }))
    }

    fn if_not_exists(&mut self) -> Result<bool> {
        if self.eat_word("IF") {
            self.expect_word("NOT")?;
            self.expect_word("EXISTS")?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn insert(&mut self) -> Result<Insert> {
        self.expect_word("INSERT")?;
        let overwrite = if self.eat_word("OVERWRITE") {
            true
        } else {
            self.expect_word("INTO")?;
            false
        };
        if overwrite {
            let _ = self.eat_word("TABLE");
        }
        let table = self.compound_identifier()?;
        let columns = if self.peek().is_symbol("(")
            && !self.peek_at(1).is_word("SELECT")
            && !self.peek_at(1).is_word("VALUES")
        {
            self.pos += 1;
            let mut cols = vec![self.identifier()?];
            while self.eat_symbol(",") {
                cols.push(self.identifier()?);
            }
            self.expect_symbol(")")?;
            Some(cols)
        } else {
            None
        };
        let source = self.query()?;
        Ok(Insert {
            table,
            columns,
            source,
            overwrite,
        })
    }

    fn query(&mut self) -> Result<Query> {
        let start = Span::of(self.peek());
        if self.eat_symbol("(") {
            let inner = self.query()?;
            self.expect_symbol(")")?;
            return Ok(inner);
        }
        let body = if self.eat_word("VALUES") {
            QueryBody::Values(self.values_rows()?)
        } else if self.peek().is_word("SELECT") {
            QueryBody::Select(self.select()?)
        } else if self.peek().is_word("WITH") {
            return Err(ParseError::Unsupported(
                "WITH clauses are not supported".into(),
            ));
        } else {
            return Err(self.unexpected(&["\"SELECT\"", "\"VALUES\"", "\"WITH\"", "\"(\""]));
        };
        let mut limit = None;
        if self.peek().is_word("ORDER") {
            return Err(ParseError::Unsupported("ORDER BY is not supported".into()));
        }
        if self.eat_word("LIMIT") {
            let t = self.peek();
            if t.kind != TokenKind::Number {
                return Err(self.unexpected(&["<UNSIGNED_INTEGER_LITERAL>", "\"ALL\""]));
            }
            self.pos += 1;
            limit = Some(
                t.text
                    .parse()
                    .map_err(|_| self.unexpected(&["<UNSIGNED_INTEGER_LITERAL>"]))?,
            );
        }
        if self.peek().is_word("UNION") {
            return Err(ParseError::Unsupported("UNION is not supported".into()));
        }
        let end = Span::of(self.previous());
        Ok(Query {
            body,
            limit,
            span: start.to(end),
        })
    }

    fn values_rows(&mut self) -> Result<Vec<Vec<Expr>>> {
        let mut rows = Vec::new();
        loop {
            let _ = self.eat_word("ROW");
            self.expect_symbol("(")?;
            let mut row = vec![self.expression()?];
            while self.eat_symbol(",") {
                row.push(self.expression()?);
            }
            self.expect_symbol(")")?;
            rows.push(row);
            if !self.eat_symbol(",") {
                break;
            }
        }
        Ok(rows)
    }

    fn select(&mut self) -> Result<Select> {
        self.expect_word("SELECT")?;
        let _ = self.eat_word("ALL");
        if self.peek().is_word("DISTINCT") {
            return Err(ParseError::Unsupported(
                "SELECT DISTINCT is not supported".into(),
            ));
        }
        let mut items = Vec::new();
        loop {
            if self.peek().is_symbol("*") {
                let t = self.next();
                items.push(SelectItem::Star(Span::of(t)));
            } else {
                if self.peek().kind == TokenKind::Eof
                    || self.peek().is_word("FROM")
                    || self.peek().is_symbol(",")
                {
                    return Err(self.unexpected(&[
                        "\"ABS\"",
                        "\"ALL\"",
                        "\"ARRAY\"",
                        "\"CASE\"",
                        "\"CAST\"",
                        "\"DISTINCT\"",
                        "<IDENTIFIER>",
                        "<UNSIGNED_INTEGER_LITERAL>",
                    ]));
                }
                let expr = self.expression()?;
                let alias = if self.eat_word("AS") || self.at_alias() {
                    Some(self.identifier()?.name)
                } else {
                    None
                };
                items.push(SelectItem::Expr(expr, alias));
            }
            if !self.eat_symbol(",") {
                break;
            }
        }
        let from = if self.eat_word("FROM") {
            Some(self.table_reference()?)
        } else {
            None
        };
        if self.peek().is_word("JOIN")
            || self.peek().is_word("LEFT")
            || self.peek().is_word("INNER")
            || self.peek().is_symbol(",")
        {
            return Err(ParseError::Unsupported("joins are not supported".into()));
        }
        let filter = if self.eat_word("WHERE") {
            Some(self.expression()?)
        } else {
            None
        };
        let mut group_by = Vec::new();
        if self.eat_word("GROUP") {
            self.expect_word("BY")?;
            group_by.push(self.expression()?);
            while self.eat_symbol(",") {
                group_by.push(self.expression()?);
            }
        }
        if self.peek().is_word("HAVING") {
            return Err(ParseError::Unsupported("HAVING is not supported".into()));
        }
        Ok(Select {
            items,
            from,
            filter,
            group_by,
        })
    }

    fn table_reference(&mut self) -> Result<FromItem> {
        if self.eat_symbol("(") {
            if self.eat_word("VALUES") {
                let rows = self.values_rows()?;
                self.expect_symbol(")")?;
                let (alias, columns) = self.alias_with_columns()?;
                return Ok(FromItem::Values {
                    rows,
                    alias,
                    columns,
                });
            }
            let query = self.query()?;
            self.expect_symbol(")")?;
            let (alias, _) = self.alias_with_columns()?;
            return Ok(FromItem::Subquery {
                query: Box::new(query),
                alias,
            });
        }
        let name = self.compound_identifier()?;
        let (alias, _) = self.alias_with_columns()?;
        Ok(FromItem::Table { name, alias })
    }

    fn alias_with_columns(&mut self) -> Result<(Option<String>, Vec<String>)> {
        let alias = if self.eat_word("AS")
            || (self.at_alias() && !self.peek().is_word("LEFT") && !self.peek().is_word("INNER"))
        {
            Some(self.identifier()?.name)
        } else {
            None
        };
        let mut columns = Vec::new();
        if alias.is_some() && self.eat_symbol("(") {
            columns.push(self.identifier()?.name);
            while self.eat_symbol(",") {
                columns.push(self.identifier()?.name);
            }
            self.expect_symbol(")")?;
        }
        Ok((alias, columns))
    }

    // ---------------------------------------------------------------- expressions

    pub fn expression(&mut self) -> Result<Expr> {
        self.or()
    }

    fn or(&mut self) -> Result<Expr> {
        let mut left = self.and()?;
        while self.eat_word("OR") {
            let right = self.and()?;
            let span = left.span().to(right.span());
            left = Expr::Binary(BinaryOp::Or, Box::new(left), Box::new(right), span);
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr> {
        let mut left = self.not()?;
        while self.eat_word("AND") {
            let right = self.not()?;
            let span = left.span().to(right.span());
            left = Expr::Binary(BinaryOp::And, Box::new(left), Box::new(right), span);
        }
        Ok(left)
    }

    fn not(&mut self) -> Result<Expr> {
        if self.peek().is_word("NOT") {
            let t = self.next();
            let inner = self.not()?;
            let span = Span::of(t).to(inner.span());
            return Ok(Expr::Not(Box::new(inner), span));
        }
        self.comparison()
    }

    fn comparison(&mut self) -> Result<Expr> {
        let left = self.concat()?;
        let t = self.peek();
        let op = match t.text.as_str() {
            "=" if t.kind == TokenKind::Symbol => Some(BinaryOp::Eq),
            "<>" | "!=" if t.kind == TokenKind::Symbol => Some(BinaryOp::NotEq),
            "<" if t.kind == TokenKind::Symbol => Some(BinaryOp::Lt),
            "<=" if t.kind == TokenKind::Symbol => Some(BinaryOp::LtEq),
            ">" if t.kind == TokenKind::Symbol => Some(BinaryOp::Gt),
            ">=" if t.kind == TokenKind::Symbol => Some(BinaryOp::GtEq),
            _ => None,
        };
        if let Some(op) = op {
            self.pos += 1;
            let right = self.concat()?;
            let span = left.span().to(right.span());
            return Ok(Expr::Binary(op, Box::new(left), Box::new(right), span));
        }
        Ok(left)
    }

    fn concat(&mut self) -> Result<Expr> {
        let mut left = self.additive()?;
        while self.eat_symbol("||") {
            let right = self.additive()?;
            let span = left.span().to(right.span());
            left = Expr::Binary(BinaryOp::Concat, Box::new(left), Box::new(right), span);
        }
        Ok(left)
    }

    fn additive(&mut self) -> Result<Expr> {
        let mut left = self.multiplicative()?;
        loop {
            let op = if self.peek().is_symbol("+") {
                BinaryOp::Add
            } else if self.peek().is_symbol("-") {
                BinaryOp::Sub
            } else {
                break;
            };
            self.pos += 1;
            let right = self.multiplicative()?;
            let span = left.span().to(right.span());
            left = Expr::Binary(op, Box::new(left), Box::new(right), span);
        }
        Ok(left)
    }

    fn multiplicative(&mut self) -> Result<Expr> {
        let mut left = self.unary()?;
        loop {
            let op = if self.peek().is_symbol("*") {
                BinaryOp::Mul
            } else if self.peek().is_symbol("/") {
                BinaryOp::Div
            } else if self.peek().is_symbol("%") {
                BinaryOp::Mod
            } else {
                break;
            };
            self.pos += 1;
            let right = self.unary()?;
            let span = left.span().to(right.span());
            left = Expr::Binary(op, Box::new(left), Box::new(right), span);
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr> {
        if self.peek().is_symbol("-") {
            let t = self.next();
            let inner = self.unary()?;
            let span = Span::of(t).to(inner.span());
            if let Expr::Literal(Literal::Number(n), _) = &inner {
                return Ok(Expr::Literal(Literal::Number(format!("-{n}")), span));
            }
            return Ok(Expr::Neg(Box::new(inner), span));
        }
        if self.peek().is_symbol("+") {
            self.pos += 1;
            return self.unary();
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr> {
        let t = self.peek();
        let span = Span::of(t);
        match t.kind {
            TokenKind::Number => {
                self.pos += 1;
                Ok(Expr::Literal(Literal::Number(t.text.clone()), span))
            }
            TokenKind::Str => {
                self.pos += 1;
                let mut text = t.text.clone();
                let mut span = span;
                // adjacent literals concatenate: 'a' 'b'
                while self.peek().kind == TokenKind::Str {
                    let next = self.next();
                    text.push_str(&next.text);
                    span = span.to(Span::of(next));
                }
                Ok(Expr::Literal(Literal::Str(text), span))
            }
            TokenKind::Binary => {
                self.pos += 1;
                Ok(Expr::Literal(Literal::Binary(t.text.clone()), span))
            }
            TokenKind::QuotedIdent => {
                let ident = self.compound_identifier()?;
                Ok(Expr::Column(ident))
            }
            TokenKind::Symbol if t.text == "(" => {
                self.pos += 1;
                let first = self.expression()?;
                if self.peek().is_symbol(",") {
                    // (a, b): an implicit ROW
                    let mut items = vec![first];
                    while self.eat_symbol(",") {
                        items.push(self.expression()?);
                    }
                    let end = self.expect_symbol(")")?;
                    return Ok(Expr::Row(items, span.to(Span::of(end))));
                }
                self.expect_symbol(")")?;
                Ok(first)
            }
            TokenKind::Word => self.word_expression(),
            _ => Err(self.unexpected(&[
                "\"ABS\"",
                "\"ARRAY\"",
                "\"CASE\"",
                "\"CAST\"",
                "<IDENTIFIER>",
                "<UNSIGNED_INTEGER_LITERAL>",
                "<QUOTED_STRING>",
            ])),
        }
    }

    fn word_expression(&mut self) -> Result<Expr> {
        let t = self.peek();
        let span = Span::of(t);
        let upper = t.text.to_ascii_uppercase();
        match upper.as_str() {
            "TRUE" | "FALSE" => {
                self.pos += 1;
                Ok(Expr::Literal(Literal::Bool(upper == "TRUE"), span))
            }
            "NULL" => {
                self.pos += 1;
                Ok(Expr::Literal(Literal::Null, span))
            }
            "DATE" | "TIME" | "TIMESTAMP" if self.peek_at(1).kind == TokenKind::Str => {
                self.pos += 1;
                let value = self.next();
                let lit = match upper.as_str() {
                    "DATE" => Literal::Date(value.text.clone()),
                    "TIME" => Literal::Time(value.text.clone()),
                    _ => Literal::Timestamp(value.text.clone()),
                };
                Ok(Expr::Literal(lit, span.to(Span::of(value))))
            }
            "CAST" | "TRY_CAST" => {
                self.pos += 1;
                self.expect_symbol("(")?;
                let inner = self.expression()?;
                self.expect_word("AS")?;
                let ty = self.data_type()?;
                let end = self.expect_symbol(")")?;
                Ok(Expr::Cast(Box::new(inner), ty, span.to(Span::of(end))))
            }
            "ARRAY" if self.peek_at(1).is_symbol("[") => {
                self.pos += 2;
                let mut items = Vec::new();
                if !self.peek().is_symbol("]") {
                    items.push(self.expression()?);
                    while self.eat_symbol(",") {
                        items.push(self.expression()?);
                    }
                }
                let end = self.expect_symbol("]")?;
                Ok(Expr::Array(items, span.to(Span::of(end))))
            }
            "MAP" if self.peek_at(1).is_symbol("[") => {
                self.pos += 2;
                let mut items = Vec::new();
                if !self.peek().is_symbol("]") {
                    items.push(self.expression()?);
                    while self.eat_symbol(",") {
                        items.push(self.expression()?);
                    }
                }
                let end = self.expect_symbol("]")?;
                Ok(Expr::Map(items, span.to(Span::of(end))))
            }
            "ROW" if self.peek_at(1).is_symbol("(") => {
                self.pos += 2;
                let mut items = Vec::new();
                if !self.peek().is_symbol(")") {
                    items.push(self.expression()?);
                    while self.eat_symbol(",") {
                        items.push(self.expression()?);
                    }
                }
                let end = self.expect_symbol(")")?;
                Ok(Expr::Row(items, span.to(Span::of(end))))
            }
            _ if self.peek_at(1).is_symbol("(") => {
                if RESERVED.contains(&upper.as_str()) {
                    return Err(self.unexpected(&["<IDENTIFIER>"]));
                }
                self.pos += 2;
                let mut args = Vec::new();
                let mut star = false;
                let distinct = self.eat_word("DISTINCT");
                if self.peek().is_symbol("*") {
                    self.pos += 1;
                    star = true;
                } else if !self.peek().is_symbol(")") {
                    args.push(self.expression()?);
                    while self.eat_symbol(",") {
                        args.push(self.expression()?);
                    }
                }
                let end = self.expect_symbol(")")?;
                Ok(Expr::Call {
                    name: upper,
                    args,
                    star,
                    distinct,
                    span: span.to(Span::of(end)),
                })
            }
            _ => {
                if RESERVED.contains(&upper.as_str()) {
                    return Err(self.unexpected(&[
                        "\"ABS\"",
                        "\"ARRAY\"",
                        "\"CASE\"",
                        "\"CAST\"",
                        "<IDENTIFIER>",
                        "<UNSIGNED_INTEGER_LITERAL>",
                    ]));
                }
                let ident = self.compound_identifier()?;
                Ok(Expr::Column(ident))
            }
        }
    }

    // ---------------------------------------------------------------- types

    fn length(&mut self, default: u32) -> Result<u32> {
        if self.eat_symbol("(") {
            let t = self.peek();
            if t.kind != TokenKind::Number {
                return Err(self.unexpected(&["<UNSIGNED_INTEGER_LITERAL>"]));
            }
            self.pos += 1;
            let n = t
                .text
                .parse()
                .map_err(|_| self.unexpected(&["<UNSIGNED_INTEGER_LITERAL>"]))?;
            self.expect_symbol(")")?;
            Ok(n)
        } else {
            Ok(default)
        }
    }

    pub fn data_type(&mut self) -> Result<DataType> {
        let t = self.peek();
        if t.kind != TokenKind::Word {
            return Err(self.unexpected(&["\"INT\"", "\"STRING\"", "<IDENTIFIER>"]));
        }
        self.pos += 1;
        let upper = t.text.to_ascii_uppercase();
        let logical = match upper.as_str() {
            "INT" | "INTEGER" => LogicalType::Integer,
            "BIGINT" => LogicalType::BigInt,
            "SMALLINT" => LogicalType::SmallInt,
            "TINYINT" => LogicalType::TinyInt,
            "BOOLEAN" => LogicalType::Boolean,
            "FLOAT" | "REAL" => LogicalType::Float,
            "DOUBLE" => {
                let _ = self.eat_word("PRECISION");
                LogicalType::Double
            }
            "DECIMAL" | "DEC" | "NUMERIC" => {
                if self.eat_symbol("(") {
                    let p = self.next().text.parse().unwrap_or(10);
                    let s = if self.eat_symbol(",") {
                        self.next().text.parse().unwrap_or(0)
                    } else {
                        0
                    };
                    self.expect_symbol(")")?;
                    LogicalType::Decimal {
                        precision: p,
                        scale: s,
                    }
                } else {
                    LogicalType::Decimal {
                        precision: 10,
                        scale: 0,
                    }
                }
            }
            "STRING" => LogicalType::Varchar(MAX_LENGTH),
            "VARCHAR" => LogicalType::Varchar(self.length(1)?),
            "CHAR" | "CHARACTER" => {
                if self.eat_word("VARYING") {
                    LogicalType::Varchar(self.length(1)?)
                } else {
                    LogicalType::Char(self.length(1)?)
                }
            }
            "BYTES" => LogicalType::Varbinary(MAX_LENGTH),
            "VARBINARY" => LogicalType::Varbinary(self.length(1)?),
            "BINARY" => LogicalType::Binary(self.length(1)?),
            "DATE" => LogicalType::Date,
            "TIME" => {
                let p = self.length(0)?;
                if self.eat_word("WITHOUT") {
                    self.expect_word("TIME")?;
                    self.expect_word("ZONE")?;
                }
                LogicalType::Time(p)
            }
            "TIMESTAMP" => {
                let p = self.length(6)?;
                if self.eat_word("WITH") {
                    self.expect_word("LOCAL")?;
                    self.expect_word("TIME")?;
                    self.expect_word("ZONE")?;
                    LogicalType::TimestampLtz(p)
                } else {
                    if self.eat_word("WITHOUT") {
                        self.expect_word("TIME")?;
                        self.expect_word("ZONE")?;
                    }
                    LogicalType::Timestamp(p)
                }
            }
            "TIMESTAMP_LTZ" => LogicalType::TimestampLtz(self.length(6)?),
            "ARRAY" => {
                self.expect_symbol("<")?;
                let element = self.data_type()?;
                self.expect_symbol(">")?;
                LogicalType::Array(Box::new(element))
            }
            "MAP" => {
                self.expect_symbol("<")?;
                let key = self.data_type()?;
                self.expect_symbol(",")?;
                let value = self.data_type()?;
                self.expect_symbol(">")?;
                LogicalType::Map(Box::new(key), Box::new(value))
            }
            "ROW" => {
                let close = if self.eat_symbol("<") {
                    ">"
                } else {
                    self.expect_symbol("(")?;
                    ")"
                };
                let mut fields = Vec::new();
                if !self.peek().is_symbol(close) {
                    loop {
                        let name = self.identifier()?.name;
                        let ty = self.data_type()?;
                        fields.push((name, ty));
                        if !self.eat_symbol(",") {
                            break;
                        }
                    }
                }
                self.expect_symbol(close)?;
                LogicalType::Row(fields)
            }
            _ => {
                self.pos -= 1;
                return Err(self.unexpected(&[
                    "\"ARRAY\"",
                    "\"BIGINT\"",
                    "\"BINARY\"",
                    "\"BOOLEAN\"",
                    "\"BYTES\"",
                    "\"CHAR\"",
                    "\"DATE\"",
                    "\"DECIMAL\"",
                    "\"DOUBLE\"",
                    "\"FLOAT\"",
                    "\"INT\"",
                    "\"MAP\"",
                    "\"ROW\"",
                    "\"STRING\"",
                    "\"TIMESTAMP\"",
                    "\"VARCHAR\"",
                ]));
            }
        };
        let mut ty = DataType::nullable(logical);
        // `INT ARRAY` is another spelling of ARRAY<INT>
        while self.peek().is_word("ARRAY") {
            self.pos += 1;
            ty = DataType::nullable(LogicalType::Array(Box::new(ty)));
        }
        if self.peek().is_word("NOT") && self.peek_at(1).is_word("NULL") {
            self.pos += 2;
            ty.nullable = false;
        } else if self.eat_word("NULL") {
            ty.nullable = true;
        }
        Ok(ty)
    }
}
