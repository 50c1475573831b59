//! Prints the info-hashes aquatic_udp_load_test 0.9 announces, one per line
//! in hex, so `integration/bench/tracker-udp.sh` can give opentracker (whose
//! Debian build serves only whitelisted torrents) the same swarms as the
//! trackers that serve any.
//!
//! The generator draws them in `InfoHashDist::new` (its `src/lib.rs`) from
//! rand 0.8's `SmallRng::seed_from_u64(0xc3aa8be617b3acce)`: on 64-bit
//! targets xoshiro256++, whose 32-byte seed `SmallRng` fills with rand_core
//! 0.6's default `seed_from_u64` (eight PCG32 outputs; xoshiro's own
//! SplitMix64 seeding is not reached through `SmallRng`), each byte the low
//! byte of `next_u32`, which is the high half of `next_u64`. Written out here so a
//! change of our own `rand` cannot change the list; the benchmark checks
//! the list against the swarms the generator made on our tracker.
//!
//! Usage: `aquatic-info-hashes [COUNT]` (default 1,000,000, the generator's
//! `number_of_torrents`).

use std::io::{BufWriter, Write};

const SEED: u64 = 0xc3aa8be617b3acce;

/// xoshiro256++, as rand 0.8's `SmallRng` on 64-bit targets.
struct Xoshiro256PlusPlus {
    s: [u64; 4],
}

impl Xoshiro256PlusPlus {
    /// `SmallRng::seed_from_u64`: rand_core 0.6's default, the seed bytes
    /// from PCG32 (advanced first, then output), read as little-endian words.
    fn seed_from_u64(mut state: u64) -> Self {
        let mut seed = [0u8; 32];
        for chunk in seed.chunks_exact_mut(4) {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(11634580027462260723);
            let xorshifted = (((state >> 18) ^ state) >> 27) as u32;
            let x = xorshifted.rotate_right((state >> 59) as u32);
            chunk.copy_from_slice(&x.to_le_bytes());
        }
        let s = std::array::from_fn(|i| {
            u64::from_le_bytes(seed[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
        });
        Xoshiro256PlusPlus { s }
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// rand 0.8's `gen::<u8>()`: `next_u32() as u8`.
    fn next_byte(&mut self) -> u8 {
        ((self.next_u64() >> 32) as u32) as u8
    }
}

fn main() {
    let count: usize = match std::env::args().nth(1) {
        None => 1_000_000,
        Some(arg) => match arg.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!("usage: aquatic-info-hashes [COUNT]");
                std::process::exit(2);
            }
        },
    };
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED);
    let mut out = BufWriter::new(std::io::stdout().lock());
    for _ in 0..count {
        let hash: [u8; 20] = std::array::from_fn(|_| rng.next_byte());
        if writeln!(out, "{}", hex::encode(hash)).is_err() {
            return; // a closed pipe: stop quietly
        }
    }
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xoshiro256plusplus_matches_its_reference_output() {
        // From the state [1, 2, 3, 4]: rotl(1 + 4, 23) + 1.
        let mut rng = Xoshiro256PlusPlus { s: [1, 2, 3, 4] };
        assert_eq!(rng.next_u64(), 41943041);
    }
}
