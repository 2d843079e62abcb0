//! Training: the float CNN on the digits, Adam on mini-batches, softmax cross-entropy (the same
//! loop, Adam, softmax and determinism rules as the MLP trainer, [`super::train`]).
//!
//! ```text
//!   architecture (CnnTrainConfig::default(), channels [c1, c2] = [8, 16]):
//!     8x8x1 ─► conv 3x3, c1, pad 1, ReLU ─► 8x8xc1 ─► conv 3x3, c2, stride 2, pad 1, ReLU ─► 4x4xc2
//!           ─► maxpool 2x2 stride 2 ─► 2x2xc2 ─► flatten ─► 4*c2 ─► dense 4*c2 -> 10 (logits)
//!
//!   for epoch in 1..=epochs:
//!     order = Fisher–Yates(0..N)                        SplitMix64(seed), one stream for everything
//!     for each batch of `batch_size` images, in order:
//!       for each image, one after the other:
//!         augment   with probability 1/2, shift the image by (dy, dx) uniform in {-1, 0, 1}^2
//!                   (zeros shifted in; (0, 0) included)
//!         forward   cnn::forward_image (the model's own evaluation code)
//!         backward  d = softmax(logits) - onehot(label), then op by op, last first:
//!                   dense   dW += a^T d, db += d, d_in = d W^T           (ReLU: d *= [out > 0] first)
//!                   conv    per output pixel: dW += patch^T d, db += d,
//!                           d_patch = d W^T scattered back onto the input (im2col transposed)
//!                   maxpool d to the winning input (the first max in window order)
//!                   avgpool d / (H*W) to every input;   flatten: d unchanged
//!       Adam (beta1 0.9, beta2 0.999, eps 1e-8) on the batch mean of the gradients, step size
//!       cosine-decayed: lr_t = learning_rate * (1 + cos(pi * t / T)) / 2, t = 0..T-1 the Adam step
//! ```
//!
//! The shifts and the decay are fixed parts of the algorithm, not options. Without them (a
//! constant step size, no shifts) the network fits the 1297 training images perfectly and
//! scores 96.4-98.6% on the 500 test images over the seeds and settings tried; with them and
//! the default configuration, 98.4-99.2% over seeds 1..8 (99.2% for the default seed 1):
//!
//! ```text
//! cargo run --release --example cnn_train -- '{"channels": [8, 16], "epochs": 50, "batch_size": 32,
//!                                              "learning_rate": 0.02, "seed": 2}'
//! ```
//!
//! Determinism: one thread, a fixed order everywhere, no BLAS, no fused multiply-add, `expf` /
//! `logf` / `cosf` from the pure-Rust `libm` crate: a seed gives bit-identical weights on every machine.
//! Initial weights: uniform in ±sqrt(6 / fan_in) (He; fan_in = kh*kw*c_in for a convolution),
//! biases 0, drawn in op order.

use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};

use super::cnn::{forward_image, FloatCnn, FloatConv, FloatOp, Plan, Shape, Step};
use super::digits::{Dataset, CLASSES, FEATURES};
use super::train::{softmax_cross_entropy, with_epoch_progress, Adam, Dense, EpochStats, TrainError};
use spec::rng::SplitMix64;

/// The digits as the CNN sees them: 8 x 8 pixels, one channel (`Dataset::inputs`, NHWC).
pub const DIGITS_INPUT: Shape = (8, 8, 1);

/// Hyper-parameters of [`train_cnn`]; the architecture is fixed (see the module docs), only
/// its channel counts vary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CnnTrainConfig {
    /// Output channels of the two convolutions.
    pub channels: [usize; 2],
    /// Passes over the training set.
    pub epochs: usize,
    /// Images per Adam step.
    pub batch_size: usize,
    /// Adam's initial step size (decayed to 0 along a cosine over the training).
    pub learning_rate: f32,
    /// Seed of the initial weights and of the batch order.
    pub seed: u64,
}

impl Default for CnnTrainConfig {
    /// Channels [8, 16], 50 epochs of batches of 32, Adam at 0.02 (cosine-decayed), seed 1.
    fn default() -> Self {
        CnnTrainConfig { channels: [8, 16], epochs: 50, batch_size: 32, learning_rate: 0.02, seed: 1 }
    }
}

impl CnnTrainConfig {
    fn check(&self) -> Result<(), TrainError> {
        let bad = |what: &str| Err(TrainError::Config(what.to_string()));
        if self.channels.contains(&0) {
            return bad("channels must be >= 1");
        }
        if self.channels.iter().any(|&c| c > 4096) {
            return bad("channels must be <= 4096");
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

    /// The architecture with He-uniform weights from `rng` (conv1, conv2, dense, in that order).
    fn initial_model(&self, rng: &mut SplitMix64) -> FloatCnn {
        let [c1, c2] = self.channels;
        let conv = |c_in: usize, c_out: usize, stride: usize, rng: &mut SplitMix64| {
            let p = Dense::init(9 * c_in, c_out, rng);
            FloatOp::Conv2d(FloatConv {
                kh: 3,
                kw: 3,
                c_in,
                c_out,
                stride: (stride, stride),
                padding: [1; 4],
                weights: DMatrix::from_row_slice(p.k, p.n, &p.w),
                bias: DVector::from_column_slice(&p.b),
                relu: true,
            })
        };
        let ops = vec![
            conv(DIGITS_INPUT.2, c1, 1, rng),
            conv(c1, c2, 2, rng),
            FloatOp::MaxPool2d { kernel: (2, 2), stride: (2, 2), padding: [0; 4] },
            FloatOp::Flatten,
            FloatOp::Dense(Dense::init(4 * c2, CLASSES, rng).to_float_layer(false)),
        ];
        FloatCnn::new(DIGITS_INPUT, ops).expect("the fixed architecture fits 8x8x1 inputs")
    }
}

/// `model` with the parameters `params` (op order, row-major) in place of its own.
fn with_params(model: &FloatCnn, params: &[Dense]) -> FloatCnn {
    let mut out = model.clone();
    let mut next = params.iter();
    for op in &mut out.ops {
        let (weights, bias) = match op {
            FloatOp::Conv2d(c) => (&mut c.weights, &mut c.bias),
            FloatOp::Dense(l) => (&mut l.weights, &mut l.bias),
            _ => continue,
        };
        let p = next.next().expect("one parameter set per conv and dense op");
        *weights = DMatrix::from_row_slice(p.k, p.n, &p.w);
        *bias = DVector::from_column_slice(&p.b);
    }
    out
}

/// Buffers for one image's forward and backward pass.
struct Scratch {
    /// The input, then every op's output.
    acts: Vec<Vec<f32>>,
    /// d loss / d each activation.
    deltas: Vec<Vec<f32>>,
    patch: Vec<f32>,
    dpatch: Vec<f32>,
}

impl Scratch {
    fn new(plan: &Plan) -> Self {
        let patch = vec![0.0; plan.max_patch()];
        Scratch { acts: plan.buffers(), deltas: plan.buffers(), dpatch: patch.clone(), patch }
    }
}

/// `g.w += a^T d` (row k += a[k] * d, zero inputs skipped) and `g.b += d`.
fn add_outer(g: &mut Dense, a: &[f32], d: &[f32]) {
    for (k, &av) in a.iter().enumerate() {
        if av != 0.0 {
            for (gw, &dv) in g.w[k * g.n..(k + 1) * g.n].iter_mut().zip(d) {
                *gw += av * dv;
            }
        }
    }
    for (gb, &dv) in g.b.iter_mut().zip(d) {
        *gb += dv;
    }
}

/// `out = d W^T`: `out[k] = sum_n W[k][n] d[n]`, n in order.
fn times_transposed(p: &Dense, d: &[f32], out: &mut [f32]) {
    for (k, o) in out.iter_mut().enumerate() {
        *o = p.w[k * p.n..(k + 1) * p.n].iter().zip(d).fold(0.0, |s, (&w, &dv)| s + w * dv);
    }
}

/// ReLU's derivative: zero the gradient where the output was not positive.
fn relu_mask(d: &mut [f32], out: &[f32]) {
    for (dv, &o) in d.iter_mut().zip(out) {
        if o <= 0.0 {
            *dv = 0.0;
        }
    }
}

/// Forward, loss and backward of one image (`s.acts[0]` must hold it); adds its gradients to
/// `grads` and returns (cross-entropy, predicted class).
fn accumulate(
    plan: &Plan,
    params: &[Dense],
    label: usize,
    grads: &mut [Dense],
    s: &mut Scratch,
) -> (f32, usize) {
    forward_image(plan, params, &mut s.acts, &mut s.patch);
    let last = plan.steps.len();
    let logits = &s.acts[last];
    let predicted = (1..logits.len()).fold(0, |b, c| if logits[c] > logits[b] { c } else { b });
    // d = softmax(logits) - onehot(label)
    let d = &mut s.deltas[last];
    d.copy_from_slice(logits);
    let loss = softmax_cross_entropy(d, label);
    d[label] -= 1.0;
    for (st, step) in plan.steps.iter().enumerate().rev() {
        let (dlo, dhi) = s.deltas.split_at_mut(st + 1);
        let (din, dout) = (&mut dlo[st], &mut dhi[0]);
        let (input, output) = (&s.acts[st], &s.acts[st + 1]);
        // no gradient is needed for the image itself
        let need_input = st > 0;
        match *step {
            Step::Conv { window, relu, param } => {
                if relu {
                    relu_mask(dout, output);
                }
                din.fill(0.0);
                let (p, g) = (&params[param], &mut grads[param]);
                let (patch, dpatch) = (&mut s.patch[..p.k], &mut s.dpatch[..p.k]);
                let (oh_n, ow_n, n) = window.output;
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        let d = &dout[(oh * ow_n + ow) * n..][..n];
                        window.gather(input, oh, ow, patch);
                        add_outer(g, patch, d);
                        if need_input {
                            times_transposed(p, d, dpatch);
                            window.scatter_add(dpatch, oh, ow, din);
                        }
                    }
                }
            }
            Step::MaxPool { window } => {
                din.fill(0.0);
                let (oh_n, ow_n, c) = window.output;
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        for ch in 0..c {
                            din[window.argmax(input, oh, ow, ch)] += dout[(oh * ow_n + ow) * c + ch];
                        }
                    }
                }
            }
            Step::GlobalAvgPool { input: (h, w, c) } => {
                let count = (h * w) as f32;
                for p in 0..h * w {
                    for ch in 0..c {
                        din[p * c + ch] = dout[ch] / count;
                    }
                }
            }
            Step::Flatten => din.copy_from_slice(dout),
            Step::Dense { relu, param } => {
                if relu {
                    relu_mask(dout, output);
                }
                add_outer(&mut grads[param], input, dout);
                if need_input {
                    times_transposed(&params[param], dout, din);
                }
            }
        }
    }
    (loss, predicted)
}

/// Mean cross-entropy of `model` on `images` (one per row) and the gradient sums of every
/// parameter (op order, row-major) — what one Adam step of a batch of these images sees.
#[cfg(test)]
fn loss_and_gradients(model: &FloatCnn, images: &DMatrix<f32>, labels: &[usize]) -> (f32, Vec<Dense>) {
    let plan = model.plan();
    let params = model.params();
    let mut grads: Vec<Dense> = params.iter().map(Dense::zeros_like).collect();
    let mut s = Scratch::new(&plan);
    let mut loss = 0.0;
    for (r, &label) in labels.iter().enumerate() {
        for (a, v) in s.acts[0].iter_mut().zip(images.row(r).iter()) {
            *a = *v;
        }
        loss += accumulate(&plan, &params, label, &mut grads, &mut s).0;
    }
    (loss / labels.len() as f32, grads)
}

/// `src` (an H x W x C image, NHWC) shifted down by `dy` and right by `dx` pixels into `dst`,
/// zeros shifted in.
fn shift_image(src: &[f32], (h, w, c): Shape, (dy, dx): (isize, isize), dst: &mut [f32]) {
    for y in 0..h {
        for x in 0..w {
            let sy = y.checked_add_signed(-dy).filter(|&v| v < h);
            let sx = x.checked_add_signed(-dx).filter(|&v| v < w);
            let to = &mut dst[(y * w + x) * c..][..c];
            match (sy, sx) {
                (Some(sy), Some(sx)) => to.copy_from_slice(&src[(sy * w + sx) * c..][..c]),
                _ => to.fill(0.0),
            }
        }
    }
}

/// The step size of Adam step `t` of `total`: `lr * (1 + cos(pi * t / total)) / 2`.
fn cosine_decay(lr: f32, t: usize, total: usize) -> f32 {
    lr * 0.5 * (1.0 + libm::cosf(std::f32::consts::PI * t as f32 / total as f32))
}

/// Train `model`'s parameters on `data` (its images must be `model`'s input) from where they
/// are; `rng` shuffles the batches and draws the shifts.
fn fit(
    model: &FloatCnn,
    data: &Dataset,
    cfg: &CnnTrainConfig,
    rng: &mut SplitMix64,
    mut on_epoch: impl FnMut(&EpochStats),
) -> Result<FloatCnn, TrainError> {
    let plan = model.plan();
    let mut params = model.params();
    let mut grads: Vec<Dense> = params.iter().map(Dense::zeros_like).collect();
    let mut adam = Adam::new(&params);
    let mut s = Scratch::new(&plan);
    let x = data.inputs();
    let rows: Vec<Vec<f32>> = (0..data.len()).map(|r| x.row(r).iter().copied().collect()).collect();
    let mut order: Vec<usize> = (0..data.len()).collect();
    let steps = data.len().div_ceil(cfg.batch_size).checked_mul(cfg.epochs).expect("the step count fits");
    let mut t = 0;
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
                if rng.below(2) == 1 {
                    let dy = rng.below(3) as isize - 1;
                    let dx = rng.below(3) as isize - 1;
                    shift_image(&rows[i], model.input, (dy, dx), &mut s.acts[0]);
                } else {
                    s.acts[0].copy_from_slice(&rows[i]);
                }
                let (loss, predicted) = accumulate(&plan, &params, label, &mut grads, &mut s);
                loss_sum += f64::from(loss);
                correct += usize::from(predicted == label);
            }
            adam.step(&mut params, &grads, batch.len(), cosine_decay(cfg.learning_rate, t, steps));
            t += 1;
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
    Ok(with_params(model, &params))
}

/// Train the digits CNN of `cfg` on `data`; `on_epoch` is called after each epoch (for
/// progress; its loss and accuracy are those of the epoch's images as trained on, shifts
/// included).
pub fn train_cnn(
    data: &Dataset,
    cfg: &CnnTrainConfig,
    on_epoch: impl FnMut(&EpochStats),
) -> Result<FloatCnn, TrainError> {
    cfg.check()?;
    if data.is_empty() {
        return Err(TrainError::NoData);
    }
    debug_assert_eq!(FEATURES, DIGITS_INPUT.0 * DIGITS_INPUT.1 * DIGITS_INPUT.2);
    let mut rng = SplitMix64::new(cfg.seed);
    let model = cfg.initial_model(&mut rng);
    fit(&model, data, cfg, &mut rng, on_epoch)
}

/// [`train_cnn`] with a progress bar on stderr, one tick per epoch; hidden when `quiet` or
/// when stderr is not a terminal (a pipe, a file, CI).
pub fn train_cnn_with_progress(
    data: &Dataset,
    cfg: &CnnTrainConfig,
    quiet: bool,
) -> Result<FloatCnn, TrainError> {
    with_epoch_progress("training CNN", cfg.epochs, quiet, |on_epoch| train_cnn(data, cfg, on_epoch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::cnn::FloatConv;
    use crate::nn::digits;
    use driver::quant::FloatLayer;
    use std::sync::OnceLock;

    #[test]
    fn config_checks() {
        let data = digits::bundled().subset(&[0, 1, 2]);
        let bad = |cfg: CnnTrainConfig| train_cnn(&data, &cfg, |_| {}).unwrap_err().to_string();
        let d = CnnTrainConfig::default();
        assert_eq!(
            bad(CnnTrainConfig { channels: [8, 0], ..d.clone() }),
            "bad training configuration: channels must be >= 1"
        );
        assert!(bad(CnnTrainConfig { channels: [5000, 1], ..d.clone() }).contains("channels must be <= 4096"));
        assert!(bad(CnnTrainConfig { epochs: 0, ..d.clone() }).contains("epochs"));
        assert!(bad(CnnTrainConfig { batch_size: 0, ..d.clone() }).contains("batch_size"));
        assert!(bad(CnnTrainConfig { learning_rate: -1.0, ..d.clone() }).contains("learning_rate"));
        assert!(bad(CnnTrainConfig { learning_rate: f32::NAN, ..d.clone() }).contains("learning_rate"));
        assert_eq!(train_cnn(&data.subset(&[]), &d, |_| {}).unwrap_err(), TrainError::NoData);
        // a config is JSON with exactly these fields
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(serde_json::from_str::<CnnTrainConfig>(&json).unwrap(), d);
        let e = serde_json::from_str::<CnnTrainConfig>(&json.replace("\"seed\"", "\"sead\"")).unwrap_err();
        assert!(e.to_string().contains("unknown field `sead`"), "{e}");
    }

    #[test]
    fn the_architecture() {
        let cfg = CnnTrainConfig { channels: [3, 5], ..CnnTrainConfig::default() };
        let m = cfg.initial_model(&mut SplitMix64::new(1));
        assert_eq!(m.input, (8, 8, 1));
        assert_eq!(m.shapes(), [(8, 8, 3), (4, 4, 5), (2, 2, 5), (1, 1, 20), (1, 1, 10)]);
        assert_eq!(m.parameters(), (9 * 3 + 3) + (27 * 5 + 5) + (20 * 10 + 10));
        let default = CnnTrainConfig::default().initial_model(&mut SplitMix64::new(1));
        assert_eq!(default.shapes(), [(8, 8, 8), (4, 4, 16), (2, 2, 16), (1, 1, 64), (1, 1, 10)]);
        // He-uniform: |w| < sqrt(6 / fan_in), biases 0
        for (p, fan_in) in default.params().iter().zip([9.0f32, 72.0, 64.0]) {
            assert!(p.w.iter().all(|w| w.abs() < (6.0 / fan_in).sqrt()));
            assert!(p.w.iter().any(|w| w.abs() > 0.5 * (6.0 / fan_in).sqrt()));
            assert!(p.b.iter().all(|&b| b == 0.0));
        }
    }

    /// A tiny network over every op: odd sizes, asymmetric padding and strides, a padded max
    /// pool, a ReLU-less convolution, global average pooling in a side branch of the test.
    fn tiny_networks(rng: &mut SplitMix64) -> Vec<FloatCnn> {
        let mut values = |n: usize, scale: f32| -> Vec<f32> {
            (0..n).map(|_| (2.0 * rng.next_f32() - 1.0) * scale).collect()
        };
        let mut conv = |kh: usize, kw: usize, c_in: usize, c_out: usize, stride, padding, relu| {
            let k = kh * kw * c_in;
            FloatOp::Conv2d(FloatConv {
                kh,
                kw,
                c_in,
                c_out,
                stride,
                padding,
                weights: DMatrix::from_row_slice(k, c_out, &values(k * c_out, (6.0 / k as f32).sqrt())),
                bias: DVector::from_column_slice(&values(c_out, 0.2)),
                relu,
            })
        };
        let a = vec![
            conv(3, 2, 2, 3, (2, 1), [1, 0, 1, 1], true), // 5x4x2 -> 3x4x3
            FloatOp::MaxPool2d { kernel: (2, 2), stride: (1, 1), padding: [1, 1, 0, 0] }, // -> 3x4x3
            conv(2, 2, 3, 2, (1, 1), [0; 4], false),      // -> 2x3x2
            FloatOp::Flatten,                             // -> 12
        ];
        let b = vec![
            conv(1, 1, 2, 4, (1, 1), [0; 4], true), // 5x4x2 -> 5x4x4
            conv(3, 3, 4, 3, (2, 2), [1; 4], true), // -> 3x2x3
            FloatOp::GlobalAvgPool,                 // -> 3
        ];
        let mut dense = |k: usize, n: usize, relu: bool| {
            FloatOp::Dense(FloatLayer {
                weights: DMatrix::from_row_slice(k, n, &values(k * n, (6.0 / k as f32).sqrt())),
                bias: DVector::from_column_slice(&values(n, 0.2)),
                relu,
            })
        };
        let a = a.into_iter().chain([dense(12, 5, true), dense(5, 4, false)]).collect();
        let b = b.into_iter().chain([dense(3, 4, false)]).collect();
        vec![FloatCnn::new((5, 4, 2), a).unwrap(), FloatCnn::new((5, 4, 2), b).unwrap()]
    }

    /// Backprop agrees with finite differences of the loss, for every parameter of the tiny
    /// networks (f32, so a relative tolerance). Central differences, except at a ReLU or max
    /// pool kink within eps of the parameter, where one one-sided difference is off and the
    /// other must match (few such kinks are allowed).
    #[test]
    fn gradients_match_finite_differences() {
        let mut rng = SplitMix64::new(11);
        let images = 3;
        let x = DMatrix::from_fn(images, 40, |_, _| rng.next_f32());
        let labels = [0, 3, 1];
        let eps = 3e-4f32;
        let tolerance = |g: f32| 1e-3 + 2e-2 * g.abs();
        for (net, model) in tiny_networks(&mut rng).iter().enumerate() {
            let (loss, grads) = loss_and_gradients(model, &x, &labels);
            assert!(loss.is_finite() && loss > 0.1, "{loss}");
            let params = model.params();
            let (mut checked, mut large, mut kinks) = (0, 0, 0);
            for set in 0..params.len() {
                for (bias, len) in [(false, params[set].w.len()), (true, params[set].b.len())] {
                    for i in 0..len {
                        let loss_at = |delta: f32| {
                            let mut q = params.clone();
                            if bias {
                                q[set].b[i] += delta;
                            } else {
                                q[set].w[i] += delta;
                            }
                            loss_and_gradients(&with_params(model, &q), &x, &labels).0
                        };
                        let (below, at, above) = (loss_at(-eps), loss_at(0.0), loss_at(eps));
                        let sum = if bias { grads[set].b[i] } else { grads[set].w[i] };
                        let analytic = sum / images as f32;
                        let central = (above - below) / (2.0 * eps);
                        let (right, left) = ((above - at) / eps, (at - below) / eps);
                        let close = |numeric: f32, factor: f32| {
                            (numeric - analytic).abs() <= factor * tolerance(analytic)
                        };
                        if !close(central, 1.0) {
                            assert!(
                                close(right, 2.0) != close(left, 2.0),
                                "net {net}, parameter set {set}, {} {i}: backprop {analytic}, finite differences \
                                 {central} (right {right}, left {left})",
                                if bias { "bias" } else { "weight" }
                            );
                            kinks += 1;
                        }
                        checked += 1;
                        large += usize::from(analytic.abs() > 0.01);
                    }
                }
            }
            assert_eq!(checked, model.parameters());
            assert!(kinks * 50 <= checked, "net {net}: {kinks} kinks in {checked} parameters");
            assert!(large * 3 >= checked, "net {net}: most gradients are tiny ({large} of {checked} > 0.01)");
        }
    }

    /// The maximum's gradient goes to the first largest input of the window only.
    #[test]
    fn maxpool_gradient_goes_to_the_first_winner() {
        // 1x3x1 -> conv 1x1 (identity) -> maxpool 1x3 -> flatten -> dense 1 -> 2 [1, -1]
        let ops = vec![
            FloatOp::Conv2d(FloatConv {
                kh: 1,
                kw: 1,
                c_in: 1,
                c_out: 1,
                stride: (1, 1),
                padding: [0; 4],
                weights: DMatrix::from_element(1, 1, 1.0),
                bias: DVector::zeros(1),
                relu: false,
            }),
            FloatOp::MaxPool2d { kernel: (1, 3), stride: (1, 1), padding: [0; 4] },
            FloatOp::Flatten,
            FloatOp::Dense(FloatLayer {
                weights: DMatrix::from_row_slice(1, 2, &[1.0, -1.0]),
                bias: DVector::zeros(2),
                relu: false,
            }),
        ];
        let model = FloatCnn::new((1, 3, 1), ops).unwrap();
        let plan = model.plan();
        let params = model.params();
        let mut grads: Vec<Dense> = params.iter().map(Dense::zeros_like).collect();
        let mut s = Scratch::new(&plan);
        s.acts[0].copy_from_slice(&[1.0, 2.0, 2.0]);
        let (loss, predicted) = accumulate(&plan, &params, 0, &mut grads, &mut s);
        // logits [2, -2]: p0 = 1 / (1 + e^-4); d logits = [p0 - 1, 1 - p0]; d max = 2 (p0 - 1)
        let p0 = 1.0 / (1.0 + (-4f32).exp());
        assert_eq!(predicted, 0);
        assert!((loss + p0.ln()).abs() < 1e-6);
        let d = 2.0 * (p0 - 1.0);
        assert!((s.deltas[1][1] - d).abs() < 1e-6, "{:?}", s.deltas[1]);
        assert_eq!([s.deltas[1][0], s.deltas[1][2]], [0.0, 0.0], "the tie's second 2 gets nothing");
        // the 1x1 convolution's weight gradient: d * x at the winner = 2 d; bias: d
        assert!((grads[0].w[0] - 2.0 * d).abs() < 1e-6 && (grads[0].b[0] - d).abs() < 1e-6);
    }

    #[test]
    fn shifts_and_decay_by_hand() {
        // a 2x3 image of 2 channels: pixel p = (p, 10 p), p = 1..6
        let src: Vec<f32> = (1..=6).flat_map(|p| [p as f32, 10.0 * p as f32]).collect();
        let mut dst = vec![f32::NAN; 12];
        let shifted = |d: (isize, isize), dst: &mut Vec<f32>| {
            shift_image(&src, (2, 3, 2), d, dst);
            dst.chunks(2).map(|p| p[0]).collect::<Vec<_>>()
        };
        assert_eq!(shifted((0, 0), &mut dst), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(dst, src);
        assert_eq!(shifted((1, 0), &mut dst), [0.0, 0.0, 0.0, 1.0, 2.0, 3.0], "down");
        assert_eq!(shifted((0, -1), &mut dst), [2.0, 3.0, 0.0, 5.0, 6.0, 0.0], "left");
        assert_eq!(shifted((-1, 1), &mut dst), [0.0, 4.0, 5.0, 0.0, 0.0, 0.0], "up and right");
        assert_eq!(dst[3], 40.0, "channels move together");
        // lr (1 + cos(pi t / T)) / 2
        assert_eq!(cosine_decay(0.02, 0, 100), 0.02);
        assert!((cosine_decay(0.02, 50, 100) - 0.01).abs() < 1e-8);
        assert!((cosine_decay(0.02, 25, 100) - 0.01 * (1.0 + 0.5f32.sqrt())).abs() < 1e-8);
        assert!(cosine_decay(0.02, 99, 100) > 0.0, "the last step still moves");
    }

    /// Two runs of a seed give the same bits; another seed does not.
    #[test]
    fn training_is_deterministic() {
        let data = digits::bundled().subset(&(0..200).collect::<Vec<_>>());
        let cfg = CnnTrainConfig { channels: [4, 8], epochs: 2, batch_size: 16, ..CnnTrainConfig::default() };
        let a = train_cnn(&data, &cfg, |_| {}).unwrap();
        let b = train_cnn(&data, &cfg, |_| {}).unwrap();
        assert!(a.bit_identical(&b));
        let c = train_cnn(&data, &CnnTrainConfig { seed: 2, ..cfg }, |_| {}).unwrap();
        assert!(!a.bit_identical(&c));
    }

    /// The default configuration on the standard split, trained once for the tests below.
    fn standard() -> &'static (digits::Split, FloatCnn, Vec<EpochStats>) {
        static MODEL: OnceLock<(digits::Split, FloatCnn, Vec<EpochStats>)> = OnceLock::new();
        MODEL.get_or_init(|| {
            let split = digits::standard_split(&digits::bundled()).unwrap();
            let mut stats = Vec::new();
            let model = train_cnn(&split.train, &CnnTrainConfig::default(), |s| stats.push(*s)).unwrap();
            (split, model, stats)
        })
    }

    #[test]
    fn accuracy_on_the_standard_split() {
        let (split, model, _) = standard();
        assert_eq!((split.train.len(), split.test.len()), (1297, 500));
        let test = model.accuracy(&split.test);
        assert!(test >= 0.98, "float test accuracy {test}");
        assert!(model.accuracy(&split.train) > test - 0.001, "train accuracy below test");
    }

    #[test]
    fn the_loss_falls() {
        let (_, _, stats) = standard();
        let cfg = CnnTrainConfig::default();
        assert_eq!(stats.iter().map(|s| s.epoch).collect::<Vec<_>>(), (1..=cfg.epochs).collect::<Vec<_>>());
        assert!(stats.iter().all(|s| s.epochs == cfg.epochs));
        let (first, last) = (stats[0], stats[stats.len() - 1]);
        assert!(last.loss < 0.1 * first.loss, "{first:?} -> {last:?}");
        assert!(last.train_accuracy > first.train_accuracy && last.train_accuracy > 0.98, "{last:?}");
    }
}
