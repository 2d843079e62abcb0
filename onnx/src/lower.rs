//! Lowering an ONNX graph to a [`Network`]: one pass over the nodes in their (topological)
//! order, tracking what each tensor is in protobrain's terms.
//!
//! ```text
//!  float input ─QuantizeLinear─► codes (int8/uint8, scale s, zero point Z)
//!  codes ─DequantizeLinear─► real (the same codes, read as (q − Z)·s)
//!  int8 constant ─DequantizeLinear─► weights (per-tensor or per-output-channel scale, Z = 0)
//!  int32 constant ─DequantizeLinear─► bias (scale s_x·s_w)
//!  real, weights, bias ─Conv / Gemm / MatMul (+Add)─► accumulator (not yet requantised)
//!  accumulator ─Relu / Clip─► the same, with ReLU
//!  accumulator ─QuantizeLinear─► codes: one conv2d or dense layer of the Network
//!  codes ─QLinearConv / QLinearMatMul─► codes: the same, in one node (QOperator form)
//!  codes ─MatMulInteger / ConvInteger─► int32 accumulator ─Cast─► ─Mul scale─► ─Add bias─►
//!  real or codes ─MaxPool / Flatten / Reshape─► the same kind: host layers
//! ```
//!
//! Requantisation is the hardware's (contract v2): per output column
//! `M[n]·2^-S[n] ≈ s_x·s_w[n] / s_y`, computed in float32 as onnxruntime computes it, then
//! represented with the most precision that fits (`ColumnScale::from_scale`). The input's zero
//! point is folded into the bias, `b'[n] = b[n] − Z_x·Σ_k W[k][n]` (int32, wrapping: exact),
//! and fills a convolution's padding. uint8 codes map to int8 by subtracting 128 (codes and
//! zero point alike, which changes no real value). Layouts: ONNX images are NCHW, protobrain's
//! NHWC; convolution weights are reordered to HWIO, and a dense layer after a flatten of images
//! gets its rows permuted, so the Network computes exactly the ONNX graph.

use std::collections::HashMap;

use driver::quant::{quantize_linear, QuantLayer};
use driver::{ConvLayer, Layer, Network, Op, OutputKind};
use nalgebra::{DMatrix, DVector};
use spec::conv::{Conv2d, Padding, Shape, Window};
use spec::{ColumnScale, LayerQuant};
use tract_onnx::pb;

use crate::proto::{self, Attrs, Data, Dtype, Tensor};
use crate::{ImportError, Imported, Io, Layout};

/// The opset this importer starts at (QuantizeLinear/DequantizeLinear with per-axis scales).
pub const MIN_OPSET: i64 = 13;

/// Ops the importer lowers (the standard domain).
pub const SUPPORTED_OPS: &[&str] = &[
    "QuantizeLinear",
    "DequantizeLinear",
    "Conv",
    "Gemm",
    "MatMul",
    "Add",
    "Relu",
    "Clip",
    "MaxPool",
    "Flatten",
    "Reshape",
    "QLinearConv",
    "QLinearMatMul",
    "MatMulInteger",
    "ConvInteger",
    "Cast",
    "Mul",
    "Identity",
    "Constant",
];

/// A tensor of activations on the chain: its quantisation, layout, and the number of network
/// ops that existed when it was made (the chain check: a layer must read the latest one).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Act {
    scale: f32,
    /// In the int8 domain (a uint8 zero point minus 128).
    zp: i8,
    dtype: Dtype,
    layout: Layout,
    at: usize,
}

/// A `DequantizeLinear` of an int8 constant.
#[derive(Debug, Clone)]
struct Weights {
    q: Tensor,
    /// One, or one per slice along `axis`.
    scales: Vec<f32>,
    axis: usize,
}

/// A `DequantizeLinear` of an int32 constant.
#[derive(Debug, Clone)]
struct Bias {
    q: Vec<i32>,
    scales: Vec<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Dense,
    Conv(Conv2d),
}

/// A GEMM layer before its requantisation: real value of column n is
/// `acc_scales[n]·(Σ_k W[k][n]·(x_k − x_zp) + bias[n])`.
#[derive(Debug, Clone)]
struct Acc {
    kind: Kind,
    input: Act,
    /// K x N in protobrain's layout (HWIO for a convolution; NHWC rows after a flatten).
    w: DMatrix<i8>,
    /// What the op subtracts from its input codes (folded into the bias).
    x_zp: i8,
    /// One, or one per column. Empty for an int32 accumulator not yet cast to float.
    acc_scales: Vec<f32>,
    bias: Option<Vec<i32>>,
    relu: bool,
    /// A Clip's bounds (real values), checked against the output scale when requantised.
    clip: Option<(f32, f32)>,
    out: Layout,
}

impl Acc {
    fn n(&self) -> usize {
        self.w.ncols()
    }
    fn acc_scale(&self, n: usize) -> f32 {
        if self.acc_scales.len() == 1 {
            self.acc_scales[0]
        } else {
            self.acc_scales[n]
        }
    }
}

#[derive(Debug, Clone)]
enum Value {
    Const(Tensor),
    /// The graph's float input, before its QuantizeLinear.
    Input,
    Codes(Act),
    Real(Act),
    Weights(Weights),
    Bias(Bias),
    Acc(Box<Acc>),
}

impl Value {
    fn describe(&self) -> &'static str {
        match self {
            Value::Const(t) if t.dtype() == Dtype::F32 => "a float constant",
            Value::Const(_) => "an integer constant",
            Value::Input => "the float graph input (not quantised)",
            Value::Codes(_) => "quantised activations (int8 codes)",
            Value::Real(_) => "dequantised activations",
            Value::Weights(_) => "dequantised weights",
            Value::Bias(_) => "a dequantised bias",
            Value::Acc(a) if a.acc_scales.is_empty() => "an int32 accumulator",
            Value::Acc(_) => "an unquantised layer output",
        }
    }
}

/// A node's failure: the one line the user sees.
struct Fail<'a> {
    node: String,
    op: &'a str,
}

impl Fail<'_> {
    fn err(&self, problem: impl Into<String>) -> ImportError {
        ImportError::Node { node: self.node.clone(), op: self.op.to_string(), problem: problem.into() }
    }
}

struct Lowering {
    values: HashMap<String, Value>,
    ops: Vec<Op>,
    input: Option<(Act, String, Vec<Option<usize>>)>,
    input_name: String,
}

/// Lower a decoded model.
pub fn lower(model: &pb::ModelProto) -> Result<Imported, ImportError> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| ImportError::Model("the model imports no standard ONNX opset".into()))?;
    if opset < MIN_OPSET {
        return Err(ImportError::Model(format!(
            "opset {opset}: protobrain imports opset {MIN_OPSET} and up (re-export the model with opset_version={MIN_OPSET} or later)"
        )));
    }
    let graph = model.graph.as_ref().ok_or_else(|| ImportError::Model("the model has no graph".into()))?;
    let mut values = HashMap::new();
    for t in &graph.initializer {
        let tensor = proto::tensor(t).map_err(ImportError::Model)?;
        values.insert(t.name.clone(), Value::Const(tensor));
    }
    if !graph.sparse_initializer.is_empty() {
        return Err(ImportError::Model("sparse initializers are not supported".into()));
    }
    let inputs: Vec<&pb::ValueInfoProto> =
        graph.input.iter().filter(|v| !values.contains_key(&v.name)).collect();
    let [input] = inputs[..] else {
        let names: Vec<&str> = inputs.iter().map(|v| v.name.as_str()).collect();
        return Err(ImportError::Model(format!(
            "the graph has {} inputs ({}): protobrain runs graphs with one input",
            inputs.len(),
            names.join(", ")
        )));
    };
    let [output] = &graph.output[..] else {
        return Err(ImportError::Model(format!(
            "the graph has {} outputs: protobrain runs graphs with one output",
            graph.output.len()
        )));
    };
    let (elem, dims) = proto::value_type(input)
        .ok_or_else(|| ImportError::Model(format!("input '{}' has no tensor type", input.name)))?;
    if proto::dtype(elem) != Some(Dtype::F32) {
        return Err(ImportError::Model(format!(
            "input '{}' is {}: protobrain takes models with a float32 input (quantised by the model's first QuantizeLinear)",
            input.name,
            proto::dtype_name(elem)
        )));
    }
    values.insert(input.name.clone(), Value::Input);
    let mut l = Lowering { values, ops: Vec::new(), input: None, input_name: input.name.clone() };
    let input_dims = dims;
    for (i, node) in graph.node.iter().enumerate() {
        l.node(i, node, &input_dims)?;
    }
    l.finish(output, opset)
}

fn label(i: usize, node: &pb::NodeProto) -> String {
    if node.name.is_empty() {
        format!("#{i}")
    } else {
        format!("'{}'", node.name)
    }
}

impl Lowering {
    fn node(
        &mut self,
        i: usize,
        node: &pb::NodeProto,
        input_dims: &[Option<usize>],
    ) -> Result<(), ImportError> {
        let op = node.op_type.as_str();
        let f = Fail { node: label(i, node), op };
        if !(node.domain.is_empty() || node.domain == "ai.onnx") {
            return Err(f.err(format!(
                "op {}.{op} is not supported: protobrain imports ops of the standard ONNX domain",
                node.domain
            )));
        }
        let ins = self.inputs(&f, node)?;
        let get = |k: usize| need(&f, &ins, k);
        let out = match op {
            "Constant" => {
                let t = Attrs(node)
                    .tensor("value")
                    .ok_or_else(|| f.err("only a `value` tensor constant is supported"))?;
                Value::Const(proto::tensor(t).map_err(|e| f.err(e))?)
            }
            "Identity" => get(0)?.clone(),
            "QuantizeLinear" => self.quantize_node(&f, node, &ins, input_dims)?,
            "DequantizeLinear" => self.dequantize_node(&f, node, &ins)?,
            "Conv" | "ConvInteger" | "QLinearConv" => self.conv_node(&f, node, &ins)?,
            "Gemm" | "MatMul" | "MatMulInteger" | "QLinearMatMul" => self.gemm_node(&f, node, &ins)?,
            "Cast" => {
                let Value::Acc(acc) = get(0)? else {
                    return Err(f.err(format!("casts {}: only an int32 accumulator (MatMulInteger/ConvInteger) to float is supported", get(0)?.describe())));
                };
                if Attrs(node).int("to") != Some(pb::tensor_proto::DataType::Float as i64) || !acc.acc_scales.is_empty() {
                    return Err(f.err("only a cast of an int32 accumulator to float32 is supported"));
                }
                Value::Acc(Box::new(Acc { acc_scales: vec![1.0], ..(**acc).clone() }))
            }
            "Mul" => {
                let (acc, c) = acc_and_const(&f, get(0)?, get(1)?)?;
                if acc.acc_scales.is_empty() || acc.bias.is_some() || acc.relu || acc.clip.is_some() {
                    return Err(f.err("only a float accumulator may be scaled, before its bias and activation"));
                }
                let c = per_column(&f, c, acc.n(), &acc.kind, "scale")?;
                // one scale if both are per-tensor, else one per column
                let acc_scales = if c.len() == 1 && acc.acc_scales.len() == 1 {
                    vec![acc.acc_scales[0] * c[0]]
                } else {
                    (0..acc.n()).map(|n| acc.acc_scale(n) * pick(&c, n)).collect()
                };
                Value::Acc(Box::new(Acc { acc_scales, ..acc.clone() }))
            }
            "Add" => {
                let (a, b) = (get(0)?, get(1)?);
                let (acc, bias) = match (a, b) {
                    (Value::Acc(acc), other) | (other, Value::Acc(acc)) => (acc, other),
                    (Value::Real(_) | Value::Codes(_), Value::Real(_) | Value::Codes(_)) => {
                        return Err(f.err(
                            "adds two activations (a residual or other branch): protobrain runs a chain of layers, and Add only as a layer's bias",
                        ))
                    }
                    _ => {
                        return Err(f.err(format!(
                            "adds {} and {}: protobrain supports Add only as a layer's bias",
                            a.describe(),
                            b.describe()
                        )))
                    }
                };
                if acc.acc_scales.is_empty() || acc.bias.is_some() || acc.relu || acc.clip.is_some() {
                    return Err(f.err("a bias must be added to a float accumulator, once, before its activation"));
                }
                let q = bias_codes(&f, bias, acc)?;
                Value::Acc(Box::new(Acc { bias: Some(q), ..(**acc).clone() }))
            }
            "Relu" | "Clip" => self.activation_node(&f, node, &ins)?,
            "MaxPool" => self.maxpool_node(&f, node, &ins)?,
            "Flatten" | "Reshape" => self.flatten_node(&f, node, &ins)?,
            "DynamicQuantizeLinear" => {
                return Err(f.err(
                    "dynamic quantisation (activation scales computed at run time) is not supported: quantise statically (onnxruntime.quantization.quantize_static)",
                ))
            }
            other => {
                return Err(f.err(format!(
                    "op {other} is not supported (supported: {})",
                    SUPPORTED_OPS.join(", ")
                )))
            }
        };
        let Some(name) = node.output.first() else {
            return Err(f.err("it has no output"));
        };
        if node.output.len() > 1 && op != "MaxPool" && node.output[1..].iter().any(|o| !o.is_empty()) {
            return Err(f.err("more than one output is not supported"));
        }
        self.values.insert(name.clone(), out);
        Ok(())
    }

    /// QuantizeLinear: the graph input's quantisation, a layer's requantisation, or an identity.
    fn quantize_node(
        &mut self,
        f: &Fail,
        node: &pb::NodeProto,
        ins: &[Option<Value>],
        input_dims: &[Option<usize>],
    ) -> Result<Value, ImportError> {
        let get = |k: usize| need(f, ins, k);
        let opt =
            |k: usize| -> Result<Option<&Value>, ImportError> { Ok(ins.get(k).and_then(Option::as_ref)) };
        Ok({
            check_block(f, node)?;
            let (scale, zp, dtype) = quant_params(f, get(1)?, opt(2)?, "y")?;
            match get(0)?.clone() {
                Value::Input => {
                    if self.input.is_some() {
                        return Err(
                            f.err("the graph input is quantised twice: protobrain runs a chain of layers")
                        );
                    }
                    let layout = input_layout(f, input_dims)?;
                    let act = Act { scale, zp, dtype, layout, at: 0 };
                    self.input = Some((act, self.input_name.clone(), input_dims.to_vec()));
                    Value::Codes(act)
                }
                Value::Acc(acc) => {
                    let act = self.finish_layer(f, *acc, scale, zp, dtype)?;
                    Value::Codes(act)
                }
                Value::Real(act) => {
                    self.latest(f, &act)?;
                    if act.scale != scale || act.zp != zp {
                        return Err(f.err(format!(
                        "requantises activations from scale {} zero point {} to scale {scale} zero point {zp} outside a layer: protobrain requantises only at the output of conv/dense layers",
                        act.scale, act.zp
                    )));
                    }
                    Value::Codes(Act { dtype, ..act })
                }
                other => return Err(f.err(format!("quantises {}: unsupported", other.describe()))),
            }
        })
    }

    /// DequantizeLinear: codes read as reals, or int8 weights / an int32 bias.
    fn dequantize_node(
        &mut self,
        f: &Fail,
        node: &pb::NodeProto,
        ins: &[Option<Value>],
    ) -> Result<Value, ImportError> {
        let get = |k: usize| need(f, ins, k);
        let opt =
            |k: usize| -> Result<Option<&Value>, ImportError> { Ok(ins.get(k).and_then(Option::as_ref)) };
        Ok({
            check_block(f, node)?;
            match get(0)?.clone() {
                Value::Codes(act) => {
                    let (scale, zp, _) = quant_params(f, get(1)?, opt(2)?, "x")?;
                    if act.scale != scale || act.zp != zp {
                        return Err(f.err(format!(
                            "dequantises codes of scale {} zero point {} with scale {scale} zero point {zp}",
                            act.scale, act.zp
                        )));
                    }
                    Value::Real(act)
                }
                Value::Const(q) => {
                    const_dequant(f, q, get(1)?, opt(2)?, Attrs(node).int("axis").unwrap_or(1))?
                }
                other => return Err(f.err(format!("dequantises {}: unsupported", other.describe()))),
            }
        })
    }

    /// Conv (QDQ), ConvInteger, QLinearConv: a convolution layer.
    fn conv_node(
        &mut self,
        f: &Fail,
        node: &pb::NodeProto,
        ins: &[Option<Value>],
    ) -> Result<Value, ImportError> {
        let op = node.op_type.as_str();
        let get = |k: usize| need(f, ins, k);
        let opt =
            |k: usize| -> Result<Option<&Value>, ImportError> { Ok(ins.get(k).and_then(Option::as_ref)) };
        Ok({
            let attrs = Attrs(node);
            let (x, w, bias, w_scales, x_zp, y) = match op {
                "Conv" => {
                    let x = self.real(f, get(0)?)?;
                    let Value::Weights(w) = get(1)? else {
                        return Err(f.err(format!(
                            "its weights are {}, not dequantised int8 constants",
                            get(1)?.describe()
                        )));
                    };
                    check_axis(f, w, 0, "output channels (axis 0)")?;
                    (x, w.q.clone(), opt(2)?.cloned(), w.scales.clone(), x.zp, None)
                }
                "ConvInteger" => {
                    let x = self.codes(f, get(0)?)?;
                    let x_zp = op_zero_point(f, opt(2)?, x.dtype, "x_zero_point")?;
                    let w = int8_const(f, get(1)?, "w")?;
                    weight_zero_point(f, opt(3)?)?;
                    (x, w, None, Vec::new(), x_zp, None)
                }
                _ => {
                    let x = self.codes(f, get(0)?)?;
                    let (s, z, _) = quant_params(f, get(1)?, Some(get(2)?), "x")?;
                    same_params(f, &x, s, z)?;
                    let w = int8_const(f, get(3)?, "w")?;
                    let w_scales = scales(f, get(4)?, "w_scale")?;
                    weight_zero_point(f, Some(get(5)?))?;
                    let y = quant_params(f, get(6)?, Some(get(7)?), "y")?;
                    (x, w, opt(8)?.cloned(), w_scales, z, Some(y))
                }
            };
            let acc = conv_acc(f, &attrs, x, &w, bias.as_ref(), w_scales, x_zp)?;
            self.latest(f, &acc.input)?;
            match y {
                Some((s, z, d)) => Value::Codes(self.finish_layer(f, acc, s, z, d)?),
                None => Value::Acc(Box::new(acc)),
            }
        })
    }

    /// Gemm, MatMul (QDQ), MatMulInteger, QLinearMatMul: a dense layer.
    fn gemm_node(
        &mut self,
        f: &Fail,
        node: &pb::NodeProto,
        ins: &[Option<Value>],
    ) -> Result<Value, ImportError> {
        let op = node.op_type.as_str();
        let get = |k: usize| need(f, ins, k);
        let opt =
            |k: usize| -> Result<Option<&Value>, ImportError> { Ok(ins.get(k).and_then(Option::as_ref)) };
        Ok({
            let attrs = Attrs(node);
            let (x, w, trans_b, bias, w_scales, x_zp, y) = match op {
                "Gemm" => {
                    check_gemm_attrs(f, &attrs, opt(2)?.is_some())?;
                    let trans_b = attrs.int("transB").unwrap_or(0) != 0;
                    let x = self.real(f, get(0)?)?;
                    let Value::Weights(w) = get(1)? else {
                        return Err(f.err(format!(
                            "its B is {}, not dequantised int8 constants",
                            get(1)?.describe()
                        )));
                    };
                    if trans_b {
                        check_axis(f, w, 0, "output columns (axis 0 of a transposed B)")?;
                    } else {
                        check_axis(f, w, 1, "output columns (axis 1 of B)")?;
                    }
                    (x, w.q.clone(), trans_b, opt(2)?.cloned(), w.scales.clone(), x.zp, None)
                }
                "MatMul" => {
                    let x = self.real(f, get(0)?)?;
                    let Value::Weights(w) = get(1)? else {
                        return Err(f.err(format!(
                            "its B is {}, not dequantised int8 constants",
                            get(1)?.describe()
                        )));
                    };
                    check_axis(f, w, 1, "output columns (axis 1 of B)")?;
                    (x, w.q.clone(), false, None, w.scales.clone(), x.zp, None)
                }
                "MatMulInteger" => {
                    let x = self.codes(f, get(0)?)?;
                    let x_zp = op_zero_point(f, opt(2)?, x.dtype, "a_zero_point")?;
                    let w = int8_const(f, get(1)?, "B")?;
                    weight_zero_point(f, opt(3)?)?;
                    (x, w, false, None, Vec::new(), x_zp, None)
                }
                _ => {
                    let x = self.codes(f, get(0)?)?;
                    let (s, z, _) = quant_params(f, get(1)?, Some(get(2)?), "a")?;
                    same_params(f, &x, s, z)?;
                    let w = int8_const(f, get(3)?, "b")?;
                    let w_scales = scales(f, get(4)?, "b_scale")?;
                    weight_zero_point(f, Some(get(5)?))?;
                    let y = quant_params(f, get(6)?, Some(get(7)?), "y")?;
                    (x, w, false, None, w_scales, z, Some(y))
                }
            };
            let acc = dense_acc(f, x, &w, trans_b, bias.as_ref(), w_scales, x_zp)?;
            self.latest(f, &acc.input)?;
            match y {
                Some((s, z, d)) => Value::Codes(self.finish_layer(f, acc, s, z, d)?),
                None => Value::Acc(Box::new(acc)),
            }
        })
    }

    /// Relu, Clip: on an accumulator, or folded into the layer just before.
    fn activation_node(
        &mut self,
        f: &Fail,
        node: &pb::NodeProto,
        ins: &[Option<Value>],
    ) -> Result<Value, ImportError> {
        let op = node.op_type.as_str();
        let get = |k: usize| need(f, ins, k);
        let opt =
            |k: usize| -> Result<Option<&Value>, ImportError> { Ok(ins.get(k).and_then(Option::as_ref)) };
        Ok({
            let (lo, hi) =
                if op == "Clip" { clip_bounds(f, node, opt(1)?, opt(2)?)? } else { (0.0, f32::INFINITY) };
            match get(0)?.clone() {
                Value::Acc(mut acc) => {
                    if acc.acc_scales.is_empty() {
                        return Err(f.err("applies to an int32 accumulator: cast and scale it first"));
                    }
                    if op == "Relu" {
                        acc.relu = true;
                    } else {
                        acc.clip = Some(acc.clip.map_or((lo, hi), |(a, b)| (a.max(lo), b.min(hi))));
                    }
                    Value::Acc(acc)
                }
                Value::Real(act) => {
                    self.latest(f, &act)?;
                    self.fold_activation(f, &act, lo, hi)?;
                    Value::Real(act)
                }
                other => return Err(f.err(format!("applies to {}: unsupported", other.describe()))),
            }
        })
    }

    /// MaxPool: a host layer on codes or reals.
    fn maxpool_node(
        &mut self,
        f: &Fail,
        node: &pb::NodeProto,
        ins: &[Option<Value>],
    ) -> Result<Value, ImportError> {
        let get = |k: usize| need(f, ins, k);
        Ok({
            if node.output.iter().skip(1).any(|o| !o.is_empty()) {
                return Err(f.err("its Indices output is not supported"));
            }
            let (act, real) = self.act(f, get(0)?)?;
            let Layout::Image { c, h, w } = act.layout else {
                return Err(f.err("its input is not an image (N, C, H, W)"));
            };
            let window = pool_window(f, &Attrs(node))?;
            let input = Shape::new(h, w, c).map_err(|e| f.err(e.to_string()))?;
            let s = spec::conv::pool_output_shape(input, &window).map_err(|e| f.err(e.to_string()))?;
            self.ops.push(Op::MaxPool2d(window));
            let act = Act { layout: Layout::Image { c: s.c, h: s.h, w: s.w }, at: self.ops.len(), ..act };
            if real {
                Value::Real(act)
            } else {
                Value::Codes(act)
            }
        })
    }

    /// Flatten, Reshape to (N, features): a host layer (nothing moves for a flat input).
    fn flatten_node(
        &mut self,
        f: &Fail,
        node: &pb::NodeProto,
        ins: &[Option<Value>],
    ) -> Result<Value, ImportError> {
        let op = node.op_type.as_str();
        let get = |k: usize| need(f, ins, k);
        Ok({
            let (act, real) = self.act(f, get(0)?)?;
            let k = act.layout.len();
            if op == "Flatten" {
                let axis = Attrs(node).int("axis").unwrap_or(1);
                if axis != 1 {
                    return Err(f.err(format!("axis {axis}: only axis 1 (one row per image) is supported")));
                }
            } else {
                let Value::Const(shape) = get(1)? else {
                    return Err(f.err("its shape must be a constant"));
                };
                let dims = shape.ints().unwrap_or_default();
                let flat = dims.len() == 2
                    && (-1..=1).contains(&dims[0])
                    && (dims[1] == -1 || usize::try_from(dims[1]).ok() == Some(k))
                    && !(dims[0] == -1 && dims[1] == -1);
                if !flat {
                    return Err(f.err(format!("to shape {dims:?}: only a flatten to (N, {k}) is supported")));
                }
            }
            let act = match act.layout {
                Layout::Image { c, h, w } => {
                    self.ops.push(Op::Flatten);
                    Act { layout: Layout::Flat { k, from_nchw: Some((c, h, w)) }, at: self.ops.len(), ..act }
                }
                Layout::Flat { .. } => act,
            };
            if real {
                Value::Real(act)
            } else {
                Value::Codes(act)
            }
        })
    }

    /// The activation a layer reads must be the chain's latest.
    fn latest(&self, f: &Fail, act: &Act) -> Result<(), ImportError> {
        if act.at != self.ops.len() {
            return Err(f.err(
                "reads an activation that an earlier layer already consumed: the graph branches, and protobrain runs a chain of layers",
            ));
        }
        Ok(())
    }

    fn real(&self, f: &Fail, v: &Value) -> Result<Act, ImportError> {
        match v {
            Value::Real(a) => Ok(*a),
            Value::Input => Err(f.err(
                "its input is the float graph input: the model is not quantised (quantise it with onnxruntime.quantization.quantize_static)",
            )),
            other => Err(f.err(format!("its input is {}, not dequantised int8 activations", other.describe()))),
        }
    }

    fn codes(&self, f: &Fail, v: &Value) -> Result<Act, ImportError> {
        match v {
            Value::Codes(a) => Ok(*a),
            other => Err(f.err(format!("its input is {}, not int8/uint8 codes", other.describe()))),
        }
    }

    /// An activation (codes or real) and whether it is real.
    fn act(&self, f: &Fail, v: &Value) -> Result<(Act, bool), ImportError> {
        let (a, real) = match v {
            Value::Real(a) => (*a, true),
            Value::Codes(a) => (*a, false),
            Value::Input => {
                return Err(f.err("its input is the float graph input: the model is not quantised"))
            }
            other => return Err(f.err(format!("its input is {}, not activations", other.describe()))),
        };
        self.latest(f, &a)?;
        Ok((a, real))
    }

    /// A ReLU (or Clip) after a layer's QuantizeLinear/DequantizeLinear: the same as the
    /// layer's own ReLU, `max(q, Z)`, if only host layers that commute with it (max pooling,
    /// flatten) lie between.
    fn fold_activation(&mut self, f: &Fail, act: &Act, lo: f32, hi: f32) -> Result<(), ImportError> {
        let last = self.ops.iter().rposition(|o| o.gemm().is_some());
        let Some(last) =
            last.filter(|&i| self.ops[i + 1..].iter().all(|o| matches!(o, Op::MaxPool2d(_) | Op::Flatten)))
        else {
            return Err(
                f.err("a ReLU on activations that no conv/dense layer made just before is not supported")
            );
        };
        let relu = activation(f, act.scale, act.zp, lo, hi)?;
        if relu {
            let op = &self.ops[last];
            let ql = op.gemm().expect("a GEMM op");
            let l = ql.layer();
            let q = l.layer_quant();
            let q =
                LayerQuant::per_column(q.scales().to_vec(), true, q.zero_point()).expect("the same scales");
            let layer = Layer::with_quant(l.weights().clone(), l.bias().clone(), q).expect("the same shapes");
            let ql = QuantLayer::per_channel(layer, ql.weight_scales().to_vec(), ql.output_scale())
                .expect("the same scales");
            self.ops[last] = match op {
                Op::Conv2d(c) => Op::Conv2d(ConvLayer::new(*c.conv(), ql).expect("the same geometry")),
                _ => Op::Dense(ql),
            };
        }
        Ok(())
    }

    /// Requantise an accumulator: the layer is complete.
    fn finish_layer(
        &mut self,
        f: &Fail,
        acc: Acc,
        s_y: f32,
        z_y: i8,
        dtype: Dtype,
    ) -> Result<Act, ImportError> {
        self.latest(f, &acc.input)?;
        if acc.acc_scales.is_empty() {
            return Err(f.err("quantises an int32 accumulator directly: cast it to float and scale it first"));
        }
        let mut relu = acc.relu;
        if let Some((lo, hi)) = acc.clip {
            relu |= activation(f, s_y, z_y, lo, hi)?;
        }
        let n = acc.n();
        let scales: Result<Vec<ColumnScale>, ImportError> = (0..n)
            .map(|c| {
                // onnxruntime's requantisation multiplier, in float32: (s_x·s_w) / s_y
                let m = acc.acc_scale(c) / s_y;
                ColumnScale::from_scale(f64::from(m)).map_err(|e| {
                    f.err(format!("output column {c}: requantisation scale {m:e} cannot be represented: {e}"))
                })
            })
            .collect();
        let mut scales = scales?;
        if scales.iter().all(|s| *s == scales[0]) {
            scales.truncate(1);
        }
        let quant = LayerQuant::per_column(scales, relu, z_y).map_err(|e| f.err(e.to_string()))?;
        let bias = folded_bias(&acc);
        let layer = Layer::with_quant(acc.w.clone(), DVector::from_vec(bias), quant)
            .map_err(|e| f.err(e.to_string()))?;
        let s_x = acc.input.scale;
        let weight_scales: Vec<f64> = if acc.acc_scales.len() == 1 {
            vec![f64::from(acc.acc_scales[0]) / f64::from(s_x)]
        } else {
            acc.acc_scales.iter().map(|&a| f64::from(a) / f64::from(s_x)).collect()
        };
        let ql = QuantLayer::per_channel(layer, weight_scales, f64::from(s_y))
            .map_err(|e| f.err(e.to_string()))?;
        self.ops.push(match acc.kind {
            Kind::Conv(conv) => Op::Conv2d(ConvLayer::new(conv, ql).map_err(|e| f.err(e.to_string()))?),
            Kind::Dense => Op::Dense(ql),
        });
        Ok(Act { scale: s_y, zp: z_y, dtype, layout: acc.out, at: self.ops.len() })
    }

    /// An accumulator left unquantised at the graph's output: the raw int32 output.
    fn finish_raw(&mut self, acc: Acc) -> Result<(), ImportError> {
        let f = Fail { node: "the graph output".into(), op: "output" };
        if acc.relu || acc.clip.is_some() || acc.acc_scales.is_empty() {
            return Err(f.err(
                "a float output after a ReLU/Clip, or an int32 one, is not supported: quantise the output",
            ));
        }
        let bias = folded_bias(&acc);
        let quant = LayerQuant::from(spec::Quant::IDENTITY);
        let layer = Layer::with_quant(acc.w.clone(), DVector::from_vec(bias), quant)
            .map_err(|e| f.err(e.to_string()))?;
        let s_x = f64::from(acc.input.scale);
        let weight_scales: Vec<f64> = acc.acc_scales.iter().map(|&a| f64::from(a) / s_x).collect();
        let ql = QuantLayer::per_channel(layer, weight_scales, 1.0).map_err(|e| f.err(e.to_string()))?;
        self.ops.push(match acc.kind {
            Kind::Conv(conv) => Op::Conv2d(ConvLayer::new(conv, ql).map_err(|e| f.err(e.to_string()))?),
            Kind::Dense => Op::Dense(ql),
        });
        Ok(())
    }

    fn finish(mut self, output: &pb::ValueInfoProto, opset: i64) -> Result<Imported, ImportError> {
        let value =
            self.values.get(&output.name).cloned().ok_or_else(|| {
                ImportError::Model(format!("output '{}' is not made by any node", output.name))
            })?;
        let (kind, layout) = match value {
            Value::Real(act) => {
                if act.at != self.ops.len() {
                    return Err(ImportError::Model(format!("output '{}' is not the end of the layer chain", output.name)));
                }
                (OutputKind::Int8, act.layout)
            }
            Value::Acc(acc) => {
                if acc.input.at != self.ops.len() {
                    return Err(ImportError::Model(format!("output '{}' is not the end of the layer chain", output.name)));
                }
                let out = acc.out;
                self.finish_raw(*acc)?;
                (OutputKind::Raw, out)
            }
            Value::Codes(_) => {
                return Err(ImportError::Model(format!(
                    "output '{}' is int8/uint8 codes: protobrain returns what a quantised model's DequantizeLinear returns; end the graph with DequantizeLinear",
                    output.name
                )))
            }
            other => {
                return Err(ImportError::Model(format!("output '{}' is {}: unsupported", output.name, other.describe())))
            }
        };
        let (act, input_name, input_dims) =
            self.input.ok_or_else(|| ImportError::Model("the graph input is never quantised".into()))?;
        let shape = match act.layout {
            Layout::Image { c, h, w } => Shape::new(h, w, c),
            Layout::Flat { k, .. } => Shape::flat(k),
        }
        .map_err(|e| ImportError::Model(e.to_string()))?;
        let network = Network::new(shape, f64::from(act.scale), self.ops, kind)
            .map_err(|e| ImportError::Model(e.to_string()))?
            .with_input_zero_point(act.zp);
        let (_, out_dims) = proto::value_type(output).unwrap_or_default();
        Ok(Imported {
            network,
            input: Io { name: input_name, dims: input_dims, layout: act.layout },
            output: Io { name: output.name.clone(), dims: out_dims, layout },
            opset,
        })
    }
}

/// Input `k` of a node, which must be given.
fn need<'v>(f: &Fail, ins: &'v [Option<Value>], k: usize) -> Result<&'v Value, ImportError> {
    ins.get(k).and_then(Option::as_ref).ok_or_else(|| f.err(format!("input {k} is missing")))
}

impl Lowering {
    /// A node's inputs, as values (`None` for an optional input left empty).
    fn inputs(&self, f: &Fail, node: &pb::NodeProto) -> Result<Vec<Option<Value>>, ImportError> {
        node.input
            .iter()
            .map(|name| {
                if name.is_empty() {
                    return Ok(None);
                }
                self.values
                    .get(name)
                    .cloned()
                    .map(Some)
                    .ok_or_else(|| f.err(format!("input '{name}' is not made by any earlier node")))
            })
            .collect()
    }
}

/// `b'[n] = b[n] − Z_x·Σ_k W[k][n]`, int32 wrapping (exact: the true sum fits int32 whenever
/// the model's own does).
fn folded_bias(acc: &Acc) -> Vec<i32> {
    let z = i32::from(acc.x_zp);
    (0..acc.n())
        .map(|n| {
            let colsum = acc.w.column(n).iter().fold(0i32, |s, &w| s.wrapping_add(i32::from(w)));
            let b = acc.bias.as_ref().map_or(0, |b| b[n]);
            b.wrapping_sub(z.wrapping_mul(colsum))
        })
        .collect()
}

/// Whether a Relu/Clip with real bounds `[lo, hi]` on codes of (scale, zero point) is exactly
/// the core's `max(r, Z)` (true) or nothing (false), after saturation.
fn activation(f: &Fail, scale: f32, zp: i8, lo: f32, hi: f32) -> Result<bool, ImportError> {
    // the codes the bounds quantise to, saturated: a bound beyond the range saturates to it
    let code = |v: f32| quantize_linear(v, scale, zp);
    if hi.is_finite() && code(hi) < 127 {
        return Err(f.err(format!(
            "clips at {hi}, inside the output range (code {} < 127): only a clip that the int8 saturation already does is supported (ReLU, or ReLU6 with the output scaled to [0, 6])",
            code(hi)
        )));
    }
    if lo == 0.0 {
        Ok(true)
    } else if code(lo) == -128 {
        Ok(false)
    } else {
        Err(f.err(format!("clips below at {lo}: only 0 (ReLU) is supported")))
    }
}

fn clip_bounds(
    f: &Fail,
    node: &pb::NodeProto,
    lo: Option<&Value>,
    hi: Option<&Value>,
) -> Result<(f32, f32), ImportError> {
    if Attrs(node).names().any(|n| n == "min" || n == "max") {
        return Err(f.err("Clip's min/max attributes (opset < 11) are not supported"));
    }
    let bound = |v: Option<&Value>, default: f32| -> Result<f32, ImportError> {
        match v {
            None => Ok(default),
            Some(Value::Const(t)) if t.dtype() == Dtype::F32 && t.len() == 1 => {
                Ok(t.f32s().expect("float")[0])
            }
            Some(other) => {
                Err(f.err(format!("its bound is {}, not a float scalar constant", other.describe())))
            }
        }
    };
    Ok((bound(lo, f32::NEG_INFINITY)?, bound(hi, f32::INFINITY)?))
}

fn check_block(f: &Fail, node: &pb::NodeProto) -> Result<(), ImportError> {
    let a = Attrs(node);
    if a.int("block_size").unwrap_or(0) != 0 {
        return Err(f.err("blocked quantisation (block_size) is not supported"));
    }
    if a.int("output_dtype").unwrap_or(0) != 0 {
        return Err(f.err("the output_dtype attribute is not supported (give the zero point's type instead)"));
    }
    Ok(())
}

/// A scalar float32 scale.
fn scalar_scale(f: &Fail, v: &Value, what: &str) -> Result<f32, ImportError> {
    match v {
        Value::Const(t) if t.dtype() == Dtype::F32 && t.len() == 1 => {
            let s = t.f32s().expect("float")[0];
            if s.is_finite() && s > 0.0 {
                Ok(s)
            } else {
                Err(f.err(format!("{what}_scale {s} must be a finite number > 0")))
            }
        }
        Value::Const(t) if t.dtype() == Dtype::F32 => Err(f.err(format!(
            "{what}_scale has {} values: per-axis quantisation of activations is not supported",
            t.len()
        ))),
        other => Err(f.err(format!("{what}_scale is {}, not a float32 constant", other.describe()))),
    }
}

/// Per-tensor or per-axis float32 scales, each finite and > 0.
fn scales(f: &Fail, v: &Value, what: &str) -> Result<Vec<f32>, ImportError> {
    let Value::Const(t) = v else {
        return Err(f.err(format!("{what} is {}, not a float32 constant", v.describe())));
    };
    let s = t.f32s().ok_or_else(|| f.err(format!("{what} is {}, not float32", t.dtype())))?;
    if s.is_empty() {
        return Err(f.err(format!("{what} is empty")));
    }
    if let Some(bad) = s.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
        return Err(f.err(format!("{what} holds {bad}: scales must be finite numbers > 0")));
    }
    Ok(s.to_vec())
}

/// An activation's quantisation: scale, zero point in the int8 domain, and its dtype (int8 or
/// uint8; an absent zero point means uint8 0, as in ONNX).
fn quant_params(
    f: &Fail,
    scale: &Value,
    zp: Option<&Value>,
    what: &str,
) -> Result<(f32, i8, Dtype), ImportError> {
    let s = scalar_scale(f, scale, what)?;
    let (z, dtype) = match zp {
        None => (-128, Dtype::U8),
        Some(Value::Const(t)) if t.len() == 1 => match &t.data {
            Data::I8(v) => (v[0], Dtype::I8),
            Data::U8(v) => ((i16::from(v[0]) - 128) as i8, Dtype::U8),
            _ => {
                return Err(f.err(format!(
                    "{what}_zero_point is {}: protobrain runs int8 and uint8 activations",
                    t.dtype()
                )))
            }
        },
        Some(Value::Const(t)) => {
            return Err(f.err(format!(
                "{what}_zero_point has {} values: per-axis quantisation of activations is not supported",
                t.len()
            )))
        }
        Some(other) => {
            return Err(f.err(format!("{what}_zero_point is {}, not a constant", other.describe())))
        }
    };
    Ok((s, z, dtype))
}

/// A MatMulInteger/ConvInteger input zero point (absent: 0 of the input's type), in the int8
/// domain.
fn op_zero_point(f: &Fail, zp: Option<&Value>, dtype: Dtype, what: &str) -> Result<i8, ImportError> {
    match zp {
        None => Ok(if dtype == Dtype::U8 { -128 } else { 0 }),
        Some(Value::Const(t)) if t.len() == 1 => match &t.data {
            Data::I8(v) if dtype == Dtype::I8 => Ok(v[0]),
            Data::U8(v) if dtype == Dtype::U8 => Ok((i16::from(v[0]) - 128) as i8),
            _ => Err(f.err(format!("{what} is {} but the input is {dtype}", t.dtype()))),
        },
        Some(_) => Err(f.err(format!("{what} must be a scalar constant"))),
    }
}

fn same_params(f: &Fail, act: &Act, s: f32, z: i8) -> Result<(), ImportError> {
    if act.scale != s || act.zp != z {
        return Err(f.err(format!(
            "reads codes of scale {} zero point {} as scale {s} zero point {z}",
            act.scale, act.zp
        )));
    }
    Ok(())
}

/// Weights must have zero point 0 (the array multiplies raw int8 codes).
fn weight_zero_point(f: &Fail, zp: Option<&Value>) -> Result<(), ImportError> {
    match zp {
        None => Ok(()),
        Some(Value::Const(t)) => match t.ints() {
            Some(v) if v.iter().all(|&z| z == 0) => {
                if t.dtype() == Dtype::U8 {
                    Err(f.err("uint8 weights are not supported: quantise weights as int8 (weight_type=QInt8)"))
                } else {
                    Ok(())
                }
            }
            _ => Err(f.err(
                "weight zero point is not 0: protobrain runs symmetric int8 weights (quantize_static's default WeightSymmetric=True)",
            )),
        },
        Some(other) => Err(f.err(format!("the weight zero point is {}, not a constant", other.describe()))),
    }
}

fn int8_const(f: &Fail, v: &Value, what: &str) -> Result<Tensor, ImportError> {
    match v {
        Value::Const(t) if t.dtype() == Dtype::I8 => Ok(t.clone()),
        Value::Const(t) if t.dtype() == Dtype::U8 => {
            Err(f.err(format!("{what} is uint8: quantise weights as int8 (weight_type=QInt8)")))
        }
        other => Err(f.err(format!("{what} is {}, not an int8 constant", other.describe()))),
    }
}

/// `DequantizeLinear` of a constant: int8 weights or an int32 bias.
fn const_dequant(
    f: &Fail,
    q: Tensor,
    scale: &Value,
    zp: Option<&Value>,
    axis: i64,
) -> Result<Value, ImportError> {
    let s = scales(f, scale, "x_scale")?;
    let rank = q.dims.len() as i64;
    let axis = if axis < 0 { axis + rank } else { axis };
    let axis = usize::try_from(axis).map_err(|_| f.err(format!("axis {axis} is out of range")))?;
    if s.len() > 1 && q.dims.get(axis) != Some(&s.len()) {
        return Err(f.err(format!("{} scales along axis {axis} of a tensor of shape {:?}", s.len(), q.dims)));
    }
    match q.dtype() {
        Dtype::I8 => {
            weight_zero_point(f, zp)?;
            Ok(Value::Weights(Weights { q, scales: s, axis }))
        }
        Dtype::I32 => {
            if let Some(Value::Const(t)) = zp {
                if t.ints().is_none_or(|v| v.iter().any(|&z| z != 0)) {
                    return Err(f.err("a bias zero point must be 0"));
                }
            }
            let Data::I32(v) = q.data else { unreachable!("checked int32") };
            if q.dims.iter().filter(|&&d| d != 1).count() > 1 {
                return Err(f.err(format!("a bias of shape {:?}: it must be a vector", q.dims)));
            }
            Ok(Value::Bias(Bias { q: v, scales: s }))
        }
        Dtype::U8 => {
            Err(f.err("uint8 weights are not supported: quantise weights as int8 (weight_type=QInt8)"))
        }
        other => Err(f.err(format!(
            "dequantises a {other} constant: only int8 weights and int32 biases are supported"
        ))),
    }
}

fn check_axis(f: &Fail, w: &Weights, axis: usize, what: &str) -> Result<(), ImportError> {
    if w.scales.len() > 1 && w.axis != axis {
        return Err(f.err(format!(
            "its weights are quantised per axis {} but per-channel scales must run along the {what}",
            w.axis
        )));
    }
    Ok(())
}

fn input_layout(f: &Fail, dims: &[Option<usize>]) -> Result<Layout, ImportError> {
    let known = |i: usize| -> Result<usize, ImportError> {
        dims[i].filter(|&d| d > 0).ok_or_else(|| {
            f.err(format!("the graph input's dimension {i} is not a fixed size: only the batch dimension may be symbolic"))
        })
    };
    match dims.len() {
        2 => Ok(Layout::Flat { k: known(1)?, from_nchw: None }),
        4 => Ok(Layout::Image { c: known(1)?, h: known(2)?, w: known(3)? }),
        r => Err(f.err(format!(
            "the graph input has rank {r}: protobrain takes (N, K) vectors or (N, C, H, W) images"
        ))),
    }
}

fn pool_window(f: &Fail, a: &Attrs) -> Result<Window, ImportError> {
    for bad in ["dilations"] {
        if a.ints(bad).is_some_and(|d| d.iter().any(|&v| v != 1)) {
            return Err(
                f.err(format!("{bad} {:?} are not supported (only 1)", a.ints(bad).unwrap_or_default()))
            );
        }
    }
    if a.int("ceil_mode").unwrap_or(0) != 0 {
        return Err(f.err("ceil_mode 1 is not supported"));
    }
    if a.int("storage_order").unwrap_or(0) != 0 {
        return Err(f.err("storage_order 1 is not supported"));
    }
    window(f, a, None)
}

/// Kernel, strides and explicit pads of a 2-D Conv or MaxPool.
fn window(f: &Fail, a: &Attrs, kernel: Option<(usize, usize)>) -> Result<Window, ImportError> {
    if let Some(p) = a.string("auto_pad").filter(|p| p != "NOTSET") {
        return Err(f.err(format!("auto_pad {p} is not supported: export with explicit pads")));
    }
    let pair = |v: &[i64], what: &str| -> Result<(usize, usize), ImportError> {
        match v {
            [a, b] if *a > 0 && *b > 0 => Ok((*a as usize, *b as usize)),
            _ => Err(f.err(format!("{what} {v:?}: a 2-D operation needs two positive values"))),
        }
    };
    let k = match (a.ints("kernel_shape"), kernel) {
        (Some(ks), Some(wk)) => {
            let k = pair(ks, "kernel_shape")?;
            if k != wk {
                return Err(f.err(format!("kernel_shape {ks:?} does not match the weights' {wk:?}")));
            }
            k
        }
        (Some(ks), None) => pair(ks, "kernel_shape")?,
        (None, Some(wk)) => wk,
        (None, None) => return Err(f.err("kernel_shape is missing")),
    };
    let stride = match a.ints("strides") {
        Some(s) => pair(s, "strides")?,
        None => (1, 1),
    };
    let padding = match a.ints("pads") {
        None => Padding::default(),
        Some(p) if p.len() == 4 && p.iter().all(|&v| (0..=1 << 20).contains(&v)) => {
            [p[0] as usize, p[1] as usize, p[2] as usize, p[3] as usize].into()
        }
        Some(p) => return Err(f.err(format!("pads {p:?}: a 2-D operation needs four pads >= 0"))),
    };
    Ok(Window { kernel: k, stride, padding })
}

fn conv_acc(
    f: &Fail,
    a: &Attrs,
    x: Act,
    w: &Tensor,
    bias: Option<&Value>,
    w_scales: Vec<f32>,
    x_zp: i8,
) -> Result<Acc, ImportError> {
    if let Some(d) = a.ints("dilations").filter(|d| d.iter().any(|&v| v != 1)) {
        return Err(f.err(format!("dilations {d:?} are not supported (only 1)")));
    }
    if let Some(g) = a.int("group").filter(|&g| g != 1) {
        return Err(
            f.err(format!("group {g} is not supported (only 1: no grouped or depthwise convolution)"))
        );
    }
    let Layout::Image { c, h, w: iw } = x.layout else {
        return Err(f.err("its input is not an image (N, C, H, W)"));
    };
    let [o, ci, kh, kw] = w.dims[..] else {
        return Err(f.err(format!("weights of shape {:?}: a 2-D convolution needs (O, I, KH, KW)", w.dims)));
    };
    if o == 0 || kh == 0 || kw == 0 {
        return Err(f.err(format!("weights of shape {:?} are empty", w.dims)));
    }
    if ci != c {
        return Err(f.err(format!("weights take {ci} input channels but the input has {c}")));
    }
    let window = window(f, a, Some((kh, kw)))?;
    let conv = Conv2d { window, c_in: c, c_out: o };
    let input = Shape::new(h, iw, c).map_err(|e| f.err(e.to_string()))?;
    let out = conv.output_shape(input).map_err(|e| f.err(e.to_string()))?;
    let Data::I8(v) = &w.data else { unreachable!("int8 weights") };
    // OIHW → HWIO: row (i·KW + j)·C + c, column o
    let k = conv.k().map_err(|e| f.err(e.to_string()))?;
    let wm = DMatrix::from_fn(k, o, |r, col| {
        let (tap, ch) = (r / c, r % c);
        let (i, j) = (tap / kw, tap % kw);
        v[((col * c + ch) * kh + i) * kw + j]
    });
    let acc_scales = if w_scales.is_empty() { Vec::new() } else { products(f, x.scale, &w_scales, o)? };
    let mut acc = Acc {
        kind: Kind::Conv(conv),
        input: x,
        w: wm,
        x_zp,
        acc_scales,
        bias: None,
        relu: false,
        clip: None,
        out: Layout::Image { c: out.c, h: out.h, w: out.w },
    };
    if let Some(b) = bias {
        acc.bias = Some(bias_codes(f, b, &acc)?);
    }
    Ok(acc)
}

fn dense_acc(
    f: &Fail,
    x: Act,
    w: &Tensor,
    trans_b: bool,
    bias: Option<&Value>,
    w_scales: Vec<f32>,
    x_zp: i8,
) -> Result<Acc, ImportError> {
    let Layout::Flat { k, from_nchw } = x.layout else {
        return Err(f.err("its input is an image: flatten it first (Flatten or Reshape to (N, C·H·W))"));
    };
    let (rows, cols) = match w.dims[..] {
        [a, b] => (a, b),
        _ => return Err(f.err(format!("B of shape {:?}: a matrix is needed", w.dims))),
    };
    if rows == 0 || cols == 0 {
        return Err(f.err(format!("B of shape {:?} is empty", w.dims)));
    }
    let (wk, n) = if trans_b { (cols, rows) } else { (rows, cols) };
    if wk != k {
        return Err(f.err(format!("B takes K = {wk} inputs but its input has {k} features")));
    }
    let Data::I8(v) = &w.data else { unreachable!("int8 weights") };
    // the ONNX row of protobrain's row r: a flatten of NCHW images orders features (c, h, w),
    // protobrain's NHWC rows order them (h, w, c)
    let onnx_row = |r: usize| match from_nchw {
        Some((c, h, wd)) => {
            let (pix, ch) = (r / c, r % c);
            ch * h * wd + pix
        }
        None => r,
    };
    let wm = DMatrix::from_fn(k, n, |r, col| {
        let kk = onnx_row(r);
        if trans_b {
            v[col * k + kk]
        } else {
            v[kk * n + col]
        }
    });
    let acc_scales = if w_scales.is_empty() { Vec::new() } else { products(f, x.scale, &w_scales, n)? };
    let mut acc = Acc {
        kind: Kind::Dense,
        input: x,
        w: wm,
        x_zp,
        acc_scales,
        bias: None,
        relu: false,
        clip: None,
        out: Layout::Flat { k: n, from_nchw: None },
    };
    if let Some(b) = bias {
        acc.bias = Some(bias_codes(f, b, &acc)?);
    }
    Ok(acc)
}

/// `s_x·s_w[n]` in float32, as the quantiser and onnxruntime compute it.
fn products(f: &Fail, s_x: f32, w_scales: &[f32], n: usize) -> Result<Vec<f32>, ImportError> {
    if w_scales.len() != 1 && w_scales.len() != n {
        return Err(f.err(format!("{} weight scales for {n} output channels", w_scales.len())));
    }
    Ok(w_scales.iter().map(|&s| s_x * s).collect())
}

fn pick(v: &[f32], n: usize) -> f32 {
    if v.len() == 1 {
        v[0]
    } else {
        v[n]
    }
}

/// A per-column constant (a scale or a bias) of a layer with `n` columns: a scalar or `n`
/// values laid along the output-channel axis.
fn per_column(f: &Fail, t: &Tensor, n: usize, kind: &Kind, what: &str) -> Result<Vec<f32>, ImportError> {
    let v = t.f32s().ok_or_else(|| f.err(format!("the {what} is {}, not float32", t.dtype())))?;
    let ok_dims = match kind {
        Kind::Dense => matches!(t.dims[..], [] | [1] | [_] | [1, _]),
        Kind::Conv(_) => matches!(t.dims[..], [] | [1] | [_] | [1, _, 1, 1] | [_, 1, 1]),
    };
    if !(ok_dims && (v.len() == 1 || v.len() == n)) {
        return Err(f.err(format!("a {what} of shape {:?} for {n} output channels", t.dims)));
    }
    Ok(v.to_vec())
}

fn acc_and_const<'a>(f: &Fail, a: &'a Value, b: &'a Value) -> Result<(&'a Acc, &'a Tensor), ImportError> {
    match (a, b) {
        (Value::Acc(acc), Value::Const(t)) | (Value::Const(t), Value::Acc(acc)) => Ok((acc, t)),
        _ => Err(f.err(format!(
            "multiplies {} by {}: protobrain supports Mul only as the scale of an integer layer's output",
            a.describe(),
            b.describe()
        ))),
    }
}

/// A bias in accumulator units: int32 codes whose scale must be `s_x·s_w[n]`, or float values
/// rounded to it (half to even).
fn bias_codes(f: &Fail, b: &Value, acc: &Acc) -> Result<Vec<i32>, ImportError> {
    let n = acc.n();
    if acc.acc_scales.is_empty() {
        return Err(f.err("a bias on an int32 accumulator: cast and scale it first"));
    }
    match b {
        Value::Bias(bias) => {
            if bias.q.len() != n {
                return Err(f.err(format!("a bias of {} values for {n} output channels", bias.q.len())));
            }
            for c in 0..n {
                let (want, got) = (acc.acc_scale(c), pick(&bias.scales, c));
                if ((got - want) / want).abs() > 1e-6 {
                    return Err(f.err(format!(
                        "bias scale {got:e} of channel {c} is not the input scale times the weight scale ({want:e})"
                    )));
                }
            }
            Ok(bias.q.clone())
        }
        // QLinearConv's bias: int32 in accumulator units by definition (ONNX types rule out an
        // int32 constant anywhere else a bias is read)
        Value::Const(t) if t.dtype() == Dtype::I32 => {
            let Data::I32(v) = &t.data else { unreachable!("int32") };
            if v.len() != n {
                return Err(f.err(format!("a bias of {} values for {n} output channels", v.len())));
            }
            Ok(v.clone())
        }
        Value::Const(t) => {
            let v = per_column(f, t, n, &acc.kind, "bias")?;
            (0..n)
                .map(|c| {
                    let q = (f64::from(pick(&v, c)) / f64::from(acc.acc_scale(c))).round_ties_even();
                    if q.abs() < 2f64.powi(31) {
                        Ok(q as i32)
                    } else {
                        Err(f.err(format!(
                            "bias {} of channel {c} overflows int32 at the accumulator scale",
                            pick(&v, c)
                        )))
                    }
                })
                .collect()
        }
        other => Err(f.err(format!("its bias is {}, not a constant", other.describe()))),
    }
}

fn check_gemm_attrs(f: &Fail, a: &Attrs, has_c: bool) -> Result<(), ImportError> {
    if a.float("alpha").is_some_and(|v| v != 1.0) {
        return Err(f.err("alpha other than 1 is not supported"));
    }
    if has_c && a.float("beta").is_some_and(|v| v != 1.0) {
        return Err(f.err("beta other than 1 is not supported"));
    }
    if a.int("transA").unwrap_or(0) != 0 {
        return Err(f.err("transA 1 is not supported"));
    }
    Ok(())
}
