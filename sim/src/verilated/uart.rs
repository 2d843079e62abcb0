//! The Verilator model of `protobrain_uart`: the UART bridge in front of the core, as the FPGA
//! boards have it, driven one serial-line level per clock.
//!
//! ```text
//!   UartModel::new(cfg, clocks_per_bit, fifo_depth)
//!     hdl::uart::uart_core_verilog ─► verilator ─► g++ ─► libpbuart.so
//!     (once, cached under <cache>/runtime/uart-<hash>/, same recipe as the core's models)
//!                                                              ▼
//!   run(rx levels) ──► PbuApi (csrc/pb_uart_shim.cpp) ──► Vpbu ┌──── protobrain_uart ────┐
//!        tx levels ◄── one FFI call per chunk of cycles        │ rx ─► UartBridge ═ core │
//!                                                              │ tx ◄─            overflow│
//!                                                              └────────────────────────┘
//! ```
//!
//! The model is built at run time the first time a (configuration, clocks per bit, FIFO depth)
//! is asked for, with the recipe and the cache layout of the core's models ([`super::cache_dir`])
//! (built in a temporary directory, renamed into place: concurrent processes are safe).

use std::collections::HashMap;
use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::time::Instant;

use spec::Config;

use super::cache::{self, io_err};
use super::{recipe, ModelSource, VerilatorError};

const LIB: &str = "libpbuart.so";
const VERILATOR_VERSION: &str = env!("PROTOBRAIN_VERILATOR_VERSION");
/// The C++ shim of the UART model, embedded so run-time builds need no source tree.
const SHIM_CPP: &str = include_str!("../../csrc/pb_uart_shim.cpp");
/// `PBU_ABI_VERSION` of csrc/pb_uart_shim.cpp.
const ABI_VERSION: u32 = 1;

/// The function table of the UART model class (`PbuApi` in csrc/pb_uart_shim.cpp).
#[repr(C)]
struct PbuApi {
    abi_version: u32,
    pad: u32,
    create: unsafe extern "C" fn() -> *mut c_void,
    destroy: unsafe extern "C" fn(*mut c_void),
    reset: unsafe extern "C" fn(*mut c_void, u64),
    run: unsafe extern "C" fn(*mut c_void, *const u8, *mut u8, u64) -> u32,
}

/// The Verilator model of one `protobrain_uart` (see the module docs): a serial line in
/// (`rx`), a serial line out (`tx`) and the sticky `overflow` flag.
pub struct UartModel {
    cfg: Config,
    clocks_per_bit: usize,
    fifo_depth: usize,
    api: &'static PbuApi,
    model: NonNull<c_void>,
    cycle: u64,
    overflow: bool,
    source: ModelSource,
}

// The model is plain C++ state owned by this value alone (with its own VerilatedContext).
unsafe impl Send for UartModel {}

impl std::fmt::Debug for UartModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UartModel")
            .field("config", &self.cfg)
            .field("clocks_per_bit", &self.clocks_per_bit)
            .field("fifo_depth", &self.fifo_depth)
            .field("cycle", &self.cycle)
            .field("overflow", &self.overflow)
            .field("source", &self.source)
            .finish()
    }
}

impl UartModel {
    /// The model of the core for `cfg` behind a bridge of `clocks_per_bit` clocks per bit and
    /// FIFOs of `fifo_depth` bytes, built (or taken from the cache) now; it has had
    /// [`UartModel::RESET_CYCLES`] cycles of reset.
    ///
    /// # Panics
    /// As [`hdl::uart::UartBridge::new`]: `clocks_per_bit` outside
    /// [`hdl::uart::MIN_CLOCKS_PER_BIT`]..=[`hdl::uart::MAX_CLOCKS_PER_BIT`], or `fifo_depth` not
    /// a power of two in `2..=`[`hdl::uart::MAX_FIFO_DEPTH`].
    pub fn new(cfg: &Config, clocks_per_bit: usize, fifo_depth: usize) -> Result<Self, VerilatorError> {
        super::refuse_lanes(cfg)?;
        let (api, source) = load(cfg, clocks_per_bit, fifo_depth)?;
        // SAFETY: `create` allocates a fresh model; it is destroyed once, in Drop.
        let model = NonNull::new(unsafe { (api.create)() }).ok_or_else(|| VerilatorError::Load {
            path: PathBuf::from(LIB),
            detail: "the UART model could not be created".into(),
        })?;
        let mut m = UartModel {
            cfg: *cfg,
            clocks_per_bit,
            fifo_depth,
            api,
            model,
            cycle: 0,
            overflow: false,
            source,
        };
        m.reset();
        Ok(m)
    }

    /// Cycles of `rst` high in [`UartModel::reset`].
    pub const RESET_CYCLES: u64 = 2;

    /// Reset the bridge and the core ([`UartModel::RESET_CYCLES`] cycles, `rx` idle): both
    /// FIFOs empty, flags clear; the cycle count restarts at 0.
    pub fn reset(&mut self) {
        // SAFETY: a live model.
        unsafe { (self.api.reset)(self.model.as_ptr(), Self::RESET_CYCLES) };
        self.cycle = 0;
        self.overflow = false;
    }

    /// Run `rx.len()` cycles: in cycle `i` the line `rx` is at `rx[i]`, and `tx[i]` is the
    /// level of the model's `tx` during that cycle. Returns the sticky `overflow` flag.
    ///
    /// # Panics
    /// If `tx` is shorter than `rx`.
    pub fn run(&mut self, rx: &[bool], tx: &mut [bool]) -> bool {
        assert!(tx.len() >= rx.len(), "tx has room for {} cycles, rx drives {}", tx.len(), rx.len());
        let mut out = vec![0u8; rx.len()];
        // SAFETY: a live model; `bool` is one byte holding 0 or 1, so `rx` is a valid `u8`
        // array; the C++ side reads `rx.len()` bytes of it and writes as many into `out`.
        let overflow = unsafe {
            (self.api.run)(self.model.as_ptr(), rx.as_ptr().cast::<u8>(), out.as_mut_ptr(), rx.len() as u64)
        };
        for (t, o) in tx.iter_mut().zip(&out) {
            *t = *o != 0;
        }
        self.cycle += rx.len() as u64;
        self.overflow = overflow != 0;
        self.overflow
    }

    /// The configuration of the core.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Clocks per bit of the line.
    pub fn clocks_per_bit(&self) -> usize {
        self.clocks_per_bit
    }

    /// Bytes per FIFO of the bridge.
    pub fn fifo_depth(&self) -> usize {
        self.fifo_depth
    }

    /// Cycles since the last reset.
    pub fn cycle(&self) -> u64 {
        self.cycle
    }

    /// The sticky receive-overflow flag after the last [`UartModel::run`].
    pub fn overflow(&self) -> bool {
        self.overflow
    }

    /// Where the model came from (the cache entry, and whether this call built it).
    pub fn source(&self) -> &ModelSource {
        &self.source
    }
}

impl Drop for UartModel {
    fn drop(&mut self) {
        // SAFETY: created by `api.create`, destroyed exactly once.
        unsafe { (self.api.destroy)(self.model.as_ptr()) }
    }
}

/// Libraries loaded by this process, by path (never unloaded), and the entries resolved for
/// (configuration, clocks per bit, FIFO depth). Holding the lock serialises builds.
type Resolved = HashMap<(Config, usize, usize), PathBuf>;
static STATE: Mutex<Option<(HashMap<PathBuf, &'static PbuApi>, Resolved)>> = Mutex::new(None);

fn load(cfg: &Config, cpb: usize, depth: usize) -> Result<(&'static PbuApi, ModelSource), VerilatorError> {
    let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
    let (loaded, resolved) = state.get_or_insert_with(Default::default);
    let (dir, source) = match resolved.get(&(*cfg, cpb, depth)) {
        Some(dir) => (dir.clone(), ModelSource::Cached { dir: dir.clone() }),
        None => {
            let root = cache::cache_dir().join("runtime");
            let verilog = hdl::uart::uart_core_verilog(cfg, cpb, depth)?;
            let key = recipe::key(&[
                &recipe::RECIPE_VERSION.to_le_bytes(),
                VERILATOR_VERSION.as_bytes(),
                SHIM_CPP.as_bytes(),
                verilog.as_bytes(),
            ]);
            let dir = root.join(format!("uart-{key}"));
            let source = if dir.join(LIB).is_file() {
                ModelSource::Cached { dir: dir.clone() }
            } else {
                let t0 = Instant::now();
                build(cfg, cpb, depth, &verilog, &root, &dir)?;
                let seconds = t0.elapsed().as_secs_f64();
                eprintln!(
                    "protobrain: Verilator model of {cfg} behind a UART ({cpb} clocks/bit, {depth}-byte FIFOs) ready in {seconds:.1} s ({})",
                    dir.display()
                );
                ModelSource::Built { dir: dir.clone(), seconds }
            };
            resolved.insert((*cfg, cpb, depth), dir.clone());
            (dir, source)
        }
    };
    let path = dir.join(LIB);
    let api = match loaded.get(&path) {
        Some(api) => *api,
        None => {
            let api = open(&path)?;
            loaded.insert(path, api);
            api
        }
    };
    Ok((api, source))
}

fn open(path: &Path) -> Result<&'static PbuApi, VerilatorError> {
    // SAFETY: `pbu_api` has this signature in csrc/pb_uart_shim.cpp and returns a static table.
    unsafe { cache::load_api::<PbuApi>(path, b"pbu_api\0", |a| a.abi_version, ABI_VERSION, "UART shim") }
}

/// Verilate, compile and link the model into `dir` (through a temporary directory).
fn build(
    cfg: &Config,
    cpb: usize,
    depth: usize,
    verilog: &str,
    root: &Path,
    dir: &Path,
) -> Result<(), VerilatorError> {
    let t0 = Instant::now();
    eprintln!(
        "protobrain: building the Verilator model of {cfg} behind a UART ({cpb} clocks/bit, {depth}-byte FIFOs; once, cached under {})",
        root.display()
    );
    std::fs::create_dir_all(root).map_err(io_err("creating", root))?;
    let include = cache::verilator_include(cfg)?;
    let tmp = cache::tmp_dir(root, "uart");
    let src = tmp.join("src");
    let obj = tmp.join("obj");
    for d in [&src, &obj] {
        std::fs::create_dir_all(d).map_err(io_err("creating", d))?;
    }
    let v = src.join("uart.v");
    std::fs::write(&v, verilog).map_err(io_err("writing", &v))?;
    let shim = src.join("pb_uart_shim.cpp");
    std::fs::write(&shim, SHIM_CPP).map_err(io_err("writing", &shim))?;
    // the core's recipe, with the UART top instead of the core
    let args: Vec<_> = recipe::verilator_args("Vpbu", &v, &obj, false)
        .into_iter()
        .map(|a| if a == recipe::TOP { hdl::uart::UART_TOP.into() } else { a })
        .collect();
    let mut vl = Command::new("verilator");
    vl.args(args);
    cache::run_logged(&mut vl, "verilator", "verilator", &tmp.join("verilator.log"), cfg)?;
    let mut sources = recipe::generated_sources(&obj).map_err(io_err("listing", &obj))?;
    sources.push(shim);
    eprintln!(
        "protobrain: verilated in {:.1} s; compiling {} C++ files on {} threads",
        t0.elapsed().as_secs_f64(),
        sources.len(),
        cache::threads()
    );
    let runtime = cache::runtime_objects(cfg, &include, root, false)?;
    let flags = recipe::cxx_flags(&include, &obj, Some(&src), false);
    let jobs: Vec<recipe::Job> = sources
        .iter()
        .map(|s| recipe::Job {
            source: s.clone(),
            object: recipe::object_for(&obj, s),
            flags: flags.clone(),
            opt: recipe::opt_level(s),
        })
        .collect();
    cache::compile(&jobs, cfg, &tmp)?;
    let mut link = Command::new(cache::compiler());
    link.arg("-shared").arg("-o").arg(tmp.join(LIB));
    link.args(jobs.iter().map(|j| &j.object)).args(&runtime).arg("-pthread");
    cache::run_logged(&mut link, "the linker (g++ -shared)", "g++", &tmp.join("link.log"), cfg)?;
    let _ = std::fs::remove_dir_all(&obj);
    cache::publish(&tmp, dir, LIB)
}
