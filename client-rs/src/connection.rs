//! One connection to the central, plain TCP or mutual TLS
//! ([`crate::transport`]): the only code that touches socket bytes.
//!
//! Writes go out whole (a short write is continued, never an error); reads
//! go into a buffer that is decoded with `wire::decode`, so a frame that
//! arrives in pieces is waited for and several frames in one read are all
//! kept. The buffer never holds more than one incomplete frame plus one
//! read, because it is only read into when no whole frame is buffered.
//!
//! Every socket wait lasts at most [`POLL`], then the stop flag is looked
//! at: a parked `GET_WINNERS` may wait minutes, and SIGTERM must still be
//! answered at once. A closed, reset or broken connection is
//! [`ConnError::Lost`] (the agency reconnects); bytes that are not the
//! protocol are [`ConnError::Garbled`] (the agency gives up).
//!
//! A central that is silent is lost too: a reply not begun, or a write not
//! taken, within the connection's deadline ([`Connection::recv_within`] for
//! a longer one) is [`ConnError::Lost`], and TCP keepalive probes the idle
//! socket, so a half-open connection (the central's host gone) or a wedged
//! central costs the retry budget instead of waiting forever.
//!
//! Over TLS the same holds for the handshake (within the deadline), and a
//! TLS failure (a certificate refused by either side, an alert) is
//! [`ConnError::Refused`]: the agency gives up rather than reconnect into
//! the same refusal. A plain agency that reads a TLS record is refused too.

use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use socket2::{SockRef, TcpKeepalive};

use lottery_proto::wire;
pub use lottery_proto::wire::reply::Reply;

use crate::stop::Stop;
use crate::transport::{self, Failed, Tls, Transport, is_wait};

/// The longest a socket call blocks before the stop flag is checked.
pub const POLL: Duration = Duration::from_millis(100);
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 16 * 1024;
/// Keepalive: the first probe after this much silence, then one every
/// [`KEEPALIVE_INTERVAL`], and the connection is reset after
/// [`KEEPALIVE_PROBES`] unanswered ones (about 20 s for a dead host).
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(2);
const KEEPALIVE_PROBES: u32 = 5;

#[derive(Debug, PartialEq, Eq)]
pub enum ConnError {
    /// The connection is gone (closed, reset, broken pipe): reconnect.
    Lost(String),
    /// The central sent bytes that are not a frame it may send.
    Garbled(String),
    /// A stop signal arrived while waiting.
    Stopped,
    /// TLS failed in a way no reconnect changes (see [`crate::transport`]).
    Refused(String),
}

impl From<Failed> for ConnError {
    fn from(f: Failed) -> ConnError {
        match f {
            Failed::Lost(why) => ConnError::Lost(why),
            Failed::Refused(refusal) => ConnError::Refused(refusal.0),
            Failed::Stopped => ConnError::Stopped,
        }
    }
}

pub struct Connection<'a> {
    stream: Transport,
    /// The TLS setup, if the stream is TLS, for explaining its errors.
    tls: Option<&'a Tls>,
    /// Bytes read but not yet decoded into a [`Reply`].
    inbox: Vec<u8>,
    stop: &'a Stop,
    /// How long a reply (or a write) may take before the central counts as lost.
    deadline: Duration,
}

impl<'a> Connection<'a> {
    /// Connects to `address` (`host:port`, resolved now), trying each of
    /// its addresses for at most `timeout`, then (with `tls`) runs the TLS
    /// handshake; replies are waited for at most `deadline`.
    pub fn open(
        address: &str,
        timeout: Duration,
        deadline: Duration,
        tls: Option<&'a Tls>,
        stop: &'a Stop,
    ) -> Result<Connection<'a>, ConnError> {
        let socket = connect(address, timeout).map_err(|e| ConnError::Lost(e.to_string()))?;
        let stream = match tls {
            Some(tls) => Transport::handshake(tls, socket, deadline, stop)?,
            None => Transport::Plain(socket),
        };
        Ok(Connection {
            stream,
            tls,
            inbox: Vec::with_capacity(READ_CHUNK),
            stop,
            deadline,
        })
    }

    /// Writes all of `bytes`, within the deadline.
    pub fn send(&mut self, mut bytes: &[u8]) -> Result<(), ConnError> {
        let started = Instant::now();
        while !bytes.is_empty() {
            if self.stop.requested().is_some() {
                return Err(ConnError::Stopped);
            }
            if started.elapsed() >= self.deadline {
                return Err(silent("took no bytes", self.deadline));
            }
            match self.stream.write(bytes) {
                Ok(0) => return Err(ConnError::Lost("the central stopped reading".into())),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if is_wait(&e) => {}
                Err(e) => {
                    let error = self.error(e);
                    if let ConnError::Lost(_) = error
                        && let Some(refusal) = self.stream.refusal_after_write_failure()
                    {
                        return Err(ConnError::Refused(refusal.0));
                    }
                    return Err(error);
                }
            }
        }
        // Over TLS a write may leave records in rustls; they go now.
        while let Err(e) = self.stream.flush() {
            if self.stop.requested().is_some() {
                return Err(ConnError::Stopped);
            }
            if !is_wait(&e) {
                return Err(self.error(e));
            }
            if started.elapsed() >= self.deadline {
                return Err(silent("took no bytes", self.deadline));
            }
        }
        Ok(())
    }

    /// What an I/O error of the stream means.
    fn error(&self, e: io::Error) -> ConnError {
        if e.kind() == io::ErrorKind::UnexpectedEof && self.stream.is_tls() {
            // rustls' name for a close without close_notify.
            return ConnError::Lost("closed by the central".into());
        }
        match self.tls {
            Some(tls) => transport::failure(e, tls).into(),
            None => ConnError::Lost(e.to_string()),
        }
    }

    /// The next frame from the central, within the connection's deadline.
    pub fn recv(&mut self) -> Result<Reply, ConnError> {
        self.recv_within(self.deadline)
    }

    /// The next frame from the central, within `limit` (a parked request
    /// may legitimately take longer than an ordinary reply).
    pub fn recv_within(&mut self, limit: Duration) -> Result<Reply, ConnError> {
        let started = Instant::now();
        loop {
            match wire::decode(&self.inbox) {
                Ok(Some((frame, used))) => {
                    let reply = Reply::from_frame(&frame).map_err(|kind| {
                        ConnError::Garbled(format!(
                            "the central sent a request frame (type 0x{kind:02x})"
                        ))
                    });
                    self.inbox.drain(..used);
                    return reply;
                }
                Ok(None) if self.tls.is_none() && transport::looks_like_tls(&self.inbox) => {
                    return Err(ConnError::Refused(
                        "the central answered in TLS: it serves mutual TLS only, so give this agency tls.ca, tls.cert and tls.key (CLI_TLS_CA, CLI_TLS_CERT, CLI_TLS_KEY)".into(),
                    ));
                }
                Ok(None) => {}
                Err(e) => return Err(ConnError::Garbled(e.to_string())),
            }
            self.fill(started + limit, limit)?;
        }
    }

    /// Reads once into the inbox (after waits of at most [`POLL`]), by `until`.
    fn fill(&mut self, until: Instant, limit: Duration) -> Result<(), ConnError> {
        let old = self.inbox.len();
        self.inbox.resize(old + READ_CHUNK, 0);
        let result = loop {
            if self.stop.requested().is_some() {
                break Err(ConnError::Stopped);
            }
            if Instant::now() >= until {
                break Err(silent("sent no reply", limit));
            }
            match self.stream.read(&mut self.inbox[old..]) {
                Ok(0) => {
                    let why = if old == 0 {
                        "closed by the central"
                    } else {
                        "closed by the central in the middle of a frame"
                    };
                    break Err(ConnError::Lost(why.into()));
                }
                Ok(n) => break Ok(old + n),
                Err(e) if is_wait(&e) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && self.stream.is_tls() => {
                    // A close without TLS's close_notify: as plain TCP's end.
                    let why = if old == 0 {
                        "closed by the central"
                    } else {
                        "closed by the central in the middle of a frame"
                    };
                    break Err(ConnError::Lost(why.into()));
                }
                Err(e) => break Err(self.error(e)),
            }
        };
        self.inbox.truncate(*result.as_ref().unwrap_or(&old));
        result.map(|_| ())
    }
}

/// A TCP connection to `address` with the agency's socket options: short
/// timeouts for every call (see [`POLL`]) and keepalive.
fn connect(address: &str, timeout: Duration) -> io::Result<TcpStream> {
    let mut last_error = None;
    for addr in address.to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                // Frames are written whole; Nagle would only delay a
                // lone DONE or GET_WINNERS behind an unacknowledged ACK.
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(POLL))?;
                stream.set_write_timeout(Some(POLL))?;
                let keepalive = TcpKeepalive::new()
                    .with_time(KEEPALIVE_IDLE)
                    .with_interval(KEEPALIVE_INTERVAL)
                    .with_retries(KEEPALIVE_PROBES);
                SockRef::from(&stream).set_tcp_keepalive(&keepalive)?;
                return Ok(stream);
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "the address resolved to nothing")
    }))
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        // Tell the central at once rather than when the process exits.
        self.stream.close();
    }
}

/// The central did nothing for `limit`: the connection counts as lost.
fn silent(what: &str, limit: Duration) -> ConnError {
    ConnError::Lost(format!(
        "the central {what} for {} ms (reply deadline)",
        limit.as_millis()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;
    use std::thread;

    fn pair(stop: &Stop) -> (Connection<'_>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let conn = Connection::open(
            &address,
            Duration::from_secs(1),
            Duration::from_secs(5),
            None,
            stop,
        )
        .unwrap();
        let (central, _) = listener.accept().unwrap();
        (conn, central)
    }

    #[test]
    fn frames_split_across_writes_and_packed_in_one_are_all_read() {
        let stop = Stop::default();
        let (mut conn, mut central) = pair(&stop);
        let mut bytes = Vec::new();
        wire::encode_ack(&mut bytes, 1, 10);
        wire::encode_not_ready(&mut bytes, 2, 5);
        wire::encode_winners(&mut bytes, 1, 1, true, &["30904465"]);
        let writer = thread::spawn(move || {
            for piece in bytes.chunks(5) {
                central.write_all(piece).unwrap();
                thread::sleep(Duration::from_millis(5));
            }
            central
        });
        assert_eq!(
            conn.recv(),
            Ok(Reply::Ack {
                agency: 1,
                stored: 10
            })
        );
        assert_eq!(
            conn.recv(),
            Ok(Reply::NotReady {
                done: 2,
                expected: 5
            })
        );
        assert_eq!(
            conn.recv(),
            Ok(Reply::Winners {
                agency: 1,
                total: 1,
                last: true,
                documents: vec!["30904465".into()]
            })
        );
        drop(writer.join().unwrap());
        assert!(matches!(conn.recv(), Err(ConnError::Lost(_))));
    }

    #[test]
    fn bytes_that_are_not_the_protocol_are_garbled() {
        let stop = Stop::default();
        let (mut conn, mut central) = pair(&stop);
        central.write_all(&[0, 1, 0x7f]).unwrap();
        assert!(matches!(conn.recv(), Err(ConnError::Garbled(_))));
    }

    #[test]
    fn a_silent_central_is_lost_at_the_deadline() {
        let stop = Stop::default();
        let (mut conn, _central) = pair(&stop);
        let started = Instant::now();
        match conn.recv_within(Duration::from_millis(300)) {
            Err(ConnError::Lost(why)) => assert!(why.contains("reply deadline"), "{why}"),
            other => panic!("{other:?}"),
        }
        assert!(started.elapsed() >= Duration::from_millis(300));
    }

    #[test]
    fn a_stop_request_ends_a_wait_for_a_reply() {
        let stop = Stop::default();
        let (mut conn, _central) = pair(&stop);
        let flag = stop.clone();
        let stopper = thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            flag.request();
        });
        assert_eq!(conn.recv(), Err(ConnError::Stopped));
        stopper.join().unwrap();
    }

    // --- Mutual TLS, against a small rustls central on loopback.

    use lottery_proto::certs::{Authority, Issued, Leaf};
    use lottery_proto::tls::{self as lottery_tls, Pem};
    use rustls::{ServerConnection, StreamOwned};

    /// A CA, the central's certificate for `names` and agency 1's.
    struct Pki {
        ca: Authority,
        central: Issued,
        agency: Issued,
    }

    impl Pki {
        fn new(names: &[&str], agency: &Leaf) -> Pki {
            let ca = Authority::new("test CA").unwrap();
            let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
            let central = ca.central(&names).unwrap();
            let agency = ca.issue(agency).unwrap();
            Pki {
                ca,
                central,
                agency,
            }
        }

        fn tls(&self, address: &str) -> Tls {
            let config = lottery_tls::client_config(
                &Pem::from_bytes("ca.pem", self.ca.cert_pem()),
                &Pem::from_bytes("agency-1.pem", self.agency.cert_pem.clone()),
                &Pem::from_bytes("agency-1.key", self.agency.key_pem.clone()),
                1,
            )
            .unwrap();
            Tls::new(config, lottery_tls::server_name(address).unwrap())
        }

        /// A central serving one TLS connection with `serve`; its address.
        fn central(
            &self,
            serve: impl FnOnce(StreamOwned<ServerConnection, TcpStream>) + Send + 'static,
        ) -> (String, thread::JoinHandle<()>) {
            let config = lottery_tls::server_config(
                &Pem::from_bytes("server.pem", self.central.cert_pem.clone()),
                &Pem::from_bytes("server.key", self.central.key_pem.clone()),
                &Pem::from_bytes("ca.pem", self.ca.cert_pem()),
                5,
            )
            .unwrap();
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let address = listener.local_addr().unwrap().to_string();
            let central = thread::spawn(move || {
                let (socket, _) = listener.accept().unwrap();
                let conn = ServerConnection::new(config).unwrap();
                serve(StreamOwned::new(conn, socket));
            });
            (address, central)
        }
    }

    fn open_tls<'a>(
        address: &str,
        tls: &'a Tls,
        stop: &'a Stop,
    ) -> Result<Connection<'a>, ConnError> {
        Connection::open(
            address,
            Duration::from_secs(1),
            Duration::from_secs(5),
            Some(tls),
            stop,
        )
    }

    /// Reads (and drops) what comes until the agency closes, or TLS fails
    /// (rustls then sends its alert).
    fn drain(mut stream: StreamOwned<ServerConnection, TcpStream>) {
        let mut buf = [0; 1024];
        while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
    }

    #[test]
    fn frames_over_mutual_tls_are_sent_and_read_as_over_tcp() {
        let pki = Pki::new(&["127.0.0.1"], &Leaf::agency(1));
        let (address, central) = pki.central(|mut stream| {
            let mut done = [0; 11];
            stream.read_exact(&mut done).unwrap();
            assert_eq!(
                lottery_tls::agency_of(stream.conn.peer_certificates(), 5),
                Ok(1)
            );
            let mut bytes = Vec::new();
            wire::encode_ack(&mut bytes, 1, 10);
            wire::encode_winners(&mut bytes, 1, 1, true, &["30904465"]);
            for piece in bytes.chunks(5) {
                stream.write_all(piece).unwrap();
                stream.flush().unwrap();
            }
            drain(stream);
        });
        let stop = Stop::default();
        let tls = pki.tls(&address);
        let mut conn = open_tls(&address, &tls, &stop).unwrap();
        let mut done = Vec::new();
        wire::encode_done(&mut done, 1, 10);
        conn.send(&done).unwrap();
        assert_eq!(
            conn.recv(),
            Ok(Reply::Ack {
                agency: 1,
                stored: 10
            })
        );
        assert!(matches!(conn.recv(), Ok(Reply::Winners { total: 1, .. })));
        drop(conn);
        central.join().unwrap();
    }

    #[test]
    fn a_certificate_the_central_refuses_is_a_refusal_not_a_lost_connection() {
        // The agency finishes the TLS 1.3 handshake before the central has
        // judged its certificate; the central's alert comes on the next read.
        let pki = Pki::new(&["127.0.0.1"], &Leaf::agency(1).expired());
        let (address, central) = pki.central(drain);
        let stop = Stop::default();
        let tls = pki.tls(&address);
        let result = open_tls(&address, &tls, &stop).and_then(|mut conn| {
            let mut done = Vec::new();
            wire::encode_done(&mut done, 1, 10);
            conn.send(&done)?;
            conn.recv()
        });
        match result {
            Err(ConnError::Refused(why)) => {
                assert!(why.contains("CertificateExpired"), "{why}");
                assert!(why.contains("tls.cert has expired"), "{why}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        central.join().unwrap();
    }

    #[test]
    fn a_central_whose_certificate_lacks_the_host_is_refused_at_the_handshake() {
        let pki = Pki::new(&["localhost"], &Leaf::agency(1));
        let (address, central) = pki.central(drain);
        let stop = Stop::default();
        let tls = pki.tls(&address);
        match open_tls(&address, &tls, &stop).map(|_| ()) {
            Err(ConnError::Refused(why)) => {
                assert!(
                    why.contains("name \"127.0.0.1\" of server.address"),
                    "{why}"
                );
                assert!(why.contains("not valid for name"), "{why}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        central.join().unwrap();
    }

    #[test]
    fn a_tls_agency_against_a_plain_central_is_refused() {
        let pki = Pki::new(&["127.0.0.1"], &Leaf::agency(1));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let central = thread::spawn(move || {
            // A plain central answers the ClientHello's bytes with an ERROR.
            let (mut socket, _) = listener.accept().unwrap();
            let mut hello = [0; 16];
            socket.read_exact(&mut hello).unwrap();
            let mut error = Vec::new();
            wire::encode_error(&mut error, wire::ErrorCode::TooLarge, 0, "too large");
            socket.write_all(&error).unwrap();
            socket
        });
        let stop = Stop::default();
        let tls = pki.tls(&address);
        match open_tls(&address, &tls, &stop).map(|_| ()) {
            Err(ConnError::Refused(why)) => assert!(why.contains("does not speak TLS"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        drop(central.join().unwrap());
    }

    #[test]
    fn a_plain_agency_that_reads_a_tls_alert_is_refused() {
        let stop = Stop::default();
        let (mut conn, mut central) = pair(&stop);
        // What a TLS central sends a peer whose first bytes are no TLS record.
        central
            .write_all(&[0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x32])
            .unwrap();
        match conn.recv() {
            Err(ConnError::Refused(why)) => assert!(why.contains("CLI_TLS_CA"), "{why}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}
