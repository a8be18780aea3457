//! `STORAGE=postgres://...`: the bets outlive the central's machine. Each
//! test starts its own PostgreSQL servers on loopback (Debian's
//! `postgresql` package, as user `postgres`, data under a temporary
//! directory), a primary and, where it matters, a standby made with
//! `pg_basebackup -R`.
//!
//! - Failover: 5 agencies (this test's drivers, which record every ACK)
//!   send 100,000 bets each; mid-ingest the primary is SIGKILLed and its
//!   data directory deleted, the synchronous standby promoted, the central
//!   SIGKILLed and a new one started in an empty directory with the same
//!   connection string (both hosts, `target_session_attrs=read-write`).
//!   0 acknowledged bets or DONEs lost, 0 stored twice, winners identical
//!   to a CSV run of the same bets.
//! - The controls: the same cut with an asynchronous standby whose WAL
//!   receiver is stopped (SIGSTOP) loses acknowledged bets (so the failover
//!   test can see a loss); with the synchronous standby stopped the same
//!   way, no ACK goes out and nothing is lost.
//! - The database down at start, down mid-run, refusing the credentials,
//!   holding a table of a foreign shape or another lottery: clear errors,
//!   nothing lost; a commit the database kept though it was reported
//!   failed is not stored twice; `lottery-export` writes the `bets.csv` of
//!   a CSV run of the same commits byte for byte.
//! - A group split over two sessions (`store::pg_sessions`) whose one share
//!   the engine refuses is reported failed, whether that share is the
//!   first or the second, though the other share committed.
//!
//! The servers run with `fsync = off`: the cuts are SIGKILLs, which leave
//! the kernel's page cache intact, so what these tests check is the
//! replication, not the disks (the benchmark, `bench/run.sh pg`, syncs).
//!
//! Without PostgreSQL's binaries (`/usr/lib/postgresql/*/bin/initdb`) the
//! tests say why and pass, unless `REQUIRE_POSTGRES=1` (as `.ci/run` sets).

mod util;

use std::collections::VecDeque;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lottery::bets::bet::Bet;
use lottery::store::pg_sessions::{Sessions, Split};
use lottery::wire::ErrorCode;
use postgres::{Client, NoTls};
use util::{
    Central, Peer, batch_frame, done_frame, free_port, get_winners_frame, numbered_bet, server_bin,
    temp_dir,
};

const AGENCIES: usize = 5;
// Within the protocol's 8 kB frame: about 37 bytes a bet here.
const BATCH: u64 = 200;
const WINDOW: usize = 4;

// ---------------------------------------------------------------------------
// PostgreSQL servers started by the test.

/// The directory of `initdb`, `pg_ctl`, `pg_basebackup`, or `None` (a
/// failure instead with `REQUIRE_POSTGRES=1`).
fn pg_bin(test: &str) -> Option<PathBuf> {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .max();
    if found.is_none() {
        assert!(
            std::env::var("REQUIRE_POSTGRES").as_deref() != Ok("1"),
            "REQUIRE_POSTGRES=1 but no /usr/lib/postgresql/*/bin/initdb (apt-get install postgresql)"
        );
        util::report(format_args!(
            "postgres ({test}): skipped, no /usr/lib/postgresql/*/bin/initdb"
        ));
    }
    found
}

/// Runs a PostgreSQL program as user `postgres` (its servers refuse root).
fn as_postgres(bin: &Path, program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(program))
        .args(args)
        .current_dir("/tmp")
        .stdin(Stdio::null())
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A directory the user `postgres` owns, for a test's servers.
struct PgRoot(PathBuf);

impl PgRoot {
    fn new(name: &str) -> PgRoot {
        let root = std::env::temp_dir().join(format!("lottery-pg-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        let ok = Command::new("chown")
            .args(["postgres:postgres", root.to_str().unwrap()])
            .status()
            .unwrap();
        assert!(ok.success());
        PgRoot(root)
    }
}

impl Drop for PgRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One PostgreSQL server (primary or standby).
struct Pg {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    log: PathBuf,
}

impl Pg {
    /// A new primary: `initdb`, loopback only, replication allowed.
    fn primary(bin: &Path, root: &PgRoot, name: &str, sync_standby: Option<&str>) -> Pg {
        let pg = Pg::at(bin, root, name);
        as_postgres(
            bin,
            "initdb",
            &[
                "-D",
                pg.data.to_str().unwrap(),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        let names = sync_standby.unwrap_or("");
        pg.append_conf(&format!(
            "wal_level = replica\nmax_wal_senders = 4\nsynchronous_commit = on\n\
             synchronous_standby_names = '{names}'\n"
        ));
        pg.start();
        pg
    }

    /// A standby of `primary` named `name` (its `application_name`).
    fn standby(bin: &Path, root: &PgRoot, name: &str, primary: &Pg) -> Pg {
        let pg = Pg::at(bin, root, name);
        let conninfo = format!(
            "host=127.0.0.1 port={} user=postgres application_name={name}",
            primary.port
        );
        as_postgres(
            bin,
            "pg_basebackup",
            &[
                "-d",
                &conninfo,
                "-D",
                pg.data.to_str().unwrap(),
                "-R",
                "-X",
                "stream",
                "--no-sync",
            ],
        );
        // Its own port, and the name the primary's
        // synchronous_standby_names knows it by (last setting wins).
        pg.append_conf(&format!("primary_conninfo = '{conninfo}'\n"));
        pg.start();
        pg
    }

    fn at(bin: &Path, root: &PgRoot, name: &str) -> Pg {
        Pg {
            bin: bin.to_owned(),
            data: root.0.join(name),
            port: free_port(),
            log: root.0.join(format!("{name}.log")),
        }
    }

    fn append_conf(&self, text: &str) {
        use std::io::Write;
        let socket_dir = self.data.parent().unwrap().display().to_string();
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))
            .unwrap();
        write!(
            f,
            "\nport = {}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{socket_dir}'\n\
             fsync = off\nmax_connections = 50\nshared_buffers = 64MB\n{text}",
            self.port
        )
        .unwrap();
    }

    fn start(&self) {
        as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-l",
                self.log.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    fn stop(&self) {
        as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-m",
                "fast",
                "-w",
                "stop",
            ],
        );
    }

    fn promote(&self) {
        as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                self.data.to_str().unwrap(),
                "-w",
                "-t",
                "60",
                "promote",
            ],
        );
    }

    fn postmaster_pid(&self) -> i32 {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap();
        text.lines().next().unwrap().trim().parse().unwrap()
    }

    /// The server's processes: the postmaster and its children.
    fn processes(&self) -> Vec<(i32, String)> {
        let postmaster = self.postmaster_pid();
        let mut out = vec![(postmaster, "postmaster".to_string())];
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // `pid (comm) state ppid ...`; comm may hold spaces.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
                continue;
            };
            let ppid: i32 = after.split(' ').nth(1).unwrap_or("0").parse().unwrap_or(0);
            if ppid == postmaster {
                let cmdline = std::fs::read_to_string(entry.path().join("cmdline"))
                    .unwrap_or_default()
                    .replace('\0', " ");
                out.push((pid, cmdline));
            }
        }
        out
    }

    /// SIGKILLs the postmaster and every child (a machine that dies).
    fn kill(&self) {
        for (pid, _) in self.processes() {
            signal(pid, libc::SIGKILL);
        }
        // Until the postmaster is gone, its port and files are in use.
        let postmaster = self.postmaster_pid();
        while Path::new(&format!("/proc/{postmaster}")).exists() {
            let stat =
                std::fs::read_to_string(format!("/proc/{postmaster}/stat")).unwrap_or_default();
            if stat.contains(") Z") {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = std::fs::remove_file(self.data.join("postmaster.pid"));
        // A dead machine's sockets go with it; left here, the lock file
        // would stop this server from starting again on its port.
        let sockets = self.data.parent().unwrap();
        for name in [
            format!(".s.PGSQL.{}", self.port),
            format!(".s.PGSQL.{}.lock", self.port),
        ] {
            let _ = std::fs::remove_file(sockets.join(name));
        }
    }

    /// A promoted standby carries on alone: it inherited the primary's
    /// `synchronous_standby_names` (`pg_basebackup` copies the settings),
    /// and would otherwise wait at every commit for a standby that is gone.
    fn alone(&self) {
        let mut client = self.client();
        client
            .batch_execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            .unwrap();
        client.batch_execute("SELECT pg_reload_conf()").unwrap();
    }

    /// The standby's WAL receiver.
    fn wal_receiver(&self) -> i32 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((pid, _)) = self
                .processes()
                .into_iter()
                .find(|(_, cmd)| cmd.contains("walreceiver"))
            {
                return pid;
            }
            assert!(Instant::now() < deadline, "no walreceiver");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn client(&self) -> Client {
        Client::connect(
            &format!(
                "host=127.0.0.1 port={} user=postgres dbname=postgres",
                self.port
            ),
            NoTls,
        )
        .unwrap()
    }

    /// The bets per agency the server holds (index 0 is agency 1).
    fn stored(&self) -> Vec<u64> {
        let mut out = vec![0; AGENCIES];
        for row in self
            .client()
            .query(
                "SELECT agency, count(*) FROM lottery.bets GROUP BY agency",
                &[],
            )
            .unwrap()
        {
            let (a, n): (i32, i64) = (row.get(0), row.get(1));
            out[a as usize - 1] = n as u64;
        }
        out
    }

    fn closed(&self) -> Vec<bool> {
        let mut out = vec![false; AGENCIES];
        for row in self
            .client()
            .query("SELECT agency FROM lottery.closed_agencies", &[])
            .unwrap()
        {
            let a: i32 = row.get(0);
            out[a as usize - 1] = true;
        }
        out
    }

    fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid this test found among its own servers.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Both hosts, primary first: a central finds the read-write one itself.
fn both(primary: &Pg, standby: &Pg) -> String {
    format!(
        "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&connect_timeout=5",
        primary.port, standby.port
    )
}

// ---------------------------------------------------------------------------
// The agencies: drivers that record what the central acknowledged.

fn stream(agency: usize, total: u64) -> Vec<Bet> {
    (0..total)
        .map(|i| numbered_bet(agency as u64 * 10_000_000 + i, (i * 7 % 10_000) as u16))
        .collect()
}

/// What the central acknowledged, per agency (index 0 is agency 1). The
/// test holds the lock from the cut to the restart and bumps `generation`:
/// a driver records an ACK only under the lock and only from a connection
/// of the current generation, so what is recorded was acknowledged before
/// the cut.
#[derive(Debug, Default)]
struct Ledger {
    generation: u64,
    acked: Vec<u64>,
    done_acked: Vec<bool>,
    /// ACKs recorded, over the run.
    acks: u64,
}

struct Drivers {
    ledger: Arc<Mutex<Ledger>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drivers {
    fn start(addr: &str, streams: &[Arc<Vec<Bet>>]) -> Drivers {
        let ledger = Arc::new(Mutex::new(Ledger {
            acked: vec![0; streams.len()],
            done_acked: vec![false; streams.len()],
            ..Ledger::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let threads = streams
            .iter()
            .enumerate()
            .map(|(i, bets)| {
                let (addr, bets) = (addr.to_string(), bets.clone());
                let (ledger, stop) = (ledger.clone(), stop.clone());
                std::thread::spawn(move || drive(i + 1, &bets, &addr, &ledger, &stop))
            })
            .collect();
        Drivers {
            ledger,
            stop,
            threads,
        }
    }

    fn acked(&self) -> u64 {
        self.ledger.lock().unwrap().acked.iter().sum()
    }

    /// Waits until the agencies acknowledged `bets` in all (or closed).
    fn wait_acked(&self, bets: u64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acked() < bets && !self.all_closed() {
            assert!(Instant::now() < deadline, "no progress: {:?}", self.ledger);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    fn all_closed(&self) -> bool {
        self.ledger.lock().unwrap().done_acked.iter().all(|&d| d)
    }

    fn finish(self, within: Duration) -> Ledger {
        let deadline = Instant::now() + within;
        while !self.all_closed() {
            assert!(
                Instant::now() < deadline,
                "the agencies did not finish: {:?}",
                self.ledger.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop()
    }

    fn stop(self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("an agency driver panicked");
        }
        std::mem::take(&mut *self.ledger.lock().unwrap())
    }
}

#[derive(Clone, Copy, Debug)]
enum InFlight {
    Batch,
    Done,
}

/// One agency: its stream in batches, `WINDOW` in flight, then DONE;
/// reconnects whenever the connection ends or the store refused, from the
/// count it knows is acknowledged.
fn drive(agency: usize, bets: &[Bet], addr: &str, ledger: &Mutex<Ledger>, stop: &AtomicBool) {
    let i = agency - 1;
    let total = bets.len() as u64;
    while !stop.load(Ordering::Relaxed) {
        let (generation, mut next, closed) = {
            let l = ledger.lock().unwrap();
            (l.generation, l.acked[i], l.done_acked[i])
        };
        if closed {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        }
        let Ok(stream) = TcpStream::connect(addr) else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let mut peer = Peer { stream };
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut done_sent = false;
        'connection: loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            while next < total && in_flight.len() < WINDOW {
                let end = (next + BATCH).min(total);
                let frame = batch_frame(
                    agency as u32,
                    next as u32,
                    &bets[next as usize..end as usize],
                );
                if std::io::Write::write_all(&mut peer.stream, &frame).is_err() {
                    break 'connection;
                }
                in_flight.push_back(InFlight::Batch);
                next = end;
            }
            if next == total && in_flight.is_empty() && !done_sent {
                if std::io::Write::write_all(
                    &mut peer.stream,
                    &done_frame(agency as u32, total as u32),
                )
                .is_err()
                {
                    break 'connection;
                }
                in_flight.push_back(InFlight::Done);
                done_sent = true;
            }
            let Some(frame) = peer.try_recv() else {
                // A close, or a commit waiting (a stopped standby): ask
                // again on a new connection, from what was acknowledged.
                break 'connection;
            };
            let mut l = ledger.lock().unwrap();
            if l.generation != generation {
                break 'connection;
            }
            let sent = in_flight.pop_front().expect("a reply to something sent");
            if let Some((a, stored)) = frame.ack() {
                assert_eq!(a as usize, agency);
                l.acked[i] = l.acked[i].max(stored as u64);
                l.acks += 1;
                if let InFlight::Done = sent {
                    assert_eq!(stored as u64, total);
                    l.done_acked[i] = true;
                    return;
                }
            } else {
                match frame.error() {
                    Some((code, stored))
                        if code == ErrorCode::OutOfOrder as u8
                            || code == ErrorCode::MissingBets as u8 =>
                    {
                        // A central that holds less lost ACKs (the test
                        // counts them at the cut): go on from its count.
                        l.acked[i] = l.acked[i].min(stored as u64);
                        break 'connection;
                    }
                    Some((code, _)) if code == ErrorCode::Storage as u8 => {
                        drop(l);
                        std::thread::sleep(Duration::from_millis(20));
                        break 'connection;
                    }
                    other => panic!("agency {agency}: unexpected reply {frame:?} ({other:?})"),
                }
            }
        }
    }
}

/// The winners of every agency as the central answers them (the WINNERS
/// frames' bodies).
fn winners(addr: &str, agencies: u32) -> Vec<Vec<Vec<u8>>> {
    (1..=agencies)
        .map(|agency| {
            let mut peer = Peer::connect(addr);
            peer.send(&get_winners_frame(agency, true));
            let mut frames = Vec::new();
            loop {
                let f = peer.recv();
                assert_eq!(f.kind, lottery::wire::kind::WINNERS, "{f:?}");
                let last = f.body[8] == 1;
                frames.push(f.body);
                if last {
                    break frames;
                }
            }
        })
        .collect()
}

/// The winners a CSV central answers for the same streams.
fn csv_winners(name: &str, streams: &[Arc<Vec<Bet>>]) -> Vec<Vec<Vec<u8>>> {
    let dir = temp_dir(name);
    let central = Central::start(&dir, AGENCIES as u32, &[]);
    let drivers = Drivers::start(&central.addr(), streams);
    drivers.finish(Duration::from_secs(300));
    let w = winners(&central.addr(), AGENCIES as u32);
    drop(central);
    let _ = std::fs::remove_dir_all(&dir);
    w
}

/// Each agency's rows in the database are its stream, position by position.
fn assert_rows_are_the_streams(pg: &Pg, streams: &[Arc<Vec<Bet>>]) {
    let mut client = pg.client();
    for (i, s) in streams.iter().enumerate() {
        let rows = client
            .query(
                "SELECT position, document, number FROM lottery.bets WHERE agency = $1 ORDER BY position",
                &[&(i as i32 + 1)],
            )
            .unwrap();
        assert_eq!(rows.len(), s.len(), "agency {}", i + 1);
        for (p, (row, bet)) in rows.iter().zip(s.iter()).enumerate() {
            let (position, document, number): (i64, &str, i16) =
                (row.get(0), row.get(1), row.get(2));
            assert_eq!(position as usize, p);
            assert_eq!(
                (document, number as u16),
                (bet.document.as_str(), bet.number)
            );
        }
    }
}

/// Acknowledged bets the server does not hold, summed over the agencies.
fn lost(acked: &[u64], held: &[u64]) -> u64 {
    acked
        .iter()
        .zip(held)
        .map(|(&a, &h)| a.saturating_sub(h))
        .sum()
}

// ---------------------------------------------------------------------------
// Failover and its controls.

#[test]
fn a_failover_to_the_synchronous_standby_loses_no_acknowledged_bet_and_stores_none_twice() {
    let Some(bin) = pg_bin("failover") else {
        return;
    };
    let per_agency: u64 = util::env_or("PG_BETS", 100_000);
    let streams: Vec<Arc<Vec<Bet>>> = (1..=AGENCIES)
        .map(|a| Arc::new(stream(a, per_agency)))
        .collect();
    let work = per_agency * AGENCIES as u64;
    let root = PgRoot::new("failover");
    let primary = Pg::primary(&bin, &root, "primary", Some("standby1"));
    let standby = Pg::standby(&bin, &root, "standby1", &primary);
    let url = both(&primary, &standby);
    let dir = temp_dir("pg-failover");
    let port = free_port();
    let first_dir = dir.join("first");
    std::fs::create_dir_all(&first_dir).unwrap();
    let mut central = Central::start_on(&first_dir, port, AGENCIES as u32, &[("STORAGE", &url)]);
    let drivers = Drivers::start(&central.addr(), &streams);
    drivers.wait_acked(work * 2 / 5);

    // The cut: no ACK is recorded from here to the restart.
    let mut l = drivers.ledger.lock().unwrap();
    l.generation += 1;
    let acked_at_cut = l.acked.clone();
    let done_at_cut = l.done_acked.clone();
    primary.kill();
    std::fs::remove_dir_all(&primary.data).unwrap();
    central.signal_and_wait("KILL", Duration::from_secs(10));
    standby.promote();
    standby.alone();
    let held = standby.stored();
    let closed = standby.closed();
    let lost_at_cut = lost(&acked_at_cut, &held);
    let dones_lost = done_at_cut
        .iter()
        .zip(&closed)
        .filter(|(d, c)| **d && !**c)
        .count();
    let empty = dir.join("second");
    std::fs::create_dir_all(&empty).unwrap();
    let central = Central::start_on(&empty, port, AGENCIES as u32, &[("STORAGE", &url)]);
    assert!(
        central
            .logs()
            .contains(&format!("apuestas: {}", held.iter().sum::<u64>())),
        "the new central resumes from the standby: {}",
        central.logs()
    );
    drop(l);
    let ledger = drivers.finish(Duration::from_secs(300));
    let final_held = standby.stored();
    let got = winners(&central.addr(), AGENCIES as u32);
    assert!(
        std::fs::read_dir(&empty)
            .unwrap()
            .flatten()
            .all(|e| e.file_name().to_string_lossy().starts_with("central")),
        "the central keeps no file of its own with STORAGE=postgres"
    );
    drop(central);
    let expected = csv_winners("pg-failover-csv", &streams);
    util::report(format_args!(
        "postgres failover: {work} bets, acked at the cut {} (DONEs {}), held by the promoted standby {}, \
         acked lost {lost_at_cut}, DONEs lost {dones_lost}, stored at the end {} (duplicates {}), ACKs {}",
        acked_at_cut.iter().sum::<u64>(),
        done_at_cut.iter().filter(|&&d| d).count(),
        held.iter().sum::<u64>(),
        final_held.iter().sum::<u64>(),
        final_held.iter().sum::<u64>() as i64 - work as i64,
        ledger.acks,
    ));
    assert_eq!(lost_at_cut, 0, "acked {acked_at_cut:?}, held {held:?}");
    assert_eq!(dones_lost, 0);
    assert_eq!(final_held, vec![per_agency; AGENCIES]);
    assert!(standby.closed().iter().all(|&c| c));
    assert_rows_are_the_streams(&standby, &streams);
    assert_eq!(got, expected, "winners differ from a CSV run");
    let _ = std::fs::remove_dir_all(&dir);
}

/// What a cut with the standby's WAL receiver stopped found.
struct Control {
    acked_at_stop: u64,
    acked_at_cut: u64,
    lost: u64,
}

/// Ingests, stops the standby's WAL receiver, lets the ingest go on a
/// while, then cuts (primary killed and deleted, central killed), and
/// brings the standby back (its WAL receiver's buffers die with it, as a
/// machine's would) and promotes it.
fn cut_with_the_standby_stopped(name: &str, sync: bool) -> Option<Control> {
    let bin = pg_bin(name)?;
    let per_agency: u64 = util::env_or("PG_CONTROL_BETS", 40_000);
    let streams: Vec<Arc<Vec<Bet>>> = (1..=AGENCIES)
        .map(|a| Arc::new(stream(a, per_agency)))
        .collect();
    let work = per_agency * AGENCIES as u64;
    let root = PgRoot::new(name);
    let primary = Pg::primary(&bin, &root, "primary", sync.then_some("standby1"));
    let standby = Pg::standby(&bin, &root, "standby1", &primary);
    let dir = temp_dir(name);
    let mut central = Central::start(
        &dir,
        AGENCIES as u32,
        &[("STORAGE", &both(&primary, &standby))],
    );
    let drivers = Drivers::start(&central.addr(), &streams);
    drivers.wait_acked(work / 10);
    let receiver = standby.wal_receiver();
    signal(receiver, libc::SIGSTOP);
    let acked_at_stop = drivers.acked();
    if sync {
        // Commits wait for the standby: give them time to go wrong.
        std::thread::sleep(Duration::from_secs(2));
    } else {
        drivers.wait_acked(acked_at_stop + work / 3);
    }
    let mut l = drivers.ledger.lock().unwrap();
    l.generation += 1;
    let acked: Vec<u64> = l.acked.clone();
    primary.kill();
    std::fs::remove_dir_all(&primary.data).unwrap();
    central.signal_and_wait("KILL", Duration::from_secs(10));
    standby.kill();
    standby.start();
    standby.promote();
    standby.alone();
    let held = standby.stored();
    drop(l);
    drivers.stop();
    let _ = std::fs::remove_dir_all(&dir);
    Some(Control {
        acked_at_stop,
        acked_at_cut: acked.iter().sum(),
        lost: lost(&acked, &held),
    })
}

#[test]
fn the_control_an_asynchronous_standby_cut_off_before_the_failover_loses_acknowledged_bets() {
    let Some(c) = cut_with_the_standby_stopped("pg-async", false) else {
        return;
    };
    util::report(format_args!(
        "postgres control (asynchronous standby, WAL receiver stopped): acked at the stop {}, at the cut {}, acked lost {}",
        c.acked_at_stop, c.acked_at_cut, c.lost
    ));
    assert!(
        c.lost > 0,
        "an asynchronous standby cut off must lose acknowledged bets, or the failover test is blind"
    );
}

#[test]
fn with_the_synchronous_standby_stopped_commits_wait_and_nothing_acknowledged_is_lost() {
    let Some(c) = cut_with_the_standby_stopped("pg-sync-stopped", true) else {
        return;
    };
    util::report(format_args!(
        "postgres control (synchronous standby, WAL receiver stopped): acked at the stop {}, at the cut {}, acked lost {}",
        c.acked_at_stop, c.acked_at_cut, c.lost
    ));
    assert_eq!(c.lost, 0);
    // Commits the standby had flushed before the stop may still be
    // acknowledged; nothing past them.
    assert!(
        c.acked_at_cut - c.acked_at_stop <= (WINDOW as u64 * BATCH) * AGENCIES as u64,
        "{} ACKs after the standby stopped",
        c.acked_at_cut - c.acked_at_stop
    );
}

// ---------------------------------------------------------------------------
// Failures: clear errors, nothing lost.

/// Runs the central until it exits (it must, at start): status and logs.
fn start_fails(dir: &Path, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = Command::new(server_bin());
    cmd.current_dir(dir)
        .env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", free_port().to_string())
        .env("AGENCIES", "5")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the central did not exit");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

#[test]
fn a_database_that_is_down_refuses_or_holds_foreign_tables_stops_the_start_with_a_clear_error() {
    let Some(bin) = pg_bin("start-errors") else {
        return;
    };
    let dir = temp_dir("pg-start-errors");
    // Down: nothing listens on the port.
    let down = format!("postgresql://postgres@127.0.0.1:{}/postgres", free_port());
    let (code, logs) = start_fails(&dir, &[("STORAGE", &down)]);
    assert_eq!(code, Some(1), "{logs}");
    assert!(
        logs.contains("action: iniciar | result: fail")
            && logs.contains("cannot connect to PostgreSQL at postgresql://postgres@127.0.0.1"),
        "{logs}"
    );

    let root = PgRoot::new("start-errors");
    let pg = Pg::primary(&bin, &root, "primary", None);
    let mut client = pg.client();
    // Refused credentials: a user that must give a password.
    client
        .batch_execute("CREATE ROLE clerk LOGIN PASSWORD 'right'")
        .unwrap();
    let hba = pg.data.join("pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all clerk 127.0.0.1/32 scram-sha-256\n{text}"),
    )
    .unwrap();
    client.batch_execute("SELECT pg_reload_conf()").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let wrong = format!("postgresql://clerk:wrong@127.0.0.1:{}/postgres", pg.port);
    let (code, logs) = start_fails(&dir, &[("STORAGE", &wrong)]);
    assert_eq!(code, Some(1), "{logs}");
    assert!(
        logs.contains("password authentication failed for user \"clerk\""),
        "{logs}"
    );
    assert!(
        !logs.contains("wrong"),
        "the password is never logged: {logs}"
    );

    // A `lottery.bets` of another program: refused, left as it was.
    client.batch_execute("CREATE DATABASE other; ").unwrap();
    let mut other = Client::connect(
        &format!("host=127.0.0.1 port={} user=postgres dbname=other", pg.port),
        NoTls,
    )
    .unwrap();
    other
        .batch_execute(
            "CREATE SCHEMA lottery; CREATE TABLE lottery.bets (id integer, payload text); \
             INSERT INTO lottery.bets VALUES (1, 'theirs')",
        )
        .unwrap();
    let foreign = format!("postgresql://postgres@127.0.0.1:{}/other", pg.port);
    let (code, logs) = start_fails(&dir, &[("STORAGE", &foreign)]);
    assert_eq!(code, Some(1), "{logs}");
    assert!(
        logs.contains("table lottery.bets is not one this central made")
            && logs.contains("columns (id integer, payload text)"),
        "{logs}"
    );
    let rows = other.query("SELECT * FROM lottery.bets", &[]).unwrap();
    assert_eq!(rows.len(), 1);
    let tables = other
        .query(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'lottery'",
            &[],
        )
        .unwrap();
    assert_eq!(tables[0].get::<_, i64>(0), 1, "nothing created beside it");

    // A lottery made for 5 agencies, opened for 3.
    let dir2 = dir.join("five");
    std::fs::create_dir_all(&dir2).unwrap();
    let central = Central::start(&dir2, 5, &[("STORAGE", &pg.url())]);
    drop(central);
    let (code, logs) = start_fails(&dir, &[("STORAGE", &pg.url()), ("AGENCIES", "3")]);
    assert_eq!(code, Some(1), "{logs}");
    assert!(
        logs.contains("holds another lottery")
            && logs.contains("AGENCIES=5")
            && logs.contains("AGENCIES=3"),
        "{logs}"
    );
    // A bad STORAGE is a configuration error.
    let (code, logs) = start_fails(&dir, &[("STORAGE", "mysql://x@y/z")]);
    assert_eq!(code, Some(2), "{logs}");
    assert!(logs.contains("STORAGE"), "{logs}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn ack_of(peer: &mut Peer) -> Result<u32, (u8, u32)> {
    let f = peer.recv();
    match f.ack() {
        Some((_, stored)) => Ok(stored),
        None => Err(f.error().expect("ACK or ERROR")),
    }
}

/// Sends `frame` until it is acknowledged (every refusal meanwhile an
/// `ERROR STORAGE`), at most `within`; the stored count acknowledged.
fn resend_until_acked(central: &Central, peer: &mut Peer, frame: &[u8], within: Duration) -> u32 {
    let deadline = Instant::now() + within;
    loop {
        peer.send(frame);
        match ack_of(peer) {
            Ok(stored) => return stored,
            Err((code, _)) => assert_eq!(code, ErrorCode::Storage as u8),
        }
        assert!(Instant::now() < deadline, "{}", central.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_database_down_mid_run_refuses_the_batches_logs_once_and_takes_them_when_back() {
    let Some(bin) = pg_bin("mid-run") else {
        return;
    };
    let root = PgRoot::new("mid-run");
    let pg = Pg::primary(&bin, &root, "primary", None);
    let dir = temp_dir("pg-mid-run");
    let central = Central::start(&dir, 2, &[("STORAGE", &pg.url())]);
    let bets = stream(1, 300);
    let mut peer = central.connect();
    peer.send(&batch_frame(1, 0, &bets[..100]));
    assert_eq!(ack_of(&mut peer), Ok(100));

    pg.stop();
    for _ in 0..4 {
        peer.send(&batch_frame(1, 100, &bets[100..200]));
        let (code, _) = ack_of(&mut peer).unwrap_err();
        assert_eq!(code, ErrorCode::Storage as u8);
    }
    // Reads are still served.
    peer.send(&get_winners_frame(1, false));
    assert_eq!(peer.recv().kind, lottery::wire::kind::NOT_READY);
    pg.start();
    let frame = batch_frame(1, 100, &bets[100..200]);
    let stored = resend_until_acked(&central, &mut peer, &frame, Duration::from_secs(60));
    assert_eq!(stored, 200);
    let logs = central.logs();
    assert_eq!(
        logs.matches("action: guardar_apuestas | result: fail")
            .count(),
        1,
        "once per incident: {logs}"
    );
    assert!(
        logs.contains("action: guardar_apuestas | result: success | reconectado: base_de_datos: postgresql://postgres@127.0.0.1"),
        "{logs}"
    );
    assert_eq!(pg.stored()[0], 200);
    drop(central);
}

#[test]
fn a_commit_the_database_kept_though_reported_failed_is_not_stored_twice() {
    let Some(bin) = pg_bin("ambiguous") else {
        return;
    };
    let root = PgRoot::new("ambiguous");
    let pg = Pg::primary(&bin, &root, "primary", None);
    let dir = temp_dir("pg-ambiguous");
    let central = Central::start(&dir, 1, &[("STORAGE", &pg.url())]);
    let bets = stream(1, 300);
    let mut peer = central.connect();
    peer.send(&batch_frame(1, 0, &bets[..100]));
    assert_eq!(ack_of(&mut peer), Ok(100));
    // The central's connection breaks, and bets 100..200 are in the
    // database as if the commit that broke had gone through.
    let mut client = pg.client();
    client
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )
        .unwrap();
    client
        .batch_execute(
            "INSERT INTO lottery.bets SELECT lottery, agency, position + 100, seq + 100, first_name, \
             last_name, document, birthdate, number FROM lottery.bets WHERE agency = 1",
        )
        .unwrap();
    let mut refusals = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let stored = loop {
        peer.send(&batch_frame(1, 100, &bets[100..200]));
        match ack_of(&mut peer) {
            Ok(stored) => break stored,
            Err((code, _)) => assert_eq!(code, ErrorCode::Storage as u8),
        }
        refusals += 1;
        assert!(Instant::now() < deadline, "{}", central.logs());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(stored, 200);
    assert!(refusals >= 1);
    peer.send(&batch_frame(1, 200, &bets[200..]));
    assert_eq!(ack_of(&mut peer), Ok(300));
    peer.send(&done_frame(1, 300));
    assert_eq!(ack_of(&mut peer), Ok(300));
    assert_eq!(pg.stored()[0], 300);
    drop(central);
    // A fresh central resumes from the database: the lottery is drawn.
    let again = temp_dir("pg-ambiguous-again");
    let central = Central::start(&again, 1, &[("STORAGE", &pg.url())]);
    assert!(
        central
            .logs()
            .contains("apuestas: 300 | agencias_cerradas: 1")
    );
    assert!(central.logs().contains("action: sorteo | result: success"));
}

#[test]
fn lottery_export_writes_the_bets_csv_of_a_csv_run_of_the_same_commits_byte_for_byte() {
    let Some(bin) = pg_bin("export") else {
        return;
    };
    let root = PgRoot::new("export");
    let pg = Pg::primary(&bin, &root, "primary", None);
    let csv_dir = temp_dir("pg-export-csv");
    let pg_dir = temp_dir("pg-export-pg");
    let csv = Central::start(&csv_dir, 3, &[]);
    let db = Central::start(&pg_dir, 3, &[("STORAGE", &pg.url())]);
    let mut streams: Vec<Vec<Bet>> = (1..=3).map(|a| stream(a, 1_000)).collect();
    // Names the CSV writer quotes.
    streams[1][3].first_name = "Pérez, \"hijo\"".into();
    streams[2][7].last_name = "O\"Brien".into();
    // Names a spreadsheet would run as formulas.
    streams[0][5].first_name = "=HYPERLINK(\"http://example.com/\",\"ver\")".into();
    streams[1][6].last_name = "+54 11".into();
    streams[2][8].first_name = "@SUM(A1:A9)".into();
    streams[2][9].last_name = "-Díaz".into();
    // The same commits in the same order: one batch at a time, agencies
    // interleaved, each answered before the next is sent.
    for central in [&csv, &db] {
        let mut peers: Vec<Peer> = (0..3).map(|_| central.connect()).collect();
        for start in (0..1_000).step_by(200) {
            for (a, peer) in peers.iter_mut().enumerate() {
                peer.send(&batch_frame(
                    a as u32 + 1,
                    start,
                    &streams[a][start as usize..start as usize + 200],
                ));
                assert_eq!(ack_of(peer), Ok(start + 200));
            }
        }
        for (a, peer) in peers.iter_mut().enumerate() {
            peer.send(&done_frame(a as u32 + 1, 1_000));
            assert_eq!(ack_of(peer), Ok(1_000));
        }
    }
    let out = pg_dir.join("exported.csv");
    // Someone else's link where the export used to write its temporary
    // file, and the common umask: the export follows no link and is
    // readable by its owner only.
    let victim = pg_dir.join("victim");
    std::fs::write(&victim, "not the export's").unwrap();
    std::os::unix::fs::symlink(&victim, pg_dir.join("exported.csv.tmp")).unwrap();
    // SAFETY: umask only sets this process's mask, which lottery-export inherits.
    unsafe { libc::umask(0o022) };
    let export = |storage: &str, args: &[&std::ffi::OsStr]| {
        let status = Command::new(server_bin().with_file_name("lottery-export"))
            .env("STORAGE", storage)
            .env("BETS_FILE", csv_dir.join("bets.csv"))
            .args(args)
            .status()
            .unwrap();
        assert!(status.success(), "lottery-export {args:?}");
    };
    export(&pg.url(), &["--out".as_ref(), out.as_os_str()]);
    let exported = std::fs::read(&out).unwrap();
    let written = std::fs::read(csv_dir.join("bets.csv")).unwrap();
    assert_eq!(exported.len(), written.len());
    assert!(exported == written, "lottery-export differs from bets.csv");
    assert_eq!(winners(&db.addr(), 3), winners(&csv.addr(), 3));
    assert!(
        std::fs::read_to_string(&victim).unwrap() == "not the export's",
        "the export wrote through the link planted at its old temporary path"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{mode:o}");
    }

    // `--spreadsheet-safe`: the same rows from either store, a `'` before
    // each name that starts a formula.
    let (safe_pg, safe_csv) = (pg_dir.join("safe-pg.csv"), pg_dir.join("safe-csv.csv"));
    let safe: &std::ffi::OsStr = "--spreadsheet-safe".as_ref();
    export(&pg.url(), &[safe, "--out".as_ref(), safe_pg.as_os_str()]);
    export("csv", &[safe, "--out".as_ref(), safe_csv.as_os_str()]);
    let safe_rows = std::fs::read_to_string(&safe_pg).unwrap();
    assert!(safe_rows == std::fs::read_to_string(&safe_csv).unwrap());
    for name in [
        "\"'=HYPERLINK(\"\"http://example.com/\"\",\"\"ver\"\")\"",
        ",'+54 11,",
        ",'@SUM(A1:A9),",
        ",'-Díaz,",
    ] {
        assert!(safe_rows.contains(name), "no {name:?} in the safe export");
    }
    let plain = String::from_utf8(written).unwrap();
    assert_eq!(safe_rows.replace(",'", ",").replace(",\"'", ",\""), plain);
}

/// One tuple `(agency, position)` of a binary `COPY` of two integers.
fn push_pair(out: &mut Vec<u8>, agency: u32, position: u32) {
    out.extend_from_slice(&2i16.to_be_bytes());
    for value in [agency, position] {
        out.extend_from_slice(&4i32.to_be_bytes());
        out.extend_from_slice(&value.to_be_bytes());
    }
}

#[test]
fn a_group_whose_one_share_the_engine_refuses_is_reported_failed_whichever_share_it_is() {
    let Some(bin) = pg_bin("one share refused") else {
        return;
    };
    let root = PgRoot::new("one-share");
    let pg = Pg::primary(&bin, &root, "primary", None);
    // The engine refuses agency 2's rows and takes agency 1's.
    pg.client()
        .batch_execute(
            "CREATE TABLE shares (agency integer NOT NULL CHECK (agency <> 2), \
             position integer NOT NULL)",
        )
        .unwrap();
    let config: tokio_postgres::Config = pg.url().parse().unwrap();
    let copy = "COPY shares (agency, position) FROM STDIN (FORMAT binary)";
    // No close is staged, so this is never sent.
    let closes = "SELECT $1::integer, $2::integer[], $3::bigint[]";
    // The first agency of a group takes share 0 and the second share 1: the
    // refused rows are in the first share, then in the second.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (round, first) in [1u32, 2].into_iter().enumerate() {
        let mut sessions = runtime.block_on(Sessions::connect(&config)).unwrap();
        let mut split = Split::new(2);
        for agency in [first, 3 - first] {
            // Position 0: no bet before it to check for.
            split.push_row(agency, 0, |out| push_pair(out, agency, round as u32));
        }
        assert!(split.shares().iter().all(|s| s.rows() == 1));
        let committed = runtime.block_on(sessions.commit(&mut split, copy, closes, 1));
        assert!(
            committed.is_err(),
            "agency {} first: a group with a refused share was reported committed",
            first
        );
    }
    // Each time the other share went through: the store re-reads what the
    // database holds after a failed group (a_commit_the_database_kept_...).
    let held: Vec<(i32, i64)> = pg
        .client()
        .query("SELECT agency, count(*) FROM shares GROUP BY agency", &[])
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    assert_eq!(held, vec![(1, 2)]);
}

// ---------------------------------------------------------------------------
// The loop never waits for the database, and never acknowledges past a
// database that was set back.

/// Stops (SIGSTOP) or resumes (SIGCONT) every process of a server.
fn freeze(pg: &Pg, sig: i32) {
    for (pid, _) in pg.processes() {
        signal(pid, sig);
    }
}

/// A server's processes stopped (SIGSTOP) until this is dropped, so a
/// failing test leaves nothing frozen behind.
struct Frozen<'a>(&'a Pg);

impl<'a> Frozen<'a> {
    fn new(pg: &'a Pg) -> Frozen<'a> {
        freeze(pg, libc::SIGSTOP);
        Frozen(pg)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        freeze(self.0, libc::SIGCONT);
    }
}

/// Waits until one of the primary's sessions waits for its synchronous
/// standby (`wait_event = 'SyncRep'`): a commit is under way and stuck.
fn wait_for_sync_rep(primary: &Pg) {
    let mut client = primary.client();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let waiting: i64 = client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'SyncRep'",
                &[],
            )
            .unwrap()
            .get(0);
        if waiting > 0 {
            return;
        }
        assert!(Instant::now() < deadline, "no commit waits for the standby");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls the central's log for `needle`, at most `within`.
fn wait_for_log(central: &Central, needle: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let logs = central.logs();
        if logs.contains(needle) {
            return logs;
        }
        assert!(
            Instant::now() < deadline,
            "no `{needle}` in the central's log: {logs}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stalled_synchronous_standby_holds_only_the_waiting_group_and_sigterm_still_ends_the_central() {
    let Some(bin) = pg_bin("stall") else {
        return;
    };
    let root = PgRoot::new("stall");
    let primary = Pg::primary(&bin, &root, "primary", Some("standby1"));
    let standby = Pg::standby(&bin, &root, "standby1", &primary);
    let dir = temp_dir("pg-stall");
    let mut central = Central::start(&dir, 3, &[("STORAGE", &primary.url())]);
    let bets = stream(1, 200);
    let mut agency1 = central.connect();
    agency1.send(&batch_frame(1, 0, &bets[..100]));
    assert_eq!(ack_of(&mut agency1), Ok(100));

    let frozen = Frozen::new(&standby);
    agency1.send(&batch_frame(1, 100, &bets[100..]));
    wait_for_sync_rep(&primary);
    // While that commit waits, the central serves everyone else: a new
    // connection is accepted, a read answered, a stranger refused.
    let answered_within = Duration::from_secs(1);
    let mut agency2 = central.connect();
    agency2.set_timeout(answered_within);
    let asked = Instant::now();
    agency2.send(&get_winners_frame(2, false));
    let reply = agency2.try_recv();
    let waited = asked.elapsed();
    assert_eq!(
        reply.map(|f| f.kind),
        Some(lottery::wire::kind::NOT_READY),
        "GET_WINNERS(agency 2, wait=0) not answered within {answered_within:?} while a commit waits: {}",
        central.logs()
    );
    let mut stranger = central.connect();
    stranger.set_timeout(answered_within);
    stranger.send(&get_winners_frame(99, false));
    let refusal = stranger.try_recv().and_then(|f| f.error());
    assert_eq!(
        refusal.map(|(code, _)| code),
        Some(ErrorCode::UnknownAgency as u8)
    );
    // The stall is logged once, with its likely cause.
    let logs = wait_for_log(&central, "error: COMMIT_STALLED", Duration::from_secs(10));
    let stalled: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("COMMIT_STALLED"))
        .collect();
    assert_eq!(stalled.len(), 1, "{logs}");
    assert!(
        stalled[0].contains("action: guardar_apuestas | result: fail")
            && stalled[0].contains("synchronous replication")
            && stalled[0].contains("standby1"),
        "{}",
        stalled[0]
    );
    // The waiting group is not acknowledged.
    agency1.set_timeout(Duration::from_millis(200));
    assert_eq!(
        agency1.try_recv(),
        None,
        "an ACK while the standby is stopped"
    );

    let asked = Instant::now();
    let status = central.signal_and_wait("TERM", Duration::from_secs(8));
    let exited_in = asked.elapsed();
    assert!(status.success(), "{status}: {}", central.logs());
    agency1.set_timeout(Duration::from_secs(5));
    if let Some(f) = agency1.try_recv() {
        assert_eq!(
            f.error().map(|(code, _)| code),
            Some(ErrorCode::Storage as u8),
            "the group under way at SIGTERM is answered ERROR STORAGE, never ACKed"
        );
    }
    drop(frozen);
    util::report(format_args!(
        "postgres stall: GET_WINNERS answered in {} ms while a commit waited; SIGTERM ended the central in {} ms",
        waited.as_millis(),
        exited_in.as_millis()
    ));
    // After the thaw everything acknowledged is there, and a new central
    // goes on from it.
    assert!(primary.stored()[0] >= 100);
    let again = temp_dir("pg-stall-again");
    let central = Central::start(&again, 3, &[("STORAGE", &primary.url())]);
    let mut agency1 = central.connect();
    let frame = batch_frame(1, 100, &bets[100..]);
    let stored = resend_until_acked(&central, &mut agency1, &frame, Duration::from_secs(30));
    assert_eq!(stored, 200);
    assert_eq!(primary.stored()[0], 200);
}

/// A central on a lone primary with agency 1's bets `0..200` acknowledged.
fn set_back_setup(name: &str) -> Option<(PgRoot, Pg, Central, Peer, Vec<Bet>)> {
    let bin = pg_bin(name)?;
    let root = PgRoot::new(name);
    let pg = Pg::primary(&bin, &root, "primary", None);
    let dir = temp_dir(&format!("pg-{name}"));
    let central = Central::start(&dir, 2, &[("STORAGE", &pg.url())]);
    let bets = stream(1, 300);
    let mut peer = central.connect();
    peer.send(&batch_frame(1, 0, &bets[..100]));
    assert_eq!(ack_of(&mut peer), Ok(100));
    peer.send(&batch_frame(1, 100, &bets[100..200]));
    assert_eq!(ack_of(&mut peer), Ok(200));
    Some((root, pg, central, peer, bets))
}

/// Sends `frame` until the central stops; panics on any ACK.
fn never_acked_until_it_stops(central: &mut Central, peer: &mut Peer, frame: &[u8]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        peer.set_timeout(Duration::from_secs(5));
        let _ = peer.stream.write_all(frame);
        match peer.try_recv() {
            Some(f) => {
                assert_eq!(
                    f.ack(),
                    None,
                    "acknowledged after the database was set back: {}",
                    central.logs()
                );
            }
            None => {
                *peer = match TcpStream::connect(central.addr()) {
                    Ok(stream) => Peer { stream },
                    Err(_) => break,
                };
            }
        }
        if !central.is_running() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the central goes on after the database was set back: {}",
            central.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = central.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "{}", central.logs());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(!status.success(), "{status}: {}", central.logs());
    let logs = central.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("action: guardar_apuestas | result: fail")
                && l.contains("acknowledges nothing more")),
        "{logs}"
    );
    logs
}

#[test]
fn a_batch_after_the_database_lost_acknowledged_bets_is_never_acked_and_the_central_stops() {
    let Some((_root, pg, mut central, mut peer, bets)) = set_back_setup("set-back-batch") else {
        return;
    };
    pg.client()
        .batch_execute("DELETE FROM lottery.bets WHERE agency = 1 AND position >= 150")
        .unwrap();
    let logs =
        never_acked_until_it_stops(&mut central, &mut peer, &batch_frame(1, 200, &bets[200..]));
    assert!(logs.contains("does not hold bet 199 of agency 1"), "{logs}");
    assert_eq!(pg.stored()[0], 150, "nothing written past the hole");
}

#[test]
fn a_done_after_the_database_lost_acknowledged_bets_is_never_acked_and_the_central_stops() {
    let Some((_root, pg, mut central, mut peer, _)) = set_back_setup("set-back-done") else {
        return;
    };
    pg.client()
        .batch_execute("DELETE FROM lottery.bets WHERE agency = 1 AND position >= 150")
        .unwrap();
    never_acked_until_it_stops(&mut central, &mut peer, &done_frame(1, 200));
    assert_eq!(pg.closed(), vec![false; AGENCIES]);
}

#[test]
fn a_database_found_set_back_at_a_reconnect_stops_the_central_and_nothing_more_is_acked() {
    let Some((_root, pg, mut central, mut peer, bets)) = set_back_setup("set-back-reconnect")
    else {
        return;
    };
    let mut client = pg.client();
    client
        .batch_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
        )
        .unwrap();
    client
        .batch_execute("DELETE FROM lottery.bets WHERE agency = 1 AND position >= 150")
        .unwrap();
    let logs =
        never_acked_until_it_stops(&mut central, &mut peer, &batch_frame(1, 200, &bets[200..]));
    assert!(
        logs.contains("was set back: agency 1 has 150 bets where 200 were stored"),
        "{logs}"
    );
    assert_eq!(pg.stored()[0], 150, "nothing written past the hole");
}

/// Starts `n` centrals on `url` at the same moment (their processes
/// spawned together), each in a directory of its own.
fn start_together(name: &str, n: usize, url: &str) -> Vec<Central> {
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let starts: Vec<_> = (0..n)
        .map(|i| {
            let (url, barrier) = (url.to_string(), Arc::clone(&barrier));
            let dir = temp_dir(&format!("pg-{name}-{i}"));
            std::thread::spawn(move || {
                barrier.wait();
                Central::start(&dir, 3, &[("STORAGE", &url)])
            })
        })
        .collect();
    starts.into_iter().map(|s| s.join().unwrap()).collect()
}

#[test]
fn centrals_started_at_once_on_an_empty_database_all_come_up_and_serve() {
    let Some(bin) = pg_bin("many-at-once") else {
        return;
    };
    let root = PgRoot::new("many-at-once");
    let pg = Pg::primary(&bin, &root, "primary", None);
    // Each round on an empty database: every central makes the schema if
    // it is missing, all at the same moment.
    for round in 0..5 {
        pg.client()
            .batch_execute("DROP SCHEMA IF EXISTS lottery CASCADE")
            .unwrap();
        let centrals = start_together(&format!("many-at-once-{round}"), 6, &pg.url());
        for (i, central) in centrals.iter().enumerate() {
            let mut peer = central.connect();
            peer.send(&get_winners_frame(i as u32 % 3 + 1, false));
            assert_eq!(
                peer.recv().kind,
                lottery::wire::kind::NOT_READY,
                "{}",
                central.logs()
            );
        }
        let bets = stream(1, 100);
        let mut peer = centrals[round].connect();
        peer.send(&batch_frame(1, 0, &bets));
        assert_eq!(ack_of(&mut peer), Ok(100));
        assert_eq!(pg.stored()[0], 100);
    }
}
