//! `protobrain verify`: bounded model checking of the stream contract on the emitted core (or
//! a given Verilog file), one line per property (`hdl::formal`, docs/verification.md).

use std::io::Write as _;
use std::path::PathBuf;

use clap::Args;
use hdl::formal::{self, Outcome, Property, Solver, Verdict};
use spec::Config;

use crate::config_args::ConfigArgs;
use crate::error::{describe_io, CliError};

/// Deepest BMC run accepted: the checker's write counters are 10 bits wide.
pub const MAX_DEPTH: usize = 250;

/// Arguments of `protobrain verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The configuration [default without config flags: DIM 2, 4 scratchpad rows, 4
    /// accumulator rows, the formal default].
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Check this Verilog (top module protobrain_core for the configuration) instead of
    /// emitting it.
    #[arg(long, value_name = "FILE")]
    pub verilog: Option<PathBuf>,
    /// BMC depth in cycles from reset, 1..=250 [default: 40; framing 10, no-write 13].
    #[arg(long, value_name = "N")]
    pub depth: Option<usize>,
    /// Check only this property (repeatable): axi-out, framing, sync-bound, no-write, cover,
    /// sync-tight [default: all].
    #[arg(long, value_name = "NAME")]
    pub property: Vec<String>,
    /// SMT solver: yices or z3.
    #[arg(long, value_name = "NAME", default_value = "yices")]
    pub solver: String,
}

/// The configuration `verify` checks: the given one, or DIM 2 with 4 + 4 rows without flags.
fn config(args: &ConfigArgs) -> Result<Config, CliError> {
    let untouched = args.preset == "default"
        && args.dim.is_none()
        && args.scratch_rows.is_none()
        && args.acc_rows.is_none()
        && args.lanes.is_none();
    if untouched {
        return Config::new(2, 4, 4).map_err(|e| CliError::internal("verify", e.to_string()));
    }
    let cfg = args.config()?;
    if cfg.lanes().get() > 1 {
        // the properties are written against the 32-bit ports (hdl/src/formal)
        return Err(CliError::input(
            "--lanes",
            format!("the formal properties cover the 32-bit link only (LANES 1), got LANES {}", cfg.lanes()),
        ));
    }
    Ok(cfg)
}

/// Runs the checks, printing one line per property as it finishes; an error if any fails.
pub fn run(args: &VerifyArgs) -> Result<String, CliError> {
    let cfg = config(&args.config)?;
    if let Some(depth) = args.depth.filter(|&d| d == 0 || d > MAX_DEPTH) {
        return Err(CliError::input("--depth", format!("must be in 1..={MAX_DEPTH}, got {depth}")));
    }
    let solver = Solver::from_name(&args.solver).ok_or_else(|| {
        CliError::input("--solver", format!("unknown solver `{}`: yices or z3", args.solver))
    })?;
    let properties: Vec<Property> = if args.property.is_empty() {
        Property::ALL.to_vec()
    } else {
        args.property
            .iter()
            .map(|name| {
                Property::from_name(name).ok_or_else(|| {
                    let all: Vec<&str> = Property::ALL.iter().map(|p| p.name()).collect();
                    CliError::input(
                        "--property",
                        format!("unknown property `{name}`: one of {}", all.join(", ")),
                    )
                })
            })
            .collect::<Result<_, _>>()?
    };
    let verilog = match &args.verilog {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| CliError::file(path, describe_io(&e)))?;
            if !text.contains("module protobrain_core(") {
                return Err(CliError::file(path, "has no module protobrain_core"));
            }
            text
        }
        None => hdl::emit::verilog(&cfg).map_err(|e| CliError::internal("emit", e.to_string()))?,
    };

    let mut out = std::io::stdout();
    let _ = writeln!(
        out,
        "verify {cfg}: BMC depth {}, solver {}, SYNC bound {} cycles",
        args.depth.map_or("per property".to_string(), |d| d.to_string()),
        solver.name(),
        formal::sync_bound(&cfg)
    );
    let mut failed = 0;
    for &property in &properties {
        let depth = args.depth.unwrap_or(property.default_depth());
        let outcome = check_one(&verilog, &cfg, property, depth, solver)?;
        if !outcome.holds() {
            failed += 1;
        }
        let _ = writeln!(out, "{outcome}");
        let _ = out.flush();
    }
    if failed > 0 {
        return Err(CliError::internal(
            "verify",
            format!("{failed} of {} properties failed", properties.len()),
        ));
    }
    Ok(format!("all {} properties hold\n", properties.len()))
}

/// One property in its own work directory, kept (and named in the outcome) only if it fails.
fn check_one(
    verilog: &str,
    cfg: &Config,
    property: Property,
    depth: usize,
    solver: Solver,
) -> Result<Outcome, CliError> {
    let dir = tempfile::Builder::new()
        .prefix(&format!("protobrain-verify-{}-", property.name()))
        .tempdir()
        .map_err(|e| {
        CliError::internal("verify", format!("cannot create a work directory: {}", describe_io(&e)))
    })?;
    let outcome = formal::check(verilog, cfg, property, depth, solver, dir.path());
    let keep =
        !matches!(outcome, Ok(Outcome { verdict: Verdict::Proven { .. } | Verdict::Covered { .. }, .. }));
    if keep {
        // the counterexample, logs and design stay for inspection
        let _ = dir.keep();
    }
    outcome.map_err(|e| CliError::internal("verify", e.to_string()))
}
