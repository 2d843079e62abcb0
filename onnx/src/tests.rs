//! The importer on graphs built here node by node: the arithmetic of small cases by hand, and
//! the refusals that the onnxruntime models (tests/onnx_models.rs) do not reach.

use super::*;
use prost::Message;
use tract_onnx::pb::{self, tensor_proto::DataType};

/// A graph under construction.
struct G {
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
    input_dims: Vec<i64>,
}

fn tensor(name: &str, dims: &[i64], dt: DataType, raw: Vec<u8>) -> pb::TensorProto {
    pb::TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: dt as i32,
        raw_data: raw,
        ..Default::default()
    }
}

impl G {
    fn new(input_dims: &[i64]) -> Self {
        G { nodes: Vec::new(), inits: Vec::new(), input_dims: input_dims.to_vec() }
    }
    fn f32(&mut self, name: &str, dims: &[i64], v: &[f32]) -> String {
        self.inits.push(tensor(
            name,
            dims,
            DataType::Float,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
        name.into()
    }
    fn i8(&mut self, name: &str, dims: &[i64], v: &[i8]) -> String {
        self.inits.push(tensor(name, dims, DataType::Int8, v.iter().map(|&x| x as u8).collect()));
        name.into()
    }
    fn u8(&mut self, name: &str, v: u8) -> String {
        self.inits.push(tensor(name, &[], DataType::Uint8, vec![v]));
        name.into()
    }
    fn i32(&mut self, name: &str, dims: &[i64], v: &[i32]) -> String {
        self.inits.push(tensor(
            name,
            dims,
            DataType::Int32,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
        name.into()
    }
    fn i64(&mut self, name: &str, v: &[i64]) -> String {
        self.inits.push(tensor(
            name,
            &[v.len() as i64],
            DataType::Int64,
            v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        ));
        name.into()
    }
    fn node(&mut self, op: &str, name: &str, inputs: &[&str], attrs: Vec<pb::AttributeProto>) -> String {
        let out = format!("{name}_out");
        self.nodes.push(pb::NodeProto {
            op_type: op.into(),
            name: name.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.clone()],
            attribute: attrs,
            ..Default::default()
        });
        out
    }
    fn model(&self, output: &str) -> Vec<u8> {
        let io = |name: &str, dims: &[i64]| pb::ValueInfoProto {
            name: name.into(),
            r#type: Some(pb::TypeProto {
                value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                    elem_type: DataType::Float as i32,
                    shape: Some(pb::TensorShapeProto {
                        dim: dims
                            .iter()
                            .map(|&d| pb::tensor_shape_proto::Dimension {
                                value: Some(if d < 0 {
                                    pb::tensor_shape_proto::dimension::Value::DimParam("N".into())
                                } else {
                                    pb::tensor_shape_proto::dimension::Value::DimValue(d)
                                }),
                                ..Default::default()
                            })
                            .collect(),
                    }),
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut out_dims = vec![-1];
        out_dims.push(1);
        let graph = pb::GraphProto {
            node: self.nodes.clone(),
            initializer: self.inits.clone(),
            input: vec![io("x", &self.input_dims)],
            output: vec![io(output, &out_dims)],
            ..Default::default()
        };
        let model = pb::ModelProto {
            ir_version: 7,
            opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
            graph: Some(graph),
            ..Default::default()
        };
        model.encode_to_vec()
    }
}

fn int_attr(name: &str, v: i64) -> pb::AttributeProto {
    pb::AttributeProto { name: name.into(), i: v, r#type: 2, ..Default::default() }
}

/// x (N, 4) float → Q (uint8, scale 0.5, zp 130) → DQ → Gemm (W 4x2, bias) → [Relu] → Q (int8,
/// scale 0.25, zp -3) → DQ.
fn dense(relu_after_dq: bool) -> G {
    let mut g = G::new(&[-1, 4]);
    let (s, z) = (g.f32("s_x", &[], &[0.5]), g.u8("z_x", 130));
    let q = g.node("QuantizeLinear", "q_in", &["x", &s, &z], vec![]);
    let d = g.node("DequantizeLinear", "dq_in", &[&q, &s, &z], vec![]);
    let w = g.i8("w", &[4, 2], &[1, -2, 3, 4, -5, 6, 7, -8]);
    let sw = g.f32("s_w", &[], &[0.125]);
    let dw = g.node("DequantizeLinear", "dq_w", &[&w, &sw], vec![]);
    let b = g.i32("b", &[2], &[100, -7]);
    let sb = g.f32("s_b", &[1], &[0.0625]);
    let db = g.node("DequantizeLinear", "dq_b", &[&b, &sb], vec![]);
    let y = g.node("Gemm", "fc", &[&d, &dw, &db], vec![]);
    let (sy, zy) = (g.f32("s_y", &[], &[0.25]), g.i8("z_y", &[], &[-3]));
    let qy = g.node("QuantizeLinear", "q_y", &[&y, &sy, &zy], vec![]);
    let dy = g.node("DequantizeLinear", "dq_y", &[&qy, &sy, &zy], vec![]);
    if relu_after_dq {
        let r = g.node("Relu", "relu", &[&dy], vec![]);
        let q2 = g.node("QuantizeLinear", "q_r", &[&r, &sy, &zy], vec![]);
        g.node("DequantizeLinear", "out", &[&q2, &sy, &zy], vec![]);
    } else {
        g.node("Identity", "out", &[&dy], vec![]);
    }
    g
}

#[test]
fn a_dense_layer_by_hand() {
    let imported = import_bytes(&dense(false).model("out_out")).unwrap();
    let net = &imported.network;
    // uint8 zero point 130 is int8 2; the bias folds it: b' = b − 2·colsum(W)
    // colsum = [1 + 3 − 5 + 7, −2 + 4 + 6 − 8] = [6, 0]
    assert_eq!(net.input_zero_point(), 2);
    let l = net.ops()[0].gemm().unwrap().layer();
    assert_eq!(l.bias().as_slice(), &[100 - 12, -7]);
    // M·2^-S ≈ 0.5·0.125 / 0.25 = 0.25: exactly 1·2^-2 at the most precise (M, S)
    let q = l.layer_quant();
    assert_eq!((q.scale(0).scale(), q.zero_point(), q.relu()), (0.25, -3, false));
    // x = [1, 2, 0.5, 3] → codes round(x/0.5) + 2 = [4, 6, 3, 8]; real (q − 2)·0.5 = x exactly
    // acc = Σ (q − 2)·W + b = 2·1 + 4·3 + 1·(−5) + 6·7 + 100 = 151,  2·(−2) + 4·4 + 1·6 + 6·(−8) − 7 = −37
    // y = round(acc / 4) − 3 (half up): 38 − 3 = 35 (151/4 = 37.75), −9 − 3 = −12 (−37/4 = −9.25)
    let x = nalgebra::DMatrix::from_row_slice(1, 4, &[1.0f32, 2.0, 0.5, 3.0]);
    let codes = net.quantize_input(&x);
    assert_eq!(codes.as_slice(), &[4, 6, 3, 8]);
    let y = net.golden(&codes).unwrap();
    assert_eq!(y.as_int8().unwrap().as_slice(), &[35, -12]);
    assert_eq!(net.dequantize(&y).as_slice(), &[9.5, -2.25]);
}

/// A graph that ends at a layer's float output (no QuantizeLinear): the raw int32 accumulators,
/// dequantised per column as `acc·s_x·s_w`.
#[test]
fn an_unquantised_last_layer_is_the_raw_output() {
    let up_to_fc = || {
        let mut g = dense(false);
        g.nodes.retain(|n| !["q_y", "dq_y", "out"].contains(&n.name.as_str()));
        g
    };
    let imported = import_bytes(&up_to_fc().model("fc_out")).unwrap();
    let net = &imported.network;
    assert_eq!(net.output(), driver::OutputKind::Raw);
    let x = nalgebra::DMatrix::from_row_slice(1, 4, &[1.0f32, 2.0, 0.5, 3.0]);
    let y = net.golden(&net.quantize_input(&x)).unwrap();
    // the accumulators of a_dense_layer_by_hand: 151 and −37, at s_x·s_w = 0.5·0.125
    assert_eq!(y.as_raw().unwrap().as_slice(), &[151, -37]);
    assert_eq!(net.dequantize(&y).as_slice(), &[9.4375, -2.3125]);
    // a ReLU before a float output has no int32 form
    let mut g = up_to_fc();
    g.node("Relu", "r", &["fc_out"], vec![]);
    assert!(refused(&g.model("r_out")).contains("after a ReLU"));
}

#[test]
fn a_relu_after_the_dequantize_is_the_layers_relu() {
    let imported = import_bytes(&dense(true).model("out_out")).unwrap();
    let l = imported.network.ops()[0].gemm().unwrap().layer();
    assert!(l.layer_quant().relu());
    let x = nalgebra::DMatrix::from_row_slice(1, 4, &[1.0f32, 2.0, 0.5, 3.0]);
    let codes = imported.network.quantize_input(&x);
    // max(−12, Z = −3) = −3: a real 0
    assert_eq!(imported.network.golden(&codes).unwrap().as_int8().unwrap().as_slice(), &[35, -3]);
}

/// x (N, 2, 1, 2) NCHW → Q → DQ → Flatten → Gemm (4 → 1) → Q → DQ: the dense weights must be
/// permuted from ONNX's (c, h, w) feature order to protobrain's (h, w, c).
#[test]
fn a_flatten_of_nchw_images_permutes_the_dense_rows() {
    let mut g = G::new(&[-1, 2, 1, 2]);
    let (s, z) = (g.f32("s", &[], &[1.0]), g.i8("z", &[], &[0]));
    let q = g.node("QuantizeLinear", "q", &["x", &s, &z], vec![]);
    let d = g.node("DequantizeLinear", "dq", &[&q, &s, &z], vec![]);
    let f = g.node("Flatten", "flat", &[&d], vec![]);
    // ONNX features of one sample: [c0w0, c0w1, c1w0, c1w1]; weights 1, 10, 100, 1000
    let w = g.i8("w", &[4, 1], &[1, 10, 100, -100]);
    let sw = g.f32("sw", &[], &[1.0]);
    let dw = g.node("DequantizeLinear", "dqw", &[&w, &sw], vec![]);
    let y = g.node("MatMul", "mm", &[&f, &dw], vec![]);
    let sy = g.f32("sy", &[], &[8.0]);
    let qy = g.node("QuantizeLinear", "qy", &[&y, &sy, &z], vec![]);
    g.node("DequantizeLinear", "out", &[&qy, &sy, &z], vec![]);
    let imported = import_bytes(&g.model("out_out")).unwrap();
    assert_eq!(imported.input.layout, Layout::Image { c: 2, h: 1, w: 2 });
    // the sample [c0: 1, 2; c1: 3, 4] in ONNX order → 1 + 20 + 300 − 400 = −79 → round(−79/8) = −10
    let x = imported.rows_from_onnx(1, &[1.0, 2.0, 3.0, 4.0]);
    assert_eq!(x.as_slice(), &[1.0, 3.0, 2.0, 4.0], "NHWC: (w0: c0, c1), (w1: c0, c1)");
    let y = imported.network.golden(&imported.network.quantize_input(&x)).unwrap();
    assert_eq!(y.as_int8().unwrap().as_slice(), &[-10]);
}

fn refused(bytes: &[u8]) -> String {
    import_bytes(bytes).unwrap_err().to_string()
}

#[test]
fn a_graph_that_branches_is_refused() {
    let mut g = dense(false);
    // a second Gemm reading the input's DequantizeLinear after the first layer was made
    let w = g.i8("w2", &[4, 2], &[0; 8]);
    let sw = g.f32("s_w2", &[], &[0.125]);
    let dw = g.node("DequantizeLinear", "dq_w2", &[&w, &sw], vec![]);
    g.node("Gemm", "fc2", &["dq_in_out", &dw], vec![]);
    let e = refused(&g.model("out_out"));
    assert!(e.starts_with("node 'fc2' (Gemm):") && e.contains("branches"), "{e}");
}

#[test]
fn clips_reshapes_and_attributes_are_checked() {
    // a Clip at 1.0 inside the output range (codes reach 127 only at (127 + 3)·0.25 = 32.5)
    let mut g = dense(false);
    let lo = g.f32("lo", &[], &[0.0]);
    let hi = g.f32("hi", &[], &[1.0]);
    g.nodes.retain(|n| n.name != "out");
    let y = g.nodes.iter().position(|n| n.name == "q_y").unwrap();
    let clip = pb::NodeProto {
        op_type: "Clip".into(),
        name: "clip".into(),
        input: vec!["fc_out".into(), lo, hi],
        output: vec!["clip_out".into()],
        ..Default::default()
    };
    g.nodes.insert(y, clip);
    g.nodes[y + 1].input[0] = "clip_out".into();
    g.node("Identity", "out", &["dq_y_out"], vec![]);
    let e = refused(&g.model("out_out"));
    assert!(e.contains("node 'q_y' (QuantizeLinear): clips at 1"), "{e}");

    // a Reshape that is not a flatten
    let mut g = G::new(&[-1, 2, 2, 2]);
    let (s, z) = (g.f32("s", &[], &[1.0]), g.i8("z", &[], &[0]));
    let q = g.node("QuantizeLinear", "q", &["x", &s, &z], vec![]);
    let d = g.node("DequantizeLinear", "dq", &[&q, &s, &z], vec![]);
    let shape = g.i64("shape", &[-1, 2, 4]);
    g.node("Reshape", "rs", &[&d, &shape], vec![]);
    let e = refused(&g.model("rs_out"));
    assert!(e.starts_with("node 'rs' (Reshape): to shape [-1, 2, 4]"), "{e}");

    // Gemm with transA
    let mut g = dense(false);
    g.nodes.iter_mut().find(|n| n.name == "fc").unwrap().attribute.push(int_attr("transA", 1));
    assert!(refused(&g.model("out_out")).contains("node 'fc' (Gemm): transA 1 is not supported"));

    // a non-ONNX byte string
    assert!(refused(b"\xff\xff\xff\xff").starts_with("not an ONNX model"));
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Any bytes: an error or a network, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = import_bytes(&bytes);
        }

        /// A valid model with a few bytes changed (sizes, types, attributes, names): an error
        /// or a network, never a panic.
        #[test]
        fn corrupted_models_never_panic(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6)) {
            let mut bytes = dense(false).model("out_out");
            for (i, b) in edits {
                let i = i.index(bytes.len());
                bytes[i] = b;
            }
            let _ = import_bytes(&bytes);
        }
    }
}
