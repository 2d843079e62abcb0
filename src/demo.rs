//! `protobrain demo`: Software 2.0 end to end. Train a digits MLP in Rust, quantise it to int8,
//! compile it for the device and run the 500 test images on every model of the hardware:
//!
//! ```text
//!  data/digits.csv ─► train (float) ─► quantise (int8, Quant per layer) ─► model.json
//!                                                    │
//!                          driver: compile_mlp ──────┤ the same program on every backend
//!              ┌───────────────────┬─────────────────┼───────────────────┐
//!          host golden         golden device     native model     RTL (Verilator)
//!          (spec::golden)      (spec)            (sim::native)    (emitted Verilog)
//!              └──── identical int32 logits, asserted ──┴── identical cycle counts ──┘
//! ```
//!
//! It prints the accuracy table (float vs int8), per-batch and per-inference cycles, latency
//! and throughput at the clock, utilisation and where the cycles go, and writes the model file.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use driver::{Device, Output, Transport};
use protobrain::nn::{self, digits, DigitsModel, TrainConfig};
use sim::estimate::plots::line_chart;
use sim::estimate::power::{energy, TechTable};
use sim::native::NativeSim;
use sim::transport::SimTransport;
use sim::{CycleSim, VerilatedSim};
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
    /// tpu-v1 700, ecp5-* 50, ice40-up5k 30, otherwise 100].
    #[arg(long, value_name = "MHz")]
    pub clock: Option<f64>,
    /// Skip the size sweep (by default hidden widths 16/32/64 are trained, run on DIM 4/8/16
    /// with the native model, and accuracy, cycles and energy per inference are plotted
    /// against size into --out).
    #[arg(long)]
    pub no_sweep: bool,
    /// Where to write model.json and the report.
    #[arg(long, default_value = "out/demo")]
    pub out: PathBuf,
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
    model: &DigitsModel,
    cfg: &Config,
    transport: T,
    cycles: impl Fn(&T) -> Option<u64>,
    activity: impl Fn(&T) -> Option<sim::activity::Activity>,
) -> Result<BackendRun, CliError> {
    let failed = |e: driver::DriverError| CliError::internal(format!("{name} backend"), e.to_string());
    let mut dev = Device::open(transport, cfg).map_err(failed)?;
    let (eval, output) = nn::evaluate_on(&model.quantized, &model.split.test, &mut dev).map_err(failed)?;
    Ok(BackendRun {
        name,
        output,
        correct: eval.correct,
        cycles: cycles(dev.transport()),
        activity: activity(dev.transport()),
    })
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
    let mut out = String::new();
    let started = Instant::now();

    // 1. Data and training.
    let data = digits::bundled();
    let train_cfg = TrainConfig { seed: args.seed, ..TrainConfig::with_hidden(args.hidden) };
    let model = nn::train_digits(&data, &train_cfg, args.quiet)
        .map_err(|e| CliError::internal("training", e.to_string()))?;
    let widths: Vec<String> = model.float.widths().iter().map(usize::to_string).collect();
    out += &format!(
        "Trained MLP {} on {} digits in {:.2} s (seed {}); testing on {} images.\n",
        widths.join("-"),
        model.split.train.len(),
        model.train_time.as_secs_f64(),
        args.seed,
        model.split.test.len()
    );
    std::fs::create_dir_all(&args.out).map_err(|e| {
        CliError::file(&args.out, format!("cannot create: {}", crate::error::describe_io(&e)))
    })?;
    let model_path = args.out.join("model.json");
    model.model_file().save(&model_path).map_err(|e| CliError::file(&model_path, e.problem))?;

    // 2. The test set on every backend; every int8 answer must be the host golden chain's.
    let (_, golden_out) = nn::evaluate_golden(&model.quantized, &model.split.test);
    let mut runs =
        vec![run_on("golden device", &model, &cfg, driver::GoldenTransport::new(cfg), |_| None, |_| None)?];
    runs.push(run_on(
        "native model",
        &model,
        &cfg,
        SimTransport::new(NativeSim::new(&cfg)),
        |t| Some(t.sim().cycle()),
        |t| Some(t.sim().activity()),
    )?);
    if !args.no_rtl {
        let sim = VerilatedSim::new(&cfg).map_err(|e| CliError::internal("rtl backend", e.to_string()))?;
        runs.push(run_on(
            "RTL (Verilator)",
            &model,
            &cfg,
            SimTransport::new(sim),
            |t| Some(t.sim().cycle()),
            |_| None,
        )?);
    }
    for r in &runs {
        if r.output != golden_out {
            return Err(CliError::internal(
                r.name,
                "its outputs differ from the host golden model: the hardware models disagree (a bug)",
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

    // 3. Accuracy table.
    let n = model.split.test.len();
    let pct = |c: usize| 100.0 * c as f64 / n as f64;
    out += "\nAccuracy on the test set\n";
    out += &format!(
        "  {:<22} {:>9}\n",
        "float (f32, host)",
        format!("{:.1}%", 100.0 * model.float_eval.accuracy())
    );
    out += &format!(
        "  {:<22} {:>9}\n",
        "int8 golden (host)",
        format!("{:.1}%", 100.0 * model.int8_eval.accuracy())
    );
    for r in &runs {
        out += &format!(
            "  {:<22} {:>9}   bit-exact with the host golden model\n",
            format!("int8 {}", r.name),
            format!("{:.1}%", pct(r.correct))
        );
    }

    // 4. Performance from the cycle-exact model.
    let cycles = native.cycles.expect("the native model counts cycles");
    let act = native.activity.expect("the native model counts activity");
    let macs_useful: u64 = model.float.widths().windows(2).map(|w| (n * w[0] * w[1]) as u64).sum();
    let single = single_inference(&model, &cfg)?;
    out += &format!("\nOn {cfg} at {mhz} MHz (native model; the RTL agrees cycle for cycle)\n");
    out += &format!(
        "  batch of {n}: {cycles} cycles = {:.1} us, {:.0} inferences/s, {:.1} cycles per inference\n",
        cycles as f64 / mhz,
        n as f64 / (cycles as f64 / (mhz * 1e6)),
        cycles as f64 / n as f64
    );
    out += &format!("  one inference alone: {single} cycles = {:.2} us latency\n", single as f64 / mhz);
    out += &format!(
        "  utilisation: {:.1}% of the array's MAC slots do useful work ({} useful MACs of {} issued)\n",
        100.0 * macs_useful as f64 / (cycles as f64 * cfg.macs_per_row() as f64),
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
    let tech = TechTable::scaled_28nm();
    let e = energy(&cfg, &act, mhz * 1e6, &tech);
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
    if !args.no_sweep {
        out += &sweep(args, &data, mhz)?;
    }
    out += &format!(
        "\nWrote {} (the int8 model: docs/model-format.md). Demo took {:.1} s.\n",
        model_path.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(out)
}

/// Cycles for one image alone (batch of 1) on the native model: the latency.
fn single_inference(model: &DigitsModel, cfg: &Config) -> Result<u64, CliError> {
    let failed = |e: driver::DriverError| CliError::internal("native model", e.to_string());
    let one = model.split.test.subset(&[0]);
    let mut dev = Device::open(SimTransport::new(NativeSim::new(cfg)), cfg).map_err(failed)?;
    let before = dev.transport().sim().cycle();
    nn::evaluate_on(&model.quantized, &one, &mut dev).map_err(failed)?;
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
    let (mut acc, mut cyc, mut nrg) = (Vec::new(), Vec::new(), Vec::new());
    for hidden in [16usize, 32, 64] {
        let train_cfg = TrainConfig { seed: args.seed, ..TrainConfig::with_hidden(hidden) };
        let model = nn::train_digits(data, &train_cfg, true)
            .map_err(|e| CliError::internal("training", e.to_string()))?;
        acc.push((hidden as f64, 100.0 * model.int8_eval.accuracy()));
        let (mut c_line, mut e_line) = (Vec::new(), Vec::new());
        for dim in [4usize, 8, 16] {
            let cfg = Config::new(dim, 1024, 512).expect("a valid sweep config");
            let run = run_on(
                "native model",
                &model,
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
            "int8 test accuracy vs hidden width",
            "hidden width",
            "accuracy (%)",
            &[("int8".to_string(), acc)],
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
