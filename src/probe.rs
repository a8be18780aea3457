//! `lottery-server --probe`: whether the central is up, for a compose
//! `healthcheck:` in an image with no shell (exit 0 healthy, 1 not).
//!
//! With `METRICS_PORT` set it asks `GET /status` there and wants a 200: the
//! loop answered, so it is not stalled, and the agencies' log stays as it
//! was (an observation request logs nothing above DEBUG). Without it, a TCP
//! connect to `SERVER_PORT`, closed at once: a plain central logs that only
//! at DEBUG, but a TLS one logs a failed handshake (`tls_handshake | result:
//! fail`), at most 20 lines a second; set `METRICS_PORT` there.
//!
//! The address is `SERVER_IP`, or loopback when it is a wildcard (the probe
//! runs beside the central, in its container).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::Config;

/// How long the probe waits for each step.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What the probe found: `Ok` healthy, `Err` why not.
pub fn run(config: &Config) -> Result<String, String> {
    match config.metrics_port {
        Some(port) => {
            let address = address(&config.ip, port)?;
            status(address)
        }
        None => {
            let address = address(&config.ip, config.port)?;
            TcpStream::connect_timeout(&address, PROBE_TIMEOUT)
                .map(|_| format!("{address} accepts connections"))
                .map_err(|e| format!("cannot connect to {address}: {e}"))
        }
    }
}

fn address(ip: &str, port: u16) -> Result<SocketAddr, String> {
    let mut address = (ip, port)
        .to_socket_addrs()
        .map_err(|e| format!("{ip}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{ip}:{port} has no address"))?;
    if address.ip().is_unspecified() {
        address.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    Ok(address)
}

/// `GET /status` at `address`: healthy when answered 200.
fn status(address: SocketAddr) -> Result<String, String> {
    let fail = |e: std::io::Error| format!("{address}: {e}");
    let mut socket = TcpStream::connect_timeout(&address, PROBE_TIMEOUT).map_err(fail)?;
    socket.set_read_timeout(Some(PROBE_TIMEOUT)).map_err(fail)?;
    socket
        .set_write_timeout(Some(PROBE_TIMEOUT))
        .map_err(fail)?;
    socket
        .write_all(b"GET /status HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        .map_err(fail)?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match socket.read(&mut head[got..]).map_err(fail)? {
            0 => break,
            n => got += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..got]);
    if line.starts_with("HTTP/1.1 200") {
        Ok(format!("{address} answered /status"))
    } else {
        Err(format!(
            "{address} answered {:?}",
            line.lines().next().unwrap_or("")
        ))
    }
}
