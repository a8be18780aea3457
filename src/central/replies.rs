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

use crate::wire::{self, ErrorCode};

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
}

/// A byte range of one reply.
type Span = (usize, usize);

impl Replies {
    /// Appends one reply written by `encode`.
    pub fn push(&mut self, durable: bool, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        encode(&mut self.bytes);
        if durable {
            self.durable.push((start, self.bytes.len(), None));
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
        let fallback = Some((from, self.fallbacks.len()));
        self.durable.push((start, self.bytes.len(), fallback));
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether a reply depends on the commit: an ACK, an error counting
    /// staged bets, or an answer with a fallback.
    pub fn depends_on_commit(&self) -> bool {
        !self.durable.is_empty()
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
                    None => wire::encode_error(
                        out,
                        ErrorCode::Storage,
                        0,
                        "the bets could not be stored; nothing was acknowledged, send them again",
                    ),
                }
                at = end;
            }
            out.extend_from_slice(&self.bytes[at..]);
        }
        self.bytes.clear();
        self.durable.clear();
        self.fallbacks.clear();
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
