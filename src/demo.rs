//! `protobrain demo`: a real, small example on what exists today.
//!
//! It builds a seeded random int8 layer, computes it with the golden model
//! (`spec::golden::layer` and `layer_raw`), recomputes every element with a naive triple loop
//! written here (int32 wrapping sums, then `spec::arith::requantize`), and fails if any element
//! differs. The full demo (train a digits MLP, run it on the RTL and the cycle simulators) is
//! future work and the output says so.

use std::fmt::Write as _;

use nalgebra::{DMatrix, DVector};
use spec::arith::requantize;
use spec::Quant;

use crate::cli::DemoArgs;
use crate::error::CliError;

/// Shape of the example layer: X (M, K) x W (K, N); N = 8 is one default-DIM tile.
const M: usize = 4;
const K: usize = 32;
const N: usize = 8;

/// The real scale of the example: maps the typical |acc| of K = 32 random int8 products into
/// int8 without saturating most outputs.
const SCALE: f64 = 1.0 / 512.0;

/// Run the demo; returns the report to print, or an error if the self-check fails.
pub fn run(args: &DemoArgs) -> Result<String, CliError> {
    let mut rng = SplitMix64(args.seed);
    let x = DMatrix::from_fn(M, K, |_, _| rng.next_i8());
    let w = DMatrix::from_fn(K, N, |_, _| rng.next_i8());
    let bias = DVector::from_fn(N, |_, _| (rng.next() % 8192) as i32 - 4096);
    let q = Quant::from_scale(SCALE).map_err(|e| CliError::internal("demo", e.to_string()))?.with_relu(true);

    let shape = |e: spec::ShapeError| CliError::internal("demo", e.to_string());
    let y = spec::golden::layer(&x, &w, &bias, q).map_err(shape)?;
    let raw = spec::golden::layer_raw(&x, &w, &bias).map_err(shape)?;

    // The independent check: a plain triple loop, element by element.
    for m in 0..M {
        for n in 0..N {
            let mut acc = 0i32;
            for k in 0..K {
                acc = acc.wrapping_add(i32::from(x[(m, k)]) * i32::from(w[(k, n)]));
            }
            let want_raw = acc.wrapping_add(bias[n]);
            let want = requantize(acc, bias[n], q);
            if raw[(m, n)] != want_raw || y[(m, n)] != want {
                return Err(CliError::internal(
                    "demo",
                    format!(
                        "golden model disagrees with the naive loop at ({m}, {n}): \
                         acc + b {} vs {want_raw}, y {} vs {want}",
                        raw[(m, n)],
                        y[(m, n)]
                    ),
                ));
            }
        }
    }

    let mut out = String::new();
    let _ = writeln!(
        out,
        "protobrain demo (seed {}): one layer Y = relu(X W + b) on the golden model",
        args.seed
    );
    let _ = writeln!(
        out,
        "  X int8 ({M}, {K}), W int8 ({K}, {N}), b int32 ({N},); requantise M = {}, S = {} \
         (scale {}), ReLU",
        q.multiplier,
        q.shift,
        q.scale()
    );
    let _ = writeln!(out, "  acc + b, row 0: {:?}", raw.row(0).iter().collect::<Vec<_>>());
    let _ = writeln!(out, "  Y,       row 0: {:?}", y.row(0).iter().collect::<Vec<_>>());
    let _ =
        writeln!(out, "  all {} outputs (int8 and int32) equal a naive triple loop: golden model OK", M * N);
    let _ = writeln!(
        out,
        "Not built yet: the complete RTL core, the cycle simulators, the host driver, the FPGA bitstreams \
         and the digits-MLP training demo."
    );
    Ok(out)
}

/// SplitMix64 (Steele, Lea, Flood 2014): a tiny seeded generator, enough for example data.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_i8(&mut self) -> i8 {
        (self.next() >> 56) as u8 as i8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_passes_its_own_check_for_several_seeds() {
        for seed in [0, 1, 2, 12345, u64::MAX] {
            let report = run(&DemoArgs { seed }).unwrap();
            assert!(report.contains("golden model OK"), "{report}");
            assert!(report.contains("Not built yet"), "{report}");
        }
    }

    #[test]
    fn splitmix_matches_the_reference_sequence() {
        // First outputs of SplitMix64 seeded with 0 (from the reference C implementation).
        let mut r = SplitMix64(0);
        assert_eq!(r.next(), 0xe220_a839_7b1d_cdaf);
        assert_eq!(r.next(), 0x6e78_9e6a_a1b9_65f4);
    }
}
