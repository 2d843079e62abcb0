//! `protobrain matmul`: one layer `Y = act(X W + b)` from `.npy` files.
//!
//! ```text
//!  X.npy int8 (M, K) ──┐
//!  W.npy int8 (K, N) ──┼─> driver (tiling) ─> backend ──> acc + b (int32) ──┬─ --raw ──> Y.npy int32 (M, N)
//!  B.npy int32 (N,) ───┘                                 └─ requantise (MULT, SHIFT),
//!                                                           ReLU, saturate ──> Y.npy int8 (M, N)
//! ```
//!
//! Every check (flags, files, dtypes, shapes) runs before the backend; the output is written
//! atomically and only on success.

use driver::{Device, DriverError, Layer, Output, OutputKind};
use nalgebra::DVector;
use spec::arith::MAX_SHIFT;
use spec::Quant;

use crate::backend::{Link, RunReport};
use crate::cli::{LayerArgs, MatmulArgs};
use crate::error::CliError;
use crate::npy;

/// What the requantisation flags asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// int32 `acc + b`.
    Raw,
    /// int8 `act(acc + b)` with this quantisation.
    Quantized(Quant),
}

/// Turn the requantisation flags into a [`Mode`], rejecting conflicts and out-of-range values.
pub fn mode(args: &LayerArgs) -> Result<Mode, CliError> {
    if args.raw {
        let conflicts = [
            ("--relu", args.relu),
            ("--multiplier", args.multiplier.is_some()),
            ("--shift", args.shift.is_some()),
            ("--scale", args.scale.is_some()),
        ];
        if let Some((flag, _)) = conflicts.iter().find(|(_, given)| *given) {
            return Err(CliError::input(
                "--raw",
                format!(
                    "cannot be combined with {flag}: raw output is int32 acc + b, \
                     before requantisation and ReLU"
                ),
            ));
        }
        return Ok(Mode::Raw);
    }
    let quant = match (args.scale, args.multiplier, args.shift) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
            return Err(CliError::input(
                "--scale",
                "cannot be combined with --multiplier/--shift: \
                 give either a real scale or a multiplier and shift",
            ));
        }
        (Some(scale), None, None) => {
            Quant::from_scale(scale).map_err(|e| CliError::input("--scale", e.to_string()))?
        }
        (None, m, s) => {
            let m = m.unwrap_or(1);
            let s = s.unwrap_or(0);
            let multiplier = u16::try_from(m)
                .map_err(|_| CliError::input("--multiplier", format!("must be in 0..=65535, got {m}")))?;
            let shift = u8::try_from(s)
                .ok()
                .filter(|s| *s <= MAX_SHIFT)
                .ok_or_else(|| CliError::input("--shift", format!("must be in 0..={MAX_SHIFT}, got {s}")))?;
            Quant::new(multiplier, shift, false).map_err(|e| CliError::input("--shift", e.to_string()))?
        }
    };
    Ok(Mode::Quantized(quant.with_relu(args.relu)))
}

/// A layer read and checked from its flags and files.
pub struct LoadedLayer {
    /// X, int8 (M, K).
    pub x: nalgebra::DMatrix<i8>,
    /// W, b and the quantisation.
    pub layer: Layer,
    /// Raw int32 or requantised int8 output.
    pub mode: Mode,
    /// What was computed, for the summary line.
    pub formula: String,
}

/// Read X, W, b and the flags; every check of the layer happens here.
pub fn load_layer(args: &LayerArgs) -> Result<LoadedLayer, CliError> {
    let mode = mode(args)?;
    let x = npy::read_matrix::<i8>(&args.input)?;
    let w = npy::read_matrix::<i8>(&args.weights)?;
    if w.nrows() != x.ncols() {
        return Err(CliError::file(
            &args.weights,
            format!(
                "has {} rows but {} has {} columns: W must be (K, N) for X (M, K), K = {}",
                w.nrows(),
                args.input.display(),
                x.ncols(),
                x.ncols()
            ),
        ));
    }
    let bias = match &args.bias {
        Some(path) => {
            let b = npy::read_vector::<i32>(path)?;
            if b.len() != w.ncols() {
                return Err(CliError::file(
                    path,
                    format!(
                        "bias has {} elements but {} has N = {} columns",
                        b.len(),
                        args.weights.display(),
                        w.ncols()
                    ),
                ));
            }
            b
        }
        None => DVector::zeros(w.ncols()),
    };

    let (m, k, n) = (x.nrows(), x.ncols(), w.ncols());
    let plus_b = if args.bias.is_some() { " + b" } else { "" };
    let formula = format!("X ({m}, {k}) x W ({k}, {n}){plus_b}");
    let quant = match mode {
        Mode::Raw => Quant::IDENTITY,
        Mode::Quantized(q) => q,
    };
    let layer = Layer::new(w, bias, quant).map_err(|e| CliError::internal("compile", e.to_string()))?;
    Ok(LoadedLayer { x, layer, mode, formula })
}

/// Run the command: check, compute, write. Returns a one-line summary for stdout.
pub fn run(args: &MatmulArgs) -> Result<String, CliError> {
    crate::output::check_outputs(&[
        ("--output", Some(&args.output)),
        ("--report", args.report.as_deref()),
        ("--trace", args.link.trace.as_deref()),
    ])?;
    let LoadedLayer { x, layer, mode, formula } = load_layer(&args.layer)?;
    let quant = layer.quant();
    let (m, k, n) = (x.nrows(), layer.k(), layer.n());
    let cfg = args.config.config()?;
    let kind = if mode == Mode::Raw { OutputKind::Raw } else { OutputKind::Int8 };
    // fit and memory are checked before a backend is opened (an RTL model takes a while)
    // Device::layer runs the program as the compiler makes it
    crate::limits::check_workload(&cfg, m, &[(k, n)], kind, true)?;
    let link = Link::open(&args.link, &cfg)?;
    let timeout = link.timeout();
    let backend = args.link.backend;
    let failed = |e: DriverError| crate::backend::driver_error(backend, e);
    let mut dev = Device::open_with_timeout(link, &cfg, timeout).map_err(failed)?;
    let y = dev.layer(&x, &layer, kind).map_err(|e| match e {
        DriverError::Compile(c) => CliError::input("--scratch-rows", format!("{c} (for {cfg})")),
        e => failed(e),
    })?;
    let report = RunReport::collect(&mut dev, backend, m, vec![(m, k, n)], None).map_err(failed)?;
    let mut outputs = crate::output::Outputs::new();
    let described = match &y {
        Output::Raw(y) => {
            npy::stage_matrix(&mut outputs, &args.output, y)?;
            format!("int32 ({m}, {n}) = {formula}")
        }
        Output::Int8(y) => {
            npy::stage_matrix(&mut outputs, &args.output, y)?;
            format!(
                "int8 ({m}, {n}) = act({formula}); multiplier {}, shift {} (scale {}){}",
                quant.multiplier,
                quant.shift,
                quant.scale(),
                if quant.relu { ", ReLU" } else { "" }
            )
        }
    };
    if let Some(path) = &args.report {
        report.stage(&mut outputs, path)?;
    }
    outputs.commit()?;
    Ok(format!(
        "{}: {described}; {} backend, {cfg}\n{}",
        args.output.display(),
        backend.name(),
        report.summary()
    ))
}
