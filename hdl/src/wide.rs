//! Width-changing leaves that rust-hdl cannot express cleanly.
//!
//! ```text
//!   hi [HI] ──┐
//!             ├──► y [W] = {hi, lo}        (W = HI + LO; combinational)
//!   lo [LO] ──┘
//! ```
//!
//! rust-hdl has no concatenation, and its `bit_cast` widens by emitting `(x) & W'hff..`, which
//! Verilator's lint reports as a WIDTH mismatch (fatal by default); struct-field assignments
//! emit 64-bit offsets, which it also reports. [`Concat`] is the clean way: a tiny leaf whose
//! Verilog is `assign y = {hi, lo};`, with the same behaviour modelled in Rust.
//! Zero-extension is a [`Concat`] with a zero `hi`, a left shift one with a zero `lo`.

use rust_hdl::prelude::*;

/// `y = {hi, lo}`: `hi` in the top `HI` bits, `lo` in the low `LO` bits, `W = HI + LO`
/// (checked when built). Purely combinational.
#[derive(LogicBlock)]
pub struct Concat<const HI: usize, const LO: usize, const W: usize> {
    /// The high part.
    pub hi: Signal<In, Bits<HI>>,
    /// The low part.
    pub lo: Signal<In, Bits<LO>>,
    /// `{hi, lo}`.
    pub y: Signal<Out, Bits<W>>,
}

impl<const HI: usize, const LO: usize, const W: usize> Concat<HI, LO, W> {
    /// A concatenation leaf.
    ///
    /// # Panics
    /// If `W != HI + LO`.
    pub fn new() -> Self {
        assert_eq!(W, HI + LO, "Concat<{HI}, {LO}, {W}>: the output must be HI + LO = {} bits", HI + LO);
        Concat { hi: Default::default(), lo: Default::default(), y: Default::default() }
    }
}

impl<const HI: usize, const LO: usize, const W: usize> Default for Concat<HI, LO, W> {
    /// Same as [`Concat::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl<const HI: usize, const LO: usize, const W: usize> Logic for Concat<HI, LO, W> {
    fn update(&mut self) {
        self.y.next = (bit_cast::<W, HI>(self.hi.val()) << (LO as u64)) | bit_cast::<W, LO>(self.lo.val());
    }

    fn connect(&mut self) {
        self.y.connect();
    }

    fn hdl(&self) -> Verilog {
        // A `Wrapper` body makes `y` a wire, so this is a continuous assignment: unlike an
        // `always @(*)` it holds from time 0 even if the inputs never change.
        Verilog::Wrapper(Wrapper { code: "assign y = {hi, lo};".into(), cores: String::new() })
    }

    fn timing(&self) -> Vec<TimingInfo> {
        vec![TimingInfo {
            name: "concat".into(),
            clock: "".into(),
            inputs: vec!["hi".into(), "lo".into()],
            outputs: vec!["y".into()],
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{self, Port};
    use proptest::prelude::*;

    /// A clocked top around a 20 = 13 + 7 bit `Concat` so `replay` can drive it (the clock is
    /// unused: the leaf is combinational and outputs are sampled before each edge).
    #[derive(LogicBlock)]
    struct Harness {
        clock: Signal<In, Clock>,
        hi: Signal<In, Bits<13>>,
        lo: Signal<In, Bits<7>>,
        y: Signal<Out, Bits<20>>,
        cat: Concat<13, 7, 20>,
    }

    impl Logic for Harness {
        #[hdl_gen]
        fn update(&mut self) {
            self.cat.hi.next = self.hi.val();
            self.cat.lo.next = self.lo.val();
            self.y.next = self.cat.y.val();
        }
    }

    fn harness() -> Harness {
        let mut uut = Harness {
            clock: Default::default(),
            hi: Default::default(),
            lo: Default::default(),
            y: Default::default(),
            cat: Concat::new(),
        };
        uut.clock.connect();
        uut.hi.connect();
        uut.lo.connect();
        uut.connect_all();
        uut
    }

    fn rust_trace(rows: &[Vec<u128>]) -> Vec<Vec<u128>> {
        replay::simulate(
            &mut harness(),
            |u| &mut u.clock,
            rows,
            |u, row| {
                u.hi.next = (row[0] as u64).into();
                u.lo.next = (row[1] as u64).into();
            },
            |u| vec![u.y.val().to_u128()],
        )
        .unwrap()
    }

    #[test]
    fn concat_places_hi_above_lo_in_rust_hdl_and_icarus() {
        // The first row is not all zero: the test bench's inputs start at 0, and a combinational
        // `always @(*)` (the harness's wiring) only runs once an input changes.
        let mut rows: Vec<Vec<u128>> = vec![
            vec![0x1fff, 0x7f],
            vec![0, 0],
            vec![1, 0],
            vec![0, 1],
            vec![0x1000, 0x40],
            vec![0x0abc, 0x5a],
        ];
        rows.extend((0..200u128).map(|k| vec![(k * 7919) & 0x1fff, (k * 31) & 0x7f]));
        let want: Vec<Vec<u128>> = rows.iter().map(|r| vec![(r[0] << 7) | r[1]]).collect();
        assert_eq!(rust_trace(&rows), want, "rust-hdl model");
        let verilog = generate_verilog(&harness());
        let icarus = replay::replay(
            &verilog,
            "top",
            "clock",
            &[Port::new("hi", 13), Port::new("lo", 7)],
            &[Port::new("y", 20)],
            &rows,
        )
        .unwrap_or_else(|e| panic!("Icarus replay: {e}"));
        assert_eq!(icarus, want, "emitted Verilog");
    }

    proptest! {
        #[test]
        fn wide_concat_model_is_exact(hi in any::<u64>(), lo in any::<u8>()) {
            let mut uut = Concat::<64, 8, 72>::new();
            uut.hi.next = hi.into();
            uut.lo.next = (lo as u64).into();
            assert!(simulate(&mut uut, 10));
            prop_assert_eq!(uut.y.val().to_u128(), ((hi as u128) << 8) | lo as u128);
        }
    }

    #[test]
    #[should_panic(expected = "Concat<8, 8, 15>: the output must be HI + LO = 16 bits")]
    fn mismatched_width_is_rejected() {
        let _ = Concat::<8, 8, 15>::new();
    }

    #[test]
    fn concat_is_synthesizable() {
        yosys_validate("pb_wide_concat", &generate_verilog(&harness())).unwrap();
    }
}
