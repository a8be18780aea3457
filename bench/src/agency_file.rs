//! Agency files in the course's format: `nombre,apellido,documento,nacimiento,numero`.
//!
//! No header, one bet a line. Written with LF endings and quoted only where
//! needed (a comma, a double quote or a line break in a field), which is what
//! Python's `csv` module writes with `QUOTE_MINIMAL` and `lineterminator='\n'`
//! and what it reads back unchanged. Read with the central's own row rules
//! ([`lottery_proto::bets::bet::parse_row`]), accepting CRLF too, as the course's files use it.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use lottery_proto::bets::agency_file::{Row, RowError, Rows, born_after};
use lottery_proto::bets::bet::{Bet, BetError, format_date, today};

use crate::synth::{Synth, SynthBet};

/// The name of agency `agency`'s file inside a data directory.
pub fn file_name(agency: u32) -> String {
    format!("agency-{agency}.csv")
}

/// A CSV writer set up like Python's `csv.writer(f, lineterminator='\n')`.
pub fn csv_writer<W: Write>(out: W) -> csv::Writer<W> {
    csv::WriterBuilder::new()
        .has_headers(false)
        .terminator(csv::Terminator::Any(b'\n'))
        .quote_style(csv::QuoteStyle::Necessary)
        .buffer_capacity(1 << 16)
        .from_writer(out)
}

/// Writes one bet as a row.
pub fn write_bet<W: Write>(out: &mut csv::Writer<W>, bet: &SynthBet<'_>) -> csv::Result<()> {
    let date = format_date(bet.birthdate);
    let mut number = itoa::Buffer::new();
    let number = number.format(bet.number).as_bytes();
    out.write_record([
        bet.first_name.as_bytes(),
        bet.last_name.as_bytes(),
        bet.document().as_bytes(),
        &date,
        number,
    ])
}

/// Writes all of `agency`'s bets to `out`.
pub fn write_agency<W: Write>(synth: &Synth, agency: u32, out: W) -> csv::Result<W> {
    let mut csv = csv_writer(out);
    for bet in synth.bets_of(agency) {
        write_bet(&mut csv, &bet)?;
    }
    csv.into_inner()
        .map_err(|e| csv::Error::from(e.into_error()))
}

/// Writes `DIR/agency-{agency}.csv`.
pub fn write_agency_file(synth: &Synth, agency: u32, dir: &Path) -> csv::Result<()> {
    let file = File::create(dir.join(file_name(agency)))?;
    let mut out = write_agency(synth, agency, BufWriter::with_capacity(1 << 20, file))?;
    out.flush()?;
    Ok(())
}

/// The file beside the agency files that says how many winners each holds.
pub const EXPECTED_WINNERS: &str = "expected-winners.txt";

/// Writes `agency winners` lines, one per agency, in order.
pub fn write_expected_winners(path: &Path, winners: &[(u32, u32)]) -> io::Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    for (agency, count) in winners {
        writeln!(out, "{agency} {count}")?;
    }
    out.flush()
}

/// Reads an [`EXPECTED_WINNERS`] file: `(agency, winners)` in file order.
pub fn read_expected_winners(path: &Path) -> io::Result<Vec<(u32, u32)>> {
    let text = std::fs::read_to_string(path)?;
    let bad = |line: &str| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: bad line {line:?}", path.display()),
        )
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace().map(str::parse::<u32>);
            match (parts.next(), parts.next(), parts.next()) {
                (Some(Ok(agency)), Some(Ok(count)), None) => Ok((agency, count)),
                _ => Err(bad(line)),
            }
        })
        .collect()
}

/// Why an agency file could not be read.
#[derive(Debug)]
pub enum ReadError {
    Io(PathBuf, io::Error),
    Csv(PathBuf, csv::Error),
    /// A row the central would reject; `line` counts from 1.
    Row(PathBuf, u64, RowError),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            ReadError::Csv(p, e) => write!(f, "{}: {e}", p.display()),
            ReadError::Row(p, line, e) => write!(f, "{} line {line}: {e}", p.display()),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads every row of an agency file, checked as the central would.
pub fn read_agency_file(path: &Path) -> Result<Vec<Bet>, ReadError> {
    let file = File::open(path).map_err(|e| ReadError::Io(path.to_owned(), e))?;
    read_agency(file, path)
}

/// Reads rows from `input`; `path` only names it in errors.
pub fn read_agency<R: io::Read>(input: R, path: &Path) -> Result<Vec<Bet>, ReadError> {
    let today = today();
    let mut bets = Vec::new();
    for row in Rows::new(input) {
        let Row { line, bet } = row.map_err(|e| ReadError::Csv(path.to_owned(), e))?;
        let bad = |e| ReadError::Row(path.to_owned(), line, e);
        let bet = bet.map_err(bad)?;
        // The bench's agencies send everything: a bet the central would
        // refuse today is an error here, not a bet to hold back.
        if born_after(&bet, today) {
            return Err(bad(RowError::Bet(BetError::Birthdate)));
        }
        bets.push(bet);
    }
    Ok(bets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::WinnerPlan;

    fn written(synth: &Synth, agency: u32) -> Vec<u8> {
        write_agency(synth, agency, Vec::new()).unwrap()
    }

    #[test]
    fn rows_read_back_as_the_bets_that_were_generated() {
        let synth = Synth::new(21, 20_000, WinnerPlan::Varied);
        let bytes = written(&synth, 4);
        let read = read_agency(&bytes[..], Path::new("mem")).unwrap();
        let generated: Vec<Bet> = synth.bets_of(4).map(|b| b.to_bet()).collect();
        assert_eq!(read, generated);
    }

    #[test]
    fn fields_are_quoted_only_where_python_would() {
        let bytes = written(&Synth::new(8, 50_000, WinnerPlan::Varied), 1);
        let text = String::from_utf8(bytes).unwrap();
        assert!(!text.contains('\r'), "LF line endings only");
        assert!(text.contains(",\"Pérez, hijo\","));
        assert!(
            text.contains("\"José \"\"Pepe\"\"") || text.contains("\"Francisco \"\"Pancho\"\"")
        );
        assert!(text.contains(",\"Iñíguez \"\"Chino\"\"\","));
        assert!(text.contains(",O'Brien,"), "an apostrophe needs no quotes");
        assert!(text.contains(",Núñez,"), "accents need no quotes");
        for line in text.lines().filter(|l| !l.contains('"')) {
            assert_eq!(line.split(',').count(), 5, "{line}");
        }
    }

    #[test]
    fn crlf_files_like_the_courses_are_read_too() {
        let text = "Santiago Lionel,Lorca,30904465,1999-03-17,2201\r\n\"Pérez, hijo\",Ana,01234567,2000-02-29,7574\r\n";
        let bets = read_agency(text.as_bytes(), Path::new("mem")).unwrap();
        assert_eq!(bets.len(), 2);
        assert_eq!(bets[1].first_name, "Pérez, hijo");
        assert_eq!(bets[1].document, "01234567");
        assert_eq!(bets[1].number, 7574);
    }

    #[test]
    fn a_bad_row_is_reported_with_its_line() {
        let text = "A,B,1,2000-01-01,1\nA,B,1,2000-02-30,1\n";
        match read_agency(text.as_bytes(), Path::new("f.csv")) {
            Err(ReadError::Row(_, 2, RowError::Bet(BetError::Birthdate))) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn expected_winners_are_written_and_read_back() {
        let dir =
            std::env::temp_dir().join(format!("lottery-bench-expected-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(EXPECTED_WINNERS);
        write_expected_winners(&path, &[(1, 2), (2, 0), (3, 3)]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1 2\n2 0\n3 3\n");
        assert_eq!(
            read_expected_winners(&path).unwrap(),
            [(1, 2), (2, 0), (3, 3)]
        );
        std::fs::write(&path, "1 2\nx\n").unwrap();
        assert!(read_expected_winners(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
