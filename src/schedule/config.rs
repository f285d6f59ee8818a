//! The serde config (`{"scheduler": NAME, "params": {...}, "children": [...]}`, the golden
//! CASE/CHILD shape), the compact CLI string form, and dispatch to each scheduler's builder.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Number, Value};

use super::base::{LrScheduler, ParamGroups};
use super::error::ScheduleError;
use super::{
    chained, constant, cosine, cyclic, exponential, lambda, one_cycle, plateau, polynomial,
    sequential, step, warm_restarts,
};

/// PyTorch's fifteen scheduler classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    LambdaLR,
    MultiplicativeLR,
    StepLR,
    MultiStepLR,
    ConstantLR,
    LinearLR,
    ExponentialLR,
    PolynomialLR,
    CosineAnnealingLR,
    ChainedScheduler,
    SequentialLR,
    ReduceLROnPlateau,
    CyclicLR,
    OneCycleLR,
    CosineAnnealingWarmRestarts,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 15] = [
        Self::LambdaLR,
        Self::MultiplicativeLR,
        Self::StepLR,
        Self::MultiStepLR,
        Self::ConstantLR,
        Self::LinearLR,
        Self::ExponentialLR,
        Self::PolynomialLR,
        Self::CosineAnnealingLR,
        Self::ChainedScheduler,
        Self::SequentialLR,
        Self::ReduceLROnPlateau,
        Self::CyclicLR,
        Self::OneCycleLR,
        Self::CosineAnnealingWarmRestarts,
    ];

    /// PyTorch's class name.
    pub fn name(self) -> &'static str {
        match self {
            Self::LambdaLR => "LambdaLR",
            Self::MultiplicativeLR => "MultiplicativeLR",
            Self::StepLR => "StepLR",
            Self::MultiStepLR => "MultiStepLR",
            Self::ConstantLR => "ConstantLR",
            Self::LinearLR => "LinearLR",
            Self::ExponentialLR => "ExponentialLR",
            Self::PolynomialLR => "PolynomialLR",
            Self::CosineAnnealingLR => "CosineAnnealingLR",
            Self::ChainedScheduler => "ChainedScheduler",
            Self::SequentialLR => "SequentialLR",
            Self::ReduceLROnPlateau => "ReduceLROnPlateau",
            Self::CyclicLR => "CyclicLR",
            Self::OneCycleLR => "OneCycleLR",
            Self::CosineAnnealingWarmRestarts => "CosineAnnealingWarmRestarts",
        }
    }

    /// Case-insensitive lookup of a class name.
    pub fn from_name(name: &str) -> Result<Self, ScheduleError> {
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
            .ok_or_else(|| ScheduleError::UnknownScheduler {
                name: name.to_string(),
                valid: Self::ALL.map(Self::name).join(", "),
            })
    }

    /// The constructor keyword arguments this class accepts (PyTorch's names).
    pub fn accepted_params(self) -> &'static [&'static str] {
        match self {
            Self::LambdaLR | Self::MultiplicativeLR => &["lr_lambda", "last_epoch"],
            Self::StepLR => &["step_size", "gamma", "last_epoch"],
            Self::MultiStepLR => &["milestones", "gamma", "last_epoch"],
            Self::ConstantLR => &["factor", "total_iters", "last_epoch"],
            Self::LinearLR => &["start_factor", "end_factor", "total_iters", "last_epoch"],
            Self::ExponentialLR => &["gamma", "last_epoch"],
            Self::PolynomialLR => &["total_iters", "power", "last_epoch"],
            Self::CosineAnnealingLR => &["T_max", "eta_min", "last_epoch"],
            Self::ChainedScheduler => &[],
            Self::SequentialLR => &["milestones", "last_epoch"],
            Self::ReduceLROnPlateau => &[
                "mode",
                "factor",
                "patience",
                "threshold",
                "threshold_mode",
                "cooldown",
                "min_lr",
                "eps",
            ],
            Self::CyclicLR => &[
                "base_lr",
                "max_lr",
                "step_size_up",
                "step_size_down",
                "mode",
                "gamma",
                "scale_fn",
                "scale_mode",
                "cycle_momentum",
                "base_momentum",
                "max_momentum",
                "last_epoch",
            ],
            Self::OneCycleLR => &[
                "max_lr",
                "total_steps",
                "epochs",
                "steps_per_epoch",
                "pct_start",
                "anneal_strategy",
                "cycle_momentum",
                "base_momentum",
                "max_momentum",
                "div_factor",
                "final_div_factor",
                "three_phase",
                "last_epoch",
            ],
            Self::CosineAnnealingWarmRestarts => &["T_0", "T_mult", "eta_min", "last_epoch"],
        }
    }

    /// ChainedScheduler and SequentialLR wrap child schedulers.
    pub fn is_composite(self) -> bool {
        matches!(self, Self::ChainedScheduler | Self::SequentialLR)
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Serialize for SchedulerKind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for SchedulerKind {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Self::from_name(&name).map_err(serde::de::Error::custom)
    }
}

/// Whether PyTorch users step a schedule once per batch or once per epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    Step,
    Epoch,
}

/// A scheduler with PyTorch's class and keyword-argument names. Serializes to exactly the golden
/// CASE/CHILD shape: `{"scheduler": "StepLR", "params": {...}, "children": [...]}` (`children`
/// only for ChainedScheduler / SequentialLR). Parameter values are validated by [`Self::build`],
/// which knows the number of param groups; names and structure are checked on parsing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchedulerConfig {
    #[serde(rename = "scheduler")]
    pub kind: SchedulerKind,
    #[serde(default)]
    pub params: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<SchedulerConfig>,
}

impl SchedulerConfig {
    /// A config without parameters (PyTorch's defaults apply) and without children.
    pub fn new(kind: SchedulerKind) -> Self {
        Self {
            kind,
            params: Map::new(),
            children: Vec::new(),
        }
    }

    /// Builder-style parameter setter.
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.params.insert(key.to_string(), value.into());
        self
    }

    /// Parses the compact CLI form, e.g. `StepLR(step_size=30, gamma=0.1)` or
    /// `SequentialLR(LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=95),
    /// milestones=[5])`; a string starting with `{` is read as JSON.
    pub fn parse(spec: &str) -> Result<Self, ScheduleError> {
        if spec.trim_start().starts_with('{') {
            return Self::from_json(spec);
        }
        let mut p = Parser::new(spec);
        p.skip_ws();
        let mut cfg = p.spec()?;
        p.skip_ws();
        if p.pos < p.chars.len() {
            return Err(p.error("unexpected text after the scheduler"));
        }
        cfg.normalize()?;
        Ok(cfg)
    }

    /// Reads the JSON form (scheduler names case-insensitive).
    pub fn from_json(text: &str) -> Result<Self, ScheduleError> {
        let mut cfg: Self =
            serde_json::from_str(text).map_err(|e| ScheduleError::Json(e.to_string()))?;
        cfg.normalize()?;
        Ok(cfg)
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        // Serializing a Map/Vec/str tree cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Checks parameter names (matched case-insensitively, rewritten to PyTorch's spelling) and
    /// the children's structure, recursively. Values are checked by [`Self::build`].
    pub fn normalize(&mut self) -> Result<(), ScheduleError> {
        let accepted = self.kind.accepted_params();
        let mut params = Map::new();
        for (key, value) in std::mem::take(&mut self.params) {
            let canon = accepted
                .iter()
                .find(|a| **a == key)
                .or_else(|| accepted.iter().find(|a| a.eq_ignore_ascii_case(&key)));
            match canon {
                Some(c) => {
                    if params.insert((*c).to_string(), value).is_some() {
                        return Err(ScheduleError::param(
                            self.kind.name(),
                            format!("parameter {c} is given twice"),
                        ));
                    }
                }
                None => {
                    return Err(ScheduleError::UnknownParam {
                        scheduler: self.kind.name().to_string(),
                        param: key,
                        accepted: if accepted.is_empty() {
                            "none (only child schedulers)".to_string()
                        } else {
                            accepted.join(", ")
                        },
                    })
                }
            }
        }
        self.params = params;
        if self.kind.is_composite() {
            if self.children.is_empty() {
                return Err(ScheduleError::param(
                    self.kind.name(),
                    "expects at least one child scheduler, but got none",
                ));
            }
            for (i, c) in self.children.iter().enumerate() {
                if c.kind == SchedulerKind::ReduceLROnPlateau {
                    return Err(ScheduleError::param(
                        self.kind.name(),
                        format!(
                            "does not support ReduceLROnPlateau (its step needs a metric), but got one at index {i}"
                        ),
                    ));
                }
            }
        } else if !self.children.is_empty() {
            return Err(ScheduleError::param(
                self.kind.name(),
                format!(
                    "takes no child schedulers, got {} (only ChainedScheduler and SequentialLR do)",
                    self.children.len()
                ),
            ));
        }
        for c in &mut self.children {
            c.normalize()?;
        }
        Ok(())
    }

    /// CyclicLR and OneCycleLR (anywhere inside) are stepped per batch; the rest per epoch.
    pub fn default_interval(&self) -> Interval {
        if self.any(&|c| matches!(c.kind, SchedulerKind::CyclicLR | SchedulerKind::OneCycleLR)) {
            Interval::Step
        } else {
            Interval::Epoch
        }
    }

    /// Whether `step` needs a metric: ReduceLROnPlateau anywhere inside.
    pub fn needs_metric(&self) -> bool {
        self.any(&|c| c.kind == SchedulerKind::ReduceLROnPlateau)
    }

    /// Whether the schedule writes momentum: CyclicLR / OneCycleLR with `cycle_momentum`
    /// (PyTorch's default `True`) anywhere inside.
    pub fn cycles_momentum(&self) -> bool {
        self.any(&|c| {
            matches!(c.kind, SchedulerKind::CyclicLR | SchedulerKind::OneCycleLR)
                && c.params.get("cycle_momentum") != Some(&Value::Bool(false))
        })
    }

    /// OneCycleLR without `total_steps` and without `epochs`+`steps_per_epoch`: set
    /// `total_steps` (the trainer passes epochs × batches per epoch). Recurses into children.
    pub fn fill_total_steps(&mut self, total_steps: usize) {
        if self.kind == SchedulerKind::OneCycleLR {
            let has = |k: &str| self.params.get(k).is_some_and(|v| !v.is_null());
            let given = has("total_steps") || (has("epochs") && has("steps_per_epoch"));
            if !given {
                self.params
                    .insert("total_steps".to_string(), Value::from(total_steps));
            }
        }
        for c in &mut self.children {
            c.fill_total_steps(total_steps);
        }
    }

    fn any(&self, pred: &dyn Fn(&SchedulerConfig) -> bool) -> bool {
        pred(self) || self.children.iter().any(|c| c.any(pred))
    }

    /// Validates every parameter and builds the scheduler, performing the constructor's initial
    /// step on `groups` exactly as PyTorch does. Children of a composite are built first, in
    /// order, on the same groups (as one does in Python before passing them in).
    pub fn build(&self, groups: &mut ParamGroups) -> Result<Box<dyn LrScheduler>, ScheduleError> {
        let mut cfg = self.clone();
        cfg.normalize()?;
        cfg.build_normalized(groups)
    }

    fn build_normalized(
        &self,
        groups: &mut ParamGroups,
    ) -> Result<Box<dyn LrScheduler>, ScheduleError> {
        groups.check(self.kind.name())?;
        let p = Params::new(self.kind.name(), &self.params);
        p.check_last_epoch()?;
        use SchedulerKind as K;
        Ok(match self.kind {
            K::LambdaLR => Box::new(lambda::LambdaLR::from_params(&p, groups)?),
            K::MultiplicativeLR => Box::new(lambda::MultiplicativeLR::from_params(&p, groups)?),
            K::StepLR => Box::new(step::StepLR::from_params(&p, groups)?),
            K::MultiStepLR => Box::new(step::MultiStepLR::from_params(&p, groups)?),
            K::ConstantLR => Box::new(constant::ConstantLR::from_params(&p, groups)?),
            K::LinearLR => Box::new(constant::LinearLR::from_params(&p, groups)?),
            K::ExponentialLR => Box::new(exponential::ExponentialLR::from_params(&p, groups)?),
            K::PolynomialLR => Box::new(polynomial::PolynomialLR::from_params(&p, groups)?),
            K::CosineAnnealingLR => Box::new(cosine::CosineAnnealingLR::from_params(&p, groups)?),
            K::ReduceLROnPlateau => Box::new(plateau::ReduceLROnPlateau::from_params(&p, groups)?),
            K::CyclicLR => Box::new(cyclic::CyclicLR::from_params(&p, groups)?),
            K::OneCycleLR => Box::new(one_cycle::OneCycleLR::from_params(&p, groups)?),
            K::CosineAnnealingWarmRestarts => Box::new(
                warm_restarts::CosineAnnealingWarmRestarts::from_params(&p, groups)?,
            ),
            K::ChainedScheduler => {
                let children = self.build_children(groups)?;
                Box::new(chained::ChainedScheduler::new(groups, children)?)
            }
            K::SequentialLR => {
                let milestones = p.int_list("milestones")?;
                let children = self.build_children(groups)?;
                Box::new(sequential::SequentialLR::new(groups, children, milestones)?)
            }
        })
    }

    fn build_children(
        &self,
        groups: &mut ParamGroups,
    ) -> Result<Vec<Box<dyn LrScheduler>>, ScheduleError> {
        self.children
            .iter()
            .map(|c| c.build_normalized(groups))
            .collect()
    }
}

impl FromStr for SchedulerConfig {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The compact form, which [`SchedulerConfig::parse`] reads back.
impl fmt::Display for SchedulerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(", self.kind.name())?;
        let mut first = true;
        for c in &self.children {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{c}")?;
        }
        for (k, v) in &self.params {
            if !first {
                f.write_str(", ")?;
            }
            first = false;
            write!(f, "{k}=")?;
            write_value(f, v)?;
        }
        f.write_str(")")
    }
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
    chars: Vec<char>,
    pos: usize,
}

/// A parsed argument value: plain data, or scheduler specs (for `schedulers=[...]`).
enum Parsed {
    Data(Value),
    Spec(SchedulerConfig),
    Specs(Vec<SchedulerConfig>),
}

impl Parser {
    fn new(s: &str) -> Self {
        Self {
            chars: s.chars().collect(),
            pos: 0,
        }
    }

    fn error(&self, message: &str) -> ScheduleError {
        let near: String = self.chars[self.pos.min(self.chars.len())..]
            .iter()
            .take(24)
            .collect();
        ScheduleError::Parse {
            position: self.pos,
            message: message.to_string(),
            near: if near.is_empty() {
                "end of input".to_string()
            } else {
                near
            },
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn ident(&mut self) -> Option<String> {
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

    /// NAME or NAME(args)
    fn spec(&mut self) -> Result<SchedulerConfig, ScheduleError> {
        let start = self.pos;
        let name = self
            .ident()
            .ok_or_else(|| self.error("expected a scheduler name"))?;
        let kind = SchedulerKind::from_name(&name).map_err(|e| {
            let mut p = Parser::new("");
            p.chars.clone_from(&self.chars);
            p.pos = start;
            p.error(&e.to_string())
        })?;
        let mut cfg = SchedulerConfig::new(kind);
        self.skip_ws();
        if self.peek() != Some('(') {
            return Ok(cfg);
        }
        self.pos += 1;
        loop {
            self.skip_ws();
            if self.peek() == Some(')') {
                self.pos += 1;
                break;
            }
            let arg_start = self.pos;
            let Some(id) = self.ident() else {
                return Err(self.error("expected name=value or a child scheduler"));
            };
            self.skip_ws();
            if self.peek() == Some('=') {
                self.pos += 1;
                self.skip_ws();
                let value_start = self.pos;
                match self.value()? {
                    Parsed::Data(v) => {
                        if cfg.params.insert(id.clone(), v).is_some() {
                            self.pos = arg_start;
                            return Err(self.error(&format!("parameter {id} is given twice")));
                        }
                    }
                    Parsed::Specs(specs) if id == "schedulers" => cfg.children.extend(specs),
                    Parsed::Spec(_) | Parsed::Specs(_) => {
                        self.pos = value_start;
                        return Err(self.error(&format!(
                            "only schedulers=[...] may hold schedulers, not {id}"
                        )));
                    }
                }
            } else {
                self.pos = arg_start;
                let child = self.spec()?;
                cfg.children.push(child);
            }
            self.skip_ws();
            match self.peek() {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
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
                let start = self.pos;
                let Some(id) = self.ident() else {
                    return Err(self.error("expected a value"));
                };
                self.skip_ws();
                if self.peek() == Some('(') {
                    self.pos = start;
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
        self.pos += 1; // '['
        let mut data = Vec::new();
        let mut specs = Vec::new();
        loop {
            self.skip_ws();
            if self.peek() == Some(']') {
                self.pos += 1;
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
                Some(',') => self.pos += 1,
                Some(']') => {
                    self.pos += 1;
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
        let start = self.pos;
        let quote = self.peek().unwrap_or('\'');
        self.pos += 1;
        let mut out = String::new();
        loop {
            match self.peek() {
                None => {
                    self.pos = start;
                    return Err(self.error("unterminated string"));
                }
                Some('\\') => {
                    self.pos += 1;
                    if let Some(c) = self.peek() {
                        out.push(c);
                        self.pos += 1;
                    }
                }
                Some(c) if c == quote => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(c) => {
                    out.push(c);
                    self.pos += 1;
                }
            }
        }
    }

    fn number(&mut self) -> Result<Value, ScheduleError> {
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
        let is_float = text.contains(['.', 'e', 'E']);
        let bad = |p: &mut Self| {
            p.pos = start;
            p.error(&format!("'{text}' is not a number"))
        };
        if !is_float {
            if let Ok(i) = text.parse::<i64>() {
                return Ok(Value::from(i));
            }
        }
        match text.parse::<f64>() {
            Ok(x) if x.is_finite() => Number::from_f64(x)
                .map(Value::Number)
                .ok_or_else(|| bad(self)),
            _ => Err(bad(self)),
        }
    }

    fn json_object(&mut self) -> Result<Parsed, ScheduleError> {
        let rest: String = self.chars[self.pos..].iter().collect();
        let mut stream = serde_json::Deserializer::from_str(&rest).into_iter::<Value>();
        match stream.next() {
            Some(Ok(v)) => {
                let consumed = rest[..stream.byte_offset()].chars().count();
                self.pos += consumed;
                Ok(Parsed::Data(v))
            }
            Some(Err(e)) => Err(self.error(&format!("invalid JSON object: {e}"))),
            None => Err(self.error("expected a JSON object")),
        }
    }
}

/// Typed access to a config's `params`, producing PyTorch-style one-line messages.
pub(crate) struct Params<'a> {
    pub sched: &'static str,
    map: &'a Map<String, Value>,
}

impl<'a> Params<'a> {
    pub fn new(sched: &'static str, map: &'a Map<String, Value>) -> Self {
        Self { sched, map }
    }

    /// The value, treating JSON `null` (Python `None`) as "not given".
    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn err(&self, message: impl Into<String>) -> ScheduleError {
        ScheduleError::param(self.sched, message)
    }

    fn bad(&self, key: &str, what: &str, v: &Value) -> ScheduleError {
        self.err(format!("{key} must be {what}, got {v}"))
    }

    fn missing(&self, key: &str, what: &str) -> ScheduleError {
        self.err(format!("{key} is required ({what})"))
    }

    pub fn to_float(&self, key: &str, v: &Value) -> Result<f64, ScheduleError> {
        v.as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| self.bad(key, "a number", v))
    }

    pub fn to_int(&self, key: &str, v: &Value) -> Result<i64, ScheduleError> {
        if let Some(i) = v.as_i64() {
            return Ok(i);
        }
        match v.as_f64() {
            // An integral float (30.0) is accepted as the integer it names.
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(x as i64),
            _ => Err(self.bad(key, "an integer", v)),
        }
    }

    pub fn float(&self, key: &str, default: f64) -> Result<f64, ScheduleError> {
        self.get(key).map_or(Ok(default), |v| self.to_float(key, v))
    }

    pub fn req_float(&self, key: &str) -> Result<f64, ScheduleError> {
        let v = self.get(key).ok_or_else(|| self.missing(key, "a number"))?;
        self.to_float(key, v)
    }

    pub fn int(&self, key: &str, default: i64) -> Result<i64, ScheduleError> {
        self.get(key).map_or(Ok(default), |v| self.to_int(key, v))
    }

    pub fn opt_int(&self, key: &str) -> Result<Option<i64>, ScheduleError> {
        self.get(key).map(|v| self.to_int(key, v)).transpose()
    }

    pub fn req_int(&self, key: &str) -> Result<i64, ScheduleError> {
        let v = self
            .get(key)
            .ok_or_else(|| self.missing(key, "an integer"))?;
        self.to_int(key, v)
    }

    pub fn bool(&self, key: &str, default: bool) -> Result<bool, ScheduleError> {
        match self.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(v) => Err(self.bad(key, "true or false", v)),
        }
    }

    pub fn string(&self, key: &str, default: &str) -> Result<String, ScheduleError> {
        match self.get(key) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(v) => Err(self.bad(key, "a string", v)),
        }
    }

    /// One of `allowed` (PyTorch's literal choices).
    pub fn choice(
        &self,
        key: &str,
        default: &str,
        allowed: &[&str],
    ) -> Result<String, ScheduleError> {
        let s = self.string(key, default)?;
        if allowed.contains(&s.as_str()) {
            Ok(s)
        } else {
            Err(self.err(format!(
                "{key} must be one of {}, got '{s}'",
                allowed
                    .iter()
                    .map(|a| format!("'{a}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )))
        }
    }

    pub fn int_list(&self, key: &str) -> Result<Vec<i64>, ScheduleError> {
        match self.get(key) {
            None => Err(self.missing(key, "a list of integers")),
            Some(Value::Array(items)) => items.iter().map(|v| self.to_int(key, v)).collect(),
            Some(v) => Err(self.bad(key, "a list of integers", v)),
        }
    }

    /// PyTorch's `_format_param`: a scalar for every group, or a list with one value per group.
    pub fn per_group(
        &self,
        key: &str,
        default: Option<f64>,
        n: usize,
    ) -> Result<Vec<f64>, ScheduleError> {
        match self.get(key) {
            None => default
                .map(|d| vec![d; n])
                .ok_or_else(|| self.missing(key, "a number or a list with one per param group")),
            Some(Value::Array(items)) => {
                if items.len() != n {
                    return Err(self.err(format!(
                        "{key} must have the same length as optimizer.param_groups. {key} has {} values, param_groups has {n}.",
                        items.len()
                    )));
                }
                items.iter().map(|v| self.to_float(key, v)).collect()
            }
            Some(v) => Ok(vec![self.to_float(key, v)?; n]),
        }
    }

    /// Only a fresh start (`last_epoch=-1`) is supported: resuming needs a saved optimizer.
    pub fn check_last_epoch(&self) -> Result<(), ScheduleError> {
        match self.get("last_epoch") {
            None => Ok(()),
            Some(v) if self.to_int("last_epoch", v) == Ok(-1) => Ok(()),
            Some(v) => Err(self.bad(
                "last_epoch",
                "-1 (resuming from a checkpoint is not supported)",
                v,
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_compact_forms() {
        let c = SchedulerConfig::parse("StepLR(step_size=30, gamma=0.1)").unwrap();
        assert_eq!(c.kind, SchedulerKind::StepLR);
        assert_eq!(c.params["step_size"], Value::from(30));
        assert_eq!(c.params["gamma"], Value::from(0.1));
        let c = SchedulerConfig::parse(
            "cycliclr(base_lr=0.001, max_lr=0.1, step_size_down=None, cycle_momentum=False)",
        )
        .unwrap();
        assert_eq!(c.kind, SchedulerKind::CyclicLR);
        assert_eq!(c.params["step_size_down"], Value::Null);
        assert_eq!(c.params["cycle_momentum"], Value::Bool(false));
        let c = SchedulerConfig::parse("MultiStepLR(milestones=[30,80])").unwrap();
        assert_eq!(c.params["milestones"], serde_json::json!([30, 80]));
        let c = SchedulerConfig::parse("CosineAnnealingLR(t_max=10)").unwrap();
        assert!(
            c.params.contains_key("T_max"),
            "names are matched case-insensitively"
        );
        let c = SchedulerConfig::parse(
            "SequentialLR(LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=95), milestones=[5])",
        )
        .unwrap();
        assert_eq!(c.children.len(), 2);
        assert_eq!(c.children[1].kind, SchedulerKind::CosineAnnealingLR);
        assert_eq!(
            SchedulerConfig::parse("ExponentialLR(gamma=1e-1)").unwrap(),
            "exponentiallr(GAMMA=0.1)"
                .parse::<SchedulerConfig>()
                .unwrap()
        );
    }

    #[test]
    fn json_shape_and_round_trips() {
        let text = r#"{"scheduler":"ChainedScheduler","params":{},"children":[{"scheduler":"ConstantLR","params":{"factor":0.5,"total_iters":2}},{"scheduler":"ExponentialLR","params":{"gamma":0.9}}]}"#;
        let c = SchedulerConfig::from_json(text).unwrap();
        assert_eq!(c.to_json(), text);
        let compact = c.to_string();
        assert_eq!(
            compact,
            "ChainedScheduler(ConstantLR(factor=0.5, total_iters=2), ExponentialLR(gamma=0.9))"
        );
        assert_eq!(SchedulerConfig::parse(&compact).unwrap(), c);
        assert_eq!(SchedulerConfig::parse(text).unwrap(), c);
        // Floats stay floats through the compact form.
        let c = SchedulerConfig::parse("StepLR(step_size=3, gamma=1.0)").unwrap();
        assert_eq!(SchedulerConfig::parse(&c.to_string()).unwrap(), c);
    }

    #[test]
    fn errors() {
        let e = SchedulerConfig::parse("FooLR(x=1)")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cannot parse scheduler spec at character 0: unknown scheduler 'FooLR'; valid schedulers: LambdaLR, MultiplicativeLR, StepLR,"), "{e}");
        assert_eq!(
            SchedulerConfig::parse("StepLR(step_size=3, gama=0.1)")
                .unwrap_err()
                .to_string(),
            "StepLR: unknown parameter 'gama'; accepted parameters: step_size, gamma, last_epoch"
        );
        assert_eq!(
            SchedulerConfig::parse("StepLR(step_size=3 gamma=0.1)")
                .unwrap_err()
                .to_string(),
            "cannot parse scheduler spec at character 19: expected ',' or ')' (at 'gamma=0.1)')"
        );
        assert_eq!(
            SchedulerConfig::parse("StepLR(step_size=3) x").unwrap_err().to_string(),
            "cannot parse scheduler spec at character 20: unexpected text after the scheduler (at 'x')"
        );
        assert_eq!(
            SchedulerConfig::parse("StepLR(step_size=1.2.3)")
                .unwrap_err()
                .to_string(),
            "cannot parse scheduler spec at character 17: '1.2.3' is not a number (at '1.2.3)')"
        );
        assert_eq!(
            SchedulerConfig::parse("StepLR(StepLR(step_size=1))")
                .unwrap_err()
                .to_string(),
            "StepLR: takes no child schedulers, got 1 (only ChainedScheduler and SequentialLR do)"
        );
        assert!(
            SchedulerConfig::from_json(r#"{"scheduler":"StepLR","extra":1}"#)
                .unwrap_err()
                .to_string()
                .starts_with("invalid scheduler JSON: unknown field `extra`")
        );
        let mut g = ParamGroups::new(vec![0.1], None);
        let e = SchedulerConfig::parse("StepLR(step_size=3, last_epoch=4)")
            .unwrap()
            .build(&mut g)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "StepLR: last_epoch must be -1 (resuming from a checkpoint is not supported), got 4"
        );
    }

    #[test]
    fn queries() {
        let p = |s: &str| SchedulerConfig::parse(s).unwrap();
        assert_eq!(p("StepLR(step_size=1)").default_interval(), Interval::Epoch);
        assert_eq!(
            p("SequentialLR(LinearLR(), OneCycleLR(max_lr=1), milestones=[5])").default_interval(),
            Interval::Step
        );
        assert!(p("ReduceLROnPlateau()").needs_metric());
        assert!(!p("ExponentialLR(gamma=0.5)").needs_metric());
        assert!(p("OneCycleLR(max_lr=1)").cycles_momentum());
        assert!(!p("CyclicLR(base_lr=1, max_lr=2, cycle_momentum=False)").cycles_momentum());
        let mut c = p("ChainedScheduler(OneCycleLR(max_lr=1), OneCycleLR(max_lr=1, total_steps=7), OneCycleLR(max_lr=1, epochs=2, steps_per_epoch=3))");
        c.fill_total_steps(100);
        assert_eq!(c.children[0].params["total_steps"], Value::from(100));
        assert_eq!(c.children[1].params["total_steps"], Value::from(7));
        assert!(!c.children[2].params.contains_key("total_steps"));
    }
}
