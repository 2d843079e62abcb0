//! Lockstep checking of emitted Verilog: record a stimulus once, run it through the rust-hdl
//! simulation ([`simulate`]) and through the emitted Verilog under Icarus ([`replay`]), and
//! compare the two traces cycle by cycle (the pattern of RHDL's synchronous test benches).
//!
//! ```text
//!   stimulus[c][i] ──┬──► simulate(): rust-hdl block, update_all() ──► trace[c][j]  ─┐
//!   (input i,        │                                                               ├─ equal?
//!    cycle c)        └──► replay(): generate_verilog → tb.v → iverilog → vvp ──► trace ─┘
//! ```
//!
//! Both runners use the same cycle: apply the inputs of cycle `c` (clock low), let the logic
//! settle, sample every output, then one rising clock edge. Output `j` of cycle `c` therefore
//! shows the registers after `c` edges and the combinational response to the inputs of cycle
//! `c`.
//!
//! Values are raw bits in a `u128` (ports up to 128 bits); a signed output is
//! [`sign_extend`]ed by the caller.
//!
//! Set `PROTOBRAIN_VCD=<dir>` to keep each replay's work directory (design, test bench, hex
//! files, output) under `<dir>` together with a `wave.vcd` of the whole design; the directory is
//! printed on stderr.
//!
//! Two more checks of emitted Verilog live here because they share the tool plumbing:
//! [`verilator_lint`] (`verilator --lint-only -Wall`, parsed warnings) and [`ice40_cells`]
//! (`yosys synth_ice40`, cell counts). rust-hdl's own `yosys_validate` covers the
//! read/hierarchy/proc check.
//!
//! Every tool runs in a fresh temporary directory with its output in files, under a
//! [`TOOL_TIMEOUT`]; a missing executable is [`ReplayError::ToolMissing`], which says what to
//! install.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rust_hdl::prelude::{Block, Clock, In, Signal};
use thiserror::Error;

use crate::primitives::mask;
pub use crate::primitives::sign_extend;
use crate::tool::Finished;

/// A port of the top module: its name in the emitted Verilog (rust-hdl names element `i` of a
/// `Vec` field `field$i`) and its width in bits (1..=128).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    /// Verilog port name, e.g. `act_in$0`.
    pub name: String,
    /// Width in bits, 1..=128.
    pub width: usize,
}

impl Port {
    /// A port called `name`, `width` bits wide.
    pub fn new(name: impl Into<String>, width: usize) -> Self {
        Port { name: name.into(), width }
    }

    /// The ports of a `Vec` field: `field$0 .. field$(count-1)`.
    pub fn vec(field: &str, count: usize, width: usize) -> Vec<Port> {
        (0..count).map(|i| Port::new(format!("{field}${i}"), width)).collect()
    }
}

/// Why a replay (or a rust-hdl lockstep simulation) failed.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// A tool's executable is not on `PATH`.
    #[error("`{tool}` not found on PATH: install {package} (scripts/setup.sh)")]
    ToolMissing {
        /// The executable that was not found.
        tool: &'static str,
        /// The package that provides it.
        package: &'static str,
    },
    /// A port or clock name that is not a plain Verilog identifier, or a bad width.
    #[error("bad port `{name}`: {why}")]
    BadPort {
        /// The offending name.
        name: String,
        /// What is wrong with it.
        why: String,
    },
    /// A stimulus row does not have one value per input.
    #[error("stimulus cycle {cycle} has {got} values, expected {expected} (one per input port)")]
    StimulusShape {
        /// Cycle index.
        cycle: usize,
        /// Values in that row.
        got: usize,
        /// Number of input ports.
        expected: usize,
    },
    /// A stimulus value wider than its port.
    #[error("stimulus cycle {cycle}, input `{port}`: {value:#x} does not fit in {width} bits")]
    StimulusValue {
        /// Cycle index.
        cycle: usize,
        /// Input port name.
        port: String,
        /// The value.
        value: u128,
        /// The port width.
        width: usize,
    },
    /// Icarus rejected the design or the generated test bench.
    #[error("iverilog rejected the design:\n{0}")]
    Compile(String),
    /// `vvp` failed or timed out.
    #[error("vvp failed: {0}")]
    Run(String),
    /// Verilator or Yosys failed (their log).
    #[error("`{tool}` failed:\n{log}")]
    ToolFailed {
        /// The tool.
        tool: &'static str,
        /// Its exit status and output.
        log: String,
    },
    /// An output was x or z in the Verilog simulation.
    #[error("output `{port}` is undefined at cycle {cycle}: {text}")]
    Undefined {
        /// Cycle index.
        cycle: usize,
        /// Output port name.
        port: String,
        /// What Icarus printed (hex digits with x/z).
        text: String,
    },
    /// The simulator's output file could not be understood.
    #[error("unexpected simulator output: {0}")]
    Output(String),
    /// The rust-hdl simulation did not settle (a combinational loop).
    #[error("rust-hdl simulation did not settle within 100 iterations at cycle {cycle}")]
    NoConvergence {
        /// Cycle index.
        cycle: usize,
    },
    /// File system trouble in the work directory.
    #[error("replay work directory: {0}")]
    Io(#[from] std::io::Error),
}

/// Longest a single tool run may take before it is killed (reported as [`ReplayError::Run`]).
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(600);

/// Runs `verilog` (whose top module is `top`) under Icarus Verilog with `stimulus` and returns
/// the sampled outputs: `result[c][j]` is output `j` during cycle `c`.
///
/// `stimulus[c][i]` is input `i` during cycle `c`; `clock` is the top's clock port, which the
/// test bench drives (do not list it in `inputs`). Every top-level input should be listed: an
/// unlisted input floats (z), which shows up as an [`ReplayError::Undefined`] output.
///
/// An x or z on any output is an error ([`ReplayError::Undefined`]): rust-hdl has no unknown
/// values, so an X means the Verilog and the Rust model diverge (a floating input, a memory
/// read before it was written).
pub fn replay(
    verilog: &str,
    top: &str,
    clock: &str,
    inputs: &[Port],
    outputs: &[Port],
    stimulus: &[Vec<u128>],
) -> Result<Vec<Vec<u128>>, ReplayError> {
    let keep_root = std::env::var_os("PROTOBRAIN_VCD").filter(|v| !v.is_empty()).map(PathBuf::from);
    replay_in(verilog, top, clock, inputs, outputs, stimulus, keep_root.as_deref())
}

/// [`replay`] with the `PROTOBRAIN_VCD` choice made by the caller: with `keep_root`, the work
/// directory is created under it, kept, and gets a `wave.vcd`.
fn replay_in(
    verilog: &str,
    top: &str,
    clock: &str,
    inputs: &[Port],
    outputs: &[Port],
    stimulus: &[Vec<u128>],
    keep_root: Option<&Path>,
) -> Result<Vec<Vec<u128>>, ReplayError> {
    check_identifier(top)?;
    check_identifier(clock)?;
    for port in inputs.iter().chain(outputs) {
        check_identifier(&port.name)?;
        if !(1..=128).contains(&port.width) {
            return Err(ReplayError::BadPort {
                name: port.name.clone(),
                why: format!("width must be in 1..=128, got {}", port.width),
            });
        }
    }
    for (cycle, row) in stimulus.iter().enumerate() {
        if row.len() != inputs.len() {
            return Err(ReplayError::StimulusShape { cycle, got: row.len(), expected: inputs.len() });
        }
        for (value, port) in row.iter().zip(inputs) {
            if value & !mask(port.width) != 0 {
                return Err(ReplayError::StimulusValue {
                    cycle,
                    port: port.name.clone(),
                    value: *value,
                    width: port.width,
                });
            }
        }
    }
    if stimulus.is_empty() {
        return Ok(vec![]);
    }

    let (work, keep) = work_dir(top, keep_root)?;
    let dir = work.as_path();
    std::fs::write(dir.join("design.v"), verilog)?;
    for (i, port) in inputs.iter().enumerate() {
        let mut hex = String::with_capacity(stimulus.len() * (port.width.div_ceil(4) + 1));
        for row in stimulus {
            writeln!(hex, "{:x}", row[i]).expect("writing to a String");
        }
        std::fs::write(dir.join(format!("in{i}.hex")), hex)?;
    }
    std::fs::write(
        dir.join("tb.v"),
        test_bench(top, clock, inputs, outputs, stimulus.len(), keep.is_some()),
    )?;

    let compile = run_tool(
        Command::new("iverilog")
            .current_dir(dir)
            .args(["-g2012", "-s", TB_NAME, "-o", "tb.vvp", "design.v", "tb.v"]),
        "iverilog",
        dir,
    )?;
    if !compile.success {
        return Err(ReplayError::Compile(compile.log));
    }
    let run = run_tool(Command::new("vvp").current_dir(dir).args(["-n", "tb.vvp"]), "vvp", dir)?;
    if !run.success {
        return Err(ReplayError::Run(run.log));
    }
    let text = std::fs::read_to_string(dir.join("out.txt"))?;
    let trace = parse_trace(&text, outputs, stimulus.len())?;
    if let Some(kept) = keep {
        eprintln!("replay of `{top}` kept in {}", kept.display());
    }
    Ok(trace)
}

/// Runs a rust-hdl block through the same cycles as [`replay`]: for each stimulus row, `apply`
/// sets the inputs (clock low), the logic settles, `sample` reads the outputs, then one rising
/// clock edge. `clock` selects the block's clock input.
///
/// Calls `connect_all` on `uut` first. The result has the shape of [`replay`]'s.
pub fn simulate<B: Block>(
    uut: &mut B,
    clock: impl Fn(&mut B) -> &mut Signal<In, Clock>,
    stimulus: &[Vec<u128>],
    mut apply: impl FnMut(&mut B, &[u128]),
    mut sample: impl FnMut(&B) -> Vec<u128>,
) -> Result<Vec<Vec<u128>>, ReplayError> {
    uut.connect_all();
    let mut trace = Vec::with_capacity(stimulus.len());
    for (cycle, row) in stimulus.iter().enumerate() {
        apply(uut, row);
        settle(uut, cycle)?;
        trace.push(sample(uut));
        clock(uut).next = Clock { clk: true };
        settle(uut, cycle)?;
        clock(uut).next = Clock { clk: false };
        settle(uut, cycle)?;
    }
    Ok(trace)
}

/// One `verilator --lint-only -Wall` warning.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct LintWarning {
    /// The warning code, e.g. `UNUSEDSIGNAL`.
    pub code: String,
    /// The message after the file position, e.g. `Signal is not used: 'pe$2$act_out'`.
    pub message: String,
}

/// Lints `verilog` (top module `top`) with `verilator --lint-only -Wall` and returns every
/// warning. Verilator errors (as opposed to warnings) are [`ReplayError::ToolFailed`].
pub fn verilator_lint(verilog: &str, top: &str) -> Result<Vec<LintWarning>, ReplayError> {
    check_identifier(top)?;
    let work = tempfile::Builder::new().prefix("lint-").tempdir()?;
    let dir = work.path();
    std::fs::write(dir.join("design.v"), verilog)?;
    let run = run_tool(
        Command::new("verilator").current_dir(dir).args([
            "--lint-only",
            "-Wall",
            "-Wno-fatal",
            "--top-module",
            top,
            "design.v",
        ]),
        "verilator",
        dir,
    )?;
    if !run.success {
        return Err(ReplayError::ToolFailed { tool: "verilator", log: run.log });
    }
    let mut warnings = vec![];
    for line in run.log.lines() {
        let Some(rest) = line.strip_prefix("%Warning-") else { continue };
        let Some((code, tail)) = rest.split_once(':') else { continue };
        // tail: " design.v:LINE:COL: message"
        let message = tail.splitn(4, ':').nth(3).unwrap_or(tail).trim().to_string();
        warnings.push(LintWarning { code: code.to_string(), message });
    }
    Ok(warnings)
}

/// An FPGA family for [`synth_cells`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fpga {
    /// Lattice iCE40 (`synth_ice40`, with `-dsp` to map multipliers onto SB_MAC16).
    Ice40 {
        /// Use the DSP blocks.
        dsp: bool,
    },
    /// Lattice ECP5 (`synth_ecp5`).
    Ecp5,
}

/// Synthesises `verilog` (top module `top`) with Yosys for `fpga` and returns the cell counts
/// of the flattened design, e.g. `SB_LUT4 -> 42` or `DP16KD -> 4`.
pub fn synth_cells(
    verilog: &str,
    top: &str,
    fpga: Fpga,
) -> Result<std::collections::BTreeMap<String, usize>, ReplayError> {
    check_identifier(top)?;
    let work = tempfile::Builder::new().prefix("synth-").tempdir()?;
    let dir = work.path();
    std::fs::write(dir.join("design.v"), verilog)?;
    let synth = match fpga {
        Fpga::Ice40 { dsp: true } => "synth_ice40 -dsp",
        Fpga::Ice40 { dsp: false } => "synth_ice40",
        Fpga::Ecp5 => "synth_ecp5",
    };
    let script = format!("read_verilog design.v; {synth} -top {top}; tee -o stat.txt stat");
    let run = run_tool(Command::new("yosys").current_dir(dir).args(["-q", "-p", &script]), "yosys", dir)?;
    if !run.success {
        return Err(ReplayError::ToolFailed { tool: "yosys", log: run.log });
    }
    let stat = std::fs::read_to_string(dir.join("stat.txt"))?;
    let mut cells = std::collections::BTreeMap::new();
    for line in stat.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if let [name, count] = fields[..] {
            if let Ok(n) = count.parse::<usize>() {
                cells.insert(name.to_string(), n);
            }
        }
    }
    if cells.is_empty() {
        return Err(ReplayError::Output(format!("no cells in Yosys statistics:\n{stat}")));
    }
    Ok(cells)
}

/// [`synth_cells`] for iCE40, keeping only the `SB_*` cells.
pub fn ice40_cells(
    verilog: &str,
    top: &str,
    dsp: bool,
) -> Result<std::collections::BTreeMap<String, usize>, ReplayError> {
    let mut cells = synth_cells(verilog, top, Fpga::Ice40 { dsp })?;
    cells.retain(|name, _| name.starts_with("SB_"));
    Ok(cells)
}

/// Reads `verilog` with Yosys and checks its hierarchy under `top` (`read_verilog;
/// hierarchy -check -top TOP; proc`): rust-hdl's `yosys_validate` for a top not named `top`.
pub fn yosys_check(verilog: &str, top: &str) -> Result<(), ReplayError> {
    check_identifier(top)?;
    let work = tempfile::Builder::new().prefix("yosys-check-").tempdir()?;
    let dir = work.path();
    std::fs::write(dir.join("design.v"), verilog)?;
    let script = format!("read_verilog design.v; hierarchy -check -top {top}; proc");
    let run = run_tool(Command::new("yosys").current_dir(dir).args(["-q", "-p", &script]), "yosys", dir)?;
    if !run.success {
        return Err(ReplayError::ToolFailed { tool: "yosys", log: run.log });
    }
    Ok(())
}

fn settle<B: Block>(uut: &mut B, cycle: usize) -> Result<(), ReplayError> {
    if rust_hdl::prelude::simulate(uut, 100) {
        Ok(())
    } else {
        Err(ReplayError::NoConvergence { cycle })
    }
}

const TB_NAME: &str = "protobrain_replay_tb";

fn check_identifier(name: &str) -> Result<(), ReplayError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
        Ok(())
    } else {
        Err(ReplayError::BadPort {
            name: name.to_string(),
            why: "not a simple Verilog identifier ([A-Za-z_][A-Za-z0-9_$]*)".into(),
        })
    }
}

/// The work directory: a temporary one removed on drop, or one kept under `PROTOBRAIN_VCD`.
pub(crate) enum WorkDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl WorkDir {
    pub(crate) fn as_path(&self) -> &Path {
        match self {
            WorkDir::Temp(t) => t.path(),
            WorkDir::Kept(p) => p,
        }
    }
}

/// The work directory of one replay, and its path when it is kept (then a VCD is dumped too).
pub(crate) fn work_dir(
    top: &str,
    keep_root: Option<&Path>,
) -> Result<(WorkDir, Option<PathBuf>), ReplayError> {
    let prefix = format!("replay-{}-", top.replace('$', "_"));
    match keep_root {
        Some(root) => {
            std::fs::create_dir_all(root)?;
            let path = tempfile::Builder::new().prefix(&prefix).tempdir_in(root)?.keep();
            Ok((WorkDir::Kept(path.clone()), Some(path)))
        }
        None => Ok((WorkDir::Temp(tempfile::Builder::new().prefix(&prefix).tempdir()?), None)),
    }
}

fn test_bench(top: &str, clock: &str, inputs: &[Port], outputs: &[Port], cycles: usize, vcd: bool) -> String {
    let mut tb = String::new();
    let w = &mut tb;
    // `writeln!` into a String cannot fail.
    let _ = writeln!(w, "`timescale 1ns/1ps");
    let _ = writeln!(w, "module {TB_NAME};");
    let _ = writeln!(w, "  reg clk = 1'b0;");
    let _ = writeln!(w, "  integer cycle;");
    let _ = writeln!(w, "  integer fd;");
    for (i, p) in inputs.iter().enumerate() {
        let _ = writeln!(w, "  reg [{}:0] in{i} = 0;", p.width - 1);
        let _ = writeln!(w, "  reg [{}:0] mem{i} [0:{}];", p.width - 1, cycles - 1);
    }
    for (j, p) in outputs.iter().enumerate() {
        let _ = writeln!(w, "  wire [{}:0] out{j};", p.width - 1);
    }
    let mut conns = vec![format!("    .{clock}(clk)")];
    conns.extend(inputs.iter().enumerate().map(|(i, p)| format!("    .{}(in{i})", p.name)));
    conns.extend(outputs.iter().enumerate().map(|(j, p)| format!("    .{}(out{j})", p.name)));
    let _ = writeln!(w, "  {top} dut(\n{}\n  );", conns.join(",\n"));
    let _ = writeln!(w, "  initial begin");
    for i in 0..inputs.len() {
        let _ = writeln!(w, "    $readmemh(\"in{i}.hex\", mem{i});");
    }
    if vcd {
        let _ = writeln!(w, "    $dumpfile(\"wave.vcd\");");
        let _ = writeln!(w, "    $dumpvars(0, dut);");
    }
    let _ = writeln!(w, "    fd = $fopen(\"out.txt\", \"w\");");
    let _ = writeln!(w, "    for (cycle = 0; cycle < {cycles}; cycle = cycle + 1) begin");
    for i in 0..inputs.len() {
        let _ = writeln!(w, "      in{i} = mem{i}[cycle];");
    }
    let _ = writeln!(w, "      #1;");
    let fmt = vec!["%h"; outputs.len()].join(" ");
    let args: String = (0..outputs.len()).map(|j| format!(", out{j}")).collect();
    let _ = writeln!(w, "      $fwrite(fd, \"{fmt}\\n\"{args});");
    let _ = writeln!(w, "      clk = 1'b1;");
    let _ = writeln!(w, "      #1;");
    let _ = writeln!(w, "      clk = 1'b0;");
    let _ = writeln!(w, "    end");
    let _ = writeln!(w, "    $fclose(fd);");
    let _ = writeln!(w, "    $finish;");
    let _ = writeln!(w, "  end");
    let _ = writeln!(w, "endmodule");
    tb
}

pub(crate) struct ToolRun {
    pub(crate) success: bool,
    pub(crate) log: String,
}

/// Runs a tool with stdout/stderr in files of the work directory (no pipe can fill up), kills
/// it after [`TOOL_TIMEOUT`].
pub(crate) fn run_tool(cmd: &mut Command, tool: &'static str, dir: &Path) -> Result<ToolRun, ReplayError> {
    let log_path = dir.join(format!("{tool}.log"));
    let status = match crate::tool::run_logged(cmd, &log_path, TOOL_TIMEOUT) {
        Ok(Finished::Exited(status)) => status,
        Ok(Finished::TimedOut) => {
            return Err(ReplayError::Run(format!("`{tool}` killed after {} s", TOOL_TIMEOUT.as_secs())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let package = if tool == "vvp" { "iverilog" } else { tool };
            return Err(ReplayError::ToolMissing { tool, package });
        }
        Err(e) => return Err(e.into()),
    };
    let text = std::fs::read_to_string(&log_path)?;
    Ok(ToolRun { success: status.success(), log: format!("{status}\n{text}") })
}

fn parse_trace(text: &str, outputs: &[Port], cycles: usize) -> Result<Vec<Vec<u128>>, ReplayError> {
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() != cycles {
        return Err(ReplayError::Output(format!("expected {cycles} lines of outputs, got {}", lines.len())));
    }
    let mut trace = Vec::with_capacity(cycles);
    for (cycle, line) in lines.iter().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != outputs.len() {
            return Err(ReplayError::Output(format!(
                "cycle {cycle}: expected {} values, got `{line}`",
                outputs.len()
            )));
        }
        let mut row = Vec::with_capacity(outputs.len());
        for (field, port) in fields.iter().zip(outputs) {
            if field.chars().any(|c| matches!(c, 'x' | 'X' | 'z' | 'Z')) {
                return Err(ReplayError::Undefined {
                    cycle,
                    port: port.name.clone(),
                    text: field.to_string(),
                });
            }
            let value = u128::from_str_radix(field, 16).map_err(|e| {
                ReplayError::Output(format!("cycle {cycle}, `{}`: `{field}`: {e}", port.name))
            })?;
            row.push(value);
        }
        trace.push(row);
    }
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::simulate;
    use super::*;
    use rust_hdl::prelude::*;

    /// A hand-written design: a 128-bit registered accumulator with an enable, and a
    /// combinational output of the current input.
    const ACC128: &str = r#"
module acc128(input wire clk, input wire en, input wire [127:0] a,
              output reg [127:0] acc, output wire [3:0] low);
  initial acc = 0;
  always @(posedge clk) if (en) acc <= acc + a;
  assign low = a[3:0];
endmodule
"#;

    fn acc_ports() -> (Vec<Port>, Vec<Port>) {
        (vec![Port::new("en", 1), Port::new("a", 128)], vec![Port::new("acc", 128), Port::new("low", 4)])
    }

    #[test]
    fn replays_wide_ports_cycle_by_cycle() {
        let (inputs, outputs) = acc_ports();
        let big = u128::MAX - 5;
        let stimulus = vec![vec![1, 7], vec![0, 100], vec![1, big], vec![1, 10], vec![0, 0x1f]];
        let trace = replay(ACC128, "acc128", "clk", &inputs, &outputs, &stimulus).unwrap();
        // Outputs are sampled before the cycle's rising edge.
        let want = vec![
            vec![0, 7],
            vec![7, 4],
            vec![7, big & 0xf],
            vec![7u128.wrapping_add(big), 10],
            vec![7u128.wrapping_add(big).wrapping_add(10), 0xf],
        ];
        assert_eq!(trace, want);
        assert_eq!(replay(ACC128, "acc128", "clk", &inputs, &outputs, &[]).unwrap(), Vec::<Vec<u128>>::new());
    }

    /// TOOLCHAIN-NOTES' literal-width hazard: `(a + 1) >> 1` on 8 bits is 0 for a = 255 in
    /// rust-hdl, 128 in Verilog (the literal makes the sum 32 bits wide).
    #[derive(LogicBlock, Default)]
    struct Halve {
        clock: Signal<In, Clock>,
        a: Signal<In, Bits<8>>,
        y: Signal<Out, Bits<8>>,
    }

    impl Logic for Halve {
        #[hdl_gen]
        fn update(&mut self) {
            self.y.next = (self.a.val() + 1) >> 1;
        }
    }

    #[test]
    fn lockstep_catches_a_rust_hdl_verilog_disagreement() {
        let stimulus: Vec<Vec<u128>> = [3u128, 254, 255].iter().map(|&a| vec![a]).collect();
        let mut uut = Halve::default();
        let rust = simulate(
            &mut uut,
            |u| &mut u.clock,
            &stimulus,
            |u, r| u.a.next = (r[0] as u64).into(),
            |u| vec![u.y.val().to_u128()],
        )
        .unwrap();
        let verilog = replay(
            &generate_verilog(&uut),
            "top",
            "clock",
            &[Port::new("a", 8)],
            &[Port::new("y", 8)],
            &stimulus,
        )
        .unwrap();
        assert_eq!(rust, vec![vec![2], vec![127], vec![0]]);
        assert_eq!(verilog, vec![vec![2], vec![127], vec![128]]);
    }

    #[derive(LogicBlock, Default)]
    struct Oscillator {
        clock: Signal<In, Clock>,
        y: Signal<Out, Bit>,
    }

    impl Logic for Oscillator {
        #[hdl_gen]
        fn update(&mut self) {
            self.y.next = !self.y.val();
        }
    }

    #[test]
    fn combinational_loop_in_rust_hdl_is_an_error() {
        let mut uut = Oscillator::default();
        let err = simulate(&mut uut, |u| &mut u.clock, &[vec![]], |_, _| {}, |_| vec![]);
        assert_eq!(
            err.unwrap_err().to_string(),
            "rust-hdl simulation did not settle within 100 iterations at cycle 0"
        );
    }

    #[test]
    fn compile_errors_carry_the_tool_message() {
        let err = replay("module top(input wire clock; endmodule", "top", "clock", &[], &[], &[vec![]])
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ReplayError::Compile(_)), "{text}");
        assert!(text.starts_with("iverilog rejected the design:"), "{text}");
        assert!(text.contains("syntax error"), "{text}");
    }

    #[test]
    fn a_missing_tool_says_how_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let err =
            run_tool(&mut Command::new("protobrain-no-such-tool"), "iverilog", dir.path()).err().unwrap();
        assert_eq!(err.to_string(), "`iverilog` not found on PATH: install iverilog (scripts/setup.sh)");
        let err = run_tool(&mut Command::new("protobrain-no-such-tool"), "vvp", dir.path()).err().unwrap();
        assert_eq!(err.to_string(), "`vvp` not found on PATH: install iverilog (scripts/setup.sh)");
    }

    #[test]
    fn undriven_outputs_are_reported_with_cycle_and_port() {
        let v = "module top(input wire clock, input wire a, output wire y, output wire z);\n\
                 assign y = a;\nendmodule\n";
        let outputs = [Port::new("y", 1), Port::new("z", 1)];
        let err = replay(v, "top", "clock", &[Port::new("a", 1)], &outputs, &[vec![1]]).unwrap_err();
        assert_eq!(err.to_string(), "output `z` is undefined at cycle 0: z");
    }

    #[test]
    fn bad_stimulus_and_ports_are_rejected_before_simulating() {
        let (inputs, outputs) = acc_ports();
        let run = |stim: &[Vec<u128>]| {
            replay(ACC128, "acc128", "clk", &inputs, &outputs, stim).unwrap_err().to_string()
        };
        assert_eq!(
            run(&[vec![1, 2], vec![1]]),
            "stimulus cycle 1 has 1 values, expected 2 (one per input port)"
        );
        assert_eq!(run(&[vec![2, 0]]), "stimulus cycle 0, input `en`: 0x2 does not fit in 1 bits");
        let err = replay(ACC128, "acc128", "clk", &[Port::new("a b", 1)], &[], &[vec![0]]);
        assert_eq!(
            err.unwrap_err().to_string(),
            "bad port `a b`: not a simple Verilog identifier ([A-Za-z_][A-Za-z0-9_$]*)"
        );
        let err = replay(ACC128, "acc128", "clk", &[Port::new("a", 129)], &[], &[vec![0]]);
        assert_eq!(err.unwrap_err().to_string(), "bad port `a`: width must be in 1..=128, got 129");
    }

    #[test]
    fn keeping_the_work_directory_dumps_a_vcd() {
        let root = tempfile::tempdir().unwrap();
        let (inputs, outputs) = acc_ports();
        let stimulus = vec![vec![1, 1], vec![1, 2]];
        let trace =
            replay_in(ACC128, "acc128", "clk", &inputs, &outputs, &stimulus, Some(root.path())).unwrap();
        assert_eq!(trace, vec![vec![0, 1], vec![1, 2]]);
        let kept: Vec<PathBuf> = std::fs::read_dir(root.path()).unwrap().map(|e| e.unwrap().path()).collect();
        assert_eq!(kept.len(), 1);
        let vcd = std::fs::read_to_string(kept[0].join("wave.vcd")).unwrap();
        assert!(vcd.contains("$var") && vcd.contains(" acc "), "{vcd}");
        assert!(kept[0].join("tb.v").exists() && kept[0].join("design.v").exists());
    }

    #[test]
    fn lint_and_synthesis_reports_are_parsed() {
        let lint_me = "module lint_me(input wire clk, input wire [7:0] a, output wire [3:0] y);\n\
                       assign y = a[3:0] + 1;\nendmodule\n";
        let warning = |code: &str, message: &str| LintWarning { code: code.into(), message: message.into() };
        assert_eq!(
            verilator_lint(lint_me, "lint_me").unwrap(),
            vec![
                warning("DECLFILENAME", "Filename 'design' does not match MODULE name: 'lint_me'"),
                warning("UNUSEDSIGNAL", "Signal is not used: 'clk'"),
                warning("UNUSEDSIGNAL", "Bits of signal are not used: 'a'[7:4]"),
            ]
        );
        let err = verilator_lint("module acc128(input wire clk; endmodule", "acc128").unwrap_err();
        assert!(matches!(err, ReplayError::ToolFailed { tool: "verilator", .. }), "{err}");

        let cells = ice40_cells(ACC128, "acc128", false).unwrap();
        assert!(cells["SB_CARRY"] >= 126, "a 128-bit adder: {cells:?}");
        assert_eq!(cells.get("SB_DFFE"), Some(&128), "{cells:?}");
    }

    #[test]
    fn sign_extend_reads_signed_outputs() {
        assert_eq!(sign_extend(0xffff_ff80, 32), -128);
        assert_eq!(sign_extend(0x7fff_ffff, 32), i32::MAX as i128);
    }
}
