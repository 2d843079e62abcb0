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
    let cfg = args.config.config()?;
    check_outputs(&args.output, args.report.as_deref())?;
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
    // both outputs are serialised before either is written: a failure leaves neither
    if let Some(path) = &args.report {
        report.save(path)?;
    }
    let written = write_output(&args.output, &shape, &y, args.float.then(|| net.output_scale()));
    if let Err(e) = written {
        if let Some(path) = &args.report {
            let _ = std::fs::remove_file(path);
        }
        return Err(e);
    }
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

/// Two outputs on one path would overwrite each other.
fn check_outputs(output: &Path, report: Option<&Path>) -> Result<(), CliError> {
    if report == Some(output) {
        return Err(CliError::input(
            "--report",
            format!("{} is also the output (-o): give two paths", output.display()),
        ));
    }
    std::iter::once(output).chain(report).try_for_each(check_output_dir)
}

/// An output file's directory must exist (checked before any work, so that a run does not end
/// in an error after minutes of simulation).
pub fn check_output_dir(path: &Path) -> Result<(), CliError> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(CliError::file(path, format!("cannot write here: {} is not a directory", dir.display())));
    }
    Ok(())
}

/// Read a model file as a network.
pub fn load_network(path: &Path) -> Result<Network, CliError> {
    Ok(ModelFile::load(path).map_err(|e| CliError::file(path, e.problem))?.model)
}

/// Read X for `net`: int8 as is, floats quantised with the input scale; the shape must be
/// (N, H, W, C) of the model's input, or (N, H·W·C).
pub fn read_input(path: &Path, net: &Network) -> Result<DMatrix<i8>, CliError> {
    let input = net.input();
    let shape = match &npy::read_rows_any(path)? {
        AnyRows::Int8(r) => r.shape.clone(),
        AnyRows::Float(r) => r.shape.clone(),
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
    match npy::read_rows_any(path)? {
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

fn write_output(path: &Path, shape: &[usize], y: &Output, scale: Option<f64>) -> Result<(), CliError> {
    match (y, scale) {
        (Output::Raw(y), Some(s)) => npy::write_rows(path, shape, &y.map(|v| (f64::from(v) * s) as f32)),
        (Output::Int8(y), Some(s)) => npy::write_rows(path, shape, &y.map(|v| (f64::from(v) * s) as f32)),
        (Output::Raw(y), None) => npy::write_rows(path, shape, y),
        (Output::Int8(y), None) => npy::write_rows(path, shape, y),
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
    let transport = Link::open(link, cfg)?;
    let timeout = transport.timeout();
    let failed =
        |e: DriverError| CliError::internal(format!("--backend {}", link.backend.name()), e.to_string());
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
