//! The array's arithmetic in bulk: the DIM column sums of one row, `out[n] = sum_k x[k] *
//! W[k][n]`, exactly what the systolic array delivers `latency(DIM)` cycles after the row enters
//! (every product fits 16 bits and DIM <= 256 products fit 32 bits, so no sum wraps; the
//! accumulator's wrapping add is [`spec::arith`]'s, done by the caller).
//!
//! Weights are kept widened to `i16`, row-major (`w[k * dim + n]`), so the inner loop over the
//! columns is one vector multiply-add per k. Common DIMs get a const-generic copy (fully
//! unrolled), and on x86-64 with AVX2 every copy is also compiled for AVX2 and picked at run
//! time; the results are identical by construction (integer arithmetic, no wrap).

/// Computes the column sums of one row and writes them to `out` (`add`: adds them, int32
/// wrap, the accumulator's read-modify-write); returns how many of its DIM² products have a
/// zero operand. `x` has `dim` elements, `w` has `dim * dim`, `zw[k]` is the number of zeros in
/// weight row `k`.
pub(crate) type RowKernel = fn(x: &[i8], w: &[i16], zw: &[u32], out: &mut [i32], add: bool) -> u64;

#[inline(always)]
fn sums_const<const D: usize>(x: &[i8], w: &[i16], zw: &[u32], out: &mut [i32], add: bool) -> u64 {
    let x: &[i8; D] = x.try_into().expect("row of DIM elements");
    let zw: &[u32; D] = zw.try_into().expect("DIM zero counts");
    let out: &mut [i32; D] = out.try_into().expect("DIM sums");
    let mut acc = [0i32; D];
    for (k, wr) in w.chunks_exact(D).enumerate().take(D) {
        let xk = i16::from(x[k]);
        for (a, &wv) in acc.iter_mut().zip(wr) {
            // |x * w| <= 128 * 128: exact in 16 bits
            *a += i32::from(xk * wv);
        }
    }
    if add {
        for (o, &a) in out.iter_mut().zip(&acc) {
            *o = o.wrapping_add(a);
        }
    } else {
        *out = acc;
    }
    zero_products(x, zw, D as u32)
}

#[inline(always)]
fn sums_any(x: &[i8], w: &[i16], zw: &[u32], out: &mut [i32], add: bool) -> u64 {
    let d = x.len();
    let mut acc = [0i32; spec::config::MAX_DIM];
    let acc = &mut acc[..d];
    for (&xv, wr) in x.iter().zip(w.chunks_exact(d)) {
        let xk = i16::from(xv);
        for (a, &wv) in acc.iter_mut().zip(wr) {
            *a += i32::from(xk * wv);
        }
    }
    if add {
        for (o, &a) in out.iter_mut().zip(acc.iter()) {
            *o = o.wrapping_add(a);
        }
    } else {
        out.copy_from_slice(acc);
    }
    zero_products(x, zw, d as u32)
}

/// Products with a zero operand: all DIM of a zero activation, else the zero weights of its row.
#[inline(always)]
fn zero_products(x: &[i8], zw: &[u32], dim: u32) -> u64 {
    let total: u32 = x.iter().zip(zw).map(|(&v, &z)| if v == 0 { dim } else { z }).sum();
    u64::from(total)
}

macro_rules! kernels {
    ($($name:ident => $body:expr),* $(,)?) => {
        $(
            fn $name(x: &[i8], w: &[i16], zw: &[u32], out: &mut [i32], add: bool) -> u64 {
                $body(x, w, zw, out, add)
            }
        )*
        #[cfg(target_arch = "x86_64")]
        mod avx2 {
            use super::*;
            $(
                #[target_feature(enable = "avx2")]
                pub(super) unsafe fn $name(x: &[i8], w: &[i16], zw: &[u32], out: &mut [i32], add: bool) -> u64 {
                    $body(x, w, zw, out, add)
                }
            )*
        }
        #[cfg(target_arch = "x86_64")]
        mod avx2_safe {
            $(
                pub(super) fn $name(x: &[i8], w: &[i16], zw: &[u32], out: &mut [i32], add: bool) -> u64 {
                    // SAFETY: only handed out by `select` after `is_x86_feature_detected!("avx2")`.
                    unsafe { super::avx2::$name(x, w, zw, out, add) }
                }
            )*
        }
    };
}

kernels! {
    k2 => sums_const::<2>,
    k3 => sums_const::<3>,
    k4 => sums_const::<4>,
    k8 => sums_const::<8>,
    k16 => sums_const::<16>,
    k32 => sums_const::<32>,
    kany => sums_any,
    o2 => operands_const::<2>,
    o3 => operands_const::<3>,
    o4 => operands_const::<4>,
    o8 => operands_const::<8>,
    o16 => operands_const::<16>,
    o32 => operands_const::<32>,
    oany => operands_only,
}

#[inline(always)]
fn operands_const<const D: usize>(x: &[i8], _w: &[i16], zw: &[u32], _out: &mut [i32], _add: bool) -> u64 {
    let x: &[i8; D] = x.try_into().expect("row of DIM elements");
    let zw: &[u32; D] = zw.try_into().expect("DIM zero counts");
    zero_products(x, zw, D as u32)
}

/// The fastest [`operands_only`] kernel for `dim` on this machine.
pub(crate) fn select_operands(dim: usize) -> RowKernel {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        use avx2_safe as a;
        return match dim {
            2 => a::o2,
            3 => a::o3,
            4 => a::o4,
            8 => a::o8,
            16 => a::o16,
            32 => a::o32,
            _ => a::oany,
        };
    }
    match dim {
        2 => o2,
        3 => o3,
        4 => o4,
        8 => o8,
        16 => o16,
        32 => o32,
        _ => oany,
    }
}

/// The fastest kernel for `dim` on this machine.
pub(crate) fn select(dim: usize) -> RowKernel {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        use avx2_safe as a;
        return match dim {
            2 => a::k2,
            3 => a::k3,
            4 => a::k4,
            8 => a::k8,
            16 => a::k16,
            32 => a::k32,
            _ => a::kany,
        };
    }
    portable(dim)
}

/// The kernel of a model that keeps time alone ([`super::NativeSim::timing_only`]): neither
/// the sums nor the count of products with a zero operand (0); `out` is left as it is.
pub(crate) fn nothing(_x: &[i8], _w: &[i16], _zw: &[u32], _out: &mut [i32], _add: bool) -> u64 {
    0
}

/// The kernel of a model that does not compute the sums ([`super::NativeSim::skip_sums`]): the
/// count of products with a zero operand alone (from the operands, as every kernel counts it);
/// `out` is left as it is.
pub(crate) fn operands_only(x: &[i8], _w: &[i16], zw: &[u32], _out: &mut [i32], _add: bool) -> u64 {
    zero_products(x, zw, x.len() as u32)
}

/// The kernel without CPU-specific code paths (the reference for the tests).
pub(crate) fn portable(dim: usize) -> RowKernel {
    match dim {
        2 => k2,
        3 => k3,
        4 => k4,
        8 => k8,
        16 => k16,
        32 => k32,
        _ => kany,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spec::arith::dot;
    use spec::stimulus::Rng;

    /// Every kernel (selected, portable, generic) equals `spec::arith::dot` column by column,
    /// extremes included, writes or adds (with int32 wrap) as asked, and counts the
    /// zero-operand products one by one.
    #[test]
    fn kernels_match_spec_dot() {
        let mut rng = Rng::new(7);
        for dim in [1usize, 2, 3, 4, 5, 8, 16, 32, 64] {
            for case in 0..50 {
                let x: Vec<i8> = (0..dim).map(|_| if case == 0 { -128 } else { rng.i8() }).collect();
                let w8: Vec<i8> = (0..dim * dim).map(|_| if case == 0 { -128 } else { rng.i8() }).collect();
                let w: Vec<i16> = w8.iter().map(|&v| i16::from(v)).collect();
                let want: Vec<i32> =
                    (0..dim).map(|n| dot(x.iter().copied(), (0..dim).map(|k| w8[k * dim + n]))).collect();
                let zw: Vec<u32> =
                    w8.chunks(dim).map(|r| r.iter().filter(|&&v| v == 0).count() as u32).collect();
                let zeros = (0..dim * dim).filter(|&i| x[i / dim] == 0 || w8[i] == 0).count() as u64;
                let old: Vec<i32> = (0..dim).map(|_| rng.i32()).collect();
                let added: Vec<i32> = old.iter().zip(&want).map(|(&o, &s)| o.wrapping_add(s)).collect();
                for ops in [select_operands(dim), operands_only as RowKernel] {
                    let mut out = old.clone();
                    assert_eq!(
                        ops(&x, &w, &zw, &mut out, false),
                        zeros,
                        "operands-only zero count, DIM {dim}"
                    );
                    assert_eq!(out, old, "an operands-only kernel writes nothing");
                }
                for (name, kern) in
                    [("selected", select(dim)), ("portable", portable(dim)), ("any", kany as RowKernel)]
                {
                    let mut out = vec![i32::MIN; dim];
                    let z = kern(&x, &w, &zw, &mut out, false);
                    assert_eq!(z, zeros, "{name} kernel zero count, DIM {dim}");
                    assert_eq!(out, want, "{name} kernel, DIM {dim}, case {case}");
                    let mut out = old.clone();
                    kern(&x, &w, &zw, &mut out, true);
                    assert_eq!(out, added, "{name} kernel accumulating, DIM {dim}, case {case}");
                }
            }
        }
    }
}
