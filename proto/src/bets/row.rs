//! A row of the course's `bets.csv` (`agency,first_name,last_name,document,
//! birthdate,number`, CRLF), written byte for byte as the central's CSV
//! store writes it: shared with the bench, which compares its own files
//! against the central's.

use super::bet::{self, Checked};
use crate::wire::{BetFields, BetText};

/// Appends one row of `bets.csv` for a valid bet of `agency`:
/// `agency,first_name,last_name,document,birthdate,number` and CRLF.
///
/// Only a name can need quotes: a valid name has no CR or LF (control
/// characters are refused), so it is quoted exactly when it holds a comma
/// or a quote, with its quotes doubled, as the `csv` crate's writer with
/// minimal quoting does (and Python's `csv.writer`). `checked` says which
/// (the check walked the names already), so a plain name is copied, never
/// scanned again; so are the document, the date and the number.
pub fn push_row(out: &mut Vec<u8>, agency: u32, bet: &BetFields<'_>, checked: Checked) {
    let mut agency_digits = itoa::Buffer::new();
    push_row_for(out, agency_digits.format(agency).as_bytes(), bet, checked);
}

/// An agency's number and the comma after it, the start of each of its
/// rows: formatted once per batch, copied as a fixed-size block.
#[derive(Clone, Copy, Debug)]
pub struct AgencyField {
    bytes: [u8; 16],
    len: usize,
}

impl AgencyField {
    pub fn new(agency: u32) -> AgencyField {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(agency).as_bytes();
        let mut bytes = [0u8; 16];
        bytes[..digits.len()].copy_from_slice(digits);
        bytes[digits.len()] = b',';
        AgencyField {
            bytes,
            len: digits.len() + 1,
        }
    }
}

/// [`push_row`] for a bet straight out of a `BATCH` frame: when neither
/// name needs quotes, the first name, last name and document are one copy
/// of the frame's [`BetText`] with the commas put where its length bytes
/// were, and the agency and the tail are fixed-size copies cut to length.
/// The same bytes as [`push_row`] (tests/properties.rs checks it).
pub fn push_frame_row(
    out: &mut Vec<u8>,
    agency: AgencyField,
    bet: &BetFields<'_>,
    text: BetText<'_>,
    checked: Checked,
) {
    if checked.first_name_special || checked.last_name_special {
        // The comma is written by push_row_for.
        return push_row_for(out, &agency.bytes[..agency.len - 1], bet, checked);
    }
    out.reserve(agency.bytes.len() + text.0.len() + 20);
    let start = out.len();
    out.extend_from_slice(&agency.bytes);
    out.truncate(start + agency.len);
    let at = out.len();
    out.extend_from_slice(text.0);
    let first_comma = at + bet.first_name.len();
    out[first_comma] = b',';
    out[first_comma + 1 + bet.last_name.len()] = b',';
    push_date_and_number(out, bet);
}

fn push_row_for(out: &mut Vec<u8>, agency_field: &[u8], bet: &BetFields<'_>, checked: Checked) {
    // Room for the row unquoted; a quoted name grows it once more at most.
    out.reserve(
        agency_field.len() + bet.first_name.len() + bet.last_name.len() + bet.document.len() + 23,
    );
    out.extend_from_slice(agency_field);
    out.push(b',');
    push_name(out, bet.first_name, checked.first_name_special);
    out.push(b',');
    push_name(out, bet.last_name, checked.last_name_special);
    out.push(b',');
    debug_assert!(bet.document.iter().all(u8::is_ascii_digit));
    out.extend_from_slice(bet.document);
    push_date_and_number(out, bet);
}

/// `,YYYY-MM-DD,N` and CRLF, made in a fixed array of two-digit pairs and
/// copied whole (then cut to the number's 1 to 4 digits).
fn push_date_and_number(out: &mut Vec<u8>, bet: &BetFields<'_>) {
    let d = bet.birthdate;
    let n = bet.number as usize;
    debug_assert!(n <= bet::MAX_NUMBER as usize && d.year <= 9999);
    let (year, month, day) = (
        d.year as usize,
        d.month as usize % 100,
        d.day as usize % 100,
    );
    let pair = |v: usize| [PAIRS[2 * v], PAIRS[2 * v + 1]];
    let [y0, y1] = pair(year / 100 % 100);
    let [y2, y3] = pair(year % 100);
    let [m0, m1] = pair(month);
    let [d0, d1] = pair(day);
    let [n0, n1] = pair(n / 100 % 100);
    let [n2, n3] = pair(n % 100);
    let digits = match n {
        0..=9 => 1,
        10..=99 => 2,
        100..=999 => 3,
        _ => 4,
    };
    // The number's four digits and then CRLF as one word, its leading
    // zeros shifted out (little-endian: the first byte is the lowest).
    let number = u32::from_le_bytes([n0, n1, n2, n3]) >> (8 * (4 - digits));
    let number_and_crlf =
        u64::from(number) | (u64::from(u16::from_le_bytes(*b"\r\n")) << (8 * digits));
    let [e0, e1, e2, e3, e4, e5, _, _] = number_and_crlf.to_le_bytes();
    let tail = [
        b',', y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1, b',', e0, e1, e2, e3, e4, e5,
    ];
    let start = out.len();
    out.extend_from_slice(&tail);
    out.truncate(start + 14 + digits);
}

/// "00" to "99", for writing two digits with one lookup.
const PAIRS: &[u8; 200] = b"\
    0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// A name field, quoted when it holds a comma or a quote (`special`).
fn push_name(out: &mut Vec<u8>, name: &[u8], special: bool) {
    debug_assert!(!name.contains(&b'\r') && !name.contains(&b'\n'));
    debug_assert_eq!(special, name.iter().any(|&b| b == b',' || b == b'"'));
    if !special {
        out.extend_from_slice(name);
        return;
    }
    out.push(b'"');
    for &b in name {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}
