//! One agency's byte stream to the central: plain TCP, or mutual TLS over it.
//!
//! The driver reads and writes a [`Transport`] as it would a non-blocking
//! socket: `WouldBlock` means "wait for the next readiness event". Plain TCP
//! is the socket itself, one `match` away, so the plain bench costs what it
//! did before TLS existed.
//!
//! Over TLS, rustls holds the records; the invariants that keep an
//! edge-triggered loop from stalling are:
//! - [`Transport::read`] reads the socket until `WouldBlock` before it says
//!   `WouldBlock` (a short plaintext read says nothing about the socket), so
//!   [`Transport::short_read_drains`] is false for TLS;
//! - encrypted bytes that the socket did not take stay queued in rustls and
//!   go out with [`Transport::flush_pending`], which the driver calls on every
//!   WRITABLE event even when it has no new plaintext to give;
//! - plaintext is taken only when no encrypted bytes are waiting, so what
//!   rustls buffers is bounded by one write (at most its 64 KiB limit).

use std::io::{self, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

/// An agency's connection to the central.
pub enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// A rustls client connection over a non-blocking socket.
pub struct TlsStream {
    pub stream: TcpStream,
    pub conn: ClientConnection,
}

impl Transport {
    /// `stream` as it is, or wrapped in a TLS client for `server_name` with
    /// the agency's `config`. The handshake starts with [`Transport::handshake`].
    pub fn new(
        stream: TcpStream,
        tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
    ) -> io::Result<Transport> {
        match tls {
            None => Ok(Transport::Plain(stream)),
            Some((config, name)) => {
                let conn = ClientConnection::new(config, name).map_err(io::Error::other)?;
                Ok(Transport::Tls(Box::new(TlsStream { stream, conn })))
            }
        }
    }

    pub fn socket(&self) -> &TcpStream {
        match self {
            Transport::Plain(s) => s,
            Transport::Tls(t) => &t.stream,
        }
    }

    /// Moves the handshake on as far as the socket allows. `Ok(true)` once
    /// the agency may send frames (at once for plain TCP).
    pub fn handshake(&mut self) -> io::Result<bool> {
        match self {
            Transport::Plain(_) => Ok(true),
            Transport::Tls(t) => t.handshake(),
        }
    }

    /// Whether a read shorter than the buffer means the socket is empty (and
    /// a later byte raises a new edge): true of a socket, not of TLS records.
    pub fn short_read_drains(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }

    /// Sends encrypted bytes a blocked socket left behind (nothing for plain TCP).
    pub fn flush_pending(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(t) => t.flush_tls(),
        }
    }

    /// Plaintext received: `Ok(0)` when the central has closed.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(t) => t.read(buf),
        }
    }

    /// Plaintext taken for sending; `WouldBlock` when nothing can be taken now.
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(data),
            Transport::Tls(t) => t.write(data),
        }
    }
}

impl TlsStream {
    fn handshake(&mut self) -> io::Result<bool> {
        loop {
            self.flush_tls()?;
            if !self.conn.is_handshaking() {
                return Ok(true);
            }
            match self.conn.read_tls(&mut self.stream) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the central closed the connection during the TLS handshake",
                    ));
                }
                Ok(_) => self.process()?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn process(&mut self) -> io::Result<()> {
        if let Err(e) = self.conn.process_new_packets() {
            // Tell the central why, as far as the socket takes it now.
            let _ = self.flush_tls();
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("TLS: {}", lottery_proto::tls::handshake_error(&e)),
            ));
        }
        Ok(())
    }

    fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                // The socket ended without close_notify: closed all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match self.conn.read_tls(&mut self.stream) {
                // rustls notes the end; the reader reports it next round.
                Ok(0) => {}
                Ok(_) => {
                    self.process()?;
                    // A key update or an alert may want an answer.
                    self.flush_tls()?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.flush_tls()?;
        if self.conn.wants_write() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = self.conn.writer().write(data)?;
        self.flush_tls()?;
        if n == 0 && !data.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}
