//! The CLI against an independent numpy implementation of DESIGN.md's arithmetic.
//!
//! Writes random `.npy` inputs (odd shapes, K = 1, N = 1, large K, sums that wrap int32, biases
//! at the int32 limits, multipliers and shifts including S = 0 and S = 47, ReLU on and off, raw
//! int32 output), runs `protobrain matmul` on each, then `python3 tests/numpy_reference.py`,
//! which recomputes every output with numpy and compares.
//!
//! numpy is required: `scripts/setup.sh` installs it. If python3 or numpy is missing the test
//! fails and says so; it never passes silently. Set `PROTOBRAIN_PYTHON` to use another
//! interpreter.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use npyz::Order;

mod common;
use common::*;

/// SplitMix64: small, seeded, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in lo..=hi.
    fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
    fn i8(&mut self) -> i8 {
        self.next() as u8 as i8
    }
    fn bool(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

/// The typical |acc| of K products of uniform random int8: sqrt(K * var(x * w)), with
/// var(x * w) = var(x)^2 = 5461.5^2.
fn typical(k: usize) -> i64 {
    (5461.5 * (k as f64).sqrt()) as i64
}

/// A random (M, S) whose scale maps `typical(k)` to about 40, so most int8 outputs land
/// inside the range (neither saturated nor 0) and rounding is exercised.
fn calibrated(rng: &mut Rng, k: usize) -> (u16, u8) {
    let m = rng.range(16_384, 65_535);
    let s = ((m as f64) * typical(k) as f64 / 40.0).log2().round();
    (m as u16, s.clamp(0.0, 47.0) as u8)
}

/// How one case requantises.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Raw,
    Quant { m: u16, s: u8, relu: bool },
}

/// One matmul case: inputs (row-major data) and mode.
struct Case {
    name: String,
    m: usize,
    k: usize,
    n: usize,
    x: Vec<i8>,
    w: Vec<i8>,
    bias: Option<Vec<i32>>,
    mode: Mode,
    /// Store W in Fortran order (the data above stays row-major; it is transposed on write).
    w_fortran: bool,
    /// More flags: the backend and the device configuration.
    extra: Vec<String>,
}

impl Case {
    fn random(rng: &mut Rng, name: &str, m: usize, k: usize, n: usize, mode: Mode) -> Case {
        let x = (0..m * k).map(|_| rng.i8()).collect();
        let w = (0..k * n).map(|_| rng.i8()).collect();
        let bias = rng.bool().then(|| (0..n).map(|_| rng.range(-typical(k), typical(k)) as i32).collect());
        Case { name: name.into(), m, k, n, x, w, bias, mode, w_fortran: false, extra: vec![] }
    }

    /// Write the inputs, run the CLI, and return the manifest line for the reference.
    fn run(&self, dir: &Path) -> String {
        let file = |what: &str| dir.join(format!("{}_{what}.npy", self.name));
        let (xp, wp, bp, yp) = (file("x"), file("w"), file("b"), file("y"));
        write_npy(&xp, &[self.m as u64, self.k as u64], Order::C, &self.x);
        if self.w_fortran {
            let col_major: Vec<i8> = (0..self.n)
                .flat_map(|c| (0..self.k).map(move |r| (r, c)))
                .map(|(r, c)| self.w[r * self.n + c])
                .collect();
            write_npy(&wp, &[self.k as u64, self.n as u64], Order::Fortran, &col_major);
        } else {
            write_npy(&wp, &[self.k as u64, self.n as u64], Order::C, &self.w);
        }
        let s = |p: &PathBuf| p.display().to_string();
        let mut args: Vec<String> =
            ["matmul", "-i", &s(&xp), "-w", &s(&wp), "-o", &s(&yp)].map(String::from).into();
        if let Some(b) = &self.bias {
            write_npy(&bp, &[self.n as u64], Order::C, b);
            args.extend(["-b".into(), s(&bp)]);
        }
        let (mode, mm, ss, relu) = match self.mode {
            Mode::Raw => {
                args.push("--raw".into());
                ("raw", 0, 0, false)
            }
            Mode::Quant { m, s, relu } => {
                args.extend(["--multiplier".into(), m.to_string(), "--shift".into(), s.to_string()]);
                if relu {
                    args.push("--relu".into());
                }
                ("quant", m, s, relu)
            }
        };
        args.extend(self.extra.iter().cloned());
        let out = Command::new(env!("CARGO_BIN_EXE_protobrain")).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "case {}: protobrain {:?} failed: {}",
            self.name,
            args,
            String::from_utf8_lossy(&out.stderr)
        );
        let b = if self.bias.is_some() { s(&bp) } else { "-".into() };
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            self.name,
            s(&xp),
            s(&wp),
            b,
            mode,
            mm,
            ss,
            u8::from(relu),
            s(&yp)
        )
    }
}

/// The cases: fixed edge shapes plus a batch of random ones.
fn cases() -> Vec<Case> {
    let mut rng = Rng(0x5eed_0f9b_1d00);
    let q = |m, s, relu| Mode::Quant { m, s, relu };
    let mut cases = vec![
        Case::random(&mut rng, "small_identity", 2, 3, 4, q(1, 0, false)),
        Case::random(&mut rng, "k1", 5, 1, 7, q(60_000, 23, true)),
        Case::random(&mut rng, "n1", 6, 9, 1, q(65_535, 47, false)),
        Case::random(&mut rng, "n1_raw", 6, 9, 1, Mode::Raw),
        Case::random(&mut rng, "one_by_one", 1, 1, 1, q(3, 9, false)),
        Case::random(&mut rng, "s0_big_m", 4, 16, 8, q(65_535, 0, false)),
        Case::random(&mut rng, "s47", 4, 16, 8, q(65_535, 47, true)),
        Case::random(&mut rng, "m0", 3, 5, 4, q(0, 0, false)),
        Case::random(&mut rng, "big_k", 3, 4096, 5, q(60_000, 29, false)),
        Case::random(&mut rng, "big_k_raw", 3, 4096, 5, Mode::Raw),
    ];
    // Sums that wrap int32: K = 140 000 products of -128 * -128 = 16384 add up to
    // 2 293 760 000 > 2^31 - 1. Row 0 of X and column 0 of W are all -128; the rest random.
    let (m, k, n) = (2, 140_000, 3);
    for (name, mode) in [("wrap_raw", Mode::Raw), ("wrap_quant", q(12_345, 20, false))] {
        let mut c = Case::random(&mut rng, name, m, k, n, mode);
        c.x[..k].fill(-128);
        for r in 0..k {
            c.w[r * n] = -128;
        }
        cases.push(c);
    }
    // Biases at the int32 limits, so acc + b wraps.
    for (name, mode) in [("bias_edges_raw", Mode::Raw), ("bias_edges_quant", q(1, 0, true))] {
        let mut c = Case::random(&mut rng, name, 3, 8, 4, mode);
        c.bias = Some(vec![i32::MAX, i32::MIN, i32::MAX - 5, -1]);
        cases.push(c);
    }
    let mut f = Case::random(&mut rng, "fortran_w", 3, 5, 4, q(55_000, 24, true));
    f.w_fortran = true;
    cases.push(f);
    // Random shapes and quantisations: a fifth raw, a fifth with S = 0 or S = 47 and any M,
    // the rest calibrated so that rounding, not saturation, decides most outputs.
    for i in 0..30 {
        let (m, k, n) = (rng.range(1, 17), rng.range(1, 300), rng.range(1, 17));
        let mode = match rng.range(0, 4) {
            0 => Mode::Raw,
            1 => {
                let s = if rng.bool() { 0 } else { 47 };
                q(rng.range(0, 65_535) as u16, s, rng.bool())
            }
            _ => {
                let (mm, s) = calibrated(&mut rng, k as usize);
                q(mm, s, rng.bool())
            }
        };
        cases.push(Case::random(&mut rng, &format!("random{i}"), m as usize, k as usize, n as usize, mode));
    }
    // The cycle-accurate backends through the driver's tiling: the 100 x 70 x 45 at
    // DIM 8 on the Verilator model of the RTL and the native model, and small memories that
    // force K-, N- and M-tiling.
    let flags = |f: &str| f.split_whitespace().map(String::from).collect::<Vec<_>>();
    for (name, extra) in [
        ("rtl_100x70x45", "--backend rtl --preset default"),
        ("native_100x70x45", "--backend native --preset default"),
    ] {
        let (mm, s) = calibrated(&mut rng, 70);
        let mut c = Case::random(&mut rng, name, 100, 70, 45, q(mm, s, true));
        c.extra = flags(extra);
        cases.push(c);
    }
    for (i, backend) in ["rtl", "native", "rtl", "native"].into_iter().enumerate() {
        let (m, k, n) = (rng.range(1, 40), rng.range(1, 40), rng.range(1, 40));
        let mode = if i % 2 == 0 { Mode::Raw } else { q(calibrated(&mut rng, k as usize).0, 10, true) };
        let mut c =
            Case::random(&mut rng, &format!("{backend}_tiny{i}"), m as usize, k as usize, n as usize, mode);
        c.extra = flags(&format!("--backend {backend} --dim {} --scratch-rows 16 --acc-rows 8", 2 + i));
        cases.push(c);
    }
    cases
}

fn python() -> String {
    std::env::var("PROTOBRAIN_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Run the reference on a manifest; returns (success, stdout, stderr).
fn reference(manifest: &Path) -> (bool, String, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/numpy_reference.py");
    let out = Command::new(python()).arg(&script).arg(manifest).output().unwrap_or_else(|e| {
        panic!("cannot run `{}`: {e}. Run scripts/setup.sh to install python3 and numpy.", python())
    });
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() == Some(3) {
        panic!("{}", stderr.trim());
    }
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

#[test]
fn cli_matches_numpy_reference() {
    let dir = tempfile::tempdir().unwrap();
    let cases = cases();
    let mut manifest = String::new();
    for c in &cases {
        manifest.push_str(&c.run(dir.path()));
    }
    let path = dir.path().join("manifest.tsv");
    fs::write(&path, &manifest).unwrap();

    let (ok, stdout, stderr) = reference(&path);
    println!("{stdout}");
    assert!(ok, "numpy reference disagrees:\n{stderr}\n{stdout}");
    let n = cases.len();
    assert!(stdout.contains(&format!("{n} cases, {n} equal, 0 differ")), "{stdout}");
    // The cases must exercise rounding, not just saturation: at least a third of the int8
    // outputs are strictly inside (-128, 127) and nonzero (measured: 925 of 1962).
    let stat = |key: &str| -> u64 {
        let line = stdout.lines().find(|l| l.starts_with("numpy_reference stats:")).unwrap();
        let field = line.split_whitespace().find_map(|f| f.strip_prefix(&format!("{key}=")));
        field.unwrap_or_else(|| panic!("no {key} in {line}")).parse().unwrap()
    };
    let (int8, interior) = (stat("int8"), stat("interior"));
    assert!(interior * 3 >= int8, "too few interior outputs: {stdout}");
}

#[test]
fn reference_catches_a_wrong_output() {
    // The comparison must be able to fail: corrupt one element of a correct output.
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng(42);
    let case = Case::random(&mut rng, "tampered", 3, 7, 4, Mode::Quant { m: 1, s: 0, relu: false });
    let mut manifest = case.run(dir.path());
    let y = dir.path().join("tampered_y.npy");
    let mut data: Vec<i8> = npyz::NpyFile::new(fs::File::open(&y).unwrap()).unwrap().into_vec().unwrap();
    data[5] = data[5].wrapping_add(1);
    write_npy(&y, &[3, 4], Order::C, &data);
    // and one output of the wrong dtype: a raw run's int32 where int8 is expected
    let wrong = Case::random(&mut rng, "wrong_dtype", 2, 2, 2, Mode::Raw);
    let line = wrong.run(dir.path()).replace("\traw\t0\t0\t0\t", "\tquant\t1\t0\t0\t");
    assert!(line.contains("\tquant\t"), "{line}");
    manifest.push_str(&line);
    let path = dir.path().join("manifest.tsv");
    fs::write(&path, manifest).unwrap();

    let (ok, stdout, stderr) = reference(&path);
    assert!(!ok, "a corrupted output must be reported:\n{stdout}");
    assert!(stderr.contains("MISMATCH tampered: 1 of 12 elements differ ((1, 1):"), "{stderr}");
    assert!(
        stderr.contains("MISMATCH wrong_dtype: output is int32 (2, 2), expected int8 (2, 2)"),
        "{stderr}"
    );
    assert!(stdout.contains("2 cases, 0 equal, 2 differ"), "{stdout}");
}
