//! The header decoder: what a header word says (combinational), for the front end's Header
//! state. The opcode and the 24-bit length, whether the opcode is known, whether the length is
//! the one the opcode takes for this DIM ([`spec::isa::check_header`]'s rule: a fixed length,
//! SET_QUANT 1 or 2 words, WRITE_ACT any but 0 — its row count is checked against the length
//! once payload word 0 arrives), and the classes the front end branches on.
//!
//! ```text
//!  word[31:24] ─► op ─► 13 opcode compares ─► known, is_*
//!  word[23:0]  ─► len ─► == 0, 1, 2, DIM·⌈DIM/4⌉, DIM ─┴─► len_ok
//! ```
//!
//! The native model decodes with `spec::isa::check_header` itself (`sim/src/native/mod.rs`,
//! Header); the test below holds this block to that function for every opcode.

use rust_hdl::prelude::*;
use spec::isa::opcode;

/// The header decoder (see the module docs).
#[derive(LogicBlock)]
pub struct HeaderDecoder {
    /// The word the front end would take as a header.
    pub word: Signal<In, Bits<32>>,
    /// Opcode (bits 31:24).
    pub op: Signal<Out, Bits<8>>,
    /// Payload length in words (bits 23:0).
    pub len: Signal<Out, Bits<24>>,
    /// The opcode is one the core executes (else: error code 1).
    pub known: Signal<Out, Bit>,
    /// The length is one the opcode takes (else, for a known opcode: error code 2).
    pub len_ok: Signal<Out, Bit>,
    /// `len == 0` (a refused command then has no payload to skip).
    pub len0: Signal<Out, Bit>,
    /// `len == 2` (SET_QUANT with a zero point).
    pub len2: Signal<Out, Bit>,
    /// INFO: answered right away.
    pub is_info: Signal<Out, Bit>,
    /// COUNTERS: waits for the array, then answers.
    pub is_counters: Signal<Out, Bit>,
    /// LOAD_WEIGHTS: payload rows into the shadow bank.
    pub is_load_weights: Signal<Out, Bit>,
    /// LOAD_BIAS: DIM payload words into the bias registers.
    pub is_load_bias: Signal<Out, Bit>,
    /// LOAD_QUANT: DIM payload words into the row buffer (contract v2).
    pub is_load_quant: Signal<Out, Bit>,

    is_sync: Signal<Local, Bit>,
    is_set_quant: Signal<Local, Bit>,
    is_read_act: Signal<Local, Bit>,
    is_read_acc: Signal<Local, Bit>,
    is_matmul: Signal<Local, Bit>,
    is_activate: Signal<Local, Bit>,
    is_load_tile: Signal<Local, Bit>,
    is_write_act: Signal<Local, Bit>,
    len1: Signal<Local, Bit>,
    len_w: Signal<Local, Bit>,
    len_b: Signal<Local, Bit>,
    c_op_info: Constant<Bits<8>>,
    c_op_counters: Constant<Bits<8>>,
    c_op_sync: Constant<Bits<8>>,
    c_op_set_quant: Constant<Bits<8>>,
    c_op_read_act: Constant<Bits<8>>,
    c_op_read_acc: Constant<Bits<8>>,
    c_op_matmul: Constant<Bits<8>>,
    c_op_activate: Constant<Bits<8>>,
    c_op_load_weights: Constant<Bits<8>>,
    c_op_load_bias: Constant<Bits<8>>,
    c_op_load_quant: Constant<Bits<8>>,
    c_op_load_tile: Constant<Bits<8>>,
    c_op_write_act: Constant<Bits<8>>,
    c_len0: Constant<Bits<24>>,
    c_len1: Constant<Bits<24>>,
    c_len2: Constant<Bits<24>>,
    /// LOAD_WEIGHTS' length: DIM rows of ⌈DIM/4⌉ words.
    c_len_weights: Constant<Bits<24>>,
    /// LOAD_BIAS' and LOAD_QUANT's length: DIM words.
    c_len_bias: Constant<Bits<24>>,
}

impl HeaderDecoder {
    /// The decoder for an array of `dim` x `dim` PEs.
    pub fn new(dim: usize) -> Self {
        let op = |o: u8| Constant::new(u64::from(o).into());
        let len = |n: usize| Constant::new((n as u64).into());
        HeaderDecoder {
            word: Default::default(),
            op: Default::default(),
            len: Default::default(),
            known: Default::default(),
            len_ok: Default::default(),
            len0: Default::default(),
            len2: Default::default(),
            is_info: Default::default(),
            is_counters: Default::default(),
            is_load_weights: Default::default(),
            is_load_bias: Default::default(),
            is_load_quant: Default::default(),
            is_sync: Default::default(),
            is_set_quant: Default::default(),
            is_read_act: Default::default(),
            is_read_acc: Default::default(),
            is_matmul: Default::default(),
            is_activate: Default::default(),
            is_load_tile: Default::default(),
            is_write_act: Default::default(),
            len1: Default::default(),
            len_w: Default::default(),
            len_b: Default::default(),
            c_op_info: op(opcode::INFO),
            c_op_counters: op(opcode::COUNTERS),
            c_op_sync: op(opcode::SYNC),
            c_op_set_quant: op(opcode::SET_QUANT),
            c_op_read_act: op(opcode::READ_ACT),
            c_op_read_acc: op(opcode::READ_ACC),
            c_op_matmul: op(opcode::MATMUL),
            c_op_activate: op(opcode::ACTIVATE),
            c_op_load_weights: op(opcode::LOAD_WEIGHTS),
            c_op_load_bias: op(opcode::LOAD_BIAS),
            c_op_load_quant: op(opcode::LOAD_QUANT),
            c_op_load_tile: op(opcode::LOAD_TILE),
            c_op_write_act: op(opcode::WRITE_ACT),
            c_len0: len(0),
            c_len1: len(1),
            c_len2: len(2),
            c_len_weights: len(dim * dim.div_ceil(4)),
            c_len_bias: len(dim),
        }
    }
}

impl Logic for HeaderDecoder {
    #[hdl_gen]
    fn update(&mut self) {
        self.op.next = self.word.val().get_bits::<8>(24);
        self.len.next = self.word.val().get_bits::<24>(0);
        self.is_info.next = self.op.val() == self.c_op_info.val();
        self.is_counters.next = self.op.val() == self.c_op_counters.val();
        self.is_sync.next = self.op.val() == self.c_op_sync.val();
        self.is_set_quant.next = self.op.val() == self.c_op_set_quant.val();
        self.is_read_act.next = self.op.val() == self.c_op_read_act.val();
        self.is_read_acc.next = self.op.val() == self.c_op_read_acc.val();
        self.is_matmul.next = self.op.val() == self.c_op_matmul.val();
        self.is_activate.next = self.op.val() == self.c_op_activate.val();
        self.is_load_weights.next = self.op.val() == self.c_op_load_weights.val();
        self.is_load_bias.next = self.op.val() == self.c_op_load_bias.val();
        self.is_load_quant.next = self.op.val() == self.c_op_load_quant.val();
        self.is_load_tile.next = self.op.val() == self.c_op_load_tile.val();
        self.is_write_act.next = self.op.val() == self.c_op_write_act.val();
        self.len0.next = self.len.val() == self.c_len0.val();
        self.len1.next = self.len.val() == self.c_len1.val();
        self.len2.next = self.len.val() == self.c_len2.val();
        self.len_w.next = self.len.val() == self.c_len_weights.val();
        self.len_b.next = self.len.val() == self.c_len_bias.val();
        self.known.next = self.is_info.val()
            || self.is_counters.val()
            || self.is_sync.val()
            || self.is_set_quant.val()
            || self.is_read_act.val()
            || self.is_read_acc.val()
            || self.is_matmul.val()
            || self.is_activate.val()
            || self.is_load_weights.val()
            || self.is_load_bias.val()
            || self.is_load_quant.val()
            || self.is_load_tile.val()
            || self.is_write_act.val();
        self.len_ok.next = ((self.is_info.val() || self.is_counters.val()) && self.len0.val())
            || ((self.is_sync.val()
                || self.is_set_quant.val()
                || self.is_read_act.val()
                || self.is_read_acc.val()
                || self.is_load_tile.val())
                && self.len1.val())
            || ((self.is_matmul.val() || self.is_activate.val() || self.is_set_quant.val())
                && self.len2.val())
            || (self.is_load_weights.val() && self.len_w.val())
            || ((self.is_load_bias.val() || self.is_load_quant.val()) && self.len_b.val())
            || (self.is_write_act.val() && !self.len0.val());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::replay::{replay, simulate, Port};
    use spec::isa::{check_header, header, ErrorCode};
    use spec::rng::SplitMix64;

    /// The decoder with a clock, for the test harnesses (which clock every cycle).
    #[derive(LogicBlock)]
    struct Clocked {
        clock: Signal<In, Clock>,
        word: Signal<In, Bits<32>>,
        known: Signal<Out, Bit>,
        len_ok: Signal<Out, Bit>,
        flags: Signal<Out, Bits<7>>,
        dec: HeaderDecoder,
    }

    impl Logic for Clocked {
        #[hdl_gen]
        fn update(&mut self) {
            self.dec.word.next = self.word.val();
            self.known.next = self.dec.known.val();
            self.len_ok.next = self.dec.len_ok.val();
            self.flags.next = bit_cast::<7, 1>(self.dec.len0.val().into())
                | (bit_cast::<7, 1>(self.dec.len2.val().into()) << 1)
                | (bit_cast::<7, 1>(self.dec.is_info.val().into()) << 2)
                | (bit_cast::<7, 1>(self.dec.is_counters.val().into()) << 3)
                | (bit_cast::<7, 1>(self.dec.is_load_weights.val().into()) << 4)
                | (bit_cast::<7, 1>(self.dec.is_load_bias.val().into()) << 5)
                | (bit_cast::<7, 1>(self.dec.is_load_quant.val().into()) << 6);
        }
    }

    /// What `spec` says of `word`: known, length ok, the flags as `Clocked::flags` packs them.
    fn reference(word: u32, cfg: &spec::Config) -> Vec<u128> {
        let (op, len) = spec::isa::split_header(word);
        let verdict = check_header(op, len, cfg);
        let known = verdict != Err(ErrorCode::UnknownOpcode);
        let flags = [
            len == 0,
            len == 2,
            op == opcode::INFO,
            op == opcode::COUNTERS,
            op == opcode::LOAD_WEIGHTS,
            op == opcode::LOAD_BIAS,
            op == opcode::LOAD_QUANT,
        ]
        .iter()
        .enumerate()
        .fold(0u128, |acc, (i, &f)| acc | (u128::from(f) << i));
        vec![u128::from(known), u128::from(verdict.is_ok()), flags]
    }

    /// Every opcode with the lengths that matter (0, 1, 2, 3, DIM, DIM·⌈DIM/4⌉ and their
    /// neighbours, the largest) and random words.
    fn words(dim: usize, seed: u64) -> Vec<u32> {
        let w = (dim * dim.div_ceil(4)) as u32;
        let d = dim as u32;
        let lens = [0, 1, 2, 3, d - 1, d, d + 1, w - 1, w, w + 1, 0xFF_FFFF];
        let mut out: Vec<u32> =
            (0..=255u8).flat_map(|op| lens.iter().map(move |&n| header(op, n & 0xFF_FFFF))).collect();
        let mut rng = SplitMix64::new(seed);
        out.extend((0..500).map(|_| rng.next_u64() as u32));
        out
    }

    #[test]
    fn header_decoder_matches_spec_in_rust_and_verilog() {
        for dim in [1usize, 2, 3, 4, 8, 16] {
            let cfg = spec::Config::new(dim, 64, 64).unwrap();
            let ws = words(dim, 0xdec0 + dim as u64);
            let want: Vec<Vec<u128>> = ws.iter().map(|&w| reference(w, &cfg)).collect();
            let stim: Vec<Vec<u128>> = ws.iter().map(|&w| vec![u128::from(w)]).collect();
            let mut uut = Clocked {
                clock: Default::default(),
                word: Default::default(),
                known: Default::default(),
                len_ok: Default::default(),
                flags: Default::default(),
                dec: HeaderDecoder::new(dim),
            };
            let got = simulate(
                &mut uut,
                |u| &mut u.clock,
                &stim,
                |u, s| u.word.next = (s[0] as u64).into(),
                |u| {
                    vec![
                        u128::from(u.known.val()),
                        u128::from(u.len_ok.val()),
                        u.flags.val().to_u64() as u128,
                    ]
                },
            )
            .unwrap();
            assert_eq!(got, want, "rust-hdl, DIM {dim}");
            let inputs = [Port::new("word", 32)];
            let outputs = [Port::new("known", 1), Port::new("len_ok", 1), Port::new("flags", 7)];
            // Icarus may start an `always @(*)` after the test bench set the inputs at time 0,
            // leaving the outputs x until the inputs first change: a lead-in cycle, not compared
            let lead_in: Vec<Vec<u128>> =
                std::iter::once(vec![0x5A5A_5A5A]).chain(stim.iter().cloned()).collect();
            let rtl = replay(&generate_verilog(&uut), "top", "clock", &inputs, &outputs, &lead_in).unwrap();
            assert_eq!(rtl[1..], want[..], "Verilog, DIM {dim}");
        }
    }

    #[test]
    fn header_decoder_is_synthesizable() {
        let mut uut = HeaderDecoder::new(8);
        uut.connect_all();
        yosys_validate("header_decoder", &generate_verilog(&uut)).unwrap();
    }
}
