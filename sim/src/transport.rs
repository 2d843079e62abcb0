//! The cycle simulators as a [`driver::Transport`]: the driver talks to a simulated core
//! exactly as it talks to a board, and every word crosses the stream ports with the hardware's
//! handshake, so the cycle count of a driver run is the hardware's.
//!
//! ```text
//!   Device ──send──► queue ──► in_valid/in_data ─┐  ┌──────────┐
//!                                                ├─►│ CycleSim │  one tick per cycle
//!   Device ◄─recv─── words ◄── out_valid/out_data◄┘  └──────────┘  (native or Verilator)
//! ```
//!
//! The host side keeps DESIGN.md's rules (valid held with its word until taken, `out_ready`
//! always high). A simulator has no wall clock: `recv` gives up with
//! [`TransportError::Timeout`] after [`SimTransport::SILENCE_CYCLES`] cycles in which no word
//! moved in either direction — far longer than any command can run without touching the
//! streams (an ACTIVATE of 65535 rows), so it only fires on a device that is truly silent.

use std::collections::VecDeque;
use std::time::Duration;

use driver::{Transport, TransportError};
use spec::stream::HostOut;

use crate::CycleSim;

/// A [`CycleSim`] behind the driver's [`Transport`] interface.
#[derive(Debug)]
pub struct SimTransport<S: CycleSim> {
    sim: S,
    to_device: VecDeque<u32>,
    from_device: VecDeque<u32>,
    words_in: u64,
    words_out: u64,
}

impl<S: CycleSim> SimTransport<S> {
    /// Cycles without a word moving after which `recv` reports a timeout.
    pub const SILENCE_CYCLES: u64 = 1 << 20;

    /// Wrap a simulator; it is reset first (cycle 0 is the first cycle after the reset).
    pub fn new(mut sim: S) -> Self {
        sim.reset();
        SimTransport {
            sim,
            to_device: VecDeque::new(),
            from_device: VecDeque::new(),
            words_in: 0,
            words_out: 0,
        }
    }

    /// The simulator (for its cycle count, counters, activity).
    pub fn sim(&self) -> &S {
        &self.sim
    }

    /// The simulator, mutably.
    pub fn sim_mut(&mut self) -> &mut S {
        &mut self.sim
    }

    /// Unwrap the simulator.
    pub fn into_sim(self) -> S {
        self.sim
    }

    /// Words taken by the device and words it produced so far.
    pub fn words_moved(&self) -> (u64, u64) {
        (self.words_in, self.words_out)
    }

    /// Run the clock until the device has taken every queued word and produced `want` words
    /// (or until [`Self::SILENCE_CYCLES`] cycles pass with no word moving).
    fn pump(&mut self, want: usize) -> bool {
        let mut silent = 0u64;
        while self.from_device.len() < want || !self.to_device.is_empty() {
            let drive = HostOut {
                in_valid: !self.to_device.is_empty(),
                in_data: self.to_device.front().copied().unwrap_or(0),
                out_ready: true,
            };
            let seen = self.sim.tick(drive);
            let mut moved = false;
            if drive.in_valid && seen.in_ready {
                self.to_device.pop_front();
                self.words_in += 1;
                moved = true;
            }
            if seen.out_valid {
                self.from_device.push_back(seen.out_data);
                self.words_out += 1;
                moved = true;
            }
            silent = if moved { 0 } else { silent + 1 };
            if silent >= Self::SILENCE_CYCLES {
                return false;
            }
        }
        true
    }
}

impl<S: CycleSim> Transport for SimTransport<S> {
    fn send(&mut self, words: &[u32]) -> Result<(), TransportError> {
        self.to_device.extend(words.iter().copied());
        Ok(())
    }

    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u32>, TransportError> {
        if !self.pump(n) {
            return Err(TransportError::Timeout { wanted: n, got: self.from_device.len(), timeout });
        }
        Ok(self.from_device.drain(..n).collect())
    }
}
