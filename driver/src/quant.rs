//! Post-training quantisation: a float MLP and calibration inputs become [`Layer`]s the device
//! runs (symmetric int8, zero point 0, one [`Quant`] per layer).
//!
//! ```text
//!   float x ──► x_q = round(x / s_x)            s_x: the input scale (given)
//!                │
//!   layer i:     │  W_q = round(W / s_w)        s_w = max|W| / 127        (per tensor)
//!                │  b_q = round(b / (s_x·s_w))  int32: the accumulator's own scale
//!                ▼
//!            acc = x_q·W_q + b_q  ≈ (x·W + b) / (s_x·s_w)
//!                │
//!                ├─ int8 layer: y_q = act(acc · M / 2^S), M / 2^S ≈ s_x·s_w / s_y
//!                │              s_y = range / 127, range calibrated on the float activations
//!                │              (max, or a percentile, of |y| over the calibration inputs)
//!                │              then s_x := s_y for the next layer
//!                └─ last layer, OutputKind::Raw: acc itself, int32 logits ≈ logit / (s_x·s_w)
//! ```
//!
//! Requantisation is [`Quant::from_scale`] (`spec::arith`): the closest `M / 2^S` to the real
//! scale. The arithmetic itself is never re-implemented here; [`QuantizedMlp::golden`] chains
//! [`spec::golden::layer`] / [`spec::golden::layer_raw`] on the host and [`QuantizedMlp::run`]
//! runs the same layers through a [`Device`], which must agree bit for bit.
//!
//! This module holds no training code: a [`FloatLayer`] is only weights, biases and a ReLU
//! flag, and its [`FloatLayer::forward`] (used for calibration) is a plain, sequential loop, so
//! its results are the same on every machine.

use crate::compile::{is_zero, layer_from_parts, layer_v2_parts, row_major, CompileError, Layer, OutputKind};
use crate::device::{Device, DriverError};
use crate::program::Output;
use crate::transport::Transport;
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use spec::{ColumnScale, Quant, QuantError, ShapeError};
use thiserror::Error;

/// Largest magnitude of a symmetric int8 value (-127..=127: -128 is not used, so that the
/// range is symmetric and negation is exact).
pub const QMAX: f64 = 127.0;

/// One float layer `y = act(x·W + b)`: K x N weights, N biases, ReLU or not.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatLayer {
    /// K x N weights.
    pub weights: DMatrix<f32>,
    /// N biases.
    pub bias: DVector<f32>,
    /// Apply ReLU to the output.
    pub relu: bool,
}

impl FloatLayer {
    /// Inputs (rows of W).
    pub fn k(&self) -> usize {
        self.weights.nrows()
    }

    /// Outputs (columns of W).
    pub fn n(&self) -> usize {
        self.weights.ncols()
    }

    /// `act(x·W + b)` for M x K inputs. A sequential loop in a fixed order (bias first, then
    /// k = 0, 1, ...), so the result is bit-identical on every machine; no BLAS, no threads.
    pub fn forward(&self, x: &DMatrix<f32>) -> Result<DMatrix<f32>, ShapeError> {
        if x.ncols() != self.k() {
            return Err(ShapeError::Inner {
                x_rows: x.nrows(),
                x_cols: x.ncols(),
                w_rows: self.k(),
                w_cols: self.n(),
            });
        }
        if self.bias.len() != self.n() {
            return Err(ShapeError::Bias { bias: self.bias.len(), n: self.n() });
        }
        let mut y = DMatrix::zeros(x.nrows(), self.n());
        let mut row = vec![0f32; self.n()];
        for m in 0..x.nrows() {
            row.copy_from_slice(self.bias.as_slice());
            for k in 0..self.k() {
                let xv = x[(m, k)];
                for (n, out) in row.iter_mut().enumerate() {
                    *out += xv * self.weights[(k, n)];
                }
            }
            for (n, v) in row.iter().enumerate() {
                y[(m, n)] = if self.relu { v.max(0.0) } else { *v };
            }
        }
        Ok(y)
    }
}

/// How the range of a layer's output is taken from the calibration activations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Calibration {
    /// The largest |y|: nothing saturates on the calibration set.
    Max,
    /// The p-th percentile of |y| (0 < p <= 100): outliers saturate, the rest gets finer steps.
    Percentile(f64),
}

impl Calibration {
    /// The range of `values` (absolute values are taken). An empty or all-zero tensor has
    /// range 0.
    pub fn range(&self, values: &[f32]) -> Result<f64, QuantizeError> {
        if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
            return Err(QuantizeError::NotFinite { what: "calibration activation", value: f64::from(*bad) });
        }
        let mut abs: Vec<f64> = values.iter().map(|v| f64::from(v.abs())).collect();
        match *self {
            Calibration::Max => Ok(abs.iter().copied().fold(0.0, f64::max)),
            Calibration::Percentile(p) => {
                if !(p > 0.0 && p <= 100.0) {
                    return Err(QuantizeError::Percentile(p));
                }
                if abs.is_empty() {
                    return Ok(0.0);
                }
                abs.sort_by(f64::total_cmp);
                // nearest rank: the smallest value with at least p% of the values at or below it
                let rank = ((p / 100.0) * abs.len() as f64).ceil() as usize;
                Ok(abs[rank.clamp(1, abs.len()) - 1])
            }
        }
    }
}

/// The symmetric scale that maps `[-range, range]` onto `[-127, 127]`: `range / 127`. A zero
/// range (a tensor that is all zeros) gets scale `1 / 127`, any positive scale being exact then.
pub fn symmetric_scale(range: f64) -> f64 {
    if range > 0.0 {
        range / QMAX
    } else {
        1.0 / QMAX
    }
}

/// `clamp(round(v / scale), -127, 127)`, rounding half away from zero.
pub fn quantize_i8(v: f64, scale: f64) -> i8 {
    (v / scale).round().clamp(-QMAX, QMAX) as i8
}

/// ONNX's `QuantizeLinear` (shared by onnxruntime, and PyTorch's and TFLite's converters up
/// to ties): `saturate(round_half_even(v / scale) + zero_point)` to int8, with `v / scale` in
/// float32 as onnxruntime computes it. NaN gives 0: callers refuse non-finite inputs first.
pub fn quantize_linear(v: f32, scale: f32, zero_point: i8) -> i8 {
    ((v / scale).round_ties_even() + f32::from(zero_point)).clamp(-128.0, 127.0) as i8
}

/// `round(v / scale)` as int32, or `None` if it does not fit.
pub fn quantize_i32(v: f64, scale: f64) -> Option<i32> {
    let q = (v / scale).round();
    (q >= f64::from(i32::MIN) && q <= f64::from(i32::MAX)).then_some(q as i32)
}

/// The requantisation of a layer: the closest `M / 2^S` to `s_in·s_w / s_out`, with ReLU.
pub fn requantization(s_in: f64, s_w: f64, s_out: f64, relu: bool) -> Result<Quant, QuantError> {
    Ok(Quant::from_scale(s_in * s_w / s_out)?.with_relu(relu))
}

/// Options of [`quantize_mlp`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct QuantOptions {
    /// The real value of one input LSB: `x_q = round(x / input_scale)`.
    pub input_scale: f64,
    /// How activation ranges are calibrated.
    pub calibration: Calibration,
    /// What the last layer returns: raw int32 logits (the usual for a classifier, argmax on
    /// the host) or int8.
    pub output: OutputKind,
}

/// Why an MLP cannot be quantised.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QuantizeError {
    /// No layers.
    #[error("an MLP needs at least one layer")]
    NoLayers,
    /// The calibration inputs or consecutive layers do not fit together.
    #[error("layer {layer}: {source}")]
    Shape {
        /// The layer.
        layer: usize,
        /// What does not fit.
        source: ShapeError,
    },
    /// A NaN or infinity in a weight, bias, scale or activation.
    #[error("{what} is not finite: {value}")]
    NotFinite {
        /// Which value.
        what: &'static str,
        /// The value.
        value: f64,
    },
    /// A scale that is not a finite number > 0.
    #[error("the input scale must be a finite number > 0, got {0}")]
    InputScale(f64),
    /// A percentile outside (0, 100].
    #[error("the calibration percentile must be in (0, 100], got {0}")]
    Percentile(f64),
    /// A bias too large for int32 at the accumulator's scale.
    #[error("layer {layer}: bias {index} = {value} does not fit int32 at scale {scale:e}")]
    Bias {
        /// The layer.
        layer: usize,
        /// The bias index (output column).
        index: usize,
        /// The float bias.
        value: f64,
        /// The accumulator scale `s_x·s_w`.
        scale: f64,
    },
    /// A requantisation scale the hardware cannot represent.
    #[error("layer {layer}: requantisation scale {scale:e}: {source}")]
    Requant {
        /// The layer.
        layer: usize,
        /// `s_x·s_w / s_y`.
        scale: f64,
        /// Why [`Quant::from_scale`] refused it.
        source: QuantError,
    },
}

/// One quantised layer: what the device runs ([`Layer`]: int8 weights, int32 bias, the contract
/// v2 requantisation with its per-column scales and output zero point) and the real scales it
/// was made with: the weights' (one per tensor, or one per output column) and the output's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawQuantLayer", into = "RawQuantLayer")]
pub struct QuantLayer {
    layer: Layer,
    /// One scale (per-tensor) or one per output column.
    weight_scales: Vec<f64>,
    output_scale: f64,
}

impl QuantLayer {
    /// A layer with a per-tensor weight scale; scales must be finite and > 0.
    pub fn new(layer: Layer, weight_scale: f64, output_scale: f64) -> Result<Self, ModelError> {
        QuantLayer::per_channel(layer, vec![weight_scale], output_scale)
    }

    /// A layer with one weight scale per output column (or a single one for all); scales must
    /// be finite and > 0.
    pub fn per_channel(layer: Layer, weight_scales: Vec<f64>, output_scale: f64) -> Result<Self, ModelError> {
        if weight_scales.len() != 1 && weight_scales.len() != layer.n() {
            return Err(ModelError::WeightScales { scales: weight_scales.len(), n: layer.n() });
        }
        for &s in &weight_scales {
            check_scale("weight_scale", s)?;
        }
        check_scale("output_scale", output_scale)?;
        Ok(QuantLayer { layer, weight_scales, output_scale })
    }

    /// The device layer: int8 weights, int32 bias, requantisation.
    pub fn layer(&self) -> &Layer {
        &self.layer
    }

    /// `s_w`: the real value of one weight LSB, for a per-tensor layer; for a per-channel one,
    /// column 0's (see [`QuantLayer::weight_scales`]).
    pub fn weight_scale(&self) -> f64 {
        self.weight_scales[0]
    }

    /// The weight scales: one, or one per output column.
    pub fn weight_scales(&self) -> &[f64] {
        &self.weight_scales
    }

    /// The weight scale of output column `n`.
    pub fn column_weight_scale(&self, n: usize) -> f64 {
        if self.weight_scales.len() == 1 {
            self.weight_scales[0]
        } else {
            self.weight_scales[n]
        }
    }

    /// `s_y`: the real value of one output LSB (int8 outputs).
    pub fn output_scale(&self) -> f64 {
        self.output_scale
    }

    /// `Z_y`: the int8 code of a real 0 in the output (0 for a symmetric model).
    pub fn output_zero_point(&self) -> i8 {
        self.layer.layer_quant().zero_point()
    }
}

/// A weight scale in a model file: a number (per-tensor) or a list (per output column).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
pub(crate) enum RawWeightScale {
    PerTensor(f64),
    PerChannel(Vec<f64>),
}

impl RawWeightScale {
    pub(crate) fn from_scales(scales: &[f64]) -> Self {
        match scales {
            [one] => RawWeightScale::PerTensor(*one),
            many => RawWeightScale::PerChannel(many.to_vec()),
        }
    }
    pub(crate) fn into_scales(self) -> Vec<f64> {
        match self {
            RawWeightScale::PerTensor(s) => vec![s],
            RawWeightScale::PerChannel(v) => v,
        }
    }
}

/// The serialised form of a [`QuantLayer`] (see `docs/model-format.md`): a v1 layer is
/// `quant` alone; contract v2 adds per-column `scales` (`quant`'s M and S are then column 0's)
/// and an output `zero_point`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuantLayer {
    k: usize,
    n: usize,
    weight_scale: RawWeightScale,
    output_scale: f64,
    quant: Quant,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scales: Option<Vec<ColumnScale>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    zero_point: i8,
    bias: Vec<i32>,
    weights: Vec<i8>,
}

impl TryFrom<RawQuantLayer> for QuantLayer {
    type Error = ModelError;
    fn try_from(r: RawQuantLayer) -> Result<Self, ModelError> {
        let layer = layer_from_parts(r.k, r.n, &r.weights, r.bias, r.quant, r.scales, r.zero_point)?;
        QuantLayer::per_channel(layer, r.weight_scale.into_scales(), r.output_scale)
    }
}

impl From<QuantLayer> for RawQuantLayer {
    fn from(q: QuantLayer) -> Self {
        let (scales, zero_point) = layer_v2_parts(&q.layer);
        RawQuantLayer {
            k: q.layer.k(),
            n: q.layer.n(),
            weight_scale: RawWeightScale::from_scales(&q.weight_scales),
            output_scale: q.output_scale,
            quant: q.layer.quant(),
            scales,
            zero_point,
            bias: q.layer.bias().iter().copied().collect(),
            weights: row_major(&q.layer),
        }
    }
}

/// Why a quantised model does not hold together.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ModelError {
    /// A layer's weights, bias or chaining are inconsistent.
    #[error(transparent)]
    Layer(#[from] CompileError),
    /// A scale that is not a finite number > 0.
    #[error("{what} must be a finite number > 0, got {value}")]
    Scale {
        /// Which scale.
        what: &'static str,
        /// Its value.
        value: f64,
    },
    /// Per-channel weight scales that are not one per output column.
    #[error(
        "weight_scale has {scales} values but the layer has {n} output columns (give one, or one per column)"
    )]
    WeightScales {
        /// Scales given.
        scales: usize,
        /// Output columns.
        n: usize,
    },
}

fn check_scale(what: &'static str, value: f64) -> Result<(), ModelError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(ModelError::Scale { what, value })
    }
}

/// A quantised MLP, independent of any device [`spec::Config`]: int8 layers chained on chip,
/// the input scale, and what the last layer returns. Serialises as the `model` object of
/// `docs/model-format.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawQuantizedMlp", into = "RawQuantizedMlp")]
pub struct QuantizedMlp {
    input_scale: f64,
    output: OutputKind,
    layers: Vec<QuantLayer>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuantizedMlp {
    input_scale: f64,
    output: OutputKind,
    layers: Vec<QuantLayer>,
}

impl TryFrom<RawQuantizedMlp> for QuantizedMlp {
    type Error = ModelError;
    fn try_from(r: RawQuantizedMlp) -> Result<Self, ModelError> {
        QuantizedMlp::new(r.input_scale, r.layers, r.output)
    }
}

impl From<QuantizedMlp> for RawQuantizedMlp {
    fn from(q: QuantizedMlp) -> Self {
        RawQuantizedMlp { input_scale: q.input_scale, output: q.output, layers: q.layers }
    }
}

impl QuantizedMlp {
    /// A model: at least one layer, each layer's K equal to the previous layer's N, a finite
    /// input scale > 0.
    pub fn new(input_scale: f64, layers: Vec<QuantLayer>, output: OutputKind) -> Result<Self, ModelError> {
        check_scale("input_scale", input_scale)?;
        if layers.is_empty() {
            return Err(CompileError::NoLayers.into());
        }
        for (i, pair) in layers.windows(2).enumerate() {
            let (prev, next) = (pair[0].layer(), pair[1].layer());
            if next.k() != prev.n() {
                return Err(CompileError::Chain { layer: i + 1, k: next.k(), n: prev.n() }.into());
            }
        }
        Ok(QuantizedMlp { input_scale, output, layers })
    }

    /// `s_x` of the first layer: `x_q = round(x / input_scale)`.
    pub fn input_scale(&self) -> f64 {
        self.input_scale
    }

    /// What the last layer returns.
    pub fn output(&self) -> OutputKind {
        self.output
    }

    /// The layers with their scales.
    pub fn layers(&self) -> &[QuantLayer] {
        &self.layers
    }

    /// Inputs of the first layer.
    pub fn k(&self) -> usize {
        self.layers[0].layer().k()
    }

    /// Outputs of the last layer.
    pub fn n(&self) -> usize {
        self.layers[self.layers.len() - 1].layer().n()
    }

    /// The widths, input first: e.g. `[64, 32, 10]`.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.k()).chain(self.layers.iter().map(|l| l.layer().n())).collect()
    }

    /// The real value of one LSB of the model's output: the last layer's `s_x·s_w` for raw
    /// logits, its `s_y` for int8.
    pub fn output_scale(&self) -> f64 {
        let last = &self.layers[self.layers.len() - 1];
        match self.output {
            OutputKind::Raw => self.layer_input_scale(self.layers.len() - 1) * last.weight_scale(),
            OutputKind::Int8 => last.output_scale(),
        }
    }

    /// `s_x` of layer `i`: the model's input scale, or the previous layer's output scale.
    pub fn layer_input_scale(&self, i: usize) -> f64 {
        if i == 0 {
            self.input_scale
        } else {
            self.layers[i - 1].output_scale()
        }
    }

    /// The layers as the driver compiles them ([`crate::compile_mlp`], [`Device::mlp`]).
    pub fn to_driver_layers(&self) -> Vec<Layer> {
        self.layers.iter().map(|l| l.layer().clone()).collect()
    }

    /// Float inputs to int8: `clamp(round(x / input_scale), -127, 127)`.
    pub fn quantize_input(&self, x: &DMatrix<f32>) -> DMatrix<i8> {
        x.map(|v| quantize_i8(f64::from(v), self.input_scale))
    }

    /// The model on the host: [`spec::golden::layer`] for each layer, [`spec::golden::layer_raw`]
    /// for a raw last layer. What every device must return, bit for bit.
    pub fn golden(&self, x: &DMatrix<i8>) -> Result<Output, ShapeError> {
        let last = self.layers.len() - 1;
        let mut a = x.clone();
        for (i, l) in self.layers.iter().enumerate() {
            let l = l.layer();
            if i == last && self.output == OutputKind::Raw {
                return Ok(Output::Raw(spec::golden::layer_raw(&a, l.weights(), l.bias())?));
            }
            a = spec::golden::layer(&a, l.weights(), l.bias(), l.quant())?;
        }
        Ok(Output::Int8(a))
    }

    /// The model on a device: compile for its [`spec::Config`] and run.
    pub fn run<T: Transport>(&self, device: &mut Device<T>, x: &DMatrix<i8>) -> Result<Output, DriverError> {
        device.mlp(x, &self.to_driver_layers(), self.output)
    }
}

/// The index of the largest element of each row (the first one on a tie): the predicted class
/// of each input, from int8 outputs or raw logits.
pub fn argmax_rows(output: &Output) -> Vec<usize> {
    fn argmax<T: PartialOrd + Copy + nalgebra::Scalar>(m: &DMatrix<T>) -> Vec<usize> {
        (0..m.nrows())
            .map(|r| {
                let mut best = 0;
                for c in 1..m.ncols() {
                    if m[(r, c)] > m[(r, best)] {
                        best = c;
                    }
                }
                best
            })
            .collect()
    }
    match output {
        Output::Int8(m) => argmax(m),
        Output::Raw(m) => argmax(m),
    }
}

/// Quantise one float GEMM layer (dense, or a convolution's lowered K x N weights): per-tensor
/// symmetric int8 weights, int32 biases at the accumulator scale `s_x · s_w`, and the
/// [`Quant`] from the range of `outputs` (the float layer's outputs on the calibration inputs,
/// taken by `calibration`). `index` names the layer in errors.
pub fn quantize_layer(
    index: usize,
    fl: &FloatLayer,
    s_x: f64,
    outputs: &[f32],
    calibration: Calibration,
) -> Result<QuantLayer, QuantizeError> {
    let i = index;
    let not_finite = |what, v: f32| QuantizeError::NotFinite { what, value: f64::from(v) };
    if let Some(v) = fl.weights.iter().find(|v| !v.is_finite()) {
        return Err(not_finite("a weight", *v));
    }
    if let Some(v) = fl.bias.iter().find(|v| !v.is_finite()) {
        return Err(not_finite("a bias", *v));
    }
    if fl.bias.len() != fl.n() {
        return Err(QuantizeError::Shape {
            layer: i,
            source: ShapeError::Bias { bias: fl.bias.len(), n: fl.n() },
        });
    }
    let s_w = symmetric_scale(Calibration::Max.range(fl.weights.as_slice())?);
    let w_q = fl.weights.map(|w| quantize_i8(f64::from(w), s_w));
    let s_acc = s_x * s_w;
    let b_q = fl
        .bias
        .iter()
        .enumerate()
        .map(|(index, &b)| {
            let value = f64::from(b);
            quantize_i32(value, s_acc).ok_or(QuantizeError::Bias { layer: i, index, value, scale: s_acc })
        })
        .collect::<Result<Vec<i32>, _>>()?;
    let s_y = symmetric_scale(calibration.range(outputs)?);
    let scale = s_acc / s_y;
    let quant = requantization(s_x, s_w, s_y, fl.relu).map_err(|source| QuantizeError::Requant {
        layer: i,
        scale,
        source,
    })?;
    let layer = Layer::new(w_q, DVector::from_vec(b_q), quant).expect("the bias has one element per column");
    Ok(QuantLayer { layer, weight_scales: vec![s_w], output_scale: s_y })
}

/// Quantise a float MLP: per-tensor symmetric int8 weights, int32 biases at the accumulator
/// scale, and one [`Quant`] per layer from the activation ranges of `calibration` (M x K float
/// inputs, e.g. the training set) run through the float layers.
///
/// The last layer's [`Quant`] is calibrated too, so the same model also gives sensible int8
/// outputs; with [`OutputKind::Raw`] the device does not use it.
pub fn quantize_mlp(
    layers: &[FloatLayer],
    calibration: &DMatrix<f32>,
    options: &QuantOptions,
) -> Result<QuantizedMlp, QuantizeError> {
    let s_x0 = options.input_scale;
    if !(s_x0.is_finite() && s_x0 > 0.0) {
        return Err(QuantizeError::InputScale(s_x0));
    }
    if layers.is_empty() {
        return Err(QuantizeError::NoLayers);
    }
    let mut s_x = s_x0;
    let mut a = calibration.clone();
    let mut out = Vec::with_capacity(layers.len());
    for (i, fl) in layers.iter().enumerate() {
        let y = fl.forward(&a).map_err(|source| QuantizeError::Shape { layer: i, source })?;
        let q = quantize_layer(i, fl, s_x, y.as_slice(), options.calibration)?;
        s_x = q.output_scale;
        out.push(q);
        a = y;
    }
    // forward() checked the chaining, symmetric_scale() returns finite scales > 0
    Ok(QuantizedMlp { input_scale: s_x0, output: options.output, layers: out })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::GoldenTransport;
    use spec::Config;

    fn layer(k: usize, n: usize, relu: bool, f: impl Fn(usize, usize) -> f32) -> FloatLayer {
        FloatLayer {
            weights: DMatrix::from_fn(k, n, &f),
            bias: DVector::from_fn(n, |j, _| (j as f32 - 1.0) * 0.05),
            relu,
        }
    }

    #[test]
    fn forward_by_hand() {
        // x = [1 2], W = [1 -1 0.5; 2 0 -3], b = [0.5 0 1]
        // x·W + b = [1 + 4 + 0.5, -1 + 0 + 0, 0.5 - 6 + 1] = [5.5, -1, -4.5]
        let l = FloatLayer {
            weights: DMatrix::from_row_slice(2, 3, &[1.0, -1.0, 0.5, 2.0, 0.0, -3.0]),
            bias: DVector::from_vec(vec![0.5, 0.0, 1.0]),
            relu: false,
        };
        let x = DMatrix::from_row_slice(1, 2, &[1.0, 2.0]);
        assert_eq!(l.forward(&x).unwrap().as_slice(), &[5.5, -1.0, -4.5]);
        let relu = FloatLayer { relu: true, ..l.clone() };
        assert_eq!(relu.forward(&x).unwrap().as_slice(), &[5.5, 0.0, 0.0]);
        let e = l.forward(&DMatrix::zeros(1, 3)).unwrap_err();
        assert!(e.to_string().contains("K mismatch"), "{e}");
    }

    #[test]
    fn scalar_helpers() {
        assert_eq!(symmetric_scale(254.0), 2.0);
        assert_eq!(symmetric_scale(0.0), 1.0 / 127.0);
        // half away from zero, saturating at +-127 (never -128)
        assert_eq!(quantize_i8(1.25, 0.5), 3);
        assert_eq!(quantize_i8(1.2, 0.5), 2);
        assert_eq!(quantize_i8(-1.25, 0.5), -3);
        assert_eq!(quantize_i8(1e9, 0.5), 127);
        assert_eq!(quantize_i8(-1e9, 0.5), -127);
        // QuantizeLinear: ties to even, the zero point added after rounding, saturated to
        // [-128, 127]; the division in float32 (127.49999 rounds down, as onnxruntime's does)
        assert_eq!(quantize_linear(1.25, 0.5, 0), 2);
        assert_eq!(quantize_linear(1.75, 0.5, 0), 4);
        assert_eq!(quantize_linear(-1.25, 0.5, 3), 1);
        assert_eq!(quantize_linear(-1e9, 0.5, 0), -128);
        assert_eq!(quantize_linear(1e9, 0.5, -128), 127);
        assert_eq!(quantize_linear(0.5, 1.0 / 255.0, -128), -1);
        assert_eq!(quantize_linear(f32::NAN, 0.5, 7), 0, "NaN saturates to 0 (callers refuse it first)");
        assert_eq!(quantize_i32(3.0, 0.5), Some(6));
        assert_eq!(quantize_i32(-2.25, 0.5), Some(-5));
        assert_eq!(quantize_i32(1e12, 1.0), None);
        // 0.75 = 49152 / 2^16 (the most precise 16-bit multiplier)
        let q = requantization(0.5, 0.25, 1.0 / 6.0, true).unwrap();
        assert_eq!((q.multiplier, q.shift, q.relu), (49152, 16, true));
        assert!(requantization(1.0, 1.0, 1e-9, false).is_err());
    }

    #[test]
    fn calibration_ranges() {
        let v = [0.0f32, -4.0, 1.0, 2.0, 3.0, -0.5, 0.25, 0.75, 1.5, 2.5];
        assert_eq!(Calibration::Max.range(&v).unwrap(), 4.0);
        // |v| sorted: 0 .25 .5 .75 1 1.5 2 2.5 3 4; nearest rank ceil(p/100 * 10)
        assert_eq!(Calibration::Percentile(100.0).range(&v).unwrap(), 4.0);
        assert_eq!(Calibration::Percentile(90.0).range(&v).unwrap(), 3.0);
        assert_eq!(Calibration::Percentile(50.0).range(&v).unwrap(), 1.0);
        assert_eq!(Calibration::Percentile(1.0).range(&v).unwrap(), 0.0);
        assert_eq!(Calibration::Max.range(&[]).unwrap(), 0.0);
        assert_eq!(Calibration::Percentile(0.0).range(&v).unwrap_err(), QuantizeError::Percentile(0.0));
        assert!(matches!(Calibration::Max.range(&[f32::NAN]), Err(QuantizeError::NotFinite { .. })));
    }

    /// A hand-sized model: every scale, weight, bias and quant checked on paper.
    #[test]
    fn quantize_by_hand() {
        // layer 0: 2 -> 2, ReLU. W = [0.5 -1; 0.25 1], b = [0.1, 0]
        // layer 1: 2 -> 1.        W = [2; -0.5],       b = [-0.2]
        let l0 = FloatLayer {
            weights: DMatrix::from_row_slice(2, 2, &[0.5, -1.0, 0.25, 1.0]),
            bias: DVector::from_vec(vec![0.1, 0.0]),
            relu: true,
        };
        let l1 = FloatLayer {
            weights: DMatrix::from_row_slice(2, 1, &[2.0, -0.5]),
            bias: DVector::from_vec(vec![-0.2]),
            relu: false,
        };
        // calibration: x = [1 1] and [1 0]
        //   layer 0: [0.5 + 0.25 + 0.1, -1 + 1] = [0.85, 0]; [0.6, 0] (ReLU of -1)
        //   range 0.85 -> s_y0 = 0.85 / 127
        //   layer 1: [1.7 - 0.2] = 1.5 ; [1.2 - 0.2] = 1.0 -> range 1.5 -> s_y1 = 1.5 / 127
        let cal = DMatrix::from_row_slice(2, 2, &[1.0, 1.0, 1.0, 0.0]);
        let opts =
            QuantOptions { input_scale: 1.0 / 127.0, calibration: Calibration::Max, output: OutputKind::Raw };
        let q = quantize_mlp(&[l0.clone(), l1.clone()], &cal, &opts).unwrap();
        assert_eq!(q.widths(), [2, 2, 1]);
        let (a, b) = (&q.layers()[0], &q.layers()[1]);
        // s_w0 = 1/127: W0_q = W0 * 127 rounded: [63.5 -> 64, -127; 31.75 -> 32, 127]
        assert_eq!(a.weight_scale(), 1.0 / 127.0);
        assert_eq!(a.layer().weights(), &DMatrix::from_row_slice(2, 2, &[64i8, -127, 32, 127]));
        // b0_q = 0.1 / (1/127 * 1/127) = 1612.9 -> 1613
        assert_eq!(a.layer().bias().as_slice(), &[1613, 0]);
        assert_eq!(a.output_scale(), 0.85f32 as f64 / 127.0);
        // requant scale s_x s_w / s_y = (1/127^2) / (0.85/127) = 1 / (127 * 0.85)
        assert_eq!(
            a.layer().quant(),
            Quant::from_scale(1.0 / 127.0 / 0.85f32 as f64).unwrap().with_relu(true)
        );
        // s_w1 = 2/127: W1_q = [127, -0.5 * 127 / 2 = -31.75 -> -32]
        assert_eq!(b.layer().weights().as_slice(), &[127, -32]);
        // b1_q = -0.2 / (s_y0 * s_w1) = -0.2 * 127 * 127 / (0.85 * 2) = -1897.6 -> -1898
        assert_eq!(b.layer().bias().as_slice(), &[-1898]);
        assert!(!b.layer().quant().relu);
        assert_eq!(q.output_scale(), a.output_scale() * b.weight_scale());

        // the device and the host chain agree, and the raw logits dequantise to the float ones
        let x = q.quantize_input(&cal);
        assert_eq!(x, DMatrix::from_row_slice(2, 2, &[127i8, 127, 127, 0]));
        let cfg = Config::new(2, 16, 8).unwrap();
        let mut dev = Device::open(GoldenTransport::new(cfg), &cfg).unwrap();
        let got = q.run(&mut dev, &x).unwrap();
        assert_eq!(got, q.golden(&x).unwrap());
        let logits = got.as_raw().unwrap();
        let float = l1.forward(&l0.forward(&cal).unwrap()).unwrap();
        for (g, f) in logits.iter().zip(float.iter()) {
            let deq = f64::from(*g) * q.output_scale();
            assert!((deq - f64::from(*f)).abs() < 0.02, "{deq} vs {f}");
        }
    }

    #[test]
    fn int8_output_and_argmax() {
        let l0 = layer(6, 5, true, |k, n| ((k * 7 + n * 3) % 11) as f32 / 10.0 - 0.5);
        let l1 = layer(5, 4, false, |k, n| ((k * 5 + n * 2) % 7) as f32 / 7.0 - 0.4);
        let cal = DMatrix::from_fn(20, 6, |m, k| ((m * 3 + k) % 9) as f32 / 8.0);
        let opts = QuantOptions {
            input_scale: 1.0 / 127.0,
            calibration: Calibration::Percentile(99.0),
            output: OutputKind::Int8,
        };
        let q = quantize_mlp(&[l0, l1], &cal, &opts).unwrap();
        let x = q.quantize_input(&cal);
        let cfg = Config::new(4, 32, 16).unwrap();
        let mut dev = Device::open(GoldenTransport::new(cfg), &cfg).unwrap();
        let got = q.run(&mut dev, &x).unwrap();
        assert!(got.as_int8().is_some());
        assert_eq!(got, q.golden(&x).unwrap());
        assert_eq!(
            argmax_rows(&Output::Int8(DMatrix::from_row_slice(2, 3, &[1i8, 5, 5, -3, -2, -9]))),
            [1, 1]
        );
        assert_eq!(argmax_rows(&Output::Raw(DMatrix::from_row_slice(1, 3, &[-7, -9, 100]))), [2]);
    }

    #[test]
    fn errors() {
        let l = layer(3, 2, true, |k, n| (k + n) as f32);
        let cal = DMatrix::zeros(4, 3);
        let opts = QuantOptions { input_scale: 0.1, calibration: Calibration::Max, output: OutputKind::Raw };
        assert_eq!(quantize_mlp(&[], &cal, &opts).unwrap_err(), QuantizeError::NoLayers);
        let bad = QuantOptions { input_scale: 0.0, ..opts };
        assert_eq!(
            quantize_mlp(std::slice::from_ref(&l), &cal, &bad).unwrap_err(),
            QuantizeError::InputScale(0.0)
        );
        let e = quantize_mlp(std::slice::from_ref(&l), &DMatrix::zeros(4, 5), &opts).unwrap_err();
        assert!(matches!(e, QuantizeError::Shape { layer: 0, .. }), "{e}");
        let e = quantize_mlp(&[l.clone(), l.clone()], &cal, &opts).unwrap_err();
        assert!(matches!(e, QuantizeError::Shape { layer: 1, .. }), "{e}");
        let mut nan = l.clone();
        nan.weights[(1, 1)] = f32::NAN;
        assert!(matches!(quantize_mlp(&[nan], &cal, &opts), Err(QuantizeError::NotFinite { .. })));
        let mut huge = l.clone();
        huge.bias[1] = 1e30;
        let e = quantize_mlp(&[huge], &cal, &opts).unwrap_err();
        assert!(matches!(e, QuantizeError::Bias { layer: 0, index: 1, .. }), "{e}");
    }

    #[test]
    fn model_checks_and_serde() {
        let l = |k, n| Layer::new(DMatrix::zeros(k, n), DVector::zeros(n), Quant::IDENTITY).unwrap();
        let ql = |k, n| QuantLayer::new(l(k, n), 0.5, 0.25).unwrap();
        let e = QuantizedMlp::new(0.1, vec![ql(3, 4), ql(5, 2)], OutputKind::Raw).unwrap_err();
        assert_eq!(e.to_string(), "layer 1 takes K = 5 inputs but layer 0 produces N = 4 outputs");
        assert!(QuantizedMlp::new(0.1, vec![], OutputKind::Raw).is_err());
        let e = QuantizedMlp::new(f64::NAN, vec![ql(3, 4)], OutputKind::Raw).unwrap_err();
        assert_eq!(e.to_string(), "input_scale must be a finite number > 0, got NaN");
        assert!(QuantLayer::new(l(1, 1), -1.0, 1.0).is_err());

        let w = DMatrix::from_row_slice(2, 3, &[1i8, 2, 3, -4, -5, -6]);
        let layer = Layer::new(w, DVector::from_vec(vec![7, 8, 9]), Quant::new(3, 4, true).unwrap()).unwrap();
        let m = QuantizedMlp::new(0.125, vec![QuantLayer::new(layer, 0.5, 0.25).unwrap()], OutputKind::Int8)
            .unwrap();
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"input_scale":0.125,"output":"int8","layers":[{"k":2,"n":3,"weight_scale":0.5,"output_scale":0.25,"quant":{"multiplier":3,"shift":4,"relu":true},"bias":[7,8,9],"weights":[1,2,3,-4,-5,-6]}]}"#
        );
        assert_eq!(serde_json::from_str::<QuantizedMlp>(&json).unwrap(), m);
        let short = json.replace("[1,2,3,-4,-5,-6]", "[1,2,3]");
        let e = serde_json::from_str::<QuantizedMlp>(&short).unwrap_err();
        assert!(e.to_string().contains("weights of a 2x3 layer need 6 elements, got 3"), "{e}");
    }
}
