//! The native cycle model of `protobrain_core`: the controller's front-end state machine
//! stepped cycle by cycle exactly as `hdl::controller` does it, and the datapath computed in
//! bulk with [`spec::arith`] instead of PE by PE.
//!
//! The controller's parts are the RTL's, under the same names (`hdl/src/controller/<part>.rs`
//! and `sim/src/native/<part>.rs`): `weight_loader` (shadow-bank rows, the bank swap),
//! `sequencer` (MATMUL rows, the drain countdowns), `activate` (ACTIVATE's destination and
//! drain), `readback`, `range_check` (the argument ranges and the banks they touch) and
//! `counters` (the header decoder is `spec::isa::check_header`); `NativeSim::step` computes
//! each part's next registers in the RTL's order: the sequencer's issue, the front end (which
//! starts the sequencer, swaps the banks, completes weight rows, issues ACTIVATE rows), then
//! `activate` and `counters` from what the front end did this cycle. The delays are
//! [`spec::timing`]'s.
//!
//! ```text
//!            ┌────────────────────────────── NativeSim ───────────────────────────────┐
//! HostOut ─► │ front end: the RTL's registers, one step per cycle (FSM, counters)     │─► DeviceOut
//!            │   │ LOAD_WEIGHTS rows ─► bank[!cur] (i16, k-major), after bank_cnt     │
//!            │   │ MATMUL ─► sequencer: one row per cycle                             │
//!            │   │   scratch row ─► kernel: DIM sums now ─► rows Pipe ─┐              │
//!            │   │                     (lands at issue + L + 1)        ▼              │
//!            │   │                                 acc[dst] = or += sums              │
//!            │   │ ACTIVATE ─► acc row ─► requantize now ─► acts Pipe ─► scratch[dst] │
//!            │   │                     (lands at read + 1 + A)                        │
//!            │   └ READ_ACT, READ_ACC, INFO, SYNC, COUNTERS, 0xFF: row buffer, words  │
//!            └────────────────────────────────────────────────────────────────────────┘
//!   L = array latency 2·DIM − 1 ([`array_latency`]),  A = activation latency ([`ACT_LATENCY`])
//! ```
//!
//! # What is exact
//! Every register of the controller that is visible on the ports or in a COUNTERS response is
//! modelled with the RTL's widths, reset values and update order: `in_ready`, `out_valid` and
//! `out_data` (even while `out_valid` is low: the last response header) are the RTL's on every
//! cycle, for any input stream, stall pattern and reset. The memories change on the cycle the
//! RTL writes them:
//! * a MATMUL row issued (scratchpad read) on cycle `t` has its DIM sums computed right away
//!   with its bank's weights and is written to the accumulators on the edge of cycle
//!   `t + L + 1` (the RTL reads the old row on `t + L` and writes on `t + L + 1`);
//! * an ACTIVATE row read on cycle `c` is requantised right away and written to the scratchpad
//!   on the edge of cycle `c + 1 + A`;
//! * WRITE_ACT rows and LOAD_WEIGHTS rows are written the cycle after their last word.
//!
//! Computing a row's sums at issue rather than as it moves through the PEs is exact because
//! its bank cannot change while it is in flight: weights are only written to the shadow bank,
//! and only after `bank_cnt` of that bank counted down from `L + 1` (the RTL's interlock).
//! Applying an accumulate with the accumulator row as it is on the write cycle rather than as
//! read one cycle earlier is exact because rows of one MATMUL have distinct addresses and
//! two MATMULs' rows enter at least two cycles apart (the RTL relies on the same fact).
//!
//! A reset cycle is an ordinary cycle followed by the RTL's reset values: the row writes due on
//! it still land, rows due later are lost, both weight banks, the bias registers and the
//! quantisation are cleared, the memories keep their contents.
//!
//! Everything observable is checked against the RTL (rust-hdl every port every cycle, Icarus
//! traces), resets on every cycle of a busy program included, by the tests in `lockstep.rs`.
//!
//! # LANES > 1
//! On a link of LANES words per beat (docs/design.md "A wider link: LANES") the front end is
//! the RTL's by beats (`hdl::controller`, its `_lanes_lo` blocks): the same states, registers
//! and cycles, with `idx` counting beats — a row of ⌈DIM/4⌉ words is ⌈⌈DIM/4⌉/LANES⌉ beats
//! (`bpr`), a unit of DIM words ⌈DIM/LANES⌉ (`bdim`: LOAD_BIAS, LOAD_QUANT, READ_ACC rows),
//! INFO's and COUNTERS' responses ⌈4/LANES⌉ and ⌈9/LANES⌉ beats; a refused command's payload is
//! skipped as dense beats (`remaining` falls by LANES a beat). The argument words come in one
//! beat: Arg0 loads `a1` from lane 1 too, Arg1 takes no beat (`in_ready` low) but still spends
//! its cycle, and a SET_QUANT with Z finishes in Arg0 (Z from lane 1; a bad shift errors at
//! once). A WRITE_ACT refused for its range consumes its rows as row units in WriteRows with
//! `discard` set (nothing written, no scratchpad write) and then errors. The row buffer takes a
//! whole beat (word `idx·LANES + j` from lane j, those past DIM dropped) and sends one (zeros
//! past DIM); column n's bias comes from lane n % LANES of beat n / LANES; LOAD_QUANT checks
//! the shift of every word of a beat but the last beat's padding. Every other lane of the output
//! beat is 0. `step_with::<true>` is that front end; at LANES 1 `step_with::<false>` compiles
//! the beat logic out. [`CycleSim::tick_beat`] drives a beat; `run_stream` and `pump` take and
//! give flattened beats (see the crate docs).
//!
//! # Speed
//! [`CycleSim::tick`] steps one cycle (the sums of an issued row are one vectorised kernel
//! call, `kernel.rs`). [`CycleSim::run_stream`] and [`CycleSim::idle`] also fast-forward the
//! cycles where the front end only waits or only takes payload words (`bulk.rs`), which is most
//! of a GEMM. The fast paths hold at every LANES: blind windows are the same, input runs take
//! a payload beat per cycle and output runs send a read-back beat per cycle (a refused
//! WRITE_ACT's discarded rows, like LOAD_QUANT's words, go one cycle at a time). On a shared 2-core machine (the other core busy), a tiled GEMM program runs at
//! ~110 M simulated cycles/s at DIM 4, ~90 M at DIM 8 and ~60 M at DIM 16 (~17 GMAC/s
//! MATMUL-bound); the Verilator model of the same core does 0.2-0.3 M cycles/s at DIM 8-16.
//! Reproduce: `cargo test --release -p protobrain-sim throughput -- --ignored --nocapture`.

mod activate;
mod bulk;
pub use bulk::Stretch;
mod counters;
mod host;
mod kernel;
mod pipe;
mod range_check;
mod readback;
mod sequencer;
mod weight_loader;

#[cfg(test)]
mod lockstep;
#[cfg(test)]
mod tests;

use spec::arith::{requantize_v2, ColumnScale, MAX_SHIFT};
use spec::isa::{header, opcode, Counters, COUNTER_WORDS};
use spec::lanes::MAX_LANES;
use spec::stream::{DeviceOut, HostOut, Stalls, Stuck, Trace};
use spec::{Config, VERSION};

use crate::activity::Activity;
use crate::CycleSim;
use activate::{Activate, Load, Taken};
use counters::Events;
use host::FastHost;
use kernel::RowKernel;
use pipe::{Landing, Pipe};
use readback::Readback;
use sequencer::Sequencer;
use weight_loader::WeightLoader;

/// Cycles of the activation units and of the array: [`spec::timing`], as the RTL's
/// (`hdl::activation::ActivationUnit::LATENCY`, `hdl::array::SystolicArray::latency`).
pub use spec::timing::{array_latency, ACT_LATENCY};

/// The controller's front-end states: the RTL's own enum, so the model cannot drift from it.
use hdl::controller::State;

/// The controller's registers (names and widths as in `hdl::controller`); zero at power-on.
#[derive(Debug, Clone, Copy, Default)]
struct Regs {
    state: State,
    op: u8,
    /// 24 bits.
    remaining: u32,
    err_code: u8,
    a0: u32,
    a1: u32,
    idx: u16,
    addr: u16,
    left: u16,
    resp_hdr: u32,
    q_relu: bool,
    /// Z as raw bits.
    q_zero: u8,
    q_bad: bool,
    ql_pending: bool,
    /// From the header: LOAD_QUANT (its words go through Bias), a 2-word SET_QUANT.
    is_lq: bool,
    sq_two: bool,
    sw_pending: bool,
    sw_addr: u16,
    /// LOAD_TILE: the pending weight row is scratchpad row `tile_src` (read on the last edge;
    /// the RTL holds its data in the scratchpad's read register, and nothing writes that row
    /// in between), not the row buffer.
    tile_row: bool,
    tile_src: u16,
    /// LANES > 1: a WRITE_ACT refused for its range consumes its rows (as row units) without
    /// writing them, then errors.
    discard: bool,
    /// The parts (as `hdl::controller`'s, in their files of the same names).
    wl: WeightLoader,
    seq: Sequencer,
    act: Activate,
    rbk: Readback,
    ctr: counters::Counters,
}

const MASK24: u32 = 0x00FF_FFFF;

/// The native cycle-accurate model of one `protobrain_core` (see the module docs).
///
/// ```
/// use sim::{native::NativeSim, CycleSim};
/// use spec::isa::Command;
/// use spec::stream::Stalls;
///
/// let cfg = spec::Config::new(4, 64, 64).unwrap();
/// let mut words = Vec::new();
/// Command::Sync { token: 7 }.encode_into(4, &mut words).unwrap();
/// let mut sim = NativeSim::new(&cfg);
/// let trace = sim.run_stream(&words, &Stalls::none(), 10_000).unwrap();
/// // header taken on cycle 0, token on 1, SyncWait on 2: the response goes out on 3 and 4
/// assert_eq!(trace.outputs, vec![(3, 0x8200_0001), (4, 7)]);
/// ```
#[derive(Clone)]
pub struct NativeSim {
    cfg: Config,
    dim: usize,
    wpr: usize,
    /// LANES: words per beat.
    lanes: usize,
    /// Beats of a row of ⌈DIM/4⌉ words (LOAD_WEIGHTS, WRITE_ACT, READ_ACT): `wpr` at LANES 1.
    bpr: usize,
    /// Beats of a row of DIM words (LOAD_BIAS, LOAD_QUANT, READ_ACC): DIM at LANES 1.
    bdim: usize,
    scratch_mask: usize,
    acc_mask: usize,
    /// `L + 1`: the array drain count reloaded on every issue.
    arr_drain: u16,
    /// Absolute ticks since construction (schedules the pipelines; never reset).
    now: u64,
    r: Regs,
    snap: [u32; COUNTER_WORDS],
    scratch: Vec<i8>,
    acc: Vec<i32>,
    /// Weight banks, `[k * dim + n]`, widened for the kernel.
    weights: [Vec<i16>; 2],
    /// Zero weights in each row `k` of each bank (for [`Activity::zero_operand_macs`]).
    zero_weights: [Vec<u32>; 2],
    bias: Vec<i32>,
    /// Each column's M and S (the core's `q_mult[i]`, `q_shift[i]` registers).
    scales: Vec<ColumnScale>,
    /// The row buffer: DIM words (int32 row) = 4·DIM bytes (int8 row in bytes 0..DIM).
    rowbuf: Vec<u32>,
    /// The words of the last output run (`bulk.rs`), kept to reuse the allocation.
    sent: Vec<u32>,
    /// MATMUL rows between issue and accumulator write.
    rows: Pipe<i32>,
    /// ACTIVATE rows between accumulator read and scratchpad write.
    acts: Pipe<i8>,
    kernel: RowKernel,
    activity: Activity,
}

impl NativeSim {
    /// A core for `cfg` at power-on: every register and memory zero (as the emitted Verilog's
    /// initial values), ready for a header; beats of `cfg.lanes()` words.
    pub fn new(cfg: &Config) -> Self {
        let dim = cfg.dim();
        let lat = array_latency(dim);
        let lanes = cfg.lanes().get();
        NativeSim {
            cfg: *cfg,
            dim,
            wpr: cfg.words_per_row(),
            lanes,
            bpr: cfg.words_per_row().div_ceil(lanes),
            bdim: dim.div_ceil(lanes),
            scratch_mask: cfg.scratch_rows() - 1,
            acc_mask: cfg.acc_rows() - 1,
            arr_drain: spec::timing::array_drain(dim) as u16,
            now: 0,
            r: Regs::default(),
            snap: [0; COUNTER_WORDS],
            scratch: vec![0; cfg.scratch_rows() * dim],
            acc: vec![0; cfg.acc_rows() * dim],
            weights: [vec![0; dim * dim], vec![0; dim * dim]],
            zero_weights: [vec![dim as u32; dim], vec![dim as u32; dim]],
            bias: vec![0; dim],
            scales: vec![ColumnScale::default(); dim],
            rowbuf: vec![0; dim],
            sent: Vec::new(),
            rows: Pipe::new(dim, lat + 3),
            acts: Pipe::new(dim, ACT_LATENCY + 3),
            kernel: kernel::select(dim),
            activity: Activity::default(),
        }
    }

    /// Activity since the last reset (or construction).
    pub fn activity(&self) -> Activity {
        self.activity
    }

    /// The performance counter registers as they are now (a COUNTERS command snapshots them
    /// once every earlier command has completed).
    pub fn counters(&self) -> Counters {
        self.r.ctr.words()
    }

    /// Scratchpad row `row` (DIM int8) as it is now.
    ///
    /// # Panics
    /// If `row >= SCRATCH_ROWS`.
    pub fn scratch_row(&self, row: usize) -> &[i8] {
        assert!(row < self.cfg.scratch_rows(), "scratchpad row {row} of {}", self.cfg.scratch_rows());
        &self.scratch[row * self.dim..(row + 1) * self.dim]
    }

    /// Accumulator row `row` (DIM int32) as it is now.
    ///
    /// # Panics
    /// If `row >= ACC_ROWS`.
    pub fn acc_row(&self, row: usize) -> &[i32] {
        assert!(row < self.cfg.acc_rows(), "accumulator row {row} of {}", self.cfg.acc_rows());
        &self.acc[row * self.dim..(row + 1) * self.dim]
    }

    /// True when the core waits for a header with nothing in flight: no MATMUL rows, no
    /// ACTIVATE rows, no pending row writes.
    pub fn is_quiescent(&self) -> bool {
        let r = &self.r;
        r.state == State::Header
            && !r.seq.busy
            && r.seq.arr_cnt == 0
            && r.act.idle()
            && !r.wl.pending
            && !r.sw_pending
            && self.rows.len() == 0
            && self.acts.len() == 0
    }

    /// The row buffer's bytes `0..DIM` (the int8 row it holds) into `dst`.
    #[inline]
    fn unpack_rowbuf(rowbuf: &[u32], dst: &mut [i8]) {
        for (chunk, w) in dst.chunks_mut(4).zip(rowbuf) {
            for (d, b) in chunk.iter_mut().zip(w.to_le_bytes()) {
                *d = b as i8;
            }
        }
    }

    /// The row buffer loaded from memory row `at` (accumulators for READ_ACC, else the
    /// scratchpad; the int8 row packed four to a word, high words zero).
    fn load_rowbuf(&mut self, op: u8, at: u16) {
        let (at, dim) = (usize::from(at), self.dim);
        if op == opcode::READ_ACC {
            let src = (at & self.acc_mask) * dim;
            for (w, &v) in self.rowbuf.iter_mut().zip(&self.acc[src..src + dim]) {
                *w = v as u32;
            }
        } else {
            let src = (at & self.scratch_mask) * dim;
            self.rowbuf.fill(0);
            for (w, chunk) in self.rowbuf.iter_mut().zip(self.scratch[src..src + dim].chunks(4)) {
                let mut b = [0u8; 4];
                for (b, &v) in b.iter_mut().zip(chunk) {
                    *b = v as u8;
                }
                *w = u32::from_le_bytes(b);
            }
        }
    }

    /// The output ports for registers `q` (combinational in the RTL).
    #[inline]
    fn outputs(&self, q: &Regs) -> (bool, u32) {
        match q.state {
            State::ErrHeader => (true, header(opcode::ERROR, 1)),
            State::ErrWord => (true, u32::from(q.err_code) | (u32::from(q.op) << 8)),
            State::RespHeader => (true, q.resp_hdr),
            State::RespInfo => (
                true,
                match q.idx {
                    1 => self.dim as u32,
                    2 => self.cfg.scratch_rows() as u32,
                    3 => self.cfg.acc_rows() as u32,
                    _ => VERSION,
                },
            ),
            State::RespToken => (true, q.a0),
            State::RespCounters => (true, self.snap.get(usize::from(q.idx)).copied().unwrap_or(q.resp_hdr)),
            State::RowEmit => (q.rbk.loaded, self.rowbuf.get(usize::from(q.rbk.idx)).copied().unwrap_or(0)),
            _ => (false, q.resp_hdr),
        }
    }

    /// LANES > 1: the output beat's lane 0 (given the word logic's `lane0`) and lanes 1..
    /// (`lanes_out`): INFO's and COUNTERS' words and the rows as beats, 0 elsewhere (the RTL's
    /// `out_lanes`, and its overrides of `out_data`).
    #[inline]
    fn outputs_lanes(&self, q: &Regs, lane0: u32, lanes_out: &mut [u32]) -> u32 {
        let l = self.lanes;
        let base = l * usize::from(q.idx);
        lanes_out.fill(0);
        let mut fill = |word: &dyn Fn(usize) -> u32| {
            for (j, w) in lanes_out.iter_mut().enumerate() {
                *w = word(base + 1 + j);
            }
            word(base)
        };
        match q.state {
            State::RespInfo if usize::from(q.idx) < 4usize.div_ceil(l) => {
                let info =
                    [VERSION, self.dim as u32, self.cfg.scratch_rows() as u32, self.cfg.acc_rows() as u32];
                fill(&|i| info.get(i).copied().unwrap_or(0))
            }
            State::RespCounters if usize::from(q.idx) < COUNTER_WORDS.div_ceil(l) => {
                fill(&|i| self.snap.get(i).copied().unwrap_or(0))
            }
            State::RowEmit => {
                let base = l * usize::from(q.rbk.idx);
                for (j, w) in lanes_out.iter_mut().enumerate() {
                    *w = self.rowbuf.get(base + 1 + j).copied().unwrap_or(0);
                }
                self.rowbuf.get(base).copied().unwrap_or(0)
            }
            _ => lane0,
        }
    }

    /// LANES > 1: the row buffer's write port: beat `idx` (lane 0 `data`, lanes 1.. `rest`)
    /// into words `idx·LANES ..`, those past DIM dropped.
    #[inline]
    fn write_beat(&mut self, idx: u16, data: u32, rest: &[u32]) {
        let base = self.lanes * usize::from(idx);
        if let Some(w) = self.rowbuf.get_mut(base) {
            *w = data;
        }
        for (j, &v) in rest.iter().enumerate() {
            if let Some(w) = self.rowbuf.get_mut(base + 1 + j) {
                *w = v;
            }
        }
    }

    /// Beats per row of `op`'s payload or response (words at LANES 1): the read-back's last
    /// word index plus one.
    #[inline]
    fn beats_per_row(&self, op: u8) -> usize {
        if op == opcode::READ_ACC {
            self.bdim
        } else {
            self.bpr
        }
    }

    /// `n * w` as the RTL's 16x16 multiplier computes it, `n` the row count of payload word 0.
    #[inline]
    fn row_words(&self, a0: u32, op: u8) -> u32 {
        (a0 >> 16) * self.words_per_row(op) as u32
    }

    /// Words per row of `op`'s payload or response: DIM int32 (READ_ACC) or ⌈DIM/4⌉ words of
    /// packed int8 (the other row commands).
    #[inline]
    fn words_per_row(&self, op: u8) -> usize {
        if op == opcode::READ_ACC {
            self.dim
        } else {
            self.wpr
        }
    }

    /// The range check of the Exec state (`range_check.rs`).
    fn range_ok(&self, q: &Regs) -> bool {
        range_check::range_ok(&self.cfg, q.op, q.a0, q.a1)
    }

    /// The banks the command in Exec touches (`range_check.rs`).
    fn touches(&self, q: &Regs) -> ([bool; 2], [bool; 2], [bool; 2], [bool; 2]) {
        range_check::touches(&self.cfg, q.op, q.a0, q.a1)
    }

    /// One clock cycle with `rst` as given (see [`CycleSim::tick`]); at LANES > 1 lanes 1.. of
    /// the input beat are zero and those of the output beat are dropped.
    #[inline]
    fn step(&mut self, inp: HostOut, rst: bool) -> DeviceOut {
        if self.lanes == 1 {
            self.step_with::<false>(inp, &[], rst, &mut [])
        } else {
            let mut out = [0u32; MAX_LANES];
            let l = self.lanes - 1;
            self.step_with::<true>(inp, &[0; MAX_LANES][..l], rst, &mut out[..l])
        }
    }

    /// One clock cycle on a beat: lane 0 in `inp.in_data`, lanes 1.. in `lanes_in`, the output
    /// beat's lanes 1.. into `lanes_out` (lane 0 in the result). `WIDE` is LANES > 1 (the
    /// model at LANES 1 is `step_with::<false>` with empty lanes, the beat logic compiled out).
    fn step_with<const WIDE: bool>(
        &mut self,
        inp: HostOut,
        lanes_in: &[u32],
        rst: bool,
        lanes_out: &mut [u32],
    ) -> DeviceOut {
        let q = self.r;
        let mut d = q;
        let now = self.now;
        let dim = self.dim;

        // ---- ports (combinational) ----
        let in_ready = match q.state {
            State::Header | State::Skip | State::WriteRows => true,
            // SET_QUANT, LOAD_BIAS and LOAD_QUANT set the registers the ACTIVATE engine uses
            State::Arg0 => q.act.idle() || q.op != opcode::SET_QUANT,
            State::Bias => q.act.idle(),
            // LANES > 1: Arg1 takes its word from Arg0's beat, without a beat
            State::Arg1 => !WIDE && (q.act.idle() || q.op != opcode::SET_QUANT),
            State::Weights => !q.seq.bank_busy(q.wl.shadow()),
            _ => false,
        };
        let take = (in_ready && inp.in_valid) || (WIDE && q.state == State::Arg1);
        let (out_valid, mut out_data) = self.outputs(&q);
        if WIDE {
            out_data = self.outputs_lanes(&q, out_data, lanes_out);
        }
        let sent = out_valid && inp.out_ready;
        let issue = q.seq.issue();

        // ---- the memories on this edge: reads see the old contents, then the writes ----
        if q.wl.pending {
            let bank = usize::from(!q.wl.cur_bank);
            let (w, z) = (&mut self.weights[bank], &mut self.zero_weights[bank]);
            if q.tile_row {
                let src = (usize::from(q.tile_src) & self.scratch_mask) * dim;
                bulk::set_weight_row(&self.scratch[src..src + dim], w, z, q.wl.wl_row);
            } else {
                bulk::write_weight_row(&self.rowbuf, w, z, q.wl.wl_row);
            }
            self.activity.weight_row_writes += 1;
        }
        if q.ql_pending {
            // LOAD_QUANT's columns, from the row buffer the cycle after its last word
            for (c, &w) in self.scales.iter_mut().zip(&self.rowbuf) {
                *c = ColumnScale { multiplier: w as u16, shift: ((w >> 16) & 0x3F) as u8 };
            }
        }
        if issue {
            let src = usize::from(q.seq.addr) & self.scratch_mask;
            let bank = usize::from(q.seq.bank);
            let x = &self.scratch[src * dim..(src + 1) * dim];
            let due = now + u64::from(self.arr_drain);
            let sums = self.rows.push(Landing { due, dst: q.seq.dst, accumulate: q.seq.acc });
            let zero_macs = (self.kernel)(x, &self.weights[bank], &self.zero_weights[bank], sums, false);
            let a = &mut self.activity;
            a.macs += (dim * dim) as u64;
            a.zero_operand_macs += zero_macs;
            a.scratch_reads += 1;
        }
        if q.act.issue() {
            let src = usize::from(q.act.src) & self.acc_mask;
            let due = now + spec::timing::ACT_WRITEBACK_DELAY as u64;
            let y = self.acts.push(Landing { due, dst: q.act.dst, accumulate: false });
            let acc = &self.acc[src * dim..(src + 1) * dim];
            for (y, ((&a, &b), &c)) in y.iter_mut().zip(acc.iter().zip(&self.bias).zip(&self.scales)) {
                *y = requantize_v2(a, b, c, q.q_relu, q.q_zero as i8);
            }
            self.activity.acc_reads += 1;
            self.activity.act_rows += 1;
        }
        // READ_ACT / READ_ACC read-back: a row read ahead, the row buffer loaded
        let last_word = (self.beats_per_row(q.op) - 1) as u16;
        let rbk_sent = sent && q.state == State::RowEmit;
        let (rbk, edge) = q.rbk.next(rbk_sent, last_word);
        d.rbk = rbk;
        if edge.read {
            if q.op == opcode::READ_ACC {
                self.activity.acc_reads += 1;
            } else {
                self.activity.scratch_reads += 1;
            }
        }
        if let Some(at) = edge.load {
            self.load_rowbuf(q.op, at);
        }

        if self.rows.front().is_some_and(|l| l.due == now) {
            let (l, sums) = self.rows.pop();
            let dst = (usize::from(l.dst) & self.acc_mask) * dim;
            bulk::land_acc(&mut self.acc[dst..dst + dim], sums, l.accumulate);
            self.activity.acc_reads += 1;
            self.activity.acc_writes += 1;
        }
        let act_lands = self.acts.front().is_some_and(|l| l.due == now);
        if q.sw_pending {
            // the row buffer wins the scratchpad's write port (the RTL's sp_wsel_act)
            let dst = (usize::from(q.sw_addr) & self.scratch_mask) * dim;
            Self::unpack_rowbuf(&self.rowbuf, &mut self.scratch[dst..dst + dim]);
            self.activity.scratch_writes += 1;
            if act_lands {
                self.acts.pop();
            }
        } else if act_lands {
            let (l, y) = self.acts.pop();
            let dst = (usize::from(l.dst) & self.scratch_mask) * dim;
            self.scratch[dst..dst + dim].copy_from_slice(y);
            self.activity.scratch_writes += 1;
        }

        // ---- the MATMUL sequencer and the countdowns ----
        d.seq = q.seq.next(self.arr_drain);
        let seq_idle = q.seq.seq_idle();
        let arr_idle = q.seq.arr_idle();

        // ---- the front end ----
        d.wl.pending = false;
        d.sw_pending = false;
        d.tile_row = false;
        d.ql_pending = false;
        let mut cmd_done = false;
        let mut err_done = false;
        let mut act_load = None;
        let data = inp.in_data;
        match q.state {
            State::Header => {
                if WIDE {
                    d.discard = false;
                }
                if take {
                    let (op, len) = ((data >> 24) as u8, data & MASK24);
                    d.op = op;
                    d.remaining = len;
                    d.idx = 0;
                    d.wl.row = 0;
                    d.q_bad = false;
                    d.is_lq = op == opcode::LOAD_QUANT;
                    d.sq_two = len == 2;
                    // the header decoder (`hdl::controller::decoder`) is spec's check
                    match spec::isa::check_header(op, len, &self.cfg) {
                        Err(code) => {
                            d.err_code = code as u8;
                            d.state = if len == 0 { State::ErrHeader } else { State::Skip };
                        }
                        Ok(()) => match op {
                            opcode::INFO => {
                                d.resp_hdr = header(opcode::INFO | 0x80, 4);
                                d.state = State::RespHeader;
                            }
                            opcode::COUNTERS => d.state = State::SyncWait,
                            opcode::LOAD_WEIGHTS => d.state = State::Weights,
                            opcode::LOAD_BIAS | opcode::LOAD_QUANT => d.state = State::Bias,
                            _ => d.state = State::Arg0,
                        },
                    }
                }
            }
            State::Skip => {
                if take {
                    if WIDE {
                        // a refused command's payload as dense beats
                        let l = self.lanes as u32;
                        d.remaining = q.remaining.wrapping_sub(l) & MASK24;
                        if q.remaining <= l {
                            d.state = State::ErrHeader;
                        }
                    } else {
                        d.remaining = q.remaining.wrapping_sub(1) & MASK24;
                        if q.remaining == 1 {
                            d.state = State::ErrHeader;
                        }
                    }
                }
            }
            State::ErrHeader => {
                if sent {
                    d.state = State::ErrWord;
                }
            }
            State::ErrWord => {
                if sent {
                    cmd_done = true;
                    err_done = true;
                    d.state = State::Header;
                }
            }
            State::Arg0 => {
                if take {
                    d.a0 = data;
                    d.remaining = q.remaining.wrapping_sub(1) & MASK24;
                    match q.op {
                        opcode::SYNC => d.state = State::SyncWait,
                        opcode::SET_QUANT => {
                            let shift = ((data >> 16) & 0x3F) as u8;
                            d.err_code = 3;
                            if shift > MAX_SHIFT {
                                d.state = if q.sq_two { State::Skip } else { State::ErrHeader };
                            } else {
                                let c = ColumnScale { multiplier: data as u16, shift };
                                self.scales.fill(c);
                                d.q_relu = (data >> 24) & 1 == 1;
                                d.q_zero = 0;
                                if q.sq_two {
                                    d.state = State::Arg1;
                                } else {
                                    cmd_done = true;
                                    d.state = State::Header;
                                }
                            }
                        }
                        opcode::WRITE_ACT => {
                            let want = (self.row_words(data, q.op) & MASK24).wrapping_add(1) & MASK24;
                            if q.remaining != want {
                                d.err_code = 2;
                                d.state = if q.remaining == 1 { State::ErrHeader } else { State::Skip };
                            } else {
                                d.state = State::Exec;
                            }
                        }
                        opcode::MATMUL | opcode::ACTIVATE => d.state = State::Arg1,
                        _ => d.state = State::Exec,
                    }
                    if WIDE {
                        // the argument words in one beat: a1 from lane 1, SET_QUANT's Z too
                        d.a1 = lanes_in[0];
                        if q.op == opcode::SET_QUANT && q.sq_two {
                            if ((data >> 16) & 0x3F) as u8 > MAX_SHIFT {
                                d.state = State::ErrHeader;
                            } else {
                                d.q_zero = lanes_in[0] as u8;
                                cmd_done = true;
                                d.state = State::Header;
                            }
                        }
                    }
                }
            }
            State::Arg1 => {
                if take {
                    // LANES > 1: a1 came in Arg0's beat and is held
                    d.a1 = if WIDE { q.a1 } else { data };
                    if q.op == opcode::SET_QUANT {
                        d.q_zero = data as u8;
                        cmd_done = true;
                        d.state = State::Header;
                    } else {
                        d.state = State::Exec;
                    }
                }
            }
            State::Exec => {
                d.addr = q.a0 as u16;
                d.left = (q.a0 >> 16) as u16;
                d.idx = 0;
                let n = (q.a0 >> 16) as u16;
                if !self.range_ok(&q) {
                    d.err_code = 3;
                    d.state = if q.remaining == 0 || q.op != opcode::WRITE_ACT {
                        State::ErrHeader
                    } else if WIDE {
                        // LANES > 1: its rows consumed as row units, not written
                        d.discard = true;
                        State::WriteRows
                    } else {
                        State::Skip
                    };
                } else {
                    let (sp_a, acc_a, sp_b, acc_b) = self.touches(&q);
                    match q.op {
                        opcode::MATMUL => {
                            // and its rows meet none the ACTIVATE engine writes, its banks none
                            // it reads
                            if seq_idle && !q.act.sp_clash() && !q.act.acc_clash(acc_b) {
                                // the shadow bank swaps in if a whole tile was loaded
                                let bank = q.wl.next_bank();
                                if q.wl.swap(&mut d.wl) {
                                    self.activity.bank_swaps += 1;
                                }
                                d.seq.start(
                                    q.a0 as u16,
                                    n,
                                    q.a1 as u16,
                                    (q.a1 >> 16) & 1 == 1,
                                    bank,
                                    [sp_a, acc_b],
                                );
                                cmd_done = true;
                                d.state = State::Header;
                            }
                        }
                        opcode::ACTIVATE => {
                            // reads accumulator rows, writes scratchpad rows: the engine takes it
                            // from here (one ACTIVATE at a time)
                            if q.seq.acc_ok(acc_a) && q.seq.sp_ok(sp_b) && q.act.idle() {
                                act_load = Some(Load { src: q.a0 as u16, n, dst: q.a1 as u16, acc: acc_a });
                                cmd_done = true;
                                d.state = State::Header;
                            }
                        }
                        opcode::WRITE_ACT => {
                            // the scratchpad's write port is the engine's while it runs
                            if q.seq.rows_free(q.a0 as u16, n) && q.act.idle() {
                                if n == 0 {
                                    cmd_done = true;
                                    d.state = State::Header;
                                } else {
                                    d.state = State::WriteRows;
                                }
                            }
                        }
                        opcode::LOAD_TILE => {
                            if q.seq.sp_ok(sp_a) && !q.act.sp_clash() {
                                d.state = State::TileRows;
                            }
                        }
                        opcode::READ_ACT => {
                            if q.seq.sp_ok(sp_a) && !q.act.sp_clash() {
                                d.resp_hdr = header(opcode::READ_ACT | 0x80, 0) | self.row_words(q.a0, q.op);
                                d.rbk.start(q.a0 as u16, n);
                                d.state = State::RespHeader;
                            }
                        }
                        _ => {
                            // (read port B is the engine's while it runs)
                            if q.seq.acc_ok(acc_a) && q.act.idle() {
                                d.resp_hdr = header(opcode::READ_ACC | 0x80, 0) | self.row_words(q.a0, q.op);
                                d.rbk.start(q.a0 as u16, n);
                                d.state = State::RespHeader;
                            }
                        }
                    }
                }
            }
            State::Weights => {
                if take {
                    if WIDE {
                        self.write_beat(q.idx, data, lanes_in);
                    } else if let Some(w) = self.rowbuf.get_mut(usize::from(q.idx)) {
                        *w = data;
                    }
                    if usize::from(q.idx) == self.bpr - 1 {
                        d.idx = 0;
                        q.wl.row_done(&mut d.wl, dim);
                        if q.wl.last_row(dim) {
                            cmd_done = true;
                            d.state = State::Header;
                        }
                    } else {
                        d.idx = q.idx.wrapping_add(1);
                    }
                }
            }
            State::TileRows => {
                if !q.seq.bank_busy(q.wl.shadow()) {
                    d.tile_row = true;
                    d.tile_src = q.addr;
                    d.addr = q.addr.wrapping_add(1);
                    self.activity.scratch_reads += 1;
                    q.wl.row_done(&mut d.wl, dim);
                    if q.wl.last_row(dim) {
                        cmd_done = true;
                        d.state = State::Header;
                    }
                }
            }
            State::Bias => {
                if take {
                    let shift_bad = |w: u32| ((w >> 16) & 0x3F) as u8 > MAX_SHIFT;
                    let mut bad = shift_bad(data);
                    if WIDE {
                        // column n from lane n % LANES of beat n / LANES
                        let (l, base) = (self.lanes, self.lanes * usize::from(q.idx));
                        if q.is_lq {
                            self.write_beat(q.idx, data, lanes_in);
                        } else if base < dim {
                            let n = l.min(dim - base);
                            self.bias[base] = data as i32;
                            for (b, &w) in self.bias[base + 1..base + n].iter_mut().zip(lanes_in) {
                                *b = w as i32;
                            }
                            self.activity.bias_writes += n as u64;
                        }
                        // LOAD_QUANT checks every word of the beat (not the last beat's padding)
                        let last = usize::from(q.idx) == self.bdim - 1;
                        for (j, &w) in lanes_in.iter().enumerate() {
                            if (!last || (self.bdim - 1) * l + j + 1 < dim) && shift_bad(w) {
                                bad = true;
                            }
                        }
                    } else if q.is_lq {
                        if let Some(w) = self.rowbuf.get_mut(usize::from(q.idx)) {
                            *w = data;
                        }
                    } else if let Some(b) = self.bias.get_mut(usize::from(q.idx)) {
                        *b = data as i32;
                        self.activity.bias_writes += 1;
                    }
                    d.q_bad = q.q_bad || bad;
                    d.idx = q.idx.wrapping_add(1);
                    if usize::from(q.idx) == if WIDE { self.bdim } else { dim } - 1 {
                        if q.is_lq && d.q_bad {
                            d.err_code = 3;
                            d.state = State::ErrHeader;
                        } else {
                            d.ql_pending = q.is_lq;
                            cmd_done = true;
                            d.state = State::Header;
                        }
                    }
                }
            }
            State::WriteRows => {
                if take {
                    let discard = WIDE && q.discard;
                    if WIDE {
                        if !discard {
                            self.write_beat(q.idx, data, lanes_in);
                        }
                    } else if let Some(w) = self.rowbuf.get_mut(usize::from(q.idx)) {
                        *w = data;
                    }
                    if usize::from(q.idx) == self.bpr - 1 {
                        d.idx = 0;
                        d.sw_pending = !discard;
                        d.sw_addr = q.addr;
                        d.addr = q.addr.wrapping_add(1);
                        d.left = q.left.wrapping_sub(1);
                        if q.left == 1 {
                            if discard {
                                d.state = State::ErrHeader;
                            } else {
                                cmd_done = true;
                                d.state = State::Header;
                            }
                        }
                    } else {
                        d.idx = q.idx.wrapping_add(1);
                    }
                }
            }
            State::SyncWait => {
                d.idx = 0;
                if arr_idle && !q.wl.pending && !q.sw_pending && q.act.idle() {
                    if q.op == opcode::SYNC {
                        d.resp_hdr = header(opcode::SYNC | 0x80, 1);
                    } else {
                        d.resp_hdr = header(opcode::COUNTERS | 0x80, COUNTER_WORDS as u32);
                        self.snap = self.counters().to_words();
                    }
                    d.state = State::RespHeader;
                }
            }
            State::RespHeader => {
                if sent {
                    d.state = match q.op {
                        opcode::INFO => State::RespInfo,
                        opcode::SYNC => State::RespToken,
                        opcode::COUNTERS => State::RespCounters,
                        _ if q.left == 0 => {
                            cmd_done = true;
                            State::Header
                        }
                        _ => State::RowEmit,
                    };
                }
            }
            State::RespInfo => {
                if sent {
                    d.idx = q.idx.wrapping_add(1);
                    if usize::from(q.idx) == if WIDE { 4usize.div_ceil(self.lanes) } else { 4 } - 1 {
                        cmd_done = true;
                        d.state = State::Header;
                    }
                }
            }
            State::RespToken => {
                if sent {
                    cmd_done = true;
                    d.state = State::Header;
                }
            }
            State::RespCounters => {
                if sent {
                    d.idx = q.idx.wrapping_add(1);
                    if usize::from(q.idx)
                        == if WIDE { COUNTER_WORDS.div_ceil(self.lanes) } else { COUNTER_WORDS } - 1
                    {
                        cmd_done = true;
                        d.state = State::Header;
                    }
                }
            }
            State::RowEmit => {
                if rbk_sent && q.rbk.last(last_word) {
                    cmd_done = true;
                    d.state = State::Header;
                }
            }
        }

        // the engine checks word 0's rows against its scratchpad rows as it is taken
        let taken = (take && q.state == State::Arg0)
            .then(|| Taken { word: data, tile_n: (q.op == opcode::LOAD_TILE).then_some(dim as u16) });
        d.act = q.act.next(act_load, taken);

        // ---- counters ----
        let events = Events {
            issue,
            arr_busy: !arr_idle,
            in_ready,
            in_valid: inp.in_valid,
            out_valid,
            out_ready: inp.out_ready,
            cmd_done,
            err_done,
        };
        d.ctr = q.ctr.next(events, self.cfg.macs_per_row());
        let a = &mut self.activity;
        a.cycles += 1;
        if WIDE {
            // words of the flattened streams: LANES per beat, padding included
            a.words_in += u64::from(in_ready && inp.in_valid) * self.lanes as u64;
            a.words_out += u64::from(sent) * self.lanes as u64;
        } else {
            a.words_in += u64::from(take);
            a.words_out += u64::from(sent);
        }
        a.array_busy_cycles += u64::from(!arr_idle);
        a.act_busy_cycles += u64::from(!q.act.idle());

        if rst {
            d = Regs {
                state: State::Header,
                q_relu: false,
                q_zero: 0,
                ql_pending: false,
                sw_pending: false,
                tile_row: false,
                discard: false,
                ctr: counters::Counters::default(),
                ..d
            };
            d.wl.reset();
            d.seq.reset();
            d.act.reset();
            d.rbk.reset();
            // the delay lines carrying rows to their writes are cleared: rows not yet written
            // are lost; the array, bias registers and activation units are cleared too
            self.rows.clear();
            self.acts.clear();
            self.bias.fill(0);
            self.scales.fill(ColumnScale::default());
            for b in 0..2 {
                self.weights[b].fill(0);
                self.zero_weights[b].fill(dim as u32);
            }
            self.activity = Activity::default();
        }
        self.r = d;
        self.now += 1;
        DeviceOut { in_ready, out_valid, out_data }
    }
}

impl std::fmt::Debug for NativeSim {
    /// The configuration, the cycle, the front end's state and what is in flight (not the
    /// memories).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeSim")
            .field("cfg", &self.cfg)
            .field("cycle", &self.r.ctr.cycles)
            .field("state", &self.r.state)
            .field("op", &format_args!("{:#04x}", self.r.op))
            .field("sequencer_rows_left", &if self.r.seq.busy { self.r.seq.left } else { 0 })
            .field("matmul_rows_in_flight", &self.rows.len())
            .field("activate_rows_in_flight", &self.acts.len())
            .field("counters", &self.counters())
            .finish()
    }
}

impl CycleSim for NativeSim {
    fn config(&self) -> &Config {
        &self.cfg
    }

    fn reset(&mut self) {
        self.step(HostOut::default(), true);
    }

    fn cycle(&self) -> u64 {
        self.r.ctr.cycles
    }

    fn tick(&mut self, inputs: HostOut) -> DeviceOut {
        self.step(inputs, false)
    }

    fn tick_beat(
        &mut self,
        in_valid: bool,
        in_beat: &[u32],
        out_ready: bool,
        out_beat: &mut [u32],
    ) -> (bool, bool) {
        let l = self.lanes;
        assert!(in_beat.len() == l && out_beat.len() == l, "beats of {l} words");
        let inputs = HostOut { in_valid, in_data: in_beat[0], out_ready };
        let seen = if l == 1 {
            self.step_with::<false>(inputs, &[], false, &mut [])
        } else {
            self.step_with::<true>(inputs, &in_beat[1..], false, &mut out_beat[1..])
        };
        out_beat[0] = seen.out_data;
        (seen.in_ready, seen.out_valid)
    }

    /// The trait's idle cycles, fast through blind windows (see `bulk.rs`).
    fn idle(&mut self, n: u64) {
        let end = self.now + n;
        while self.now < end {
            let blind = self.blind_window().min(end - self.now);
            if blind > 1 {
                self.advance_blind(blind);
            } else {
                self.step(HostOut::default(), false);
            }
        }
    }

    /// The trait's host loop, fast through blind windows and input runs (see `bulk.rs`).
    fn pump(
        &mut self,
        input: &mut std::collections::VecDeque<u32>,
        output: &mut std::collections::VecDeque<u32>,
        keep: usize,
        want: usize,
        silence: u64,
    ) -> bool {
        self.pump_bulk(input, output, keep, want, silence)
    }

    /// The trait's run, fast: while the front end is blind, takes a payload word every cycle or
    /// sends a read-back word every cycle (see `bulk.rs`) many cycles are accounted at once;
    /// otherwise one [`tick`](Self::tick) per cycle. Same result as the per-tick default.
    fn run_stream(&mut self, words: &[u32], stalls: &Stalls, limit: u64) -> Result<Trace, Stuck> {
        self.reset();
        let mut host = FastHost::new(words, stalls, &self.cfg, limit);
        let l = self.lanes;
        let mut out = [0u32; MAX_LANES];
        loop {
            let blind = self.blind_window();
            if blind > 1 {
                let k = host.skippable(blind);
                self.advance_blind(k);
                if let Some(done) = host.skip(k) {
                    return done;
                }
                continue;
            }
            let payload = self.input_window();
            if payload > 1 {
                let m = host.input_run(payload);
                if m > 1 {
                    self.take_words(&host.upcoming()[..m as usize * l]);
                    if let Some(done) = host.took(m) {
                        return done;
                    }
                    continue;
                }
            }
            let sending = host.output_run(self.output_window());
            if sending > 1 {
                let (_, words) = self.send_words(sending);
                if let Some(done) = host.sent(words) {
                    return done;
                }
                continue;
            }
            let drive = host.drive();
            if l > 1 {
                let seen = self.step_with::<true>(drive, &host.beat()[1..], false, &mut out[1..l]);
                out[0] = seen.out_data;
                if let Some(done) = host.observe_beat(drive, seen.in_ready, seen.out_valid, &out[..l]) {
                    return done;
                }
                continue;
            }
            let seen = self.step_with::<false>(drive, &[], false, &mut []);
            if let Some(done) = host.observe(drive, seen) {
                return done;
            }
        }
    }
}
