//! Size and emit time of the core's Verilog per DIM: the text `emit` writes (the array as a
//! generate loop over one PE module, the rest deduped), and with `--raw` rust-hdl's per-instance
//! text as well. The tables of docs/verilog.md:
//!
//! ```text
//! cargo run --release -p protobrain-hdl --example verilog_sizes -- 2 4 8 16 32 64 128 256
//! cargo run --release -p protobrain-hdl --example verilog_sizes -- --raw 2 4 8 16
//! ```
//!
//! Each DIM uses the default memories (1024 scratchpad rows, 512 accumulator rows) unless
//! `--rows S A` says otherwise. `--write DIR` also writes `DIR/core_d<DIM>.v` (what `emit`
//! writes) and, with `--raw`, `DIR/core_d<DIM>_raw.v` (per-instance) and `DIR/core_d<DIM>_deduped.v`
//! (per-instance, deduped: what `emit` wrote before the generate loop).

use std::time::Instant;

use hdl::emit::{core_verilog, verilog, Form};

fn main() {
    let mut write: Option<std::path::PathBuf> = None;
    let mut dims: Vec<usize> = Vec::new();
    let (mut rows, mut acc) = (1024, 512);
    let mut raw = false;
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
        } else if a == "--raw" {
            raw = true;
        } else {
            dims.push(a.parse().unwrap_or_else(|_| panic!("not a DIM: {a}")));
        }
    }
    if raw {
        println!("| DIM | emit | modules | emit time | per-instance | modules | emit time |");
        println!("|----:|-----:|--------:|----------:|-------------:|--------:|----------:|");
    } else {
        println!("| DIM | emit | modules | emit time |");
        println!("|----:|-----:|--------:|----------:|");
    }
    for d in dims {
        let cfg = spec::Config::new(d, rows, acc).unwrap_or_else(|e| panic!("DIM {d}: {e}"));
        let t0 = Instant::now();
        let compact = verilog(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let t_compact = t0.elapsed().as_secs_f64();
        let mut line =
            format!("| {d} | {} | {} | {t_compact:.2} s |", size(compact.len()), modules(&compact));
        if let Some(dir) = &write {
            std::fs::write(dir.join(format!("core_d{d}.v")), &compact).expect("write");
        }
        if raw {
            let t0 = Instant::now();
            let text = core_verilog(&cfg, Form::PerInstance).unwrap_or_else(|e| panic!("{e}"));
            let t_raw = t0.elapsed().as_secs_f64();
            line.push_str(&format!(" {} | {} | {t_raw:.2} s |", size(text.len()), modules(&text)));
            if let Some(dir) = &write {
                std::fs::write(dir.join(format!("core_d{d}_raw.v")), &text).expect("write");
                // what `emit` wrote before the generate loop (the Verilator speed comparison)
                let (deduped, _) = hdl::dedupe::dedupe(&text).unwrap_or_else(|e| panic!("{e}"));
                std::fs::write(dir.join(format!("core_d{d}_deduped.v")), deduped).expect("write");
            }
        }
        println!("{line}");
    }
}

fn modules(text: &str) -> usize {
    text.lines().filter(|l| l.starts_with("module ")).count()
}

fn size(bytes: usize) -> String {
    if bytes >= 10 << 20 {
        format!("{:.0} MB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.0} KB", bytes as f64 / 1024.0)
    }
}
