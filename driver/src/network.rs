//! Quantised networks of conv2d, maxpool2d, global_avg_pool, flatten and dense layers, and how
//! they run on a device: every conv2d and dense layer is a GEMM on the array, the pools and
//! flatten run on the host in `spec`'s integer arithmetic.
//!
//! ```text
//!   X (images x H·W·C int8, NHWC rows)
//!     │
//!     ├─ conv2d ──► host: spec::conv::im2col (images·OH·OW x KH·KW·C_in) ─┐
//!     │                                                                   ├─► one Program on the device:
//!     ├─ dense  ──► X as it is (images x K) ──────────────────────────────┘   compile_mlp (tiled, chained)
//!     │             ... chained on chip while the next layer reads the same rows:
//!     │             dense after dense, a 1x1 stride-1 unpadded conv2d after a conv2d
//!     ├─ maxpool2d, global_avg_pool ──► host (spec::conv)
//!     └─ flatten ──► nothing moves (rows are NHWC already)
//! ```
//!
//! im2col runs on the host: the device sees an ordinary GEMM, so a convolution needs nothing
//! new in the hardware, and is bit-exact with [`Network::golden`] by construction of the
//! arithmetic (`spec::conv`). The price is link words: every input pixel is sent once per
//! kernel tap that covers it (about KH·KW / (SH·SW) times); `docs/model-format.md` measures it
//! on the demo CNN.

use crate::compile::{
    compile_mlp_resident, is_zero, layer_from_parts, layer_v2_parts, row_major, CompileError, Layer,
    OutputKind, Residency,
};
use crate::device::{Device, DriverError};
use crate::program::Output;
use crate::quant::{ModelError, QuantLayer, RawWeightScale};
use crate::transport::Transport;
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use spec::conv::{self, Conv2d, ConvError, Padding, Shape, Window};
use spec::{ColumnScale, Quant};
use thiserror::Error;

/// A convolution: its geometry and its lowered GEMM layer (weights `KH·KW·C_in x C_out`, rows in
/// `(i·KW + j)·C_in + c` order: HWIO).
#[derive(Debug, Clone, PartialEq)]
pub struct ConvLayer {
    conv: Conv2d,
    layer: QuantLayer,
}

impl ConvLayer {
    /// A convolution of geometry `conv` with the GEMM layer `layer` (K x N = KH·KW·C_in x C_out).
    pub fn new(conv: Conv2d, layer: QuantLayer) -> Result<Self, NetworkError> {
        let k = conv.k().map_err(|e| NetworkError::op(0, "conv2d", e))?;
        let l = layer.layer();
        if l.k() != k || l.n() != conv.c_out {
            return Err(NetworkError::op(
                0,
                "conv2d",
                format!(
                    "weights are {}x{} but a {}x{} kernel from {} to {} channels needs {}x{} (KH·KW·C_in x C_out)",
                    l.k(),
                    l.n(),
                    conv.window.kernel.0,
                    conv.window.kernel.1,
                    conv.c_in,
                    conv.c_out,
                    k,
                    conv.c_out
                ),
            ));
        }
        Ok(ConvLayer { conv, layer })
    }

    /// The geometry.
    pub fn conv(&self) -> &Conv2d {
        &self.conv
    }

    /// The lowered GEMM layer with its scales.
    pub fn quant_layer(&self) -> &QuantLayer {
        &self.layer
    }

    /// The lowered GEMM layer.
    pub fn layer(&self) -> &Layer {
        self.layer.layer()
    }

    /// True for a 1x1 kernel, stride 1, no padding: its im2col is the identity on pixel rows,
    /// so it can read the previous convolution's output where it lies on chip.
    pub fn is_pointwise(&self) -> bool {
        let w = &self.conv.window;
        w.kernel == (1, 1) && w.stride == (1, 1) && w.padding == Padding::default()
    }
}

/// One layer of a [`Network`].
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A convolution, lowered to a GEMM on the device.
    Conv2d(ConvLayer),
    /// Max pooling on the host.
    MaxPool2d(Window),
    /// The mean of each channel, on the host.
    GlobalAvgPool,
    /// H x W x C to 1 x 1 x H·W·C: nothing moves.
    Flatten,
    /// A dense layer (a GEMM on the device); its input must be flat.
    Dense(QuantLayer),
}

impl Op {
    /// The name used in model files and messages.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Conv2d(_) => "conv2d",
            Op::MaxPool2d(_) => "maxpool2d",
            Op::GlobalAvgPool => "global_avg_pool",
            Op::Flatten => "flatten",
            Op::Dense(_) => "dense",
        }
    }

    /// The GEMM layer of a conv2d or dense op.
    pub fn gemm(&self) -> Option<&QuantLayer> {
        match self {
            Op::Conv2d(c) => Some(&c.layer),
            Op::Dense(l) => Some(l),
            _ => None,
        }
    }

    /// The output shape on an input of `input`.
    pub fn output_shape(&self, input: Shape) -> Result<Shape, String> {
        match self {
            Op::Conv2d(c) => c.conv.output_shape(input).map_err(|e| e.to_string()),
            Op::MaxPool2d(w) => conv::pool_output_shape(input, w).map_err(|e| e.to_string()),
            Op::GlobalAvgPool => Ok(Shape { h: 1, w: 1, c: input.c }),
            Op::Flatten => Ok(Shape { h: 1, w: 1, c: input.len() }),
            Op::Dense(l) => {
                let l = l.layer();
                if !input.is_flat() {
                    return Err(format!(
                        "its input is {input}, not a flat vector: put a flatten or global_avg_pool layer before it"
                    ));
                }
                if l.k() != input.c {
                    return Err(format!("takes K = {} inputs but its input has {} features", l.k(), input.c));
                }
                Shape::flat(l.n()).map_err(|e| e.to_string())
            }
        }
    }
}

/// A network that cannot be built or run: one line naming the layer.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NetworkError {
    /// A layer that does not fit its input (or is malformed).
    #[error("layer {index} ({op}): {problem}")]
    Op {
        /// Layer index, from 0.
        index: usize,
        /// Its op name.
        op: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The network as a whole.
    #[error("{0}")]
    Network(String),
    /// X does not match the network's input.
    #[error("X has {cols} columns but the network takes images of {shape} = {} values per row", shape.len())]
    Input {
        /// X's columns.
        cols: usize,
        /// The input shape.
        shape: Shape,
    },
}

impl NetworkError {
    fn op(index: usize, op: &'static str, problem: impl ToString) -> Self {
        NetworkError::Op { index, op, problem: problem.to_string() }
    }
}

/// A quantised network: an input shape and scale, layers, and what the last layer returns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawNetwork", into = "RawNetwork")]
pub struct Network {
    input: Shape,
    input_scale: f64,
    /// The int8 code of a real 0 in the input (0 for a symmetric model).
    input_zero_point: i8,
    output: OutputKind,
    ops: Vec<Op>,
    /// The shape after each op (derived).
    shapes: Vec<Shape>,
}

impl Network {
    /// A network, checked layer by layer: every layer must fit its input's shape; a raw output
    /// needs a conv2d or dense last layer (it returns that GEMM's accumulators).
    pub fn new(
        input: Shape,
        input_scale: f64,
        ops: Vec<Op>,
        output: OutputKind,
    ) -> Result<Self, NetworkError> {
        if !(input_scale.is_finite() && input_scale > 0.0) {
            return Err(NetworkError::Network(format!(
                "input_scale must be a finite number > 0, got {input_scale}"
            )));
        }
        if ops.is_empty() {
            return Err(NetworkError::Network("a network needs at least one layer".into()));
        }
        let mut shapes = Vec::with_capacity(ops.len());
        let mut s = input;
        for (index, op) in ops.iter().enumerate() {
            s = op.output_shape(s).map_err(|problem| NetworkError::Op { index, op: op.name(), problem })?;
            shapes.push(s);
        }
        let last = ops.len() - 1;
        if output == OutputKind::Raw && ops[last].gemm().is_none() {
            return Err(NetworkError::op(
                last,
                ops[last].name(),
                "a raw (int32) output must come from a conv2d or dense last layer",
            ));
        }
        if !ops.iter().any(|o| o.gemm().is_some()) {
            return Err(NetworkError::Network("a network needs at least one conv2d or dense layer".into()));
        }
        Ok(Network { input, input_scale, input_zero_point: 0, output, ops, shapes })
    }

    /// The same network with an input zero point: the int8 code of a real 0 in the input
    /// (asymmetric models: ONNX, PyTorch). It fills the padding of a first conv2d, and
    /// [`Network::quantize_input`] adds it.
    pub fn with_input_zero_point(self, zero_point: i8) -> Self {
        Network { input_zero_point: zero_point, ..self }
    }

    /// A network of dense layers only (an MLP) taking flat vectors of its first layer's K.
    pub fn from_mlp(mlp: &crate::quant::QuantizedMlp) -> Self {
        let ops = mlp.layers().iter().cloned().map(Op::Dense).collect();
        let input = Shape::flat(mlp.k().max(1)).expect("one flat dimension always fits");
        Network::new(input, mlp.input_scale(), ops, mlp.output()).expect("an MLP chains by construction")
    }

    /// The network as an MLP, if every layer is dense.
    pub fn to_mlp(&self) -> Option<crate::quant::QuantizedMlp> {
        let layers: Option<Vec<QuantLayer>> =
            self.ops.iter().map(|o| if let Op::Dense(l) = o { Some(l.clone()) } else { None }).collect();
        crate::quant::QuantizedMlp::new(self.input_scale, layers?, self.output).ok()
    }

    /// The input image shape.
    pub fn input(&self) -> Shape {
        self.input
    }
    /// The real value of one input LSB.
    pub fn input_scale(&self) -> f64 {
        self.input_scale
    }
    /// The int8 code of a real 0 in the input.
    pub fn input_zero_point(&self) -> i8 {
        self.input_zero_point
    }

    /// Float inputs to int8 codes with the input scale and zero point by ONNX's `QuantizeLinear`
    /// rule ([`crate::quant::quantize_linear`]), so an imported model sees the codes onnxruntime
    /// would. Callers refuse non-finite inputs before this.
    pub fn quantize_input(&self, x: &DMatrix<f32>) -> DMatrix<i8> {
        let s = self.input_scale as f32;
        x.map(|v| crate::quant::quantize_linear(v, s, self.input_zero_point))
    }
    /// What the last layer returns.
    pub fn output(&self) -> OutputKind {
        self.output
    }
    /// The layers.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }
    /// The shape after each layer.
    pub fn shapes(&self) -> &[Shape] {
        &self.shapes
    }
    /// The output shape (per image).
    pub fn output_shape(&self) -> Shape {
        self.shapes[self.shapes.len() - 1]
    }
    /// True if every layer is dense (an MLP).
    pub fn is_mlp(&self) -> bool {
        self.ops.iter().all(|o| matches!(o, Op::Dense(_)))
    }

    /// The input scale of layer `i` (the real value of one LSB of its input).
    pub fn layer_input_scale(&self, i: usize) -> f64 {
        self.ops[..i]
            .iter()
            .rev()
            .find_map(|o| o.gemm().map(QuantLayer::output_scale))
            .unwrap_or(self.input_scale)
    }

    /// The input zero point of layer `i` (pools and flatten keep their input's).
    pub fn layer_input_zero_point(&self, i: usize) -> i8 {
        self.ops[..i]
            .iter()
            .rev()
            .find_map(|o| o.gemm().map(QuantLayer::output_zero_point))
            .unwrap_or(self.input_zero_point)
    }

    /// The output as real numbers: int8 codes as `(q − Z)·s_y`; raw int32 accumulators as
    /// `acc·s_x·s_w[n]` (per output channel for a per-channel layer).
    pub fn dequantize(&self, y: &Output) -> DMatrix<f32> {
        match y {
            Output::Int8(q) => {
                let (s, z) = (self.output_scale(), f64::from(self.layer_input_zero_point(self.ops.len())));
                q.map(|v| ((f64::from(v) - z) * s) as f32)
            }
            Output::Raw(acc) => {
                let last = self.ops.len() - 1;
                let l = self.ops[last].gemm().expect("a raw output comes from a GEMM layer");
                let s_x = self.layer_input_scale(last);
                let c = l.layer().n();
                DMatrix::from_fn(acc.nrows(), acc.ncols(), |r, i| {
                    (f64::from(acc[(r, i)]) * s_x * l.column_weight_scale(i % c)) as f32
                })
            }
        }
    }

    /// The real value of one LSB of the output: the last layer's output scale, or for a raw
    /// output its accumulator scale `s_x · s_w`.
    pub fn output_scale(&self) -> f64 {
        let last = self.ops.len() - 1;
        match (self.output, self.ops[last].gemm()) {
            (OutputKind::Raw, Some(l)) => self.layer_input_scale(last) * l.weight_scale(),
            _ => self.layer_input_scale(self.ops.len()),
        }
    }

    /// The GEMMs one batch of `images` runs on the device: (M, K, N) per conv2d/dense layer.
    pub fn gemms(&self, images: usize) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        for (op, next) in self.ops.iter().zip(&self.shapes) {
            if let Some(l) = op.gemm() {
                // saturating: a hostile batch size gives a huge GEMM that the callers' memory
                // checks refuse, never a wrapped small one
                let rows =
                    if matches!(op, Op::Conv2d(_)) { images.saturating_mul(next.pixels()) } else { images };
                out.push((rows, l.layer().k(), l.layer().n()));
            }
        }
        out
    }

    /// Useful multiply-accumulates for `images` images (saturating at `u64::MAX`).
    pub fn macs(&self, images: usize) -> u64 {
        self.gemms(images)
            .iter()
            .map(|&(m, k, n)| (m as u64).saturating_mul(k as u64).saturating_mul(n as u64))
            .fold(0u64, u64::saturating_add)
    }

    fn check_input(&self, x: &DMatrix<i8>) -> Result<(), NetworkError> {
        if x.ncols() != self.input.len() {
            return Err(NetworkError::Input { cols: x.ncols(), shape: self.input });
        }
        Ok(())
    }

    /// The network on the host, layer by layer in `spec`'s arithmetic (`spec::conv`,
    /// `spec::golden`): what every device must return bit for bit.
    pub fn golden(&self, x: &DMatrix<i8>) -> Result<Output, NetworkError> {
        self.check_input(x)?;
        let last = self.ops.len() - 1;
        let mut a = x.clone();
        let mut s = self.input;
        let fail = |i: usize, op: &Op, e: ConvError| NetworkError::op(i, op.name(), e);
        for (i, op) in self.ops.iter().enumerate() {
            let raw = i == last && self.output == OutputKind::Raw;
            match op {
                Op::Conv2d(c) => {
                    let l = c.layer();
                    let pad = self.layer_input_zero_point(i);
                    if raw {
                        let y = conv::conv2d_raw(&a, s, &c.conv, l.weights(), l.bias(), pad)
                            .map_err(|e| fail(i, op, e))?;
                        return Ok(Output::Raw(y));
                    }
                    a = conv::conv2d(&a, s, &c.conv, l.weights(), l.bias(), l.layer_quant(), pad)
                        .map_err(|e| fail(i, op, e))?;
                }
                Op::Dense(l) => {
                    let l = l.layer();
                    if raw {
                        let y = spec::golden::layer_raw(&a, l.weights(), l.bias())
                            .map_err(|e| fail(i, op, e.into()))?;
                        return Ok(Output::Raw(y));
                    }
                    a = spec::golden::layer_v2(&a, l.weights(), l.bias(), l.layer_quant())
                        .map_err(|e| fail(i, op, e.into()))?;
                }
                Op::MaxPool2d(w) => a = conv::maxpool2d(&a, s, w).map_err(|e| fail(i, op, e))?.0,
                Op::GlobalAvgPool => a = conv::global_avg_pool(&a, s).map_err(|e| fail(i, op, e))?,
                Op::Flatten => {}
            }
            s = self.shapes[i];
        }
        Ok(Output::Int8(a))
    }

    /// The device stages: runs of consecutive GEMM layers that chain on chip (see the module
    /// docs), as layer index ranges.
    pub fn stages(&self) -> Vec<std::ops::Range<usize>> {
        let mut stages = Vec::new();
        let mut i = 0;
        while i < self.ops.len() {
            if self.ops[i].gemm().is_none() {
                i += 1;
                continue;
            }
            let mut end = i + 1;
            while end < self.ops.len() && chains(&self.ops[end - 1], &self.ops[end]) {
                end += 1;
            }
            stages.push(i..end);
            i = end;
        }
        stages
    }

    /// Run the network on `device`: GEMM stages compiled for its Config and run through the
    /// driver, host layers in between. Equals [`Network::golden`] bit for bit.
    pub fn run<T: Transport>(&self, device: &mut Device<T>, x: &DMatrix<i8>) -> Result<Output, DriverError> {
        self.run_with(device, x, None)
    }

    /// The GEMM layers in order (the numbering of [`Residency`]).
    fn gemm_layers(&self) -> Vec<&Layer> {
        self.ops.iter().filter_map(|o| o.gemm().map(QuantLayer::layer)).collect()
    }

    /// Store the network's weight tiles on `device` (resident weights, docs/design.md), as many
    /// as fit in `budget_rows` scratchpad rows (the rest stay streamed); then
    /// [`Network::run_resident`] sends only activations. Returns where they are.
    pub fn upload<T: Transport>(
        &self,
        device: &mut Device<T>,
        budget_rows: usize,
    ) -> Result<Residency, DriverError> {
        device.upload_resident(&self.gemm_layers(), budget_rows)
    }

    /// [`Network::run`] with the tiles of `resident` (from [`Network::upload`] on this
    /// device) loaded on chip. Equals [`Network::golden`] bit for bit.
    pub fn run_resident<T: Transport>(
        &self,
        device: &mut Device<T>,
        x: &DMatrix<i8>,
        resident: &Residency,
    ) -> Result<Output, DriverError> {
        self.run_with(device, x, Some(resident))
    }

    fn run_with<T: Transport>(
        &self,
        device: &mut Device<T>,
        x: &DMatrix<i8>,
        resident: Option<&Residency>,
    ) -> Result<Output, DriverError> {
        self.check_input(x).map_err(|e| DriverError::Compile(CompileError::Network(e.to_string())))?;
        let images = x.nrows();
        let last = self.ops.len() - 1;
        let stages = self.stages();
        let mut a = x.clone();
        let mut s = self.input;
        let mut i = 0;
        let host_fail = |i: usize, op: &Op, e: ConvError| {
            DriverError::Compile(CompileError::Network(NetworkError::op(i, op.name(), e).to_string()))
        };
        while i < self.ops.len() {
            let op = &self.ops[i];
            if let Some(stage) = stages.iter().find(|r| r.start == i) {
                let rows = match op {
                    Op::Conv2d(c) => conv::im2col_padded(&a, s, &c.conv, self.layer_input_zero_point(i))
                        .map_err(|e| host_fail(i, op, e))?,
                    _ => a.clone(),
                };
                let layers: Vec<Layer> = self.ops[stage.clone()]
                    .iter()
                    .map(|o| o.gemm().expect("a stage is GEMMs").layer().clone())
                    .collect();
                let kind = if stage.end - 1 == last { self.output } else { OutputKind::Int8 };
                let y = match resident {
                    Some(r) => {
                        let first = self.ops[..stage.start].iter().filter(|o| o.gemm().is_some()).count();
                        let program = compile_mlp_resident(device.config(), &rows, &layers, kind, r, first)?;
                        device.run(&program)?.into_output()
                    }
                    None => device.mlp(&rows, &layers, kind)?,
                };
                let per_pixel = matches!(op, Op::Conv2d(_));
                if kind == OutputKind::Raw {
                    let y = y.as_raw().expect("a raw run returns int32");
                    return Ok(Output::Raw(if per_pixel {
                        conv::pixels_to_images(y, images)
                    } else {
                        y.clone()
                    }));
                }
                let y = y.as_int8().expect("an int8 run returns int8");
                a = if per_pixel { conv::pixels_to_images(y, images) } else { y.clone() };
                s = self.shapes[stage.end - 1];
                i = stage.end;
                continue;
            }
            match op {
                Op::MaxPool2d(w) => a = conv::maxpool2d(&a, s, w).map_err(|e| host_fail(i, op, e))?.0,
                Op::GlobalAvgPool => a = conv::global_avg_pool(&a, s).map_err(|e| host_fail(i, op, e))?,
                Op::Flatten => {}
                Op::Conv2d(_) | Op::Dense(_) => unreachable!("every GEMM layer starts or continues a stage"),
            }
            s = self.shapes[i];
            i += 1;
        }
        Ok(Output::Int8(a))
    }
}

/// True if `next` reads `prev`'s output rows as they lie on chip.
fn chains(prev: &Op, next: &Op) -> bool {
    match (prev, next) {
        (Op::Dense(_), Op::Dense(_)) => true,
        (Op::Conv2d(_), Op::Conv2d(c)) => c.is_pointwise(),
        _ => false,
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stride = |w: &Window| if w.stride == (1, 1) { String::new() } else { format!("/{}", w.stride.0) };
        match self {
            Op::Conv2d(c) => {
                let w = &c.conv.window;
                write!(
                    f,
                    "conv2d {}x{}{} {}->{}",
                    w.kernel.0,
                    w.kernel.1,
                    stride(w),
                    c.conv.c_in,
                    c.conv.c_out
                )
            }
            Op::MaxPool2d(w) => write!(f, "maxpool2d {}x{}{}", w.kernel.0, w.kernel.1, stride(w)),
            Op::GlobalAvgPool => f.write_str("global_avg_pool"),
            Op::Flatten => f.write_str("flatten"),
            Op::Dense(l) => write!(f, "dense {}->{}", l.layer().k(), l.layer().n()),
        }
    }
}

/// `8x8x1: conv2d 3x3 1->8, conv2d 3x3/2 8->16, maxpool2d 2x2/2, flatten, dense 64->10`.
impl std::fmt::Display for Network {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ops: Vec<String> = self.ops.iter().map(Op::to_string).collect();
        write!(f, "{}: {}", self.input, ops.join(", "))
    }
}

// ---- serde ---------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNetwork {
    input: Shape,
    input_scale: f64,
    #[serde(default, skip_serializing_if = "is_zero")]
    input_zero_point: i8,
    output: OutputKind,
    layers: Vec<RawOp>,
}

#[derive(Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
enum RawOp {
    Conv2d(RawConv),
    #[serde(rename = "maxpool2d")]
    MaxPool2d {
        kernel: [usize; 2],
        stride: [usize; 2],
        #[serde(default)]
        padding: Padding,
    },
    GlobalAvgPool {},
    Flatten {},
    Dense(QuantLayer),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConv {
    kernel: [usize; 2],
    stride: [usize; 2],
    #[serde(default)]
    padding: Padding,
    c_in: usize,
    c_out: usize,
    weight_scale: RawWeightScale,
    output_scale: f64,
    quant: Quant,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scales: Option<Vec<ColumnScale>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    zero_point: i8,
    bias: Vec<i32>,
    /// K x N row-major: `weights[((i·KW + j)·C_in + c)·C_out + co]`.
    weights: Vec<i8>,
}

fn window(kernel: [usize; 2], stride: [usize; 2], padding: Padding) -> Window {
    Window { kernel: (kernel[0], kernel[1]), stride: (stride[0], stride[1]), padding }
}

impl TryFrom<RawNetwork> for Network {
    type Error = String;
    fn try_from(r: RawNetwork) -> Result<Self, String> {
        let mut ops = Vec::with_capacity(r.layers.len());
        for (index, raw) in r.layers.into_iter().enumerate() {
            let op = match raw {
                RawOp::Conv2d(c) => {
                    let conv = Conv2d {
                        window: window(c.kernel, c.stride, c.padding),
                        c_in: c.c_in,
                        c_out: c.c_out,
                    };
                    let fail = |p: String| NetworkError::op(index, "conv2d", p).to_string();
                    let k = conv.k().map_err(|e| fail(e.to_string()))?;
                    let layer =
                        layer_from_parts(k, c.c_out, &c.weights, c.bias, c.quant, c.scales, c.zero_point)
                            .map_err(|e| fail(e.to_string()))?;
                    let layer = QuantLayer::per_channel(layer, c.weight_scale.into_scales(), c.output_scale)
                        .map_err(|e: ModelError| fail(e.to_string()))?;
                    Op::Conv2d(ConvLayer::new(conv, layer).map_err(|e| e.to_string())?)
                }
                RawOp::MaxPool2d { kernel, stride, padding } => {
                    Op::MaxPool2d(window(kernel, stride, padding))
                }
                RawOp::GlobalAvgPool {} => Op::GlobalAvgPool,
                RawOp::Flatten {} => Op::Flatten,
                RawOp::Dense(l) => Op::Dense(l),
            };
            ops.push(op);
        }
        Network::new(r.input, r.input_scale, ops, r.output)
            .map(|n| n.with_input_zero_point(r.input_zero_point))
            .map_err(|e| e.to_string())
    }
}

impl From<Network> for RawNetwork {
    fn from(n: Network) -> Self {
        let layers = n
            .ops
            .into_iter()
            .map(|op| match op {
                Op::Conv2d(c) => {
                    let l = c.layer.layer();
                    let (scales, zero_point) = layer_v2_parts(l);
                    let win = c.conv.window;
                    RawOp::Conv2d(RawConv {
                        kernel: [win.kernel.0, win.kernel.1],
                        stride: [win.stride.0, win.stride.1],
                        padding: win.padding,
                        c_in: c.conv.c_in,
                        c_out: c.conv.c_out,
                        weight_scale: RawWeightScale::from_scales(c.layer.weight_scales()),
                        output_scale: c.layer.output_scale(),
                        quant: l.quant(),
                        scales,
                        zero_point,
                        bias: l.bias().iter().copied().collect(),
                        weights: row_major(l),
                    })
                }
                Op::MaxPool2d(w) => RawOp::MaxPool2d {
                    kernel: [w.kernel.0, w.kernel.1],
                    stride: [w.stride.0, w.stride.1],
                    padding: w.padding,
                },
                Op::GlobalAvgPool => RawOp::GlobalAvgPool {},
                Op::Flatten => RawOp::Flatten {},
                Op::Dense(l) => RawOp::Dense(l),
            })
            .collect();
        RawNetwork {
            input: n.input,
            input_scale: n.input_scale,
            input_zero_point: n.input_zero_point,
            output: n.output,
            layers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::GoldenTransport;
    use nalgebra::DVector;
    use spec::Config;

    fn qlayer(k: usize, n: usize, relu: bool, seed: u64) -> QuantLayer {
        let mut rng = spec::rng::SplitMix64::new(seed);
        let w = DMatrix::from_fn(k, n, |_, _| (rng.next_u64() % 61) as i8 - 30);
        let b = DVector::from_fn(n, |_, _| (rng.next_u64() % 401) as i32 - 200);
        let q = Quant::new(3, 8, relu).unwrap();
        QuantLayer::new(Layer::new(w, b, q).unwrap(), 0.01, 0.05).unwrap()
    }

    fn conv(k: usize, s: usize, p: usize, c_in: usize, c_out: usize, seed: u64) -> Op {
        let c = Conv2d { window: Window::square(k, s, p), c_in, c_out };
        Op::Conv2d(ConvLayer::new(c, qlayer(k * k * c_in, c_out, true, seed)).unwrap())
    }

    fn small_cnn(output: OutputKind) -> Network {
        let ops = vec![
            conv(3, 1, 1, 1, 4, 1),
            conv(1, 1, 0, 4, 3, 2), // pointwise: chains on chip
            conv(3, 2, 1, 3, 5, 3),
            Op::MaxPool2d(Window::square(2, 2, 0)),
            Op::Flatten,
            Op::Dense(qlayer(5, 6, true, 4)),
            Op::Dense(qlayer(6, 3, false, 5)),
        ];
        Network::new(Shape::new(6, 6, 1).unwrap(), 1.0 / 127.0, ops, output).unwrap()
    }

    #[test]
    fn shapes_stages_and_gemms() {
        let n = small_cnn(OutputKind::Raw);
        let shapes: Vec<String> = n.shapes().iter().map(Shape::to_string).collect();
        assert_eq!(shapes, ["6x6x4", "6x6x3", "3x3x5", "1x1x5", "1x1x5", "1x1x6", "1x1x3"]);
        assert_eq!(n.stages(), vec![0..2, 2..3, 5..7]);
        assert_eq!(n.gemms(2), vec![(72, 9, 4), (72, 4, 3), (18, 27, 5), (2, 5, 6), (2, 6, 3)]);
        assert_eq!(n.macs(2), 72 * 9 * 4 + 72 * 4 * 3 + 18 * 27 * 5 + 2 * 5 * 6 + 2 * 6 * 3);
        // a hostile batch saturates instead of wrapping
        assert_eq!(n.gemms(usize::MAX)[0].0, usize::MAX);
        assert_eq!(n.macs(usize::MAX), u64::MAX);
    }

    #[test]
    fn device_equals_golden_with_chaining_and_host_layers() {
        for output in [OutputKind::Raw, OutputKind::Int8] {
            let net = small_cnn(output);
            let mut rng = spec::rng::SplitMix64::new(9);
            let x = DMatrix::from_fn(5, 36, |_, _| (rng.next_u64() % 128) as i8);
            let want = net.golden(&x).unwrap();
            for cfg in [Config::new(2, 64, 32).unwrap(), Config::new(4, 16, 16).unwrap()] {
                let mut dev = Device::open(GoldenTransport::new(cfg), &cfg).unwrap();
                assert_eq!(net.run(&mut dev, &x).unwrap(), want, "{cfg}");
            }
        }
    }

    #[test]
    fn shape_errors_name_the_layer() {
        let s = Shape::new(4, 4, 1).unwrap();
        let e = |ops: Vec<Op>| Network::new(s, 0.1, ops, OutputKind::Int8).unwrap_err().to_string();
        assert_eq!(
            e(vec![conv(5, 1, 0, 1, 2, 1)]),
            "layer 0 (conv2d): kernel 5x5 is larger than the padded input 4x4"
        );
        assert_eq!(
            e(vec![conv(3, 1, 1, 1, 2, 1), conv(3, 1, 1, 3, 2, 1)]),
            "layer 1 (conv2d): takes C_in = 3 channels but its input has 2"
        );
        assert_eq!(
            e(vec![conv(3, 1, 1, 1, 2, 1), Op::Dense(qlayer(32, 2, false, 1))]),
            "layer 1 (dense): its input is 4x4x2, not a flat vector: put a flatten or global_avg_pool layer before it"
        );
        assert_eq!(
            e(vec![conv(3, 1, 1, 1, 2, 1), Op::Flatten, Op::Dense(qlayer(30, 2, false, 1))]),
            "layer 2 (dense): takes K = 30 inputs but its input has 32 features"
        );
        assert_eq!(
            Network::new(s, 0.1, vec![conv(3, 1, 1, 1, 2, 1), Op::GlobalAvgPool], OutputKind::Raw)
                .unwrap_err()
                .to_string(),
            "layer 1 (global_avg_pool): a raw (int32) output must come from a conv2d or dense last layer"
        );
        assert_eq!(
            e(vec![Op::MaxPool2d(Window::square(2, 2, 2))]),
            "layer 0 (maxpool2d): padding [2, 2, 2, 2] must be smaller than the kernel 2x2 on every side"
        );
    }

    #[test]
    fn serde_round_trip_and_checks() {
        let n = small_cnn(OutputKind::Raw);
        let json = serde_json::to_string(&n).unwrap();
        assert!(
            json.contains(r#""op":"conv2d","kernel":[3,3],"stride":[1,1],"padding":[1,1,1,1],"c_in":1"#),
            "{json}"
        );
        assert!(
            json.contains(r#"{"op":"maxpool2d","kernel":[2,2],"stride":[2,2],"padding":[0,0,0,0]}"#),
            "{json}"
        );
        assert!(json.contains(r#"{"op":"flatten"}"#), "{json}");
        let back: Network = serde_json::from_str(&json).unwrap();
        assert_eq!(back, n);
        let bad = json.replacen(r#""c_in":3"#, r#""c_in":2"#, 1);
        let e = serde_json::from_str::<Network>(&bad).unwrap_err().to_string();
        assert!(e.starts_with("layer 2 (conv2d): weights of a 18x5 layer need 90 elements, got 135"), "{e}");
        let bad = json.replacen(r#"{"op":"flatten"}"#, r#"{"op":"flatten","x":1}"#, 1);
        assert!(serde_json::from_str::<Network>(&bad).unwrap_err().to_string().contains("unknown field `x`"));
        let bad = json.replacen(r#"{"op":"flatten"}"#, r#"{"op":"softmax"}"#, 1);
        assert!(serde_json::from_str::<Network>(&bad)
            .unwrap_err()
            .to_string()
            .contains("unknown variant `softmax`"));
    }
}
