//! From a measured curve to a verdict: every rule's suggestion, the chosen one, and whether
//! the curve says enough for the answer to mean anything: a descent clearly above the raw
//! loss's own noise, and a blow-up observed inside the range (else the answer is pinned).

use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use super::suggest::{argmin, suggest_all, NoSuggestion, Rule, Suggestion, Window};
use super::sweep::{Curve, StopReason, SweepConfig};

/// A completed sweep has turned upward when its last smoothed loss is this much (relative to
/// the loss level) above its minimum …
pub const UPTURN: f64 = 0.05;

/// … or has climbed back this fraction of a real fall (at least [`MIN_FALL`] of its level; so a
/// curve that fell 2 % and then rose 1 % has clearly turned, whatever its level) …
///
/// [`MIN_FALL`]: super::suggest::MIN_FALL
pub const UPTURN_OF_FALL: f64 = 0.5;

/// … or when its last raw losses (their median, over this many) are [`UPTURN`] above the start
/// plateau.
pub const UPTURN_RAW_POINTS: usize = 3;

/// The smoothed fall must be this many times the largest fall that pure noise of the raw
/// loss's size makes under the same smoothing and window, 999 times in 1000 ([`NOISE_QUANTILE`]).
/// The margin covers noise with heavier tails than a Gaussian's.
pub const NOISE_MARGIN: f64 = 1.5;

/// The quantile of the pure-noise falls that [`NOISE_MARGIN`] multiplies.
pub const NOISE_QUANTILE: f64 = 0.999;

/// One rule's outcome, as stored in the report: a suggestion or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleOutcome {
    /// The rule.
    pub rule: Rule,
    /// Its suggestion, if it made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestion: Option<Suggestion>,
    /// Why it made none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The descent measured against the noise of the raw loss.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoiseCheck {
    /// The smoothed loss's fall from its start plateau to its minimum, inside the window.
    pub fall: f64,
    /// The raw loss's step-to-step noise: a robust standard deviation (1.4826 × the median
    /// absolute deviation of successive differences, / √2) on the way down to the minimum.
    pub noise: f64,
    /// `fall / noise`.
    pub ratio: f64,
    /// The [`NOISE_QUANTILE`] of `fall / noise` over simulated pure-noise curves of the same
    /// length, smoothing and window.
    pub null: f64,
    /// The least ratio that counts: `NOISE_MARGIN × null`.
    pub need: f64,
    /// The descent is clearly more than noise.
    pub passed: bool,
}

/// Where a suggestion sits on the usable part of the curve, when it sits on its edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Edge {
    /// On the first usable step: the loss was already falling where the window starts, so
    /// the answer may lie below min_lr.
    First,
    /// On the last usable step: the answer is bounded by where the curve ends.
    Last,
}

/// What a range test concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Analysis {
    /// Every rule, in [`Rule::ALL`] order.
    pub rules: Vec<RuleOutcome>,
    /// The rule whose suggestion is *the* suggestion.
    pub chosen_rule: Rule,
    /// The suggestion of `chosen_rule`, if it could make one.
    pub suggestion: Option<Suggestion>,
    /// Why `chosen_rule` could not suggest, if it could not.
    pub no_suggestion: Option<NoSuggestion>,
    /// The loss never turned upward inside the range: the suggestion is bounded by `max_lr`,
    /// not by a blow-up that was observed.
    pub pinned_by_max: bool,
    /// There is a suggestion and it is pinned by `max_lr` (`pinned_by_max`): the number is
    /// bounded by the range, not measured. Training with it warns;
    /// [`check_stability`](crate::check_stability) fails it unless `allow_pinned`.
    #[serde(default)]
    pub pinned: bool,
    /// The descent against the raw loss's noise (None: too few points to tell).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise: Option<NoiseCheck>,
    /// The suggestion sits on the first or last usable step of the curve (a loud warning:
    /// the curve may not hold the answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<Edge>,
}

/// Applies every rule to the finite part of `curve` (measured with `sweep`) and picks
/// `chosen`. A descent within the raw loss's noise suggests nothing, whatever the rule.
pub fn analyse(curve: &Curve, sweep: &SweepConfig, chosen: Rule) -> Analysis {
    let window = sweep.window;
    let (lrs, raw, smoothed) = curve.finite();
    let blew_up = turned_upward(curve, &raw, &smoothed, window);
    let noise = noise_check(&raw, &smoothed, window, sweep.smooth);
    let results: Vec<(Rule, Result<Suggestion, NoSuggestion>)> =
        suggest_all(&lrs, &smoothed, window)
            .into_iter()
            .map(|(rule, r)| {
                let r = match r {
                    Ok(_) if noise.as_ref().is_some_and(|n| !n.passed) => {
                        let n = noise.as_ref().expect("checked above");
                        Err(NoSuggestion::WithinNoise {
                            fall: n.fall,
                            noise: n.noise,
                            ratio: n.ratio,
                            null: n.null,
                            need: n.need,
                            blew_up,
                        })
                    }
                    Err(NoSuggestion::NoRealDescent { fall, need, .. }) => {
                        Err(NoSuggestion::NoRealDescent {
                            fall,
                            need,
                            blew_up,
                        })
                    }
                    other => other,
                };
                (rule, r)
            })
            .collect();
    let mut suggestion = None;
    let mut no_suggestion = None;
    let rules = results
        .into_iter()
        .map(|(rule, r)| {
            if rule == chosen {
                match &r {
                    Ok(s) => suggestion = Some(s.clone()),
                    Err(e) => no_suggestion = Some(e.clone()),
                }
            }
            RuleOutcome {
                rule,
                error: r.as_ref().err().map(ToString::to_string),
                suggestion: r.ok(),
            }
        })
        .collect();
    let (lo, hi) = window_bounds(smoothed.len(), window);
    let edge = suggestion.as_ref().and_then(|s: &Suggestion| {
        if hi <= lo + 1 {
            None
        } else if s.index <= lo {
            Some(Edge::First)
        } else if s.index + 1 >= hi {
            Some(Edge::Last)
        } else {
            None
        }
    });
    let pinned_by_max = !blew_up;
    Analysis {
        rules,
        chosen_rule: chosen,
        pinned: pinned_by_max && suggestion.is_some(),
        suggestion,
        no_suggestion,
        pinned_by_max,
        noise,
        edge,
    }
}

/// `[lo, hi)`: the points the rules read.
fn window_bounds(n: usize, window: Window) -> (usize, usize) {
    let lo = window.skip_start.min(n);
    let hi = n.saturating_sub(window.skip_end).max(lo);
    (lo, hi)
}

/// Whether the loss was seen to turn upward inside the range (a divergence stop, or a
/// completed sweep whose end rose clearly above its minimum).
fn turned_upward(curve: &Curve, raw: &[f64], smoothed: &[f64], window: Window) -> bool {
    match curve.stop {
        StopReason::Diverged { .. } | StopReason::NonFiniteLoss { .. } => true,
        // An interrupted sweep says nothing about the end of the range: don't claim a pin.
        StopReason::Interrupted { .. } => true,
        StopReason::Completed => {
            let Some(&last) = smoothed.last() else {
                return false;
            };
            let (lo, hi) = window_bounds(smoothed.len(), window);
            let y = if hi > lo { &smoothed[lo..hi] } else { smoothed };
            let m = argmin(y);
            let min = y[m];
            let top = y[..=m].iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let fall = top - min;
            let level = last > min + UPTURN * min.abs();
            // Only a real fall (see MIN_FALL) can be regained: a flat curve's wiggles regain
            // half of theirs all the time.
            let real_fall = fall >= super::suggest::MIN_FALL * top.abs();
            let regained = real_fall && last - min >= UPTURN_OF_FALL * fall;
            // The raw loss clearly past its start plateau at the end: a blow-up the EMA has
            // not yet caught up with.
            let tail = &raw[raw.len().saturating_sub(UPTURN_RAW_POINTS)..];
            let spiked = tail.len() == UPTURN_RAW_POINTS && median(tail) > top + UPTURN * top.abs();
            level || regained || spiked
        }
    }
}

/// The smoothed fall against the raw loss's noise (None when the window has too few points).
fn noise_check(raw: &[f64], smoothed: &[f64], window: Window, beta: f64) -> Option<NoiseCheck> {
    let n = raw.len().min(smoothed.len());
    let (lo, hi) = window_bounds(n, window);
    if hi < lo + 3 {
        return None;
    }
    let y = &smoothed[lo..hi];
    let m = argmin(y);
    let fall = fall_to_min(y);
    // The noise on the way down (after the minimum the blow-up dominates the differences);
    // the whole window when the way down is too short to measure.
    let end = if m >= 8 { lo + m + 1 } else { hi };
    let diffs: Vec<f64> = raw[lo..end].windows(2).map(|w| w[1] - w[0]).collect();
    let noise = mad(&diffs) * 1.4826 / std::f64::consts::SQRT_2;
    let null = null_fall(n, window, beta);
    let need = NOISE_MARGIN * null;
    let ratio = if noise > 0.0 {
        fall / noise
    } else if fall > 0.0 {
        f64::INFINITY
    } else {
        0.0
    };
    Some(NoiseCheck {
        fall,
        noise,
        ratio,
        null,
        need,
        passed: ratio >= need,
    })
}

/// The fall the `fall` rule reads: the highest point before the minimum, less the minimum.
fn fall_to_min(y: &[f64]) -> f64 {
    let m = argmin(y);
    let top = y[..=m].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    top - y[m]
}

/// The [`NOISE_QUANTILE`] of the smoothed fall of pure unit-variance Gaussian noise, over
/// curves of `n` points smoothed with `beta` and read through `window`. Seeded: the same
/// inputs give the same number on every machine. Curves past 5000 points are simulated at
/// 5000 (the statistic grows very slowly with length).
pub fn null_fall(n: usize, window: Window, beta: f64) -> f64 {
    let n = n.min(5000);
    let (lo, hi) = window_bounds(n, window);
    if hi < lo + 3 {
        return f64::INFINITY;
    }
    let sims = (400_000 / n).clamp(200, 2000);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x05ee_d0f4_0153);
    let mut falls = Vec::with_capacity(sims);
    let mut y = vec![0.0; n];
    for _ in 0..sims {
        let mut ema = super::smooth::Ema::new(beta);
        for v in y.iter_mut() {
            *v = ema.update(gauss(&mut rng));
        }
        falls.push(fall_to_min(&y[lo..hi]));
    }
    falls.sort_by(f64::total_cmp);
    let k = ((sims as f64 * NOISE_QUANTILE).ceil() as usize).clamp(1, sims) - 1;
    falls[k]
}

/// A standard normal draw (Box–Muller).
fn gauss(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    }
}

/// Median absolute deviation from the median.
fn mad(v: &[f64]) -> f64 {
    let m = median(v);
    let dev: Vec<f64> = v.iter().map(|x| (x - m).abs()).collect();
    median(&dev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::finder::ladder::{ladder, LadderMode};

    fn curve(lrs: Vec<f64>, y: Vec<f64>, stop: StopReason) -> Curve {
        Curve {
            losses: y.iter().map(|v| Some(*v)).collect(),
            smoothed: y.iter().map(|v| Some(*v)).collect(),
            lrs,
            stop,
        }
    }

    #[test]
    fn a_curve_still_falling_at_max_is_pinned() {
        let lrs = ladder(1e-6, 1.0, 60, LadderMode::Exp);
        let y: Vec<f64> = (0..60).map(|i| 3.0 - 0.04 * i as f64).collect();
        let a = analyse(
            &curve(lrs, y, StopReason::Completed),
            &SweepConfig::default(),
            Rule::Steepest,
        );
        assert!(a.pinned_by_max);
        assert!(a.pinned);
        assert!(a.suggestion.is_some());
        assert_eq!(a.rules.len(), Rule::ALL.len());
    }

    #[test]
    fn a_curve_that_blew_up_is_not_pinned() {
        let lrs = ladder(1e-6, 1.0, 60, LadderMode::Exp);
        let mut y: Vec<f64> = (0..50).map(|i| 3.0 - 0.04 * i as f64).collect();
        y.extend((0..10).map(|i| 1.0 + i as f64));
        let stop = StopReason::Completed;
        let a = analyse(&curve(lrs, y, stop), &SweepConfig::default(), Rule::Valley);
        assert!(!a.pinned_by_max);
        assert!(!a.pinned);
        assert_eq!(a.chosen_rule, Rule::Valley);
        assert_eq!(a.suggestion.as_ref().map(|s| s.rule), Some(Rule::Valley));
    }

    #[test]
    fn no_suggestion_carries_the_reason() {
        let lrs = ladder(1e-6, 1.0, 5, LadderMode::Exp);
        let a = analyse(
            &curve(lrs, vec![1.0; 5], StopReason::Completed),
            &SweepConfig::default(),
            Rule::Steepest,
        );
        assert!(a.suggestion.is_none());
        assert!(matches!(
            a.no_suggestion,
            Some(NoSuggestion::TooFewPoints { .. })
        ));
    }

    /// Raw losses and their EMA (β = 0.98), as the sweep records them.
    fn noisy(lrs: Vec<f64>, raw: Vec<f64>, stop: StopReason) -> Curve {
        let sm = crate::finder::smooth(&raw, 0.98);
        Curve {
            losses: raw.iter().map(|v| Some(*v)).collect(),
            smoothed: sm.iter().map(|v| Some(*v)).collect(),
            lrs,
            stop,
        }
    }

    /// Seeded Gaussian noise of standard deviation `sd`.
    fn noise(n: usize, sd: f64, seed: u64) -> Vec<f64> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        (0..n).map(|_| sd * gauss(&mut rng)).collect()
    }

    #[test]
    fn a_converged_models_pure_noise_curve_gets_no_suggestion() {
        // A trained model's loss: 0.05 with batch noise, flat over 1e-7..1e-3; every seed of
        // the noise must be refused by every rule (the 1 % test alone passes most of them).
        let lrs = ladder(1e-7, 1e-3, 100, LadderMode::Exp);
        let mut refused_by_fall_test_alone = 0;
        for seed in 0..20 {
            let raw: Vec<f64> = noise(100, 0.01, seed).iter().map(|e| 0.05 + e).collect();
            let a = analyse(
                &noisy(lrs.clone(), raw, StopReason::Completed),
                &SweepConfig::default(),
                Rule::Fall,
            );
            assert!(a.suggestion.is_none(), "seed {seed}: {:?}", a.suggestion);
            let n = a.noise.as_ref().unwrap();
            assert!(!n.passed && n.ratio < n.need, "{n:?}");
            assert!(
                (n.noise / 0.01 - 1.0).abs() < 0.35,
                "noise estimate {}",
                n.noise
            );
            for o in &a.rules {
                assert!(o.suggestion.is_none(), "{seed} {:?}", o);
            }
            match a.no_suggestion {
                Some(NoSuggestion::WithinNoise { .. }) => {}
                Some(NoSuggestion::NoRealDescent { .. }) => refused_by_fall_test_alone += 1,
                ref other => panic!("{other:?}"),
            }
        }
        assert!(
            refused_by_fall_test_alone < 10,
            "{refused_by_fall_test_alone}"
        );
        let e = analyse(
            &noisy(
                lrs.clone(),
                noise(100, 0.01, 3).iter().map(|e| 0.05 + e).collect(),
                StopReason::Completed,
            ),
            &SweepConfig::default(),
            Rule::Fall,
        )
        .no_suggestion
        .unwrap()
        .to_string();
        assert!(e.contains("noise") && e.contains("converged"), "{e}");
    }

    #[test]
    fn a_real_descent_through_the_same_noise_suggests() {
        // The same noise on a loss that falls from 2.3 to 0.5 and then blows up (to 8.5).
        let lrs = ladder(1e-6, 1.0, 100, LadderMode::Exp);
        let raw: Vec<f64> = noise(100, 0.05, 7)
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let x = i as f64 / 99.0;
                let base = if x < 0.8 {
                    0.5 + 1.8 / (1.0 + (20.0 * (x - 0.5)).exp())
                } else {
                    0.5 + 200.0 * (x - 0.8).powi(2)
                };
                base + e
            })
            .collect();
        let a = analyse(
            &noisy(lrs, raw, StopReason::Completed),
            &SweepConfig::default(),
            Rule::Fall,
        );
        let n = a.noise.as_ref().unwrap();
        assert!(n.passed && n.ratio > 5.0 * n.need, "{n:?}");
        assert!(a.suggestion.is_some());
        assert!(!a.pinned_by_max);
        assert_eq!(a.edge, None);
    }

    #[test]
    fn the_null_fall_matches_a_simulation_by_hand() {
        // β = 0.98, 100 points, window 10..99: pure noise falls ~0.9 σ at the 99th
        // percentile and ~1.1 σ at the 99.9th (an independent simulation of 2000 curves
        // in Python gave 0.895 and 1.092).
        let q = null_fall(100, Window::default(), 0.98);
        assert!((0.95..1.35).contains(&q), "{q}");
        // Without smoothing the extremes of 90 raw points are far apart (Python: 7.56).
        let q0 = null_fall(100, Window::default(), 0.0);
        assert!((6.5..8.5).contains(&q0), "{q0}");
        assert_eq!(q, null_fall(100, Window::default(), 0.98), "seeded");
    }

    #[test]
    fn a_small_fall_then_a_raw_blow_up_is_not_pinned() {
        // A conv net with momentum SGD: the smoothed loss falls 1.5 %, then the raw loss
        // spikes past its start in the last steps, before the EMA (or the 5 % level test)
        // notices. That is an observed blow-up: not pinned, and the advice is not "raise max".
        let lrs = ladder(1e-5, 1.0, 100, LadderMode::Exp);
        let mut raw: Vec<f64> = (0..100)
            .map(|i| 2.30 - 0.035 * (i as f64 / 96.0).powi(3))
            .collect();
        raw[97] = 2.6;
        raw[98] = 3.1;
        raw[99] = 4.0;
        let c = noisy(lrs, raw, StopReason::Completed);
        let a = analyse(&c, &SweepConfig::default(), Rule::Fall);
        assert!(!a.pinned_by_max, "{a:?}");
        // Without the raw spike the same fall is pinned.
        let mut flat = c.clone();
        for i in 97..100 {
            flat.losses[i] = Some(2.265);
        }
        let sm = crate::finder::smooth(
            &flat.losses.iter().map(|v| v.unwrap()).collect::<Vec<_>>(),
            0.98,
        );
        flat.smoothed = sm.into_iter().map(Some).collect();
        assert!(analyse(&flat, &SweepConfig::default(), Rule::Fall).pinned_by_max);
        // A fall of 0.5 % that blew up: the advice is about steps, not the range.
        let lrs = ladder(1e-5, 1.0, 60, LadderMode::Exp);
        let mut y: Vec<f64> = (0..60).map(|i| 2.3 - 0.0002 * i as f64).collect();
        y.extend([2.4, 2.6, 3.0]);
        let lrs: Vec<f64> = lrs.into_iter().chain([1.2, 1.4, 1.6]).collect();
        let a = analyse(
            &curve(lrs, y, StopReason::Completed),
            &SweepConfig::default(),
            Rule::Fall,
        );
        let e = a.no_suggestion.unwrap().to_string();
        assert!(
            e.contains("barely learns") && !e.contains("raise max_lr"),
            "{e}"
        );
        assert!(e.contains("fell only 0.42%"), "{e}");
    }

    #[test]
    fn a_fall_just_under_the_threshold_never_prints_as_the_threshold() {
        let e = NoSuggestion::NoRealDescent {
            fall: 0.00999,
            need: 0.01,
            blew_up: false,
        }
        .to_string();
        assert!(
            e.contains("fell only 0.99% ") && e.contains("less than the 1%"),
            "{e}"
        );
        assert!(e.contains("raise max_lr"), "{e}");
    }

    #[test]
    fn a_suggestion_on_the_windows_edge_is_flagged() {
        // Falling from the first usable step: the fall rule's crossing is on it.
        let lrs = ladder(1e-3, 1.0, 40, LadderMode::Exp);
        let mut y: Vec<f64> = (0..10).map(|_| 3.0).collect();
        y.extend((0..25).map(|i| 3.0 - 2.9 * (1.0 - (-(i as f64) / 0.5).exp())));
        y.extend((0..5).map(|i| 0.2 + i as f64));
        let a = analyse(
            &curve(lrs, y, StopReason::Completed),
            &SweepConfig::default(),
            Rule::Fall,
        );
        assert_eq!(a.edge, Some(Edge::First), "{:?}", a.suggestion);
    }
}
