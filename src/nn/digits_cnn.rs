//! The digits CNN end to end: train the float CNN ([`super::cnn_train`]), quantise it to an
//! int8 [`Network`] (per-tensor, with the same `driver::quant` code as the MLP), evaluate both.
//!
//! ```text
//!   float CNN ── forward_all(training images) ──► every layer's float outputs (calibration)
//!       │
//!       ├─ conv2d / dense:  driver::quant::quantize_layer (int8 weights, int32 bias, Quant)
//!       │                   on the lowered K x N weights; s_x := the layer's output scale
//!       ├─ maxpool2d, global_avg_pool, flatten: no parameters, the scale passes through
//!       │   (max and mean commute with a positive scale)
//!       ▼
//!   driver::Network (model.json) ── golden / native / RTL, bit for bit
//! ```

use std::time::{Duration, Instant};

use driver::quant::{argmax_rows, quantize_layer, Calibration, FloatLayer, QuantizeError};
use driver::{ConvLayer, Network, Op, OutputKind};
use nalgebra::DMatrix;
use spec::conv::{Conv2d, Padding, Shape, Window};

use super::cnn::{FloatCnn, FloatOp};
use super::cnn_train::{train_cnn_with_progress, CnnTrainConfig};
use super::digits::{self, Dataset, Split};
use super::file::{self, ModelFile, Provenance};
use super::{Evaluation, NnError, CALIBRATION};

/// Quantise a float CNN: every conv2d and dense layer per tensor (weights symmetric int8,
/// biases int32 at the accumulator scale, ranges from `calibration`'s images taken by
/// `method`), pools and flatten as they are. `input_scale` is the real value of one input LSB.
pub fn quantize_cnn(
    model: &FloatCnn,
    calibration: &DMatrix<f32>,
    input_scale: f64,
    method: Calibration,
    output: OutputKind,
) -> Result<Network, QuantizeError> {
    let outputs = model.forward_all(calibration);
    let mut s_x = input_scale;
    let mut ops = Vec::with_capacity(model.ops.len());
    for (i, (op, y)) in model.ops.iter().zip(&outputs).enumerate() {
        let window = |kernel: (usize, usize), stride: (usize, usize), padding: [usize; 4]| Window {
            kernel,
            stride,
            padding: Padding::from(padding),
        };
        ops.push(match op {
            FloatOp::Conv2d(c) => {
                let fl = FloatLayer { weights: c.weights.clone(), bias: c.bias.clone(), relu: c.relu };
                let q = quantize_layer(i, &fl, s_x, y.as_slice(), method)?;
                s_x = q.output_scale();
                let conv = Conv2d {
                    window: window((c.kh, c.kw), c.stride, c.padding),
                    c_in: c.c_in,
                    c_out: c.c_out,
                };
                Op::Conv2d(ConvLayer::new(conv, q).expect("a float conv's weights are KH·KW·C_in x C_out"))
            }
            FloatOp::Dense(l) => {
                let q = quantize_layer(i, l, s_x, y.as_slice(), method)?;
                s_x = q.output_scale();
                Op::Dense(q)
            }
            FloatOp::MaxPool2d { kernel, stride, padding } => {
                Op::MaxPool2d(window(*kernel, *stride, *padding))
            }
            FloatOp::GlobalAvgPool => Op::GlobalAvgPool,
            FloatOp::Flatten => Op::Flatten,
        });
    }
    let (h, w, c) = model.input;
    let input = Shape::new(h, w, c).expect("a float CNN's input shape is valid");
    Ok(Network::new(input, input_scale, ops, output).expect("the float CNN's shapes were checked"))
}

/// A trained and quantised digits CNN with its accuracies.
#[derive(Debug, Clone)]
pub struct DigitsCnn {
    /// The standard split it was trained and tested on.
    pub split: Split,
    /// The hyper-parameters.
    pub config: CnnTrainConfig,
    /// The float model.
    pub float: FloatCnn,
    /// The int8 network.
    pub quantized: Network,
    /// The float model on the test set.
    pub float_eval: Evaluation,
    /// The int8 model on the test set (host golden).
    pub int8_eval: Evaluation,
    /// Wall-clock time of training.
    pub train_time: Duration,
}

impl DigitsCnn {
    /// Where the model came from, for its model file.
    pub fn provenance(&self) -> Provenance {
        let mut p = super::provenance_of(&self.split, self.float_eval.accuracy(), self.int8_eval.accuracy());
        p.training = file::Training::Cnn(self.config.clone());
        p
    }

    /// The model file (`model.json`) of this model.
    pub fn model_file(&self) -> ModelFile {
        ModelFile::new(self.quantized.clone(), Some(self.provenance()))
    }
}

/// The int8 network on `data` on the host (`Network::golden`): evaluation and logits.
pub fn evaluate_network_golden(net: &Network, data: &Dataset) -> Evaluation {
    let out = net.golden(&data.inputs_i8()).expect("a digits network takes 8x8x1 images");
    Evaluation::new(argmax_rows(&out), data)
}

/// Split `data`, train the CNN with `config`, quantise it (calibrated on the training set) and
/// evaluate both models on the test set.
pub fn train_digits_cnn(data: &Dataset, config: &CnnTrainConfig, quiet: bool) -> Result<DigitsCnn, NnError> {
    let split = digits::standard_split(data)?;
    let start = Instant::now();
    let float = train_cnn_with_progress(&split.train, config, quiet)?;
    let train_time = start.elapsed();
    let quantized =
        quantize_cnn(&float, &split.train.inputs(), digits::INPUT_SCALE, CALIBRATION, OutputKind::Raw)?;
    let float_eval = Evaluation::new(float.predict(&split.test.inputs()), &split.test);
    let int8_eval = evaluate_network_golden(&quantized, &split.test);
    Ok(DigitsCnn { split, config: config.clone(), float, quantized, float_eval, int8_eval, train_time })
}
