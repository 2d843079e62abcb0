//! The command stream: 32-bit words in, 32-bit words out (DESIGN.md "Command stream").
//!
//! ```text
//!  31      24 23                                 0
//! +----------+-----------------------------------+
//! |  opcode  |  payload words that follow (len)  |   header, then `len` payload words
//! +----------+-----------------------------------+
//! ```
//!
//! Responses use the same framing with opcode `cmd | 0x80`; errors answer `0xFF` with one word
//! `code | opcode << 8`. int8 elements pack four to a word, little-endian; a row of DIM int8 is
//! `ceil(DIM/4)` words with unused high bytes zero.
//!
//! [`Command::encode`] / [`CommandDecoder`] and [`Response::encode`] / [`ResponseDecoder`] are
//! exact inverses. The decoders are streaming (one word at a time), never panic and never
//! allocate ahead of the words they have seen, whatever the input.

use crate::arith::{ColumnScale, Quant, MAX_SHIFT};
use crate::config::{Config, VERSION};
use thiserror::Error;

/// Opcodes of commands (and, with [`RESPONSE_BIT`], of responses).
pub mod opcode {
    pub const INFO: u8 = 0x01;
    pub const SYNC: u8 = 0x02;
    pub const LOAD_WEIGHTS: u8 = 0x10;
    pub const LOAD_BIAS: u8 = 0x11;
    pub const SET_QUANT: u8 = 0x12;
    /// Contract v2: per-column M[n], S[n].
    pub const LOAD_QUANT: u8 = 0x13;
    /// Resident weights (issue 13): the shadow tile from DIM scratchpad rows.
    pub const LOAD_TILE: u8 = 0x14;
    pub const WRITE_ACT: u8 = 0x20;
    pub const READ_ACT: u8 = 0x21;
    pub const MATMUL: u8 = 0x30;
    pub const ACTIVATE: u8 = 0x31;
    pub const READ_ACC: u8 = 0x32;
    pub const COUNTERS: u8 = 0x40;
    /// The error response.
    pub const ERROR: u8 = 0xFF;
    /// Every command opcode, in table order.
    pub const ALL: [u8; 13] = [
        INFO,
        SYNC,
        LOAD_WEIGHTS,
        LOAD_BIAS,
        SET_QUANT,
        LOAD_QUANT,
        LOAD_TILE,
        WRITE_ACT,
        READ_ACT,
        MATMUL,
        ACTIVATE,
        READ_ACC,
        COUNTERS,
    ];
}

/// Set in a response's opcode: response opcode = command opcode | 0x80.
pub const RESPONSE_BIT: u8 = 0x80;
/// Largest payload length a header can carry (24 bits).
pub const MAX_LEN: u32 = 0x00FF_FFFF;

// The longest response the contract allows, READ_ACC of 65535 rows at DIM = MAX_DIM
// (0xFFFF00 words), fits the 24-bit length: the RTL ORs the 16x16-bit product n·DIM into the
// header without a check, so a larger MAX_DIM must come with a rule for it first.
const _: () = assert!(0xFFFF * crate::config::MAX_DIM as u64 <= MAX_LEN as u64);
/// Payload words of the COUNTERS response.
pub const COUNTER_WORDS: usize = 9;
/// Over a UART (the board tops), a line held low for this many bit times is a BREAK: it resets
/// the bridge and the core, whatever state the word stream is in (docs/design.md "Link
/// recovery"). A byte frame is low for at most 9 bit times in a row.
pub const BREAK_BIT_TIMES: usize = 20;
/// Indices of COUNTERS payload words that depend on timing (cycles, stalls); the untimed golden
/// device answers 0 there. See [`Counters`].
pub const TIMED_COUNTER_WORDS: [usize; 5] = [0, 1, 4, 5, 6];

/// A header word.
#[inline]
pub fn header(op: u8, len: u32) -> u32 {
    debug_assert!(len <= MAX_LEN);
    (u32::from(op) << 24) | (len & MAX_LEN)
}

/// Split a header word into (opcode, payload length).
#[inline]
pub fn split_header(word: u32) -> (u8, u32) {
    ((word >> 24) as u8, word & MAX_LEN)
}

/// Append one int8 row as `ceil(len/4)` little-endian words.
pub fn pack_row(row: &[i8], out: &mut Vec<u32>) {
    let word = |b: [i8; 4]| u32::from_le_bytes(b.map(|v| v as u8));
    let mut whole = row.chunks_exact(4);
    out.extend(whole.by_ref().map(|c| word([c[0], c[1], c[2], c[3]])));
    let rest = whole.remainder();
    if !rest.is_empty() {
        let mut b = [0i8; 4];
        b[..rest.len()].copy_from_slice(rest);
        out.push(word(b));
    }
}

/// Unpack `dim` int8 elements from `ceil(dim/4)` words.
pub fn unpack_row(words: &[u32], dim: usize) -> Vec<i8> {
    (0..dim).map(|i| (words[i / 4] >> (8 * (i % 4))) as u8 as i8).collect()
}

/// The bytes of a word stream in order, each word little-endian: what the UART link carries
/// and the `.bin` program format.
pub fn words_to_bytes(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// A word stream from its bytes ([`words_to_bytes`] backwards).
///
/// # Panics
/// If `bytes.len()` is not a multiple of 4.
pub fn bytes_to_words(bytes: &[u8]) -> Vec<u32> {
    assert!(bytes.len().is_multiple_of(4), "{} bytes are not whole words", bytes.len());
    bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

/// Error codes of the 0xFF response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// The opcode is not a command.
    UnknownOpcode = 1,
    /// The header's length does not match the opcode (and, for WRITE_ACT, its row count).
    BadLength = 2,
    /// A row range past the end of a memory (`start + n > ROWS`) or a shift > 47 (SET_QUANT,
    /// any column of LOAD_QUANT).
    OutOfRange = 3,
}

impl ErrorCode {
    /// The code for a byte, if it is one.
    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(ErrorCode::UnknownOpcode),
            2 => Some(ErrorCode::BadLength),
            3 => Some(ErrorCode::OutOfRange),
            _ => None,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorCode::UnknownOpcode => "unknown opcode",
            ErrorCode::BadLength => "bad length",
            ErrorCode::OutOfRange => "out of range",
        })
    }
}

/// A command the device refused: it was skipped whole and answered with 0xFF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Error)]
#[error("{code} (code {}) for opcode {opcode:#04x}", *code as u8)]
pub struct CommandError {
    pub opcode: u8,
    pub code: ErrorCode,
}

impl CommandError {
    /// The 0xFF payload word: bits 7:0 code, 15:8 opcode.
    pub fn to_word(&self) -> u32 {
        u32::from(self.code as u8) | (u32::from(self.opcode) << 8)
    }
}

/// A command of the ISA. Row addresses and counts are 16-bit as in the encoding; whether they
/// fit a given [`Config`] is checked by [`Command::check`] (and by the device). Serialised
/// (the `.json` program format) with snake_case variant names: `{"matmul": {"src": 0, ...}}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// 0x01: answer version, DIM, SCRATCH_ROWS, ACC_ROWS.
    Info,
    /// 0x02: answer `token` once every earlier command has completed.
    Sync { token: u32 },
    /// 0x10: fill the shadow weight tile; `weights[k * dim + n]` is W[k][n].
    LoadWeights { weights: Vec<i8> },
    /// 0x11: DIM int32 biases, one per output column.
    LoadBias { bias: Vec<i32> },
    /// 0x12, one payload word: requantisation for ACTIVATE: every column's M and S, ReLU, and
    /// the output zero point Z = 0.
    SetQuant(Quant),
    /// 0x12, two payload words (contract v2): as [`Command::SetQuant`], then Z.
    SetQuantZp { quant: Quant, zero_point: i8 },
    /// 0x13 (contract v2): DIM words, the columns' M[n], S[n]; ReLU and Z are left as they are.
    LoadQuant { scales: Vec<ColumnScale> },
    /// 0x14 (resident weights): fill the shadow weight tile from scratchpad rows `src ..
    /// src + DIM` (row `k` of the tile, W[k][0..DIM], is scratchpad row `src + k`), as
    /// [`Command::LoadWeights`] does from the stream. Tiles stored once with WRITE_ACT stay
    /// on chip.
    LoadTile { src: u16 },
    /// 0x20: write rows of DIM int8 into the scratchpad from `dst`.
    WriteAct { dst: u16, rows: Vec<Vec<i8>> },
    /// 0x21: read `n` scratchpad rows from `src`.
    ReadAct { src: u16, n: u16 },
    /// 0x30: acc[dst + i] (= or +=) scratch[src + i] x W for i in 0..n.
    Matmul { src: u16, n: u16, dst: u16, accumulate: bool },
    /// 0x31: scratch[dst + i] = act(acc[src + i] + bias) for i in 0..n.
    Activate { src: u16, n: u16, dst: u16 },
    /// 0x32: read `n` accumulator rows (raw int32, no bias) from `src`.
    ReadAcc { src: u16, n: u16 },
    /// 0x40: answer the performance counters.
    Counters,
}

/// A [`Command`] that cannot be encoded as given.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("{what}: expected {expected} elements for DIM {dim}, got {got}")]
    Size { what: &'static str, dim: usize, expected: usize, got: usize },
    #[error("WRITE_ACT of {0} rows: at most 65535 rows per command")]
    TooManyRows(usize),
    #[error("payload of {0} words exceeds the 24-bit length field")]
    TooLong(usize),
}

impl Command {
    /// The opcode of this command.
    pub fn opcode(&self) -> u8 {
        use opcode::*;
        match self {
            Command::Info => INFO,
            Command::Sync { .. } => SYNC,
            Command::LoadWeights { .. } => LOAD_WEIGHTS,
            Command::LoadBias { .. } => LOAD_BIAS,
            Command::SetQuant(_) | Command::SetQuantZp { .. } => SET_QUANT,
            Command::LoadQuant { .. } => LOAD_QUANT,
            Command::LoadTile { .. } => LOAD_TILE,
            Command::WriteAct { .. } => WRITE_ACT,
            Command::ReadAct { .. } => READ_ACT,
            Command::Matmul { .. } => MATMUL,
            Command::Activate { .. } => ACTIVATE,
            Command::ReadAcc { .. } => READ_ACC,
            Command::Counters => COUNTERS,
        }
    }

    /// The payload length this command's header carries for `dim`.
    pub fn payload_len(&self, dim: usize) -> usize {
        let wpr = dim.div_ceil(4);
        match self {
            Command::Info | Command::Counters => 0,
            Command::Sync { .. } | Command::SetQuant(_) => 1,
            Command::SetQuantZp { .. } => 2,
            Command::LoadQuant { .. } => dim,
            Command::ReadAct { .. } | Command::ReadAcc { .. } | Command::LoadTile { .. } => 1,
            Command::Matmul { .. } | Command::Activate { .. } => 2,
            Command::LoadWeights { .. } => dim * wpr,
            Command::LoadBias { .. } => dim,
            Command::WriteAct { rows, .. } => 1 + rows.len() * wpr,
        }
    }

    /// Encode for an array of `dim` columns, header included.
    pub fn encode(&self, dim: usize) -> Result<Vec<u32>, EncodeError> {
        let mut out = Vec::new();
        self.encode_into(dim, &mut out)?;
        Ok(out)
    }

    /// Append the encoding for an array of `dim` columns to `out`.
    pub fn encode_into(&self, dim: usize, out: &mut Vec<u32>) -> Result<(), EncodeError> {
        self.check_sizes(dim)?;
        let len = self.payload_len(dim);
        if len > MAX_LEN as usize {
            return Err(EncodeError::TooLong(len));
        }
        out.reserve(len + 1);
        out.push(header(self.opcode(), len as u32));
        match self {
            Command::Info | Command::Counters => {}
            Command::Sync { token } => out.push(*token),
            Command::LoadWeights { weights } => weights.chunks(dim).for_each(|r| pack_row(r, out)),
            Command::LoadBias { bias } => out.extend(bias.iter().map(|&b| b as u32)),
            Command::SetQuant(q) => out.push(q.to_word()),
            Command::SetQuantZp { quant, zero_point } => {
                out.push(quant.to_word());
                out.push(u32::from(*zero_point as u8));
            }
            Command::LoadQuant { scales } => out.extend(scales.iter().map(ColumnScale::to_word)),
            Command::WriteAct { dst, rows } => {
                out.push(range_word(*dst, rows.len() as u16));
                rows.iter().for_each(|r| pack_row(r, out));
            }
            Command::ReadAct { src, n } | Command::ReadAcc { src, n } => out.push(range_word(*src, *n)),
            Command::LoadTile { src } => out.push(u32::from(*src)),
            Command::Matmul { src, n, dst, accumulate } => {
                out.push(range_word(*src, *n));
                out.push(u32::from(*dst) | (u32::from(*accumulate) << 16));
            }
            Command::Activate { src, n, dst } => {
                out.push(range_word(*src, *n));
                out.push(u32::from(*dst));
            }
        }
        Ok(())
    }

    fn check_sizes(&self, dim: usize) -> Result<(), EncodeError> {
        let size = |what, expected, got| {
            if expected == got {
                Ok(())
            } else {
                Err(EncodeError::Size { what, dim, expected, got })
            }
        };
        match self {
            Command::LoadWeights { weights } => size("LOAD_WEIGHTS", dim * dim, weights.len()),
            Command::LoadBias { bias } => size("LOAD_BIAS", dim, bias.len()),
            Command::LoadQuant { scales } => size("LOAD_QUANT", dim, scales.len()),
            Command::WriteAct { rows, .. } => {
                if rows.len() > usize::from(u16::MAX) {
                    return Err(EncodeError::TooManyRows(rows.len()));
                }
                rows.iter().try_for_each(|r| size("WRITE_ACT row", dim, r.len()))
            }
            _ => Ok(()),
        }
    }

    /// Whether the device of `cfg` accepts this command: payload sizes (else
    /// [`ErrorCode::BadLength`]) and row ranges (else [`ErrorCode::OutOfRange`]).
    pub fn check(&self, cfg: &Config) -> Result<(), CommandError> {
        let err = |code| CommandError { opcode: self.opcode(), code };
        if self.check_sizes(cfg.dim()).is_err() {
            return Err(err(ErrorCode::BadLength));
        }
        let op = self.opcode();
        let fit = |a: u16, n: usize, b: u16| ranges_fit(op, a.into(), n, b.into(), cfg);
        let ok = match self {
            Command::WriteAct { dst, rows } => fit(*dst, rows.len(), 0),
            Command::ReadAct { src, n } | Command::ReadAcc { src, n } => fit(*src, (*n).into(), 0),
            Command::Matmul { src, n, dst, .. } | Command::Activate { src, n, dst } => {
                fit(*src, (*n).into(), *dst)
            }
            Command::LoadTile { src } => fit(*src, 0, 0),
            Command::SetQuant(q) | Command::SetQuantZp { quant: q, .. } => q.shift <= MAX_SHIFT,
            Command::LoadQuant { scales } => scales.iter().all(|c| c.shift <= MAX_SHIFT),
            _ => true,
        };
        if ok {
            Ok(())
        } else {
            Err(err(ErrorCode::OutOfRange))
        }
    }
}

/// Whether the row ranges of a command with opcode `op` fit their memories (else the device
/// answers [`ErrorCode::OutOfRange`]), with wide arithmetic: range A is `n` rows from row `a`,
/// range B `n` rows from row `b` (payload word 0's first row and count, word 1's first row).
/// WRITE_ACT and READ_ACT read or write scratchpad range A, READ_ACC accumulator range A,
/// MATMUL reads scratchpad range A into accumulator range B, ACTIVATE accumulator range A into
/// scratchpad range B, LOAD_TILE reads DIM scratchpad rows from `a` (`n` unused). The one
/// rule of [`Command::check`], the native model's Exec state and the RTL's `RangeCheck`.
pub fn ranges_fit(op: u8, a: usize, n: usize, b: usize, cfg: &Config) -> bool {
    let (s, acc) = (cfg.scratch_rows(), cfg.acc_rows());
    let fits = |start: usize, rows: usize| start + n <= rows;
    match op {
        opcode::WRITE_ACT | opcode::READ_ACT => fits(a, s),
        opcode::READ_ACC => fits(a, acc),
        opcode::MATMUL => fits(a, s) && fits(b, acc),
        opcode::ACTIVATE => fits(a, acc) && fits(b, s),
        opcode::LOAD_TILE => a + cfg.dim() <= s,
        _ => true,
    }
}

fn range_word(start: u16, n: u16) -> u32 {
    u32::from(start) | (u32::from(n) << 16)
}

fn split_range(word: u32) -> (u16, u16) {
    (word as u16, (word >> 16) as u16)
}

/// What the header says about the payload of an opcode.
enum Shape {
    Fixed(u32),
    /// WRITE_ACT: 1 + n * words_per_row, n in the first payload word.
    WriteAct,
    /// SET_QUANT: 1 or 2 words.
    SetQuant,
    Unknown,
}

fn command_shape(op: u8, cfg: &Config) -> Shape {
    use opcode::*;
    let d = cfg.dim() as u32;
    let wpr = cfg.words_per_row() as u32;
    match op {
        INFO | COUNTERS => Shape::Fixed(0),
        SYNC | READ_ACT | READ_ACC | LOAD_TILE => Shape::Fixed(1),
        SET_QUANT => Shape::SetQuant,
        MATMUL | ACTIVATE => Shape::Fixed(2),
        LOAD_WEIGHTS => Shape::Fixed(d * wpr),
        LOAD_BIAS | LOAD_QUANT => Shape::Fixed(d),
        WRITE_ACT => Shape::WriteAct,
        _ => Shape::Unknown,
    }
}

/// The header check every decoder of the command stream makes (the golden [`CommandDecoder`],
/// the native model's front end, the RTL's `HeaderDecoder`): the opcode must be a command
/// (else [`ErrorCode::UnknownOpcode`]) and `len` a length it takes for this DIM (else
/// [`ErrorCode::BadLength`]): its fixed length, 1 or 2 for SET_QUANT, anything but 0 for
/// WRITE_ACT (whose row count is checked against `len` once payload word 0 is in).
pub fn check_header(op: u8, len: u32, cfg: &Config) -> Result<(), ErrorCode> {
    match command_shape(op, cfg) {
        Shape::Unknown => Err(ErrorCode::UnknownOpcode),
        Shape::Fixed(n) if n != len => Err(ErrorCode::BadLength),
        Shape::WriteAct if len == 0 => Err(ErrorCode::BadLength),
        Shape::SetQuant if len != 1 && len != 2 => Err(ErrorCode::BadLength),
        _ => Ok(()),
    }
}

#[derive(Debug, Clone)]
enum DecodeState {
    Header,
    /// Collecting `len` payload words of a well-formed header.
    Collect {
        op: u8,
        len: u32,
        payload: Vec<u32>,
    },
    /// Consuming `remaining` words of a command that will be answered with `err`.
    Skip {
        remaining: u32,
        err: CommandError,
    },
}

/// Streaming decoder of the command stream for one [`Config`], exactly as the hardware parses
/// it: feed words with [`CommandDecoder::push`]; after the last word of each command it yields
/// the command, or the error the device answers (having consumed the whole bad command).
///
/// Checks, in order: unknown opcode (code 1) — length against the opcode (SET_QUANT: 1 or 2),
/// for WRITE_ACT against `1 + n * ceil(DIM/4)` once `n` is read (code 2) — row ranges and
/// shifts (any S > 47 of SET_QUANT or LOAD_QUANT; code 3), once the whole payload is in.
#[derive(Debug, Clone)]
pub struct CommandDecoder {
    cfg: Config,
    state: DecodeState,
}

impl CommandDecoder {
    /// A decoder waiting for a header.
    pub fn new(cfg: Config) -> Self {
        CommandDecoder { cfg, state: DecodeState::Header }
    }

    /// True between commands (the next word is a header).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, DecodeState::Header)
    }

    /// Feed one word; returns the command (or its error) when its last word arrives.
    pub fn push(&mut self, word: u32) -> Option<Result<Command, CommandError>> {
        match std::mem::replace(&mut self.state, DecodeState::Header) {
            DecodeState::Header => {
                let (op, len) = split_header(word);
                let skip = |code| {
                    let err = CommandError { opcode: op, code };
                    if len == 0 {
                        (DecodeState::Header, Some(Err(err)))
                    } else {
                        (DecodeState::Skip { remaining: len, err }, None)
                    }
                };
                let (state, out) = match check_header(op, len, &self.cfg) {
                    Err(code) => skip(code),
                    Ok(()) if len == 0 => (DecodeState::Header, Some(self.finish(op, &[]))),
                    Ok(()) => (DecodeState::Collect { op, len, payload: Vec::new() }, None),
                };
                self.state = state;
                out
            }
            DecodeState::Skip { remaining, err } => {
                if remaining == 1 {
                    Some(Err(err))
                } else {
                    self.state = DecodeState::Skip { remaining: remaining - 1, err };
                    None
                }
            }
            DecodeState::Collect { op, len, mut payload } => {
                payload.push(word);
                if op == opcode::WRITE_ACT && payload.len() == 1 {
                    let n = u64::from(word >> 16);
                    if u64::from(len) != 1 + n * self.cfg.words_per_row() as u64 {
                        let err = CommandError { opcode: op, code: ErrorCode::BadLength };
                        if len == 1 {
                            return Some(Err(err));
                        }
                        self.state = DecodeState::Skip { remaining: len - 1, err };
                        return None;
                    }
                }
                if payload.len() as u32 == len {
                    Some(self.finish(op, &payload))
                } else {
                    self.state = DecodeState::Collect { op, len, payload };
                    None
                }
            }
        }
    }

    /// Build the command from a complete, length-checked payload and range-check it.
    fn finish(&self, op: u8, p: &[u32]) -> Result<Command, CommandError> {
        use opcode::*;
        let dim = self.cfg.dim();
        let wpr = self.cfg.words_per_row();
        let cmd = match op {
            INFO => Command::Info,
            COUNTERS => Command::Counters,
            SYNC => Command::Sync { token: p[0] },
            LOAD_WEIGHTS => {
                Command::LoadWeights { weights: p.chunks(wpr).flat_map(|r| unpack_row(r, dim)).collect() }
            }
            LOAD_BIAS => Command::LoadBias { bias: p.iter().map(|&w| w as i32).collect() },
            SET_QUANT => match (Quant::from_word(p[0]), p.get(1)) {
                (Ok(q), None) => Command::SetQuant(q),
                (Ok(quant), Some(&z)) => Command::SetQuantZp { quant, zero_point: z as u8 as i8 },
                (Err(_), _) => return Err(CommandError { opcode: op, code: ErrorCode::OutOfRange }),
            },
            LOAD_QUANT => match p.iter().map(|&w| ColumnScale::from_word(w)).collect() {
                Ok(scales) => Command::LoadQuant { scales },
                Err(_) => return Err(CommandError { opcode: op, code: ErrorCode::OutOfRange }),
            },
            WRITE_ACT => Command::WriteAct {
                dst: split_range(p[0]).0,
                rows: p[1..].chunks(wpr).map(|r| unpack_row(r, dim)).collect(),
            },
            LOAD_TILE => Command::LoadTile { src: p[0] as u16 },
            READ_ACT | READ_ACC => {
                let (src, n) = split_range(p[0]);
                if op == READ_ACT {
                    Command::ReadAct { src, n }
                } else {
                    Command::ReadAcc { src, n }
                }
            }
            MATMUL => {
                let (src, n) = split_range(p[0]);
                Command::Matmul { src, n, dst: p[1] as u16, accumulate: (p[1] >> 16) & 1 == 1 }
            }
            ACTIVATE => {
                let (src, n) = split_range(p[0]);
                Command::Activate { src, n, dst: p[1] as u16 }
            }
            _ => unreachable!("finish is only called for known opcodes"),
        };
        cmd.check(&self.cfg)?;
        Ok(cmd)
    }
}

/// Performance counters (the COUNTERS payload, [`COUNTER_WORDS`] words):
///
/// | word | counter | timed |
/// |---|---|---|
/// | 0, 1 | `cycles`: clock cycles since reset (low, high) | yes |
/// | 2, 3 | `macs`: multiply-accumulates issued (rows × DIM²) (low, high) | no |
/// | 4 | `array_busy_cycles`: cycles with a MATMUL row issued or in flight in the array | yes |
/// | 5 | `in_stall_cycles`: cycles the core was ready for input and none came | yes |
/// | 6 | `out_stall_cycles`: cycles an output word waited for `out_ready` | yes |
/// | 7 | `commands`: commands completed before this one (errors included) | no |
/// | 8 | `errors`: 0xFF responses sent | no |
///
/// The untimed golden device answers 0 in the timed words.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub cycles: u64,
    pub macs: u64,
    pub array_busy_cycles: u32,
    pub in_stall_cycles: u32,
    pub out_stall_cycles: u32,
    pub commands: u32,
    pub errors: u32,
}

impl Counters {
    /// The payload words.
    pub fn to_words(&self) -> [u32; COUNTER_WORDS] {
        [
            self.cycles as u32,
            (self.cycles >> 32) as u32,
            self.macs as u32,
            (self.macs >> 32) as u32,
            self.array_busy_cycles,
            self.in_stall_cycles,
            self.out_stall_cycles,
            self.commands,
            self.errors,
        ]
    }

    /// From the payload words.
    pub fn from_words(w: &[u32; COUNTER_WORDS]) -> Self {
        Counters {
            cycles: u64::from(w[0]) | (u64::from(w[1]) << 32),
            macs: u64::from(w[2]) | (u64::from(w[3]) << 32),
            array_busy_cycles: w[4],
            in_stall_cycles: w[5],
            out_stall_cycles: w[6],
            commands: w[7],
            errors: w[8],
        }
    }
}

/// A response of the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// 0x81
    Info { version: u32, dim: u32, scratch_rows: u32, acc_rows: u32 },
    /// 0x82
    Sync { token: u32 },
    /// 0xA1: rows of DIM int8.
    ReadAct { rows: Vec<Vec<i8>> },
    /// 0xB2: rows of DIM int32.
    ReadAcc { rows: Vec<Vec<i32>> },
    /// 0xC0
    Counters(Counters),
    /// 0xFF
    Error(CommandError),
}

impl Response {
    /// The INFO response of a configuration.
    pub fn info(cfg: &Config) -> Self {
        Response::Info {
            version: VERSION,
            dim: cfg.dim() as u32,
            scratch_rows: cfg.scratch_rows() as u32,
            acc_rows: cfg.acc_rows() as u32,
        }
    }

    /// The opcode of this response.
    pub fn opcode(&self) -> u8 {
        use opcode::*;
        match self {
            Response::Info { .. } => INFO | RESPONSE_BIT,
            Response::Sync { .. } => SYNC | RESPONSE_BIT,
            Response::ReadAct { .. } => READ_ACT | RESPONSE_BIT,
            Response::ReadAcc { .. } => READ_ACC | RESPONSE_BIT,
            Response::Counters(_) => COUNTERS | RESPONSE_BIT,
            Response::Error(_) => ERROR,
        }
    }

    /// Append the encoding (header included) to `out`; rows must have `dim` elements.
    pub fn encode_into(&self, dim: usize, out: &mut Vec<u32>) {
        let start = out.len();
        out.push(0);
        match self {
            Response::Info { version, dim, scratch_rows, acc_rows } => {
                out.extend([*version, *dim, *scratch_rows, *acc_rows])
            }
            Response::Sync { token } => out.push(*token),
            Response::ReadAct { rows } => rows.iter().for_each(|r| {
                debug_assert_eq!(r.len(), dim);
                pack_row(r, out)
            }),
            Response::ReadAcc { rows } => rows.iter().for_each(|r| {
                debug_assert_eq!(r.len(), dim);
                out.extend(r.iter().map(|&v| v as u32))
            }),
            Response::Counters(c) => out.extend(c.to_words()),
            Response::Error(e) => out.push(e.to_word()),
        }
        out[start] = header(self.opcode(), (out.len() - start - 1) as u32);
    }

    /// The encoding, header included.
    pub fn encode(&self, dim: usize) -> Vec<u32> {
        let mut out = Vec::new();
        self.encode_into(dim, &mut out);
        out
    }
}

/// A response stream that does not follow the protocol.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ResponseError {
    #[error("unknown response opcode {0:#04x}")]
    UnknownOpcode(u8),
    #[error("response {opcode:#04x} with {len} payload words, expected {expected}")]
    BadLength { opcode: u8, len: u32, expected: String },
    #[error("error response with unknown code {code} for opcode {opcode:#04x}")]
    BadErrorCode { opcode: u8, code: u8 },
    #[error("the stream ends inside a response")]
    Truncated,
}

/// Streaming decoder of the response stream for an array of `dim` columns. Malformed
/// responses are consumed whole and reported as [`ResponseError`]; it never panics.
#[derive(Debug, Clone)]
pub struct ResponseDecoder {
    dim: usize,
    state: RespState,
}

#[derive(Debug, Clone)]
enum RespState {
    Header,
    Collect { op: u8, len: u32, payload: Vec<u32> },
    Skip { remaining: u32, err: ResponseError },
}

impl ResponseDecoder {
    /// A decoder for an array of `dim` columns.
    pub fn new(dim: usize) -> Self {
        ResponseDecoder { dim, state: RespState::Header }
    }

    /// True between responses.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, RespState::Header)
    }

    fn expected_len(&self, op: u8, len: u32) -> Result<(), ResponseError> {
        use opcode::*;
        let wpr = self.dim.div_ceil(4) as u32;
        let bad = |expected: String| Err(ResponseError::BadLength { opcode: op, len, expected });
        let fixed = |n: u32| if len == n { Ok(()) } else { bad(n.to_string()) };
        match op {
            x if x == INFO | RESPONSE_BIT => fixed(4),
            x if x == SYNC | RESPONSE_BIT => fixed(1),
            x if x == COUNTERS | RESPONSE_BIT => fixed(COUNTER_WORDS as u32),
            ERROR => fixed(1),
            x if x == READ_ACT | RESPONSE_BIT => {
                if len.is_multiple_of(wpr) {
                    Ok(())
                } else {
                    bad(format!("a multiple of {wpr}"))
                }
            }
            x if x == READ_ACC | RESPONSE_BIT => {
                if len.is_multiple_of(self.dim as u32) {
                    Ok(())
                } else {
                    bad(format!("a multiple of {}", self.dim))
                }
            }
            _ => Err(ResponseError::UnknownOpcode(op)),
        }
    }

    /// Feed one word; returns a response (or what was wrong with it) after its last word.
    pub fn push(&mut self, word: u32) -> Option<Result<Response, ResponseError>> {
        match std::mem::replace(&mut self.state, RespState::Header) {
            RespState::Header => {
                let (op, len) = split_header(word);
                match self.expected_len(op, len) {
                    Err(err) if len == 0 => Some(Err(err)),
                    Err(err) => {
                        self.state = RespState::Skip { remaining: len, err };
                        None
                    }
                    Ok(()) if len == 0 => Some(self.finish(op, &[])),
                    Ok(()) => {
                        self.state = RespState::Collect { op, len, payload: Vec::new() };
                        None
                    }
                }
            }
            RespState::Skip { remaining, err } => {
                if remaining == 1 {
                    Some(Err(err))
                } else {
                    self.state = RespState::Skip { remaining: remaining - 1, err };
                    None
                }
            }
            RespState::Collect { op, len, mut payload } => {
                payload.push(word);
                if payload.len() as u32 == len {
                    Some(self.finish(op, &payload))
                } else {
                    self.state = RespState::Collect { op, len, payload };
                    None
                }
            }
        }
    }

    fn finish(&self, op: u8, p: &[u32]) -> Result<Response, ResponseError> {
        use opcode::*;
        let dim = self.dim;
        Ok(match op {
            x if x == INFO | RESPONSE_BIT => {
                Response::Info { version: p[0], dim: p[1], scratch_rows: p[2], acc_rows: p[3] }
            }
            x if x == SYNC | RESPONSE_BIT => Response::Sync { token: p[0] },
            x if x == COUNTERS | RESPONSE_BIT => {
                let mut w = [0u32; COUNTER_WORDS];
                w.copy_from_slice(p);
                Response::Counters(Counters::from_words(&w))
            }
            x if x == READ_ACT | RESPONSE_BIT => {
                Response::ReadAct { rows: p.chunks(dim.div_ceil(4)).map(|r| unpack_row(r, dim)).collect() }
            }
            x if x == READ_ACC | RESPONSE_BIT => Response::ReadAcc {
                rows: p.chunks(dim).map(|r| r.iter().map(|&v| v as i32).collect()).collect(),
            },
            _ => {
                let (code, opcode) = (p[0] as u8, (p[0] >> 8) as u8);
                match ErrorCode::from_u8(code) {
                    Some(code) => Response::Error(CommandError { opcode, code }),
                    None => return Err(ResponseError::BadErrorCode { opcode, code }),
                }
            }
        })
    }
}

impl Counters {
    /// The counters with the timed fields (cycles, array busy cycles, stalls) zeroed: what the
    /// untimed golden device answers.
    pub fn untimed(self) -> Counters {
        Counters { cycles: 0, array_busy_cycles: 0, in_stall_cycles: 0, out_stall_cycles: 0, ..self }
    }
}

impl Response {
    /// The response with COUNTERS' timed fields zeroed ([`Counters::untimed`]).
    pub fn untimed(self) -> Response {
        match self {
            Response::Counters(c) => Response::Counters(c.untimed()),
            r => r,
        }
    }
}

/// Decode a response stream with COUNTERS' timed fields zeroed: the form in which every
/// cycle-accurate backend's output equals the golden device's.
pub fn decode_untimed(dim: usize, words: &[u32]) -> Result<Vec<Response>, ResponseError> {
    Ok(decode_responses(dim, words)?.into_iter().map(Response::untimed).collect())
}

/// Decode a whole response stream; stops at the first malformed response.
pub fn decode_responses(dim: usize, words: &[u32]) -> Result<Vec<Response>, ResponseError> {
    let mut dec = ResponseDecoder::new(dim);
    let mut out = Vec::new();
    for &w in words {
        if let Some(r) = dec.push(w) {
            out.push(r?);
        }
    }
    if !dec.is_idle() {
        return Err(ResponseError::Truncated);
    }
    Ok(out)
}
