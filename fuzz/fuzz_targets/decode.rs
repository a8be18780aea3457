//! Fuzzes `lottery::wire::decode` with arbitrary bytes.
//!
//! Besides "never panics", it checks the decoder's contract on every input:
//! `Ok(None)` only for a buffer shorter than the frame its header announces;
//! an error only of the three kinds that close a connection; a decoded frame
//! that is exactly `2 + len` bytes, whose borrowed contents can be walked,
//! that re-encodes (by an encoder written here from `PROTOCOL.md`) to the
//! very bytes it came from, and none of whose proper prefixes decodes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lottery::wire::{self, Frame, WireError};

fuzz_target!(|data: &[u8]| check(data));

fn check(data: &[u8]) {
    let announced = (data.len() >= 2).then(|| 2 + u16::from_be_bytes([data[0], data[1]]) as usize);
    match wire::decode(data) {
        Ok(None) => {
            assert!(data.len() < 3 || data.len() < announced.unwrap());
        }
        Err(e) => {
            assert!(matches!(
                e,
                WireError::Malformed(_) | WireError::TooLarge(_) | WireError::UnknownType(_)
            ));
            assert!(e.code().closes_connection());
            let _ = (e.detail(), e.to_string());
        }
        Ok(Some((frame, n))) => {
            assert_eq!(Some(n), announced);
            assert!(n <= data.len() && n <= wire::MAX_FRAME);
            assert_eq!(reencode(&frame), &data[..n]);
            for cut in [0, 1, 2, 3, n / 2, n - 1] {
                if cut < n {
                    assert_eq!(
                        wire::decode(&data[..cut]),
                        Ok(None),
                        "prefix of {cut} bytes"
                    );
                }
            }
            // What follows the frame is left for the next decode.
            let _ = wire::decode(&data[n..]);
        }
    }
}

/// Writes a decoded frame back to bytes, walking every borrowed field.
fn reencode(frame: &Frame<'_>) -> Vec<u8> {
    let mut body = Vec::new();
    let str8 = |out: &mut Vec<u8>, s: &[u8]| {
        out.push(u8::try_from(s.len()).unwrap());
        out.extend_from_slice(s);
    };
    match *frame {
        Frame::Ack { agency, stored } => {
            body.extend(agency.to_be_bytes());
            body.extend(stored.to_be_bytes());
        }
        Frame::Batch {
            agency,
            first,
            bets,
        } => {
            body.extend(agency.to_be_bytes());
            body.extend(first.to_be_bytes());
            body.extend(u16::try_from(bets.len()).unwrap().to_be_bytes());
            assert!(!bets.is_empty());
            for bet in bets.iter() {
                str8(&mut body, bet.first_name);
                str8(&mut body, bet.last_name);
                str8(&mut body, bet.document);
                body.extend(bet.birthdate.year.to_be_bytes());
                body.push(bet.birthdate.month);
                body.push(bet.birthdate.day);
                body.extend(bet.number.to_be_bytes());
            }
        }
        Frame::Done { agency, total } => {
            body.extend(agency.to_be_bytes());
            body.extend(total.to_be_bytes());
        }
        Frame::GetWinners { agency, wait } => {
            body.extend(agency.to_be_bytes());
            body.push(u8::from(wait));
        }
        Frame::Winners {
            agency,
            total,
            last,
            documents,
        } => {
            body.extend(agency.to_be_bytes());
            body.extend(total.to_be_bytes());
            body.push(u8::from(last));
            body.extend(u16::try_from(documents.len()).unwrap().to_be_bytes());
            let mut walked = 0;
            for doc in documents.iter() {
                str8(&mut body, doc.as_bytes());
                walked += 1;
            }
            assert_eq!(walked, documents.len());
        }
        Frame::NotReady { done, expected } => {
            body.extend(done.to_be_bytes());
            body.extend(expected.to_be_bytes());
        }
        Frame::Error {
            code,
            detail,
            message,
        } => {
            body.push(code);
            body.extend(detail.to_be_bytes());
            str8(&mut body, message.as_bytes());
        }
    }
    let mut out = u16::try_from(body.len() + 1)
        .unwrap()
        .to_be_bytes()
        .to_vec();
    out.push(frame.kind());
    out.extend(body);
    out
}
