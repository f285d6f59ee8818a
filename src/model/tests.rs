//! Model-level tests: init against the pre-layer-list code, shapes, modes, gradients, files.

use super::*;
use crate::testutil::bits;
use std::collections::HashMap;

const CPU: Device = Device::Cpu;
const MNIST: [usize; 3] = [1, 28, 28];

fn layers(text: &str) -> ModelConfig {
    ModelConfig::Layers {
        layers: spec::parse_layers(text).unwrap(),
    }
}

fn randn(dims: &[usize], seed: u64) -> Tensor {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let n: usize = dims.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_vec(v, dims, &CPU).unwrap()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

/// The cross-entropy closure the learner uses: mean over the batch.
fn ce(y: &Tensor) -> impl FnOnce(&Tensor) -> Result<(f64, Tensor)> + '_ {
    move |out: &Tensor| {
        let b = out.dim(0)?;
        let lsm = candle_nn::ops::log_softmax(out, 1)?;
        let onehot = Tensor::eye(out.dim(1)?, DType::F32, out.device())?.index_select(y, 0)?;
        let loss = (lsm.mul(&onehot)?.sum_all()? * (-1.0 / b as f64))?;
        let dz = ((lsm.exp()? - &onehot)? * (1.0 / b as f64))?;
        Ok((loss.to_scalar::<f32>()? as f64, dz))
    }
}

/// The weight init of lrfind before layer lists (commit 21d6708), kept to prove the presets
/// still draw the same bits: named tensors in draw order.
mod old {
    use super::*;

    pub struct Init {
        rng: ChaCha8Rng,
        pub params: Vec<(String, Vec<f32>)>,
    }

    impl Init {
        pub fn new(seed: u64) -> Self {
            Self {
                rng: ChaCha8Rng::seed_from_u64(seed),
                params: Vec::new(),
            }
        }

        fn uniform(&mut self, name: String, n: usize, fan_in: usize) {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let v: Vec<f32> = (0..n)
                .map(|_| self.rng.random_range(-bound..bound))
                .collect();
            self.params.push((name, v));
        }

        pub fn linear(&mut self, name: &str, fan_in: usize, out: usize) {
            self.uniform(format!("{name}.weight"), out * fan_in, fan_in);
            self.uniform(format!("{name}.bias"), out, fan_in);
        }

        pub fn conv(&mut self, name: &str, cin: usize, cout: usize, k: usize) {
            let fan_in = cin * k * k;
            self.uniform(format!("{name}.weight"), cout * cin * k * k, fan_in);
            self.uniform(format!("{name}.bias"), cout, fan_in);
        }
    }

    /// The old model's tensors under the new `nn.Sequential` names.
    pub fn weights(
        config: &ModelConfig,
        shape: [usize; 3],
        classes: usize,
        seed: u64,
    ) -> Vec<(String, Vec<f32>)> {
        let mut init = Init::new(seed);
        let len = shape.iter().product();
        let renames: Vec<(&str, String)> = match config {
            ModelConfig::Linear => {
                init.linear("fc1", len, classes);
                vec![("fc1", "1".into())]
            }
            ModelConfig::Mlp { hidden } => {
                let mut fan_in = len;
                let mut names = Vec::new();
                for (i, &h) in hidden.iter().enumerate() {
                    init.linear(&format!("fc{}", i + 1), fan_in, h);
                    fan_in = h;
                    names.push(i);
                }
                init.linear(&format!("fc{}", hidden.len() + 1), fan_in, classes);
                names.push(hidden.len());
                let all = ["fc1", "fc2", "fc3", "fc4", "fc5"];
                names
                    .iter()
                    .map(|&i| (all[i], (1 + 2 * i).to_string()))
                    .collect()
            }
            ModelConfig::Cnn => {
                let after = |s: usize| (s - 2) / 2;
                let (h, w) = (after(after(shape[1])), after(after(shape[2])));
                init.conv("conv1", shape[0], 32, 3);
                init.conv("conv2", 32, 64, 3);
                init.linear("fc1", 64 * h * w, 128);
                init.linear("fc2", 128, classes);
                vec![
                    ("conv1", "0".into()),
                    ("conv2", "3".into()),
                    ("fc1", "7".into()),
                    ("fc2", "9".into()),
                ]
            }
            _ => unreachable!("no old form"),
        };
        init.params
            .into_iter()
            .map(|(n, v)| {
                let (layer, suffix) = n.split_once('.').unwrap();
                let new = &renames.iter().find(|(o, _)| *o == layer).unwrap().1;
                (format!("{new}.{suffix}"), v)
            })
            .collect()
    }
}

#[test]
fn presets_draw_the_bits_of_the_old_code() {
    let cifar = [3, 32, 32];
    for (cfg, shape) in [
        (ModelConfig::default(), MNIST),
        (
            ModelConfig::Mlp {
                hidden: vec![32, 16, 8],
            },
            MNIST,
        ),
        (ModelConfig::Linear, MNIST),
        (ModelConfig::Cnn, MNIST),
        (ModelConfig::Cnn, cifar),
    ] {
        for seed in [0, 7] {
            let m = Model::new(&cfg, &shape, 10, seed, &CPU).unwrap();
            let want = old::weights(&cfg, shape, 10, seed);
            assert_eq!(m.named_vars().len(), want.len(), "{cfg:?}");
            for (name, v) in want {
                let (_, var) = m.named_vars().iter().find(|(n, _)| *n == name).unwrap();
                let old: Vec<u32> = v.iter().map(|x| x.to_bits()).collect();
                assert_eq!(bits(var.as_tensor()), old, "{cfg:?} seed {seed}: {name}");
            }
        }
    }
}

#[test]
fn same_seed_same_bits_other_seed_other_bits() {
    let cfg = ModelConfig::default();
    let a = Model::new(&cfg, &MNIST, 10, 7, &CPU).unwrap();
    let b = Model::new(&cfg, &MNIST, 10, 7, &CPU).unwrap();
    let c = Model::new(&cfg, &MNIST, 10, 8, &CPU).unwrap();
    let flat =
        |m: &Model| -> Vec<u32> { m.vars().iter().flat_map(|v| bits(v.as_tensor())).collect() };
    assert_eq!(flat(&a), flat(&b));
    assert_ne!(flat(&a), flat(&c));
    assert_eq!(
        a.num_params(),
        784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10
    );
    let names: Vec<&str> = a.named_vars().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["1.bias", "1.weight", "3.bias", "3.weight", "5.bias", "5.weight"]
    );
    // PyTorch's bound U(±1/sqrt(fan_in)): 1/28 for layer 1, 1/16 for layer 3; and it is used.
    for (name, v) in a.named_vars() {
        let bound = match &name[..1] {
            "1" => 1.0 / 28.0,
            "3" => 1.0 / 16.0,
            _ => 1.0 / 128f32.sqrt(),
        };
        let w: Vec<f32> = v.flatten_all().unwrap().to_vec1().unwrap();
        let max = w.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(
            max <= bound && (name.ends_with("bias") || max > 0.9 * bound),
            "{name}: {max} vs {bound}"
        );
    }
}

#[test]
fn init_bounds_follow_fan_in_and_norms_start_at_one_and_zero() {
    let m = Model::new(
        &layers("Conv2d(4, (3, 2), bias=False), BatchNorm2d, Flatten, LayerNorm, Linear"),
        &[5, 6, 6],
        3,
        2,
        &CPU,
    )
    .unwrap();
    let get = |n: &str| -> Vec<f32> {
        let t = m.tensors()[n].clone();
        t.flatten_all().unwrap().to_vec1().unwrap()
    };
    let conv = get("0.weight");
    let bound = 1.0 / 30f32.sqrt();
    assert!(conv.iter().all(|x| x.abs() <= bound) && conv.iter().any(|x| x.abs() > 0.9 * bound));
    let fc = get("4.weight");
    let bound = 1.0 / (4.0f32 * 4.0 * 5.0).sqrt();
    assert!(fc.iter().all(|x| x.abs() <= bound) && fc.iter().any(|x| x.abs() > 0.9 * bound));
    for (name, value) in [
        ("1.weight", 1.0),
        ("1.bias", 0.0),
        ("1.running_mean", 0.0),
        ("1.running_var", 1.0),
        ("3.weight", 1.0),
        ("3.bias", 0.0),
    ] {
        assert!(get(name).iter().all(|x| *x == value), "{name}");
    }
    let names: Vec<&str> = m.named_vars().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["0.weight", "1.bias", "1.weight", "3.bias", "3.weight", "4.bias", "4.weight"]
    );
    let buffers: Vec<&str> = m.named_buffers().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(buffers, ["1.running_mean", "1.running_var"]);
    assert_eq!(m.num_params(), 4 * 5 * 6 + 8 + 2 * 80 + 3 * 80 + 3);
    assert!(m.uses_batch_statistics());
}

#[test]
fn every_preset_and_layer_gives_the_planned_shapes() {
    let x = Tensor::zeros((3, 784), DType::F32, &CPU).unwrap();
    for cfg in [
        ModelConfig::default(),
        ModelConfig::Linear,
        ModelConfig::Cnn,
        ModelConfig::Lenet,
    ] {
        let m = Model::new(&cfg, &MNIST, 10, 1, &CPU).unwrap();
        assert_eq!(m.forward(&x).unwrap().dims(), &[3, 10], "{cfg:?}");
    }
    let lenet = Model::new(&ModelConfig::Lenet, &MNIST, 10, 1, &CPU).unwrap();
    assert_eq!(lenet.num_params(), 61_706);
    let m = Model::new(&ModelConfig::Cnn, &[3, 32, 32], 10, 1, &CPU).unwrap();
    let x = Tensor::zeros((2, 3072), DType::F32, &CPU).unwrap();
    assert_eq!(m.forward(&x).unwrap().dims(), &[2, 10]);
    // All sixteen layers in one model; every layer's real output has its planned shape in
    // both modes.
    let all = layers(
        "Conv2d(4, (3, 5), stride=(2, 1), padding=(1, 2)), BatchNorm2d, ReLU, \
         Conv2d(6, 4, padding='same'), LeakyReLU(0.2), MaxPool2d(3, stride=2, padding=1), \
         AvgPool2d((2, 3), stride=1), AdaptiveAvgPool2d((5, 1)), GELU, LayerNorm, Dropout(0.3), \
         Flatten, BatchNorm1d, Linear(7), SiLU, Tanh, Sigmoid, Linear",
    );
    let m = Model::new(&all, &[3, 9, 7], 2, 5, &CPU).unwrap();
    let x = randn(&[4, 3 * 9 * 7], 1);
    for mode in [
        Mode::Eval,
        Mode::Train {
            step: 0,
            first_row: 0,
        },
    ] {
        let mut h = m.batch(&x).unwrap();
        for (i, layer) in m.layers.iter().enumerate() {
            h = m.apply(i, layer, &h, mode).unwrap();
            assert_eq!(
                &h.dims()[1..],
                layer.output.as_slice(),
                "{mode:?} layer {i} {}",
                layer.spec
            );
        }
        assert_eq!(m.forward_t(&x, mode).unwrap().dims(), [4, 2]);
    }
    let shapes: Vec<Vec<usize>> = m.layer_shapes().iter().map(|(_, s)| s.to_vec()).collect();
    assert_eq!(shapes[5], [6, 3, 4]);
    // A batch already shaped (B, C, H, W) is taken as it is; a wrong one is refused.
    assert_eq!(m.forward(&randn(&[2, 3, 9, 7], 2)).unwrap().dims(), [2, 2]);
    assert!(m
        .forward(&randn(&[2, 10], 2))
        .unwrap_err()
        .to_string()
        .contains("does not hold samples of shape [3, 9, 7]"));
}

#[test]
fn models_that_cannot_take_the_data_fail_before_allocating() {
    let e = |cfg: &ModelConfig, input: &[usize]| {
        Model::new(cfg, input, 3, 0, &CPU).unwrap_err().to_string()
    };
    assert_eq!(
        e(&ModelConfig::Cnn, &[13]),
        "kind = cnn: layer 0 'Conv2d(32, 3)': Conv2d needs images [C, H, W], but its input is [13] (one row of 13 values)"
    );
    assert_eq!(
        e(&ModelConfig::Lenet, &[1, 8, 8]),
        "kind = lenet: layer 3 'Conv2d(16, 5)': its 5x5 window does not fit the input [6, 4, 4] with padding (0, 0): the size would shrink below 1"
    );
    assert_eq!(
        e(&layers("Conv2d(8, 3), ReLU, Linear"), &[1, 28, 28]),
        "layers = Conv2d(8, 3), ReLU, Linear: layer 2 'Linear': Linear acts on the last dimension, but its input is [8, 26, 26] (C, H, W): put Flatten before it"
    );
    assert_eq!(
        e(&ModelConfig::Mlp { hidden: vec![100_000, 100_000] }, &[13]),
        "hidden = 100000,100000: the mlp(100000-100000) model would need 149.0 GiB of memory for its weights, gradients and optimizer state; the limit is 4 GiB (at most 268435456 parameters)"
    );
    // Table rows work with an MLP and with any flat layer list.
    let m = Model::new(
        &layers("BatchNorm1d, Linear(8), ReLU, Dropout(0.1), Linear"),
        &[13],
        3,
        0,
        &CPU,
    )
    .unwrap();
    assert_eq!(m.forward(&randn(&[5, 13], 0)).unwrap().dims(), [5, 3]);
}

#[test]
fn batch_norm_trains_on_batch_statistics_and_evaluates_on_running_ones() {
    let m = Model::new(
        &layers("BatchNorm1d(momentum=0.25), Linear"),
        &[2],
        2,
        0,
        &CPU,
    )
    .unwrap();
    let x = Tensor::new(&[[1f32, 10.0], [2.0, 30.0], [6.0, 20.0]], &CPU).unwrap();
    let before = m.snapshot().unwrap();
    let train = m
        .forward_t(
            &x,
            Mode::Train {
                step: 0,
                first_row: 0,
            },
        )
        .unwrap();
    // mean (3, 20), biased var (14/3, 200/3), unbiased (7, 100).
    let rm: Vec<f32> = m.tensors()["0.running_mean"].to_vec1().unwrap();
    let rv: Vec<f32> = m.tensors()["0.running_var"].to_vec1().unwrap();
    assert_eq!(rm, [0.75 * 0.0 + 0.25 * 3.0, 0.75 * 0.0 + 0.25 * 20.0]);
    assert!(
        (rv[0] - (0.75 + 0.25 * 7.0)).abs() < 1e-6 && (rv[1] - (0.75 + 0.25 * 100.0)).abs() < 1e-4,
        "{rv:?}"
    );
    // The training output is the Linear of (x - mean) / sqrt(var + eps).
    let w = m.tensors()["1.weight"].clone();
    let b = m.tensors()["1.bias"].clone();
    let norm = |v: f32, mean: f32, var: f32| (v - mean) / (var + 1e-5).sqrt();
    let xhat = Tensor::new(
        &[
            [norm(1.0, 3.0, 14.0 / 3.0), norm(10.0, 20.0, 200.0 / 3.0)],
            [norm(2.0, 3.0, 14.0 / 3.0), norm(30.0, 20.0, 200.0 / 3.0)],
            [norm(6.0, 3.0, 14.0 / 3.0), norm(20.0, 20.0, 200.0 / 3.0)],
        ],
        &CPU,
    )
    .unwrap();
    let want = xhat
        .matmul(&w.t().unwrap())
        .unwrap()
        .broadcast_add(&b)
        .unwrap();
    assert!(max_diff(&train, &want) < 1e-5);
    // Evaluation uses the running statistics and changes nothing.
    let eval = m.forward(&x).unwrap();
    let xhat = Tensor::new(
        &[
            [norm(1.0, rm[0], rv[0]), norm(10.0, rm[1], rv[1])],
            [norm(2.0, rm[0], rv[0]), norm(30.0, rm[1], rv[1])],
            [norm(6.0, rm[0], rv[0]), norm(20.0, rm[1], rv[1])],
        ],
        &CPU,
    )
    .unwrap();
    let want = xhat
        .matmul(&w.t().unwrap())
        .unwrap()
        .broadcast_add(&b)
        .unwrap();
    assert!(max_diff(&eval, &want) < 1e-5);
    assert_eq!(m.tensors()["0.running_mean"].to_vec1::<f32>().unwrap(), rm);
    // Snapshots cover the buffers.
    m.restore(&before).unwrap();
    assert_eq!(
        m.tensors()["0.running_mean"].to_vec1::<f32>().unwrap(),
        [0.0, 0.0]
    );
    assert_eq!(
        m.tensors()["0.running_var"].to_vec1::<f32>().unwrap(),
        [1.0, 1.0]
    );
    // One value per channel cannot be normalised in training (PyTorch refuses it too).
    let e = m
        .forward_t(
            &x.narrow(0, 0, 1).unwrap(),
            Mode::Train {
                step: 0,
                first_row: 0,
            },
        )
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "layers = BatchNorm1d(momentum=0.25), Linear: layer 0 'BatchNorm1d(momentum=0.25)': in training it needs more than one value per channel, got a batch of shape [1, 2]"
    );
}

#[test]
fn dropout_is_seeded_per_step_and_row_and_off_in_evaluation() {
    let m = Model::new(
        &layers("Flatten, Linear(64), ReLU, Dropout(0.5), Linear"),
        &[20],
        4,
        3,
        &CPU,
    )
    .unwrap();
    let x = randn(&[10, 20], 5);
    let train =
        |x: &Tensor, step, first_row| m.forward_t(x, Mode::Train { step, first_row }).unwrap();
    let whole = train(&x, 3, 0);
    assert_eq!(bits(&whole), bits(&train(&x, 3, 0)), "same step, same mask");
    assert_ne!(
        bits(&whole),
        bits(&train(&x, 4, 0)),
        "another step, another mask"
    );
    let halves = Tensor::cat(
        &[
            train(&x.narrow(0, 0, 4).unwrap(), 3, 0),
            train(&x.narrow(0, 4, 6).unwrap(), 3, 4),
        ],
        0,
    )
    .unwrap();
    // (Equal up to the matmul's rounding on fewer rows; another mask would differ by far more.)
    assert!(
        max_diff(&halves, &whole) < 1e-6,
        "shards see the whole batch's masks"
    );
    // Evaluation: no dropout, so the output equals the model without it.
    let eval = m.forward(&x).unwrap();
    let mut no_dropout = m.clone();
    no_dropout.layers[3].spec = LayerSpec::Dropout { p: 0.0 };
    assert_eq!(
        bits(&eval),
        bits(
            &no_dropout
                .forward_t(
                    &x,
                    Mode::Train {
                        step: 3,
                        first_row: 0
                    }
                )
                .unwrap()
        )
    );
    assert_ne!(bits(&eval), bits(&whole));
    // Gradients of shards, each divided by the whole batch, add up to the whole batch's.
    let y = Tensor::new(&[0u32, 1, 2, 3, 0, 1, 2, 3, 0, 1], &CPU).unwrap();
    let (_, g) = m
        .loss_and_grads(
            &x,
            Mode::Train {
                step: 3,
                first_row: 0,
            },
            ce(&y),
        )
        .map(all_grads)
        .unwrap();
    let part = |start: usize, len: usize| {
        let (xs, ys) = (
            x.narrow(0, start, len).unwrap(),
            y.narrow(0, start, len).unwrap(),
        );
        let scale = len as f64 / 10.0;
        let (_, g) = m
            .loss_and_grads(
                &xs,
                Mode::Train {
                    step: 3,
                    first_row: start,
                },
                |o| {
                    let (l, d) = ce(&ys)(o)?;
                    Ok((l * scale, (d * scale)?))
                },
            )
            .map(all_grads)
            .unwrap();
        g
    };
    for ((a, b), w) in part(0, 4).iter().zip(part(4, 6)).zip(&g) {
        assert!(max_diff(&(a + b).unwrap(), w) < 1e-6);
    }
}

#[test]
fn hand_written_backward_matches_autograd() {
    let x = randn(&[5, 784], 3);
    let y = Tensor::new(&[3u32, 0, 9, 3, 7], &CPU).unwrap();
    for cfg in [
        ModelConfig::Mlp {
            hidden: vec![32, 16],
        },
        ModelConfig::Linear,
        layers("Flatten, Linear(12, bias=False), ReLU, ReLU, Linear(8), Linear"),
    ] {
        let m = Model::new(&cfg, &MNIST, 10, 4, &CPU).unwrap();
        assert!(m.fully_connected, "{cfg:?}");
        let mode = Mode::Train {
            step: 0,
            first_row: 0,
        };
        let (loss, grads) = m.loss_and_grads(&x, mode, ce(&y)).map(all_grads).unwrap();
        let (auto_loss, auto) = m
            .autograd_loss_and_grads(&x, mode, ce(&y))
            .map(all_grads)
            .unwrap();
        // And candle's own cross-entropy through its autograd, as the old test did.
        let reference = candle_nn::loss::cross_entropy(&m.forward(&x).unwrap(), &y).unwrap();
        assert!((loss - reference.to_scalar::<f32>().unwrap() as f64).abs() < 1e-5);
        assert_eq!(loss.to_bits(), auto_loss.to_bits());
        let store = reference.backward().unwrap();
        for (((name, v), g), a) in m.named_vars().iter().zip(&grads).zip(&auto) {
            assert!(max_diff(g, a) < 1e-6, "{cfg:?} {name}");
            assert!(max_diff(g, store.get(v).unwrap()) < 1e-6, "{cfg:?} {name}");
            assert_eq!(g.dims(), v.dims(), "{name}");
            assert!(!g.track_op(), "{name}: gradient carries an autograd graph");
        }
    }
    // Anything else takes autograd.
    let cnn = Model::new(&ModelConfig::Cnn, &MNIST, 10, 0, &CPU).unwrap();
    assert!(!cnn.fully_connected);
    let with_tanh = Model::new(
        &layers("Flatten, Linear(8), Tanh, Linear"),
        &MNIST,
        10,
        0,
        &CPU,
    )
    .unwrap();
    assert!(!with_tanh.fully_connected);
}

#[test]
fn autograd_gradients_reach_every_parameter() {
    let m = Model::new(
        &layers("Conv2d(4, 3, padding=1), BatchNorm2d, ReLU, MaxPool2d(2), Conv2d(4, 3, stride=2), LayerNorm, GELU, AdaptiveAvgPool2d(2), Flatten, Dropout(0.2), Linear"),
        &[2, 9, 9],
        3,
        1,
        &CPU,
    )
    .unwrap();
    let x = randn(&[6, 162], 2);
    let y = Tensor::new(&[0u32, 1, 2, 0, 1, 2], &CPU).unwrap();
    let (loss, grads) = m
        .loss_and_grads(
            &x,
            Mode::Train {
                step: 1,
                first_row: 0,
            },
            ce(&y),
        )
        .map(all_grads)
        .unwrap();
    assert!(loss.is_finite());
    assert_eq!(grads.len(), m.named_vars().len());
    for ((name, v), g) in m.named_vars().iter().zip(&grads) {
        assert_eq!(g.dims(), v.dims(), "{name}");
        let norm = g
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0 && norm.is_finite(), "{name}: {norm}");
    }
    // A step along -grad lowers the loss (with the same dropout masks).
    let snap = m.snapshot().unwrap();
    for ((_, v), g) in m.named_vars().iter().zip(&grads) {
        v.set(&(v.as_tensor() - (g * 1e-2).unwrap()).unwrap())
            .unwrap();
    }
    let (after, _) = m
        .loss_and_grads(
            &x,
            Mode::Train {
                step: 1,
                first_row: 0,
            },
            ce(&y),
        )
        .map(all_grads)
        .unwrap();
    assert!(after < loss, "{after} !< {loss}");
    m.restore(&snap).unwrap();
}

#[test]
fn snapshot_restores_bit_for_bit() {
    let m = Model::new(&ModelConfig::Linear, &MNIST, 10, 3, &CPU).unwrap();
    let snap = m.snapshot().unwrap();
    let before = bits(m.vars()[1].as_tensor());
    m.vars()[1]
        .set(&m.vars()[1].affine(2.0, 1.0).unwrap())
        .unwrap();
    m.restore(&snap).unwrap();
    assert_eq!(bits(m.vars()[1].as_tensor()), before);
}

fn save(path: &std::path::Path, tensors: &HashMap<String, Tensor>) {
    candle_core::safetensors::save(tensors, path).unwrap();
}

#[test]
fn init_from_loads_a_matching_file_in_any_float_type() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = layers("Conv2d(4, 3), BatchNorm2d, ReLU, Flatten, Linear");
    let a = Model::new(&cfg, &[1, 6, 6], 3, 1, &CPU).unwrap();
    // Some running statistics, so buffers differ from their init too.
    a.forward_t(
        &randn(&[4, 36], 0),
        Mode::Train {
            step: 0,
            first_row: 0,
        },
    )
    .unwrap();
    let mut file = a.tensors();
    file.insert(
        "1.num_batches_tracked".into(),
        Tensor::new(&[1i64], &CPU).unwrap().squeeze(0).unwrap(),
    );
    let path = dir.path().join("w.safetensors");
    save(&path, &file);
    let b = Model::new(&cfg, &[1, 6, 6], 3, 2, &CPU).unwrap();
    b.init_from(&path).unwrap();
    for (name, t) in a.tensors() {
        assert_eq!(bits(&b.tensors()[&name]), bits(&t), "{name}");
    }
    // f16 and f64 files are converted.
    for dtype in [DType::F16, DType::BF16, DType::F64] {
        let half: HashMap<String, Tensor> = a
            .tensors()
            .into_iter()
            .map(|(k, v)| (k, v.to_dtype(dtype).unwrap()))
            .collect();
        save(&path, &half);
        let c = Model::new(&cfg, &[1, 6, 6], 3, 2, &CPU).unwrap();
        c.init_from(&path).unwrap();
        for (name, t) in a.tensors() {
            assert!(max_diff(&c.tensors()[&name], &t) < 1e-2, "{dtype:?} {name}");
        }
    }
}

#[test]
fn init_from_lists_every_mismatch_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("weights.safetensors");
    let other = Model::new(
        &layers("Conv2d(32, 3), ReLU, Flatten, Linear(5, bias=False), ReLU, Linear"),
        &[1, 5, 5],
        2,
        0,
        &CPU,
    )
    .unwrap();
    let mut file = other.tensors();
    file.insert(
        "extra.weight".into(),
        Tensor::zeros(2, DType::F32, &CPU).unwrap(),
    );
    file.insert("5.bias".into(), Tensor::zeros(2, DType::U8, &CPU).unwrap());
    save(&path, &file);
    let m = Model::new(
        &layers("Conv2d(16, 3), ReLU, Flatten, Linear(5), ReLU, Linear"),
        &[1, 5, 5],
        2,
        0,
        &CPU,
    )
    .unwrap();
    let before = m.snapshot().unwrap();
    let e = m.init_from(&path).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: 6 mismatches: 0.bias is [32], the model needs [16]; 0.weight is [32, 1, 3, 3], the model needs [16, 1, 3, 3]; \
             3.bias missing; 3.weight is [5, 288], the model needs [5, 144]; 5.bias is U8, the model needs floats; extra.weight is not in the model",
            path.display()
        )
    );
    // A PyTorch module holding the Sequential as `model`: its names carry a prefix.
    let prefixed: HashMap<String, Tensor> = m
        .tensors()
        .into_iter()
        .map(|(k, v)| (format!("model.{k}"), v))
        .collect();
    save(&path, &prefixed);
    let e = m.init_from(&path).unwrap_err().to_string();
    assert!(e.ends_with("(every name in the file starts with 'model.': save the nn.Sequential's own state_dict)"), "{e}");
    assert!(
        e.contains("12 mismatches: 0.bias missing;") && e.contains("; and 4 more"),
        "{e}"
    );
    // NaN is refused by name.
    let mut bad = m.tensors();
    let nan = (bad["3.weight"].ones_like().unwrap() * f64::NAN).unwrap();
    bad.insert("3.weight".into(), nan);
    save(&path, &bad);
    assert_eq!(
        m.init_from(&path).unwrap_err().to_string(),
        format!(
            "{}: tensor '3.weight' holds NaN or infinite values",
            path.display()
        )
    );
    // Not a safetensors file at all, or cut short.
    std::fs::write(&path, b"hello").unwrap();
    assert!(m
        .init_from(&path)
        .unwrap_err()
        .to_string()
        .contains("not a safetensors file: 5 bytes, too short for a header"));
    save(&path, &m.tensors());
    let full = std::fs::read(&path).unwrap();
    std::fs::write(&path, &full[..full.len() - 4]).unwrap();
    assert!(m
        .init_from(&path)
        .unwrap_err()
        .to_string()
        .contains("(truncated?)"));
    for (a, b) in m.snapshot().unwrap().iter().zip(&before) {
        assert_eq!(bits(a), bits(b));
    }
}

/// Every parameter's gradient (none is frozen in these tests).
fn all_grads((loss, g): (f64, Vec<Option<Tensor>>)) -> (f64, Vec<Tensor>) {
    (
        loss,
        g.into_iter().map(|g| g.expect("a gradient")).collect(),
    )
}
