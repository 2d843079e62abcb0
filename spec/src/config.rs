//! The one configuration type: array size and memory sizes.
//!
//! Every layer (hdl, sim, driver, reports) takes a [`Config`]; nothing re-derives DIM or a
//! memory size on its own. A `Config` can only be built valid: [`Config::new`], the presets and
//! serde deserialisation all run the same checks.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::lanes::{Lanes, LanesError};

/// Version word answered by INFO (payload word 0): 2 since contract v2 (LOAD_QUANT, the
/// 2-word SET_QUANT with an output zero point), 3 since LOAD_TILE (resident weights).
pub const VERSION: u32 = 3;

/// Largest supported array dimension.
pub const MAX_DIM: usize = 256;
/// Largest supported memory depth (row addresses are 16 bits).
pub const MAX_ROWS: usize = 65536;

/// Why a configuration was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("DIM must be in 1..={MAX_DIM}, got {0}")]
    Dim(usize),
    #[error("{what} must be a power of two in 1..={MAX_ROWS}, got {got}")]
    Rows { what: &'static str, got: usize },
    #[error("unknown preset '{0}' (known: {known})", known = Config::PRESET_NAMES.join(", "))]
    UnknownPreset(String),
    #[error(transparent)]
    Lanes(#[from] LanesError),
}

/// Architecture parameters of one protobrain core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawConfig", into = "RawConfig")]
pub struct Config {
    dim: usize,
    scratch_rows: usize,
    acc_rows: usize,
    lanes: Lanes,
}

/// The serialised form of [`Config`]; deserialisation validates it. `lanes` is left out when
/// it is 1 and read as 1 when absent, so every configuration of the 32-bit link reads and
/// writes exactly as before LANES existed.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    dim: usize,
    scratch_rows: usize,
    acc_rows: usize,
    #[serde(default = "one_lane", skip_serializing_if = "is_one_lane")]
    lanes: usize,
}

fn one_lane() -> usize {
    1
}

fn is_one_lane(lanes: &usize) -> bool {
    *lanes == 1
}

impl TryFrom<RawConfig> for Config {
    type Error = ConfigError;
    fn try_from(r: RawConfig) -> Result<Self, ConfigError> {
        Ok(Config::new(r.dim, r.scratch_rows, r.acc_rows)?.with_lanes(Lanes::new(r.lanes)?))
    }
}

impl From<Config> for RawConfig {
    fn from(c: Config) -> Self {
        RawConfig { dim: c.dim, scratch_rows: c.scratch_rows, acc_rows: c.acc_rows, lanes: c.lanes.get() }
    }
}

impl Default for Config {
    /// DIM 8, 1024 scratchpad rows, 512 accumulator rows (DESIGN.md's defaults), LANES 1.
    fn default() -> Self {
        Config { dim: 8, scratch_rows: 1024, acc_rows: 512, lanes: Lanes::ONE }
    }
}

impl Config {
    /// Names accepted by [`Config::preset`].
    pub const PRESET_NAMES: [&'static str; 5] = ["default", "ice40-up5k", "ecp5-25k", "ecp5-85k", "tpu-v1"];

    /// A validated configuration, LANES 1 (the 32-bit link; see [`Config::with_lanes`]).
    pub fn new(dim: usize, scratch_rows: usize, acc_rows: usize) -> Result<Self, ConfigError> {
        if !(1..=MAX_DIM).contains(&dim) {
            return Err(ConfigError::Dim(dim));
        }
        check_rows("SCRATCH_ROWS", scratch_rows)?;
        check_rows("ACC_ROWS", acc_rows)?;
        Ok(Config { dim, scratch_rows, acc_rows, lanes: Lanes::ONE })
    }

    /// The same configuration with `lanes` 32-bit words per beat on the command and response
    /// streams (docs/design.md "A wider link: LANES"; [`crate::lanes`]).
    pub fn with_lanes(self, lanes: Lanes) -> Config {
        Config { lanes, ..self }
    }

    /// Words per beat on the command and response streams: 1 unless set by
    /// [`Config::with_lanes`].
    pub fn lanes(&self) -> Lanes {
        self.lanes
    }

    /// A named preset:
    ///
    /// | name | DIM | SCRATCH_ROWS | ACC_ROWS | for |
    /// |---|---|---|---|---|
    /// | `default` | 8 | 1024 | 512 | simulation, ECP5-85k class |
    /// | `ice40-up5k` | 2 | 4096 | 512 | iCEBreaker (8 SB_MAC16, 30 EBR) |
    /// | `ecp5-25k` | 4 | 2048 | 1024 | ULX3S 25F (28 MULT18X18D) |
    /// | `ecp5-85k` | 8 | 1024 | 512 | ULX3S 85F (156 MULT18X18D) |
    /// | `tpu-v1` | 256 | 65536 | 4096 | estimation and `emit` (no Verilator model; TPU v1: 256x256, 16 MiB of the 24 MiB buffer, 4 MiB accumulators) |
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        let (d, s, a) = match name {
            "default" => (8, 1024, 512),
            "ice40-up5k" => (2, 4096, 512),
            "ecp5-25k" => (4, 2048, 1024),
            "ecp5-85k" => (8, 1024, 512),
            "tpu-v1" => (256, 65536, 4096),
            other => return Err(ConfigError::UnknownPreset(other.to_string())),
        };
        Config::new(d, s, a)
    }

    /// The array is `dim() x dim()` processing elements.
    pub fn dim(&self) -> usize {
        self.dim
    }
    /// Activation scratchpad depth, rows of `dim()` int8.
    pub fn scratch_rows(&self) -> usize {
        self.scratch_rows
    }
    /// Accumulator memory depth, rows of `dim()` int32.
    pub fn acc_rows(&self) -> usize {
        self.acc_rows
    }
    /// Words per int8 row on the stream: `ceil(dim / 4)`.
    pub fn words_per_row(&self) -> usize {
        self.dim.div_ceil(4)
    }
    /// Multiply-accumulates per row pushed through the array: `dim²`.
    pub fn macs_per_row(&self) -> u64 {
        (self.dim * self.dim) as u64
    }
    /// Rows of one scratchpad bank: the low and the high half of the rows are two banks with
    /// read ports of their own (a one-row memory is one bank). See [`banks_touched`].
    pub fn scratch_bank_rows(&self) -> usize {
        (self.scratch_rows / 2).max(1)
    }
    /// Rows of one accumulator bank (as [`Config::scratch_bank_rows`]).
    pub fn acc_bank_rows(&self) -> usize {
        (self.acc_rows / 2).max(1)
    }
}

/// The banks (low, high) that rows `first .. first + rows` of a memory with banks of
/// `bank_rows` rows touch: none for `rows == 0`. The scratchpad and the accumulators are two
/// banks each (issue 13): a MATMUL reads the banks its rows touch while the front end reads
/// the others, and a command waits only for the banks it touches (docs/architecture.md). Wide
/// arithmetic: any 16-bit `first` and `rows` (the range checks come first in the core).
pub fn banks_touched(first: u32, rows: u32, bank_rows: u32) -> [bool; 2] {
    let end = u64::from(first) + u64::from(rows);
    [rows > 0 && first < bank_rows, rows > 0 && end > u64::from(bank_rows)]
}

/// Whether rows `a .. a + n` and `b .. b + m` share a row (wide arithmetic, no wrap): the rule
/// by which a command waits for the ACTIVATE engine while their rows meet
/// (docs/architecture.md; `hdl::controller::activate` computes it in 16 bits).
pub fn rows_meet(a: u32, n: u32, b: u32, m: u32) -> bool {
    let (a, n, b, m) = (u64::from(a), u64::from(n), u64::from(b), u64::from(m));
    n > 0 && m > 0 && a < b + m && b < a + n
}

fn check_rows(what: &'static str, got: usize) -> Result<(), ConfigError> {
    if got == 0 || got > MAX_ROWS || !got.is_power_of_two() {
        return Err(ConfigError::Rows { what, got });
    }
    Ok(())
}

impl std::fmt::Display for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "DIM {} ({}x{} PEs), {} scratchpad rows, {} accumulator rows",
            self.dim, self.dim, self.dim, self.scratch_rows, self.acc_rows
        )?;
        if self.lanes.get() > 1 {
            write!(f, ", LANES {}", self.lanes)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_named() {
        for name in Config::PRESET_NAMES {
            Config::preset(name).unwrap();
        }
        assert_eq!(Config::preset("default").unwrap(), Config::default());
        assert_eq!(Config::preset("ice40-up5k").unwrap().dim(), 2);
        assert_eq!(Config::preset("ecp5-25k").unwrap().dim(), 4);
        assert_eq!(Config::preset("ecp5-85k").unwrap().dim(), 8);
        assert_eq!(Config::preset("tpu-v1").unwrap().dim(), 256);
    }

    #[test]
    fn errors_say_what_was_wrong() {
        assert_eq!(Config::new(0, 8, 8).unwrap_err().to_string(), "DIM must be in 1..=256, got 0");
        assert_eq!(Config::new(257, 8, 8).unwrap_err().to_string(), "DIM must be in 1..=256, got 257");
        assert_eq!(
            Config::new(4, 1000, 8).unwrap_err().to_string(),
            "SCRATCH_ROWS must be a power of two in 1..=65536, got 1000"
        );
        assert_eq!(
            Config::new(4, 8, 131072).unwrap_err().to_string(),
            "ACC_ROWS must be a power of two in 1..=65536, got 131072"
        );
        assert_eq!(
            Config::preset("zynq").unwrap_err().to_string(),
            "unknown preset 'zynq' (known: default, ice40-up5k, ecp5-25k, ecp5-85k, tpu-v1)"
        );
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let c = Config::preset("ecp5-25k").unwrap();
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(s, r#"{"dim":4,"scratch_rows":2048,"acc_rows":1024}"#);
        assert_eq!(serde_json::from_str::<Config>(&s).unwrap(), c);
        let bad = serde_json::from_str::<Config>(r#"{"dim":4,"scratch_rows":3,"acc_rows":8}"#);
        assert!(bad.unwrap_err().to_string().contains("SCRATCH_ROWS must be a power of two"));
    }

    #[test]
    fn lanes_default_to_one_and_are_kept() {
        for name in Config::PRESET_NAMES {
            assert_eq!(Config::preset(name).unwrap().lanes(), Lanes::ONE, "{name}");
        }
        assert_eq!(Config::new(4, 8, 8).unwrap().lanes(), Lanes::ONE);
        assert_eq!(Config::default().lanes(), Lanes::ONE);
        let c = Config::new(16, 64, 32).unwrap().with_lanes(Lanes::new(4).unwrap());
        assert_eq!(c.lanes().get(), 4);
        assert_eq!((c.dim(), c.scratch_rows(), c.acc_rows()), (16, 64, 32));
        assert_ne!(c, Config::new(16, 64, 32).unwrap());
        assert_eq!(c.with_lanes(Lanes::ONE), Config::new(16, 64, 32).unwrap());
    }

    #[test]
    fn lanes_show_in_text_only_above_one() {
        let c = Config::new(4, 8, 16).unwrap();
        let one = "DIM 4 (4x4 PEs), 8 scratchpad rows, 16 accumulator rows";
        assert_eq!(c.to_string(), one);
        assert_eq!(c.with_lanes(Lanes::ONE).to_string(), one);
        assert_eq!(c.with_lanes(Lanes::new(8).unwrap()).to_string(), format!("{one}, LANES 8"));
    }

    #[test]
    fn lanes_in_json_only_above_one() {
        let c = Config::preset("ecp5-25k").unwrap();
        let one = r#"{"dim":4,"scratch_rows":2048,"acc_rows":1024}"#;
        assert_eq!(serde_json::to_string(&c.with_lanes(Lanes::ONE)).unwrap(), one);
        // an explicit 1 reads as the default
        let explicit = r#"{"dim":4,"scratch_rows":2048,"acc_rows":1024,"lanes":1}"#;
        assert_eq!(serde_json::from_str::<Config>(explicit).unwrap(), c);
        let wide = c.with_lanes(Lanes::new(16).unwrap());
        let s = serde_json::to_string(&wide).unwrap();
        assert_eq!(s, r#"{"dim":4,"scratch_rows":2048,"acc_rows":1024,"lanes":16}"#);
        assert_eq!(serde_json::from_str::<Config>(&s).unwrap(), wide);
        let bad = serde_json::from_str::<Config>(r#"{"dim":4,"scratch_rows":8,"acc_rows":8,"lanes":3}"#);
        assert!(bad.unwrap_err().to_string().contains("LANES must be a power of two in 1..=64, got 3"));
    }

    #[test]
    fn banks_are_the_halves() {
        let c = Config::new(4, 8, 1).unwrap();
        assert_eq!((c.scratch_bank_rows(), c.acc_bank_rows()), (4, 1));
        assert_eq!(banks_touched(0, 0, 4), [false, false]);
        assert_eq!(banks_touched(0, 4, 4), [true, false]);
        assert_eq!(banks_touched(3, 2, 4), [true, true]);
        assert_eq!(banks_touched(4, 4, 4), [false, true]);
        // a one-row memory: only bank 0, whatever is asked
        assert_eq!(banks_touched(0, 1, 1), [true, false]);
        assert_eq!(banks_touched(0xFFFF, 0xFFFF, 1), [false, true]);
    }

    #[test]
    fn words_per_row_rounds_up() {
        for (d, w) in [(1, 1), (4, 1), (5, 2), (8, 2), (256, 64)] {
            assert_eq!(Config::new(d, 1, 1).unwrap().words_per_row(), w);
        }
    }
}
