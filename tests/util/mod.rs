//! Helpers shared by the integration tests: where the built binaries are,
//! free ports, temporary directories, the course dataset.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};

/// The central's binary, built by cargo for this test run.
pub fn server_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lottery-server"))
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
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
