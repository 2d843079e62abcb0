//! `protobrain matmul` end to end: the binary on real `.npy` files.
//!
//! Hand-checked results for every mode, then one test per kind of bad input, each asserting
//! exit code 2, exactly one line on stderr naming the file or flag and the problem, and that no
//! output file was created (or an existing one left untouched).

use std::fs;
use std::path::{Path, PathBuf};

use npyz::{Order, WriterBuilder};

mod common;
use common::*;

/// Read a `.npy` array, checking its dtype string; returns (shape, data in C order).
fn read_npy<T: npyz::Deserialize>(path: &Path, descr: &str) -> (Vec<u64>, Vec<T>) {
    let npy = npyz::NpyFile::new(fs::File::open(path).unwrap()).unwrap();
    assert_eq!(npy.dtype().descr(), format!("'{descr}'"), "dtype of {}", path.display());
    assert_eq!(npy.order(), Order::C, "outputs are C order");
    let shape = npy.shape().to_vec();
    (shape, npy.into_vec().unwrap())
}

/// A temp dir holding the 2x2 example:
///
/// ```text
/// X = | 1 2 |   W = | 5 6 |   X W = | 1*5 + 2*7  1*6 + 2*8 | = | 19 22 |
///     | 3 4 |       | 7 8 |         | 3*5 + 4*7  3*6 + 4*8 |   | 43 50 |
/// b = [100, -200]             X W + b = | 119 -178 |
///                                       | 143 -150 |
/// ```
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        let case = Case { dir };
        write_npy(&case.path("X.npy"), &[2, 2], Order::C, &[1i8, 2, 3, 4]);
        write_npy(&case.path("W.npy"), &[2, 2], Order::C, &[5i8, 6, 7, 8]);
        write_npy(&case.path("B.npy"), &[2], Order::C, &[100i32, -200]);
        case
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }

    /// Run `matmul` with X, W, output Y plus `extra` arguments.
    fn matmul(&self, extra: &[&str]) -> Run {
        let (x, w, y) = (self.p("X.npy"), self.p("W.npy"), self.p("Y.npy"));
        let mut args = vec!["matmul", "--input", &x, "--weights", &w, "--output", &y];
        args.extend_from_slice(extra);
        protobrain(&args)
    }

    fn ok(&self, extra: &[&str]) -> Run {
        let run = self.matmul(extra);
        assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
        assert!(run.stderr.is_empty(), "stderr: {}", run.stderr);
        run
    }

    fn y_i8(&self) -> Vec<i8> {
        let (shape, y) = read_npy::<i8>(&self.path("Y.npy"), "|i1");
        assert_eq!(shape, [2, 2]);
        y
    }

    fn y_i32(&self) -> Vec<i32> {
        let (shape, y) = read_npy::<i32>(&self.path("Y.npy"), "<i4");
        assert_eq!(shape, [2, 2]);
        y
    }

    /// Assert a run failed cleanly: exit 2, one stderr line naming `subject` and `phrase`,
    /// no Y.npy and no temp file left in the directory.
    fn assert_rejected(&self, run: &Run, subject: &str, phrase: &str) {
        assert_eq!(run.code, Some(2), "stderr: {}", run.stderr);
        assert_eq!(run.stderr.lines().count(), 1, "one line expected: {:?}", run.stderr);
        let line = run.stderr.trim_end();
        assert!(line.starts_with("error: "), "{line}");
        assert!(line.contains(subject), "{line:?} should name {subject:?}");
        assert!(line.contains(phrase), "{line:?} should say {phrase:?}");
        assert!(run.stdout.is_empty(), "stdout: {}", run.stdout);
        assert!(!self.path("Y.npy").exists(), "no output may be written on error");
        let leftovers: Vec<_> = fs::read_dir(self.dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("tmp"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left behind: {leftovers:?}");
    }
}

#[test]
fn identity_quant_without_bias() {
    let c = Case::new();
    let run = c.ok(&[]);
    // M = 1, S = 0: Y = X W saturated; all of 19, 22, 43, 50 fit int8.
    assert_eq!(c.y_i8(), [19, 22, 43, 50]);
    assert!(run.stdout.contains("multiplier 1, shift 0 (scale 1)"), "{}", run.stdout);
    assert!(run.stdout.contains("golden backend"), "{}", run.stdout);
}

#[test]
fn bias_then_saturate() {
    let c = Case::new();
    c.ok(&["--bias", &c.p("B.npy")]);
    // [119, -178, 143, -150] saturated to int8: -178 -> -128, 143 -> 127, -150 -> -128.
    assert_eq!(c.y_i8(), [119, -128, 127, -128]);
}

#[test]
fn relu_clamps_negatives_to_zero() {
    let c = Case::new();
    c.ok(&["--bias", &c.p("B.npy"), "--relu"]);
    // max(., 0) then saturate: [119, 0, 143 -> 127, 0].
    assert_eq!(c.y_i8(), [119, 0, 127, 0]);
}

#[test]
fn multiplier_and_shift_round_half_up() {
    let c = Case::new();
    c.ok(&["--bias", &c.p("B.npy"), "--multiplier", "3", "--shift", "2"]);
    // (acc + b) * 3 / 4, rounded half up (add 2, arithmetic shift right by 2):
    //   119 * 3 = 357  -> (357 + 2) >> 2 = 89     (89.25)
    //  -178 * 3 = -534 -> (-532) >> 2 = -133      (-133.5 rounds up to -133), saturates to -128
    //   143 * 3 = 429  -> (431) >> 2 = 107       (107.25)
    //  -150 * 3 = -450 -> (-448) >> 2 = -112     (-112.5 rounds *up* to -112, not to -113)
    assert_eq!(c.y_i8(), [89, -128, 107, -112]);
}

#[test]
fn scale_picks_multiplier_and_shift() {
    let c = Case::new();
    let run = c.ok(&["--bias", &c.p("B.npy"), "--scale", "0.5"]);
    // 0.5 = 32768 / 2^16, the most precise 16-bit multiplier. Halving, rounding half up:
    // 119 / 2 = 59.5 -> 60, -178 / 2 = -89, 143 / 2 = 71.5 -> 72, -150 / 2 = -75.
    assert!(run.stdout.contains("multiplier 32768, shift 16 (scale 0.5)"), "{}", run.stdout);
    assert_eq!(c.y_i8(), [60, -89, 72, -75]);
}

#[test]
fn raw_is_int32_acc_plus_bias() {
    let c = Case::new();
    c.ok(&["--bias", &c.p("B.npy"), "--raw"]);
    assert_eq!(c.y_i32(), [119, -178, 143, -150]);
    // without a bias: plain X W
    c.ok(&["--raw"]);
    assert_eq!(c.y_i32(), [19, 22, 43, 50]);
}

#[test]
fn raw_sum_wraps_at_int32() {
    let c = Case::new();
    write_npy(&c.path("B.npy"), &[2], Order::C, &[i32::MAX, i32::MIN]);
    c.ok(&["--bias", &c.p("B.npy"), "--raw"]);
    // MAX + 19 wraps to MIN + 18; MIN + 22 does not wrap; MAX + 43 -> MIN + 42.
    assert_eq!(c.y_i32(), [i32::MIN + 18, i32::MIN + 22, i32::MIN + 42, i32::MIN + 50]);
    // requantised, the wrapped sums are large negatives and saturate to -128
    c.ok(&["--bias", &c.p("B.npy")]);
    assert_eq!(c.y_i8(), [-128, -128, -128, -128]);
}

#[test]
fn fortran_order_inputs_are_read_correctly() {
    let c = Case::new();
    // The same X and W stored column by column.
    write_npy(&c.path("X.npy"), &[2, 2], Order::Fortran, &[1i8, 3, 2, 4]);
    write_npy(&c.path("W.npy"), &[2, 2], Order::Fortran, &[5i8, 7, 6, 8]);
    c.ok(&[]);
    assert_eq!(c.y_i8(), [19, 22, 43, 50]);
}

#[test]
fn non_square_shapes_and_big_endian_bias() {
    let c = Case::new();
    // X (1, 3) x W (3, 2): [1 2 3] . [[1 -1] [2 -2] [3 -3]] = [14, -14]
    write_npy(&c.path("X.npy"), &[1, 3], Order::C, &[1i8, 2, 3]);
    write_npy(&c.path("W.npy"), &[3, 2], Order::C, &[1i8, -1, 2, -2, 3, -3]);
    // a big-endian int32 bias ('>i4') is still int32
    let mut f = fs::File::create(c.path("B.npy")).unwrap();
    let mut w = npyz::WriteOptions::<i32>::new()
        .dtype(npyz::DType::parse("'>i4'").unwrap())
        .shape(&[2])
        .writer(&mut f)
        .begin_nd()
        .unwrap();
    w.extend([1i32, 1]).unwrap();
    w.finish().unwrap();
    c.ok(&["--bias", &c.p("B.npy"), "--raw"]);
    let (shape, y) = read_npy::<i32>(&c.path("Y.npy"), "<i4");
    assert_eq!(shape, [1, 2]);
    assert_eq!(y, [15, -13]);
}

// ---- bad input: one test per kind -------------------------------------------------------

#[test]
fn missing_file() {
    let c = Case::new();
    fs::remove_file(c.path("W.npy")).unwrap();
    c.assert_rejected(&c.matmul(&[]), "W.npy", "no such file or directory");
}

#[test]
fn not_a_npy_file() {
    let c = Case::new();
    fs::write(c.path("X.npy"), "1,2\n3,4\n").unwrap();
    c.assert_rejected(&c.matmul(&[]), "X.npy", "not a .npy file");
}

#[test]
fn truncated_npy_file() {
    let c = Case::new();
    let bytes = fs::read(c.path("X.npy")).unwrap();
    fs::write(c.path("X.npy"), &bytes[..bytes.len() - 1]).unwrap();
    c.assert_rejected(
        &c.matmul(&[]),
        "X.npy",
        "truncated: shape (2, 2) needs 4 bytes of data, the file has 3",
    );
}

#[test]
fn wrong_dtype_weights() {
    let c = Case::new();
    write_npy(&c.path("W.npy"), &[2, 2], Order::C, &[5.0f64, 6.0, 7.0, 8.0]);
    c.assert_rejected(&c.matmul(&[]), "W.npy", "expected int8 (|i1) array, found float64 (<f8)");
}

#[test]
fn wrong_dtype_input_int32() {
    let c = Case::new();
    write_npy(&c.path("X.npy"), &[2, 2], Order::C, &[1i32, 2, 3, 4]);
    c.assert_rejected(&c.matmul(&[]), "X.npy", "expected int8 (|i1) array, found int32 (<i4)");
}

#[test]
fn wrong_dtype_bias() {
    let c = Case::new();
    write_npy(&c.path("B.npy"), &[2], Order::C, &[100i64, -200]);
    let run = c.matmul(&["--bias", &c.p("B.npy")]);
    c.assert_rejected(&run, "B.npy", "expected int32 (<i4) array, found int64 (<i8)");
}

#[test]
fn wrong_rank_input() {
    let c = Case::new();
    write_npy(&c.path("X.npy"), &[4], Order::C, &[1i8, 2, 3, 4]);
    c.assert_rejected(&c.matmul(&[]), "X.npy", "expected a 2-D array, found shape (4,)");
}

#[test]
fn wrong_rank_bias() {
    let c = Case::new();
    write_npy(&c.path("B.npy"), &[1, 2], Order::C, &[100i32, -200]);
    let run = c.matmul(&["--bias", &c.p("B.npy")]);
    c.assert_rejected(&run, "B.npy", "expected a 1-D array, found shape (1, 2)");
}

#[test]
fn k_mismatch() {
    let c = Case::new();
    write_npy(&c.path("W.npy"), &[3, 2], Order::C, &[1i8, 2, 3, 4, 5, 6]);
    c.assert_rejected(&c.matmul(&[]), "W.npy", "has 3 rows but");
}

#[test]
fn bias_length_mismatch() {
    let c = Case::new();
    write_npy(&c.path("B.npy"), &[3], Order::C, &[1i32, 2, 3]);
    let run = c.matmul(&["--bias", &c.p("B.npy")]);
    c.assert_rejected(&run, "B.npy", "bias has 3 elements but");
}

#[test]
fn shift_out_of_range() {
    let c = Case::new();
    c.assert_rejected(&c.matmul(&["--shift", "48"]), "--shift", "must be in 0..=47, got 48");
    // the edge itself is fine
    c.ok(&["--shift", "47"]);
}

#[test]
fn multiplier_out_of_range() {
    let c = Case::new();
    let run = c.matmul(&["--multiplier", "65536"]);
    c.assert_rejected(&run, "--multiplier", "must be in 0..=65535, got 65536");
    c.ok(&["--multiplier", "65535"]);
}

#[test]
fn scale_out_of_range() {
    let c = Case::new();
    c.assert_rejected(&c.matmul(&["--scale", "-0.5"]), "--scale", "must be a finite number > 0");
    c.assert_rejected(&c.matmul(&["--scale", "1e6"]), "--scale", "too large");
}

#[test]
fn conflicting_scale_and_shift() {
    let c = Case::new();
    let run = c.matmul(&["--scale", "0.5", "--shift", "3"]);
    c.assert_rejected(&run, "--scale", "cannot be combined with --multiplier/--shift");
}

#[test]
fn conflicting_raw_and_relu() {
    let c = Case::new();
    c.assert_rejected(&c.matmul(&["--raw", "--relu"]), "--raw", "cannot be combined with --relu");
    let run = c.matmul(&["--raw", "--multiplier", "2"]);
    c.assert_rejected(&run, "--raw", "cannot be combined with --multiplier");
}

#[test]
fn output_directory_missing() {
    let c = Case::new();
    let (x, w) = (c.p("X.npy"), c.p("W.npy"));
    let y = c.p("no-such-dir/Y.npy");
    let run = protobrain(&["matmul", "-i", &x, "-w", &w, "-o", &y]);
    c.assert_rejected(&run, "no-such-dir/Y.npy", "no-such-dir does not exist");
    assert!(!c.path("no-such-dir").exists());
}

#[test]
fn failed_run_leaves_an_existing_output_untouched() {
    let c = Case::new();
    c.ok(&[]);
    let before = fs::read(c.path("Y.npy")).unwrap();
    write_npy(&c.path("W.npy"), &[2, 2], Order::C, &[5.0f32, 6.0, 7.0, 8.0]);
    let run = c.matmul(&[]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("found float32 (<f4)"), "{}", run.stderr);
    assert_eq!(fs::read(c.path("Y.npy")).unwrap(), before);
}

#[test]
fn unknown_backend_is_a_usage_error() {
    let c = Case::new();
    let run = c.matmul(&["--backend", "fpga"]);
    assert_eq!(run.code, Some(2));
    // clap lists what exists
    assert!(run.stderr.contains("[possible values: golden, native, rtl, serial]"), "{}", run.stderr);
    assert!(!c.path("Y.npy").exists());
}
