//! `lottery-export`: writes the `bets.csv` of a lottery kept in PostgreSQL,
//! byte for byte as the CSV store would have written the same bets in the
//! same commits (the order the central stored them in). The work is in
//! [`lottery::store::postgres::export_csv`].

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lottery::store::postgres;

/// Reads the lottery of the database STORAGE names and writes its bets in
/// the course's format (`agency,first_name,last_name,document,birthdate,number`).
#[derive(Parser)]
#[command(name = "lottery-export", version)]
struct Args {
    /// The connection string (default: the STORAGE environment variable).
    #[arg(long, env = "STORAGE", hide_env_values = true)]
    storage: String,
    /// Where to write (default: standard output). Written whole, then
    /// renamed into place, so a half-written file never has the name.
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let config = match postgres::parse_settings(&args.storage) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("lottery-export: {e}");
            return ExitCode::from(2);
        }
    };
    let location = postgres::location_of(&config);
    let result = match &args.out {
        None => {
            let stdout = io::stdout();
            let mut out = BufWriter::with_capacity(1 << 20, stdout.lock());
            postgres::export_csv(&config, &mut out)
        }
        Some(path) => {
            let mut tmp = path.clone().into_os_string();
            tmp.push(".tmp");
            let tmp = PathBuf::from(tmp);
            File::create(&tmp).map_err(Into::into).and_then(|file| {
                let mut out = BufWriter::with_capacity(1 << 20, file);
                let n = postgres::export_csv(&config, &mut out)?;
                let file = out.into_inner().map_err(|e| e.into_error())?;
                file.sync_all()?;
                std::fs::rename(&tmp, path)?;
                Ok(n)
            })
        }
    };
    match result {
        Ok(n) => {
            let to = args
                .out
                .as_ref()
                .map_or("-".to_string(), |p| p.display().to_string());
            let _ = writeln!(
                io::stderr(),
                "action: exportar | result: success | base_de_datos: {location} | apuestas: {n} | archivo: {to}"
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("action: exportar | result: fail | base_de_datos: {location} | error: {e}");
            ExitCode::from(1)
        }
    }
}
