//! The observation port's sockets: a listener and at most
//! [`MAX_HTTP_CONNECTIONS`] HTTP connections, driven by the central's own
//! mio loop (no thread of their own), each answered once and closed.
//!
//! Bounded like the agencies' side: a connection past the cap is closed at
//! accept; a request head is read into at most [`MAX_HEAD`] bytes (431
//! past it); a connection that has not sent a whole head within
//! [`REQUEST_TIMEOUT`] is answered 408, and one that has not taken its
//! response within [`RESPONSE_TIMEOUT`] more is closed. A response is
//! written as far as the socket takes it; the rest waits for WRITABLE,
//! never for the socket. What a response holds is the loop's business: it
//! is asked for through the `render` callback, once per request.
//!
//! Tokens: the connections use `Token(TOKENS + key)`, above every agency
//! connection's slab key, so the loop tells the two apart by number.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};
use slab::Slab;

use super::http::{self, MAX_HEAD, Route, Status};
use crate::support::log_budget::LogBudget;

/// HTTP connections open at once; more are closed at accept.
pub const MAX_HTTP_CONNECTIONS: usize = 16;
/// A request head must be whole this long after the accept.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// A response must be taken this long after it was ready.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first token of the HTTP connections.
pub const TOKENS: usize = usize::MAX / 2;

enum Stage {
    /// Reading the request head.
    Reading,
    /// Writing the response; closed once it is sent.
    Writing,
}

struct HttpConnection {
    socket: TcpStream,
    peer: SocketAddr,
    stage: Stage,
    input: Vec<u8>,
    out: Vec<u8>,
    sent: usize,
    deadline: Instant,
}

/// The observation port.
pub struct Endpoint {
    listener: TcpListener,
    local_addr: SocketAddr,
    connections: Slab<HttpConnection>,
    refused: u64,
    refusals_log: LogBudget,
}

impl Endpoint {
    /// Binds `address` and registers the listener under `token`.
    pub fn bind(address: SocketAddr, registry: &Registry, token: Token) -> io::Result<Endpoint> {
        let mut listener = TcpListener::bind(address)?;
        registry.register(&mut listener, token, Interest::READABLE)?;
        Ok(Endpoint {
            local_addr: listener.local_addr()?,
            listener,
            connections: Slab::new(),
            refused: 0,
            refusals_log: LogBudget::default(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Whether `token` is one of this port's connections.
    pub fn owns(token: Token) -> bool {
        token.0 >= TOKENS
    }

    /// Connections refused at the cap since start.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Takes every queued connection, up to the cap.
    pub fn accept(&mut self, registry: &Registry, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((mut socket, peer)) => {
                    if self.connections.len() >= MAX_HTTP_CONNECTIONS {
                        self.refused += 1;
                        if self.refusals_log.allow(now) {
                            warn!(
                                "action: aceptar_http | result: fail | peer: {peer} | error: connection cap of {MAX_HTTP_CONNECTIONS} reached"
                            );
                        }
                        continue;
                    }
                    let entry = self.connections.vacant_entry();
                    let token = Token(TOKENS + entry.key());
                    // Both at once: edge-triggered, WRITABLE only matters
                    // once a response waits.
                    if let Err(e) = registry.register(
                        &mut socket,
                        token,
                        Interest::READABLE | Interest::WRITABLE,
                    ) {
                        warn!("action: aceptar_http | result: fail | peer: {peer} | error: {e}");
                        continue;
                    }
                    entry.insert(HttpConnection {
                        socket,
                        peer,
                        stage: Stage::Reading,
                        input: Vec::new(),
                        out: Vec::new(),
                        sent: 0,
                        deadline: now + REQUEST_TIMEOUT,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors or the like: the next tick's
                    // accept retries (the listener says nothing again).
                    warn!("action: aceptar_http | result: fail | error: {e}");
                    return;
                }
            }
        }
    }

    /// A readiness event for the connection of `token`: reads its request,
    /// answers it with what `render` makes of the route (content type and
    /// body), writes as far as the socket takes.
    pub fn ready(
        &mut self,
        token: Token,
        registry: &Registry,
        now: Instant,
        render: impl FnOnce(Route) -> (&'static str, Vec<u8>),
    ) {
        let key = token.0 - TOKENS;
        let Some(conn) = self.connections.get_mut(key) else {
            return;
        };
        if let Stage::Reading = conn.stage {
            match conn.read_head() {
                Ok(None) => return,
                Ok(Some(Ok(route))) => {
                    let (content_type, body) = render(route);
                    conn.respond(http::response(Status::Ok, content_type, &body), now);
                }
                Ok(Some(Err(status))) => {
                    debug!(
                        "action: pedido_http | result: fail | peer: {} | status: {}",
                        conn.peer,
                        status.code()
                    );
                    conn.respond(http::refusal(status), now);
                }
                Err(_) => return self.close(key, registry),
            }
        }
        match conn.write() {
            Ok(true) | Err(_) => self.close(key, registry),
            Ok(false) => {}
        }
    }

    /// At the loop's tick: a connection without a whole request in time is
    /// answered 408; one that has not taken its response in time is closed.
    pub fn expire(&mut self, registry: &Registry, now: Instant) {
        let due: Vec<usize> = self
            .connections
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(key, _)| key)
            .collect();
        for key in due {
            let conn = &mut self.connections[key];
            match conn.stage {
                Stage::Reading => {
                    conn.respond(http::refusal(Status::RequestTimeout), now);
                    if !matches!(conn.write(), Ok(false)) {
                        self.close(key, registry);
                    }
                }
                Stage::Writing => self.close(key, registry),
            }
        }
    }

    /// Stops listening and closes every connection (shutdown).
    pub fn close_all(&mut self, registry: &Registry) {
        let _ = registry.deregister(&mut self.listener);
        for key in self.connections.iter().map(|(k, _)| k).collect::<Vec<_>>() {
            self.close(key, registry);
        }
    }

    fn close(&mut self, key: usize, registry: &Registry) {
        let mut conn = self.connections.remove(key);
        let _ = registry.deregister(&mut conn.socket);
        let _ = conn.socket.shutdown(Shutdown::Both);
    }
}

impl HttpConnection {
    /// Reads until the head is whole, refused, or the socket is drained:
    /// `Ok(None)` to wait for more; `Err` when the peer is gone.
    fn read_head(&mut self) -> io::Result<Option<Result<Route, Status>>> {
        let mut chunk = [0u8; 2048];
        loop {
            // One byte past the bound is enough to tell it was passed.
            let room = (MAX_HEAD + 1 - self.input.len()).min(chunk.len());
            match self.socket.read(&mut chunk[..room]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    self.input.extend_from_slice(&chunk[..n]);
                    match http::parse(&self.input) {
                        Ok(None) => continue,
                        Ok(Some(route)) => return Ok(Some(Ok(route))),
                        Err(status) => return Ok(Some(Err(status))),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn respond(&mut self, response: Vec<u8>, now: Instant) {
        self.input = Vec::new();
        self.out = response;
        self.sent = 0;
        self.stage = Stage::Writing;
        self.deadline = now + RESPONSE_TIMEOUT;
    }

    /// Writes what the socket takes: `Ok(true)` once all is sent.
    fn write(&mut self) -> io::Result<bool> {
        while self.sent < self.out.len() {
            match self.socket.write(&self.out[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}
