//! A position in a character string, shared by the two hand-written parsers (scheduler specs
//! and lambda formulas, and the model's layer lists): lookahead, whitespace, identifiers,
//! quoted strings and numbers read the same in all of them.

use serde_json::{Number, Value};

pub(crate) struct Cursor {
    pub(crate) chars: Vec<char>,
    pub(crate) pos: usize,
}

impl Cursor {
    pub(crate) fn new(s: &str) -> Self {
        Self {
            chars: s.chars().collect(),
            pos: 0,
        }
    }

    pub(crate) fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    pub(crate) fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    /// An identifier (`[A-Za-z_][A-Za-z0-9_]*`) starting right here, consumed.
    pub(crate) fn ident(&mut self) -> Option<String> {
        let start = self.pos;
        if !self
            .peek()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        {
            return None;
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        Some(self.chars[start..self.pos].iter().collect())
    }

    /// A string in the quote character under the cursor, consumed; with `escapes`, a
    /// backslash takes the next character literally. None (cursor unmoved) when unterminated.
    pub(crate) fn quoted(&mut self, escapes: bool) -> Option<String> {
        let start = self.pos;
        let quote = self.peek()?;
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return None;
                }
                Some('\\') if escapes => {
                    self.pos += 1;
                    if let Some(c) = self.peek() {
                        out.push(c);
                        self.pos += 1;
                    }
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Some(out);
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    /// A Python number starting here (`3`, `-1e-3`, `1_000`), consumed: an integer when it
    /// has no `.` or exponent, else a finite float. On failure the cursor is unmoved and the
    /// error is the text read (underscores removed).
    pub(crate) fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_'))
        {
            // A sign only starts the number or follows an exponent marker.
            if matches!(self.peek(), Some('-' | '+'))
                && self.pos > start
                && !matches!(self.chars[self.pos - 1], 'e' | 'E')
            {
                break;
            }
            self.pos += 1;
        }
        let text: String = self.chars[start..self.pos].iter().collect();
        let text = text.replace('_', "");
        if !text.contains(['.', 'e', 'E']) {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::from(i));
            }
        }
        match text.parse::<f64>().ok().filter(|x| x.is_finite()) {
            Some(x) => Number::from_f64(x).map(Value::Number).ok_or(text),
            None => {
                self.pos = start;
                Err(text)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_whitespace() {
        let mut c = Cursor::new("  ab_1(x");
        assert_eq!(c.ident(), None);
        c.skip_ws();
        assert_eq!(c.ident().as_deref(), Some("ab_1"));
        assert_eq!(c.peek(), Some('('));
        assert_eq!(Cursor::new("1a").ident(), None);
    }

    #[test]
    fn strings_and_numbers() {
        let mut c = Cursor::new(r#"'a\'b' rest"#);
        assert_eq!(c.quoted(true).as_deref(), Some("a'b"));
        assert_eq!(
            Cursor::new(r#"'a\'b'"#).quoted(false).as_deref(),
            Some("a\\")
        );
        let mut c = Cursor::new("'open");
        assert_eq!(c.quoted(false), None);
        assert_eq!(c.pos, 0);
        assert_eq!(Cursor::new("1_000,").number(), Ok(Value::from(1000)));
        assert_eq!(Cursor::new("-1e-3)").number(), Ok(Value::from(-1e-3)));
        let mut c = Cursor::new("1e999");
        assert_eq!(c.number(), Err("1e999".into()));
        assert_eq!(c.pos, 0);
    }
}
