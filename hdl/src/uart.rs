//! The UART bridge: 8N1 serial receive and transmit, and a bridge between a byte link and the
//! core's 32-bit word streams, so a board needs only two pins (`rx`, `tx`) to talk to a host.
//!
//! ```text
//!              ┌──────────────────────────── UartBridge ─────────────────────────────┐
//!              │                                                                     │
//!  rx ────────►│ 2-FF sync ─► UartRx ──byte──► rx ByteFifo ──► pack 4 bytes (LE) ────┼──► in_data[32]
//!  (host TX)   │  mid-bit sampling   strobe    (single-port   word = b3 b2 b1 b0     ├──► in_valid
//!              │        │                       RAM, depth D)                        │◄── in_ready
//!              │        └─ bad stop bit ──► frame_error (sticky)                     │
//!              │                   byte arrives while full ──► overflow (sticky)     │
//!              │                                                                     │
//!  tx ◄────────│ UartTx ◄──byte── tx ByteFifo ◄── unpack word: b0, b1, b2, b3 ◄──────┼─── out_data[32]
//!  (host RX)   │                  (depth D)                                          ├──► out_ready
//!              │                                                                     │◄── out_valid
//!              └─────────────────────────────────────────────────────────────────────┘
//!                  clock `clock` (one domain), rst: synchronous, active high
//! ```
//!
//! [`UartCore`] is the bridge wired to a [`ProtobrainCore`]: a top with the ports `clk, rst,
//! rx, tx, overflow` ([`uart_core_verilog`] emits it as module [`UART_TOP`]).
//!
//! # Line format
//! 8 data bits, least significant first, no parity, one stop bit; the line idles high. Bit time
//! = `clocks_per_bit` clocks (a constructor parameter, [`MIN_CLOCKS_PER_BIT`]..=
//! [`MAX_CLOCKS_PER_BIT`]; [`clocks_per_bit`] computes it from a clock and a baud rate).
//! * **Receive**: `rx` passes a two flip-flop synchroniser. A low level in idle starts a frame;
//!   the start bit is checked at its middle (a pulse shorter than half a bit is ignored), then
//!   each data bit and the stop bit are sampled one bit time apart, at the middle of the bit.
//!   The sampling point sits within half a clock of the bit's middle, so the receiver accepts a
//!   sender whose bit rate differs by up to about `(cpb / 2 - 2) / (9.5 * cpb)` (over 4 % at
//!   cpb >= 30). A low stop bit is a framing error: the byte is discarded, `frame_error` is set,
//!   and the receiver waits for the line to go high again (a break does not produce bytes).
//! * **BREAK**: a line held low for [`BREAK_BIT_TIMES`] bit times (20: two frames; a frame is
//!   low for at most 9 bit times in a row, its start bit and 8 zero data bits) is a BREAK: the
//!   receiver raises `line_break` (after the framing error of the frame it started) and holds it
//!   until the line goes high. The bridge resets itself (FIFOs, word assembly, transmitter,
//!   sticky flags) while `line_break` is high, and [`UartCore`] resets the core with it: the host
//!   recovers a link in any state with one BREAK, whatever words were lost or garbled (see
//!   docs/design.md "Link recovery"). A low of less than 19 bit times never resets anything.
//! * **Transmit**: start bit, 8 data bits, stop bit, each exactly `clocks_per_bit` clocks; the
//!   next frame starts one clock after the stop bit ends.
//! * Both keep their line registers inverted, so the power-up value of every flip-flop (0) means
//!   an idle (high) line: no spurious start bit before the first reset.
//!
//! # Words
//! Each word travels as 4 bytes, least significant first (DESIGN.md "Packing"). The bridge has
//! no framing of its own: the host and the device must agree on the byte phase, which a reset
//! of the bridge (and the host opening the port with empty buffers) establishes.
//!
//! # Flow control and overflow (the host's contract)
//! A UART cannot stall the host. The bridge buffers up to `fifo_depth` received bytes (plus
//! one in the FIFO's output register and up to 4 in the word being assembled) while the core
//! does not take words, and up to `fifo_depth` bytes of responses while the line is busy. The
//! core stops taking commands only while it is executing one (far shorter than a byte time) or
//! while its response cannot be queued for transmission. So **no byte is lost as long as the
//! host never has more than `fifo_depth` bytes sent beyond those of responses it has already
//! received in full, counted from the last command whose response it has read** — in practice:
//! keep the responses outstanding (sent for, not yet read) plus the bytes sent since then below
//! `fifo_depth` bytes. The board tops use `fifo_depth` = [`BOARD_FIFO_DEPTH`] (16384 bytes,
//! one iCE40 SPRAM per direction), far above the driver's window of 1024 outstanding response
//! words (4096 bytes).
//!
//! If the host breaks the contract, a byte that arrives while the receive FIFO is full is
//! dropped and `overflow` is set; it stays set until `rst` (the boards show it on a LED). The
//! word stream is then out of phase: reset the board.
//!
//! # Memories
//! Each FIFO is one single-port RAM written as `if (we) mem[a] <= d; else q <= mem[a];`, which
//! Yosys maps onto an iCE40 SB_SPRAM256KA (with `synth_ice40 -spram`) or ECP5 DP16KD block RAM.
//! One port is enough: a UART moves one byte per `10 * clocks_per_bit` clocks, and a write
//! (push) takes priority over the read that refills the FIFO's output register.

use std::collections::VecDeque;

use rust_hdl::prelude::*;
use spec::Config;

use crate::core::ProtobrainCore;
use crate::emit::EmitError;
use crate::rowbuf::Pack4;

/// Smallest supported clocks per bit (the receiver needs a start-bit middle after its
/// synchroniser delay).
pub const MIN_CLOCKS_PER_BIT: usize = 4;
/// Largest supported clocks per bit (16-bit counters).
pub const MAX_CLOCKS_PER_BIT: usize = 65535;
/// FIFO depth of the board tops, bytes per direction (one iCE40 SPRAM, 8 ECP5 DP16KD each).
pub const BOARD_FIFO_DEPTH: usize = 16384;
/// Largest FIFO depth (16-bit pointers with a wrap bit).
pub const MAX_FIFO_DEPTH: usize = 32768;
/// A line held low this many bit times is a BREAK and resets the bridge and the core (see the
/// module docs; the contract's number, [`spec::isa::BREAK_BIT_TIMES`]). Detected between 19.5
/// bit times and 20 bit times plus 4 clocks after the falling edge; the host holds a BREAK far
/// longer.
pub use spec::isa::BREAK_BIT_TIMES;
/// Bit times the receiver counts after the framing error of a BREAK's first frame (its stop bit
/// is sampled 9.5 bit times after the falling edge) before it raises `line_break`.
const BREAK_AFTER_STOP: u64 = BREAK_BIT_TIMES as u64 - 10;
/// Name of the module [`uart_core_verilog`] emits.
pub const UART_TOP: &str = "protobrain_uart";

/// Clocks per bit for a clock and a baud rate, rounded to the nearest integer, with the rate
/// error in parts per million; `None` if it is outside
/// [`MIN_CLOCKS_PER_BIT`]..=[`MAX_CLOCKS_PER_BIT`].
pub fn clocks_per_bit(clock_hz: u64, baud: u64) -> Option<(usize, i64)> {
    if baud == 0 {
        return None;
    }
    let cpb = (clock_hz + baud / 2) / baud;
    if !(MIN_CLOCKS_PER_BIT as u64..=MAX_CLOCKS_PER_BIT as u64).contains(&cpb) {
        return None;
    }
    let actual = clock_hz as f64 / cpb as f64;
    let ppm = ((actual - baud as f64) / baud as f64 * 1e6).round() as i64;
    Some((cpb as usize, ppm))
}

fn check_cpb(clocks_per_bit: usize) {
    assert!(
        (MIN_CLOCKS_PER_BIT..=MAX_CLOCKS_PER_BIT).contains(&clocks_per_bit),
        "clocks_per_bit must be in {MIN_CLOCKS_PER_BIT}..={MAX_CLOCKS_PER_BIT}, got {clocks_per_bit}"
    );
}

fn c16(v: usize) -> Constant<Bits<16>> {
    Constant::new((v as u64).into())
}

/// Receiver states.
#[derive(Copy, Clone, PartialEq, Eq, Debug, LogicState)]
pub enum RxState {
    /// Line idle (high), waiting for a start bit.
    Idle,
    /// Waiting for the middle of the start bit.
    Start,
    /// Sampling the 8 data bits.
    Data,
    /// Waiting for the middle of the stop bit.
    Stop,
    /// After a framing error: waiting for the line to go high, counting bit times towards a
    /// BREAK.
    Break,
}

/// 8N1 receiver (see the module docs). `valid` is high for one clock with each byte;
/// `line_break` is high while the line is in a BREAK.
///
/// ```text
///  rx ─► [sync1] ─► [sync2] ─► line ─► FSM (Idle/Start/Data/Stop/Break) ─► data[8], valid
///                                      count[16] clocks to the next sample   frame_error
///                                      brk_bits[4] bit times low after a     line_break
///                                      framing error
/// ```
#[derive(LogicBlock)]
pub struct UartRx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset.
    pub rst: Signal<In, Bit>,
    /// The serial line (asynchronous; synchronised inside).
    pub rx: Signal<In, Bit>,
    /// The received byte, valid while `valid` is high.
    pub data: Signal<Out, Bits<8>>,
    /// High for one clock when a byte with a good stop bit has been received.
    pub valid: Signal<Out, Bit>,
    /// High for one clock when a frame ended with a low stop bit (the byte is dropped).
    pub frame_error: Signal<Out, Bit>,
    /// High (registered) from [`BREAK_BIT_TIMES`] bit times of low line until the line is high.
    pub line_break: Signal<Out, Bit>,
    sync1_n: DFF<Bit>,
    sync2_n: DFF<Bit>,
    line: Signal<Local, Bit>,
    state: DFF<RxState>,
    count: DFF<Bits<16>>,
    nbit: DFF<Bits<3>>,
    shreg: DFF<Bits<8>>,
    data_r: DFF<Bits<8>>,
    valid_r: DFF<Bit>,
    ferr_r: DFF<Bit>,
    brk_bits: DFF<Bits<4>>,
    brk_r: DFF<Bit>,
    c_bit: Constant<Bits<16>>,
    c_half: Constant<Bits<16>>,
    c_zero: Constant<Bits<16>>,
    c_one: Constant<Bits<16>>,
    c_msb: Constant<Bits<8>>,
    c_nbit_last: Constant<Bits<3>>,
    c_nbit_one: Constant<Bits<3>>,
    c_nbit_zero: Constant<Bits<3>>,
    c_byte_zero: Constant<Bits<8>>,
    c_brk_zero: Constant<Bits<4>>,
    c_brk_one: Constant<Bits<4>>,
    c_brk_last: Constant<Bits<4>>,
}

impl UartRx {
    /// A receiver for `clocks_per_bit` clocks per bit.
    ///
    /// # Panics
    /// If `clocks_per_bit` is outside [`MIN_CLOCKS_PER_BIT`]..=[`MAX_CLOCKS_PER_BIT`].
    pub fn new(clocks_per_bit: usize) -> Self {
        check_cpb(clocks_per_bit);
        UartRx {
            clock: Default::default(),
            rst: Default::default(),
            rx: Default::default(),
            data: Default::default(),
            valid: Default::default(),
            frame_error: Default::default(),
            line_break: Default::default(),
            sync1_n: Default::default(),
            sync2_n: Default::default(),
            line: Default::default(),
            state: Default::default(),
            count: Default::default(),
            nbit: Default::default(),
            shreg: Default::default(),
            data_r: Default::default(),
            valid_r: Default::default(),
            ferr_r: Default::default(),
            brk_bits: Default::default(),
            brk_r: Default::default(),
            c_bit: c16(clocks_per_bit - 1),
            // The start is seen ~2.5 clocks after the edge (synchroniser); the check of the start
            // bit then happens half + 1 clocks later, at (cpb - 2) / 2 + 1.5 ~ cpb / 2.
            c_half: c16((clocks_per_bit - 2) / 2),
            c_zero: c16(0),
            c_one: c16(1),
            c_msb: Constant::new(0x80u64.into()),
            c_nbit_last: Constant::new(7u64.into()),
            c_nbit_one: Constant::new(1u64.into()),
            c_nbit_zero: Constant::new(0u64.into()),
            c_byte_zero: Constant::new(0u64.into()),
            c_brk_zero: Constant::new(0u64.into()),
            c_brk_one: Constant::new(1u64.into()),
            c_brk_last: Constant::new((BREAK_AFTER_STOP - 1).into()),
        }
    }
}

impl Logic for UartRx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(
            self, clock, sync1_n, sync2_n, state, count, nbit, shreg, data_r, valid_r, ferr_r, brk_bits,
            brk_r
        );
        // Inverted synchroniser: power-up 0 reads as an idle (high) line.
        self.sync1_n.d.next = !self.rx.val();
        self.sync2_n.d.next = self.sync1_n.q.val();
        self.line.next = !self.sync2_n.q.val();
        self.valid_r.d.next = false;
        self.ferr_r.d.next = false;
        self.data.next = self.data_r.q.val();
        self.valid.next = self.valid_r.q.val();
        self.frame_error.next = self.ferr_r.q.val();
        self.line_break.next = self.brk_r.q.val();
        if self.count.q.val() != self.c_zero.val() {
            self.count.d.next = self.count.q.val() - self.c_one.val();
        }
        match self.state.q.val() {
            RxState::Idle => {
                if !self.line.val() {
                    self.state.d.next = RxState::Start;
                    self.count.d.next = self.c_half.val();
                }
            }
            RxState::Start => {
                if self.count.q.val() == self.c_zero.val() {
                    if self.line.val() {
                        // shorter than half a bit: a glitch, not a start bit
                        self.state.d.next = RxState::Idle;
                    } else {
                        self.state.d.next = RxState::Data;
                        self.count.d.next = self.c_bit.val();
                        self.nbit.d.next = self.c_nbit_zero.val();
                    }
                }
            }
            RxState::Data => {
                if self.count.q.val() == self.c_zero.val() {
                    self.count.d.next = self.c_bit.val();
                    self.shreg.d.next = self.shreg.q.val() >> 1;
                    if self.line.val() {
                        self.shreg.d.next = (self.shreg.q.val() >> 1) | self.c_msb.val();
                    }
                    self.nbit.d.next = self.nbit.q.val() + self.c_nbit_one.val();
                    if self.nbit.q.val() == self.c_nbit_last.val() {
                        self.state.d.next = RxState::Stop;
                    }
                }
            }
            RxState::Stop => {
                if self.count.q.val() == self.c_zero.val() {
                    if self.line.val() {
                        self.data_r.d.next = self.shreg.q.val();
                        self.valid_r.d.next = true;
                        self.state.d.next = RxState::Idle;
                    } else {
                        self.ferr_r.d.next = true;
                        self.state.d.next = RxState::Break;
                        self.count.d.next = self.c_bit.val();
                        self.brk_bits.d.next = self.c_brk_zero.val();
                    }
                }
            }
            _ => {
                if self.line.val() {
                    self.state.d.next = RxState::Idle;
                    self.brk_r.d.next = false;
                } else if self.count.q.val() == self.c_zero.val() {
                    // one more bit time low; BREAK_AFTER_STOP of them after the stop bit's
                    // middle make a BREAK, held until the line goes high
                    self.count.d.next = self.c_bit.val();
                    if self.brk_bits.q.val() == self.c_brk_last.val() {
                        self.brk_r.d.next = true;
                    } else {
                        self.brk_bits.d.next = self.brk_bits.q.val() + self.c_brk_one.val();
                    }
                }
            }
        }
        if self.rst.val() {
            self.sync1_n.d.next = false;
            self.sync2_n.d.next = false;
            self.state.d.next = RxState::Idle;
            self.count.d.next = self.c_zero.val();
            self.nbit.d.next = self.c_nbit_zero.val();
            self.shreg.d.next = self.c_byte_zero.val();
            self.data_r.d.next = self.c_byte_zero.val();
            self.valid_r.d.next = false;
            self.ferr_r.d.next = false;
            self.brk_bits.d.next = self.c_brk_zero.val();
            self.brk_r.d.next = false;
        }
    }
}

/// 8N1 transmitter (see the module docs): takes a byte when `valid && ready` on a rising edge.
///
/// ```text
///  data[8], valid ─► frame[8] ─► shift out LSB first, then the stop bit ─► line_n ─► !tx
///  ready ◄── left == 0               count[16] clocks per bit, left[4] bits to go
/// ```
#[derive(LogicBlock)]
pub struct UartTx {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset (the line goes idle at once).
    pub rst: Signal<In, Bit>,
    /// Byte to send.
    pub data: Signal<In, Bits<8>>,
    /// `data` is valid.
    pub valid: Signal<In, Bit>,
    /// The transmitter takes `data` on this edge if `valid`.
    pub ready: Signal<Out, Bit>,
    /// The serial line.
    pub tx: Signal<Out, Bit>,
    frame: DFF<Bits<8>>,
    line_n: DFF<Bit>,
    left: DFF<Bits<4>>,
    count: DFF<Bits<16>>,
    c_bit: Constant<Bits<16>>,
    c_zero: Constant<Bits<16>>,
    c_one: Constant<Bits<16>>,
    c_frame_zero: Constant<Bits<8>>,
    c_bits: Constant<Bits<4>>,
    c_left_zero: Constant<Bits<4>>,
    c_left_one: Constant<Bits<4>>,
    c_left_two: Constant<Bits<4>>,
}

impl UartTx {
    /// A transmitter for `clocks_per_bit` clocks per bit.
    ///
    /// # Panics
    /// If `clocks_per_bit` is outside [`MIN_CLOCKS_PER_BIT`]..=[`MAX_CLOCKS_PER_BIT`].
    pub fn new(clocks_per_bit: usize) -> Self {
        check_cpb(clocks_per_bit);
        UartTx {
            clock: Default::default(),
            rst: Default::default(),
            data: Default::default(),
            valid: Default::default(),
            ready: Default::default(),
            tx: Default::default(),
            frame: Default::default(),
            line_n: Default::default(),
            left: Default::default(),
            count: Default::default(),
            c_bit: c16(clocks_per_bit - 1),
            c_zero: c16(0),
            c_one: c16(1),
            c_frame_zero: Constant::new(0u64.into()),
            c_bits: Constant::new(10u64.into()),
            c_left_zero: Constant::new(0u64.into()),
            c_left_one: Constant::new(1u64.into()),
            c_left_two: Constant::new(2u64.into()),
        }
    }
}

impl Logic for UartTx {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, frame, line_n, left, count);
        self.tx.next = !self.line_n.q.val();
        self.ready.next = self.left.q.val() == self.c_left_zero.val();
        if self.left.q.val() == self.c_left_zero.val() {
            if self.valid.val() {
                // start bit now; the data bits wait in `frame`
                self.line_n.d.next = true;
                self.frame.d.next = self.data.val();
                self.left.d.next = self.c_bits.val();
                self.count.d.next = self.c_bit.val();
            }
        } else if self.count.q.val() == self.c_zero.val() {
            // next bit: data while more than the stop bit is left, then the stop bit (high)
            // and, after it, the idle line (high)
            self.line_n.d.next = false;
            if self.left.q.val() > self.c_left_two.val() {
                self.line_n.d.next = !self.frame.q.val().get_bit(0);
                self.frame.d.next = self.frame.q.val() >> 1;
            }
            self.left.d.next = self.left.q.val() - self.c_left_one.val();
            self.count.d.next = self.c_bit.val();
        } else {
            self.count.d.next = self.count.q.val() - self.c_one.val();
        }
        if self.rst.val() {
            self.line_n.d.next = false;
            self.frame.d.next = self.c_frame_zero.val();
            self.left.d.next = self.c_left_zero.val();
            self.count.d.next = self.c_zero.val();
        }
    }
}

/// A single-port byte RAM: `if (we) mem[addr] <= din; else q <= mem[addr];` on each rising
/// edge (the pattern Yosys maps onto iCE40 SPRAM). `q` holds on write cycles. No reset, no
/// initial contents on an FPGA (zero in simulation).
#[derive(LogicBlock)]
pub struct SinglePortRam {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Write `din` at `addr` on this edge (else read `addr` into `q`).
    pub we: Signal<In, Bit>,
    /// Address; the low `log2(depth)` bits are used.
    pub addr: Signal<In, Bits<16>>,
    /// Data to write.
    pub din: Signal<In, Bits<8>>,
    /// The byte read on the last non-write edge.
    pub q: Signal<Out, Bits<8>>,
    _mem: Vec<Bits<8>>,
}

impl SinglePortRam {
    /// A RAM of `depth` bytes.
    ///
    /// # Panics
    /// If `depth` is not a power of two in `2..=`[`MAX_FIFO_DEPTH`].
    pub fn new(depth: usize) -> Self {
        assert!(
            depth.is_power_of_two() && (2..=MAX_FIFO_DEPTH).contains(&depth),
            "RAM depth must be a power of two in 2..={MAX_FIFO_DEPTH}, got {depth}"
        );
        SinglePortRam {
            clock: Default::default(),
            we: Default::default(),
            addr: Default::default(),
            din: Default::default(),
            q: Default::default(),
            _mem: vec![Bits::default(); depth],
        }
    }

    /// Number of bytes.
    pub fn depth(&self) -> usize {
        self._mem.len()
    }
}

impl Logic for SinglePortRam {
    fn update(&mut self) {
        if self.clock.pos_edge() {
            let a = self.addr.val().index() & (self._mem.len() - 1);
            if self.we.val() {
                self._mem[a] = self.din.val();
            } else {
                self.q.next = self._mem[a];
            }
        }
    }

    fn connect(&mut self) {
        self.q.connect();
    }

    fn hdl(&self) -> Verilog {
        let bits = self._mem.len().trailing_zeros();
        Verilog::Custom(format!(
            "\
// {depth} x 8 single-port RAM (iCE40: SB_SPRAM256KA with synth_ice40 -spram).
reg [7:0] mem [0:{last}];
`ifndef SYNTHESIS
integer i;
initial begin
    for (i = 0; i < {depth}; i = i + 1) mem[i] = 8'd0;
    q = 8'd0;
end
`endif
always @(posedge clock) begin
    if (we) mem[addr[{msb}:0]] <= din;
    else q <= mem[addr[{msb}:0]];
end
wire unused_address_bits = &{{1'b0, addr[15:{bits}]}};
",
            depth = self._mem.len(),
            last = self._mem.len() - 1,
            msb = bits - 1,
        ))
    }

    fn timing(&self) -> Vec<TimingInfo> {
        vec![TimingInfo {
            name: "spram".into(),
            clock: "clock".into(),
            inputs: vec!["we".into(), "addr".into(), "din".into()],
            outputs: vec!["q".into()],
        }]
    }
}

/// A byte FIFO on a [`SinglePortRam`], with a registered output (`data_out` is valid while
/// `valid`; `pop` takes it). A push while full is dropped and flagged by `dropped`.
///
/// ```text
///  push, data_in ─► RAM[wr] ─────────────► q ─► [out] ─► data_out, valid
///  full ◄── wr - rd == depth   read RAM[rd] when the output register is free and no push
///  dropped ◄── push && full                                         pop ◄──
/// ```
/// A pushed byte reaches `data_out` two clocks later at the earliest; the output register can
/// be refilled on the clock after a pop. Capacity: `depth` bytes in RAM plus one in the output
/// register.
#[derive(LogicBlock)]
pub struct ByteFifo {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset: empties the FIFO.
    pub rst: Signal<In, Bit>,
    /// Store `data_in` on this edge (unless full).
    pub push: Signal<In, Bit>,
    /// Byte to store.
    pub data_in: Signal<In, Bits<8>>,
    /// The RAM holds `depth` bytes: a push now is dropped.
    pub full: Signal<Out, Bit>,
    /// A push is being dropped on this edge (`push && full`).
    pub dropped: Signal<Out, Bit>,
    /// The oldest byte, while `valid`.
    pub data_out: Signal<Out, Bits<8>>,
    /// `data_out` holds a byte.
    pub valid: Signal<Out, Bit>,
    /// Take `data_out` on this edge (ignored unless `valid`).
    pub pop: Signal<In, Bit>,
    ram: SinglePortRam,
    wr: DFF<Bits<16>>,
    rd: DFF<Bits<16>>,
    out: DFF<Bits<8>>,
    out_valid: DFF<Bit>,
    pending: DFF<Bit>,
    full_r: DFF<Bit>,
    count: Signal<Local, Bits<16>>,
    wr_next: Signal<Local, Bits<16>>,
    rd_next: Signal<Local, Bits<16>>,
    rd_issue: Signal<Local, Bit>,
    c_depth_m1: Constant<Bits<16>>,
    c_zero: Constant<Bits<16>>,
    c_one: Constant<Bits<16>>,
    c_byte_zero: Constant<Bits<8>>,
}

impl ByteFifo {
    /// A FIFO of `depth` bytes (plus the output register).
    ///
    /// # Panics
    /// If `depth` is not a power of two in `2..=`[`MAX_FIFO_DEPTH`].
    pub fn new(depth: usize) -> Self {
        ByteFifo {
            clock: Default::default(),
            rst: Default::default(),
            push: Default::default(),
            data_in: Default::default(),
            full: Default::default(),
            dropped: Default::default(),
            data_out: Default::default(),
            valid: Default::default(),
            pop: Default::default(),
            ram: SinglePortRam::new(depth),
            wr: Default::default(),
            rd: Default::default(),
            out: Default::default(),
            out_valid: Default::default(),
            pending: Default::default(),
            full_r: Default::default(),
            count: Default::default(),
            wr_next: Default::default(),
            rd_next: Default::default(),
            rd_issue: Default::default(),
            c_depth_m1: c16(depth - 1),
            c_zero: c16(0),
            c_one: c16(1),
            c_byte_zero: Constant::new(0u64.into()),
        }
    }

    /// Bytes the RAM holds when full.
    pub fn depth(&self) -> usize {
        self.ram.depth()
    }
}

impl Logic for ByteFifo {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, wr, rd, out, out_valid, pending, full_r);
        self.ram.clock.next = self.clock.val();
        // `full` is a register (the next state's count == depth), so a parent may compute
        // `push` from it without a combinational path back into the FIFO.
        self.full.next = self.full_r.q.val();
        self.count.next = self.wr.q.val() - self.rd.q.val();
        self.dropped.next = self.push.val() && self.full_r.q.val();
        self.data_out.next = self.out.q.val();
        self.valid.next = self.out_valid.q.val();

        self.ram.we.next = false;
        self.ram.addr.next = self.rd.q.val();
        self.ram.din.next = self.data_in.val();
        self.wr_next.next = self.wr.q.val();
        self.rd_next.next = self.rd.q.val();
        self.rd_issue.next = false;
        self.pending.d.next = false;
        if self.pop.val() {
            self.out_valid.d.next = false;
        }
        if self.pending.q.val() {
            // the read issued on the last edge is in the RAM's q now
            self.out.d.next = self.ram.q.val();
            self.out_valid.d.next = true;
        }
        if self.push.val() && !self.full_r.q.val() {
            self.ram.we.next = true;
            self.ram.addr.next = self.wr.q.val();
            self.wr_next.next = self.wr.q.val() + self.c_one.val();
        } else if (self.wr.q.val() != self.rd.q.val())
            && !self.pending.q.val()
            && (!self.out_valid.q.val() || self.pop.val())
        {
            self.rd_next.next = self.rd.q.val() + self.c_one.val();
            self.pending.d.next = true;
            self.rd_issue.next = true;
        }
        self.wr.d.next = self.wr_next.val();
        self.rd.d.next = self.rd_next.val();
        // Full after this edge: a push (never together with a read) fills it from depth - 1, a
        // read empties it from full, otherwise it stays. Computed from the registers in
        // parallel rather than from the next pointers (off the iCE40 critical path).
        if self.push.val() && !self.full_r.q.val() {
            self.full_r.d.next = self.count.val() == self.c_depth_m1.val();
        } else if self.rd_issue.val() {
            self.full_r.d.next = false;
        } else {
            self.full_r.d.next = self.full_r.q.val();
        }
        if self.rst.val() {
            self.wr.d.next = self.c_zero.val();
            self.rd.d.next = self.c_zero.val();
            self.out.d.next = self.c_byte_zero.val();
            self.out_valid.d.next = false;
            self.pending.d.next = false;
            self.full_r.d.next = false;
        }
    }
}

/// The bridge between a UART and the core's word streams (see the module docs).
#[derive(LogicBlock)]
pub struct UartBridge {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset: empties both FIFOs, clears the flags.
    pub rst: Signal<In, Bit>,
    /// Serial input (from the host's TX).
    pub rx: Signal<In, Bit>,
    /// Serial output (to the host's RX).
    pub tx: Signal<Out, Bit>,
    /// Word to the core's input stream.
    pub in_data: Signal<Out, Bits<32>>,
    /// `in_data` is valid (held until taken).
    pub in_valid: Signal<Out, Bit>,
    /// The core takes `in_data` on this edge.
    pub in_ready: Signal<In, Bit>,
    /// Word from the core's output stream.
    pub out_data: Signal<In, Bits<32>>,
    /// `out_data` is valid.
    pub out_valid: Signal<In, Bit>,
    /// The bridge takes `out_data` on this edge.
    pub out_ready: Signal<Out, Bit>,
    /// Sticky: a received byte was dropped because the receive FIFO was full.
    pub overflow: Signal<Out, Bit>,
    /// Sticky: a received frame had a low stop bit.
    pub frame_error: Signal<Out, Bit>,
    /// The line is in a BREAK (registered): the bridge holds itself in reset meanwhile, and
    /// whatever sits behind it should reset too ([`UartCore`] resets the core).
    pub line_break: Signal<Out, Bit>,
    /// `rst` or a BREAK: resets everything but the receiver (which sees the BREAK end).
    reset: Signal<Local, Bit>,
    urx: UartRx,
    utx: UartTx,
    rx_fifo: ByteFifo,
    tx_fifo: ByteFifo,
    bytes: Vec<DFF<Bits<8>>>,
    pack: Pack4,
    nbytes: DFF<Bits<2>>,
    wvalid: DFF<Bit>,
    oword: DFF<Bits<32>>,
    oleft: DFF<Bits<3>>,
    overflow_r: DFF<Bit>,
    ferr_r: DFF<Bit>,
    c_word_zero: Constant<Bits<32>>,
    c_byte_zero: Constant<Bits<8>>,
    c_nb_last: Constant<Bits<2>>,
    c_nb_one: Constant<Bits<2>>,
    c_nb_zero: Constant<Bits<2>>,
    c_ol_zero: Constant<Bits<3>>,
    c_ol_one: Constant<Bits<3>>,
    c_ol_four: Constant<Bits<3>>,
}

impl UartBridge {
    /// A bridge for `clocks_per_bit` clocks per bit with FIFOs of `fifo_depth` bytes.
    ///
    /// # Panics
    /// If `clocks_per_bit` is outside [`MIN_CLOCKS_PER_BIT`]..=[`MAX_CLOCKS_PER_BIT`] or
    /// `fifo_depth` is not a power of two in `2..=`[`MAX_FIFO_DEPTH`].
    pub fn new(clocks_per_bit: usize, fifo_depth: usize) -> Self {
        UartBridge {
            clock: Default::default(),
            rst: Default::default(),
            rx: Default::default(),
            tx: Default::default(),
            in_data: Default::default(),
            in_valid: Default::default(),
            in_ready: Default::default(),
            out_data: Default::default(),
            out_valid: Default::default(),
            out_ready: Default::default(),
            overflow: Default::default(),
            frame_error: Default::default(),
            line_break: Default::default(),
            reset: Default::default(),
            urx: UartRx::new(clocks_per_bit),
            utx: UartTx::new(clocks_per_bit),
            rx_fifo: ByteFifo::new(fifo_depth),
            tx_fifo: ByteFifo::new(fifo_depth),
            bytes: (0..4).map(|_| Default::default()).collect(),
            pack: Default::default(),
            nbytes: Default::default(),
            wvalid: Default::default(),
            oword: Default::default(),
            oleft: Default::default(),
            overflow_r: Default::default(),
            ferr_r: Default::default(),
            c_word_zero: Constant::new(0u64.into()),
            c_byte_zero: Constant::new(0u64.into()),
            c_nb_last: Constant::new(3u64.into()),
            c_nb_one: Constant::new(1u64.into()),
            c_nb_zero: Constant::new(0u64.into()),
            c_ol_zero: Constant::new(0u64.into()),
            c_ol_one: Constant::new(1u64.into()),
            c_ol_four: Constant::new(4u64.into()),
        }
    }
}

// `#[hdl_gen]` needs index loops over the byte registers.
#[allow(clippy::needless_range_loop)]
impl Logic for UartBridge {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, nbytes, wvalid, oword, oleft, overflow_r, ferr_r);
        for i in 0..4 {
            self.bytes[i].clock.next = self.clock.val();
            self.bytes[i].d.next = self.bytes[i].q.val();
        }
        self.urx.clock.next = self.clock.val();
        self.utx.clock.next = self.clock.val();
        self.rx_fifo.clock.next = self.clock.val();
        self.tx_fifo.clock.next = self.clock.val();
        self.reset.next = self.rst.val() || self.urx.line_break.val();
        self.line_break.next = self.urx.line_break.val();
        self.urx.rst.next = self.rst.val();
        self.utx.rst.next = self.reset.val();
        self.rx_fifo.rst.next = self.reset.val();
        self.tx_fifo.rst.next = self.reset.val();

        // receive: line -> bytes -> FIFO
        self.urx.rx.next = self.rx.val();
        self.rx_fifo.push.next = self.urx.valid.val();
        self.rx_fifo.data_in.next = self.urx.data.val();

        // pack 4 bytes, first byte lowest, into the core's input word: bytes shift down
        self.pack.b0.next = self.bytes[0].q.val();
        self.pack.b1.next = self.bytes[1].q.val();
        self.pack.b2.next = self.bytes[2].q.val();
        self.pack.b3.next = self.bytes[3].q.val();
        self.in_data.next = self.pack.word.val();
        self.in_valid.next = self.wvalid.q.val();
        self.rx_fifo.pop.next = false;
        if self.wvalid.q.val() {
            if self.in_ready.val() {
                self.wvalid.d.next = false;
            }
        } else if self.rx_fifo.valid.val() {
            self.rx_fifo.pop.next = true;
            self.bytes[0].d.next = self.bytes[1].q.val();
            self.bytes[1].d.next = self.bytes[2].q.val();
            self.bytes[2].d.next = self.bytes[3].q.val();
            self.bytes[3].d.next = self.rx_fifo.data_out.val();
            self.nbytes.d.next = self.nbytes.q.val() + self.c_nb_one.val();
            if self.nbytes.q.val() == self.c_nb_last.val() {
                self.wvalid.d.next = true;
            }
        }

        // unpack the core's output words, lowest byte first, into the transmit FIFO
        // (The push is offered whenever a byte is left and repeated until the FIFO has room; a
        // push into a full FIFO is ignored. Offering it without looking at `full` keeps the
        // Verilog free of a block-level loop through the FIFO, which Verilator would flag.)
        self.out_ready.next = self.oleft.q.val() == self.c_ol_zero.val();
        self.tx_fifo.push.next = self.oleft.q.val() != self.c_ol_zero.val();
        self.tx_fifo.data_in.next = self.oword.q.val().get_bits::<8>(0);
        if self.oleft.q.val() == self.c_ol_zero.val() {
            if self.out_valid.val() {
                self.oword.d.next = self.out_data.val();
                self.oleft.d.next = self.c_ol_four.val();
            }
        } else if !self.tx_fifo.full.val() {
            self.oword.d.next = self.oword.q.val() >> 8;
            self.oleft.d.next = self.oleft.q.val() - self.c_ol_one.val();
        }

        // transmit FIFO -> line
        self.utx.data.next = self.tx_fifo.data_out.val();
        self.utx.valid.next = self.tx_fifo.valid.val();
        self.tx_fifo.pop.next = self.utx.ready.val();
        self.tx.next = self.utx.tx.val();

        // sticky flags
        self.overflow_r.d.next = self.overflow_r.q.val() || self.rx_fifo.dropped.val();
        self.ferr_r.d.next = self.ferr_r.q.val() || self.urx.frame_error.val();
        self.overflow.next = self.overflow_r.q.val();
        self.frame_error.next = self.ferr_r.q.val();

        if self.reset.val() {
            for i in 0..4 {
                self.bytes[i].d.next = self.c_byte_zero.val();
            }
            self.nbytes.d.next = self.c_nb_zero.val();
            self.wvalid.d.next = false;
            self.oword.d.next = self.c_word_zero.val();
            self.oleft.d.next = self.c_ol_zero.val();
            self.overflow_r.d.next = false;
            self.ferr_r.d.next = false;
        }
    }
}

/// The core behind a UART: [`UartBridge`] + [`ProtobrainCore`], one clock; `rst` resets both,
/// and so does a BREAK on `rx` (the bridge's `line_break`), for as long as it lasts. The core's
/// reset is registered (one clock after `rst`), so its high-fanout net starts at a flip-flop.
///
/// ```text
///        ┌────────────── protobrain_uart ──────────────┐
///  rx ──►│ UartBridge ══ in_* ══► ProtobrainCore       │
///  tx ◄──│            ◄═ out_* ══                      │
///        │  line_break ─► OR rst ─► [FF] ─► core rst    │
///        │ overflow ──────────────────────────────────►│ overflow
///        └─────────────────────────────────────────────┘  clk, rst
/// ```
#[derive(LogicBlock)]
pub struct UartCore {
    /// Clock of everything.
    pub clk: Signal<In, Clock>,
    /// Synchronous active-high reset of the bridge and the core.
    pub rst: Signal<In, Bit>,
    /// Serial input (from the host's TX).
    pub rx: Signal<In, Bit>,
    /// Serial output (to the host's RX).
    pub tx: Signal<Out, Bit>,
    /// Sticky receive-overflow flag of the bridge (see the module docs).
    pub overflow: Signal<Out, Bit>,
    bridge: UartBridge,
    core: ProtobrainCore,
    core_rst: DFF<Bit>,
}

impl UartCore {
    /// The core for `cfg` behind a bridge of `clocks_per_bit` clocks per bit and FIFOs of
    /// `fifo_depth` bytes.
    ///
    /// # Panics
    /// As [`UartBridge::new`].
    pub fn new(cfg: &Config, clocks_per_bit: usize, fifo_depth: usize) -> Self {
        UartCore {
            clk: Default::default(),
            rst: Default::default(),
            rx: Default::default(),
            tx: Default::default(),
            overflow: Default::default(),
            bridge: UartBridge::new(clocks_per_bit, fifo_depth),
            core: ProtobrainCore::new(cfg),
            core_rst: Default::default(),
        }
    }

    /// The configuration of the core.
    pub fn config(&self) -> &Config {
        self.core.config()
    }
}

impl Logic for UartCore {
    #[hdl_gen]
    fn update(&mut self) {
        self.bridge.clock.next = self.clk.val();
        self.core.clk.next = self.clk.val();
        self.bridge.rst.next = self.rst.val();
        self.core_rst.clock.next = self.clk.val();
        self.core_rst.d.next = self.rst.val() || self.bridge.line_break.val();
        self.core.rst.next = self.core_rst.q.val();
        self.bridge.rx.next = self.rx.val();
        self.tx.next = self.bridge.tx.val();
        self.overflow.next = self.bridge.overflow.val();
        self.core.in_data.next = self.bridge.in_data.val();
        self.core.in_valid.next = self.bridge.in_valid.val();
        self.bridge.in_ready.next = self.core.in_ready.val();
        self.bridge.out_data.next = self.core.out_data.val();
        self.bridge.out_valid.next = self.core.out_valid.val();
        self.core.out_ready.next = self.bridge.out_ready.val();
    }
}

/// The Verilog of [`UartCore`] with top module [`UART_TOP`] (ports `clk, rst, rx, tx,
/// overflow`).
pub fn uart_core_verilog(
    cfg: &Config,
    clocks_per_bit: usize,
    fifo_depth: usize,
) -> Result<String, EmitError> {
    crate::emit::top_verilog(
        &mut UartCore::new(cfg, clocks_per_bit, fifo_depth),
        UART_TOP,
        &format!("{UART_TOP}: UART bridge ({clocks_per_bit} clocks per bit, {fifo_depth}-byte FIFOs) + core for {cfg}"),
        cfg,
        crate::emit::Form::Compact,
    )
}

/// A bit-level model of the far end's transmitter: turns bytes into line levels, one per clock
/// (8N1, `clocks_per_bit` clocks per bit, optionally a stretched or shrunk bit time to test the
/// receiver's tolerance), and sends BREAKs. Pure Rust, for test benches of the bridge.
#[derive(Debug, Clone)]
pub struct LineEncoder {
    period: f64,
    queue: VecDeque<LineItem>,
    /// Position in the current frame, in clocks, or None when idle.
    pos: Option<f64>,
    byte: u8,
    /// Clocks of BREAK (low line) left.
    low: usize,
}

/// What a [`LineEncoder`] has queued.
#[derive(Debug, Clone, Copy)]
enum LineItem {
    Byte(u8),
    /// A BREAK of this many clocks.
    Break(usize),
}

impl LineEncoder {
    /// An encoder with a bit time of `period` clocks (need not be an integer).
    pub fn new(period: f64) -> Self {
        assert!(period >= 1.0, "bit period must be at least one clock, got {period}");
        LineEncoder { period, queue: VecDeque::new(), pos: None, byte: 0, low: 0 }
    }

    /// Queue bytes to send back to back.
    pub fn send(&mut self, bytes: &[u8]) {
        self.queue.extend(bytes.iter().map(|&b| LineItem::Byte(b)));
    }

    /// Queue a BREAK: the line held low for `clocks` clocks (after the bytes queued before it),
    /// then idle.
    pub fn send_break(&mut self, clocks: usize) {
        self.queue.push_back(LineItem::Break(clocks));
    }

    /// Nothing queued and no frame or BREAK on the line.
    pub fn is_idle(&self) -> bool {
        self.pos.is_none() && self.low == 0 && self.queue.is_empty()
    }

    /// The line level during the next clock.
    pub fn next_level(&mut self) -> bool {
        while self.pos.is_none() && self.low == 0 {
            match self.queue.pop_front() {
                Some(LineItem::Byte(b)) => {
                    self.byte = b;
                    self.pos = Some(0.0);
                }
                Some(LineItem::Break(clocks)) => self.low = clocks,
                None => break,
            }
        }
        if self.low > 0 {
            self.low -= 1;
            return false;
        }
        let Some(pos) = self.pos else { return true };
        let bit = (pos / self.period) as usize;
        let level = match bit {
            0 => false,
            1..=8 => (self.byte >> (bit - 1)) & 1 == 1,
            _ => true,
        };
        let next = pos + 1.0;
        // the frame ends after 10 bit times (a fractional remainder is dropped, never added)
        self.pos = if next >= 10.0 * self.period { None } else { Some(next) };
        level
    }
}

/// A bit-level model of the far end's receiver: samples the line once per clock and returns
/// each byte (or a framing error) as its stop bit is sampled. Pure Rust, for test benches.
#[derive(Debug, Clone)]
pub struct LineDecoder {
    cpb: usize,
    /// Clocks since the falling edge of the current start bit, or None when idle.
    pos: Option<usize>,
    bits: u16,
    last: bool,
}

/// What [`LineDecoder::sample`] saw end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Received {
    /// A byte with a good stop bit.
    Byte(u8),
    /// A frame whose stop bit was low.
    FrameError,
}

impl LineDecoder {
    /// A decoder for `clocks_per_bit` clocks per bit.
    pub fn new(clocks_per_bit: usize) -> Self {
        assert!(clocks_per_bit >= 2, "clocks_per_bit must be at least 2, got {clocks_per_bit}");
        LineDecoder { cpb: clocks_per_bit, pos: None, bits: 0, last: true }
    }

    /// Feed the line level of one clock.
    pub fn sample(&mut self, level: bool) -> Option<Received> {
        let prev = std::mem::replace(&mut self.last, level);
        match self.pos {
            None => {
                if prev && !level {
                    self.pos = Some(0);
                    self.bits = 0;
                }
                None
            }
            Some(p) => {
                let p = p + 1;
                self.pos = Some(p);
                if p % self.cpb != self.cpb / 2 {
                    return None;
                }
                let bit = p / self.cpb;
                if bit == 0 {
                    if level {
                        self.pos = None; // a glitch
                    }
                    return None;
                }
                if bit <= 8 {
                    self.bits |= u16::from(level) << (bit - 1);
                    return None;
                }
                self.pos = None;
                Some(if level { Received::Byte(self.bits as u8) } else { Received::FrameError })
            }
        }
    }
}

#[cfg(test)]
#[path = "uart_tests.rs"]
mod tests;
