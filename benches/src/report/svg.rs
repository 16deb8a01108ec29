//! The SVG pieces of the HTML reports: plain inline SVG, no scripts, so a report is one file
//! that opens anywhere.

use std::fmt::Write as _;

use super::Stage;
use crate::stats::Distribution;

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub const W: f64 = 560.0;
pub const H: f64 = 200.0;
pub const PAD: f64 = 36.0;

pub fn svg_open(title: &str) -> String {
    format!(
        "<figure><figcaption>{}</figcaption><svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" \
         height=\"{H}\" role=\"img\">",
        esc(title)
    )
}

/// Axis lines and min/max labels.
pub fn axes(out: &mut String, x0: f64, x1: f64, y1: f64, xunit: &str) {
    let _ = write!(
        out,
        "<line x1=\"{PAD}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\" stroke=\"#555\"/>\
         <line x1=\"{PAD}\" y1=\"8\" x2=\"{PAD}\" y2=\"{b}\" stroke=\"#555\"/>\
         <text x=\"{PAD}\" y=\"{t}\" font-size=\"11\">{x0:.1}</text>\
         <text x=\"{r}\" y=\"{t}\" font-size=\"11\" text-anchor=\"end\">{x1:.1} {xunit}</text>\
         <text x=\"{l}\" y=\"14\" font-size=\"11\" text-anchor=\"end\">{y1:.0}</text>",
        b = H - 20.0,
        r = W - 8.0,
        t = H - 6.0,
        l = PAD - 4.0,
    );
}

pub fn histogram_svg(title: &str, d: &Distribution) -> String {
    let mut out = svg_open(title);
    let (Some(first), Some(last)) = (d.histogram.first(), d.histogram.last()) else {
        return out + "</svg></figure>";
    };
    let (x0, x1) = (first.lo, last.hi.max(first.lo + 1e-9));
    let top = d
        .histogram
        .iter()
        .map(|b| b.count)
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    axes(&mut out, x0, x1, top, "ms");
    let sx = (W - 8.0 - PAD) / (x1 - x0);
    let sy = (H - 28.0) / top;
    for b in &d.histogram {
        let h = b.count as f64 * sy;
        let _ = write!(
            out,
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"#3b7dd8\"/>",
            PAD + (b.lo - x0) * sx,
            H - 20.0 - h,
            ((b.hi - b.lo) * sx - 1.0).max(1.0),
        );
    }
    out + "</svg></figure>"
}

pub fn line_svg(title: &str, points: &[(f64, f64)], y_top: f64, xunit: &str) -> String {
    lines_svg(title, &[("", points.to_vec())], y_top, xunit)
}

const SERIES: [&str; 6] = [
    "#d8553b", "#3b7dd8", "#47a447", "#8e44ad", "#e0a030", "#16a3a3",
];

/// Several lines on one set of axes (x from the lowest to the highest point of any), each in
/// its colour, with a legend of the named ones.
pub fn lines_svg(
    title: &str,
    series: &[(&str, Vec<(f64, f64)>)],
    y_top: f64,
    xunit: &str,
) -> String {
    let mut out = svg_open(title);
    let xs = || series.iter().flat_map(|(_, p)| p.iter().map(|q| q.0));
    let (Some(x0), Some(x1)) = (xs().min_by(f64::total_cmp), xs().max_by(f64::total_cmp)) else {
        return out + "</svg></figure>";
    };
    let x1 = x1.max(x0 + 1e-9);
    axes(&mut out, x0, x1, y_top, xunit);
    let sx = (W - 8.0 - PAD) / (x1 - x0);
    let sy = (H - 28.0) / y_top.max(1e-9);
    for (i, (name, points)) in series.iter().enumerate() {
        let c = SERIES[i % SERIES.len()];
        let path: Vec<String> = points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", PAD + (x - x0) * sx, H - 20.0 - y * sy))
            .collect();
        let _ = write!(
            out,
            "<polyline fill=\"none\" stroke=\"{c}\" stroke-width=\"2\" points=\"{}\"/>",
            path.join(" ")
        );
        if !name.is_empty() {
            let _ = write!(
                out,
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"10\" height=\"10\" fill=\"{c}\"/>\
                 <text x=\"{tx:.1}\" y=\"{ty:.1}\" font-size=\"11\">{}</text>",
                esc(name),
                x = W - 130.0,
                y = 10.0 + i as f64 * 15.0,
                tx = W - 116.0,
                ty = 19.0 + i as f64 * 15.0,
            );
        }
    }
    out + "</svg></figure>"
}

pub fn stages_svg(stages: &[Stage]) -> String {
    let mut out = svg_open("glass-to-glass, mean ms per stage");
    let parts: Vec<&Stage> = stages.iter().filter(|s| s.name != "total").collect();
    let total: f64 = parts
        .iter()
        .map(|s| s.ms.mean.max(0.0))
        .sum::<f64>()
        .max(1e-9);
    let colours = [
        "#3b7dd8", "#47a447", "#e0a030", "#8e44ad", "#d8553b", "#16a3a3", "#777", "#c0392b",
    ];
    let mut x = PAD;
    let span = W - 8.0 - PAD;
    for (i, s) in parts.iter().enumerate() {
        let w = s.ms.mean.max(0.0) / total * span;
        let c = colours[i % colours.len()];
        let _ = write!(
            out,
            "<rect x=\"{x:.1}\" y=\"20\" width=\"{w:.1}\" height=\"40\" fill=\"{c}\">\
             <title>{}: {:.2} ms</title></rect>\
             <rect x=\"{PAD}\" y=\"{ly:.1}\" width=\"10\" height=\"10\" fill=\"{c}\"/>\
             <text x=\"{tx}\" y=\"{ty:.1}\" font-size=\"11\">{} {:.2} ms</text>",
            s.name,
            s.ms.mean,
            s.name,
            s.ms.mean,
            ly = 72.0 + i as f64 * 15.0,
            tx = PAD + 14.0,
            ty = 81.0 + i as f64 * 15.0,
        );
        x += w;
    }
    out + "</svg></figure>"
}
