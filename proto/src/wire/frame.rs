//! Bytes to frames: the decoder of `docs/protocol.md` v1 and the borrowed frames it yields.
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
//! is [`crate::bets::bet`]'s job, because a bad bet is `INVALID_BET` with the
//! connection kept open, while a bad structure is `MALFORMED` and closes it.

use std::fmt;

use super::codes::{ErrorCode, HEADER, MAX_LEN, kind};

/// A calendar date as it travels: `year:u16, month:u8, day:u8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    pub year: u16,
    pub month: u8,
    pub day: u8,
}

/// One bet as decoded from a `BATCH`, borrowing the frame's bytes.
/// The text fields are raw bytes until [`crate::bets::bet::validate`] checks them.
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

    /// The bets with their text as it lies in the frame ([`BetText`]).
    pub fn iter_text(&self) -> impl Iterator<Item = (BetFields<'a>, BetText<'a>)> + 'a {
        let mut bets = self.iter();
        std::iter::from_fn(move || {
            let rest = bets.rest;
            let bet = bets.next()?;
            // The first name's length byte, then first name, a length byte,
            // last name, a length byte, document.
            let len = bet.first_name.len() + bet.last_name.len() + bet.document.len() + 2;
            Some((bet, BetText(&rest[1..1 + len])))
        })
    }
}

/// A bet's first name, last name and document as they lie in the frame: one
/// slice in which the two length bytes between the three fields stand where
/// a CSV row has its commas. A row writer copies it once and puts the commas
/// in, rather than copying three fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BetText<'a>(pub &'a [u8]);

impl<'a> IntoIterator for Bets<'a> {
    type Item = BetFields<'a>;
    type IntoIter = BetsIter<'a>;
    fn into_iter(self) -> BetsIter<'a> {
        self.iter()
    }
}

#[derive(Clone, Debug)]
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

/// The length of the longest run of whole frames at the start of `frames`
/// (bytes the encoder wrote) that fits in `limit` bytes, but at least its
/// first frame: how a stream of ready frames is cut into pieces for a
/// bounded output without splitting a frame between them.
pub fn whole_frames(frames: &[u8], limit: usize) -> usize {
    let mut end = 0;
    while let Some(len) = frames.get(end..end + 2) {
        let size = 2 + u16::from_be_bytes([len[0], len[1]]) as usize;
        if end > 0 && end + size > limit {
            break;
        }
        end += size;
    }
    end.min(frames.len())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{encode_ack, encode_winners};

    #[test]
    fn whole_frames_cuts_only_between_frames() {
        let mut frames = Vec::new();
        encode_ack(&mut frames, 1, 2);
        let ack = frames.len();
        encode_winners(&mut frames, 1, 1, true, &["30111222"]);
        assert_eq!(whole_frames(&frames, frames.len()), frames.len());
        assert_eq!(whole_frames(&frames, frames.len() - 1), ack);
        assert_eq!(whole_frames(&frames, ack), ack);
        assert_eq!(whole_frames(&frames[ack..], 0), frames.len() - ack);
        assert_eq!(whole_frames(&[], 100), 0);
    }
}
