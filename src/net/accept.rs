//! The listening socket: binding it (and why that can fail), taking
//! connections off its queue up to the connection cap, and refusing them
//! when descriptors run out.
//!
//! Invariants: the listener is edge-triggered, so every accept runs until
//! `WouldBlock`; when the process is out of descriptors, a spare one held
//! in reserve is spent to take a queued connection and close it (a refusal
//! instead of a hang), and when even that fails accepting is *stalled* and
//! retried at the loop's next tick, since the listener will not report the
//! queued connections again.

use std::fs::File;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Instant;

use log::{debug, error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use crate::support::log_budget::LogBudget;

/// Where and how to listen (`SERVER_IP`, `SERVER_PORT`,
/// `SERVER_LISTEN_BACKLOG`, `MAX_CONNECTIONS`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    /// An address or a host name.
    pub ip: String,
    pub port: u16,
    pub backlog: i32,
    pub max_connections: usize,
}

/// The listening socket could not be had.
#[derive(Debug)]
pub struct ListenError {
    pub address: String,
    pub error: io::Error,
}

impl std::fmt::Display for ListenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot listen on {}: {}", self.address, self.error)
    }
}

impl std::error::Error for ListenError {}

/// The kernel send buffer of every agency's socket.
const SEND_BUFFER: usize = 64 * 1024;

pub struct Acceptor {
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    max_connections: usize,
    /// A descriptor held in reserve, so that connections can still be
    /// taken off the listen queue and refused when descriptors run out.
    spare_descriptor: Option<File>,
    /// Accepting failed for want of resources: try again at the next tick.
    stalled: bool,
    /// Lines about refused connections, one per connection: budgeted.
    refusals_log: LogBudget,
    /// Connections refused since start (cap or descriptors), for `/metrics`.
    refused: u64,
}

impl Acceptor {
    /// Binds the listening socket with the configured backlog and registers it.
    pub fn bind(
        config: &Listen,
        registry: &Registry,
        token: Token,
    ) -> Result<Acceptor, ListenError> {
        let mut listener = listen(config)?;
        let fail = |error| ListenError {
            address: format!("{}:{}", config.ip, config.port),
            error,
        };
        let local_addr = listener.local_addr().map_err(fail)?;
        registry
            .register(&mut listener, token, Interest::READABLE)
            .map_err(fail)?;
        Ok(Acceptor {
            listener: Some(listener),
            local_addr,
            max_connections: config.max_connections,
            spare_descriptor: File::open("/dev/null").ok(),
            stalled: false,
            refusals_log: LogBudget::default(),
            refused: 0,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections refused at accept since start: the cap, or descriptors.
    pub fn refused(&self) -> u64 {
        self.refused
    }

    /// Takes every queued connection: `admit` registers and keeps it, or
    /// says why it could not. `open` is how many connections are open.
    pub fn accept(
        &mut self,
        mut open: usize,
        now: Instant,
        mut admit: impl FnMut(TcpStream, SocketAddr) -> io::Result<()>,
    ) {
        let Some(listener) = &self.listener else {
            return;
        };
        loop {
            match listener.accept() {
                Ok((socket, peer)) => {
                    if open >= self.max_connections {
                        self.refused += 1;
                        if !self.refusals_log.allow(now) {
                            continue;
                        }
                        warn!(
                            "action: aceptar_conexion | result: fail | peer: {peer} | error: connection cap of {} reached",
                            self.max_connections
                        );
                        continue;
                    }
                    let _ = socket.set_nodelay(true);
                    // Replies are small: a fixed send buffer keeps a peer
                    // that never reads from holding megabytes of them.
                    let _ = socket2::SockRef::from(&socket).set_send_buffer_size(SEND_BUFFER);
                    match admit(socket, peer) {
                        Ok(()) => {
                            debug!("action: aceptar_conexion | result: success | peer: {peer}");
                            open += 1;
                        }
                        Err(e) => warn!(
                            "action: aceptar_conexion | result: fail | peer: {peer} | error: {e}"
                        ),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_out_of_descriptors(&e) => {
                    // Spend the spare descriptor to take one and close it, so
                    // the queue drains with a refusal each instead of hanging.
                    let Some(spare) = self.spare_descriptor.take() else {
                        error!("action: aceptar_conexion | result: fail | error: {e}");
                        self.stalled = true;
                        return;
                    };
                    drop(spare);
                    let refused = listener.accept().map(|(socket, peer)| {
                        drop(socket);
                        peer
                    });
                    // Only now that the refused socket is closed is there a
                    // descriptor to hold in reserve again.
                    self.spare_descriptor = File::open("/dev/null").ok();
                    match refused {
                        Ok(peer) => {
                            self.refused += 1;
                            if self.refusals_log.allow(now) {
                                warn!(
                                    "action: aceptar_conexion | result: fail | peer: {peer} | error: out of file descriptors ({e})"
                                );
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(e) => {
                            error!("action: aceptar_conexion | result: fail | error: {e}");
                            self.stalled = true;
                            return;
                        }
                    }
                }
                Err(e) => {
                    error!("action: aceptar_conexion | result: fail | error: {e}");
                    self.stalled = true;
                    return;
                }
            }
        }
    }

    /// At the loop's tick: a summary of the refusals not logged, once
    /// their window has ended.
    pub fn log_suppressed(&mut self, now: Instant) {
        if let Some(n) = self.refusals_log.take_suppressed(now) {
            warn!(
                "action: aceptar_conexion | result: fail | lineas_suprimidas: {n} | error: connections refused (connection cap or file descriptors)"
            );
        }
    }

    /// At the loop's tick: whether accepting stalled since the last one (it
    /// is then to be retried), with a spare descriptor taken again first.
    pub fn take_stalled(&mut self) -> bool {
        if !std::mem::take(&mut self.stalled) {
            return false;
        }
        if self.spare_descriptor.is_none() {
            self.spare_descriptor = File::open("/dev/null").ok();
        }
        true
    }

    /// Stops listening (shutdown), logging it.
    pub fn close(&mut self, registry: &Registry) {
        if let Some(mut listener) = self.listener.take() {
            let _ = registry.deregister(&mut listener);
            drop(listener);
            info!(
                "action: cerrar_listener | result: success | address: {}",
                self.local_addr
            );
        }
    }
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// The first address `ip` and `port` name (an IP, or a host name).
pub fn resolve(ip: &str, port: u16) -> Result<SocketAddr, ListenError> {
    let fail = |error: io::Error| ListenError {
        address: format!("{ip}:{port}"),
        error,
    };
    (ip, port)
        .to_socket_addrs()
        .map_err(fail)?
        .next()
        .ok_or_else(|| {
            fail(io::Error::new(
                io::ErrorKind::NotFound,
                "the name has no address",
            ))
        })
}

/// Binds the listening socket with the configured backlog.
fn listen(config: &Listen) -> Result<TcpListener, ListenError> {
    let address = format!("{}:{}", config.ip, config.port);
    let fail = |error: io::Error| ListenError {
        address: address.clone(),
        error,
    };
    let addr = resolve(&config.ip, config.port)?;
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )
    .map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(config.backlog).map_err(fail)?;
    socket.set_nonblocking(true).map_err(fail)?;
    Ok(TcpListener::from_std(socket.into()))
}
