//! `protobrain verify`: a shallow proof on the emitted core, a planted fault in a given
//! Verilog file, and one-line errors with exit code 2 for bad input.

mod common;

use common::protobrain;

#[test]
fn verify_proves_a_shallow_bound_and_catches_a_mutated_file() {
    let ok = protobrain(&["verify", "--depth", "4", "--property", "axi-out", "--property", "framing"]);
    assert_eq!(ok.code, Some(0), "{}{}", ok.stdout, ok.stderr);
    let lines: Vec<&str> = ok.stdout.lines().collect();
    assert!(
        lines[0].starts_with("verify DIM 2 (2x2 PEs), 4 scratchpad rows, 4 accumulator rows"),
        "{}",
        ok.stdout
    );
    assert!(lines[0].ends_with("SYNC bound 23 cycles"), "{}", ok.stdout);
    assert!(lines[1].starts_with("axi-out: proven for every depth (BMC to 4, 4-induction)"), "{}", ok.stdout);
    assert!(lines[2].starts_with("framing: proven to depth 4 "), "{}", ok.stdout);
    assert_eq!(lines[3], "all 2 properties hold");

    // a core that drops a response word when the host stalls
    let dir = tempfile::tempdir().unwrap();
    let core = dir.path().join("core.v");
    let emitted = protobrain(&[
        "emit",
        "--dim",
        "2",
        "--scratch-rows",
        "4",
        "--acc-rows",
        "4",
        "-o",
        core.to_str().unwrap(),
    ]);
    assert_eq!(emitted.code, Some(0), "{}", emitted.stderr);
    let text = std::fs::read_to_string(&core).unwrap();
    assert_eq!(text.matches("sent = out_valid && out_ready;").count(), 1);
    std::fs::write(&core, text.replace("sent = out_valid && out_ready;", "sent = out_valid;")).unwrap();
    let bad = protobrain(&[
        "verify",
        "--verilog",
        core.to_str().unwrap(),
        "--dim",
        "2",
        "--scratch-rows",
        "4",
        "--acc-rows",
        "4",
        "--depth",
        "6",
        "--property",
        "axi-out",
    ]);
    assert_eq!(bad.code, Some(1), "{}{}", bad.stdout, bad.stderr);
    let line = bad.stdout.lines().nth(1).unwrap();
    assert!(line.starts_with("axi-out: FAILED in cycle "), "{line}");
    let vcd = line.split("counterexample ").nth(1).unwrap().split(" (").next().unwrap();
    assert!(std::path::Path::new(vcd).is_file(), "{line}");
    std::fs::remove_dir_all(std::path::Path::new(vcd).parent().unwrap()).unwrap();
    assert_eq!(bad.stderr, "error: verify: 1 of 1 properties failed\n");
}

#[test]
fn bad_input_is_one_line_with_exit_code_2() {
    let cases: [(&[&str], &str); 4] = [
        (&["verify", "--depth", "0"], "error: --depth: must be in 1..=250, got 0\n"),
        (
            &["verify", "--property", "liveness"],
            "error: --property: unknown property `liveness`: one of axi-out, framing, sync-bound, no-write, cover, sync-tight\n",
        ),
        (&["verify", "--solver", "cvc9"], "error: --solver: unknown solver `cvc9`: yices or z3\n"),
        (&["verify", "--verilog", "no/such/core.v"], "error: no/such/core.v: no such file or directory\n"),
    ];
    for (args, want) in cases {
        let run = protobrain(args);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert_eq!(run.stderr, want, "{args:?}");
        assert!(run.stdout.is_empty(), "{args:?}");
    }
}
