//! The bench end to end against the real central: the smoke preset, a run
//! from `lottery-gen` files, and a run whose winners are wrong, which must fail.
//!
//! `lottery-server` comes from the same target directory; `make test` builds
//! the whole workspace before testing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bench_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_lottery-bench"))
}

/// `LOTTERY_SERVER_BIN` names another central to test against (a build of
/// another branch, for one); by default the one beside the bench.
fn server_bin() -> PathBuf {
    let path = std::env::var_os("LOTTERY_SERVER_BIN").map_or_else(
        || bench_bin().with_file_name("lottery-server"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (make test does)",
        path.display()
    );
    path
}

fn out_dir(name: &str) -> PathBuf {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn bench(out: &Path, args: &[&str]) -> Output {
    let output = Command::new(bench_bin())
        .arg("--server-bin")
        .arg(server_bin())
        .arg("--out")
        .arg(out)
        .args(args)
        .output()
        .unwrap();
    eprintln!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn stdout_last_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_smoke_preset_stores_every_bet_and_gets_every_winner_right() {
    let out = out_dir("smoke");
    let output = bench(
        &out,
        &["--name", "smoke", "--agencies", "20", "--bets", "2000"],
    );
    assert!(output.status.success());
    let last = stdout_last_line(&output);
    assert!(last.starts_with("bench smoke: 40000 bets, "), "{last}");
    for part in [" bets/s, ack p99 ", " us, draw->last winner ", " ms, rss "] {
        assert!(last.contains(part), "{last}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("smoke.json")).unwrap()).unwrap();
    assert_eq!(json["agencies"], 20);
    assert_eq!(json["bets"], 40_000);
    assert_eq!(json["bets_file_rows"], 40_000);
    for key in [
        "seconds",
        "bets_per_s",
        "ack_p50_us",
        "ack_p99_us",
        "draw_to_last_winner_ms",
        "server_peak_rss_mb",
    ] {
        assert!(json[key].is_number(), "{key}: {}", json[key]);
    }
    for chart in ["smoke.svg", "smoke.png"] {
        assert!(
            std::fs::metadata(out.join(chart)).unwrap().len() > 1_000,
            "{chart}"
        );
    }
}

#[test]
fn agency_files_from_lottery_gen_play_with_their_expected_winners() {
    let out = out_dir("gen");
    let data = out.join("data");
    let gen_bin = bench_bin().with_file_name("lottery-gen");
    let status = Command::new(gen_bin)
        .args(["--agencies", "4", "--bets", "700", "--seed", "5", "--out"])
        .arg(&data)
        .status()
        .unwrap();
    assert!(status.success());
    let output = bench(
        &out,
        &[
            "--name",
            "gen",
            "--data",
            data.to_str().unwrap(),
            "--window",
            "2",
            "--no-chart",
        ],
    );
    assert!(output.status.success());
    assert!(stdout_last_line(&output).starts_with("bench gen: 2800 bets, "));
}

#[test]
fn a_central_that_draws_another_number_fails_the_run() {
    let out = out_dir("wrong");
    let output = bench(
        &out,
        &[
            "--name",
            "wrong",
            "--agencies",
            "6",
            "--bets",
            "500",
            "--winners-per-agency",
            "2",
            "--server-env",
            "WINNING_NUMBER=1234",
            "--no-chart",
        ],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("FAILED") && stderr.contains("winners"),
        "{stderr}"
    );
    assert!(
        !out.join("wrong.json").exists(),
        "a failed run writes no report"
    );
}

/// The TLS path against the real central: 20 agencies, plain then mutual
/// TLS, each with its own certificate. Needs a central that serves TLS when
/// `TLS_CERT`, `TLS_KEY` and `TLS_CLIENT_CA` are set (branch `tlsconn`);
/// one that does not fails the connect phase within 20 s.
#[test]
fn the_tls_path_stores_every_bet_and_gets_every_winner_right_over_mutual_tls() {
    let out = out_dir("tls");
    let output = bench(
        &out,
        &[
            "--name",
            "tls",
            "--agencies",
            "20",
            "--bets",
            "1000",
            "--transport",
            "both",
            "--connect-timeout-s",
            "20",
            "--no-chart",
        ],
    );
    assert!(output.status.success());
    let last = stdout_last_line(&output);
    assert!(
        last.starts_with("bench tls: 20000 bets each, plain "),
        "{last}"
    );
    assert!(last.contains(" bets/s, tls/plain "), "{last}");
    assert!(last.contains("(target 80%), 20 handshakes "), "{last}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tls.json")).unwrap()).unwrap();
    assert_eq!(json["tls"]["transport"], "tls");
    assert_eq!(json["plain"]["transport"], "plain");
    for side in ["plain", "tls"] {
        assert_eq!(json[side]["bets_file_rows"], 20_000, "{side}");
        assert_eq!(json[side]["agencies"], 20, "{side}");
    }
    for key in [
        "plain_bets_per_s",
        "tls_bets_per_s",
        "ratio",
        "tls_handshakes_ms",
        "tls_handshake_p50_ms",
        "tls_handshake_p99_ms",
    ] {
        assert!(json[key].is_number(), "{key}: {}", json[key]);
    }
}
