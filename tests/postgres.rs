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

use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lottery::bets::bet::Bet;
use lottery::store::pg_sessions::{Sessions, Split};
use lottery::wire::ErrorCode;
use postgres::{Client, NoTls};
use util::pg::*;
use util::{
    Central, Peer, batch_frame, done_frame, free_port, get_winners_frame, server_bin, temp_dir,
};

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
    // The central's sessions cut while the bets are locked and being
    // deleted: whenever it connects again (its store's thread does so by
    // itself), its first read waits for the lock and finds them gone.
    let mut client = pg.client();
    client
        .batch_execute(
            "BEGIN; LOCK TABLE lottery.bets IN ACCESS EXCLUSIVE MODE; \
             DELETE FROM lottery.bets WHERE agency = 1 AND position >= 150; \
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE backend_type = 'client backend' AND pid <> pg_backend_pid(); COMMIT",
        )
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
fn centrals_started_at_once_on_an_empty_database_all_come_up_and_serve_one_lottery() {
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
        let bets = stream(1, 200);
        let mut peer = centrals[round].connect();
        peer.send(&batch_frame(1, 0, &bets[..100]));
        assert_eq!(ack_of(&mut peer), Ok(100));
        assert_eq!(pg.stored()[0], 100);
        // The agency goes on at another central, which started before
        // those bets were stored: it reads the agency's count at the bind.
        let mut peer = centrals[(round + 1) % centrals.len()].connect();
        peer.send(&batch_frame(1, 100, &bets[100..]));
        assert_eq!(ack_of(&mut peer), Ok(200));
        assert_eq!(pg.stored()[0], 200);
    }
}
