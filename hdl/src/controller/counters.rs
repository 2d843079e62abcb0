//! The performance counters and their COUNTERS snapshot.
//!
//! ```text
//!                 ┌──────────────────── Counters ─────────────────────┐
//!  issue ────────►│ macs += DIM²                                      │
//!  arr_busy ─────►│ busy_cycles += 1 (a row issued or in the array)   │
//!  in_ready,  ───►│ in_stalls  += in_ready && !in_valid               │
//!  in_valid       │                                                   │
//!  out_valid, ───►│ out_stalls += out_valid && !out_ready             │
//!  out_ready      │                                                   │
//!  cmd_done ─────►│ done_r ─► commands += 1   (one cycle later: off   │
//!  err_done ─────►│ err_r  ─► errors   += 1    the take path)         │
//!                 │ cycles += 1                                       │
//!  sample ───────►│ snap[0..9] := the 9 COUNTERS words               ├──► snap[0..9]
//!                 └───────────────────────────────────────────────────┘
//! ```
//!
//! The words, in `snap` order: cycles (low, high), macs (low, high), busy_cycles, in_stalls,
//! out_stalls, commands, errors (docs/architecture.md "Performance counters"). Every counter
//! wraps; `rst` clears them all (the snapshot keeps its value). The native model's part of the
//! same name is `sim::native::counters`.

use rust_hdl::prelude::*;
use spec::isa::COUNTER_WORDS;

/// The counters (see the module docs).
#[derive(LogicBlock)]
pub struct Counters {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset of every counter.
    pub rst: Signal<In, Bit>,
    /// A MATMUL row is issued this cycle.
    pub issue: Signal<In, Bit>,
    /// A MATMUL row is issued or in flight in the array this cycle (`!arr_idle`).
    pub arr_busy: Signal<In, Bit>,
    /// The controller's `in_ready`.
    pub in_ready: Signal<In, Bit>,
    /// The host's `in_valid`.
    pub in_valid: Signal<In, Bit>,
    /// The controller's `out_valid`.
    pub out_valid: Signal<In, Bit>,
    /// The host's `out_ready`.
    pub out_ready: Signal<In, Bit>,
    /// A command completes this cycle (errors included).
    pub cmd_done: Signal<In, Bit>,
    /// An error response completes this cycle.
    pub err_done: Signal<In, Bit>,
    /// Take the snapshot on this edge.
    pub sample: Signal<In, Bit>,
    /// The snapshot: the COUNTERS payload words.
    pub snap: Vec<Signal<Out, Bits<32>>>,

    cycles: DFF<Bits<64>>,
    macs: DFF<Bits<64>>,
    busy_cycles: DFF<Bits<32>>,
    in_stalls: DFF<Bits<32>>,
    out_stalls: DFF<Bits<32>>,
    commands: DFF<Bits<32>>,
    errors: DFF<Bits<32>>,
    // cmd_done / err_done registered: the counters count one cycle later (off the take path)
    done_r: DFF<Bit>,
    err_r: DFF<Bit>,
    snap_r: Vec<DFF<Bits<32>>>,
    c_macs_per_row: Constant<Bits<64>>,
    c_one32: Constant<Bits<32>>,
    c_zero32: Constant<Bits<32>>,
    c_one64: Constant<Bits<64>>,
    c_zero64: Constant<Bits<64>>,
}

impl Counters {
    /// The counters of a DIM x DIM array (a row issued is DIM² MACs).
    ///
    /// # Panics
    /// If `dim` is not in `1..=256`.
    pub fn new(dim: usize) -> Self {
        assert!((1..=256).contains(&dim), "Counters DIM must be in 1..=256, got {dim}");
        let d = dim as u64;
        Counters {
            clock: Default::default(),
            rst: Default::default(),
            issue: Default::default(),
            arr_busy: Default::default(),
            in_ready: Default::default(),
            in_valid: Default::default(),
            out_valid: Default::default(),
            out_ready: Default::default(),
            cmd_done: Default::default(),
            err_done: Default::default(),
            sample: Default::default(),
            snap: (0..COUNTER_WORDS).map(|_| Default::default()).collect(),
            cycles: Default::default(),
            macs: Default::default(),
            busy_cycles: Default::default(),
            in_stalls: Default::default(),
            out_stalls: Default::default(),
            commands: Default::default(),
            errors: Default::default(),
            done_r: Default::default(),
            err_r: Default::default(),
            snap_r: (0..COUNTER_WORDS).map(|_| Default::default()).collect(),
            c_macs_per_row: Constant::new((d * d).into()),
            c_one32: Constant::new(1u64.into()),
            c_zero32: Constant::new(0u64.into()),
            c_one64: Constant::new(1u64.into()),
            c_zero64: Constant::new(0u64.into()),
        }
    }
}

#[allow(clippy::needless_range_loop)]
impl Logic for Counters {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self,
            clock,
            cycles,
            macs,
            busy_cycles,
            in_stalls,
            out_stalls,
            commands,
            errors,
            done_r,
            err_r
        );
        for i in 0..self.snap_r.len() {
            self.snap_r[i].clock.next = self.clock.val();
            self.snap_r[i].d.next = self.snap_r[i].q.val();
            self.snap[i].next = self.snap_r[i].q.val();
        }
        if self.issue.val() {
            self.macs.d.next = self.macs.q.val() + self.c_macs_per_row.val();
        }
        if self.arr_busy.val() {
            self.busy_cycles.d.next = self.busy_cycles.q.val() + self.c_one32.val();
        }
        if self.sample.val() {
            self.snap_r[0].d.next = self.cycles.q.val().get_bits::<32>(0);
            self.snap_r[1].d.next = self.cycles.q.val().get_bits::<32>(32);
            self.snap_r[2].d.next = self.macs.q.val().get_bits::<32>(0);
            self.snap_r[3].d.next = self.macs.q.val().get_bits::<32>(32);
            self.snap_r[4].d.next = self.busy_cycles.q.val();
            self.snap_r[5].d.next = self.in_stalls.q.val();
            self.snap_r[6].d.next = self.out_stalls.q.val();
            self.snap_r[7].d.next = self.commands.q.val();
            self.snap_r[8].d.next = self.errors.q.val();
        }
        self.cycles.d.next = self.cycles.q.val() + self.c_one64.val();
        if self.in_ready.val() && !self.in_valid.val() {
            self.in_stalls.d.next = self.in_stalls.q.val() + self.c_one32.val();
        }
        if self.out_valid.val() && !self.out_ready.val() {
            self.out_stalls.d.next = self.out_stalls.q.val() + self.c_one32.val();
        }
        self.done_r.d.next = self.cmd_done.val();
        self.err_r.d.next = self.err_done.val();
        if self.done_r.q.val() {
            self.commands.d.next = self.commands.q.val() + self.c_one32.val();
        }
        if self.err_r.q.val() {
            self.errors.d.next = self.errors.q.val() + self.c_one32.val();
        }
        if self.rst.val() {
            self.done_r.d.next = false;
            self.err_r.d.next = false;
            self.cycles.d.next = self.c_zero64.val();
            self.macs.d.next = self.c_zero64.val();
            self.busy_cycles.d.next = self.c_zero32.val();
            self.in_stalls.d.next = self.c_zero32.val();
            self.out_stalls.d.next = self.c_zero32.val();
            self.commands.d.next = self.c_zero32.val();
            self.errors.d.next = self.c_zero32.val();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{replay, simulate, Port};

    const INPUTS: [&str; 10] = [
        "rst",
        "issue",
        "in_ready",
        "in_valid",
        "out_valid",
        "out_ready",
        "cmd_done",
        "err_done",
        "sample",
        "arr_busy",
    ];

    /// A reference model: the counters as plain integers, the snapshot as the 9 words.
    fn reference(dim: u64, stim: &[Vec<u128>]) -> Vec<Vec<u128>> {
        let (mut cycles, mut macs) = (0u64, 0u64);
        let [mut busy, mut ins, mut outs, mut cmds, mut errs] = [0u32; 5];
        let (mut done_r, mut err_r) = (false, false);
        let mut snap = [0u32; COUNTER_WORDS];
        let mut out = Vec::new();
        for s in stim {
            let b = |i: usize| s[i] != 0;
            out.push(snap.iter().map(|&w| w as u128).collect());
            if b(8) {
                let c = spec::isa::Counters {
                    cycles,
                    macs,
                    array_busy_cycles: busy,
                    in_stall_cycles: ins,
                    out_stall_cycles: outs,
                    commands: cmds,
                    errors: errs,
                };
                snap = c.to_words();
            }
            if b(1) {
                macs = macs.wrapping_add(dim * dim);
            }
            busy = busy.wrapping_add(u32::from(b(9)));
            cycles += 1;
            ins += u32::from(b(2) && !b(3));
            outs += u32::from(b(4) && !b(5));
            cmds += u32::from(done_r);
            errs += u32::from(err_r);
            (done_r, err_r) = (b(6), b(7));
            if b(0) {
                (cycles, macs, busy, ins, outs, cmds, errs) = (0, 0, 0, 0, 0, 0, 0);
                (done_r, err_r) = (false, false);
            }
        }
        out
    }

    fn stimulus(cycles: usize, seed: u64) -> Vec<Vec<u128>> {
        let mut rng = spec::rng::SplitMix64::new(seed);
        (0..cycles)
            .map(|c| {
                let r = rng.next_u64();
                // a reset now and then, at cycle 0 as the core's tests do
                let rst = c == 0 || r.is_multiple_of(97);
                let mut s = vec![u128::from(rst)];
                s.extend((1..INPUTS.len()).map(|i| u128::from((r >> (8 + 3 * i)) & 3 != 0)));
                s[8] = u128::from((r >> 60).is_multiple_of(5));
                s
            })
            .collect()
    }

    #[test]
    fn counters_match_reference_in_rust_and_verilog() {
        for dim in [1usize, 3, 8] {
            let stim = stimulus(400, 0xC0 + dim as u64);
            let want = reference(dim as u64, &stim);
            let mut uut = Counters::new(dim);
            let got = simulate(
                &mut uut,
                |u| &mut u.clock,
                &stim,
                |u, s| {
                    u.rst.next = s[0] != 0;
                    u.issue.next = s[1] != 0;
                    u.in_ready.next = s[2] != 0;
                    u.in_valid.next = s[3] != 0;
                    u.out_valid.next = s[4] != 0;
                    u.out_ready.next = s[5] != 0;
                    u.cmd_done.next = s[6] != 0;
                    u.err_done.next = s[7] != 0;
                    u.sample.next = s[8] != 0;
                    u.arr_busy.next = s[9] != 0;
                },
                |u| u.snap.iter().map(|w| w.val().to_u64() as u128).collect(),
            )
            .unwrap();
            assert_eq!(got, want, "rust-hdl, DIM {dim}");
            let inputs: Vec<Port> = INPUTS.iter().map(|n| Port::new(*n, 1)).collect();
            let outputs = Port::vec("snap", COUNTER_WORDS, 32);
            let rtl = replay(&generate_verilog(&uut), "top", "clock", &inputs, &outputs, &stim).unwrap();
            assert_eq!(rtl, want, "Verilog, DIM {dim}");
        }
    }

    #[test]
    fn counters_are_synthesizable() {
        let mut uut = Counters::new(4);
        uut.connect_all();
        yosys_validate("counters", &generate_verilog(&uut)).unwrap();
    }
}
