use rand::{rngs::StdRng, SeedableRng};

use super::*;

/// 8 pieces of 32 KiB (two blocks each), the last one 20 KiB.
const G: Geometry = Geometry {
    piece_length: 32768,
    total_length: 7 * 32768 + 20480,
    piece_count: 8,
};

fn rng() -> StdRng {
    StdRng::seed_from_u64(3)
}

fn field(pieces: &[usize]) -> Bitfield {
    let mut f = Bitfield::new(8);
    for &p in pieces {
        f.set(p);
    }
    f
}

fn all() -> Bitfield {
    Bitfield::full(8)
}

/// A picker past the random phase: we already have pieces 0..4.
fn warmed_up() -> Picker {
    Picker::new(G, field(&[0, 1, 2, 3]))
}

fn data(block: BlockRef) -> Vec<u8> {
    vec![block.index as u8; block.length as usize]
}

#[test]
fn the_rarest_piece_is_chosen_first() {
    let mut picker = warmed_up();
    picker.add_availability(&all());
    picker.add_availability(&field(&[4, 5, 7]));
    picker.add_availability(&field(&[4, 7]));
    // Availability: 4 -> 3, 5 -> 2, 6 -> 1, 7 -> 3.
    let blocks = picker.pick(1, &all(), 2, &mut rng());
    assert_eq!(blocks.iter().map(|b| b.index).collect::<Vec<_>>(), [6, 6]);
    let next = picker.pick(2, &all(), 1, &mut rng());
    assert_eq!(next[0].index, 5);
}

#[test]
fn equally_rare_pieces_are_chosen_at_random() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..40 {
        let mut picker = warmed_up();
        picker.add_availability(&all());
        seen.insert(picker.pick(1, &all(), 1, &mut StdRng::seed_from_u64(seed))[0].index);
    }
    assert_eq!(
        seen.len(),
        4,
        "every missing piece gets chosen by some seed: {seen:?}"
    );
}

#[test]
fn the_first_pieces_are_random_even_when_one_is_rarer() {
    let mut seen = std::collections::HashSet::new();
    for seed in 0..40 {
        let mut picker = Picker::new(G, Bitfield::new(8));
        picker.add_availability(&all());
        picker.add_availability(&field(&[1, 2, 3, 4, 5, 6, 7])); // piece 0 is rarest
        seen.insert(picker.pick(1, &all(), 1, &mut StdRng::seed_from_u64(seed))[0].index);
    }
    assert!(seen.len() > 3, "random phase ignores rarity: {seen:?}");
}

#[test]
fn partial_pieces_are_finished_before_new_ones_start() {
    let mut picker = warmed_up();
    picker.add_availability(&all());
    let first = picker.pick(1, &all(), 1, &mut rng())[0];
    picker.release(1); // peer 1 choked us: its request returns to the pool
    let next = picker.pick(2, &all(), 2, &mut rng());
    assert_eq!(
        next.iter().map(|b| b.index).collect::<Vec<_>>(),
        [first.index, first.index]
    );
}

#[test]
fn a_piece_completes_when_its_last_block_arrives() {
    let mut picker = warmed_up();
    picker.add_availability(&all());
    let blocks = picker.pick(1, &field(&[7]), 10, &mut rng());
    assert_eq!(
        blocks,
        [
            BlockRef {
                index: 7,
                begin: 0,
                length: 16384
            },
            BlockRef {
                index: 7,
                begin: 16384,
                length: 4096
            }
        ]
    );
    assert!(picker
        .received(1, blocks[0], &data(blocks[0]))
        .complete
        .is_none());
    let done = picker
        .received(1, blocks[1], &data(blocks[1]))
        .complete
        .expect("complete");
    assert_eq!(
        (done.index, done.data.len(), done.contributors.clone()),
        (7, 20480, vec![1])
    );
    assert!(
        !picker.received(1, blocks[1], &data(blocks[1])).stored,
        "a duplicate is not stored"
    );
    picker.verified(7, true);
    assert!(!picker.wants(7));
    assert_eq!(picker.bytes_have(), 4 * 32768 + 20480);
}

#[test]
fn misaligned_or_wrongly_sized_blocks_are_not_stored() {
    let mut picker = warmed_up();
    let block = picker.pick(1, &all(), 1, &mut rng())[0];
    let shifted = BlockRef { begin: 1, ..block };
    assert!(!picker.received(1, shifted, &data(shifted)).stored);
    let short = BlockRef {
        length: 100,
        ..block
    };
    assert!(!picker.received(1, short, &data(short)).stored);
    assert!(
        !picker.received(1, block, &[0u8; 5]).stored,
        "data length must match"
    );
}

#[test]
fn endgame_asks_a_second_peer_and_cancels_the_loser() {
    let mut picker = Picker::new(G, field(&[0, 1, 2, 3, 4, 5, 6]));
    picker.add_availability(&all());
    let by_one = picker.pick(1, &all(), 10, &mut rng());
    assert_eq!(by_one.len(), 2);
    let by_two = picker.pick(2, &all(), 10, &mut rng());
    assert_eq!(
        by_two, by_one,
        "endgame: the same blocks from a second peer"
    );
    assert!(
        picker.pick(3, &all(), 10, &mut rng()).is_empty(),
        "at most two copies"
    );
    let outcome = picker.received(2, by_two[0], &data(by_two[0]));
    assert_eq!(outcome.cancel, [1]);
}

#[test]
fn a_failed_piece_is_fetched_again_from_one_peer_only() {
    let mut picker = warmed_up();
    picker.add_availability(&all());
    let blocks = picker.pick(1, &field(&[5]), 1, &mut rng());
    let others = picker.pick(2, &field(&[5]), 1, &mut rng());
    picker.received(1, blocks[0], &data(blocks[0]));
    let done = picker
        .received(2, others[0], &data(others[0]))
        .complete
        .unwrap();
    assert_eq!(done.contributors, [1, 2]);
    picker.verified(5, false);
    assert!(picker.wants(5));
    let retry = picker.pick(3, &field(&[5]), 1, &mut rng());
    assert_eq!(retry[0].index, 5);
    assert!(
        picker.pick(4, &field(&[5]), 2, &mut rng()).is_empty(),
        "exclusive to peer 3"
    );
    assert_eq!(
        picker.pick(3, &field(&[5]), 2, &mut rng()).len(),
        1,
        "the owner continues"
    );
    picker.release(3);
    assert_eq!(
        picker.pick(4, &field(&[5]), 2, &mut rng()).len(),
        2,
        "free again once the owner leaves"
    );
}

#[test]
fn only_what_a_peer_has_is_asked_of_it() {
    let mut picker = warmed_up();
    picker.add_availability(&field(&[6]));
    let blocks = picker.pick(1, &field(&[6]), 10, &mut rng());
    assert!(blocks.iter().all(|b| b.index == 6));
    assert!(picker.wants_any(&field(&[6])) && !picker.wants_any(&field(&[0, 1])));
}
