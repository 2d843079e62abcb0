//! The output end of the columns: per column, the bias register, the quantisation registers
//! (M[n], S[n]) and the activation unit; DIM of them in [`Columns`], one generate loop in the
//! emitted Verilog.
//!
//! ```text
//!   word (the stream word), bias_we + bias_idx          qs_we (SET_QUANT: M, S from word)
//!            │                                            ql_we (LOAD_QUANT: M[n], S[n] from quant[n])
//!            ▼                                                      │
//!   ┌─ Column n ───────────────────────────────────────────────────┼────────────┐
//!   │  bias [32] ◄─ word, if bias_we && bias_idx == n    M [16], S [6] ◄────────┘
//!   │     │                                                 │        ──► mult[n], shift[n]
//!   │     ▼                                                 ▼
//!   │  acc[n] ──► ActivationUnit (bias, M, S, relu, zero_point, valid_in) ──► y[n]
//!   └───────────────────────────────────────────────────────────────────────────┘
//!   rst clears bias, M and S (and the unit's valid pipeline)
//! ```
//!
//! `mult` and `shift` show the quantisation registers: the formal checker
//! ([`crate::formal`]) probes them. Everything happens on the rising edge of `clock`; with
//! several strobes high, `rst` wins, then `ql_we`, then `qs_we`.

use rust_hdl::prelude::*;

use crate::activation::ActivationUnit;
use crate::generate::{concat, generate_loop_block, module_text, split};

/// One column's bias and quantisation registers and its activation unit (see the module docs).
#[derive(LogicBlock)]
pub struct Column {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset: bias, M and S to 0, the unit's vectors in flight dropped.
    pub rst: Signal<In, Bit>,
    /// The stream word: LOAD_BIAS's bias, SET_QUANT's M (15:0) and S (21:16).
    pub word: Signal<In, Bits<32>>,
    /// Load `word` into this column's bias register.
    pub bias_we: Signal<In, Bit>,
    /// Load M and S from `word` (SET_QUANT: every column).
    pub qs_we: Signal<In, Bit>,
    /// Load M and S from `quant` (LOAD_QUANT).
    pub ql_we: Signal<In, Bit>,
    /// This column's M (15:0) and S (21:16) of LOAD_QUANT.
    pub quant: Signal<In, Bits<22>>,
    /// The accumulator value to activate.
    pub acc: Signal<In, Signed<32>>,
    /// Apply ReLU.
    pub relu: Signal<In, Bit>,
    /// The output zero point Z.
    pub zero_point: Signal<In, Bits<8>>,
    /// `acc` holds a vector to activate.
    pub valid_in: Signal<In, Bit>,
    /// The activation unit's result.
    pub y: Signal<Out, Signed<8>>,
    /// M, the multiplier register.
    pub mult: Signal<Out, Bits<16>>,
    /// S, the shift register.
    pub shift: Signal<Out, Bits<6>>,
    bias: DFF<Signed<32>>,
    q_mult: DFF<Bits<16>>,
    q_shift: DFF<Bits<6>>,
    act: ActivationUnit,
    zero32: Constant<Signed<32>>,
    zero16: Constant<Bits<16>>,
    zero6: Constant<Bits<6>>,
}

impl Default for Column {
    fn default() -> Self {
        Column {
            clock: Default::default(),
            rst: Default::default(),
            word: Default::default(),
            bias_we: Default::default(),
            qs_we: Default::default(),
            ql_we: Default::default(),
            quant: Default::default(),
            acc: Default::default(),
            relu: Default::default(),
            zero_point: Default::default(),
            valid_in: Default::default(),
            y: Default::default(),
            mult: Default::default(),
            shift: Default::default(),
            bias: Default::default(),
            q_mult: Default::default(),
            q_shift: Default::default(),
            act: Default::default(),
            zero32: Constant::new(0i64.into()),
            zero16: Constant::new(0u64.into()),
            zero6: Constant::new(0u64.into()),
        }
    }
}

impl Logic for Column {
    #[hdl_gen]
    fn update(&mut self) {
        self.bias.clock.next = self.clock.val();
        self.bias.d.next = self.bias.q.val();
        if self.bias_we.val() {
            self.bias.d.next = signed_cast(self.word.val());
        }
        if self.rst.val() {
            self.bias.d.next = self.zero32.val();
        }
        self.q_mult.clock.next = self.clock.val();
        self.q_shift.clock.next = self.clock.val();
        self.q_mult.d.next = self.q_mult.q.val();
        self.q_shift.d.next = self.q_shift.q.val();
        if self.qs_we.val() {
            self.q_mult.d.next = self.word.val().get_bits::<16>(0);
            self.q_shift.d.next = self.word.val().get_bits::<6>(16);
        }
        if self.ql_we.val() {
            self.q_mult.d.next = self.quant.val().get_bits::<16>(0);
            self.q_shift.d.next = self.quant.val().get_bits::<6>(16);
        }
        if self.rst.val() {
            self.q_mult.d.next = self.zero16.val();
            self.q_shift.d.next = self.zero6.val();
        }
        self.mult.next = self.q_mult.q.val();
        self.shift.next = self.q_shift.q.val();
        self.act.clock.next = self.clock.val();
        self.act.rst.next = self.rst.val();
        self.act.acc.next = self.acc.val();
        self.act.bias.next = self.bias.q.val();
        self.act.multiplier.next = self.q_mult.q.val();
        self.act.shift.next = self.q_shift.q.val();
        self.act.relu.next = self.relu.val();
        self.act.zero_point.next = self.zero_point.val();
        self.act.valid_in.next = self.valid_in.val();
        self.y.next = self.act.y.val();
    }
}

/// DIM [`Column`]s: the shared strobes go to every column, `bias_we` to the column that
/// `bias_idx` names (see the module docs).
pub struct Columns {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset.
    pub rst: Signal<In, Bit>,
    /// The stream word.
    pub word: Signal<In, Bits<32>>,
    /// Load `word` into the bias register of column `bias_idx`.
    pub bias_we: Signal<In, Bit>,
    /// The column `bias_we` writes.
    pub bias_idx: Signal<In, Bits<16>>,
    /// Load every column's M and S from `word`.
    pub qs_we: Signal<In, Bit>,
    /// Load column n's M and S from `quant[n]`.
    pub ql_we: Signal<In, Bit>,
    /// Apply ReLU.
    pub relu: Signal<In, Bit>,
    /// The output zero point.
    pub zero_point: Signal<In, Bits<8>>,
    /// `acc` holds a row to activate.
    pub valid_in: Signal<In, Bit>,
    /// Per column: M (15:0) and S (21:16) of LOAD_QUANT.
    pub quant: Vec<Signal<In, Bits<22>>>,
    /// Per column: the accumulator value.
    pub acc: Vec<Signal<In, Signed<32>>>,
    /// Per column: the activation unit's result.
    pub y: Vec<Signal<Out, Signed<8>>>,
    /// Per column: M.
    pub mult: Vec<Signal<Out, Bits<16>>>,
    /// Per column: S.
    pub shift: Vec<Signal<Out, Bits<6>>>,
    /// LANES > 1: words 1..LANES of the beat (`word` is lane 0); LOAD_BIAS writes column n
    /// from lane n % LANES when `bias_idx` is n / LANES. Empty at LANES 1.
    pub lanes: Vec<Signal<In, Bits<32>>>,
    col: Vec<Column>,
    // the beat of column n's bias (n at LANES 1)
    index: Vec<Constant<Bits<16>>>,
    // LANES > 1: the beat's words, lane 0 included (empty at LANES 1)
    beat: Vec<Signal<Local, Bits<32>>>,
    // `for ll in _lanes_lo.._lanes_hi`: one pass with ll = LANES at LANES > 1, none at LANES 1
    _lanes_lo: usize,
    _lanes_hi: usize,
}

impl Columns {
    /// `dim` columns, one word per beat.
    pub fn new(dim: usize) -> Self {
        Self::with_lanes(dim, 1)
    }

    /// `dim` columns, beats of `lanes` words (see [`Columns::lanes`]).
    pub fn with_lanes(dim: usize, lanes: usize) -> Self {
        assert!(dim >= 1, "Columns needs DIM >= 1");
        assert!(lanes.is_power_of_two(), "Columns needs LANES a power of two");
        Columns {
            clock: Default::default(),
            rst: Default::default(),
            word: Default::default(),
            bias_we: Default::default(),
            bias_idx: Default::default(),
            qs_we: Default::default(),
            ql_we: Default::default(),
            relu: Default::default(),
            zero_point: Default::default(),
            valid_in: Default::default(),
            quant: (0..dim).map(|_| Default::default()).collect(),
            acc: (0..dim).map(|_| Default::default()).collect(),
            y: (0..dim).map(|_| Default::default()).collect(),
            mult: (0..dim).map(|_| Default::default()).collect(),
            shift: (0..dim).map(|_| Default::default()).collect(),
            lanes: (0..lanes - 1).map(|_| Default::default()).collect(),
            col: (0..dim).map(|_| Column::default()).collect(),
            index: (0..dim).map(|i| Constant::new(((i / lanes) as u64).into())).collect(),
            beat: (0..if lanes > 1 { lanes } else { 0 }).map(|_| Default::default()).collect(),
            _lanes_lo: if lanes > 1 { lanes } else { 1 },
            _lanes_hi: if lanes > 1 { lanes + 1 } else { 1 },
        }
    }

    /// The number of columns.
    pub fn dim(&self) -> usize {
        self.col.len()
    }
}

// `#[hdl_gen]` needs index loops: loop bounds are evaluated when Verilog is emitted. The
// generated `update`, `connect` and `hdl` are inherent; `generate_loop_block!` chooses between
// this `hdl` (the per-instance form) and the generate loop.
#[allow(clippy::needless_range_loop)]
impl Columns {
    #[hdl_gen]
    fn update(&mut self) {
        for i in 0..self.col.len() {
            self.col[i].clock.next = self.clock.val();
            self.col[i].rst.next = self.rst.val();
            self.col[i].word.next = self.word.val();
            self.col[i].bias_we.next = self.bias_we.val() && (self.bias_idx.val() == self.index[i].val());
            self.col[i].qs_we.next = self.qs_we.val();
            self.col[i].ql_we.next = self.ql_we.val();
            self.col[i].quant.next = self.quant[i].val();
            self.col[i].acc.next = self.acc[i].val();
            self.col[i].relu.next = self.relu.val();
            self.col[i].zero_point.next = self.zero_point.val();
            self.col[i].valid_in.next = self.valid_in.val();
            self.y[i].next = self.col[i].y.val();
            self.mult[i].next = self.col[i].mult.val();
            self.shift[i].next = self.col[i].shift.val();
        }
        // LANES > 1: column n's bias from lane n % LANES
        for ll in self._lanes_lo..self._lanes_hi {
            self.beat[0].next = self.word.val();
            for j in 0..self.lanes.len() {
                self.beat[j + 1].next = self.lanes[j].val();
            }
            for i in 0..self.col.len() {
                if self.bias_we.val() {
                    self.col[i].word.next = self.beat[i % ll].val();
                }
            }
        }
    }
}

/// Name of the column module the generate loop instantiates (rust-hdl's text of [`Column`]).
pub const COLUMN_MODULE: &str = "protobrain_column";

impl Columns {
    /// The body as a generate loop over [`COLUMN_MODULE`], plus that module: `col[n].unit` is
    /// column n. Same wiring as `update`.
    fn generate_loop_verilog(&self) -> Verilog {
        let d = self.dim();
        let l = self.lanes.len() + 1;
        if l > 1 {
            return self.generate_loop_verilog_lanes(d, l);
        }
        let mut code = format!(
            "\
// DIM {COLUMN_MODULE} in a generate loop; col[n].unit is column n (hdl::column).
localparam DIM = {d};
// The per-column ports as vectors, column n at bits [W*n +: W].
wire [22*DIM-1:0] quant_row;
wire [32*DIM-1:0] acc_row;
wire [8*DIM-1:0] y_row;
wire [16*DIM-1:0] mult_row;
wire [6*DIM-1:0] shift_row;
assign quant_row = {quant};
assign acc_row = {acc};
",
            quant = concat("quant", d),
            acc = concat("acc", d),
        );
        code.push_str(&split("y", "y_row", 8, d));
        code.push_str(&split("mult", "mult_row", 16, d));
        code.push_str(&split("shift", "shift_row", 6, d));
        code.push_str(&format!(
            "\
genvar i;
generate
    for (i = 0; i < DIM; i = i + 1) begin : col
        localparam [15:0] INDEX = i;
        {COLUMN_MODULE} unit(
            .clock(clock), .rst(rst), .word(word), .bias_we(bias_we && (bias_idx == INDEX)),
            .qs_we(qs_we), .ql_we(ql_we), .quant(quant_row[22*i +: 22]), .acc(acc_row[32*i +: 32]),
            .relu(relu), .zero_point(zero_point), .valid_in(valid_in),
            .y(y_row[8*i +: 8]), .mult(mult_row[16*i +: 16]), .shift(shift_row[6*i +: 6]));
    end
endgenerate
"
        ));
        let cores = module_text(&mut Column::default(), COLUMN_MODULE);
        Verilog::Wrapper(Wrapper { code, cores })
    }
}

impl Columns {
    /// The generate loop at LANES > 1: as at LANES 1, but column n's bias comes from lane
    /// n % LANES of the beat, when `bias_idx` is n / LANES.
    fn generate_loop_verilog_lanes(&self, d: usize, l: usize) -> Verilog {
        let lanes: Vec<String> = (0..l - 1).rev().map(|j| format!("lanes${j}")).collect();
        let mut code = format!(
            "\
// DIM {COLUMN_MODULE} in a generate loop; col[n].unit is column n (hdl::column); beats of
// LANES words, column n's bias in lane n % LANES of beat n / LANES.
localparam DIM = {d};
localparam LANES = {l};
// The per-column ports as vectors, column n at bits [W*n +: W]; the beat, lane j at [32*j +: 32].
wire [22*DIM-1:0] quant_row;
wire [32*DIM-1:0] acc_row;
wire [8*DIM-1:0] y_row;
wire [16*DIM-1:0] mult_row;
wire [6*DIM-1:0] shift_row;
wire [32*LANES-1:0] beat_row;
assign quant_row = {quant};
assign acc_row = {acc};
assign beat_row = {{{lanes}, word}};
",
            quant = concat("quant", d),
            acc = concat("acc", d),
            lanes = lanes.join(", "),
        );
        code.push_str(&split("y", "y_row", 8, d));
        code.push_str(&split("mult", "mult_row", 16, d));
        code.push_str(&split("shift", "shift_row", 6, d));
        code.push_str(&format!(
            "\
genvar i;
generate
    for (i = 0; i < DIM; i = i + 1) begin : col
        localparam [15:0] INDEX = i / LANES;
        {COLUMN_MODULE} unit(
            .clock(clock), .rst(rst), .word(bias_we ? beat_row[32*(i%LANES) +: 32] : word),
            .bias_we(bias_we && (bias_idx == INDEX)),
            .qs_we(qs_we), .ql_we(ql_we), .quant(quant_row[22*i +: 22]), .acc(acc_row[32*i +: 32]),
            .relu(relu), .zero_point(zero_point), .valid_in(valid_in),
            .y(y_row[8*i +: 8]), .mult(mult_row[16*i +: 16]), .shift(shift_row[6*i +: 6]));
    end
endgenerate
"
        ));
        let cores = module_text(&mut Column::default(), COLUMN_MODULE);
        Verilog::Wrapper(Wrapper { code, cores })
    }
}

generate_loop_block!(Columns;
    ports: clock, rst, word, bias_we, bias_idx, qs_we, ql_we, relu, zero_point, valid_in, quant, acc, y,
        mult, shift, lanes;
    inner: col, index, beat);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::with_per_instance_text;
    use crate::primitives::{sign_extend, signed_from_i128, signed_to_i128};
    use crate::replay::{replay, simulate, verilator_lint, Port};

    /// Stimulus columns, in this order.
    fn inputs(dim: usize) -> Vec<Port> {
        let mut p = vec![
            Port::new("rst", 1),
            Port::new("word", 32),
            Port::new("bias_we", 1),
            Port::new("bias_idx", 16),
            Port::new("qs_we", 1),
            Port::new("ql_we", 1),
            Port::new("relu", 1),
            Port::new("zero_point", 8),
            Port::new("valid_in", 1),
        ];
        p.extend(Port::vec("quant", dim, 22));
        p.extend(Port::vec("acc", dim, 32));
        p
    }

    fn outputs(dim: usize) -> Vec<Port> {
        let mut p = Port::vec("y", dim, 8);
        p.extend(Port::vec("mult", dim, 16));
        p.extend(Port::vec("shift", dim, 6));
        p
    }

    fn columns_verilog(dim: usize) -> String {
        let mut uut = Columns::new(dim);
        uut.connect_all();
        generate_verilog(&uut)
    }

    fn rust_trace(dim: usize, stim: &[Vec<u128>]) -> Vec<Vec<u128>> {
        let mut uut = Columns::new(dim);
        simulate(
            &mut uut,
            |u| &mut u.clock,
            stim,
            |u, s| {
                u.rst.next = s[0] != 0;
                u.word.next = (s[1] as u64).into();
                u.bias_we.next = s[2] != 0;
                u.bias_idx.next = (s[3] as u64).into();
                u.qs_we.next = s[4] != 0;
                u.ql_we.next = s[5] != 0;
                u.relu.next = s[6] != 0;
                u.zero_point.next = (s[7] as u64).into();
                u.valid_in.next = s[8] != 0;
                for n in 0..dim {
                    u.quant[n].next = (s[9 + n] as u64).into();
                    u.acc[n].next = signed_from_i128::<32>(sign_extend(s[9 + dim + n], 32));
                }
            },
            |u| {
                let mut v: Vec<u128> = u.y.iter().map(|y| signed_to_i128(y.val()) as u128 & 0xff).collect();
                v.extend(u.mult.iter().map(|m| m.val().to_u64() as u128));
                v.extend(u.shift.iter().map(|m| m.val().to_u64() as u128));
                v
            },
        )
        .expect("rust-hdl simulation of the columns")
    }

    /// Random strobes and values; shifts stay within 0..=47 (what SET_QUANT and LOAD_QUANT
    /// accept, and `spec::requantize_v2`'s domain), bias indices sometimes past the last
    /// column.
    fn stimulus(dim: usize, cycles: usize, seed: u64) -> Vec<Vec<u128>> {
        let mut x = seed;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let quant = |r: u64| ((r % 48) << 16 | (r >> 8) & 0xffff) as u128;
        (0..cycles)
            .map(|c| {
                let r = rnd();
                let mut s = vec![
                    (c == 0 || r % 53 == 0) as u128,
                    // a bias or a SET_QUANT word: S (21:16) within 0..=47
                    (rnd() & 0xffc0_0000) as u128 | quant(rnd()),
                    (r >> 4 & 3 == 0) as u128,
                    ((r >> 8) % (dim as u64 + 1)) as u128,
                    ((r >> 12) % 11 == 0) as u128,
                    ((r >> 16) % 13 == 0) as u128,
                    (r >> 20 & 1) as u128,
                    (r >> 24 & 0xff) as u128,
                    (r >> 32 & 3 != 0) as u128,
                ];
                s.extend((0..dim).map(|_| quant(rnd())));
                s.extend((0..dim).map(|_| (rnd() & 0xffff_ffff) as u128));
                s
            })
            .collect()
    }

    /// The registers and the activation results the stimulus must give: `mult` and `shift` on
    /// every cycle, `y` on the cycles a vector leaves the unit (vectors a reset met are skipped).
    fn check_against_reference(dim: usize, stim: &[Vec<u128>], trace: &[Vec<u128>], who: &str) {
        let latency = ActivationUnit::LATENCY;
        let (mut bias, mut m, mut s) = (vec![0i32; dim], vec![0u16; dim], vec![0u8; dim]);
        let mut checked = 0;
        for (c, row) in stim.iter().enumerate() {
            for n in 0..dim {
                assert_eq!(trace[c][dim + n], m[n] as u128, "{who}: M[{n}] at cycle {c}");
                assert_eq!(trace[c][2 * dim + n], s[n] as u128, "{who}: S[{n}] at cycle {c}");
            }
            let out = c + latency;
            let reset_in_flight = stim[c..stim.len().min(out)].iter().any(|r| r[0] != 0);
            if row[8] != 0 && !reset_in_flight && out < stim.len() {
                for n in 0..dim {
                    let acc = row[9 + dim + n] as u32 as i32;
                    let scale = spec::ColumnScale { multiplier: m[n], shift: s[n] };
                    let want = spec::requantize_v2(acc, bias[n], scale, row[6] != 0, row[7] as u8 as i8);
                    assert_eq!(trace[out][n], want as u8 as u128, "{who}: y[{n}] of the vector of cycle {c}");
                }
                checked += 1;
            }
            // the edge that ends cycle c
            let word = row[1] as u32;
            if row[0] != 0 {
                bias.fill(0);
                m.fill(0);
                s.fill(0);
                continue;
            }
            if row[2] != 0 && (row[3] as usize) < dim {
                bias[row[3] as usize] = word as i32;
            }
            for n in 0..dim {
                let q = if row[5] != 0 {
                    Some(row[9 + n] as u32)
                } else if row[4] != 0 {
                    Some(word)
                } else {
                    None
                };
                if let Some(q) = q {
                    m[n] = q as u16;
                    s[n] = (q >> 16 & 0x3f) as u8;
                }
            }
        }
        assert!(checked > stim.len() / 3, "{who}: only {checked} vectors checked");
    }

    /// The rust-hdl model, Icarus on the generate loop and Icarus on rust-hdl's per-instance
    /// text agree with the reference and with each other, every output of every cycle.
    #[test]
    fn columns_match_the_reference_in_rust_hdl_and_both_verilog_forms() {
        for dim in [1usize, 2, 3, 5] {
            let stim = stimulus(dim, 150, 0x5eed_0000 + dim as u64);
            let want = rust_trace(dim, &stim);
            check_against_reference(dim, &stim, &want, &format!("rust-hdl, DIM {dim}"));
            let run = |v: &str| replay(v, "top", "clock", &inputs(dim), &outputs(dim), &stim).unwrap();
            assert_eq!(run(&columns_verilog(dim)), want, "generate loop vs rust-hdl, DIM {dim}");
            let per_instance = with_per_instance_text(|| columns_verilog(dim));
            assert!(per_instance.contains("top$col$0") && !columns_verilog(dim).contains("top$col$0"));
            assert_eq!(run(&per_instance), want, "per-instance text vs rust-hdl, DIM {dim}");
        }
    }

    /// `verilator -Wall`: the activation unit's `valid_out`, unused inside the column, is the
    /// only warning (besides the file-name convention); no WIDTH warnings.
    #[test]
    fn columns_verilog_lints_clean() {
        for dim in [1, 3, 8] {
            let found: Vec<String> = verilator_lint(&columns_verilog(dim), "top")
                .unwrap()
                .into_iter()
                .filter(|w| w.code != "DECLFILENAME")
                .map(|w| format!("{}: {}", w.code, w.message))
                .collect();
            assert_eq!(found, vec!["UNUSEDSIGNAL: Signal is not used: 'act$valid_out'"], "DIM {dim}");
        }
    }

    /// The text grows with DIM by a few lines per column (the ports), not by a column module.
    #[test]
    fn generate_loop_text_is_small_per_column() {
        let (s8, s16) = (columns_verilog(8).len(), columns_verilog(16).len());
        assert!(s16 - s8 < 8 * 600, "8 more columns cost {} bytes", s16 - s8);
    }
}
