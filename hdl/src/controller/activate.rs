//! ACTIVATE's engine: it reads the command's accumulator rows one per cycle on its own, beside
//! the front end (which returns to its Header state once it has started the engine), and writes
//! each activated row to the scratchpad `ACT_WRITEBACK_DELAY` cycles after its read.
//!
//! ```text
//!              ┌──────────────────────────────── Activate ─────────────────────────────────┐
//!  load ──────►│ src, left, dst := load_src, load_n, load_dst; the ranges kept for clashes │
//!  load_src ──►│                                                                           │
//!  load_n ────►│ left ≠ 0: an acc row is read now (ren, raddr = src), src += 1, left −= 1, │──► ren, raddr
//!  load_dst ──►│   dst += 1, cnt := ACT_DRAIN; act_valid next cycle (into the units)       │──► act_valid
//!              │ (valid, dst) delay line of ACT_WRITEBACK_DELAY = 1 + LA ──────────────────┼──► wb_valid, wb_dst
//!              │ idle: no row left to read and cnt = 0 (the last write has landed) ────────┼──► idle
//!  q_sp_* ────►│ sp_clash: busy and [q_sp_lo, +q_sp_n) meets the scratchpad rows written ──┼──► sp_clash
//!  b_acc_lo/hi►│ acc_clash: busy and a MATMUL's accumulator banks meet the banks it reads ─┼──► acc_clash
//!              └───────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! While it is busy, the front end holds back every command that would see it (the rules of
//! docs/architecture.md): those that share its ports or registers (ACTIVATE, READ_ACC, WRITE_ACT,
//! LOAD_BIAS, LOAD_QUANT, SET_QUANT, SYNC, COUNTERS) until it is idle, and those that read the
//! scratchpad rows it writes (READ_ACT, LOAD_TILE, MATMUL) while their ranges meet (`sp_clash`:
//! the command's whole range against the engine's whole one, 17-bit ends, no wrap), and a
//! MATMUL while its accumulator banks meet the banks the engine reads (`acc_clash`): a bank
//! has one read port, which the memory gives to port A (the MATMUL's read-modify-write) over
//! port B (the engine) on an edge both read it, so the two never share a bank — the rule the
//! front end's READ_ACC already follows. The delays come from [`spec::timing`]. The native
//! model's part of the same name is `sim::native::activate`.

use crate::primitives::DelayLine;
use rust_hdl::prelude::*;
use spec::timing;

/// ACTIVATE's engine (see the module docs).
#[derive(LogicBlock)]
pub struct Activate {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset (rows not yet read, and rows in flight, are lost).
    pub rst: Signal<In, Bit>,
    /// Start an ACTIVATE (only while idle): its rows, count and destination.
    pub load: Signal<In, Bit>,
    /// The first accumulator row to read.
    pub load_src: Signal<In, Bits<16>>,
    /// The number of rows.
    pub load_n: Signal<In, Bits<16>>,
    /// The first scratchpad row to write.
    pub load_dst: Signal<In, Bits<16>>,
    /// The rows to read touch accumulator bank 0 / 1 (the range check's, at `load`).
    pub load_acc_lo: Signal<In, Bit>,
    /// See `load_acc_lo`.
    pub load_acc_hi: Signal<In, Bit>,
    /// The argument word on the input stream (the range check's).
    pub word: Signal<In, Bits<32>>,
    /// `word` is payload word 0 (`start | n << 16`: READ_ACT's, LOAD_TILE's or a MATMUL's
    /// scratchpad rows), taken on this edge.
    pub take_a: Signal<In, Bit>,
    /// The parsed command's range B touches accumulator bank 0 / 1 (a MATMUL's destination
    /// rows; the range check's, registered).
    pub b_acc_lo: Signal<In, Bit>,
    /// See `b_acc_lo`.
    pub b_acc_hi: Signal<In, Bit>,
    /// The command is LOAD_TILE: word 0's range is DIM rows.
    pub tile: Signal<In, Bit>,
    /// Read accumulator row `raddr` (port B) this cycle.
    pub ren: Signal<Out, Bit>,
    /// The accumulator row read this cycle.
    pub raddr: Signal<Out, Bits<16>>,
    /// The accumulator read data of this cycle goes into the activation units.
    pub act_valid: Signal<Out, Bit>,
    /// The activation units' outputs are written to the scratchpad this cycle ...
    pub wb_valid: Signal<Out, Bit>,
    /// ... into this row.
    pub wb_dst: Signal<Out, Bits<16>>,
    /// No row left to read and none in flight.
    pub idle: Signal<Out, Bit>,
    /// Not idle, and word 0's scratchpad rows meet the ones the engine writes.
    pub sp_clash: Signal<Out, Bit>,
    /// Not idle, and range B's accumulator banks meet the ones the engine reads.
    pub acc_clash: Signal<Out, Bit>,

    src: DFF<Bits<16>>,
    left: DFF<Bits<16>>,
    dst: DFF<Bits<16>>,
    valid_r: DFF<Bit>,
    // the whole command, for the clash checks: its scratchpad rows, its accumulator banks
    r_dst: DFF<Bits<16>>,
    r_acc_lo: DFF<Bit>,
    r_acc_hi: DFF<Bit>,
    r_n: DFF<Bits<16>>,
    // valid and dst of each activated row, delayed to the scratchpad write
    wb_valid_d: DelayLine<Bit>,
    wb_dst_d: DelayLine<Bits<16>>,
    cnt: DFF<Bits<16>>,
    // whether word 0's range meets the engine's scratchpad rows (registered as taken: the
    // engine's ranges cannot change while a command is parsed, only an ACTIVATE's Exec loads it)
    sp_meet: DFF<Bit>,
    w_lo: Signal<Local, Bits<16>>,
    w_n: Signal<Local, Bits<16>>,
    c_drain: Constant<Bits<16>>,
    c_dim: Constant<Bits<16>>,
    c_zero16: Constant<Bits<16>>,
    c_one16: Constant<Bits<16>>,
}

impl Activate {
    /// The engine of a core of `dim` (LOAD_TILE's range is DIM rows).
    pub fn new(dim: usize) -> Self {
        Activate {
            clock: Default::default(),
            rst: Default::default(),
            load: Default::default(),
            load_src: Default::default(),
            load_n: Default::default(),
            load_dst: Default::default(),
            load_acc_lo: Default::default(),
            load_acc_hi: Default::default(),
            word: Default::default(),
            take_a: Default::default(),
            b_acc_lo: Default::default(),
            b_acc_hi: Default::default(),
            tile: Default::default(),
            ren: Default::default(),
            raddr: Default::default(),
            act_valid: Default::default(),
            wb_valid: Default::default(),
            wb_dst: Default::default(),
            idle: Default::default(),
            sp_clash: Default::default(),
            acc_clash: Default::default(),
            src: Default::default(),
            left: Default::default(),
            dst: Default::default(),
            valid_r: Default::default(),
            r_dst: Default::default(),
            r_acc_lo: Default::default(),
            r_acc_hi: Default::default(),
            r_n: Default::default(),
            wb_valid_d: DelayLine::new(timing::ACT_WRITEBACK_DELAY),
            wb_dst_d: DelayLine::new(timing::ACT_WRITEBACK_DELAY),
            cnt: Default::default(),
            sp_meet: Default::default(),
            w_lo: Default::default(),
            w_n: Default::default(),
            c_drain: Constant::new((timing::ACT_DRAIN as u64).into()),
            c_dim: Constant::new((dim as u64).into()),
            c_zero16: Constant::new(0u64.into()),
            c_one16: Constant::new(1u64.into()),
        }
    }
}

impl Logic for Activate {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, src, left, dst, valid_r, r_dst, r_acc_lo, r_acc_hi, r_n, cnt, sp_meet);
        self.wb_valid_d.clock.next = self.clock.val();
        self.wb_valid_d.rst.next = self.rst.val();
        self.wb_dst_d.clock.next = self.clock.val();
        self.wb_dst_d.rst.next = self.rst.val();

        // the outputs straight from registers, no shared local (a local read by both the outputs
        // and the next-state logic, which reads `load`, reads to Verilator as a combinational
        // loop through the front end, which drives `load` from `idle`)
        self.ren.next = self.left.q.val() != self.c_zero16.val();
        self.raddr.next = self.src.q.val();
        self.act_valid.next = self.valid_r.q.val();
        self.wb_valid.next = self.wb_valid_d.dout.val();
        self.wb_dst.next = self.wb_dst_d.dout.val();
        self.idle.next =
            (self.left.q.val() == self.c_zero16.val()) && (self.cnt.q.val() == self.c_zero16.val());
        self.sp_clash.next = self.sp_meet.q.val()
            && ((self.left.q.val() != self.c_zero16.val()) || (self.cnt.q.val() != self.c_zero16.val()));
        self.acc_clash.next = ((self.b_acc_lo.val() && self.r_acc_lo.q.val())
            || (self.b_acc_hi.val() && self.r_acc_hi.q.val()))
            && ((self.left.q.val() != self.c_zero16.val()) || (self.cnt.q.val() != self.c_zero16.val()));
        // [a, a + n) and [b, b + m) share a row iff n, m > 0 and a − b < m (a ≥ b) or b − a < n
        // (a < b): 16-bit differences, no wrap
        self.w_lo.next = self.word.val().get_bits::<16>(0);
        if self.tile.val() {
            self.w_n.next = self.c_dim.val();
        } else {
            self.w_n.next = self.word.val().get_bits::<16>(16);
        }
        if self.take_a.val() {
            if self.w_lo.val() >= self.r_dst.q.val() {
                self.sp_meet.d.next = (self.w_n.val() != self.c_zero16.val())
                    && ((self.w_lo.val() - self.r_dst.q.val()) < self.r_n.q.val());
            } else {
                self.sp_meet.d.next = (self.r_n.q.val() != self.c_zero16.val())
                    && ((self.r_dst.q.val() - self.w_lo.val()) < self.w_n.val());
            }
        }
        if self.cnt.q.val() != self.c_zero16.val() {
            self.cnt.d.next = self.cnt.q.val() - self.c_one16.val();
        }
        if self.left.q.val() != self.c_zero16.val() {
            self.src.d.next = self.src.q.val() + self.c_one16.val();
            self.left.d.next = self.left.q.val() - self.c_one16.val();
            self.dst.d.next = self.dst.q.val() + self.c_one16.val();
            self.cnt.d.next = self.c_drain.val();
        }
        if self.load.val() {
            self.src.d.next = self.load_src.val();
            self.left.d.next = self.load_n.val();
            self.dst.d.next = self.load_dst.val();
            self.r_dst.d.next = self.load_dst.val();
            self.r_acc_lo.d.next = self.load_acc_lo.val();
            self.r_acc_hi.d.next = self.load_acc_hi.val();
            self.r_n.d.next = self.load_n.val();
        }
        self.valid_r.d.next = self.left.q.val() != self.c_zero16.val();
        self.wb_valid_d.din.next = self.left.q.val() != self.c_zero16.val();
        self.wb_dst_d.din.next = self.dst.q.val();
        if self.rst.val() {
            self.valid_r.d.next = false;
            self.left.d.next = self.c_zero16.val();
            self.cnt.d.next = self.c_zero16.val();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{replay, simulate, Port};

    const DIM: usize = 4;
    const INPUTS: [(&str, usize); 12] = [
        ("rst", 1),
        ("load", 1),
        ("load_src", 16),
        ("load_n", 16),
        ("load_dst", 16),
        ("word", 32),
        ("take_a", 1),
        ("b_acc_lo", 1),
        ("b_acc_hi", 1),
        ("tile", 1),
        ("load_acc_lo", 1),
        ("load_acc_hi", 1),
    ];
    const OUTPUTS: [(&str, usize); 8] = [
        ("ren", 1),
        ("raddr", 16),
        ("act_valid", 1),
        ("wb_valid", 1),
        ("wb_dst", 16),
        ("idle", 1),
        ("sp_clash", 1),
        ("acc_clash", 1),
    ];

    /// `[a, a + n)` and `[b, b + m)` share a row (wide arithmetic: the reference's own rule).
    fn meets(a: u128, n: u128, b: u128, m: u128) -> bool {
        n > 0 && m > 0 && a < b + m && b < a + n
    }

    /// A reference model by events: rows read one per cycle from a load on, each landing
    /// ACT_WRITEBACK_DELAY cycles after its read; the scratchpad clash from word 0's range, the
    /// accumulator clash from range B's banks against the loaded ones.
    fn reference(stim: &[Vec<u128>]) -> Vec<Vec<u128>> {
        let delay = timing::ACT_WRITEBACK_DELAY;
        let (mut src, mut left, mut dst, mut valid, mut cnt) = (0u128, 0u128, 0u128, false, 0usize);
        let (mut r_dst, mut r_n) = (0u128, 0u128);
        let (mut r_acc, mut sp_meet) = ([false; 2], false);
        let mut flight: Vec<(usize, u128)> = Vec::new();
        let mut out = Vec::new();
        for (c, s) in stim.iter().enumerate() {
            let issue = left != 0;
            let busy = issue || cnt != 0;
            let wb = flight.iter().find(|r| r.0 + delay == c).copied();
            out.push(vec![
                u128::from(issue),
                src,
                u128::from(valid),
                u128::from(wb.is_some()),
                wb.map_or(0, |r| r.1),
                u128::from(!busy),
                u128::from(busy && sp_meet),
                u128::from(busy && ((s[7] != 0 && r_acc[0]) || (s[8] != 0 && r_acc[1]))),
            ]);
            flight.retain(|r| r.0 + delay > c);
            cnt = cnt.saturating_sub(1);
            let w = s[5];
            let (w_lo, w_hi) = (w & 0xFFFF, w >> 16);
            if s[6] != 0 {
                let n = if s[9] != 0 { DIM as u128 } else { w_hi };
                sp_meet = meets(w_lo, n, r_dst, r_n);
            }
            if issue {
                flight.push((c, dst));
                src = (src + 1) & 0xFFFF;
                left -= 1;
                dst = (dst + 1) & 0xFFFF;
                cnt = timing::ACT_DRAIN;
            }
            if s[1] != 0 {
                (src, left, dst) = (s[2], s[3], s[4]);
                (r_n, r_dst) = (s[3], s[4]);
                r_acc = [s[10] != 0, s[11] != 0];
            }
            valid = issue;
            if s[0] != 0 {
                valid = false;
                left = 0;
                cnt = 0;
                flight.clear();
            }
        }
        out
    }

    /// ACTIVATEs as the front end starts them (now and then, over any state), the ranges of
    /// argument words taken, resets now and then. Rows are picked near each other and near the
    /// top of the 16-bit range so that ranges meet, touch and end at 65536.
    fn stimulus(cycles: usize, seed: u64) -> Vec<Vec<u128>> {
        let mut rng = spec::rng::SplitMix64::new(seed);
        let row = |rng: &mut spec::rng::SplitMix64| -> u128 {
            if rng.chance(0.1) {
                65535 - rng.below(8) as u128
            } else {
                rng.below(24) as u128
            }
        };
        (0..cycles)
            .map(|c| {
                let rst = c == 0 || rng.below(150) == 0;
                let load = rng.chance(0.06);
                let (ls, ld) = (row(&mut rng), row(&mut rng));
                let ln = rng.below(10) as u128;
                let w_lo = row(&mut rng);
                let w_hi =
                    if w_lo > 60000 { rng.below(65536 - w_lo as u64) as u128 } else { rng.below(12) as u128 };
                vec![
                    u128::from(rst),
                    u128::from(load),
                    ls,
                    ln,
                    ld,
                    (w_hi << 16) | w_lo,
                    u128::from(rng.chance(0.3)),
                    u128::from(rng.chance(0.5)),
                    u128::from(rng.chance(0.5)),
                    u128::from(rng.chance(0.2)),
                    u128::from(rng.chance(0.6)),
                    u128::from(rng.chance(0.6)),
                ]
            })
            .collect()
    }

    /// The outputs that matter: the read address with its enable, the write address with its
    /// valid.
    fn mask(t: Vec<Vec<u128>>) -> Vec<Vec<u128>> {
        t.into_iter()
            .map(|mut r| {
                r[1] *= r[0];
                r[4] *= r[3];
                r
            })
            .collect()
    }

    #[test]
    fn activate_matches_reference_in_rust_and_verilog() {
        for seed in [0xAC7, 0xAC8] {
            let stim = stimulus(1500, seed);
            let want = mask(reference(&stim));
            // the stimulus reaches every case: clashes of both kinds, and rows issued
            for col in [0, 6, 7] {
                assert!(want.iter().filter(|r| r[col] != 0).count() > 20, "output {col} rarely set");
            }
            let mut uut = Activate::new(DIM);
            let got = simulate(
                &mut uut,
                |u| &mut u.clock,
                &stim,
                |u, s| {
                    u.rst.next = s[0] != 0;
                    u.load.next = s[1] != 0;
                    u.load_src.next = (s[2] as u64).into();
                    u.load_n.next = (s[3] as u64).into();
                    u.load_dst.next = (s[4] as u64).into();
                    u.word.next = (s[5] as u64).into();
                    u.take_a.next = s[6] != 0;
                    u.b_acc_lo.next = s[7] != 0;
                    u.b_acc_hi.next = s[8] != 0;
                    u.tile.next = s[9] != 0;
                    u.load_acc_lo.next = s[10] != 0;
                    u.load_acc_hi.next = s[11] != 0;
                },
                |u| {
                    vec![
                        u128::from(u.ren.val()),
                        u.raddr.val().to_u64() as u128,
                        u128::from(u.act_valid.val()),
                        u128::from(u.wb_valid.val()),
                        u.wb_dst.val().to_u64() as u128,
                        u128::from(u.idle.val()),
                        u128::from(u.sp_clash.val()),
                        u128::from(u.acc_clash.val()),
                    ]
                },
            )
            .unwrap();
            assert_eq!(mask(got), want, "rust-hdl, seed {seed:#x}");
            let inputs: Vec<Port> = INPUTS.iter().map(|(n, w)| Port::new(*n, *w)).collect();
            let outputs: Vec<Port> = OUTPUTS.iter().map(|(n, w)| Port::new(*n, *w)).collect();
            let rtl = replay(&generate_verilog(&uut), "top", "clock", &inputs, &outputs, &stim).unwrap();
            assert_eq!(mask(rtl), want, "Verilog, seed {seed:#x}");
        }
    }

    #[test]
    fn activate_is_synthesizable() {
        let mut uut = Activate::new(DIM);
        uut.connect_all();
        yosys_validate("activate", &generate_verilog(&uut)).unwrap();
    }
}
