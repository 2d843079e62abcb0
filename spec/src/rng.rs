//! The project's one random number generator: SplitMix64 (Steele, Lea and Flood, 2014), used
//! for test stimulus ([`crate::stimulus`]) and for training (the data split, the initial
//! weights, the batch order).
//!
//! Written here rather than taken from a crate so that a seed means the same stream forever,
//! on every machine: everything seeded depends on nothing but the seed and these few integer
//! operations.

/// SplitMix64: a 64-bit state advanced by a constant, hashed on the way out.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform `f32` in `[0, 1)` (24 random bits, exactly representable).
    pub fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u32 << 24) as f32
    }

    /// A uniform integer in `0..n` (multiply-shift; `n` must be > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "SplitMix64::below needs n > 0");
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// A random int8, with the extremes -128, 127, 0 over-represented (test stimulus).
    pub fn i8(&mut self) -> i8 {
        match self.below(8) {
            0 => -128,
            1 => 127,
            2 => 0,
            _ => self.next_u64() as i8,
        }
    }

    /// A random int32, with the extremes over-represented (test stimulus).
    pub fn i32(&mut self) -> i32 {
        match self.below(8) {
            0 => i32::MIN,
            1 => i32::MAX,
            2 => self.below(2001) as i32 - 1000,
            _ => self.next_u64() as i32,
        }
    }

    /// Fisher–Yates shuffle: from the last element down, swap element `i` with one in `0..=i`.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_stream() {
        // The published SplitMix64 outputs for seed 1234567.
        let mut r = SplitMix64::new(1234567);
        let want = [6457827717110365317u64, 3203168211198807973, 9817491932198370423];
        for w in want {
            assert_eq!(r.next_u64(), w);
        }
    }

    #[test]
    fn ranges_and_shuffle() {
        let mut r = SplitMix64::new(7);
        for _ in 0..1000 {
            let f = r.next_f32();
            assert!((0.0..1.0).contains(&f));
            assert!(r.below(3) < 3);
        }
        let mut v: Vec<usize> = (0..50).collect();
        r.shuffle(&mut v);
        assert_ne!(v, (0..50).collect::<Vec<_>>(), "50 elements stay in order with probability 1/50!");
        v.sort_unstable();
        assert_eq!(v, (0..50).collect::<Vec<_>>(), "a shuffle is a permutation");
    }
}
