//! `protobrain emit`: the 32-bit core by default, the wide link with `--lanes`, and one-line
//! errors (exit code 2, no file written) for a bad LANES.

mod common;

use common::protobrain;

#[test]
fn emit_writes_the_wide_link_with_lanes_and_the_32_bit_core_without() {
    let dir = tempfile::tempdir().unwrap();
    let narrow = dir.path().join("narrow.v");
    let wide = dir.path().join("wide.v");
    let one = dir.path().join("one.v");
    let run = |extra: &[&str], out: &std::path::Path| {
        let mut args = vec!["emit", "--dim", "8", "-o", out.to_str().unwrap()];
        args.extend_from_slice(extra);
        protobrain(&args)
    };
    let r = run(&[], &narrow);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let r = run(&["--lanes", "1"], &one);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    let r = run(&["--lanes", "4"], &wide);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("LANES 4"), "{}", r.stdout);
    let (narrow, one, wide) = (
        std::fs::read_to_string(&narrow).unwrap(),
        std::fs::read_to_string(&one).unwrap(),
        std::fs::read_to_string(&wide).unwrap(),
    );
    assert_eq!(narrow, one, "--lanes 1 is the default core, byte for byte");
    assert!(narrow.contains("input wire  [31:0] in_data;"));
    assert!(wide.contains("module protobrain_core("), "the wrapper keeps the top's name");
    assert!(wide.contains("input wire [127:0] in_data") && wide.contains("output wire [127:0] out_data"));
}

#[test]
fn a_bad_lanes_is_refused_naming_the_flag_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("core.v");
    for bad in ["3", "128", "0"] {
        let r = protobrain(&["emit", "--lanes", bad, "-o", out.to_str().unwrap()]);
        assert_eq!(r.code, Some(2), "--lanes {bad}: {}", r.stderr);
        assert!(r.stderr.contains("--lanes") && r.stderr.contains("power of two"), "{}", r.stderr);
        assert!(!out.exists());
    }
}
