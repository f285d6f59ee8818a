//! Grouped optimizers against hand-computed steps and PyTorch's per-group `param_groups`.

use candle_core::{Device, Tensor, Var};
use candle_nn::Optimizer;

use super::groups::{GroupConfig, GroupLrs, Grouping};
use super::{Adam, AdamW, ParamsAdam, ParamsAdamW, ParamsSgd, Sgd};

/// body.weight, frozen.weight, head.bias, head.weight (sorted by name, as a VarMap gives them).
fn vars() -> Vec<(String, Var)> {
    let v = |x: &[f32]| Var::new(x, &Device::Cpu).unwrap();
    vec![
        ("body.weight".into(), v(&[1.0, -2.0])),
        ("frozen.weight".into(), v(&[4.0])),
        ("head.bias".into(), v(&[-1.5])),
        ("head.weight".into(), v(&[0.5, 3.0])),
    ]
}

/// Body at 0.1 × the base LR, head at 1 ×, `frozen.*` frozen, the bias without weight decay.
fn grouping(vars: &[(String, Var)]) -> Grouping {
    GroupConfig::parse("frozen.*=0, body.*=0.1, head.*=1")
        .unwrap()
        .no_decay_norm_bias(true)
        .resolve(vars, |n, _| n.ends_with("bias"))
        .unwrap()
}

/// loss = Σ body² + Σ (head.weight − 1)² + head.bias⁴ + frozen²: every variable gets a
/// gradient (the frozen one too, so freezing is the optimizer's doing).
/// Gradients: 2·body, 2·(w − 1), 4·bias³, 2·frozen.
fn loss(vars: &[(String, Var)]) -> Tensor {
    let t = |i: usize| vars[i].1.as_tensor();
    let body = t(0).sqr().unwrap().sum_all().unwrap();
    let frozen = t(1).sqr().unwrap().sum_all().unwrap();
    let bias = t(2).sqr().unwrap().sqr().unwrap().sum_all().unwrap();
    let head = (t(3) - 1.0).unwrap().sqr().unwrap().sum_all().unwrap();
    (((body + frozen).unwrap() + bias).unwrap() + head).unwrap()
}

fn grads_f64(p: &[Vec<f64>]) -> Vec<Vec<f64>> {
    vec![
        p[0].iter().map(|x| 2.0 * x).collect(),
        p[1].iter().map(|x| 2.0 * x).collect(),
        p[2].iter().map(|x| 4.0 * x * x * x).collect(),
        p[3].iter().map(|x| 2.0 * (x - 1.0)).collect(),
    ]
}

fn start() -> Vec<Vec<f64>> {
    vec![vec![1.0, -2.0], vec![4.0], vec![-1.5], vec![0.5, 3.0]]
}

fn values(vars: &[(String, Var)]) -> Vec<Vec<f32>> {
    vars.iter()
        .map(|(_, v)| v.to_vec1::<f32>().unwrap())
        .collect()
}

fn assert_close<W: AsRef<[f64]> + std::fmt::Debug>(got: &[Vec<f32>], want: &[W], tol: f64) {
    for (g, w) in got.iter().zip(want) {
        for (g, w) in g.iter().zip(w.as_ref()) {
            assert!(
                (*g as f64 - w).abs() <= tol * w.abs().max(1.0),
                "{got:?} vs {want:?}"
            );
        }
    }
}

#[test]
fn a_group_at_multiplier_m_moves_m_times_the_base_lr_and_frozen_stays() {
    let v = vars();
    let g = grouping(&v);
    let mut opt = Sgd::grouped(
        &g,
        ParamsSgd {
            lr: 0.25,
            ..ParamsSgd::default()
        },
    )
    .unwrap();
    let frozen_bits = crate::testutil::bits(v[1].1.as_tensor());
    opt.step(&loss(&v).backward().unwrap()).unwrap();
    // By hand: body −= 0.025·2·body (×0.95), head.weight −= 0.25·2·(w − 1),
    // head.bias −= 0.25·4·bias³ = −1.5 + 3.375 = 1.875.
    assert_eq!(v[0].1.to_vec1::<f32>().unwrap(), [0.95, -1.9]);
    assert_eq!(v[3].1.to_vec1::<f32>().unwrap(), [0.75, 2.0]);
    assert_eq!(v[2].1.to_vec1::<f32>().unwrap(), [1.875]);
    assert_eq!(crate::testutil::bits(v[1].1.as_tensor()), frozen_bits);
    assert_eq!(opt.group_lrs(), [0.025, 0.25]);
    opt.set_learning_rate(1.0);
    assert_eq!(opt.group_lrs(), [0.1, 1.0]);
}

/// PyTorch: `torch.optim.SGD` with three param groups (the frozen tensor is in none):
/// ```python
/// body, frozen = torch.tensor([1., -2.], requires_grad=True), torch.tensor([4.], requires_grad=True)
/// bias, head = torch.tensor([-1.5], requires_grad=True), torch.tensor([.5, 3.], requires_grad=True)
/// opt = torch.optim.SGD([{"params": [body], "lr": 0.01}, {"params": [head], "lr": 0.1},
///                        {"params": [bias], "lr": 0.1, "weight_decay": 0.0}],
///                       lr=0.1, momentum=0.9, weight_decay=0.01)
/// for _ in range(3):
///     opt.zero_grad()
///     ((body**2).sum() + (frozen**2).sum() + (bias**4).sum() + ((head - 1)**2).sum()).backward()
///     opt.step()
/// ```
#[test]
fn per_group_sgd_matches_pytorch_for_three_steps() {
    let v = vars();
    let g = grouping(&v);
    let mut opt = Sgd::grouped(
        &g,
        ParamsSgd {
            lr: 0.1,
            momentum: 0.9,
            weight_decay: 0.01,
            ..ParamsSgd::default()
        },
    )
    .unwrap();
    let (lr, wd) = ([0.01, 0.0, 0.1, 0.1], [0.01, 0.0, 0.0, 0.01]);
    let mut p = start();
    let mut buf: Vec<Option<Vec<f64>>> = vec![None; 4];
    for _ in 0..3 {
        opt.step(&loss(&v).backward().unwrap()).unwrap();
        let grads = grads_f64(&p);
        for i in [0, 2, 3] {
            let d: Vec<f64> = grads[i]
                .iter()
                .zip(&p[i])
                .map(|(g, x)| g + wd[i] * x)
                .collect();
            let b = match buf[i].take() {
                None => d,
                Some(b) => b.iter().zip(&d).map(|(b, d)| 0.9 * b + d).collect(),
            };
            for (x, b) in p[i].iter_mut().zip(&b) {
                *x -= lr[i] * b;
            }
            buf[i] = Some(b);
        }
    }
    assert_close(&values(&v), &p, 1e-6);
    assert_close(&values(&v), &PYTORCH_SGD, 1e-6);
    // No momentum buffer for the frozen tensor (index 1), as it is in no PyTorch group.
    let mut keys: Vec<String> = opt.state_tensors().into_keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "momentum_buffer.0",
            "momentum_buffer.2",
            "momentum_buffer.3"
        ]
    );
}

/// PyTorch: `torch.optim.AdamW` with the same groups and loss (betas (0.9, 0.999), eps 1e-8):
/// ```python
/// opt = torch.optim.AdamW([{"params": [body], "lr": 0.01}, {"params": [head], "lr": 0.1},
///                          {"params": [bias], "lr": 0.1, "weight_decay": 0.0}],
///                         lr=0.1, weight_decay=0.01)
/// ```
#[test]
fn per_group_adamw_matches_pytorch_for_three_steps() {
    let v = vars();
    let g = grouping(&v);
    let mut opt = AdamW::grouped(
        &g,
        ParamsAdamW {
            lr: 0.1,
            weight_decay: 0.01,
            ..ParamsAdamW::default()
        },
    )
    .unwrap();
    let (lr, wd) = ([0.01, 0.0, 0.1, 0.1], [0.01, 0.0, 0.0, 0.01]);
    let mut p = start();
    let mut m: Vec<Vec<f64>> = p.iter().map(|x| vec![0.0; x.len()]).collect();
    let mut s = m.clone();
    for t in 1..=3 {
        opt.step(&loss(&v).backward().unwrap()).unwrap();
        let grads = grads_f64(&p);
        for i in [0, 2, 3] {
            for k in 0..p[i].len() {
                let gk = grads[i][k];
                p[i][k] *= 1.0 - lr[i] * wd[i];
                m[i][k] = 0.9 * m[i][k] + 0.1 * gk;
                s[i][k] = 0.999 * s[i][k] + 0.001 * gk * gk;
                let denom = s[i][k].sqrt() / (1.0 - 0.999f64.powi(t)).sqrt() + 1e-8;
                p[i][k] -= lr[i] / (1.0 - 0.9f64.powi(t)) * m[i][k] / denom;
            }
        }
    }
    assert_close(&values(&v), &p, 1e-6);
    assert_close(&values(&v), &PYTORCH_ADAMW, 1e-6);
    assert_eq!(v[1].1.to_vec1::<f32>().unwrap(), [4.0]);
    assert_eq!(opt.state_tensors().len(), 6, "moments for three tensors");
}

/// One group at multiplier 1 is the ungrouped optimizer, bit for bit.
#[test]
fn one_group_at_multiplier_one_is_bitwise_the_plain_optimizer() {
    fn run<O: Optimizer>(make: impl Fn(Vec<Var>, &[(String, Var)]) -> O) -> Vec<Vec<u32>> {
        let v = vars();
        let mut opt = make(v.iter().map(|(_, v)| v.clone()).collect(), &v);
        for lr in [0.1, 0.03, 0.2] {
            opt.set_learning_rate(lr);
            opt.step(&loss(&v).backward().unwrap()).unwrap();
        }
        v.iter()
            .map(|(_, v)| crate::testutil::bits(v.as_tensor()))
            .collect()
    }
    let one = |v: &[(String, Var)]| GroupConfig::parse("*=1").unwrap().resolve(v, |_, _| false);
    let sgd = ParamsSgd {
        momentum: 0.9,
        weight_decay: 0.01,
        ..ParamsSgd::default()
    };
    assert_eq!(
        run(|vars, _| Sgd::new(vars, sgd.clone()).unwrap()),
        run(|_, v| Sgd::grouped(&one(v).unwrap(), sgd.clone()).unwrap())
    );
    let adam = ParamsAdam {
        weight_decay: 0.01,
        ..ParamsAdam::default()
    };
    assert_eq!(
        run(|vars, _| Adam::new(vars, adam.clone()).unwrap()),
        run(|_, v| Adam::grouped(&one(v).unwrap(), adam.clone()).unwrap())
    );
    assert_eq!(
        run(|vars, _| AdamW::new(vars, ParamsAdamW::default()).unwrap()),
        run(|_, v| AdamW::grouped(&one(v).unwrap(), ParamsAdamW::default()).unwrap())
    );
}

/// PyTorch's OneCycleLR with a list of `max_lr` runs each group's cycle on its own: group `i`
/// follows the one-group schedule with `max_lr[i]`, exactly.
#[test]
fn per_group_schedules_set_each_groups_lr() {
    use crate::schedule::{SchedulerConfig, SchedulerDriver};
    let v = vars();
    let g = grouping(&v);
    let mut opt = Adam::grouped(&g, ParamsAdam::default()).unwrap();
    let both = SchedulerConfig::parse("OneCycleLR(max_lr=[1e-4, 1e-3], total_steps=10)").unwrap();
    let mut d = SchedulerDriver::with_groups(&both, opt.group_lrs(), Some(0.9), None).unwrap();
    let single = |max: f64| {
        let c =
            SchedulerConfig::parse(&format!("OneCycleLR(max_lr={max}, total_steps=10)")).unwrap();
        SchedulerDriver::new(&c, 1e-3, Some(0.9), None).unwrap()
    };
    let (mut a, mut b) = (single(1e-4), single(1e-3));
    for _ in 0..10 {
        d.apply_groups(&mut opt).unwrap();
        assert_eq!(opt.group_lrs(), [a.lr(), b.lr()]);
        d.after_batch(None).unwrap();
        a.after_batch(None).unwrap();
        b.after_batch(None).unwrap();
    }
    // A list of the wrong length is PyTorch's error, naming the scheduler.
    let three = SchedulerConfig::parse("OneCycleLR(max_lr=[1, 2, 3], total_steps=10)").unwrap();
    let e = SchedulerDriver::with_groups(&three, opt.group_lrs(), None, None)
        .err()
        .unwrap();
    assert!(e.to_string().contains("OneCycleLR"), "{e}");
    // An optimizer with another number of groups refuses the schedule's LRs.
    let e = opt.set_group_lrs(&[0.1]).unwrap_err();
    assert!(e.to_string().contains("2 groups"), "{e}");
}

/// What PyTorch 2.15.0 printed for the scripts above (body, frozen, bias, head after three
/// steps).
const PYTORCH_SGD: [&[f64]; 4] = [
    &[0.8891701102256775, -1.778340220451355],
    &[4.0],
    &[1.676045298576355],
    &[0.9662172794342041, 1.111702799797058],
];
const PYTORCH_ADAMW: [&[f64]; 4] = [
    &[0.9697132110595703, -1.9694080352783203],
    &[4.0],
    &[-1.2039669752120972],
    &[0.7933787107467651, 2.69195556640625],
];
