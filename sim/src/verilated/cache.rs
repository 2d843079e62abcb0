//! Models built at run time: verilate, compile into a shared library, cache, load.
//!
//! ```text
//!   <cache>/runtime/
//!     <key>/libpbmodel.so        one model (key: hash of Verilog + shim + recipe + tracing)
//!     verilated-<key>/*.o        Verilator's run-time library, compiled once per flavour
//!     tmp-<key>-<pid>-<n>/       a build in progress; renamed to <key>/ when complete
//!     index/<hash>               <key> of a configuration as emitted by one executable
//! ```
//!
//! An entry appears only by an atomic rename of a finished directory, so a reader never sees a
//! half-built model and two processes building the same model at once both succeed (the
//! loser drops its copy). Within a process, builds are serialised and remembered.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use hdl::tool::Finished;
use spec::Config;

use super::recipe;
use super::{ModelSource, PbApi, VerilatorError};

const LIB: &str = "libpbmodel.so";
const VERILATOR_VERSION: &str = env!("PROTOBRAIN_VERILATOR_VERSION");

/// The root of the model cache: `$PROTOBRAIN_VERILATED_DIR` if set, else
/// `target/protobrain-verilated` of the build that compiled this library (if it still exists),
/// else `$XDG_CACHE_HOME` or `~/.cache` `/protobrain/verilated`, else the temporary directory.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PROTOBRAIN_VERILATED_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let built = PathBuf::from(env!("PROTOBRAIN_VERILATED_CACHE"));
    if built.parent().is_some_and(Path::is_dir) {
        return built;
    }
    let user = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    match user {
        Some(u) => u.join("protobrain").join("verilated"),
        None => std::env::temp_dir().join("protobrain-verilated"),
    }
}

/// Loaded libraries, by path; never unloaded (Verilator's thread-locals live in them).
static LOADED: Mutex<Option<HashMap<PathBuf, &'static PbApi>>> = Mutex::new(None);
/// A cache entry resolved by this process: (cache root, configuration (LANES included),
/// traced) -> directory.
type Resolved = HashMap<(PathBuf, Config, bool), PathBuf>;
/// Cache entries already resolved by this process.
static RESOLVED: Mutex<Option<Resolved>> = Mutex::new(None);
static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

pub(super) fn io_err<'a>(
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> VerilatorError + 'a {
    move |source| VerilatorError::Io { what, path: path.to_path_buf(), source }
}

/// The model of `cfg` (with `--trace` if `traced`), from the cache or built now.
pub(super) fn load(cfg: &Config, traced: bool) -> Result<(&'static PbApi, ModelSource), VerilatorError> {
    load_in(&cache_dir().join("runtime"), cfg, traced)
}

/// [`load`] with the cache in `root`.
pub(super) fn load_in(
    root: &Path,
    cfg: &Config,
    traced: bool,
) -> Result<(&'static PbApi, ModelSource), VerilatorError> {
    // One build at a time in this process: tests asking for the same model wait for the first.
    let mut resolved = RESOLVED.lock().unwrap_or_else(|p| p.into_inner());
    let resolved = resolved.get_or_insert_with(HashMap::new);
    let memo = (root.to_path_buf(), *cfg, traced);
    let (dir, source) = match resolved.get(&memo) {
        Some(dir) => (dir.clone(), ModelSource::Cached { dir: dir.clone() }),
        None => {
            let index = index_entry(root, cfg, traced);
            let (dir, source) = match index.as_deref().and_then(|i| indexed(root, i)) {
                Some(dir) => (dir.clone(), ModelSource::Cached { dir }),
                None => {
                    let (dir, source) = by_verilog(root, cfg, traced)?;
                    if let Some(i) = index {
                        remember(root, &i, &dir);
                    }
                    (dir, source)
                }
            };
            resolved.insert(memo, dir.clone());
            (dir, source)
        }
    };
    let api = open(&dir.join(LIB))?;
    if (api.traced != 0) != traced {
        return Err(VerilatorError::Load {
            path: dir.join(LIB),
            detail: format!("expected a model {} tracing", if traced { "with" } else { "without" }),
        });
    }
    Ok((api, source))
}

/// The model of the Verilog that `hdl` emits for `cfg` now: its cache entry, built if missing.
fn by_verilog(root: &Path, cfg: &Config, traced: bool) -> Result<(PathBuf, ModelSource), VerilatorError> {
    let verilog = hdl::emit::verilog(cfg)?;
    let key = recipe::key(&[
        &recipe::RECIPE_VERSION.to_le_bytes(),
        VERILATOR_VERSION.as_bytes(),
        recipe::SHIM_H.as_bytes(),
        recipe::RUNTIME_CPP.as_bytes(),
        &[u8::from(traced)],
        verilog.as_bytes(),
    ]);
    let dir = root.join(&key);
    if dir.join(LIB).is_file() {
        return Ok((dir.clone(), ModelSource::Cached { dir }));
    }
    let t0 = Instant::now();
    build(cfg, traced, &verilog, root, &dir)?;
    let seconds = t0.elapsed().as_secs_f64();
    eprintln!("protobrain: Verilator model of {cfg} ready in {seconds:.1} s ({})", dir.display());
    Ok((dir.clone(), ModelSource::Built { dir, seconds }))
}

/// Emitting a large design takes seconds in a debug build, so a cache hit skips it when this
/// very executable (same path, size and modification time, hence the same `hdl`) has resolved
/// the configuration before: `<root>/index/<hash>` names the entry. `None` when the
/// executable cannot be identified.
pub(super) fn index_entry(root: &Path, cfg: &Config, traced: bool) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let meta = std::fs::metadata(&exe).ok()?;
    let mtime = meta.modified().ok()?.duration_since(std::time::UNIX_EPOCH).ok()?.as_nanos();
    // LANES too: the configurations of one DIM and memories but other LANES are other designs
    let dims = [
        cfg.dim() as u64,
        cfg.scratch_rows() as u64,
        cfg.acc_rows() as u64,
        cfg.lanes().get() as u64,
        u64::from(traced),
    ];
    let dims: Vec<u8> = dims.iter().flat_map(|d| d.to_le_bytes()).collect();
    let key = recipe::key(&[
        exe.as_os_str().as_encoded_bytes(),
        &meta.len().to_le_bytes(),
        &mtime.to_le_bytes(),
        &dims,
    ]);
    Some(root.join("index").join(key))
}

/// The cache entry an index file names, if it is there.
fn indexed(root: &Path, index: &Path) -> Option<PathBuf> {
    let name = std::fs::read_to_string(index).ok()?;
    let name = name.trim();
    let ok = name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit());
    let dir = root.join(name);
    (ok && dir.join(LIB).is_file()).then_some(dir)
}

/// Write an index file (atomically; a failure only costs a re-emit next time).
fn remember(root: &Path, index: &Path, dir: &Path) {
    let (Some(parent), Some(name)) = (index.parent(), dir.file_name()) else { return };
    let tmp = tmp_dir(root, "index");
    let written =
        std::fs::create_dir_all(parent).is_ok() && std::fs::write(&tmp, name.as_encoded_bytes()).is_ok();
    if !written || std::fs::rename(&tmp, index).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Forget what this process resolved under `root` (tests: the next load looks at the disk).
#[cfg(test)]
pub(super) fn forget(root: &Path) {
    let mut resolved = RESOLVED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(r) = resolved.as_mut() {
        r.retain(|k, _| k.0 != root);
    }
}

fn open(path: &Path) -> Result<&'static PbApi, VerilatorError> {
    let mut loaded = LOADED.lock().unwrap_or_else(|p| p.into_inner());
    let loaded = loaded.get_or_insert_with(HashMap::new);
    if let Some(api) = loaded.get(path) {
        return Ok(api);
    }
    // SAFETY: `pb_api` has this signature in csrc/pb_runtime.cpp and returns a static table.
    let api = unsafe { load_api::<PbApi>(path, b"pb_api\0", |a| a.abi_version, super::ABI_VERSION, "shim")? };
    loaded.insert(path.to_path_buf(), api);
    Ok(api)
}

/// The one dlopen of the Verilator models (the core's here, the UART core's in `uart`): loads
/// the library at `path` for the life of the process, calls its `symbol` and checks the
/// table's ABI version (`abi` reads it) against `expected`; `what` names the shim in errors.
///
/// # Safety
/// The library must be one of ours (built with a shim; its initialisers only set up
/// Verilator's run-time library), and `symbol` (NUL-terminated) a function
/// `extern "C" fn() -> *const T` returning the address of a static `T` or null.
pub(super) unsafe fn load_api<T>(
    path: &Path,
    symbol: &[u8],
    abi: impl Fn(&T) -> u32,
    expected: u32,
    what: &str,
) -> Result<&'static T, VerilatorError> {
    let fail = |detail: String| VerilatorError::Load { path: path.to_path_buf(), detail };
    // SAFETY: the caller's contract.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| fail(e.to_string()))?;
    let api = unsafe {
        let f = lib.get::<unsafe extern "C" fn() -> *const T>(symbol).map_err(|e| fail(e.to_string()))?;
        f()
    };
    // The library stays loaded for the life of the process, so its table is 'static.
    std::mem::forget(lib);
    // SAFETY: a static table or null (the caller's contract).
    let name = String::from_utf8_lossy(symbol.strip_suffix(b"\0").unwrap_or(symbol)).into_owned();
    let api: &'static T = unsafe { api.as_ref() }.ok_or_else(|| fail(format!("{name} returned null")))?;
    let version = abi(api);
    if version != expected {
        return Err(fail(format!("{what} ABI {version} (expected {expected})")));
    }
    Ok(api)
}

/// Run `cmd` with the project's one tool runner ([`hdl::tool::run_logged`]: output to `log`,
/// stdin closed, killed after [`recipe::TOOL_TIMEOUT`]); a missing executable is
/// [`VerilatorError::ToolMissing`], a failure or a timeout [`VerilatorError::Build`] with the
/// log's tail.
pub(super) fn run_logged(
    cmd: &mut Command,
    tool: &str,
    package: &'static str,
    log: &Path,
    cfg: &Config,
) -> Result<(), VerilatorError> {
    let finished = hdl::tool::run_logged(cmd, log, recipe::TOOL_TIMEOUT).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            VerilatorError::ToolMissing { tool: tool.into(), package, config: *cfg }
        }
        _ => VerilatorError::Io { what: "running", path: PathBuf::from(tool), source: e },
    })?;
    let verdict = match finished {
        Finished::Exited(status) if status.success() => return Ok(()),
        Finished::Exited(status) => status.to_string(),
        Finished::TimedOut => format!("killed after {} s", recipe::TOOL_TIMEOUT.as_secs()),
    };
    let text = std::fs::read_to_string(log).map_err(io_err("reading", log))?;
    Err(VerilatorError::Build {
        tool: tool.into(),
        config: *cfg,
        log: log.to_path_buf(),
        tail: format!("{}\n({verdict})", recipe::tail(&text, 25)),
    })
}

pub(super) fn compiler() -> String {
    std::env::var("CXX").ok().filter(|c| !c.is_empty()).unwrap_or_else(|| "g++".into())
}

pub(super) fn threads() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

pub(super) fn tmp_dir(root: &Path, name: &str) -> PathBuf {
    let n = TMP_SEQ.fetch_add(1, Ordering::SeqCst);
    root.join(format!("tmp-{name}-{}-{n}", std::process::id()))
}

/// Move a finished `tmp` to `dir`; if another process got there first, keep theirs.
pub(super) fn publish(tmp: &Path, dir: &Path, marker: &str) -> Result<(), VerilatorError> {
    match std::fs::rename(tmp, dir) {
        Ok(()) => Ok(()),
        Err(e) => {
            let _ = std::fs::remove_dir_all(tmp);
            if dir.join(marker).is_file() {
                Ok(())
            } else {
                Err(VerilatorError::Io {
                    what: "moving the built model to",
                    path: dir.to_path_buf(),
                    source: e,
                })
            }
        }
    }
}

/// Verilator's run-time library objects for this flavour, compiled once per cache.
pub(super) fn runtime_objects(
    cfg: &Config,
    include: &Path,
    root: &Path,
    traced: bool,
) -> Result<Vec<PathBuf>, VerilatorError> {
    let key = recipe::key(&[
        &recipe::RECIPE_VERSION.to_le_bytes(),
        VERILATOR_VERSION.as_bytes(),
        include.as_os_str().as_encoded_bytes(),
        &[u8::from(traced)],
    ]);
    let dir = root.join(format!("verilated-{}", &key[..16]));
    let sources = recipe::runtime_sources(include, traced);
    let objects = |d: &Path| sources.iter().map(|s| recipe::object_for(d, s)).collect::<Vec<_>>();
    if dir.join("done").is_file() {
        return Ok(objects(&dir));
    }
    let tmp = tmp_dir(root, "verilated");
    std::fs::create_dir_all(&tmp).map_err(io_err("creating", &tmp))?;
    eprintln!("protobrain: compiling Verilator's run-time library (once per cache)");
    let flags = recipe::cxx_flags(include, include, None, traced);
    let jobs: Vec<recipe::Job> = sources
        .iter()
        .map(|s| recipe::Job {
            source: s.clone(),
            object: recipe::object_for(&tmp, s),
            flags: flags.clone(),
            opt: "-O2",
        })
        .collect();
    compile(&jobs, cfg, &tmp)?;
    std::fs::write(tmp.join("done"), "").map_err(io_err("writing", &tmp))?;
    publish(&tmp, &dir, "done")?;
    Ok(objects(&dir))
}

pub(super) fn compile(jobs: &[recipe::Job], cfg: &Config, logdir: &Path) -> Result<(), VerilatorError> {
    let cxx = compiler();
    let base = || Command::new(&cxx);
    recipe::compile_all(jobs, threads(), &base).map_err(|f| {
        if f.output.contains("No such file or directory (os error 2)")
            && f.output.starts_with("could not run")
        {
            return VerilatorError::ToolMissing { tool: cxx.clone(), package: "g++", config: *cfg };
        }
        let log = logdir.join("compile.log");
        let _ = std::fs::write(&log, format!("{}\n{}", f.command, f.output));
        VerilatorError::Build { tool: cxx.clone(), config: *cfg, log, tail: recipe::tail(&f.output, 25) }
    })
}

fn build(cfg: &Config, traced: bool, verilog: &str, root: &Path, dir: &Path) -> Result<(), VerilatorError> {
    let t0 = Instant::now();
    let what = if traced { " with tracing" } else { "" };
    eprintln!(
        "protobrain: building the Verilator model of {cfg}{what} (once; cached under {})",
        root.display()
    );
    std::fs::create_dir_all(root).map_err(io_err("creating", root))?;
    let include = verilator_include(cfg)?;
    let tmp =
        tmp_dir(root, &dir.file_name().map(|n| n.to_string_lossy()[..16].to_string()).unwrap_or_default());
    let src = tmp.join("src");
    let obj = tmp.join("obj");
    for d in [&src, &obj] {
        std::fs::create_dir_all(d).map_err(io_err("creating", d))?;
    }
    // a failed build stays in its tmp-* directory (never taken for a model) with its logs
    let v = src.join("core.v");
    std::fs::write(&v, verilog).map_err(io_err("writing", &v))?;
    for (name, text) in [("pb_shim.h", recipe::SHIM_H), ("pb_runtime.cpp", recipe::RUNTIME_CPP)] {
        let p = src.join(name);
        std::fs::write(&p, text).map_err(io_err("writing", &p))?;
    }
    let mut vl = Command::new("verilator");
    vl.args(recipe::verilator_args("Vpb", &v, &obj, traced));
    run_logged(&mut vl, "verilator", "verilator", &tmp.join("verilator.log"), cfg)?;
    let mut sources = recipe::generated_sources(&obj).map_err(io_err("listing", &obj))?;
    sources.push(src.join("pb_runtime.cpp"));
    eprintln!(
        "protobrain: verilated in {:.1} s; compiling {} C++ files on {} threads",
        t0.elapsed().as_secs_f64(),
        sources.len(),
        threads()
    );
    let runtime = runtime_objects(cfg, &include, root, traced)?;
    let flags = recipe::cxx_flags(&include, &obj, Some(&src), traced);
    let jobs: Vec<recipe::Job> = sources
        .iter()
        .map(|s| recipe::Job {
            source: s.clone(),
            object: recipe::object_for(&obj, s),
            flags: flags.clone(),
            opt: recipe::opt_level(s),
        })
        .collect();
    compile(&jobs, cfg, &tmp)?;
    let mut link = Command::new(compiler());
    link.arg("-shared").arg("-o").arg(tmp.join(LIB));
    link.args(jobs.iter().map(|j| &j.object)).args(&runtime).arg("-pthread");
    run_logged(&mut link, "the linker (g++ -shared)", "g++", &tmp.join("link.log"), cfg)?;
    // keep the Verilog, the logs and the library; the C++ and objects are large
    let _ = std::fs::remove_dir_all(&obj);
    publish(&tmp, dir, LIB)
}

/// `$VERILATOR_ROOT/include` of the Verilator on PATH.
pub(super) fn verilator_include(cfg: &Config) -> Result<PathBuf, VerilatorError> {
    let out = Command::new("verilator").args(["--getenv", "VERILATOR_ROOT"]).output().map_err(|e| match e
        .kind()
    {
        std::io::ErrorKind::NotFound => {
            VerilatorError::ToolMissing { tool: "verilator".into(), package: "verilator", config: *cfg }
        }
        _ => VerilatorError::Io { what: "running", path: PathBuf::from("verilator"), source: e },
    })?;
    let root = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    let include = root.join("include");
    if !out.status.success() || !include.join("verilated.cpp").is_file() {
        return Err(VerilatorError::Load {
            path: include,
            detail: "`verilator --getenv VERILATOR_ROOT` does not point at Verilator's include files".into(),
        });
    }
    Ok(include)
}
