//! The processing element: one weight-stationary int8 multiply-accumulate cell with two weight
//! banks (double buffering by tag).
//!
//! ```text
//!                       psum_in (int32)
//!                            │
//!     w_load, w_bank,        ▼
//!     w_data ──► ┌──────────────────────────────────────┐
//!                │  w0 [8] ─┐                           │
//!                │  w1 [8] ─┴─ mux(sel_in) ─► w         │
//!  act_in (int8) ├──────────────► ( * ) ◄── w          │
//!  sel_in ───────┤                  │                   │
//!                │  psum_in ──────►( + ) ──► psum [32] ─┼──► psum_out
//!                │  act_in ───────────────► act  [8]  ──┼──► act_out
//!                │  sel_in ───────────────► sel  [1]  ──┼──► sel_out
//!                └──────────────────────────────────────┘
//!                  [n] = register of n bits, clock `clock`, synchronous reset `rst`
//! ```
//!
//! Each rising edge:
//! * `psum_out <= psum_in + act_in * w[sel_in]` (int32, two's complement wrap),
//! * `act_out <= act_in`, `sel_out <= sel_in` (the activation and its bank tag move on together),
//! * if `w_load`: `w[w_bank] <= w_data` (the other bank keeps its weight, so a new tile can be
//!   loaded while rows tagged with the other bank stream through),
//! * if `rst` (active high, synchronous): every register, weights included, becomes 0.
//!
//! The multiply is written as two sign-extended 16-bit operands (rust-hdl only multiplies
//! 16x16); Yosys narrows it back to an 8x8 signed multiplier.

use rust_hdl::prelude::*;

use crate::primitives::signed_bit_cast_s8_to_s16;

/// One processing element (see the module docs for the schematic and timing).
#[derive(LogicBlock)]
pub struct Pe {
    /// Clock; every register updates on its rising edge.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset of every register, weights included.
    pub rst: Signal<In, Bit>,
    /// Activation arriving from the left (or from the skew line).
    pub act_in: Signal<In, Signed<8>>,
    /// Weight bank `act_in` uses; travels with the activation.
    pub sel_in: Signal<In, Bit>,
    /// Partial sum arriving from above.
    pub psum_in: Signal<In, Signed<32>>,
    /// Write `w_data` into bank `w_bank` on this edge.
    pub w_load: Signal<In, Bit>,
    /// Bank written when `w_load` is high.
    pub w_bank: Signal<In, Bit>,
    /// Weight written when `w_load` is high.
    pub w_data: Signal<In, Signed<8>>,
    /// `act_in` delayed one cycle, to the right neighbour.
    pub act_out: Signal<Out, Signed<8>>,
    /// `sel_in` delayed one cycle, to the right neighbour.
    pub sel_out: Signal<Out, Bit>,
    /// `psum_in + act_in * w[sel_in]` of the previous cycle, to the PE below.
    pub psum_out: Signal<Out, Signed<32>>,
    weight: Signal<Local, Signed<8>>,
    act: DFF<Signed<8>>,
    sel: DFF<Bit>,
    psum: DFF<Signed<32>>,
    w0: DFF<Signed<8>>,
    w1: DFF<Signed<8>>,
    // Sized reset values: a bare `0.into()` is emitted as a 32-bit literal (Verilator WIDTH).
    zero8: Constant<Signed<8>>,
    zero32: Constant<Signed<32>>,
}

impl Default for Pe {
    fn default() -> Self {
        Self {
            clock: Default::default(),
            rst: Default::default(),
            act_in: Default::default(),
            sel_in: Default::default(),
            psum_in: Default::default(),
            w_load: Default::default(),
            w_bank: Default::default(),
            w_data: Default::default(),
            act_out: Default::default(),
            sel_out: Default::default(),
            psum_out: Default::default(),
            weight: Default::default(),
            act: Default::default(),
            sel: Default::default(),
            psum: Default::default(),
            w0: Default::default(),
            w1: Default::default(),
            zero8: Constant::new(0.into()),
            zero32: Constant::new(0.into()),
        }
    }
}

impl Logic for Pe {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, act, sel, psum, w0, w1);
        self.weight.next = self.w0.q.val();
        if self.sel_in.val() {
            self.weight.next = self.w1.q.val();
        }
        self.psum.d.next = self.psum_in.val()
            + signed_bit_cast_s8_to_s16(self.act_in.val()) * signed_bit_cast_s8_to_s16(self.weight.val());
        self.act.d.next = self.act_in.val();
        self.sel.d.next = self.sel_in.val();
        if self.w_load.val() {
            if self.w_bank.val() {
                self.w1.d.next = self.w_data.val();
            } else {
                self.w0.d.next = self.w_data.val();
            }
        }
        if self.rst.val() {
            self.act.d.next = self.zero8.val();
            self.sel.d.next = false;
            self.psum.d.next = self.zero32.val();
            self.w0.d.next = self.zero8.val();
            self.w1.d.next = self.zero8.val();
        }
        self.act_out.next = self.act.q.val();
        self.sel_out.next = self.sel.q.val();
        self.psum_out.next = self.psum.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::{sign_extend, signed_from_i128, signed_to_i128};
    use crate::replay::{replay, simulate, Port};
    use proptest::prelude::*;

    /// One cycle of PE inputs.
    #[derive(Clone, Copy, Debug, Default)]
    struct In {
        rst: bool,
        act: i8,
        sel: bool,
        psum: i32,
        w_load: bool,
        w_bank: bool,
        w_data: i8,
    }

    /// Input ports in stimulus order, output ports in trace order.
    fn ports() -> (Vec<Port>, Vec<Port>) {
        let inputs = [
            ("rst", 1),
            ("act_in", 8),
            ("sel_in", 1),
            ("psum_in", 32),
            ("w_load", 1),
            ("w_bank", 1),
            ("w_data", 8),
        ];
        let outputs = [("act_out", 8), ("sel_out", 1), ("psum_out", 32)];
        let p = |l: &[(&str, usize)]| l.iter().map(|&(n, w)| Port::new(n, w)).collect();
        (p(&inputs), p(&outputs))
    }

    fn encode(i: &In) -> Vec<u128> {
        vec![
            i.rst as u128,
            i.act as u8 as u128,
            i.sel as u128,
            i.psum as u32 as u128,
            i.w_load as u128,
            i.w_bank as u128,
            i.w_data as u8 as u128,
        ]
    }

    /// The reference: the PE's registers as plain Rust, outputs before each edge.
    fn reference(stimulus: &[In]) -> Vec<Vec<u128>> {
        let (mut act, mut sel, mut psum, mut w) = (0i8, false, 0i32, [0i8; 2]);
        let mut trace = vec![];
        for i in stimulus {
            trace.push(vec![act as u8 as u128, sel as u128, psum as u32 as u128]);
            psum = i.psum.wrapping_add(i.act as i32 * w[i.sel as usize] as i32);
            act = i.act;
            sel = i.sel;
            if i.w_load {
                w[i.w_bank as usize] = i.w_data;
            }
            if i.rst {
                (act, sel, psum, w) = (0, false, 0, [0, 0]);
            }
        }
        trace
    }

    fn rust_hdl_trace(stimulus: &[In]) -> Vec<Vec<u128>> {
        let rows: Vec<Vec<u128>> = stimulus.iter().map(encode).collect();
        let mut uut = Pe::default();
        simulate(
            &mut uut,
            |u| &mut u.clock,
            &rows,
            |u, r| {
                u.rst.next = r[0] != 0;
                u.act_in.next = signed_from_i128(sign_extend(r[1], 8));
                u.sel_in.next = r[2] != 0;
                u.psum_in.next = signed_from_i128(sign_extend(r[3], 32));
                u.w_load.next = r[4] != 0;
                u.w_bank.next = r[5] != 0;
                u.w_data.next = signed_from_i128(sign_extend(r[6], 8));
            },
            |u| {
                vec![
                    signed_to_i128(u.act_out.val()) as u128 & 0xff,
                    u.sel_out.val() as u128,
                    signed_to_i128(u.psum_out.val()) as u128 & 0xffff_ffff,
                ]
            },
        )
        .expect("rust-hdl simulation of the PE")
    }

    fn verilog_trace(stimulus: &[In]) -> Vec<Vec<u128>> {
        let mut uut = Pe::default();
        uut.connect_all();
        let (inputs, outputs) = ports();
        let rows: Vec<Vec<u128>> = stimulus.iter().map(encode).collect();
        replay(&generate_verilog(&uut), "top", "clock", &inputs, &outputs, &rows)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Reference, rust-hdl simulation and Icarus on the emitted Verilog agree on every cycle.
    fn check(stimulus: &[In]) {
        let want = reference(stimulus);
        assert_eq!(rust_hdl_trace(stimulus), want, "rust-hdl simulation vs reference");
        assert_eq!(verilog_trace(stimulus), want, "Icarus (emitted Verilog) vs reference");
    }

    fn load(bank: bool, w: i8) -> In {
        In { w_load: true, w_bank: bank, w_data: w, ..In::default() }
    }

    fn mac(act: i8, sel: bool, psum: i32) -> In {
        In { act, sel, psum, ..In::default() }
    }

    #[test]
    fn directed_extremes_wrap_and_banks() {
        let stimulus = vec![
            In { rst: true, ..In::default() },
            load(false, -128),
            load(true, 127),
            mac(-128, false, 0),        // -128 * -128 = 16384
            mac(-128, true, 0),         // -128 * 127 = -16256
            mac(127, true, 0),          // 127 * 127
            mac(0, false, -5),          // 0 * w + psum
            mac(-128, false, i32::MAX), // i32::MAX + 16384 wraps negative
            mac(-128, true, i32::MIN),  // i32::MIN - 16256 wraps positive
            mac(-128, false, i32::MIN), // no wrap
            // A weight write does not disturb the other bank, and is used from the next cycle.
            In { w_load: true, w_bank: true, w_data: -1, ..mac(3, true, 7) },
            mac(3, true, 7),
            mac(3, false, 7),
            // Reset clears weights too.
            In { rst: true, ..mac(-128, false, 100) },
            mac(-128, false, 100),
            mac(-128, true, 100),
            mac(0, false, 0),
        ];
        // Spot-check the reference itself, independently of the model code.
        let want = reference(&stimulus);
        let psum = |c: usize| want[c][2] as u32 as i32;
        assert_eq!(psum(4), 16384);
        assert_eq!(psum(5), -16256);
        assert_eq!(psum(6), 16129);
        assert_eq!(psum(7), -5);
        assert_eq!(psum(8), i32::MAX.wrapping_add(16384));
        assert!(psum(8) < 0);
        assert_eq!(psum(9), i32::MIN.wrapping_sub(16256));
        assert!(psum(9) > 0);
        assert_eq!(psum(10), i32::MIN + 16384);
        assert_eq!(psum(11), 7 + 3 * 127);
        assert_eq!(psum(12), 7 - 3);
        assert_eq!(psum(13), 7 + 3 * -128);
        assert_eq!(psum(14), 0);
        assert_eq!(psum(15), 100);
        assert_eq!(psum(16), 100);
        assert_eq!(want[4][0], 0x80, "act_out is act_in delayed one cycle");
        assert_eq!(want[5][1], 1, "sel_out is sel_in delayed one cycle");
        check(&stimulus);
    }

    fn arb_in() -> impl Strategy<Value = In> {
        let act = prop_oneof![Just(-128i8), Just(127), Just(0), any::<i8>()];
        let psum = prop_oneof![Just(i32::MAX), Just(i32::MIN), any::<i32>()];
        let w = prop_oneof![Just(-128i8), Just(127), any::<i8>()];
        (prop::bool::weighted(0.03), act, any::<bool>(), psum, any::<bool>(), any::<bool>(), w).prop_map(
            |(rst, act, sel, psum, w_load, w_bank, w_data)| In {
                rst,
                act,
                sel,
                psum,
                w_load,
                w_bank,
                w_data,
            },
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]
        #[test]
        fn random_streams_agree(stimulus in prop::collection::vec(arb_in(), 1..200)) {
            check(&stimulus);
        }
    }

    /// The 8x8 multiply (written as 16x16 for rust-hdl) lands in exactly one iCE40 DSP.
    #[test]
    fn pe_maps_onto_one_dsp_on_ice40() {
        let mut uut = Pe::default();
        uut.connect_all();
        let cells = crate::replay::ice40_cells(&generate_verilog(&uut), "top", true)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cells.get("SB_MAC16"), Some(&1), "{cells:?}");
    }

    #[test]
    fn pe_is_synthesizable() {
        let mut uut = Pe::default();
        uut.connect_all();
        yosys_validate("protobrain_pe", &generate_verilog(&uut)).unwrap();
    }
}
