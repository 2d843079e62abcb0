//! The digits data set: 1797 handwritten digits of 8 x 8 pixels, values 0..16, labels 0..9
//! (`data/digits.csv`, see `data/README.md` for its source and licence).
//!
//! ```text
//!   digits.csv ── load / parse ──► Dataset (pixels u8 N x 64, labels 0..9)
//!                                     │
//!                        split(500, SPLIT_SEED)  (seeded Fisher–Yates, see below)
//!                          ┌──────────┴──────────┐
//!                     train 1297               test 500
//!                          │
//!     inputs()    x_f = pixel / 16   in [0, 1]       (the float model)
//!     inputs_i8() x_q = round(pixel * 127 / 16)      (the device; scale INPUT_SCALE = 1/127 of x_f)
//! ```
//!
//! The CSV has a header `p0,...,p63,label` and one image per line, pixels row-major.

use std::fmt;
use std::path::Path;

use nalgebra::DMatrix;
use thiserror::Error;

use spec::rng::SplitMix64;

/// Pixels per image (8 x 8).
pub const FEATURES: usize = 64;
/// Classes (digits 0..9).
pub const CLASSES: usize = 10;
/// The largest pixel value.
pub const PIXEL_MAX: u8 = 16;
/// Images in `data/digits.csv`.
pub const IMAGES: usize = 1797;
/// Images held out for testing by [`standard_split`].
pub const TEST_SIZE: usize = 500;
/// The seed of [`standard_split`].
pub const SPLIT_SEED: u64 = 2024;
/// The real value of one input LSB for the float inputs `pixel / 16`: `x_q = round(x_f * 127)`.
pub const INPUT_SCALE: f64 = 1.0 / 127.0;

/// The data set as shipped, compiled into the binary (so a demo runs from any directory).
const BUNDLED: &str = include_str!("../../data/digits.csv");

/// A pixel as the device sees it: `round(pixel * 127 / 16)`, rounding half up, in integers
/// (0 -> 0, 8 -> 64, 16 -> 127).
pub fn quantize_pixel(p: u8) -> i8 {
    ((u32::from(p) * 127 + 8) / 16) as i8
}

/// Why the data cannot be read or split. The message names the file (and line).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DataError {
    /// The file cannot be read.
    #[error("{path}: {problem}")]
    Io {
        /// The file as given.
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// A line that is not what it should be (line numbers start at 1, the header is line 1).
    #[error("{path}: line {line}: {problem}")]
    Line {
        /// The file as given.
        path: String,
        /// The line number.
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// A file with a header but no image.
    #[error("{path}: no images after the header")]
    Empty {
        /// The file as given.
        path: String,
    },
    /// A split that asks for more test images than there are (or leaves no training image).
    #[error("cannot hold out {test} test images from {total}: at least one must remain for training")]
    Split {
        /// Test images asked for.
        test: usize,
        /// Images in the data set.
        total: usize,
    },
}

/// Images and labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pixels: DMatrix<u8>,
    labels: Vec<u8>,
}

impl Dataset {
    /// A data set from N x 64 pixels (0..=16) and N labels (0..=9).
    ///
    /// # Panics
    /// If the shapes or values are out of range (the loaders check them with line numbers).
    pub fn new(pixels: DMatrix<u8>, labels: Vec<u8>) -> Self {
        assert_eq!(pixels.ncols(), FEATURES, "an image has {FEATURES} pixels");
        assert_eq!(pixels.nrows(), labels.len(), "one label per image");
        assert!(pixels.iter().all(|p| *p <= PIXEL_MAX), "pixels are 0..={PIXEL_MAX}");
        assert!(labels.iter().all(|l| usize::from(*l) < CLASSES), "labels are 0..{CLASSES}");
        Dataset { pixels, labels }
    }

    /// Images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// No images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// N x 64 pixels, 0..=16, one image per row.
    pub fn pixels(&self) -> &DMatrix<u8> {
        &self.pixels
    }

    /// N labels, 0..=9.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// Float inputs `pixel / 16` in [0, 1] (exact in f32).
    pub fn inputs(&self) -> DMatrix<f32> {
        self.pixels.map(|p| f32::from(p) / f32::from(PIXEL_MAX))
    }

    /// int8 inputs for the device, [`quantize_pixel`] of each pixel.
    pub fn inputs_i8(&self) -> DMatrix<i8> {
        self.pixels.map(quantize_pixel)
    }

    /// The images at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let pixels = DMatrix::from_fn(indices.len(), FEATURES, |r, c| self.pixels[(indices[r], c)]);
        Dataset { pixels, labels: indices.iter().map(|&i| self.labels[i]).collect() }
    }

    /// Images per class.
    pub fn class_counts(&self) -> [usize; CLASSES] {
        let mut counts = [0; CLASSES];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} images of 8x8 pixels (0..16), 10 classes", self.len())
    }
}

/// Read a digits CSV file.
pub fn load(path: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let path = path.as_ref();
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| DataError::Io {
        path: name.clone(),
        problem: match e.kind() {
            std::io::ErrorKind::NotFound => "no such file or directory".into(),
            std::io::ErrorKind::InvalidData => "not a text file (invalid UTF-8)".into(),
            _ => e.to_string(),
        },
    })?;
    parse(&text, &name)
}

/// The data set compiled into the program: `data/digits.csv` as shipped (1797 images).
pub fn bundled() -> Dataset {
    parse(BUNDLED, "data/digits.csv").expect("the bundled data/digits.csv parses (tested)")
}

/// Parse digits CSV text; `name` is used in error messages.
pub fn parse(text: &str, name: &str) -> Result<Dataset, DataError> {
    let err = |line: usize, problem: String| DataError::Line { path: name.to_string(), line, problem };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
    let expected_header: Vec<String> =
        (0..FEATURES).map(|i| format!("p{i}")).chain(std::iter::once("label".to_string())).collect();
    match lines.next() {
        Some((_, header))
            if header.split(',').map(str::trim).eq(expected_header.iter().map(String::as_str)) => {}
        Some((n, header)) => {
            let shown: String = header.chars().take(40).collect();
            return Err(err(n, format!("expected the header p0,p1,...,p63,label, found {shown:?}")));
        }
        None => return Err(err(1, "empty file: expected the header p0,p1,...,p63,label".into())),
    }
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for (n, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if fields.len() != FEATURES + 1 {
            return Err(err(
                n,
                format!(
                    "expected {} comma-separated values (64 pixels and a label), found {}",
                    FEATURES + 1,
                    fields.len()
                ),
            ));
        }
        for (col, field) in fields[..FEATURES].iter().enumerate() {
            match field.parse::<u8>() {
                Ok(p) if p <= PIXEL_MAX => pixels.push(p),
                _ => {
                    return Err(err(n, format!("pixel p{col} must be an integer in 0..=16, found {field:?}")))
                }
            }
        }
        match fields[FEATURES].parse::<u8>() {
            Ok(l) if usize::from(l) < CLASSES => labels.push(l),
            _ => {
                return Err(err(
                    n,
                    format!("label must be an integer in 0..=9, found {:?}", fields[FEATURES]),
                ))
            }
        }
    }
    if labels.is_empty() {
        return Err(DataError::Empty { path: name.to_string() });
    }
    Ok(Dataset { pixels: DMatrix::from_row_slice(labels.len(), FEATURES, &pixels), labels })
}

/// A train/test split, with the row numbers (0-based, data order) each part was taken from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The training images.
    pub train: Dataset,
    /// The test images.
    pub test: Dataset,
    /// Rows of the training images, ascending.
    pub train_rows: Vec<usize>,
    /// Rows of the test images, ascending.
    pub test_rows: Vec<usize>,
}

/// Hold out `test` images: shuffle the row numbers `0..N` with a Fisher–Yates shuffle driven
/// by SplitMix64(`seed`), the first `test` of the shuffled order are the test set, the rest
/// the training set; each part is then sorted back into data order.
pub fn split(data: &Dataset, test: usize, seed: u64) -> Result<Split, DataError> {
    if test >= data.len() {
        return Err(DataError::Split { test, total: data.len() });
    }
    let mut rows: Vec<usize> = (0..data.len()).collect();
    SplitMix64::new(seed).shuffle(&mut rows);
    let (mut test_rows, mut train_rows) = (rows[..test].to_vec(), rows[test..].to_vec());
    test_rows.sort_unstable();
    train_rows.sort_unstable();
    Ok(Split { train: data.subset(&train_rows), test: data.subset(&test_rows), train_rows, test_rows })
}

/// The split every result of the project uses: [`TEST_SIZE`] = 500 test images, seed
/// [`SPLIT_SEED`] (1297 / 500 on the full data set).
pub fn standard_split(data: &Dataset) -> Result<Split, DataError> {
    split(data, TEST_SIZE, SPLIT_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn csv(rows: &[&str]) -> String {
        let header: Vec<String> = (0..64).map(|i| format!("p{i}")).collect();
        let mut s = format!("{},label\n", header.join(","));
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        s
    }

    fn row(pixel: u8, label: &str) -> String {
        let mut v = vec![pixel.to_string(); 64];
        v.push(label.to_string());
        v.join(",")
    }

    #[test]
    fn pixels_quantize_half_up() {
        let q: Vec<i8> = (0..=16).map(quantize_pixel).collect();
        // round(p * 127 / 16): 7 -> 55.56 -> 56, 8 -> 63.5 -> 64, 9 -> 71.44 -> 71, 16 -> 127
        assert_eq!(q[0], 0);
        assert_eq!(q[1], 8);
        assert_eq!(q[7], 56);
        assert_eq!(q[8], 64);
        assert_eq!(q[9], 71);
        assert_eq!(q[16], 127);
        for (p, &v) in q.iter().enumerate() {
            assert!((f64::from(v) - p as f64 * 127.0 / 16.0).abs() <= 0.5);
        }
    }

    #[test]
    fn parses_and_converts() {
        let d = parse(&csv(&[&row(16, "3"), &row(8, "0")]), "t.csv").unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.labels(), [3, 0]);
        assert_eq!(d.inputs()[(0, 5)], 1.0);
        assert_eq!(d.inputs()[(1, 63)], 0.5);
        assert_eq!(d.inputs_i8()[(1, 0)], 64);
        assert_eq!(d.class_counts()[3], 1);
        // CRLF line ends and a trailing blank line are fine
        let crlf = csv(&[&row(1, "9")]).replace('\n', "\r\n") + "\r\n";
        assert_eq!(parse(&crlf, "t.csv").unwrap().labels(), [9]);
    }

    #[test]
    fn errors_name_file_and_line() {
        let bad_pixel = row(17, "1");
        let e = parse(&csv(&[&row(0, "1"), &bad_pixel]), "d.csv").unwrap_err();
        assert_eq!(e.to_string(), "d.csv: line 3: pixel p0 must be an integer in 0..=16, found \"17\"");
        let e = parse(&csv(&[&row(0, "10")]), "d.csv").unwrap_err();
        assert_eq!(e.to_string(), "d.csv: line 2: label must be an integer in 0..=9, found \"10\"");
        let short = row(0, "1").replacen("0,", "", 1);
        let e = parse(&csv(&[&short]), "d.csv").unwrap_err();
        assert_eq!(
            e.to_string(),
            "d.csv: line 2: expected 65 comma-separated values (64 pixels and a label), found 64"
        );
        let e = parse("a,b\n1,2\n", "d.csv").unwrap_err();
        assert!(e.to_string().starts_with("d.csv: line 1: expected the header p0,p1,...,p63,label"), "{e}");
        assert_eq!(
            parse("", "d.csv").unwrap_err().to_string(),
            "d.csv: line 1: empty file: expected the header p0,p1,...,p63,label"
        );
        assert_eq!(parse(&csv(&[]), "d.csv").unwrap_err().to_string(), "d.csv: no images after the header");
        let e = load("/no/such/digits.csv").unwrap_err();
        assert_eq!(e.to_string(), "/no/such/digits.csv: no such file or directory");
    }

    #[test]
    fn bundled_data_and_standard_split() {
        let d = bundled();
        assert_eq!(d.len(), IMAGES);
        // the data set's published class counts (sklearn.datasets.load_digits)
        assert_eq!(d.class_counts(), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]);
        let s = standard_split(&d).unwrap();
        assert_eq!((s.train.len(), s.test.len()), (1297, 500));
        // disjoint and complete
        let mut all: Vec<usize> = s.train_rows.iter().chain(&s.test_rows).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..IMAGES).collect::<Vec<_>>());
        assert_eq!(s.test.pixels().row(0), d.pixels().row(s.test_rows[0]));
        // same seed, same split; another seed, another split
        assert_eq!(standard_split(&d).unwrap().test_rows, s.test_rows);
        assert_ne!(split(&d, 500, SPLIT_SEED + 1).unwrap().test_rows, s.test_rows);
        assert!(split(&d, IMAGES, 1).is_err());
    }
}
