//! `announce_peer` tokens (BEP 5): a token is a hash of the requester's IP
//! address and a secret; the secret changes every [`ROTATE_EVERY`] and the
//! previous one is still accepted, so a token is good for 5 to 10 minutes
//! and nothing is stored per requester.

use std::{net::IpAddr, time::Duration};

use rand::Rng;
use sha1::{Digest, Sha1};
use tokio::time::Instant;

pub const ROTATE_EVERY: Duration = Duration::from_secs(5 * 60);
/// Bytes of the hash given out as a token.
const TOKEN_LEN: usize = 8;

#[derive(Debug)]
pub struct Tokens {
    current: [u8; 16],
    previous: [u8; 16],
    rotated: Instant,
}

impl Tokens {
    pub fn new<R: Rng>(now: Instant, rng: &mut R) -> Self {
        Tokens {
            current: rng.random(),
            previous: rng.random(),
            rotated: now,
        }
    }

    /// Changes the secret when it is due.
    pub fn rotate_if_due<R: Rng>(&mut self, now: Instant, rng: &mut R) {
        if now.saturating_duration_since(self.rotated) >= ROTATE_EVERY {
            self.previous = self.current;
            self.current = rng.random();
            self.rotated = now;
        }
    }

    pub fn token_for(&self, ip: IpAddr) -> Vec<u8> {
        hash(&self.current, ip)
    }

    pub fn is_valid(&self, ip: IpAddr, token: &[u8]) -> bool {
        token == hash(&self.current, ip) || token == hash(&self.previous, ip)
    }
}

fn hash(secret: &[u8; 16], ip: IpAddr) -> Vec<u8> {
    let mut hasher = Sha1::new();
    hasher.update(secret);
    match ip {
        IpAddr::V4(v4) => hasher.update(v4.octets()),
        IpAddr::V6(v6) => hasher.update(v6.octets()),
    }
    hasher.finalize()[..TOKEN_LEN].to_vec()
}

#[cfg(test)]
mod tests {
    use rand::{rngs::StdRng, SeedableRng};

    use super::*;

    #[test]
    fn a_token_is_good_for_one_rotation_and_one_address() {
        let mut rng = StdRng::seed_from_u64(1);
        let start = Instant::now();
        let mut tokens = Tokens::new(start, &mut rng);
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let other: IpAddr = "127.0.0.3".parse().unwrap();
        let token = tokens.token_for(ip);
        assert!(tokens.is_valid(ip, &token));
        assert!(!tokens.is_valid(other, &token));
        assert!(!tokens.is_valid(ip, b"made-up!"));
        tokens.rotate_if_due(start + ROTATE_EVERY / 2, &mut rng);
        assert_eq!(tokens.token_for(ip), token, "not due yet");
        tokens.rotate_if_due(start + ROTATE_EVERY, &mut rng);
        assert!(
            tokens.is_valid(ip, &token),
            "the previous secret still counts"
        );
        tokens.rotate_if_due(start + 2 * ROTATE_EVERY, &mut rng);
        assert!(!tokens.is_valid(ip, &token), "stale after two rotations");
    }
}
