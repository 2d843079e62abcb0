//! How a Verilated model of `protobrain_core` is made: the Verilator command line, the C++
//! flags per kind of file, the cache key, and a parallel compile queue.
//!
//! This file is shared, word for word, by `sim/build.rs` (which prebuilds a few models into the
//! library; it includes it with `#[path]`) and by the run-time builder in
//! [`super::cache`], so a prebuilt model and one built at run time are made the same way. It
//! uses `std` and `hdl::tool`, the project's one runner of external tools (`hdl` is a
//! dependency of both).
//!
//! ```text
//!   core.v ──verilator --cc -O3──► obj/V<prefix>*.cpp ─┐  fast files: -O2, slow (init) files: -O0
//!   pb_shim.h + api .cpp ──────────────────────────────┼──► g++ -c (N jobs) ──► *.o ──► .a / .so
//!   verilated.cpp, verilated_threads.cpp (+ _vcd_c) ───┘
//! ```

#![allow(dead_code)] // build.rs and the library each use a part

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use hdl::tool::{run_logged, Finished};

/// How long one tool run of a model build (Verilator, one compile, the link) may take before it
/// is killed: a hung tool, not a slow build (the largest builds measured here take minutes).
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(6 * 3600);

/// Bump when anything below changes how a model is built: it is part of every cache key.
pub const RECIPE_VERSION: u32 = 1;

/// Name of the top module in the emitted Verilog.
pub const TOP: &str = "protobrain_core";

/// The C++ shim (the C ABI and the host loop), embedded so run-time builds need no source tree.
pub const SHIM_H: &str = include_str!("../../csrc/pb_shim.h");
/// The translation unit that defines `pb_api()` for a run-time model (class `Vpb`).
pub const RUNTIME_CPP: &str = include_str!("../../csrc/pb_runtime.cpp");

/// Verilator's arguments: verilate `verilog` into `mdir` with classes prefixed `prefix`.
pub fn verilator_args(prefix: &str, verilog: &Path, mdir: &Path, traced: bool) -> Vec<OsString> {
    let mut a: Vec<OsString> =
        ["--cc", "-O3", "--prefix", prefix, "--top-module", TOP].iter().map(OsString::from).collect();
    // rust-hdl output carries style warnings (unused signals, file names); they are the HDL
    // lint's business (hdl::replay::verilator_lint), not a reason to refuse to simulate.
    a.extend(["-Wno-fatal", "-Wno-lint", "-Wno-style"].map(OsString::from));
    if traced {
        a.push("--trace".into());
    }
    a.push("-Mdir".into());
    a.push(mdir.into());
    a.push(verilog.into());
    a
}

/// Flags for every C++ file of a model (`-O` level excluded).
pub fn cxx_flags(include: &Path, obj: &Path, csrc: Option<&Path>, traced: bool) -> Vec<OsString> {
    let t = if traced { "1" } else { "0" };
    let mut f: Vec<OsString> = vec![
        "-std=gnu++17".into(),
        "-fPIC".into(),
        // a run-time model is a shared library that exports only `pb_api`, so its copy of the
        // Verilator run-time library never meets the one linked into the executable
        "-fvisibility=hidden".into(),
        "-fvisibility-inlines-hidden".into(),
        "-faligned-new".into(),
        "-fcf-protection=none".into(),
        format!("-DVM_TRACE={t}").into(),
        format!("-DVM_TRACE_VCD={t}").into(),
        "-DVM_TRACE_FST=0".into(),
        "-DVM_COVERAGE=0".into(),
        "-DVM_SC=0".into(),
        "-w".into(), // generated code; its warnings are Verilator's, not ours
    ];
    for dir in [include.to_path_buf(), include.join("vltstd"), obj.to_path_buf()] {
        let mut i = OsString::from("-I");
        i.push(dir);
        f.push(i);
    }
    if let Some(c) = csrc {
        let mut i = OsString::from("-I");
        i.push(c);
        f.push(i);
    }
    if traced {
        f.push("-DPB_TRACE".into());
    }
    f
}

/// Optimisation for a generated file: the evaluation code (`-O2`) runs every cycle; the
/// construction and initialisation code (`*Slow*`, `*__Syms*`, `*ConstPool*`) runs once and
/// is compiled at `-O0`, which halves the build time of large models.
pub fn opt_level(file: &Path) -> &'static str {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if name.contains("Slow") || name.contains("__Syms") || name.contains("ConstPool") {
        "-O0"
    } else {
        "-O2"
    }
}

/// Verilator's run-time library files a model links with, in `include`.
pub fn runtime_sources(include: &Path, traced: bool) -> Vec<PathBuf> {
    let mut v = vec![include.join("verilated.cpp"), include.join("verilated_threads.cpp")];
    if traced {
        v.push(include.join("verilated_vcd_c.cpp"));
    }
    v
}

/// The `.cpp` files Verilator wrote into `mdir`, largest first (so the long compiles start
/// first in the parallel queue).
pub fn generated_sources(mdir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<(u64, PathBuf)> = Vec::new();
    for e in std::fs::read_dir(mdir)? {
        let e = e?;
        let p = e.path();
        if p.extension().is_some_and(|x| x == "cpp") {
            v.push((e.metadata()?.len(), p));
        }
    }
    v.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    Ok(v.into_iter().map(|(_, p)| p).collect())
}

/// A 128-bit FNV-1a hash in hex: the cache key of a model (not cryptographic; collisions
/// between a handful of designs are not a concern).
pub fn key(parts: &[&[u8]]) -> String {
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for part in parts {
        for &b in (part.len() as u64).to_le_bytes().iter().chain(part.iter()) {
            h ^= u128::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    format!("{h:032x}")
}

/// One compile job: `source` to `object` with `flags` and `opt`.
#[derive(Debug, Clone)]
pub struct Job {
    /// The `.cpp` file.
    pub source: PathBuf,
    /// The `.o` file to write.
    pub object: PathBuf,
    /// [`cxx_flags`] of its model.
    pub flags: Vec<OsString>,
    /// `-O0` / `-O2`.
    pub opt: &'static str,
}

/// A compile that failed: the command line and the compiler's output.
#[derive(Debug)]
pub struct CompileFailure {
    /// The failing command, for the message.
    pub command: String,
    /// The compiler's output (its log), or why it could not run.
    pub output: String,
}

/// Run `jobs` on `threads` worker threads, largest source first; `base()` is the compiler
/// command. Stops handing out jobs at the first failure and returns it.
pub fn compile_all(
    jobs: &[Job],
    threads: usize,
    base: &(dyn Fn() -> Command + Sync),
) -> Result<(), CompileFailure> {
    let mut order: Vec<&Job> = jobs.iter().collect();
    order.sort_by_key(|j| std::cmp::Reverse(std::fs::metadata(&j.source).map(|m| m.len()).unwrap_or(0)));
    let jobs = &order;
    let next = AtomicUsize::new(0);
    let failure: Mutex<Option<CompileFailure>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1).min(jobs.len().max(1)) {
            s.spawn(|| loop {
                if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(job) = jobs.get(i) else { return };
                let mut cmd = base();
                cmd.args(&job.flags).arg(job.opt).arg("-c").arg(&job.source).arg("-o").arg(&job.object);
                let shown = format!("{cmd:?}");
                let log = job.object.with_extension("log");
                let read = || std::fs::read_to_string(&log).unwrap_or_default();
                let out = match run_logged(&mut cmd, &log, TOOL_TIMEOUT) {
                    Ok(Finished::Exited(s)) if s.success() => {
                        let _ = std::fs::remove_file(&log);
                        continue;
                    }
                    Ok(Finished::Exited(s)) => format!("{}({s})", read()),
                    Ok(Finished::TimedOut) => {
                        format!("{}(killed after {} s)", read(), TOOL_TIMEOUT.as_secs())
                    }
                    Err(e) => format!("could not run the compiler: {e}"),
                };
                if let Ok(mut f) = failure.lock() {
                    f.get_or_insert(CompileFailure { command: shown, output: out });
                }
                return;
            });
        }
    });
    match failure.into_inner().ok().flatten() {
        Some(f) => Err(f),
        None => Ok(()),
    }
}

/// The object file name for `source` inside `dir`.
pub fn object_for(dir: &Path, source: &Path) -> PathBuf {
    let stem = source.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    dir.join(format!("{stem}.o"))
}

/// The last `n` lines of `text`.
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
