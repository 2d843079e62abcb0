//! Contract v2 through the whole stack: MLPs with per-column scales and output zero points,
//! compiled by the driver (LOAD_QUANT per column tile, 2-word SET_QUANT), run on the native
//! model and on the Verilator model of the emitted Verilog through the driver: both give the
//! golden model's output (`spec::golden::layer_v2`, layer by layer) after the same number of
//! cycles.

use driver::{compile_mlp, Device, Layer, Output, OutputKind};
use nalgebra::{DMatrix, DVector};
use sim::native::NativeSim;
use sim::transport::SimTransport;
use sim::{CycleSim, VerilatedSim};
use spec::isa::Command;
use spec::stimulus::Rng;
use spec::{golden, ColumnScale, Config, LayerQuant};

fn random_layer(rng: &mut Rng, k: usize, n: usize, per_column: bool, relu: bool) -> Layer {
    let w = DMatrix::from_fn(k, n, |_, _| rng.i8());
    let b = DVector::from_fn(n, |_, _| rng.below(4001) as i32 - 2000);
    let scale = |rng: &mut Rng| ColumnScale::new(rng.next_u64() as u16, 14 + rng.below(6) as u8).unwrap();
    let scales = (0..if per_column { n } else { 1 }).map(|_| scale(rng)).collect();
    let z = if rng.chance(0.2) { 0 } else { rng.i8() };
    Layer::with_quant(w, b, LayerQuant::per_column(scales, relu, z).unwrap()).unwrap()
}

fn golden_mlp(x: &DMatrix<i8>, layers: &[Layer]) -> DMatrix<i8> {
    layers
        .iter()
        .fold(x.clone(), |a, l| golden::layer_v2(&a, l.weights(), l.bias(), l.layer_quant()).unwrap())
}

/// Run on one simulator through the driver; the output and the cycles it took.
fn run_on<S: CycleSim>(sim: S, cfg: &Config, p: &driver::Program) -> (Output, u64) {
    let mut dev = Device::open(SimTransport::new(sim), cfg).expect("device opens");
    let out = dev.run(p).expect("program runs");
    let cycles = dev.transport().sim().cycle();
    (out.output().clone(), cycles)
}

#[test]
fn v2_mlps_on_native_and_verilator_equal_golden_and_each_other() {
    for (seed, (d, s, a)) in [(2usize, 16usize, 8usize), (4, 16, 8)].into_iter().enumerate() {
        let cfg = Config::new(d, s, a).unwrap();
        for case in 0..4u64 {
            let mut rng = Rng::new(1000 * seed as u64 + case);
            let dims: Vec<usize> = (0..3).map(|_| 1 + rng.below(3 * d as u64 + 2) as usize).collect();
            let m = 1 + rng.below(9) as usize;
            let x = DMatrix::from_fn(m, dims[0], |_, _| rng.i8());
            let layers = vec![
                random_layer(&mut rng, dims[0], dims[1], case % 2 == 0, true),
                random_layer(&mut rng, dims[1], dims[2], true, case % 3 == 0),
            ];
            let p = compile_mlp(&cfg, &x, &layers, OutputKind::Int8).unwrap();
            let sends = |op: u8| p.steps.iter().any(|s| s.command().is_some_and(|c| c.opcode() == op));
            assert!(sends(spec::isa::opcode::LOAD_QUANT), "per-column layers load their column scales");
            let want = Output::Int8(golden_mlp(&x, &layers));
            let (native, native_cycles) = run_on(NativeSim::new(&cfg), &cfg, &p);
            let (rtl, rtl_cycles) = run_on(VerilatedSim::new(&cfg).expect("Verilator model"), &cfg, &p);
            let what = format!("{cfg}, case {case}, M {m}, dims {dims:?}");
            assert_eq!(native, want, "native vs golden, {what}");
            assert_eq!(rtl, want, "Verilator vs golden, {what}");
            assert_eq!(native_cycles, rtl_cycles, "cycles, {what}");
            if p.steps.iter().any(|s| matches!(s.command(), Some(Command::SetQuantZp { .. }))) {
                eprintln!("{what}: {native_cycles} cycles, with zero points");
            }
        }
    }
}
