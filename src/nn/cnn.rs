//! The float CNN: a chain of convolutions, max pools, a global average pool, flatten and dense
//! layers, raw logits out. The trainer is [`super::cnn_train`].
//!
//! ```text
//!   x (M x H*W*C, f32, one image per row, NHWC: index (h * W + w) * C + c)
//!     │
//!     ├─ Conv2d       per output pixel: patch (im2col row, K = kh*kw*c_in, zeros in the padding)
//!     │               · W (K x c_out) + b, ReLU or not            -> OH x OW x c_out
//!     ├─ MaxPool2d    max over the window, padded positions never win   -> OH x OW x C
//!     ├─ GlobalAvgPool mean over H, W per channel                        -> 1 x 1 x C
//!     ├─ Flatten      (H, W, C) -> 1 x 1 x H*W*C, the same numbers in the same order
//!     └─ Dense        x · W (K x N) + b, ReLU or not (needs a 1 x 1 x K input) -> 1 x 1 x N
//!     ▼
//!   logits (M x N) ─► argmax
//! ```
//!
//! Output sizes follow PyTorch and ONNX: `OH = floor((H + top + bottom - KH) / SH) + 1`
//! ([`output_size`]), likewise OW.
//!
//! Evaluation is a plain sequential loop per image, in a fixed order (bias first, then the
//! patch or input element k = 0, 1, ..., skipping zero inputs, which add nothing); no BLAS, no
//! threads, no fused multiply-add. So a model gives bit-identical outputs on every machine, and
//! the trainer, which runs the very same per-image code ([`forward_image`]), sees the same
//! numbers as [`FloatCnn::forward_all`].

use driver::quant::FloatLayer;
use nalgebra::{DMatrix, DVector};
use thiserror::Error;

use super::digits::Dataset;
use super::float::accuracy;
use super::train::Dense;

/// The shape of an image or activation: (H, W, C).
pub type Shape = (usize, usize, usize);

/// A float 2-D convolution `y = act(conv(x, W) + b)` with zero padding.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatConv {
    /// Kernel rows.
    pub kh: usize,
    /// Kernel columns.
    pub kw: usize,
    /// Input channels.
    pub c_in: usize,
    /// Output channels.
    pub c_out: usize,
    /// (rows, columns) between two windows.
    pub stride: (usize, usize),
    /// Zero padding: top, left, bottom, right.
    pub padding: [usize; 4],
    /// K x N with K = kh*kw*c_in, row index (i * kw + j) * c_in + c (i kernel row, j kernel col,
    /// c input channel), N = c_out: exactly the im2col GEMM weight matrix.
    pub weights: DMatrix<f32>,
    /// N biases.
    pub bias: DVector<f32>,
    /// Apply ReLU to the output.
    pub relu: bool,
}

/// One op of a [`FloatCnn`].
#[derive(Debug, Clone, PartialEq)]
pub enum FloatOp {
    /// A convolution.
    Conv2d(FloatConv),
    /// max over the window; padded positions never win (as PyTorch/ONNX: pad with -inf)
    MaxPool2d {
        /// Window (rows, columns).
        kernel: (usize, usize),
        /// (rows, columns) between two windows.
        stride: (usize, usize),
        /// Top, left, bottom, right; each smaller than the kernel on its side, so that every
        /// window holds at least one input.
        padding: [usize; 4],
    },
    /// Mean over H, W per channel -> 1x1xC.
    GlobalAvgPool,
    /// (H, W, C) -> H*W*C features, no data movement.
    Flatten,
    /// A dense layer, weights K x N, bias, ReLU; its input must be 1 x 1 x K.
    Dense(FloatLayer),
}

impl FloatOp {
    /// The op's name in messages: `conv2d`, `maxpool2d`, `global_avg_pool`, `flatten`, `dense`.
    pub fn name(&self) -> &'static str {
        match self {
            FloatOp::Conv2d(_) => "conv2d",
            FloatOp::MaxPool2d { .. } => "maxpool2d",
            FloatOp::GlobalAvgPool => "global_avg_pool",
            FloatOp::Flatten => "flatten",
            FloatOp::Dense(_) => "dense",
        }
    }
}

/// Why a [`FloatCnn`] cannot be built: the message names the op and its input shape.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CnnShapeError {
    /// The input shape itself.
    #[error("input {}x{}x{}: {reason}", .input.0, .input.1, .input.2)]
    Input {
        /// (H, W, C).
        input: Shape,
        /// What is wrong.
        reason: String,
    },
    /// An op does not fit its input or is malformed.
    #[error("op {index} ({op}) on a {}x{}x{} input: {reason}", .input.0, .input.1, .input.2)]
    Op {
        /// The op's position, 0-based.
        index: usize,
        /// Its [`FloatOp::name`].
        op: &'static str,
        /// Its input (H, W, C).
        input: Shape,
        /// What is wrong.
        reason: String,
    },
}

/// `floor((input + pad_before + pad_after - kernel) / stride) + 1`, the output length of a
/// window sliding over a padded axis (PyTorch, ONNX); `None` if the kernel is longer than the
/// padded input, the kernel or the stride is 0, or the sum overflows.
pub fn output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    pad_before: usize,
    pad_after: usize,
) -> Option<usize> {
    let padded = input.checked_add(pad_before)?.checked_add(pad_after)?;
    if kernel == 0 || stride == 0 || kernel > padded {
        return None;
    }
    Some((padded - kernel) / stride + 1)
}

/// Where a window op reads: the geometry shared by convolution and max pooling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub(crate) kernel: (usize, usize),
    pub(crate) stride: (usize, usize),
    /// top, left (bottom and right only shape the output size)
    pub(crate) before: (usize, usize),
    pub(crate) input: Shape,
    pub(crate) output: Shape,
}

impl Window {
    /// The input row (or column) read by output `o` at kernel offset `i`, `None` in the padding.
    fn source(o: usize, i: usize, stride: usize, before: usize, size: usize) -> Option<usize> {
        (o * stride + i).checked_sub(before).filter(|&s| s < size)
    }

    /// The input pixel (h, w) under kernel position (i, j) of output pixel (oh, ow).
    fn pixel(&self, oh: usize, ow: usize, i: usize, j: usize) -> Option<usize> {
        let (h, w, _) = self.input;
        let ih = Self::source(oh, i, self.stride.0, self.before.0, h)?;
        let iw = Self::source(ow, j, self.stride.1, self.before.1, w)?;
        Some(ih * w + iw)
    }

    /// The im2col row of output pixel (oh, ow): `patch[(i * kw + j) * C + c]`, zero in the padding.
    pub(crate) fn gather(&self, input: &[f32], oh: usize, ow: usize, patch: &mut [f32]) {
        let c = self.input.2;
        for i in 0..self.kernel.0 {
            for j in 0..self.kernel.1 {
                let dst = &mut patch[(i * self.kernel.1 + j) * c..][..c];
                match self.pixel(oh, ow, i, j) {
                    Some(p) => dst.copy_from_slice(&input[p * c..][..c]),
                    None => dst.fill(0.0),
                }
            }
        }
    }

    /// Add the im2col row gradient `dpatch` of output pixel (oh, ow) back onto the input
    /// gradient (the transposed im2col); padded positions are dropped.
    pub(crate) fn scatter_add(&self, dpatch: &[f32], oh: usize, ow: usize, dinput: &mut [f32]) {
        let c = self.input.2;
        for i in 0..self.kernel.0 {
            for j in 0..self.kernel.1 {
                if let Some(p) = self.pixel(oh, ow, i, j) {
                    let src = &dpatch[(i * self.kernel.1 + j) * c..][..c];
                    for (d, &g) in dinput[p * c..][..c].iter_mut().zip(src) {
                        *d += g;
                    }
                }
            }
        }
    }

    /// The input index that wins the max of channel `ch` at output pixel (oh, ow): the first
    /// largest in window order (i, then j); padded positions are skipped.
    pub(crate) fn argmax(&self, input: &[f32], oh: usize, ow: usize, ch: usize) -> usize {
        let c = self.input.2;
        let mut best: Option<usize> = None;
        for i in 0..self.kernel.0 {
            for j in 0..self.kernel.1 {
                if let Some(p) = self.pixel(oh, ow, i, j) {
                    let at = p * c + ch;
                    if best.is_none_or(|b| input[at] > input[b]) {
                        best = Some(at);
                    }
                }
            }
        }
        best.expect("FloatCnn::new checks that every pooling window holds an input")
    }
}

/// An op with its shapes resolved; parameters live apart, in a `Dense` (row-major K x N, the
/// im2col weight matrix for a convolution), `param` indexing them in op order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Conv { window: Window, relu: bool, param: usize },
    MaxPool { window: Window },
    GlobalAvgPool { input: Shape },
    Flatten,
    Dense { relu: bool, param: usize },
}

/// The resolved ops of a [`FloatCnn`] and every activation's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<Step>,
    /// The input's shape, then each step's output shape.
    pub(crate) shapes: Vec<Shape>,
}

impl Plan {
    /// Elements of activation `i` (0: the input).
    pub(crate) fn size(&self, i: usize) -> usize {
        let (h, w, c) = self.shapes[i];
        h * w * c
    }

    /// The longest im2col row of any convolution.
    pub(crate) fn max_patch(&self) -> usize {
        self.steps
            .iter()
            .map(|s| match s {
                Step::Conv { window, .. } => window.kernel.0 * window.kernel.1 * window.input.2,
                _ => 0,
            })
            .max()
            .unwrap_or(0)
    }

    /// Buffers for every activation, input first.
    pub(crate) fn buffers(&self) -> Vec<Vec<f32>> {
        (0..self.shapes.len()).map(|i| vec![0.0; self.size(i)]).collect()
    }
}

/// One image through the plan: `acts[0]` holds the input, `acts[i + 1]` receives step i's
/// output; `patch` holds at least [`Plan::max_patch`] values.
pub(crate) fn forward_image(plan: &Plan, params: &[Dense], acts: &mut [Vec<f32>], patch: &mut [f32]) {
    for (s, step) in plan.steps.iter().enumerate() {
        let (lo, hi) = acts.split_at_mut(s + 1);
        let (input, out) = (&lo[s], &mut hi[0]);
        match *step {
            Step::Conv { window, relu, param } => {
                let p = &params[param];
                let patch = &mut patch[..p.k];
                let (oh_n, ow_n, n) = window.output;
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        window.gather(input, oh, ow, patch);
                        let o = &mut out[(oh * ow_n + ow) * n..][..n];
                        p.forward(patch, o);
                        if relu {
                            o.iter_mut().for_each(|v| *v = v.max(0.0));
                        }
                    }
                }
            }
            Step::MaxPool { window } => {
                let (oh_n, ow_n, c) = window.output;
                for oh in 0..oh_n {
                    for ow in 0..ow_n {
                        for ch in 0..c {
                            out[(oh * ow_n + ow) * c + ch] = input[window.argmax(input, oh, ow, ch)];
                        }
                    }
                }
            }
            Step::GlobalAvgPool { input: (h, w, c) } => {
                let count = (h * w) as f32;
                for (ch, o) in out.iter_mut().enumerate() {
                    let sum = (0..h * w).fold(0f32, |s, p| s + input[p * c + ch]);
                    *o = sum / count;
                }
            }
            Step::Flatten => out.copy_from_slice(input),
            Step::Dense { relu, param } => {
                params[param].forward(input, out);
                if relu {
                    out.iter_mut().for_each(|v| *v = v.max(0.0));
                }
            }
        }
    }
}

/// A float CNN on (H, W, C) images.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatCnn {
    /// The input's (H, W, C).
    pub input: Shape,
    /// The ops, input side first.
    pub ops: Vec<FloatOp>,
}

impl FloatCnn {
    /// A CNN from its input shape and ops; every shape is checked, the error names the op.
    pub fn new(input: Shape, ops: Vec<FloatOp>) -> Result<Self, CnnShapeError> {
        plan(input, &ops)?;
        Ok(FloatCnn { input, ops })
    }

    /// The resolved ops.
    ///
    /// # Panics
    /// If the public fields were changed into an invalid model after [`FloatCnn::new`].
    pub(crate) fn plan(&self) -> Plan {
        plan(self.input, &self.ops).unwrap_or_else(|e| panic!("invalid FloatCnn: {e}"))
    }

    /// The parameters of the convolutions and dense layers, in op order, row-major.
    pub(crate) fn params(&self) -> Vec<Dense> {
        let dense = |w: &DMatrix<f32>, b: &DVector<f32>| Dense {
            k: w.nrows(),
            n: w.ncols(),
            // the transpose, column-major, is W row-major
            w: w.transpose().as_slice().to_vec(),
            b: b.iter().copied().collect(),
        };
        self.ops
            .iter()
            .filter_map(|op| match op {
                FloatOp::Conv2d(c) => Some(dense(&c.weights, &c.bias)),
                FloatOp::Dense(l) => Some(dense(&l.weights, &l.bias)),
                _ => None,
            })
            .collect()
    }

    /// (H, W, C) after each op (a dense layer gives (1, 1, N)).
    pub fn shapes(&self) -> Vec<Shape> {
        self.plan().shapes[1..].to_vec()
    }

    /// Features per image (H * W * C of the input).
    pub fn input_size(&self) -> usize {
        let (h, w, c) = self.input;
        h * w * c
    }

    /// The output of every op, in order, each M x (H*W*C) for M images in the rows of `x`.
    ///
    /// # Panics
    /// If `x` does not have H*W*C columns.
    pub fn forward_all(&self, x: &DMatrix<f32>) -> Vec<DMatrix<f32>> {
        assert_eq!(
            x.ncols(),
            self.input_size(),
            "inputs must have one column per input feature (H*W*C, NHWC)"
        );
        let plan = self.plan();
        let params = self.params();
        let mut acts = plan.buffers();
        let mut patch = vec![0.0; plan.max_patch()];
        let mut outs: Vec<DMatrix<f32>> =
            (1..plan.shapes.len()).map(|i| DMatrix::zeros(x.nrows(), plan.size(i))).collect();
        for m in 0..x.nrows() {
            for (a, v) in acts[0].iter_mut().zip(x.row(m).iter()) {
                *a = *v;
            }
            forward_image(&plan, &params, &mut acts, &mut patch);
            for (out, act) in outs.iter_mut().zip(&acts[1..]) {
                for (j, v) in act.iter().enumerate() {
                    out[(m, j)] = *v;
                }
            }
        }
        outs
    }

    /// The last op's output for the rows of `x`.
    ///
    /// # Panics
    /// If `x` does not have H*W*C columns.
    pub fn logits(&self, x: &DMatrix<f32>) -> DMatrix<f32> {
        self.forward_all(x).pop().expect("a FloatCnn has at least one op")
    }

    /// The predicted class of each row of `x` (the first largest logit).
    pub fn predict(&self, x: &DMatrix<f32>) -> Vec<usize> {
        super::float::argmax_rows(&self.logits(x))
    }

    /// The fraction of `data` classified correctly, in [0, 1].
    pub fn accuracy(&self, data: &Dataset) -> f64 {
        accuracy(&self.predict(&data.inputs()), data.labels())
    }

    /// Weights and biases.
    pub fn parameters(&self) -> usize {
        self.params().iter().map(|p| p.w.len() + p.b.len()).sum()
    }

    /// True if the shapes are the same and every weight and bias has the same bits as in
    /// `other` (stricter than `==`, which calls 0.0 and -0.0 equal).
    pub fn bit_identical(&self, other: &FloatCnn) -> bool {
        let bits = |m: &FloatCnn| -> Vec<u32> {
            m.params()
                .iter()
                .flat_map(|p| p.w.iter().chain(&p.b).map(|v| v.to_bits()).collect::<Vec<_>>())
                .collect()
        };
        self.input == other.input && self.shapes() == other.shapes() && bits(self) == bits(other)
    }
}

/// Check every op against its input and resolve the shapes. All sizes are computed with
/// checked arithmetic here, so that the forward and backward passes may use plain arithmetic.
fn plan(input: Shape, ops: &[FloatOp]) -> Result<Plan, CnnShapeError> {
    let bad_input = |reason: &str| Err(CnnShapeError::Input { input, reason: reason.to_string() });
    if input.0 == 0 || input.1 == 0 || input.2 == 0 {
        return bad_input("every dimension must be >= 1");
    }
    if input.0.checked_mul(input.1).and_then(|hw| hw.checked_mul(input.2)).is_none() {
        return bad_input("H*W*C overflows");
    }
    if ops.is_empty() {
        return bad_input("a CNN needs at least one op");
    }
    let mut shapes = vec![input];
    let mut steps = Vec::with_capacity(ops.len());
    let mut param = 0;
    for (index, op) in ops.iter().enumerate() {
        let shape = *shapes.last().expect("the input shape is first");
        let err = |reason: String| CnnShapeError::Op { index, op: op.name(), input: shape, reason };
        let (h, w, c) = shape;
        let size = |s: Shape| s.0.checked_mul(s.1).and_then(|hw| hw.checked_mul(s.2));
        let window = |kernel: (usize, usize), stride: (usize, usize), padding: [usize; 4], c_out: usize| {
            if kernel.0 == 0 || kernel.1 == 0 {
                return Err(err(format!("kernel {}x{}: must be at least 1x1", kernel.0, kernel.1)));
            }
            if stride.0 == 0 || stride.1 == 0 {
                return Err(err(format!("stride ({}, {}): must be >= 1", stride.0, stride.1)));
            }
            let [top, left, bottom, right] = padding;
            let oh = output_size(h, kernel.0, stride.0, top, bottom);
            let ow = output_size(w, kernel.1, stride.1, left, right);
            let (Some(oh), Some(ow)) = (oh, ow) else {
                return Err(err(format!(
                    "kernel {}x{} is larger than the padded input {}x{}",
                    kernel.0,
                    kernel.1,
                    h.saturating_add(top).saturating_add(bottom),
                    w.saturating_add(left).saturating_add(right)
                )));
            };
            let output = (oh, ow, c_out);
            size(output).ok_or_else(|| err("the output size overflows".into()))?;
            Ok(Window { kernel, stride, before: (top, left), input: shape, output })
        };
        let (step, output) = match op {
            FloatOp::Conv2d(conv) => {
                let (kh, kw) = (conv.kh, conv.kw);
                if conv.c_in != c {
                    return Err(err(format!("c_in is {}, the input has {c} channels", conv.c_in)));
                }
                if conv.c_out == 0 {
                    return Err(err("c_out must be >= 1".into()));
                }
                let win = window((kh, kw), conv.stride, conv.padding, conv.c_out)?;
                let k = size((kh, kw, c)).ok_or_else(|| err("kh*kw*c_in overflows".into()))?;
                if conv.weights.shape() != (k, conv.c_out) {
                    return Err(err(format!(
                        "weights are {}x{}, expected kh*kw*c_in x c_out = {k}x{}",
                        conv.weights.nrows(),
                        conv.weights.ncols(),
                        conv.c_out
                    )));
                }
                if conv.bias.len() != conv.c_out {
                    return Err(err(format!(
                        "{} biases for {} output channels",
                        conv.bias.len(),
                        conv.c_out
                    )));
                }
                param += 1;
                (Step::Conv { window: win, relu: conv.relu, param: param - 1 }, win.output)
            }
            FloatOp::MaxPool2d { kernel, stride, padding } => {
                let [top, left, bottom, right] = *padding;
                if top.max(bottom) >= kernel.0 || left.max(right) >= kernel.1 {
                    return Err(err(format!(
                        "padding {padding:?} must be smaller than the kernel {}x{} on every side \
                         (a window entirely in the padding has no maximum)",
                        kernel.0, kernel.1
                    )));
                }
                let win = window(*kernel, *stride, *padding, c)?;
                (Step::MaxPool { window: win }, win.output)
            }
            FloatOp::GlobalAvgPool => (Step::GlobalAvgPool { input: shape }, (1, 1, c)),
            FloatOp::Flatten => (Step::Flatten, (1, 1, h * w * c)),
            FloatOp::Dense(l) => {
                if (h, w) != (1, 1) || c != l.k() {
                    return Err(err(format!(
                        "a dense layer with K = {} needs a 1x1x{} input (flatten first)",
                        l.k(),
                        l.k()
                    )));
                }
                if l.n() == 0 {
                    return Err(err("the weights have no column".into()));
                }
                if l.bias.len() != l.n() {
                    return Err(err(format!("{} biases for {} outputs", l.bias.len(), l.n())));
                }
                param += 1;
                (Step::Dense { relu: l.relu, param: param - 1 }, (1, 1, l.n()))
            }
        };
        shapes.push(output);
        steps.push(step);
    }
    Ok(Plan { steps, shapes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use spec::rng::SplitMix64;

    fn conv(kh: usize, kw: usize, c_in: usize, c_out: usize, weights: &[f32], bias: &[f32]) -> FloatConv {
        FloatConv {
            kh,
            kw,
            c_in,
            c_out,
            stride: (1, 1),
            padding: [0; 4],
            weights: DMatrix::from_row_slice(kh * kw * c_in, c_out, weights),
            bias: DVector::from_column_slice(bias),
            relu: false,
        }
    }

    fn dense(k: usize, n: usize, weights: &[f32], bias: &[f32], relu: bool) -> FloatLayer {
        FloatLayer {
            weights: DMatrix::from_row_slice(k, n, weights),
            bias: DVector::from_column_slice(bias),
            relu,
        }
    }

    fn row(values: &[f32]) -> DMatrix<f32> {
        DMatrix::from_row_slice(1, values.len(), values)
    }

    #[test]
    fn output_sizes() {
        assert_eq!(output_size(8, 3, 1, 1, 1), Some(8));
        assert_eq!(output_size(8, 3, 2, 1, 1), Some(4));
        assert_eq!(output_size(4, 2, 2, 0, 0), Some(2));
        assert_eq!(output_size(5, 2, 2, 0, 0), Some(2), "the last row is dropped (floor)");
        assert_eq!(output_size(3, 4, 1, 0, 0), None);
        assert_eq!(output_size(3, 4, 1, 1, 0), Some(1));
        assert_eq!(output_size(3, 0, 1, 0, 0), None);
        assert_eq!(output_size(3, 1, 0, 0, 0), None);
        assert_eq!(output_size(usize::MAX, 1, 1, 1, 0), None, "overflow");
    }

    /// A 3x3 input, a 2x2 kernel, stride 2, padding top 1 and left 1, two output channels
    /// (ReLU), worked out by hand.
    #[test]
    fn conv_by_hand() {
        // x = [1 2 3; 4 5 6; 7 8 9]; channel 0: k = [1 2; 3 4], bias 0; channel 1: k = -1, bias 10.
        // Windows (rows 2oh-1..2oh, cols 2ow-1..2ow, -1 = padding):
        //   (0,0): x00*k11 = 4                 | 10 - 1 = 9
        //   (0,1): x01*k10 + x02*k11 = 6 + 12 = 18   | 10 - 5 = 5
        //   (1,0): x10*k01 + x20*k11 = 8 + 28 = 36   | 10 - 11 -> 0 (ReLU)
        //   (1,1): 5*1 + 6*2 + 8*3 + 9*4 = 77         | 10 - 28 -> 0
        let mut c = conv(2, 2, 1, 2, &[1.0, -1.0, 2.0, -1.0, 3.0, -1.0, 4.0, -1.0], &[0.0, 10.0]);
        c.stride = (2, 2);
        c.padding = [1, 1, 0, 0];
        c.relu = true;
        let m = FloatCnn::new((3, 3, 1), vec![FloatOp::Conv2d(c.clone())]).unwrap();
        assert_eq!(m.shapes(), [(2, 2, 2)]);
        assert_eq!(m.parameters(), 10);
        let x = row(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]);
        assert_eq!(m.logits(&x), row(&[4.0, 9.0, 18.0, 5.0, 36.0, 0.0, 77.0, 0.0]));
        // no padding, stride 1: the four full windows of channel 0, + 0.5 bias
        c.stride = (1, 1);
        c.padding = [0; 4];
        c.bias = DVector::from_column_slice(&[0.5, 0.0]);
        let m = FloatCnn::new((3, 3, 1), vec![FloatOp::Conv2d(c)]).unwrap();
        let y = m.logits(&x);
        assert_eq!([y[0], y[2], y[4], y[6]], [37.5, 47.5, 67.5, 77.5]);
    }

    /// Channels are the fastest index of the input and of the weight rows: a 1x2x2 input, a
    /// 1x2 kernel over 2 channels.
    #[test]
    fn channel_order_by_hand() {
        // x: pixel 0 = (1, 10), pixel 1 = (100, 1000); weight rows (j, c): (0,0) (0,1) (1,0) (1,1)
        let c = conv(1, 2, 2, 1, &[1.0, 2.0, 3.0, 4.0], &[0.0]);
        let m = FloatCnn::new((1, 2, 2), vec![FloatOp::Conv2d(c)]).unwrap();
        assert_eq!(m.logits(&row(&[1.0, 10.0, 100.0, 1000.0])), row(&[1.0 + 20.0 + 300.0 + 4000.0]));
    }

    /// Max pooling with padding: padded positions never win, even over negative inputs.
    #[test]
    fn maxpool_with_padding_by_hand() {
        // channel 0: -1..-9, channel 1: 1..9, 3x3; kernel 2x2, stride 2, padding 1 all round: 2x2
        //   (0,0): rows -1,0 cols -1,0 -> x00          (-1 | 1)
        //   (0,1): rows -1,0 cols 1,2  -> x01, x02     (-2 | 3)
        //   (1,0): rows 1,2 cols -1,0  -> x10, x20     (-4 | 7)
        //   (1,1): rows 1,2 cols 1,2   -> x11 x12 x21 x22 (-5 | 9)
        let x: Vec<f32> = (1..=9).flat_map(|v| [-(v as f32), v as f32]).collect();
        let pool = FloatOp::MaxPool2d { kernel: (2, 2), stride: (2, 2), padding: [1; 4] };
        let m = FloatCnn::new((3, 3, 2), vec![pool]).unwrap();
        assert_eq!(m.shapes(), [(2, 2, 2)]);
        assert_eq!(m.logits(&row(&x)), row(&[-1.0, 1.0, -2.0, 3.0, -4.0, 7.0, -5.0, 9.0]));
        // asymmetric: kernel 3x1, stride 1, bottom 2: rows r..r+2, 3 windows per column
        let pool = FloatOp::MaxPool2d { kernel: (3, 1), stride: (1, 1), padding: [0, 0, 2, 0] };
        let m = FloatCnn::new((3, 1, 1), vec![pool]).unwrap();
        assert_eq!(m.logits(&row(&[-3.0, -1.0, -2.0])), row(&[-1.0, -1.0, -2.0]));
    }

    /// Global average pooling, flatten and dense, and the output of every op.
    #[test]
    fn pool_flatten_dense_by_hand() {
        // 2x2x2 input: channel 0 = 1 2 3 4 (mean 2.5), channel 1 = 0 0 0 -8 (mean -2)
        let x = row(&[1.0, 0.0, 2.0, 0.0, 3.0, 0.0, 4.0, -8.0]);
        let ops = vec![
            FloatOp::GlobalAvgPool,
            FloatOp::Flatten,
            FloatOp::Dense(dense(2, 2, &[1.0, 1.0, 1.0, -1.0], &[0.0, 0.5], true)),
        ];
        let m = FloatCnn::new((2, 2, 2), ops).unwrap();
        assert_eq!(m.shapes(), [(1, 1, 2), (1, 1, 2), (1, 1, 2)]);
        let all = m.forward_all(&x);
        assert_eq!(all.len(), 3);
        assert_eq!(all[0], row(&[2.5, -2.0]));
        assert_eq!(all[1], all[0]);
        // [2.5 - 2, 2.5 + 2 + 0.5] = [0.5, 5]
        assert_eq!(all[2], row(&[0.5, 5.0]));
        assert_eq!(m.predict(&x), [1]);
        assert_eq!(m.parameters(), 6);
        // flatten is the identity on the data: (2, 2, 2) -> 8 features in NHWC order
        let m = FloatCnn::new((2, 2, 2), vec![FloatOp::Flatten]).unwrap();
        assert_eq!(m.shapes(), [(1, 1, 8)]);
        assert_eq!(m.logits(&x), x);
    }

    #[test]
    fn shape_errors_name_the_op() {
        let err = |input: Shape, ops: Vec<FloatOp>| FloatCnn::new(input, ops).unwrap_err().to_string();
        let c = conv(3, 3, 2, 4, &[0.0; 72], &[0.0; 4]);
        assert_eq!(
            err((8, 8, 1), vec![FloatOp::Conv2d(c.clone())]),
            "op 0 (conv2d) on a 8x8x1 input: c_in is 2, the input has 1 channels"
        );
        assert_eq!(
            err((2, 2, 2), vec![FloatOp::Conv2d(c.clone())]),
            "op 0 (conv2d) on a 2x2x2 input: kernel 3x3 is larger than the padded input 2x2"
        );
        let bad_weights = FloatConv { weights: DMatrix::zeros(9, 4), ..c.clone() };
        assert_eq!(
            err((4, 4, 2), vec![FloatOp::Conv2d(bad_weights)]),
            "op 0 (conv2d) on a 4x4x2 input: weights are 9x4, expected kh*kw*c_in x c_out = 18x4"
        );
        let bad_bias = FloatConv { bias: DVector::zeros(3), ..c.clone() };
        assert!(err((4, 4, 2), vec![FloatOp::Conv2d(bad_bias)]).ends_with("3 biases for 4 output channels"));
        let bad_stride = FloatConv { stride: (0, 1), ..c.clone() };
        assert!(err((4, 4, 2), vec![FloatOp::Conv2d(bad_stride)]).ends_with("stride (0, 1): must be >= 1"));
        let pool = FloatOp::MaxPool2d { kernel: (2, 2), stride: (2, 2), padding: [0, 0, 2, 0] };
        let e = err((4, 4, 2), vec![FloatOp::Conv2d(c), pool]);
        assert!(
            e.starts_with("op 1 (maxpool2d) on a 2x2x4 input: padding [0, 0, 2, 0] must be smaller"),
            "{e}"
        );
        let d = FloatOp::Dense(dense(4, 1, &[0.0; 4], &[0.0], false));
        assert_eq!(
            err((2, 2, 1), vec![d.clone()]),
            "op 0 (dense) on a 2x2x1 input: a dense layer with K = 4 needs a 1x1x4 input (flatten first)"
        );
        assert!(FloatCnn::new((2, 2, 1), vec![FloatOp::Flatten, d.clone()]).is_ok());
        let e = err((2, 2, 1), vec![FloatOp::GlobalAvgPool, d]);
        assert!(e.starts_with("op 1 (dense) on a 1x1x1 input"), "{e}");
        assert_eq!(err((0, 2, 1), vec![FloatOp::Flatten]), "input 0x2x1: every dimension must be >= 1");
        assert_eq!(err((2, 2, 1), vec![]), "input 2x2x1: a CNN needs at least one op");
        assert!(err((usize::MAX, 2, 1), vec![FloatOp::Flatten]).ends_with("H*W*C overflows"));
    }

    /// Random values in [-1, 1), about a quarter of them exactly 0 (as after a ReLU).
    fn random(n: usize, rng: &mut SplitMix64) -> Vec<f32> {
        (0..n).map(|_| if rng.below(4) == 0 { 0.0 } else { 2.0 * rng.next_f32() - 1.0 }).collect()
    }

    /// The convolution written directly from its definition, one output at a time.
    fn reference_conv(x: &[f32], (h, w, c): Shape, cv: &FloatConv) -> Vec<f32> {
        let [top, left, bottom, right] = cv.padding;
        let oh_n = (h + top + bottom - cv.kh) / cv.stride.0 + 1;
        let ow_n = (w + left + right - cv.kw) / cv.stride.1 + 1;
        let mut y = Vec::new();
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                for co in 0..cv.c_out {
                    let mut acc = cv.bias[co];
                    for i in 0..cv.kh {
                        for j in 0..cv.kw {
                            let ih = (oh * cv.stride.0 + i) as isize - top as isize;
                            let iw = (ow * cv.stride.1 + j) as isize - left as isize;
                            if ih < 0 || iw < 0 || ih >= h as isize || iw >= w as isize {
                                continue; // zero padding
                            }
                            for ci in 0..c {
                                let xv = x[(ih as usize * w + iw as usize) * c + ci];
                                acc += xv * cv.weights[((i * cv.kw + j) * c + ci, co)];
                            }
                        }
                    }
                    y.push(if cv.relu { acc.max(0.0) } else { acc });
                }
            }
        }
        y
    }

    /// Max pooling from its definition: the largest real input under each window.
    fn reference_pool(
        x: &[f32],
        (h, w, c): Shape,
        k: (usize, usize),
        s: (usize, usize),
        pad: [usize; 4],
    ) -> Vec<f32> {
        let oh_n = (h + pad[0] + pad[2] - k.0) / s.0 + 1;
        let ow_n = (w + pad[1] + pad[3] - k.1) / s.1 + 1;
        let mut y = Vec::new();
        for oh in 0..oh_n {
            for ow in 0..ow_n {
                for ch in 0..c {
                    let mut best = f32::NEG_INFINITY;
                    for ih in (oh * s.0)..(oh * s.0 + k.0) {
                        for iw in (ow * s.1)..(ow * s.1 + k.1) {
                            if (pad[0]..pad[0] + h).contains(&ih) && (pad[1]..pad[1] + w).contains(&iw) {
                                best = best.max(x[((ih - pad[0]) * w + iw - pad[1]) * c + ch]);
                            }
                        }
                    }
                    y.push(best);
                }
            }
        }
        y
    }

    proptest! {
        /// The im2col convolution equals the nested-loop one on random shapes (odd sizes,
        /// kernels 1..5, strides 1..3, padding 0..2 per side). Exactly: both add the bias, then
        /// the products in (i, j, c) order; the zeros the im2col form skips or the padding
        /// holds add nothing.
        #[test]
        fn conv_matches_the_definition(
            h in 1usize..10, w in 1usize..10, c_in in 1usize..4, c_out in 1usize..4,
            kh in 1usize..=5, kw in 1usize..=5, sh in 1usize..=3, sw in 1usize..=3,
            padding in proptest::array::uniform4(0usize..=2), relu: bool, seed: u64,
        ) {
            prop_assume!(output_size(h, kh, sh, padding[0], padding[2]).is_some());
            prop_assume!(output_size(w, kw, sw, padding[1], padding[3]).is_some());
            let mut rng = SplitMix64::new(seed);
            let k = kh * kw * c_in;
            let mut cv = conv(kh, kw, c_in, c_out, &random(k * c_out, &mut rng), &random(c_out, &mut rng));
            cv.stride = (sh, sw);
            cv.padding = padding;
            cv.relu = relu;
            let m = FloatCnn::new((h, w, c_in), vec![FloatOp::Conv2d(cv.clone())]).unwrap();
            let images = 2;
            let x = DMatrix::from_row_slice(images, h * w * c_in, &random(images * h * w * c_in, &mut rng));
            let y = m.logits(&x);
            for r in 0..images {
                let xr: Vec<f32> = x.row(r).iter().copied().collect();
                let want = reference_conv(&xr, (h, w, c_in), &cv);
                prop_assert_eq!(y.row(r).iter().copied().collect::<Vec<_>>(), want);
            }
        }

        /// Max pooling equals its definition on random shapes (padding smaller than the kernel).
        #[test]
        fn maxpool_matches_the_definition(
            h in 1usize..10, w in 1usize..10, c in 1usize..4, kh in 1usize..=4, kw in 1usize..=4,
            sh in 1usize..=3, sw in 1usize..=3, padding in proptest::array::uniform4(0usize..=2), seed: u64,
        ) {
            let padding = [padding[0] % kh, padding[1] % kw, padding[2] % kh, padding[3] % kw];
            prop_assume!(output_size(h, kh, sh, padding[0], padding[2]).is_some());
            prop_assume!(output_size(w, kw, sw, padding[1], padding[3]).is_some());
            let mut rng = SplitMix64::new(seed);
            let pool = FloatOp::MaxPool2d { kernel: (kh, kw), stride: (sh, sw), padding };
            let m = FloatCnn::new((h, w, c), vec![pool]).unwrap();
            let x = random(h * w * c, &mut rng);
            let want = reference_pool(&x, (h, w, c), (kh, kw), (sh, sw), padding);
            prop_assert_eq!(m.logits(&row(&x)).iter().copied().collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn bit_identical_sees_the_sign_of_zero() {
        let d = FloatOp::Dense(dense(2, 1, &[1.0, 0.0], &[0.0], false));
        let m = FloatCnn::new((1, 1, 2), vec![d]).unwrap();
        let mut other = m.clone();
        assert!(m.bit_identical(&other));
        if let FloatOp::Dense(l) = &mut other.ops[0] {
            l.bias[0] = -0.0;
        }
        assert_eq!(m, other, "== calls 0.0 and -0.0 equal");
        assert!(!m.bit_identical(&other));
    }
}
