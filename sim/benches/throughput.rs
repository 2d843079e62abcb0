//! Simulated cycles per second of the cycle-accurate backends on a long GEMM-like stream.
//!
//! `cargo bench -p protobrain-sim --bench throughput [-- DIM...]` (default DIM 4 8 16). For each
//! DIM: the Verilator model with its C++ host loop (`run_stream`, one FFI call), the same model
//! stepped by the trait's default loop (one FFI call per cycle), and the native model; all
//! three must produce the same trace.
//!
//! The stream: the scratchpad filled, then `TILES` weight tiles each multiplied over all rows
//! with accumulation (the array busy almost every cycle), ACTIVATE and a read-back.

use std::time::Instant;

use sim::native::NativeSim;
use sim::{CycleSim, Ticked, VerilatedSim};
use spec::isa::Command;
use spec::stimulus::Rng;
use spec::stream::{Stalls, Trace};
use spec::{Config, Quant};

const TILES: usize = 2048;

fn gemm_stream(cfg: &Config, rows: u16) -> Vec<u32> {
    let d = cfg.dim();
    let mut rng = Rng::new(1);
    let mut cmds = vec![Command::WriteAct {
        dst: 0,
        rows: (0..rows).map(|_| (0..d).map(|_| rng.i8()).collect()).collect(),
    }];
    for t in 0..TILES {
        cmds.push(Command::LoadWeights { weights: (0..d * d).map(|_| rng.i8()).collect() });
        cmds.push(Command::Matmul { src: 0, n: rows, dst: 0, accumulate: t > 0 });
    }
    cmds.push(Command::LoadBias { bias: vec![7; d] });
    cmds.push(Command::SetQuant(Quant::new(1, 12, true).expect("shift < 48")));
    cmds.push(Command::Activate { src: 0, n: rows, dst: 0 });
    cmds.push(Command::ReadAct { src: 0, n: rows });
    cmds.push(Command::Sync { token: 1 });
    let mut words = Vec::new();
    for c in &cmds {
        c.encode_into(d, &mut words).expect("the stream fits the Config");
    }
    words
}

fn measure(name: &str, run: impl FnOnce() -> Trace) -> Trace {
    let t0 = Instant::now();
    let trace = run();
    let s = t0.elapsed().as_secs_f64();
    println!(
        "  {name:<28} {:>10} cycles in {s:>7.3} s = {:>7.2} M cycles/s",
        trace.cycles,
        trace.cycles as f64 / s / 1e6
    );
    trace
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `--words DIR`: also write each DIM's stream (`DIR/words_d<DIM>.bin`, little-endian u32) and
    // its quiet tail (`DIR/quiet_d<DIM>.txt`) for a harness outside Rust (docs/performance.md)
    let words_dir = args.iter().position(|a| a == "--words").map(|i| args.get(i + 1).expect("--words DIR"));
    let dims: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let dims = if dims.is_empty() { vec![4, 8, 16] } else { dims };
    for dim in dims {
        let cfg = match dim {
            4 => Config::preset("ecp5-25k"),
            8 => Config::preset("default"),
            d => Config::new(d, 1024, 512),
        }
        .expect("a valid Config");
        let rows = cfg.acc_rows().min(cfg.scratch_rows()).min(512) as u16;
        let words = gemm_stream(&cfg, rows);
        if let Some(dir) = words_dir {
            let dir = std::path::Path::new(dir);
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            std::fs::write(dir.join(format!("words_d{dim}.bin")), bytes).expect("writing the words");
            let quiet = spec::stream::quiet_cycles(dim, &words);
            std::fs::write(dir.join(format!("quiet_d{dim}.txt")), format!("{quiet}\n")).expect("writing");
        }
        let stalls = Stalls::none();
        let limit = 100_000_000;
        println!("{cfg}: {} words, {TILES} tiles x {rows} rows", words.len());
        let mut v = VerilatedSim::new(&cfg).expect("a Verilator model");
        let fast =
            measure("verilator run_stream", || v.run_stream(&words, &stalls, limit).expect("not stuck"));
        let slow = measure("verilator tick loop", || {
            Ticked(&mut v).run_stream(&words, &stalls, limit).expect("not stuck")
        });
        assert_eq!(fast, slow);
        let mut n = NativeSim::new(&cfg);
        let native = measure("native", || n.run_stream(&words, &stalls, limit).expect("not stuck"));
        assert_eq!(native, fast, "native and Verilator disagree");
    }
}
