//! `protobrain estimate --topology FILE.csv`: a SCALE-Sim topology, layer by layer.
//!
//! ```text
//!  FILE.csv ──► topology::parse (one-line error: file, line, field; exit 2)
//!           ──► every layer checked against the memory limit and the memories (before any run)
//!           ──► topology::run: layers in parallel (rayon), progress bar on a terminal
//!           ──► per-layer table + total on stdout; --json, --csv, --svg written together
//! ```

use std::path::Path;
use std::time::{Duration, Instant};

use estimate::topology::{self, Topology};
use estimate::{plots, Input, Options};
use spec::Config;

use crate::error::{describe_io, CliError};
use crate::estimate::{estimate_error, EstimateArgs};

/// Worker threads of the parallel run (rayon's default: one per core).
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Read and parse the topology file; the extra columns are named in one warning on stderr.
pub fn load(path: &Path) -> Result<Topology, CliError> {
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::file(path, format!("cannot read the topology: {}", describe_io(&e))))?;
    let topo = topology::parse(&bytes).map_err(|e| CliError::file(path, e.to_string()))?;
    if !topo.ignored_columns.is_empty() {
        let names: Vec<String> = topo.ignored_columns.iter().map(|c| format!("'{c}'")).collect();
        eprintln!(
            "warning: {}: ignoring the extra column{} {}",
            path.display(),
            if names.len() == 1 { "" } else { "s" },
            names.join(", ")
        );
    }
    Ok(topo)
}

/// Every layer compiles for `cfg` and fits the memory limit, with as many layers at a time as
/// there are worker threads; a layer that does not is refused in one line naming it.
pub fn check_memory(path: &Path, cfg: &Config, topo: &Topology) -> Result<(), CliError> {
    let mut largest = 0u128;
    for l in &topo.layers {
        let at = |e: CliError| CliError::file(path, format!("layer '{}' (line {}): {}", l.name, l.line, e));
        let bytes = crate::limits::streamed_workload_bytes(cfg, l.m, &[(l.k, l.n)], driver::OutputKind::Int8)
            .map_err(|e| at(estimate_error(e.into())))?;
        crate::limits::check("workload", &format!("GEMM {}x{}x{} on {cfg}", l.m, l.k, l.n), bytes)
            .map_err(at)?;
        largest = largest.max(bytes);
    }
    let workers = threads().min(topo.layers.len()) as u128;
    crate::limits::check(
        "workload",
        &format!("the topology ({} layers, {workers} at a time)", topo.layers.len()),
        largest * workers,
    )
    .map_err(|e| CliError::file(path, e.to_string()))
}

/// Run `estimate --topology`; the report for stdout.
pub fn run(args: &EstimateArgs, path: &Path, cfg: &Config, opts: &Options) -> Result<String, CliError> {
    let topo = load(path)?;
    check_memory(path, cfg, &topo)?;
    let input = if args.zeros { Input::Zeros } else { Input::Random { seed: args.seed } };
    let total = topo.layers.len();
    let started = Instant::now();
    let report = crate::progress::with_bar(
        total,
        "estimate {wide_bar} {pos}/{len} layers [{elapsed}]",
        Duration::from_millis(500),
        false,
        |step| topology::run(cfg, &topo, input, opts, &|done, _| step(done)),
    );
    let report = report.map_err(|e| {
        let inner = estimate_error(e.error);
        CliError {
            subject: path.display().to_string(),
            problem: format!("layer '{}' (line {}): {inner}", e.name, e.line),
            exit_code: inner.exit_code,
        }
    })?;
    let elapsed = started.elapsed();

    let mut outputs = crate::output::Outputs::new();
    if let Some(p) = &args.json {
        let json = serde_json::to_string_pretty(&report).expect("a report always serialises");
        outputs.stage(p, |w| w.write_all(json.as_bytes()))?;
    }
    if let Some(p) = &args.csv {
        let csv = report.to_csv();
        outputs.stage(p, |w| w.write_all(csv.as_bytes()))?;
    }
    if let Some(p) = &args.svg {
        let file =
            path.file_name().map_or_else(|| path.display().to_string(), |f| f.to_string_lossy().into());
        let c = &report.config;
        let title = format!(
            "{file} on DIM {} ({} scratchpad, {} accumulator rows)",
            c.dim(),
            c.scratch_rows(),
            c.acc_rows()
        );
        let svg =
            plots::topology_svg(&report, &title).map_err(|e| CliError::internal("plot", e.to_string()))?;
        outputs.stage(p, |w| w.write_all(svg.as_bytes()))?;
    }
    outputs.commit()?;

    let mut out = format!("{}: {}\n", path.display(), report);
    out += &format!("estimated {total} layers in {:.3} s ({} threads)\n", elapsed.as_secs_f64(), threads());
    for p in [&args.json, &args.csv, &args.svg].into_iter().flatten() {
        out += &format!("wrote {}\n", p.display());
    }
    Ok(out)
}
