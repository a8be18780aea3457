//! The wire format against the normative vectors of docs/protocol.md
//! (`tests/fixtures/protocol-vectors.txt`), frame splits, and broken input.

use lottery::bets::bet::Bet;
use lottery::wire::{self, Date, ErrorCode, Frame, WireError};

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// The vectors as (description, frame bytes).
fn vectors() -> Vec<(String, Vec<u8>)> {
    let text = include_str!("fixtures/protocol-vectors.txt");
    let mut out = Vec::new();
    let mut title = None;
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(t) = line.strip_prefix("## ") {
            title = Some(t.to_string());
        } else if !line.starts_with('#') {
            out.push((title.take().expect("a title before each frame"), hex(line)));
        }
    }
    assert_eq!(out.len(), 12, "every vector of the fixture is read");
    out
}

/// Re-encodes a decoded frame with the encoder functions, from owned values.
fn reencode(frame: &Frame<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    match *frame {
        Frame::Ack { agency, stored } => wire::encode_ack(&mut out, agency, stored),
        Frame::Batch {
            agency,
            first,
            bets,
        } => {
            let owned: Vec<Bet> = bets
                .iter()
                .map(|b| Bet {
                    first_name: String::from_utf8(b.first_name.to_vec()).unwrap(),
                    last_name: String::from_utf8(b.last_name.to_vec()).unwrap(),
                    document: String::from_utf8(b.document.to_vec()).unwrap(),
                    birthdate: b.birthdate,
                    number: b.number,
                })
                .collect();
            let refs: Vec<_> = owned.iter().map(Bet::as_ref).collect();
            wire::encode_batch(&mut out, agency, first, &refs);
        }
        Frame::Done { agency, total } => wire::encode_done(&mut out, agency, total),
        Frame::GetWinners { agency, wait } => wire::encode_get_winners(&mut out, agency, wait),
        Frame::Winners {
            agency,
            total,
            last,
            documents,
        } => {
            let docs: Vec<String> = documents.iter().map(str::to_owned).collect();
            wire::encode_winners(&mut out, agency, total, last, &docs);
        }
        Frame::NotReady { done, expected } => wire::encode_not_ready(&mut out, done, expected),
        Frame::Error {
            code,
            detail,
            message,
        } => wire::encode_error(&mut out, ErrorCode::from_u8(code).unwrap(), detail, message),
    }
    out
}

#[test]
fn every_vector_decodes_whole_and_reencodes_to_the_same_bytes() {
    for (title, bytes) in vectors() {
        let (frame, used) = wire::decode(&bytes)
            .unwrap_or_else(|e| panic!("{title}: {e}"))
            .unwrap_or_else(|| panic!("{title}: incomplete"));
        assert_eq!(used, bytes.len(), "{title}");
        assert_eq!(reencode(&frame), bytes, "{title}");
    }
}

#[test]
fn vectors_decode_to_the_values_their_titles_name() {
    let v = vectors();
    let decoded: Vec<Frame<'_>> = v
        .iter()
        .map(|(_, b)| wire::decode(b).unwrap().unwrap().0)
        .collect();

    let Frame::Batch {
        agency: 1,
        first: 0,
        bets,
    } = decoded[0]
    else {
        panic!("{:?}", decoded[0])
    };
    let bets: Vec<_> = bets.iter().collect();
    assert_eq!(bets.len(), 2);
    assert_eq!(bets[0].first_name, b"Santiago Lionel");
    assert_eq!(bets[0].last_name, b"Lorca");
    assert_eq!(bets[0].document, b"30904465");
    assert_eq!(
        bets[0].birthdate,
        Date {
            year: 1999,
            month: 3,
            day: 17
        }
    );
    assert_eq!(bets[0].number, 2201);
    assert_eq!(bets[1].first_name, "Tiago Nicolás".as_bytes());

    let Frame::Batch {
        agency: 2,
        first: 120,
        bets,
    } = decoded[1]
    else {
        panic!("{:?}", decoded[1])
    };
    let bet = bets.iter().next().unwrap();
    assert_eq!(bet.document, b"00000050");
    assert_eq!(bet.number, 7574);

    assert_eq!(
        decoded[2],
        Frame::Done {
            agency: 1,
            total: 26936
        }
    );
    assert_eq!(
        decoded[3],
        Frame::GetWinners {
            agency: 3,
            wait: true
        }
    );
    assert_eq!(
        decoded[4],
        Frame::GetWinners {
            agency: 3,
            wait: false
        }
    );
    assert_eq!(
        decoded[5],
        Frame::Ack {
            agency: 1,
            stored: 2
        }
    );
    let Frame::Winners {
        agency: 1,
        total: 2,
        last: true,
        documents,
    } = decoded[6]
    else {
        panic!("{:?}", decoded[6])
    };
    assert_eq!(
        documents.iter().collect::<Vec<_>>(),
        ["00000000", "00000099"]
    );
    let Frame::Winners {
        agency: 5,
        total: 0,
        last: true,
        documents,
    } = decoded[7]
    else {
        panic!("{:?}", decoded[7])
    };
    assert!(documents.is_empty());
    assert_eq!(
        decoded[8],
        Frame::NotReady {
            done: 3,
            expected: 5
        }
    );
    assert_eq!(
        decoded[9],
        Frame::Error {
            code: 7,
            detail: 120,
            message: "expected bet 120"
        }
    );
    assert_eq!(
        decoded[10],
        Frame::Error {
            code: 4,
            detail: 0,
            message: "bad date"
        }
    );
    assert_eq!(
        decoded[11],
        Frame::Error {
            code: 11,
            detail: 2,
            message: "bound to agency 1"
        }
    );
    assert_eq!(
        wire::ErrorCode::from_u8(11),
        Some(wire::ErrorCode::Forbidden)
    );
    assert!(wire::ErrorCode::Forbidden.closes_connection());
}

#[test]
fn every_proper_prefix_of_a_frame_is_incomplete() {
    for (title, bytes) in vectors() {
        for cut in 0..bytes.len() {
            assert_eq!(
                wire::decode(&bytes[..cut]),
                Ok(None),
                "{title} cut at {cut}"
            );
        }
    }
}

#[test]
fn frames_split_at_every_offset_reassemble_in_order() {
    let all: Vec<u8> = vectors().into_iter().flat_map(|(_, b)| b).collect();
    let whole = decode_stream(&all, all.len());
    assert_eq!(whole.len(), 12);
    for split in 1..all.len() {
        assert_eq!(
            decode_stream(&all, split),
            whole,
            "fed in pieces of {split}"
        );
    }
}

/// Feeds `stream` to a reassembly buffer `piece` bytes at a time and returns
/// each frame's bytes as decoded.
fn decode_stream(stream: &[u8], piece: usize) -> Vec<Vec<u8>> {
    let mut buf = Vec::new();
    let mut frames = Vec::new();
    for chunk in stream.chunks(piece) {
        buf.extend_from_slice(chunk);
        while let Some((frame, used)) = wire::decode(&buf).unwrap() {
            frames.push(reencode(&frame));
            buf.drain(..used);
        }
    }
    assert!(buf.is_empty());
    frames
}

#[test]
fn a_zero_length_is_malformed() {
    assert!(matches!(
        wire::decode(&[0, 0]),
        Err(WireError::Malformed(_))
    ));
    assert_eq!(
        wire::decode(&[0, 0]).unwrap_err().code(),
        ErrorCode::Malformed
    );
}

#[test]
fn an_oversized_length_is_too_large_as_soon_as_it_is_seen() {
    // 8190 is the largest len: a whole frame of 8192 bytes.
    let err = wire::decode(&[0x1f, 0xff]).unwrap_err();
    assert_eq!(err, WireError::TooLarge(0x1fff));
    assert_eq!(err.detail(), 0x1fff);
    assert_eq!(
        wire::decode(&[0xff, 0xff, 2]).unwrap_err(),
        WireError::TooLarge(0xffff)
    );
    assert_eq!(wire::decode(&[0x1f, 0xfe, 2]), Ok(None));
}

#[test]
fn an_unknown_type_is_reported_with_the_byte_seen() {
    for t in [0u8, 8, 0x7f, 0xff] {
        let err = wire::decode(&[0, 1, t]).unwrap_err();
        assert_eq!(err, WireError::UnknownType(t));
        assert_eq!(err.code(), ErrorCode::UnknownType);
        assert_eq!(err.detail(), t as u32);
    }
}

#[test]
fn truncated_and_trailing_bodies_are_malformed() {
    for (title, bytes) in vectors() {
        let body_len = bytes.len() - 3;
        // A len that stops short of the body the type requires.
        for shorter in 0..body_len {
            let mut frame = bytes[..3 + shorter].to_vec();
            frame[..2].copy_from_slice(&((shorter + 1) as u16).to_be_bytes());
            assert!(
                matches!(wire::decode(&frame), Err(WireError::Malformed(_))),
                "{title} with a body of {shorter} bytes"
            );
        }
        // One byte too many.
        let mut frame = bytes.clone();
        frame.push(0);
        frame[..2].copy_from_slice(&((body_len + 2) as u16).to_be_bytes());
        assert!(
            matches!(wire::decode(&frame), Err(WireError::Malformed(_))),
            "{title} with a trailing byte"
        );
    }
}

#[test]
fn flags_other_than_zero_or_one_and_empty_batches_are_malformed() {
    assert!(matches!(
        wire::decode(&hex("0006040000000302")),
        Err(WireError::Malformed(_))
    ));
    // BATCH with count = 0.
    assert!(matches!(
        wire::decode(&hex("000b0200000001000000000000")),
        Err(WireError::Malformed(_))
    ));
}

#[test]
fn bytes_after_a_whole_frame_are_left_for_the_next_decode() {
    let mut bytes = hex("0006040000000301");
    bytes.extend_from_slice(&[0x00]);
    let (frame, used) = wire::decode(&bytes).unwrap().unwrap();
    assert_eq!(
        frame,
        Frame::GetWinners {
            agency: 3,
            wait: true
        }
    );
    assert_eq!(used, 8);
    assert_eq!(wire::decode(&bytes[used..]), Ok(None));
}

#[test]
fn long_winner_lists_split_into_frames_that_fit() {
    let docs: Vec<String> = (0..2000).map(|i| format!("{i:016}")).collect();
    let mut rest = &docs[..];
    let mut frames = 0;
    while !rest.is_empty() {
        let n = wire::winners_frame_split(rest);
        assert!(n > 0);
        let mut out = Vec::new();
        wire::encode_winners(&mut out, 1, docs.len() as u32, n == rest.len(), &rest[..n]);
        assert!(out.len() <= wire::MAX_FRAME);
        assert!(wire::decode(&out).unwrap().is_some());
        rest = &rest[n..];
        frames += 1;
    }
    assert_eq!(frames, 5);
}

#[test]
fn error_messages_longer_than_255_bytes_are_cut_at_a_char_boundary() {
    let message = "á".repeat(200);
    let mut out = Vec::new();
    wire::encode_error(&mut out, ErrorCode::Malformed, 0, &message);
    let (Frame::Error { message: m, .. }, _) = wire::decode(&out).unwrap().unwrap() else {
        panic!()
    };
    assert_eq!(m.len(), 254);
}
