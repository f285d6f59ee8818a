//! A training run's directory: config, metrics (JSONL + CSV), curves, weights, checkpoint.
//! Every file is rewritten atomically at each epoch's end, the checkpoint (weights, optimizer
//! state and run state in one file) after the others, then [`MANIFEST`] (the epoch and a
//! digest of each file), then the curves figure. The checkpoint is the epoch's commit: a kill
//! while saving leaves the last complete checkpoint to resume from, and the manifest tells
//! resume which files belong to it. Resume refuses a checkpoint that is not the one its epoch saved, one without its
//! optimizer state or its config digest, and files that cannot be read as regular files —
//! before writing anything.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use candle_core::{Device, Tensor};

use super::{EpochMetrics, Observer, Run, TrainConfig, TrainState};
use crate::error::{Error, Result, Scope};
use crate::plot::PlotFormat;
use crate::report::atomic::{check_writable, remove_stale_temps, write_atomic, TMP_PREFIX};

/// The run's [`TrainConfig`], as JSON.
pub const CONFIG: &str = "config.json";
/// The data the run trains on ([`crate::data::DataSummary`]: origin, classes, which split is
/// validation and which is test, standardisation), as JSON.
pub const DATASET: &str = "dataset.json";
/// The run's [`TrainState`], as JSON.
pub const STATE: &str = "state.json";
/// Weights, optimizer state and run state of the last finished epoch, for resuming.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
/// The model weights after the last finished epoch.
pub const FINAL: &str = "final.safetensors";
/// The model weights of the epoch with the lowest validation loss.
pub const BEST: &str = "best.safetensors";
/// One [`EpochMetrics`] JSON object per line.
pub const METRICS_JSONL: &str = "metrics.jsonl";
/// The same metrics as CSV (without the per-step LRs).
pub const METRICS_CSV: &str = "metrics.csv";
/// The last finished epoch and a digest of each file saved for it, written after them all.
pub const MANIFEST: &str = "manifest.json";

/// The checkpoint tensor listing the optimizer tensors saved with it (JSON): resume refuses a
/// checkpoint that lost any of them rather than continue with a fresh optimizer state.
const OPTIM_KEYS: &str = "meta.optim_keys";

/// What [`MANIFEST`] holds.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Manifest {
    /// Epochs finished when the files were saved.
    epoch: usize,
    /// The config digest of the run.
    config_digest: Option<String>,
    /// Each file saved at that epoch's end with its FNV-1a 64 digest (hex).
    files: BTreeMap<String, String>,
}

/// FNV-1a 64 of `bytes`, as hex (the digest [`TrainConfig::digest`] uses).
fn digest(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// A run file (JSON) as text: `Ok(None)` when it does not exist; an error when it cannot be
/// read, is not a regular file or is too large.
fn read_run_file(path: &Path) -> std::result::Result<Option<String>, crate::read::ReadError> {
    match crate::read::read_settings(path, "a run file") {
        Ok(t) => Ok(Some(t)),
        Err(crate::read::ReadError::Io { source, .. })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// A training run's output directory, locked while this value (or a clone) lives; as an
/// [`Observer`] it writes every file at each epoch's end.
#[derive(Debug, Clone)]
pub struct RunDir {
    /// The directory.
    pub path: PathBuf,
    /// Format of the curves figure.
    pub plot_format: PlotFormat,
    /// The directory, open and exclusively locked for as long as any clone lives: a second
    /// `lrfind train` on the same directory is refused instead of mixing its files in.
    lock: Option<Arc<std::fs::File>>,
    /// Directories this run created (deepest last), removed again if the run never starts.
    created: Vec<PathBuf>,
}

/// Refuses a directory that already holds a run (cheap: before any data is loaded).
/// `probe_lock`: also refuse a directory another process holds (off when we hold it).
fn refuse_existing_run(path: &Path, probe_lock: bool) -> Result<()> {
    if path.exists() && !path.is_dir() {
        return Err(out_dir(path, "exists and is not a directory"));
    }
    if probe_lock && path.is_dir() {
        // A run in progress says so, rather than "already holds a run".
        drop(lock_dir(path, false)?);
    }
    if path.join(STATE).exists() || path.join(CONFIG).exists() || path.join(CHECKPOINT).exists() {
        return Err(out_dir(
            path,
            "already holds a run; resume it or choose another directory",
        ));
    }
    Ok(())
}

/// A fault of the directory a new run was asked to use.
fn out_dir(path: &Path, why: impl Into<String>) -> Error {
    Error::setting(Scope::Train, "out_dir", path.display(), why)
}

/// A fault of the directory of a run to resume.
fn resume_dir(path: &Path, why: impl Into<String>) -> Error {
    Error::saved(path, why)
}

/// Takes the run directory's lock, or says who holds it (`resuming`: the directory is a run
/// to resume, not a new run's).
fn lock_dir(path: &Path, resuming: bool) -> Result<Arc<std::fs::File>> {
    let fault = |why: String| {
        if resuming {
            resume_dir(path, why)
        } else {
            out_dir(path, why)
        }
    };
    let f = std::fs::File::open(path).map_err(|e| fault(format!("cannot open it ({e})")))?;
    match f.try_lock() {
        Ok(()) => Ok(Arc::new(f)),
        Err(std::fs::TryLockError::WouldBlock) => Err(fault(
            "another lrfind train is running in this directory; wait for it to finish or choose another directory".into(),
        )),
        Err(std::fs::TryLockError::Error(e)) => Err(fault(format!("cannot lock it ({e})"))),
    }
}

/// Removes what a killed writer left in a run directory we hold the lock of: lrfind's own
/// temporaries and the safetensors crate's `.tmpXXXXXX` files from older versions.
fn remove_debris(path: &Path) {
    remove_stale_temps(path);
    let Ok(entries) = std::fs::read_dir(path) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        let ours = name.starts_with(TMP_PREFIX)
            && name[TMP_PREFIX.len()..]
                .split_once('-')
                .and_then(|(p, _)| p.parse::<u32>().ok())
                != Some(std::process::id());
        let safetensors_tmp = name.len() == 10
            && name.starts_with(".tmp")
            && name[4..].chars().all(|c| c.is_ascii_alphanumeric());
        if (ours || safetensors_tmp) && e.file_type().is_ok_and(|t| t.is_file()) {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl RunDir {
    /// Checks `path` can hold a new run, before the (slow) data loading.
    pub fn precheck(path: &Path) -> Result<()> {
        refuse_existing_run(path, true)
    }

    /// Creates (or takes, if empty of runs) the directory for a new run and locks it. An
    /// existing run is never overwritten, and a run in progress is never joined.
    pub fn create(path: &Path, plot_format: PlotFormat) -> Result<Self> {
        refuse_existing_run(path, true)?;
        let created = create_dirs(path, false)
            .map_err(|e| e.unwrap_or_else(|| out_dir(path, "cannot create it")))?;
        Self::claim(path, plot_format, created)
    }

    /// Creates a new directory `base`, or `base-2`, `base-3`, … when taken: the name is
    /// taken by an exclusive create, so two runs started in the same instant get two.
    pub fn create_unique(base: &Path, plot_format: PlotFormat) -> Result<Self> {
        for k in 1..=1000 {
            let path = if k == 1 {
                base.to_path_buf()
            } else {
                let mut s = base.as_os_str().to_owned();
                s.push(format!("-{k}"));
                PathBuf::from(s)
            };
            match create_dirs(&path, true) {
                Ok(created) => return Self::claim(&path, plot_format, created),
                Err(None) => continue,
                Err(Some(e)) => return Err(e),
            }
        }
        Err(out_dir(
            base,
            "it and 999 numbered variants all exist; name another directory",
        ))
    }

    fn claim(path: &Path, plot_format: PlotFormat, created: Vec<PathBuf>) -> Result<Self> {
        let mut dir = Self {
            path: path.to_path_buf(),
            plot_format,
            lock: None,
            created,
        };
        let claimed = (|| -> Result<()> {
            dir.lock = Some(lock_dir(path, false)?);
            // Checked again under the lock: a run that started meanwhile has written by now.
            refuse_existing_run(path, false)?;
            remove_debris(path);
            check_writable(&path.join(CONFIG))
                .map_err(|e| out_dir(path, format!("not writable ({})", e.source)))
        })();
        match claimed {
            Ok(()) => Ok(dir),
            Err(e) => {
                dir.remove_if_unused();
                Err(e)
            }
        }
    }

    /// Removes the directories this run created, if they are still empty (a run that
    /// failed before writing anything leaves no empty directory behind).
    pub fn remove_if_unused(&mut self) {
        self.lock = None;
        for d in self.created.drain(..).rev() {
            if std::fs::remove_dir(&d).is_err() {
                break;
            }
        }
    }

    /// Opens a run to resume: its config, its state and its checkpoint, which must agree.
    /// The directory is locked for the run, like a new one.
    pub fn open(
        path: &Path,
        device: &Device,
    ) -> Result<(Self, TrainConfig, TrainState, HashMap<String, Tensor>)> {
        let not_a_run =
            |what: String| Error::saved(path, format!("not an lrfind training run ({what})"));
        if !path.is_dir() {
            return Err(not_a_run("no such directory".into()));
        }
        let lock = lock_dir(path, true)?;
        remove_debris(path);
        let read = |name: &str| -> Result<String> {
            read_run_file(&path.join(name))
                .map_err(|e| not_a_run(e.to_string()))?
                .ok_or_else(|| not_a_run(format!("{name}: no such file")))
        };
        let config: TrainConfig = serde_json::from_str(&read(CONFIG)?)
            .map_err(|e| not_a_run(format!("{CONFIG}: {e}")))?;
        config
            .validate()
            .map_err(|e| not_a_run(format!("{CONFIG}: {e}")))?;
        let ckpt_path = path.join(CHECKPOINT);
        if !ckpt_path.exists() {
            return Err(not_a_run(format!(
                "no {CHECKPOINT}: no epoch has finished yet"
            )));
        }
        let bytes =
            crate::read::read_capped(&ckpt_path, "a checkpoint", crate::read::MAX_WEIGHTS_BYTES)?;
        let ckpt = candle_core::safetensors::load_buffer(&bytes, device)
            .map_err(|e| not_a_run(format!("{CHECKPOINT}: {}", first_line(&e.to_string()))))?;
        let ckpt_digest = digest(&bytes);
        drop(bytes);
        let weights = ckpt.iter().filter(|(k, _)| !k.starts_with("meta."));
        if let Some(name) = crate::model::non_finite_tensor(weights)? {
            return Err(resume_dir(
                path,
                format!("{CHECKPOINT}: tensor '{name}' holds NaN or infinite values; refusing to continue from it"),
            ));
        }
        // The state travels inside the checkpoint (one atomic file); state.json is a copy for people.
        let meta_json = |key: &str| {
            ckpt.get(key)
                .and_then(|t| t.to_dtype(candle_core::DType::U8).ok())
                .and_then(|t| t.to_vec1::<u8>().ok())
        };
        let state_bytes = meta_json("meta.state")
            .ok_or_else(|| not_a_run(format!("{CHECKPOINT} has no run state")))?;
        let state: TrainState = serde_json::from_slice(&state_bytes)
            .map_err(|e| not_a_run(format!("{CHECKPOINT}: run state: {e}")))?;
        state
            .validate()
            .map_err(|e| not_a_run(format!("{CHECKPOINT}: run state: {e}")))?;
        let refuse = |why: String| Err(resume_dir(path, why));
        // Config, checkpoint and state.json must come from one run; without its digest a
        // checkpoint could continue any run's config.
        let want = config.digest();
        let Some(ckpt_config) = &state.config_digest else {
            return refuse(format!(
                "{CHECKPOINT} has no config digest, so nothing shows it belongs to this run's {CONFIG}; refusing to continue from it"
            ));
        };
        let json_state =
            match read_run_file(&path.join(STATE)).map_err(|e| not_a_run(e.to_string()))? {
                Some(t) => Some(serde_json::from_str::<TrainState>(&t).map_err(|e| {
                    not_a_run(format!(
                        "{STATE}: not a run state ({})",
                        first_line(&e.to_string())
                    ))
                })?),
                None => None,
            };
        let json_digest = json_state.as_ref().and_then(|s| s.config_digest.clone());
        for (what, d) in [
            (CHECKPOINT, Some(ckpt_config)),
            (STATE, json_digest.as_ref()),
        ] {
            if let Some(d) = d {
                if *d != want {
                    return refuse(format!("{what} belongs to a different run than {CONFIG} (config digest {d}, expected {want}); refusing to continue a mix of two runs"));
                }
            }
        }
        // The optimizer state must be there: a fresh one would not continue the run.
        let saved_optim = ckpt.keys().filter(|k| k.starts_with("optim.")).count();
        match meta_json(OPTIM_KEYS) {
            Some(list) => {
                let keys: Vec<String> = serde_json::from_slice(&list)
                    .map_err(|e| not_a_run(format!("{CHECKPOINT}: {OPTIM_KEYS}: {e}")))?;
                if let Some(k) = keys.iter().find(|k| !ckpt.contains_key(*k)) {
                    return refuse(format!(
                        "{CHECKPOINT} lacks optimizer tensor '{k}' ({} of the {} saved are left); refusing to continue with a fresh optimizer state",
                        saved_optim,
                        keys.len()
                    ));
                }
            }
            None => {
                let stateful = config.setup.optimizer.name() != "sgd"
                    || config.setup.optimizer.momentum() != 0.0;
                if stateful && state.optimizer_step > 0 && saved_optim == 0 {
                    return refuse(format!(
                        "{CHECKPOINT} holds no optimizer state after {} {} steps; refusing to continue with a fresh one",
                        state.optimizer_step,
                        config.setup.optimizer.name()
                    ));
                }
            }
        }
        // One epoch: the checkpoint is the one its epoch saved (or the next epoch's, when a
        // kill came between the checkpoint and the manifest), and state.json is not from
        // another epoch than those two.
        let epoch = state.epochs_done;
        if let Some(text) =
            read_run_file(&path.join(MANIFEST)).map_err(|e| not_a_run(e.to_string()))?
        {
            let m: Manifest = serde_json::from_str(&text)
                .map_err(|e| not_a_run(format!("{MANIFEST}: {}", first_line(&e.to_string()))))?;
            let recorded = m.files.get(CHECKPOINT);
            if m.epoch == epoch && recorded != Some(&ckpt_digest) {
                return refuse(format!(
                    "{CHECKPOINT} is not the checkpoint {MANIFEST} records for epoch {epoch} (digest {ckpt_digest}, recorded {}): it was changed after it was saved; refusing to continue from it",
                    recorded.map_or("none", String::as_str)
                ));
            }
            if m.epoch != epoch && m.epoch + 1 != epoch {
                return refuse(format!(
                    "{CHECKPOINT} is from epoch {epoch} but {MANIFEST} from epoch {}: the files come from different moments; refusing to continue from them",
                    m.epoch
                ));
            }
        }
        if let Some(s) = &json_state {
            if s.epochs_done != epoch && s.epochs_done != epoch + 1 {
                return refuse(format!(
                    "{STATE} is from epoch {} but {CHECKPOINT} from epoch {epoch}: the files come from different moments; refusing to continue from them",
                    s.epochs_done
                ));
            }
        }
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
                lock: Some(lock),
                created: Vec::new(),
            },
            config,
            state,
            ckpt,
        ))
    }

    /// The path of file `name` inside the directory.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The path of the training-curves figure (`curves.png` or `curves.svg`).
    pub fn curves_path(&self) -> PathBuf {
        self.file(match self.plot_format {
            PlotFormat::Png => "curves.png",
            PlotFormat::Svg => "curves.svg",
        })
    }

    /// Writes `config` to [`CONFIG`], atomically.
    pub fn write_config(&self, config: &TrainConfig) -> Result<()> {
        write_json(&self.file(CONFIG), config).map(drop)
    }

    /// Writes the description of the run's data to [`DATASET`], atomically.
    pub fn write_dataset(&self, data: &crate::data::DataSummary) -> Result<()> {
        write_json(&self.file(DATASET), data).map(drop)
    }

    /// On resume: the data rebuilt from the config must be the data the run started on (a
    /// CSV file edited since would change the splits or the standardisation). A run without
    /// [`DATASET`] (older versions) is taken as it is.
    pub fn check_dataset(&self, data: &crate::data::DataSummary) -> Result<()> {
        let path = self.file(DATASET);
        let Some(text) = read_run_file(&path)? else {
            return Ok(());
        };
        let saved: crate::data::DataSummary = serde_json::from_str(&text)
            .map_err(|e| Error::saved(&path, format!("not a data description ({e})")))?;
        let differs = if saved.origin != data.origin {
            Some(format!(
                "it was read from {}, now from {}",
                saved.origin, data.origin
            ))
        } else if saved.input != data.input || saved.task != data.task {
            Some("its shape, classes or targets changed".into())
        } else if saved.splits != data.splits {
            Some("its splits changed".into())
        } else if saved.standardization != data.standardization {
            Some("its training statistics (standardisation) changed".into())
        } else {
            None
        };
        match differs {
            Some(why) => Err(Error::saved(
                &path,
                format!("the data is not what the run started on: {why}; restore the data, or start a new run"),
            )),
            None => Ok(()),
        }
    }

    fn write_metrics(&self, history: &[EpochMetrics]) -> Result<[(String, String); 2]> {
        let mut jsonl = String::new();
        let mut csv = String::from(
            "epoch,train_loss,val_loss,val_accuracy,val_rmse,val_mae,lr,lr_end,momentum,seconds\n",
        );
        // An empty cell where the metric does not apply (accuracy for regression, …).
        let cell = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
        for m in history {
            jsonl.push_str(&serde_json::to_string(m).unwrap_or_default());
            jsonl.push('\n');
            csv.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{}\n",
                m.epoch,
                m.train_loss,
                m.val_loss,
                cell(m.val_accuracy),
                cell(m.val_rmse),
                cell(m.val_mae),
                m.lr,
                m.lr_end,
                m.momentum,
                m.seconds
            ));
        }
        write_atomic(&self.file(METRICS_JSONL), jsonl.as_bytes())?;
        write_atomic(&self.file(METRICS_CSV), csv.as_bytes())?;
        Ok([
            (METRICS_JSONL.into(), digest(jsonl.as_bytes())),
            (METRICS_CSV.into(), digest(csv.as_bytes())),
        ])
    }

    #[cfg(not(feature = "plot"))]
    fn write_curves(&self, _run: &Run) -> Result<()> {
        Ok(())
    }

    #[cfg(feature = "plot")]
    fn write_curves(&self, run: &Run) -> Result<()> {
        use crate::plot::{self, CurvesPlot, EvalMetric};
        let (config, history) = (&run.config, &run.state.history);
        let col = |f: fn(&EpochMetrics) -> f64| history.iter().map(f).collect::<Vec<f64>>();
        let epochs: Vec<usize> = history.iter().map(|m| m.epoch).collect();
        let (tl, vl, va, lr) = (
            col(|m| m.train_loss),
            col(|m| m.val_loss),
            col(|m| m.val_accuracy.or(m.val_rmse).unwrap_or(f64::NAN)),
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
        // Trace point j of n in epoch e sits mid-run: e - 1 + (j + 0.5) / n.
        let train_trace: Vec<(f64, f64)> = history
            .iter()
            .flat_map(|m| {
                let n = m.train_loss_trace.len() as f64;
                m.train_loss_trace
                    .iter()
                    .enumerate()
                    .map(move |(j, &v)| ((m.epoch - 1) as f64 + (j as f64 + 0.5) / n, v))
            })
            .collect();
        let schedule = match (&config.scheduler, run.scheduler_name()) {
            (Some(s), _) => s.to_short_string(),
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
                eval_metric: if history.iter().any(|m| m.val_rmse.is_some()) {
                    EvalMetric::Rmse
                } else {
                    EvalMetric::Accuracy
                },
                // Evaluation runs on the validation split (see `Run::train`).
                eval_split: "validation".into(),
                lr: &lr,
                step_lr: &step_lr,
                train_trace: &train_trace,
                best_epoch: run.state.best_epoch,
                title: format!(
                    "{} on {}, {}, {}, {schedule}",
                    config.setup.model.name(),
                    config.setup.data.name(),
                    config.setup.optimizer.name(),
                    config.lr_label()
                ),
            },
        )?;
        Ok(())
    }
}

/// Creates `path` and any missing parents; returns the ones it made, outermost first.
/// With `exclusive`, `path` itself must be new: `Err(None)` when it already exists.
fn create_dirs(path: &Path, exclusive: bool) -> std::result::Result<Vec<PathBuf>, Option<Error>> {
    let fail = |e: std::io::Error| Some(out_dir(path, format!("cannot create it ({e})")));
    let mut missing = Vec::new();
    let mut p = path;
    while !p.as_os_str().is_empty() && !p.exists() {
        missing.push(p.to_path_buf());
        match p.parent() {
            Some(q) => p = q,
            None => break,
        }
    }
    if exclusive && missing.first().map(PathBuf::as_path) != Some(path) {
        return Err(None);
    }
    missing.reverse();
    let mut created = Vec::new();
    for d in missing {
        match std::fs::create_dir(&d) {
            Ok(()) => created.push(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                if exclusive && d == path {
                    for c in created.iter().rev() {
                        let _ = std::fs::remove_dir(c);
                    }
                    return Err(None);
                }
            }
            Err(e) => {
                for c in created.iter().rev() {
                    let _ = std::fs::remove_dir(c);
                }
                return Err(fail(e));
            }
        }
    }
    if !path.is_dir() {
        return Err(fail(std::io::Error::other("not a directory")));
    }
    Ok(created)
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

/// Writes `value` as JSON; returns the digest of what was written.
fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<String> {
    let mut text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::saved(path, format!("cannot serialise: {e}")))?;
    text.push('\n');
    write_atomic(path, text.as_bytes())?;
    Ok(digest(text.as_bytes()))
}

/// Serialised in memory and written through the atomic path (the safetensors crate's own
/// file writer leaves `.tmpXXXXXX` files on a kill and makes them mode 0600).
fn write_safetensors(path: &Path, tensors: &HashMap<String, Tensor>) -> Result<String> {
    let bytes = safetensors::serialize(tensors.iter(), None)
        .map_err(|e| Error::saved(path, format!("cannot serialise: {e}")))?;
    write_atomic(path, &bytes)?;
    Ok(digest(&bytes))
}

impl Observer for RunDir {
    fn epoch_end(&mut self, run: &Run, _metrics: &EpochMetrics, improved: bool) -> Result<()> {
        let mut files = BTreeMap::new();
        let weights = run.learner.model.tensors();
        if improved {
            files.insert(
                BEST.to_string(),
                write_safetensors(&self.file(BEST), &weights)?,
            );
        }
        files.insert(
            FINAL.to_string(),
            write_safetensors(&self.file(FINAL), &weights)?,
        );
        files.extend(self.write_metrics(&run.state.history)?);
        files.insert(
            STATE.to_string(),
            write_json(&self.file(STATE), &run.state)?,
        );
        // The checkpoint (weights + optimizer + state, one file) commits the epoch: a kill
        // before it leaves the previous epoch's checkpoint to resume from.
        let serialise = |e: serde_json::Error| {
            Error::saved(&self.path, format!("cannot serialise the run state: {e}"))
        };
        let as_tensor = |bytes: Vec<u8>| {
            let n = bytes.len();
            Tensor::from_vec(bytes, n, &Device::Cpu)
        };
        let mut ckpt = run.checkpoint_tensors();
        let mut optim: Vec<&String> = ckpt.keys().filter(|k| k.starts_with("optim.")).collect();
        optim.sort();
        let optim = as_tensor(serde_json::to_vec(&optim).map_err(serialise)?)?;
        let state = as_tensor(serde_json::to_vec(&run.state).map_err(serialise)?)?;
        ckpt.insert(OPTIM_KEYS.into(), optim);
        ckpt.insert("meta.state".into(), state);
        files.insert(
            CHECKPOINT.to_string(),
            write_safetensors(&self.file(CHECKPOINT), &ckpt)?,
        );
        // Which files the epoch wrote, after them: resume tells a changed checkpoint by it.
        let manifest = Manifest {
            epoch: run.state.epochs_done,
            config_digest: run.state.config_digest.clone(),
            files,
        };
        write_json(&self.file(MANIFEST), &manifest)?;
        // The plot last: a full disk may cost the picture, never the measurements.
        self.write_curves(run)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_names_are_taken_exclusively() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("runs/2026-01-01T00-00-00.123");
        let a = RunDir::create_unique(&base, PlotFormat::Png).unwrap();
        let b = RunDir::create_unique(&base, PlotFormat::Png).unwrap();
        assert_eq!(a.path, base);
        assert_eq!(b.path, tmp.path().join("runs/2026-01-01T00-00-00.123-2"));
    }

    #[test]
    fn a_locked_directory_is_refused_and_an_unused_one_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a/b");
        let mut first = RunDir::create(&p, PlotFormat::Png).unwrap();
        let e = RunDir::create(&p, PlotFormat::Png).unwrap_err().to_string();
        assert!(e.contains("another lrfind train"), "{e}");
        first.remove_if_unused();
        assert!(!tmp.path().join("a").exists());
    }
}
