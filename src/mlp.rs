//! `protobrain mlp`: run a quantised MLP from a model file on int8 inputs, through the driver.
//!
//! ```text
//!  model.json ── ModelFile::load ──► QuantizedMlp (int8 W, int32 b, Quant per layer)
//!                                        │ compile_mlp for --preset/--dim/...
//!  X.npy int8 (M, K) ────────────────────┴──► Device::run on --backend ──┬─ raw ──► Y.npy int32 (M, N) logits
//!                                                                         └─ int8 ─► Y.npy int8 (M, N)
//! ```
//!
//! Every check (flags, model, input) runs before the backend; the output is written
//! atomically and only on success. Model files are described in `docs/model-format.md`.

use std::path::PathBuf;

use clap::Args;
use driver::quant::QuantizedMlp;
use driver::{CompileError, Device, DriverError, Output};
use nalgebra::DMatrix;
use protobrain::nn::ModelFile;
use spec::Config;

use crate::backend::{Link, LinkArgs, RunReport};
use crate::config_args::ConfigArgs;
use crate::error::CliError;
use crate::npy;

/// Arguments of `protobrain mlp`.
#[derive(Debug, Args)]
pub struct MlpArgs {
    /// The model: a protobrain model file (docs/model-format.md).
    #[arg(short, long, value_name = "model.json")]
    pub model: PathBuf,

    /// Inputs X: int8 .npy of shape (M, K), K the model's inputs.
    #[arg(short, long, value_name = "X.npy")]
    pub input: PathBuf,

    /// Where to write Y: int32 .npy (M, N) logits if the model's output is raw, else int8.
    #[arg(short, long, value_name = "Y.npy")]
    pub output: PathBuf,

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
pub fn run(args: &MlpArgs) -> Result<String, CliError> {
    crate::output::check_outputs(&[
        ("--output", Some(&args.output)),
        ("--report", args.report.as_deref()),
        ("--trace", args.link.trace.as_deref()),
    ])?;
    let cfg = args.config.config()?;
    let file = ModelFile::load(&args.model).map_err(|e| CliError::file(&args.model, e.problem))?;
    let model = &file.model;
    let x = npy::read_matrix::<i8>(&args.input)?;
    if x.ncols() != model.k() {
        return Err(CliError::file(
            &args.input,
            format!(
                "has {} columns but the model {} takes K = {} inputs: X must be (M, {})",
                x.ncols(),
                args.model.display(),
                model.k(),
                model.k()
            ),
        ));
    }
    let (y, report) = compute(&args.link, &cfg, model, &x)?;
    let mut outputs = crate::output::Outputs::new();
    let (m, n) = y.shape();
    let what = match &y {
        Output::Raw(y) => {
            npy::stage_matrix(&mut outputs, &args.output, y)?;
            "int32 logits"
        }
        Output::Int8(y) => {
            npy::stage_matrix(&mut outputs, &args.output, y)?;
            "int8"
        }
    };
    if let Some(path) = &args.report {
        report.stage(&mut outputs, path)?;
    }
    outputs.commit()?;
    let widths: Vec<String> = model.widths().iter().map(usize::to_string).collect();
    Ok(format!(
        "wrote {}: {what} ({m}, {n}) of MLP {} ({}) on {m} inputs; {} backend, {cfg}\n{}\n",
        args.output.display(),
        widths.join("-"),
        args.model.display(),
        args.link.backend.name(),
        report.summary()
    ))
}

/// Open the device the flags ask for and run the model; a model that cannot fit the
/// configuration is bad input (the memory flags), anything else is an internal failure.
fn compute(
    link: &LinkArgs,
    cfg: &Config,
    model: &QuantizedMlp,
    x: &DMatrix<i8>,
) -> Result<(Output, RunReport), CliError> {
    let shapes: Vec<(usize, usize)> = model.widths().windows(2).map(|w| (w[0], w[1])).collect();
    crate::limits::check_workload(cfg, x.nrows(), &shapes, model.output())?;
    let transport = Link::open(link, cfg)?;
    let timeout = transport.timeout();
    let failed = |e: DriverError| crate::backend::driver_error(link.backend, e);
    let mut device = Device::open_with_timeout(transport, cfg, timeout).map_err(failed)?;
    let y = model.run(&mut device, x).map_err(|e| match e {
        DriverError::Compile(e @ CompileError::TooSmall { .. }) => {
            CliError::input("--scratch-rows", e.to_string())
        }
        other => failed(other),
    })?;
    let layers: Vec<(usize, usize)> = model.widths().windows(2).map(|w| (w[0], w[1])).collect();
    let report = RunReport::collect(&mut device, link.backend, x.nrows(), layers).map_err(failed)?;
    Ok((y, report))
}
