//! `edgedesk-bench compare`: several targets measured in turn on the same stimulus, display
//! and machine, alternating (run 1: A, B, C; run 2: A, B, C; …) so that slow changes of the
//! machine spread over all of them alike. Each target is started fresh for every run and
//! measured decoder-side (the headless client, WHEP targets) and as displayed (Chromium); each
//! figure is reported with the median of the runs, their spread and the ratio to the first
//! target. What else ran on the machine during each measurement is recorded, and a
//! measurement with more than `disturbed_above` % of a core of other load is flagged.

pub mod figures;
pub mod html;
pub mod targets;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use codec::Codec;
use host::display::{DisplayKind, DisplayOptions, VirtualDisplay};
use serde::Serialize;

use crate::browser::BrowserConfig;
use crate::connect::{Target, DEFAULT_BIND};
use crate::measure::Clicks;
use crate::proc::{CpuClock, LoadClock};
use crate::report::{self, Report};
use crate::runner::{self, Measured};
use crate::stats::Samples;
use crate::stimulus::Stimulus;
use figures::{RunFigures, View};
use targets::{Running, Setup, TargetSpec};

/// What to compare, how.
pub struct Options {
    pub targets: Vec<TargetSpec>,
    pub views: Vec<View>,
    pub runs: usize,
    pub seconds: f64,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub kbps: u32,
    /// What the headless client offers (and edgedesk may send).
    pub codecs: Vec<Codec>,
    pub edgedesk: PathBuf,
    pub selkies: PathBuf,
    pub viewport: String,
    /// Other load (% of one core) above which a measurement is flagged.
    pub disturbed_above: f64,
    pub quiet: bool,
}

/// The outcome: every measurement's figures, the aggregated figures, and the pooled samples
/// for the page.
#[derive(Serialize)]
pub struct Comparison {
    pub settings: BTreeMap<String, String>,
    pub targets: Vec<String>,
    pub measurements: Vec<RunFigures>,
    pub figures: Vec<figures::Figure>,
    /// Measurements with other load above the threshold, and measurements that failed.
    pub notes: Vec<String>,
    /// Glass-to-glass of every frame of every run, per target and view (for the CDFs).
    #[serde(skip)]
    pub pooled: BTreeMap<(usize, View), Samples>,
    /// The first run's report per target and view (fps over time, stage breakdown).
    #[serde(skip)]
    pub first_reports: BTreeMap<(usize, View), Report>,
}

fn say(o: &Options, line: String) {
    if !o.quiet {
        eprintln!("{line}");
    }
}

pub async fn run(o: Options) -> Result<Comparison> {
    if o.targets.is_empty() {
        bail!("name at least one target");
    }
    let labels: Vec<String> = o
        .targets
        .iter()
        .enumerate()
        .map(|(i, t)| t.label(i))
        .collect();
    let display = VirtualDisplay::start(DisplayOptions {
        width: o.width,
        height: o.height,
        kind: DisplayKind::Xvfb,
        ..DisplayOptions::default()
    })
    .context("starting Xvfb (scripts/setup.sh installs it)")?;
    let stimulus = Stimulus::start(&display.name(), o.fps)?;
    let setup = Setup {
        display: display.name(),
        fps: o.fps,
        kbps: o.kbps,
        edgedesk: o.edgedesk.clone(),
        selkies: o.selkies.clone(),
        codecs: o
            .codecs
            .iter()
            .map(|c| c.name())
            .collect::<Vec<_>>()
            .join(","),
    };
    let mut c = Comparison {
        settings: BTreeMap::new(),
        targets: labels.clone(),
        measurements: Vec::new(),
        figures: Vec::new(),
        notes: Vec::new(),
        pooled: BTreeMap::new(),
        first_reports: BTreeMap::new(),
    };
    for (k, v) in [
        ("size", format!("{}x{}", o.width, o.height)),
        ("fps", o.fps.to_string()),
        ("bitrate_kbps", o.kbps.to_string()),
        ("seconds", o.seconds.to_string()),
        ("runs", o.runs.to_string()),
        ("codecs", setup.codecs.clone()),
        ("viewport", o.viewport.clone()),
        ("cores", num_cpus().to_string()),
    ] {
        c.settings.insert(k.into(), v);
    }
    for (i, (t, l)) in o.targets.iter().zip(&labels).enumerate() {
        c.settings
            .insert(format!("target {}", i + 1), format!("{l}: {t:?}"));
    }
    for run in 0..o.runs {
        for (t, spec) in o.targets.iter().enumerate() {
            let label = &labels[t];
            let mut running = match targets::start(spec, &setup).await {
                Ok(r) => r,
                Err(e) if run == 0 => return Err(e.context(format!("starting {label}"))),
                Err(e) => {
                    c.notes
                        .push(format!("run {}: {label} did not start: {e:#}", run + 1));
                    continue;
                }
            };
            // Let the server settle (encoder warm-up, first keyframe) before measuring.
            tokio::time::sleep(Duration::from_millis(500)).await;
            for &view in &o.views {
                if view == View::Decoder && !spec.has_whep() {
                    continue;
                }
                let mut load = LoadClock::start();
                let mut result = measure_one(&o, spec, &running, view, &stimulus).await;
                if let Err(e) = &result {
                    // One more try with the target started afresh (a server may fail a
                    // connection now and then); said in the notes.
                    c.notes.push(format!(
                        "run {}: {label} {view:?} failed once ({e:#}); restarted and measured again",
                        run + 1
                    ));
                    drop(running);
                    running = targets::start(spec, &setup).await?;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    load = LoadClock::start();
                    result = measure_one(&o, spec, &running, view, &stimulus).await;
                }
                let other = load.and_then(|l| l.other_percent());
                let m = match result {
                    Ok(m) => m,
                    Err(e) => {
                        let line = format!("run {}: {label} {view:?}: {e:#}", run + 1);
                        say(&o, line.clone());
                        c.notes.push(line);
                        continue;
                    }
                };
                let figures = figures::figures_of(&m.report);
                say(
                    &o,
                    format!(
                        "run {}/{} {label:<10} {:<9} glass-to-glass p50 {} ms, fps {}, other load {} %",
                        run + 1,
                        o.runs,
                        format!("{view:?}").to_lowercase(),
                        figures.get("g2g_p50").map_or("-".into(), |v| format!("{v:.1}")),
                        figures.get("fps").map_or("-".into(), |v| format!("{v:.1}")),
                        other.map_or("-".into(), |v| format!("{v:.0}")),
                    ),
                );
                if other.is_some_and(|v| v > o.disturbed_above) {
                    c.notes.push(format!(
                        "run {}: {label} {view:?} was disturbed: other processes used {:.0} % \
                         of a core (threshold {:.0} %)",
                        run + 1,
                        other.unwrap_or(0.0),
                        o.disturbed_above
                    ));
                }
                let record = stimulus.record.lock().unwrap();
                let g2g = report::glass_to_glass_samples(&m.raw, &record);
                drop(record);
                let pooled = c.pooled.entry((t, view)).or_default();
                for v in g2g.values() {
                    pooled.push(*v);
                }
                c.measurements.push(RunFigures {
                    target: t,
                    view,
                    run,
                    figures,
                    other_load_percent: other,
                });
                c.first_reports.entry((t, view)).or_insert(m.report);
            }
            drop(running);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    c.figures = figures::aggregate(&labels, &c.measurements);
    drop(stimulus);
    drop(display);
    Ok(c)
}

async fn measure_one(
    o: &Options,
    spec: &TargetSpec,
    running: &Running,
    view: View,
    stimulus: &Stimulus,
) -> Result<Measured> {
    let cpu = running.server.as_ref().and_then(|s| CpuClock::of(s.id()));
    let display = stimulus.display.clone();
    match view {
        View::Decoder => {
            let whep = running.whep.clone().context("the target has no WHEP URL")?;
            let target = Target {
                whep,
                token: running.token.clone(),
                codecs: o.codecs.clone(),
                bind: DEFAULT_BIND.map(String::from).to_vec(),
                ice_servers: Vec::new(),
            };
            let clicks = if *spec == TargetSpec::Edgedesk {
                Clicks::Channel
            } else {
                Clicks::Xtest(display)
            };
            runner::measure_whep(
                target,
                Some(stimulus),
                clicks,
                o.seconds,
                false,
                BTreeMap::new(),
                cpu,
            )
            .await
        }
        View::Displayed => {
            let (url, whep) = match &running.page {
                Some(p) => (Some(p.clone()), None),
                None => (None, running.whep.clone()),
            };
            let config = BrowserConfig {
                url,
                whep,
                token: running.token.clone(),
                selector: "auto".into(),
                viewport: o.viewport.clone(),
                chromium_args: Vec::new(),
                seconds: o.seconds,
                script: None,
                ready_timeout: 30.0,
                layout: stimulus.layout,
                clicks: Clicks::Xtest(display),
                progress: false,
            };
            runner::measure_browser(config, stimulus, BTreeMap::new(), cpu).await
        }
    }
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The text of a comparison: the figures table, the verdicts, the notes.
pub fn text(c: &Comparison) -> String {
    let mut out = format!(
        "compare {} at {} {} fps, {} kbit/s: {} run(s) of {} s each, alternating; median \
         (lowest–highest run) ×ratio to {}",
        c.targets.join(" vs "),
        c.settings["size"],
        c.settings["fps"],
        c.settings["bitrate_kbps"],
        c.settings["runs"],
        c.settings["seconds"],
        c.targets[0]
    );
    out.push_str(&figures::table(&c.targets, &c.figures));
    for n in &c.notes {
        out.push_str(&format!("note: {n}\n"));
    }
    out
}
