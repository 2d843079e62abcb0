//! Prebuilds the Verilator models of the configurations the tests and the presets need, and
//! links them into the library.
//!
//! ```text
//!   hdl::emit::verilog(cfg) ──► verilator --cc ──► g++ -c (NUM_JOBS) ──┐
//!   (one per PREBUILT cfg)                                             ├─► libprotobrain_verilated.a
//!   verilated.cpp, verilated_threads.cpp ──────► g++ -c ───────────────┘   + $OUT_DIR/prebuilt.rs
//! ```
//!
//! The Verilog is emitted here from `hdl` (a build-dependency), so a prebuilt model can never
//! be stale. Compiled objects are cached by the hash of the Verilog and the recipe under
//! `target/protobrain-verilated/static/`, shared by every profile: when `hdl` changes without
//! changing a design, this script reruns in about a second. Other configurations are built at
//! run time by `sim::verilated` with the same recipe (`src/verilated/recipe.rs`).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "src/verilated/recipe.rs"]
mod recipe;

/// (name, DIM, SCRATCH_ROWS, ACC_ROWS): the lockstep test sizes and the `default` and
/// `ecp5-25k` presets (`ecp5-85k` is the same design as `default`).
const PREBUILT: [(&str, usize, usize, usize); 5] = [
    ("d2_s16_a8", 2, 16, 8),
    ("d4_s16_a8", 4, 16, 8),
    ("d8_s32_a16", 8, 32, 16),
    ("d8_s1024_a512", 8, 1024, 512),
    ("d4_s2048_a1024", 4, 2048, 1024),
];

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    // without the `verilator` feature there is no Verilator model to build: no verilator, no C++
    if std::env::var_os("CARGO_FEATURE_VERILATOR").is_none() {
        return;
    }
    println!("cargo:rerun-if-changed=csrc");
    println!("cargo:rerun-if-changed=src/verilated/recipe.rs");
    if let Err(e) = run() {
        println!("cargo::error={e}");
    }
}

fn tool_output(cmd: &mut Command) -> Result<String, String> {
    match cmd.output() {
        Ok(o) if o.status.success() => Ok(String::from_utf8_lossy(&o.stdout).trim().to_string()),
        Ok(o) => Err(format!("{cmd:?} failed: {}", String::from_utf8_lossy(&o.stderr).trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(
            "verilator not found on PATH: protobrain-sim needs Verilator 5 (run scripts/setup.sh, or `apt-get install verilator`)"
                .to_string(),
        ),
        Err(e) => Err(format!("could not run {cmd:?}: {e}")),
    }
}

fn io<T>(what: &str, path: &Path, r: std::io::Result<T>) -> Result<T, String> {
    r.map_err(|e| format!("{what} {}: {e}", path.display()))
}

/// `target/` from `target/<profile>/build/<pkg>-<hash>/out`, else `OUT_DIR` itself.
fn cache_root(out: &Path) -> PathBuf {
    let up: Vec<&Path> = out.ancestors().collect();
    match up.get(2) {
        Some(b) if b.file_name().is_some_and(|n| n == "build") && up.len() > 4 => {
            up[4].join("protobrain-verilated")
        }
        _ => out.join("protobrain-verilated"),
    }
}

/// A directory of objects, built once into a temporary sibling and renamed into place.
struct Unit {
    dir: PathBuf,
    tmp: PathBuf,
    jobs: Vec<recipe::Job>,
}

impl Unit {
    fn fresh(&self) -> bool {
        !self.dir.join("objects.list").is_file()
    }
}

fn run() -> Result<(), String> {
    let out = PathBuf::from(std::env::var("OUT_DIR").map_err(|e| format!("OUT_DIR: {e}"))?);
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").map_err(|e| format!("{e}"))?);
    let csrc = manifest.join("csrc");
    let version = tool_output(Command::new("verilator").arg("--version"))?;
    let root = PathBuf::from(tool_output(Command::new("verilator").args(["--getenv", "VERILATOR_ROOT"]))?);
    let include = root.join("include");
    if !include.join("verilated.cpp").is_file() {
        return Err(format!("{version}: no verilated.cpp in {}", include.display()));
    }
    // a Verilator upgrade rebuilds the models
    println!("cargo:rerun-if-changed={}", include.join("verilated_config.h").display());
    let cache = cache_root(&out).join("static");
    io("creating", &cache, std::fs::create_dir_all(&cache))?;
    let stamp = format!("{}-{}", std::process::id(), recipe::key(&[out.as_os_str().as_encoded_bytes()]));

    let mut units: Vec<Unit> = Vec::new();
    // Verilator's run-time library, once for all models.
    let k = recipe::key(&[&recipe::RECIPE_VERSION.to_le_bytes(), version.as_bytes(), b"runtime"]);
    let tmp = cache.join(format!("tmp-verilated-{stamp}"));
    let flags = recipe::cxx_flags(&include, &include, None, false);
    let jobs = recipe::runtime_sources(&include, false)
        .into_iter()
        .map(|s| recipe::Job {
            object: recipe::object_for(&tmp, &s),
            source: s,
            flags: flags.clone(),
            opt: "-O2",
        })
        .collect();
    units.push(Unit { dir: cache.join(format!("verilated-{}", &k[..16])), tmp, jobs });

    let mut table = String::new();
    let mut externs = String::new();
    for (name, d, s, a) in PREBUILT {
        let cfg = spec::Config::new(d, s, a).map_err(|e| format!("prebuilt {name}: {e}"))?;
        let verilog = hdl::emit::verilog(&cfg).map_err(|e| format!("emitting {name}: {e}"))?;
        let k = recipe::key(&[
            &recipe::RECIPE_VERSION.to_le_bytes(),
            version.as_bytes(),
            recipe::SHIM_H.as_bytes(),
            name.as_bytes(),
            verilog.as_bytes(),
        ]);
        let _ = writeln!(table, "    Prebuilt {{ dims: ({d}, {s}, {a}), api: pb_api_{name} }},");
        let _ = writeln!(externs, "    fn pb_api_{name}() -> *const PbApi;");
        let mut unit = Unit {
            dir: cache.join(format!("{name}-{}", &k[..16])),
            tmp: cache.join(format!("tmp-{name}-{stamp}")),
            jobs: Vec::new(),
        };
        if unit.fresh() {
            let _ = std::fs::remove_dir_all(&unit.tmp);
            let obj = unit.tmp.join("obj");
            io("creating", &obj, std::fs::create_dir_all(&obj))?;
            let v = unit.tmp.join("core.v");
            io("writing", &v, std::fs::write(&v, &verilog))?;
            let prefix = format!("Vpb_{name}");
            let log = unit.tmp.join("verilator.log");
            let vl = hdl::tool::run_logged(
                Command::new("verilator").args(recipe::verilator_args(&prefix, &v, &obj, false)),
                &log,
                recipe::TOOL_TIMEOUT,
            )
            .map_err(|e| format!("running verilator: {e}"))?;
            if !matches!(vl, hdl::tool::Finished::Exited(s) if s.success()) {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!("verilator failed on {name} ({vl:?}): {}", recipe::tail(&text, 20)));
            }
            let api = obj.join(format!("pb_api_{name}.cpp"));
            let src = format!(
                "#include \"{prefix}.h\"\n#include \"pb_shim.h\"\nPB_DEFINE_API(pb_api_{name}, {prefix})\n"
            );
            io("writing", &api, std::fs::write(&api, src))?;
            let flags = recipe::cxx_flags(&include, &obj, Some(&csrc), false);
            for source in io("listing", &obj, recipe::generated_sources(&obj))? {
                let opt = recipe::opt_level(&source);
                let object = recipe::object_for(&unit.tmp, &source);
                unit.jobs.push(recipe::Job { source, object, flags: flags.clone(), opt });
            }
        }
        units.push(unit);
    }

    // One queue over every model, so all cores stay busy.
    let fresh: Vec<&Unit> = units.iter().filter(|u| u.fresh()).collect();
    let fresh_count = fresh.len();
    let t0 = std::time::Instant::now();
    if !fresh.is_empty() {
        for u in &fresh {
            io("creating", &u.tmp, std::fs::create_dir_all(&u.tmp))?;
        }
        let compiler = cc::Build::new().cpp(true).opt_level(2).debug(false).warnings(false).get_compiler();
        if let Err(e) = compiler.to_command().arg("--version").output() {
            return Err(format!(
                "C++ compiler {:?} not usable ({e}): protobrain-sim needs one for its Verilator models (run scripts/setup.sh, or `apt-get install g++`)",
                compiler.path()
            ));
        }
        let jobs: Vec<recipe::Job> = fresh.iter().flat_map(|u| u.jobs.iter().cloned()).collect();
        let threads = std::env::var("NUM_JOBS").ok().and_then(|n| n.parse().ok()).unwrap_or(2usize);
        recipe::compile_all(&jobs, threads, &|| compiler.to_command())
            .map_err(|f| format!("C++ compile failed: {}\n{}", f.command, recipe::tail(&f.output, 30)))?;
        for u in &fresh {
            // the generated C++ is large and no longer needed; core.v stays for reference
            let _ = std::fs::remove_dir_all(u.tmp.join("obj"));
            let list: String = u
                .jobs
                .iter()
                .filter_map(|j| j.object.file_name())
                .map(|n| format!("{}\n", n.to_string_lossy()))
                .collect();
            io("writing", &u.tmp, std::fs::write(u.tmp.join("objects.list"), list))?;
            if std::fs::rename(&u.tmp, &u.dir).is_err() {
                // another build finished the same unit first: its objects are the same
                let _ = std::fs::remove_dir_all(&u.tmp);
                if u.fresh() {
                    return Err(format!("could not move {} into place", u.dir.display()));
                }
            }
        }
    }

    // Drop entries of earlier designs of the same models (megabytes each) and abandoned
    // temporary directories, once they are an hour old: a concurrent build of another profile
    // may still be reading a recent one.
    let current: Vec<&Path> = units.iter().map(|u| u.dir.as_path()).collect();
    for e in std::fs::read_dir(&cache).into_iter().flatten().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = PREBUILT.iter().any(|m| name.starts_with(&format!("{}-", m.0)))
            || name.starts_with("verilated-")
            || name.starts_with("tmp-");
        let age = e.metadata().ok().and_then(|m| m.modified().ok()).and_then(|t| t.elapsed().ok());
        if ours && !current.contains(&p.as_path()) && age.is_some_and(|a| a.as_secs() > 3600) {
            let _ = std::fs::remove_dir_all(&p);
        }
    }

    let mut archive = cc::Build::new();
    archive.cpp(true).cargo_metadata(false).out_dir(&out);
    for u in &units {
        let list = io("reading", &u.dir, std::fs::read_to_string(u.dir.join("objects.list")))?;
        for o in list.lines().filter(|l| !l.is_empty()) {
            archive.object(u.dir.join(o));
        }
    }
    archive.try_compile("protobrain_verilated").map_err(|e| format!("archiving the models: {e}"))?;
    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=protobrain_verilated");
    println!("cargo:rustc-link-lib=dylib=stdc++");
    println!("cargo:rustc-env=PROTOBRAIN_VERILATOR_VERSION={version}");
    println!("cargo:rustc-env=PROTOBRAIN_VERILATED_CACHE={}", cache_root(&out).display());

    let times = format!(
        "{} of {} units compiled in {:.1} s (NUM_JOBS {})\n",
        fresh_count,
        units.len(),
        t0.elapsed().as_secs_f64(),
        std::env::var("NUM_JOBS").unwrap_or_default()
    );
    let _ = std::fs::write(out.join("build-times.txt"), times);
    let rs = format!(
        "// generated by sim/build.rs: the models linked into this library\n\
         unsafe extern \"C\" {{\n{externs}}}\n\
         static PREBUILT: &[Prebuilt] = &[\n{table}];\n"
    );
    let p = out.join("prebuilt.rs");
    io("writing", &p, std::fs::write(&p, rs))?;
    Ok(())
}
