//! Helpers shared by the integration tests: where the built binaries are,
//! free ports, temporary directories, the course dataset.
#![allow(dead_code)]

pub mod formation;
pub mod pg;

use std::path::{Path, PathBuf};

/// The central's binary, built by cargo for this test run, or the one
/// `LOTTERY_SERVER_BIN` names: to run a suite against another build (an
/// older one, to see a guard fail without the change it guards).
pub fn server_bin() -> PathBuf {
    match std::env::var_os("LOTTERY_SERVER_BIN") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(env!("CARGO_BIN_EXE_lottery-server")),
    }
}

/// The agency's binary. It belongs to another package of the workspace, so
/// `make test` builds it first (`cargo build --workspace`) into the same
/// target directory as the central's.
pub fn client_bin() -> PathBuf {
    let path = server_bin().with_file_name("lottery-client");
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (make test does)",
        path.display()
    );
    path
}

/// A port that was free a moment ago on 127.0.0.1.
pub fn free_port() -> u16 {
    lottery::support::loopback::free_port().unwrap()
}

/// A fresh empty directory under the target directory, named for the test.
pub fn temp_dir(name: &str) -> PathBuf {
    let base = server_bin()
        .parent()
        .unwrap()
        .join("test-tmp")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    std::fs::create_dir_all(&base).unwrap();
    base
}

/// The course dataset (`shared/data/dataset.zip` beside the repository), if present.
pub fn course_dataset() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let zip = root.join("../shared/data/dataset.zip");
    zip.exists().then_some(zip)
}

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A central running as a child process; killed when dropped.
pub struct Central {
    pub child: Child,
    pub port: u16,
    pub dir: PathBuf,
    pub log: PathBuf,
}

impl Central {
    /// Starts `lottery-server` in `dir` with `AGENCIES=agencies`, the bets file
    /// in `dir`, and extra environment `env`; waits until it accepts.
    pub fn start(dir: &Path, agencies: u32, env: &[(&str, &str)]) -> Central {
        Central::start_on(dir, free_port(), agencies, env)
    }

    pub fn start_on(dir: &Path, port: u16, agencies: u32, env: &[(&str, &str)]) -> Central {
        let (cmd, log) = Central::command(dir, port, agencies, env);
        Central::launch(cmd, dir, port, log)
    }

    /// The central's command line: loopback, `port`, `AGENCIES=agencies`,
    /// the bets file in `dir`, INFO logs to a fresh file (returned), `env` last.
    fn command(dir: &Path, port: u16, agencies: u32, env: &[(&str, &str)]) -> (Command, PathBuf) {
        let log = unique(&dir.join("central"));
        let mut cmd = Command::new(server_bin());
        cmd.current_dir(dir)
            .env_clear()
            .env("SERVER_IP", "127.0.0.1")
            .env("SERVER_PORT", port.to_string())
            .env("AGENCIES", agencies.to_string())
            .env("BETS_FILE", dir.join("bets.csv"))
            .env("LOGGING_LEVEL", "INFO")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        (cmd, log)
    }

    /// Spawns `cmd` and waits until the central listens.
    fn launch(mut cmd: Command, dir: &Path, port: u16, log: PathBuf) -> Central {
        let child = cmd.spawn().expect("start lottery-server");
        let mut central = Central {
            child,
            port,
            dir: dir.to_owned(),
            log,
        };
        central.wait_listening();
        central
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the central exited at start with {status}: {}", self.logs());
            }
            if self.logs().contains("action: escuchar | result: success") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("the central did not start listening: {}", self.logs());
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn connect(&self) -> Peer {
        Peer::connect(&self.addr())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` and waits for the exit status (at most `within`).
    pub fn signal_and_wait(&mut self, signal: &str, within: Duration) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the central did not exit after {signal}: {}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn bets_csv(&self) -> String {
        std::fs::read_to_string(self.dir.join("bets.csv")).unwrap_or_default()
    }
}

impl Drop for Central {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unique(path: &Path) -> PathBuf {
    let mut n = 0;
    loop {
        let candidate = path.with_extension(format!("{n}.log"));
        if !candidate.exists() {
            return candidate;
        }
        n += 1;
    }
}

/// A frame as a test sees it: the type byte and the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub kind: u8,
    pub body: Vec<u8>,
}

impl RawFrame {
    pub fn u32_at(&self, at: usize) -> u32 {
        u32::from_be_bytes(self.body[at..at + 4].try_into().unwrap())
    }
}

/// A raw protocol peer over a blocking socket, for driving the central byte by byte.
pub struct Peer {
    pub stream: TcpStream,
}

impl Peer {
    pub fn connect(addr: &str) -> Peer {
        let stream = TcpStream::connect(addr).expect("connect to the central");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Peer { stream }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    /// Reads one whole frame; panics on timeout or close.
    pub fn recv(&mut self) -> RawFrame {
        self.try_recv().expect("a frame from the central")
    }

    /// Reads one whole frame, or `None` if the connection closed or timed out.
    pub fn try_recv(&mut self) -> Option<RawFrame> {
        let mut len = [0u8; 2];
        self.stream.read_exact(&mut len).ok()?;
        let len = u16::from_be_bytes(len) as usize;
        let mut rest = vec![0u8; len];
        self.stream.read_exact(&mut rest).ok()?;
        Some(RawFrame {
            kind: rest[0],
            body: rest[1..].to_vec(),
        })
    }

    /// Whether the central closed the connection (reads EOF within the timeout).
    pub fn closed_by_peer(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0) | Err(_))
    }

    pub fn set_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).unwrap();
    }
}

/// The synthetic data generator of `bench/` (built by `make test` with the workspace).
pub fn gen_bin() -> PathBuf {
    let path = server_bin().with_file_name("lottery-gen");
    assert!(
        path.exists(),
        "{} is missing: build the workspace first",
        path.display()
    );
    path
}

/// Writes `agencies` synthetic agency files of `bets` bets into `dir`
/// and returns the expected winners per agency (index 0 is agency 1).
pub fn generate(dir: &Path, agencies: u32, bets: u32, seed: u64) -> Vec<u32> {
    let status = Command::new(gen_bin())
        .args([
            "--agencies",
            &agencies.to_string(),
            "--bets",
            &bets.to_string(),
        ])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(dir.join("expected-winners.txt")).unwrap();
    let mut winners = vec![0; agencies as usize];
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut words = line.split_whitespace();
        let agency: usize = words.next().unwrap().parse().unwrap();
        winners[agency - 1] = words.next().unwrap().parse().unwrap();
    }
    winners
}

/// Unzips the course dataset into `dir` (agency-1.csv ..= agency-5.csv).
pub fn unzip_course_dataset(zip: &Path, dir: &Path) {
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])",
        ])
        .arg(zip)
        .arg(dir)
        .status()
        .expect("python3 unzips the dataset");
    assert!(status.success());
}

/// An agency running as a child process; killed when dropped.
pub struct Agency {
    pub id: u32,
    pub child: Child,
    pub log: PathBuf,
}

impl Agency {
    /// Starts `lottery-client` as agency `id` against `addr`, reading `data`.
    pub fn start(dir: &Path, id: u32, addr: &str, data: &Path, env: &[(&str, &str)]) -> Agency {
        let log = unique(&dir.join(format!("agency-{id}")));
        let mut cmd = Command::new(client_bin());
        cmd.current_dir(dir)
            .env_clear()
            .env("CLI_ID", id.to_string())
            .env("CLI_SERVER_ADDRESS", addr)
            .env("CLI_DATA_FILE", data)
            .env("CLI_BATCH_MAXAMOUNT", "100")
            .env("CLI_LOG_LEVEL", "INFO")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Agency {
            id,
            child: cmd.spawn().expect("start lottery-client"),
            log,
        }
    }

    /// Waits for the agency to exit (at most `within`); returns its exit code
    /// and the winner count it logged, if any.
    pub fn finish(&mut self, within: Duration) -> (Option<i32>, Option<u32>) {
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "agency {} did not finish: {}",
                self.id,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let winners = self
            .logs()
            .lines()
            .rev()
            .find_map(|l| {
                l.split("action: consulta_ganadores | result: success | cant_ganadores: ")
                    .nth(1)
            })
            .map(|n| n.trim().parse().unwrap());
        (status.code(), winners)
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Agency {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads a CSV file (no header) into rows of fields.
pub fn read_csv(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// Checks that `bets.csv` holds exactly each agency's rows, in its order,
/// with the agency number in front; `files[i]` is agency i+1's file.
pub fn assert_bets_file_is_the_union(bets_csv: &Path, files: &[PathBuf]) {
    let stored = read_csv(bets_csv);
    let mut by_agency: Vec<Vec<Vec<String>>> = vec![Vec::new(); files.len()];
    for row in stored {
        let agency: usize = row[0].parse().unwrap();
        by_agency[agency - 1].push(row[1..].to_vec());
    }
    for (i, file) in files.iter().enumerate() {
        let sent = read_csv(file);
        let got = &by_agency[i];
        assert_eq!(
            got.len(),
            sent.len(),
            "agency {}: stored {} of {} bets",
            i + 1,
            got.len(),
            sent.len()
        );
        assert!(
            got == &sent,
            "agency {}: stored rows differ from its file",
            i + 1
        );
    }
}

/// The sum of `cantidad` over the central's `apuesta_recibida` success lines.
pub fn stored_in_logs(logs: &str) -> u64 {
    logs.lines()
        .filter_map(|l| {
            l.split("action: apuesta_recibida | result: success | cantidad: ")
                .nth(1)
        })
        .map(|n| n.trim().parse::<u64>().unwrap())
        .sum()
}

// ---------------------------------------------------------------------------
// Fault injection and hostile input (tests/fault.rs, tests/hostile.rs).

/// A small seeded random generator (SplitMix64), so that a run that fails
/// can be replayed with the seed it printed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// A number in `0.0..1.0`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// The value of the environment variable `name`, parsed, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a valid value")),
        Err(_) => default,
    }
}

/// The seed in the environment variable `name`, else one from the clock.
pub fn seed_from_env(name: &str) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        })
}

/// `dir/agency-{i}.csv` for i in 1..=agencies.
pub fn agency_files(dir: &Path, agencies: u32) -> Vec<PathBuf> {
    (1..=agencies)
        .map(|i| dir.join(format!("agency-{i}.csv")))
        .collect()
}

/// Parses the complete lines of a CSV file (up to its last `\n`); returns
/// the rows and how many bytes follow the last complete line (a torn row).
pub fn read_complete_rows(path: &Path) -> (Vec<Vec<String>>, usize) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(&bytes[..complete]);
    let rows = reader
        .records()
        .map(|r| {
            r.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    (rows, bytes.len() - complete)
}

/// How `bets.csv` compares with what the agencies' files hold.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// Bets in the agency files.
    pub expected: u64,
    /// Rows in `bets.csv`.
    pub stored: u64,
    /// Bets of the files that `bets.csv` does not hold (counted with multiplicity).
    pub lost: u64,
    /// Rows of `bets.csv` beyond what the files hold (counted with multiplicity).
    pub duplicated: u64,
    /// Rows that belong to no agency file at all (corrupt, or an unknown agency).
    pub foreign: u64,
    /// Agencies whose stored rows are not their file's rows in their order.
    pub out_of_order: Vec<usize>,
    /// Per agency: how many rows of `bets.csv` are a prefix of its file.
    pub stored_prefix: Vec<u64>,
    /// Per agency: whether its stored rows are exactly a prefix of its file.
    pub is_prefix: Vec<bool>,
}

/// Compares the complete rows of `bets_csv` with the agency files
/// (`files[i]` is agency i+1's), counting what was lost and what doubled.
pub fn compare_with_files(bets_csv: &Path, files: &[PathBuf]) -> Comparison {
    let sent: Vec<Vec<Vec<String>>> = files.iter().map(|f| read_csv(f)).collect();
    compare_rows(&read_complete_rows(bets_csv).0, &sent)
}

/// [`compare_with_files`] on rows already read.
pub fn compare_rows(stored: &[Vec<String>], sent: &[Vec<Vec<String>>]) -> Comparison {
    use std::collections::HashMap;
    let mut by_agency: Vec<Vec<&[String]>> = vec![Vec::new(); sent.len()];
    let mut c = Comparison {
        expected: sent.iter().map(|s| s.len() as u64).sum(),
        stored: stored.len() as u64,
        ..Comparison::default()
    };
    for row in stored {
        match row[0].parse::<usize>() {
            Ok(a) if (1..=sent.len()).contains(&a) => by_agency[a - 1].push(&row[1..]),
            _ => c.foreign += 1,
        }
    }
    for (i, got) in by_agency.iter().enumerate() {
        let want = &sent[i];
        // Per distinct row: (times in the file, times stored).
        let mut counts: HashMap<&[String], (u64, u64)> = HashMap::new();
        for row in want {
            counts.entry(&row[..]).or_default().0 += 1;
        }
        for row in got {
            counts.entry(row).or_default().1 += 1;
        }
        for (sent, kept) in counts.into_values() {
            if sent == 0 {
                c.foreign += kept;
            } else if kept < sent {
                c.lost += sent - kept;
            } else {
                c.duplicated += kept - sent;
            }
        }
        let prefix = got
            .iter()
            .zip(want)
            .take_while(|(g, w)| **g == &w[..])
            .count();
        c.stored_prefix.push(prefix as u64);
        c.is_prefix.push(prefix == got.len());
        if prefix != got.len() || got.len() != want.len() {
            c.out_of_order.push(i + 1);
        }
    }
    c
}

/// How many lines of a bets file start with `agency,` (a field never holds a
/// line break: control characters are not valid in a bet).
pub fn rows_of_agency(bets_csv: &Path, agency: u32) -> u64 {
    let bytes = std::fs::read(bets_csv).unwrap_or_default();
    let prefix = format!("{agency},");
    bytes
        .split(|&b| b == b'\n')
        .filter(|line| line.starts_with(prefix.as_bytes()))
        .count() as u64
}

/// Raises this process's soft limit on open files to its hard limit (the
/// processes it starts inherit it); returns the new soft limit.
pub fn raise_fd_limit() -> u64 {
    lottery::support::limits::raise_open_files(u64::MAX).unwrap_or_else(|_| fd_limit())
}

/// This process's soft limit on open files.
pub fn fd_limit() -> u64 {
    lottery::support::limits::open_files()
}

/// A process's resident memory (`VmRSS` of `/proc/PID/status`), in bytes.
pub fn vm_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// How many sockets a process holds open (`/proc/PID/fd`).
pub fn open_sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// A valid bet for raw-protocol tests, different for every `i`.
pub fn numbered_bet(i: u64, number: u16) -> lottery::bets::bet::Bet {
    lottery::bets::bet::Bet {
        first_name: format!("Nombre {i}"),
        last_name: "Apellido".into(),
        document: format!("{}", 10_000_000 + i),
        birthdate: lottery::wire::Date {
            year: 1950 + (i % 50) as u16,
            month: 1 + (i % 12) as u8,
            day: 1 + (i % 28) as u8,
        },
        number,
    }
}

pub fn batch_frame(agency: u32, first: u32, bets: &[lottery::bets::bet::Bet]) -> Vec<u8> {
    let refs: Vec<_> = bets.iter().map(lottery::bets::bet::Bet::as_ref).collect();
    let mut out = Vec::new();
    lottery::wire::encode_batch(&mut out, agency, first, &refs);
    out
}

pub fn done_frame(agency: u32, total: u32) -> Vec<u8> {
    let mut out = Vec::new();
    lottery::wire::encode_done(&mut out, agency, total);
    out
}

pub fn get_winners_frame(agency: u32, wait: bool) -> Vec<u8> {
    let mut out = Vec::new();
    lottery::wire::encode_get_winners(&mut out, agency, wait);
    out
}

impl RawFrame {
    /// `(code, detail)` of an ERROR frame, or `None` for another type.
    pub fn error(&self) -> Option<(u8, u32)> {
        (self.kind == lottery::wire::kind::ERROR && self.body.len() >= 5).then(|| {
            (
                self.body[0],
                u32::from_be_bytes(self.body[1..5].try_into().unwrap()),
            )
        })
    }

    /// `(agency, stored)` of an ACK frame, or `None` for another type.
    pub fn ack(&self) -> Option<(u32, u32)> {
        (self.kind == lottery::wire::kind::ACK && self.body.len() == 8)
            .then(|| (self.u32_at(0), self.u32_at(4)))
    }
}

impl Central {
    /// Whether the central's process has not exited.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

/// Counts the rows of each agency in a growing bets file, reading only the
/// bytes added since the last look (a field never holds a line break).
pub struct RowWatcher {
    path: PathBuf,
    offset: u64,
    counts: Vec<u64>,
}

impl RowWatcher {
    pub fn new(path: &Path, agencies: u32) -> RowWatcher {
        RowWatcher {
            path: path.to_owned(),
            offset: 0,
            counts: vec![0; agencies as usize],
        }
    }

    /// Reads what was appended and returns the rows per agency so far
    /// (index 0 is agency 1). The file must only grow.
    pub fn poll(&mut self) -> &[u64] {
        use std::io::Seek;
        let Ok(mut file) = std::fs::File::open(&self.path) else {
            return &self.counts;
        };
        if file.seek(std::io::SeekFrom::Start(self.offset)).is_err() {
            return &self.counts;
        }
        let mut new = Vec::new();
        if file.read_to_end(&mut new).is_err() {
            return &self.counts;
        }
        // Only whole lines count, so a row is seen once, when it is complete.
        let Some(end) = new.iter().rposition(|&b| b == b'\n') else {
            return &self.counts;
        };
        for line in new[..end].split(|&b| b == b'\n') {
            let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
            if let Some(agency) = std::str::from_utf8(&line[..digits])
                .ok()
                .and_then(|d| d.parse::<usize>().ok())
                && (1..=self.counts.len()).contains(&agency)
            {
                self.counts[agency - 1] += 1;
            }
        }
        self.offset += end as u64 + 1;
        &self.counts
    }
}

impl Central {
    /// Like [`Central::start`], with the central's limit on open files (soft
    /// and hard) set to `nofile`, as a container might set it.
    pub fn start_with_fd_limit(
        dir: &Path,
        agencies: u32,
        env: &[(&str, &str)],
        nofile: u64,
    ) -> Central {
        use std::os::unix::process::CommandExt;
        let port = free_port();
        let (mut cmd, log) = Central::command(dir, port, agencies, env);
        let limit = rustix::process::Rlimit {
            current: Some(nofile),
            maximum: Some(nofile),
        };
        // SAFETY: `pre_exec` is unsafe by std's contract (the closure runs
        // between fork and exec); no crate sets a limit for the child alone
        // before it runs. The closure only makes the setrlimit system call
        // (async-signal-safe) and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                rustix::process::setrlimit(rustix::process::Resource::Nofile, limit)
                    .map_err(std::io::Error::from)
            });
        }
        Central::launch(cmd, dir, port, log)
    }
}

/// Prints a line of a test's counts to the terminal even when the test
/// harness captures the test's output (as `make test` does): it writes to
/// the standard error stream directly, not through `eprintln!`.
pub fn report(line: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{line}");
}

/// The central's observation port (`METRICS_PORT`), asked over HTTP/1.1.
pub struct Observer {
    pub addr: String,
}

/// An HTTP response: its status and body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Observer {
    pub fn new(port: u16) -> Observer {
        Observer {
            addr: format!("127.0.0.1:{port}"),
        }
    }

    /// Sends `request` as it is and reads the response to the close.
    pub fn raw(&self, request: &[u8]) -> HttpResponse {
        let mut s = TcpStream::connect(&self.addr).expect("connect to the metrics port");
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(request).unwrap();
        let mut all = Vec::new();
        s.read_to_end(&mut all)
            .expect("the response, then the close");
        parse_http(&all).unwrap_or_else(|| panic!("not an HTTP response: {all:?}"))
    }

    /// `GET path`, with `Connection: close` as a scraper sends it.
    pub fn get(&self, path: &str) -> HttpResponse {
        self.raw(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
    }

    /// `GET /metrics`, checked to be a 200.
    pub fn metrics(&self) -> Metrics {
        let r = self.get("/metrics");
        assert_eq!(r.status, 200, "{r:?}");
        Metrics(r.body)
    }

    /// `GET /status`, checked to be a 200 of JSON.
    pub fn status(&self) -> String {
        let r = self.get("/status");
        assert_eq!(r.status, 200, "{r:?}");
        assert!(
            r.head.contains("Content-Type: application/json"),
            "{}",
            r.head
        );
        r.body
    }
}

/// Splits an HTTP response into status, head and body.
pub fn parse_http(bytes: &[u8]) -> Option<HttpResponse> {
    let text = String::from_utf8_lossy(bytes);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()?;
    Some(HttpResponse {
        status,
        head: head.to_string(),
        body: body.to_string(),
    })
}

/// A Prometheus text exposition.
#[derive(Debug)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the sample named exactly `sample` (name and labels, as
    /// written: `lottery_agency_done{agency="1"}`).
    pub fn get(&self, sample: &str) -> Option<f64> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' '))
            .map(|v| v.trim().parse().unwrap())
    }

    /// Like [`Metrics::get`], for a sample that must be there.
    pub fn value(&self, sample: &str) -> f64 {
        self.get(sample)
            .unwrap_or_else(|| panic!("{sample} is not in\n{}", self.0))
    }
}

/// The number after `"key":` in `json`, from byte `from` on.
pub fn json_number(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    let end = rest.find([',', '}', ']']).unwrap_or(rest.len());
    rest[..end].trim().parse().ok()
}

/// The JSON object of `agency` in a `/status` body.
pub fn status_agency(json: &str, agency: u32) -> Option<String> {
    let at = json.find(&format!("{{\"agency\":{agency},"))?;
    let end = json[at..].find('}')?;
    Some(json[at..=at + end].to_string())
}
