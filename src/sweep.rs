//! `protobrain sweep`: estimates over array sizes and batch sizes, in parallel, with plots.
//!
//! ```text
//!  --dims, --m, --gemm, --link-words-per-cycle ──► estimate::sweep::run (rayon)
//!                                                   │ progress bar (indicatif) after 1 s
//!                                                   ▼
//!  -o DIR: utilization_vs_m.svg  dim_scaling.svg  energy_breakdown.svg  roofline.svg
//!  --json sweep.json: every estimate
//!
//!  --topology F.csv --dims ...: the (DIM x layer) grid (estimate::shard)
//!     ├─ whole ─────────────► -o DIR: topology-sweep.json, topology-sweep.csv, a table per DIM
//!     └─ --shard I/N ───────► -o DIR: shard-I-of-N.json (its share of the grid)
//!  sweep merge SHARDS|DIRS -o DIR ──► the same files as the whole run, checked complete
//! ```

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use estimate::shard;
use estimate::sweep::{self, SweepSpec};
use estimate::{plots, si, Options};

use crate::error::CliError;
use crate::estimate::{check_clock, estimate_error, load_tech, parse_gemm, parse_list};

/// Arguments of `protobrain sweep`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SweepArgs {
    /// `merge`: join shard files into the report one run writes.
    #[command(subcommand)]
    pub command: Option<SweepCommand>,

    /// Sweep a SCALE-Sim topology file (conv or GEMM layout) over --dims instead of one GEMM:
    /// every layer at every DIM, on the native model.
    #[arg(long, value_name = "FILE.csv")]
    pub topology: Option<PathBuf>,

    /// With --topology: run only shard I of N of the (DIM x layer) grid (points p with
    /// p mod N = I) and write DIR/shard-I-of-N.json; `sweep merge` joins the N files.
    #[arg(long, value_name = "I/N", requires = "topology")]
    pub shard: Option<String>,

    /// With --topology: seed of the random int8 inputs.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "topology")]
    pub seed: u64,

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

/// `protobrain sweep merge`.
#[derive(Debug, Subcommand)]
pub enum SweepCommand {
    /// Join the shard files of a `sweep --topology --shard I/N` (files, or directories holding
    /// shard-*.json) into the files one unsharded run writes. Every shard 0..N must be there once.
    Merge {
        /// Shard files, or directories of them.
        #[arg(required = true, value_name = "SHARD|DIR")]
        shards: Vec<PathBuf>,
        /// Directory for topology-sweep.json and topology-sweep.csv (created if missing).
        #[arg(short, long, value_name = "DIR", default_value = "out/sweep")]
        out: PathBuf,
    },
}

/// Run the command; the report for stdout.
pub fn run(args: &SweepArgs) -> Result<String, CliError> {
    if let Some(SweepCommand::Merge { shards, out }) = &args.command {
        return merge(shards, out);
    }
    let dims = parse_list("--dims", &args.dims)?;
    if let Some(&d) = dims.iter().find(|&&d| d > spec::config::MAX_DIM) {
        return Err(CliError::input(
            "--dims",
            format!("DIM must be in 1..={}, got {d}", spec::config::MAX_DIM),
        ));
    }
    if let Some(path) = &args.topology {
        return topology_sweep(args, path, dims);
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
        options: Options { clock_hz, link: None, tech, buffering: Default::default() },
        roofline_link: args.link_words_per_cycle,
    };
    let total = spec.points().len();
    // the points run in parallel: the largest, once per worker thread, must fit the limit
    let mut largest = 0u128;
    for (_, dim, (m, k, n)) in spec.points() {
        let cfg = spec::Config::new(dim, args.scratch_rows, args.acc_rows)
            .map_err(|e| CliError::input("--dims", e.to_string()))?;
        let bytes = crate::limits::streamed_workload_bytes(&cfg, m, &[(k, n)], driver::OutputKind::Int8)
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
    let result = crate::progress::with_bar(
        total,
        "sweep {wide_bar} {pos}/{len} estimates [{elapsed}]",
        Duration::from_secs(1),
        args.quiet,
        |step| sweep::run(&spec, &|done, _| step(done)),
    );
    let result = result.map_err(|e| match e {
        estimate::EstimateError::Link(p) => CliError::input("--link-words-per-cycle", p),
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

/// `I/N` with N >= 1 and I < N.
fn parse_shard(text: &str) -> Result<(usize, usize), CliError> {
    let bad = || CliError::input("--shard", format!("expected I/N with 0 <= I < N (e.g. 0/4), got '{text}'"));
    let (i, n) = text.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
    if n == 0 || i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

/// `sweep --topology`: the whole grid, or one shard of it.
fn topology_sweep(args: &SweepArgs, path: &std::path::Path, dims: Vec<usize>) -> Result<String, CliError> {
    let (index, count) = args.shard.as_deref().map(parse_shard).transpose()?.unwrap_or((0, 1));
    let topo = crate::topology::load(path)?;
    for &dim in &dims {
        let cfg = spec::Config::new(dim, args.scratch_rows, args.acc_rows)
            .map_err(|e| CliError::input("--dims", e.to_string()))?;
        crate::topology::check_memory(path, &cfg, &topo)?;
    }
    let clock_hz = check_clock(args.clock)? * 1e6;
    let options =
        Options { clock_hz, link: None, tech: load_tech(&args.tech)?, buffering: Default::default() };
    let name = path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into());
    let grid = shard::Grid::new(
        &name,
        &topo,
        dims,
        args.scratch_rows,
        args.acc_rows,
        &options,
        estimate::Input::Random { seed: args.seed },
    );
    let started = Instant::now();
    let points = grid.shard_points(index, count).len();
    let result = crate::progress::with_bar(
        points,
        "sweep {wide_bar} {pos}/{len} layer estimates [{elapsed}]",
        Duration::from_secs(1),
        args.quiet,
        |step| shard::run_shard(&grid, index, count, &|done, _| step(done)),
    );
    let result = result.map_err(|e| match e {
        shard::ShardError::Layer { dim, error } => {
            let inner = estimate_error(error.error);
            CliError {
                subject: path.display().to_string(),
                problem: format!("DIM {dim}, layer '{}' (line {}): {inner}", error.name, error.line),
                exit_code: inner.exit_code,
            }
        }
        other => CliError::input("--dims", other.to_string()),
    })?;
    let elapsed = started.elapsed();
    let head = format!(
        "{name}: {points} of {} (DIM x layer) estimates{} in {:.2} s\n",
        grid.len(),
        if count > 1 { format!(" (shard {index}/{count})") } else { String::new() },
        elapsed.as_secs_f64()
    );
    if count > 1 {
        std::fs::create_dir_all(&args.out).map_err(|e| {
            CliError::file(
                &args.out,
                format!("cannot create the directory: {}", crate::error::describe_io(&e)),
            )
        })?;
        let file = args.out.join(format!("shard-{index}-of-{count}.json"));
        let json = serde_json::to_string(&result).expect("a shard always serialises");
        crate::output::write_atomically(&file, |w| w.write_all(json.as_bytes()))?;
        return Ok(format!("{head}wrote {}\n", file.display()));
    }
    let sweep = shard::merge(&[result]).map_err(|e| CliError::internal("sweep", e.to_string()))?;
    Ok(head + &write_sweep(&sweep, &args.out)?)
}

/// topology-sweep.json and .csv, staged together; the summary for stdout.
fn write_sweep(sweep: &shard::Sweep, out: &std::path::Path) -> Result<String, CliError> {
    std::fs::create_dir_all(out).map_err(|e| {
        CliError::file(out, format!("cannot create the directory: {}", crate::error::describe_io(&e)))
    })?;
    let (json_path, csv_path) = (out.join("topology-sweep.json"), out.join("topology-sweep.csv"));
    let json = serde_json::to_string_pretty(sweep).expect("a sweep always serialises");
    let csv = sweep.to_csv();
    let mut outputs = crate::output::Outputs::new();
    outputs.stage(&json_path, |w| w.write_all(json.as_bytes()))?;
    outputs.stage(&csv_path, |w| w.write_all(csv.as_bytes()))?;
    outputs.commit()?;
    let mut text = format!(
        "{:>5} {:>14} {:>14} {:>8} {:>8} {:>12} {:>11}  bound\n",
        "DIM", "cycles", "compute", "util", "compute", "energy", "time"
    );
    for r in &sweep.reports {
        let t = &r.total;
        text += &format!(
            "{:>5} {:>14} {:>14} {:>7.1}% {:>7.1}% {:>12} {:>11}  {}\n",
            r.config.dim(),
            t.cycles,
            t.compute_cycles,
            100.0 * t.utilization,
            100.0 * t.compute_utilization,
            si(t.energy_pj * 1e-12, "J"),
            si(t.time_s, "s"),
            estimate::topology::bound_name(t.bound)
        );
    }
    text += &format!("wrote {}\nwrote {}\n", json_path.display(), csv_path.display());
    Ok(text)
}

/// `sweep merge`.
fn merge(inputs: &[PathBuf], out: &std::path::Path) -> Result<String, CliError> {
    let mut files = Vec::new();
    for p in inputs {
        if p.is_dir() {
            let entries = std::fs::read_dir(p).map_err(|e| {
                CliError::file(p, format!("cannot read the directory: {}", crate::error::describe_io(&e)))
            })?;
            let mut found: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|f| {
                    f.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("shard-") && n.ends_with(".json"))
                })
                .collect();
            if found.is_empty() {
                return Err(CliError::file(p, "holds no shard-*.json files"));
            }
            found.sort();
            files.extend(found);
        } else {
            files.push(p.clone());
        }
    }
    let mut shards = Vec::with_capacity(files.len());
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| {
            CliError::file(f, format!("cannot read the shard: {}", crate::error::describe_io(&e)))
        })?;
        let s: shard::Shard = serde_json::from_str(&text)
            .map_err(|e| CliError::file(f, format!("is not a sweep shard: {e}")))?;
        shards.push(s);
    }
    let sweep = shard::merge(&shards).map_err(|e| CliError::input("sweep merge", e.to_string()))?;
    Ok(format!("merged {} shards of {}\n", shards.len(), sweep.topology) + &write_sweep(&sweep, out)?)
}
