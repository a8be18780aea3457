//! Properties of the central's input handling, checked by proptest on
//! generated input (the fuzz targets in `fuzz/` check the same at scale):
//!
//! - `wire::decode` never panics, whatever the bytes, and keeps its
//!   contract (incomplete only when the header announces more bytes; only
//!   the errors that close a connection);
//! - any frame the encoders write decodes back to the same values;
//! - a stream of frames split at any offsets reassembles to the same frames;
//! - `bet::validate` agrees with an independent model of the rules
//!   (`fuzz/model/bet_rules.rs`);
//! - the central's row of `bets.csv` for any valid bet is byte for byte the
//!   row the `csv` crate's writer (minimal quoting, CRLF: Python's
//!   `csv.writer`) writes, and reads back as the same fields.

#[path = "../fuzz/model/bet_rules.rs"]
mod bet_rules;

use bet_rules::{Field, RawBet, broken_rules};
use lottery::bets::bet::{self, BetError};
use lottery::store::csv::{AgencyField, push_frame_row, push_row};
use lottery::wire::reply::Reply;
use lottery::wire::{self, BetFields, BetRef, Date, ErrorCode, Frame};
use proptest::collection::vec;
use proptest::prelude::*;

/// A frame with owned contents, to generate, encode and compare: the
/// central's replies as the project keeps them ([`Reply`], with its own
/// encoder and decoder), the agencies' requests as generated here.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Owned {
    Reply(Reply),
    Batch {
        agency: u32,
        first: u32,
        bets: Vec<OwnedBet>,
    },
    Done {
        agency: u32,
        total: u32,
    },
    GetWinners {
        agency: u32,
        wait: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct OwnedBet {
    first_name: String,
    last_name: String,
    document: String,
    birthdate: Date,
    number: u16,
}

fn encode(frame: &Owned, out: &mut Vec<u8>) {
    match frame {
        Owned::Reply(reply) => reply.encode(out),
        Owned::Batch {
            agency,
            first,
            bets,
        } => {
            let refs: Vec<BetRef<'_>> = bets
                .iter()
                .map(|b| BetRef {
                    first_name: &b.first_name,
                    last_name: &b.last_name,
                    document: &b.document,
                    birthdate: b.birthdate,
                    number: b.number,
                })
                .collect();
            wire::encode_batch(out, *agency, *first, &refs);
        }
        Owned::Done { agency, total } => wire::encode_done(out, *agency, *total),
        Owned::GetWinners { agency, wait } => wire::encode_get_winners(out, *agency, *wait),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("the frame was encoded from text")
}

fn owned(frame: &Frame<'_>) -> Owned {
    match *frame {
        Frame::Batch {
            agency,
            first,
            bets,
        } => Owned::Batch {
            agency,
            first,
            bets: bets
                .iter()
                .map(|b| OwnedBet {
                    first_name: text(b.first_name),
                    last_name: text(b.last_name),
                    document: text(b.document),
                    birthdate: b.birthdate,
                    number: b.number,
                })
                .collect(),
        },
        Frame::Done { agency, total } => Owned::Done { agency, total },
        Frame::GetWinners { agency, wait } => Owned::GetWinners { agency, wait },
        Frame::Ack { .. }
        | Frame::Winners { .. }
        | Frame::NotReady { .. }
        | Frame::Error { .. } => Owned::Reply(Reply::from_frame(frame).expect("a reply frame")),
    }
}

/// Text of at most `max` bytes (a str8 field), any characters.
fn short_text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", "[a-zA-Záéíóúñ ,\"]{0,40}", "[0-9]{1,16}"].prop_map(move |mut s| {
        while s.len() > max {
            s.pop();
        }
        s
    })
}

fn date() -> impl Strategy<Value = Date> {
    (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(year, month, day)| Date {
        year,
        month,
        day,
    })
}

fn owned_bet() -> impl Strategy<Value = OwnedBet> {
    (
        short_text(255),
        short_text(255),
        short_text(255),
        date(),
        any::<u16>(),
    )
        .prop_map(
            |(first_name, last_name, document, birthdate, number)| OwnedBet {
                first_name,
                last_name,
                document,
                birthdate,
                number,
            },
        )
}

/// Any frame the protocol defines, small enough for one frame.
fn frame() -> impl Strategy<Value = Owned> {
    let codes: Vec<u8> = (1..=10).collect();
    prop_oneof![
        (any::<u32>(), any::<u32>())
            .prop_map(|(agency, stored)| Owned::Reply(Reply::Ack { agency, stored })),
        (any::<u32>(), any::<u32>(), vec(owned_bet(), 1..40))
            .prop_map(|(agency, first, bets)| Owned::Batch {
                agency,
                first,
                bets
            })
            .prop_filter("fits one frame", |f| {
                let Owned::Batch { bets, .. } = f else {
                    unreachable!()
                };
                wire::batch_fits(
                    bets.iter()
                        .map(|b| {
                            wire::BET_FIXED
                                + b.first_name.len()
                                + b.last_name.len()
                                + b.document.len()
                        })
                        .sum(),
                )
            }),
        (any::<u32>(), any::<u32>()).prop_map(|(agency, total)| Owned::Done { agency, total }),
        (any::<u32>(), any::<bool>()).prop_map(|(agency, wait)| Owned::GetWinners { agency, wait }),
        (
            any::<u32>(),
            any::<u32>(),
            any::<bool>(),
            vec(short_text(255), 0..40)
        )
            .prop_map(
                |(agency, total, last, documents)| Owned::Reply(Reply::Winners {
                    agency,
                    total,
                    last,
                    documents
                })
            )
            .prop_filter("fits one frame", |f| {
                let Owned::Reply(Reply::Winners { documents, .. }) = f else {
                    unreachable!()
                };
                wire::winners_frame_split(documents) == documents.len()
            }),
        (any::<u32>(), any::<u32>())
            .prop_map(|(done, expected)| Owned::Reply(Reply::NotReady { done, expected })),
        (
            proptest::sample::select(codes),
            any::<u32>(),
            short_text(255)
        )
            .prop_map(|(code, detail, message)| Owned::Reply(Reply::Error {
                code: ErrorCode::from_u8(code),
                raw_code: code,
                detail,
                message
            })),
    ]
}

/// A bet's fields as they travel: first name, last name, document,
/// `(year, month, day)`, number.
type RawFields = (Vec<u8>, Vec<u8>, Vec<u8>, (u16, u8, u8), u16);

/// Bytes, names and dates around the edges of the rules, and anything at all.
fn raw_bet() -> impl Strategy<Value = RawFields> {
    let name = prop_oneof![
        "[a-zA-Z áéñ]{1,30}".prop_map(String::into_bytes),
        ".{0,8}".prop_map(String::into_bytes),
        "[\\x00-\\x1f\\x7f-\\u{9f} a]{0,4}".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..6),
        (250usize..=260).prop_map(|n| "a".repeat(n).into_bytes()),
        (84usize..=86).prop_map(|n| "ñá€".repeat(n / 3).into_bytes()),
    ];
    let document = prop_oneof![
        "[0-9]{0,18}".prop_map(String::into_bytes),
        "[0-9a ]{1,17}".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..18),
    ];
    let birthdate = prop_oneof![
        (1895u16..2030, 0u8..=13, 0u8..=32),
        (any::<u16>(), any::<u8>(), any::<u8>()),
        (
            prop_oneof![Just(1900u16), Just(2000), Just(2100), 1896u16..2030],
            Just(2u8),
            27u8..=30
        ),
    ];
    let number = prop_oneof![9990u16..10010, any::<u16>()];
    (name.clone(), name, document, birthdate, number)
}

fn today() -> impl Strategy<Value = (u16, u8, u8)> {
    prop_oneof![
        (1990u16..2100, 1u8..=12, 1u8..=28),
        Just({
            let d = bet::today();
            (d.year, d.month, d.day)
        }),
        (any::<u16>(), any::<u8>(), any::<u8>()),
    ]
}

/// A name a valid bet may have: any characters but control characters,
/// with commas, quotes, accents and spaces often.
fn valid_name() -> impl Strategy<Value = String> {
    prop_oneof![
        "[^\\p{Cc}]{1,40}",
        "[a-zA-Záéíóúñ ,\"]{1,40}",
        "[\",]{1,6}",
        "[^\\p{Cc}]{200,255}",
    ]
    .prop_map(|mut s| {
        while s.len() > 255 {
            s.pop();
        }
        s
    })
    .prop_filter("not empty", |s| !s.is_empty())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn a_stored_row_is_what_the_csv_crate_writes_for_any_valid_bet(
        agency in any::<u32>(),
        first_name in valid_name(),
        last_name in valid_name(),
        document in "[0-9]{1,16}",
        birthdate in (1900u16..=2025, 1u8..=12, 1u8..=28)
            .prop_map(|(year, month, day)| Date { year, month, day }),
        number in 0u16..=9999,
    ) {
        let bet = BetFields {
            first_name: first_name.as_bytes(),
            last_name: last_name.as_bytes(),
            document: document.as_bytes(),
            birthdate,
            number,
        };
        let today = Date { year: 9999, month: 12, day: 31 };
        let checked = bet::check(&bet, today);
        prop_assume!(checked.is_ok());
        let mut ours = b"earlier rows\r\n".to_vec();
        push_row(&mut ours, agency, &bet, checked.unwrap());
        let date = String::from_utf8(bet::format_date(birthdate).to_vec()).unwrap();
        let fields = [
            agency.to_string(),
            first_name.clone(),
            last_name.clone(),
            document.clone(),
            date,
            number.to_string(),
        ];
        let mut theirs = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .quote_style(csv::QuoteStyle::Necessary)
            .from_writer(b"earlier rows\r\n".to_vec());
        theirs.write_record(&fields).unwrap();
        let theirs = theirs.into_inner().unwrap();
        prop_assert_eq!(String::from_utf8_lossy(&ours), String::from_utf8_lossy(&theirs));
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&ours[b"earlier rows\r\n".len()..]);
        let read: Vec<String> = reader
            .records()
            .next()
            .unwrap()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        prop_assert_eq!(&read[..], &fields[..]);

        // The central's hot path writes the same row from the bet as it
        // lies in a decoded BATCH frame, neighbours on both sides.
        let neighbour = BetRef {
            first_name: "Ana",
            last_name: "Lorca",
            document: "1",
            birthdate,
            number: 7574,
        };
        let this = BetRef {
            first_name: &first_name,
            last_name: &last_name,
            document: &document,
            birthdate,
            number,
        };
        let mut frame = Vec::new();
        wire::encode_batch(&mut frame, agency, 0, &[neighbour, this, neighbour]);
        let Ok(Some((Frame::Batch { bets, .. }, _))) = wire::decode(&frame) else {
            panic!("the batch decodes");
        };
        let (fields, text) = bets.iter_text().nth(1).unwrap();
        prop_assert_eq!(fields, bet);
        let mut from_frame = b"earlier rows\r\n".to_vec();
        push_frame_row(&mut from_frame, AgencyField::new(agency), &fields, text, checked.unwrap());
        prop_assert_eq!(String::from_utf8_lossy(&from_frame), String::from_utf8_lossy(&ours));
    }

    #[test]
    fn decode_never_panics_and_keeps_its_contract_on_arbitrary_bytes(
        bytes in prop_oneof![vec(any::<u8>(), 0..64), vec(any::<u8>(), 0..9000)]
    ) {
        let announced = (bytes.len() >= 2).then(|| 2 + u16::from_be_bytes([bytes[0], bytes[1]]) as usize);
        match wire::decode(&bytes) {
            Ok(None) => prop_assert!(bytes.len() < 3 || bytes.len() < announced.unwrap()),
            Ok(Some((frame, n))) => {
                prop_assert_eq!(Some(n), announced);
                prop_assert!(n <= bytes.len() && n <= wire::MAX_FRAME);
                // The borrowed contents can be walked (their iterators
                // rely on what decode checked).
                match frame {
                    Frame::Batch { bets, .. } => prop_assert_eq!(bets.iter().count(), bets.len()),
                    Frame::Winners { documents, .. } => {
                        prop_assert_eq!(documents.iter().count(), documents.len())
                    }
                    _ => {}
                }
            }
            Err(e) => prop_assert!(e.code().closes_connection()),
        }
    }

    #[test]
    fn decode_never_panics_on_arbitrary_bodies_behind_a_valid_header(
        kind in 1u8..=7,
        body in prop_oneof![vec(any::<u8>(), 0..40), vec(any::<u8>(), 0..2000)],
    ) {
        let mut bytes = ((body.len() + 1) as u16).to_be_bytes().to_vec();
        bytes.push(kind);
        bytes.extend(&body);
        match wire::decode(&bytes) {
            Ok(Some((frame, n))) => {
                prop_assert_eq!(n, bytes.len());
                prop_assert_eq!(frame.kind(), kind);
            }
            Ok(None) => prop_assert!(false, "a whole frame is never incomplete"),
            Err(e) => prop_assert_eq!(e.code(), ErrorCode::Malformed),
        }
    }

    #[test]
    fn any_encoded_frame_decodes_back_to_the_same_values(frame in frame()) {
        let mut bytes = Vec::new();
        encode(&frame, &mut bytes);
        prop_assert!(bytes.len() <= wire::MAX_FRAME);
        let (decoded, n) = wire::decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(n, bytes.len());
        prop_assert_eq!(owned(&decoded), frame);
    }

    #[test]
    fn frames_split_at_any_offsets_reassemble_to_the_same_frames(
        frames in vec(frame(), 1..6),
        cuts in vec(any::<proptest::sample::Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        let mut ends = Vec::new();
        for f in &frames {
            encode(f, &mut stream);
            ends.push(stream.len());
        }
        // Every proper prefix of the first frame is incomplete.
        for cut in 0..ends[0] {
            prop_assert_eq!(wire::decode(&stream[..cut]), Ok(None));
        }
        // Delivered in pieces, as a socket may, into a buffer that keeps
        // what it cannot decode yet.
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        cuts.push(stream.len());
        cuts.sort_unstable();
        let mut buffer = Vec::new();
        let mut got = Vec::new();
        let mut from = 0;
        for cut in cuts {
            buffer.extend_from_slice(&stream[from..cut]);
            from = cut;
            while let Some((f, n)) = wire::decode(&buffer).unwrap() {
                got.push(owned(&f));
                buffer.drain(..n);
            }
        }
        prop_assert!(buffer.is_empty());
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn validate_agrees_with_an_independent_model_of_the_rules(
        (first_name, last_name, document, birthdate, number) in raw_bet(),
        today in today(),
        edge in 0u8..8,
    ) {
        // Now and then a birthdate on today's date or the day after.
        let birthdate = match edge {
            0 => today,
            1 => (today.0, today.1, today.2.wrapping_add(1)),
            _ => birthdate,
        };
        let model = broken_rules(
            &RawBet {
                first_name: &first_name,
                last_name: &last_name,
                document: &document,
                birthdate,
                number,
            },
            today,
        );
        let (year, month, day) = birthdate;
        let fields = BetFields {
            first_name: &first_name,
            last_name: &last_name,
            document: &document,
            birthdate: Date { year, month, day },
            number,
        };
        let (year, month, day) = today;
        match bet::validate(&fields, Date { year, month, day }) {
            Ok(()) => prop_assert!(model.is_empty(), "accepted, the model breaks {:?}", model),
            Err(e) => {
                let field = match e {
                    BetError::FirstName(_) => Field::FirstName,
                    BetError::LastName(_) => Field::LastName,
                    BetError::Document => Field::Document,
                    BetError::Birthdate => Field::Birthdate,
                    BetError::Number => Field::Number,
                    other => return Err(TestCaseError::fail(format!("validate answered {other:?}"))),
                };
                prop_assert!(model.contains(&field), "refused for {:?}, the model breaks {:?}", field, model);
            }
        }
    }
}

/// The model itself, on the cases the protocol's text spells out, so that
/// agreement with it means something.
#[test]
fn the_model_of_the_rules_holds_the_protocols_examples() {
    let bet = |first: &'static [u8], doc: &'static [u8], date: (u16, u8, u8), number| RawBet {
        first_name: first,
        last_name: b"Lorca",
        document: doc,
        birthdate: date,
        number,
    };
    let today = (2026, 11, 27);
    let ok = [
        bet(b"Ana", b"30904465", (1999, 3, 17), 7574),
        bet("Nicolás".as_bytes(), b"0000000000000001", (1900, 1, 1), 0),
        bet(b"A", b"1", (2000, 2, 29), 9999),
        bet(b"A", b"1", today, 0),
    ];
    for b in &ok {
        assert_eq!(broken_rules(b, today), [], "{b:?}");
    }
    let bad = [
        (bet(b"", b"1", (2000, 1, 1), 0), Field::FirstName),
        (bet(b"a\x07", b"1", (2000, 1, 1), 0), Field::FirstName),
        (
            bet("a\u{85}".as_bytes(), b"1", (2000, 1, 1), 0),
            Field::FirstName,
        ),
        (bet(b"\xff", b"1", (2000, 1, 1), 0), Field::FirstName),
        (bet(b"A", b"", (2000, 1, 1), 0), Field::Document),
        (
            bet(b"A", b"12345678901234567", (2000, 1, 1), 0),
            Field::Document,
        ),
        (bet(b"A", b"12a", (2000, 1, 1), 0), Field::Document),
        (bet(b"A", b"1", (1899, 12, 31), 0), Field::Birthdate),
        (bet(b"A", b"1", (1900, 2, 29), 0), Field::Birthdate),
        (bet(b"A", b"1", (2001, 2, 29), 0), Field::Birthdate),
        (bet(b"A", b"1", (2000, 4, 31), 0), Field::Birthdate),
        (bet(b"A", b"1", (2000, 13, 1), 0), Field::Birthdate),
        (bet(b"A", b"1", (2000, 0, 1), 0), Field::Birthdate),
        (bet(b"A", b"1", (2026, 11, 28), 0), Field::Birthdate),
        (bet(b"A", b"1", (2000, 1, 1), 10_000), Field::Number),
    ];
    for (b, field) in &bad {
        assert_eq!(broken_rules(b, today), [*field], "{b:?}");
    }
    let long = vec![b'a'; 256];
    let b = RawBet {
        first_name: &long,
        ..bet(b"A", b"1", (2000, 1, 1), 0)
    };
    assert_eq!(broken_rules(&b, today), [Field::FirstName]);
}
