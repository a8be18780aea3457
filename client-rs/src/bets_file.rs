//! Reading the agency's bets: the CSV file (`nombre,apellido,documento,
//! nacimiento,numero`, no header, CRLF or LF, UTF-8, fields may be quoted)
//! or the one bet of the environment, into [`Bets`].
//!
//! The file is read by `lottery_proto::bets::agency_file`, with the central's own rules
//! except the day's, so a bad row is never sent: it is logged with its line
//! number and the reason, skipped, and counted in [`Loaded::invalid`] so
//! that `main` can end the run with exit code 2 once everything else is done.
//!
//! The stream (which rows it holds, so every position in it) is a function
//! of the file alone: a row whose birthdate is after today is *in* the
//! stream, because it becomes valid on that day and a restart then must not
//! see the later bets shift by one. The central refuses such a bet until
//! then, so [`Loaded::held_from`] marks the first one: the agency sends the
//! bets before it and stops there, without DONE (see `agency`).

use std::fmt;
use std::io::Read;
use std::path::Path;

use log::{error, info, warn};
use lottery_proto::bets::agency_file::{self, Rows};
use lottery_proto::bets::bet::format_date;
use lottery_proto::wire::Date;

use crate::bets::Bets;
use crate::config::BetSource;
use crate::logfmt::clean;
use crate::stop::Stop;

/// The bets read, how many rows were rejected, and where today's sending stops.
#[derive(Debug, Default)]
pub struct Loaded {
    pub bets: Bets,
    pub invalid: usize,
    /// The stream position of the first bet born after today, if any: it
    /// and the bets after it cannot be stored before that day.
    pub held_from: Option<usize>,
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

/// Reads CSV rows from `input`, logging and skipping the bad ones; `today`
/// decides only [`Loaded::held_from`], never which bets the stream holds.
pub fn read_csv(input: impl Read, today: Date, stop: &Stop) -> Result<Loaded, LoadError> {
    let mut loaded = Loaded::default();
    for (rows, row) in Rows::new(input).enumerate() {
        if (rows + 1).is_multiple_of(STOP_CHECK_ROWS) && stop.requested().is_some() {
            return Err(LoadError::Stopped);
        }
        let row = row.map_err(|e| LoadError::Unreadable(e.to_string()))?;
        match row.bet {
            Ok(bet) => {
                note_if_held(&mut loaded, &bet, today, &format!("linea: {}", row.line));
                loaded.bets.push(&bet);
            }
            Err(why) => {
                loaded.invalid += 1;
                error!(
                    "action: leer_apuesta | result: fail | linea: {} | motivo: {}",
                    row.line,
                    clean(&why.to_string())
                );
            }
        }
    }
    Ok(loaded)
}

/// Marks `bet`, the next of the stream, as held back if it is the first
/// born after `today`.
fn note_if_held(
    loaded: &mut Loaded,
    bet: &lottery_proto::bets::bet::Bet,
    today: Date,
    place: &str,
) {
    if loaded.held_from.is_none() && agency_file::born_after(bet, today) {
        loaded.held_from = Some(loaded.bets.len());
        let date = format_date(bet.birthdate);
        warn!(
            "action: leer_apuesta | result: in_progress | {place} | posicion: {} | motivo: birthdate {} is after today: this bet and those after it are held back until that day",
            loaded.bets.len(),
            String::from_utf8_lossy(&date)
        );
    }
}

/// The bet of `NOMBRE`..`NUMERO`: the whole stream, or no bet if it is bad.
fn single(fields: &[String; 5], today: Date) -> Loaded {
    let mut loaded = Loaded::default();
    match agency_file::parse_fields(fields) {
        Ok(bet) => {
            note_if_held(&mut loaded, &bet, today, "origen: environment");
            loaded.bets.push(&bet);
        }
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

    fn next_day(d: Date) -> Date {
        Date {
            day: d.day + 1,
            ..d
        }
    }

    #[test]
    fn the_stream_is_the_same_whatever_the_day_it_is_read_on() {
        // Line 2 is born on TODAY's next day: invalid today, valid tomorrow.
        let file = b"Ana,Lorca,1,1999-03-17,1\nBea,Diaz,2,2026-01-02,2\nCris,Paz,3,2000-05-05,3\n";
        let stop = Stop::default();
        let today = read_csv(&file[..], TODAY, &stop).unwrap();
        let tomorrow = read_csv(&file[..], next_day(TODAY), &stop).unwrap();
        assert_eq!(today.bets.len(), 3);
        assert_eq!(tomorrow.bets.len(), 3);
        for position in 0..3 {
            assert_eq!(today.bets.get(position), tomorrow.bets.get(position));
        }
        assert_eq!(today.bets.get(2).document, "3");
        assert_eq!(today.invalid, 0);
        // Today the stream stops before the bet of tomorrow; tomorrow it does not.
        assert_eq!(today.held_from, Some(1));
        assert_eq!(tomorrow.held_from, None);
    }

    #[test]
    fn an_empty_file_has_no_bets() {
        let loaded = read(b"");
        assert_eq!(loaded.bets.len(), 0);
        assert_eq!(loaded.invalid, 0);
    }

    #[test]
    fn a_single_bet_born_tomorrow_is_held_not_dropped() {
        let fields = ["Ana", "Lorca", "1", "2026-01-02", "1"].map(String::from);
        let loaded = single(&fields, TODAY);
        assert_eq!(loaded.bets.len(), 1);
        assert_eq!(loaded.held_from, Some(0));
    }

    #[test]
    fn a_bad_single_bet_is_not_sent() {
        let fields = ["Ana", "Lorca", "1", "1999-02-30", "1"].map(String::from);
        let loaded = single(&fields, TODAY);
        assert_eq!(loaded.bets.len(), 0);
        assert_eq!(loaded.invalid, 1);
    }
}
