//! `.npy` input and output for the CLI, on top of the `npyz` crate.
//!
//! Reading checks everything a user can get wrong before any arithmetic runs and names the file
//! in the error: not a file, not a `.npy` (magic), a malformed header, the wrong dtype (int8 is
//! `|i1`, int32 is `<i4` or `>i4`), the wrong rank, or a file shorter than its header promises.
//! Both memory orders are read correctly: C order (numpy's default, row-major) and Fortran order
//! (`np.asfortranarray`, column-major).
//!
//! Writing is atomic: the array goes to a temporary file in the output's directory, which is
//! renamed over the output only once it is complete, so a failed run never leaves a partial or
//! stale-looking output behind. Outputs are always C order.

use std::fs;
use std::io::Cursor;
use std::path::Path;

use nalgebra::{DMatrix, DVector, Scalar};
use npyz::{DType, NpyFile, NpyHeader, Order, TypeChar, WriterBuilder};

use crate::error::{describe_io, CliError};
use crate::output::write_atomically;

/// The six bytes every `.npy` file starts with.
const MAGIC: &[u8; 6] = b"\x93NUMPY";

/// An element type the CLI reads or writes: an int8 or int32 numpy array.
pub trait Element: npyz::Deserialize + npyz::AutoSerialize + Scalar + Copy + Default {
    /// numpy's name for the type, e.g. `int8`.
    const NAME: &'static str;
    /// Bytes per element.
    const SIZE: u64;
    /// The dtype string(s) accepted, for messages, e.g. `|i1`.
    const DESCR: &'static str;
    /// numpy's kind of the type.
    const KIND: TypeChar = TypeChar::Int;
}

impl Element for i8 {
    const NAME: &'static str = "int8";
    const SIZE: u64 = 1;
    const DESCR: &'static str = "|i1";
}

impl Element for i32 {
    const NAME: &'static str = "int32";
    const SIZE: u64 = 4;
    const DESCR: &'static str = "<i4";
}

impl Element for f32 {
    const NAME: &'static str = "float32";
    const SIZE: u64 = 4;
    const DESCR: &'static str = "<f4";
    const KIND: TypeChar = TypeChar::Float;
}

impl Element for f64 {
    const NAME: &'static str = "float64";
    const SIZE: u64 = 8;
    const DESCR: &'static str = "<f8";
    const KIND: TypeChar = TypeChar::Float;
}

/// An array of any rank >= 1 as a matrix: one row per index of the first axis, the other axes
/// flattened in C order (for images: NHWC rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Rows<T: Scalar> {
    /// The array's shape, as numpy has it.
    pub shape: Vec<usize>,
    /// `shape[0]` rows of `shape[1..].product()` values.
    pub data: DMatrix<T>,
}

/// A `Rows` of int8 or of floats (float32 and float64 are both read as f64).
#[derive(Debug, Clone, PartialEq)]
pub enum AnyRows {
    /// int8 values.
    Int8(Rows<i8>),
    /// float32 or float64 values.
    Float(Rows<f64>),
}

/// Read an int8, float32 or float64 array of rank >= 1 as rows (see [`Rows`]).
pub fn read_rows_any(path: &Path) -> Result<AnyRows, CliError> {
    let bytes = fs::read(path).map_err(|e| CliError::file(path, describe_io(&e)))?;
    let header = parse_header(path, &bytes)?.0;
    match header.dtype() {
        DType::Plain(ts) if ts.type_char() == TypeChar::Float && ts.size_field() == 4 => {
            let r = read_rows::<f32>(path)?;
            Ok(AnyRows::Float(Rows { shape: r.shape, data: r.data.map(f64::from) }))
        }
        DType::Plain(ts) if ts.type_char() == TypeChar::Float && ts.size_field() == 8 => {
            Ok(AnyRows::Float(read_rows::<f64>(path)?))
        }
        DType::Plain(ts) if ts.type_char() == TypeChar::Int && ts.size_field() == 1 => {
            Ok(AnyRows::Int8(read_rows::<i8>(path)?))
        }
        other => Err(CliError::file(
            path,
            format!(
                "expected an int8 (|i1), float32 (<f4) or float64 (<f8) array, found {}",
                describe_dtype(&other)
            ),
        )),
    }
}

/// Read an array of `T` of rank >= 1 as rows (see [`Rows`]); both memory orders.
pub fn read_rows<T: Element>(path: &Path) -> Result<Rows<T>, CliError> {
    let (header, data) = read_array::<T>(path)?;
    if header.shape().is_empty() {
        return Err(CliError::file(path, "expected an array of rank 1 or more, found a scalar"));
    }
    let shape =
        header.shape().iter().map(|&d| to_usize(path, d)).collect::<Result<Vec<usize>, CliError>>()?;
    let rows = shape[0];
    let cols = shape[1..]
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .ok_or_else(|| CliError::file(path, format!("shape {} is too large", fmt_shape(header.shape()))))?;
    let data = match header.order() {
        Order::C => DMatrix::from_row_slice(rows, cols, &data),
        Order::Fortran => {
            // column-major over every axis: element (i0, i1, .., ik) at i0 + d0·(i1 + d1·(..))
            let mut m = DMatrix::from_element(rows, cols, T::default());
            let rest = &shape[1..];
            for c in 0..cols {
                // c is the C-order index over the rest: split it into the rest's indices
                let (mut rem, mut f_index, mut stride) = (c, 0usize, rows);
                let mut idx = vec![0usize; rest.len()];
                for (a, &d) in rest.iter().enumerate().rev() {
                    idx[a] = rem % d;
                    rem /= d;
                }
                for (a, &d) in rest.iter().enumerate() {
                    f_index += idx[a] * stride;
                    stride *= d;
                }
                for r in 0..rows {
                    m[(r, c)] = data[r + f_index];
                }
            }
            m
        }
    };
    Ok(Rows { shape, data })
}

/// Write rows as a C-order array of `shape` (its product must be the matrix's size), atomically.
pub fn write_rows<T: Element>(path: &Path, shape: &[usize], m: &DMatrix<T>) -> Result<(), CliError> {
    debug_assert_eq!(shape.iter().product::<usize>(), m.len());
    write_atomically(path, |out| {
        let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
        let mut writer =
            npyz::WriteOptions::<T>::new().default_dtype().shape(&dims).writer(out).begin_nd()?;
        for r in 0..m.nrows() {
            for c in 0..m.ncols() {
                writer.push(&m[(r, c)])?;
            }
        }
        writer.finish()
    })
}

/// Read a 2-D array of `T` (rows x cols, either memory order) into a matrix.
pub fn read_matrix<T: Element>(path: &Path) -> Result<DMatrix<T>, CliError> {
    let (header, data) = read_array::<T>(path)?;
    let &[rows, cols] = header.shape() else {
        return Err(CliError::file(
            path,
            format!("expected a 2-D array, found shape {}", fmt_shape(header.shape())),
        ));
    };
    let (rows, cols) = (to_usize(path, rows)?, to_usize(path, cols)?);
    Ok(match header.order() {
        Order::C => DMatrix::from_row_slice(rows, cols, &data),
        // Fortran order is column-major, which is nalgebra's own storage order.
        Order::Fortran => DMatrix::from_vec(rows, cols, data),
    })
}

/// Read a 1-D array of `T` into a vector.
pub fn read_vector<T: Element>(path: &Path) -> Result<DVector<T>, CliError> {
    let (header, data) = read_array::<T>(path)?;
    if header.shape().len() != 1 {
        return Err(CliError::file(
            path,
            format!("expected a 1-D array, found shape {}", fmt_shape(header.shape())),
        ));
    }
    Ok(DVector::from_vec(data))
}

/// Write a matrix as a C-order 2-D `.npy` file, atomically (temp file + rename).
pub fn write_matrix<T: Element>(path: &Path, m: &DMatrix<T>) -> Result<(), CliError> {
    write_atomically(path, |out| {
        let mut writer = npyz::WriteOptions::<T>::new()
            .default_dtype()
            .shape(&[m.nrows() as u64, m.ncols() as u64])
            .writer(out)
            .begin_nd()?;
        // C order: row by row.
        for r in 0..m.nrows() {
            for c in 0..m.ncols() {
                writer.push(&m[(r, c)])?;
            }
        }
        writer.finish()
    })
}

/// The header of a `.npy` file's bytes and where its data starts.
fn parse_header(path: &Path, bytes: &[u8]) -> Result<(NpyHeader, usize), CliError> {
    if !bytes.starts_with(MAGIC) {
        return Err(CliError::file(path, "not a .npy file (it does not start with the \\x93NUMPY magic)"));
    }
    let mut cursor = Cursor::new(bytes);
    let header = NpyHeader::from_reader(&mut cursor)
        .map_err(|e| CliError::file(path, format!("malformed .npy header: {e}")))?;
    Ok((header, cursor.position() as usize))
}

/// Read and check one array file: returns its header and its elements in storage order.
fn read_array<T: Element>(path: &Path) -> Result<(NpyHeader, Vec<T>), CliError> {
    let bytes = fs::read(path).map_err(|e| CliError::file(path, describe_io(&e)))?;
    let (header, start) = parse_header(path, &bytes)?;
    check_dtype::<T>(path, &header.dtype())?;

    let data = &bytes[start..];
    let needed = header.len().checked_mul(T::SIZE);
    if needed.is_none_or(|n| n > data.len() as u64) {
        return Err(CliError::file(
            path,
            format!(
                "truncated: shape {} needs {} bytes of data, the file has {}",
                fmt_shape(header.shape()),
                needed.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string()),
                data.len()
            ),
        ));
    }
    let values = NpyFile::with_header(header.clone(), data)
        .into_vec::<T>()
        .map_err(|e| CliError::file(path, format!("cannot read the array data: {e}")))?;
    Ok((header, values))
}

/// Accept exactly a `T` dtype (any byte order); otherwise say what was found.
fn check_dtype<T: Element>(path: &Path, dtype: &DType) -> Result<(), CliError> {
    if let DType::Plain(ts) = dtype {
        if ts.type_char() == T::KIND && ts.size_field() == T::SIZE {
            return Ok(());
        }
    }
    Err(CliError::file(
        path,
        format!("expected {} ({}) array, found {}", T::NAME, T::DESCR, describe_dtype(dtype)),
    ))
}

/// numpy's name for a dtype plus its type string, e.g. `float64 (<f8)`.
fn describe_dtype(dtype: &DType) -> String {
    let DType::Plain(ts) = dtype else {
        return format!("a structured dtype {}", dtype.descr());
    };
    let bits = ts.size_field() * 8;
    let name = match ts.type_char() {
        TypeChar::Bool => "bool".to_string(),
        TypeChar::Int => format!("int{bits}"),
        TypeChar::Uint => format!("uint{bits}"),
        TypeChar::Float => format!("float{bits}"),
        TypeChar::Complex => format!("complex{bits}"),
        TypeChar::TimeDelta => "timedelta64".to_string(),
        TypeChar::DateTime => "datetime64".to_string(),
        TypeChar::ByteStr => "bytes".to_string(),
        TypeChar::UnicodeStr => "str".to_string(),
        TypeChar::Object => "object".to_string(),
        _ => "raw bytes".to_string(),
    };
    format!("{name} ({ts})")
}

/// A shape the way numpy prints it: `(3,)`, `(2, 3)`, `()`.
fn fmt_shape(shape: &[u64]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!("({})", shape.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
    }
}

fn to_usize(path: &Path, n: u64) -> Result<usize, CliError> {
    usize::try_from(n)
        .map_err(|_| CliError::file(path, format!("dimension {n} is too large for this machine")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_print_like_numpy() {
        assert_eq!(fmt_shape(&[]), "()");
        assert_eq!(fmt_shape(&[3]), "(3,)");
        assert_eq!(fmt_shape(&[2, 3]), "(2, 3)");
        assert_eq!(fmt_shape(&[2, 3, 4]), "(2, 3, 4)");
    }

    #[test]
    fn dtypes_are_named_like_numpy() {
        let d = |s: &str| DType::parse(&format!("'{s}'")).unwrap();
        assert_eq!(describe_dtype(&d("<f8")), "float64 (<f8)");
        assert_eq!(describe_dtype(&d("|u1")), "uint8 (|u1)");
        assert_eq!(describe_dtype(&d("<i4")), "int32 (<i4)");
        assert_eq!(describe_dtype(&d("|b1")), "bool (|b1)");
        assert!(check_dtype::<i8>(Path::new("x"), &d("|i1")).is_ok());
        assert!(check_dtype::<i32>(Path::new("x"), &d(">i4")).is_ok());
        assert_eq!(
            check_dtype::<i8>(Path::new("W.npy"), &d("<f8")).unwrap_err().to_string(),
            "W.npy: expected int8 (|i1) array, found float64 (<f8)"
        );
    }

    #[test]
    fn round_trip_in_both_orders() {
        let dir = tempfile::tempdir().unwrap();
        let m = DMatrix::from_row_slice(2, 3, &[1i8, -2, 3, -128, 127, 0]);
        let c = dir.path().join("c.npy");
        write_matrix(&c, &m).unwrap();
        assert_eq!(read_matrix::<i8>(&c).unwrap(), m);

        // Fortran order stores column by column: 1, -128, -2, 127, 3, 0.
        let f = dir.path().join("f.npy");
        let mut out = fs::File::create(&f).unwrap();
        let mut w = npyz::WriteOptions::<i8>::new()
            .default_dtype()
            .order(Order::Fortran)
            .shape(&[2, 3])
            .writer(&mut out)
            .begin_nd()
            .unwrap();
        w.extend([1i8, -128, -2, 127, 3, 0]).unwrap();
        w.finish().unwrap();
        assert_eq!(read_matrix::<i8>(&f).unwrap(), m);

        // nothing but the two outputs is left in the directory (no temp files)
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 2);
    }
}
