//! The digits pipeline end to end, as the demo runs it: load, split, train (float), quantise
//! (int8), evaluate on the host and through the driver on the golden device, save and reload
//! the model file.
//!
//! The trained model is shared by the tests of this file (training takes well under a second
//! here). `data/digits-mlp.json` is the model file of the default configuration; a test
//! retrains and compares it byte for byte, which proves that training is deterministic on the
//! machine running the test. After an intended change to training or quantisation, rewrite it
//! with `PROTOBRAIN_BLESS=1 cargo test -p protobrain --test nn_digits`.

use std::sync::OnceLock;

use driver::quant::{quantize_mlp, Calibration, QuantOptions};
use driver::{Device, GoldenTransport, Output, OutputKind};
use nalgebra::DMatrix;
use protobrain::nn::{self, digits, train, DigitsModel, ModelFile, TrainConfig};
use spec::Config;

const SHIPPED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits-mlp.json");
const SHIPPED_CNN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits-cnn.json");

/// The default model, trained once for all tests of this file.
fn model() -> &'static DigitsModel {
    static MODEL: OnceLock<DigitsModel> = OnceLock::new();
    MODEL.get_or_init(|| nn::train_digits(&digits::bundled(), &TrainConfig::default(), true).unwrap())
}

/// The int8 model on the host, written out here from `spec::golden` alone (not through
/// `QuantizedMlp::golden`): int8 layers with requantisation, the last one raw.
fn golden_chain(m: &DigitsModel, x: &DMatrix<i8>) -> DMatrix<i32> {
    let layers = m.quantized.to_driver_layers();
    let (last, hidden) = layers.split_last().unwrap();
    let mut a = x.clone();
    for l in hidden {
        a = spec::golden::layer(&a, l.weights(), l.bias(), l.quant()).unwrap();
    }
    spec::golden::layer_raw(&a, last.weights(), last.bias()).unwrap()
}

fn argmax(logits: &DMatrix<i32>) -> Vec<usize> {
    (0..logits.nrows())
        .map(|r| (1..logits.ncols()).fold(0, |b, c| if logits[(r, c)] > logits[(r, b)] { c } else { b }))
        .collect()
}

#[test]
fn accuracy_targets() {
    let m = model();
    assert_eq!((m.split.train.len(), m.split.test.len()), (1297, 500));
    assert_eq!(m.float.widths(), [64, 32, 10]);
    assert_eq!(m.quantized.widths(), [64, 32, 10]);
    let (float, int8) = (m.float_eval.accuracy(), m.int8_eval.accuracy());
    eprintln!("float {:.1}%, int8 {:.1}%, trained in {:?}", 100.0 * float, 100.0 * int8, m.train_time);
    assert!(float >= 0.95, "float accuracy {float}");
    assert!(int8 >= 0.90, "int8 accuracy {int8}");
    assert!((float - int8).abs() <= 0.01, "float {float} vs int8 {int8}: more than 1 point apart");
    assert_eq!(m.float_eval.accuracy(), m.float.accuracy(&m.split.test));
    // the hidden layer has ReLU, the logits layer is read raw (its Quant unused)
    let layers = m.quantized.to_driver_layers();
    assert!(layers[0].quant().relu && !layers[1].quant().relu);
    assert_eq!(m.quantized.output(), OutputKind::Raw);
}

#[test]
fn driver_on_the_golden_device_equals_the_golden_chain() {
    let m = model();
    let x = m.split.test.inputs_i8();
    let want = golden_chain(m, &x);
    assert_eq!(argmax(&want), m.int8_eval.predictions, "the host chain predicts what was evaluated");
    // the default device, one with odd tiles and small memories (many chunks), and DIM 1
    for cfg in [Config::default(), Config::new(3, 64, 32).unwrap(), Config::new(1, 256, 64).unwrap()] {
        let mut dev = Device::open(GoldenTransport::new(cfg), &cfg).unwrap();
        let (eval, out) = nn::evaluate_on(&m.quantized, &m.split.test, &mut dev).unwrap();
        assert_eq!(out.as_raw(), Some(&want), "device {cfg} differs from the golden chain");
        assert_eq!(eval, m.int8_eval);
    }
    // the inputs are round(pixel * 127 / 16), the same as quantising pixel / 16 at scale 1/127
    assert_eq!(m.quantized.quantize_input(&m.split.test.inputs()), x);
    // the raw logits, dequantised, are close to the float logits
    let float = m.float.logits(&m.split.test.inputs());
    let scale = m.quantized.output_scale();
    let worst = want
        .iter()
        .zip(float.iter())
        .map(|(q, f)| (f64::from(*q) * scale - f64::from(*f)).abs())
        .fold(0.0, f64::max);
    let span = float.iter().map(|v| f64::from(v.abs())).fold(0.0, f64::max);
    assert!(worst < 0.05 * span, "dequantised logits off by {worst} (logits up to {span})");
}

#[test]
fn int8_output_models_run_on_the_device_too() {
    // the same float model quantised with int8 logits and percentile calibration
    let m = model();
    let opts = QuantOptions {
        input_scale: digits::INPUT_SCALE,
        calibration: Calibration::Percentile(99.9),
        output: OutputKind::Int8,
    };
    let q = quantize_mlp(m.float.layers(), &m.split.train.inputs(), &opts).unwrap();
    let x = m.split.test.inputs_i8();
    let cfg = Config::new(4, 128, 64).unwrap();
    let mut dev = Device::open(GoldenTransport::new(cfg), &cfg).unwrap();
    let out = q.run(&mut dev, &x).unwrap();
    let host = q.golden(&x).unwrap();
    assert!(matches!(out, Output::Int8(_)));
    assert_eq!(out, host);
    // int8 logits saturate and tie more often, but still classify
    let (eval, _) = nn::evaluate_golden(&q, &m.split.test);
    assert!(eval.accuracy() >= 0.9, "int8-logit accuracy {}", eval.accuracy());
}

#[test]
fn training_is_deterministic() {
    let train_set = &model().split.train;
    let cfg = TrainConfig { epochs: 3, ..TrainConfig::default() };
    let a = train::train(train_set, &cfg, |_| {}).unwrap();
    let b = train::train(train_set, &cfg, |_| {}).unwrap();
    assert!(a.bit_identical(&b), "same data and seed, different weights");
    let c = train::train(train_set, &TrainConfig { seed: 2, ..cfg }, |_| {}).unwrap();
    assert!(!a.bit_identical(&c), "another seed gives other weights");
    // and the quantised models, hence the model files, are identical too
    assert_eq!(nn::quantize(&a, train_set).unwrap(), nn::quantize(&b, train_set).unwrap());
}

#[test]
fn hidden_width_sweep() {
    let data = digits::bundled();
    for hidden in [16, 64] {
        let m = nn::train_digits(&data, &TrainConfig::with_hidden(hidden), true).unwrap();
        assert_eq!(m.quantized.widths(), [64, hidden, 10]);
        let (float, int8) = (m.float_eval.accuracy(), m.int8_eval.accuracy());
        assert!(
            float >= 0.95 && int8 >= 0.9 && (float - int8).abs() <= 0.01,
            "hidden {hidden}: {float} / {int8}"
        );
    }
}

#[test]
fn model_file_round_trip() {
    let m = model();
    let f = m.model_file();
    let p = f.provenance.as_ref().unwrap();
    assert_eq!(p.accuracy.float, m.float_eval.accuracy());
    assert_eq!(p.accuracy.int8, m.int8_eval.accuracy());
    assert_eq!((p.split.seed, p.split.train, p.split.test), (digits::SPLIT_SEED, 1297, 500));
    assert_eq!(p.training, nn::file::Training::Mlp(TrainConfig::default()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.json");
    f.save(&path).unwrap();
    let back = ModelFile::load(&path).unwrap();
    assert_eq!(back, f);
    let mlp = back.model.to_mlp().unwrap();
    assert_eq!(mlp.to_driver_layers(), m.quantized.to_driver_layers());
    // every scale survives the text exactly
    for (a, b) in mlp.layers().iter().zip(m.quantized.layers()) {
        assert_eq!(a.weight_scale().to_bits(), b.weight_scale().to_bits());
        assert_eq!(a.output_scale().to_bits(), b.output_scale().to_bits());
    }
}

#[test]
fn shipped_model_is_reproduced() {
    let text = model().model_file().to_json();
    if std::env::var_os("PROTOBRAIN_BLESS").is_some() {
        std::fs::write(SHIPPED, &text).unwrap();
    }
    let shipped = std::fs::read_to_string(SHIPPED).unwrap_or_default();
    assert!(
        shipped == text,
        "data/digits-mlp.json differs from a fresh training of the default configuration: training is \
         not deterministic on this machine, or training changed (then rewrite the file with \
         PROTOBRAIN_BLESS=1 cargo test -p protobrain --test nn_digits)"
    );
}

/// The demo's CNN: trained deterministically, quantised per tensor, at its accuracy floor (int8
/// at least 97.5% and within one point of float), equal on the host golden network and the
/// golden device, and reproduced byte for byte as `data/digits-cnn.json`.
#[test]
fn the_cnn_meets_its_floor_and_is_reproduced() {
    let cnn =
        nn::digits_cnn::train_digits_cnn(&digits::bundled(), &nn::CnnTrainConfig::default(), true).unwrap();
    let (float, int8) = (cnn.float_eval.accuracy(), cnn.int8_eval.accuracy());
    assert!(int8 >= 0.975, "int8 accuracy {int8}");
    assert!((float - int8).abs() <= 0.01, "float {float} vs int8 {int8}");
    // the device runs the same network bit for bit
    let cfg = spec::Config::new(4, 256, 128).unwrap();
    let mut dev = driver::Device::open(driver::GoldenTransport::new(cfg), &cfg).unwrap();
    let x = cnn.split.test.inputs_i8();
    assert_eq!(cnn.quantized.run(&mut dev, &x).unwrap(), cnn.quantized.golden(&x).unwrap());

    let text = cnn.model_file().to_json();
    if std::env::var_os("PROTOBRAIN_BLESS").is_some() {
        std::fs::write(SHIPPED_CNN, &text).unwrap();
    }
    let shipped = std::fs::read_to_string(SHIPPED_CNN).unwrap_or_default();
    assert!(
        shipped == text,
        "data/digits-cnn.json differs from a fresh training of the default CNN: training is not \
         deterministic on this machine, or training changed (then rewrite the file with \
         PROTOBRAIN_BLESS=1 cargo test -p protobrain --test nn_digits)"
    );
    let back = ModelFile::from_json(&text, "digits-cnn.json").unwrap();
    assert_eq!(back.model, cnn.quantized);
}
