//! `protobrain quantize`: a float MLP (weights and biases in a numpy `.npz` or a
//! `.safetensors` file) and calibration inputs → an int8 model file (docs/model-format.md),
//! with the same code as the demo (`driver::quant::quantize_mlp`): symmetric per-tensor int8
//! weights, int32 biases at the accumulator scale, each layer's output range calibrated on the
//! inputs, ReLU between layers.
//!
//! ```text
//!  weights.npz | .safetensors ─┐  NAME.weight (out, in) [PyTorch] or (in, out), NAME.bias
//!  calibration X.npy (float) ──┴─► FloatLayer × L ─► quantize_mlp ─► model.json
//!                                                          └─► float vs int8 agreement on X
//! ```

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use driver::quant::{argmax_rows, quantize_mlp, Calibration, FloatLayer, QuantOptions, QMAX};
use driver::OutputKind;
use nalgebra::{DMatrix, DVector};
use protobrain::nn::ModelFile;

use crate::error::CliError;
use crate::npy;
use crate::output::{check_outputs, Outputs};

/// Largest tensor file read (weights of an MLP; raise it by splitting the model).
const MAX_TENSOR_BYTES: u64 = 1 << 30;

/// How a weight matrix is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Layout {
    /// (out, in), PyTorch's `nn.Linear.weight`: transposed on reading.
    OutIn,
    /// (in, out): `y = x @ W` (numpy, Keras).
    InOut,
}

/// Arguments of `protobrain quantize`.
#[derive(Debug, Args)]
pub struct QuantizeArgs {
    /// The float MLP: tensors NAME.weight (2-D) and NAME.bias (1-D, optional), float32 or
    /// float64, in a numpy .npz (np.savez) or a .safetensors file (a PyTorch state_dict).
    #[arg(short, long, value_name = "weights.npz|weights.safetensors")]
    pub weights: PathBuf,
    /// Calibration inputs: float32 or float64 .npy (M, K), representative of what the model
    /// will see (a few hundred rows of the training set).
    #[arg(short, long, value_name = "X.npy")]
    pub calibration: PathBuf,
    /// The layers in order, by NAME [default: every NAME with a NAME.weight, in natural order
    /// (fc2 before fc10, 0 before 2)].
    #[arg(long, value_delimiter = ',', value_name = "NAME,...")]
    pub layers: Vec<String>,
    /// How the weight matrices are stored.
    #[arg(long, value_enum, default_value_t = Layout::OutIn)]
    pub layout: Layout,
    /// The real value of one int8 input step [default: max |calibration input| / 127].
    #[arg(long, value_name = "F")]
    pub input_scale: Option<f64>,
    /// Calibrate each layer's output range at this percentile of |y| (0 < P <= 100) instead
    /// of its maximum: outliers saturate, the rest gets finer steps.
    #[arg(long, value_name = "P")]
    pub percentile: Option<f64>,
    /// The last layer returns int8 (requantised to its calibrated range) instead of raw int32
    /// logits.
    #[arg(long)]
    pub int8_output: bool,
    /// The int8 model file (docs/model-format.md).
    #[arg(short, long, value_name = "model.json")]
    pub output: PathBuf,
}

/// A float tensor read from a file: its shape and values in C order.
struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

/// Quantise; returns the summary.
pub fn run(args: &QuantizeArgs) -> Result<String, CliError> {
    check_outputs(&[("--output", Some(&args.output))])?;
    let path = &args.weights;
    let tensors = read_tensors(path)?;
    let names = layer_names(path, &tensors, &args.layers)?;
    let last = names.len() - 1;
    let mut layers = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        layers.push(float_layer(path, &tensors, name, args.layout, i < last)?);
    }
    let x = read_float_matrix(&args.calibration)?;
    if x.nrows() == 0 {
        return Err(CliError::file(&args.calibration, "has no rows: calibration needs inputs"));
    }
    if let Some(v) = x.iter().find(|v| !v.is_finite()) {
        return Err(CliError::file(
            &args.calibration,
            format!("holds {v}: calibration inputs must be finite"),
        ));
    }
    let input_scale = match args.input_scale {
        Some(s) if s.is_finite() && s > 0.0 => s,
        Some(s) => {
            return Err(CliError::input("--input-scale", format!("must be a positive number, got {s}")))
        }
        None => {
            let max = x.iter().fold(0f32, |m, v| m.max(v.abs()));
            if max == 0.0 {
                return Err(CliError::file(
                    &args.calibration,
                    "is all zeros: give --input-scale (the real value of one int8 input step)",
                ));
            }
            f64::from(max) / QMAX
        }
    };
    let calibration = match args.percentile {
        None => Calibration::Max,
        Some(p) if p > 0.0 && p <= 100.0 => Calibration::Percentile(p),
        Some(p) => return Err(CliError::input("--percentile", format!("must be in (0, 100], got {p}"))),
    };
    let output = if args.int8_output { OutputKind::Int8 } else { OutputKind::Raw };
    let options = QuantOptions { input_scale, calibration, output };
    let model = quantize_mlp(&layers, &x, &options).map_err(|e| CliError::file(path, e.to_string()))?;

    // how often the int8 model picks the float model's class on the calibration inputs
    let mut y = x.clone();
    for l in &layers {
        y = l.forward(&y).map_err(|e| CliError::file(path, e.to_string()))?;
    }
    let float_pick = protobrain::nn::float::argmax_rows(&y);
    let q = model.golden(&model.quantize_input(&x)).map_err(|e| CliError::file(path, e.to_string()))?;
    let same = argmax_rows(&q).iter().zip(&float_pick).filter(|(a, b)| a == b).count();

    let file = ModelFile::mlp(&model, None);
    let mut outputs = Outputs::new();
    let json = file.to_json();
    outputs.stage(&args.output, |w| w.write_all(json.as_bytes()))?;
    outputs.commit()?;
    let widths: Vec<String> = model.widths().iter().map(|w| w.to_string()).collect();
    Ok(format!(
        "wrote {}: {} layer(s) {} from {} ({}), input scale {input_scale:.6e}, {} output\n\
         int8 and float pick the same class on {same} of {} calibration inputs ({:.1}%)\n",
        args.output.display(),
        names.len(),
        widths.join(" -> "),
        path.display(),
        names.join(", "),
        if args.int8_output { "int8" } else { "raw int32" },
        x.nrows(),
        100.0 * same as f64 / x.nrows() as f64
    ))
}

/// A float .npy matrix (float32, or float64 narrowed to float32).
fn read_float_matrix(path: &Path) -> Result<DMatrix<f32>, CliError> {
    match npy::read_matrix::<f32>(path) {
        Ok(m) => Ok(m),
        Err(e32) => match npy::read_matrix::<f64>(path) {
            Ok(m) => Ok(m.map(|v| v as f32)),
            Err(_) => Err(e32),
        },
    }
}

/// Every tensor of a .npz or .safetensors file, by name.
fn read_tensors(path: &Path) -> Result<BTreeMap<String, Tensor>, CliError> {
    let len = std::fs::metadata(path)
        .map_err(|e| CliError::file(path, format!("cannot read: {}", crate::error::describe_io(&e))))?
        .len();
    if len > MAX_TENSOR_BYTES {
        return Err(CliError::file(
            path,
            format!("is {len} bytes; at most {MAX_TENSOR_BYTES} are read (an MLP's weights are far smaller)"),
        ));
    }
    let bytes = std::fs::read(path)
        .map_err(|e| CliError::file(path, format!("cannot read: {}", crate::error::describe_io(&e))))?;
    match path.extension().and_then(|e| e.to_str()) {
        Some("npz") => read_npz(path, &bytes),
        Some("safetensors") => read_safetensors(path, &bytes),
        _ => Err(CliError::file(path, "is neither .npz nor .safetensors")),
    }
}

fn read_npz(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, CliError> {
    let bad = |what: String| CliError::file(path, what);
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| bad(format!("is not a .npz (zip) archive: {e}")))?;
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| bad(format!("entry {i}: {e}")))?;
        let full = entry.name().map_err(|e| bad(format!("entry {i}: {e}")))?.to_string();
        let Some(name) = full.strip_suffix(".npy").map(str::to_string) else { continue };
        // never inflate more than the file could hold of float64 weights
        let mut data = Vec::new();
        (&mut entry)
            .take(MAX_TENSOR_BYTES)
            .read_to_end(&mut data)
            .map_err(|e| bad(format!("{name}: cannot inflate: {e}")))?;
        out.insert(name.clone(), npy_tensor(path, &name, &data)?);
    }
    Ok(out)
}

/// One .npy array of an archive, as float32; its shape checked against its data before any
/// allocation.
fn npy_tensor(path: &Path, name: &str, data: &[u8]) -> Result<Tensor, CliError> {
    let bad = |what: String| CliError::file(path, format!("{name}: {what}"));
    let npy = npyz::NpyFile::new(data).map_err(|e| bad(format!("not a .npy array: {e}")))?;
    let shape: Vec<usize> = npy
        .shape()
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| bad(format!("dimension {d} is too large"))))
        .collect::<Result<_, _>>()?;
    let descr = npy.dtype().descr().trim_matches('\'').to_string();
    let size = match descr.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        other => return Err(bad(format!("dtype {other}: weights must be float32 (<f4) or float64 (<f8)"))),
    };
    let count = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if count.and_then(|c| c.checked_mul(size)).is_none_or(|b| b > data.len()) {
        return Err(bad(format!("shape {shape:?} does not match its {} bytes", data.len())));
    }
    let values: Vec<f32> = if size == 4 {
        npy.into_vec::<f32>().map_err(|e| bad(e.to_string()))?
    } else {
        npy.into_vec::<f64>().map_err(|e| bad(e.to_string()))?.into_iter().map(|v| v as f32).collect()
    };
    // numpy's Fortran order (np.asfortranarray) is the transpose in memory: bring it to C order
    let data = if npy_is_fortran(data) && shape.len() == 2 {
        let (r, c) = (shape[0], shape[1]);
        DMatrix::from_vec(r, c, values).transpose().as_slice().to_vec()
    } else {
        values
    };
    Ok(Tensor { shape, data })
}

fn npy_is_fortran(data: &[u8]) -> bool {
    let head = &data[..data.len().min(512)];
    String::from_utf8_lossy(head).contains("'fortran_order': True")
}

fn read_safetensors(path: &Path, bytes: &[u8]) -> Result<BTreeMap<String, Tensor>, CliError> {
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| CliError::file(path, format!("is not a valid .safetensors file: {e}")))?;
    let mut out = BTreeMap::new();
    for (name, view) in st.iter() {
        let data: Vec<f32> = match view.dtype() {
            safetensors::Dtype::F32 => {
                view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
            }
            safetensors::Dtype::F64 => view
                .data()
                .chunks_exact(8)
                .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
                .collect(),
            other => {
                return Err(CliError::file(
                    path,
                    format!("{name}: dtype {other:?}: weights must be F32 or F64 (convert with .float())"),
                ))
            }
        };
        out.insert(name.to_string(), Tensor { shape: view.shape().to_vec(), data });
    }
    Ok(out)
}

/// The layers' names: as given, else every NAME with a NAME.weight in natural order.
fn layer_names(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    given: &[String],
) -> Result<Vec<String>, CliError> {
    if !given.is_empty() {
        for name in given {
            if !tensors.contains_key(&format!("{name}.weight")) {
                return Err(CliError::input(
                    "--layers",
                    format!(
                        "{} has no tensor {name}.weight (it has: {})",
                        path.display(),
                        tensor_list(tensors)
                    ),
                ));
            }
        }
        return Ok(given.to_vec());
    }
    let mut names: Vec<String> =
        tensors.keys().filter_map(|k| k.strip_suffix(".weight")).map(str::to_string).collect();
    if names.is_empty() {
        return Err(CliError::file(
            path,
            format!(
                "has no NAME.weight tensor (it has: {}); name the layers' tensors NAME.weight and NAME.bias",
                tensor_list(tensors)
            ),
        ));
    }
    names.sort_by_key(|a| natural_key(a));
    Ok(names)
}

fn tensor_list(tensors: &BTreeMap<String, Tensor>) -> String {
    let names: Vec<&str> = tensors.keys().map(String::as_str).take(12).collect();
    if names.is_empty() {
        "no tensors".into()
    } else {
        names.join(", ")
    }
}

/// Digits compared as numbers: fc2 < fc10, layers.2 < layers.10.
fn natural_key(s: &str) -> Vec<(u8, u128, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        let digit = c.is_ascii_digit();
        let mut part = String::new();
        while let Some(&c) = chars.peek() {
            if c.is_ascii_digit() != digit {
                break;
            }
            part.push(c);
            chars.next();
        }
        out.push(if digit { (0, part.parse().unwrap_or(u128::MAX), String::new()) } else { (1, 0, part) });
    }
    out
}

/// NAME's weight (K x N after the layout) and bias (zeros if absent).
fn float_layer(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    name: &str,
    layout: Layout,
    relu: bool,
) -> Result<FloatLayer, CliError> {
    let bad = |what: String| CliError::file(path, what);
    let w = &tensors[&format!("{name}.weight")];
    let &[rows, cols] = w.shape.as_slice() else {
        return Err(bad(format!("{name}.weight has shape {:?}: a dense layer's weight is 2-D", w.shape)));
    };
    let m = DMatrix::from_row_slice(rows, cols, &w.data);
    let weights = match layout {
        Layout::OutIn => m.transpose(),
        Layout::InOut => m,
    };
    let n = weights.ncols();
    let bias = match tensors.get(&format!("{name}.bias")) {
        None => DVector::zeros(n),
        Some(b) if b.shape == [n] => DVector::from_vec(b.data.clone()),
        Some(b) => {
            return Err(bad(format!(
                "{name}.bias has shape {:?} but {name}.weight has {n} outputs ({}); is --layout right?",
                b.shape,
                match layout {
                    Layout::OutIn => "(out, in): --layout out-in",
                    Layout::InOut => "(in, out): --layout in-out",
                }
            )))
        }
    };
    if let Some(v) = weights.iter().chain(bias.iter()).find(|v| !v.is_finite()) {
        return Err(bad(format!("{name} holds {v}: weights must be finite")));
    }
    Ok(FloatLayer { weights, bias, relu })
}
