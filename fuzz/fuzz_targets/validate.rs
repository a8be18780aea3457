//! Fuzzes `lottery::bets::bet::validate` against an independent model of the
//! rules (`model/bet_rules.rs`): a bet is accepted exactly when the model
//! finds no broken rule, and a refusal names a field the model finds broken.
//!
//! The input is shaped by `arbitrary`; a mode byte maps the raw bytes onto
//! the neighbourhood of valid bets (digits, printable names, dates near the
//! limits), so that both sides of every rule are reached.

#![no_main]

#[path = "../model/bet_rules.rs"]
mod bet_rules;

use arbitrary::Arbitrary;
use bet_rules::{Field, RawBet, broken_rules};
use libfuzzer_sys::fuzz_target;
use lottery::bets::bet::{self, BetError};
use lottery::wire::{BetFields, Date};

#[derive(Arbitrary, Debug)]
struct Input {
    mode: u8,
    first_name: Vec<u8>,
    last_name: Vec<u8>,
    document: Vec<u8>,
    birthdate: (u16, u8, u8),
    number: u16,
    today: (u16, u8, u8),
}

fuzz_target!(|input: Input| check(input));

fn check(mut input: Input) {
    if input.mode & 1 == 1 {
        for b in &mut input.document {
            *b = b'0' + *b % 10;
        }
    }
    if input.mode & 2 == 2 {
        for name in [&mut input.first_name, &mut input.last_name] {
            for b in name.iter_mut() {
                *b = if *b < 0x80 { 0x20 + *b % 0x5f } else { *b };
            }
        }
    }
    if input.mode & 4 == 4 {
        let (y, m, d) = input.birthdate;
        input.birthdate = (1895 + y % 140, m % 14, d % 33);
        let (y, m, d) = input.today;
        input.today = (1990 + y % 60, 1 + m % 12, 1 + d % 28);
    }
    if input.mode & 8 == 8 {
        input.number %= 10_010;
    }
    let fields = BetFields {
        first_name: &input.first_name,
        last_name: &input.last_name,
        document: &input.document,
        birthdate: date(input.birthdate),
        number: input.number,
    };
    let model = broken_rules(
        &RawBet {
            first_name: &input.first_name,
            last_name: &input.last_name,
            document: &input.document,
            birthdate: input.birthdate,
            number: input.number,
        },
        input.today,
    );
    match bet::validate(&fields, date(input.today)) {
        Ok(()) => assert!(model.is_empty(), "accepted, but the model breaks {model:?}"),
        Err(e) => {
            let field = match e {
                BetError::FirstName(_) => Field::FirstName,
                BetError::LastName(_) => Field::LastName,
                BetError::Document => Field::Document,
                BetError::Birthdate => Field::Birthdate,
                BetError::Number => Field::Number,
                other => panic!("validate cannot answer {other:?}"),
            };
            assert!(
                model.contains(&field),
                "refused for {field:?}, the model breaks {model:?}"
            );
            assert!(!e.to_string().contains('|'));
        }
    }
}

fn date((year, month, day): (u16, u8, u8)) -> Date {
    Date { year, month, day }
}
