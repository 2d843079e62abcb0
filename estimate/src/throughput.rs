//! Throughput: a word stream run on the native cycle model, with the host link modelled as
//! input and output stalls, and every cycle charged to what the core was doing. Stretches in
//! which the core is blind to the host (waiting for the array, a drain, an ACTIVATE) or takes a
//! payload word every cycle, or sends a read-back word every cycle the link takes one, are
//! fast-forwarded by the model and charged in closed form; the result equals stepping every
//! cycle ([`run_ticked`], tested).
//!
//! ```text
//!   words ──► link (Stalls: one word per 1/F cycles) ──► NativeSim::tick  ──► responses
//!                                              (or skip_blind, take_run, send_run)
//!                                                            │ every cycle, in this order:
//!                        a row entered the array (MACs rose) ├─► array_issue
//!        core ready for input, host had none / output waits ├─► link_wait
//!                                                  otherwise └─► exposed[command in the front end]
//! ```
//!
//! The sum `array_issue + link_wait + Σ exposed` is the run's cycle count, so the breakdown
//! says exactly where the cycles went: issue cycles are the array doing useful work (one row of
//! DIM² MACs each), exposed cycles are the front end working on a command while the array
//! idles (loading X, waiting for a drain, streaming results out, the one-cycle bubble between
//! MATMULs), link cycles are the core waiting for the host.
//!
//! A command is "in the front end" from the cycle its header word is taken until the next
//! header is taken; the cycles in between are its `front_end_cycles` (overlapped or not).
//!
//! The host follows [`spec::stream`]'s rules (valid held with its word until taken). A link of
//! `F` words per cycle (`F < 1`) is the periodic stall pattern [`Link::stalls`]: `p` offers in
//! every `q` cycles with `p / q` the closest fraction to `F` (denominator up to 2^20), in both
//! directions (a full-duplex link). An offer the core cannot take is held, so link slots are
//! lost while the core is busy: a bridge without a receive FIFO, the pessimistic case. The
//! optimistic bound, a link that streams during compute, is [`link_bound_cycles`].

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};
use spec::isa::{opcode, split_header};
use spec::lanes::{command_layout, Framer, Stream, Unframer};
use spec::stream::{HostOut, Stalls};
use spec::Config;

use super::EstimateError;
use sim::activity::Activity;
use sim::native::NativeSim;
use sim::CycleSim;

/// Largest denominator of the fraction that approximates a link's words per cycle.
const MAX_LINK_PERIOD: u64 = 1 << 20;

/// A host link of a fixed bandwidth in words per core clock cycle (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    words_per_cycle: f64,
    offers: u64,
    period: u64,
}

impl Link {
    /// A link moving `words_per_cycle` 32-bit words per core cycle each way; `>= 1` means the
    /// link never stalls the core (its stream ports move at most one word per cycle).
    pub fn new(words_per_cycle: f64) -> Result<Self, EstimateError> {
        if !(words_per_cycle.is_finite() && words_per_cycle > 0.0) {
            return Err(EstimateError::Link(format!(
                "the link must move a positive, finite number of words per cycle, got {words_per_cycle}"
            )));
        }
        if words_per_cycle >= 1.0 {
            return Ok(Link { words_per_cycle, offers: 1, period: 1 });
        }
        if words_per_cycle * (MAX_LINK_PERIOD as f64) < 1.0 {
            return Err(EstimateError::Link(format!(
                "{words_per_cycle} words per cycle is below the smallest modelled rate, 1 word per \
                 {MAX_LINK_PERIOD} cycles"
            )));
        }
        let (offers, period) = closest_fraction(words_per_cycle, MAX_LINK_PERIOD);
        Ok(Link { words_per_cycle, offers, period })
    }

    /// A UART of `baud` bits per second with 10 bits per byte (8N1) and 4 bytes per word, at a
    /// core clock of `clock_hz`.
    pub fn uart(baud: f64, clock_hz: f64) -> Result<Self, EstimateError> {
        Link::new(baud / 10.0 / 4.0 / clock_hz)
    }

    /// The bandwidth asked for, in words per cycle.
    pub fn words_per_cycle(&self) -> f64 {
        self.words_per_cycle
    }

    /// The bandwidth simulated: `offers / period` words per cycle (at most 1).
    pub fn simulated_words_per_cycle(&self) -> f64 {
        self.offers as f64 / self.period as f64
    }

    /// The host's stall pattern: cycle `i` of every period offers a word (and accepts one) iff
    /// `floor((i + 1) p / q) > floor(i p / q)`, i.e. `p` evenly spread offers per `q` cycles.
    pub fn stalls(&self) -> Stalls {
        let (p, q) = (self.offers, self.period);
        let pattern: Vec<bool> = (0..q).map(|i| (i + 1) * p / q == i * p / q).collect();
        Stalls { input: pattern.clone(), output: pattern }
    }
}

/// The fraction `p / q` closest to `x` in (0, 1) with `1 <= q <= max_q` (Stern–Brocot descent).
fn closest_fraction(x: f64, max_q: u64) -> (u64, u64) {
    // best lower and upper bounds a/b <= x <= c/d
    let (mut a, mut b, mut c, mut d) = (0u64, 1u64, 1u64, 1u64);
    loop {
        let (p, q) = (a + c, b + d);
        if q > max_q {
            break;
        }
        if (p as f64) <= x * q as f64 {
            (a, b) = (p, q);
        } else {
            (c, d) = (p, q);
        }
        if (a as f64 / b as f64 - x).abs() < 1e-15 {
            break;
        }
    }
    let lower = (a as f64 / b as f64 - x).abs();
    let upper = (c as f64 / d as f64 - x).abs();
    if a > 0 && lower <= upper {
        (a, b)
    } else {
        (c, d)
    }
}

/// Cycles a link of `link` words per cycle needs to carry `words_in` words in and `words_out`
/// out (full duplex: the larger of the two), rounded up: the link's roof.
pub fn link_bound_cycles(words_in: u64, words_out: u64, link: &Link) -> u64 {
    let f = link.simulated_words_per_cycle();
    (words_in.max(words_out) as f64 / f).ceil() as u64
}

/// What one kind of command cost in a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandCycles {
    /// Commands of this kind.
    pub count: u64,
    /// Cycles from each one's header to the next header (the front end's time on them),
    /// overlapped with the array or not.
    pub front_end_cycles: u64,
    /// Those of its front-end cycles in which the array issued no row and the core was not
    /// waiting for the link.
    pub exposed_cycles: u64,
}

/// Where the cycles of a run went (see the module docs); the parts add up to the run's cycles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CycleBreakdown {
    /// Cycles on which a row entered the array: useful array work.
    pub array_issue: u64,
    /// Cycles the core waited for the host link (ready for a word the host did not offer, or
    /// holding an output word the host did not take).
    pub link_wait: u64,
    /// Per command kind (`"matmul"`, `"load_weights"`, ...).
    pub commands: BTreeMap<String, CommandCycles>,
}

impl CycleBreakdown {
    /// `array_issue + link_wait + Σ exposed_cycles`.
    pub fn total(&self) -> u64 {
        self.array_issue + self.link_wait + self.commands.values().map(|c| c.exposed_cycles).sum::<u64>()
    }
}

/// The lower-case name of a command opcode, as used in reports.
pub fn command_name(op: u8) -> &'static str {
    match op {
        opcode::INFO => "info",
        opcode::SYNC => "sync",
        opcode::LOAD_WEIGHTS => "load_weights",
        opcode::LOAD_BIAS => "load_bias",
        opcode::SET_QUANT => "set_quant",
        opcode::LOAD_QUANT => "load_quant",
        opcode::LOAD_TILE => "load_tile",
        opcode::WRITE_ACT => "write_act",
        opcode::READ_ACT => "read_act",
        opcode::MATMUL => "matmul",
        opcode::ACTIVATE => "activate",
        opcode::READ_ACC => "read_acc",
        opcode::COUNTERS => "counters",
        _ => "unknown",
    }
}

/// What a run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Cycles from the first word offered to the last response word taken, inclusive.
    pub cycles: u64,
    /// Activity counts of the run.
    pub activity: Activity,
    /// The core's COUNTERS registers at the end (stall counters among them).
    pub counters: spec::isa::Counters,
    /// Where the cycles went.
    pub breakdown: CycleBreakdown,
    /// The cycle the first row entered the array, if any did.
    pub first_issue: Option<u64>,
    /// The last cycle on which a row was written to the accumulators, if any was.
    pub last_acc_write: Option<u64>,
}

impl Timing {
    /// Cycles from the first row's scratchpad read to the last row's accumulator write,
    /// inclusive (0 if no row was issued).
    pub fn array_span(&self) -> u64 {
        match (self.first_issue, self.last_acc_write) {
            (Some(a), Some(b)) if b >= a => b - a + 1,
            _ => 0,
        }
    }
}

/// Run `words` on a fresh native model of `cfg` (reset first; memories zero) until `responses`
/// response words have been taken, with the host behind `link` (`None`: a word every cycle),
/// and measure it (see the module docs).
pub fn run(
    cfg: &Config,
    words: &[u32],
    responses: usize,
    link: Option<&Link>,
) -> Result<Timing, EstimateError> {
    let mut sim = NativeSim::new(cfg);
    sim.reset();
    run_on(&mut sim, words, responses, link)
}

/// [`run`] on a given model, from its current state.
pub fn run_on(
    sim: &mut NativeSim,
    words: &[u32],
    responses: usize,
    link: Option<&Link>,
) -> Result<Timing, EstimateError> {
    measure(sim, words, responses, link, true)
}

/// [`run`] stepping every cycle with `tick`: the reference the fast loop is held to (tests,
/// `benches/estimate_speed.rs`).
pub fn run_ticked(
    cfg: &Config,
    words: &[u32],
    responses: usize,
    link: Option<&Link>,
) -> Result<Timing, EstimateError> {
    let mut sim = NativeSim::new(cfg);
    sim.reset();
    measure(&mut sim, words, responses, link, false)
}

/// [`run_on`], stepping every cycle with `tick` unless `fast` (see [`Meter::new`]): the whole
/// stream fed at once.
pub(super) fn measure(
    sim: &mut NativeSim,
    words: &[u32],
    responses: usize,
    link: Option<&Link>,
    fast: bool,
) -> Result<Timing, EstimateError> {
    let mut meter = Meter::new(sim, link, fast);
    meter.feed(words)?;
    meter.finish(responses)
}

/// A measuring run fed its word stream piece by piece ([`Meter::feed`]) as the stream is made,
/// then told how many response words end it ([`Meter::finish`]): the same [`Timing`] as
/// [`run_on`] on the whole stream (tested), with memory for one piece only.
///
/// Every piece is run until its last word is taken, and no cycle is run without a word to
/// offer until [`Meter::finish`]: the host sees the stream exactly as if it had been given
/// whole (its next word is always there when the core wants one).
pub struct Meter<'s> {
    sim: &'s mut NativeSim,
    fast: bool,
    stalls: Stalls,
    period: usize,
    silence_limit: u64,
    /// payload words go back to back only if the host offers one on every cycle
    offers_every_cycle: bool,
    /// read-back words go back to back only if the host takes one on every cycle
    takes_every_cycle: bool,
    start_cycle: u64,
    /// Words fed so far, and taken so far.
    fed: u64,
    taken: u64,
    /// The next command header among the words fed (it may lie beyond them).
    scan: u64,
    /// Headers fed but not yet taken: (word index, command kind).
    starts: VecDeque<(u64, usize)>,
    names: Vec<&'static str>,
    per_kind: Vec<CommandCycles>,
    bd: CycleBreakdown,
    /// Kind of the command in the front end.
    current: Option<usize>,
    held: bool,
    phase: usize,
    got: usize,
    silent: u64,
    first_issue: Option<u64>,
    last_acc_write: Option<u64>,
    cycle: u64,
    before: Activity,
    first: Activity,
    /// Each response word's cycle and the activity then, if asked for ([`Meter::record`]).
    outputs: Option<Vec<(u64, Activity)>>,
    /// LANES > 1 (docs/design.md "A wider link"): the stream goes in as beats and the
    /// responses come out as beats; the positions above (`fed`, `taken`, `scan`, `starts`)
    /// count beats, `got` response words.
    wide: Option<Wide>,
}

/// The framing of a [`Meter`] on a link of LANES > 1 words per beat.
struct Wide {
    cfg: Config,
    framer: Framer,
    unframer: Unframer,
    /// The beats of the piece being fed (kept for its allocation).
    beats: Vec<u32>,
    /// The output beat of a cycle and the words it carried.
    out: Vec<u32>,
    words: Vec<u32>,
}

impl<'s> Meter<'s> {
    /// A run on `sim` from its current state, the host behind `link` (`None`: a word every
    /// cycle); stepping every cycle with `tick` unless `fast`: then stretches where the core is
    /// blind to the host, or takes a payload word every cycle that the link offers, are
    /// fast-forwarded ([`NativeSim::skip_blind`], [`NativeSim::take_run`],
    /// [`NativeSim::send_run`]) and their cycles
    /// charged in closed form. Both give the same [`Timing`] (tested).
    pub fn new(sim: &'s mut NativeSim, link: Option<&Link>, fast: bool) -> Self {
        let stalls = link.map_or_else(Stalls::none, Link::stalls);
        let period = stalls.input.len().max(1);
        let offers_every_cycle = !stalls.input.iter().any(|&s| s);
        let takes_every_cycle = !stalls.output.iter().any(|&s| s);
        let before = sim.activity();
        let cfg = *sim.config();
        let lanes = cfg.lanes();
        let wide = (lanes.get() > 1).then(|| Wide {
            cfg,
            framer: Framer::new(Stream::Commands, cfg, lanes),
            unframer: Unframer::new(Stream::Responses, cfg, lanes),
            beats: Vec::new(),
            out: vec![0; lanes.get()],
            words: Vec::new(),
        });
        Meter {
            start_cycle: sim.cycle(),
            sim,
            fast,
            // silence longer than any command can be (an ACTIVATE of 65535 rows), or a link period
            silence_limit: (1u64 << 20).max(4 * period as u64),
            stalls,
            period,
            offers_every_cycle,
            takes_every_cycle,
            fed: 0,
            taken: 0,
            scan: 0,
            starts: VecDeque::new(),
            names: Vec::new(),
            per_kind: Vec::new(),
            bd: CycleBreakdown::default(),
            current: None,
            held: false,
            phase: 0,
            got: 0,
            silent: 0,
            first_issue: None,
            last_acc_write: None,
            cycle: 0,
            before,
            first: before,
            outputs: None,
            wide,
        }
    }

    /// Also record the cycle of every response word and the model's activity on it
    /// ([`Meter::outputs`]).
    pub fn record(mut self) -> Self {
        self.outputs = Some(Vec::new());
        self
    }

    /// The response words so far: (cycle counted from the run's first, activity since the
    /// model was made), if recorded.
    pub fn outputs(&self) -> &[(u64, Activity)] {
        self.outputs.as_deref().unwrap_or(&[])
    }

    /// The model.
    pub fn sim(&self) -> &NativeSim {
        self.sim
    }

    /// Run the next words of the stream, until the core has taken the last of them.
    pub fn feed(&mut self, words: &[u32]) -> Result<(), EstimateError> {
        if self.wide.is_some() {
            return self.feed_beats(words);
        }
        let end = self.fed + words.len() as u64;
        while self.scan < end {
            let (op, len) = split_header(words[(self.scan - self.fed) as usize]);
            let kind = self.kind(command_name(op));
            self.starts.push_back((self.scan, kind));
            self.scan += 1 + u64::from(len);
        }
        self.fed = end;
        self.advance(words, None)
    }

    /// [`Meter::feed`] at LANES > 1: the words framed (whole commands; an incomplete last one
    /// waits for the next piece), each command's start found from its header beat.
    fn feed_beats(&mut self, words: &[u32]) -> Result<(), EstimateError> {
        let w = self.wide.as_mut().expect("a wide meter");
        let mut beats = std::mem::take(&mut w.beats);
        beats.clear();
        w.framer.push(words, &mut beats);
        let (cfg, lanes) = (w.cfg, w.cfg.lanes());
        let l = lanes.get();
        let end = self.fed + (beats.len() / l) as u64;
        while self.scan < end {
            let b = (self.scan - self.fed) as usize * l;
            let (op, len) = split_header(beats[b]);
            let word0 = beats.get(b + l).copied().unwrap_or(0);
            let kind = self.kind(command_name(op));
            self.starts.push_back((self.scan, kind));
            self.scan += 1 + command_layout(op, len, word0, &cfg).beats(lanes);
        }
        self.fed = end;
        let r = self.advance(&beats, None);
        if let Some(w) = &mut self.wide {
            w.beats = beats;
        }
        r
    }

    /// The index of a command kind, by name (added on first sight).
    fn kind(&mut self, name: &'static str) -> usize {
        self.names.iter().position(|&n| n == name).unwrap_or_else(|| {
            self.names.push(name);
            self.per_kind.push(CommandCycles::default());
            self.names.len() - 1
        })
    }

    /// The stream is complete: run until `responses` response words have been taken in all,
    /// and measure. (Once only: the command counts move into the [`Timing`].)
    pub fn finish(&mut self, responses: usize) -> Result<Timing, EstimateError> {
        let held = self.wide.as_ref().map_or(0, |w| w.framer.held());
        if held > 0 {
            return Err(EstimateError::Stream(format!(
                "the last command is incomplete: the stream ends {held} words into it"
            )));
        }
        if self.scan != self.fed {
            return Err(EstimateError::Stream(format!(
                "the last command's payload runs {} words past the end of the stream",
                self.scan - self.fed
            )));
        }
        self.advance(&[], Some(responses))?;
        let mut bd = std::mem::take(&mut self.bd);
        let per_kind = std::mem::take(&mut self.per_kind);
        bd.commands = self.names.iter().zip(per_kind).map(|(n, c)| (n.to_string(), c)).collect();
        debug_assert_eq!(self.sim.cycle() - self.start_cycle, self.cycle);
        Ok(Timing {
            cycles: self.cycle,
            activity: super::activity_since(&self.sim.activity(), &self.first),
            counters: self.sim.counters(),
            breakdown: bd,
            first_issue: self.first_issue,
            last_acc_write: self.last_acc_write,
        })
    }

    /// Run with `words` (the rest of the stream fed last) until all are taken, and, with
    /// `responses`, until that many response words came back.
    fn advance(&mut self, words: &[u32], responses: Option<usize>) -> Result<(), EstimateError> {
        let period = self.period;
        // the stream's units: words, or beats of LANES words
        let l = self.wide.as_ref().map_or(1, |w| w.cfg.lanes().get());
        let units = words.len() / l;
        let mut ip = 0usize;
        loop {
            let more = ip < units;
            if !more && responses.is_none_or(|r| self.got >= r) {
                return Ok(());
            }
            if self.fast {
                // a stretch cut short where stepping would give up on the silence
                let max = self.silence_limit - self.silent.min(self.silence_limit);
                let blind = self.sim.skip_blind(max);
                let mut sent = 0;
                let stretch = match blind {
                    Some(s) => Some(s),
                    None if more && self.offers_every_cycle && l == 1 => self.sim.take_run(&words[ip..]),
                    // a read-back row, word by word, where the link takes one every cycle and
                    // no word's cycle is recorded
                    None if self.takes_every_cycle && self.outputs.is_none() && l == 1 => {
                        let want = responses.map_or(u64::MAX, |r| r.saturating_sub(self.got) as u64);
                        self.sim.send_run(want).map(|(s, _)| {
                            sent = s.cycles;
                            s
                        })
                    }
                    None => None,
                };
                if let Some(s) = stretch {
                    let k = s.cycles;
                    if let Some(c) = self.current {
                        self.per_kind[c].front_end_cycles += k;
                    }
                    // the first `issued` cycles issue; on the rest the core neither waits for
                    // the link (no input wanted but taken, no output) nor has anything else to do
                    self.bd.array_issue += s.issued;
                    if s.issued > 0 {
                        self.first_issue.get_or_insert(self.cycle);
                    }
                    match self.current {
                        Some(c) => self.per_kind[c].exposed_cycles += k - s.issued,
                        None => self.bd.link_wait += k - s.issued,
                    }
                    if let Some(l) = s.last_acc_write {
                        self.last_acc_write = Some(self.cycle + l);
                    }
                    if blind.is_some() || sent > 0 {
                        // an offer not taken is held: from the first cycle the link offers on
                        let stalls = &self.stalls.input;
                        let phase = self.phase;
                        let offers =
                            |i: u64| !stalls.get((phase + i as usize) % period).copied().unwrap_or(false);
                        self.held = more && (self.held || (0..k.min(period as u64)).any(offers));
                        self.silent = if sent > 0 {
                            0
                        } else if s.issued > 0 {
                            k - s.issued
                        } else {
                            self.silent + k
                        };
                        self.got += sent as usize;
                    } else {
                        self.held = false;
                        ip += k as usize;
                        self.taken += k;
                        self.silent = 0;
                    }
                    self.before = self.sim.activity();
                    self.cycle += k;
                    self.phase = ((self.phase as u64 + k) % period as u64) as usize;
                    continue;
                }
            }
            let in_stall = self.stalls.input.get(self.phase).copied().unwrap_or(false);
            let out_ready = !self.stalls.output.get(self.phase).copied().unwrap_or(false);
            let in_valid = more && (self.held || !in_stall);
            let (in_ready, out_valid) = match &mut self.wide {
                None => {
                    let seen = self.sim.tick(HostOut {
                        in_valid,
                        in_data: words.get(ip).copied().unwrap_or(0),
                        out_ready,
                    });
                    (seen.in_ready, seen.out_valid)
                }
                Some(w) => {
                    const IDLE: [u32; spec::lanes::MAX_LANES] = [0; spec::lanes::MAX_LANES];
                    let beat = if more { &words[ip * l..(ip + 1) * l] } else { &IDLE[..l] };
                    self.sim.tick_beat(in_valid, beat, out_ready, &mut w.out)
                }
            };
            let seen = spec::stream::DeviceOut { in_ready, out_valid, out_data: 0 };
            let after = self.sim.activity();
            let took = in_valid && seen.in_ready;
            let sent = seen.out_valid && out_ready;
            if took && self.starts.front().is_some_and(|&(at, _)| at == self.taken) {
                let (_, kind) = self.starts.pop_front().expect("checked");
                self.current = Some(kind);
                self.per_kind[kind].count += 1;
            }
            if let Some(c) = self.current {
                self.per_kind[c].front_end_cycles += 1;
            }
            let issued = after.macs > self.before.macs;
            if issued {
                self.bd.array_issue += 1;
                self.first_issue.get_or_insert(self.cycle);
            } else if (seen.in_ready && more && !in_valid) || (seen.out_valid && !out_ready) {
                self.bd.link_wait += 1;
            } else if let Some(c) = self.current {
                self.per_kind[c].exposed_cycles += 1;
            } else {
                // no command yet: the core waits in Header (ready) for the first word, which
                // only a link can hold back
                self.bd.link_wait += 1;
            }
            if after.acc_writes > self.before.acc_writes {
                self.last_acc_write = Some(self.cycle);
            }
            self.held = in_valid && !took;
            if took {
                ip += 1;
                self.taken += 1;
            }
            if sent {
                // the response words the beat carried (one at LANES 1)
                let n = match &mut self.wide {
                    None => 1,
                    Some(w) => {
                        w.words.clear();
                        w.unframer.push(&w.out, &mut w.words);
                        w.words.len()
                    }
                };
                self.got += n;
                if let Some(o) = &mut self.outputs {
                    o.extend(std::iter::repeat_n((self.cycle, after), n));
                }
            }
            self.before = after;
            self.silent = if took || sent || issued { 0 } else { self.silent + 1 };
            if self.silent > self.silence_limit {
                return Err(EstimateError::Stuck {
                    cycles: self.cycle + 1,
                    taken: self.taken as usize,
                    total: self.fed as usize,
                    responses: self.got,
                });
            }
            self.cycle += 1;
            self.phase += 1;
            if self.phase == period {
                self.phase = 0;
            }
        }
    }
}

/// SCALE-Sim's weight-stationary cycle count for one GEMM of `m x k` times `k x n` on an
/// `r x c` array: `(2r + c + m - 2) · ⌈k / r⌉ · ⌈n / c⌉` (each fold loads its weights, fills,
/// streams `m` rows and drains; folds do not overlap). scalesim 3.0.0 reports one less.
pub fn scalesim_cycles(m: u64, k: u64, n: u64, r: u64, c: u64) -> u64 {
    (2 * r + c + m - 2) * k.div_ceil(r).max(1) * n.div_ceil(c).max(1)
}

/// This core's compute cycles for MATMULs of `rows[i] >= 1` rows issued back to back, with
/// the weights and activations already on chip (see `docs/estimates.md`): the sequencer issues
/// one row per cycle, a MATMUL starts one cycle after the previous one's last row (the bubble)
/// but not sooner than its 4 front-end cycles (header, 2 arguments, exec) allow, and the last
/// row reaches the accumulators `2·DIM + 1` cycles after it issued:
/// `Σ_i max(rows[i] + 1, 4) - max(rows[last] + 1, 4) + rows[last] + 2·DIM`.
///
/// # Panics
/// If a MATMUL has 0 rows (compiled programs have none; such a MATMUL issues nothing).
pub fn pipelined_cycles(rows: &[u64], dim: u64) -> u64 {
    let mut p = Pipelined::default();
    rows.iter().for_each(|&n| p.add(n));
    p.cycles(dim)
}

/// [`pipelined_cycles`] summed MATMUL by MATMUL, as a stream goes by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pipelined {
    /// `Σ max(rows + 1, 4)` over the MATMULs before the last.
    sum: u64,
    /// The last MATMUL's rows.
    last: Option<u64>,
}

impl Pipelined {
    /// The next MATMUL, of `rows` rows.
    ///
    /// # Panics
    /// If `rows` is 0 (compiled programs have none; such a MATMUL issues nothing).
    pub fn add(&mut self, rows: u64) {
        assert!(rows > 0, "MATMULs of 0 rows issue nothing");
        if let Some(n) = self.last.replace(rows) {
            self.sum += (n + 1).max(4);
        }
    }

    /// [`pipelined_cycles`] of the MATMULs added, on an array of `dim`.
    pub fn cycles(&self, dim: u64) -> u64 {
        let Some(last) = self.last else { return 0 };
        // the first row of MATMUL i+1 issues max(rows[i] + 1, 4) cycles after that of MATMUL i;
        // the last row issues `last - 1` cycles after its MATMUL's first and lands
        // `matmul_depth` = 2·DIM + 1 cycles later, counted from the first row's issue cycle
        let depth = spec::timing::matmul_depth(dim as usize) as u64;
        self.sum + (last - 1) + depth
    }
}
