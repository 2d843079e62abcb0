//! ACTIVATE's issue and write-back: each accumulator row read into the activation units is
//! written to the scratchpad `ACT_WRITEBACK_DELAY` cycles later.
//!
//! ```text
//!              ┌─────────────────────────── Activate ───────────────────────────┐
//!  load ──────►│ dst := load_dst (the command's first scratchpad row)           │
//!  load_dst ──►│                                                                │
//!  issue ─────►│ an acc row is read now: act_valid next cycle (the read data    │──► act_valid
//!              │ enters the units), dst += 1, cnt := ACT_DRAIN                  │
//!              │ (valid, dst) delay line of ACT_WRITEBACK_DELAY = 1 + LA ───────┼──► wb_valid, wb_dst
//!              │ cnt counts down: 0 when the last row's write has landed ───────┼──► idle
//!              └────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The front end reads the accumulator rows (its `ActRun` state raises `issue` and drives the
//! read address) and completes the command when `idle` (`ActDrain`). The delays come from
//! [`spec::timing`]. The native model's part of the same name is `sim::native::activate`.

use crate::primitives::DelayLine;
use rust_hdl::prelude::*;
use spec::timing;

/// ACTIVATE's issue and write-back (see the module docs).
#[derive(LogicBlock)]
pub struct Activate {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset (rows in flight are lost).
    pub rst: Signal<In, Bit>,
    /// Set the destination row to `load_dst`.
    pub load: Signal<In, Bit>,
    /// The first scratchpad row to write.
    pub load_dst: Signal<In, Bits<16>>,
    /// An accumulator row is read this cycle.
    pub issue: Signal<In, Bit>,
    /// The accumulator read data of this cycle goes into the activation units.
    pub act_valid: Signal<Out, Bit>,
    /// The activation units' outputs are written to the scratchpad this cycle ...
    pub wb_valid: Signal<Out, Bit>,
    /// ... into this row.
    pub wb_dst: Signal<Out, Bits<16>>,
    /// No row in flight.
    pub idle: Signal<Out, Bit>,

    dst: DFF<Bits<16>>,
    valid_r: DFF<Bit>,
    // valid and dst of each activated row, delayed to the scratchpad write
    wb_valid_d: DelayLine<Bit>,
    wb_dst_d: DelayLine<Bits<16>>,
    cnt: DFF<Bits<16>>,
    c_drain: Constant<Bits<16>>,
    c_zero16: Constant<Bits<16>>,
    c_one16: Constant<Bits<16>>,
}

impl Default for Activate {
    fn default() -> Self {
        Activate {
            clock: Default::default(),
            rst: Default::default(),
            load: Default::default(),
            load_dst: Default::default(),
            issue: Default::default(),
            act_valid: Default::default(),
            wb_valid: Default::default(),
            wb_dst: Default::default(),
            idle: Default::default(),
            dst: Default::default(),
            valid_r: Default::default(),
            wb_valid_d: DelayLine::new(timing::ACT_WRITEBACK_DELAY),
            wb_dst_d: DelayLine::new(timing::ACT_WRITEBACK_DELAY),
            cnt: Default::default(),
            c_drain: Constant::new((timing::ACT_DRAIN as u64).into()),
            c_zero16: Constant::new(0u64.into()),
            c_one16: Constant::new(1u64.into()),
        }
    }
}

impl Logic for Activate {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, dst, valid_r, cnt);
        self.wb_valid_d.clock.next = self.clock.val();
        self.wb_valid_d.rst.next = self.rst.val();
        self.wb_dst_d.clock.next = self.clock.val();
        self.wb_dst_d.rst.next = self.rst.val();

        self.act_valid.next = self.valid_r.q.val();
        self.wb_valid.next = self.wb_valid_d.dout.val();
        self.wb_dst.next = self.wb_dst_d.dout.val();
        self.idle.next = self.cnt.q.val() == self.c_zero16.val();
        if self.cnt.q.val() != self.c_zero16.val() {
            self.cnt.d.next = self.cnt.q.val() - self.c_one16.val();
        }
        if self.load.val() {
            self.dst.d.next = self.load_dst.val();
        }
        if self.issue.val() {
            self.dst.d.next = self.dst.q.val() + self.c_one16.val();
            self.cnt.d.next = self.c_drain.val();
        }
        self.valid_r.d.next = self.issue.val();
        self.wb_valid_d.din.next = self.issue.val();
        self.wb_dst_d.din.next = self.dst.q.val();
        if self.rst.val() {
            self.valid_r.d.next = false;
            self.cnt.d.next = self.c_zero16.val();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{replay, simulate, Port};

    const OUTPUTS: [(&str, usize); 4] = [("act_valid", 1), ("wb_valid", 1), ("wb_dst", 16), ("idle", 1)];

    /// A reference model by events: each issued row lands ACT_WRITEBACK_DELAY cycles later.
    fn reference(stim: &[Vec<u128>]) -> Vec<Vec<u128>> {
        let delay = timing::ACT_WRITEBACK_DELAY;
        let (mut dst, mut valid, mut cnt) = (0u16, false, 0usize);
        let mut flight: Vec<(usize, u16)> = Vec::new();
        let mut out = Vec::new();
        for (c, s) in stim.iter().enumerate() {
            let wb = flight.iter().find(|r| r.0 + delay == c).copied();
            out.push(vec![
                u128::from(valid),
                u128::from(wb.is_some()),
                u128::from(wb.map_or(0, |r| r.1)),
                u128::from(cnt == 0),
            ]);
            flight.retain(|r| r.0 + delay > c);
            cnt = cnt.saturating_sub(1);
            if s[1] != 0 {
                dst = s[2] as u16;
            }
            valid = s[3] != 0;
            if valid {
                flight.push((c, dst));
                dst = dst.wrapping_add(1);
                cnt = timing::ACT_DRAIN;
            }
            if s[0] != 0 {
                valid = false;
                cnt = 0;
                flight.clear();
            }
        }
        out
    }

    /// ACTIVATEs as the front end runs them: a load, then a run of issued rows; resets now
    /// and then.
    fn stimulus(cycles: usize, seed: u64) -> Vec<Vec<u128>> {
        let mut rng = spec::rng::SplitMix64::new(seed);
        let mut run = 0u64;
        (0..cycles)
            .map(|c| {
                let rst = c == 0 || rng.below(120) == 0;
                let load = run == 0 && rng.chance(0.2);
                let issue = run > 0;
                run = run.saturating_sub(1);
                if load {
                    run = rng.below(12);
                }
                if rst {
                    run = 0;
                }
                vec![u128::from(rst), u128::from(load), u128::from(rng.below(1 << 16)), u128::from(issue)]
            })
            .collect()
    }

    #[test]
    fn activate_matches_reference_in_rust_and_verilog() {
        let stim = stimulus(600, 0xAC7);
        let want = reference(&stim);
        let mut uut = Activate::default();
        let got = simulate(
            &mut uut,
            |u| &mut u.clock,
            &stim,
            |u, s| {
                u.rst.next = s[0] != 0;
                u.load.next = s[1] != 0;
                u.load_dst.next = (s[2] as u64).into();
                u.issue.next = s[3] != 0;
            },
            |u| {
                vec![
                    u128::from(u.act_valid.val()),
                    u128::from(u.wb_valid.val()),
                    u.wb_dst.val().to_u64() as u128,
                    u128::from(u.idle.val()),
                ]
            },
        )
        .unwrap();
        // the write address matters only with its valid
        let mask = |t: Vec<Vec<u128>>| -> Vec<Vec<u128>> {
            t.into_iter()
                .map(|mut r| {
                    r[2] *= r[1];
                    r
                })
                .collect()
        };
        let want = mask(want);
        assert_eq!(mask(got), want, "rust-hdl");
        let inputs =
            vec![Port::new("rst", 1), Port::new("load", 1), Port::new("load_dst", 16), Port::new("issue", 1)];
        let outputs: Vec<Port> = OUTPUTS.iter().map(|(n, w)| Port::new(*n, *w)).collect();
        let rtl = replay(&generate_verilog(&uut), "top", "clock", &inputs, &outputs, &stim).unwrap();
        assert_eq!(mask(rtl), want, "Verilog");
    }

    #[test]
    fn activate_is_synthesizable() {
        let mut uut = Activate::default();
        uut.connect_all();
        yosys_validate("activate", &generate_verilog(&uut)).unwrap();
    }
}
