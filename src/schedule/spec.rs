//! The compact spec form users write on the command line, e.g. `StepLR(step_size=30)` or
//! `SequentialLR(LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=95),
//! milestones=[5])`: a recursive-descent parser producing the untyped [`RawConfig`] (typed by
//! [`super::SchedulerConfig::from_raw`]), and its writer. Depth and length are limited so a
//! hostile spec fails with a message instead of overflowing the stack.

use super::cursor::Cursor;
use std::fmt;

use serde_json::Value;

use super::config::{canonical_name, RawConfig, MAX_SPEC_DEPTH};
use super::error::ScheduleError;

/// Longest spec accepted, in characters.
pub const MAX_SPEC_LEN: usize = 65_536;

/// Parses the compact form into the untyped config.
pub fn parse(spec: &str) -> Result<RawConfig, ScheduleError> {
    let len = spec.chars().count();
    if len > MAX_SPEC_LEN {
        return Err(ScheduleError::Parse {
            position: MAX_SPEC_LEN,
            message: format!(
                "the spec is {len} characters long; at most {MAX_SPEC_LEN} are allowed"
            ),
            near: spec.chars().skip(MAX_SPEC_LEN).take(24).collect(),
        });
    }
    let mut p = Parser::new(spec);
    p.skip_ws();
    let cfg = p.spec()?;
    p.skip_ws();
    if p.cur.pos < p.cur.chars.len() {
        return Err(p.error("unexpected text after the scheduler"));
    }
    Ok(cfg)
}

/// Writes the compact form of `raw`.
pub fn write_raw(f: &mut fmt::Formatter<'_>, raw: &RawConfig) -> fmt::Result {
    write!(f, "{}(", raw.scheduler)?;
    let mut first = true;
    for c in &raw.children {
        if !first {
            f.write_str(", ")?;
        }
        first = false;
        write_raw(f, c)?;
    }
    for (k, v) in &raw.params {
        if !first {
            f.write_str(", ")?;
        }
        first = false;
        write!(f, "{k}=")?;
        write_value(f, v)?;
    }
    f.write_str(")")
}

fn write_value(f: &mut fmt::Formatter<'_>, v: &Value) -> fmt::Result {
    match v {
        Value::Null => f.write_str("None"),
        Value::Bool(true) => f.write_str("True"),
        Value::Bool(false) => f.write_str("False"),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => write!(f, "{i}"),
            // `{:?}` keeps the ".0" / exponent, so the value reads back as a float.
            (None, Some(x)) => write!(f, "{x:?}"),
            _ => write!(f, "{n}"),
        },
        Value::String(s) => write!(f, "'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Value::Array(items) => {
            f.write_str("[")?;
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                write_value(f, item)?;
            }
            f.write_str("]")
        }
        Value::Object(_) => write!(f, "{v}"),
    }
}

/// Recursive-descent parser for the compact form.
struct Parser {
    cur: Cursor,
    /// Schedulers and lists currently open.
    depth: usize,
}

/// A parsed argument value: plain data, or scheduler specs (for `schedulers=[...]`).
enum Parsed {
    Data(Value),
    Spec(RawConfig),
    Specs(Vec<RawConfig>),
}

impl Parser {
    fn new(s: &str) -> Self {
        Self {
            cur: Cursor::new(s),
            depth: 0,
        }
    }

    fn error(&self, message: &str) -> ScheduleError {
        let near: String = self.cur.chars[self.cur.pos.min(self.cur.chars.len())..]
            .iter()
            .take(24)
            .collect();
        ScheduleError::Parse {
            position: self.cur.pos,
            message: message.to_string(),
            near: if near.is_empty() {
                "end of input".to_string()
            } else {
                near
            },
        }
    }

    fn peek(&self) -> Option<char> {
        self.cur.peek()
    }

    fn skip_ws(&mut self) {
        self.cur.skip_ws()
    }

    fn ident(&mut self) -> Option<String> {
        self.cur.ident()
    }

    /// Counts one more open scheduler or list; refuses to go deeper than the limit.
    fn nested<T>(
        &mut self,
        f: fn(&mut Self) -> Result<T, ScheduleError>,
    ) -> Result<T, ScheduleError> {
        if self.depth >= MAX_SPEC_DEPTH {
            return Err(self.error(&format!(
                "schedulers and lists are nested deeper than {MAX_SPEC_DEPTH} levels"
            )));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    /// NAME or NAME(args)
    fn spec(&mut self) -> Result<RawConfig, ScheduleError> {
        self.nested(Self::spec_inner)
    }

    fn spec_inner(&mut self) -> Result<RawConfig, ScheduleError> {
        let start = self.cur.pos;
        let name = self
            .ident()
            .ok_or_else(|| self.error("expected a scheduler name"))?;
        let name = canonical_name(&name).map_err(|e| {
            self.cur.pos = start;
            self.error(&e.to_string())
        })?;
        let mut cfg = RawConfig {
            scheduler: name.to_string(),
            params: serde_json::Map::new(),
            children: Vec::new(),
        };
        self.skip_ws();
        if self.peek() != Some('(') {
            return Ok(cfg);
        }
        self.cur.pos += 1;
        loop {
            self.skip_ws();
            if self.peek() == Some(')') {
                self.cur.pos += 1;
                break;
            }
            let arg_start = self.cur.pos;
            let Some(id) = self.ident() else {
                return Err(self.error("expected name=value or a child scheduler"));
            };
            self.skip_ws();
            if self.peek() == Some('=') {
                self.cur.pos += 1;
                self.skip_ws();
                let value_start = self.cur.pos;
                match self.value()? {
                    Parsed::Data(v) => {
                        if cfg.params.insert(id.clone(), v).is_some() {
                            self.cur.pos = arg_start;
                            return Err(self.error(&format!("parameter {id} is given twice")));
                        }
                    }
                    Parsed::Specs(specs) if id == "schedulers" => cfg.children.extend(specs),
                    Parsed::Spec(_) | Parsed::Specs(_) => {
                        self.cur.pos = value_start;
                        return Err(self.error(&format!(
                            "only schedulers=[...] may hold schedulers, not {id}"
                        )));
                    }
                }
            } else {
                self.cur.pos = arg_start;
                let child = self.spec()?;
                cfg.children.push(child);
            }
            self.skip_ws();
            match self.peek() {
                Some(',') => self.cur.pos += 1,
                Some(')') => {
                    self.cur.pos += 1;
                    break;
                }
                _ => return Err(self.error("expected ',' or ')'")),
            }
        }
        Ok(cfg)
    }

    fn value(&mut self) -> Result<Parsed, ScheduleError> {
        match self.peek() {
            None => Err(self.error("expected a value")),
            Some('[') => self.list(),
            Some('\'') | Some('"') => self.string().map(|s| Parsed::Data(Value::String(s))),
            Some('{') => self.json_object(),
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => {
                self.number().map(Parsed::Data)
            }
            Some(_) => {
                let start = self.cur.pos;
                let Some(id) = self.ident() else {
                    return Err(self.error("expected a value"));
                };
                self.skip_ws();
                if self.peek() == Some('(') {
                    self.cur.pos = start;
                    return self.spec().map(Parsed::Spec);
                }
                Ok(Parsed::Data(match id.as_str() {
                    "True" | "true" => Value::Bool(true),
                    "False" | "false" => Value::Bool(false),
                    "None" | "null" => Value::Null,
                    // A bare word is a string, e.g. mode=triangular2.
                    _ => Value::String(id),
                }))
            }
        }
    }

    fn list(&mut self) -> Result<Parsed, ScheduleError> {
        self.nested(Self::list_inner)
    }

    fn list_inner(&mut self) -> Result<Parsed, ScheduleError> {
        self.cur.pos += 1; // '['
        let mut data = Vec::new();
        let mut specs = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(']') {
                self.cur.pos += 1;
                break;
            }
            match self.value()? {
                Parsed::Data(v) => data.push(v),
                Parsed::Spec(s) => specs.push(s),
                Parsed::Specs(_) => return Err(self.error("nested lists of schedulers")),
            }
            if !data.is_empty() && !specs.is_empty() {
                return Err(self.error("a list cannot mix schedulers and values"));
            }
            self.skip_ws();
            match self.peek() {
                Some(',') => self.cur.pos += 1,
                Some(']') => {
                    self.cur.pos += 1;
                    break;
                }
                _ => return Err(self.error("expected ',' or ']'")),
            }
        }
        Ok(if specs.is_empty() {
            Parsed::Data(Value::Array(data))
        } else {
            Parsed::Specs(specs)
        })
    }

    fn string(&mut self) -> Result<String, ScheduleError> {
        self.cur
            .quoted(true)
            .ok_or_else(|| self.error("unterminated string"))
    }

    fn number(&mut self) -> Result<Value, ScheduleError> {
        self.cur
            .number()
            .map_err(|text| self.error(&format!("'{text}' is not a number")))
    }

    fn json_object(&mut self) -> Result<Parsed, ScheduleError> {
        let rest: String = self.cur.chars[self.cur.pos..].iter().collect();
        let mut stream = serde_json::Deserializer::from_str(&rest).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) => {
                let consumed = rest[..stream.byte_offset()].chars().count();
                self.cur.pos += consumed;
                Ok(Parsed::Data(v))
            }
            Some(Err(e)) => Err(self.error(&format!("invalid JSON object: {e}"))),
            None => Err(self.error("expected a JSON object")),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::schedule::SchedulerConfig;

    fn err(spec: &str) -> String {
        SchedulerConfig::parse(spec).unwrap_err().to_string()
    }

    #[test]
    fn syntax_errors_name_the_position() {
        assert_eq!(
            err("StepLR(step_size=3 gamma=0.1)"),
            "cannot parse scheduler spec at character 19: expected ',' or ')' (at 'gamma=0.1)')"
        );
        assert_eq!(
            err("StepLR(step_size=3) x"),
            "cannot parse scheduler spec at character 20: unexpected text after the scheduler (at 'x')"
        );
        assert_eq!(
            err("StepLR(step_size=1.2.3)"),
            "cannot parse scheduler spec at character 17: '1.2.3' is not a number (at '1.2.3)')"
        );
        assert_eq!(
            err("StepLR(step_size=3, step_size=4)"),
            "cannot parse scheduler spec at character 20: parameter step_size is given twice (at 'step_size=4)')"
        );
    }

    /// In a thread with a normal (2 MiB) stack, at the nesting that used to overflow it.
    #[test]
    fn deep_and_long_specs_fail_cleanly() {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let nest = |n: usize| {
                    format!(
                        "{}StepLR(step_size=1){}",
                        "ChainedScheduler(".repeat(n),
                        ")".repeat(n)
                    )
                };
                assert!(err(&nest(4000))
                    .starts_with("cannot parse scheduler spec at character 65536: the spec is 72019 characters long; at most 65536 are allowed"));
                assert_eq!(
                    err(&nest(3000)),
                    "cannot parse scheduler spec at character 544: schedulers and lists are nested deeper than 32 levels (at 'ChainedScheduler(Chained')"
                );
                let lists = format!("MultiStepLR(milestones={}1{})", "[".repeat(4000), "]".repeat(4000));
                assert!(err(&lists).contains("nested deeper than 32 levels"));
                // JSON: serde_json's own recursion limit answers first.
                let json = format!(
                    "{}{{\"scheduler\":\"StepLR\",\"params\":{{\"step_size\":1}}}}{}",
                    "{\"scheduler\":\"ChainedScheduler\",\"children\":[".repeat(4000),
                    "]}".repeat(4000)
                );
                assert!(err(&json).starts_with("invalid scheduler JSON: recursion limit exceeded"));
                let long = format!("LambdaLR(lr_lambda='{}')", "epoch+".repeat(40_000));
                assert_eq!(
                    err(&long),
                    "cannot parse scheduler spec at character 65536: the spec is 240022 characters long; at most 65536 are allowed (at 'och+epoch+epoch+epoch+ep')"
                );
                let formula = format!("LambdaLR(lr_lambda='{}1')", "epoch+".repeat(1000));
                assert_eq!(
                    err(&formula),
                    "LambdaLR: lr_lambda: formula is 6001 characters long; at most 4096 are allowed"
                );
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
