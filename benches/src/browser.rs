//! Browser mode: what a person looking at Chromium sees. `benches/browser/measure.mjs` drives
//! Debian's Chromium through playwright-core on any page (or the tool's own minimal WHEP page)
//! and streams, for every frame the page shows, its frame code, the click area's colour and the
//! times Chromium gives (`requestVideoFrameCallback`: the rendering step that showed it, its
//! presentation and receive times), already on CLOCK_MONOTONIC. This side draws the stimulus,
//! clicks with XTest, and turns the lines into a [`Measurement`] whose "decoded" time is the
//! *displayed* time, so the report's glass-to-glass is the displayed one.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use std::io::{BufRead, BufReader};

use crate::measure::{colour_of_luma, Clicker, Clicks, FrameSample, Measurement};
use crate::runner::Server;
use crate::stimulus::Layout;

/// What to open and how.
pub struct BrowserConfig {
    /// A page URL, or (`whep`) a WHEP endpoint for the tool's own page.
    pub url: Option<String>,
    pub whep: Option<String>,
    pub token: Option<String>,
    /// `auto` or a CSS selector of the `<video>`/`<canvas>` showing the stream.
    pub selector: String,
    pub viewport: String,
    pub chromium_args: Vec<String>,
    pub seconds: f64,
    /// The driver script (default: the source tree's `benches/browser/measure.mjs`).
    pub script: Option<PathBuf>,
    /// Seconds the page may take to show a readable frame code.
    pub ready_timeout: f64,
    pub layout: Layout,
    pub clicks: Clicks,
    pub progress: bool,
}

/// A browser run: the samples, and Chromium's own figures.
pub struct BrowserRun {
    pub measurement: Measurement,
    /// The driver's `end` line: Chromium's receive stats, the read path, the clock mapping;
    /// plus `element` and `client_cpu_percent` (node and Chromium together).
    pub extras: serde_json::Value,
    /// Frame shown (rendering step) − frame presented to the compositor, per frame (ms).
    pub presented_ns: Vec<(u32, u64)>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Line {
    Ready {
        element: String,
    },
    Frame {
        shown_ns: u64,
        presented_ns: Option<u64>,
        received_ns: Option<u64>,
        code: Option<u32>,
        patch: Option<f64>,
    },
    End(serde_json::Value),
}

/// The driver script shipped in the source tree.
pub fn default_script() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/browser/measure.mjs"))
}

pub async fn measure(c: BrowserConfig) -> Result<BrowserRun> {
    let script = c.script.clone().unwrap_or_else(default_script);
    if !script.exists() {
        bail!(
            "{} not found: browser mode runs the edgedesk source tree's benches/browser/measure.mjs \
             (with client-web's node packages, which scripts/setup.sh installs); pass --script",
            script.display()
        );
    }
    let l = c.layout;
    let (px, py) = l.colour_point();
    let mut cmd = std::process::Command::new("node");
    cmd.arg(&script)
        .args([
            "--rect",
            &format!("{},{},{},{}", l.code.x, l.code.y, l.code.w, l.code.h),
        ])
        .args([
            "--patch",
            &format!("{},{},16,16", px.saturating_sub(8), py.saturating_sub(8)),
        ])
        .args(["--seconds", &c.seconds.to_string()])
        .args(["--selector", &c.selector, "--viewport", &c.viewport])
        .args([
            "--ready-timeout-ms",
            &((c.ready_timeout * 1e3) as u64).to_string(),
        ]);
    match (&c.url, &c.whep) {
        (Some(u), _) => cmd.args(["--url", u]),
        (None, Some(w)) => cmd.args(["--whep", w]),
        (None, None) => bail!("give --url or --whep"),
    };
    if let Some(t) = &c.token {
        cmd.args(["--token", t]);
    }
    for a in &c.chromium_args {
        cmd.args(["--chromium-arg", a]);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let started = Instant::now();
    // Tied to this process (and its group ended on drop): a killed bench leaves no node, and
    // Chromium ends with node (playwright's pipe closes).
    let mut child = Server::spawn(&mut cmd)
        .context("starting node (browser mode needs node 20 and client-web's packages)")?;
    let pid = Some(child.id());
    let (line_tx, mut stdout) = tokio::sync::mpsc::unbounded_channel();
    let out = child.0.stdout.take().expect("piped");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if line_tx.send(line).is_err() {
                break;
            }
        }
    });
    let err = child.0.stderr.take().expect("piped");
    let err_task = std::thread::spawn(move || {
        BufReader::new(err)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let mut m = Measurement::empty(c.url.clone().or(c.whep.clone()).unwrap_or_default());
    m.codec = "chosen by the page".into();
    let mut cpu = None;
    let mut element = String::new();
    let mut end = serde_json::Value::Null;
    let mut presented = Vec::new();
    let mut clicker = Clicker::default();
    let mut last_progress = Instant::now();
    // Ready comes within the driver's own 30 s limit, and the end within the run.
    let limit = Duration::from_secs_f64(c.seconds + c.ready_timeout + 30.0);
    while let Ok(Some(line)) = tokio::time::timeout(limit, stdout.recv()).await {
        let Ok(parsed) = serde_json::from_str::<Line>(&line) else {
            continue;
        };
        match parsed {
            Line::Ready { element: e } => {
                element = e;
                m.first_frame_ms = started.elapsed().as_secs_f64() * 1e3;
                cpu = pid.and_then(crate::proc::CpuClock::of);
            }
            Line::Frame {
                shown_ns,
                presented_ns,
                received_ns,
                code,
                patch,
            } => {
                if m.start_ns == 0 {
                    m.start_ns = shown_ns;
                    (m.width, m.height) = (l.width, l.height);
                }
                let sample = FrameSample {
                    received_ns: received_ns.unwrap_or(shown_ns),
                    decoded_ns: shown_ns,
                    bytes: 0,
                    rtp_timestamp: 0,
                    code,
                    click_white: patch.and_then(colour_of_luma),
                };
                if let (Some(p), Some(code)) = (presented_ns, code) {
                    presented.push((code, p));
                }
                m.frames.push(sample);
                if c.clicks != Clicks::Off {
                    clicker.frame(None, &c.clicks, &l, &sample, &mut m).await;
                }
                if c.progress && last_progress.elapsed() >= Duration::from_secs(1) {
                    last_progress = Instant::now();
                    eprintln!("{:5} frames shown", m.frames.len());
                }
            }
            Line::End(v) => {
                end = v;
                break;
            }
        }
    }
    let client_cpu = cpu.and_then(|c| c.percent_since());
    // The driver closes Chromium and exits after its last line; give it the time, then end it.
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        match child.0.try_wait() {
            Ok(None) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => break other,
        }
    };
    drop(child);
    let errors = err_task.join().unwrap_or_default();
    if end.is_null() {
        let why = errors
            .iter()
            .rev()
            .find_map(|l| l.strip_prefix("browser: "))
            .map(str::to_owned)
            .or_else(|| errors.last().cloned())
            .unwrap_or_else(|| format!("the browser driver ended ({status:?}) without a result"));
        bail!("browser: {why}");
    }
    m.end_ns = m.frames.last().map_or(m.start_ns, |f| f.decoded_ns);
    clicker.finish(&mut m);
    crate::measure::note_clicks(&mut m, &c.clicks, true);
    let mut extras = end;
    extras["element"] = element.into();
    extras["client_cpu_percent"] = client_cpu.into();
    Ok(BrowserRun {
        measurement: m,
        extras,
        presented_ns: presented,
    })
}
