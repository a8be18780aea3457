//! The whole lottery on loopback: the real central and real agencies, on
//! the course dataset (when `shared/data/dataset.zip` is there) and on
//! generated data with names that need CSV quoting; and a central killed
//! with SIGKILL in the middle of the ingest.

mod util;

use std::path::PathBuf;
use std::time::Duration;

use util::{Agency, Central, temp_dir};

/// Runs the central and one agency per file; checks every agency exits 0
/// with its expected winners, the log's `cantidad` sum, the draw after the
/// last batch, and that `bets.csv` is the union of the files.
fn run_lottery(name: &str, files: Vec<PathBuf>, expected: &[u32]) {
    let dir = temp_dir(name);
    let mut central = Central::start(&dir, files.len() as u32, &[]);
    let mut agencies: Vec<Agency> = files
        .iter()
        .enumerate()
        .map(|(i, f)| Agency::start(&dir, i as u32 + 1, &central.addr(), f, &[]))
        .collect();
    for (agency, &want) in agencies.iter_mut().zip(expected) {
        let (code, winners) = agency.finish(Duration::from_secs(120));
        assert_eq!(code, Some(0), "agency {}: {}", agency.id, agency.logs());
        assert_eq!(winners, Some(want), "agency {} winners", agency.id);
    }
    let logs = central.logs();
    let total: u64 = files.iter().map(|f| util::read_csv(f).len() as u64).sum();
    assert_eq!(util::stored_in_logs(&logs), total);
    let last_batch = logs.rfind("action: apuesta_recibida").unwrap();
    let draw = logs
        .find("action: sorteo | result: success")
        .expect("the draw is logged");
    assert!(draw > last_batch, "the draw comes after the last batch");
    assert_eq!(
        central
            .signal_and_wait("TERM", Duration::from_secs(5))
            .code(),
        Some(0)
    );
    util::assert_bets_file_is_the_union(&dir.join("bets.csv"), &files);
}

#[test]
fn the_course_dataset_gives_each_agency_its_winners() {
    let Some(zip) = util::course_dataset() else {
        eprintln!("skipped: ../shared/data/dataset.zip is not there");
        return;
    };
    let data = temp_dir("course-data");
    util::unzip_course_dataset(&zip, &data);
    let files: Vec<PathBuf> = (1..=5)
        .map(|i| data.join(format!("agency-{i}.csv")))
        .collect();
    run_lottery("course", files, &[2, 3, 3, 2, 0]);
}

#[test]
fn generated_names_that_need_quoting_are_stored_exactly() {
    let data = temp_dir("generated-data");
    let expected = util::generate(&data, 5, 3_000, 11);
    let quoted = std::fs::read_to_string(data.join("agency-1.csv")).unwrap();
    assert!(
        quoted.contains('"'),
        "the generated names include some that need quoting"
    );
    let files: Vec<PathBuf> = (1..=5)
        .map(|i| data.join(format!("agency-{i}.csv")))
        .collect();
    run_lottery("generated", files, &expected);
}

#[test]
fn a_central_killed_mid_ingest_and_restarted_loses_and_doubles_nothing() {
    let data = temp_dir("sigkill-data");
    let expected = util::generate(&data, 5, 40_000, 5);
    let files: Vec<PathBuf> = (1..=5)
        .map(|i| data.join(format!("agency-{i}.csv")))
        .collect();
    let dir = temp_dir("sigkill");
    let port = util::free_port();
    let mut central = Central::start_on(&dir, port, 5, &[]);
    let addr = central.addr();
    // A small batch size makes the ingest long enough to be cut in the middle.
    let mut agencies: Vec<Agency> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            Agency::start(
                &dir,
                i as u32 + 1,
                &addr,
                f,
                &[("CLI_BATCH_MAXAMOUNT", "10")],
            )
        })
        .collect();
    let bets = dir.join("bets.csv");
    let total: u64 = 5 * 40_000;
    while std::fs::read_to_string(&bets)
        .map(|t| t.lines().count() as u64)
        .unwrap_or(0)
        < total / 4
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        central
            .signal_and_wait("KILL", Duration::from_secs(2))
            .code(),
        None
    );
    // Count whole rows only: the kill may have torn the last one.
    let stored_at_kill = std::fs::read(&bets)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count() as u64;
    assert!(
        stored_at_kill < total,
        "killed in the middle: {stored_at_kill} of {total}"
    );
    std::thread::sleep(Duration::from_millis(300));
    let mut central = Central::start_on(&dir, port, 5, &[]);
    for (agency, &want) in agencies.iter_mut().zip(&expected) {
        let (code, winners) = agency.finish(Duration::from_secs(120));
        assert_eq!(code, Some(0), "agency {}: {}", agency.id, agency.logs());
        assert_eq!(winners, Some(want), "agency {} winners", agency.id);
    }
    assert_eq!(
        central
            .signal_and_wait("TERM", Duration::from_secs(5))
            .code(),
        Some(0)
    );
    util::assert_bets_file_is_the_union(&bets, &files);
    eprintln!(
        "killed with {stored_at_kill} of {total} bets stored; all {total} stored once after the restart"
    );
}
