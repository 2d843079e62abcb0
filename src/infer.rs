//! `protobrain infer` (alias `mlp`): run a quantised network — conv2d, maxpool2d,
//! global_avg_pool, flatten and dense layers — from a model file or an int8 ONNX model, through
//! the driver.
//!
//! ```text
//!  model.json ── ModelFile::load ──────────┐
//!  model.onnx ── onnx::import_path ────────┴► driver::Network (layers, scales, zero points)
//!                                              │ conv2d/dense: GEMMs compiled for --preset/--dim/...
//!  X.npy ── int8 as is, or float ──────────────┴──► Network::run on --backend ──┬─ raw ──► Y.npy int32 logits
//!          (quantised as QuantizeLinear does)                                    └─ int8 ─► Y.npy int8
//!                                                     --float (always for ONNX): dequantised, float32
//! ```
//!
//! An ONNX model takes and returns what onnxruntime does: float32 in the graph's shapes (NCHW
//! images, transposed to and from protobrain's NHWC rows here). Every check (flags, model,
//! input shape and dtype, output paths) runs before the backend opens; the outputs are written
//! atomically and only on success. Model files: `docs/model-format.md`; ONNX: `docs/onnx.md`.

use std::path::{Path, PathBuf};

use clap::Args;
use driver::{CompileError, Device, DriverError, Network, Output};
use nalgebra::DMatrix;
use protobrain::nn::ModelFile;
use spec::Config;

use crate::backend::{Link, LinkArgs, RunReport, Upload};
use crate::config_args::ConfigArgs;
use crate::error::CliError;
use crate::npy::{self, AnyRows};

/// Arguments of `protobrain infer`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// The model: a protobrain model file (docs/model-format.md), or an int8 ONNX model
    /// (`.onnx`, quantised by onnxruntime: docs/onnx.md).
    #[arg(short, long, value_name = "model.json|model.onnx")]
    pub model: PathBuf,

    /// Inputs X: for a model file, (N, H, W, C) NHWC images or (N, H·W·C) rows, int8 or
    /// float32/float64 (quantised with the model's input scale and zero point as ONNX's
    /// QuantizeLinear does: round(x / s) half to even, + Z, saturated to int8); for an ONNX
    /// model, float32 in the graph input's shape (NCHW images), as onnxruntime takes it.
    #[arg(short, long, value_name = "X.npy")]
    pub input: PathBuf,

    /// Where to write Y: int32 logits if the model's output is raw, else int8; (N, K) for a
    /// flat output, (N, H, W, C) for images. For an ONNX model: float32, dequantised, in the
    /// graph output's shape, as onnxruntime returns it.
    #[arg(short, long, value_name = "Y.npy")]
    pub output: PathBuf,

    /// Write Y as float32, dequantised ((q − zero point) × the model's output scale); always so
    /// for an ONNX model.
    #[arg(long)]
    pub float: bool,

    /// Which device runs the network, and how to reach it.
    #[command(flatten)]
    pub link: LinkArgs,

    /// Write a JSON report (cycles, MACs, utilization, words moved, Config) here.
    #[arg(long, value_name = "r.json")]
    pub report: Option<PathBuf>,

    /// Keep the weights on the device: store the model's weight tiles in the top half of the
    /// scratchpad first and load them with LOAD_TILE (docs/design.md, "Resident weights"),
    /// so the inferences send only activations; the report shows the upload apart.
    #[arg(long)]
    pub resident: bool,

    /// The device the network is compiled for.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// A model as loaded: a protobrain model file, or an ONNX model with its edges' layouts.
pub enum Model {
    /// `model.json` (docs/model-format.md): NHWC rows in, int8/int32 or dequantised out.
    File(Network),
    /// An int8 ONNX model (docs/onnx.md): what onnxruntime takes in and returns.
    Onnx(Box<onnx::Imported>),
}

impl Model {
    /// Load `path`: an ONNX model if it ends in `.onnx`, else a model file.
    pub fn load(path: &Path) -> Result<Model, CliError> {
        if is_onnx(path) {
            let imported = onnx::import_path(path).map_err(|e| CliError::file(path, e.to_string()))?;
            Ok(Model::Onnx(Box::new(imported)))
        } else {
            Ok(Model::File(ModelFile::load(path).map_err(|e| CliError::file(path, e.problem))?.model))
        }
    }

    /// The network that runs.
    pub fn network(&self) -> &Network {
        match self {
            Model::File(n) => n,
            Model::Onnx(i) => &i.network,
        }
    }
}

/// True for a path ending in `.onnx` (any case).
pub fn is_onnx(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

/// Read a model file or an ONNX model as a network (for `compile`, `estimate`).
pub fn load_network(path: &Path) -> Result<Network, CliError> {
    Ok(match Model::load(path)? {
        Model::File(n) => n,
        Model::Onnx(i) => i.network,
    })
}

/// Run the command: check, compute, write. Returns the report for stdout.
pub fn run(args: &InferArgs) -> Result<String, CliError> {
    crate::output::check_outputs(&[
        ("--output", Some(&args.output)),
        ("--report", args.report.as_deref()),
        ("--trace", args.link.trace.as_deref()),
    ])?;
    let cfg = args.config.config()?;
    let model = Model::load(&args.model)?;
    let net = model.network();
    let x = match &model {
        Model::File(net) => read_input(&args.input, net)?,
        Model::Onnx(imported) => read_onnx_input(&args.input, imported)?,
    };
    let (y, report) = compute(&args.link, &cfg, net, &x, args.resident)?;
    let images = x.nrows();
    // both outputs are staged before either is put in place: a failure leaves neither
    let mut outputs = crate::output::Outputs::new();
    let (shape, what) = match &model {
        Model::File(net) => {
            let out = net.output_shape();
            let mut shape = vec![images];
            if out.is_flat() {
                shape.push(out.c);
            } else {
                shape.extend([out.h, out.w, out.c]);
            }
            let what = match (&y, args.float) {
                (_, true) => "float32 (dequantised)",
                (Output::Raw(_), false) => "int32 logits",
                (Output::Int8(_), false) => "int8",
            };
            let float = args.float.then(|| net.dequantize(&y));
            stage_output(&mut outputs, &args.output, &shape, &y, float)?;
            (shape, what)
        }
        Model::Onnx(imported) => {
            // what onnxruntime returns: the dequantised output, in the graph's layout
            let shape = imported.output.layout.shape(images);
            let data = imported.rows_to_onnx(&net.dequantize(&y));
            let m = DMatrix::from_row_slice(images, imported.output.layout.len(), &data);
            npy::stage_rows(&mut outputs, &args.output, &shape, &m)?;
            (shape, "float32 (dequantised, as onnxruntime returns it)")
        }
    };
    if let Some(path) = &args.report {
        report.stage(&mut outputs, path)?;
    }
    outputs.commit()?;
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    Ok(format!(
        "wrote {}: {what} ({}) of {} on {images} inputs; {} backend, {cfg}\nmodel: {net}\n{}\n",
        args.output.display(),
        dims.join(", "),
        args.model.display(),
        args.link.backend.name(),
        report.summary()
    ))
}

/// Read X for an ONNX model: float32 (or float64) in the graph input's shape, quantised as the
/// model's first QuantizeLinear does.
pub fn read_onnx_input(path: &Path, imported: &onnx::Imported) -> Result<DMatrix<i8>, CliError> {
    let layout = imported.input.layout;
    let rows = npy::read_rows_any(path)?;
    let want = |n: &str| {
        let dims: Vec<String> = layout.shape(0).iter().skip(1).map(usize::to_string).collect();
        format!("({n}, {})", dims.join(", "))
    };
    let AnyRows::Float(r) = rows else {
        return Err(CliError::file(
            path,
            format!(
                "is int8, but an ONNX model takes what onnxruntime takes: float32 of shape {} (input '{}')",
                want("N"),
                imported.input.name
            ),
        ));
    };
    if r.shape[1..] != layout.shape(0)[1..] {
        let got: Vec<String> = r.shape.iter().map(usize::to_string).collect();
        return Err(CliError::file(
            path,
            format!(
                "has shape ({}) but the model's input '{}' is {}",
                got.join(", "),
                imported.input.name,
                want("N")
            ),
        ));
    }
    if let Some(bad) = r.data.iter().find(|v| !v.is_finite()) {
        return Err(CliError::file(path, format!("holds {bad}: float inputs must be finite")));
    }
    let n = r.data.nrows();
    // rows in C order are the ONNX samples as they lie in memory
    let flat: Vec<f32> =
        (0..n).flat_map(|i| r.data.row(i).iter().map(|&v| v as f32).collect::<Vec<_>>()).collect();
    Ok(imported.network.quantize_input(&imported.rows_from_onnx(n, &flat)))
}

/// Read X for `net`: int8 as is, floats quantised with the input scale; the shape must be
/// (N, H, W, C) of the model's input, or (N, H·W·C).
pub fn read_input(path: &Path, net: &Network) -> Result<DMatrix<i8>, CliError> {
    let input = net.input();
    let rows = npy::read_rows_any(path)?;
    let shape = match &rows {
        AnyRows::Int8(r) => &r.shape,
        AnyRows::Float(r) => &r.shape,
    };
    let rest = &shape[1..];
    let image = [input.h, input.w, input.c];
    if rest != image && rest != [input.len()] && !(input.is_flat() && rest == [input.c]) {
        let want = if input.is_flat() {
            format!("(N, {})", input.c)
        } else {
            format!("(N, {}, {}, {}) NHWC or (N, {})", input.h, input.w, input.c, input.len())
        };
        let got: Vec<String> = shape.iter().map(usize::to_string).collect();
        return Err(CliError::file(
            path,
            format!("has shape ({}) but the model takes {input} inputs: X must be {want}", got.join(", ")),
        ));
    }
    match rows {
        AnyRows::Int8(r) => Ok(r.data),
        AnyRows::Float(r) => {
            if let Some(bad) = r.data.iter().find(|v| !v.is_finite()) {
                return Err(CliError::file(path, format!("holds {bad}: float inputs must be finite")));
            }
            Ok(net.quantize_input(&r.data.map(|v| v as f32)))
        }
    }
}

fn stage_output(
    outputs: &mut crate::output::Outputs,
    path: &Path,
    shape: &[usize],
    y: &Output,
    float: Option<DMatrix<f32>>,
) -> Result<(), CliError> {
    match (y, float) {
        (_, Some(f)) => npy::stage_rows(outputs, path, shape, &f),
        (Output::Raw(y), None) => npy::stage_rows(outputs, path, shape, y),
        (Output::Int8(y), None) => npy::stage_rows(outputs, path, shape, y),
    }
}

/// Open the device the flags ask for and run the network; a layer that cannot fit the
/// configuration is bad input (the memory flags), anything else is an internal failure.
pub fn compute(
    link: &LinkArgs,
    cfg: &Config,
    net: &Network,
    x: &DMatrix<i8>,
    resident: bool,
) -> Result<(Output, RunReport), CliError> {
    for (m, k, n) in net.gemms(x.nrows()) {
        crate::limits::check_workload(cfg, m, &[(k, n)], driver::OutputKind::Int8, false)?;
    }
    let transport = Link::open(link, cfg)?;
    let timeout = transport.timeout();
    let failed = |e: DriverError| crate::backend::driver_error(link.backend, e);
    let mut device = Device::open_with_timeout(transport, cfg, timeout).map_err(failed)?;
    let too_small = |e: DriverError| match e {
        DriverError::Compile(e @ CompileError::TooSmall { .. }) => {
            CliError::input("--scratch-rows", e.to_string())
        }
        other => failed(other),
    };
    let (y, upload) = if resident {
        let (before, c0) = (device.stats(), device.transport().cycles());
        let tiles = net.upload(&mut device, cfg.scratch_rows() / 2).map_err(failed)?;
        let (after, c1) = (device.stats(), device.transport().cycles());
        let (tiles_stored, tiles_all) = tiles.stored();
        let upload = Upload {
            tiles_stored,
            tiles: tiles_all,
            words_sent: after.words_sent - before.words_sent,
            words_received: after.words_received - before.words_received,
            cycles: c1.zip(c0).map(|(a, b)| a - b),
        };
        (net.run_resident(&mut device, x, &tiles).map_err(too_small)?, Some(upload))
    } else {
        (net.run(&mut device, x).map_err(too_small)?, None)
    };
    let report = RunReport::collect(&mut device, link.backend, x.nrows(), net.gemms(x.nrows()), upload)
        .map_err(failed)?;
    Ok((y, report))
}
