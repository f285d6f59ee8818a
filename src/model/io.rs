//! A model's tensors in and out: checkpoints (`tensors`, `load_tensors`) and pretrained
//! weights (`init_from`), which must match the model name for name and shape for shape, as
//! PyTorch's strict `load_state_dict` demands.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::Model;
use crate::error::{Error, Result};

/// The name of the first tensor holding a NaN or an infinity, if any.
pub fn non_finite_tensor<'a>(
    tensors: impl IntoIterator<Item = (&'a String, &'a Tensor)>,
) -> Result<Option<String>> {
    let mut named: Vec<(&String, &Tensor)> = tensors.into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    for (name, t) in named {
        if !t.dtype().is_float() {
            continue;
        }
        // The sum in f64 is finite exactly when every f32 element is (no f32 sum overflows it).
        let s = t.to_dtype(DType::F64)?.sum_all()?.to_scalar::<f64>()?;
        if !s.is_finite() {
            return Ok(Some(name.clone()));
        }
    }
    Ok(None)
}

/// Largest safetensors header read (the format's own limit).
const MAX_HEADER: u64 = 100_000_000;

/// Mismatches listed in one message before the rest are counted.
const MAX_LISTED: usize = 8;

/// One tensor as a safetensors header describes it.
struct Entry {
    dtype: String,
    shape: Vec<usize>,
}

/// The tensors a safetensors file declares, read from its header alone (nothing is loaded
/// before the names and shapes are known to fit).
fn read_header(path: &Path) -> Result<BTreeMap<String, Entry>> {
    let io = |source| Error::Io {
        path: path.into(),
        source,
    };
    let bad = |why: String| Error::data(path, format!("not a safetensors file: {why}"));
    let (mut f, len) =
        crate::read::open_capped(path, "a weights file", crate::read::MAX_WEIGHTS_BYTES)?;
    let mut n = [0u8; 8];
    f.read_exact(&mut n)
        .map_err(|_| bad(format!("{len} bytes, too short for a header")))?;
    let n = u64::from_le_bytes(n);
    if n > MAX_HEADER || n > len.saturating_sub(8) {
        return Err(bad(format!("the header claims {n} bytes of {len}")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(io)?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("header: {e}")))?;
    let mut end = 0u64;
    let mut out = BTreeMap::new();
    for (name, v) in raw {
        if name == "__metadata__" {
            continue;
        }
        let dtype = v["dtype"].as_str().unwrap_or_default().to_string();
        let shape: Option<Vec<usize>> = serde_json::from_value(v["shape"].clone()).ok();
        let offsets: Option<[u64; 2]> = serde_json::from_value(v["data_offsets"].clone()).ok();
        let (Some(shape), Some([_, stop])) = (shape, offsets) else {
            return Err(bad(format!("tensor '{name}' has no shape or offsets")));
        };
        end = end.max(stop);
        out.insert(name, Entry { dtype, shape });
    }
    let described = end.saturating_add(8 + n);
    if described != len {
        return Err(bad(format!(
            "the header describes {described} bytes, the file has {len} (truncated?)"
        )));
    }
    Ok(out)
}

impl Model {
    /// Parameters and buffers by name, for checkpoints.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.all_tensors()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect()
    }

    /// Loads parameters and buffers saved by [`Model::tensors`] (a safetensors checkpoint,
    /// which may hold other tensors too).
    pub fn load_tensors(&self, path: &Path, tensors: &HashMap<String, Tensor>) -> Result<()> {
        let mine = tensors
            .iter()
            .filter(|(k, _)| self.all_tensors().any(|(n, _)| n == *k));
        if let Some(name) = non_finite_tensor(mine)? {
            return Err(Error::data(
                path,
                format!("tensor '{name}' holds NaN or infinite values"),
            ));
        }
        for (name, v) in self.all_tensors() {
            let t = tensors
                .get(name)
                .ok_or_else(|| Error::saved(path, format!("checkpoint has no tensor '{name}'")))?;
            if t.dims() != v.dims() {
                return Err(Error::saved(
                    path,
                    format!(
                        "tensor '{name}' is {:?}, the model needs {:?}",
                        t.dims(),
                        v.dims()
                    ),
                ));
            }
            v.set(&t.to_dtype(DType::F32)?.to_device(v.device())?)?;
        }
        Ok(())
    }

    /// Starts from pretrained weights in a safetensors file (an `nn.Sequential`'s
    /// `state_dict` saved with `safetensors.torch.save_file`): every parameter and buffer must
    /// be there with the model's shape (f16, bf16 and f64 are converted), nothing else may be
    /// (BatchNorm's `num_batches_tracked` aside), and no value may be NaN or infinite. All
    /// mismatches are listed in one error; on any error the model is unchanged.
    pub fn init_from(&self, path: &Path) -> Result<()> {
        let header = read_header(path)?;
        let mut problems: Vec<(String, String)> = Vec::new();
        for (name, v) in self.all_tensors() {
            match header.get(name) {
                None => problems.push((name.clone(), format!("{name} missing"))),
                Some(e) if !matches!(e.dtype.as_str(), "F16" | "BF16" | "F32" | "F64") => problems
                    .push((
                        name.clone(),
                        format!("{name} is {}, the model needs floats", e.dtype),
                    )),
                Some(e) if e.shape != v.dims() => problems.push((
                    name.clone(),
                    format!("{name} is {:?}, the model needs {:?}", e.shape, v.dims()),
                )),
                Some(_) => {}
            }
        }
        let batch_norms: Vec<String> = self
            .layers
            .iter()
            .enumerate()
            .filter(|(_, l)| l.running.is_some())
            .map(|(i, _)| format!("{i}.num_batches_tracked"))
            .collect();
        for name in header.keys() {
            // lrfind's own checkpoints also hold the optimizer's state and the run's
            // fingerprint (`optim.*`, `meta.*`): a run's checkpoint starts a fine-tuning run
            // as it is.
            if name.starts_with("optim.") || name.starts_with("meta.") {
                continue;
            }
            if !self.all_tensors().any(|(n, _)| n == name) && !batch_norms.contains(name) {
                problems.push((name.clone(), format!("{name} is not in the model")));
            }
        }
        if !problems.is_empty() {
            problems.sort();
            return Err(Error::data(path, self.mismatches(&problems, &header)));
        }
        let bytes =
            crate::read::read_capped(path, "a weights file", crate::read::MAX_WEIGHTS_BYTES)?;
        let loaded = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu).map_err(|e| {
            Error::data(
                path,
                format!("not a safetensors file: {}", first_line(&e.to_string())),
            )
        })?;
        let mut converted = HashMap::new();
        for (name, _) in self.all_tensors() {
            if let Some(t) = loaded.get(name) {
                converted.insert(name.clone(), t.to_dtype(DType::F32)?);
            }
        }
        if let Some(name) = non_finite_tensor(&converted)? {
            return Err(Error::data(
                path,
                format!("tensor '{name}' holds NaN or infinite values"),
            ));
        }
        for (name, v) in self.all_tensors() {
            if let Some(t) = converted.get(name) {
                v.set(&t.to_device(v.device())?)?;
            }
        }
        Ok(())
    }

    /// `2 mismatches: 0.weight is [32, 1, 3, 3], the model needs [16, 1, 3, 3]; 5.bias
    /// missing`, with a hint when the file's names only carry an extra prefix.
    fn mismatches(
        &self,
        problems: &[(String, String)],
        header: &BTreeMap<String, Entry>,
    ) -> String {
        let n = problems.len();
        let mut text = format!(
            "{n} mismatch{}: {}",
            if n == 1 { "" } else { "es" },
            problems
                .iter()
                .take(MAX_LISTED)
                .map(|(_, p)| p.as_str())
                .collect::<Vec<_>>()
                .join("; ")
        );
        if n > MAX_LISTED {
            text.push_str(&format!("; and {} more", n - MAX_LISTED));
        }
        // `model.0.weight`: the state_dict of a module holding the Sequential.
        let prefix = header
            .keys()
            .next()
            .and_then(|k| k.split_once('.'))
            .map(|(p, _)| format!("{p}."));
        if let Some(prefix) = prefix {
            let stripped: Vec<&str> = header
                .keys()
                .filter_map(|k| k.strip_prefix(prefix.as_str()))
                .collect();
            if stripped.len() == header.len()
                && self
                    .all_tensors()
                    .all(|(n, _)| stripped.contains(&n.as_str()))
            {
                text.push_str(&format!(
                    " (every name in the file starts with '{prefix}': save the nn.Sequential's own state_dict)"
                ));
            }
        }
        text
    }
}

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or_default()
}
