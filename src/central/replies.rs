//! The replies a connection's requests produced during one loop iteration,
//! held until the group commit says whether they may go out. Pure, no I/O.
//!
//! Invariant: a reply that depends on something staged in this iteration
//! (an ACK, or an error whose detail is a stored count) is marked *durable*;
//! if the commit fails, each durable reply is replaced by `ERROR STORAGE`, so
//! nothing is acknowledged that is not on disk. A read-only request's
//! answer that depends on the commit (a NOT_READY counting staged closes)
//! carries its own fallback instead, written from the durable state: an
//! agency that wrote nothing never gets `ERROR STORAGE`. The rest go out
//! unchanged, in order.
//!
//! What the held replies may settle into is known before the commit
//! ([`Replies::worst_len`]): an 11-byte ACK may become an `ERROR STORAGE`
//! seven times as long, so a bound on a connection's output counts each
//! held reply at the larger of its two sizes.

use crate::wire::{self, ErrorCode};

/// The message of the `ERROR STORAGE` a durable reply becomes.
const STORAGE_MESSAGE: &str =
    "the bets could not be stored; nothing was acknowledged, send them again";
/// The length of that frame: header, code, detail, the message as a `str8`.
const STORAGE_ERROR_LEN: usize = wire::HEADER + 1 + 4 + 1 + STORAGE_MESSAGE.len();

/// Replies produced during one loop iteration, held until the group commit.
///
/// A reply that depends on bets or closes staged in this iteration (an ACK,
/// or an error whose detail is a stored count) is *durable*: if the commit
/// fails it is replaced by `ERROR STORAGE`, so nothing is acknowledged that is
/// not on disk.
#[derive(Debug, Default)]
pub struct Replies {
    bytes: Vec<u8>,
    /// Where each durable reply is in `bytes`, and where its fallback is in
    /// `fallbacks` (`None`: `ERROR STORAGE`).
    durable: Vec<(usize, usize, Option<Span>)>,
    fallbacks: Vec<u8>,
    /// How many bytes the replies gain if the commit fails: each durable
    /// reply's fallback past its own length.
    growth: usize,
}

/// A byte range of one reply.
type Span = (usize, usize);

impl Replies {
    /// Appends one reply written by `encode`.
    pub fn push(&mut self, durable: bool, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        encode(&mut self.bytes);
        if durable {
            let end = self.bytes.len();
            self.growth += STORAGE_ERROR_LEN.saturating_sub(end - start);
            self.durable.push((start, end, None));
        }
    }

    /// Appends the answer to a read-only request that counts what this
    /// iteration staged: `encode` if the commit succeeds, `fallback` (from
    /// the durable state) if it fails.
    pub fn push_read_only(
        &mut self,
        encode: impl FnOnce(&mut Vec<u8>),
        fallback: impl FnOnce(&mut Vec<u8>),
    ) {
        let start = self.bytes.len();
        encode(&mut self.bytes);
        let from = self.fallbacks.len();
        fallback(&mut self.fallbacks);
        let (end, to) = (self.bytes.len(), self.fallbacks.len());
        self.growth += (to - from).saturating_sub(end - start);
        self.durable.push((start, end, Some((from, to))));
    }

    /// The bytes held, as they go out if the commit succeeds.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether a reply depends on the commit: an ACK, an error counting
    /// staged bets, or an answer with a fallback.
    pub fn depends_on_commit(&self) -> bool {
        !self.durable.is_empty()
    }

    /// The most bytes the held replies may settle into, whichever way the
    /// commit goes: what bounds on a connection's output count.
    pub fn worst_len(&self) -> usize {
        self.bytes.len() + self.growth
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Moves the replies to `out`: as they are if the commit succeeded, with
    /// every durable reply turned into `ERROR STORAGE` if it failed.
    pub fn settle(&mut self, committed: bool, out: &mut Vec<u8>) {
        if committed || self.durable.is_empty() {
            out.extend_from_slice(&self.bytes);
        } else {
            let mut at = 0;
            for &(start, end, fallback) in &self.durable {
                out.extend_from_slice(&self.bytes[at..start]);
                match fallback {
                    Some((from, to)) => out.extend_from_slice(&self.fallbacks[from..to]),
                    None => wire::encode_error(out, ErrorCode::Storage, 0, STORAGE_MESSAGE),
                }
                at = end;
            }
            out.extend_from_slice(&self.bytes[at..]);
        }
        self.bytes.clear();
        self.durable.clear();
        self.fallbacks.clear();
        self.growth = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Frame;

    #[test]
    fn committed_replies_go_out_unchanged_and_in_order() {
        let mut r = Replies::default();
        r.push(true, |o| wire::encode_ack(o, 1, 10));
        r.push(false, |o| wire::encode_not_ready(o, 0, 5));
        let mut out = Vec::new();
        r.settle(true, &mut out);
        let mut expected = Vec::new();
        wire::encode_ack(&mut expected, 1, 10);
        wire::encode_not_ready(&mut expected, 0, 5);
        assert_eq!(out, expected);
        assert!(r.is_empty());
    }

    #[test]
    fn a_failed_commit_turns_durable_replies_into_storage_errors() {
        let mut r = Replies::default();
        r.push(true, |o| wire::encode_ack(o, 1, 10));
        r.push(false, |o| wire::encode_not_ready(o, 0, 5));
        r.push(true, |o| wire::encode_ack(o, 1, 20));
        let mut out = Vec::new();
        r.settle(false, &mut out);
        let mut frames = Vec::new();
        let mut rest = &out[..];
        while let Some((f, n)) = wire::decode(rest).unwrap() {
            frames.push(f.kind());
            if let Frame::Error { code, .. } = f {
                assert_eq!(code, ErrorCode::Storage as u8);
            }
            rest = &rest[n..];
        }
        assert_eq!(
            frames,
            [wire::kind::ERROR, wire::kind::NOT_READY, wire::kind::ERROR]
        );
    }

    #[test]
    fn held_replies_are_counted_at_the_most_they_may_settle_into() {
        let mut r = Replies::default();
        for i in 0..100 {
            r.push(true, |o| wire::encode_ack(o, 1, i));
            r.push(false, |o| wire::encode_not_ready(o, 0, 5));
        }
        r.push_read_only(
            |o| wire::encode_not_ready(o, 2, 5),
            |o| wire::encode_error(o, ErrorCode::Storage, 0, "a fallback longer than its reply"),
        );
        let worst = r.worst_len();
        assert!(worst > r.len());
        let mut failed = Vec::new();
        r.settle(false, &mut failed);
        assert_eq!(
            failed.len(),
            worst,
            "a failed commit settles into the worst case"
        );
        assert_eq!(r.worst_len(), 0);
        r.push(true, |o| wire::encode_ack(o, 1, 1));
        let worst = r.worst_len();
        let mut committed = Vec::new();
        r.settle(true, &mut committed);
        assert!(committed.len() <= worst);
    }

    #[test]
    fn a_failed_commit_answers_a_read_only_request_from_its_fallback() {
        let mut r = Replies::default();
        r.push_read_only(
            |o| wire::encode_not_ready(o, 2, 5),
            |o| wire::encode_not_ready(o, 1, 5),
        );
        let mut out = Vec::new();
        r.settle(false, &mut out);
        let mut expected = Vec::new();
        wire::encode_not_ready(&mut expected, 1, 5);
        assert_eq!(out, expected);
        r.push_read_only(
            |o| wire::encode_not_ready(o, 2, 5),
            |o| wire::encode_not_ready(o, 1, 5),
        );
        out.clear();
        r.settle(true, &mut out);
        expected.clear();
        wire::encode_not_ready(&mut expected, 2, 5);
        assert_eq!(out, expected);
    }
}
