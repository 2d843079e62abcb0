//! [`Device`]: typed calls for every command over a [`Transport`], and the runner of
//! [`Program`]s.
//!
//! ```text
//!   Device::open ── INFO ──► compare with the Config the program was built for
//!   typed calls  ── encode, check on the host ──► Transport ──► device
//!   responses    ◄── header: expected opcode and length? 0xFF? ◄── Transport
//! ```
//!
//! Commands without a response (LOAD_*, SET_QUANT, WRITE_ACT, MATMUL, ACTIVATE) return as soon
//! as they are sent; if the device refuses one, its 0xFF answer is reported by the next call
//! that reads a response (use [`Device::sync`] as a fence). After an error the stream may hold
//! responses nobody asked for: [`Device::resync`] discards them.

use crate::compile::{stream_mlp, CompileError, Layer, OutputKind, ProgramStream, Residency};
use crate::program::{
    validate_results, validate_step, Block, Output, Program, ProgramError, ResultKind, RunOutput, Step,
};
use crate::transport::{Transport, TransportError};
use nalgebra::DMatrix;
use spec::isa::{
    header, opcode, split_header, Command, EncodeError, ResponseDecoder, ResponseError, RESPONSE_BIT,
};
use spec::lanes::{Framer, Stream, Unframer};
use spec::{CommandError, Config, Counters, Quant, Response, VERSION};
use std::collections::VecDeque;
use std::time::Duration;
use thiserror::Error;

/// What INFO answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Protocol version ([`spec::VERSION`]).
    pub version: u32,
    /// Array size.
    pub dim: u32,
    /// Scratchpad rows.
    pub scratch_rows: u32,
    /// Accumulator rows.
    pub acc_rows: u32,
}

impl Info {
    /// What a device of `cfg` answers.
    pub fn of(cfg: &Config) -> Self {
        Info {
            version: VERSION,
            dim: cfg.dim() as u32,
            scratch_rows: cfg.scratch_rows() as u32,
            acc_rows: cfg.acc_rows() as u32,
        }
    }
}

impl std::fmt::Display for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "version {}, DIM {}, {} scratchpad rows, {} accumulator rows",
            self.version, self.dim, self.scratch_rows, self.acc_rows
        )
    }
}

/// Everything that can go wrong talking to a device.
#[derive(Debug, Error)]
pub enum DriverError {
    /// The link failed or the device stopped answering ([`TransportError::Timeout`]).
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The device refused a command: it answered 0xFF with this code and opcode.
    #[error("the device refused a command: {0}")]
    Device(CommandError),
    /// A response other than the one expected.
    #[error("unexpected response: expected {expected}, got {got}")]
    Unexpected {
        /// What was expected.
        expected: String,
        /// What came (header word, or the response).
        got: String,
    },
    /// A response that breaks the protocol.
    #[error("malformed response: {0}")]
    Malformed(#[from] ResponseError),
    /// INFO disagrees with the Config the program was built for.
    #[error("the device is {found}, but the program was built for {expected}")]
    WrongDevice {
        /// The Config the host expected.
        expected: Config,
        /// What the device answered.
        found: Info,
    },
    /// A command the device would refuse, caught on the host (nothing was sent).
    #[error("refused on the host (not sent): {0}")]
    Invalid(CommandError),
    /// A payload of the wrong size for DIM (nothing was sent).
    #[error("not sent: {0}")]
    Size(#[from] EncodeError),
    /// A program for another device.
    #[error("the program was compiled for {program}, the device is {device}")]
    ProgramConfig {
        /// The program's Config.
        program: Config,
        /// The device's.
        device: Config,
    },
    /// A program that does not hold together.
    #[error("invalid program: {0}")]
    Program(#[from] ProgramError),
    /// Operands that cannot be compiled.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// An earlier call failed after words were exchanged, so answers nobody asked for may be
    /// queued: call [`Device::resync`] first (nothing was sent).
    #[error("the link is out of step after an earlier error: resync() first (nothing was sent)")]
    OutOfSync,
    /// [`Device::resync`] gave up within its bound (see docs/driver.md).
    #[error("cannot bring the link back in step: {0}")]
    Resync(String),
}

/// Words moved since the device was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Words sent.
    pub words_sent: u64,
    /// Words received.
    pub words_received: u64,
    /// Times [`Device::resync`] reset the device through the link ([`Transport::reset_link`]:
    /// a BREAK on a UART). Each one leaves the device in its reset state.
    pub link_resets: u64,
    /// Beats sent (LANES words each, padding included; equal to `words_sent` at LANES 1).
    pub beats_sent: u64,
    /// Beats received (equal to `words_received` at LANES 1).
    pub beats_received: u64,
}

/// The response a command waits for: opcode and payload length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Expect {
    op: u8,
    len: u32,
}

/// Where a response goes in a run.
#[derive(Debug, Clone)]
struct Pending {
    expect: Expect,
    to: Option<Block>,
    token: Option<u32>,
}

/// One protobrain core behind a [`Transport`] (see the module docs).
#[derive(Debug)]
pub struct Device<T> {
    transport: T,
    config: Config,
    timeout: Duration,
    stats: LinkStats,
    next_token: u32,
    in_sync: bool,
    /// LANES > 1: the command words as beats, and the response beats as words
    /// (docs/design.md "A wider link: LANES"); unused at LANES 1, where a beat is a word.
    framer: Framer,
    unframer: Unframer,
    /// Response words unframed and not yet read.
    unframed: VecDeque<u32>,
    beat: Vec<u32>,
}

/// A SYNC header with length 1. Used as its own token, a stream of it is parsed as SYNCs
/// whatever word the device takes as the first header, and each pair is echoed as
/// `[RESYNC_ECHO, RESYNC_FILL]`: [`Device::resync`] sends it to complete a command left
/// waiting for payload.
const RESYNC_FILL: u32 = (spec::isa::opcode::SYNC as u32) << 24 | 1;
/// An INFO header: one word whatever the parser's state. Between commands it is an INFO (its
/// answer is discarded; nothing changes, no error is counted); as the token of a SYNC whose
/// header came last it is echoed. Either way the device is then between commands:
/// [`Device::resync`] sends it before its final SYNC.
const RESYNC_ALIGN: u32 = (spec::isa::opcode::INFO as u32) << 24;
/// The response header of a SYNC.
const RESYNC_ECHO: u32 = ((spec::isa::opcode::SYNC | RESPONSE_BIT) as u32) << 24 | 1;

/// Largest batch of words the runner hands to the transport at once.
const SEND_BATCH: usize = 4096;

impl<T: Transport> Device<T> {
    /// Time one `recv` may take before the device counts as not answering.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// Ask the device its INFO and refuse it ([`DriverError::WrongDevice`]) unless it matches
    /// `expected` (and this driver's protocol version).
    pub fn open(transport: T, expected: &Config) -> Result<Self, DriverError> {
        Device::open_with_timeout(transport, expected, Self::DEFAULT_TIMEOUT)
    }

    /// [`Device::open`] with another response timeout.
    pub fn open_with_timeout(
        transport: T,
        expected: &Config,
        timeout: Duration,
    ) -> Result<Self, DriverError> {
        let mut dev = Device {
            transport,
            config: *expected,
            timeout,
            stats: LinkStats::default(),
            next_token: 1,
            in_sync: true,
            framer: Framer::new(Stream::Commands, *expected, expected.lanes()),
            unframer: Unframer::new(Stream::Responses, *expected, expected.lanes()),
            unframed: VecDeque::new(),
            beat: Vec::new(),
        };
        let found = dev.info()?;
        if found != Info::of(expected) {
            return Err(DriverError::WrongDevice { expected: *expected, found });
        }
        Ok(dev)
    }

    /// The device's configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The response timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Change the response timeout.
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Words moved so far.
    pub fn stats(&self) -> LinkStats {
        self.stats
    }

    /// The transport.
    pub fn transport(&self) -> &T {
        &self.transport
    }

    /// The transport, mutably.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Close: give the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    // ---- the words ----

    /// Whether the stream is in step: false after a call failed once words were exchanged,
    /// until [`Device::resync`] succeeds. Out of step, every call but `resync` fails with
    /// [`DriverError::OutOfSync`] without sending anything.
    pub fn is_in_sync(&self) -> bool {
        self.in_sync
    }

    fn in_step(&self) -> Result<(), DriverError> {
        if self.in_sync {
            Ok(())
        } else {
            Err(DriverError::OutOfSync)
        }
    }

    /// Mark the stream out of step if `r` is an error.
    fn mark<R>(&mut self, r: Result<R, DriverError>) -> Result<R, DriverError> {
        if r.is_err() {
            self.in_sync = false;
        }
        r
    }

    /// Send raw words, unchecked (for tests and experiments). Responses they provoke are read
    /// by later calls, or [`Device::read_response`].
    pub fn send_words(&mut self, words: &[u32]) -> Result<(), DriverError> {
        self.in_step()?;
        let r = self.raw_send(words);
        self.mark(r)
    }

    fn raw_send(&mut self, words: &[u32]) -> Result<(), DriverError> {
        let lanes = self.config.lanes().get();
        if lanes == 1 {
            self.transport.send(words)?;
            self.stats.beats_sent += words.len() as u64;
        } else {
            // whole commands as beats; an incomplete last command waits for its rest
            let mut beats = std::mem::take(&mut self.beat);
            beats.clear();
            self.framer.push(words, &mut beats);
            let r = if beats.is_empty() { Ok(()) } else { self.transport.send(&beats) };
            self.stats.beats_sent += (beats.len() / lanes) as u64;
            self.beat = beats;
            r?;
        }
        self.stats.words_sent += words.len() as u64;
        Ok(())
    }

    fn recv(&mut self, n: usize) -> Result<Vec<u32>, DriverError> {
        self.in_step()?;
        let r = self.raw_recv(n);
        self.mark(r)
    }

    fn raw_recv(&mut self, n: usize) -> Result<Vec<u32>, DriverError> {
        let lanes = self.config.lanes().get();
        if lanes == 1 {
            let words = self.transport.recv(n, self.timeout)?;
            self.stats.words_received += words.len() as u64;
            self.stats.beats_received += words.len() as u64;
            return Ok(words);
        }
        // a beat carries at most LANES of the words still wanted, so asking for ⌈wanted /
        // LANES⌉ beats never reads past them
        let mut words = Vec::new();
        while self.unframed.len() < n {
            let beats = (n - self.unframed.len()).div_ceil(lanes);
            let got = self.transport.recv(beats * lanes, self.timeout)?;
            self.stats.beats_received += beats as u64;
            for beat in got.chunks(lanes) {
                words.clear();
                self.unframer.push(beat, &mut words);
                self.unframed.extend(&words);
            }
        }
        self.stats.words_received += n as u64;
        Ok(self.unframed.drain(..n).collect())
    }

    /// Transport words that `words` response words of `op` with `len` take (framed as beats at
    /// LANES > 1).
    fn link_words(&self, op: u8, len: u32) -> usize {
        let l = self.config.lanes();
        let beats = 1 + spec::lanes::response_layout(op, len, &self.config).beats(l);
        beats as usize * l.get()
    }

    /// Read the next response, whatever it is (a 0xFF answer is returned as
    /// [`Response::Error`], not as an error).
    pub fn read_response(&mut self) -> Result<Response, DriverError> {
        let r = self.read_response_inner();
        self.mark(r)
    }

    fn read_response_inner(&mut self) -> Result<Response, DriverError> {
        let head = self.recv(1)?[0];
        let (_, len) = split_header(head);
        let mut dec = ResponseDecoder::new(self.config.dim());
        if let Some(r) = dec.push(head) {
            return Ok(r?);
        }
        let limit = 1 + self.config.scratch_rows().max(self.config.acc_rows()) * self.config.dim();
        if len as usize > limit {
            return Err(DriverError::Unexpected {
                expected: "a response".into(),
                got: format!("header {head:#010x} announcing {len} words"),
            });
        }
        for w in self.recv(len as usize)? {
            if let Some(r) = dec.push(w) {
                return Ok(r?);
            }
        }
        unreachable!("the decoder completes a response after its announced length")
    }

    /// Read the response `want`; a 0xFF answer becomes [`DriverError::Device`]. Any error
    /// leaves the stream out of step (a 0xFF may answer an earlier silent command, with the
    /// awaited response still to come).
    fn expect(&mut self, want: Expect) -> Result<Response, DriverError> {
        let r = self.expect_inner(want);
        self.mark(r)
    }

    fn expect_inner(&mut self, want: Expect) -> Result<Response, DriverError> {
        let head = self.recv(1)?[0];
        let (op, len) = split_header(head);
        if op == opcode::ERROR && len == 1 {
            let word = self.recv(1)?[0];
            let mut dec = ResponseDecoder::new(self.config.dim());
            dec.push(head);
            return match dec.push(word).expect("a one-word error response is complete")? {
                Response::Error(e) => Err(DriverError::Device(e)),
                other => unreachable!("0xFF decodes as an error, got {other:?}"),
            };
        }
        if op != want.op || len != want.len {
            return Err(DriverError::Unexpected {
                expected: format!("response {:#04x} with {} words", want.op, want.len),
                got: format!("header {head:#010x} (response {op:#04x} with {len} words)"),
            });
        }
        let mut dec = ResponseDecoder::new(self.config.dim());
        let mut done = dec.push(head);
        for w in self.recv(len as usize)? {
            done = dec.push(w);
        }
        Ok(done.expect("the decoder completes a response after its announced length")?)
    }

    /// The response a command waits for, if any.
    fn expected(&self, cmd: &Command) -> Option<Expect> {
        let (d, wpr) = (self.config.dim() as u32, self.config.words_per_row() as u32);
        let e = |op: u8, len: u32| Some(Expect { op: op | RESPONSE_BIT, len });
        match cmd {
            Command::Info => e(opcode::INFO, 4),
            Command::Sync { .. } => e(opcode::SYNC, 1),
            Command::Counters => e(opcode::COUNTERS, spec::isa::COUNTER_WORDS as u32),
            Command::ReadAct { n, .. } => e(opcode::READ_ACT, u32::from(*n) * wpr),
            Command::ReadAcc { n, .. } => e(opcode::READ_ACC, u32::from(*n) * d),
            _ => None,
        }
    }

    /// Send any command without the host-side check and read its response, if it has one
    /// (the device's 0xFF answer becomes [`DriverError::Device`]). Sizes must still match DIM.
    pub fn execute(&mut self, cmd: &Command) -> Result<Option<Response>, DriverError> {
        let words = cmd.encode(self.config.dim())?;
        self.send_words(&words)?;
        match self.expected(cmd) {
            Some(want) => self.expect(want).map(Some),
            None => Ok(None),
        }
    }

    /// Check `cmd` on the host (sizes, ranges), then [`Device::execute`] it.
    fn checked(&mut self, cmd: Command) -> Result<Option<Response>, DriverError> {
        cmd.encode(self.config.dim())?;
        cmd.check(&self.config).map_err(DriverError::Invalid)?;
        self.execute(&cmd)
    }

    /// A SYNC token unlike the last 255. Its low 24 bits are zero: if the device takes it as a
    /// header (the SYNC header itself was lost, or taken as the payload of a command whose
    /// words were lost), it announces no payload and swallows nothing after it.
    fn fresh_token(&mut self) -> u32 {
        self.next_token = self.next_token.wrapping_add(1);
        // 167 is odd: consecutive counts give 256 distinct top bytes
        ((self.next_token.wrapping_mul(167) & 0xFF) ^ 0x5C) << 24
    }

    // ---- one call per command ----

    /// INFO.
    pub fn info(&mut self) -> Result<Info, DriverError> {
        match self.execute(&Command::Info)? {
            Some(Response::Info { version, dim, scratch_rows, acc_rows }) => {
                Ok(Info { version, dim, scratch_rows, acc_rows })
            }
            other => unreachable!("expect() returns the INFO response, got {other:?}"),
        }
    }

    /// SYNC with a fresh token: returns once every earlier command has completed; reports a
    /// refused earlier command ([`DriverError::Device`]).
    pub fn sync(&mut self) -> Result<(), DriverError> {
        let token = self.fresh_token();
        let r = match self.execute(&Command::Sync { token })? {
            Some(Response::Sync { token: t }) if t == token => Ok(()),
            other => Err(DriverError::Unexpected {
                expected: format!("SYNC token {token:#010x}"),
                got: format!("{other:?}"),
            }),
        };
        self.mark(r)
    }

    /// Store the weight tiles of `layers` on the device (resident weights, docs/design.md), as
    /// many as fit in `budget_rows` scratchpad rows ([`Residency::plan`]; the rest stay
    /// streamed), then SYNC. Returns where they are, for `compile_mlp_resident` or
    /// `Network::run_resident`.
    pub fn upload_resident(
        &mut self,
        layers: &[&Layer],
        budget_rows: usize,
    ) -> Result<Residency, DriverError> {
        let resident = Residency::plan(&self.config, layers, budget_rows);
        for cmd in resident.upload_commands(layers) {
            self.execute(&cmd)?;
        }
        self.sync()?;
        Ok(resident)
    }

    /// LOAD_WEIGHTS: `weights[k * dim + n]` is `W[k][n]` of the next tile.
    pub fn load_weights(&mut self, weights: &[i8]) -> Result<(), DriverError> {
        self.checked(Command::LoadWeights { weights: weights.to_vec() }).map(drop)
    }

    /// LOAD_TILE: the next tile from scratchpad rows `src .. src + DIM` (row k = `W[k][..]`),
    /// stored there before with [`Device::write_act`].
    pub fn load_tile(&mut self, src: u16) -> Result<(), DriverError> {
        self.checked(Command::LoadTile { src }).map(drop)
    }

    /// LOAD_BIAS: DIM biases.
    pub fn load_bias(&mut self, bias: &[i32]) -> Result<(), DriverError> {
        self.checked(Command::LoadBias { bias: bias.to_vec() }).map(drop)
    }

    /// SET_QUANT (1 word: every column's M and S, ReLU, zero point 0).
    pub fn set_quant(&mut self, quant: Quant) -> Result<(), DriverError> {
        self.checked(Command::SetQuant(quant)).map(drop)
    }

    /// SET_QUANT with an output zero point (contract v2, 2 words).
    pub fn set_quant_zp(&mut self, quant: Quant, zero_point: i8) -> Result<(), DriverError> {
        self.checked(Command::SetQuantZp { quant, zero_point }).map(drop)
    }

    /// LOAD_QUANT (contract v2): DIM column scales (M[n], S[n]); ReLU and Z are kept.
    pub fn load_quant(&mut self, scales: &[spec::ColumnScale]) -> Result<(), DriverError> {
        self.checked(Command::LoadQuant { scales: scales.to_vec() }).map(drop)
    }

    /// WRITE_ACT: rows of DIM int8 to scratchpad rows `dst..`.
    pub fn write_act(&mut self, dst: u16, rows: &[Vec<i8>]) -> Result<(), DriverError> {
        self.checked(Command::WriteAct { dst, rows: rows.to_vec() }).map(drop)
    }

    /// READ_ACT: `n` scratchpad rows from `src`.
    pub fn read_act(&mut self, src: u16, n: u16) -> Result<Vec<Vec<i8>>, DriverError> {
        match self.checked(Command::ReadAct { src, n })? {
            Some(Response::ReadAct { rows }) => Ok(rows),
            other => unreachable!("expect() returns the READ_ACT response, got {other:?}"),
        }
    }

    /// MATMUL: acc[dst + i] (= or +=) scratch[src + i] x W for i in 0..n.
    pub fn matmul(&mut self, src: u16, n: u16, dst: u16, accumulate: bool) -> Result<(), DriverError> {
        self.checked(Command::Matmul { src, n, dst, accumulate }).map(drop)
    }

    /// ACTIVATE: scratch[dst + i] = act(acc[src + i] + bias) for i in 0..n.
    pub fn activate(&mut self, src: u16, n: u16, dst: u16) -> Result<(), DriverError> {
        self.checked(Command::Activate { src, n, dst }).map(drop)
    }

    /// READ_ACC: `n` raw accumulator rows from `src`.
    pub fn read_acc(&mut self, src: u16, n: u16) -> Result<Vec<Vec<i32>>, DriverError> {
        match self.checked(Command::ReadAcc { src, n })? {
            Some(Response::ReadAcc { rows }) => Ok(rows),
            other => unreachable!("expect() returns the READ_ACC response, got {other:?}"),
        }
    }

    /// COUNTERS.
    pub fn counters(&mut self) -> Result<Counters, DriverError> {
        match self.execute(&Command::Counters)? {
            Some(Response::Counters(c)) => Ok(c),
            other => unreachable!("expect() returns the COUNTERS response, got {other:?}"),
        }
    }

    /// The longest response a device of this Config sends, in words.
    fn max_response_words(&self) -> usize {
        let c = &self.config;
        1 + (c.scratch_rows() * c.words_per_row()).max(c.acc_rows() * c.dim()).max(spec::isa::COUNTER_WORDS)
    }

    /// Bring the stream back in step after an error, within a bound (docs/driver.md):
    ///
    /// 1. send a SYNC whose token is [`RESYNC_FILL`] (harmless if the device takes it as a
    ///    header) and discard every word up to its echo;
    /// 2. if no echo comes (a timeout: the device is waiting for the payload of a command
    ///    whose words were lost, and took the SYNC as payload), reset the link
    ///    ([`Transport::reset_link`]: a BREAK on a UART; counted in
    ///    [`LinkStats::link_resets`], and the device is then in its reset state). A transport
    ///    that cannot instead sends [`RESYNC_FILL`] words — in chunks doubling from 64, at most
    ///    the transport's pending window each, at most `2^24 + 1` in all (the longest payload a
    ///    header can announce) — until their echo shows the device parses commands again;
    /// 3. unless the link was reset, send [`RESYNC_ALIGN`] (a SYNC the fill left waiting for its
    ///    token takes it; else it is refused), then a SYNC with a fresh token, and discard
    ///    every word before its echo.
    ///
    /// Words discarded are capped at twice the longest response plus twice the words sent:
    /// a device that keeps sending garbage makes this fail ([`DriverError::Resync`]) instead
    /// of looping. Returns the number of words discarded.
    pub fn resync(&mut self) -> Result<usize, DriverError> {
        self.in_sync = false;
        let mut discarded = 0usize;
        let mut sent = 0usize;
        let mut echoed = self.sync_and_discard(RESYNC_FILL, &mut discarded, &mut sent)?.is_some();
        let reset = !echoed && self.transport.reset_link()?;
        if reset {
            // the device and its link are reset: the next SYNC is parsed as a command
            self.stats.link_resets += 1;
            echoed = true;
            self.framer.clear();
            self.unframer = Unframer::new(Stream::Responses, self.config, self.config.lanes());
            self.unframed.clear();
        }
        if !echoed && self.config.lanes().get() > 1 {
            // the fill below is a word-level recovery: at LANES > 1 a device inside a payload
            // counts beats, and only a reset brings it back for certain
            return Err(DriverError::Resync(format!(
                "no SYNC echo, and at LANES {} the stream can only be recovered by a link reset, \
                 which this transport cannot do",
                self.config.lanes()
            )));
        }
        // the device is inside a command's payload: fill it
        let max_fill = spec::isa::MAX_LEN as usize + 2;
        let window = self.transport.max_pending_words().clamp(2, 1 << 16);
        let (mut filled, mut chunk) = (0usize, 64usize);
        while !echoed && filled < max_fill {
            let n = chunk.min(window).min(max_fill - filled) & !1;
            let n = n.max(2);
            self.raw_send(&vec![RESYNC_FILL; n])?;
            filled += n;
            sent += n;
            chunk = chunk.saturating_mul(2);
            // read until the device falls silent; an echo of the fill means it parses again
            let mut last = 0u32;
            loop {
                match self.raw_recv(1) {
                    Ok(w) => {
                        discarded += 1;
                        echoed |= last == RESYNC_ECHO && w[0] == RESYNC_FILL;
                        last = w[0];
                        self.discard_cap(discarded, sent)?;
                    }
                    Err(DriverError::Transport(TransportError::Timeout { .. })) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        if !echoed {
            return Err(DriverError::Resync(format!("no echo after {filled} fill words")));
        }
        let mut token = self.fresh_token();
        while token == RESYNC_ALIGN {
            token = self.fresh_token();
        }
        // the fill (or the first SYNC) may have left a SYNC header waiting for its token; the
        // INFO answer the aligning word gets otherwise is expected, not discarded
        let mut info_answer = Vec::new();
        if !reset {
            self.raw_send(&[RESYNC_ALIGN])?;
            sent += 1;
            Response::info(&self.config).encode_into(self.config.dim(), &mut info_answer);
        }
        match self.sync_and_discard_after(token, &info_answer, &mut discarded, &mut sent)? {
            Some(()) => {
                self.in_sync = true;
                Ok(discarded)
            }
            None if reset => {
                Err(DriverError::Resync("the device did not echo a SYNC after a link reset".into()))
            }
            None => Err(DriverError::Resync("the device echoed the fill but not the SYNC after it".into())),
        }
    }

    /// Send a SYNC and discard up to its echo: `Some` once seen, `None` on a timeout.
    fn sync_and_discard(
        &mut self,
        token: u32,
        discarded: &mut usize,
        sent: &mut usize,
    ) -> Result<Option<()>, DriverError> {
        self.sync_and_discard_after(token, &[], discarded, sent)
    }

    /// [`Device::sync_and_discard`], where `expected` (if it comes right before the echo) is
    /// the answer to a command sent on purpose and is not counted as discarded.
    fn sync_and_discard_after(
        &mut self,
        token: u32,
        expected: &[u32],
        discarded: &mut usize,
        sent: &mut usize,
    ) -> Result<Option<()>, DriverError> {
        self.raw_send(&[header(opcode::SYNC, 1), token])?;
        *sent += 2;
        let want = [header(opcode::SYNC | RESPONSE_BIT, 1), token];
        let mut window = [0u32; 2];
        let mut tail: VecDeque<u32> = VecDeque::with_capacity(expected.len() + 3);
        let mut seen = 0usize;
        loop {
            match self.raw_recv(1) {
                Ok(w) => {
                    window = [window[1], w[0]];
                    tail.push_back(w[0]);
                    if tail.len() > expected.len() + 2 {
                        tail.pop_front();
                    }
                }
                Err(DriverError::Transport(TransportError::Timeout { .. })) => {
                    *discarded += seen;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            }
            seen += 1;
            if seen >= 2 && window == want {
                let before = tail.len() - 2;
                let known = before == expected.len() && tail.iter().take(before).eq(expected.iter());
                *discarded += seen - 2 - if known { expected.len() } else { 0 };
                return Ok(Some(()));
            }
            self.discard_cap(*discarded + seen, *sent)?;
        }
    }

    fn discard_cap(&self, discarded: usize, sent: usize) -> Result<(), DriverError> {
        let cap = 2 * self.max_response_words() + 2 * sent;
        if discarded > cap {
            return Err(DriverError::Resync(format!(
                "the device sent {discarded} words without the SYNC echo (at most {cap} can be pending)"
            )));
        }
        Ok(())
    }

    // ---- programs ----

    /// Run a program: send its steps, read every response, assemble the results.
    ///
    /// Responses are read as soon as more than the transport's
    /// [`Transport::max_pending_words`] are outstanding, before each `WriteBack`, and at the
    /// end (the final SYNC proves no command was refused).
    pub fn run(&mut self, program: &Program) -> Result<RunOutput, DriverError> {
        self.in_step()?;
        let before = self.stats;
        let r = self.run_inner(program);
        if r.is_err() && self.stats != before {
            self.in_sync = false;
        }
        r
    }

    fn run_inner(&mut self, program: &Program) -> Result<RunOutput, DriverError> {
        if program.config != self.config {
            return Err(DriverError::ProgramConfig { program: program.config, device: self.config });
        }
        program.validate()?;
        let mut run = self.start_run(&program.results, true);
        for step in &program.steps {
            let (cmd, to) = self.step_command(&mut run, step)?;
            self.run_step(&mut run, cmd, to)?;
        }
        self.finish_run(run, &program.results, program.output)
    }

    /// Run a [`ProgramStream`]: as [`Device::run`] on [`ProgramStream::to_program`], but each
    /// step is sent as the compiler makes it, so memory does not grow with the program (only
    /// with X, the layers and the results). The responses are read and placed in the results
    /// but not kept: [`RunOutput::responses`] is empty.
    pub fn run_stream(&mut self, program: &ProgramStream) -> Result<RunOutput, DriverError> {
        self.in_step()?;
        let before = self.stats;
        let r = self.run_stream_inner(program);
        if r.is_err() && self.stats != before {
            self.in_sync = false;
        }
        r
    }

    fn run_stream_inner(&mut self, program: &ProgramStream) -> Result<RunOutput, DriverError> {
        let config = program.config();
        if config != self.config {
            return Err(DriverError::ProgramConfig { program: config, device: self.config });
        }
        let results = program.results();
        validate_results(results)?;
        let mut run = self.start_run(results, false);
        let (mut i, mut failed) = (0usize, None);
        program.for_each_step(|step| {
            if failed.is_some() {
                return;
            }
            let done = validate_step(&config, results, i, &step).map_err(DriverError::from).and_then(|()| {
                let (cmd, to) = match step {
                    Step::Command(cmd) => (cmd, None),
                    other => self.step_command(&mut run, &other)?,
                };
                self.run_step(&mut run, cmd, to)
            });
            failed = done.err();
            i += 1;
        });
        if let Some(e) = failed {
            return Err(e);
        }
        self.finish_run(run, results, program.output())
    }

    fn start_run(&self, results: &[crate::program::ResultSpec], keep_responses: bool) -> Run {
        Run {
            results: results
                .iter()
                .map(|r| match r.kind {
                    ResultKind::Int8 => Output::Int8(DMatrix::zeros(r.rows, r.cols)),
                    ResultKind::Raw { .. } => Output::Raw(DMatrix::zeros(r.rows, r.cols)),
                })
                .collect(),
            responses: Vec::new(),
            keep_responses,
            pending: VecDeque::new(),
            pending_words: 0,
            out: Vec::new(),
            start: self.stats,
        }
    }

    /// The command a step sends and where its response rows land. A write-back reads every
    /// pending response first: its rows are results of the run so far.
    fn step_command(&mut self, run: &mut Run, step: &Step) -> Result<(Command, Option<Block>), DriverError> {
        Ok(match step {
            Step::Command(cmd) => (cmd.clone(), None),
            Step::ReadAct { src, n, to } => (Command::ReadAct { src: *src, n: *n }, Some(*to)),
            Step::ReadAcc { src, n, to } => (Command::ReadAcc { src: *src, n: *n }, Some(*to)),
            Step::WriteBack { dst, from } => {
                self.drain(run)?;
                let Output::Int8(m) = &run.results[from.result] else {
                    unreachable!("validation checks that write-backs read int8 results")
                };
                let dim = self.config.dim();
                let rows = (from.row..from.row + from.rows)
                    .map(|r| (0..dim).map(|c| if c < from.cols { m[(r, from.col + c)] } else { 0 }).collect())
                    .collect();
                (Command::WriteAct { dst: *dst, rows }, None)
            }
        })
    }

    /// Send one command (its response rows land in `to`) and read responses when the window
    /// is full.
    fn run_step(&mut self, run: &mut Run, cmd: Command, to: Option<Block>) -> Result<(), DriverError> {
        let dim = self.config.dim();
        let window = self.transport.max_pending_words();
        cmd.encode_into(dim, &mut run.out)?;
        if let Some(expect) = self.expected(&cmd) {
            let token = match cmd {
                Command::Sync { token } => Some(token),
                _ => None,
            };
            run.pending_words += self.link_words(expect.op, expect.len);
            run.pending.push_back(Pending { expect, to, token });
            if run.pending_words > window {
                self.drain(run)?;
            }
        } else if run.out.len() >= SEND_BATCH {
            self.flush(run)?;
        }
        Ok(())
    }

    fn finish_run(
        &mut self,
        mut run: Run,
        specs: &[crate::program::ResultSpec],
        output: usize,
    ) -> Result<RunOutput, DriverError> {
        self.drain(&mut run)?;
        for (spec, result) in specs.iter().zip(&mut run.results) {
            if let (ResultKind::Raw { bias }, Output::Raw(m)) = (&spec.kind, result) {
                for (c, mut col) in m.column_iter_mut().enumerate() {
                    col.apply(|v| *v = v.wrapping_add(bias[c]));
                }
            }
        }
        Ok(RunOutput {
            results: run.results,
            output,
            responses: run.responses,
            words_sent: self.stats.words_sent - run.start.words_sent,
            words_received: self.stats.words_received - run.start.words_received,
        })
    }

    fn flush(&mut self, run: &mut Run) -> Result<(), DriverError> {
        if !run.out.is_empty() {
            let words = std::mem::take(&mut run.out);
            self.send_words(&words)?;
        }
        Ok(())
    }

    /// Send what is buffered, then read every pending response.
    fn drain(&mut self, run: &mut Run) -> Result<(), DriverError> {
        self.flush(run)?;
        while let Some(p) = run.pending.pop_front() {
            run.pending_words -= self.link_words(p.expect.op, p.expect.len);
            let response = self.expect(p.expect)?;
            if let (Some(token), Response::Sync { token: got }) = (p.token, &response) {
                if *got != token {
                    self.in_sync = false;
                    return Err(DriverError::Unexpected {
                        expected: format!("SYNC token {token:#010x}"),
                        got: format!("token {got:#010x}"),
                    });
                }
            }
            if let Some(b) = p.to {
                match (&response, &mut run.results[b.result]) {
                    (Response::ReadAct { rows }, Output::Int8(m)) => place(m, &b, rows),
                    (Response::ReadAcc { rows }, Output::Raw(m)) => place(m, &b, rows),
                    _ => unreachable!("validate() matches read steps with their result types"),
                }
            }
            if run.keep_responses {
                run.responses.push(response);
            }
        }
        Ok(())
    }

    // ---- conveniences over the compiler ----

    /// Compile and run one layer; returns its output (int8 or raw int32 logits).
    pub fn layer(&mut self, x: &DMatrix<i8>, layer: &Layer, kind: OutputKind) -> Result<Output, DriverError> {
        self.mlp(x, std::slice::from_ref(layer), kind)
    }

    /// Compile and run an MLP; returns the last layer's output.
    pub fn mlp(
        &mut self,
        x: &DMatrix<i8>,
        layers: &[Layer],
        kind: OutputKind,
    ) -> Result<Output, DriverError> {
        let program = stream_mlp(&self.config, x, layers, kind)?;
        Ok(self.run_stream(&program)?.into_output())
    }
}

/// State of one [`Device::run`].
struct Run {
    results: Vec<Output>,
    responses: Vec<Response>,
    /// Keep every response in `responses` (a [`Program`] run) or none (a stream).
    keep_responses: bool,
    /// The link's counts when the run started.
    start: LinkStats,
    pending: VecDeque<Pending>,
    pending_words: usize,
    out: Vec<u32>,
}

fn place<E: Copy + nalgebra::Scalar>(m: &mut DMatrix<E>, b: &Block, rows: &[Vec<E>]) {
    for (i, r) in rows.iter().enumerate() {
        for (c, &v) in r.iter().take(b.cols).enumerate() {
            m[(b.row + i, b.col + c)] = v;
        }
    }
}
