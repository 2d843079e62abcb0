//! A simulated FPGA board as a byte port: the Verilator model of `protobrain_uart` (UART
//! bridge + core) behind `std::io::Read + Write`, serial line modelled bit by bit, so
//! [`driver::SerialTransport`] talks to it exactly as it talks to a real board.
//!
//! ```text
//!   SerialTransport ── write(bytes) ──► LineEncoder ── rx level per clock ──┐
//!   (host driver)                       (8N1, start, 8 data LSB first, stop) │
//!                                                                           ▼
//!                                                          UartModel (protobrain_uart, Verilator)
//!                                                                           │
//!                   ◄── read(buf) ──── received bytes ◄── LineDecoder ◄─────┘ tx level per clock
//! ```
//!
//! `write` only queues bytes on the line (like an OS transmit buffer: it never blocks and never
//! overruns the board, which drains the line at the bit rate). The clock runs in `read`: each
//! call first returns bytes already decoded, else runs the model for one bounded chunk of
//! [`SimulatedBoard::poll_cycles`] cycles (serialising queued bytes onto `rx` and decoding
//! `tx`) and returns what arrived, or `TimedOut` if nothing did: the behaviour of a serial
//! port with a read timeout, which is what `SerialTransport::recv` polls. A read never hangs.
//!
//! A framing error on `tx` or the bridge's `overflow` flag is reported as an I/O error
//! (`InvalidData`), since either means the byte stream can no longer be trusted.
//!
//! [`driver::BytePort::send_break`] holds `rx` low for [`driver::serial::BREAK_HOLD_BIT_TIMES`]
//! bit times after the bytes queued before it, as a serial device does: the bridge and the
//! core reset, and the bytes that came back before (or were cut by) the reset are discarded.

use std::collections::VecDeque;
use std::io::{Error, ErrorKind, Read, Write};

use driver::serial::BREAK_HOLD_BIT_TIMES;
use hdl::uart::{LineDecoder, LineEncoder, Received};
use spec::Config;

use crate::verilated::{UartModel, VerilatorError};

/// Default cycles of one read poll: 64 byte times at 4 clocks per bit.
pub const DEFAULT_POLL_CYCLES: u64 = 2560;

/// The Verilator model of a board behind its UART, as a byte port (see the module docs).
#[derive(Debug)]
pub struct SimulatedBoard {
    model: UartModel,
    encoder: LineEncoder,
    decoder: LineDecoder,
    /// Bytes decoded from `tx`, not yet read.
    received: VecDeque<u8>,
    poll: u64,
    bytes_written: u64,
    bytes_read: u64,
    rx_levels: Vec<bool>,
    tx_levels: Vec<bool>,
    breaks: u64,
}

impl SimulatedBoard {
    /// A board with the core for `cfg` behind a UART of `clocks_per_bit` clocks per bit and
    /// FIFOs of `fifo_depth` bytes (the boards use [`hdl::uart::BOARD_FIFO_DEPTH`]), reset,
    /// with an idle line. Builds the Verilator model the first time (seconds; cached).
    ///
    /// # Panics
    /// As [`UartModel::new`], for an unsupported `clocks_per_bit` or `fifo_depth`.
    pub fn new(cfg: &Config, clocks_per_bit: usize, fifo_depth: usize) -> Result<Self, VerilatorError> {
        Ok(SimulatedBoard::from_model(UartModel::new(cfg, clocks_per_bit, fifo_depth)?))
    }

    /// A board around an existing model (reset here, so both line models start idle).
    pub fn from_model(mut model: UartModel) -> Self {
        model.reset();
        let cpb = model.clocks_per_bit();
        SimulatedBoard {
            encoder: LineEncoder::new(cpb as f64),
            decoder: LineDecoder::new(cpb),
            model,
            received: VecDeque::new(),
            poll: DEFAULT_POLL_CYCLES,
            bytes_written: 0,
            bytes_read: 0,
            rx_levels: Vec::new(),
            tx_levels: Vec::new(),
            breaks: 0,
        }
    }

    /// Cycles run by a `read` that finds no byte waiting ([`DEFAULT_POLL_CYCLES`] unless set).
    pub fn poll_cycles(&self) -> u64 {
        self.poll
    }

    /// Set the cycles of one read poll (at least one).
    pub fn set_poll_cycles(&mut self, cycles: u64) {
        self.poll = cycles.max(1);
    }

    /// The Verilator model (its cycle count, overflow flag, where it came from).
    pub fn model(&self) -> &UartModel {
        &self.model
    }

    /// Bytes written by the host so far.
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// Bytes returned to the host by `read` so far.
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// BREAKs the host has sent.
    pub fn breaks(&self) -> u64 {
        self.breaks
    }

    /// Bytes decoded from `tx` and not yet read.
    pub fn bytes_waiting(&self) -> usize {
        self.received.len()
    }

    /// The host's transmitter has nothing queued and no frame on the line.
    pub fn line_idle(&self) -> bool {
        self.encoder.is_idle()
    }

    /// Run `cycles` cycles: queued bytes go out on `rx`, bytes on `tx` are decoded into the
    /// receive queue. An error for a framing error on `tx` or a set `overflow` flag.
    pub fn run(&mut self, cycles: u64) -> std::io::Result<()> {
        let n = cycles as usize;
        self.rx_levels.clear();
        self.rx_levels.extend((0..n).map(|_| self.encoder.next_level()));
        self.tx_levels.resize(n, true);
        let start = self.model.cycle();
        let overflow = self.model.run(&self.rx_levels, &mut self.tx_levels);
        for (i, &level) in self.tx_levels.iter().enumerate() {
            match self.decoder.sample(level) {
                Some(Received::Byte(b)) => self.received.push_back(b),
                Some(Received::FrameError) => {
                    return Err(Error::new(
                        ErrorKind::InvalidData,
                        format!("framing error on the board's tx line at cycle {}", start + i as u64),
                    ))
                }
                None => {}
            }
        }
        if overflow {
            return Err(Error::new(
                ErrorKind::InvalidData,
                format!(
                    "the board's receive FIFO ({} bytes) overflowed by cycle {}: bytes were lost, reset the board",
                    self.model.fifo_depth(),
                    self.model.cycle()
                ),
            ));
        }
        Ok(())
    }
}

/// Idle bit times after a BREAK before the input is discarded (two frames).
const BREAK_SETTLE_BIT_TIMES: u64 = 20;

impl driver::BytePort for SimulatedBoard {
    /// The BREAK on `rx` after the queued bytes, then [`BREAK_SETTLE_BIT_TIMES`] of idle line;
    /// everything received until then is discarded.
    fn send_break(&mut self) -> std::io::Result<bool> {
        let cpb = self.model.clocks_per_bit();
        self.encoder.send_break(BREAK_HOLD_BIT_TIMES as usize * cpb);
        while !self.encoder.is_idle() {
            self.run(self.poll)?;
        }
        self.run(BREAK_SETTLE_BIT_TIMES * cpb as u64)?;
        self.received.clear();
        self.decoder = LineDecoder::new(cpb);
        self.breaks += 1;
        Ok(true)
    }
}

impl Write for SimulatedBoard {
    /// Queue `buf` on the line (all of it; the clock runs in `read`).
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.encoder.send(buf);
        self.bytes_written += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Read for SimulatedBoard {
    /// Bytes already decoded, else those arriving within one poll of
    /// [`SimulatedBoard::poll_cycles`] cycles, else `TimedOut`.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.received.is_empty() {
            self.run(self.poll)?;
        }
        if self.received.is_empty() {
            return Err(Error::new(
                ErrorKind::TimedOut,
                format!("no byte from the board within {} cycles", self.poll),
            ));
        }
        let k = buf.len().min(self.received.len());
        for (slot, b) in buf.iter_mut().zip(self.received.drain(..k)) {
            *slot = b;
        }
        self.bytes_read += k as u64;
        Ok(k)
    }
}
