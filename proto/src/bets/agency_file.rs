//! Reading an agency file: `nombre,apellido,documento,nacimiento,numero`,
//! one bet a row, no header, CRLF or LF, UTF-8, fields quoted where needed.
//!
//! One reader for the agency (`lottery-client`) and the bench. It yields
//! every row with its line number, checked with the central's rules
//! ([`crate::bets::bet::parse_row`]) except the one that depends on the day: a
//! birthdate after today. Which rows a file holds is therefore a function
//! of the file alone, whatever the date; that is what keeps an agency's
//! stream positions the same across a restart on another day. Whether a
//! bet can be sent *today* is [`born_after`], for the caller to apply.

use std::fmt;
use std::io::Read;

use crate::bets::bet::{self, Bet, BetError};
use crate::wire::Date;

/// The latest date the file format can write: a birthdate is never after
/// it, so [`bet::parse_row`] with it checks every rule but the day's.
const ANY_DAY: Date = Date {
    year: 9999,
    month: 12,
    day: 31,
};

/// Why a row is not a bet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowError {
    /// Field `field` (from 1) is not UTF-8.
    NotUtf8 {
        field: usize,
    },
    Bet(BetError),
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowError::NotUtf8 { field } => write!(f, "field {field} is not UTF-8"),
            RowError::Bet(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RowError {}

/// One row of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Row {
    /// The row's first line in the file, from 1.
    pub line: u64,
    pub bet: Result<Bet, RowError>,
}

/// The rows of an agency file, in file order. An `Err` item is a file that
/// cannot be read on (an I/O error); a bad row is an `Ok` row with an error.
pub struct Rows<R> {
    csv: csv::Reader<R>,
    record: csv::ByteRecord,
    /// The last field, while its `\r` is cut off.
    scratch: Vec<u8>,
}

impl<R: Read> Rows<R> {
    pub fn new(input: R) -> Rows<R> {
        let csv = csv::ReaderBuilder::new()
            .has_headers(false)
            // A row with the wrong number of fields is a bad row, not a broken file.
            .flexible(true)
            // Rows end at `\n` only, and a CRLF row's `\r` is cut off its
            // last field here: with the csv crate's CRLF terminator, every
            // row after a CRLF reports the line before its own.
            .terminator(csv::Terminator::Any(b'\n'))
            .buffer_capacity(1 << 16)
            .from_reader(input);
        Rows {
            csv,
            record: csv::ByteRecord::new(),
            scratch: Vec::new(),
        }
    }

    /// Cuts the `\r` of a CRLF line ending off the record's last field;
    /// false for a blank CRLF line, which is no row (as a blank LF line is not).
    fn cut_carriage_return(&mut self) -> bool {
        let record = &mut self.record;
        let Some(last) = record.get(record.len() - 1) else {
            return true;
        };
        let Some(kept) = last.strip_suffix(b"\r") else {
            return true;
        };
        if record.len() == 1 && kept.is_empty() {
            return false;
        }
        self.scratch.clear();
        self.scratch.extend_from_slice(kept);
        record.truncate(record.len() - 1);
        record.push_field(&self.scratch);
        true
    }
}

impl<R: Read> Iterator for Rows<R> {
    type Item = Result<Row, csv::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        // Byte records, so that a row that is not UTF-8 is one bad row
        // with its line number instead of an error for the whole file.
        loop {
            match self.csv.read_byte_record(&mut self.record) {
                Ok(true) if self.cut_carriage_return() => break,
                Ok(true) => {}
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
        let line = self.record.position().map_or(0, |p| p.line());
        Some(Ok(Row {
            line,
            bet: parse(&self.record),
        }))
    }
}

/// Checks a row's fields by every rule that does not depend on the day.
pub fn parse_fields<S: AsRef<str>>(fields: &[S]) -> Result<Bet, BetError> {
    bet::parse_row(fields, ANY_DAY)
}

fn parse(record: &csv::ByteRecord) -> Result<Bet, RowError> {
    let mut fields = Vec::with_capacity(record.len());
    for (i, raw) in record.iter().enumerate() {
        let text = std::str::from_utf8(raw).map_err(|_| RowError::NotUtf8 { field: i + 1 })?;
        fields.push(text);
    }
    parse_fields(&fields).map_err(RowError::Bet)
}

/// Whether `bet`'s birthdate is after `today`: the central refuses it until
/// that day comes.
pub fn born_after(bet: &Bet, today: Date) -> bool {
    bet.birthdate > today
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bets::bet::NameProblem;

    fn rows(text: &[u8]) -> Vec<Row> {
        Rows::new(text).map(Result::unwrap).collect()
    }

    #[test]
    fn rows_with_crlf_lf_and_quoted_commas_are_read_in_order_with_their_lines() {
        let rows = rows(
            b"Ana,Lorca,1,1999-03-17,7574\r\n\"Paz, Maria\",\"Diaz\",0002,2000-01-01,0\nJose,Nu\xc3\xb1ez,3,1950-12-31,9999",
        );
        assert_eq!(rows.iter().map(|r| r.line).collect::<Vec<_>>(), [1, 2, 3]);
        let bets: Vec<Bet> = rows.into_iter().map(|r| r.bet.unwrap()).collect();
        assert_eq!(bets[1].first_name, "Paz, Maria");
        assert_eq!(bets[1].document, "0002");
        assert_eq!(bets[2].last_name, "Nuñez");
        assert_eq!(bets[2].number, 9999);
    }

    #[test]
    fn lines_are_counted_right_after_crlf_and_blank_crlf_lines_and_quoted_line_breaks() {
        let rows = rows(
            b"A,B,1,2000-01-01,1\r\n\r\n\"Paz,\r\nMaria\",B,2,2000-01-01,2\r\nA,\"B\",3,2000-01-01,3\r\nA,B,4,2000-01-01,4",
        );
        assert_eq!(
            rows.iter().map(|r| r.line).collect::<Vec<_>>(),
            [1, 3, 5, 6]
        );
        // A line break inside a name is a control character: a bad row.
        assert!(rows[1].bet.is_err());
        let third = rows[2].bet.as_ref().unwrap();
        assert_eq!((third.last_name.as_str(), third.number), ("B", 3));
        assert_eq!(rows[3].bet.as_ref().unwrap().number, 4);
    }

    #[test]
    fn bad_rows_come_with_their_line_and_reason() {
        let rows = rows(
            b"Ana,Lorca,1,1999-03-17,7574\nBad,Row,12a,1999-03-17,1\nShort,Row\nNot,UTF8\xff,4,1999-03-17,1\n,Empty,5,2001-02-03,4\n",
        );
        let errors: Vec<(u64, RowError)> = rows
            .into_iter()
            .filter_map(|r| r.bet.err().map(|e| (r.line, e)))
            .collect();
        assert_eq!(
            errors,
            [
                (2, RowError::Bet(BetError::Document)),
                (3, RowError::Bet(BetError::FieldCount(2))),
                (4, RowError::NotUtf8 { field: 2 }),
                (5, RowError::Bet(BetError::FirstName(NameProblem::Empty))),
            ]
        );
    }

    #[test]
    fn a_birthdate_after_today_is_a_row_of_the_file_and_not_sendable_today() {
        let today = Date {
            year: 2026,
            month: 12,
            day: 1,
        };
        let rows = rows(b"Ana,Lorca,1,2026-12-02,1\nAna,Lorca,2,1899-12-31,1\n");
        let tomorrow = rows[0].bet.as_ref().unwrap();
        assert!(born_after(tomorrow, today));
        assert!(!born_after(tomorrow, tomorrow.birthdate));
        // The earliest birthdate does not depend on the day: always bad.
        assert_eq!(rows[1].bet, Err(RowError::Bet(BetError::Birthdate)));
    }

    #[test]
    fn an_empty_file_has_no_rows() {
        assert!(rows(b"").is_empty());
    }
}
