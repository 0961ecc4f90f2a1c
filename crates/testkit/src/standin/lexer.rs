//! Tokens of Flink SQL with Calcite's 1-based line and column positions.

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenKind {
    /// A keyword or an unquoted identifier.
    Word,
    /// A back-quoted identifier.
    QuotedIdent,
    Number,
    /// A character literal; `text` holds the unescaped value.
    Str,
    /// `X'CAFE'`; `text` holds the hex digits.
    Binary,
    Symbol,
    Eof,
}

#[derive(Clone, Debug)]
pub struct Token {
    pub kind: TokenKind,
    pub text: String,
    /// The token as written in the statement.
    pub image: String,
    pub line: u32,
    pub col: u32,
    pub end_line: u32,
    pub end_col: u32,
    /// Byte offsets of the token in the statement.
    pub start: usize,
    pub end: usize,
}

impl Token {
    pub fn is_word(&self, word: &str) -> bool {
        self.kind == TokenKind::Word && self.text.eq_ignore_ascii_case(word)
    }

    pub fn is_symbol(&self, symbol: &str) -> bool {
        self.kind == TokenKind::Symbol && self.text == symbol
    }

    /// How Calcite quotes the token in "Encountered ..." messages.
    pub fn encountered(&self) -> String {
        match self.kind {
            TokenKind::Eof => "<EOF>".to_string(),
            _ => self.image.clone(),
        }
    }
}

/// A lexical error: message in Calcite's words.
#[derive(Clone, Debug)]
pub struct LexError {
    pub message: String,
}

struct Cursor<'a> {
    text: &'a str,
    pos: usize,
    line: u32,
    col: u32,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<char> {
        self.text[self.pos..].chars().next()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.text[self.pos..].chars().nth(n)
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
            self.col = 1;
        } else {
            self.col += 1;
        }
        Some(c)
    }
}

const SYMBOLS2: [&str; 5] = ["<>", "<=", ">=", "!=", "||"];

/// Splits a statement into tokens, ending with an `Eof` token.
pub fn tokenize(text: &str) -> Result<Vec<Token>, LexError> {
    let mut c = Cursor {
        text,
        pos: 0,
        line: 1,
        col: 1,
    };
    let mut tokens = Vec::new();
    loop {
        // whitespace and comments
        loop {
            match c.peek() {
                Some(ch) if ch.is_whitespace() => {
                    c.bump();
                }
                Some('-') if c.peek_at(1) == Some('-') => {
                    while let Some(ch) = c.peek() {
                        if ch == '\n' {
                            break;
                        }
                        c.bump();
                    }
                }
                Some('/') if c.peek_at(1) == Some('*') => {
                    c.bump();
                    c.bump();
                    loop {
                        match c.peek() {
                            None => break,
                            Some('*') if c.peek_at(1) == Some('/') => {
                                c.bump();
                                c.bump();
                                break;
                            }
                            _ => {
                                c.bump();
                            }
                        }
                    }
                }
                _ => break,
            }
        }
        let (start, line, col) = (c.pos, c.line, c.col);
        let Some(ch) = c.peek() else {
            tokens.push(Token {
                kind: TokenKind::Eof,
                text: String::new(),
                image: String::new(),
                line,
                col,
                end_line: line,
                end_col: col,
                start,
                end: start,
            });
            return Ok(tokens);
        };
        let mut end_line = line;
        let mut end_col = col;
        let kind;
        let value;
        if (ch == 'x' || ch == 'X') && c.peek_at(1) == Some('\'') {
            c.bump();
            c.bump();
            let mut hex = String::new();
            loop {
                match c.peek() {
                    None => {
                        return Err(LexError {
                            message: format!(
                                "Lexical error at line {line}, column {}.  Encountered: <EOF> after : \"{}\"",
                                c.col,
                                &text[start..]
                            ),
                        });
                    }
                    Some('\'') => {
                        end_line = c.line;
                        end_col = c.col;
                        c.bump();
                        break;
                    }
                    Some(h) => {
                        hex.push(h);
                        c.bump();
                    }
                }
            }
            kind = TokenKind::Binary;
            value = hex;
        } else if ch.is_alphabetic() || ch == '_' || ch == '$' {
            let mut word = String::new();
            while let Some(ch) = c.peek() {
                if ch.is_alphanumeric() || ch == '_' || ch == '$' {
                    end_line = c.line;
                    end_col = c.col;
                    word.push(ch);
                    c.bump();
                } else {
                    break;
                }
            }
            kind = TokenKind::Word;
            value = word;
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.peek_at(1).is_some_and(|d| d.is_ascii_digit()))
        {
            let mut number = String::new();
            let mut seen_point = false;
            let mut seen_exponent = false;
            while let Some(ch) = c.peek() {
                let accept = ch.is_ascii_digit()
                    || (ch == '.' && !seen_point && !seen_exponent)
                    || ((ch == 'e' || ch == 'E')
                        && !seen_exponent
                        && (c.peek_at(1).is_some_and(|d| d.is_ascii_digit())
                            || (matches!(c.peek_at(1), Some('+') | Some('-'))
                                && c.peek_at(2).is_some_and(|d| d.is_ascii_digit()))))
                    || ((ch == '+' || ch == '-') && number.ends_with(['e', 'E']));
                if !accept {
                    break;
                }
                if ch == '.' {
                    seen_point = true;
                }
                if ch == 'e' || ch == 'E' {
                    seen_exponent = true;
                }
                end_line = c.line;
                end_col = c.col;
                number.push(ch);
                c.bump();
            }
            kind = TokenKind::Number;
            value = number;
        } else if ch == '\'' {
            c.bump();
            let mut s = String::new();
            loop {
                match c.peek() {
                    None => {
                        return Err(LexError {
                            message: format!(
                                "Lexical error at line {}, column {}.  Encountered: <EOF> after : \"{}\"",
                                c.line,
                                c.col,
                                &text[start..]
                            ),
                        });
                    }
                    Some('\'') if c.peek_at(1) == Some('\'') => {
                        s.push('\'');
                        c.bump();
                        c.bump();
                    }
                    Some('\'') => {
                        end_line = c.line;
                        end_col = c.col;
                        c.bump();
                        break;
                    }
                    Some(other) => {
                        s.push(other);
                        c.bump();
                    }
                }
            }
            kind = TokenKind::Str;
            value = s;
        } else if ch == '`' {
            c.bump();
            let mut s = String::new();
            loop {
                match c.peek() {
                    None => {
                        return Err(LexError {
                            message: format!(
                                "Lexical error at line {}, column {}.  Encountered: <EOF> after : \"{}\"",
                                c.line,
                                c.col,
                                &text[start..]
                            ),
                        });
                    }
                    Some('`') if c.peek_at(1) == Some('`') => {
                        s.push('`');
                        c.bump();
                        c.bump();
                    }
                    Some('`') => {
                        end_line = c.line;
                        end_col = c.col;
                        c.bump();
                        break;
                    }
                    Some(other) => {
                        s.push(other);
                        c.bump();
                    }
                }
            }
            kind = TokenKind::QuotedIdent;
            value = s;
        } else {
            let two: String = text[c.pos..].chars().take(2).collect();
            if SYMBOLS2.contains(&two.as_str()) {
                c.bump();
                end_line = c.line;
                end_col = c.col;
                c.bump();
                value = two;
            } else {
                c.bump();
                value = ch.to_string();
            }
            if !"(),;.*+-/%=<>[]|!:?{}^~&@#".contains(ch) {
                return Err(LexError {
                    message: format!(
                        "Lexical error at line {line}, column {}.  Encountered: \"{ch}\" ({}), after : \"\"",
                        col, ch as u32
                    ),
                });
            }
            kind = TokenKind::Symbol;
        }
        tokens.push(Token {
            kind,
            text: value,
            image: text[start..c.pos].to_string(),
            line,
            col,
            end_line,
            end_col,
            start,
            end: c.pos,
        });
    }
}

/// Splits a script on top-level semicolons (outside quotes and `BEGIN ... END` blocks);
/// returns the non-empty pieces.
pub fn split_statements(text: &str) -> Vec<String> {
    let Ok(tokens) = tokenize(text) else {
        return vec![text.to_string()];
    };
    let mut pieces = Vec::new();
    let mut depth = 0usize;
    let mut start = 0usize;
    for (i, token) in tokens.iter().enumerate() {
        if token.is_word("BEGIN")
            && i >= 1
            && tokens[i - 1].is_word("SET")
            && i >= 2
            && tokens[i - 2].is_word("STATEMENT")
        {
            depth += 1;
        } else if token.is_word("END") && depth > 0 {
            depth -= 1;
        } else if token.is_symbol(";") && depth == 0 {
            pieces.push(text[start..token.start].to_string());
            start = token.end;
        } else if token.kind == TokenKind::Eof {
            pieces.push(text[start..].to_string());
        }
    }
    pieces
        .into_iter()
        .filter(|p| tokenize(p).map(|t| t.len() > 1).unwrap_or(true))
        .collect()
}
