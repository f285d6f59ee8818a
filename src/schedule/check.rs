//! Running a schedule row by row without storing it ([`Steps`]), and [`check_schedule`]: the
//! check a trainer runs before training, so that a schedule that would set a negative or
//! non-finite learning rate (`LambdaLR(lr_lambda="-1")`, `"0/0"`, `ExponentialLR(gamma=1e308)`)
//! fails at once, naming the scheduler, the step and the value.

use super::base::{LrScheduler, ParamGroups};
use super::config::SchedulerConfig;
use super::error::ScheduleError;

/// A built schedule and its param groups, stepped on demand: row 0 is the state right after
/// construction, row k the state after the k-th `step()`.
pub struct Steps<'a> {
    name: &'static str,
    sched: Box<dyn LrScheduler>,
    groups: ParamGroups,
    steps: usize,
    next: usize,
    done: bool,
    metric: Box<dyn Fn(usize) -> Option<f64> + 'a>,
}

impl<'a> Steps<'a> {
    /// Builds `config` on `groups` for `steps` steps; `metrics[i]` is passed to the (i+1)-th
    /// step and must be there for every step when the schedule needs a metric.
    pub fn new(
        config: &SchedulerConfig,
        groups: ParamGroups,
        steps: usize,
        metrics: Option<&'a [f64]>,
    ) -> Result<Self, ScheduleError> {
        if config.needs_metric() {
            let have = metrics.map_or(0, <[f64]>::len);
            if have < steps {
                return Err(ScheduleError::step(
                    config.name(),
                    format!("needs one metric per step: {steps} steps but {have} metrics"),
                ));
            }
        }
        let metric = move |i: usize| metrics.and_then(|m| m.get(i).copied());
        Self::with_metric(config, groups, steps, Box::new(metric))
    }

    fn with_metric(
        config: &SchedulerConfig,
        mut groups: ParamGroups,
        steps: usize,
        metric: Box<dyn Fn(usize) -> Option<f64> + 'a>,
    ) -> Result<Self, ScheduleError> {
        let sched = config.build(&mut groups)?;
        Ok(Self {
            name: config.name(),
            sched,
            groups,
            steps,
            next: 0,
            done: false,
            metric,
        })
    }

    /// The next row's index and groups; `Ok(None)` after row `steps`.
    pub fn next_row(&mut self) -> Result<Option<(usize, &ParamGroups)>, ScheduleError> {
        if self.done {
            return Ok(None);
        }
        let k = self.next;
        if k > 0 {
            self.sched.step(&mut self.groups, (self.metric)(k - 1))?;
        }
        if k == self.steps {
            self.done = true;
        } else {
            self.next += 1;
        }
        Ok(Some((k, &self.groups)))
    }

    /// The top-level scheduler's class name.
    pub fn name(&self) -> &'static str {
        self.name
    }
}

/// Refuses a row whose learning rate is negative or not finite, or whose momentum is not finite.
pub fn check_row(scheduler: &str, step: usize, groups: &ParamGroups) -> Result<(), ScheduleError> {
    let bad = |group: usize, what: &'static str, value: f64, rule: &'static str| {
        Err(ScheduleError::BadValue {
            scheduler: scheduler.to_string(),
            step,
            group,
            what,
            value,
            rule,
        })
    };
    for (g, lr) in groups.lr.iter().enumerate() {
        if !(lr.is_finite() && *lr >= 0.0) {
            return bad(g, "learning rate", *lr, "finite and >= 0");
        }
    }
    for (g, m) in groups.momentum.iter().flatten().enumerate() {
        if !m.is_finite() {
            return bad(g, "momentum", *m, "finite");
        }
    }
    Ok(())
}

/// Simulates `config` on a copy of `groups` over the planned `steps` and fails at the first
/// learning rate that is negative or not finite (or an error PyTorch would raise while
/// stepping, such as a division by zero). A schedule that needs a metric is fed `metrics`,
/// or, without them, a metric that never improves (the most reductions it could make).
/// Memory is constant in `steps`; time is linear.
pub fn check_schedule(
    config: &SchedulerConfig,
    groups: &ParamGroups,
    steps: usize,
    metrics: Option<&[f64]>,
) -> Result<(), ScheduleError> {
    let mut rows = match metrics {
        Some(m) => Steps::new(config, groups.clone(), steps, Some(m))?,
        None => Steps::with_metric(config, groups.clone(), steps, Box::new(|_| Some(0.0)))?,
    };
    while let Some((k, g)) = rows.next_row()? {
        check_row(config.name(), k, g)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(spec: &str, steps: usize) -> Result<(), String> {
        let cfg = SchedulerConfig::parse(spec).map_err(|e| e.to_string())?;
        let g = ParamGroups::new(vec![0.1], Some(vec![0.9]));
        check_schedule(&cfg, &g, steps, None).map_err(|e| e.to_string())
    }

    #[test]
    fn negative_and_non_finite_values_are_refused() {
        assert_eq!(
            check("LambdaLR(lr_lambda='-1')", 10),
            Err("LambdaLR: the learning rate at step 0 (param group 0) would be -0.1; it must be finite and >= 0".into())
        );
        assert_eq!(
            check("LambdaLR(lr_lambda='0/0')", 10),
            Err("LambdaLR: formula '0/0' at epoch=0: division by zero".into())
        );
        assert_eq!(
            check("LambdaLR(lr_lambda='1/(epoch-epoch)')", 10),
            Err("LambdaLR: formula '1/(epoch-epoch)' at epoch=0: division by zero".into())
        );
        // 0.1 * 1e308 is finite; one more step overflows.
        assert_eq!(
            check("ExponentialLR(gamma=1e308)", 10),
            Err("ExponentialLR: the learning rate at step 2 (param group 0) would be inf; it must be finite and >= 0".into())
        );
        // Cases of our own: a sign change late in the schedule, inside a composite, and
        // OneCycleLR's linear extrapolation past its end.
        assert_eq!(
            check("SequentialLR(ConstantLR(), LambdaLR(lr_lambda='1 - epoch/5'), milestones=[3])", 10),
            Err("SequentialLR: the learning rate at step 9 (param group 0) would be -0.019999999999999997; it must be finite and >= 0".into())
        );
        assert!(check(
            "OneCycleLR(max_lr=1, total_steps=4, pct_start=0.5, anneal_strategy='linear')",
            4
        )
        .unwrap_err()
        .starts_with("OneCycleLR: the learning rate at step 4 (param group 0) would be -"));
        // Only the planned steps count.
        assert_eq!(check("LambdaLR(lr_lambda='1 - epoch/5')", 5), Ok(()));
        assert_eq!(check("ReduceLROnPlateau(patience=0)", 50), Ok(()));
        assert_eq!(check("ExponentialLR(gamma=1e308)", 1), Ok(()));
    }

    #[test]
    fn rows_stream_without_storing() {
        let cfg = SchedulerConfig::parse("StepLR(step_size=1, gamma=0.5)").unwrap();
        let mut rows =
            Steps::new(&cfg, ParamGroups::new(vec![1.0], None), usize::MAX, None).unwrap();
        let mut seen = Vec::new();
        while let Some((k, g)) = rows.next_row().unwrap() {
            seen.push((k, g.lr[0]));
            if k == 3 {
                break;
            }
        }
        assert_eq!(seen, [(0, 1.0), (1, 0.5), (2, 0.25), (3, 0.125)]);
        let mut rows = Steps::new(&cfg, ParamGroups::new(vec![1.0], None), 1, None).unwrap();
        assert!(rows.next_row().unwrap().is_some());
        assert!(rows.next_row().unwrap().is_some());
        assert!(rows.next_row().unwrap().is_none());
    }
}
