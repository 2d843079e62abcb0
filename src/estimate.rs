//! `protobrain estimate`: how fast, how much energy and power, for a GEMM or an MLP on any
//! configuration, measured on the cycle-exact native model (the `estimate` crate).
//!
//! ```text
//!  --gemm M,K,N | --model model.json|.onnx [--batch M] ──► estimate::Workload (random or zero X)
//!  --preset/--dim/..., --clock, --link-*, --tech ──► Config, Options
//!                                     estimate() ──► table on stdout, --json out.json
//!  --topology FILE.csv ──► estimate::topology::parse ──► one GEMM per layer, in parallel
//!                          (progress bar on a terminal) ──► per-layer table, --json, --csv, --svg
//! ```
//!
//! Every check runs before the simulation; the JSON is written atomically.

use std::path::{Path, PathBuf};

use ::estimate::{estimate, EstimateError, Input, Link, Options, TechTable, Workload};
use clap::Args;
use driver::CompileError;
use spec::Config;

use crate::config_args::ConfigArgs;
use crate::error::{describe_io, CliError};

/// Arguments of `protobrain estimate`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("workload").required(true).args(["gemm", "model", "topology"]))]
pub struct EstimateArgs {
    /// One layer relu(X W + b) with X: M x K and W: K x N, random int8 weights.
    #[arg(long, value_name = "M,K,N", conflicts_with = "model")]
    pub gemm: Option<String>,

    /// A network: a model file (docs/model-format.md) or an int8 ONNX model (docs/onnx.md).
    #[arg(short, long, value_name = "model.json|model.onnx")]
    pub model: Option<PathBuf>,

    /// A SCALE-Sim topology file (conv or GEMM layout): every layer estimated as a GEMM, in
    /// parallel, with a per-layer report (docs/estimates.md).
    #[arg(long, value_name = "FILE.csv")]
    pub topology: Option<PathBuf>,

    /// With --topology: write the per-layer report as CSV here (SCALE-Sim's COMPUTE_REPORT.csv
    /// columns first).
    #[arg(long, value_name = "out.csv")]
    pub csv: Option<PathBuf>,

    /// With --topology: plot cycles and utilisation per layer here (SVG).
    #[arg(long, value_name = "out.svg")]
    pub svg: Option<PathBuf>,

    /// Rows of X (inferences) for --model.
    #[arg(long, value_name = "M", default_value_t = 256)]
    pub batch: usize,

    /// Core clock in MHz [default: the preset's: tpu-v1 700, ecp5-* 50, ice40-up5k 24,
    /// default 100].
    #[arg(long, value_name = "MHz")]
    pub clock: Option<f64>,

    /// Host link bandwidth, 32-bit words per core cycle each way [default: unlimited, one
    /// word per cycle, the stream ports' rate].
    #[arg(long, value_name = "F", conflicts_with = "link_baud")]
    pub link_words_per_cycle: Option<f64>,

    /// Host link as a UART of this many baud (8N1: 10 bits per byte, 4 bytes per word) at
    /// the clock; e.g. 1000000 for the boards' UART.
    #[arg(long, value_name = "BAUD")]
    pub link_baud: Option<f64>,

    /// Technology table: 45nm (Horowitz, ISSCC 2014), 28nm (scaled), or a TOML file in the
    /// format of estimate/tech/horowitz-45nm.toml.
    #[arg(long, value_name = "45nm|28nm|FILE", default_value = "45nm")]
    pub tech: String,

    /// Make X all zeros instead of random int8 (the data dependence of the energy).
    #[arg(long)]
    pub zeros: bool,

    /// Seed of the random X.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Write the estimate as JSON here.
    #[arg(long, value_name = "out.json")]
    pub json: Option<PathBuf>,

    /// Double buffering of --gemm and MLP models: chunks alternate between the memories'
    /// halves so data moves while the array computes (auto: where estimated faster; whole:
    /// never, the schedule before the banked memories; double: wherever it fits).
    #[arg(long, value_enum, default_value_t = BufferingArg::Auto)]
    pub buffering: BufferingArg,

    /// The device.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// `--buffering`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BufferingArg {
    /// Double buffer where estimated faster.
    Auto,
    /// Never double buffer.
    Whole,
    /// Double buffer wherever it fits.
    Double,
}

impl From<BufferingArg> for driver::Buffering {
    fn from(b: BufferingArg) -> Self {
        match b {
            BufferingArg::Auto => driver::Buffering::Auto,
            BufferingArg::Whole => driver::Buffering::Whole,
            BufferingArg::Double => driver::Buffering::Double,
        }
    }
}

/// The nominal clock of a preset, MHz: the TPU paper's 700 MHz for tpu-v1, the bitstreams'
/// clocks (docs/fpga.md) for the FPGA presets, 100 MHz otherwise.
pub fn nominal_clock_mhz(preset: &str) -> f64 {
    match preset {
        "tpu-v1" => 700.0,
        "ice40-up5k" => 24.0,
        "ecp5-25k" | "ecp5-85k" => 50.0,
        _ => 100.0,
    }
}

/// `A,B,C` as three positive integers.
pub fn parse_gemm(flag: &str, text: &str) -> Result<(usize, usize, usize), CliError> {
    match parse_list(flag, text)?.as_slice() {
        &[m, k, n] => Ok((m, k, n)),
        other => Err(CliError::input(
            flag,
            format!("expected M,K,N (three numbers), got {} in '{text}'", other.len()),
        )),
    }
}

/// `A,B,...` as positive integers.
pub fn parse_list(flag: &str, text: &str) -> Result<Vec<usize>, CliError> {
    text.split(',')
        .map(|t| match t.trim().parse::<usize>() {
            Ok(v) if v > 0 => Ok(v),
            _ => {
                Err(CliError::input(flag, format!("'{}' is not a positive integer (in '{text}')", t.trim())))
            }
        })
        .collect()
}

/// Clocks `--clock` accepts, MHz: 1 kHz to 100 GHz.
pub const CLOCK_RANGE_MHZ: (f64, f64) = (1e-3, 1e5);

/// A clock in MHz within [`CLOCK_RANGE_MHZ`].
pub fn check_clock(mhz: f64) -> Result<f64, CliError> {
    let (lo, hi) = CLOCK_RANGE_MHZ;
    if mhz.is_finite() && (lo..=hi).contains(&mhz) {
        Ok(mhz)
    } else {
        // as the user would write it: 1e-300, not 300 digits of 0.000...
        let got = if mhz == 0.0 || (1e-6..1e12).contains(&mhz.abs()) {
            format!("{mhz}")
        } else {
            format!("{mhz:e}")
        };
        Err(CliError::input("--clock", format!("must be a frequency in MHz from {lo} to {hi}, got {got}")))
    }
}

/// `45nm`, `28nm` or a TOML file.
pub fn load_tech(spec: &str) -> Result<TechTable, CliError> {
    match spec {
        "45nm" => Ok(TechTable::horowitz_45nm()),
        "28nm" => Ok(TechTable::scaled_28nm()),
        path => {
            let p = Path::new(path);
            let text = std::fs::read_to_string(p).map_err(|e| {
                CliError::file(p, format!("cannot read the technology table: {}", describe_io(&e)))
            })?;
            TechTable::from_toml(&text).map_err(|e| CliError::file(p, e.to_string()))
        }
    }
}

/// An estimate failure as a CLI error: what the user can fix is bad input.
pub fn estimate_error(e: EstimateError) -> CliError {
    match e {
        EstimateError::Compile(e @ CompileError::TooSmall { .. }) => {
            CliError::input("--scratch-rows", e.to_string())
        }
        EstimateError::Compile(e) => CliError::input("workload", e.to_string()),
        EstimateError::Link(p) => CliError::input("--link-words-per-cycle", p),
        EstimateError::Clock(_) => CliError::input("--clock", e.to_string()),
        EstimateError::Workload(p) => CliError::input("workload", p),
        other => CliError::internal("native model", other.to_string()),
    }
}

/// Refuse a workload whose memory would exceed the limit, before anything is allocated. An MLP
/// whose program has no write-backs (one chain on chip) is estimated as it is compiled
/// (`streamed`), other workloads' streams are recorded whole.
fn check_memory(
    cfg: &Config,
    m: usize,
    shapes: &[(usize, usize)],
    kind: driver::OutputKind,
    streamed: bool,
) -> Result<(), CliError> {
    let plan = driver::plan(cfg, m, shapes, kind).map_err(|e| estimate_error(e.into()))?;
    let bytes = if streamed && plan.segments.len() == 1 {
        crate::limits::streamed_workload_bytes(cfg, m, shapes, kind)
    } else {
        crate::limits::workload_bytes(cfg, m, shapes, kind)
    };
    let bytes = bytes.map_err(|e| estimate_error(e.into()))?;
    let dims: Vec<String> = shapes.iter().map(|(k, n)| format!("{k}x{n}")).collect();
    crate::limits::check(
        "workload",
        &format!("estimating M = {m} through {} on {cfg}", dims.join(", ")),
        bytes,
    )
}

fn workload(args: &EstimateArgs, cfg: &Config) -> Result<Workload, CliError> {
    let input = if args.zeros { Input::Zeros } else { Input::Random { seed: args.seed } };
    if let Some(text) = &args.gemm {
        let (m, k, n) = parse_gemm("--gemm", text)?;
        check_memory(cfg, m, &[(k, n)], driver::OutputKind::Int8, true)?;
        return Workload::gemm(m, k, n, input).map_err(estimate_error);
    }
    let path = args.model.as_ref().expect("clap requires --gemm or --model");
    if args.batch == 0 {
        return Err(CliError::input("--batch", "must be at least 1"));
    }
    let net = crate::infer::load_network(path)?;
    let name = match net.to_mlp() {
        Some(mlp) => {
            let shapes: Vec<(usize, usize)> = mlp.widths().windows(2).map(|w| (w[0], w[1])).collect();
            check_memory(cfg, args.batch, &shapes, mlp.output(), true)?;
            let widths: Vec<String> = mlp.widths().iter().map(usize::to_string).collect();
            format!("MLP {} ({})", widths.join("-"), path.display())
        }
        None => {
            for (m, k, n) in net.gemms(args.batch) {
                check_memory(cfg, m, &[(k, n)], driver::OutputKind::Int8, false)?;
            }
            format!("network {} ({})", net, path.display())
        }
    };
    Workload::network(name, net, args.batch, input).map_err(estimate_error)
}

/// Run the command; the report for stdout.
pub fn run(args: &EstimateArgs) -> Result<String, CliError> {
    if args.topology.is_none() {
        for (flag, given) in [("--csv", args.csv.is_some()), ("--svg", args.svg.is_some())] {
            if given {
                return Err(CliError::input(flag, "is a per-layer report: it needs --topology FILE.csv"));
            }
        }
    }
    crate::output::check_outputs(&[
        ("--json", args.json.as_deref()),
        ("--csv", args.csv.as_deref()),
        ("--svg", args.svg.as_deref()),
    ])?;
    let cfg: Config = args.config.config()?;
    let mhz = check_clock(args.clock.unwrap_or_else(|| nominal_clock_mhz(&args.config.preset)))?;
    let clock_hz = mhz * 1e6;
    let link = match (args.link_words_per_cycle, args.link_baud) {
        (Some(f), _) => Some(Link::new(f).map_err(estimate_error)?),
        (None, Some(baud)) => {
            Some(Link::uart(baud, clock_hz).map_err(|e| CliError::input("--link-baud", e.to_string()))?)
        }
        (None, None) => None,
    };
    let tech = load_tech(&args.tech)?;
    let opts = Options { clock_hz, link, tech, buffering: args.buffering.into() };
    if let Some(path) = &args.topology {
        return crate::topology::run(args, path, &cfg, &opts);
    }
    let work = workload(args, &cfg)?;
    let est = estimate(&cfg, &work, &opts).map_err(estimate_error)?;
    let mut out = est.to_string();
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&est).expect("an estimate always serialises");
        crate::output::write_atomically(path, |w| w.write_all(json.as_bytes()))?;
        out += &format!("\nwrote {}\n", path.display());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_shapes_parse_or_name_the_flag() {
        assert_eq!(parse_gemm("--gemm", "1024, 256,64").unwrap(), (1024, 256, 64));
        let e = parse_gemm("--gemm", "1,2").unwrap_err();
        assert_eq!(e.to_string(), "--gemm: expected M,K,N (three numbers), got 2 in '1,2'");
        let e = parse_list("--dims", "2,0,4").unwrap_err();
        assert_eq!(e.to_string(), "--dims: '0' is not a positive integer (in '2,0,4')");
        assert!(parse_list("--m", "8,x").is_err());
        assert_eq!(check_clock(0.0).unwrap_err().subject, "--clock");
        assert!(
            check_clock(1e-300).is_err() && check_clock(f64::INFINITY).is_err() && check_clock(1e9).is_err()
        );
        assert_eq!(check_clock(30.0).unwrap(), 30.0);
    }

    #[test]
    fn tech_tables_by_name_or_file() {
        assert_eq!(load_tech("45nm").unwrap().node_nm, 45.0);
        assert_eq!(load_tech("28nm").unwrap().node_nm, 28.0);
        let e = load_tech("/nonexistent/t.toml").unwrap_err();
        assert_eq!(
            e.to_string(),
            "/nonexistent/t.toml: cannot read the technology table: no such file or directory"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.toml");
        std::fs::write(&p, "name = 1").unwrap();
        let e = load_tech(p.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("not a technology table"), "{e}");
    }

    #[test]
    fn nominal_clocks() {
        assert_eq!(nominal_clock_mhz("tpu-v1"), 700.0);
        assert_eq!(nominal_clock_mhz("default"), 100.0);
        // the FPGA presets' clocks are their boards' bitstream clocks
        for b in [hdl::boards::Board::Icebreaker, hdl::boards::Board::Ulx3s25f, hdl::boards::Board::Ulx3s85f]
        {
            assert_eq!(nominal_clock_mhz(b.preset()), b.core_hz() as f64 / 1e6, "{b}");
        }
    }

    #[test]
    fn a_clock_out_of_range_is_shown_as_written() {
        let e = check_clock(1e-300).unwrap_err();
        assert!(e.to_string().ends_with("got 1e-300"), "{e}");
        let e = check_clock(2e5).unwrap_err();
        assert!(e.to_string().ends_with("got 200000"), "{e}");
        assert!(check_clock(f64::NAN).unwrap_err().to_string().ends_with("got NaN"));
    }
}
