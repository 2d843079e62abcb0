//! `protobrain infer` on convolutional model files: docs/model-format.md's worked example on
//! every backend, NHWC and flat inputs, float input and output, and every shape error (one line
//! naming the layer, exit 2, nothing written).

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::{protobrain, write_npy, Run};
use npyz::{NpyFile, Order};

/// docs/model-format.md's worked example.
const WORKED: &str = r#"{
  "format": "protobrain-model", "version": 2,
  "model": {
    "input": [3, 3, 1], "input_scale": 1.0, "output": "raw",
    "layers": [
      {"op": "conv2d", "kernel": [2, 2], "stride": [1, 1], "padding": [0, 0, 0, 0], "c_in": 1, "c_out": 2,
       "weight_scale": 1.0, "output_scale": 1.0, "quant": {"multiplier": 1, "shift": 0, "relu": false},
       "bias": [10, 0],
       "weights": [1, 0,
                   0, 1,
                   0, 1,
                   -1, 0]}
    ]
  }
}"#;

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new(model: &str) -> Self {
        let c = Case { dir: tempfile::tempdir().unwrap() };
        fs::write(c.path("m.json"), model).unwrap();
        c
    }
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).to_str().unwrap().to_string()
    }
    fn infer(&self, extra: &[&str]) -> Run {
        let mut args = vec!["infer".to_string(), "-m".into(), self.s("m.json"), "-i".into(), self.s("X.npy")];
        args.extend(["-o".into(), self.s("Y.npy")]);
        args.extend(extra.iter().map(|s| s.to_string()));
        protobrain(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }
    /// Exit 2, one line naming `subject` and saying `problem`, no output file.
    fn rejected(&self, run: &Run, subject: &str, problem: &str) {
        assert_eq!(run.code, Some(2), "{}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
        assert!(
            run.stderr.contains(subject) && run.stderr.contains(problem),
            "{:?} should say {problem:?}",
            run.stderr
        );
        assert!(!self.path("Y.npy").exists(), "an output was written");
    }
}

fn read<T: npyz::Deserialize>(path: &Path) -> (Vec<u64>, Vec<T>) {
    let bytes = fs::read(path).unwrap();
    let f = NpyFile::new(&bytes[..]).unwrap();
    let shape = f.shape().to_vec();
    (shape, f.into_vec().unwrap())
}

#[test]
fn the_worked_example_on_every_backend() {
    let c = Case::new(WORKED);
    write_npy(&c.path("X.npy"), &[1, 3, 3, 1], Order::C, &[1i8, 2, 3, 4, 5, 6, 7, 8, 9]);
    for backend in ["golden", "native", "rtl"] {
        let run = c.infer(&["--backend", backend, "--dim", "2", "--scratch-rows", "16", "--acc-rows", "8"]);
        assert_eq!(run.code, Some(0), "{backend}: {}", run.stderr);
        assert!(run.stdout.contains("int32 logits (1, 2, 2, 2)"), "{}", run.stdout);
        assert!(run.stdout.contains("model: 3x3x1: conv2d 2x2 1->2"), "{}", run.stdout);
        let (shape, y) = read::<i32>(&c.path("Y.npy"));
        assert_eq!(shape, [1, 2, 2, 2]);
        assert_eq!(y, [6, 6, 6, 8, 6, 12, 6, 14], "{backend}");
    }
    // a flat (N, H·W·C) input is the same images
    write_npy(&c.path("X.npy"), &[1, 9], Order::C, &[1i8, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(c.infer(&[]).code, Some(0));
    assert_eq!(read::<i32>(&c.path("Y.npy")).1, [6, 6, 6, 8, 6, 12, 6, 14]);
}

#[test]
fn float_in_and_float_out() {
    // input_scale 0.5: x = 2·x_q, so floats 0.5..4.5 are the int8 inputs 1..9
    let c = Case::new(&WORKED.replace(r#""input_scale": 1.0"#, r#""input_scale": 0.5"#));
    let xs: Vec<f32> = (1..=9).map(|v| v as f32 * 0.5).collect();
    write_npy(&c.path("X.npy"), &[1, 3, 3, 1], Order::C, &xs);
    let run = c.infer(&["--float", "--report", &c.s("r.json")]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.stdout.contains("float32 (dequantised) (1, 2, 2, 2)"), "{}", run.stdout);
    // the raw output's scale is input_scale · weight_scale = 0.5
    let (_, y) = read::<f32>(&c.path("Y.npy"));
    assert_eq!(y, [3.0, 3.0, 3.0, 4.0, 3.0, 6.0, 3.0, 7.0]);
    let r: serde_json::Value = serde_json::from_str(&fs::read_to_string(c.path("r.json")).unwrap()).unwrap();
    // the conv is a GEMM of OH·OW = 4 rows, K = 4, N = 2: 32 MACs
    assert_eq!(r["gemms"], serde_json::json!([[4, 4, 2]]));
    assert_eq!(r["macs"], 32);
}

#[test]
fn a_cnn_with_pools_and_int8_output() {
    // 4x4x1 -> conv 3x3 pad 1 (identity kernel, x2 via the multiplier) -> maxpool 2x2 ->
    // global average -> int8 (1x1x1)
    let model = r#"{"format": "protobrain-model", "version": 2, "model": {
      "input": [4, 4, 1], "input_scale": 1.0, "output": "int8", "layers": [
        {"op": "conv2d", "kernel": [3, 3], "stride": [1, 1], "padding": [1, 1, 1, 1], "c_in": 1, "c_out": 1,
         "weight_scale": 1.0, "output_scale": 1.0, "quant": {"multiplier": 2, "shift": 0, "relu": true},
         "bias": [0], "weights": [0, 0, 0, 0, 1, 0, 0, 0, 0]},
        {"op": "maxpool2d", "kernel": [2, 2], "stride": [2, 2]},
        {"op": "global_avg_pool"}]}}"#;
    let c = Case::new(model);
    // x: rows [1 2 3 4], [5 -6 7 8], [-9 10 11 12], [13 14 -15 16]; y = relu(2x), then max of
    // each 2x2 block: [10 16; 28 32]; their mean 21.5 rounds half away from zero to 22
    let x = [1i8, 2, 3, 4, 5, -6, 7, 8, -9, 10, 11, 12, 13, 14, -15, 16];
    write_npy(&c.path("X.npy"), &[1, 4, 4, 1], Order::C, &x);
    for backend in ["golden", "native"] {
        let run = c.infer(&["--backend", backend, "--dim", "2"]);
        assert_eq!(run.code, Some(0), "{}", run.stderr);
        assert_eq!(read::<i8>(&c.path("Y.npy")), (vec![1, 1], vec![22]), "{backend}");
    }
}

#[test]
fn shape_errors_name_the_layer_and_write_nothing() {
    let conv = |k: usize, c_in: usize, c_out: usize| {
        format!(
            r#"{{"op": "conv2d", "kernel": [{k}, {k}], "stride": [1, 1], "c_in": {c_in}, "c_out": {c_out},
                "weight_scale": 1.0, "output_scale": 1.0, "quant": {{"multiplier": 1, "shift": 0, "relu": false}},
                "bias": {:?}, "weights": {:?}}}"#,
            vec![0; c_out],
            vec![1; k * k * c_in * c_out]
        )
    };
    let model = |layers: &[String]| {
        format!(
            r#"{{"format": "protobrain-model", "version": 2, "model": {{"input": [4, 4, 1], "input_scale": 1.0,
                "output": "int8", "layers": [{}]}}}}"#,
            layers.join(", ")
        )
    };
    let dense = r#"{"op": "dense", "k": 16, "n": 1, "weight_scale": 1.0, "output_scale": 1.0,
        "quant": {"multiplier": 1, "shift": 0, "relu": false}, "bias": [0], "weights": [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]}"#;
    let cases = [
        (model(&[conv(5, 1, 1)]), "layer 0 (conv2d): kernel 5x5 is larger than the padded input 4x4"),
        (model(&[conv(3, 1, 2), conv(1, 3, 1)]), "layer 1 (conv2d): takes C_in = 3 channels but its input has 2"),
        (
            model(&[conv(1, 1, 1), dense.to_string()]),
            "layer 1 (dense): its input is 4x4x1, not a flat vector: put a flatten or global_avg_pool layer before it",
        ),
        (
            model(&[conv(3, 1, 1), r#"{"op": "flatten"}"#.to_string(), dense.to_string()]),
            "layer 2 (dense): takes K = 16 inputs but its input has 4 features",
        ),
    ];
    for (text, problem) in cases {
        let c = Case::new(&text);
        write_npy(&c.path("X.npy"), &[1, 4, 4, 1], Order::C, &[0i8; 16]);
        c.rejected(&c.infer(&[]), "m.json", problem);
    }
    // an input of the wrong shape, and two outputs on one path
    let c = Case::new(WORKED);
    write_npy(&c.path("X.npy"), &[1, 3, 4, 1], Order::C, &[0i8; 12]);
    c.rejected(
        &c.infer(&[]),
        "X.npy",
        "has shape (1, 3, 4, 1) but the model takes 3x3x1 inputs: X must be (N, 3, 3, 1) NHWC or (N, 9)",
    );
    write_npy(&c.path("X.npy"), &[1, 3, 3, 1], Order::C, &[0i8; 9]);
    c.rejected(&c.infer(&["--report", &c.s("Y.npy")]), "--report", "is also the --output output");
    c.rejected(&c.infer(&["--report", &c.s("no/r.json")]), "r.json", "does not exist");
    // float inputs must be finite
    let mut xs = [0.5f32; 9];
    xs[4] = f32::NAN;
    write_npy(&c.path("X.npy"), &[1, 3, 3, 1], Order::C, &xs);
    c.rejected(&c.infer(&[]), "X.npy", "holds NaN: float inputs must be finite");
    assert!(!c.path("no").exists());
}

/// `--resident`: the weight tiles are stored on the device first and loaded with LOAD_TILE;
/// the output is the same, the run sends fewer words, and the report shows the upload apart.
#[test]
fn resident_weights_give_the_same_output_and_report_the_upload_apart() {
    let c = Case::new(WORKED);
    write_npy(&c.path("X.npy"), &[1, 3, 3, 1], Order::C, &[1i8, 2, 3, 4, 5, 6, 7, 8, 9]);
    let cfg = ["--dim", "2", "--scratch-rows", "16", "--acc-rows", "8"];
    for backend in ["golden", "native", "rtl"] {
        let json = |name: &str| -> serde_json::Value {
            serde_json::from_str(&fs::read_to_string(c.path(name)).unwrap()).unwrap()
        };
        let (r1, r2) = (c.s("r1.json"), c.s("r2.json"));
        let mut args = vec!["--backend", backend, "--report", &r1];
        args.extend(cfg);
        let run = c.infer(&args);
        assert_eq!(run.code, Some(0), "{backend}: {}", run.stderr);
        let streamed: (Vec<u64>, Vec<i32>) = read(&c.path("Y.npy"));
        fs::remove_file(c.path("Y.npy")).unwrap();
        let mut args = vec!["--backend", backend, "--report", &r2, "--resident"];
        args.extend(cfg);
        let run = c.infer(&args);
        assert_eq!(run.code, Some(0), "{backend}: {}", run.stderr);
        assert_eq!(read::<i32>(&c.path("Y.npy")), streamed, "{backend}");
        // K = 2·2·1 = 4, N = 2 at DIM 2: two tiles, both stored
        assert!(run.stdout.contains("weights resident: 2 of 2 tiles"), "{}", run.stdout);
        let (a, b) = (json("r1.json"), json("r2.json"));
        assert!(a.get("upload").is_none());
        assert_eq!(b["upload"]["tiles_stored"], 2);
        // each tile: LOAD_TILE (2 words) instead of LOAD_WEIGHTS (1 + 2 rows of 1 word)
        let words = |v: &serde_json::Value| v["words_sent"].as_u64().unwrap();
        assert_eq!(words(&a) - words(&b), 2, "{backend}");
        // the upload: two WRITE_ACTs of 2 rows (1 + 1 + 2 words each) and a SYNC (2 words)
        assert_eq!(b["upload"]["words_sent"], 10, "{backend}");
        // per inference: the run's words over its rows, and with the upload's 10 words shared
        let rows = b["m"].as_u64().unwrap() as f64;
        let sent = b["words_sent"].as_u64().unwrap() as f64;
        let line = format!("per inference ({rows} rows): ");
        assert!(run.stdout.contains(&line), "{}", run.stdout);
        let steady = format!("{:.1} words sent", sent / rows);
        let shared = format!("{:.1} words sent", (sent + 10.0) / rows);
        assert!(run.stdout.contains(&format!("{steady}, ")), "{}", run.stdout);
        assert!(run.stdout.contains(&format!("{shared}, ")), "{}", run.stdout);
        fs::remove_file(c.path("Y.npy")).unwrap();
    }
}
