//! An independent model of `PROTOCOL.md`'s "A valid bet", written from the
//! text of the rules rather than from `lottery::bets::bet`, so that the central's
//! checks can be compared with it. Shared by the proptest properties
//! (`tests/properties.rs`) and the fuzz target `validate`.
//!
//! The rules: names are 1..=255 bytes of UTF-8 with no control characters;
//! the document is 1..=16 ASCII digits; the birthdate is a real calendar
//! date from 1900-01-01 up to today; the number is 0..=9999.

/// A part of a bet that a rule is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Field {
    FirstName,
    LastName,
    Document,
    Birthdate,
    Number,
}

/// A bet as it travels, before any check: raw bytes and plain numbers.
#[derive(Clone, Copy, Debug)]
pub struct RawBet<'a> {
    pub first_name: &'a [u8],
    pub last_name: &'a [u8],
    pub document: &'a [u8],
    /// `(year, month, day)`.
    pub birthdate: (u16, u8, u8),
    pub number: u16,
}

/// The fields of `bet` that break a rule, given today's `(year, month, day)`.
/// Empty when the bet is valid.
pub fn broken_rules(bet: &RawBet<'_>, today: (u16, u8, u8)) -> Vec<Field> {
    let mut broken = Vec::new();
    if !is_a_name(bet.first_name) {
        broken.push(Field::FirstName);
    }
    if !is_a_name(bet.last_name) {
        broken.push(Field::LastName);
    }
    if !is_a_document(bet.document) {
        broken.push(Field::Document);
    }
    let (y, m, d) = bet.birthdate;
    if !(is_a_day_of_the_calendar(y, m, d) && (1900, 1, 1) <= (y, m, d) && (y, m, d) <= today) {
        broken.push(Field::Birthdate);
    }
    if bet.number > 9999 {
        broken.push(Field::Number);
    }
    broken
}

/// 1..=255 bytes of UTF-8, none of them a control character (Unicode's
/// category Cc: U+0000..=U+001F and U+007F..=U+009F).
fn is_a_name(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    !bytes.is_empty()
        && bytes.len() <= 255
        && text
            .chars()
            .all(|c| !matches!(u32::from(c), 0x00..=0x1F | 0x7F..=0x9F))
}

/// 1..=16 of the bytes `'0'..='9'`.
fn is_a_document(bytes: &[u8]) -> bool {
    (1..=16).contains(&bytes.len()) && bytes.iter().all(u8::is_ascii_digit)
}

/// Whether the day exists in the Gregorian calendar: the day of the year it
/// would be must fall inside its month.
fn is_a_day_of_the_calendar(year: u16, month: u8, day: u8) -> bool {
    // Days before each month in a common year, and at the year's end.
    const STARTS: [u16; 13] = [0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365];
    if !(1..=12).contains(&month) || day == 0 {
        return false;
    }
    let leap = year.is_multiple_of(400) || (!year.is_multiple_of(100) && year.is_multiple_of(4));
    let extra = |m: u8| u16::from(leap && m > 2);
    let first = STARTS[month as usize - 1] + extra(month);
    let next = STARTS[month as usize] + extra(month + 1);
    first + u16::from(day) <= next
}
