//! `complete-statement`: keyword and table-name hints for the word under the cursor.

use super::lexer::{TokenKind, tokenize};

const STATEMENT_START: [&str; 16] = [
    "ALTER", "ANALYZE", "BEGIN", "CREATE", "DELETE", "DESCRIBE", "DROP", "EXECUTE", "EXPLAIN",
    "INSERT", "RESET", "SELECT", "SET", "SHOW", "STOP", "USE",
];
const AFTER_SHOW: [&str; 16] = [
    "CATALOGS",
    "COLUMNS",
    "CREATE",
    "CURRENT",
    "DATABASES",
    "FULL",
    "FUNCTIONS",
    "JARS",
    "JOBS",
    "MODULES",
    "PARTITIONS",
    "PROCEDURES",
    "TABLES",
    "USER",
    "VIEWS",
    "MATERIALIZED",
];
const AFTER_SELECT_LIST: [&str; 8] = [
    "AS",
    "FROM",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "ORDER",
    "LIMIT",
    "OFFSET",
];
const AFTER_FROM_TABLE: [&str; 12] = [
    "AS", "CROSS", "FULL", "GROUP", "INNER", "JOIN", "LEFT", "LIMIT", "ORDER", "RIGHT", "UNION",
    "WHERE",
];
const AFTER_CREATE: [&str; 7] = [
    "CATALOG",
    "DATABASE",
    "FUNCTION",
    "TABLE",
    "TEMPORARY",
    "VIEW",
    "OR",
];
const AFTER_INSERT: [&str; 2] = ["INTO", "OVERWRITE"];
const AFTER_DROP: [&str; 6] = [
    "CATALOG",
    "DATABASE",
    "FUNCTION",
    "TABLE",
    "TEMPORARY",
    "VIEW",
];
const EXPRESSION_START: [&str; 12] = [
    "ARRAY",
    "CASE",
    "CAST",
    "COUNT",
    "CURRENT_DATE",
    "CURRENT_TIMESTAMP",
    "DISTINCT",
    "FALSE",
    "MAP",
    "NULL",
    "ROW",
    "TRUE",
];

/// Hints for the word that ends at `position` (a character offset).
pub fn candidates(statement: &str, position: usize, tables: &[String]) -> Vec<String> {
    let prefix: String = statement.chars().take(position).collect();
    let partial: String = prefix
        .chars()
        .rev()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let before = &prefix[..prefix.len() - partial.len()];
    let words: Vec<String> = tokenize(before)
        .map(|tokens| {
            tokens
                .into_iter()
                .filter(|t| t.kind != TokenKind::Eof)
                .map(|t| t.text.to_ascii_uppercase())
                .collect()
        })
        .unwrap_or_default();
    let last = words.last().map(String::as_str);
    let has = |w: &str| words.iter().any(|x| x == w);
    let (keywords, with_tables): (&[&str], bool) = match last {
        None => (&STATEMENT_START, false),
        Some("SHOW") => (&AFTER_SHOW, false),
        Some("CREATE") => (&AFTER_CREATE, false),
        Some("DROP") => (&AFTER_DROP, false),
        Some("INSERT") => (&AFTER_INSERT, false),
        Some("FROM" | "JOIN" | "INTO" | "TABLE" | "DESCRIBE" | "DESC") => (&[], true),
        Some("SELECT" | "," | "(" | "WHERE" | "AND" | "OR" | "=") => (&EXPRESSION_START, false),
        _ if has("FROM") => (&AFTER_FROM_TABLE, false),
        _ if has("SELECT") => (&AFTER_SELECT_LIST, false),
        _ => (&[], false),
    };
    let upper = partial.to_ascii_uppercase();
    let mut out: Vec<String> = keywords
        .iter()
        .filter(|k| k.starts_with(&upper) && **k != upper)
        .map(|k| k.to_string())
        .collect();
    if with_tables {
        out.extend(
            tables
                .iter()
                .filter(|t| t.to_ascii_uppercase().starts_with(&upper))
                .cloned(),
        );
    }
    out
}
