//! The command and response streams on a wider link: `LANES` 32-bit words per beat
//! (docs/design.md "A wider link: LANES").
//!
//! The words are those of [`crate::isa`] at every LANES: the same headers (whose length still
//! counts the payload's words), the same payload words. LANES only decides how they sit in
//! beats: a command's header travels alone in a beat, and its payload in *units*, each of
//! which starts a new beat and pads its last beat with zero words:
//!
//! ```text
//!  LANES = 4, DIM = 16 (a row is 4 words), WRITE_ACT of 2 rows:
//!
//!  beat 0 │ header │   0    │   0    │   0    │   the header alone
//!  beat 1 │ dst, n │   0    │   0    │   0    │   the argument words (one unit)
//!  beat 2 │ row 0, words 0..4                 │   each row its own unit:
//!  beat 3 │ row 1, words 0..4                 │   ⌈words per row / LANES⌉ beats
//!
//!  LANES = 4, DIM = 8 (a row is 2 words): beat 2 │ row 0 w0 │ row 0 w1 │ 0 │ 0 │
//! ```
//!
//! So a row of DIM int8 moves in one beat once LANES ≥ ⌈DIM/4⌉, and the hardware writes whole
//! beats into its row buffer. At LANES = 1 every word is its own beat: the framing is the
//! identity, and the link is exactly the 32-bit one of the contract's first version.
//!
//! The units of a payload ([`Layout`]) follow from the header alone, except WRITE_ACT's rows,
//! which follow from its first payload word ([`command_layout`]); a command the header check
//! rejects (unknown opcode, bad length) and a WRITE_ACT whose length does not match its row
//! count are skipped as *dense* words, LANES to a beat, so that every decoder (this module's
//! [`Unframer`], the native model, the RTL) consumes the same beats whatever the input.

use thiserror::Error;

use crate::config::Config;
use crate::isa::{check_header, opcode, split_header, RESPONSE_BIT};

/// Largest number of lanes: one beat carries a 256-byte row (DIM 256) at 64 lanes.
pub const MAX_LANES: usize = 64;

/// A LANES value that was not a power of two in `1..=MAX_LANES`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("LANES must be a power of two in 1..={MAX_LANES}, got {0}")]
pub struct LanesError(pub usize);

/// The number of 32-bit words per beat: a power of two in `1..=`[`MAX_LANES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lanes(usize);

impl Lanes {
    /// One word per beat: the 32-bit link.
    pub const ONE: Lanes = Lanes(1);

    /// A validated LANES.
    pub fn new(lanes: usize) -> Result<Self, LanesError> {
        if lanes.is_power_of_two() && lanes <= MAX_LANES {
            Ok(Lanes(lanes))
        } else {
            Err(LanesError(lanes))
        }
    }

    /// Words per beat.
    pub fn get(self) -> usize {
        self.0
    }

    /// Beats that `words` words of one unit take: `⌈words / LANES⌉`.
    pub fn beats(self, words: u64) -> u64 {
        words.div_ceil(self.0 as u64)
    }
}

impl std::fmt::Display for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a payload of `len` words travels after its header's beat, in order: `args` words as
/// one unit (if any), then `rows` units of `row_words` words each, then `dense` words as one
/// unit. Each unit starts a new beat and pads its last beat with zero words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Layout {
    /// Argument words, one unit.
    pub args: u32,
    /// Row units.
    pub rows: u32,
    /// Words per row unit.
    pub row_words: u32,
    /// Words that go LANES to a beat (a skipped command's payload).
    pub dense: u32,
}

impl Layout {
    /// Payload words (the header's length).
    pub fn words(&self) -> u64 {
        u64::from(self.args) + u64::from(self.rows) * u64::from(self.row_words) + u64::from(self.dense)
    }

    /// Payload beats at `lanes`.
    pub fn beats(&self, lanes: Lanes) -> u64 {
        lanes.beats(self.args.into())
            + u64::from(self.rows) * lanes.beats(self.row_words.into())
            + lanes.beats(self.dense.into())
    }

    /// The units in order, as word counts (empty units left out).
    fn units(&self) -> impl Iterator<Item = u32> + '_ {
        let args = (self.args > 0).then_some(self.args);
        let rows =
            std::iter::repeat_n(self.row_words, if self.row_words > 0 { self.rows as usize } else { 0 });
        let dense = (self.dense > 0).then_some(self.dense);
        args.into_iter().chain(rows).chain(dense)
    }

    fn dense(len: u32) -> Self {
        Layout { dense: len, ..Layout::default() }
    }
}

/// The units of a command's payload: `op` and `len` from its header, `word0` its first payload
/// word (read only for WRITE_ACT, whose argument unit comes first either way: pass 0 if it is
/// not known yet and ask again once it is).
///
/// | command | units |
/// |---|---|
/// | rejected by [`check_header`] | `len` dense words |
/// | INFO, COUNTERS | none |
/// | SYNC, LOAD_TILE, READ_ACT, READ_ACC | 1 argument word |
/// | MATMUL, ACTIVATE | 2 argument words |
/// | SET_QUANT | `len` (1 or 2) argument words |
/// | LOAD_WEIGHTS | DIM rows of ⌈DIM/4⌉ words |
/// | LOAD_BIAS, LOAD_QUANT | 1 row of DIM words |
/// | WRITE_ACT of n rows, `len` = 1 + n·⌈DIM/4⌉ | 1 argument word, n rows of ⌈DIM/4⌉ words |
/// | WRITE_ACT, any other `len` | 1 argument word, `len` − 1 dense words |
pub fn command_layout(op: u8, len: u32, word0: u32, cfg: &Config) -> Layout {
    use opcode::*;
    if check_header(op, len, cfg).is_err() {
        return Layout::dense(len);
    }
    let (d, wpr) = (cfg.dim() as u32, cfg.words_per_row() as u32);
    let args = |args| Layout { args, ..Layout::default() };
    match op {
        INFO | COUNTERS => Layout::default(),
        SYNC | LOAD_TILE | READ_ACT | READ_ACC => args(1),
        MATMUL | ACTIVATE => args(2),
        SET_QUANT => args(len),
        LOAD_WEIGHTS => Layout { rows: d, row_words: wpr, ..Layout::default() },
        LOAD_BIAS | LOAD_QUANT => Layout { rows: 1, row_words: d, ..Layout::default() },
        WRITE_ACT => {
            let n = word0 >> 16;
            if u64::from(len) == 1 + u64::from(n) * u64::from(wpr) {
                Layout { args: 1, rows: n, row_words: wpr, dense: 0 }
            } else {
                Layout { args: 1, dense: len - 1, ..Layout::default() }
            }
        }
        _ => unreachable!("check_header accepts only command opcodes"),
    }
}

/// The units of a response's payload (`op` and `len` from its header): READ_ACT's rows of
/// ⌈DIM/4⌉ words and READ_ACC's rows of DIM words are one unit each; every other payload
/// (INFO's four words, SYNC's token, COUNTERS' nine, an error's word) is one unit of `len`
/// words. A READ_ACT or READ_ACC length that is not a whole number of rows (never sent by a
/// device) is dense.
pub fn response_layout(op: u8, len: u32, cfg: &Config) -> Layout {
    let row_words = match op {
        x if x == opcode::READ_ACT | RESPONSE_BIT => cfg.words_per_row() as u32,
        x if x == opcode::READ_ACC | RESPONSE_BIT => cfg.dim() as u32,
        _ => return Layout { args: len, ..Layout::default() },
    };
    if len.is_multiple_of(row_words) {
        Layout { rows: len / row_words, row_words, ..Layout::default() }
    } else {
        Layout::dense(len)
    }
}

/// Which stream a framer or [`Unframer`] handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Host to device: [`command_layout`].
    Commands,
    /// Device to host: [`response_layout`].
    Responses,
}

/// The beats of a word stream at `lanes`, flattened (`LANES` words per beat): each header in
/// a beat of its own, each payload unit from a new beat, zero words as padding. A stream that
/// ends inside a command is framed as far as it goes (its last beat padded).
pub fn frame(words: &[u32], stream: Stream, cfg: &Config, lanes: Lanes) -> Vec<u32> {
    let l = lanes.get();
    let mut out = Vec::with_capacity(words.len());
    let beat = |out: &mut Vec<u32>, unit: &[u32]| {
        for chunk in unit.chunks(l) {
            out.extend_from_slice(chunk);
            out.resize(out.len() + (l - chunk.len()), 0);
        }
    };
    let mut i = 0;
    while i < words.len() {
        let (op, len) = split_header(words[i]);
        beat(&mut out, &words[i..=i]);
        i += 1;
        let layout = match stream {
            Stream::Commands => command_layout(op, len, words.get(i).copied().unwrap_or(0), cfg),
            Stream::Responses => response_layout(op, len, cfg),
        };
        for unit in layout.units() {
            let end = (i + unit as usize).min(words.len());
            beat(&mut out, &words[i..end]);
            i = end;
        }
    }
    out
}

/// Streaming [`frame`]: words in, in pieces of any size, beats out as soon as they are
/// whole. It holds back the words of a command (or response) until the whole of it is in, then
/// frames it, so the beats equal [`frame`] of the words pushed so far, minus an incomplete
/// last message. A message that never completes is never sent: that is what a device would
/// see from a host that stopped halfway (it waits for the rest).
#[derive(Debug, Clone)]
pub struct Framer {
    stream: Stream,
    cfg: Config,
    lanes: Lanes,
    /// Words of the incomplete message at the end of the input.
    held: Vec<u32>,
}

impl Framer {
    /// A framer between messages.
    pub fn new(stream: Stream, cfg: Config, lanes: Lanes) -> Self {
        Framer { stream, cfg, lanes, held: Vec::new() }
    }

    /// Words of an incomplete message held back.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// Forget a held incomplete message (the link was reset).
    pub fn clear(&mut self) {
        self.held.clear();
    }

    /// Take `words`; append the beats of every message they complete to `out` (flattened,
    /// `LANES` words a beat).
    pub fn push(&mut self, words: &[u32], out: &mut Vec<u32>) {
        if self.held.is_empty() {
            let i = whole_messages(words);
            out.extend(frame(&words[..i], self.stream, &self.cfg, self.lanes));
            self.held.extend_from_slice(&words[i..]);
        } else {
            let mut buf = std::mem::take(&mut self.held);
            buf.extend_from_slice(words);
            let i = whole_messages(&buf);
            out.extend(frame(&buf[..i], self.stream, &self.cfg, self.lanes));
            self.held = buf.split_off(i);
        }
    }
}

/// The length of the longest prefix of `words` made of whole messages (a header and its
/// length's words each).
fn whole_messages(words: &[u32]) -> usize {
    let mut i = 0;
    while let Some(&head) = words.get(i) {
        let end = i as u64 + 1 + u64::from(split_header(head).1);
        if end > words.len() as u64 {
            break;
        }
        i = end as usize;
    }
    i
}

/// Where an [`Unframer`] is in the stream.
#[derive(Debug, Clone)]
enum At {
    /// The next beat holds a header.
    Header,
    /// Inside a payload: `unit` words left of the current unit, then the rest of `layout`
    /// (`layout.args` already taken); `write_act` (the header's length) while the unit is
    /// WRITE_ACT's argument word, from which its rows follow.
    Payload { unit: u32, rows: u32, row_words: u32, dense: u32, write_act: Option<u32> },
}

/// Streaming inverse of [`frame`]: beats in, the stream's words out (padding dropped), one beat
/// at a time. Never panics and never allocates ahead of its input, whatever the beats.
#[derive(Debug, Clone)]
pub struct Unframer {
    stream: Stream,
    cfg: Config,
    lanes: Lanes,
    at: At,
}

impl Unframer {
    /// An unframer waiting for a header beat.
    pub fn new(stream: Stream, cfg: Config, lanes: Lanes) -> Self {
        Unframer { stream, cfg, lanes, at: At::Header }
    }

    /// True between commands (the next beat is a header's).
    pub fn is_idle(&self) -> bool {
        matches!(self.at, At::Header)
    }

    /// Take one beat (`LANES` words; a shorter slice counts as padded with zeros), appending
    /// the stream words it carries to `out`.
    pub fn push(&mut self, beat: &[u32], out: &mut Vec<u32>) {
        let l = self.lanes.get();
        let word = |i: usize| beat.get(i).copied().unwrap_or(0);
        match std::mem::replace(&mut self.at, At::Header) {
            At::Header => {
                let head = word(0);
                out.push(head);
                let (op, len) = split_header(head);
                let layout = match self.stream {
                    Stream::Commands => command_layout(op, len, 0, &self.cfg),
                    Stream::Responses => response_layout(op, len, &self.cfg),
                };
                let write_act = (self.stream == Stream::Commands
                    && op == opcode::WRITE_ACT
                    && check_header(op, len, &self.cfg).is_ok())
                .then_some(len);
                self.next_unit(layout.args, layout.rows, layout.row_words, layout.dense, write_act);
            }
            At::Payload { unit, rows, row_words, dense, write_act } => {
                let take = (unit as usize).min(l);
                out.extend((0..take).map(word));
                let left = unit - take as u32;
                if left > 0 {
                    self.at = At::Payload { unit: left, rows, row_words, dense, write_act };
                    return;
                }
                match write_act {
                    // WRITE_ACT's argument word is in: its rows follow from it
                    Some(len) => {
                        let w0 = out[out.len() - take];
                        let layout = command_layout(opcode::WRITE_ACT, len, w0, &self.cfg);
                        self.next_unit(0, layout.rows, layout.row_words, layout.dense, None);
                    }
                    _ => self.next_unit(0, rows, row_words, dense, None),
                }
            }
        }
    }

    /// Start the next non-empty unit of what is left (`args` first), or wait for a header.
    fn next_unit(&mut self, args: u32, rows: u32, row_words: u32, dense: u32, write_act: Option<u32>) {
        self.at = if args > 0 {
            At::Payload { unit: args, rows, row_words, dense, write_act }
        } else if rows > 0 && row_words > 0 {
            At::Payload { unit: row_words, rows: rows - 1, row_words, dense, write_act: None }
        } else if dense > 0 {
            At::Payload { unit: dense, rows: 0, row_words: 0, dense: 0, write_act: None }
        } else {
            At::Header
        };
    }
}

/// [`Unframer`] over a whole flattened beat stream (a trailing partial beat counts as padded).
pub fn unframe(beats: &[u32], stream: Stream, cfg: &Config, lanes: Lanes) -> Vec<u32> {
    let mut u = Unframer::new(stream, *cfg, lanes);
    let mut out = Vec::with_capacity(beats.len());
    for beat in beats.chunks(lanes.get()) {
        u.push(beat, &mut out);
    }
    out
}

/// Beats a whole command takes at `lanes` (its header's included), from its words.
pub fn command_beats(words: &[u32], cfg: &Config, lanes: Lanes) -> u64 {
    let Some(&head) = words.first() else { return 0 };
    let (op, len) = split_header(head);
    1 + command_layout(op, len, words.get(1).copied().unwrap_or(0), cfg).beats(lanes)
}
