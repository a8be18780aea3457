//! The page at `/` in a real browser: headless Chromium loads it while a
//! lottery runs and again once it is drawn; the DOM its own refresh from
//! `/status` built shows every agency's row with the counts `/status`
//! gives, the DONE barrier and, once drawn, the draw and its winners. A
//! screenshot of the drawn page is saved beside the test's files
//! (`target/release/test-tmp/browser-*/page.png`).
//!
//! Skips (and passes) without `chromium`, unless `REQUIRE_CHROMIUM=1`
//! (`.ci/run` sets it and installs Debian's `chromium`).

mod util;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use util::{Agency, Central, Observer, json_number, status_agency, temp_dir};

const AGENCIES: u32 = 3;

fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser"].into_iter().find(|bin| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "REQUIRE_CHROMIUM=1 but chromium is not installed"
        );
    }
    found
}

/// Runs headless Chromium on `url` with `what` (`--dump-dom`, or
/// `--screenshot=PATH`), giving the page's scripts 2.5 s of virtual time
/// (its first refresh and two more).
fn browse(bin: &str, profile: &Path, url: &str, what: &str) -> String {
    let out = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=900,420",
            "--virtual-time-budget=2500",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(what)
        .arg(url)
        .stderr(Stdio::null())
        .output()
        .expect("run chromium");
    assert!(out.status.success(), "chromium failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of attribute `attr` of the element whose opening tag holds `id`.
fn attribute(dom: &str, id: &str, attr: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let start = dom[..at].rfind('<')?;
    let tag = &dom[start..start + dom[start..].find('>')?];
    let value = tag.split(&format!("{attr}=\"")).nth(1)?;
    Some(value[..value.find('"')?].to_string())
}

fn stored_in_dom(dom: &str, agency: u32) -> u64 {
    attribute(dom, &format!("agency-{agency}"), "data-bets-stored")
        .unwrap_or_else(|| panic!("no row for agency {agency} in\n{dom}"))
        .parse()
        .unwrap()
}

#[test]
fn the_page_shows_each_agency_the_barrier_and_the_draw_as_status_does() {
    let Some(bin) = chromium() else {
        eprintln!("skipped: chromium is not installed");
        return;
    };
    let dir = temp_dir("browser");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let winners = util::generate(&data, AGENCIES, 600, 7);
    let port = util::free_port();
    let mut central = Central::start(&dir, AGENCIES, &[("METRICS_PORT", &port.to_string())]);
    let observer = Observer::new(port);
    let url = format!("http://127.0.0.1:{port}/");
    let profile = dir.join("chromium-profile");

    // Paced, so that the page is loaded while the bets come in.
    let mut agencies: Vec<Agency> = util::agency_files(&data, AGENCIES)
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let env = [("CLI_BATCH_MAXAMOUNT", "20"), ("CLI_LOOP_PERIOD", "150ms")];
            Agency::start(&dir, i as u32 + 1, &central.addr(), f, &env)
        })
        .collect();
    let before = observer.status();
    let dom = browse(bin, &profile, &url, "--dump-dom");
    let after = observer.status();
    for agency in 1..=AGENCIES {
        let shown = stored_in_dom(&dom, agency);
        let count = |status: &str| {
            json_number(&status_agency(status, agency).unwrap(), "bets_stored").unwrap() as u64
        };
        assert!(
            count(&before) <= shown && shown <= count(&after),
            "agency {agency}: the page shows {shown}, /status {} then {}",
            count(&before),
            count(&after)
        );
    }

    for (agency, want) in agencies.iter_mut().zip(&winners) {
        let (code, got) = agency.finish(Duration::from_secs(60));
        assert_eq!(code, Some(0), "{}", agency.logs());
        assert_eq!(got, Some(*want));
    }
    let status = observer.status();
    assert!(status.contains("\"state\":\"drawn\""), "{status}");
    let dom = browse(bin, &profile, &url, "--dump-dom");
    for agency in 1..=AGENCIES {
        let row = status_agency(&status, agency).unwrap();
        assert_eq!(
            stored_in_dom(&dom, agency) as f64,
            json_number(&row, "bets_stored").unwrap(),
            "agency {agency}"
        );
        assert_eq!(
            attribute(&dom, &format!("agency-{agency}"), "data-done").as_deref(),
            Some("true")
        );
    }
    assert_eq!(
        attribute(&dom, "draw", "data-state").as_deref(),
        Some("drawn")
    );
    let total_winners: u32 = winners.iter().sum();
    assert_eq!(
        attribute(&dom, "draw", "data-winners"),
        Some(total_winners.to_string())
    );
    assert!(
        dom.contains(&format!("winners: {total_winners}")),
        "the draw's line shows its winners: {dom}"
    );
    assert!(dom.contains(&format!("{AGENCIES} of {AGENCIES} agencies done")));

    let png = dir.join("page.png");
    browse(
        bin,
        &profile,
        &url,
        &format!("--screenshot={}", png.display()),
    );
    let bytes = std::fs::read(&png).expect("the screenshot is written");
    assert!(bytes.starts_with(b"\x89PNG"), "not a PNG");
    eprintln!("screenshot: {}", png.display());
    assert_eq!(
        central
            .signal_and_wait("TERM", Duration::from_secs(5))
            .code(),
        Some(0)
    );
}
