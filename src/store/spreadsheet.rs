//! Rows of `bets.csv` made safe to open in a spreadsheet, for
//! `lottery-export --spreadsheet-safe`. A field that starts with `=`, `+`,
//! `-` or `@` (or a tab or a carriage return) is read as a formula by Excel,
//! LibreOffice Calc or Google Sheets: a name sent as `=HYPERLINK(...)` is
//! stored as sent, and would run when someone opens the export. Such a
//! field gets a `'` in front, inside its quotes if it has them, which those
//! programs read as text (OWASP's advice on CSV injection). Every other
//! byte is kept, so the fields that start no formula are as the store wrote
//! them. `bets.csv` itself is never changed: it stays the course's format.
//!
//! Pure: [`spreadsheet_safe`] on one record, and [`SpreadsheetSafe`], a
//! writer that applies it to every record written through it.

use std::io::{self, Write};

/// Whether a field starting with `b` is read as a formula.
fn starts_formula(b: u8) -> bool {
    matches!(b, b'=' | b'+' | b'-' | b'@' | b'\t' | b'\r')
}

/// Appends one CSV record (with its line end, if any) to `out`, a `'` put
/// in front of each field that starts a formula. Returns how many fields
/// got one.
pub fn spreadsheet_safe(record: &[u8], out: &mut Vec<u8>) -> usize {
    let body = record
        .strip_suffix(b"\r\n")
        .or_else(|| record.strip_suffix(b"\n"))
        .unwrap_or(record);
    let line_end = &record[body.len()..];
    let mut escaped = 0;
    let mut field_start = true;
    let mut quoted = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        out.push(b);
        i += 1;
        if quoted {
            if b == b'"' {
                if body.get(i) == Some(&b'"') {
                    out.push(b'"');
                    i += 1;
                } else {
                    quoted = false;
                }
            }
        } else {
            if field_start && b == b'"' {
                quoted = true;
                if body.get(i).copied().is_some_and(starts_formula) {
                    out.push(b'\'');
                    escaped += 1;
                }
            } else if field_start && starts_formula(b) {
                // In front of the byte just pushed.
                out.insert(out.len() - 1, b'\'');
                escaped += 1;
            }
            field_start = b == b',';
        }
    }
    out.extend_from_slice(line_end);
    escaped
}

/// A writer that passes each record written to it through
/// [`spreadsheet_safe`] on its way to `inner`. A record ends at a line
/// feed outside quotes; [`SpreadsheetSafe::finish`] writes a last one
/// without a line end.
pub struct SpreadsheetSafe<W: Write> {
    inner: W,
    /// The record being written, up to the bytes written so far.
    record: Vec<u8>,
    quoted: bool,
    /// Safe records not yet written to `inner`.
    out: Vec<u8>,
    escaped: u64,
}

impl<W: Write> SpreadsheetSafe<W> {
    pub fn new(inner: W) -> SpreadsheetSafe<W> {
        SpreadsheetSafe {
            inner,
            record: Vec::new(),
            quoted: false,
            out: Vec::with_capacity(1 << 16),
            escaped: 0,
        }
    }

    /// Writes what is left and returns the inner writer and how many fields
    /// got a `'`.
    pub fn finish(mut self) -> io::Result<(W, u64)> {
        if !self.record.is_empty() {
            self.escaped += spreadsheet_safe(&self.record, &mut self.out) as u64;
            self.record.clear();
        }
        self.flush()?;
        Ok((self.inner, self.escaped))
    }
}

impl<W: Write> Write for SpreadsheetSafe<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        for &b in buf {
            self.record.push(b);
            if b == b'"' {
                self.quoted = !self.quoted;
            } else if b == b'\n' && !self.quoted {
                self.escaped += spreadsheet_safe(&self.record, &mut self.out) as u64;
                self.record.clear();
            }
        }
        if self.out.len() >= 1 << 16 {
            self.inner.write_all(&self.out)?;
            self.out.clear();
        }
        Ok(buf.len())
    }

    /// Writes the whole records so far; a partial one waits for its end.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.write_all(&self.out)?;
        self.out.clear();
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn safe(record: &str) -> (String, usize) {
        let mut out = Vec::new();
        let n = spreadsheet_safe(record.as_bytes(), &mut out);
        (String::from_utf8(out).unwrap(), n)
    }

    #[test]
    fn a_row_that_starts_no_formula_is_kept_byte_for_byte() {
        for row in [
            "1,Ana,Lorca,111,1999-03-17,7574\r\n",
            "2,\"Pérez, \"\"hijo\"\"\",O'Brien,9,1999-03-17,0\r\n",
            "3,Ana=1,a-b,1,1999-03-17,1\r\n",
            "4,Ana,Lorca,1,1999-03-17,1",
            "",
        ] {
            assert_eq!(safe(row), (row.to_string(), 0), "{row:?}");
        }
    }

    #[test]
    fn each_field_that_starts_a_formula_gets_a_quote_mark_in_front() {
        for first in ["=", "+", "-", "@", "\t", "\r"] {
            let row = format!("1,{first}1+1,Lorca,1,1999-03-17,1\r\n");
            assert_eq!(
                safe(&row),
                (format!("1,'{first}1+1,Lorca,1,1999-03-17,1\r\n"), 1),
                "{first:?}"
            );
        }
        assert_eq!(
            safe("1,=HYPERLINK(\"\"),@SUM(A1),1,1999-03-17,1\r\n"),
            ("1,'=HYPERLINK(\"\"),'@SUM(A1),1,1999-03-17,1\r\n".into(), 2)
        );
    }

    #[test]
    fn a_quoted_field_gets_the_quote_mark_inside_its_quotes() {
        assert_eq!(
            safe("1,\"=1+2,3\",\"-\"\"x\"\"\",1,1999-03-17,1\r\n"),
            ("1,\"'=1+2,3\",\"'-\"\"x\"\"\",1,1999-03-17,1\r\n".into(), 2)
        );
        // A quote doubled inside a field does not end it: `,=` there starts no field.
        assert_eq!(
            safe("1,\"a\"\",=b\",c,1,1999-03-17,1\r\n"),
            ("1,\"a\"\",=b\",c,1,1999-03-17,1\r\n".into(), 0)
        );
    }

    #[test]
    fn the_fields_read_back_as_the_originals_with_a_quote_mark_where_a_formula_started() {
        let rows = "1,=A,\"+B, C\",1,1999-03-17,1\r\n2,\"@\"\"D\"\"\",-E,2,2000-01-01,9999\r\n3,F,G,3,2001-02-03,0\r\n";
        let mut writer = SpreadsheetSafe::new(Vec::new());
        // In pieces that split records, quotes and line ends.
        for piece in rows.as_bytes().chunks(7) {
            writer.write_all(piece).unwrap();
        }
        let (out, escaped) = writer.finish().unwrap();
        assert_eq!(escaped, 4);
        let read = |bytes: &[u8]| -> Vec<Vec<String>> {
            csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(bytes)
                .records()
                .map(|r| r.unwrap().iter().map(str::to_owned).collect())
                .collect()
        };
        let (before, after) = (read(rows.as_bytes()), read(&out));
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().flatten().zip(after.iter().flatten()) {
            if b.starts_with(['=', '+', '-', '@']) {
                assert_eq!(*a, format!("'{b}"));
            } else {
                assert_eq!(a, b);
            }
        }
    }

    #[test]
    fn a_last_record_without_a_line_end_is_made_safe_at_finish() {
        let mut writer = SpreadsheetSafe::new(Vec::new());
        writer.write_all(b"1,Ana,L,1,1999-03-17,1\r\n2,=B").unwrap();
        writer.flush().unwrap();
        writer.write_all(b",L,2,1999-03-17,2").unwrap();
        let (out, escaped) = writer.finish().unwrap();
        assert_eq!(
            out,
            b"1,Ana,L,1,1999-03-17,1\r\n2,'=B,L,2,1999-03-17,2".to_vec()
        );
        assert_eq!(escaped, 1);
    }
}
