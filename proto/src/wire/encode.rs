//! Frames to bytes: each `encode_*` function appends exactly one whole
//! frame of `docs/protocol.md` v1 to a `Vec<u8>`, so a connection's replies and
//! an agency's batches are built in place, without copies.

use super::codes::{
    BATCH_PREFIX, BET_FIXED, ErrorCode, HEADER, MAX_FRAME, MAX_LEN, WINNERS_PREFIX, kind,
};
use super::frame::Date;

/// A bet to encode: the borrowed text of one row of an agency's file.
/// Each text field must be at most 255 bytes (a valid bet is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BetRef<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub document: &'a str,
    pub birthdate: Date,
    pub number: u16,
}

impl BetRef<'_> {
    /// How many bytes this bet takes inside a `BATCH` body.
    pub fn encoded_len(&self) -> usize {
        BET_FIXED + self.first_name.len() + self.last_name.len() + self.document.len()
    }
}

/// Starts a frame of `kind`; returns where its length goes so the caller can
/// patch it once the body is written.
fn begin(out: &mut Vec<u8>, kind: u8) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0, 0, kind]);
    at
}

fn finish(out: &mut [u8], at: usize) {
    let len = out.len() - at - 2;
    assert!(
        len <= MAX_LEN,
        "frame of {len} bytes exceeds the protocol's limit"
    );
    out[at..at + 2].copy_from_slice(&(len as u16).to_be_bytes());
}

fn put_str8(out: &mut Vec<u8>, s: &[u8]) {
    assert!(s.len() <= 255, "str8 field longer than 255 bytes");
    out.push(s.len() as u8);
    out.extend_from_slice(s);
}

fn put_date(out: &mut Vec<u8>, d: Date) {
    out.extend_from_slice(&d.year.to_be_bytes());
    out.push(d.month);
    out.push(d.day);
}

pub fn encode_ack(out: &mut Vec<u8>, agency: u32, stored: u32) {
    let at = begin(out, kind::ACK);
    out.extend_from_slice(&agency.to_be_bytes());
    out.extend_from_slice(&stored.to_be_bytes());
    finish(out, at);
}

/// Appends a `BATCH` of `bets`, which must fit one frame (see [`batch_fits`]).
pub fn encode_batch(out: &mut Vec<u8>, agency: u32, first: u32, bets: &[BetRef<'_>]) {
    assert!(
        !bets.is_empty() && bets.len() <= u16::MAX as usize,
        "a batch carries 1..=65535 bets"
    );
    let at = begin(out, kind::BATCH);
    out.extend_from_slice(&agency.to_be_bytes());
    out.extend_from_slice(&first.to_be_bytes());
    out.extend_from_slice(&(bets.len() as u16).to_be_bytes());
    for bet in bets {
        put_str8(out, bet.first_name.as_bytes());
        put_str8(out, bet.last_name.as_bytes());
        put_str8(out, bet.document.as_bytes());
        put_date(out, bet.birthdate);
        out.extend_from_slice(&bet.number.to_be_bytes());
    }
    finish(out, at);
}

/// Whether a `BATCH` whose bets take `bets_len` body bytes fits one frame.
pub fn batch_fits(bets_len: usize) -> bool {
    HEADER + BATCH_PREFIX + bets_len <= MAX_FRAME
}

pub fn encode_done(out: &mut Vec<u8>, agency: u32, total: u32) {
    let at = begin(out, kind::DONE);
    out.extend_from_slice(&agency.to_be_bytes());
    out.extend_from_slice(&total.to_be_bytes());
    finish(out, at);
}

pub fn encode_get_winners(out: &mut Vec<u8>, agency: u32, wait: bool) {
    let at = begin(out, kind::GET_WINNERS);
    out.extend_from_slice(&agency.to_be_bytes());
    out.push(wait as u8);
    finish(out, at);
}

/// Appends one `WINNERS` frame holding `documents`, which must fit one frame
/// (see [`winners_frame_split`] for splitting a long list).
pub fn encode_winners<S: AsRef<str>>(
    out: &mut Vec<u8>,
    agency: u32,
    total: u32,
    last: bool,
    documents: &[S],
) {
    let at = begin(out, kind::WINNERS);
    out.extend_from_slice(&agency.to_be_bytes());
    out.extend_from_slice(&total.to_be_bytes());
    out.push(last as u8);
    out.extend_from_slice(&(documents.len() as u16).to_be_bytes());
    for doc in documents {
        put_str8(out, doc.as_ref().as_bytes());
    }
    finish(out, at);
}

/// How many of `documents` (from the start) fit in one `WINNERS` frame.
pub fn winners_frame_split<S: AsRef<str>>(documents: &[S]) -> usize {
    let mut size = HEADER + WINNERS_PREFIX;
    for (i, doc) in documents.iter().enumerate() {
        size += 1 + doc.as_ref().len();
        if size > MAX_FRAME || i == u16::MAX as usize {
            return i;
        }
    }
    documents.len()
}

pub fn encode_not_ready(out: &mut Vec<u8>, done: u32, expected: u32) {
    let at = begin(out, kind::NOT_READY);
    out.extend_from_slice(&done.to_be_bytes());
    out.extend_from_slice(&expected.to_be_bytes());
    finish(out, at);
}

/// Appends an `ERROR`; a message longer than 255 bytes is cut at a char boundary.
pub fn encode_error(out: &mut Vec<u8>, code: ErrorCode, detail: u32, message: &str) {
    encode_error_code(out, code as u8, detail, message)
}

/// An `ERROR` with a raw code byte: what [`encode_error`] writes, for a
/// reply kept as it was received (its code maybe unknown to this build).
/// A message longer than a `str8` is cut at a character boundary.
pub fn encode_error_code(out: &mut Vec<u8>, code: u8, detail: u32, message: &str) {
    let mut end = message.len().min(255);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let at = begin(out, kind::ERROR);
    out.push(code);
    out.extend_from_slice(&detail.to_be_bytes());
    put_str8(out, &message.as_bytes()[..end]);
    finish(out, at);
}
