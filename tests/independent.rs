//! Cross-checks the Rust central and agency against an independent Python
//! peer, `tests/independent/lottery_peer.py`, written from docs/protocol.md and
//! the vectors alone (never from the Rust sources).
//!
//! This file owns the independent cross-check: the peer's self-check against
//! the normative vectors, Python agencies against the real central, and real
//! agencies against the Python central (normal, and closing the connection
//! after every reply like the original course server). Each test checks the
//! winners every agency got and that the bets file holds exactly each
//! agency's rows, in order. The tests run one at a time (the machine is
//! small) and every child process is killed by a guard when a test fails.

mod util;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use util::{Agency, Central, client_bin, course_dataset, free_port, temp_dir};

/// How long one agency may take to send its bets and get its winners.
const AGENCY_LIMIT: Duration = Duration::from_secs(40);
const AGENCIES: usize = 5;
const WINNING_NUMBER: &str = "7574";

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn peer_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/independent/lottery_peer.py")
}

/// A `lottery_peer.py` process; killed and reaped when dropped, so a failing
/// test leaves nothing running.
struct PythonPeer {
    name: String,
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl PythonPeer {
    fn start(dir: &Path, name: &str, args: &[String]) -> PythonPeer {
        let stdout = dir.join(format!("{name}.out"));
        let stderr = dir.join(format!("{name}.err"));
        let child = Command::new("python3")
            .arg(peer_script())
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&stdout).unwrap())
            .stderr(fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("python3 runs lottery_peer.py");
        PythonPeer {
            name: name.to_owned(),
            child,
            stdout,
            stderr,
        }
    }

    fn stdout(&self) -> String {
        fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not finish within {within:?}; stderr:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for `line` on stderr (the Python central says when it listens).
    fn wait_for_stderr(&mut self, line: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.stderr().contains(line) {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!(
                    "{} exited with {status} before `{line}`:\n{}",
                    self.name,
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} never said `{line}`:\n{}",
                self.name,
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PythonPeer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Five agency files, the rows each holds and the winners each must get.
struct Dataset {
    files: Vec<PathBuf>,
    /// `rows[i]` = agency i+1's rows: nombre, apellido, documento, nacimiento, numero.
    rows: Vec<Vec<Vec<String>>>,
    /// `winners[i]` = the documents of agency i+1's winning bets, in file order.
    winners: Vec<Vec<String>>,
}

impl Dataset {
    fn load(files: Vec<PathBuf>) -> Dataset {
        let rows: Vec<Vec<Vec<String>>> = files.iter().map(|f| read_csv(f)).collect();
        let winners = rows
            .iter()
            .map(|agency| {
                agency
                    .iter()
                    .filter(|r| r[4] == WINNING_NUMBER)
                    .map(|r| r[2].clone())
                    .collect()
            })
            .collect();
        Dataset {
            files,
            rows,
            winners,
        }
    }

    fn total(&self) -> usize {
        self.rows.iter().map(Vec::len).sum()
    }

    fn winner_counts(&self) -> Vec<usize> {
        self.winners.iter().map(Vec::len).collect()
    }
}

fn read_csv(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    reader
        .records()
        .map(|r| {
            r.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect()
}

/// The course dataset unzipped into `dir`; its winners are known: 2, 3, 3, 2, 0.
fn course_data(zip: &Path, dir: &Path) -> Dataset {
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])",
        ])
        .arg(zip)
        .arg(dir)
        .status()
        .expect("python3 unzips the dataset");
    assert!(status.success(), "unzipping {} failed", zip.display());
    let files = (1..=AGENCIES)
        .map(|i| dir.join(format!("agency-{i}.csv")))
        .collect();
    let data = Dataset::load(files);
    assert_eq!(data.winner_counts(), [2, 3, 3, 2, 0], "the course dataset");
    data
}

/// Five small agency files (LF line ends) whose names need CSV quoting
/// (commas, quotes) or are non-ASCII, with winners planted where batches
/// begin and end. Agency 2's first names are 255 bytes, so its batches are
/// cut by the 8192-byte frame limit, not by the bet count; agency 3 has 750
/// winners with 16-digit documents, more than one WINNERS frame can carry.
fn quoted_data(dir: &Path) -> Dataset {
    const FIRST: [&str; 6] = [
        "Ana, María",
        "José \"Pepe\"",
        "Zoë",
        "名前",
        "O'Connor",
        "\"Jean\", Luc",
    ];
    const LAST: [&str; 5] = [
        "Pérez, Gómez",
        "\"Quoted\"",
        "Müller",
        "de la Cruz",
        "Ñandú",
    ];
    let long_first = format!("{}a", "Ñ".repeat(127));
    assert_eq!(long_first.len(), 255);

    let sizes = [523usize, 311, 1500, 64, 1];
    let wins = |agency: usize, i: usize| match agency {
        1 => [0, 99, 100, 522].contains(&i),
        2 => i == 150,
        3 => i.is_multiple_of(2),
        4 => false,
        _ => true,
    };
    let mut seed: u64 = 0x5eed_1234;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    let mut files = Vec::new();
    for (a, &size) in sizes.iter().enumerate() {
        let agency = a + 1;
        let path = dir.join(format!("agency-{agency}.csv"));
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_path(&path)
            .unwrap();
        for i in 0..size {
            let first = if agency == 2 {
                long_first.clone()
            } else {
                FIRST[next() % FIRST.len()].to_owned()
            };
            let last = LAST[next() % LAST.len()];
            let winner = wins(agency, i);
            let document = if agency == 3 && winner {
                format!("{:016}", next() % 1_000_000)
            } else {
                let width = 1 + i % 16;
                format!("{:0width$}", next() % 10usize.pow(width.min(9) as u32))
            };
            let birthdate = match i % 50 {
                0 => "1900-01-01".to_owned(),
                1 => "2000-02-29".to_owned(),
                _ => format!(
                    "{:04}-{:02}-{:02}",
                    1900 + next() % 106,
                    1 + next() % 12,
                    1 + next() % 28
                ),
            };
            let number = if winner {
                7574
            } else {
                let n = next() % 10_000;
                if n == 7574 { 7573 } else { n }
            };
            writer
                .write_record([
                    first.as_str(),
                    last,
                    &document,
                    &birthdate,
                    &number.to_string(),
                ])
                .unwrap();
        }
        writer.flush().unwrap();
        files.push(path);
    }
    let data = Dataset::load(files);
    assert_eq!(
        data.winner_counts(),
        [4, 1, 750, 0, 1],
        "the planted winners"
    );
    let text = fs::read_to_string(&data.files[0]).unwrap();
    assert!(text.contains("\"Ana, María\""), "names need quoting");
    data
}

fn course_or_quoted_data(dir: &Path) -> Dataset {
    match course_dataset() {
        Some(zip) => course_data(&zip, dir),
        None => quoted_data(dir),
    }
}

/// Checks that the central's bets file (`agency,first_name,last_name,
/// document,birthdate,number`, no header) holds, per agency, exactly the
/// rows of that agency's file, in order, and nothing else.
fn assert_bets_file_holds_exactly(bets_csv: &Path, data: &Dataset) {
    let stored = read_csv(bets_csv);
    let mut by_agency: Vec<Vec<&[String]>> = vec![Vec::new(); AGENCIES];
    for (line, row) in stored.iter().enumerate() {
        assert_eq!(row.len(), 6, "bets.csv record {}: {row:?}", line + 1);
        let agency: usize = row[0]
            .parse()
            .unwrap_or_else(|_| panic!("bets.csv record {}: agency {:?}", line + 1, row[0]));
        assert!(
            (1..=AGENCIES).contains(&agency),
            "bets.csv record {}: agency {agency}",
            line + 1
        );
        by_agency[agency - 1].push(&row[1..]);
    }
    for (a, (got, sent)) in by_agency.iter().zip(&data.rows).enumerate() {
        let agency = a + 1;
        if let Some(i) = (0..got.len().min(sent.len())).find(|&i| got[i] != sent[i].as_slice()) {
            panic!(
                "agency {agency}: stored bet {i} is {:?}, its file has {:?}",
                got[i], sent[i]
            );
        }
        assert_eq!(
            got.len(),
            sent.len(),
            "agency {agency}: bets.csv holds {} bets, its file {}",
            got.len(),
            sent.len()
        );
    }
}

/// Parses the Python agency's only stdout line, `winners N doc1 doc2 ...`.
fn python_agency_winners(agency: &PythonPeer) -> Vec<String> {
    let out = agency.stdout();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{} printed {out:?}", agency.name);
    let mut words = lines[0].split_whitespace();
    assert_eq!(words.next(), Some("winners"), "{}: {out:?}", agency.name);
    let count: usize = words.next().unwrap().parse().unwrap();
    let documents: Vec<String> = words.map(str::to_owned).collect();
    assert_eq!(documents.len(), count, "{}: {out:?}", agency.name);
    documents
}

/// Python agencies send `data` to the real central; each must get exactly
/// its winners, the bets file must hold exactly the files' rows, and the
/// central must exit 0 on SIGTERM.
fn python_agencies_against_the_real_central(test: &str, quoted: bool) {
    let dir = temp_dir(test);
    let data = if quoted {
        quoted_data(&dir)
    } else {
        course_or_quoted_data(&dir)
    };
    let mut central = Central::start(&dir, AGENCIES as u32, &[]);
    let mut agencies = start_python_agencies(&dir, &central.addr(), &data);
    assert_python_agencies_got_their_winners(&mut agencies, &data, &central);
    assert_bets_file_holds_exactly(&dir.join("bets.csv"), &data);
    let status = central.signal_and_wait("TERM", Duration::from_secs(10));
    assert!(
        status.success(),
        "the central exited {status} on SIGTERM:\n{}",
        tail(&central.logs(), 20)
    );
}

/// Starts the Python agencies of `data` against `addr`.
fn start_python_agencies(dir: &Path, addr: &str, data: &Dataset) -> Vec<PythonPeer> {
    data.files
        .iter()
        .enumerate()
        .map(|(a, file)| {
            let args = [
                "agency",
                "--server",
                addr,
                "--id",
                &(a + 1).to_string(),
                "--file",
                &file.to_string_lossy(),
                "--batch",
                "100",
                "--window",
                "4",
            ]
            .map(str::to_owned);
            PythonPeer::start(dir, &format!("python-agency-{}", a + 1), &args)
        })
        .collect()
}

/// Waits for every Python agency to exit 0 and checks the winners it printed.
fn assert_python_agencies_got_their_winners(
    agencies: &mut [PythonPeer],
    data: &Dataset,
    central: &Central,
) {
    for (a, agency) in agencies.iter_mut().enumerate() {
        let status = agency.wait(AGENCY_LIMIT);
        assert!(
            status.success(),
            "python agency {} exited {status}:\n{}\ncentral log tail:\n{}",
            a + 1,
            agency.stderr(),
            tail(&central.logs(), 20)
        );
        assert_eq!(
            python_agency_winners(agency),
            data.winners[a],
            "agency {}'s winners",
            a + 1
        );
    }
}

/// Real agencies send `data` to the Python central (started with `flags`);
/// each must exit 0 having logged its winner count, the Python central must
/// finish by itself with every bet, and its bets file must hold exactly the
/// files' rows. Returns the Python central's stderr.
fn real_agencies_against_the_python_central(test: &str, quoted: bool, flags: &[&str]) -> String {
    let _ = client_bin();
    let dir = temp_dir(test);
    let data = if quoted {
        quoted_data(&dir)
    } else {
        course_or_quoted_data(&dir)
    };
    let port = free_port();
    let bets = dir.join("bets.csv");
    let mut args: Vec<String> = [
        "central",
        "--port",
        &port.to_string(),
        "--agencies",
        &AGENCIES.to_string(),
        "--out",
        &bets.to_string_lossy(),
        "--strict",
    ]
    .map(str::to_owned)
    .to_vec();
    args.extend(flags.iter().map(|f| f.to_string()));
    let mut central = PythonPeer::start(&dir, "python-central", &args);
    central.wait_for_stderr("central: listening on", Duration::from_secs(10));

    let addr = format!("127.0.0.1:{port}");
    let mut agencies: Vec<Agency> = data
        .files
        .iter()
        .enumerate()
        .map(|(a, file)| Agency::start(&dir, a as u32 + 1, &addr, file, &[]))
        .collect();
    for (a, agency) in agencies.iter_mut().enumerate() {
        let (code, winners) = agency.finish(AGENCY_LIMIT);
        assert_eq!(
            (code, winners),
            (Some(0), Some(data.winners[a].len() as u32)),
            "agency {}: (exit code, logged winners); its log tail:\n{}\npython central:\n{}",
            a + 1,
            tail(&agency.logs(), 15),
            central.stderr()
        );
    }
    let status = central.wait(Duration::from_secs(10));
    assert!(
        status.success(),
        "the python central exited {status}:\n{}",
        central.stderr()
    );
    assert_eq!(
        central.stdout().trim(),
        format!("central done: {AGENCIES} agencies, {} bets", data.total())
    );
    assert_bets_file_holds_exactly(&bets, &data);
    central.stderr()
}

/// Runs `lottery_peer.py probe --case CASE` against a fresh central at
/// `addr`; asserts it found no mismatch and returns the file of the bets the
/// central must have stored.
fn run_probe(dir: &Path, addr: &str, case: &str) -> PathBuf {
    let rows = dir.join(format!("probe-{case}.csv"));
    let args = [
        "probe",
        "--server",
        addr,
        "--case",
        case,
        "--rows-out",
        &rows.to_string_lossy(),
    ]
    .map(str::to_owned);
    let mut probe = PythonPeer::start(dir, &format!("probe-{case}"), &args);
    let status = probe.wait(Duration::from_secs(40));
    assert!(
        status.success(),
        "the probe found mismatches (exit {status}):\n{}",
        probe.stdout()
    );
    rows
}

fn assert_same_csv(got: &Path, want: &Path) {
    let (got_rows, want_rows) = (read_csv(got), read_csv(want));
    assert!(!want_rows.is_empty());
    assert_eq!(
        got_rows,
        want_rows,
        "{} against {}",
        got.display(),
        want.display()
    );
}

/// The probe against the real central started for `agencies` agencies.
fn probe_the_real_central(test: &str, agencies: u32, case: &str) {
    let dir = temp_dir(test);
    let mut central = Central::start(&dir, agencies, &[]);
    let rows = run_probe(&dir, &central.addr(), case);
    assert_same_csv(&dir.join("bets.csv"), &rows);
    let status = central.signal_and_wait("TERM", Duration::from_secs(10));
    assert!(status.success(), "the central exited {status} on SIGTERM");
}

/// The probe against the Python central: keeps the probe itself honest.
fn probe_the_python_central(test: &str, agencies: u32, case: &str) {
    let dir = temp_dir(test);
    let port = free_port();
    let bets = dir.join("bets.csv");
    let args = [
        "central",
        "--port",
        &port.to_string(),
        "--agencies",
        &agencies.to_string(),
        "--out",
        &bets.to_string_lossy(),
        "--stay",
    ]
    .map(str::to_owned);
    let mut central = PythonPeer::start(&dir, "python-central", &args);
    central.wait_for_stderr("central: listening on", Duration::from_secs(10));
    let rows = run_probe(&dir, &format!("127.0.0.1:{port}"), case);
    let ok = Command::new("kill")
        .args(["-TERM", &central.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = central.wait(Duration::from_secs(10));
    assert!(status.success(), "{}", central.stderr());
    assert_same_csv(&bets, &rows);
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The number in the Python central's `central: N connections, ...` line.
fn connections_served(central_stderr: &str) -> usize {
    central_stderr
        .lines()
        .find_map(|l| {
            let (n, _) = l.strip_prefix("central: ")?.split_once(" connections")?;
            n.parse().ok()
        })
        .unwrap_or_else(|| panic!("no connection count in:\n{central_stderr}"))
}

#[test]
fn python_peer_decodes_and_reencodes_every_protocol_vector() {
    let vectors = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protocol-vectors.txt");
    let out = Command::new("python3")
        .arg(peer_script())
        .arg("vectors")
        .arg(&vectors)
        .output()
        .expect("python3 runs lottery_peer.py");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), "vectors: 12 frames checked, 0 failures");
}

#[test]
fn python_peer_vectors_check_fails_on_a_corrupted_vector() {
    let dir = temp_dir("independent-corrupt-vectors");
    let vectors = fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/protocol-vectors.txt"),
    )
    .unwrap();
    // DONE total=26936 with the last byte off by one.
    let corrupted = vectors.replace("0009030000000100006938", "0009030000000100006939");
    assert_ne!(corrupted, vectors);
    let path = dir.join("vectors.txt");
    fs::write(&path, corrupted).unwrap();
    let out = Command::new("python3")
        .arg(peer_script())
        .arg("vectors")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("total=26937"));
}

#[test]
fn python_agencies_get_their_winners_from_the_real_central_which_stores_every_row() {
    let _one = one_at_a_time();
    python_agencies_against_the_real_central("independent-real-central", false);
}

#[test]
fn real_central_stores_names_needing_csv_quoting_verbatim_and_splits_long_winner_lists() {
    let _one = one_at_a_time();
    python_agencies_against_the_real_central("independent-real-central-quoted", true);
}

#[test]
fn real_agencies_get_their_winners_from_the_python_central() {
    let _one = one_at_a_time();
    real_agencies_against_the_python_central("independent-python-central", false, &[]);
}

#[test]
fn real_agencies_resume_when_the_python_central_closes_after_every_reply() {
    let _one = one_at_a_time();
    let stderr = real_agencies_against_the_python_central(
        "independent-python-central-one-request",
        false,
        &[
            "--one-request-per-connection",
            "--max-winners-per-frame",
            "1",
        ],
    );
    // Every BATCH needs a connection of its own: at least 10 for the
    // smallest agency's bets alone, hundreds for the course dataset.
    assert!(
        connections_served(&stderr) > 2 * AGENCIES + 10,
        "too few connections for one request each:\n{stderr}"
    );
}

#[test]
fn real_agencies_send_names_needing_csv_quoting_and_read_split_winners() {
    let _one = one_at_a_time();
    real_agencies_against_the_python_central(
        "independent-python-central-quoted",
        true,
        &["--max-winners-per-frame", "7"],
    );
}

#[test]
fn real_central_answers_every_edge_case_of_the_spec_as_the_python_probe_expects() {
    let _one = one_at_a_time();
    probe_the_real_central("independent-probe-real", 3, "edges");
}

#[test]
fn python_central_answers_every_edge_case_of_the_spec_as_the_python_probe_expects() {
    let _one = one_at_a_time();
    probe_the_python_central("independent-probe-python", 3, "edges");
}

/// docs/protocol.md: the server answers "in request order per connection", DONE
/// is acknowledged once the agency "is closed", the draw happens "when the
/// last expected agency is closed", and GET_WINNERS wait=0 gets "WINNERS if
/// the draw happened". So a GET_WINNERS pipelined right behind the last
/// DONE must see that DONE. (The central once answered it from the state
/// before the DONE's fsync: NOT_READY done=0 expected=1.)
#[test]
fn real_central_answers_get_winners_pipelined_behind_the_last_done_with_the_winners() {
    let _one = one_at_a_time();
    probe_the_real_central("independent-probe-real-pipelined-done", 1, "pipelined-done");
}

#[test]
fn python_central_answers_get_winners_pipelined_behind_the_last_done_with_the_winners() {
    let _one = one_at_a_time();
    probe_the_python_central(
        "independent-probe-python-pipelined-done",
        1,
        "pipelined-done",
    );
}

#[test]
fn python_agencies_resume_after_the_real_central_is_killed_mid_ingest_and_nothing_is_stored_twice()
{
    let _one = one_at_a_time();
    let dir = temp_dir("independent-real-central-killed");
    let data = course_or_quoted_data(&dir);
    let port = free_port();
    let mut central = Central::start_on(&dir, port, AGENCIES as u32, &[]);
    let mut agencies = start_python_agencies(&dir, &central.addr(), &data);

    // Kill the central once about a fifth of the bets file is written.
    let whole: u64 = data
        .files
        .iter()
        .map(|f| fs::metadata(f).unwrap().len())
        .sum();
    let bets = dir.join("bets.csv");
    let deadline = Instant::now() + Duration::from_secs(30);
    while fs::metadata(&bets).map_or(0, |m| m.len()) < whole / 5 {
        assert!(Instant::now() < deadline, "the central stored too little");
        std::thread::sleep(Duration::from_millis(5));
    }
    central.child.kill().unwrap();
    central.child.wait().unwrap();
    // Whole rows only: the kill may have torn the last one.
    let stored_before = fs::read(&bets)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    drop(central);
    assert!(
        stored_before < data.total(),
        "killed after the whole ingest"
    );

    let central = Central::start_on(&dir, port, AGENCIES as u32, &[]);
    assert_python_agencies_got_their_winners(&mut agencies, &data, &central);
    assert_bets_file_holds_exactly(&bets, &data);
    let reconnected = agencies
        .iter()
        .filter(|a| !a.stderr().contains(" 1 connections"))
        .count();
    assert!(reconnected > 0, "no agency had to reconnect");
}
