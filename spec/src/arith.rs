//! The bit-exact arithmetic of DESIGN.md, in one place.
//!
//! ```text
//! acc = sum_k x[k] * w[k]                           int32, two's complement wrap
//! v   = (acc + bias) wrapped to int32, as i64 * M  M: u16
//! r   = S == 0 ? v : (v + (1 << (S - 1))) >> S      arithmetic shift, S in 0..=47
//! r   = relu ? max(r, 0) : r
//! y   = clamp(r, -128, 127) as int8
//! ```
//!
//! The golden model, the golden device, the native cycle model and the driver all call these
//! functions; nothing else re-implements them.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Largest right shift of the requantiser.
pub const MAX_SHIFT: u8 = 47;

/// One multiply-accumulate step: `acc + x * w` with int32 wrap.
#[inline]
pub fn mac(acc: i32, x: i8, w: i8) -> i32 {
    acc.wrapping_add(i32::from(x) * i32::from(w))
}

/// Dot product of an int8 row with an int8 column, int32 wrap.
pub fn dot(x: impl IntoIterator<Item = i8>, w: impl IntoIterator<Item = i8>) -> i32 {
    x.into_iter().zip(w).fold(0, |acc, (x, w)| mac(acc, x, w))
}

/// Requantisation parameters: the real scale is `multiplier / 2^shift`; zero point 0.
///
/// Fields are public for reading; build one with [`Quant::new`] or [`Quant::from_scale`], which
/// check `shift <= 47`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawQuant", into = "RawQuant")]
pub struct Quant {
    /// M, the integer multiplier.
    pub multiplier: u16,
    /// S, the rounding right shift (0..=47).
    pub shift: u8,
    /// Apply ReLU before saturating.
    pub relu: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuant {
    multiplier: u16,
    shift: u8,
    #[serde(default)]
    relu: bool,
}

impl TryFrom<RawQuant> for Quant {
    type Error = QuantError;
    fn try_from(r: RawQuant) -> Result<Self, QuantError> {
        Quant::new(r.multiplier, r.shift, r.relu)
    }
}

impl From<Quant> for RawQuant {
    fn from(q: Quant) -> Self {
        RawQuant { multiplier: q.multiplier, shift: q.shift, relu: q.relu }
    }
}

/// Why a quantisation could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum QuantError {
    #[error("shift must be in 0..={MAX_SHIFT}, got {0}")]
    Shift(u32),
    #[error("multiplier must be in 0..=65535, got {0}")]
    Multiplier(u64),
    #[error("scale must be a finite number > 0, got {0}")]
    ScaleNotPositive(f64),
    #[error("scale {0} is too large: the largest representable scale is 65535 (M = 65535, S = 0)")]
    ScaleTooLarge(f64),
    #[error("scale {0:e} is too small: the smallest representable scale is 2^-48 (M = 1, S = 47 rounds up from 0.5)")]
    ScaleTooSmall(f64),
}

impl Default for Quant {
    /// The reset state of the hardware: M = 0, S = 0, no ReLU (every output 0).
    fn default() -> Self {
        Quant { multiplier: 0, shift: 0, relu: false }
    }
}

impl Quant {
    /// The identity scale (M = 1, S = 0): outputs are `acc + bias` saturated to int8.
    pub const IDENTITY: Quant = Quant { multiplier: 1, shift: 0, relu: false };

    /// A checked quantisation.
    pub fn new(multiplier: u16, shift: u8, relu: bool) -> Result<Self, QuantError> {
        if shift > MAX_SHIFT {
            return Err(QuantError::Shift(shift.into()));
        }
        Ok(Quant { multiplier, shift, relu })
    }

    /// The (M, S) closest to a real scale with the most precision: the largest S in 0..=47 such
    /// that `round(scale * 2^S)` still fits 16 bits. ReLU off.
    pub fn from_scale(scale: f64) -> Result<Self, QuantError> {
        if !scale.is_finite() || scale <= 0.0 {
            return Err(QuantError::ScaleNotPositive(scale));
        }
        if (scale).round() > 65535.0 {
            return Err(QuantError::ScaleTooLarge(scale));
        }
        let mut best = None;
        for s in 0..=MAX_SHIFT {
            let m = (scale * (2f64).powi(s.into())).round();
            if m > 65535.0 {
                break;
            }
            best = Some((m as u16, s));
        }
        match best {
            Some((m, s)) if m > 0 => Ok(Quant { multiplier: m, shift: s, relu: false }),
            _ => Err(QuantError::ScaleTooSmall(scale)),
        }
    }

    /// The same quantisation with ReLU on or off.
    pub fn with_relu(self, relu: bool) -> Self {
        Quant { relu, ..self }
    }

    /// The real scale `M / 2^S`.
    pub fn scale(&self) -> f64 {
        f64::from(self.multiplier) / (2f64).powi(self.shift.into())
    }

    /// The SET_QUANT payload word: bits 15:0 M, 21:16 S, 24 relu.
    pub fn to_word(&self) -> u32 {
        u32::from(self.multiplier) | (u32::from(self.shift) << 16) | (u32::from(self.relu) << 24)
    }

    /// Parse a SET_QUANT payload word; other bits are ignored. S > 47 is an error.
    pub fn from_word(word: u32) -> Result<Self, QuantError> {
        let shift = ((word >> 16) & 0x3f) as u8;
        Quant::new(word as u16, shift, (word >> 24) & 1 == 1)
    }

    /// `act(acc + bias)` for one element: requantise, ReLU, saturate.
    #[inline]
    pub fn apply(&self, acc: i32, bias: i32) -> i8 {
        requantize(acc, bias, *self)
    }
}

/// The rounded, shifted value before ReLU and saturation (fits 49 bits signed).
#[inline]
pub fn rescale(acc: i32, bias: i32, multiplier: u16, shift: u8) -> i64 {
    let v = i64::from(acc.wrapping_add(bias)) * i64::from(multiplier);
    if shift == 0 {
        v
    } else {
        (v + (1i64 << (shift - 1))) >> shift
    }
}

/// DESIGN.md's activation for one element: bias, requantise, ReLU, saturate to int8.
#[inline]
pub fn requantize(acc: i32, bias: i32, q: Quant) -> i8 {
    debug_assert!(q.shift <= MAX_SHIFT);
    let r = rescale(acc, bias, q.multiplier, q.shift);
    let r = if q.relu { r.max(0) } else { r };
    r.clamp(-128, 127) as i8
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Straight from the formula in i128, independently of `rescale`.
    fn reference(acc: i32, bias: i32, m: u16, s: u8, relu: bool) -> i8 {
        let sum = (i128::from(acc) + i128::from(bias)) as i32; // wrap to int32 first
        let v = i128::from(sum) * i128::from(m);
        let r = if s == 0 { v } else { (v + (1i128 << (s - 1))).div_euclid(1i128 << s) };
        let r = if relu && r < 0 { 0 } else { r };
        r.clamp(-128, 127) as i8
    }

    fn edge_i32() -> impl Strategy<Value = i32> {
        prop_oneof![
            Just(i32::MIN),
            Just(i32::MAX),
            Just(0),
            Just(-1),
            Just(1),
            -70000i32..70000,
            any::<i32>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn requantize_matches_i128_reference(
            acc in edge_i32(), bias in edge_i32(),
            m in prop_oneof![Just(0u16), Just(1), Just(65535), any::<u16>()],
            s in prop_oneof![Just(0u8), Just(47), 0u8..=47],
            relu in any::<bool>(),
        ) {
            let q = Quant::new(m, s, relu).unwrap();
            prop_assert_eq!(requantize(acc, bias, q), reference(acc, bias, m, s, relu));
        }

        #[test]
        fn quant_word_round_trips(m in any::<u16>(), s in 0u8..=47, relu in any::<bool>(), junk in any::<u32>()) {
            let q = Quant::new(m, s, relu).unwrap();
            prop_assert_eq!(Quant::from_word(q.to_word()).unwrap(), q);
            // bits other than 15:0, 21:16 and 24 are ignored
            let noisy = q.to_word() | (junk & !0x013f_ffff);
            prop_assert_eq!(Quant::from_word(noisy).unwrap(), q);
        }

        #[test]
        fn from_scale_is_the_closest_representable(scale in 1e-12f64..60000.0) {
            let q = Quant::from_scale(scale).unwrap();
            // relative error bounded by half an LSB of M (M >= 2^15 unless S hits 47)
            let err = (q.scale() - scale).abs() / scale;
            if q.shift < MAX_SHIFT {
                prop_assert!(q.multiplier >= 32768 || q.shift == 0, "{:?}", q);
                prop_assert!(err <= 0.5 / 32768.0 + 1e-12, "{} -> {:?} err {}", scale, q, err);
            }
        }
    }

    #[test]
    fn hand_checked_edges() {
        // S = 0: no rounding, saturate
        assert_eq!(requantize(100, 27, Quant::IDENTITY), 127);
        assert_eq!(requantize(-100, -29, Quant::IDENTITY), -128);
        assert_eq!(requantize(-100, -28, Quant::IDENTITY), -128);
        assert_eq!(requantize(-100, -27, Quant::IDENTITY), -127);
        // round half up: 3 * 1 / 2 = 1.5 -> 2 ; -3 / 2 = -1.5 -> -1 (half up, not away from zero)
        assert_eq!(requantize(3, 0, Quant::new(1, 1, false).unwrap()), 2);
        assert_eq!(requantize(-3, 0, Quant::new(1, 1, false).unwrap()), -1);
        assert_eq!(requantize(-5, 0, Quant::new(1, 1, false).unwrap()), -2);
        // relu
        assert_eq!(requantize(-5, 0, Quant::new(1, 1, true).unwrap()), 0);
        // M = 0 gives 0 whatever the input
        assert_eq!(requantize(i32::MIN, 0, Quant::new(0, 0, false).unwrap()), 0);
        // acc + bias wraps to int32 before the multiply: MAX + 1 = MIN -> saturates low
        assert_eq!(requantize(i32::MAX, 1, Quant::IDENTITY), -128);
        // the largest product: i32::MIN * 65535 >> 47 = -2^31 * 65535 / 2^47 = -0.99998 -> -1
        assert_eq!(requantize(i32::MIN, 0, Quant::new(65535, 47, false).unwrap()), -1);
        assert_eq!(requantize(i32::MAX, 0, Quant::new(65535, 47, false).unwrap()), 1);
        assert_eq!(rescale(i32::MIN, 0, 65535, 0), -(1i64 << 31) * 65535);
        // mac wraps
        assert_eq!(mac(i32::MAX, 1, 1), i32::MIN);
        assert_eq!(mac(0, -128, -128), 16384);
        assert_eq!(dot([1i8, 2, 3], [4i8, 5, 6]), 32);
    }

    #[test]
    fn from_scale_errors_and_examples() {
        assert_eq!(Quant::from_scale(1.0).unwrap().scale(), 1.0);
        assert_eq!(Quant::from_scale(0.5).unwrap(), Quant { multiplier: 32768, shift: 16, relu: false });
        assert_eq!(Quant::from_scale(65535.0).unwrap(), Quant { multiplier: 65535, shift: 0, relu: false });
        assert!(matches!(Quant::from_scale(0.0), Err(QuantError::ScaleNotPositive(_))));
        assert!(matches!(Quant::from_scale(f64::NAN), Err(QuantError::ScaleNotPositive(_))));
        assert!(matches!(Quant::from_scale(70000.0), Err(QuantError::ScaleTooLarge(_))));
        assert!(matches!(Quant::from_scale(1e-20), Err(QuantError::ScaleTooSmall(_))));
        assert_eq!(Quant::new(1, 48, false).unwrap_err().to_string(), "shift must be in 0..=47, got 48");
        assert!(Quant::from_word(48 << 16).is_err());
    }
}
