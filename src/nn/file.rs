//! `model.json`: a quantised network and where it came from (format: `docs/model-format.md`).
//!
//! ```text
//!   {
//!     "format": "protobrain-model", "version": 2,
//!     "model": { "input": [H, W, C], "input_scale", "output": "raw" | "int8",
//!                "layers": [ {"op": "conv2d", kernel, stride, padding, c_in, c_out, scales, quant, bias, weights},
//!                            {"op": "maxpool2d", kernel, stride, padding}, {"op": "global_avg_pool"},
//!                            {"op": "flatten"}, {"op": "dense", k, n, scales, quant, bias, weights} ] },
//!     "provenance": { dataset, input_encoding, split, training, calibration, accuracy }   (optional)
//!   }
//! ```
//!
//! The model part is [`driver::Network`] and is checked when read (weight counts, every layer's
//! shape against its input, scales, shift range). Version 1 files (`"protobrain-mlp"`, an MLP
//! with `"input_scale"` and dense `"layers"`) are still read, as a network of dense layers.
//! Files are written with each weight row on one line, and atomically (temporary file, then
//! rename).

use std::io::Write;
use std::path::Path;

use driver::quant::{Calibration, QuantizedMlp};
use driver::Network;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::train::TrainConfig;

/// The `format` value of a model file.
pub const FORMAT: &str = "protobrain-model";
/// The `version` this code writes.
pub const VERSION: u32 = 2;
/// The `format` of version 1 files (MLPs only), still read.
pub const FORMAT_V1: &str = "protobrain-mlp";

/// A model file: the quantised model and, optionally, how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelFile {
    /// Always [`FORMAT`].
    pub format: String,
    /// Always [`VERSION`].
    pub version: u32,
    /// What runs on the device.
    pub model: Network,
    /// How the model was made (absent in a hand-written file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Provenance>,
}

/// Where a model came from. Everything here is deterministic: the same data, split, seed and
/// code give the same file, byte for byte.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// The data set, in words.
    pub dataset: String,
    /// How raw inputs become the int8 inputs of the model, in words.
    pub input_encoding: String,
    /// The train/test split.
    pub split: SplitInfo,
    /// The training hyper-parameters.
    pub training: Training,
    /// How the activation ranges were calibrated.
    pub calibration: CalibrationInfo,
    /// Accuracies on the test set.
    pub accuracy: AccuracyInfo,
}

/// How the float model was trained, as recorded in [`Provenance`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Training {
    /// An MLP ([`super::train`]).
    Mlp(TrainConfig),
    /// A CNN ([`super::cnn_train`]).
    Cnn(super::cnn_train::CnnTrainConfig),
}

/// A version 1 file: an MLP.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelFileV1 {
    #[allow(dead_code)]
    format: String,
    #[allow(dead_code)]
    version: u32,
    model: QuantizedMlp,
    #[serde(default)]
    provenance: Option<Provenance>,
}

/// A train/test split, as recorded in [`Provenance`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitInfo {
    /// The method, in words.
    pub method: String,
    /// Its seed.
    pub seed: u64,
    /// Training images.
    pub train: usize,
    /// Test images.
    pub test: usize,
}

/// The calibration, as recorded in [`Provenance`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalibrationInfo {
    /// How each layer's output range was taken.
    pub method: Calibration,
    /// Images the ranges were taken over (the training set).
    pub images: usize,
}

/// Test accuracies, as recorded in [`Provenance`] (fractions in [0, 1]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccuracyInfo {
    /// Test images.
    pub test_images: usize,
    /// The float model.
    pub float: f64,
    /// The int8 model (bit-exact on every backend).
    pub int8: f64,
}

/// A model file that cannot be read or written: `path: problem`, one line.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{path}: {problem}")]
pub struct ModelFileError {
    /// The file as given.
    pub path: String,
    /// What is wrong, lower case.
    pub problem: String,
}

/// Only `format` and `version`, read first so that another kind of JSON file gets a clear
/// message rather than a complaint about its first unknown field.
#[derive(Deserialize)]
struct Head {
    format: Option<String>,
    version: Option<u32>,
}

impl ModelFile {
    /// A file for `model`.
    pub fn new(model: Network, provenance: Option<Provenance>) -> Self {
        ModelFile { format: FORMAT.to_string(), version: VERSION, model, provenance }
    }

    /// A file for an MLP (a network of dense layers).
    pub fn mlp(model: &QuantizedMlp, provenance: Option<Provenance>) -> Self {
        ModelFile::new(Network::from_mlp(model), provenance)
    }

    /// The JSON text: two-space indentation, arrays of numbers on one line, each weight row
    /// (`n` values) on a line of its own, a final newline.
    pub fn to_json(&self) -> String {
        let pretty = serde_json::to_string_pretty(self).expect("a model file serialises");
        let mut text = compact_number_arrays(&pretty);
        text.push('\n');
        text
    }

    /// Parse a model file; `name` is used in error messages.
    pub fn from_json(text: &str, name: &str) -> Result<Self, ModelFileError> {
        let err = |problem: String| ModelFileError { path: name.to_string(), problem };
        let head: Head =
            serde_json::from_str(text).map_err(|e| err(format!("not a JSON model file: {e}")))?;
        match (head.format.as_deref(), head.version) {
            (Some(FORMAT), Some(VERSION)) => {
                serde_json::from_str(text).map_err(|e| err(format!("invalid model: {e}")))
            }
            (Some(FORMAT_V1), Some(1)) => {
                let v1: ModelFileV1 =
                    serde_json::from_str(text).map_err(|e| err(format!("invalid model: {e}")))?;
                Ok(ModelFile::mlp(&v1.model, v1.provenance))
            }
            (Some(f @ (FORMAT | FORMAT_V1)), Some(v)) => Err(err(format!(
                "version {v} of {f:?} is not supported: this program reads {FORMAT:?} version {VERSION} \
                 and {FORMAT_V1:?} version 1"
            ))),
            (Some(FORMAT | FORMAT_V1), None) => Err(err("no \"version\" field".into())),
            (Some(other), _) => {
                Err(err(format!("format is {other:?}, expected {FORMAT:?}: not a protobrain model file")))
            }
            (None, _) => Err(err(format!("no \"format\" field: not a protobrain model file ({FORMAT:?})"))),
        }
    }

    /// Read a model file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ModelFileError> {
        let path = path.as_ref();
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ModelFileError { path: name.clone(), problem: describe_io(&e) })?;
        ModelFile::from_json(&text, &name)
    }

    /// Write the file atomically: a temporary file beside it, renamed into place when complete.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ModelFileError> {
        let path = path.as_ref();
        let fail = |what: &str, e: &std::io::Error| ModelFileError {
            path: path.display().to_string(),
            problem: format!("cannot {what}: {}", describe_io(e)),
        };
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let mut tmp = tempfile::Builder::new()
            .prefix(".protobrain-")
            .suffix(".tmp")
            // like any new file: the kernel applies the umask (0644 under 022)
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .tempfile_in(dir)
            .map_err(|e| fail("create the file", &e))?;
        tmp.write_all(self.to_json().as_bytes()).map_err(|e| fail("write the file", &e))?;
        tmp.persist(path).map_err(|e| fail("move the finished file into place", &e.error))?;
        Ok(())
    }
}

fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        std::io::ErrorKind::IsADirectory => "is a directory, not a file".into(),
        std::io::ErrorKind::InvalidData => "not a text file (invalid UTF-8)".into(),
        _ => e.to_string(),
    }
}

/// Rewrite serde_json's pretty output so that an array whose elements are all numbers is
/// printed on one line (up to 16 values), or as rows: `n` values per line for a `weights`
/// array following an `"n": <n>` field, 16 per line otherwise. Anything else is unchanged.
fn compact_number_arrays(pretty: &str) -> String {
    let lines: Vec<&str> = pretty.lines().collect();
    let mut out = String::with_capacity(pretty.len());
    let mut last_n: Option<usize> = None;
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let t = line.trim();
        if let Some(v) = t.strip_prefix("\"n\": ").or_else(|| t.strip_prefix("\"c_out\": ")) {
            last_n = v.trim_end_matches(',').parse().ok();
        }
        if line.ends_with('[') {
            // collect the following number lines up to the closing bracket
            let mut values = Vec::new();
            let mut j = i + 1;
            while j < lines.len() {
                let t = lines[j].trim().trim_end_matches(',');
                if t.parse::<f64>().is_err() {
                    break;
                }
                values.push(t);
                j += 1;
            }
            let close = lines.get(j).map(|l| l.trim());
            if !values.is_empty() && matches!(close, Some("]") | Some("],")) {
                let indent = &line[..line.len() - line.trim_start().len()];
                let per_line = if line.trim_start().starts_with("\"weights\"") {
                    last_n.filter(|n| *n > 0).unwrap_or(16)
                } else {
                    16
                };
                if values.len() <= 16 && per_line >= values.len() {
                    out.push_str(&format!("{line}{}{}\n", values.join(", "), close.unwrap()));
                } else {
                    out.push_str(line);
                    out.push('\n');
                    let rows: Vec<String> =
                        values.chunks(per_line).map(|c| format!("{indent}  {}", c.join(", "))).collect();
                    out.push_str(&rows.join(",\n"));
                    out.push('\n');
                    out.push_str(indent);
                    out.push_str(close.unwrap());
                    out.push('\n');
                }
                i = j + 1;
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
        i += 1;
    }
    out.pop(); // the caller adds the final newline
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use driver::quant::QuantLayer;
    use driver::{Layer, OutputKind};
    use nalgebra::{DMatrix, DVector};
    use spec::Quant;

    fn model() -> QuantizedMlp {
        let w0 = DMatrix::from_fn(3, 20, |k, n| (k as i8 - 1) * (n as i8));
        let l0 = Layer::new(
            w0,
            DVector::from_fn(20, |n, _| n as i32 * 100 - 7),
            Quant::new(300, 16, true).unwrap(),
        )
        .unwrap();
        let w1 = DMatrix::from_fn(20, 2, |k, n| k as i8 - 3 * n as i8);
        let l1 = Layer::new(w1, DVector::from_vec(vec![-5, 5]), Quant::new(7, 10, false).unwrap()).unwrap();
        let layers = vec![QuantLayer::new(l0, 0.01, 0.05).unwrap(), QuantLayer::new(l1, 0.02, 0.3).unwrap()];
        QuantizedMlp::new(1.0 / 127.0, layers, OutputKind::Raw).unwrap()
    }

    #[test]
    fn json_layout_and_round_trip() {
        let f = ModelFile::mlp(&model(), None);
        let text = f.to_json();
        assert!(text.starts_with("{\n  \"format\": \"protobrain-model\",\n  \"version\": 2,\n"), "{text}");
        // the 20-bias array wraps at 16, the 3 x 20 weights are 3 rows of 20, the 20 x 2 ones 20 rows
        assert!(text.contains("\"bias\": [\n          -7, 93, 193,"), "{text}");
        let w0_row1 = (0..20).map(|_| "0").collect::<Vec<_>>().join(", ");
        assert!(text.contains(&format!("\n          {w0_row1},\n")), "{text}");
        assert!(text.contains("\"bias\": [-5, 5]"), "{text}");
        assert!(text.contains("\n          0, -3,\n"), "{text}");
        assert!(text.ends_with("}\n"));
        assert!(!text.contains("provenance"));
        let back = ModelFile::from_json(&text, "m.json").unwrap();
        assert_eq!(back, f);
        assert_eq!(back.to_json(), text, "the text is a fixed point");
    }

    #[test]
    fn errors_name_the_file() {
        let e = |text: &str| ModelFile::from_json(text, "m.json").unwrap_err().to_string();
        assert!(e("{").starts_with("m.json: not a JSON model file: EOF while parsing"), "{}", e("{"));
        assert_eq!(
            e("{}"),
            "m.json: no \"format\" field: not a protobrain model file (\"protobrain-model\")"
        );
        assert_eq!(
            e(r#"{"format": "onnx"}"#),
            "m.json: format is \"onnx\", expected \"protobrain-model\": not a protobrain model file"
        );
        assert_eq!(
            e(r#"{"format": "protobrain-mlp", "version": 2}"#),
            "m.json: version 2 of \"protobrain-mlp\" is not supported: this program reads \"protobrain-model\" \
             version 2 and \"protobrain-mlp\" version 1"
        );
        let good = ModelFile::mlp(&model(), None).to_json();
        let bad = good.replacen("\"shift\": 16", "\"shift\": 48", 1);
        assert!(e(&bad).starts_with("m.json: invalid model: shift must be in 0..=47, got 48"), "{}", e(&bad));
        let bad = good.replacen("\"k\": 20", "\"k\": 21", 1);
        assert!(e(&bad).contains("weights of a 21x2 layer need 42 elements, got 40"), "{}", e(&bad));
        let bad = good.replacen("\"version\": 2,", "\"version\": 2, \"extra\": 0,", 1);
        assert!(e(&bad).contains("unknown field `extra`"), "{}", e(&bad));
        let missing = ModelFile::load("/no/such/model.json").unwrap_err();
        assert_eq!(missing.to_string(), "/no/such/model.json: no such file or directory");
    }

    #[test]
    fn save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("model.json");
        let f = ModelFile::mlp(&model(), None);
        f.save(&path).unwrap();
        assert_eq!(ModelFile::load(&path).unwrap(), f);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");
        let e = f.save(dir.path().join("no/such/dir/m.json")).unwrap_err();
        assert!(e.problem.starts_with("cannot create the file"), "{e}");
    }
}
