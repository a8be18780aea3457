//! Cutting the bet stream into `BATCH` frames.
//!
//! A batch holds `batch.maxAmount` bets, except the last one of the stream
//! and those where the protocol's 8 kB frame limit (`wire::batch_fits`)
//! forces fewer. Pure code: which bets go in the batch starting at a
//! position, and its bytes.

use lottery_proto::wire;

use crate::bets::Bets;

/// The bets `first .. first + count` of the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub first: usize,
    pub count: usize,
    /// Whether the frame limit, not `batch.maxAmount` nor the end of the
    /// stream, decided `count`.
    pub cut_by_frame: bool,
}

impl Batch {
    /// The position after the batch's last bet.
    pub fn end(&self) -> usize {
        self.first + self.count
    }
}

/// The batch that starts at `first` (which must be a bet of the stream).
pub fn plan(bets: &Bets, first: usize, max_amount: usize) -> Batch {
    assert!(first < bets.len(), "a batch starts at a bet of the stream");
    let limit = max_amount.clamp(1, u16::MAX as usize);
    let mut size = 0;
    let mut count = 0;
    while count < limit && first + count < bets.len() {
        let next = size + bets.get(first + count).encoded_len();
        // A single valid bet (at most 3 x 255 bytes of text) always fits.
        if count > 0 && !wire::batch_fits(next) {
            return Batch {
                first,
                count,
                cut_by_frame: true,
            };
        }
        size = next;
        count += 1;
    }
    Batch {
        first,
        count,
        cut_by_frame: false,
    }
}

/// Appends the `BATCH` frame of `batch` for `agency` to `out`.
pub fn encode(out: &mut Vec<u8>, agency: u32, bets: &Bets, batch: Batch) {
    let refs: Vec<_> = (batch.first..batch.end()).map(|i| bets.get(i)).collect();
    wire::encode_batch(out, agency, to_u32(batch.first), &refs);
}

/// Positions travel as `u32`; a stream longer than that cannot be sent.
pub fn to_u32(position: usize) -> u32 {
    u32::try_from(position).expect("an agency's stream holds at most u32::MAX bets")
}

#[cfg(test)]
mod tests {
    use super::*;
    use lottery_proto::bets::bet::Bet;
    use lottery_proto::wire::{Date, Frame, MAX_FRAME};

    fn bets(n: usize, name_len: usize) -> Bets {
        let mut bets = Bets::default();
        for i in 0..n {
            bets.push(&Bet {
                first_name: "x".repeat(name_len),
                last_name: "y".repeat(name_len),
                document: i.to_string(),
                birthdate: Date {
                    year: 1990,
                    month: 1,
                    day: 1,
                },
                number: (i % 10_000) as u16,
            });
        }
        bets
    }

    #[test]
    fn batches_hold_max_amount_bets_and_the_last_one_the_rest() {
        let b = bets(25, 5);
        assert_eq!(
            plan(&b, 0, 10),
            Batch {
                first: 0,
                count: 10,
                cut_by_frame: false
            }
        );
        assert_eq!(plan(&b, 10, 10).count, 10);
        assert_eq!(
            plan(&b, 20, 10),
            Batch {
                first: 20,
                count: 5,
                cut_by_frame: false
            }
        );
    }

    #[test]
    fn the_frame_limit_cuts_batches_of_long_bets() {
        let b = bets(100, 255);
        let batch = plan(&b, 0, 100);
        assert!(batch.cut_by_frame);
        let mut out = Vec::new();
        encode(&mut out, 1, &b, batch);
        assert!(out.len() <= MAX_FRAME);
        // One more bet would not have fitted.
        let with_one_more: usize = (0..=batch.count).map(|i| b.get(i).encoded_len()).sum();
        assert!(!wire::batch_fits(with_one_more));
    }

    #[test]
    fn an_encoded_batch_decodes_to_its_bets() {
        let b = bets(7, 3);
        let batch = plan(&b, 2, 4);
        let mut out = Vec::new();
        encode(&mut out, 9, &b, batch);
        let (frame, used) = wire::decode(&out).unwrap().unwrap();
        assert_eq!(used, out.len());
        let Frame::Batch {
            agency,
            first,
            bets: sent,
        } = frame
        else {
            panic!("not a batch: {frame:?}");
        };
        assert_eq!((agency, first, sent.len()), (9, 2, 4));
        let documents: Vec<_> = sent.iter().map(|bet| bet.document.to_vec()).collect();
        assert_eq!(documents, [b"2", b"3", b"4", b"5"]);
    }
}
