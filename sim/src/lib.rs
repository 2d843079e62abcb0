//! # protobrain sim
//!
//! Cycle-accurate simulators of `protobrain_core` behind one trait, [`CycleSim`], in the spirit
//! of Amaranth's simulator front end over its engines: test benches, the driver's transports
//! and the estimators see only the trait.
//!
//! ```text
//!            ┌───────────── CycleSim ─────────────┐
//!  Host ────►│ reset · tick(inputs) -> outputs    │   spec::stream::Host drives every backend
//!  (spec)    │ cycle · run_stream(words, stalls)  │   with the same AXI4-Stream rules
//!            └──────┬──────────────────────┬──────┘
//!                   │                      │
//!          native model (Rust,      Verilator model of the emitted
//!          bulk array math)         Verilog (C++ over FFI)
//! ```
//!
//! Both backends produce the same output words on the same cycles for any input stream and
//! stall pattern; the lockstep tests hold them to it.
//!
//! **LANES > 1** (docs/design.md "A wider link: LANES"): the link moves a *beat* of LANES
//! words per handshake. [`CycleSim::tick_beat`] is the cycle on beats; [`CycleSim::run_stream`]
//! and [`CycleSim::pump`] take and give *flattened beats* (LANES words a beat, lane 0 first, as
//! `spec::lanes::frame` makes them), and a [`Trace`] has one entry per output word, LANES per
//! beat, all with the beat's cycle (as `hdl::stream::run_icarus_beats`). [`CycleSim::tick`] at
//! LANES > 1 drives lanes 1.. with zeros and shows lane 0 only. At LANES 1 a beat is a word and
//! nothing differs from the 32-bit link.

use std::collections::VecDeque;

use spec::stream::{DeviceOut, Host, HostOut, Stalls, Stuck, Trace};
use spec::Config;

pub mod activity;
pub mod native;
pub mod transport;
#[cfg(feature = "verilator")]
pub mod uart_board;
#[cfg(feature = "verilator")]
pub mod verilated;
#[cfg(feature = "verilator")]
pub use verilated::{VerilatedSim, VerilatorError};

/// A cycle-accurate model of one `protobrain_core`.
pub trait CycleSim {
    /// The configuration being simulated.
    fn config(&self) -> &Config;

    /// One cycle with `rst` high; the cycle after it is cycle 0. Control state, counters and
    /// the pipelines are cleared; the memories keep their contents (as in hardware).
    fn reset(&mut self);

    /// Cycles since the end of the last reset.
    fn cycle(&self) -> u64;

    /// One clock cycle: the host drives `inputs`, the device's outputs during the cycle are
    /// returned (what the host sees before the rising edge), then the rising edge happens.
    fn tick(&mut self, inputs: HostOut) -> DeviceOut;

    /// One clock cycle on beats: the host drives `in_valid`, the beat `in_beat` and
    /// `out_ready`; the device's output beat during the cycle goes into `out_beat` (every lane,
    /// whether or not `out_valid`), then the rising edge happens. Returns `(in_ready,
    /// out_valid)`. Both beats have LANES words, lane 0 first. The default is LANES 1: one
    /// [`tick`](Self::tick) with lane 0.
    fn tick_beat(
        &mut self,
        in_valid: bool,
        in_beat: &[u32],
        out_ready: bool,
        out_beat: &mut [u32],
    ) -> (bool, bool) {
        let seen = self.tick(HostOut { in_valid, in_data: in_beat[0], out_ready });
        out_beat[0] = seen.out_data;
        (seen.in_ready, seen.out_valid)
    }

    /// Advance `n` cycles with the host idle (`in_valid` and `out_ready` low).
    fn idle(&mut self, n: u64) {
        for _ in 0..n {
            self.tick(HostOut::default());
        }
    }

    /// Reset, then send `words` with the host stalls and record every output word with its
    /// cycle (see [`spec::stream`] for the rules and when a run ends). At LANES > 1 `words` is
    /// the flattened beat stream and the trace has LANES entries per output beat (see the crate
    /// docs). Backends may override this with a faster loop; the result must be the same.
    fn run_stream(&mut self, words: &[u32], stalls: &Stalls, limit: u64) -> Result<Trace, Stuck> {
        self.reset();
        let cfg = *self.config();
        let lanes = cfg.lanes().get();
        let mut host = Host::with_lanes(words, stalls, &cfg, limit);
        if lanes == 1 {
            loop {
                let drive = host.drive();
                let seen = self.tick(drive);
                if let Some(done) = host.observe(drive, seen) {
                    return done;
                }
            }
        }
        let mut out = vec![0; lanes];
        loop {
            let drive = host.drive();
            let (in_ready, out_valid) =
                self.tick_beat(drive.in_valid, host.beat(), drive.out_ready, &mut out);
            if let Some(done) = host.observe_beat(drive, in_ready, out_valid, &out) {
                return done;
            }
        }
    }

    /// The host of a [`transport::SimTransport`], for as many cycles as it takes: every cycle it
    /// offers `input`'s front word (held until taken, then popped) with `out_ready` high, and
    /// pushes every output word onto `output`. Before each cycle it stops if `input.len() <=
    /// keep` and `output.len() >= want` (`true`); it gives up (`false`) after `silence` cycles
    /// in a row on which no word moved. At LANES > 1 both queues hold flattened beats: the
    /// front LANES words are offered as a beat (a shorter rest padded with zeros) and popped
    /// when taken, every output beat is pushed whole, and `keep`/`want` count words. Backends
    /// may override this with a faster loop; the cycles, words and state must be the same.
    fn pump(
        &mut self,
        input: &mut VecDeque<u32>,
        output: &mut VecDeque<u32>,
        keep: usize,
        want: usize,
        silence: u64,
    ) -> bool {
        let lanes = self.config().lanes().get();
        let mut silent = 0u64;
        if lanes == 1 {
            while input.len() > keep || output.len() < want {
                let moved = pump_cycle(input, output, |drive| self.tick(drive));
                silent = if moved { 0 } else { silent + 1 };
                if silent >= silence {
                    return false;
                }
            }
            return true;
        }
        let (mut beat, mut out) = (vec![0; lanes], vec![0; lanes]);
        while input.len() > keep || output.len() < want {
            let moved =
                pump_beat(input, output, &mut beat, &mut out, |i, b, o| self.tick_beat(i, b, true, o));
            silent = if moved { 0 } else { silent + 1 };
            if silent >= silence {
                return false;
            }
        }
        true
    }
}

/// One cycle of [`CycleSim::pump`]'s host at LANES > 1 (`beat` and `out` LANES words of
/// scratch): offer `input`'s front beat with `out_ready` high, pop it if taken, push an output
/// beat; true if a beat moved either way.
pub(crate) fn pump_beat(
    input: &mut VecDeque<u32>,
    output: &mut VecDeque<u32>,
    beat: &mut [u32],
    out: &mut [u32],
    tick_beat: impl FnOnce(bool, &[u32], &mut [u32]) -> (bool, bool),
) -> bool {
    for (j, b) in beat.iter_mut().enumerate() {
        *b = input.get(j).copied().unwrap_or(0);
    }
    let in_valid = !input.is_empty();
    let (in_ready, out_valid) = tick_beat(in_valid, beat, out);
    let taken = in_valid && in_ready;
    if taken {
        input.drain(..beat.len().min(input.len()));
    }
    if out_valid {
        output.extend(out.iter().copied());
    }
    taken || out_valid
}

/// One cycle of [`CycleSim::pump`]'s host: offer `input`'s front word with `out_ready` high,
/// pop it if taken, push an output word; true if a word moved either way.
pub(crate) fn pump_cycle(
    input: &mut VecDeque<u32>,
    output: &mut VecDeque<u32>,
    tick: impl FnOnce(HostOut) -> DeviceOut,
) -> bool {
    let drive = HostOut {
        in_valid: !input.is_empty(),
        in_data: input.front().copied().unwrap_or(0),
        out_ready: true,
    };
    let seen = tick(drive);
    let taken = drive.in_valid && seen.in_ready;
    if taken {
        input.pop_front();
    }
    if seen.out_valid {
        output.push_back(seen.out_data);
    }
    taken || seen.out_valid
}

/// A backend with the trait's default `run_stream` and `pump` (one `tick` per cycle): holds an
/// overridden, faster `run_stream` (the native model's fast paths, Verilator's C++ host loop)
/// to the per-tick behaviour in tests and benchmarks. `Ticked(&mut sim)` borrows.
pub struct Ticked<S>(pub S);

impl<S: CycleSim> CycleSim for Ticked<S> {
    fn config(&self) -> &Config {
        self.0.config()
    }
    fn reset(&mut self) {
        self.0.reset()
    }
    fn cycle(&self) -> u64 {
        self.0.cycle()
    }
    fn tick(&mut self, inputs: HostOut) -> DeviceOut {
        self.0.tick(inputs)
    }
    fn tick_beat(
        &mut self,
        in_valid: bool,
        in_beat: &[u32],
        out_ready: bool,
        out_beat: &mut [u32],
    ) -> (bool, bool) {
        self.0.tick_beat(in_valid, in_beat, out_ready, out_beat)
    }
}

/// A borrowed simulator is a simulator (every method forwarded, fast paths included).
impl<S: CycleSim + ?Sized> CycleSim for &mut S {
    fn config(&self) -> &Config {
        (**self).config()
    }
    fn reset(&mut self) {
        (**self).reset()
    }
    fn cycle(&self) -> u64 {
        (**self).cycle()
    }
    fn tick(&mut self, inputs: HostOut) -> DeviceOut {
        (**self).tick(inputs)
    }
    fn tick_beat(
        &mut self,
        in_valid: bool,
        in_beat: &[u32],
        out_ready: bool,
        out_beat: &mut [u32],
    ) -> (bool, bool) {
        (**self).tick_beat(in_valid, in_beat, out_ready, out_beat)
    }
    fn idle(&mut self, n: u64) {
        (**self).idle(n)
    }
    fn run_stream(&mut self, words: &[u32], stalls: &Stalls, limit: u64) -> Result<Trace, Stuck> {
        (**self).run_stream(words, stalls, limit)
    }
    fn pump(
        &mut self,
        input: &mut VecDeque<u32>,
        output: &mut VecDeque<u32>,
        keep: usize,
        want: usize,
        silence: u64,
    ) -> bool {
        (**self).pump(input, output, keep, want, silence)
    }
}
