//! `report.html`: one self-contained file with inline SVG charts. No script, no stylesheet and
//! no font is loaded from anywhere, so it opens on a machine with no network (goose's own HTML
//! report draws its charts from a CDN and shows none offline).

use std::fmt::Write;

use super::Summary;
use crate::nemesis::FaultWindow;

const WIDTH: f64 = 880.0;
const HEIGHT: f64 = 260.0;
const MARGIN: f64 = 48.0;

fn color(class: &str) -> &'static str {
    match class {
        "issued" => "#2e7d32",
        "pending" => "#f9a825",
        "already_applied" => "#6a1b9a",
        "sold_out" => "#90a4ae",
        "unavailable" => "#c62828",
        "timeout" | "transport_error" => "#ef6c00",
        "invalid" | "not_found" => "#5d4037",
        _ => "#1565c0",
    }
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn axes(svg: &mut String, x_label: &str, y_label: &str, y_max: f64) {
    let (left, bottom) = (MARGIN, HEIGHT - MARGIN / 2.0);
    let _ = write!(
        svg,
        r##"<line x1="{left}" y1="10" x2="{left}" y2="{bottom}" stroke="#333"/><line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/><text x="{mid}" y="{label_y}" font-size="12" text-anchor="middle">{x}</text><text x="12" y="{ymid}" font-size="12" transform="rotate(-90 12 {ymid})" text-anchor="middle">{y}</text><text x="{tick}" y="16" font-size="11" text-anchor="end">{ymax}</text><text x="{tick}" y="{bottom}" font-size="11" text-anchor="end">0</text>"##,
        right = WIDTH - 10.0,
        mid = WIDTH / 2.0,
        label_y = HEIGHT - 4.0,
        ymid = HEIGHT / 2.0,
        x = escape(x_label),
        y = escape(y_label),
        tick = left - 4.0,
        ymax = y_max,
    );
}

fn plot_height() -> f64 {
    HEIGHT - MARGIN / 2.0 - 16.0
}

/// Each fault's window as a shaded band across a timeline chart spanning `span_ms`, titled with
/// what was done (a fault not healed by the chart's end runs to its edge).
fn fault_bands(svg: &mut String, faults: &[FaultWindow], span_ms: f64) {
    let width = WIDTH - MARGIN - 20.0;
    let span_ms = span_ms.max(1.0);
    let x_of = |ms: f64| MARGIN + (ms / span_ms).clamp(0.0, 1.0) * width;
    for fault in faults {
        let from = x_of(fault.from_ms);
        let to = x_of(fault.to_ms.unwrap_or(span_ms)).max(from + 2.0);
        let _ = write!(
            svg,
            r##"<rect x="{from:.1}" y="10" width="{w:.1}" height="{h:.1}" fill="#ff7043" fill-opacity="0.18"><title>{t}</title></rect><text x="{from:.1}" y="22" font-size="10" fill="#bf360c">{name}</text>"##,
            w = to - from,
            h = plot_height() + 6.0,
            t = escape(&format!(
                "{}: {} ({})",
                fault.fault, fault.action, fault.target
            )),
            name = escape(&fault.fault),
        );
    }
}

/// Seconds under the x axis of a timeline chart with `buckets` bars of `bucket_ms` each.
fn time_ticks(svg: &mut String, buckets: usize, bucket_ms: u64) {
    let step = (WIDTH - MARGIN - 20.0) / buckets.max(1) as f64;
    let every = (buckets / 8).max(1);
    for i in (0..=buckets).step_by(every) {
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="10">{t:.1}s</text>"#,
            x = MARGIN + i as f64 * step,
            y = HEIGHT - MARGIN / 2.0 + 12.0,
            t = i as f64 * bucket_ms as f64 / 1000.0,
        );
    }
}

/// Histogram of latencies on logarithmic buckets.
fn latency_chart(summary: &Summary) -> String {
    let buckets = &summary.stats.latency_distribution;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="latency distribution">"#
    );
    let max = buckets.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1) as f64;
    axes(&mut svg, "latency (log scale, ms)", "requests", max);
    let bar = (WIDTH - MARGIN - 20.0) / buckets.len().max(1) as f64;
    for (i, (upper_us, count)) in buckets.iter().enumerate() {
        let h = *count as f64 / max * plot_height();
        let x = MARGIN + 1.0 + i as f64 * bar;
        let y = HEIGHT - MARGIN / 2.0 - h;
        let _ = write!(
            svg,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="#1565c0"><title>≤ {ms:.2} ms: {count}</title></rect>"##,
            w = (bar - 1.0).max(0.5),
            ms = *upper_us as f64 / 1000.0,
        );
        if i % (buckets.len() / 8).max(1) == 0 {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{ty:.1}" font-size="10">{ms:.1}</text>"#,
                ty = HEIGHT - MARGIN / 2.0 + 12.0,
                ms = *upper_us as f64 / 1000.0
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Responses per time bucket, stacked by result.
fn timeline_chart(summary: &Summary) -> String {
    let timeline = &summary.stats.timeline;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="responses over time by result">"#
    );
    let max = timeline
        .iter()
        .map(|b| b.values().sum::<u64>())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    axes(
        &mut svg,
        &format!(
            "time since the first request ({} ms buckets)",
            summary.stats.bucket_ms
        ),
        "responses",
        max,
    );
    time_ticks(&mut svg, timeline.len(), summary.stats.bucket_ms);
    fault_bands(
        &mut svg,
        &summary.fault_windows,
        (timeline.len() as u64 * summary.stats.bucket_ms) as f64,
    );
    let bar = (WIDTH - MARGIN - 20.0) / timeline.len().max(1) as f64;
    for (i, bucket) in timeline.iter().enumerate() {
        let mut y = HEIGHT - MARGIN / 2.0;
        for (class, count) in bucket {
            let h = *count as f64 / max * plot_height();
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{c}"><title>{t:.1}s {class}: {count}</title></rect>"#,
                x = MARGIN + 1.0 + i as f64 * bar,
                w = bar.max(0.5),
                c = color(class),
                t = i as f64 * summary.stats.bucket_ms as f64 / 1000.0,
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Cumulative `issued` replies over time: the coupons going out.
fn issued_chart(summary: &Summary) -> String {
    let timeline = &summary.stats.timeline;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="issued over time">"#
    );
    let total: u64 = timeline.iter().filter_map(|b| b.get("issued")).sum();
    let max = total.max(1) as f64;
    axes(
        &mut svg,
        "time since the first request",
        "issued (cumulative)",
        max,
    );
    time_ticks(&mut svg, timeline.len(), summary.stats.bucket_ms);
    fault_bands(
        &mut svg,
        &summary.fault_windows,
        (timeline.len() as u64 * summary.stats.bucket_ms) as f64,
    );
    let step = (WIDTH - MARGIN - 20.0) / timeline.len().max(1) as f64;
    let mut points = vec![format!("{MARGIN},{}", HEIGHT - MARGIN / 2.0)];
    let mut running = 0u64;
    for (i, bucket) in timeline.iter().enumerate() {
        running += bucket.get("issued").copied().unwrap_or(0);
        points.push(format!(
            "{:.1},{:.1}",
            MARGIN + (i + 1) as f64 * step,
            HEIGHT - MARGIN / 2.0 - running as f64 / max * plot_height()
        ));
    }
    let _ = write!(
        svg,
        r##"<polyline fill="none" stroke="#2e7d32" stroke-width="2" points="{}"/>"##,
        points.join(" ")
    );
    svg.push_str("</svg>");
    svg
}

/// A chart's series: name, colour, and (ms since the first request, value) points; a `None`
/// value breaks the line.
pub(super) type Line<'a> = (&'a str, &'a str, Vec<(f64, Option<f64>)>);

/// One line per series over `span_ms`, on one y axis from 0.
pub(super) fn line_chart(
    label: &str,
    y_label: &str,
    span_ms: f64,
    series: &[Line],
    faults: &[FaultWindow],
) -> String {
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{}">"#,
        escape(label)
    );
    let max = series
        .iter()
        .flat_map(|(_, _, points)| points.iter().filter_map(|(_, v)| *v))
        .fold(0.0, f64::max);
    let max = if max > 0.0 { max } else { 1.0 };
    axes(
        &mut svg,
        "time since the first request",
        y_label,
        (max * 100.0).round() / 100.0,
    );
    let span_ms = span_ms.max(1.0);
    fault_bands(&mut svg, faults, span_ms);
    let width = WIDTH - MARGIN - 20.0;
    for i in 0..=8 {
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="10">{t:.1}s</text>"#,
            x = MARGIN + i as f64 * width / 8.0,
            y = HEIGHT - MARGIN / 2.0 + 12.0,
            t = i as f64 * span_ms / 8.0 / 1000.0,
        );
    }
    for (name, color, points) in series {
        // Runs of points with a value, each its own polyline.
        for run in points.split(|(_, v)| v.is_none()).filter(|r| !r.is_empty()) {
            let drawn: Vec<String> = run
                .iter()
                .map(|(at_ms, value)| {
                    format!(
                        "{:.1},{:.1}",
                        MARGIN + at_ms / span_ms * width,
                        HEIGHT - MARGIN / 2.0 - value.unwrap_or(0.0) / max * plot_height()
                    )
                })
                .collect();
            let _ = write!(
                svg,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"><title>{}</title></polyline>"#,
                drawn.join(" "),
                escape(name)
            );
        }
    }
    svg.push_str("</svg>");
    let keys: String = series
        .iter()
        .map(|(name, color, _)| {
            format!(
                r#"<span class="key"><span class="swatch" style="background:{color}"></span>{}</span>"#,
                escape(name)
            )
        })
        .collect();
    format!("<p>{keys}</p>\n{svg}")
}

/// Requests per second the schedule made due (the target) against those sent (achieved).
fn rate_chart(summary: &Summary) -> String {
    let stats = &summary.stats;
    let bucket_ms = stats.bucket_ms as f64;
    let per_second = |counts: &[u64]| -> Vec<(f64, Option<f64>)> {
        counts
            .iter()
            .enumerate()
            .map(|(i, n)| {
                (
                    (i as f64 + 0.5) * bucket_ms,
                    Some(*n as f64 * 1000.0 / bucket_ms),
                )
            })
            .collect()
    };
    line_chart(
        "target and achieved request rate",
        "requests/s",
        stats.due_timeline.len() as f64 * bucket_ms,
        &[
            ("due (target)", "#9e9e9e", per_second(&stats.due_timeline)),
            (
                "sent (achieved)",
                "#1565c0",
                per_second(&stats.sent_timeline),
            ),
        ],
        &summary.fault_windows,
    )
}

/// The server-side charts: what the api and the consumer said of themselves during the run.
fn server_charts(summary: &Summary) -> String {
    let Some(server) = &summary.server else {
        return "<p>loadgen did not read the server's metrics (<code>--scrape-every 0s</code>).</p>"
            .to_owned();
    };
    let span_ms = server.at_ms.last().copied().unwrap_or(0.0);
    // Timed from the run's first request, as the client's charts are; reads before it are left
    // out of the charts (their values are already in the rates after them).
    let line = |part: &str, name: &str| -> Vec<(f64, Option<f64>)> {
        server.get(part, name).map_or_else(Vec::new, |series| {
            server
                .at_ms
                .iter()
                .copied()
                .zip(series.values.iter().copied())
                .filter(|(at_ms, _)| *at_ms >= 0.0)
                .collect()
        })
    };
    let charts: [(&str, &str, Vec<Line>); 6] = [
        (
            "Consumer lag (the design's consumer group)",
            "events not yet committed",
            vec![("consumer lag", "#c62828", line("consumer", "lag"))],
        ),
        (
            "Rows written",
            "rows (cumulative)",
            vec![
                ("rows written", "#2e7d32", line("consumer", "rows written")),
                (
                    "course stages' rows",
                    "#6d4c41",
                    line("consumer", "course rows written"),
                ),
            ],
        ),
        (
            "Throughput",
            "per second",
            vec![
                ("api applies/s", "#1565c0", line("api", "applies/s")),
                ("consumer rows/s", "#2e7d32", line("consumer", "rows/s")),
            ],
        ),
        (
            "Gate and Kafka-ack latency, p99 of each scrape interval",
            "ms",
            vec![
                ("gate script p99", "#6a1b9a", line("api", "gate p99")),
                ("kafka ack p99", "#ef6c00", line("api", "kafka ack p99")),
            ],
        ),
        (
            "Applies in doubt",
            "applies",
            vec![("in doubt", "#f9a825", line("api", "in doubt"))],
        ),
        (
            "Process memory",
            "MB resident",
            vec![
                ("api", "#1565c0", line("api", "memory")),
                ("consumer", "#2e7d32", line("consumer", "memory")),
            ],
        ),
    ];
    let mut html = format!("<p>{}</p>\n", escape(&super::server_text(server)));
    for (title, y_label, series) in charts {
        let _ = write!(
            html,
            "<h3>{}</h3>\n{}\n",
            escape(title),
            line_chart(title, y_label, span_ms, &series, &summary.fault_windows)
        );
    }
    html
}

fn legend(summary: &Summary) -> String {
    summary
        .stats
        .by_class
        .iter()
        .map(|(class, count)| {
            format!(
                r#"<span class="key"><span class="swatch" style="background:{}"></span>{} {count}</span>"#,
                color(class),
                escape(class)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn latency_table(rows_of: Vec<super::Row>) -> String {
    let mut rows = String::new();
    for row in rows_of {
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&row.result),
            row.count,
            row.p50,
            row.p90,
            row.p99,
            row.p999,
            row.max,
        );
    }
    format!(
        "<table><tr><th>result</th><th>count</th><th>p50 ms</th><th>p90 ms</th><th>p99 ms</th><th>p99.9 ms</th><th>max ms</th></tr>{rows}</table>"
    )
}

pub fn render(summary: &Summary) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>loadgen run {run}</title>
<style>
body {{ font-family: sans-serif; margin: 24px; color: #222; }}
table {{ border-collapse: collapse; margin: 12px 0; }}
td, th {{ border: 1px solid #ccc; padding: 4px 10px; text-align: right; }}
th {{ background: #f3f3f3; }}
.key {{ margin-right: 14px; }} .swatch {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; }}
h2 {{ margin-top: 28px; }}
</style></head><body>
<h1>loadgen run {run}</h1>
<p>{facts}</p>
{table}
<p>{note}</p>
<h3>From the intended send time</h3>
{intended}
{faults}
<h2>Latency distribution (service time)</h2>
{latency}
<h2>Responses over time, by result</h2>
<p>{legend}</p>
{timeline}
<h2>Issued over time</h2>
{issued}
<h2>Request rate: target and achieved</h2>
{rate}
<h2>The server's side</h2>
{server}
<p>Self-contained: inline SVG, nothing loaded from the network. Every request is in <code>history.jsonl</code>.</p>
</body></html>
"#,
        run = escape(&summary.run.run_id),
        facts = super::run_facts(summary)
            .iter()
            .map(|fact| escape(fact))
            .collect::<Vec<_>>()
            .join("<br>\n"),
        table = latency_table(super::rows(&summary.stats)),
        note = escape(&super::latency_note(&summary.stats)),
        intended = latency_table(super::intended_rows(&summary.stats)),
        rate = rate_chart(summary),
        server = server_charts(summary),
        latency = latency_chart(summary),
        legend = legend(summary),
        timeline = timeline_chart(summary),
        issued = issued_chart(summary),
        faults = faults_section(summary),
    )
}

/// The faults of the run, each with when it struck and healed; their bands shade the charts.
fn faults_section(summary: &Summary) -> String {
    if summary.fault_windows.is_empty() && summary.faults_not_struck.is_empty() {
        return String::new();
    }
    let mut html = String::from(
        "<h2>Faults</h2>\n<p>Shaded on every timeline below.</p>\n<table><tr><th>fault</th><th>struck (s)</th><th>healed (s)</th><th>what was done</th><th>to what</th></tr>\n",
    );
    for fault in &summary.fault_windows {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{:.2}</td><td>{}</td><td style=\"text-align:left\">{}</td><td style=\"text-align:left\">{}</td></tr>",
            escape(&fault.fault),
            fault.from_ms / 1000.0,
            fault
                .to_ms
                .map_or_else(|| "-".to_owned(), |ms| format!("{:.2}", ms / 1000.0)),
            escape(&fault.action),
            escape(&fault.target),
        );
    }
    html.push_str("</table>\n");
    if !summary.faults_not_struck.is_empty() {
        let _ = writeln!(
            html,
            "<p>Never struck: {}</p>",
            escape(&summary.faults_not_struck.join(", "))
        );
    }
    html
}

/// What in an HTML report would be loaded from elsewhere (for the self-containment tests).
#[cfg(test)]
pub(crate) fn external_references(html: &str) -> Vec<&'static str> {
    // The only URL allowed is the SVG namespace, an identifier no browser fetches; the
    // api's address appears as text.
    let stripped = html
        .replace("http://www.w3.org/2000/svg", "")
        .replace("http://127.0.0.1:8080", "");
    [
        "http://", "https://", "//cdn", " src=", "<script", "<link", "@import", "url(",
    ]
    .into_iter()
    .filter(|needle| stripped.contains(needle))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        crate::report::sample_summary()
    }

    /// What in `html` would make a browser reach the network.

    #[test]
    fn the_report_loads_nothing_from_the_network() {
        let html = render(&summary());
        assert_eq!(external_references(&html), Vec::<&str>::new());
        assert_eq!(
            html.matches("<svg").count(),
            10,
            "latency, responses over time, issued over time, request rate, 6 server charts"
        );
        assert!(html.contains("consumer lag peak 7"), "the server's line");
        // The lag's gap breaks its line in two.
        let lag = html
            .split("aria-label=\"Consumer lag")
            .nth(1)
            .and_then(|rest| rest.split("</svg>").next())
            .expect("a lag chart");
        assert_eq!(lag.matches("<polyline").count(), 2);
        // The read before the first request is left out: no point left of the y axis.
        let xs: Vec<f64> = lag
            .split("points=\"")
            .skip(1)
            .filter_map(|rest| rest.split('"').next())
            .flat_map(|points| points.split(' '))
            .filter_map(|point| point.split(',').next()?.parse().ok())
            .collect();
        assert_eq!(xs.len(), 2, "{xs:?}");
        assert!(xs.iter().all(|x| *x >= MARGIN), "{xs:?}");
    }

    #[test]
    fn the_check_catches_a_chart_loaded_from_a_cdn() {
        let html = render(&summary()).replace(
            "</body>",
            r#"<script src="https://cdn.example/chart.js"></script></body>"#,
        );
        assert!(external_references(&html).contains(&"https://"));
        assert!(external_references(&html).contains(&"<script"));
    }

    #[test]
    fn the_report_escapes_what_it_shows() {
        let html = render(&summary());
        assert!(!html.contains("8080/<script>"));
        assert!(html.contains("8080/&lt;script&gt;"));
    }

    #[test]
    fn each_fault_is_listed_and_shades_every_timeline() {
        let band = r#"fill-opacity="0.18""#;
        let html = render(&summary());
        assert!(html.contains("<h2>Faults</h2>"));
        assert!(html.contains("mysql &lt;row&gt;") && !html.contains("mysql <row>"));
        // The responses and issued charts, the rate chart, and each of the six server charts.
        assert_eq!(html.matches(band).count(), 9, "one band per timeline");
        let mut quiet = summary();
        quiet.fault_windows.clear();
        let html = render(&quiet);
        assert_eq!(html.matches(band).count(), 0);
        assert!(!html.contains("<h2>Faults</h2>"));
    }
}
