//! `protobrain mlp` end to end: the binary on the shipped digits model and on hand-made ones.
//!
//! The digits run must equal the golden chain (`spec::golden::layer` for the hidden layer,
//! `layer_raw` for the logits) bit for bit, whatever device it is compiled for; a hand-sized
//! int8 model is checked on paper. Then one test per kind of bad input, each asserting exit
//! code 2, one line on stderr naming the file or flag, and no output written.

use std::fs;
use std::path::{Path, PathBuf};

use nalgebra::DMatrix;
use npyz::WriterBuilder;
use protobrain::nn::{digits, ModelFile};

mod common;
use common::*;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits-mlp.json");

fn write_npy<T: npyz::AutoSerialize + Copy>(path: &Path, shape: &[u64], data: &[T]) {
    let mut f = fs::File::create(path).unwrap();
    let mut w =
        npyz::WriteOptions::<T>::new().default_dtype().shape(shape).writer(&mut f).begin_nd().unwrap();
    w.extend(data.iter().copied()).unwrap();
    w.finish().unwrap();
}

/// Write a matrix as a C-order .npy.
fn write_matrix<T: npyz::AutoSerialize + Copy + nalgebra::Scalar>(path: &Path, m: &DMatrix<T>) {
    let data: Vec<T> = (0..m.nrows()).flat_map(|r| (0..m.ncols()).map(move |c| m[(r, c)])).collect();
    write_npy(path, &[m.nrows() as u64, m.ncols() as u64], &data);
}

/// Read a .npy matrix, checking its dtype string.
fn read_matrix<T: npyz::Deserialize + nalgebra::Scalar>(path: &Path, descr: &str) -> DMatrix<T> {
    let npy = npyz::NpyFile::new(fs::File::open(path).unwrap()).unwrap();
    assert_eq!(npy.dtype().descr(), format!("'{descr}'"), "dtype of {}", path.display());
    let shape = npy.shape().to_vec();
    assert_eq!(shape.len(), 2);
    DMatrix::from_row_slice(shape[0] as usize, shape[1] as usize, &npy.into_vec::<T>().unwrap())
}

/// A temp dir with the shipped model as model.json and the 500 test images as X.npy.
struct Case {
    dir: tempfile::TempDir,
    x: DMatrix<i8>,
    labels: Vec<u8>,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        fs::copy(SHIPPED, dir.path().join("model.json")).unwrap();
        let split = digits::standard_split(&digits::bundled()).unwrap();
        let x = split.test.inputs_i8();
        write_matrix(&dir.path().join("X.npy"), &x);
        Case { dir, x, labels: split.test.labels().to_vec() }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Run `mlp` on model.json, X.npy -> Y.npy plus `extra`.
    fn mlp(&self, extra: &[&str]) -> Run {
        let (m, x, y) = (self.p("model.json"), self.p("X.npy"), self.p("Y.npy"));
        let mut args = vec!["mlp", "--model", &m, "--input", &x, "--output", &y];
        args.extend_from_slice(extra);
        protobrain(&args)
    }

    fn ok(&self, extra: &[&str]) -> Run {
        let run = self.mlp(extra);
        assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
        assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
        run
    }

    /// Exit 2, one stderr line naming `subject` and saying `phrase`, no Y.npy, no temp file.
    fn assert_rejected(&self, run: &Run, subject: &str, phrase: &str) {
        assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "one line expected: {:?}", run.stderr);
        let line = run.stderr.trim_end();
        assert!(line.starts_with("error: "), "{line}");
        assert!(line.contains(subject), "{line:?} should name {subject:?}");
        assert!(line.contains(phrase), "{line:?} should say {phrase:?}");
        assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
        assert!(!self.path("Y.npy").exists(), "no output may be written on error");
        let leftovers: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left behind: {leftovers:?}");
    }
}

/// The golden chain from `spec::golden` alone.
fn golden_logits(model: &ModelFile, x: &DMatrix<i8>) -> DMatrix<i32> {
    let layers = model.model.to_mlp().unwrap().to_driver_layers();
    let (last, hidden) = layers.split_last().unwrap();
    let mut a = x.clone();
    for l in hidden {
        a = spec::golden::layer(&a, l.weights(), l.bias(), l.quant()).unwrap();
    }
    spec::golden::layer_raw(&a, last.weights(), last.bias()).unwrap()
}

#[test]
fn digits_logits_equal_the_golden_chain_on_any_device() {
    let c = Case::new();
    let model = ModelFile::load(SHIPPED).unwrap();
    let want = golden_logits(&model, &c.x);
    let run = c.ok(&[]);
    assert!(run.stdout.contains("int32 logits (500, 10) of "), "{}", run.stdout);
    assert!(run.stdout.contains("model: 1x1x64: dense 64->32, dense 32->10"), "{}", run.stdout);
    assert!(run.stdout.contains("golden backend"), "{}", run.stdout);
    assert_eq!(read_matrix::<i32>(&c.path("Y.npy"), "<i4"), want);

    // the argmax of the logits is the accuracy recorded in the model file, >= 90%
    let correct = (0..want.nrows())
        .filter(|&r| {
            let best = (1..10).fold(0, |b, col| if want[(r, col)] > want[(r, b)] { col } else { b });
            best == usize::from(c.labels[r])
        })
        .count();
    let accuracy = correct as f64 / 500.0;
    assert!(accuracy >= 0.9, "{accuracy}");
    assert_eq!(accuracy, model.provenance.unwrap().accuracy.int8);

    // another device: DIM 3 (partial tiles), small memories (many chunks); same bits
    for extra in [&["--dim", "3", "--scratch-rows", "64", "--acc-rows", "16"][..], &["--preset", "ecp5-25k"]]
    {
        fs::remove_file(c.path("Y.npy")).unwrap();
        c.ok(extra);
        assert_eq!(read_matrix::<i32>(&c.path("Y.npy"), "<i4"), want, "{extra:?}");
    }
}

/// A 2 -> 2 (ReLU) -> 2 model with int8 output, on paper.
#[test]
fn int8_output_model_by_hand() {
    let c = Case::new();
    // layer 0: W = [1 -1; 2 1], b = [0, 10], M/2^S = 1/2, ReLU
    // layer 1: W = [1 0; 1 -1], b = [-1, 0], M/2^S = 1, no ReLU, int8 output
    // x = [4 3]: acc0 = [4 + 6, -4 + 3 + 10] = [10, 9] -> /2 half up -> [5, 5]
    //            acc1 = [5 + 5 - 1, 0 - 5] = [9, -5]
    // x = [-8 2]: acc0 = [-8 + 4, 8 + 2 + 10] = [-4, 20] -> [-2 -> ReLU 0, 10]
    //            acc1 = [0 + 10 - 1, -10] = [9, -10]
    let json = r#"{
      "format": "protobrain-mlp", "version": 1,
      "model": {
        "input_scale": 0.1, "output": "int8",
        "layers": [
          {"k": 2, "n": 2, "weight_scale": 1.0, "output_scale": 1.0,
           "quant": {"multiplier": 1, "shift": 1, "relu": true}, "bias": [0, 10], "weights": [1, -1, 2, 1]},
          {"k": 2, "n": 2, "weight_scale": 1.0, "output_scale": 1.0,
           "quant": {"multiplier": 1, "shift": 0, "relu": false}, "bias": [-1, 0], "weights": [1, 0, 1, -1]}
        ]
      }
    }"#;
    fs::write(c.path("model.json"), json).unwrap();
    write_npy(&c.path("X.npy"), &[2, 2], &[4i8, 3, -8, 2]);
    let run = c.ok(&["--dim", "1"]);
    assert!(run.stdout.contains("int8 (2, 2) of "), "{}", run.stdout);
    assert_eq!(read_matrix::<i8>(&c.path("Y.npy"), "|i1"), DMatrix::from_row_slice(2, 2, &[9, -5, 9, -10]));
}

// ---- bad input: one test per kind -------------------------------------------------------

#[test]
fn missing_model() {
    let c = Case::new();
    fs::remove_file(c.path("model.json")).unwrap();
    c.assert_rejected(&c.mlp(&[]), "model.json", "no such file or directory");
}

#[test]
fn model_not_json() {
    let c = Case::new();
    fs::write(c.path("model.json"), "layers: 2\n").unwrap();
    c.assert_rejected(&c.mlp(&[]), "model.json", "not a JSON model file: expected value at line 1 column 1");
}

#[test]
fn model_of_another_format() {
    let c = Case::new();
    fs::write(c.path("model.json"), r#"{"format": "onnx", "version": 1}"#).unwrap();
    c.assert_rejected(&c.mlp(&[]), "model.json", "format is \"onnx\", expected \"protobrain-model\"");
}

#[test]
fn model_weights_do_not_match_the_shape() {
    let c = Case::new();
    // the logits layer claims K = 31 (31 x 10 weights would be needed, 320 are there)
    let text = fs::read_to_string(SHIPPED).unwrap().replacen("\"k\": 32", "\"k\": 31", 1);
    fs::write(c.path("model.json"), text).unwrap();
    c.assert_rejected(&c.mlp(&[]), "model.json", "weights of a 31x10 layer need 310 elements, got 320");
}

#[test]
fn model_layers_do_not_chain() {
    let c = Case::new();
    let layer = |k: usize, n: usize| {
        format!(
            r#"{{"k": {k}, "n": {n}, "weight_scale": 1.0, "output_scale": 1.0,
                "quant": {{"multiplier": 1, "shift": 0}}, "bias": {:?}, "weights": {:?}}}"#,
            vec![0; n],
            vec![1; k * n]
        )
    };
    let json = format!(
        r#"{{"format": "protobrain-mlp", "version": 1,
            "model": {{"input_scale": 1.0, "output": "raw", "layers": [{}, {}]}}}}"#,
        layer(64, 2),
        layer(3, 1)
    );
    fs::write(c.path("model.json"), json).unwrap();
    c.assert_rejected(
        &c.mlp(&[]),
        "model.json",
        "layer 1 takes K = 3 inputs but layer 0 produces N = 2 outputs",
    );
}

#[test]
fn model_with_bad_shift() {
    let c = Case::new();
    let text = fs::read_to_string(SHIPPED).unwrap().replacen("\"shift\": 24", "\"shift\": 50", 1);
    fs::write(c.path("model.json"), text).unwrap();
    c.assert_rejected(&c.mlp(&[]), "model.json", "shift must be in 0..=47, got 50");
}

#[test]
fn input_with_wrong_k() {
    let c = Case::new();
    write_npy(&c.path("X.npy"), &[2, 63], &[0i8; 126]);
    c.assert_rejected(
        &c.mlp(&[]),
        "X.npy",
        "has shape (2, 63) but the model takes 1x1x64 inputs: X must be (N, 64)",
    );
}

#[test]
fn input_with_wrong_dtype() {
    let c = Case::new();
    write_npy(&c.path("X.npy"), &[1, 64], &[0i32; 64]);
    c.assert_rejected(
        &c.mlp(&[]),
        "X.npy",
        "expected an int8 (|i1), float32 (<f4) or float64 (<f8) array, found int32 (<i4)",
    );
}

#[test]
fn missing_input() {
    let c = Case::new();
    fs::remove_file(c.path("X.npy")).unwrap();
    c.assert_rejected(&c.mlp(&[]), "X.npy", "no such file or directory");
}

#[test]
fn bad_configuration_flags() {
    let c = Case::new();
    c.assert_rejected(&c.mlp(&["--dim", "0"]), "--dim", "DIM");
    c.assert_rejected(&c.mlp(&["--preset", "zynq"]), "--preset", "zynq");
    // K = 64 > DIM = 8 needs at least two scratchpad rows
    c.assert_rejected(&c.mlp(&["--scratch-rows", "1"]), "--scratch-rows", "does not fit");
}

#[test]
fn unknown_backend_is_a_usage_error() {
    let c = Case::new();
    let run = c.mlp(&["--backend", "fpga"]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("possible values"), "{}", run.stderr);
    assert!(!c.path("Y.npy").exists());
}

#[test]
fn failed_run_leaves_an_existing_output_untouched() {
    let c = Case::new();
    c.ok(&[]);
    let before = fs::read(c.path("Y.npy")).unwrap();
    write_npy(&c.path("X.npy"), &[1, 10], &[1i8; 10]);
    let run = c.mlp(&[]);
    assert_eq!(run.code, Some(2), "{}", run.stderr);
    assert_eq!(fs::read(c.path("Y.npy")).unwrap(), before);
}
