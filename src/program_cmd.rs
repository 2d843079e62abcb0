//! `protobrain compile` and `protobrain run`: a program is data. `compile` turns a layer (or a
//! model file's MLP) into the exact command stream the driver would send, saved as JSON (with
//! where the results come back) and/or a raw `.bin` of little-endian words; `run` executes a
//! saved stream on a backend and prints every response and the cycle count.
//!
//! ```text
//!  X.npy, W.npy, b.npy ─┐                            prog.json ─┐
//!  or model.json ───────┴─► compile ─► prog.json / prog.bin ──► run ─► responses, cycles
//! ```

use std::path::PathBuf;

use clap::{Args, Subcommand};
use driver::{compile_layer, compile_mlp, OutputKind, Program};
use protobrain::nn::ModelFile;
use sim::native::NativeSim;
use sim::{CycleSim, VerilatedSim};
use spec::isa::decode_responses;
use spec::stream::Stalls;
use spec::{Config, GoldenDevice};

use crate::backend::{Backend, LinkArgs};
use crate::cli::LayerArgs;
use crate::config_args::ConfigArgs;
use crate::error::CliError;
use crate::matmul::{load_layer, LoadedLayer, Mode};
use crate::npy;
use crate::output::write_atomically;

/// Arguments of `protobrain compile`.
#[derive(Debug, Args)]
pub struct CompileArgs {
    /// What to compile.
    #[command(subcommand)]
    pub what: CompileWhat,
}

/// A layer or an MLP.
#[derive(Debug, Subcommand)]
pub enum CompileWhat {
    /// One layer Y = act(X W + b) from .npy files.
    Layer {
        /// The layer.
        #[command(flatten)]
        layer: LayerArgs,
        /// Where the program goes.
        #[command(flatten)]
        out: CompileOut,
    },
    /// The MLP of a model file on inputs X.
    Mlp {
        /// The model (docs/model-format.md).
        #[arg(short, long, value_name = "model.json")]
        model: PathBuf,
        /// Inputs X: int8 .npy (M, K).
        #[arg(short, long, value_name = "X.npy")]
        input: PathBuf,
        /// Where the program goes.
        #[command(flatten)]
        out: CompileOut,
    },
}

/// The device and the output files of `compile`.
#[derive(Debug, Args)]
pub struct CompileOut {
    /// The device the program is for.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// The program as JSON: commands and where the results land.
    #[arg(short, long, value_name = "prog.json")]
    pub output: PathBuf,
    /// Also write the raw word stream (little-endian u32).
    #[arg(long, value_name = "prog.bin")]
    pub bin: Option<PathBuf>,
}

/// Compile; returns the summary.
pub fn compile(args: &CompileArgs) -> Result<String, CliError> {
    let (program, out) = match &args.what {
        CompileWhat::Mlp { model, input, out } => {
            let cfg = out.config.config()?;
            let file = ModelFile::load(model).map_err(|e| CliError::file(model, e.problem))?;
            let mlp = file.model.to_mlp().ok_or_else(|| {
                CliError::file(
                    model,
                    "is not an MLP (it has conv2d or pooling layers, whose host steps a program cannot \
                     hold): run it with `protobrain infer`",
                )
            })?;
            let x = npy::read_matrix::<i8>(input)?;
            if x.ncols() != mlp.k() {
                return Err(CliError::file(
                    input,
                    format!("has {} columns but the model takes K = {} inputs", x.ncols(), mlp.k()),
                ));
            }
            let layers = mlp.to_driver_layers();
            let p = compile_mlp(&cfg, &x, &layers, mlp.output())
                .map_err(|e| CliError::input("--scratch-rows", format!("cannot compile for {cfg}: {e}")))?;
            (p, out)
        }
        CompileWhat::Layer { layer, out } => {
            let cfg = out.config.config()?;
            let LoadedLayer { x, layer, mode, .. } = load_layer(layer)?;
            let kind = if mode == Mode::Raw { OutputKind::Raw } else { OutputKind::Int8 };
            let p = compile_layer(&cfg, &x, &layer, kind)
                .map_err(|e| CliError::input("--scratch-rows", format!("cannot compile for {cfg}: {e}")))?;
            (p, out)
        }
    };
    let json = program.to_json();
    write_atomically(&out.output, |w| w.write_all(json.as_bytes()))?;
    let stats = program.stats();
    let mut summary =
        format!("wrote {}: {} commands for {}", out.output.display(), program.steps.len(), program.config);
    if let Some(bin) = &out.bin {
        let bytes = program.to_bin().map_err(|e| CliError::file(bin, e.to_string()))?;
        write_atomically(bin, |w| w.write_all(&bytes))?;
        summary += &format!("; {} ({} words)", bin.display(), bytes.len() / 4);
    }
    Ok(format!(
        "{summary}\n{} words to the device, {} back, {} weight tiles, {} MATMUL rows, {} MACs issued\n",
        stats.words_to_device, stats.words_from_device, stats.weight_loads, stats.matmul_rows, stats.macs
    ))
}

/// Arguments of `protobrain run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The program: prog.json (from compile) or prog.bin (raw little-endian words).
    #[arg(short, long, value_name = "prog.json|prog.bin")]
    pub program: PathBuf,
    /// The device (a .json program carries its own; for .bin give it here).
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Which model runs the stream.
    #[command(flatten)]
    pub link: LinkArgs,
}

/// Execute a raw command stream; returns the responses and the cycle count.
pub fn run(args: &RunArgs) -> Result<String, CliError> {
    let path = &args.program;
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::file(path, format!("cannot read: {}", crate::error::describe_io(&e))))?;
    let (cfg, words) = if path.extension().is_some_and(|e| e == "json") {
        let text = String::from_utf8(bytes).map_err(|_| CliError::file(path, "not UTF-8 JSON"))?;
        let program = Program::from_json(&text).map_err(|e| CliError::file(path, e.to_string()))?;
        let words = program.words().map_err(|e| CliError::file(path, e.to_string()))?;
        (program.config, words)
    } else {
        let words = Program::words_from_bin(&bytes).map_err(|e| CliError::file(path, e.to_string()))?;
        (args.config.config()?, words)
    };
    let (responses, cycles) = execute(&args.link, &cfg, &words)?;
    let decoded = decode_responses(cfg.dim(), &responses)
        .map_err(|e| CliError::internal("device", format!("undecodable response stream: {e}")))?;
    let mut out = format!("{} words to {} on {cfg}\n", words.len(), args.link.backend.name());
    for r in &decoded {
        out += &format!("{r:?}\n");
    }
    match cycles {
        Some(c) => out += &format!("{} responses ({} words) in {c} cycles\n", decoded.len(), responses.len()),
        None => {
            out += &format!(
                "{} responses ({} words); the golden device is untimed\n",
                decoded.len(),
                responses.len()
            )
        }
    }
    Ok(out)
}

fn execute(link: &LinkArgs, cfg: &Config, words: &[u32]) -> Result<(Vec<u32>, Option<u64>), CliError> {
    if link.trace.is_some() && link.backend != Backend::Rtl {
        return Err(CliError::input("--trace", "waveforms come from the RTL: use it with --backend rtl"));
    }
    let limit = 1_000_000 + 64 * words.len() as u64;
    let stuck = |e: spec::stream::Stuck| CliError::internal("device", e.to_string());
    Ok(match link.backend {
        Backend::Golden => (GoldenDevice::run(*cfg, words), None),
        Backend::Native => {
            let trace = NativeSim::new(cfg).run_stream(words, &Stalls::none(), limit).map_err(stuck)?;
            (trace.words(), Some(trace.cycles))
        }
        Backend::Rtl => {
            let sim = match &link.trace {
                Some(p) => VerilatedSim::with_trace(cfg, p),
                None => VerilatedSim::new(cfg),
            };
            let mut sim = sim.map_err(|e| CliError::internal("--backend rtl", e.to_string()))?;
            let trace = sim.run_stream(words, &Stalls::none(), limit).map_err(stuck)?;
            (trace.words(), Some(trace.cycles))
        }
        Backend::Serial => {
            return Err(CliError::input(
                "--backend",
                "run replays raw streams on the models; talk to a board with matmul or mlp --backend serial",
            ))
        }
    })
}
