//! The DIM x DIM weight-stationary systolic array with its input skew and output deskew.
//!
//! ```text
//!  act_in[k], sel_in          w_data[n] (one per column), w_en + w_row (a row), w_bank
//!  (one row, not skewed)
//!                    ┌──────────────┐      psum 0   psum 0   psum 0
//!  act_in[0] ────────┤ (no delay)   ├──► PE(0,0) ─► PE(0,1) ─► PE(0,2) ─►      act, sel
//!  act_in[1] ────────┤ [1]          ├──► PE(1,0) ─► PE(1,1) ─► PE(1,2) ─►      flow right
//!  act_in[2] ────────┤ [2]          ├──► PE(2,0) ─► PE(2,1) ─► PE(2,2) ─►
//!  sel_in ───────────┤ skew: row k  │       │          │          │           psum flows
//!                    │ delayed k    │       ▼          ▼          ▼           down
//!                    └──────────────┘   ┌──────┐   ┌──────┐   ┌──────┐
//!                                       │ [2]  │   │ [1]  │   │  -   │  deskew: column n
//!                                       └──┬───┘   └──┬───┘   └──┬───┘  delayed DIM-1-n
//!                                          ▼          ▼          ▼
//!                                     psum_out[0] psum_out[1] psum_out[2]
//!   [d] = d registers (DelayLine)                                        (example DIM = 3)
//! ```
//!
//! Timing, for a row `x` presented at cycle `t` (`act_in[k] = x[k]`, bank tag `sel_in`):
//! * `x[k]` and the tag enter row `k` at `t + k`, reach `PE(k, n)` at `t + k + n`;
//! * `PE(k, n)` adds `x[k] * W[k][n]` to the partial sum from `PE(k-1, n)`, registered, so the
//!   bottom of column `n` holds `sum_k x[k] * W[k][n]` from cycle `t + DIM + n`;
//! * the deskew delays column `n` by `DIM - 1 - n`, so all DIM sums of the row appear together
//!   on `psum_out` at cycle `t + latency(DIM)` with **`latency(DIM) = 2 * DIM - 1`**.
//!
//! A new row may be presented every cycle. The bank tag travels with its activation, so rows
//! using bank 0 and bank 1 may follow each other back to back; each row is multiplied by the
//! weights of its own bank in every PE. Loading bank `b` while rows tagged `b` are still inside
//! the array (`latency` cycles) changes their result: the controller loads the shadow bank.
//!
//! Weight loading: on an edge with `w_en` high and `w_row == k`, every PE of row `k` writes
//! `w_data[n]` (its column's value) into bank `w_bank`; one matrix row `W[k][..]` per cycle (a
//! `w_row` past the last row loads nothing).
//! `rst` (synchronous, active high) clears every register, weights included.
//!
//! PEs are one flat `Vec` (index `k * DIM + n`): rust-hdl emits invalid Verilog for nested
//! arrays of blocks. In `#[hdl_gen]` every index must be an expression of loop variables
//! (rust-hdl evaluates it when emitting Verilog), so DIM is bound by a one-iteration loop.

use rust_hdl::prelude::*;

use crate::generate::{concat, generate_loop_block, module_text, split};
use crate::pe::Pe;
use crate::primitives::{delay_module, DelayLine, DELAY_MODULE};

/// The systolic array (see the module docs for the schematic and timing).
pub struct SystolicArray {
    /// Clock of every register.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset of every register, weights included.
    pub rst: Signal<In, Bit>,
    /// One row of DIM activations, element `k` for array row `k`; not skewed.
    pub act_in: Vec<Signal<In, Signed<8>>>,
    /// Weight bank the row on `act_in` uses.
    pub sel_in: Signal<In, Bit>,
    /// Weight write enable of array row `w_row`.
    pub w_en: Signal<In, Bit>,
    /// The array row `w_en` writes.
    pub w_row: Signal<In, Bits<16>>,
    /// Bank the weights are written into.
    pub w_bank: Signal<In, Bit>,
    /// Weight for column `n` (one per column).
    pub w_data: Vec<Signal<In, Signed<8>>>,
    /// Deskewed column sums: `psum_out[n] = sum_k x[k] * W[k][n]` of the row presented
    /// `latency(DIM)` cycles earlier.
    pub psum_out: Vec<Signal<Out, Signed<32>>>,
    pe: Vec<Pe>,
    act_skew: Vec<DelayLine<Signed<8>>>,
    sel_skew: Vec<DelayLine<Bit>>,
    deskew: Vec<DelayLine<Signed<32>>>,
    // row k's weight write enable, `w_en && w_row == k`
    load: Vec<Signal<Local, Bit>>,
    index: Vec<Constant<Bits<16>>>,
    zero32: Constant<Signed<32>>,
}

impl SystolicArray {
    /// A `dim x dim` array.
    ///
    /// # Panics
    /// If `dim` is not in `1..=spec::config::MAX_DIM`.
    pub fn new(dim: usize) -> Self {
        assert!(
            (1..=spec::config::MAX_DIM).contains(&dim),
            "SystolicArray DIM must be in 1..={}, got {dim}",
            spec::config::MAX_DIM
        );
        Self {
            clock: Default::default(),
            rst: Default::default(),
            act_in: (0..dim).map(|_| Default::default()).collect(),
            sel_in: Default::default(),
            w_en: Default::default(),
            w_row: Default::default(),
            w_bank: Default::default(),
            w_data: (0..dim).map(|_| Default::default()).collect(),
            psum_out: (0..dim).map(|_| Default::default()).collect(),
            pe: (0..dim * dim).map(|_| Pe::default()).collect(),
            // Row k (1..dim) is delayed k cycles; row 0 is a wire.
            act_skew: (1..dim).map(DelayLine::new).collect(),
            sel_skew: (1..dim).map(DelayLine::new).collect(),
            // Column n (0..dim-1) is delayed dim-1-n cycles; the last column is a wire.
            deskew: (0..dim - 1).map(|n| DelayLine::new(dim - 1 - n)).collect(),
            load: (0..dim).map(|_| Default::default()).collect(),
            index: (0..dim).map(|k| Constant::new((k as u64).into())).collect(),
            zero32: Constant::new(0.into()),
        }
    }

    /// The array of a configuration.
    pub fn from_config(config: &spec::Config) -> Self {
        Self::new(config.dim())
    }

    /// Array dimension.
    pub fn dim(&self) -> usize {
        self.act_in.len()
    }

    /// Cycles from presenting a row on `act_in` to its sums on `psum_out`: `2 * dim - 1`.
    /// Element `k` reaches column `n` at `t + k + n`, so the bottom-right PE adds the last
    /// product at `t + 2 * (dim - 1)` and its register shows the sum one cycle later; the deskew
    /// brings the other columns to the same cycle (see the module docs).
    pub fn latency(dim: usize) -> usize {
        spec::timing::array_latency(dim)
    }
}

// `#[hdl_gen]` needs index loops: loop bounds are evaluated when Verilog is emitted. The
// generated `update`, `connect` and `hdl` are inherent methods here; `Logic` below chooses
// between this `hdl` (the per-instance form) and the generate loop.
#[allow(clippy::needless_range_loop)]
impl SystolicArray {
    #[hdl_gen]
    fn update(&mut self) {
        for i in 0..self.pe.len() {
            self.pe[i].clock.next = self.clock.val();
            self.pe[i].rst.next = self.rst.val();
            self.pe[i].w_bank.next = self.w_bank.val();
        }
        for i in 0..self.act_skew.len() {
            self.act_skew[i].clock.next = self.clock.val();
            self.act_skew[i].rst.next = self.rst.val();
            self.sel_skew[i].clock.next = self.clock.val();
            self.sel_skew[i].rst.next = self.rst.val();
            self.sel_skew[i].din.next = self.sel_in.val();
        }
        for i in 0..self.deskew.len() {
            self.deskew[i].clock.next = self.clock.val();
            self.deskew[i].rst.next = self.rst.val();
        }
        for k in 0..self.load.len() {
            self.load[k].next = self.w_en.val() && (self.w_row.val() == self.index[k].val());
        }
        // Skew: row 0 straight in, row k through a k-deep line.
        self.pe[0].act_in.next = self.act_in[0].val();
        self.pe[0].sel_in.next = self.sel_in.val();
        // `dim` is a one-iteration loop so that index expressions can use it.
        for dim in self.act_in.len()..(self.act_in.len() + 1) {
            for k in 1..self.act_in.len() {
                self.act_skew[k - 1].din.next = self.act_in[k].val();
                self.pe[k * dim].act_in.next = self.act_skew[k - 1].dout.val();
                self.pe[k * dim].sel_in.next = self.sel_skew[k - 1].dout.val();
            }
            for k in 0..self.act_in.len() {
                for n in 0..self.act_in.len() {
                    self.pe[k * dim + n].w_load.next = self.load[k].val();
                    self.pe[k * dim + n].w_data.next = self.w_data[n].val();
                }
                // Activations and tags move right.
                for n in 1..self.act_in.len() {
                    self.pe[k * dim + n].act_in.next = self.pe[k * dim + n - 1].act_out.val();
                    self.pe[k * dim + n].sel_in.next = self.pe[k * dim + n - 1].sel_out.val();
                }
            }
            // Partial sums move down.
            for n in 0..self.act_in.len() {
                self.pe[n].psum_in.next = self.zero32.val();
            }
            for k in 1..self.act_in.len() {
                for n in 0..self.act_in.len() {
                    self.pe[k * dim + n].psum_in.next = self.pe[(k - 1) * dim + n].psum_out.val();
                }
            }
            // Deskew: column n through a (dim-1-n)-deep line, the last column straight out.
            for n in 0..self.deskew.len() {
                self.deskew[n].din.next = self.pe[(dim - 1) * dim + n].psum_out.val();
                self.psum_out[n].next = self.deskew[n].dout.val();
            }
            for n in self.deskew.len()..self.act_in.len() {
                self.psum_out[n].next = self.pe[(dim - 1) * dim + n].psum_out.val();
            }
        }
    }
}

/// Name of the PE module the generate loop instantiates (rust-hdl's text of [`Pe`]).
pub const PE_MODULE: &str = "protobrain_pe";

impl SystolicArray {
    /// The array's module body as a generate loop over one PE module, plus that module (rust-hdl's
    /// text of [`Pe`], whatever DIM) and [`DELAY_MODULE`]: the text is O(DIM), not O(DIM²), and
    /// rust-hdl visits one PE instead of DIM². Same wiring as `update` (see the module docs);
    /// `pe[k*DIM + n]` is PE(k, n), as in the per-instance form.
    fn generate_loop_verilog(&self) -> Verilog {
        let d = self.dim();
        let row = |port: &str| concat(port, d);
        let mut code = format!(
            "\
// DIM x DIM {PE_MODULE} in a generate loop; pe[k*DIM + n] is PE(k, n) (hdl::array).
localparam DIM = {d};
// The row ports as vectors, element k at bits [W*k +: W].
wire [8*DIM-1:0] act_row;
wire [8*DIM-1:0] wdata_row;
wire [32*DIM-1:0] sum_row;
assign act_row = {act};
assign wdata_row = {wdata};
",
            act = row("act_in"),
            wdata = row("w_data"),
        );
        code.push_str(&split("psum_out", "sum_row", 32, d));
        code.push_str(&format!(
            "\
genvar i;
generate
    // Row i's weight write enable.
    for (i = 0; i < DIM; i = i + 1) begin : row
        localparam [15:0] INDEX = i;
        wire load = w_en && (w_row == INDEX);
    end
    // Skew: row i + 1 through an (i + 1)-deep line; row 0 is a wire.
    for (i = 0; i < DIM - 1; i = i + 1) begin : act_skew
        wire [7:0] dout;
        {DELAY_MODULE} #(.WIDTH(8), .DEPTH(i + 1)) line(
            .clock(clock), .rst(rst), .din(act_row[8*(i+1) +: 8]), .dout(dout));
    end
    for (i = 0; i < DIM - 1; i = i + 1) begin : sel_skew
        wire dout;
        {DELAY_MODULE} #(.WIDTH(1), .DEPTH(i + 1)) line(
            .clock(clock), .rst(rst), .din(sel_in), .dout(dout));
    end
    for (i = 0; i < DIM * DIM; i = i + 1) begin : pe
        wire signed [7:0] a_in;
        wire s_in;
        wire signed [31:0] p_in;
        wire signed [31:0] p_out;
        // act_out / sel_out of the last column leave the array unused
        /* verilator lint_off UNUSEDSIGNAL */
        wire signed [7:0] a_out;
        wire s_out;
        /* verilator lint_on UNUSEDSIGNAL */
        // activations and tags move right, from the skew in column 0
        if (i == 0) begin : west
            assign a_in = act_row[7:0];
            assign s_in = sel_in;
        end else if (i % DIM == 0) begin : west
            assign a_in = act_skew[i / DIM - 1].dout;
            assign s_in = sel_skew[i / DIM - 1].dout;
        end else begin : left
            assign a_in = pe[i - 1].a_out;
            assign s_in = pe[i - 1].s_out;
        end
        // partial sums move down, from 0 in row 0
        if (i < DIM) begin : top
            assign p_in = 32'sd0;
        end else begin : above
            assign p_in = pe[i - DIM].p_out;
        end
        {PE_MODULE} mac(
            .clock(clock), .rst(rst), .act_in(a_in), .sel_in(s_in), .psum_in(p_in),
            .w_load(row[i / DIM].load), .w_bank(w_bank), .w_data(wdata_row[8*(i % DIM) +: 8]),
            .act_out(a_out), .sel_out(s_out), .psum_out(p_out));
    end
    // Deskew: column i through a (DIM - 1 - i)-deep line; the last column is a wire.
    for (i = 0; i < DIM - 1; i = i + 1) begin : deskew
        {DELAY_MODULE} #(.WIDTH(32), .DEPTH(DIM - 1 - i)) line(
            .clock(clock), .rst(rst), .din(pe[(DIM - 1) * DIM + i].p_out), .dout(sum_row[32*i +: 32]));
    end
endgenerate
assign sum_row[32*(DIM-1) +: 32] = pe[DIM*DIM - 1].p_out;
"
        ));
        let pe = module_text(&mut Pe::default(), PE_MODULE);
        Verilog::Wrapper(Wrapper { code, cores: format!("{pe}{}", delay_module()) })
    }
}

// What `#[derive(LogicBlock)]` would write, except that in the generate-loop form the visitors
// see the array as a leaf (its ports), so rust-hdl neither checks nor writes DIM² instances.
// Simulation (`update_all`, `has_changed`) always runs every PE.
generate_loop_block!(SystolicArray;
    ports: clock, rst, act_in, sel_in, w_en, w_row, w_bank, w_data, psum_out;
    inner: pe, act_skew, sel_skew, deskew, load, index, zero32);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::with_per_instance_text;
    use crate::primitives::{sign_extend, signed_from_i128, signed_to_i128};
    use crate::replay::{ice40_cells, replay, simulate, verilator_lint, Port};
    use proptest::prelude::*;

    type Matrix = Vec<Vec<i8>>;

    /// The array's Verilog as `emit` writes it (module `top`: the generate loop).
    fn array_verilog(dim: usize) -> String {
        let mut uut = SystolicArray::new(dim);
        uut.connect_all();
        generate_verilog(&uut)
    }

    /// rust-hdl's per-instance text of the array (module `top`).
    fn per_instance_array_verilog(dim: usize) -> String {
        with_per_instance_text(|| array_verilog(dim))
    }

    /// A cycle-by-cycle stimulus for the array and the output each cycle must show.
    ///
    /// The expected outputs come from the architecture, not from a model of the pipeline: the
    /// row presented at cycle `t` gives `x · W` (wrapping int32) at cycle `t + latency`, with `W`
    /// the bank its tag names as loaded before `t`; outputs are 0 when no row was presented
    /// `latency` cycles earlier or a reset came in between.
    #[derive(Debug)]
    struct Scenario {
        dim: usize,
        stimulus: Vec<Vec<u128>>,
        /// Per presented cycle: the row and the weights it must meet (None: nothing counts).
        rows: Vec<Option<(Vec<i8>, Matrix)>>,
        resets: Vec<usize>,
        banks: [Matrix; 2],
        /// Last cycle a row tagged with each bank was presented (loads must keep clear of it).
        last_use: [Option<usize>; 2],
    }

    impl Scenario {
        fn new(dim: usize) -> Self {
            Scenario {
                dim,
                stimulus: vec![],
                rows: vec![],
                resets: vec![],
                banks: [vec![vec![0; dim]; dim], vec![vec![0; dim]; dim]],
                last_use: [None, None],
            }
        }

        /// One cycle: optional reset, a row `x` tagged `sel`, an optional weight-row write.
        fn cycle(&mut self, rst: bool, x: &[i8], sel: bool, load: Option<(usize, bool, &[i8])>) {
            let d = self.dim;
            let now = self.stimulus.len();
            let mut row = vec![rst as u128];
            row.extend(x.iter().map(|&v| v as u8 as u128));
            row.push(sel as u128);
            row.push(load.is_some() as u128);
            row.push(load.map_or(0, |(k, _, _)| k) as u128);
            row.push(load.is_some_and(|(_, b, _)| b) as u128);
            let w_data = load.map_or(vec![0; d], |(_, _, w)| w.to_vec());
            row.extend(w_data.iter().map(|&v| v as u8 as u128));
            self.stimulus.push(row);

            if x.iter().any(|&v| v != 0) {
                self.last_use[sel as usize] = Some(now);
            }
            self.rows.push(Some((x.to_vec(), self.banks[sel as usize].clone())));
            if let Some((k, bank, w)) = load {
                let latency = SystolicArray::latency(d);
                if let Some(used) = self.last_use[bank as usize] {
                    assert!(now >= used + latency, "scenario loads bank {bank} under a live row");
                }
                self.banks[bank as usize][k] = w.to_vec();
            }
            if rst {
                self.resets.push(now);
                self.last_use = [None, None];
                self.banks = [vec![vec![0; d]; d], vec![vec![0; d]; d]];
            }
        }

        fn idle(&mut self, cycles: usize) {
            for _ in 0..cycles {
                self.cycle(false, &vec![0; self.dim], false, None);
            }
        }

        /// Loads a whole matrix into `bank`, one matrix row per cycle, while rows `x` tagged
        /// with the other bank stream (or zero rows if `x` is empty).
        fn load(&mut self, bank: bool, w: &Matrix, x: &[Vec<i8>]) {
            for (k, wk) in w.iter().enumerate() {
                let row = x.get(k).cloned().unwrap_or(vec![0; self.dim]);
                self.cycle(false, &row, !bank, Some((k, bank, wk)));
            }
        }

        fn expected(&self) -> Vec<Vec<u128>> {
            let latency = SystolicArray::latency(self.dim);
            (0..self.stimulus.len())
                .map(|c| {
                    let source =
                        c.checked_sub(latency).filter(|&t| !self.resets.iter().any(|&r| (t..c).contains(&r)));
                    (0..self.dim)
                        .map(|n| match source.and_then(|t| self.rows[t].as_ref()) {
                            Some((x, w)) => x
                                .iter()
                                .zip(w)
                                .fold(0i32, |acc, (&xk, wk)| acc.wrapping_add(xk as i32 * wk[n] as i32)),
                            None => 0,
                        } as u32 as u128)
                        .collect()
                })
                .collect()
        }

        fn ports(&self) -> (Vec<Port>, Vec<Port>) {
            let d = self.dim;
            let mut inputs = vec![Port::new("rst", 1)];
            inputs.extend(Port::vec("act_in", d, 8));
            inputs.push(Port::new("sel_in", 1));
            inputs.push(Port::new("w_en", 1));
            inputs.push(Port::new("w_row", 16));
            inputs.push(Port::new("w_bank", 1));
            inputs.extend(Port::vec("w_data", d, 8));
            (inputs, Port::vec("psum_out", d, 32))
        }

        fn rust_hdl_trace(&self) -> Vec<Vec<u128>> {
            let d = self.dim;
            let mut uut = SystolicArray::new(d);
            let s8 = |v: u128| signed_from_i128::<8>(sign_extend(v, 8));
            simulate(
                &mut uut,
                |u| &mut u.clock,
                &self.stimulus,
                |u, r| {
                    u.rst.next = r[0] != 0;
                    for k in 0..d {
                        u.act_in[k].next = s8(r[1 + k]);
                        u.w_data[k].next = s8(r[5 + d + k]);
                    }
                    u.sel_in.next = r[1 + d] != 0;
                    u.w_en.next = r[2 + d] != 0;
                    u.w_row.next = (r[3 + d] as u64).into();
                    u.w_bank.next = r[4 + d] != 0;
                },
                |u| u.psum_out.iter().map(|p| signed_to_i128(p.val()) as u128 & 0xffff_ffff).collect(),
            )
            .expect("rust-hdl simulation of the array")
        }

        fn verilog_trace(&self, verilog: &str) -> Vec<Vec<u128>> {
            let (inputs, outputs) = self.ports();
            replay(verilog, "top", "clock", &inputs, &outputs, &self.stimulus)
                .unwrap_or_else(|e| panic!("{e}"))
        }

        /// The reference, the rust-hdl simulation and Icarus on the emitted Verilog (the
        /// generate loop) agree on every output of every cycle.
        fn check(&self, with_verilog: bool) {
            let want = self.expected();
            assert_eq!(self.rust_hdl_trace(), want, "rust-hdl simulation vs reference");
            if with_verilog {
                let got = self.verilog_trace(&array_verilog(self.dim));
                assert_eq!(got, want, "Icarus (generate loop) vs reference");
            }
        }

        /// [`Self::check`], and Icarus on rust-hdl's per-instance text agrees too.
        fn check_both_forms(&self) {
            self.check(true);
            let got = self.verilog_trace(&per_instance_array_verilog(self.dim));
            assert_eq!(got, self.expected(), "Icarus (per-instance text) vs reference");
        }
    }

    /// Reset, load both banks, stream `rows1` back to back, reload bank 1 with `w1b` while rows
    /// tagged 0 stream, stream `rows2`, drain. Rows carry their bank tag.
    fn double_buffer_scenario(
        dim: usize,
        w0: &Matrix,
        w1: &Matrix,
        w1b: &Matrix,
        rows1: &[(Vec<i8>, bool)],
        shadow_rows: &[Vec<i8>],
        rows2: &[(Vec<i8>, bool)],
    ) -> Scenario {
        let latency = SystolicArray::latency(dim);
        let mut s = Scenario::new(dim);
        s.cycle(true, &vec![0; dim], false, None);
        s.load(false, w0, &[]);
        s.load(true, w1, &[]);
        for (x, sel) in rows1 {
            s.cycle(false, x, *sel, None);
        }
        // Keep bank 1 clear of live rows, then reload it under rows tagged 0.
        for i in 0..latency {
            let x = shadow_rows.get(i).cloned().unwrap_or(vec![0; dim]);
            s.cycle(false, &x, false, None);
        }
        let under: Vec<Vec<i8>> = shadow_rows.iter().skip(latency).cloned().collect();
        s.load(true, w1b, &under);
        for (x, sel) in rows2 {
            s.cycle(false, x, *sel, None);
        }
        s.idle(latency + 1);
        s
    }

    fn int8() -> impl Strategy<Value = i8> {
        prop_oneof![Just(-128i8), Just(127), Just(0), any::<i8>()]
    }

    fn matrix(dim: usize) -> impl Strategy<Value = Matrix> {
        prop::collection::vec(prop::collection::vec(int8(), dim), dim)
    }

    fn tagged_rows(dim: usize, max: usize) -> impl Strategy<Value = Vec<(Vec<i8>, bool)>> {
        prop::collection::vec((prop::collection::vec(int8(), dim), any::<bool>()), 1..max)
    }

    fn arb_scenario() -> impl Strategy<Value = Scenario> {
        (1usize..=4).prop_flat_map(|dim| {
            (
                matrix(dim),
                matrix(dim),
                matrix(dim),
                tagged_rows(dim, 12),
                prop::collection::vec(prop::collection::vec(int8(), dim), 0..12),
                tagged_rows(dim, 12),
            )
                .prop_map(move |(w0, w1, w1b, r1, shadow, r2)| {
                    double_buffer_scenario(dim, &w0, &w1, &w1b, &r1, &shadow, &r2)
                })
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn random_double_buffered_streams_agree(s in arb_scenario()) {
            s.check(true);
        }
    }

    /// A deterministic pseudo-random int8 stream with the extremes mixed in.
    fn lcg_values(seed: u64, count: usize) -> Vec<i8> {
        let mut state = seed;
        (0..count)
            .map(|i| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                match i % 7 {
                    0 => -128,
                    3 => 127,
                    _ => (state >> 56) as i8,
                }
            })
            .collect()
    }

    fn lcg_scenario(dim: usize, rows: usize) -> Scenario {
        let mut v = lcg_values(dim as u64 * 7919, 3 * dim * dim + 3 * rows * dim).into_iter();
        let mut take = |n: usize| (0..n).map(|_| v.next().unwrap()).collect::<Vec<i8>>();
        let mut mat = || (0..dim).map(|_| take(dim)).collect::<Matrix>();
        let (w0, w1, w1b) = (mat(), mat(), mat());
        let mut take = |n: usize| (0..n).map(|_| v.next().unwrap()).collect::<Vec<i8>>();
        let rows1: Vec<_> = (0..rows).map(|i| (take(dim), i % 3 == 1)).collect();
        let shadow: Vec<_> = (0..rows).map(|_| take(dim)).collect();
        let rows2: Vec<_> = (0..rows).map(|i| (take(dim), i % 2 == 0)).collect();
        double_buffer_scenario(dim, &w0, &w1, &w1b, &rows1, &shadow, &rows2)
    }

    #[test]
    fn every_dim_up_to_4_streams_deterministic_rows() {
        for dim in 1..=4 {
            lcg_scenario(dim, 10).check_both_forms();
        }
    }

    #[test]
    fn dim_8_verilog_agrees() {
        lcg_scenario(8, 40).check_both_forms();
    }

    #[test]
    fn extremes_accumulate_without_overflow_trouble() {
        // Every product is -128 * -128 = 16384; a column of 4 sums to 65536.
        let dim = 4;
        let mut s = Scenario::new(dim);
        s.cycle(true, &[0; 4], false, None);
        s.load(false, &vec![vec![-128; dim]; dim], &[]);
        s.load(true, &vec![vec![127; dim]; dim], &[]);
        s.cycle(false, &[-128; 4], false, None);
        s.cycle(false, &[-128; 4], true, None);
        s.cycle(false, &[127, -128, 0, 1], false, None);
        s.idle(SystolicArray::latency(dim));
        let want = s.expected();
        let at = |c: usize| want[c].iter().map(|&v| v as u32 as i32).collect::<Vec<_>>();
        let first = 1 + 2 * dim + SystolicArray::latency(dim);
        assert_eq!(at(first), vec![65536; 4]);
        assert_eq!(at(first + 1), vec![-65024; 4]);
        assert_eq!(at(first + 2), vec![-128 * 127 + 16384 - 128; 4]);
        assert_eq!(at(first - 1), vec![0; 4]);
        s.check(true);
    }

    #[test]
    fn reset_clears_rows_in_flight_and_weights() {
        let dim = 3;
        let w = vec![vec![5, -7, 9], vec![-128, 127, 1], vec![2, 3, -4]];
        let mut s = Scenario::new(dim);
        s.cycle(true, &[0; 3], false, None);
        s.load(false, &w, &[]);
        s.cycle(false, &[1, 2, 3], false, None);
        s.cycle(false, &[-128, -128, -128], false, None);
        s.cycle(true, &[4, 5, 6], false, None); // kills both rows in flight and the weights
        s.cycle(false, &[7, 8, 9], true, None); // bank 1 was cleared too
        s.load(false, &w, &[]);
        s.cycle(false, &[1, 2, 3], false, None);
        s.idle(SystolicArray::latency(dim) + 1);
        let want = s.expected();
        assert!(want.iter().filter(|r| r.iter().any(|&v| v != 0)).count() == 1);
        s.check(true);
    }

    #[test]
    fn latency_formula() {
        assert_eq!(SystolicArray::latency(1), 1);
        assert_eq!(SystolicArray::latency(4), 7);
        assert_eq!(SystolicArray::latency(8), 15);
        let a = SystolicArray::from_config(&spec::Config::preset("ecp5-25k").unwrap());
        assert_eq!(a.dim(), 4);
    }

    #[test]
    #[should_panic(expected = "SystolicArray DIM must be in 1..=256, got 0")]
    fn dim_zero_is_rejected() {
        let _ = SystolicArray::new(0);
    }

    /// `verilator -Wall` on the generate loop finds nothing but the file-name convention (the
    /// last column's unused `act_out` / `sel_out` are waived in the text); on rust-hdl's
    /// per-instance text, exactly those unused outputs. No WIDTH warnings: no bare literals.
    #[test]
    fn array_verilog_lints_clean() {
        let lint = |verilog: &str| {
            let mut found: Vec<String> = verilator_lint(verilog, "top")
                .unwrap_or_else(|e| panic!("{e}"))
                .into_iter()
                .filter(|w| w.code != "DECLFILENAME")
                .map(|w| format!("{}: {}", w.code, w.message))
                .collect();
            found.sort();
            found
        };
        for dim in [1, 3, 8] {
            assert_eq!(lint(&array_verilog(dim)), Vec::<String>::new(), "generate loop, DIM {dim}");
        }
        for dim in [1, 3] {
            let mut want: Vec<String> = (0..dim)
                .flat_map(|k| {
                    let pe = k * dim + dim - 1;
                    [
                        format!("UNUSEDSIGNAL: Signal is not used: 'pe${pe}$act_out'"),
                        format!("UNUSEDSIGNAL: Signal is not used: 'pe${pe}$sel_out'"),
                    ]
                })
                .collect();
            want.sort();
            assert_eq!(lint(&per_instance_array_verilog(dim)), want, "per-instance, DIM {dim}");
        }
    }

    /// Yosys maps every PE's multiply onto one iCE40 DSP (SB_MAC16).
    #[test]
    fn array_maps_one_dsp_per_pe_on_ice40() {
        for dim in [1, 2] {
            let cells = ice40_cells(&array_verilog(dim), "top", true).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(cells.get("SB_MAC16"), Some(&(dim * dim)), "DIM {dim}: {cells:?}");
        }
    }

    /// The generate loop's text grows with DIM, not DIM²: one PE module, one delay module, a
    /// few lines per row port; rust-hdl visits one PE (DIM 256 in well under a second).
    #[test]
    fn generate_loop_text_is_linear_in_dim() {
        let size = |dim: usize| array_verilog(dim).len();
        let (s8, s16, s256) = (size(8), size(16), size(256));
        // ~270 bytes per row: the row ports' declarations, their names in the port list and in
        // the concatenations, one assignment per output
        assert!(s16 - s8 < 8 * 300, "8 more rows cost {} bytes", s16 - s8);
        assert!(s256 < s8 + 248 * 300, "DIM 256: {s256} bytes");
        let v = array_verilog(256);
        assert_eq!(v.matches("\nmodule ").count(), v.matches("endmodule //").count());
        assert!(v.contains("localparam DIM = 256;"));
        assert!(!v.contains("pe$1"), "no per-instance PE modules");
    }

    #[test]
    fn array_is_synthesizable() {
        for dim in [1, 2, 4] {
            yosys_validate(&format!("protobrain_array_{dim}"), &array_verilog(dim))
                .unwrap_or_else(|e| panic!("DIM {dim}: {e:?}"));
        }
    }
}
