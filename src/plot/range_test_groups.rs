//! The range-test figure with param groups (fine-tuning): a note that the x axis is the base
//! LR, swept with the groups' ratios fixed, and each group's LR at the suggestion. Kept apart
//! from the figure itself: it only adds a note box.

use super::format;
use super::layout::wrap;
use super::range_test::RangeTestPlot;
use super::style;
use crate::optim::GroupReport;

impl RangeTestPlot<'_> {
    /// Says the sweep moved the base LR of these param groups (a report's `param_groups`),
    /// and gives each group's LR at the suggestion. Empty: one group, no note.
    pub fn param_groups(mut self, groups: &[GroupReport]) -> Self {
        self.groups_note = note(groups);
        self
    }
}

/// The note's lines (none for no groups).
pub(super) fn note(groups: &[GroupReport]) -> Vec<String> {
    if groups.is_empty() {
        return Vec::new();
    }
    let each: Vec<String> = groups
        .iter()
        .map(|g| match (g.frozen, g.lr) {
            (true, _) => format!("{} frozen", g.pattern),
            (false, Some(lr)) => format!("{} ×{} = {}", g.pattern, g.multiplier, format::lr(lr)),
            (false, None) => format!("{} ×{}", g.pattern, g.multiplier),
        })
        .collect();
    let at = if groups.iter().any(|g| g.lr.is_some()) {
        "; at the suggestion: "
    } else {
        ": "
    };
    let text = format!(
        "Param groups: the x axis is the base LR, swept with the groups' ratios fixed{at}{}.",
        each.join(", ")
    );
    wrap(&text, style::NOTE_SIZE, false, 380.0, 6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_lists_each_group_at_the_suggestion() {
        let g = |pattern: &str, multiplier: f64, lr: Option<f64>| GroupReport {
            pattern: pattern.into(),
            multiplier,
            frozen: multiplier == 0.0,
            params: vec![],
            lr,
        };
        assert!(note(&[]).is_empty());
        let text = note(&[
            g("1.*", 0.1, Some(3e-4)),
            g("*", 1.0, Some(3e-3)),
            g("0.*", 0.0, Some(0.0)),
        ])
        .join(" ");
        assert!(
            text.starts_with("Param groups: the x axis is the base LR"),
            "{text}"
        );
        assert!(text.contains("1.* ×0.1 = "), "{text}");
        assert!(text.ends_with("0.* frozen."), "{text}");
    }
}
