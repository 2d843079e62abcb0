//! A topology swept over array sizes, as a grid of (DIM, layer) points that can be split into
//! shards, run anywhere (one machine, a Slurm job array, a Kubernetes Indexed Job), and merged
//! into exactly the report one run makes.
//!
//! ```text
//!  Grid { topology layers, dims, memories, clock, tech, input }
//!    points: (DIM d, layer l) in DIM-major order, index p = d·L + l
//!    shard I of N: the points with p mod N == I (every shard gets every kind of layer)
//!      └─► run_shard ──► Shard { grid, index I, count N, points: [(p, LayerReport)] } (JSON)
//!  merge(shards) ──► checks: one grid, N shards numbered 0..N once each, every point once
//!                ──► Sweep { per DIM: TopologyReport } — equal to run_shard(grid, 0, 1)'s
//! ```
//!
//! A point's estimate depends only on its (DIM, layer) and the grid's options (the native model
//! is deterministic, the input seeded), so where a point runs changes nothing in its numbers.

use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use spec::Config;
use thiserror::Error;

use super::power::TechTable;
use super::topology::{
    estimate_layer, Format, LayerError, LayerReport, Topology, TopologyLayer, TopologyReport,
};
use super::{Input, Options};

/// The format tag of a shard file.
pub const SHARD_FORMAT: &str = "protobrain-topology-sweep-shard";
/// The version of the shard file format.
pub const SHARD_VERSION: u32 = 1;

/// What every shard of one sweep shares: the topology, the array sizes and the options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grid {
    /// The topology file's name (informational).
    pub topology: String,
    /// Its layout.
    pub format: Format,
    /// Its layers, in file order.
    pub layers: Vec<TopologyLayer>,
    /// Array sizes.
    pub dims: Vec<usize>,
    /// Scratchpad rows of every configuration.
    pub scratch_rows: usize,
    /// Accumulator rows of every configuration.
    pub acc_rows: usize,
    /// Core clock, Hz.
    pub clock_hz: f64,
    /// Energy per event.
    pub tech: TechTable,
    /// The input data of every GEMM.
    pub input: Input,
}

impl Grid {
    /// A grid over `dims` of `topology`'s layers.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: &str,
        topology: &Topology,
        dims: Vec<usize>,
        scratch_rows: usize,
        acc_rows: usize,
        options: &Options,
        input: Input,
    ) -> Self {
        Grid {
            topology: name.to_string(),
            format: topology.format,
            layers: topology.layers.clone(),
            dims,
            scratch_rows,
            acc_rows,
            clock_hz: options.clock_hz,
            tech: options.tech.clone(),
            input,
        }
    }

    /// Number of points: DIMs × layers.
    pub fn len(&self) -> usize {
        self.dims.len() * self.layers.len()
    }

    /// True if there is nothing to run.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The (DIM, layer index) of point `p`.
    pub fn point(&self, p: usize) -> (usize, usize) {
        (self.dims[p / self.layers.len()], p % self.layers.len())
    }

    /// The configuration of `dim`.
    pub fn config(&self, dim: usize) -> Result<Config, spec::ConfigError> {
        Config::new(dim, self.scratch_rows, self.acc_rows)
    }

    fn options(&self) -> Options {
        Options {
            clock_hz: self.clock_hz,
            link: None,
            tech: self.tech.clone(),
            buffering: Default::default(),
        }
    }

    /// The points of shard `index` of `count`.
    pub fn shard_points(&self, index: usize, count: usize) -> Vec<usize> {
        (0..self.len()).filter(|p| p % count == index).collect()
    }
}

/// One point's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// Its index in the grid.
    pub index: usize,
    /// The array size.
    pub dim: usize,
    /// The layer's estimate.
    pub report: LayerReport,
}

/// A shard's results: the file `sweep --shard I/N` writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shard {
    /// Always [`SHARD_FORMAT`].
    pub format: String,
    /// Always [`SHARD_VERSION`].
    pub version: u32,
    /// The sweep it belongs to.
    pub grid: Grid,
    /// I of I/N.
    pub index: usize,
    /// N of I/N.
    pub count: usize,
    /// Its points, in grid order.
    pub points: Vec<Point>,
}

/// The whole sweep: one topology report per array size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The topology file's name.
    pub topology: String,
    /// Per DIM, in the grid's order.
    pub reports: Vec<TopologyReport>,
}

/// A sweep or merge that cannot go on: one line.
#[derive(Debug, Error)]
pub enum ShardError {
    /// A point's estimate failed.
    #[error("DIM {dim}: {error}")]
    Layer {
        /// The array size.
        dim: usize,
        /// The layer and why.
        error: LayerError,
    },
    /// Shards that do not make one sweep.
    #[error("{0}")]
    Merge(String),
    /// A bad shard specification or grid.
    #[error("{0}")]
    Grid(String),
}

/// Run shard `index` of `count` of `grid`, the points in parallel; `progress(done, total)`.
pub fn run_shard(
    grid: &Grid,
    index: usize,
    count: usize,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<Shard, ShardError> {
    if count == 0 || index >= count {
        return Err(ShardError::Grid(format!("shard {index}/{count}: I must be in 0..N and N at least 1")));
    }
    let points = grid.shard_points(index, count);
    let total = points.len();
    let done = AtomicUsize::new(0);
    let options = grid.options();
    let points = points
        .par_iter()
        .map(|&p| {
            let (dim, l) = grid.point(p);
            let cfg = grid.config(dim).map_err(|e| ShardError::Grid(format!("DIM {dim}: {e}")))?;
            let layer = &grid.layers[l];
            let report =
                estimate_layer(&cfg, layer, grid.input, &options).map_err(|error| ShardError::Layer {
                    dim,
                    error: LayerError { name: layer.name.clone(), line: layer.line, error },
                })?;
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            Ok(Point { index: p, dim, report })
        })
        .collect::<Result<Vec<_>, ShardError>>()?;
    Ok(Shard {
        format: SHARD_FORMAT.into(),
        version: SHARD_VERSION,
        grid: grid.clone(),
        index,
        count,
        points,
    })
}

/// Join shards into the sweep one run makes: they must share one grid, be numbered 0..N once
/// each, and cover every point exactly once.
pub fn merge(shards: &[Shard]) -> Result<Sweep, ShardError> {
    let fail = |m: String| Err(ShardError::Merge(m));
    let Some(first) = shards.first() else {
        return fail("no shards to merge".into());
    };
    for s in shards {
        if s.format != SHARD_FORMAT || s.version != SHARD_VERSION {
            return fail(format!(
                "shard {}/{}: format '{}' version {}, expected '{SHARD_FORMAT}' version {SHARD_VERSION}",
                s.index, s.count, s.format, s.version
            ));
        }
        if s.grid != first.grid {
            return fail(format!(
                "shard {}/{} belongs to another sweep (topology, DIMs, memories, clock, technology or input differ) than shard {}/{}",
                s.index, s.count, first.index, first.count
            ));
        }
        if s.count != first.count {
            return fail(format!(
                "shard {}/{} and shard {}/{}: different shard counts",
                s.index, s.count, first.index, first.count
            ));
        }
    }
    let n = first.count;
    let mut seen = vec![false; n];
    for s in shards {
        if s.index >= n {
            return fail(format!("shard {}/{n}: index out of range", s.index));
        }
        if std::mem::replace(&mut seen[s.index], true) {
            return fail(format!("shard {}/{n} is given twice", s.index));
        }
    }
    if let Some(missing) = seen.iter().position(|&s| !s) {
        let count = seen.iter().filter(|&&s| !s).count();
        return fail(format!("shard {missing}/{n} is missing ({count} of {n} missing)"));
    }
    let grid = &first.grid;
    let mut slots: Vec<Option<&Point>> = vec![None; grid.len()];
    for s in shards {
        for p in &s.points {
            if p.index >= grid.len() || p.index % n != s.index || grid.point(p.index).0 != p.dim {
                return fail(format!("shard {}/{n}: point {} does not belong to it", s.index, p.index));
            }
            if slots[p.index].replace(p).is_some() {
                return fail(format!("point {} appears twice", p.index));
            }
        }
    }
    if let Some(p) = slots.iter().position(Option::is_none) {
        let (dim, l) = grid.point(p);
        return fail(format!("shard {}/{n} lacks DIM {dim}, layer '{}'", p % n, grid.layers[l].name));
    }
    let per = grid.layers.len();
    let reports = grid
        .dims
        .iter()
        .enumerate()
        .map(|(d, &dim)| {
            let cfg = grid.config(dim).map_err(|e| ShardError::Grid(format!("DIM {dim}: {e}")))?;
            let layers: Vec<LayerReport> = slots[d * per..(d + 1) * per]
                .iter()
                .map(|p| p.expect("every point").report.clone())
                .collect();
            Ok(TopologyReport::new(&cfg, grid.clock_hz, &grid.tech.name, grid.format, layers))
        })
        .collect::<Result<Vec<_>, ShardError>>()?;
    Ok(Sweep { topology: grid.topology.clone(), reports })
}

impl Sweep {
    /// One CSV row per (DIM, layer), SCALE-Sim COMPUTE_REPORT-like columns after `DIM`, then one
    /// `total` row per DIM.
    pub fn to_csv(&self) -> String {
        let mut out = String::new();
        for (i, r) in self.reports.iter().enumerate() {
            let dim = r.config.dim();
            for (j, line) in r.to_csv().lines().enumerate() {
                if j == 0 {
                    if i == 0 {
                        out += &format!("DIM,{line}\n");
                    }
                } else {
                    out += &format!("{dim},{line}\n");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::parse;

    fn grid() -> Grid {
        let topo = parse(b"Layer, M, N, K,\nfc1, 64, 32, 48,\nfc2, 16, 24, 40,\nfc3, 8, 8, 8,\n").unwrap();
        let options = Options::at_clock(100e6);
        Grid::new("t.csv", &topo, vec![2, 4, 8], 256, 256, &options, Input::Random { seed: 7 })
    }

    #[test]
    fn shards_merged_equal_one_run() {
        let g = grid();
        let whole = merge(&[run_shard(&g, 0, 1, &|_, _| {}).unwrap()]).unwrap();
        assert_eq!(whole.reports.len(), 3);
        for n in [2, 4, 9, 10] {
            let mut shards: Vec<Shard> = (0..n).map(|i| run_shard(&g, i, n, &|_, _| {}).unwrap()).collect();
            shards.reverse(); // any order
            let merged = merge(&shards).unwrap();
            assert_eq!(merged, whole, "{n} shards");
            // through JSON, as the files travel
            let json: Vec<Shard> = shards
                .iter()
                .map(|s| serde_json::from_str(&serde_json::to_string(s).unwrap()).unwrap())
                .collect();
            assert_eq!(merge(&json).unwrap(), whole);
        }
        // each DIM's report is the plain topology estimate of that DIM
        let topo = Topology { format: g.format, layers: g.layers.clone(), ignored_columns: vec![] };
        let cfg = g.config(4).unwrap();
        let direct = crate::topology::run(&cfg, &topo, g.input, &g.options(), &|_, _| {}).unwrap();
        assert_eq!(whole.reports[1], direct);
    }

    #[test]
    fn bad_shard_sets_are_refused() {
        let g = grid();
        let s: Vec<Shard> = (0..3).map(|i| run_shard(&g, i, 3, &|_, _| {}).unwrap()).collect();
        let err = |shards: &[Shard]| merge(shards).unwrap_err().to_string();
        assert!(err(&s[..2]).contains("shard 2/3 is missing"), "{}", err(&s[..2]));
        assert!(err(&[s[0].clone(), s[0].clone(), s[1].clone()]).contains("given twice"));
        let mut other = s[1].clone();
        other.grid.clock_hz = 50e6;
        assert!(err(&[s[0].clone(), other, s[2].clone()]).contains("another sweep"));
        let mut lost = s[2].clone();
        lost.points.pop();
        assert!(err(&[s[0].clone(), s[1].clone(), lost]).contains("lacks"));
        assert!(err(&[]).contains("no shards"));
        assert!(run_shard(&g, 3, 3, &|_, _| {}).is_err());
    }
}
