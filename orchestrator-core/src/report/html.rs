//! The HTML form of a session report: one self-contained file (clusters are often
//! offline), the Markdown report's tables rendered to HTML, and charts drawn as inline
//! SVG by plotters: latency percentiles per run, throughput and errors over time,
//! TTFT and TPOT distributions, the throughput-versus-latency curve of a sweep, and
//! the services' monitoring series.

use std::fmt::Write as _;

use plotters::prelude::*;

use super::types::SessionReport;

/// One named series of points.
type Series = (String, Vec<(f64, f64)>);

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// A line chart (with points) as an SVG element; `None` without points to draw.
fn chart(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> Option<String> {
    chart_with(title, x_label, y_label, series, None)
}

/// [`chart`], with `x_names[i]` written at x = i instead of numbers.
fn chart_with(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    x_names: Option<&[&str]>,
) -> Option<String> {
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut x0, mut x1, mut y1) = (f64::MAX, f64::MIN, f64::MIN);
    let mut any = false;
    for (x, y) in points {
        any = true;
        x0 = x0.min(*x);
        x1 = x1.max(*x);
        y1 = y1.max(*y);
    }
    if !any {
        return None;
    }
    if (x1 - x0).abs() < f64::EPSILON {
        x1 = x0 + 1.0;
    }
    let y1 = if y1 <= 0.0 { 1.0 } else { y1 * 1.08 };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (720, 360)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut c = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 18))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, 0f64..y1)
            .ok()?;
        let name_of = |x: &f64| {
            let i = x.round();
            match x_names {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Some(names) if (x - i).abs() < 1e-6 && i >= 0.0 => names
                    .get(i as usize)
                    .map_or_else(String::new, |n| (*n).to_owned()),
                Some(_) => String::new(),
                None => format!("{x}"),
            }
        };
        let mut mesh = c.configure_mesh();
        mesh.x_desc(x_label)
            .y_desc(y_label)
            .light_line_style(RGBColor(235, 235, 235));
        if let Some(names) = x_names {
            mesh.x_labels(names.len()).x_label_formatter(&name_of);
        }
        mesh.draw().ok()?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .ok()?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            c.draw_series(pts.iter().map(|p| Circle::new(*p, 3, color.filled())))
                .ok()?;
        }
        if series.len() > 1 || !series[0].0.is_empty() {
            c.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(RGBColor(200, 200, 200))
                .draw()
                .ok()?;
        }
        root.present().ok()?;
    }
    Some(svg)
}

const PERCENTILES: [&str; 5] = ["p50", "p90", "p95", "p99", "p999"];

fn label(run: &super::types::ClientRun) -> String {
    format!("{} {}", run.client, run.run)
}

/// The charts of a report, each with the sentence that says what it shows.
fn charts(r: &SessionReport) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut push = |what: &str, svg: Option<String>| {
        if let Some(svg) = svg {
            out.push((what.to_owned(), svg));
        }
    };
    // Latency (and TTFT) percentiles: x is the percentile.
    for (key, name) in [("latency_ms", "Latency"), ("ttft_ms", "TTFT")] {
        let series: Vec<Series> = r
            .runs
            .iter()
            .filter_map(|run| {
                let d = run.summary.get(key)?;
                #[allow(clippy::cast_precision_loss)]
                let pts: Vec<(f64, f64)> = PERCENTILES
                    .iter()
                    .enumerate()
                    .filter_map(|(i, k)| Some((i as f64, d.get(*k)?.as_f64()?)))
                    .collect();
                (!pts.is_empty()).then(|| (label(run), pts))
            })
            .collect();
        push(
            &format!("{name} percentiles of each run (p50, p90, p95, p99, p99.9)."),
            chart_with(
                &format!("{name} percentiles"),
                "percentile",
                "ms",
                &series,
                Some(&PERCENTILES),
            ),
        );
    }
    // Throughput and errors over time.
    let mut throughput: Vec<Series> = Vec::new();
    let mut errors: Vec<Series> = Vec::new();
    for run in &r.runs {
        #[allow(clippy::cast_precision_loss)]
        let ok: Vec<(f64, f64)> = run
            .per_second
            .iter()
            .map(|s| (s.second as f64, s.completed as f64))
            .collect();
        if !ok.is_empty() {
            throughput.push((label(run), ok));
        }
        if run.per_second.iter().any(|s| s.failed > 0) {
            #[allow(clippy::cast_precision_loss)]
            errors.push((
                label(run),
                run.per_second
                    .iter()
                    .map(|s| (s.second as f64, s.failed as f64))
                    .collect(),
            ));
        }
    }
    push(
        "Requests completed in each second of each run.",
        chart("Throughput over time", "s", "requests/s", &throughput),
    );
    push(
        "Requests failed in each second (runs with failures).",
        chart("Errors over time", "s", "errors/s", &errors),
    );
    // TTFT and TPOT distributions.
    for (key, name) in [("ttft_ms", "TTFT"), ("tpot_ms", "TPOT")] {
        #[allow(clippy::cast_precision_loss)]
        let series: Vec<Series> = r
            .runs
            .iter()
            .filter_map(|run| {
                let bins = run.histograms.get(key)?;
                Some((
                    label(run),
                    bins.iter()
                        .map(|b| ((b.from + b.to) / 2.0, b.count as f64))
                        .collect(),
                ))
            })
            .collect();
        push(
            &format!("Distribution of the per-request {name} (20 bins)."),
            chart(&format!("{name} distribution"), "ms", "requests", &series),
        );
    }
    // A sweep: throughput against latency across the runs of one client.
    let mut clients: Vec<&str> = r.runs.iter().map(|x| x.client.as_str()).collect();
    clients.dedup();
    for client in clients {
        let runs: Vec<_> = r.runs.iter().filter(|x| x.client == client).collect();
        if runs.len() < 2 {
            continue;
        }
        let pick = |run: &super::types::ClientRun, stat: &str| -> Option<(f64, f64)> {
            let s = &run.summary;
            Some((
                s.get("requests_per_second")?.as_f64()?,
                s.get("latency_ms")?.get(stat)?.as_f64()?,
            ))
        };
        let series: Vec<Series> = ["p50", "p99"]
            .iter()
            .map(|stat| {
                (
                    format!("latency {stat}"),
                    runs.iter().filter_map(|run| pick(run, stat)).collect(),
                )
            })
            .collect();
        push(
            &format!("Sweep of `{client}`: each run's throughput against its latency."),
            chart(
                &format!("{client}: throughput vs latency"),
                "requests/s",
                "latency ms",
                &series,
            ),
        );
    }
    // Monitoring.
    for m in &r.monitoring {
        let s = &m.series;
        push(
            &format!(
                "Service `{}`: CPU of its processes and of the node.",
                m.service
            ),
            chart(
                &format!("{}: CPU", m.service),
                "s",
                "% (of one core; node: of all)",
                &[
                    (
                        "service".to_owned(),
                        s.process.iter().map(|p| (p.t_s, p.cpu_percent)).collect(),
                    ),
                    (
                        "node".to_owned(),
                        s.node.iter().map(|n| (n.t_s, n.cpu_percent)).collect(),
                    ),
                ],
            ),
        );
        push(
            &format!("Service `{}`: resident memory of its processes.", m.service),
            chart(
                &format!("{}: memory", m.service),
                "s",
                "MB",
                &[(
                    String::new(),
                    s.process.iter().map(|p| (p.t_s, p.rss_mb)).collect(),
                )],
            ),
        );
        for (what, unit, f) in [
            (
                "GPU utilisation",
                "%",
                (|g: &crate::monitor::GpuSample| g.utilization_percent)
                    as fn(&crate::monitor::GpuSample) -> Option<f64>,
            ),
            ("GPU power", "W", |g| g.power_w),
            ("GPU memory", "MiB", |g| g.memory_used_mib),
        ] {
            let mut indices: Vec<u32> = s.gpus.iter().map(|g| g.index).collect();
            indices.sort_unstable();
            indices.dedup();
            let series: Vec<Series> = indices
                .iter()
                .map(|i| {
                    (
                        format!("GPU {i}"),
                        s.gpus
                            .iter()
                            .filter(|g| g.index == *i)
                            .filter_map(|g| Some((g.t_s, f(g)?)))
                            .collect(),
                    )
                })
                .collect();
            push(
                &format!("Service `{}`: {what}.", m.service),
                chart(&format!("{}: {what}", m.service), "s", unit, &series),
            );
        }
    }
    // What the session's Prometheus scraped: a chart per query, seconds from the
    // session's start.
    if let Some(p) = &r.prometheus {
        for q in p.queries.iter().filter(|q| !q.series.is_empty()) {
            let series: Vec<Series> = q
                .series
                .iter()
                .map(|s| {
                    (
                        s.shown_labels().join(" "),
                        s.values
                            .iter()
                            .filter(|(_, v)| v.is_finite())
                            .map(|(t, v)| (t - p.start, *v))
                            .collect(),
                    )
                })
                .collect();
            push(
                &format!("Prometheus: `{}`.", q.query),
                chart(&format!("Prometheus: {}", q.name), "s", "", &series),
            );
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}\
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ddd;padding:4px 8px;text-align:left}\
th{background:#f4f4f4}code{background:#f4f4f4;padding:1px 3px}figure{margin:1.5em 0}figcaption{color:#555;font-size:14px}\
svg{max-width:100%;height:auto}";

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Markdown as HTML, raw HTML in it shown rather than run.
fn to_html(markdown: &str) -> String {
    let mut body = String::new();
    let parser = pulldown_cmark::Parser::new_ext(markdown, pulldown_cmark::Options::ENABLE_TABLES)
        // Raw HTML in a value (a recipe's description, an error) is shown, not run.
        .map(|event| match event {
            pulldown_cmark::Event::Html(t) | pulldown_cmark::Event::InlineHtml(t) => {
                pulldown_cmark::Event::Text(t)
            }
            other => other,
        });
    pulldown_cmark::html::push_html(&mut body, parser);
    body
}

/// One page: `body` with the charts inserted before `before` (or at the end).
fn page(title: &str, body: &str, charts: &[(String, String)], before: &str) -> String {
    let mut figures = String::new();
    if !charts.is_empty() {
        figures.push_str("<h2>Charts</h2>\n");
        for (caption, svg) in charts {
            let _ = writeln!(
                figures,
                "<figure>{svg}<figcaption>{}</figcaption></figure>",
                escape(caption)
            );
        }
    }
    let split = body.find(before).unwrap_or(body.len());
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{}{figures}{}</body>\n</html>\n",
        escape(title),
        &body[..split],
        &body[split..]
    )
}

/// The report as one self-contained HTML page.
#[must_use]
pub fn html(r: &SessionReport) -> String {
    let body = to_html(&super::markdown::markdown(r));
    let title = format!(
        "Benchmark report: {} ({})",
        r.session.name.as_deref().unwrap_or("unnamed"),
        r.session.id
    );
    // The charts go before the details (jobs, timeline) of the Markdown.
    page(&title, &body, &charts(r), "<h2>Jobs</h2>")
}

/// One chart of [`deployments_html`]: its title, its unit, and per client run (its
/// name) its value in each deployment (`None` where it has none).
pub type DeploymentChart = (String, String, Vec<(String, Vec<Option<f64>>)>);

/// A comparison of deployments (a service matrix) as one self-contained HTML page:
/// `markdown`'s tables, then a chart per figure, each with a line per client run over
/// the deployments (`#1`, `#2`, ... on the x axis). `figures`: the chart's title, its
/// unit, and per client run its values by deployment (`None` where it has none).
#[must_use]
pub fn deployments_html(
    title: &str,
    markdown: &str,
    deployments: usize,
    figures: &[DeploymentChart],
) -> String {
    let names: Vec<String> = (1..=deployments).map(|n| format!("#{n}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let charts: Vec<(String, String)> = figures
        .iter()
        .filter_map(|(caption, unit, lines)| {
            #[allow(clippy::cast_precision_loss)]
            let series: Vec<Series> = lines
                .iter()
                .map(|(name, values)| {
                    let points = values
                        .iter()
                        .enumerate()
                        .filter_map(|(i, v)| Some((i as f64, (*v)?)))
                        .collect();
                    (name.clone(), points)
                })
                .collect();
            let svg = chart_with(caption, "deployment", unit, &series, Some(&names))?;
            Some((caption.clone(), svg))
        })
        .collect();
    page(title, &to_html(markdown), &charts, "<p>Sessions:</p>")
}
