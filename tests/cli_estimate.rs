//! `protobrain estimate` and `protobrain sweep` end to end: the TPU anchor, the JSON schema,
//! the model-file path, a small sweep's files, and one-line errors for bad input.

use std::fs;
use std::path::Path;

use serde_json::Value;

mod common;
use common::*;

fn ok(args: &[&str]) -> String {
    let r = protobrain(args);
    assert_eq!(r.code, Some(0), "protobrain {args:?} failed: {}", r.stderr);
    r.stdout
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn tpu_v1_reports_91_75_peak_tops_at_its_700_mhz() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tpu.json");
    let out =
        ok(&["estimate", "--gemm", "256,256,256", "--preset", "tpu-v1", "--json", path.to_str().unwrap()]);
    assert!(out.contains("clock 700 MHz"), "{out}");
    assert!(out.contains("(91.75 TOPS peak)"), "{out}");
    let v = json(&path);
    let peak = v["peak_tops"].as_f64().unwrap();
    assert_eq!(format!("{peak:.2}"), "91.75");
    assert_eq!(v["clock_mhz"].as_f64(), Some(700.0));
    assert_eq!(v["config"]["dim"].as_u64(), Some(256));
    // one fold of 256 rows: the MATMUL alone is 256 + 2·DIM cycles
    assert_eq!(v["compute_cycles"].as_u64(), Some(256 + 512));
}

/// Every documented field is there with its type, and the numbers hold together.
#[test]
fn json_schema_has_the_documented_fields_and_types() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.json");
    let p = path.to_str().unwrap();
    ok(&[
        "estimate",
        "--gemm",
        "100,20,12",
        "--dim",
        "4",
        "--clock",
        "50",
        "--link-words-per-cycle",
        "0.5",
        "--json",
        p,
    ]);
    let v = json(&path);
    for field in [
        "cycles",
        "compute_cycles",
        "weight_stream_cycles",
        "physical_limit_cycles",
        "pipelined_model_cycles",
        "scalesim_cycles",
        "link_bound_cycles",
        "roofline_cycles",
        "macs",
        "macs_issued",
        "words_in",
        "words_out",
    ] {
        assert!(v[field].is_u64(), "{field}: {}", v[field]);
    }
    for field in [
        "utilization",
        "compute_utilization",
        "weight_stream_utilization",
        "peak_tops",
        "achieved_tops",
        "ops_per_s",
        "time_s",
        "energy_pj",
        "energy_per_inference_pj",
        "inferences_per_s",
        "power_w",
        "compute_power_w",
        "tops_per_w",
        "clock_mhz",
        "link_words_per_cycle",
    ] {
        assert!(v[field].is_f64(), "{field}: {}", v[field]);
    }
    assert!(v["bound"].is_string() && v["tech"].is_string() && v["plan"].is_string());
    let parts = ["array", "scratchpad", "accumulators", "activation", "io", "control", "static"];
    let e = &v["energy_breakdown_pj"];
    let sum: f64 =
        parts.iter().map(|k| e[k].as_f64().unwrap_or_else(|| panic!("energy_breakdown_pj.{k}"))).sum();
    assert!((sum - v["energy_pj"].as_f64().unwrap()).abs() < 1e-6 * sum);
    let b = &v["cycle_breakdown"];
    let exposed: u64 =
        b["commands"].as_object().unwrap().values().map(|c| c["exposed_cycles"].as_u64().unwrap()).sum();
    let total = b["array_issue"].as_u64().unwrap() + b["link_wait"].as_u64().unwrap() + exposed;
    assert_eq!(total, v["cycles"].as_u64().unwrap());
    for cmd in ["matmul", "load_weights", "write_act", "activate", "read_act", "sync"] {
        assert!(b["commands"][cmd]["count"].as_u64().unwrap() >= 1, "{cmd}");
    }
    assert_eq!(v["macs"].as_u64(), Some(100 * 20 * 12));
    assert_eq!(v["workload"]["m"].as_u64(), Some(100));
    assert!(v["activity"]["zero_operand_macs"].is_u64());
    assert!(v["stall_cycles"]["link_wait"].as_u64().unwrap() > 0);
    assert_eq!(v["config"]["dim"].as_u64(), Some(4));
    // the readable table says the same
    let out = ok(&[
        "estimate",
        "--gemm",
        "100,20,12",
        "--dim",
        "4",
        "--clock",
        "50",
        "--link-words-per-cycle",
        "0.5",
    ]);
    let line = out.lines().find(|l| l.trim_start().starts_with("cycles, whole program")).unwrap();
    assert_eq!(line.split_whitespace().nth(3), Some(v["cycles"].to_string().as_str()), "{line}");
}

#[test]
fn a_model_file_drives_an_mlp_estimate() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits-mlp.json");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mlp.json");
    let out = ok(&[
        "estimate",
        "--model",
        model,
        "--batch",
        "50",
        "--tech",
        "28nm",
        "--json",
        path.to_str().unwrap(),
    ]);
    assert!(out.contains("MLP 64-32-10"), "{out}");
    let v = json(&path);
    assert_eq!(v["macs"].as_u64(), Some(50 * (64 * 32 + 32 * 10)));
    assert_eq!(v["workload"]["layers"], serde_json::json!([[64, 32], [32, 10]]));
    assert!(v["tech"].as_str().unwrap().starts_with("28 nm"));
    // raw logits come back over READ_ACC
    assert!(v["cycle_breakdown"]["commands"]["read_acc"]["count"].as_u64().unwrap() >= 1);
}

/// A convolutional model: its GEMMs (a conv2d's M is images·OH·OW), and the whole run's cycles
/// are those of the network on a fresh native model (the host layers cost no device cycles).
#[test]
fn a_cnn_model_estimates_its_device_stages() {
    let model = concat!(env!("CARGO_MANIFEST_DIR"), "/data/digits-cnn.json");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cnn.json");
    let out =
        ok(&["estimate", "--model", model, "--batch", "4", "--dim", "4", "--json", path.to_str().unwrap()]);
    assert!(out.contains("network 8x8x1: conv2d 3x3 1->8, conv2d 3x3/2 8->16, maxpool2d 2x2/2"), "{out}");
    assert!(out.contains("device stage, layers 4..5: dense 64->10"), "{out}");
    let v = json(&path);
    assert_eq!(v["workload"]["gemms"], serde_json::json!([[256, 9, 8], [64, 72, 16], [4, 64, 10]]));
    assert_eq!(v["macs"].as_u64(), Some(256 * 9 * 8 + 64 * 72 * 16 + 4 * 64 * 10));
    assert!(v["cycles"].as_u64() >= v["physical_limit_cycles"].as_u64());

    let net = protobrain::nn::ModelFile::load(model).unwrap().model;
    let cfg = spec::Config::new(4, 1024, 512).unwrap();
    let mut dev =
        driver::Device::open(sim::transport::SimTransport::new(sim::native::NativeSim::new(&cfg)), &cfg)
            .unwrap();
    let mut rng = spec::stimulus::Rng::new(1);
    let x = nalgebra::DMatrix::from_fn(4, 64, |_, _| (rng.next_u64() >> 56) as u8 as i8);
    net.run(&mut dev, &x).unwrap();
    let words = v["words_in"].as_u64().unwrap();
    assert_eq!(dev.stats().words_sent - 1, words, "the same stream, minus the driver's INFO");
}

#[test]
fn zero_inputs_cost_less_energy_than_random_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("r.json"), dir.path().join("z.json"));
    ok(&["estimate", "--gemm", "64,32,32", "--json", a.to_str().unwrap()]);
    ok(&["estimate", "--gemm", "64,32,32", "--zeros", "--json", b.to_str().unwrap()]);
    let (r, z) = (json(&a), json(&b));
    assert_eq!(r["cycles"], z["cycles"]);
    let array = |v: &Value| v["energy_breakdown_pj"]["array"].as_f64().unwrap();
    assert!(array(&z) < array(&r), "{} vs {}", array(&z), array(&r));
}

#[test]
fn a_small_sweep_writes_four_plots_and_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("plots");
    let out = ok(&[
        "sweep",
        "--dims",
        "2,4",
        "--m",
        "8,32",
        "--gemm",
        "32,8,8",
        "--scratch-rows",
        "256",
        "--acc-rows",
        "128",
        "--json",
        dir.path().join("sweep.json").to_str().unwrap(),
        "-o",
        out_dir.to_str().unwrap(),
    ]);
    assert!(out.starts_with("sweep: 8 estimates"), "{out}");
    for name in ["utilization_vs_m.svg", "dim_scaling.svg", "energy_breakdown.svg", "roofline.svg"] {
        let svg = fs::read_to_string(out_dir.join(name)).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"), "{name}");
        assert!(out.contains(name), "{out}");
    }
    let v = json(&dir.path().join("sweep.json"));
    assert_eq!(v["points"].as_array().unwrap().len(), 8);
    assert_eq!(v["gemm"], serde_json::json!([32, 8, 8]));
}

/// Bad input: exit code 2, one line naming the flag or file, nothing written.
#[test]
fn bad_input_is_one_line_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let j = dir.path().join("never.json");
    let js = j.to_str().unwrap();
    let cases: [(&[&str], &str); 8] = [
        (&["estimate", "--gemm", "1,2", "--json", js], "error: --gemm: expected M,K,N"),
        (&["estimate", "--gemm", "4,0,4", "--json", js], "error: --gemm: '0' is not a positive integer"),
        (
            &["estimate", "--gemm", "4,4,4", "--clock", "0", "--json", js],
            "error: --clock: must be a frequency in MHz",
        ),
        (
            &["estimate", "--gemm", "4,4,4", "--link-words-per-cycle", "0", "--json", js],
            "error: --link-words-per-cycle:",
        ),
        (
            &["estimate", "--gemm", "4,4,4", "--tech", "/no/such.toml", "--json", js],
            "error: /no/such.toml: cannot read",
        ),
        (&["estimate", "--model", "/no/model.json", "--json", js], "error: /no/model.json:"),
        (&["estimate", "--gemm", "4,4,4", "--dim", "300", "--json", js], "error: --dim:"),
        (&["sweep", "--dims", "2,x", "-o", js], "error: --dims:"),
    ];
    for (args, want) in cases {
        let r = protobrain(args);
        assert_eq!(r.code, Some(2), "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with(want), "{args:?}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{args:?}: {}", r.stderr);
        assert!(!j.exists());
    }
}

/// `--resident`: the upload is measured apart (every tile stored once: one WRITE_ACT of DIM
/// rows each, then a SYNC), the program sends fewer words than streamed, and both streams are
/// the driver's own (`Network::upload`, `run_resident` on the native model send the same words).
#[test]
fn resident_weights_are_uploaded_once_and_measured_apart() {
    let dir = tempfile::tempdir().unwrap();
    // tiles of DIM 4: ⌈K/4⌉·⌈N/4⌉ per layer (the CNN's GEMMs are 9x8, 72x16, 64x10)
    for (file, batch, tiles) in
        [("digits-mlp.json", 3usize, 16 * 8 + 8 * 3), ("digits-cnn.json", 2, 6 + 72 + 48)]
    {
        let model = format!("{}/data/{file}", env!("CARGO_MANIFEST_DIR"));
        let (streamed, resident) = (dir.path().join("s.json"), dir.path().join("r.json"));
        let b = batch.to_string();
        let args = ["estimate", "--model", &model, "--batch", &b, "--dim", "4", "--scratch-rows", "2048"];
        ok(&[&args[..], &["--json", streamed.to_str().unwrap()]].concat());
        let out = ok(&[&args[..], &["--resident", "--json", resident.to_str().unwrap()]].concat());
        assert!(out.contains("upload of resident weights (once)"), "{out}");
        assert!(out.contains("inferences/s with the weights stored"), "{out}");
        let (s, r) = (json(&streamed), json(&resident));
        assert!(s.get("upload").is_none(), "streamed runs have no upload");
        let up = &r["upload"];
        let stored = up["tiles_stored"].as_u64().unwrap();
        assert_eq!(Some(stored), up["tiles_total"].as_u64(), "{file}: every tile fits half the scratchpad");
        assert_eq!(stored, tiles as u64, "{file}");
        // WRITE_ACT: header, range word, DIM rows of one word; then SYNC (2 words)
        assert_eq!(up["words_in"].as_u64(), Some(stored * (2 + 4) + 2), "{file}");
        assert_eq!(up["words_out"].as_u64(), Some(2), "{file}: the SYNC echo");
        assert!(r["words_in"].as_u64() < s["words_in"].as_u64(), "{file}: no weights cross per inference");
        assert_eq!(r["macs"], s["macs"]);
        let (steady, paid) =
            (r["inferences_per_s"].as_f64().unwrap(), r["inferences_per_s_with_upload"].as_f64().unwrap());
        assert!(paid < steady, "{file}");

        // the same words as the driver sends on the native model
        let net = protobrain::nn::ModelFile::load(&model).unwrap().model;
        let cfg = spec::Config::new(4, 2048, 512).unwrap();
        let mut dev =
            driver::Device::open(sim::transport::SimTransport::new(sim::native::NativeSim::new(&cfg)), &cfg)
                .unwrap();
        let mut rng = spec::stimulus::Rng::new(1);
        let x = nalgebra::DMatrix::from_fn(batch, 64, |_, _| (rng.next_u64() >> 56) as u8 as i8);
        let info = dev.stats().words_sent;
        let placed = net.upload(&mut dev, cfg.scratch_rows() / 2).unwrap();
        let uploaded = dev.stats().words_sent;
        assert_eq!(uploaded - info, up["words_in"].as_u64().unwrap(), "{file}: the upload");
        net.run_resident(&mut dev, &x, &placed).unwrap();
        assert_eq!(dev.stats().words_sent - uploaded, r["words_in"].as_u64().unwrap(), "{file}: the run");
    }
    let r = protobrain(&["estimate", "--topology", "t.csv", "--resident"]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--resident"), "{}", r.stderr);
}
