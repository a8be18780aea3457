//! PostgreSQL servers a test starts on loopback (Debian's `postgresql`
//! package, as user `postgres`, data under a temporary directory), and the
//! agencies that drive a central over them while recording every ACK.

use std::collections::VecDeque;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lottery::bets::bet::Bet;
use lottery::wire::ErrorCode;
use postgres::{Client, NoTls};

use super::{
    Central, Peer, batch_frame, done_frame, free_port, get_winners_frame, numbered_bet, temp_dir,
};

/// Agencies of the lottery these tests run.
pub const AGENCIES: usize = 5;
// Within the protocol's 8 kB frame: about 37 bytes a bet here.
pub const BATCH: u64 = 200;
pub const WINDOW: usize = 4;

/// The directory of `initdb`, `pg_ctl`, `pg_basebackup`, or `None` (a
/// failure instead with `REQUIRE_POSTGRES=1`).
pub fn pg_bin(test: &str) -> Option<PathBuf> {
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
        super::report(format_args!(
            "postgres ({test}): skipped, no /usr/lib/postgresql/*/bin/initdb"
        ));
    }
    found
}

/// Runs a PostgreSQL program as user `postgres` (its servers refuse root).
pub fn as_postgres(bin: &Path, program: &str, args: &[&str]) -> std::process::Output {
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
pub struct PgRoot(pub PathBuf);

impl PgRoot {
    pub fn new(name: &str) -> PgRoot {
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
pub struct Pg {
    pub bin: PathBuf,
    pub data: PathBuf,
    pub port: u16,
    pub log: PathBuf,
}

impl Pg {
    /// A new primary: `initdb`, loopback only, replication allowed.
    pub fn primary(bin: &Path, root: &PgRoot, name: &str, sync_standby: Option<&str>) -> Pg {
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
    pub fn standby(bin: &Path, root: &PgRoot, name: &str, primary: &Pg) -> Pg {
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

    pub fn at(bin: &Path, root: &PgRoot, name: &str) -> Pg {
        Pg {
            bin: bin.to_owned(),
            data: root.0.join(name),
            port: free_port(),
            log: root.0.join(format!("{name}.log")),
        }
    }

    pub fn append_conf(&self, text: &str) {
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

    pub fn start(&self) {
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

    pub fn stop(&self) {
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

    pub fn promote(&self) {
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

    pub fn postmaster_pid(&self) -> i32 {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).unwrap();
        text.lines().next().unwrap().trim().parse().unwrap()
    }

    /// The server's processes: the postmaster and its children.
    pub fn processes(&self) -> Vec<(i32, String)> {
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
    pub fn kill(&self) {
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
    pub fn alone(&self) {
        let mut client = self.client();
        client
            .batch_execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            .unwrap();
        client.batch_execute("SELECT pg_reload_conf()").unwrap();
    }

    /// The standby's WAL receiver.
    pub fn wal_receiver(&self) -> i32 {
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

    pub fn client(&self) -> Client {
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
    pub fn stored(&self) -> Vec<u64> {
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

    pub fn closed(&self) -> Vec<bool> {
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

    pub fn url(&self) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a pid this test found among its own servers.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Both hosts, primary first: a central finds the read-write one itself.
pub fn both(primary: &Pg, standby: &Pg) -> String {
    format!(
        "postgresql://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write&connect_timeout=5",
        primary.port, standby.port
    )
}

// ---------------------------------------------------------------------------
// The agencies: drivers that record what the central acknowledged.

pub fn stream(agency: usize, total: u64) -> Vec<Bet> {
    (0..total)
        .map(|i| numbered_bet(agency as u64 * 10_000_000 + i, (i * 7 % 10_000) as u16))
        .collect()
}

/// What the centrals acknowledged, per agency (index 0 is agency 1). The
/// test holds the lock from a cut to the restart and bumps `generation`:
/// a driver records an ACK only under the lock and only from a connection
/// of the current generation, so what is recorded was acknowledged before
/// the cut.
#[derive(Debug, Default)]
pub struct Ledger {
    pub generation: u64,
    pub acked: Vec<u64>,
    pub done_acked: Vec<bool>,
    /// ACKs recorded, over the run.
    pub acks: u64,
    /// When each ACK was recorded (to measure a gap).
    pub ack_times: Vec<Instant>,
    /// `(agency, acked, told)`: a central told an agency a stored count
    /// below one it had been acknowledged.
    pub told_lower: Vec<(usize, u64, u64)>,
    /// Connections made, over the run.
    pub connections: u64,
}

/// How the agencies drive the centrals.
#[derive(Clone, Debug)]
pub struct Drive {
    /// The centrals' addresses; each new connection takes the next one.
    pub addrs: Vec<String>,
    /// Drop every connection once it is this old (moving the agency to the
    /// next address), whatever is in flight.
    pub cut_every: Option<Duration>,
    /// Per agency: send DONE once every bet is acknowledged (else the test
    /// sends it).
    pub done: Vec<bool>,
}

impl Drive {
    pub fn to(addr: &str, agencies: usize) -> Drive {
        Drive {
            addrs: vec![addr.to_string()],
            cut_every: None,
            done: vec![true; agencies],
        }
    }
}

pub struct Drivers {
    pub ledger: Arc<Mutex<Ledger>>,
    pub stop: Arc<AtomicBool>,
    pub threads: Vec<JoinHandle<()>>,
}

impl Drivers {
    pub fn start(addr: &str, streams: &[Arc<Vec<Bet>>]) -> Drivers {
        Drivers::start_with(Drive::to(addr, streams.len()), streams)
    }

    pub fn start_with(drive: Drive, streams: &[Arc<Vec<Bet>>]) -> Drivers {
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
                let (drive, bets) = (drive.clone(), bets.clone());
                let (ledger, stop) = (ledger.clone(), stop.clone());
                std::thread::spawn(move || agency(i + 1, &bets, &drive, &ledger, &stop))
            })
            .collect();
        Drivers {
            ledger,
            stop,
            threads,
        }
    }

    pub fn acked(&self) -> u64 {
        self.ledger.lock().unwrap().acked.iter().sum()
    }

    /// Waits until the agencies acknowledged `bets` in all (or closed).
    pub fn wait_acked(&self, bets: u64) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.acked() < bets && !self.all_closed() {
            assert!(Instant::now() < deadline, "no progress: {:?}", self.ledger);
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn all_closed(&self) -> bool {
        self.ledger.lock().unwrap().done_acked.iter().all(|&d| d)
    }

    /// Waits until every agency is closed, or, for those the test closes
    /// itself, has every bet acknowledged.
    pub fn finish_with(self, streams: &[Arc<Vec<Bet>>], done: &[bool], within: Duration) -> Ledger {
        let deadline = Instant::now() + within;
        loop {
            let finished = {
                let l = self.ledger.lock().unwrap();
                (0..streams.len()).all(|i| {
                    if done[i] {
                        l.done_acked[i]
                    } else {
                        l.acked[i] == streams[i].len() as u64
                    }
                })
            };
            if finished {
                return self.stop();
            }
            assert!(
                Instant::now() < deadline,
                "the agencies did not finish: {:?}",
                self.ledger.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn finish(self, within: Duration) -> Ledger {
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

    pub fn stop(self) -> Ledger {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("an agency driver panicked");
        }
        std::mem::take(&mut *self.ledger.lock().unwrap())
    }
}

#[derive(Clone, Copy, Debug)]
pub enum InFlight {
    Batch,
    Done,
}

/// One agency: its stream in batches, `WINDOW` in flight, then DONE;
/// connects again (to the next address) whenever the connection ends, is
/// cut, or the store refused, from the count it knows is acknowledged.
fn agency(agency: usize, bets: &[Bet], drive: &Drive, ledger: &Mutex<Ledger>, stop: &AtomicBool) {
    let i = agency - 1;
    let total = bets.len() as u64;
    let mut attempt = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let (generation, mut next, closed) = {
            let l = ledger.lock().unwrap();
            (l.generation, l.acked[i], l.done_acked[i])
        };
        if closed || (!drive.done[i] && next == total) {
            return;
        }
        let addr = &drive.addrs[attempt % drive.addrs.len()];
        attempt += 1;
        let Ok(stream) = TcpStream::connect(addr) else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        ledger.lock().unwrap().connections += 1;
        let opened = Instant::now();
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
            if drive
                .cut_every
                .is_some_and(|every| opened.elapsed() >= every)
            {
                break 'connection;
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
                if !drive.done[i] {
                    return;
                }
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
                if (stored as u64) < l.acked[i] {
                    let acked = l.acked[i];
                    l.told_lower.push((agency, acked, stored as u64));
                }
                l.acked[i] = l.acked[i].max(stored as u64);
                l.acks += 1;
                l.ack_times.push(Instant::now());
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
                        if (stored as u64) < l.acked[i] {
                            let acked = l.acked[i];
                            l.told_lower.push((agency, acked, stored as u64));
                        }
                        l.acked[i] = l.acked[i].min(stored as u64);
                        break 'connection;
                    }
                    Some((code, _))
                        if code == ErrorCode::Storage as u8
                            || code == ErrorCode::ShuttingDown as u8 =>
                    {
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
pub fn winners(addr: &str, agencies: u32) -> Vec<Vec<Vec<u8>>> {
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
pub fn csv_winners(name: &str, streams: &[Arc<Vec<Bet>>]) -> Vec<Vec<Vec<u8>>> {
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
pub fn assert_rows_are_the_streams(pg: &Pg, streams: &[Arc<Vec<Bet>>]) {
    assert_rows_of(&mut pg.client(), streams);
}

/// [`assert_rows_are_the_streams`] through any client of the database.
pub fn assert_rows_of(client: &mut Client, streams: &[Arc<Vec<Bet>>]) {
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
pub fn lost(acked: &[u64], held: &[u64]) -> u64 {
    acked
        .iter()
        .zip(held)
        .map(|(&a, &h)| a.saturating_sub(h))
        .sum()
}

/// The documents of an agency's WINNERS frames (their bodies), in order.
pub fn documents_of(frames: &[Vec<u8>]) -> Vec<String> {
    let mut out = Vec::new();
    for body in frames {
        let count = u16::from_be_bytes([body[9], body[10]]) as usize;
        let mut at = 11;
        for _ in 0..count {
            let len = body[at] as usize;
            out.push(String::from_utf8(body[at + 1..at + 1 + len].to_vec()).unwrap());
            at += 1 + len;
        }
    }
    out
}

/// The winning documents of each stream, in stream order: what every
/// agency must be answered, whichever central stored its bets.
pub fn expected_winners(streams: &[Arc<Vec<Bet>>], winning: u16) -> Vec<Vec<String>> {
    streams
        .iter()
        .map(|s| {
            s.iter()
                .filter(|b| b.number == winning)
                .map(|b| b.document.clone())
                .collect()
        })
        .collect()
}
