//! Energy and power: activity counts of a simulated run times energy per event from a
//! technology table, plus clock/register, control and leakage terms.
//!
//! ```text
//!  Activity (native model) ──┐    TechTable (estimate/tech/*.toml, every number with its source)
//!  cycles, clock ────────────┼──► energy per component ──► EnergyBreakdown (pJ)
//!  Config (DIM, memories) ───┘       array        MACs (multiply + add), PE and skew registers,
//!                                                 weight register writes
//!                                    scratchpad   row reads + writes × E_row(size)
//!                                    accumulators row reads + writes × E_row(size), RMW adds
//!                                    activation   rows × DIM unit operations, bias writes
//!                                    io           words in + out × 32 × E_bit
//!                                    control      cycles × E_cycle (controller, row buffer)
//!                                    static       leakage W/mm² × estimated area × time
//! ```
//!
//! The formulas, their assumptions and what the tables are built from are in
//! `docs/estimates.md`; the per-event energies come only from the table, so a user's own table
//! (`--tech FILE`) changes every number consistently.
//!
//! **Zero operands.** The RTL has no zero gating: a multiplier with a zero operand still sees
//! its inputs change. But every partial product of `0 × w` is zero, so its internal nodes
//! barely switch; the table's `zero_operand_mult_factor` is the fraction of the 8-bit multiply
//! energy such a MAC still costs (the adder and registers are charged in full). With a factor
//! below 1, zero activations or weights cost less array energy than random ones.

use serde::{Deserialize, Serialize};
use spec::Config;
use thiserror::Error;

use sim::activity::Activity;

/// Pipeline register bits per PE: activation (8), bank tag (1), partial sum (32)
/// (`hdl/src/pe.rs`); they clock every cycle.
pub const PE_PIPELINE_BITS: u64 = 41;
/// Weight register bits per PE: two banks of 8 (written by LOAD_WEIGHTS only).
pub const PE_WEIGHT_BITS: u64 = 16;
/// Register bits of one activation unit's 6-stage pipeline (`hdl/src/activation.rs`: sum 32,
/// two partial products and a correction 96, w 49, window 16 + 2 + shift 6, magnitude 8 + 2,
/// result 8, rounded up).
pub const ACT_PIPELINE_BITS: u64 = 220;

/// The 45 nm table shipped with protobrain (Horowitz, ISSCC 2014).
pub const TECH_45NM: &str = include_str!("../tech/horowitz-45nm.toml");
/// The 28 nm table: the 45 nm one scaled (see its header for the rule).
pub const TECH_28NM: &str = include_str!("../tech/scaled-28nm.toml");

/// A number with where it comes from (a paper, a datasheet, or "assumption: why").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sourced {
    /// The value, in the unit the field's name says.
    pub value: f64,
    /// Where the value comes from.
    pub source: String,
}

/// One point of the SRAM energy curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SramPoint {
    /// Capacity of the memory, bytes.
    pub bytes: f64,
    /// Energy of one 64-bit access, pJ.
    pub pj: f64,
}

/// SRAM access energy per 64 bits as a function of capacity, with its source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SramCurve {
    /// At least two points, capacities strictly increasing.
    pub points: Vec<SramPoint>,
    /// Where the points come from.
    pub source: String,
}

impl SramCurve {
    /// Energy of one 64-bit access to a memory of `bytes`: piecewise linear in log(capacity)
    /// and log(energy) through the points, extended beyond the first and last points with the
    /// slope of the nearest segment (the curve is a power law `E ∝ bytes^s` on each segment;
    /// Horowitz's 8 KB → 32 KB step has `s = 0.5`, the wire-length rule `E ∝ √capacity`).
    pub fn pj_per_64b(&self, bytes: f64) -> f64 {
        let p = &self.points;
        let i = p.iter().position(|q| q.bytes >= bytes).unwrap_or(p.len() - 1);
        let seg = i.saturating_sub(1).min(p.len() - 2);
        let (a, b) = (p[seg], p[seg + 1]);
        let slope = (b.pj / a.pj).ln() / (b.bytes / a.bytes).ln();
        a.pj * (bytes / a.bytes).powf(slope)
    }
}

/// Areas used for the leakage estimate (and reported as a rough area), µm².
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaTable {
    /// An 8x8-bit multiplier.
    pub int8_mult_um2: Sourced,
    /// A 32-bit adder.
    pub int32_add_um2: Sourced,
    /// A 32x32-bit multiplier.
    pub int32_mult_um2: Sourced,
    /// One flip-flop.
    pub register_bit_um2: Sourced,
    /// One SRAM bit, array overhead included.
    pub sram_bit_um2: Sourced,
    /// The controller, row buffer and stream ports (independent of DIM).
    pub control_um2: Sourced,
}

/// Energy per event and the other constants of the power model, for one technology.
///
/// Loaded from TOML ([`TechTable::from_toml`]); every number carries its source, unknown
/// fields are errors, and every value must be finite and non-negative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TechTable {
    /// Short name shown in reports.
    pub name: String,
    /// Process node, nm.
    pub node_nm: f64,
    /// Supply voltage the energies are given at, V.
    pub voltage_v: f64,
    /// How the table was made (free text).
    #[serde(default)]
    pub notes: String,
    /// 8-bit integer add, pJ.
    pub int8_add_pj: Sourced,
    /// 32-bit integer add, pJ.
    pub int32_add_pj: Sourced,
    /// 8x8-bit integer multiply, pJ.
    pub int8_mult_pj: Sourced,
    /// 32x32-bit integer multiply, pJ.
    pub int32_mult_pj: Sourced,
    /// SRAM access energy per 64 bits by capacity.
    pub sram_64b: SramCurve,
    /// A flip-flop clocked with new data, pJ per bit per cycle.
    pub register_bit_active_pj: Sourced,
    /// A flip-flop clocked with unchanged data (clock only), pJ per bit per cycle.
    pub register_bit_idle_pj: Sourced,
    /// Fraction of the 8-bit multiply energy a MAC with a zero operand costs (0..=1).
    pub zero_operand_mult_factor: Sourced,
    /// The host link's I/O (pads, PHY), pJ per bit moved on or off the chip.
    pub io_bit_pj: Sourced,
    /// The controller, counters and row buffer, pJ per cycle.
    pub control_cycle_pj: Sourced,
    /// Leakage power density, W per mm² of the estimated area.
    pub leakage_w_per_mm2: Sourced,
    /// Areas for the leakage estimate.
    pub area: AreaTable,
}

/// A technology table that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TechError {
    /// Not TOML, or not the table's fields.
    #[error("not a technology table: {0}")]
    Parse(String),
    /// A value out of range or a missing source.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field, e.g. `int8_mult_pj`.
        field: String,
        /// What is wrong.
        problem: String,
    },
}

impl TechTable {
    /// Parse and check a table (see the struct docs).
    pub fn from_toml(text: &str) -> Result<Self, TechError> {
        let t: TechTable = toml::from_str(text).map_err(|e| TechError::Parse(e.message().to_string()))?;
        t.check()?;
        Ok(t)
    }

    /// The shipped 45 nm table.
    pub fn horowitz_45nm() -> Self {
        TechTable::from_toml(TECH_45NM).expect("the shipped 45 nm table is valid")
    }

    /// The shipped 28 nm table.
    pub fn scaled_28nm() -> Self {
        TechTable::from_toml(TECH_28NM).expect("the shipped 28 nm table is valid")
    }

    /// Every scalar with its field name (for checks and scaling).
    pub fn scalars(&self) -> Vec<(&'static str, &Sourced)> {
        let a = &self.area;
        vec![
            ("int8_add_pj", &self.int8_add_pj),
            ("int32_add_pj", &self.int32_add_pj),
            ("int8_mult_pj", &self.int8_mult_pj),
            ("int32_mult_pj", &self.int32_mult_pj),
            ("register_bit_active_pj", &self.register_bit_active_pj),
            ("register_bit_idle_pj", &self.register_bit_idle_pj),
            ("zero_operand_mult_factor", &self.zero_operand_mult_factor),
            ("io_bit_pj", &self.io_bit_pj),
            ("control_cycle_pj", &self.control_cycle_pj),
            ("leakage_w_per_mm2", &self.leakage_w_per_mm2),
            ("area.int8_mult_um2", &a.int8_mult_um2),
            ("area.int32_add_um2", &a.int32_add_um2),
            ("area.int32_mult_um2", &a.int32_mult_um2),
            ("area.register_bit_um2", &a.register_bit_um2),
            ("area.sram_bit_um2", &a.sram_bit_um2),
            ("area.control_um2", &a.control_um2),
        ]
    }

    fn check(&self) -> Result<(), TechError> {
        let bad = |field: &str, problem: String| TechError::Invalid { field: field.to_string(), problem };
        for (field, s) in self.scalars() {
            if !(s.value.is_finite() && s.value >= 0.0) {
                return Err(bad(field, format!("must be a finite number >= 0, got {}", s.value)));
            }
            if s.source.trim().is_empty() {
                return Err(bad(field, "has no source: say where the number comes from".into()));
            }
        }
        if self.zero_operand_mult_factor.value > 1.0 {
            return Err(bad(
                "zero_operand_mult_factor",
                format!(
                    "is a fraction of the multiply energy, 0..=1, got {}",
                    self.zero_operand_mult_factor.value
                ),
            ));
        }
        let p = &self.sram_64b.points;
        if p.len() < 2 {
            return Err(bad("sram_64b.points", format!("needs at least 2 points, got {}", p.len())));
        }
        if p.iter().any(|q| !(q.bytes.is_finite() && q.bytes > 0.0 && q.pj.is_finite() && q.pj > 0.0)) {
            return Err(bad("sram_64b.points", "bytes and pj must be finite and > 0".into()));
        }
        if p.windows(2).any(|w| w[1].bytes <= w[0].bytes) {
            return Err(bad("sram_64b.points", "capacities must increase strictly".into()));
        }
        if self.sram_64b.source.trim().is_empty() {
            return Err(bad("sram_64b", "has no source: say where the numbers come from".into()));
        }
        Ok(())
    }

    /// Energy of one MAC with nonzero operands: 8-bit multiply + 32-bit add, pJ.
    pub fn mac_pj(&self) -> f64 {
        self.int8_mult_pj.value + self.int32_add_pj.value
    }

    /// Energy of one activation-unit operation (one column of one row), pJ: the bias add, the
    /// two 16x16 products (each a quarter of a 32x32 multiply), the 48-bit product sum
    /// (1.5 32-bit adds), the rounding window shifter (one 32-bit add), the ReLU/clamp (an
    /// 8-bit add) and the pipeline registers ([`ACT_PIPELINE_BITS`]).
    pub fn act_op_pj(&self) -> f64 {
        self.int32_add_pj.value * 3.5
            + self.int32_mult_pj.value * 0.5
            + self.int8_add_pj.value
            + ACT_PIPELINE_BITS as f64 * self.register_bit_active_pj.value
    }

    /// Energy of one access to a row of `row_bits` in a memory of `rows` rows, pJ. The memory
    /// is modelled as 64-bit-wide slices side by side; a row access touches `row_bits / 64` of
    /// them, each a memory of `rows × 8` bytes (a memory narrower than 64 bits is one slice of
    /// its whole capacity, and the access costs its share of 64 bits).
    pub fn row_access_pj(&self, rows: usize, row_bits: usize) -> f64 {
        let slices = row_bits as f64 / 64.0;
        let slice_bytes =
            if row_bits >= 64 { rows as f64 * 8.0 } else { rows as f64 * row_bits as f64 / 8.0 };
        slices * self.sram_64b.pj_per_64b(slice_bytes)
    }
}

/// Energy by component, pJ (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EnergyBreakdown {
    /// MACs, PE pipeline and skew/deskew registers, weight register writes.
    pub array: f64,
    /// Scratchpad row reads and writes.
    pub scratchpad: f64,
    /// Accumulator row reads and writes and the read-modify-write adders.
    pub accumulators: f64,
    /// Activation units and bias registers.
    pub activation: f64,
    /// Words over the host link.
    pub io: f64,
    /// Controller, counters and row buffer.
    pub control: f64,
    /// Leakage over the run's time.
    #[serde(rename = "static")]
    pub static_: f64,
}

impl EnergyBreakdown {
    /// The components with their names, in report order.
    pub fn parts(&self) -> [(&'static str, f64); 7] {
        [
            ("array", self.array),
            ("scratchpad", self.scratchpad),
            ("accumulators", self.accumulators),
            ("activation", self.activation),
            ("io", self.io),
            ("control", self.control),
            ("static", self.static_),
        ]
    }

    /// The sum of the components, pJ.
    pub fn total(&self) -> f64 {
        self.parts().iter().map(|(_, e)| e).sum()
    }
}

/// Estimated silicon area by component, mm² (for leakage; a rough figure).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct AreaBreakdown {
    /// PEs (multiplier, adder, 57 register bits each) and the skew/deskew registers.
    pub array: f64,
    /// Scratchpad bits.
    pub scratchpad: f64,
    /// Accumulator bits and the DIM read-modify-write adders.
    pub accumulators: f64,
    /// DIM activation units and bias registers.
    pub activation: f64,
    /// Controller, row buffer, stream ports.
    pub control: f64,
}

impl AreaBreakdown {
    /// The sum, mm².
    pub fn total(&self) -> f64 {
        self.array + self.scratchpad + self.accumulators + self.activation + self.control
    }
}

/// Registers of the input skew (8-bit activation + bank tag, row `k` delayed `k` cycles) and
/// the output deskew (32-bit sums, column `n` delayed `DIM - 1 - n`): `DIM(DIM-1)/2 × 41` bits.
pub fn skew_bits(dim: u64) -> u64 {
    dim * dim.saturating_sub(1) / 2 * (9 + 32)
}

/// The area model (see [`AreaBreakdown`]).
pub fn area(cfg: &Config, tech: &TechTable) -> AreaBreakdown {
    let a = &tech.area;
    let d = cfg.dim() as f64;
    let reg = a.register_bit_um2.value;
    let pe = a.int8_mult_um2.value + a.int32_add_um2.value + (PE_PIPELINE_BITS + PE_WEIGHT_BITS) as f64 * reg;
    let act_unit =
        3.5 * a.int32_add_um2.value + 0.5 * a.int32_mult_um2.value + (ACT_PIPELINE_BITS + 32) as f64 * reg;
    let um2 = 1e-6;
    AreaBreakdown {
        array: (d * d * pe + skew_bits(cfg.dim() as u64) as f64 * reg) * um2,
        scratchpad: (cfg.scratch_rows() as f64 * d * 8.0 * a.sram_bit_um2.value) * um2,
        accumulators: (cfg.acc_rows() as f64 * d * 32.0 * a.sram_bit_um2.value + d * a.int32_add_um2.value)
            * um2,
        activation: d * act_unit * um2,
        control: a.control_um2.value * um2,
    }
}

/// Energy of a run of `activity` on `cfg` at `clock_hz` (see the module docs), pJ by component.
pub fn energy(cfg: &Config, activity: &Activity, clock_hz: f64, tech: &TechTable) -> EnergyBreakdown {
    let d = cfg.dim() as u64;
    let f = |n: u64| n as f64;
    let a = activity;
    let (reg_on, reg_off) = (tech.register_bit_active_pj.value, tech.register_bit_idle_pj.value);
    let idle_cycles = a.cycles.saturating_sub(a.array_busy_cycles);
    let pipeline_bits = f(d * d * PE_PIPELINE_BITS + skew_bits(d));
    let nonzero = a.macs - a.zero_operand_macs.min(a.macs);
    let mults = f(nonzero) + f(a.zero_operand_macs) * tech.zero_operand_mult_factor.value;
    let array = mults * tech.int8_mult_pj.value
        + f(a.macs) * tech.int32_add_pj.value
        + pipeline_bits * (f(a.array_busy_cycles) * reg_on + f(idle_cycles) * reg_off)
        + f(a.weight_row_writes * d * 8 + a.bank_swaps * d * d) * reg_on;
    let scratch_row = tech.row_access_pj(cfg.scratch_rows(), cfg.dim() * 8);
    let acc_row = tech.row_access_pj(cfg.acc_rows(), cfg.dim() * 32);
    let seconds = f(a.cycles) / clock_hz;
    EnergyBreakdown {
        array,
        scratchpad: f(a.scratch_reads + a.scratch_writes) * scratch_row,
        accumulators: f(a.acc_reads + a.acc_writes) * acc_row + f(a.acc_writes * d) * tech.int32_add_pj.value,
        activation: f(a.act_unit_ops(cfg.dim())) * tech.act_op_pj() + f(a.bias_writes * 32) * reg_on,
        io: f((a.words_in + a.words_out) * 32) * tech.io_bit_pj.value,
        control: f(a.cycles) * tech.control_cycle_pj.value,
        static_: area(cfg, tech).total() * tech.leakage_w_per_mm2.value * seconds * 1e12,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_tables_load_and_carry_horowitz_numbers() {
        let t = TechTable::horowitz_45nm();
        assert_eq!(t.int8_add_pj.value, 0.03);
        assert_eq!(t.int8_mult_pj.value, 0.2);
        assert_eq!(t.int32_add_pj.value, 0.1);
        let close = |a: f64, b: f64| (a - b).abs() < 1e-9 * b.max(1.0);
        assert!(close(t.sram_64b.pj_per_64b(8192.0), 10.0));
        assert!(close(t.sram_64b.pj_per_64b(32768.0), 20.0));
        assert!(close(t.sram_64b.pj_per_64b(1048576.0), 100.0));
        // between the points: log-log; 16 KB is √2 × 10 pJ on the 8 KB → 32 KB power law
        assert!(close(t.sram_64b.pj_per_64b(16384.0), 10.0 * 2f64.sqrt()));
        // outside: the nearest segment's slope, 2 KB = 10 / 2
        assert!(close(t.sram_64b.pj_per_64b(2048.0), 5.0));
        // the energy grows with capacity everywhere
        let sizes = [512.0, 4096.0, 8192.0, 20000.0, 32768.0, 500e3, 1048576.0, 16e6];
        assert!(sizes.windows(2).all(|w| t.sram_64b.pj_per_64b(w[0]) < t.sram_64b.pj_per_64b(w[1])));
    }

    /// The 28 nm table is the 45 nm one with every energy scaled by the stated rule
    /// (28/45 at equal voltage), every area by (28/45)², the fractions and densities kept.
    #[test]
    fn the_28nm_table_is_the_45nm_table_scaled_by_the_documented_rule() {
        let (a, b) = (TechTable::horowitz_45nm(), TechTable::scaled_28nm());
        let e = 28.0 / 45.0;
        let expect = |field: &str| -> f64 {
            if field.starts_with("area.") {
                e * e
            } else if field == "zero_operand_mult_factor"
                || field == "leakage_w_per_mm2"
                || field == "io_bit_pj"
            {
                1.0
            } else {
                e
            }
        };
        for ((name, x), (_, y)) in a.scalars().into_iter().zip(b.scalars()) {
            let want = x.value * expect(name);
            assert!((y.value - want).abs() <= 0.006 * want, "{name}: {} vs {want}", y.value);
        }
        for (p, q) in a.sram_64b.points.iter().zip(&b.sram_64b.points) {
            assert_eq!(p.bytes, q.bytes);
            assert!((q.pj - p.pj * e).abs() <= 0.006 * p.pj * e);
        }
        assert_eq!(b.node_nm, 28.0);
    }

    #[test]
    fn bad_tables_are_refused_with_the_field_named() {
        let no_source = TECH_45NM.replacen(
            "int8_mult_pj = { value = 0.2, source = ",
            "int8_mult_pj = { value = 0.2, source = \"\" }\n# ",
            1,
        );
        assert_eq!(
            TechTable::from_toml(&no_source).unwrap_err().to_string(),
            "int8_mult_pj: has no source: say where the number comes from"
        );
        let negative =
            TECH_45NM.replacen("int8_mult_pj = { value = 0.2,", "int8_mult_pj = { value = -0.2,", 1);
        assert_eq!(
            TechTable::from_toml(&negative).unwrap_err().to_string(),
            "int8_mult_pj: must be a finite number >= 0, got -0.2"
        );
        let unknown = format!("{TECH_45NM}\nint4_mult_pj = {{ value = 0.1, source = \"x\" }}\n");
        assert!(matches!(TechTable::from_toml(&unknown), Err(TechError::Parse(_))));
        assert!(matches!(TechTable::from_toml("name = 3"), Err(TechError::Parse(_))));
    }

    #[test]
    fn energy_counts_each_event_once() {
        let cfg = Config::new(4, 64, 32).unwrap();
        let t = TechTable::horowitz_45nm();
        let clock = 100e6;
        let zero = energy(&cfg, &Activity::default(), clock, &t);
        assert_eq!(zero.total(), 0.0);
        // one cycle, nothing else: control, idle registers, leakage
        let one = Activity { cycles: 1, ..Activity::default() };
        let e1 = energy(&cfg, &one, clock, &t);
        let idle_bits = (16 * PE_PIPELINE_BITS + skew_bits(4)) as f64;
        assert!((e1.array - idle_bits * t.register_bit_idle_pj.value).abs() < 1e-12);
        assert_eq!(e1.control, t.control_cycle_pj.value);
        let leak = area(&cfg, &t).total() * t.leakage_w_per_mm2.value * 1e-8 * 1e12;
        assert!((e1.static_ - leak).abs() < 1e-9);
        // 16 more MACs cost 16 MAC energies; 16 zero-operand ones less
        let busy = Activity { cycles: 1, array_busy_cycles: 1, ..Activity::default() };
        let b = energy(&cfg, &busy, clock, &t).array;
        let with_macs = energy(&cfg, &Activity { macs: 16, ..busy }, clock, &t).array;
        assert!((with_macs - b - 16.0 * t.mac_pj()).abs() < 1e-9);
        let zeros = energy(&cfg, &Activity { macs: 16, zero_operand_macs: 16, ..busy }, clock, &t).array;
        let saved = 16.0 * t.int8_mult_pj.value * (1.0 - t.zero_operand_mult_factor.value);
        assert!((with_macs - zeros - saved).abs() < 1e-9);
        // memories: one row each way
        let mem = Activity { scratch_reads: 1, acc_writes: 1, ..Activity::default() };
        let e = energy(&cfg, &mem, clock, &t);
        assert_eq!(e.scratchpad, t.row_access_pj(64, 32));
        assert!((e.accumulators - t.row_access_pj(32, 128) - 4.0 * t.int32_add_pj.value).abs() < 1e-12);
        // I/O per bit
        let io = Activity { words_in: 3, words_out: 1, ..Activity::default() };
        assert_eq!(energy(&cfg, &io, clock, &t).io, 128.0 * t.io_bit_pj.value);
    }

    #[test]
    fn row_access_follows_the_slice_model() {
        let t = TechTable::horowitz_45nm();
        // a 64-bit row in 1024 rows: one 8 KB slice, 10 pJ
        assert!((t.row_access_pj(1024, 64) - 10.0).abs() < 1e-9);
        // 256-bit rows: four 8 KB slices
        assert!((t.row_access_pj(1024, 256) - 40.0).abs() < 1e-9);
        // 16-bit rows in 4096 rows: one 8 KB memory, a quarter of a 64-bit access
        assert!((t.row_access_pj(4096, 16) - 2.5).abs() < 1e-9);
    }
}
