//! Activity counts of one simulated run, the raw material of power estimation: how often each
//! unit of `protobrain_core` did something, counted by the native model
//! ([`crate::native::NativeSim::activity`]) at the cycle the hardware does it.
//!
//! ```text
//!  stream in ──► words_in                                         words_out ──► stream out
//!      │
//!      ├─► weight_row_writes, bank_swaps ──► array: macs, zero_operand_macs, array_busy_cycles
//!      ├─► bias_writes                          ▲                 │
//!      │                               scratch_reads          acc_reads, acc_writes
//!      └─► scratch_writes ──► scratchpad ───────┘                 │
//!                                 ▲                               ▼
//!                                 └── scratch_writes ◄── act_rows, act_busy_cycles
//! ```
//!
//! Every count is since the last reset (a reset clears them, like the hardware's counters).
//! Memory counts are in rows (one row = DIM int8 for the scratchpad, DIM int32 for the
//! accumulators, DIM int8 for a weight row), so energy per access scales with DIM.

use serde::{Deserialize, Serialize};

/// Activity counts of one run (see the module docs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Activity {
    /// Clock cycles simulated.
    pub cycles: u64,
    /// Multiply-accumulates issued: DIM² per row entering the array (the COUNTERS `macs`).
    pub macs: u64,
    /// MACs of those whose activation or weight is zero (a zero-gating or clock-gating design
    /// would skip them; their multiplier inputs still toggle in this one).
    pub zero_operand_macs: u64,
    /// Scratchpad row reads: one per MATMUL row, one per READ_ACT row.
    pub scratch_reads: u64,
    /// Scratchpad row writes: one per WRITE_ACT row, one per ACTIVATE row.
    pub scratch_writes: u64,
    /// Accumulator row reads: one per MATMUL row (the read of the read-modify-write happens
    /// whether or not the row accumulates), one per ACTIVATE row, one per READ_ACC row.
    pub acc_reads: u64,
    /// Accumulator row writes: one per MATMUL row.
    pub acc_writes: u64,
    /// Weight rows written into the shadow bank (DIM per LOAD_WEIGHTS).
    pub weight_row_writes: u64,
    /// Weight bank swaps (a MATMUL after a LOAD_WEIGHTS makes the shadow bank current).
    pub bank_swaps: u64,
    /// Bias registers written (DIM per LOAD_BIAS).
    pub bias_writes: u64,
    /// Rows through the activation units (each is DIM unit operations, one per column).
    pub act_rows: u64,
    /// Words taken from the input stream (at LANES > 1 LANES per beat taken, padding
    /// included: words of the flattened beat stream).
    pub words_in: u64,
    /// Words sent on the output stream (at LANES > 1 LANES per beat sent).
    pub words_out: u64,
    /// Cycles with at least one row inside the MATMUL pipeline (from its scratchpad read to its
    /// accumulator write, inclusive).
    pub array_busy_cycles: u64,
    /// Cycles with at least one row inside the ACTIVATE pipeline (from its accumulator read to
    /// its scratchpad write, inclusive).
    pub act_busy_cycles: u64,
}

impl Activity {
    /// Fraction of the array's MAC slots used: `macs / (cycles * dim²)` (0 for an empty run).
    pub fn array_utilization(&self, dim: usize) -> f64 {
        let slots = self.cycles as f64 * (dim * dim) as f64;
        if slots == 0.0 {
            0.0
        } else {
            self.macs as f64 / slots
        }
    }

    /// Activation-unit operations: `act_rows * dim` (one per column per row).
    pub fn act_unit_ops(&self, dim: usize) -> u64 {
        self.act_rows * dim as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_every_field_by_name_and_round_trips() {
        let a = Activity {
            cycles: 1000,
            macs: 640,
            zero_operand_macs: 7,
            scratch_reads: 12,
            scratch_writes: 13,
            acc_reads: 14,
            acc_writes: 10,
            weight_row_writes: 8,
            bank_swaps: 1,
            bias_writes: 8,
            act_rows: 3,
            words_in: 99,
            words_out: 5,
            array_busy_cycles: 40,
            act_busy_cycles: 11,
        };
        let json = serde_json::to_string(&a).unwrap();
        for field in
            ["\"cycles\":1000", "\"zero_operand_macs\":7", "\"bank_swaps\":1", "\"act_busy_cycles\":11"]
        {
            assert!(json.contains(field), "{field} missing from {json}");
        }
        assert_eq!(serde_json::from_str::<Activity>(&json).unwrap(), a);
        assert_eq!(a.array_utilization(8), 0.01);
        assert_eq!(a.act_unit_ops(8), 24);
        assert_eq!(Activity::default().array_utilization(8), 0.0);
    }
}
