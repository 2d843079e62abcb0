//! Resource limits: the memory a workload needs is estimated from its sizes before anything is
//! allocated, and a workload over the limit is refused in one line (what it would need, the
//! limit, how to raise it) instead of growing until the kernel kills the process.
//!
//! ```text
//!  M, (K, N) per layer ──► driver::plan (sizes only) ──► words the program sends
//!  inputs + weights + words × bytes per word ──► ≤ PROTOBRAIN_MEMORY_LIMIT ? go : refuse
//! ```
//!
//! The limit is `$PROTOBRAIN_MEMORY_LIMIT` (bytes, or with a K, M, G or T suffix, powers of
//! 1024), by default half of the machine's physical memory (`MemTotal` in /proc/meminfo; 8 GiB
//! where that cannot be read).

use driver::{CompileError, OutputKind};
use spec::Config;

use crate::error::CliError;

/// The environment variable that overrides the limit.
pub const ENV: &str = "PROTOBRAIN_MEMORY_LIMIT";

/// Bytes of host memory per word of the command stream: the program's steps, its encoded
/// words and the simulator's copy of them, plus per-row allocations (a row of a WRITE_ACT is
/// its own vector, which dominates at DIM 1). Measured with `/usr/bin/time -f %M` (max RSS),
/// debug build: `compile layer` of 64x256x64 at DIM 1 with 1-row memories (8.4 M words) 877 MB
/// (estimate 1.07 GB); 256x512x512 at DIM 1 (13.9 M words) 1.16 GB (estimate 1.78 GB), at
/// DIM 8 (0.6 M words) 38 MB (estimate 45 MB); `matmul --backend native` of the DIM 1 case
/// 695 MB and `estimate --gemm 256,512,512 --dim 1` 880 MB. High on purpose: it must not be low.
fn bytes_per_word(cfg: &Config) -> u128 {
    24 + 104 / cfg.words_per_row() as u128
}

/// The limit in bytes: `$PROTOBRAIN_MEMORY_LIMIT`, else half the physical memory.
pub fn memory_limit() -> Result<u64, CliError> {
    match std::env::var(ENV) {
        Ok(text) => parse_size(&text).ok_or_else(|| {
            CliError::input(ENV, format!("'{text}' is not a size (bytes, or a number with K, M, G or T)"))
        }),
        Err(_) => Ok(physical_memory().map_or(8 << 30, |m| m / 2)),
    }
}

/// `123`, `64K`, `1.5G`, `2T` (powers of 1024; a trailing `B`/`iB` is allowed).
pub fn parse_size(text: &str) -> Option<u64> {
    let t = text.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let (num, scale) = match t.char_indices().last()? {
        (i, 'k' | 'K') => (&t[..i], 1u64 << 10),
        (i, 'm' | 'M') => (&t[..i], 1 << 20),
        (i, 'g' | 'G') => (&t[..i], 1 << 30),
        (i, 't' | 'T') => (&t[..i], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    let bytes = v * scale as f64;
    (v.is_finite() && v > 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

fn physical_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kb.checked_mul(1024)
}

/// `1.5 GB` style, for messages.
pub fn human(bytes: u128) -> String {
    let units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} bytes")
    } else if v >= 1024.0 {
        format!("more than {} {}", v.round(), units[u])
    } else {
        format!("{v:.1} {}", units[u])
    }
}

/// Refuse `needed` bytes over the limit; `subject` names what is too large.
pub fn check(subject: &str, what: &str, needed: u128) -> Result<(), CliError> {
    let limit = memory_limit()?;
    if needed > u128::from(limit) {
        return Err(CliError::input(
            subject,
            format!(
                "{what} needs about {} of memory, more than the limit of {} \
                 (set {ENV}=SIZE, e.g. {ENV}=64G, to raise it)",
                human(needed),
                human(u128::from(limit))
            ),
        ));
    }
    Ok(())
}

/// Bytes to compile and run an MLP of `shapes` (K, N per layer) on `m` rows of input: the
/// input, the weights and biases, the output, and the command stream the plan sends. Compile
/// errors (a layer that does not fit the memories) are returned as such, before any backend
/// is opened.
pub fn workload_bytes(
    cfg: &Config,
    m: usize,
    shapes: &[(usize, usize)],
    kind: OutputKind,
) -> Result<u128, CompileError> {
    let plan = driver::plan(cfg, m, shapes, kind)?;
    let (data, _) = data_bytes(m, shapes);
    Ok(data + u128::from(plan.words_to_device(shapes)) * bytes_per_word(cfg))
}

/// The input, the weights and biases, and the output (as int32); and the output alone.
fn data_bytes(m: usize, shapes: &[(usize, usize)]) -> (u128, u128) {
    let m = m as u128;
    let mut bytes: u128 = 0;
    if let Some(&(k, _)) = shapes.first() {
        bytes += m * k as u128;
    }
    for &(k, n) in shapes {
        bytes += k as u128 * n as u128 + 4 * n as u128;
    }
    let out = shapes.last().map_or(0, |&(_, n)| 4 * m * n as u128);
    (bytes + out, out)
}

/// [`workload_bytes`] when the command stream is run as the compiler makes it
/// (`driver::ProgramStream`: `matmul` and `Device::mlp`, `estimate` of a program without
/// write-backs), so it is never held whole: the input, the weights and biases, the output three
/// times (the result, the responses waiting in the transport, the file written), one chunk's
/// steps (at most a scratchpad of rows, each its own vector), three native models' memories
/// (the estimator runs three at once) and the fixed buffers (the transport's queue, the
/// estimator's pieces). Peak memory measured against it: docs/performance.md.
pub fn streamed_workload_bytes(
    cfg: &Config,
    m: usize,
    shapes: &[(usize, usize)],
    kind: OutputKind,
) -> Result<u128, CompileError> {
    driver::plan(cfg, m, shapes, kind)?;
    let (data, out) = data_bytes(m, shapes);
    let (d, s, a) = (cfg.dim() as u128, cfg.scratch_rows() as u128, cfg.acc_rows() as u128);
    let chunk = s * (d + 64);
    let models = 3 * (s * d + 4 * a * d + 8 * d * d);
    Ok(data + 2 * out + chunk + models + (16 << 20))
}

/// [`workload_bytes`] (or, `streamed`, [`streamed_workload_bytes`]) checked against the limit,
/// as CLI errors (a layer that does not fit is bad input of the memory flags).
pub fn check_workload(
    cfg: &Config,
    m: usize,
    shapes: &[(usize, usize)],
    kind: OutputKind,
    streamed: bool,
) -> Result<(), CliError> {
    let bytes = if streamed {
        streamed_workload_bytes(cfg, m, shapes, kind)
    } else {
        workload_bytes(cfg, m, shapes, kind)
    };
    let bytes = bytes.map_err(|e| match e {
        e @ CompileError::TooSmall { .. } => CliError::input("--scratch-rows", e.to_string()),
        e => CliError::input("workload", e.to_string()),
    })?;
    let dims: Vec<String> = shapes.iter().map(|(k, n)| format!("{k}x{n}")).collect();
    check("workload", &format!("M = {m} through {} on {cfg}", dims.join(", ")), bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("64K"), Some(64 << 10));
        assert_eq!(parse_size("1.5G"), Some(3 << 29));
        assert_eq!(parse_size("2TiB"), Some(2 << 40));
        assert_eq!(parse_size("8GB"), Some(8 << 30));
        for bad in ["", "G", "-1", "0", "1e30T", "lots", "nan"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(12), "12 bytes");
        assert_eq!(human(3 << 29), "1.5 GiB");
        assert_eq!(human(1 << 80), "more than 1048576 EiB");
    }

    #[test]
    fn the_estimate_grows_with_the_workload_and_does_not_overflow() {
        let cfg = Config::new(8, 1024, 512).unwrap();
        let small = workload_bytes(&cfg, 64, &[(64, 64)], OutputKind::Int8).unwrap();
        let large = workload_bytes(&cfg, 4096, &[(4096, 4096)], OutputKind::Int8).unwrap();
        assert!(small < 1 << 20, "{small}");
        // W alone is 16 MiB, X 16 MiB, and the weights are streamed once per chunk
        assert!(large > 32 << 20, "{large}");
        let huge = workload_bytes(&cfg, 1, &[(1 << 32, 1 << 32)], OutputKind::Int8).unwrap();
        assert!(huge >= 1 << 64, "{huge}");
        // run as a stream: X, W and Y (and fixed buffers), not the stream
        let streamed = streamed_workload_bytes(&cfg, 4096, &[(4096, 4096)], OutputKind::Int8).unwrap();
        assert!(streamed > 32 << 20 && streamed < large / 4, "{streamed} vs {large}");
        let huge = streamed_workload_bytes(&cfg, 1, &[(1 << 32, 1 << 32)], OutputKind::Int8).unwrap();
        assert!(huge >= 1 << 64, "{huge}");
    }
}
