//! The MATMUL sequencer's registers (`hdl::controller::Sequencer`): the row issued each cycle
//! and the countdowns to "no row in flight". The rows' sums and their landing are the
//! datapath's (`mod.rs` computes a row's sums at issue, the `rows` pipe lands them).

/// The sequencer's registers (names as in `hdl::controller::sequencer`); zero at power-on.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sequencer {
    pub busy: bool,
    pub addr: u16,
    pub dst: u16,
    pub left: u16,
    pub acc: bool,
    pub bank: bool,
    /// Countdown from `array_drain` after each issue: 0 when no row is in the array.
    pub arr_cnt: u16,
    /// The same per weight bank (the RTL also registers `bank_cnt != 0` as `bankN_busy`).
    pub bank_cnt: [u16; 2],
    /// The scratchpad banks the running MATMUL's rows touch (set at start).
    pub sp_touch: [bool; 2],
    /// The accumulator banks its rows touch.
    pub acc_touch: [bool; 2],
    /// Countdown from `array_drain` after each issue into an accumulator bank the MATMUL
    /// touches: 0 when no row headed there is in the array.
    pub acc_cnt: [u16; 2],
    /// The running MATMUL's scratchpad rows, `[src, src + rows)` (set at start).
    pub src: u16,
    /// See `src`.
    pub rows: u16,
}

impl Sequencer {
    /// A row is issued (the scratchpad read at `addr`) this cycle.
    #[inline]
    pub fn issue(&self) -> bool {
        self.busy
    }

    /// No MATMUL is issuing rows.
    #[inline]
    pub fn seq_idle(&self) -> bool {
        !self.busy
    }

    /// Nothing issuing and no row in flight.
    #[inline]
    pub fn arr_idle(&self) -> bool {
        !self.busy && self.arr_cnt == 0
    }

    /// A row of bank `bank` may still be in the array.
    #[inline]
    pub fn bank_busy(&self, bank: bool) -> bool {
        self.bank_cnt[usize::from(bank)] != 0
    }

    /// No MATMUL reads scratchpad bank `b` (the front end may use its read port and write it).
    #[inline]
    pub fn sp_free(&self, b: usize) -> bool {
        !(self.busy && self.sp_touch[b])
    }

    /// No MATMUL writes accumulator bank `b` now or later: none issuing into it and no row
    /// headed there in the array (the front end may read it).
    #[inline]
    pub fn acc_quiet(&self, b: usize) -> bool {
        !(self.busy && self.acc_touch[b]) && self.acc_cnt[b] == 0
    }

    /// Every scratchpad bank marked in `t` is free.
    #[inline]
    pub fn sp_ok(&self, t: [bool; 2]) -> bool {
        (!t[0] || self.sp_free(0)) && (!t[1] || self.sp_free(1))
    }

    /// No MATMUL is issuing rows from scratchpad rows `[lo, lo + n)` (its whole range, until
    /// its last row issues): WRITE_ACT may write them.
    #[inline]
    pub fn rows_free(&self, lo: u16, n: u16) -> bool {
        !(self.busy && spec::rows_meet(lo.into(), n.into(), self.src.into(), self.rows.into()))
    }

    /// Every accumulator bank marked in `t` is quiet.
    #[inline]
    pub fn acc_ok(&self, t: [bool; 2]) -> bool {
        (!t[0] || self.acc_quiet(0)) && (!t[1] || self.acc_quiet(1))
    }

    /// The registers after this cycle's edge, without a start: one row issued if busy, the
    /// countdowns down by one or reloaded with `drain`.
    #[inline]
    pub fn next(&self, drain: u16) -> Sequencer {
        let q = self;
        let mut d = *q;
        d.arr_cnt = q.arr_cnt.saturating_sub(1);
        d.bank_cnt = [q.bank_cnt[0].saturating_sub(1), q.bank_cnt[1].saturating_sub(1)];
        d.acc_cnt = [q.acc_cnt[0].saturating_sub(1), q.acc_cnt[1].saturating_sub(1)];
        if q.busy {
            d.addr = q.addr.wrapping_add(1);
            d.dst = q.dst.wrapping_add(1);
            d.left = q.left.wrapping_sub(1);
            if q.left == 1 {
                d.busy = false;
            }
            d.arr_cnt = drain;
            d.bank_cnt[usize::from(q.bank)] = drain;
            for b in 0..2 {
                if q.acc_touch[b] {
                    d.acc_cnt[b] = drain;
                }
            }
        }
        d
    }

    /// A MATMUL of `rows` rows from scratchpad row `addr` into accumulator row `dst` starts on
    /// this edge (only while `seq_idle`); `touch` = (scratchpad, accumulator) banks its rows
    /// touch ([`spec::banks_touched`]).
    #[inline]
    pub fn start(&mut self, addr: u16, rows: u16, dst: u16, acc: bool, bank: bool, touch: [[bool; 2]; 2]) {
        (self.addr, self.left, self.dst, self.acc, self.bank) = (addr, rows, dst, acc, bank);
        (self.src, self.rows) = (addr, rows);
        (self.sp_touch, self.acc_touch) = (touch[0], touch[1]);
        self.busy = rows != 0;
    }

    /// The registers after `k` cycles of which the first `s` issue (no start meanwhile): the
    /// fast-forward of `bulk.rs`.
    pub fn advance(&self, k: u64, s: u64, drain: u64) -> Sequencer {
        let q = self;
        let mut d = *q;
        let count_after = |old: u16, reloaded: bool| -> u16 {
            // a reload to `drain` on each issue cycle, else down by one per cycle to 0
            if reloaded {
                (drain.saturating_sub(k - s)) as u16
            } else {
                (u64::from(old).saturating_sub(k)) as u16
            }
        };
        let bank = usize::from(q.bank);
        d.arr_cnt = count_after(q.arr_cnt, s > 0);
        d.bank_cnt[bank] = count_after(q.bank_cnt[bank], s > 0);
        d.bank_cnt[1 - bank] = count_after(q.bank_cnt[1 - bank], false);
        for b in 0..2 {
            d.acc_cnt[b] = count_after(q.acc_cnt[b], s > 0 && q.acc_touch[b]);
        }
        if s > 0 {
            let s16 = s as u16;
            d.addr = q.addr.wrapping_add(s16);
            d.dst = q.dst.wrapping_add(s16);
            d.left = q.left.wrapping_sub(s16);
            d.busy = d.left != 0;
        }
        d
    }

    /// The reset values.
    pub fn reset(&mut self) {
        self.busy = false;
        self.arr_cnt = 0;
        self.bank_cnt = [0, 0];
        self.acc_cnt = [0, 0];
    }
}
