//! The trained float model: a chain of [`FloatLayer`]s, ReLU between them, raw logits out.
//!
//! ```text
//!   x (M x 64, f32) ─► [W0 b0 ReLU] ─► [W1 b1 ReLU] ─► ... ─► [WL bL] ─► logits (M x 10) ─► argmax
//! ```
//!
//! Evaluation uses [`FloatLayer::forward`] from `driver::quant`, the same sequential loop the
//! quantiser calibrates with, so the float accuracy and the calibration see the same numbers.

use driver::quant::FloatLayer;
use nalgebra::DMatrix;

use super::digits::Dataset;

/// A float MLP: hidden layers with ReLU, a last layer without.
#[derive(Debug, Clone, PartialEq)]
pub struct FloatMlp {
    layers: Vec<FloatLayer>,
}

impl FloatMlp {
    /// An MLP from its layers.
    ///
    /// # Panics
    /// If there is no layer, a bias has the wrong length, consecutive layers do not chain, or
    /// the ReLU flags are not "every layer but the last".
    pub fn new(layers: Vec<FloatLayer>) -> Self {
        assert!(!layers.is_empty(), "an MLP needs at least one layer");
        for (i, l) in layers.iter().enumerate() {
            assert_eq!(l.bias.len(), l.n(), "layer {i}: one bias per output");
            assert_eq!(l.relu, i + 1 < layers.len(), "layer {i}: ReLU on every layer but the last");
            if i > 0 {
                assert_eq!(l.k(), layers[i - 1].n(), "layer {i}: K must equal the previous layer's N");
            }
        }
        FloatMlp { layers }
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[FloatLayer] {
        &self.layers
    }

    /// The widths, input first: e.g. `[64, 32, 10]`.
    pub fn widths(&self) -> Vec<usize> {
        std::iter::once(self.layers[0].k()).chain(self.layers.iter().map(FloatLayer::n)).collect()
    }

    /// Weights and biases.
    pub fn parameters(&self) -> usize {
        self.layers.iter().map(|l| l.k() * l.n() + l.n()).sum()
    }

    /// Logits for M x K float inputs.
    ///
    /// # Panics
    /// If `x` does not have K columns.
    pub fn logits(&self, x: &DMatrix<f32>) -> DMatrix<f32> {
        let mut a = x.clone();
        for l in &self.layers {
            a = l.forward(&a).expect("inputs must have one column per input of the first layer");
        }
        a
    }

    /// The predicted class of each row of `x` (the first largest logit).
    pub fn predict(&self, x: &DMatrix<f32>) -> Vec<usize> {
        argmax_rows(&self.logits(x))
    }

    /// The fraction of `data` classified correctly, in [0, 1].
    pub fn accuracy(&self, data: &Dataset) -> f64 {
        accuracy(&self.predict(&data.inputs()), data.labels())
    }

    /// True if every weight and bias has the same bits as in `other` (stricter than `==`,
    /// which calls 0.0 and -0.0 equal).
    pub fn bit_identical(&self, other: &FloatMlp) -> bool {
        let bits = |m: &FloatMlp| -> Vec<u32> {
            m.layers
                .iter()
                .flat_map(|l| l.weights.iter().chain(l.bias.iter()).map(|v| v.to_bits()).collect::<Vec<_>>())
                .collect()
        };
        self.widths() == other.widths() && bits(self) == bits(other)
    }
}

/// The index of the first largest value of each row (the predicted class of each logit row).
pub fn argmax_rows(logits: &DMatrix<f32>) -> Vec<usize> {
    (0..logits.nrows())
        .map(|r| {
            let row = logits.row(r);
            (1..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best })
        })
        .collect()
}

/// The fraction of `predictions` equal to `labels`, in [0, 1] (0 for no images).
pub fn accuracy(predictions: &[usize], labels: &[u8]) -> f64 {
    assert_eq!(predictions.len(), labels.len(), "one prediction per label");
    if labels.is_empty() {
        return 0.0;
    }
    let correct = predictions.iter().zip(labels).filter(|(p, l)| **p == usize::from(**l)).count();
    correct as f64 / labels.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra::DVector;

    #[test]
    fn logits_and_predictions_by_hand() {
        // 2 -> 2 (ReLU) -> 2: h = relu([x0 - x1, x1]), logits = [h0, h1 + 0.5]
        let l0 = FloatLayer {
            weights: DMatrix::from_row_slice(2, 2, &[1.0, 0.0, -1.0, 1.0]),
            bias: DVector::zeros(2),
            relu: true,
        };
        let l1 = FloatLayer {
            weights: DMatrix::identity(2, 2),
            bias: DVector::from_vec(vec![0.0, 0.5]),
            relu: false,
        };
        let m = FloatMlp::new(vec![l0, l1]);
        assert_eq!(m.widths(), [2, 2, 2]);
        assert_eq!(m.parameters(), 12);
        // x = [3 1]: h = [2 1], logits [2 1.5] -> 0 ; x = [1 3]: h = [0 3], logits [0 3.5] -> 1
        let x = DMatrix::from_row_slice(2, 2, &[3.0, 1.0, 1.0, 3.0]);
        assert_eq!(m.logits(&x), DMatrix::from_row_slice(2, 2, &[2.0, 1.5, 0.0, 3.5]));
        assert_eq!(m.predict(&x), [0, 1]);
        assert_eq!(accuracy(&[0, 1, 1, 0], &[0, 1, 0, 0]), 0.75);
        let mut other = m.clone();
        assert!(m.bit_identical(&other));
        other.layers[1].bias[0] = -0.0;
        assert_eq!(m, other, "== calls 0.0 and -0.0 equal");
        assert!(!m.bit_identical(&other), "the bits differ");
    }

    #[test]
    #[should_panic(expected = "ReLU on every layer but the last")]
    fn relu_on_the_last_layer_is_refused() {
        let l = FloatLayer { weights: DMatrix::zeros(2, 2), bias: DVector::zeros(2), relu: true };
        FloatMlp::new(vec![l]);
    }
}
