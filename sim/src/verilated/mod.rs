//! The Verilator backend: the emitted Verilog of `protobrain_core`, verilated to C++ and driven
//! over a small C ABI.
//!
//! ```text
//!   VerilatedSim::new(cfg)
//!     ├─ prebuilt?  build.rs verilated it and linked it in ──────────┐
//!     └─ otherwise  hdl::emit::verilog(cfg) ─► verilator ─► g++ ─► libpbmodel.so
//!                   (once, cached under target/protobrain-verilated/runtime/<hash>/)
//!                                                                    ▼
//!   CycleSim ──► PbApi table (csrc/pb_shim.h) ──► pb::Model<V> ──► Verilated class V
//!     tick        1 FFI call per cycle: inputs with clk low, eval, outputs, rising edge
//!     tick_beat   the same on beats of LANES words
//!     run_stream  1 FFI call per stream: spec::stream::Host's loop in C++
//! ```
//!
//! LANES (docs/design.md "A wider link: LANES") is the configuration's: at LANES > 1 the model
//! is built at run time like any other configuration (its Verilog, hence its cache entry,
//! differs per LANES), [`VerilatedSim::tick_beat`] moves a beat of LANES words a cycle, and
//! [`CycleSim::run_stream`] takes flattened beats ([`spec::lanes::frame`]) and returns one
//! trace entry per output word, LANES per beat, as [`hdl::stream::run_icarus_beats`] does.
//! The word-wide [`CycleSim::tick`] (and so the trait's default loops and the transports'
//! `pump`) panics at LANES > 1 rather than run a different link than the configuration's.
//!
//! The configurations of the lockstep tests and the `default` / `ecp5-25k` presets are
//! prebuilt (see [`VerilatedSim::prebuilt`]); any other [`Config`] is built at run time the
//! first time it is asked for (a few seconds for small arrays, progress on stderr), with the
//! same recipe, into a cache shared by every process (content addressed by the hash of the
//! Verilog, built in a temporary directory and renamed into place, so concurrent test
//! processes are safe). Set `PROTOBRAIN_VERILATED_DIR` to move the cache.
//!
//! Waveforms: [`VerilatedSim::with_trace`], or `PROTOBRAIN_TRACE=<file.vcd>` for every
//! [`VerilatedSim::new`], writes a VCD of every signal with 10 ns cycles: inputs change with
//! the clock low at 10·k ns, the rising edge is at 10·k + 5 ns (k counts the reset cycles too).
//! Tracing needs a model verilated with `--trace`, built at run time on demand, so the
//! ordinary models stay fast.

mod cache;
mod recipe;
pub mod uart;

use std::ffi::{c_void, CString};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};

use spec::lanes::{unframe, Stream, MAX_LANES};
use spec::stream::{quiet_cycles, DeviceOut, HostOut, Stalls, Stuck, Trace};
use spec::Config;
use thiserror::Error;

use crate::CycleSim;

pub use cache::cache_dir;
pub use uart::UartModel;

/// Environment variable: write a VCD of every [`VerilatedSim::new`] model to this file.
pub const TRACE_ENV: &str = "PROTOBRAIN_TRACE";

/// Why a Verilator model could not be made or used.
#[derive(Debug, Error)]
pub enum VerilatorError {
    /// A tool needed to build a model at run time is not installed.
    #[error(
        "`{tool}` not found: building the Verilator model of {config} needs it (run scripts/setup.sh, or `apt-get install {package}`)"
    )]
    ToolMissing {
        /// The executable.
        tool: String,
        /// The Debian package that provides it.
        package: &'static str,
        /// The configuration being built.
        config: Config,
    },
    /// The design could not be emitted.
    #[error(transparent)]
    Emit(#[from] hdl::emit::EmitError),
    /// Verilator or the C++ compiler failed.
    #[error("{tool} failed building the Verilator model of {config} (full log: {log}):\n{tail}")]
    Build {
        /// `verilator`, the compiler or the linker.
        tool: String,
        /// The configuration being built.
        config: Config,
        /// The complete output of the tool.
        log: PathBuf,
        /// Its last lines.
        tail: String,
    },
    /// A file or directory of the model cache could not be used.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The configuration has LANES > 1, which the UART board's model does not implement yet
    /// (docs/design.md "A wider link: LANES": its bridge moves one 32-bit word at a time).
    #[error(
        "the Verilator model of the UART board does not implement LANES > 1 yet ({config}): its bridge moves one 32-bit word at a time"
    )]
    Lanes {
        /// The configuration asked for.
        config: Config,
    },
    /// A built model library could not be loaded.
    #[error("cannot load the Verilator model {path}: {detail}")]
    Load {
        /// The shared library.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// The waveform file could not be opened.
    #[error("cannot write the waveform file {path}: {why}")]
    Trace {
        /// The VCD file asked for.
        path: PathBuf,
        /// Why.
        why: String,
    },
}

/// One output word and its cycle, as the C++ side stores it (`PbOutput`).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct PbOutput {
    cycle: u64,
    word: u32,
    pad: u32,
}

/// The result of `run_stream` (`PbStreamResult`).
#[repr(C)]
#[derive(Debug)]
struct PbStreamResult {
    status: u32,
    pad: u32,
    taken: u64,
    last_input_cycle: u64,
    cycles: u64,
    n_outputs: u64,
    outputs: *const PbOutput,
}

/// The function table of one Verilated model class (`PbApi` in csrc/pb_shim.h).
#[repr(C)]
struct PbApi {
    abi_version: u32,
    traced: u32,
    /// Words per beat of the model's `in_data` and `out_data`.
    lanes: u32,
    pad: u32,
    create: unsafe extern "C" fn() -> *mut c_void,
    destroy: unsafe extern "C" fn(*mut c_void),
    trace_open: unsafe extern "C" fn(*mut c_void, *const std::ffi::c_char) -> i32,
    reset: unsafe extern "C" fn(*mut c_void),
    tick: unsafe extern "C" fn(*mut c_void, u32, u32, u32) -> u64,
    #[allow(clippy::type_complexity)]
    run_stream: unsafe extern "C" fn(
        *mut c_void,
        *const u32,
        u64,
        *const u8,
        u64,
        *const u8,
        u64,
        u64,
        u64,
        *mut PbStreamResult,
    ),
    tick_beat: unsafe extern "C" fn(*mut c_void, u32, *const u32, u32, *mut u32) -> u32,
}

/// `PB_ABI_VERSION` of csrc/pb_shim.h.
const ABI_VERSION: u32 = 2;

/// A model linked into the library by build.rs (all LANES 1).
struct Prebuilt {
    /// DIM, SCRATCH_ROWS, ACC_ROWS.
    dims: (usize, usize, usize),
    /// `pb_api_<name>` of the model.
    api: unsafe extern "C" fn() -> *const PbApi,
}

include!(concat!(env!("OUT_DIR"), "/prebuilt.rs"));

/// Where a model came from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// Verilated by build.rs and linked into this library.
    Prebuilt,
    /// Built at run time earlier (by this or another process) and loaded from the cache.
    Cached {
        /// The cache entry.
        dir: PathBuf,
    },
    /// Built at run time by this call.
    Built {
        /// The cache entry.
        dir: PathBuf,
        /// Wall-clock seconds the build took.
        seconds: f64,
    },
}

impl ModelSource {
    /// The cache entry, or `prebuilt` for a linked-in model (for messages).
    fn location(&self) -> PathBuf {
        match self {
            ModelSource::Prebuilt => PathBuf::from("(prebuilt)"),
            ModelSource::Cached { dir } | ModelSource::Built { dir, .. } => dir.clone(),
        }
    }
}

/// The Verilator model of one `protobrain_core` (see the module docs).
pub struct VerilatedSim {
    cfg: Config,
    /// `cfg.lanes()`, the words per beat of the model (checked against its table).
    lanes: usize,
    api: &'static PbApi,
    model: NonNull<c_void>,
    cycle: u64,
    source: ModelSource,
    trace: Option<PathBuf>,
}

// The model is plain C++ state owned by this value alone; Verilator models may move between
// threads (each has its own VerilatedContext).
unsafe impl Send for VerilatedSim {}

impl std::fmt::Debug for VerilatedSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerilatedSim")
            .field("config", &self.cfg)
            .field("cycle", &self.cycle)
            .field("source", &self.source)
            .field("trace", &self.trace)
            .finish()
    }
}

/// [`VerilatorError::Lanes`] for a configuration with LANES > 1, for the UART board's model
/// (its bridge moves one 32-bit word at a time), which would otherwise silently run a
/// different link than its configuration says.
pub(crate) fn refuse_lanes(cfg: &Config) -> Result<(), VerilatorError> {
    if cfg.lanes().get() > 1 {
        return Err(VerilatorError::Lanes { config: *cfg });
    }
    Ok(())
}

fn prebuilt_api(cfg: &Config) -> Option<&'static PbApi> {
    if cfg.lanes().get() != 1 {
        return None;
    }
    let dims = (cfg.dim(), cfg.scratch_rows(), cfg.acc_rows());
    let p = PREBUILT.iter().find(|p| p.dims == dims)?;
    // SAFETY: the function returns the address of a static table of the linked model.
    unsafe { (p.api)().as_ref() }
}

impl VerilatedSim {
    /// The model of `cfg`: prebuilt if it is one of [`VerilatedSim::prebuilt`], else built (or
    /// taken from the cache) at run time. With `PROTOBRAIN_TRACE=<file.vcd>` set, the same as
    /// [`VerilatedSim::with_trace`] to that file (the second model of the process writes
    /// `<file>.1.vcd`, and so on). The model has had one cycle of reset.
    pub fn new(cfg: &Config) -> Result<Self, VerilatorError> {
        if let Some(path) = std::env::var_os(TRACE_ENV).filter(|p| !p.is_empty()) {
            static TRACED: AtomicU64 = AtomicU64::new(0);
            let mut path = PathBuf::from(path);
            let n = TRACED.fetch_add(1, Ordering::SeqCst);
            if n > 0 {
                path.set_extension(format!("{n}.vcd"));
            }
            return Self::with_trace(cfg, path);
        }
        match prebuilt_api(cfg) {
            Some(api) => Self::start(cfg, api, ModelSource::Prebuilt, None),
            None => {
                let (api, source) = cache::load(cfg, false)?;
                Self::start(cfg, api, source, None)
            }
        }
    }

    /// The model of `cfg` writing a VCD waveform of every cycle to `path` (the reset cycle
    /// included; the file is complete when the model is dropped). Uses a model verilated with
    /// `--trace`, built at run time the first time.
    pub fn with_trace(cfg: &Config, path: impl AsRef<Path>) -> Result<Self, VerilatorError> {
        let (api, source) = cache::load(cfg, true)?;
        Self::start(cfg, api, source, Some(path.as_ref().to_path_buf()))
    }

    /// The configurations linked into this library (no run-time build needed; all LANES 1).
    pub fn prebuilt() -> Vec<Config> {
        PREBUILT.iter().filter_map(|p| Config::new(p.dims.0, p.dims.1, p.dims.2).ok()).collect()
    }

    /// Where this model came from.
    pub fn source(&self) -> &ModelSource {
        &self.source
    }

    /// The VCD file being written, if any.
    pub fn trace_path(&self) -> Option<&Path> {
        self.trace.as_deref()
    }

    fn start(
        cfg: &Config,
        api: &'static PbApi,
        source: ModelSource,
        trace: Option<PathBuf>,
    ) -> Result<Self, VerilatorError> {
        let lanes = cfg.lanes().get();
        // the beats crossing the ABI are `lanes` words: a model of another width would read
        // and write past them
        if api.lanes as usize != lanes {
            return Err(VerilatorError::Load {
                path: source.location(),
                detail: format!("the model has {} lanes, the configuration {lanes}", api.lanes),
            });
        }
        // SAFETY: `create` allocates a fresh model; it is destroyed once, in Drop.
        let model = NonNull::new(unsafe { (api.create)() }).ok_or_else(|| VerilatorError::Load {
            path: source.location(),
            detail: "the model could not be created".into(),
        })?;
        let mut sim = VerilatedSim { cfg: *cfg, lanes, api, model, cycle: 0, source, trace: None };
        if let Some(path) = trace {
            let c = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| VerilatorError::Trace {
                path: path.clone(),
                why: "the path contains a NUL byte".into(),
            })?;
            // SAFETY: a live model and a NUL-terminated path.
            let r = unsafe { (api.trace_open)(model.as_ptr(), c.as_ptr()) };
            if r != 0 {
                let why =
                    if r == -1 { "the model was built without tracing" } else { "could not open the file" };
                return Err(VerilatorError::Trace { path, why: why.into() });
            }
            sim.trace = Some(path);
        }
        sim.reset();
        Ok(sim)
    }
}

impl VerilatedSim {
    /// [`CycleSim::tick`] at LANES > 1, as the native model's: `in_data` on lane 0 and zeros on
    /// the other lanes, lane 0 of the output beat shown (kept out of the hot path).
    #[cold]
    #[inline(never)]
    fn tick_lane0(&mut self, inputs: HostOut) -> DeviceOut {
        let (mut beat, mut out) = ([0u32; MAX_LANES], [0u32; MAX_LANES]);
        beat[0] = inputs.in_data;
        let l = self.lanes;
        let (in_ready, out_valid) =
            self.tick_beat(inputs.in_valid, &beat[..l], inputs.out_ready, &mut out[..l]);
        DeviceOut { in_ready, out_valid, out_data: out[0] }
    }
}

impl Drop for VerilatedSim {
    fn drop(&mut self) {
        // SAFETY: created by `api.create`, destroyed exactly once (this also closes the VCD).
        unsafe { (self.api.destroy)(self.model.as_ptr()) }
    }
}

impl CycleSim for VerilatedSim {
    /// One clock cycle on beats (as [`CycleSim::tick`], which moves one word): the host drives
    /// `in_valid` with `in_beat` and `out_ready`; `out_beat` gets `out_data` as seen during the
    /// cycle (meaningful when `out_valid`); returns `(in_ready, out_valid)`. Beats are LANES
    /// words, lane 0 first; at LANES 1 a beat is one word.
    ///
    /// # Panics
    /// If `in_beat` or `out_beat` is not LANES words long.
    fn tick_beat(
        &mut self,
        in_valid: bool,
        in_beat: &[u32],
        out_ready: bool,
        out_beat: &mut [u32],
    ) -> (bool, bool) {
        assert!(
            in_beat.len() == self.lanes && out_beat.len() == self.lanes,
            "tick_beat on {}: beats of {} words, got {} in and {} out",
            self.cfg,
            self.lanes,
            in_beat.len(),
            out_beat.len()
        );
        // SAFETY: a live model whose beats are `self.lanes` words (checked against its table
        // in `start`); both slices are that long, the C++ side reads `in_beat` and writes
        // `out_beat` within them and keeps neither pointer.
        let seen = unsafe {
            (self.api.tick_beat)(
                self.model.as_ptr(),
                u32::from(in_valid),
                in_beat.as_ptr(),
                u32::from(out_ready),
                out_beat.as_mut_ptr(),
            )
        };
        self.cycle += 1;
        (seen & 1 != 0, seen & 2 != 0)
    }

    fn config(&self) -> &Config {
        &self.cfg
    }

    fn reset(&mut self) {
        // SAFETY: a live model.
        unsafe { (self.api.reset)(self.model.as_ptr()) };
        self.cycle = 0;
    }

    fn cycle(&self) -> u64 {
        self.cycle
    }

    /// # Panics
    /// At LANES > 1 (use [`VerilatedSim::tick_beat`]).
    fn tick(&mut self, inputs: HostOut) -> DeviceOut {
        if self.lanes != 1 {
            return self.tick_lane0(inputs);
        }
        // SAFETY: a live model.
        let seen = unsafe {
            (self.api.tick)(
                self.model.as_ptr(),
                u32::from(inputs.in_valid),
                inputs.in_data,
                u32::from(inputs.out_ready),
            )
        };
        self.cycle += 1;
        DeviceOut { in_ready: seen & 1 != 0, out_valid: seen & 2 != 0, out_data: (seen >> 32) as u32 }
    }

    /// The host idle (every input low) at any LANES.
    fn idle(&mut self, n: u64) {
        let (zero, mut out) = ([0u32; MAX_LANES], [0u32; MAX_LANES]);
        for _ in 0..n {
            self.tick_beat(false, &zero[..self.lanes], false, &mut out[..self.lanes]);
        }
    }

    /// The whole host loop in C++ (one FFI call): the same rules as the trait's default. At
    /// LANES > 1, `words` are the flattened beats (LANES words each, [`spec::lanes::frame`] of
    /// the command words) and the trace has one entry per output word, LANES per beat with the
    /// beat's cycle (as [`hdl::stream::run_icarus_beats`]); [`Stuck`] counts beats.
    ///
    /// # Panics
    /// If `words` is not a whole number of beats.
    fn run_stream(&mut self, words: &[u32], stalls: &Stalls, limit: u64) -> Result<Trace, Stuck> {
        let l = self.lanes;
        assert!(
            words.len().is_multiple_of(l),
            "run_stream on {}: {} words are not whole beats of {l}",
            self.cfg,
            words.len()
        );
        let quiet = if l == 1 {
            quiet_cycles(self.cfg.dim(), words)
        } else {
            quiet_cycles(self.cfg.dim(), &unframe(words, Stream::Commands, &self.cfg, self.cfg.lanes()))
        };
        let mut r = PbStreamResult {
            status: 0,
            pad: 0,
            taken: 0,
            last_input_cycle: 0,
            cycles: 0,
            n_outputs: 0,
            outputs: std::ptr::null(),
        };
        // SAFETY: a live model; `words` is whole beats of the model's width (asserted above,
        // the width checked in `start`); `bool` is one byte holding 0 or 1, so the stall
        // patterns are valid `u8` arrays; the C++ side reads only within the lengths given and
        // writes `r`.
        unsafe {
            (self.api.run_stream)(
                self.model.as_ptr(),
                words.as_ptr(),
                words.len() as u64,
                stalls.input.as_ptr().cast::<u8>(),
                stalls.input.len() as u64,
                stalls.output.as_ptr().cast::<u8>(),
                stalls.output.len() as u64,
                quiet,
                limit,
                &mut r,
            )
        };
        self.cycle = r.cycles;
        if r.status != 0 {
            return Err(Stuck { taken: r.taken as usize, total: words.len() / l, limit });
        }
        let outputs = if r.n_outputs == 0 {
            Vec::new()
        } else {
            // SAFETY: the model owns `n_outputs` records at `outputs` until its next call.
            unsafe { std::slice::from_raw_parts(r.outputs, r.n_outputs as usize) }
                .iter()
                .map(|o| (o.cycle, o.word))
                .collect()
        };
        Ok(Trace { outputs, last_input_cycle: r.last_input_cycle, cycles: r.cycles })
    }
}

#[cfg(test)]
mod tests;
