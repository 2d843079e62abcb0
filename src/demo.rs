//! `protobrain demo`: Software 2.0 end to end. Train a digits MLP and a digits CNN in Rust,
//! quantise them to int8, compile them for the device and run the 500 test images on every model
//! of the hardware:
//!
//! ```text
//!  data/digits.csv ─► train (float MLP, CNN) ─► quantise (int8, Quant per layer) ─► model.json, cnn.json
//!                                                    │
//!          driver: Network::run (GEMM stages) ───────┤ the same programs on every backend
//!              ┌───────────────────┬─────────────────┼───────────────────┐
//!          host golden         golden device     native model     RTL (Verilator)
//!          (spec::golden)      (spec)            (sim::native)    (emitted Verilog)
//!              └──── identical int32 logits, asserted ──┴── identical cycle counts ──┘
//! ```
//!
//! It prints, per model, the accuracy table (float vs int8), per-batch and per-inference cycles,
//! latency and throughput at the clock, utilisation, energy and link words, then both models
//! side by side; it writes the model files and, with --json, the summary.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use driver::quant::argmax_rows;
use driver::{Device, Network, Output, Transport};
use estimate::plots::line_chart;
use estimate::power::{energy, TechTable};
use protobrain::nn::cnn_train::CnnTrainConfig;
use protobrain::nn::{self, digits, ModelFile, TrainConfig};
use serde::Serialize;
use sim::native::NativeSim;
use sim::transport::SimTransport;
use sim::CycleSim;
use spec::Config;

use crate::config_args::ConfigArgs;
use crate::error::CliError;

/// Arguments of `protobrain demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Training seed (the data split is fixed).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Hidden layer width of the MLP (64 -> HIDDEN -> 10).
    #[arg(long, default_value_t = 32)]
    pub hidden: usize,
    /// Clock of the device for latency, throughput and power, in MHz [default: the preset's:
    /// tpu-v1 700, ecp5-* 50, ice40-up5k 24, otherwise 100].
    #[arg(long, value_name = "MHz")]
    pub clock: Option<f64>,
    /// Skip the size sweep (by default hidden widths 16/32/64 are trained, run on DIM 4/8/16
    /// with the native model, and accuracy, cycles and energy per inference are plotted
    /// against size into --out).
    #[arg(long)]
    pub no_sweep: bool,
    /// Where to write the models (model.json: the MLP, cnn.json: the CNN) and the plots.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
    /// Also write the summary as JSON here (per model: accuracy_float, accuracy_int8, backends,
    /// cycles_per_inference, energy_uj_per_inference, words_in, words_out, utilization, ...).
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Skip the Verilator model of the RTL (it is built on first use for non-prebuilt configs).
    #[arg(long)]
    pub no_rtl: bool,
    /// No progress bars.
    #[arg(long)]
    pub quiet: bool,
    /// The device the network is compiled for.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// One backend's run of the test set.
struct BackendRun {
    name: &'static str,
    output: Output,
    correct: usize,
    cycles: Option<u64>,
    activity: Option<sim::activity::Activity>,
}

fn run_on<T: Transport>(
    name: &'static str,
    net: &Network,
    test: &digits::Dataset,
    cfg: &Config,
    transport: T,
    cycles: impl Fn(&T) -> Option<u64>,
    activity: impl Fn(&T) -> Option<sim::activity::Activity>,
) -> Result<BackendRun, CliError> {
    let failed = |e: driver::DriverError| CliError::internal(format!("{name} backend"), e.to_string());
    let mut dev = Device::open(transport, cfg).map_err(failed)?;
    let output = net.run(&mut dev, &test.inputs_i8()).map_err(failed)?;
    let correct =
        argmax_rows(&output).iter().zip(test.labels()).filter(|(p, l)| **p == usize::from(**l)).count();
    Ok(BackendRun {
        name,
        output,
        correct,
        cycles: cycles(dev.transport()),
        activity: activity(dev.transport()),
    })
}

/// A trained, quantised model of the demo.
struct DemoModel {
    /// "MLP" or "CNN".
    kind: &'static str,
    network: Network,
    float_accuracy: f64,
    int8_accuracy: f64,
    train_seconds: f64,
    file: ModelFile,
    file_name: &'static str,
}

/// What the demo measured of one model: the `--json` summary.
#[derive(Debug, Clone, Serialize)]
struct ModelSummary {
    model: String,
    file: PathBuf,
    accuracy_float: f64,
    accuracy_int8: f64,
    /// The backends whose outputs agreed bit for bit with the host golden model.
    backends: Vec<&'static str>,
    batch: usize,
    cycles_per_batch: u64,
    cycles_per_inference: f64,
    latency_cycles: u64,
    latency_us: f64,
    energy_uj_per_inference: f64,
    /// Link words per inference, host to device and back.
    words_in: f64,
    words_out: f64,
    utilization: f64,
    macs_per_inference: f64,
}

/// The `--json` file.
#[derive(Debug, Clone, Serialize)]
struct DemoSummary {
    config: Config,
    clock_mhz: f64,
    tech: String,
    models: Vec<ModelSummary>,
}

/// Run the demo; returns the report for stdout.
pub fn run(args: &DemoArgs) -> Result<String, CliError> {
    let cfg = args.config.config()?;
    let mhz = args.clock.unwrap_or_else(|| crate::estimate::nominal_clock_mhz(&args.config.preset));
    if !(mhz > 0.0 && mhz.is_finite()) {
        return Err(CliError::input("--clock", format!("must be a positive frequency in MHz, got {mhz}")));
    }
    if args.hidden == 0 {
        return Err(CliError::input("--hidden", "must be at least 1"));
    }
    if let Some(json) = &args.json {
        crate::output::check_output_dir(json)?;
    }
    let mut out = String::new();
    let started = Instant::now();

    // 1. Data and training: the MLP and the CNN.
    let data = digits::bundled();
    let train_cfg = TrainConfig { seed: args.seed, ..TrainConfig::with_hidden(args.hidden) };
    let mlp = nn::train_digits(&data, &train_cfg, args.quiet)
        .map_err(|e| CliError::internal("training", e.to_string()))?;
    let cnn_cfg = CnnTrainConfig { seed: args.seed, ..CnnTrainConfig::default() };
    let cnn = nn::digits_cnn::train_digits_cnn(&data, &cnn_cfg, args.quiet)
        .map_err(|e| CliError::internal("training the CNN", e.to_string()))?;
    let split = mlp.split.clone();
    let models = [
        DemoModel {
            kind: "MLP",
            network: Network::from_mlp(&mlp.quantized),
            float_accuracy: mlp.float_eval.accuracy(),
            int8_accuracy: mlp.int8_eval.accuracy(),
            train_seconds: mlp.train_time.as_secs_f64(),
            file: mlp.model_file(),
            file_name: "model.json",
        },
        DemoModel {
            kind: "CNN",
            network: cnn.quantized.clone(),
            float_accuracy: cnn.float_eval.accuracy(),
            int8_accuracy: cnn.int8_eval.accuracy(),
            train_seconds: cnn.train_time.as_secs_f64(),
            file: cnn.model_file(),
            file_name: "cnn.json",
        },
    ];
    std::fs::create_dir_all(&args.out).map_err(|e| {
        CliError::file(&args.out, format!("cannot create: {}", crate::error::describe_io(&e)))
    })?;
    for m in &models {
        out += &format!(
            "Trained {} ({}, {} parameters) on {} digits in {:.2} s (seed {}).\n",
            m.kind,
            m.network,
            parameters(&m.network),
            split.train.len(),
            m.train_seconds,
            args.seed,
        );
    }
    out += &format!("Testing on {} images.\n", split.test.len());

    // 2. Each model's test set on every backend; every int8 answer must be the host golden's.
    let tech = TechTable::scaled_28nm();
    let mut summaries = Vec::new();
    for m in &models {
        let path = args.out.join(m.file_name);
        m.file.save(&path).map_err(|e| CliError::file(&path, e.problem))?;
        let (section, summary) = run_model(args, &cfg, mhz, &tech, m, &split.test, path)?;
        out += &section;
        summaries.push(summary);
    }
    out += &side_by_side(&summaries);
    if !args.no_sweep {
        out += &sweep(args, &data, mhz)?;
    }
    if let Some(json) = &args.json {
        let summary = DemoSummary { config: cfg, clock_mhz: mhz, tech: tech.name.clone(), models: summaries };
        let text = serde_json::to_string_pretty(&summary).expect("the summary serialises");
        crate::output::write_atomically(json, |w| w.write_all(text.as_bytes()))?;
        out += &format!("\nWrote {} (the summary, machine-readable).", json.display());
    }
    out += &format!(
        "\nWrote {} and {} (the int8 models: docs/model-format.md). Demo took {:.1} s.\n",
        args.out.join(models[0].file_name).display(),
        args.out.join(models[1].file_name).display(),
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// Weights and biases of a network's GEMM layers.
fn parameters(net: &Network) -> usize {
    net.ops().iter().filter_map(|o| o.gemm()).map(|l| l.layer().k() * l.layer().n() + l.layer().n()).sum()
}

/// One model on every backend: the accuracy table and the performance of the native model.
fn run_model(
    args: &DemoArgs,
    cfg: &Config,
    mhz: f64,
    tech: &TechTable,
    m: &DemoModel,
    test: &digits::Dataset,
    path: PathBuf,
) -> Result<(String, ModelSummary), CliError> {
    let net = &m.network;
    let golden_out =
        net.golden(&test.inputs_i8()).map_err(|e| CliError::internal("golden", e.to_string()))?;
    let mut runs = vec![run_on(
        "golden device",
        net,
        test,
        cfg,
        driver::GoldenTransport::new(*cfg),
        |_| None,
        |_| None,
    )?];
    runs.push(run_on(
        "native model",
        net,
        test,
        cfg,
        SimTransport::new(NativeSim::new(cfg)),
        |t| Some(t.sim().cycle()),
        |t| Some(t.sim().activity()),
    )?);
    if !args.no_rtl {
        let sim = crate::backend::open_rtl(cfg, None).map_err(|mut e| {
            if cfg!(not(feature = "verilator")) {
                e.subject = "demo".into();
                e.problem.push_str("; --no-rtl skips the RTL run");
            }
            e
        })?;
        runs.push(run_on(
            "RTL (Verilator)",
            net,
            test,
            cfg,
            SimTransport::new(sim),
            |t| Some(t.sim().cycle()),
            |_| None,
        )?);
    }
    for r in &runs {
        if r.output != golden_out {
            return Err(CliError::internal(
                r.name,
                format!("the {}'s outputs differ from the host golden model: the hardware models disagree (a bug)", m.kind),
            ));
        }
    }
    let native = &runs[1];
    if let Some(rtl) = runs.get(2) {
        if rtl.cycles != native.cycles {
            return Err(CliError::internal(
                "rtl backend",
                format!("{:?} cycles but the native model took {:?} (a bug)", rtl.cycles, native.cycles),
            ));
        }
    }

    let n = test.len();
    let pct = |c: usize| 100.0 * c as f64 / n as f64;
    let mut out = format!("\n{} — accuracy on the test set\n", m.kind);
    out += &format!("  {:<22} {:>9}\n", "float (f32, host)", format!("{:.1}%", 100.0 * m.float_accuracy));
    out += &format!("  {:<22} {:>9}\n", "int8 golden (host)", format!("{:.1}%", 100.0 * m.int8_accuracy));
    for r in &runs {
        out += &format!(
            "  {:<22} {:>9}   bit-exact with the host golden model\n",
            format!("int8 {}", r.name),
            format!("{:.1}%", pct(r.correct))
        );
    }

    let cycles = native.cycles.expect("the native model counts cycles");
    let act = native.activity.expect("the native model counts activity");
    let macs_useful = net.macs(n);
    let single = single_inference(net, test, cfg)?;
    out += &format!("{} on {cfg} at {mhz} MHz (native model; the RTL agrees cycle for cycle)\n", m.kind);
    out += &format!(
        "  batch of {n}: {cycles} cycles = {:.1} us, {:.0} inferences/s, {:.1} cycles per inference\n",
        cycles as f64 / mhz,
        n as f64 / (cycles as f64 / (mhz * 1e6)),
        cycles as f64 / n as f64
    );
    out += &format!("  one inference alone: {single} cycles = {:.2} us latency\n", single as f64 / mhz);
    let utilization = macs_useful as f64 / (cycles as f64 * cfg.macs_per_row() as f64);
    out += &format!(
        "  utilisation: {:.1}% of the array's MAC slots do useful work ({} useful MACs of {} issued)\n",
        100.0 * utilization,
        macs_useful,
        act.macs
    );
    out += &format!(
        "  where the cycles go: array busy {:.1}%, activation busy {:.1}%, {} words in, {} words out\n",
        100.0 * act.array_busy_cycles as f64 / cycles as f64,
        100.0 * act.act_busy_cycles as f64 / cycles as f64,
        act.words_in,
        act.words_out
    );
    let e = energy(cfg, &act, mhz * 1e6, tech);
    let seconds = cycles as f64 / (mhz * 1e6);
    out += &format!(
        "  energy [{}]: {:.3} µJ per inference, {:.1} µJ per batch, average power {:.1} mW, {:.2} TOPS/W\n",
        tech.name,
        e.total() * 1e-6 / n as f64,
        e.total() * 1e-6,
        e.total() * 1e-12 / seconds * 1e3,
        2.0 * macs_useful as f64 / (e.total() * 1e-12) / 1e12
    );
    let parts: Vec<String> =
        e.parts().iter().map(|(name, pj)| format!("{name} {:.0}%", 100.0 * pj / e.total())).collect();
    out += &format!("  energy by component: {}\n", parts.join(", "));
    let summary = ModelSummary {
        model: format!("{} {}", m.kind, net),
        file: path,
        accuracy_float: m.float_accuracy,
        accuracy_int8: m.int8_accuracy,
        backends: runs.iter().map(|r| r.name).collect(),
        batch: n,
        cycles_per_batch: cycles,
        cycles_per_inference: cycles as f64 / n as f64,
        latency_cycles: single,
        latency_us: single as f64 / mhz,
        energy_uj_per_inference: e.total() * 1e-6 / n as f64,
        words_in: act.words_in as f64 / n as f64,
        words_out: act.words_out as f64 / n as f64,
        utilization,
        macs_per_inference: macs_useful as f64 / n as f64,
    };
    Ok((out, summary))
}

/// The models side by side, per inference.
fn side_by_side(s: &[ModelSummary]) -> String {
    let mut out = String::from("\nSide by side, per inference (batch of 500 on the native model)\n");
    let row = |name: &str, f: &dyn Fn(&ModelSummary) -> String| {
        let cells: Vec<String> = s.iter().map(|m| format!("{:>14}", f(m))).collect();
        format!("  {name:<26}{}\n", cells.join(""))
    };
    out += &row("", &|m| m.model.split_whitespace().next().unwrap_or("").to_string());
    out += &row("accuracy float / int8", &|m| {
        format!("{:.1}/{:.1}%", 100.0 * m.accuracy_float, 100.0 * m.accuracy_int8)
    });
    out += &row("MACs", &|m| format!("{:.0}", m.macs_per_inference));
    out += &row("cycles (in a batch)", &|m| format!("{:.1}", m.cycles_per_inference));
    out += &row("latency alone (cycles)", &|m| m.latency_cycles.to_string());
    out += &row("energy (µJ)", &|m| format!("{:.4}", m.energy_uj_per_inference));
    out += &row("utilisation", &|m| format!("{:.1}%", 100.0 * m.utilization));
    out += &row("link words in / out", &|m| format!("{:.1}/{:.1}", m.words_in, m.words_out));
    out
}

/// Cycles for one image alone (batch of 1) on the native model: the latency.
fn single_inference(net: &Network, test: &digits::Dataset, cfg: &Config) -> Result<u64, CliError> {
    let failed = |e: driver::DriverError| CliError::internal("native model", e.to_string());
    let one = test.subset(&[0]);
    let mut dev = Device::open(SimTransport::new(NativeSim::new(cfg)), cfg).map_err(failed)?;
    let before = dev.transport().sim().cycle();
    net.run(&mut dev, &one.inputs_i8()).map_err(failed)?;
    Ok(dev.transport().sim().cycle() - before)
}

/// The "agile" claim, measured: hidden widths 16/32/64 on DIM 4/8/16, accuracy, cycles and
/// energy per inference of the 500 test images on the native model; three plots into --out.
fn sweep(args: &DemoArgs, data: &digits::Dataset, mhz: f64) -> Result<String, CliError> {
    let tech = TechTable::scaled_28nm();
    let mut out = String::from("\nSweep (native model, 1024/512-row memories, 28 nm table)\n");
    out += &format!(
        "  {:>6} {:>5} {:>9} {:>12} {:>14}\n",
        "hidden", "DIM", "int8 acc", "cycles/inf", "energy/inf µJ"
    );
    let (mut acc, mut acc_float, mut cyc, mut nrg) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for hidden in [16usize, 32, 64] {
        let train_cfg = TrainConfig { seed: args.seed, ..TrainConfig::with_hidden(hidden) };
        let model = nn::train_digits(data, &train_cfg, true)
            .map_err(|e| CliError::internal("training", e.to_string()))?;
        acc.push((hidden as f64, 100.0 * model.int8_eval.accuracy()));
        acc_float.push((hidden as f64, 100.0 * model.float_eval.accuracy()));
        let (mut c_line, mut e_line) = (Vec::new(), Vec::new());
        for dim in [4usize, 8, 16] {
            let cfg = Config::new(dim, 1024, 512).expect("a valid sweep config");
            let run = run_on(
                "native model",
                &Network::from_mlp(&model.quantized),
                &model.split.test,
                &cfg,
                SimTransport::new(NativeSim::new(&cfg)),
                |t| Some(t.sim().cycle()),
                |t| Some(t.sim().activity()),
            )?;
            let n = model.split.test.len() as f64;
            let cycles = run.cycles.expect("native counts cycles") as f64 / n;
            let uj = energy(&cfg, &run.activity.expect("native counts activity"), mhz * 1e6, &tech).total()
                * 1e-6
                / n;
            out += &format!(
                "  {:>6} {:>5} {:>8.1}% {:>12.1} {:>14.3}\n",
                hidden,
                dim,
                100.0 * run.correct as f64 / n,
                cycles,
                uj
            );
            c_line.push((dim as f64, cycles));
            e_line.push((dim as f64, uj));
        }
        cyc.push((format!("64-{hidden}-10"), c_line));
        nrg.push((format!("64-{hidden}-10"), e_line));
    }
    let plot = |file: &str, title: &str, x: &str, y: &str, series: &[(String, Vec<(f64, f64)>)]| {
        let path = args.out.join(file);
        line_chart(&path, title, x, y, series).map_err(|e| CliError::internal("plot", e.to_string()))?;
        Ok::<_, CliError>(path.display().to_string())
    };
    let paths = [
        plot(
            "accuracy_vs_hidden.svg",
            "test accuracy vs hidden width (int8 on every backend, and float)",
            "hidden width",
            "accuracy (%)",
            &[("int8 (every backend)".to_string(), acc), ("float".to_string(), acc_float)],
        )?,
        plot("cycles_vs_dim.svg", "cycles per inference vs array size", "DIM", "cycles / inference", &cyc)?,
        plot(
            "energy_vs_dim.svg",
            "energy per inference vs array size (28 nm)",
            "DIM",
            "µJ / inference",
            &nrg,
        )?,
    ];
    out += &format!("  plots: {}\n", paths.join(", "));
    Ok(out)
}
