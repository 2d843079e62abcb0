//! Primitives shared by the blocks: correct signed width casts, sign extension, the 8x8 -> 16
//! signed multiply, conversions between rust-hdl's `Signed<N>` and Rust integers for models
//! and tests, and [`DelayLine`] (a register chain with reset).
//!
//! ```text
//!   Signed<8> a ──► signed_bit_cast_s8_to_s16 ──┐
//!                                               ├─► ( * ) ──► Signed<32>, value fits 16 bits
//!   Signed<8> b ──► signed_bit_cast_s8_to_s16 ──┘      Verilog: $signed(a) * $signed(b)
//! ```
//!
//! # Why these exist
//! * rust-hdl's own `signed_bit_cast` recurses forever on the most negative value (it negates
//!   it, which wraps to itself). [`signed_bit_cast_fixed`] is a correct replacement.
//! * `#[hdl_gen]` translates any call whose name *starts with* `signed_bit_cast` into
//!   `$signed(x)`, so every cast here is named that way and can be used inside `#[hdl_gen]`
//!   (call it unqualified: `use crate::primitives::*`). In Verilog, `$signed(x)` takes its width
//!   from the context: it sign-extends when the whole expression is signed and as wide as the
//!   target, which holds when every operand is a `Signed` signal or a `$signed(..)` cast.
//! * rust-hdl has `Mul` only for `Signed<16> x Signed<16> -> Signed<32>`: an 8x8 signed product
//!   is written `signed_bit_cast_s8_to_s16(a) * signed_bit_cast_s8_to_s16(b)` inside
//!   `#[hdl_gen]`; [`mul_s8`] is the same product for Rust models. Yosys' `wreduce` narrows the
//!   resulting multiplier back to 8x8 (see the PE's synthesis numbers).

use rust_hdl::prelude::*;

use crate::generate::generate_loop_block;

/// A chain of `depth >= 1` registers: `dout` is `din` delayed `depth` cycles. `rst`
/// (synchronous, active high) clears every stage. The array's skew and deskew lines, the
/// controller's write-back delays.
///
/// ```text
///   din ──► [T] ──► [T] ──► … ──► [T] ──► dout      (depth registers, clock `clock`)
/// ```
///
/// Emitted as a generate loop of registers ([`delay_registers`]), so a line costs a few lines
/// of text whatever its depth; rust-hdl's own text, one flip-flop module per stage, is the
/// per-instance form ([`crate::generate`]).
pub struct DelayLine<T: Synth> {
    /// Clock; the chain shifts on its rising edge.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset of every stage to `T::default()` (zero).
    pub rst: Signal<In, Bit>,
    /// Value entering the chain.
    pub din: Signal<In, T>,
    /// `din` of `depth` cycles ago.
    pub dout: Signal<Out, T>,
    stage: Vec<DFF<T>>,
    zero: Constant<T>,
}

impl<T: Synth> DelayLine<T> {
    /// A delay line of `depth` registers.
    ///
    /// # Panics
    /// If `depth` is 0 (a zero-cycle delay is a wire; leave the line out).
    pub fn new(depth: usize) -> Self {
        assert!(depth >= 1, "DelayLine depth must be at least 1, got {depth}");
        Self {
            clock: Default::default(),
            rst: Default::default(),
            din: Default::default(),
            dout: Default::default(),
            stage: (0..depth).map(|_| DFF::default()).collect(),
            zero: Constant::new(T::default()),
        }
    }

    /// Number of registers (cycles of delay).
    pub fn depth(&self) -> usize {
        self.stage.len()
    }
}

// `#[hdl_gen]` needs index loops: loop bounds are evaluated when Verilog is emitted. The
// generated `update`, `connect` and `hdl` are inherent; `generate_loop_block!` chooses between
// this `hdl` (the per-instance form) and the generate loop.
#[allow(clippy::needless_range_loop)]
impl<T: Synth> DelayLine<T> {
    #[hdl_gen]
    fn update(&mut self) {
        for i in 0..self.stage.len() {
            self.stage[i].clock.next = self.clock.val();
        }
        self.stage[0].d.next = self.din.val();
        for i in 1..self.stage.len() {
            self.stage[i].d.next = self.stage[i - 1].q.val();
        }
        if self.rst.val() {
            for i in 0..self.stage.len() {
                self.stage[i].d.next = self.zero.val();
            }
        }
        // A one-iteration loop binds the last index (hdl_gen indices must be loop variables).
        for last in (self.stage.len() - 1)..self.stage.len() {
            self.dout.next = self.stage[last].q.val();
        }
    }

    /// The registers as a generate loop ([`delay_registers`]): stage `s` is `stage[s].q`.
    fn generate_loop_verilog(&self) -> Verilog {
        let code = format!(
            "// {d} registers of {w} bits in a generate loop; stage[s].q is rust-hdl's stage$s.\n\
             localparam WIDTH = {w};\nlocalparam DEPTH = {d};\n{body}",
            w = T::BITS,
            d = self.depth(),
            body = delay_registers()
        );
        Verilog::Wrapper(Wrapper { code, cores: String::new() })
    }
}

generate_loop_block!(impl[T: Synth] DelayLine<T>;
    ports: clock, rst, din, dout;
    inner: stage, zero);

/// The registers of a delay line in Verilog, in a scope with `clock`, `rst`, `din`, `dout` and
/// the constants `WIDTH` and `DEPTH >= 1`: stage `s` is `stage[s].q`, cleared by `rst`, with
/// the `initial` value 0 of rust-hdl's flip-flops. [`DelayLine`]'s text and the body of
/// [`DELAY_MODULE`].
pub fn delay_registers() -> &'static str {
    "\
genvar s;
generate
    for (s = 0; s < DEPTH; s = s + 1) begin : stage
        reg [WIDTH-1:0] q;
        initial begin
            q = {WIDTH{1'b0}};
        end
        if (s == 0) begin : first
            always @(posedge clock) q <= rst ? {WIDTH{1'b0}} : din;
        end else begin : next
            always @(posedge clock) q <= rst ? {WIDTH{1'b0}} : stage[s - 1].q;
        end
    end
endgenerate
assign dout = stage[DEPTH - 1].q;
"
}

/// Name of the parameterised delay line that the array's generate loop instantiates.
pub const DELAY_MODULE: &str = "protobrain_delay";

/// [`DELAY_MODULE`]: [`delay_registers`] with `WIDTH` and `DEPTH` as parameters.
pub fn delay_module() -> String {
    format!(
        "\n\nmodule {DELAY_MODULE} #(parameter WIDTH = 1, parameter DEPTH = 1) (\n\
         \x20   input wire clock,\n    input wire rst,\n    input wire [WIDTH-1:0] din,\n    output wire [WIDTH-1:0] dout);\n\
         {}endmodule // {DELAY_MODULE}\n",
        delay_registers()
    )
}

/// Casts a signed value to `M` bits like Verilog's `$signed(x)` in an `M`-bit signed context:
/// sign-extends when `M > N`, keeps the low `M` bits when `M < N`. Correct for every value,
/// including the most negative one (where rust-hdl's `signed_bit_cast` overflows the stack).
///
/// Usable inside `#[hdl_gen]` (emitted as `$signed(x)`).
pub fn signed_bit_cast_fixed<const M: usize, const N: usize>(x: Signed<N>) -> Signed<M> {
    let raw = unsigned_cast(x);
    if x.sign_bit() {
        // !x is non-negative, so zero-extending it is exact; inverting back sets the high bits.
        let inverted: Bits<M> = bit_cast(!raw);
        signed_cast(!inverted)
    } else {
        signed_cast(bit_cast::<M, N>(raw))
    }
}

/// Sign-extends an int8 to 16 bits. Usable inside `#[hdl_gen]` (emitted as `$signed(x)`).
pub fn signed_bit_cast_s8_to_s16(x: Signed<8>) -> Signed<16> {
    signed_bit_cast_fixed::<16, 8>(x)
}

/// Sign-extends an int8 to 32 bits. Usable inside `#[hdl_gen]` (emitted as `$signed(x)`).
pub fn signed_bit_cast_s8_to_s32(x: Signed<8>) -> Signed<32> {
    signed_bit_cast_fixed::<32, 8>(x)
}

/// Sign-extends an int16 to 32 bits. Usable inside `#[hdl_gen]` (emitted as `$signed(x)`).
pub fn signed_bit_cast_s16_to_s32(x: Signed<16>) -> Signed<32> {
    signed_bit_cast_fixed::<32, 16>(x)
}

/// The exact 8x8 signed product (range -16256..=16384), computed the way `#[hdl_gen]` code
/// must write it (widen to 16 bits, rust-hdl's 16x16 multiply) and narrowed to 16 bits.
pub fn mul_s8(a: Signed<8>, b: Signed<8>) -> Signed<16> {
    let wide: Signed<32> = signed_bit_cast_s8_to_s16(a) * signed_bit_cast_s8_to_s16(b);
    signed_bit_cast_fixed::<16, 32>(wide)
}

/// The value of a `Signed<N>` (N <= 128) as an `i128`.
pub fn signed_to_i128<const N: usize>(x: Signed<N>) -> i128 {
    assert!(N <= 128, "signed_to_i128 supports up to 128 bits, got {N}");
    sign_extend(unsigned_cast(x).to_u128(), N)
}

/// A `Signed<N>` (N <= 128) holding the low `N` bits of `v` (two's complement wrap, as
/// hardware would store it).
pub fn signed_from_i128<const N: usize>(v: i128) -> Signed<N> {
    assert!(N <= 128, "signed_from_i128 supports up to 128 bits, got {N}");
    let raw = (v as u128) & mask(N);
    let mut bits: Bits<N> = Bits::from(raw as u64 & (mask(N.min(64)) as u64));
    for i in 64..N {
        bits = bits.replace_bit(i, (raw >> i) & 1 == 1);
    }
    signed_cast(bits)
}

/// Interprets the low `width` bits of `raw` as a two's-complement number (1 <= width <= 128).
pub fn sign_extend(raw: u128, width: usize) -> i128 {
    assert!((1..=128).contains(&width), "sign_extend: width must be in 1..=128, got {width}");
    let shift = 128 - width;
    ((raw << shift) as i128) >> shift
}

/// The low `width` bits set (width 0..=128).
pub fn mask(width: usize) -> u128 {
    if width >= 128 {
        u128::MAX
    } else {
        (1u128 << width) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s8(v: i8) -> Signed<8> {
        signed_from_i128(v as i128)
    }

    #[test]
    fn casts_handle_the_most_negative_value() {
        assert_eq!(signed_to_i128(signed_bit_cast_s8_to_s16(s8(-128))), -128);
        assert_eq!(signed_to_i128(signed_bit_cast_s8_to_s32(s8(-128))), -128);
        assert_eq!(signed_to_i128(signed_bit_cast_s8_to_s32(s8(127))), 127);
        assert_eq!(signed_to_i128(signed_bit_cast_s8_to_s16(s8(-1))), -1);
        let min16: Signed<16> = signed_from_i128(-32768);
        assert_eq!(signed_to_i128(signed_bit_cast_s16_to_s32(min16)), -32768);
        // Narrowing keeps the low bits, like Verilog assigning to a narrower target.
        let wide: Signed<32> = signed_from_i128(0x1_80);
        assert_eq!(signed_to_i128(signed_bit_cast_fixed::<8, 32>(wide)), -128);
        let wide: Signed<32> = signed_from_i128(-129);
        assert_eq!(signed_to_i128(signed_bit_cast_fixed::<8, 32>(wide)), 127);
        let big: Signed<100> = signed_bit_cast_fixed::<100, 8>(s8(-128));
        assert_eq!(signed_to_i128(big), -128);
    }

    #[test]
    fn multiply_extremes() {
        assert_eq!(signed_to_i128(mul_s8(s8(-128), s8(-128))), 16384);
        assert_eq!(signed_to_i128(mul_s8(s8(-128), s8(127))), -16256);
        assert_eq!(signed_to_i128(mul_s8(s8(127), s8(127))), 16129);
        assert_eq!(signed_to_i128(mul_s8(s8(0), s8(-128))), 0);
        assert_eq!(signed_to_i128(mul_s8(s8(-1), s8(-128))), 128);
    }

    #[test]
    fn conversions_wrap_and_extend() {
        assert_eq!(signed_to_i128(signed_from_i128::<32>(i32::MAX as i128 + 1)), i32::MIN as i128);
        assert_eq!(signed_to_i128(signed_from_i128::<8>(255)), -1);
        assert_eq!(signed_to_i128(signed_from_i128::<128>(i128::MIN)), i128::MIN);
        assert_eq!(signed_to_i128(signed_from_i128::<70>(-5)), -5);
        assert_eq!(sign_extend(0x80, 8), -128);
        assert_eq!(sign_extend(0x7f, 8), 127);
        assert_eq!(sign_extend(u128::MAX, 128), -1);
        assert_eq!(mask(0), 0);
        assert_eq!(mask(8), 0xff);
        assert_eq!(mask(128), u128::MAX);
    }

    /// `dout` is `din` of `depth` cycles ago; a reset clears every stage. Checked in rust-hdl
    /// and in both forms of the Verilog (the generate loop, rust-hdl's per-instance text).
    #[test]
    fn delay_line_delays_and_resets() {
        use crate::replay::{replay, simulate, Port};
        let values: Vec<i8> = vec![-128, 127, 5, -1, 0, 9, -7, 100, 3, 4, -128, 2];
        let reset_at = 8;
        for depth in [1, 3] {
            let stimulus: Vec<Vec<u128>> = values
                .iter()
                .enumerate()
                .map(|(c, &v)| vec![(c == reset_at) as u128, v as u8 as u128])
                .collect();
            let want: Vec<Vec<u128>> = (0..values.len())
                .map(|c| {
                    let src = c.checked_sub(depth).filter(|&t| !(t..c).contains(&reset_at));
                    vec![src.map_or(0, |t| values[t] as u8 as u128)]
                })
                .collect();
            let mut uut = DelayLine::<Signed<8>>::new(depth);
            assert_eq!(uut.depth(), depth);
            let rust = simulate(
                &mut uut,
                |u| &mut u.clock,
                &stimulus,
                |u, r| {
                    u.rst.next = r[0] != 0;
                    u.din.next = signed_from_i128(sign_extend(r[1], 8));
                },
                |u| vec![signed_to_i128(u.dout.val()) as u128 & 0xff],
            )
            .unwrap();
            assert_eq!(rust, want, "rust-hdl, depth {depth}");
            let inputs = [Port::new("rst", 1), Port::new("din", 8)];
            let run = |text: &str| {
                replay(text, "top", "clock", &inputs, &[Port::new("dout", 8)], &stimulus)
                    .unwrap_or_else(|e| panic!("{e}"))
            };
            let text = generate_verilog(&uut);
            assert!(text.contains(&format!("localparam DEPTH = {depth};")) && !text.contains("top$stage$0"));
            assert_eq!(run(&text), want, "Icarus (generate loop), depth {depth}");
            let per_instance = crate::generate::with_per_instance_text(|| generate_verilog(&uut));
            assert!(per_instance.contains("top$stage$0"), "rust-hdl's text");
            assert_eq!(run(&per_instance), want, "Icarus (per-instance), depth {depth}");
        }
    }

    #[test]
    #[should_panic(expected = "DelayLine depth must be at least 1, got 0")]
    fn zero_depth_delay_line_is_rejected() {
        let _ = DelayLine::<Bit>::new(0);
    }

    #[test]
    fn every_int8_pair_multiplies_exactly() {
        for a in i8::MIN..=i8::MAX {
            for b in i8::MIN..=i8::MAX {
                let p = signed_to_i128(mul_s8(s8(a), s8(b)));
                assert_eq!(p, a as i128 * b as i128, "{a} * {b}");
            }
        }
    }

    proptest! {
        #[test]
        fn casts_preserve_value(v in any::<i16>()) {
            let x: Signed<16> = signed_from_i128(v as i128);
            prop_assert_eq!(signed_to_i128(signed_bit_cast_s16_to_s32(x)), v as i128);
            prop_assert_eq!(signed_to_i128(signed_bit_cast_fixed::<8, 16>(x)), v as i8 as i128);
        }
    }
}

/// Zero extension of an `N`-bit value to `M >= N` bits, as a leaf (`o = {{M-N{1'b0}}, i}`).
///
/// rust-hdl emits `bit_cast::<M, N>(x)` as `((x) & M'hMASK)`, which Verilator flags as a WIDTH
/// mismatch (an `N`-bit operand in an `M`-bit AND); this leaf widens without a warning.
#[derive(LogicBlock, Default)]
pub struct Widen<const N: usize, const M: usize> {
    /// Input.
    pub i: Signal<In, Bits<N>>,
    /// `i` zero-extended.
    pub o: Signal<Out, Bits<M>>,
}

impl<const N: usize, const M: usize> Logic for Widen<N, M> {
    fn update(&mut self) {
        assert!(M >= N, "Widen<{N}, {M}> cannot narrow");
        self.o.next = bit_cast::<M, N>(self.i.val());
    }
    fn connect(&mut self) {
        self.o.connect();
    }
    fn hdl(&self) -> Verilog {
        if M == N {
            Verilog::Custom("always @(*) o = i;".into())
        } else {
            Verilog::Custom(format!("always @(*) o = {{{{{}{{1'b0}}}}, i}};", M - N))
        }
    }
}

/// `p = n * k` for a constant `k` fixed when the block is built, as a leaf whose Verilog is a
/// sum of shifted copies of `n` (one per set bit of `k`): adders only, so Yosys never spends a
/// DSP block on it (a `$mul` would take an SB_MAC16, and the iCE40 UP5K has eight).
#[derive(LogicBlock)]
pub struct ConstMul {
    /// The variable factor.
    pub n: Signal<In, Bits<16>>,
    /// `n * k` (fits 32 bits for `k < 65536`).
    pub p: Signal<Out, Bits<32>>,
    _k: u16,
}

impl ConstMul {
    /// A multiplier by `k`.
    pub fn new(k: u16) -> Self {
        ConstMul { n: Default::default(), p: Default::default(), _k: k }
    }
}

impl Logic for ConstMul {
    fn update(&mut self) {
        self.p.next = (self.n.val().to_u64() * u64::from(self._k)).into();
    }
    fn connect(&mut self) {
        self.p.connect();
    }
    fn hdl(&self) -> Verilog {
        let terms: Vec<String> =
            (0..16).filter(|b| self._k >> b & 1 == 1).map(|b| format!("({{16'd0, n}} << {b})")).collect();
        let sum = if terms.is_empty() { "32'd0".to_string() } else { terms.join(" + ") };
        Verilog::Custom(format!("// n * {}\nalways @(*) p = {sum};", self._k))
    }
}
