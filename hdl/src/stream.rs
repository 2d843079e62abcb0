//! Stream test benches for the whole core: feed a command word stream with a stall pattern on
//! both streams, record every output word with the cycle it was taken on. The same host
//! behaviour drives the rust-hdl model ([`run_rust`]) and the emitted Verilog under Icarus
//! ([`run_icarus`]), so their traces compare word for word and cycle for cycle.
//!
//! ```text
//!   words ──► host TX (AXI4-Stream rules, stalls) ──► in_*  ┌──────────────┐
//!                                                           │ protobrain   │
//!   trace ◄── host RX: (cycle, word) on out_valid&ready ◄── │ _core        │
//!                       out_ready = !out_stall[cycle % P]   └──────────────┘
//! ```
//!
//! The host is [`spec::stream::Host`] (its rules are documented there); the Icarus test bench
//! is the same host written in Verilog, and the tests compare the two traces cycle for cycle.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use rust_hdl::prelude::*;
use thiserror::Error;

use crate::core::ProtobrainCore;
use crate::emit::TOP;
use crate::replay::{run_tool, work_dir, ReplayError};
pub use spec::stream::{quiet_cycles, DeviceOut, Host, HostOut, Stalls, Stuck, Trace};

/// Why a stream run failed.
#[derive(Debug, Error)]
pub enum StreamError {
    /// The core stopped taking input: a deadlock (or a limit too small for the program).
    #[error(transparent)]
    Stuck(#[from] Stuck),
    /// Running the simulator failed.
    #[error(transparent)]
    Tool(#[from] ReplayError),
    /// The simulator's output could not be read.
    #[error("bad simulator output: {0}")]
    Parse(String),
}

/// Run the rust-hdl model of `core` (fresh from [`ProtobrainCore::new`]).
pub fn run_rust(
    core: &mut ProtobrainCore,
    words: &[u32],
    stalls: &Stalls,
    limit: u64,
) -> Result<Trace, StreamError> {
    let dim = core.config().dim();
    core.connect_all();
    let settle = |core: &mut ProtobrainCore| {
        if simulate(core, 100) {
            Ok(())
        } else {
            Err(StreamError::Parse("rust-hdl simulation did not settle".into()))
        }
    };
    // one cycle of reset
    core.rst.next = true;
    core.in_valid.next = false;
    core.out_ready.next = false;
    core.clk.next = Clock { clk: false };
    settle(core)?;
    core.clk.next = Clock { clk: true };
    settle(core)?;
    core.clk.next = Clock { clk: false };
    core.rst.next = false;
    let mut host = Host::new(words, stalls, dim, limit);
    loop {
        let drive = host.drive();
        core.in_valid.next = drive.in_valid;
        core.in_data.next = u64::from(drive.in_data).into();
        core.out_ready.next = drive.out_ready;
        settle(core)?;
        let seen = DeviceOut {
            in_ready: core.in_ready.val(),
            out_valid: core.out_valid.val(),
            out_data: core.out_data.val().to_u64() as u32,
        };
        core.clk.next = Clock { clk: true };
        settle(core)?;
        core.clk.next = Clock { clk: false };
        if let Some(done) = host.observe(drive, seen) {
            return Ok(done?);
        }
    }
}

fn hex_file(values: impl Iterator<Item = String>) -> String {
    let mut s = String::new();
    for v in values {
        let _ = writeln!(s, "{v}");
    }
    s
}

/// Run `verilog` (top module [`TOP`]) under Icarus with the same host behaviour as
/// [`run_rust`]. `PROTOBRAIN_VCD=<dir>` keeps the work directory with a `wave.vcd`.
pub fn run_icarus(
    verilog: &str,
    dim: usize,
    words: &[u32],
    stalls: &Stalls,
    limit: u64,
) -> Result<Trace, StreamError> {
    run_icarus_beats(verilog, dim, 1, words, words, stalls, limit)
}

/// [`run_icarus`] on a core of `lanes` words per beat (docs/design.md "A wider link: LANES"):
/// `beats` is the flattened beat stream (`lanes` words a beat, lane 0 first; `spec::lanes::frame`
/// of `words`, the command words, from which the quiet tail is computed). The trace has one
/// entry per output *word*, `lanes` of them per beat with the beat's cycle, lane 0 first: its
/// [`Trace::words`] is the flattened output beat stream.
pub fn run_icarus_beats(
    verilog: &str,
    dim: usize,
    lanes: usize,
    words: &[u32],
    beats: &[u32],
    stalls: &Stalls,
    limit: u64,
) -> Result<Trace, StreamError> {
    assert!(lanes >= 1 && beats.len().is_multiple_of(lanes), "whole beats of {lanes} words");
    let keep_root = std::env::var_os("PROTOBRAIN_VCD").filter(|v| !v.is_empty()).map(PathBuf::from);
    let (dir, kept) = work_dir(TOP, keep_root.as_deref())?;
    let path = dir.as_path();
    let n = (beats.len() / lanes).max(1);
    let pi = stalls.input.len().max(1);
    let po = stalls.output.len().max(1);
    let fs = |e: std::io::Error| StreamError::Tool(ReplayError::Io(e));
    std::fs::write(path.join("core.v"), verilog).map_err(fs)?;
    let beat_hex = |b: &[u32]| b.iter().rev().map(|w| format!("{w:08x}")).collect::<String>();
    std::fs::write(path.join("words.hex"), hex_file(beats.chunks(lanes).map(beat_hex))).map_err(fs)?;
    let bits = |p: &[bool], len: usize| {
        hex_file((0..len).map(|i| if p.get(i) == Some(&true) { "1" } else { "0" }.into()))
    };
    std::fs::write(path.join("in_stall.hex"), bits(&stalls.input, pi)).map_err(fs)?;
    std::fs::write(path.join("out_stall.hex"), bits(&stalls.output, po)).map_err(fs)?;
    let quiet = quiet_cycles(dim, words);
    let total = beats.len() / lanes;
    let width = 32 * lanes;
    let vcd = if kept.is_some() { "$dumpfile(\"wave.vcd\"); $dumpvars(0, tb);" } else { "" };
    let tb = format!(
        r#"`timescale 1ns/1ps
module tb;
  reg clk = 1'b0, rst = 1'b1;
  reg [{wm}:0] words [0:{last_word}];
  reg in_stall [0:{last_in}];
  reg out_stall [0:{last_out}];
  reg [{wm}:0] in_data = 0;
  reg in_valid = 0, out_ready = 0, held = 0, took;
  wire in_ready, out_valid;
  wire [{wm}:0] out_data;
  integer ip = 0, cycle = 0, idle = 0, fd;
  {TOP} dut(.clk(clk), .rst(rst), .in_data(in_data), .in_valid(in_valid), .in_ready(in_ready),
            .out_data(out_data), .out_valid(out_valid), .out_ready(out_ready));
  initial begin
    $readmemh("words.hex", words);
    $readmemh("in_stall.hex", in_stall);
    $readmemh("out_stall.hex", out_stall);
    {vcd}
    fd = $fopen("out.txt", "w");
    #1 clk = 1'b1; #1 clk = 1'b0; rst = 1'b0;
    forever begin
      in_valid = (ip < {total}) && (held || !in_stall[cycle % {pi}]);
      in_data = (ip < {total}) ? words[ip] : {width}'d0;
      out_ready = !out_stall[cycle % {po}];
      #1;
      took = in_valid && in_ready;
      if (out_valid && out_ready) begin
        $fwrite(fd, "o %0d %h\n", cycle, out_data);
        idle = 0;
      end else if (ip >= {total}) idle = idle + 1;
      held = in_valid && !took;
      if (took) begin
        $fwrite(fd, "i %0d\n", cycle);
        ip = ip + 1;
      end
      clk = 1'b1; #1 clk = 1'b0;
      cycle = cycle + 1;
      if (ip >= {total} && idle >= {quiet}) begin $fwrite(fd, "done %0d\n", cycle); $fclose(fd); $finish; end
      if (cycle >= {limit}) begin $fwrite(fd, "stuck %0d\n", ip); $fclose(fd); $finish; end
    end
  end
endmodule
"#,
        last_word = n - 1,
        wm = width - 1,
        last_in = pi - 1,
        last_out = po - 1,
    );
    std::fs::write(path.join("tb.v"), tb).map_err(fs)?;
    let run = run_tool(
        Command::new("iverilog")
            .args(["-g2012", "-o", "sim.vvp", "-s", "tb", "tb.v", "core.v"])
            .current_dir(path),
        "iverilog",
        path,
    )?;
    if !run.success {
        return Err(ReplayError::Compile(run.log).into());
    }
    let run = run_tool(Command::new("vvp").args(["-n", "sim.vvp"]).current_dir(path), "vvp", path)?;
    if !run.success {
        return Err(ReplayError::Run(run.log).into());
    }
    let text = std::fs::read_to_string(path.join("out.txt")).map_err(fs)?;
    let mut trace = Trace::default();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            ["o", c, w] => {
                let c = c.parse().map_err(|_| StreamError::Parse(line.into()))?;
                if w.len() != 8 * lanes {
                    return Err(StreamError::Parse(format!("not a beat of {lanes} words: {line}")));
                }
                // lane 0 is the last 8 hex digits
                for j in (0..lanes).rev() {
                    let w = u32::from_str_radix(&w[8 * j..8 * j + 8], 16)
                        .map_err(|_| StreamError::Parse(format!("x/z output: {line}")))?;
                    trace.outputs.push((c, w));
                }
            }
            ["i", c] => trace.last_input_cycle = c.parse().map_err(|_| StreamError::Parse(line.into()))?,
            ["done", c] => {
                trace.cycles = c.parse().map_err(|_| StreamError::Parse(line.into()))?;
                return Ok(trace);
            }
            ["stuck", taken] => {
                let taken = taken.parse().map_err(|_| StreamError::Parse(line.into()))?;
                return Err(Stuck { taken, total, limit }.into());
            }
            _ => return Err(StreamError::Parse(line.into())),
        }
    }
    Err(StreamError::Parse("simulation ended without a verdict".into()))
}
