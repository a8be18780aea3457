//! One look at the running central, and its two encodings: the Prometheus
//! text format (with `prometheus-client`) for `/metrics`, and JSON for
//! `/status` and the page (pure: a [`Snapshot`] in, text out).
//!
//! The snapshot is taken by the loop when a request asks for it, at a cost
//! of one walk of the agencies; the encoders only format it. Names follow
//! Prometheus's conventions: `lottery_` first, the unit in the name,
//! counters end in `_total` (added by the encoder).

use std::fmt::{self, Write as _};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::figures::{Figures, Histogram};

/// One agency as the snapshot shows it.
#[derive(Clone, Debug, PartialEq)]
pub struct AgencyView {
    pub agency: u32,
    /// Its durable stored count.
    pub bets_stored: u64,
    /// Its DONE is durable.
    pub done: bool,
    /// When a request of it was last handled (unix seconds), if one was.
    pub last_activity_seconds: Option<f64>,
    /// Its winners, once drawn.
    pub winners: u64,
}

/// The central's figures at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct Snapshot {
    pub version: &'static str,
    /// When the process started (unix seconds).
    pub start_time_seconds: f64,
    pub figures: Figures,
    pub bets_stored: u64,
    pub agencies_expected: u32,
    pub agencies_done: u32,
    pub drawn: bool,
    /// When this run saw the draw happen (unix seconds); a draw recovered
    /// from a previous run counts as seen at start.
    pub draw_time_seconds: Option<f64>,
    pub winners: u64,
    pub requests_parked: u64,
    pub connections_open: u64,
    pub connections_accepted: u64,
    /// Refused at accept: the connection cap (or no descriptor left).
    pub connections_refused: u64,
    pub tls_handshakes_failed: u64,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    /// HTTP connections of the observation port refused at its cap.
    pub http_connections_refused: u64,
    pub agencies: Vec<AgencyView>,
}

/// The `ERROR` names by wire number, for the `code` label.
const CODE_NAMES: [&str; 12] = [
    "",
    "MALFORMED",
    "TOO_LARGE",
    "UNKNOWN_TYPE",
    "INVALID_BET",
    "UNKNOWN_AGENCY",
    "AGENCY_CLOSED",
    "OUT_OF_ORDER",
    "MISSING_BETS",
    "SHUTTING_DOWN",
    "STORAGE",
    "FORBIDDEN",
];

/// The content type of [`to_prometheus`]'s text.
pub const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The snapshot in the Prometheus text exposition format.
pub fn to_prometheus(snapshot: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Exposition(snapshot)));
    let mut out = String::with_capacity(8 * 1024);
    // Writing to a String does not fail, and the collector's own errors
    // are the writer's.
    let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
    out
}

#[derive(Debug)]
struct Exposition(Snapshot);

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Counter)?
        .encode_counter::<NoLabelSet, _, u64>(&v, None)
}

fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: f64) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Gauge)?
        .encode_gauge(&v)
}

fn histogram(enc: &mut DescriptorEncoder, name: &str, help: &str, h: &Histogram) -> fmt::Result {
    enc.encode_descriptor(name, help, None, MetricType::Histogram)?
        .encode_histogram::<NoLabelSet>(h.sum(), h.count(), &h.buckets(), None)
}

impl Collector for Exposition {
    fn encode(&self, mut enc: DescriptorEncoder) -> fmt::Result {
        let s = &self.0;
        let f = &s.figures;
        let mut m = enc.encode_descriptor(
            "lottery_build_info",
            "The central's version",
            None,
            MetricType::Gauge,
        )?;
        m.encode_family(&[("version", s.version)])?
            .encode_gauge(&1u64)?;
        gauge(
            &mut enc,
            "process_start_time_seconds",
            "When the central started, in unix seconds",
            s.start_time_seconds,
        )?;
        counter(
            &mut enc,
            "lottery_bets_stored",
            "Bets stored durably",
            s.bets_stored,
        )?;
        let mut m = enc.encode_descriptor(
            "lottery_batches",
            "Batches answered, by result (stored, retry, refused with an ERROR code)",
            None,
            MetricType::Counter,
        )?;
        m.encode_family(&[("result", "stored")])?
            .encode_counter::<NoLabelSet, _, u64>(&f.batches_stored, None)?;
        m.encode_family(&[("result", "retry")])?
            .encode_counter::<NoLabelSet, _, u64>(&f.batches_retried, None)?;
        for (code, n) in f.batches_refused.iter().enumerate().skip(1) {
            if *n > 0 {
                m.encode_family(&[("result", "refused"), ("code", CODE_NAMES[code])])?
                    .encode_counter::<NoLabelSet, _, u64>(n, None)?;
            }
        }
        histogram(
            &mut enc,
            "lottery_batch_size_bets",
            "Bets in each stored batch",
            &f.batch_size,
        )?;
        let mut m = enc.encode_descriptor(
            "lottery_commits",
            "Group commits, by result",
            None,
            MetricType::Counter,
        )?;
        m.encode_family(&[("result", "success")])?
            .encode_counter::<NoLabelSet, _, u64>(&f.commits, None)?;
        m.encode_family(&[("result", "fail")])?
            .encode_counter::<NoLabelSet, _, u64>(&f.commits_failed, None)?;
        histogram(
            &mut enc,
            "lottery_commit_duration_seconds",
            "How long each group commit took (fdatasync, or the database's COMMIT)",
            &f.commit_seconds,
        )?;
        counter(
            &mut enc,
            "lottery_storage_failures",
            "Group commits the store refused",
            f.commits_failed,
        )?;
        counter(
            &mut enc,
            "lottery_store_recoveries",
            "Commits that succeeded after failed ones (the store, or the database connection, came back)",
            f.store_recoveries,
        )?;
        gauge(
            &mut enc,
            "lottery_connections_open",
            "Agency connections open",
            s.connections_open as f64,
        )?;
        counter(
            &mut enc,
            "lottery_connections_accepted",
            "Agency connections accepted",
            s.connections_accepted,
        )?;
        counter(
            &mut enc,
            "lottery_connections_refused",
            "Agency connections refused at accept (the connection cap, or no descriptor left)",
            s.connections_refused,
        )?;
        counter(
            &mut enc,
            "lottery_tls_handshakes_failed",
            "TLS handshakes that failed or did not complete in time",
            s.tls_handshakes_failed,
        )?;
        counter(
            &mut enc,
            "lottery_received_bytes",
            "Bytes read from agency connections (after TLS)",
            s.received_bytes,
        )?;
        counter(
            &mut enc,
            "lottery_sent_bytes",
            "Bytes written to agency connections (before TLS)",
            s.sent_bytes,
        )?;
        counter(
            &mut enc,
            "lottery_http_connections_refused",
            "Connections to this port refused at its cap",
            s.http_connections_refused,
        )?;
        gauge(
            &mut enc,
            "lottery_requests_parked",
            "GET_WINNERS requests parked now",
            s.requests_parked as f64,
        )?;
        gauge(
            &mut enc,
            "lottery_agencies_expected",
            "Agencies whose DONE the draw waits for",
            f64::from(s.agencies_expected),
        )?;
        gauge(
            &mut enc,
            "lottery_agencies_done",
            "Agencies whose DONE is durable",
            f64::from(s.agencies_done),
        )?;
        let mut m = enc.encode_descriptor(
            "lottery_draw_state",
            "The draw's state: 1 for the current one",
            None,
            MetricType::Gauge,
        )?;
        m.encode_family(&[("state", "waiting")])?
            .encode_gauge(&u64::from(!s.drawn))?;
        m.encode_family(&[("state", "drawn")])?
            .encode_gauge(&u64::from(s.drawn))?;
        if let Some(at) = s.draw_time_seconds {
            gauge(
                &mut enc,
                "lottery_draw_time_seconds",
                "When the draw happened, in unix seconds",
                at,
            )?;
        }
        gauge(
            &mut enc,
            "lottery_winners",
            "Winning bets of the draw (0 until it happens)",
            s.winners as f64,
        )?;
        let labels: Vec<String> = s.agencies.iter().map(|a| a.agency.to_string()).collect();
        let mut m = enc.encode_descriptor(
            "lottery_agency_bets_stored",
            "Bets stored durably, per agency",
            None,
            MetricType::Counter,
        )?;
        for (a, label) in s.agencies.iter().zip(&labels) {
            m.encode_family(&[("agency", label.as_str())])?
                .encode_counter::<NoLabelSet, _, u64>(&a.bets_stored, None)?;
        }
        let mut m = enc.encode_descriptor(
            "lottery_agency_done",
            "1 once the agency's DONE is durable",
            None,
            MetricType::Gauge,
        )?;
        for (a, label) in s.agencies.iter().zip(&labels) {
            m.encode_family(&[("agency", label.as_str())])?
                .encode_gauge(&u64::from(a.done))?;
        }
        let mut m = enc.encode_descriptor(
            "lottery_agency_last_activity_seconds",
            "When a request of the agency was last handled, in unix seconds",
            None,
            MetricType::Gauge,
        )?;
        for (a, label) in s.agencies.iter().zip(&labels) {
            if let Some(at) = a.last_activity_seconds {
                m.encode_family(&[("agency", label.as_str())])?
                    .encode_gauge(&at)?;
            }
        }
        Ok(())
    }
}

/// The snapshot as JSON, for `/status` and the page.
pub fn to_json(s: &Snapshot) -> String {
    let f = &s.figures;
    let mut out = String::with_capacity(256 + 96 * s.agencies.len());
    let seconds = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
    let _ = write!(
        out,
        "{{\"version\":{},\"start_time_seconds\":{:.3},\"bets_stored\":{},\"agencies_expected\":{},\"agencies_done\":{},\"draw\":{{\"state\":\"{}\",\"time_seconds\":{},\"winners\":{}}},\"requests_parked\":{}",
        json_string(s.version),
        s.start_time_seconds,
        s.bets_stored,
        s.agencies_expected,
        s.agencies_done,
        if s.drawn { "drawn" } else { "waiting" },
        seconds(s.draw_time_seconds),
        s.winners,
        s.requests_parked,
    );
    let _ = write!(
        out,
        ",\"connections\":{{\"open\":{},\"accepted\":{},\"refused\":{},\"tls_handshakes_failed\":{},\"received_bytes\":{},\"sent_bytes\":{}}}",
        s.connections_open,
        s.connections_accepted,
        s.connections_refused,
        s.tls_handshakes_failed,
        s.received_bytes,
        s.sent_bytes,
    );
    let _ = write!(
        out,
        ",\"batches\":{{\"stored\":{},\"retry\":{},\"refused\":{{",
        f.batches_stored, f.batches_retried
    );
    let mut first = true;
    for (code, n) in f.batches_refused.iter().enumerate().skip(1) {
        if *n > 0 {
            let comma = if first { "" } else { "," };
            let _ = write!(out, "{comma}{}:{n}", json_string(CODE_NAMES[code]));
            first = false;
        }
    }
    let _ = write!(
        out,
        "}}}},\"commits\":{{\"success\":{},\"fail\":{},\"seconds_sum\":{:.6}}},\"agencies\":[",
        f.commits,
        f.commits_failed,
        f.commit_seconds.sum()
    );
    for (i, a) in s.agencies.iter().enumerate() {
        let _ = write!(
            out,
            "{}{{\"agency\":{},\"bets_stored\":{},\"done\":{},\"last_activity_seconds\":{},\"winners\":{}}}",
            if i == 0 { "" } else { "," },
            a.agency,
            a.bets_stored,
            a.done,
            seconds(a.last_activity_seconds),
            a.winners
        );
    }
    out.push_str("]}");
    out
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        let mut figures = Figures::default();
        figures.batch_stored(100);
        figures.batch_refused(7);
        figures.commit_over(true, std::time::Duration::from_millis(2), false);
        Snapshot {
            version: "0.1.0",
            start_time_seconds: 1_700_000_000.0,
            figures,
            bets_stored: 100,
            agencies_expected: 2,
            agencies_done: 1,
            drawn: false,
            draw_time_seconds: None,
            winners: 0,
            requests_parked: 1,
            connections_open: 2,
            connections_accepted: 3,
            connections_refused: 0,
            tls_handshakes_failed: 0,
            received_bytes: 10,
            sent_bytes: 20,
            http_connections_refused: 0,
            agencies: vec![
                AgencyView {
                    agency: 1,
                    bets_stored: 100,
                    done: true,
                    last_activity_seconds: Some(1_700_000_001.5),
                    winners: 0,
                },
                AgencyView {
                    agency: 2,
                    bets_stored: 0,
                    done: false,
                    last_activity_seconds: None,
                    winners: 0,
                },
            ],
        }
    }

    #[test]
    fn the_prometheus_text_names_each_figure_with_its_unit_and_labels() {
        let text = to_prometheus(sample());
        for line in [
            "lottery_bets_stored_total 100",
            "lottery_batches_total{result=\"stored\"} 1",
            "lottery_batches_total{result=\"refused\",code=\"OUT_OF_ORDER\"} 1",
            "lottery_commit_duration_seconds_count 1",
            "lottery_batch_size_bets_bucket{le=\"100\"} 1",
            "lottery_agency_bets_stored_total{agency=\"1\"} 100",
            "lottery_agency_done{agency=\"2\"} 0",
            "lottery_draw_state{state=\"waiting\"} 1",
            "lottery_build_info{version=\"0.1.0\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(!text.contains("lottery_draw_time_seconds"), "{text}");
        assert!(
            !text.contains("last_activity_seconds{agency=\"2\"}"),
            "{text}"
        );
    }

    #[test]
    fn the_json_holds_every_agency_and_escapes_strings() {
        let json = to_json(&sample());
        assert!(json.starts_with("{\"version\":\"0.1.0\","), "{json}");
        assert!(json.contains("\"refused\":{\"OUT_OF_ORDER\":1}"), "{json}");
        assert!(
            json.contains("{\"agency\":2,\"bets_stored\":0,\"done\":false,\"last_activity_seconds\":null,\"winners\":0}"),
            "{json}"
        );
        assert_eq!(json_string("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }
}
