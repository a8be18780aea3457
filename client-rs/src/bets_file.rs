//! Reading the agency's bets: the CSV file (`nombre,apellido,documento,
//! nacimiento,numero`, no header, CRLF or LF, UTF-8, fields may be quoted)
//! or the one bet of the environment, into [`Bets`].
//!
//! Each row is checked with `lottery::bet::parse_row`, the central's own
//! rules, so a bad row is never sent: it is logged with its line number and
//! the reason, skipped, and counted in [`Loaded::invalid`] so that `main`
//! can end the run with exit code 2 once everything else is done.

use std::fmt;
use std::io::Read;
use std::path::Path;

use log::{error, info};
use lottery::bet::{self, Bet};
use lottery::wire::Date;

use crate::bets::Bets;
use crate::config::BetSource;
use crate::logfmt::clean;
use crate::stop::Stop;

/// The bets read and how many rows were rejected.
#[derive(Debug, Default)]
pub struct Loaded {
    pub bets: Bets,
    pub invalid: usize,
}

#[derive(Debug)]
pub enum LoadError {
    /// The file is missing or cannot be read.
    Unreadable(String),
    /// A stop signal arrived while reading.
    Stopped,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Unreadable(why) => f.write_str(why),
            LoadError::Stopped => f.write_str("stopped by a signal"),
        }
    }
}

/// How many rows are read between two looks at the stop flag.
const STOP_CHECK_ROWS: usize = 4096;

/// Where a mounted bets file is missing on the host, docker creates an
/// empty directory in its place, so a directory gets its own explanation.
fn open(path: &Path) -> Result<std::fs::File, LoadError> {
    let unreadable = |why: String| {
        LoadError::Unreadable(format!(
            "cannot read the bets file {}: {why}",
            path.display()
        ))
    };
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => {
            return Err(unreadable(
                "it is a directory, not a file (docker creates an empty directory where a \
                 mounted file is missing on the host: put this agency's bets file there, then \
                 remove the directory docker made)"
                    .into(),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(unreadable(format!(
                "no such file ({e}); set data.file or CLI_DATA_FILE to this agency's bets"
            )));
        }
        _ => {}
    }
    std::fs::File::open(path).map_err(|e| unreadable(e.to_string()))
}

/// Reads the bets of `source`, with `today` as the latest valid birthdate.
pub fn load(source: &BetSource, today: Date, stop: &Stop) -> Result<Loaded, LoadError> {
    let loaded = match source {
        BetSource::File(path) => {
            let file = open(path)?;
            read_csv(file, today, stop).map_err(|e| match e {
                LoadError::Unreadable(why) => {
                    LoadError::Unreadable(format!("{}: {why}", path.display()))
                }
                other => other,
            })?
        }
        BetSource::Single(fields) => single(fields, today),
    };
    let origin = match source {
        BetSource::File(path) => path.display().to_string(),
        BetSource::Single(_) => "environment".to_string(),
    };
    let result = if loaded.invalid == 0 {
        "success"
    } else {
        "fail"
    };
    info!(
        "action: leer_apuestas | result: {result} | origen: {} | cantidad: {} | invalidas: {}",
        clean(&origin),
        loaded.bets.len(),
        loaded.invalid
    );
    Ok(loaded)
}

/// Reads CSV rows from `input`, logging and skipping the bad ones.
pub fn read_csv(input: impl Read, today: Date, stop: &Stop) -> Result<Loaded, LoadError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        // A row with the wrong number of fields is a bad row, not a broken file.
        .flexible(true)
        .from_reader(input);
    let mut loaded = Loaded::default();
    let mut record = csv::ByteRecord::new();
    let mut rows = 0usize;
    loop {
        rows += 1;
        if rows.is_multiple_of(STOP_CHECK_ROWS) && stop.requested().is_some() {
            return Err(LoadError::Stopped);
        }
        // Byte records, so that a row that is not UTF-8 is one bad row
        // with its line number instead of an error for the whole file.
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(LoadError::Unreadable(e.to_string())),
        }
        let line = record.position().map_or(0, |p| p.line());
        match parse_record(&record, today) {
            Ok(bet) => loaded.bets.push(&bet),
            Err(why) => {
                loaded.invalid += 1;
                error!(
                    "action: leer_apuesta | result: fail | linea: {line} | motivo: {}",
                    clean(&why)
                );
            }
        }
    }
    Ok(loaded)
}

fn parse_record(record: &csv::ByteRecord, today: Date) -> Result<Bet, String> {
    let mut fields = Vec::with_capacity(record.len());
    for (i, raw) in record.iter().enumerate() {
        let text = std::str::from_utf8(raw).map_err(|_| format!("field {} is not UTF-8", i + 1))?;
        fields.push(text);
    }
    bet::parse_row(&fields, today).map_err(|e| e.to_string())
}

/// The bet of `NOMBRE`..`NUMERO`: the whole stream, or no bet if it is bad.
fn single(fields: &[String; 5], today: Date) -> Loaded {
    let mut loaded = Loaded::default();
    match bet::parse_row(fields, today) {
        Ok(bet) => loaded.bets.push(&bet),
        Err(why) => {
            loaded.invalid = 1;
            error!(
                "action: leer_apuesta | result: fail | origen: environment | dni: {} | numero: {} | motivo: {}",
                clean(&fields[2]),
                clean(&fields[4]),
                why
            );
        }
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;

    const TODAY: Date = Date {
        year: 2026,
        month: 1,
        day: 1,
    };

    fn read(text: &[u8]) -> Loaded {
        read_csv(text, TODAY, &Stop::default()).unwrap()
    }

    #[test]
    fn rows_with_crlf_lf_and_quoted_commas_are_read_in_order() {
        let loaded = read(
            b"Ana,Lorca,1,1999-03-17,7574\r\n\"Paz, Maria\",\"Diaz\",0002,2000-01-01,0\nJose,Nu\xc3\xb1ez,3,1950-12-31,9999",
        );
        assert_eq!(loaded.invalid, 0);
        assert_eq!(loaded.bets.len(), 3);
        assert_eq!(loaded.bets.get(1).first_name, "Paz, Maria");
        assert_eq!(loaded.bets.get(1).document, "0002");
        assert_eq!(loaded.bets.get(2).last_name, "Nuñez");
    }

    #[test]
    fn bad_rows_are_skipped_and_counted() {
        let loaded = read(
            b"Ana,Lorca,1,1999-03-17,7574\nBad,Row,12a,1999-03-17,1\nShort,Row\nNot,UTF8\xff,4,1999-03-17,1\nOk,Row,5,2001-02-03,4\n",
        );
        assert_eq!(loaded.invalid, 3);
        assert_eq!(loaded.bets.len(), 2);
        assert_eq!(loaded.bets.get(1).document, "5");
    }

    #[test]
    fn an_empty_file_has_no_bets() {
        let loaded = read(b"");
        assert_eq!(loaded.bets.len(), 0);
        assert_eq!(loaded.invalid, 0);
    }

    #[test]
    fn a_bad_single_bet_is_not_sent() {
        let fields = ["Ana", "Lorca", "1", "1999-02-30", "1"].map(String::from);
        let loaded = single(&fields, TODAY);
        assert_eq!(loaded.bets.len(), 0);
        assert_eq!(loaded.invalid, 1);
    }
}
