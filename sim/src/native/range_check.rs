//! The range check (`hdl::controller::RangeCheck`): whether the row ranges of the command in
//! Exec fit their memories, and which banks they touch. The RTL computes both from each argument
//! word as it is taken and registers them; the model computes the same from its argument
//! registers at Exec (the same values: nothing changes them in between).

use spec::isa::opcode;
use spec::{banks_touched, Config};

/// The ranges `op` uses fit their memories (17-bit ends, no wrap): range A is payload word 0
/// (first row | row count << 16), range B word 1's first row with A's count, LOAD_TILE's range
/// DIM rows from word 0's first row.
pub(super) fn range_ok(cfg: &Config, op: u8, a0: u32, a1: u32) -> bool {
    let n = a0 >> 16;
    let end_a = (a0 & 0xFFFF) + n;
    let end_b = (a1 & 0xFFFF) + n;
    let (s, a) = (cfg.scratch_rows() as u32, cfg.acc_rows() as u32);
    match op {
        opcode::WRITE_ACT | opcode::READ_ACT => end_a <= s,
        opcode::READ_ACC => end_a <= a,
        opcode::MATMUL => end_a <= s && end_b <= a,
        opcode::ACTIVATE => end_a <= a && end_b <= s,
        opcode::LOAD_TILE => (a0 & 0xFFFF) + cfg.dim() as u32 <= s,
        _ => true,
    }
}

/// The banks ([`spec::banks_touched`]) of range A (LOAD_TILE's DIM rows for LOAD_TILE) in the
/// scratchpad and in the accumulators, and of range B likewise: `(sp_a, acc_a, sp_b, acc_b)`.
/// Which of them a command waits for is the Exec state's business.
pub(super) fn touches(
    cfg: &Config,
    op: u8,
    a0: u32,
    a1: u32,
) -> ([bool; 2], [bool; 2], [bool; 2], [bool; 2]) {
    let n = if op == opcode::LOAD_TILE { cfg.dim() as u32 } else { a0 >> 16 };
    let (a, b) = (a0 & 0xFFFF, a1 & 0xFFFF);
    let (sb, ab) = (cfg.scratch_bank_rows() as u32, cfg.acc_bank_rows() as u32);
    (banks_touched(a, n, sb), banks_touched(a, n, ab), banks_touched(b, n, sb), banks_touched(b, n, ab))
}
