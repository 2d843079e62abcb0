//! The two cycle-accurate backends in lockstep: the native model and the Verilator model of the
//! emitted Verilog produce identical traces (every output word on the same cycle, the same
//! last-input cycle and length) on random command streams — valid GEMM programs, garbage,
//! malformed commands, boundary addresses — with random stalls on both streams, and the words
//! equal the golden device's (timed COUNTERS words masked). Identical traces include identical
//! COUNTERS responses, so the counters agree too.
//!
//! The soak test (10^5 streams) is ignored by default:
//! `cargo test --release -p protobrain-sim --test lockstep soak -- --ignored --nocapture`.

use sim::native::NativeSim;
use sim::{CycleSim, VerilatedSim};
use spec::isa::Response;
use spec::stimulus::{random_stalls, random_stream, Rng, StreamShape};
use spec::stream::Stalls;
use spec::{Config, GoldenDevice};

fn untimed(dim: usize, words: &[u32]) -> Vec<Response> {
    spec::isa::decode_untimed(dim, words)
        .unwrap_or_else(|e| panic!("undecodable response stream: {e}: {words:x?}"))
}

/// One case; returns the number of cycles simulated.
fn case(cfg: &Config, seed: u64) -> u64 {
    let mut rng = Rng::new(seed);
    let commands = 5 + rng.below(40) as usize;
    let malformed = [0.0, 0.1, 0.4][rng.below(3) as usize];
    let shape = StreamShape { commands, max_rows: 1 + rng.below(6) as u16, malformed };
    let words = random_stream(cfg, &mut rng, shape);
    let p_in = [0.0, 0.2, 0.6][rng.below(3) as usize];
    let p_out = [0.0, 0.2, 0.6][rng.below(3) as usize];
    let in_len = 1 + rng.below(97) as usize;
    let out_len = 1 + rng.below(89) as usize;
    // a pattern stalls on some cycles, never on all (the host would never send or receive)
    let pattern = |rng: &mut Rng, len, p| {
        let mut v = random_stalls(rng, len, p);
        v[len - 1] = false;
        v
    };
    let stalls = Stalls { input: pattern(&mut rng, in_len, p_in), output: pattern(&mut rng, out_len, p_out) };
    let limit = 2_000_000;
    let native = NativeSim::new(cfg).run_stream(&words, &stalls, limit).expect("native never sticks");
    let rtl = VerilatedSim::new(cfg)
        .expect("Verilator model")
        .run_stream(&words, &stalls, limit)
        .expect("RTL never sticks");
    assert_eq!(native, rtl, "native vs Verilator, {cfg}, seed {seed}");
    assert_eq!(
        untimed(cfg.dim(), &rtl.words()),
        untimed(cfg.dim(), &GoldenDevice::run(*cfg, &words)),
        "Verilator vs golden, {cfg}, seed {seed}"
    );
    rtl.cycles
}

fn many(cfg: Config, seeds: std::ops::Range<u64>) {
    let n = seeds.end - seeds.start;
    let cycles: u64 = seeds.map(|s| case(&cfg, s)).sum();
    println!("{cfg}: {n} streams, {cycles} cycles in lockstep");
}

#[test]
fn native_and_verilator_agree_dim2() {
    many(Config::new(2, 16, 8).unwrap(), 0..3000);
}

#[test]
fn native_and_verilator_agree_dim4() {
    many(Config::new(4, 16, 8).unwrap(), 10_000..13_000);
}

#[test]
fn native_and_verilator_agree_dim8() {
    many(Config::new(8, 32, 16).unwrap(), 20_000..22_000);
}

#[test]
fn native_and_verilator_agree_on_presets() {
    for (name, seeds) in [("default", 30_000..30_100), ("ecp5-25k", 31_000..31_100)] {
        many(Config::preset(name).unwrap(), seeds);
    }
}

#[test]
#[ignore = "soak: 10^5 streams, minutes in release"]
fn soak() {
    let cfgs =
        [Config::new(2, 16, 8).unwrap(), Config::new(4, 16, 8).unwrap(), Config::new(8, 32, 16).unwrap()];
    for (i, cfg) in cfgs.iter().enumerate() {
        let base = 1_000_000 * (i as u64 + 1);
        many(*cfg, base..base + 33_334);
    }
}
