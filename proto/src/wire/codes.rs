//! The protocol's numbers (`docs/protocol.md` v1): frame sizes, the type
//! bytes, the fixed parts of a body, and the `ERROR` codes with their names.
//! Pure constants and their names; the decoder and the encoders share them.

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
