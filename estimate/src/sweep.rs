//! Sweeps: many estimates over array sizes and batch sizes, run in parallel (rayon), for the
//! plots in [`super::plots`].
//!
//! ```text
//!  SweepSpec ──► points: (DIM, M) for every DIM × M   ── no link ──► utilisation vs M
//!                        (DIM, gemm M) for every DIM  ── no link ──► cycles/energy vs DIM, bars
//!                        (DIM, M) for every DIM × M   ── link F ───► roofline
//!            ──► rayon par_iter: estimate() each ──► SweepResult (every Estimate, in order)
//! ```
//!
//! Every point is a full [`super::estimate`] of a GEMM `M x K x N` on
//! `Config::new(DIM, scratch_rows, acc_rows)`; points are deduplicated (the per-DIM workload is
//! usually one of the M points).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use spec::Config;

use super::{estimate, Estimate, EstimateError, Input, Link, Options, Workload};

/// What to sweep.
#[derive(Debug, Clone)]
pub struct SweepSpec {
    /// Array sizes.
    pub dims: Vec<usize>,
    /// Rows of X for the utilisation and roofline curves (K and N from `gemm`).
    pub ms: Vec<usize>,
    /// The workload compared across DIMs: (M, K, N).
    pub gemm: (usize, usize, usize),
    /// Scratchpad rows of every configuration.
    pub scratch_rows: usize,
    /// Accumulator rows of every configuration.
    pub acc_rows: usize,
    /// Clock and technology (the link is ignored: see `roofline_link`).
    pub options: Options,
    /// The host link of the roofline points, words per cycle.
    pub roofline_link: f64,
}

/// Which curve a point belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Series {
    /// No link limit (utilisation vs M, and the per-DIM comparison).
    Unlimited,
    /// With the roofline's link.
    Linked,
}

/// One estimate of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    /// Array size.
    pub dim: usize,
    /// (M, K, N).
    pub gemm: (usize, usize, usize),
    /// With or without the link.
    pub series: Series,
    /// The estimate.
    pub estimate: Estimate,
}

/// Every point of a sweep, sorted by (series, DIM, M).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepResult {
    /// The points.
    pub points: Vec<SweepPoint>,
    /// The workload compared across DIMs.
    pub gemm: (usize, usize, usize),
    /// The roofline's link, words per cycle.
    pub roofline_link: f64,
    /// Core clock, MHz.
    pub clock_mhz: f64,
}

impl SweepResult {
    /// The points of one series for one DIM, by increasing M, with K and N of the sweep.
    pub fn curve(&self, series: Series, dim: usize) -> Vec<&SweepPoint> {
        let (_, k, n) = self.gemm;
        self.points
            .iter()
            .filter(|p| p.series == series && p.dim == dim && p.gemm.1 == k && p.gemm.2 == n)
            .collect()
    }

    /// The per-DIM comparison: the sweep's workload without link, by increasing DIM.
    pub fn per_dim(&self) -> Vec<&SweepPoint> {
        self.points.iter().filter(|p| p.series == Series::Unlimited && p.gemm == self.gemm).collect()
    }

    /// The DIMs swept, increasing.
    pub fn dims(&self) -> Vec<usize> {
        let mut d: Vec<usize> = self.points.iter().map(|p| p.dim).collect();
        d.sort_unstable();
        d.dedup();
        d
    }
}

impl SweepSpec {
    /// The points to run: (series, DIM, (M, K, N)), deduplicated and sorted.
    pub fn points(&self) -> Vec<(Series, usize, (usize, usize, usize))> {
        let (_, k, n) = self.gemm;
        let mut set = BTreeMap::new();
        for &dim in &self.dims {
            set.insert((Series::Unlimited, dim, self.gemm), ());
            for &m in &self.ms {
                set.insert((Series::Unlimited, dim, (m, k, n)), ());
                set.insert((Series::Linked, dim, (m, k, n)), ());
            }
        }
        set.into_keys().collect()
    }

    fn check(&self) -> Result<Link, EstimateError> {
        if self.dims.is_empty() || self.ms.is_empty() {
            return Err(EstimateError::Workload("a sweep needs at least one DIM and one M".into()));
        }
        Link::new(self.roofline_link)
    }
}

/// Run every point of `spec` in parallel; `progress(done, total)` is called after each one
/// (from any thread).
pub fn run(spec: &SweepSpec, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<SweepResult, EstimateError> {
    let link = spec.check()?;
    let points = spec.points();
    let total = points.len();
    let done = AtomicUsize::new(0);
    let results: Result<Vec<SweepPoint>, EstimateError> = points
        .par_iter()
        .map(|&(series, dim, (m, k, n))| {
            let cfg = Config::new(dim, spec.scratch_rows, spec.acc_rows)
                .map_err(|e| EstimateError::Workload(e.to_string()))?;
            let workload = Workload::gemm(m, k, n, Input::Random { seed: 1 })?;
            let opts = Options {
                link: match series {
                    Series::Unlimited => None,
                    Series::Linked => Some(link),
                },
                ..spec.options.clone()
            };
            let estimate = estimate(&cfg, &workload, &opts)?;
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            Ok(SweepPoint { dim, gemm: (m, k, n), series, estimate })
        })
        .collect();
    Ok(SweepResult {
        points: results?,
        gemm: spec.gemm,
        roofline_link: spec.roofline_link,
        clock_mhz: spec.options.clock_hz / 1e6,
    })
}
