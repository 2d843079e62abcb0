//! Software 2.0 end to end: data in, a trained network out, compiled for the device.
//!
//! ```text
//!  data/digits.csv ─► digits::load / bundled ─► standard_split ─┬─ train (1297) ─► train::train ─► FloatMlp
//!                                                              │                                     │
//!                                                              │        calibration (train set) ─────┤
//!                                                              │                                     ▼
//!                                                              │                   quantize (driver::quant) ─► QuantizedMlp
//!                                                              │                                     │  (int8 W, int32 b, Quant)
//!                                                              └─ test (500) ─► evaluate_float        ├─► file::ModelFile (model.json)
//!                                                                               evaluate_golden ◄────┤
//!                                                                               evaluate_on(Device) ◄┘  golden / native / RTL
//! ```
//!
//! * [`digits`]: the data set, its loader and the seeded split.
//! * [`train`]: a deterministic trainer (Adam, softmax cross-entropy) for [`FloatMlp`].
//! * [`quantize`]: post-training int8 quantisation with the project's defaults, on top of
//!   [`driver::quant::quantize_mlp`].
//! * [`evaluate_float`], [`evaluate_golden`], [`evaluate_on`]: test accuracy of the float model,
//!   of the int8 model on the host (spec::golden), and of the int8 model on any device.
//! * [`train_digits`]: all of the above in one call, as the demo runs it.
//! * [`file`](mod@file): the model file `model.json` (`docs/model-format.md`).

pub mod cnn;
pub mod cnn_train;
pub mod digits;
pub mod digits_cnn;
pub mod file;
pub mod float;
pub mod train;

use std::time::{Duration, Instant};

use driver::quant::{argmax_rows, quantize_mlp, Calibration, QuantOptions, QuantizeError, QuantizedMlp};
use driver::{Device, DriverError, Output, OutputKind, Transport};
use thiserror::Error;

pub use cnn::{CnnShapeError, FloatCnn, FloatConv, FloatOp};
pub use cnn_train::{train_cnn, train_cnn_with_progress, CnnTrainConfig};
pub use digits::{Dataset, Split};
pub use file::{ModelFile, Provenance};
pub use float::FloatMlp;
pub use train::{EpochStats, TrainConfig, TrainError};

/// How [`quantize`] calibrates: the largest activation over the training set (nothing on it
/// saturates).
pub const CALIBRATION: Calibration = Calibration::Max;

/// Quantise a float digits model with the project's defaults: input scale
/// [`digits::INPUT_SCALE`] (`x_q = round(pixel * 127 / 16)`), ranges from `calibration`'s
/// images by [`CALIBRATION`], raw int32 logits out (argmax on the host).
pub fn quantize(model: &FloatMlp, calibration: &Dataset) -> Result<QuantizedMlp, QuantizeError> {
    let options =
        QuantOptions { input_scale: digits::INPUT_SCALE, calibration: CALIBRATION, output: OutputKind::Raw };
    quantize_mlp(model.layers(), &calibration.inputs(), &options)
}

/// Predictions on a data set and how many are right.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// The predicted class of each image.
    pub predictions: Vec<usize>,
    /// Images classified correctly.
    pub correct: usize,
    /// Images.
    pub total: usize,
}

impl Evaluation {
    pub(crate) fn new(predictions: Vec<usize>, data: &Dataset) -> Self {
        let correct = predictions.iter().zip(data.labels()).filter(|(p, l)| **p == usize::from(**l)).count();
        Evaluation { predictions, correct, total: data.len() }
    }

    /// `correct / total`, in [0, 1].
    pub fn accuracy(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.correct as f64 / self.total as f64
        }
    }
}

/// The float model on `data`.
pub fn evaluate_float(model: &FloatMlp, data: &Dataset) -> Evaluation {
    Evaluation::new(model.predict(&data.inputs()), data)
}

/// The int8 model on the host ([`QuantizedMlp::golden`]: `spec::golden` layer by layer);
/// returns the evaluation and the model's output (raw logits or int8).
///
/// # Panics
/// If the model does not take 64 inputs.
pub fn evaluate_golden(model: &QuantizedMlp, data: &Dataset) -> (Evaluation, Output) {
    let out = model.golden(&data.inputs_i8()).expect("a digits model takes 64 inputs");
    (Evaluation::new(argmax_rows(&out), data), out)
}

/// The int8 model on a device (golden, a cycle simulator, the RTL, a board): compiled for the
/// device's Config and run; returns the evaluation and the model's output, which must equal
/// [`evaluate_golden`]'s bit for bit.
pub fn evaluate_on<T: Transport>(
    model: &QuantizedMlp,
    data: &Dataset,
    device: &mut Device<T>,
) -> Result<(Evaluation, Output), DriverError> {
    let out = model.run(device, &data.inputs_i8())?;
    Ok((Evaluation::new(argmax_rows(&out), data), out))
}

/// Why [`train_digits`] failed.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NnError {
    /// The split.
    #[error(transparent)]
    Data(#[from] digits::DataError),
    /// Training.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Quantisation.
    #[error("quantisation failed: {0}")]
    Quantize(#[from] QuantizeError),
}

/// A trained and quantised digits model with its accuracies.
#[derive(Debug, Clone)]
pub struct DigitsModel {
    /// The standard split it was trained and tested on.
    pub split: Split,
    /// The hyper-parameters.
    pub config: TrainConfig,
    /// The float model.
    pub float: FloatMlp,
    /// The int8 model.
    pub quantized: QuantizedMlp,
    /// The float model on the test set.
    pub float_eval: Evaluation,
    /// The int8 model on the test set (host golden chain).
    pub int8_eval: Evaluation,
    /// Wall-clock time of training (not recorded in the model file, which is deterministic).
    pub train_time: Duration,
}

impl DigitsModel {
    /// Where the model came from, for its model file.
    pub fn provenance(&self) -> Provenance {
        let mut p = provenance_of(&self.split, self.float_eval.accuracy(), self.int8_eval.accuracy());
        p.training = file::Training::Mlp(self.config.clone());
        p
    }

    /// The model file (`model.json`) of this model.
    pub fn model_file(&self) -> ModelFile {
        ModelFile::mlp(&self.quantized, Some(self.provenance()))
    }
}

/// The provenance of a digits model trained on the standard `split` (the training
/// hyper-parameters are the default MLP's: callers set their own).
pub(crate) fn provenance_of(split: &Split, float: f64, int8: f64) -> Provenance {
    Provenance {
        dataset: "data/digits.csv: UCI optical recognition of handwritten digits as bundled with \
                  scikit-learn (load_digits), 8x8 pixels 0..16, labels 0..9"
            .into(),
        input_encoding: "x_q = round(pixel * 127 / 16), half up: int8 0..127 for pixels 0..16; \
                         the float model takes pixel / 16 = x_q * input_scale"
            .into(),
        split: file::SplitInfo {
            method: "Fisher-Yates shuffle of the row numbers with SplitMix64(seed): the first 500 \
                     are the test set, the rest the training set, each kept in file order"
                .into(),
            seed: digits::SPLIT_SEED,
            train: split.train.len(),
            test: split.test.len(),
        },
        training: file::Training::Mlp(TrainConfig::default()),
        calibration: file::CalibrationInfo { method: CALIBRATION, images: split.train.len() },
        accuracy: file::AccuracyInfo { test_images: split.test.len(), float, int8 },
    }
}

/// Split `data` ([`digits::standard_split`]), train with `config` (a progress bar on stderr
/// unless `quiet` or not a terminal), quantise ([`quantize`], calibrated on the training set)
/// and evaluate both models on the test set.
pub fn train_digits(data: &Dataset, config: &TrainConfig, quiet: bool) -> Result<DigitsModel, NnError> {
    let split = digits::standard_split(data)?;
    let start = Instant::now();
    let float = train::train_with_progress(&split.train, config, quiet)?;
    let train_time = start.elapsed();
    let quantized = quantize(&float, &split.train)?;
    let float_eval = evaluate_float(&float, &split.test);
    let (int8_eval, _) = evaluate_golden(&quantized, &split.test);
    Ok(DigitsModel { split, config: config.clone(), float, quantized, float_eval, int8_eval, train_time })
}
