//! The comparison as one self-contained HTML page: the figures side by side with their
//! verdicts, each view's glass-to-glass CDF and histogram of every target on the same axes, fps
//! over time, edgedesk's stage breakdown, and the other load during each measurement.

use std::fmt::Write as _;

use super::figures::View;
use super::Comparison;
use crate::report::svg::{esc, lines_svg, stages_svg};

pub fn page(c: &Comparison) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>edgedesk-bench compare</title>\
         <style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1300px}\
         pre{background:#f4f4f4;padding:1em;overflow-x:auto}figure{display:inline-block;margin:0 1em 1em 0}\
         figcaption{font-weight:600}svg{background:#fafafa;border:1px solid #ddd}\
         table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:right}\
         td:first-child,th:first-child{text-align:left}</style></head><body>",
    );
    let _ = write!(
        out,
        "<h1>edgedesk-bench compare: {}</h1><pre>{}</pre>",
        esc(&c.targets.join(" vs ")),
        esc(&super::text(c))
    );
    for view in [View::Decoder, View::Displayed] {
        let series: Vec<(usize, &crate::stats::Samples)> = c
            .pooled
            .iter()
            .filter(|((_, v), s)| *v == view && !s.is_empty())
            .map(|((t, _), s)| (*t, s))
            .collect();
        if series.is_empty() {
            continue;
        }
        let _ = write!(out, "<h2>{}</h2>", esc(view.title()));
        let cdfs: Vec<(&str, Vec<(f64, f64)>)> = series
            .iter()
            .map(|(t, s)| {
                let pts = s
                    .cdf(200)
                    .into_iter()
                    .map(|p| (p.value, p.fraction * 100.0))
                    .collect();
                (c.targets[*t].as_str(), pts)
            })
            .collect();
        out.push_str(&lines_svg(
            "glass-to-glass CDF, every frame of every run (% of frames ≤ x)",
            &cdfs,
            100.0,
            "ms",
        ));
        // Histograms as lines of the share of frames per 1 ms bin, on shared axes.
        let hists: Vec<(&str, Vec<(f64, f64)>)> = series
            .iter()
            .map(|(t, s)| {
                let n = s.len().max(1) as f64;
                let pts = s
                    .histogram_width(1.0)
                    .into_iter()
                    .map(|b| ((b.lo + b.hi) / 2.0, b.count as f64 / n * 100.0))
                    .collect();
                (c.targets[*t].as_str(), pts)
            })
            .collect();
        let top = hists
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .fold(10.0, f64::max);
        out.push_str(&lines_svg(
            "glass-to-glass histogram (% of frames per 1 ms)",
            &hists,
            top,
            "ms",
        ));
        let fps: Vec<(&str, Vec<(f64, f64)>)> = c
            .first_reports
            .iter()
            .filter(|((_, v), _)| *v == view)
            .map(|((t, _), r)| {
                let pts = r.fps_series.iter().map(|p| (p.t, p.fps)).collect();
                (c.targets[*t].as_str(), pts)
            })
            .collect();
        let top = fps
            .iter()
            .flat_map(|(_, p)| p.iter().map(|q| q.1))
            .fold(60.0, f64::max);
        out.push_str(&lines_svg("fps over time (first run)", &fps, top, "s"));
        for ((t, v), r) in &c.first_reports {
            if *v == view && !r.stages.is_empty() {
                let _ = write!(
                    out,
                    "<p>{}: where the time goes (first run)</p>",
                    esc(&c.targets[*t])
                );
                out.push_str(&stages_svg(&r.stages));
            }
        }
    }
    out.push_str(
        "<h2>every measurement</h2><table><tr><th>run</th><th>target</th><th>view</th>\
         <th>glass-to-glass p50 ms</th><th>fps</th><th>other load % core</th></tr>",
    );
    for m in &c.measurements {
        let f = |k: &str| m.figures.get(k).map_or("-".into(), |v| format!("{v:.1}"));
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{:?}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            m.run + 1,
            esc(&c.targets[m.target]),
            m.view,
            f("g2g_p50"),
            f("fps"),
            m.other_load_percent
                .map_or("-".into(), |v| format!("{v:.0}"))
        );
    }
    let _ = write!(
        out,
        "</table><h2>settings</h2><pre>{}</pre></body></html>",
        esc(&serde_json::to_string_pretty(&c.settings).unwrap_or_default())
    );
    out
}
