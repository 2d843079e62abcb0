//! Resident weights through the whole stack: a model's weight tiles stored once in the
//! scratchpad (WRITE_ACT) and loaded with LOAD_TILE, compiled by the driver
//! (`Residency`, `compile_mlp_resident`) and run on the native model and on the Verilator model
//! of the emitted Verilog: the same output as streaming the weights and as the golden model,
//! the same cycles on both simulators, and fewer words per inference.

use driver::{compile_mlp, compile_mlp_resident, Device, Layer, Output, OutputKind, Program, Residency};
use nalgebra::{DMatrix, DVector};
use sim::native::NativeSim;
use sim::transport::SimTransport;
use sim::{CycleSim, VerilatedSim};
use spec::isa::opcode;
use spec::stimulus::Rng;
use spec::{golden, Config, Quant};

fn random_layer(rng: &mut Rng, k: usize, n: usize) -> Layer {
    let w = DMatrix::from_fn(k, n, |_, _| rng.i8());
    let b = DVector::from_fn(n, |_, _| rng.below(4001) as i32 - 2000);
    Layer::new(w, b, Quant::new(1 + rng.below(60000) as u16, 14 + rng.below(4) as u8, true).unwrap()).unwrap()
}

fn count(p: &Program, op: u8) -> usize {
    p.steps.iter().filter(|s| s.command().is_some_and(|c| c.opcode() == op)).count()
}

/// Upload the tiles, then run `p` twice (two inferences); the outputs, the words the second
/// inference sent and the cycles the whole session took.
fn session<S: CycleSim>(
    sim: S,
    cfg: &Config,
    r: &Residency,
    layers: &[&Layer],
    p: &Program,
) -> (Output, u64, u64) {
    let mut dev = Device::open(SimTransport::new(sim), cfg).expect("device opens");
    for cmd in r.upload_commands(layers) {
        dev.execute(&cmd).expect("tile stored");
    }
    dev.sync().expect("upload done");
    let first = dev.run(p).expect("first inference").output().clone();
    let out = dev.run(p).expect("second inference");
    assert_eq!(out.output(), &first, "an inference does not disturb the resident tiles");
    (out.output().clone(), out.words_sent, dev.transport().sim().cycle())
}

#[test]
fn resident_mlps_equal_streamed_and_golden_on_native_and_verilator() {
    for (case, (d, budget)) in [(2usize, usize::MAX), (4, usize::MAX), (2, 6)].into_iter().enumerate() {
        let cfg = Config::new(d, 64, 16).unwrap();
        let mut rng = Rng::new(0x7E5 + case as u64);
        let dims = [3 * d + 1, 2 * d, d + 1];
        let m = 1 + rng.below(5) as usize;
        let x = DMatrix::from_fn(m, dims[0], |_, _| rng.i8());
        let layers = vec![random_layer(&mut rng, dims[0], dims[1]), random_layer(&mut rng, dims[1], dims[2])];
        let refs: Vec<&Layer> = layers.iter().collect();
        let resident = Residency::plan(&cfg, &refs, budget);
        let (stored, total) = resident.stored();
        let streamed = compile_mlp(&cfg, &x, &layers, OutputKind::Int8).unwrap();
        let p = compile_mlp_resident(&cfg, &x, &layers, OutputKind::Int8, &resident, 0).unwrap();
        let what = format!("{cfg}, M {m}, dims {dims:?}, {stored} of {total} tiles resident");
        // every weight load of the streamed program is a LOAD_TILE where the tile is stored
        let loads = count(&streamed, opcode::LOAD_WEIGHTS);
        assert_eq!(count(&p, opcode::LOAD_TILE) + count(&p, opcode::LOAD_WEIGHTS), loads, "{what}");
        if stored == total {
            assert_eq!(count(&p, opcode::LOAD_WEIGHTS), 0, "{what}");
        } else {
            assert!(
                stored > 0 && count(&p, opcode::LOAD_WEIGHTS) > 0,
                "a mixed model streams the rest: {what}"
            );
        }
        let want =
            Output::Int8(layers.iter().fold(x.clone(), |a, l| {
                golden::layer_v2(&a, l.weights(), l.bias(), l.layer_quant()).unwrap()
            }));
        let (native, native_words, native_cycles) = session(NativeSim::new(&cfg), &cfg, &resident, &refs, &p);
        let (rtl, rtl_words, rtl_cycles) =
            session(VerilatedSim::new(&cfg).expect("Verilator model"), &cfg, &resident, &refs, &p);
        assert_eq!(native, want, "native vs golden, {what}");
        assert_eq!(rtl, want, "Verilator vs golden, {what}");
        assert_eq!(native_cycles, rtl_cycles, "cycles, {what}");
        assert_eq!(native_words, rtl_words);
        // a LOAD_TILE is 2 words where LOAD_WEIGHTS is 1 + DIM·ceil(DIM/4)
        let tiles = count(&p, opcode::LOAD_TILE) as u64;
        let per_load = (d * cfg.words_per_row()) as u64 - 1;
        assert_eq!(streamed.stats().words_to_device - native_words, tiles * per_load, "{what}");
    }
}
