//! `protobrain compile` and `protobrain run`: a program is data, and every backend executes the
//! same stream with the same responses (and the two cycle models with the same cycle count).

use npyz::WriterBuilder;
use std::path::Path;
use std::process::{Command, Output};

fn protobrain(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_protobrain"))
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run protobrain")
}

fn text(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn write_i8(path: &Path, rows: u64, cols: u64, seed: u64) {
    let mut x = seed;
    let data: Vec<i8> = (0..rows * cols)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 56) as i8
        })
        .collect();
    let mut out = Vec::new();
    let mut w = npyz::WriteOptions::<i8>::new()
        .default_dtype()
        .shape(&[rows, cols])
        .writer(&mut out)
        .begin_nd()
        .unwrap();
    w.extend(data).unwrap();
    w.finish().unwrap();
    std::fs::write(path, out).unwrap();
}

#[test]
fn compiled_program_runs_identically_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_i8(&d.join("X.npy"), 9, 11, 1);
    write_i8(&d.join("W.npy"), 11, 6, 2);
    let cfg = ["--dim", "2", "--scratch-rows", "16", "--acc-rows", "8"];
    let mut args = vec!["compile", "layer", "-i", "X.npy", "-w", "W.npy", "--scale", "0.01", "--relu"];
    args.extend(cfg);
    args.extend(["-o", "prog.json", "--bin", "prog.bin"]);
    let out = protobrain(d, &args);
    assert!(out.status.success(), "{out:?}");
    let runs: Vec<String> = ["golden", "native", "rtl"]
        .iter()
        .map(|b| {
            let out = protobrain(d, &["run", "-p", "prog.json", "--backend", b]);
            assert!(out.status.success(), "{b}: {out:?}");
            text(&out)
        })
        .collect();
    // the responses (every line but the first and the last) are the same on every backend
    let body =
        |t: &str| t.lines().skip(1).filter(|l| !l.contains("responses (")).collect::<Vec<_>>().join("\n");
    assert!(body(&runs[0]).contains("READ_ACT: "), "{}", runs[0]);
    assert_eq!(body(&runs[0]), body(&runs[1]));
    assert_eq!(body(&runs[0]), body(&runs[2]));
    let cycles = |t: &str| t.lines().last().unwrap().split_whitespace().rev().nth(1).unwrap().to_string();
    assert_eq!(cycles(&runs[1]), cycles(&runs[2]), "native and RTL cycle counts");
    // the raw .bin is the same stream
    let mut args = vec!["run", "-p", "prog.bin", "--backend", "native"];
    args.extend(cfg);
    let bin = protobrain(d, &args);
    assert_eq!(body(&text(&bin)), body(&runs[1]));
}

#[test]
fn bad_programs_get_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("bad.json"), "{ not json").unwrap();
    std::fs::write(d.join("odd.bin"), [1u8, 2, 3]).unwrap();
    for (file, phrase) in [("missing.json", "missing.json"), ("bad.json", "bad.json"), ("odd.bin", "odd.bin")]
    {
        let out = protobrain(d, &["run", "-p", file]);
        assert_eq!(out.status.code(), Some(2), "{file}: {out:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(phrase), "{err}");
    }
}
