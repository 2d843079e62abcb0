//! protobrain's ONNX importer: int8 models quantised by onnxruntime (or any tool that writes
//! the same standard ops) become a [`driver::Network`] that runs on the core bit-exactly with
//! its golden model, and within one output LSB of onnxruntime.
//!
//! ```text
//!  model.onnx ── proto::decode_model (prost, ONNX's onnx.proto as maintained in tract-onnx)
//!       │
//!       └─► lower::lower ── one pass over the nodes ──► Imported { network, input, output }
//!              QDQ form:       QuantizeLinear / DequantizeLinear around Conv, Gemm, MatMul
//!                              (+ Relu, Clip, MaxPool, Flatten, Reshape)
//!              QOperator form: QLinearConv, QLinearMatMul, MatMulInteger / ConvInteger with
//!                              Cast, Mul (scale), Add (bias), QuantizeLinear
//! ```
//!
//! Anything else is refused with one line naming the node, its op and what is unsupported
//! ([`ImportError`]). `docs/onnx.md` has the whole path from PyTorch and the measured agreement.

pub mod lower;
pub mod proto;

use std::path::Path;

use driver::Network;
use nalgebra::DMatrix;
use thiserror::Error;

/// Why a model cannot be imported: one line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ImportError {
    /// The file cannot be read or decoded.
    #[error("{0}")]
    File(String),
    /// A node the importer does not support, or that does not fit its inputs.
    #[error("node {node} ({op}): {problem}")]
    Node {
        /// The node's name in quotes, or `#index` if it has none.
        node: String,
        /// Its op type.
        op: String,
        /// What is unsupported or wrong.
        problem: String,
    },
    /// The model as a whole (opset, inputs, outputs).
    #[error("{0}")]
    Model(String),
}

/// How a tensor at the graph's edge is laid out, and so how its rows map to protobrain's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Images, (N, C, H, W) in ONNX; protobrain's rows are NHWC.
    Image {
        /// Channels.
        c: usize,
        /// Height.
        h: usize,
        /// Width.
        w: usize,
    },
    /// Vectors of `k` features. If they are flattened images, `from_nchw` holds the images'
    /// (C, H, W): ONNX orders their features (c, h, w), protobrain (h, w, c).
    Flat {
        /// Features.
        k: usize,
        /// The (C, H, W) of the images flattened, if any.
        from_nchw: Option<(usize, usize, usize)>,
    },
}

impl Layout {
    /// Values per sample.
    pub fn len(&self) -> usize {
        match *self {
            Layout::Image { c, h, w } => c * h * w,
            Layout::Flat { k, .. } => k,
        }
    }

    /// True if a sample has no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ONNX shape of `n` samples.
    pub fn shape(&self, n: usize) -> Vec<usize> {
        match *self {
            Layout::Image { c, h, w } => vec![n, c, h, w],
            Layout::Flat { k, .. } => vec![n, k],
        }
    }

    /// The ONNX index (within a sample) of protobrain's value `i`.
    fn onnx_index(&self, i: usize) -> usize {
        match *self {
            Layout::Image { c, h, w } | Layout::Flat { from_nchw: Some((c, h, w)), .. } => {
                let (pix, ch) = (i / c, i % c);
                ch * h * w + pix
            }
            Layout::Flat { from_nchw: None, .. } => i,
        }
    }
}

/// One edge of the graph: the input or the output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Io {
    /// Its name in the graph.
    pub name: String,
    /// Its declared dims (`None` where symbolic, as the batch usually is).
    pub dims: Vec<Option<usize>>,
    /// Its layout.
    pub layout: Layout,
}

/// An imported model.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The network, in protobrain's terms (NHWC rows, int8 codes).
    pub network: Network,
    /// The graph input.
    pub input: Io,
    /// The graph output.
    pub output: Io,
    /// The model's standard opset.
    pub opset: i64,
}

impl Imported {
    /// ONNX samples (row-major, each in the input's ONNX layout) to protobrain's rows.
    pub fn rows_from_onnx(&self, n: usize, data: &[f32]) -> DMatrix<f32> {
        let l = self.input.layout;
        let k = l.len();
        DMatrix::from_fn(n, k, |r, i| data[r * k + l.onnx_index(i)])
    }

    /// protobrain's output rows to ONNX samples (row-major, in the output's ONNX layout).
    pub fn rows_to_onnx(&self, y: &DMatrix<f32>) -> Vec<f32> {
        let l = self.output.layout;
        let k = l.len();
        let mut out = vec![0f32; y.nrows() * k];
        for r in 0..y.nrows() {
            for i in 0..k {
                out[r * k + l.onnx_index(i)] = y[(r, i)];
            }
        }
        out
    }
}

/// Import a model from its bytes.
pub fn import_bytes(bytes: &[u8]) -> Result<Imported, ImportError> {
    let model = proto::decode_model(bytes).map_err(ImportError::File)?;
    lower::lower(&model)
}

/// Import a model file.
pub fn import_path(path: &Path) -> Result<Imported, ImportError> {
    let bytes =
        std::fs::read(path).map_err(|e| ImportError::File(format!("cannot read {}: {e}", path.display())))?;
    import_bytes(&bytes)
}

#[cfg(test)]
mod tests;
