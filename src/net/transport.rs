//! What carries a connection's bytes: the TCP socket itself, or a rustls
//! server connection over it (mutual TLS 1.3). [`crate::connections::connection`] keeps
//! its buffers and stage and only calls [`Transport::read`],
//! [`Transport::write`] and [`Transport::flush`], which behave alike for
//! both: `Ok(0)` from a read is the peer's end of its stream, `WouldBlock`
//! means "nothing more now", and a write may take fewer bytes than offered.
//!
//! Invariants of the TLS transport:
//! - Reads are edge-triggered: [`Transport::read`] returns `WouldBlock` only
//!   when rustls holds no plaintext *and* the socket is drained, so bytes
//!   rustls already decrypted are never left waiting for an event that will
//!   not come. It reads no more plaintext than the caller has room for, and
//!   reads the socket only once rustls' plaintext is drained (so its
//!   plaintext buffer never fills: no back-pressure error to handle).
//! - rustls buffers at most [`TLS_BUFFER_LIMIT`] bytes of unsent records;
//!   writing never uses `write_all`: what rustls does not take stays with
//!   the connection.
//! - [`Transport::flush`] is done only when rustls has nothing to send
//!   (handshake records and alerts included), so WRITABLE interest covers them.
//! - The agency is read from the verified certificate once, when the
//!   handshake completes, before any of its plaintext is handed out
//!   ([`Transport::take_verified_agency`]).
//! - A TLS error (a failed handshake above all) sends rustls' alert once,
//!   best effort, and is reported as a [`TlsFailure`].
//!
//! [`CloseLog`] limits the lines failed handshakes may write: a peer that
//! reconnects in a loop cannot fill the log.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use crate::net::tls::{self, Pem, TlsError};
use crate::support::deadlines::Timer;
use crate::support::log_budget::LogBudget;

/// Unsent TLS bytes rustls may hold for a connection.
pub const TLS_BUFFER_LIMIT: usize = 16 * 1024;

/// What every TLS connection is made from: the central's rustls
/// configuration and the number of agencies a certificate may name.
#[derive(Clone)]
pub struct TlsSetup {
    pub config: Arc<ServerConfig>,
    pub agencies: u32,
}

/// The PEM files of mutual TLS (`TLS_CERT`, `TLS_KEY`, `TLS_CLIENT_CA`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The central's certificate chain.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
    /// The CA the agencies' certificates must chain to.
    pub client_ca: PathBuf,
}

impl TlsSetup {
    /// The TLS setup of `files` (`None`: plain TCP) for a lottery of
    /// `agencies`, its files read and checked now, so that a bad one stops
    /// the start.
    pub fn new(files: Option<&TlsFiles>, agencies: u32) -> Result<Option<TlsSetup>, TlsError> {
        let Some(files) = files else {
            return Ok(None);
        };
        let server = tls::server_config(
            &Pem::read(&files.cert)?,
            &Pem::read(&files.key)?,
            &Pem::read(&files.client_ca)?,
            agencies,
        )?;
        Ok(Some(TlsSetup {
            config: server,
            agencies,
        }))
    }
}

/// A connection's byte stream.
#[derive(Debug)]
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// A rustls server connection over its socket.
#[derive(Debug)]
pub struct TlsStream {
    socket: TcpStream,
    tls: ServerConnection,
    agencies: u32,
    /// The agency of the certificate, read when the handshake completed and
    /// not yet taken by the connection.
    verified: Option<u32>,
    /// The handshake has completed (and `verified` was set).
    established: bool,
}

/// A TLS error on a connection: rustls refused the peer's records.
#[derive(Debug)]
pub struct TlsFailure {
    /// It happened before the handshake completed (the peer is no agency).
    pub handshake: bool,
    pub reason: String,
}

impl TlsFailure {
    /// A handshake still going at its deadline.
    pub fn timed_out(timeout: Duration) -> TlsFailure {
        TlsFailure {
            handshake: true,
            reason: format!("not completed within {} ms", timeout.as_millis()),
        }
    }
}

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for TlsFailure {}

/// The [`TlsFailure`] an I/O error carries, if it carries one.
pub fn tls_failure(e: &io::Error) -> Option<&TlsFailure> {
    e.get_ref().and_then(|inner| inner.downcast_ref())
}

impl Transport {
    /// Wraps an accepted socket: plain TCP, or a TLS server connection
    /// waiting for the agency's ClientHello.
    pub fn new(socket: TcpStream, tls: Option<&TlsSetup>) -> io::Result<Transport> {
        let Some(setup) = tls else {
            return Ok(Transport::Plain(socket));
        };
        let mut conn = ServerConnection::new(setup.config.clone()).map_err(io::Error::other)?;
        conn.set_buffer_limit(Some(TLS_BUFFER_LIMIT));
        Ok(Transport::Tls(Box::new(TlsStream {
            socket,
            tls: conn,
            agencies: setup.agencies,
            verified: None,
            established: false,
        })))
    }

    pub fn socket(&mut self) -> &mut TcpStream {
        match self {
            Transport::Plain(socket) => socket,
            Transport::Tls(s) => &mut s.socket,
        }
    }

    /// A TLS connection whose handshake has not completed.
    pub fn is_handshaking(&self) -> bool {
        matches!(self, Transport::Tls(s) if !s.established)
    }

    /// The agency the certificate names, once, right after the handshake.
    pub fn take_verified_agency(&mut self) -> Option<u32> {
        match self {
            Transport::Plain(_) => None,
            Transport::Tls(s) => s.verified.take(),
        }
    }

    /// Reads plaintext into `buf` (not empty): `Ok(0)` when the peer ended
    /// its stream, `WouldBlock` when nothing more is there now.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.read(buf),
            Transport::Tls(s) => s.read(buf),
        }
    }

    /// Whether a read that returned less than it asked for has emptied the
    /// socket. True of a TCP socket under edge-triggered epoll (more bytes
    /// raise a new edge); not of TLS, whose session may hold plaintext or
    /// have read only part of what the socket holds.
    pub fn short_read_drains(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }

    /// Takes what it can of `buf` and pushes it towards the socket:
    /// `WouldBlock` when it took nothing because the socket is full.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(socket) => socket.write(buf),
            Transport::Tls(s) => s.write(buf),
        }
    }

    /// Sends what the transport itself holds: `Ok(true)` when nothing is left.
    pub fn flush(&mut self) -> io::Result<bool> {
        match self {
            Transport::Plain(_) => Ok(true),
            Transport::Tls(s) => s.flush(),
        }
    }

    /// Whether the transport holds bytes for the socket.
    pub fn wants_write(&self) -> bool {
        matches!(self, Transport::Tls(s) if s.tls.wants_write())
    }

    /// Before a close that the central decides (an error, shutdown): tells
    /// a TLS peer with close_notify, best effort.
    pub fn close_notify(&mut self) {
        if let Transport::Tls(s) = self
            && s.established
        {
            s.tls.send_close_notify();
            let _ = s.flush();
        }
    }
}

impl TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                // The TCP stream ended without close_notify: the peer's
                // stream ends there too (frames are self-delimiting, so a
                // cut can only lose whole requests or leave a partial one).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match self.tls.read_tls(&mut self.socket) {
                // EOF is recorded by rustls; the reader reports it next turn.
                Ok(_) => self.process()?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // rustls' "received plaintext buffer full" cannot come:
                // the socket is read only once the reader is empty.
                Err(e) => return Err(e),
            }
        }
    }

    /// Decrypts what was read; on the handshake's completion, the agency.
    fn process(&mut self) -> io::Result<()> {
        if let Err(e) = self.tls.process_new_packets() {
            // The alert rustls queued (bad certificate, ...) is sent once.
            let _ = self.flush();
            return Err(io::Error::other(TlsFailure {
                handshake: !self.established,
                reason: tls::handshake_error(&e),
            }));
        }
        if !self.established && !self.tls.is_handshaking() {
            self.established = true;
            // The verifier already refused any other certificate; this only
            // reads the agency it names.
            let agency =
                tls::agency_of(self.tls.peer_certificates(), self.agencies).map_err(|e| {
                    io::Error::other(TlsFailure {
                        handshake: true,
                        reason: e.to_string(),
                    })
                })?;
            self.verified = Some(agency);
        }
        Ok(())
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            let taken = self.tls.writer().write(buf)?;
            if taken > 0 {
                // Best effort now; what the socket refuses waits for WRITABLE.
                self.flush()?;
                return Ok(taken);
            }
            // rustls' buffer is full: only sending makes room.
            if !self.flush()? {
                return Err(io::ErrorKind::WouldBlock.into());
            }
        }
    }

    fn flush(&mut self) -> io::Result<bool> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.socket) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

/// How the central logs a connection it closes for a failure: lost, expired,
/// or refused by TLS. Lines about failed TLS connections: at most
/// [`CloseLog::PER_SECOND`] in a second; past that they are counted, and
/// the count is logged with the first line of a later second.
#[derive(Debug)]
pub struct CloseLog {
    budget: LogBudget,
    /// TLS handshakes that failed or timed out since start, for `/metrics`.
    handshakes_failed: u64,
}

impl Default for CloseLog {
    fn default() -> Self {
        CloseLog {
            budget: LogBudget::new(Self::PER_SECOND, Duration::from_secs(1)),
            handshakes_failed: 0,
        }
    }
}

impl CloseLog {
    pub const PER_SECOND: u32 = 20;

    /// TLS handshakes that failed or did not complete in time, since start.
    pub fn handshakes_failed(&self) -> u64 {
        self.handshakes_failed
    }

    /// The connection from `peer` ended with `e`: a TLS failure is logged at
    /// a bounded rate, a hang-up is routine, anything else is worth a warning.
    pub fn lost(&mut self, now: Instant, peer: SocketAddr, e: &io::Error) {
        if let Some(failure) = tls_failure(e) {
            self.failed(now, peer, failure);
        } else if is_disconnect(e) {
            debug!("action: cerrar_conexion | result: success | peer: {peer} | motivo: {e}");
        } else {
            warn!("action: cerrar_conexion | result: fail | peer: {peer} | error: {e}");
        }
    }

    /// The deadline `timer` of the connection from `peer` expired after
    /// `timeout`: a handshake that did not complete. (Idle closes are
    /// logged by the schedule, under its own budget.)
    pub fn expired(&mut self, now: Instant, peer: SocketAddr, timer: Timer, timeout: Duration) {
        if timer == Timer::Handshake {
            self.failed(now, peer, &TlsFailure::timed_out(timeout));
        }
    }

    /// Logs (or counts) that the TLS connection from `peer` failed.
    pub fn failed(&mut self, now: Instant, peer: SocketAddr, failure: &TlsFailure) {
        self.handshakes_failed += u64::from(failure.handshake);
        let action = if failure.handshake {
            "tls_handshake"
        } else {
            "tls_record"
        };
        if let Some(suppressed) = self.admit(now) {
            let more = if suppressed > 0 {
                format!(" | sin_registrar: {suppressed}")
            } else {
                String::new()
            };
            warn!(
                "action: {action} | result: fail | peer: {peer} | error: {}{more}",
                failure.reason
            );
        }
    }

    /// Whether a line may be written at `now`; if so, how many were
    /// suppressed since the last one written.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        // Taken first: once the window of the counted lines has ended, the
        // line about to be logged opens a new one and carries the count.
        let suppressed = self.budget.take_suppressed(now).unwrap_or(0);
        self.budget.allow(now).then_some(suppressed)
    }
}

/// Whether a peer error means "the peer went away" rather than a fault worth a warning.
pub fn is_disconnect(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
            | io::ErrorKind::WriteZero
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_lines_are_limited_per_second_and_the_rest_counted() {
        let t0 = Instant::now();
        let mut log = CloseLog::default();
        let admitted = (0..100).filter(|_| log.admit(t0).is_some()).count();
        assert_eq!(admitted, CloseLog::PER_SECOND as usize);
        let later = t0 + Duration::from_millis(999);
        assert_eq!(log.admit(later), None);
        // The first line of the next second carries the count.
        let next = t0 + Duration::from_secs(1);
        assert_eq!(log.admit(next), Some(81));
        assert_eq!(log.admit(next), Some(0));
    }

    #[test]
    fn a_tls_failure_is_found_in_the_io_error_that_carries_it() {
        let e = io::Error::other(TlsFailure {
            handshake: true,
            reason: "no client certificate".into(),
        });
        let failure = tls_failure(&e).unwrap();
        assert!(failure.handshake);
        assert_eq!(e.to_string(), "no client certificate");
        assert!(tls_failure(&io::Error::other("plain")).is_none());
        assert!(tls_failure(&io::ErrorKind::ConnectionReset.into()).is_none());
    }
}
