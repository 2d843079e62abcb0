//! `protobrain emit`: write the Verilog of `protobrain_core` for a configuration.

use std::path::PathBuf;

use clap::Args;

use crate::config_args::ConfigArgs;
use crate::error::CliError;
use crate::output::write_atomically;

/// Arguments of `protobrain emit`.
#[derive(Debug, Args)]
pub struct EmitArgs {
    /// The configuration to build.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Where to write the Verilog (one self-contained file, top module protobrain_core).
    #[arg(short, long, value_name = "core.v")]
    pub output: PathBuf,
}

/// Emit the Verilog; returns the summary line.
pub fn run(args: &EmitArgs) -> Result<String, CliError> {
    let cfg = args.config.config()?;
    crate::backend::check_emit(&cfg)?;
    let verilog = hdl::emit::verilog(&cfg).map_err(|e| CliError::internal("emit", e.to_string()))?;
    write_atomically(&args.output, |w| w.write_all(verilog.as_bytes()))?;
    Ok(format!(
        "wrote {}: module {} for {cfg} ({} KB of Verilog)\n",
        args.output.display(),
        hdl::emit::TOP,
        verilog.len() / 1024
    ))
}
