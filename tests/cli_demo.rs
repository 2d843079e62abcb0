//! `protobrain demo`, `--help` and `--version` end to end.

use std::process::{Command, Output};

fn protobrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_protobrain")).args(args).output().expect("run protobrain")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn demo_trains_and_runs_bit_exactly_on_every_backend() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let out = protobrain(&["demo", "--quiet", "--out", out_dir.to_str().unwrap(), "--preset", "ecp5-25k"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    for backend in ["golden device", "native model", "RTL (Verilator)"] {
        let line =
            text.lines().find(|l| l.contains(&format!("int8 {backend}"))).unwrap_or_else(|| panic!("{text}"));
        assert!(line.contains("bit-exact with the host golden model"), "{line}");
        let acc: f64 = line
            .split_whitespace()
            .find(|w| w.ends_with('%'))
            .unwrap()
            .trim_end_matches('%')
            .parse()
            .unwrap();
        assert!(acc >= 90.0, "{line}");
    }
    assert!(text.contains("cycles per inference") && text.contains("latency"), "{text}");
    assert!(text.contains("µJ per inference") && text.contains("energy by component"), "{text}");
    assert!(out_dir.join("model.json").exists());
    // the size sweep's plots, named on the last lines
    let plots =
        text.lines().find(|l| l.trim_start().starts_with("plots: ")).unwrap_or_else(|| panic!("{text}"));
    for file in ["accuracy_vs_hidden.svg", "cycles_vs_dim.svg", "energy_vs_dim.svg"] {
        assert!(plots.contains(file), "{plots}");
        let svg = std::fs::read_to_string(out_dir.join(file)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<path") || svg.contains("<polyline"), "{file}");
    }

    // The report's cycles and MACs are the native model's: run the written model on a fresh
    // native model through the driver and compare with its cycle count and COUNTERS.
    let cycles: u64 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("batch of 500: "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no batch line: {text}"));
    let issued: u64 = text
        .lines()
        .find_map(|l| l.split(" useful MACs of ").nth(1))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no MAC line: {text}"));
    let file = protobrain::nn::ModelFile::load(out_dir.join("model.json")).unwrap();
    let cfg = spec::Config::preset("ecp5-25k").unwrap();
    let split = protobrain::nn::digits::standard_split(&protobrain::nn::digits::bundled()).unwrap();
    let transport = sim::transport::SimTransport::new(sim::native::NativeSim::new(&cfg));
    let mut dev = driver::Device::open(transport, &cfg).unwrap();
    protobrain::nn::evaluate_on(&file.model, &split.test, &mut dev).unwrap();
    use sim::CycleSim;
    assert_eq!(dev.transport().sim().cycle(), cycles, "the demo's cycles are the native model's");
    assert_eq!(dev.counters().unwrap().macs, issued, "the demo's issued MACs are the COUNTERS' MACs");
}

#[test]
fn demo_rejects_bad_flags_in_one_line() {
    let out = protobrain(&["demo", "--clock", "0", "--no-rtl"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--clock"), "{err}");
}

#[test]
fn version_and_help() {
    let v = stdout(&protobrain(&["--version"]));
    assert_eq!(v.trim(), format!("protobrain {}", env!("CARGO_PKG_VERSION")));

    let help = stdout(&protobrain(&["--help"]));
    for word in ["matmul", "demo", "emit", "mlp", "systolic", "Examples:"] {
        assert!(help.contains(word), "--help lacks {word:?}:\n{help}");
    }
    let help = stdout(&protobrain(&["matmul", "--help"]));
    for flag in [
        "--input",
        "--weights",
        "--bias",
        "--multiplier",
        "--shift",
        "--scale",
        "--relu",
        "--raw",
        "--backend",
        "--output",
        "golden",
    ] {
        assert!(help.contains(flag), "matmul --help lacks {flag}:\n{help}");
    }
}

#[test]
fn no_subcommand_is_a_usage_error() {
    let out = protobrain(&[]);
    assert_eq!(out.status.code(), Some(2));
}
