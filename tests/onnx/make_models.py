#!/usr/bin/env python3
"""Build the ONNX test models of the importer (issue 12) and onnxruntime's reference outputs.

Usage: make_models.py OUTDIR

Run with the virtualenv that scripts/setup.sh makes (numpy, onnx, onnxruntime, pinned):

    ~/.local/onnx/bin/python tests/onnx/make_models.py /tmp/onnx-models

Float models are built with onnx.helper, the runnable ones trained briefly with numpy on the
digits training split (data/digits.csv, the project's standard split), then quantised with
onnxruntime.quantization.quantize_static (MinMax calibration over the first 100 training
images). For every model OUTDIR gets

    NAME.onnx        the model
    NAME.x.npy       float32 inputs in the model's input shape (the 500 digits test images,
                     pixel / 16; 8 of them for the refusals)
    NAME.y.npy       float32 outputs of onnxruntime's CPU provider for NAME.x.npy (dequantised;
                     run models only)
    NAME.nodes.txt   a readable dump: opsets, inputs, outputs, nodes with their attributes,
                     initializers (small ones with their values)

and once: labels.npy (int32, the test images' digits, in the order of the x.npy rows) and
manifest.json (see tests/onnx/README.md). Everything is seeded: a rerun writes the same bytes.
Exit status 0; 1 with a message on stderr (a check failed); 2 bad usage; 3 numpy, onnx or
onnxruntime missing.
"""

import os

# One thread everywhere (determinism, and the machine is shared): before numpy is imported.
for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_v] = "1"

import json  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from importlib.metadata import version  # noqa: E402
from pathlib import Path  # noqa: E402

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )
except ImportError as e:
    print(
        f"make_models.py: {e} (python {sys.executable}): run scripts/setup.sh and use "
        "~/.local/onnx/bin/python",
        file=sys.stderr,
    )
    sys.exit(3)

REPO = Path(__file__).resolve().parents[2]
DIGITS = REPO / "data" / "digits.csv"
SPLIT_SEED = 2024  # protobrain::nn::digits::SPLIT_SEED
TEST_SIZE = 500
CALIBRATION_IMAGES = 100
REFUSAL_ROWS = 8
OPSET = 13
MASK64 = (1 << 64) - 1

logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice ("run pre-processing")
ort.set_default_logger_severity(3)


def fail(msg):
    print(f"make_models.py: error: {msg}", file=sys.stderr)
    sys.exit(1)


# --- data: the project's standard split ---------------------------------------------------------


class SplitMix64:
    """spec::rng::SplitMix64, bit for bit (the split must be the Rust one)."""

    def __init__(self, seed):
        self.s = seed & MASK64

    def next_u64(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & MASK64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n):
        return (self.next_u64() * n) >> 64

    def shuffle(self, items):
        for i in range(len(items) - 1, 0, -1):
            j = self.below(i + 1)
            items[i], items[j] = items[j], items[i]


def load_digits():
    """(pixels float32 (1797, 64) = pixel / 16, labels int64, train rows, test rows)."""
    raw = np.loadtxt(DIGITS, delimiter=",", skiprows=1, dtype=np.int64)
    if raw.shape != (1797, 65):
        fail(f"{DIGITS}: expected 1797 rows of 65 columns, got {raw.shape}")
    rows = list(range(len(raw)))
    SplitMix64(SPLIT_SEED).shuffle(rows)
    test, train = sorted(rows[:TEST_SIZE]), sorted(rows[TEST_SIZE:])
    x = (raw[:, :64] / 16.0).astype(np.float32)
    return x, raw[:, 64], np.array(train), np.array(test)


# --- training in numpy ---------------------------------------------------------------------------


class Adam:
    def __init__(self, params, lr):
        self.p, self.lr, self.t = params, lr, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads):
        self.t += 1
        b1, b2, eps = 0.9, 0.999, 1e-8
        for p, g, m, v in zip(self.p, grads, self.m, self.v):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            mh = m / (1 - b1**self.t)
            vh = v / (1 - b2**self.t)
            p -= self.lr * mh / (np.sqrt(vh) + eps)


def softmax_grad(logits, y):
    """d(mean cross-entropy)/d(logits)."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    p = e / e.sum(axis=1, keepdims=True)
    p[np.arange(len(y)), y] -= 1
    return p / len(y)


def uniform(rng, shape, fan_in):
    lim = np.sqrt(6.0 / fan_in)
    return rng.uniform(-lim, lim, shape).astype(np.float64)


def train_mlp(x, y, hidden=32, epochs=30, batch=32, lr=0.01, seed=1):
    """64 -> hidden (ReLU) -> 10. Weights as Gemm with transB=1 stores them: (out, in)."""
    rng = np.random.default_rng(seed)
    w1 = uniform(rng, (hidden, 64), 64)
    b1 = np.zeros(hidden)
    w2 = uniform(rng, (10, hidden), hidden)
    b2 = np.zeros(10)
    opt = Adam([w1, b1, w2, b2], lr)
    x = x.astype(np.float64)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            xb, yb = x[idx], y[idx]
            h = np.maximum(xb @ w1.T + b1, 0)
            d2 = softmax_grad(h @ w2.T + b2, yb)
            dh = (d2 @ w2) * (h > 0)
            opt.step([dh.T @ xb, dh.sum(0), d2.T @ h, d2.sum(0)])
    return [a.astype(np.float32) for a in (w1, b1, w2, b2)]


def im2col(x, k=3, pad=1):
    """NCHW -> (N*H*W, C*k*k), column order (c, i, j) = ONNX's OIHW weight flattened per O."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    taps = [xp[:, :, i : i + h, j : j + w] for i in range(k) for j in range(k)]
    cols = np.stack(taps, axis=2)  # N, C, k*k, H, W
    return cols.transpose(0, 3, 4, 1, 2).reshape(n * h * w, c * k * k)


def col2im(dcols, shape, k=3, pad=1):
    n, c, h, w = shape
    d = dcols.reshape(n, h, w, c, k * k).transpose(0, 3, 4, 1, 2)  # N, C, k*k, H, W
    dxp = np.zeros((n, c, h + 2 * pad, w + 2 * pad))
    for t in range(k * k):
        i, j = divmod(t, k)
        dxp[:, :, i : i + h, j : j + w] += d[:, :, t]
    return dxp[:, :, pad : pad + h, pad : pad + w]


def conv_fwd(x, w, b):
    n, _, h, wd = x.shape
    cols = im2col(x)
    out = cols @ w.reshape(w.shape[0], -1).T + b
    return out.reshape(n, h, wd, -1).transpose(0, 3, 1, 2), cols


def conv_bwd(dout, cols, w, x_shape, need_dx):
    o = w.shape[0]
    d = dout.transpose(0, 2, 3, 1).reshape(-1, o)
    dw = (d.T @ cols).reshape(w.shape)
    dx = col2im(d @ w.reshape(o, -1), x_shape) if need_dx else None
    return dw, d.sum(0), dx


def pool_fwd(x):
    n, c, h, w = x.shape
    r = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = r.max(axis=(3, 5))
    mask = r == out[:, :, :, None, :, None]
    return out, mask


def pool_bwd(dout, mask):
    n, c, h2, _, w2, _ = mask.shape
    d = mask * dout[:, :, :, None, :, None]
    return d.reshape(n, c, h2 * 2, w2 * 2)


def train_cnn(x, y, c1=8, c2=16, last_bias=True, epochs=15, batch=32, lr=0.005, seed=1):
    """(N,1,8,8): Conv 1->c1 3x3 pad 1, ReLU, MaxPool 2, Conv c1->c2, ReLU, MaxPool 2, Flatten
    (C,H,W order, as ONNX's Flatten of NCHW), dense 4*c2 -> 10 (W3: (10, 4*c2))."""
    rng = np.random.default_rng(seed)
    w1 = uniform(rng, (c1, 1, 3, 3), 9)
    b1 = np.zeros(c1)
    w2 = uniform(rng, (c2, c1, 3, 3), 9 * c1)
    b2 = np.zeros(c2)
    w3 = uniform(rng, (10, 4 * c2), 4 * c2)
    b3 = np.zeros(10)
    opt = Adam([w1, b1, w2, b2, w3, b3], lr)
    x = x.astype(np.float64).reshape(-1, 1, 8, 8)
    for _ in range(epochs):
        order = rng.permutation(len(x))
        for i in range(0, len(x), batch):
            idx = order[i : i + batch]
            xb, yb = x[idx], y[idx]
            a1, cols1 = conv_fwd(xb, w1, b1)
            r1 = np.maximum(a1, 0)
            p1, m1 = pool_fwd(r1)
            a2, cols2 = conv_fwd(p1, w2, b2)
            r2 = np.maximum(a2, 0)
            p2, m2 = pool_fwd(r2)
            f = p2.reshape(len(xb), -1)
            d3 = softmax_grad(f @ w3.T + b3, yb)
            dw3, db3 = d3.T @ f, d3.sum(0)
            if not last_bias:
                db3 = np.zeros_like(db3)
            df = (d3 @ w3).reshape(p2.shape)
            da2 = pool_bwd(df, m2) * (a2 > 0)
            dw2, db2, dp1 = conv_bwd(da2, cols2, w2, p1.shape, True)
            da1 = pool_bwd(dp1, m1) * (a1 > 0)
            dw1, db1, _ = conv_bwd(da1, cols1, w1, xb.shape, False)
            opt.step([dw1, db1, dw2, db2, dw3, db3])
    return [a.astype(np.float32) for a in (w1, b1, w2, b2, w3, b3)]


# --- float models with onnx.helper ----------------------------------------------------------------


def init(name, a):
    return numpy_helper.from_array(np.array(a, order="C"), name)  # (ascontiguousarray makes 0-d 1-d)


def finish(nodes, inits, in_shape, out_shape, name, opset=OPSET):
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)],
        inits,
    )
    m = helper.make_model(
        g, producer_name="protobrain tests/onnx/make_models.py", opset_imports=[helper.make_opsetid("", opset)]
    )
    m.ir_version = 7  # opset 13 needs IR 7; the oldest that fits keeps old readers happy
    onnx.checker.check_model(m)
    return m


def mlp_model(p, name, opset=OPSET):
    w1, b1, w2, b2 = p
    nodes = [
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["fc1"], "fc1", transB=1),
        helper.make_node("Relu", ["fc1"], ["relu1"], "relu1"),
        helper.make_node("Gemm", ["relu1", "fc2.weight", "fc2.bias"], ["output"], "fc2", transB=1),
    ]
    inits = [init("fc1.weight", w1), init("fc1.bias", b1), init("fc2.weight", w2), init("fc2.bias", b2)]
    return finish(nodes, inits, ["N", 64], ["N", 10], name, opset)


def cnn_model(p, name, last="gemm", relu6=False):
    """last: "gemm" (Gemm transB=1 with bias, as PyTorch exports nn.Linear) or "matmul" (MatMul
    without bias: B is W3.T, (64, 10)). relu6: the activations are Clip(0, 6) (min and max as
    inputs, opset 11 and up: what PyTorch exports for nn.ReLU6), not Relu."""
    w1, b1, w2, b2, w3, b3 = p

    def act(i):  # (node, its output)
        if relu6:
            return helper.make_node("Clip", [f"conv{i}", "relu6.min", "relu6.max"], [f"clip{i}"], f"clip{i}"), f"clip{i}"
        return helper.make_node("Relu", [f"conv{i}"], [f"relu{i}"], f"relu{i}"), f"relu{i}"

    (act1, a1), (act2, a2) = act(1), act(2)
    nodes = [
        helper.make_node("Conv", ["input", "conv1.weight", "conv1.bias"], ["conv1"], "conv1",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        act1,
        helper.make_node("MaxPool", [a1], ["pool1"], "pool1", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["pool1", "conv2.weight", "conv2.bias"], ["conv2"], "conv2",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[1, 1]),
        act2,
        helper.make_node("MaxPool", [a2], ["pool2"], "pool2", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool2"], ["flat"], "flatten", axis=1),
    ]
    inits = [init("conv1.weight", w1), init("conv1.bias", b1), init("conv2.weight", w2), init("conv2.bias", b2)]
    if relu6:
        inits += [init("relu6.min", np.float32(0)), init("relu6.max", np.float32(6))]
    if last == "gemm":
        nodes.append(helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["output"], "fc", transB=1))
        inits += [init("fc.weight", w3), init("fc.bias", b3)]
    else:
        nodes.append(helper.make_node("MatMul", ["flat", "fc.weight"], ["output"], "fc"))
        inits.append(init("fc.weight", np.ascontiguousarray(w3.T)))
    return finish(nodes, inits, ["N", 1, 8, 8], ["N", 10], name)


# --- quantisation and onnxruntime ----------------------------------------------------------------


class Reader(CalibrationDataReader):
    def __init__(self, x, batch=20):
        self.batches = iter([{"input": x[i : i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.batches, None)


def quantize(model, calib, fmt=QuantFormat.QDQ, per_channel=False, act=QuantType.QInt8,
             weight=QuantType.QInt8, **kw):
    with tempfile.TemporaryDirectory(prefix="protobrain-onnx-") as d:
        src, dst = Path(d) / "float.onnx", Path(d) / "quant.onnx"
        onnx.save(model, src)
        quantize_static(
            str(src), str(dst), Reader(calib), quant_format=fmt, per_channel=per_channel,
            activation_type=act, weight_type=weight, **kw,
        )
        q = onnx.load(dst)
    onnx.checker.check_model(q)
    return q


def session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run(model, x):
    return session(model).run(None, {"input": x})[0].astype(np.float32)


# --- the dump --------------------------------------------------------------------------------------

DTYPES = {v: k for k, v in TensorProto.DataType.items()}


def fmt_value(v, dtype):
    if np.issubdtype(dtype, np.floating):
        return format(float(v), ".9g")  # round-trips float32
    return str(int(v))


def fmt_tensor(a):
    flat = a.reshape(-1)
    if flat.size <= 64:
        body = ", ".join(fmt_value(v, a.dtype) for v in flat)
        return body if a.ndim == 0 else f"[{body}]"
    return f"({flat.size} values, min {fmt_value(flat.min(), a.dtype)}, max {fmt_value(flat.max(), a.dtype)})"


def fmt_attr(a):
    v = helper.get_attribute_value(a)
    if isinstance(v, bytes):
        v = v.decode()
    elif isinstance(v, TensorProto):
        v = fmt_tensor(numpy_helper.to_array(v))
    elif isinstance(v, list):
        v = [x.decode() if isinstance(x, bytes) else x for x in v]
    return f"{a.name}={v}"


def fmt_vi(vi):
    t = vi.type.tensor_type
    dims = [d.dim_param or d.dim_value for d in t.shape.dim]
    return f"{vi.name}: {DTYPES[t.elem_type].lower()} {dims}"


def dump(model, name):
    g = model.graph
    opsets = ", ".join(f"{o.domain or 'ai.onnx'} {o.version}" for o in model.opset_import)
    out = [
        f"model {name}: ir_version {model.ir_version}; opsets: {opsets}; "
        f"producer {model.producer_name} {model.producer_version}".rstrip(),
        "",
        "inputs:",
    ]
    out += [f"  {fmt_vi(v)}" for v in g.input]
    out += ["outputs:"] + [f"  {fmt_vi(v)}" for v in g.output]
    out += ["", f"nodes ({len(g.node)}, in graph order):"]
    for i, n in enumerate(g.node):
        dom = f" [{n.domain}]" if n.domain else ""
        out.append(f"  {i:2} {n.op_type}{dom} \"{n.name}\"")
        out.append(f"       in:  {', '.join(n.input)}")
        out.append(f"       out: {', '.join(n.output)}")
        if n.attribute:
            out.append(f"       attrs: {'; '.join(fmt_attr(a) for a in n.attribute)}")
    out += ["", f"initializers ({len(g.initializer)}):"]
    for t in g.initializer:
        a = numpy_helper.to_array(t)
        out.append(f"  {t.name}: {DTYPES[t.data_type].lower()} {list(a.shape)} = {fmt_tensor(a)}")
    return "\n".join(out) + "\n"


# --- the models ----------------------------------------------------------------------------------


def accuracy(y, labels):
    return float((y.argmax(axis=1) == labels).mean())


def ops(model):
    return [n.op_type for n in model.graph.node]


def node_named(model, op):
    found = [n.name for n in model.graph.node if n.op_type == op]
    if len(found) != 1:
        fail(f"expected one {op} node, found {found}")
    return found[0]


def with_weight_zero_point(q, gemm="fc1", zp=3):
    """The QDQ model q with gemm's weight DequantizeLinear given a zero point of zp (its int8
    weights shifted by zp, so that the model still means the same)."""
    q = onnx.ModelProto.FromString(q.SerializeToString())
    g = q.graph
    node = next(n for n in g.node if n.name == gemm)
    dq = next(n for n in g.node if n.op_type == "DequantizeLinear" and n.output[0] == node.input[1])
    if sum(dq.input[2] in n.input for n in g.node) != 1:
        fail(f"{dq.input[2]} is shared")
    inits = {t.name: t for t in g.initializer}
    w = numpy_helper.to_array(inits[dq.input[0]]).astype(np.int32)
    if w.min() + zp < -128 or w.max() + zp > 127:
        fail(f"{dq.input[0]} + {zp} leaves int8")
    inits[dq.input[0]].CopyFrom(init(dq.input[0], (w + zp).astype(np.int8)))
    inits[dq.input[2]].CopyFrom(init(dq.input[2], np.array(zp, np.int8)))
    onnx.checker.check_model(q)
    return q, dq.name



def qdq_to_integer(q, name, conv_shapes=((1, -1, 1, 1), (-1, 1, 1))):
    """The static integer (QOperator) form of the QDQ model q, built by hand with the same
    quantised parameters, so that it means what q means. Each Gemm (transB=1) or Conv, which
    reads DequantizeLinear(codes), DequantizeLinear(int8 weights) and DequantizeLinear(int32 bias
    b_q), becomes

        MatMulInteger(codes, int8 B (K, N), a_zero_point = the codes' zero point)
          or ConvInteger(codes, int8 W (O, I, KH, KW), x_zero_point = the codes' zero point)
        -> Cast(to=FLOAT) -> Mul(s_x*s_w, float32) -> Add(float32 bias b_q*s_x*s_w)

    (no weight zero point) and feeds q's own QuantizeLinear; MaxPool and Flatten read the codes
    (the QuantizeLinear/DequantizeLinear pair after them, with the same parameters, goes); the
    graph's last DequantizeLinear stays. A dense layer's scale and bias are (N,) (the scale a
    scalar if the weights are per-tensor); the i-th convolution's take conv_shapes[i % 2]
    (-1: the O output channels): [1, O, 1, 1] and [O, 1, 1] by default."""
    g = q.graph
    arrays = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    consts = {}  # a DequantizeLinear of an initializer: its output -> (values, scale)
    codes = {}  # a DequantizeLinear of activations: its output -> (codes, scale name, zero point name)
    on_codes = {}  # an output of MaxPool/Flatten on codes -> (scale name, zero point name)
    alias = {}  # the output of a QuantizeLinear that repeats codes -> those codes
    nodes, new_inits, used = [], [], set()
    n_conv = 0
    for n in g.node:
        op, ins = n.op_type, list(n.input)
        if op == "DequantizeLinear" and ins[0] in arrays:
            zp = arrays[ins[2]] if len(ins) > 2 and ins[2] else np.zeros(1)
            if np.any(zp != 0):
                fail(f"{name}: {n.name} has a nonzero zero point")
            consts[n.output[0]] = (arrays[ins[0]], arrays[ins[1]])
        elif op == "DequantizeLinear":
            src = alias.get(ins[0], ins[0])
            if n.output[0] == g.output[0].name:
                nodes.append(helper.make_node("DequantizeLinear", [src, ins[1], ins[2]], list(n.output), n.name))
                used.update(ins[1:])
            else:
                codes[n.output[0]] = (src, ins[1], ins[2])
        elif op == "QuantizeLinear" and ins[0] in on_codes:
            s, z = on_codes[ins[0]]
            if not (np.array_equal(arrays[s], arrays[ins[1]]) and np.array_equal(arrays[z], arrays[ins[2]])):
                fail(f"{name}: {n.name} requantises a {op} output")
            alias[n.output[0]] = ins[0]
        elif op == "QuantizeLinear":
            nodes.append(n)
            used.update(ins[1:])
        elif op in ("MaxPool", "Flatten"):
            src, s, z = codes[ins[0]]
            nodes.append(helper.make_node(op, [src], list(n.output), n.name, **{
                a.name: helper.get_attribute_value(a) for a in n.attribute}))
            on_codes[n.output[0]] = (s, z)
        elif op in ("Gemm", "Conv"):
            src, s_name, z_name = codes[ins[0]]
            w, s_w = consts[ins[1]]
            b_q, s_b = consts[ins[2]]
            s_x = arrays[s_name]
            scale = (np.float32(s_x) * s_w.astype(np.float32)).reshape(-1)  # float32, as onnxruntime
            if not np.array_equal(scale, s_b.reshape(-1).astype(np.float32)):
                fail(f"{name}: {n.name}'s bias scale is not s_x*s_w")
            bias = b_q.astype(np.float32) * np.broadcast_to(scale, b_q.shape)
            attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
            if op == "Gemm":
                if attrs != {"transB": 1}:
                    fail(f"{name}: {n.name} has attributes {attrs}")
                wq = np.ascontiguousarray(w.T)  # B: (K, N)
                nodes.append(helper.make_node("MatMulInteger", [src, f"{n.name}.B", z_name], [f"{n.name}_int32"], n.name))
                shape = (-1,)
            else:
                wq = w
                nodes.append(helper.make_node("ConvInteger", [src, f"{n.name}.W", z_name], [f"{n.name}_int32"], n.name,
                                              **attrs))
                shape = conv_shapes[n_conv % len(conv_shapes)]
                n_conv += 1
            scale_shape = () if scale.size == 1 and op == "Gemm" else shape
            cols = wq.shape[1] if op == "Gemm" else wq.shape[0]
            scale = np.broadcast_to(scale, (cols,)) if scale_shape else scale
            new_inits += [
                init(f"{n.name}.{'B' if op == 'Gemm' else 'W'}", wq),
                init(f"{n.name}.scale", scale.reshape(scale_shape).astype(np.float32)),
                init(f"{n.name}.bias", bias.reshape(shape).astype(np.float32)),
            ]
            nodes += [
                helper.make_node("Cast", [f"{n.name}_int32"], [f"{n.name}_float"], f"{n.name}_cast", to=TensorProto.FLOAT),
                helper.make_node("Mul", [f"{n.name}_float", f"{n.name}.scale"], [f"{n.name}_scaled"], f"{n.name}_scale"),
                helper.make_node("Add", [f"{n.name}_scaled", f"{n.name}.bias"], list(n.output), f"{n.name}_bias"),
            ]
            used.add(z_name)
        else:
            fail(f"{name}: cannot convert {op} {n.name}")
    kept = [init(t.name, arrays[t.name]) for t in g.initializer if t.name in used]
    dims = lambda vi: [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]  # noqa: E731
    return finish(nodes, kept + new_inits, dims(g.input[0]), dims(g.output[0]), name)


def main():
    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        sys.exit(2)
    outdir = Path(sys.argv[1])
    outdir.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()

    x, labels, train, test = load_digits()
    xtr, ytr, xte, yte = x[train], labels[train], x[test], labels[test]
    calib = xtr[:CALIBRATION_IMAGES]
    img = lambda a: a.reshape(-1, 1, 8, 8)  # noqa: E731
    np.save(outdir / "labels.npy", yte.astype(np.int32))

    mlp = train_mlp(xtr, ytr)
    cnn = train_cnn(xtr, ytr)
    cnn_nobias = train_cnn(xtr, ytr, last_bias=False)
    t_train = time.monotonic() - t0

    entries = []

    def save(name, model, xin, entry, float_model=None):
        onnx.save(model, outdir / f"{name}.onnx")
        np.save(outdir / f"{name}.x.npy", xin)
        (outdir / f"{name}.nodes.txt").write_text(dump(model, name))
        opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        keys = ("kind", "form", "per_channel", "activations", "weights", "symmetric", "reduce_range", "node", "op",
                "unsupported")
        e = {"name": name, **{k: entry[k] for k in keys if k in entry}, "opset": opset}
        e["input_shape"] = list(xin.shape)
        if entry["kind"] == "run":
            y = run(model, xin)
            np.save(outdir / f"{name}.y.npy", y)
            e["output_shape"] = list(y.shape)
            e["accuracy"] = {"float": accuracy(run(float_model, xin), yte), "quantized": accuracy(y, yte)}
        e["ops"] = ops(model)
        entries.append(e)
        return e

    # -- runnable models
    base = {"kind": "run", "weights": "int8", "symmetric": False}
    f_mlp = mlp_model(mlp, "mlp")
    f_cnn = cnn_model(cnn, "cnn")
    f_cnn_mm = cnn_model(cnn_nobias, "cnn_matmul", last="matmul")
    f_relu6 = cnn_model(cnn, "cnn_relu6", relu6=True)  # the ReLU CNN's weights: few activations pass 6
    qdq = {}  # the quantised models by name
    for name, fm, xin, kw in [
        ("mlp_qdq_tensor", f_mlp, xte, {"per_channel": False}),
        ("mlp_qdq_channel", f_mlp, xte, {"per_channel": True}),
        # reduce_range (7-bit weights): onnxruntime's advice for uint8 activations on CPUs without
        # VNNI, whose u8 x s8 kernel (vpmaddubsw) saturates pairs of products at int16: with it the
        # reference outputs do not depend on the CPU that computes them
        ("mlp_qdq_uint8", f_mlp, xte, {"per_channel": False, "act": QuantType.QUInt8, "reduce_range": True}),
        ("cnn_qdq_tensor", f_cnn, img(xte), {"per_channel": False}),
        ("cnn_qdq_channel", f_cnn, img(xte), {"per_channel": True}),
        ("cnn_qoperator", f_cnn_mm, img(xte), {"per_channel": False, "fmt": QuantFormat.QOperator}),
    ]:
        q = quantize(fm, calib if xin.ndim == 2 else img(calib), **kw)
        fmt = "qoperator" if kw.get("fmt") == QuantFormat.QOperator else "qdq"
        act = "uint8" if kw.get("act") == QuantType.QUInt8 else "int8"
        entry = {**base, "form": fmt, "per_channel": kw["per_channel"], "activations": act}
        save(name, q, xin, {**entry, "reduce_range": kw.get("reduce_range", False)}, fm)
        bad = [n.op_type for n in q.graph.node if n.domain not in ("", "ai.onnx")]
        if bad:
            fail(f"{name}: ops outside the ai.onnx domain: {bad}")
        qdq[name] = q

    # symmetric activations (zero point 0): quantize_static keeps the Relu (a float Relu between
    # a QuantizeLinear/DequantizeLinear pair and the next one, the same parameters on both sides)
    # and the Clip of ReLU6; with the default asymmetric activations it removes the Clip too (the
    # output range is [0, 6]: scale 6/255, zero point -128, and saturation clips)
    sym = {"extra_options": {"ActivationSymmetric": True}}
    for name, fm, xin, kw, kept in [
        ("mlp_qdq_symmetric", f_mlp, xte, sym, "Relu"),
        ("cnn_qdq_relu6", f_relu6, img(xte), {}, None),
        ("cnn_qdq_relu6_symmetric", f_relu6, img(xte), sym, "Clip"),
    ]:
        q = quantize(fm, calib if xin.ndim == 2 else img(calib), **kw)
        if kept and ops(q).count(kept) != ops(fm).count(kept):
            fail(f"{name}: the quantiser removed a {kept}: {ops(q)}")
        entry = {**base, "form": "qdq", "per_channel": False, "activations": "int8", "symmetric": bool(kw)}
        save(name, q, xin, {**entry, "reduce_range": False}, fm)

    # the static integer form (MatMulInteger / ConvInteger, Cast, Mul, Add), by hand from two QDQ
    # models' quantised parameters: it must give (almost) what they give
    same_as = {}
    for name, src, fm, xin in [
        ("mlp_integer", "mlp_qdq_tensor", f_mlp, xte),
        ("cnn_integer", "cnn_qdq_channel", f_cnn, img(xte)),
    ]:
        q = qdq_to_integer(qdq[src], name)
        entry = {**base, "form": "integer", "per_channel": src.endswith("channel"), "activations": "int8"}
        save(name, q, xin, {**entry, "reduce_range": False}, fm)
        y, y_src = np.load(outdir / f"{name}.y.npy"), np.load(outdir / f"{src}.y.npy")
        s_y = numpy_helper.to_array(next(t for t in q.graph.initializer if t.name == q.graph.node[-1].input[1]))
        lsb = np.rint((y.astype(np.float64) - y_src) / s_y)
        same_as[name] = (src, float((lsb == 0).mean()), int(np.abs(lsb).max()))
        if same_as[name][1] < 0.98 or same_as[name][2] > 1:
            fail(f"{name}: onnxruntime's outputs differ from {src}'s: {same_as[name][1:]}")

    # -- refusals: small, random weights (seeded), QDQ per-tensor int8 unless said otherwise
    rng = np.random.default_rng(7)
    few = xte[:REFUSAL_ROWS]
    ref = {"kind": "refuse", "form": "qdq", "per_channel": False, "activations": "int8", "weights": "int8"}

    def refuse(name, model, xin, node, op, what, **extra):
        if node is not None and not any(n.name == node and n.op_type == op for n in model.graph.node):
            fail(f"{name}: no node {node!r} of op {op}")
        save(name, model, xin, {**ref, **extra, "node": node, "op": op, "unsupported": what})

    def conv_net(name, conv_attrs, c_in=1):
        w = (rng.standard_normal((4, c_in // conv_attrs.get("group", 1), 3, 3)) * 0.3).astype(np.float32)
        b = (rng.standard_normal(4) * 0.1).astype(np.float32)
        wf = (rng.standard_normal((10, 4 * 64)) * 0.1).astype(np.float32)
        bf = np.zeros(10, np.float32)
        nodes = [
            helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv"], "conv",
                             kernel_shape=[3, 3], **conv_attrs),
            helper.make_node("Relu", ["conv"], ["relu"], "relu"),
            helper.make_node("Flatten", ["relu"], ["flat"], "flatten", axis=1),
            helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["output"], "fc", transB=1),
        ]
        inits = [init("conv.weight", w), init("conv.bias", b), init("fc.weight", wf), init("fc.bias", bf)]
        return finish(nodes, inits, ["N", c_in, 8, 8], ["N", 10], name)

    def multichannel(a, c):
        return np.ascontiguousarray(np.repeat(img(a), c, axis=1))

    # an unsupported op between two layers, QDQ around it
    w1 = (rng.standard_normal((16, 64)) * 0.2).astype(np.float32)
    w2 = (rng.standard_normal((10, 16)) * 0.3).astype(np.float32)
    m = finish([
        helper.make_node("Gemm", ["input", "fc1.weight", "fc1.bias"], ["fc1"], "fc1", transB=1),
        helper.make_node("Sigmoid", ["fc1"], ["sigmoid"], "sigmoid"),
        helper.make_node("Gemm", ["sigmoid", "fc2.weight", "fc2.bias"], ["output"], "fc2", transB=1),
    ], [init("fc1.weight", w1), init("fc1.bias", np.zeros(16, np.float32)),
        init("fc2.weight", w2), init("fc2.bias", np.zeros(10, np.float32))], ["N", 64], ["N", 10], "sigmoid")
    q = quantize(m, calib, op_types_to_quantize=["Gemm", "Sigmoid"])
    if "Sigmoid" not in ops(q) or ops(q).count("DequantizeLinear") < 5:
        fail(f"refuse_sigmoid: not QDQ around the Sigmoid: {ops(q)}")
    refuse("refuse_sigmoid", q, few, "sigmoid", "Sigmoid", "op")

    for name, attrs, c_in, what in [
        ("refuse_dilation", {"pads": [2, 2, 2, 2], "dilations": [2, 2]}, 1, "dilations"),
        ("refuse_group", {"pads": [1, 1, 1, 1], "group": 2}, 2, "group"),
        ("refuse_auto_pad", {"auto_pad": "SAME_UPPER"}, 1, "auto_pad"),
    ]:
        m = conv_net(name, attrs, c_in)
        xin = few if c_in == 1 else multichannel(few, c_in)
        cal = img(calib) if c_in == 1 else multichannel(calib, c_in)
        refuse(name, quantize(m, cal), img(xin) if c_in == 1 else xin, "conv", "Conv", what)

    # a weight DequantizeLinear with a nonzero zero point (hand-edited mlp_qdq_tensor)
    q = onnx.load(outdir / "mlp_qdq_tensor.onnx")
    q, dq = with_weight_zero_point(q)
    refuse("refuse_weight_zero_point", q, few, dq, "DequantizeLinear", "zero point")

    # a float Gemm in a quantised model (fc2 left out of quantisation)
    q = quantize(f_mlp, calib, nodes_to_exclude=["fc2"])
    refuse("refuse_float_gemm", q, few, "fc2", "Gemm", "float")

    # dynamic quantisation (quantize_dynamic quantises MatMul, not Gemm: MatMul + Add)
    m = finish([
        helper.make_node("MatMul", ["input", "fc1.weight"], ["mm1"], "fc1"),
        helper.make_node("Add", ["mm1", "fc1.bias"], ["fc1_out"], "fc1_add"),
        helper.make_node("Relu", ["fc1_out"], ["relu1"], "relu1"),
        helper.make_node("MatMul", ["relu1", "fc2.weight"], ["mm2"], "fc2"),
        helper.make_node("Add", ["mm2", "fc2.bias"], ["output"], "fc2_add"),
    ], [init("fc1.weight", np.ascontiguousarray(mlp[0].T)), init("fc1.bias", mlp[1]),
        init("fc2.weight", np.ascontiguousarray(mlp[2].T)), init("fc2.bias", mlp[3])],
        ["N", 64], ["N", 10], "mlp_matmul")
    with tempfile.TemporaryDirectory(prefix="protobrain-onnx-") as d:
        onnx.save(m, Path(d) / "f.onnx")
        quantize_dynamic(str(Path(d) / "f.onnx"), str(Path(d) / "q.onnx"), weight_type=QuantType.QInt8)
        q = onnx.load(Path(d) / "q.onnx")
    onnx.checker.check_model(q)
    dql = [n.name for n in q.graph.node if n.op_type == "DynamicQuantizeLinear"]
    if not dql or "MatMulInteger" not in ops(q):
        fail(f"refuse_dynamic: expected DynamicQuantizeLinear and MatMulInteger, got {ops(q)}")
    refuse("refuse_dynamic", q, few, dql[0], "DynamicQuantizeLinear", "op", form="dynamic", activations="uint8")

    # opset 12 (per-tensor QDQ: DequantizeLinear has no axis before 13)
    q = quantize(mlp_model(mlp, "mlp_opset12", opset=12), calib)
    refuse("refuse_opset12", q, few, None, None, "opset")

    # a residual connection: Add(relu(conv(x)), x), QDQ around the Add (the graph branches)
    wc = (rng.standard_normal((1, 1, 3, 3)) * 0.3).astype(np.float32)
    wf = (rng.standard_normal((10, 64)) * 0.1).astype(np.float32)
    m = finish([
        helper.make_node("Conv", ["input", "conv.weight", "conv.bias"], ["conv"], "conv",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"], "relu"),
        helper.make_node("Add", ["relu", "input"], ["add"], "add"),
        helper.make_node("Flatten", ["add"], ["flat"], "flatten", axis=1),
        helper.make_node("Gemm", ["flat", "fc.weight", "fc.bias"], ["output"], "fc", transB=1),
    ], [init("conv.weight", wc), init("conv.bias", np.zeros(1, np.float32)), init("fc.weight", wf),
        init("fc.bias", np.zeros(10, np.float32))], ["N", 1, 8, 8], ["N", 10], "branch")
    q = quantize(m, img(calib))
    add = next(n for n in q.graph.node if n.op_type == "Add")
    made_by = {o: n.op_type for n in q.graph.node for o in n.output}
    if [made_by.get(i) for i in add.input] != ["DequantizeLinear"] * 2:
        fail(f"refuse_branch: the Add does not read two DequantizeLinear: {ops(q)}")
    refuse("refuse_branch", q, img(few), "add", "Add", "branch")

    # uint8 weights (asymmetric: zero points 141 and 163); onnxruntime's quantiser pairs QUInt8
    # weights with uint8 activations only
    q = quantize(f_mlp, calib, act=QuantType.QUInt8, weight=QuantType.QUInt8)
    fc1 = next(n for n in q.graph.node if n.name == "fc1")
    dq = next(n.name for n in q.graph.node if n.op_type == "DequantizeLinear" and n.output[0] == fc1.input[1])
    refuse("refuse_uint8_weights", q, few, dq, "DequantizeLinear", "uint8", activations="uint8", weights="uint8")

    manifest = {
        "format": "protobrain-onnx-tests",
        "version": 1,
        "generator": "tests/onnx/make_models.py",
        "packages": {p: version(p) for p in ("numpy", "onnx", "onnxruntime")},
        "labels": "labels.npy",
        "models": entries,
    }
    # one model a line
    head = json.dumps({k: v for k, v in manifest.items() if k != "models"}, indent=2)[:-2]
    models = ",\n    ".join(json.dumps(e) for e in entries)
    (outdir / "manifest.json").write_text(f'{head},\n  "models": [\n    {models}\n  ]\n}}\n')

    for e in entries:
        if e["kind"] == "run":
            a = e["accuracy"]
            also = ""
            if e["name"] in same_as:
                src, same, worst = same_as[e["name"]]
                also = f"; {same:.2%} of outputs as {src}'s, max {worst} LSB apart"
            print(f"{e['name']:26} float {a['float']:.3f}  quantized {a['quantized']:.3f}  "
                  f"({e['input_shape'][0]} test images{also})")
            if abs(a["float"] - a["quantized"]) > 0.02 or a["float"] < 0.9:
                fail(f"{e['name']}: accuracy float {a['float']} vs quantized {a['quantized']}")
        else:
            print(f"{e['name']:26} refuse: node {e['node']!r} ({e['op']}): {e['unsupported']}")
    print(f"{len(entries)} models in {outdir} ({time.monotonic() - t0:.1f} s, training {t_train:.1f} s)")


if __name__ == "__main__":
    main()
