//! The host side of the two word streams, cycle by cycle: the one model of "a host feeding a
//! command stream with stalls and recording the responses" that every cycle-accurate backend
//! (rust-hdl, Icarus, Verilator, the native model) is driven by, so their traces compare word
//! for word and cycle for cycle.
//!
//! ```text
//!   words ──► Host::drive ──► in_valid/in_data, out_ready ──► device ──► in_ready,
//!                                                                       out_valid/out_data
//!   Trace ◄── Host::observe ◄──────────────────────────────────────────────┘
//! ```
//!
//! Rules (DESIGN.md, AXI4-Stream): a word moves on a rising edge when valid and ready are both
//! high. The host's `in_valid` never waits for `in_ready`; once raised it stays high with the
//! same word until the word is taken. The host offers a new word on cycles where
//! `stalls.input[cycle % len]` is false and is ready for output where `stalls.output[...]` is
//! false. Cycle 0 is the first cycle after one cycle of reset. A run is over once every input
//! word was taken and no output appeared for [`quiet_cycles`] cycles; it is stuck if the input
//! is not consumed within the cycle limit. On a link of LANES words per beat
//! ([`Host::with_lanes`]) the same rules move beats, and the quiet tail is that of the command
//! words the beats carry.

use thiserror::Error;

/// Stall patterns of the host, each repeated with its own period; `true` = stall that cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stalls {
    /// `true`: the host does not offer a new input word this cycle.
    pub input: Vec<bool>,
    /// `true`: the host is not ready for an output word this cycle.
    pub output: Vec<bool>,
}

impl Stalls {
    /// No stalls: a word offered every cycle, always ready.
    pub fn none() -> Self {
        Stalls { input: vec![false], output: vec![false] }
    }

    /// Input stall on `cycle`.
    pub fn input_at(&self, cycle: u64) -> bool {
        !self.input.is_empty() && self.input[(cycle % self.input.len() as u64) as usize]
    }

    /// Output stall on `cycle`.
    pub fn output_at(&self, cycle: u64) -> bool {
        !self.output.is_empty() && self.output[(cycle % self.output.len() as u64) as usize]
    }
}

/// The device's input ports for one cycle (driven by the host).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostOut {
    pub in_valid: bool,
    pub in_data: u32,
    pub out_ready: bool,
}

/// The device's output ports during one cycle (seen by the host before the edge).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeviceOut {
    pub in_ready: bool,
    pub out_valid: bool,
    pub out_data: u32,
}

/// What came out of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// Every output word with the cycle it was taken on (at LANES > 1 every word of each
    /// output beat, lane 0 first, all with the beat's cycle).
    pub outputs: Vec<(u64, u32)>,
    /// The cycle on which the last input word was taken.
    pub last_input_cycle: u64,
    /// Cycles simulated (including the quiet tail).
    pub cycles: u64,
}

impl Trace {
    /// The output words alone.
    pub fn words(&self) -> Vec<u32> {
        self.outputs.iter().map(|&(_, w)| w).collect()
    }
}

/// The device stopped taking input.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("the device took {taken} of {total} input words in {limit} cycles")]
pub struct Stuck {
    /// Words taken (whole beats of LANES words at LANES > 1), of `total`.
    pub taken: usize,
    pub total: usize,
    pub limit: u64,
}

/// Cycles without output after the last input before a run is over: longer than any internal
/// wait of the core for this stream — the array and activation drains (`8·DIM + 64`) plus the
/// longest MATMUL or ACTIVATE in `words` (the last one may still be issuing rows, silently,
/// after the host has sent everything).
pub fn quiet_cycles(dim: usize, words: &[u32]) -> u64 {
    8 * dim as u64 + 64 + longest_row_command(words)
}

/// The largest row count of a MATMUL or ACTIVATE in a command stream. Walks the stream by its
/// headers exactly as the device frames it (every command is its header and `len` words,
/// whether or not it is refused).
fn longest_row_command(words: &[u32]) -> u64 {
    let mut i = 0usize;
    let mut longest = 0u64;
    while i < words.len() {
        let (op, len) = crate::isa::split_header(words[i]);
        if (op == crate::isa::opcode::MATMUL || op == crate::isa::opcode::ACTIVATE)
            && len >= 1
            && i + 1 < words.len()
        {
            longest = longest.max(u64::from(words[i + 1] >> 16));
        }
        i = i.saturating_add(1 + len as usize);
    }
    longest
}

/// A stream that ends inside a command: its last header announces more words than follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error(
    "the stream ends inside a command: the header at word {at} (opcode 0x{opcode:02X}) announces \
     {len} payload words but only {has} follow"
)]
pub struct Truncated {
    /// Index of the last header.
    pub at: usize,
    /// Its opcode.
    pub opcode: u8,
    /// The payload length it announces.
    pub len: u32,
    /// The words that follow it.
    pub has: usize,
}

/// Walk `words` by their headers as the device frames them (every command is its header and
/// `len` words, refused or not): the number of commands, or where the stream is cut short.
pub fn frame(words: &[u32]) -> Result<usize, Truncated> {
    let mut i = 0usize;
    let mut commands = 0;
    while i < words.len() {
        let (opcode, len) = crate::isa::split_header(words[i]);
        let has = words.len() - i - 1;
        if len as usize > has {
            return Err(Truncated { at: i, opcode, len, has });
        }
        commands += 1;
        i += 1 + len as usize;
    }
    Ok(commands)
}

/// An upper bound on the cycles a device of array size `dim` takes to consume `words` and
/// answer them, with a host that never stalls: per command its words twice over, plus its rows
/// (MATMUL, ACTIVATE, READ_ACT, READ_ACC) at `DIM + 3` cycles each, plus two array and
/// activation drains and a margin — every entry of the cycle table (docs/architecture.md) is
/// below this. Saturates at `u64::MAX`. A run that has not taken its input by then is stuck.
pub fn cycle_bound(dim: usize, words: &[u32]) -> u64 {
    use crate::isa::opcode::{ACTIVATE, MATMUL, READ_ACC, READ_ACT};
    let dim = dim as u64;
    let drain = 2 * (8 * dim + 64) + 16;
    let mut i = 0usize;
    let mut bound = 0u64;
    while i < words.len() {
        let (op, len) = crate::isa::split_header(words[i]);
        let rows = match op {
            MATMUL | ACTIVATE | READ_ACT | READ_ACC if len >= 1 && i + 1 < words.len() => {
                u64::from(words[i + 1] >> 16)
            }
            _ => 0,
        };
        let cost = drain + 2 * (1 + u64::from(len)) + rows * (dim + 3);
        bound = bound.saturating_add(cost);
        i = i.saturating_add(1 + len as usize);
    }
    bound
}

/// The host of one run (see the module docs). On a link of LANES words per beat
/// (docs/design.md "A wider link: LANES", [`Host::with_lanes`]) it sends *beats*: `words` is
/// then the flattened beat stream (LANES words a beat, lane 0 first, as
/// [`crate::lanes::frame`] makes it), one beat offered per cycle, and the trace has one entry
/// per output word, LANES of them per beat, all with the beat's cycle.
#[derive(Debug, Clone)]
pub struct Host<'a> {
    words: &'a [u32],
    lanes: usize,
    stalls: &'a Stalls,
    quiet: u64,
    limit: u64,
    /// The word index of the beat offered (a multiple of `lanes`).
    ip: usize,
    held: bool,
    idle: u64,
    cycle: u64,
    trace: Trace,
}

/// Words of a beat: `lanes` words from `at`, zeros past the end of `words`.
const ZEROS: [u32; crate::lanes::MAX_LANES] = [0; crate::lanes::MAX_LANES];

impl<'a> Host<'a> {
    /// A host that will send `words` to a device of array size `dim` (one word per beat).
    pub fn new(words: &'a [u32], stalls: &'a Stalls, dim: usize, limit: u64) -> Self {
        Self::framed(words, 1, quiet_cycles(dim, words), stalls, limit)
    }

    /// A host that will send the flattened beat stream `beats` to a core of `cfg` (LANES from
    /// `cfg.lanes()`): the quiet tail is computed from the command words the beats carry
    /// ([`crate::lanes::unframe`]). At LANES 1 this is [`Host::new`].
    ///
    /// # Panics
    /// If `beats` is not whole beats.
    pub fn with_lanes(beats: &'a [u32], stalls: &'a Stalls, cfg: &crate::Config, limit: u64) -> Self {
        let lanes = cfg.lanes();
        let l = lanes.get();
        assert!(beats.len().is_multiple_of(l), "{} words are not whole beats of {l}", beats.len());
        let quiet = if l == 1 {
            quiet_cycles(cfg.dim(), beats)
        } else {
            let words = crate::lanes::unframe(beats, crate::lanes::Stream::Commands, cfg, lanes);
            quiet_cycles(cfg.dim(), &words)
        };
        Self::framed(beats, l, quiet, stalls, limit)
    }

    fn framed(words: &'a [u32], lanes: usize, quiet: u64, stalls: &'a Stalls, limit: u64) -> Self {
        Host {
            words,
            lanes,
            stalls,
            quiet,
            limit,
            ip: 0,
            held: false,
            idle: 0,
            cycle: 0,
            trace: Trace::default(),
        }
    }

    /// The current cycle.
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    /// The inputs the host drives this cycle (`in_data` is lane 0 of [`Host::beat`]).
    pub fn drive(&self) -> HostOut {
        let in_valid = self.ip < self.words.len() && (self.held || !self.stalls.input_at(self.cycle));
        HostOut {
            in_valid,
            in_data: self.words.get(self.ip).copied().unwrap_or(0),
            out_ready: !self.stalls.output_at(self.cycle),
        }
    }

    /// The beat offered this cycle (LANES words, lane 0 first; zeros once all are sent).
    pub fn beat(&self) -> &'a [u32] {
        let words: &'a [u32] = self.words;
        words.get(self.ip..self.ip + self.lanes).unwrap_or(&ZEROS[..self.lanes])
    }

    /// Record what the device showed this cycle (before the edge) and advance to the next
    /// cycle. Returns the trace once the run is over, or [`Stuck`]. One word per beat: see
    /// [`Host::observe_beat`] for LANES > 1.
    pub fn observe(&mut self, drove: HostOut, seen: DeviceOut) -> Option<Result<Trace, Stuck>> {
        self.observe_beat(drove, seen.in_ready, seen.out_valid, &[seen.out_data])
    }

    /// [`Host::observe`] for a beat: `out_beat` is the device's output beat (LANES words, lane
    /// 0 first), recorded word by word with this cycle if it is taken.
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
        self.cycle += 1;
        if self.ip >= self.words.len() && self.idle >= self.quiet {
            self.trace.cycles = self.cycle;
            return Some(Ok(std::mem::take(&mut self.trace)));
        }
        if self.ip < self.words.len() && self.cycle >= self.limit {
            return Some(Err(Stuck { taken: self.ip, total: self.words.len(), limit: self.limit }));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A toy device: takes a word every other cycle and echoes it two cycles later.
    #[test]
    fn host_follows_the_stream_rules() {
        let words = [10, 11, 12];
        let stalls = Stalls { input: vec![false, true, true], output: vec![false, false, true] };
        let mut host = Host::new(&words, &stalls, 1, 1000);
        let mut pipe: Vec<(u64, u32)> = Vec::new();
        let mut last: Option<HostOut> = None;
        let trace = loop {
            let d = host.drive();
            // valid is held with the same word until taken
            if let Some(l) = last {
                if l.in_valid {
                    assert!(d.in_valid);
                }
            }
            let c = host.cycle();
            let seen = DeviceOut {
                in_ready: c.is_multiple_of(2),
                out_valid: pipe.first().is_some_and(|&(t, _)| t <= c),
                out_data: pipe.first().map_or(0, |&(_, w)| w),
            };
            if d.in_valid && seen.in_ready {
                pipe.push((c + 2, d.in_data));
                last = None;
            } else {
                last = Some(d);
            }
            if seen.out_valid && d.out_ready {
                pipe.remove(0);
            }
            if let Some(r) = host.observe(d, seen) {
                break r.unwrap();
            }
        };
        assert_eq!(trace.words(), vec![10, 11, 12]);
        assert!(trace.outputs.windows(2).all(|w| w[0].0 < w[1].0));
        assert_eq!(trace.cycles, trace.outputs.last().unwrap().0 + 1 + quiet_cycles(1, &words));
    }

    /// At LANES 2 the host offers a beat a cycle, moves on a beat at a time, records an output
    /// beat as LANES entries with its cycle, and takes the quiet tail from the command words
    /// (the beats carry the MATMUL's row count in a different place).
    #[test]
    fn the_host_sends_beats_at_lanes_above_one() {
        use crate::isa::Command;
        use crate::lanes::{frame, Lanes, Stream};
        let cfg = crate::Config::new(2, 16, 8).unwrap().with_lanes(Lanes::new(2).unwrap());
        let mut words = Vec::new();
        Command::Matmul { src: 0, n: 300, dst: 0, accumulate: false }.encode_into(2, &mut words).unwrap();
        let beats = frame(&words, Stream::Commands, &cfg, cfg.lanes());
        assert_eq!(beats.len(), 4, "a header beat and an argument beat");
        let stalls = Stalls { input: vec![false, true], output: vec![false] };
        let mut host = Host::with_lanes(&beats, &stalls, &cfg, 1000);
        let mut offered = Vec::new();
        let trace = loop {
            let d = host.drive();
            offered.push((d.in_valid, host.beat().to_vec()));
            let c = host.cycle();
            // a device ready on even cycles, sending one beat on cycle 0
            if let Some(r) = host.observe_beat(d, c.is_multiple_of(2), c == 0, &[7, 8]) {
                break r.unwrap();
            }
        };
        assert_eq!(
            offered[..4],
            [
                (true, beats[..2].to_vec()),
                (false, beats[2..].to_vec()),
                (true, beats[2..].to_vec()),
                (false, vec![0, 0]),
            ]
        );
        assert_eq!(trace.outputs, vec![(0, 7), (0, 8)]);
        assert_eq!(trace.last_input_cycle, 2);
        assert_eq!(quiet_cycles(2, &words), 16 + 64 + 300);
        assert_eq!(trace.cycles, 3 + quiet_cycles(2, &words));
    }

    #[test]
    fn the_quiet_tail_outlasts_the_longest_matmul() {
        use crate::isa::Command;
        let mut words = Vec::new();
        Command::Matmul { src: 0, n: 5000, dst: 0, accumulate: false }.encode_into(2, &mut words).unwrap();
        Command::Sync { token: 1 }.encode_into(2, &mut words).unwrap();
        assert_eq!(quiet_cycles(2, &words), 16 + 64 + 5000);
        // a refused command's payload is skipped like the device does: the "n" inside it is not read
        let garbage = [crate::isa::header(0x77, 2), 0xFFFF_0000 | 0x30, 0x0000_0002];
        assert_eq!(quiet_cycles(2, &garbage), 16 + 64);
    }

    #[test]
    fn streams_are_framed_and_bounded() {
        use crate::isa::{header, Command};
        let mut words = Vec::new();
        Command::Matmul { src: 0, n: 300, dst: 0, accumulate: false }.encode_into(4, &mut words).unwrap();
        Command::Sync { token: 1 }.encode_into(4, &mut words).unwrap();
        assert_eq!(frame(&words), Ok(2));
        assert!(cycle_bound(4, &words) >= 300 * 4);
        // cut inside the SYNC, and a header announcing 2^24 - 1 words
        assert_eq!(frame(&words[..4]).unwrap_err(), Truncated { at: 3, opcode: 0x02, len: 1, has: 0 });
        let long = [header(0x20, 0xFF_FFFF), 0];
        let e = frame(&long).unwrap_err();
        assert_eq!(e.to_string(), "the stream ends inside a command: the header at word 0 (opcode 0x20) announces 16777215 payload words but only 1 follow");
        assert_eq!(frame(&[]), Ok(0));
    }

    #[test]
    fn a_device_that_never_takes_input_is_stuck() {
        let words = [1, 2];
        let stalls = Stalls::none();
        let mut host = Host::new(&words, &stalls, 1, 50);
        let r = loop {
            let d = host.drive();
            if let Some(r) = host.observe(d, DeviceOut::default()) {
                break r;
            }
        };
        assert_eq!(r.unwrap_err(), Stuck { taken: 0, total: 2, limit: 50 });
    }
}
