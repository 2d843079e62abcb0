//! The activation unit of one column: bias, requantise, add the output zero point, ReLU,
//! saturate — bit-exact with DESIGN.md's contract v2 (`spec::arith::requantize_v2`), one vector
//! per cycle, fixed latency [`ActivationUnit::LATENCY`] = 6. The zero point Z (`zero_point`)
//! travels down the pipeline with the vector like M, S and relu (not drawn below).
//!
//! ```text
//!            acc [32]   bias [32]   multiplier M [16]   shift S [6]   relu   valid_in     rst
//!                │          │             │                 │          │        │          │
//!  stage 1       └──► (+) ◄─┘             │                 │          │        │          │
//!                      │                  │                 │          │        │          │
//!                   [sum 32]           [M 16]             [S]       [relu]     [v] ◄── clear ┤
//!                      │                  │                 │          │        │          │
//!  stage 2   sum[15:0]*M, sum[31:16]*M (two 16x16 DSPs), corr = sum<0 ? M<<16 : 0          │
//!                   [lo 32] [hi 32] [corr 32]             [S]       [relu]     [v] ◄── clear ┤
//!                      │                                    │          │        │          │
//!  stage 3   w = 2v = 2 * (hi<<16 + lo - corr<<16)          │          │        │          │
//!                   [w 49]                                [S]       [relu]     [v] ◄── clear ┤
//!                      │                                    │          │        │          │
//!  stage 4   z = w, or !w if v < 0; z >> S[5:3]*8 into a 16-bit window, overflow bits OR-ed │
//!                   [x3 16] [ov] [neg]                    [S 3]     [relu]     [v] ◄── clear ┤
//!                      │                                    │          │        │          │
//!  stage 5   x3 >> S[2:0] into a 9-bit window mag; c = ceil(mag/2)       │        │          │
//!                   [c 9] [over] [neg]                              [relu]     [v] ◄── clear ┤
//!                      │                                               │        │          │
//!  stage 6   t = Z + c or Z - c (ReLU, v < 0: Z), clamp to -128..=127            │          │
//!                   [y 8] ──► y                                                [v] ◄── clear ┘
//!                                                                               └──► valid_out
//!   [..] = register, rising edge of `clock`; data registers load only with a valid vector
//! ```
//!
//! # Arithmetic (DESIGN.md contract v2, exactly)
//! ```text
//! v = (acc + bias) wrapped to int32, as i64 * M       (M: u16)
//! r = S == 0 ? v : (v + (1 << (S - 1))) >> S           (arithmetic shift)
//! r = r + Z                                            (Z: int8)
//! r = relu ? max(r, Z) : r
//! y = clamp(r, -128, 127)
//! ```
//! With Z = 0 this is v1's arithmetic exactly.
//! `multiplier`, `shift`, `relu` and `zero_point` are sampled with the vector (on the edge where `valid_in`
//! is high) and travel down the pipeline with it, so they may change on every cycle. Shifts
//! 48..=63 (rejected by SET_QUANT) still follow the formula with unbounded integers: every
//! result is 0.
//!
//! # How the hardware computes it
//! * **Multiply**: rust-hdl multiplies only 16x16. The signed 32-bit sum times the unsigned
//!   16-bit M is `(sum[31:16] * M) << 16 + sum[15:0] * M - (sum < 0 ? M << 32 : 0)` modulo
//!   2^48: two unsigned 16x16 products (one SB_MAC16 / MULT18X18D each), summed the next
//!   stage. `|v| < 2^47`, so 48 bits hold it exactly; stage 3 keeps `w = 2v` (49 bits).
//! * **Round and shift without a 49-bit adder**: with `t = w >>> S`,
//!   `(v + 2^(S-1)) >> S = floor((t + 1) / 2)` for every S, S = 0 included. Only the low 9 bits
//!   of `t` and whether `t` fits 9 bits matter for an int8 result, so the shifter is a
//!   *window* shifter: stages of 32, 16, 8, 4, 2, 1 that keep only the bits that can still
//!   reach the 9-bit window (40, 24, 16, 12, 10, 9 bits) and OR together the bits they drop.
//!   It works on `z = w` for `v >= 0` and `z = !w` for `v < 0`, so `z >= 0` and
//!   `!(z >> S) = w >>> S`: a dropped bit is simply a nonzero one.
//! * **Round, zero point, ReLU, clamp**: with `mag = z >> S` (9 bits, when it fits) and
//!   `c = ceil(mag / 2)` (0..=256, registered in stage 5): `r = c` for `v >= 0` and `r = -c`
//!   for `v < 0`. Stage 6 forms `t = Z + c` and `t = Z - c` side by side in 10 bits (which
//!   hold -384..=383 exactly) and the sign picks one; ReLU with `v < 0` gives `t = Z`. `t`
//!   fits int8 when its bits 9:7 are equal, else it saturates by bit 9. A `mag` past the window
//!   means `|r| > 256`, which saturates by the sign whatever Z (`|Z| <= 128`).
//!
//! Everything is unsigned `Bits` with sized locals and sized constants, so the Verilog has no
//! signed comparisons and no 32-bit literal widening; widening is [`Concat`] (rust-hdl's
//! `bit_cast` trips Verilator's WIDTH lint). The tests replay the same vectors through the
//! rust-hdl model and through the emitted Verilog under Icarus, against an i128 reference.
//!
//! # Cost (Yosys 0.23, nextpnr-ice40 0.4; one unit)
//! | target | cells |
//! |---|---|
//! | iCE40 `synth_ice40 -dsp` | 283 SB_LUT4, 75 SB_CARRY, 149 FFs, 2 SB_MAC16 |
//! | ECP5 `synth_ecp5` | 216 LUT4 (+ 45 PFUMX, 4 L6MUX21), 40 CCU2C, 244 FFs, 2 MULT18X18D |
//!
//! UP5K Fmax 51-54 MHz (3 placement seeds; critical path: the 32-bit bias adder into the DSP
//! input register). Reproduce the cell counts with
//! `cargo test -p protobrain-hdl activation_unit_uses_two_dsps -- --nocapture`. With the
//! shifter in one stage (LATENCY 5) Fmax was 45 MHz.

use rust_hdl::prelude::*;

use crate::wide::Concat;

/// The activation unit of one column (see the module docs for the schematic and arithmetic).
///
/// Timing: a vector presented with `valid_in` high in cycle `k` (i.e. sampled on the rising
/// edge that ends cycle `k`) is on `y`, with `valid_out` high, during cycle
/// `k + LATENCY`. One vector per cycle. `y` holds its last value while `valid_out` is low.
/// `rst` (synchronous, active high) clears every valid bit in flight; the data registers are
/// not reset (they are ignored while invalid).
#[derive(LogicBlock)]
pub struct ActivationUnit {
    /// Clock; every register updates on its rising edge.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset of the valid pipeline.
    pub rst: Signal<In, Bit>,
    /// Accumulator value (int32).
    pub acc: Signal<In, Signed<32>>,
    /// Bias of this column (int32); `acc + bias` wraps to int32.
    pub bias: Signal<In, Signed<32>>,
    /// M, the unsigned requantisation multiplier.
    pub multiplier: Signal<In, Bits<16>>,
    /// S, the rounding right shift (0..=47 per DESIGN.md; 48..=63 give 0).
    pub shift: Signal<In, Bits<6>>,
    /// Apply ReLU (as `max(r, Z)`) before saturating.
    pub relu: Signal<In, Bit>,
    /// Z, the output zero point (int8 as raw bits), added after the shift (contract v2).
    pub zero_point: Signal<In, Bits<8>>,
    /// The inputs hold a vector to process.
    pub valid_in: Signal<In, Bit>,
    /// The int8 result of the vector that entered `LATENCY` cycles ago.
    pub y: Signal<Out, Signed<8>>,
    /// `y` holds a result this cycle.
    pub valid_out: Signal<Out, Bit>,
    // Stage 1: bias added, quantisation captured.
    s1_sum: DFF<Bits<32>>,
    s1_m: DFF<Bits<16>>,
    s1_shift: DFF<Bits<6>>,
    s1_relu: DFF<Bit>,
    s1_z: DFF<Bits<8>>,
    s1_valid: DFF<Bit>,
    // Stage 2: partial products and the sign correction `(sum < 0 ? M : 0) << 16`.
    s2_lo: DFF<Bits<32>>,
    s2_hi: DFF<Bits<32>>,
    s2_corr: DFF<Bits<32>>,
    s2_shift: DFF<Bits<6>>,
    s2_relu: DFF<Bit>,
    s2_z: DFF<Bits<8>>,
    s2_valid: DFF<Bit>,
    // Stage 3: w = 2v, 49 bits.
    s3_w: DFF<Bits<49>>,
    s3_shift: DFF<Bits<6>>,
    s3_relu: DFF<Bit>,
    s3_z: DFF<Bits<8>>,
    s3_valid: DFF<Bit>,
    // Stage 4: the window after the shifts by 32, 16 and 8.
    s4_x3: DFF<Bits<16>>,
    s4_ov: DFF<Bit>,
    s4_neg: DFF<Bit>,
    s4_shift: DFF<Bits<3>>,
    s4_relu: DFF<Bit>,
    s4_z: DFF<Bits<8>>,
    s4_valid: DFF<Bit>,
    // Stage 5: the shifted magnitude window.
    s5_c: DFF<Bits<9>>,
    s5_over: DFF<Bit>,
    s5_neg: DFF<Bit>,
    s5_relu: DFF<Bit>,
    s5_z: DFF<Bits<8>>,
    s5_valid: DFF<Bit>,
    // Stage 6: the result.
    s6_y: DFF<Bits<8>>,
    s6_valid: DFF<Bit>,
    // Widening without casts (see `wide`): corr = {M or 0, 16'b0}, w = 2v = {v[47:16], v[15:0], 0}.
    cat_corr: Concat<16, 16, 32>,
    cat_w: Concat<32, 17, 49>,
    // Stage 4 and 5 combinational locals: the window shifter.
    neg: Signal<Local, Bit>,
    z: Signal<Local, Bits<49>>,
    x5: Signal<Local, Bits<49>>,
    x4: Signal<Local, Bits<24>>,
    x3: Signal<Local, Bits<16>>,
    x2: Signal<Local, Bits<12>>,
    x1: Signal<Local, Bits<10>>,
    x0: Signal<Local, Bits<9>>,
    ov5: Signal<Local, Bit>,
    ov4: Signal<Local, Bit>,
    ov3: Signal<Local, Bit>,
    ov2: Signal<Local, Bit>,
    ov1: Signal<Local, Bit>,
    ov0: Signal<Local, Bit>,
    // Stage 5 and 6 combinational locals: c = ceil(mag / 2) (stage 5); t = Z + c or Z - c
    // (Z under ReLU when v < 0; 10 bits hold -384..=383 exactly), whether t fits int8,
    // whether to saturate (stage 6).
    c: Signal<Local, Bits<9>>,
    cat_c: Concat<1, 9, 10>,
    cat_z: Concat<2, 8, 10>,
    t_pos: Signal<Local, Bits<10>>,
    t_neg: Signal<Local, Bits<10>>,
    t: Signal<Local, Bits<10>>,
    t_fits: Signal<Local, Bit>,
    clip: Signal<Local, Bit>,
    // Sized constants (a bare literal would be emitted 32 bits wide).
    zero1: Constant<Bits<1>>,
    zero2: Constant<Bits<2>>,
    ones2: Constant<Bits<2>>,
    zero3: Constant<Bits<3>>,
    ones3: Constant<Bits<3>>,
    one9: Constant<Bits<9>>,
    zero16: Constant<Bits<16>>,
    max8: Constant<Bits<8>>,
    min8: Constant<Bits<8>>,
}

impl ActivationUnit {
    /// Cycles from a vector entering (`valid_in`) to its result leaving (`valid_out`).
    /// [`spec::timing::ACT_LATENCY`]; the tests here hold the pipeline to it.
    pub const LATENCY: usize = spec::timing::ACT_LATENCY;
}

impl Default for ActivationUnit {
    fn default() -> Self {
        ActivationUnit {
            clock: Default::default(),
            rst: Default::default(),
            acc: Default::default(),
            bias: Default::default(),
            multiplier: Default::default(),
            shift: Default::default(),
            relu: Default::default(),
            zero_point: Default::default(),
            valid_in: Default::default(),
            y: Default::default(),
            valid_out: Default::default(),
            s1_sum: Default::default(),
            s1_m: Default::default(),
            s1_shift: Default::default(),
            s1_relu: Default::default(),
            s1_z: Default::default(),
            s1_valid: Default::default(),
            s2_lo: Default::default(),
            s2_hi: Default::default(),
            s2_corr: Default::default(),
            s2_shift: Default::default(),
            s2_relu: Default::default(),
            s2_z: Default::default(),
            s2_valid: Default::default(),
            s3_w: Default::default(),
            s3_shift: Default::default(),
            s3_relu: Default::default(),
            s3_z: Default::default(),
            s3_valid: Default::default(),
            s4_x3: Default::default(),
            s4_ov: Default::default(),
            s4_neg: Default::default(),
            s4_shift: Default::default(),
            s4_relu: Default::default(),
            s4_z: Default::default(),
            s4_valid: Default::default(),
            s5_c: Default::default(),
            s5_over: Default::default(),
            s5_neg: Default::default(),
            s5_relu: Default::default(),
            s5_z: Default::default(),
            s5_valid: Default::default(),
            s6_y: Default::default(),
            s6_valid: Default::default(),
            cat_corr: Concat::new(),
            cat_w: Concat::new(),
            neg: Default::default(),
            z: Default::default(),
            x5: Default::default(),
            x4: Default::default(),
            x3: Default::default(),
            x2: Default::default(),
            x1: Default::default(),
            x0: Default::default(),
            ov5: Default::default(),
            ov4: Default::default(),
            ov3: Default::default(),
            ov2: Default::default(),
            ov1: Default::default(),
            ov0: Default::default(),
            c: Default::default(),
            cat_c: Concat::new(),
            cat_z: Concat::new(),
            t_pos: Default::default(),
            t_neg: Default::default(),
            t: Default::default(),
            t_fits: Default::default(),
            clip: Default::default(),
            zero1: Constant::new(0u64.into()),
            zero2: Constant::new(0u64.into()),
            ones2: Constant::new(3u64.into()),
            zero3: Constant::new(0u64.into()),
            ones3: Constant::new(7u64.into()),
            one9: Constant::new(1u64.into()),
            zero16: Constant::new(0u64.into()),
            max8: Constant::new(0x7fu64.into()),
            min8: Constant::new(0x80u64.into()),
        }
    }
}

impl Logic for ActivationUnit {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, s1_sum, s1_m, s1_shift, s1_relu, s1_z, s1_valid, s2_lo, s2_hi, s2_corr, s2_shift,
            s2_relu, s2_z, s2_valid, s3_w, s3_shift, s3_relu, s3_z, s3_valid, s4_x3, s4_ov, s4_neg, s4_shift,
            s4_relu, s4_z, s4_valid, s5_c, s5_over, s5_neg, s5_relu, s5_z, s5_valid, s6_y, s6_valid
        );

        // Stage 1: acc + bias (int32 wrap); the quantisation travels with the vector.
        self.s1_valid.d.next = self.valid_in.val();
        if self.valid_in.val() {
            self.s1_sum.d.next = unsigned_cast(self.acc.val()) + unsigned_cast(self.bias.val());
            self.s1_m.d.next = self.multiplier.val();
            self.s1_shift.d.next = self.shift.val();
            self.s1_relu.d.next = self.relu.val();
            self.s1_z.d.next = self.zero_point.val();
        }

        // Stage 2: two unsigned 16x16 partial products and the sign correction.
        self.cat_corr.hi.next = self.zero16.val();
        if self.s1_sum.q.val().get_bit(31) {
            self.cat_corr.hi.next = self.s1_m.q.val();
        }
        self.cat_corr.lo.next = self.zero16.val();
        self.s2_valid.d.next = self.s1_valid.q.val();
        if self.s1_valid.q.val() {
            self.s2_lo.d.next = self.s1_sum.q.val().get_bits::<16>(0) * self.s1_m.q.val();
            self.s2_hi.d.next = self.s1_sum.q.val().get_bits::<16>(16) * self.s1_m.q.val();
            self.s2_corr.d.next = self.cat_corr.y.val();
            self.s2_shift.d.next = self.s1_shift.q.val();
            self.s2_relu.d.next = self.s1_relu.q.val();
            self.s2_z.d.next = self.s1_z.q.val();
        }

        // Stage 3: w = 2v = 2 * (hi * 2^16 + lo - corr * 2^16), 49-bit two's complement: bits
        // 16:0 are lo's low bits shifted once, bits 48:17 the 32-bit sum of the rest.
        self.cat_w.hi.next = self.s2_hi.q.val() + (self.s2_lo.q.val() >> 16) - self.s2_corr.q.val();
        self.cat_w.lo.next = self.s2_lo.q.val().get_bits::<17>(0) << 1;
        self.s3_valid.d.next = self.s2_valid.q.val();
        if self.s2_valid.q.val() {
            self.s3_w.d.next = self.cat_w.y.val();
            self.s3_shift.d.next = self.s2_shift.q.val();
            self.s3_relu.d.next = self.s2_relu.q.val();
            self.s3_z.d.next = self.s2_z.q.val();
        }

        // Stages 4 and 5: z = w (its complement when v < 0), shifted right by S into a 9-bit
        // window; ovN collects any nonzero bit dropped above the window.
        self.neg.next = self.s3_w.q.val().get_bit(48);
        self.z.next = self.s3_w.q.val();
        if self.neg.val() {
            self.z.next = !self.s3_w.q.val();
        }
        self.x5.next = self.z.val();
        if self.s3_shift.q.val().get_bit(5) {
            self.x5.next = self.z.val() >> 32;
        }
        self.ov5.next = self.x5.val().get_bits::<9>(40).any();
        self.x4.next = self.x5.val().get_bits::<24>(0);
        self.ov4.next = self.ov5.val() | self.x5.val().get_bits::<16>(24).any();
        if self.s3_shift.q.val().get_bit(4) {
            self.x4.next = self.x5.val().get_bits::<24>(16);
            self.ov4.next = self.ov5.val();
        }
        self.x3.next = self.x4.val().get_bits::<16>(0);
        self.ov3.next = self.ov4.val() | self.x4.val().get_bits::<8>(16).any();
        if self.s3_shift.q.val().get_bit(3) {
            self.x3.next = self.x4.val().get_bits::<16>(8);
            self.ov3.next = self.ov4.val();
        }
        self.s4_valid.d.next = self.s3_valid.q.val();
        if self.s3_valid.q.val() {
            self.s4_x3.d.next = self.x3.val();
            self.s4_ov.d.next = self.ov3.val();
            self.s4_neg.d.next = self.neg.val();
            self.s4_shift.d.next = self.s3_shift.q.val().get_bits::<3>(0);
            self.s4_relu.d.next = self.s3_relu.q.val();
            self.s4_z.d.next = self.s3_z.q.val();
        }
        self.x2.next = self.s4_x3.q.val().get_bits::<12>(0);
        self.ov2.next = self.s4_ov.q.val() | self.s4_x3.q.val().get_bits::<4>(12).any();
        if self.s4_shift.q.val().get_bit(2) {
            self.x2.next = self.s4_x3.q.val().get_bits::<12>(4);
            self.ov2.next = self.s4_ov.q.val();
        }
        self.x1.next = self.x2.val().get_bits::<10>(0);
        self.ov1.next = self.ov2.val() | self.x2.val().get_bits::<2>(10).any();
        if self.s4_shift.q.val().get_bit(1) {
            self.x1.next = self.x2.val().get_bits::<10>(2);
            self.ov1.next = self.ov2.val();
        }
        self.x0.next = self.x1.val().get_bits::<9>(0);
        self.ov0.next = self.ov1.val() | self.x1.val().get_bit(9);
        if self.s4_shift.q.val().get_bit(0) {
            self.x0.next = self.x1.val().get_bits::<9>(1);
            self.ov0.next = self.ov1.val();
        }
        // c = ceil(mag / 2) of the 9-bit window (0..=256)
        self.c.next = (self.x0.val() >> 1) + (self.x0.val() & self.one9.val());
        self.s5_valid.d.next = self.s4_valid.q.val();
        if self.s4_valid.q.val() {
            self.s5_c.d.next = self.c.val();
            self.s5_over.d.next = self.ov0.val();
            self.s5_neg.d.next = self.s4_neg.q.val();
            self.s5_relu.d.next = self.s4_relu.q.val();
            self.s5_z.d.next = self.s4_z.q.val();
        }

        // Stage 6: r = +-ceil(mag / 2) (|r| <= 256), ReLU, t = r + Z, saturate to int8. A
        // magnitude past the window (over) means |r| > 256: saturated by its sign whatever Z.
        // ReLU with v < 0 gives r = 0, so t = Z, even past the window.
        // Z + c and Z - c side by side (one carry chain deep), then the sign picks one.
        self.cat_c.hi.next = self.zero1.val();
        self.cat_c.lo.next = self.s5_c.q.val();
        self.cat_z.lo.next = self.s5_z.q.val();
        self.cat_z.hi.next = self.zero2.val();
        if self.s5_z.q.val().get_bit(7) {
            self.cat_z.hi.next = self.ones2.val();
        }
        self.t_pos.next = self.cat_z.y.val() + self.cat_c.y.val();
        self.t_neg.next = self.cat_z.y.val() - self.cat_c.y.val();
        self.t.next = self.t_pos.val();
        if self.s5_neg.q.val() {
            self.t.next = self.t_neg.val();
        }
        self.clip.next = self.s5_over.q.val();
        if self.s5_neg.q.val() && self.s5_relu.q.val() {
            self.t.next = self.cat_z.y.val();
            self.clip.next = false;
        }
        self.t_fits.next = (self.t.val().get_bits::<3>(7) == self.zero3.val())
            || (self.t.val().get_bits::<3>(7) == self.ones3.val());
        self.s6_valid.d.next = self.s5_valid.q.val();
        if self.s5_valid.q.val() {
            if self.clip.val() {
                self.s6_y.d.next = self.max8.val();
                if self.s5_neg.q.val() {
                    self.s6_y.d.next = self.min8.val();
                }
            } else if self.t_fits.val() {
                self.s6_y.d.next = self.t.val().get_bits::<8>(0);
            } else if self.t.val().get_bit(9) {
                self.s6_y.d.next = self.min8.val();
            } else {
                self.s6_y.d.next = self.max8.val();
            }
        }

        // Synchronous reset of the valid pipeline (last, so it wins).
        if self.rst.val() {
            self.s1_valid.d.next = false;
            self.s2_valid.d.next = false;
            self.s3_valid.d.next = false;
            self.s4_valid.d.next = false;
            self.s5_valid.d.next = false;
            self.s6_valid.d.next = false;
        }

        self.y.next = signed_cast(self.s6_y.q.val());
        self.valid_out.next = self.s6_valid.q.val();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::sign_extend;
    use crate::replay::{self, Port};
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    /// Straight from DESIGN.md's (v2) formula in i128 (any S in 0..=63).
    fn reference(acc: i32, bias: i32, m: u16, s: u8, relu: bool, z: i8) -> i8 {
        let sum = acc.wrapping_add(bias);
        let v = i128::from(sum) * i128::from(m);
        let r = if s == 0 { v } else { (v + (1i128 << (s - 1))) >> s };
        let r = r + i128::from(z);
        let r = if relu { r.max(i128::from(z)) } else { r };
        r.clamp(-128, 127) as i8
    }

    /// One cycle of input.
    #[derive(Clone, Copy, Debug, PartialEq)]
    struct Vector {
        acc: i32,
        bias: i32,
        m: u16,
        s: u8,
        relu: bool,
        z: i8,
        valid: bool,
        rst: bool,
    }

    impl Vector {
        fn new(acc: i32, bias: i32, m: u16, s: u8, relu: bool) -> Self {
            Vector { acc, bias, m, s, relu, z: 0, valid: true, rst: false }
        }

        fn with_z(self, z: i8) -> Self {
            Vector { z, ..self }
        }

        fn expected(&self) -> i8 {
            reference(self.acc, self.bias, self.m, self.s, self.relu, self.z)
        }

        fn row(&self) -> Vec<u128> {
            vec![
                self.rst as u128,
                self.acc as u32 as u128,
                self.bias as u32 as u128,
                self.m as u128,
                self.s as u128,
                self.relu as u128,
                self.z as u8 as u128,
                self.valid as u128,
            ]
        }
    }

    fn inputs() -> Vec<Port> {
        vec![
            Port::new("rst", 1),
            Port::new("acc", 32),
            Port::new("bias", 32),
            Port::new("multiplier", 16),
            Port::new("shift", 6),
            Port::new("relu", 1),
            Port::new("zero_point", 8),
            Port::new("valid_in", 1),
        ]
    }

    fn outputs() -> Vec<Port> {
        vec![Port::new("y", 8), Port::new("valid_out", 1)]
    }

    fn connected() -> ActivationUnit {
        let mut uut = ActivationUnit::default();
        uut.clock.connect();
        uut.rst.connect();
        uut.acc.connect();
        uut.bias.connect();
        uut.multiplier.connect();
        uut.shift.connect();
        uut.relu.connect();
        uut.zero_point.connect();
        uut.valid_in.connect();
        uut.connect_all();
        uut
    }

    /// The stimulus with `LATENCY` idle cycles appended so every result comes out.
    fn stimulus(vectors: &[Vector]) -> Vec<Vec<u128>> {
        let idle = Vector { valid: false, ..Vector::new(0, 0, 0, 0, false) };
        let tail = std::iter::repeat_n(idle, ActivationUnit::LATENCY);
        vectors.iter().copied().chain(tail).map(|v| v.row()).collect()
    }

    /// The rust-hdl simulation's trace (`[y as raw bits, valid_out]` per cycle).
    fn rust_trace(vectors: &[Vector]) -> Vec<Vec<u128>> {
        let mut uut = connected();
        replay::simulate(
            &mut uut,
            |u| &mut u.clock,
            &stimulus(vectors),
            |u, row| {
                u.rst.next = row[0] == 1;
                u.acc.next = signed_cast(Bits::<32>::from(row[1] as u64));
                u.bias.next = signed_cast(Bits::<32>::from(row[2] as u64));
                u.multiplier.next = (row[3] as u64).into();
                u.shift.next = (row[4] as u64).into();
                u.relu.next = row[5] == 1;
                u.zero_point.next = (row[6] as u64).into();
                u.valid_in.next = row[7] == 1;
            },
            |u| vec![unsigned_cast(u.y.val()).to_u64() as u128, u.valid_out.val() as u128],
        )
        .expect("rust-hdl simulation")
    }

    /// The same stimulus through the emitted Verilog under Icarus.
    fn verilog_trace(vectors: &[Vector]) -> Vec<Vec<u128>> {
        let uut = connected();
        let verilog = generate_verilog(&uut);
        replay::replay(&verilog, "top", "clock", &inputs(), &outputs(), &stimulus(vectors))
            .unwrap_or_else(|e| panic!("Icarus replay: {e}"))
    }

    /// Checks a trace against the reference: each valid vector's result appears exactly
    /// `LATENCY` cycles later with `valid_out`, and `valid_out` is low everywhere else. A
    /// vector is dropped when `rst` is high during one of the cycles it spends in the pipe.
    fn check(vectors: &[Vector], trace: &[Vec<u128>], who: &str) {
        let lat = ActivationUnit::LATENCY;
        assert_eq!(trace.len(), vectors.len() + lat);
        for (c, row) in trace.iter().enumerate() {
            let source = c.checked_sub(lat).map(|k| &vectors[k]);
            let flushed = c >= lat && vectors[c - lat..c.min(vectors.len())].iter().any(|v| v.rst);
            match source {
                Some(v) if v.valid && !flushed => {
                    assert_eq!(row[1], 1, "{who}: valid_out low at cycle {c} for {v:?}");
                    let y = sign_extend(row[0], 8) as i8;
                    assert_eq!(y, v.expected(), "{who}: cycle {c}, input {v:?}");
                }
                _ => assert_eq!(row[1], 0, "{who}: valid_out high at cycle {c}"),
            }
        }
    }

    /// Runs `vectors` through rust-hdl and Icarus, checks both against the reference and
    /// against each other.
    fn check_both(vectors: &[Vector]) {
        let rust = rust_trace(vectors);
        check(vectors, &rust, "rust-hdl");
        let verilog = verilog_trace(vectors);
        check(vectors, &verilog, "Icarus");
        assert_eq!(rust, verilog, "rust-hdl and Icarus traces differ");
    }

    fn edge_cases() -> Vec<Vector> {
        let mut v = vec![];
        let extremes = [i32::MIN, i32::MIN + 1, -1, 0, 1, i32::MAX - 1, i32::MAX];
        for &acc in &extremes {
            for &bias in &extremes {
                for m in [0u16, 1, 2, 32768, 65535] {
                    for s in [0u8, 1, 7, 8, 16, 31, 32, 46, 47] {
                        for relu in [false, true] {
                            v.push(Vector::new(acc, bias, m, s, relu));
                        }
                    }
                }
            }
        }
        // Rounding ties (x.5 rounds up), the saturation boundaries, ReLU on negatives.
        for (acc, m, s) in [
            (-1, 1, 1),      // -0.5 -> 0
            (1, 1, 1),       // 0.5 -> 1
            (-3, 1, 1),      // -1.5 -> -1
            (3, 1, 1),       // 1.5 -> 2
            (-255, 1, 1),    // -127.5 -> -127
            (-257, 1, 1),    // -128.5 -> -128
            (-259, 1, 1),    // -129.5 -> -129 -> -128
            (255, 1, 1),     // 127.5 -> 128 -> 127
            (253, 1, 1),     // 126.5 -> 127
            (-128, 1, 0),    // exactly -128
            (-129, 1, 0),    // -129 -> -128
            (127, 1, 0),     // 127
            (128, 1, 0),     // 128 -> 127
            (-16384, 1, 7),  // -128
            (-16449, 1, 7),  // -128.5078 -> -129 -> -128
            (16320, 1, 7),   // 127.5 -> 128 -> 127
            (1, 65535, 17),  // 0.49999 -> 0
            (1, 32768, 16),  // 0.5 -> 1
            (-1, 32768, 16), // -0.5 -> 0
            (-3, 32768, 16), // -1.5 -> -1
        ] {
            for relu in [false, true] {
                v.push(Vector::new(acc, 0, m, s, relu));
            }
        }
        // Every shift against v = +-2^p (+-1): a single bit at every position of the shifter,
        // so a bit dropped by any shifter stage without being checked shows up.
        for s in 0..=63u8 {
            for p in 0..=45u32 {
                let k = p.min(30);
                let m = 1u16 << (p - k);
                for delta in [-1, 0, 1] {
                    for sign in [-1, 1] {
                        v.push(Vector::new(sign * (1 << k), delta, m, s, false));
                    }
                }
            }
            v.push(Vector::new(i32::MIN, 0, 1 << 15, s, false)); // v = -2^46
        }
        // Contract v2's zero point: every r in -300..=300 (S = 0, so r = acc) against the
        // extreme and middle Z, with and without ReLU: the sums that cross int8 only after Z,
        // and the window's edge (|r| = 255, 256, 257).
        for acc in -300..=300 {
            for z in [-128i8, -127, -1, 0, 1, 5, 126, 127] {
                for relu in [false, true] {
                    v.push(Vector::new(acc, 0, 1, 0, relu).with_z(z));
                }
            }
        }
        for &z in &[-128i8, 127, 3] {
            for s in [0u8, 1, 9, 47, 63] {
                for &acc in &[i32::MIN, -513, -512, -511, 511, 512, 513, i32::MAX] {
                    for relu in [false, true] {
                        v.push(Vector::new(acc, 0, 1, s, relu).with_z(z));
                    }
                }
            }
        }
        v
    }

    #[test]
    fn reference_agrees_with_spec() {
        for v in edge_cases().iter().filter(|v| v.s <= spec::arith::MAX_SHIFT) {
            let c = spec::ColumnScale::new(v.m, v.s).unwrap();
            assert_eq!(v.expected(), spec::requantize_v2(v.acc, v.bias, c, v.relu, v.z), "{v:?}");
        }
    }

    #[test]
    fn hand_checked_results() {
        // Independent of `reference`: the results worked out by hand.
        let cases = [
            (Vector::new(-1, 0, 1, 1, false), 0),
            (Vector::new(1, 0, 1, 1, false), 1),
            (Vector::new(-3, 0, 1, 1, false), -1),
            (Vector::new(-257, 0, 1, 1, false), -128),
            (Vector::new(255, 0, 1, 1, false), 127),
            (Vector::new(-100, -28, 1, 0, false), -128),
            (Vector::new(-100, -27, 1, 0, false), -127),
            (Vector::new(-100, -27, 1, 0, true), 0),
            (Vector::new(i32::MAX, 1, 1, 0, false), -128),
            (Vector::new(i32::MIN, 0, 65535, 47, false), -1),
            (Vector::new(i32::MAX, 0, 65535, 47, false), 1),
            (Vector::new(i32::MIN, 0, 0, 0, false), 0),
            (Vector::new(1000, 24, 3, 5, false), 96), // 1024 * 3 / 32
            // v2: Z after the shift, ReLU as max(r, Z)
            (Vector::new(250, 0, 1, 0, false).with_z(-128), 122),
            (Vector::new(-250, 0, 1, 0, false).with_z(127), -123),
            (Vector::new(-5, 0, 1, 0, true).with_z(-128), -128),
            (Vector::new(-5, 0, 1, 0, true).with_z(20), 20),
            (Vector::new(i32::MIN, 0, 1, 0, true).with_z(20), 20),
            (Vector::new(5, 0, 1, 0, true).with_z(20), 25),
            (Vector::new(3, 0, 1, 1, false).with_z(1), 3), // 1.5 -> 2, + 1
            (Vector::new(400, 0, 1, 0, false).with_z(-128), 127),
        ];
        let vectors: Vec<Vector> = cases.iter().map(|c| c.0).collect();
        let trace = rust_trace(&vectors);
        for (k, (v, want)) in cases.iter().enumerate() {
            let y = sign_extend(trace[k + ActivationUnit::LATENCY][0], 8) as i8;
            assert_eq!(y, *want, "{v:?}");
            assert_eq!(v.expected(), *want, "reference for {v:?}");
        }
    }

    #[test]
    fn edge_cases_at_full_rate_in_rust_hdl_and_icarus() {
        check_both(&edge_cases());
    }

    fn vector() -> impl Strategy<Value = Vector> {
        let wide = prop_oneof![any::<i32>(), -100_000i32..100_000, Just(i32::MIN), Just(i32::MAX)];
        (
            wide.clone(),
            wide,
            prop_oneof![any::<u16>(), Just(0u16), Just(1), Just(65535)],
            prop_oneof![0u8..=47, Just(0u8), Just(47), 48u8..=63],
            any::<bool>(),
            prop_oneof![Just(0i8), Just(-128), any::<i8>()],
            prop::bool::weighted(0.85),
        )
            .prop_map(|(acc, bias, m, s, relu, z, valid)| Vector {
                valid,
                z,
                ..Vector::new(acc, bias, m, s, relu)
            })
    }

    #[test]
    fn random_vectors_in_icarus_match_the_reference_and_rust_hdl() {
        // One long deterministic stream (a replay per proptest case would spend its time
        // compiling): full rate with gaps, one in 400 cycles in reset.
        let mut runner = TestRunner::deterministic();
        let strategy = (vector(), 0u32..400);
        let vectors: Vec<Vector> = (0..6000)
            .map(|_| {
                let (v, r) = strategy.new_tree(&mut runner).unwrap().current();
                Vector { rst: r == 0, ..v }
            })
            .collect();
        assert!(vectors.iter().any(|v| v.rst) && vectors.iter().any(|v| !v.valid));
        check_both(&vectors);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn random_streams_match_the_reference(vectors in proptest::collection::vec(vector(), 1..30)) {
            check(&vectors, &rust_trace(&vectors), "rust-hdl");
        }
    }

    #[test]
    fn reset_drops_vectors_in_flight() {
        let mut vectors: Vec<Vector> = (0..8).map(|k| Vector::new(k, 0, 1, 0, false)).collect();
        vectors[3].rst = true; // results of vectors 0..=3 never come out
        let trace = rust_trace(&vectors);
        let valid: Vec<u128> = trace.iter().map(|r| r[1]).collect();
        let lat = ActivationUnit::LATENCY;
        let mut want = vec![0; lat + 4];
        want.extend([1, 1, 1, 1]);
        assert_eq!(valid, want);
        check(&vectors, &trace, "rust-hdl");
        assert_eq!(verilog_trace(&vectors), trace);
    }

    #[test]
    fn quantisation_travels_with_each_vector() {
        // A different M, S and relu on every cycle, back to back.
        let vectors = vec![
            Vector::new(1000, 0, 1, 0, false),            // 127
            Vector::new(-1000, 0, 1, 3, false),           // -125
            Vector::new(-1000, 0, 1, 3, true),            // 0
            Vector::new(1000, 0, 3, 5, false),            // 93.75 -> 94
            Vector::new(100, 0, 0, 0, false),             // 0
            Vector::new(-1000, 0, 1, 3, true).with_z(-7), // Z = -7
            Vector::new(10, 0, 1, 0, false).with_z(100),  // 110
        ];
        let trace = rust_trace(&vectors);
        let lat = ActivationUnit::LATENCY;
        let ys: Vec<i8> = trace[lat..lat + 7].iter().map(|r| sign_extend(r[0], 8) as i8).collect();
        assert_eq!(ys, vec![127, -125, 0, 94, 0, -7, 110]);
        check(&vectors, &trace, "rust-hdl");
    }

    #[test]
    fn activation_unit_is_synthesizable() {
        let uut = connected();
        yosys_validate("pb_activation_unit", &generate_verilog(&uut)).unwrap();
    }

    #[test]
    fn activation_unit_verilog_is_lint_clean() {
        let warnings = replay::verilator_lint(&generate_verilog(&connected()), "top").expect("verilator");
        let real: Vec<_> = warnings.iter().filter(|w| w.code != "DECLFILENAME").collect();
        assert!(real.is_empty(), "{real:#?}");
    }

    /// The multiply maps onto exactly two hard multipliers (one per 16x16 partial product).
    /// Prints the full cell counts (`--nocapture`) for the numbers in the module docs.
    #[test]
    fn activation_unit_uses_two_dsps() {
        let verilog = generate_verilog(&connected());
        let ice40 = replay::ice40_cells(&verilog, "top", true).expect("yosys synth_ice40 -dsp");
        eprintln!("ActivationUnit, synth_ice40 -dsp: {ice40:?}");
        assert_eq!(ice40.get("SB_MAC16"), Some(&2), "{ice40:?}");
        let ecp5 = crate::memory::tests::ecp5_cells(&verilog);
        eprintln!("ActivationUnit, synth_ecp5: {ecp5:?}");
        assert_eq!(ecp5.get("MULT18X18D"), Some(&2), "{ecp5:?}");
    }
}
