//! Figures from a [`Measurement`]: glass-to-glass and click-to-photon latency, received fps,
//! bitrate, loss, jitter, unreadable and skipped frame codes, and — when the host's per-frame
//! timings are at hand (edgedesk's `/stats`, same machine) — where each millisecond went.
//! Rendered as a text table, JSON and a self-contained HTML page (inline SVG, no scripts).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use host::timing::FrameTiming;
use serde::Serialize;

use crate::measure::{FrameSample, Measurement};
use crate::stats::{Arrivals, Distribution, FpsPoint, Samples, Summary};

pub mod svg;

use crate::stimulus::Record;
use svg::{esc, histogram_svg, line_svg, stages_svg};

/// The stages of glass-to-glass, in order; their times add up to the total for every frame.
pub const STAGES: [(&str, &str); 9] = [
    (
        "capture_wait",
        "drawn → host grab starts (damage, frame pacing)",
    ),
    ("grab", "X server copies the screen (MIT-SHM)"),
    ("queue", "captured → encoder takes it"),
    ("convert", "BGRA → YUV"),
    ("encode", "encoder"),
    ("send", "encoded → packets written (RTP, SRTP)"),
    ("network", "sent → last packet received (loopback, jitter)"),
    ("decode", "received → decoded (FFmpeg)"),
    ("total", "drawn → decoded"),
];

#[derive(Debug, Serialize)]
pub struct CodeStats {
    /// Decoded frames whose code was read.
    pub readable_frames: u64,
    /// Decoded frames whose code could not be read (a transition, blur, or no code there).
    pub unreadable_frames: u64,
    /// Distinct codes seen.
    pub codes_seen: u64,
    /// Codes drawn (between the first and last seen) that no decoded frame showed.
    pub codes_skipped: u64,
    /// Frames the stimulus drew later than their slot (it fell behind itself).
    pub stimulus_late: u64,
}

#[derive(Debug, Serialize)]
pub struct Stage {
    pub name: &'static str,
    pub what: &'static str,
    pub ms: Summary,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub target: String,
    /// What was run (command line settings), for the record.
    pub settings: BTreeMap<String, String>,
    pub width: u32,
    pub height: u32,
    pub first_frame_ms: f64,
    pub seconds: f64,
    pub frames_decoded: u64,
    pub fps: Option<f64>,
    pub bitrate_kbps: f64,
    /// Mean absolute change of the frames' inter-arrival time.
    pub jitter_ms: Option<f64>,
    /// The longest time between two frames shown (decoded), and how many gaps passed 200 ms:
    /// freezes, with a stimulus that changes every frame.
    #[serde(default)]
    pub longest_gap_ms: Option<f64>,
    #[serde(default)]
    pub freezes_over_200ms: u64,
    pub lost_packets: u64,
    pub late_packets: u64,
    /// Holes filled in time by retransmissions, and NACKs sent for them.
    #[serde(default)]
    pub repaired_packets: u64,
    #[serde(default)]
    pub nacked_packets: u64,
    pub decode_ms_mean: f64,
    /// The server's CPU over the run, % of one core (`local` only: it knows the process).
    pub server_cpu_percent: Option<f64>,
    pub codes: Option<CodeStats>,
    pub glass_to_glass_ms: Option<Distribution>,
    /// The stimulus drew a code → its frame's last packet arrived (server + network), for
    /// every code's first frame: what every client measures alike, so the one to calibrate by.
    pub drawn_to_received_ms: Option<Summary>,
    pub click_to_photon_ms: Option<Distribution>,
    /// Click sent → the stimulus got the button press.
    pub click_input_ms: Option<Summary>,
    /// Button press → the flip drawn (the stimulus' own time).
    pub click_flip_ms: Option<Summary>,
    /// Flip drawn → the viewer decoded a frame showing it.
    pub click_photon_ms: Option<Summary>,
    pub clicks_sent: u64,
    pub clicks_seen: u64,
    pub clicks_note: Option<String>,
    /// How the clicks were sent (edgedesk's input channel, or XTest on this machine).
    pub clicks_via: Option<String>,
    /// The glass-to-glass breakdown (frames whose host timings could be matched).
    pub stages: Vec<Stage>,
    pub stages_note: Option<String>,
    pub fps_series: Vec<FpsPoint>,
    pub notes: Vec<String>,
    /// Browser mode: Chromium's own figures, the presented glass-to-glass, how frames were
    /// read (see `crate::browser`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub browser: Option<serde_json::Value>,
}

fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

fn dms(later: u64, earlier: u64) -> f64 {
    (later as f64 - earlier as f64) / 1e6
}

/// Turns the raw samples into figures. `host` is the host's per-frame timings (or why there
/// are none).
pub fn analyse(
    m: &Measurement,
    record: Option<&Record>,
    host: Result<&[FrameTiming], String>,
    settings: BTreeMap<String, String>,
) -> Report {
    let secs = ms(m.end_ns.saturating_sub(m.start_ns)) / 1e3;
    let arrivals = Arrivals::from_secs(
        m.frames
            .iter()
            .map(|f| ms(f.decoded_ns.saturating_sub(m.start_ns)) / 1e3),
    );
    let received = Arrivals::from_secs(
        m.frames
            .iter()
            .map(|f| ms(f.received_ns.saturating_sub(m.start_ns)) / 1e3),
    );
    let bytes: u64 = m.frames.iter().map(|f| u64::from(f.bytes)).sum();
    let gaps: Vec<f64> = m
        .frames
        .windows(2)
        .map(|w| ms(w[1].decoded_ns.saturating_sub(w[0].decoded_ns)))
        .collect();
    let mut report = Report {
        target: m.whep.clone(),
        settings,
        width: m.width,
        height: m.height,
        first_frame_ms: m.first_frame_ms,
        seconds: secs,
        frames_decoded: m.frames.len() as u64,
        fps: arrivals.fps(),
        bitrate_kbps: bytes as f64 * 8.0 / secs.max(1e-9) / 1e3,
        jitter_ms: received.jitter_ms(),
        longest_gap_ms: gaps.iter().copied().reduce(f64::max),
        freezes_over_200ms: gaps.iter().filter(|g| **g > 200.0).count() as u64,
        lost_packets: m.lost_packets,
        late_packets: m.late_packets,
        repaired_packets: m.repaired_packets,
        nacked_packets: m.nacked_packets,
        decode_ms_mean: m.decode_ms_mean,
        server_cpu_percent: None,
        codes: None,
        glass_to_glass_ms: None,
        drawn_to_received_ms: None,
        click_to_photon_ms: None,
        click_input_ms: None,
        click_flip_ms: None,
        click_photon_ms: None,
        clicks_sent: m.clicks.len() as u64,
        clicks_seen: m.clicks.iter().filter(|c| c.seen_ns.is_some()).count() as u64,
        clicks_note: m.clicks_skipped.clone(),
        clicks_via: m.clicks_via.clone(),
        stages: Vec::new(),
        stages_note: None,
        fps_series: arrivals.fps_series(0.0, secs, 1.0),
        notes: m.connect_notes.clone(),
        browser: None,
    };
    let Some(record) = record else {
        report.notes.push(
            "no stimulus on the streamed display: no frame codes, so no glass-to-glass".into(),
        );
        return report;
    };

    let first_seen = first_showings(m, record);
    let readable = m.frames.iter().filter(|f| f.code.is_some()).count() as u64;
    let skipped = match (first_seen.keys().next(), first_seen.keys().next_back()) {
        (Some(&lo), Some(&hi)) => record
            .order
            .iter()
            .filter(|(c, _)| (lo..=hi).contains(c) && !first_seen.contains_key(c))
            .count() as u64,
        _ => 0,
    };
    report.codes = Some(CodeStats {
        readable_frames: readable,
        unreadable_frames: m.frames.len() as u64 - readable,
        codes_seen: first_seen.len() as u64,
        codes_skipped: skipped,
        stimulus_late: record.late,
    });
    let g2g = glass_to_glass_samples(m, record);
    report.drawn_to_received_ms = first_seen
        .iter()
        .map(|(code, &i)| dms(m.frames[i].received_ns, record.drawn[code]))
        .collect::<Samples>()
        .summary();
    if !g2g.is_empty() {
        report.glass_to_glass_ms = Some(g2g.distribution(40, 200));
    }

    // Click-to-photon, and its input leg from the stimulus' record of arrivals.
    let c2p: Samples = m
        .clicks
        .iter()
        .filter_map(|c| Some(dms(c.seen_ns?, c.sent_ns)))
        .collect();
    if !c2p.is_empty() {
        report.click_to_photon_ms = Some(c2p.distribution(40, 200));
    }
    let (mut input, mut flip, mut photon) = (Vec::new(), Vec::new(), Vec::new());
    for c in &m.clicks {
        let Some((arrived, drawn, _)) = record
            .clicks
            .iter()
            .find(|(a, _, white)| *a >= c.sent_ns && *white == c.white)
        else {
            continue;
        };
        input.push(dms(*arrived, c.sent_ns));
        flip.push(dms(*drawn, *arrived));
        if let Some(seen) = c.seen_ns {
            photon.push(dms(seen, *drawn));
        }
    }
    report.click_input_ms = Summary::of(&input);
    report.click_flip_ms = Summary::of(&flip);
    report.click_photon_ms = Summary::of(&photon);

    // The breakdown: each decoded frame's host frame, found by RTP timestamp.
    match host {
        Err(why) => report.stages_note = Some(why),
        Ok(host) => {
            let wanted: Vec<usize> = first_seen.values().copied().collect();
            let carried = match_host_frames(&m.frames, &wanted, host);
            let mut per_stage: Vec<Vec<f64>> = vec![Vec::new(); STAGES.len()];
            let mut matched = 0;
            for (code, &i) in &first_seen {
                let f = &m.frames[i];
                let drawn = record.drawn[code];
                let Some(h) = carried.get(&i) else {
                    continue;
                };
                if h.sent_ns == 0 || h.sent_ns > f.received_ns {
                    continue;
                }
                let convert = f64::from(h.convert_us) / 1e3;
                let values = [
                    dms(h.grab_start_ns, drawn),
                    dms(h.captured_ns, h.grab_start_ns),
                    dms(h.encode_start_ns, h.captured_ns),
                    convert,
                    dms(h.encoded_ns, h.encode_start_ns) - convert,
                    dms(h.sent_ns, h.encoded_ns),
                    dms(f.received_ns, h.sent_ns),
                    dms(f.decoded_ns, f.received_ns),
                    dms(f.decoded_ns, drawn),
                ];
                for (v, s) in values.iter().zip(per_stage.iter_mut()) {
                    s.push(*v);
                }
                matched += 1;
            }
            if matched == 0 {
                report.stages_note = Some(
                    "no frame could be matched with the host's timings (is the host on this \
                     machine?)"
                        .into(),
                );
            } else {
                report.stages = STAGES
                    .iter()
                    .zip(per_stage)
                    .filter_map(|((name, what), v)| {
                        Some(Stage {
                            name,
                            what,
                            ms: Summary::of(&v)?,
                        })
                    })
                    .collect();
                if matched < first_seen.len() {
                    report.stages_note = Some(format!(
                        "{matched} of {} frames matched with host timings",
                        first_seen.len()
                    ));
                }
            }
        }
    }
    report
}

/// How close (ns) a host frame's capture time must be to the one an RTP timestamp implies.
const RTP_MATCH_NS: i64 = 300_000;

/// The host frame each of `frames[wanted]` carries. edgedesk stamps every frame's RTP
/// timestamp from its capture time (90 kHz), so differences of RTP timestamps are
/// differences of capture times; one anchor — a decoded frame and the last host frame sent
/// before it arrived — fixes the offset. Of a few anchors, the one that explains the most
/// frames wins (a wrong anchor explains almost none).
fn match_host_frames<'h>(
    frames: &[FrameSample],
    wanted: &[usize],
    host: &'h [FrameTiming],
) -> HashMap<usize, &'h FrameTiming> {
    let mut by_capture: Vec<&FrameTiming> = host.iter().filter(|h| h.captured_ns > 0).collect();
    by_capture.sort_by_key(|h| h.captured_ns);
    let find = |at: i64| -> Option<&'h FrameTiming> {
        let i = by_capture.partition_point(|h| (h.captured_ns as i64) < at - RTP_MATCH_NS);
        by_capture
            .get(i)
            .filter(|h| (h.captured_ns as i64 - at).abs() <= RTP_MATCH_NS)
            .copied()
    };
    let predict = |anchor: (u32, u64), rtp: u32| -> i64 {
        let ticks = i64::from(rtp.wrapping_sub(anchor.0) as i32);
        anchor.1 as i64 + ticks * 1_000_000_000 / 90_000
    };
    let step = (wanted.len() / 16).max(1);
    let anchors = wanted.iter().step_by(step).filter_map(|&i| {
        let f = &frames[i];
        let h = host
            .iter()
            .filter(|h| h.sent_ns != 0 && h.sent_ns <= f.received_ns)
            .max_by_key(|h| h.sent_ns)?;
        Some((f.rtp_timestamp, h.captured_ns))
    });
    let mut best = HashMap::new();
    for anchor in anchors {
        let matched: HashMap<usize, &FrameTiming> = wanted
            .iter()
            .filter_map(|&i| Some((i, find(predict(anchor, frames[i].rtp_timestamp))?)))
            .collect();
        if matched.len() > best.len() {
            best = matched;
        }
    }
    best
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    v.map_or("—".into(), |v| format!("{v:.1} {unit}"))
}

fn fmt_summary(s: &Option<Summary>) -> String {
    match s {
        Some(s) => format!(
            "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1} ms  (n={})",
            s.p50, s.p90, s.p99, s.max, s.count
        ),
        None => "—".into(),
    }
}

/// The plain-text table.
pub fn table(r: &Report) -> String {
    let mut out = String::new();
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<22} {v}");
    };
    row("target", r.target.clone());
    if let Some(codec) = r.settings.get("codec") {
        row("codec", codec.clone());
    }
    row("resolution", format!("{}x{}", r.width, r.height));
    row("first frame", format!("{:.0} ms", r.first_frame_ms));
    row("measured", format!("{:.1} s", r.seconds));
    let browser = r.browser.is_some();
    if browser {
        row("frames shown", r.frames_decoded.to_string());
        row("shown fps", fmt_opt(r.fps, "fps"));
    } else {
        row("frames decoded", r.frames_decoded.to_string());
        row("received fps", fmt_opt(r.fps, "fps"));
    }
    row("bitrate", format!("{:.0} kbit/s", r.bitrate_kbps));
    row("jitter", fmt_opt(r.jitter_ms, "ms"));
    row(
        "longest gap",
        format!(
            "{} ({} over 200 ms)",
            fmt_opt(r.longest_gap_ms, "ms"),
            r.freezes_over_200ms
        ),
    );
    row(
        "packets lost / late",
        format!("{} / {}", r.lost_packets, r.late_packets),
    );
    if !browser {
        row(
            "repaired / NACKs",
            format!("{} / {}", r.repaired_packets, r.nacked_packets),
        );
    }
    if !browser {
        row("decode", format!("{:.2} ms/frame", r.decode_ms_mean));
    }
    if let Some(cpu) = r.server_cpu_percent {
        row("server CPU", format!("{cpu:.1} % of one core"));
    }
    if let Some(c) = &r.codes {
        row(
            "frame codes",
            format!(
                "{} seen, {} skipped, {} unreadable frames",
                c.codes_seen, c.codes_skipped, c.unreadable_frames
            ),
        );
    }
    row(
        "glass-to-glass",
        fmt_summary(&r.glass_to_glass_ms.as_ref().and_then(|d| d.summary.clone())),
    );
    if r.drawn_to_received_ms.is_some() {
        row(
            "  drawn → received",
            fmt_summary(&r.drawn_to_received_ms) + "  (server + network: last packet in)",
        );
    }
    let c2p = r
        .click_to_photon_ms
        .as_ref()
        .and_then(|d| d.summary.clone());
    row(
        "click-to-photon",
        match (&c2p, &r.clicks_note) {
            (None, Some(why)) => format!("— ({why})"),
            _ => format!(
                "{}  [{} of {} clicks seen{}]",
                fmt_summary(&c2p),
                r.clicks_seen,
                r.clicks_sent,
                r.clicks_via
                    .as_ref()
                    .map(|v| format!(", via {v}"))
                    .unwrap_or_default()
            ),
        },
    );
    if let (Some(i), Some(f), Some(p)) = (&r.click_input_ms, &r.click_flip_ms, &r.click_photon_ms) {
        row(
            "  p50 by leg",
            format!(
                "input {:.2} + stimulus redraw {:.2} + redraw to decoded {:.2} ms",
                i.p50, f.p50, p.p50
            ),
        );
    }
    if let Some(b) = &r.browser {
        browser_rows(&mut out, b);
    }
    if !r.stages.is_empty() {
        let _ = writeln!(out, "\nwhere the time goes (ms)   p50     mean    p99");
        for s in &r.stages {
            let _ = writeln!(
                out,
                "  {:<22} {:>6.2}  {:>6.2}  {:>6.2}   {}",
                s.name, s.ms.p50, s.ms.mean, s.ms.p99, s.what
            );
        }
    }
    if let Some(n) = &r.stages_note {
        let _ = writeln!(out, "stage breakdown: {n}");
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    out
}

/// The browser-mode lines of the table.
fn browser_rows(out: &mut String, b: &serde_json::Value) {
    let f = |v: &serde_json::Value| v.as_f64().map_or("-".into(), |x| format!("{x:.1}"));
    let summary = |v: &serde_json::Value| {
        serde_json::from_value::<Summary>(v.clone())
            .ok()
            .map_or("-".into(), |s| fmt_summary(&Some(s)))
    };
    let mut row = |k: &str, v: String| {
        let _ = writeln!(out, "{k:<22} {v}");
    };
    row(
        "browser",
        format!(
            "<{}> read via {}, page clock ±{} ms (drift {} ms); glass-to-glass above is when \
             a rendering step first showed the frame",
            b["element"].as_str().unwrap_or("?"),
            b["read_path"].as_str().unwrap_or("?"),
            f(&b["clock_uncertainty_ms"]),
            f(&b["clock_drift_ms"])
        ),
    );
    row(
        "  presented",
        summary(&b["glass_to_glass_presented_ms"]) + "  (handed to the compositor)",
    );
    row(
        "  presented fps",
        format!(
            "{} (frames handed to the compositor per second, Chromium's count)",
            f(&b["presented_fps"])
        ),
    );
    let c = &b["chromium"];
    if c.is_object() {
        row(
            "  Chromium per frame",
            format!(
                "jitter buffer {} ms (target {}), processing {} ms, decode {} ms",
                f(&c["jitter_buffer_ms"]),
                f(&c["jitter_buffer_target_ms"]),
                f(&c["processing_delay_ms"]),
                f(&c["decode_ms"])
            ),
        );
        row(
            "  Chromium received",
            format!(
                "{} decoded fps, {} dropped, {} freezes, {} lost, {} kbit/s, {} {}",
                f(&c["decoded_fps"]),
                c["frames_dropped"],
                c["freezes"],
                c["packets_lost"],
                f(&c["kbps"]),
                c["codec"].as_str().unwrap_or(""),
                c["frame"].as_str().unwrap_or("")
            ),
        );
    } else {
        row(
            "  Chromium",
            "no RTCPeerConnection with inbound video found on the page".into(),
        );
    }
    row(
        "client CPU",
        format!(
            "{} % of one core (node and Chromium)",
            f(&b["client_cpu_percent"])
        ),
    );
}

/// Each code's first frame (its index in `m.frames`). Codes drawn before the first frame
/// arrived are left out: their wait includes connecting.
fn first_showings(m: &Measurement, record: &Record) -> BTreeMap<u32, usize> {
    let mut first_seen: BTreeMap<u32, usize> = BTreeMap::new();
    for (i, f) in m.frames.iter().enumerate() {
        if let Some(code) = f.code {
            if record.drawn.get(&code).is_some_and(|&d| d >= m.start_ns) {
                first_seen.entry(code).or_insert(i);
            }
        }
    }
    first_seen
}

/// Glass-to-glass of every code (its first frame's decoded — or displayed — time minus when
/// the stimulus had it drawn), ms.
pub fn glass_to_glass_samples(m: &Measurement, record: &Record) -> Samples {
    first_showings(m, record)
        .iter()
        .map(|(code, &i)| dms(m.frames[i].decoded_ns, record.drawn[code]))
        .collect()
}

/// A self-contained HTML page: the table, histograms and CDFs of each latency, fps over time
/// and the stage breakdown.
pub fn html(r: &Report) -> String {
    let mut out = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>edgedesk-bench report</title>\
         <style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1200px}\
         pre{background:#f4f4f4;padding:1em}figure{display:inline-block;margin:0 1em 1em 0}\
         figcaption{font-weight:600}svg{background:#fafafa;border:1px solid #ddd}</style>\
         </head><body><h1>edgedesk-bench</h1>",
    );
    let _ = write!(out, "<pre>{}</pre>", esc(&table(r)));
    for (name, d) in [
        ("glass-to-glass", &r.glass_to_glass_ms),
        ("click-to-photon", &r.click_to_photon_ms),
    ] {
        let Some(d) = d else { continue };
        out.push_str(&histogram_svg(&format!("{name}: histogram"), d));
        let cdf: Vec<(f64, f64)> = d
            .cdf
            .iter()
            .map(|p| (p.value, p.fraction * 100.0))
            .collect();
        out.push_str(&line_svg(
            &format!("{name}: CDF (% of frames ≤ x)"),
            &cdf,
            100.0,
            "ms",
        ));
    }
    let fps: Vec<(f64, f64)> = r.fps_series.iter().map(|p| (p.t, p.fps)).collect();
    let top = fps.iter().map(|p| p.1).fold(60.0, f64::max);
    out.push_str(&line_svg("received fps over time", &fps, top, "s"));
    if !r.stages.is_empty() {
        out.push_str(&stages_svg(&r.stages));
    }
    let _ = writeln!(
        out,
        "<h2>settings</h2><pre>{}</pre></body></html>",
        esc(&serde_json::to_string_pretty(&r.settings).unwrap_or_default())
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::ClickSample;

    fn frame(code: u32, received_ms: u64, decoded_ms: u64) -> FrameSample {
        FrameSample {
            received_ns: received_ms * 1_000_000,
            decoded_ns: decoded_ms * 1_000_000,
            bytes: 1000,
            // Captured 6.5 ms before it arrived, on an RTP clock that starts at 1000.
            rtp_timestamp: 1000 + ((received_ms * 1000 - 6500) * 90 / 1000) as u32,
            code: Some(code),
            click_white: Some(false),
        }
    }

    /// Known inputs: three codes drawn at 0, 16, 32 ms; code 2 never shown; host timings for
    /// code 1's frame make a breakdown whose stages add up to the total.
    #[test]
    fn figures_from_known_samples() {
        let mut record = Record::default();
        for (code, at) in [(1u32, 0u64), (2, 16), (3, 32)] {
            record.drawn.insert(code, at * 1_000_000);
            record.order.push((code, at * 1_000_000));
        }
        record.clicks.push((105_000_000, 110_000_000, true));
        let m = Measurement {
            whep: "http://x/whep/s".into(),
            codec: "h264".into(),
            first_frame_ms: 100.0,
            width: 640,
            height: 360,
            frames: vec![
                frame(1, 9, 10),
                frame(1, 20, 21),
                frame(3, 40, 44),
                FrameSample {
                    code: None,
                    ..frame(0, 50, 51)
                },
            ],
            clicks: vec![ClickSample {
                sent_ns: 100_000_000,
                white: true,
                seen_ns: Some(125_000_000),
            }],
            clicks_skipped: None,
            clicks_via: None,
            lost_packets: 0,
            late_packets: 0,
            repaired_packets: 0,
            nacked_packets: 0,
            client_frames_dropped: 0,
            decode_ms_mean: 1.0,
            start_ns: 0,
            connect_notes: Vec::new(),
            end_ns: 1_000_000_000,
        };
        let host = [FrameTiming {
            sequence: 1,
            grab_start_ns: 2_000_000,
            captured_ns: 2_500_000,
            encode_start_ns: 3_000_000,
            convert_us: 500,
            encoded_ns: 7_000_000,
            sent_ns: 7_500_000,
            bytes: 1000,
            keyframe: true,
        }];
        let r = analyse(&m, Some(&record), Ok(&host), BTreeMap::new());
        let g = r
            .glass_to_glass_ms
            .as_ref()
            .unwrap()
            .summary
            .clone()
            .unwrap();
        assert_eq!((g.count, g.min, g.max), (2, 10.0, 12.0));
        let c = r.codes.as_ref().unwrap();
        assert_eq!(
            (c.codes_seen, c.codes_skipped, c.unreadable_frames),
            (2, 1, 1)
        );
        let c2p = r
            .click_to_photon_ms
            .as_ref()
            .unwrap()
            .summary
            .clone()
            .unwrap();
        assert_eq!(c2p.p50, 25.0);
        assert_eq!(r.click_input_ms.as_ref().unwrap().p50, 5.0);
        assert_eq!(r.click_flip_ms.as_ref().unwrap().p50, 5.0);
        assert_eq!(r.click_photon_ms.as_ref().unwrap().p50, 15.0);
        // Only code 1 matched (no host frame for code 3): every stage of it, adding up.
        let stage = |n: &str| r.stages.iter().find(|s| s.name == n).unwrap().ms.p50;
        assert_eq!(stage("capture_wait"), 2.0);
        assert_eq!(stage("grab"), 0.5);
        assert_eq!(stage("queue"), 0.5);
        assert_eq!(stage("convert"), 0.5);
        assert_eq!(stage("encode"), 3.5);
        assert_eq!(stage("send"), 0.5);
        assert_eq!(stage("network"), 1.5);
        assert_eq!(stage("decode"), 1.0);
        let parts: f64 = r
            .stages
            .iter()
            .filter(|s| s.name != "total")
            .map(|s| s.ms.p50)
            .sum();
        assert!((parts - stage("total")).abs() < 1e-9);
        assert_eq!(
            r.stages_note.as_deref(),
            Some("1 of 2 frames matched with host timings")
        );
        assert_eq!(r.bitrate_kbps, 32.0);

        // The renderings carry the figures.
        let t = table(&r);
        assert!(t.contains("2 seen, 1 skipped, 1 unreadable frames"), "{t}");
        let page = html(&r);
        assert!(page.contains("<svg") && page.contains("glass-to-glass: CDF"));
        assert!(!page.contains("<script"));

        // Without host timings: a note instead of stages.
        let r = analyse(
            &m,
            Some(&record),
            Err("not edgedesk".into()),
            BTreeMap::new(),
        );
        assert!(r.stages.is_empty());
        assert_eq!(r.stages_note.as_deref(), Some("not edgedesk"));
        // Without a stimulus: no latency at all, said so.
        let r = analyse(&m, None, Err(String::new()), BTreeMap::new());
        assert!(r.glass_to_glass_ms.is_none() && !r.notes.is_empty());
    }
}
