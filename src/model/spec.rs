//! Layer lists in PyTorch's vocabulary, as users write them for `--model`:
//! `Conv2d(32, 3, padding=1), ReLU, MaxPool2d(2), Flatten, Linear(128), ReLU, Dropout(0.25), Linear`.
//!
//! Each layer takes PyTorch's constructor arguments in PyTorch's order, with the input size
//! left out (it is inferred, as PyTorch's lazy modules do): `Linear(out_features, bias=True)`,
//! `Conv2d(out_channels, kernel_size, stride=1, padding=0, bias=True)`. Keywords use PyTorch's
//! names; a layer without arguments may drop its parentheses. The same list reads from JSON, an
//! array of `{"type": "Conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1}` objects:
//! both forms become a [`LayerSpec`] through serde, so they accept and refuse the same things.
//! Length and layer count are limited; argument values are scalars or `(h, w)` pairs, so
//! nothing nests deeper than that.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use crate::schedule::cursor::Cursor;

/// Longest layer list accepted, in characters (the compact form).
pub const MAX_LAYERS_LEN: usize = 16_384;

/// Longest JSON layer list accepted, in bytes.
pub const MAX_LAYERS_JSON_LEN: usize = 1 << 20;

/// Most layers in one model.
pub const MAX_LAYERS: usize = 256;

/// Height and width of a kernel, stride, padding or output size: PyTorch's `int` or
/// `(h, w)` tuple (`[h, w]` in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pair {
    /// Along the image's height.
    pub h: usize,
    /// Along its width.
    pub w: usize,
}

impl Pair {
    /// The same size both ways (`3` for a 3×3 kernel).
    pub const fn square(n: usize) -> Self {
        Self { h: n, w: n }
    }
}

impl fmt::Display for Pair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.h == self.w {
            write!(f, "{}", self.h)
        } else {
            write!(f, "({}, {})", self.h, self.w)
        }
    }
}

impl Serialize for Pair {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.h == self.w {
            s.serialize_u64(self.h as u64)
        } else {
            [self.h, self.w].serialize(s)
        }
    }
}

struct PairVisitor;

impl<'de> Visitor<'de> for PairVisitor {
    type Value = Pair;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer or an (h, w) pair of them")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Pair, E> {
        usize::try_from(v)
            .map(Pair::square)
            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Pair, E> {
        u64::try_from(v)
            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
            .and_then(|v| self.visit_u64(v))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Pair, A::Error> {
        let h: usize = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let w: usize = seq
            .next_element()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        if seq.next_element::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::invalid_length(3, &self));
        }
        Ok(Pair { h, w })
    }
}

impl<'de> Deserialize<'de> for Pair {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PairVisitor)
    }
}

/// `Conv2d`'s padding: zeros on each side, or PyTorch's `'same'` / `'valid'`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// This many zeros above and below (`h`), left and right (`w`).
    Zeros(Pair),
    /// Output as large as the input (stride 1 only); for an even kernel the extra row and
    /// column of zeros go below and right, as in PyTorch.
    Same,
    /// No padding (the same as `Zeros(0)`).
    Valid,
}

impl Default for Padding {
    fn default() -> Self {
        Padding::Zeros(Pair::square(0))
    }
}

impl fmt::Display for Padding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Padding::Zeros(p) => write!(f, "{p}"),
            Padding::Same => f.write_str("'same'"),
            Padding::Valid => f.write_str("'valid'"),
        }
    }
}

impl Serialize for Padding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Padding::Zeros(p) => p.serialize(s),
            Padding::Same => s.serialize_str("same"),
            Padding::Valid => s.serialize_str("valid"),
        }
    }
}

struct PaddingVisitor;

impl<'de> Visitor<'de> for PaddingVisitor {
    type Value = Padding;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a non-negative integer, an (h, w) pair, 'same' or 'valid'")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Padding, E> {
        PairVisitor.visit_u64(v).map(Padding::Zeros)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Padding, E> {
        PairVisitor.visit_i64(v).map(Padding::Zeros)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Padding, A::Error> {
        PairVisitor.visit_seq(seq).map(Padding::Zeros)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Padding, E> {
        match v {
            "same" => Ok(Padding::Same),
            "valid" => Ok(Padding::Valid),
            _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
        }
    }
}

impl<'de> Deserialize<'de> for Padding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PaddingVisitor)
    }
}

/// `GELU`'s `approximate`: the exact erf form (PyTorch's default) or the tanh approximation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GeluApproximate {
    /// `x · Φ(x)` with the error function.
    #[default]
    None,
    /// `0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³)))`.
    Tanh,
}

fn yes() -> bool {
    true
}
fn one() -> Pair {
    Pair::square(1)
}
fn zero() -> Pair {
    Pair::square(0)
}
fn norm_eps() -> f64 {
    1e-5
}
fn norm_momentum() -> f64 {
    0.1
}
fn half() -> f64 {
    0.5
}
fn leaky_slope() -> f64 {
    0.01
}

/// One layer of a model, as PyTorch's `torch.nn` class of the same name with the input size
/// inferred. Serialised as `{"type": "Conv2d", "out_channels": 32, ...}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum LayerSpec {
    /// `y = x Wᵀ + b` on the last dimension. Without `out_features` (only the last `Linear`
    /// may leave it out) it gets the model's number of outputs.
    Linear {
        /// Output features (None: the model's outputs).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        out_features: Option<usize>,
        /// Whether it has a bias.
        #[serde(default = "yes")]
        bias: bool,
    },
    /// 2-D convolution over `[C, H, W]` inputs.
    Conv2d {
        /// Output channels.
        out_channels: usize,
        /// Kernel height and width.
        kernel_size: Pair,
        /// Step between windows.
        #[serde(default = "one")]
        stride: Pair,
        /// Zeros around the input.
        #[serde(default)]
        padding: Padding,
        /// Whether it has a bias.
        #[serde(default = "yes")]
        bias: bool,
    },
    /// Maximum over windows (padding counts as -∞).
    MaxPool2d {
        /// Window height and width.
        kernel_size: Pair,
        /// Step between windows (None: the kernel size).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<Pair>,
        /// Implicit -∞ around the input, at most half the kernel.
        #[serde(default = "zero")]
        padding: Pair,
    },
    /// Mean over windows, padding zeros counted (`count_include_pad=True`).
    AvgPool2d {
        /// Window height and width.
        kernel_size: Pair,
        /// Step between windows (None: the kernel size).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        stride: Option<Pair>,
        /// Zeros around the input, at most half the kernel.
        #[serde(default = "zero")]
        padding: Pair,
    },
    /// Mean over `output_size` bins of each channel (PyTorch's bin edges).
    AdaptiveAvgPool2d {
        /// Output height and width.
        output_size: Pair,
    },
    /// Batch normalisation of `[F]` (or `[C, L]`) inputs per feature (channel).
    BatchNorm1d {
        /// Added to the variance.
        #[serde(default = "norm_eps")]
        eps: f64,
        /// Weight of the new batch in the running statistics.
        #[serde(default = "norm_momentum")]
        momentum: f64,
    },
    /// Batch normalisation of `[C, H, W]` inputs per channel.
    BatchNorm2d {
        /// Added to the variance.
        #[serde(default = "norm_eps")]
        eps: f64,
        /// Weight of the new batch in the running statistics.
        #[serde(default = "norm_momentum")]
        momentum: f64,
    },
    /// Normalises each sample over all its values (`normalized_shape` = the input's shape),
    /// with a weight and bias of that shape.
    LayerNorm {
        /// Added to the variance.
        #[serde(default = "norm_eps")]
        eps: f64,
    },
    /// Zeroes each value with probability `p` in training (scaling the rest by 1/(1-p)).
    Dropout {
        /// Probability of zeroing a value.
        #[serde(default = "half")]
        p: f64,
    },
    /// max(x, 0).
    ReLU,
    /// x for x > 0, `negative_slope` · x below.
    LeakyReLU {
        /// Slope for negative inputs.
        #[serde(default = "leaky_slope")]
        negative_slope: f64,
    },
    /// Gaussian error linear unit.
    GELU {
        /// Exact or tanh-approximated.
        #[serde(default)]
        approximate: GeluApproximate,
    },
    /// x · sigmoid(x).
    SiLU,
    /// tanh(x).
    Tanh,
    /// 1 / (1 + e^-x).
    Sigmoid,
    /// Each sample to one dimension.
    Flatten,
}

impl LayerSpec {
    /// Every layer name, as PyTorch spells it.
    pub const NAMES: [&'static str; 16] = [
        "Linear",
        "Conv2d",
        "MaxPool2d",
        "AvgPool2d",
        "AdaptiveAvgPool2d",
        "BatchNorm1d",
        "BatchNorm2d",
        "LayerNorm",
        "Dropout",
        "ReLU",
        "LeakyReLU",
        "GELU",
        "SiLU",
        "Tanh",
        "Sigmoid",
        "Flatten",
    ];

    /// PyTorch's class name.
    pub fn name(&self) -> &'static str {
        match self {
            LayerSpec::Linear { .. } => "Linear",
            LayerSpec::Conv2d { .. } => "Conv2d",
            LayerSpec::MaxPool2d { .. } => "MaxPool2d",
            LayerSpec::AvgPool2d { .. } => "AvgPool2d",
            LayerSpec::AdaptiveAvgPool2d { .. } => "AdaptiveAvgPool2d",
            LayerSpec::BatchNorm1d { .. } => "BatchNorm1d",
            LayerSpec::BatchNorm2d { .. } => "BatchNorm2d",
            LayerSpec::LayerNorm { .. } => "LayerNorm",
            LayerSpec::Dropout { .. } => "Dropout",
            LayerSpec::ReLU => "ReLU",
            LayerSpec::LeakyReLU { .. } => "LeakyReLU",
            LayerSpec::GELU { .. } => "GELU",
            LayerSpec::SiLU => "SiLU",
            LayerSpec::Tanh => "Tanh",
            LayerSpec::Sigmoid => "Sigmoid",
            LayerSpec::Flatten => "Flatten",
        }
    }

    /// A `Linear(out_features)`.
    pub fn linear(out_features: usize) -> Self {
        LayerSpec::Linear {
            out_features: Some(out_features),
            bias: true,
        }
    }

    /// The `Linear` that gets the model's number of outputs.
    pub fn output() -> Self {
        LayerSpec::Linear {
            out_features: None,
            bias: true,
        }
    }

    /// A `Conv2d(out_channels, kernel_size, padding=padding)` with stride 1 and a bias.
    pub fn conv2d(out_channels: usize, kernel_size: usize, padding: usize) -> Self {
        LayerSpec::Conv2d {
            out_channels,
            kernel_size: Pair::square(kernel_size),
            stride: Pair::square(1),
            padding: Padding::Zeros(Pair::square(padding)),
            bias: true,
        }
    }

    /// A `MaxPool2d(kernel_size)`.
    pub fn max_pool2d(kernel_size: usize) -> Self {
        LayerSpec::MaxPool2d {
            kernel_size: Pair::square(kernel_size),
            stride: None,
            padding: Pair::square(0),
        }
    }

    /// PyTorch's positional arguments after the inferred input size, in order (`inplace`
    /// is accepted and ignored: it does not change results).
    fn positional(name: &str) -> &'static [&'static str] {
        match name {
            "Linear" => &["out_features", "bias"],
            "Conv2d" => &["out_channels", "kernel_size", "stride", "padding"],
            "MaxPool2d" | "AvgPool2d" => &["kernel_size", "stride", "padding"],
            "AdaptiveAvgPool2d" => &["output_size"],
            "BatchNorm1d" | "BatchNorm2d" => &["eps", "momentum"],
            "LayerNorm" => &["eps"],
            "Dropout" => &["p", INPLACE],
            "LeakyReLU" => &["negative_slope", INPLACE],
            "ReLU" | "SiLU" => &[INPLACE],
            "GELU" => &["approximate"],
            _ => &[],
        }
    }

    /// Checks the values serde cannot: ranges, and combinations PyTorch refuses.
    pub fn validate(&self) -> Result<(), String> {
        let at_least_1 = |what: &str, v: usize| {
            if v == 0 {
                Err(format!("{what} must be at least 1 (got 0)"))
            } else {
                Ok(())
            }
        };
        let pair_at_least_1 = |what: &str, p: Pair| {
            if p.h == 0 || p.w == 0 {
                Err(format!("{what} must be at least 1 (got {p})"))
            } else {
                Ok(())
            }
        };
        let pool = |k: Pair, s: &Option<Pair>, p: Pair| {
            pair_at_least_1("kernel_size", k)?;
            if let Some(s) = s {
                pair_at_least_1("stride", *s)?;
            }
            if p.h > k.h / 2 || p.w > k.w / 2 {
                return Err(format!(
                    "padding must be at most half the kernel size (got padding={p} for kernel_size={k})"
                ));
            }
            Ok(())
        };
        let eps = |eps: f64| {
            if eps.is_finite() && eps > 0.0 {
                Ok(())
            } else {
                Err(format!("eps must be a positive number (got {eps:?})"))
            }
        };
        match self {
            LayerSpec::Linear { out_features, .. } => {
                out_features.map_or(Ok(()), |o| at_least_1("out_features", o))
            }
            LayerSpec::Conv2d {
                out_channels,
                kernel_size,
                stride,
                padding,
                ..
            } => {
                at_least_1("out_channels", *out_channels)?;
                pair_at_least_1("kernel_size", *kernel_size)?;
                pair_at_least_1("stride", *stride)?;
                if *padding == Padding::Same && *stride != Pair::square(1) {
                    return Err(format!(
                        "padding='same' needs stride 1 (got stride={stride}), as in PyTorch"
                    ));
                }
                Ok(())
            }
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
            }
            | LayerSpec::AvgPool2d {
                kernel_size,
                stride,
                padding,
            } => pool(*kernel_size, stride, *padding),
            LayerSpec::AdaptiveAvgPool2d { output_size } => {
                pair_at_least_1("output_size", *output_size)
            }
            LayerSpec::BatchNorm1d { eps: e, momentum }
            | LayerSpec::BatchNorm2d { eps: e, momentum } => {
                eps(*e)?;
                if !(0.0..=1.0).contains(momentum) {
                    return Err(format!(
                        "momentum must be between 0 and 1 (got {momentum:?})"
                    ));
                }
                Ok(())
            }
            LayerSpec::LayerNorm { eps: e } => eps(*e),
            LayerSpec::Dropout { p } => {
                if (0.0..=1.0).contains(p) {
                    Ok(())
                } else {
                    Err(format!("p must be between 0 and 1 (got {p:?})"))
                }
            }
            LayerSpec::LeakyReLU { negative_slope } => {
                if negative_slope.is_finite() {
                    Ok(())
                } else {
                    Err(format!(
                        "negative_slope must be a finite number (got {negative_slope:?})"
                    ))
                }
            }
            _ => Ok(()),
        }
    }
}

const INPLACE: &str = "inplace";

/// `x` as Python would write it and read it back (`1e-5`, `0.25`, `1.0`).
struct Float(f64);

impl fmt::Display for Float {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// The compact form: required arguments positional, the others as keywords when not at their
/// defaults (`Conv2d(32, 3, padding=1)`, `Linear`).
impl fmt::Display for LayerSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Positional arguments are pushed bare, keywords as `name=value`.
        let mut args: Vec<String> = Vec::new();
        let mut kw =
            |k: &str, v: String| args.push(if k.is_empty() { v } else { format!("{k}={v}") });
        match self {
            LayerSpec::Linear { out_features, bias } => {
                if let Some(o) = out_features {
                    kw("", o.to_string());
                }
                if !bias {
                    kw("bias", "False".into());
                }
            }
            LayerSpec::Conv2d {
                out_channels,
                kernel_size,
                stride,
                padding,
                bias,
            } => {
                kw("", out_channels.to_string());
                kw("", kernel_size.to_string());
                if *stride != one() {
                    kw("stride", stride.to_string());
                }
                if *padding != Padding::default() {
                    kw("padding", padding.to_string());
                }
                if !bias {
                    kw("bias", "False".into());
                }
            }
            LayerSpec::MaxPool2d {
                kernel_size,
                stride,
                padding,
            }
            | LayerSpec::AvgPool2d {
                kernel_size,
                stride,
                padding,
            } => {
                kw("", kernel_size.to_string());
                if let Some(s) = stride {
                    kw("stride", s.to_string());
                }
                if *padding != zero() {
                    kw("padding", padding.to_string());
                }
            }
            LayerSpec::AdaptiveAvgPool2d { output_size } => kw("", output_size.to_string()),
            LayerSpec::BatchNorm1d { eps, momentum } | LayerSpec::BatchNorm2d { eps, momentum } => {
                if *eps != norm_eps() {
                    kw("eps", Float(*eps).to_string());
                }
                if *momentum != norm_momentum() {
                    kw("momentum", Float(*momentum).to_string());
                }
            }
            LayerSpec::LayerNorm { eps } => {
                if *eps != norm_eps() {
                    kw("eps", Float(*eps).to_string());
                }
            }
            LayerSpec::Dropout { p } => {
                if *p != half() {
                    kw("", Float(*p).to_string());
                }
            }
            LayerSpec::LeakyReLU { negative_slope } => {
                if *negative_slope != leaky_slope() {
                    kw("", Float(*negative_slope).to_string());
                }
            }
            LayerSpec::GELU { approximate } => {
                if *approximate == GeluApproximate::Tanh {
                    kw("approximate", "'tanh'".into());
                }
            }
            LayerSpec::ReLU
            | LayerSpec::SiLU
            | LayerSpec::Tanh
            | LayerSpec::Sigmoid
            | LayerSpec::Flatten => {}
        }
        f.write_str(self.name())?;
        if args.is_empty() {
            return Ok(());
        }
        write!(f, "({})", args.join(", "))
    }
}

/// A layer list in the compact form, layers separated by `, `.
pub fn write_layers(layers: &[LayerSpec]) -> String {
    layers
        .iter()
        .map(LayerSpec::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a layer list was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    /// The text does not follow the grammar.
    #[error("cannot parse the layer list at character {position}: {message} (at '{near}')")]
    Syntax {
        /// Character index (0-based) where parsing failed.
        position: usize,
        /// What was expected or found.
        message: String,
        /// The text from there on (a few characters), or "end of input".
        near: String,
    },
    /// One layer is unknown or has a bad argument.
    #[error("layer {index} '{text}'{}: {message}", position.map_or(String::new(), |p| format!(" at character {p}")))]
    Layer {
        /// The layer's position in the list, from 0 (its index in `nn.Sequential`).
        index: usize,
        /// The layer as written.
        text: String,
        /// Where the layer starts in the compact form (None for JSON).
        position: Option<usize>,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// The JSON form is not an array of layer objects.
    #[error("invalid layer list JSON: {0}")]
    Json(String),
}

/// PyTorch's spelling of a layer name given in any case.
fn canonical(name: &str) -> Option<&'static str> {
    LayerSpec::NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(name))
        .copied()
}

fn unknown_layer(name: &str) -> String {
    format!(
        "unknown layer '{name}' (allowed: {})",
        LayerSpec::NAMES.join(", ")
    )
}

/// A typed layer from its name and keyword arguments (positional ones already named).
fn from_fields(name: &'static str, mut fields: Map<String, Value>) -> Result<LayerSpec, String> {
    if let Some(v) = fields.remove(INPLACE) {
        if !v.is_boolean() {
            return Err(format!("inplace must be True or False (got {v})"));
        }
    }
    fields.insert("type".into(), Value::String(name.into()));
    let spec = LayerSpec::deserialize(Value::Object(fields)).map_err(|e| e.to_string())?;
    spec.validate()?;
    Ok(spec)
}

/// Parses the compact form (`Conv2d(32, 3, padding=1), ReLU, Flatten, Linear`).
pub fn parse_layers(text: &str) -> Result<Vec<LayerSpec>, SpecError> {
    let len = text.chars().count();
    if len > MAX_LAYERS_LEN {
        return Err(SpecError::Syntax {
            position: MAX_LAYERS_LEN,
            message: format!(
                "the layer list is {len} characters long; at most {MAX_LAYERS_LEN} are allowed"
            ),
            near: text.chars().skip(MAX_LAYERS_LEN).take(24).collect(),
        });
    }
    let mut p = Parser {
        cur: Cursor::new(text),
    };
    let mut layers = Vec::new();
    loop {
        p.cur.skip_ws();
        if layers.len() == MAX_LAYERS {
            return Err(p.error(&format!("more than {MAX_LAYERS} layers")));
        }
        let start = p.cur.pos;
        let (name, args) = p.layer()?;
        let written: String = p.cur.chars[start..p.cur.pos].iter().collect();
        let layer_error = |message: String| SpecError::Layer {
            index: layers.len(),
            text: written.clone(),
            position: Some(start),
            message,
        };
        let name = canonical(&name).ok_or_else(|| layer_error(unknown_layer(&name)))?;
        layers.push(name_args(name, args).map_err(layer_error)?);
        p.cur.skip_ws();
        match p.cur.peek() {
            None => break,
            Some(',') => {
                p.cur.pos += 1;
                p.cur.skip_ws();
                // A trailing comma, as Python allows.
                if p.cur.peek().is_none() {
                    break;
                }
            }
            Some(_) => return Err(p.error("expected ',' between layers")),
        }
    }
    Ok(layers)
}

/// Parses the JSON form: an array of `{"type": "Linear", "out_features": 128}` objects
/// (layer names in any case).
pub fn layers_from_json(text: &str) -> Result<Vec<LayerSpec>, SpecError> {
    if text.len() > MAX_LAYERS_JSON_LEN {
        return Err(SpecError::Json(format!(
            "{} bytes; at most {MAX_LAYERS_JSON_LEN} are allowed",
            text.len()
        )));
    }
    let items: Vec<Value> =
        serde_json::from_str(text).map_err(|e| SpecError::Json(e.to_string()))?;
    if items.len() > MAX_LAYERS {
        return Err(SpecError::Json(format!(
            "{} layers; at most {MAX_LAYERS} are allowed",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let text = item.to_string();
            let fail = |message: String| SpecError::Layer {
                index,
                text: text.chars().take(80).collect(),
                position: None,
                message,
            };
            let Value::Object(mut fields) = item else {
                return Err(fail(
                    "expected an object such as {\"type\": \"ReLU\"}".into(),
                ));
            };
            let name = match fields.remove("type") {
                Some(Value::String(s)) => canonical(&s).ok_or_else(|| fail(unknown_layer(&s)))?,
                _ => return Err(fail("needs a \"type\" naming the layer".into())),
            };
            from_fields(name, fields).map_err(fail)
        })
        .collect()
}

/// One argument as written: its keyword (None: positional) and value.
struct Arg {
    name: Option<String>,
    value: Value,
}

/// Names the positional arguments in PyTorch's order, then types the layer.
fn name_args(name: &'static str, args: Vec<Arg>) -> Result<LayerSpec, String> {
    let order = LayerSpec::positional(name);
    let mut fields = Map::new();
    let mut positional = 0;
    for arg in args {
        let key = match arg.name {
            Some(k) => k,
            None => {
                let Some(k) = order.get(positional) else {
                    return Err(too_many_positional(name, order, positional + 1, &arg.value));
                };
                positional += 1;
                k.to_string()
            }
        };
        if fields.contains_key(&key) {
            return Err(format!("got multiple values for argument '{key}'"));
        }
        fields.insert(key, arg.value);
    }
    let linear_in_out = name == "Linear" && fields.get("bias").is_some_and(Value::is_number);
    from_fields(name, fields).map_err(|e| {
        if linear_in_out {
            // `Linear(784, 128)`, PyTorch's in_features first: say the input size is inferred.
            format!("{e}; the input size is inferred, so Linear takes out_features only (e.g. Linear(128))")
        } else {
            e
        }
    })
}

fn too_many_positional(name: &str, order: &[&str], got: usize, value: &Value) -> String {
    let shown: Vec<&str> = order.iter().copied().filter(|k| *k != INPLACE).collect();
    let hint = if matches!(name, "Conv2d" | "Linear") {
        "; the input size is inferred and left out"
    } else {
        ""
    };
    match shown.len() {
        0 => format!("{name} takes no arguments (got {value}){hint}"),
        n => format!(
            "{name} takes at most {n} positional argument{} ({}), got {got}{hint}",
            if n == 1 { "" } else { "s" },
            shown.join(", ")
        ),
    }
}

/// Recursive-descent parser for the compact form (a list of layers, no nesting beyond
/// `(h, w)` pairs).
struct Parser {
    cur: Cursor,
}

impl Parser {
    fn error(&self, message: &str) -> SpecError {
        let near: String = self.cur.chars[self.cur.pos.min(self.cur.chars.len())..]
            .iter()
            .take(24)
            .collect();
        SpecError::Syntax {
            position: self.cur.pos,
            message: message.to_string(),
            near: if near.is_empty() {
                "end of input".to_string()
            } else {
                near
            },
        }
    }

    /// `NAME`, `nn.NAME` or `NAME(args)`.
    fn layer(&mut self) -> Result<(String, Vec<Arg>), SpecError> {
        let mut name = self
            .cur
            .ident()
            .ok_or_else(|| self.error("expected a layer name such as Linear or ReLU"))?;
        // `nn.ReLU`, `torch.nn.ReLU`: the class name is the last part.
        while self.cur.peek() == Some('.') {
            self.cur.pos += 1;
            name = self
                .cur
                .ident()
                .ok_or_else(|| self.error("expected a layer name after '.'"))?;
        }
        self.cur.skip_ws();
        if self.cur.peek() != Some('(') {
            return Ok((name, Vec::new()));
        }
        self.cur.pos += 1;
        let mut args = Vec::new();
        loop {
            self.cur.skip_ws();
            if self.cur.peek() == Some(')') {
                self.cur.pos += 1;
                break;
            }
            args.push(self.arg()?);
            self.cur.skip_ws();
            match self.cur.peek() {
                Some(',') => self.cur.pos += 1,
                Some(')') => {
                    self.cur.pos += 1;
                    break;
                }
                _ => return Err(self.error("expected ',' or ')'")),
            }
        }
        Ok((name, args))
    }

    /// `name=value` or `value`.
    fn arg(&mut self) -> Result<Arg, SpecError> {
        let start = self.cur.pos;
        if let Some(id) = self.cur.ident() {
            self.cur.skip_ws();
            if self.cur.peek() == Some('=') {
                self.cur.pos += 1;
                self.cur.skip_ws();
                return Ok(Arg {
                    name: Some(id),
                    value: self.value()?,
                });
            }
            self.cur.pos = start;
        }
        Ok(Arg {
            name: None,
            value: self.value()?,
        })
    }

    /// A number, a quoted string, True/False/None, or an `(h, w)` / `[h, w]` pair of
    /// numbers.
    fn value(&mut self) -> Result<Value, SpecError> {
        match self.cur.peek() {
            Some(open @ ('(' | '[')) => {
                let close = if open == '(' { ')' } else { ']' };
                self.cur.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.cur.skip_ws();
                    if self.cur.peek() == Some(close) {
                        self.cur.pos += 1;
                        break;
                    }
                    if !self
                        .cur
                        .peek()
                        .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.'))
                    {
                        return Err(self.error("expected a number inside the pair"));
                    }
                    items.push(self.number()?);
                    self.cur.skip_ws();
                    match self.cur.peek() {
                        Some(',') => self.cur.pos += 1,
                        Some(c) if c == close => {
                            self.cur.pos += 1;
                            break;
                        }
                        _ => return Err(self.error(&format!("expected ',' or '{close}'"))),
                    }
                }
                Ok(Value::Array(items))
            }
            Some('\'' | '"') => self.string().map(Value::String),
            Some(c) if c.is_ascii_digit() || matches!(c, '-' | '+' | '.') => self.number(),
            _ => {
                let start = self.cur.pos;
                match self.cur.ident().as_deref() {
                    Some("True" | "true") => Ok(Value::Bool(true)),
                    Some("False" | "false") => Ok(Value::Bool(false)),
                    Some("None" | "null") => Ok(Value::Null),
                    _ => {
                        self.cur.pos = start;
                        Err(self.error(
                            "expected a value (a number, a quoted string, True, False, None or (h, w))",
                        ))
                    }
                }
            }
        }
    }

    fn string(&mut self) -> Result<String, SpecError> {
        self.cur
            .quoted(false)
            .ok_or_else(|| self.error("unterminated string"))
    }

    fn number(&mut self) -> Result<Value, SpecError> {
        self.cur
            .number()
            .map_err(|text| self.error(&format!("'{text}' is not a number")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_layer(text: &str) -> LayerSpec {
        let mut v = parse_layers(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(v.len(), 1, "{text}");
        v.remove(0)
    }

    fn err(text: &str) -> String {
        parse_layers(text).unwrap_err().to_string()
    }

    #[test]
    fn every_layer_with_positional_and_keyword_arguments() {
        let conv = |o, k: Pair, s: Pair, p: Padding, bias| LayerSpec::Conv2d {
            out_channels: o,
            kernel_size: k,
            stride: s,
            padding: p,
            bias,
        };
        let sq = Pair::square;
        let cases: Vec<(&str, LayerSpec)> = vec![
            ("Linear", LayerSpec::output()),
            ("Linear(128)", LayerSpec::linear(128)),
            (
                "Linear(out_features=7, bias=False)",
                LayerSpec::Linear {
                    out_features: Some(7),
                    bias: false,
                },
            ),
            (
                "Linear(10, False)",
                LayerSpec::Linear {
                    out_features: Some(10),
                    bias: false,
                },
            ),
            (
                "Conv2d(32, 3)",
                conv(32, sq(3), sq(1), Padding::default(), true),
            ),
            (
                "Conv2d(32, 3, 2, 1)",
                conv(32, sq(3), sq(2), Padding::Zeros(sq(1)), true),
            ),
            (
                "Conv2d(16, (3, 5), stride=(1, 2), padding=(1, 2), bias=False)",
                conv(
                    16,
                    Pair { h: 3, w: 5 },
                    Pair { h: 1, w: 2 },
                    Padding::Zeros(Pair { h: 1, w: 2 }),
                    false,
                ),
            ),
            (
                "Conv2d(8, kernel_size=[3, 3], padding='same')",
                conv(8, sq(3), sq(1), Padding::Same, true),
            ),
            (
                "Conv2d(8, 3, padding=\"valid\")",
                conv(8, sq(3), sq(1), Padding::Valid, true),
            ),
            ("MaxPool2d(2)", LayerSpec::max_pool2d(2)),
            (
                "MaxPool2d(3, 2, 1)",
                LayerSpec::MaxPool2d {
                    kernel_size: sq(3),
                    stride: Some(sq(2)),
                    padding: sq(1),
                },
            ),
            ("MaxPool2d(2, stride=None)", LayerSpec::max_pool2d(2)),
            (
                "AvgPool2d(kernel_size=(2, 4), padding=(1, 2))",
                LayerSpec::AvgPool2d {
                    kernel_size: Pair { h: 2, w: 4 },
                    stride: None,
                    padding: Pair { h: 1, w: 2 },
                },
            ),
            (
                "AdaptiveAvgPool2d((7, 5))",
                LayerSpec::AdaptiveAvgPool2d {
                    output_size: Pair { h: 7, w: 5 },
                },
            ),
            (
                "BatchNorm1d",
                LayerSpec::BatchNorm1d {
                    eps: 1e-5,
                    momentum: 0.1,
                },
            ),
            (
                "BatchNorm2d(1e-3, momentum=0.01)",
                LayerSpec::BatchNorm2d {
                    eps: 1e-3,
                    momentum: 0.01,
                },
            ),
            ("LayerNorm(eps=1e-6)", LayerSpec::LayerNorm { eps: 1e-6 }),
            ("Dropout", LayerSpec::Dropout { p: 0.5 }),
            (
                "Dropout(0.25, inplace=True)",
                LayerSpec::Dropout { p: 0.25 },
            ),
            ("Dropout(p=0)", LayerSpec::Dropout { p: 0.0 }),
            ("ReLU(True)", LayerSpec::ReLU),
            ("nn.ReLU()", LayerSpec::ReLU),
            (
                "LeakyReLU(0.2)",
                LayerSpec::LeakyReLU {
                    negative_slope: 0.2,
                },
            ),
            (
                "leakyrelu",
                LayerSpec::LeakyReLU {
                    negative_slope: 0.01,
                },
            ),
            (
                "GELU",
                LayerSpec::GELU {
                    approximate: GeluApproximate::None,
                },
            ),
            (
                "GELU(approximate='tanh')",
                LayerSpec::GELU {
                    approximate: GeluApproximate::Tanh,
                },
            ),
            ("torch.nn.SiLU", LayerSpec::SiLU),
            ("Tanh", LayerSpec::Tanh),
            ("sigmoid", LayerSpec::Sigmoid),
            ("Flatten()", LayerSpec::Flatten),
        ];
        for (text, want) in cases {
            assert_eq!(one_layer(text), want, "{text}");
        }
    }

    #[test]
    fn the_issue_example_parses_in_order() {
        let v = parse_layers(
            "Conv2d(32, 3, padding=1), ReLU, MaxPool2d(2), Conv2d(64, 3), ReLU, MaxPool2d(2), \
             Flatten, Linear(128), ReLU, Dropout(0.25), Linear",
        )
        .unwrap();
        let names: Vec<&str> = v.iter().map(LayerSpec::name).collect();
        assert_eq!(
            names,
            [
                "Conv2d",
                "ReLU",
                "MaxPool2d",
                "Conv2d",
                "ReLU",
                "MaxPool2d",
                "Flatten",
                "Linear",
                "ReLU",
                "Dropout",
                "Linear"
            ]
        );
        assert_eq!(v[0], LayerSpec::conv2d(32, 3, 1));
        assert_eq!(v[9], LayerSpec::Dropout { p: 0.25 });
        assert_eq!(v[10], LayerSpec::output());
        // Whitespace, newlines and a trailing comma as Python allows them.
        assert_eq!(
            parse_layers(" Flatten ,\n Linear( 10 , ) , ").unwrap(),
            [LayerSpec::Flatten, LayerSpec::linear(10)]
        );
    }

    #[test]
    fn compact_form_round_trips() {
        let text = "Conv2d(32, 3, padding=1), BatchNorm2d, ReLU, MaxPool2d(2), \
                    Conv2d(64, (3, 5), stride=(2, 1), padding='same', bias=False), \
                    BatchNorm2d(eps=0.001, momentum=0.01), LeakyReLU(0.2), \
                    AvgPool2d(3, stride=2, padding=1), MaxPool2d(3, stride=1, padding=(1, 0)), \
                    AdaptiveAvgPool2d((4, 3)), Conv2d(8, 1, padding='valid'), Flatten, \
                    LayerNorm(eps=1e-6), Linear(128), GELU(approximate='tanh'), Dropout(0.25), \
                    Linear(64, bias=False), SiLU, BatchNorm1d, Tanh, Dropout, Sigmoid, GELU, Linear";
        // 'same' with stride 2 is refused; write the round trip on a valid list.
        let text = text.replace(
            "stride=(2, 1), padding='same'",
            "stride=(2, 1), padding=(1, 2)",
        );
        let layers = parse_layers(&text).unwrap();
        let written = write_layers(&layers);
        assert_eq!(
            written,
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        assert_eq!(parse_layers(&written).unwrap(), layers);
        // And through JSON.
        let json = serde_json::to_string(&layers).unwrap();
        assert_eq!(layers_from_json(&json).unwrap(), layers);
    }

    #[test]
    fn json_form_reads_the_same_layers() {
        let json = r#"[
            {"type": "Conv2d", "out_channels": 32, "kernel_size": 3, "padding": 1},
            {"type": "relu"},
            {"type": "MaxPool2d", "kernel_size": [2, 2]},
            {"type": "Flatten"},
            {"type": "Dropout", "p": 0.25},
            {"type": "Linear"}
        ]"#;
        assert_eq!(
            layers_from_json(json).unwrap(),
            parse_layers(
                "Conv2d(32, 3, padding=1), ReLU, MaxPool2d(2), Flatten, Dropout(0.25), Linear"
            )
            .unwrap()
        );
        let v = serde_json::to_value(LayerSpec::conv2d(32, 3, 1)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"type": "Conv2d", "out_channels": 32, "kernel_size": 3,
                               "stride": 1, "padding": 1, "bias": true})
        );
        let e = |j: &str| layers_from_json(j).unwrap_err().to_string();
        assert_eq!(
            e(r#"[{"type": "Linear", "out_features": 0}]"#),
            r#"layer 0 '{"out_features":0,"type":"Linear"}': out_features must be at least 1 (got 0)"#
        );
        assert_eq!(
            e(r#"[{"type": "ReLU"}, {"type": "Conv2d", "out_channels": 4, "kernel": 3}]"#),
            "layer 1 '{\"kernel\":3,\"out_channels\":4,\"type\":\"Conv2d\"}': unknown field `kernel`, \
             expected one of `out_channels`, `kernel_size`, `stride`, `padding`, `bias`"
        );
        assert!(e(r#"[{"type": "Conv3d"}]"#)
            .contains("unknown layer 'Conv3d' (allowed: Linear, Conv2d,"));
        assert!(e(r#"[{"out_features": 3}]"#).contains("needs a \"type\""));
        assert!(e(r#"["ReLU"]"#).contains("expected an object"));
        assert!(e(r#"{"type": "ReLU"}"#).starts_with("invalid layer list JSON: invalid type: map"));
        assert!(
            e(r#"[{"type": "MaxPool2d", "kernel_size": [2, 2, 2]}]"#).contains("an (h, w) pair")
        );
    }

    #[test]
    fn every_name_is_a_variant_and_back() {
        for name in LayerSpec::NAMES {
            let spec = match name {
                "Conv2d" => LayerSpec::conv2d(1, 1, 0),
                "MaxPool2d" | "AvgPool2d" => one_layer(&format!("{name}(2)")),
                "AdaptiveAvgPool2d" => one_layer(&format!("{name}(1)")),
                _ => one_layer(name),
            };
            assert_eq!(spec.name(), name);
            // Every positional name is a field serde knows (two are skipped when None).
            let v = serde_json::to_value(&spec).unwrap();
            for k in LayerSpec::positional(name) {
                let known = v.as_object().unwrap().contains_key(*k)
                    || [INPLACE, "out_features", "stride"].contains(k);
                assert!(known, "{name}.{k}");
            }
        }
    }

    #[test]
    fn syntax_errors_name_the_position() {
        assert_eq!(
            err("Conv2d(32, 3 padding=1), ReLU"),
            "cannot parse the layer list at character 13: expected ',' or ')' (at 'padding=1), ReLU')"
        );
        assert_eq!(
            err("Flatten Linear"),
            "cannot parse the layer list at character 8: expected ',' between layers (at 'Linear')"
        );
        assert_eq!(
            err("Flatten, , Linear"),
            "cannot parse the layer list at character 9: expected a layer name such as Linear or ReLU (at ', Linear')"
        );
        assert_eq!(
            err(""),
            "cannot parse the layer list at character 0: expected a layer name such as Linear or ReLU (at 'end of input')"
        );
        assert_eq!(
            err("Linear(1.2.3)"),
            "cannot parse the layer list at character 7: '1.2.3' is not a number (at '1.2.3)')"
        );
        assert_eq!(
            err("Conv2d(8, (3, x))"),
            "cannot parse the layer list at character 14: expected a number inside the pair (at 'x))')"
        );
        assert_eq!(
            err("GELU(approximate='tanh)"),
            "cannot parse the layer list at character 17: unterminated string (at ''tanh)')"
        );
        assert_eq!(
            err("Linear(relu)"),
            "cannot parse the layer list at character 7: expected a value (a number, a quoted string, True, False, None or (h, w)) (at 'relu)')"
        );
    }

    #[test]
    fn layer_errors_name_index_text_and_what_is_allowed() {
        assert_eq!(
            err("Flatten, Conv3d(8, 3)"),
            "layer 1 'Conv3d(8, 3)' at character 9: unknown layer 'Conv3d' (allowed: Linear, Conv2d, \
             MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, BatchNorm1d, BatchNorm2d, LayerNorm, Dropout, \
             ReLU, LeakyReLU, GELU, SiLU, Tanh, Sigmoid, Flatten)"
        );
        assert_eq!(
            err("Conv2d(32, 3, paddin=1)"),
            "layer 0 'Conv2d(32, 3, paddin=1)' at character 0: unknown field `paddin`, expected one \
             of `out_channels`, `kernel_size`, `stride`, `padding`, `bias`"
        );
        assert_eq!(
            err("ReLU, Conv2d(32)"),
            "layer 1 'Conv2d(32)' at character 6: missing field `kernel_size`"
        );
        assert_eq!(
            err("Conv2d(64, 3, stride=0)"),
            "layer 0 'Conv2d(64, 3, stride=0)' at character 0: stride must be at least 1 (got 0)"
        );
        assert_eq!(
            err("Conv2d(64, 3, 2, 'same')"),
            "layer 0 'Conv2d(64, 3, 2, 'same')' at character 0: padding='same' needs stride 1 (got stride=2), as in PyTorch"
        );
        assert_eq!(
            err("MaxPool2d(2, padding=2)"),
            "layer 0 'MaxPool2d(2, padding=2)' at character 0: padding must be at most half the kernel size (got padding=2 for kernel_size=2)"
        );
        assert_eq!(
            err("Linear(784, 128)"),
            "layer 0 'Linear(784, 128)' at character 0: invalid type: integer `128`, expected a boolean; \
             the input size is inferred, so Linear takes out_features only (e.g. Linear(128))"
        );
        assert_eq!(
            err("Linear(-3)"),
            "layer 0 'Linear(-3)' at character 0: invalid value: integer `-3`, expected usize"
        );
        assert_eq!(
            err("Dropout(1.5)"),
            "layer 0 'Dropout(1.5)' at character 0: p must be between 0 and 1 (got 1.5)"
        );
        assert_eq!(
            err("BatchNorm2d(momentum=2)"),
            "layer 0 'BatchNorm2d(momentum=2)' at character 0: momentum must be between 0 and 1 (got 2.0)"
        );
        assert_eq!(
            err("LayerNorm(0)"),
            "layer 0 'LayerNorm(0)' at character 0: eps must be a positive number (got 0.0)"
        );
        assert_eq!(
            err("ReLU(0.5)"),
            "layer 0 'ReLU(0.5)' at character 0: inplace must be True or False (got 0.5)"
        );
        assert_eq!(
            err("Tanh(1)"),
            "layer 0 'Tanh(1)' at character 0: Tanh takes no arguments (got 1)"
        );
        assert_eq!(
            err("Conv2d(1, 32, 3, 1, 1)"),
            "layer 0 'Conv2d(1, 32, 3, 1, 1)' at character 0: Conv2d takes at most 4 positional \
             arguments (out_channels, kernel_size, stride, padding), got 5; the input size is inferred and left out"
        );
        assert_eq!(
            err("Linear(10, out_features=3)"),
            "layer 0 'Linear(10, out_features=3)' at character 0: got multiple values for argument 'out_features'"
        );
        assert_eq!(
            err("GELU(approximate='fast')"),
            "layer 0 'GELU(approximate='fast')' at character 0: unknown variant `fast`, expected `none` or `tanh`"
        );
    }

    /// In a thread with a normal (2 MiB) stack.
    #[test]
    fn long_lists_fail_cleanly() {
        std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(|| {
                let many = vec!["ReLU"; MAX_LAYERS + 1].join(",");
                assert_eq!(
                    err(&many),
                    "cannot parse the layer list at character 1280: more than 256 layers (at 'ReLU')"
                );
                assert_eq!(parse_layers(&vec!["ReLU"; MAX_LAYERS].join(",")).unwrap().len(), 256);
                let long = format!("Linear({}1)", "0".repeat(20_000));
                assert!(err(&long).starts_with(
                    "cannot parse the layer list at character 16384: the layer list is 20009 characters long; at most 16384 are allowed"
                ));
                let nested = format!("Linear({}1{})", "(".repeat(5000), ")".repeat(5000));
                assert!(err(&nested).contains("expected a number inside the pair"));
                assert!(err("Linear(99999999999999999999)").contains("expected usize"));
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
