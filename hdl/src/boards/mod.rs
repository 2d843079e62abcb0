//! Board tops: the core behind its UART bridge, clocked by a PLL, with a reset synchroniser and
//! two LEDs, for the iCEBreaker (iCE40 UP5K) and the ULX3S 25F / 85F (ECP5); and the open
//! FPGA flow that turns them into bitstreams ([`flow`]).
//!
//! ```text
//!                ┌──────────────────────────── protobrain_top ─────────────────────────────┐
//!  clk_osc ─────►│ Pll (SB_PLL40_PAD | EHXPLLL) ──► clk ──► every register                 │
//!                │        │ locked                                                         │
//!  btn_n ───────►│ ─ AND ─┴─► ResetSync (3 FFs) ──► rst (synchronous, active high)         │
//!  uart_rx ─────►│ UartCore: UartBridge (cpb, FIFOs) ⇄ ProtobrainCore (spec preset)        │──► uart_tx
//!                │ Heartbeat: toggles every `heartbeat_half_period` clocks out of reset    │──► led_heartbeat
//!                │ UartBridge overflow flag (sticky until reset)                           │──► led_overflow
//!                └─────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Every board uses the same top and port names; the constraint files in `bitstreams/` map them
//! to pins. The reset is asserted from power-up (every flip-flop starts at 0, and the
//! synchroniser stores "out of reset" as 1) until the PLL has locked and the button is
//! released, then released synchronously three clocks later. LEDs follow the board's polarity
//! (iCEBreaker's are active low). The host resets the bridge and the core (not the PLL or the
//! heartbeat) without the button by a BREAK on `uart_rx`: the line held low for 20 bit times or
//! more (docs/design.md "Link recovery"); that also clears the overflow LED.

pub mod flow;
pub mod pll;

use std::fmt;
use std::str::FromStr;

use rust_hdl::prelude::*;
use spec::Config;

use crate::emit::EmitError;
use crate::uart::{clocks_per_bit, UartCore, BOARD_FIFO_DEPTH};
use pll::{Ecp5PllParams, Ice40PllParams, Pll, PllKind};

/// Name of the emitted board top module.
pub const BOARD_TOP: &str = "protobrain_top";

/// Simulation models of the PLL primitives (`ifndef SYNTHESIS`), for Icarus or Verilator runs
/// of a board top. Never pass this file to synthesis.
pub const VENDOR_SIM_MODELS: &str = include_str!("vendor_sim.v");

/// UART rate of every board bitstream (the host must open the port at this rate).
pub const BOARD_BAUD: u64 = 1_000_000;

/// The supported boards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Board {
    /// 1BitSquared iCEBreaker: iCE40 UP5K (SG48), 12 MHz oscillator, FT2232H UART.
    Icebreaker,
    /// Radiona ULX3S with an ECP5 LFE5U-25F (CABGA381), 25 MHz oscillator, FT231X UART.
    Ulx3s25f,
    /// Radiona ULX3S with an ECP5 LFE5U-85F (CABGA381).
    Ulx3s85f,
}

/// The FPGA family of a board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Lattice iCE40 (Yosys `synth_ice40`, nextpnr-ice40, icepack).
    Ice40,
    /// Lattice ECP5 (Yosys `synth_ecp5`, nextpnr-ecp5, ecppack).
    Ecp5,
}

impl Board {
    /// Every board.
    pub const ALL: [Board; 3] = [Board::Icebreaker, Board::Ulx3s25f, Board::Ulx3s85f];

    /// The name used on the command line and in file names.
    pub fn name(&self) -> &'static str {
        match self {
            Board::Icebreaker => "icebreaker",
            Board::Ulx3s25f => "ulx3s-25f",
            Board::Ulx3s85f => "ulx3s-85f",
        }
    }

    /// The FPGA family.
    pub fn family(&self) -> Family {
        match self {
            Board::Icebreaker => Family::Ice40,
            Board::Ulx3s25f | Board::Ulx3s85f => Family::Ecp5,
        }
    }

    /// The `spec::Config` preset the board carries.
    pub fn preset(&self) -> &'static str {
        match self {
            Board::Icebreaker => "ice40-up5k",
            Board::Ulx3s25f => "ecp5-25k",
            Board::Ulx3s85f => "ecp5-85k",
        }
    }

    /// Oscillator frequency on the board.
    pub fn osc_hz(&self) -> u64 {
        match self {
            Board::Icebreaker => 12_000_000,
            Board::Ulx3s25f | Board::Ulx3s85f => 25_000_000,
        }
    }

    /// Core clock the bitstream is built for (the PLL output; chosen so the flow closes timing
    /// with margin, see docs/fpga.md).
    pub fn core_hz(&self) -> u64 {
        match self {
            Board::Icebreaker => 24_000_000,
            Board::Ulx3s25f | Board::Ulx3s85f => 50_000_000,
        }
    }

    /// The board's constraint file (in `bitstreams/`): iCE40 `.pcf` or ECP5 `.lpf`.
    pub fn constraints(&self) -> (&'static str, &'static str) {
        match self.family() {
            Family::Ice40 => ("icebreaker.pcf", include_str!("../../../bitstreams/icebreaker.pcf")),
            Family::Ecp5 => ("ulx3s.lpf", include_str!("../../../bitstreams/ulx3s.lpf")),
        }
    }

    /// The full parameter set of this board's top.
    ///
    /// # Panics
    /// Never for the boards above (their presets, PLL settings and baud rates are valid; the
    /// tests build every one).
    pub fn spec(&self) -> BoardSpec {
        let core_hz = self.core_hz();
        let (cpb, _) = clocks_per_bit(core_hz, BOARD_BAUD).expect("board baud rate fits the UART");
        let pll = match self.family() {
            Family::Ice40 => PllKind::Ice40(
                Ice40PllParams::search(self.osc_hz() as f64, core_hz as f64).expect("iCE40 PLL settings"),
            ),
            Family::Ecp5 => PllKind::Ecp5 {
                params: Ecp5PllParams::search(self.osc_hz() as f64, core_hz as f64)
                    .expect("ECP5 PLL settings"),
                f_in_mhz: self.osc_hz() as f64 / 1e6,
            },
        };
        BoardSpec {
            board: *self,
            config: Config::preset(self.preset()).expect("board preset"),
            core_hz,
            clocks_per_bit: cpb,
            fifo_depth: BOARD_FIFO_DEPTH,
            heartbeat_half_period: core_hz / 2,
            pll,
            led_active_low: *self == Board::Icebreaker,
        }
    }
}

impl fmt::Display for Board {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A board name that is not one of [`Board::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown board `{0}`: expected one of icebreaker, ulx3s-25f, ulx3s-85f")]
pub struct UnknownBoard(pub String);

impl FromStr for Board {
    type Err = UnknownBoard;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Board::ALL.into_iter().find(|b| b.name() == s).ok_or_else(|| UnknownBoard(s.to_string()))
    }
}

/// Everything that shapes a board top. [`Board::spec`] gives the real one; tests shrink the
/// core, the bit time and the heartbeat to simulate quickly.
#[derive(Debug, Clone, PartialEq)]
pub struct BoardSpec {
    /// The board.
    pub board: Board,
    /// The core's configuration.
    pub config: Config,
    /// Core clock (PLL output).
    pub core_hz: u64,
    /// UART clocks per bit at `core_hz`.
    pub clocks_per_bit: usize,
    /// Bytes per UART FIFO.
    pub fifo_depth: usize,
    /// Core clocks between heartbeat LED toggles.
    pub heartbeat_half_period: u64,
    /// The PLL primitive and its settings.
    pub pll: PllKind,
    /// LEDs light when their pin is low.
    pub led_active_low: bool,
}

/// Reset synchroniser: `rst` is high from power-up and whenever `arm` is low, and falls three
/// rising edges after `arm` rises (`arm` may change at any time: it passes three flip-flops).
///
/// ```text
///  arm ──► [s0] ──► [s1] ──► [s2] ──► NOT ──► rst        (power-up: all 0, so rst = 1)
/// ```
#[derive(LogicBlock, Default)]
pub struct ResetSync {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// High when the design may run (PLL locked, button released); asynchronous.
    pub arm: Signal<In, Bit>,
    /// Synchronous active-high reset.
    pub rst: Signal<Out, Bit>,
    s0: DFF<Bit>,
    s1: DFF<Bit>,
    s2: DFF<Bit>,
}

impl Logic for ResetSync {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, s0, s1, s2);
        self.s0.d.next = self.arm.val();
        self.s1.d.next = self.s0.q.val();
        self.s2.d.next = self.s1.q.val();
        self.rst.next = !self.s2.q.val();
    }
}

/// Heartbeat: `led` toggles every `half_period` clocks while `rst` is low (so a blinking LED
/// says: clock running, PLL locked, out of reset).
#[derive(LogicBlock)]
pub struct Heartbeat {
    /// Clock.
    pub clock: Signal<In, Clock>,
    /// Synchronous active-high reset (LED off, counter cleared).
    pub rst: Signal<In, Bit>,
    /// The blinking output.
    pub led: Signal<Out, Bit>,
    count: DFF<Bits<32>>,
    state: DFF<Bit>,
    c_last: Constant<Bits<32>>,
    c_zero: Constant<Bits<32>>,
    c_one: Constant<Bits<32>>,
}

impl Heartbeat {
    /// A heartbeat toggling every `half_period` clocks.
    ///
    /// # Panics
    /// If `half_period` is 0 or does not fit in 32 bits.
    pub fn new(half_period: u64) -> Self {
        assert!(
            (1..=1u64 << 32).contains(&half_period),
            "heartbeat half period must be in 1..=2^32 clocks, got {half_period}"
        );
        Heartbeat {
            clock: Default::default(),
            rst: Default::default(),
            led: Default::default(),
            count: Default::default(),
            state: Default::default(),
            c_last: Constant::new((half_period - 1).into()),
            c_zero: Constant::new(0u64.into()),
            c_one: Constant::new(1u64.into()),
        }
    }
}

impl Logic for Heartbeat {
    #[hdl_gen]
    fn update(&mut self) {
        dff_setup!(self, clock, count, state);
        self.led.next = self.state.q.val();
        if self.count.q.val() == self.c_last.val() {
            self.count.d.next = self.c_zero.val();
            self.state.d.next = !self.state.q.val();
        } else {
            self.count.d.next = self.count.q.val() + self.c_one.val();
        }
        if self.rst.val() {
            self.count.d.next = self.c_zero.val();
            self.state.d.next = false;
        }
    }
}

/// The board top (see the module docs).
#[derive(LogicBlock)]
pub struct BoardTop {
    /// The board's oscillator (a PLL-capable clock pin).
    pub clk_osc: Signal<In, Clock>,
    /// Reset button, low while pressed.
    pub btn_n: Signal<In, Bit>,
    /// Serial input from the host (the USB UART's TXD).
    pub uart_rx: Signal<In, Bit>,
    /// Serial output to the host (the USB UART's RXD).
    pub uart_tx: Signal<Out, Bit>,
    /// Blinks while the design runs.
    pub led_heartbeat: Signal<Out, Bit>,
    /// Lit after the UART receive FIFO overflowed (until reset).
    pub led_overflow: Signal<Out, Bit>,
    pll: Pll,
    reset: ResetSync,
    uart: UartCore,
    beat: Heartbeat,
    led_invert: Constant<Bit>,
}

impl BoardTop {
    /// The top for `spec`.
    ///
    /// # Panics
    /// As [`UartCore::new`] and [`Heartbeat::new`] for out-of-range parameters.
    pub fn new(spec: &BoardSpec) -> Self {
        BoardTop {
            clk_osc: Default::default(),
            btn_n: Default::default(),
            uart_rx: Default::default(),
            uart_tx: Default::default(),
            led_heartbeat: Default::default(),
            led_overflow: Default::default(),
            pll: Pll::new(spec.pll),
            reset: ResetSync::default(),
            uart: UartCore::new(&spec.config, spec.clocks_per_bit, spec.fifo_depth),
            beat: Heartbeat::new(spec.heartbeat_half_period),
            led_invert: Constant::new(spec.led_active_low),
        }
    }
}

impl Logic for BoardTop {
    #[hdl_gen]
    fn update(&mut self) {
        self.pll.clock_in.next = self.clk_osc.val();
        self.reset.clock.next = self.pll.clock_out.val();
        self.uart.clk.next = self.pll.clock_out.val();
        self.beat.clock.next = self.pll.clock_out.val();
        self.reset.arm.next = self.pll.locked.val() && self.btn_n.val();
        self.uart.rst.next = self.reset.rst.val();
        self.beat.rst.next = self.reset.rst.val();
        self.uart.rx.next = self.uart_rx.val();
        self.uart_tx.next = self.uart.tx.val();
        self.led_heartbeat.next = self.beat.led.val() ^ self.led_invert.val();
        self.led_overflow.next = self.uart.overflow.val() ^ self.led_invert.val();
    }
}

/// The Verilog of the board top for `spec`, module [`BOARD_TOP`], for synthesis (the PLL is
/// the vendor primitive; add [`VENDOR_SIM_MODELS`] to simulate it).
pub fn board_verilog(spec: &BoardSpec) -> Result<String, EmitError> {
    // rust-hdl's per-instance text, not deduped: the design is the same, but the flattened netlist
    // comes out in another order and nextpnr then missed the iCEBreaker's 30 MHz (28.7 MHz with
    // seed 1; the margin was 2.7%), so the boards keep this text until timing closure gives margin.
    let what = format!(
        "{BOARD_TOP} for {board}: {cfg}; core clock {mhz} MHz, UART {cpb} clocks per bit",
        board = spec.board,
        cfg = spec.config,
        mhz = spec.core_hz as f64 / 1e6,
        cpb = spec.clocks_per_bit,
    );
    crate::emit::top_verilog(
        &mut BoardTop::new(spec),
        BOARD_TOP,
        &what,
        &spec.config,
        crate::emit::Form::PerInstance,
    )
}

#[cfg(test)]
mod tests;
