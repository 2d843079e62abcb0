//! The tiling compiler: `Y = act(X·W + b)` and chains of such layers (MLPs), for any M, K, N,
//! into a [`Program`] for one [`Config`].
//!
//! ```text
//!            K (kt tiles of DIM)                 N (nt tiles)              scratchpad (rows of DIM int8)
//!        ┌────┬────┬────┐              ┌────┬────┬────┬────┐           ┌──────────────────────┐ 0
//!   M  ┌ │x00 │x01 │x02 │ chunk 0   K  │w00 │w01 │w02 │w03 │           │ X block kt=0 (mc rows)│
//!  rows│ ├────┼────┼────┤  (mc rows)   ├────┼────┼────┼────┤           │ X block kt=1          │
//!      └ │x10 │x11 │x12 │ chunk 1      │w10 │ .. │    │    │           │ ...                   │
//!        └────┴────┴────┘              └────┴────┴────┴────┘           │        (free)         │
//!                                                                      │ Y block nt=0 (mc rows)│
//!   per chunk, per group of g N-tiles (g·mc accumulator rows):         │ Y block nt=1          │
//!     for nt in group, for kt:  LOAD_WEIGHTS w[kt][nt]                 └──────────────────────┘ SCRATCH_ROWS
//!                               MATMUL X block kt -> acc block nt (accumulate = kt > 0)
//!     for nt in group:          LOAD_BIAS b[nt]; ACTIVATE acc block nt -> Y block nt   (int8)
//!                               or READ_ACC acc block nt, bias added on the host     (raw)
//! ```
//!
//! * **K** is cut into `kt` tiles of DIM; a tile's MATMULs accumulate into the same
//!   accumulator rows (`accumulate = true` after the first). If the X blocks of a chunk do not
//!   fit the scratchpad, they are written in slabs of `ks` tiles (and rewritten per group).
//! * **N** is cut into `nt` tiles; tile `nt` of a group lives in accumulator rows
//!   `(nt - g0)·mc ..`. A layer whose whole output fits the accumulators runs all its MATMULs
//!   before any ACTIVATE, so its output may overwrite its own input ("in place").
//! * **M** is cut into chunks of `mc` rows, the largest (balanced) size that fits both
//!   memories; among the sizes that fit, the one sending the fewest words wins (fewer chunks
//!   mean fewer weight reloads).
//! * **Layers chain on chip**: ACTIVATE writes a layer's output blocks exactly where the next
//!   layer reads its X blocks (the other end of the scratchpad, or in place), so only the last
//!   layer of a chain is read back. Layers are chained greedily; where the activations do not
//!   fit, the chain ends: its output is read back and written again (a `WriteBack` step) as
//!   the input of the next chain.
//! * **Overlap**: the core runs a MATMUL in the background while its front end takes the next
//!   command (DESIGN.md, `hdl::controller`): LOAD_WEIGHTS fills the shadow bank and the next
//!   MATMUL's arguments are parsed meanwhile; SYNC waits for the array, ACTIVATE and READ_*
//!   for the banks they touch. So every LOAD_WEIGHTS is placed right after the previous
//!   MATMUL (hoisted above ACTIVATEs, bias loads and reads, which do not touch the weights),
//!   and a weight tile or bias already on the device is not sent again.
//! * **Double buffering**: the core's memories are two banks each (the halves), and a command
//!   waits only for a MATMUL in the banks it touches. Where a chain fits in half of each
//!   memory and that is estimated faster ([`Plan::double_buffered`]), even chunks use the low
//!   halves and odd chunks the high ones, and the steps are software pipelined: chunk `c`'s
//!   MATMULs are interleaved with chunk `c − 1`'s last ACTIVATEs and read-backs and chunk
//!   `c + 1`'s WRITE_ACTs ([`Pipeline`]), so the link moves data while the array computes.
//!   Each MATMUL's window gets its share by a model of the front end's time ([`interleave`]:
//!   the ACTIVATE engine and the read-backs that wait for it, weight loads after the window's
//!   data, long data steps in pieces), the weight loads stay where it puts them, and a chunk's
//!   input and output are kept apart where both fit a half. The pipeline's fill and drain:
//!   the first chunk writes only its first K-tile of X before its first MATMUL, the others
//!   beside its MATMULs (WRITE_ACT waits only for a MATMUL reading its rows); the last chunk's
//!   second-last N-tile computes into the other accumulator half and its outputs go to the
//!   other scratchpad half, so its earlier N-tiles are activated and read back beside its own
//!   later MATMULs and only the last N-tile drains after the last MATMUL.
//! * Padding: partial tiles are padded with zeros (weights, X columns, bias), so padded
//!   columns compute `act(0) = 0` and padded K rows contribute nothing.

use crate::program::{Block, Program, ResultKind, ResultSpec, Step};
use nalgebra::{DMatrix, DVector};
use serde::{Deserialize, Serialize};
use spec::isa::Command;
use spec::{ColumnScale, Config, LayerQuant, Quant, ShapeError};
use std::ops::Range;
use thiserror::Error;

/// The token of the SYNC that ends every program (its echo proves every command completed and
/// none was refused).
pub const END_TOKEN: u32 = 0x7062_656E;

/// Largest row count of one command (16-bit field).
const MAX_CMD_ROWS: usize = u16::MAX as usize;

/// One layer `Y = act(X·W + b)`: K x N int8 weights, N int32 biases, the requantisation:
/// a v1 [`Quant`] (per-tensor, ReLU is [`Quant::relu`], zero point 0; [`Layer::new`]) or a
/// contract v2 [`LayerQuant`] (per-column scales, output zero point; [`Layer::with_quant`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawLayer", into = "RawLayer")]
pub struct Layer {
    weights: DMatrix<i8>,
    bias: DVector<i32>,
    quant: LayerQuant,
}

/// The serialised form of a [`Layer`]: weights row-major (`weights[k * n_cols + n]`). A v2
/// layer adds `scales` (per column; `quant`'s M and S are then column 0's) and/or a nonzero
/// `zero_point`; a v1 layer serialises exactly as before.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayer {
    k: usize,
    n: usize,
    weights: Vec<i8>,
    bias: Vec<i32>,
    quant: Quant,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scales: Option<Vec<ColumnScale>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    zero_point: i8,
}

pub(crate) fn is_zero(z: &i8) -> bool {
    *z == 0
}

/// A layer from a model file's fields: row-major weights, the v1 `quant`, and contract v2's
/// optional per-column `scales` (`quant`'s M and S are then column 0's) and `zero_point`.
pub(crate) fn layer_from_parts(
    k: usize,
    n: usize,
    weights: &[i8],
    bias: Vec<i32>,
    quant: Quant,
    scales: Option<Vec<ColumnScale>>,
    zero_point: i8,
) -> Result<Layer, CompileError> {
    let layer = Layer::from_row_major(k, n, weights, bias, quant)?;
    if scales.is_none() && zero_point == 0 {
        return Ok(layer);
    }
    let scales = scales.unwrap_or_else(|| vec![quant.into()]);
    let q = LayerQuant::per_column(scales, quant.relu, zero_point)
        .map_err(|e| CompileError::Quant(e.to_string()))?;
    Layer::with_quant(layer.weights, layer.bias, q)
}

/// A layer's contract v2 fields for a model file: `scales` if per-column, and `zero_point`.
pub(crate) fn layer_v2_parts(layer: &Layer) -> (Option<Vec<ColumnScale>>, i8) {
    let q = &layer.quant;
    ((!q.is_per_tensor()).then(|| q.scales().to_vec()), q.zero_point())
}

/// A layer's weights, row-major (`weights[k * n + j]` is `W[k][j]`).
pub(crate) fn row_major(layer: &Layer) -> Vec<i8> {
    let w = &layer.weights;
    (0..w.nrows()).flat_map(|r| (0..w.ncols()).map(move |c| w[(r, c)])).collect()
}

impl TryFrom<RawLayer> for Layer {
    type Error = CompileError;
    fn try_from(r: RawLayer) -> Result<Self, CompileError> {
        layer_from_parts(r.k, r.n, &r.weights, r.bias, r.quant, r.scales, r.zero_point)
    }
}

impl From<Layer> for RawLayer {
    fn from(l: Layer) -> Self {
        let (scales, zero_point) = layer_v2_parts(&l);
        RawLayer {
            k: l.k(),
            n: l.n(),
            weights: row_major(&l),
            bias: l.bias.iter().copied().collect(),
            quant: l.quant(),
            scales,
            zero_point,
        }
    }
}

impl Layer {
    /// A layer with a v1 (per-tensor, zero point 0) quantisation; the bias must have one
    /// element per column of `weights`.
    pub fn new(weights: DMatrix<i8>, bias: DVector<i32>, quant: Quant) -> Result<Self, CompileError> {
        Layer::with_quant(weights, bias, quant.into())
    }

    /// A layer with a contract v2 quantisation: per-tensor or one scale per column of
    /// `weights`, ReLU, output zero point. The bias must have one element per column.
    pub fn with_quant(
        weights: DMatrix<i8>,
        bias: DVector<i32>,
        quant: LayerQuant,
    ) -> Result<Self, CompileError> {
        if bias.len() != weights.ncols() {
            return Err(ShapeError::Bias { bias: bias.len(), n: weights.ncols() }.into());
        }
        if !quant.fits(weights.ncols()) {
            return Err(ShapeError::Scales { scales: quant.scales().len(), n: weights.ncols() }.into());
        }
        Ok(Layer { weights, bias, quant })
    }

    /// A layer from row-major weights (`weights[k * n + j]` is `W[k][j]`), as read from a file.
    pub fn from_row_major(
        k: usize,
        n: usize,
        weights: &[i8],
        bias: Vec<i32>,
        quant: Quant,
    ) -> Result<Self, CompileError> {
        // checked: a wrapped k * n could equal a short slice and build a matrix larger than it
        if k.checked_mul(n) != Some(weights.len()) {
            return Err(CompileError::WeightCount { k, n, got: weights.len() });
        }
        Layer::new(DMatrix::from_row_slice(k, n, weights), DVector::from_vec(bias), quant)
    }

    /// K x N weights.
    pub fn weights(&self) -> &DMatrix<i8> {
        &self.weights
    }
    /// N biases.
    pub fn bias(&self) -> &DVector<i32> {
        &self.bias
    }
    /// The requantisation as a v1 [`Quant`] (with the ReLU flag): exact for a layer built with
    /// [`Layer::new`]; for a v2 layer, column 0's scale and ReLU (see [`Layer::layer_quant`]).
    pub fn quant(&self) -> Quant {
        self.quant.scale(0).with_relu(self.quant.relu())
    }
    /// The full (contract v2) requantisation.
    pub fn layer_quant(&self) -> &LayerQuant {
        &self.quant
    }
    /// Inputs (rows of W).
    pub fn k(&self) -> usize {
        self.weights.nrows()
    }
    /// Outputs (columns of W).
    pub fn n(&self) -> usize {
        self.weights.ncols()
    }
}

/// What the last layer returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputKind {
    /// `act(X·W + b)`: int8 (ACTIVATE, READ_ACT).
    Int8,
    /// `X·W + b`: raw int32 logits (READ_ACC, bias added on the host); the last layer's
    /// [`Quant`] is not used.
    Raw,
}

/// Why a computation cannot be compiled.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CompileError {
    /// X and W (or W and b) do not fit together.
    #[error(transparent)]
    Shape(#[from] ShapeError),
    /// Consecutive layers do not fit together.
    #[error("layer {layer} takes K = {k} inputs but layer {} produces N = {n} outputs", layer - 1)]
    Chain {
        /// The layer whose K is wrong.
        layer: usize,
        /// Its K.
        k: usize,
        /// The previous layer's N.
        n: usize,
    },
    /// Row-major weights of the wrong length.
    #[error("weights of a {k}x{n} layer need {} elements, got {got}", (*k as u128) * (*n as u128))]
    WeightCount {
        /// Rows.
        k: usize,
        /// Columns.
        n: usize,
        /// Elements given.
        got: usize,
    },
    /// An MLP without layers.
    #[error("an MLP needs at least one layer")]
    NoLayers,
    /// A network whose layers or input do not fit together (`crate::network`).
    #[error("{0}")]
    Network(String),
    /// A serialised layer's quantisation is invalid.
    #[error("layer quantisation: {0}")]
    Quant(String),
    /// The device's memories cannot hold even one row of the layer.
    #[error(
        "layer {layer} (K = {k}, N = {n}) does not fit {config}: an int8 output needs one scratchpad \
         row for the input and one for the output (2 rows), unless K and N are at most DIM"
    )]
    TooSmall {
        /// The layer.
        layer: usize,
        /// Its K.
        k: usize,
        /// Its N.
        n: usize,
        /// The device.
        config: Config,
    },
}

/// How one layer is tiled (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerTiling {
    /// K tiles of DIM.
    pub k_tiles: usize,
    /// N tiles of DIM.
    pub n_tiles: usize,
    /// N tiles held in the accumulators at once.
    pub group: usize,
    /// K tiles of X resident in the scratchpad at once (`< k_tiles`: X is written in slabs).
    pub slab: usize,
    /// All MATMULs of a chunk run before its ACTIVATEs, the output overwrites the input.
    pub in_place: bool,
}

/// A chain of layers run on chip without reading back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Layer indices.
    pub layers: Range<usize>,
    /// Rows of X per chunk.
    pub chunk_rows: usize,
    /// Chunks.
    pub chunks: usize,
    /// Tiling of each layer of the chain.
    pub tiling: Vec<LayerTiling>,
}

/// How a computation is cut up: chains of layers, each run chunk by chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The device.
    pub config: Config,
    /// Scratchpad rows for the activations of one chunk: `0 .. scratch_rows` (the rows above
    /// are resident weight tiles, see [`Residency`]; `config.scratch_rows()` without them), or
    /// with double buffering the rows of each half.
    pub scratch_rows: usize,
    /// Rows of X.
    pub m: usize,
    /// The chains, in order; more than one means host round trips.
    pub segments: Vec<Segment>,
    /// Double buffered (the banked memories, docs/design.md): chunk `c` of a chain computes in
    /// the low halves of the scratchpad and the accumulators if `c` is even, the high halves
    /// (from rows `config.scratch_bank_rows()` / `config.acc_bank_rows()`) if odd, and its
    /// activations are written and its results read back while the next and the previous
    /// chunks compute.
    #[serde(default)]
    pub double_buffered: bool,
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.double_buffered {
            writeln!(f, "double buffered: chunks alternate between the memories' halves")?;
        }
        for s in &self.segments {
            writeln!(
                f,
                "layers {}..{} on chip: {} chunk(s) of up to {} rows",
                s.layers.start, s.layers.end, s.chunks, s.chunk_rows
            )?;
            for (l, t) in s.layers.clone().zip(&s.tiling) {
                writeln!(
                    f,
                    "  layer {l}: {}x{} tiles, {} N-tile(s) per accumulator group, {} K-tile(s) resident{}",
                    t.k_tiles,
                    t.n_tiles,
                    t.group,
                    t.slab,
                    if t.in_place { ", in place" } else { "" }
                )?;
            }
        }
        Ok(())
    }
}

/// What happens to a layer's output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    /// Stays on chip as the next layer's input.
    Chain,
    /// Read back as int8.
    Int8,
    /// Read back raw.
    Raw,
}

/// K and N in tiles; at least one tile each (a zero-sized dimension computes on a zero tile).
#[derive(Debug, Clone, Copy)]
struct Geom {
    kt: usize,
    nt: usize,
}

impl Geom {
    fn new(k: usize, n: usize, dim: usize) -> Self {
        Geom { kt: k.div_ceil(dim).max(1), nt: n.div_ceil(dim).max(1) }
    }
}

/// The tiling of one layer for chunks of `mc` rows, if it fits.
fn plan_layer(
    a: usize,
    s: usize,
    g: Geom,
    mc: usize,
    first: bool,
    out: Out,
    apart: bool,
) -> Option<LayerTiling> {
    let (kt, nt) = (g.kt, g.nt);
    let out_rows = |group: usize| match out {
        Out::Chain => nt.saturating_mul(mc),
        Out::Int8 => group.saturating_mul(mc),
        Out::Raw => 0,
    };
    // saturating: hostile sizes (K or N near 2^64) must plan to "does not fit", not wrap
    // double buffered, the input and output apart where both fit: the next chunk's X is then
    // written while this chunk's results are activated and read back (in place, each write
    // waits for the read-back of the rows it overwrites)
    let apart =
        apart && nt.saturating_mul(mc) <= a && kt.saturating_mul(mc).saturating_add(out_rows(nt)) <= s;
    if !apart && nt.saturating_mul(mc) <= a && kt.saturating_mul(mc).max(out_rows(nt)) <= s {
        return Some(LayerTiling { k_tiles: kt, n_tiles: nt, group: nt, slab: kt, in_place: true });
    }
    // input and output regions side by side: the largest group that fits both memories
    let group_for = |in_rows: usize| -> usize {
        if in_rows > s {
            return 0;
        }
        let room = s - in_rows;
        let group = nt.min(a / mc);
        match out {
            Out::Chain if nt.saturating_mul(mc) <= room => group,
            Out::Chain => 0,
            Out::Int8 => group.min(room / mc),
            Out::Raw => group,
        }
    };
    let group = group_for(kt.saturating_mul(mc));
    if group >= 1 {
        return Some(LayerTiling { k_tiles: kt, n_tiles: nt, group, slab: kt, in_place: false });
    }
    if !first {
        return None; // a chained layer's input is on chip already, whole
    }
    // X in slabs: one-tile slabs leave the most room for the output group
    let group = group_for(mc);
    if group == 0 {
        return None;
    }
    let slab = (s.saturating_sub(out_rows(group)) / mc).min(kt);
    Some(LayerTiling { k_tiles: kt, n_tiles: nt, group, slab, in_place: false })
}

/// The tilings of layers `layers` for chunks of `mc` rows, if they fit; `apart`: keep each
/// layer's input and output apart where both fit (double buffering).
fn plan_segment(
    a: usize,
    s: usize,
    geoms: &[Geom],
    layers: Range<usize>,
    mc: usize,
    last: Out,
    apart: bool,
) -> Option<Vec<LayerTiling>> {
    let end = layers.end;
    layers
        .clone()
        .map(|l| {
            let out = if l + 1 == end { last } else { Out::Chain };
            plan_layer(a, s, geoms[l], mc, l == layers.start, out, apart)
        })
        .collect()
}

/// LOAD_WEIGHTS of a layer of `g` tiles over `chunks` chunks: once if it is one tile (it stays
/// in the array), else every tile per chunk. Saturating.
fn tile_loads(g: Geom, chunks: u128) -> u128 {
    let tiles = g.kt as u128 * g.nt as u128;
    if tiles == 1 {
        1
    } else {
        chunks.saturating_mul(tiles)
    }
}

/// Words a segment sends for chunks of `mc` rows (the objective when choosing `mc`), in 128
/// bits and saturated: hostile sizes give `u64::MAX`, never a wrapped small count.
fn segment_cost(
    cfg: &Config,
    geoms: &[Geom],
    layers: Range<usize>,
    m: usize,
    mc: usize,
    tiling: &[LayerTiling],
) -> u64 {
    segment_units(cfg, geoms, layers, m, mc, tiling, Units::words(cfg))
}

/// What a row costs on the link: words, or beats at LANES > 1 (where the front end takes a
/// beat a cycle, so beats are its cycles).
#[derive(Debug, Clone, Copy)]
struct Units {
    /// An int8 row (⌈DIM/4⌉ words).
    row: u128,
    /// A row of DIM words (bias, quantisation, an int32 row).
    dim_row: u128,
}

impl Units {
    fn words(cfg: &Config) -> Self {
        Units { row: cfg.words_per_row() as u128, dim_row: cfg.dim() as u128 }
    }

    fn beats(cfg: &Config) -> Self {
        let l = cfg.lanes();
        Units { row: l.beats(cfg.words_per_row() as u64).into(), dim_row: l.beats(cfg.dim() as u64).into() }
    }
}

/// [`segment_cost`] in `units` (words or beats).
fn segment_units(
    cfg: &Config,
    geoms: &[Geom],
    layers: Range<usize>,
    m: usize,
    mc: usize,
    tiling: &[LayerTiling],
    units: Units,
) -> u64 {
    let chunks = m.div_ceil(mc) as u128;
    let (d, wpr) = (cfg.dim() as u128, units.row);
    let dim_row = units.dim_row;
    let mut words = 0u128;
    for (i, (l, t)) in layers.zip(tiling).enumerate() {
        let g = geoms[l];
        let tiles = g.kt as u128 * g.nt as u128;
        words = words
            .saturating_add(tile_loads(g, chunks).saturating_mul(1 + d * wpr))
            .saturating_add(chunks.saturating_mul(tiles).saturating_mul(3))
            .saturating_add(chunks.saturating_mul(g.nt as u128).saturating_mul(dim_row + 4));
        if i == 0 {
            let rewrites = if t.slab < t.k_tiles { t.n_tiles.div_ceil(t.group) as u128 } else { 1 };
            let per =
                (m as u128 * g.kt as u128).saturating_mul(wpr).saturating_add(chunks * g.kt as u128 * 2);
            words = words.saturating_add(rewrites.saturating_mul(per));
        }
    }
    u64::try_from(words).unwrap_or(u64::MAX)
}

/// A rough cycle count of a segment for chunks of `mc` rows, to choose between plans and chunk
/// sizes (not a figure to report: the estimator runs the cycle model). The front end's work is
/// the words it sends, the words it reads back (DIM a row if `raw`) and the ACTIVATE rows; the
/// array's is the MATMUL rows. Whole memories: the front end's work one after the other, its
/// weight loads beside the MATMULs. Double buffered: all of it beside the MATMULs but for the
/// accumulator groups before a chunk's last (read between its own MATMULs) and one chunk's
/// share (the pipeline's fill). Saturating.
#[allow(clippy::too_many_arguments)]
fn segment_cycles(
    cfg: &Config,
    geoms: &[Geom],
    layers: Range<usize>,
    m: usize,
    mc: usize,
    tiling: &[LayerTiling],
    raw: bool,
    double: bool,
) -> u128 {
    let rows = m as u128;
    let units = Units::beats(cfg);
    let per_row = if raw { units.dim_row } else { units.row };
    let end = layers.end;
    let (last, last_tiling) = (geoms[end - 1], tiling[tiling.len() - 1]);
    let sent = u128::from(segment_units(cfg, geoms, layers.clone(), m, mc, tiling, units));
    // the weight beats among them: they load into the shadow bank while MATMULs run
    let chunks = m.div_ceil(mc.max(1)).max(1) as u128;
    let tile_words = 1 + cfg.dim() as u128 * units.row;
    let weights = layers
        .clone()
        .map(|l| tile_loads(geoms[l], chunks).saturating_mul(tile_words))
        .fold(0u128, u128::saturating_add);
    // the last layer's results: read back, and (int8) activated first
    let act = if raw { 0 } else { 1 };
    let out = rows.saturating_mul(last.nt as u128 * (per_row + act));
    let mut compute = 0u128;
    let mut internal = 0u128; // ACTIVATE rows of the chained layers
    for l in layers {
        compute = compute.saturating_add(rows.saturating_mul(geoms[l].kt as u128 * geoms[l].nt as u128));
        if l + 1 < end {
            internal = internal.saturating_add(rows.saturating_mul(geoms[l].nt as u128));
        }
    }
    if !double {
        // the front end's other work one after the other, the weights beside the MATMULs
        let rest = sent.saturating_sub(weights).saturating_add(out).saturating_add(internal);
        return rest.saturating_add(compute.max(weights));
    }
    // the front end does all of its work (weights too) while MATMULs run, but only the last
    // accumulator group's results are a chunk's tail (the others are read between its MATMULs,
    // on its own half: not overlapped), and the chained layers' ACTIVATEs run inside the chunk
    let groups = last.nt.div_ceil(last_tiling.group.max(1)).max(1) as u128;
    let overlapped = sent.saturating_add(out / groups);
    let serial = internal.saturating_add(out - out / groups);
    overlapped.max(compute).saturating_add(serial).saturating_add(overlapped / chunks)
}

impl Plan {
    /// A rough cycle count to choose between the whole-memory and the double-buffered plan:
    /// link words (sent and read back, one a cycle) plus ACTIVATE rows, and MATMUL rows; added
    /// up without double buffering, overlapped (but for one chunk's share) with it. Not a
    /// figure to report: the estimator runs the cycle model for those.
    fn estimated_cycles(&self, shapes: &[(usize, usize)], kind: OutputKind) -> u128 {
        let geoms: Vec<Geom> = shapes.iter().map(|&(k, n)| Geom::new(k, n, self.config.dim())).collect();
        let last = self.segments.len().saturating_sub(1);
        self.segments
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let raw = i == last && kind == OutputKind::Raw;
                let t = &s.tiling;
                segment_cycles(
                    &self.config,
                    &geoms,
                    s.layers.clone(),
                    self.m,
                    s.chunk_rows,
                    t,
                    raw,
                    self.double_buffered,
                )
            })
            .fold(0u128, u128::saturating_add)
    }

    /// About how many words the compiled program sends to the device (the cost the planner
    /// minimises; within a few percent of [`crate::ProgramStats::words_to_device`]), computed
    /// from the sizes alone, before anything is allocated. `shapes` are the (K, N) the plan was
    /// made for. Saturates at `u64::MAX`.
    pub fn words_to_device(&self, shapes: &[(usize, usize)]) -> u64 {
        let geoms: Vec<Geom> = shapes.iter().map(|&(k, n)| Geom::new(k, n, self.config.dim())).collect();
        self.segments
            .iter()
            .map(|s| segment_cost(&self.config, &geoms, s.layers.clone(), self.m, s.chunk_rows, &s.tiling))
            .fold(0u64, u64::saturating_add)
    }
}

/// Whether the compiler double buffers (see [`Plan::double_buffered`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Buffering {
    /// Double buffer where the chain fits half of each memory and that is estimated faster.
    #[default]
    Auto,
    /// Never: chunks use the whole memories and run one after the other.
    Whole,
    /// Wherever the chain fits half of each memory, estimate or not.
    Double,
}

/// Cut a computation of `m` rows through layers of shapes `shapes` (K, N) into chains and
/// chunks (see the module docs). Errors only if a single layer cannot fit at all.
pub fn plan(
    cfg: &Config,
    m: usize,
    shapes: &[(usize, usize)],
    kind: OutputKind,
) -> Result<Plan, CompileError> {
    plan_in(cfg, cfg.scratch_rows(), m, shapes, kind, Buffering::Auto)
}

/// [`plan`] with the double buffering chosen by `buffering`.
pub fn plan_buffered(
    cfg: &Config,
    m: usize,
    shapes: &[(usize, usize)],
    kind: OutputKind,
    buffering: Buffering,
) -> Result<Plan, CompileError> {
    plan_in(cfg, cfg.scratch_rows(), m, shapes, kind, buffering)
}

/// [`plan`] with activations in scratchpad rows `0 .. scratch_rows` only: double buffered
/// (see [`Plan::double_buffered`]) where the memories have two usable halves and `buffering`
/// asks for it, else in the whole memories.
fn plan_in(
    cfg: &Config,
    scratch_rows: usize,
    m: usize,
    shapes: &[(usize, usize)],
    kind: OutputKind,
    buffering: Buffering,
) -> Result<Plan, CompileError> {
    let s = scratch_rows.min(cfg.scratch_rows());
    let whole = plan_with(cfg, s, cfg.acc_rows(), m, shapes, kind, false)?;
    // two halves: rows 0 .. half and bank .. bank + half of the scratchpad (the activations
    // stay below `scratch_rows`), and the accumulators' two banks
    let (bank, acc_bank) = (cfg.scratch_bank_rows(), cfg.acc_bank_rows());
    let half = bank.min(s.saturating_sub(bank));
    if half == 0 || cfg.acc_rows() < 2 || m < 2 || buffering == Buffering::Whole {
        return Ok(whole);
    }
    match plan_with(cfg, half, acc_bank, m, shapes, kind, true) {
        Ok(double)
            if buffering == Buffering::Double
                || double.estimated_cycles(shapes, kind) < whole.estimated_cycles(shapes, kind) =>
        {
            Ok(double)
        }
        _ => Ok(whole),
    }
}

/// The plan for chunks of at most `s` scratchpad rows and `a` accumulator rows.
fn plan_with(
    cfg: &Config,
    s: usize,
    a: usize,
    m: usize,
    shapes: &[(usize, usize)],
    kind: OutputKind,
    double_buffered: bool,
) -> Result<Plan, CompileError> {
    if shapes.is_empty() {
        return Err(CompileError::NoLayers);
    }
    let geoms: Vec<Geom> = shapes.iter().map(|&(k, n)| Geom::new(k, n, cfg.dim())).collect();
    let count = geoms.len();
    let last_out = |l: usize| match (l + 1 == count, kind) {
        (true, OutputKind::Raw) => Out::Raw,
        _ => Out::Int8,
    };
    let mut segments = Vec::new();
    let mut start = 0;
    while start < count {
        if plan_segment(a, s, &geoms, start..start + 1, 1, last_out(start), double_buffered).is_none() {
            let (k, n) = shapes[start];
            return Err(CompileError::TooSmall { layer: start, k, n, config: *cfg });
        }
        let mut end = start + 1;
        while end < count
            && plan_segment(a, s, &geoms, start..end + 1, 1, last_out(end), double_buffered).is_some()
        {
            end += 1;
        }
        segments.push(plan_chunks(cfg, a, s, &geoms, start..end, m, last_out(end - 1), double_buffered));
        start = end;
    }
    Ok(Plan { config: *cfg, scratch_rows: s, m, segments, double_buffered })
}

/// Choose the chunk size of a feasible segment.
#[allow(clippy::too_many_arguments)]
fn plan_chunks(
    cfg: &Config,
    a: usize,
    s: usize,
    geoms: &[Geom],
    layers: Range<usize>,
    m: usize,
    last: Out,
    double: bool,
) -> Segment {
    let fits = |mc: usize| plan_segment(a, s, geoms, layers.clone(), mc, last, double);
    // the largest chunk that fits (feasibility only gets easier as chunks shrink)
    let (mut lo, mut hi) = (1usize, m.clamp(1, MAX_CMD_ROWS));
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid).is_some() {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let mc_max = lo;
    // balanced chunk sizes for chunk counts from the fewest up: the one sending least wins
    // (double buffered: the one estimated fastest, as more chunks overlap more of the link)
    let fewest = m.div_ceil(mc_max).max(1);
    let mut best: Option<(u128, usize, Vec<LayerTiling>)> = None;
    for chunks in fewest..=fewest.saturating_add(255).min(m.max(1)) {
        let mc = m.div_ceil(chunks).max(1);
        if best.as_ref().is_some_and(|(_, b, _)| *b == mc) {
            continue;
        }
        let tiling = fits(mc).expect("smaller chunks fit when larger ones do");
        let cost = if double {
            segment_cycles(cfg, geoms, layers.clone(), m, mc, &tiling, last == Out::Raw, true)
        } else {
            u128::from(segment_cost(cfg, geoms, layers.clone(), m, mc, &tiling))
        };
        if best.as_ref().is_none_or(|(c, _, _)| cost < *c) {
            best = Some((cost, mc, tiling));
        }
    }
    let (_, mc, tiling) = best.expect("at least one chunk size is tried");
    Segment { layers, chunk_rows: mc, chunks: m.div_ceil(mc), tiling }
}

/// Compile one layer: `act(X·W + b)` (int8) or `X·W + b` (raw int32).
pub fn compile_layer(
    cfg: &Config,
    x: &DMatrix<i8>,
    layer: &Layer,
    kind: OutputKind,
) -> Result<Program, CompileError> {
    compile_mlp(cfg, x, std::slice::from_ref(layer), kind)
}

/// Compile an MLP: every layer but the last is `act(X·W + b)`; the last returns `kind`.
pub fn compile_mlp(
    cfg: &Config,
    x: &DMatrix<i8>,
    layers: &[Layer],
    kind: OutputKind,
) -> Result<Program, CompileError> {
    compile_mlp_buffered(cfg, x, layers, kind, Buffering::Auto)
}

/// [`compile_mlp`] with the double buffering chosen by `buffering`.
pub fn compile_mlp_buffered(
    cfg: &Config,
    x: &DMatrix<i8>,
    layers: &[Layer],
    kind: OutputKind,
    buffering: Buffering,
) -> Result<Program, CompileError> {
    Ok(stream_mlp_buffered(cfg, x, layers, kind, buffering)?.to_program())
}

/// [`compile_mlp`] as a [`ProgramStream`]: planned now, its steps made on demand.
pub fn stream_mlp<'a>(
    cfg: &Config,
    x: &'a DMatrix<i8>,
    layers: &'a [Layer],
    kind: OutputKind,
) -> Result<ProgramStream<'a>, CompileError> {
    stream_mlp_buffered(cfg, x, layers, kind, Buffering::Auto)
}

/// [`compile_mlp_buffered`] as a [`ProgramStream`].
pub fn stream_mlp_buffered<'a>(
    cfg: &Config,
    x: &'a DMatrix<i8>,
    layers: &'a [Layer],
    kind: OutputKind,
    buffering: Buffering,
) -> Result<ProgramStream<'a>, CompileError> {
    check_chain(x, layers)?;
    let shapes: Vec<(usize, usize)> = layers.iter().map(|l| (l.k(), l.n())).collect();
    let plan = plan_buffered(cfg, x.nrows(), &shapes, kind, buffering)?;
    Ok(ProgramStream::new(plan, x, layers, kind, None))
}

/// A compiled computation whose steps are made on demand, in wire order, as many times as
/// asked ([`ProgramStream::for_each_step`]): the same steps as the [`Program`] of
/// [`compile_mlp`] ([`ProgramStream::to_program`]), without holding them all. Memory stays
/// that of X and the layers (twice: see [`RowMajor`]) and one chunk's steps, however long the
/// program; a consumer that runs the steps as they come (`Device::run_stream`, the estimator)
/// needs no more.
#[derive(Debug, Clone)]
pub struct ProgramStream<'a> {
    plan: Plan,
    x: &'a DMatrix<i8>,
    layers: &'a [Layer],
    rows: RowMajor,
    kind: OutputKind,
    resident: Option<(&'a Residency, usize)>,
    results: Vec<ResultSpec>,
}

/// X and every layer's weights row-major (nalgebra keeps them column-major), made once per
/// [`ProgramStream`]: a WRITE_ACT row and a weight tile's row are then one contiguous copy each
/// instead of DIM strided reads, on every pass over the steps (the estimator makes three).
#[derive(Debug, Clone)]
struct RowMajor {
    /// `x[r * K + c]` = X(r, c).
    x: Vec<i8>,
    /// Per layer, `w[k * N + n]` = W(k, n).
    w: Vec<Vec<i8>>,
}

impl RowMajor {
    fn new(x: &DMatrix<i8>, layers: &[Layer]) -> Self {
        let row_major = |m: &DMatrix<i8>| m.transpose().as_slice().to_vec();
        RowMajor { x: row_major(x), w: layers.iter().map(|l| row_major(l.weights())).collect() }
    }
}

impl<'a> ProgramStream<'a> {
    fn new(
        plan: Plan,
        x: &'a DMatrix<i8>,
        layers: &'a [Layer],
        kind: OutputKind,
        resident: Option<(&'a Residency, usize)>,
    ) -> Self {
        let results = result_specs(&plan, layers, kind);
        let rows = RowMajor::new(x, layers);
        ProgramStream { plan, x, layers, rows, kind, resident, results }
    }

    /// The device it is compiled for.
    pub fn config(&self) -> Config {
        self.plan.config
    }

    /// How the computation is cut up.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The result matrices ([`Program::results`]).
    pub fn results(&self) -> &[ResultSpec] {
        &self.results
    }

    /// Index of the final output in [`ProgramStream::results`].
    pub fn output(&self) -> usize {
        self.results.len() - 1
    }

    /// Make the steps, handing each to `f` in wire order.
    pub fn for_each_step(&self, mut f: impl FnMut(Step)) {
        emit(&self.plan, self.x, self.layers, &self.rows, self.kind, self.resident, &mut f);
    }

    /// The whole [`Program`].
    pub fn to_program(&self) -> Program {
        let mut steps = Vec::new();
        self.for_each_step(|s| steps.push(s));
        Program { config: self.config(), steps, results: self.results.clone(), output: self.output() }
    }
}

/// X feeds the first layer and each layer the next.
fn check_chain(x: &DMatrix<i8>, layers: &[Layer]) -> Result<(), CompileError> {
    let first = layers.first().ok_or(CompileError::NoLayers)?;
    if x.ncols() != first.k() {
        return Err(ShapeError::Inner {
            x_rows: x.nrows(),
            x_cols: x.ncols(),
            w_rows: first.k(),
            w_cols: first.n(),
        }
        .into());
    }
    for (l, pair) in layers.windows(2).enumerate() {
        if pair[1].k() != pair[0].n() {
            return Err(CompileError::Chain { layer: l + 1, k: pair[1].k(), n: pair[0].n() });
        }
    }
    Ok(())
}

/// [`compile_mlp`] with the weight tiles `resident` holds loaded from the scratchpad
/// (LOAD_TILE) instead of streamed; activations stay below [`Residency::base`]. `first` is the
/// index of `layers[0]` among the layers the residency was planned for.
pub fn compile_mlp_resident(
    cfg: &Config,
    x: &DMatrix<i8>,
    layers: &[Layer],
    kind: OutputKind,
    resident: &Residency,
    first: usize,
) -> Result<Program, CompileError> {
    if resident.dim != cfg.dim() || resident.base > cfg.scratch_rows() {
        return Err(CompileError::Network(format!(
            "the resident tiles were placed for DIM {} below row {}, the device is {cfg}",
            resident.dim, resident.base
        )));
    }
    check_chain(x, layers)?;
    let shapes: Vec<(usize, usize)> = layers.iter().map(|l| (l.k(), l.n())).collect();
    let plan = plan_in(cfg, resident.base, x.nrows(), &shapes, kind, Buffering::Auto)?;
    Ok(ProgramStream::new(plan, x, layers, kind, Some((resident, first))).to_program())
}

/// Weight tiles kept on the device (resident weights, docs/design.md): each stored once in
/// DIM scratchpad rows at the top of the scratchpad (row `k` of a tile is `W[k][..]` of its
/// K x N block, zero padded) and loaded with LOAD_TILE, so an inference sends only its
/// activations. Tiles are kept in layer order while they fit the row budget; the rest are
/// streamed with LOAD_WEIGHTS as before (a model larger than the budget mixes both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Residency {
    dim: usize,
    /// First scratchpad row of the resident tiles (they run up to SCRATCH_ROWS).
    base: usize,
    /// (layer, k tile, n tile) -> first scratchpad row of the stored tile.
    tiles: std::collections::BTreeMap<TileId, usize>,
    /// Tiles of all layers (stored or not).
    total: usize,
}

impl Residency {
    /// Store as many tiles of `layers` (in layer, n-tile, k-tile order) as fit in the top
    /// `budget_rows` rows of the scratchpad (at most all of them; DIM rows a tile).
    pub fn plan(cfg: &Config, layers: &[&Layer], budget_rows: usize) -> Residency {
        let (d, s) = (cfg.dim(), cfg.scratch_rows());
        let fit = budget_rows.min(s) / d;
        let all: Vec<TileId> = layers
            .iter()
            .enumerate()
            .flat_map(|(l, layer)| {
                let g = Geom::new(layer.k(), layer.n(), d);
                (0..g.nt).flat_map(move |nt| (0..g.kt).map(move |kt| (l, kt, nt)))
            })
            .collect();
        let stored = all.len().min(fit);
        let base = s - stored * d;
        let tiles = all.iter().take(stored).enumerate().map(|(i, &id)| (id, base + i * d)).collect();
        Residency { dim: d, base, tiles, total: all.len() }
    }

    /// First scratchpad row of the resident tiles; activations use the rows below.
    pub fn base(&self) -> usize {
        self.base
    }

    /// (tiles stored, tiles of the model).
    pub fn stored(&self) -> (usize, usize) {
        (self.tiles.len(), self.total)
    }

    /// The commands that store the tiles: one WRITE_ACT of DIM rows per tile; `layers` as
    /// given to [`Residency::plan`].
    pub fn upload_commands(&self, layers: &[&Layer]) -> Vec<Command> {
        let d = self.dim;
        self.tiles
            .iter()
            .map(|(&(l, kt, nt), &at)| {
                let rows = (0..d).map(|k| tile_row(layers[l].weights(), kt, nt, k, d)).collect();
                Command::WriteAct { dst: row(at), rows }
            })
            .collect()
    }

    fn row_of(&self, id: TileId) -> Option<usize> {
        self.tiles.get(&id).copied()
    }
}

/// Row `k` of weight tile (kt, nt): `W[kt·DIM + k][nt·DIM ..]`, zero padded to DIM.
fn tile_row(w: &DMatrix<i8>, kt: usize, nt: usize, k: usize, d: usize) -> Vec<i8> {
    let r = kt * d + k;
    (nt * d..(nt + 1) * d).map(|c| if r < w.nrows() && c < w.ncols() { w[(r, c)] } else { 0 }).collect()
}

/// Weight tile (kt, nt) row-major: its rows [`tile_row`] `0..DIM` one after another, from W
/// (K x N) stored row-major in `w` (the compiler makes one per LOAD_WEIGHTS).
fn weight_tile(w: &[i8], (k, n): (usize, usize), kt: usize, nt: usize, d: usize) -> Vec<i8> {
    let mut tile = vec![0i8; d * d];
    let (r0, c0) = (kt * d, nt * d);
    let (rows, cols) = (d.min(k.saturating_sub(r0)), d.min(n.saturating_sub(c0)));
    for (i, row) in tile.chunks_exact_mut(d).take(rows).enumerate() {
        row[..cols].copy_from_slice(&w[(r0 + i) * n + c0..][..cols]);
    }
    tile
}

/// Where a segment's X comes from.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// The program's input, embedded in WRITE_ACT commands.
    Input(&'a DMatrix<i8>),
    /// An earlier result, written back at run time.
    Result(usize),
}

/// A weight tile: (layer, k tile, n tile).
type TileId = (usize, usize, usize);

/// Emits commands and tracks what the device holds, to skip redundant loads.
struct Emitter<'a> {
    cfg: Config,
    layers: &'a [Layer],
    rows: &'a RowMajor,
    /// Tiles on the device and the residency index of `layers[0]`.
    resident: Option<(&'a Residency, usize)>,
    steps: Vec<Step>,
    active: Option<TileId>,
    shadow: Option<TileId>,
    bias: Option<(usize, usize)>,
    /// The last SET_QUANT: (M, S, ReLU) and Z.
    quant: Option<(Quant, i8)>,
    /// The column scales of (layer, n tile), if a LOAD_QUANT set them since that SET_QUANT.
    scales: Option<(usize, usize)>,
    /// Send bias and quantisation before every ACTIVATE (double buffering reorders the steps;
    /// [`Redundant`] removes the ones that change nothing afterwards).
    no_cache: bool,
}

fn row(v: usize) -> u16 {
    u16::try_from(v).expect("row addresses and counts fit 16 bits (Config rows <= 65536, chunks <= 65535)")
}

impl Emitter<'_> {
    fn dim(&self) -> usize {
        self.cfg.dim()
    }

    fn push(&mut self, cmd: Command) {
        self.steps.push(Step::Command(cmd));
    }

    /// WRITE_ACT of X's K-tile `kt` (rows `r0..r0 + n`) to scratchpad row `dst`.
    fn write_x(&mut self, src: Source, k: usize, kt: usize, r0: usize, n: usize, dst: usize) {
        let d = self.dim();
        match src {
            Source::Input(x) => {
                // columns kt·DIM .. of X (row-major in `self.rows.x`), zero padded past K
                let (data, width, c0) = (&self.rows.x, x.ncols(), kt * d);
                let cols = d.min(k.saturating_sub(c0));
                let rows = (r0..r0 + n)
                    .map(|r| {
                        let mut v = vec![0i8; d];
                        v[..cols].copy_from_slice(&data[r * width + c0..][..cols]);
                        v
                    })
                    .collect();
                self.push(Command::WriteAct { dst: row(dst), rows });
            }
            Source::Result(result) => {
                let from =
                    Block { result, row: r0, col: kt * d, rows: n, cols: d.min(k.saturating_sub(kt * d)) };
                self.steps.push(Step::WriteBack { dst: row(dst), from });
            }
        }
    }

    fn load_weights(&mut self, id: TileId) {
        if self.shadow == Some(id) || (self.shadow.is_none() && self.active == Some(id)) {
            return;
        }
        let (l, kt, nt) = id;
        let d = self.dim();
        if let Some(at) = self.resident.and_then(|(r, first)| r.row_of((first + l, kt, nt))) {
            self.push(Command::LoadTile { src: row(at) });
        } else {
            let layer = &self.layers[l];
            let weights = weight_tile(&self.rows.w[l], (layer.k(), layer.n()), kt, nt, d);
            self.push(Command::LoadWeights { weights });
        }
        self.shadow = Some(id);
    }

    fn matmul(&mut self, src: usize, n: usize, dst: usize, accumulate: bool) {
        self.push(Command::Matmul { src: row(src), n: row(n), dst: row(dst), accumulate });
        if let Some(id) = self.shadow.take() {
            self.active = Some(id);
        }
    }

    /// The device's quantisation for ACTIVATE of layer `l`'s N-tile `nt`, sending only what
    /// changed: SET_QUANT (the 2-word form when Z != 0) for (M, S), ReLU and Z, then, for a
    /// per-column layer, LOAD_QUANT with the tile's column scales (padding columns M = 0).
    fn set_quant(&mut self, l: usize, nt: usize) {
        if self.no_cache {
            (self.quant, self.scales) = (None, None);
        }
        let q = self.layers[l].layer_quant().clone();
        let (base, z) = (q.scale(0).with_relu(q.relu()), q.zero_point());
        let need_set = if q.is_per_tensor() {
            self.quant != Some((base, z)) || self.scales.is_some()
        } else {
            self.quant.is_none_or(|(p, pz)| (p.relu, pz) != (q.relu(), z))
        };
        if need_set {
            self.push(if z == 0 {
                Command::SetQuant(base)
            } else {
                Command::SetQuantZp { quant: base, zero_point: z }
            });
            self.quant = Some((base, z));
            self.scales = None;
        }
        if !q.is_per_tensor() && self.scales != Some((l, nt)) {
            let d = self.dim();
            let n = self.layers[l].n();
            let scales = (nt * d..(nt + 1) * d)
                .map(|c| if c < n { q.scale(c) } else { ColumnScale::default() })
                .collect();
            self.push(Command::LoadQuant { scales });
            self.scales = Some((l, nt));
        }
    }

    fn load_bias(&mut self, l: usize, nt: usize) {
        if self.bias == Some((l, nt)) && !self.no_cache {
            return;
        }
        let d = self.dim();
        let b = self.layers[l].bias();
        let bias = (nt * d..(nt + 1) * d).map(|c| if c < b.len() { b[c] } else { 0 }).collect();
        self.push(Command::LoadBias { bias });
        self.bias = Some((l, nt));
    }
}

/// The result matrices of a plan: one per segment, the last one the output.
fn result_specs(plan: &Plan, layers: &[Layer], kind: OutputKind) -> Vec<ResultSpec> {
    let last_segment = plan.segments.len() - 1;
    let mut results = Vec::new();
    for (si, seg) in plan.segments.iter().enumerate() {
        let final_layer = &layers[seg.layers.end - 1];
        let raw = si == last_segment && kind == OutputKind::Raw;
        results.push(ResultSpec {
            rows: plan.m,
            cols: final_layer.n(),
            kind: if raw {
                ResultKind::Raw { bias: final_layer.bias().iter().copied().collect() }
            } else {
                ResultKind::Int8
            },
        });
    }
    results
}

/// Turn a plan into commands, handed to `sink` in wire order (result `i` is segment `i`'s,
/// see [`result_specs`]). The steps of each chunk go out once it is complete (through the
/// [`Pipeline`] when double buffered), the LOAD_WEIGHTS hoisted on the way ([`Hoist`]) and,
/// when double buffered, redundant register loads dropped ([`Redundant`]): only a chunk's
/// steps (or, pipelined, three chunks') are held at a time.
fn emit<'a>(
    plan: &Plan,
    x: &DMatrix<i8>,
    layers: &'a [Layer],
    rows: &'a RowMajor,
    kind: OutputKind,
    resident: Option<(&'a Residency, usize)>,
    sink: &mut dyn FnMut(Step),
) {
    let cfg = plan.config;
    let (d, s_rows) = (cfg.dim(), plan.scratch_rows);
    let m = plan.m;
    let mut e = Emitter {
        cfg,
        layers,
        rows,
        resident,
        steps: Vec::new(),
        active: None,
        shadow: None,
        bias: None,
        quant: None,
        scales: None,
        no_cache: plan.double_buffered,
    };
    // double buffering: the chunks' steps, merged once the next chunk's are known
    let mut pipe = Pipeline::default();
    let mut redundant = Redundant::new(d);
    let double_buffered = plan.double_buffered;
    let mut filtered = |step: Step| {
        if !double_buffered || redundant.keep(&step) {
            sink(step);
        }
    };
    // (a pipelined program's weight loads are where `interleave` put them: after the window's
    // read-backs and writes, which the load would otherwise wait behind the array's drain for)
    let mut out = Hoist { sink: &mut filtered, tail: Vec::new(), on: !plan.double_buffered };
    let last_segment = plan.segments.len() - 1;
    for (si, seg) in plan.segments.iter().enumerate() {
        let source = if si == 0 { Source::Input(x) } else { Source::Result(si - 1) };
        let raw = si == last_segment && kind == OutputKind::Raw;
        let result = si;
        for (c, r0) in (0..m).step_by(seg.chunk_rows).enumerate() {
            let mc = seg.chunk_rows.min(m - r0);
            // the chunk's halves of the memories (all of them without double buffering)
            let (sp0, ac0) = if plan.double_buffered && c % 2 == 1 {
                (cfg.scratch_bank_rows(), cfg.acc_bank_rows())
            } else {
                (0, 0)
            };
            let first_step = e.steps.len();
            // the steps (from `first_step`) activating and reading back the last chunk's
            // earlier N-tiles, each run beside the next N-tiles' MATMULs
            let mut mids: Vec<Range<usize>> = Vec::new();
            let mut in_base = sp0;
            for (i, (l, t)) in seg.layers.clone().zip(&seg.tiling).enumerate() {
                let layer = &layers[l];
                let (k, n) = (layer.k(), layer.n());
                let out = match (l + 1 == seg.layers.end, raw) {
                    (false, _) => Out::Chain,
                    (true, true) => Out::Raw,
                    (true, false) => Out::Int8,
                };
                let slabbed = t.slab < t.k_tiles;
                if i == 0 && !slabbed {
                    for kt in 0..t.k_tiles {
                        e.write_x(source, k, kt, r0, mc, sp0 + kt * mc);
                    }
                }
                let in_rows = if i == 0 { t.slab * mc } else { t.k_tiles * mc };
                let out_rows = match out {
                    Out::Chain => t.n_tiles * mc,
                    Out::Int8 if t.in_place => t.n_tiles * mc,
                    Out::Int8 => t.group * mc,
                    Out::Raw => 0,
                };
                let out_base = if t.in_place || in_base != sp0 { sp0 } else { sp0 + s_rows - out_rows };
                debug_assert!(t.in_place || in_base + in_rows <= out_base || out_base + out_rows <= in_base);
                // in the last chunk (of a last layer read back) the last group's second-last
                // N-tile computes into the other halves' accumulators and the group's outputs
                // go to the other scratchpad half, free by now: the N-tiles before it are
                // activated and read back while it computes, it while the last one computes
                // ([`Pipeline::finish`]), and only the last N-tile drains after the last MATMUL
                let last_tile_apart =
                    plan.double_buffered && c + 1 == seg.chunks && out != Out::Chain && !slabbed;
                let (other_sp0, other_ac0) =
                    if sp0 == 0 { (cfg.scratch_bank_rows(), cfg.acc_bank_rows()) } else { (0, 0) };
                for g0 in (0..t.n_tiles).step_by(t.group) {
                    let g_end = (g0 + t.group).min(t.n_tiles);
                    let apart_here = last_tile_apart && g_end == t.n_tiles && g_end - g0 >= 2;
                    // phases: N-tiles whose MATMULs run while the previous phase is activated;
                    // consecutive phases in different accumulator banks (the last in the
                    // chunk's own, free again once the first phase is activated)
                    let phases: Vec<Range<usize>> = match (apart_here, g_end - g0) {
                        (false, _) => std::iter::once(g0..g_end).collect(),
                        (true, 2) => vec![g0..g0 + 1, g0 + 1..g_end],
                        (true, _) => vec![g0..g_end - 2, g_end - 2..g_end - 1, g_end - 1..g_end],
                    };
                    let other_tile = if apart_here { Some(phases[1].start) } else { None };
                    let acc_of = |nt: usize| {
                        let base = if other_tile == Some(nt) { other_ac0 } else { ac0 };
                        base + (nt - g0) * mc
                    };
                    let group_out = if apart_here { other_sp0 + s_rows - out_rows } else { out_base };
                    let last_phase = phases.len() - 1;
                    for (pi, phase) in phases.into_iter().enumerate() {
                        for s0 in (0..t.k_tiles).step_by(t.slab) {
                            let s_end = (s0 + t.slab).min(t.k_tiles);
                            if slabbed {
                                for kt in s0..s_end {
                                    e.write_x(source, k, kt, r0, mc, in_base + (kt - s0) * mc);
                                }
                            }
                            let x_block = |kt: usize| {
                                if slabbed {
                                    in_base + (kt - s0) * mc
                                } else {
                                    in_base + kt * mc
                                }
                            };
                            for nt in phase.clone() {
                                for kt in s0..s_end {
                                    e.load_weights((l, kt, nt));
                                    e.matmul(x_block(kt), mc, acc_of(nt), kt > 0);
                                }
                            }
                        }
                        let acts_from = e.steps.len() - first_step;
                        // each block's READ_ACT goes after the next block's ACTIVATE: the front end
                        // reads block j − 1 back while the ACTIVATE engine writes block j (their
                        // rows differ), instead of waiting for the engine to finish block j
                        let mut pending_read: Option<Step> = None;
                        for nt in phase {
                            let acc = acc_of(nt);
                            let to = Block {
                                result,
                                row: r0,
                                col: nt * d,
                                rows: mc,
                                cols: d.min(n.saturating_sub(nt * d)),
                            };
                            if out == Out::Raw {
                                e.steps.push(Step::ReadAcc { src: row(acc), n: row(mc), to });
                                continue;
                            }
                            e.set_quant(l, nt);
                            e.load_bias(l, nt);
                            let slot = if out == Out::Chain || t.in_place { nt } else { nt - g0 };
                            let dst = group_out + slot * mc;
                            e.push(Command::Activate { src: row(acc), n: row(mc), dst: row(dst) });
                            if out == Out::Int8 {
                                e.steps.extend(pending_read.replace(Step::ReadAct {
                                    src: row(dst),
                                    n: row(mc),
                                    to,
                                }));
                            }
                        }
                        e.steps.extend(pending_read);
                        if pi < last_phase {
                            mids.push(acts_from..e.steps.len() - first_step);
                        }
                    }
                }
                in_base = out_base;
            }
            if plan.double_buffered {
                let chunk = e.steps.split_off(first_step);
                pipe.push(chunk, mids, &mut e.steps, &cfg);
            }
            // what is in `e.steps` now is final: on its way
            e.steps.drain(..).for_each(|step| out.push(step));
        }
        // the next chain reads this one's results: nothing may overlap across
        pipe.finish(&mut e.steps, &cfg);
        e.steps.drain(..).for_each(|step| out.push(step));
    }
    e.push(Command::Sync { token: END_TOKEN });
    e.steps.drain(..).for_each(|step| out.push(step));
    out.finish();
}

/// Software pipelining of double-buffered chunks: chunk `c`'s MATMULs (its *body*) are
/// interleaved with the steps that move data of the other half, the *tail* of chunk `c − 1`
/// (its last ACTIVATEs and read-backs, after its last MATMUL) and the *head* of chunk `c + 1`
/// (the WRITE_ACTs of its activations, before anything else of it). The banked core runs them
/// while the MATMUL computes (docs/architecture.md). The command order stays a valid
/// sequential program: the tail of `c − 1` is placed before the head of `c + 1`, which
/// overwrites its half, and both before the body of `c + 1`; bias and quantisation travel with
/// each ACTIVATE (no caching across the reordering).
#[derive(Default)]
struct Pipeline {
    /// The body of the last chunk, not emitted yet (it needs the next chunk's head).
    body: Option<Vec<Step>>,
    /// The steps of that body that activate and read back its own earlier N-tiles (the last
    /// chunk's: see [`emit`]), as index ranges into it, in order.
    mids: Vec<Range<usize>>,
    /// The tail of the chunk before it, to run beside that body.
    tail_before: Vec<Step>,
    /// The last chunk's tail, to run beside the next body.
    tail: Vec<Step>,
}

impl Pipeline {
    /// Chunk `c + 1`'s steps (in program order) arrive: emit chunk `c`'s body interleaved with
    /// chunk `c − 1`'s tail and chunk `c + 1`'s head.
    fn push(&mut self, mut steps: Vec<Step>, mids: Vec<Range<usize>>, out: &mut Vec<Step>, cfg: &Config) {
        let head_len = steps.iter().position(|s| !is_write(s)).unwrap_or(steps.len());
        let tail_at = steps
            .iter()
            .rposition(|s| matches!(s, Step::Command(Command::Matmul { .. })))
            .map_or(head_len, |p| p + 1)
            .max(head_len);
        let tail = steps.split_off(tail_at);
        let body = steps.split_off(head_len);
        let head = steps;
        match self.body.take() {
            Some(prev) => {
                debug_assert!(self.mids.is_empty(), "only a chunk's last body has its own activations");
                let rest = interleave(prev, std::mem::take(&mut self.tail_before), head, out, cfg);
                out.extend(rest);
                self.tail_before = std::mem::take(&mut self.tail);
            }
            None => {
                // the first chunk: its first write now, the others beside its first MATMULs (a
                // WRITE_ACT waits only for a MATMUL that reads its rows; `interleave` places
                // each before the MATMUL that reads it)
                let mut head = head.into_iter();
                out.extend(head.next());
                self.tail_before = head.collect();
            }
        }
        self.mids = mids.into_iter().map(|r| r.start - head_len..r.end - head_len).collect();
        self.body = Some(body);
        self.tail = tail;
    }

    /// No more chunks: the last body interleaved with the tail before it, then the last tail.
    /// A body with activations of its own runs them beside its MATMULs after them.
    fn finish(&mut self, out: &mut Vec<Step>, cfg: &Config) {
        if let Some(body) = self.body.take() {
            // the body in pieces, each interleaved with the activations before it
            let mut before = std::mem::take(&mut self.tail_before);
            let mut pieces = Vec::new();
            let mut cut = 0;
            let mids = std::mem::take(&mut self.mids);
            let mut rest = body;
            for mid in &mids {
                let after = rest.split_off(mid.end - cut);
                let acts = rest.split_off(mid.start - cut);
                pieces.push((std::mem::replace(&mut rest, after), acts));
                cut = mid.end;
            }
            // (what does not fit a piece goes on beside the next, before that piece's own)
            for (piece, acts) in pieces {
                before = interleave(piece, before, Vec::new(), out, cfg);
                before.extend(acts);
            }
            let mut left = interleave(rest, before, Vec::new(), out, cfg);
            left.append(&mut self.tail);
            out.extend(activate_early(left, cfg));
        }
    }
}

/// `body` with the steps of `tail` (the previous chunk's ACTIVATEs and read-backs) and
/// `head` (the next chunk's writes) placed in the windows its MATMULs leave the front end. A
/// MATMUL of `n` rows runs `n` cycles in the background; the front end meanwhile takes the
/// window's weight load (the body's steps up to the next MATMUL) and, before it, units of `io`
/// worth about `n` minus that load's and the next MATMUL's cycles (the cycle table's costs; the
/// load waits for the array to drain the shadow bank anyway). Rows of data steps longer than a
/// window are split into equal pieces that fit one.
///
/// The units are chosen by a small model of the front end's time: an ACTIVATE starts once the
/// engine is idle and its accumulators are quiet, a read-back of rows an ACTIVATE writes once
/// that ACTIVATE is done (`docs/architecture.md`'s rules), and a unit that would wait is not
/// placed where it would hold up the next MATMUL. `tail` keeps its order, `head` too, and a
/// head unit goes before tail units only if none of them touches its rows, so the program's
/// meaning is that of `tail` then `head`. What does not fit is returned (to go after the body).
#[must_use = "the steps that did not fit go after the body"]
fn interleave(
    body: Vec<Step>,
    tail: Vec<Step>,
    head: Vec<Step>,
    out: &mut Vec<Step>,
    cfg: &Config,
) -> Vec<Step> {
    // How far a unit may run past its window's budget (holding the next MATMUL back by as
    // many cycles) rather than wait for a later window: enough for an ACTIVATE with its
    // register loads beside a data piece. Measured, not derived, and a cliff: on `estimate
    // --gemm 512,64,64 --dim 16 --lanes 4` 10 gives 79.6 %, 12 gives 91.6 % and 20 91.0 %; 20
    // loses at DIM 8 (256x32x32: 53.1 -> 52.5 %) and DIM 4 (128x16x16: 86.9 -> 81.3 %). A
    // window's first unit is placed whatever its cost (short MATMULs leave windows smaller
    // than any unit).
    const OVERFLOW: u64 = 12;
    // the body as windows: a MATMUL and the steps after it up to the next MATMUL
    let mut windows: Vec<(Vec<Step>, u64)> = Vec::new();
    for step in body {
        let rows = match &step {
            Step::Command(Command::Matmul { n, .. }) => Some(u64::from(*n)),
            _ => None,
        };
        match (rows, windows.last_mut()) {
            (Some(rows), _) => windows.push((vec![step], rows)),
            (None, Some(w)) => w.0.push(step),
            (None, None) => out.push(step),
        }
    }
    let matmul_cost =
        front_end_cycles(&Step::Command(Command::Matmul { src: 0, n: 0, dst: 0, accumulate: false }), cfg);
    let load = |steps: &[Step]| -> u64 { steps[1..].iter().map(|s| front_end_cycles(s, cfg)).sum() };
    let budget = |(steps, rows): &(Vec<Step>, u64)| rows.saturating_sub(load(steps) + matmul_cost);
    // pieces fit the narrowest window that has room (the last one has no load)
    let piece = windows.iter().map(budget).filter(|&b| b > 0).min().unwrap_or(0);
    let mut tail = IoQueue::new(tail, piece, cfg);
    let mut head = IoQueue::new(head, piece, cfg);
    let mut fe = FrontEnd::new(cfg, matmul_cost);
    for w in windows {
        let rows = w.1;
        // units that must reach the memories before this MATMUL does go before it, with the
        // units before them: those writing scratchpad rows it reads (the first chunk's later
        // K-tiles) or reading accumulator rows it writes (the last chunk computing into rows
        // the chunk before it left)
        if let Step::Command(Command::Matmul { src, n, dst, .. }) = &w.0[0] {
            let (reads, writes) = (span(*src, usize::from(*n)), span(*dst, usize::from(*n)));
            for q in [&mut tail, &mut head] {
                while q.units.iter().any(|u| u.before_matmul(&reads, &writes)) {
                    let u = q.pop();
                    fe.place(&u);
                    out.extend(u.steps);
                }
            }
        }
        let start = fe.t.max(fe.seq_free);
        fe.seq_free = start + rows;
        fe.t = start + matmul_cost;
        let deadline = (start + budget(&w)).max(fe.t);
        let (mut steps, _) = w;
        let rest = steps.split_off(1);
        out.append(&mut steps);
        let mut placed = false;
        loop {
            // an ACTIVATE ready to go ahead of read-backs of other rows (the engine starts
            // sooner), the next tail unit, or a head unit that no tail unit still to come touches
            let from_head = head.first_clear_of(&tail);
            let ahead = tail.activate_ahead();
            let candidates = [
                ahead.map(|i| (Pick::Tail(i), &tail.units[i])),
                tail.front().map(|u| (Pick::Tail(0), u)),
                from_head.map(|u| (Pick::Head, u)),
            ];
            let mut chosen = None;
            for (pick, u) in candidates.into_iter().flatten() {
                // (an ACTIVATE goes ahead of read-backs only if it is ready now, as any unit)
                let fits = fe.t + u.cost <= deadline + OVERFLOW || !placed;
                if fe.ready(u) <= fe.t && fits {
                    chosen = Some(pick);
                    break;
                }
            }
            let Some(pick) = chosen else { break };
            let u = match pick {
                Pick::Head => head.take_first_clear_of(&tail),
                Pick::Tail(i) => tail.units.remove(i).expect("a unit was chosen"),
            };
            fe.place(&u);
            placed = true;
            out.extend(u.steps);
        }
        fe.t += rest.iter().map(|s| front_end_cycles(s, cfg)).sum::<u64>();
        out.extend(rest);
    }
    tail.units.into_iter().chain(head.units).flat_map(|u| u.steps).collect()
}

/// [`interleave`]'s model of the front end's time: its clock `t` (0 when the body's first
/// MATMUL is taken), when the sequencer is free, when the ACTIVATE engine is idle, and the
/// scratchpad rows of the ACTIVATEs placed with the cycle each is done.
struct FrontEnd {
    t: u64,
    seq_free: u64,
    engine_free: u64,
    written: Vec<(Range<u64>, u64)>,
    /// When the previous chunk's last MATMUL has drained its accumulators.
    acc_quiet: u64,
    /// A MATMUL command's own front-end cycles.
    matmul_cost: u64,
}

impl FrontEnd {
    fn new(cfg: &Config, matmul_cost: u64) -> Self {
        let acc_quiet = spec::timing::matmul_depth(cfg.dim()) as u64;
        FrontEnd { t: 0, seq_free: 0, engine_free: 0, written: Vec::new(), acc_quiet, matmul_cost }
    }

    /// The earliest cycle `u` can start without waiting: an ACTIVATE once the engine is idle
    /// and the accumulators quiet (its register loads go first), a read-back once the
    /// ACTIVATEs writing its rows are done.
    fn ready(&self, u: &Unit) -> u64 {
        match u.kind {
            UnitKind::Activate { .. } => self.engine_free.max(self.acc_quiet).saturating_sub(u.regs_cost),
            UnitKind::Read(ref r) => {
                self.written.iter().filter(|(w, _)| meets(w, r)).map(|&(_, done)| done).max().unwrap_or(0)
            }
            UnitKind::Write(_) | UnitKind::ReadAcc(_) | UnitKind::Other => 0,
        }
    }

    /// `u` is taken now: the clock moves on by its cycles, and an ACTIVATE occupies the engine.
    fn place(&mut self, u: &Unit) {
        if let UnitKind::Activate { ref rows, n, .. } = u.kind {
            let begin = (self.t + u.regs_cost).max(self.engine_free).max(self.acc_quiet) + self.matmul_cost;
            self.engine_free = begin + n + spec::timing::ACT_LATENCY as u64 + 2;
            self.written.push((rows.clone(), self.engine_free));
        }
        self.t += u.cost;
    }
}

/// Rows `[a, a + n)`.
fn span(a: u16, n: usize) -> Range<u64> {
    u64::from(a)..u64::from(a) + n as u64
}

fn meets(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.start < b.end && b.start < a.end
}

/// Where [`interleave`] takes its next unit from.
#[derive(Clone, Copy)]
enum Pick {
    /// The tail's unit at this index.
    Tail(usize),
    /// The head's first unit.
    Head,
}

/// `steps` (activations and read-backs, in program order) with each ACTIVATE moved ahead of
/// the read-backs before it that do not touch its rows: the engine starts sooner, and the
/// reads go on while it works.
fn activate_early(steps: Vec<Step>, cfg: &Config) -> Vec<Step> {
    let mut q = IoQueue::new(steps, u64::MAX, cfg);
    let mut out = Vec::new();
    while !q.units.is_empty() {
        let i = q.activate_ahead().unwrap_or(0);
        out.extend(q.units.remove(i).expect("a unit").steps);
    }
    out
}

/// What [`interleave`]'s model needs to know of a unit.
enum UnitKind {
    /// An ACTIVATE of `n` rows writing scratchpad `rows`.
    Activate { rows: Range<u64>, n: u64, acc: Range<u64> },
    /// A read-back of accumulator rows (READ_ACC).
    ReadAcc(Range<u64>),
    /// A read-back of scratchpad `rows`.
    Read(Range<u64>),
    /// A write of scratchpad `rows`.
    Write(Range<u64>),
    /// Anything else.
    Other,
}

/// Steps that move together: register loads and the data step they lead to.
struct Unit {
    steps: Vec<Step>,
    kind: UnitKind,
    /// Front-end cycles of all of it, and of the register loads before its data step.
    cost: u64,
    regs_cost: u64,
}

impl Unit {
    /// Whether a MATMUL reading scratchpad rows `reads` and writing accumulator rows `writes`
    /// would change what this unit sees or overwrite what it writes.
    fn before_matmul(&self, reads: &Range<u64>, writes: &Range<u64>) -> bool {
        match &self.kind {
            UnitKind::Activate { rows, acc, .. } => meets(rows, reads) || meets(acc, writes),
            UnitKind::ReadAcc(acc) => meets(acc, writes),
            UnitKind::Write(rows) => meets(rows, reads),
            UnitKind::Read(_) | UnitKind::Other => false,
        }
    }

    fn rows(&self) -> Option<&Range<u64>> {
        match &self.kind {
            UnitKind::Activate { rows, .. } | UnitKind::Read(rows) | UnitKind::Write(rows) => Some(rows),
            UnitKind::ReadAcc(_) | UnitKind::Other => None,
        }
    }
}

/// A queue of units, in program order.
struct IoQueue {
    units: std::collections::VecDeque<Unit>,
}

impl IoQueue {
    /// `steps` as units, data steps split to fit `piece` front-end cycles.
    fn new(steps: Vec<Step>, piece: u64, cfg: &Config) -> Self {
        let mut units = std::collections::VecDeque::new();
        let mut regs = Vec::new();
        for step in steps {
            let sets_regs = matches!(
                step,
                Step::Command(
                    Command::SetQuant(_)
                        | Command::SetQuantZp { .. }
                        | Command::LoadQuant { .. }
                        | Command::LoadBias { .. }
                )
            );
            if sets_regs {
                regs.push(step);
                continue;
            }
            let pieces = if regs.is_empty() { split_rows(step, piece, cfg) } else { vec![step] };
            for p in pieces {
                let r = span;
                let kind = match &p {
                    Step::Command(Command::Activate { src, n, dst }) => UnitKind::Activate {
                        rows: r(*dst, usize::from(*n)),
                        n: u64::from(*n),
                        acc: r(*src, usize::from(*n)),
                    },
                    Step::ReadAcc { src, n, .. } => UnitKind::ReadAcc(r(*src, usize::from(*n))),
                    Step::ReadAct { src, n, .. } => UnitKind::Read(r(*src, usize::from(*n))),
                    Step::Command(Command::ReadAct { src, n }) => UnitKind::Read(r(*src, usize::from(*n))),
                    Step::Command(Command::WriteAct { dst, rows }) => UnitKind::Write(r(*dst, rows.len())),
                    Step::WriteBack { dst, from } => UnitKind::Write(r(*dst, from.rows)),
                    _ => UnitKind::Other,
                };
                let regs_cost: u64 = regs.iter().map(|s| front_end_cycles(s, cfg)).sum();
                let cost = regs_cost + front_end_cycles(&p, cfg);
                let mut steps = std::mem::take(&mut regs);
                steps.push(p);
                units.push_back(Unit { steps, kind, cost, regs_cost });
            }
        }
        if !regs.is_empty() {
            let cost = regs.iter().map(|s| front_end_cycles(s, cfg)).sum();
            units.push_back(Unit { steps: regs, kind: UnitKind::Other, cost, regs_cost: cost });
        }
        IoQueue { units }
    }

    fn front(&self) -> Option<&Unit> {
        self.units.front()
    }

    fn pop(&mut self) -> Unit {
        self.units.pop_front().expect("a unit was chosen")
    }

    /// The first unit, if no unit of `other` touches its rows (and it has rows).
    fn first_clear_of(&self, other: &IoQueue) -> Option<&Unit> {
        let u = self.units.front()?;
        let rows = u.rows()?;
        other.units.iter().filter_map(Unit::rows).all(|r| !meets(r, rows)).then_some(u)
    }

    /// The first ACTIVATE that only read-backs of other rows precede (their order against it
    /// does not matter: no registers, no shared rows), if it is not the first unit.
    fn activate_ahead(&self) -> Option<usize> {
        let i = self.units.iter().position(|u| !matches!(u.kind, UnitKind::Read(_)))?;
        let UnitKind::Activate { ref rows, .. } = self.units[i].kind else { return None };
        (i > 0 && self.units.iter().take(i).filter_map(Unit::rows).all(|r| !meets(r, rows))).then_some(i)
    }

    fn take_first_clear_of(&mut self, other: &IoQueue) -> Unit {
        debug_assert!(self.first_clear_of(other).is_some());
        self.pop()
    }
}

/// `step` as pieces of whole rows whose front-end cycles fit `budget` (WRITE_ACT, READ_ACT
/// and write-backs of more rows; any other step whole), in about equal pieces, none so short that
/// its command's fixed cycles are over a fifth of it.
fn split_rows(step: Step, budget: u64, cfg: &Config) -> Vec<Step> {
    let w = cfg.lanes().beats(cfg.words_per_row() as u64);
    let (rows, fixed) = match &step {
        Step::Command(Command::WriteAct { rows, .. }) => (rows.len() as u64, 3),
        Step::WriteBack { from, .. } => (from.rows as u64, 3),
        Step::ReadAct { n, .. } => (u64::from(*n), 5),
        _ => return vec![step],
    };
    // no piece so short that its command's own cycles are more than a fifth of it
    let per = (budget.saturating_sub(fixed) / w.max(1)).max(4 * fixed / w.max(1));
    if rows <= per {
        return vec![step];
    }
    // equal pieces, as few as fit
    let per = rows.div_ceil(rows.div_ceil(per)) as usize;
    match step {
        Step::Command(Command::WriteAct { dst, rows }) => rows
            .chunks(per)
            .enumerate()
            .map(|(i, c)| Step::Command(Command::WriteAct { dst: dst + (i * per) as u16, rows: c.to_vec() }))
            .collect(),
        Step::WriteBack { dst, from } => (0..from.rows)
            .step_by(per)
            .map(|r| Step::WriteBack {
                dst: dst + r as u16,
                from: Block { row: from.row + r, rows: per.min(from.rows - r), ..from },
            })
            .collect(),
        Step::ReadAct { src, n, to } => (0..usize::from(n))
            .step_by(per)
            .map(|r| Step::ReadAct {
                src: src + r as u16,
                n: per.min(usize::from(n) - r) as u16,
                to: Block { row: to.row + r, rows: per.min(to.rows - r), ..to },
            })
            .collect(),
        other => vec![other],
    }
}

/// The front end's cycles for a step (docs/architecture.md's cycle table, without waits; a
/// row's words are beats at LANES > 1).
fn front_end_cycles(step: &Step, cfg: &Config) -> u64 {
    let l = cfg.lanes();
    let (d, w) = (cfg.dim() as u64, l.beats(cfg.words_per_row() as u64));
    let dim_row = l.beats(d);
    match step {
        Step::Command(cmd) => match cmd {
            Command::WriteAct { rows, .. } => 3 + rows.len() as u64 * w,
            // the engine reads the rows (docs/architecture.md)
            Command::Activate { .. } => 4,
            Command::LoadBias { .. } | Command::LoadQuant { .. } => 1 + dim_row,
            Command::LoadWeights { .. } => 1 + d * w,
            Command::LoadTile { .. } => 3 + d,
            _ => 4,
        },
        Step::WriteBack { from, .. } => 3 + from.rows as u64 * w,
        Step::ReadAct { n, .. } => 5 + u64::from(*n) * w,
        Step::ReadAcc { n, .. } => 5 + u64::from(*n) * dim_row,
    }
}

/// Drops the LOAD_BIAS, SET_QUANT and LOAD_QUANT commands that set the activation registers to
/// what they already hold (tracked from the program's start, where they are unknown), step by
/// step as the program goes by. Sound for any command order: those registers change only by
/// these commands.
struct Redundant {
    dim: usize,
    bias: Option<Vec<i32>>,
    scales: Option<Vec<ColumnScale>>,
    relu_z: Option<(bool, i8)>,
}

impl Redundant {
    fn new(dim: usize) -> Self {
        Redundant { dim, bias: None, scales: None, relu_z: None }
    }

    /// Whether `step`, next in the program, is kept.
    fn keep(&mut self, step: &Step) -> bool {
        match step {
            Step::Command(Command::LoadBias { bias: b }) => {
                let same = self.bias.as_ref() == Some(b);
                self.bias = Some(b.clone());
                !same
            }
            Step::Command(Command::LoadQuant { scales: c }) => {
                let same = self.scales.as_ref() == Some(c);
                self.scales = Some(c.clone());
                !same
            }
            Step::Command(cmd @ (Command::SetQuant(_) | Command::SetQuantZp { .. })) => {
                let (q, z) = match cmd {
                    Command::SetQuantZp { quant, zero_point } => (*quant, *zero_point),
                    Command::SetQuant(q) => (*q, 0),
                    _ => unreachable!("matched above"),
                };
                let all: ColumnScale = q.into();
                let same = self.relu_z == Some((q.relu, z))
                    && self.scales.as_ref().is_some_and(|c| c.iter().all(|&x| x == all));
                self.relu_z = Some((q.relu, z));
                self.scales = Some(vec![all; self.dim]);
                !same
            }
            _ => true,
        }
    }
}

fn is_write(s: &Step) -> bool {
    matches!(s, Step::Command(Command::WriteAct { .. }) | Step::WriteBack { .. })
}

fn is_weights_or_matmul(s: &Step) -> bool {
    matches!(
        s,
        Step::Command(Command::LoadWeights { .. } | Command::LoadTile { .. } | Command::Matmul { .. })
    )
}

fn is_weight_load(s: &Step) -> bool {
    matches!(s, Step::Command(Command::LoadWeights { .. } | Command::LoadTile { .. }))
}

/// The emitter's output: every LOAD_WEIGHTS (or LOAD_TILE) moved up to right after the previous
/// MATMUL or weight load, as [`hoist_weight_loads`] does to a whole program, while the steps go
/// to the sink as they come. Only the steps since the last MATMUL or weight load wait (`tail`:
/// at most one chunk's read-backs, quantisation and X), so nothing here grows with the program.
struct Hoist<'s> {
    sink: &'s mut dyn FnMut(Step),
    tail: Vec<Step>,
    /// Hoist (else pass every step straight through).
    on: bool,
}

impl Hoist<'_> {
    fn push(&mut self, step: Step) {
        if !self.on {
            (self.sink)(step);
        } else if is_weight_load(&step) {
            // right after the last MATMUL or weight load: before everything still waiting
            (self.sink)(step);
        } else if is_weights_or_matmul(&step) {
            self.finish();
            (self.sink)(step);
        } else {
            self.tail.push(step);
        }
    }

    fn finish(&mut self) {
        for step in self.tail.drain(..) {
            (self.sink)(step);
        }
    }
}

/// Move every LOAD_WEIGHTS up to right after the previous MATMUL: the commands it passes
/// (ACTIVATE, LOAD_BIAS, SET_QUANT, WRITE_ACT, READ_*) do not use the weights, and the load
/// then fills the shadow bank while the array is still busy. (The whole-program form of
/// [`Hoist`], which the tests hold it to.)
#[cfg(test)]
fn hoist_weight_loads(steps: Vec<Step>) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for step in steps {
        if is_weight_load(&step) {
            let at = out.iter().rposition(is_weights_or_matmul).map_or(0, |p| p + 1);
            out.insert(at, step);
        } else {
            out.push(step);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(d: usize, s: usize, a: usize) -> Config {
        Config::new(d, s, a).unwrap()
    }

    #[test]
    fn a_layer_that_fits_is_one_chunk_in_place() {
        let p = plan(&cfg(4, 64, 64), 10, &[(8, 12)], OutputKind::Int8).unwrap();
        assert_eq!(p.segments.len(), 1);
        let s = &p.segments[0];
        assert_eq!((s.chunks, s.chunk_rows), (1, 10));
        assert_eq!(s.tiling, vec![LayerTiling { k_tiles: 2, n_tiles: 3, group: 3, slab: 2, in_place: true }]);
    }

    #[test]
    fn small_memories_split_m_n_and_k() {
        // DIM 2, 16 scratch rows, 8 acc rows; M = 40, K = 40 (20 tiles), N = 40 (20 tiles)
        let p = plan(&cfg(2, 16, 8), 40, &[(40, 40)], OutputKind::Int8).unwrap();
        let s = &p.segments[0];
        let t = s.tiling[0];
        assert!(t.slab < t.k_tiles && t.group < t.n_tiles, "{p}");
        // the memories are respected
        assert!(t.group * s.chunk_rows <= 8);
        assert!((t.slab + t.group) * s.chunk_rows <= 16);
        assert_eq!(s.chunks, 40usize.div_ceil(s.chunk_rows));
    }

    #[test]
    fn chains_end_where_activations_do_not_fit() {
        // DIM 2, 8 scratch rows: 20 hidden units = 10 tiles cannot stay on chip
        let c = cfg(2, 8, 8);
        let p = plan(&c, 4, &[(4, 20), (20, 4), (4, 2)], OutputKind::Raw).unwrap();
        let ranges: Vec<_> = p.segments.iter().map(|s| s.layers.clone()).collect();
        assert_eq!(ranges, vec![0..1, 1..3], "{p}");
        // with room enough, one chain
        let p = plan(&cfg(2, 64, 64), 4, &[(4, 20), (20, 4), (4, 2)], OutputKind::Raw).unwrap();
        assert_eq!(p.segments.len(), 1);
        assert!(p.to_string().starts_with("layers 0..3 on chip: 1 chunk(s) of up to 4 rows"), "{p}");
    }

    #[test]
    fn too_small_is_an_error_with_the_reason() {
        let e = plan(&cfg(2, 1, 1), 3, &[(4, 2)], OutputKind::Int8).unwrap_err();
        assert_eq!(
            e.to_string(),
            "layer 0 (K = 4, N = 2) does not fit DIM 2 (2x2 PEs), 1 scratchpad rows, 1 accumulator rows: an \
             int8 output needs one scratchpad row for the input and one for the output (2 rows), unless K and \
             N are at most DIM"
        );
        // raw output needs no scratchpad row for the output: it fits
        plan(&cfg(2, 1, 1), 3, &[(4, 2)], OutputKind::Raw).unwrap();
        // and so does a layer of one tile, in place
        plan(&cfg(2, 1, 1), 3, &[(2, 2)], OutputKind::Int8).unwrap();
    }

    /// A weight tile is its rows, padded with zeros past K and N.
    #[test]
    fn weight_tiles_are_their_rows() {
        let mut rng = spec::stimulus::Rng::new(5);
        for (k, n, d) in [(1, 1, 1), (5, 3, 2), (9, 17, 4), (16, 16, 8), (33, 7, 16)] {
            let w = DMatrix::from_fn(k, n, |_, _| rng.next_u64() as i8);
            for kt in 0..k.div_ceil(d) {
                for nt in 0..n.div_ceil(d) {
                    let rows: Vec<i8> = (0..d).flat_map(|r| tile_row(&w, kt, nt, r, d)).collect();
                    let row_major = w.transpose().as_slice().to_vec();
                    let tile = weight_tile(&row_major, (k, n), kt, nt, d);
                    assert_eq!(tile, rows, "{k}x{n} DIM {d} tile ({kt}, {nt})");
                }
            }
        }
    }

    /// The streaming hoist gives the steps of hoisting the whole program, on random step
    /// sequences (weight loads before any MATMUL, several in a row, none at all).
    #[test]
    fn the_streaming_hoist_equals_hoisting_the_whole_program() {
        let mut rng = spec::stimulus::Rng::new(21);
        for _ in 0..500 {
            let len = rng.below(40) as usize;
            let steps: Vec<Step> = (0..len)
                .map(|i| match rng.below(7) {
                    0 => Step::Command(Command::LoadWeights { weights: vec![i as i8; 4] }),
                    1 => Step::Command(Command::LoadTile { src: i as u16 }),
                    2 => Step::Command(Command::Matmul { src: i as u16, n: 1, dst: 0, accumulate: false }),
                    3 => Step::Command(Command::WriteAct { dst: i as u16, rows: vec![vec![1, 2]] }),
                    4 => Step::Command(Command::Activate { src: i as u16, n: 1, dst: 0 }),
                    5 => Step::ReadAct {
                        src: i as u16,
                        n: 1,
                        to: Block { result: 0, row: i, col: 0, rows: 1, cols: 1 },
                    },
                    _ => Step::Command(Command::Sync { token: i as u32 }),
                })
                .collect();
            let mut streamed = Vec::new();
            let mut sink = |s| streamed.push(s);
            let mut h = Hoist { sink: &mut sink, tail: Vec::new(), on: true };
            for s in steps.clone() {
                h.push(s);
            }
            h.finish();
            assert_eq!(streamed, hoist_weight_loads(steps));
        }
    }

    #[test]
    fn the_last_chunk_activates_its_n_tiles_beside_its_own_matmuls() {
        // DIM 4, halves of 32 scratch and accumulator rows: 4 K- and 4 N-tiles, all N-tiles of
        // a chunk in one accumulator group; the last chunk (odd: the high halves) puts its
        // third N-tile's accumulators and all its outputs in the low halves
        let c = cfg(4, 64, 64);
        let (m, k, n) = (32, 16, 16);
        let x = DMatrix::from_fn(m, k, |r, c| ((r * 5 + c * 3) % 17) as i8 - 8);
        let w: Vec<i8> = (0..k * n).map(|i| (i % 7) as i8 - 3).collect();
        let layer = Layer::from_row_major(k, n, &w, vec![1; n], Quant::new(1, 2, true).unwrap()).unwrap();
        let pl = plan_buffered(&c, m, &[(k, n)], OutputKind::Int8, Buffering::Double).unwrap();
        let seg = &pl.segments[0];
        assert!(pl.double_buffered && seg.chunks.is_multiple_of(2) && seg.tiling[0].group == 4, "{pl}");
        let p =
            compile_mlp_buffered(&c, &x, std::slice::from_ref(&layer), OutputKind::Int8, Buffering::Double)
                .unwrap();
        let (sp_half, acc_half) = (c.scratch_bank_rows() as u16, c.acc_bank_rows() as u16);
        let cmds: Vec<Command> = p.steps.iter().filter_map(Step::command).collect();
        // (position in the program, destination row) of each MATMUL / ACTIVATE
        let find = |matmul: bool| -> Vec<(usize, u16)> {
            let at = |(i, c): (usize, &Command)| match (matmul, c) {
                (true, Command::Matmul { dst, .. }) | (false, Command::Activate { dst, .. }) => {
                    Some((i, *dst))
                }
                _ => None,
            };
            cmds.iter().enumerate().filter_map(at).collect()
        };
        let matmuls = find(true);
        // the last chunk's 16 MATMULs: N-tiles 0, 1 and 3 into the high accumulator half,
        // N-tile 2 into the low one
        let last: Vec<bool> = matmuls[matmuls.len() - 16..].iter().map(|&(_, dst)| dst >= acc_half).collect();
        assert_eq!(last, [vec![true; 8], vec![false; 4], vec![true; 4]].concat());
        // its 4 ACTIVATEs write the low scratchpad half, and only the last N-tile's comes after
        // its last MATMUL
        let acts = find(false);
        let last_acts = &acts[acts.len() - 4..];
        assert!(last_acts.iter().all(|&(_, dst)| dst < sp_half), "{last_acts:?}");
        let final_matmul = matmuls.last().unwrap().0;
        assert_eq!(last_acts.iter().filter(|&&(i, _)| i > final_matmul).count(), 1);
        // and the program computes the layer (the equivalence tests check this broadly)
        let mut dev = crate::Device::open(crate::GoldenTransport::new(c), &c).unwrap();
        let out = dev.run(&p).unwrap();
        let want = spec::golden::layer_v2(&x, layer.weights(), layer.bias(), layer.layer_quant()).unwrap();
        assert_eq!(out.output().as_int8(), Some(&want));
    }

    #[test]
    fn loads_follow_matmuls_and_skip_what_the_device_holds() {
        let c = cfg(2, 4, 4);
        let layer = Layer::from_row_major(2, 2, &[1, 2, 3, 4], vec![0, 0], Quant::IDENTITY).unwrap();
        // 12 rows in chunks of at most 4: one weight tile, loaded once
        let x = DMatrix::from_element(12, 2, 1i8);
        let p = compile_layer(&c, &x, &layer, OutputKind::Int8).unwrap();
        let s = p.stats();
        assert_eq!(s.weight_loads, 1);
        assert_eq!(s.matmul_rows, 12);
        assert_eq!(
            p.steps.iter().filter(|s| matches!(s, Step::Command(Command::LoadBias { .. }))).count(),
            1
        );
    }

    #[test]
    fn resident_tiles_sit_at_the_top_and_replace_only_their_loads() {
        let c = cfg(2, 16, 8);
        let layer =
            Layer::from_row_major(3, 3, &[1, 2, 3, 4, 5, 6, 7, 8, 9], vec![0; 3], Quant::IDENTITY).unwrap();
        let x = DMatrix::from_element(2, 3, 1i8);
        // K = N = 3 at DIM 2: 2 x 2 tiles; a budget of 5 rows holds two of them, in layer
        // (n tile, k tile) order, at rows 12 and 14
        let r = Residency::plan(&c, &[&layer], 5);
        assert_eq!((r.base(), r.stored()), (12, (2, 4)));
        // tile (k 1, n 0): row 0 is W[2][0..2] = [7 8], row 1 beyond K is zero padding
        match &r.upload_commands(&[&layer])[1] {
            Command::WriteAct { dst: 14, rows } => assert_eq!(rows, &vec![vec![7, 8], vec![0, 0]]),
            other => panic!("{other:?}"),
        }
        let p = compile_mlp_resident(&c, &x, std::slice::from_ref(&layer), OutputKind::Int8, &r, 0).unwrap();
        let ops: Vec<u8> = p.steps.iter().filter_map(|s| s.command()).map(|c| c.opcode()).collect();
        let tiles: Vec<u16> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Command(Command::LoadTile { src }) => Some(*src),
                _ => None,
            })
            .collect();
        assert_eq!(tiles, [12, 14]);
        assert_eq!(ops.iter().filter(|&&o| o == spec::isa::opcode::LOAD_WEIGHTS).count(), 2);
        // no resident tile: the same program as streaming
        let none = Residency::plan(&c, &[&layer], 0);
        assert_eq!(none.stored(), (0, 4));
        let streamed = compile_mlp(&c, &x, std::slice::from_ref(&layer), OutputKind::Int8).unwrap();
        let p0 =
            compile_mlp_resident(&c, &x, std::slice::from_ref(&layer), OutputKind::Int8, &none, 0).unwrap();
        assert_eq!(p0.steps, streamed.steps);
        // a residency planned for another DIM is refused, not misused
        let other = Residency::plan(&cfg(4, 16, 8), &[&layer], 16);
        let e = compile_mlp_resident(&c, &x, std::slice::from_ref(&layer), OutputKind::Int8, &other, 0);
        assert!(matches!(&e, Err(CompileError::Network(m)) if m.contains("DIM 4")), "{e:?}");
    }

    #[test]
    fn the_plan_counts_the_words_before_compiling() {
        let mut rng = spec::stimulus::Rng::new(3);
        for (c, m, k, n) in
            [(cfg(4, 64, 32), 50, 20, 9), (cfg(2, 16, 8), 33, 7, 5), (cfg(8, 1024, 512), 64, 64, 64)]
        {
            let x = DMatrix::from_fn(m, k, |_, _| rng.next_u64() as i8);
            let w = DMatrix::from_fn(k, n, |_, _| rng.next_u64() as i8);
            let layer = Layer::new(w, DVector::zeros(n), Quant::IDENTITY).unwrap();
            let exact = compile_layer(&c, &x, &layer, OutputKind::Int8).unwrap().stats().words_to_device;
            let est = plan(&c, m, &[(k, n)], OutputKind::Int8).unwrap().words_to_device(&[(k, n)]);
            assert!(est >= exact / 2 && est <= exact * 2, "{c}: {m}x{k}x{n}: estimate {est}, exact {exact}");
        }
        // hostile sizes saturate instead of wrapping or panicking
        let huge = plan(&cfg(1, 1 << 16, 1 << 16), usize::MAX, &[(1 << 32, 1 << 32)], OutputKind::Raw);
        assert_eq!(huge.unwrap().words_to_device(&[(1 << 32, 1 << 32)]), u64::MAX);
    }

    #[test]
    fn layer_serde_is_row_major_and_checked() {
        let l = Layer::from_row_major(2, 3, &[1, 2, 3, 4, 5, 6], vec![7, 8, 9], Quant::IDENTITY).unwrap();
        assert_eq!(l.weights()[(1, 0)], 4);
        let json = serde_json::to_string(&l).unwrap();
        assert!(json.contains("\"weights\":[1,2,3,4,5,6]"), "{json}");
        assert_eq!(serde_json::from_str::<Layer>(&json).unwrap(), l);
        let bad = json.replace("[7,8,9]", "[7,8]");
        assert!(serde_json::from_str::<Layer>(&bad).unwrap_err().to_string().contains("bias has 2 elements"));
        assert_eq!(
            Layer::from_row_major(2, 3, &[1, 2], vec![0; 3], Quant::IDENTITY).unwrap_err().to_string(),
            "weights of a 2x3 layer need 6 elements, got 2"
        );
        // k * n wraps to 2 in 64 bits: refused, not a 2^63 x 2 matrix over two bytes
        let k = (1usize << 63) + 1;
        assert_eq!(
            Layer::from_row_major(k, 2, &[1, 2], vec![0; 2], Quant::IDENTITY).unwrap_err().to_string(),
            "weights of a 9223372036854775809x2 layer need 18446744073709551618 elements, got 2"
        );
        let big = 1usize << 32;
        assert!(Layer::from_row_major(big, big, &[], vec![], Quant::IDENTITY).is_err());
    }

    /// Pieces of a data step are about equal, whole rows, in order, and together the step: the same
    /// rows to the same places (WRITE_ACT: the same data; READ_ACT, write-backs: the blocks
    /// tile the original); nothing shorter than its command's fixed cycles allow.
    #[test]
    fn data_steps_split_into_equal_pieces_that_fit() {
        let c = cfg(4, 256, 64).with_lanes(spec::lanes::Lanes::new(2).unwrap());
        let rows: Vec<Vec<i8>> = (0..64).map(|r| vec![r as i8; 4]).collect();
        let write = Step::Command(Command::WriteAct { dst: 10, rows: rows.clone() });
        // 25 cycles: 3 fixed, 22 rows of one beat -> 3 pieces of 22, 22, 20 rows
        let pieces = split_rows(write.clone(), 25, &c);
        let mut dst = 10;
        let mut got = Vec::new();
        for p in &pieces {
            let Step::Command(Command::WriteAct { dst: d, rows }) = p else { panic!("{p:?}") };
            assert_eq!(*d, dst);
            assert!(front_end_cycles(p, &c) <= 25 && rows.len() >= 20, "{} rows", rows.len());
            dst += rows.len() as u16;
            got.extend(rows.iter().cloned());
        }
        assert_eq!((pieces.len(), got), (3, rows));
        // a budget below the fixed cycles' share: pieces of about 4 x 3 rows, no more of them
        assert_eq!(split_rows(write.clone(), 4, &c).len(), 64usize.div_ceil(12));
        assert_eq!(split_rows(write.clone(), 1000, &c), vec![write]);
        let to = Block { result: 1, row: 5, col: 4, rows: 50, cols: 3 };
        let read = Step::ReadAct { src: 100, n: 50, to };
        let pieces = split_rows(read, 30, &c);
        let (mut src, mut row) = (100, 5);
        for p in &pieces {
            let Step::ReadAct { src: s, n, to: b } = p else { panic!("{p:?}") };
            assert_eq!((*s, b.row, b.rows, b.col, b.cols, b.result), (src, row, usize::from(*n), 4, 3, 1));
            (src, row) = (src + n, row + usize::from(*n));
        }
        assert_eq!((pieces.len(), src, row), (2, 150, 55));
        let from = Block { result: 0, row: 7, col: 0, rows: 9, cols: 4 };
        let wb = split_rows(Step::WriteBack { dst: 3, from }, 8, &c);
        let covered: Vec<(u16, usize, usize)> = wb
            .iter()
            .map(|p| match p {
                Step::WriteBack { dst, from } => (*dst, from.row, from.rows),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(covered.iter().map(|c| c.2).sum::<usize>(), 9);
        assert!(covered.windows(2).all(|w| w[1].0 == w[0].0 + w[0].2 as u16 && w[1].1 == w[0].1 + w[0].2));
        let other = Step::Command(Command::Sync { token: 1 });
        assert_eq!(split_rows(other.clone(), 1, &c), vec![other]);
    }
}
