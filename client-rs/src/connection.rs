//! One TCP connection to the central: the only code that touches socket
//! bytes.
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

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use socket2::{SockRef, TcpKeepalive};

pub use lottery::reply::Reply;
use lottery::wire;

use crate::stop::Stop;

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
}

pub struct Connection<'a> {
    stream: TcpStream,
    /// Bytes read but not yet decoded into a [`Reply`].
    inbox: Vec<u8>,
    stop: &'a Stop,
    /// How long a reply (or a write) may take before the central counts as lost.
    deadline: Duration,
}

impl<'a> Connection<'a> {
    /// Connects to `address` (`host:port`, resolved now), trying each of
    /// its addresses for at most `timeout`; replies are waited for at most
    /// `deadline`.
    pub fn open(
        address: &str,
        timeout: Duration,
        deadline: Duration,
        stop: &'a Stop,
    ) -> io::Result<Connection<'a>> {
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
                    return Ok(Connection {
                        stream,
                        inbox: Vec::with_capacity(READ_CHUNK),
                        stop,
                        deadline,
                    });
                }
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, "the address resolved to nothing")
        }))
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
                Err(e) => return Err(ConnError::Lost(e.to_string())),
            }
        }
        Ok(())
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
                Err(e) => break Err(ConnError::Lost(e.to_string())),
            }
        };
        self.inbox.truncate(*result.as_ref().unwrap_or(&old));
        result.map(|_| ())
    }
}

impl Drop for Connection<'_> {
    fn drop(&mut self) {
        // Tell the central at once rather than when the process exits.
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// The central did nothing for `limit`: the connection counts as lost.
fn silent(what: &str, limit: Duration) -> ConnError {
    ConnError::Lost(format!(
        "the central {what} for {} ms (reply deadline)",
        limit.as_millis()
    ))
}

/// A timeout of [`POLL`] or a signal: look at the stop flag and go on.
fn is_wait(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
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
}
