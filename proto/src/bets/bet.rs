//! What a valid bet is, for the central and the agency alike.
//!
//! One set of rules (`docs/protocol.md`, "A valid bet") checked in one place:
//! names are 1..=255 bytes of UTF-8 without control characters, the document
//! is 1..=16 ASCII digits kept as text, the birthdate is a real calendar date
//! from 1900-01-01 up to today, the number is 0..=9999. The agency checks its
//! CSV rows with [`parse_row`] before sending; the central checks every
//! decoded bet with [`validate`] before storing.

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::wire::{BetFields, BetRef, Date};

/// The earliest birthdate accepted.
pub const EARLIEST_BIRTHDATE: Date = Date {
    year: 1900,
    month: 1,
    day: 1,
};
/// The largest bet number.
pub const MAX_NUMBER: u16 = 9999;
/// The longest document, in digits.
pub const MAX_DOCUMENT: usize = 16;

/// Why a bet is not valid. The `Display` text is what goes in an
/// `ERROR INVALID_BET` message and in the agency's log (it never holds `|`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BetError {
    FirstName(NameProblem),
    LastName(NameProblem),
    Document,
    Birthdate,
    BirthdateFormat,
    Number,
    NumberFormat,
    FieldCount(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    TooLong,
    NotUtf8,
    ControlCharacter,
}

impl fmt::Display for BetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |f: &mut fmt::Formatter<'_>, which: &str, p: &NameProblem| match p {
            NameProblem::Empty => write!(f, "empty {which}"),
            NameProblem::TooLong => write!(f, "{which} longer than 255 bytes"),
            NameProblem::NotUtf8 => write!(f, "{which} is not UTF-8"),
            NameProblem::ControlCharacter => write!(f, "{which} has a control character"),
        };
        match self {
            BetError::FirstName(p) => name(f, "first name", p),
            BetError::LastName(p) => name(f, "last name", p),
            BetError::Document => write!(f, "document must be 1 to 16 digits"),
            BetError::Birthdate => {
                write!(f, "birthdate must be a real date from 1900-01-01 to today")
            }
            BetError::BirthdateFormat => write!(f, "birthdate must be YYYY-MM-DD"),
            BetError::Number => write!(f, "number must be 0 to 9999"),
            BetError::NumberFormat => write!(f, "number must be a whole number"),
            BetError::FieldCount(n) => write!(f, "expected 5 fields, found {n}"),
        }
    }
}

impl std::error::Error for BetError {}

/// The first invalid bet of a batch: its index in the batch, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InvalidBet {
    pub index: usize,
    pub why: BetError,
}

/// What checking a valid bet learnt about its names, so that writing the
/// bet needs no second walk of their bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Checked {
    /// The first name holds a comma or a double quote (the characters a
    /// CSV field must be quoted for; a valid name has no CR or LF).
    pub first_name_special: bool,
    /// The same for the last name.
    pub last_name_special: bool,
}

/// Checks one decoded bet against the rules, with `today` as the latest birthdate.
pub fn validate(bet: &BetFields<'_>, today: Date) -> Result<(), BetError> {
    check(bet, today).map(|_| ())
}

/// Checks one decoded bet in one walk of each field's bytes, and says which
/// of its names hold a comma or a quote.
pub fn check(bet: &BetFields<'_>, today: Date) -> Result<Checked, BetError> {
    let first_name_special = check_name(bet.first_name).map_err(BetError::FirstName)?;
    let last_name_special = check_name(bet.last_name).map_err(BetError::LastName)?;
    check_document(bet.document)?;
    if !is_calendar_date(bet.birthdate)
        || bet.birthdate < EARLIEST_BIRTHDATE
        || bet.birthdate > today
    {
        return Err(BetError::Birthdate);
    }
    if bet.number > MAX_NUMBER {
        return Err(BetError::Number);
    }
    Ok(Checked {
        first_name_special,
        last_name_special,
    })
}

/// Byte classes of ASCII for the name walk where fewer than eight bytes are
/// left: one table load and an OR per byte (bytes from 0x80 are decoded).
const CONTROL: u8 = 1;
const SPECIAL: u8 = 2;

const NAME_CLASS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut b = 0;
    while b < 128 {
        t[b] = if b < 0x20 || b == 0x7f {
            CONTROL
        } else if b == b',' as usize || b == b'"' as usize {
            SPECIAL
        } else {
            0
        };
        b += 1;
    }
    t
};

/// Checks a name; `Ok(true)` when it holds a comma or a quote.
#[inline(always)]
fn check_name(name: &[u8]) -> Result<bool, NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > 255 {
        return Err(NameProblem::TooLong);
    }
    // Whole words while they are ASCII; from the first byte that is not,
    // the decoding walk takes the rest.
    let mut classes = 0u8;
    let mut words = name.chunks_exact(8);
    let mut at = 0;
    let mut ascii = true;
    for word in &mut words {
        let x = u64::from_le_bytes(word.try_into().expect("a chunk of 8"));
        if x & HIGH != 0 {
            ascii = false;
            break;
        }
        classes |= word_classes(x);
        at += 8;
    }
    if ascii {
        for &b in words.remainder() {
            if b >= 0x80 {
                ascii = false;
                break;
            }
            classes |= NAME_CLASS[b as usize];
            at += 1;
        }
    }
    if !ascii {
        classes |= walk_name(&name[at..])?;
    }
    if classes & CONTROL != 0 {
        return Err(NameProblem::ControlCharacter);
    }
    Ok(classes & SPECIAL != 0)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// The classes of eight ASCII bytes, with a few arithmetic operations.
fn word_classes(x: u64) -> u8 {
    let control = below(x, 0x20) | zero_byte(x ^ (ONES * 0x7f));
    let special = zero_byte(x ^ (ONES * b',' as u64)) | zero_byte(x ^ (ONES * b'"' as u64));
    (if control != 0 { CONTROL } else { 0 }) | if special != 0 { SPECIAL } else { 0 }
}

/// Non-zero when some byte of `x` is zero (exact as a yes or no: a borrow
/// can only mark a byte above a real zero byte).
fn zero_byte(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGH
}

/// Non-zero when some byte of `x` (all below 0x80) is below `n` (<= 0x80).
fn below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(ONES * n as u64) & !x & HIGH
}

/// Walks `name` once: checks that it is UTF-8 (exactly as
/// `std::str::from_utf8` decides: no overlong forms, no surrogates, nothing
/// beyond U+10FFFF) and returns the classes of its characters, a C1 control
/// U+0080..=U+009F (encoded 0xC2 0x80..=0x9F, the only control characters
/// beyond ASCII) counted as [`CONTROL`]. [`check_name`] calls it from the
/// first byte that is not ASCII: what is left of a name is short.
#[inline(never)]
fn walk_name(name: &[u8]) -> Result<u8, NameProblem> {
    let mut classes = 0u8;
    let mut i = 0;
    while i < name.len() {
        let lead = name[i];
        if lead < 0x80 {
            classes |= NAME_CLASS[lead as usize];
            i += 1;
            continue;
        }
        // The sequence's length and the range its second byte must be in.
        let (len, low, high) = match lead {
            0xc2..=0xdf => (2, 0x80, 0xbf),
            0xe0 => (3, 0xa0, 0xbf),
            0xe1..=0xec | 0xee..=0xef => (3, 0x80, 0xbf),
            0xed => (3, 0x80, 0x9f),
            0xf0 => (4, 0x90, 0xbf),
            0xf1..=0xf3 => (4, 0x80, 0xbf),
            0xf4 => (4, 0x80, 0x8f),
            _ => return Err(NameProblem::NotUtf8),
        };
        let Some(sequence) = name.get(i..i + len) else {
            return Err(NameProblem::NotUtf8);
        };
        if !(low..=high).contains(&sequence[1]) || sequence[2..].iter().any(|&b| b & 0xc0 != 0x80) {
            return Err(NameProblem::NotUtf8);
        }
        if lead == 0xc2 && sequence[1] <= 0x9f {
            classes |= CONTROL;
        }
        i += len;
    }
    Ok(classes)
}

/// A document is 1 to [`MAX_DOCUMENT`] ASCII digits, checked eight bytes
/// at a time (the course's documents are eight digits: one word).
#[inline(always)]
fn check_document(document: &[u8]) -> Result<(), BetError> {
    if document.is_empty() || document.len() > MAX_DOCUMENT {
        return Err(BetError::Document);
    }
    let mut words = document.chunks_exact(8);
    let mut not_digits = 0u64;
    for word in &mut words {
        not_digits |= not_digits_in(u64::from_le_bytes(word.try_into().expect("a chunk of 8")));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        // The tail padded with '0's, a digit, to a whole word.
        let mut word = [b'0'; 8];
        word[..rest.len()].copy_from_slice(rest);
        not_digits |= not_digits_in(u64::from_le_bytes(word));
    }
    if not_digits != 0 {
        return Err(BetError::Document);
    }
    Ok(())
}

/// Non-zero when some byte of `x` is not an ASCII digit: a byte from 0x80
/// has its high bit; below '0', subtracting '0' sets it; above '9', adding
/// 0x46 does (0x39 + 0x46 = 0x7f). A borrow or a carry across bytes starts
/// only at a byte that is itself flagged, so the answer is exact.
fn not_digits_in(x: u64) -> u64 {
    (x | x.wrapping_sub(ONES * b'0' as u64) | x.wrapping_add(ONES * 0x46)) & HIGH
}

/// Whether `d` names a day that exists in the proleptic Gregorian calendar.
pub fn is_calendar_date(d: Date) -> bool {
    (1..=12).contains(&d.month) && d.day >= 1 && d.day <= days_in_month(d.year, d.month)
}

fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

fn is_leap(year: u16) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

/// Today's date in UTC.
pub fn today() -> Date {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    civil_from_days((secs / 86_400) as i64)
}

/// Days since 1970-01-01 to a calendar date (H. Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> Date {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as u16;
    Date { year, month, day }
}

/// Writes `d` as `YYYY-MM-DD` (how the course's files and `bets.csv` hold it).
pub fn format_date(d: Date) -> [u8; 10] {
    let mut out = *b"0000-00-00";
    let y = d.year.min(9999);
    out[0] = b'0' + (y / 1000) as u8;
    out[1] = b'0' + (y / 100 % 10) as u8;
    out[2] = b'0' + (y / 10 % 10) as u8;
    out[3] = b'0' + (y % 10) as u8;
    out[5] = b'0' + d.month / 10 % 10;
    out[6] = b'0' + d.month % 10;
    out[8] = b'0' + d.day / 10 % 10;
    out[9] = b'0' + d.day % 10;
    out
}

/// Reads `YYYY-MM-DD` (exactly that shape; the calendar is checked by [`validate`]).
pub fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| -> Option<u16> {
        b[r].iter().try_fold(0u16, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + (c - b'0') as u16)
        })
    };
    Some(Date {
        year: digits(0..4)?,
        month: digits(5..7)? as u8,
        day: digits(8..10)? as u8,
    })
}

/// One bet as an agency holds it: a row of its CSV file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bet {
    pub first_name: String,
    pub last_name: String,
    pub document: String,
    pub birthdate: Date,
    pub number: u16,
}

impl Bet {
    pub fn as_ref(&self) -> BetRef<'_> {
        BetRef {
            first_name: &self.first_name,
            last_name: &self.last_name,
            document: &self.document,
            birthdate: self.birthdate,
            number: self.number,
        }
    }

    pub fn fields(&self) -> BetFields<'_> {
        BetFields {
            first_name: self.first_name.as_bytes(),
            last_name: self.last_name.as_bytes(),
            document: self.document.as_bytes(),
            birthdate: self.birthdate,
            number: self.number,
        }
    }
}

/// Reads one row of an agency file (`nombre,apellido,documento,nacimiento,numero`)
/// and checks it with the central's rules, so a bad row is never sent.
pub fn parse_row<S: AsRef<str>>(fields: &[S], today: Date) -> Result<Bet, BetError> {
    let [first, last, document, birthdate, number] = fields else {
        return Err(BetError::FieldCount(fields.len()));
    };
    let birthdate = parse_date(birthdate.as_ref()).ok_or(BetError::BirthdateFormat)?;
    let number_text = number.as_ref();
    if number_text.is_empty() || !number_text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(BetError::NumberFormat);
    }
    let number = number_text
        .parse::<u32>()
        .ok()
        .filter(|&n| n <= MAX_NUMBER as u32)
        .ok_or(BetError::Number)? as u16;
    let bet = Bet {
        first_name: first.as_ref().to_owned(),
        last_name: last.as_ref().to_owned(),
        document: document.as_ref().to_owned(),
        birthdate,
        number,
    };
    validate(&bet.fields(), today)?;
    Ok(bet)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Date = Date {
        year: 2026,
        month: 11,
        day: 27,
    };

    fn bet<'a>(first: &'a [u8], doc: &'a [u8], date: Date, number: u16) -> BetFields<'a> {
        BetFields {
            first_name: first,
            last_name: b"Lorca",
            document: doc,
            birthdate: date,
            number,
        }
    }

    fn date(year: u16, month: u8, day: u8) -> Date {
        Date { year, month, day }
    }

    #[test]
    fn a_plain_bet_is_valid() {
        assert_eq!(
            validate(&bet(b"Ana", b"30904465", date(1999, 3, 17), 7574), TODAY),
            Ok(())
        );
    }

    #[test]
    fn accented_names_are_valid_and_control_characters_are_not() {
        assert!(validate(&bet("Nicolás".as_bytes(), b"1", date(2000, 1, 1), 0), TODAY).is_ok());
        assert_eq!(
            validate(&bet(b"An\x07a", b"1", date(2000, 1, 1), 0), TODAY),
            Err(BetError::FirstName(NameProblem::ControlCharacter))
        );
        assert_eq!(
            validate(
                &bet("a\u{85}b".as_bytes(), b"1", date(2000, 1, 1), 0),
                TODAY
            ),
            Err(BetError::FirstName(NameProblem::ControlCharacter))
        );
        assert_eq!(
            validate(&bet(b"\xff", b"1", date(2000, 1, 1), 0), TODAY),
            Err(BetError::FirstName(NameProblem::NotUtf8))
        );
        assert_eq!(
            validate(&bet(b"", b"1", date(2000, 1, 1), 0), TODAY),
            Err(BetError::FirstName(NameProblem::Empty))
        );
    }

    #[test]
    fn the_byte_scan_for_control_characters_agrees_with_unicode() {
        for c in (0..0x800u32).filter_map(char::from_u32) {
            let name = format!("a{c}b");
            let got = check_name(name.as_bytes()) == Err(NameProblem::ControlCharacter);
            assert_eq!(got, c.is_control(), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn every_character_is_classed_alike_wherever_it_sits_in_a_name() {
        // Names of 1 to 24 bytes cover the word walk, its tail, and names
        // with accents before or after the character.
        for len in 1..=24 {
            for at in 0..len {
                for c in (0..0x100u32).filter_map(char::from_u32) {
                    for filler in ["a", "é"] {
                        let mut name = filler.repeat(len);
                        name.truncate(name.char_indices().nth(at).map_or(name.len(), |(i, _)| i));
                        name.push(c);
                        name.push_str(&filler.repeat(len - at - 1));
                        let want = if c.is_control() {
                            Err(NameProblem::ControlCharacter)
                        } else {
                            Ok(name.contains([',', '"']))
                        };
                        assert_eq!(check_name(name.as_bytes()), want, "{name:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_document_is_refused_for_any_byte_that_is_not_a_digit_wherever_it_sits() {
        let plain = |d: &[u8]| {
            !d.is_empty() && d.len() <= MAX_DOCUMENT && d.iter().all(|b| b.is_ascii_digit())
        };
        for len in 0..=MAX_DOCUMENT + 1 {
            for at in 0..len.max(1) {
                for byte in 0..=255u8 {
                    // Digits around it that change from word to word, so
                    // a borrow or a carry across bytes would show.
                    let mut d: Vec<u8> = (0..len).map(|i| b'0' + (i * 7 % 10) as u8).collect();
                    if len > 0 {
                        d[at] = byte;
                    }
                    assert_eq!(check_document(&d).is_ok(), plain(&d), "{d:x?}");
                }
            }
        }
    }

    #[test]
    fn the_name_walk_decides_utf8_exactly_as_the_standard_library() {
        // Every one- and two-byte string, and every 3- and 4-byte string from
        // a set of bytes that covers each boundary of the encoding.
        let edges: Vec<u8> = vec![
            0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xc3, 0xdf,
            0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff,
        ];
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for a in 0..=255u8 {
            cases.push(vec![a]);
            for b in 0..=255u8 {
                cases.push(vec![a, b]);
            }
        }
        for &a in &edges {
            for &b in &edges {
                for &c in &edges {
                    cases.push(vec![a, b, c]);
                    for &d in &edges {
                        cases.push(vec![a, b, c, d]);
                    }
                }
            }
        }
        for case in cases {
            let ours = walk_name(&case).is_ok();
            assert_eq!(ours, std::str::from_utf8(&case).is_ok(), "{case:x?}");
        }
    }

    #[test]
    fn documents_are_one_to_sixteen_digits_with_leading_zeros_kept() {
        assert!(validate(&bet(b"A", b"0000000000000001", date(2000, 1, 1), 0), TODAY).is_ok());
        for doc in [&b""[..], b"12345678901234567", b"12a4", b"-1", b" 1"] {
            assert_eq!(
                validate(&bet(b"A", doc, date(2000, 1, 1), 0), TODAY),
                Err(BetError::Document),
                "{doc:?}"
            );
        }
    }

    #[test]
    fn birthdates_must_be_real_days_between_1900_and_today() {
        for ok in [date(1900, 1, 1), date(2000, 2, 29), TODAY] {
            assert!(validate(&bet(b"A", b"1", ok, 0), TODAY).is_ok(), "{ok:?}");
        }
        for bad in [
            date(1899, 12, 31),
            date(1900, 2, 29),
            date(2001, 2, 29),
            date(2000, 4, 31),
            date(2000, 13, 1),
            date(2000, 0, 10),
            date(2000, 1, 0),
            date(2026, 11, 28),
        ] {
            assert_eq!(
                validate(&bet(b"A", b"1", bad, 0), TODAY),
                Err(BetError::Birthdate),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn numbers_above_9999_are_invalid() {
        assert!(validate(&bet(b"A", b"1", date(2000, 1, 1), 9999), TODAY).is_ok());
        assert_eq!(
            validate(&bet(b"A", b"1", date(2000, 1, 1), 10000), TODAY),
            Err(BetError::Number)
        );
    }

    #[test]
    fn rows_parse_into_bets_and_bad_rows_say_why() {
        let row = ["Santiago Lionel", "Lorca", "30904465", "1999-03-17", "7574"];
        let b = parse_row(&row, TODAY).unwrap();
        assert_eq!(b.birthdate, date(1999, 3, 17));
        assert_eq!(b.number, 7574);
        assert_eq!(parse_row(&row[..4], TODAY), Err(BetError::FieldCount(4)));
        let mut bad = row;
        bad[3] = "17/03/1999";
        assert_eq!(parse_row(&bad, TODAY), Err(BetError::BirthdateFormat));
        bad = row;
        bad[4] = "75a";
        assert_eq!(parse_row(&bad, TODAY), Err(BetError::NumberFormat));
        bad[4] = "10000";
        assert_eq!(parse_row(&bad, TODAY), Err(BetError::Number));
    }

    #[test]
    fn dates_format_and_parse_back() {
        let d = date(1999, 3, 7);
        assert_eq!(&format_date(d), b"1999-03-07");
        assert_eq!(parse_date("1999-03-07"), Some(d));
        assert_eq!(parse_date("1999-3-07"), None);
    }

    #[test]
    fn civil_dates_from_epoch_days() {
        assert_eq!(civil_from_days(0), date(1970, 1, 1));
        assert_eq!(civil_from_days(11_016), date(2000, 2, 29));
        assert_eq!(civil_from_days(20_784), date(2026, 11, 27));
    }
}
