//! The driver's programs compute exactly what the golden model computes: random shapes (up to
//! 3·DIM+3 and beyond the memories), random data, random quantisation, DIM 1..=5, memories
//! from one row up; single layers and 3-layer MLPs; int8 and raw int32 outputs; v1 layers and
//! contract v2 layers (per-column scales, output zero point) against `golden::layer_v2`.

use driver::{
    compile_layer, compile_mlp, compile_mlp_buffered, plan_buffered, Buffering, CompileError, Device,
    GoldenTransport, Layer, Output, OutputKind, Program, Recorder, Step,
};
use nalgebra::{DMatrix, DVector};
use proptest::prelude::*;
use spec::isa::Command;
use spec::{golden, ColumnScale, Config, LayerQuant, Quant};

fn mat(r: usize, c: usize) -> impl Strategy<Value = DMatrix<i8>> {
    proptest::collection::vec(any::<i8>(), r * c).prop_map(move |v| DMatrix::from_row_slice(r, c, &v))
}

fn quant() -> impl Strategy<Value = Quant> {
    // shifts near log2(K·127²) keep outputs away from saturation often enough to matter
    (any::<u16>(), prop_oneof![0u8..=47, 8u8..=24], any::<bool>())
        .prop_map(|(m, s, r)| Quant::new(m, s, r).unwrap())
}

/// A v1 layer (`Layer::new`), or a v2 one (`Layer::with_quant`): per-column scales and/or an
/// output zero point.
fn layer(k: usize, n: usize) -> impl Strategy<Value = Layer> {
    let v2 = (proptest::collection::vec(quant(), n), any::<bool>(), any::<i8>(), any::<bool>());
    (mat(k, n), proptest::collection::vec(prop_oneof![any::<i32>(), -5000i32..5000], n), quant(), v2)
        .prop_map(|(w, b, q, (cols, per_column, z, v1))| {
            if v1 {
                return Layer::new(w, DVector::from_vec(b), q).unwrap();
            }
            let scales = if per_column {
                cols.iter().map(|&c| ColumnScale::from(c)).collect()
            } else {
                vec![q.into()]
            };
            let lq = LayerQuant::per_column(scales, q.relu, z).unwrap();
            Layer::with_quant(w, DVector::from_vec(b), lq).unwrap()
        })
}

/// The golden model of one int8 layer (v2 arithmetic; the same as `golden::layer` for v1).
fn golden_int8(x: &DMatrix<i8>, l: &Layer) -> DMatrix<i8> {
    golden::layer_v2(x, l.weights(), l.bias(), l.layer_quant()).unwrap()
}

/// Memories from tiny (1 row) to roomy.
fn config(dim: usize) -> impl Strategy<Value = Config> {
    (
        prop_oneof![Just(1usize), Just(2), Just(4), Just(8), Just(16), Just(256)],
        prop_oneof![Just(1usize), Just(2), Just(8), Just(256)],
    )
        .prop_map(move |(s, a)| Config::new(dim, s, a).unwrap())
}

/// Sizes up to 3·DIM+3, and sometimes well past the memories.
fn size(dim: usize) -> impl Strategy<Value = usize> {
    prop_oneof![3 => 1..=3 * dim + 3, 1 => 1usize..=40]
}

fn kind() -> impl Strategy<Value = OutputKind> {
    prop_oneof![Just(OutputKind::Int8), Just(OutputKind::Raw)]
}

/// What the golden model says one layer returns.
fn golden_layer(x: &DMatrix<i8>, l: &Layer, kind: OutputKind) -> Output {
    match kind {
        OutputKind::Int8 => Output::Int8(golden_int8(x, l)),
        OutputKind::Raw => Output::Raw(golden::layer_raw(x, l.weights(), l.bias()).unwrap()),
    }
}

/// The only reason a layer may not fit: a one-row scratchpad, an int8 output and K or N > DIM.
fn cannot_fit(cfg: &Config, k: usize, n: usize, kind: OutputKind) -> bool {
    kind == OutputKind::Int8 && cfg.scratch_rows() == 1 && (k > cfg.dim() || n > cfg.dim())
}

/// Run a program on a recorded golden device; check the bookkeeping on the way.
fn run(cfg: &Config, p: &Program) -> driver::RunOutput {
    let mut dev = Device::open(Recorder::new(GoldenTransport::new(*cfg)), cfg).unwrap();
    let before = dev.transport().sent.len();
    let out = dev.run(p).unwrap();
    let stats = p.stats();
    assert_eq!(out.words_sent, stats.words_to_device);
    assert_eq!(out.words_received, stats.words_from_device);
    if stats.write_backs == 0 {
        // the stream that crossed the wire is exactly the program's words
        assert_eq!(dev.transport().sent[before..], p.words().unwrap()[..]);
    }
    out
}

/// Every LOAD_WEIGHTS but the first comes after a MATMUL with only data and register steps
/// between (it overlaps the array's work: right after the MATMUL, or double buffered after the
/// other chunks' steps placed in its window), and every tile's first MATMUL overwrites while
/// the others accumulate.
fn check_order(p: &Program) {
    let mut first = true;
    for (i, s) in p.steps.iter().enumerate() {
        if let Step::Command(Command::LoadWeights { .. }) = s {
            if !first {
                let before = p.steps[..i].iter().rev().find(|s| {
                    matches!(
                        s,
                        Step::Command(
                            Command::Matmul { .. } | Command::LoadWeights { .. } | Command::LoadTile { .. }
                        )
                    )
                });
                assert!(
                    matches!(before, Some(Step::Command(Command::Matmul { .. }))),
                    "step {i}: LOAD_WEIGHTS after {before:?}"
                );
            }
            first = false;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn one_layer_equals_the_golden_model(
        (cfg, x, l, kind) in (1usize..=5).prop_flat_map(|d| (config(d), size(d), size(d), size(d), kind()))
            .prop_flat_map(|(cfg, m, k, n, kind)| (Just(cfg), mat(m, k), layer(k, n), Just(kind)))
    ) {
        match compile_layer(&cfg, &x, &l, kind) {
            Err(CompileError::TooSmall { .. }) => prop_assert!(cannot_fit(&cfg, l.k(), l.n(), kind)),
            Err(e) => panic!("{e}"),
            Ok(p) => {
                prop_assert!(!cannot_fit(&cfg, l.k(), l.n(), kind));
                check_order(&p);
                let out = run(&cfg, &p);
                prop_assert_eq!(out.output(), &golden_layer(&x, &l, kind));
            }
        }
    }

    /// Double buffering forced wherever it fits: chunks alternate between the memories'
    /// halves and their steps interleave; the result is still the golden model's.
    #[test]
    fn double_buffered_layers_equal_the_golden_model(
        (cfg, x, l, kind) in (1usize..=5).prop_flat_map(|d| (config(d), size(d), size(d), size(d), kind()))
            .prop_flat_map(|(cfg, m, k, n, kind)| (Just(cfg), mat(m, k), layer(k, n), Just(kind)))
    ) {
        match compile_mlp_buffered(&cfg, &x, std::slice::from_ref(&l), kind, Buffering::Double) {
            Err(CompileError::TooSmall { .. }) => prop_assert!(cannot_fit(&cfg, l.k(), l.n(), kind)),
            Err(e) => panic!("{e}"),
            Ok(p) => {
                check_order(&p);
                let out = run(&cfg, &p);
                prop_assert_eq!(out.output(), &golden_layer(&x, &l, kind));
            }
        }
    }

    #[test]
    fn a_three_layer_mlp_equals_the_golden_model_layer_by_layer(
        (cfg, x, layers, kind) in (1usize..=5).prop_flat_map(|d| (config(d), size(d), proptest::collection::vec(size(d), 4), kind()))
            .prop_flat_map(|(cfg, m, dims, kind)| (
                Just(cfg),
                mat(m, dims[0]),
                (layer(dims[0], dims[1]), layer(dims[1], dims[2]), layer(dims[2], dims[3])),
                Just(kind),
            ))
    ) {
        let layers = vec![layers.0, layers.1, layers.2];
        // the golden chain, layer by layer
        let mut acts = vec![x.clone()];
        for l in &layers[..2] {
            let y = golden_int8(acts.last().unwrap(), l);
            acts.push(y);
        }
        let want = golden_layer(&acts[2], &layers[2], kind);
        let fits = layers.iter().enumerate().all(|(i, l)| !cannot_fit(&cfg, l.k(), l.n(), if i == 2 { kind } else { OutputKind::Int8 }));
        match compile_mlp(&cfg, &x, &layers, kind) {
            Err(CompileError::TooSmall { .. }) => prop_assert!(!fits),
            Err(e) => panic!("{e}"),
            Ok(p) => {
                prop_assert!(fits);
                check_order(&p);
                let out = run(&cfg, &p);
                prop_assert_eq!(out.output(), &want);
                // intermediate results (chains that ended because the activations did not fit)
                // are the golden activations of the layer they end on
                let plan = driver::plan(&cfg, x.nrows(), &layers.iter().map(|l| (l.k(), l.n())).collect::<Vec<_>>(), kind).unwrap();
                prop_assert_eq!(plan.segments.len(), out.results.len());
                for (seg, got) in plan.segments.iter().zip(&out.results).take(out.results.len() - 1) {
                    prop_assert_eq!(got, &Output::Int8(acts[seg.layers.end].clone()));
                }
            }
        }
    }
}

fn seeded_layer(k: usize, n: usize, seed: i32, q: Quant) -> Layer {
    let w = DMatrix::from_fn(k, n, |r, c| ((r as i32 * 31 + c as i32 * 17 + seed) % 255 - 127) as i8);
    let b = DVector::from_fn(n, |c, _| (c as i32 - 3) * 1000 + seed);
    Layer::new(w, b, q).unwrap()
}

#[test]
fn an_mlp_that_fits_stays_on_chip_and_reads_back_only_the_last_layer() {
    let cfg = Config::new(4, 256, 64).unwrap();
    let x = DMatrix::from_fn(20, 10, |m, k| ((m * 7 + k * 3) % 200) as i8);
    let q = Quant::new(1, 7, true).unwrap();
    let layers = vec![seeded_layer(10, 16, 1, q), seeded_layer(16, 12, 2, q), seeded_layer(12, 3, 3, q)];
    let p = compile_mlp(&cfg, &x, &layers, OutputKind::Raw).unwrap();
    assert_eq!(p.results.len(), 1);
    let s = p.stats();
    assert_eq!(s.write_backs, 0);
    // only the 3 output columns (one tile) of 20 rows come back, raw: one READ_ACC
    let reads: Vec<_> =
        p.steps.iter().filter(|s| matches!(s, Step::ReadAcc { .. } | Step::ReadAct { .. })).collect();
    assert_eq!(reads.len(), 1);
    assert_eq!(s.words_from_device, (1 + 20 * 4) + 2);
    let out = run(&cfg, &p);
    let y1 = golden::layer(&x, layers[0].weights(), layers[0].bias(), q).unwrap();
    let y2 = golden::layer(&y1, layers[1].weights(), layers[1].bias(), q).unwrap();
    assert_eq!(
        out.output().as_raw().unwrap(),
        &golden::layer_raw(&y2, layers[2].weights(), layers[2].bias()).unwrap()
    );
}

#[test]
fn an_mlp_whose_activations_do_not_fit_round_trips_through_the_host() {
    // DIM 2 with 8 scratchpad rows: the 40 hidden units (20 tiles) cannot stay on chip
    let cfg = Config::new(2, 8, 4).unwrap();
    let x = DMatrix::from_fn(9, 6, |m, k| (((m * 13 + k * 5) % 250) as i32 - 100) as i8);
    let q = Quant::new(3, 6, true).unwrap();
    let layers = vec![seeded_layer(6, 40, 4, q), seeded_layer(40, 5, 5, q), seeded_layer(5, 3, 6, q)];
    let p = compile_mlp(&cfg, &x, &layers, OutputKind::Int8).unwrap();
    assert!(p.stats().write_backs > 0);
    assert_eq!(p.results.len(), 2);
    assert!(p.words().is_err());
    let out = run(&cfg, &p);
    let y1 = golden::layer(&x, layers[0].weights(), layers[0].bias(), q).unwrap();
    let y2 = golden::layer(&y1, layers[1].weights(), layers[1].bias(), q).unwrap();
    let y3 = golden::layer(&y2, layers[2].weights(), layers[2].bias(), q).unwrap();
    assert_eq!(out.results[0], Output::Int8(y1));
    assert_eq!(out.output(), &Output::Int8(y3));
}

#[test]
fn big_layers_on_tiny_memories() {
    // M, K, N all far past 16 scratchpad rows and 8 accumulator rows of DIM 2
    let cfg = Config::new(2, 16, 8).unwrap();
    let x = DMatrix::from_fn(70, 61, |m, k| ((m * 11 + k * 7) % 256) as u8 as i8);
    let l = seeded_layer(61, 45, 9, Quant::new(5, 9, false).unwrap());
    for kind in [OutputKind::Int8, OutputKind::Raw] {
        let p = compile_layer(&cfg, &x, &l, kind).unwrap();
        check_order(&p);
        assert_eq!(run(&cfg, &p).output(), &golden_layer(&x, &l, kind));
    }
}

#[test]
fn zero_sized_dimensions_compute_what_the_golden_model_does() {
    let cfg = Config::new(3, 16, 16).unwrap();
    let l = seeded_layer(0, 4, 1, Quant::IDENTITY); // K = 0: Y = act(b)
    let x = DMatrix::<i8>::zeros(5, 0);
    for kind in [OutputKind::Int8, OutputKind::Raw] {
        let p = compile_layer(&cfg, &x, &l, kind).unwrap();
        assert_eq!(run(&cfg, &p).output(), &golden_layer(&x, &l, kind));
    }
    let x = DMatrix::<i8>::zeros(0, 4); // M = 0: nothing to do but the final SYNC
    let p = compile_layer(&cfg, &x, &seeded_layer(4, 4, 1, Quant::IDENTITY), OutputKind::Int8).unwrap();
    assert_eq!(p.steps.len(), 1);
    assert_eq!(run(&cfg, &p).output().shape(), (0, 4));
}

/// With double buffering the chunks alternate between the halves of both memories and the
/// steps of the neighbouring chunks are placed between a chunk's MATMULs; forbidding it gives
/// the whole-memory schedule; both compute the golden result, for GEMMs and an MLP.
#[test]
fn double_buffering_alternates_halves_and_interleaves_the_chunks() {
    let q = Quant::new(3, 8, true).unwrap();
    for (d, s, a, m, k, n) in [(4, 64, 32, 100, 12, 9), (2, 16, 8, 40, 5, 7), (8, 64, 32, 70, 20, 30)] {
        let cfg = Config::new(d, s, a).unwrap();
        let x = DMatrix::from_fn(m, k, |r, c| ((r * 7 + c * 3) % 251) as u8 as i8);
        let l = seeded_layer(k, n, d as i32, q);
        for kind in [OutputKind::Int8, OutputKind::Raw] {
            let plan = plan_buffered(&cfg, m, &[(k, n)], kind, Buffering::Double).unwrap();
            assert!(plan.double_buffered && plan.segments[0].chunks >= 2, "{cfg}: {plan}");
            let double =
                compile_mlp_buffered(&cfg, &x, std::slice::from_ref(&l), kind, Buffering::Double).unwrap();
            let whole =
                compile_mlp_buffered(&cfg, &x, std::slice::from_ref(&l), kind, Buffering::Whole).unwrap();
            let mm = |p: &Program| -> Vec<(u16, u16)> {
                p.steps
                    .iter()
                    .filter_map(|s| match s {
                        Step::Command(Command::Matmul { src, dst, .. }) => Some((*src, *dst)),
                        _ => None,
                    })
                    .collect()
            };
            // both halves of both memories are used; the whole-memory schedule stays low
            let (sb, ab) = (cfg.scratch_bank_rows() as u16, cfg.acc_bank_rows() as u16);
            assert!(mm(&double).iter().any(|&(s, d)| s >= sb && d >= ab), "{cfg}");
            assert!(mm(&double).iter().any(|&(s, d)| s < sb && d < ab), "{cfg}");
            // some data step of another chunk sits between two MATMULs
            let is_mm = |s: &Step| matches!(s, Step::Command(Command::Matmul { .. }));
            let first = double.steps.iter().position(is_mm).unwrap();
            let last = double.steps.iter().rposition(is_mm).unwrap();
            assert!(
                double.steps[first..last].iter().any(|s| matches!(
                    s,
                    Step::Command(Command::WriteAct { .. } | Command::Activate { .. })
                        | Step::ReadAct { .. }
                        | Step::ReadAcc { .. }
                )),
                "{cfg}: nothing interleaved"
            );
            check_order(&double);
            let want = golden_layer(&x, &l, kind);
            assert_eq!(run(&cfg, &double).output(), &want, "{cfg} double");
            assert_eq!(run(&cfg, &whole).output(), &want, "{cfg} whole");
        }
    }
    let cfg = Config::new(4, 64, 32).unwrap();
    let x = DMatrix::from_fn(50, 10, |r, c| ((r * 5 + c * 11) % 256) as u8 as i8);
    let layers = vec![seeded_layer(10, 8, 1, q), seeded_layer(8, 6, 2, q), seeded_layer(6, 5, 3, q)];
    let p = compile_mlp_buffered(&cfg, &x, &layers, OutputKind::Int8, Buffering::Double).unwrap();
    let mut y = x.clone();
    for l in &layers {
        y = golden::layer(&y, l.weights(), l.bias(), q).unwrap();
    }
    assert_eq!(run(&cfg, &p).output(), &Output::Int8(y));
}

/// A wider link (LANES 2..=64, docs/design.md "A wider link"): the same programs give the
/// golden model's results, the link carries exactly the program's words framed as beats, and
/// the responses come back unframed.
mod lanes {
    use super::*;
    use spec::lanes::{frame, Lanes, Stream};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn programs_on_a_wide_link_equal_the_golden_model(
            (cfg, x, layers, kind) in (1usize..=9, 0usize..7)
                .prop_flat_map(|(d, l)| (config(d), Just(1usize << l), size(d), size(d), size(d), size(d), kind()))
                .prop_flat_map(|(cfg, l, m, k, h, n, kind)| (
                    Just(cfg.with_lanes(Lanes::new(l).unwrap())),
                    mat(m, k),
                    (layer(k, h), layer(h, n)),
                    Just(kind),
                ))
        ) {
            let layers = [layers.0, layers.1];
            let p = match compile_mlp(&cfg, &x, &layers, kind) {
                Err(CompileError::TooSmall { .. }) => return Ok(()),
                Err(e) => panic!("{e}"),
                Ok(p) => p,
            };
            let mut dev = Device::open(Recorder::new(GoldenTransport::new(cfg)), &cfg).unwrap();
            let before = dev.transport().sent.len();
            let out = dev.run(&p).unwrap();
            let stats = p.stats();
            prop_assert_eq!(out.words_sent, stats.words_to_device);
            prop_assert_eq!(out.words_received, stats.words_from_device);
            let l = cfg.lanes().get();
            let link = dev.stats();
            prop_assert_eq!(dev.transport().sent.len() as u64, link.beats_sent * l as u64);
            prop_assert_eq!(dev.transport().received.len() as u64, link.beats_received * l as u64);
            if stats.write_backs == 0 {
                let words = p.words().unwrap();
                prop_assert_eq!(&dev.transport().sent[before..], &frame(&words, Stream::Commands, &cfg, cfg.lanes())[..]);
            }
            let h = golden_int8(&x, &layers[0]);
            prop_assert_eq!(out.output(), &golden_layer(&h, &layers[1], kind));
        }
    }
}
