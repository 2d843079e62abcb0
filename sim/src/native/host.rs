//! [`spec::stream::Host`]'s rules, restated for speed: stall phases advance by increment
//! instead of a modulo per cycle, and [`FastHost::skip`] accounts many cycles at once while the
//! device is blind (neither ready for input nor offering output), which the spec host cannot.
//! The lockstep tests hold `NativeSim::run_stream` (this host) to the trait's default
//! `run_stream` (the spec host) on random streams and stall patterns. At LANES > 1 it sends
//! beats, as [`spec::stream::Host::with_lanes`]: `words` is the flattened beat stream, `ip`
//! moves a beat (LANES words) at a time, and an output beat is LANES trace entries.

use spec::lanes::{unframe, Stream, MAX_LANES};
use spec::stream::{quiet_cycles, DeviceOut, HostOut, Stalls, Stuck, Trace};
use spec::Config;

/// The host of one run (same behaviour as [`spec::stream::Host`]).
pub(super) struct FastHost<'a> {
    /// The flattened beats (the words at LANES 1).
    words: &'a [u32],
    lanes: usize,
    input: &'a [bool],
    output: &'a [bool],
    quiet: u64,
    limit: u64,
    ip: usize,
    held: bool,
    idle: u64,
    cycle: u64,
    in_phase: usize,
    out_phase: usize,
    trace: Trace,
}

impl<'a> FastHost<'a> {
    /// A host that will send `words` (flattened beats at LANES > 1) to a core of `cfg`.
    pub fn new(words: &'a [u32], stalls: &'a Stalls, cfg: &Config, limit: u64) -> Self {
        let lanes = cfg.lanes().get();
        assert!(words.len().is_multiple_of(lanes), "{} words are not whole beats of {lanes}", words.len());
        let quiet = if lanes == 1 {
            quiet_cycles(cfg.dim(), words)
        } else {
            quiet_cycles(cfg.dim(), &unframe(words, Stream::Commands, cfg, cfg.lanes()))
        };
        FastHost {
            words,
            lanes,
            input: &stalls.input,
            output: &stalls.output,
            quiet,
            limit,
            ip: 0,
            held: false,
            idle: 0,
            cycle: 0,
            in_phase: 0,
            out_phase: 0,
            trace: Trace::default(),
        }
    }

    /// The inputs the host drives this cycle.
    #[inline]
    pub fn drive(&self) -> HostOut {
        let in_stall = !self.input.is_empty() && self.input[self.in_phase];
        let out_stall = !self.output.is_empty() && self.output[self.out_phase];
        let more = self.ip < self.words.len();
        HostOut {
            in_valid: more && (self.held || !in_stall),
            in_data: if more { self.words[self.ip] } else { 0 },
            out_ready: !out_stall,
        }
    }

    /// The beat offered this cycle (LANES words; zeros once all are sent).
    #[inline]
    pub fn beat(&self) -> &'a [u32] {
        static ZEROS: [u32; MAX_LANES] = [0; MAX_LANES];
        let words: &'a [u32] = self.words;
        words.get(self.ip..self.ip + self.lanes).unwrap_or(&ZEROS[..self.lanes])
    }

    /// Record what the device showed this cycle and advance one cycle; the trace once the run
    /// is over, or [`Stuck`]. LANES 1.
    #[inline]
    pub fn observe(&mut self, drove: HostOut, seen: DeviceOut) -> Option<Result<Trace, Stuck>> {
        let took = drove.in_valid && seen.in_ready;
        if seen.out_valid && drove.out_ready {
            self.trace.outputs.push((self.cycle, seen.out_data));
            self.idle = 0;
        } else if self.ip >= self.words.len() {
            self.idle += 1;
        }
        self.held = drove.in_valid && !took;
        if took {
            self.trace.last_input_cycle = self.cycle;
            self.ip += 1;
        }
        self.next_cycle()
    }

    /// [`FastHost::observe`] at LANES > 1: `out_beat` the device's output beat.
    pub fn observe_beat(
        &mut self,
        drove: HostOut,
        in_ready: bool,
        out_valid: bool,
        out_beat: &[u32],
    ) -> Option<Result<Trace, Stuck>> {
        let took = drove.in_valid && in_ready;
        if out_valid && drove.out_ready {
            let cycle = self.cycle;
            self.trace.outputs.extend(out_beat.iter().map(|&w| (cycle, w)));
            self.idle = 0;
        } else if self.ip >= self.words.len() {
            self.idle += 1;
        }
        self.held = drove.in_valid && !took;
        if took {
            self.trace.last_input_cycle = self.cycle;
            self.ip += self.lanes;
        }
        self.next_cycle()
    }

    #[inline]
    fn next_cycle(&mut self) -> Option<Result<Trace, Stuck>> {
        self.cycle += 1;
        self.in_phase += 1;
        if self.in_phase >= self.input.len() {
            self.in_phase = 0;
        }
        self.out_phase += 1;
        if self.out_phase >= self.output.len() {
            self.out_phase = 0;
        }
        self.verdict()
    }

    /// Consecutive cycles from now on which the host offers a word (a beat): at most `max`,
    /// and never past the end of the stream or the cycle limit.
    pub fn input_run(&self, max: u64) -> u64 {
        let left = (self.words.len().saturating_sub(self.ip) / self.lanes) as u64;
        if left == 0 {
            return 0;
        }
        let cap = max.min(left).min(self.limit - self.cycle);
        let n = self.input.len();
        if n == 0 {
            return cap;
        }
        // the first word may be one held from an earlier cycle; after a take, only a cycle
        // without a stall offers the next one
        let mut m = 0;
        while m < cap && (!self.input[(self.in_phase + m as usize) % n] || (m == 0 && self.held)) {
            m += 1;
        }
        m
    }

    /// The words (flattened beats) not yet taken, the one offered now first.
    pub fn upcoming(&self) -> &'a [u32] {
        &self.words[self.ip..]
    }

    /// Account `m <= input_run(..)` cycles on each of which the device took the word (beat)
    /// offered and sent nothing.
    pub fn took(&mut self, m: u64) -> Option<Result<Trace, Stuck>> {
        self.trace.last_input_cycle = self.cycle + m - 1;
        self.ip += m as usize * self.lanes;
        self.held = false;
        self.advance(m);
        self.verdict()
    }

    /// Consecutive cycles from now on which the host takes an output word (no output stall):
    /// at most `max`, and never past the cycle limit while words remain to be sent.
    pub fn output_run(&self, max: u64) -> u64 {
        let cap = if self.ip < self.words.len() { max.min(self.limit - self.cycle) } else { max };
        let n = self.output.len();
        if n == 0 {
            return cap;
        }
        let mut m = 0;
        while m < cap && !self.output[(self.out_phase + m as usize) % n] {
            m += 1;
        }
        m
    }

    /// Account `sent.len()` cycles (beats: `sent` is flattened beats at LANES > 1; at most
    /// `output_run(..)`) on each of which the device sent the next of `sent` and took nothing.
    pub fn sent(&mut self, sent: &[u32]) -> Option<Result<Trace, Stuck>> {
        let k = (sent.len() / self.lanes) as u64;
        if self.lanes == 1 {
            self.trace.outputs.extend(sent.iter().enumerate().map(|(i, &w)| (self.cycle + i as u64, w)));
        } else {
            let (cycle, l) = (self.cycle, self.lanes);
            let beats = sent.chunks(l).enumerate();
            self.trace.outputs.extend(beats.flat_map(|(i, b)| b.iter().map(move |&w| (cycle + i as u64, w))));
        }
        if self.ip < self.words.len() {
            // not taken (in_ready is low): offered on any cycle without a stall, then held
            self.hold_through(k);
        } else {
            self.idle = 0;
        }
        self.advance(k);
        self.verdict()
    }

    /// How many of the next `k` blind cycles the host can account at once: all of them, unless
    /// the run ends (quiet tail complete, or the cycle limit) inside.
    pub fn skippable(&self, k: u64) -> u64 {
        if self.ip >= self.words.len() {
            k.min(self.quiet - self.idle)
        } else {
            k.min(self.limit - self.cycle)
        }
    }

    /// Account `k <= skippable(k)` cycles in which the device neither took nor sent a word.
    pub fn skip(&mut self, k: u64) -> Option<Result<Trace, Stuck>> {
        if self.ip < self.words.len() {
            self.hold_through(k);
        } else {
            self.idle += k;
        }
        self.advance(k);
        self.verdict()
    }

    /// `k` cycles on which the device takes no word: one offered on any of them stays offered
    /// (held) until taken.
    fn hold_through(&mut self, k: u64) {
        if !self.held {
            let n = self.input.len();
            self.held =
                n == 0 || (0..(k.min(n as u64) as usize)).any(|i| !self.input[(self.in_phase + i) % n]);
        }
    }

    fn advance(&mut self, k: u64) {
        self.cycle += k;
        if !self.input.is_empty() {
            let n = self.input.len();
            self.in_phase = (self.in_phase + (k % n as u64) as usize) % n;
        }
        if !self.output.is_empty() {
            let n = self.output.len();
            self.out_phase = (self.out_phase + (k % n as u64) as usize) % n;
        }
    }

    fn verdict(&mut self) -> Option<Result<Trace, Stuck>> {
        let total = self.words.len();
        if self.ip >= total && self.idle >= self.quiet {
            self.trace.cycles = self.cycle;
            return Some(Ok(std::mem::take(&mut self.trace)));
        }
        if self.ip < total && self.cycle >= self.limit {
            return Some(Err(Stuck { taken: self.ip, total, limit: self.limit }));
        }
        None
    }
}
