//! The golden model on nalgebra: `Y = act(X·W + b)` for any M, K, N.
//!
//! The products are formed in i64 (exact for K < 2^33) and wrapped to int32 at the end, which is
//! the same as accumulating in wrapping int32 (addition is exact modulo 2^32).

use crate::arith::{requantize, LayerQuant, Quant};
use nalgebra::{DMatrix, DVector};
use thiserror::Error;

/// Operands whose shapes do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ShapeError {
    #[error(
        "K mismatch: X is {x_rows}x{x_cols} but W is {w_rows}x{w_cols} (X's columns must equal W's rows)"
    )]
    Inner { x_rows: usize, x_cols: usize, w_rows: usize, w_cols: usize },
    #[error("bias has {bias} elements but W has {n} columns")]
    Bias { bias: usize, n: usize },
    #[error("the quantisation has {scales} per-column scales but W has {n} columns")]
    Scales { scales: usize, n: usize },
}

fn check(x: &DMatrix<i8>, w: &DMatrix<i8>) -> Result<(), ShapeError> {
    if x.ncols() != w.nrows() {
        return Err(ShapeError::Inner {
            x_rows: x.nrows(),
            x_cols: x.ncols(),
            w_rows: w.nrows(),
            w_cols: w.ncols(),
        });
    }
    Ok(())
}

fn check_bias(w: &DMatrix<i8>, bias: &DVector<i32>) -> Result<(), ShapeError> {
    if bias.len() != w.ncols() {
        return Err(ShapeError::Bias { bias: bias.len(), n: w.ncols() });
    }
    Ok(())
}

/// `X · W` with int32 wrap (the accumulator contents).
pub fn matmul(x: &DMatrix<i8>, w: &DMatrix<i8>) -> Result<DMatrix<i32>, ShapeError> {
    check(x, w)?;
    let x64 = x.map(i64::from);
    let w64 = w.map(i64::from);
    Ok((x64 * w64).map(|v| v as i32))
}

/// `X · W + b` with int32 wrap: the raw logits (no requantisation, no ReLU).
pub fn layer_raw(x: &DMatrix<i8>, w: &DMatrix<i8>, bias: &DVector<i32>) -> Result<DMatrix<i32>, ShapeError> {
    check_bias(w, bias)?;
    let mut acc = matmul(x, w)?;
    for (n, mut col) in acc.column_iter_mut().enumerate() {
        col.apply(|v| *v = v.wrapping_add(bias[n]));
    }
    Ok(acc)
}

/// `act(X · W + b)`: requantise, optional ReLU, saturate to int8.
pub fn layer(
    x: &DMatrix<i8>,
    w: &DMatrix<i8>,
    bias: &DVector<i32>,
    q: Quant,
) -> Result<DMatrix<i8>, ShapeError> {
    check_bias(w, bias)?;
    let acc = matmul(x, w)?;
    Ok(DMatrix::from_fn(acc.nrows(), acc.ncols(), |m, n| requantize(acc[(m, n)], bias[n], q)))
}

/// Contract v2's `act(X · W + b)`: per-column (M, S) (or one for all), output zero point Z,
/// ReLU as `max(r, Z)`, saturate to int8. With `LayerQuant::from(q)` it equals [`layer`].
pub fn layer_v2(
    x: &DMatrix<i8>,
    w: &DMatrix<i8>,
    bias: &DVector<i32>,
    q: &LayerQuant,
) -> Result<DMatrix<i8>, ShapeError> {
    check_bias(w, bias)?;
    if !q.fits(w.ncols()) {
        return Err(ShapeError::Scales { scales: q.scales().len(), n: w.ncols() });
    }
    let acc = matmul(x, w)?;
    Ok(DMatrix::from_fn(acc.nrows(), acc.ncols(), |m, n| q.apply(n, acc[(m, n)], bias[n])))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::dot;
    use proptest::prelude::*;

    #[test]
    fn two_by_two_on_paper() {
        // X = [1 -2; 3 4], W = [5 6; -7 8]
        // X·W = [1*5 + -2*-7, 1*6 + -2*8; 3*5 + 4*-7, 3*6 + 4*8] = [19 -10; -13 50]
        let x = DMatrix::from_row_slice(2, 2, &[1i8, -2, 3, 4]);
        let w = DMatrix::from_row_slice(2, 2, &[5i8, 6, -7, 8]);
        let acc = matmul(&x, &w).unwrap();
        assert_eq!(acc, DMatrix::from_row_slice(2, 2, &[19, -10, -13, 50]));
        // b = [1, -100]: acc + b = [20 -110; -12 -50]
        let b = DVector::from_vec(vec![1, -100]);
        assert_eq!(layer_raw(&x, &w, &b).unwrap(), DMatrix::from_row_slice(2, 2, &[20, -110, -12, -50]));
        // M = 3, S = 2 (x0.75), round half up: 15, -82.5 -> -82, -9, -37.5 -> -37
        let q = Quant::new(3, 2, false).unwrap();
        assert_eq!(layer(&x, &w, &b, q).unwrap(), DMatrix::from_row_slice(2, 2, &[15, -82, -9, -37]));
        // with ReLU the negatives become 0
        assert_eq!(
            layer(&x, &w, &b, q.with_relu(true)).unwrap(),
            DMatrix::from_row_slice(2, 2, &[15, 0, 0, 0])
        );
    }

    #[test]
    fn extremes_wrap() {
        // K = 131073 products of -128 * -128 = 16384 each: 2^31 + 16384 wraps negative
        let k = 131_073;
        let x = DMatrix::from_element(1, k, -128i8);
        let w = DMatrix::from_element(k, 1, -128i8);
        let want = (16384i64 * k as i64) as i32;
        assert!(want < 0);
        assert_eq!(matmul(&x, &w).unwrap()[(0, 0)], want);
    }

    #[test]
    fn shape_errors_are_precise() {
        let x = DMatrix::<i8>::zeros(3, 5);
        let w = DMatrix::<i8>::zeros(4, 2);
        assert_eq!(
            matmul(&x, &w).unwrap_err().to_string(),
            "K mismatch: X is 3x5 but W is 4x2 (X's columns must equal W's rows)"
        );
        let w = DMatrix::<i8>::zeros(5, 2);
        let b = DVector::<i32>::zeros(3);
        assert_eq!(layer_raw(&x, &w, &b).unwrap_err().to_string(), "bias has 3 elements but W has 2 columns");
    }

    #[test]
    fn v2_on_paper() {
        // acc + b = [20 -110; -12 -50] as in two_by_two_on_paper
        let x = DMatrix::from_row_slice(2, 2, &[1i8, -2, 3, 4]);
        let w = DMatrix::from_row_slice(2, 2, &[5i8, 6, -7, 8]);
        let b = DVector::from_vec(vec![1, -100]);
        // column 0 x1 (M 1, S 0), column 1 x0.5 (M 1, S 1), Z = -10:
        // [20 - 10, -55 - 10; -12 - 10, -25 - 10] = [10 -65; -22 -35]
        let c = |m, s| crate::arith::ColumnScale::new(m, s).unwrap();
        let q = LayerQuant::per_column(vec![c(1, 0), c(1, 1)], false, -10).unwrap();
        assert_eq!(layer_v2(&x, &w, &b, &q).unwrap(), DMatrix::from_row_slice(2, 2, &[10, -65, -22, -35]));
        // ReLU is max(r, Z): negatives become Z = -10
        let q = LayerQuant::per_column(vec![c(1, 0), c(1, 1)], true, -10).unwrap();
        assert_eq!(layer_v2(&x, &w, &b, &q).unwrap(), DMatrix::from_row_slice(2, 2, &[10, -10, -10, -10]));
        let three = LayerQuant::per_column(vec![c(1, 0); 3], false, 0).unwrap();
        assert_eq!(
            layer_v2(&x, &w, &b, &three).unwrap_err().to_string(),
            "the quantisation has 3 per-column scales but W has 2 columns"
        );
    }

    fn mat(r: usize, c: usize) -> impl Strategy<Value = DMatrix<i8>> {
        proptest::collection::vec(any::<i8>(), r * c).prop_map(move |v| DMatrix::from_row_slice(r, c, &v))
    }

    proptest! {
        #[test]
        fn nalgebra_equals_naive_loops(
            (x, w, b) in (1usize..12, 1usize..40, 1usize..12).prop_flat_map(|(m, k, n)|
                (mat(m, k), mat(k, n), proptest::collection::vec(any::<i32>(), n)))
        ) {
            let b = DVector::from_vec(b);
            let q = Quant::new(12345, 17, true).unwrap();
            let y = layer(&x, &w, &b, q).unwrap();
            for m in 0..x.nrows() {
                for n in 0..w.ncols() {
                    let acc = dot(x.row(m).iter().copied(), w.column(n).iter().copied());
                    prop_assert_eq!(y[(m, n)], requantize(acc, b[n], q));
                }
            }
            prop_assert_eq!(layer_v2(&x, &w, &b, &LayerQuant::from(q)).unwrap(), y);
        }

        #[test]
        fn layer_v2_equals_naive_loops(
            (x, w, b, scales, z, relu) in (1usize..8, 1usize..20, 1usize..8).prop_flat_map(|(m, k, n)|
                (mat(m, k), mat(k, n), proptest::collection::vec(any::<i32>(), n),
                 proptest::collection::vec((any::<u16>(), 0u8..=47), n), any::<i8>(), any::<bool>()))
        ) {
            let b = DVector::from_vec(b);
            let scales: Vec<_> =
                scales.into_iter().map(|(m, s)| crate::arith::ColumnScale::new(m, s).unwrap()).collect();
            let q = LayerQuant::per_column(scales.clone(), relu, z).unwrap();
            let y = layer_v2(&x, &w, &b, &q).unwrap();
            for m in 0..x.nrows() {
                for n in 0..w.ncols() {
                    let acc = dot(x.row(m).iter().copied(), w.column(n).iter().copied());
                    prop_assert_eq!(y[(m, n)], crate::arith::requantize_v2(acc, b[n], scales[n], relu, z));
                }
            }
        }
    }
}
