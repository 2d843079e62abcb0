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

use crate::compile::{compile_layer, compile_mlp, CompileError, Layer, OutputKind};
use crate::program::{Block, Output, Program, ProgramError, ResultKind, RunOutput, Step};
use crate::transport::{Transport, TransportError};
use nalgebra::DMatrix;
use spec::isa::{
    header, opcode, split_header, Command, EncodeError, ResponseDecoder, ResponseError, RESPONSE_BIT,
};
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
}

/// Words moved since the device was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Words sent.
    pub words_sent: u64,
    /// Words received.
    pub words_received: u64,
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
}

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
        let mut dev =
            Device { transport, config: *expected, timeout, stats: LinkStats::default(), next_token: 1 };
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

    /// Send raw words, unchecked (for tests and experiments). Responses they provoke are read
    /// by later calls, or [`Device::read_response`].
    pub fn send_words(&mut self, words: &[u32]) -> Result<(), DriverError> {
        self.transport.send(words)?;
        self.stats.words_sent += words.len() as u64;
        Ok(())
    }

    fn recv(&mut self, n: usize) -> Result<Vec<u32>, DriverError> {
        let words = self.transport.recv(n, self.timeout)?;
        self.stats.words_received += words.len() as u64;
        Ok(words)
    }

    /// Read the next response, whatever it is (a 0xFF answer is returned as
    /// [`Response::Error`], not as an error).
    pub fn read_response(&mut self) -> Result<Response, DriverError> {
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

    /// Read the response `want`; a 0xFF answer becomes [`DriverError::Device`].
    fn expect(&mut self, want: Expect) -> Result<Response, DriverError> {
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

    fn fresh_token(&mut self) -> u32 {
        self.next_token = self.next_token.wrapping_add(1);
        0x5C00_0000 ^ self.next_token.wrapping_mul(0x9E37_79B9)
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
        match self.execute(&Command::Sync { token })? {
            Some(Response::Sync { token: t }) if t == token => Ok(()),
            other => Err(DriverError::Unexpected {
                expected: format!("SYNC token {token:#010x}"),
                got: format!("{other:?}"),
            }),
        }
    }

    /// LOAD_WEIGHTS: `weights[k * dim + n]` is `W[k][n]` of the next tile.
    pub fn load_weights(&mut self, weights: &[i8]) -> Result<(), DriverError> {
        self.checked(Command::LoadWeights { weights: weights.to_vec() }).map(drop)
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

    /// Bring the stream back in step after an error: send a SYNC and discard every word
    /// before its answer. Returns the number of words discarded.
    pub fn resync(&mut self) -> Result<usize, DriverError> {
        let token = self.fresh_token();
        self.send_words(&[header(opcode::SYNC, 1), token])?;
        let want = [header(opcode::SYNC | RESPONSE_BIT, 1), token];
        let mut window = [0u32; 2];
        let mut seen = 0usize;
        loop {
            window = [window[1], self.recv(1)?[0]];
            seen += 1;
            if seen >= 2 && window == want {
                return Ok(seen - 2);
            }
        }
    }

    // ---- programs ----

    /// Run a program: send its steps, read every response, assemble the results.
    ///
    /// Responses are read as soon as more than the transport's
    /// [`Transport::max_pending_words`] are outstanding, before each `WriteBack`, and at the
    /// end (the final SYNC proves no command was refused).
    pub fn run(&mut self, program: &Program) -> Result<RunOutput, DriverError> {
        if program.config != self.config {
            return Err(DriverError::ProgramConfig { program: program.config, device: self.config });
        }
        program.validate()?;
        let start = self.stats;
        let dim = self.config.dim();
        let mut run = Run {
            results: program
                .results
                .iter()
                .map(|r| match r.kind {
                    ResultKind::Int8 => Output::Int8(DMatrix::zeros(r.rows, r.cols)),
                    ResultKind::Raw { .. } => Output::Raw(DMatrix::zeros(r.rows, r.cols)),
                })
                .collect(),
            responses: Vec::new(),
            pending: VecDeque::new(),
            pending_words: 0,
            out: Vec::new(),
        };
        let window = self.transport.max_pending_words();
        for step in &program.steps {
            let cmd = match step {
                Step::WriteBack { dst, from } => {
                    self.drain(&mut run)?;
                    let Output::Int8(m) = &run.results[from.result] else {
                        unreachable!("validate() checks that write-backs read int8 results")
                    };
                    let rows = (from.row..from.row + from.rows)
                        .map(|r| {
                            (0..dim).map(|c| if c < from.cols { m[(r, from.col + c)] } else { 0 }).collect()
                        })
                        .collect();
                    Command::WriteAct { dst: *dst, rows }
                }
                other => other.command().expect("only write-backs have no command"),
            };
            cmd.encode_into(dim, &mut run.out)?;
            if let Some(expect) = self.expected(&cmd) {
                let to = match step {
                    Step::ReadAct { to, .. } | Step::ReadAcc { to, .. } => Some(*to),
                    _ => None,
                };
                let token = match cmd {
                    Command::Sync { token } => Some(token),
                    _ => None,
                };
                run.pending_words += 1 + expect.len as usize;
                run.pending.push_back(Pending { expect, to, token });
                if run.pending_words > window {
                    self.drain(&mut run)?;
                }
            } else if run.out.len() >= SEND_BATCH {
                self.flush(&mut run)?;
            }
        }
        self.drain(&mut run)?;
        for (spec, result) in program.results.iter().zip(&mut run.results) {
            if let (ResultKind::Raw { bias }, Output::Raw(m)) = (&spec.kind, result) {
                for (c, mut col) in m.column_iter_mut().enumerate() {
                    col.apply(|v| *v = v.wrapping_add(bias[c]));
                }
            }
        }
        Ok(RunOutput {
            results: run.results,
            output: program.output,
            responses: run.responses,
            words_sent: self.stats.words_sent - start.words_sent,
            words_received: self.stats.words_received - start.words_received,
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
            run.pending_words -= 1 + p.expect.len as usize;
            let response = self.expect(p.expect)?;
            if let (Some(token), Response::Sync { token: got }) = (p.token, &response) {
                if *got != token {
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
            run.responses.push(response);
        }
        Ok(())
    }

    // ---- conveniences over the compiler ----

    /// Compile and run one layer; returns its output (int8 or raw int32 logits).
    pub fn layer(&mut self, x: &DMatrix<i8>, layer: &Layer, kind: OutputKind) -> Result<Output, DriverError> {
        let program = compile_layer(&self.config, x, layer, kind)?;
        Ok(self.run(&program)?.into_output())
    }

    /// Compile and run an MLP; returns the last layer's output.
    pub fn mlp(
        &mut self,
        x: &DMatrix<i8>,
        layers: &[Layer],
        kind: OutputKind,
    ) -> Result<Output, DriverError> {
        let program = compile_mlp(&self.config, x, layers, kind)?;
        Ok(self.run(&program)?.into_output())
    }
}

/// State of one [`Device::run`].
struct Run {
    results: Vec<Output>,
    responses: Vec<Response>,
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
