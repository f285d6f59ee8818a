//! Parameter groups for fine-tuning: name patterns that give parts of a model their own
//! learning rate (a multiplier of the base LR, as fastai's discriminative LRs), freeze them
//! (multiplier 0), or drop their weight decay (biases and norm weights).
//!
//! A [`GroupConfig`] is an ordered list of [`GroupRule`]s (`"body.*=0.1, head.*=1"`); the
//! first rule whose glob matches a parameter's name takes it. [`GroupConfig::resolve`] turns
//! it into a [`Grouping`] of concrete variables, which lrfind's optimizers take
//! ([`crate::optim::Sgd::grouped`], [`crate::optim::OptimizerConfig::build_grouped`]). The range
//! test then sweeps the base LR with the ratios fixed; a scheduler may move each group on its
//! own ([`GroupLrs`]), as PyTorch's do with `param_groups`.

use candle_core::Var;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result, Scope};

/// One rule: parameters whose name matches `pattern` train at `multiplier` × the base LR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRule {
    /// A glob on the parameter's name (`state_dict` name, or the `VarMap` key): `*` any run
    /// of characters (dots included), `?` one character, `[0-3]` / `[!0-3]` one of a set.
    pub pattern: String,
    /// Multiple of the base LR, finite and >= 0; 0 freezes the group.
    pub multiplier: f64,
    /// The group's own weight decay (None: the optimizer's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
}

/// Ordered name patterns, each with a multiplier of the base LR (first match wins).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupConfig {
    /// The rules, tried in order.
    pub rules: Vec<GroupRule>,
    /// Biases and normalisation weights get weight decay 0 (as transformer recipes do).
    #[serde(default)]
    pub no_decay_norm_bias: bool,
}

impl GroupConfig {
    /// No rules: one group of every parameter at the base LR.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a rule: names matching `pattern` train at `multiplier` × the base LR.
    pub fn group(mut self, pattern: impl Into<String>, multiplier: f64) -> Self {
        self.rules.push(GroupRule {
            pattern: pattern.into(),
            multiplier,
            weight_decay: None,
        });
        self
    }

    /// Adds a rule with its own weight decay.
    pub fn group_with_decay(
        mut self,
        pattern: impl Into<String>,
        multiplier: f64,
        weight_decay: f64,
    ) -> Self {
        self.rules.push(GroupRule {
            pattern: pattern.into(),
            multiplier,
            weight_decay: Some(weight_decay),
        });
        self
    }

    /// Adds a rule that freezes what `pattern` matches (multiplier 0).
    pub fn freeze(self, pattern: impl Into<String>) -> Self {
        self.group(pattern, 0.0)
    }

    /// Biases and normalisation weights get no weight decay.
    pub fn no_decay_norm_bias(mut self, on: bool) -> Self {
        self.no_decay_norm_bias = on;
        self
    }

    /// Parses `"body.*=0.1, head.*=1"`: comma-separated `PATTERN=MULTIPLIER` (commas inside
    /// `[...]` belong to the pattern).
    pub fn parse(spec: &str) -> Result<Self> {
        let mut cfg = Self::new();
        for item in split_top_level(spec) {
            let item = item.trim();
            let bad = |why: &str| Error::setting(Scope::Optimizer, "param_groups", item, why);
            if item.is_empty() {
                return Err(Error::setting(
                    Scope::Optimizer,
                    "param_groups",
                    spec,
                    "an empty entry (allowed: PATTERN=MULTIPLIER, comma-separated, e.g. 'body.*=0.1, head.*=1')",
                ));
            }
            let (pattern, mult) = item
                .rsplit_once('=')
                .ok_or_else(|| bad("not PATTERN=MULTIPLIER (e.g. 'body.*=0.1'; 0 freezes)"))?;
            let mult: f64 = mult.trim().parse().map_err(|_| {
                bad("the multiplier is not a number (allowed: a finite number >= 0; 0 freezes)")
            })?;
            cfg = cfg.group(pattern.trim(), mult);
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// Checks every rule: a pattern that is a valid glob, a multiplier finite and >= 0, a
    /// weight decay finite and >= 0.
    pub fn validate(&self) -> Result<()> {
        for r in &self.rules {
            let bad =
                |why: String| Error::setting(Scope::Optimizer, "param_groups", &r.pattern, why);
            if r.pattern.is_empty() {
                return Err(Error::setting(
                    Scope::Optimizer,
                    "param_groups",
                    format!("={}", r.multiplier),
                    "an empty pattern (allowed: a glob on parameter names, e.g. 'head.*')",
                ));
            }
            Glob::new(&r.pattern).map_err(bad)?;
            if !(r.multiplier.is_finite() && r.multiplier >= 0.0) {
                return Err(bad(format!(
                    "multiplier {} (allowed: a finite number >= 0; 0 freezes)",
                    r.multiplier
                )));
            }
            if let Some(wd) = r.weight_decay {
                if !(wd.is_finite() && wd >= 0.0) {
                    return Err(bad(format!(
                        "weight decay {wd} (allowed: a finite number >= 0)"
                    )));
                }
            }
        }
        if !self.rules.is_empty() && self.rules.iter().all(|r| r.multiplier == 0.0) {
            return Err(Error::setting(
                Scope::Optimizer,
                "param_groups",
                self.spec(),
                "every group is frozen: nothing would train (give some group a multiplier above 0)",
            ));
        }
        Ok(())
    }

    /// Whether it changes nothing: no rules and no weight-decay exemption (one group at the
    /// base LR, as without groups).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty() && !self.no_decay_norm_bias
    }

    /// The multipliers of the groups an optimizer gets, in order: one per rule above 0 (each
    /// rule takes at least one parameter, or resolving fails), or `[1]` without rules.
    pub fn multipliers(&self) -> Vec<f64> {
        if self.rules.is_empty() {
            return vec![1.0];
        }
        self.rules
            .iter()
            .map(|r| r.multiplier)
            .filter(|&m| m > 0.0)
            .collect()
    }

    /// The rules as `"body.*=0.1, head.*=1"` (what [`GroupConfig::parse`] reads).
    pub fn spec(&self) -> String {
        self.rules
            .iter()
            .map(|r| format!("{}={}", r.pattern, r.multiplier))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Assigns each of `vars` (name and variable, in the optimizer's order) to its group.
    /// `no_decay` says which are biases or normalisation weights (used with
    /// `no_decay_norm_bias`). With no rules every variable is in one group at multiplier 1.
    ///
    /// Errors name the fault: a variable no pattern matches, or a pattern that takes no
    /// variable (it matches none, or earlier patterns took all it matches).
    pub fn resolve(
        &self,
        vars: &[(String, Var)],
        no_decay: impl Fn(&str, &Var) -> bool,
    ) -> Result<Grouping> {
        self.validate()?;
        let rules: Vec<GroupRule> = if self.rules.is_empty() {
            vec![GroupRule {
                pattern: "*".into(),
                multiplier: 1.0,
                weight_decay: None,
            }]
        } else {
            self.rules.clone()
        };
        let globs: Vec<Glob> = rules
            .iter()
            .map(|r| Glob::new(&r.pattern).expect("validated"))
            .collect();
        let mut taken = vec![0usize; rules.len()];
        let mut rule_of = Vec::with_capacity(vars.len());
        let mut unmatched = Vec::new();
        for (name, _) in vars {
            match globs.iter().position(|g| g.matches(name)) {
                Some(r) => {
                    taken[r] += 1;
                    rule_of.push(r);
                }
                None => unmatched.push(name.as_str()),
            }
        }
        if !unmatched.is_empty() {
            return Err(Error::setting(
                Scope::Optimizer,
                "param_groups",
                self.spec(),
                format!(
                    "no pattern matches {} (add a catch-all such as '*=1', or patterns for them)",
                    list(&unmatched)
                ),
            ));
        }
        if rule_of.iter().all(|&r| rules[r].multiplier == 0.0) {
            return Err(Error::setting(
                Scope::Optimizer,
                "param_groups",
                self.spec(),
                "every parameter is frozen: nothing would train (give some group a multiplier above 0)",
            ));
        }
        if let Some(r) = taken.iter().position(|&n| n == 0) {
            let names: Vec<&str> = vars.iter().map(|(n, _)| n.as_str()).collect();
            let why = if names.iter().any(|n| globs[r].matches(n)) {
                "every parameter it matches is taken by an earlier pattern (the first match wins)"
                    .to_string()
            } else {
                format!("matches no parameter (the parameters: {})", list(&names))
            };
            return Err(Error::setting(
                Scope::Optimizer,
                "param_groups",
                &rules[r].pattern,
                why,
            ));
        }
        // Trainable rules become the optimizer's groups, in rule order.
        let mut group_of_rule = vec![None; rules.len()];
        let mut frozen_of_rule = vec![0; rules.len()];
        let mut groups = Vec::new();
        let mut frozen_rules = Vec::new();
        for (r, rule) in rules.iter().enumerate() {
            if rule.multiplier > 0.0 {
                group_of_rule[r] = Some(groups.len());
                groups.push(ParamGroup {
                    pattern: rule.pattern.clone(),
                    multiplier: rule.multiplier,
                    weight_decay: rule.weight_decay,
                    names: Vec::new(),
                });
            } else {
                frozen_of_rule[r] = frozen_rules.len();
                frozen_rules.push(ParamGroup {
                    pattern: rule.pattern.clone(),
                    multiplier: 0.0,
                    weight_decay: rule.weight_decay,
                    names: Vec::new(),
                });
            }
        }
        let mut slots = Vec::with_capacity(vars.len());
        let mut decay = Vec::with_capacity(vars.len());
        for ((name, var), &r) in vars.iter().zip(&rule_of) {
            slots.push(group_of_rule[r]);
            decay.push(!(self.no_decay_norm_bias && no_decay(name, var)));
            match group_of_rule[r] {
                Some(g) => groups[g].names.push(name.clone()),
                None => frozen_rules[frozen_of_rule[r]].names.push(name.clone()),
            }
        }
        Ok(Grouping {
            vars: vars.to_vec(),
            groups,
            frozen: frozen_rules,
            slots,
            decay,
        })
    }

    /// [`GroupConfig::resolve`] on a `VarMap`'s variables, sorted by name; a rank-0/1 tensor or
    /// a name ending in `bias` counts as a bias or normalisation weight.
    pub fn resolve_varmap(&self, varmap: &candle_nn::VarMap) -> Result<Grouping> {
        self.resolve(&crate::adapter::sorted_vars(varmap)?, default_no_decay)
    }
}

/// The usual "no weight decay" test where only names and shapes are known: biases (a name
/// ending in `bias`) and vectors (norm weights, scales), as nanoGPT and Hugging Face do.
pub fn default_no_decay(name: &str, var: &Var) -> bool {
    name.ends_with("bias") || var.rank() <= 1
}

/// One trainable group of a [`Grouping`] (or a frozen rule, with multiplier 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamGroup {
    /// The rule's pattern.
    pub pattern: String,
    /// Multiple of the base LR.
    pub multiplier: f64,
    /// The group's own weight decay, if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_decay: Option<f64>,
    /// The names it took, in the optimizer's order.
    pub names: Vec<String>,
}

/// Variables assigned to groups: what a grouped optimizer is built from.
#[derive(Debug, Clone)]
pub struct Grouping {
    vars: Vec<(String, Var)>,
    /// The trainable groups, in rule order: the optimizer's param groups.
    pub groups: Vec<ParamGroup>,
    /// The frozen rules and what they took.
    pub frozen: Vec<ParamGroup>,
    /// Per variable: its group, or None when frozen.
    slots: Vec<Option<usize>>,
    /// Per variable: whether weight decay applies.
    decay: Vec<bool>,
}

impl Grouping {
    /// Every variable in one group at the base LR (what an ungrouped optimizer does).
    pub fn single(vars: &[(String, Var)]) -> Self {
        GroupConfig::new()
            .resolve(vars, |_, _| false)
            .expect("one catch-all group takes every variable")
    }

    /// The variables, named, in the optimizer's order (frozen ones included: they keep their
    /// index, and get neither updates nor state).
    pub fn named_vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// The variables in the optimizer's order.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.iter().map(|(_, v)| v.clone()).collect()
    }

    /// Per variable, whether it is frozen.
    pub fn frozen_mask(&self) -> Vec<bool> {
        self.slots.iter().map(Option::is_none).collect()
    }

    /// The names of the frozen variables.
    pub fn frozen_names(&self) -> Vec<&str> {
        self.vars
            .iter()
            .zip(&self.slots)
            .filter(|(_, s)| s.is_none())
            .map(|((n, _), _)| n.as_str())
            .collect()
    }

    /// The names without weight decay.
    pub fn no_decay_names(&self) -> Vec<&str> {
        self.vars
            .iter()
            .zip(&self.decay)
            .filter(|(_, d)| !**d)
            .map(|((n, _), _)| n.as_str())
            .collect()
    }

    /// The groups' multipliers, in order.
    pub fn multipliers(&self) -> Vec<f64> {
        self.groups.iter().map(|g| g.multiplier).collect()
    }

    /// The learning rate of every trainable group at base LR `lr`.
    pub fn lrs_at(&self, lr: f64) -> Vec<f64> {
        self.groups.iter().map(|g| lr * g.multiplier).collect()
    }

    /// The per-variable layout an optimizer holds, starting at base LR `lr`.
    pub(crate) fn layout(&self, lr: f64) -> Layout {
        let mut l = Layout {
            slot: self.slots.clone(),
            decay: self.decay.clone(),
            group_wd: self.groups.iter().map(|g| g.weight_decay).collect(),
            mult: self.multipliers(),
            lrs: Vec::new(),
            base: lr,
        };
        l.set_base(lr);
        l
    }

    /// Every group (trainable, then frozen) with its LR at base LR `lr` (0 when frozen),
    /// as a report lists them.
    pub fn report(&self, lr: Option<f64>) -> Vec<GroupReport> {
        self.groups
            .iter()
            .chain(&self.frozen)
            .map(|g| GroupReport {
                pattern: g.pattern.clone(),
                multiplier: g.multiplier,
                frozen: g.multiplier == 0.0,
                params: g.names.clone(),
                lr: lr.map(|lr| lr * g.multiplier),
            })
            .collect()
    }
}

/// A group as a report lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupReport {
    /// Its pattern.
    pub pattern: String,
    /// Multiple of the base LR (0: frozen).
    pub multiplier: f64,
    /// Frozen: never updated.
    pub frozen: bool,
    /// The parameters it took.
    pub params: Vec<String>,
    /// Its learning rate at the suggested base LR (None without a suggestion).
    pub lr: Option<f64>,
}

/// Optimizers whose param groups each have a learning rate (PyTorch's `param_groups[i]["lr"]`),
/// for schedulers that move groups apart (`OneCycleLR(max_lr=[1e-4, 1e-3])`).
pub trait GroupLrs {
    /// Each trainable group's learning rate, in group order.
    fn group_lrs(&self) -> Vec<f64>;
    /// Sets each group's learning rate; `lrs` has one entry per group.
    fn set_group_lrs(&mut self, lrs: &[f64]) -> Result<()>;
}

/// What a grouped optimizer keeps per variable and per group.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Layout {
    slot: Vec<Option<usize>>,
    decay: Vec<bool>,
    group_wd: Vec<Option<f64>>,
    mult: Vec<f64>,
    lrs: Vec<f64>,
    base: f64,
}

impl Layout {
    /// `n` variables in one group at multiplier 1.
    pub fn single(n: usize, lr: f64) -> Self {
        Self {
            slot: vec![Some(0); n],
            decay: vec![true; n],
            group_wd: vec![None],
            mult: vec![1.0],
            lrs: vec![lr],
            base: lr,
        }
    }

    /// Sets the base LR: each group gets `lr` × its multiplier (with multiplier 1, exactly
    /// `lr`: one group behaves bit for bit as an ungrouped optimizer).
    pub fn set_base(&mut self, lr: f64) {
        self.base = lr;
        self.lrs = self.mult.iter().map(|m| lr * m).collect();
    }

    /// The base LR: the last one set, or the first group's LR over its multiplier after
    /// [`Layout::set_lrs`].
    pub fn base(&self) -> f64 {
        self.base
    }

    /// Each group's LR.
    pub fn lrs(&self) -> &[f64] {
        &self.lrs
    }

    /// Sets each group's LR.
    pub fn set_lrs(&mut self, lrs: &[f64]) -> Result<()> {
        if lrs.len() != self.lrs.len() {
            return Err(Error::setting(
                Scope::Optimizer,
                "group_lrs",
                format!("{lrs:?}"),
                format!(
                    "needs one learning rate per param group ({} groups)",
                    self.lrs.len()
                ),
            ));
        }
        if let Some(bad) = lrs.iter().find(|l| !(l.is_finite() && **l >= 0.0)) {
            return Err(Error::setting(
                Scope::Optimizer,
                "group_lrs",
                bad,
                "must be finite learning rates >= 0",
            ));
        }
        self.lrs = lrs.to_vec();
        if let (Some(l), Some(m)) = (lrs.first(), self.mult.first()) {
            self.base = l / m;
        }
        Ok(())
    }

    /// Variable `i`'s learning rate (None: frozen, never updated).
    #[inline]
    pub fn lr(&self, i: usize) -> Option<f64> {
        self.slot.get(i).copied().flatten().map(|g| self.lrs[g])
    }

    /// Variable `i`'s weight decay, given the optimizer's.
    #[inline]
    pub fn weight_decay(&self, i: usize, default: f64) -> f64 {
        if !self.decay.get(i).copied().unwrap_or(true) {
            return 0.0;
        }
        self.slot
            .get(i)
            .copied()
            .flatten()
            .and_then(|g| self.group_wd[g])
            .unwrap_or(default)
    }
}

/// Per name, whether any of `patterns` matches it; a bad glob, or a pattern that matches no
/// name, is an error naming it (field `field`).
pub(crate) fn match_any<S: AsRef<str>>(
    field: &'static str,
    patterns: &[S],
    names: &[&str],
) -> Result<Vec<bool>> {
    let mut hit = vec![false; names.len()];
    for p in patterns {
        let p = p.as_ref();
        let g = Glob::new(p).map_err(|why| Error::setting(Scope::Optimizer, field, p, why))?;
        let mut any = false;
        for (h, n) in hit.iter_mut().zip(names) {
            if g.matches(n) {
                *h = true;
                any = true;
            }
        }
        if !any {
            return Err(Error::setting(
                Scope::Optimizer,
                field,
                p,
                format!("matches no variable (the variables: {})", list(names)),
            ));
        }
    }
    Ok(hit)
}

/// A comma-separated list with its commas inside `[...]` kept.
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = (depth - 1).max(0),
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// At most eight names, then how many more.
fn list(names: &[&str]) -> String {
    const SHOWN: usize = 8;
    let mut s = names
        .iter()
        .take(SHOWN)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}

/// A glob over names: `*`, `?`, `[set]`, `[!set]`, `[a-z]`.
#[derive(Debug, Clone)]
struct Glob(Vec<Tok>);

#[derive(Debug, Clone)]
enum Tok {
    Char(char),
    Any,
    Star,
    Set {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Glob {
    fn new(p: &str) -> std::result::Result<Self, String> {
        let mut toks = Vec::new();
        let mut it = p.chars().peekable();
        while let Some(c) = it.next() {
            toks.push(match c {
                '*' => Tok::Star,
                '?' => Tok::Any,
                '[' => {
                    let negated = it.next_if(|&c| c == '!' || c == '^').is_some();
                    let mut ranges = Vec::new();
                    let mut closed = false;
                    while let Some(c) = it.next() {
                        if c == ']' && !ranges.is_empty() {
                            closed = true;
                            break;
                        }
                        if it.peek() == Some(&'-') {
                            it.next();
                            match it.next() {
                                Some(']') => {
                                    ranges.push((c, c));
                                    ranges.push(('-', '-'));
                                    closed = true;
                                    break;
                                }
                                Some(hi) if hi >= c => ranges.push((c, hi)),
                                Some(hi) => {
                                    return Err(format!(
                                        "the range [{c}-{hi}] runs backwards (allowed: a glob with *, ?, [abc], [a-z])"
                                    ))
                                }
                                None => break,
                            }
                        } else {
                            ranges.push((c, c));
                        }
                    }
                    if !closed {
                        return Err(
                            "an unclosed '[' (allowed: a glob with *, ?, [abc], [a-z])".into()
                        );
                    }
                    Tok::Set { negated, ranges }
                }
                c => Tok::Char(c),
            });
        }
        Ok(Glob(toks))
    }

    fn matches(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        // Classic backtracking over the last star: linear in practice for names.
        let (mut p, mut i) = (0, 0);
        let (mut star, mut mark) = (None, 0);
        while i < s.len() {
            let step = match self.0.get(p) {
                Some(Tok::Star) => {
                    star = Some(p);
                    mark = i;
                    p += 1;
                    continue;
                }
                Some(Tok::Any) => true,
                Some(Tok::Char(c)) => *c == s[i],
                Some(Tok::Set { negated, ranges }) => {
                    ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&s[i])) != *negated
                }
                None => false,
            };
            if step {
                p += 1;
                i += 1;
            } else if let Some(sp) = star {
                p = sp + 1;
                mark += 1;
                i = mark;
            } else {
                return false;
            }
        }
        self.0[p..].iter().all(|t| matches!(t, Tok::Star))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    fn vars(names: &[&str]) -> Vec<(String, Var)> {
        names
            .iter()
            .map(|n| {
                let dims: &[usize] = if n.ends_with("weight") { &[2, 2] } else { &[2] };
                (
                    n.to_string(),
                    Var::zeros(dims, DType::F32, &Device::Cpu).unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn globs_match_whole_names() {
        let m = |p: &str, n: &str| Glob::new(p).unwrap().matches(n);
        assert!(m("body.*", "body.0.weight"));
        assert!(!m("body.*", "head.weight"));
        assert!(!m("body", "body.0.weight"));
        assert!(m("*", ""));
        assert!(m("*.bias", "3.bias"));
        assert!(!m("*.bias", "3.bias2"));
        assert!(m("[0-2].*", "1.weight"));
        assert!(!m("[0-2].*", "3.weight"));
        assert!(m("[!0-2].*", "3.weight"));
        assert!(m("?.weight", "5.weight"));
        assert!(!m("?.weight", "15.weight"));
        assert!(m("*a*b*c", "xxaybzzc"));
        assert!(!m("*a*b*c", "xxaybzz"));
        assert!(m("[0,1].*", "1.bias"));
        assert!(Glob::new("[0-").is_err());
        assert!(Glob::new("[9-0]").is_err());
    }

    #[test]
    fn specs_parse_in_order_and_bad_ones_name_the_entry() {
        let g = GroupConfig::parse("body.*=0.1, head.*=1").unwrap();
        assert_eq!(
            g.rules
                .iter()
                .map(|r| (r.pattern.as_str(), r.multiplier))
                .collect::<Vec<_>>(),
            [("body.*", 0.1), ("head.*", 1.0)]
        );
        assert_eq!(g.spec(), "body.*=0.1, head.*=1");
        assert_eq!(GroupConfig::parse("[0,1].*=0, *=1").unwrap().rules.len(), 2);
        let e = |s: &str| GroupConfig::parse(s).unwrap_err().to_string();
        assert_eq!(
            e("body.*"),
            "param_groups = body.*: not PATTERN=MULTIPLIER (e.g. 'body.*=0.1'; 0 freezes)"
        );
        assert_eq!(
            e("body.*=fast"),
            "param_groups = body.*=fast: the multiplier is not a number (allowed: a finite number >= 0; 0 freezes)"
        );
        assert_eq!(
            e("body.*=-1"),
            "param_groups = body.*: multiplier -1 (allowed: a finite number >= 0; 0 freezes)"
        );
        assert_eq!(
            e("a=1,,b=2"),
            "param_groups = a=1,,b=2: an empty entry (allowed: PATTERN=MULTIPLIER, comma-separated, e.g. 'body.*=0.1, head.*=1')"
        );
        assert!(e("=1").contains("an empty pattern"), "{}", e("=1"));
        assert!(e("[a=1").contains("unclosed"), "{}", e("[a=1"));
    }

    #[test]
    fn the_first_matching_pattern_takes_a_name() {
        let v = vars(&["body.0.bias", "body.0.weight", "head.bias", "head.weight"]);
        let g = GroupConfig::parse("body.*=0.1, *=1")
            .unwrap()
            .resolve(&v, default_no_decay)
            .unwrap();
        assert_eq!(g.groups.len(), 2);
        assert_eq!(g.groups[0].names, ["body.0.bias", "body.0.weight"]);
        assert_eq!(g.groups[1].names, ["head.bias", "head.weight"]);
        assert_eq!(g.lrs_at(0.01), [0.1 * 0.01, 0.01]);
        let l = g.layout(0.01);
        assert_eq!(
            (0..4).map(|i| l.lr(i)).collect::<Vec<_>>(),
            [Some(0.1 * 0.01), Some(0.1 * 0.01), Some(0.01), Some(0.01)]
        );
        assert!(g.frozen.is_empty());
        // Without rules: one group at the base LR, exactly.
        let one = Grouping::single(&v);
        assert_eq!(one.groups.len(), 1);
        assert_eq!(one.layout(0.37).lr(3), Some(0.37));
    }

    #[test]
    fn multiplier_zero_freezes_and_no_decay_spares_biases_and_vectors() {
        let v = vars(&["body.0.bias", "body.0.weight", "head.bias", "head.weight"]);
        let g = GroupConfig::parse("body.*=0, head.*=1")
            .unwrap()
            .no_decay_norm_bias(true)
            .resolve(&v, default_no_decay)
            .unwrap();
        assert_eq!(g.groups.len(), 1);
        assert_eq!(g.frozen_mask(), [true, true, false, false]);
        assert_eq!(g.frozen_names(), ["body.0.bias", "body.0.weight"]);
        assert_eq!(g.no_decay_names(), ["body.0.bias", "head.bias"]);
        let l = g.layout(0.5);
        assert_eq!(l.lr(0), None);
        assert_eq!(l.lr(2), Some(0.5));
        assert_eq!(l.weight_decay(2, 0.01), 0.0);
        assert_eq!(l.weight_decay(3, 0.01), 0.01);
        let r = g.report(Some(2.0));
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].pattern.as_str(), r[0].lr), ("head.*", Some(2.0)));
        assert_eq!((r[1].frozen, r[1].lr), (true, Some(0.0)));
        // A group's own weight decay.
        let g = GroupConfig::new()
            .group_with_decay("body.*", 0.1, 0.5)
            .group("*", 1.0)
            .resolve(&v, default_no_decay)
            .unwrap();
        let l = g.layout(1.0);
        assert_eq!(
            (l.weight_decay(1, 0.01), l.weight_decay(3, 0.01)),
            (0.5, 0.01)
        );
    }

    #[test]
    fn unmatched_names_and_idle_patterns_are_errors_naming_them() {
        let v = vars(&["body.0.bias", "body.0.weight", "head.bias", "head.weight"]);
        let e = |s: &str| {
            GroupConfig::parse(s)
                .unwrap()
                .resolve(&v, default_no_decay)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            e("body.*=0.1"),
            "param_groups = body.*=0.1: no pattern matches head.bias, head.weight (add a catch-all such as '*=1', or patterns for them)"
        );
        assert_eq!(
            e("body.*=0.1, neck.*=0.5, *=1"),
            "param_groups = neck.*: matches no parameter (the parameters: body.0.bias, body.0.weight, head.bias, head.weight)"
        );
        assert_eq!(
            e("*=1, head.*=2"),
            "param_groups = head.*: every parameter it matches is taken by an earlier pattern (the first match wins)"
        );
    }

    #[test]
    fn group_lrs_are_set_per_group_and_checked() {
        let v = vars(&["a.weight", "b.weight"]);
        let g = GroupConfig::parse("a.*=0.5, b.*=2")
            .unwrap()
            .resolve(&v, default_no_decay)
            .unwrap();
        let mut l = g.layout(1.0);
        l.set_lrs(&[0.1, 0.3]).unwrap();
        assert_eq!((l.lr(0), l.lr(1)), (Some(0.1), Some(0.3)));
        assert_eq!(l.base(), 0.2);
        assert_eq!(
            l.set_lrs(&[0.1]).unwrap_err().to_string(),
            "group_lrs = [0.1]: needs one learning rate per param group (2 groups)"
        );
        assert!(l.set_lrs(&[0.1, f64::NAN]).is_err());
    }
}
