//! Hostile input against a live central: a thousand hostile connections
//! while five honest agencies run (their time compared with runs without
//! the attack, in the same test), the connection cap, the idle timeout,
//! clients that never read, and the protocol's misuse errors (unknown
//! agencies, bets after DONE, a DONE with the wrong total, gaps) answered
//! with their documented ERROR while the central keeps serving.
//!
//! The live test's size comes from the environment: `HOSTILE_BETS` (bets
//! per honest agency, default 200000), `HOSTILE_CONNECTIONS` (per round,
//! default 1000), `HOSTILE_ROUNDS` (rounds with and without the attack,
//! default 3) and `HOSTILE_SEED` (every run prints its seed).
//!
//! Each test prints its counts straight to the terminal ([`util::report`]),
//! so `make test` shows them. The tests of this file run one at a time
//! (they share [`SERIAL`]), so that the live test's rounds are timed on an
//! otherwise quiet central.

mod util;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lottery::bets::bet::Bet;
use lottery::connections::connection;
use lottery::wire::{self, ErrorCode, kind};
use util::{
    Agency, Central, Peer, RawFrame, Rng, agency_files, batch_frame, compare_with_files,
    done_frame, env_or, generate, get_winners_frame, numbered_bet, open_sockets, raise_fd_limit,
    seed_from_env, temp_dir, vm_rss,
};

static SERIAL: Mutex<()> = Mutex::new(());

/// What one connection may cost the central at most: its input buffer, its
/// output up to the high-water mark plus a frame, the same again for the
/// replies of the iteration, with room for the allocator's rounding. A
/// connection that sends or owes megabytes must still cost no more.
const MEMORY_PER_CONNECTION: u64 =
    2 * (connection::INPUT_CAPACITY + 2 * (connection::OUTPUT_HIGH_WATER + wire::MAX_FRAME)) as u64;

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn bets(from: u64, n: u64) -> Vec<Bet> {
    (from..from + n)
        .map(|i| numbered_bet(i, (i % 10) as u16))
        .collect()
}

fn expect_error(peer: &mut Peer, code: ErrorCode, detail: u32, what: &str) {
    let f = peer.recv();
    assert_eq!(f.error(), Some((code as u8, detail)), "{what}: {f:?}");
}

fn expect_ack(peer: &mut Peer, agency: u32, stored: u32, what: &str) {
    let f = peer.recv();
    assert_eq!(f.ack(), Some((agency, stored)), "{what}: {f:?}");
}

fn assert_alive_and_never_panicked(central: &mut Central) {
    assert!(central.is_running(), "the central died: {}", central.logs());
    let logs = central.logs();
    assert!(!logs.contains("panicked"), "the central panicked: {logs}");
}

// ---------------------------------------------------------------------------
// The live test.

/// What a hostile connection does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Hostile {
    /// Connects and sends nothing at all.
    Silent,
    /// Sends a valid frame one byte every 100 ms.
    Slowloris,
    /// Sends a frame but its last bytes, and waits.
    StalledFrame,
    /// Sends a header of the largest length and most of the body, and waits.
    StalledMaxFrame,
    /// Pipelines requests without ever reading the answers. Not one of the
    /// live test's attackers: to the central it is a busy agency until the
    /// kernel's buffers for its answers fill up, megabytes later (see
    /// [`a_client_that_never_reads_its_answers_is_closed_and_its_memory_stays_bounded`]).
    NeverReads,
    /// Sends random bytes.
    RandomBytes,
    /// Sends a header whose length is beyond the protocol's.
    OversizedLength,
    /// Sends a frame of a type the protocol does not define.
    UnknownType,
    /// Sends a frame of a type only the central sends (ACK, WINNERS, ...).
    ReplyType,
    /// Sends part of a frame and hangs up.
    TruncatedThenHangUp,
}

impl Hostile {
    /// The kinds that hold their connection open until the central closes it.
    const LONG_LIVED: [Hostile; 4] = [
        Hostile::Silent,
        Hostile::Slowloris,
        Hostile::StalledFrame,
        Hostile::StalledMaxFrame,
    ];
    const SHORT_LIVED: [Hostile; 5] = [
        Hostile::RandomBytes,
        Hostile::OversizedLength,
        Hostile::UnknownType,
        Hostile::ReplyType,
        Hostile::TruncatedThenHangUp,
    ];
}

/// How a hostile connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Seen {
    /// The central answered ERROR with this code and closed.
    Error(u8),
    /// The central answered ERROR with a code or detail other than the
    /// protocol's for what was sent.
    WrongError(u8, u32),
    /// The central closed the connection without an ERROR (refused at the
    /// cap, idle or slow, or after the peer hung up).
    Closed,
    /// Other frames came, then the central closed.
    Answered,
    /// The central had not closed it when the attacker gave up.
    NotClosed,
    CannotConnect,
}

/// Reads what the central sends until it closes or `deadline`.
fn read_until_closed(stream: &mut TcpStream, deadline: Instant) -> (Vec<RawFrame>, bool) {
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    let closed = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break false;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => break true,
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break true,
        }
    };
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 3 {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        if rest.len() < 2 + len {
            break;
        }
        frames.push(RawFrame {
            kind: rest[2],
            body: rest[3..2 + len].to_vec(),
        });
        rest = &rest[2 + len..];
    }
    (frames, closed)
}

/// Whether the central has closed `stream` (EOF or reset within `wait`).
fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 512];
    match stream.read(&mut b) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
        ),
    }
}

/// One hostile connection, from connect to the central's close (or `give_up`).
fn attack(kind: Hostile, addr: SocketAddr, seed: u64, give_up: Duration) -> Seen {
    let mut rng = Rng::new(seed);
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(10)) else {
        return Seen::CannotConnect;
    };
    let deadline = Instant::now() + give_up;
    // The ERROR the protocol prescribes for what is sent, if any.
    let mut expected: Option<(ErrorCode, u32)> = None;
    match kind {
        Hostile::Silent => {}
        Hostile::Slowloris => {
            let frame = batch_frame(1, 0, &bets(seed, 8));
            for b in frame {
                if s.write_all(&[b]).is_err() || closed_within(&mut s, Duration::from_millis(100)) {
                    return Seen::Closed;
                }
                if Instant::now() > deadline {
                    return Seen::NotClosed;
                }
            }
            // The whole frame went out before the central closed: too slow a test.
            return Seen::NotClosed;
        }
        Hostile::StalledFrame => {
            let frame = batch_frame(1, 0, &bets(seed, 3));
            let cut = rng.range(1, frame.len() as u64 - 3) as usize;
            let _ = s.write_all(&frame[..frame.len() - cut]);
        }
        Hostile::StalledMaxFrame => {
            let mut frame = vec![0x1f, 0xfe, kind::BATCH];
            frame.extend(rng.bytes(8_000));
            let _ = s.write_all(&frame);
        }
        Hostile::NeverReads => {
            let one = get_winners_frame(1, false);
            let many: Vec<u8> = one.iter().copied().cycle().take(one.len() * 512).collect();
            s.set_write_timeout(Some(Duration::from_millis(100)))
                .unwrap();
            loop {
                match s.write(&many) {
                    Ok(_) => {}
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(_) => return Seen::Closed,
                }
                if Instant::now() > deadline {
                    return Seen::NotClosed;
                }
            }
        }
        Hostile::RandomBytes => {
            let n = rng.range(1, 2_000) as usize;
            let _ = s.write_all(&rng.bytes(n));
        }
        Hostile::OversizedLength => {
            let len = rng.range(wire::MAX_LEN as u64 + 1, u16::MAX as u64) as u16;
            let mut frame = len.to_be_bytes().to_vec();
            frame.push(rng.range(1, 7) as u8);
            let n = rng.range(0, 100) as usize;
            frame.extend(rng.bytes(n));
            let _ = s.write_all(&frame);
            expected = Some((ErrorCode::TooLarge, len as u32));
        }
        Hostile::UnknownType => {
            let t = match rng.range(0, 248) {
                0 => 0,
                n => (n + 7) as u8,
            };
            let n = rng.range(0, 60) as usize;
            let body = rng.bytes(n);
            let mut frame = ((body.len() + 1) as u16).to_be_bytes().to_vec();
            frame.push(t);
            frame.extend(body);
            let _ = s.write_all(&frame);
            expected = Some((ErrorCode::UnknownType, t as u32));
        }
        Hostile::ReplyType => {
            let mut frame = Vec::new();
            match rng.range(0, 3) {
                0 => wire::encode_ack(&mut frame, 1, 2),
                1 => wire::encode_not_ready(&mut frame, 1, 5),
                2 => wire::encode_winners(&mut frame, 1, 1, true, &["123"]),
                _ => wire::encode_error(&mut frame, ErrorCode::Malformed, 0, "x"),
            }
            expected = Some((ErrorCode::UnknownType, frame[2] as u32));
            let _ = s.write_all(&frame);
        }
        Hostile::TruncatedThenHangUp => {
            let frame = batch_frame(2, 0, &bets(seed, 2));
            let cut = rng.range(3, frame.len() as u64 - 1) as usize;
            let _ = s.write_all(&frame[..cut]);
            let _ = s.shutdown(Shutdown::Write);
        }
    }
    let (frames, closed) = read_until_closed(&mut s, deadline);
    if !closed {
        return Seen::NotClosed;
    }
    match (frames.first().and_then(RawFrame::error), expected) {
        (Some((code, detail)), Some((want, want_detail))) => {
            if (code, detail) == (want as u8, want_detail) {
                Seen::Error(code)
            } else {
                Seen::WrongError(code, detail)
            }
        }
        (Some((code, _)), None) => Seen::Error(code),
        (None, _) if frames.is_empty() => Seen::Closed,
        (None, _) => Seen::Answered,
    }
}

/// Samples the central's resident memory and open sockets until stopped.
struct MemoryWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<(u64, usize)>>,
}

impl MemoryWatch {
    fn start(pid: u32) -> MemoryWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(rss) = vm_rss(pid) {
                    samples.push((rss, open_sockets(pid)));
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            samples
        });
        MemoryWatch { stop, thread }
    }

    fn finish(self) -> Vec<(u64, usize)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Runs five honest agencies against `central` until they exit; checks
/// their winners and returns how long they took. `while_running` is called
/// once every agency has stored some bets (so is connected).
fn run_honest(
    dir: &Path,
    central: &Central,
    files: &[PathBuf],
    expected_winners: &[u32],
    while_running: impl FnOnce(),
) -> Duration {
    let started = Instant::now();
    let mut agencies: Vec<Agency> = files
        .iter()
        .enumerate()
        .map(|(i, f)| Agency::start(dir, i as u32 + 1, &central.addr(), f, &[]))
        .collect();
    let mut rows = util::RowWatcher::new(&dir.join("bets.csv"), files.len() as u32);
    let deadline = Instant::now() + Duration::from_secs(60);
    while rows.poll().contains(&0) {
        assert!(Instant::now() < deadline, "the agencies did not start");
        std::thread::sleep(Duration::from_millis(2));
    }
    while_running();
    let mut last_exit = started;
    for (agency, &want) in agencies.iter_mut().zip(expected_winners) {
        let (code, winners) = agency.finish(Duration::from_secs(300));
        last_exit = last_exit.max(Instant::now());
        assert_eq!(code, Some(0), "agency {}: {}", agency.id, agency.logs());
        assert_eq!(winners, Some(want), "agency {} winners", agency.id);
    }
    // `finish` polls in order, so the last exit is seen within its 10 ms poll.
    last_exit.duration_since(started)
}

/// The settings of the live test's centrals, attacked or not.
struct LiveSetup {
    files: Vec<PathBuf>,
    expected_winners: Vec<u32>,
    env: Vec<(&'static str, String)>,
    connections: usize,
    long_lived: usize,
    cap: usize,
    idle_timeout: Duration,
}

impl LiveSetup {
    fn start_central(&self, dir: &Path) -> Central {
        let env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Central::start(dir, 5, &env)
    }

    /// The honest agencies alone: how long they take.
    fn baseline(&self, round: usize) -> Duration {
        let dir = temp_dir(&format!("hostile-baseline-{round}"));
        let mut central = self.start_central(&dir);
        let took = run_honest(&dir, &central, &self.files, &self.expected_winners, || {});
        util::assert_bets_file_is_the_union(&dir.join("bets.csv"), &self.files);
        assert_eq!(
            central
                .signal_and_wait("TERM", Duration::from_secs(5))
                .code(),
            Some(0)
        );
        // Kept when the round fails, for a look; fifty megabytes otherwise.
        let _ = std::fs::remove_dir_all(&dir);
        took
    }

    /// The honest agencies while the attackers come, once every agency is
    /// connected; checks what each attacker saw, the cap, the idle timeout
    /// and the central's memory, and returns the agencies' time.
    fn attacked(&self, round: usize, seed: u64) -> Duration {
        let dir = temp_dir(&format!("hostile-attack-{round}"));
        let mut central = self.start_central(&dir);
        let pid = central.child.id();
        let addr: SocketAddr = central.addr().parse().unwrap();
        let give_up = self.idle_timeout + Duration::from_secs(20);
        let mut attackers = Vec::new();
        let mut watch = None;
        let mut before = (0, 0);
        let took = run_honest(&dir, &central, &self.files, &self.expected_winners, || {
            before = (vm_rss(pid).unwrap(), open_sockets(pid));
            watch = Some(MemoryWatch::start(pid));
            let mut rng = Rng::new(seed);
            // The short-lived ones first, so that most of them meet the
            // decoder; then the long-lived ones, which hold their
            // connections for the idle timeout, more of them than the cap
            // lets in.
            for i in 0..self.connections {
                let kind = if i < self.connections - self.long_lived {
                    Hostile::SHORT_LIVED[i % Hostile::SHORT_LIVED.len()]
                } else {
                    Hostile::LONG_LIVED[i % Hostile::LONG_LIVED.len()]
                };
                let seed = rng.next_u64();
                attackers.push((
                    kind,
                    std::thread::Builder::new()
                        .stack_size(128 * 1024)
                        .spawn(move || attack(kind, addr, seed, give_up))
                        .unwrap(),
                ));
            }
        });
        let outcomes: Vec<(Hostile, Seen)> = attackers
            .into_iter()
            .map(|(kind, t)| (kind, t.join().unwrap()))
            .collect();
        let samples = watch.unwrap().finish();
        assert_alive_and_never_panicked(&mut central);

        // Lines one per connection are budgeted: the rest are counted in
        // summary lines, logged once their one-second window has ended, so
        // the last window's summary may come a second after the last close
        // (several, on a loaded machine: the wait ends as soon as all are in).
        let summaries_by = Instant::now() + Duration::from_secs(20);
        let (refused, refused_lines, refused_at_cap, idle_closed) = loop {
            let logs = central.logs();
            let refused = logs
                .matches("action: aceptar_conexion | result: fail | peer: ")
                .count();
            let refused_lines = logs
                .matches(&format!("connection cap of {} reached", self.cap))
                .count();
            let refused_at_cap = refused_lines + suppressed_in(&logs, "action: aceptar_conexion");
            let idle_motive = format!(
                "| motivo: no progress for {} ms",
                self.idle_timeout.as_millis()
            );
            let idle_closed = logs
                .lines()
                .filter(|l| l.contains(&idle_motive) && l.contains("| peer: "))
                .count()
                + suppressed_in(&logs, "action: cerrar_conexion");
            if refused_at_cap + idle_closed >= self.long_lived || Instant::now() >= summaries_by {
                break (refused, refused_lines, refused_at_cap, idle_closed);
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        let mut table: BTreeMap<Hostile, BTreeMap<Seen, usize>> = BTreeMap::new();
        for &(kind, seen) in &outcomes {
            *table.entry(kind).or_default().entry(seen).or_default() += 1;
        }
        let (peak_rss, peak_sockets) = samples
            .iter()
            .fold(before, |(r, s), &(r2, s2)| (r.max(r2), s.max(s2)));
        let held = peak_sockets.saturating_sub(before.1).max(1);
        let per_connection = peak_rss.saturating_sub(before.0) / held as u64;
        util::report(format_args!(
            "hostile round {round}: honest agencies took {} ms under attack | refused at the cap of {}: {refused_at_cap} | closed for no progress in {} ms: {idle_closed} | central memory {} KiB before, {} KiB at the peak with {held} more sockets open: {per_connection} bytes per connection",
            took.as_millis(),
            self.cap,
            self.idle_timeout.as_millis(),
            before.0 / 1024,
            peak_rss / 1024,
        ));
        util::report(format_args!(
            "hostile round {round}: what the attackers saw (Error(2) = TOO_LARGE, Error(3) = UNKNOWN_TYPE, Closed = closed without an answer): {}",
            table
                .iter()
                .map(|(kind, seen)| format!("{kind:?} {seen:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));

        // Nothing was left open, nothing got another error than the protocol's.
        for &(kind, seen) in &outcomes {
            let ok = match kind {
                Hostile::OversizedLength => {
                    seen == Seen::Error(ErrorCode::TooLarge as u8) || seen == Seen::Closed
                }
                Hostile::UnknownType | Hostile::ReplyType => {
                    seen == Seen::Error(ErrorCode::UnknownType as u8) || seen == Seen::Closed
                }
                Hostile::RandomBytes => {
                    matches!(seen, Seen::Error(_) | Seen::Closed | Seen::Answered)
                }
                _ => seen == Seen::Closed,
            };
            assert!(ok, "a {kind:?} connection ended {seen:?}: {table:?}");
        }
        // Every long-lived attacker was either refused at the cap or closed
        // for making no progress.
        assert_eq!(refused, refused_lines, "every refusal is the cap's");
        assert!(refused_at_cap > 0, "the cap refused the excess");
        // Which of them the cap refuses and which it admits (to be closed
        // idle) depends on who connects first: a round may refuse them all.
        assert!(
            refused_at_cap + idle_closed >= self.long_lived,
            "{} long-lived attackers: {refused_at_cap} refused, {idle_closed} closed idle",
            self.long_lived
        );
        assert!(
            per_connection <= MEMORY_PER_CONNECTION,
            "{per_connection} bytes per connection"
        );
        let c = compare_with_files(&dir.join("bets.csv"), &self.files);
        assert_eq!((c.lost, c.duplicated, c.foreign), (0, 0, 0), "{c:?}");
        assert!(c.out_of_order.is_empty());
        assert_eq!(
            central
                .signal_and_wait("TERM", Duration::from_secs(5))
                .code(),
            Some(0)
        );
        let _ = std::fs::remove_dir_all(&dir);
        took
    }
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

#[test]
fn honest_agencies_get_their_results_in_at_most_twice_their_time_while_a_thousand_hostile_connections_attack()
 {
    let _serial = serial();
    let fd_limit = raise_fd_limit();
    let bets_per_agency: u32 = env_or("HOSTILE_BETS", 200_000);
    let connections: usize = env_or("HOSTILE_CONNECTIONS", 1_000);
    let rounds: usize = env_or("HOSTILE_ROUNDS", 3);
    let seed = seed_from_env("HOSTILE_SEED");
    assert!(
        fd_limit as usize > 2 * connections + 100,
        "the open-file limit {fd_limit} is too low for {connections} connections"
    );
    util::report(format_args!(
        "hostile: 5 agencies x {bets_per_agency} bets, {rounds} rounds of {connections} hostile connections, HOSTILE_SEED={seed}, open-file limit {fd_limit}"
    ));
    let data = temp_dir("hostile-data");
    let expected_winners = generate(&data, 5, bets_per_agency, seed % 1_000 + 1);
    let long_lived = connections / 2;
    // The cap is below what the long-lived attackers alone hold open, so
    // some of them must be refused.
    let cap = 5 + long_lived * 4 / 5;
    let setup = LiveSetup {
        files: agency_files(&data, 5),
        expected_winners,
        // A listen queue that holds the whole burst: with a shorter one,
        // Linux answers the overflow with SYN cookies, and a silent client
        // that believes it is connected is not known to the central until
        // it sends something, so the central could not time it out.
        env: vec![
            ("IDLE_TIMEOUT_MS", "1000".to_string()),
            ("MAX_CONNECTIONS", cap.to_string()),
            ("SERVER_LISTEN_BACKLOG", (connections + 16).to_string()),
        ],
        connections,
        long_lived,
        cap,
        idle_timeout: Duration::from_millis(1_000),
    };

    // Alternating rounds, so that both medians see the same shared machine.
    let mut rng = Rng::new(seed);
    let mut alone = Vec::new();
    let mut attacked = Vec::new();
    for round in 0..rounds {
        alone.push(setup.baseline(round));
        attacked.push(setup.attacked(round, rng.next_u64()));
    }
    let normal = median(alone.clone());
    let under_attack = median(attacked.clone());
    let allowed = 2 * normal.max(Duration::from_secs(1));
    let ms = |t: &[Duration]| {
        t.iter()
            .map(|d| d.as_millis().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    util::report(format_args!(
        "hostile: honest agencies alone: {} ms (median {} ms) | under attack: {} ms (median {} ms) | allowed: {} ms (twice the median, with a 1 s floor)",
        ms(&alone),
        normal.as_millis(),
        ms(&attacked),
        under_attack.as_millis(),
        allowed.as_millis()
    ));
    // The bound: at most twice the normal time (with a floor, so
    // that a sub-second baseline does not turn scheduling noise into a failure).
    assert!(
        under_attack <= allowed,
        "honest agencies took {} ms under attack, more than twice their {} ms",
        under_attack.as_millis(),
        normal.as_millis()
    );
    let _ = std::fs::remove_dir_all(&data);
}

// ---------------------------------------------------------------------------
// The connection cap and the idle timeout, one at a time.

#[test]
fn the_connection_cap_refuses_the_excess_with_a_log_line_and_keeps_serving() {
    let _serial = serial();
    raise_fd_limit();
    let dir = temp_dir("cap");
    let cap = 100;
    let mut central = Central::start(
        &dir,
        1,
        &[("MAX_CONNECTIONS", "100"), ("IDLE_TIMEOUT_MS", "600000")],
    );
    let pid = central.child.id();
    let idle_sockets = open_sockets(pid);
    // One at a time, so the central accepts them in this order.
    let mut held: Vec<TcpStream> = (0..cap + 50)
        .map(|_| TcpStream::connect(central.addr()).unwrap())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while refusals_logged(&central.logs()) < 50 {
        assert!(Instant::now() < deadline, "{}", central.logs());
        std::thread::sleep(Duration::from_millis(10));
    }
    let refused: Vec<usize> = held
        .iter_mut()
        .enumerate()
        .filter_map(|(i, s)| closed_within(s, Duration::from_millis(50)).then_some(i))
        .collect();
    assert_eq!(
        refused,
        (cap..cap + 50).collect::<Vec<_>>(),
        "the connections beyond the cap are the ones refused"
    );
    // One more is refused too, and the central stays up.
    let mut extra = TcpStream::connect(central.addr()).unwrap();
    assert!(closed_within(&mut extra, Duration::from_secs(10)));
    assert_alive_and_never_panicked(&mut central);
    let deadline = Instant::now() + Duration::from_secs(5);
    while refusals_logged(&central.logs()) < 51 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = central.logs();
    let refusals = refusals_logged(&logs);
    assert_eq!(refusals, 51, "{logs}");
    let lines = logs.matches("connection cap of 100 reached").count();
    assert!(
        lines <= 2 * lottery::support::log_budget::LINES_PER_SECOND as usize,
        "one line per refusal: {lines}"
    );

    // Freeing ten places lets an agency in again.
    held.truncate(cap - 10);
    let deadline = Instant::now() + Duration::from_secs(20);
    while open_sockets(pid) > idle_sockets + cap - 10 {
        assert!(
            Instant::now() < deadline,
            "the central did not see the hang-ups"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut peer = central.connect();
    peer.send(&batch_frame(1, 0, &bets(0, 3)));
    expect_ack(&mut peer, 1, 3, "an agency after the cap was reached");
    assert_alive_and_never_panicked(&mut central);
    util::report(format_args!(
        "connection cap: {cap} held, {refusals} refused ({lines} lines, the rest counted in a summary), served again once 10 hung up"
    ));
}

/// Refusals at the cap the log accounts for: a line each while the budget
/// lasts, then the count in a summary line.
fn refusals_logged(logs: &str) -> usize {
    logs.matches("connection cap of 100 reached").count()
        + suppressed_in(logs, "action: aceptar_conexion")
}

/// The lines of `action` counted, not logged, as its summary lines say.
fn suppressed_in(logs: &str, action: &str) -> usize {
    logs.lines()
        .filter(|l| l.contains(action))
        .filter_map(|l| l.split("lineas_suprimidas: ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse::<usize>().ok())
        .sum()
}

#[test]
fn a_thousand_connections_parking_for_one_agency_do_not_keep_the_others_out() {
    let _serial = serial();
    raise_fd_limit();
    let dir = temp_dir("park-crowd");
    let mut central = Central::start(&dir, 3, &[("IDLE_TIMEOUT_MS", "600000")]);
    let crowd: Vec<Peer> = (0..1000)
        .map(|_| {
            let mut p = central.connect();
            p.send(&get_winners_frame(1, true));
            p
        })
        .collect();
    let mut answered = 0;
    let mut parked = Vec::new();
    for mut p in crowd {
        p.set_timeout(Duration::from_millis(if parked.len() < 4 {
            2000
        } else {
            50
        }));
        match p.try_recv() {
            Some(f) => {
                assert_eq!(f.kind, kind::NOT_READY);
                answered += 1;
            }
            None => parked.push(p),
        }
    }
    assert_eq!(parked.len(), 4, "at most 4 parked for one agency");
    assert_eq!(answered, 996, "the rest answered NOT_READY at once");

    let mut agencies = Vec::new();
    for agency in [2, 3, 1] {
        let mut peer = central.connect();
        peer.send(&batch_frame(agency, 0, &bets(agency as u64 * 10, 2)));
        expect_ack(&mut peer, agency, 2, "an agency beside the crowd");
        peer.send(&done_frame(agency, 2));
        expect_ack(&mut peer, agency, 2, "its DONE");
        agencies.push((agency, peer));
    }
    for (agency, mut peer) in agencies {
        peer.send(&get_winners_frame(agency, false));
        let f = peer.recv();
        assert_eq!(f.kind, kind::WINNERS, "agency {agency} gets its winners");
    }
    for mut p in parked {
        p.set_timeout(Duration::from_secs(10));
        assert_eq!(
            p.recv().kind,
            kind::WINNERS,
            "a parked request after the draw"
        );
    }
    assert_alive_and_never_panicked(&mut central);
    let lines = central.logs().lines().count();
    assert!(lines < 100, "the log grew with the crowd: {lines} lines");
    util::report(format_args!(
        "1000 connections parking for agency 1: 4 parked, 996 NOT_READY at once; agencies 2, 3, 1 stored, closed and got winners; {lines} log lines"
    ));
}

#[test]
fn idle_and_slow_connections_are_closed_after_the_idle_timeout_and_active_or_parked_ones_are_not() {
    let _serial = serial();
    let dir = temp_dir("idle");
    let mut central = Central::start(
        &dir,
        2,
        &[("IDLE_TIMEOUT_MS", "400"), ("PARK_TIMEOUT_MS", "1500")],
    );
    let addr: SocketAddr = central.addr().parse().unwrap();
    let started = Instant::now();
    let attackers: Vec<_> = [
        Hostile::Silent,
        Hostile::Slowloris,
        Hostile::StalledFrame,
        Hostile::StalledMaxFrame,
        Hostile::NeverReads,
    ]
    .into_iter()
    .map(|kind| {
        std::thread::spawn(move || {
            let seen = attack(kind, addr, 7, Duration::from_secs(20));
            (kind, seen, started.elapsed())
        })
    })
    .collect();

    // An agency that asks every 150 ms stays connected well past the timeout.
    let mut active = central.connect();
    for i in 0..10 {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(150));
        }
        active.send(&get_winners_frame(1, false));
        assert_eq!(active.recv().kind, kind::NOT_READY, "answer {i}");
    }
    drop(active);
    // A parked request outlives the idle timeout and is answered at the park timeout.
    let mut parked = central.connect();
    let asked = Instant::now();
    parked.send(&get_winners_frame(2, true));
    assert_eq!(parked.recv().kind, kind::NOT_READY, "parked, not closed");
    let parked_for = asked.elapsed();
    drop(parked);

    let mut report = Vec::new();
    for t in attackers {
        let (kind, seen, after) = t.join().unwrap();
        assert_eq!(seen, Seen::Closed, "{kind:?}");
        report.push(format!("{kind:?} closed after {} ms", after.as_millis()));
    }
    assert_alive_and_never_panicked(&mut central);
    let closed = central
        .logs()
        .matches("| motivo: no progress for 400 ms")
        .count();
    assert!(closed >= 5, "{}", central.logs());
    util::report(format_args!(
        "idle timeout 400 ms: {} | an active agency kept its connection for 1.5 s | a parked request was answered NOT_READY after {} ms (park timeout 1500 ms)",
        report.join(", "),
        parked_for.as_millis()
    ));
}

/// A connection that names only unknown agencies acts for none: its
/// UNKNOWN_AGENCY answers are no progress, so asking every 100 ms does not
/// keep it past the idle timeout (a crowd of them would hold every slot of
/// the connection cap for good). Each request is still answered, on the
/// same connection, as `docs/protocol.md` has it.
#[test]
fn a_connection_bound_to_no_agency_is_closed_at_the_idle_timeout_however_often_it_asks() {
    let _serial = serial();
    let dir = temp_dir("idle-unbound");
    let mut central = Central::start(&dir, 2, &[("IDLE_TIMEOUT_MS", "400")]);
    let mut stranger = central.connect();
    let give_up = Instant::now() + Duration::from_secs(10);
    let mut answered = 0;
    let closed = loop {
        if Instant::now() > give_up {
            break false;
        }
        if stranger
            .stream
            .write_all(&get_winners_frame(9, false))
            .is_err()
        {
            break true;
        }
        match stranger.try_recv() {
            Some(f) => {
                assert_eq!(
                    f.error(),
                    Some((ErrorCode::UnknownAgency as u8, 9)),
                    "{f:?}"
                );
                answered += 1;
            }
            None => break true,
        }
        if closed_within(&mut stranger.stream, Duration::from_millis(100)) {
            break true;
        }
        stranger.set_timeout(Duration::from_secs(10));
    };
    assert!(
        closed,
        "still open after {answered} UNKNOWN_AGENCY answers in 10 s (idle timeout 400 ms)"
    );
    assert!(answered > 0, "it was answered before it was closed");
    assert_alive_and_never_panicked(&mut central);
    assert!(
        central.logs().contains("| motivo: no progress for 400 ms"),
        "{}",
        central.logs()
    );
    util::report(format_args!(
        "a connection naming an unknown agency every 100 ms: {answered} answers, closed at the idle timeout of 400 ms"
    ));
}

// ---------------------------------------------------------------------------
// Misuse of the protocol: each answered with its documented ERROR, and the
// central keeps serving the same connection and others.

#[test]
fn an_agency_out_of_range_gets_unknown_agency_in_batch_done_and_get_winners() {
    let _serial = serial();
    let dir = temp_dir("misuse-agency");
    let mut central = Central::start(&dir, 3, &[]);
    let mut peer = central.connect();
    let mut answered = 0;
    for agency in [0, 4, 5, 1_000, u32::MAX] {
        peer.send(&batch_frame(agency, 0, &bets(0, 2)));
        expect_error(&mut peer, ErrorCode::UnknownAgency, agency, "BATCH");
        peer.send(&done_frame(agency, 0));
        expect_error(&mut peer, ErrorCode::UnknownAgency, agency, "DONE");
        for wait in [false, true] {
            // With wait = 1 it must not be parked: the answer comes at once.
            peer.send(&get_winners_frame(agency, wait));
            expect_error(&mut peer, ErrorCode::UnknownAgency, agency, "GET_WINNERS");
        }
        answered += 4;
    }
    // The same connection goes on, and nothing was stored for anyone.
    peer.send(&batch_frame(3, 0, &bets(0, 2)));
    expect_ack(&mut peer, 3, 2, "a valid batch after the errors");
    assert_eq!(central.bets_csv().lines().count(), 2);
    let mut other = central.connect();
    other.send(&done_frame(1, 0));
    expect_ack(&mut other, 1, 0, "another connection");
    assert_alive_and_never_panicked(&mut central);
    util::report(format_args!(
        "misuse: {answered} requests for agencies out of 1..=3 answered UNKNOWN_AGENCY"
    ));
}

#[test]
fn bets_after_done_get_agency_closed_and_nothing_is_stored() {
    let _serial = serial();
    let dir = temp_dir("misuse-closed");
    let mut central = Central::start(&dir, 2, &[]);
    let mut peer = central.connect();
    let stream = bets(0, 10);
    peer.send(&batch_frame(1, 0, &stream[..3]));
    expect_ack(&mut peer, 1, 3, "first batch");
    peer.send(&done_frame(1, 3));
    expect_ack(&mut peer, 1, 3, "DONE");
    let before = central.bets_csv();
    // New bets, a retry of stored ones, an overlap, a gap: all refused.
    for (first, range) in [(3, 3..6), (0, 0..3), (2, 2..5), (7, 7..9)] {
        peer.send(&batch_frame(1, first, &stream[range]));
        expect_error(&mut peer, ErrorCode::AgencyClosed, 3, "a batch after DONE");
    }
    assert_eq!(central.bets_csv(), before);
    // The same DONE again is acknowledged again.
    peer.send(&done_frame(1, 3));
    expect_ack(&mut peer, 1, 3, "a repeated DONE");
    // Another agency (over a connection of its own) is unaffected.
    let mut peer = central.connect();
    peer.send(&batch_frame(2, 0, &stream[..1]));
    expect_ack(&mut peer, 2, 1, "agency 2");
    assert_alive_and_never_panicked(&mut central);
    util::report(format_args!(
        "misuse: 4 batches after DONE answered AGENCY_CLOSED, nothing stored"
    ));
}

#[test]
fn a_done_with_the_wrong_total_gets_missing_bets_with_the_stored_count() {
    let _serial = serial();
    let dir = temp_dir("misuse-total");
    let mut central = Central::start(&dir, 2, &[]);
    let mut peer = central.connect();
    peer.send(&batch_frame(1, 0, &bets(0, 5)));
    expect_ack(&mut peer, 1, 5, "first batch");
    for total in [0, 4, 6, u32::MAX] {
        peer.send(&done_frame(1, total));
        expect_error(
            &mut peer,
            ErrorCode::MissingBets,
            5,
            "DONE with a wrong total",
        );
    }
    // Not closed by any of them: it still takes bets.
    peer.send(&batch_frame(1, 5, &bets(5, 1)));
    expect_ack(&mut peer, 1, 6, "a batch after the wrong DONEs");
    peer.send(&done_frame(1, 6));
    expect_ack(&mut peer, 1, 6, "the right DONE");
    // Once closed, a DONE with another total is still MISSING_BETS.
    peer.send(&done_frame(1, 7));
    expect_error(&mut peer, ErrorCode::MissingBets, 6, "DONE after DONE");
    assert!(
        !central.logs().contains("action: sorteo"),
        "agency 2 has not closed"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("bets.csv.journal")).unwrap(),
        "DONE 1 6\n"
    );
    assert_alive_and_never_panicked(&mut central);
    util::report(format_args!(
        "misuse: 5 DONEs with a wrong total answered MISSING_BETS with the stored count"
    ));
}

#[test]
fn a_batch_with_a_gap_gets_out_of_order_with_the_stored_count() {
    let _serial = serial();
    let dir = temp_dir("misuse-gap");
    let mut central = Central::start(&dir, 1, &[]);
    let mut peer = central.connect();
    let stream = bets(0, 10);
    peer.send(&batch_frame(1, 1, &stream[1..3]));
    expect_error(
        &mut peer,
        ErrorCode::OutOfOrder,
        0,
        "a first batch that skips bet 0",
    );
    peer.send(&batch_frame(1, 0, &stream[..3]));
    expect_ack(&mut peer, 1, 3, "the first batch");
    for first in [4, 9, u32::MAX - 1] {
        peer.send(&batch_frame(1, first, &stream[4..5]));
        expect_error(&mut peer, ErrorCode::OutOfOrder, 3, "a gap");
    }
    // Pipelined: a gap between two good batches refuses only itself.
    let mut three = batch_frame(1, 3, &stream[3..5]);
    three.extend(batch_frame(1, 6, &stream[6..7]));
    three.extend(batch_frame(1, 5, &stream[5..7]));
    peer.send(&three);
    expect_ack(&mut peer, 1, 5, "pipelined 1");
    expect_error(&mut peer, ErrorCode::OutOfOrder, 5, "pipelined gap");
    expect_ack(&mut peer, 1, 7, "pipelined 3");
    let documents: Vec<String> = central
        .bets_csv()
        .lines()
        .map(|l| l.split(',').nth(3).unwrap().to_owned())
        .collect();
    let sent: Vec<String> = stream[..7].iter().map(|b| b.document.clone()).collect();
    assert_eq!(documents, sent, "stored once each, in order");
    assert_alive_and_never_panicked(&mut central);
    util::report(format_args!(
        "misuse: 5 batches with a gap answered OUT_OF_ORDER with the stored count"
    ));
}

#[test]
fn a_frame_of_exactly_8192_bytes_is_taken_and_one_byte_more_is_too_large() {
    let _serial = serial();
    let dir = temp_dir("frame-limit");
    let mut central = Central::start(&dir, 1, &[]);
    // Bets whose frame is exactly the limit: pad the first name of the last.
    let mut stream = Vec::new();
    let mut size = wire::HEADER + wire::BATCH_PREFIX;
    for bet in bets(0, 1_000) {
        let len = bet.as_ref().encoded_len();
        if size + len > wire::MAX_FRAME {
            break;
        }
        size += len;
        stream.push(bet);
    }
    let frame = batch_frame(1, 0, &stream);
    let pad = wire::MAX_FRAME - frame.len();
    let last = stream.last_mut().unwrap();
    assert!(last.first_name.len() + pad <= 255);
    last.first_name.push_str(&"x".repeat(pad));
    let frame = batch_frame(1, 0, &stream);
    assert_eq!(frame.len(), wire::MAX_FRAME);
    let mut peer = central.connect();
    peer.send(&frame);
    expect_ack(&mut peer, 1, stream.len() as u32, "a frame of 8192 bytes");
    let mut too_large = central.connect();
    let mut frame = frame;
    frame[..2].copy_from_slice(&(wire::MAX_LEN as u16 + 1).to_be_bytes());
    frame.push(0);
    too_large.send(&frame);
    expect_error(
        &mut too_large,
        ErrorCode::TooLarge,
        wire::MAX_LEN as u32 + 1,
        "a frame of 8193 bytes",
    );
    assert!(too_large.closed_by_peer());
    assert_alive_and_never_panicked(&mut central);
}

#[test]
fn a_client_that_never_reads_its_answers_is_closed_and_its_memory_stays_bounded() {
    let _serial = serial();
    let dir = temp_dir("never-reads");
    let mut central = Central::start(&dir, 1, &[("IDLE_TIMEOUT_MS", "1000")]);
    let pid = central.child.id();
    let addr: SocketAddr = central.addr().parse().unwrap();
    let before = (vm_rss(pid).unwrap(), open_sockets(pid));
    let watch = MemoryWatch::start(pid);
    let started = Instant::now();
    let readers = 10;
    let attackers: Vec<_> = (0..readers)
        .map(|i| {
            std::thread::spawn(move || {
                let seen = attack(Hostile::NeverReads, addr, i, Duration::from_secs(120));
                (seen, started.elapsed())
            })
        })
        .collect();
    // An agency is served meanwhile.
    let mut peer = central.connect();
    for i in 0..20 {
        peer.send(&batch_frame(1, i * 5, &bets(i as u64 * 5, 5)));
        expect_ack(
            &mut peer,
            1,
            (i + 1) * 5,
            "an agency beside the non-readers",
        );
    }
    let served_after = started.elapsed();
    let ends: Vec<(Seen, Duration)> = attackers.into_iter().map(|t| t.join().unwrap()).collect();
    let samples = watch.finish();
    assert_alive_and_never_panicked(&mut central);
    let (peak_rss, peak_sockets) = samples
        .iter()
        .fold(before, |(r, s), &(r2, s2)| (r.max(r2), s.max(s2)));
    let held = peak_sockets.saturating_sub(before.1).max(1);
    let per_connection = peak_rss.saturating_sub(before.0) / held as u64;
    let last_closed = ends.iter().map(|e| e.1).max().unwrap();
    util::report(format_args!(
        "never reads: {readers} clients that pipeline requests and never read: all closed within {} ms | an agency's 20 batches beside them took {} ms | central memory {} KiB before, {} KiB at the peak with {held} more sockets: {per_connection} bytes per connection",
        last_closed.as_millis(),
        served_after.as_millis(),
        before.0 / 1024,
        peak_rss / 1024
    ));
    for (seen, _) in &ends {
        assert_eq!(*seen, Seen::Closed);
    }
    assert!(
        per_connection <= MEMORY_PER_CONNECTION,
        "{per_connection} bytes per connection"
    );
}

/// With fewer descriptors than `MAX_CONNECTIONS` (a container's limit of
/// 64 here), the connections beyond what the descriptors allow must still
/// be refused with a log line, not left hanging in the listen queue, and
/// the central must take new agencies as soon as descriptors free up.
#[test]
fn out_of_descriptors_the_excess_is_refused_and_freed_descriptors_are_used_again() {
    let _serial = serial();
    let dir = temp_dir("out-of-descriptors");
    let mut central = Central::start_with_fd_limit(&dir, 1, &[], 64);
    let mut peers: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(central.addr()).unwrap())
        .collect();
    let mut answered = Vec::new();
    let mut refused = 0;
    for (i, s) in peers.iter_mut().enumerate() {
        s.write_all(&done_frame(1, 0)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 64];
        match s.read(&mut b) {
            Ok(n) if n > 0 => answered.push(i),
            Ok(_) => refused += 1,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!(
                    "connection {i} was neither answered nor refused: {}",
                    central.logs()
                )
            }
            Err(_) => refused += 1,
        }
    }
    assert!(refused > 0 && !answered.is_empty());
    // A line each while the log budget lasts, then a summary with the count.
    let deadline = Instant::now() + Duration::from_secs(5);
    let logged = |logs: &str| {
        logs.matches("action: aceptar_conexion | result: fail | peer: ")
            .count()
            + suppressed_in(logs, "action: aceptar_conexion")
    };
    while logged(&central.logs()) < refused && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = central.logs();
    assert!(logged(&logs) >= refused, "{logs}");
    // Descriptors free up: the next agency is served, with no other
    // connection arriving to wake the listener.
    let pid = central.child.id();
    let held = open_sockets(pid);
    for &i in answered.iter().take(20) {
        peers[i].shutdown(Shutdown::Both).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while open_sockets(pid) > held - 20 {
        assert!(
            Instant::now() < deadline,
            "the central did not see the hang-ups"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut peer = central.connect();
    peer.set_timeout(Duration::from_secs(5));
    peer.send(&done_frame(1, 0));
    assert_eq!(peer.try_recv().and_then(|f| f.ack()), Some((1, 0)));
    assert_alive_and_never_panicked(&mut central);
    util::report(format_args!(
        "out of descriptors: {} answered, {refused} refused with a log line, served again once 20 hung up",
        answered.len()
    ));
}

/// A client that repeats cheap requests on one connection (and reads the
/// answers, so it is never idle) must not make the central write a log line
/// for each: 8 to 14 bytes of request become some 130 bytes of log, so a few
/// clients fill the disk that holds the log.
#[test]
fn repeated_requests_do_not_grow_the_log_with_each_request() {
    let _serial = serial();
    let dir = temp_dir("log-flood");
    let mut central = Central::start(&dir, 2, &[]);
    let requests = 20_000;
    let mut peer = central.connect();
    let mut growth = Vec::new();
    for (what, frame) in [
        ("DONE of an unknown agency", done_frame(9, 0)),
        ("a DONE with a wrong total", done_frame(1, 5)),
        ("GET_WINNERS after the draw", get_winners_frame(1, false)),
    ] {
        if what.starts_with("GET_WINNERS") {
            peer.send(&done_frame(1, 0));
            expect_ack(&mut peer, 1, 0, "DONE 1");
            let mut agency2 = central.connect();
            agency2.send(&done_frame(2, 0));
            expect_ack(&mut agency2, 2, 0, "DONE 2");
        }
        let before = std::fs::metadata(&central.log).unwrap().len();
        let burst: Vec<u8> = frame
            .iter()
            .copied()
            .cycle()
            .take(frame.len() * 100)
            .collect();
        for _ in 0..requests / 100 {
            peer.send(&burst);
            for _ in 0..100 {
                peer.recv();
            }
        }
        let after = std::fs::metadata(&central.log).unwrap().len();
        growth.push((what, (after - before) / requests as u64));
    }
    assert_alive_and_never_panicked(&mut central);
    util::report(format_args!(
        "log growth per repeated request: {}",
        growth
            .iter()
            .map(|(what, bytes)| format!("{what}: {bytes} bytes"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    for (what, bytes) in growth {
        assert!(bytes < 8, "{what}: {bytes} bytes of log per request");
    }
}
