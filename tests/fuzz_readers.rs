//! Fuzzing the readers of untrusted input: model files, programs (.json and .bin) and the
//! device's command and response decoders get arbitrary bytes and mutated valid inputs; none
//! may panic, and what they accept must be usable without a crash. The inputs that crashed the
//! CLI (issue 14) are the seeds. Runs briefly with `cargo test` (proptest's 256 cases a
//! property; `PROPTEST_CASES=100000` for a longer run).
//!
//! The `.npy` reader lives in the binary: its fuzz property is in `src/npy.rs`.

use driver::Program;
use proptest::prelude::*;
use protobrain::nn::ModelFile;
use spec::isa::{CommandDecoder, ResponseDecoder};
use spec::{Config, GoldenDevice};

/// A model file with one layer of `k` x `n` whose weights list has `w` elements.
fn model_json(k: &str, n: &str, w: usize) -> String {
    let weights: Vec<String> = (0..w).map(|i| (i % 7).to_string()).collect();
    format!(
        r#"{{"format": "protobrain-mlp", "version": 1, "model": {{"input_scale": 0.01, "output": "raw",
        "layers": [{{"k": {k}, "n": {n}, "weight_scale": 0.01, "output_scale": 0.01,
        "quant": {{"multiplier": 1, "shift": 0, "relu": false}}, "bias": [0, 0], "weights": [{}]}}]}}}}"#,
        weights.join(", ")
    )
}

/// Accepting a model means its sizes are real: the widths multiply out to its weights.
fn check_model(text: &str) {
    if let Ok(f) = ModelFile::from_json(text, "fuzz") {
        for l in f.model.ops().iter().filter_map(|o| o.gemm()) {
            let w = l.layer().weights();
            assert_eq!(w.nrows().checked_mul(w.ncols()), Some(w.len()));
        }
    }
}

/// Accepting a program means its stream can be made and run on the golden device.
fn check_program(text: &str) {
    if let Ok(p) = Program::from_json(text) {
        if let Ok(words) = p.words() {
            let _ = GoldenDevice::run(p.config, &words);
        }
        let _ = p.stats();
    }
}

fn decode_all(dim: usize, words: &[u32]) {
    let mut c = CommandDecoder::new(Config::new(dim, 16, 16).unwrap());
    let mut r = ResponseDecoder::new(dim);
    for &w in words {
        let _ = c.push(w);
        let _ = r.push(w);
    }
    let _ = spec::stream::frame(words);
    let _ = spec::stream::cycle_bound(dim, words);
}

#[test]
fn the_seeds_that_crashed_are_refused() {
    // k * n wraps to 2 (SIGBUS before)
    let m = model_json("9223372036854775809", "2", 2);
    assert!(ModelFile::from_json(&m, "seed").is_err());
    assert!(ModelFile::from_json(&model_json("4294967296", "4294967296", 0), "seed").is_err());
    // a result of 2^32 x 2^32 and a block whose row offset wraps (SIGSEGV / panic before)
    let cfg = serde_json::to_string(&Config::new(2, 4, 4).unwrap()).unwrap();
    let huge = format!(
        r#"{{"config": {cfg}, "steps": [], "results": [{{"rows": 4294967296, "cols": 4294967296, "kind": "int8"}}], "output": 0}}"#
    );
    assert!(Program::from_json(&huge).is_err());
    let wrap = format!(
        r#"{{"config": {cfg}, "steps": [{{"read_act": {{"src": 0, "n": 1, "to": {{"result": 0, "row": 18446744073709551615, "col": 0, "rows": 1, "cols": 1}}}}}}],
        "results": [{{"rows": 1, "cols": 1, "kind": "int8"}}], "output": 0}}"#
    );
    assert!(Program::from_json(&wrap).is_err());
    // a .bin header announcing 2^24 - 1 words, and one cut mid-command
    assert!(spec::stream::frame(&[0x20FF_FFFF, 0]).is_err());
    assert!(spec::stream::frame(&[0x0200_0001]).is_err());
}

proptest! {
    #[test]
    fn model_files_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_model(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn model_sizes_never_panic(k in any::<u64>(), n in any::<u64>(), w in 0usize..16) {
        check_model(&model_json(&k.to_string(), &n.to_string(), w));
    }

    #[test]
    fn programs_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_program(&String::from_utf8_lossy(&bytes));
        if let Ok(words) = Program::words_from_bin(&bytes) {
            decode_all(4, &words);
        }
    }

    #[test]
    fn program_sizes_never_panic(
        rows in any::<u64>(), cols in any::<u64>(), row in any::<u64>(), col in any::<u64>(),
        brows in 0u64..4, bcols in 0u64..4, n in 0u16..4,
    ) {
        let cfg = serde_json::to_string(&Config::new(2, 4, 4).unwrap()).unwrap();
        let text = format!(
            r#"{{"config": {cfg}, "steps": [{{"read_act": {{"src": 0, "n": {n}, "to": {{"result": 0, "row": {row}, "col": {col}, "rows": {brows}, "cols": {bcols}}}}}}}],
            "results": [{{"rows": {rows}, "cols": {cols}, "kind": "int8"}}], "output": 0}}"#
        );
        check_program(&text);
    }

    #[test]
    fn decoders_never_panic(words in proptest::collection::vec(any::<u32>(), 0..256), dim in 1usize..9) {
        decode_all(dim, &words);
        let cfg = Config::new(dim, 16, 16).unwrap();
        let _ = GoldenDevice::run(cfg, &words);
    }
}
