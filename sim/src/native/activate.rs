//! ACTIVATE's engine (`hdl::controller::activate`): it reads the command's accumulator rows one
//! per cycle beside the front end. The rows are requantised at their read and land through the
//! `acts` pipe `ACT_WRITEBACK_DELAY` cycles later (`mod.rs`, `bulk.rs`). The registers are the
//! RTL's, and so are the rules by which commands wait for it (`idle`, `sp_clash`, `acc_clash`).

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
    /// The whole command (its first rows and count), for the clash checks.
    pub r_src: u16,
    pub r_dst: u16,
    pub r_n: u16,
    /// The command being parsed: its word 0's scratchpad rows meet `[r_dst, + r_n)`, its word
    /// 1's accumulator rows meet `[r_src, + r_n)` (registered as the words are taken).
    pub sp_meet: bool,
    pub acc_meet: bool,
}

/// An argument word taken this cycle, for the clash checks.
#[derive(Debug, Clone, Copy)]
pub(super) enum Taken {
    /// Payload word 0 (`start | n << 16`; `n` is DIM for LOAD_TILE: `tile_n`).
    A { word: u32, tile_n: Option<u16> },
    /// Payload word 1 (a MATMUL's first accumulator row), its count word 0's `n`.
    B { word: u32, a_n: u16 },
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

    /// Busy, and the parsed command's accumulator rows meet the ones it reads.
    #[inline]
    pub fn acc_clash(&self) -> bool {
        !self.idle() && self.acc_meet
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

    /// The registers after this cycle's edge: `load` an ACTIVATE `(src, n, dst)`, an argument
    /// word `taken`.
    #[inline]
    pub fn next(&self, load: Option<(u16, u16, u16)>, taken: Option<Taken>) -> Activate {
        let mut d = *self;
        d.cnt = self.cnt.saturating_sub(1);
        if self.issue() {
            d.src = self.src.wrapping_add(1);
            d.left = self.left - 1;
            d.dst = self.dst.wrapping_add(1);
            d.cnt = ACT_DRAIN as u16;
        }
        if let Some((src, n, dst)) = load {
            (d.src, d.left, d.dst) = (src, n, dst);
            (d.r_src, d.r_n, d.r_dst) = (src, n, dst);
        }
        let (r_dst, r_src, r_n) = (u32::from(self.r_dst), u32::from(self.r_src), u32::from(self.r_n));
        match taken {
            Some(Taken::A { word, tile_n }) => {
                let n = tile_n.map_or(word >> 16, u32::from);
                d.sp_meet = spec::rows_meet(word & 0xFFFF, n, r_dst, r_n);
            }
            Some(Taken::B { word, a_n }) => {
                d.acc_meet = spec::rows_meet(word & 0xFFFF, u32::from(a_n), r_src, r_n);
            }
            None => {}
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
