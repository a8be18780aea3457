//! The central's reply frames (ACK, WINNERS, NOT_READY, ERROR) as owned
//! values, so that an agency or the bench can keep one after its receive
//! buffer is reused, and write it again with the project's own encoders.
//! [`super::frame::Frame`] borrows; this copies.

use super::codes::ErrorCode;
use super::encode;
use super::frame::Frame;

/// A frame the central sends, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Ack {
        agency: u32,
        stored: u32,
    },
    Winners {
        agency: u32,
        total: u32,
        last: bool,
        documents: Vec<String>,
    },
    NotReady {
        done: u32,
        expected: u32,
    },
    Error {
        /// `None` for a code this build does not know.
        code: Option<ErrorCode>,
        raw_code: u8,
        detail: u32,
        message: String,
    },
}

impl Reply {
    /// The owned copy of a reply frame; a request frame (BATCH, DONE,
    /// GET_WINNERS), which a central never sends, is `Err` with its type byte.
    pub fn from_frame(frame: &Frame<'_>) -> Result<Reply, u8> {
        Ok(match *frame {
            Frame::Ack { agency, stored } => Reply::Ack { agency, stored },
            Frame::Winners {
                agency,
                total,
                last,
                documents,
            } => Reply::Winners {
                agency,
                total,
                last,
                documents: documents.iter().map(str::to_owned).collect(),
            },
            Frame::NotReady { done, expected } => Reply::NotReady { done, expected },
            Frame::Error {
                code,
                detail,
                message,
            } => Reply::Error {
                code: ErrorCode::from_u8(code),
                raw_code: code,
                detail,
                message: message.to_owned(),
            },
            Frame::Batch { .. } | Frame::Done { .. } | Frame::GetWinners { .. } => {
                return Err(frame.kind());
            }
        })
    }
}

impl Reply {
    /// Appends this reply as one frame, with the encoders the central uses.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Reply::Ack { agency, stored } => encode::encode_ack(out, *agency, *stored),
            Reply::Winners {
                agency,
                total,
                last,
                documents,
            } => encode::encode_winners(out, *agency, *total, *last, documents),
            Reply::NotReady { done, expected } => encode::encode_not_ready(out, *done, *expected),
            Reply::Error {
                raw_code,
                detail,
                message,
                ..
            } => encode::encode_error_code(out, *raw_code, *detail, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{self, kind};

    fn decoded(bytes: &[u8]) -> Result<Reply, u8> {
        let (frame, used) = wire::decode(bytes).unwrap().unwrap();
        assert_eq!(used, bytes.len());
        Reply::from_frame(&frame)
    }

    #[test]
    fn reply_frames_are_copied_whole() {
        let mut bytes = Vec::new();
        wire::encode_winners(&mut bytes, 3, 2, false, &["1", "0002"]);
        assert_eq!(
            decoded(&bytes),
            Ok(Reply::Winners {
                agency: 3,
                total: 2,
                last: false,
                documents: vec!["1".into(), "0002".into()],
            })
        );
        bytes.clear();
        wire::encode_error(&mut bytes, ErrorCode::OutOfOrder, 7, "gap");
        assert_eq!(
            decoded(&bytes),
            Ok(Reply::Error {
                code: Some(ErrorCode::OutOfOrder),
                raw_code: ErrorCode::OutOfOrder as u8,
                detail: 7,
                message: "gap".into(),
            })
        );
    }

    #[test]
    fn an_unknown_error_code_keeps_its_byte() {
        // ERROR, code 200, detail 0, empty message.
        let bytes = [0, 7, kind::ERROR, 200, 0, 0, 0, 0, 0];
        match decoded(&bytes) {
            Ok(Reply::Error {
                code: None,
                raw_code: 200,
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_frame_is_not_a_reply() {
        let mut bytes = Vec::new();
        wire::encode_done(&mut bytes, 1, 5);
        assert_eq!(decoded(&bytes), Err(kind::DONE));
    }
}
