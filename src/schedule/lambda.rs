//! LambdaLR and MultiplicativeLR, and the lambda functions they take: the golden file's named
//! forms, a formula string in `epoch` (see [`super::formula`]), or a Rust closure.

use std::sync::Arc;

use serde_json::Value;

use super::base::{BaseState, ParamGroups, Rule, Sched};
use super::error::ScheduleError;
use super::formula::Formula;
use super::params::{bad, check_last_epoch, scheduler_config, Float, Int, Kind};

/// A closure from the integer epoch (`last_epoch`) to a factor.
pub type LambdaFn = Arc<dyn Fn(i64) -> f64 + Send + Sync>;

/// A function of the epoch, as LambdaLR / MultiplicativeLR take.
#[derive(Clone)]
pub enum LrLambda {
    /// One of the golden file's named forms.
    Form(LambdaForm),
    /// A formula in `epoch`, e.g. `0.1 ** (epoch // 30)`.
    Formula(Arc<Formula>),
    /// A Rust closure (not written back to JSON).
    Func(LambdaFn),
}

impl std::fmt::Debug for LrLambda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Form(x) => write!(f, "{x:?}"),
            Self::Formula(x) => write!(f, "Formula({:?})", x.source()),
            Self::Func(_) => f.write_str("Func(..)"),
        }
    }
}

impl PartialEq for LrLambda {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Form(a), Self::Form(b)) => a == b,
            (Self::Formula(a), Self::Formula(b)) => a == b,
            (Self::Func(a), Self::Func(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl LrLambda {
    /// f(epoch), in binary64 with Python's semantics.
    pub fn eval(&self, epoch: i64) -> Result<f64, String> {
        match self {
            Self::Form(form) => Ok(form.eval(epoch)),
            Self::Formula(formula) => formula.eval(epoch),
            Self::Func(f) => Ok(f(epoch)),
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Self::Form(form) => form.to_value(),
            Self::Formula(f) => Value::String(f.source().to_string()),
            Self::Func(_) => Value::Null,
        }
    }
}

/// `lr_lambda`: one function for every param group, or one per group.
#[derive(Debug, Clone, PartialEq)]
pub enum LrLambdas {
    /// The same function for every group.
    All(LrLambda),
    /// One function per group, in group order.
    Each(Vec<LrLambda>),
}

impl LrLambdas {
    /// One function per group, or PyTorch's length error.
    pub fn expand(&self, sched: &str, n: usize) -> Result<Vec<LrLambda>, ScheduleError> {
        match self {
            Self::All(l) => Ok(vec![l.clone(); n]),
            Self::Each(v) if v.len() == n => Ok(v.clone()),
            Self::Each(v) => Err(ScheduleError::param(
                sched,
                format!("expected {n} lr_lambdas, but got {}", v.len()),
            )),
        }
    }
}

impl From<LrLambda> for LrLambdas {
    fn from(l: LrLambda) -> Self {
        Self::All(l)
    }
}

impl Kind for LrLambdas {
    type Out = LrLambdas;
    const WHAT: &'static str = "a formula in epoch, a lambda object, or a list of them";
    fn read(key: &str, v: &Value) -> Result<LrLambdas, String> {
        match v {
            Value::Array(items) => items
                .iter()
                .map(|x| lambda_from_value(key, x))
                .collect::<Result<_, _>>()
                .map(LrLambdas::Each),
            _ => lambda_from_value(key, v).map(LrLambdas::All),
        }
    }
    fn write(out: &LrLambdas) -> Value {
        match out {
            LrLambdas::All(l) => l.to_value(),
            LrLambdas::Each(v) => Value::Array(v.iter().map(LrLambda::to_value).collect()),
        }
    }
}

/// The golden file's lambda objects (`{"kind": "pow", "base": 0.95}` ...).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LambdaForm {
    /// `v`
    Const(f64),
    /// `b ** e`
    Pow(f64),
    /// `min(1.0, (e + 1) / w)`
    LinearWarmup(i64),
    /// `g ** (e // k)`
    Step {
        /// Epochs between two multiplications (`k`).
        every: i64,
        /// The factor applied each time (`g`).
        gamma: f64,
    },
    /// `max(0.0, 1.0 - e / t)`
    LinearDecay(i64),
    /// `0.5 * (1.0 + cos(pi * min(e, t) / t))`
    Cosine(i64),
}

impl LambdaForm {
    /// The factor at epoch `e`, computed as Python would.
    pub fn eval(self, e: i64) -> f64 {
        let ef = e as f64;
        match self {
            Self::Const(v) => v,
            Self::Pow(b) => b.powf(ef),
            Self::LinearWarmup(w) => py_min(1.0, (ef + 1.0) / w as f64),
            Self::Step { every, gamma } => gamma.powf(super::base::floor_div(e, every) as f64),
            Self::LinearDecay(t) => py_max(0.0, 1.0 - ef / t as f64),
            Self::Cosine(t) => {
                0.5 * (1.0 + (std::f64::consts::PI * e.min(t) as f64 / t as f64).cos())
            }
        }
    }
}

impl LambdaForm {
    fn to_value(self) -> Value {
        use serde_json::json;
        match self {
            Self::Const(v) => json!({"kind": "const", "value": v}),
            Self::Pow(b) => json!({"kind": "pow", "base": b}),
            Self::LinearWarmup(w) => json!({"kind": "linear_warmup", "warmup": w}),
            Self::Step { every, gamma } => json!({"kind": "step", "every": every, "gamma": gamma}),
            Self::LinearDecay(t) => json!({"kind": "linear_decay", "total": t}),
            Self::Cosine(t) => json!({"kind": "cosine", "total": t}),
        }
    }
}

/// Python's `min(a, b)`: `b` only when strictly smaller.
fn py_min(a: f64, b: f64) -> f64 {
    if b < a {
        b
    } else {
        a
    }
}

/// Python's `max(a, b)`: `b` only when strictly larger.
fn py_max(a: f64, b: f64) -> f64 {
    if b > a {
        b
    } else {
        a
    }
}

fn lambda_from_value(key: &str, v: &Value) -> Result<LrLambda, String> {
    match v {
        Value::String(s) => Formula::new(s, "epoch")
            .map(|f| LrLambda::Formula(Arc::new(f)))
            .map_err(|e| format!("{key}: {e}")),
        Value::Object(obj) => {
            let kind = obj
                .get("kind")
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{key} object needs a \"kind\" string, got {v}"))?;
            let allowed: &[&str] = match kind {
                "const" => &["kind", "value"],
                "pow" => &["kind", "base"],
                "linear_warmup" => &["kind", "warmup"],
                "step" => &["kind", "every", "gamma"],
                "linear_decay" | "cosine" => &["kind", "total"],
                _ => {
                    return Err(format!(
                        "{key} kind must be one of const, pow, linear_warmup, step, linear_decay, cosine, got '{kind}'"
                    ))
                }
            };
            if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(format!(
                    "{key} {kind}: unknown field '{k}'; accepted: {}",
                    allowed.join(", ")
                ));
            }
            let field = |name: &str| {
                obj.get(name)
                    .ok_or_else(|| format!("{key} {kind} needs \"{name}\""))
            };
            let num = |name: &str| Float::read(&format!("{key}.{name}"), field(name)?);
            let pos_int = |name: &str| -> Result<i64, String> {
                let i = Int::read(&format!("{key}.{name}"), field(name)?)?;
                if i <= 0 {
                    return Err(format!("{key}.{name} must be a positive integer, got {i}"));
                }
                Ok(i)
            };
            let form = match kind {
                "const" => LambdaForm::Const(num("value")?),
                "pow" => LambdaForm::Pow(num("base")?),
                "linear_warmup" => LambdaForm::LinearWarmup(pos_int("warmup")?),
                "step" => LambdaForm::Step {
                    every: pos_int("every")?,
                    gamma: num("gamma")?,
                },
                "linear_decay" => LambdaForm::LinearDecay(pos_int("total")?),
                _ => LambdaForm::Cosine(pos_int("total")?),
            };
            Ok(LrLambda::Form(form))
        }
        _ => Err(bad(
            key,
            "a formula string, a lambda object or a list of them",
            v,
        )),
    }
}

fn check_count(name: &str, n: usize, groups: &ParamGroups) -> Result<(), ScheduleError> {
    if n != groups.len() {
        return Err(ScheduleError::param(
            name,
            format!("expected {} lr_lambdas, but got {n}", groups.len()),
        ));
    }
    Ok(())
}

/// Replicates a single lambda over every group, as PyTorch does for a non-list `lr_lambda`.
fn expand(lambdas: Vec<LrLambda>, groups: &ParamGroups) -> Vec<LrLambda> {
    if lambdas.len() == 1 && groups.len() > 1 {
        vec![lambdas[0].clone(); groups.len()]
    } else {
        lambdas
    }
}

/// `get_lr`: `base_lr * lmbda(last_epoch)`.
pub struct LambdaRule {
    /// One function per param group.
    pub lambdas: Vec<LrLambda>,
}

impl Rule for LambdaRule {
    fn name(&self) -> &'static str {
        "LambdaLR"
    }
    fn get_lr(
        &mut self,
        st: &BaseState,
        _groups: &mut ParamGroups,
    ) -> Result<Vec<f64>, ScheduleError> {
        self.lambdas
            .iter()
            .zip(&st.base_lrs)
            .map(|(l, base)| {
                let f = l
                    .eval(st.last_epoch)
                    .map_err(|m| ScheduleError::step("LambdaLR", m))?;
                Ok(base * f)
            })
            .collect()
    }
}

/// `torch.optim.lr_scheduler.LambdaLR`.
pub type LambdaLR = Sched<LambdaRule>;

/// `get_lr`: `group["lr"] * lmbda(last_epoch)`, except in the initial step.
pub struct MultiplicativeRule {
    /// One function per param group.
    pub lambdas: Vec<LrLambda>,
}

impl Rule for MultiplicativeRule {
    fn name(&self) -> &'static str {
        "MultiplicativeLR"
    }
    fn get_lr(
        &mut self,
        st: &BaseState,
        groups: &mut ParamGroups,
    ) -> Result<Vec<f64>, ScheduleError> {
        if st.is_initial {
            return Ok(groups.lr.clone());
        }
        self.lambdas
            .iter()
            .zip(&groups.lr)
            .map(|(l, lr)| {
                let f = l
                    .eval(st.last_epoch)
                    .map_err(|m| ScheduleError::step("MultiplicativeLR", m))?;
                Ok(lr * f)
            })
            .collect()
    }
}

/// `torch.optim.lr_scheduler.MultiplicativeLR`.
pub type MultiplicativeLR = Sched<MultiplicativeRule>;

/// The two schedulers built from lambdas (LambdaLR, MultiplicativeLR) share their constructors.
pub trait LambdaKind: Rule + Sized {
    /// PyTorch's class name.
    const NAME: &'static str;
    /// The rule applying `lambdas`, one per param group.
    fn from_lambdas(lambdas: Vec<LrLambda>) -> Self;
}

impl LambdaKind for LambdaRule {
    const NAME: &'static str = "LambdaLR";
    fn from_lambdas(lambdas: Vec<LrLambda>) -> Self {
        LambdaRule { lambdas }
    }
}

impl LambdaKind for MultiplicativeRule {
    const NAME: &'static str = "MultiplicativeLR";
    fn from_lambdas(lambdas: Vec<LrLambda>) -> Self {
        MultiplicativeRule { lambdas }
    }
}

impl<R: LambdaKind> Sched<R> {
    /// With Rust closures: one for every group, or a single one used for all groups.
    pub fn new(
        groups: &mut ParamGroups,
        lambdas: Vec<Box<dyn Fn(i64) -> f64 + Send + Sync>>,
    ) -> Result<Self, ScheduleError> {
        let l = lambdas
            .into_iter()
            .map(|f| LrLambda::Func(Arc::from(f)))
            .collect();
        Self::with_lambdas(groups, l)
    }

    /// With any [`LrLambda`]s: one for every group, or a single one used for all groups.
    pub fn with_lambdas(
        groups: &mut ParamGroups,
        lambdas: Vec<LrLambda>,
    ) -> Result<Self, ScheduleError> {
        let lambdas = expand(lambdas, groups);
        check_count(R::NAME, lambdas.len(), groups)?;
        Sched::construct(groups, R::from_lambdas(lambdas))
    }
}

scheduler_config! {
    /// `LambdaLR(optimizer, lr_lambda, last_epoch=-1)`: lr = initial lr * lr_lambda(epoch).
    pub struct LambdaLRConfig for "LambdaLR" {
        /// A formula in `epoch`, a lambda object, or a list with one per param group.
        lr_lambda: LrLambdas as LrLambdas,
        ;
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl LambdaLRConfig {
    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        check_last_epoch(Self::NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<LambdaLR, ScheduleError> {
        self.validate()?;
        let lambdas = self.lr_lambda.expand(Self::NAME, groups.len())?;
        LambdaLR::with_lambdas(groups, lambdas)
    }
}

scheduler_config! {
    /// `MultiplicativeLR(optimizer, lr_lambda, last_epoch=-1)`: lr *= lr_lambda(epoch) per step.
    pub struct MultiplicativeLRConfig for "MultiplicativeLR" {
        /// A formula in `epoch`, a lambda object, or a list with one per param group.
        lr_lambda: LrLambdas as LrLambdas,
        ;
        /// Only -1 (a fresh start).
        last_epoch: i64 as Int = -1,
    }
}

impl MultiplicativeLRConfig {
    /// Checks every value that does not need the param groups, naming the bad one.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        check_last_epoch(Self::NAME, self.last_epoch)
    }

    /// Validates, then builds the scheduler on `groups` (running its initial step).
    pub fn init(&self, groups: &mut ParamGroups) -> Result<MultiplicativeLR, ScheduleError> {
        self.validate()?;
        let lambdas = self.lr_lambda.expand(Self::NAME, groups.len())?;
        MultiplicativeLR::with_lambdas(groups, lambdas)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::testutil::{assert_close, build_err, run, run1};
    use crate::schedule::{LrScheduler, SchedulerConfig};

    #[test]
    fn formula_strings() {
        // 0.1^floor(e/2): 1, 1, 0.1, 0.1, 0.01
        assert_close(
            &run1("LambdaLR(lr_lambda='0.1^floor(epoch/2)')", 4),
            &[1.0, 1.0, 0.1, 0.1, 0.1f64.powf(2.0)],
        );
        // Integer literals are floats, so (e+1)/4 is true division: 0.25, 0.5, 0.75, 1, 1
        assert_close(
            &run1("LambdaLR(lr_lambda='min(1, (epoch+1)/4)')", 4),
            &[0.25, 0.5, 0.75, 1.0, 1.0],
        );
        // Python's ** and the registered cos/pi.
        assert_close(
            &run1("LambdaLR(lr_lambda=\"0.5**epoch\")", 2),
            &[1.0, 0.5, 0.25],
        );
        assert_close(
            &run1("LambdaLR(lr_lambda='0.5*(1+cos(pi*epoch/2))')", 2),
            &[1.0, 0.5, 0.0],
        );
    }

    #[test]
    fn named_forms() {
        let f = |form: LambdaForm, e| form.eval(e);
        assert_eq!(f(LambdaForm::Const(0.3), 7), 0.3);
        assert_eq!(f(LambdaForm::Pow(0.5), 3), 0.125);
        assert_eq!(f(LambdaForm::LinearWarmup(4), 1), 0.5);
        assert_eq!(f(LambdaForm::LinearWarmup(4), 9), 1.0);
        assert_eq!(
            f(
                LambdaForm::Step {
                    every: 3,
                    gamma: 0.5
                },
                7
            ),
            0.25
        );
        assert_eq!(f(LambdaForm::LinearDecay(4), 1), 0.75);
        assert_eq!(f(LambdaForm::LinearDecay(4), 9), 0.0);
        assert_eq!(f(LambdaForm::Cosine(2), 9), 0.0);
    }

    #[test]
    fn per_group_lambdas() {
        let rows = run(
            r#"LambdaLR(lr_lambda=[{"kind": "const", "value": 0.5}, '0.5^epoch'])"#,
            &[1.0, 2.0],
            1,
        );
        assert_eq!(rows, vec![vec![0.5, 2.0], vec![0.5, 1.0]]);
    }

    #[test]
    fn multiplicative_skips_initial_step() {
        // lr_e = lr_{e-1} * f(e) for e >= 1; f(e) = 0.5 → 1, 0.5, 0.25
        assert_close(
            &run1("MultiplicativeLR(lr_lambda='0.5')", 2),
            &[1.0, 0.5, 0.25],
        );
        // f(e) = e: 1, 1*1, 1*1*2, 1*1*2*3
        assert_close(
            &run1("MultiplicativeLR(lr_lambda='epoch')", 3),
            &[1.0, 1.0, 2.0, 6.0],
        );
    }

    #[test]
    fn rust_closures() {
        let mut g = ParamGroups::new(vec![1.0, 2.0], None);
        let mut s = LambdaLR::new(&mut g, vec![Box::new(|e| 0.5f64.powf(e as f64))]).unwrap();
        assert_eq!(g.lr, vec![1.0, 2.0]);
        s.step(&mut g, None).unwrap();
        assert_eq!(g.lr, vec![0.5, 1.0]);
        let mut g = ParamGroups::new(vec![1.0], None);
        let mut m = MultiplicativeLR::new(&mut g, vec![Box::new(|_| 0.1)]).unwrap();
        m.step(&mut g, None).unwrap();
        assert_eq!(g.lr, vec![0.1]);
        assert_eq!(m.name(), "MultiplicativeLR");
    }

    #[test]
    fn errors() {
        assert_eq!(
            build_err("LambdaLR(lr_lambda=['1', '1', '1'])", 2),
            "LambdaLR: expected 2 lr_lambdas, but got 3"
        );
        assert_eq!(
            build_err("LambdaLR()", 1),
            "LambdaLR: lr_lambda is required (a formula in epoch, a lambda object, or a list of them)"
        );
        assert_eq!(
            build_err(r#"LambdaLR(lr_lambda={"kind": "square"})"#, 1),
            "LambdaLR: lr_lambda kind must be one of const, pow, linear_warmup, step, linear_decay, cosine, got 'square'"
        );
        assert_eq!(
            build_err(
                r#"LambdaLR(lr_lambda={"kind": "linear_warmup", "warmup": 0})"#,
                1
            ),
            "LambdaLR: lr_lambda.warmup must be a positive integer, got 0"
        );
        let e = build_err("LambdaLR(lr_lambda='0.5^step')", 1);
        assert!(
            e.starts_with("LambdaLR: lr_lambda: cannot parse formula '0.5^step' at character 4: unknown name 'step' at 's'; allowed: numbers, epoch,"),
            "{e}"
        );
        let e = build_err("LambdaLR(lr_lambda='(((')", 1);
        assert!(
            e.starts_with("LambdaLR: lr_lambda: cannot parse formula '(((' at character 3: expected a number, a name or '(' at the end; allowed:"),
            "{e}"
        );
        assert_eq!(
            build_err("MultiplicativeLR(lr_lambda=3)", 1),
            "MultiplicativeLR: lr_lambda must be a formula string, a lambda object or a list of them, got 3"
        );
    }

    #[test]
    fn json_round_trip() {
        let text = r#"{"scheduler":"lambdalr","params":{"lr_lambda":{"kind":"pow","base":0.9}}}"#;
        let cfg = SchedulerConfig::from_json(text).unwrap();
        assert_eq!(
            cfg.to_json(),
            r#"{"scheduler":"LambdaLR","params":{"lr_lambda":{"base":0.9,"kind":"pow"}}}"#
        );
        assert_eq!(SchedulerConfig::from_json(&cfg.to_json()).unwrap(), cfg);
        assert_eq!(SchedulerConfig::parse(&cfg.to_string()).unwrap(), cfg);
    }
}
