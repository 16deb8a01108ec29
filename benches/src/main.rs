//! `edgedesk-bench`: the latency benchmark tool.
//!
//! * `local` runs everything on this machine in one command: a virtual display, the stimulus
//!   on it, `edgedesk up` streaming it, and the measuring client; prints a table and writes a
//!   JSON and a self-contained HTML report.
//! * `run` measures any WHEP endpoint: with `--stimulus-display` (the streamed display, on this
//!   machine) it reads frame codes for glass-to-glass and, against edgedesk, clicks for
//!   click-to-photon; without, it reports what any stream gives (first frame, fps, bitrate,
//!   loss, jitter).
//! * `stimulus` just shows the stimulus on a display (to look at, or to stream elsewhere).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use host::display::{DisplayKind, DisplayOptions, VirtualDisplay};
use host::timing::FrameTiming;

use edgedesk_bench::browser::BrowserConfig;
use edgedesk_bench::connect::Target;
use edgedesk_bench::measure::{self, Clicks, Config};
use edgedesk_bench::proc::CpuClock;
use edgedesk_bench::report::{self, Report};
use edgedesk_bench::stats::Samples;
use edgedesk_bench::stimulus::Stimulus;

#[derive(Parser)]
#[command(
    name = "edgedesk-bench",
    version,
    about = "Measure a WebRTC desktop stream: glass-to-glass, click-to-photon, fps, bitrate, loss"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Display + stimulus + edgedesk + measuring client, all on this machine.
    Local(LocalArgs),
    /// Connect to a WHEP endpoint as a headless viewer and measure what arrives.
    Run(RunArgs),
    /// Measure what a page in Chromium displays (any page showing the stimulus in a <video> or
    /// <canvas>, or this tool's own WHEP page): displayed glass-to-glass, presented fps,
    /// click-to-photon (XTest) and Chromium's receive stats.
    Browser(BrowserArgs),
    /// What sessions cost a node: start time (POST → first decoded picture), memory and CPU
    /// of an idle session, and how many idle sessions keep click-to-photon under a limit.
    Sessions(SessionsArgs),
    /// Show the stimulus on a display until interrupted.
    Stimulus {
        /// The X display, e.g. :0.
        #[arg(long, env = "DISPLAY")]
        display: String,
        #[arg(long, default_value_t = 60)]
        fps: u32,
        /// Print, on stdout, `layout X Y W H SCREEN_W SCREEN_H` (the code's rectangle) once,
        /// then `drawn CODE NS` for every frame code the X server has drawn (NS: CLOCK_MONOTONIC
        /// nanoseconds), for a measuring client that is not this program (a browser harness).
        #[arg(long)]
        print_drawn: bool,
    },
}

#[derive(Args)]
struct Output {
    /// How long to measure after the first frame, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Print the report as JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Write report.json and report.html into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long)]
    quiet: bool,
    /// Do not click (click-to-photon needs edgedesk's input channel and a control token).
    #[arg(long)]
    no_clicks: bool,
    /// Video codecs the client offers, in order (h264, vp8, vp9, av1, h265); with `local`,
    /// also edgedesk's --codecs (default h264); `run` offers every codec it decodes by
    /// default. The report names the one the server chose.
    #[arg(long, value_parser = parse_codecs)]
    codec: Option<CodecList>,
}

impl Output {
    /// The codecs to offer: `--codec`, else `default`.
    fn codecs(&self, default: impl FnOnce() -> Vec<codec::Codec>) -> Vec<codec::Codec> {
        self.codec.as_ref().map_or_else(default, |c| c.0.clone())
    }
}

/// A parsed `--codec` list.
#[derive(Clone, Debug)]
struct CodecList(Vec<codec::Codec>);

fn parse_codecs(text: &str) -> Result<CodecList, String> {
    codec::encoder::parse_codec_list(text).map(CodecList)
}

fn codec_names(codecs: &[codec::Codec]) -> String {
    let names: Vec<&str> = codecs.iter().map(|c| c.name()).collect();
    names.join(",")
}

#[derive(Args)]
struct RunArgs {
    /// WHEP endpoint URL, e.g. http://127.0.0.1:8080/whep/default
    #[arg(long)]
    whep: String,
    /// Bearer token.
    #[arg(long, env = "EDGEDESK_TOKEN")]
    token: Option<String>,
    /// The streamed X display, on this machine: the stimulus is shown on it and frame codes
    /// are read (glass-to-glass); needs the stream unscaled and the stimulus uncovered.
    #[arg(long)]
    stimulus_display: Option<String>,
    /// Stimulus frame rate.
    #[arg(long, default_value_t = 60)]
    stimulus_fps: u32,
    /// Local UDP address to gather ICE candidates on (repeatable); default every interface
    /// (0.0.0.0:0) and loopback.
    #[arg(long)]
    bind: Vec<String>,
    /// A STUN or TURN server, `URL` or `URL,USERNAME,CREDENTIAL` (repeatable); default the
    /// ones the endpoint advertises (OPTIONS, or the answer's Link headers).
    #[arg(long, value_parser = edgedesk_bench::connect::parse_ice_server)]
    ice_server: Vec<host::viewer::RTCIceServer>,
    /// How clicks reach the stimulus (click-to-photon): `channel` (edgedesk's input data
    /// channel), `xtest` (injected on the stimulus display: any server on this machine), or
    /// `auto` (the channel when the server is edgedesk, else XTest).
    #[arg(long, default_value = "auto", value_parser = ["auto", "channel", "xtest"])]
    click_via: String,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct BrowserArgs {
    /// The page to open, e.g. edgedesk's client (its Open: URL) or Selkies' page.
    #[arg(long, required_unless_present = "whep", conflicts_with = "whep")]
    url: Option<String>,
    /// A WHEP endpoint, shown on this tool's own minimal page.
    #[arg(long)]
    whep: Option<String>,
    /// Bearer token for --whep.
    #[arg(long, env = "EDGEDESK_TOKEN")]
    token: Option<String>,
    /// The streamed X display, on this machine: the stimulus is shown on it.
    #[arg(long)]
    stimulus_display: String,
    #[arg(long, default_value_t = 60)]
    stimulus_fps: u32,
    /// CSS selector of the <video> or <canvas> showing the stream; `auto`: the largest playing
    /// <video>, else the largest <canvas>.
    #[arg(long, default_value = "auto")]
    selector: String,
    /// Chromium's window, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    viewport: String,
    /// An extra Chromium flag (repeatable).
    #[arg(long)]
    chromium_arg: Vec<String>,
    /// The driver script (default: benches/browser/measure.mjs in the source tree).
    #[arg(long)]
    script: Option<PathBuf>,
    /// Seconds the page may take to show a readable frame code.
    #[arg(long, default_value_t = 30.0)]
    ready_timeout: f64,
    #[command(flatten)]
    output: Output,
}

#[derive(Args)]
struct SessionsArgs {
    /// Session size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    size: String,
    /// Sessions started (and ended) one after another for the start time.
    #[arg(long, default_value_t = 10)]
    starts: usize,
    /// Most idle sessions added in the capacity step.
    #[arg(long, default_value_t = 16)]
    max_sessions: usize,
    /// The click-to-photon p50 the capacity step holds sessions under, ms.
    #[arg(long, default_value_t = 30.0)]
    limit_ms: f64,
    /// Seconds of clicking per capacity step.
    #[arg(long, default_value_t = 6.0)]
    probe_seconds: f64,
    /// The edgedesk binary (default: next to this one).
    #[arg(long)]
    edgedesk: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct LocalArgs {
    /// Display size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1920x1080")]
    size: String,
    /// Frame rate of the stimulus and edgedesk's --fps.
    #[arg(long, default_value_t = 60)]
    fps: u32,
    /// An idle desktop: the stimulus draws once and then only answers clicks, so the report
    /// shows the idle CPU and bitrate and how fast a change on a still screen arrives.
    #[arg(long)]
    idle: bool,
    /// edgedesk's --bitrate.
    #[arg(long, default_value = "8M")]
    bitrate: String,
    /// edgedesk's --encoder.
    #[arg(long, default_value = "auto")]
    encoder: String,
    /// The edgedesk binary (default: next to this one).
    #[arg(long)]
    edgedesk: Option<PathBuf>,
    #[command(flatten)]
    output: Output,
}

fn main() {
    // A bug must still end in one line, not a backtrace: say where, and exit as a panic would.
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        eprintln!("edgedesk-bench: internal error{at}: {msg} (a bug: please report it)");
    }));
    let cli = Cli::parse();
    if let Err(e) = run_command(cli) {
        eprintln!("edgedesk-bench: {e:#}");
        std::process::exit(1);
    }
}

fn run_command(cli: Cli) -> Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Local(args) => rt.block_on(local(args)),
        Cmd::Run(args) => rt.block_on(run(args)),
        Cmd::Browser(args) => rt.block_on(browser(args)),
        Cmd::Sessions(args) => rt.block_on(sessions(args)),
        Cmd::Stimulus {
            display,
            fps,
            print_drawn,
        } => {
            let s = Stimulus::start(&display, fps)?;
            eprintln!(
                "stimulus on {display} at {fps} fps: code at {:?}, click area {:?} (Ctrl-C ends)",
                s.layout.code, s.layout.click
            );
            if !print_drawn {
                loop {
                    std::thread::sleep(Duration::from_secs(3600));
                }
            }
            print_drawn_codes(&s)
        }
    }
}

/// `stimulus --print-drawn`: the layout, then every drawn code with its time, until stdout
/// closes (the reader went away) or the process is interrupted.
fn print_drawn_codes(s: &Stimulus) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let (c, l) = (s.layout.code, s.layout);
    writeln!(
        out,
        "layout {} {} {} {} {} {}",
        c.x, c.y, c.w, c.h, l.width, l.height
    )?;
    out.flush()?;
    let mut next = 0;
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let fresh: Vec<(u32, u64)> = {
            let r = s.record.lock().unwrap();
            let v = r.order[next.min(r.order.len())..].to_vec();
            next = r.order.len();
            v
        };
        for (code, ns) in fresh {
            if writeln!(out, "drawn {code} {ns}").is_err() {
                return Ok(());
            }
        }
        if out.flush().is_err() {
            return Ok(());
        }
    }
}

async fn run(args: RunArgs) -> Result<()> {
    let stimulus = match &args.stimulus_display {
        Some(d) => Some(Stimulus::start(d, args.stimulus_fps)?),
        None => None,
    };
    let mut settings = BTreeMap::new();
    settings.insert("mode".into(), "run".into());
    settings.insert("stimulus_fps".into(), args.stimulus_fps.to_string());
    let bind = if args.bind.is_empty() {
        edgedesk_bench::connect::DEFAULT_BIND
            .map(String::from)
            .to_vec()
    } else {
        args.bind.clone()
    };
    let target = Target {
        whep: args.whep.clone(),
        token: args.token.clone(),
        codecs: args
            .output
            .codecs(edgedesk_bench::connect::decodable_codecs),
        bind,
        ice_servers: args.ice_server.clone(),
    };
    let clicks = match (&args.stimulus_display, args.output.no_clicks) {
        (None, _) | (_, true) => Clicks::Off,
        (Some(d), false) => match args.click_via.as_str() {
            "channel" => Clicks::Channel,
            "xtest" => Clicks::Xtest(d.clone()),
            // edgedesk serves its host timings next to the WHEP URL; anything else gets XTest.
            _ if fetch_host_timings(&args.whep).await.is_ok() => Clicks::Channel,
            _ => Clicks::Xtest(d.clone()),
        },
    };
    measure_and_report(
        target,
        stimulus.as_ref(),
        clicks,
        &args.output,
        settings,
        None,
    )
    .await
}

async fn browser(args: BrowserArgs) -> Result<()> {
    if args.output.codec.is_some() {
        bail!("--codec does not apply to browser mode: the page negotiates its codec");
    }
    let stimulus = Stimulus::start(&args.stimulus_display, args.stimulus_fps)?;
    let clicks = if args.output.no_clicks {
        Clicks::Off
    } else {
        Clicks::Xtest(args.stimulus_display.clone())
    };
    let run = edgedesk_bench::browser::measure(BrowserConfig {
        url: args.url.clone(),
        whep: args.whep.clone(),
        token: args.token.clone(),
        selector: args.selector.clone(),
        viewport: args.viewport.clone(),
        chromium_args: args.chromium_arg.clone(),
        seconds: args.output.seconds,
        script: args.script.clone(),
        ready_timeout: args.ready_timeout,
        layout: stimulus.layout,
        clicks,
        progress: !args.output.quiet,
    })
    .await?;
    let mut settings = BTreeMap::new();
    settings.insert("mode".into(), "browser".into());
    settings.insert("stimulus_fps".into(), args.stimulus_fps.to_string());
    settings.insert("viewport".into(), args.viewport.clone());
    settings.insert("seconds".into(), args.output.seconds.to_string());
    let mut extras = run.extras;
    if let Some(codec) = extras["chromium"]["codec"].as_str() {
        let name = codec.trim_start_matches("video/").to_ascii_lowercase();
        settings.insert("codec".into(), name);
    }
    let m = run.measurement;
    let record = stimulus.record.lock().unwrap();
    let (presented, received) = browser_latencies(&m, &run.presented_ns, &record);
    let mut report = report::analyse(
        &m,
        Some(&record),
        Err("browser mode: the server's stage timings are not read".into()),
        settings,
    );
    drop(record);
    extras["glass_to_glass_presented_ms"] = serde_json::to_value(presented.summary())?;
    extras["drawn_to_received_ms"] = serde_json::to_value(received.summary())?;
    if let Some(kbps) = extras["chromium"]["kbps"].as_f64() {
        report.bitrate_kbps = kbps;
    }
    report.browser = Some(extras);
    print_report(&report, &args.output, &m, None)
}

/// Presented − drawn and received − drawn of each code's first showing (codes drawn after the
/// run began).
fn browser_latencies(
    m: &measure::Measurement,
    presented: &[(u32, u64)],
    record: &edgedesk_bench::stimulus::Record,
) -> (Samples, Samples) {
    let after_start = |code: &u32| record.drawn.get(code).filter(|&&d| d >= m.start_ns);
    let mut seen = std::collections::HashSet::new();
    let p: Samples = presented
        .iter()
        .filter(|(code, _)| seen.insert(*code))
        .filter_map(|(code, at)| Some((*at as f64 - *after_start(code)? as f64) / 1e6))
        .collect();
    let mut seen = std::collections::HashSet::new();
    let r: Samples = m
        .frames
        .iter()
        .filter_map(|f| Some((f.code?, f.received_ns)))
        .filter(|(code, _)| seen.insert(*code))
        .filter_map(|(code, at)| Some((at as f64 - *after_start(&code)? as f64) / 1e6))
        .collect();
    (p, r)
}

async fn sessions(args: SessionsArgs) -> Result<()> {
    let (width, height) = args
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .with_context(|| format!("--size must be WIDTHxHEIGHT, got {:?}", args.size))?;
    let edgedesk = match &args.edgedesk {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("edgedesk"),
    };
    let r = edgedesk_bench::sessions::run(edgedesk_bench::sessions::Options {
        edgedesk,
        width,
        height,
        starts: args.starts,
        max_sessions: args.max_sessions,
        limit_ms: args.limit_ms,
        probe_seconds: args.probe_seconds,
        quiet: args.quiet,
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let ms = |s: &Option<edgedesk_bench::stats::Summary>| {
        s.as_ref().map_or("-".into(), |s| {
            format!(
                "p50 {:.0} ms (min {:.0}, p90 {:.0}, max {:.0}, n {})",
                s.p50, s.min, s.p90, s.max, s.count
            )
        })
    };
    println!("sessions at {}", r.size);
    println!("  POST → running:              {}", ms(&r.to_running_ms));
    println!(
        "  POST → first decoded frame:  {}",
        ms(&r.to_first_frame_ms)
    );
    for (what, c) in [
        ("idle, no viewer", r.idle_no_viewer),
        ("idle, one viewer", r.idle_one_viewer),
    ] {
        println!(
            "  {what:<17} PSS {:.0} MiB (RSS {:.0} MiB), CPU {:.1} % of a core, {} processes",
            c.pss_mib, c.rss_mib, c.cpu_percent, c.processes
        );
    }
    for s in &r.capacity {
        println!(
            "  {:>2} idle sessions + viewers: click-to-photon p50 {} ({} clicks)",
            s.idle_sessions,
            s.click_to_photon_p50_ms
                .map_or("-".into(), |v| format!("{v:.1} ms")),
            s.clicks
        );
    }
    println!(
        "  holds {} idle sessions with click-to-photon p50 under {} ms",
        r.sessions_under_limit, r.limit_ms
    );
    Ok(())
}

/// A child process killed (SIGTERM, then waited for) when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

async fn local(args: LocalArgs) -> Result<()> {
    let (w, h) = args
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .with_context(|| format!("--size must be WIDTHxHEIGHT, got {:?}", args.size))?;
    let edgedesk = match &args.edgedesk {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("edgedesk"),
    };
    let codecs = args.output.codecs(|| vec![codec::Codec::H264]);
    if !edgedesk.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p edgedesk-signaling -p edgedesk-host) or pass --edgedesk",
            edgedesk.display()
        );
    }
    let display = VirtualDisplay::start(DisplayOptions {
        width: w,
        height: h,
        kind: DisplayKind::Xvfb,
        ..DisplayOptions::default()
    })
    .context("starting Xvfb (scripts/setup.sh installs it)")?;
    let stimulus = Stimulus::start(&display.name(), if args.idle { 0 } else { args.fps })?;
    let token = format!("bench-{:016x}", rand_u64());
    let mut child = Command::new(&edgedesk)
        .args([
            "up",
            "--display",
            &display.name(),
            "--listen",
            "127.0.0.1:0",
        ])
        .args(["--token", &token, "--session", "bench"])
        .args(["--fps", &args.fps.to_string(), "--bitrate", &args.bitrate])
        .args(["--encoder", &args.encoder])
        .args(["--codecs", &codec_names(&codecs)])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", edgedesk.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let server = Server(child);
    // Read the WHEP line, then keep draining stdout until edgedesk exits (closing the pipe
    // early would make its next write fail).
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("WHEP: ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(url.to_owned());
                }
            }
        }
    });
    let whep = rx
        .await
        .context("edgedesk exited without printing its WHEP URL")?;
    let mut settings = BTreeMap::new();
    for (k, v) in [
        ("mode", "local".to_string()),
        ("size", format!("{w}x{h}")),
        ("fps", args.fps.to_string()),
        ("bitrate", args.bitrate.clone()),
        ("encoder", args.encoder.clone()),
        ("display", "Xvfb".into()),
        ("edgedesk", edgedesk.display().to_string()),
    ] {
        settings.insert(k.to_string(), v);
    }
    settings.insert("idle".into(), args.idle.to_string());
    let cpu = CpuClock::of(server.0.id());
    let target = Target {
        whep,
        token: Some(token),
        codecs,
        bind: vec!["127.0.0.1:0".into()],
        ice_servers: Vec::new(),
    };
    let result = measure_and_report(
        target,
        Some(&stimulus),
        if args.output.no_clicks {
            Clicks::Off
        } else {
            Clicks::Channel
        },
        &args.output,
        settings,
        cpu,
    )
    .await;
    drop(server);
    drop(stimulus);
    drop(display);
    result
}

fn rand_u64() -> u64 {
    let t = host::timing::mono_ns();
    t ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15
}

async fn measure_and_report(
    target: Target,
    stimulus: Option<&Stimulus>,
    clicks: Clicks,
    output: &Output,
    mut settings: BTreeMap<String, String>,
    server_cpu: Option<CpuClock>,
) -> Result<()> {
    settings.insert("seconds".into(), output.seconds.to_string());
    let whep = target.whep.clone();
    let config = Config {
        target,
        seconds: output.seconds,
        stimulus: stimulus.map(|s| (s.layout, Arc::clone(&s.record))),
        clicks: if stimulus.is_some() {
            clicks
        } else {
            Clicks::Off
        },
        progress: !output.quiet,
    };
    let m = measure::measure(config).await?;
    settings.insert("codec".into(), m.codec.clone());
    let cpu_percent = server_cpu.and_then(|c| c.percent_since());
    let host = fetch_host_timings(&whep).await;
    let record = stimulus.map(|s| s.record.lock().unwrap());
    let report = report::analyse(
        &m,
        record.as_deref(),
        host.as_deref().map_err(Clone::clone),
        settings,
    );
    drop(record);
    let mut report = report;
    report.server_cpu_percent = cpu_percent;
    print_report(&report, output, &m, host.as_deref().ok())
}

/// The table or JSON on stdout, and the files of --out.
fn print_report(
    report: &Report,
    output: &Output,
    m: &measure::Measurement,
    host: Option<&[FrameTiming]>,
) -> Result<()> {
    if output.json {
        println!("{}", serde_json::to_string_pretty(report)?);
    } else {
        print!("{}", report::table(report));
    }
    if let Some(dir) = &output.out {
        write_reports(dir, report, m, host)?;
        eprintln!("wrote {0}/report.json and {0}/report.html", dir.display());
    }
    Ok(())
}

fn write_reports(
    dir: &Path,
    report: &Report,
    m: &measure::Measurement,
    host: Option<&[FrameTiming]>,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = serde_json::json!({ "report": report, "raw": m, "host_frames": host });
    std::fs::write(
        dir.join("report.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    std::fs::write(dir.join("report.html"), report::html(report))?;
    Ok(())
}

/// The host's per-frame timings from edgedesk's `/stats` (next to the WHEP URL), for the
/// session the URL names; an explanation when there are none.
async fn fetch_host_timings(whep: &str) -> Result<Vec<FrameTiming>, String> {
    let Some((origin, session)) = whep.split_once("/whep/") else {
        return Err("the WHEP URL has no /whep/ path: not edgedesk, no host timings".into());
    };
    let (url, session) = (format!("{origin}/stats"), session.to_owned());
    tokio::task::spawn_blocking(move || {
        let body = ureq::get(&url)
            .timeout(Duration::from_secs(5))
            .call()
            .map_err(|e| format!("no host timings ({url}: {e}); not edgedesk?"))?
            .into_string()
            .map_err(|e| format!("reading {url}: {e}"))?;
        let v: serde_json::Value =
            serde_json::from_str(&body).map_err(|e| format!("{url}: not JSON: {e}"))?;
        let s = v["sessions"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["name"] == session.as_str()))
            .ok_or_else(|| format!("{url} has no session {session:?}"))?;
        serde_json::from_value(s["frames"].clone()).map_err(|e| format!("{url}: frames: {e}"))
    })
    .await
    .map_err(|e| e.to_string())?
}
