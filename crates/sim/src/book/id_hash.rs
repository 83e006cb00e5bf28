//! A multiply-fold hasher for `OrderId` keys.
//!
//! SipHash (the std default) resists hash flooding, which we do not need:
//! order ids come from our own engine, not from an adversary. A folded 128-bit
//! multiply spreads sequential ids over both the low bits (bucket index) and
//! the high bits (the control tag hashbrown keeps per bucket). The gain is
//! modest, a few percent on the `matching` bench (every operation does at
//! least one lookup), but it costs nothing.

use std::hash::{BuildHasherDefault, Hasher};

/// 2^64 / golden ratio, odd: the usual Fibonacci-hashing multiplier.
const K: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Debug, Default, Clone, Copy)]
pub(super) struct IdHasher(u64);

pub(super) type BuildIdHasher = BuildHasherDefault<IdHasher>;

impl IdHasher {
    #[inline]
    fn mix(&mut self, n: u64) {
        let p = u128::from(n ^ self.0) * u128::from(K);
        // Truncations are the point: fold the two halves of the product.
        self.0 = (p as u64) ^ ((p >> 64) as u64);
    }
}

impl Hasher for IdHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }

    /// Only reached by keys other than `OrderId` (which hashes one `u64`).
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.mix(u64::from_le_bytes(word));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }
}
