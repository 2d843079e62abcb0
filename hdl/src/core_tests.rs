//! The whole core against the golden device: rust-hdl simulation and the emitted Verilog
//! under Icarus, on the same streams and stalls.

use super::*;
use crate::emit;
use crate::stream::{run_icarus, run_rust, Stalls};
use spec::isa::{decode_responses, Command, Response};
use spec::{GoldenDevice, Quant};

fn program(cmds: &[Command], dim: usize) -> Vec<u32> {
    let mut w = Vec::new();
    for c in cmds {
        c.encode_into(dim, &mut w).unwrap();
    }
    w
}

#[test]
fn smoke_two_by_two() {
    let cfg = Config::new(2, 8, 4).unwrap();
    let cmds = [
        Command::Info,
        Command::WriteAct { dst: 5, rows: vec![vec![1, -2], vec![3, 4]] },
        Command::LoadWeights { weights: vec![5, 6, -7, 8] },
        Command::LoadBias { bias: vec![1, -100] },
        Command::SetQuant(Quant::new(3, 2, false).unwrap()),
        Command::Matmul { src: 5, n: 2, dst: 1, accumulate: false },
        Command::ReadAcc { src: 1, n: 2 },
        Command::Activate { src: 1, n: 2, dst: 0 },
        Command::ReadAct { src: 0, n: 2 },
        Command::Sync { token: 0xC0FFEE },
    ];
    let words = program(&cmds, 2);
    let golden = GoldenDevice::run(cfg, &words);
    let mut core = ProtobrainCore::new(&cfg);
    let rust = run_rust(&mut core, &words, &Stalls::none(), 10_000).unwrap();
    println!("{:?}", decode_responses(2, &rust.words()));
    assert_eq!(rust.words(), golden);
    let v = emit::verilog(&cfg).unwrap();
    let rtl = run_icarus(&v, 2, &words, &Stalls::none(), 10_000).unwrap();
    assert_eq!(rtl, rust);
    let _ = Response::Sync { token: 0 };
}

/// Decode a response stream and zero the timed COUNTERS fields, which the untimed golden
/// device answers as 0 (spec::isa::TIMED_COUNTER_WORDS).
fn untimed(dim: usize, words: &[u32]) -> Vec<Response> {
    decode_responses(dim, words)
        .unwrap_or_else(|e| panic!("undecodable response stream: {e}: {words:x?}"))
        .into_iter()
        .map(|r| match r {
            Response::Counters(c) => Response::Counters(spec::Counters {
                cycles: 0,
                matmul_cycles: 0,
                in_stall_cycles: 0,
                out_stall_cycles: 0,
                ..c
            }),
            r => r,
        })
        .collect()
}

use spec::stimulus::{random_stalls, random_stream, Rng, StreamShape};

/// One random case: the rust-hdl model against the golden device, and optionally the emitted
/// Verilog under Icarus against the rust-hdl model (same words on the same cycles).
fn random_case(cfg: Config, seed: u64, commands: usize, icarus: Option<&str>) {
    let mut rng = Rng::new(seed);
    let words = random_stream(&cfg, &mut rng, StreamShape { commands, max_rows: 3, malformed: 0.2 });
    let p_in = [0.0, 0.3, 0.7][rng.below(3) as usize];
    let p_out = [0.0, 0.3, 0.7][rng.below(3) as usize];
    let stalls =
        Stalls { input: random_stalls(&mut rng, 61, p_in), output: random_stalls(&mut rng, 53, p_out) };
    let golden = GoldenDevice::run(cfg, &words);
    let resp = untimed(cfg.dim(), &golden);
    eprintln!(
        "seed {seed}: {} words in, {} responses ({} errors), stalls in {p_in} out {p_out}",
        words.len(),
        resp.len(),
        resp.iter().filter(|r| matches!(r, Response::Error(_))).count()
    );
    let mut core = ProtobrainCore::new(&cfg);
    let rust = run_rust(&mut core, &words, &stalls, 200_000).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    assert_eq!(
        untimed(cfg.dim(), &rust.words()),
        untimed(cfg.dim(), &golden),
        "rust-hdl vs golden, {cfg}, seed {seed}, stalls in {p_in} out {p_out}"
    );
    if let Some(verilog) = icarus {
        let rtl = run_icarus(verilog, cfg.dim(), &words, &stalls, 200_000)
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        assert_eq!(rtl, rust, "Icarus vs rust-hdl, {cfg}, seed {seed}");
    }
}

#[test]
fn random_streams_dim2_match_golden_in_rust_hdl_and_icarus() {
    let cfg = Config::new(2, 16, 8).unwrap();
    let verilog = emit::verilog(&cfg).unwrap();
    for seed in 0..12 {
        random_case(cfg, seed, 40, Some(&verilog));
    }
}

#[test]
fn random_streams_dim3_match_golden_in_rust_hdl_and_icarus() {
    let cfg = Config::new(3, 8, 16).unwrap();
    let verilog = emit::verilog(&cfg).unwrap();
    for seed in 100..106 {
        random_case(cfg, seed, 30, Some(&verilog));
    }
}

#[test]
fn random_streams_dim4_match_golden_in_rust_hdl_and_icarus() {
    let cfg = Config::new(4, 16, 8).unwrap();
    let verilog = emit::verilog(&cfg).unwrap();
    for seed in 200..206 {
        random_case(cfg, seed, 30, Some(&verilog));
    }
}

#[test]
#[ignore]
fn dump_core_verilog() {
    for d in [2usize, 4, 8] {
        let cfg = Config::new(d, 1024, 512).unwrap();
        std::fs::write(format!("/tmp/lint/core{d}.v"), emit::verilog(&cfg).unwrap()).unwrap();
    }
}
