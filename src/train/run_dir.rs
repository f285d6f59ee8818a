//! A training run's directory: config, metrics (JSONL + CSV), curves, weights, checkpoint.
//! Every file is rewritten atomically at each epoch's end, so the directory always holds a
//! consistent picture of the last finished epoch.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::{EpochMetrics, Observer, Run, TrainConfig, TrainState};
use crate::error::{Error, Result, Scope};
use crate::plot::PlotFormat;
use crate::report::atomic::{check_writable, write_atomic, write_atomic_with};

pub const CONFIG: &str = "config.json";
pub const STATE: &str = "state.json";
pub const CHECKPOINT: &str = "checkpoint.safetensors";
pub const FINAL: &str = "final.safetensors";
pub const BEST: &str = "best.safetensors";
pub const METRICS_JSONL: &str = "metrics.jsonl";
pub const METRICS_CSV: &str = "metrics.csv";

#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
    pub plot_format: PlotFormat,
}

impl RunDir {
    /// Creates the directory for a new run. An existing run is never overwritten.
    pub fn create(path: &Path, plot_format: PlotFormat) -> Result<Self> {
        if path.join(STATE).exists() || path.join(CONFIG).exists() {
            return Err(Error::setting(
                Scope::Train,
                "out_dir",
                path.display(),
                "already holds a run; resume it or choose another directory",
            ));
        }
        std::fs::create_dir_all(path).map_err(|e| {
            Error::setting(
                Scope::Train,
                "out_dir",
                path.display(),
                format!("cannot create it ({e})"),
            )
        })?;
        check_writable(&path.join(CONFIG)).map_err(|e| {
            Error::setting(
                Scope::Train,
                "out_dir",
                path.display(),
                format!("not writable ({})", e.source),
            )
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            plot_format,
        })
    }

    /// Opens a run to resume: its config, its state and its checkpoint, which must agree.
    pub fn open(
        path: &Path,
        device: &Device,
    ) -> Result<(Self, TrainConfig, TrainState, HashMap<String, Tensor>)> {
        let not_a_run =
            |what: String| Error::saved(path, format!("not an lrfind training run ({what})"));
        if !path.is_dir() {
            return Err(not_a_run("no such directory".into()));
        }
        let read = |name: &str| -> Result<String> {
            std::fs::read_to_string(path.join(name)).map_err(|e| not_a_run(format!("{name}: {e}")))
        };
        let config: TrainConfig = serde_json::from_str(&read(CONFIG)?)
            .map_err(|e| not_a_run(format!("{CONFIG}: {e}")))?;
        let ckpt_path = path.join(CHECKPOINT);
        if !ckpt_path.is_file() {
            return Err(not_a_run(format!(
                "no {CHECKPOINT}: no epoch has finished yet"
            )));
        }
        let ckpt = candle_core::safetensors::load(&ckpt_path, device)
            .map_err(|e| not_a_run(format!("{CHECKPOINT}: {}", first_line(&e.to_string()))))?;
        // The state travels inside the checkpoint (one atomic file); state.json is a copy for people.
        let state_bytes = ckpt
            .get("meta.state")
            .and_then(|t| t.to_vec1::<u8>().ok())
            .ok_or_else(|| not_a_run(format!("{CHECKPOINT} has no run state")))?;
        let state: TrainState = serde_json::from_slice(&state_bytes)
            .map_err(|e| not_a_run(format!("{CHECKPOINT}: run state: {e}")))?;
        let format = ["png", "svg"]
            .into_iter()
            .find(|e| path.join(format!("curves.{e}")).exists())
            .map_or(PlotFormat::Png, |e| {
                if e == "svg" {
                    PlotFormat::Svg
                } else {
                    PlotFormat::Png
                }
            });
        Ok((
            Self {
                path: path.to_path_buf(),
                plot_format: format,
            },
            config,
            state,
            ckpt,
        ))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn curves_path(&self) -> PathBuf {
        self.file(match self.plot_format {
            PlotFormat::Png => "curves.png",
            PlotFormat::Svg => "curves.svg",
        })
    }

    pub fn write_config(&self, config: &TrainConfig) -> Result<()> {
        write_json(&self.file(CONFIG), config)
    }

    fn write_metrics(&self, history: &[EpochMetrics]) -> Result<()> {
        let mut jsonl = String::new();
        let mut csv =
            String::from("epoch,train_loss,val_loss,val_accuracy,lr,lr_end,momentum,seconds\n");
        for m in history {
            jsonl.push_str(&serde_json::to_string(m).unwrap_or_default());
            jsonl.push('\n');
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{}\n",
                m.epoch,
                m.train_loss,
                m.val_loss,
                m.val_accuracy,
                m.lr,
                m.lr_end,
                m.momentum,
                m.seconds
            ));
        }
        write_atomic(&self.file(METRICS_JSONL), jsonl.as_bytes())?;
        write_atomic(&self.file(METRICS_CSV), csv.as_bytes())?;
        Ok(())
    }

    #[cfg(not(feature = "plot"))]
    fn write_curves(&self, _run: &Run) -> Result<()> {
        Ok(())
    }

    #[cfg(feature = "plot")]
    fn write_curves(&self, run: &Run) -> Result<()> {
        use crate::plot::{self, CurvesPlot};
        let (config, history) = (&run.config, &run.state.history);
        let col = |f: fn(&EpochMetrics) -> f64| history.iter().map(f).collect::<Vec<f64>>();
        let epochs: Vec<usize> = history.iter().map(|m| m.epoch).collect();
        let (tl, vl, va, lr) = (
            col(|m| m.train_loss),
            col(|m| m.val_loss),
            col(|m| m.val_accuracy),
            col(|m| m.lr),
        );
        // Step j of n in epoch e sits at e - 1 + j / n on the epoch axis.
        let step_lr: Vec<(f64, f64)> = history
            .iter()
            .flat_map(|m| {
                let n = m.step_lrs.len() as f64;
                m.step_lrs
                    .iter()
                    .enumerate()
                    .map(move |(j, &v)| ((m.epoch - 1) as f64 + j as f64 / n, v))
            })
            .collect();
        let schedule = match (&config.scheduler, run.scheduler_name()) {
            (Some(s), _) => s.to_string(),
            (None, Some(name)) => name.to_string(),
            (None, None) => "constant LR".to_string(),
        };
        plot::curves(
            &self.curves_path(),
            &CurvesPlot {
                epochs: &epochs,
                train_loss: &tl,
                eval_loss: &vl,
                eval_accuracy: &va,
                // Evaluation runs on the data set's test split (see `Run::train`).
                eval_split: "test".into(),
                lr: &lr,
                step_lr: &step_lr,
                title: format!(
                    "{} on {}, {} at {:.3e}, {schedule}",
                    config.setup.model.name(),
                    config.setup.data,
                    config.setup.optimizer.name(),
                    config.lr
                ),
            },
        )?;
        Ok(())
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::saved(path, format!("cannot serialise: {e}")))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())?;
    Ok(())
}

fn write_safetensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
    write_atomic_with(path, |tmp| {
        candle_core::safetensors::save(tensors, tmp).map_err(std::io::Error::other)
    })?;
    Ok(())
}

impl Observer for RunDir {
    fn epoch_end(&mut self, run: &Run, _metrics: &EpochMetrics, improved: bool) -> Result<()> {
        // The checkpoint (weights + optimizer + state) is one file, so resume never sees a mix.
        let weights = run.learner.model.tensors();
        write_safetensors(&self.file(FINAL), &weights)?;
        if improved {
            write_safetensors(&self.file(BEST), &weights)?;
        }
        let mut ckpt = run.checkpoint_tensors();
        let state = serde_json::to_vec(&run.state).map_err(|e| {
            Error::saved(&self.path, format!("cannot serialise the run state: {e}"))
        })?;
        let n = state.len();
        ckpt.insert(
            "meta.state".into(),
            Tensor::from_vec(state, n, &Device::Cpu)?,
        );
        write_safetensors(&self.file(CHECKPOINT), &ckpt)?;
        self.write_metrics(&run.state.history)?;
        self.write_curves(run)?;
        write_json(&self.file(STATE), &run.state)?;
        Ok(())
    }
}
