//! Which model: a named preset (`mlp`, `linear`, `cnn`, `lenet`) or a layer list. Every preset
//! is a layer list too ([`ModelConfig::layer_list`]), so one builder serves them all.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::spec::{self, LayerSpec, SpecError};
use crate::error::{Error, Result, Scope};

/// Which architecture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum ModelConfig {
    /// Fully connected, ReLU between layers: `Flatten, Linear(h1), ReLU, …, Linear`.
    Mlp {
        /// Width of each hidden layer, input side first.
        hidden: Vec<usize>,
    },
    /// Multinomial logistic regression: `Flatten, Linear`.
    Linear,
    /// `Conv2d(32, 3), ReLU, MaxPool2d(2), Conv2d(64, 3), ReLU, MaxPool2d(2), Flatten,
    /// Linear(128), ReLU, Linear`.
    Cnn,
    /// LeNet-5 for 1×28×28 images in its modern form, as in the classic Fashion-MNIST
    /// experiments with PyTorch and Lightning: ReLU and max pooling (not LeCun's 1998
    /// tanh and trainable subsampling, nor d2l's sigmoid and average pooling), the first
    /// convolution padded so 28×28 inputs keep LeNet's 32×32 geometry: `Conv2d(6, 5,
    /// padding=2), ReLU, MaxPool2d(2), Conv2d(16, 5), ReLU, MaxPool2d(2), Flatten,
    /// Linear(120), ReLU, Linear(84), ReLU, Linear` (61,706 parameters for 10 classes).
    Lenet,
    /// Any layer list, in PyTorch's vocabulary.
    Layers {
        /// The layers, input side first.
        layers: Vec<LayerSpec>,
    },
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig::Mlp {
            hidden: vec![256, 128],
        }
    }
}

/// The presets' names, as `parse` accepts them.
pub const PRESETS: [&str; 4] = ["mlp", "linear", "cnn", "lenet"];

/// Longest layer list shown whole in a model's name; longer ones show about
/// [`NAME_PREFIX`] characters of their first layers and the count.
const NAME_LEN: usize = 60;
const NAME_PREFIX: usize = 48;

impl ModelConfig {
    /// From a preset's name (`mlp`, `linear`, `cnn`, `lenet`, any case) and, for `mlp`, its
    /// hidden widths (`256,128`); or from a layer list, compact (`Flatten, Linear(128), ReLU,
    /// Linear`) or JSON (`[{"type": "Flatten"}, …]`). `hidden` is ignored unless the model is
    /// `mlp`.
    pub fn parse(text: &str, hidden: &str) -> Result<Self> {
        let t = text.trim();
        let m = match t.to_ascii_lowercase().as_str() {
            "mlp" => ModelConfig::Mlp {
                hidden: parse_hidden(hidden)?,
            },
            "linear" => ModelConfig::Linear,
            "cnn" => ModelConfig::Cnn,
            "lenet" => ModelConfig::Lenet,
            _ => {
                let layers = if t.starts_with('[') {
                    spec::layers_from_json(t)
                } else {
                    spec::parse_layers(t)
                };
                ModelConfig::Layers {
                    layers: layers.map_err(|e| unknown_or_bad(t, e))?,
                }
            }
        };
        m.validate()?;
        Ok(m)
    }

    /// Reads a `--model-file`: a JSON array of layers, or a model object as reports store it
    /// (`{"kind": "mlp", "hidden": [256, 128]}`).
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            crate::read::read_text_capped(path, "a model file", spec::MAX_LAYERS_JSON_LEN as u64)?;
        let m = if text.trim_start().starts_with('{') {
            serde_json::from_str::<ModelConfig>(&text)
                .map_err(|e| Error::data(path, format!("invalid model JSON: {e}")))?
        } else {
            ModelConfig::Layers {
                layers: spec::layers_from_json(&text)
                    .map_err(|e| Error::data(path, e.to_string()))?,
            }
        };
        m.validate().map_err(|e| Error::data(path, e.to_string()))?;
        Ok(m)
    }

    /// A short name for titles and reports (`mlp(256-128)`, `lenet`, the layer list cut
    /// short).
    pub fn name(&self) -> String {
        match self {
            ModelConfig::Mlp { hidden } => format!(
                "mlp({})",
                hidden
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join("-")
            ),
            ModelConfig::Linear => "linear".into(),
            ModelConfig::Cnn => "cnn".into(),
            ModelConfig::Lenet => "lenet".into(),
            ModelConfig::Layers { layers } => {
                let full = spec::write_layers(layers);
                if full.chars().count() <= NAME_LEN {
                    return full;
                }
                let mut out = String::new();
                for l in layers {
                    let next = l.to_string();
                    if out.chars().count() + next.chars().count() > NAME_PREFIX {
                        break;
                    }
                    out.push_str(&next);
                    out.push_str(", ");
                }
                format!("{out}… ({} layers)", layers.len())
            }
        }
    }

    /// The layers this model is made of.
    pub fn layer_list(&self) -> Vec<LayerSpec> {
        use LayerSpec as L;
        match self {
            ModelConfig::Mlp { hidden } => std::iter::once(L::Flatten)
                .chain(hidden.iter().flat_map(|&h| [L::linear(h), L::ReLU]))
                .chain([L::output()])
                .collect(),
            ModelConfig::Linear => vec![L::Flatten, L::output()],
            ModelConfig::Cnn => vec![
                L::conv2d(32, 3, 0),
                L::ReLU,
                L::max_pool2d(2),
                L::conv2d(64, 3, 0),
                L::ReLU,
                L::max_pool2d(2),
                L::Flatten,
                L::linear(128),
                L::ReLU,
                L::output(),
            ],
            ModelConfig::Lenet => vec![
                L::conv2d(6, 5, 2),
                L::ReLU,
                L::max_pool2d(2),
                L::conv2d(16, 5, 0),
                L::ReLU,
                L::max_pool2d(2),
                L::Flatten,
                L::linear(120),
                L::ReLU,
                L::linear(84),
                L::ReLU,
                L::output(),
            ],
            ModelConfig::Layers { layers } => layers.clone(),
        }
    }

    /// Checks a model read from flags or a file before any data is loaded: widths at least 1,
    /// every layer's arguments in range, and (`mlp`, whose size hardly depends on the input)
    /// the size within [`super::MAX_MODEL_BYTES`] for MNIST-sized input.
    /// [`super::Model::new`] checks shapes and size again with the real input.
    pub fn validate(&self) -> Result<()> {
        self.check_layers()?;
        if matches!(self, ModelConfig::Mlp { .. }) {
            let layers = self.layer_list();
            let plan = super::plan::plan(&layers, &[784], 10)
                .map_err(|(i, message)| self.layer_error(i, &layers[i], message))?;
            super::plan::check_size(self, &plan)?;
            super::plan::check_values(&plan)
                .map_err(|(i, message)| self.layer_error(i, &layers[i], message))?;
        }
        Ok(())
    }

    /// The checks that need no input shape: widths, layer count, each layer's arguments.
    pub(crate) fn check_layers(&self) -> Result<()> {
        if let ModelConfig::Mlp { hidden } = self {
            if hidden.is_empty() || hidden.contains(&0) {
                return Err(bad_hidden(&widths(hidden)));
            }
        }
        let layers = self.layer_list();
        if layers.is_empty() {
            return Err(self.error("the layer list is empty"));
        }
        if layers.len() > spec::MAX_LAYERS {
            return Err(self.error(format!(
                "{} layers; at most {} are allowed",
                layers.len(),
                spec::MAX_LAYERS
            )));
        }
        for (index, layer) in layers.iter().enumerate() {
            layer
                .validate()
                .map_err(|message| self.layer_error(index, layer, message))?;
        }
        Ok(())
    }

    /// A setting error about this model: the field is `hidden` for `mlp`, `kind` for the
    /// other presets and `layers` for a layer list.
    pub(crate) fn error(&self, message: impl Into<String>) -> Error {
        match self {
            ModelConfig::Mlp { hidden } => {
                Error::setting(Scope::Model, "hidden", widths(hidden), message)
            }
            ModelConfig::Layers { layers } => Error::setting(
                Scope::Model,
                "layers",
                short(&spec::write_layers(layers)),
                message,
            ),
            other => Error::setting(Scope::Model, "kind", other.name(), message),
        }
    }

    /// [`ModelConfig::error`] about layer `index`, naming it as written.
    pub(crate) fn layer_error(&self, index: usize, layer: &LayerSpec, message: String) -> Error {
        self.error(
            SpecError::Layer {
                index,
                text: layer.to_string(),
                position: None,
                message,
            }
            .to_string(),
        )
    }
}

/// A value to echo in a one-line message: long layer lists cut to 60 characters.
fn short(text: &str) -> String {
    if text.chars().count() <= 60 {
        text.to_string()
    } else {
        format!("{}…", text.chars().take(59).collect::<String>())
    }
}

/// The error for a text that is neither a preset nor a layer list: a single unknown word
/// reads as a model name, anything else as a layer list with a fault.
fn unknown_or_bad(text: &str, e: SpecError) -> Error {
    let word = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if word {
        return Error::setting(
            Scope::Model,
            "kind",
            text,
            format!(
                "unknown model (allowed: {}, or a layer list such as 'Flatten, Linear(128), ReLU, Linear' with layers {})",
                PRESETS.join(", "),
                LayerSpec::NAMES.join(", ")
            ),
        );
    }
    Error::setting(Scope::Model, "layers", short(text), e.to_string())
}

/// `256,128`.
fn widths(hidden: &[usize]) -> String {
    hidden
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn bad_hidden(value: &str) -> Error {
    Error::setting(
        Scope::Model,
        "hidden",
        value,
        "expected comma-separated positive layer widths, e.g. 256,128",
    )
}

fn parse_hidden(s: &str) -> Result<Vec<usize>> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|_| bad_hidden(s)))
        .collect::<Result<_>>()?;
    if v.is_empty() || v.contains(&0) {
        return Err(bad_hidden(s));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_and_layer_lists_parse() {
        assert_eq!(
            ModelConfig::parse("MLP", "64").unwrap(),
            ModelConfig::Mlp { hidden: vec![64] }
        );
        assert_eq!(
            ModelConfig::parse(" LeNet ", "").unwrap(),
            ModelConfig::Lenet
        );
        // `Linear` alone is the preset (Flatten, Linear), which is what it would mean.
        assert_eq!(
            ModelConfig::parse("Linear", "").unwrap(),
            ModelConfig::Linear
        );
        let m = ModelConfig::parse("Flatten, Linear(32), ReLU, Linear", "x").unwrap();
        assert_eq!(
            m,
            ModelConfig::Layers {
                layers: vec![
                    LayerSpec::Flatten,
                    LayerSpec::linear(32),
                    LayerSpec::ReLU,
                    LayerSpec::output()
                ]
            }
        );
        let json = ModelConfig::parse(r#"[{"type": "Flatten"}, {"type": "Linear"}]"#, "").unwrap();
        assert_eq!(json.layer_list(), ModelConfig::Linear.layer_list());
        assert_eq!(m.name(), "Flatten, Linear(32), ReLU, Linear");
        let long = ModelConfig::parse(
            "Conv2d(32, 3, padding=1), ReLU, MaxPool2d(2), Conv2d(64, 3), ReLU, MaxPool2d(2), \
             Flatten, Linear(128), ReLU, Dropout(0.25), Linear",
            "",
        )
        .unwrap();
        assert_eq!(
            long.name(),
            "Conv2d(32, 3, padding=1), ReLU, MaxPool2d(2), … (11 layers)"
        );
        assert_eq!(ModelConfig::default().name(), "mlp(256-128)");
    }

    #[test]
    fn serde_keeps_the_old_forms_and_adds_two() {
        for (m, json) in [
            (
                ModelConfig::Mlp {
                    hidden: vec![256, 128],
                },
                r#"{"kind":"mlp","hidden":[256,128]}"#,
            ),
            (ModelConfig::Linear, r#"{"kind":"linear"}"#),
            (ModelConfig::Cnn, r#"{"kind":"cnn"}"#),
            (ModelConfig::Lenet, r#"{"kind":"lenet"}"#),
            (
                ModelConfig::Layers {
                    layers: vec![
                        LayerSpec::Flatten,
                        LayerSpec::Dropout { p: 0.1 },
                        LayerSpec::output(),
                    ],
                },
                r#"{"kind":"layers","layers":[{"type":"Flatten"},{"type":"Dropout","p":0.1},{"type":"Linear","bias":true}]}"#,
            ),
        ] {
            assert_eq!(serde_json::to_string(&m).unwrap(), json);
            assert_eq!(serde_json::from_str::<ModelConfig>(json).unwrap(), m);
        }
    }

    #[test]
    fn presets_lower_to_their_layer_lists() {
        let text = |m: &ModelConfig| spec::write_layers(&m.layer_list());
        assert_eq!(
            text(&ModelConfig::default()),
            "Flatten, Linear(256), ReLU, Linear(128), ReLU, Linear"
        );
        assert_eq!(text(&ModelConfig::Linear), "Flatten, Linear");
        assert_eq!(
            text(&ModelConfig::Cnn),
            "Conv2d(32, 3), ReLU, MaxPool2d(2), Conv2d(64, 3), ReLU, MaxPool2d(2), Flatten, \
             Linear(128), ReLU, Linear"
        );
        assert_eq!(
            text(&ModelConfig::Lenet),
            "Conv2d(6, 5, padding=2), ReLU, MaxPool2d(2), Conv2d(16, 5), ReLU, MaxPool2d(2), \
             Flatten, Linear(120), ReLU, Linear(84), ReLU, Linear"
        );
    }

    #[test]
    fn bad_models_are_explained() {
        let e = |t: &str| ModelConfig::parse(t, "256").unwrap_err().to_string();
        assert!(e("resnet").starts_with(
            "kind = resnet: unknown model (allowed: mlp, linear, cnn, lenet, or a layer list such as"
        ));
        assert!(e("resnet").ends_with("Tanh, Sigmoid, Flatten)"));
        assert_eq!(
            e("Flatten, Linear(0)"),
            "layers = Flatten, Linear(0): layer 1 'Linear(0)' at character 9: out_features must be at least 1 (got 0)"
        );
        assert_eq!(
            ModelConfig::parse("mlp", "256,0").unwrap_err().to_string(),
            "hidden = 256,0: expected comma-separated positive layer widths, e.g. 256,128"
        );
        assert_eq!(
            ModelConfig::parse("mlp", "100000,100000").unwrap_err().to_string(),
            "hidden = 100000,100000: the mlp(100000-100000) model would need 150.2 GiB of memory for \
             its weights, gradients and optimizer state; the limit is 4 GiB (at most 268435456 parameters)"
        );
        let bad = ModelConfig::Layers {
            layers: vec![LayerSpec::Dropout { p: 2.0 }],
        };
        assert_eq!(
            bad.validate().unwrap_err().to_string(),
            "layers = Dropout(2.0): layer 0 'Dropout(2.0)': p must be between 0 and 1 (got 2.0)"
        );
    }

    #[test]
    fn model_files_take_a_layer_array_or_a_model_object() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.json");
        std::fs::write(&p, r#"[{"type": "Flatten"}, {"type": "Linear", "out_features": 16}, {"type": "ReLU"}, {"type": "Linear"}]"#).unwrap();
        assert_eq!(
            spec::write_layers(&ModelConfig::from_file(&p).unwrap().layer_list()),
            "Flatten, Linear(16), ReLU, Linear"
        );
        std::fs::write(&p, r#"{"kind": "lenet"}"#).unwrap();
        assert_eq!(ModelConfig::from_file(&p).unwrap(), ModelConfig::Lenet);
        std::fs::write(&p, r#"[{"type": "Linear", "out_features": 0}]"#).unwrap();
        assert_eq!(
            ModelConfig::from_file(&p).unwrap_err().to_string(),
            format!(
                "{}: layer 0 '{{\"out_features\":0,\"type\":\"Linear\"}}': out_features must be at least 1 (got 0)",
                p.display()
            )
        );
        std::fs::write(&p, "[{").unwrap();
        assert!(ModelConfig::from_file(&p)
            .unwrap_err()
            .to_string()
            .contains("invalid layer list JSON: EOF while parsing"));
    }
}
