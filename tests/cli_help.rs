//! The help texts and usage errors agree with the behaviour and the docs.

mod common;

use common::protobrain;

#[test]
fn help_texts_point_to_what_exists() {
    let r = protobrain(&["estimate"]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.contains("--gemm") && r.stderr.contains("--model"), "{}", r.stderr);
    let r = protobrain(&["emit", "--help"]);
    assert!(r.stdout.contains("(docs/design.md;") && r.stdout.contains("--lanes <L>"), "{}", r.stdout);
    let r = protobrain(&["demo", "--help"]);
    assert!(r.stdout.contains("--no-sweep") && !r.stdout.contains("--sweep "), "{}", r.stdout);
    let r = protobrain(&["sweep", "--help"]);
    assert!(r.stdout.contains("[default: out/sweep]"), "{}", r.stdout);
    let r = protobrain(&["matmul", "--help"]);
    assert!(
        r.stdout.contains("PROTOBRAIN_VERILATED_DIR") && r.stdout.contains("delete that"),
        "{}",
        r.stdout
    );
    let r = protobrain(&["run", "--help"]);
    assert!(
        r.stdout.contains("first word in") && r.stdout.contains("last response word out"),
        "{}",
        r.stdout
    );
    // the README shows the same
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    assert!(readme.contains("protobrain sweep [-o DIR (out/sweep)]"));
    assert!(readme.contains("PROTOBRAIN_VERILATED_DIR") && readme.contains("PROTOBRAIN_MEMORY_LIMIT"));
}
