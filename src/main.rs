//! The `protobrain` command line.
//!
//! ```text
//! protobrain demo [--hidden H] [--seed N] [--clock MHz] [--out DIR] [config]
//! protobrain matmul -i X.npy -w W.npy [-b B.npy] [--multiplier M --shift S | --scale F]
//!                   [--relu] [--raw] [link] [config] [--report r.json] -o Y.npy
//! protobrain infer -m model.json -i X.npy -o Y.npy [--float] [link] [config] [--report r.json]   (alias: mlp)
//! protobrain emit [config] -o core.v
//! protobrain compile layer -i X.npy -w W.npy ... [config] -o prog.json [--bin prog.bin]
//! protobrain compile mlp -m model.json -i X.npy [config] -o prog.json [--bin prog.bin]
//! protobrain run -p prog.json|prog.bin [config] [link]
//! protobrain bitstream --board icebreaker|ulx3s-25f|ulx3s-85f [-o DIR]
//! protobrain estimate --gemm M,K,N | --model model.json [--batch M] | --topology FILE.csv [config] [--clock MHz]
//!                     [--link-words-per-cycle F | --link-baud B] [--tech 45nm|28nm|FILE] [--json out.json]
//!                     [--csv out.csv --svg out.svg (with --topology)]
//! protobrain sweep [--dims D,..] [--m M,..] [--gemm M,K,N] [--link-words-per-cycle F] -o DIR
//! protobrain verify [config] [--verilog FILE] [--depth N] [--property NAME].. [--solver yices|z3]
//!
//! link:   --backend golden|native|rtl|serial [--port PATH --baud B] [--trace out.vcd]
//! config: --preset NAME [--dim D] [--scratch-rows S] [--acc-rows A]
//! ```
//!
//! Errors are one line on stderr, `error: <file or flag>: <problem>`, with exit code 2 for bad
//! input (as for clap's usage errors) and 1 for internal failures.

mod backend;
mod bitstream;
mod cli;
mod config_args;
mod demo;
mod emit;
mod error;
mod estimate;
mod import;
mod infer;
mod limits;
mod matmul;
mod npy;
mod output;
mod program_cmd;
mod progress;
mod quantize;
mod sweep;
mod topology;
mod verify;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};
use error::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(report) => {
            print!("{report}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code)
        }
    }
}

fn run(cli: &Cli) -> Result<String, CliError> {
    match &cli.command {
        Command::Matmul(args) => matmul::run(args).map(|summary| format!("wrote {summary}\n")),
        Command::Demo(args) => demo::run(args),
        Command::Emit(args) => emit::run(args),
        Command::Compile(args) => program_cmd::compile(args),
        Command::Run(args) => program_cmd::run(args),
        Command::Bitstream(args) => bitstream::run(args),
        Command::Infer(args) => infer::run(args),
        Command::Import(args) => import::run(args),
        Command::Quantize(args) => quantize::run(args),
        Command::Estimate(args) => estimate::run(args),
        Command::Sweep(args) => sweep::run(args),
        Command::Verify(args) => verify::run(args),
    }
}
