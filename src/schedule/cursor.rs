//! A position in a character string, shared by the two hand-written parsers (scheduler specs
//! and lambda formulas): lookahead, whitespace and identifiers read the same in both.

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
}
