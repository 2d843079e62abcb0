//! `protobrain infer` (alias `mlp`): run a quantised network from a model file — conv2d,
//! maxpool2d, global_avg_pool, flatten and dense layers — through the driver.
//!
//! ```text
//!  model.json ── ModelFile::load ──► driver::Network (layers, scales, output kind)
//!                                        │ conv2d/dense: GEMMs compiled for --preset/--dim/...
//!  X.npy ── int8 as is, or float ────────┴──► Network::run on --backend ──┬─ raw ──► Y.npy int32 logits
//!          (quantised with the model's                                      └─ int8 ─► Y.npy int8
//!           input scale)                                  --float: either one dequantised, float32
//! ```
//!
//! Every check (flags, model, input shape and dtype, output paths) runs before the backend
//! opens; the outputs are written atomically and only on success. Model files are described in
//! `docs/model-format.md`.

use std::path::{Path, PathBuf};

use clap::Args;
use driver::quant::quantize_i8;
use driver::{CompileError, Device, DriverError, Network, Output};
use nalgebra::DMatrix;
use protobrain::nn::ModelFile;
use spec::Config;

use crate::backend::{Link, LinkArgs, RunReport};
use crate::config_args::ConfigArgs;
use crate::error::CliError;
use crate::npy::{self, AnyRows};

/// Arguments of `protobrain infer`.
#[derive(Debug, Args)]
pub struct InferArgs {
    /// The model: a protobrain model file (docs/model-format.md).
    #[arg(short, long, value_name = "model.json")]
    pub model: PathBuf,

    /// Inputs X: (N, H, W, C) NHWC images or (N, H·W·C) rows; int8, or float32/float64
    /// (quantised with the model's input scale: round half away from zero, clamped to ±127).
    #[arg(short, long, value_name = "X.npy")]
    pub input: PathBuf,

    /// Where to write Y: int32 logits if the model's output is raw, else int8; (N, K) for a
    /// flat output, (N, H, W, C) for images.
    #[arg(short, long, value_name = "Y.npy")]
    pub output: PathBuf,

    /// Write Y as float32, dequantised (each value times the model's output scale).
    #[arg(long)]
    pub float: bool,

    /// Which device runs the network, and how to reach it.
    #[command(flatten)]
    pub link: LinkArgs,

    /// Write a JSON report (cycles, MACs, utilization, words moved, Config) here.
    #[arg(long, value_name = "r.json")]
    pub report: Option<PathBuf>,

    /// The device the network is compiled for.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Run the command: check, compute, write. Returns the report for stdout.
pub fn run(args: &InferArgs) -> Result<String, CliError> {
    crate::output::check_outputs(&[
        ("--output", Some(&args.output)),
        ("--report", args.report.as_deref()),
        ("--trace", args.link.trace.as_deref()),
    ])?;
    let cfg = args.config.config()?;
    let net = load_network(&args.model)?;
    let x = read_input(&args.input, &net)?;
    let (y, report) = compute(&args.link, &cfg, &net, &x)?;
    let images = x.nrows();
    let out = net.output_shape();
    let mut shape = vec![images];
    if out.is_flat() {
        shape.push(out.c);
    } else {
        shape.extend([out.h, out.w, out.c]);
    }
    // both outputs are staged before either is put in place: a failure leaves neither
    let mut outputs = crate::output::Outputs::new();
    stage_output(&mut outputs, &args.output, &shape, &y, args.float.then(|| net.output_scale()))?;
    if let Some(path) = &args.report {
        report.stage(&mut outputs, path)?;
    }
    outputs.commit()?;
    let what = match (&y, args.float) {
        (_, true) => "float32 (dequantised)",
        (Output::Raw(_), false) => "int32 logits",
        (Output::Int8(_), false) => "int8",
    };
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

/// Read a model file as a network.
pub fn load_network(path: &Path) -> Result<Network, CliError> {
    Ok(ModelFile::load(path).map_err(|e| CliError::file(path, e.problem))?.model)
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
            let s = net.input_scale();
            Ok(r.data.map(|v| quantize_i8(v, s)))
        }
    }
}

fn stage_output(
    outputs: &mut crate::output::Outputs,
    path: &Path,
    shape: &[usize],
    y: &Output,
    scale: Option<f64>,
) -> Result<(), CliError> {
    match (y, scale) {
        (Output::Raw(y), Some(s)) => {
            npy::stage_rows(outputs, path, shape, &y.map(|v| (f64::from(v) * s) as f32))
        }
        (Output::Int8(y), Some(s)) => {
            npy::stage_rows(outputs, path, shape, &y.map(|v| (f64::from(v) * s) as f32))
        }
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
) -> Result<(Output, RunReport), CliError> {
    for (m, k, n) in net.gemms(x.nrows()) {
        crate::limits::check_workload(cfg, m, &[(k, n)], driver::OutputKind::Int8)?;
    }
    let transport = Link::open(link, cfg)?;
    let timeout = transport.timeout();
    let failed = |e: DriverError| crate::backend::driver_error(link.backend, e);
    let mut device = Device::open_with_timeout(transport, cfg, timeout).map_err(failed)?;
    let y = net.run(&mut device, x).map_err(|e| match e {
        DriverError::Compile(e @ CompileError::TooSmall { .. }) => {
            CliError::input("--scratch-rows", e.to_string())
        }
        other => failed(other),
    })?;
    let report =
        RunReport::collect(&mut device, link.backend, x.nrows(), net.gemms(x.nrows())).map_err(failed)?;
    Ok((y, report))
}
