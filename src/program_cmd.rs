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
use sim::native::NativeSim;
use sim::CycleSim;
use spec::isa::decode_responses;
use spec::stream::Stalls;
use spec::{Config, GoldenDevice, Response};

use crate::backend::{Backend, LinkArgs};
use crate::cli::LayerArgs;
use crate::config_args::ConfigArgs;
use crate::error::CliError;
use crate::matmul::{load_layer, LoadedLayer, Mode};
use crate::npy;
use crate::output::{check_outputs, Outputs};

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
        /// The model: a model file (docs/model-format.md) or an int8 ONNX model (docs/onnx.md)
        /// of dense layers.
        #[arg(short, long, value_name = "model.json|model.onnx")]
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
    let out = match &args.what {
        CompileWhat::Mlp { out, .. } | CompileWhat::Layer { out, .. } => out,
    };
    check_outputs(&[("--output", Some(&out.output)), ("--bin", out.bin.as_deref())])?;
    let (program, out) = match &args.what {
        CompileWhat::Mlp { model, input, out } => {
            let cfg = out.config.config()?;
            let net = crate::infer::load_network(model)?;
            let mlp = net.to_mlp().ok_or_else(|| {
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
            let shapes: Vec<(usize, usize)> = mlp.widths().windows(2).map(|w| (w[0], w[1])).collect();
            crate::limits::check_workload(&cfg, x.nrows(), &shapes, mlp.output(), false)?;
            let layers = mlp.to_driver_layers();
            let p = compile_mlp(&cfg, &x, &layers, mlp.output())
                .map_err(|e| CliError::input("--scratch-rows", format!("cannot compile for {cfg}: {e}")))?;
            (p, out)
        }
        CompileWhat::Layer { layer, out } => {
            let cfg = out.config.config()?;
            let LoadedLayer { x, layer, mode, .. } = load_layer(layer)?;
            let kind = if mode == Mode::Raw { OutputKind::Raw } else { OutputKind::Int8 };
            crate::limits::check_workload(&cfg, x.nrows(), &[(layer.k(), layer.n())], kind, false)?;
            let p = compile_layer(&cfg, &x, &layer, kind)
                .map_err(|e| CliError::input("--scratch-rows", format!("cannot compile for {cfg}: {e}")))?;
            (p, out)
        }
    };
    let json = program.to_json();
    let mut outputs = Outputs::new();
    outputs.stage(&out.output, |w| w.write_all(json.as_bytes()))?;
    let stats = program.stats();
    let mut summary =
        format!("wrote {}: {} commands for {}", out.output.display(), program.steps.len(), program.config);
    if let Some(bin) = &out.bin {
        let bytes = program.to_bin().map_err(|e| CliError::file(bin, e.to_string()))?;
        outputs.stage(bin, |w| w.write_all(&bytes))?;
        summary += &format!("; {} ({} words)", bin.display(), bytes.len() / 4);
    }
    outputs.commit()?;
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

/// Execute a raw command stream; returns the responses and the cycle count. Fails (exit 2)
/// if the device refused any command, with one line per kind of refusal and its count.
pub fn run(args: &RunArgs) -> Result<String, CliError> {
    let path = &args.program;
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::file(path, format!("cannot read: {}", crate::error::describe_io(&e))))?;
    let (cfg, words) = if path.extension().is_some_and(|e| e == "json") {
        let text = String::from_utf8(bytes).map_err(|_| CliError::file(path, "not UTF-8 JSON"))?;
        let program = Program::from_json(&text).map_err(|e| CliError::file(path, e.to_string()))?;
        check_same_config(&args.config, &program.config)?;
        let words = program.words().map_err(|e| CliError::file(path, e.to_string()))?;
        (program.config, words)
    } else {
        let words = Program::words_from_bin(&bytes).map_err(|e| CliError::file(path, e.to_string()))?;
        (args.config.config()?, words)
    };
    // a stream that ends inside a command is an error, not "0 responses"
    let commands = spec::stream::frame(&words).map_err(|e| CliError::file(path, e.to_string()))?;
    let (responses, cycles) = execute(&args.link, &cfg, &words)?;
    let decoded = decode_responses(cfg.dim(), &responses)
        .map_err(|e| CliError::internal("device", format!("undecodable response stream: {e}")))?;
    let refusals = refusals(&decoded);
    if !refusals.is_empty() {
        let total: usize = refusals.iter().map(|(_, n)| n).sum();
        for (e, n) in &refusals {
            eprintln!("error: device: refused {n} command(s) with {}", describe_refusal(e));
        }
        return Err(CliError::input(
            "device",
            format!("refused {total} of the {commands} commands of {} ({cfg})", path.display()),
        ));
    }
    let mut out =
        format!("{} words ({commands} commands) to {} on {cfg}\n", words.len(), args.link.backend.name());
    for r in &decoded {
        out += &describe_response(r);
        out.push('\n');
    }
    match cycles {
        Some(c) => out += &format!("{} responses ({} words) in {c} cycles\n", decoded.len(), responses.len()),
        None => {
            let why = match args.link.backend {
                Backend::Serial => {
                    "cycles are counted on the cycle models (a board counts its own: COUNTERS)"
                }
                _ => "the golden device is untimed",
            };
            out += &format!("{} responses ({} words); {why}\n", decoded.len(), responses.len())
        }
    }
    Ok(out)
}

/// A .json program carries its own configuration: a config flag may only repeat it.
fn check_same_config(flags: &ConfigArgs, program: &Config) -> Result<(), CliError> {
    let given = [
        ("--preset", flags.preset != "default"),
        ("--dim", flags.dim.is_some()),
        ("--scratch-rows", flags.scratch_rows.is_some()),
        ("--acc-rows", flags.acc_rows.is_some()),
    ];
    let Some((flag, _)) = given.iter().find(|(_, g)| *g) else { return Ok(()) };
    let asked = flags.config()?;
    if asked != *program {
        return Err(CliError::input(
            *flag,
            format!(
                "the program was compiled for {program} but the flags ask for {asked}: \
                 a .json program carries its configuration, drop the flag"
            ),
        ));
    }
    Ok(())
}

/// The refusals among `responses`: each distinct (opcode, code) with its count, in order of
/// first appearance.
fn refusals(responses: &[Response]) -> Vec<(spec::CommandError, usize)> {
    let mut out: Vec<(spec::CommandError, usize)> = Vec::new();
    for r in responses {
        if let Response::Error(e) = r {
            match out.iter_mut().find(|(k, _)| k == e) {
                Some((_, n)) => *n += 1,
                None => out.push((*e, 1)),
            }
        }
    }
    out
}

/// A command's name, e.g. `LOAD_WEIGHTS (0x10)`.
fn opcode_name(op: u8) -> String {
    use spec::isa::opcode::*;
    let name = match op {
        INFO => "INFO",
        SYNC => "SYNC",
        LOAD_WEIGHTS => "LOAD_WEIGHTS",
        LOAD_BIAS => "LOAD_BIAS",
        SET_QUANT => "SET_QUANT",
        LOAD_QUANT => "LOAD_QUANT",
        LOAD_TILE => "LOAD_TILE",
        WRITE_ACT => "WRITE_ACT",
        READ_ACT => "READ_ACT",
        MATMUL => "MATMUL",
        ACTIVATE => "ACTIVATE",
        READ_ACC => "READ_ACC",
        COUNTERS => "COUNTERS",
        _ => "an unknown opcode",
    };
    format!("{name} (0x{op:02X})")
}

fn describe_refusal(e: &spec::CommandError) -> String {
    let why = match e.code {
        spec::ErrorCode::UnknownOpcode => "unknown opcode",
        spec::ErrorCode::BadLength => "bad length: the header's length does not match the opcode and DIM",
        spec::ErrorCode::OutOfRange => "out of range: rows past the end of a memory, or a shift above 47",
    };
    format!("opcode {}: {why} (code {})", opcode_name(e.opcode), e.code as u8)
}

/// One response as a line of text.
fn describe_response(r: &Response) -> String {
    let rows = |n: usize, text: Vec<String>| format!("{n} row(s): {}", text.join(" | "));
    match r {
        Response::Info { version, dim, scratch_rows, acc_rows } => format!(
            "INFO: version {version}, DIM {dim}, {scratch_rows} scratchpad rows, {acc_rows} accumulator rows"
        ),
        Response::Sync { token } => format!("SYNC: token 0x{token:08X}"),
        Response::ReadAct { rows: r } => format!(
            "READ_ACT: {}",
            rows(r.len(), r.iter().map(|row| format!("{row:?}")).collect())
        ),
        Response::ReadAcc { rows: r } => format!(
            "READ_ACC: {}",
            rows(r.len(), r.iter().map(|row| format!("{row:?}")).collect())
        ),
        Response::Counters(c) => format!(
            "COUNTERS: {} cycles, {} MACs, {} array busy cycles, {} input stall, {} output stall cycles, {} commands, {} errors",
            c.cycles, c.macs, c.array_busy_cycles, c.in_stall_cycles, c.out_stall_cycles, c.commands, c.errors
        ),
        Response::Error(e) => format!("ERROR: {}", describe_refusal(e)),
    }
}

/// Run `words` on the backend: the response words and, on a cycle backend, the cycles from
/// the first word in (cycle 0, right after reset) to the last response word out.
fn execute(link: &LinkArgs, cfg: &Config, words: &[u32]) -> Result<(Vec<u32>, Option<u64>), CliError> {
    if link.trace.is_some() && link.backend != Backend::Rtl {
        return Err(CliError::input("--trace", "waveforms come from the RTL: use it with --backend rtl"));
    }
    // derived from the program: a device that has not taken the stream by then is stuck
    let limit = spec::stream::cycle_bound(cfg.dim(), words);
    let stuck = |e: spec::stream::Stuck| CliError::internal("device", e.to_string());
    let timed = |t: spec::stream::Trace| {
        let cycles = t.outputs.last().map_or(t.last_input_cycle + 1, |&(c, _)| c + 1);
        (t.words(), Some(cycles))
    };
    Ok(match link.backend {
        Backend::Golden => (GoldenDevice::run(*cfg, words), None),
        Backend::Native => {
            timed(NativeSim::new(cfg).run_stream(words, &Stalls::none(), limit).map_err(stuck)?)
        }
        Backend::Rtl => {
            crate::backend::check_rtl(cfg)?;
            if let Some(p) = &link.trace {
                crate::output::check_output_dir(p)?;
            }
            let mut sim = crate::backend::open_rtl(cfg, link.trace.as_deref())?;
            timed(sim.run_stream(words, &Stalls::none(), limit).map_err(stuck)?)
        }
        Backend::Serial => (on_board(link, cfg, words)?, None),
    })
}

/// Send `words` to a board over its serial port (after checking its INFO) and read every
/// response word. The words each command answers are known from the golden device, so the
/// responses are read as they fall due: never more than the transport's window outstanding
/// (the bridge's flow-control contract), and the stream is sent in whole commands.
fn on_board(link: &LinkArgs, cfg: &Config, words: &[u32]) -> Result<Vec<u32>, CliError> {
    use driver::Transport;
    let open = crate::backend::Link::open(link, cfg)?;
    let timeout = open.timeout();
    let dev = driver::Device::open_with_timeout(open, cfg, timeout)
        .map_err(|e| crate::backend::driver_error(link.backend, e))?;
    let mut t = dev.into_transport();
    let failed = |e: driver::TransportError| CliError::internal("--backend serial", e.to_string());
    let window = t.max_pending_words();
    let mut golden = GoldenDevice::new(*cfg);
    let mut responses = Vec::new();
    // words[..sent] are sent; `due` response words are outstanding for them and the commands
    // up to `next` (the start of the next command)
    let (mut sent, mut next, mut due) = (0usize, 0usize, 0usize);
    for (i, &w) in words.iter().enumerate() {
        golden.push(w);
        if !golden.is_idle() {
            continue;
        }
        // words[next..=i] is one whole command
        let answer = golden.take_output().len();
        if due > 0 && due + answer > window {
            t.send(&words[sent..next]).map_err(failed)?;
            sent = next;
            responses.extend(t.recv(due, timeout).map_err(failed)?);
            due = 0;
        }
        due += answer;
        next = i + 1;
    }
    t.send(&words[sent..]).map_err(failed)?;
    responses.extend(t.recv(due, timeout).map_err(failed)?);
    // a board that answers more than the golden device did is not the device of the program
    match t.recv(1, std::time::Duration::from_millis(200)) {
        Err(driver::TransportError::Timeout { .. }) => {}
        Ok(w) => {
            return Err(CliError::internal(
                "--backend serial",
                format!(
                    "the board sent more words than the stream asks for (0x{:08X} after {} words)",
                    w[0],
                    responses.len()
                ),
            ))
        }
        Err(e) => return Err(failed(e)),
    }
    Ok(responses)
}
