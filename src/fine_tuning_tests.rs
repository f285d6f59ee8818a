//! Param groups through the built-in pipeline: the range test, the learner's backward and a
//! training run, on the real MNIST fixture.

use std::ops::ControlFlow;

use candle_core::{Device, Tensor};

use crate::data::{self, DataConfig, DataSource, DeviceData};
use crate::device::DeviceSpec;
use crate::finder::{Rule, SweepConfig, TrainStep};
use crate::learner::StepLoss;
use crate::model::{Mode, ModelConfig};
use crate::optim::{GroupConfig, OptimizerConfig};
use crate::range_test::{RangeTest, Setup};
use crate::testutil::bits;
use crate::train::{LrSource, Run, TrainConfig};

fn setup(model: ModelConfig, opt: &str, groups: Option<&str>) -> Setup {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mnist");
    let momentum = if opt == "sgd" { 0.9 } else { 0.0 };
    Setup {
        data: DataConfig::builtin(DataSource::Mnist, Some(dir)),
        model,
        optimizer: OptimizerConfig::from_parts(opt, momentum, false, None, (0.9, 0.999), 1e-8)
            .unwrap(),
        seed: 3,
        batch_size: 32,
        loss: None,
        init_from: None,
        param_groups: groups.map(|g| GroupConfig::parse(g).unwrap()),
    }
}

fn mlp() -> ModelConfig {
    ModelConfig::Mlp { hidden: vec![32] }
}

fn range_test(setup: Setup) -> RangeTest {
    RangeTest {
        setup,
        device: DeviceSpec::Cpu,
        accumulate: 1,
        step_loss: StepLoss::TrainBatch,
        sweep: SweepConfig {
            min_lr: 1e-5,
            max_lr: 1.0,
            num_steps: 40,
            ..SweepConfig::default()
        },
        rule: Rule::Fall,
        verify: None,
    }
}

fn device_data(s: &Setup) -> DeviceData {
    DeviceData::new(data::load(&s.data).unwrap(), &Device::Cpu).unwrap()
}

fn curve_bits(c: &crate::finder::Curve) -> (Vec<u64>, Vec<Option<u64>>) {
    (
        c.lrs.iter().map(|x| x.to_bits()).collect(),
        c.losses.iter().map(|x| x.map(f64::to_bits)).collect(),
    )
}

/// Groups whose multipliers are all 1 change nothing: the same curve and suggestion, bit for
/// bit, as one group.
#[test]
fn groups_at_multiplier_one_give_the_one_group_curve_bitwise() {
    for opt in ["sgd", "adam", "adamw"] {
        let one = range_test(setup(mlp(), opt, None));
        let two = range_test(setup(mlp(), opt, Some("1.*=1, *=1")));
        let data = device_data(&one.setup);
        let observe = &mut |_: &crate::finder::StepEvent| ControlFlow::Continue(());
        let a = one.run_on(&data, &Device::Cpu, observe).unwrap();
        let b = two.run_on(&data, &Device::Cpu, observe).unwrap();
        assert_eq!(curve_bits(&a.curve), curve_bits(&b.curve), "{opt}");
        assert!(a.suggested_lr.is_some(), "{opt}: a suggestion to compare");
        assert_eq!(
            a.suggested_lr.map(f64::to_bits),
            b.suggested_lr.map(f64::to_bits),
            "{opt}"
        );
        assert!(a.param_groups.is_empty());
        let lr = b.suggested_lr;
        assert_eq!(b.param_groups.len(), 2);
        assert_eq!(b.param_groups[0].params, ["1.bias", "1.weight"]);
        assert_eq!(b.param_groups[1].params, ["3.bias", "3.weight"]);
        assert!(b.param_groups.iter().all(|g| g.lr == lr && !g.frozen));
    }
}

/// With ratios, the sweep moves the base LR: the report gives each group its multiple of the
/// suggestion, and a frozen group LR 0.
#[test]
fn the_report_lists_each_groups_lr_at_the_suggestion() {
    let t = range_test(setup(mlp(), "adam", Some("1.weight=0, 1.*=0.1, *=1")));
    let data = device_data(&t.setup);
    let r = t
        .run_on(&data, &Device::Cpu, &mut |_| ControlFlow::Continue(()))
        .unwrap();
    let lr = r.suggested_lr.expect("a suggestion");
    let listed: Vec<(&str, f64, bool, Vec<String>)> = r
        .param_groups
        .iter()
        .map(|g| {
            (
                g.pattern.as_str(),
                g.lr.unwrap(),
                g.frozen,
                g.params.clone(),
            )
        })
        .collect();
    let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        listed,
        [
            ("1.*", lr * 0.1, false, names(&["1.bias"])),
            ("*", lr, false, names(&["3.bias", "3.weight"])),
            ("1.weight", 0.0, true, names(&["1.weight"])),
        ]
    );
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["param_groups"][0]["multiplier"], 0.1);
    assert_eq!(
        json["settings"]["param_groups"]["rules"][0]["pattern"],
        "1.weight"
    );
}

/// One SGD step: the learner's update of a group at multiplier m is m × base LR × its
/// gradient; a frozen tensor does not move and gets no gradient.
#[test]
fn a_group_at_multiplier_m_steps_m_times_the_base_lr_through_the_learner() {
    let plain = {
        let mut s = setup(mlp(), "sgd", None);
        s.optimizer =
            OptimizerConfig::from_parts("sgd", 0.0, false, None, (0.9, 0.999), 1e-8).unwrap();
        s
    };
    let grouped = Setup {
        param_groups: Some(GroupConfig::parse("1.weight=0, 1.bias=0.25, 3.*=2").unwrap()),
        ..plain.clone()
    };
    let data = device_data(&plain);
    let learner = |s: &Setup| range_test(s.clone()).learner(&data, &Device::Cpu).unwrap();
    let mut l = learner(&grouped);
    let idx: Vec<u32> = (0..32).collect();
    let batch = l.data.train_batch(&idx).unwrap();
    // The gradient the step will use, from a twin with nothing frozen.
    let twin = learner(&plain);
    let loss = *l.loss();
    let (_, g) = twin
        .model
        .loss_and_grads(
            &batch.x,
            Mode::Train {
                step: 0,
                first_row: 0,
            },
            |o| loss.value_and_grad(o, &batch.y, 32),
        )
        .unwrap();
    let before: Vec<Tensor> = l.model.snapshot().unwrap();
    l.step_on(&[batch], 0.5).unwrap();
    let names: Vec<String> = l
        .model
        .named_vars()
        .iter()
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(names, ["1.bias", "1.weight", "3.bias", "3.weight"]);
    for (i, m) in [0.25, 0.0, 2.0, 2.0].into_iter().enumerate() {
        let now = l.model.named_vars()[i].1.as_tensor();
        if m == 0.0 {
            assert_eq!(bits(now), bits(&before[i]), "frozen {}", names[i]);
            continue;
        }
        let want = (&before[i] - (g[i].as_ref().unwrap() * (0.5 * m)).unwrap()).unwrap();
        let diff = (now - &want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(diff.to_scalar::<f32>().unwrap() < 1e-6, "{}", names[i]);
    }
    // No momentum buffer or moment for the frozen tensor: nothing at all in plain SGD, and
    // with Adam only the three that train.
    let mut adam = Setup {
        optimizer: OptimizerConfig::from_parts("adam", 0.0, false, None, (0.9, 0.999), 1e-8)
            .unwrap(),
        ..grouped.clone()
    };
    adam.seed = 4;
    let mut l = learner(&adam);
    l.train_step(1e-3).unwrap();
    let (state, _) = l.optimizer.state();
    let mut keys: Vec<_> = state.keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "exp_avg.0",
            "exp_avg.2",
            "exp_avg.3",
            "exp_avg_sq.0",
            "exp_avg_sq.2",
            "exp_avg_sq.3"
        ]
    );
}

/// A frozen body: no gradient is computed for it, and the head's gradient is the one the
/// whole model gives (on the fully connected path, the convolutional kernels and autograd).
#[test]
fn frozen_layers_get_no_gradient_and_the_rest_the_same_one() {
    let lenet = ModelConfig::Lenet;
    for (model, frozen) in [(mlp(), "1.*"), (lenet, "[0-3].*")] {
        let s = setup(model.clone(), "sgd", None);
        let data = device_data(&s);
        let mut m = s.model(&data, &Device::Cpu).unwrap();
        let idx: Vec<u32> = (0..32).collect();
        let b = data.train_batch(&idx).unwrap();
        let loss = s.loss_for(data.task()).unwrap();
        let mode = Mode::Train {
            step: 0,
            first_row: 0,
        };
        let f = |o: &Tensor| loss.value_and_grad(o, &b.y, 32);
        let (l_all, all) = m.loss_and_grads(&b.x, mode, f).unwrap();
        let (_, auto_all) = m.autograd_loss_and_grads(&b.x, mode, f).unwrap();
        let grouping = GroupConfig::new()
            .freeze(frozen)
            .group("*", 1.0)
            .resolve(m.named_vars(), |_, _| false)
            .unwrap();
        m.set_frozen(grouping.frozen_mask()).unwrap();
        let (l_some, some) = m.loss_and_grads(&b.x, mode, f).unwrap();
        let (_, auto_some) = m.autograd_loss_and_grads(&b.x, mode, f).unwrap();
        assert_eq!(l_all.to_bits(), l_some.to_bits());
        for (i, (name, _)) in m.named_vars().iter().enumerate() {
            if grouping.frozen_mask()[i] {
                assert!(
                    some[i].is_none() && auto_some[i].is_none(),
                    "{model:?} {name}"
                );
            } else {
                let (a, b) = (all[i].as_ref().unwrap(), some[i].as_ref().unwrap());
                assert_eq!(bits(a), bits(b), "{model:?} {name}");
                let (a, b) = (
                    auto_all[i].as_ref().unwrap(),
                    auto_some[i].as_ref().unwrap(),
                );
                assert_eq!(bits(a), bits(b), "{model:?} {name} (autograd)");
            }
        }
    }
}

/// `train` with a frozen body: the frozen tensors are bit for bit the initial ones after the
/// run; the head trains; a per-group schedule sets each group its own LR.
#[test]
fn a_frozen_tensor_is_bitwise_unchanged_after_train() {
    let s = setup(mlp(), "adamw", Some("1.*=0, 3.*=1"));
    let cfg = TrainConfig {
        setup: s.clone(),
        device: "cpu".into(),
        lr: 3e-3,
        lr_source: LrSource::Given,
        epochs: 2,
        scheduler: None,
        schedule_every: None,
        patience: None,
        eval_batch_size: 500,
    };
    let data = device_data(&s);
    let init = s.model(&data, &Device::Cpu).unwrap().tensors();
    let mut run = Run::new(cfg.clone(), data.clone(), &Device::Cpu).unwrap();
    run.train(&mut ()).unwrap();
    let after = run.learner.model.tensors();
    for name in ["1.weight", "1.bias"] {
        assert_eq!(bits(&after[name]), bits(&init[name]), "{name}");
    }
    for name in ["3.weight", "3.bias"] {
        assert_ne!(bits(&after[name]), bits(&init[name]), "{name}");
    }
    // OneCycleLR with one peak per trainable group: here one group (the head).
    let mut cfg2 = cfg.clone();
    cfg2.setup.param_groups = Some(GroupConfig::parse("1.*=0.1, 3.*=1").unwrap());
    cfg2.epochs = 1;
    cfg2.scheduler =
        Some(crate::schedule::SchedulerConfig::parse("OneCycleLR(max_lr=[1e-4, 1e-2])").unwrap());
    let mut run = Run::new(cfg2.clone(), data.clone(), &Device::Cpu).unwrap();
    use crate::optim::GroupLrs;
    let start = run.learner.optimizer.group_lrs();
    // PyTorch: initial lr = max_lr / div_factor (25) for each group.
    for (got, want) in start.iter().zip([1e-4 / 25.0, 1e-2 / 25.0]) {
        assert!((got - want).abs() < 1e-15 * want / 1e-6, "{start:?}");
    }
    run.train(&mut ()).unwrap();
    // A list of the wrong length names the scheduler.
    cfg2.setup.param_groups = Some(GroupConfig::parse("1.*=0, 3.*=1").unwrap());
    let e = Run::new(cfg2, data, &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("OneCycleLR") && e.contains("max_lr"), "{e}");
}
