//! The agency binary (`lottery-client`) against a fake central: a thread in
//! this test that speaks `docs/protocol.md` over a real socket, records what it
//! was sent, and can be told to misbehave (close after every reply, lose
//! bets, refuse to store, shut down, park forever, come up late). It can
//! also serve mutual TLS (rustls, certificates from `lottery::net::certs`), and
//! then records the agency each connection's certificate names. Several fake
//! centrals can share one store ([`FakeCentral::sharing`]), as centrals over
//! one database do, for the agency that moves between addresses.
//!
//! Run with `cargo build --release --workspace && cargo test --release
//! --workspace --test agency` (the agency is another package's binary).

mod util;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use lottery::bets::bet::{self, format_date};
use lottery::net::certs::{Authority, Issued, Leaf};
use lottery::net::tls::{self, Pem};
use lottery::wire::{self, ErrorCode, Frame};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

const AGENCY: u32 = 3;
const WINNING_NUMBER: u16 = 7574;

// ---------------------------------------------------------------------------
// The fake central.

/// How the fake central behaves.
#[derive(Clone, Debug, Default)]
struct Script {
    /// Answer one request per connection, then close it.
    one_request_per_connection: bool,
    /// Answer this many GET_WINNERS with NOT_READY before the WINNERS.
    not_ready: usize,
    /// Never answer GET_WINNERS with wait=1.
    park_forever: bool,
    /// Documents per WINNERS frame (0: all in one).
    winners_per_frame: usize,
    /// The first time a BATCH arrives with at least `.0` bets stored, forget
    /// all but `.1` of them (as a central that lost its tail would).
    lose_on_batch: Option<(usize, usize)>,
    /// At the first DONE, forget all but this many bets.
    lose_on_done: Option<usize>,
    /// Answer the first this many BATCHes with ERROR STORAGE.
    storage_errors: usize,
    /// Answer the first request of the first this many connections with
    /// ERROR SHUTTING_DOWN and close.
    shutting_down: usize,
    /// Answer a BATCH holding this document with ERROR INVALID_BET.
    reject_document: Option<String>,
    /// Accept the first this many connections and never answer on them (a
    /// wedged central, or a half-open connection to a host that is gone).
    silent_connections: usize,
    /// Answer every request with ERROR FORBIDDEN and close.
    forbid: bool,
    /// Once the store holds this many bets, answer every request with
    /// ERROR SHUTTING_DOWN and close (a central going down for good).
    shutting_down_from: Option<usize>,
    /// Once the store holds this many bets, close the connection at the
    /// next request without answering it and stop listening (a central
    /// whose process died mid-ingest).
    vanish_at: Option<usize>,
    /// Serve mutual TLS with this configuration.
    tls: Option<Arc<ServerConfig>>,
}

/// What the fake central saw and holds.
#[derive(Debug, Default)]
struct Seen {
    /// The agency's stored stream, each bet as its CSV row.
    stored: Vec<String>,
    /// Every BATCH received: `(first, count, frame bytes)`.
    batches: Vec<(u32, u16, usize)>,
    dones: Vec<u32>,
    /// The `wait` flag of every GET_WINNERS, and when it came.
    get_winners: Vec<(bool, Instant)>,
    /// When each request (of any kind) came.
    arrivals: Vec<Instant>,
    /// When the last WINNERS list was sent.
    winners_sent: Option<Instant>,
    connections: usize,
    closed: bool,
    not_ready_sent: usize,
    storage_sent: usize,
    lost_on_batch: bool,
    lost_on_done: bool,
    /// Over TLS: the agency each connection's verified certificate named.
    tls_agencies: Vec<u32>,
    /// Over TLS: the handshakes that failed, with rustls' reason.
    tls_refused: Vec<String>,
}

struct FakeCentral {
    address: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeCentral {
    fn start(script: Script) -> FakeCentral {
        FakeCentral::start_on(0, script)
    }

    fn start_on(port: u16, script: Script) -> FakeCentral {
        FakeCentral::start_with(port, script, Arc::new(Mutex::new(Seen::default())))
    }

    /// Another central with `script`, on its own port, over this one's
    /// store: what one stores the other holds, and the counts of what
    /// they saw are shared too.
    fn sharing(&self, script: Script) -> FakeCentral {
        FakeCentral::start_with(0, script, Arc::clone(&self.seen))
    }

    fn start_with(port: u16, script: Script, seen: Arc<Mutex<Seen>>) -> FakeCentral {
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (seen, stop) = (Arc::clone(&seen), Arc::clone(&stop));
            thread::spawn(move || accept_loop(listener, script, seen, stop))
        };
        FakeCentral {
            address,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap()
    }

    fn address(&self) -> String {
        self.address.to_string()
    }
}

impl Drop for FakeCentral {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One connection at a time, as one agency uses them.
fn accept_loop(
    listener: TcpListener,
    script: Script,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                let number = {
                    let mut seen = seen.lock().unwrap();
                    seen.connections += 1;
                    seen.connections
                };
                stream.set_nonblocking(false).unwrap();
                stream
                    .set_read_timeout(Some(Duration::from_millis(20)))
                    .unwrap();
                let served = if number <= script.silent_connections {
                    swallow(stream, &stop);
                    Served::Closed
                } else if let Some(config) = &script.tls {
                    serve_tls(stream, config, number, &script, &seen, &stop)
                } else {
                    serve(stream, number, &script, &seen, &stop)
                };
                if let Served::Vanished = served {
                    // Dropping the listener: connections are refused from now on.
                    return;
                }
            }
            Err(_) => thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// Reads and drops whatever comes, answering nothing, until the agency
/// closes the connection.
fn swallow(mut stream: impl Read, stop: &AtomicBool) {
    let mut chunk = [0u8; 16 * 1024];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut chunk) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

/// Completes the TLS handshake (the central's side refuses a bad
/// certificate here, with an alert), records the agency the certificate
/// names, then serves as over plain TCP.
fn serve_tls(
    socket: TcpStream,
    config: &Arc<ServerConfig>,
    number: usize,
    script: &Script,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
) -> Served {
    let mut conn = ServerConnection::new(config.clone()).unwrap();
    let mut socket = socket;
    while conn.is_handshaking() && !stop.load(Ordering::Relaxed) {
        match conn.complete_io(&mut socket) {
            Ok((0, 0)) => return Served::Closed,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => {
                seen.lock().unwrap().tls_refused.push(e.to_string());
                return Served::Closed;
            }
        }
    }
    let agency = tls::agency_of(conn.peer_certificates(), 5).unwrap();
    seen.lock().unwrap().tls_agencies.push(agency);
    serve(StreamOwned::new(conn, socket), number, script, seen, stop)
}

/// How serving a connection ended.
enum Served {
    Closed,
    /// The central is gone: it stops listening.
    Vanished,
}

/// What to do after answering a request.
enum Then {
    KeepOpen,
    Close,
    /// Answer nothing (a parked request that is never woken).
    Park,
}

fn serve(
    mut stream: impl Read + Write,
    number: usize,
    script: &Script,
    seen: &Mutex<Seen>,
    stop: &AtomicBool,
) -> Served {
    let mut inbox = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let mut parked = false;
    let mut first_request = true;
    let holds_at_least =
        |n: Option<usize>| n.is_some_and(|n| seen.lock().unwrap().stored.len() >= n);
    while !stop.load(Ordering::Relaxed) {
        if !parked {
            match wire::decode(&inbox) {
                Ok(Some((frame, used))) => {
                    if holds_at_least(script.vanish_at) {
                        return Served::Vanished;
                    }
                    let mut out = Vec::new();
                    let then = if script.forbid {
                        wire::encode_error(&mut out, ErrorCode::Forbidden, AGENCY, "not yours");
                        Then::Close
                    } else if (first_request && number <= script.shutting_down)
                        || holds_at_least(script.shutting_down_from)
                    {
                        wire::encode_error(&mut out, ErrorCode::ShuttingDown, 0, "going down");
                        Then::Close
                    } else {
                        answer(frame, used, script, &mut seen.lock().unwrap(), &mut out)
                    };
                    first_request = false;
                    inbox.drain(..used);
                    if stream
                        .write_all(&out)
                        .and_then(|()| stream.flush())
                        .is_err()
                    {
                        return Served::Closed;
                    }
                    match then {
                        Then::KeepOpen => {}
                        Then::Close => {
                            // As a central closing after an error: closing
                            // with unread bytes would reset the connection,
                            // and the agency could lose the error unread.
                            swallow(&mut stream, stop);
                            return Served::Closed;
                        }
                        Then::Park => parked = true,
                    }
                    if script.one_request_per_connection && !parked {
                        return Served::Closed;
                    }
                    continue;
                }
                Ok(None) => {}
                Err(e) => panic!("the agency sent bytes that are not the protocol: {e}"),
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Served::Closed,
            Ok(n) => inbox.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Served::Closed,
        }
    }
    Served::Closed
}

/// The protocol's rules for one agency, plus the script's misbehaviour.
fn answer(
    frame: Frame<'_>,
    frame_len: usize,
    script: &Script,
    seen: &mut Seen,
    out: &mut Vec<u8>,
) -> Then {
    seen.arrivals.push(Instant::now());
    match frame {
        Frame::Batch {
            agency,
            first,
            bets,
        } => {
            assert_eq!(agency, AGENCY, "the agency sends its own number");
            seen.batches.push((first, bets.len() as u16, frame_len));
            if seen.storage_sent < script.storage_errors {
                seen.storage_sent += 1;
                wire::encode_error(out, ErrorCode::Storage, 0, "disk full");
                return Then::KeepOpen;
            }
            if let Some((at, keep)) = script.lose_on_batch
                && !seen.lost_on_batch
                && seen.stored.len() >= at
            {
                seen.lost_on_batch = true;
                seen.stored.truncate(keep);
            }
            let stored = seen.stored.len();
            if seen.closed {
                wire::encode_error(out, ErrorCode::AgencyClosed, stored as u32, "closed");
                return Then::KeepOpen;
            }
            for (i, b) in bets.iter().enumerate() {
                let valid = bet::validate(&b, bet::today()).is_ok();
                if !valid
                    || script
                        .reject_document
                        .as_deref()
                        .is_some_and(|d| d.as_bytes() == b.document)
                {
                    wire::encode_error(out, ErrorCode::InvalidBet, i as u32, "bad bet");
                    return Then::KeepOpen;
                }
            }
            let first = first as usize;
            if first > stored {
                wire::encode_error(out, ErrorCode::OutOfOrder, stored as u32, "gap");
                return Then::KeepOpen;
            }
            for b in bets.iter().skip(stored - first) {
                seen.stored.push(format!(
                    "{},{},{},{},{}",
                    String::from_utf8(b.first_name.to_vec()).unwrap(),
                    String::from_utf8(b.last_name.to_vec()).unwrap(),
                    String::from_utf8(b.document.to_vec()).unwrap(),
                    String::from_utf8(format_date(b.birthdate).to_vec()).unwrap(),
                    b.number
                ));
            }
            wire::encode_ack(out, AGENCY, seen.stored.len() as u32);
        }
        Frame::Done { agency, total } => {
            assert_eq!(agency, AGENCY);
            seen.dones.push(total);
            if let Some(keep) = script.lose_on_done
                && !seen.lost_on_done
            {
                seen.lost_on_done = true;
                seen.stored.truncate(keep);
            }
            let stored = seen.stored.len() as u32;
            if total != stored {
                wire::encode_error(out, ErrorCode::MissingBets, stored, "missing bets");
            } else {
                seen.closed = true;
                wire::encode_ack(out, AGENCY, stored);
            }
        }
        Frame::GetWinners { agency, wait } => {
            assert_eq!(agency, AGENCY);
            assert!(seen.closed, "GET_WINNERS comes after the agency's DONE");
            seen.get_winners.push((wait, Instant::now()));
            if wait && script.park_forever {
                return Then::Park;
            }
            if seen.not_ready_sent < script.not_ready {
                seen.not_ready_sent += 1;
                wire::encode_not_ready(out, seen.not_ready_sent as u32, 5);
                return Then::KeepOpen;
            }
            let winners = winners_of(&seen.stored);
            let per_frame = if script.winners_per_frame == 0 {
                winners.len().max(1)
            } else {
                script.winners_per_frame
            };
            let total = winners.len() as u32;
            let mut chunks: Vec<&[String]> = winners.chunks(per_frame).collect();
            if chunks.is_empty() {
                chunks.push(&[]);
            }
            let last = chunks.len() - 1;
            for (i, docs) in chunks.into_iter().enumerate() {
                wire::encode_winners(out, AGENCY, total, i == last, docs);
            }
            seen.winners_sent = Some(Instant::now());
        }
        other => panic!("the agency sent a frame a central never receives: {other:?}"),
    }
    Then::KeepOpen
}

/// The documents of the rows whose number wins.
fn winners_of(rows: &[String]) -> Vec<String> {
    rows.iter()
        .filter(|row| row.rsplit(',').next() == Some(&WINNING_NUMBER.to_string()))
        .map(|row| row.split(',').nth(2).unwrap().to_string())
        .collect()
}

// ---------------------------------------------------------------------------
// The agency process.

/// `n` valid bets as CSV rows, names padded to `name_len` bytes; every 7th
/// bet wins.
fn rows(n: usize, name_len: usize) -> Vec<String> {
    let pad = |name: String, fill: char| {
        let missing = name_len.saturating_sub(name.len());
        name + &fill.to_string().repeat(missing)
    };
    (0..n)
        .map(|i| {
            let number = if i % 7 == 0 {
                WINNING_NUMBER
            } else {
                (i % 7000) as u16
            };
            format!(
                "{},{},{},{}-{:02}-{:02},{number}",
                pad(format!("Nombre{i}"), 'n'),
                pad("Apellido".to_string(), 'a'),
                20_000_000 + i,
                1950 + i % 50,
                1 + i % 12,
                1 + i % 28,
            )
        })
        .collect()
}

/// Writes `rows` as the agency's default bets file under `dir`.
fn write_bets(dir: &Path, rows: &[String]) -> PathBuf {
    let path = dir.join(".data").join(format!("agency-{AGENCY}.csv"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut text = rows.join("\n");
    text.push('\n');
    std::fs::write(&path, text).unwrap();
    path
}

/// The agency binary, run in `dir` with nothing of this process's
/// environment but what is set here.
fn agency(dir: &Path, server: &str) -> Command {
    let mut cmd = Command::new(util::client_bin());
    cmd.env_clear()
        .current_dir(dir)
        .env("CLI_ID", AGENCY.to_string())
        .env("CLI_SERVER_ADDRESS", server)
        .env("CLI_LOG_LEVEL", "debug")
        .env("CLI_CONNECT_TIMEOUT", "10s")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

struct Running {
    child: Child,
    stderr: Option<JoinHandle<String>>,
}

struct Finished {
    code: Option<i32>,
    log: String,
}

impl Running {
    fn start(cmd: &mut Command) -> Running {
        let mut child = cmd.spawn().unwrap();
        let mut pipe = child.stderr.take().unwrap();
        // Read while it runs: a debug log outgrows the pipe's buffer.
        let stderr = thread::spawn(move || {
            let mut text = String::new();
            pipe.read_to_string(&mut text).unwrap();
            text
        });
        Running {
            child,
            stderr: Some(stderr),
        }
    }

    fn wait(mut self, limit: Duration) -> Finished {
        let deadline = Instant::now() + limit;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                let log = self.stderr.take().unwrap().join().unwrap();
                panic!("the agency did not finish within {limit:?}; its log:\n{log}");
            }
            thread::sleep(Duration::from_millis(10));
        };
        let log = self.stderr.take().unwrap().join().unwrap();
        assert_well_formed(&log);
        Finished {
            code: status.code(),
            log,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &mut Command) -> Finished {
    Running::start(cmd).wait(Duration::from_secs(20))
}

/// Every line starts with a timestamp, and every `action:` line reads
/// `action: NAME | result: success|fail|in_progress | key: value ...`.
fn assert_well_formed(log: &str) {
    for line in log.lines() {
        assert!(
            line.starts_with(|c: char| c.is_ascii_digit()),
            "no timestamp: {line}"
        );
        let Some(at) = line.find("action: ") else {
            assert!(!line.contains('|'), "a bar outside an action line: {line}");
            continue;
        };
        assert!(!line[..at].contains('|'), "{line}");
        let parts: Vec<&str> = line[at..].split(" | ").collect();
        assert_eq!(line[at..].matches('|').count(), parts.len() - 1, "{line}");
        let name = parts[0].strip_prefix("action: ").unwrap();
        assert!(!name.is_empty() && !name.contains(' '), "{line}");
        assert!(
            matches!(
                parts.get(1).copied(),
                Some("result: success" | "result: fail" | "result: in_progress")
            ),
            "{line}"
        );
        for pair in &parts[2..] {
            let (key, value) = pair.split_once(": ").unwrap_or_else(|| panic!("{line}"));
            assert!(
                !key.is_empty() && !key.contains(' ') && !value.is_empty(),
                "{line}"
            );
        }
    }
}

fn has_line(log: &str, wanted: &str) -> bool {
    log.lines().any(|line| line.contains(wanted))
}

/// The stored stream is the file, in order, each bet once.
fn assert_stored_exactly(central: &FakeCentral, rows: &[String]) {
    let seen = central.seen();
    assert_eq!(seen.stored.len(), rows.len(), "stored count");
    for (i, (stored, row)) in seen.stored.iter().zip(rows).enumerate() {
        assert_eq!(stored, row, "bet {i}");
    }
    assert!(seen.closed, "the agency sent DONE");
}

// ---------------------------------------------------------------------------
// The tests.

#[test]
fn sends_every_bet_once_in_order_in_batches_of_exactly_max_amount() {
    let dir = util::temp_dir("agency-batches");
    let rows = rows(1000, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script::default());
    let done = run(agency(&dir, &central.address()).env("CLI_BATCH_MAXAMOUNT", "64"));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_stored_exactly(&central, &rows);
    let seen = central.seen();
    let mut expected_first = 0;
    for (i, &(first, count, _)) in seen.batches.iter().enumerate() {
        assert_eq!(first, expected_first, "batch {i} follows the previous one");
        let last = i == seen.batches.len() - 1;
        assert_eq!(count, if last { 1000 % 64 } else { 64 }, "batch {i}");
        expected_first += count as u32;
    }
    assert_eq!(seen.dones, [1000]);
    assert_eq!(seen.connections, 1);
    assert!(
        has_line(
            &done.log,
            "action: apuestas_enviadas | result: success | cantidad: 1000"
        ),
        "{}",
        done.log
    );
    let winners = winners_of(&rows).len();
    assert!(
        has_line(
            &done.log,
            &format!("action: consulta_ganadores | result: success | cant_ganadores: {winners}")
        ),
        "{}",
        done.log
    );
    assert!(has_line(
        &done.log,
        "action: batch_enviado | result: success | first: 960 | cantidad: 40"
    ));
    assert!(!done.log.contains("result: fail"), "{}", done.log);
}

#[test]
fn long_names_make_batches_smaller_so_every_frame_fits_8_kb() {
    let dir = util::temp_dir("agency-frame-limit");
    let rows = rows(300, 250);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script::default());
    let done = run(agency(&dir, &central.address()).env("CLI_BATCH_MAXAMOUNT", "100"));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_stored_exactly(&central, &rows);
    let seen = central.seen();
    assert!(
        seen.batches.len() > 3,
        "batches were cut: {:?}",
        seen.batches
    );
    for &(_, count, bytes) in &seen.batches {
        assert!(bytes <= wire::MAX_FRAME);
        assert!(count < 100);
    }
    assert_eq!(
        done.log.matches("action: batch_size").count(),
        1,
        "{}",
        done.log
    );
}

#[test]
fn resumes_without_skipping_or_doubling_when_the_central_closes_after_every_reply() {
    let dir = util::temp_dir("agency-one-request");
    let rows = rows(500, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script {
        one_request_per_connection: true,
        ..Script::default()
    });
    let done = run(agency(&dir, &central.address())
        .env("CLI_BATCH_MAXAMOUNT", "10")
        .env("CLI_WINDOW", "4"));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_stored_exactly(&central, &rows);
    let seen = central.seen();
    // 50 batches, DONE, GET_WINNERS: one connection each.
    assert!(seen.connections >= 52, "{} connections", seen.connections);
    assert!(!done.log.contains("result: fail"), "{}", done.log);
}

#[test]
fn keeps_trying_to_connect_until_the_central_is_up() {
    let dir = util::temp_dir("agency-late-central");
    let rows = rows(50, 0);
    write_bets(&dir, &rows);
    let port = util::free_port();
    let running = Running::start(&mut agency(&dir, &format!("127.0.0.1:{port}")));
    thread::sleep(Duration::from_secs(1));
    let central = FakeCentral::start_on(port, Script::default());
    let done = running.wait(Duration::from_secs(20));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_stored_exactly(&central, &rows);
    assert!(
        has_line(&done.log, "action: conectar | result: in_progress"),
        "{}",
        done.log
    );
}

#[test]
fn gives_up_with_exit_1_when_the_central_never_comes() {
    let dir = util::temp_dir("agency-no-central");
    write_bets(&dir, &rows(5, 0));
    let port = util::free_port();
    let start = Instant::now();
    let done = run(agency(&dir, &format!("127.0.0.1:{port}")).env("CLI_CONNECT_TIMEOUT", "500ms"));
    assert_eq!(done.code, Some(1), "{}", done.log);
    assert!(start.elapsed() < Duration::from_secs(5));
    assert!(
        has_line(&done.log, "action: conectar | result: fail"),
        "{}",
        done.log
    );
}

#[test]
fn out_of_order_and_missing_bets_resume_from_the_central_count() {
    let dir = util::temp_dir("agency-resume");
    let rows = rows(1000, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script {
        lose_on_batch: Some((300, 250)),
        lose_on_done: Some(900),
        ..Script::default()
    });
    let done = run(agency(&dir, &central.address()).env("CLI_BATCH_MAXAMOUNT", "50"));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_stored_exactly(&central, &rows);
    let seen = central.seen();
    assert_eq!(seen.dones, [1000, 1000]);
    assert!(
        has_line(
            &done.log,
            "action: reanudar | result: in_progress | desde: 250 | motivo: OUT_OF_ORDER"
        ),
        "{}",
        done.log
    );
    assert!(
        has_line(
            &done.log,
            "action: reanudar | result: in_progress | desde: 900 | motivo: MISSING_BETS"
        ),
        "{}",
        done.log
    );
}

#[test]
fn storage_errors_and_shutting_down_are_retried_without_loss() {
    let dir = util::temp_dir("agency-storage");
    let rows = rows(200, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script {
        storage_errors: 2,
        shutting_down: 2,
        ..Script::default()
    });
    let done = run(agency(&dir, &central.address()).env("CLI_BATCH_MAXAMOUNT", "30"));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_stored_exactly(&central, &rows);
    assert!(has_line(&done.log, "STORAGE"), "{}", done.log);
    assert!(!done.log.contains("result: fail"), "{}", done.log);
}

#[test]
fn asks_again_after_not_ready_and_collects_winners_from_several_frames() {
    let dir = util::temp_dir("agency-not-ready");
    let rows = rows(100, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script {
        not_ready: 2,
        winners_per_frame: 3,
        ..Script::default()
    });
    let done = run(&mut agency(&dir, &central.address()));
    assert_eq!(done.code, Some(0), "{}", done.log);
    let seen = central.seen();
    assert_eq!(seen.get_winners.len(), 3);
    assert!(
        seen.get_winners.iter().all(|&(wait, _)| wait),
        "wait mode parks"
    );
    let winners = winners_of(&rows).len();
    assert!(winners > 3);
    assert!(
        has_line(&done.log, &format!("cant_ganadores: {winners}")),
        "{}",
        done.log
    );
    assert!(
        has_line(
            &done.log,
            "action: consulta_ganadores | result: in_progress"
        ),
        "{}",
        done.log
    );
}

/// A central that answers a parked GET_WINNERS with NOT_READY at once (its
/// parked limit for the agency reached, say) is not asked again in a busy
/// loop: an answer that comes well before the park timeout is followed by
/// a pause, longer each time. Counted over the central's first seconds of
/// such answers.
#[test]
fn a_not_ready_that_comes_at_once_is_asked_again_after_a_pause_not_in_a_loop() {
    let dir = util::temp_dir("agency-not-ready-at-once");
    write_bets(&dir, &rows(20, 0));
    let central = FakeCentral::start(Script {
        not_ready: usize::MAX,
        ..Script::default()
    });
    let running = Running::start(&mut agency(&dir, &central.address()));
    let window = Duration::from_secs(2);
    let deadline = Instant::now() + Duration::from_secs(30);
    let asked = loop {
        {
            let seen = central.seen();
            if let (Some(&(_, first)), Some(&(_, last))) =
                (seen.get_winners.first(), seen.get_winners.last())
                && last >= first + window
            {
                break seen
                    .get_winners
                    .iter()
                    .filter(|&&(_, at)| at < first + window)
                    .count();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the agency did not ask for its winners past {window:?}"
        );
        thread::sleep(Duration::from_millis(10));
    };
    drop(running);
    assert!(
        asked <= 10,
        "{asked} GET_WINNERS in the first {window:?} of NOT_READY answered at once"
    );
}

#[test]
fn poll_mode_asks_without_waiting_every_100_ms() {
    let dir = util::temp_dir("agency-poll");
    write_bets(&dir, &rows(20, 0));
    let central = FakeCentral::start(Script {
        not_ready: 3,
        ..Script::default()
    });
    let done = run(agency(&dir, &central.address()).env("CLI_WINNERS_MODE", "poll"));
    assert_eq!(done.code, Some(0), "{}", done.log);
    let seen = central.seen();
    assert_eq!(seen.get_winners.len(), 4);
    assert!(seen.get_winners.iter().all(|&(wait, _)| !wait));
    for pair in seen.get_winners.windows(2) {
        let gap = pair[1].1 - pair[0].1;
        assert!(
            gap >= Duration::from_millis(90),
            "asked again after {gap:?}"
        );
    }
}

#[test]
fn a_bad_row_is_logged_with_its_line_not_sent_and_the_run_exits_2() {
    let dir = util::temp_dir("agency-bad-row");
    let mut rows = rows(10, 0);
    let bad = "Ana,Lorca,12a45,1999-03-17,7574".to_string();
    rows.insert(2, bad);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script::default());
    let done = run(&mut agency(&dir, &central.address()));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert!(
        has_line(
            &done.log,
            "action: leer_apuesta | result: fail | linea: 3 | motivo: "
        ),
        "{}",
        done.log
    );
    rows.remove(2);
    assert_stored_exactly(&central, &rows);
    assert!(
        has_line(&done.log, "action: consulta_ganadores | result: success"),
        "the run went on: {}",
        done.log
    );
}

#[test]
fn a_bet_the_central_rejects_ends_the_run_with_exit_2_without_retrying() {
    let dir = util::temp_dir("agency-rejected");
    let rows = rows(30, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script {
        reject_document: Some("20000012".into()),
        ..Script::default()
    });
    let done = run(agency(&dir, &central.address())
        .env("CLI_BATCH_MAXAMOUNT", "10")
        .env("CLI_WINDOW", "1"));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert_eq!(
        central.seen().batches.len(),
        2,
        "no retry of the rejected batch"
    );
    assert!(
        has_line(
            &done.log,
            "result: fail | motivo: the central rejected bet 12"
        ),
        "{}",
        done.log
    );
}

#[test]
fn the_single_bet_of_the_environment_is_sent_and_logged_once_acknowledged() {
    let dir = util::temp_dir("agency-single");
    let central = FakeCentral::start(Script::default());
    let done = run(agency(&dir, &central.address())
        .env("NOMBRE", "Santiago Lionel")
        .env("APELLIDO", "Lorca")
        .env("DOCUMENTO", "30904465")
        .env("NACIMIENTO", "1999-03-17")
        .env("NUMERO", "7574"));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_eq!(
        central.seen().stored,
        ["Santiago Lionel,Lorca,30904465,1999-03-17,7574"]
    );
    assert_eq!(
        done.log
            .matches("action: apuesta_enviada | result: success | dni: 30904465 | numero: 7574")
            .count(),
        1,
        "{}",
        done.log
    );
}

#[test]
fn an_agency_already_closed_goes_straight_to_its_winners() {
    let dir = util::temp_dir("agency-rerun");
    let rows = rows(40, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script::default());
    let first = run(&mut agency(&dir, &central.address()));
    assert_eq!(first.code, Some(0), "{}", first.log);
    let again = run(&mut agency(&dir, &central.address()));
    assert_eq!(again.code, Some(0), "{}", again.log);
    assert_stored_exactly(&central, &rows);
    assert!(has_line(&again.log, "already closed"), "{}", again.log);
}

#[test]
fn config_yaml_with_unknown_keys_is_read_and_the_environment_wins() {
    let dir = util::temp_dir("agency-yaml");
    let rows = rows(100, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script::default());
    std::fs::write(
        dir.join("config.yaml"),
        "server:\n  address: \"127.0.0.1:1\"\nloop:\n  amount: 5\n  period: \"5ms\"\nlog:\n  level: \"debug\"\nbatch:\n  maxAmount: 7\n",
    )
    .unwrap();
    let done = run(agency(&dir, &central.address()).env("CLI_LOG_LEVEL", "info"));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_stored_exactly(&central, &rows);
    assert!(
        central
            .seen()
            .batches
            .iter()
            .all(|&(first, count, _)| count == 7 || first == 98)
    );
    assert!(
        !done.log.contains(" DEBUG "),
        "the environment's level wins: {}",
        done.log
    );
    assert!(has_line(&done.log, "batch_max_amount: 7"), "{}", done.log);
    // `loop.period` is read; `loop.amount` is ignored.
    assert!(has_line(&done.log, "loop_period_ms: 5 "), "{}", done.log);
}

#[test]
fn bad_config_values_are_a_clear_error_and_exit_2() {
    let dir = util::temp_dir("agency-bad-config");
    write_bets(&dir, &rows(3, 0));
    let cases: &[(&str, &str)] = &[
        ("CLI_BATCH_MAXAMOUNT", "lots"),
        ("CLI_BATCH_MAXAMOUNT", "0"),
        ("CLI_SERVER_ADDRESS", "no-port"),
        ("CLI_WINDOW", "0"),
        ("CLI_WINNERS_MODE", "push"),
        ("CLI_LOG_LEVEL", "loud"),
        ("CLI_ID", "0"),
    ];
    for (key, value) in cases {
        let done = run(agency(&dir, "127.0.0.1:1").env(key, value));
        assert_eq!(done.code, Some(2), "{key}={value}: {}", done.log);
        assert!(
            has_line(&done.log, "action: config | result: fail"),
            "{}",
            done.log
        );
        assert!(
            done.log.contains(key),
            "the error names {key}: {}",
            done.log
        );
    }
    let done = run(agency(&dir, "127.0.0.1:1").env_remove("CLI_ID"));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert!(done.log.contains("CLI_ID"), "{}", done.log);

    std::fs::write(dir.join("config.yaml"), "batch:\n  maxAmount: lots\n").unwrap();
    let done = run(&mut agency(&dir, "127.0.0.1:1"));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert!(
        has_line(&done.log, "batch.maxAmount in config.yaml"),
        "{}",
        done.log
    );
    std::fs::remove_file(dir.join("config.yaml")).unwrap();

    let done = run(agency(&dir, "127.0.0.1:1").env("CLI_DATA_FILE", "missing.csv"));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert!(
        has_line(&done.log, "action: leer_apuestas | result: fail"),
        "{}",
        done.log
    );
}

#[test]
fn sigterm_while_parked_for_the_winners_exits_0() {
    let dir = util::temp_dir("agency-sigterm");
    write_bets(&dir, &rows(20, 0));
    let central = FakeCentral::start(Script {
        park_forever: true,
        ..Script::default()
    });
    let running = Running::start(&mut agency(&dir, &central.address()));
    let deadline = Instant::now() + Duration::from_secs(10);
    while central.seen().get_winners.is_empty() {
        assert!(
            Instant::now() < deadline,
            "the agency never asked for its winners"
        );
        thread::sleep(Duration::from_millis(10));
    }
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let done = running.wait(Duration::from_secs(5));
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "stopped in {:?}",
        signalled.elapsed()
    );
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert!(
        has_line(
            &done.log,
            "action: shutdown | result: success | signal: SIGTERM | stored: 20"
        ),
        "{}",
        done.log
    );
}

#[test]
fn a_bets_file_that_is_a_directory_or_missing_is_named_and_explained() {
    let dir = util::temp_dir("agency-file-directory");
    // What docker mounts where the host's file is missing.
    std::fs::create_dir_all(dir.join(".data").join(format!("agency-{AGENCY}.csv"))).unwrap();
    let done = run(&mut agency(&dir, "127.0.0.1:1"));
    assert_eq!(done.code, Some(2), "{}", done.log);
    let line = done
        .log
        .lines()
        .find(|l| l.contains("action: leer_apuestas | result: fail"))
        .unwrap_or_else(|| panic!("{}", done.log));
    for needed in [
        format!(".data/agency-{AGENCY}.csv"),
        "is a directory".into(),
        "docker creates an empty directory where a mounted file is missing".into(),
    ] {
        assert!(line.contains(&needed), "no {needed:?} in: {line}");
    }

    let done = run(agency(&dir, "127.0.0.1:1").env("CLI_DATA_FILE", "nowhere.csv"));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert!(
        has_line(
            &done.log,
            "cannot read the bets file nowhere.csv: no such file"
        ),
        "{}",
        done.log
    );
}

/// Every request comes at least a period after the answer before it (so
/// after the request before it), and the winners are reported at least a
/// period after they were sent: a reader following the run sees the draw a
/// period before any agency's `consulta_ganadores`. Both gaps are lower
/// bounds, measured from outside the agency: a slow machine only widens them.
#[test]
fn loop_period_paces_every_step_and_reports_the_winners_a_period_after_they_arrive() {
    const PERIOD: Duration = Duration::from_millis(150);
    let dir = util::temp_dir("agency-loop-period");
    let rows = rows(50, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script::default());
    let mut child = agency(&dir, &central.address())
        .env("CLI_BATCH_MAXAMOUNT", "10")
        .env("CLI_LOOP_PERIOD", "150ms")
        .spawn()
        .unwrap();
    // When each log line was read, to time the winners report.
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let lines = thread::spawn(move || {
        stderr
            .lines()
            .map_while(Result::ok)
            .map(|line| (Instant::now(), line))
            .collect::<Vec<_>>()
    });
    let status = child.wait().unwrap();
    let lines = lines.join().unwrap();
    let log: Vec<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    let log = log.join("\n");
    assert_eq!(status.code(), Some(0), "{log}");
    assert_stored_exactly(&central, &rows);
    assert!(has_line(&log, "loop_period_ms: 150"), "{log}");

    let seen = central.seen();
    assert_eq!(seen.batches.len(), 5, "one batch at a time, each of 10");
    // Five batches, the DONE and one GET_WINNERS, each a step.
    assert_eq!(seen.arrivals.len(), 7, "{log}");
    for (k, pair) in seen.arrivals.windows(2).enumerate() {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= PERIOD,
            "request {} came {gap:?} after the one before",
            k + 1
        );
    }
    let report = lines
        .iter()
        .find(|(_, l)| l.contains("action: consulta_ganadores | result: success"))
        .unwrap_or_else(|| panic!("no winners report in:\n{log}"))
        .0;
    let sent = seen.winners_sent.expect("the winners were sent");
    assert!(
        report - sent >= PERIOD,
        "the winners were reported {:?} after they were sent",
        report - sent
    );
}

#[test]
fn sigterm_during_a_loop_period_pause_stops_at_once_with_exit_0() {
    let dir = util::temp_dir("agency-loop-period-sigterm");
    write_bets(&dir, &rows(50, 0));
    let central = FakeCentral::start(Script::default());
    let running = Running::start(
        agency(&dir, &central.address())
            .env("CLI_BATCH_MAXAMOUNT", "10")
            .env("CLI_LOOP_PERIOD", "30s"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while central.seen().batches.is_empty() {
        assert!(Instant::now() < deadline, "the agency sent no batch");
        thread::sleep(Duration::from_millis(10));
    }
    // The first batch's ACK and then the pause.
    thread::sleep(Duration::from_millis(200));
    let signalled = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &running.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let done = running.wait(Duration::from_secs(5));
    assert!(
        signalled.elapsed() < Duration::from_secs(1),
        "stopped in {:?}",
        signalled.elapsed()
    );
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_eq!(central.seen().batches.len(), 1, "{}", done.log);
    assert!(
        has_line(
            &done.log,
            "action: shutdown | result: success | signal: SIGTERM | stored: 10"
        ),
        "{}",
        done.log
    );
}

/// The date `days` after today (UTC), as the agency's and central's clocks see it.
fn days_from_today(days: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let date = bet::civil_from_days(now / 86_400 + days);
    String::from_utf8(format_date(date).to_vec()).unwrap()
}

#[test]
fn a_row_born_tomorrow_holds_the_stream_there_and_a_later_run_resumes_without_a_shift() {
    let dir = util::temp_dir("agency-born-tomorrow");
    let mut rows = rows(10, 0);
    rows.insert(4, format!("Ana,Lorca,30904465,{},7574", days_from_today(1)));
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script::default());

    // Today: the bets before the row of tomorrow are stored, no DONE, exit 2.
    let held = run(&mut agency(&dir, &central.address()));
    assert_eq!(held.code, Some(2), "{}", held.log);
    assert!(
        has_line(&held.log, "linea: 5 | posicion: 4 | motivo: birthdate"),
        "{}",
        held.log
    );
    assert_eq!(central.seen().stored, rows[..4], "only the bets before it");
    assert!(central.seen().dones.is_empty(), "the agency stays open");

    // The day comes (the row is now valid: its date is today): a new run
    // resumes at the central's count, 4, which is that row's position, so
    // every row is stored once, in file order.
    rows[4] = format!("Ana,Lorca,30904465,{},7574", days_from_today(0));
    write_bets(&dir, &rows);
    let done = run(&mut agency(&dir, &central.address()));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_stored_exactly(&central, &rows);
    assert_eq!(central.seen().dones, [rows.len() as u32]);
}

#[test]
fn a_silent_central_is_given_up_at_the_reply_deadline_and_the_agency_reconnects() {
    let dir = util::temp_dir("agency-silent");
    let rows = rows(50, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script {
        silent_connections: 2,
        ..Script::default()
    });
    // Without a deadline the agency waits on the first connection forever
    // and `run` panics at its 20 s limit.
    let done = run(agency(&dir, &central.address()).env("CLI_REPLY_TIMEOUT", "300ms"));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert!(central.seen().connections >= 3);
    assert!(has_line(&done.log, "reply deadline"), "{}", done.log);
    assert_stored_exactly(&central, &rows);
}

#[test]
fn a_central_that_never_answers_ends_the_run_with_exit_1_at_the_connect_timeout() {
    let dir = util::temp_dir("agency-silent-forever");
    write_bets(&dir, &rows(5, 0));
    let central = FakeCentral::start(Script {
        silent_connections: usize::MAX,
        ..Script::default()
    });
    let started = Instant::now();
    let done = run(agency(&dir, &central.address())
        .env("CLI_REPLY_TIMEOUT", "300ms")
        .env("CLI_CONNECT_TIMEOUT", "2s"));
    assert_eq!(done.code, Some(1), "{}", done.log);
    assert!(started.elapsed() >= Duration::from_secs(2));
    assert!(
        has_line(&done.log, "action: conectar | result: fail"),
        "{}",
        done.log
    );
    assert!(central.seen().stored.is_empty());
}

// ---------------------------------------------------------------------------
// Several central addresses (`server.address` = `host:port,host:port`).

/// `action: cambiar_central` from `from` to `to` was logged, its reason
/// holding `why`.
fn moved(log: &str, from: &str, to: &str, why: &str) -> bool {
    log.lines().any(|line| {
        line.contains(&format!(
            "action: cambiar_central | result: in_progress | desde: {from} | hacia: {to} |"
        )) && line.contains(why)
    })
}

#[test]
fn a_first_address_that_refuses_connections_moves_the_agency_to_the_next_central() {
    let dir = util::temp_dir("agency-failover-refused");
    let rows = rows(500, 0);
    let file = write_bets(&dir, &rows);
    let central = util::Central::start(&dir, 1, &[]);
    let nobody = format!("127.0.0.1:{}", util::free_port());
    let done = run(agency(&dir, &format!("{nobody},{}", central.addr()))
        .env("CLI_ID", "1")
        .env("CLI_DATA_FILE", &file)
        .env("CLI_BATCH_MAXAMOUNT", "40"));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert!(
        moved(&done.log, &nobody, &central.addr(), "cannot connect"),
        "{}",
        done.log
    );
    let winners = winners_of(&rows).len();
    assert!(
        has_line(
            &done.log,
            &format!("action: consulta_ganadores | result: success | cant_ganadores: {winners}")
        ),
        "{}",
        done.log
    );
    let stored: Vec<String> = central.bets_csv().lines().map(String::from).collect();
    let expected: Vec<String> = rows.iter().map(|row| format!("1,{row}")).collect();
    assert_eq!(stored, expected, "the central's bets.csv");
    assert!(!done.log.contains("result: fail"), "{}", done.log);
}

#[test]
fn a_central_that_shuts_down_mid_ingest_hands_the_stream_to_the_next_address_without_loss() {
    let dir = util::temp_dir("agency-failover-shutting-down");
    let rows = rows(1000, 0);
    write_bets(&dir, &rows);
    let first = FakeCentral::start(Script {
        shutting_down_from: Some(300),
        ..Script::default()
    });
    let second = first.sharing(Script::default());
    let done = run(
        agency(&dir, &format!("{},{}", first.address(), second.address()))
            .env("CLI_BATCH_MAXAMOUNT", "50"),
    );
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert!(
        moved(
            &done.log,
            &first.address(),
            &second.address(),
            "SHUTTING_DOWN"
        ),
        "{}",
        done.log
    );
    assert_stored_exactly(&first, &rows);
    assert!(!done.log.contains("result: fail"), "{}", done.log);
}

#[test]
fn a_central_that_dies_mid_ingest_hands_the_stream_to_the_next_address_without_loss() {
    let dir = util::temp_dir("agency-failover-vanish");
    let rows = rows(1000, 0);
    write_bets(&dir, &rows);
    let first = FakeCentral::start(Script {
        vanish_at: Some(300),
        ..Script::default()
    });
    let second = first.sharing(Script::default());
    let done = run(
        agency(&dir, &format!("{},{}", first.address(), second.address()))
            .env("CLI_BATCH_MAXAMOUNT", "50"),
    );
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert!(
        // Closed or reset, depending on whether the agency's next batch
        // was in the central's socket when it went.
        moved(&done.log, &first.address(), &second.address(), ""),
        "{}",
        done.log
    );
    assert_stored_exactly(&first, &rows);
    assert!(!done.log.contains("result: fail"), "{}", done.log);
}

#[test]
fn a_silent_central_is_left_for_the_next_address_at_the_reply_deadline() {
    let dir = util::temp_dir("agency-failover-silent");
    let rows = rows(200, 0);
    write_bets(&dir, &rows);
    let first = FakeCentral::start(Script {
        silent_connections: usize::MAX,
        ..Script::default()
    });
    let second = first.sharing(Script::default());
    let done = run(
        agency(&dir, &format!("{},{}", first.address(), second.address()))
            .env("CLI_REPLY_TIMEOUT", "300ms"),
    );
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert!(
        moved(
            &done.log,
            &first.address(),
            &second.address(),
            "reply deadline"
        ),
        "{}",
        done.log
    );
    assert_stored_exactly(&first, &rows);
}

#[test]
fn storage_errors_that_persist_move_the_agency_to_the_next_central_after_the_bound() {
    let dir = util::temp_dir("agency-failover-storage");
    let rows = rows(300, 0);
    write_bets(&dir, &rows);
    let first = FakeCentral::start(Script {
        storage_errors: usize::MAX,
        ..Script::default()
    });
    let second = first.sharing(Script::default());
    let done = run(
        agency(&dir, &format!("{},{}", first.address(), second.address()))
            .env("CLI_STORAGE_ERRORS", "2")
            .env("CLI_BATCH_MAXAMOUNT", "30"),
    );
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert!(
        moved(
            &done.log,
            &first.address(),
            &second.address(),
            "2 ERROR STORAGE in a row"
        ),
        "{}",
        done.log
    );
    assert_stored_exactly(&first, &rows);
    // The first central was asked exactly twice: the bound, then the move.
    assert_eq!(first.seen().storage_sent, 2);
    assert!(!done.log.contains("result: fail"), "{}", done.log);
}

#[test]
fn a_next_central_holding_fewer_bets_than_were_acknowledged_is_a_loud_failure_and_they_are_resent()
{
    let dir = util::temp_dir("agency-failover-lost");
    let rows = rows(1000, 0);
    write_bets(&dir, &rows);
    // Two centrals that share nothing: the second holds none of the bets
    // the first acknowledged, as a store that lost them would.
    let first = FakeCentral::start(Script {
        vanish_at: Some(300),
        ..Script::default()
    });
    let second = FakeCentral::start(Script::default());
    let done = run(
        agency(&dir, &format!("{},{}", first.address(), second.address()))
            .env("CLI_BATCH_MAXAMOUNT", "50"),
    );
    // 250 or 300: the last ACK before the first central went may be lost
    // with its connection.
    let lost = format!(
        "action: apuestas_perdidas | result: fail | servidor: {} | confirmadas: ",
        second.address()
    );
    assert!(
        done.log
            .lines()
            .any(|line| line.contains(&lost) && line.contains("| stored: 0 |")),
        "{}",
        done.log
    );
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_eq!(first.seen().stored.len(), 300);
    assert_stored_exactly(&second, &rows);
}

// ---------------------------------------------------------------------------
// Mutual TLS.

/// A CA and the central's TLS configuration for `names`; certificates of
/// agencies are written as files for the agency to read.
struct Pki {
    ca: Authority,
    central: Issued,
}

impl Pki {
    fn new(names: &[&str]) -> Pki {
        let ca = Authority::new("agency test CA").unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let central = ca.central(&names).unwrap();
        Pki { ca, central }
    }

    fn server_config(&self) -> Arc<ServerConfig> {
        self.server_config_of(&self.central)
    }

    /// A central of the same CA whose certificate names `names`.
    fn server_config_for(&self, names: &[&str]) -> Arc<ServerConfig> {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        self.server_config_of(&self.ca.central(&names).unwrap())
    }

    fn server_config_of(&self, central: &Issued) -> Arc<ServerConfig> {
        tls::server_config(
            &Pem::from_bytes("server.pem", central.cert_pem.clone()),
            &Pem::from_bytes("server.key", central.key_pem.clone()),
            &Pem::from_bytes("ca.pem", self.ca.cert_pem()),
            5,
        )
        .unwrap()
    }

    fn central(&self, script: Script) -> FakeCentral {
        FakeCentral::start(Script {
            tls: Some(self.server_config()),
            ..script
        })
    }

    /// Writes `agency`'s certificate and key and this CA's certificate
    /// under `dir/tls/` and points the agency at them.
    fn files<'c>(&self, dir: &Path, agency: &Issued, cmd: &'c mut Command) -> &'c mut Command {
        let tls = dir.join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::write(tls.join("ca.pem"), self.ca.cert_pem()).unwrap();
        std::fs::write(tls.join("agency.pem"), &agency.cert_pem).unwrap();
        std::fs::write(tls.join("agency.key"), &agency.key_pem).unwrap();
        cmd.env("CLI_TLS_CA", tls.join("ca.pem"))
            .env("CLI_TLS_CERT", tls.join("agency.pem"))
            .env("CLI_TLS_KEY", tls.join("agency.key"))
    }
}

#[test]
fn over_mutual_tls_the_agency_stores_every_bet_once_and_gets_its_winners() {
    let dir = util::temp_dir("agency-tls");
    let rows = rows(1_000, 0);
    write_bets(&dir, &rows);
    let pki = Pki::new(&["127.0.0.1"]);
    let central = pki.central(Script {
        one_request_per_connection: true,
        ..Script::default()
    });
    let mut cmd = agency(&dir, &central.address());
    let done = run(pki.files(&dir, &pki.ca.agency(AGENCY).unwrap(), &mut cmd));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_stored_exactly(&central, &rows);
    let winners = winners_of(&rows).len();
    assert!(
        has_line(
            &done.log,
            &format!("action: consulta_ganadores | result: success | cant_ganadores: {winners}")
        ),
        "{}",
        done.log
    );
    assert!(
        has_line(&done.log, "| tls: mutual | tls_ca: "),
        "{}",
        done.log
    );
    // Every connection (one per request here) was TLS, bound to agency 3.
    let seen = central.seen();
    assert!(seen.connections > 10, "{}", seen.connections);
    assert_eq!(seen.tls_agencies, vec![AGENCY; seen.connections]);
    assert!(seen.tls_refused.is_empty(), "{:?}", seen.tls_refused);
}

#[test]
fn the_agency_refuses_a_central_whose_certificate_lacks_the_host_and_does_not_retry() {
    let dir = util::temp_dir("agency-tls-host");
    write_bets(&dir, &rows(10, 0));
    // The central is reached as 127.0.0.1; its certificate names localhost.
    let pki = Pki::new(&["localhost"]);
    let central = pki.central(Script::default());
    let mut cmd = agency(&dir, &central.address());
    let done = run(pki.files(&dir, &pki.ca.agency(AGENCY).unwrap(), &mut cmd));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert!(
        has_line(
            &done.log,
            "action: conectar | result: fail | servidor: 127.0.0.1:"
        ) && has_line(&done.log, "name \"127.0.0.1\" of server.address"),
        "{}",
        done.log
    );
    let seen = central.seen();
    assert_eq!(seen.connections, 1, "one handshake, no reconnect loop");
    assert!(seen.stored.is_empty());
}

#[test]
fn a_certificate_the_central_refuses_ends_the_run_with_exit_2_not_an_endless_reconnect() {
    let pki = Pki::new(&["127.0.0.1"]);
    let expired = pki.ca.issue(&Leaf::agency(AGENCY).expired()).unwrap();
    let stranger = Authority::new("another CA")
        .unwrap()
        .agency(AGENCY)
        .unwrap();
    let beyond = pki.ca.agency(9).unwrap();
    for (name, cert, agency_id, alert) in [
        ("expired", &expired, AGENCY, "CertificateExpired"),
        ("stranger", &stranger, AGENCY, "UnknownCA"),
        ("beyond", &beyond, 9, "CertificateUnknown"),
    ] {
        let dir = util::temp_dir(&format!("agency-tls-refused-{name}"));
        write_bets(&dir, &rows(10, 0));
        std::fs::rename(
            dir.join(format!(".data/agency-{AGENCY}.csv")),
            dir.join(format!(".data/agency-{agency_id}.csv")),
        )
        .unwrap();
        let central = pki.central(Script::default());
        let mut cmd = agency(&dir, &central.address());
        cmd.env("CLI_ID", agency_id.to_string());
        let done = run(pki.files(&dir, cert, &mut cmd));
        assert_eq!(done.code, Some(2), "{name}: {}", done.log);
        assert!(
            has_line(
                &done.log,
                &format!(
                    "motivo: the central refused the TLS connection (received fatal alert: {alert})"
                )
            ),
            "{name}: {}",
            done.log
        );
        let seen = central.seen();
        assert_eq!(
            seen.connections, 1,
            "{name}: one handshake, no reconnect loop"
        );
        assert_eq!(seen.tls_refused.len(), 1, "{name}");
        assert!(seen.stored.is_empty(), "{name}");
    }
}

#[test]
fn a_certificate_of_another_agency_is_a_config_error_before_any_connection() {
    let dir = util::temp_dir("agency-tls-other");
    write_bets(&dir, &rows(10, 0));
    let pki = Pki::new(&["127.0.0.1"]);
    let central = pki.central(Script::default());
    let mut cmd = agency(&dir, &central.address());
    let done = run(pki.files(&dir, &pki.ca.agency(1).unwrap(), &mut cmd));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert!(
        has_line(&done.log, "action: config | result: fail")
            && has_line(
                &done.log,
                "agency.pem is agency-1's certificate, but this agency's id is 3"
            ),
        "{}",
        done.log
    );
    assert_eq!(central.seen().connections, 0);
}

#[test]
fn some_but_not_all_tls_settings_or_a_missing_file_is_a_config_error_naming_it() {
    let dir = util::temp_dir("agency-tls-partial");
    write_bets(&dir, &rows(10, 0));
    let central = FakeCentral::start(Script::default());
    let done = run(agency(&dir, &central.address())
        .env("CLI_TLS_CA", "ca.pem")
        .env("CLI_TLS_CERT", "agency-3.pem"));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert!(
        has_line(&done.log, "tls.key (CLI_TLS_KEY) missing"),
        "{}",
        done.log
    );
    let done = run(agency(&dir, &central.address())
        .env("CLI_TLS_CA", "no-such-ca.pem")
        .env("CLI_TLS_CERT", "agency-3.pem")
        .env("CLI_TLS_KEY", "agency-3.key"));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert!(
        has_line(&done.log, "motivo: no-such-ca.pem: cannot read"),
        "{}",
        done.log
    );
    assert_eq!(central.seen().connections, 0);
}

#[test]
fn a_plain_agency_against_a_tls_central_says_so_and_exits_2() {
    let dir = util::temp_dir("agency-plain-to-tls");
    write_bets(&dir, &rows(10, 0));
    let pki = Pki::new(&["127.0.0.1"]);
    let central = pki.central(Script::default());
    let done = run(&mut agency(&dir, &central.address()));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert!(
        has_line(
            &done.log,
            "| tls: none | motivo: the central answered in TLS"
        ),
        "{}",
        done.log
    );
    assert_eq!(central.seen().connections, 1);
}

#[test]
fn forbidden_ends_the_run_with_exit_2_without_retrying() {
    let dir = util::temp_dir("agency-forbidden");
    write_bets(&dir, &rows(10, 0));
    let central = FakeCentral::start(Script {
        forbid: true,
        ..Script::default()
    });
    let done = run(&mut agency(&dir, &central.address()));
    assert_eq!(done.code, Some(2), "{}", done.log);
    assert!(has_line(&done.log, "(FORBIDDEN)"), "{}", done.log);
    assert_eq!(central.seen().connections, 1);
}

#[test]
fn over_tls_each_address_is_checked_against_its_own_host() {
    let dir = util::temp_dir("agency-failover-tls");
    let rows = rows(1000, 0);
    write_bets(&dir, &rows);
    let pki = Pki::new(&["localhost"]);
    // The first central is reached as localhost and its certificate names
    // only that; the second as 127.0.0.1, and its certificate names only that.
    let first = FakeCentral::start(Script {
        vanish_at: Some(300),
        tls: Some(pki.server_config()),
        ..Script::default()
    });
    let second = first.sharing(Script {
        tls: Some(pki.server_config_for(&["127.0.0.1"])),
        ..Script::default()
    });
    let first_address = format!("localhost:{}", first.address.port());
    let mut cmd = agency(&dir, &format!("{first_address},{}", second.address()));
    cmd.env("CLI_BATCH_MAXAMOUNT", "50");
    let done = run(pki.files(&dir, &pki.ca.agency(AGENCY).unwrap(), &mut cmd));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert!(
        moved(&done.log, &first_address, &second.address(), ""),
        "{}",
        done.log
    );
    assert_stored_exactly(&first, &rows);
    let seen = first.seen();
    assert!(seen.tls_refused.is_empty(), "{:?}", seen.tls_refused);
}

// ---------------------------------------------------------------------------
// Progress: a live line on a terminal, `progreso` log lines off one.

#[test]
fn on_a_terminal_the_agency_draws_a_live_progress_line_above_which_it_logs() {
    let dir = util::temp_dir("agency-progress-tty");
    let rows = rows(2000, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script::default());
    // `script` (util-linux) runs the agency on a pseudo-terminal and copies
    // what the terminal shows to its stdout. A new pty has no size; the
    // bar's width comes from it.
    let command = format!(
        "stty rows 24 cols 120; exec '{}'",
        util::client_bin().display()
    );
    let output = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("TERM", "xterm")
        .env("CLI_ID", AGENCY.to_string())
        .env("CLI_SERVER_ADDRESS", central.address())
        .env("CLI_BATCH_MAXAMOUNT", "50")
        .env("CLI_LOOP_PERIOD", "10ms")
        .env("CLI_PROGRESS_PERIOD", "100ms")
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .expect("run the agency under script(1) from util-linux");
    let screen = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{screen}");
    assert_stored_exactly(&central, &rows);
    // The live line, redrawn in place (carriage return, erase line).
    assert!(
        screen.contains(&format!("/{} confirmadas, ", rows.len())),
        "{screen}"
    );
    assert!(screen.contains("enviadas "), "{screen}");
    assert!(screen.contains("\r\x1b[2K"), "{screen}");
    // The log lines are all there, each whole on a line of its own: the
    // bar is erased before one is printed, never cut by it.
    let plain = screen.replace("\x1b[2K", "\n");
    let pieces: Vec<&str> = plain.split(['\r', '\n']).collect();
    for piece in pieces.iter().filter(|piece| piece.contains("action: ")) {
        assert!(
            piece.starts_with(|c: char| c.is_ascii_digit()),
            "a log line cut by the bar: {piece:?}"
        );
    }
    let winners = winners_of(&rows).len();
    let line = format!("action: consulta_ganadores | result: success | cant_ganadores: {winners}");
    assert!(
        pieces.iter().any(|piece| piece.ends_with(&line)),
        "{screen}"
    );
    // On a terminal the bar replaces the `progreso` lines.
    assert!(!screen.contains("action: progreso"), "{screen}");
}

#[test]
fn off_a_terminal_the_agency_logs_progreso_every_period_and_draws_no_bar() {
    let dir = util::temp_dir("agency-progress-pipe");
    let rows = rows(400, 0);
    write_bets(&dir, &rows);
    let central = FakeCentral::start(Script::default());
    // 20 batches 50 ms apart: the run lasts a second, ten periods.
    let done = run(agency(&dir, &central.address())
        .env("CLI_BATCH_MAXAMOUNT", "20")
        .env("CLI_LOOP_PERIOD", "50ms")
        .env("CLI_PROGRESS_PERIOD", "100ms"));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert_stored_exactly(&central, &rows);
    assert!(
        !done.log.contains('\x1b') && !done.log.contains('\r'),
        "{}",
        done.log
    );
    let progress: Vec<&str> = done
        .log
        .lines()
        .filter(|line| line.contains("action: progreso | result: in_progress | enviadas: "))
        .collect();
    assert!(!progress.is_empty(), "{}", done.log);
    for line in &progress {
        assert!(line.contains(" | total: 400 |"), "{line}");
        let count = |key: &str| -> usize {
            let from = line.find(&format!("| {key}: ")).unwrap() + key.len() + 4;
            line[from..].split(' ').next().unwrap().parse().unwrap()
        };
        assert!(count("confirmadas") <= count("enviadas"), "{line}");
        assert!(count("enviadas") <= 400, "{line}");
    }

    // A run shorter than the period (5 s by default) logs none.
    let central = FakeCentral::start(Script::default());
    let done = run(&mut agency(&dir, &central.address()));
    assert_eq!(done.code, Some(0), "{}", done.log);
    assert!(!done.log.contains("action: progreso"), "{}", done.log);
}
