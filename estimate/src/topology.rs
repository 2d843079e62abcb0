//! SCALE-Sim topology files: a network as a list of layers, each estimated as one GEMM on the
//! native model, in parallel, with a per-layer report.
//!
//! ```text
//!  topology.csv ──► parse ──► Topology { layers: name, (M, K, N), line } + ignored columns
//!   conv:  Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
//!          Num Filter, Strides          ──► OH = ⌈(H − FH + S)/S⌉, OW likewise,
//!                                           M = OH·OW, K = FH·FW·C, N = filters
//!   gemm:  Layer, M, N, K               ──► (M, K, N)
//!                    │
//!                    ▼  rayon: one Workload::gemm per layer ──► estimate() (native model)
//!  TopologyReport { layers: [LayerReport], total } ──► JSON, COMPUTE_REPORT-shaped CSV, plot
//! ```
//!
//! The parser takes files as they are written by hand and by SCALE-Sim's users: spaces
//! around fields, trailing commas, extra columns (ignored and named), blank or comma-only
//! rows, a last line without a newline. Anything else is one [`TopologyError`] naming the
//! line and the field. The IFMAP is taken as already padded (SCALE-Sim's convention).

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use spec::Config;
use thiserror::Error;

use super::{estimate, scalesim_cycles, Bound, EstimateError, Input, Options, Workload};

/// Which of SCALE-Sim's two layouts a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels,
    /// Num Filter, Strides`.
    Conv,
    /// `Layer, M, N, K`.
    Gemm,
}

/// The columns of a conv topology, in order (SCALE-Sim reads them by position).
pub const CONV_COLUMNS: [&str; 8] = [
    "Layer name",
    "IFMAP Height",
    "IFMAP Width",
    "Filter Height",
    "Filter Width",
    "Channels",
    "Num Filter",
    "Strides",
];

/// The columns of a GEMM topology, in order.
pub const GEMM_COLUMNS: [&str; 4] = ["Layer", "M", "N", "K"];

impl Format {
    /// The columns this format reads.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            Format::Conv => &CONV_COLUMNS,
            Format::Gemm => &GEMM_COLUMNS,
        }
    }
}

/// A convolution as the file gives it (the IFMAP already padded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConvShape {
    /// IFMAP height.
    pub h: usize,
    /// IFMAP width.
    pub w: usize,
    /// Filter height.
    pub fh: usize,
    /// Filter width.
    pub fw: usize,
    /// Input channels.
    pub c: usize,
    /// Filters (output channels).
    pub filters: usize,
    /// Stride (both directions).
    pub stride: usize,
}

impl ConvShape {
    /// Output height `⌈(H − FH + S)/S⌉`.
    pub fn oh(&self) -> usize {
        (self.h - self.fh + self.stride).div_ceil(self.stride)
    }

    /// Output width `⌈(W − FW + S)/S⌉`.
    pub fn ow(&self) -> usize {
        (self.w - self.fw + self.stride).div_ceil(self.stride)
    }
}

/// One layer of a topology, as a GEMM of `m x k` times `k x n`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopologyLayer {
    /// Its name in the file.
    pub name: String,
    /// The file's line it came from (1-based).
    pub line: u64,
    /// Rows of X (output pixels of a conv).
    pub m: usize,
    /// The reduction (FH·FW·C of a conv).
    pub k: usize,
    /// Output columns (filters of a conv).
    pub n: usize,
    /// The convolution, for a conv file.
    pub conv: Option<ConvShape>,
}

impl TopologyLayer {
    /// `M·K·N`.
    pub fn macs(&self) -> u64 {
        self.m as u64 * self.k as u64 * self.n as u64
    }
}

/// A parsed topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// Its layout.
    pub format: Format,
    /// The layers, in file order.
    pub layers: Vec<TopologyLayer>,
    /// Header names of the columns beyond the format's, which are ignored.
    pub ignored_columns: Vec<String>,
}

/// A topology file that cannot be read: where and why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("line {line}{}: {problem}", field.as_ref().map(|f| format!(", field '{f}'")).unwrap_or_default())]
pub struct TopologyError {
    /// The 1-based line.
    pub line: u64,
    /// The column's name, when one field is at fault.
    pub field: Option<String>,
    /// What is wrong, lower case.
    pub problem: String,
}

fn fail(line: u64, field: Option<&str>, problem: impl Into<String>) -> TopologyError {
    TopologyError { line, field: field.map(str::to_string), problem: problem.into() }
}

/// A header cell as compared: lower case, runs of white space as one space.
fn normalise(cell: &str) -> String {
    cell.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// Which format a header row announces, from its second column (`IFMAP Height` or `M`), and
/// every expected column checked by name.
fn header_format(cells: &[String], line: u64) -> Result<Format, TopologyError> {
    let format = match cells.get(1).map(|c| normalise(c)).as_deref() {
        Some("ifmap height") => Format::Conv,
        Some("m") => Format::Gemm,
        _ => {
            return Err(fail(
                line,
                None,
                format!(
                    "not a SCALE-Sim topology header: expected '{}' (conv) or '{}' (GEMM), got '{}'",
                    CONV_COLUMNS.join(", "),
                    GEMM_COLUMNS.join(", "),
                    cells.join(", ")
                ),
            ))
        }
    };
    for (i, want) in format.columns().iter().enumerate() {
        let got = cells.get(i).map(|c| normalise(c)).unwrap_or_default();
        // SCALE-Sim's own GEMM files name the first column `Layer` or `Layer name`
        let alias = i == 0 && matches!(got.as_str(), "layer" | "layer name");
        if got != normalise(want) && !alias {
            return Err(fail(
                line,
                Some(want),
                format!(
                    "expected the header '{want}' in column {}, got '{}'",
                    i + 1,
                    cells.get(i).map_or("", |c| c)
                ),
            ));
        }
    }
    Ok(format)
}

fn positive(cell: Option<&String>, line: u64, field: &str) -> Result<usize, TopologyError> {
    let text = match cell.map(String::as_str) {
        None | Some("") => return Err(fail(line, Some(field), "missing")),
        Some(t) => t,
    };
    match text.parse::<usize>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(fail(line, Some(field), format!("'{text}' is not a positive integer"))),
    }
}

fn layer(format: Format, cells: &[String], line: u64) -> Result<TopologyLayer, TopologyError> {
    let cols = format.columns();
    let name = cells.first().cloned().unwrap_or_default();
    if name.is_empty() {
        return Err(fail(line, Some(cols[0]), "missing (every layer needs a name)"));
    }
    let mut v = [0usize; 7];
    for (i, field) in cols.iter().enumerate().skip(1) {
        v[i - 1] = positive(cells.get(i), line, field)?;
    }
    let overflow = |field: &str, what: &str| fail(line, Some(field), format!("{what} overflows"));
    match format {
        Format::Gemm => {
            let [m, n, k, ..] = v;
            Ok(TopologyLayer { name, line, m, k, n, conv: None })
        }
        Format::Conv => {
            let [h, w, fh, fw, c, filters, stride] = v;
            if fh > h {
                return Err(fail(line, Some(cols[3]), format!("{fh} is larger than the IFMAP Height {h}")));
            }
            if fw > w {
                return Err(fail(line, Some(cols[4]), format!("{fw} is larger than the IFMAP Width {w}")));
            }
            let conv = ConvShape { h, w, fh, fw, c, filters, stride };
            let m = conv.oh().checked_mul(conv.ow()).ok_or_else(|| overflow(cols[1], "OH·OW"))?;
            let k = fh
                .checked_mul(fw)
                .and_then(|a| a.checked_mul(c))
                .ok_or_else(|| overflow(cols[5], "Filter Height · Filter Width · Channels"))?;
            Ok(TopologyLayer { name, line, m, k, n: filters, conv: Some(conv) })
        }
    }
}

/// Parse a topology file's text (see the module docs).
pub fn parse(text: &[u8]) -> Result<Topology, TopologyError> {
    let mut reader =
        csv::ReaderBuilder::new().has_headers(false).flexible(true).trim(csv::Trim::All).from_reader(text);
    let mut format = None;
    let mut ignored_columns = Vec::new();
    let mut layers = Vec::new();
    for record in reader.records() {
        // lines counted from byte offsets: the reader's own count and a record's start
        // include the blank lines before it (CR LF ones miscounted), so those are skipped
        let line_at = |byte: u64| {
            let mut end = (byte as usize).min(text.len());
            while end < text.len() && matches!(text[end], b'\r' | b'\n') {
                end += 1;
            }
            1 + text[..end].iter().filter(|&&b| b == b'\n').count() as u64
        };
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| line_at(p.byte()));
            match e.kind() {
                csv::ErrorKind::Utf8 { .. } => fail(line, None, "not UTF-8 text"),
                _ => fail(line, None, e.to_string()),
            }
        })?;
        let line = record.position().map_or(0, |p| line_at(p.byte()));
        let mut cells: Vec<String> = record.iter().map(str::to_string).collect();
        // a trailing comma (or several) makes empty last cells: not columns
        while cells.last().is_some_and(String::is_empty) {
            cells.pop();
        }
        if cells.is_empty() {
            continue; // a blank or comma-only row
        }
        let Some(format) = format else {
            let f = header_format(&cells, line)?;
            ignored_columns = cells[f.columns().len()..].iter().filter(|c| !c.is_empty()).cloned().collect();
            format = Some(f);
            continue;
        };
        layers.push(layer(format, &cells, line)?);
    }
    let Some(format) = format else {
        return Err(fail(1, None, "empty: expected a SCALE-Sim topology header and at least one layer"));
    };
    if layers.is_empty() {
        let end = 1 + text.iter().filter(|&&b| b == b'\n').count() as u64;
        return Err(fail(end, None, "no layers after the header"));
    }
    Ok(Topology { format, layers, ignored_columns })
}

/// One layer's estimate (JSON: these names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LayerReport {
    /// The layer's name.
    pub name: String,
    /// Rows of X.
    pub m: usize,
    /// Reduction.
    pub k: usize,
    /// Output columns.
    pub n: usize,
    /// `M·K·N`.
    pub macs: u64,
    /// Whole-program cycles on the native model (X, weights and Y over the port).
    pub cycles: u64,
    /// The MATMULs alone, back to back (measured).
    pub compute_cycles: u64,
    /// `⌈macs / DIM²⌉`.
    pub physical_limit_cycles: u64,
    /// SCALE-Sim's weight-stationary formula for the same GEMM on a DIM x DIM array.
    pub scalesim_cycles: u64,
    /// `macs / (DIM² · cycles)`.
    pub utilization: f64,
    /// `macs / (DIM² · compute_cycles)`.
    pub compute_utilization: f64,
    /// SCALE-Sim's mapping efficiency: `K·N / (⌈K/DIM⌉·DIM · ⌈N/DIM⌉·DIM)`, the share of the
    /// PEs holding a weight over the folds.
    pub mapping_efficiency: f64,
    /// Words sent to the core.
    pub words_in: u64,
    /// Words the core sent back.
    pub words_out: u64,
    /// Energy of the whole program, pJ.
    pub energy_pj: f64,
    /// What bounds it.
    pub bound: Bound,
}

/// The layers run one after another: sums, and utilisations of the sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologyTotal {
    /// Number of layers.
    pub layers: usize,
    /// Σ MACs.
    pub macs: u64,
    /// Σ cycles.
    pub cycles: u64,
    /// Σ compute_cycles.
    pub compute_cycles: u64,
    /// Σ physical_limit_cycles.
    pub physical_limit_cycles: u64,
    /// Σ scalesim_cycles.
    pub scalesim_cycles: u64,
    /// `macs / (DIM² · cycles)`.
    pub utilization: f64,
    /// `macs / (DIM² · compute_cycles)`.
    pub compute_utilization: f64,
    /// Σ words_in.
    pub words_in: u64,
    /// Σ words_out.
    pub words_out: u64,
    /// Σ energy_pj.
    pub energy_pj: f64,
    /// The bound of the layers that take most of the cycles.
    pub bound: Bound,
    /// `cycles / clock`, seconds.
    pub time_s: f64,
}

/// A topology's estimate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopologyReport {
    /// The device.
    pub config: Config,
    /// Core clock, MHz.
    pub clock_mhz: f64,
    /// The technology table's name.
    pub tech: String,
    /// The file's layout.
    pub format: Format,
    /// Per layer, in file order.
    pub layers: Vec<LayerReport>,
    /// The whole network.
    pub total: TopologyTotal,
}

/// A layer whose estimate failed.
#[derive(Debug, Error)]
#[error("layer '{name}' (line {line}): {error}")]
pub struct LayerError {
    /// Its name.
    pub name: String,
    /// Its line.
    pub line: u64,
    /// Why.
    #[source]
    pub error: EstimateError,
}

fn mapping_efficiency(k: usize, n: usize, dim: usize) -> f64 {
    let (k, n, d) = (k as f64, n as f64, dim as f64);
    k * n / ((k / d).ceil() * d * (n / d).ceil() * d)
}

/// Estimate one layer.
pub fn estimate_layer(
    cfg: &Config,
    layer: &TopologyLayer,
    input: Input,
    opts: &Options,
) -> Result<LayerReport, EstimateError> {
    let e = estimate(cfg, &Workload::gemm(layer.m, layer.k, layer.n, input)?, opts)?;
    let dim = cfg.dim() as u64;
    Ok(LayerReport {
        name: layer.name.clone(),
        m: layer.m,
        k: layer.k,
        n: layer.n,
        macs: e.macs,
        cycles: e.cycles,
        compute_cycles: e.compute_cycles,
        physical_limit_cycles: e.physical_limit_cycles,
        scalesim_cycles: scalesim_cycles(layer.m as u64, layer.k as u64, layer.n as u64, dim, dim),
        utilization: e.utilization,
        compute_utilization: e.compute_utilization,
        mapping_efficiency: mapping_efficiency(layer.k, layer.n, cfg.dim()),
        words_in: e.words_in,
        words_out: e.words_out,
        energy_pj: e.energy_pj,
        bound: e.bound,
    })
}

/// Estimate every layer of `topology`, in parallel (rayon); `progress(done, total)` after each.
pub fn run(
    cfg: &Config,
    topology: &Topology,
    input: Input,
    opts: &Options,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<TopologyReport, LayerError> {
    let total = topology.layers.len();
    let done = AtomicUsize::new(0);
    let layers: Vec<LayerReport> = topology
        .layers
        .par_iter()
        .map(|l| {
            let r = estimate_layer(cfg, l, input, opts).map_err(|error| LayerError {
                name: l.name.clone(),
                line: l.line,
                error,
            })?;
            progress(done.fetch_add(1, Ordering::Relaxed) + 1, total);
            Ok(r)
        })
        .collect::<Result<_, _>>()?;
    Ok(TopologyReport::new(cfg, opts.clock_hz, &opts.tech.name, topology.format, layers))
}

impl TopologyReport {
    /// The report of `layers` (in file order) on `cfg`, with their totals.
    pub fn new(cfg: &Config, clock_hz: f64, tech: &str, format: Format, layers: Vec<LayerReport>) -> Self {
        TopologyReport {
            config: *cfg,
            clock_mhz: clock_hz / 1e6,
            tech: tech.to_string(),
            format,
            total: totals(cfg, &layers, clock_hz),
            layers,
        }
    }
}

fn totals(cfg: &Config, layers: &[LayerReport], clock_hz: f64) -> TopologyTotal {
    let sum = |f: fn(&LayerReport) -> u64| layers.iter().map(f).sum::<u64>();
    let d2 = (cfg.dim() * cfg.dim()) as f64;
    let (macs, cycles, compute) = (sum(|l| l.macs), sum(|l| l.cycles), sum(|l| l.compute_cycles));
    let util = |c: u64| if c == 0 { 0.0 } else { macs as f64 / (d2 * c as f64) };
    let cycles_bound_by = |b: Bound| layers.iter().filter(|l| l.bound == b).map(|l| l.cycles).sum::<u64>();
    let bound = [Bound::Array, Bound::Link, Bound::FrontEnd]
        .into_iter()
        .max_by_key(|&b| cycles_bound_by(b))
        .expect("three bounds");
    TopologyTotal {
        layers: layers.len(),
        macs,
        cycles,
        compute_cycles: compute,
        physical_limit_cycles: sum(|l| l.physical_limit_cycles),
        scalesim_cycles: sum(|l| l.scalesim_cycles),
        utilization: util(cycles),
        compute_utilization: util(compute),
        words_in: sum(|l| l.words_in),
        words_out: sum(|l| l.words_out),
        energy_pj: layers.iter().map(|l| l.energy_pj).sum(),
        bound,
        time_s: cycles as f64 / clock_hz,
    }
}

/// A bound as written in the JSON (`array`, `link`, `front_end`).
pub fn bound_name(b: Bound) -> &'static str {
    match b {
        Bound::Array => "array",
        Bound::Link => "link",
        Bound::FrontEnd => "front_end",
    }
}

/// The CSV report's header: SCALE-Sim's COMPUTE_REPORT.csv columns first (same names, same
/// order), then this estimator's.
pub const CSV_COLUMNS: [&str; 17] = [
    "LayerID",
    "Total Cycles",
    "Stall Cycles",
    "Overall Util %",
    "Mapping Efficiency %",
    "Compute Util %",
    "Layer name",
    "M",
    "K",
    "N",
    "MACs",
    "Compute Cycles",
    "Physical Limit Cycles",
    "SCALE-Sim Cycles",
    "Words In",
    "Words Out",
    "Energy pJ",
];

impl TopologyReport {
    /// The per-layer CSV, shaped like SCALE-Sim's COMPUTE_REPORT.csv: one row per layer,
    /// `Total Cycles` = cycles, `Stall Cycles` = cycles − compute_cycles, utilisations in %,
    /// then the other fields; the last column is `Bound`. Numbers are written in full
    /// (shortest round-trip form), so they parse back to the JSON's.
    pub fn to_csv(&self) -> String {
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        let mut header: Vec<&str> = CSV_COLUMNS.to_vec();
        header.push("Bound");
        w.write_record(&header).expect("writing to memory");
        for (i, l) in self.layers.iter().enumerate() {
            let row = [
                i.to_string(),
                l.cycles.to_string(),
                (l.cycles - l.compute_cycles.min(l.cycles)).to_string(),
                (100.0 * l.utilization).to_string(),
                (100.0 * l.mapping_efficiency).to_string(),
                (100.0 * l.compute_utilization).to_string(),
                l.name.clone(),
                l.m.to_string(),
                l.k.to_string(),
                l.n.to_string(),
                l.macs.to_string(),
                l.compute_cycles.to_string(),
                l.physical_limit_cycles.to_string(),
                l.scalesim_cycles.to_string(),
                l.words_in.to_string(),
                l.words_out.to_string(),
                l.energy_pj.to_string(),
                bound_name(l.bound).to_string(),
            ];
            w.write_record(&row).expect("writing to memory");
        }
        String::from_utf8(w.into_inner().expect("writing to memory")).expect("the fields are UTF-8")
    }
}

impl fmt::Display for TopologyReport {
    /// The per-layer table and the totals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} layers on {}, clock {} MHz, {}",
            self.layers.len(),
            self.config,
            self.clock_mhz,
            self.tech
        )?;
        let width = self.layers.iter().map(|l| l.name.chars().count()).max().unwrap_or(0).clamp(5, 24);
        writeln!(
            f,
            "{:<width$} {:>7} {:>6} {:>5} {:>13} {:>12} {:>12} {:>12} {:>12} {:>6} {:>6} {:>11} {:>9}",
            "layer",
            "M",
            "K",
            "N",
            "MACs",
            "cycles",
            "compute",
            "phys.limit",
            "SCALE-Sim",
            "util",
            "comp.",
            "energy",
            "bound"
        )?;
        let row = |f: &mut fmt::Formatter<'_>, name: &str, mkn: [String; 3], t: TotalsRow| {
            writeln!(
                f,
                "{:<width$} {:>7} {:>6} {:>5} {:>13} {:>12} {:>12} {:>12} {:>12} {:>5.1}% {:>5.1}% {:>11} {:>9}",
                name,
                mkn[0],
                mkn[1],
                mkn[2],
                t.macs,
                t.cycles,
                t.compute,
                t.physical,
                t.scalesim,
                100.0 * t.util,
                100.0 * t.compute_util,
                super::si(t.energy_pj * 1e-12, "J"),
                bound_name(t.bound)
            )
        };
        for l in &self.layers {
            let name: String = l.name.chars().take(width).collect();
            row(
                f,
                &name,
                [l.m.to_string(), l.k.to_string(), l.n.to_string()],
                TotalsRow {
                    macs: l.macs,
                    cycles: l.cycles,
                    compute: l.compute_cycles,
                    physical: l.physical_limit_cycles,
                    scalesim: l.scalesim_cycles,
                    util: l.utilization,
                    compute_util: l.compute_utilization,
                    energy_pj: l.energy_pj,
                    bound: l.bound,
                },
            )?;
        }
        let t = &self.total;
        row(
            f,
            "total",
            [String::new(), String::new(), String::new()],
            TotalsRow {
                macs: t.macs,
                cycles: t.cycles,
                compute: t.compute_cycles,
                physical: t.physical_limit_cycles,
                scalesim: t.scalesim_cycles,
                util: t.utilization,
                compute_util: t.compute_utilization,
                energy_pj: t.energy_pj,
                bound: t.bound,
            },
        )?;
        writeln!(
            f,
            "time {} at {} MHz; words in {}, out {}",
            super::si(t.time_s, "s"),
            self.clock_mhz,
            t.words_in,
            t.words_out
        )
    }
}

struct TotalsRow {
    macs: u64,
    cycles: u64,
    compute: u64,
    physical: u64,
    scalesim: u64,
    util: f64,
    compute_util: f64,
    energy_pj: f64,
    bound: Bound,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        parse(text.as_bytes()).unwrap_err().to_string()
    }

    const CONV_HEADER: &str =
        "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,\n";

    #[test]
    fn conv_rows_lower_by_scalesims_formula() {
        // spaces around fields, trailing commas, the last line without a newline
        let text = format!("{CONV_HEADER}Conv1, 227, 227, 11, 11, 3, 96, 4,\n  Conv2 ,31,31,5,5,96,256,1,\nodd, 8, 9, 3, 2, 5, 7, 2");
        let t = parse(text.as_bytes()).unwrap();
        assert_eq!(t.format, Format::Conv);
        assert!(t.ignored_columns.is_empty());
        let mkn: Vec<_> = t.layers.iter().map(|l| (l.name.as_str(), l.m, l.k, l.n, l.line)).collect();
        // AlexNet conv1: (227 - 11 + 4)/4 = 55 → 55·55 rows, 11·11·3 = 363
        // conv2: (31 - 5 + 1)/1 = 27; odd: ⌈(8 - 3 + 2)/2⌉ = 4 by ⌈(9 - 2 + 2)/2⌉ = 5
        assert_eq!(
            mkn,
            vec![("Conv1", 3025, 363, 96, 2), ("Conv2", 729, 2400, 256, 3), ("odd", 20, 30, 7, 4)]
        );
        assert_eq!(t.layers[2].conv.unwrap().oh(), 4);
        assert_eq!(t.layers[0].macs(), 3025 * 363 * 96);
    }

    #[test]
    fn gemm_files_read_m_n_k_in_that_order() {
        let t = parse(b"Layer, M, N, K,\nfc1, 64, 1000, 2048,\n").unwrap();
        assert_eq!(t.format, Format::Gemm);
        let l = &t.layers[0];
        assert_eq!((l.m, l.k, l.n, l.conv), (64, 2048, 1000, None));
        // `Layer name` as the first header also reads, case and spacing do not matter
        let t = parse(b"layer NAME,m,n,k\nx,1,2,3").unwrap();
        assert_eq!((t.layers[0].m, t.layers[0].k, t.layers[0].n), (1, 3, 2));
    }

    #[test]
    fn blank_and_comma_only_rows_are_skipped_and_lines_still_count() {
        let text = "\n\nLayer, M, N, K,\n\n,,,,\n , , \na, 1, 2, 3,\r\n\r\nb,4,5,6\n,,,\n";
        let t = parse(text.as_bytes()).unwrap();
        let lines: Vec<_> = t.layers.iter().map(|l| (l.name.as_str(), l.line)).collect();
        assert_eq!(lines, vec![("a", 7), ("b", 9)]);
    }

    #[test]
    fn extra_columns_are_ignored_and_named() {
        let t = parse(b"Layer, M, N, K, Sparsity, Notes,\na, 1, 2, 3, 0.5, dense,\nb, 4, 5, 6\n").unwrap();
        assert_eq!(t.ignored_columns, vec!["Sparsity".to_string(), "Notes".to_string()]);
        assert_eq!(t.layers.len(), 2);
        assert_eq!(t.layers[1].n, 5);
    }

    #[test]
    fn bad_rows_name_the_line_and_the_field() {
        let h = "Layer, M, N, K,\n";
        assert_eq!(
            err(&format!("{h}a, 1, 2, 3\nb, 4, x, 6\n")),
            "line 3, field 'N': 'x' is not a positive integer"
        );
        assert_eq!(err(&format!("{h}a, 1, 0, 3\n")), "line 2, field 'N': '0' is not a positive integer");
        assert_eq!(err(&format!("{h}a, 1, -2, 3\n")), "line 2, field 'N': '-2' is not a positive integer");
        assert_eq!(err(&format!("{h}a, 1, 2\n")), "line 2, field 'K': missing");
        assert_eq!(err(&format!("{h}a, 1, , 3\n")), "line 2, field 'N': missing");
        assert_eq!(
            err(&format!("{h}, 1, 2, 3\n")),
            "line 2, field 'Layer': missing (every layer needs a name)"
        );
        assert_eq!(
            err(&format!("{h}a, 99999999999999999999999, 2, 3\n")),
            "line 2, field 'M': '99999999999999999999999' is not a positive integer"
        );
        assert_eq!(
            err(&format!("{CONV_HEADER}c, 5, 5, 7, 3, 1, 1, 1\n")),
            "line 2, field 'Filter Height': 7 is larger than the IFMAP Height 5"
        );
        assert_eq!(
            err(&format!("{CONV_HEADER}c, 5, 5, 3, 3, 1, 1, 0\n")),
            "line 2, field 'Strides': '0' is not a positive integer"
        );
        let big = "4294967296";
        assert_eq!(
            err(&format!("{CONV_HEADER}c, 5, 5, 3, 3, {big}{big}, 1, 1\n")),
            format!("line 2, field 'Channels': '{big}{big}' is not a positive integer")
        );
        assert_eq!(
            err(&format!("{CONV_HEADER}c, 5, 5, 3, {big}, {big}, 1, 1\n")),
            format!("line 2, field 'Filter Width': {big} is larger than the IFMAP Width 5")
        );
        assert_eq!(
            err(&format!("{CONV_HEADER}c, 5, {big}, 3, {big}, {big}, 1, 1\n")),
            "line 2, field 'Channels': Filter Height · Filter Width · Channels overflows"
        );
    }

    #[test]
    fn bad_headers_and_empty_files_are_refused() {
        assert!(err("name, rows, cols\na,1,2\n").starts_with("line 1: not a SCALE-Sim topology header"));
        assert_eq!(
            err("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Filters, Strides\n"),
            "line 1, field 'Num Filter': expected the header 'Num Filter' in column 7, got 'Filters'"
        );
        assert_eq!(err(""), "line 1: empty: expected a SCALE-Sim topology header and at least one layer");
        assert_eq!(
            err(" ,,\n\n"),
            "line 1: empty: expected a SCALE-Sim topology header and at least one layer"
        );
        assert!(err("Layer, M, N, K,\n,,,\n").ends_with("no layers after the header"));
        assert_eq!(err("Layer, M, N, K\na, 1, 2, 3\n\u{ff}\u{fe}"), "line 3, field 'M': missing");
        let bytes = b"Layer, M, N, K\na, 1, 2, 3\nb\xff, 1, 2, 3\n";
        assert_eq!(parse(bytes).unwrap_err().to_string(), "line 3: not UTF-8 text");
    }

    #[test]
    fn mapping_efficiency_counts_the_pes_holding_weights() {
        assert_eq!(mapping_efficiency(16, 16, 16), 1.0);
        assert_eq!(mapping_efficiency(363, 96, 16), 363.0 * 96.0 / (368.0 * 96.0));
        assert_eq!(mapping_efficiency(3, 7, 8), 21.0 / 64.0);
    }

    /// A conv file through the native model: each layer's M, K, N from the formula, its
    /// compute cycles exactly SCALE-Sim's count less F·(3·DIM − 3) plus 2·DIM − 1 (one chunk,
    /// docs/estimates.md), never faster than the physical limit, and totals that add up.
    #[test]
    fn layers_estimate_on_the_native_model_and_relate_to_scalesim() {
        let text = format!(
            "{CONV_HEADER}c1, 9, 9, 3, 3, 2, 5, 2,\nc2, 6, 7, 2, 3, 3, 9, 1,\n,,\nc3, 5, 5, 5, 5, 1, 4, 1\n"
        );
        let topo = parse(text.as_bytes()).unwrap();
        let mkn: Vec<_> = topo.layers.iter().map(|l| (l.m, l.k, l.n)).collect();
        // c1: ⌈(9 − 3 + 2)/2⌉ = 4 → 16 rows, K = 18; c2: 5 by 5, K = 18; c3: 1 row, K = 25
        assert_eq!(mkn, vec![(16, 18, 5), (25, 18, 9), (1, 25, 4)]);
        let cfg = Config::new(4, 256, 128).unwrap();
        let opts = Options::at_clock(100e6);
        let calls = AtomicUsize::new(0);
        let report = run(&cfg, &topo, Input::Random { seed: 3 }, &opts, &|_, total| {
            assert_eq!(total, 3);
            calls.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(calls.into_inner(), 3);
        let dim = 4u64;
        for (l, t) in report.layers.iter().zip(&topo.layers) {
            assert_eq!((l.name.as_str(), l.m, l.k, l.n), (t.name.as_str(), t.m, t.k, t.n));
            assert_eq!(l.macs, t.macs());
            assert_eq!(l.physical_limit_cycles, l.macs.div_ceil(dim * dim));
            assert!(
                l.cycles >= l.physical_limit_cycles && l.compute_cycles >= l.physical_limit_cycles,
                "{l:?}"
            );
            assert!(l.cycles > l.compute_cycles, "{l:?}");
            let folds = (t.k as u64).div_ceil(dim) * (t.n as u64).div_ceil(dim);
            assert_eq!(l.scalesim_cycles, (2 * dim + dim + t.m as u64 - 2) * folds);
            if t.m >= 3 {
                assert_eq!(
                    l.compute_cycles + folds * (3 * dim - 3),
                    l.scalesim_cycles + 2 * dim - 1,
                    "{l:?}"
                );
            }
            // the same layer alone, as a plain GEMM estimate
            let alone =
                estimate(&cfg, &Workload::gemm(t.m, t.k, t.n, Input::Random { seed: 3 }).unwrap(), &opts)
                    .unwrap();
            assert_eq!(
                (l.cycles, l.compute_cycles, l.energy_pj),
                (alone.cycles, alone.compute_cycles, alone.energy_pj)
            );
        }
        let t = &report.total;
        assert_eq!(t.layers, 3);
        assert_eq!(t.cycles, report.layers.iter().map(|l| l.cycles).sum::<u64>());
        assert_eq!(t.macs, 16 * 18 * 5 + 25 * 18 * 9 + 25 * 4);
        assert_eq!(t.utilization, t.macs as f64 / (16.0 * t.cycles as f64));
        assert_eq!(t.time_s, t.cycles as f64 / 100e6);

        // the CSV carries the JSON's numbers, column by column
        let json: serde_json::Value = serde_json::to_value(&report).unwrap();
        let text = report.to_csv();
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let header: Vec<String> = rows.headers().unwrap().iter().map(str::to_string).collect();
        assert_eq!(
            &header[..6],
            [
                "LayerID",
                "Total Cycles",
                "Stall Cycles",
                "Overall Util %",
                "Mapping Efficiency %",
                "Compute Util %"
            ]
        );
        let mut n = 0;
        for (i, row) in rows.records().enumerate() {
            let row = row.unwrap();
            let l = &json["layers"][i];
            let col =
                |name: &str| row.get(header.iter().position(|h| h == name).unwrap()).unwrap().to_string();
            let f = |name: &str| col(name).parse::<f64>().unwrap();
            assert_eq!(col("LayerID"), i.to_string());
            assert_eq!(col("Layer name"), l["name"].as_str().unwrap());
            for (c, j) in [
                ("Total Cycles", "cycles"),
                ("Compute Cycles", "compute_cycles"),
                ("M", "m"),
                ("K", "k"),
                ("N", "n"),
                ("MACs", "macs"),
                ("Physical Limit Cycles", "physical_limit_cycles"),
                ("SCALE-Sim Cycles", "scalesim_cycles"),
                ("Words In", "words_in"),
                ("Words Out", "words_out"),
            ] {
                assert_eq!(col(c), l[j].as_u64().unwrap().to_string(), "{c}");
            }
            assert_eq!(
                f("Stall Cycles"),
                (l["cycles"].as_u64().unwrap() - l["compute_cycles"].as_u64().unwrap()) as f64
            );
            assert_eq!(f("Overall Util %"), 100.0 * l["utilization"].as_f64().unwrap());
            assert_eq!(f("Compute Util %"), 100.0 * l["compute_utilization"].as_f64().unwrap());
            assert_eq!(f("Mapping Efficiency %"), 100.0 * l["mapping_efficiency"].as_f64().unwrap());
            assert_eq!(f("Energy pJ"), l["energy_pj"].as_f64().unwrap());
            assert_eq!(col("Bound"), l["bound"].as_str().unwrap());
            n += 1;
        }
        assert_eq!(n, 3);
        // the plot draws
        let svg = crate::plots::topology_svg(&report, "test").unwrap();
        assert!(svg.contains("c2") && svg.contains("utilisation per layer"));
    }
}
