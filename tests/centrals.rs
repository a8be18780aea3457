//! No single central: two centrals serve one lottery on one PostgreSQL
//! database at the same time, and the database decides everything decided
//! once (a bet's position, an agency's count, its close, the draw).
//!
//! - Agencies cut and moved between the two centrals every few hundred
//!   milliseconds, whatever is in flight; the last two DONEs committed on
//!   the two centrals at the same moment: every bet stored once, no agency
//!   ever told a count below one it was acknowledged, one draw, and every
//!   agency answered its own winners by either central.
//! - The last two DONEs at once, round after round on a fresh database:
//!   the draw is recorded in every round (never missed by both), once.
//! - A central whose database connections are terminated again and again
//!   while agencies are connected to it: it acknowledges nothing it cannot
//!   keep, its agencies move to the other central and finish, exact.
//!
//! Without PostgreSQL's binaries the tests say why and pass, unless
//! `REQUIRE_POSTGRES=1` (as `.ci/run` sets).

mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use lottery::bets::bet::Bet;
use util::pg::*;
use util::{Central, Peer, batch_frame, done_frame, get_winners_frame, temp_dir};

const WINNING: u16 = 7574;

/// Two centrals on `url`, each in a directory of its own, `agencies`
/// expected; `names` become their `application_name`s.
fn two_centrals(name: &str, url: &str, agencies: u32) -> [Central; 2] {
    ["central-a", "central-b"].map(|app| {
        let dir = temp_dir(&format!("{name}-{app}"));
        let sep = if url.contains('?') { '&' } else { '?' };
        let url = format!("{url}{sep}application_name={app}");
        Central::start(&dir, agencies, &[("STORAGE", &url)])
    })
}

/// The reply to one request, within `within`.
fn reply(peer: &mut Peer, within: Duration) -> Option<util::RawFrame> {
    peer.set_timeout(within);
    peer.try_recv()
}

/// Sends each agency's DONE to its central at the same moment; every one
/// must be acknowledged with its total.
fn dones_at_once(dones: &[(&Central, u32, u32)]) {
    let barrier = Arc::new(Barrier::new(dones.len()));
    let threads: Vec<_> = dones
        .iter()
        .map(|&(central, agency, total)| {
            let mut peer = central.connect();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                let frame = done_frame(agency, total);
                barrier.wait();
                peer.send(&frame);
                let ack = reply(&mut peer, Duration::from_secs(20)).map(|f| f.ack());
                assert_eq!(ack, Some(Some((agency, total))), "agency {agency}'s DONE");
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

/// Each agency's winners as `central` answers them (wait=1), or `None` if
/// it does not within `within`.
fn winners_from(central: &Central, agencies: u32, within: Duration) -> Option<Vec<Vec<String>>> {
    let mut out = Vec::new();
    for agency in 1..=agencies {
        let mut peer = central.connect();
        peer.send(&get_winners_frame(agency, true));
        let mut frames = Vec::new();
        loop {
            let f = reply(&mut peer, within)?;
            if f.kind != lottery::wire::kind::WINNERS {
                return None;
            }
            let last = f.body[8] == 1;
            frames.push(f.body);
            if last {
                break;
            }
        }
        out.push(documents_of(&frames));
    }
    Some(out)
}

fn draws_recorded(pg: &Pg) -> i64 {
    pg.client()
        .query_one("SELECT count(*) FROM lottery.draw", &[])
        .unwrap()
        .get(0)
}

fn streams(per_agency: u64) -> Vec<Arc<Vec<Bet>>> {
    (1..=AGENCIES)
        .map(|a| Arc::new(stream(a, per_agency)))
        .collect()
}

#[test]
fn two_centrals_serve_one_lottery_with_agencies_cut_and_moved_between_them_and_draw_once() {
    let Some(bin) = pg_bin("two-centrals") else {
        return;
    };
    let root = PgRoot::new("two-centrals");
    let pg = Pg::primary(&bin, &root, "primary", None);
    let per_agency: u64 = util::env_or("PG_BETS", 60_000);
    let streams = streams(per_agency);
    let [a, b] = two_centrals("two-centrals", &pg.url(), AGENCIES as u32);
    // Agencies 4 and 5 are closed by the test, on the two centrals at once.
    let done = vec![true, true, true, false, false];
    let drive = Drive {
        addrs: vec![a.addr(), b.addr()],
        cut_every: Some(Duration::from_millis(200)),
        done: done.clone(),
    };
    let drivers = Drivers::start_with(drive, &streams);
    let ledger = drivers.finish_with(&streams, &done, Duration::from_secs(300));
    dones_at_once(&[(&a, 4, per_agency as u32), (&b, 5, per_agency as u32)]);

    assert!(
        ledger.told_lower.is_empty(),
        "a central told an agency less than it had been acknowledged: {:?}",
        ledger.told_lower
    );
    assert_rows_are_the_streams(&pg, &streams);
    let expected = expected_winners(&streams, WINNING);
    for central in [&a, &b] {
        let answered = winners_from(central, AGENCIES as u32, Duration::from_secs(20));
        assert_eq!(answered.as_ref(), Some(&expected), "{}", central.logs());
    }
    assert_eq!(draws_recorded(&pg), 1);
    assert_eq!(pg.closed(), vec![true; AGENCIES]);
    util::report(format_args!(
        "two centrals: {} bets, {} connections (cut every 200 ms), {} ACKs, 0 told lower, one draw",
        per_agency * AGENCIES as u64,
        ledger.connections,
        ledger.acks
    ));
}

#[test]
fn the_last_two_dones_committed_on_two_centrals_at_once_record_the_draw_once_every_round() {
    let Some(bin) = pg_bin("last-dones") else {
        return;
    };
    let root = PgRoot::new("last-dones");
    let pg = Pg::primary(&bin, &root, "primary", None);
    let bets = [stream(1, 50), stream(2, 50)];
    for round in 0..8 {
        pg.client()
            .batch_execute("DROP SCHEMA IF EXISTS lottery CASCADE")
            .unwrap();
        let [a, b] = two_centrals(&format!("last-dones-{round}"), &pg.url(), 2);
        for (central, agency) in [(&a, 1u32), (&b, 2)] {
            let mut peer = central.connect();
            peer.send(&batch_frame(agency, 0, &bets[agency as usize - 1]));
            assert_eq!(peer.recv().ack(), Some((agency, 50)));
        }
        dones_at_once(&[(&a, 1, 50), (&b, 2, 50)]);
        // Each central answers the agency that closed on the other one.
        for (central, agency) in [(&b, 1u32), (&a, 2)] {
            let mut peer = central.connect();
            peer.send(&get_winners_frame(agency, true));
            let answer = reply(&mut peer, Duration::from_secs(10));
            assert_eq!(
                answer.as_ref().map(|f| f.kind),
                Some(lottery::wire::kind::WINNERS),
                "round {round}: agency {agency} not answered its winners (the draw was missed?): {:?}\n{}",
                answer,
                central.logs()
            );
        }
        assert_eq!(draws_recorded(&pg), 1, "round {round}");
    }
}

#[test]
fn a_central_cut_off_from_the_database_again_and_again_acks_nothing_it_cannot_keep() {
    let Some(bin) = pg_bin("cut-off") else {
        return;
    };
    let root = PgRoot::new("cut-off");
    let pg = Pg::primary(&bin, &root, "primary", None);
    let per_agency: u64 = util::env_or("PG_BETS", 60_000);
    let streams = streams(per_agency);
    let [a, b] = two_centrals("cut-off", &pg.url(), AGENCIES as u32);
    // Every agency starts on central A, and moves on when it fails it.
    let drive = Drive {
        addrs: vec![a.addr(), b.addr()],
        cut_every: None,
        done: vec![true; AGENCIES],
    };
    let drivers = Drivers::start_with(drive, &streams);
    drivers.wait_acked(per_agency * AGENCIES as u64 / 5);

    // Central A's database connections terminated again and again, from
    // here until every agency finished.
    let cutting = Arc::new(AtomicBool::new(true));
    let cutter = {
        let (cutting, mut client) = (Arc::clone(&cutting), pg.client());
        std::thread::spawn(move || {
            let mut cuts = 0u64;
            while cutting.load(Ordering::Relaxed) {
                let rows = client
                    .query(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                         WHERE application_name = 'central-a'",
                        &[],
                    )
                    .unwrap();
                cuts += rows.len() as u64;
                std::thread::sleep(Duration::from_millis(150));
            }
            cuts
        })
    };
    let started = Instant::now();
    let ledger = drivers.finish(Duration::from_secs(300));
    cutting.store(false, Ordering::Relaxed);
    let cuts = cutter.join().unwrap();

    assert!(cuts > 0, "central A was never cut off");
    assert!(
        ledger.told_lower.is_empty(),
        "a central told an agency less than it had been acknowledged: {:?}",
        ledger.told_lower
    );
    assert_rows_are_the_streams(&pg, &streams);
    assert_eq!(draws_recorded(&pg), 1);
    let expected = expected_winners(&streams, WINNING);
    // A, reconnected once the cuts stop, learns the draw by itself.
    for central in [&b, &a] {
        let answered = winners_from(central, AGENCIES as u32, Duration::from_secs(30));
        assert_eq!(answered.as_ref(), Some(&expected), "{}", central.logs());
    }
    util::report(format_args!(
        "cut off: {cuts} of central A's sessions terminated over {:.1} s; {} connections; exact",
        started.elapsed().as_secs_f64(),
        ledger.connections
    ));
}
