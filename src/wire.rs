//! The wire format of `PROTOCOL.md` v1: frames to bytes and bytes to frames.
//!
//! Pure code, no I/O. Every frame is `len: u16 BE | type: u8 | body`, at most
//! [`MAX_FRAME`] bytes in all. [`decode`] borrows from the caller's buffer so the
//! central can validate and store a batch without copying its bets; the
//! `encode_*` functions append one whole frame to a `Vec<u8>`.
//!
//! The decoder's contract: `Ok(None)` means "incomplete, wait for more bytes";
//! `Err` means the stream is broken and the connection must be answered with
//! [`WireError::code`] and closed; `Ok(Some((frame, n)))` means the first `n`
//! bytes were one whole frame. Bytes are consumed only once a whole frame is
//! there.
//!
//! Bet *contents* (UTF-8, digits, calendar dates) are not checked here: that
//! is [`crate::bet`]'s job, because a bad bet is `INVALID_BET` with the
//! connection kept open, while a bad structure is `MALFORMED` and closes it.

use std::fmt;

/// The largest whole frame, header included, in either direction.
pub const MAX_FRAME: usize = 8192;
/// Bytes before the body: the `len` field and the type byte.
pub const HEADER: usize = 3;
/// The largest `len` value (it counts the type byte and the body).
pub const MAX_LEN: usize = MAX_FRAME - 2;

/// Frame type bytes.
pub mod kind {
    pub const ACK: u8 = 0x01;
    pub const BATCH: u8 = 0x02;
    pub const DONE: u8 = 0x03;
    pub const GET_WINNERS: u8 = 0x04;
    pub const WINNERS: u8 = 0x05;
    pub const NOT_READY: u8 = 0x06;
    pub const ERROR: u8 = 0x07;
}

/// `BATCH` body bytes before the bets: `agency:u32, first:u32, count:u16`.
pub const BATCH_PREFIX: usize = 10;
/// `WINNERS` body bytes before the documents: `agency, total, last, count`.
pub const WINNERS_PREFIX: usize = 11;
/// The fixed part of one encoded bet: three `str8` length bytes, the date, the number.
pub const BET_FIXED: usize = 3 + 4 + 2;

/// The `ERROR` codes of the protocol; the connection is closed after the
/// first three, after `ShuttingDown` and after `Forbidden`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    Malformed = 1,
    TooLarge = 2,
    UnknownType = 3,
    InvalidBet = 4,
    UnknownAgency = 5,
    AgencyClosed = 6,
    OutOfOrder = 7,
    MissingBets = 8,
    ShuttingDown = 9,
    Storage = 10,
    /// A request named an agency other than the one the connection acts for.
    Forbidden = 11,
}

impl ErrorCode {
    pub fn from_u8(code: u8) -> Option<ErrorCode> {
        use ErrorCode::*;
        Some(match code {
            1 => Malformed,
            2 => TooLarge,
            3 => UnknownType,
            4 => InvalidBet,
            5 => UnknownAgency,
            6 => AgencyClosed,
            7 => OutOfOrder,
            8 => MissingBets,
            9 => ShuttingDown,
            10 => Storage,
            11 => Forbidden,
            _ => return None,
        })
    }

    /// The protocol's name for the code, as written in logs.
    pub fn name(self) -> &'static str {
        use ErrorCode::*;
        match self {
            Malformed => "MALFORMED",
            TooLarge => "TOO_LARGE",
            UnknownType => "UNKNOWN_TYPE",
            InvalidBet => "INVALID_BET",
            UnknownAgency => "UNKNOWN_AGENCY",
            AgencyClosed => "AGENCY_CLOSED",
            OutOfOrder => "OUT_OF_ORDER",
            MissingBets => "MISSING_BETS",
            ShuttingDown => "SHUTTING_DOWN",
            Storage => "STORAGE",
            Forbidden => "FORBIDDEN",
        }
    }

    /// Whether the sender of this error closes the connection after it.
    pub fn closes_connection(self) -> bool {
        matches!(
            self,
            ErrorCode::Malformed
                | ErrorCode::TooLarge
                | ErrorCode::UnknownType
                | ErrorCode::ShuttingDown
                | ErrorCode::Forbidden
        )
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A calendar date as it travels: `year:u16, month:u8, day:u8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// One bet as decoded from a `BATCH`, borrowing the frame's bytes.
/// The text fields are raw bytes until [`crate::bet::validate`] checks them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BetFields<'a> {
    pub first_name: &'a [u8],
    pub last_name: &'a [u8],
    pub document: &'a [u8],
    pub birthdate: Date,
    pub number: u16,
}

/// The bets of a `BATCH`, structurally checked, iterated without copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bets<'a> {
    count: u16,
    bytes: &'a [u8],
}

impl<'a> Bets<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> BetsIter<'a> {
        BetsIter {
            left: self.count,
            rest: self.bytes,
        }
    }
}

impl<'a> IntoIterator for Bets<'a> {
    type Item = BetFields<'a>;
    type IntoIter = BetsIter<'a>;
    fn into_iter(self) -> BetsIter<'a> {
        self.iter()
    }
}

pub struct BetsIter<'a> {
    left: u16,
    rest: &'a [u8],
}

impl<'a> Iterator for BetsIter<'a> {
    type Item = BetFields<'a>;

    fn next(&mut self) -> Option<BetFields<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        // The decoder walked these bytes already, so they are known to fit.
        let mut r = Reader::new(self.rest);
        let bet = read_bet(&mut r).expect("bets were checked by decode");
        self.rest = r.rest;
        Some(bet)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.left as usize, Some(self.left as usize))
    }
}

/// The documents of a `WINNERS` frame, iterated without copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Documents<'a> {
    count: u16,
    bytes: &'a [u8],
}

impl<'a> Documents<'a> {
    pub fn len(&self) -> usize {
        self.count as usize
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        let mut r = Reader::new(self.bytes);
        (0..self.count).map(move |_| {
            let raw = r.str8().expect("documents were checked by decode");
            std::str::from_utf8(raw).expect("documents were checked by decode")
        })
    }
}

/// One decoded frame, borrowing from the receive buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Ack {
        agency: u32,
        stored: u32,
    },
    Batch {
        agency: u32,
        first: u32,
        bets: Bets<'a>,
    },
    Done {
        agency: u32,
        total: u32,
    },
    GetWinners {
        agency: u32,
        wait: bool,
    },
    Winners {
        agency: u32,
        total: u32,
        last: bool,
        documents: Documents<'a>,
    },
    NotReady {
        done: u32,
        expected: u32,
    },
    Error {
        code: u8,
        detail: u32,
        message: &'a str,
    },
}

impl Frame<'_> {
    /// The type byte this frame travels with.
    pub fn kind(&self) -> u8 {
        match self {
            Frame::Ack { .. } => kind::ACK,
            Frame::Batch { .. } => kind::BATCH,
            Frame::Done { .. } => kind::DONE,
            Frame::GetWinners { .. } => kind::GET_WINNERS,
            Frame::Winners { .. } => kind::WINNERS,
            Frame::NotReady { .. } => kind::NOT_READY,
            Frame::Error { .. } => kind::ERROR,
        }
    }
}

/// Why a byte stream is not a valid sequence of frames.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireError {
    /// `len` is 0, or the body does not have the shape its type requires.
    Malformed(&'static str),
    /// The frame would be larger than [`MAX_FRAME`]; holds the `len` seen.
    TooLarge(u16),
    /// A type byte the protocol does not define; holds the byte.
    UnknownType(u8),
}

impl WireError {
    pub fn code(self) -> ErrorCode {
        match self {
            WireError::Malformed(_) => ErrorCode::Malformed,
            WireError::TooLarge(_) => ErrorCode::TooLarge,
            WireError::UnknownType(_) => ErrorCode::UnknownType,
        }
    }

    /// The `detail` field of the `ERROR` that answers this.
    pub fn detail(self) -> u32 {
        match self {
            WireError::Malformed(_) => 0,
            WireError::TooLarge(len) => len as u32,
            WireError::UnknownType(t) => t as u32,
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Malformed(why) => write!(f, "malformed frame: {why}"),
            WireError::TooLarge(len) => {
                write!(f, "frame too large: len {len} exceeds {MAX_LEN}")
            }
            WireError::UnknownType(t) => write!(f, "unknown frame type 0x{t:02x}"),
        }
    }
}

impl std::error::Error for WireError {}

/// Decodes the first frame of `buf`.
///
/// Oversized lengths and unknown types are reported as soon as the header
/// shows them, without waiting for a body that may never come.
pub fn decode(buf: &[u8]) -> Result<Option<(Frame<'_>, usize)>, WireError> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let len = u16::from_be_bytes([buf[0], buf[1]]);
    if len == 0 {
        return Err(WireError::Malformed("frame length is 0"));
    }
    if len as usize > MAX_LEN {
        return Err(WireError::TooLarge(len));
    }
    if buf.len() < 3 {
        return Ok(None);
    }
    let kind = buf[2];
    if !(kind::ACK..=kind::ERROR).contains(&kind) {
        return Err(WireError::UnknownType(kind));
    }
    let end = 2 + len as usize;
    if buf.len() < end {
        return Ok(None);
    }
    let frame = decode_body(kind, &buf[HEADER..end])?;
    Ok(Some((frame, end)))
}

fn decode_body(kind: u8, body: &[u8]) -> Result<Frame<'_>, WireError> {
    let mut r = Reader::new(body);
    let frame = match kind {
        kind::ACK => Frame::Ack {
            agency: r.u32()?,
            stored: r.u32()?,
        },
        kind::BATCH => {
            let agency = r.u32()?;
            let first = r.u32()?;
            let count = r.u16()?;
            if count == 0 {
                return Err(WireError::Malformed("batch with no bets"));
            }
            let bytes = r.rest;
            for _ in 0..count {
                read_bet(&mut r)?;
            }
            let bytes = &bytes[..bytes.len() - r.rest.len()];
            Frame::Batch {
                agency,
                first,
                bets: Bets { count, bytes },
            }
        }
        kind::DONE => Frame::Done {
            agency: r.u32()?,
            total: r.u32()?,
        },
        kind::GET_WINNERS => Frame::GetWinners {
            agency: r.u32()?,
            wait: r.flag("wait must be 0 or 1")?,
        },
        kind::WINNERS => {
            let agency = r.u32()?;
            let total = r.u32()?;
            let last = r.flag("last must be 0 or 1")?;
            let count = r.u16()?;
            let bytes = r.rest;
            for _ in 0..count {
                let doc = r.str8()?;
                std::str::from_utf8(doc)
                    .map_err(|_| WireError::Malformed("document is not UTF-8"))?;
            }
            let bytes = &bytes[..bytes.len() - r.rest.len()];
            Frame::Winners {
                agency,
                total,
                last,
                documents: Documents { count, bytes },
            }
        }
        kind::NOT_READY => Frame::NotReady {
            done: r.u32()?,
            expected: r.u32()?,
        },
        kind::ERROR => {
            let code = r.u8()?;
            let detail = r.u32()?;
            let message = std::str::from_utf8(r.str8()?)
                .map_err(|_| WireError::Malformed("error message is not UTF-8"))?;
            Frame::Error {
                code,
                detail,
                message,
            }
        }
        _ => return Err(WireError::UnknownType(kind)),
    };
    if !r.rest.is_empty() {
        return Err(WireError::Malformed("trailing bytes after the body"));
    }
    Ok(frame)
}

fn read_bet<'a>(r: &mut Reader<'a>) -> Result<BetFields<'a>, WireError> {
    Ok(BetFields {
        first_name: r.str8()?,
        last_name: r.str8()?,
        document: r.str8()?,
        birthdate: Date {
            year: r.u16()?,
            month: r.u8()?,
            day: r.u8()?,
        },
        number: r.u16()?,
    })
}

/// A cursor over a body; every read fails with `MALFORMED` when the body is short.
struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(rest: &'a [u8]) -> Self {
        Reader { rest }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.rest.len() < n {
            return Err(WireError::Malformed("body shorter than its type requires"));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn str8(&mut self) -> Result<&'a [u8], WireError> {
        let n = self.u8()? as usize;
        self.take(n)
    }

    fn flag(&mut self, why: &'static str) -> Result<bool, WireError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Malformed(why)),
        }
    }
}

// ---------------------------------------------------------------------------
// Encoding. Each function appends exactly one frame to `out`.

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
    let mut end = message.len().min(255);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    let at = begin(out, kind::ERROR);
    out.push(code as u8);
    out.extend_from_slice(&detail.to_be_bytes());
    put_str8(out, &message.as_bytes()[..end]);
    finish(out, at);
}
