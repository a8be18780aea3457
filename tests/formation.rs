//! The database fails over by itself: a pg_auto_failover formation
//! (`tests/util/formation.rs`: a monitor, a primary and its synchronous
//! standby on loopback) promotes the standby when the primary's machine
//! dies, and a client holding only the formation's connection string (both
//! hosts, `target_session_attrs=read-write`) writes again, with every row
//! committed before the cut still there.
//!
//! - The failover: rows committed one by one through the connection
//!   string, the primary's pg_autoctl and PostgreSQL SIGKILLed at once, then
//!   writes through the same string until one commits (the seconds are
//!   reported); the rows are all there and the new primary commits alone.
//! - The control: with the monitor's machine dead first, nobody promotes
//!   the standby, and no write commits (so the failover is the monitor's
//!   doing, not something a standby does by itself).
//!
//! Without pg_autoctl or PostgreSQL's binaries the tests say why and pass,
//! unless `REQUIRE_POSTGRES=1`.

mod util;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use postgres::{Config, NoTls};
use util::formation::Formation;

/// Rows committed before the cut.
const ROWS: i32 = 200;

/// How long a commit may take before it counts as hung (a primary waiting
/// for a standby that is gone).
const COMMIT_WITHIN: Duration = Duration::from_secs(10);

/// What a write through the connection string came to.
enum Write {
    Committed,
    /// No read-write server answered, or the statement failed.
    Refused(String),
    /// Connected, but the commit did not come back.
    Hung,
}

/// Connects through `config` and inserts `id` into `bets`, on a thread of
/// its own so that a commit that never returns is seen as one.
fn write(config: &Config, id: i32) -> Write {
    let config = config.clone();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let outcome = config
            .connect(NoTls)
            .and_then(|mut c| c.execute("INSERT INTO bets (id) VALUES ($1)", &[&id]))
            .map(|_| ())
            .map_err(|e| e.to_string());
        let _ = tx.send(outcome);
    });
    match rx.recv_timeout(COMMIT_WITHIN) {
        Ok(Ok(())) => Write::Committed,
        Ok(Err(e)) => Write::Refused(e),
        Err(_) => Write::Hung,
    }
}

/// Creates `bets` and commits `ROWS` rows one by one through `config`.
fn commit_rows(config: &Config) {
    let mut client = config.connect(NoTls).unwrap();
    client
        .batch_execute("CREATE TABLE bets (id int PRIMARY KEY)")
        .unwrap();
    for id in 0..ROWS {
        client
            .execute("INSERT INTO bets (id) VALUES ($1)", &[&id])
            .unwrap();
    }
}

#[test]
fn the_formation_promotes_the_secondary_by_itself_after_the_primary_host_dies() {
    let Some(mut formation) = Formation::start("promotes") else {
        return;
    };
    let config = formation.config();
    commit_rows(&config);
    let standby = formation.secondary().name;

    let killed = formation.kill_primary();
    let cut = Instant::now();
    let deadline = cut + Duration::from_secs(60);
    let mut last;
    loop {
        match write(&config, ROWS) {
            Write::Committed => break,
            Write::Refused(e) => last = e,
            Write::Hung => panic!(
                "a commit hung after the failover (the new primary waits for a standby)\n{}",
                formation.logs()
            ),
        }
        assert!(
            Instant::now() < deadline,
            "no write committed within 60 s of the cut ({last}); nodes {:?}\n{}",
            formation.states(),
            formation.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let seconds = cut.elapsed().as_secs_f64();

    let mut client = config.connect(NoTls).unwrap();
    let (rows, below): (i64, i64) = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE id < $1) FROM bets",
            &[&ROWS],
        )
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    let standby_names: String = client
        .query_one("SHOW synchronous_standby_names", &[])
        .unwrap()
        .get(0);
    util::report(format_args!(
        "formation: {killed} killed, {standby} took writes after {seconds:.1} s; \
         {below} of {ROWS} rows committed before the cut kept; \
         synchronous_standby_names on the new primary '{standby_names}'"
    ));
    for event in formation.events().iter().rev().take(12).rev() {
        util::report(format_args!("formation event: {event}"));
    }
    assert_eq!(formation.in_recovery(&standby), Some(false));
    assert_eq!(below, i64::from(ROWS), "rows committed before the cut lost");
    assert_eq!(rows, i64::from(ROWS) + 1);
}

#[test]
fn with_the_monitor_stopped_first_nobody_promotes_the_secondary() {
    let Some(mut formation) = Formation::start("no-monitor") else {
        return;
    };
    let config = formation.config();
    commit_rows(&config);
    let standby = formation.secondary().name;

    formation.stop_monitor();
    let killed = formation.kill_primary();
    let cut = Instant::now();
    let window = Duration::from_secs(30);
    let mut attempts = 0;
    while cut.elapsed() < window {
        attempts += 1;
        match write(&config, ROWS) {
            Write::Committed => panic!(
                "a write committed {:.1} s after the cut with no monitor",
                cut.elapsed().as_secs_f64()
            ),
            Write::Refused(_) | Write::Hung => {}
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    util::report(format_args!(
        "formation without its monitor: {killed} killed, {attempts} writes refused over {} s, \
         {standby} in recovery: {:?}",
        window.as_secs(),
        formation.in_recovery(&standby)
    ));
    assert_eq!(formation.in_recovery(&standby), Some(true));
}
