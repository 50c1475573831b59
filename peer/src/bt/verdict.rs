//! What becomes of a complete piece once it was hashed and written, decided
//! in one pure place: announce it, fetch it again (striking and in time
//! banning a sole sender of bad data), or stop the run because the disk
//! failed. A piece that could not be written says nothing about the peers
//! that sent it: no strike, and it is not counted as a hash failure.

use std::collections::HashMap;

use common::PeerId;

use super::picker::PeerKey;

/// Bad pieces a peer may send alone before it is banned.
pub const STRIKES_TO_BAN: u32 = 2;

/// What hashing and writing a piece came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// It matched its hash and is on disk.
    Verified,
    /// It did not match its hash.
    HashFailed,
    /// It could not be written (disk full, I/O error): nothing is known of
    /// its bytes.
    NotWritten(String),
}

/// What the torrent does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Tell every peer we have it.
    Announce,
    /// Fetch it again; `blame` is its sole sender, if it had only one (with
    /// several, the picker fetches it from one peer alone next time, which
    /// settles who lied).
    Refetch { blame: Option<PeerKey> },
    /// The disk failed: end the run with this error.
    Stop(String),
}

pub fn judge(checked: Checked, contributors: &[PeerKey]) -> Verdict {
    match checked {
        Checked::Verified => Verdict::Announce,
        Checked::NotWritten(error) => Verdict::Stop(error),
        Checked::HashFailed => Verdict::Refetch {
            blame: match contributors {
                [only] => Some(*only),
                _ => None,
            },
        },
    }
}

/// Strikes against peers, by peer id (an address can be shared or change).
#[derive(Debug, Default)]
pub struct Strikes(HashMap<PeerId, u32>);

impl Strikes {
    /// One more strike against `id`; true when that makes a ban.
    pub fn strike(&mut self, id: PeerId) -> bool {
        let strikes = self.0.entry(id).or_insert(0);
        *strikes += 1;
        *strikes == STRIKES_TO_BAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_sole_sender_of_bad_data_is_blamed_and_a_write_failure_blames_nobody() {
        assert_eq!(judge(Checked::Verified, &[1, 2]), Verdict::Announce);
        assert_eq!(
            judge(Checked::HashFailed, &[3]),
            Verdict::Refetch { blame: Some(3) }
        );
        assert_eq!(
            judge(Checked::HashFailed, &[3, 4]),
            Verdict::Refetch { blame: None }
        );
        assert_eq!(
            judge(Checked::NotWritten("no space left".into()), &[3]),
            Verdict::Stop("no space left".into())
        );
    }

    #[test]
    fn the_second_strike_bans_once() {
        let mut strikes = Strikes::default();
        let (a, b) = (PeerId([1; 20]), PeerId([2; 20]));
        assert!(!strikes.strike(a));
        assert!(!strikes.strike(b));
        assert!(strikes.strike(a), "the second strike bans");
        assert!(!strikes.strike(a), "a ban is announced once");
    }
}
