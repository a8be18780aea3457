//! The driver's TLS transport against an in-process TLS central: rustls on
//! blocking sockets, one thread per agency, speaking just enough of the
//! protocol to take every batch, close every agency and answer the winners
//! once all are closed. It checks what the real central checks of a TLS
//! agency: the handshake with the agency's own certificate, and that every
//! frame names the agency of that certificate.
//!
//! The real central over TLS is `bench/tests/smoke.rs`; this test needs no
//! central binary, so it covers the driver whether or not the central of
//! this build serves TLS.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

use lottery_bench::driver::{self, DriverOptions};
use lottery_bench::mtls::TlsSetup;
use lottery_bench::synth::{DEFAULT_WINNING_NUMBER, Synth, WinnerPlan};
use lottery_bench::workload::Workload;
use lottery_proto::tls::{self, Pem};
use lottery_proto::wire::{self, Frame};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// What every connection of the fake central shares.
struct Shared {
    agencies: u32,
    /// Agencies closed by DONE, and the wake-up of parked GET_WINNERS.
    closed: Mutex<u32>,
    all_closed: Condvar,
    /// The agency each connection's certificate named, in accept order.
    bound: Mutex<Vec<u32>>,
}

/// Serves one agency's connection until it closes; any breach of the
/// protocol by the driver is an `Err`.
fn serve(stream: TcpStream, config: Arc<ServerConfig>, shared: &Shared) -> Result<(), String> {
    let conn = ServerConnection::new(config).map_err(|e| e.to_string())?;
    let mut tls = StreamOwned::new(conn, stream);
    let mut input = Vec::new();
    let mut chunk = [0u8; 1 << 14];
    let mut bound = None;
    let mut stored = 0u32;
    let mut winners: Vec<String> = Vec::new();
    loop {
        let n = match tls.read(&mut chunk) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            // The driver drops its connections without close_notify.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("reading: {e}")),
        };
        let agency = match bound {
            Some(a) => a,
            None => {
                let a = tls::agency_of(tls.conn.peer_certificates(), shared.agencies)
                    .map_err(|e| e.to_string())?;
                shared.bound.lock().unwrap().push(a);
                bound = Some(a);
                a
            }
        };
        input.extend_from_slice(&chunk[..n]);
        let mut out = Vec::new();
        let mut at = 0;
        while let Some((frame, used)) = wire::decode(&input[at..]).map_err(|e| e.to_string())? {
            at += used;
            match frame {
                Frame::Batch {
                    agency: a,
                    first,
                    bets,
                } => {
                    if a != agency || first != stored {
                        return Err(format!(
                            "BATCH agency {a} first {first} on agency {agency}'s connection, {stored} stored"
                        ));
                    }
                    for bet in bets {
                        if bet.number == DEFAULT_WINNING_NUMBER {
                            winners.push(String::from_utf8(bet.document.to_vec()).unwrap());
                        }
                    }
                    stored += bets.len() as u32;
                    wire::encode_ack(&mut out, agency, stored);
                }
                Frame::Done { agency: a, total } => {
                    if a != agency || total != stored {
                        return Err(format!("DONE agency {a} total {total}, {stored} stored"));
                    }
                    *shared.closed.lock().unwrap() += 1;
                    shared.all_closed.notify_all();
                    wire::encode_ack(&mut out, agency, stored);
                }
                Frame::GetWinners { agency: a, wait } => {
                    if a != agency || !wait {
                        return Err(format!("GET_WINNERS agency {a} wait {wait}"));
                    }
                    // Parked: what is owed goes first, then wait for the draw.
                    tls.write_all(&out).map_err(|e| e.to_string())?;
                    out.clear();
                    let mut closed = shared.closed.lock().unwrap();
                    while *closed < shared.agencies {
                        closed = shared.all_closed.wait(closed).unwrap();
                    }
                    let total = winners.len() as u32;
                    wire::encode_winners(&mut out, agency, total, true, &winners);
                }
                other => return Err(format!("unexpected {other:?}")),
            }
        }
        input.drain(..at);
        tls.write_all(&out).map_err(|e| e.to_string())?;
        tls.flush().map_err(|e| e.to_string())?;
    }
}

/// A fake TLS central for `agencies` agencies; its connection threads report
/// into the returned channel.
fn fake_central(
    setup: &TlsSetup,
    agencies: u32,
) -> (
    SocketAddr,
    Arc<Shared>,
    std::sync::mpsc::Receiver<Result<(), String>>,
) {
    let config = tls::server_config(
        &Pem::from_bytes("server.pem", setup.central.cert_pem.clone()),
        &Pem::from_bytes("server.key", setup.central.key_pem.clone()),
        &Pem::from_bytes("ca.pem", setup.central.client_ca_pem.clone()),
        agencies,
    )
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let shared = Arc::new(Shared {
        agencies,
        closed: Mutex::new(0),
        all_closed: Condvar::new(),
        bound: Mutex::new(Vec::new()),
    });
    let (report, results) = std::sync::mpsc::channel();
    let for_accept = shared.clone();
    thread::spawn(move || {
        for _ in 0..agencies {
            let (stream, _) = listener.accept().unwrap();
            let (config, shared, report) = (config.clone(), for_accept.clone(), report.clone());
            thread::spawn(move || {
                let _ = report.send(serve(stream, config, &shared));
            });
        }
    });
    (addr, shared, results)
}

fn options(addr: SocketAddr, setup: &TlsSetup, window: usize) -> DriverOptions {
    DriverOptions {
        addr,
        window,
        settle: Duration::from_millis(50),
        max_connecting: 3,
        timeout: Duration::from_secs(60),
        connect_timeout: Duration::from_secs(30),
        tls: Some(setup.agencies.clone()),
    }
}

#[test]
fn every_agency_handshakes_with_its_own_certificate_and_gets_its_winners_over_tls() {
    let agencies = 5;
    let setup = TlsSetup::new(agencies).unwrap();
    let (addr, shared, results) = fake_central(&setup, agencies);
    // 20,000 bets and 64 batches in flight: half a megabyte per agency
    // outruns the socket buffers, so writes block halfway through records.
    let synth = Synth::new(4, 20_000, WinnerPlan::Fixed(3));
    let workload = Workload::synthetic(&synth, agencies, usize::MAX);
    let outcome = driver::run(&options(addr, &setup, 64), &workload, None, |_| {}).unwrap();

    assert_eq!(outcome.winners, 15);
    assert_eq!(outcome.handshakes.len(), agencies as usize);
    assert!(outcome.handshakes.iter().all(|d| !d.is_zero()));
    assert!(outcome.handshakes.iter().all(|d| *d <= outcome.connect));
    let acked: u64 = outcome.acks.iter().map(|a| u64::from(a.bets)).sum();
    assert_eq!(acked, 100_000);
    let mut bound = shared.bound.lock().unwrap().clone();
    bound.sort_unstable();
    assert_eq!(bound, (1..=agencies).collect::<Vec<_>>());
    drop(outcome);
    for _ in 0..agencies {
        let served = results.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(served, Ok(()));
    }
}

#[test]
fn a_central_that_never_answers_the_client_hello_fails_the_connect_phase_in_time() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and holds the connections, as a plain central holds a
    // ClientHello that it reads as the start of a large frame.
    let held = thread::spawn(move || {
        let mut streams = Vec::new();
        for _ in 0..2 {
            streams.push(listener.accept().unwrap().0);
        }
        thread::sleep(Duration::from_secs(3));
        drop(streams);
    });
    let setup = TlsSetup::new(2).unwrap();
    let synth = Synth::new(4, 10, WinnerPlan::Fixed(0));
    let workload = Workload::synthetic(&synth, 2, usize::MAX);
    let mut opts = options(addr, &setup, 1);
    opts.connect_timeout = Duration::from_secs(1);
    let err = driver::run(&opts, &workload, None, |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("finished their TLS handshake in time") && err.contains("serve TLS"),
        "{err}"
    );
    held.join().unwrap();
}
