//! Random command streams and stall patterns for lockstep tests of every backend.
//!
//! Deterministic from a seed (a SplitMix64 generator: no dependency, the same stream on every
//! machine), so a failing case is reproduced by its seed. Streams mix valid commands (small row
//! counts, boundary addresses, GEMM-like MATMUL/ACTIVATE sequences) with malformed ones
//! (unknown opcodes, bad lengths, rows out of range, shifts > 47), and always end on a command
//! boundary. Contract v2's commands (LOAD_QUANT, the 2-word SET_QUANT) are among both.

use crate::arith::{ColumnScale, Quant};
use crate::config::Config;
use crate::isa::{header, opcode, Command};

pub use crate::rng::SplitMix64 as Rng;

/// What a random stream holds.
#[derive(Debug, Clone, Copy)]
pub struct StreamShape {
    /// Number of commands.
    pub commands: usize,
    /// Largest row count of a row command.
    pub max_rows: u16,
    /// Probability that a command is malformed.
    pub malformed: f64,
}

impl Default for StreamShape {
    fn default() -> Self {
        StreamShape { commands: 30, max_rows: 4, malformed: 0.15 }
    }
}

/// A random `(start, n)` row range of a memory with `rows` rows, mostly in range, often at the
/// boundary.
fn range(rng: &mut Rng, rows: usize, max_n: u16) -> (u16, u16) {
    let n = rng.below(u64::from(max_n) + 1).min(rows as u64) as u16;
    let start = match rng.below(4) {
        0 => 0,
        1 => (rows - n as usize) as u16, // ends exactly at the last row
        _ => rng.below((rows - n as usize) as u64 + 1) as u16,
    };
    (start, n)
}

/// A range that is out of range: `start + n > rows` (computed without wrapping).
fn bad_range(rng: &mut Rng, rows: usize, max_n: u16) -> (u16, u16) {
    let n = 1 + rng.below(u64::from(max_n.max(1))) as u16;
    let min_start = (rows + 1).saturating_sub(n as usize);
    let start = if min_start > 0xFFFF || rng.chance(0.2) {
        0xFFFF
    } else {
        (min_start + rng.below(3) as usize).min(0xFFFF) as u16
    };
    (start, n)
}

/// A valid random command.
pub fn random_command(cfg: &Config, rng: &mut Rng, max_rows: u16) -> Command {
    let d = cfg.dim();
    let (s, a) = (cfg.scratch_rows(), cfg.acc_rows());
    match rng.below(14) {
        0 => Command::Info,
        1 => Command::Sync { token: rng.next_u64() as u32 },
        2 | 3 => Command::LoadWeights { weights: (0..d * d).map(|_| rng.i8()).collect() },
        4 => Command::LoadBias { bias: (0..d).map(|_| rng.i32()).collect() },
        5 => Command::SetQuant(
            Quant::new(rng.next_u64() as u16, rng.below(48) as u8, rng.chance(0.5)).expect("shift < 48"),
        ),
        6 => {
            let (dst, n) = range(rng, s, max_rows);
            Command::WriteAct { dst, rows: (0..n).map(|_| (0..d).map(|_| rng.i8()).collect()).collect() }
        }
        7 => {
            let (src, n) = range(rng, s, max_rows);
            Command::ReadAct { src, n }
        }
        8 | 9 => {
            let (src, n) = range(rng, s, max_rows);
            let n = n.min(a as u16);
            let dst = rng.below((a - n as usize) as u64 + 1) as u16;
            Command::Matmul { src, n, dst, accumulate: rng.chance(0.5) }
        }
        10 => {
            let (src, n) = range(rng, a, max_rows);
            let n = n.min(s as u16);
            let dst = rng.below((s - n as usize) as u64 + 1) as u16;
            Command::Activate { src, n, dst }
        }
        12 => Command::SetQuantZp {
            quant: Quant::new(rng.next_u64() as u16, rng.below(48) as u8, rng.chance(0.5))
                .expect("shift < 48"),
            zero_point: rng.i8(),
        },
        13 => Command::LoadQuant { scales: random_scales(d, rng, 0..48) },
        _ => {
            if rng.chance(0.5) {
                let (src, n) = range(rng, a, max_rows);
                Command::ReadAcc { src, n }
            } else {
                Command::Counters
            }
        }
    }
}

/// `n` random column scales with shifts in `shifts`.
fn random_scales(n: usize, rng: &mut Rng, shifts: std::ops::Range<u8>) -> Vec<ColumnScale> {
    let span = u64::from(shifts.end - shifts.start);
    (0..n)
        .map(|_| {
            let s = shifts.start + rng.below(span) as u8;
            ColumnScale::new(rng.next_u64() as u16, s).expect("shift < 48")
        })
        .collect()
}

/// A small GEMM as a command sequence: rows written to the scratchpad, K-tiles loaded and
/// multiplied with accumulation (back to back, so weight loads overlap the array), then bias,
/// quantisation, ACTIVATE and both read-backs. Exercises the double-buffered weights and the
/// accumulator read-modify-write with real data.
pub fn random_gemm_block(cfg: &Config, rng: &mut Rng, max_rows: u16) -> Vec<Command> {
    let d = cfg.dim();
    let (s, a) = (cfg.scratch_rows(), cfg.acc_rows());
    let m = (1 + rng.below(u64::from(max_rows.max(1)))).min(s as u64).min(a as u64) as u16;
    let k_tiles = 1 + rng.below(3) as usize;
    let src = rng.below((s - m as usize) as u64 + 1) as u16;
    let dst = rng.below((a - m as usize) as u64 + 1) as u16;
    let mut cmds = vec![Command::WriteAct {
        dst: src,
        rows: (0..m).map(|_| (0..d).map(|_| rng.i8()).collect()).collect(),
    }];
    for t in 0..k_tiles {
        cmds.push(Command::LoadWeights { weights: (0..d * d).map(|_| rng.i8()).collect() });
        cmds.push(Command::Matmul { src, n: m, dst, accumulate: t > 0 || rng.chance(0.3) });
    }
    cmds.push(Command::LoadBias { bias: (0..d).map(|_| rng.below(2001) as i32 - 1000).collect() });
    let quant =
        Quant::new(rng.next_u64() as u16, 8 + rng.below(12) as u8, rng.chance(0.5)).expect("shift < 48");
    // v1 (per-tensor, Z = 0) or v2: an output zero point and/or per-column scales
    if rng.chance(0.5) {
        cmds.push(Command::SetQuant(quant));
    } else {
        cmds.push(Command::SetQuantZp { quant, zero_point: rng.i8() });
    }
    if rng.chance(0.4) {
        cmds.push(Command::LoadQuant { scales: random_scales(d, rng, 8..20) });
    }
    let out = rng.below((s - m as usize) as u64 + 1) as u16;
    cmds.push(Command::ReadAcc { src: dst, n: m });
    cmds.push(Command::Activate { src: dst, n: m, dst: out });
    cmds.push(Command::ReadAct { src: out, n: m });
    cmds
}

/// A malformed command as raw words: unknown opcode, bad length, rows out of range, or a
/// shift > 47 (SET_QUANT in either form, any column of LOAD_QUANT). The device must consume it
/// whole and answer 0xFF.
pub fn random_malformed(cfg: &Config, rng: &mut Rng, max_rows: u16) -> Vec<u32> {
    let d = cfg.dim();
    let wpr = cfg.words_per_row() as u32;
    let (s, a) = (cfg.scratch_rows(), cfg.acc_rows());
    let junk = |rng: &mut Rng, n: u32| (0..n).map(|_| rng.next_u64() as u32).collect::<Vec<_>>();
    let with = |h: u32, payload: Vec<u32>| {
        let mut v = vec![h];
        v.extend(payload);
        v
    };
    let bad_shift =
        |rng: &mut Rng| (rng.next_u64() as u32 & 0xFFC0_FFFF) | ((48 + rng.below(16) as u32) << 16);
    match rng.below(11) {
        0 => {
            // unknown opcode
            let op = loop {
                let op = rng.next_u64() as u8;
                if !opcode::ALL.contains(&op) {
                    break op;
                }
            };
            let len = rng.below(4) as u32;
            with(header(op, len), junk(rng, len))
        }
        1 => {
            // a fixed-length command with the wrong length
            let (op, good) = match rng.below(6) {
                0 => (opcode::SYNC, 1),
                1 => (opcode::MATMUL, 2),
                2 => (opcode::LOAD_WEIGHTS, d as u32 * wpr),
                3 => (opcode::LOAD_BIAS, d as u32),
                4 => (opcode::LOAD_QUANT, d as u32),
                _ => (opcode::INFO, 0),
            };
            let len = loop {
                let l = rng.below(u64::from(good) + 3) as u32;
                if l != good {
                    break l;
                }
            };
            with(header(op, len), junk(rng, len))
        }
        2 => {
            // WRITE_ACT whose length disagrees with its row count
            let n = rng.below(u64::from(max_rows) + 1) as u32;
            let good = 1 + n * wpr;
            let len = if rng.chance(0.3) { 0 } else { good + 1 + rng.below(2) as u32 };
            let len = if len == good { good + 1 } else { len };
            let mut p = vec![n << 16];
            p.extend(junk(rng, len.saturating_sub(1)));
            p.truncate(len as usize);
            with(header(opcode::WRITE_ACT, len), p)
        }
        3 => {
            let (dst, n) = bad_range(rng, s, max_rows);
            let mut p = vec![u32::from(dst) | (u32::from(n) << 16)];
            p.extend(junk(rng, u32::from(n) * wpr));
            with(header(opcode::WRITE_ACT, p.len() as u32), p)
        }
        4 => {
            let (src, n) = bad_range(rng, s, max_rows);
            with(header(opcode::READ_ACT, 1), vec![u32::from(src) | (u32::from(n) << 16)])
        }
        5 => {
            // MATMUL with the scratchpad or the accumulator range out
            let (src, n, dst) = if rng.chance(0.5) {
                let (src, n) = bad_range(rng, s, max_rows);
                (src, n, 0)
            } else {
                let (dst, n) = bad_range(rng, a, max_rows);
                (0, n, dst)
            };
            with(header(opcode::MATMUL, 2), vec![u32::from(src) | (u32::from(n) << 16), u32::from(dst)])
        }
        6 => {
            let (src, n) = bad_range(rng, a, max_rows);
            let cmd = if rng.chance(0.5) { opcode::ACTIVATE } else { opcode::READ_ACC };
            let mut p = vec![u32::from(src) | (u32::from(n) << 16)];
            if cmd == opcode::ACTIVATE {
                p.push(0);
            }
            with(header(cmd, p.len() as u32), p)
        }
        7 => {
            // SET_QUANT with a shift > 47, 1 or 2 words
            let len = 1 + rng.below(2) as u32;
            let mut p = vec![bad_shift(rng)];
            p.extend(junk(rng, len - 1));
            with(header(opcode::SET_QUANT, len), p)
        }
        8 => {
            // SET_QUANT with neither 1 nor 2 words
            let len = if rng.chance(0.3) { 0 } else { 3 + rng.below(2) as u32 };
            with(header(opcode::SET_QUANT, len), junk(rng, len))
        }
        _ => {
            // LOAD_QUANT with one or more columns' shift > 47
            let mut p: Vec<u32> = random_scales(d, rng, 0..48).iter().map(ColumnScale::to_word).collect();
            let bad = rng.below(d as u64) as usize;
            p[bad] = bad_shift(rng);
            if rng.chance(0.3) {
                let other = rng.below(d as u64) as usize;
                p[other] = bad_shift(rng);
            }
            with(header(opcode::LOAD_QUANT, d as u32), p)
        }
    }
}

/// A random command stream for `cfg`.
pub fn random_stream(cfg: &Config, rng: &mut Rng, shape: StreamShape) -> Vec<u32> {
    let mut words = Vec::new();
    for _ in 0..shape.commands {
        if rng.chance(0.12) {
            for c in random_gemm_block(cfg, rng, shape.max_rows) {
                c.encode_into(cfg.dim(), &mut words).expect("generated commands fit the Config");
            }
        } else if rng.chance(shape.malformed) {
            words.extend(random_malformed(cfg, rng, shape.max_rows));
        } else {
            random_command(cfg, rng, shape.max_rows)
                .encode_into(cfg.dim(), &mut words)
                .expect("generated commands fit the Config");
        }
    }
    words
}

/// A stall pattern of `len` cycles: `true` with probability `p` (`p = 0`: never).
pub fn random_stalls(rng: &mut Rng, len: usize, p: f64) -> Vec<bool> {
    (0..len).map(|_| p > 0.0 && rng.chance(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isa::{decode_responses, Response};
    use crate::GoldenDevice;

    #[test]
    fn malformed_commands_are_refused_whole_and_streams_end_on_a_boundary() {
        for seed in 0..300 {
            let cfg = Config::new(1 + (seed as usize % 5), 8, 4).unwrap();
            let mut rng = Rng::new(seed);
            let bad = random_malformed(&cfg, &mut rng, 4);
            let mut dev = GoldenDevice::new(cfg);
            dev.push_all(bad.iter().copied());
            assert!(dev.is_idle(), "seed {seed}: {bad:x?} left the decoder mid-command");
            let resp = decode_responses(cfg.dim(), &dev.take_output()).unwrap();
            assert!(matches!(resp[..], [Response::Error(_)]), "seed {seed}: {bad:x?} -> {resp:?}");

            let words = random_stream(&cfg, &mut rng, StreamShape::default());
            let mut dev = GoldenDevice::new(cfg);
            dev.push_all(words);
            assert!(dev.is_idle());
        }
    }
}
