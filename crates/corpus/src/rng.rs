//! A small seeded generator. The corpus must rebuild byte for byte, so it cannot depend on
//! a crate whose stream might change between versions; SplitMix64 is enough for choosing
//! surroundings.

/// SplitMix64 stream.
#[derive(Debug, Clone)]
pub struct Rng(u64);

/// FNV-1a, to turn a key into a seed.
pub fn hash(key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

impl Rng {
    /// A stream for one item: derived from the build seed and the item's own key, so an
    /// item's surroundings do not change when other items are added or removed.
    pub fn for_item(seed: u64, key: &str) -> Rng {
        let mut r = Rng(seed ^ hash(key));
        r.next_u64();
        r
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi.saturating_sub(lo) + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        // Every caller passes a constant, non-empty table.
        &items[self.below(items.len() as u64) as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_depend_on_seed_and_key_only() {
        let a: Vec<u64> = (0..4).map(|_| Rng::for_item(7, "x").next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(
            Rng::for_item(7, "x").next_u64(),
            Rng::for_item(8, "x").next_u64()
        );
        assert_ne!(
            Rng::for_item(7, "x").next_u64(),
            Rng::for_item(7, "y").next_u64()
        );
        let mut r = Rng::for_item(1, "range");
        assert!((0..1000).all(|_| (3..=9).contains(&r.range(3, 9))));
    }
}
