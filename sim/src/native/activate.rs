//! ACTIVATE's engine (`hdl::controller::activate`): it reads the command's accumulator rows one
//! per cycle beside the front end. The rows are requantised at their read and land through the
//! `acts` pipe `ACT_WRITEBACK_DELAY` cycles later (`mod.rs`, `bulk.rs`). The registers are the
//! RTL's, and so are the rules by which commands wait for it (`idle`, `sp_clash`, `acc_clash`:
//! a MATMUL waits while its accumulator banks meet the ones the engine reads, since a bank has
//! one read port).

use spec::timing::ACT_DRAIN;

/// The engine's registers (names as in `hdl::controller::activate`); zero at power-on.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Activate {
    /// The next accumulator row to read, the rows left, the next scratchpad row to write.
    pub src: u16,
    pub left: u16,
    pub dst: u16,
    /// Countdown to the last row's write.
    pub cnt: u16,
    /// The whole command, for the clash checks: its scratchpad rows, its accumulator banks.
    pub r_dst: u16,
    pub r_n: u16,
    pub r_acc: [bool; 2],
    /// The command being parsed: its word 0's scratchpad rows meet `[r_dst, + r_n)`
    /// (registered as the word is taken).
    pub sp_meet: bool,
}

/// Payload word 0 taken this cycle (`start | n << 16`; `n` is DIM for LOAD_TILE: `tile_n`),
/// for the scratchpad clash check.
#[derive(Debug, Clone, Copy)]
pub(super) struct Taken {
    pub word: u32,
    pub tile_n: Option<u16>,
}

/// An ACTIVATE as the front end starts it: its rows, count, destination, and the accumulator
/// banks its rows touch ([`spec::banks_touched`]).
#[derive(Debug, Clone, Copy)]
pub(super) struct Load {
    pub src: u16,
    pub n: u16,
    pub dst: u16,
    pub acc: [bool; 2],
}

impl Activate {
    /// A row is read this cycle.
    #[inline]
    pub fn issue(&self) -> bool {
        self.left != 0
    }

    /// No row left to read and none in flight.
    #[inline]
    pub fn idle(&self) -> bool {
        self.left == 0 && self.cnt == 0
    }

    /// Busy, and the parsed command's scratchpad rows meet the ones it writes.
    #[inline]
    pub fn sp_clash(&self) -> bool {
        !self.idle() && self.sp_meet
    }

    /// Busy, and accumulator banks `acc` (a MATMUL's destination) meet the ones it reads.
    #[inline]
    pub fn acc_clash(&self, acc: [bool; 2]) -> bool {
        !self.idle() && ((acc[0] && self.r_acc[0]) || (acc[1] && self.r_acc[1]))
    }

    /// Cycles from now until it is idle (0 if it is).
    #[inline]
    pub fn busy_for(&self) -> u64 {
        if self.left > 0 {
            u64::from(self.left) + ACT_DRAIN as u64
        } else {
            u64::from(self.cnt)
        }
    }

    /// The registers after this cycle's edge: `load` an ACTIVATE, payload word 0 `taken`.
    #[inline]
    pub fn next(&self, load: Option<Load>, taken: Option<Taken>) -> Activate {
        let mut d = *self;
        d.cnt = self.cnt.saturating_sub(1);
        if self.issue() {
            d.src = self.src.wrapping_add(1);
            d.left = self.left - 1;
            d.dst = self.dst.wrapping_add(1);
            d.cnt = ACT_DRAIN as u16;
        }
        if let Some(l) = load {
            (d.src, d.left, d.dst) = (l.src, l.n, l.dst);
            (d.r_n, d.r_dst, d.r_acc) = (l.n, l.dst, l.acc);
        }
        if let Some(Taken { word, tile_n }) = taken {
            let n = tile_n.map_or(word >> 16, u32::from);
            d.sp_meet = spec::rows_meet(word & 0xFFFF, n, u32::from(self.r_dst), u32::from(self.r_n));
        }
        d
    }

    /// `k` cycles of the engine alone (no load, no word taken): `s` rows read, then the
    /// countdown.
    pub fn advance(&self, k: u64) -> Activate {
        let s = k.min(u64::from(self.left));
        let mut d = *self;
        if s > 0 {
            let s16 = s as u16;
            d.src = self.src.wrapping_add(s16);
            d.dst = self.dst.wrapping_add(s16);
            d.left = self.left - s16;
            d.cnt =
                if d.left > 0 { ACT_DRAIN as u16 } else { (ACT_DRAIN as u64).saturating_sub(k - s) as u16 };
        } else {
            d.cnt = u64::from(self.cnt).saturating_sub(k) as u16;
        }
        d
    }

    /// Cycles of the next `k` with a row read or in flight.
    pub fn busy_cycles(&self, k: u64) -> u64 {
        k.min(self.busy_for())
    }

    /// The reset values (rows not yet read, and rows in flight, are lost).
    pub fn reset(&mut self) {
        self.left = 0;
        self.cnt = 0;
    }
}
