//! Convolutional layers: the golden semantics of `conv2d`, `maxpool2d` and `global_avg_pool`
//! on int8 NHWC images, and the im2col lowering that turns a convolution into the GEMM the
//! array computes.
//!
//! ```text
//!   a batch of images: DMatrix<i8>, one row per image, the image flattened NHWC:
//!     x[(n, (h·W + w)·C + c)]            (so flatten is free: a dense layer reads the row)
//!
//!   conv2d (KH x KW, stride (SH, SW), zero padding top/left/bottom/right, C_in -> C_out):
//!     OH = (H + top + bottom − KH) / SH + 1          (floor; likewise OW)
//!     im2col:  X_col[(n·OH + oh)·OW + ow, (i·KW + j)·C_in + c] = x[n, oh·SH + i − top, ow·SW + j − left, c]
//!              (the pad value where the position falls in the padding: 0, or the input's
//!               zero point for an asymmetric model, the int8 code of a real 0)
//!     Y_col = act(X_col · W + b)          W: K x N with K = KH·KW·C_in, N = C_out (HWIO order)
//!     y[(n, (oh·OW + ow)·C_out + co)] = Y_col[(n·OH + oh)·OW + ow, co]   (a row-major reshape)
//! ```
//!
//! The GEMM is [`crate::golden::layer`]: a convolution has exactly the arithmetic of a dense
//! layer (int32 accumulation, requantisation, ReLU, saturation), which is why the device needs
//! nothing new to run one. `maxpool2d` and `global_avg_pool` run on the host in integers:
//!
//! * `maxpool2d`: the largest value in each window; padded positions never win (PyTorch's and
//!   ONNX's rule: pad with −∞). Each pad must be smaller than the kernel, so every window holds
//!   at least one real value.
//! * `global_avg_pool`: per channel, `sum` of the H·W values (int32), then TensorFlow Lite's
//!   integer rule (`reference/integer_ops/pooling.h`, `AveragePool`): divide rounding half away
//!   from zero, `sum > 0 ? (sum + count/2) / count : (sum − count/2) / count` with `/` truncating.
//!   Input and output share one scale (and zero point), as in TFLite and ONNX's QLinear pools.
//!
//! Every size is checked: a shape whose element count overflows `usize`, a kernel larger than
//! the padded input, a zero stride or kernel, a channel count that does not match, all give a
//! [`ConvError`] instead of a panic.

use crate::arith::LayerQuant;
use crate::golden::{self, ShapeError};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// The shape of one image: height, width, channels (NHWC without the N).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "[usize; 3]", try_from = "[usize; 3]")]
pub struct Shape {
    /// Rows.
    pub h: usize,
    /// Columns.
    pub w: usize,
    /// Channels.
    pub c: usize,
}

impl Shape {
    /// An image of `h` x `w` pixels with `c` channels; every dimension must be at least 1 and
    /// the element count must fit `usize`.
    pub fn new(h: usize, w: usize, c: usize) -> Result<Self, ConvError> {
        let s = Shape { h, w, c };
        if h == 0 || w == 0 || c == 0 {
            return Err(ConvError::Empty(s));
        }
        s.checked_len().ok_or(ConvError::TooLarge(s))?;
        Ok(s)
    }

    /// A flat vector of `k` features (1 x 1 x k): what a dense layer takes and produces.
    pub fn flat(k: usize) -> Result<Self, ConvError> {
        Shape::new(1, 1, k)
    }

    /// `h·w·c`, the row length of one image.
    pub fn len(&self) -> usize {
        self.h * self.w * self.c
    }

    /// False: a valid shape holds at least one element (for clippy's `len` convention).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn checked_len(&self) -> Option<usize> {
        self.h.checked_mul(self.w)?.checked_mul(self.c)
    }

    /// True for 1 x 1 x C: the image is a flat feature vector.
    pub fn is_flat(&self) -> bool {
        self.h == 1 && self.w == 1
    }

    /// `h·w`, the pixels of one channel.
    pub fn pixels(&self) -> usize {
        self.h * self.w
    }
}

impl std::fmt::Display for Shape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}x{}x{}", self.h, self.w, self.c)
    }
}

impl From<Shape> for [usize; 3] {
    fn from(s: Shape) -> Self {
        [s.h, s.w, s.c]
    }
}

impl TryFrom<[usize; 3]> for Shape {
    type Error = ConvError;
    fn try_from(v: [usize; 3]) -> Result<Self, ConvError> {
        Shape::new(v[0], v[1], v[2])
    }
}

/// Zero padding around an image, in pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "[usize; 4]", from = "[usize; 4]")]
pub struct Padding {
    /// Rows above.
    pub top: usize,
    /// Columns to the left.
    pub left: usize,
    /// Rows below.
    pub bottom: usize,
    /// Columns to the right.
    pub right: usize,
}

impl Padding {
    /// The same padding on all four sides.
    pub fn same(p: usize) -> Self {
        Padding { top: p, left: p, bottom: p, right: p }
    }
}

impl From<Padding> for [usize; 4] {
    fn from(p: Padding) -> Self {
        [p.top, p.left, p.bottom, p.right]
    }
}

impl From<[usize; 4]> for Padding {
    fn from(v: [usize; 4]) -> Self {
        Padding { top: v[0], left: v[1], bottom: v[2], right: v[3] }
    }
}

impl std::fmt::Display for Padding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "[{}, {}, {}, {}]", self.top, self.left, self.bottom, self.right)
    }
}

/// A sliding window: kernel, stride and padding (the geometry shared by conv2d and maxpool2d).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// Kernel (height, width).
    pub kernel: (usize, usize),
    /// Stride (height, width).
    pub stride: (usize, usize),
    /// Padding (top, left, bottom, right).
    pub padding: Padding,
}

impl Window {
    /// A square kernel with equal strides and the same padding on every side.
    pub fn square(kernel: usize, stride: usize, padding: usize) -> Self {
        Window { kernel: (kernel, kernel), stride: (stride, stride), padding: Padding::same(padding) }
    }

    /// The output height and width on an `input` image:
    /// `(H + top + bottom − KH) / SH + 1` (floor), likewise the width.
    pub fn output_hw(&self, input: Shape) -> Result<(usize, usize), ConvError> {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        if kh == 0 || kw == 0 {
            return Err(ConvError::ZeroKernel);
        }
        if sh == 0 || sw == 0 {
            return Err(ConvError::ZeroStride);
        }
        let p = self.padding;
        let padded = |size: usize, a: usize, b: usize| size.checked_add(a)?.checked_add(b);
        let (ph, pw) = match (padded(input.h, p.top, p.bottom), padded(input.w, p.left, p.right)) {
            (Some(ph), Some(pw)) => (ph, pw),
            _ => return Err(ConvError::TooLarge(input)),
        };
        if kh > ph || kw > pw {
            return Err(ConvError::KernelTooLarge { kernel: self.kernel, padded: (ph, pw) });
        }
        Ok(((ph - kh) / sh + 1, (pw - kw) / sw + 1))
    }

    /// For every output position along one axis, the input index of the window's first tap
    /// (may be negative: in the padding).
    fn origin(out: usize, stride: usize, pad: usize) -> isize {
        (out * stride) as isize - pad as isize
    }
}

impl std::fmt::Display for Window {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "kernel {}x{}, stride {}x{}, padding {}",
            self.kernel.0, self.kernel.1, self.stride.0, self.stride.1, self.padding
        )
    }
}

/// A convolution's geometry: the window and the channels (C_in -> C_out). Dilation 1, groups 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Conv2d {
    /// Kernel, stride, padding.
    pub window: Window,
    /// Input channels.
    pub c_in: usize,
    /// Output channels (filters).
    pub c_out: usize,
}

impl Conv2d {
    /// K of the lowered GEMM: `KH·KW·C_in` (checked).
    pub fn k(&self) -> Result<usize, ConvError> {
        let (kh, kw) = self.window.kernel;
        kh.checked_mul(kw).and_then(|v| v.checked_mul(self.c_in)).ok_or(ConvError::TooLargeKernel(*self))
    }

    /// The output image of an `input` image, after checking the channels.
    pub fn output_shape(&self, input: Shape) -> Result<Shape, ConvError> {
        if input.c != self.c_in {
            return Err(ConvError::Channels { expected: self.c_in, got: input.c });
        }
        self.k()?;
        let (oh, ow) = self.window.output_hw(input)?;
        Shape::new(oh, ow, self.c_out)
    }

    /// Rows of the lowered GEMM for `images` images: `images·OH·OW` (checked).
    pub fn gemm_rows(&self, input: Shape, images: usize) -> Result<usize, ConvError> {
        let out = self.output_shape(input)?;
        images.checked_mul(out.pixels()).ok_or(ConvError::TooLarge(out))
    }
}

impl std::fmt::Display for Conv2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} -> {} channels, {}", self.c_in, self.c_out, self.window)
    }
}

/// Why a convolutional layer cannot be applied.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConvError {
    /// A dimension of zero.
    #[error("image shape {0} has a zero dimension")]
    Empty(Shape),
    /// More elements than memory can address.
    #[error("image shape {0} is too large (its size overflows)")]
    TooLarge(Shape),
    /// KH·KW·C_in overflows.
    #[error("convolution {0} is too large (KH·KW·C_in overflows)")]
    TooLargeKernel(Conv2d),
    /// A kernel of size zero.
    #[error("the kernel must be at least 1x1")]
    ZeroKernel,
    /// A stride of zero.
    #[error("the stride must be at least 1")]
    ZeroStride,
    /// The kernel does not fit the padded input.
    #[error("kernel {}x{} is larger than the padded input {}x{}", kernel.0, kernel.1, padded.0, padded.1)]
    KernelTooLarge {
        /// (KH, KW).
        kernel: (usize, usize),
        /// The input with its padding, (H, W).
        padded: (usize, usize),
    },
    /// A pool padding as large as its kernel (a window of padding only).
    #[error("padding {padding} must be smaller than the kernel {}x{} on every side", kernel.0, kernel.1)]
    PoolPadding {
        /// (KH, KW).
        kernel: (usize, usize),
        /// The padding.
        padding: Padding,
    },
    /// The input's channels are not the layer's.
    #[error("takes C_in = {expected} channels but its input has {got}")]
    Channels {
        /// The layer's C_in.
        expected: usize,
        /// The input's channels.
        got: usize,
    },
    /// X's rows are not images of the given shape.
    #[error("X has {cols} columns but an image of {shape} has {} values", shape.len())]
    Columns {
        /// X's columns.
        cols: usize,
        /// The image shape.
        shape: Shape,
    },
    /// Weights or bias of the wrong shape.
    #[error(transparent)]
    Gemm(#[from] ShapeError),
}

fn check_images(x: &DMatrix<i8>, shape: Shape) -> Result<(), ConvError> {
    if x.ncols() != shape.len() {
        return Err(ConvError::Columns { cols: x.ncols(), shape });
    }
    Ok(())
}

/// The im2col matrix of a convolution: one row per output pixel (image-major, then row, then
/// column), one column per kernel tap `(i·KW + j)·C_in + c`; taps in the padding are 0.
pub fn im2col(x: &DMatrix<i8>, input: Shape, conv: &Conv2d) -> Result<DMatrix<i8>, ConvError> {
    im2col_padded(x, input, conv, 0)
}

/// [`im2col`] with taps in the padding set to `pad`: the input's zero point, the int8 code of a
/// real 0, which is what an asymmetrically quantised model (ONNX, PyTorch) pads with.
pub fn im2col_padded(
    x: &DMatrix<i8>,
    input: Shape,
    conv: &Conv2d,
    pad: i8,
) -> Result<DMatrix<i8>, ConvError> {
    check_images(x, input)?;
    let out = conv.output_shape(input)?;
    let k = conv.k()?;
    let rows = conv.gemm_rows(input, x.nrows())?;
    rows.checked_mul(k).ok_or(ConvError::TooLarge(out))?;
    let (kh, kw) = conv.window.kernel;
    let (sh, sw) = conv.window.stride;
    let p = conv.window.padding;
    let mut col = DMatrix::<i8>::from_element(rows, k, pad);
    for n in 0..x.nrows() {
        for oh in 0..out.h {
            let y0 = Window::origin(oh, sh, p.top);
            for ow in 0..out.w {
                let x0 = Window::origin(ow, sw, p.left);
                let r = (n * out.h + oh) * out.w + ow;
                for i in 0..kh {
                    let y = y0 + i as isize;
                    if y < 0 || y >= input.h as isize {
                        continue;
                    }
                    for j in 0..kw {
                        let xx = x0 + j as isize;
                        if xx < 0 || xx >= input.w as isize {
                            continue;
                        }
                        let src = (y as usize * input.w + xx as usize) * input.c;
                        let dst = (i * kw + j) * input.c;
                        for c in 0..input.c {
                            col[(r, dst + c)] = x[(n, src + c)];
                        }
                    }
                }
            }
        }
    }
    Ok(col)
}

/// One row per output pixel (`images·P` rows, `C` columns) back to one row per image
/// (`images` rows, `P·C` columns): the row-major reshape that undoes im2col's row order.
pub fn pixels_to_images<T: nalgebra::Scalar + Copy>(y: &DMatrix<T>, images: usize) -> DMatrix<T> {
    let per = y.nrows().checked_div(images).unwrap_or(0);
    let c = y.ncols();
    DMatrix::from_fn(images, per * c, |n, i| y[(n * per + i / c, i % c)])
}

/// The inverse of [`pixels_to_images`]: one row per image of `shape` to one row per pixel.
pub fn images_to_pixels(x: &DMatrix<i8>, shape: Shape) -> DMatrix<i8> {
    let (p, c) = (shape.pixels(), shape.c);
    DMatrix::from_fn(x.nrows() * p, c, |r, ch| x[(r / p, (r % p) * c + ch)])
}

/// `act(conv(x, W) + b)` as int8 images of the output shape (see the module docs), with the
/// contract v2 requantisation `q` (per-column scales, output zero point) and the padding
/// filled with `pad` (the input's zero point; 0 for a symmetric model).
pub fn conv2d(
    x: &DMatrix<i8>,
    input: Shape,
    conv: &Conv2d,
    w: &DMatrix<i8>,
    bias: &DVector<i32>,
    q: &LayerQuant,
    pad: i8,
) -> Result<DMatrix<i8>, ConvError> {
    let col = im2col_padded(x, input, conv, pad)?;
    check_weights(conv, w)?;
    let y = golden::layer_v2(&col, w, bias, q)?;
    Ok(pixels_to_images(&y, x.nrows()))
}

/// `conv(x, W) + b` as raw int32 (no requantisation): the accumulators, per image.
pub fn conv2d_raw(
    x: &DMatrix<i8>,
    input: Shape,
    conv: &Conv2d,
    w: &DMatrix<i8>,
    bias: &DVector<i32>,
    pad: i8,
) -> Result<DMatrix<i32>, ConvError> {
    let col = im2col_padded(x, input, conv, pad)?;
    check_weights(conv, w)?;
    let y = golden::layer_raw(&col, w, bias)?;
    Ok(pixels_to_images(&y, x.nrows()))
}

fn check_weights(conv: &Conv2d, w: &DMatrix<i8>) -> Result<(), ConvError> {
    let k = conv.k()?;
    if w.nrows() != k || w.ncols() != conv.c_out {
        return Err(ShapeError::Inner { x_rows: 0, x_cols: k, w_rows: w.nrows(), w_cols: w.ncols() }.into());
    }
    Ok(())
}

/// The output shape of a max pool, after checking that no window is padding only.
pub fn pool_output_shape(input: Shape, window: &Window) -> Result<Shape, ConvError> {
    let (kh, kw) = window.kernel;
    let p = window.padding;
    if kh > 0 && kw > 0 && (p.top >= kh || p.bottom >= kh || p.left >= kw || p.right >= kw) {
        return Err(ConvError::PoolPadding { kernel: window.kernel, padding: p });
    }
    let (oh, ow) = window.output_hw(input)?;
    Shape::new(oh, ow, input.c)
}

/// Max over each window, per channel; padded positions never win.
pub fn maxpool2d(x: &DMatrix<i8>, input: Shape, window: &Window) -> Result<(DMatrix<i8>, Shape), ConvError> {
    check_images(x, input)?;
    let out = pool_output_shape(input, window)?;
    let (kh, kw) = window.kernel;
    let (sh, sw) = window.stride;
    let p = window.padding;
    let mut y = DMatrix::<i8>::zeros(x.nrows(), out.len());
    for n in 0..x.nrows() {
        for oh in 0..out.h {
            let y0 = Window::origin(oh, sh, p.top);
            for ow in 0..out.w {
                let x0 = Window::origin(ow, sw, p.left);
                for c in 0..input.c {
                    let mut best: Option<i8> = None;
                    for i in 0..kh as isize {
                        for j in 0..kw as isize {
                            let (yy, xx) = (y0 + i, x0 + j);
                            if yy < 0 || xx < 0 || yy >= input.h as isize || xx >= input.w as isize {
                                continue;
                            }
                            let v = x[(n, (yy as usize * input.w + xx as usize) * input.c + c)];
                            best = Some(best.map_or(v, |b| b.max(v)));
                        }
                    }
                    let v = best.expect("pads smaller than the kernel: every window holds a real value");
                    y[(n, (oh * out.w + ow) * out.c + c)] = v;
                }
            }
        }
    }
    Ok((y, out))
}

/// TensorFlow Lite's integer average: `sum / count`, rounded half away from zero.
pub fn rounded_average(sum: i64, count: i64) -> i64 {
    assert!(count > 0, "an average of no values");
    if sum > 0 {
        (sum + count / 2) / count
    } else {
        (sum - count / 2) / count
    }
}

/// The mean of each channel over the whole image (TFLite's integer rounding, see the module
/// docs): `(N, H·W·C)` to `(N, C)`, a 1 x 1 x C image.
pub fn global_avg_pool(x: &DMatrix<i8>, input: Shape) -> Result<DMatrix<i8>, ConvError> {
    check_images(x, input)?;
    let count = input.pixels() as i64;
    Ok(DMatrix::from_fn(x.nrows(), input.c, |n, c| {
        let sum: i64 = (0..input.pixels()).map(|p| i64::from(x[(n, p * input.c + c)])).sum();
        // the mean of int8 values lies in [-128, 127]: the cast cannot wrap
        rounded_average(sum, count) as i8
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::Quant;
    use proptest::prelude::*;

    fn shape(h: usize, w: usize, c: usize) -> Shape {
        Shape::new(h, w, c).unwrap()
    }

    #[test]
    fn output_sizes() {
        let s = shape(8, 8, 1);
        assert_eq!(Window::square(3, 1, 1).output_hw(s).unwrap(), (8, 8));
        assert_eq!(Window::square(3, 2, 1).output_hw(s).unwrap(), (4, 4));
        assert_eq!(Window::square(2, 2, 0).output_hw(shape(4, 4, 16)).unwrap(), (2, 2));
        // floor: 7 + 2 - 3 = 6, / 2 = 3, + 1
        assert_eq!(Window::square(3, 2, 1).output_hw(shape(7, 7, 1)).unwrap(), (4, 4));
        let asym = Window { kernel: (2, 3), stride: (1, 2), padding: [0, 1, 1, 0].into() };
        // H: 5 + 0 + 1 - 2 = 4 -> 5; W: 6 + 1 + 0 - 3 = 4, / 2 = 2 -> 3
        assert_eq!(asym.output_hw(shape(5, 6, 1)).unwrap(), (5, 3));
        assert_eq!(
            Window::square(5, 1, 0).output_hw(shape(4, 4, 1)).unwrap_err().to_string(),
            "kernel 5x5 is larger than the padded input 4x4"
        );
        assert_eq!(Window::square(3, 0, 0).output_hw(s).unwrap_err(), ConvError::ZeroStride);
        assert_eq!(Window::square(0, 1, 0).output_hw(s).unwrap_err(), ConvError::ZeroKernel);
        let huge = Window { kernel: (1, 1), stride: (1, 1), padding: [usize::MAX, 0, 0, 0].into() };
        assert!(matches!(huge.output_hw(s).unwrap_err(), ConvError::TooLarge(_)));
        assert!(matches!(Shape::new(1 << 40, 1 << 40, 1 << 40).unwrap_err(), ConvError::TooLarge(_)));
        assert!(matches!(Shape::new(0, 1, 1).unwrap_err(), ConvError::Empty(_)));
    }

    /// A 3x3 one-channel image, a 2x2 kernel, stride 1, no padding, by hand.
    #[test]
    fn conv_on_paper() {
        // x = [1 2 3; 4 5 6; 7 8 9], k = [1 0; 0 -1] (HWIO, C_in = C_out = 1)
        // y[0][0] = 1 - 5 = -4, y[0][1] = 2 - 6 = -4, y[1][0] = 4 - 8 = -4, y[1][1] = 5 - 9 = -4
        // bias 10: 6 everywhere; with a second filter k2 = [0 1; 1 0]: 2+4=6, 3+5=8, 5+7=12, 6+8=14
        let x = DMatrix::from_row_slice(1, 9, &[1i8, 2, 3, 4, 5, 6, 7, 8, 9]);
        let conv = Conv2d { window: Window::square(2, 1, 0), c_in: 1, c_out: 2 };
        let w = DMatrix::from_row_slice(4, 2, &[1i8, 0, 0, 1, 0, 1, -1, 0]);
        let b = DVector::from_vec(vec![10, 0]);
        let y = conv2d_raw(&x, shape(3, 3, 1), &conv, &w, &b, 0).unwrap();
        assert_eq!(y, DMatrix::from_row_slice(1, 8, &[6, 6, 6, 8, 6, 12, 6, 14]));
        // with padding 1 on the left only: the first output column sees a zero column
        // y[0][0] = 0·1 + 1·0 + 0·0 + 4·(-1) = -4
        let conv = Conv2d {
            window: Window { kernel: (2, 2), stride: (1, 1), padding: [0, 1, 0, 0].into() },
            c_in: 1,
            c_out: 2,
        };
        let y = conv2d_raw(&x, shape(3, 3, 1), &conv, &w, &DVector::zeros(2), 0).unwrap();
        assert_eq!(conv.output_shape(shape(3, 3, 1)).unwrap(), shape(2, 3, 2));
        assert_eq!(y[(0, 0)], -4);
        assert_eq!(y[(0, 1)], 1, "the second filter: pad·0 + 1·1 + pad·1 + 4·0");
        // padded with a zero point of 3: the padding taps read 3, so
        // y[0][0] = 3·1 + 1·0 + 3·0 + 4·(-1) = -1 and the second filter 3·0 + 1·1 + 3·1 + 4·0 = 4
        let y = conv2d_raw(&x, shape(3, 3, 1), &conv, &w, &DVector::zeros(2), 3).unwrap();
        assert_eq!((y[(0, 0)], y[(0, 1)]), (-1, 4));
        // and an unpadded tap is unaffected: output (0, 1) reads x only: 1·1 + 2·0 + 4·0 + 5·(-1)
        assert_eq!(y[(0, 2)], -4);
    }

    #[test]
    fn maxpool_with_padding_on_paper() {
        // 3x3, one channel, all negative; kernel 2, stride 2, padding 1 top-left
        // windows: {-1}, {-2,-3}, {-4,-7}, {-5,-6,-8,-9}: padding (0) must not win
        let x = DMatrix::from_row_slice(1, 9, &[-1i8, -2, -3, -4, -5, -6, -7, -8, -9]);
        let w = Window { kernel: (2, 2), stride: (2, 2), padding: [1, 1, 0, 0].into() };
        let (y, s) = maxpool2d(&x, shape(3, 3, 1), &w).unwrap();
        assert_eq!(s, shape(2, 2, 1));
        assert_eq!(y, DMatrix::from_row_slice(1, 4, &[-1i8, -2, -4, -5]));
        // two channels interleave (NHWC): channel 1 is channel 0 negated
        let x2 = DMatrix::from_fn(1, 18, |_, i| if i % 2 == 0 { x[(0, i / 2)] } else { -x[(0, i / 2)] });
        let (y2, _) = maxpool2d(&x2, shape(3, 3, 2), &w).unwrap();
        assert_eq!(y2, DMatrix::from_row_slice(1, 8, &[-1i8, 1, -2, 3, -4, 7, -5, 9]));
        let bad = Window { kernel: (2, 2), stride: (1, 1), padding: Padding::same(2) };
        assert_eq!(
            maxpool2d(&x, shape(3, 3, 1), &bad).unwrap_err().to_string(),
            "padding [2, 2, 2, 2] must be smaller than the kernel 2x2 on every side"
        );
    }

    #[test]
    fn global_average_rounds_half_away_from_zero() {
        assert_eq!(rounded_average(5, 2), 3); // 2.5 -> 3
        assert_eq!(rounded_average(-5, 2), -3); // -2.5 -> -3
        assert_eq!(rounded_average(7, 4), 2); // 1.75 -> 2
        assert_eq!(rounded_average(-6, 4), -2); // -1.5 -> -2
        assert_eq!(rounded_average(-5, 4), -1); // -1.25 -> -1
        assert_eq!(rounded_average(0, 3), 0);
        // 2x2 image, 2 channels: c0 = [1, 2, 3, 4] (2.5 -> 3), c1 = [-128; 4]
        let x = DMatrix::from_row_slice(1, 8, &[1i8, -128, 2, -128, 3, -128, 4, -128]);
        assert_eq!(global_avg_pool(&x, shape(2, 2, 2)).unwrap(), DMatrix::from_row_slice(1, 2, &[3i8, -128]));
        let x = DMatrix::from_row_slice(1, 4, &[127i8, 127, 127, 126]);
        assert_eq!(global_avg_pool(&x, shape(2, 2, 1)).unwrap()[(0, 0)], 127); // 126.75
    }

    #[test]
    fn errors_are_checked_not_panics() {
        let x = DMatrix::<i8>::zeros(2, 10);
        let conv = Conv2d { window: Window::square(3, 1, 0), c_in: 1, c_out: 1 };
        assert_eq!(
            im2col(&x, shape(3, 3, 1), &conv).unwrap_err().to_string(),
            "X has 10 columns but an image of 3x3x1 has 9 values"
        );
        assert_eq!(
            conv.output_shape(shape(3, 3, 2)).unwrap_err().to_string(),
            "takes C_in = 1 channels but its input has 2"
        );
        let huge = Conv2d { window: Window::square(usize::MAX, 1, 0), c_in: 2, c_out: 1 };
        assert!(matches!(huge.k().unwrap_err(), ConvError::TooLargeKernel(_)));
        let w = DMatrix::<i8>::zeros(8, 1);
        let x = DMatrix::<i8>::zeros(1, 9);
        assert!(
            conv2d(&x, shape(3, 3, 1), &conv, &w, &DVector::zeros(1), &Quant::IDENTITY.into(), 0).is_err()
        );
    }

    /// An independent direct convolution (no im2col): nested loops over the output.
    fn direct_conv(
        x: &DMatrix<i8>,
        s: Shape,
        conv: &Conv2d,
        w: &DMatrix<i8>,
        b: &DVector<i32>,
    ) -> DMatrix<i32> {
        let (kh, kw) = conv.window.kernel;
        let (sh, sw) = conv.window.stride;
        let p = conv.window.padding;
        let oh = (s.h + p.top + p.bottom - kh) / sh + 1;
        let ow = (s.w + p.left + p.right - kw) / sw + 1;
        DMatrix::from_fn(x.nrows(), oh * ow * conv.c_out, |n, idx| {
            let (pix, co) = (idx / conv.c_out, idx % conv.c_out);
            let (r, c) = (pix / ow, pix % ow);
            let mut acc = b[co];
            for i in 0..kh {
                for j in 0..kw {
                    let (yy, xx) = ((r * sh + i) as i64 - p.top as i64, (c * sw + j) as i64 - p.left as i64);
                    if yy < 0 || xx < 0 || yy >= s.h as i64 || xx >= s.w as i64 {
                        continue;
                    }
                    for ci in 0..s.c {
                        let v = x[(n, (yy as usize * s.w + xx as usize) * s.c + ci)];
                        let wv = w[((i * kw + j) * s.c + ci, co)];
                        acc = acc.wrapping_add(i32::from(v) * i32::from(wv));
                    }
                }
            }
            acc
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn im2col_gemm_equals_direct_convolution(
            (h, w_, c_in, c_out, kh, kw, sh, sw, pads, images, seed) in
                (1usize..10, 1usize..10, 1usize..5, 1usize..6, 1usize..6, 1usize..6, 1usize..4, 1usize..4,
                 proptest::array::uniform4(0usize..3), 1usize..3, any::<u64>())
        ) {
            let s = shape(h, w_, c_in);
            let conv = Conv2d { window: Window { kernel: (kh, kw), stride: (sh, sw), padding: pads.into() }, c_in, c_out };
            prop_assume!(conv.output_shape(s).is_ok());
            let mut rng = crate::rng::SplitMix64::new(seed);
            let x = DMatrix::from_fn(images, s.len(), |_, _| rng.next_u64() as i8);
            let w = DMatrix::from_fn(conv.k().unwrap(), c_out, |_, _| rng.next_u64() as i8);
            let b = DVector::from_fn(c_out, |_, _| (rng.next_u64() % 2001) as i32 - 1000);
            let got = conv2d_raw(&x, s, &conv, &w, &b, 0).unwrap();
            prop_assert_eq!(&got, &direct_conv(&x, s, &conv, &w, &b));
            // the int8 path is the same accumulators requantised
            let q = Quant::new(37, 9, true).unwrap();
            let y = conv2d(&x, s, &conv, &w, &b, &q.into(), 0).unwrap();
            prop_assert_eq!(y, got.map(|a| crate::arith::requantize(a, 0, q)));
            // and the pixel/image reshapes are inverses
            let out = conv.output_shape(s).unwrap();
            let img = got.map(|v| v as i8);
            prop_assert_eq!(pixels_to_images(&images_to_pixels(&img, out), images), img);
        }
    }
}
