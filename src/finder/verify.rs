//! Verifying a suggestion: short training trials at LRs around it, from the same weights,
//! optimizer state and batches, scored on held-out data. The range test reads one noisy
//! curve; the trials measure what the user wants, the LR that trains best.
//!
//! Like the sweep, nothing here knows about candle: a trial is [`TrainStep`]s on a
//! [`Checkpoint`] and a score the caller computes (validation loss and accuracy).

use std::ops::ControlFlow;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::analysis::Analysis;
use super::sweep::{Checkpoint, TrainStep};
use crate::error::{Error, Result, Scope};

/// Multiples of the suggestion a verification tries by default (chosen by the study in the
/// README, "Verifying the suggestion"): x1/10 was never the best trial nor the verified LR
/// there, and only cost time.
pub const DEFAULT_FACTORS: [f64; 3] = [1.0 / 3.0, 1.0, 3.0];

/// Optimizer steps per trial by default (the README's study).
pub const DEFAULT_STEPS: usize = 100;

/// Other rules' suggestions join the candidates when they are at least this factor away from
/// every candidate already there, and within [`RULE_REACH`] of the suggestion.
pub const DISTINCT: f64 = 1.5;

/// How far (a factor either way) from the suggestion another rule's LR may lie and still be
/// tried: beyond it the rule read another part of the curve, not a rival reading of the fall.
pub const RULE_REACH: f64 = 10.0;

/// At most this many trials by default: the factors, then the other rule closest to the
/// suggestion (when distinct), which puts a trial between the factors' x3 steps.
pub const MAX_TRIALS: usize = 4;

/// The verified LR is the highest tried LR at least this factor below the best trial's (or
/// the best trial's, when none is lower). A short trial favours the largest LR that is still
/// stable; a run 10–20 times longer does best a notch below it (the README's study: on every
/// setup the best trial's LR trained worse than the next lower candidate, by up to 2 points).
pub const STEP_DOWN: f64 = 1.5;

/// Settings of a verification.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyConfig {
    /// Optimizer steps per trial.
    pub steps: usize,
    /// Multiples of the suggestion to try.
    pub factors: Vec<f64>,
    /// Also try the other rules' suggestions when they differ (see [`DISTINCT`]), closest
    /// first, up to `max_trials` trials in all.
    pub other_rules: bool,
    /// At most this many trials (the factors always run).
    #[serde(default = "default_max_trials")]
    pub max_trials: usize,
}

fn default_max_trials() -> usize {
    MAX_TRIALS
}

impl Default for VerifyConfig {
    fn default() -> Self {
        Self {
            steps: DEFAULT_STEPS,
            factors: DEFAULT_FACTORS.to_vec(),
            other_rules: true,
            max_trials: MAX_TRIALS,
        }
    }
}

impl VerifyConfig {
    /// Checks every field; the error names the field, the value and what is allowed.
    pub fn validate(&self) -> Result<()> {
        if self.steps == 0 || self.steps > 1_000_000 {
            return Err(Error::setting(
                Scope::Sweep,
                "verify_steps",
                self.steps,
                "must be between 1 and 1000000 optimizer steps per trial",
            ));
        }
        if self.factors.is_empty() || self.factors.len() > 16 {
            return Err(Error::setting(
                Scope::Sweep,
                "verify_factors",
                self.factors.len(),
                "must list between 1 and 16 multiples of the suggestion",
            ));
        }
        if let Some(f) = self.factors.iter().find(|f| !(f.is_finite() && **f > 0.0)) {
            return Err(Error::setting(
                Scope::Sweep,
                "verify_factors",
                f,
                "every factor must be a positive finite number",
            ));
        }
        Ok(())
    }
}

/// One LR to try, and why it is tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// The learning rate.
    pub lr: f64,
    /// Where it comes from: `"x1/3"` (a multiple of the suggestion) or a rule's name.
    pub origin: String,
}

/// The LRs a verification of `analysis` tries, ascending: the suggestion times each factor,
/// then the other rules' suggestions that are distinct (empty without a suggestion).
pub fn candidates(analysis: &Analysis, config: &VerifyConfig) -> Vec<Candidate> {
    let Some(s) = &analysis.suggestion else {
        return Vec::new();
    };
    let mut out: Vec<Candidate> = Vec::new();
    let far = |out: &[Candidate], lr: f64| {
        out.iter()
            .all(|c| (lr / c.lr).max(c.lr / lr) >= DISTINCT - 1e-12)
    };
    for &f in &config.factors {
        let lr = s.lr * f;
        if far(&out, lr) {
            out.push(Candidate {
                lr,
                origin: factor_name(f),
            });
        }
    }
    if config.other_rules {
        let mut others: Vec<(f64, &str)> = analysis
            .rules
            .iter()
            .filter(|o| o.rule != analysis.chosen_rule)
            .filter_map(|o| Some((o.suggestion.as_ref()?.lr, o.rule.name())))
            .filter(|(lr, _)| (lr / s.lr).max(s.lr / lr) <= RULE_REACH)
            .collect();
        // Closest to the suggestion first, so the cap drops the far ones.
        others.sort_by(|a, b| (a.0 / s.lr).ln().abs().total_cmp(&(b.0 / s.lr).ln().abs()));
        for (lr, name) in others {
            if out.len() >= config.max_trials {
                break;
            }
            if far(&out, lr) {
                out.push(Candidate {
                    lr,
                    origin: name.to_string(),
                });
            }
        }
    }
    out.sort_by(|a, b| a.lr.total_cmp(&b.lr));
    out
}

/// `x1`, `x3`, `x1/3`, `x0.25`: a factor as people write it.
fn factor_name(f: f64) -> String {
    let inv = 1.0 / f;
    if f < 1.0 && (inv - inv.round()).abs() < 1e-9 {
        format!("x1/{}", inv.round())
    } else if (f - f.round()).abs() < 1e-9 {
        format!("x{}", f.round())
    } else {
        format!("x{f}")
    }
}

/// How a trial's model scores on held-out data at its end.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrialScore {
    /// Mean loss per sample (what the trials are ranked by).
    pub loss: f64,
    /// Fraction classified correctly (classification only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<f64>,
}

/// One trial: a short training run at one LR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Its learning rate.
    pub lr: f64,
    /// Why it was tried (see [`Candidate::origin`]).
    pub origin: String,
    /// The training loss of every step taken (None: not finite, which ends the trial).
    pub losses: Vec<Option<f64>>,
    /// The held-out score at the end (None when the trial diverged).
    pub score: Option<TrialScore>,
    /// The loss became NaN/inf (in training or scoring): this LR blows up.
    pub diverged: bool,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verification {
    /// Steps per trial.
    pub steps: usize,
    /// The range test's suggestion that was verified.
    pub suggested_lr: f64,
    /// The held-out score before any trial (the starting weights).
    pub start: TrialScore,
    /// Every trial, by ascending LR.
    pub trials: Vec<Trial>,
    /// Index into `trials` of the one with the lowest held-out loss (None: every trial
    /// diverged, or the verification was interrupted).
    #[serde(default)]
    pub best: Option<usize>,
    /// Index into `trials` of the verified one: the highest LR at least [`STEP_DOWN`] below
    /// the best trial's that improved on the start, else the best trial itself.
    pub chosen: Option<usize>,
    /// The verified learning rate: the chosen trial's LR.
    pub verified_lr: Option<f64>,
    /// No trial ended with a lower held-out loss than the start: training at any of these
    /// LRs makes the model worse in this many steps (a converged model, or LRs too high).
    pub none_improved: bool,
    /// Ctrl-C stopped the trials.
    pub interrupted: bool,
    /// Wall-clock seconds the trials and their scoring took.
    pub seconds: f64,
}

/// What the trial loop reports after each step (for progress bars and logs).
#[derive(Debug, Clone, Copy)]
pub struct TrialEvent {
    /// The trial, from 0.
    pub trial: usize,
    /// How many trials there are.
    pub trials: usize,
    /// The step within the trial, from 0.
    pub step: usize,
    /// Steps per trial.
    pub steps: usize,
    /// The trial's learning rate.
    pub lr: f64,
    /// The loss the step measured.
    pub loss: f64,
}

/// Runs one trial per candidate on `model`, each from the state it had on entry (weights,
/// optimizer state, data order), scores each with `score`, and puts the model back as it
/// found it, whatever the outcome. `observe` may stop the trials (Ctrl-C): the result is then
/// marked interrupted and chooses nothing.
pub fn verify<M, F, E>(
    model: &mut M,
    candidates: &[Candidate],
    suggested_lr: f64,
    config: &VerifyConfig,
    mut score: F,
    observe: &mut dyn FnMut(&TrialEvent) -> ControlFlow<()>,
) -> Result<Verification>
where
    M: TrainStep + Checkpoint,
    M::State: Clone,
    F: FnMut(&mut M) -> std::result::Result<TrialScore, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    config.validate()?;
    if candidates.is_empty() {
        return Err(Error::setting(
            Scope::Sweep,
            "candidates",
            0,
            "a verification needs at least one learning rate to try",
        ));
    }
    let saved = model.save_state()?;
    let result = run_trials(
        model,
        &saved,
        candidates,
        suggested_lr,
        config,
        &mut score,
        observe,
    );
    model.restore_state(saved)?;
    result
}

fn run_trials<M, F, E>(
    model: &mut M,
    saved: &M::State,
    candidates: &[Candidate],
    suggested_lr: f64,
    config: &VerifyConfig,
    score: &mut F,
    observe: &mut dyn FnMut(&TrialEvent) -> ControlFlow<()>,
) -> Result<Verification>
where
    M: TrainStep + Checkpoint,
    M::State: Clone,
    F: FnMut(&mut M) -> std::result::Result<TrialScore, E>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let t = Instant::now();
    let start = score(model).map_err(Error::from_user)?;
    let mut trials = Vec::with_capacity(candidates.len());
    let mut interrupted = false;
    'trials: for (k, c) in candidates.iter().enumerate() {
        model.restore_state(saved.clone())?;
        let mut trial = Trial {
            lr: c.lr,
            origin: c.origin.clone(),
            losses: Vec::with_capacity(config.steps.min(4096)),
            score: None,
            diverged: false,
        };
        for step in 0..config.steps {
            let loss = model.train_step(c.lr).map_err(Error::from_user)?;
            if !loss.is_finite() {
                trial.losses.push(None);
                trial.diverged = true;
                break;
            }
            trial.losses.push(Some(loss));
            let event = TrialEvent {
                trial: k,
                trials: candidates.len(),
                step,
                steps: config.steps,
                lr: c.lr,
                loss,
            };
            if observe(&event).is_break() {
                interrupted = true;
                trials.push(trial);
                break 'trials;
            }
        }
        if !trial.diverged {
            let s = score(model).map_err(Error::from_user)?;
            if s.loss.is_finite() {
                trial.score = Some(s);
            } else {
                trial.diverged = true;
            }
        }
        trials.push(trial);
    }
    let (best, chosen) = if interrupted {
        (None, None)
    } else {
        choose(&trials, start.loss)
    };
    let none_improved = !trials
        .iter()
        .filter_map(|t| t.score)
        .any(|s| s.loss < start.loss);
    Ok(Verification {
        steps: config.steps,
        suggested_lr,
        start,
        verified_lr: chosen.map(|i| trials[i].lr),
        best,
        chosen,
        none_improved,
        interrupted,
        trials,
        seconds: t.elapsed().as_secs_f64(),
    })
}

/// The selection rule: the trial with the lowest held-out loss, and the verified one (see
/// [`Verification::chosen`]); `start` is the held-out loss before the trials. Both None when
/// no trial has a score.
pub fn choose(trials: &[Trial], start: f64) -> (Option<usize>, Option<usize>) {
    let b = best(trials);
    (b, b.map(|b| step_down(trials, b, start)))
}

/// The highest-LR trial at least [`STEP_DOWN`] below trial `best` that scored better than the
/// start; `best` itself when there is none.
fn step_down(trials: &[Trial], best: usize, start: f64) -> usize {
    let ceiling = trials[best].lr / STEP_DOWN;
    trials
        .iter()
        .enumerate()
        .filter(|(_, t)| t.lr <= ceiling * (1.0 + 1e-12))
        .filter(|(_, t)| t.score.is_some_and(|s| s.loss < start))
        .max_by(|a, b| a.1.lr.total_cmp(&b.1.lr))
        .map_or(best, |(i, _)| i)
}

/// The trial with the lowest held-out loss (ties: the lower LR, the safer of equals).
fn best(trials: &[Trial]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, t) in trials.iter().enumerate() {
        let Some(s) = t.score else { continue };
        if best.is_none_or(|(_, b)| s.loss < b) {
            best = Some((i, s.loss));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finder::analysis::RuleOutcome;
    use crate::finder::suggest::{Rule, Suggestion};

    fn analysis(chosen: f64, others: &[(Rule, f64)]) -> Analysis {
        let sg = |rule, lr| Suggestion {
            rule,
            lr,
            loss: 1.0,
            index: 0,
        };
        let mut rules = vec![RuleOutcome {
            rule: Rule::Fall,
            suggestion: Some(sg(Rule::Fall, chosen)),
            error: None,
        }];
        rules.extend(others.iter().map(|&(r, lr)| RuleOutcome {
            rule: r,
            suggestion: Some(sg(r, lr)),
            error: None,
        }));
        Analysis {
            rules,
            chosen_rule: Rule::Fall,
            suggestion: Some(sg(Rule::Fall, chosen)),
            no_suggestion: None,
            pinned_by_max: false,
            pinned: false,
            noise: None,
            edge: None,
        }
    }

    #[test]
    fn candidates_are_the_factors_then_distinct_rules_in_reach() {
        let a = analysis(
            1e-2,
            &[
                (Rule::Steepest, 1.2e-2), // within x1.5 of x1: dropped
                (Rule::Valley, 2e-3),     // distinct, in reach
                (Rule::Minimum, 5.0),     // 500x away: out of reach
            ],
        );
        let wide = VerifyConfig {
            factors: vec![0.1, 1.0 / 3.0, 1.0, 3.0],
            max_trials: 8,
            ..VerifyConfig::default()
        };
        let c = candidates(&a, &wide);
        let lrs: Vec<f64> = c.iter().map(|c| c.lr).collect();
        let want = [1e-3, 2e-3, 1e-2 / 3.0, 1e-2, 3e-2];
        assert_eq!(lrs.len(), want.len(), "{c:?}");
        for (a, b) in lrs.iter().zip(want) {
            assert!((a / b - 1.0).abs() < 1e-12, "{a} {b}");
        }
        let origins: Vec<&str> = c.iter().map(|c| c.origin.as_str()).collect();
        assert_eq!(origins, ["x1/10", "valley", "x1/3", "x1", "x3"]);
        // The defaults: x1/3, x1, x3 and the closest distinct rule.
        let c = candidates(&a, &VerifyConfig::default());
        let origins: Vec<&str> = c.iter().map(|c| c.origin.as_str()).collect();
        assert_eq!(origins, ["valley", "x1/3", "x1", "x3"]);
        let none = VerifyConfig {
            other_rules: false,
            ..VerifyConfig::default()
        };
        assert_eq!(candidates(&a, &none).len(), 3);
        let mut empty = a.clone();
        empty.suggestion = None;
        assert!(candidates(&empty, &none).is_empty());
    }

    /// A model whose loss after training at `lr` for k steps is known: the quadratic
    /// `w²/2` with gradient descent, w ← w(1 - lr) — diverges for lr > 2.
    struct Quad {
        w: f64,
        steps: usize,
    }

    impl TrainStep for Quad {
        type Error = Error;
        fn train_step(&mut self, lr: f64) -> Result<f64> {
            self.steps += 1;
            let loss = 0.5 * self.w * self.w;
            self.w *= 1.0 - lr;
            Ok(loss)
        }
    }

    impl Checkpoint for Quad {
        type State = (f64, usize);
        fn save_state(&self) -> Result<(f64, usize)> {
            Ok((self.w, self.steps))
        }
        fn restore_state(&mut self, s: (f64, usize)) -> Result<()> {
            (self.w, self.steps) = s;
            Ok(())
        }
    }

    fn quad_score(q: &mut Quad) -> Result<TrialScore> {
        let loss = 0.5 * q.w * q.w;
        Ok(TrialScore {
            loss: if loss > 1e300 { f64::INFINITY } else { loss },
            accuracy: None,
        })
    }

    fn cands(lrs: &[f64]) -> Vec<Candidate> {
        lrs.iter()
            .map(|&lr| Candidate {
                lr,
                origin: "x".into(),
            })
            .collect()
    }

    #[test]
    fn the_best_trial_wins_and_the_model_is_put_back() {
        // After 5 steps w = (1 - lr)^5: lr 1 reaches 0 exactly, lr 0.3 0.168, lr 3 (-2)^5.
        let mut q = Quad { w: 1.0, steps: 7 };
        let cfg = VerifyConfig {
            steps: 5,
            ..VerifyConfig::default()
        };
        let v = verify(
            &mut q,
            &cands(&[0.3, 1.0, 3.0]),
            1.0,
            &cfg,
            quad_score,
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
        assert_eq!((q.w, q.steps), (1.0, 7), "restored");
        assert_eq!(v.best, Some(1));
        // One notch below the best: 0.3 is more than 1.5x below 1.
        assert_eq!(v.chosen, Some(0));
        assert_eq!(v.verified_lr, Some(0.3));
        assert_eq!(v.start.loss, 0.5);
        let s = |i: usize| v.trials[i].score.unwrap().loss;
        assert!((s(0) - 0.5 * 0.7f64.powi(10)).abs() < 1e-15);
        assert_eq!(s(1), 0.0);
        assert_eq!(s(2), 0.5 * 1024.0);
        // Every trial starts from the same state: its first loss is the start's.
        for t in &v.trials {
            assert_eq!(t.losses.len(), 5);
            assert_eq!(t.losses[0], Some(0.5));
        }
        assert!(!v.none_improved);
    }

    #[test]
    fn the_step_down_skips_near_neighbours_and_trials_that_did_not_learn() {
        let cfg = VerifyConfig {
            steps: 5,
            ..VerifyConfig::default()
        };
        let run = |lrs: &[f64]| {
            let mut q = Quad { w: 1.0, steps: 0 };
            verify(&mut q, &cands(lrs), 1.0, &cfg, quad_score, &mut |_| {
                ControlFlow::Continue(())
            })
            .unwrap()
        };
        // 0.8 is within 1.5x of the best (1.0): the notch below is 0.3.
        let v = run(&[0.3, 0.8, 1.0]);
        assert_eq!((v.best, v.verified_lr), (Some(2), Some(0.3)));
        // LR 0 leaves the loss where it started: never the verified LR.
        let v = run(&[0.0, 0.8, 1.0]);
        assert_eq!((v.best, v.chosen), (Some(2), Some(2)));
        // The lowest trial best: nothing below it, it stands.
        let v = run(&[0.9, 1.5, 1.9]);
        assert_eq!((v.best, v.chosen), (Some(0), Some(0)));
    }

    #[test]
    fn diverged_trials_are_marked_and_never_chosen() {
        let mut q = Quad { w: 1.0, steps: 0 };
        let cfg = VerifyConfig {
            steps: 2000,
            ..VerifyConfig::default()
        };
        let v = verify(
            &mut q,
            &cands(&[0.01, 1e6]),
            1e6,
            &cfg,
            quad_score,
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
        assert!(v.trials[1].diverged, "{:?}", v.trials[1]);
        assert_eq!(v.trials[1].score, None);
        assert_eq!(v.trials[1].losses.last(), Some(&None));
        assert_eq!(v.verified_lr, Some(0.01));
        assert_eq!(q.w, 1.0);
    }

    #[test]
    fn no_improvement_is_flagged_and_interruption_chooses_nothing() {
        // Gradient ascent in disguise: every LR makes the loss worse.
        let mut q = Quad { w: 1.0, steps: 0 };
        let cfg = VerifyConfig {
            steps: 3,
            ..VerifyConfig::default()
        };
        let v = verify(
            &mut q,
            &cands(&[2.5, 3.0]),
            2.5,
            &cfg,
            quad_score,
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap();
        assert!(v.none_improved);
        assert_eq!(v.verified_lr, Some(2.5), "still the least bad");
        let v = verify(
            &mut q,
            &cands(&[0.5, 1.0]),
            1.0,
            &cfg,
            quad_score,
            &mut |e| {
                if e.trial == 1 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
        assert!(v.interrupted);
        assert_eq!(v.chosen, None);
        assert_eq!(v.trials.len(), 2);
        assert_eq!(q.w, 1.0);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let e = VerifyConfig {
            steps: 0,
            ..VerifyConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().starts_with("verify_steps = 0:"), "{e}");
        let e = VerifyConfig {
            factors: vec![1.0, -3.0],
            ..VerifyConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().starts_with("verify_factors = -3:"), "{e}");
        let mut q = Quad { w: 1.0, steps: 0 };
        let e = verify(
            &mut q,
            &[],
            1.0,
            &VerifyConfig::default(),
            quad_score,
            &mut |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least one"), "{e}");
    }
}
