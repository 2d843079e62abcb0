//! Timing constants of the implementation: latencies and pipeline depths of the array, the
//! activation units, the memories and the controller's row paths, in one place.
//!
//! The RTL (`hdl`) builds its delay lines and countdowns from these, the native cycle model
//! (`sim::native`) schedules its landings with them, and docs/architecture.md's cycle table is
//! written in their names (a test below holds the table's figures to them). They are not part
//! of the contract (docs/design.md): a host sees them only as cycle counts.
//!
//! ```text
//!  MATMUL row:   issue t ─► scratch read ─(MEM_READ_LATENCY)─► array ─(L)─► acc read t+L
//!                                                                          acc write t+L+1
//!                countdown per bank and for the array: array_drain = L + 1 from the issue
//!  ACTIVATE row: acc read c ─(MEM_READ_LATENCY)─► activation units ─(LA)─► scratch write c+1+LA
//!                countdown to "done": ACT_DRAIN = LA + 1 from the last read
//! ```

/// Cycles of a memory read: data of a read issued on cycle `t` is there on `t + 1`
/// (`hdl::memory`'s registered read ports).
pub const MEM_READ_LATENCY: usize = 1;

/// Pipeline stages of one activation unit (`hdl::activation::ActivationUnit`): a vector that
/// enters on cycle `k` leaves on `k + ACT_LATENCY` ("LA" in docs/architecture.md).
pub const ACT_LATENCY: usize = 6;

/// Cycles from a row entering the systolic array to its DIM sums leaving it
/// (`hdl::array::SystolicArray`): `2·DIM − 1` ("L" in docs/architecture.md). Element `k` of the
/// row reaches column `n` at `t + k + n` (skew), the bottom-right PE's register shows the last
/// sum one cycle after `t + 2·(DIM − 1)`, and the deskew brings every column to that cycle.
///
/// # Panics
/// If `dim` is 0.
pub const fn array_latency(dim: usize) -> usize {
    assert!(dim > 0, "array_latency of DIM 0");
    2 * dim - 1
}

/// Cycles from a MATMUL row's issue (its scratchpad read) to the read of its old accumulator
/// row: the memory read, then the array (the controller's read-modify-write delay line).
pub const fn rmw_read_delay(dim: usize) -> usize {
    array_latency(dim)
}

/// The countdown reloaded whenever a MATMUL row issues: while it is non-zero a row of that bank
/// (or any row, for the array as a whole) may still be in flight. `L + 1`: the row's memory
/// read, then `L` cycles in the array, its accumulator write is on the last.
pub const fn array_drain(dim: usize) -> usize {
    array_latency(dim) + MEM_READ_LATENCY
}

/// Pipeline depth from a MATMUL row's issue to the end of its accumulator write: `2·DIM + 1`
/// (issue, read, `L` cycles in the array, the write cycle).
pub const fn matmul_depth(dim: usize) -> usize {
    array_drain(dim) + 1
}

/// Cycles from an ACTIVATE row's accumulator read to its scratchpad write: the memory read,
/// then the activation units (`1 + LA`, the controller's write-back delay line).
pub const ACT_WRITEBACK_DELAY: usize = MEM_READ_LATENCY + ACT_LATENCY;

/// The countdown ACTIVATE reloads on each issued row; the command completes when it reaches 0
/// (`LA + 1`).
pub const ACT_DRAIN: usize = ACT_LATENCY + 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_figures_of_docs_architecture() {
        assert_eq!(array_latency(1), 1);
        assert_eq!(array_latency(8), 15);
        for d in 1..=256 {
            assert_eq!(matmul_depth(d), 2 * d + 1);
            assert_eq!(array_drain(d), array_latency(d) + 1);
        }
        assert_eq!(ACT_WRITEBACK_DELAY, 1 + ACT_LATENCY);
    }

    /// docs/architecture.md's cycle table is written with L, LA and the MATMUL depth: its
    /// definitions there must be these constants.
    #[test]
    fn docs_architecture_states_these_constants() {
        let doc = include_str!("../../docs/architecture.md");
        for want in [
            format!("L = 2·DIM − 1, LA = {ACT_LATENCY}"),
            format!("**LA = {ACT_LATENCY}** pipeline stages"),
            "**L = 2·DIM − 1**".to_string(),
            "**pipeline depth from issue\nto accumulator write = 2·DIM + 1 cycles**".to_string(),
        ] {
            assert!(doc.contains(&want), "docs/architecture.md does not say {want:?}");
        }
    }
}
