//! `protobrain matmul`: one layer `Y = act(X W + b)` from `.npy` files.
//!
//! ```text
//!  X.npy int8 (M, K) ──┐
//!  W.npy int8 (K, N) ──┼─> backend ──> acc + b (int32) ──┬─ --raw ──> Y.npy int32 (M, N)
//!  B.npy int32 (N,) ───┘                                 └─ requantise (MULT, SHIFT),
//!                                                           ReLU, saturate ──> Y.npy int8 (M, N)
//! ```
//!
//! Every check (flags, files, dtypes, shapes) runs before the backend; the output is written
//! atomically and only on success.

use nalgebra::{DMatrix, DVector};
use spec::arith::MAX_SHIFT;
use spec::Quant;

use crate::cli::{Backend, MatmulArgs};
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
pub fn mode(args: &MatmulArgs) -> Result<Mode, CliError> {
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

/// Run the command: check, compute, write. Returns a one-line summary for stdout.
pub fn run(args: &MatmulArgs) -> Result<String, CliError> {
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
    let described = match mode {
        Mode::Raw => {
            let y = compute_raw(args.backend, &x, &w, &bias)?;
            npy::write_matrix(&args.output, &y)?;
            format!("int32 ({m}, {n}) = {formula}")
        }
        Mode::Quantized(q) => {
            let y = compute(args.backend, &x, &w, &bias, q)?;
            npy::write_matrix(&args.output, &y)?;
            format!(
                "int8 ({m}, {n}) = act({formula}); multiplier {}, shift {} (scale {}){}",
                q.multiplier,
                q.shift,
                q.scale(),
                if q.relu { ", ReLU" } else { "" }
            )
        }
    };
    Ok(format!("{}: {described}; {} backend", args.output.display(), args.backend.name()))
}

fn compute(
    backend: Backend,
    x: &DMatrix<i8>,
    w: &DMatrix<i8>,
    bias: &DVector<i32>,
    q: Quant,
) -> Result<DMatrix<i8>, CliError> {
    match backend {
        Backend::Golden => spec::golden::layer(x, w, bias, q).map_err(shape_bug),
    }
}

fn compute_raw(
    backend: Backend,
    x: &DMatrix<i8>,
    w: &DMatrix<i8>,
    bias: &DVector<i32>,
) -> Result<DMatrix<i32>, CliError> {
    match backend {
        Backend::Golden => spec::golden::layer_raw(x, w, bias).map_err(shape_bug),
    }
}

/// Shapes were checked above, so a shape error from a backend is a bug, not bad input.
fn shape_bug(e: spec::ShapeError) -> CliError {
    CliError::internal("backend", e.to_string())
}
