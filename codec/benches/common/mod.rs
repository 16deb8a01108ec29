//! Shared by every edgedesk criterion bench (`codec/benches/*.rs`, and
//! `host/benches/capture.rs` through `#[path]`, so the ratio line and JSON format exist once):
//! the sizes, synthetic pictures, per-call timing records and the ours / baseline ratios.
//!
//! # How a ratio is computed
//! Every bench measures in `iter_custom` and hands each call's elapsed time to a [`Timing`].
//! The figure used for the ratio is the **median of the per-iteration times of all calls
//! criterion made except the first** (the first is a cold start: caches, page faults, encoder
//! first frame). Criterion's warm-up calls are included; they run the same code. Criterion's
//! own estimates (its printed `time:` line) come from the same calls and normally agree within
//! a few per cent.
//!
//! Ratios print as one line per size, e.g.
//! `ratio convert 1920x1080: ours 0.44 ms / libswscale point 4.25 ms = 0.10`, and are written
//! to `target/criterion/edgedesk-ratios-<bench>.json`. The file holds the sizes of the latest
//! run only: a run filtered to one size replaces it with that size.

// Each bench uses a different subset of these helpers.
#![allow(dead_code)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

/// The sizes every bench runs at.
pub const SIZES: [(u32, u32); 4] = [(1280, 720), (1920, 1080), (3840, 2160), (7680, 4320)];

/// `WxH`, the form used in bench ids, ratio lines and the JSON.
/// The run settings every bench starts from (flags on the command line still override them):
/// `samples` per measurement, 1 s warm-up, 3 s measuring.
pub fn config(samples: usize) -> criterion::Criterion {
    criterion::Criterion::default()
        .sample_size(samples)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

pub fn size_label(w: u32, h: u32) -> String {
    format!("{w}x{h}")
}

/// A desktop-like BGRA picture, tightly packed (`w * 4` bytes per row): horizontal and vertical
/// gradients plus per-pixel noise (so no encoder or converter sees flat colour), with dark
/// glyph-like blocks ("text") in the left half. Alpha/X is 255.
pub fn pattern(w: u32, h: u32) -> Vec<u8> {
    let (wu, hu) = (w as usize, h as usize);
    let mut out = vec![0u8; wu * hu * 4];
    let mut seed = 0x1234_5678u32;
    let mut glyph = 0u32;
    for (y, row) in out.chunks_exact_mut(wu * 4).enumerate() {
        for (x, px) in row.chunks_exact_mut(4).enumerate() {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let noise = ((seed >> 16) & 15) as u8;
            let gx = (x * 255 / wu) as u8;
            let gy = (y * 255 / hu) as u8;
            let mut p = [
                gx.saturating_add(noise),
                gy.saturating_add(noise),
                (200 - gx / 2).saturating_add(noise),
                255,
            ];
            if x < wu / 2 && (y / 16) % 2 == 0 {
                if x % 8 == 0 {
                    glyph = seed >> 20;
                }
                if glyph & 3 == 0 && y % 16 > 3 && x % 8 < 6 {
                    p = [20 + noise, 20 + noise, 20 + noise, 255];
                }
            }
            px.copy_from_slice(&p);
        }
    }
    out
}

/// Frame `n` of a moving sequence over `base` (a [`pattern`] of `w` x `h`): the picture scrolls
/// up `n` rows and three solid "windows" move across it, so consecutive frames differ
/// everywhere a real scroll would and in the windows' paths.
pub fn moving_frame(base: &[u8], w: u32, h: u32, n: u64) -> Vec<u8> {
    let (w, h) = (w as usize, h as usize);
    let row = w * 4;
    let shift = (n as usize * 3) % h;
    let mut dst = Vec::with_capacity(base.len());
    dst.extend_from_slice(&base[shift * row..]);
    dst.extend_from_slice(&base[..shift * row]);
    let s = h / 4;
    for (i, c) in [[0u8, 0, 255, 255], [0, 200, 0, 255], [255, 80, 0, 255]]
        .iter()
        .enumerate()
    {
        let x0 = (i * w / 3 + 8 * n as usize) % (w - s);
        let y0 = (i * h / 4 + 4 * n as usize) % (h - s);
        for y in y0..y0 + s {
            for px in dst[y * row + x0 * 4..y * row + (x0 + s) * 4].chunks_exact_mut(4) {
                px.copy_from_slice(c);
            }
        }
    }
    dst
}

/// What one bench function measured: each `iter_custom` call's per-iteration time.
#[derive(Debug, Default)]
pub struct Timing {
    per_iter: Vec<Duration>,
}

impl Timing {
    /// Records one `iter_custom` call of `iters` iterations that took `total`; returns `total`
    /// so the closure can end with it.
    pub fn record(&mut self, iters: u64, total: Duration) -> Duration {
        if iters > 0 {
            self.per_iter
                .push(total / iters.min(u64::from(u32::MAX)) as u32);
        }
        total
    }

    /// Median per-iteration time over every call but the first (the only one when criterion
    /// made just one, as in `--test` mode); `None` when the bench did not run (filtered out).
    pub fn estimate(&self) -> Option<Duration> {
        let mut d: Vec<Duration> = match self.per_iter.len() {
            0 => return None,
            1 => self.per_iter.clone(),
            _ => self.per_iter[1..].to_vec(),
        };
        d.sort_unstable();
        Some(d[d.len() / 2])
    }
}

/// One ours / baseline comparison at one size.
#[derive(Debug, Clone)]
pub struct Row {
    /// What is compared, e.g. `convert`.
    pub what: String,
    pub width: u32,
    pub height: u32,
    /// Our implementation, e.g. `edgedesk SIMD (yuv crate)`.
    pub ours: String,
    /// Milliseconds per unit (frame) of ours; `None` when not measured in this run.
    pub ours_ms: Option<f64>,
    /// The baseline, e.g. `libswscale point`.
    pub baseline: String,
    /// Milliseconds per unit (frame) of the baseline; `None` when not measured or skipped.
    pub baseline_ms: Option<f64>,
    /// Why the baseline was not measured, when it was skipped on purpose.
    pub skipped: Option<String>,
    /// Free-form facts a reader needs to interpret the figures (frames per run, bitrate, ...).
    pub notes: Vec<(String, String)>,
}

impl Row {
    /// ours / baseline, when both were measured.
    pub fn ratio(&self) -> Option<f64> {
        match (self.ours_ms, self.baseline_ms) {
            (Some(o), Some(b)) if b > 0.0 => Some(o / b),
            _ => None,
        }
    }

    /// The printed line, e.g.
    /// `ratio convert 1920x1080: ours 0.44 ms / libswscale point 4.25 ms = 0.10`.
    pub fn line(&self) -> String {
        let ms = |v: Option<f64>| v.map_or("not measured".to_string(), |v| format!("{v:.2} ms"));
        let mut s = format!(
            "ratio {} {}: ours {} / {} ",
            self.what,
            size_label(self.width, self.height),
            ms(self.ours_ms),
            self.baseline
        );
        match (&self.skipped, self.ratio()) {
            (Some(why), _) => {
                let _ = write!(s, "skipped ({why})");
            }
            (None, Some(r)) => {
                let _ = write!(s, "{} = {r:.2}", ms(self.baseline_ms));
            }
            (None, None) => s.push_str(&ms(self.baseline_ms)),
        }
        s
    }
}

/// The ratios of one bench run; printed as they are added, written as JSON.
#[derive(Debug)]
pub struct Ratios {
    bench: String,
    method: String,
    rows: Vec<Row>,
}

impl Ratios {
    /// `bench` names the JSON file; `method` says in words how the figures were taken.
    pub fn new(bench: &str, method: &str) -> Self {
        Ratios {
            bench: bench.into(),
            method: method.into(),
            rows: Vec::new(),
        }
    }

    /// Prints the row's line and (re)writes the JSON file with every row so far, so an
    /// interrupted run still leaves the sizes it finished. Rows where neither side ran (the
    /// size was filtered out) are neither printed nor written.
    pub fn add(&mut self, row: Row) {
        if row.ours_ms.is_none() && row.baseline_ms.is_none() && row.skipped.is_none() {
            return;
        }
        println!("{}", row.line());
        self.rows.push(row);
        let path = output_dir().join(format!("edgedesk-ratios-{}.json", self.bench));
        let written = std::fs::create_dir_all(output_dir())
            .and_then(|()| std::fs::write(&path, self.to_json()));
        if let Err(e) = written {
            eprintln!("cannot write {}: {e}", path.display());
        }
    }

    /// The JSON document (hand-written: the codec crate has no JSON dependency).
    pub fn to_json(&self) -> String {
        let num = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.6}"));
        let mut s = String::new();
        let written = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let _ = write!(
            s,
            "{{\n  \"bench\": {},\n  \"method\": {},\n  \"unit\": \"ms per frame\",\n  \
             \"written_unix_s\": {written},\n  \"results\": [",
            json_str(&self.bench),
            json_str(&self.method),
        );
        for (i, r) in self.rows.iter().enumerate() {
            let notes: Vec<String> = r
                .notes
                .iter()
                .map(|(k, v)| format!("{}: {}", json_str(k), json_str(v)))
                .collect();
            let _ = write!(
                s,
                "{}\n    {{\"what\": {}, \"size\": {}, \"width\": {}, \"height\": {}, \
                 \"ours\": {}, \"ours_ms\": {}, \"baseline\": {}, \"baseline_ms\": {}, \
                 \"ratio\": {}, \"skipped\": {}, \"line\": {}, \"notes\": {{{}}}}}",
                if i == 0 { "" } else { "," },
                json_str(&r.what),
                json_str(&size_label(r.width, r.height)),
                r.width,
                r.height,
                json_str(&r.ours),
                num(r.ours_ms),
                json_str(&r.baseline),
                num(r.baseline_ms),
                num(r.ratio()),
                r.skipped.as_deref().map_or("null".to_string(), json_str),
                json_str(&r.line()),
                notes.join(", ")
            );
        }
        s.push_str("\n  ]\n}\n");
        s
    }
}

/// Milliseconds in a [`Duration`], for [`Row`] fields.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Where criterion writes: `$CRITERION_HOME`, else `$CARGO_TARGET_DIR/criterion`, else the
/// workspace's `target/criterion` (both crates sit one level below the workspace root).
fn output_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    target.join("criterion")
}

fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
