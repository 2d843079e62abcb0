//! The driver end to end on the cycle-accurate simulators: GEMMs of any shape (not multiples
//! of DIM, larger than the memories) and a 3-layer MLP, tiled by the driver and streamed over
//! the hardware handshake to the native model and to the Verilator model of the RTL. Results
//! equal the golden model bit for bit, and the two simulators take the same number of cycles.

use driver::{Device, Layer, Output, OutputKind};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use sim::native::NativeSim;
use sim::transport::SimTransport;
use sim::{CycleSim, VerilatedSim};
use spec::{golden, Config, Quant};

/// Run `layers` on `x` on both simulators; returns the output (asserted equal) and the cycles.
fn on_both(cfg: &Config, x: &DMatrix<i8>, layers: &[Layer], kind: OutputKind) -> (Output, u64) {
    let mut native = Device::open(SimTransport::new(NativeSim::new(cfg)), cfg).unwrap();
    let mut rtl = Device::open(SimTransport::new(VerilatedSim::new(cfg).unwrap()), cfg).unwrap();
    let a = native.mlp(x, layers, kind).unwrap();
    let b = rtl.mlp(x, layers, kind).unwrap();
    assert_eq!(a, b, "native and RTL outputs differ on {cfg}");
    let (ca, cb) = (native.transport().sim().cycle(), rtl.transport().sim().cycle());
    assert_eq!(ca, cb, "native and RTL cycle counts differ on {cfg}");
    (a, ca)
}

fn matrix(rows: usize, cols: usize) -> impl Strategy<Value = DMatrix<i8>> {
    proptest::collection::vec(any::<i8>(), rows * cols)
        .prop_map(move |v| DMatrix::from_row_slice(rows, cols, &v))
}

/// Prebuilt Verilator configurations (sim/build.rs): no run-time model builds in this test.
fn configs() -> Vec<Config> {
    vec![Config::new(2, 16, 8).unwrap(), Config::new(4, 16, 8).unwrap(), Config::new(8, 32, 16).unwrap()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn gemms_of_any_shape_equal_the_golden_model(
        (cfg, x, w, b, q, raw) in (0usize..3).prop_flat_map(|i| {
            let cfg = configs()[i];
            let lim = 3 * cfg.dim() + 3;
            // up to 3·DIM+3, and sometimes past the memories (M up to 40 > 16 scratch rows)
            (Just(cfg), 1..=40usize, 1..=lim, 1..=lim)
        }).prop_flat_map(|(cfg, m, k, n)| (
            Just(cfg),
            matrix(m, k),
            matrix(k, n),
            proptest::collection::vec(-20_000i32..20_000, n).prop_map(DVector::from_vec),
            (any::<u16>(), 6u8..=18, any::<bool>()).prop_map(|(m, s, r)| Quant::new(m, s, r).unwrap()),
            any::<bool>(),
        ))
    ) {
        let layer = Layer::new(w.clone(), b.clone(), q).unwrap();
        let kind = if raw { OutputKind::Raw } else { OutputKind::Int8 };
        let (y, _) = on_both(&cfg, &x, &[layer], kind);
        if raw {
            prop_assert_eq!(y.as_raw().unwrap(), &golden::layer_raw(&x, &w, &b).unwrap());
        } else {
            prop_assert_eq!(y.as_int8().unwrap(), &golden::layer(&x, &w, &b, q).unwrap());
        }
    }
}

#[test]
fn a_three_layer_mlp_equals_the_golden_model_layer_by_layer() {
    let mut rng = spec::rng::SplitMix64::new(3);
    let mut mat = |r: usize, c: usize| DMatrix::from_fn(r, c, |_, _| rng.i8());
    let x = mat(23, 19);
    let widths = [19usize, 13, 9, 5];
    let layers: Vec<Layer> = widths
        .windows(2)
        .enumerate()
        .map(|(i, w)| {
            let bias = DVector::from_fn(w[1], |n, _| (n as i32 - 4) * 300);
            Layer::new(mat(w[0], w[1]), bias, Quant::new(200 + 50 * i as u16, 12, i < 2).unwrap()).unwrap()
        })
        .collect();
    // the golden chain on the host
    let mut a = x.clone();
    for l in &layers[..2] {
        a = golden::layer(&a, l.weights(), l.bias(), l.quant()).unwrap();
    }
    let logits = golden::layer_raw(&a, layers[2].weights(), layers[2].bias()).unwrap();
    for cfg in configs() {
        let (y, cycles) = on_both(&cfg, &x, &layers, OutputKind::Raw);
        assert_eq!(y.as_raw().unwrap(), &logits, "{cfg}");
        assert!(cycles > 0);
        // and layer by layer: the first two layers' int8 outputs
        let (h1, _) = on_both(&cfg, &x, &layers[..1], OutputKind::Int8);
        assert_eq!(
            h1.as_int8().unwrap(),
            &golden::layer(&x, layers[0].weights(), layers[0].bias(), layers[0].quant()).unwrap()
        );
    }
}

/// Double buffering on the banked core: the same GEMMs compiled with `Buffering::Double` and
/// `Buffering::Whole` compute the golden result on the native model and on the Verilator model
/// of the RTL, with equal cycle counts on both; double buffering (chunks on alternating halves,
/// the next chunk's WRITE_ACTs and the last one's ACTIVATE/READ_ACT between the MATMULs) takes
/// fewer cycles than the whole-memory schedule where the halves hold big chunks (the
/// `ecp5-25k` memories: 4528 against 6084 cycles; the `default` memories at DIM 8: 7894
/// against 8670, the whole-memory schedule overlapping its read-back with the ACTIVATE engine
/// too; on 8-row halves the extra chunks cost more weight loads than they save, which is why
/// `Buffering::Auto` estimates before it chooses).
#[test]
fn double_buffered_gemms_overlap_and_agree_on_both_simulators() {
    use driver::{compile_mlp_buffered, Buffering};
    let mut rng = spec::rng::SplitMix64::new(11);
    for (cfg, m, k, n) in [
        (Config::new(2, 16, 8).unwrap(), 40, 6, 5),
        (Config::new(4, 16, 8).unwrap(), 37, 9, 8),
        (Config::new(8, 32, 16).unwrap(), 48, 16, 16),
        (Config::new(8, 1024, 512).unwrap(), 256, 32, 32),
        (Config::new(4, 2048, 1024).unwrap(), 300, 16, 12),
    ] {
        let x = DMatrix::from_fn(m, k, |_, _| rng.i8());
        let w = DMatrix::from_fn(k, n, |_, _| rng.i8());
        let b = DVector::from_fn(n, |c, _| c as i32 * 100 - 300);
        let q = Quant::new(90, 9, true).unwrap();
        let layer = Layer::new(w.clone(), b.clone(), q).unwrap();
        let want = golden::layer(&x, &w, &b, q).unwrap();
        let mut cycles = Vec::new();
        for buffering in [Buffering::Double, Buffering::Whole] {
            let p = compile_mlp_buffered(&cfg, &x, std::slice::from_ref(&layer), OutputKind::Int8, buffering)
                .unwrap();
            let mut native = Device::open(SimTransport::new(NativeSim::new(&cfg)), &cfg).unwrap();
            let mut rtl = Device::open(SimTransport::new(VerilatedSim::new(&cfg).unwrap()), &cfg).unwrap();
            let (a, b) = (native.run(&p).unwrap(), rtl.run(&p).unwrap());
            assert_eq!(a.output().as_int8().unwrap(), &want, "{cfg} {buffering:?} native");
            assert_eq!(b.output().as_int8().unwrap(), &want, "{cfg} {buffering:?} rtl");
            let (ca, cb) = (native.transport().sim().cycle(), rtl.transport().sim().cycle());
            assert_eq!(ca, cb, "{cfg} {buffering:?}: native and RTL cycles differ");
            cycles.push(ca);
        }
        eprintln!("{cfg}: {m}x{k}x{n} double buffered {} cycles, whole {} cycles", cycles[0], cycles[1]);
        if cfg.scratch_rows() >= 1024 {
            assert!(cycles[0] < cycles[1], "{cfg}: double {} !< whole {}", cycles[0], cycles[1]);
        }
    }
}
