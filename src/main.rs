//! `lottery-server`: reads the config, starts logging, runs the central.
//! `lottery-server --probe`: asks a running central whether it is up
//! ([`lottery::probe`]), exit 0 if so, 1 if not (a compose healthcheck).
//!
//! Exit codes: 0 after a graceful shutdown (SIGTERM or SIGINT), 2 for a bad
//! configuration (TLS files that cannot be used included), 1 when the files
//! or the listening socket cannot be used.

use std::process::ExitCode;

use lottery::config::Config;
use lottery::server::{Server, StartError};
use simple_logger::SimpleLogger;

fn main() -> ExitCode {
    let config = match Config::load(std::path::Path::new(".")) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("lottery-server: bad configuration: {e}");
            return ExitCode::from(2);
        }
    };
    if std::env::args().nth(1).as_deref() == Some("--probe") {
        return match lottery::probe::run(&config) {
            Ok(_) => ExitCode::SUCCESS,
            Err(why) => {
                eprintln!("lottery-server: unhealthy: {why}");
                ExitCode::from(1)
            }
        };
    }
    if let Err(e) = SimpleLogger::new()
        .with_level(config.logging_level)
        .with_utc_timestamps()
        .init()
    {
        eprintln!("lottery-server: cannot start logging: {e}");
        return ExitCode::from(1);
    }
    raise_descriptor_limit();
    let server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => {
            log::error!("action: iniciar | result: fail | error: {e}");
            return ExitCode::from(if matches!(e, StartError::Tls(_)) {
                2
            } else {
                1
            });
        }
    };
    match server.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("action: servidor | result: fail | error: {e}");
            ExitCode::from(1)
        }
    }
}

/// Raises the soft limit on open files to the hard limit: every agency is a
/// descriptor, and the usual soft limit of 1024 is far below the thousands
/// of agencies the central serves.
fn raise_descriptor_limit() {
    match lottery::support::limits::raise_open_files(u64::MAX) {
        Ok(nofile) => {
            log::info!("action: limite_descriptores | result: success | nofile: {nofile}")
        }
        Err(e) => log::warn!("action: limite_descriptores | result: fail | error: {e}"),
    }
}
