//! Which examples go in which batch: seeded shuffling with length bucketing, so batches hold
//! sequences of similar length (little padding) while their order stays random. The plan is a
//! pure function of (seed, epoch), which is what makes resuming exact.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// How many batches' worth of examples are sorted together by length.
const BUCKET_BATCHES: usize = 32;

/// The batches of one epoch, as indices into `lengths`.
pub fn epoch_batches(
    lengths: &[usize],
    batch_size: usize,
    seed: u64,
    epoch: usize,
) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.shuffle(&mut rng);
    let mut batches = Vec::new();
    for bucket in order.chunks(batch_size * BUCKET_BATCHES) {
        let mut bucket = bucket.to_vec();
        // Longest first within a bucket; ties keep the shuffled order (stable sort).
        bucket.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        batches.extend(bucket.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(&mut rng);
    batches
}

/// Groups examples into packs of at most `max_tokens` tokens (first-fit, longest first, ties by
/// index), so packed rows waste little room. Deterministic.
pub fn pack_examples(lengths: &[usize], max_tokens: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(lengths[i]), i));
    let mut packs: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in order {
        match packs
            .iter_mut()
            .find(|(used, _)| used + lengths[i] <= max_tokens)
        {
            Some((used, members)) => {
                *used += lengths[i];
                members.push(i);
            }
            None => packs.push((lengths[i], vec![i])),
        }
    }
    packs.into_iter().map(|(_, m)| m).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_once_and_reproducible() {
        let lengths: Vec<usize> = (0..103).map(|i| (i * 37) % 50 + 1).collect();
        let a = epoch_batches(&lengths, 4, 7, 0);
        assert_eq!(a, epoch_batches(&lengths, 4, 7, 0));
        assert_ne!(a, epoch_batches(&lengths, 4, 7, 1));
        let mut seen: Vec<usize> = a.iter().flatten().copied().collect();
        seen.sort();
        assert_eq!(seen, (0..103).collect::<Vec<_>>());
    }

    #[test]
    fn packs_respect_the_budget_and_hold_everything_once() {
        let lengths = [200, 60, 50, 250, 10, 100, 90];
        let packs = pack_examples(&lengths, 256);
        let mut all: Vec<usize> = packs.iter().flatten().copied().collect();
        all.sort();
        assert_eq!(all, (0..7).collect::<Vec<_>>());
        for p in &packs {
            assert!(
                p.iter().map(|&i| lengths[i]).sum::<usize>() <= 256,
                "{packs:?}"
            );
        }
        assert_eq!(packs.len(), 4);
    }

    #[test]
    fn bucketing_reduces_padding() {
        let lengths: Vec<usize> = (0..512).map(|i| (i * 7919) % 200 + 10).collect();
        let padding = |batches: &[Vec<usize>]| -> usize {
            batches
                .iter()
                .map(|b| {
                    let max = b.iter().map(|&i| lengths[i]).max().unwrap();
                    b.iter().map(|&i| max - lengths[i]).sum::<usize>()
                })
                .sum()
        };
        let bucketed = epoch_batches(&lengths, 8, 1, 0);
        let random: Vec<Vec<usize>> = (0..512)
            .collect::<Vec<_>>()
            .chunks(8)
            .map(<[usize]>::to_vec)
            .collect();
        assert!(padding(&bucketed) * 4 < padding(&random));
    }
}
