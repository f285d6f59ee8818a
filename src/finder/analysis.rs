//! From a measured curve to a verdict: every rule's suggestion, the chosen one, and whether
//! the range was wide enough for the answer to mean anything.

use serde::{Deserialize, Serialize};

use super::suggest::{suggest_all, NoSuggestion, Rule, Suggestion, Window};
use super::sweep::{Curve, StopReason};

/// The smoothed loss must rise this much (relative) above its minimum before the end of a
/// completed sweep for the curve to count as having turned upward.
pub const UPTURN: f64 = 0.05;

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
}

/// Applies every rule to the finite part of `curve` and picks `chosen`.
pub fn analyse(curve: &Curve, window: Window, chosen: Rule) -> Analysis {
    let (lrs, _, smoothed) = curve.finite();
    let mut suggestion = None;
    let mut no_suggestion = None;
    let rules = suggest_all(&lrs, &smoothed, window)
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
    let pinned_by_max = !turned_upward(curve, &smoothed);
    Analysis {
        rules,
        chosen_rule: chosen,
        pinned: pinned_by_max && suggestion.is_some(),
        suggestion,
        no_suggestion,
        pinned_by_max,
    }
}

fn turned_upward(curve: &Curve, smoothed: &[f64]) -> bool {
    match curve.stop {
        StopReason::Diverged { .. } | StopReason::NonFiniteLoss { .. } => true,
        // An interrupted sweep says nothing about the end of the range: don't claim a pin.
        StopReason::Interrupted { .. } => true,
        StopReason::Completed => {
            let min = smoothed.iter().copied().fold(f64::INFINITY, f64::min);
            match smoothed.last() {
                Some(&last) => last > min + UPTURN * min.abs(),
                None => false,
            }
        }
    }
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
            Window::default(),
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
        let a = analyse(&curve(lrs, y, stop), Window::default(), Rule::Valley);
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
            Window::default(),
            Rule::Steepest,
        );
        assert!(a.suggestion.is_none());
        assert!(matches!(
            a.no_suggestion,
            Some(NoSuggestion::TooFewPoints { .. })
        ));
    }
}
