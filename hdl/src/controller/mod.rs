//! The controller: parses the command stream, runs every opcode, answers on the output stream,
//! keeps the performance counters and applies the error rules. It is the front end's state
//! machine (WRITE_ACT rows, the responses, errors) wired to parts with one job each, one file
//! each:
//!
//! ```text
//!                    ┌──────────────────────── Controller ──────────────────────────────┐
//!  in_data/valid ───►│ HeaderDecoder (decoder.rs) ─► front end FSM (this file) ─► answers │───► out_data/valid
//!  in_ready      ◄───│  │   │   │   │   │   │                                           │◄─── out_ready
//!                    │  │   │   │   │   │   └─► WeightLoader (weight_loader.rs): shadow- │──► wl_*
//!                    │  │   │   │   │   │        bank rows, bank swap, shadow_free ◄──┐  │
//!                    │  │   │   │   │   └─────► Sequencer (sequencer.rs): MATMUL rows ─┘  │──► sp_r*, arr_*,
//!                    │  │   │   │   │           in the background, accumulator RMW, drain │    acc_*
//!                    │  │   │   │   └─────────► Activate (activate.rs): ACTIVATE rows to  │──► act_valid, sp_w*
//!                    │  │   │   │               the activation units, back to the scratch │
//!                    │  │   │   └─────────────► Readback (readback.rs): READ_ACT/READ_ACC │──► sp_r*/acc_r*, rb_load*
//!                    │  │   │                   rows out, the next row read ahead         │
//!                    │  │   └─────────────────► Counters (counters.rs): cycles, MACs,     │
//!                    │  │                       array busy, stalls, commands, errors      │
//!                    │  └─► row buffer (words <-> rows), bias, quant, WRITE_ACT rows     │──► rb_*, bias_*, q*
//!                    └──────────────────────────────────────────────────────────────────┘
//! ```
//!
//! The front end handles one command at a time; only MATMUL runs in the background, so
//! LOAD_WEIGHTS (into the shadow bank), LOAD_BIAS, SET_QUANT and the next MATMUL's arguments
//! overlap with the array working, and so do WRITE_ACT, READ_ACT, READ_ACC, ACTIVATE and
//! LOAD_TILE on the memory banks (halves) the MATMUL does not use: the sequencer owns read
//! port A of both memories, the front end port B (the bank rules in Exec). Ordering rules (what waits for what) and the cycle cost of
//! each state are documented in `docs/architecture.md`; the delays are [`spec::timing`]'s; the
//! native cycle model (`sim::native`) has the same parts under the same names and steps them
//! in this order.
//!
//! Two more parts sit on the input side: the header decoder (`decoder.rs`: what a header word
//! says, combinational) and the range check (`range_check.rs`: whether each argument's row
//! range fits its memory and which banks it touches, registered as the word is taken).
//!
//! This block is DIM-independent except for a few constants; the DIM-wide datapath (row
//! buffer, memories, array, activation units, bias registers) is wired in [`crate::core`].

mod activate;
mod counters;
mod decoder;
mod range_check;
mod readback;
mod sequencer;
mod weight_loader;

pub use activate::Activate;
pub use counters::Counters;
pub use decoder::HeaderDecoder;
pub use range_check::RangeCheck;
pub use readback::Readback;
pub use sequencer::Sequencer;
pub use weight_loader::WeightLoader;

use crate::primitives::ConstMul;
use crate::rowbuf::Pack4;
use rust_hdl::prelude::*;
use spec::isa::{opcode, COUNTER_WORDS};
use spec::{Config, VERSION};

/// States of the front end (see `docs/architecture.md` for the cycle table).
#[derive(Copy, Clone, PartialEq, Eq, Debug, LogicState)]
pub enum State {
    /// Waiting for a header word.
    Header,
    /// Consuming the payload of a refused command.
    Skip,
    /// Sending the 0xFF header.
    ErrHeader,
    /// Sending the error word.
    ErrWord,
    /// Taking payload word 0.
    Arg0,
    /// Taking payload word 1 (MATMUL, ACTIVATE).
    Arg1,
    /// Range checks, then waiting for the resources the command needs, then starting it.
    Exec,
    /// LOAD_WEIGHTS payload.
    Weights,
    /// LOAD_TILE: one scratchpad row read per cycle into the shadow bank.
    TileRows,
    /// LOAD_BIAS payload, and LOAD_QUANT's (contract v2: DIM words into the row buffer).
    Bias,
    /// WRITE_ACT rows.
    WriteRows,
    /// SYNC / COUNTERS: waiting until every earlier command has completed.
    SyncWait,
    /// Sending a response header.
    RespHeader,
    /// INFO payload.
    RespInfo,
    /// SYNC payload.
    RespToken,
    /// COUNTERS payload.
    RespCounters,
    /// READ_ACT / READ_ACC: sending the rows' words (the Readback part reads ahead).
    RowEmit,
}

/// The controller (see the module docs).
#[derive(LogicBlock)]
pub struct Controller {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset.
    pub rst: Signal<In, Bit>,
    /// Command stream in.
    pub in_data: Signal<In, Bits<32>>,
    /// `in_data` is valid.
    pub in_valid: Signal<In, Bit>,
    /// The controller takes `in_data` on this edge if `in_valid`.
    pub in_ready: Signal<Out, Bit>,
    /// Response stream out.
    pub out_data: Signal<Out, Bits<32>>,
    /// `out_data` is valid (held until taken).
    pub out_valid: Signal<Out, Bit>,
    /// The host takes `out_data` on this edge if `out_valid`.
    pub out_ready: Signal<In, Bit>,

    /// Row buffer: write `in_data` into word `rb_word_idx`.
    pub rb_word_we: Signal<Out, Bit>,
    /// Row buffer word index (write and read).
    pub rb_word_idx: Signal<Out, Bits<16>>,
    /// Row buffer word `rb_word_idx`.
    pub rb_word_out: Signal<In, Bits<32>>,
    /// Row buffer: load the scratchpad read data.
    pub rb_load8: Signal<Out, Bit>,
    /// Row buffer: load the accumulator read data.
    pub rb_load32: Signal<Out, Bit>,

    /// Scratchpad read port A (the sequencer's: MATMUL rows into the array): address.
    pub sp_raddr: Signal<Out, Bits<16>>,
    /// Port A read enable (data the next cycle).
    pub sp_ren: Signal<Out, Bit>,
    /// Scratchpad read port B (the front end's: READ_ACT, LOAD_TILE): address. The two ports
    /// never read the same bank on one edge (the bank rules, docs/architecture.md).
    pub sp_raddr_b: Signal<Out, Bits<16>>,
    /// Port B read enable.
    pub sp_ren_b: Signal<Out, Bit>,
    /// Scratchpad write address.
    pub sp_waddr: Signal<Out, Bits<16>>,
    /// Scratchpad write enable.
    pub sp_we: Signal<Out, Bit>,
    /// Scratchpad write data: activation unit outputs (1) or the row buffer (0).
    pub sp_wsel_act: Signal<Out, Bit>,

    /// Write row buffer bytes into weight row `wl_row` of bank `wl_bank`.
    pub wl_en: Signal<Out, Bit>,
    /// Weight row (k) being written.
    pub wl_row: Signal<Out, Bits<16>>,
    /// Bank being written (always the shadow bank).
    pub wl_bank: Signal<Out, Bit>,
    /// The weight row comes from the scratchpad's read data (LOAD_TILE), not the row buffer.
    pub wl_from_sp: Signal<Out, Bit>,

    /// Write `in_data` into bias register `bias_idx`.
    pub bias_we: Signal<Out, Bit>,
    /// Bias register index.
    pub bias_idx: Signal<Out, Bits<16>>,

    /// SET_QUANT: write `in_data`'s M (bits 15:0) and S (21:16) into every column's registers.
    pub qs_we: Signal<Out, Bit>,
    /// LOAD_QUANT: write each column's M and S from its row buffer word (bits 15:0, 21:16).
    pub ql_we: Signal<Out, Bit>,
    /// ReLU enable.
    pub q_relu: Signal<Out, Bit>,
    /// Output zero point Z (int8 as raw bits).
    pub q_zero: Signal<Out, Bits<8>>,

    /// A row enters the array this cycle (the scratchpad read data of the last cycle).
    pub arr_valid: Signal<Out, Bit>,
    /// Its weight bank.
    pub arr_sel: Signal<Out, Bit>,

    /// Accumulator read port A (the sequencer's: MATMUL read-modify-write): address.
    pub acc_raddr: Signal<Out, Bits<16>>,
    /// Port A read enable.
    pub acc_ren: Signal<Out, Bit>,
    /// Accumulator read port B (the front end's: ACTIVATE, READ_ACC): address.
    pub acc_raddr_b: Signal<Out, Bits<16>>,
    /// Port B read enable.
    pub acc_ren_b: Signal<Out, Bit>,
    /// Accumulator write address (MATMUL write back).
    pub acc_waddr: Signal<Out, Bits<16>>,
    /// Write `psum (+ old)` this cycle.
    pub acc_we: Signal<Out, Bit>,
    /// Add the old accumulator row (accumulate) instead of overwriting.
    pub acc_accumulate: Signal<Out, Bit>,

    /// The accumulator read data of this cycle goes into the activation units.
    pub act_valid: Signal<Out, Bit>,

    /// LANES > 1: words 1..LANES of the input beat (`in_data` is lane 0). Empty at LANES 1.
    pub in_lanes: Vec<Signal<In, Bits<32>>>,
    /// LANES > 1: words 1..LANES of the output beat (`out_data` is lane 0; 0 where a unit's
    /// beat has no word). Empty at LANES 1.
    pub out_lanes: Vec<Signal<Out, Bits<32>>>,
    /// LANES > 1: words 1..LANES of row buffer beat `rb_word_idx`. Empty at LANES 1.
    pub rb_lanes_out: Vec<Signal<In, Bits<32>>>,

    state: DFF<State>,
    op: DFF<Bits<8>>,
    remaining: DFF<Bits<24>>,
    err_code: DFF<Bits<8>>,
    a0: DFF<Bits<32>>,
    a1: DFF<Bits<32>>,
    idx: DFF<Bits<16>>,
    addr: DFF<Bits<16>>,
    left: DFF<Bits<16>>,
    resp_hdr: DFF<Bits<32>>,
    q_relu_r: DFF<Bit>,
    q_zero_r: DFF<Bits<8>>,
    // LOAD_QUANT: a shift > 47 seen in an earlier word; the columns load the cycle after the
    // last word (ql_pending) only if none was
    q_bad: DFF<Bit>,
    ql_pending: DFF<Bit>,
    // from the header: the command is LOAD_QUANT (in Bias), SET_QUANT has 2 words
    is_lq: DFF<Bit>,
    sq_two: DFF<Bit>,
    // WRITE_ACT: a row complete in the row buffer, written to the scratchpad the next cycle
    sw_pending: DFF<Bit>,
    sw_addr: DFF<Bits<16>>,
    // LOAD_TILE: the weight row written next cycle is the scratchpad row read now
    tile_row: DFF<Bit>,
    // LOAD_TILE: src + DIM <= SCRATCH_ROWS, computed as the argument arrives
    // the parts
    dec: HeaderDecoder,
    rc: RangeCheck,
    wload: WeightLoader,
    seq: Sequencer,
    act: Activate,
    rbk: Readback,
    counters: Counters,
    snap_index: Vec<Constant<Bits<16>>>,

    // combinational helpers
    take: Signal<Local, Bit>,
    sent: Signal<Local, Bit>,
    cmd_done: Signal<Local, Bit>,
    err_done: Signal<Local, Bit>,
    issue: Signal<Local, Bit>,
    shift_bad: Signal<Local, Bit>,
    mul_a: Signal<Local, Bits<16>>,
    mul_w: ConstMul,
    mul_d: ConstMul,
    prod: Signal<Local, Bits<32>>,
    len_m1: DFF<Bits<24>>,
    err_word: Pack4,
    arr_idle: Signal<Local, Bit>,
    seq_idle: Signal<Local, Bit>,
    last_word: Signal<Local, Bits<16>>,

    // constants
    c_op_info: Constant<Bits<8>>,
    c_op_sync: Constant<Bits<8>>,
    c_op_load_tile: Constant<Bits<8>>,
    c_op_set_quant: Constant<Bits<8>>,
    c_op_write_act: Constant<Bits<8>>,
    c_op_read_act: Constant<Bits<8>>,
    c_op_matmul: Constant<Bits<8>>,
    c_op_activate: Constant<Bits<8>>,
    c_op_read_acc: Constant<Bits<8>>,
    c_op_counters: Constant<Bits<8>>,
    c_code_unknown: Constant<Bits<8>>,
    c_code_length: Constant<Bits<8>>,
    c_code_range: Constant<Bits<8>>,
    c_len0: Constant<Bits<24>>,
    c_len1: Constant<Bits<24>>,
    c_dim_m1: Constant<Bits<16>>,
    c_wpr_m1: Constant<Bits<16>>,
    /// SCRATCH_ROWS mod 2^16, and whether SCRATCH_ROWS = 2^16 (same for ACC_ROWS).
    /// Rows of one scratchpad / accumulator bank.
    c_max_shift: Constant<Bits<6>>,
    c_hdr_error: Constant<Bits<32>>,
    c_hdr_info: Constant<Bits<32>>,
    c_hdr_sync: Constant<Bits<32>>,
    c_hdr_counters: Constant<Bits<32>>,
    c_hdr_read_act: Constant<Bits<32>>,
    c_hdr_read_acc: Constant<Bits<32>>,
    c_info_version: Constant<Bits<32>>,
    c_info_dim: Constant<Bits<32>>,
    c_info_scratch: Constant<Bits<32>>,
    c_info_acc: Constant<Bits<32>>,
    c_last_info: Constant<Bits<16>>,
    c_last_counter: Constant<Bits<16>>,
    c_one16: Constant<Bits<16>>,
    c_zero16: Constant<Bits<16>>,
    c_two16: Constant<Bits<16>>,
    c_zero8: Constant<Bits<8>>,

    // ---- LANES > 1 only (every vector empty at LANES 1, so that the LANES 1 text is the one
    // of the 32-bit link); see "LANES" in the module docs ----
    // `for ll in _lanes_lo.._lanes_hi`: one pass with ll = LANES at LANES > 1, none at LANES 1
    _lanes_lo: usize,
    // `for _ in _narrow_lo.._narrow_hi`: one pass at LANES 1, none at LANES > 1
    _narrow_lo: usize,
    _narrow_hi: usize,
    _lanes_hi: usize,
    // WRITE_ACT refused for its range: its rows are consumed (row units) but not written
    discard: Vec<DFF<Bit>>,
    c_lanes24: Vec<Constant<Bits<24>>>,
    c_zero32: Vec<Constant<Bits<32>>>,
    // per lane 1..LANES: the lane holds a word in the last beat of a DIM-word row (LOAD_QUANT)
    c_lane_in_last: Vec<Constant<Bit>>,
    // INFO's and COUNTERS' words as beats: word b·LANES + j in `[ll * b + j]`, 0 past the end
    info_beat: Vec<Constant<Bits<16>>>,
    info_tab: Vec<Constant<Bits<32>>>,
    cnt_beat: Vec<Constant<Bits<16>>>,
    cnt_tab: Vec<Signal<Local, Bits<32>>>,
}

fn k<const N: usize>(v: u64) -> Constant<Bits<N>> {
    Constant::new(v.into())
}

impl Controller {
    /// A controller for `cfg`, its delays and countdowns from [`spec::timing`].
    pub fn new(cfg: &Config) -> Self {
        let d = cfg.dim() as u64;
        let w = cfg.words_per_row() as u64;
        let hdr = |op: u8, len: u64| k::<32>(((op as u64) << 24) | len);
        let l = cfg.lanes().get() as u64;
        // the counts below are beats: words at LANES 1
        let beats = |words: u64| words.div_ceil(l);
        let wide = |n: u64| if l > 1 { n } else { 0 };
        let info = [VERSION.into(), d, cfg.scratch_rows() as u64, cfg.acc_rows() as u64];
        let (nbi, nbc) = (beats(4), beats(COUNTER_WORDS as u64));
        Controller {
            clock: Default::default(),
            rst: Default::default(),
            in_data: Default::default(),
            in_valid: Default::default(),
            in_ready: Default::default(),
            out_data: Default::default(),
            out_valid: Default::default(),
            out_ready: Default::default(),
            rb_word_we: Default::default(),
            rb_word_idx: Default::default(),
            rb_word_out: Default::default(),
            rb_load8: Default::default(),
            rb_load32: Default::default(),
            sp_raddr: Default::default(),
            sp_ren: Default::default(),
            sp_raddr_b: Default::default(),
            sp_ren_b: Default::default(),
            sp_waddr: Default::default(),
            sp_we: Default::default(),
            sp_wsel_act: Default::default(),
            wl_en: Default::default(),
            wl_row: Default::default(),
            wl_bank: Default::default(),
            wl_from_sp: Default::default(),
            bias_we: Default::default(),
            bias_idx: Default::default(),
            qs_we: Default::default(),
            ql_we: Default::default(),
            q_relu: Default::default(),
            q_zero: Default::default(),
            arr_valid: Default::default(),
            arr_sel: Default::default(),
            acc_raddr: Default::default(),
            acc_ren: Default::default(),
            acc_raddr_b: Default::default(),
            acc_ren_b: Default::default(),
            acc_waddr: Default::default(),
            acc_we: Default::default(),
            acc_accumulate: Default::default(),
            act_valid: Default::default(),
            in_lanes: (1..l).map(|_| Default::default()).collect(),
            out_lanes: (1..l).map(|_| Default::default()).collect(),
            rb_lanes_out: (1..l).map(|_| Default::default()).collect(),
            state: Default::default(),
            op: Default::default(),
            remaining: Default::default(),
            err_code: Default::default(),
            a0: Default::default(),
            a1: Default::default(),
            idx: Default::default(),
            addr: Default::default(),
            left: Default::default(),
            resp_hdr: Default::default(),
            q_relu_r: Default::default(),
            q_zero_r: Default::default(),
            q_bad: Default::default(),
            ql_pending: Default::default(),
            is_lq: Default::default(),
            sq_two: Default::default(),
            sw_pending: Default::default(),
            sw_addr: Default::default(),
            tile_row: Default::default(),
            dec: HeaderDecoder::new(cfg.dim()),
            rc: RangeCheck::new(cfg),
            wload: WeightLoader::new(cfg.dim()),
            seq: Sequencer::new(cfg.dim()),
            act: Activate::new(cfg.dim()),
            rbk: Readback::new(),
            counters: Counters::new(cfg.dim()),
            snap_index: (0..COUNTER_WORDS as u64).map(k::<16>).collect(),
            take: Default::default(),
            sent: Default::default(),
            cmd_done: Default::default(),
            err_done: Default::default(),
            issue: Default::default(),
            shift_bad: Default::default(),
            mul_a: Default::default(),
            mul_w: ConstMul::new(w as u16),
            mul_d: ConstMul::new(d as u16),
            prod: Default::default(),
            len_m1: Default::default(),
            err_word: Default::default(),
            arr_idle: Default::default(),
            seq_idle: Default::default(),
            last_word: Default::default(),
            c_op_info: k(opcode::INFO.into()),
            c_op_sync: k(opcode::SYNC.into()),
            c_op_load_tile: k(opcode::LOAD_TILE.into()),
            c_op_set_quant: k(opcode::SET_QUANT.into()),
            c_op_write_act: k(opcode::WRITE_ACT.into()),
            c_op_read_act: k(opcode::READ_ACT.into()),
            c_op_matmul: k(opcode::MATMUL.into()),
            c_op_activate: k(opcode::ACTIVATE.into()),
            c_op_read_acc: k(opcode::READ_ACC.into()),
            c_op_counters: k(opcode::COUNTERS.into()),
            c_code_unknown: k(1),
            c_code_length: k(2),
            c_code_range: k(3),
            c_len0: k(0),
            c_len1: k(1),
            c_dim_m1: k(beats(d) - 1),
            c_wpr_m1: k(beats(w) - 1),
            c_max_shift: k(spec::arith::MAX_SHIFT.into()),
            c_hdr_error: hdr(opcode::ERROR, 1),
            c_hdr_info: hdr(0x81, 4),
            c_hdr_sync: hdr(0x82, 1),
            c_hdr_counters: hdr(0xC0, COUNTER_WORDS as u64),
            c_hdr_read_act: hdr(0xA1, 0),
            c_hdr_read_acc: hdr(0xB2, 0),
            c_info_version: k(VERSION.into()),
            c_info_dim: k(d),
            c_info_scratch: k(cfg.scratch_rows() as u64),
            c_info_acc: k(cfg.acc_rows() as u64),
            c_last_info: k(nbi - 1),
            c_last_counter: k(nbc - 1),
            c_one16: k(1),
            c_zero16: k(0),
            c_two16: k(2),
            c_zero8: k(0),
            _lanes_lo: if l > 1 { l as usize } else { 1 },
            _narrow_lo: 0,
            _narrow_hi: if l > 1 { 0 } else { 1 },
            _lanes_hi: if l > 1 { l as usize + 1 } else { 1 },
            discard: (0..wide(1)).map(|_| Default::default()).collect(),
            c_lanes24: (0..wide(1)).map(|_| k(l)).collect(),
            c_zero32: (0..wide(1)).map(|_| k(0)).collect(),
            c_lane_in_last: (1..l).map(|j| Constant::new((beats(d) - 1) * l + j < d)).collect(),
            info_beat: (0..wide(nbi)).map(k).collect(),
            info_tab: (0..wide(nbi * l)).map(|i| k(info.get(i as usize).copied().unwrap_or(0))).collect(),
            cnt_beat: (0..wide(nbc)).map(k).collect(),
            cnt_tab: (0..wide(nbc * l)).map(|_| Default::default()).collect(),
        }
    }
}

#[allow(clippy::needless_range_loop, clippy::collapsible_else_if)]
impl Logic for Controller {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, state, op, remaining, err_code, len_m1, a0, a1, idx, addr, left, resp_hdr, q_relu_r,
            q_zero_r, q_bad, ql_pending, is_lq, sq_two, sw_pending, sw_addr, tile_row
        );
        self.wload.clock.next = self.clock.val();
        self.wload.rst.next = self.rst.val();
        self.seq.clock.next = self.clock.val();
        self.seq.rst.next = self.rst.val();
        self.act.clock.next = self.clock.val();
        self.act.rst.next = self.rst.val();
        self.rbk.clock.next = self.clock.val();
        self.rbk.rst.next = self.rst.val();
        self.counters.clock.next = self.clock.val();
        self.counters.rst.next = self.rst.val();
        for w in 0..self.discard.len() {
            self.discard[w].clock.next = self.clock.val();
            self.discard[w].d.next = self.discard[w].q.val();
        }

        // ---- defaults of every output and helper ----
        self.in_ready.next = false;
        self.out_valid.next = false;
        self.out_data.next = self.resp_hdr.q.val();
        self.rb_word_we.next = false;
        self.rb_word_idx.next = self.idx.q.val();
        self.rb_load8.next = false;
        self.rb_load32.next = false;
        self.cmd_done.next = false;
        self.err_done.next = false;
        self.sw_pending.d.next = false;
        self.wload.clear.next = false;
        self.wload.row_done.next = false;
        self.wload.swap.next = false;
        // the ACTIVATE engine (activate.rs): started by Exec, reads its rows in the background
        self.act.load.next = false;
        self.act.load_src.next = self.a0.q.val().get_bits::<16>(0);
        self.act.load_n.next = self.a0.q.val().get_bits::<16>(16);
        self.act.load_dst.next = self.a1.q.val().get_bits::<16>(0);
        self.act.load_acc_lo.next = self.rc.a_acc_lo.val();
        self.act.load_acc_hi.next = self.rc.a_acc_hi.val();
        self.counters.sample.next = false;

        // ---- header classification (combinational, from in_data): every opcode and every
        // expected length compared in parallel, then one level of AND/OR (a flat decoder keeps
        // the header -> next-state path short) ----
        self.dec.word.next = self.in_data.val();

        // ---- shared arithmetic: n * row words, and range ends (17 bits, no wrap) ----
        if self.state.q.val() == State::Arg0 {
            self.mul_a.next = self.in_data.val().get_bits::<16>(16);
        } else {
            self.mul_a.next = self.a0.q.val().get_bits::<16>(16);
        }
        self.mul_w.n.next = self.mul_a.val();
        self.mul_d.n.next = self.mul_a.val();
        if self.op.q.val() == self.c_op_read_acc.val() {
            self.prod.next = self.mul_d.p.val();
        } else {
            self.prod.next = self.mul_w.p.val();
        }
        // ---- the MATMUL sequencer (sequencer.rs): started by Exec, issues in the background ----
        self.seq_idle.next = self.seq.seq_idle.val();
        self.arr_idle.next = self.seq.arr_idle.val();
        self.issue.next = self.seq.issue.val();
        self.seq.start.next = false;
        self.seq.start_addr.next = self.a0.q.val().get_bits::<16>(0);
        self.seq.start_rows.next = self.a0.q.val().get_bits::<16>(16);
        self.seq.start_dst.next = self.a1.q.val().get_bits::<16>(0);
        self.seq.start_acc.next = self.a1.q.val().get_bit(16);
        self.seq.start_bank.next = self.wload.next_bank.val();
        self.seq.start_sp_touch0.next = self.rc.a_sp_lo.val();
        self.seq.start_sp_touch1.next = self.rc.a_sp_hi.val();
        self.seq.start_acc_touch0.next = self.rc.b_acc_lo.val();
        self.seq.start_acc_touch1.next = self.rc.b_acc_hi.val();
        // read port A is the sequencer's, port B the front end's
        self.sp_ren.next = self.issue.val();
        self.sp_raddr.next = self.seq.sp_raddr.val();
        self.sp_ren_b.next = false;
        self.sp_raddr_b.next = self.addr.q.val();
        self.acc_ren_b.next = false;
        self.acc_raddr_b.next = self.addr.q.val();
        self.arr_valid.next = self.seq.arr_valid.val();
        self.arr_sel.next = self.seq.arr_sel.val();
        // read-modify-write of the accumulators (the sequencer's timing)
        self.acc_we.next = self.seq.acc_we.val();
        self.acc_accumulate.next = self.seq.acc_accumulate.val();
        self.acc_waddr.next = self.seq.acc_waddr.val();
        self.acc_ren.next = self.seq.rmw_ren.val();
        self.acc_raddr.next = self.seq.rmw_raddr.val();

        // ---- READ_ACT / READ_ACC read-back (readback.rs): reads ahead while rows are sent,
        // through read port B of banks no MATMUL uses (the Exec state's bank rules) ----
        self.rbk.start.next = false;
        self.rbk.start_addr.next = self.a0.q.val().get_bits::<16>(0);
        self.rbk.start_rows.next = self.a0.q.val().get_bits::<16>(16);
        if self.rbk.ren.val() {
            if self.op.q.val() == self.c_op_read_acc.val() {
                self.acc_ren_b.next = true;
                self.acc_raddr_b.next = self.rbk.raddr.val();
            } else {
                self.sp_ren_b.next = true;
                self.sp_raddr_b.next = self.rbk.raddr.val();
            }
        }
        if self.rbk.load.val() {
            if self.op.q.val() == self.c_op_read_acc.val() {
                self.rb_load32.next = true;
            } else {
                self.rb_load8.next = true;
            }
        }
        if self.state.q.val() == State::RowEmit {
            self.rb_word_idx.next = self.rbk.word_idx.val();
        }

        // ---- the ACTIVATE engine: acc read (port B) -> activation units -> scratchpad write;
        // READ_ACC, the other user of port B, waits for the engine to be idle ----
        if self.act.ren.val() {
            self.acc_ren_b.next = true;
            self.acc_raddr_b.next = self.act.raddr.val();
        }
        self.act_valid.next = self.act.act_valid.val();

        // ---- weight and scratchpad row writes (the cycle after a row is complete) ----
        self.wload.bank0_busy.next = self.seq.bank0_busy.val();
        self.wload.bank1_busy.next = self.seq.bank1_busy.val();
        self.wl_en.next = self.wload.wl_en.val();
        self.wl_row.next = self.wload.wl_row.val();
        self.wl_bank.next = self.wload.wl_bank.val();
        self.wl_from_sp.next = self.tile_row.q.val();
        self.tile_row.d.next = false;
        self.sp_we.next = self.sw_pending.q.val() || self.act.wb_valid.val();
        self.sp_wsel_act.next = !self.sw_pending.q.val();
        if self.sw_pending.q.val() {
            self.sp_waddr.next = self.sw_addr.q.val();
        } else {
            self.sp_waddr.next = self.act.wb_dst.val();
        }
        self.bias_we.next = false;
        self.bias_idx.next = self.idx.q.val();
        self.qs_we.next = false;
        self.ql_we.next = self.ql_pending.q.val();
        self.ql_pending.d.next = false;
        self.q_relu.next = self.q_relu_r.q.val();
        self.q_zero.next = self.q_zero_r.q.val();
        self.shift_bad.next = self.in_data.val().get_bits::<6>(16) > self.c_max_shift.val();
        // LANES > 1: LOAD_QUANT checks every word of the beat (not the padding of the last)
        for _ll in self._lanes_lo..self._lanes_hi {
            if self.state.q.val() == State::Bias {
                for j in 0..self.in_lanes.len() {
                    if ((self.idx.q.val() != self.c_dim_m1.val()) || self.c_lane_in_last[j].val())
                        && (self.in_lanes[j].val().get_bits::<6>(16) > self.c_max_shift.val())
                    {
                        self.shift_bad.next = true;
                    }
                }
            }
        }

        if self.op.q.val() == self.c_op_read_acc.val() {
            self.last_word.next = self.c_dim_m1.val();
        } else {
            self.last_word.next = self.c_wpr_m1.val();
        }
        self.rbk.last_word.next = self.last_word.val();

        // ---- input handshake ----
        match self.state.q.val() {
            State::Header => self.in_ready.next = true,
            State::Skip => self.in_ready.next = true,
            // SET_QUANT, LOAD_BIAS and LOAD_QUANT write the activation registers: not while
            // the ACTIVATE engine uses them
            State::Arg0 => {
                self.in_ready.next = self.act.idle.val() || (self.op.q.val() != self.c_op_set_quant.val())
            }
            State::Arg1 => {
                self.in_ready.next = self.act.idle.val() || (self.op.q.val() != self.c_op_set_quant.val())
            }
            State::Bias => self.in_ready.next = self.act.idle.val(),
            State::WriteRows => self.in_ready.next = true,
            State::Weights => self.in_ready.next = self.wload.shadow_free.val(),
            _ => {}
        }
        self.take.next = self.in_ready.val() && self.in_valid.val();
        // LANES > 1: MATMUL's and ACTIVATE's second word came in Arg0's beat (held in a1);
        // Arg1 takes it from there, without a beat
        for _ll in self._lanes_lo..self._lanes_hi {
            if self.state.q.val() == State::Arg1 {
                self.in_ready.next = false;
                self.take.next = true;
            }
        }

        // the range check (range_check.rs): each argument word's verdicts, registered
        self.rc.clock.next = self.clock.val();
        // one write per evaluation (a second write of another value would glitch the range
        // check's input, and its outputs glitching back make Icarus loop in a time step)
        for _ll in self._narrow_lo..self._narrow_hi {
            self.rc.word.next = self.in_data.val();
        }
        for _ll in self._lanes_lo..self._lanes_hi {
            if self.state.q.val() == State::Arg1 {
                self.rc.word.next = self.a1.q.val();
            } else {
                self.rc.word.next = self.in_data.val();
            }
        }
        self.rc.take_a.next = self.take.val() && (self.state.q.val() == State::Arg0);
        self.rc.take_b.next = self.take.val() && (self.state.q.val() == State::Arg1);
        self.rc.a_n.next = self.a0.q.val().get_bits::<16>(16);
        // the ACTIVATE engine checks word 0's range against its scratchpad rows, and range B's
        // accumulator banks against its own
        self.act.word.next = self.rc.word.val();
        self.act.take_a.next = self.rc.take_a.val();
        self.seq.word.next = self.rc.word.val();
        self.seq.take_a.next = self.rc.take_a.val();
        self.act.b_acc_lo.next = self.rc.b_acc_lo.val();
        self.act.b_acc_hi.next = self.rc.b_acc_hi.val();
        self.act.tile.next = self.op.q.val() == self.c_op_load_tile.val();
        self.rc.op.next = self.op.q.val();
        self.rc.sp_free0.next = self.seq.sp_free0.val();
        self.rc.sp_free1.next = self.seq.sp_free1.val();
        self.rc.acc_quiet0.next = self.seq.acc_quiet0.val();
        self.rc.acc_quiet1.next = self.seq.acc_quiet1.val();

        // ---- output word ----
        self.err_word.b0.next = self.err_code.q.val();
        self.err_word.b1.next = self.op.q.val();
        self.err_word.b2.next = self.c_zero8.val();
        self.err_word.b3.next = self.c_zero8.val();
        match self.state.q.val() {
            State::ErrHeader => {
                self.out_valid.next = true;
                self.out_data.next = self.c_hdr_error.val();
            }
            State::ErrWord => {
                self.out_valid.next = true;
                self.out_data.next = self.err_word.word.val();
            }
            State::RespHeader => {
                self.out_valid.next = true;
                self.out_data.next = self.resp_hdr.q.val();
            }
            State::RespInfo => {
                self.out_valid.next = true;
                self.out_data.next = self.c_info_version.val();
                if self.idx.q.val() == self.c_one16.val() {
                    self.out_data.next = self.c_info_dim.val();
                }
                if self.idx.q.val() == self.c_two16.val() {
                    self.out_data.next = self.c_info_scratch.val();
                }
                if self.idx.q.val() == self.c_last_info.val() {
                    self.out_data.next = self.c_info_acc.val();
                }
            }
            State::RespToken => {
                self.out_valid.next = true;
                self.out_data.next = self.a0.q.val();
            }
            State::RespCounters => {
                self.out_valid.next = true;
                for i in 0..self.snap_index.len() {
                    if self.idx.q.val() == self.snap_index[i].val() {
                        self.out_data.next = self.counters.snap[i].val();
                    }
                }
            }
            State::RowEmit => {
                self.out_valid.next = self.rbk.valid.val();
                self.out_data.next = self.rb_word_out.val();
            }
            _ => {}
        }
        // LANES > 1: the other lanes of the beat: 0 but in INFO's, COUNTERS' and the rows'
        // beats (lane 0 of INFO's and COUNTERS' beats too)
        for ll in self._lanes_lo..self._lanes_hi {
            for j in 0..self.out_lanes.len() {
                self.out_lanes[j].next = self.c_zero32[0].val();
            }
            for i in 0..self.snap_index.len() {
                self.cnt_tab[i].next = self.counters.snap[i].val();
            }
            for i in self.snap_index.len()..self.cnt_tab.len() {
                self.cnt_tab[i].next = self.c_zero32[0].val();
            }
            if self.state.q.val() == State::RespInfo {
                for b in 0..self.info_beat.len() {
                    if self.idx.q.val() == self.info_beat[b].val() {
                        self.out_data.next = self.info_tab[ll * b].val();
                        for j in 0..self.out_lanes.len() {
                            self.out_lanes[j].next = self.info_tab[ll * b + j + 1].val();
                        }
                    }
                }
            }
            if self.state.q.val() == State::RespCounters {
                for b in 0..self.cnt_beat.len() {
                    if self.idx.q.val() == self.cnt_beat[b].val() {
                        self.out_data.next = self.cnt_tab[ll * b].val();
                        for j in 0..self.out_lanes.len() {
                            self.out_lanes[j].next = self.cnt_tab[ll * b + j + 1].val();
                        }
                    }
                }
            }
            if self.state.q.val() == State::RowEmit {
                for j in 0..self.out_lanes.len() {
                    self.out_lanes[j].next = self.rb_lanes_out[j].val();
                }
            }
        }
        self.sent.next = self.out_valid.val() && self.out_ready.val();
        self.rbk.sent.next = self.sent.val() && (self.state.q.val() == State::RowEmit);

        // ---- the front-end state machine ----
        match self.state.q.val() {
            State::Header => {
                // Loaded on every Header cycle, not only when the header is taken: nothing
                // reads them before the state moves on, which needs a take, and their enables
                // stay off the in_valid -> take path (iCE40 timing).
                self.op.d.next = self.dec.op.val();
                self.remaining.d.next = self.dec.len.val();
                self.idx.d.next = self.c_zero16.val();
                self.wload.clear.next = true;
                self.len_m1.d.next = self.dec.len.val() - self.c_len1.val();
                self.q_bad.d.next = false;
                self.is_lq.d.next = self.dec.is_load_quant.val();
                self.sq_two.d.next = self.dec.len2.val();
                // the code is only read if this header is refused
                if self.dec.known.val() {
                    self.err_code.d.next = self.c_code_length.val();
                } else {
                    self.err_code.d.next = self.c_code_unknown.val();
                }
                if self.take.val() {
                    if !(self.dec.known.val() && self.dec.len_ok.val()) {
                        if self.dec.len0.val() {
                            self.state.d.next = State::ErrHeader;
                        } else {
                            self.state.d.next = State::Skip;
                        }
                    } else if self.dec.is_info.val() {
                        self.resp_hdr.d.next = self.c_hdr_info.val();
                        self.state.d.next = State::RespHeader;
                    } else if self.dec.is_counters.val() {
                        self.state.d.next = State::SyncWait;
                    } else if self.dec.is_load_weights.val() {
                        self.state.d.next = State::Weights;
                    } else if self.dec.is_load_bias.val() || self.dec.is_load_quant.val() {
                        self.state.d.next = State::Bias;
                    } else {
                        self.state.d.next = State::Arg0;
                    }
                }
            }
            State::Skip => {
                if self.take.val() {
                    self.remaining.d.next = self.remaining.q.val() - self.c_len1.val();
                    if self.remaining.q.val() == self.c_len1.val() {
                        self.state.d.next = State::ErrHeader;
                    }
                }
            }
            State::ErrHeader => {
                if self.sent.val() {
                    self.state.d.next = State::ErrWord;
                }
            }
            State::ErrWord => {
                if self.sent.val() {
                    self.cmd_done.next = true;
                    self.err_done.next = true;
                    self.state.d.next = State::Header;
                }
            }
            State::Arg0 => {
                if self.take.val() {
                    self.a0.d.next = self.in_data.val();
                    self.remaining.d.next = self.remaining.q.val() - self.c_len1.val();
                    // the code is only read if this command is refused here
                    if self.op.q.val() == self.c_op_set_quant.val() {
                        self.err_code.d.next = self.c_code_range.val();
                    } else {
                        self.err_code.d.next = self.c_code_length.val();
                    }
                    if self.op.q.val() == self.c_op_sync.val() {
                        self.state.d.next = State::SyncWait;
                    } else if self.op.q.val() == self.c_op_set_quant.val() {
                        // 1 word: M, S, relu and Z = 0; 2 words: Z follows (Arg1). A bad
                        // shift refuses both forms, after the second word if there is one.
                        if self.shift_bad.val() {
                            if self.sq_two.q.val() {
                                self.state.d.next = State::Skip;
                            } else {
                                self.state.d.next = State::ErrHeader;
                            }
                        } else {
                            self.qs_we.next = true;
                            self.q_relu_r.d.next = self.in_data.val().get_bit(24);
                            self.q_zero_r.d.next = self.c_zero8.val();
                            if self.sq_two.q.val() {
                                self.state.d.next = State::Arg1;
                            } else {
                                self.cmd_done.next = true;
                                self.state.d.next = State::Header;
                            }
                        }
                    } else if self.op.q.val() == self.c_op_write_act.val() {
                        if self.len_m1.q.val() != self.prod.val().get_bits::<24>(0) {
                            if self.remaining.q.val() == self.c_len1.val() {
                                self.state.d.next = State::ErrHeader;
                            } else {
                                self.state.d.next = State::Skip;
                            }
                        } else {
                            self.state.d.next = State::Exec;
                        }
                    } else if self.op.q.val() == self.c_op_matmul.val()
                        || self.op.q.val() == self.c_op_activate.val()
                    {
                        self.state.d.next = State::Arg1;
                    } else {
                        self.state.d.next = State::Exec;
                    }
                }
            }
            State::Arg1 => {
                if self.take.val() {
                    self.a1.d.next = self.in_data.val();
                    if self.op.q.val() == self.c_op_set_quant.val() {
                        self.q_zero_r.d.next = self.in_data.val().get_bits::<8>(0);
                        self.cmd_done.next = true;
                        self.state.d.next = State::Header;
                    } else {
                        self.state.d.next = State::Exec;
                    }
                }
            }
            State::Exec => {
                self.addr.d.next = self.a0.q.val().get_bits::<16>(0);
                self.left.d.next = self.a0.q.val().get_bits::<16>(16);
                self.idx.d.next = self.c_zero16.val();
                // the code is only read if the ranges are refused
                self.err_code.d.next = self.c_code_range.val();
                if !self.rc.range_ok.val() {
                    if self.remaining.q.val() == self.c_len0.val()
                        || self.op.q.val() != self.c_op_write_act.val()
                    {
                        self.state.d.next = State::ErrHeader;
                    } else {
                        self.state.d.next = State::Skip;
                    }
                } else if self.op.q.val() == self.c_op_matmul.val() {
                    // and its rows meet none the ACTIVATE engine writes (scratchpad) and its
                    // banks none it reads (accumulators: a bank has one read port)
                    if self.seq_idle.val() && !self.act.sp_clash.val() && !self.act.acc_clash.val() {
                        // the shadow bank swaps in if a whole tile was loaded
                        self.seq.start.next = true;
                        self.wload.swap.next = true;
                        self.cmd_done.next = true;
                        self.state.d.next = State::Header;
                    }
                } else if self.op.q.val() == self.c_op_activate.val() {
                    // reads accumulator rows (range A), writes scratchpad rows (range B): the
                    // engine takes it from here (one ACTIVATE at a time)
                    if self.rc.acc_ok_a.val() && self.rc.sp_ok_b.val() && self.act.idle.val() {
                        self.act.load.next = true;
                        self.cmd_done.next = true;
                        self.state.d.next = State::Header;
                    }
                } else if self.op.q.val() == self.c_op_write_act.val() {
                    // the scratchpad's write port is the engine's while it runs; a MATMUL
                    // reading other rows (the bank's read port) does not matter
                    if self.seq.rows_free.val() && self.act.idle.val() {
                        if self.a0.q.val().get_bits::<16>(16) == self.c_zero16.val() {
                            self.cmd_done.next = true;
                            self.state.d.next = State::Header;
                        } else {
                            self.state.d.next = State::WriteRows;
                        }
                    }
                } else if self.op.q.val() == self.c_op_load_tile.val() {
                    if self.rc.sp_ok_t.val() && !self.act.sp_clash.val() {
                        self.state.d.next = State::TileRows;
                    }
                } else if self.op.q.val() == self.c_op_read_act.val() {
                    if self.rc.sp_ok_a.val() && !self.act.sp_clash.val() {
                        self.resp_hdr.d.next = self.c_hdr_read_act.val() | self.prod.val();
                        self.rbk.start.next = true;
                        self.state.d.next = State::RespHeader;
                    }
                } else {
                    // READ_ACC (read port B is the engine's while it runs)
                    if self.rc.acc_ok_a.val() && self.act.idle.val() {
                        self.resp_hdr.d.next = self.c_hdr_read_acc.val() | self.prod.val();
                        self.rbk.start.next = true;
                        self.state.d.next = State::RespHeader;
                    }
                }
            }
            State::Weights => {
                if self.take.val() {
                    self.rb_word_we.next = true;
                    if self.idx.q.val() == self.c_wpr_m1.val() {
                        self.idx.d.next = self.c_zero16.val();
                        self.wload.row_done.next = true;
                        if self.wload.last_row.val() {
                            self.cmd_done.next = true;
                            self.state.d.next = State::Header;
                        }
                    } else {
                        self.idx.d.next = self.idx.q.val() + self.c_one16.val();
                    }
                }
            }
            State::TileRows => {
                // row k: scratchpad row src + k read now, written to the shadow bank on the
                // next edge (the loader's pending row, its data the scratchpad's read data),
                // once no row of the shadow bank is in the array
                if self.wload.shadow_free.val() {
                    self.sp_ren_b.next = true;
                    self.sp_raddr_b.next = self.addr.q.val();
                    self.addr.d.next = self.addr.q.val() + self.c_one16.val();
                    self.wload.row_done.next = true;
                    self.tile_row.d.next = true;
                    if self.wload.last_row.val() {
                        self.cmd_done.next = true;
                        self.state.d.next = State::Header;
                    }
                }
            }
            State::Bias => {
                if self.take.val() {
                    // LOAD_BIAS: the bias registers; LOAD_QUANT: the row buffer, any S > 47
                    // remembered, the columns loaded the cycle after the last word if none was
                    if self.is_lq.q.val() {
                        self.rb_word_we.next = true;
                    } else {
                        self.bias_we.next = true;
                    }
                    if self.shift_bad.val() {
                        self.q_bad.d.next = true;
                    }
                    self.idx.d.next = self.idx.q.val() + self.c_one16.val();
                    if self.idx.q.val() == self.c_dim_m1.val() {
                        if self.is_lq.q.val() && (self.q_bad.q.val() || self.shift_bad.val()) {
                            self.err_code.d.next = self.c_code_range.val();
                            self.state.d.next = State::ErrHeader;
                        } else {
                            self.ql_pending.d.next = self.is_lq.q.val();
                            self.cmd_done.next = true;
                            self.state.d.next = State::Header;
                        }
                    }
                }
            }
            State::WriteRows => {
                if self.take.val() {
                    self.rb_word_we.next = true;
                    if self.idx.q.val() == self.c_wpr_m1.val() {
                        self.idx.d.next = self.c_zero16.val();
                        self.sw_pending.d.next = true;
                        self.sw_addr.d.next = self.addr.q.val();
                        self.addr.d.next = self.addr.q.val() + self.c_one16.val();
                        self.left.d.next = self.left.q.val() - self.c_one16.val();
                        if self.left.q.val() == self.c_one16.val() {
                            self.cmd_done.next = true;
                            self.state.d.next = State::Header;
                        }
                    } else {
                        self.idx.d.next = self.idx.q.val() + self.c_one16.val();
                    }
                }
            }
            State::SyncWait => {
                self.idx.d.next = self.c_zero16.val();
                if self.arr_idle.val()
                    && !self.wload.wl_en.val()
                    && !self.sw_pending.q.val()
                    && self.act.idle.val()
                {
                    if self.op.q.val() == self.c_op_sync.val() {
                        self.resp_hdr.d.next = self.c_hdr_sync.val();
                    } else {
                        self.resp_hdr.d.next = self.c_hdr_counters.val();
                        self.counters.sample.next = true;
                    }
                    self.state.d.next = State::RespHeader;
                }
            }
            State::RespHeader => {
                if self.sent.val() {
                    if self.op.q.val() == self.c_op_info.val() {
                        self.state.d.next = State::RespInfo;
                    } else if self.op.q.val() == self.c_op_sync.val() {
                        self.state.d.next = State::RespToken;
                    } else if self.op.q.val() == self.c_op_counters.val() {
                        self.state.d.next = State::RespCounters;
                    } else if self.left.q.val() == self.c_zero16.val() {
                        self.cmd_done.next = true;
                        self.state.d.next = State::Header;
                    } else {
                        self.state.d.next = State::RowEmit;
                    }
                }
            }
            State::RespInfo => {
                if self.sent.val() {
                    self.idx.d.next = self.idx.q.val() + self.c_one16.val();
                    if self.idx.q.val() == self.c_last_info.val() {
                        self.cmd_done.next = true;
                        self.state.d.next = State::Header;
                    }
                }
            }
            State::RespToken => {
                if self.sent.val() {
                    self.cmd_done.next = true;
                    self.state.d.next = State::Header;
                }
            }
            State::RespCounters => {
                if self.sent.val() {
                    self.idx.d.next = self.idx.q.val() + self.c_one16.val();
                    if self.idx.q.val() == self.c_last_counter.val() {
                        self.cmd_done.next = true;
                        self.state.d.next = State::Header;
                    }
                }
            }
            State::RowEmit => {
                if self.rbk.sent.val() && self.rbk.last.val() {
                    self.cmd_done.next = true;
                    self.state.d.next = State::Header;
                }
            }
            _ => {
                self.state.d.next = State::Header;
            }
        }

        // ---- LANES > 1: the front end by beats (what differs from the words above) ----
        for _ll in self._lanes_lo..self._lanes_hi {
            // a refused command's payload as dense beats
            if (self.state.q.val() == State::Skip) && self.take.val() {
                self.remaining.d.next = self.remaining.q.val() - self.c_lanes24[0].val();
                if self.remaining.q.val() <= self.c_lanes24[0].val() {
                    self.state.d.next = State::ErrHeader;
                }
            }
            // the argument words in one beat: a1 from lane 1; SET_QUANT's Z there too
            if (self.state.q.val() == State::Arg0) && self.take.val() {
                self.a1.d.next = self.in_lanes[0].val();
                if (self.op.q.val() == self.c_op_set_quant.val()) && self.sq_two.q.val() {
                    if self.shift_bad.val() {
                        self.state.d.next = State::ErrHeader;
                    } else {
                        self.q_zero_r.d.next = self.in_lanes[0].val().get_bits::<8>(0);
                        self.cmd_done.next = true;
                        self.state.d.next = State::Header;
                    }
                }
            }
            if self.state.q.val() == State::Arg1 {
                self.a1.d.next = self.a1.q.val();
            }
            // a WRITE_ACT refused for its range: its rows consumed as row units, not written
            if self.state.q.val() == State::Header {
                self.discard[0].d.next = false;
            }
            if (self.state.q.val() == State::Exec)
                && !self.rc.range_ok.val()
                && (self.op.q.val() == self.c_op_write_act.val())
                && (self.remaining.q.val() != self.c_len0.val())
            {
                self.discard[0].d.next = true;
                self.state.d.next = State::WriteRows;
            }
            if (self.state.q.val() == State::WriteRows) && self.discard[0].q.val() {
                self.rb_word_we.next = false;
                self.sw_pending.d.next = false;
                if self.take.val()
                    && (self.idx.q.val() == self.c_wpr_m1.val())
                    && (self.left.q.val() == self.c_one16.val())
                {
                    self.cmd_done.next = false;
                    self.state.d.next = State::ErrHeader;
                }
            }
            if self.rst.val() {
                self.discard[0].d.next = false;
            }
        }

        // ---- counters (counters.rs) ----
        self.counters.issue.next = self.issue.val();
        self.counters.arr_busy.next = !self.arr_idle.val();
        self.counters.in_ready.next = self.in_ready.val();
        self.counters.in_valid.next = self.in_valid.val();
        self.counters.out_valid.next = self.out_valid.val();
        self.counters.out_ready.next = self.out_ready.val();
        self.counters.cmd_done.next = self.cmd_done.val();
        self.counters.err_done.next = self.err_done.val();

        // ---- synchronous reset: the last word on every register ----
        if self.rst.val() {
            self.state.d.next = State::Header;
            self.q_relu_r.d.next = false;
            self.q_zero_r.d.next = self.c_zero8.val();
            self.ql_pending.d.next = false;
            self.sw_pending.d.next = false;
            self.tile_row.d.next = false;
        }
    }
}
