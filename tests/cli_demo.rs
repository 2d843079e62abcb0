//! `protobrain demo`, `--help` and `--version` end to end.

use std::process::{Command, Output};

fn protobrain(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_protobrain")).args(args).output().expect("run protobrain")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).unwrap()
}

#[test]
fn demo_checks_the_golden_model_and_says_what_is_missing() {
    let out = protobrain(&["demo"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    assert!(text.contains("X int8 (4, 32), W int8 (32, 8), b int32 (8,)"), "{text}");
    assert!(text.contains("golden model OK"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("Not built yet:") && l.contains("RTL") && l.contains("training demo")),
        "{text}"
    );
}

#[test]
fn demo_is_deterministic_per_seed() {
    let a = stdout(&protobrain(&["demo", "--seed", "7"]));
    let b = stdout(&protobrain(&["demo", "--seed", "7"]));
    let c = stdout(&protobrain(&["demo", "--seed", "8"]));
    assert_eq!(a, b);
    assert_ne!(a, c, "a different seed gives different data");
}

#[test]
fn version_and_help() {
    let v = stdout(&protobrain(&["--version"]));
    assert_eq!(v.trim(), format!("protobrain {}", env!("CARGO_PKG_VERSION")));

    let help = stdout(&protobrain(&["--help"]));
    for word in ["matmul", "demo", "systolic", "Examples:"] {
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
