//! LambdaLR and MultiplicativeLR, and the lambda functions they take: the golden file's named
//! forms, a formula string in `epoch` (evaluated with evalexpr), or a Rust closure.

use std::sync::{Arc, Mutex};

use evalexpr::{
    ContextWithMutableFunctions, ContextWithMutableVariables, DefaultNumericTypes, Function,
    HashMapContext, Node, Value as EValue,
};
use serde_json::Value;

use super::base::{BaseState, ParamGroups, Rule, Sched};
use super::config::Params;
use super::error::ScheduleError;

/// A closure from the integer epoch (`last_epoch`) to a factor.
pub type LambdaFn = Arc<dyn Fn(i64) -> f64 + Send + Sync>;

/// A function of the epoch, as LambdaLR / MultiplicativeLR take.
#[derive(Clone)]
pub enum LrLambda {
    /// One of the golden file's named forms.
    Form(LambdaForm),
    /// A formula in `epoch`, e.g. `0.1^floor(epoch/30)`.
    Formula(Arc<Formula>),
    /// A Rust closure.
    Func(LambdaFn),
}

impl std::fmt::Debug for LrLambda {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Form(x) => write!(f, "{x:?}"),
            Self::Formula(x) => write!(f, "Formula({:?})", x.source),
            Self::Func(_) => f.write_str("Func(..)"),
        }
    }
}

impl LrLambda {
    /// f(epoch), in binary64 with Python's semantics for the named forms.
    pub fn eval(&self, epoch: i64) -> Result<f64, ScheduleError> {
        match self {
            Self::Form(form) => Ok(form.eval(epoch)),
            Self::Formula(formula) => formula.eval(epoch as f64),
            Self::Func(f) => Ok(f(epoch)),
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
    Step { every: i64, gamma: f64 },
    /// `max(0.0, 1.0 - e / t)`
    LinearDecay(i64),
    /// `0.5 * (1.0 + cos(pi * min(e, t) / t))`
    Cosine(i64),
}

impl LambdaForm {
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

/// A precompiled evalexpr formula in one float variable.
pub struct Formula {
    source: String,
    var: &'static str,
    node: Node<DefaultNumericTypes>,
    // The context holds the variable, so evaluation needs exclusive access to it.
    ctx: Mutex<HashMapContext<DefaultNumericTypes>>,
}

impl Formula {
    /// Compiles `source` with variable `var` (`epoch` for lambdas, `x` for CyclicLR's scale_fn).
    /// Integer literals are read as floats so `/` is true division as in Python; `**` is
    /// accepted for `^`; `cos`, `sin`, `tan`, `exp`, `ln`/`log`, `sqrt`, `abs`, `pow` and the
    /// constants `pi` and `e` are available besides evalexpr's `floor`, `ceil`, `round`, `min`,
    /// `max` and `math::*`.
    pub fn new(source: &str, var: &'static str, owner: &str) -> Result<Self, ScheduleError> {
        let prepared = prepare(source);
        let node =
            evalexpr::build_operator_tree::<DefaultNumericTypes>(&prepared).map_err(|e| {
                ScheduleError::param(owner, format!("cannot parse formula '{source}': {e}"))
            })?;
        let ctx = math_context()
            .map_err(|e| ScheduleError::param(owner, format!("formula '{source}': {e}")))?;
        let f = Self {
            source: source.to_string(),
            var,
            node,
            ctx: Mutex::new(ctx),
        };
        // Catch unknown names and non-numeric results now rather than mid-training.
        f.eval(0.0)
            .map_err(|e| ScheduleError::param(owner, e.to_string()))?;
        Ok(f)
    }

    /// The formula as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn eval(&self, x: f64) -> Result<f64, ScheduleError> {
        let fail = |msg: String| {
            ScheduleError::step(
                "formula",
                format!("'{}' at {}={x}: {msg}", self.source, self.var),
            )
        };
        let mut ctx = self
            .ctx
            .lock()
            .map_err(|_| fail("context lock poisoned".to_string()))?;
        ctx.set_value(self.var.to_string(), EValue::Float(x))
            .map_err(|e| fail(e.to_string()))?;
        let v = self
            .node
            .eval_number_with_context(&*ctx)
            .map_err(|e| fail(e.to_string()))?;
        Ok(v)
    }
}

/// Rewrites Python-isms: `**` → `^`, and integer literals → float literals.
fn prepare(source: &str) -> String {
    let src = source.replace("**", "^");
    let chars: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let starts_number = c.is_ascii_digit()
            && (i == 0 || !(chars[i - 1].is_alphanumeric() || matches!(chars[i - 1], '_' | '.')));
        if !starts_number {
            out.push(c);
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && chars[i].is_ascii_digit() {
            i += 1;
        }
        out.extend(&chars[start..i]);
        let next = chars.get(i).copied();
        if !matches!(next, Some('.' | 'e' | 'E')) {
            out.push_str(".0");
        }
    }
    out
}

fn math_context() -> Result<HashMapContext<DefaultNumericTypes>, evalexpr::EvalexprError> {
    let mut ctx = HashMapContext::<DefaultNumericTypes>::new();
    ctx.set_value("pi".into(), EValue::Float(std::f64::consts::PI))?;
    ctx.set_value("e".into(), EValue::Float(std::f64::consts::E))?;
    type Unary = fn(f64) -> f64;
    let unary: [(&str, Unary); 10] = [
        ("cos", f64::cos),
        ("sin", f64::sin),
        ("tan", f64::tan),
        ("exp", f64::exp),
        ("ln", f64::ln),
        ("log", f64::ln),
        ("sqrt", f64::sqrt),
        ("abs", f64::abs),
        ("log2", f64::log2),
        ("log10", f64::log10),
    ];
    for (name, f) in unary {
        ctx.set_function(
            name.into(),
            Function::new(move |arg: &EValue<DefaultNumericTypes>| {
                Ok(EValue::Float(f(arg.as_number()?)))
            }),
        )?;
    }
    ctx.set_function(
        "pow".into(),
        Function::new(|arg: &EValue<DefaultNumericTypes>| {
            let t = arg.as_fixed_len_tuple(2)?;
            Ok(EValue::Float(t[0].as_number()?.powf(t[1].as_number()?)))
        }),
    )?;
    Ok(ctx)
}

/// Reads `lr_lambda`: one lambda (for every group) or a list with one per group.
pub(crate) fn lambdas_from_params(
    p: &Params,
    n_groups: usize,
) -> Result<Vec<LrLambda>, ScheduleError> {
    let v = p.get("lr_lambda").ok_or_else(|| {
        p.err("lr_lambda is required (a formula in epoch, a lambda object, or a list of them)")
    })?;
    match v {
        Value::Array(items) => {
            if items.len() != n_groups {
                return Err(p.err(format!(
                    "expected {n_groups} lr_lambdas, but got {}",
                    items.len()
                )));
            }
            items.iter().map(|x| lambda_from_value(p, x)).collect()
        }
        _ => Ok(vec![lambda_from_value(p, v)?; n_groups]),
    }
}

fn lambda_from_value(p: &Params, v: &Value) -> Result<LrLambda, ScheduleError> {
    match v {
        Value::String(s) => Ok(LrLambda::Formula(Arc::new(Formula::new(
            s, "epoch", p.sched,
        )?))),
        Value::Object(obj) => {
            let kind = obj.get("kind").and_then(Value::as_str).ok_or_else(|| {
                p.err(format!("lr_lambda object needs a \"kind\" string, got {v}"))
            })?;
            let allowed: &[&str] = match kind {
                "const" => &["kind", "value"],
                "pow" => &["kind", "base"],
                "linear_warmup" => &["kind", "warmup"],
                "step" => &["kind", "every", "gamma"],
                "linear_decay" | "cosine" => &["kind", "total"],
                _ => {
                    return Err(p.err(format!(
                        "lr_lambda kind must be one of const, pow, linear_warmup, step, linear_decay, cosine, got '{kind}'"
                    )))
                }
            };
            if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
                return Err(p.err(format!(
                    "lr_lambda {kind}: unknown field '{k}'; accepted: {}",
                    allowed.join(", ")
                )));
            }
            let num = |key: &str| -> Result<f64, ScheduleError> {
                let x = obj
                    .get(key)
                    .ok_or_else(|| p.err(format!("lr_lambda {kind} needs \"{key}\"")))?;
                p.to_float(&format!("lr_lambda.{key}"), x)
            };
            let pos_int = |key: &str| -> Result<i64, ScheduleError> {
                let x = obj
                    .get(key)
                    .ok_or_else(|| p.err(format!("lr_lambda {kind} needs \"{key}\"")))?;
                let i = p.to_int(&format!("lr_lambda.{key}"), x)?;
                if i <= 0 {
                    return Err(p.err(format!(
                        "lr_lambda.{key} must be a positive integer, got {i}"
                    )));
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
        _ => Err(p.err(format!(
            "lr_lambda must be a formula string, a lambda object or a list of them, got {v}"
        ))),
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
            .map(|(l, base)| Ok(base * l.eval(st.last_epoch)?))
            .collect()
    }
}

/// `torch.optim.lr_scheduler.LambdaLR`.
pub type LambdaLR = Sched<LambdaRule>;

/// `get_lr`: `group["lr"] * lmbda(last_epoch)`, except in the initial step.
pub struct MultiplicativeRule {
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
            .map(|(l, lr)| Ok(lr * l.eval(st.last_epoch)?))
            .collect()
    }
}

/// `torch.optim.lr_scheduler.MultiplicativeLR`.
pub type MultiplicativeLR = Sched<MultiplicativeRule>;

/// The two schedulers built from lambdas (LambdaLR, MultiplicativeLR) share their constructors.
pub trait LambdaKind: Rule + Sized {
    const NAME: &'static str;
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

    pub(crate) fn from_params(p: &Params, groups: &mut ParamGroups) -> Result<Self, ScheduleError> {
        let lambdas = lambdas_from_params(p, groups.len())?;
        Self::with_lambdas(groups, lambdas)
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
        assert!(build_err("LambdaLR(lr_lambda='0.5^step')", 1)
            .starts_with("LambdaLR: formula: '0.5^step' at epoch=0: "));
        assert!(build_err("LambdaLR(lr_lambda='(((')", 1)
            .starts_with("LambdaLR: cannot parse formula '(((': "));
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

    #[test]
    fn prepare_rewrites_python_isms() {
        assert_eq!(prepare("0.1**floor(epoch/30)"), "0.1^floor(epoch/30.0)");
        assert_eq!(prepare("min(1, (epoch+1)/5)"), "min(1.0, (epoch+1.0)/5.0)");
        assert_eq!(
            prepare("math::log2(x) + 1e3 + 2.5"),
            "math::log2(x) + 1e3 + 2.5"
        );
    }
}
