//! The range check (`hdl::controller::RangeCheck`): whether the row ranges of the command in
//! Exec fit their memories, and which banks they touch. The RTL computes both from each argument
//! word as it is taken and registers them; the model computes the same from its argument
//! registers at Exec (the same values: nothing changes them in between).

use spec::isa::opcode;
use spec::{banks_touched, Config};

/// The ranges `op` uses fit their memories ([`spec::isa::ranges_fit`]): range A is payload
/// word 0 (first row | row count << 16), range B word 1's first row with A's count.
pub(super) fn range_ok(cfg: &Config, op: u8, a0: u32, a1: u32) -> bool {
    let field = |w: u32, at: u32| ((w >> at) & 0xFFFF) as usize;
    spec::isa::ranges_fit(op, field(a0, 0), field(a0, 16), field(a1, 0), cfg)
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
