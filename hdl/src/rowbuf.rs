//! The row buffer: the one place where 32-bit stream words meet DIM-wide rows.
//!
//! ```text
//!                       word_idx
//!                          │
//!   word_in[32] ──► [ byte 0 | byte 1 | ... | byte 4*DIM-1 ] ──► word_out[32] (word word_idx)
//!   word_we     ──►   word j = bytes 4j .. 4j+3 (little-endian)
//!   row8_in[DIM] ─►   load8:  byte i <= row8_in[i] (i < DIM), 0 above   ──► row8_out[DIM]
//!   row32_in[DIM]─►   load32: word i <= row32_in[i]                   ──► quant_out[DIM]
//! ```
//!
//! An int8 row (`ceil(DIM/4)` words, element `i` in byte `i`) and an int32 row (DIM words,
//! element `i` in word `i`) share the same bytes, so one buffer serves LOAD_WEIGHTS and
//! WRITE_ACT (words in, row out), READ_ACT (row in, words out) and READ_ACC (int32 row in,
//! words out). Writes happen on the rising edge; `word_out` is a combinational mux of the
//! registers. Precedence when several strobes are high: `load32`, then `load8`, then `word_we`.
//!
//! **LANES > 1** (docs/design.md "A wider link: LANES"): `word_idx` is a *beat* index and the
//! ports carry a beat: `word_in` and `lanes_in[j]` are words `b·LANES` and `b·LANES + j + 1`
//! of beat `b = word_idx`, all written on `word_we` (words past the buffer's DIM are dropped);
//! `word_out` and `lanes_out[j]` are those words of the buffer (0 past DIM). At LANES 1 the
//! beat is the word, the lane vectors are empty and the block (and its Verilog) is the one
//! of the 32-bit link, text for text.
//!
//! The emitted Verilog is a generate loop over the 4 * DIM byte registers ([`crate::generate`];
//! `bytes[i].q` is byte i, rust-hdl's flip-flop `bytes$i`), a few lines per element of a row
//! port; rust-hdl's own text, one flip-flop module per byte and every loop unrolled, is the
//! per-instance form it is checked against.

use rust_hdl::prelude::*;

use crate::generate::{concat, generate_loop_block, split};

/// DIM-wide row buffer (see the module docs).
pub struct RowBuffer {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Write `word_in` into word `word_idx` on the next edge.
    pub word_we: Signal<In, Bit>,
    /// Word index for `word_we` and `word_out` (0 .. DIM words).
    pub word_idx: Signal<In, Bits<16>>,
    /// The word to write.
    pub word_in: Signal<In, Bits<32>>,
    /// Word `word_idx` of the buffer.
    pub word_out: Signal<Out, Bits<32>>,
    /// Load an int8 row (bytes `0..DIM`; the bytes above become 0).
    pub load8: Signal<In, Bit>,
    /// The int8 row for `load8`.
    pub row8_in: Vec<Signal<In, Bits<8>>>,
    /// Load an int32 row (word `i` = element `i`).
    pub load32: Signal<In, Bit>,
    /// The int32 row for `load32`.
    pub row32_in: Vec<Signal<In, Bits<32>>>,
    /// Bytes `0..DIM` as an int8 row.
    pub row8_out: Vec<Signal<Out, Bits<8>>>,
    /// Bits 21:0 of words `0..DIM`: LOAD_QUANT's per-column M (15:0) and S (21:16).
    pub quant_out: Vec<Signal<Out, Bits<22>>>,
    /// LANES > 1: words 1..LANES of the beat to write (empty at LANES 1).
    pub lanes_in: Vec<Signal<In, Bits<32>>>,
    /// LANES > 1: words 1..LANES of beat `word_idx` (empty at LANES 1).
    pub lanes_out: Vec<Signal<Out, Bits<32>>>,
    bytes: Vec<DFF<Bits<8>>>,
    pack: Vec<Pack4>,
    // the beat of word j (j at LANES 1)
    word_index: Vec<Constant<Bits<16>>>,
    zero8: Constant<Bits<8>>,
    zero32: Constant<Bits<32>>,
    // LANES > 1: the beat's words in and out, lane 0 included (empty at LANES 1)
    beat_in: Vec<Signal<Local, Bits<32>>>,
    beat_out: Vec<Signal<Local, Bits<32>>>,
    // `for ll in _lanes_lo.._lanes_hi`: one pass with ll = LANES at LANES > 1, none at LANES 1
    // (the LANES > 1 logic, which so emits no text at LANES 1)
    _lanes_lo: usize,
    _lanes_hi: usize,
}

impl RowBuffer {
    /// A buffer for rows of `dim` elements (4 * dim bytes), one word per beat.
    pub fn new(dim: usize) -> Self {
        Self::with_lanes(dim, 1)
    }

    /// A buffer for rows of `dim` elements with beats of `lanes` words (see the module docs).
    pub fn with_lanes(dim: usize, lanes: usize) -> Self {
        assert!(dim >= 1, "RowBuffer needs DIM >= 1");
        assert!(lanes.is_power_of_two(), "RowBuffer needs LANES a power of two");
        let wide = |n: usize| if lanes > 1 { n } else { 0 };
        RowBuffer {
            clock: Default::default(),
            word_we: Default::default(),
            word_idx: Default::default(),
            word_in: Default::default(),
            word_out: Default::default(),
            load8: Default::default(),
            row8_in: (0..dim).map(|_| Default::default()).collect(),
            load32: Default::default(),
            row32_in: (0..dim).map(|_| Default::default()).collect(),
            row8_out: (0..dim).map(|_| Default::default()).collect(),
            quant_out: (0..dim).map(|_| Default::default()).collect(),
            bytes: (0..4 * dim).map(|_| Default::default()).collect(),
            pack: (0..dim).map(|_| Default::default()).collect(),
            lanes_in: (0..lanes - 1).map(|_| Default::default()).collect(),
            lanes_out: (0..lanes - 1).map(|_| Default::default()).collect(),
            word_index: (0..dim).map(|j| Constant::new(((j / lanes) as u64).into())).collect(),
            zero8: Constant::new(0u64.into()),
            zero32: Constant::new(0u64.into()),
            beat_in: (0..wide(lanes)).map(|_| Default::default()).collect(),
            beat_out: (0..wide(lanes)).map(|_| Default::default()).collect(),
            _lanes_lo: if lanes > 1 { lanes } else { 1 },
            _lanes_hi: if lanes > 1 { lanes + 1 } else { 1 },
        }
    }

    /// Words per beat.
    pub fn lanes(&self) -> usize {
        self.lanes_in.len() + 1
    }
}

// `#[hdl_gen]` needs index loops: loop bounds are evaluated when Verilog is emitted, and
// indices may be arithmetic on loop variables only. The generated `update`, `connect` and `hdl`
// are inherent; `generate_loop_block!` chooses between this `hdl` (the per-instance form) and
// the generate loop.
#[allow(clippy::needless_range_loop)]
impl RowBuffer {
    #[hdl_gen]
    fn update(&mut self) {
        for i in 0..self.bytes.len() {
            self.bytes[i].clock.next = self.clock.val();
            self.bytes[i].d.next = self.bytes[i].q.val();
        }
        for i in 0..self.row8_out.len() {
            self.row8_out[i].next = self.bytes[i].q.val();
        }
        for j in 0..self.pack.len() {
            self.pack[j].b0.next = self.bytes[4 * j].q.val();
            self.pack[j].b1.next = self.bytes[4 * j + 1].q.val();
            self.pack[j].b2.next = self.bytes[4 * j + 2].q.val();
            self.pack[j].b3.next = self.bytes[4 * j + 3].q.val();
            self.quant_out[j].next = self.pack[j].word.val().get_bits::<22>(0);
        }
        self.word_out.next = self.zero32.val();
        for j in 0..self.word_index.len() {
            if self.word_idx.val() == self.word_index[j].val() {
                self.word_out.next = self.pack[j].word.val();
                if self.word_we.val() {
                    self.bytes[4 * j].d.next = self.word_in.val().get_bits::<8>(0);
                    self.bytes[4 * j + 1].d.next = self.word_in.val().get_bits::<8>(8);
                    self.bytes[4 * j + 2].d.next = self.word_in.val().get_bits::<8>(16);
                    self.bytes[4 * j + 3].d.next = self.word_in.val().get_bits::<8>(24);
                }
            }
        }
        // LANES > 1: word j is lane j % LANES of beat j / LANES
        for ll in self._lanes_lo..self._lanes_hi {
            self.beat_in[0].next = self.word_in.val();
            for j in 0..self.lanes_in.len() {
                self.beat_in[j + 1].next = self.lanes_in[j].val();
            }
            for j in 0..self.beat_out.len() {
                self.beat_out[j].next = self.zero32.val();
            }
            for j in 0..self.word_index.len() {
                if self.word_idx.val() == self.word_index[j].val() {
                    self.beat_out[j % ll].next = self.pack[j].word.val();
                    if self.word_we.val() {
                        self.bytes[4 * j].d.next = self.beat_in[j % ll].val().get_bits::<8>(0);
                        self.bytes[4 * j + 1].d.next = self.beat_in[j % ll].val().get_bits::<8>(8);
                        self.bytes[4 * j + 2].d.next = self.beat_in[j % ll].val().get_bits::<8>(16);
                        self.bytes[4 * j + 3].d.next = self.beat_in[j % ll].val().get_bits::<8>(24);
                    }
                }
            }
            self.word_out.next = self.beat_out[0].val();
            for j in 0..self.lanes_out.len() {
                self.lanes_out[j].next = self.beat_out[j + 1].val();
            }
        }
        if self.load8.val() {
            for i in 0..self.bytes.len() {
                self.bytes[i].d.next = self.zero8.val();
            }
            for i in 0..self.row8_in.len() {
                self.bytes[i].d.next = self.row8_in[i].val();
            }
        }
        if self.load32.val() {
            for i in 0..self.row32_in.len() {
                self.bytes[4 * i].d.next = self.row32_in[i].val().get_bits::<8>(0);
                self.bytes[4 * i + 1].d.next = self.row32_in[i].val().get_bits::<8>(8);
                self.bytes[4 * i + 2].d.next = self.row32_in[i].val().get_bits::<8>(16);
                self.bytes[4 * i + 3].d.next = self.row32_in[i].val().get_bits::<8>(24);
            }
        }
    }
}

impl RowBuffer {
    /// The body as a generate loop over the byte registers; same behaviour as `update`.
    fn generate_loop_verilog(&self) -> Verilog {
        if self.lanes() > 1 {
            return self.generate_loop_verilog_lanes();
        }
        let d = self.row8_out.len();
        let mut code = format!(
            "\
// The row buffer: 4*DIM byte registers in a generate loop; bytes[i].q is byte i (hdl::rowbuf).
localparam DIM = {d};
// The row ports as vectors, element i at bits [W*i +: W]; the buffer, byte i at [8*i +: 8].
wire [8*DIM-1:0] row8_row;
wire [32*DIM-1:0] row32_row;
wire [32*DIM-1:0] buffer;
assign row8_row = {row8};
assign row32_row = {row32};
",
            row8 = concat("row8_in", d),
            row32 = concat("row32_in", d),
        );
        code.push_str(&split("row8_out", "buffer", 8, d));
        for j in 0..d {
            code.push_str(&format!("assign quant_out${j} = buffer[{} +: 22];\n", 32 * j));
        }
        code.push_str(
            "\
genvar i;
generate
    for (i = 0; i < 4*DIM; i = i + 1) begin : bytes
        localparam [15:0] WORD = i / 4;
        reg [7:0] q;
        initial begin
            q = 8'h0;
        end
        // load8's value: the row's byte, 0 above the row
        wire [7:0] row8_byte;
        if (i < DIM) begin : in_row
            assign row8_byte = row8_row[8*i +: 8];
        end else begin : above_row
            assign row8_byte = 8'h0;
        end
        always @(posedge clock) begin
            if (load32) q <= row32_row[8*i +: 8];
            else if (load8) q <= row8_byte;
            else if (word_we && (word_idx == WORD)) q <= word_in[8*(i%4) +: 8];
        end
        assign buffer[8*i +: 8] = q;
    end
    // word_out: word word_idx of the buffer, 0 past the last word
    for (i = 0; i < DIM; i = i + 1) begin : words
        localparam [15:0] INDEX = i;
        wire [31:0] out;
        if (i == 0) begin : first
            assign out = (word_idx == INDEX) ? buffer[31:0] : 32'h0;
        end else begin : next
            assign out = (word_idx == INDEX) ? buffer[32*i +: 32] : words[i - 1].out;
        end
    end
endgenerate
assign word_out = words[DIM - 1].out;
",
        );
        Verilog::Wrapper(Wrapper { code, cores: String::new() })
    }
}

impl RowBuffer {
    /// The generate loop at LANES > 1: byte i is byte i % 4 of lane (i / 4) % LANES of beat
    /// i / 4 / LANES; the read port muxes whole beats.
    fn generate_loop_verilog_lanes(&self) -> Verilog {
        let d = self.row8_out.len();
        let l = self.lanes();
        let nb = d.div_ceil(l);
        let pad = 32 * (l * nb - d);
        let beats_vec = if pad > 0 { format!("{{{{{pad}{{1'b0}}}}, buffer}}") } else { "buffer".into() };
        let lanes_in: Vec<String> = (0..l - 1).rev().map(|j| format!("lanes_in${j}")).collect();
        let lanes_out: Vec<String> = (0..l - 1).rev().map(|j| format!("lanes_out${j}")).collect();
        let mut code = format!(
            "\
// The row buffer: 4*DIM byte registers in a generate loop; bytes[i].q is byte i (hdl::rowbuf),
// beats of LANES words: word w is lane w % LANES of beat w / LANES.
localparam DIM = {d};
localparam LANES = {l};
localparam BEATS = {nb};
// The row ports as vectors, element i at bits [W*i +: W]; the buffer, byte i at [8*i +: 8];
// the beat in, lane j at [32*j +: 32]; the buffer as BEATS beats, zero past DIM words.
wire [8*DIM-1:0] row8_row;
wire [32*DIM-1:0] row32_row;
wire [32*DIM-1:0] buffer;
wire [32*LANES-1:0] beat_row;
wire [32*LANES*BEATS-1:0] beats_row;
assign row8_row = {row8};
assign row32_row = {row32};
assign beat_row = {{{lanes_in}, word_in}};
assign beats_row = {beats_vec};
",
            row8 = concat("row8_in", d),
            row32 = concat("row32_in", d),
            lanes_in = lanes_in.join(", "),
        );
        code.push_str(&split("row8_out", "buffer", 8, d));
        for j in 0..d {
            code.push_str(&format!("assign quant_out${j} = buffer[{} +: 22];\n", 32 * j));
        }
        code.push_str(&format!(
            "\
genvar i;
generate
    for (i = 0; i < 4*DIM; i = i + 1) begin : bytes
        localparam [15:0] BEAT = i / 4 / LANES;
        localparam LANE = (i / 4) % LANES;
        reg [7:0] q;
        initial begin
            q = 8'h0;
        end
        // load8's value: the row's byte, 0 above the row
        wire [7:0] row8_byte;
        if (i < DIM) begin : in_row
            assign row8_byte = row8_row[8*i +: 8];
        end else begin : above_row
            assign row8_byte = 8'h0;
        end
        always @(posedge clock) begin
            if (load32) q <= row32_row[8*i +: 8];
            else if (load8) q <= row8_byte;
            else if (word_we && (word_idx == BEAT)) q <= beat_row[32*LANE + 8*(i%4) +: 8];
        end
        assign buffer[8*i +: 8] = q;
    end
    // the beat out: beat word_idx of the buffer, 0 past the last beat
    for (i = 0; i < BEATS; i = i + 1) begin : beats
        localparam [15:0] INDEX = i;
        wire [32*LANES-1:0] out;
        if (i == 0) begin : first
            assign out = (word_idx == INDEX) ? beats_row[32*LANES-1:0] : {{(32*LANES){{1'b0}}}};
        end else begin : next
            assign out = (word_idx == INDEX) ? beats_row[32*LANES*i +: 32*LANES] : beats[i - 1].out;
        end
    end
endgenerate
assign {{{lanes_out}, word_out}} = beats[BEATS - 1].out;
",
            lanes_out = lanes_out.join(", "),
        ));
        Verilog::Wrapper(Wrapper { code, cores: String::new() })
    }
}

generate_loop_block!(RowBuffer;
    ports: clock, word_we, word_idx, word_in, word_out, load8, row8_in, load32, row32_in, row8_out, quant_out,
        lanes_in, lanes_out;
    inner: bytes, pack, word_index, zero8, zero32, beat_in, beat_out);

/// Four bytes to a little-endian word: `word = {b3, b2, b1, b0}`. A leaf, because rust-hdl
/// cannot emit `bit_cast` of a loop-indexed signal (it evaluates the call when emitting).
#[derive(LogicBlock, Default)]
pub struct Pack4 {
    /// Bits 7:0.
    pub b0: Signal<In, Bits<8>>,
    /// Bits 15:8.
    pub b1: Signal<In, Bits<8>>,
    /// Bits 23:16.
    pub b2: Signal<In, Bits<8>>,
    /// Bits 31:24.
    pub b3: Signal<In, Bits<8>>,
    /// The word.
    pub word: Signal<Out, Bits<32>>,
}

impl Logic for Pack4 {
    fn update(&mut self) {
        let b = |x: Bits<8>| x.to_u64();
        self.word.next =
            (b(self.b0.val()) | b(self.b1.val()) << 8 | b(self.b2.val()) << 16 | b(self.b3.val()) << 24)
                .into();
    }
    fn connect(&mut self) {
        self.word.connect();
    }
    fn hdl(&self) -> Verilog {
        Verilog::Custom("always @(*) word = {b3, b2, b1, b0};".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::with_per_instance_text;
    use crate::replay::{replay, simulate, verilator_lint, Port};

    /// Stimulus columns: word_we, word_idx, word_in, load8, load32, row8_in[..], row32_in[..].
    fn ports(dim: usize) -> (Vec<Port>, Vec<Port>) {
        let mut inputs = vec![
            Port::new("word_we", 1),
            Port::new("word_idx", 16),
            Port::new("word_in", 32),
            Port::new("load8", 1),
            Port::new("load32", 1),
        ];
        inputs.extend(Port::vec("row8_in", dim, 8));
        inputs.extend(Port::vec("row32_in", dim, 32));
        let mut outputs = vec![Port::new("word_out", 32)];
        outputs.extend(Port::vec("row8_out", dim, 8));
        (inputs, outputs)
    }

    fn rust_run(dim: usize, stim: &[Vec<u128>]) -> Vec<Vec<u128>> {
        let mut uut = RowBuffer::new(dim);
        simulate(
            &mut uut,
            |u| &mut u.clock,
            stim,
            |u, s| {
                u.word_we.next = s[0] != 0;
                u.word_idx.next = (s[1] as u64).into();
                u.word_in.next = (s[2] as u64).into();
                u.load8.next = s[3] != 0;
                u.load32.next = s[4] != 0;
                for i in 0..dim {
                    u.row8_in[i].next = (s[5 + i] as u64).into();
                    u.row32_in[i].next = (s[5 + dim + i] as u64).into();
                }
            },
            |u| {
                let mut v = vec![u.word_out.val().to_u64() as u128];
                v.extend(u.row8_out.iter().map(|s| s.val().to_u64() as u128));
                v
            },
        )
        .unwrap()
    }

    /// A reference model of the buffer: 4*dim bytes.
    fn reference(dim: usize, stim: &[Vec<u128>]) -> Vec<Vec<u128>> {
        let mut bytes = vec![0u8; 4 * dim];
        let mut out = Vec::new();
        for s in stim {
            let idx = s[1] as usize;
            let word = if idx < dim {
                u32::from_le_bytes(bytes[4 * idx..4 * idx + 4].try_into().unwrap())
            } else {
                0
            };
            let mut v = vec![word as u128];
            v.extend(bytes[..dim].iter().map(|&b| b as u128));
            out.push(v);
            if s[4] != 0 {
                for i in 0..dim {
                    bytes[4 * i..4 * i + 4].copy_from_slice(&(s[5 + dim + i] as u32).to_le_bytes());
                }
            } else if s[3] != 0 {
                bytes.iter_mut().for_each(|b| *b = 0);
                for i in 0..dim {
                    bytes[i] = s[5 + i] as u8;
                }
            } else if s[0] != 0 && idx < dim {
                bytes[4 * idx..4 * idx + 4].copy_from_slice(&(s[2] as u32).to_le_bytes());
            }
        }
        out
    }

    fn stimulus(dim: usize, cycles: usize, seed: u64) -> Vec<Vec<u128>> {
        let mut x = seed;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..cycles)
            .map(|_| {
                let r = rnd();
                let mut s = vec![
                    (r & 1) as u128,
                    ((r >> 8) % (dim as u64 + 2)) as u128,
                    (rnd() & 0xffff_ffff) as u128,
                    ((r >> 20) % 7 == 0) as u128,
                    ((r >> 24) % 9 == 0) as u128,
                ];
                s.extend((0..dim).map(|_| (rnd() & 0xff) as u128));
                s.extend((0..dim).map(|_| (rnd() & 0xffff_ffff) as u128));
                s
            })
            .collect()
    }

    #[test]
    fn row_buffer_matches_reference_in_rust_and_verilog() {
        for dim in [1usize, 2, 3, 5] {
            let stim = stimulus(dim, 120, 0x9e37_79b9 + dim as u64);
            let want = reference(dim, &stim);
            assert_eq!(rust_run(dim, &stim), want, "rust-hdl, DIM {dim}");
            let (inputs, outputs) = ports(dim);
            let text = || {
                let mut uut = RowBuffer::new(dim);
                uut.connect_all();
                generate_verilog(&uut)
            };
            let rtl = replay(&text(), "top", "clock", &inputs, &outputs, &stim).unwrap();
            assert_eq!(rtl, want, "Verilog (generate loop), DIM {dim}");
            let per_instance = with_per_instance_text(text);
            assert!(per_instance.contains("top$bytes$0"), "DIM {dim}: rust-hdl's text");
            let rtl = replay(&per_instance, "top", "clock", &inputs, &outputs, &stim).unwrap();
            assert_eq!(rtl, want, "Verilog (per-instance), DIM {dim}");
        }
    }

    #[test]
    fn row_buffer_is_synthesizable() {
        let mut uut = RowBuffer::new(3);
        uut.connect_all();
        yosys_validate("row_buffer", &generate_verilog(&uut)).unwrap();
    }

    /// `verilator -Wall` on the generate loop finds nothing but the file-name convention.
    #[test]
    fn row_buffer_verilog_lints_clean() {
        for dim in [1usize, 3, 8] {
            let mut uut = RowBuffer::new(dim);
            uut.connect_all();
            let found: Vec<String> = verilator_lint(&generate_verilog(&uut), "top")
                .unwrap()
                .into_iter()
                .filter(|w| w.code != "DECLFILENAME")
                .map(|w| format!("{}: {}", w.code, w.message))
                .collect();
            assert_eq!(found, Vec::<String>::new(), "DIM {dim}");
        }
    }
}
