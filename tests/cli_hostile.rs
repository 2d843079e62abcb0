//! Hostile input: crafted files and flags that crashed the CLI (SIGSEGV, SIGBUS, aborts on
//! huge allocations) or left files behind. Every one must end in a one-line error, exit 2,
//! and no output file.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::{protobrain, write_npy, Run};
use npyz::Order;

/// A version 1.0 .npy whose header says `shape` (any numbers) followed by `data`.
fn crafted_npy(path: &Path, descr: &str, shape: &str, data: &[u8]) {
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + dict.len() + 1) % 64 != 0 {
        dict.push(' ');
    }
    dict.push('\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend_from_slice(data);
    fs::write(path, bytes).unwrap();
}

/// Exit 2, one line on stderr mentioning `needle`, no panic.
fn refused(r: &Run, needle: &str) {
    assert_eq!(r.code, Some(2), "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(r.stderr.contains(needle), "expected '{needle}' in: {}", r.stderr);
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn npy_shapes_whose_product_wraps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = d.join("W.npy");
    write_npy(&w, &[2, 2], Order::C, &[1i8, 2, 3, 4]);
    // 2^63 + 1 rows of 2: the product wraps to 2, the two data bytes "match"
    let x = d.join("X.npy");
    crafted_npy(&x, "|i1", "(9223372036854775809, 2)", &[1, 2]);
    let y = d.join("Y.npy");
    let r = protobrain(&["matmul", "-i", s(&x), "-w", s(&w), "-o", s(&y)]);
    refused(&r, "X.npy: truncated");
    let model = d.join("m.json");
    let r = protobrain(&["compile", "layer", "-i", s(&x), "-w", s(&w), "-o", s(&d.join("p.json"))]);
    refused(&r, "X.npy: truncated");
    // 2^32 x 2^32 with 64 bytes: the product wraps to 0
    crafted_npy(&x, "|i1", "(4294967296, 4294967296)", &[0; 64]);
    let r = protobrain(&["matmul", "-i", s(&x), "-w", s(&w), "-o", s(&y)]);
    refused(&r, "X.npy: truncated");
    // a bias whose length wraps
    let b = d.join("B.npy");
    crafted_npy(&b, "<i4", "(4611686018427387905,)", &[0; 4]);
    write_npy(&x, &[1, 2], Order::C, &[1i8, 2]);
    let r = protobrain(&["matmul", "-i", s(&x), "-w", s(&w), "-b", s(&b), "-o", s(&y)]);
    refused(&r, "B.npy: truncated");
    assert!(!y.exists() && !model.exists());
}

#[test]
fn model_layers_whose_size_wraps_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = d.join("m.json");
    // k = 2^63 + 1, n = 2: k * n wraps to 2
    let json = r#"{"format": "protobrain-mlp", "version": 1, "model": {"input_scale": 0.01, "output": "raw",
        "layers": [{"k": 9223372036854775809, "n": 2, "weight_scale": 0.01, "output_scale": 0.01,
         "quant": {"multiplier": 1, "shift": 0, "relu": false}, "bias": [0, 0], "weights": [1, 2]}]}}"#;
    fs::write(&model, json).unwrap();
    let x = d.join("X.npy");
    write_npy(&x, &[1, 2], Order::C, &[1i8, 2]);
    let y = d.join("Y.npy");
    for args in [
        vec!["mlp", "-m", s(&model), "-i", s(&x), "-o", s(&y)],
        vec!["compile", "mlp", "-m", s(&model), "-i", s(&x), "-o", s(&y)],
        vec!["estimate", "--model", s(&model)],
    ] {
        let r = protobrain(&args);
        refused(&r, "need 18446744073709551618 elements, got 2");
    }
    assert_eq!(files_in(d), ["X.npy", "m.json"]);
}

#[test]
fn programs_with_impossible_results_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = d.join("X.npy");
    let w = d.join("W.npy");
    write_npy(&x, &[2, 3], Order::C, &[1i8, 2, 3, 4, 5, 6]);
    write_npy(&w, &[3, 2], Order::C, &[1i8, 0, 0, 1, 1, 1]);
    let p = d.join("p.json");
    let r = protobrain(&["compile", "layer", "-i", s(&x), "-w", s(&w), "--raw", "-o", s(&p)]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let json = fs::read_to_string(&p).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
    v["results"][0]["rows"] = serde_json::json!(1u64 << 32);
    v["results"][0]["cols"] = serde_json::json!(1u64 << 32);
    fs::write(&p, v.to_string()).unwrap();
    refused(&protobrain(&["run", "-p", s(&p)]), "too large");
}

#[test]
fn truncated_streams_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("p.bin");
    // a WRITE_ACT header announcing 2^24 - 1 words, one word given
    let words: [u32; 2] = [0x20FF_FFFF, 0];
    fs::write(&bin, words.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
    for backend in ["golden", "native"] {
        let r = protobrain(&["run", "-p", s(&bin), "--backend", backend]);
        refused(&r, "the stream ends inside a command");
    }
}

#[test]
fn gemm_sizes_beyond_memory_are_refused_before_allocating() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sweep");
    // (4096,4096,4096 is no longer refused under 1 GiB: programs stream, only X, W and the
    // output are held; 65536³ needs 4 GiB for X alone)
    for gemm in ["1,4294967296,4294967296", "1000000,1000000,1000000", "65536,65536,65536"] {
        let r = std::process::Command::new(env!("CARGO_BIN_EXE_protobrain"))
            .args(["estimate", "--gemm", gemm])
            .env("PROTOBRAIN_MEMORY_LIMIT", "1G")
            .output()
            .unwrap();
        let stderr = String::from_utf8(r.stderr).unwrap();
        assert_eq!(r.status.code(), Some(2), "{gemm}: {stderr}");
        assert!(stderr.contains("more than the limit of 1.0 GiB"), "{stderr}");
        let r = std::process::Command::new(env!("CARGO_BIN_EXE_protobrain"))
            .args(["sweep", "--dims", "4", "--m", "1", "--gemm", gemm, "-o", s(&out)])
            .env("PROTOBRAIN_MEMORY_LIMIT", "1G")
            .output()
            .unwrap();
        let stderr = String::from_utf8(r.stderr).unwrap();
        assert_eq!(r.status.code(), Some(2), "{gemm}: {stderr}");
        assert!(stderr.contains("more than the limit of 1.0 GiB"), "{stderr}");
        assert!(stderr.contains("PROTOBRAIN_MEMORY_LIMIT"), "{stderr}");
    }
    assert!(!out.exists());
    // a model run on a batch of 10^11 rows, and compile with tiny memories
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_protobrain"))
        .args(["estimate", "--model", concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits-mlp.json")])
        .args(["--batch", "100000000000"])
        .env("PROTOBRAIN_MEMORY_LIMIT", "1G")
        .output()
        .unwrap();
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8(r.stderr).unwrap().contains("more than the limit"));
    // compile with 1-row memories at DIM 1: 8.4 M words (about 0.9 GB measured)
    let x = dir.path().join("X.npy");
    let w = dir.path().join("W.npy");
    write_npy(&x, &[64, 256], Order::C, &vec![1i8; 64 * 256]);
    write_npy(&w, &[256, 64], Order::C, &vec![1i8; 256 * 64]);
    let p = dir.path().join("p.json");
    let r = std::process::Command::new(env!("CARGO_BIN_EXE_protobrain"))
        .args(["compile", "layer", "-i", s(&x), "-w", s(&w), "--raw", "--dim", "1"])
        .args(["--scratch-rows", "1", "--acc-rows", "1", "-o", s(&p)])
        .env("PROTOBRAIN_MEMORY_LIMIT", "100M")
        .output()
        .unwrap();
    let stderr = String::from_utf8(r.stderr).unwrap();
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("more than the limit of 100.0 MiB"), "{stderr}");
    assert!(!p.exists());
}

#[test]
fn bad_link_and_clock_flags_are_refused() {
    let r = protobrain(&["estimate", "--gemm", "8,8,8", "--clock", "1e-300"]);
    refused(&r, "--clock");
    let r = protobrain(&["run", "-p", "x.bin", "--baud", "0"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--baud"), "{}", r.stderr);
}

#[test]
fn rtl_backend_refuses_what_it_cannot_build() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = d.join("X.npy");
    let w = d.join("W.npy");
    write_npy(&x, &[2, 2], Order::C, &[1i8, 2, 3, 4]);
    write_npy(&w, &[2, 2], Order::C, &[1i8, 0, 0, 1]);
    let y = d.join("Y.npy");
    let r =
        protobrain(&["matmul", "-i", s(&x), "-w", s(&w), "--dim", "256", "--backend", "rtl", "-o", s(&y)]);
    refused(&r, "not practical above 64");
    // a layer that does not fit: refused before a model is built or a trace opened
    let t = d.join("t.vcd");
    let r = protobrain(&[
        "matmul",
        "-i",
        s(&x),
        "-w",
        s(&w),
        "--dim",
        "1",
        "--scratch-rows",
        "1",
        "--acc-rows",
        "1",
        "--backend",
        "rtl",
        "--trace",
        s(&t),
        "-o",
        s(&y),
    ]);
    refused(&r, "does not fit");
    // a trace into a missing directory is bad input
    let r = protobrain(&[
        "matmul",
        "-i",
        s(&x),
        "-w",
        s(&w),
        "--backend",
        "rtl",
        "--trace",
        s(&d.join("nodir/t.vcd")),
        "-o",
        s(&y),
    ]);
    refused(&r, "does not exist");
    assert_eq!(files_in(d), ["W.npy", "X.npy"]);
}

#[test]
fn outputs_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = d.join("X.npy");
    let w = d.join("W.npy");
    write_npy(&x, &[2, 2], Order::C, &[1i8, 2, 3, 4]);
    write_npy(&w, &[2, 2], Order::C, &[1i8, 0, 0, 1]);
    let y = d.join("Y.npy");
    let r_json = d.join("r.json");
    let nodir = d.join("nodir");
    let layer = ["-i", s(&x), "-w", s(&w)];
    let (nr, ny, nb) = (nodir.join("r.json"), nodir.join("Y.npy"), nodir.join("p.bin"));
    let cases: Vec<Vec<&str>> = vec![
        [&["matmul"][..], &layer, &["--report", s(&nr), "-o", s(&y)]].concat(),
        [&["matmul"][..], &layer, &["-o", s(&ny), "--report", s(&r_json)]].concat(),
        [&["compile", "layer"][..], &layer, &["-o", s(&r_json), "--bin", s(&nb)]].concat(),
    ];
    for args in cases {
        let r = protobrain(&args);
        refused(&r, "nodir does not exist");
        assert_eq!(files_in(d), ["W.npy", "X.npy"], "{args:?}");
    }
    // two outputs on one path
    let r = protobrain(&[&["matmul"][..], &layer, &["--report", s(&y), "-o", s(&y)]].concat());
    refused(&r, "is also the --output output");
    assert_eq!(files_in(d), ["W.npy", "X.npy"]);
}

#[test]
fn outputs_get_the_usual_permissions_and_special_files_stay_special() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = d.join("X.npy");
    let w = d.join("W.npy");
    write_npy(&x, &[2, 2], Order::C, &[1i8, 2, 3, 4]);
    write_npy(&w, &[2, 2], Order::C, &[1i8, 0, 0, 1]);
    let y = d.join("Y.npy");
    let r_json = d.join("r.json");
    // under umask 022 (set by the shell that runs the binary)
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 022 && exec \"$0\" matmul -i {} -w {} --report {} -o {}",
            s(&x),
            s(&w),
            s(&r_json),
            s(&y)
        ))
        .arg(env!("CARGO_BIN_EXE_protobrain"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for p in [&y, &r_json] {
        assert_eq!(fs::metadata(p).unwrap().permissions().mode() & 0o777, 0o644, "{}", p.display());
    }
    // a special file is written, not replaced
    let r = protobrain(&[&["matmul"][..], &["-i", s(&x), "-w", s(&w)], &["-o", "/dev/null"]].concat());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(!fs::metadata("/dev/null").unwrap().is_file());
}
