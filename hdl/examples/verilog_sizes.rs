//! Size and emit time of the core's Verilog per DIM, as rust-hdl writes it (one module per
//! instance) and after the structural dedupe. The table of docs/verilog.md:
//!
//! ```text
//! cargo run --release -p protobrain-hdl --example verilog_sizes -- 2 4 8 16 32 64
//! ```
//!
//! Each DIM uses the default memories (1024 scratchpad rows, 512 accumulator rows) unless
//! `--rows S A` says otherwise. `--write DIR` also writes `DIR/core_d<DIM>.v` (deduped) and
//! `DIR/core_d<DIM>_raw.v`.

use std::time::Instant;

use hdl::core::ProtobrainCore;
use hdl::dedupe::dedupe;
use hdl::emit::{per_instance_verilog, TOP};

fn main() {
    let mut write: Option<std::path::PathBuf> = None;
    let mut dims: Vec<usize> = Vec::new();
    let (mut rows, mut acc) = (1024, 512);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |what: &str| -> usize {
            let v = args.next().unwrap_or_else(|| panic!("{what}: missing value"));
            v.parse().unwrap_or_else(|_| panic!("{what}: not a number: {v}"))
        };
        if a == "--rows" {
            rows = num("--rows S");
            acc = num("--rows A");
        } else if a == "--write" {
            write = Some(args.next().expect("--write DIR").into());
        } else {
            dims.push(a.parse().unwrap_or_else(|_| panic!("not a DIM: {a}")));
        }
    }
    println!("| DIM | rust-hdl | emit (rust-hdl) | modules | deduped | dedupe | modules kept |");
    println!("|----:|---------:|----------------:|--------:|--------:|-------:|-------------:|");
    for d in dims {
        let cfg = spec::Config::new(d, rows, acc).unwrap_or_else(|e| panic!("DIM {d}: {e}"));
        let t0 = Instant::now();
        let mut uut = ProtobrainCore::new(&cfg);
        let raw = per_instance_verilog(&mut uut, TOP, &cfg).unwrap_or_else(|e| panic!("{e}"));
        let t1 = Instant::now();
        let (compact, stats) = dedupe(&raw).unwrap_or_else(|e| panic!("{e}"));
        let t2 = Instant::now();
        println!(
            "| {d} | {} | {:.2} s | {} | {} | {:.3} s | {} |",
            size(raw.len()),
            (t1 - t0).as_secs_f64(),
            stats.modules_in,
            size(compact.len()),
            (t2 - t1).as_secs_f64(),
            stats.modules_out
        );
        if let Some(dir) = &write {
            std::fs::write(dir.join(format!("core_d{d}_raw.v")), &raw).expect("write");
            std::fs::write(dir.join(format!("core_d{d}.v")), &compact).expect("write");
        }
    }
}

fn size(bytes: usize) -> String {
    if bytes >= 10 << 20 {
        format!("{:.0} MB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.0} KB", bytes as f64 / 1024.0)
    }
}
