//! Fault injection against the real binaries: the central killed with
//! SIGKILL again and again in the middle of the ingest and restarted on the
//! same files, an agency killed and started again from scratch, torn and
//! corrupt files at start-up, a full disk, and SIGTERM under load.
//!
//! Each test compares what is on disk with what was sent and prints the
//! counts straight to the terminal ([`util::report`]), so `make test` shows
//! them without `--nocapture`.
//!
//! The crash test's size comes from the environment, so that the same test
//! is the CI setting and the large manual one:
//! - `FAULT_KILLS` (default 20): SIGKILLs of the central;
//! - `FAULT_BETS` (default 100000): bets per agency, 5 agencies;
//! - `FAULT_SEED`: replays a run (every run prints its seed).
//!
//! The large setting:
//! `FAULT_KILLS=50 FAULT_BETS=400000 cargo test --release --test fault -- --nocapture killed_at_random`
//!
//! The disk-full test mounts a small tmpfs, which needs root; without it the
//! test says so and passes, unless `REQUIRE_ROOT_MOUNT=1`.

mod util;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use lottery::wire::{ErrorCode, kind};
use util::{
    Agency, Central, Comparison, Peer, Rng, agency_files, batch_frame, compare_rows,
    compare_with_files, done_frame, env_or, free_port, generate, get_winners_frame, numbered_bet,
    read_complete_rows, read_csv, rows_of_agency, seed_from_env, server_bin, temp_dir,
};

/// Batch size and window of each agency: different paces, so that at every
/// kill the agencies are at different points of their streams (and some
/// are closed and parked while others still send).
const AGENCY_SHAPES: [(&str, &str); 5] = [
    ("100", "4"),
    ("37", "1"),
    ("250", "8"),
    ("64", "2"),
    ("100", "16"),
];

/// A retry budget far longer than any outage the tests cause.
const LONG_RETRY_BUDGET: &str = "600s";

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// The size `bets.csv` will have once it holds every file's rows: each row
/// gains `agency,` in front and a CR before its LF.
fn final_bets_size(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let bytes = std::fs::read(f).unwrap();
            let rows = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
            bytes.len() as u64 + rows * ((i + 1).to_string().len() as u64 + 2)
        })
        .sum()
}

/// The complete entries of the journal as `(agency, total)`, and the bytes
/// of a torn last entry.
fn read_journal(path: &Path) -> (Vec<(usize, u64)>, usize) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let text = std::str::from_utf8(&bytes[..complete]).expect("the journal is text");
    let entries = text
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            assert!(w.len() == 3 && w[0] == "DONE", "journal entry {l:?}");
            (w[1].parse().unwrap(), w[2].parse().unwrap())
        })
        .collect();
    (entries, bytes.len() - complete)
}

/// Checks that an agency's log never says the central lost bets it had
/// acknowledged; returns how many acknowledged bets were lost.
fn acknowledged_bets_lost(agency: &Agency) -> u64 {
    agency
        .logs()
        .lines()
        .filter_map(|l| {
            let rest = l
                .split("action: reanudar | result: in_progress | desde: ")
                .nth(1)?;
            let had = l.split("but had acknowledged ").nth(1)?;
            let from: u64 = rest.split(' ').next()?.parse().ok()?;
            Some(had.trim().parse::<u64>().ok()? - from)
        })
        .sum()
}

fn start_agencies(
    dir: &Path,
    addr: &str,
    files: &[PathBuf],
    extra: &[(&str, &str)],
) -> Vec<Agency> {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let (batch, window) = AGENCY_SHAPES[i % AGENCY_SHAPES.len()];
            let mut env = vec![
                ("CLI_BATCH_MAXAMOUNT", batch),
                ("CLI_WINDOW", window),
                ("CLI_CONNECT_TIMEOUT", LONG_RETRY_BUDGET),
            ];
            env.extend_from_slice(extra);
            Agency::start(dir, i as u32 + 1, addr, f, &env)
        })
        .collect()
}

/// Waits for every agency and checks each exited 0 with its expected winners.
fn finish_agencies(agencies: &mut [Agency], expected_winners: &[u32]) {
    for (agency, &want) in agencies.iter_mut().zip(expected_winners) {
        let (code, winners) = agency.finish(Duration::from_secs(300));
        assert_eq!(code, Some(0), "agency {}: {}", agency.id, agency.logs());
        assert_eq!(winners, Some(want), "agency {} winners", agency.id);
    }
}

fn assert_no_loss(c: &Comparison, what: &str) {
    assert_eq!(
        (c.lost, c.duplicated, c.foreign),
        (0, 0, 0),
        "{what}: bets lost, duplicated, foreign: {c:?}"
    );
    assert!(
        c.out_of_order.is_empty(),
        "{what}: agencies {:?} are not stored in their order",
        c.out_of_order
    );
    assert_eq!(c.stored, c.expected, "{what}");
}

// ---------------------------------------------------------------------------
// Crashes and restarts.

#[test]
fn a_central_killed_at_random_moments_and_restarted_loses_and_doubles_no_bet() {
    let kills: usize = env_or("FAULT_KILLS", 20);
    let bets: u32 = env_or("FAULT_BETS", 100_000);
    let seed = seed_from_env("FAULT_SEED");
    util::report(format_args!(
        "crash test: 5 agencies x {bets} bets, {kills} SIGKILLs of the central, FAULT_SEED={seed}"
    ));
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let data = temp_dir("crash-data");
    let expected_winners = generate(&data, 5, bets, seed % 1_000_000 + 1);
    let files = agency_files(&data, 5);
    let sent: Vec<Vec<Vec<String>>> = files.iter().map(|f| read_csv(f)).collect();
    let final_size = final_bets_size(&files);

    let dir = temp_dir("crash");
    let bets_csv = dir.join("bets.csv");
    let journal = dir.join("bets.csv.journal");
    let port = free_port();
    let mut central = Central::start_on(&dir, port, 5, &[]);
    let mut agencies = start_agencies(&dir, &central.addr(), &files, &[]);

    // The kills happen when bets.csv reaches random sizes (so all of them
    // are in the middle of the ingest, however fast it is), each a random
    // few milliseconds later (so they land anywhere in a group commit).
    // Before each kill, every agency still sending has stored something
    // since the last restart: the kills are driven by the file's growth,
    // and an agency slow to reconnect must not be starved until its retry
    // budget runs out.
    let mut thresholds: Vec<u64> = (0..kills)
        .map(|_| (final_size as f64 * (0.01 + 0.96 * rng.unit())) as u64)
        .collect();
    thresholds.sort_unstable();
    let totals: Vec<u64> = sent.iter().map(|s| s.len() as u64).collect();
    let mut rows = util::RowWatcher::new(&bets_csv, 5);
    let mut at_restart = vec![0; 5];
    let mut torn_rows_cut = 0;
    let mut torn_journal_cut = 0;
    let mut kills_with_closed_agencies = 0;
    for (k, &threshold) in thresholds.iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(120);
        let all_progressed =
            |counts: &[u64]| (0..5).all(|i| counts[i] >= totals[i] || counts[i] > at_restart[i]);
        while file_len(&bets_csv) < threshold || !all_progressed(rows.poll()) {
            for agency in &mut agencies {
                if let Some(status) = agency.child.try_wait().unwrap() {
                    panic!(
                        "agency {} exited with {status} before the ingest ended: {}",
                        agency.id,
                        agency.logs()
                    );
                }
            }
            assert!(
                Instant::now() < deadline,
                "kill {k}: bets.csv stayed below {threshold} bytes, or an agency made no progress (rows {:?}, at the restart {at_restart:?}): {}",
                rows.poll(),
                central.logs()
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.range(0, 15)));
        central.child.kill().unwrap();
        central.child.wait().unwrap();
        at_restart = rows.poll().to_vec();

        // What the dead central left: each agency's rows are a prefix of its
        // file, and each journal entry closes an agency with what it holds.
        let (rows, torn) = read_complete_rows(&bets_csv);
        let c = compare_rows(&rows, &sent);
        assert!(
            c.is_prefix.iter().all(|&p| p) && c.foreign == 0 && c.duplicated == 0,
            "kill {k}: bets.csv is not a prefix of each agency's file: {c:?}"
        );
        let (closes, journal_torn) = read_journal(&journal);
        for &(agency, total) in &closes {
            assert_eq!(
                total,
                c.stored_prefix[agency - 1],
                "kill {k}: agency {agency} closed with {total} bets"
            );
        }
        kills_with_closed_agencies += usize::from(!closes.is_empty());

        central = Central::start_on(&dir, port, 5, &[]);
        let logs = central.logs();
        assert!(
            logs.contains(&format!(
                "action: recuperar | result: success | apuestas: {} | agencias_cerradas: {}",
                rows.len(),
                closes.len()
            )),
            "kill {k}: the restart recovers {} bets and {} closes: {logs}",
            rows.len(),
            closes.len()
        );
        if torn > 0 {
            torn_rows_cut += 1;
            assert!(
                logs.contains(&format!(
                    "action: recuperar_apuestas | result: success | cortados_bytes: {torn}"
                )),
                "kill {k}: the torn row of {torn} bytes is cut and logged: {logs}"
            );
        }
        if journal_torn > 0 {
            torn_journal_cut += 1;
        }
    }

    finish_agencies(&mut agencies, &expected_winners);
    assert_eq!(
        central
            .signal_and_wait("TERM", Duration::from_secs(5))
            .code(),
        Some(0)
    );
    let c = compare_with_files(&bets_csv, &files);
    let acknowledged_lost: u64 = agencies.iter().map(acknowledged_bets_lost).sum();
    util::report(format_args!(
        "crash test: kills: {kills} (all in the middle of the ingest, {kills_with_closed_agencies} with some agency already closed) | restarts that cut a torn row: {torn_rows_cut}, a torn journal entry: {torn_journal_cut} | bets sent: {} | stored: {} | lost: {} | duplicated: {} | foreign: {} | acknowledged then lost: {acknowledged_lost} | agencies exited 0 with their winners: 5 of 5 | {:.1} s",
        c.expected,
        c.stored,
        c.lost,
        c.duplicated,
        c.foreign,
        started.elapsed().as_secs_f64()
    ));
    assert_no_loss(&c, "after the kills");
    assert_eq!(acknowledged_lost, 0, "the central lost acknowledged bets");
    // Kept when the test fails, for a look; tens of megabytes otherwise.
    drop(central);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn an_agency_killed_mid_ingest_and_started_again_resumes_from_the_stored_count() {
    let seed = seed_from_env("FAULT_SEED");
    let mut rng = Rng::new(seed);
    let data = temp_dir("agency-kill-data");
    let bets = 20_000;
    let expected_winners = generate(&data, 5, bets, 77);
    let files = agency_files(&data, 5);
    let dir = temp_dir("agency-kill");
    let bets_csv = dir.join("bets.csv");
    let mut central = Central::start(&dir, 5, &[]);
    let addr = central.addr();
    // Agency 3 sends small batches one at a time, so it is still sending
    // when it is killed.
    let victim = 3;
    let mut agencies: Vec<Agency> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let id = i as u32 + 1;
            if i + 1 == victim {
                Agency::start(
                    &dir,
                    id,
                    &addr,
                    f,
                    &[("CLI_BATCH_MAXAMOUNT", "5"), ("CLI_WINDOW", "1")],
                )
            } else {
                Agency::start(&dir, id, &addr, f, &[])
            }
        })
        .collect();
    let target = rng.range(1_000, bets as u64 / 2);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut rows = util::RowWatcher::new(&bets_csv, 5);
    while rows.poll()[victim - 1] < target {
        assert!(Instant::now() < deadline, "agency {victim} stalled");
        std::thread::sleep(Duration::from_millis(5));
    }
    agencies[victim - 1].child.kill().unwrap();
    agencies[victim - 1].child.wait().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let stored_at_kill = rows_of_agency(&bets_csv, victim as u32);
    assert!(
        stored_at_kill < bets as u64,
        "killed in the middle: {stored_at_kill} of {bets}"
    );

    // From scratch: the new agency knows nothing of what the first one sent.
    agencies[victim - 1] = Agency::start(
        &dir,
        victim as u32,
        &addr,
        &files[victim - 1],
        &[("CLI_LOG_LEVEL", "DEBUG")],
    );
    finish_agencies(&mut agencies, &expected_winners);
    assert_eq!(
        central
            .signal_and_wait("TERM", Duration::from_secs(5))
            .code(),
        Some(0)
    );

    // Its first batch (one in flight on a new connection) is answered with
    // the central's count, and every batch after it starts from there.
    let batches: Vec<(u64, u64)> = agencies[victim - 1]
        .logs()
        .lines()
        .filter_map(|l| {
            let rest = l
                .split("action: batch_enviado | result: success | first: ")
                .nth(1)?;
            let first = rest.split(' ').next()?.parse().ok()?;
            let stored = rest.split("stored: ").nth(1)?.trim().parse().ok()?;
            Some((first, stored))
        })
        .collect();
    assert!(!batches.is_empty(), "{}", agencies[victim - 1].logs());
    assert_eq!(batches[0].0, 0, "the new agency starts from scratch");
    assert!(
        batches[0].1 >= stored_at_kill,
        "the first ACK tells the central's count: {:?} vs {stored_at_kill}",
        batches[0]
    );
    let resent_after = batches[1..]
        .iter()
        .filter(|(first, _)| *first < stored_at_kill)
        .count();
    assert_eq!(resent_after, 0, "batches resent below the stored count");

    let c = compare_with_files(&bets_csv, &files);
    let stored_by_log = util::stored_in_logs(&central.logs());
    util::report(format_args!(
        "agency kill: agency {victim} killed with {stored_at_kill} of {bets} bets stored (FAULT_SEED={seed}) | the new agency's first ACK said {} | batches it sent: {} | bets stored per the central's log: {stored_by_log} of {} | lost: {} | duplicated: {}",
        batches[0].1,
        batches.len(),
        c.expected,
        c.lost,
        c.duplicated
    ));
    assert_eq!(stored_by_log, c.expected, "nothing is stored twice");
    assert_no_loss(&c, "after the agency kill");
    drop(central);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&data);
}

// ---------------------------------------------------------------------------
// Torn and corrupt files at start-up.

const ROWS: &str = "1,Ana,Lorca,111,1999-03-17,7574\r\n1,\"Pérez, \"\"hijo\"\"\",Lorca,222,1999-03-17,1\r\n2,Bruno,Díaz,333,1980-01-01,7574\r\n";

/// Starts the central on files that must not be used and returns its exit
/// code and what it wrote to stderr; fails if it starts serving instead.
fn start_on_bad_files(dir: &Path, agencies: u32) -> (Option<i32>, String) {
    let log = dir.join("refused.log");
    let mut child = Command::new(server_bin())
        .current_dir(dir)
        .env_clear()
        .env("SERVER_IP", "127.0.0.1")
        .env("SERVER_PORT", free_port().to_string())
        .env("AGENCIES", agencies.to_string())
        .env("BETS_FILE", dir.join("bets.csv"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the central started on corrupt files: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    (status.code(), std::fs::read_to_string(&log).unwrap())
}

#[test]
fn a_torn_last_row_and_journal_entry_are_cut_off_and_logged_at_start_up() {
    // What a crash in the middle of a write can leave after the last whole row.
    let torn_rows: [&[u8]; 5] = [
        b"2,Ma",
        b"2,\"P\xc3\xa9rez, ",
        b"2,Carla,Ruiz,444,1990-01-01,75",
        b"2,Carla,Ruiz,444,1990-01-01,7574\r",
        b"\0\0\0\0\0\0\0\0",
    ];
    for (i, torn) in torn_rows.iter().enumerate() {
        let dir = temp_dir(&format!("torn-{i}"));
        let mut bets = ROWS.as_bytes().to_vec();
        bets.extend_from_slice(torn);
        std::fs::write(dir.join("bets.csv"), &bets).unwrap();
        std::fs::write(dir.join("bets.csv.journal"), "DONE 1 2\nDONE 2").unwrap();

        let central = Central::start(&dir, 2, &[]);
        let logs = central.logs();
        for line in [
            format!(
                "action: recuperar_apuestas | result: success | cortados_bytes: {}",
                torn.len()
            ),
            "action: recuperar_journal | result: success | cortados_bytes: 6".to_string(),
            "action: recuperar | result: success | apuestas: 3 | agencias_cerradas: 1".to_string(),
        ] {
            assert!(
                logs.contains(&line),
                "torn row {torn:?}: missing {line:?} in {logs}"
            );
        }
        assert_eq!(central.bets_csv(), ROWS, "the torn row is cut off the file");
        assert_eq!(
            std::fs::read_to_string(dir.join("bets.csv.journal")).unwrap(),
            "DONE 1 2\n"
        );

        // The counts are the whole rows': agency 2 holds one bet and is open.
        let mut peer = central.connect();
        peer.send(&done_frame(2, 5));
        assert_eq!(peer.recv().error(), Some((ErrorCode::MissingBets as u8, 1)));
        peer.send(&batch_frame(2, 1, &[numbered_bet(1, 7574)]));
        assert_eq!(peer.recv().ack(), Some((2, 2)));
        peer.send(&done_frame(2, 2));
        assert_eq!(peer.recv().ack(), Some((2, 2)));
        // Agency 1 over a connection of its own (one agency per connection).
        let mut peer = central.connect();
        peer.send(&batch_frame(1, 2, &[numbered_bet(2, 1)]));
        assert_eq!(
            peer.recv().error(),
            Some((ErrorCode::AgencyClosed as u8, 2))
        );
        assert!(central.bets_csv().starts_with(ROWS));
        assert_eq!(central.bets_csv().lines().count(), 4);
    }
    util::report(format_args!(
        "torn files: {} torn last rows and a torn journal entry cut off and logged at start-up",
        torn_rows.len()
    ));
}

#[test]
fn nul_bytes_past_the_rows_a_done_vouches_for_and_the_rows_after_them_are_cut_off_and_logged_at_start_up()
 {
    // What a power cut can leave past the last synced row: a block never
    // written (zeros) before a later one that was.
    let dir = temp_dir("hole");
    let mut bets = ROWS.as_bytes().to_vec();
    bets.extend_from_slice(&[0; 4096]);
    bets.extend_from_slice(b"74\r\n2,Carla,Ruiz,444,1990-01-01,75\r\n");
    std::fs::write(dir.join("bets.csv"), &bets).unwrap();
    std::fs::write(dir.join("bets.csv.journal"), "DONE 1 2\n").unwrap();
    let central = Central::start(&dir, 2, &[]);
    let logs = central.logs();
    for line in [
        format!(
            "action: recuperar_apuestas | result: success | cortados_bytes: {} | desde_linea: 4 | bytes_nulos: 4096 |",
            bets.len() - ROWS.len()
        ),
        "action: recuperar | result: success | apuestas: 3 | agencias_cerradas: 1".to_string(),
    ] {
        assert!(logs.contains(&line), "missing {line:?} in {logs}");
    }
    assert_eq!(central.bets_csv(), ROWS, "the tail is cut off the file");
    let mut peer = central.connect();
    peer.send(&batch_frame(2, 1, &[numbered_bet(1, 7574)]));
    assert_eq!(peer.recv().ack(), Some((2, 2)));
    assert_eq!(central.bets_csv().lines().count(), 4);
    util::report(format_args!(
        "a hole past the synced rows: {} bytes cut off at start-up, 4096 of them NUL",
        bets.len() - ROWS.len()
    ));
}

#[test]
fn a_file_corrupt_before_its_last_line_is_reported_and_the_central_refuses_to_start() {
    let rows: Vec<&str> = ROWS.split_inclusive("\r\n").collect();
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "a garbage line in the middle",
            format!("{}garbage\r\n{}{}", rows[0], rows[1], rows[2]),
            "",
            "bets.csv is corrupt at line 2: 1 fields instead of 6",
        ),
        (
            "a row with a field missing",
            format!("{}1,Ana,Lorca,1999-03-17,1\r\n{}", rows[0], rows[2]),
            "",
            "bets.csv is corrupt at line 2: 5 fields instead of 6",
        ),
        (
            "a document that is not digits",
            format!(
                "{}{}1,Ana,Lorca,12x,1999-03-17,1\r\n{}",
                rows[0], rows[1], rows[2]
            ),
            "",
            "bets.csv is corrupt at line 3: document is not digits",
        ),
        (
            "a number out of range",
            format!("1,Ana,Lorca,1,1999-03-17,10000\r\n{}", rows[1]),
            "",
            "bets.csv is corrupt at line 1: number is not 0..=9999",
        ),
        (
            "an agency beyond AGENCIES: another lottery's files, not corruption",
            format!("{}7,Ana,Lorca,1,1999-03-17,1\r\n{}", rows[0], rows[1]),
            "",
            "bets.csv is a bet of agency 7, but this central expects AGENCIES=2. The files are not corrupt",
        ),
        (
            "a whole last line that is not a row (a torn row has no line end)",
            format!("{ROWS}garbage\r\n"),
            "",
            "bets.csv is corrupt at line 4: 1 fields instead of 6",
        ),
        (
            "NUL bytes among bets a DONE vouches for (synced: not a power cut's tail)",
            format!("{}\0\0\0\0{}{}", rows[0], rows[1], rows[2]),
            "DONE 1 2\n",
            "bets.csv is corrupt at line 2: NUL bytes among bets the journal says were synced",
        ),
        (
            "a garbage journal entry before the last",
            ROWS.to_string(),
            "DONE 1 2\nDONE x\nDONE 2 1\n",
            "bets.csv.journal is corrupt at line 2",
        ),
        (
            "a journal that closes an agency with bets the file does not hold",
            ROWS.to_string(),
            "DONE 1 3\n",
            "bets.csv.journal is corrupt at line 1: agency 1 closed with 3 bets but the bets file holds 2",
        ),
    ];
    for (i, (what, bets, journal, message)) in cases.iter().enumerate() {
        let dir = temp_dir(&format!("corrupt-{i}"));
        std::fs::write(dir.join("bets.csv"), bets).unwrap();
        std::fs::write(dir.join("bets.csv.journal"), journal).unwrap();
        let (code, stderr) = start_on_bad_files(&dir, 2);
        assert_eq!(code, Some(1), "{what}: {stderr}");
        assert!(
            stderr.contains("action: iniciar | result: fail | error: cannot open the bets file: ")
                && stderr.contains(message),
            "{what}: expected {message:?} in {stderr}"
        );
        assert!(!stderr.contains("action: escuchar"), "{what}: {stderr}");
        assert_eq!(
            std::fs::read_to_string(dir.join("bets.csv")).unwrap(),
            *bets,
            "{what}: the file is left as it was"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("bets.csv.journal")).unwrap(),
            *journal,
            "{what}: the journal is left as it was"
        );
    }
    util::report(format_args!(
        "corrupt files: {} kinds of corruption refused at start-up with exit code 1 and the line named",
        cases.len()
    ));
}

// ---------------------------------------------------------------------------
// A full disk.

/// A tmpfs mounted for one test; unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(path).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
        }
        Ok(Tmpfs {
            path: path.to_owned(),
        })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.path).status();
        }
    }
}

/// Fills the filesystem of `dir` with a file, up to the last byte it takes.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    for chunk in [1 << 16, 4096, 1] {
        let zeros = vec![0u8; chunk];
        while f.write_all(&zeros).is_ok() {}
    }
    path
}

#[test]
fn a_full_disk_gets_error_storage_with_nothing_torn_and_the_retries_are_stored_once_space_is_freed()
{
    let dir = temp_dir("disk-full");
    let mnt = dir.join("mnt");
    let _tmpfs = match Tmpfs::mount(&mnt, "1m") {
        Ok(t) => t,
        Err(e) if std::env::var("REQUIRE_ROOT_MOUNT").as_deref() != Ok("1") => {
            util::report(format_args!(
                "disk full: skipped, cannot mount a tmpfs (needs root): {e}"
            ));
            return;
        }
        Err(e) => panic!("REQUIRE_ROOT_MOUNT=1 but the tmpfs cannot be mounted: {e}"),
    };
    let bets_csv = mnt.join("bets.csv");
    let journal = mnt.join("bets.csv.journal");
    let bets_csv_env = bets_csv.display().to_string();
    let mut central = Central::start(&dir, 2, &[("BETS_FILE", &bets_csv_env)]);
    let mut peer = central.connect();
    let bets: Vec<_> = (0..170).map(|i| numbered_bet(i, (i % 3) as u16)).collect();
    peer.send(&batch_frame(1, 0, &bets[..20]));
    assert_eq!(peer.recv().ack(), Some((1, 20)));
    let before = std::fs::read(&bets_csv).unwrap();

    // A commit larger than what is left of the file's last page: part of it
    // is written, then the disk refuses.
    let filler = fill(&mnt);
    let mut refused = 0;
    peer.send(&batch_frame(1, 20, &bets[20..]));
    assert_eq!(peer.recv().error(), Some((ErrorCode::Storage as u8, 0)));
    refused += 1;
    assert_eq!(
        std::fs::read(&bets_csv).unwrap(),
        before,
        "nothing of the refused batch stays, not even part of a row"
    );
    peer.send(&done_frame(1, 20));
    assert_eq!(peer.recv().error(), Some((ErrorCode::Storage as u8, 0)));
    refused += 1;
    assert_eq!(std::fs::read(&journal).unwrap(), b"");
    // A batch and the DONE it completes, in one commit: both refused.
    let mut both = batch_frame(1, 20, &bets[20..]);
    both.extend(done_frame(1, 170));
    peer.send(&both);
    assert_eq!(peer.recv().error(), Some((ErrorCode::Storage as u8, 0)));
    assert_eq!(peer.recv().error(), Some((ErrorCode::Storage as u8, 0)));
    refused += 2;
    // The connection stays open and the counts are the durable ones.
    peer.send(&get_winners_frame(1, false));
    assert_eq!(peer.recv().kind, kind::NOT_READY);
    assert_eq!(std::fs::read(&bets_csv).unwrap(), before);

    std::fs::remove_file(&filler).unwrap();
    peer.send(&done_frame(1, 170));
    assert_eq!(
        peer.recv().error(),
        Some((ErrorCode::MissingBets as u8, 20)),
        "the refused bets were not counted"
    );
    peer.send(&batch_frame(1, 20, &bets[20..]));
    assert_eq!(peer.recv().ack(), Some((1, 170)));
    peer.send(&done_frame(1, 170));
    assert_eq!(peer.recv().ack(), Some((1, 170)));
    assert_eq!(std::fs::read_to_string(&journal).unwrap(), "DONE 1 170\n");

    // A real agency meets the full disk in the middle of its stream: a few
    // batches fit, then it gets STORAGE until space is freed, then finishes.
    let data = temp_dir("disk-full-data");
    let expected_winners = generate(&data, 2, 3_000, 9);
    let file = data.join("agency-2.csv");
    let filler = fill(&mnt);
    let free_now = 40 * 1024;
    let len = file_len(&filler);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(len - free_now)
        .unwrap();
    let mut agency = Agency::start(
        &dir,
        2,
        &central.addr(),
        &file,
        &[("CLI_CONNECT_TIMEOUT", "120s")],
    );
    let storage_failures = |logs: &str| logs.matches("| agencia: 2 | error: STORAGE").count();
    let deadline = Instant::now() + Duration::from_secs(60);
    while storage_failures(&central.logs()) < 3 {
        assert!(
            Instant::now() < deadline,
            "the agency never met the full disk: {}",
            central.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (rows, torn) = read_complete_rows(&bets_csv);
    let stored_while_full = rows.iter().filter(|r| r[0] == "2").count();
    assert_eq!(torn, 0, "no torn row while the disk is full");
    let sent = vec![
        bets.iter()
            .map(|b| {
                vec![
                    b.first_name.clone(),
                    b.last_name.clone(),
                    b.document.clone(),
                    String::from_utf8(lottery::bets::bet::format_date(b.birthdate).to_vec())
                        .unwrap(),
                    b.number.to_string(),
                ]
            })
            .collect(),
        read_csv(&file),
    ];
    let c = compare_rows(&rows, &sent);
    assert!(
        c.is_prefix.iter().all(|&p| p) && c.duplicated == 0 && c.foreign == 0,
        "{c:?}"
    );
    assert!(
        stored_while_full < 3_000,
        "the disk filled up in the middle of the stream"
    );
    assert!(central.is_running(), "the central is still up");

    std::fs::remove_file(&filler).unwrap();
    let (code, winners) = agency.finish(Duration::from_secs(60));
    assert_eq!(code, Some(0), "{}", agency.logs());
    assert_eq!(winners, Some(expected_winners[1]));
    let c = compare_with_files_and_sent(&bets_csv, &sent);
    let agency_refused = storage_failures(&central.logs());
    util::report(format_args!(
        "disk full: raw batches and DONEs refused with ERROR STORAGE: {refused} (file unchanged each time) | agency 2: {stored_while_full} of 3000 bets stored before the disk filled, {agency_refused} batches refused with STORAGE, then all stored | lost: {} | duplicated: {} | acknowledged then lost: {}",
        c.lost,
        c.duplicated,
        acknowledged_bets_lost(&agency)
    ));
    assert_no_loss(&c, "after the full disk");
    assert_eq!(acknowledged_bets_lost(&agency), 0);
}

fn compare_with_files_and_sent(bets_csv: &Path, sent: &[Vec<Vec<String>>]) -> Comparison {
    let (rows, torn) = read_complete_rows(bets_csv);
    assert_eq!(torn, 0);
    compare_rows(&rows, sent)
}

// ---------------------------------------------------------------------------
// SIGTERM under load.

/// What one raw-protocol agency saw before the central went away.
#[derive(Debug, Default)]
struct DriverReport {
    /// Bets sent (positions 0..sent of its stream).
    sent: u64,
    /// The highest stored count the central acknowledged.
    acknowledged: u64,
    /// ERROR frames received, by code.
    errors: Vec<u8>,
}

/// An agency that keeps `window` batches of `batch` bets in flight until
/// the connection ends, and remembers the highest ACK.
fn drive_agency(
    addr: String,
    agency: u32,
    batch: u64,
    window: usize,
    stop: Arc<AtomicBool>,
) -> DriverReport {
    let mut report = DriverReport::default();
    let mut peer = Peer::connect(&addr);
    peer.set_timeout(Duration::from_secs(5));
    let mut in_flight = 0;
    loop {
        while in_flight < window && !stop.load(Ordering::Relaxed) {
            let bets: Vec<_> = (report.sent..report.sent + batch)
                .map(|i| numbered_bet(agency as u64 * 10_000_000 + i, (i % 10) as u16))
                .collect();
            if peer
                .stream
                .write_all(&batch_frame(agency, report.sent as u32, &bets))
                .is_err()
            {
                return report;
            }
            report.sent += batch;
            in_flight += 1;
        }
        if in_flight == 0 {
            return report;
        }
        let Some(frame) = peer.try_recv() else {
            return report;
        };
        in_flight -= 1;
        if let Some((a, stored)) = frame.ack() {
            assert_eq!(a, agency);
            report.acknowledged = report.acknowledged.max(stored as u64);
        } else if let Some((code, _)) = frame.error() {
            report.errors.push(code);
        }
    }
}

#[test]
fn sigterm_under_load_exits_zero_within_a_second_and_every_acknowledged_bet_is_stored() {
    let dir = temp_dir("sigterm-load");
    let mut central = Central::start(&dir, 5, &[]);
    let stop = Arc::new(AtomicBool::new(false));
    let drivers: Vec<_> = (1..=5)
        .map(|agency| {
            let addr = central.addr();
            let stop = stop.clone();
            std::thread::spawn(move || drive_agency(addr, agency, 50, 8, stop))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut rows = util::RowWatcher::new(&dir.join("bets.csv"), 5);
    while rows.poll().iter().any(|&n| n < 2_000) {
        assert!(Instant::now() < deadline, "the load never built up");
        std::thread::sleep(Duration::from_millis(20));
    }

    let signalled = Instant::now();
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&central.child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = loop {
        if let Some(status) = central.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(10),
            "the central did not exit after SIGTERM: {}",
            central.logs()
        );
        std::thread::sleep(Duration::from_millis(2));
    };
    let exit_time = signalled.elapsed();
    stop.store(true, Ordering::Relaxed);
    let reports: Vec<DriverReport> = drivers.into_iter().map(|d| d.join().unwrap()).collect();

    let (rows, torn) = read_complete_rows(&dir.join("bets.csv"));
    let mut summary = Vec::new();
    for (i, report) in reports.iter().enumerate() {
        let agency = i as u32 + 1;
        let stored: Vec<&Vec<String>> =
            rows.iter().filter(|r| r[0] == agency.to_string()).collect();
        for (position, row) in stored.iter().enumerate() {
            let bet = numbered_bet(agency as u64 * 10_000_000 + position as u64, 0);
            assert_eq!(
                row[3], bet.document,
                "agency {agency}: row {position} is the bet sent at that position"
            );
        }
        assert!(
            stored.len() as u64 >= report.acknowledged,
            "agency {agency}: {} stored but {} acknowledged",
            stored.len(),
            report.acknowledged
        );
        assert!(stored.len() as u64 <= report.sent);
        summary.push(format!(
            "agency {agency}: sent {} acknowledged {} stored {} errors {:?}",
            report.sent,
            report.acknowledged,
            stored.len(),
            report.errors
        ));
    }
    util::report(format_args!(
        "sigterm under load: exit code {:?} after {} ms | {}",
        status.code(),
        exit_time.as_millis(),
        summary.join(" | ")
    ));
    assert_eq!(torn, 0);
    assert_eq!(status.code(), Some(0), "{}", central.logs());
    assert!(
        central
            .logs()
            .contains("action: shutdown | result: success | signal: SIGTERM")
    );
    // The issue's bound.
    assert!(
        exit_time <= Duration::from_secs(1),
        "the central took {} ms to exit after SIGTERM",
        exit_time.as_millis()
    );
}
