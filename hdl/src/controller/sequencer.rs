//! The MATMUL sequencer: issues a started MATMUL's rows into the array, one per cycle in the
//! background, and times each row's read-modify-write of the accumulators.
//!
//! ```text
//!              ┌──────────────────────────── Sequencer ────────────────────────────┐
//!  start ─────►│ busy, addr, dst, left, acc, bank                                  │
//!  start_* ───►│   │ issue (= busy): scratch read addr ──────────────────────────────┼──► issue, sp_raddr
//!              │   ├─► arr_valid_r, arr_sel_r (the read data enters the array) ───────┼──► arr_valid, arr_sel
//!              │   ├─► rmw delay line (valid, acc, dst; rmw_read_delay = L) ─┬─────────┼──► rmw_ren, rmw_raddr
//!              │   │                                          wb_* (+1) ─────┴─────────┼──► acc_we, acc_waddr,
//!              │   │                                                                   │    acc_accumulate
//!              │   └─► countdowns reloaded with array_drain = L + 1 on every issue:   │
//!              │        arr_cnt, bank0/1_cnt (+ registered bankN_cnt != 0) ───────────┼──► seq_idle, arr_idle,
//!              │                                                                       │    bank0/1_busy
//!              └───────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Banks (issue 13): `start_sp_touch*` / `start_acc_touch*` say which halves of the
//! scratchpad and the accumulators the MATMUL's rows touch. `sp_freeN` is low while it issues
//! rows and touches scratchpad bank N; `acc_quietN` is low while it issues and touches
//! accumulator bank N and until the last row headed there is written back (a countdown like
//! `arr_cnt`, reloaded only for the touched banks). The front end's bank rules read them.
//!
//! A MATMUL of `n` rows started (`start`) on cycle `e` issues row `i` (reads its scratchpad row)
//! on `e + 1 + i`; the row enters the array the next cycle, its old accumulator row is read
//! `L` cycles after issue and its sums written one cycle later (`spec::timing`). `start` must
//! only be raised when `seq_idle`. The delays come from [`spec::timing`]. The native model's
//! part of the same name is `sim::native::sequencer`.

use crate::primitives::DelayLine;
use rust_hdl::prelude::*;
use spec::timing;

/// The MATMUL sequencer (see the module docs).
#[derive(LogicBlock)]
pub struct Sequencer {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset (rows in flight are lost).
    pub rst: Signal<In, Bit>,
    /// Start a MATMUL (only while `seq_idle`).
    pub start: Signal<In, Bit>,
    /// Its first scratchpad row.
    pub start_addr: Signal<In, Bits<16>>,
    /// Its row count (0: nothing is issued).
    pub start_rows: Signal<In, Bits<16>>,
    /// Its first accumulator row.
    pub start_dst: Signal<In, Bits<16>>,
    /// Accumulate into (1) or overwrite (0) the accumulator rows.
    pub start_acc: Signal<In, Bit>,
    /// The weight bank its rows use.
    pub start_bank: Signal<In, Bit>,
    /// Its rows touch scratchpad bank 0 (the low half; `spec::banks_touched`).
    pub start_sp_touch0: Signal<In, Bit>,
    /// Its rows touch scratchpad bank 1 (the high half).
    pub start_sp_touch1: Signal<In, Bit>,
    /// Its rows touch accumulator bank 0.
    pub start_acc_touch0: Signal<In, Bit>,
    /// Its rows touch accumulator bank 1.
    pub start_acc_touch1: Signal<In, Bit>,

    /// A row is issued this cycle: the scratchpad is read at `sp_raddr`.
    pub issue: Signal<Out, Bit>,
    /// The scratchpad row issued this cycle.
    pub sp_raddr: Signal<Out, Bits<16>>,
    /// The scratchpad read data enters the array this cycle.
    pub arr_valid: Signal<Out, Bit>,
    /// Its weight bank.
    pub arr_sel: Signal<Out, Bit>,
    /// Read the old accumulator row `rmw_raddr` this cycle (read-modify-write).
    pub rmw_ren: Signal<Out, Bit>,
    /// The accumulator row to read.
    pub rmw_raddr: Signal<Out, Bits<16>>,
    /// Write the array's sums (+ the old row) into `acc_waddr` this cycle.
    pub acc_we: Signal<Out, Bit>,
    /// The accumulator row written.
    pub acc_waddr: Signal<Out, Bits<16>>,
    /// Add the old row (accumulate) rather than overwrite.
    pub acc_accumulate: Signal<Out, Bit>,
    /// No MATMUL is issuing rows.
    pub seq_idle: Signal<Out, Bit>,
    /// Nothing issuing and no row in flight: every accumulator write has landed.
    pub arr_idle: Signal<Out, Bit>,
    /// A row using bank 0 may still be in the array.
    pub bank0_busy: Signal<Out, Bit>,
    /// A row using bank 1 may still be in the array.
    pub bank1_busy: Signal<Out, Bit>,
    /// No MATMUL reads scratchpad bank 0: the front end may read and write it.
    pub sp_free0: Signal<Out, Bit>,
    /// The same for scratchpad bank 1.
    pub sp_free1: Signal<Out, Bit>,
    /// No MATMUL writes accumulator bank 0, now or later (none issuing into it, no row headed
    /// there in the array): the front end may read it.
    pub acc_quiet0: Signal<Out, Bit>,
    /// The same for accumulator bank 1.
    pub acc_quiet1: Signal<Out, Bit>,
    /// The argument word on the input stream (the range check's): `start | n << 16`, a
    /// WRITE_ACT's scratchpad rows when it is one.
    pub word: Signal<In, Bits<32>>,
    /// `word` is payload word 0, taken on this edge.
    pub take_a: Signal<In, Bit>,
    /// The running MATMUL reads none of the rows of the last payload word 0 taken (its whole
    /// range `[start_addr, + start_rows)` until its last row issues): WRITE_ACT may write them.
    pub rows_free: Signal<Out, Bit>,

    busy: DFF<Bit>,
    addr: DFF<Bits<16>>,
    dst: DFF<Bits<16>>,
    left: DFF<Bits<16>>,
    acc: DFF<Bit>,
    bank: DFF<Bit>,
    arr_valid_r: DFF<Bit>,
    arr_sel_r: DFF<Bit>,
    // valid, accumulate and dst of each issued row, delayed to the accumulator read
    rmw_valid: DelayLine<Bit>,
    rmw_acc: DelayLine<Bit>,
    rmw_dst: DelayLine<Bits<16>>,
    // ... and one more cycle to the write back
    wb_valid: DFF<Bit>,
    wb_acc: DFF<Bit>,
    wb_dst: DFF<Bits<16>>,
    // countdowns to "no row in flight": reloaded when a row is issued, else down to 0
    arr_cnt: DFF<Bits<16>>,
    bank0_cnt: DFF<Bits<16>>,
    bank1_cnt: DFF<Bits<16>>,
    // bankN_cnt != 0, registered alongside the counter: keeps a 16-bit compare off the
    // in_ready -> take path (iCE40 timing)
    bank0_busy_r: DFF<Bit>,
    bank1_busy_r: DFF<Bit>,
    // the banks the running MATMUL touches, and per accumulator bank the countdown to "no row
    // headed there in flight" (reloaded on each issue if the MATMUL touches that bank)
    sp_touch0: DFF<Bit>,
    sp_touch1: DFF<Bit>,
    acc_touch0: DFF<Bit>,
    acc_touch1: DFF<Bit>,
    acc0_cnt: DFF<Bits<16>>,
    acc1_cnt: DFF<Bits<16>>,
    // the MATMUL's scratchpad rows (set at start), and whether the rows of the last payload
    // word 0 meet them (registered as the word is taken: no 16-bit compare on the Exec path)
    m_src: DFF<Bits<16>>,
    m_n: DFF<Bits<16>>,
    w_meet: DFF<Bit>,
    w_lo: Signal<Local, Bits<16>>,
    w_n: Signal<Local, Bits<16>>,
    c_drain: Constant<Bits<16>>,
    c_zero16: Constant<Bits<16>>,
    c_one16: Constant<Bits<16>>,
}

impl Sequencer {
    /// The sequencer of a DIM x DIM array (its delays from [`spec::timing`]).
    ///
    /// # Panics
    /// If `dim` is not in `1..=256`.
    pub fn new(dim: usize) -> Self {
        assert!((1..=256).contains(&dim), "Sequencer DIM must be in 1..=256, got {dim}");
        let rmw_delay = timing::rmw_read_delay(dim);
        Sequencer {
            clock: Default::default(),
            rst: Default::default(),
            start: Default::default(),
            start_addr: Default::default(),
            start_rows: Default::default(),
            start_dst: Default::default(),
            start_acc: Default::default(),
            start_bank: Default::default(),
            start_sp_touch0: Default::default(),
            start_sp_touch1: Default::default(),
            start_acc_touch0: Default::default(),
            start_acc_touch1: Default::default(),
            issue: Default::default(),
            sp_raddr: Default::default(),
            arr_valid: Default::default(),
            arr_sel: Default::default(),
            rmw_ren: Default::default(),
            rmw_raddr: Default::default(),
            acc_we: Default::default(),
            acc_waddr: Default::default(),
            acc_accumulate: Default::default(),
            seq_idle: Default::default(),
            arr_idle: Default::default(),
            bank0_busy: Default::default(),
            bank1_busy: Default::default(),
            sp_free0: Default::default(),
            sp_free1: Default::default(),
            acc_quiet0: Default::default(),
            acc_quiet1: Default::default(),
            busy: Default::default(),
            addr: Default::default(),
            dst: Default::default(),
            left: Default::default(),
            acc: Default::default(),
            bank: Default::default(),
            arr_valid_r: Default::default(),
            arr_sel_r: Default::default(),
            rmw_valid: DelayLine::new(rmw_delay),
            rmw_acc: DelayLine::new(rmw_delay),
            rmw_dst: DelayLine::new(rmw_delay),
            wb_valid: Default::default(),
            wb_acc: Default::default(),
            wb_dst: Default::default(),
            arr_cnt: Default::default(),
            bank0_cnt: Default::default(),
            bank1_cnt: Default::default(),
            bank0_busy_r: Default::default(),
            bank1_busy_r: Default::default(),
            sp_touch0: Default::default(),
            sp_touch1: Default::default(),
            acc_touch0: Default::default(),
            acc_touch1: Default::default(),
            acc0_cnt: Default::default(),
            acc1_cnt: Default::default(),
            word: Default::default(),
            take_a: Default::default(),
            rows_free: Default::default(),
            m_src: Default::default(),
            m_n: Default::default(),
            w_meet: Default::default(),
            w_lo: Default::default(),
            w_n: Default::default(),
            c_drain: Constant::new((timing::array_drain(dim) as u64).into()),
            c_zero16: Constant::new(0u64.into()),
            c_one16: Constant::new(1u64.into()),
        }
    }
}

impl Logic for Sequencer {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            busy,
            addr,
            dst,
            left,
            acc,
            bank,
            arr_valid_r,
            arr_sel_r,
            wb_valid,
            wb_acc,
            wb_dst,
            arr_cnt,
            bank0_cnt,
            bank1_cnt,
            bank0_busy_r,
            bank1_busy_r,
            sp_touch0,
            sp_touch1,
            acc_touch0,
            acc_touch1,
            acc0_cnt,
            acc1_cnt,
            m_src,
            m_n,
            w_meet
        );
        self.rmw_valid.clock.next = self.clock.val();
        self.rmw_valid.rst.next = self.rst.val();
        self.rmw_acc.clock.next = self.clock.val();
        self.rmw_acc.rst.next = self.rst.val();
        self.rmw_dst.clock.next = self.clock.val();
        self.rmw_dst.rst.next = self.rst.val();

        self.seq_idle.next = !self.busy.q.val();
        self.arr_idle.next = !self.busy.q.val() && (self.arr_cnt.q.val() == self.c_zero16.val());
        self.issue.next = self.busy.q.val();
        self.sp_raddr.next = self.addr.q.val();
        self.bank0_busy.next = self.bank0_busy_r.q.val();
        self.bank1_busy.next = self.bank1_busy_r.q.val();
        self.sp_free0.next = !(self.busy.q.val() && self.sp_touch0.q.val());
        self.sp_free1.next = !(self.busy.q.val() && self.sp_touch1.q.val());
        self.acc_quiet0.next =
            !(self.busy.q.val() && self.acc_touch0.q.val()) && (self.acc0_cnt.q.val() == self.c_zero16.val());
        self.acc_quiet1.next =
            !(self.busy.q.val() && self.acc_touch1.q.val()) && (self.acc1_cnt.q.val() == self.c_zero16.val());
        self.rows_free.next = !(self.busy.q.val() && self.w_meet.q.val());
        // [a, a + n) and [b, b + m) share a row iff n, m > 0 and a − b < m (a ≥ b) or b − a < n
        // (a < b): 16-bit differences, no wrap (as the ACTIVATE engine's clash)
        self.w_lo.next = self.word.val().get_bits::<16>(0);
        self.w_n.next = self.word.val().get_bits::<16>(16);
        if self.take_a.val() {
            if self.w_lo.val() >= self.m_src.q.val() {
                self.w_meet.d.next = (self.w_n.val() != self.c_zero16.val())
                    && ((self.w_lo.val() - self.m_src.q.val()) < self.m_n.q.val());
            } else {
                self.w_meet.d.next = (self.m_n.q.val() != self.c_zero16.val())
                    && ((self.m_src.q.val() - self.w_lo.val()) < self.w_n.val());
            }
        }
        if self.acc0_cnt.q.val() != self.c_zero16.val() {
            self.acc0_cnt.d.next = self.acc0_cnt.q.val() - self.c_one16.val();
        }
        if self.acc1_cnt.q.val() != self.c_zero16.val() {
            self.acc1_cnt.d.next = self.acc1_cnt.q.val() - self.c_one16.val();
        }
        self.rmw_valid.din.next = self.busy.q.val();
        self.rmw_acc.din.next = self.acc.q.val();
        self.rmw_dst.din.next = self.dst.q.val();
        if self.arr_cnt.q.val() != self.c_zero16.val() {
            self.arr_cnt.d.next = self.arr_cnt.q.val() - self.c_one16.val();
        }
        if self.bank0_cnt.q.val() != self.c_zero16.val() {
            self.bank0_cnt.d.next = self.bank0_cnt.q.val() - self.c_one16.val();
        }
        if self.bank1_cnt.q.val() != self.c_zero16.val() {
            self.bank1_cnt.d.next = self.bank1_cnt.q.val() - self.c_one16.val();
        }
        // the counter is nonzero next cycle iff it is > 1 now or reloaded (the drain L + 1 >= 2)
        self.bank0_busy_r.d.next = self.bank0_cnt.q.val() > self.c_one16.val();
        self.bank1_busy_r.d.next = self.bank1_cnt.q.val() > self.c_one16.val();
        if self.busy.q.val() {
            self.addr.d.next = self.addr.q.val() + self.c_one16.val();
            self.dst.d.next = self.dst.q.val() + self.c_one16.val();
            self.left.d.next = self.left.q.val() - self.c_one16.val();
            if self.left.q.val() == self.c_one16.val() {
                self.busy.d.next = false;
            }
            self.arr_cnt.d.next = self.c_drain.val();
            if self.acc_touch0.q.val() {
                self.acc0_cnt.d.next = self.c_drain.val();
            }
            if self.acc_touch1.q.val() {
                self.acc1_cnt.d.next = self.c_drain.val();
            }
            if self.bank.q.val() {
                self.bank1_cnt.d.next = self.c_drain.val();
                self.bank1_busy_r.d.next = true;
            } else {
                self.bank0_cnt.d.next = self.c_drain.val();
                self.bank0_busy_r.d.next = true;
            }
        }
        if self.start.val() {
            self.bank.d.next = self.start_bank.val();
            self.addr.d.next = self.start_addr.val();
            self.left.d.next = self.start_rows.val();
            self.dst.d.next = self.start_dst.val();
            self.m_src.d.next = self.start_addr.val();
            self.m_n.d.next = self.start_rows.val();
            self.acc.d.next = self.start_acc.val();
            self.sp_touch0.d.next = self.start_sp_touch0.val();
            self.sp_touch1.d.next = self.start_sp_touch1.val();
            self.acc_touch0.d.next = self.start_acc_touch0.val();
            self.acc_touch1.d.next = self.start_acc_touch1.val();
            self.busy.d.next = self.start_rows.val() != self.c_zero16.val();
        }
        self.arr_valid_r.d.next = self.busy.q.val();
        self.arr_sel_r.d.next = self.bank.q.val();
        self.arr_valid.next = self.arr_valid_r.q.val();
        self.arr_sel.next = self.arr_sel_r.q.val();
        // read-modify-write of the accumulators, `rmw_read_delay` cycles after issue (read) and
        // one more (write back, with the array's sums of that row)
        self.wb_valid.d.next = self.rmw_valid.dout.val();
        self.wb_acc.d.next = self.rmw_acc.dout.val();
        self.wb_dst.d.next = self.rmw_dst.dout.val();
        self.acc_we.next = self.wb_valid.q.val();
        self.acc_accumulate.next = self.wb_acc.q.val();
        self.acc_waddr.next = self.wb_dst.q.val();
        self.rmw_ren.next = self.rmw_valid.dout.val();
        self.rmw_raddr.next = self.rmw_dst.dout.val();

        if self.rst.val() {
            self.busy.d.next = false;
            self.arr_valid_r.d.next = false;
            self.wb_valid.d.next = false;
            self.arr_cnt.d.next = self.c_zero16.val();
            self.bank0_cnt.d.next = self.c_zero16.val();
            self.bank1_cnt.d.next = self.c_zero16.val();
            self.bank0_busy_r.d.next = false;
            self.bank1_busy_r.d.next = false;
            self.acc0_cnt.d.next = self.c_zero16.val();
            self.acc1_cnt.d.next = self.c_zero16.val();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{replay, simulate, Port};

    /// Stimulus columns: rst, start, start_addr, start_rows, start_dst, start_acc, start_bank,
    /// start_sp_touch0/1, start_acc_touch0/1, word, take_a.
    fn inputs() -> Vec<Port> {
        vec![
            Port::new("rst", 1),
            Port::new("start", 1),
            Port::new("start_addr", 16),
            Port::new("start_rows", 16),
            Port::new("start_dst", 16),
            Port::new("start_acc", 1),
            Port::new("start_bank", 1),
            Port::new("start_sp_touch0", 1),
            Port::new("start_sp_touch1", 1),
            Port::new("start_acc_touch0", 1),
            Port::new("start_acc_touch1", 1),
            Port::new("word", 32),
            Port::new("take_a", 1),
        ]
    }

    const OUTPUTS: [(&str, usize); 18] = [
        ("issue", 1),
        ("sp_raddr", 16),
        ("arr_valid", 1),
        ("arr_sel", 1),
        ("rmw_ren", 1),
        ("rmw_raddr", 16),
        ("acc_we", 1),
        ("acc_waddr", 16),
        ("acc_accumulate", 1),
        ("seq_idle", 1),
        ("arr_idle", 1),
        ("bank0_busy", 1),
        ("bank1_busy", 1),
        ("sp_free0", 1),
        ("sp_free1", 1),
        ("acc_quiet0", 1),
        ("acc_quiet1", 1),
        ("rows_free", 1),
    ];

    /// A reference model by events: each issued row is scheduled for its accumulator read
    /// (issue + L) and write (+1); the idle flags from what is issuing and in flight.
    fn reference(dim: usize, stim: &[Vec<u128>]) -> Vec<Vec<u128>> {
        let l = timing::rmw_read_delay(dim);
        let drain = timing::array_drain(dim) as u64;
        let (mut busy, mut addr, mut dst, mut left, mut acc, mut bank) =
            (false, 0u16, 0u16, 0u16, false, false);
        // (issue cycle, dst, acc) of rows in flight; cycle numbers
        let mut flight: Vec<(usize, u16, bool, bool)> = Vec::new();
        let (mut arr_valid, mut arr_sel) = (false, false);
        let mut cnt = [0u64; 3]; // array, bank 0, bank 1
        let (mut sp_touch, mut acc_touch) = ([false; 2], [false; 2]);
        // issue cycle of the last row headed to each accumulator bank
        let mut acc_last: [Option<usize>; 2] = [None; 2];
        // the MATMUL's rows (kept through resets), and whether the last word 0's rows meet them
        let (mut m_src, mut m_n, mut meet) = (0u16, 0u16, false);
        let mut out = Vec::new();
        for (c, s) in stim.iter().enumerate() {
            let rmw = flight.iter().find(|r| r.0 + l == c).copied();
            let wb = flight.iter().find(|r| r.0 + l + 1 == c).copied();
            let bank_busy = |b: usize| cnt[1 + b] != 0;
            // quiet: nothing to issue into the bank and its last row written back (the cycle
            // after issue + L + 1 = issue + drain)
            let acc_quiet =
                |b: usize| !(busy && acc_touch[b]) && acc_last[b].is_none_or(|t| c > t + drain as usize);
            let row = vec![
                u128::from(busy),
                u128::from(addr),
                u128::from(arr_valid),
                u128::from(arr_sel),
                u128::from(rmw.is_some()),
                u128::from(rmw.map_or(0, |r| r.1)),
                u128::from(wb.is_some()),
                u128::from(wb.map_or(0, |r| r.1)),
                u128::from(wb.is_some_and(|r| r.2)),
                u128::from(!busy),
                u128::from(!busy && cnt[0] == 0),
                u128::from(bank_busy(0)),
                u128::from(bank_busy(1)),
                u128::from(!(busy && sp_touch[0])),
                u128::from(!(busy && sp_touch[1])),
                u128::from(acc_quiet(0)),
                u128::from(acc_quiet(1)),
                u128::from(!(busy && meet)),
            ];
            out.push(row);
            if s[12] != 0 {
                let (lo, n) = (s[11] as u32 & 0xFFFF, (s[11] >> 16) as u32 & 0xFFFF);
                meet = spec::rows_meet(lo, n, m_src.into(), m_n.into());
            }
            flight.retain(|r| r.0 + l + 1 > c);
            (arr_valid, arr_sel) = (busy, bank);
            for n in &mut cnt {
                *n = n.saturating_sub(1);
            }
            if busy {
                flight.push((c, dst, acc, bank));
                for b in 0..2 {
                    if acc_touch[b] {
                        acc_last[b] = Some(c);
                    }
                }
                cnt[0] = drain;
                cnt[1 + usize::from(bank)] = drain;
                addr = addr.wrapping_add(1);
                dst = dst.wrapping_add(1);
                left = left.wrapping_sub(1);
                busy = left != 0;
            }
            if s[1] != 0 {
                (addr, left, dst, acc, bank) = (s[2] as u16, s[3] as u16, s[4] as u16, s[5] != 0, s[6] != 0);
                (sp_touch, acc_touch) = ([s[7] != 0, s[8] != 0], [s[9] != 0, s[10] != 0]);
                (m_src, m_n) = (addr, left);
                busy = left != 0;
            }
            if s[0] != 0 {
                busy = false;
                arr_valid = false;
                cnt = [0; 3];
                acc_last = [None; 2];
                flight.clear();
            }
        }
        out
    }

    /// MATMULs started only while the sequencer is idle (as the front end does), short ones,
    /// back to back or with gaps, and a reset now and then.
    fn stimulus(dim: usize, cycles: usize, seed: u64) -> Vec<Vec<u128>> {
        let mut rng = spec::rng::SplitMix64::new(seed);
        let mut busy_until = 0usize;
        (0..cycles)
            .map(|c| {
                let rst = c == 0 || rng.below(150) == 0;
                let start = !rst && c >= busy_until && rng.chance(0.3);
                let rows = rng.below(2 * dim as u64 + 3);
                if start {
                    busy_until = c + 1 + rows as usize;
                }
                if rst {
                    busy_until = c + 1;
                }
                // addresses mostly near each other, so that word 0's rows meet the MATMUL's
                let near = |rng: &mut spec::rng::SplitMix64, r: u64| {
                    if rng.chance(0.8) {
                        rng.below(r)
                    } else {
                        rng.below(1 << 16)
                    }
                };
                let addr = near(&mut rng, 48);
                let word = near(&mut rng, 48) | near(&mut rng, 24) << 16;
                vec![
                    u128::from(rst),
                    u128::from(start),
                    u128::from(addr),
                    u128::from(rows),
                    u128::from(rng.below(1 << 16)),
                    u128::from(rng.chance(0.5)),
                    u128::from(rng.chance(0.5)),
                    u128::from(rng.chance(0.5)),
                    u128::from(rng.chance(0.5)),
                    u128::from(rng.chance(0.5)),
                    u128::from(rng.chance(0.5)),
                    u128::from(word),
                    u128::from(rng.chance(0.3)),
                ]
            })
            .collect()
    }

    #[test]
    fn sequencer_matches_reference_in_rust_and_verilog() {
        for dim in [1usize, 2, 3, 5] {
            let stim = stimulus(dim, 500, 0x5e9 + dim as u64);
            let want = reference(dim, &stim);
            let mut uut = Sequencer::new(dim);
            let got = simulate(
                &mut uut,
                |u| &mut u.clock,
                &stim,
                |u, s| {
                    u.rst.next = s[0] != 0;
                    u.start.next = s[1] != 0;
                    u.start_addr.next = (s[2] as u64).into();
                    u.start_rows.next = (s[3] as u64).into();
                    u.start_dst.next = (s[4] as u64).into();
                    u.start_acc.next = s[5] != 0;
                    u.start_bank.next = s[6] != 0;
                    u.start_sp_touch0.next = s[7] != 0;
                    u.start_sp_touch1.next = s[8] != 0;
                    u.start_acc_touch0.next = s[9] != 0;
                    u.start_acc_touch1.next = s[10] != 0;
                    u.word.next = (s[11] as u64).into();
                    u.take_a.next = s[12] != 0;
                },
                |u| {
                    let b = |x: bool| u128::from(x);
                    vec![
                        b(u.issue.val()),
                        u.sp_raddr.val().to_u64() as u128,
                        b(u.arr_valid.val()),
                        b(u.arr_sel.val()),
                        b(u.rmw_ren.val()),
                        u.rmw_raddr.val().to_u64() as u128,
                        b(u.acc_we.val()),
                        u.acc_waddr.val().to_u64() as u128,
                        b(u.acc_accumulate.val()),
                        b(u.seq_idle.val()),
                        b(u.arr_idle.val()),
                        b(u.bank0_busy.val()),
                        b(u.bank1_busy.val()),
                        b(u.sp_free0.val()),
                        b(u.sp_free1.val()),
                        b(u.acc_quiet0.val()),
                        b(u.acc_quiet1.val()),
                        b(u.rows_free.val()),
                    ]
                },
            )
            .unwrap();
            // the reference leaves the addresses of idle cycles open: compare them only when valid
            let mask = |t: Vec<Vec<u128>>| -> Vec<Vec<u128>> {
                t.into_iter()
                    .map(|mut r| {
                        if r[0] == 0 {
                            r[1] = 0;
                        }
                        if r[4] == 0 {
                            r[5] = 0;
                        }
                        if r[6] == 0 {
                            r[7] = 0;
                            r[8] = 0;
                        }
                        if r[2] == 0 {
                            r[3] = 0;
                        }
                        r
                    })
                    .collect()
            };
            let want = mask(want);
            assert_eq!(mask(got), want, "rust-hdl, DIM {dim}");
            let outputs: Vec<Port> = OUTPUTS.iter().map(|(n, w)| Port::new(*n, *w)).collect();
            let rtl = replay(&generate_verilog(&uut), "top", "clock", &inputs(), &outputs, &stim).unwrap();
            assert_eq!(mask(rtl), want, "Verilog, DIM {dim}");
        }
    }

    #[test]
    fn sequencer_is_synthesizable() {
        let mut uut = Sequencer::new(3);
        uut.connect_all();
        yosys_validate("sequencer", &generate_verilog(&uut)).unwrap();
    }
}
