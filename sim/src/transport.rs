//! The cycle simulators as a [`driver::Transport`]: the driver talks to a simulated core
//! exactly as it talks to a board, and every word crosses the stream ports with the hardware's
//! handshake, so the cycle count of a driver run is the hardware's.
//!
//! ```text
//!   Device ──send──► queue ──► in_valid/in_data ─┐  ┌──────────┐  CycleSim::pump: one tick
//!                                                ├─►│ CycleSim │  per cycle, or many at once
//!   Device ◄─recv─── words ◄── out_valid/out_data◄┘  └──────────┘  (native model's fast paths)
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

use crate::CycleSim;

/// A [`CycleSim`] behind the driver's [`Transport`] interface.
#[derive(Debug)]
pub struct SimTransport<S: CycleSim> {
    sim: S,
    to_device: VecDeque<u32>,
    from_device: VecDeque<u32>,
    words_in: u64,
    words_out: u64,
    /// `send` ran the clock and the device went silent: leave it to `recv` to report.
    send_stalled: bool,
    /// Words `send` queues before it runs the clock.
    queue_words: usize,
}

impl<S: CycleSim> SimTransport<S> {
    /// Cycles without a word moving after which `recv` reports a timeout.
    pub const SILENCE_CYCLES: u64 = 1 << 20;

    /// Words `send` queues before it runs the clock to let the device take them.
    pub const QUEUE_WORDS: usize = 1 << 16;

    /// Wrap a simulator; it is reset first (cycle 0 is the first cycle after the reset).
    pub fn new(mut sim: S) -> Self {
        sim.reset();
        SimTransport {
            sim,
            to_device: VecDeque::new(),
            from_device: VecDeque::new(),
            words_in: 0,
            words_out: 0,
            send_stalled: false,
            queue_words: Self::QUEUE_WORDS,
        }
    }

    /// Queue at most `n >= 1` words in `send` (default [`Self::QUEUE_WORDS`]) before running
    /// the clock; the cycles do not depend on it, only memory and when the clock runs.
    pub fn with_queue_words(mut self, n: usize) -> Self {
        self.queue_words = n.max(1);
        self
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

    /// Run the clock until the device has taken all but `keep` of the queued words and
    /// produced `want` words (or until [`Self::SILENCE_CYCLES`] cycles pass with no word
    /// moving): the backend's [`CycleSim::pump`], fast on the native model.
    fn pump(&mut self, keep: usize, want: usize) -> bool {
        let (queued, produced) = (self.to_device.len(), self.from_device.len());
        let ok = self.sim.pump(&mut self.to_device, &mut self.from_device, keep, want, Self::SILENCE_CYCLES);
        self.words_in += (queued - self.to_device.len()) as u64;
        self.words_out += (self.from_device.len() - produced) as u64;
        ok
    }
}

impl<S: CycleSim> Transport for SimTransport<S> {
    /// Queues the words; once more than [`Self::QUEUE_WORDS`] (or [`Self::with_queue_words`]) wait, runs the clock until the
    /// device has taken all but that many. The host offers queued words on every cycle either
    /// way, so the cycles are those of queueing everything and running in `recv`; peak memory
    /// stays bounded however long the program. (A device that stops taking words is left to
    /// `recv` to report, as before.)
    fn send(&mut self, words: &[u32]) -> Result<(), TransportError> {
        for chunk in words.chunks(self.queue_words) {
            self.to_device.extend(chunk.iter().copied());
            if self.to_device.len() > self.queue_words && !self.send_stalled {
                self.send_stalled = !self.pump(self.queue_words, 0);
            }
        }
        Ok(())
    }

    fn recv(&mut self, n: usize, timeout: Duration) -> Result<Vec<u32>, TransportError> {
        self.send_stalled = false;
        if !self.pump(0, n) {
            return Err(TransportError::Timeout { wanted: n, got: self.from_device.len(), timeout });
        }
        Ok(self.from_device.drain(..n).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::NativeSim;
    use crate::Ticked;
    use driver::{Device, Layer, OutputKind};
    use nalgebra::{DMatrix, DVector};
    use spec::stimulus::Rng;
    use spec::{Config, Quant};

    /// The driver on the native model through the fast [`CycleSim::pump`], with `send` running
    /// the clock every few words, equals the driver on the same model stepped one `tick` per
    /// cycle with everything queued: random GEMMs (raw and requantised, DIM 2..=12, memories
    /// small enough to chunk), same outputs, cycles, words each way, counters and activity.
    #[test]
    fn the_fast_host_loop_equals_stepping_every_cycle() {
        let mut rng = Rng::new(15);
        let mut ran = 0;
        for case in 0..24 {
            let dim = 2 + rng.below(11) as usize;
            let (scratch, acc) = (
                (4 * dim).next_power_of_two() << rng.below(3),
                (2 * dim).next_power_of_two() << rng.below(3),
            );
            let cfg = Config::new(dim, scratch, acc).unwrap();
            let (m, k, n) =
                (1 + rng.below(90) as usize, 1 + rng.below(40) as usize, 1 + rng.below(40) as usize);
            let x = DMatrix::from_fn(m, k, |_, _| rng.i8());
            let w = DMatrix::from_fn(k, n, |_, _| rng.i8());
            let b = DVector::from_fn(n, |_, _| rng.below(2000) as i32 - 1000);
            let quant = Quant::new(1 + rng.below(1000) as u16, 10, case % 2 == 0).unwrap();
            let layer = Layer::new(w, b, quant).unwrap();
            let kind = if case % 3 == 0 { OutputKind::Raw } else { OutputKind::Int8 };
            let queue = 1 + rng.below(40) as usize;
            let mut fast =
                Device::open(SimTransport::new(NativeSim::new(&cfg)).with_queue_words(queue), &cfg).unwrap();
            let mut slow = Device::open(SimTransport::new(Ticked(NativeSim::new(&cfg))), &cfg).unwrap();
            let Ok(y) = fast.layer(&x, &layer, kind) else { continue };
            let what = format!("case {case}: {m}x{k}x{n} on {cfg}, queue {queue}");
            assert_eq!(y, slow.layer(&x, &layer, kind).unwrap(), "{what}");
            let (f, s) = (fast.transport(), slow.transport());
            assert_eq!(f.sim().cycle(), s.sim().0.cycle(), "{what}");
            assert_eq!(f.words_moved(), s.words_moved(), "{what}");
            assert_eq!(f.sim().counters(), s.sim().0.counters(), "{what}");
            assert_eq!(f.sim().activity(), s.sim().0.activity(), "{what}");
            ran += 1;
        }
        assert!(ran >= 16, "only {ran} of 24 random GEMMs compiled");
    }
}
