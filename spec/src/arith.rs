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
//! Contract v2 (DESIGN.md "Contract v2") makes M and S per output column (`M[n]`, `S[n]`,
//! [`ColumnScale`]) and adds an output zero point Z (int8) after the shift, with ReLU in the
//! quantised domain:
//!
//! ```text
//! v   = (acc + b[n]) as i64 * M[n]
//! r   = S[n] == 0 ? v : (v + (1 << (S[n] - 1))) >> S[n]
//! r   = r + Z
//! r   = relu ? max(r, Z) : r
//! y   = clamp(r, -128, 127) as int8
//! ```
//!
//! With every column's (M, S) equal and Z = 0 this is exactly v1: [`requantize`] (v1, one
//! [`Quant`]) is [`requantize_v2`] with Z = 0. A layer's v2 requantisation is a
//! [`LayerQuant`]: per-tensor (one scale) or per-column scales, ReLU and Z.
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
    #[error("a per-column quantisation needs at least one scale")]
    NoScales,
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

/// One column's scale `M[n] / 2^S[n]` (contract v2's LOAD_QUANT word); ReLU and the zero point
/// belong to the layer ([`LayerQuant`]). Build with [`ColumnScale::new`] or
/// [`ColumnScale::from_scale`], which check `shift <= 47`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "RawScale", into = "RawScale")]
pub struct ColumnScale {
    /// M[n], the integer multiplier.
    pub multiplier: u16,
    /// S[n], the rounding right shift (0..=47).
    pub shift: u8,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScale {
    multiplier: u16,
    shift: u8,
}

impl TryFrom<RawScale> for ColumnScale {
    type Error = QuantError;
    fn try_from(r: RawScale) -> Result<Self, QuantError> {
        ColumnScale::new(r.multiplier, r.shift)
    }
}

impl From<ColumnScale> for RawScale {
    fn from(c: ColumnScale) -> Self {
        RawScale { multiplier: c.multiplier, shift: c.shift }
    }
}

impl From<Quant> for ColumnScale {
    fn from(q: Quant) -> Self {
        ColumnScale { multiplier: q.multiplier, shift: q.shift }
    }
}

impl ColumnScale {
    /// A checked scale.
    pub fn new(multiplier: u16, shift: u8) -> Result<Self, QuantError> {
        Quant::new(multiplier, shift, false).map(ColumnScale::from)
    }

    /// The (M, S) closest to a real scale with the most precision ([`Quant::from_scale`]).
    pub fn from_scale(scale: f64) -> Result<Self, QuantError> {
        Quant::from_scale(scale).map(ColumnScale::from)
    }

    /// The real scale `M / 2^S`.
    pub fn scale(&self) -> f64 {
        Quant::from(*self).scale()
    }

    /// The LOAD_QUANT payload word: bits 15:0 M, 21:16 S.
    pub fn to_word(&self) -> u32 {
        u32::from(self.multiplier) | (u32::from(self.shift) << 16)
    }

    /// Parse a LOAD_QUANT payload word; other bits are ignored. S > 47 is an error.
    pub fn from_word(word: u32) -> Result<Self, QuantError> {
        ColumnScale::new(word as u16, ((word >> 16) & 0x3f) as u8)
    }

    /// This scale with a ReLU flag, as a v1 [`Quant`].
    pub fn with_relu(self, relu: bool) -> Quant {
        Quant { multiplier: self.multiplier, shift: self.shift, relu }
    }
}

impl From<ColumnScale> for Quant {
    /// The scale with ReLU off.
    fn from(c: ColumnScale) -> Self {
        c.with_relu(false)
    }
}

/// A layer's v2 requantisation: one scale for every column (per-tensor) or one per output
/// column, ReLU, and the output zero point Z. `From<Quant>` gives the v1 (per-tensor, Z = 0)
/// case.
///
/// Serialised as `{"scales": [{"multiplier", "shift"}, ..], "relu", "zero_point"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawLayerQuant", into = "RawLayerQuant")]
pub struct LayerQuant {
    scales: Vec<ColumnScale>,
    relu: bool,
    zero_point: i8,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLayerQuant {
    scales: Vec<ColumnScale>,
    #[serde(default)]
    relu: bool,
    #[serde(default)]
    zero_point: i8,
}

impl TryFrom<RawLayerQuant> for LayerQuant {
    type Error = QuantError;
    fn try_from(r: RawLayerQuant) -> Result<Self, QuantError> {
        LayerQuant::per_column(r.scales, r.relu, r.zero_point)
    }
}

impl From<LayerQuant> for RawLayerQuant {
    fn from(q: LayerQuant) -> Self {
        RawLayerQuant { scales: q.scales, relu: q.relu, zero_point: q.zero_point }
    }
}

impl From<Quant> for LayerQuant {
    fn from(q: Quant) -> Self {
        LayerQuant { scales: vec![q.into()], relu: q.relu, zero_point: 0 }
    }
}

impl LayerQuant {
    /// Per-column scales (`scales[n]` for output column n; a single scale applies to every
    /// column), ReLU and the output zero point.
    pub fn per_column(scales: Vec<ColumnScale>, relu: bool, zero_point: i8) -> Result<Self, QuantError> {
        if scales.is_empty() {
            return Err(QuantError::NoScales);
        }
        if let Some(bad) = scales.iter().find(|c| c.shift > MAX_SHIFT) {
            return Err(QuantError::Shift(bad.shift.into()));
        }
        Ok(LayerQuant { scales, relu, zero_point })
    }

    /// One scale for every column, with ReLU and the output zero point.
    pub fn per_tensor(scale: ColumnScale, relu: bool, zero_point: i8) -> Result<Self, QuantError> {
        LayerQuant::per_column(vec![scale], relu, zero_point)
    }

    /// The same with another output zero point.
    pub fn with_zero_point(self, zero_point: i8) -> Self {
        LayerQuant { zero_point, ..self }
    }

    /// The scales: one (per-tensor) or one per output column.
    pub fn scales(&self) -> &[ColumnScale] {
        &self.scales
    }

    /// True if one scale applies to every column.
    pub fn is_per_tensor(&self) -> bool {
        self.scales.len() == 1
    }

    /// The scale of output column `n` (per-tensor: the one scale).
    ///
    /// # Panics
    /// If the quantisation is per-column and `n` is not a column of it.
    pub fn scale(&self, n: usize) -> ColumnScale {
        if self.is_per_tensor() {
            self.scales[0]
        } else {
            self.scales[n]
        }
    }

    /// ReLU (in the quantised domain: `max(r, Z)`).
    pub fn relu(&self) -> bool {
        self.relu
    }

    /// The output zero point Z.
    pub fn zero_point(&self) -> i8 {
        self.zero_point
    }

    /// The v1 [`Quant`] this is, if it is one (per-tensor, Z = 0).
    pub fn as_v1(&self) -> Option<Quant> {
        (self.is_per_tensor() && self.zero_point == 0).then(|| self.scales[0].with_relu(self.relu))
    }

    /// Whether it fits a layer of `n` output columns (per-tensor, or exactly `n` scales).
    pub fn fits(&self, n: usize) -> bool {
        self.is_per_tensor() || self.scales.len() == n
    }

    /// `act(acc + bias)` for one element of output column `n`.
    #[inline]
    pub fn apply(&self, n: usize, acc: i32, bias: i32) -> i8 {
        requantize_v2(acc, bias, self.scale(n), self.relu, self.zero_point)
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

/// DESIGN.md's (v1) activation for one element: bias, requantise, ReLU, saturate to int8.
/// The same as [`requantize_v2`] with Z = 0.
#[inline]
pub fn requantize(acc: i32, bias: i32, q: Quant) -> i8 {
    requantize_v2(acc, bias, q.into(), q.relu, 0)
}

/// Contract v2's activation for one element of a column with scale `scale`: bias, requantise,
/// add the zero point, ReLU as `max(r, Z)`, saturate to int8.
#[inline]
pub fn requantize_v2(acc: i32, bias: i32, scale: ColumnScale, relu: bool, zero_point: i8) -> i8 {
    debug_assert!(scale.shift <= MAX_SHIFT);
    let z = i64::from(zero_point);
    let r = rescale(acc, bias, scale.multiplier, scale.shift) + z;
    let r = if relu { r.max(z) } else { r };
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

    /// Contract v2 straight from DESIGN.md in i128.
    fn reference_v2(acc: i32, bias: i32, m: u16, s: u8, relu: bool, z: i8) -> i8 {
        let sum = (i128::from(acc) + i128::from(bias)) as i32;
        let v = i128::from(sum) * i128::from(m);
        let r = if s == 0 { v } else { (v + (1i128 << (s - 1))).div_euclid(1i128 << s) };
        let r = r + i128::from(z);
        let r = if relu { r.max(i128::from(z)) } else { r };
        r.clamp(-128, 127) as i8
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]
        #[test]
        fn requantize_v2_matches_i128_reference(
            acc in edge_i32(), bias in edge_i32(),
            m in prop_oneof![Just(0u16), Just(1), Just(65535), any::<u16>()],
            s in prop_oneof![Just(0u8), Just(47), 0u8..=47],
            relu in any::<bool>(),
            z in prop_oneof![Just(0i8), Just(-128), Just(127), any::<i8>()],
        ) {
            let c = ColumnScale::new(m, s).unwrap();
            prop_assert_eq!(requantize_v2(acc, bias, c, relu, z), reference_v2(acc, bias, m, s, relu, z));
            if z == 0 {
                prop_assert_eq!(requantize_v2(acc, bias, c, relu, 0), requantize(acc, bias, c.with_relu(relu)));
            }
        }

        #[test]
        fn column_word_round_trips(m in any::<u16>(), s in 0u8..=47, junk in any::<u32>()) {
            let c = ColumnScale::new(m, s).unwrap();
            prop_assert_eq!(ColumnScale::from_word(c.to_word()).unwrap(), c);
            prop_assert_eq!(ColumnScale::from_word(c.to_word() | (junk & !0x003f_ffff)).unwrap(), c);
        }
    }

    #[test]
    fn v2_hand_checked() {
        let one = ColumnScale::new(1, 0).unwrap();
        // Z added after the shift: 200 - 100 = 100; 120 + 10 = 130 saturates
        assert_eq!(requantize_v2(200, 0, one, false, -100), 100);
        assert_eq!(requantize_v2(120, 0, one, false, 10), 127);
        // ReLU is max(r, Z): -5 + -128 = -133 -> max(-133, -128) = -128; without ReLU it saturates too
        assert_eq!(requantize_v2(-5, 0, one, true, -128), -128);
        assert_eq!(requantize_v2(-5, 0, one, true, 20), 20);
        assert_eq!(requantize_v2(-5, 0, one, false, 20), 15);
        assert_eq!(requantize_v2(5, 0, one, true, 20), 25);
        // r = 250 only saturates after Z: 250 - 128 = 122 (the hardware must see past int8)
        assert_eq!(requantize_v2(250, 0, one, false, -128), 122);
        assert_eq!(requantize_v2(-250, 0, one, false, 127), -123);
        assert_eq!(requantize_v2(255, 0, one, false, -128), 127);
        assert_eq!(requantize_v2(256, 0, one, false, -128), 127);
        // rounding before Z: 3/2 = 1.5 -> 2, + 1 = 3
        assert_eq!(requantize_v2(3, 0, ColumnScale::new(1, 1).unwrap(), false, 1), 3);
    }

    #[test]
    fn layer_quant_shapes_and_serde() {
        let q = Quant::new(3, 4, true).unwrap();
        let lq = LayerQuant::from(q);
        assert!(lq.is_per_tensor() && lq.fits(7) && lq.as_v1() == Some(q));
        assert_eq!(lq.scale(5), ColumnScale::new(3, 4).unwrap());
        assert_eq!(lq.clone().with_zero_point(-128).as_v1(), None);
        let pc = LayerQuant::per_column(
            vec![ColumnScale::new(1, 0).unwrap(), ColumnScale::new(2, 1).unwrap()],
            false,
            3,
        )
        .unwrap();
        assert!(!pc.is_per_tensor() && pc.fits(2) && !pc.fits(3));
        assert_eq!(pc.apply(1, 10, 0), 13);
        assert_eq!(LayerQuant::per_column(vec![], false, 0).unwrap_err(), QuantError::NoScales);
        let bad = ColumnScale { multiplier: 1, shift: 48 };
        assert_eq!(LayerQuant::per_column(vec![bad], false, 0).unwrap_err(), QuantError::Shift(48));
        let json = serde_json::to_string(&pc).unwrap();
        assert_eq!(serde_json::from_str::<LayerQuant>(&json).unwrap(), pc);
        assert!(serde_json::from_str::<LayerQuant>(r#"{"scales":[{"multiplier":1,"shift":50}]}"#).is_err());
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
