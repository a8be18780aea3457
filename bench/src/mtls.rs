//! The certificates of a run over mutual TLS, made in memory before the
//! clock starts: one CA, the central's certificate for 127.0.0.1, and one
//! client certificate (CN `agency-N`) and rustls configuration per agency.
//!
//! The central gets its files through [`crate::central::CentralTls`]; the
//! agencies' configurations go to the driver. Each agency presents its own
//! certificate, so the central binds connection N to agency N as it would
//! in a deployment.

use std::sync::Arc;
use std::thread;

use anyhow::{Context, Result};
use lottery_proto::certs::Authority;
use lottery_proto::tls::{self, Pem};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;

use crate::central::CentralTls;

/// The central's name in its certificate, and the host the agencies check.
pub const CENTRAL_HOST: &str = "127.0.0.1";

/// What both sides of a TLS run need.
pub struct TlsSetup {
    /// The central's certificate, key and the CA it trusts for agencies.
    pub central: CentralTls,
    pub agencies: TlsAgencies,
}

/// Every agency's client configuration, agency `i` at index `i - 1`.
#[derive(Clone, Debug)]
pub struct TlsAgencies {
    pub configs: Vec<Arc<ClientConfig>>,
    pub server_name: ServerName<'static>,
}

impl TlsSetup {
    /// A fresh CA and certificates for agencies `1..=agencies`, made on every core.
    pub fn new(agencies: u32) -> Result<TlsSetup> {
        let ca = Authority::new("lottery bench CA").context("making the bench's CA")?;
        let central = ca
            .central(&[CENTRAL_HOST.to_string()])
            .context("making the central's certificate")?;
        let ca_pem = Pem::from_bytes("bench CA", ca.cert_pem());
        let threads = thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let per_thread = agencies.div_ceil(threads).max(1);
        let chunks: Vec<Result<Vec<Arc<ClientConfig>>>> = thread::scope(|scope| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let from = 1 + t * per_thread;
                    let to = (from + per_thread).min(agencies + 1);
                    let (ca, ca_pem) = (&ca, &ca_pem);
                    scope.spawn(move || {
                        (from..to)
                            .map(|agency| agency_config(ca, ca_pem, agency))
                            .collect()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("certificate thread panicked"))
                .collect()
        });
        let mut configs = Vec::with_capacity(agencies as usize);
        for chunk in chunks {
            configs.extend(chunk?);
        }
        let server_name = tls::server_name(&format!("{CENTRAL_HOST}:0"))?;
        Ok(TlsSetup {
            central: CentralTls {
                cert_pem: central.cert_pem,
                key_pem: central.key_pem,
                client_ca_pem: ca.cert_pem(),
            },
            agencies: TlsAgencies {
                configs,
                server_name,
            },
        })
    }
}

fn agency_config(ca: &Authority, ca_pem: &Pem, agency: u32) -> Result<Arc<ClientConfig>> {
    let issued = ca
        .agency(agency)
        .with_context(|| format!("making agency {agency}'s certificate"))?;
    let config = tls::client_config(
        ca_pem,
        &Pem::from_bytes(format!("agency-{agency}.pem"), issued.cert_pem),
        &Pem::from_bytes(format!("agency-{agency}.key"), issued.key_pem),
        agency,
    )?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_agency_gets_a_configuration_of_its_own() {
        let setup = TlsSetup::new(5).unwrap();
        assert_eq!(setup.agencies.configs.len(), 5);
        for pair in setup.agencies.configs.windows(2) {
            assert!(!Arc::ptr_eq(&pair[0], &pair[1]));
        }
        assert!(
            setup
                .central
                .client_ca_pem
                .starts_with("-----BEGIN CERTIFICATE-----")
        );
        assert!(setup.central.key_pem.contains("PRIVATE KEY"));
    }
}
