//! Programs are data: saved as JSON and replayed, exported as the exact word stream, and a
//! run's transcript replays on a fresh device to the same answers.

use driver::{compile_layer, compile_mlp, Device, GoldenTransport, Layer, OutputKind, Program, Recorder};
use nalgebra::{DMatrix, DVector};
use spec::{Config, GoldenDevice, Quant};

fn layer(k: usize, n: usize, seed: i32) -> Layer {
    let w = DMatrix::from_fn(k, n, |r, c| ((r as i32 * 37 + c as i32 * 11 + seed) % 256 - 128) as i8);
    let b = DVector::from_fn(n, |c, _| (c as i32 * 97 + seed) % 3000 - 1500);
    Layer::new(w, b, Quant::new(7, 8, true).unwrap()).unwrap()
}

fn x(m: usize, k: usize) -> DMatrix<i8> {
    DMatrix::from_fn(m, k, |r, c| ((r * 29 + c * 3) % 256) as u8 as i8)
}

#[test]
fn a_saved_program_replays_to_the_same_result() {
    let cfg = Config::new(4, 32, 16).unwrap();
    let (xs, l) = (x(19, 13), layer(13, 10, 3));
    let p = compile_layer(&cfg, &xs, &l, OutputKind::Int8).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("layer.json");
    p.save_json(&json).unwrap();
    let loaded = Program::load_json(&json).unwrap();
    assert_eq!(loaded, p);
    let mut dev = Device::open(GoldenTransport::new(cfg), &cfg).unwrap();
    let y = dev.run(&loaded).unwrap();
    assert_eq!(
        y.output().as_int8().unwrap(),
        &spec::golden::layer(&xs, l.weights(), l.bias(), l.quant()).unwrap()
    );
}

#[test]
fn the_bin_is_what_crosses_the_wire() {
    let cfg = Config::new(3, 16, 8).unwrap();
    let p = compile_layer(&cfg, &x(10, 8), &layer(8, 7, 1), OutputKind::Raw).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("layer.bin");
    p.save_bin(&bin).unwrap();
    let bytes = std::fs::read(&bin).unwrap();
    let mut dev = Device::open(Recorder::new(GoldenTransport::new(cfg)), &cfg).unwrap();
    let skip = dev.transport().sent.len(); // the INFO of open()
    let out = dev.run(&p).unwrap();
    let sent = &dev.transport().sent[skip..];
    assert_eq!(Program::words_from_bin(&bytes).unwrap(), sent);
    assert_eq!(bytes.len(), 4 * sent.len());
    // the .bin alone, fed to a fresh golden device, gives the same answer words
    let answers = GoldenDevice::run(cfg, sent);
    let received = &dev.transport().received[5..]; // after INFO's 5 words
    assert_eq!(answers, received);
    assert_eq!(out.words_received as usize, received.len());
}

#[test]
fn a_split_mlp_has_no_static_stream_but_its_transcript_replays() {
    let cfg = Config::new(2, 8, 4).unwrap();
    let layers = vec![layer(6, 30, 1), layer(30, 4, 2)];
    let xs = x(7, 6);
    let p = compile_mlp(&cfg, &xs, &layers, OutputKind::Raw).unwrap();
    assert!(p.stats().write_backs > 0);
    assert!(p.words().is_err());
    assert!(p.save_bin(tempfile::tempdir().unwrap().path().join("x.bin")).is_err());
    // JSON still round-trips: write-backs are data too
    assert_eq!(Program::from_json(&p.to_json()).unwrap(), p);
    let mut dev = Device::open(Recorder::new(GoldenTransport::new(cfg)), &cfg).unwrap();
    let out = dev.run(&p).unwrap();
    let rec = dev.into_transport();
    assert_eq!(GoldenDevice::run(cfg, &rec.sent), rec.received);
    let y1 = spec::golden::layer(&xs, layers[0].weights(), layers[0].bias(), layers[0].quant()).unwrap();
    let want = spec::golden::layer_raw(&y1, layers[1].weights(), layers[1].bias()).unwrap();
    assert_eq!(out.output().as_raw().unwrap(), &want);
}

#[test]
fn a_bad_program_file_is_refused_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.json");
    std::fs::write(&path, "{\"config\": 3}").unwrap();
    let e = Program::load_json(&path).unwrap_err();
    assert!(e.to_string().starts_with(&format!("{}: not a protobrain program", path.display())), "{e}");
    let e = Program::load_json(dir.path().join("missing.json")).unwrap_err();
    assert!(e.to_string().contains("missing.json"), "{e}");
}

/// A program run as a stream (each step sent as the compiler makes it) sends the same words and
/// gives the same results as the whole program: random MLPs, some split with write-backs,
/// int8 and raw outputs, memories small enough to chunk.
#[test]
fn a_streamed_program_runs_exactly_as_the_whole_program() {
    let mut rng = spec::stimulus::Rng::new(1515);
    let (mut ran, mut split) = (0, 0);
    for case in 0..40 {
        let dim = 1 + rng.below(6) as usize;
        let cfg = Config::new(
            dim,
            (2 * dim).next_power_of_two() << rng.below(4),
            dim.next_power_of_two() << rng.below(4),
        )
        .unwrap();
        let depth = 1 + rng.below(3) as usize;
        let mut widths = vec![1 + rng.below(20) as usize];
        for _ in 0..depth {
            widths.push(1 + rng.below(20) as usize);
        }
        let layers: Vec<Layer> =
            widths.windows(2).enumerate().map(|(i, w)| layer(w[0], w[1], i as i32 + case)).collect();
        let xs = x(1 + rng.below(40) as usize, widths[0]);
        let kind = if case % 2 == 0 { OutputKind::Int8 } else { OutputKind::Raw };
        let Ok(whole) = compile_mlp(&cfg, &xs, &layers, kind) else { continue };
        let stream = driver::stream_mlp(&cfg, &xs, &layers, kind).unwrap();
        assert_eq!(stream.to_program(), whole, "case {case}");
        let mut a = Device::open(Recorder::new(GoldenTransport::new(cfg)), &cfg).unwrap();
        let mut b = Device::open(Recorder::new(GoldenTransport::new(cfg)), &cfg).unwrap();
        let (ra, rb) = (a.run(&whole).unwrap(), b.run_stream(&stream).unwrap());
        assert_eq!(ra.results, rb.results, "case {case} on {cfg}");
        assert_eq!((ra.words_sent, ra.words_received), (rb.words_sent, rb.words_received), "case {case}");
        assert!(rb.responses.is_empty());
        assert_eq!(a.transport().sent, b.transport().sent, "case {case}");
        assert_eq!(a.transport().received, b.transport().received, "case {case}");
        ran += 1;
        split += usize::from(whole.stats().write_backs > 0);
    }
    assert!(ran >= 30 && split >= 3, "{ran} of 40 compiled, {split} with write-backs");
}
