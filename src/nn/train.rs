//! Training: a float MLP on the digits, Adam on mini-batches, softmax cross-entropy.
//!
//! ```text
//!   for epoch in 1..=epochs:
//!     order = Fisher–Yates(0..N)                        SplitMix64(seed), one stream for everything
//!     for each batch of `batch_size` images, in order:
//!       for each image, one after the other:
//!         forward  a0 = x, a(l+1) = relu(a(l) W(l) + b(l)), logits = last layer (no ReLU)
//!         backward d = softmax(logits) - onehot(label); dW(l) += a(l)^T d; db(l) += d;
//!                  d = (d W(l)^T) * [a(l) > 0]
//!       Adam (beta1 0.9, beta2 0.999, eps 1e-8) on the batch mean of the gradients
//! ```
//!
//! Determinism: everything runs on one thread in a fixed order (no BLAS, no parallel
//! reductions, no fused multiply-add: Rust never contracts `a * b + c`); the only
//! transcendental functions (`expf`, `logf`) come from the pure-Rust `libm` crate rather than
//! the platform's C library. So a seed gives bit-identical weights on every machine.
//! Initial weights: uniform in ±sqrt(6 / fan_in) (He), biases 0.

use std::io::IsTerminal;

use driver::quant::FloatLayer;
use indicatif::{ProgressBar, ProgressStyle};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::digits::{Dataset, CLASSES, FEATURES};
use super::float::FloatMlp;
use spec::rng::SplitMix64;

/// Hyper-parameters of [`train`]. They are recorded in the model file's provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Widths of the hidden layers (ReLU), input side first: `[32]` is 64 → 32 → 10.
    pub hidden: Vec<usize>,
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per Adam step.
    pub batch_size: usize,
    /// Adam's step size.
    pub learning_rate: f32,
    /// Seed of the initial weights and of the batch order.
    pub seed: u64,
}

impl Default for TrainConfig {
    /// 64 → 32 → 10, 30 epochs of batches of 32, Adam at 0.01, seed 1.
    fn default() -> Self {
        TrainConfig { hidden: vec![32], epochs: 30, batch_size: 32, learning_rate: 0.01, seed: 1 }
    }
}

impl TrainConfig {
    /// The default with `hidden` as the one hidden layer's width (for a width sweep).
    pub fn with_hidden(hidden: usize) -> Self {
        TrainConfig { hidden: vec![hidden], ..TrainConfig::default() }
    }

    /// Layer widths, input first: `[64, hidden.., 10]`.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(FEATURES).chain(self.hidden.iter().copied()).chain(std::iter::once(CLASSES)).collect()
    }

    fn check(&self) -> Result<(), TrainError> {
        let bad = |what: &str| Err(TrainError::Config(what.to_string()));
        if self.hidden.contains(&0) {
            return bad("hidden layer widths must be >= 1");
        }
        if self.epochs == 0 {
            return bad("epochs must be >= 1");
        }
        if self.batch_size == 0 {
            return bad("batch_size must be >= 1");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate must be a finite number > 0");
        }
        Ok(())
    }
}

/// What one epoch achieved (passed to the progress callback).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// This epoch, 1-based.
    pub epoch: usize,
    /// Epochs in all.
    pub epochs: usize,
    /// Mean cross-entropy over the epoch's images (each measured before its batch's step).
    pub loss: f32,
    /// Fraction of the epoch's images classified correctly before their batch's step.
    pub train_accuracy: f64,
}

/// Why training did not produce a model.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum TrainError {
    /// No training images.
    #[error("no training images")]
    NoData,
    /// A hyper-parameter out of range.
    #[error("bad training configuration: {0}")]
    Config(String),
    /// The loss became NaN or infinite (learning rate too high).
    #[error("training diverged in epoch {epoch}: the loss is {loss}; lower the learning rate")]
    Diverged {
        /// The epoch.
        epoch: usize,
        /// The loss.
        loss: f32,
    },
}

/// One layer's parameters, row-major K x N (`w[k * n + j]`); also used for gradients and Adam's moments
/// (and by the CNN trainer, `cnn_train`, for its convolutions: the im2col weight matrix).
#[derive(Debug, Clone)]
pub(crate) struct Dense {
    pub(crate) k: usize,
    pub(crate) n: usize,
    pub(crate) w: Vec<f32>,
    pub(crate) b: Vec<f32>,
}

impl Dense {
    pub(crate) fn init(k: usize, n: usize, rng: &mut SplitMix64) -> Self {
        let limit = (6.0 / k as f32).sqrt();
        let w = (0..k * n).map(|_| (2.0 * rng.next_f32() - 1.0) * limit).collect();
        Dense { k, n, w, b: vec![0.0; n] }
    }

    pub(crate) fn zeros_like(&self) -> Self {
        Dense { k: self.k, n: self.n, w: vec![0.0; self.w.len()], b: vec![0.0; self.n] }
    }

    /// `out = a W + b`, bias first, then k = 0, 1, ... (skipping zero inputs, which add 0).
    pub(crate) fn forward(&self, a: &[f32], out: &mut [f32]) {
        out.copy_from_slice(&self.b);
        for (k, &x) in a.iter().enumerate() {
            if x != 0.0 {
                for (o, &w) in out.iter_mut().zip(&self.w[k * self.n..(k + 1) * self.n]) {
                    *o += x * w;
                }
            }
        }
    }

    pub(crate) fn to_float_layer(&self, relu: bool) -> FloatLayer {
        FloatLayer {
            weights: DMatrix::from_row_slice(self.k, self.n, &self.w),
            bias: DVector::from_column_slice(&self.b),
            relu,
        }
    }
}

/// Adam's state for all layers.
pub(crate) struct Adam {
    m: Vec<Dense>,
    v: Vec<Dense>,
    /// beta1^t and beta2^t, by repeated multiplication (no `powi`).
    beta1_t: f32,
    beta2_t: f32,
}

const BETA1: f32 = 0.9;
const BETA2: f32 = 0.999;
const EPSILON: f32 = 1e-8;

impl Adam {
    pub(crate) fn new(layers: &[Dense]) -> Self {
        Adam {
            m: layers.iter().map(Dense::zeros_like).collect(),
            v: layers.iter().map(Dense::zeros_like).collect(),
            beta1_t: 1.0,
            beta2_t: 1.0,
        }
    }

    /// One step with the gradient sums `grads` of `count` images.
    pub(crate) fn step(&mut self, layers: &mut [Dense], grads: &[Dense], count: usize, lr: f32) {
        self.beta1_t *= BETA1;
        self.beta2_t *= BETA2;
        let (c1, c2) = (1.0 - self.beta1_t, 1.0 - self.beta2_t);
        let inv = 1.0 / count as f32;
        let update = |p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]| {
            for i in 0..p.len() {
                let g = g[i] * inv;
                m[i] = BETA1 * m[i] + (1.0 - BETA1) * g;
                v[i] = BETA2 * v[i] + (1.0 - BETA2) * g * g;
                p[i] -= lr * (m[i] / c1) / ((v[i] / c2).sqrt() + EPSILON);
            }
        };
        for (l, layer) in layers.iter_mut().enumerate() {
            update(&mut layer.w, &grads[l].w, &mut self.m[l].w, &mut self.v[l].w);
            update(&mut layer.b, &grads[l].b, &mut self.m[l].b, &mut self.v[l].b);
        }
    }
}

/// Softmax in place; returns `-ln p[label]`.
pub(crate) fn softmax_cross_entropy(z: &mut [f32], label: usize) -> f32 {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in z.iter_mut() {
        *v = libm::expf(*v - max);
        sum += *v;
    }
    for v in z.iter_mut() {
        *v /= sum;
    }
    -libm::logf(z[label].max(f32::MIN_POSITIVE))
}

/// Train a float MLP on `data`; `on_epoch` is called after each epoch (for progress).
pub fn train(
    data: &Dataset,
    cfg: &TrainConfig,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<FloatMlp, TrainError> {
    cfg.check()?;
    if data.is_empty() {
        return Err(TrainError::NoData);
    }
    let widths = cfg.widths();
    let mut rng = SplitMix64::new(cfg.seed);
    let mut layers: Vec<Dense> = widths.windows(2).map(|p| Dense::init(p[0], p[1], &mut rng)).collect();
    let mut grads: Vec<Dense> = layers.iter().map(Dense::zeros_like).collect();
    let mut adam = Adam::new(&layers);

    // inputs pixel / 16, one row per image
    let x = data.inputs();
    let rows: Vec<Vec<f32>> = (0..data.len()).map(|r| x.row(r).iter().copied().collect()).collect();
    let mut acts: Vec<Vec<f32>> = widths.iter().map(|&w| vec![0.0; w]).collect();
    let mut delta = vec![0f32; *widths.iter().max().expect("at least input and output")];
    let mut next_delta = delta.clone();
    let mut order: Vec<usize> = (0..data.len()).collect();
    let last = layers.len() - 1;

    for epoch in 1..=cfg.epochs {
        rng.shuffle(&mut order);
        let (mut loss_sum, mut correct) = (0f64, 0usize);
        for batch in order.chunks(cfg.batch_size) {
            for g in &mut grads {
                g.w.fill(0.0);
                g.b.fill(0.0);
            }
            for &i in batch {
                let label = usize::from(data.labels()[i]);
                // forward
                acts[0].copy_from_slice(&rows[i]);
                for (l, layer) in layers.iter().enumerate() {
                    let (lo, hi) = acts.split_at_mut(l + 1);
                    layer.forward(&lo[l], &mut hi[0]);
                    if l < last {
                        hi[0].iter_mut().for_each(|v| *v = v.max(0.0));
                    }
                }
                let logits = &mut acts[last + 1];
                let predicted = (1..logits.len()).fold(0, |b, c| if logits[c] > logits[b] { c } else { b });
                correct += usize::from(predicted == label);
                loss_sum += f64::from(softmax_cross_entropy(logits, label));
                // backward: d = p - onehot
                let n_out = logits.len();
                delta[..n_out].copy_from_slice(logits);
                delta[label] -= 1.0;
                for l in (0..layers.len()).rev() {
                    let (layer, g, a) = (&layers[l], &mut grads[l], &acts[l]);
                    let d = &delta[..layer.n];
                    for (k, &av) in a.iter().enumerate() {
                        if av != 0.0 {
                            for (gw, &dv) in g.w[k * layer.n..(k + 1) * layer.n].iter_mut().zip(d) {
                                *gw += av * dv;
                            }
                        }
                    }
                    for (gb, &dv) in g.b.iter_mut().zip(d) {
                        *gb += dv;
                    }
                    if l > 0 {
                        for (k, nd) in next_delta[..layer.k].iter_mut().enumerate() {
                            *nd = if a[k] > 0.0 {
                                let row = &layer.w[k * layer.n..(k + 1) * layer.n];
                                row.iter().zip(d).fold(0.0, |s, (&w, &dv)| s + w * dv)
                            } else {
                                0.0
                            };
                        }
                        std::mem::swap(&mut delta, &mut next_delta);
                    }
                }
            }
            adam.step(&mut layers, &grads, batch.len(), cfg.learning_rate);
        }
        let loss = (loss_sum / data.len() as f64) as f32;
        if !loss.is_finite() {
            return Err(TrainError::Diverged { epoch, loss });
        }
        on_epoch(&EpochStats {
            epoch,
            epochs: cfg.epochs,
            loss,
            train_accuracy: correct as f64 / data.len() as f64,
        });
    }
    Ok(FloatMlp::new(layers.iter().enumerate().map(|(l, d)| d.to_float_layer(l < last)).collect()))
}

/// [`train`] with a progress bar on stderr, one tick per epoch; hidden when `quiet` or when
/// stderr is not a terminal (a pipe, a file, CI).
pub fn train_with_progress(data: &Dataset, cfg: &TrainConfig, quiet: bool) -> Result<FloatMlp, TrainError> {
    with_epoch_progress("training", cfg.epochs, quiet, |on_epoch| train(data, cfg, on_epoch))
}

/// Run `train` with a progress bar on stderr labelled `label`, one tick per epoch (of
/// `epochs`); hidden when `quiet` or when stderr is not a terminal. Shared by the MLP and CNN
/// trainers.
pub(crate) fn with_epoch_progress<T>(
    label: &str,
    epochs: usize,
    quiet: bool,
    train: impl FnOnce(&mut dyn FnMut(&EpochStats)) -> Result<T, TrainError>,
) -> Result<T, TrainError> {
    let bar = if quiet || !std::io::stderr().is_terminal() {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(epochs as u64)
    };
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{label} {{wide_bar}} {{pos}}/{{len}} epochs  {{msg}}  [{{elapsed}}]"
        ))
        .expect("the template is valid"),
    );
    let result = train(&mut |s: &EpochStats| {
        bar.set_message(format!("loss {:.4}, train {:.1}%", s.loss, 100.0 * s.train_accuracy));
        bar.inc(1);
    });
    bar.finish_and_clear();
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::digits;

    #[test]
    fn softmax_by_hand() {
        // z = [0, ln 3]: p = [1/4, 3/4]; -ln p[1] = ln(4/3)
        let mut z = [0.0, 3f32.ln()];
        let loss = softmax_cross_entropy(&mut z, 1);
        assert!((z[0] - 0.25).abs() < 1e-6 && (z[1] - 0.75).abs() < 1e-6, "{z:?}");
        assert!((loss - (4f32 / 3.0).ln()).abs() < 1e-6);
        // large logits do not overflow
        let mut z = [1000.0, 0.0];
        assert!(softmax_cross_entropy(&mut z, 0) < 1e-6);
    }

    #[test]
    fn config_checks() {
        let data = digits::bundled().subset(&[0, 1, 2]);
        let bad = |cfg: TrainConfig| train(&data, &cfg, |_| {}).unwrap_err().to_string();
        let d = TrainConfig::default();
        assert_eq!(TrainConfig::with_hidden(16).widths(), [64, 16, 10]);
        assert_eq!(
            bad(TrainConfig { hidden: vec![0], ..d.clone() }),
            "bad training configuration: hidden layer widths must be >= 1"
        );
        assert!(bad(TrainConfig { epochs: 0, ..d.clone() }).contains("epochs"));
        assert!(bad(TrainConfig { batch_size: 0, ..d.clone() }).contains("batch_size"));
        assert!(bad(TrainConfig { learning_rate: -1.0, ..d.clone() }).contains("learning_rate"));
        let e = train(&data.subset(&[]), &d, |_| {}).unwrap_err();
        assert_eq!(e, TrainError::NoData);
        let e = train(&data, &TrainConfig { learning_rate: f32::INFINITY, ..d }, |_| {}).unwrap_err();
        assert!(e.to_string().contains("learning_rate"), "{e}");
    }

    /// The loss falls and the callback sees every epoch; no hidden layer works too.
    #[test]
    fn learns_a_small_subset() {
        let data = digits::bundled().subset(&(0..200).collect::<Vec<_>>());
        let cfg = TrainConfig { hidden: vec![], epochs: 5, batch_size: 16, learning_rate: 0.02, seed: 3 };
        let mut seen = Vec::new();
        let m = train(&data, &cfg, |s| seen.push(*s)).unwrap();
        assert_eq!(m.widths(), [64, 10]);
        assert_eq!(seen.iter().map(|s| s.epoch).collect::<Vec<_>>(), [1, 2, 3, 4, 5]);
        assert!(seen[4].loss < seen[0].loss * 0.5, "{seen:?}");
        assert!(m.accuracy(&data) > 0.9, "a linear model fits 200 digits: {}", m.accuracy(&data));
    }
}
