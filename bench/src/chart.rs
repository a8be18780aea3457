//! The run drawn: throughput over time above, ack latency percentiles below.
//!
//! One drawing, two files: SVG for the README and PNG for a quick look. Pure
//! Rust throughout (plotters' SVG and bitmap backends, text through ab_glyph
//! with a font compiled into the binary), so it draws on a fresh machine with
//! no fontconfig or system fonts.

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::report::{Interval, Report};

const SIZE: (u32, u32) = (1000, 700);

/// Picks one latency percentile of a slice.
type Percentile = fn(&Interval) -> u64;

/// Writes `STEM.svg` and `STEM.png`.
pub fn draw(report: &Report, stem: &Path) -> Result<()> {
    register_embedded_font();
    let svg = stem.with_extension("svg");
    draw_on(SVGBackend::new(&svg, SIZE).into_drawing_area(), report)?;
    let png = stem.with_extension("png");
    draw_on(BitMapBackend::new(&png, SIZE).into_drawing_area(), report)?;
    Ok(())
}

fn register_embedded_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        register_font(
            "sans-serif",
            FontStyle::Normal,
            epaint_default_fonts::UBUNTU_LIGHT,
        )
        .map_err(|_| ())
        .expect("the embedded font is a valid TrueType font");
    });
}

/// Each slice as a flat step from its start to its end, so a value reads as
/// what held over the slice; slices with no value (no ACK) are left out.
fn steps(report: &Report, value: impl Fn(&Interval) -> Option<f64>) -> Vec<(f64, f64)> {
    let mut start = 0.0;
    let mut points = Vec::with_capacity(report.timeline.len() * 2);
    for interval in &report.timeline {
        if let Some(v) = value(interval) {
            points.push((start, v));
            points.push((interval.t_s, v));
        }
        start = interval.t_s;
    }
    points
}

fn draw_on<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, report: &Report) -> Result<()> {
    let fail = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing the chart: {e}");
    root.fill(&WHITE).map_err(fail)?;
    let title = format!(
        "{}: {} agencies, {} bets, {:.0} bets/s, ack p99 {} us",
        report.name, report.agencies, report.bets, report.bets_per_s, report.ack_p99_us
    );
    let root = root.titled(&title, ("sans-serif", 22)).map_err(fail)?;
    let (upper, lower) = root.split_vertically(SIZE.1 / 2 - 10);
    let t_max = report.timeline.last().map_or(1.0, |i| i.t_s).max(1e-3);

    let rate_max = report
        .timeline
        .iter()
        .map(|i| i.bets_per_s)
        .fold(1.0, f64::max)
        * 1.1;
    let mut rate = ChartBuilder::on(&upper)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..t_max, 0.0..rate_max / 1e6)
        .map_err(fail)?;
    rate.configure_mesh()
        .x_desc("seconds since the ingest started")
        .y_desc("million durable bets/s")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(fail)?;
    rate.draw_series(LineSeries::new(
        steps(report, |i| Some(i.bets_per_s / 1e6)),
        BLUE.stroke_width(2),
    ))
    .map_err(fail)?
    .label("per slice")
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    // Group commit makes the per-slice rate spiky; the run's mean is the figure.
    let mean = report.bets_per_s / 1e6;
    rate.draw_series(LineSeries::new(
        [(0.0, mean), (t_max, mean)],
        BLACK.stroke_width(1),
    ))
    .map_err(fail)?
    .label(format!("mean {mean:.2} M/s"))
    .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(1)));
    rate.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(fail)?;

    let lat_max = report
        .timeline
        .iter()
        .map(|i| i.ack_p999_us)
        .max()
        .unwrap_or(1)
        .max(10) as f64
        * 1.5;
    let lat_min = report
        .timeline
        .iter()
        .map(|i| i.ack_p50_us)
        .filter(|&v| v > 0)
        .min()
        .map_or(1.0, |v| (v as f64 / 3.0).max(1.0));
    let mut latency = ChartBuilder::on(&lower)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..t_max, (lat_min..lat_max).log_scale())
        .map_err(fail)?;
    latency
        .configure_mesh()
        .x_desc("seconds since the ingest started")
        .y_desc("batch ack latency (us, log)")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .y_labels(6)
        .light_line_style(WHITE)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(fail)?;
    // The highest percentile first, so the lower ones are drawn over it.
    let series: [(&str, RGBColor, Percentile); 3] = [
        ("p99.9", RED, |i| i.ack_p999_us),
        ("p99", RGBColor(230, 140, 0), |i| i.ack_p99_us),
        ("p50", GREEN, |i| i.ack_p50_us),
    ];
    for (label, color, value) in series {
        latency
            // One flat segment per slice: a slice without ACKs has no latency,
            // and a line across it would draw values that were never seen.
            .draw_series(
                steps(report, |i| (value(i) > 0).then(|| value(i) as f64))
                    .chunks(2)
                    .map(|pair| PathElement::new(pair.to_vec(), color.stroke_width(2))),
            )
            .map_err(fail)?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    latency
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(fail)?;
    root.present().map_err(fail)?;
    Ok(())
}
