//! `lottery-client`: one lottery agency. It reads its bets, sends them to
//! the central in batches, closes its stream and asks for its winners.
//!
//! Layout, one job per module:
//! - [`config`]: `config.yaml` and the `CLI_*` variables, checked at start-up.
//! - [`stop`]: the SIGTERM/SIGINT flag every wait looks at.
//! - [`bets_file`]: the bets CSV (or the one bet of the environment), row by row.
//! - [`bets`]: the bet stream, held compactly for resending.
//! - [`batch`]: cutting the stream into BATCH frames.
//! - [`transport`]: plain TCP or mutual TLS under the connection; what a TLS failure means.
//! - [`connection`]: the socket, its read buffer, frames in and out.
//! - [`retry`]: back-off and the retry budget.
//! - [`not_ready`]: the pause before asking for the winners again after an early NOT_READY.
//! - [`centrals`]: the central's addresses, and when to move to the next one.
//! - [`agency`]: the conversation with the central, reconnects and resumes.
//! - [`logfmt`]: keeping `action:` log lines well-formed.
//! - [`logging`]: the log on stderr, above the live progress line.
//! - [`progress`]: how far the run is: a live line on a terminal, else a
//!   `progreso` log line every `log.progressPeriod`.
//!
//! Exit codes: 0 when the winners arrived (or a stop signal ended the run),
//! 2 when the agency's own input is wrong (config, bets file, a bad row, a
//! bet or agency the central rejects, TLS files or certificates that either
//! side refuses), 1 when the central could not be
//! reached in time or broke the protocol.

mod agency;
mod batch;
mod bets;
mod bets_file;
mod centrals;
mod config;
mod connection;
mod logfmt;
mod logging;
mod not_ready;
mod pacing;
mod progress;
mod retry;
mod stop;
mod transport;

use std::path::Path;
use std::process::ExitCode;

use log::{LevelFilter, error, info};

use crate::agency::{Agency, Outcome};
use crate::bets_file::LoadError;
use crate::config::{BetSource, Config};
use crate::logfmt::clean;
use crate::progress::Progress;
use crate::stop::Stop;
use crate::transport::Tls;

/// Exit code for input the agency cannot use.
const BAD_INPUT: u8 = 2;

fn main() -> ExitCode {
    let stop = match Stop::install() {
        Ok(stop) => stop,
        Err(e) => {
            logging::init(LevelFilter::Info);
            error!(
                "action: signals | result: fail | motivo: {}",
                clean(&e.to_string())
            );
            return ExitCode::FAILURE;
        }
    };
    let config = match Config::load(Path::new(".")) {
        Ok(config) => config,
        Err(e) => {
            // The level is part of what failed, so the error is logged at INFO's.
            logging::init(LevelFilter::Info);
            error!("action: config | result: fail | motivo: {}", clean(&e.0));
            return ExitCode::from(BAD_INPUT);
        }
    };
    logging::init(config.log_level);
    // The TLS files are part of the configuration: a bad one (or a
    // certificate of another agency) stops the agency before it connects.
    let tls = match Tls::load(&config) {
        Ok(tls) => tls,
        Err(e) => {
            error!(
                "action: config | result: fail | motivo: {}",
                clean(&e.to_string())
            );
            return ExitCode::from(BAD_INPUT);
        }
    };
    info!("action: config | result: success | {}", config.describe());

    let loaded = match bets_file::load(&config.bets, lottery_proto::bets::bet::today(), &stop) {
        Ok(loaded) => loaded,
        Err(LoadError::Stopped) => {
            log_shutdown(stop.requested().unwrap_or("signal"), 0);
            return ExitCode::SUCCESS;
        }
        Err(LoadError::Unreadable(why)) => {
            error!(
                "action: leer_apuestas | result: fail | motivo: {}",
                clean(&why)
            );
            return ExitCode::from(BAD_INPUT);
        }
    };

    let single = matches!(config.bets, BetSource::Single(_));
    let progress = Progress::start(loaded.bets.len(), config.progress_period);
    let agency = Agency::new(&config, &loaded.bets, &stop, single)
        .hold_from(loaded.held_from)
        .over(tls.as_ref())
        .showing(progress);
    match agency.run() {
        Ok(Outcome::Winners { all_stored, .. }) => {
            if loaded.invalid > 0 {
                error!(
                    "action: leer_apuestas | result: fail | invalidas: {} | motivo: bad rows were not sent (see the leer_apuesta lines)",
                    loaded.invalid
                );
                ExitCode::from(BAD_INPUT)
            } else if !all_stored {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Ok(Outcome::Stopped { signal, stored }) => {
            log_shutdown(signal, stored);
            ExitCode::SUCCESS
        }
        Err(failure) => ExitCode::from(failure.exit_code()),
    }
}

fn log_shutdown(signal: &str, stored: usize) {
    info!("action: shutdown | result: success | signal: {signal} | stored: {stored}");
}
