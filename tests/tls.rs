//! The central over mutual TLS (`TLS_CERT`, `TLS_KEY`, `TLS_CLIENT_CA`), on
//! real sockets with the real binary, driven by a blocking rustls agency
//! (`rustls::StreamOwned`) whose certificates come from `certs::Authority`:
//! a good agency stores, closes and gets its winners; every peer without a
//! good agency certificate is refused at the handshake, logged, and none of
//! its frames is processed; the certificate binds the connection; plain TCP
//! and a handshake that never completes are closed without harm.

mod util;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lottery::net::certs::{Authority, Issued, Leaf};
use lottery::net::tls::{self, Pem};
use lottery::wire::{ErrorCode, kind};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use util::{Central, Peer, RawFrame, batch_frame, done_frame, get_winners_frame, numbered_bet};

/// A CA and a central with the TLS files written into its directory.
struct Pki {
    ca: Authority,
}

impl Pki {
    /// Writes `ca.pem`, `server.pem` and `server.key` (for `127.0.0.1`) into `dir`.
    fn write(dir: &Path) -> Pki {
        let ca = Authority::new("lottery test CA").unwrap();
        let central = ca.central(&["127.0.0.1".to_string()]).unwrap();
        std::fs::write(dir.join("ca.pem"), ca.cert_pem()).unwrap();
        std::fs::write(dir.join("server.pem"), &central.cert_pem).unwrap();
        std::fs::write(dir.join("server.key"), &central.key_pem).unwrap();
        Pki { ca }
    }

    fn ca_pem(&self) -> Pem {
        Pem::from_bytes("ca.pem", self.ca.cert_pem())
    }

    /// What a well-configured agency `agency` uses.
    fn agency(&self, agency: u32) -> Arc<ClientConfig> {
        let issued = self.ca.agency(agency).unwrap();
        self.presenting(&issued, agency)
    }

    /// An agency presenting `issued` as agency `agency` (it may be a
    /// certificate the central must refuse).
    fn presenting(&self, issued: &Issued, agency: u32) -> Arc<ClientConfig> {
        tls::client_config(
            &self.ca_pem(),
            &Pem::from_bytes("agency.pem", issued.cert_pem.clone()),
            &Pem::from_bytes("agency.key", issued.key_pem.clone()),
            agency,
        )
        .unwrap()
    }

    /// An agency that trusts the central but has no certificate of its own.
    fn anonymous(&self) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca.cert_pem().as_bytes()).unwrap())
            .unwrap();
        Arc::new(
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    }
}

/// Starts the central in `dir` over mutual TLS, with `env` besides.
fn start_tls(dir: &Path, agencies: u32, env: &[(&str, &str)]) -> Central {
    let mut all = vec![
        ("TLS_CERT", "server.pem"),
        ("TLS_KEY", "server.key"),
        ("TLS_CLIENT_CA", "ca.pem"),
    ];
    all.extend_from_slice(env);
    let central = Central::start(dir, agencies, &all);
    assert!(
        central.logs().contains(&format!(
            "action: escuchar | result: success | address: {} | tls: mutual",
            central.addr()
        )),
        "{}",
        central.logs()
    );
    central
}

/// A blocking agency over TLS.
struct TlsPeer {
    stream: StreamOwned<ClientConnection, TcpStream>,
    /// Its local address, as the central's log names the peer.
    local: String,
}

impl TlsPeer {
    fn connect(central: &Central, config: Arc<ClientConfig>) -> TlsPeer {
        let socket = TcpStream::connect(central.addr()).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        socket.set_nodelay(true).unwrap();
        let local = socket.local_addr().unwrap().to_string();
        let name = tls::server_name(&central.addr()).unwrap();
        let conn = ClientConnection::new(config, name).unwrap();
        TlsPeer {
            stream: StreamOwned::new(conn, socket),
            local,
        }
    }

    /// Writes a frame (the handshake runs first if it has not yet).
    fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    fn recv(&mut self) -> io::Result<RawFrame> {
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len)?;
        let mut rest = vec![0u8; u16::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut rest)?;
        Ok(RawFrame {
            kind: rest[0],
            body: rest[1..].to_vec(),
        })
    }
}

/// Waits (at most 10 s) for a line of the central's log that contains every one of `parts`.
fn wait_for_line(central: &Central, parts: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let logs = central.logs();
        if let Some(line) = logs.lines().find(|l| parts.iter().all(|p| l.contains(p))) {
            return line.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "no line with {parts:?} in the central's log:\n{logs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A good agency stores one bet on a fresh central of `agencies`, as a check
/// that the central still serves.
fn a_good_agency_is_served(central: &Central, pki: &Pki, agency: u32) {
    let mut peer = TlsPeer::connect(central, pki.agency(agency));
    peer.send(&batch_frame(agency, 0, &[numbered_bet(1, 1)]))
        .unwrap();
    assert_eq!(peer.recv().unwrap().ack(), Some((agency, 1)));
}

#[test]
fn a_good_agency_stores_a_batch_closes_and_gets_its_winners_over_tls() {
    let dir = util::temp_dir("tls-good");
    let pki = Pki::write(&dir);
    let central = start_tls(&dir, 1, &[]);
    assert!(
        central
            .logs()
            .contains("| tls: mutual | tls_cert: server.pem")
    );

    let mut peer = TlsPeer::connect(&central, pki.agency(1));
    let bets = [
        numbered_bet(1, 7574),
        numbered_bet(2, 1),
        numbered_bet(3, 7574),
    ];
    // Pipelined behind the handshake: the first frames travel with the agency's Finished.
    peer.send(&batch_frame(1, 0, &bets)).unwrap();
    peer.send(&done_frame(1, 3)).unwrap();
    peer.send(&get_winners_frame(1, true)).unwrap();
    assert_eq!(peer.recv().unwrap().ack(), Some((1, 3)));
    assert_eq!(peer.recv().unwrap().ack(), Some((1, 3)));
    let winners = peer.recv().unwrap();
    assert_eq!(winners.kind, kind::WINNERS, "{winners:?}");
    // agency 1, total 2, last, count 2, then the documents.
    assert_eq!(winners.u32_at(0), 1);
    assert_eq!(winners.u32_at(4), 2);
    assert_eq!(winners.body[8], 1);
    let documents: Vec<String> = ["10000001", "10000003"].map(String::from).to_vec();
    let mut at = 11;
    for document in &documents {
        let n = winners.body[at] as usize;
        assert_eq!(&winners.body[at + 1..at + 1 + n], document.as_bytes());
        at += 1 + n;
    }
    assert_eq!(central.bets_csv().lines().count(), 3);
    assert!(central.logs().contains("action: sorteo | result: success"));
    assert!(
        central.logs().contains(
            "action: ganadores_enviados | result: success | agencia: 1 | cant_ganadores: 2"
        )
    );
}

/// Connects with `config`, sends a DONE for `agency` (closing it would be
/// the proof that a frame was processed), and expects the connection to
/// fail; returns the central's log line about it.
fn refused_at_the_handshake(central: &Central, config: Arc<ClientConfig>, agency: u32) -> String {
    let mut peer = TlsPeer::connect(central, config);
    // In TLS 1.3 the agency's side of the handshake may complete before the
    // central judges its certificate: the write can succeed, the read cannot.
    let _ = peer.send(&done_frame(agency, 0));
    match peer.recv() {
        Err(e) => assert!(
            e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::TimedOut,
            "the central neither answered nor closed: {e}"
        ),
        Ok(frame) => panic!("a refused agency got a frame: {frame:?}"),
    }
    wait_for_line(
        central,
        &[
            "action: tls_handshake | result: fail",
            &format!("peer: {} |", peer.local),
        ],
    )
}

#[test]
fn peers_without_a_good_agency_certificate_are_refused_at_the_handshake_and_logged() {
    let dir = util::temp_dir("tls-refused");
    let pki = Pki::write(&dir);
    let central = start_tls(&dir, 5, &[]);

    let line = refused_at_the_handshake(&central, pki.anonymous(), 1);
    assert!(line.contains("error: "), "{line}");
    assert!(line.to_lowercase().contains("certificate"), "{line}");

    let stranger = Authority::new("another CA").unwrap().agency(2).unwrap();
    let line = refused_at_the_handshake(&central, pki.presenting(&stranger, 2), 2);
    assert!(line.contains("UnknownIssuer"), "{line}");

    let expired = pki.ca.issue(&Leaf::agency(3).expired()).unwrap();
    let line = refused_at_the_handshake(&central, pki.presenting(&expired, 3), 3);
    assert!(line.contains("expired"), "{line}");

    let agency9 = pki.ca.agency(9).unwrap();
    let line = refused_at_the_handshake(&central, pki.presenting(&agency9, 9), 9);
    assert!(
        line.contains(
            "error: invalid peer certificate: common name agency-9 is not one of this lottery's agencies 1..=5"
        ),
        "{line}"
    );

    // None of their DONEs was processed.
    let logs = central.logs();
    assert!(!logs.contains("agencia_cerrada"), "{logs}");
    let journal = std::fs::read_to_string(dir.join("bets.csv.journal")).unwrap_or_default();
    assert_eq!(journal, "");
    a_good_agency_is_served(&central, &pki, 4);
}

#[test]
fn an_agency_certificate_acts_only_for_its_agency() {
    // Passes with the minimal check of requests.rs, and with the binding
    // branch's rule that replaces it.
    let dir = util::temp_dir("tls-forbidden");
    let pki = Pki::write(&dir);
    let central = start_tls(&dir, 5, &[]);
    let mut peer = TlsPeer::connect(&central, pki.agency(1));
    peer.send(&batch_frame(2, 0, &[numbered_bet(1, 7574)]))
        .unwrap();
    let reply = peer.recv().unwrap();
    assert_eq!(
        reply.error(),
        Some((ErrorCode::Forbidden as u8, 2)),
        "{reply:?}"
    );
    // Then closed: the next read ends (close_notify, or the TCP close).
    assert!(peer.recv().is_err());
    assert_eq!(util::rows_of_agency(&dir.join("bets.csv"), 2), 0);
    a_good_agency_is_served(&central, &pki, 1);
}

#[test]
fn a_plain_tcp_client_is_refused_and_the_central_serves_on() {
    let dir = util::temp_dir("tls-plain");
    let pki = Pki::write(&dir);
    let mut central = start_tls(&dir, 1, &[]);
    let mut plain = Peer::connect(&central.addr());
    let local = plain.stream.local_addr().unwrap().to_string();
    plain.send(&done_frame(1, 0));
    // Whatever comes back is a TLS alert record (type 0x15), never a frame,
    // and then the connection is closed.
    let mut got = Vec::new();
    let _ = plain.stream.read_to_end(&mut got);
    assert!(got.is_empty() || got[0] == 0x15, "{got:?}");
    assert!(plain.closed_by_peer());
    wait_for_line(
        &central,
        &[
            "action: tls_handshake | result: fail",
            &format!("peer: {local} |"),
        ],
    );
    assert!(central.is_running());
    assert!(!central.logs().contains("agencia_cerrada"));
    a_good_agency_is_served(&central, &pki, 1);
}

#[test]
fn a_handshake_that_never_completes_is_closed_at_its_deadline() {
    let dir = util::temp_dir("tls-slow");
    let pki = Pki::write(&dir);
    let central = start_tls(&dir, 1, &[("TLS_HANDSHAKE_TIMEOUT_MS", "300")]);
    let mut silent = Peer::connect(&central.addr());
    let local = silent.stream.local_addr().unwrap().to_string();
    // Half a ClientHello record header, then nothing.
    silent.send(&[0x16, 0x03]);
    silent.set_timeout(Duration::from_secs(30));
    let mut b = [0u8; 1];
    match silent.stream.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::TimedOut => {}
        other => panic!("the unfinished handshake was not closed: {other:?}"),
    }
    let line = wait_for_line(
        &central,
        &[
            "action: tls_handshake | result: fail",
            &format!("peer: {local} |"),
        ],
    );
    assert!(
        line.contains("error: not completed within 300 ms"),
        "{line}"
    );
    a_good_agency_is_served(&central, &pki, 1);
}

#[test]
fn tls_files_are_all_three_or_none_and_must_be_usable() {
    let dir = util::temp_dir("tls-config");
    Pki::write(&dir);
    let run = |env: &[(&str, &str)]| {
        let out = std::process::Command::new(util::server_bin())
            .current_dir(&dir)
            .env_clear()
            .env("SERVER_IP", "127.0.0.1")
            .env("SERVER_PORT", util::free_port().to_string())
            .env("BETS_FILE", dir.join("bets.csv"))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = run(&[("TLS_CERT", "server.pem"), ("TLS_KEY", "server.key")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("TLS_CLIENT_CA missing"), "{err}");

    // The central's key as its CA: a usable set of names, an unusable file.
    let (code, err) = run(&[
        ("TLS_CERT", "server.pem"),
        ("TLS_KEY", "server.key"),
        ("TLS_CLIENT_CA", "server.key"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("cannot serve TLS: server.key"), "{err}");
    assert!(
        !dir.join("bets.csv").exists(),
        "the files were opened before TLS was checked"
    );

    let (code, err) = run(&[
        ("TLS_CERT", "missing.pem"),
        ("TLS_KEY", "server.key"),
        ("TLS_CLIENT_CA", "ca.pem"),
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("missing.pem: cannot read"), "{err}");
}

#[test]
fn a_plain_central_says_so() {
    let dir = util::temp_dir("tls-off");
    let central = Central::start(&dir, 1, &[]);
    assert!(central.logs().contains(&format!(
        "action: escuchar | result: success | address: {} | tls: off",
        central.addr()
    )));
    let mut peer = central.connect();
    peer.send(&batch_frame(1, 0, &[numbered_bet(1, 1)]));
    assert_eq!(peer.recv().ack(), Some((1, 1)));
}

/// The `action: seguridad` lines of a central started on `ip` with `env`,
/// read once it has shut down (so every line of its start is in).
fn security_warnings(name: &str, ip: &str, tls: bool) -> Vec<String> {
    let dir = util::temp_dir(name);
    let mut env = vec![("SERVER_IP", ip)];
    if tls {
        Pki::write(&dir);
        env.extend([
            ("TLS_CERT", "server.pem"),
            ("TLS_KEY", "server.key"),
            ("TLS_CLIENT_CA", "ca.pem"),
        ]);
    }
    let mut central = Central::start(&dir, 1, &env);
    let status = central.signal_and_wait("TERM", Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", central.logs());
    central
        .logs()
        .lines()
        .filter(|l| l.contains("action: seguridad"))
        .map(str::to_string)
        .collect()
}

#[test]
fn plain_tcp_on_a_non_loopback_address_is_warned_once_and_not_on_loopback_nor_over_tls() {
    let warned = security_warnings("plain-any", "0.0.0.0", false);
    assert_eq!(warned.len(), 1, "{warned:?}");
    let line = &warned[0];
    assert!(line.contains(" WARN "), "{line}");
    // Within the log contract: `action: A | result: R | key: value`, and
    // not a failure: the central serves as configured.
    let message = &line[line.find("action: ").unwrap()..];
    let parts: Vec<&str> = message.split(" | ").collect();
    assert_eq!(parts.len(), 3, "{message}");
    assert_eq!(parts[1], "result: in_progress", "{message}");
    assert!(!parts[2].contains('|'), "{message}");
    assert!(
        parts[2].starts_with("detail: plain TCP on 0.0.0.0:") && parts[2].contains("TLS_CERT"),
        "{message}"
    );

    assert_eq!(
        security_warnings("plain-loopback", "127.0.0.1", false),
        Vec::<String>::new()
    );
    assert_eq!(
        security_warnings("tls-any", "0.0.0.0", true),
        Vec::<String>::new()
    );
}

#[test]
fn a_flood_of_pipelined_batches_over_tls_is_read_to_the_end_and_acknowledged() {
    // Far more than the connection's input buffer and rustls' plaintext
    // buffer hold: the central must keep reading what rustls decrypted
    // (no new readable event comes for it) and answer every batch.
    let dir = util::temp_dir("tls-flood");
    let pki = Pki::write(&dir);
    let central = start_tls(&dir, 1, &[]);
    let mut peer = TlsPeer::connect(&central, pki.agency(1));
    let (batches, per_batch) = (100u32, 80u32);
    let mut all = Vec::new();
    for b in 0..batches {
        let bets: Vec<_> = (0..per_batch)
            .map(|i| numbered_bet((b * per_batch + i) as u64, 1))
            .collect();
        all.extend(batch_frame(1, b * per_batch, &bets));
    }
    assert!(all.len() > 200_000, "{}", all.len());
    peer.send(&all).unwrap();
    for b in 1..=batches {
        let ack = peer.recv().unwrap();
        assert_eq!(ack.ack(), Some((1, b * per_batch)), "{ack:?}");
    }
    assert_eq!(
        util::rows_of_agency(&dir.join("bets.csv"), 1),
        (batches * per_batch) as u64
    );
}
