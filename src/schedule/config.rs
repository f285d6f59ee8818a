//! [`SchedulerConfig`]: one typed config per PyTorch class (each declared in its scheduler's
//! file), in one enum that reads and writes the golden CASE/CHILD JSON shape
//! `{"scheduler": NAME, "params": {...}, "children": [...]}`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::base::{LrScheduler, ParamGroups};
use super::chained::ChainedSchedulerConfig;
use super::constant::{ConstantLRConfig, LinearLRConfig};
use super::cosine::CosineAnnealingLRConfig;
use super::cyclic::CyclicLRConfig;
use super::error::ScheduleError;
use super::exponential::ExponentialLRConfig;
use super::lambda::{LambdaLRConfig, MultiplicativeLRConfig};
use super::one_cycle::OneCycleLRConfig;
use super::params::Params;
use super::plateau::ReduceLROnPlateauConfig;
use super::polynomial::PolynomialLRConfig;
use super::sequential::SequentialLRConfig;
use super::step::{MultiStepLRConfig, StepLRConfig};
use super::warm_restarts::CosineAnnealingWarmRestartsConfig;

/// Deepest nesting of composite schedulers accepted (a real schedule nests two or three).
pub const MAX_SPEC_DEPTH: usize = 32;

/// Whether PyTorch users step a schedule once per batch or once per epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interval {
    /// Once per optimizer step (batch).
    Step,
    /// Once per epoch.
    Epoch,
}

/// The untyped JSON shape, as written in golden files and scheduler files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// PyTorch's class name, e.g. `"StepLR"`.
    pub scheduler: String,
    /// Keyword arguments, by PyTorch's names.
    #[serde(default)]
    pub params: Map<String, Value>,
    /// The child schedulers of a composite (SequentialLR, ChainedScheduler), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<RawConfig>,
}

/// The schedulers that set the LR themselves, peaking at their `max_lr`: the optimizer's own
/// LR is overwritten (OneCycleLR starts at `max_lr / div_factor`, CyclicLR at `base_lr`).
pub const PEAK_LR_SCHEDULERS: [&str; 2] = ["OneCycleLR", "CyclicLR"];

impl RawConfig {
    /// Reads the compact form (or JSON, when it starts with `{`) without typing it, so a caller
    /// can fill in parameters (see [`Self::fill_max_lr`]) before [`SchedulerConfig::from_raw`].
    pub fn parse(spec: &str) -> Result<Self, ScheduleError> {
        if spec.trim_start().starts_with('{') {
            return serde_json::from_str(spec).map_err(|e| ScheduleError::Json(e.to_string()));
        }
        super::spec::parse(spec)
    }

    fn peak_lr_name(&self) -> Option<&'static str> {
        canonical_name(&self.scheduler)
            .ok()
            .filter(|n| PEAK_LR_SCHEDULERS.contains(n))
    }

    fn max_lr_key(&self) -> Option<&String> {
        self.params
            .keys()
            .find(|k| k.eq_ignore_ascii_case("max_lr"))
    }

    /// Every OneCycleLR and CyclicLR in the tree (children included), by PyTorch's name, with
    /// its `max_lr` when one is given.
    pub fn peak_lrs(&self) -> Vec<(&'static str, Option<&Value>)> {
        let mut out = Vec::new();
        if let Some(name) = self.peak_lr_name() {
            out.push((name, self.max_lr_key().and_then(|k| self.params.get(k))));
        }
        for c in &self.children {
            out.extend(c.peak_lrs());
        }
        out
    }

    /// Sets `max_lr = lr` on every OneCycleLR and CyclicLR in the tree that has none (so the
    /// LR found by a range test becomes the cycle's peak); returns how many it filled.
    pub fn fill_max_lr(&mut self, lr: f64) -> usize {
        let mut n = 0;
        if self.peak_lr_name().is_some() && self.max_lr_key().is_none() {
            if let Some(v) = serde_json::Number::from_f64(lr) {
                self.params.insert("max_lr".into(), Value::Number(v));
                n += 1;
            }
        }
        for c in &mut self.children {
            n += c.fill_max_lr(lr);
        }
        n
    }
}

/// Declares the enum of configs and everything that only dispatches on the variant.
macro_rules! configs {
    ($($variant:ident($cfg:ty)),* $(,)?) => {
        /// A scheduler with PyTorch's class and keyword-argument names, typed. Serializes to the
        /// golden CASE/CHILD shape `{"scheduler": "StepLR", "params": {...}, "children": [...]}`.
        /// Parameter values are checked by [`Self::build`] (each config's `validate`), which
        /// knows the param groups; names, types and structure when parsing.
        #[derive(Debug, Clone, PartialEq)]
        pub enum SchedulerConfig {
            $(
                #[doc = concat!("`torch.optim.lr_scheduler.", stringify!($variant), "`.")]
                $variant($cfg),
            )*
        }

        $(
            impl From<$cfg> for SchedulerConfig {
                fn from(c: $cfg) -> Self {
                    Self::$variant(c)
                }
            }
        )*

        impl SchedulerConfig {
            /// PyTorch's fifteen class names.
            pub const NAMES: &'static [&'static str] = &[$(<$cfg>::NAME,)*];

            /// PyTorch's class name.
            pub fn name(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$cfg>::NAME,)*
                }
            }

            /// Checks every value that does not depend on the param groups.
            pub fn validate(&self) -> Result<(), ScheduleError> {
                match self {
                    $(Self::$variant(c) => c.validate(),)*
                }
            }

            /// Validates every parameter and builds the scheduler, performing the constructor's
            /// initial step on `groups` exactly as PyTorch does. Children of a composite are
            /// built first, in order, on the same groups (as one does in Python before passing
            /// them in).
            pub fn build(
                &self,
                groups: &mut ParamGroups,
            ) -> Result<Box<dyn LrScheduler>, ScheduleError> {
                groups.check(self.name())?;
                Ok(match self {
                    $(Self::$variant(c) => Box::new(c.init(groups)?),)*
                })
            }

            /// The keyword arguments accepted by the class called `name` (PyTorch's spelling).
            fn accepted(name: &str) -> &'static [&'static str] {
                $(if name == <$cfg>::NAME { return <$cfg>::PARAMS; })*
                &[]
            }
        }
    };
}

configs! {
    LambdaLR(LambdaLRConfig),
    MultiplicativeLR(MultiplicativeLRConfig),
    StepLR(StepLRConfig),
    MultiStepLR(MultiStepLRConfig),
    ConstantLR(ConstantLRConfig),
    LinearLR(LinearLRConfig),
    ExponentialLR(ExponentialLRConfig),
    PolynomialLR(PolynomialLRConfig),
    CosineAnnealingLR(CosineAnnealingLRConfig),
    ChainedScheduler(ChainedSchedulerConfig),
    SequentialLR(SequentialLRConfig),
    ReduceLROnPlateau(ReduceLROnPlateauConfig),
    CyclicLR(CyclicLRConfig),
    OneCycleLR(OneCycleLRConfig),
    CosineAnnealingWarmRestarts(CosineAnnealingWarmRestartsConfig),
}

/// PyTorch's class name for `name`, matched case-insensitively.
pub fn canonical_name(name: &str) -> Result<&'static str, ScheduleError> {
    SchedulerConfig::NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(name))
        .copied()
        .ok_or_else(|| ScheduleError::UnknownScheduler {
            name: name.to_string(),
            valid: SchedulerConfig::NAMES.join(", "),
        })
}

impl SchedulerConfig {
    /// Parses the compact CLI form, e.g. `StepLR(step_size=30, gamma=0.1)` or
    /// `SequentialLR(LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=95),
    /// milestones=[5])`; a string starting with `{` is read as JSON.
    pub fn parse(spec: &str) -> Result<Self, ScheduleError> {
        if spec.trim_start().starts_with('{') {
            return Self::from_json(spec);
        }
        Self::from_raw(super::spec::parse(spec)?)
    }

    /// Reads the JSON form (scheduler and parameter names case-insensitive).
    pub fn from_json(text: &str) -> Result<Self, ScheduleError> {
        let raw: RawConfig =
            serde_json::from_str(text).map_err(|e| ScheduleError::Json(e.to_string()))?;
        Self::from_raw(raw)
    }

    /// The JSON form.
    pub fn to_json(&self) -> String {
        // Serializing a Map/Vec/str tree cannot fail.
        serde_json::to_string(&self.to_raw()).unwrap_or_default()
    }

    /// Types an untyped config: names, structure, and each parameter's type.
    pub fn from_raw(raw: RawConfig) -> Result<Self, ScheduleError> {
        Self::from_raw_at(raw, 1)
    }

    fn from_raw_at(raw: RawConfig, depth: usize) -> Result<Self, ScheduleError> {
        let name = canonical_name(&raw.scheduler)?;
        if depth > MAX_SPEC_DEPTH {
            return Err(ScheduleError::param(
                name,
                format!("schedulers are nested deeper than {MAX_SPEC_DEPTH} levels"),
            ));
        }
        let composite = [ChainedSchedulerConfig::NAME, SequentialLRConfig::NAME].contains(&name);
        if !composite && !raw.children.is_empty() {
            return Err(ScheduleError::param(
                name,
                format!(
                    "takes no child schedulers, got {} (only ChainedScheduler and SequentialLR do)",
                    raw.children.len()
                ),
            ));
        }
        let p = Params::new(name, raw.params, Self::accepted(name))?;
        let children = raw
            .children
            .into_iter()
            .map(|c| Self::from_raw_at(c, depth + 1))
            .collect::<Result<Vec<_>, _>>()?;
        if composite {
            super::chained::check_children(name, &children)?;
        }
        Ok(match name {
            LambdaLRConfig::NAME => LambdaLRConfig::from_params(&p)?.into(),
            MultiplicativeLRConfig::NAME => MultiplicativeLRConfig::from_params(&p)?.into(),
            StepLRConfig::NAME => StepLRConfig::from_params(&p)?.into(),
            MultiStepLRConfig::NAME => MultiStepLRConfig::from_params(&p)?.into(),
            ConstantLRConfig::NAME => ConstantLRConfig::from_params(&p)?.into(),
            LinearLRConfig::NAME => LinearLRConfig::from_params(&p)?.into(),
            ExponentialLRConfig::NAME => ExponentialLRConfig::from_params(&p)?.into(),
            PolynomialLRConfig::NAME => PolynomialLRConfig::from_params(&p)?.into(),
            CosineAnnealingLRConfig::NAME => CosineAnnealingLRConfig::from_params(&p)?.into(),
            ChainedSchedulerConfig::NAME => ChainedSchedulerConfig::new(children).into(),
            SequentialLRConfig::NAME => SequentialLRConfig::from_params(&p, children)?.into(),
            ReduceLROnPlateauConfig::NAME => ReduceLROnPlateauConfig::from_params(&p)?.into(),
            CyclicLRConfig::NAME => CyclicLRConfig::from_params(&p)?.into(),
            OneCycleLRConfig::NAME => OneCycleLRConfig::from_params(&p)?.into(),
            _ => CosineAnnealingWarmRestartsConfig::from_params(&p)?.into(),
        })
    }

    /// The untyped form: required parameters and those that differ from PyTorch's defaults.
    pub fn to_raw(&self) -> RawConfig {
        let (params, children) = match self {
            Self::LambdaLR(c) => (c.to_params(), &[][..]),
            Self::MultiplicativeLR(c) => (c.to_params(), &[][..]),
            Self::StepLR(c) => (c.to_params(), &[][..]),
            Self::MultiStepLR(c) => (c.to_params(), &[][..]),
            Self::ConstantLR(c) => (c.to_params(), &[][..]),
            Self::LinearLR(c) => (c.to_params(), &[][..]),
            Self::ExponentialLR(c) => (c.to_params(), &[][..]),
            Self::PolynomialLR(c) => (c.to_params(), &[][..]),
            Self::CosineAnnealingLR(c) => (c.to_params(), &[][..]),
            Self::ChainedScheduler(c) => (Map::new(), &c.schedulers[..]),
            Self::SequentialLR(c) => (c.to_params(), &c.schedulers[..]),
            Self::ReduceLROnPlateau(c) => (c.to_params(), &[][..]),
            Self::CyclicLR(c) => (c.to_params(), &[][..]),
            Self::OneCycleLR(c) => (c.to_params(), &[][..]),
            Self::CosineAnnealingWarmRestarts(c) => (c.to_params(), &[][..]),
        };
        RawConfig {
            scheduler: self.name().to_string(),
            params,
            children: children.iter().map(Self::to_raw).collect(),
        }
    }

    /// The child schedulers of a composite (empty for the others).
    pub fn children(&self) -> &[SchedulerConfig] {
        match self {
            Self::ChainedScheduler(c) => &c.schedulers,
            Self::SequentialLR(c) => &c.schedulers,
            _ => &[],
        }
    }

    fn children_mut(&mut self) -> &mut [SchedulerConfig] {
        match self {
            Self::ChainedScheduler(c) => &mut c.schedulers,
            Self::SequentialLR(c) => &mut c.schedulers,
            _ => &mut [],
        }
    }

    fn any(&self, pred: &dyn Fn(&SchedulerConfig) -> bool) -> bool {
        pred(self) || self.children().iter().any(|c| c.any(pred))
    }

    /// CyclicLR and OneCycleLR (anywhere inside) are stepped per batch; the rest per epoch.
    pub fn default_interval(&self) -> Interval {
        if self.any(&|c| matches!(c, Self::CyclicLR(_) | Self::OneCycleLR(_))) {
            Interval::Step
        } else {
            Interval::Epoch
        }
    }

    /// Whether `step` needs a metric: ReduceLROnPlateau anywhere inside.
    pub fn needs_metric(&self) -> bool {
        self.any(&|c| matches!(c, Self::ReduceLROnPlateau(_)))
    }

    /// Whether the schedule writes momentum: CyclicLR / OneCycleLR with `cycle_momentum`
    /// (PyTorch's default `True`) anywhere inside.
    pub fn cycles_momentum(&self) -> bool {
        self.any(&|c| match c {
            Self::CyclicLR(c) => c.cycle_momentum,
            Self::OneCycleLR(c) => c.cycle_momentum,
            _ => false,
        })
    }

    /// OneCycleLR without `total_steps` and without `epochs`+`steps_per_epoch`: set
    /// `total_steps` (the trainer passes epochs × batches per epoch). Recurses into children.
    pub fn fill_total_steps(&mut self, total_steps: usize) {
        if let Self::OneCycleLR(c) = self {
            let given =
                c.total_steps.is_some() || (c.epochs.is_some() && c.steps_per_epoch.is_some());
            if !given {
                c.total_steps = Some(i64::try_from(total_steps).unwrap_or(i64::MAX));
            }
        }
        for c in self.children_mut() {
            c.fill_total_steps(total_steps);
        }
    }
}

impl Serialize for SchedulerConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_raw().serialize(s)
    }
}

impl<'de> Deserialize<'de> for SchedulerConfig {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawConfig::deserialize(d)?;
        Self::from_raw(raw).map_err(serde::de::Error::custom)
    }
}

impl FromStr for SchedulerConfig {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl SchedulerConfig {
    /// The compact form with every float rounded to 4 significant digits, for titles and
    /// console lines (a suggested `max_lr` is stored exactly: 0.003019951720402016).
    pub fn to_short_string(&self) -> String {
        fn round(v: &mut Value) {
            match v {
                Value::Number(n) if n.is_f64() => {
                    let r = n
                        .as_f64()
                        .and_then(|f| format!("{f:.3e}").parse::<f64>().ok())
                        .and_then(serde_json::Number::from_f64);
                    if let Some(r) = r {
                        *n = r;
                    }
                }
                Value::Array(a) => a.iter_mut().for_each(round),
                _ => {}
            }
        }
        fn walk(raw: &mut RawConfig) {
            raw.params.values_mut().for_each(round);
            raw.children.iter_mut().for_each(walk);
        }
        let mut raw = self.to_raw();
        walk(&mut raw);
        struct Show(RawConfig);
        impl fmt::Display for Show {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                super::spec::write_raw(f, &self.0)
            }
        }
        Show(raw).to_string()
    }
}

/// The compact form, which [`SchedulerConfig::parse`] reads back.
impl fmt::Display for SchedulerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::spec::write_raw(f, &self.to_raw())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::params::PerGroup;
    use crate::schedule::{CyclicLRConfig, OneCycleLRConfig};

    #[test]
    fn parse_compact_forms() {
        let c = SchedulerConfig::parse("StepLR(step_size=30, gamma=0.1)").unwrap();
        assert_eq!(c, StepLRConfig::new(30).into());
        let c = SchedulerConfig::parse("StepLR(step_size=30, gamma=0.5)").unwrap();
        assert_eq!(
            c,
            StepLRConfig {
                gamma: 0.5,
                ..StepLRConfig::new(30)
            }
            .into()
        );
        let c = SchedulerConfig::parse(
            "cycliclr(base_lr=0.001, max_lr=0.1, step_size_down=None, cycle_momentum=False)",
        )
        .unwrap();
        assert_eq!(
            c,
            CyclicLRConfig {
                cycle_momentum: false,
                ..CyclicLRConfig::new(PerGroup::All(0.001), PerGroup::All(0.1))
            }
            .into()
        );
        let c = SchedulerConfig::parse("MultiStepLR(milestones=[30,80])").unwrap();
        assert_eq!(c, MultiStepLRConfig::new(vec![30, 80]).into());
        let c = SchedulerConfig::parse("CosineAnnealingLR(t_max=10)").unwrap();
        assert_eq!(
            c,
            CosineAnnealingLRConfig::new(10).into(),
            "names are matched case-insensitively"
        );
        let c = SchedulerConfig::parse(
            "SequentialLR(LinearLR(start_factor=0.1, total_iters=5), CosineAnnealingLR(T_max=95), milestones=[5])",
        )
        .unwrap();
        assert_eq!(c.children().len(), 2);
        assert_eq!(c.children()[1].name(), "CosineAnnealingLR");
        assert_eq!(
            SchedulerConfig::parse("ExponentialLR(gamma=1e-1)").unwrap(),
            "exponentiallr(GAMMA=0.1)"
                .parse::<SchedulerConfig>()
                .unwrap()
        );
    }

    #[test]
    fn max_lr_is_filled_only_where_missing() {
        let mut raw = RawConfig::parse("onecyclelr()").unwrap();
        assert_eq!(raw.peak_lrs(), [("OneCycleLR", None)]);
        assert_eq!(raw.fill_max_lr(0.003019951720402016), 1);
        let c = SchedulerConfig::from_raw(raw).unwrap();
        let SchedulerConfig::OneCycleLR(one) = &c else {
            panic!("{c:?}")
        };
        assert_eq!(one.max_lr, PerGroup::All(0.003019951720402016));
        assert_eq!(c.to_short_string(), "OneCycleLR(max_lr=0.00302)");
        // Given (in any case), kept; nested ones are found; other schedulers are left alone.
        let mut raw = RawConfig::parse(
            "SequentialLR(CyclicLR(base_lr=1e-4, MAX_LR=0.1), OneCycleLR(total_steps=5), StepLR(step_size=2), milestones=[3, 6])",
        )
        .unwrap();
        let given = raw.peak_lrs();
        assert_eq!(given.len(), 2);
        assert_eq!(given[0].0, "CyclicLR");
        assert_eq!(given[0].1, Some(&serde_json::json!(0.1)));
        assert_eq!(given[1], ("OneCycleLR", None));
        assert_eq!(raw.fill_max_lr(0.5), 1);
        assert_eq!(raw.fill_max_lr(0.5), 0);
        let c = SchedulerConfig::from_raw(raw).unwrap();
        assert!(
            c.to_string()
                .contains("OneCycleLR(max_lr=0.5, total_steps=5)"),
            "{c}"
        );
        let mut raw = RawConfig::parse("StepLR(step_size=2)").unwrap();
        assert!(raw.peak_lrs().is_empty());
        assert_eq!(raw.fill_max_lr(0.5), 0);
        let json = RawConfig::parse(r#"{"scheduler": "OneCycleLR", "params": {"total_steps": 4}}"#);
        assert_eq!(json.unwrap().peak_lrs(), [("OneCycleLR", None)]);
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
        // Floats stay floats through the compact form; defaults are left out.
        let c = SchedulerConfig::parse("StepLR(step_size=3, gamma=1.0, last_epoch=-1)").unwrap();
        assert_eq!(c.to_string(), "StepLR(gamma=1.0, step_size=3)");
        assert_eq!(SchedulerConfig::parse(&c.to_string()).unwrap(), c);
        // serde goes through the same shape.
        let v: SchedulerConfig = serde_json::from_str(text).unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), text);
        let e = serde_json::from_str::<SchedulerConfig>(r#"{"scheduler":"StepLR"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("StepLR: step_size is required (an integer)"),
            "{e}"
        );
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
            SchedulerConfig::parse("ChainedScheduler(StepLR(step_size=3), x=1)")
                .unwrap_err()
                .to_string(),
            "ChainedScheduler: unknown parameter 'x'; accepted parameters: none (only child schedulers)"
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
        assert_eq!(
            SchedulerConfig::parse("StepLR(step_size='x')")
                .unwrap_err()
                .to_string(),
            "StepLR: step_size must be an integer, got \"x\""
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
    fn pytorch_type_checks() {
        let e = |s: &str| SchedulerConfig::parse(s).unwrap_err().to_string();
        assert_eq!(
            e("CosineAnnealingWarmRestarts(T_0=5.0)"),
            "CosineAnnealingWarmRestarts: T_0 must be an integer (PyTorch requires an int, not a float like 5.0), got 5.0"
        );
        assert_eq!(
            e("CosineAnnealingWarmRestarts(T_0=5, T_mult=2.0)"),
            "CosineAnnealingWarmRestarts: T_mult must be an integer (PyTorch requires an int, not a float like 2.0), got 2.0"
        );
        assert_eq!(
            e("OneCycleLR(max_lr=1, total_steps=100.0)"),
            "OneCycleLR: total_steps must be an integer (PyTorch requires an int, not a float like 100.0), got 100.0"
        );
        assert!(e("OneCycleLR(max_lr=1, epochs=2.0, steps_per_epoch=5)")
            .starts_with("OneCycleLR: epochs must be an integer"));
        assert!(e("OneCycleLR(max_lr=1, epochs=2, steps_per_epoch=5e0)")
            .starts_with("OneCycleLR: steps_per_epoch must be an integer"));
        assert_eq!(
            e("OneCycleLR(max_lr=1, total_steps=10, pct_start=1)"),
            "OneCycleLR: pct_start must be a float (PyTorch refuses the integer 1; write 1.0), got 1"
        );
        assert!(e("OneCycleLR(max_lr=1, total_steps=10, pct_start=0)")
            .starts_with("OneCycleLR: pct_start must be a float"));
        // The same values as floats / ints the other way round are fine.
        let ok = |s: &str| SchedulerConfig::parse(s).unwrap();
        ok("CosineAnnealingWarmRestarts(T_0=5, T_mult=2, eta_min=0)");
        ok("OneCycleLR(max_lr=1, total_steps=10, pct_start=1.0)");
        // StepLR only computes with step_size: 30.0 works in PyTorch and here.
        assert_eq!(ok("StepLR(step_size=30.0)"), StepLRConfig::new(30).into());
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
        let total = |i: usize| match &c.children()[i] {
            SchedulerConfig::OneCycleLR(OneCycleLRConfig { total_steps, .. }) => *total_steps,
            _ => unreachable!(),
        };
        assert_eq!((total(0), total(1), total(2)), (Some(100), Some(7), None));
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut raw = RawConfig {
            scheduler: "StepLR".into(),
            params: serde_json::from_str(r#"{"step_size": 1}"#).unwrap(),
            children: vec![],
        };
        for _ in 0..40 {
            raw = RawConfig {
                scheduler: "ChainedScheduler".into(),
                params: Map::new(),
                children: vec![raw],
            };
        }
        assert_eq!(
            SchedulerConfig::from_raw(raw).unwrap_err().to_string(),
            "ChainedScheduler: schedulers are nested deeper than 32 levels"
        );
    }
}
