//! Reading a config's keyword arguments (a JSON object from the spec or a file) into typed
//! fields, with one-line messages naming the scheduler, the parameter, the value and what is
//! allowed; and `scheduler_config!`, which declares a scheduler's config struct so that each
//! parameter's name, type and default are written once.

use serde_json::{Map, Value};

use super::error::ScheduleError;

/// How one parameter is read from JSON and written back: the Rust type it becomes and what the
/// error message says is allowed.
pub trait Kind {
    /// The Rust type the value becomes.
    type Out;
    /// What is allowed, for messages: "an integer", "a number", ...
    const WHAT: &'static str;
    /// Reads a non-null value; the error is the whole message after the scheduler's name.
    fn read(key: &str, v: &Value) -> Result<Self::Out, String>;
    /// The value as JSON, as it would be read back.
    fn write(out: &Self::Out) -> Value;
}

/// `{key} must be {what}, got {v}`.
pub(crate) fn bad(key: &str, what: &str, v: &Value) -> String {
    format!("{key} must be {what}, got {v}")
}

/// Python's `int` where PyTorch only computes with it: an integral float (`30.0`) is accepted as
/// the integer it names, as Python's arithmetic would.
pub struct Int;

impl Kind for Int {
    type Out = i64;
    const WHAT: &'static str = "an integer";
    fn read(key: &str, v: &Value) -> Result<i64, String> {
        if let Some(i) = v.as_i64() {
            return Ok(i);
        }
        match v.as_f64() {
            Some(x) if x.fract() == 0.0 && x.abs() < 9.0e15 => Ok(x as i64),
            _ => Err(bad(key, Self::WHAT, v)),
        }
    }
    fn write(out: &i64) -> Value {
        Value::from(*out)
    }
}

/// Python's `int` where PyTorch checks `isinstance(x, int)`: `5.0` is refused.
pub struct StrictInt;

impl Kind for StrictInt {
    type Out = i64;
    const WHAT: &'static str = "an integer";
    fn read(key: &str, v: &Value) -> Result<i64, String> {
        match v.as_i64() {
            Some(i) => Ok(i),
            None if v.is_f64() => Err(format!(
                "{key} must be an integer (PyTorch requires an int, not a float like {v}), got {v}"
            )),
            None => Err(bad(key, Self::WHAT, v)),
        }
    }
    fn write(out: &i64) -> Value {
        Value::from(*out)
    }
}

/// A finite number (JSON integer or float).
pub struct Float;

impl Kind for Float {
    type Out = f64;
    const WHAT: &'static str = "a number";
    fn read(key: &str, v: &Value) -> Result<f64, String> {
        v.as_f64()
            .filter(|x| x.is_finite())
            .ok_or_else(|| bad(key, Self::WHAT, v))
    }
    fn write(out: &f64) -> Value {
        Value::from(*out)
    }
}

/// Python's `float` where PyTorch checks `isinstance(x, float)`: the integer `1` is refused.
pub struct StrictFloat;

impl Kind for StrictFloat {
    type Out = f64;
    const WHAT: &'static str = "a float";
    fn read(key: &str, v: &Value) -> Result<f64, String> {
        match v.as_f64().filter(|x| x.is_finite()) {
            Some(x) if v.is_f64() => Ok(x),
            Some(_) => Err(format!(
                "{key} must be a float (PyTorch refuses the integer {v}; write {v}.0), got {v}"
            )),
            None => Err(bad(key, Self::WHAT, v)),
        }
    }
    fn write(out: &f64) -> Value {
        Value::from(*out)
    }
}

/// `True` / `False`.
pub struct Bool;

impl Kind for Bool {
    type Out = bool;
    const WHAT: &'static str = "true or false";
    fn read(key: &str, v: &Value) -> Result<bool, String> {
        v.as_bool().ok_or_else(|| bad(key, Self::WHAT, v))
    }
    fn write(out: &bool) -> Value {
        Value::Bool(*out)
    }
}

/// A string, checked later (CyclicLR's `mode` is ignored when `scale_fn` is given).
pub struct Str;

impl Kind for Str {
    type Out = String;
    const WHAT: &'static str = "a string";
    fn read(key: &str, v: &Value) -> Result<String, String> {
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| bad(key, Self::WHAT, v))
    }
    fn write(out: &String) -> Value {
        Value::String(out.clone())
    }
}

/// A list of integers (milestones).
pub struct IntList;

impl Kind for IntList {
    type Out = Vec<i64>;
    const WHAT: &'static str = "a list of integers";
    fn read(key: &str, v: &Value) -> Result<Vec<i64>, String> {
        match v {
            Value::Array(items) => items.iter().map(|x| Int::read(key, x)).collect(),
            _ => Err(bad(key, Self::WHAT, v)),
        }
    }
    fn write(out: &Vec<i64>) -> Value {
        Value::from(out.clone())
    }
}

/// PyTorch's "float or list" arguments: one value for every param group, or one per group.
#[derive(Debug, Clone, PartialEq)]
pub enum PerGroup {
    /// The same value for every group.
    All(f64),
    /// One value per group, in group order.
    Each(Vec<f64>),
}

impl PerGroup {
    /// PyTorch's `_format_param`: one value per group, or the length error it raises.
    pub fn expand(&self, sched: &str, name: &str, n: usize) -> Result<Vec<f64>, ScheduleError> {
        match self {
            Self::All(x) => Ok(vec![*x; n]),
            Self::Each(v) if v.len() == n => Ok(v.clone()),
            Self::Each(v) => Err(ScheduleError::param(
                sched,
                format!(
                    "{name} must have the same length as optimizer.param_groups. {name} has {} values, param_groups has {n}.",
                    v.len()
                ),
            )),
        }
    }

    /// Every value given.
    pub fn values(&self) -> &[f64] {
        match self {
            Self::All(x) => std::slice::from_ref(x),
            Self::Each(v) => v,
        }
    }
}

impl From<f64> for PerGroup {
    fn from(x: f64) -> Self {
        Self::All(x)
    }
}

impl Kind for PerGroup {
    type Out = PerGroup;
    const WHAT: &'static str = "a number or a list with one per param group";
    fn read(key: &str, v: &Value) -> Result<PerGroup, String> {
        match v {
            Value::Array(items) => items
                .iter()
                .map(|x| Float::read(key, x))
                .collect::<Result<_, _>>()
                .map(PerGroup::Each),
            _ => Float::read(key, v).map(PerGroup::All),
        }
    }
    fn write(out: &PerGroup) -> Value {
        match out {
            PerGroup::All(x) => Value::from(*x),
            PerGroup::Each(v) => Value::from(v.clone()),
        }
    }
}

/// An optional argument whose `None` (JSON `null`) is meaningful.
pub struct Opt<K>(std::marker::PhantomData<K>);

impl<K: Kind> Kind for Opt<K> {
    type Out = Option<K::Out>;
    const WHAT: &'static str = K::WHAT;
    fn read(key: &str, v: &Value) -> Result<Self::Out, String> {
        K::read(key, v).map(Some)
    }
    fn write(out: &Self::Out) -> Value {
        out.as_ref().map_or(Value::Null, K::write)
    }
}

/// A choice among PyTorch's string literals, as a Rust enum.
pub trait Choice: Sized + Copy + PartialEq + 'static {
    /// Every choice, with PyTorch's string for it.
    const ALL: &'static [(&'static str, Self)];
    /// PyTorch's string for this choice.
    fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("", |(n, _)| n)
    }
}

/// Reads a [`Choice`] enum from its string.
pub struct OneOf<C>(std::marker::PhantomData<C>);

impl<C: Choice> Kind for OneOf<C> {
    type Out = C;
    const WHAT: &'static str = "one of PyTorch's names";
    fn read(key: &str, v: &Value) -> Result<C, String> {
        let allowed = || {
            C::ALL
                .iter()
                .map(|(n, _)| format!("'{n}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let s = v.as_str().ok_or_else(|| bad(key, "a string", v))?;
        C::ALL
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, c)| *c)
            .ok_or_else(|| format!("{key} must be one of {}, got '{s}'", allowed()))
    }
    fn write(out: &C) -> Value {
        Value::String(out.name().to_string())
    }
}

/// A config's keyword arguments with their names matched to the scheduler's own (exactly, or
/// else case-insensitively, rewritten to PyTorch's spelling).
pub(crate) struct Params {
    pub sched: &'static str,
    map: Map<String, Value>,
}

impl Params {
    /// Checks every name against `accepted`: an unknown one is an error listing the accepted.
    pub fn new(
        sched: &'static str,
        given: Map<String, Value>,
        accepted: &[&'static str],
    ) -> Result<Self, ScheduleError> {
        let mut map = Map::new();
        for (key, value) in given {
            let canon = accepted
                .iter()
                .find(|a| **a == key)
                .or_else(|| accepted.iter().find(|a| a.eq_ignore_ascii_case(&key)));
            let Some(c) = canon else {
                return Err(ScheduleError::UnknownParam {
                    scheduler: sched.to_string(),
                    param: key,
                    accepted: if accepted.is_empty() {
                        "none (only child schedulers)".to_string()
                    } else {
                        accepted.join(", ")
                    },
                });
            };
            if map.insert((*c).to_string(), value).is_some() {
                return Err(ScheduleError::param(
                    sched,
                    format!("parameter {c} is given twice"),
                ));
            }
        }
        Ok(Self { sched, map })
    }

    /// The value, treating JSON `null` (Python `None`) as "not given".
    fn get(&self, key: &str) -> Option<&Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn required<K: Kind>(&self, key: &str) -> Result<K::Out, ScheduleError> {
        let v = self.get(key).ok_or_else(|| {
            ScheduleError::param(self.sched, format!("{key} is required ({})", K::WHAT))
        })?;
        K::read(key, v).map_err(|m| ScheduleError::param(self.sched, m))
    }

    pub fn optional<K: Kind>(&self, key: &str, default: K::Out) -> Result<K::Out, ScheduleError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => K::read(key, v).map_err(|m| ScheduleError::param(self.sched, m)),
        }
    }
}

/// Only a fresh start (`last_epoch=-1`) is supported: resuming needs a saved optimizer.
pub(crate) fn check_last_epoch(sched: &str, last_epoch: i64) -> Result<(), ScheduleError> {
    if last_epoch == -1 {
        Ok(())
    } else {
        Err(ScheduleError::param(
            sched,
            format!(
                "last_epoch must be -1 (resuming from a checkpoint is not supported), got {last_epoch}"
            ),
        ))
    }
}

/// Declares a scheduler's config struct, burn style: PyTorch's parameter names as fields (in
/// PyTorch's order, required ones first), each with its [`Kind`] and, for optional ones,
/// PyTorch's default. Generates the struct, `NAME`, `PARAMS` (the accepted names, derived from
/// the fields), `new(required...)`, and the JSON reading and writing.
macro_rules! scheduler_config {
    (
        $(#[$meta:meta])*
        pub struct $config:ident for $name:literal {
            $( $(#[$rmeta:meta])* $req:ident : $rty:ty as $rkind:ty, )*
            ;
            $( $(#[$ometa:meta])* $opt:ident : $oty:ty as $okind:ty = $odefault:expr, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq)]
        #[allow(non_snake_case)]
        pub struct $config {
            $( $(#[$rmeta])* pub $req: $rty, )*
            $( $(#[$ometa])* pub $opt: $oty, )*
        }

        impl $config {
            /// PyTorch's class name.
            pub const NAME: &'static str = $name;
            /// The keyword arguments it takes, in PyTorch's order.
            pub const PARAMS: &'static [&'static str] =
                &[$(stringify!($req),)* $(stringify!($opt),)*];

            /// The required arguments; every other one takes PyTorch's default.
            #[allow(non_snake_case, clippy::new_without_default)]
            pub fn new($($req: $rty),*) -> Self {
                Self { $($req,)* $($opt: $odefault,)* }
            }

            pub(crate) fn from_params(
                p: &$crate::schedule::params::Params,
            ) -> Result<Self, $crate::schedule::ScheduleError> {
                Ok(Self {
                    $( $req: p.required::<$rkind>(stringify!($req))?, )*
                    $( $opt: p.optional::<$okind>(stringify!($opt), $odefault)?, )*
                })
            }

            /// The arguments as JSON: required ones and those that differ from the default.
            pub(crate) fn to_params(&self) -> serde_json::Map<String, serde_json::Value> {
                use $crate::schedule::params::Kind as _;
                #[allow(unused_mut)]
                let mut m = serde_json::Map::new();
                $( m.insert(stringify!($req).into(), <$rkind>::write(&self.$req)); )*
                $(
                    if self.$opt != $odefault {
                        m.insert(stringify!($opt).into(), <$okind>::write(&self.$opt));
                    }
                )*
                m
            }
        }
    };
}

pub(crate) use scheduler_config;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kinds_read_like_pytorch() {
        assert_eq!(Int::read("k", &json!(30.0)), Ok(30));
        assert_eq!(
            Int::read("k", &json!(2.5)).unwrap_err(),
            "k must be an integer, got 2.5"
        );
        assert_eq!(
            StrictInt::read("T_0", &json!(5.0)).unwrap_err(),
            "T_0 must be an integer (PyTorch requires an int, not a float like 5.0), got 5.0"
        );
        assert_eq!(
            StrictFloat::read("pct_start", &json!(1)).unwrap_err(),
            "pct_start must be a float (PyTorch refuses the integer 1; write 1.0), got 1"
        );
        assert_eq!(StrictFloat::read("pct_start", &json!(0.5)), Ok(0.5));
        assert_eq!(
            PerGroup::read("max_lr", &json!([1, 2.5])),
            Ok(PerGroup::Each(vec![1.0, 2.5]))
        );
    }

    #[test]
    fn names_matched_case_insensitively() {
        let m = json!({"t_max": 3, "ETA_MIN": 0.1});
        let Value::Object(m) = m else { unreachable!() };
        let p = Params::new("X", m, &["T_max", "eta_min"]).unwrap();
        assert_eq!(p.required::<Int>("T_max"), Ok(3));
        let Value::Object(m) = json!({"T_max": 3, "t_max": 4}) else {
            unreachable!()
        };
        assert_eq!(
            Params::new("X", m, &["T_max"]).err().unwrap().to_string(),
            "X: parameter T_max is given twice"
        );
    }
}
