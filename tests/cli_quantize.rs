//! `protobrain quantize`: a float MLP from .safetensors or .npz plus calibration inputs gives
//! exactly the model `driver::quant::quantize_mlp` makes (the demo's code), which `infer` runs;
//! bad files are one-line errors.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use common::{protobrain, write_npy};
use driver::quant::{quantize_mlp, Calibration, FloatLayer, QuantOptions};
use driver::OutputKind;
use nalgebra::{DMatrix, DVector};
use npyz::{Order, WriterBuilder};
use protobrain::nn::ModelFile;

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Three layers 8 -> 6 -> 5 -> 3, named so that a plain sort would put `net.10` first.
const NAMES: [&str; 3] = ["net.0", "net.2", "net.10"];
const WIDTHS: [usize; 4] = [8, 6, 5, 3];

/// PyTorch-layout (out, in) weights and biases, row-major, deterministic.
fn torch_tensors() -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let mut rng = spec::rng::SplitMix64::new(5);
    let mut out = Vec::new();
    for (i, name) in NAMES.iter().enumerate() {
        let (k, n) = (WIDTHS[i], WIDTHS[i + 1]);
        let w: Vec<f32> = (0..n * k).map(|_| rng.next_f32() - 0.5).collect();
        let b: Vec<f32> = (0..n).map(|_| (rng.next_f32() - 0.5) * 0.2).collect();
        out.push((format!("{name}.weight"), vec![n, k], w));
        out.push((format!("{name}.bias"), vec![n], b));
    }
    out
}

fn float_layers() -> Vec<FloatLayer> {
    let t = torch_tensors();
    (0..3)
        .map(|i| {
            let (_, shape, w) = &t[2 * i];
            let (_, _, b) = &t[2 * i + 1];
            FloatLayer {
                weights: DMatrix::from_row_slice(shape[0], shape[1], w).transpose(),
                bias: DVector::from_vec(b.clone()),
                relu: i < 2,
            }
        })
        .collect()
}

fn calibration(d: &Path) -> DMatrix<f32> {
    let mut rng = spec::rng::SplitMix64::new(9);
    let x: Vec<f32> = (0..40 * 8).map(|_| rng.next_f32() * 2.0 - 1.0).collect();
    write_npy(&d.join("X.npy"), &[40, 8], Order::C, &x);
    DMatrix::from_row_slice(40, 8, &x)
}

fn write_safetensors(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> =
        tensors.iter().map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect()).collect();
    let views: HashMap<String, safetensors::tensor::TensorView> = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            (
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(path, safetensors::serialize(views, None).unwrap()).unwrap();
}

/// np.savez: one `NAME.npy` per tensor in a zip archive (stored).
fn write_npz(path: &Path, tensors: &[(String, Vec<usize>, Vec<f32>)], transpose: bool) {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    for (name, shape, v) in tensors {
        let (shape, v) = if transpose && shape.len() == 2 {
            let m = DMatrix::from_row_slice(shape[0], shape[1], v).transpose();
            (vec![shape[1], shape[0]], m.transpose().as_slice().to_vec())
        } else {
            (shape.clone(), v.clone())
        };
        let mut npy = Vec::new();
        let shape64: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut w = npyz::WriteOptions::<f32>::new()
            .default_dtype()
            .shape(&shape64)
            .writer(&mut npy)
            .begin_nd()
            .unwrap();
        w.extend(v.iter().copied()).unwrap();
        w.finish().unwrap();
        let opts =
            zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
        zip.start_file(format!("{name}.npy"), opts).unwrap();
        zip.write_all(&npy).unwrap();
    }
    zip.finish().unwrap();
}

#[test]
fn a_safetensors_mlp_quantises_to_the_demos_model_and_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let x = calibration(d);
    write_safetensors(&d.join("mlp.safetensors"), &torch_tensors());
    let r = protobrain(&[
        "quantize",
        "-w",
        s(&d.join("mlp.safetensors")),
        "-c",
        s(&d.join("X.npy")),
        "-o",
        s(&d.join("model.json")),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(
        r.stdout.contains("3 layer(s) 8 -> 6 -> 5 -> 3") && r.stdout.contains("net.0, net.2, net.10"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("calibration inputs"), "{}", r.stdout);
    // exactly what the library makes of the same float model (max |x| / 127 input scale)
    let scale = f64::from(x.iter().fold(0f32, |m, v| m.max(v.abs()))) / 127.0;
    let options = QuantOptions { input_scale: scale, calibration: Calibration::Max, output: OutputKind::Raw };
    let want = quantize_mlp(&float_layers(), &x, &options).unwrap();
    let got = ModelFile::load(d.join("model.json")).unwrap();
    assert_eq!(got, ModelFile::mlp(&want, None));
    // and it runs, on float inputs
    let r = protobrain(&[
        "infer",
        "-m",
        s(&d.join("model.json")),
        "-i",
        s(&d.join("X.npy")),
        "-o",
        s(&d.join("Y.npy")),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);

    // the same weights stored (in, out) in a .npz, with --layout in-out: the same model
    write_npz(&d.join("mlp.npz"), &torch_tensors(), true);
    let r = protobrain(&[
        "quantize",
        "-w",
        s(&d.join("mlp.npz")),
        "--layout",
        "in-out",
        "-c",
        s(&d.join("X.npy")),
        "-o",
        s(&d.join("model2.json")),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(ModelFile::load(d.join("model2.json")).unwrap(), got);
}

#[test]
fn bad_weight_files_are_one_line_errors_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    calibration(d);
    write_npz(&d.join("mlp.npz"), &torch_tensors(), false);
    let out = d.join("model.json");
    let xp = d.join("X.npy");
    let quantize = |extra: &[&str]| {
        let mut args = vec!["quantize", "-c", s(&xp), "-o", s(&out)];
        args.extend(extra);
        protobrain(&args)
    };
    // (out, in) weights read as (in, out): the shapes do not chain
    let r = quantize(&["-w", s(&d.join("mlp.npz")), "--layout", "in-out"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("is --layout right?"), "{}", r.stderr);
    // a layer that does not exist
    let r = quantize(&["-w", s(&d.join("mlp.npz")), "--layers", "net.0,net.4"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("has no tensor net.4.weight"), "{}", r.stderr);
    // not an archive, and an unknown extension
    std::fs::write(d.join("junk.npz"), b"not a zip").unwrap();
    let r = quantize(&["-w", s(&d.join("junk.npz"))]);
    assert!(r.code == Some(2) && r.stderr.contains("is not a .npz (zip) archive"), "{}", r.stderr);
    std::fs::write(d.join("w.pt"), b"x").unwrap();
    let r = quantize(&["-w", s(&d.join("w.pt"))]);
    assert!(r.code == Some(2) && r.stderr.contains("is neither .npz nor .safetensors"), "{}", r.stderr);
    // int64 weights
    let t: Vec<(String, Vec<usize>, Vec<f32>)> = torch_tensors();
    let mut zip = zip::ZipWriter::new(std::fs::File::create(d.join("int.npz")).unwrap());
    let mut npy = Vec::new();
    let mut w =
        npyz::WriteOptions::<i64>::new().default_dtype().shape(&[6, 8]).writer(&mut npy).begin_nd().unwrap();
    w.extend((0..48).map(|v| v as i64)).unwrap();
    w.finish().unwrap();
    zip.start_file("net.0.weight.npy", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(&npy).unwrap();
    zip.finish().unwrap();
    drop(t);
    let r = quantize(&["-w", s(&d.join("int.npz"))]);
    assert!(r.code == Some(2) && r.stderr.contains("weights must be float32"), "{}", r.stderr);
    // a header claiming a huge shape over a few bytes: refused before any allocation
    let mut npy = Vec::new();
    let mut w =
        npyz::WriteOptions::<f32>::new().default_dtype().shape(&[2, 2]).writer(&mut npy).begin_nd().unwrap();
    w.extend([1.0f32; 4]).unwrap();
    w.finish().unwrap();
    let text = String::from_utf8_lossy(&npy).replace("(2, 2)", "(9223372036854775809, 2)");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(d.join("huge.npz")).unwrap());
    zip.start_file("net.0.weight.npy", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(text.as_bytes()).unwrap();
    zip.finish().unwrap();
    let r = quantize(&["-w", s(&d.join("huge.npz"))]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert_eq!(r.stderr.lines().count(), 1, "{}", r.stderr);
    assert!(!out.exists(), "a failure leaves no file");
}
