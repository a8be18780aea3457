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
//! - The lottery on it: two centrals on the formation's connection string,
//!   5 agencies x 100,000 bets, each agency with both centrals' addresses.
//!   Mid-ingest the primary node's machine and one central die (SIGKILL),
//!   and nobody acts: every agency finishes, nothing acknowledged is lost,
//!   each bet is stored once, the draw is recorded once and the winners are
//!   exact. The seconds from the kill to the next ACK are reported.
//! - Its control: the same cut with the monitor dead first; the lottery
//!   does not finish within the same bound, and nothing acknowledged is
//!   missing on the standby.
//!
//! Without pg_autoctl or PostgreSQL's binaries the tests say why and pass,
//! unless `REQUIRE_POSTGRES=1`.

mod util;

use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use lottery::bets::bet::Bet;
use postgres::{Config, NoTls};
use util::Central;
use util::formation::Formation;
use util::pg::{Drive, Drivers, documents_of, expected_winners, stream};

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

// ---------------------------------------------------------------------------
// The lottery on the formation: two centrals, agencies with both addresses.

const LOTTERY_AGENCIES: u32 = util::pg::AGENCIES as u32;

/// How long the agencies have to finish after the cut.
const FINISH_WITHIN: Duration = Duration::from_secs(30);

/// Two centrals on the formation's connection string, and agencies driving
/// them (both addresses each) until `share` of their bets is acknowledged.
fn lottery_on(
    formation: &Formation,
    name: &str,
    streams: &[Arc<Vec<Bet>>],
) -> (Central, Central, Drivers) {
    let [a, b] = ["a", "b"].map(|c| {
        let dir = util::temp_dir(&format!("formation-{name}-{c}"));
        Central::start(&dir, LOTTERY_AGENCIES, &[("STORAGE", formation.uri())])
    });
    let drive = Drive {
        addrs: vec![a.addr(), b.addr()],
        cut_every: None,
        done: vec![true; streams.len()],
    };
    let drivers = Drivers::start_with(drive, streams);
    let total: u64 = streams.iter().map(|s| s.len() as u64).sum();
    drivers.wait_acked(total * 2 / 5);
    (a, b, drivers)
}

#[test]
fn the_lottery_goes_on_by_itself_when_the_primary_node_and_a_central_die_mid_ingest() {
    let Some(mut formation) = Formation::start("lottery") else {
        return;
    };
    let per_agency: u64 = util::env_or("FAILOVER_BETS", 100_000);
    let streams: Vec<Arc<Vec<Bet>>> = (1..=util::pg::AGENCIES)
        .map(|a| Arc::new(stream(a, per_agency)))
        .collect();
    let started = Instant::now();
    let (mut a, b, drivers) = lottery_on(&formation, "failover", &streams);

    // Two machines die, and nobody does anything else.
    let acked_at_cut = drivers.ledger.lock().unwrap().acked.clone();
    let cut = Instant::now();
    let killed = formation.kill_primary();
    a.child.kill().unwrap();
    let ledger = drivers.finish(FINISH_WITHIN);
    let finished = Instant::now();

    assert!(
        ledger.told_lower.is_empty(),
        "an agency was told less than it had been acknowledged: {:?}",
        ledger.told_lower
    );
    let mut client = formation.client();
    util::pg::assert_rows_of(&mut client, &streams);
    let draws: i64 = client
        .query_one("SELECT count(*) FROM lottery.draw", &[])
        .unwrap()
        .get(0);
    assert_eq!(draws, 1, "the draw is recorded once");
    let expected = expected_winners(&streams, 7574);
    for agency in 1..=LOTTERY_AGENCIES {
        let mut peer = b.connect();
        peer.send(&util::get_winners_frame(agency, true));
        let mut frames = Vec::new();
        loop {
            let f = peer.recv();
            assert_eq!(f.kind, lottery::wire::kind::WINNERS, "{}", b.logs());
            let last = f.body[8] == 1;
            frames.push(f.body);
            if last {
                break;
            }
        }
        assert_eq!(documents_of(&frames), expected[agency as usize - 1]);
    }

    let total = per_agency * util::pg::AGENCIES as u64;
    let before: u64 = acked_at_cut.iter().sum();
    let first_after = ledger
        .ack_times
        .iter()
        .copied()
        .filter(|&t| t > cut)
        .min()
        .expect("an ACK after the cut");
    let gap = first_after.duration_since(cut).as_secs_f64();
    let rate = |bets: u64, d: Duration| bets as f64 / d.as_secs_f64().max(1e-3);
    util::report(format_args!(
        "lottery failover: {killed} and central A killed at {before} of {total} bets acked; \
         {gap:.1} s from the kill to the next ACK; {:.0} bets/s before, {:.0} after; \
         0 acked lost, one draw, winners exact",
        rate(before, cut.duration_since(started)),
        rate(total - before, finished.duration_since(first_after)),
    ));
}

#[test]
fn with_the_monitor_dead_first_the_lottery_does_not_go_on_and_loses_nothing_acked() {
    let Some(mut formation) = Formation::start("lottery-no-monitor") else {
        return;
    };
    let per_agency: u64 = util::env_or("FAILOVER_BETS", 100_000);
    let streams: Vec<Arc<Vec<Bet>>> = (1..=util::pg::AGENCIES)
        .map(|a| Arc::new(stream(a, per_agency)))
        .collect();
    let (mut a, _b, drivers) = lottery_on(&formation, "no-monitor", &streams);
    let standby = formation.secondary().name;

    formation.stop_monitor();
    let killed = formation.kill_primary();
    a.child.kill().unwrap();
    let cut = Instant::now();
    while cut.elapsed() < FINISH_WITHIN {
        assert!(
            !drivers.all_closed(),
            "the lottery finished {:.1} s after the cut with no monitor",
            cut.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ledger = drivers.stop();
    let held = held_on(&formation, &standby);
    let lost = util::pg::lost(&ledger.acked, &held);
    util::report(format_args!(
        "lottery without the monitor: {killed} and central A killed; not finished within {} s \
         ({} of {} bets acked); {standby} still in recovery: {:?}; {lost} acked bets missing on it",
        FINISH_WITHIN.as_secs(),
        ledger.acked.iter().sum::<u64>(),
        per_agency * util::pg::AGENCIES as u64,
        formation.in_recovery(&standby)
    ));
    assert_eq!(lost, 0, "acked bets missing on the standby");
    assert!(ledger.told_lower.is_empty(), "{:?}", ledger.told_lower);
}

/// The bets per agency the node `name` holds.
fn held_on(formation: &Formation, name: &str) -> Vec<u64> {
    let mut client = formation.node_client(name).unwrap();
    let mut out = vec![0; util::pg::AGENCIES];
    for row in client
        .query(
            "SELECT agency, count(*) FROM lottery.bets GROUP BY agency",
            &[],
        )
        .unwrap()
    {
        let (agency, n): (i32, i64) = (row.get(0), row.get(1));
        out[agency as usize - 1] = n as u64;
    }
    out
}
