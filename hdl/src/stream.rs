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
//! Host rules (DESIGN.md): `in_valid` never waits for `in_ready`; once raised it stays high
//! with the same word until the word is taken. The host raises `in_valid` for a new word on
//! cycles where `in_stall[cycle % P]` is false. Cycle 0 is the first cycle after one cycle of
//! reset. A run ends when every input word was taken and no output appeared for
//! `quiet` cycles; it fails if the input is not consumed within `limit` cycles.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use rust_hdl::prelude::*;
use thiserror::Error;

use crate::core::ProtobrainCore;
use crate::emit::TOP;
use crate::replay::{run_tool, work_dir, ReplayError};

/// Stall patterns of the host, repeated with period `len()`; `true` = stall that cycle.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stalls {
    /// `true`: the host does not offer a new input word this cycle.
    pub input: Vec<bool>,
    /// `true`: the host is not ready for an output word this cycle.
    pub output: Vec<bool>,
}

impl Stalls {
    /// No stalls: a word offered every cycle, always ready.
    pub fn none() -> Self {
        Stalls { input: vec![false], output: vec![false] }
    }

    fn input_at(&self, cycle: u64) -> bool {
        !self.input.is_empty() && self.input[(cycle % self.input.len() as u64) as usize]
    }

    fn output_at(&self, cycle: u64) -> bool {
        !self.output.is_empty() && self.output[(cycle % self.output.len() as u64) as usize]
    }
}

/// What came out of a run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trace {
    /// Every output word with the cycle it was taken on.
    pub outputs: Vec<(u64, u32)>,
    /// The cycle on which the last input word was taken.
    pub last_input_cycle: u64,
}

impl Trace {
    /// The output words alone.
    pub fn words(&self) -> Vec<u32> {
        self.outputs.iter().map(|&(_, w)| w).collect()
    }
}

/// Why a stream run failed.
#[derive(Debug, Error)]
pub enum StreamError {
    /// The core stopped taking input: a deadlock (or a limit too small for the program).
    #[error("the core took {taken} of {total} input words in {limit} cycles")]
    Stuck { taken: usize, total: usize, limit: u64 },
    /// Running the simulator failed.
    #[error(transparent)]
    Tool(#[from] ReplayError),
    /// The simulator's output could not be read.
    #[error("bad simulator output: {0}")]
    Parse(String),
}

/// Cycles without output after the last input before a run is over: longer than any internal
/// wait of the core (array and activation drains).
pub fn quiet_cycles(dim: usize) -> u64 {
    8 * dim as u64 + 64
}

/// Run the rust-hdl model of `core` (fresh from [`ProtobrainCore::new`]).
pub fn run_rust(
    core: &mut ProtobrainCore,
    words: &[u32],
    stalls: &Stalls,
    limit: u64,
) -> Result<Trace, StreamError> {
    let quiet = quiet_cycles(core.config().dim());
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
    let mut trace = Trace::default();
    let (mut ip, mut held, mut idle) = (0usize, false, 0u64);
    let mut cycle = 0u64;
    loop {
        let valid = ip < words.len() && (held || !stalls.input_at(cycle));
        core.in_valid.next = valid;
        core.in_data.next = (*words.get(ip).unwrap_or(&0) as u64).into();
        core.out_ready.next = !stalls.output_at(cycle);
        settle(core)?;
        let took_in = valid && core.in_ready.val();
        let out = core.out_valid.val() && core.out_ready.val();
        if out {
            trace.outputs.push((cycle, core.out_data.val().to_u64() as u32));
            idle = 0;
        } else if ip >= words.len() {
            idle += 1;
        }
        held = valid && !took_in;
        if took_in {
            trace.last_input_cycle = cycle;
            ip += 1;
        }
        core.clk.next = Clock { clk: true };
        settle(core)?;
        core.clk.next = Clock { clk: false };
        cycle += 1;
        if ip >= words.len() && idle >= quiet {
            return Ok(trace);
        }
        if ip < words.len() && cycle >= limit {
            return Err(StreamError::Stuck { taken: ip, total: words.len(), limit });
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
    let keep_root = std::env::var_os("PROTOBRAIN_VCD").filter(|v| !v.is_empty()).map(PathBuf::from);
    let (dir, kept) = work_dir(TOP, keep_root.as_deref())?;
    let path = dir.as_path();
    let n = words.len().max(1);
    let pi = stalls.input.len().max(1);
    let po = stalls.output.len().max(1);
    let fs = |e: std::io::Error| StreamError::Tool(ReplayError::Io(e));
    std::fs::write(path.join("core.v"), verilog).map_err(fs)?;
    std::fs::write(path.join("words.hex"), hex_file(words.iter().map(|w| format!("{w:08x}")))).map_err(fs)?;
    let bits = |p: &[bool], len: usize| {
        hex_file((0..len).map(|i| if p.get(i) == Some(&true) { "1" } else { "0" }.into()))
    };
    std::fs::write(path.join("in_stall.hex"), bits(&stalls.input, pi)).map_err(fs)?;
    std::fs::write(path.join("out_stall.hex"), bits(&stalls.output, po)).map_err(fs)?;
    let quiet = quiet_cycles(dim);
    let total = words.len();
    let vcd = if kept.is_some() { "$dumpfile(\"wave.vcd\"); $dumpvars(0, tb);" } else { "" };
    let tb = format!(
        r#"`timescale 1ns/1ps
module tb;
  reg clk = 1'b0, rst = 1'b1;
  reg [31:0] words [0:{last_word}];
  reg in_stall [0:{last_in}];
  reg out_stall [0:{last_out}];
  reg [31:0] in_data = 0;
  reg in_valid = 0, out_ready = 0, held = 0, took;
  wire in_ready, out_valid;
  wire [31:0] out_data;
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
      in_data = (ip < {total}) ? words[ip] : 32'd0;
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
      if (ip >= {total} && idle >= {quiet}) begin $fwrite(fd, "done\n"); $fclose(fd); $finish; end
      if (ip < {total} && cycle >= {limit}) begin $fwrite(fd, "stuck %0d\n", ip); $fclose(fd); $finish; end
    end
  end
endmodule
"#,
        last_word = n - 1,
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
                let w = u32::from_str_radix(w, 16)
                    .map_err(|_| StreamError::Parse(format!("x/z output: {line}")))?;
                trace.outputs.push((c, w));
            }
            ["i", c] => trace.last_input_cycle = c.parse().map_err(|_| StreamError::Parse(line.into()))?,
            ["done"] => return Ok(trace),
            ["stuck", taken] => {
                let taken = taken.parse().map_err(|_| StreamError::Parse(line.into()))?;
                return Err(StreamError::Stuck { taken, total, limit });
            }
            _ => return Err(StreamError::Parse(line.into())),
        }
    }
    Err(StreamError::Parse("simulation ended without a verdict".into()))
}
