//! The central's figures while the course's lottery runs: `/metrics`
//! scraped before, during and after the ingest of the course dataset (when
//! `shared/data/dataset.zip` is there) agrees with the files, the draw and
//! the central's own log; `/status` says the same.

mod util;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use util::{Agency, Central, Observer, json_number, status_agency, temp_dir};

#[test]
fn the_figures_of_the_course_lottery_match_its_files_its_draw_and_its_log() {
    let Some(zip) = util::course_dataset() else {
        eprintln!("skipped: ../shared/data/dataset.zip is not there");
        return;
    };
    let data = temp_dir("metrics-course-data");
    util::unzip_course_dataset(&zip, &data);
    let files: Vec<PathBuf> = (1..=5)
        .map(|i| data.join(format!("agency-{i}.csv")))
        .collect();
    let rows: Vec<u64> = files
        .iter()
        .map(|f| util::read_csv(f).len() as u64)
        .collect();
    let total: u64 = rows.iter().sum();
    assert_eq!(total, 78_697);

    let dir = temp_dir("metrics-course");
    let port = util::free_port();
    // DEBUG: the central logs each group commit (`commit_grupo`).
    let mut central = Central::start(
        &dir,
        5,
        &[
            ("METRICS_PORT", &port.to_string()),
            ("LOGGING_LEVEL", "DEBUG"),
        ],
    );
    let observer = Observer::new(port);

    let before = observer.metrics();
    assert_eq!(before.value("lottery_bets_stored_total"), 0.0);
    assert_eq!(before.value("lottery_agencies_expected"), 5.0);
    assert_eq!(before.value("lottery_agencies_done"), 0.0);
    assert_eq!(before.value("lottery_draw_state{state=\"waiting\"}"), 1.0);
    assert_eq!(before.value("lottery_commit_duration_seconds_count"), 0.0);
    assert!(before.get("lottery_draw_time_seconds").is_none());

    let mut agencies: Vec<Agency> = files
        .iter()
        .enumerate()
        .map(|(i, f)| Agency::start(&dir, i as u32 + 1, &central.addr(), f, &[]))
        .collect();
    // During: every scrape answers, and what is stored only grows.
    let mut seen = 0.0;
    let mut scrapes = 0;
    let deadline = Instant::now() + Duration::from_secs(120);
    while agencies
        .iter_mut()
        .any(|a| a.child.try_wait().unwrap().is_none())
    {
        assert!(Instant::now() < deadline, "the agencies did not finish");
        let m = observer.metrics();
        let stored = m.value("lottery_bets_stored_total");
        assert!(
            stored >= seen && stored <= total as f64,
            "{stored} after {seen}"
        );
        seen = stored;
        scrapes += 1;
    }
    eprintln!("{scrapes} scrapes during the ingest");
    for (agency, want) in agencies.iter_mut().zip([2, 3, 3, 2, 0]) {
        let (code, winners) = agency.finish(Duration::from_secs(10));
        assert_eq!(code, Some(0), "agency {}: {}", agency.id, agency.logs());
        assert_eq!(winners, Some(want));
    }

    let after = observer.metrics();
    assert_eq!(after.value("lottery_bets_stored_total"), total as f64);
    assert_eq!(after.value("lottery_agencies_done"), 5.0);
    assert_eq!(after.value("lottery_draw_state{state=\"drawn\"}"), 1.0);
    assert_eq!(after.value("lottery_draw_state{state=\"waiting\"}"), 0.0);
    assert!(after.value("lottery_draw_time_seconds") > 1.0e9);
    assert_eq!(after.value("lottery_winners"), 10.0);
    assert_eq!(after.value("lottery_requests_parked"), 0.0);
    for (i, &n) in rows.iter().enumerate() {
        let agency = i + 1;
        let label = format!("{{agency=\"{agency}\"}}");
        assert_eq!(
            after.value(&format!("lottery_agency_bets_stored_total{label}")),
            n as f64,
            "agency {agency}"
        );
        assert_eq!(after.value(&format!("lottery_agency_done{label}")), 1.0);
        assert!(after.value(&format!("lottery_agency_last_activity_seconds{label}")) > 1.0e9);
    }
    let logs = central.logs();
    let commits = logs
        .matches("action: commit_grupo | result: success")
        .count() as f64;
    assert!(commits > 0.0);
    assert_eq!(
        after.value("lottery_commit_duration_seconds_count"),
        commits
    );
    assert_eq!(
        after.value("lottery_commits_total{result=\"success\"}"),
        commits
    );
    let batches = logs
        .matches("action: apuesta_recibida | result: success")
        .count() as f64;
    assert_eq!(
        after.value("lottery_batches_total{result=\"stored\"}"),
        batches
    );
    assert_eq!(after.value("lottery_batch_size_bets_sum"), total as f64);
    assert_eq!(after.value("lottery_storage_failures_total"), 0.0);
    assert!(after.value("lottery_connections_accepted_total") >= 5.0);
    assert!(after.value("lottery_received_bytes_total") > total as f64);
    assert!(after.value("lottery_sent_bytes_total") > 0.0);

    let status = observer.status();
    assert_eq!(
        json_number(&status, "bets_stored"),
        Some(total as f64),
        "{status}"
    );
    assert_eq!(json_number(&status, "agencies_done"), Some(5.0));
    assert_eq!(json_number(&status, "winners"), Some(10.0));
    assert!(status.contains("\"draw\":{\"state\":\"drawn\""), "{status}");
    for (i, &n) in rows.iter().enumerate() {
        let agency = status_agency(&status, i as u32 + 1).expect("every agency is listed");
        assert_eq!(
            json_number(&agency, "bets_stored"),
            Some(n as f64),
            "{agency}"
        );
        assert!(agency.contains("\"done\":true"), "{agency}");
    }
    assert_eq!(
        central
            .signal_and_wait("TERM", Duration::from_secs(5))
            .code(),
        Some(0)
    );
}
