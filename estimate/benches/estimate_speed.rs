//! The native model as the CLI uses it, before and after its fast paths, in one run:
//!
//! * the estimator's measuring loop ([`throughput::run`]) against the same loop stepping every
//!   cycle ([`throughput::run_ticked`]) on the full program of a GEMM, and `estimate` end to end;
//! * the driver on the native model through [`SimTransport`] (what `matmul --backend native`
//!   does) against the same transport over [`Ticked`], stepping every cycle;
//! * every layer of `data/topologies/alexnet-conv.csv` (what `estimate --topology` does).
//!
//! Each pair must agree on every cycle and word (asserted); the report is wall time, simulated
//! M cycles/s and the ratio. `cargo bench -p protobrain-estimate --bench estimate_speed
//! [-- M,K,N DIM]` (default 512,256,256 at DIM 16, the `default` preset's memories).

use std::time::Instant;

use driver::{compile_mlp, Device, Layer, OutputKind};
use estimate::{estimate, program_stream, throughput, topology, Input, Options, Workload};
use nalgebra::{DMatrix, DVector};
use sim::native::NativeSim;
use sim::transport::SimTransport;
use sim::{CycleSim, Ticked};
use spec::stimulus::Rng;
use spec::{Config, Quant};

/// Best of `n` runs of `f`, seconds, and its result.
fn best<T>(n: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut out = None;
    let mut best = f64::INFINITY;
    for _ in 0..n {
        let t = Instant::now();
        let r = f();
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(r);
    }
    (best, out.expect("n >= 1"))
}

fn line(what: &str, secs: f64, cycles: u64) {
    println!("  {what:<44} {:>10.2} ms  {:>8.1} M cycles/s", secs * 1e3, cycles as f64 / secs / 1e6);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let gemm: Vec<usize> = args
        .first()
        .map_or("512,256,256", String::as_str)
        .split(',')
        .map(|v| v.parse().expect("M,K,N"))
        .collect();
    let (m, k, n) = (gemm[0], gemm[1], gemm[2]);
    let dim: usize = args.get(1).map_or(16, |d| d.parse().expect("DIM"));
    let base = Config::default();
    let cfg = Config::new(dim, base.scratch_rows(), base.acc_rows()).expect("config");
    println!("GEMM {m}x{k}x{n} on {cfg}");

    // the estimator's measuring loop
    let w = Workload::gemm(m, k, n, Input::Random { seed: 1 }).expect("workload");
    let program = compile_mlp(&cfg, &w.x, &w.layers, w.output).expect("compiles");
    let (words, responses) = program_stream(&program).expect("stream");
    let (slow_s, slow) = best(1, || throughput::run_ticked(&cfg, &words, responses, None).expect("runs"));
    let (fast_s, fast) = best(3, || throughput::run(&cfg, &words, responses, None).expect("runs"));
    assert_eq!(fast, slow, "the fast measuring loop must equal stepping every cycle");
    println!("estimator's measuring loop, whole program ({} words, {} cycles)", words.len(), fast.cycles);
    line("stepping every cycle (before)", slow_s, slow.cycles);
    line("fast-forwarded (after)", fast_s, fast.cycles);
    println!("  speed-up {:.1}x", slow_s / fast_s);
    let (est_s, e) = best(3, || estimate(&cfg, &w, &Options::at_clock(100e6)).expect("estimate"));
    println!("estimate() end to end (program, three runs): {:.2} ms, {} cycles", est_s * 1e3, e.cycles);

    // the driver on the native model, as `matmul --backend native`
    let mut rng = Rng::new(7);
    let x = DMatrix::from_fn(m, k, |_, _| rng.i8());
    let wts = DMatrix::from_fn(k, n, |_, _| rng.i8());
    let layer = Layer::new(wts, DVector::zeros(n), Quant::IDENTITY).expect("layer");
    let (slow_s, (ys, cs)) = best(1, || {
        let mut dev = Device::open(SimTransport::new(Ticked(NativeSim::new(&cfg))), &cfg).expect("opens");
        let y = dev.layer(&x, &layer, OutputKind::Raw).expect("runs");
        (y, dev.transport().sim().0.cycle())
    });
    let (fast_s, (yf, cf)) = best(3, || {
        let mut dev = Device::open(SimTransport::new(NativeSim::new(&cfg)), &cfg).expect("opens");
        let y = dev.layer(&x, &layer, OutputKind::Raw).expect("runs");
        (y, dev.transport().sim().cycle())
    });
    assert_eq!((yf, cf), (ys, cs), "the fast host loop must equal stepping every cycle");
    println!("driver over SimTransport<NativeSim> (matmul --backend native), {cf} cycles");
    line("stepping every cycle (before)", slow_s, cs);
    line("CycleSim::pump, fast-forwarded (after)", fast_s, cf);
    println!("  speed-up {:.1}x", slow_s / fast_s);

    // a topology
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../data/topologies/alexnet-conv.csv");
    let topo = topology::parse(&std::fs::read(path).expect("alexnet-conv.csv")).expect("parses");
    let (t, report) = best(1, || {
        topology::run(&cfg, &topo, Input::Random { seed: 1 }, &Options::at_clock(100e6), &|_, _| {})
            .expect("runs")
    });
    println!(
        "alexnet-conv.csv, {} layers on {cfg}: {:.3} s ({} cycles)",
        report.layers.len(),
        t,
        report.total.cycles
    );
}
