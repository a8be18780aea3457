//! What carries the agency's bytes: the TCP socket itself, or mutual TLS
//! 1.3 over it (a rustls `ClientConnection` in a `StreamOwned`), and what a
//! TLS failure means.
//!
//! Invariants:
//! - The TLS configuration is built once, at start-up ([`Tls::load`]): it
//!   trusts only `tls.ca`, presents `tls.cert`, which must name this
//!   agency (`agency-{id}`), and checks the central's certificate against
//!   the host of the address it connects to ([`Tls::toward`]; with several
//!   addresses in `server.address`, each its own host, all checked at
//!   start-up). A bad file or host is a configuration error.
//! - Both transports look alike to [`crate::connection`]: `Read` and
//!   `Write`, with the socket's short timeouts showing as `WouldBlock`.
//! - A TLS error is never a lost connection: a certificate refused by
//!   either side, an alert, or a central that does not speak TLS is
//!   [`Refusal`], which no reconnect would change. Only the socket failing
//!   (closed, reset, silent) is a loss, as over plain TCP.

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lottery_proto::tls::{self, Pem, TlsError};
use rustls::pki_types::ServerName;
use rustls::{AlertDescription, ClientConfig, ClientConnection, StreamOwned};

use crate::config::{Config, TlsFiles};
use crate::stop::Stop;

/// The agency's side of mutual TLS, checked at start-up.
#[derive(Clone, Debug)]
pub struct Tls {
    config: Arc<ClientConfig>,
    /// The host of the central's address, which its certificate must name.
    server_name: ServerName<'static>,
}

impl Tls {
    /// The TLS the configuration asks for (`None`: plain TCP), its files
    /// and the host of every address read and checked now; an error names
    /// the file or the address. It is toward the first address.
    pub fn load(config: &Config) -> Result<Option<Tls>, TlsError> {
        let Some(TlsFiles { ca, cert, key }) = &config.tls else {
            return Ok(None);
        };
        let client = tls::client_config(
            &Pem::read(ca)?,
            &Pem::read(cert)?,
            &Pem::read(key)?,
            config.id,
        )?;
        for address in &config.server_addresses {
            tls::server_name(address)?;
        }
        Ok(Some(Tls {
            config: client,
            server_name: tls::server_name(&config.server_addresses[0])?,
        }))
    }

    /// The same TLS toward the central at `address`, whose certificate
    /// must name its host.
    pub fn toward(&self, address: &str) -> Result<Tls, TlsError> {
        Ok(Tls {
            config: Arc::clone(&self.config),
            server_name: tls::server_name(address)?,
        })
    }

    #[cfg(test)]
    pub fn new(config: Arc<ClientConfig>, server_name: ServerName<'static>) -> Tls {
        Tls {
            config,
            server_name,
        }
    }
}

/// A TLS failure that no reconnect changes: the agency gives up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal(pub String);

/// How one attempt to set up or use the transport failed.
#[derive(Debug)]
pub enum Failed {
    /// The socket failed (closed, reset, silent): reconnect.
    Lost(String),
    Refused(Refusal),
    Stopped,
}

pub enum Transport {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Transport {
    /// Runs the TLS handshake over `socket` (whose reads and writes time
    /// out after a short poll), within `deadline`, looking at `stop`
    /// between polls. In TLS 1.3 the agency is done before the central
    /// has judged its certificate: a refusal of it arrives as an alert on
    /// the first read.
    pub fn handshake(
        tls: &Tls,
        mut socket: TcpStream,
        deadline: Duration,
        stop: &Stop,
    ) -> Result<Transport, Failed> {
        let mut conn = ClientConnection::new(tls.config.clone(), tls.server_name.clone())
            .map_err(|e| Failed::Refused(Refusal(format!("TLS setup: {e}"))))?;
        let started = Instant::now();
        while conn.is_handshaking() {
            if stop.requested().is_some() {
                return Err(Failed::Stopped);
            }
            if started.elapsed() >= deadline {
                return Err(Failed::Lost(format!(
                    "the central did not finish the TLS handshake in {} ms (reply deadline)",
                    deadline.as_millis()
                )));
            }
            match conn.complete_io(&mut socket) {
                // Nothing moved and the handshake is not over: the central
                // closed the connection.
                Ok((0, 0)) if conn.is_handshaking() => {
                    return Err(Failed::Lost(
                        "closed by the central during the TLS handshake".into(),
                    ));
                }
                Ok(_) => {}
                Err(e) if is_wait(&e) => {}
                Err(e) => return Err(failure(e, tls)),
            }
        }
        Ok(Transport::Tls(Box::new(StreamOwned::new(conn, socket))))
    }

    fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(socket) => socket,
            Transport::Tls(stream) => stream.get_ref(),
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self, Transport::Tls(_))
    }

    /// After a failed write: what the central said before it went, if it
    /// was a TLS alert (it refuses a certificate, then closes; the write
    /// that follows may fail before the alert is read).
    pub fn refusal_after_write_failure(&mut self) -> Option<Refusal> {
        let Transport::Tls(stream) = self else {
            return None;
        };
        let (conn, socket) = (&mut stream.conn, &mut stream.sock);
        // Whatever is already in the socket's receive queue; no waiting
        // beyond the socket's poll timeout.
        let _ = conn.read_tls(socket);
        conn.process_new_packets()
            .err()
            .map(|e| Refusal(explain(&e, None)))
    }

    /// Closes the connection now: a `close_notify` first over TLS (best
    /// effort), then both directions of the socket.
    pub fn close(&mut self) {
        if let Transport::Tls(stream) = self {
            stream.conn.send_close_notify();
            let _ = stream.conn.write_tls(&mut stream.sock);
        }
        let _ = self.socket().shutdown(Shutdown::Both);
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.read(buf),
            Transport::Tls(stream) => stream.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.write(buf),
            Transport::Tls(stream) => stream.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(socket) => socket.flush(),
            Transport::Tls(stream) => stream.flush(),
        }
    }
}

/// An I/O error of the TLS transport: a rustls error is a refusal, the rest
/// is the socket's.
pub fn failure(e: io::Error, tls: &Tls) -> Failed {
    match rustls_error(&e) {
        Some(tls_error) => Failed::Refused(Refusal(explain(tls_error, Some(&tls.server_name)))),
        None => Failed::Lost(e.to_string()),
    }
}

/// The rustls error inside an I/O error from `complete_io` or `StreamOwned`.
pub fn rustls_error(e: &io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// What a TLS error means for the agency, as a sentence with what to check.
/// `host` is the name the central's certificate was checked against.
pub fn explain(e: &rustls::Error, host: Option<&ServerName<'_>>) -> String {
    let reason = tls::handshake_error(e);
    match e {
        rustls::Error::AlertReceived(alert) => {
            let check = match alert {
                AlertDescription::CertificateRequired => "the central wants a client certificate",
                AlertDescription::UnknownCA => {
                    "tls.cert must be signed by the CA the central trusts (its TLS_CLIENT_CA)"
                }
                AlertDescription::CertificateExpired => {
                    "tls.cert has expired or is not valid yet (or a clock is wrong)"
                }
                AlertDescription::CertificateUnknown | AlertDescription::BadCertificate => {
                    "tls.cert must name this agency (agency-N, N within the central's AGENCIES) and be for client authentication (the central's log says why)"
                }
                _ => "the central's log says why",
            };
            format!("the central refused the TLS connection ({reason}): {check}")
        }
        rustls::Error::InvalidCertificate(_) => {
            let host = host.map_or_else(|| "the host".into(), |h| format!("{:?}", h.to_str()));
            format!(
                "the central's certificate is refused ({reason}): it must be signed by tls.ca and name {host} of server.address"
            )
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
            "the central does not speak TLS ({reason}): is it serving mutual TLS (TLS_CERT, TLS_KEY, TLS_CLIENT_CA)?"
        ),
        _ => format!("TLS failed: {reason}"),
    }
}

/// Whether `bytes`, the first bytes a plain agency read, begin a TLS record
/// (a handshake, alert or application-data record of TLS 1.0 to 1.3): the
/// central speaks TLS. As a frame header they would be a DONE, which a
/// central never sends.
pub fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15..=0x17, 0x03, 0x01..=0x04, ..])
}

/// A timeout of the socket's poll or a signal.
pub fn is_wait(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::CertificateError;

    #[test]
    fn the_first_bytes_of_a_tls_record_are_recognised_and_frames_are_not() {
        // An alert record as a TLS central sends it to a plain peer.
        assert!(looks_like_tls(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32]));
        assert!(looks_like_tls(&[0x16, 0x03, 0x01]));
        assert!(!looks_like_tls(&[0x15, 0x03]));
        let mut ack = Vec::new();
        lottery_proto::wire::encode_ack(&mut ack, 1, 10);
        assert!(!looks_like_tls(&ack));
        let mut error = Vec::new();
        lottery_proto::wire::encode_error(
            &mut error,
            lottery_proto::wire::ErrorCode::Forbidden,
            2,
            "no",
        );
        assert!(!looks_like_tls(&error));
    }

    #[test]
    fn a_refused_certificate_is_explained_with_what_to_check() {
        let alert = |a| explain(&rustls::Error::AlertReceived(a), None);
        assert!(alert(AlertDescription::UnknownCA).contains("TLS_CLIENT_CA"));
        assert!(alert(AlertDescription::CertificateExpired).contains("expired"));
        assert!(alert(AlertDescription::CertificateUnknown).contains("agency-N"));
        assert!(alert(AlertDescription::CertificateRequired).contains("client certificate"));
        let host = ServerName::try_from("server").unwrap();
        let why = explain(
            &rustls::Error::InvalidCertificate(CertificateError::NotValidForName),
            Some(&host),
        );
        assert!(why.contains("name \"server\" of server.address"), "{why}");
        let why = explain(
            &rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType),
            Some(&host),
        );
        assert!(why.contains("does not speak TLS"), "{why}");
    }
}
