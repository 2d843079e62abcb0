//! `protobrain estimate --topology` end to end: a small conv file and a GEMM file, the files
//! written and their agreement, the warning for extra columns, and one-line errors (exit 2)
//! for bad rows, a layer too large for memory, and output flags without a topology.

use std::fs;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

mod common;
use common::*;

const CONV: &str = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, \
                    Num Filter, Strides,\n conv_a , 10, 10, 3, 3, 2, 6, 1,\n\n,,,,,,,,\nconv_b,9,9,3,3,3,5,2,\nfc, 1, 1, 1, 1, 20, 7, 1";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

#[test]
fn a_conv_topology_prints_a_table_and_writes_json_csv_and_svg_with_the_same_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let topo = write(dir.path(), "net.csv", CONV);
    let (json, csv, svg) = (dir.path().join("r.json"), dir.path().join("r.csv"), dir.path().join("r.svg"));
    let r = protobrain(&[
        "estimate",
        "--topology",
        &topo,
        "--dim",
        "4",
        "--scratch-rows",
        "256",
        "--acc-rows",
        "128",
        "--json",
        json.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stderr.is_empty(), "no warning, no progress bar off a terminal: {}", r.stderr);
    assert!(r.stdout.contains("3 layers on DIM 4"), "{}", r.stdout);
    for name in ["conv_a", "conv_b", "fc", "total"] {
        assert!(r.stdout.lines().any(|l| l.starts_with(name)), "{name} row missing: {}", r.stdout);
    }
    let v: Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap();
    let layers = v["layers"].as_array().unwrap();
    // conv_a: 8x8 outputs, K = 3·3·2; conv_b: ⌈(9 − 3 + 2)/2⌉ = 4 → 16 rows, K = 27; fc: 1 x 20 x 7
    let mkn: Vec<(u64, u64, u64)> = layers
        .iter()
        .map(|l| (l["m"].as_u64().unwrap(), l["k"].as_u64().unwrap(), l["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(mkn, vec![(64, 18, 6), (16, 27, 5), (1, 20, 7)]);
    for l in layers {
        for field in [
            "name",
            "m",
            "k",
            "n",
            "macs",
            "cycles",
            "compute_cycles",
            "physical_limit_cycles",
            "scalesim_cycles",
            "utilization",
            "compute_utilization",
            "words_in",
            "words_out",
            "energy_pj",
            "bound",
        ] {
            assert!(!l[field].is_null(), "{field} missing in {l}");
        }
        assert!(l["cycles"].as_u64() >= l["physical_limit_cycles"].as_u64(), "{l}");
    }
    let total = &v["total"];
    let sum = |f: &str| layers.iter().map(|l| l[f].as_u64().unwrap()).sum::<u64>();
    for f in ["cycles", "compute_cycles", "macs", "scalesim_cycles", "physical_limit_cycles", "words_in"] {
        assert_eq!(total[f].as_u64(), Some(sum(f)), "{f}");
    }
    assert_eq!(total["layers"].as_u64(), Some(3));
    let total_line = r.stdout.lines().find(|l| l.starts_with("total")).unwrap();
    assert!(total_line.contains(&total["cycles"].as_u64().unwrap().to_string()), "{total_line}");

    // the CSV: SCALE-Sim's COMPUTE_REPORT columns first, the JSON's numbers
    let text = fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with(
        "LayerID,Total Cycles,Stall Cycles,Overall Util %,Mapping Efficiency %,Compute Util %,"
    ));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 3);
    for (i, (row, l)) in rows.iter().zip(layers).enumerate() {
        assert_eq!(row[0], i.to_string());
        assert_eq!(row[1], l["cycles"].as_u64().unwrap().to_string());
        let stall = l["cycles"].as_u64().unwrap() - l["compute_cycles"].as_u64().unwrap();
        assert_eq!(row[2], stall.to_string());
        assert_eq!(row[3].parse::<f64>().unwrap(), 100.0 * l["utilization"].as_f64().unwrap());
        assert_eq!(row[5].parse::<f64>().unwrap(), 100.0 * l["compute_utilization"].as_f64().unwrap());
        assert_eq!(row[6], l["name"].as_str().unwrap());
        assert_eq!(row[16].parse::<f64>().unwrap(), l["energy_pj"].as_f64().unwrap());
    }
    let svg = fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("conv_b") && svg.contains("cycles per layer"));
}

#[test]
fn gemm_topologies_name_extra_columns_in_one_warning() {
    let dir = tempfile::tempdir().unwrap();
    let topo = write(
        dir.path(),
        "g.csv",
        "Layer, M, N, K, Sparsity, Notes,\nqkv, 12, 24, 8, 0.5, x,\nout,12,8,24\n",
    );
    let r = protobrain(&["estimate", "--topology", &topo, "--dim", "4"]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert_eq!(r.stderr, format!("warning: {topo}: ignoring the extra columns 'Sparsity', 'Notes'\n"));
    // qkv: M 12, K 8, N 24 (the file's order is M, N, K)
    let row = r.stdout.lines().find(|l| l.starts_with("qkv")).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..5], ["12", "8", "24", &(12 * 8 * 24).to_string()]);
}

#[test]
fn bad_input_is_one_line_and_exit_2_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let bad = write(dir.path(), "bad.csv", "Layer, M, N, K\na, 1, 2, 3\n\nb, 4, five, 6\n");
    let r = protobrain(&["estimate", "--topology", &bad, "--json", json.to_str().unwrap()]);
    assert_eq!(r.code, Some(2));
    assert_eq!(r.stderr, format!("error: {bad}: line 4, field 'N': 'five' is not a positive integer\n"));
    assert!(!json.exists());

    let missing = dir.path().join("none.csv");
    let r = protobrain(&["estimate", "--topology", missing.to_str().unwrap()]);
    assert_eq!(r.code, Some(2));
    assert!(r.stderr.ends_with("cannot read the topology: no such file or directory\n"), "{}", r.stderr);

    // --csv and --svg belong to --topology
    let csv = dir.path().join("x.csv");
    let r = protobrain(&["estimate", "--gemm", "4,4,4", "--csv", csv.to_str().unwrap()]);
    assert_eq!(r.code, Some(2));
    assert_eq!(r.stderr, "error: --csv: is a per-layer report: it needs --topology FILE.csv\n");
    assert!(!csv.exists());
    let r = protobrain(&["estimate", "--gemm", "4,4,4", "--topology", &bad]);
    assert_eq!(r.code, Some(2));
}

#[test]
fn a_layer_too_large_for_memory_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let topo = write(dir.path(), "big.csv", "Layer, M, N, K\nsmall, 4, 4, 4\nhuge, 100000, 100000, 100000\n");
    let out = Command::new(env!("CARGO_BIN_EXE_protobrain"))
        .args(["estimate", "--topology", &topo, "--json", json.to_str().unwrap()])
        .env("PROTOBRAIN_MEMORY_LIMIT", "1G")
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("error: {topo}: layer 'huge' (line 3): workload: ")), "{stderr}");
    assert!(stderr.contains("more than the limit of 1.0 GiB"), "{stderr}");
    assert!(!json.exists());
}

/// `sweep --topology` over DIMs, as one run and as shards merged: the same files, byte for byte;
/// a missing or repeated shard and a bad `--shard` are one-line errors.
#[test]
fn a_topology_sweep_in_shards_merges_to_the_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let topo = write(dir.path(), "net.csv", CONV);
    let d = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let base = [
        "sweep",
        "--topology",
        topo.as_str(),
        "--dims",
        "2,4,8",
        "--scratch-rows",
        "256",
        "--acc-rows",
        "128",
    ];
    let r = protobrain(&[&base[..], &["-o", &d("whole")]].concat());
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    assert!(r.stdout.contains("9 of 9 (DIM x layer) estimates"), "{}", r.stdout);
    for i in 0..4 {
        let shard = format!("{i}/4");
        let r = protobrain(&[&base[..], &["--shard", &shard, "-o", &d("shards")]].concat());
        assert_eq!(r.code, Some(0), "{}", r.stderr);
    }
    let r = protobrain(&["sweep", "merge", &d("shards"), "-o", &d("merged")]);
    assert_eq!(r.code, Some(0), "{}", r.stderr);
    for f in ["topology-sweep.json", "topology-sweep.csv"] {
        let whole = fs::read(dir.path().join("whole").join(f)).unwrap();
        assert_eq!(whole, fs::read(dir.path().join("merged").join(f)).unwrap(), "{f}");
    }
    // the JSON holds one topology report per DIM, with the per-layer fields
    let json: Value =
        serde_json::from_slice(&fs::read(dir.path().join("whole/topology-sweep.json")).unwrap()).unwrap();
    let reports = json["reports"].as_array().unwrap();
    assert_eq!(reports.len(), 3);
    assert_eq!(reports[2]["config"]["dim"], 8);
    assert_eq!(reports[0]["layers"].as_array().unwrap().len(), 3);

    // a missing shard: one line, nothing written
    fs::remove_file(dir.path().join("shards/shard-2-of-4.json")).unwrap();
    let r = protobrain(&["sweep", "merge", &d("shards"), "-o", &d("bad")]);
    assert_eq!(r.code, Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("shard 2/4 is missing") && r.stderr.lines().count() == 1, "{}", r.stderr);
    assert!(!dir.path().join("bad/topology-sweep.json").exists());
    let one = d("shards/shard-0-of-4.json");
    let r = protobrain(&["sweep", "merge", &one, &one, "-o", &d("bad")]);
    assert!(r.code == Some(2) && r.stderr.contains("given twice"), "{}", r.stderr);
    for bad in ["4/4", "1", "a/2", "0/0"] {
        let r = protobrain(&[&base[..], &["--shard", bad, "-o", &d("bad")]].concat());
        assert!(r.code == Some(2) && r.stderr.contains("--shard"), "{bad}: {}", r.stderr);
    }
}
