//! `protobrain bitstream`: the open FPGA flow of one board (Yosys, nextpnr, icepack/ecppack),
//! with progress per stage and the resource/timing report written beside the bitstream.

use std::path::PathBuf;

use clap::Args;
use hdl::boards::flow::build_bitstream;
use hdl::boards::Board;

use crate::error::CliError;

/// Arguments of `protobrain bitstream`.
#[derive(Debug, Args)]
pub struct BitstreamArgs {
    /// The board: icebreaker (iCE40 UP5K, DIM 2), ulx3s-25f (ECP5, DIM 4), ulx3s-85f (ECP5, DIM 8).
    #[arg(long, value_name = "BOARD")]
    pub board: String,
    /// Output folder [default: bitstreams/build/BOARD].
    #[arg(short, long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Run the flow; returns the report (Markdown) for stdout.
pub fn run(args: &BitstreamArgs) -> Result<String, CliError> {
    let board: Board = args
        .board
        .parse()
        .map_err(|e: <Board as std::str::FromStr>::Err| CliError::input("--board", e.to_string()))?;
    let out = args.out.clone().unwrap_or_else(|| PathBuf::from("bitstreams/build").join(&args.board));
    let report = build_bitstream(board, &out, |line| eprintln!("{line}"))
        .map_err(|e| CliError::internal(format!("bitstream {}", args.board), e.to_string()))?;
    Ok(format!("{}\nbitstream: {}\n", report.to_markdown(), report.bitstream.display()))
}
