//! `protobrain sweep`: estimates over array sizes and batch sizes, in parallel, with plots.
//!
//! ```text
//!  --dims, --m, --gemm, --link-words-per-cycle ──► sim::estimate::sweep::run (rayon)
//!                                                   │ progress bar (indicatif) after 1 s
//!                                                   ▼
//!  -o DIR: utilization_vs_m.svg  dim_scaling.svg  energy_breakdown.svg  roofline.svg
//!  --json sweep.json: every estimate
//! ```

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sim::estimate::sweep::{self, SweepSpec};
use sim::estimate::{plots, si, Options};

use crate::error::CliError;
use crate::estimate::{check_clock, estimate_error, load_tech, parse_gemm, parse_list};

/// Arguments of `protobrain sweep`.
#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Array sizes (DIM) to compare.
    #[arg(long, value_name = "D,D,...", default_value = "2,4,8,16,32,64")]
    pub dims: String,

    /// Rows of X for the utilisation and roofline curves (K and N from --gemm).
    #[arg(long = "m", value_name = "M,M,...", default_value = "16,64,256,1024,4096")]
    pub ms: String,

    /// The GEMM compared across DIMs (cycles, energy, breakdown).
    #[arg(long, value_name = "M,K,N", default_value = "1024,256,256")]
    pub gemm: String,

    /// Scratchpad rows of every configuration.
    #[arg(long, value_name = "S", default_value_t = 4096)]
    pub scratch_rows: usize,

    /// Accumulator rows of every configuration.
    #[arg(long, value_name = "A", default_value_t = 2048)]
    pub acc_rows: usize,

    /// Core clock in MHz.
    #[arg(long, value_name = "MHz", default_value_t = 100.0)]
    pub clock: f64,

    /// Technology table: 45nm, 28nm or a TOML file.
    #[arg(long, value_name = "45nm|28nm|FILE", default_value = "45nm")]
    pub tech: String,

    /// Host link of the roofline, 32-bit words per core cycle each way.
    #[arg(long, value_name = "F", default_value_t = 0.25)]
    pub link_words_per_cycle: f64,

    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,

    /// Also write every estimate of the sweep as JSON here.
    #[arg(long, value_name = "sweep.json")]
    pub json: Option<PathBuf>,

    /// Directory for the plots (created if missing).
    #[arg(short, long, value_name = "DIR", default_value = "out/sweep")]
    pub out: PathBuf,
}

/// Run the command; the report for stdout.
pub fn run(args: &SweepArgs) -> Result<String, CliError> {
    let dims = parse_list("--dims", &args.dims)?;
    if let Some(&d) = dims.iter().find(|&&d| d > spec::config::MAX_DIM) {
        return Err(CliError::input(
            "--dims",
            format!("DIM must be in 1..={}, got {d}", spec::config::MAX_DIM),
        ));
    }
    let ms = parse_list("--m", &args.ms)?;
    let gemm = parse_gemm("--gemm", &args.gemm)?;
    spec::Config::new(1, args.scratch_rows, args.acc_rows).map_err(|e| {
        let flag = if matches!(e, spec::ConfigError::Rows { what: "SCRATCH_ROWS", .. }) {
            "--scratch-rows"
        } else {
            "--acc-rows"
        };
        CliError::input(flag, e.to_string())
    })?;
    let clock_hz = check_clock(args.clock)? * 1e6;
    let tech = load_tech(&args.tech)?;
    let spec = SweepSpec {
        dims,
        ms,
        gemm,
        scratch_rows: args.scratch_rows,
        acc_rows: args.acc_rows,
        options: Options { clock_hz, link: None, tech },
        roofline_link: args.link_words_per_cycle,
    };
    let total = spec.points().len();
    // the points run in parallel: the largest, once per worker thread, must fit the limit
    let mut largest = 0u128;
    for (_, dim, (m, k, n)) in spec.points() {
        let cfg = spec::Config::new(dim, args.scratch_rows, args.acc_rows)
            .map_err(|e| CliError::input("--dims", e.to_string()))?;
        let bytes = crate::limits::workload_bytes(&cfg, m, &[(k, n)], driver::OutputKind::Int8)
            .map_err(|e| estimate_error(e.into()))?;
        largest = largest.max(bytes);
    }
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(total) as u128;
    crate::limits::check(
        "workload",
        &format!("the sweep ({total} estimates, {workers} at a time)"),
        largest * workers,
    )?;
    let started = Instant::now();
    let bar = &ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template("sweep {wide_bar} {pos}/{len} estimates [{elapsed}]")
            .expect("the template is valid"),
    );
    let show = !args.quiet && std::io::stderr().is_terminal();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let result = std::thread::scope(|s| {
        // the bar appears only if the sweep is still running after a second
        s.spawn(move || {
            if show && done_rx.recv_timeout(Duration::from_secs(1)).is_err() {
                bar.set_draw_target(ProgressDrawTarget::stderr());
                bar.enable_steady_tick(Duration::from_millis(200));
            }
        });
        let r = sweep::run(&spec, &|done, _| bar.set_position(done as u64));
        let _ = done_tx.send(());
        r
    });
    bar.finish_and_clear();
    let result = result.map_err(|e| match e {
        sim::estimate::EstimateError::Link(p) => CliError::input("--link-words-per-cycle", p),
        other => estimate_error(other),
    })?;
    let elapsed = started.elapsed();

    std::fs::create_dir_all(&args.out).map_err(|e| {
        CliError::file(&args.out, format!("cannot create the directory: {}", crate::error::describe_io(&e)))
    })?;
    let svgs = plots::render_all(&result).map_err(|e| CliError::internal("plot", e.to_string()))?;
    let mut written = Vec::new();
    for (name, svg) in &svgs {
        let path = args.out.join(name);
        crate::output::write_atomically(&path, |w| w.write_all(svg.as_bytes()))?;
        written.push(path);
    }
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&result).expect("a sweep always serialises");
        crate::output::write_atomically(path, |w| w.write_all(json.as_bytes()))?;
        written.push(path.clone());
    }

    let (m, k, n) = result.gemm;
    let mut out = format!(
        "sweep: {total} estimates in {:.1} s; GEMM {m}x{k}x{n} at {} MHz ({})\n",
        elapsed.as_secs_f64(),
        args.clock,
        spec.options.tech.name
    );
    out += &format!(
        "{:>5} {:>12} {:>12} {:>8} {:>8} {:>12} {:>11} {:>9}\n",
        "DIM", "cycles", "compute", "util", "compute", "energy", "power", "TOPS/W"
    );
    for p in result.per_dim() {
        let e = &p.estimate;
        out += &format!(
            "{:>5} {:>12} {:>12} {:>7.1}% {:>7.1}% {:>12} {:>11} {:>9.3}\n",
            p.dim,
            e.cycles,
            e.compute_cycles,
            100.0 * e.utilization,
            100.0 * e.compute_utilization,
            si(e.energy_pj * 1e-12, "J"),
            si(e.power_w, "W"),
            e.tops_per_w
        );
    }
    for path in written {
        out += &format!("wrote {}\n", path.display());
    }
    Ok(out)
}
