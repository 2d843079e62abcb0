//! `protobrain_core`: the whole accelerator behind one 32-bit command stream and one 32-bit
//! response stream (DESIGN.md).
//!
//! ```text
//!             ┌──────────────────────────────── protobrain_core ───────────────────────────────┐
//!  in_data ──►│ Controller ──► RowBuffer (words <-> rows) ─────────────┬──► weights (shadow)   │
//!  in_valid ─►│    │                 ▲                                  │                      │
//!  in_ready ◄─│    │                 │ READ_ACT/READ_ACC rows           ▼                      │
//!             │    ├──► Scratchpad ──┼──────────► SystolicArray (DIM x DIM PEs, skew/deskew)   │
//!             │    │    SCRATCH_ROWS │              │ psum row (DIM int32)                     │
//!             │    │    x DIM int8   │              ▼                                          │
//!             │    │      ▲          │        (+ old row if accumulate) ──► AccumulatorMem     │
//!             │    │      │          └──────────────────────────────────── ACC_ROWS x DIM i32 │
//!             │    │      │                                                   │               │
//!             │    │      └──── DIM x ActivationUnit (bias, M[n], S[n], Z, ReLU) ◄┘  ACTIVATE │
//! out_data ◄──│ responses (INFO, SYNC, READ_*, COUNTERS, 0xFF)                                 │
//! out_valid◄──│                                                                                │
//! out_ready──►│                                        clk, rst: one clock, synchronous reset  │
//!             └────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! **LANES > 1** (docs/design.md "A wider link: LANES"): `in_data`/`out_data` are lane 0 and
//! `in_lanes[j]`/`out_lanes[j]` lanes j + 1 of a beat (rust-hdl needs fixed port widths; at
//! LANES 1 both vectors are empty and the core is the 32-bit one, text for text);
//! [`crate::emit`] wraps this core in a module with the contract's `in_data[32·LANES−1:0]`
//! and `out_data[32·LANES−1:0]`. The controller takes and sends beats, the row buffer and the
//! bias registers take a beat's words at once.
//!
//! The ports are the struct's first fields in the order of DESIGN.md, so the emitted module
//! needs no wrapper at LANES 1: rust-hdl names top-level ports after the fields, and
//! [`crate::emit::verilog`] names the module `protobrain_core`. Every register of the design is
//! clocked by `clk`; `rst` is a synchronous, active-high reset of all control state (the
//! memories keep their contents).

use rust_hdl::prelude::*;
use spec::Config;

use crate::array::SystolicArray;
use crate::column::Columns;
use crate::controller::Controller;
use crate::memory::{AccumulatorMem, Scratchpad};
use crate::rowbuf::RowBuffer;

/// The accelerator core (see the module docs).
#[derive(LogicBlock)]
pub struct ProtobrainCore {
    /// Clock.
    pub clk: Signal<In, Clock>,
    /// Synchronous active-high reset.
    pub rst: Signal<In, Bit>,
    /// Command word.
    pub in_data: Signal<In, Bits<32>>,
    /// `in_data` is valid.
    pub in_valid: Signal<In, Bit>,
    /// The core takes `in_data` on this rising edge if `in_valid`.
    pub in_ready: Signal<Out, Bit>,
    /// Response word.
    pub out_data: Signal<Out, Bits<32>>,
    /// `out_data` is valid; held until taken.
    pub out_valid: Signal<Out, Bit>,
    /// The host takes `out_data` on this rising edge if `out_valid`.
    pub out_ready: Signal<In, Bit>,
    /// LANES > 1: command words 1..LANES of the beat (empty at LANES 1).
    pub in_lanes: Vec<Signal<In, Bits<32>>>,
    /// LANES > 1: response words 1..LANES of the beat (empty at LANES 1).
    pub out_lanes: Vec<Signal<Out, Bits<32>>>,
    ctl: Controller,
    rowbuf: RowBuffer,
    scratch: Scratchpad,
    accmem: AccumulatorMem,
    array: SystolicArray,
    // per column: bias, M[n] and S[n] (contract v2: SET_QUANT writes all, LOAD_QUANT each),
    // the activation unit
    cols: Columns,
    zero8: Constant<Signed<8>>,
    _config: Config,
}

impl ProtobrainCore {
    /// The core for a configuration.
    pub fn new(cfg: &Config) -> Self {
        let d = cfg.dim();
        let l = cfg.lanes().get();
        ProtobrainCore {
            clk: Default::default(),
            rst: Default::default(),
            in_data: Default::default(),
            in_valid: Default::default(),
            in_ready: Default::default(),
            out_data: Default::default(),
            out_valid: Default::default(),
            out_ready: Default::default(),
            in_lanes: (1..l).map(|_| Default::default()).collect(),
            out_lanes: (1..l).map(|_| Default::default()).collect(),
            ctl: Controller::new(cfg),
            rowbuf: RowBuffer::with_lanes(d, l),
            scratch: Scratchpad::new(cfg),
            accmem: AccumulatorMem::new(cfg),
            array: SystolicArray::new(d),
            cols: Columns::with_lanes(d, l),
            zero8: Constant::new(0i64.into()),
            _config: *cfg,
        }
    }

    /// The configuration this core was built for.
    pub fn config(&self) -> &Config {
        &self._config
    }
}

#[allow(clippy::needless_range_loop)]
impl Logic for ProtobrainCore {
    #[hdl_gen]
    fn update(&mut self) {
        // controller and streams
        self.ctl.clock.next = self.clk.val();
        self.ctl.rst.next = self.rst.val();
        self.ctl.in_data.next = self.in_data.val();
        self.ctl.in_valid.next = self.in_valid.val();
        self.in_ready.next = self.ctl.in_ready.val();
        self.out_data.next = self.ctl.out_data.val();
        self.out_valid.next = self.ctl.out_valid.val();
        self.ctl.out_ready.next = self.out_ready.val();
        // LANES > 1: lanes 1..LANES of the beats (no text at LANES 1)
        for j in 0..self.in_lanes.len() {
            self.ctl.in_lanes[j].next = self.in_lanes[j].val();
            self.rowbuf.lanes_in[j].next = self.in_lanes[j].val();
            self.cols.lanes[j].next = self.in_lanes[j].val();
            self.out_lanes[j].next = self.ctl.out_lanes[j].val();
            self.ctl.rb_lanes_out[j].next = self.rowbuf.lanes_out[j].val();
        }

        // row buffer
        self.rowbuf.clock.next = self.clk.val();
        self.rowbuf.word_we.next = self.ctl.rb_word_we.val();
        self.rowbuf.word_idx.next = self.ctl.rb_word_idx.val();
        self.rowbuf.word_in.next = self.in_data.val();
        self.ctl.rb_word_out.next = self.rowbuf.word_out.val();
        self.rowbuf.load8.next = self.ctl.rb_load8.val();
        self.rowbuf.load32.next = self.ctl.rb_load32.val();
        for i in 0..self.array.act_in.len() {
            // read-back (READ_ACT, READ_ACC) through the memories' read port B
            self.rowbuf.row8_in[i].next = unsigned_cast(self.scratch.read_data_b[i].val());
            self.rowbuf.row32_in[i].next = unsigned_cast(self.accmem.read_data_b[i].val());
        }

        // scratchpad: rows from the row buffer (WRITE_ACT) or the activation units (ACTIVATE)
        self.scratch.clock.next = self.clk.val();
        self.scratch.read_addr.next = self.ctl.sp_raddr.val();
        self.scratch.read_enable.next = self.ctl.sp_ren.val();
        self.scratch.read_addr_b.next = self.ctl.sp_raddr_b.val();
        self.scratch.read_enable_b.next = self.ctl.sp_ren_b.val();
        self.scratch.write_addr.next = self.ctl.sp_waddr.val();
        self.scratch.write_enable.next = self.ctl.sp_we.val();
        // (the per-column muxes of this block are written as a default and an override: the
        // same logic as if/else, in half the Verilog text per column)
        for i in 0..self.array.act_in.len() {
            self.scratch.write_data[i].next = signed_cast(self.rowbuf.row8_out[i].val());
            if self.ctl.sp_wsel_act.val() {
                self.scratch.write_data[i].next = self.cols.y[i].val();
            }
        }

        // the array: the scratchpad row read last cycle, weights from the row buffer or the
        // scratchpad
        self.array.clock.next = self.clk.val();
        self.array.rst.next = self.rst.val();
        self.array.sel_in.next = self.ctl.arr_sel.val();
        self.array.w_bank.next = self.ctl.wl_bank.val();
        // the array decodes the weight row itself
        self.array.w_en.next = self.ctl.wl_en.val();
        self.array.w_row.next = self.ctl.wl_row.val();
        for i in 0..self.array.act_in.len() {
            self.array.act_in[i].next = self.zero8.val();
            if self.ctl.arr_valid.val() {
                self.array.act_in[i].next = self.scratch.read_data[i].val();
            }
            // a weight row from the stream (LOAD_WEIGHTS, through the row buffer) or from a
            // scratchpad row read last cycle (LOAD_TILE)
            self.array.w_data[i].next = signed_cast(self.rowbuf.row8_out[i].val());
            if self.ctl.wl_from_sp.val() {
                self.array.w_data[i].next = self.scratch.read_data_b[i].val();
            }
        }

        // accumulators: read-modify-write. The old row is read the cycle before the write; rows
        // of one MATMUL have distinct addresses and rows of two MATMULs enter the array at
        // least two cycles apart, so a read never meets the write of the same row.
        self.accmem.clock.next = self.clk.val();
        self.accmem.read_addr.next = self.ctl.acc_raddr.val();
        self.accmem.read_enable.next = self.ctl.acc_ren.val();
        self.accmem.read_addr_b.next = self.ctl.acc_raddr_b.val();
        self.accmem.read_enable_b.next = self.ctl.acc_ren_b.val();
        self.accmem.write_addr.next = self.ctl.acc_waddr.val();
        self.accmem.write_enable.next = self.ctl.acc_we.val();
        for i in 0..self.array.act_in.len() {
            self.accmem.write_data[i].next = self.array.psum_out[i].val();
            if self.ctl.acc_accumulate.val() {
                self.accmem.write_data[i].next =
                    self.array.psum_out[i].val() + self.accmem.read_data[i].val();
            }
        }

        // the columns: bias and quantisation registers, activation units
        self.cols.clock.next = self.clk.val();
        self.cols.rst.next = self.rst.val();
        self.cols.word.next = self.in_data.val();
        self.cols.bias_we.next = self.ctl.bias_we.val();
        self.cols.bias_idx.next = self.ctl.bias_idx.val();
        self.cols.qs_we.next = self.ctl.qs_we.val();
        self.cols.ql_we.next = self.ctl.ql_we.val();
        self.cols.relu.next = self.ctl.q_relu.val();
        self.cols.zero_point.next = self.ctl.q_zero.val();
        self.cols.valid_in.next = self.ctl.act_valid.val();
        for i in 0..self.array.act_in.len() {
            self.cols.quant[i].next = self.rowbuf.quant_out[i].val();
            self.cols.acc[i].next = self.accmem.read_data_b[i].val();
        }
    }
}

#[cfg(test)]
#[path = "core_tests.rs"]
mod tests;
