//! Each closed agency's answer to GET_WINNERS after the draw, as the bytes
//! of its WINNERS frames, encoded once when its close is durable. Pure, no I/O.
//!
//! Why encoded ahead: a closed agency's winners are final (a closed agency
//! stores no more bets), so its answer is known long before the draw. At the
//! draw every parked connection is answered in one pass; handing each its
//! bytes ready-made keeps that pass to one copy per connection, from one
//! contiguous buffer, instead of walking each agency's winners list and
//! building its frames while ten thousand agencies wait for them.
//!
//! Invariant: an agency has an answer exactly while its close is durable,
//! and the answer holds whole frames, the last one marked `last`, that
//! encode the agency's durable winners in stored order (what
//! [`encode_answer`] writes). A replaced answer leaves its old bytes behind
//! (the store's winners replace the lottery's at most once, at the draw).

use crate::wire;

#[derive(Debug, Default)]
pub struct Answers {
    /// Every agency's answer, one after another, in the order they closed.
    bytes: Vec<u8>,
    /// Where each agency's answer is in `bytes` (index 0 is agency 1).
    spans: Vec<Option<(usize, usize)>>,
}

impl Answers {
    /// Room for `agencies` answers, none recorded.
    pub fn new(agencies: usize) -> Answers {
        Answers {
            bytes: Vec::new(),
            spans: vec![None; agencies],
        }
    }

    /// Records the answer of the agency at `index` (agency `index + 1`),
    /// whose durable winners are `winners`; replaces an earlier one.
    pub fn record(&mut self, index: usize, winners: &[Box<str>]) {
        let start = self.bytes.len();
        encode_answer(&mut self.bytes, index as u32 + 1, winners);
        self.spans[index] = Some((start, self.bytes.len()));
    }

    /// The answer of the agency at `index`, once its close is durable.
    pub fn get(&self, index: usize) -> Option<&[u8]> {
        let (start, end) = self.spans.get(index).copied().flatten()?;
        Some(&self.bytes[start..end])
    }
}

/// Appends the WINNERS frames that answer `agency` with `winners`: as many
/// as the documents need (at least one, the last marked `last`).
pub fn encode_answer(out: &mut Vec<u8>, agency: u32, winners: &[Box<str>]) {
    let total = winners.len() as u32;
    let mut next = 0;
    loop {
        let rest = &winners[next..];
        let n = wire::winners_frame_split(rest);
        let last = next + n == winners.len();
        wire::encode_winners(out, agency, total, last, &rest[..n]);
        next += n;
        if last {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Frame;

    fn documents(n: usize) -> Vec<Box<str>> {
        (0..n)
            .map(|i| format!("{:08}", 30_000_000 + i).into())
            .collect()
    }

    /// The frames of `bytes`, as (agency, total, last, documents).
    fn frames(mut bytes: &[u8]) -> Vec<(u32, u32, bool, Vec<String>)> {
        let mut frames = Vec::new();
        while let Some((frame, n)) = wire::decode(bytes).unwrap() {
            let Frame::Winners {
                agency,
                total,
                last,
                documents,
            } = frame
            else {
                panic!("not a WINNERS frame: {frame:?}");
            };
            let documents = documents.iter().map(str::to_owned).collect();
            frames.push((agency, total, last, documents));
            bytes = &bytes[n..];
        }
        assert!(bytes.is_empty(), "bytes left after the last whole frame");
        frames
    }

    #[test]
    fn an_agency_without_winners_is_answered_with_one_empty_last_frame() {
        let mut answers = Answers::new(3);
        answers.record(1, &[]);
        assert_eq!(frames(answers.get(1).unwrap()), [(2, 0, true, vec![])]);
    }

    #[test]
    fn an_agency_has_no_answer_until_it_is_recorded() {
        let mut answers = Answers::new(2);
        answers.record(0, &documents(1));
        assert!(answers.get(1).is_none());
        assert!(answers.get(7).is_none());
    }

    #[test]
    fn a_long_list_is_split_into_frames_in_stored_order_with_only_the_last_marked() {
        let winners = documents(2_000);
        let mut answers = Answers::new(1);
        answers.record(0, &winners);
        let frames = frames(answers.get(0).unwrap());
        assert!(frames.len() > 1, "2,000 documents need several frames");
        let lasts: Vec<bool> = frames.iter().map(|f| f.2).collect();
        assert_eq!(lasts.iter().filter(|&&l| l).count(), 1);
        assert_eq!(lasts.last(), Some(&true));
        assert!(frames.iter().all(|f| f.0 == 1 && f.1 == 2_000));
        let all: Vec<String> = frames.into_iter().flat_map(|f| f.3).collect();
        let expected: Vec<String> = winners.iter().map(|w| w.to_string()).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn answers_recorded_one_after_another_do_not_overlap() {
        let mut answers = Answers::new(2);
        answers.record(1, &documents(3));
        answers.record(0, &documents(1));
        assert_eq!(frames(answers.get(1).unwrap())[0].3.len(), 3);
        assert_eq!(frames(answers.get(0).unwrap())[0].3.len(), 1);
        // Replaced: the new bytes are the answer, the old ones unused.
        answers.record(1, &[]);
        assert_eq!(frames(answers.get(1).unwrap()), [(2, 0, true, vec![])]);
    }
}
