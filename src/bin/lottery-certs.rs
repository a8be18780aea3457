//! `lottery-certs`: writes the certificates a lottery over mutual TLS needs
//! (a CA, the central's, one per agency) into a directory. The work is in
//! [`lottery::net::certs`].

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use lottery::net::certs::{self, CertsError};

/// Writes ca.pem/ca.key, server.pem/server.key and agency-N.pem/agency-N.key
/// (keys mode 0600, certificates 0644).
#[derive(Parser)]
#[command(name = "lottery-certs", version)]
struct Args {
    /// How many agencies get a certificate (agency-1 .. agency-N).
    #[arg(long)]
    agencies: u32,
    /// The directory to write into (created if missing).
    #[arg(long)]
    out: PathBuf,
    /// A name the central is reached by: an IP address or a DNS name. Repeat
    /// for several. Default: server, localhost, 127.0.0.1.
    #[arg(long = "server-name", value_name = "NAME")]
    server_names: Vec<String>,
    /// Replace files that are already there (otherwise nothing is written
    /// when any of them exists).
    #[arg(long)]
    force: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match certs::write_set(&args.out, args.agencies, &args.server_names, args.force) {
        Ok(written) => {
            for file in &written {
                println!(
                    "action: escribir_certificado | result: success | file: {} | mode: {:04o}",
                    file.path.display(),
                    file.mode
                );
            }
            let names = if args.server_names.is_empty() {
                certs::DEFAULT_SERVER_NAMES.join(",")
            } else {
                args.server_names.join(",")
            };
            println!(
                "action: certificados | result: success | out: {} | agencies: {} | server_names: {names}",
                args.out.display(),
                args.agencies
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "action: certificados | result: fail | out: {} | error: {e}",
                args.out.display()
            );
            // Bad arguments exit 2 like clap's own refusals; files 1.
            match e {
                CertsError::NoAgencies | CertsError::BadServerName { .. } => ExitCode::from(2),
                _ => ExitCode::from(1),
            }
        }
    }
}
