//! Power loss, not just a killed process: the central's files on the
//! power-cut filesystem (`powercut/`), which keeps unsynced writes in memory
//! and loses them on command. A SIGKILL leaves the page cache intact, so
//! only a cut shows that an ACK waits for the disk.
//!
//! - 5 agencies (this test's own drivers, which record every ACK and every
//!   DONE acknowledged) ingest while the central is killed and the power cut
//!   at random moments, some of them while a DONE is on its way. Before each
//!   restart the backing directory (the disk) must hold every bet and every
//!   DONE acknowledged before the cut; at the end `bets.csv` is the union of
//!   the agencies' streams, each bet once, in order.
//! - The control: the same with `SYNC=never` must lose acknowledged bets,
//!   or the test cannot tell a central that syncs from one that does not.
//! - A failed `fdatasync` (EIO, ENOSPC) acknowledges nothing of its group
//!   and leaves no torn row; if even cutting back fails, the central exits
//!   and a restart recovers from the disk.
//! - The directory is synced after the files are created: a cut right after
//!   the first ACK keeps `bets.csv`.
//! - A hole: a cut that keeps a group's last unsynced write and loses the
//!   one before it leaves NUL bytes before whole rows; the restart cuts
//!   that tail off, logs it, and keeps every acknowledged bet.
//!
//! Sizes from the environment (every run prints its seed):
//! - `POWER_CUTS` (default 20): kills with a cut;
//! - `POWER_BETS` (default 20000): bets of the largest agency (agency i
//!   sends i/5 of it, so the agencies send DONE at different moments);
//! - `POWER_SEED`: replays a run.
//!
//! The large setting:
//! `POWER_CUTS=100 POWER_BETS=100000 cargo test --release --test power -- --nocapture survive`
//!
//! Without FUSE (`/dev/fuse`, `fusermount3`) the tests say why and pass,
//! unless `REQUIRE_FUSE=1` (as `.ci/run` sets it).

mod util;

use std::collections::VecDeque;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use lottery::bets::bet::Bet;
use lottery::wire::ErrorCode;
use powercut::PowerCut;
use util::{
    Central, Comparison, Peer, Rng, batch_frame, compare_rows, done_frame, env_or, free_port,
    numbered_bet, read_complete_rows, seed_from_env, temp_dir,
};

const AGENCIES: usize = 5;
const BATCH: u64 = 100;
const WINDOW: usize = 4;

/// A mounted power-cut filesystem for one test, with its directories.
struct Disk {
    fs: PowerCut,
    /// The test's directory: the central's logs are here, off the mount.
    dir: PathBuf,
    /// What survives a cut.
    backing: PathBuf,
    /// Where the central sees its files.
    mnt: PathBuf,
}

impl Disk {
    /// Mounts a fresh filesystem, or says why it cannot and returns `None`
    /// (a failure instead with `REQUIRE_FUSE=1`).
    fn mount(name: &str) -> Option<Disk> {
        let required = std::env::var("REQUIRE_FUSE").as_deref() == Ok("1");
        let skip = |why: String| {
            assert!(!required, "REQUIRE_FUSE=1 but {why}");
            util::report(format_args!("power ({name}): skipped, {why}"));
            None
        };
        if let Some(why) = powercut::unavailable() {
            return skip(why);
        }
        let dir = temp_dir(name);
        let (backing, mnt) = (dir.join("disk"), dir.join("mnt"));
        std::fs::create_dir_all(&backing).unwrap();
        std::fs::create_dir_all(&mnt).unwrap();
        match PowerCut::mount(&backing, &mnt) {
            Ok(fs) => Some(Disk {
                fs,
                dir,
                backing,
                mnt,
            }),
            Err(e) => skip(format!("the FUSE mount failed: {e}")),
        }
    }

    /// The central's settings with its files on the mount.
    fn env(&self) -> String {
        self.mnt.join("bets.csv").display().to_string()
    }

    /// Unmounts and removes the test's files (kept when a test fails).
    fn remove(self) {
        self.fs.unmount().unwrap();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The stream of agency `agency` (1-based): `total` numbered bets.
fn stream(agency: usize, total: u64) -> Vec<Bet> {
    (0..total)
        .map(|i| numbered_bet(agency as u64 * 10_000_000 + i, (i * 7 % 10_000) as u16))
        .collect()
}

/// A stream as the rows `bets.csv` holds (without the agency column).
fn rows_of(bets: &[Bet]) -> Vec<Vec<String>> {
    bets.iter()
        .map(|b| {
            vec![
                b.first_name.clone(),
                b.last_name.clone(),
                b.document.clone(),
                String::from_utf8(lottery::bets::bet::format_date(b.birthdate).to_vec()).unwrap(),
                b.number.to_string(),
            ]
        })
        .collect()
}

/// The complete `DONE <agency> <total>` entries of a journal.
fn journal_closes(path: &Path) -> Vec<(usize, u64)> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    std::str::from_utf8(&bytes[..complete])
        .expect("the journal is text")
        .lines()
        .map(|l| {
            let w: Vec<&str> = l.split(' ').collect();
            assert!(w.len() == 3 && w[0] == "DONE", "journal entry {l:?}");
            (w[1].parse().unwrap(), w[2].parse().unwrap())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The agencies: drivers that record what the central acknowledged.

/// What the central acknowledged, per agency (index 0 is agency 1). The
/// test holds the lock from the kill to the restart, and bumps `generation`:
/// a driver records a frame only under the lock and only from a connection
/// of the current generation, so what is recorded was acknowledged before
/// the cut.
#[derive(Debug, Default)]
struct Ledger {
    generation: u64,
    /// The last `ACK.stored` (after a cut: at most what the disk holds).
    acked: Vec<u64>,
    done_acked: Vec<bool>,
    /// A DONE sent and not answered yet.
    done_in_flight: Vec<bool>,
    /// DONEs sent, over the run.
    done_sends: u64,
}

struct Drivers {
    ledger: Arc<Mutex<Ledger>>,
    /// Notified (with `ledger`) each time a DONE is sent.
    done_sent: Arc<Condvar>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Drivers {
    fn start(addr: &str, streams: &[Arc<Vec<Bet>>]) -> Drivers {
        let ledger = Arc::new(Mutex::new(Ledger {
            acked: vec![0; streams.len()],
            done_acked: vec![false; streams.len()],
            done_in_flight: vec![false; streams.len()],
            ..Ledger::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let done_sent = Arc::new(Condvar::new());
        let threads = streams
            .iter()
            .enumerate()
            .map(|(i, bets)| {
                let (addr, bets) = (addr.to_string(), bets.clone());
                let (ledger, done_sent, stop) = (ledger.clone(), done_sent.clone(), stop.clone());
                std::thread::spawn(move || drive(i + 1, &bets, &addr, &ledger, &done_sent, &stop))
            })
            .collect();
        Drivers {
            ledger,
            done_sent,
            stop,
            threads,
        }
    }

    /// Whether every agency's DONE is acknowledged (the ingest is over).
    fn all_closed(&self) -> bool {
        self.ledger.lock().unwrap().done_acked.iter().all(|&d| d)
    }

    /// Waits until every agency is closed (at most `within`), then stops them.
    fn finish(self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.all_closed() {
            assert!(
                Instant::now() < deadline,
                "the agencies did not finish: {:?}",
                self.ledger.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.stop();
    }

    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("an agency driver panicked");
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum InFlight {
    Batch,
    Done,
}

/// One agency: sends its stream in batches with `WINDOW` in flight, then
/// DONE; reconnects whenever the connection ends, from the count it knows
/// is durable. Once its DONE is acknowledged it sends it again after each
/// restart, until `stop`.
fn drive(
    agency: usize,
    bets: &[Bet],
    addr: &str,
    ledger: &Mutex<Ledger>,
    done_sent_signal: &Condvar,
    stop: &AtomicBool,
) {
    let i = agency - 1;
    let total = bets.len() as u64;
    while !stop.load(Ordering::Relaxed) {
        let (generation, mut next) = {
            let l = ledger.lock().unwrap();
            (l.generation, l.acked[i])
        };
        let Ok(stream) = TcpStream::connect(addr) else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        let mut peer = Peer { stream };
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut done_sent = false;
        'connection: loop {
            if stop.load(Ordering::Relaxed) {
                return;
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
                if std::io::Write::write_all(
                    &mut peer.stream,
                    &done_frame(agency as u32, total as u32),
                )
                .is_err()
                {
                    break 'connection;
                }
                {
                    let mut l = ledger.lock().unwrap();
                    l.done_sends += 1;
                    l.done_in_flight[i] = true;
                }
                // The test may cut while this DONE is being committed.
                done_sent_signal.notify_all();
                in_flight.push_back(InFlight::Done);
                done_sent = true;
            }
            let Some(frame) = peer.try_recv() else {
                break 'connection;
            };
            let mut l = ledger.lock().unwrap();
            if l.generation != generation {
                break 'connection;
            }
            let sent = in_flight.pop_front().expect("a reply to something sent");
            if let Some((a, stored)) = frame.ack() {
                assert_eq!(a as usize, agency);
                l.acked[i] = stored as u64;
                if let InFlight::Done = sent {
                    assert_eq!(stored as u64, total);
                    l.done_acked[i] = true;
                    l.done_in_flight[i] = false;
                    // Closed. After the next restart it sends its DONE
                    // again (answered ACK once the journal holds it), so
                    // cuts keep landing while DONEs are committed.
                    drop(l);
                    while !stop.load(Ordering::Relaxed)
                        && ledger.lock().unwrap().generation == generation
                    {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    break 'connection;
                }
            } else {
                match frame.error() {
                    // The central holds fewer or more than this agency
                    // thought: start again from its count.
                    Some((code, stored))
                        if code == ErrorCode::OutOfOrder as u8
                            || code == ErrorCode::AgencyClosed as u8
                            || code == ErrorCode::MissingBets as u8 =>
                    {
                        l.acked[i] = l.acked[i].min(stored as u64);
                        break 'connection;
                    }
                    Some((code, _)) if code == ErrorCode::Storage as u8 => {
                        drop(l);
                        std::thread::sleep(Duration::from_millis(20));
                        break 'connection;
                    }
                    other => panic!("agency {agency}: unexpected reply {frame:?} ({other:?})"),
                }
            }
        }
        // The next connection resumes from what the central acknowledged
        // (its first ACK tells the central's own count).
        ledger.lock().unwrap().done_in_flight[i] = false;
    }
}

// ---------------------------------------------------------------------------
// The power-cut rounds.

/// What a run of kills with cuts found.
#[derive(Debug, Default)]
struct Outcome {
    cuts: usize,
    torn_cuts: usize,
    torn_writes: usize,
    files_lost: usize,
    /// Cuts that came right after a DONE was sent.
    done_cuts: usize,
    cuts_with_done_in_flight: usize,
    cuts_with_closed_agencies: usize,
    /// Acknowledged bets checked on the disk, summed over the cuts.
    acked_checked: u64,
    /// Acknowledged bets the disk did not hold, summed over the cuts.
    acked_lost: u64,
    /// The agencies' last `ACK.stored`, summed, once they all finished.
    acked_final: u64,
    /// Acknowledged DONEs the journal did not hold.
    dones_lost: u64,
    /// Cuts after which some agency's rows were not a prefix of its stream.
    not_prefix: usize,
    final_comparison: Option<Comparison>,
}

fn power_cuts(name: &str, sync: &str, cuts: usize, bets: u64, seed: u64) -> Option<Outcome> {
    let disk = Disk::mount(name)?;
    let mut rng = Rng::new(seed);
    let streams: Vec<Arc<Vec<Bet>>> = (1..=AGENCIES)
        .map(|a| Arc::new(stream(a, (bets * a as u64 / AGENCIES as u64).max(1))))
        .collect();
    let totals: Vec<u64> = streams.iter().map(|s| s.len() as u64).collect();
    let sent: Vec<Vec<Vec<String>>> = streams.iter().map(|s| rows_of(s)).collect();
    let work: u64 = totals.iter().sum();
    let bets_csv = disk.backing.join("bets.csv");
    let journal = disk.backing.join("bets.csv.journal");
    let env = [("BETS_FILE", disk.env()), ("SYNC", sync.to_string())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let port = free_port();
    let mut central = Central::start_on(&disk.dir, port, AGENCIES as u32, &env);
    let drivers = Drivers::start(&central.addr(), &streams);

    // Most cuts come when the acknowledged bets reach random fractions of
    // the work; a quarter come right after an agency sends DONE.
    let mut thresholds: Vec<u64> = (0..cuts)
        .map(|_| (work as f64 * (0.02 + 0.9 * rng.unit())) as u64)
        .collect();
    thresholds.sort_unstable();
    let mut thresholds = thresholds.into_iter().peekable();
    let mut done_cuts_left = cuts / 4;
    let mut done_sends_at_restart = 0;
    let mut out = Outcome::default();
    'cuts: while out.cuts < cuts {
        let deadline = Instant::now() + Duration::from_secs(120);
        let after_done = loop {
            {
                let l = drivers.ledger.lock().unwrap();
                // Woken as soon as a DONE is sent.
                let (l, _) = drivers
                    .done_sent
                    .wait_timeout(l, Duration::from_micros(200))
                    .unwrap();
                if done_cuts_left > 0 && l.done_sends > done_sends_at_restart {
                    break true;
                }
                let acked: u64 = l.acked.iter().sum();
                if thresholds.peek().is_some_and(|&t| acked >= t) {
                    thresholds.next();
                    break false;
                }
            }
            if drivers.all_closed() {
                break 'cuts;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: no progress before cut {}: {:?}: {}",
                out.cuts + 1,
                drivers.ledger.lock().unwrap(),
                central.logs()
            );
        };
        if after_done {
            // At once or a few microseconds later: the DONE's commit is
            // under way (a sleep would oversleep it).
            done_cuts_left -= 1;
            out.done_cuts += 1;
            let until = Instant::now() + Duration::from_micros(rng.range(0, 1) * rng.range(0, 50));
            while Instant::now() < until {
                std::hint::spin_loop();
            }
        } else {
            std::thread::sleep(Duration::from_micros(rng.range(0, 3_000)));
        }

        // The kill and the cut at the same instant: no driver records a
        // reply in between, and the dead central can sync nothing more.
        let mut l = drivers.ledger.lock().unwrap();
        central.child.kill().unwrap();
        central.child.wait().unwrap();
        let report = if rng.range(0, 1) == 0 {
            disk.fs.cut()
        } else {
            out.torn_cuts += 1;
            disk.fs.cut_tear(rng.next_u64())
        };
        out.cuts += 1;
        out.torn_writes += usize::from(report.torn.is_some_and(|(kept, of)| kept < of));
        out.files_lost += report.files_lost.len();
        out.cuts_with_done_in_flight += usize::from(l.done_in_flight.iter().any(|&d| d));

        // What the disk holds, before anything restarts.
        let (rows, _torn) = read_complete_rows(&bets_csv);
        let c = compare_rows(&rows, &sent);
        let closes = journal_closes(&journal);
        out.cuts_with_closed_agencies += usize::from(!closes.is_empty());
        out.not_prefix += usize::from(!c.is_prefix.iter().all(|&p| p) || c.duplicated > 0);
        for (i, &total) in totals.iter().enumerate() {
            let durable = if c.is_prefix[i] {
                c.stored_prefix[i]
            } else {
                0
            };
            out.acked_checked += l.acked[i];
            out.acked_lost += l.acked[i].saturating_sub(durable);
            l.acked[i] = l.acked[i].min(durable);
            if l.done_acked[i] && !closes.contains(&(i + 1, total)) {
                out.dones_lost += 1;
                l.done_acked[i] = false;
            }
        }
        let intact =
            out.acked_lost == 0 && out.dones_lost == 0 && out.not_prefix == 0 && c.foreign == 0;
        if sync == "always" && !intact {
            let why = format!(
                "{name}: cut {}: the disk lost acknowledged bets or DONEs ({report:?}; ledger {l:?}; disk {c:?}; journal {closes:?}): {}",
                out.cuts,
                central.logs()
            );
            // Not under the lock: the drivers would see it poisoned.
            drop(l);
            panic!("{why}");
        }
        l.generation += 1;
        l.done_in_flight.iter_mut().for_each(|d| *d = false);
        done_sends_at_restart = l.done_sends;
        central = Central::start_on(&disk.dir, port, AGENCIES as u32, &env);
        drop(l);
    }

    if sync == "always" {
        let ledger = drivers.ledger.clone();
        drivers.finish(Duration::from_secs(300));
        out.acked_final = ledger.lock().unwrap().acked.iter().sum();
        assert_eq!(
            central
                .signal_and_wait("TERM", Duration::from_secs(10))
                .code(),
            Some(0)
        );
        let (rows, torn) = read_complete_rows(&bets_csv);
        assert_eq!(torn, 0, "a graceful stop leaves no torn row");
        out.final_comparison = Some(compare_rows(&rows, &sent));
        let mut closes = journal_closes(&journal);
        closes.sort_unstable();
        let all: Vec<(usize, u64)> = (1..=AGENCIES).zip(totals.iter().copied()).collect();
        assert_eq!(
            closes, all,
            "{name}: every agency closed once, with its total"
        );
        drop(central);
        disk.remove();
    } else {
        drivers.stop();
        drop(central);
        disk.remove();
    }
    Some(out)
}

#[test]
fn acknowledged_bets_and_closes_survive_power_cuts_at_random_moments() {
    let cuts: usize = env_or("POWER_CUTS", 20);
    let bets: u64 = env_or("POWER_BETS", 20_000);
    let seed = seed_from_env("POWER_SEED");
    let started = Instant::now();
    let Some(out) = power_cuts("power-cuts", "always", cuts, bets, seed) else {
        return;
    };
    let c = out.final_comparison.clone().unwrap();
    util::report(format_args!(
        "power cuts: {} kills with a cut ({} of them tearing a random prefix, {} writes torn mid-way, {} right after a DONE was sent, {} before its ACK, {} with some agency closed) | files lost at cuts: {} | bets acknowledged: {} (checked on the disk at each cut, summed: {}) | acknowledged then lost: {} | acknowledged DONEs lost: {} | bets sent: {} | stored: {} | lost: {} | duplicated: {} | POWER_SEED={seed} | {:.1} s",
        out.cuts,
        out.torn_cuts,
        out.torn_writes,
        out.done_cuts,
        out.cuts_with_done_in_flight,
        out.cuts_with_closed_agencies,
        out.files_lost,
        out.acked_final,
        out.acked_checked,
        out.acked_lost,
        out.dones_lost,
        c.expected,
        c.stored,
        c.lost,
        c.duplicated,
        started.elapsed().as_secs_f64()
    ));
    assert_eq!(out.cuts, cuts, "every cut came in the middle of the ingest");
    assert_eq!((out.acked_lost, out.dones_lost), (0, 0));
    assert_eq!((c.lost, c.duplicated, c.foreign), (0, 0, 0), "{c:?}");
    assert!(c.out_of_order.is_empty(), "{c:?}");
    assert_eq!(c.stored, c.expected);
    assert!(
        out.cuts_with_closed_agencies > 0,
        "some cut came after an agency closed"
    );
}

#[test]
fn the_control_with_sync_never_loses_acknowledged_bets_at_a_power_cut() {
    let seed = seed_from_env("POWER_SEED");
    let bets: u64 = env_or("POWER_BETS", 20_000);
    let Some(out) = power_cuts("power-control", "never", 5, bets, seed) else {
        return;
    };
    util::report(format_args!(
        "power control (SYNC=never): {} kills with a cut | acknowledged bets checked: {} | acknowledged then lost: {} | acknowledged DONEs lost: {} | POWER_SEED={seed}",
        out.cuts, out.acked_checked, out.acked_lost, out.dones_lost
    ));
    assert!(
        out.acked_lost > 0,
        "without fdatasync the cuts should lose acknowledged bets; none lost, so the power-cut test could not tell"
    );
}

// ---------------------------------------------------------------------------
// Directed cases: the directory sync and failed syncs.

/// Starts a central on `disk` for one agency, with its files on the mount.
fn central_on(disk: &Disk, port: u16) -> Central {
    let bets = disk.env();
    Central::start_on(&disk.dir, port, 1, &[("BETS_FILE", bets.as_str())])
}

fn kill(central: &mut Central) {
    central.child.kill().unwrap();
    central.child.wait().unwrap();
}

#[test]
fn the_files_the_central_creates_survive_a_power_cut_right_after_the_first_ack() {
    let Some(disk) = Disk::mount("power-dirsync") else {
        return;
    };
    let bets = stream(1, 30);
    let mut central = central_on(&disk, free_port());
    let mut peer = central.connect();
    peer.send(&batch_frame(1, 0, &bets));
    assert_eq!(peer.recv().ack(), Some((1, 30)));
    peer.send(&done_frame(1, 30));
    assert_eq!(peer.recv().ack(), Some((1, 30)));
    kill(&mut central);
    let report = disk.fs.cut();
    let (rows, torn) = read_complete_rows(&disk.backing.join("bets.csv"));
    util::report(format_args!(
        "power, directory sync: after the first ACK and DONE, kill and cut: files lost {:?} | bets.csv on the disk: {} rows (30 acknowledged) | journal: {:?}",
        report.files_lost,
        rows.len(),
        journal_closes(&disk.backing.join("bets.csv.journal"))
    ));
    assert!(
        report.files_lost.is_empty(),
        "files created by the central were lost at the cut: {:?}",
        report.files_lost
    );
    assert_eq!((rows.len(), torn), (30, 0));
    let c = compare_rows(&rows, &[rows_of(&bets)]);
    assert_eq!((c.lost, c.duplicated, c.foreign), (0, 0, 0));
    assert_eq!(
        journal_closes(&disk.backing.join("bets.csv.journal")),
        vec![(1, 30)]
    );
    disk.remove();
}

#[test]
fn rows_written_ahead_of_a_commit_whose_fdatasync_fails_leave_the_disk_and_a_retry_stores_them_once()
 {
    use lottery::store::csv::{CsvStore, SyncPolicy};
    use lottery::wire::BetFields;
    let Some(disk) = Disk::mount("power-ahead-fails") else {
        return;
    };
    let (bets_csv, journal) = (disk.mnt.join("bets.csv"), disk.mnt.join("bets.csv.journal"));
    let (mut store, _) = CsvStore::open(&bets_csv, &journal, 1, 7574, SyncPolicy::Always).unwrap();
    // 20,000 rows are some 900 kB: several chunks of write ahead.
    let bets = stream(1, 20_000);
    let stage = |store: &mut CsvStore, bets: &[Bet]| {
        for b in bets {
            let r = b.as_ref();
            let fields = BetFields {
                first_name: r.first_name.as_bytes(),
                last_name: r.last_name.as_bytes(),
                document: r.document.as_bytes(),
                birthdate: r.birthdate,
                number: r.number,
            };
            store.stage_bet(1, &fields);
        }
    };
    stage(&mut store, &bets[..100]);
    store.commit().unwrap();
    let committed = std::fs::read(&bets_csv).unwrap();
    stage(&mut store, &bets[100..]);
    let ahead = std::fs::metadata(&bets_csv).unwrap().len();
    assert!(
        ahead > committed.len() as u64 + 200_000,
        "the staged rows went to the file before the commit ({ahead} bytes, {} committed)",
        committed.len()
    );
    disk.fs.fail_next_fsync(libc::EIO);
    assert!(
        store.commit().is_err(),
        "the failed fdatasync fails the commit"
    );
    assert_eq!(
        std::fs::read(&bets_csv).unwrap(),
        committed,
        "nothing of the failed group on the file, not even the rows written ahead"
    );
    stage(&mut store, &bets[100..]);
    store.commit().unwrap();
    drop(store);
    disk.fs.cut();
    let (rows, torn) = read_complete_rows(&disk.backing.join("bets.csv"));
    let c = compare_rows(&rows, &[rows_of(&bets)]);
    util::report(format_args!(
        "power, write ahead then a failed fdatasync: {ahead} bytes on the file before the commit, cut back to {}; after the retry and a cut: {} rows for {} committed | lost: {} | duplicated: {} | torn bytes: {torn}",
        committed.len(),
        rows.len(),
        bets.len(),
        c.lost,
        c.duplicated
    ));
    assert_eq!(
        (c.lost, c.duplicated, c.foreign, torn),
        (0, 0, 0, 0),
        "{c:?}"
    );
    assert_eq!(rows.len(), bets.len());
    disk.remove();
}

#[test]
fn a_failed_fdatasync_acknowledges_nothing_of_its_group_leaves_no_torn_row_and_the_central_serves_on()
 {
    let Some(disk) = Disk::mount("power-fsync-fails") else {
        return;
    };
    let bets = stream(1, 300);
    let bets_csv = disk.backing.join("bets.csv");
    let journal = disk.backing.join("bets.csv.journal");
    let mut central = central_on(&disk, free_port());
    let mut peer = central.connect();
    peer.send(&batch_frame(1, 0, &bets[..20]));
    assert_eq!(peer.recv().ack(), Some((1, 20)));
    let mut refused = 0;
    let mut acked = 20;
    for (round, code) in [libc::EIO, libc::ENOSPC, libc::EIO, libc::ENOSPC]
        .into_iter()
        .enumerate()
    {
        let before = std::fs::read(&bets_csv).unwrap();
        // A group of two batches, the second overlapping the first.
        disk.fs.fail_next_fsync(code);
        let mut group = batch_frame(1, acked, &bets[acked as usize..acked as usize + 40]);
        group.extend(batch_frame(
            1,
            acked + 20,
            &bets[acked as usize + 20..acked as usize + 50],
        ));
        peer.send(&group);
        for _ in 0..2 {
            assert_eq!(
                peer.recv().error(),
                Some((ErrorCode::Storage as u8, 0)),
                "round {round}: STORAGE for every batch of the group"
            );
            refused += 1;
        }
        assert_eq!(
            std::fs::read(&bets_csv).unwrap(),
            before,
            "round {round}: nothing of the failed group on the disk, not even part of a row"
        );
        assert!(central.is_running(), "round {round}: {}", central.logs());
        // The retry is stored once.
        peer.send(&batch_frame(
            1,
            acked,
            &bets[acked as usize..acked as usize + 50],
        ));
        acked += 50;
        assert_eq!(peer.recv().ack(), Some((1, acked)));
    }
    // A DONE whose journal sync fails is not acknowledged either.
    disk.fs.fail_next_fsync(libc::EIO);
    peer.send(&done_frame(1, acked));
    assert_eq!(peer.recv().error(), Some((ErrorCode::Storage as u8, 0)));
    refused += 1;
    assert_eq!(std::fs::read(&journal).unwrap(), b"");
    peer.send(&done_frame(1, acked));
    assert_eq!(peer.recv().ack(), Some((1, acked)));

    // After a cut the disk holds exactly what was acknowledged.
    kill(&mut central);
    disk.fs.cut();
    let (rows, torn) = read_complete_rows(&bets_csv);
    let c = compare_rows(&rows, &[rows_of(&bets[..acked as usize])]);
    util::report(format_args!(
        "power, failed fdatasync (EIO, ENOSPC): {refused} replies ERROR STORAGE, the disk unchanged each time, the central served on | after a cut: {} rows for {acked} acknowledged | lost: {} | duplicated: {} | torn bytes: {torn}",
        rows.len(),
        c.lost,
        c.duplicated
    ));
    assert_eq!(
        (c.lost, c.duplicated, c.foreign, torn),
        (0, 0, 0, 0),
        "{c:?}"
    );
    assert_eq!(rows.len() as u32, acked);
    assert_eq!(journal_closes(&journal), vec![(1, acked as u64)]);
    disk.remove();
}

#[test]
fn when_even_the_cut_back_cannot_be_synced_the_central_exits_and_a_restart_recovers_from_the_disk()
{
    let Some(disk) = Disk::mount("power-cutback-fails") else {
        return;
    };
    let bets = stream(1, 200);
    let bets_csv = disk.backing.join("bets.csv");
    let port = free_port();
    let mut central = central_on(&disk, port);
    let mut peer = central.connect();
    peer.send(&batch_frame(1, 0, &bets[..50]));
    assert_eq!(peer.recv().ack(), Some((1, 50)));
    // The group's fdatasync fails, and so does the fsync after the cut back.
    disk.fs.fail_next_fsync(libc::EIO);
    disk.fs.fail_next_fsync(libc::EIO);
    peer.send(&batch_frame(1, 50, &bets[50..150]));
    assert_eq!(
        peer.try_recv(),
        None,
        "nothing acknowledged; the connection ends"
    );
    let status = central.child.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{}", central.logs());
    assert!(
        central
            .logs()
            .contains("action: cortar_archivo | result: fail"),
        "{}",
        central.logs()
    );
    let (on_disk, torn) = read_complete_rows(&bets_csv);
    assert!(on_disk.len() >= 50, "the acknowledged bets are on the disk");

    central = central_on(&disk, port);
    let logs = central.logs();
    assert!(
        logs.contains(&format!(
            "action: recuperar | result: success | apuestas: {}",
            on_disk.len()
        )),
        "{logs}"
    );
    let mut peer = central.connect();
    peer.send(&batch_frame(1, 50, &bets[50..200]));
    assert_eq!(peer.recv().ack(), Some((1, 200)));
    kill(&mut central);
    disk.fs.cut();
    let (rows, _) = read_complete_rows(&bets_csv);
    let c = compare_rows(&rows, &[rows_of(&bets)]);
    util::report(format_args!(
        "power, cut back unsyncable: the central exited {:?} with 50 acknowledged; the disk held {} whole rows and {torn} torn bytes; the restart recovered them and stored the rest once: lost {} | duplicated {}",
        status.code(),
        on_disk.len(),
        c.lost,
        c.duplicated
    ));
    assert_eq!((c.lost, c.duplicated, c.foreign), (0, 0, 0), "{c:?}");
    assert!(c.out_of_order.is_empty());
    disk.remove();
}

// ---------------------------------------------------------------------------
// A hole: a filesystem that wrote a later unsynced block before an earlier one.

/// The state letter of process `pid` in `/proc` (`R`, `S`, `D`, `T`, ...).
fn process_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name in parentheses may hold spaces; the state follows it.
    stat.rsplit_once(") ")?.1.chars().next()
}

/// Stops the central (SIGSTOP) and waits until it can run no more of its
/// own code: stopped, or inside a system call (an fsync on the slow disk)
/// it will stop at the end of, before it could send an ACK.
fn freeze(central: &Central) {
    let pid = central.child.id();
    // SAFETY: kill only sends a signal to our own child.
    assert_eq!(unsafe { libc::kill(pid as i32, libc::SIGSTOP) }, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !matches!(process_state(pid), Some('T' | 't' | 'D')) {
        assert!(Instant::now() < deadline, "the central did not stop");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn thaw(central: &Central) {
    // SAFETY: as in `freeze`.
    assert_eq!(
        unsafe { libc::kill(central.child.id() as i32, libc::SIGCONT) },
        0
    );
}

#[test]
fn a_power_cut_that_leaves_a_hole_before_later_rows_is_cut_off_at_restart_and_every_acknowledged_bet_recovered()
 {
    use std::sync::atomic::AtomicU32;
    let Some(disk) = Disk::mount("power-hole") else {
        return;
    };
    let total = 10_000u32;
    let streams: Vec<Arc<Vec<Bet>>> = (1..=AGENCIES)
        .map(|a| Arc::new(stream(a, total as u64)))
        .collect();
    let bets_csv = disk.backing.join("bets.csv");
    let bets_on_mount = disk.env();
    let env = [("BETS_FILE", bets_on_mount.as_str())];
    let port = free_port();
    let mut central = Central::start_on(&disk.dir, port, AGENCIES as u32, &env);
    let mut peers: Vec<Peer> = (0..AGENCIES).map(|_| central.connect()).collect();
    for (i, peer) in peers.iter_mut().enumerate() {
        let agency = i as u32 + 1;
        peer.send(&batch_frame(agency, 0, &streams[i][..BATCH as usize]));
        assert_eq!(peer.recv().ack(), Some((agency, BATCH as u32)));
    }

    // A slow disk: while one group's fsync takes its time the agencies'
    // batches pile up, so the next group is large and several of its
    // writes wait unsynced at once.
    disk.fs.slow_fsyncs(Duration::from_millis(500), None);
    let acked: Arc<Vec<AtomicU32>> = Arc::new(
        (0..AGENCIES)
            .map(|_| AtomicU32::new(BATCH as u32))
            .collect(),
    );
    let mut threads = Vec::new();
    for (i, mut peer) in peers.into_iter().enumerate() {
        let agency = i as u32 + 1;
        let mut sender = peer.stream.try_clone().unwrap();
        let bets = streams[i].clone();
        threads.push(std::thread::spawn(move || {
            for first in (BATCH as u32..total).step_by(BATCH as usize) {
                let end = (first + BATCH as u32).min(total) as usize;
                let frame = batch_frame(agency, first, &bets[first as usize..end]);
                if std::io::Write::write_all(&mut sender, &frame).is_err() {
                    return;
                }
            }
        }));
        let acked = acked.clone();
        threads.push(std::thread::spawn(move || {
            while let Some(frame) = peer.try_recv() {
                if let Some((_, stored)) = frame.ack() {
                    acked[i].store(stored, Ordering::SeqCst);
                }
            }
        }));
    }

    // The power goes while a group's writes are unsynced: the central is
    // frozen first, so it acknowledges nothing of what the cut loses.
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        assert!(
            Instant::now() < deadline,
            "never two unsynced writes at once: {}",
            central.logs()
        );
        if disk.fs.pending() < 2 {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        freeze(&central);
        if disk.fs.pending() >= 2 {
            break disk.fs.cut_hole();
        }
        thaw(&central);
    };
    kill(&mut central);
    disk.fs.slow_fsyncs(Duration::ZERO, None);
    for t in threads {
        t.join().unwrap();
    }
    let acked: Vec<u32> = acked.iter().map(|a| a.load(Ordering::SeqCst)).collect();

    // What the disk holds: a hole, then whole rows written after it.
    let on_disk = std::fs::read(&bets_csv).unwrap();
    let hole_at = on_disk
        .iter()
        .position(|&b| b == 0)
        .unwrap_or_else(|| panic!("no hole on the disk: {report:?}"));
    let lines_after_hole = on_disk[hole_at..].iter().filter(|&&b| b == b'\n').count();
    assert!(
        lines_after_hole > 0,
        "the hole is not followed by a whole line: {report:?}"
    );

    central = Central::start_on(&disk.dir, port, AGENCIES as u32, &env);
    let logs = central.logs();
    let cut_line = logs
        .lines()
        .find(|l| l.contains("action: recuperar_apuestas | result: success"))
        .unwrap_or_else(|| panic!("the cut is not logged: {logs}"));
    let kept = std::fs::read(&bets_csv).unwrap();
    assert!(!kept.contains(&0), "a NUL byte is left in bets.csv");
    assert!(
        cut_line.contains(&format!("cortados_bytes: {}", on_disk.len() - kept.len())),
        "{cut_line}"
    );
    let (rows, torn) = read_complete_rows(&bets_csv);
    let sent: Vec<Vec<Vec<String>>> = streams.iter().map(|s| rows_of(s)).collect();
    let c = compare_rows(&rows, &sent);
    assert_eq!((torn, c.duplicated, c.foreign), (0, 0, 0), "{c:?}");
    assert!(c.is_prefix.iter().all(|&p| p), "{c:?}");
    for (i, &a) in acked.iter().enumerate() {
        assert!(
            c.stored_prefix[i] >= a as u64,
            "agency {}: {a} acknowledged, {} recovered: {c:?}",
            i + 1,
            c.stored_prefix[i]
        );
    }
    assert!(
        logs.contains(&format!(
            "action: recuperar | result: success | apuestas: {} |",
            rows.len()
        )),
        "{logs}"
    );

    // The agencies resume from what the central holds; every bet is stored once.
    for (i, bets) in streams.iter().enumerate() {
        let agency = i as u32 + 1;
        let mut peer = central.connect();
        let mut next = c.stored_prefix[i] as u32;
        while next < total {
            let end = (next + BATCH as u32).min(total);
            peer.send(&batch_frame(
                agency,
                next,
                &bets[next as usize..end as usize],
            ));
            assert_eq!(peer.recv().ack(), Some((agency, end)));
            next = end;
        }
        peer.send(&done_frame(agency, total));
        assert_eq!(peer.recv().ack(), Some((agency, total)));
    }
    kill(&mut central);
    disk.fs.cut();
    let (rows, torn) = read_complete_rows(&bets_csv);
    let end = compare_rows(&rows, &sent);
    util::report(format_args!(
        "power, a hole: {report:?} | on the disk a hole at byte {hole_at} of {} with {lines_after_hole} line ends after it | the restart cut {} bytes ({cut_line:?}) and recovered {} rows, {} acknowledged | after the agencies resumed: lost {} | duplicated {} | torn bytes {torn}",
        on_disk.len(),
        on_disk.len() - kept.len(),
        c.stored,
        acked.iter().map(|&a| a as u64).sum::<u64>(),
        end.lost,
        end.duplicated
    ));
    assert_eq!(
        (end.lost, end.duplicated, end.foreign, torn),
        (0, 0, 0, 0),
        "{end:?}"
    );
    assert!(end.out_of_order.is_empty(), "{end:?}");
    let mut closes = journal_closes(&disk.backing.join("bets.csv.journal"));
    closes.sort_unstable();
    let all: Vec<(usize, u64)> = (1..=AGENCIES).map(|a| (a, total as u64)).collect();
    assert_eq!(closes, all);
    disk.remove();
}
