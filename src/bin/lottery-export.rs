//! `lottery-export`: writes the lottery's `bets.csv`, byte for byte as the
//! CSV store writes it, from where `STORAGE` says the bets are: the CSV
//! store's own file (`BETS_FILE`, its whole rows as they are) or PostgreSQL
//! (the same bets in the same commits, in the order the central stored
//! them; the work is in [`lottery::store::postgres::export_csv`]).
//!
//! `--spreadsheet-safe` passes the rows through
//! [`lottery::store::spreadsheet`]: a name that starts with `=`, `+`, `-`
//! or `@` gets a `'` in front, so a spreadsheet opening the file does not
//! run it as a formula.
//!
//! The file `--out` names is written whole under a new temporary name
//! beside it, readable by its owner only, then renamed into place.

use std::error::Error;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use lottery::store::spreadsheet::SpreadsheetSafe;
use lottery::store::{csv, postgres};

/// Reads the lottery's bets where STORAGE says and writes them in the
/// course's format (`agency,first_name,last_name,document,birthdate,number`).
#[derive(Parser)]
#[command(name = "lottery-export", version)]
struct Args {
    /// `csv` (the bets file BETS_FILE) or a PostgreSQL connection string,
    /// as the central's STORAGE.
    #[arg(long, env = "STORAGE", hide_env_values = true, default_value = "csv")]
    storage: String,
    /// The CSV store's bets file, as the central's BETS_FILE.
    #[arg(long, env = "BETS_FILE", default_value = "./bets.csv")]
    bets_file: PathBuf,
    /// Where to write (default: standard output). Written whole, then
    /// renamed into place, so a half-written file never has the name.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Put a `'` in front of every field that starts with `=`, `+`, `-`,
    /// `@`, a tab or a carriage return, which a spreadsheet would run as a
    /// formula. The output is then no longer the course's format byte for
    /// byte.
    #[arg(long)]
    spreadsheet_safe: bool,
}

/// Where the bets are read from.
enum Source {
    Csv(PathBuf),
    Postgres(Box<::postgres::Config>),
}

impl Source {
    /// The source as the log line names it (never a password).
    fn describe(&self) -> String {
        match self {
            Source::Csv(path) => format!("archivo_apuestas: {}", path.display()),
            Source::Postgres(config) => {
                format!("base_de_datos: {}", postgres::location_of(config))
            }
        }
    }

    fn export(&self, out: &mut dyn Write) -> Result<u64, Box<dyn Error>> {
        match self {
            Source::Csv(path) => csv::export_csv(path, &mut &mut *out)
                .map_err(|e| format!("{}: {e}", path.display()).into()),
            Source::Postgres(config) => postgres::export_csv(config, &mut &mut *out),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let storage = args.storage.trim();
    let source = if storage.eq_ignore_ascii_case("csv") {
        Source::Csv(args.bets_file.clone())
    } else {
        match postgres::parse_settings(storage) {
            Ok(config) => Source::Postgres(Box::new(config)),
            Err(e) => {
                eprintln!("lottery-export: {e} (STORAGE: csv or postgres://...)");
                return ExitCode::from(2);
            }
        }
    };
    if let (Source::Csv(bets), Some(out)) = (&source, &args.out)
        && is_same_file(bets, out)
    {
        // The rename would put a copy in place of the file the central
        // appends to, which would go on writing to the one unlinked.
        eprintln!(
            "lottery-export: --out {} is the bets file it reads (BETS_FILE): choose another path",
            out.display()
        );
        return ExitCode::from(2);
    }
    let result = match &args.out {
        None => {
            let stdout = io::stdout();
            let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
            export(&source, &mut out, args.spreadsheet_safe)
        }
        Some(path) => export_to_file(&source, path, args.spreadsheet_safe),
    };
    let from = source.describe();
    match result {
        Ok((n, escaped)) => {
            let to = args
                .out
                .as_ref()
                .map_or("-".to_string(), |p| p.display().to_string());
            let escaped = escaped.map_or(String::new(), |e| format!(" | campos_escapados: {e}"));
            let _ = writeln!(
                io::stderr(),
                "action: exportar | result: success | {from} | apuestas: {n}{escaped} | archivo: {to}"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("action: exportar | result: fail | {from} | error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Whether `a` and `b` name the same existing file.
fn is_same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => (a.dev(), a.ino()) == (b.dev(), b.ino()),
        _ => false,
    }
}

/// Exports to `out`; returns how many bets, and with `spreadsheet_safe`
/// how many fields got a `'`.
fn export(
    source: &Source,
    out: &mut dyn Write,
    spreadsheet_safe: bool,
) -> Result<(u64, Option<u64>), Box<dyn Error>> {
    if !spreadsheet_safe {
        let n = source.export(out)?;
        return Ok((n, None));
    }
    let mut safe = SpreadsheetSafe::new(out);
    let n = source.export(&mut safe)?;
    let (_, escaped) = safe.finish()?;
    Ok((n, Some(escaped)))
}

/// Exports into a new temporary file beside `path`, syncs it and renames it
/// to `path`. On failure the temporary file is removed.
fn export_to_file(
    source: &Source,
    path: &Path,
    spreadsheet_safe: bool,
) -> Result<(u64, Option<u64>), Box<dyn Error>> {
    let (file, tmp) = create_temporary(path)?;
    let written = (|| {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let counts = export(source, &mut out, spreadsheet_safe)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(counts)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Creates a file beside `path` under a name no one else chose
/// (`<path>.<pid>.<n>.tmp`), readable and writable by its owner only: the
/// export holds people's names and documents. `create_new` never opens what
/// is already there, so neither a file left by a crashed export nor a link
/// planted at a guessable name is written through; such a name is skipped
/// for the next. A crashed export's file stays until someone removes it.
fn create_temporary(path: &Path) -> io::Result<(File, PathBuf)> {
    let mut n = 0u32;
    loop {
        let mut name = path.as_os_str().to_owned();
        name.push(format!(".{}.{n}.tmp", std::process::id()));
        let tmp = PathBuf::from(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(file) => return Ok((file, tmp)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", tmp.display()))),
        }
    }
}
