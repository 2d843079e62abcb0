//! A [`Program`]: the command stream of a computation, as data.
//!
//! ```text
//!  Program ── config (the device it was compiled for)
//!          ── steps: Command(cmd)          sent as is
//!                    ReadAct/ReadAcc{to}   sent; the response rows land in results[to.result]
//!                    WriteBack{from}       WRITE_ACT of rows of an earlier result (host round
//!                                          trip when activations do not fit on chip)
//!          ── results: [ResultSpec]        matrices the responses are assembled into
//!          ── output: index of the final result
//! ```
//!
//! A program is serde-serialisable ([`Program::to_json`]) and, unless it has `WriteBack` steps
//! (whose rows exist only at run time), exactly one word stream ([`Program::words`],
//! [`Program::to_bin`]): what crosses the wire, byte for byte. Running it on a
//! [`crate::Device`] gives a [`RunOutput`].

use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};
use spec::isa::{Command, Response};
use spec::Config;
use std::path::Path;
use thiserror::Error;

/// A rectangle of a result matrix: rows `row..row + rows`, columns `col..col + cols`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    /// Index into [`Program::results`].
    pub result: usize,
    /// First row.
    pub row: usize,
    /// First column.
    pub col: usize,
    /// Number of rows (= device rows moved).
    pub rows: usize,
    /// Number of columns (<= DIM; the remaining columns of each device row are padding).
    pub cols: usize,
}

/// One step of a program.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Send a command. If it has a response (INFO, SYNC, COUNTERS, READ_*), the response is
    /// checked and kept in [`RunOutput::responses`]; a SYNC's token must come back unchanged.
    Command(Command),
    /// READ_ACT of `n` scratchpad rows from `src`; the first `to.cols` int8 of each row go to
    /// `to`.
    ReadAct {
        /// First scratchpad row.
        src: u16,
        /// Rows.
        n: u16,
        /// Where the rows land.
        to: Block,
    },
    /// READ_ACC of `n` accumulator rows from `src` (raw int32); the first `to.cols` of each
    /// row go to `to`.
    ReadAcc {
        /// First accumulator row.
        src: u16,
        /// Rows.
        n: u16,
        /// Where the rows land.
        to: Block,
    },
    /// WRITE_ACT to scratchpad row `dst` of the rows of `from` (an earlier int8 result), each
    /// padded with zeros to DIM. Every response before it is read first.
    WriteBack {
        /// First scratchpad row.
        dst: u16,
        /// The rows written.
        from: Block,
    },
}

impl Step {
    /// The command this step sends, if it is known before the run (not a `WriteBack`).
    pub fn command(&self) -> Option<Command> {
        match self {
            Step::Command(c) => Some(c.clone()),
            Step::ReadAct { src, n, .. } => Some(Command::ReadAct { src: *src, n: *n }),
            Step::ReadAcc { src, n, .. } => Some(Command::ReadAcc { src: *src, n: *n }),
            Step::WriteBack { .. } => None,
        }
    }

    /// Words the device of `cfg` answers this step with when nothing goes wrong.
    pub fn response_words(&self, cfg: &Config) -> u64 {
        let (dim, wpr) = (cfg.dim() as u64, cfg.words_per_row() as u64);
        match self {
            Step::Command(Command::Info) => 5,
            Step::Command(Command::Sync { .. }) => 2,
            Step::Command(Command::Counters) => 1 + spec::isa::COUNTER_WORDS as u64,
            Step::Command(Command::ReadAct { n, .. }) | Step::ReadAct { n, .. } => 1 + u64::from(*n) * wpr,
            Step::Command(Command::ReadAcc { n, .. }) | Step::ReadAcc { n, .. } => 1 + u64::from(*n) * dim,
            _ => 0,
        }
    }

    /// The opcode of the command this step sends.
    pub fn opcode(&self) -> u8 {
        match self {
            Step::Command(c) => c.opcode(),
            Step::ReadAct { .. } => spec::isa::opcode::READ_ACT,
            Step::ReadAcc { .. } => spec::isa::opcode::READ_ACC,
            Step::WriteBack { .. } => spec::isa::opcode::WRITE_ACT,
        }
    }
}

/// What a result matrix holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResultKind {
    /// int8 activations (READ_ACT rows).
    Int8,
    /// Raw int32 logits `acc + bias`: READ_ACC rows, plus `bias[col]` added on the host with
    /// int32 wrap (the device returns `acc` without bias).
    Raw {
        /// One per column.
        bias: Vec<i32>,
    },
}

/// A matrix the responses are assembled into.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResultSpec {
    /// Rows (M).
    pub rows: usize,
    /// Columns (N of the layer).
    pub cols: usize,
    /// Element type.
    pub kind: ResultKind,
}

/// A result of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// int8 activations.
    Int8(DMatrix<i8>),
    /// Raw int32 logits.
    Raw(DMatrix<i32>),
}

impl Output {
    /// The int8 matrix, if this is one.
    pub fn as_int8(&self) -> Option<&DMatrix<i8>> {
        match self {
            Output::Int8(m) => Some(m),
            Output::Raw(_) => None,
        }
    }

    /// The int32 matrix, if this is one.
    pub fn as_raw(&self) -> Option<&DMatrix<i32>> {
        match self {
            Output::Raw(m) => Some(m),
            Output::Int8(_) => None,
        }
    }

    /// (rows, columns).
    pub fn shape(&self) -> (usize, usize) {
        match self {
            Output::Int8(m) => m.shape(),
            Output::Raw(m) => m.shape(),
        }
    }
}

/// What a run returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutput {
    /// Every result of the program, in [`Program::results`] order (for an MLP that was split,
    /// the intermediate activations read back, then the output).
    pub results: Vec<Output>,
    /// Index of the final output in `results`.
    pub output: usize,
    /// Every response, in order.
    pub responses: Vec<Response>,
    /// Words sent to the device by this run.
    pub words_sent: u64,
    /// Words received from the device by this run.
    pub words_received: u64,
}

impl RunOutput {
    /// The final output.
    pub fn output(&self) -> &Output {
        &self.results[self.output]
    }

    /// Take the final output.
    pub fn into_output(mut self) -> Output {
        self.results.swap_remove(self.output)
    }
}

/// Counts of what a program sends and receives (computed without running it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramStats {
    /// Commands sent.
    pub commands: usize,
    /// Words sent to the device (`WriteBack` steps included: their size is known).
    pub words_to_device: u64,
    /// Words the device answers when nothing goes wrong.
    pub words_from_device: u64,
    /// LOAD_WEIGHTS commands.
    pub weight_loads: usize,
    /// Rows pushed through the array by MATMULs.
    pub matmul_rows: u64,
    /// Multiply-accumulates (`matmul_rows × DIM²`, padding included).
    pub macs: u64,
    /// `WriteBack` steps: host round trips where the device waits for the host.
    pub write_backs: usize,
}

/// A program that cannot be run or exported as it is.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ProgramError {
    /// Its stream depends on results: export the transcript of a run instead.
    #[error(
        "step {step} writes back rows read earlier in the run, so the word stream exists only at run \
         time (record a run with driver::Recorder to get it)"
    )]
    DependsOnResults {
        /// The first `WriteBack` step.
        step: usize,
    },
    /// A command the device of the program's Config refuses.
    #[error("step {step}: the device would refuse it: {error}")]
    Refused {
        /// Step index.
        step: usize,
        /// What the device would answer.
        error: spec::CommandError,
    },
    /// A step inconsistent with the result matrices.
    #[error("step {step}: {what}")]
    BadStep {
        /// Step index.
        step: usize,
        /// What is wrong.
        what: String,
    },
    /// The output index is not a result.
    #[error("output {output} is not one of the {results} results")]
    BadOutput {
        /// The index.
        output: usize,
        /// How many results there are.
        results: usize,
    },
    /// The bytes of a `.bin` are not whole words.
    #[error("{0} bytes are not a whole number of 32-bit words")]
    Bytes(usize),
}

/// Reading or writing a program file.
#[derive(Debug, Error)]
pub enum ProgramFileError {
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// JSON syntax or content.
    #[error("{path}: not a protobrain program: {source}")]
    Json {
        /// The file.
        path: String,
        /// The error.
        source: serde_json::Error,
    },
    /// The program does not hold together.
    #[error("{path}: {source}")]
    Invalid {
        /// The file.
        path: String,
        /// The error.
        source: ProgramError,
    },
}

/// A compiled computation (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    /// The device it was compiled for; running it on another is refused.
    pub config: Config,
    /// The steps, in wire order.
    pub steps: Vec<Step>,
    /// Result matrices.
    pub results: Vec<ResultSpec>,
    /// Index of the final output in `results`.
    pub output: usize,
}

impl Program {
    /// The exact word stream sent to the device (the program's Config gives DIM). Fails for a
    /// program with `WriteBack` steps.
    pub fn words(&self) -> Result<Vec<u32>, ProgramError> {
        let dim = self.config.dim();
        let mut out = Vec::new();
        for (i, step) in self.steps.iter().enumerate() {
            let cmd = step.command().ok_or(ProgramError::DependsOnResults { step: i })?;
            cmd.encode_into(dim, &mut out)
                .map_err(|e| ProgramError::BadStep { step: i, what: e.to_string() })?;
        }
        Ok(out)
    }

    /// [`Program::words`] as bytes, 4 little-endian bytes a word (the `.bin` format, and what a
    /// UART carries).
    pub fn to_bin(&self) -> Result<Vec<u8>, ProgramError> {
        Ok(spec::isa::words_to_bytes(&self.words()?))
    }

    /// Words from a `.bin`.
    pub fn words_from_bin(bytes: &[u8]) -> Result<Vec<u32>, ProgramError> {
        if !bytes.len().is_multiple_of(4) {
            return Err(ProgramError::Bytes(bytes.len()));
        }
        Ok(spec::isa::bytes_to_words(bytes))
    }

    /// JSON with one step per line (each step compact: a WRITE_ACT's rows stay on its line),
    /// so a program's JSON grows like its word stream, not one line per number.
    pub fn to_json(&self) -> String {
        fn compact(v: &impl Serialize) -> String {
            serde_json::to_string(v).expect("a program always serialises")
        }
        let steps: Vec<String> = self.steps.iter().map(|s| format!("    {}", compact(s))).collect();
        format!(
            "{{\n  \"config\": {},\n  \"steps\": [\n{}\n  ],\n  \"results\": {},\n  \"output\": {}\n}}\n",
            compact(&self.config),
            steps.join(",\n"),
            compact(&self.results),
            self.output
        )
    }

    /// Parse and [`validate`](Program::validate) JSON.
    pub fn from_json(text: &str) -> Result<Self, ProgramFileError> {
        Program::parse(text, "<json>")
    }

    fn parse(text: &str, path: &str) -> Result<Self, ProgramFileError> {
        let p: Program = serde_json::from_str(text)
            .map_err(|source| ProgramFileError::Json { path: path.into(), source })?;
        p.validate().map_err(|source| ProgramFileError::Invalid { path: path.into(), source })?;
        Ok(p)
    }

    /// Write as JSON.
    pub fn save_json(&self, path: impl AsRef<Path>) -> Result<(), ProgramFileError> {
        let path = path.as_ref();
        std::fs::write(path, self.to_json())
            .map_err(|source| ProgramFileError::Io { path: path.display().to_string(), source })
    }

    /// Read JSON written by [`Program::save_json`] and validate it.
    pub fn load_json(path: impl AsRef<Path>) -> Result<Self, ProgramFileError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ProgramFileError::Io { path: name.clone(), source })?;
        Program::parse(&text, &name)
    }

    /// Write the word stream as a `.bin`.
    pub fn save_bin(&self, path: impl AsRef<Path>) -> Result<(), ProgramFileError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let bytes =
            self.to_bin().map_err(|source| ProgramFileError::Invalid { path: name.clone(), source })?;
        std::fs::write(path, bytes).map_err(|source| ProgramFileError::Io { path: name, source })
    }

    /// Check that the program holds together: every command is one the device of `config`
    /// accepts, every block is inside its result and matches its step, write-backs read int8
    /// results, the output exists. [`crate::Device::run`] runs this first.
    pub fn validate(&self) -> Result<(), ProgramError> {
        let cfg = &self.config;
        if self.output >= self.results.len() {
            return Err(ProgramError::BadOutput { output: self.output, results: self.results.len() });
        }
        // The results are allocated before the run: their sizes must be real. A result can
        // hold no more cells than the program's steps read into it (a compiled program covers
        // each exactly once), which bounds them by the program's own size.
        let mut result_cells: u128 = 0;
        for spec in &self.results {
            let cells = spec.rows.checked_mul(spec.cols).ok_or_else(|| ProgramError::BadStep {
                step: 0,
                what: format!("a result of {}x{} is too large", spec.rows, spec.cols),
            })?;
            result_cells += cells as u128;
        }
        let block_cells: u128 = self
            .steps
            .iter()
            .map(|s| match s {
                Step::ReadAct { to: b, .. } | Step::ReadAcc { to: b, .. } => {
                    (b.rows as u128) * (b.cols as u128)
                }
                _ => 0,
            })
            .sum();
        if result_cells > block_cells {
            return Err(ProgramError::BadStep {
                step: 0,
                what: format!(
                    "the results have {result_cells} elements but the program reads only {block_cells}"
                ),
            });
        }
        validate_results(&self.results)?;
        for (i, step) in self.steps.iter().enumerate() {
            validate_step(cfg, &self.results, i, step)?;
        }
        Ok(())
    }

    /// What the program sends and receives, counted without running it.
    pub fn stats(&self) -> ProgramStats {
        use spec::isa::opcode;
        let cfg = &self.config;
        let (dim, wpr) = (cfg.dim(), cfg.words_per_row());
        let mut s = ProgramStats { commands: self.steps.len(), ..ProgramStats::default() };
        for step in &self.steps {
            s.words_to_device += match step {
                Step::WriteBack { from, .. } => 2 + (from.rows * wpr) as u64,
                other => 1 + other.command().map_or(0, |c| c.payload_len(dim)) as u64,
            };
            s.words_from_device += step.response_words(cfg);
            match step {
                Step::Command(Command::Matmul { n, .. }) => s.matmul_rows += u64::from(*n),
                Step::WriteBack { .. } => s.write_backs += 1,
                _ => {}
            }
            if step.opcode() == opcode::LOAD_WEIGHTS {
                s.weight_loads += 1;
            }
        }
        s.macs = s.matmul_rows * cfg.macs_per_row();
        s
    }
}

/// The result matrices hold together: a raw result has one bias per column.
pub(crate) fn validate_results(results: &[ResultSpec]) -> Result<(), ProgramError> {
    for spec in results {
        if let ResultKind::Raw { bias } = &spec.kind {
            if bias.len() != spec.cols {
                return Err(ProgramError::BadStep {
                    step: 0,
                    what: format!("a raw result of {} columns has {} biases", spec.cols, bias.len()),
                });
            }
        }
    }
    Ok(())
}

/// Step `i` holds together with the results and the device of `cfg` (see [`Program::validate`]).
pub(crate) fn validate_step(
    cfg: &Config,
    results: &[ResultSpec],
    i: usize,
    step: &Step,
) -> Result<(), ProgramError> {
    let dim = cfg.dim();
    let bad = |what: String| ProgramError::BadStep { step: i, what };
    let check_block = |b: &Block, n: usize, int8: bool| -> Result<(), ProgramError> {
        let spec = results.get(b.result).ok_or_else(|| bad(format!("result {} does not exist", b.result)))?;
        if int8 != matches!(spec.kind, ResultKind::Int8) {
            return Err(bad(format!("result {} has the wrong element type for this step", b.result)));
        }
        if b.rows != n || b.cols > dim {
            return Err(bad(format!(
                "block of {}x{} does not match {n} device rows of DIM {dim}",
                b.rows, b.cols
            )));
        }
        let inside =
            |start: usize, len: usize, size: usize| start.checked_add(len).is_some_and(|e| e <= size);
        if !inside(b.row, b.rows, spec.rows) || !inside(b.col, b.cols, spec.cols) {
            return Err(bad(format!(
                "block rows {}..{}, columns {}..{} outside result {} ({}x{})",
                b.row,
                b.row as u128 + b.rows as u128,
                b.col,
                b.col as u128 + b.cols as u128,
                b.result,
                spec.rows,
                spec.cols
            )));
        }
        Ok(())
    };
    match step {
        Step::ReadAct { n, to, .. } => check_block(to, usize::from(*n), true)?,
        Step::ReadAcc { n, to, .. } => check_block(to, usize::from(*n), false)?,
        Step::WriteBack { dst, from } => {
            check_block(from, from.rows, true)?;
            if from.rows > usize::from(u16::MAX) {
                return Err(bad(format!("write-back of {} rows: at most 65535", from.rows)));
            }
            if usize::from(*dst) + from.rows > cfg.scratch_rows() {
                let error = spec::CommandError { opcode: step.opcode(), code: spec::ErrorCode::OutOfRange };
                return Err(ProgramError::Refused { step: i, error });
            }
        }
        Step::Command(_) => {}
    }
    let checked = match step {
        Step::Command(cmd) => cmd.check(cfg),
        other => other.command().map_or(Ok(()), |cmd| cmd.check(cfg)),
    };
    checked.map_err(|error| ProgramError::Refused { step: i, error })
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec::Quant;

    fn tiny() -> Program {
        let config = Config::new(2, 4, 4).unwrap();
        Program {
            config,
            steps: vec![
                Step::Command(Command::WriteAct { dst: 0, rows: vec![vec![1, -1]] }),
                Step::Command(Command::SetQuant(Quant::IDENTITY)),
                Step::ReadAct { src: 0, n: 1, to: Block { result: 0, row: 0, col: 0, rows: 1, cols: 1 } },
                Step::Command(Command::Sync { token: 7 }),
            ],
            results: vec![ResultSpec { rows: 1, cols: 1, kind: ResultKind::Int8 }],
            output: 0,
        }
    }

    #[test]
    fn json_round_trips_and_reads_like_the_isa() {
        let p = tiny();
        let json = p.to_json();
        assert!(json.contains("\"write_act\""), "{json}");
        assert!(json.contains("\"set_quant\""), "{json}");
        // one line per step, plus the frame
        assert_eq!(json.lines().count(), p.steps.len() + 7, "{json}");
        assert!(
            json.contains("\n    {\"command\":{\"write_act\":{\"dst\":0,\"rows\":[[1,-1]]}}},\n"),
            "{json}"
        );
        let empty = Program { steps: vec![], ..p.clone() };
        assert!(Program::from_json(&empty.to_json()).unwrap_err().to_string().contains("elements"));
        assert_eq!(Program::from_json(&json).unwrap(), p);
    }

    #[test]
    fn words_are_the_encoded_commands_and_bin_is_little_endian() {
        let p = tiny();
        let words = p.words().unwrap();
        assert_eq!(
            words,
            vec![
                0x2000_0002,
                0x0001_0000,
                0x0000_FF01,
                0x1200_0001,
                0x0000_0001,
                0x2100_0001,
                0x0001_0000,
                0x0200_0001,
                7
            ]
        );
        let bin = p.to_bin().unwrap();
        assert_eq!(&bin[..8], &[2, 0, 0, 0x20, 0, 0, 1, 0]);
        assert_eq!(Program::words_from_bin(&bin).unwrap(), words);
        assert_eq!(Program::words_from_bin(&bin[..5]).unwrap_err(), ProgramError::Bytes(5));
        let s = p.stats();
        assert_eq!(s.words_to_device, words.len() as u64);
        assert_eq!(s.words_from_device, 2 + 2);
        assert_eq!(s.commands, 4);
    }

    #[test]
    fn write_backs_have_no_static_stream() {
        let mut p = tiny();
        p.steps.insert(
            3,
            Step::WriteBack { dst: 1, from: Block { result: 0, row: 0, col: 0, rows: 1, cols: 1 } },
        );
        p.validate().unwrap();
        assert_eq!(p.words().unwrap_err(), ProgramError::DependsOnResults { step: 3 });
        assert!(p.words().unwrap_err().to_string().contains("record a run with driver::Recorder"));
        assert_eq!(p.stats().write_backs, 1);
        assert_eq!(p.stats().words_to_device, 9 + 3);
    }

    #[test]
    fn validate_names_the_bad_step() {
        let mut p = tiny();
        p.steps[2] =
            Step::ReadAct { src: 0, n: 1, to: Block { result: 0, row: 1, col: 0, rows: 1, cols: 1 } };
        assert_eq!(
            p.validate().unwrap_err().to_string(),
            "step 2: block rows 1..2, columns 0..1 outside result 0 (1x1)"
        );
        let mut p = tiny();
        p.steps[0] = Step::Command(Command::Matmul { src: 3, n: 2, dst: 0, accumulate: false });
        assert_eq!(
            p.validate().unwrap_err().to_string(),
            "step 0: the device would refuse it: out of range (code 3) for opcode 0x30"
        );
        let mut p = tiny();
        p.steps[2] =
            Step::ReadAcc { src: 0, n: 1, to: Block { result: 0, row: 0, col: 0, rows: 1, cols: 1 } };
        assert!(p.validate().unwrap_err().to_string().contains("wrong element type"));
        let mut p = tiny();
        p.output = 3;
        assert_eq!(p.validate().unwrap_err().to_string(), "output 3 is not one of the 1 results");
        // a corrupted JSON file is refused with the reason
        let mut p = tiny();
        p.steps[0] = Step::Command(Command::WriteAct { dst: 4, rows: vec![vec![0, 0]] });
        let e = Program::from_json(&serde_json::to_string(&p).unwrap()).unwrap_err();
        assert!(e.to_string().contains("out of range"), "{e}");
    }

    #[test]
    fn hostile_sizes_are_refused_before_anything_is_allocated() {
        // a 2^32 x 2^32 result: its cell count wraps in 64 bits
        let mut p = tiny();
        p.results[0].rows = 1 << 32;
        p.results[0].cols = 1 << 32;
        assert!(p.validate().unwrap_err().to_string().contains("too large"));
        // a large result that nothing fills
        let mut p = tiny();
        p.results[0].rows = 1 << 30;
        assert_eq!(
            p.validate().unwrap_err().to_string(),
            "step 0: the results have 1073741824 elements but the program reads only 1"
        );
        // a block whose row offset wraps
        let mut p = tiny();
        p.steps[2] = Step::ReadAct {
            src: 0,
            n: 1,
            to: Block { result: 0, row: usize::MAX, col: 0, rows: 1, cols: 1 },
        };
        assert!(p.validate().unwrap_err().to_string().contains("outside result 0"));
        let json = serde_json::to_string(&p).unwrap();
        assert!(Program::from_json(&json).is_err());
    }
}
