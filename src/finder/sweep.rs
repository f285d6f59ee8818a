//! The LR range test loop: one optimizer step per learning rate, smoothing, early stop.

use std::ops::ControlFlow;

use serde::{Deserialize, Serialize};

use super::analysis::UPTURN;
use super::ladder::{ladder, ladder_lr, LadderMode};
use super::smooth::Ema;
use super::suggest::Window;
use crate::error::{Error, Result, Scope};

/// Anything that can take one training step at a given learning rate and say the loss.
///
/// This is all the finder needs, so it runs on anyone's model (and on analytic curves in
/// tests). The error is yours: candle's, `anyhow`'s, lrfind's or any
/// `std::error::Error + Send + Sync`. A closure `FnMut(f64) -> Result<f64, E>` is a
/// `TrainStep` too; for a candle-nn model and optimizer see [`crate::adapter::OptimizerStep`].
pub trait TrainStep {
    /// What a failed step returns.
    type Error: Into<Box<dyn std::error::Error + Send + Sync>>;

    /// Sets the LR, takes one optimizer step, returns the loss that step measured.
    fn train_step(&mut self, lr: f64) -> std::result::Result<f64, Self::Error>;
}

impl<F, E> TrainStep for F
where
    F: FnMut(f64) -> std::result::Result<f64, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Error = E;

    fn train_step(&mut self, lr: f64) -> std::result::Result<f64, E> {
        self(lr)
    }
}

/// A model whose training state can be saved and put back, so a range test leaves it as it
/// found it (weights, optimizer state and data order).
///
/// Implemented for candle's `VarMap`, `[Var]` and `Vec<Var>` (the weights), and by
/// [`crate::adapter::OptimizerStep`] (weights and optimizer).
pub trait Checkpoint {
    /// A snapshot of everything the training step changes.
    type State;
    /// Takes a snapshot (deep copies: candle's `Var::set` writes in place).
    fn save_state(&self) -> Result<Self::State>;
    /// Puts a snapshot back.
    fn restore_state(&mut self, state: Self::State) -> Result<()>;
}

/// Settings of one range test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepConfig {
    /// The first step's learning rate (exactly).
    pub min_lr: f64,
    /// The last step's learning rate (exactly).
    pub max_lr: f64,
    /// Steps from `min_lr` to `max_lr`, both included.
    pub num_steps: usize,
    /// Exponential or linear spacing.
    pub mode: LadderMode,
    /// EMA factor in [0, 1); 0 = no smoothing.
    pub smooth: f64,
    /// Stop once smoothed loss > `diverge` × best smoothed loss so far.
    pub diverge: f64,
    /// The part of the curve the suggestion rules read.
    pub window: Window,
    /// Keep climbing the ladder past `max_lr` (at most [`EXTEND_DECADES`] more) until the
    /// smoothed loss turns upward.
    #[serde(default)]
    pub extend: bool,
}

/// How far `extend` may climb past `max_lr`, in decades.
pub const EXTEND_DECADES: i32 = 3;

impl Default for SweepConfig {
    fn default() -> Self {
        Self {
            min_lr: 1e-7,
            max_lr: 10.0,
            num_steps: 100,
            mode: LadderMode::Exp,
            smooth: 0.98,
            diverge: 4.0,
            window: Window::default(),
            extend: false,
        }
    }
}

impl SweepConfig {
    /// Checks every field; the error names the field, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, value: &dyn std::fmt::Display, allowed: &str| {
            Err(Error::setting(Scope::Sweep, field, value, allowed))
        };
        for (field, v) in [("min_lr", self.min_lr), ("max_lr", self.max_lr)] {
            if !(v.is_finite() && v > 0.0) {
                return bad(field, &v, "must be a positive finite learning rate");
            }
        }
        if self.min_lr >= self.max_lr {
            return bad(
                "min_lr",
                &self.min_lr,
                &format!("must be below max_lr ({})", self.max_lr),
            );
        }
        if self.num_steps < 2 {
            return bad(
                "num_steps",
                &self.num_steps,
                "must be at least 2 (one step at min_lr, one at max_lr)",
            );
        }
        if !(0.0..1.0).contains(&self.smooth) {
            return bad(
                "smooth",
                &self.smooth,
                "must be in [0, 1) (0 turns smoothing off)",
            );
        }
        if !(self.diverge.is_finite() && self.diverge > 1.0) {
            return bad("diverge", &self.diverge, "must be a finite factor above 1");
        }
        Ok(())
    }

    /// The learning rates this sweep will visit (without `extend`).
    pub fn lrs(&self) -> Vec<f64> {
        ladder(self.min_lr, self.max_lr, self.num_steps, self.mode)
    }

    /// The `k`-th learning rate of the ladder (past `num_steps`: its continuation).
    pub fn lr_at(&self, k: usize) -> f64 {
        ladder_lr(self.min_lr, self.max_lr, self.num_steps, self.mode, k)
    }

    /// The highest LR `extend` may reach.
    pub fn extend_limit(&self) -> f64 {
        self.max_lr * 10f64.powi(EXTEND_DECADES)
    }
}

/// Why the sweep ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StopReason {
    /// Every step of the ladder was taken.
    Completed,
    /// The smoothed loss passed `diverge` × the best smoothed loss.
    Diverged {
        /// Index of the step that diverged (0-based).
        step: usize,
        /// Its smoothed loss.
        smoothed: f64,
        /// The best smoothed loss before it.
        best: f64,
    },
    /// A step returned NaN or ±inf.
    NonFiniteLoss {
        /// Index of that step (0-based).
        step: usize,
    },
    /// The observer asked to stop (Ctrl-C).
    Interrupted {
        /// Index of the last step taken (0-based).
        step: usize,
    },
}

impl StopReason {
    /// The observer stopped the sweep.
    pub fn is_interrupted(&self) -> bool {
        matches!(self, StopReason::Interrupted { .. })
    }
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Completed => write!(f, "completed every step"),
            StopReason::Diverged {
                step,
                smoothed,
                best,
            } => write!(
                f,
                "diverged at step {}: smoothed loss {smoothed:.4} is {} the best ({best:.4})",
                step + 1,
                ratio(smoothed / best)
            ),
            // Counted from 1 like "84 of 100 steps" (the `step` fields are 0-based indices).
            StopReason::NonFiniteLoss { step } => {
                write!(f, "loss became NaN/inf at step {}", step + 1)
            }
            StopReason::Interrupted { step } => write!(f, "interrupted after step {}", step + 1),
        }
    }
}

/// A ratio for people: `4.2x`, `12345x`, `1.2e13x` (never a 14-digit number).
pub fn ratio(r: f64) -> String {
    if !r.is_finite() {
        "far above".into()
    } else if r.abs() < 1e5 {
        format!("{r:.1}x")
    } else {
        format!("{r:.1e}x")
    }
}

/// What the loop reports after each step (for progress bars and logs).
#[derive(Debug, Clone, Copy)]
pub struct StepEvent {
    /// The step, from 0.
    pub step: usize,
    /// Steps the ladder has.
    pub total: usize,
    /// Its learning rate.
    pub lr: f64,
    /// The loss it measured.
    pub loss: f64,
    /// The smoothed loss so far.
    pub smoothed: f64,
}

/// The measured curve. `lrs`, `losses` and `smoothed` have one entry per step taken;
/// a step whose loss was not finite is recorded (as null in JSON) and ends the sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The learning rate of every step taken.
    pub lrs: Vec<f64>,
    /// Their losses (None: not finite).
    pub losses: Vec<Option<f64>>,
    /// The smoothed losses.
    pub smoothed: Vec<Option<f64>>,
    /// Why the sweep ended.
    pub stop: StopReason,
}

impl Curve {
    /// The finite prefix of the curve: what suggestion rules and plots read.
    pub fn finite(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = self
            .losses
            .iter()
            .zip(&self.smoothed)
            .take_while(|(l, s)| l.is_some() && s.is_some())
            .count();
        (
            self.lrs[..n].to_vec(),
            self.losses[..n].iter().flatten().copied().collect(),
            self.smoothed[..n].iter().flatten().copied().collect(),
        )
    }
}

/// Runs the range test on `model`. `observe` sees every step and may stop the sweep
/// (`ControlFlow::Break`), which ends it as [`StopReason::Interrupted`] with what was measured.
pub fn run_sweep<M: TrainStep + ?Sized>(
    model: &mut M,
    config: &SweepConfig,
    observe: &mut dyn FnMut(&StepEvent) -> ControlFlow<()>,
) -> Result<Curve> {
    config.validate()?;
    // The LRs are computed one at a time: no array the size of num_steps up front.
    let n = config.num_steps;
    let reserve = n.min(4096);
    let mut ema = Ema::new(config.smooth);
    let mut best = f64::INFINITY;
    let mut curve = Curve {
        lrs: Vec::with_capacity(reserve),
        losses: Vec::with_capacity(reserve),
        smoothed: Vec::with_capacity(reserve),
        stop: StopReason::Completed,
    };
    let limit = config.extend_limit() * (1.0 + 1e-9);
    let mut last = f64::NAN;
    for step in 0.. {
        if step >= n {
            // extend: past max_lr only while the loss has not turned upward.
            let turned = last > best + UPTURN * best.abs();
            if !config.extend || turned {
                break;
            }
        }
        let lr = config.lr_at(step);
        if step >= n && (lr.is_nan() || lr > limit) {
            break;
        }
        let loss = model.train_step(lr).map_err(Error::from_user)?;
        curve.lrs.push(lr);
        if !loss.is_finite() {
            curve.losses.push(None);
            curve.smoothed.push(None);
            curve.stop = StopReason::NonFiniteLoss { step };
            break;
        }
        let smoothed = ema.update(loss);
        last = smoothed;
        curve.losses.push(Some(loss));
        curve.smoothed.push(Some(smoothed));
        best = best.min(smoothed);
        let event = StepEvent {
            step,
            total: n,
            lr,
            loss,
            smoothed,
        };
        if observe(&event).is_break() {
            curve.stop = StopReason::Interrupted { step };
            break;
        }
        if smoothed > config.diverge * best {
            curve.stop = StopReason::Diverged {
                step,
                smoothed,
                best,
            };
            break;
        }
    }
    Ok(curve)
}

/// [`run_sweep`], then restores `model` to its state before the sweep, whatever the outcome.
pub fn find_lr<M: TrainStep + Checkpoint>(
    model: &mut M,
    config: &SweepConfig,
    observe: &mut dyn FnMut(&StepEvent) -> ControlFlow<()>,
) -> Result<Curve> {
    let saved = model.save_state()?;
    let result = run_sweep(model, config, observe);
    model.restore_state(saved)?;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(n: usize) -> SweepConfig {
        SweepConfig {
            min_lr: 1e-6,
            max_lr: 1.0,
            num_steps: n,
            ..SweepConfig::default()
        }
    }

    #[test]
    fn visits_every_lr_of_the_ladder_in_order() {
        let mut seen = vec![];
        let mut model = |lr: f64| {
            seen.push(lr);
            Ok::<_, Error>(1.0)
        };
        let c = run_sweep(&mut model, &cfg(50), &mut |_| ControlFlow::Continue(())).unwrap();
        assert_eq!(c.stop, StopReason::Completed);
        assert_eq!(seen, cfg(50).lrs());
        assert_eq!(seen[0], 1e-6);
        assert_eq!(seen[49], 1.0);
    }

    #[test]
    fn stops_when_smoothed_loss_passes_four_times_best() {
        // loss = 1 until lr 1e-2, then 100: with β = 0 the first 100 is 100× best.
        let mut model = |lr: f64| Ok::<_, Error>(if lr < 1e-2 { 1.0 } else { 100.0 });
        let c = SweepConfig {
            smooth: 0.0,
            ..cfg(100)
        };
        let curve = run_sweep(&mut model, &c, &mut |_| ControlFlow::Continue(())).unwrap();
        let first_high = c.lrs().iter().position(|&l| l >= 1e-2).unwrap();
        assert_eq!(
            curve.stop,
            StopReason::Diverged {
                step: first_high,
                smoothed: 100.0,
                best: 1.0
            }
        );
        assert_eq!(curve.lrs.len(), first_high + 1);
    }

    #[test]
    fn smoothing_delays_the_divergence_stop() {
        // With β = 0.98 a jump to 100 must persist until the EMA passes 4.
        let mut model = |lr: f64| Ok::<_, Error>(if lr < 1e-2 { 1.0 } else { 100.0 });
        let c = cfg(100);
        let curve = run_sweep(&mut model, &c, &mut |_| ControlFlow::Continue(())).unwrap();
        let first_high = c.lrs().iter().position(|&l| l >= 1e-2).unwrap();
        match curve.stop {
            StopReason::Diverged { step, smoothed, .. } => {
                assert!(step > first_high && smoothed > 4.0, "{step} {smoothed}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn nan_loss_stops_and_is_recorded_as_missing() {
        let mut model = |lr: f64| Ok::<_, Error>(if lr > 1e-3 { f64::NAN } else { 2.0 });
        let curve = run_sweep(&mut model, &cfg(30), &mut |_| ControlFlow::Continue(())).unwrap();
        let StopReason::NonFiniteLoss { step } = curve.stop else {
            panic!("{:?}", curve.stop)
        };
        assert_eq!(curve.losses[step], None);
        assert_eq!(curve.finite().0.len(), step);
        let json = serde_json::to_string(&curve).unwrap();
        assert!(json.contains("null"), "{json}");
    }

    #[test]
    fn observer_can_interrupt() {
        let mut model = |_lr: f64| Ok::<_, Error>(1.0);
        let curve = run_sweep(&mut model, &cfg(30), &mut |e| {
            if e.step == 4 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(curve.stop, StopReason::Interrupted { step: 4 });
        assert_eq!(curve.lrs.len(), 5);
    }

    #[test]
    fn extend_climbs_past_max_until_the_loss_turns_up() {
        // Falls until lr 30, then rises: a sweep to 1 would stop still falling.
        let mut model = |lr: f64| {
            Ok::<_, Error>(if lr < 30.0 {
                3.0 - 0.1 * lr.log10()
            } else {
                9.0
            })
        };
        let c = SweepConfig {
            smooth: 0.0,
            extend: true,
            ..cfg(61) // 10 steps a decade
        };
        let curve = run_sweep(&mut model, &c, &mut |_| ControlFlow::Continue(())).unwrap();
        let last = *curve.lrs.last().unwrap();
        assert!(last > 30.0 && last < 40.0, "{last}");
        let r = curve.lrs[61] / curve.lrs[60];
        assert!((r - 10f64.powf(0.1)).abs() < 1e-9, "{r}");
        // Never past three more decades, and not at all without extend.
        let mut flat = |lr: f64| Ok::<_, Error>(1.0 / (1.0 + lr));
        let curve = run_sweep(&mut flat, &c, &mut |_| ControlFlow::Continue(())).unwrap();
        let last = *curve.lrs.last().unwrap();
        assert!((last / 1000.0 - 1.0).abs() < 1e-9, "{last}");
        let plain = SweepConfig { extend: false, ..c };
        let curve = run_sweep(&mut flat, &plain, &mut |_| ControlFlow::Continue(())).unwrap();
        assert_eq!(curve.lrs.len(), 61);
    }

    #[test]
    fn a_billion_steps_allocate_nothing_up_front() {
        let c = SweepConfig {
            num_steps: usize::MAX,
            ..cfg(2)
        };
        let mut model = |_lr: f64| Ok::<_, Error>(1.0);
        let curve = run_sweep(&mut model, &c, &mut |e| {
            if e.step == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
        assert_eq!(curve.lrs.len(), 3);
    }

    #[test]
    fn huge_ratios_print_compactly() {
        assert_eq!(ratio(4.34), "4.3x");
        assert_eq!(ratio(12171311288329.9), "1.2e13x");
        assert_eq!(ratio(f64::INFINITY), "far above");
    }

    #[test]
    fn invalid_settings_name_the_field() {
        let cases = [
            (
                SweepConfig {
                    min_lr: 1.0,
                    max_lr: 1.0,
                    ..cfg(10)
                },
                "min_lr = 1",
            ),
            (
                SweepConfig {
                    min_lr: -1.0,
                    ..cfg(10)
                },
                "min_lr = -1",
            ),
            (
                SweepConfig {
                    max_lr: f64::INFINITY,
                    ..cfg(10)
                },
                "max_lr = inf",
            ),
            (cfg(1), "num_steps = 1"),
            (
                SweepConfig {
                    smooth: 1.0,
                    ..cfg(10)
                },
                "smooth = 1",
            ),
            (
                SweepConfig {
                    diverge: 0.5,
                    ..cfg(10)
                },
                "diverge = 0.5",
            ),
        ];
        for (c, want) in cases {
            let e = c.validate().unwrap_err().to_string();
            assert!(e.contains(want), "{e} lacks {want}");
        }
    }
}

#[cfg(test)]
mod user_error_tests {
    use super::*;

    #[test]
    fn a_step_may_fail_with_the_users_own_error() {
        #[derive(Debug, thiserror::Error)]
        #[error("my data loader broke at lr {0}")]
        struct Mine(f64);
        let mut model = |lr: f64| if lr > 1e-3 { Err(Mine(lr)) } else { Ok(1.0) };
        let e = run_sweep(
            &mut model,
            &SweepConfig {
                min_lr: 1e-4,
                max_lr: 1e-2,
                num_steps: 3,
                ..SweepConfig::default()
            },
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Step(_)));
        assert!(
            e.to_string().starts_with("my data loader broke at lr 0.00"),
            "{e}"
        );
    }

    #[test]
    fn a_candle_error_from_a_step_stays_a_candle_error() {
        let mut model = |_: f64| -> candle_core::Result<f64> { candle_core::bail!("bad shape") };
        let e = run_sweep(&mut model, &SweepConfig::default(), &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
        assert!(matches!(e, Error::Candle(_)), "{e:?}");
    }
}
