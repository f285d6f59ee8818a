//! Formulas in one integer variable, as LambdaLR's `lr_lambda` (`epoch`) and CyclicLR's
//! `scale_fn` (`x`) take them: a small hand-written parser and evaluator with Python's meaning,
//! so a pasted `lambda epoch: 0.1 ** (epoch // 30)` gives what PyTorch would compute.
//!
//! Grammar (Python's precedence): `+ -` < `* / // %` < unary `+ -` < `**` (right-associative,
//! binding tighter than a unary minus on its left: `-2**2 == -4`, `2**3**2 == 512`). Values are
//! Python ints or floats: `/` is true division, `//` floors, `%` takes the divisor's sign,
//! `round()` rounds half to even and, like `floor`/`ceil`/`trunc`, returns an int. Division by
//! zero, a math domain error, an overflowing `**` or `exp` are errors, as Python raises them.
//! `^` is accepted as a power too (the documented `0.1^floor(epoch/30)`). An optional
//! `lambda NAME:` prefix names the variable. Ints beyond 64 bits continue as floats.

use super::cursor::Cursor;
use std::fmt;

/// Longest formula accepted, in characters.
pub const MAX_FORMULA_LEN: usize = 4096;
/// Deepest nesting of parentheses, calls, signs and powers accepted.
pub const MAX_FORMULA_DEPTH: usize = 64;

/// A Python number.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Num {
    /// A Python `int` (within 64 bits).
    Int(i64),
    /// A Python `float`.
    Float(f64),
}

impl Num {
    /// The value as a float, as Python's `float()` gives it.
    pub fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(x) => x,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
    FloorDiv,
    Mod,
    Pow,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    /// An index into [`UNARY`].
    Unary(usize),
    Abs,
    Floor,
    Ceil,
    Trunc,
    Round,
    Min,
    Max,
    Pow,
    Log,
    Atan2,
    Hypot,
}

/// Postfix code: evaluated with a value stack, so neither evaluation nor dropping recurses.
#[derive(Debug, Clone, PartialEq)]
enum Instr {
    Push(Num),
    Var,
    Neg,
    Bin(Op),
    Call(Func, usize),
}

/// A float function of one float, as the `math` module has them.
type Unary = fn(f64) -> f64;

const UNARY: [(&str, Unary); 19] = [
    ("cos", f64::cos),
    ("sin", f64::sin),
    ("tan", f64::tan),
    ("acos", f64::acos),
    ("asin", f64::asin),
    ("atan", f64::atan),
    ("cosh", f64::cosh),
    ("sinh", f64::sinh),
    ("tanh", f64::tanh),
    ("exp", f64::exp),
    ("sqrt", f64::sqrt),
    ("ln", f64::ln),
    ("log2", f64::log2),
    ("log10", f64::log10),
    ("exp2", f64::exp2),
    ("acosh", f64::acosh),
    ("asinh", f64::asinh),
    ("atanh", f64::atanh),
    ("cbrt", f64::cbrt),
];

const OTHER: [(&str, Func); 11] = [
    ("abs", Func::Abs),
    ("floor", Func::Floor),
    ("ceil", Func::Ceil),
    ("trunc", Func::Trunc),
    ("round", Func::Round),
    ("min", Func::Min),
    ("max", Func::Max),
    ("pow", Func::Pow),
    ("log", Func::Log),
    ("atan2", Func::Atan2),
    ("hypot", Func::Hypot),
];

const CONSTANTS: [(&str, f64); 3] = [
    ("pi", std::f64::consts::PI),
    ("e", std::f64::consts::E),
    ("tau", std::f64::consts::TAU),
];

/// What a formula may contain, for error messages.
fn allowed(var: &str) -> String {
    let funcs: Vec<&str> = UNARY
        .iter()
        .map(|(n, _)| *n)
        .chain(OTHER.iter().map(|(n, _)| *n))
        .collect();
    format!(
        "allowed: numbers, {var}, + - * / // % ** ^, parentheses, constants pi e tau, functions {} (optionally written math.NAME)",
        funcs.join(" ")
    )
}

fn lookup(name: &str) -> Option<Func> {
    UNARY
        .iter()
        .position(|(n, _)| *n == name)
        .map(Func::Unary)
        .or_else(|| OTHER.iter().find(|(n, _)| *n == name).map(|(_, f)| *f))
}

/// A compiled formula.
#[derive(Clone)]
pub struct Formula {
    source: String,
    var: String,
    code: Vec<Instr>,
}

impl fmt::Debug for Formula {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Formula({:?})", self.source)
    }
}

impl PartialEq for Formula {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source && self.var == other.var
    }
}

impl Formula {
    /// Compiles `source` in the variable `var` (`epoch`, or `x` for CyclicLR's `scale_fn`).
    /// The error is one line: the position, what was found, and what is allowed.
    pub fn new(source: &str, var: &str) -> Result<Self, String> {
        let len = source.chars().count();
        if len > MAX_FORMULA_LEN {
            return Err(format!(
                "formula is {len} characters long; at most {MAX_FORMULA_LEN} are allowed"
            ));
        }
        let mut p = Parser {
            cur: Cursor::new(source),
            var: var.to_string(),
            code: Vec::new(),
            depth: 0,
        };
        p.lambda_prefix()?;
        p.expr()?;
        p.skip_ws();
        if p.cur.pos < p.cur.chars.len() {
            return Err(p.error("unexpected text"));
        }
        Ok(Self {
            source: source.to_string(),
            var: p.var,
            code: p.code,
        })
    }

    /// The formula as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The value at `x` (Python's int), as a float.
    pub fn eval(&self, x: i64) -> Result<f64, String> {
        self.eval_num(Num::Int(x))
            .map(Num::as_f64)
            .map_err(|m| format!("formula '{}' at {}={x}: {m}", self.source, self.var))
    }

    /// The value at `x`, keeping Python's int/float distinction.
    pub fn eval_num(&self, x: Num) -> Result<Num, String> {
        let mut stack: Vec<Num> = Vec::with_capacity(8);
        let pop = |s: &mut Vec<Num>| s.pop().ok_or_else(|| "malformed formula".to_string());
        for ins in &self.code {
            let v = match ins {
                Instr::Push(n) => *n,
                Instr::Var => x,
                Instr::Neg => neg(pop(&mut stack)?),
                Instr::Bin(op) => {
                    let b = pop(&mut stack)?;
                    let a = pop(&mut stack)?;
                    binary(*op, a, b)?
                }
                Instr::Call(f, n) => {
                    let at = stack
                        .len()
                        .checked_sub(*n)
                        .ok_or_else(|| "malformed formula".to_string())?;
                    let args = stack.split_off(at);
                    call(*f, &args)?
                }
            };
            stack.push(v);
        }
        match stack.as_slice() {
            [v] => Ok(*v),
            _ => Err("malformed formula".to_string()),
        }
    }
}

fn neg(a: Num) -> Num {
    match a {
        Num::Int(i) => i.checked_neg().map_or(Num::Float(-(i as f64)), Num::Int),
        Num::Float(x) => Num::Float(-x),
    }
}

/// Python's `int // int` (the divisor is non-zero).
fn int_floor_div(a: i64, b: i64) -> Option<i64> {
    let q = a.checked_div(b)?;
    Some(if a % b != 0 && ((a < 0) != (b < 0)) {
        q - 1
    } else {
        q
    })
}

/// Python's `float.__divmod__` (CPython's `float_divmod`), for `//` and `%`.
fn float_divmod(a: f64, b: f64) -> (f64, f64) {
    let mut m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 {
        if (b < 0.0) != (m < 0.0) {
            m += b;
            div -= 1.0;
        }
    } else {
        m = 0.0f64.copysign(b);
    }
    let floordiv = if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 {
            f + 1.0
        } else {
            f
        }
    } else {
        0.0f64.copysign(a / b)
    };
    (floordiv, m)
}

fn binary(op: Op, a: Num, b: Num) -> Result<Num, String> {
    use Num::{Float as F, Int as I};
    let zero_div = || Err("division by zero".to_string());
    if let (I(x), I(y)) = (a, b) {
        let exact = match op {
            Op::Add => x.checked_add(y),
            Op::Sub => x.checked_sub(y),
            Op::Mul => x.checked_mul(y),
            Op::Div => {
                if y == 0 {
                    return zero_div();
                }
                return Ok(F(x as f64 / y as f64));
            }
            Op::FloorDiv => {
                if y == 0 {
                    return zero_div();
                }
                int_floor_div(x, y)
            }
            Op::Mod => {
                if y == 0 {
                    return zero_div();
                }
                x.checked_rem(y).map(|r| {
                    if r != 0 && ((r < 0) != (y < 0)) {
                        r + y
                    } else {
                        r
                    }
                })
            }
            Op::Pow => {
                if y < 0 {
                    if x == 0 {
                        return Err("0 cannot be raised to a negative power".to_string());
                    }
                    return Ok(F((x as f64).powf(y as f64)));
                }
                u32::try_from(y).ok().and_then(|y| x.checked_pow(y))
            }
        };
        if let Some(v) = exact {
            return Ok(I(v));
        }
        // Beyond 64 bits Python keeps an exact int; continue with floats.
    }
    let (x, y) = (a.as_f64(), b.as_f64());
    Ok(F(match op {
        Op::Add => x + y,
        Op::Sub => x - y,
        Op::Mul => x * y,
        Op::Div => {
            if y == 0.0 {
                return zero_div();
            }
            x / y
        }
        Op::FloorDiv | Op::Mod => {
            if y == 0.0 {
                return zero_div();
            }
            let (q, r) = float_divmod(x, y);
            if op == Op::FloorDiv {
                q
            } else {
                r
            }
        }
        Op::Pow => float_pow(x, y)?,
    }))
}

/// Python's `float ** float`.
fn float_pow(x: f64, y: f64) -> Result<f64, String> {
    if y == 0.0 || x == 1.0 {
        return Ok(1.0);
    }
    if x == 0.0 && y < 0.0 {
        return Err("0.0 cannot be raised to a negative power".to_string());
    }
    if x < 0.0 && x.is_finite() && y.is_finite() && y.fract() != 0.0 {
        // Python 3 returns a complex number here.
        return Err(format!(
            "a negative number ({x}) raised to a fractional power ({y}) is not a real number"
        ));
    }
    let r = x.powf(y);
    if r.is_infinite() && x.is_finite() && y.is_finite() {
        return Err(format!("{x} ** {y} overflows"));
    }
    Ok(r)
}

/// A float result as Python's `math` module gives it: domain and range errors raise.
fn math(name: &str, args: &[f64], r: f64) -> Result<f64, String> {
    if r.is_nan() && !args.iter().any(|a| a.is_nan()) {
        return Err(format!("math domain error in {name}()"));
    }
    if r.is_infinite() && args.iter().all(|a| a.is_finite()) {
        // log(0) is -inf in C but a domain error in Python; exp(1000) a range error.
        return Err(if r < 0.0 {
            format!("math domain error in {name}()")
        } else {
            format!("math range error in {name}() (overflow)")
        });
    }
    Ok(r)
}

/// A float rounded by floor/ceil/trunc/round becomes a Python int.
fn to_int(name: &str, x: f64) -> Result<Num, String> {
    if !x.is_finite() {
        return Err(format!("{name}() of {x} cannot be an integer"));
    }
    if x.abs() < 9.2e18 {
        Ok(Num::Int(x as i64))
    } else {
        Ok(Num::Float(x))
    }
}

fn call(f: Func, args: &[Num]) -> Result<Num, String> {
    let float = |i: usize| args[i].as_f64();
    Ok(match f {
        Func::Unary(i) => {
            let (name, g) = UNARY[i];
            Num::Float(math(name, &[float(0)], g(float(0)))?)
        }
        Func::Abs => match args[0] {
            Num::Int(i) => i
                .checked_abs()
                .map_or(Num::Float((i as f64).abs()), Num::Int),
            Num::Float(x) => Num::Float(x.abs()),
        },
        Func::Floor | Func::Ceil | Func::Trunc | Func::Round => match args[0] {
            Num::Int(i) => Num::Int(i),
            Num::Float(x) => {
                let (name, r) = match f {
                    Func::Floor => ("floor", x.floor()),
                    Func::Ceil => ("ceil", x.ceil()),
                    Func::Trunc => ("trunc", x.trunc()),
                    _ => ("round", x.round_ties_even()),
                };
                to_int(name, r)?
            }
        },
        // Python keeps the first of equal values and compares with `<` / `>`.
        Func::Min => {
            args[1..].iter().fold(
                args[0],
                |best, v| {
                    if v.as_f64() < best.as_f64() {
                        *v
                    } else {
                        best
                    }
                },
            )
        }
        Func::Max => {
            args[1..].iter().fold(
                args[0],
                |best, v| {
                    if v.as_f64() > best.as_f64() {
                        *v
                    } else {
                        best
                    }
                },
            )
        }
        Func::Pow => binary(Op::Pow, args[0], args[1])?,
        Func::Atan2 => Num::Float(math(
            "atan2",
            &[float(0), float(1)],
            float(0).atan2(float(1)),
        )?),
        Func::Hypot => Num::Float(math(
            "hypot",
            &[float(0), float(1)],
            float(0).hypot(float(1)),
        )?),
        Func::Log => {
            let x = float(0);
            let ln = math("log", &[x], x.ln())?;
            if args.len() == 1 {
                Num::Float(ln)
            } else {
                let b = float(1);
                let lb = math("log", &[b], b.ln())?;
                if lb == 0.0 {
                    return Err("division by zero in log() (base 1)".to_string());
                }
                Num::Float(ln / lb)
            }
        }
    })
}

/// How many arguments a function takes: (at least, at most).
fn arity(f: Func) -> (usize, usize) {
    match f {
        Func::Min | Func::Max => (2, usize::MAX),
        Func::Pow | Func::Atan2 | Func::Hypot => (2, 2),
        Func::Log => (1, 2),
        _ => (1, 1),
    }
}

struct Parser {
    cur: Cursor,
    var: String,
    code: Vec<Instr>,
    depth: usize,
}

impl Parser {
    fn error(&self, what: &str) -> String {
        let src: String = self.cur.chars.iter().collect();
        let found = match self.cur.chars.get(self.cur.pos) {
            None => "the end".to_string(),
            Some(c) => format!("'{c}'"),
        };
        format!(
            "cannot parse formula '{src}' at character {}: {what} at {found}; {}",
            self.cur.pos,
            allowed(&self.var)
        )
    }

    fn peek(&self) -> Option<char> {
        self.cur.peek()
    }

    fn skip_ws(&mut self) {
        self.cur.skip_ws()
    }

    /// Consumes `s` (after whitespace) if it comes next.
    fn eat(&mut self, s: &str) -> bool {
        self.skip_ws();
        let n = s.chars().count();
        let matches = self
            .cur
            .chars
            .get(self.cur.pos..self.cur.pos + n)
            .is_some_and(|w| w.iter().copied().eq(s.chars()));
        if matches {
            self.cur.pos += n;
        }
        matches
    }

    fn enter(&mut self) -> Result<(), String> {
        self.depth += 1;
        if self.depth > MAX_FORMULA_DEPTH {
            return Err(self.error(&format!(
                "nested deeper than {MAX_FORMULA_DEPTH} levels (parentheses, calls, signs, powers)"
            )));
        }
        Ok(())
    }

    fn ident(&mut self) -> Option<String> {
        self.cur.skip_ws();
        self.cur.ident()
    }

    /// `lambda NAME:` names the variable, as in a pasted Python lambda.
    fn lambda_prefix(&mut self) -> Result<(), String> {
        let start = self.cur.pos;
        if self.ident().as_deref() != Some("lambda") {
            self.cur.pos = start;
            return Ok(());
        }
        let Some(name) = self.ident() else {
            return Err(self.error("expected the lambda's parameter name"));
        };
        if !self.eat(":") {
            return Err(self.error("expected ':' after the lambda's parameter"));
        }
        self.var = name;
        Ok(())
    }

    fn expr(&mut self) -> Result<(), String> {
        self.term()?;
        loop {
            let op = if self.eat("+") {
                Op::Add
            } else if self.eat("-") {
                Op::Sub
            } else {
                return Ok(());
            };
            self.term()?;
            self.code.push(Instr::Bin(op));
        }
    }

    fn term(&mut self) -> Result<(), String> {
        self.unary()?;
        loop {
            self.skip_ws();
            // `**` is a power, not two multiplications; `//` before `/`.
            let op = if self.eat("**") {
                self.cur.pos -= 2;
                return Ok(());
            } else if self.eat("*") {
                Op::Mul
            } else if self.eat("//") {
                Op::FloorDiv
            } else if self.eat("/") {
                Op::Div
            } else if self.eat("%") {
                Op::Mod
            } else {
                return Ok(());
            };
            self.unary()?;
            self.code.push(Instr::Bin(op));
        }
    }

    fn unary(&mut self) -> Result<(), String> {
        if self.eat("-") {
            self.enter()?;
            self.unary()?;
            self.code.push(Instr::Neg);
            self.depth -= 1;
            Ok(())
        } else if self.eat("+") {
            self.enter()?;
            self.unary()?;
            self.depth -= 1;
            Ok(())
        } else {
            self.power()
        }
    }

    fn power(&mut self) -> Result<(), String> {
        self.atom()?;
        if self.eat("**") || self.eat("^") {
            self.enter()?;
            self.unary()?;
            self.code.push(Instr::Bin(Op::Pow));
            self.depth -= 1;
        }
        Ok(())
    }

    fn atom(&mut self) -> Result<(), String> {
        self.skip_ws();
        match self.peek() {
            Some('(') => {
                self.cur.pos += 1;
                self.enter()?;
                self.expr()?;
                if !self.eat(")") {
                    return Err(self.error("expected ')'"));
                }
                self.depth -= 1;
                Ok(())
            }
            Some(c) if c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => self.name(),
            _ => Err(self.error("expected a number, a name or '('")),
        }
    }

    fn number(&mut self) -> Result<(), String> {
        let start = self.cur.pos;
        let digits = |p: &mut Self| {
            while p.peek().is_some_and(|c| c.is_ascii_digit() || c == '_') {
                p.cur.pos += 1;
            }
        };
        digits(self);
        let mut float = false;
        if self.peek() == Some('.') {
            float = true;
            self.cur.pos += 1;
            digits(self);
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            float = true;
            self.cur.pos += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.cur.pos += 1;
            }
            digits(self);
        }
        let text: String = self.cur.chars[start..self.cur.pos]
            .iter()
            .filter(|c| **c != '_')
            .collect();
        let bad = |p: &mut Self| {
            p.cur.pos = start;
            p.error(&format!("'{text}' is not a number"))
        };
        if float {
            match text.parse::<f64>() {
                Ok(x) if x.is_finite() => self.code.push(Instr::Push(Num::Float(x))),
                _ => return Err(bad(self)),
            }
        } else {
            match text.parse::<i64>() {
                Ok(i) => self.code.push(Instr::Push(Num::Int(i))),
                Err(_) => match text.parse::<f64>() {
                    // An int literal beyond 64 bits continues as a float.
                    Ok(x) if x.is_finite() => self.code.push(Instr::Push(Num::Float(x))),
                    _ => return Err(bad(self)),
                },
            }
        }
        if self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(bad(self));
        }
        Ok(())
    }

    fn name(&mut self) -> Result<(), String> {
        let start = self.cur.pos;
        let mut name = self.ident().unwrap_or_default();
        if name == "math" && (self.eat("::") || self.eat(".")) {
            name = self.ident().unwrap_or_default();
        }
        if name == self.var {
            self.code.push(Instr::Var);
            return Ok(());
        }
        if let Some((_, v)) = CONSTANTS.iter().find(|(n, _)| *n == name) {
            self.code.push(Instr::Push(Num::Float(*v)));
            return Ok(());
        }
        let Some(f) = lookup(&name) else {
            self.cur.pos = start;
            return Err(self.error(&format!("unknown name '{name}'")));
        };
        if !self.eat("(") {
            return Err(self.error(&format!("expected '(' after {name}")));
        }
        self.enter()?;
        let mut n = 0usize;
        if !self.eat(")") {
            loop {
                self.expr()?;
                n += 1;
                if self.eat(",") {
                    continue;
                }
                if self.eat(")") {
                    break;
                }
                return Err(self.error("expected ',' or ')'"));
            }
        }
        self.depth -= 1;
        let (lo, hi) = arity(f);
        if n < lo || n > hi {
            self.cur.pos = start;
            let takes = match (lo, hi) {
                (lo, hi) if lo == hi => format!("{lo}"),
                (lo, usize::MAX) => format!("at least {lo}"),
                (lo, hi) => format!("{lo} or {hi}"),
            };
            return Err(self.error(&format!("{name}() takes {takes} argument(s), got {n}")));
        }
        self.code.push(Instr::Call(f, n));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(src: &str, x: i64) -> Result<Num, String> {
        Formula::new(src, "epoch")?.eval_num(Num::Int(x))
    }

    #[test]
    fn python_operators() {
        // Values as python3 prints them.
        assert_eq!(ev("epoch // 10", 25), Ok(Num::Int(2)));
        assert_eq!(ev("(epoch-5) % 3", 0), Ok(Num::Int(1)));
        assert_eq!(ev("round(0.5)", 0), Ok(Num::Int(0)));
        assert_eq!(ev("round(1.5) + round(2.5)", 0), Ok(Num::Int(4)));
        assert_eq!(ev("2 ** 3 ** 2", 0), Ok(Num::Int(512)));
        assert_eq!(ev("-2**2", 0), Ok(Num::Int(-4)));
        assert_eq!(ev("2**-1", 0), Ok(Num::Float(0.5)));
        assert_eq!(ev("7.5 // 2", 0), Ok(Num::Float(3.0)));
        assert_eq!(ev("-7.5 % 2", 0), Ok(Num::Float(0.5)));
        assert_eq!(ev("epoch / 4", 2), Ok(Num::Float(0.5)));
        assert_eq!(ev("0.1^floor(epoch/30)", 65), ev("0.1**2", 0));
        assert_eq!(ev("lambda e: e * 2", 3), Ok(Num::Int(6)));
        assert_eq!(ev("math.cos(math.pi * epoch)", 1), Ok(Num::Float(-1.0)));
        assert_eq!(ev("max(1, epoch, 2.5)", 2), Ok(Num::Float(2.5)));
    }

    #[test]
    fn python_errors() {
        assert_eq!(ev("1/(epoch-epoch)", 3), Err("division by zero".into()));
        assert_eq!(ev("0/0", 0), Err("division by zero".into()));
        assert_eq!(ev("epoch % 0.0", 1), Err("division by zero".into()));
        assert!(ev("sqrt(-1)", 0).unwrap_err().contains("math domain error"));
        assert!(ev("exp(1000)", 0).unwrap_err().contains("overflow"));
        assert!(ev("(-8) ** (1/3)", 0)
            .unwrap_err()
            .contains("fractional power"));
        let f = Formula::new("1/epoch", "epoch").unwrap();
        assert_eq!(
            f.eval(0).unwrap_err(),
            "formula '1/epoch' at epoch=0: division by zero"
        );
    }

    #[test]
    fn parse_errors_name_position_and_what_is_allowed() {
        let e = Formula::new("0.5^step", "epoch").unwrap_err();
        assert!(
            e.starts_with("cannot parse formula '0.5^step' at character 4: unknown name 'step' at 's'; allowed: numbers, epoch, + - * / // % ** ^,"),
            "{e}"
        );
        let e = Formula::new("epoch if epoch < 5 else 1", "epoch").unwrap_err();
        assert!(e.starts_with("cannot parse formula 'epoch if epoch < 5 else 1' at character 6: unexpected text at 'i'; allowed:"), "{e}");
        let e = Formula::new("(((", "epoch").unwrap_err();
        assert!(
            e.contains("at character 3: expected a number, a name or '(' at the end"),
            "{e}"
        );
        let e = Formula::new("min(1)", "epoch").unwrap_err();
        assert!(
            e.contains("min() takes at least 2 argument(s), got 1"),
            "{e}"
        );
    }

    /// Run in a thread with a normal (2 MiB) stack: the limits must hold before any recursion
    /// gets deep, at the sizes that used to overflow the stack.
    #[test]
    fn limits_hold_at_huge_sizes() {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let terms = vec!["epoch"; 40_000].join("+");
                assert_eq!(
                    Formula::new(&terms, "epoch").unwrap_err(),
                    "formula is 239999 characters long; at most 4096 are allowed"
                );
                let parens = format!("{}1{}", "(".repeat(60_000), ")".repeat(60_000));
                assert!(Formula::new(&parens, "epoch")
                    .unwrap_err()
                    .starts_with("formula is 120001 characters long"));
                // Under the length limit, the depth limit speaks.
                let deep = format!("{}1{}", "(".repeat(2000), ")".repeat(2000));
                let e = Formula::new(&deep, "epoch").unwrap_err();
                assert!(
                    e.contains("at character 65: nested deeper than 64 levels"),
                    "{e}"
                );
                let signs = format!("{}1", "-".repeat(4000));
                assert!(Formula::new(&signs, "epoch")
                    .unwrap_err()
                    .contains("nested deeper than 64 levels"));
                // A long flat sum is fine: chains are loops, and evaluation is iterative.
                let sum = vec!["1"; 2000].join("+");
                assert_eq!(
                    Formula::new(&sum, "epoch").unwrap().eval_num(Num::Int(0)),
                    Ok(Num::Int(2000))
                );
            })
            .unwrap()
            .join()
            .unwrap();
    }

    /// Python's own evaluation of every fixture formula at every fixture epoch (`None`: Python
    /// raised or gave a complex number), read from stdin as {"epochs", "formulas"}.
    const PYTHON_HARNESS: &str = r#"import json, math, sys
req = json.load(sys.stdin)
ns = {k: getattr(math, k) for k in dir(math) if not k.startswith('_')}
ns.update(ln=math.log, round=round, abs=abs, min=min, max=max, pow=pow)
out = []
for f in req["formulas"]:
    for e in req["epochs"]:
        try:
            v = eval(f, {"__builtins__": {}}, dict(ns, epoch=e))
            v = None if isinstance(v, complex) else repr(float(v))
        except (ArithmeticError, ValueError, OverflowError):
            v = None
        out.append([f, e, v])
print(json.dumps(out))
"#;

    #[derive(serde::Deserialize)]
    struct Fixture {
        epochs: Vec<i64>,
        cases: Vec<FixtureCase>,
    }

    #[derive(serde::Deserialize)]
    struct FixtureCase {
        formula: String,
        values: Vec<Option<String>>,
    }

    fn fixture() -> Fixture {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/formulas_python.json");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        serde_json::from_str(&text).unwrap()
    }

    /// Our value of `formula` at `epoch` against Python's, bit for bit.
    fn compare(formula: &str, epoch: i64, python: Option<&str>) -> Result<(), String> {
        let ours = Formula::new(formula, "epoch").and_then(|f| f.eval_num(Num::Int(epoch)));
        let same = match (&ours, python) {
            (Err(_), None) => true,
            (Ok(v), Some(p)) => {
                let p: f64 = p.parse().map_err(|e| format!("{p}: {e}"))?;
                let ulps = v.as_f64().to_bits().abs_diff(p.to_bits());
                // Rust's own cbrt/asinh/acosh/atanh may sit one ulp from the C library's.
                let own = ["cbrt", "asinh", "acosh", "atanh"]
                    .iter()
                    .any(|f| formula.contains(f));
                ulps == 0 || (own && ulps <= 1)
            }
            _ => false,
        };
        if same {
            Ok(())
        } else {
            Err(format!(
                "{formula} at epoch={epoch}: ours {ours:?}, python {python:?}"
            ))
        }
    }

    fn check_all(rows: impl Iterator<Item = (String, i64, Option<String>)>) -> usize {
        let mut bad = Vec::new();
        let mut n = 0;
        for (f, e, v) in rows {
            n += 1;
            if let Err(m) = compare(&f, e, v.as_deref()) {
                bad.push(m);
            }
        }
        assert!(
            bad.is_empty(),
            "{} of {n} differ from Python:\n{}",
            bad.len(),
            bad.join("\n")
        );
        n
    }

    #[test]
    fn formulas_match_pythons_values_in_the_fixture() {
        let fx = fixture();
        let rows = fx.cases.iter().flat_map(|c| {
            fx.epochs
                .iter()
                .zip(&c.values)
                .map(move |(e, v)| (c.formula.clone(), *e, v.clone()))
        });
        assert!(check_all(rows) > 700);
    }

    /// Runs python3 itself over the fixture's formulas; skips (saying so) without python3.
    #[test]
    fn formulas_match_live_python() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let fx = fixture();
        let formulas: Vec<&str> = fx.cases.iter().map(|c| c.formula.as_str()).collect();
        let req = serde_json::json!({"epochs": fx.epochs, "formulas": formulas}).to_string();
        let child = Command::new("python3")
            .args(["-c", PYTHON_HARNESS])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn();
        let Ok(mut child) = child else {
            let _ = writeln!(
                std::io::stderr(),
                "skipped: python3 is not available (the checked-in Python values were compared instead)"
            );
            return;
        };
        child
            .stdin
            .take()
            .unwrap()
            .write_all(req.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "python3 failed");
        let rows: Vec<(String, i64, Option<String>)> = serde_json::from_slice(&out.stdout).unwrap();
        // The fixture is what Python says, so it cannot drift from the live run.
        let fixture_rows: Vec<(String, i64, Option<String>)> = fx
            .cases
            .iter()
            .flat_map(|c| {
                fx.epochs
                    .iter()
                    .zip(&c.values)
                    .map(move |(e, v)| (c.formula.clone(), *e, v.clone()))
            })
            .collect();
        assert_eq!(rows, fixture_rows);
        check_all(rows.into_iter());
    }
}
