//! From many runs to the figures of a comparison: per target and figure, the median of the
//! runs, their spread (lowest–highest run) and the ratio to the first target; a one-line
//! verdict per figure that says whether the runs' spreads overlap.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::report::Report;

/// Which client looked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum View {
    /// The headless client's decoder (WHEP targets).
    Decoder,
    /// What Chromium displayed (every target).
    Displayed,
}

impl View {
    pub fn title(self) -> &'static str {
        match self {
            View::Decoder => "decoder-side (headless client, frame decoded)",
            View::Displayed => "displayed (Chromium, the rendering step that showed the frame)",
        }
    }
}

/// A figure: key in [`figures_of`], name, unit, and whether lower is better (`None`: neither).
pub struct Def {
    pub key: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    pub lower_is_better: Option<bool>,
}

pub const DEFS: [Def; 12] = [
    Def {
        key: "g2g_p50",
        name: "glass-to-glass p50",
        unit: "ms",
        lower_is_better: Some(true),
    },
    Def {
        key: "g2g_p90",
        name: "glass-to-glass p90",
        unit: "ms",
        lower_is_better: Some(true),
    },
    Def {
        key: "g2g_p99",
        name: "glass-to-glass p99",
        unit: "ms",
        lower_is_better: Some(true),
    },
    Def {
        key: "received_p50",
        name: "drawn → received p50",
        unit: "ms",
        lower_is_better: Some(true),
    },
    Def {
        key: "presented_p50",
        name: "presented p50",
        unit: "ms",
        lower_is_better: Some(true),
    },
    Def {
        key: "c2p_p50",
        name: "click-to-photon p50",
        unit: "ms",
        lower_is_better: Some(true),
    },
    Def {
        key: "fps",
        name: "fps",
        unit: "fps",
        lower_is_better: Some(false),
    },
    Def {
        key: "presented_fps",
        name: "presented fps",
        unit: "fps",
        lower_is_better: Some(false),
    },
    Def {
        key: "jitter_buffer",
        name: "Chromium jitter buffer",
        unit: "ms/frame",
        lower_is_better: Some(true),
    },
    Def {
        key: "server_cpu",
        name: "server CPU",
        unit: "% core",
        lower_is_better: Some(true),
    },
    Def {
        key: "client_cpu",
        name: "client CPU",
        unit: "% core",
        lower_is_better: Some(true),
    },
    Def {
        key: "kbps",
        name: "bitrate",
        unit: "kbit/s",
        lower_is_better: None,
    },
];

/// The figures of one run's report.
pub fn figures_of(r: &Report) -> BTreeMap<&'static str, f64> {
    let mut f = BTreeMap::new();
    if let Some(s) = r
        .glass_to_glass_ms
        .as_ref()
        .and_then(|d| d.summary.as_ref())
    {
        f.insert("g2g_p50", s.p50);
        f.insert("g2g_p90", s.p90);
        f.insert("g2g_p99", s.p99);
    }
    if let Some(s) = &r.drawn_to_received_ms {
        f.insert("received_p50", s.p50);
    }
    if let Some(s) = r
        .click_to_photon_ms
        .as_ref()
        .and_then(|d| d.summary.as_ref())
    {
        f.insert("c2p_p50", s.p50);
    }
    if let Some(v) = r.fps {
        f.insert("fps", v);
    }
    if let Some(v) = r.server_cpu_percent {
        f.insert("server_cpu", v);
    }
    if r.bitrate_kbps > 0.0 {
        f.insert("kbps", r.bitrate_kbps);
    }
    if let Some(b) = &r.browser {
        if let Some(v) = b["glass_to_glass_presented_ms"]["p50"].as_f64() {
            f.insert("presented_p50", v);
        }
        if let Some(v) = b["presented_fps"].as_f64() {
            f.insert("presented_fps", v);
        }
        if let Some(v) = b["chromium"]["jitter_buffer_ms"].as_f64() {
            f.insert("jitter_buffer", v);
        }
        if let Some(v) = b["client_cpu_percent"].as_f64() {
            f.insert("client_cpu", v);
        }
    }
    f
}

/// One measurement of the comparison.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigures {
    pub target: usize,
    pub view: View,
    pub run: usize,
    pub figures: BTreeMap<&'static str, f64>,
    /// CPU of processes outside this run (other load), % of one core.
    pub other_load_percent: Option<f64>,
}

/// A target's value of one figure.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub target: String,
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
    /// median / the first target's median.
    pub ratio: Option<f64>,
}

/// One figure across the targets.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    pub view: View,
    pub key: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    /// In target order; a target without the figure has no cell.
    pub cells: Vec<Cell>,
    pub verdict: String,
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// The figures of every view, in [`DEFS`] order; figures no target has are left out.
pub fn aggregate(labels: &[String], runs: &[RunFigures]) -> Vec<Figure> {
    let mut out = Vec::new();
    for view in [View::Decoder, View::Displayed] {
        for def in &DEFS {
            let mut cells = Vec::new();
            for (t, label) in labels.iter().enumerate() {
                let mut v: Vec<f64> = runs
                    .iter()
                    .filter(|r| r.target == t && r.view == view)
                    .filter_map(|r| r.figures.get(def.key).copied())
                    .filter(|v| v.is_finite())
                    .collect();
                if v.is_empty() {
                    continue;
                }
                v.sort_by(f64::total_cmp);
                cells.push(Cell {
                    target: label.clone(),
                    median: median(&v),
                    min: v[0],
                    max: v[v.len() - 1],
                    runs: v.len(),
                    ratio: None,
                });
            }
            if cells.is_empty() {
                continue;
            }
            let base = cells
                .iter()
                .find(|c| c.target == labels[0])
                .map(|c| c.median);
            for c in &mut cells {
                c.ratio = base.filter(|b| *b != 0.0).map(|b| c.median / b);
            }
            let verdict = verdict(def, &cells);
            out.push(Figure {
                view,
                key: def.key,
                name: def.name,
                unit: def.unit,
                cells,
                verdict,
            });
        }
    }
    out
}

/// "lowest: A 15.1 ms; B ×1.62, C ×1.28 — clear: no overlap over 3 runs" (or "within the
/// runs' spread").
fn verdict(def: &Def, cells: &[Cell]) -> String {
    let Some(lower) = def.lower_is_better else {
        let all: Vec<String> = cells
            .iter()
            .map(|c| format!("{} {:.0}", c.target, c.median))
            .collect();
        return format!("{} {} (not a score)", all.join(", "), def.unit);
    };
    if cells.len() < 2 {
        let c = &cells[0];
        return format!("only {} has it: {:.1} {}", c.target, c.median, def.unit);
    }
    let better = |a: &Cell, b: &Cell| {
        if lower {
            a.median.total_cmp(&b.median)
        } else {
            b.median.total_cmp(&a.median)
        }
    };
    let best = cells.iter().min_by(|a, b| better(a, b)).expect("two cells");
    let others: Vec<String> = cells
        .iter()
        .filter(|c| c.target != best.target)
        .map(|c| format!("{} ×{:.2}", c.target, c.median / best.median))
        .collect();
    let clear = cells.iter().filter(|c| c.target != best.target).all(|c| {
        if lower {
            best.max < c.min
        } else {
            best.min > c.max
        }
    });
    let runs = cells.iter().map(|c| c.runs).min().unwrap_or(0);
    format!(
        "{} {}: {:.1} {}; {} — {}",
        if lower { "lowest" } else { "highest" },
        best.target,
        best.median,
        def.unit,
        others.join(", "),
        if runs < 2 {
            "one run: no spread to judge by".to_owned()
        } else if clear {
            format!("clear (no overlap over {runs} runs)")
        } else {
            format!("within the runs' spread ({runs} runs)")
        }
    )
}

/// The text table: per view, a row per figure, a column per target
/// ("median (lowest–highest) ×ratio").
pub fn table(labels: &[String], figures: &[Figure]) -> String {
    let mut out = String::new();
    for view in [View::Decoder, View::Displayed] {
        let rows: Vec<&Figure> = figures.iter().filter(|f| f.view == view).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(out, "\n{}", view.title());
        let mut grid: Vec<Vec<String>> = Vec::new();
        let mut head = vec!["figure".to_owned()];
        head.extend(labels.iter().cloned());
        grid.push(head);
        for f in &rows {
            let mut row = vec![format!("{} ({})", f.name, f.unit)];
            for l in labels {
                row.push(match f.cells.iter().find(|c| &c.target == l) {
                    Some(c) => format!(
                        "{:.1} ({:.1}–{:.1}){}",
                        c.median,
                        c.min,
                        c.max,
                        c.ratio.map(|r| format!(" ×{r:.2}")).unwrap_or_default()
                    ),
                    None => "-".into(),
                });
            }
            grid.push(row);
        }
        let widths: Vec<usize> = (0..grid[0].len())
            .map(|i| grid.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
            .collect();
        for row in &grid {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (c, w))| {
                    let pad = w - c.chars().count();
                    if i == 0 {
                        format!("{c}{}", " ".repeat(pad))
                    } else {
                        format!("{}{c}", " ".repeat(pad))
                    }
                })
                .collect();
            let _ = writeln!(out, "  {}", cells.join("  "));
        }
        for f in &rows {
            let _ = writeln!(out, "  {}: {}", f.name, f.verdict);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(target: usize, run: usize, g2g: f64, fps: f64) -> RunFigures {
        RunFigures {
            target,
            view: View::Decoder,
            run,
            figures: [("g2g_p50", g2g), ("fps", fps)].into_iter().collect(),
            other_load_percent: None,
        }
    }

    #[test]
    fn medians_spreads_ratios_and_verdicts() {
        let labels = vec!["a".to_owned(), "b".to_owned()];
        let runs = vec![
            run(0, 0, 10.0, 60.0),
            run(1, 0, 21.0, 59.0),
            run(0, 1, 12.0, 60.0),
            run(1, 1, 19.0, 61.0),
            run(0, 2, 11.0, 58.0),
            run(1, 2, 20.0, 60.0),
        ];
        let figs = aggregate(&labels, &runs);
        let g = figs.iter().find(|f| f.key == "g2g_p50").unwrap();
        assert_eq!(
            (g.cells[0].median, g.cells[0].min, g.cells[0].max),
            (11.0, 10.0, 12.0)
        );
        assert_eq!(g.cells[1].median, 20.0);
        assert_eq!(g.cells[0].ratio, Some(1.0));
        assert!((g.cells[1].ratio.unwrap() - 20.0 / 11.0).abs() < 1e-9);
        assert!(
            g.verdict.starts_with("lowest a: 11.0 ms; b ×1.82 — clear"),
            "{}",
            g.verdict
        );
        let fps = figs.iter().find(|f| f.key == "fps").unwrap();
        assert!(
            fps.verdict.contains("within the runs' spread"),
            "{}",
            fps.verdict
        );
        // Only the figures someone has, only the views measured.
        assert_eq!(figs.len(), 2);
        let text = table(&labels, &figs);
        assert!(text.contains("11.0 (10.0–12.0) ×1.00"), "{text}");
        assert!(text.contains("20.0 (19.0–21.0) ×1.82"), "{text}");
    }
}
