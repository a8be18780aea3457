//! What a slow disk does to everyone else: the central's files on the
//! power-cut filesystem (`powercut/`) with every `fdatasync` made to take
//! `D` ms, 4 agencies ingesting as fast as their window allows, and
//! meanwhile what the OTHER agencies see:
//! - (a) a new connection's `GET_WINNERS wait=0` (read-only): connect to
//!   answer;
//! - (b) the ACK of a 1-bet batch from a fifth agency;
//! - (c) how late a parked `GET_WINNERS` (`PARK_TIMEOUT_MS`) and an idle
//!   connection (`IDLE_TIMEOUT_MS`) are answered or closed;
//! - (d) the ingesting agencies' bets/s;
//! - and how long a SIGTERM takes to end the central while they ingest.
//!
//! A measurement, not a test of times: it is `#[ignore]`d (run by hand,
//! never by `make test`), prints the figures, and checks only behaviour
//! (every reply is the one expected). Reproduce:
//! `cargo test --release --test slow_disk -- --ignored --nocapture`
//! (`SLOW_FSYNC_MS=0,200` the delays compared, `SLOW_SECONDS=8` per delay).
//! Needs FUSE, as `tests/power.rs`.

mod util;

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lottery::wire::kind;
use powercut::PowerCut;
use util::{
    Central, Peer, Rng, batch_frame, env_or, get_winners_frame, numbered_bet, report, temp_dir,
};

const INGESTING: u32 = 4;
/// The agency whose small batches are timed.
const SMALL: u32 = 5;
/// The agency whose GET_WINNERS are timed (it never closes).
const READER: u32 = 6;
const BATCH: u32 = 100;
const WINDOW: usize = 4;
const PARK_MS: u64 = 300;
const IDLE_MS: u64 = 500;
/// Between two samples of a probe: 50 ms and a random part up to 200 ms,
/// so that the samples land anywhere in a slow fsync, not in step with it.
const PACE_MS: (u64, u64) = (50, 250);

/// Latencies of one probe.
#[derive(Default)]
struct Samples(Vec<Duration>);

impl Samples {
    fn summary(&self) -> String {
        let mut v = self.0.clone();
        if v.is_empty() {
            return "no samples".into();
        }
        v.sort();
        let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
        format!(
            "n {:>3} | p50 {:>6.1} ms | p90 {:>6.1} ms | max {:>6.1} ms",
            v.len(),
            at(0.5),
            at(0.9),
            at(1.0)
        )
    }
}

fn connect(addr: &str) -> Peer {
    let peer = Peer::connect(addr);
    peer.set_timeout(Duration::from_secs(20));
    peer
}

/// One ingesting agency: batches of `BATCH`, `WINDOW` in flight, until
/// `stop`; counts the bets acknowledged. Once `ending` (the SIGTERM), the
/// central may close the connection.
fn ingest(agency: u32, addr: String, [stop, ending]: [Arc<AtomicBool>; 2], acked: Arc<AtomicU64>) {
    let mut peer = connect(&addr);
    let (mut next, mut in_flight) = (0u32, 0usize);
    loop {
        while in_flight < WINDOW && !stop.load(Ordering::Relaxed) {
            let bets: Vec<_> = (next..next + BATCH)
                .map(|i| numbered_bet(agency as u64 * 10_000_000 + i as u64, (i % 10_000) as u16))
                .collect();
            if std::io::Write::write_all(&mut peer.stream, &batch_frame(agency, next, &bets))
                .is_err()
            {
                assert!(
                    ending.load(Ordering::Relaxed),
                    "agency {agency}: send failed"
                );
                return;
            }
            next += BATCH;
            in_flight += 1;
        }
        if in_flight == 0 {
            return;
        }
        let Some(frame) = peer.try_recv() else {
            // The central ended (the SIGTERM at the end of a run).
            assert!(ending.load(Ordering::Relaxed), "agency {agency}: no ACK");
            return;
        };
        assert_eq!(frame.ack().map(|(a, _)| a), Some(agency), "{frame:?}");
        in_flight -= 1;
        acked.fetch_add(BATCH as u64, Ordering::Relaxed);
    }
}

/// Runs `sample` at random paces (`PACE_MS`) until `stop`, collecting what it measures.
fn probe(
    stop: &Arc<AtomicBool>,
    seed: u64,
    mut sample: impl FnMut() -> Option<Duration> + Send + 'static,
) -> JoinHandle<Samples> {
    let stop = stop.clone();
    let mut rng = Rng::new(seed);
    std::thread::spawn(move || {
        let mut s = Samples::default();
        while !stop.load(Ordering::Relaxed) {
            if let Some(d) = sample() {
                s.0.push(d);
            }
            std::thread::sleep(Duration::from_millis(rng.range(PACE_MS.0, PACE_MS.1)));
        }
        s
    })
}

struct Figures {
    delay_ms: u64,
    bets_per_s: f64,
    read_only: Samples,
    small_ack: Samples,
    park_late: Samples,
    idle_late: Samples,
    sigterm: Duration,
}

fn measure(delay_ms: u64, seconds: u64) -> Option<Figures> {
    if let Some(why) = powercut::unavailable() {
        report(format_args!("slow disk: skipped, {why}"));
        return None;
    }
    let dir = temp_dir(&format!("slow-disk-{delay_ms}"));
    let (backing, mnt) = (dir.join("disk"), dir.join("mnt"));
    std::fs::create_dir_all(&backing).unwrap();
    std::fs::create_dir_all(&mnt).unwrap();
    let fs = PowerCut::mount(&backing, &mnt).expect("mount powercut");
    let bets = mnt.join("bets.csv").display().to_string();
    let (park, idle) = (PARK_MS.to_string(), IDLE_MS.to_string());
    let mut central = Central::start(
        &dir,
        READER,
        &[
            ("BETS_FILE", bets.as_str()),
            ("PARK_TIMEOUT_MS", park.as_str()),
            ("IDLE_TIMEOUT_MS", idle.as_str()),
        ],
    );
    // After the start, whose directory syncs would only slow the start.
    fs.slow_fsyncs(Duration::from_millis(delay_ms), None);
    let addr = central.addr();
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let stop_probes = Arc::new(AtomicBool::new(false));
    let ingesters: Vec<_> = (1..=INGESTING)
        .map(|agency| {
            let flags = [stop.clone(), stop_probes.clone()];
            let (addr, acked) = (addr.clone(), acked.clone());
            std::thread::spawn(move || ingest(agency, addr, flags, acked))
        })
        .collect();

    let a = addr.clone();
    let read_only = probe(&stop_probes, 1, move || {
        let started = Instant::now();
        let mut peer = connect(&a);
        peer.send(&get_winners_frame(READER, false));
        let reply = peer.recv();
        assert_eq!(reply.kind, kind::NOT_READY, "{reply:?}");
        Some(started.elapsed())
    });
    let mut small_peer = connect(&addr);
    let mut small_next = 0u32;
    let small_ack = probe(&stop_probes, 2, move || {
        let bet = numbered_bet(SMALL as u64 * 10_000_000 + small_next as u64, 7);
        let started = Instant::now();
        small_peer.send(&batch_frame(SMALL, small_next, &[bet]));
        let reply = small_peer.recv();
        small_next += 1;
        assert_eq!(reply.ack(), Some((SMALL, small_next)), "{reply:?}");
        Some(started.elapsed())
    });
    let mut parked = connect(&addr);
    let park_late = probe(&stop_probes, 3, move || {
        let started = Instant::now();
        parked.send(&get_winners_frame(READER, true));
        let reply = parked.recv();
        assert_eq!(reply.kind, kind::NOT_READY, "{reply:?}");
        Some(
            started
                .elapsed()
                .saturating_sub(Duration::from_millis(PARK_MS)),
        )
    });
    let a = addr.clone();
    let idle_late = probe(&stop_probes, 4, move || {
        let mut stream = TcpStream::connect(&a).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let started = Instant::now();
        let closed = matches!(stream.read(&mut [0u8; 1]), Ok(0) | Err(_));
        assert!(closed, "an idle connection got bytes");
        Some(
            started
                .elapsed()
                .saturating_sub(Duration::from_millis(IDLE_MS)),
        )
    });

    // The first second warms up; bets/s over the rest.
    std::thread::sleep(Duration::from_secs(1));
    let (from, started) = (acked.load(Ordering::Relaxed), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds.saturating_sub(1).max(1)));
    let bets_per_s =
        (acked.load(Ordering::Relaxed) - from) as f64 / started.elapsed().as_secs_f64();
    stop_probes.store(true, Ordering::Relaxed);
    let (read_only, small_ack, park_late, idle_late) = (
        read_only.join().unwrap(),
        small_ack.join().unwrap(),
        park_late.join().unwrap(),
        idle_late.join().unwrap(),
    );
    // SIGTERM while the agencies still ingest.
    let signalled = Instant::now();
    let status = central.signal_and_wait("TERM", Duration::from_secs(60));
    let sigterm = signalled.elapsed();
    assert!(status.success(), "{status}: {}", central.logs());
    stop.store(true, Ordering::Relaxed);
    for i in ingesters {
        i.join().unwrap();
    }
    fs.unmount().unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    Some(Figures {
        delay_ms,
        bets_per_s,
        read_only,
        small_ack,
        park_late,
        idle_late,
        sigterm,
    })
}

#[test]
#[ignore = "a measurement: run by hand with --ignored --nocapture"]
fn what_a_slow_fdatasync_does_to_the_other_agencies() {
    let delays: String = env_or("SLOW_FSYNC_MS", "0,200".to_string());
    let seconds: u64 = env_or("SLOW_SECONDS", 8);
    let mut all = Vec::new();
    for d in delays.split(',') {
        let d: u64 = d
            .trim()
            .parse()
            .expect("SLOW_FSYNC_MS: numbers, comma-separated");
        let Some(f) = measure(d, seconds) else { return };
        all.push(f);
    }
    report(format_args!(
        "slow disk: {INGESTING} agencies ingesting (batches of {BATCH}, {WINDOW} in flight), {seconds} s per delay, PARK_TIMEOUT_MS={PARK_MS}, IDLE_TIMEOUT_MS={IDLE_MS}"
    ));
    for f in &all {
        report(format_args!(
            "fdatasync {:>4} ms: ingest {:>8.0} bets/s | SIGTERM to exit {:>6.1} ms\n  (a) new connection, GET_WINNERS wait=0: {}\n  (b) ACK of a 1-bet batch:              {}\n  (c) park timeout fires late by:         {}\n      idle timeout fires late by:         {}",
            f.delay_ms,
            f.bets_per_s,
            f.sigterm.as_secs_f64() * 1000.0,
            f.read_only.summary(),
            f.small_ack.summary(),
            f.park_late.summary(),
            f.idle_late.summary(),
        ));
    }
}
