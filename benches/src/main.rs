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
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use host::display::{DisplayKind, DisplayOptions, VirtualDisplay};
use host::timing::FrameTiming;

use edgedesk_bench::browser::BrowserConfig;
use edgedesk_bench::connect::{self, Target};
use edgedesk_bench::measure::{self, Clicks};
use edgedesk_bench::proc::CpuClock;
use edgedesk_bench::report::{self, Report};
use edgedesk_bench::runner::{self, Measured};
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
    /// Several targets side by side on the same stimulus and machine, alternating runs: each
    /// figure with the median of the runs, their spread and the ratio to the first target.
    Compare(CompareArgs),
    /// What sessions cost a node: start time (POST → first decoded picture), memory and CPU
    /// of an idle session, and how many idle sessions keep click-to-photon under a limit.
    Sessions(SessionsArgs),
    /// The session's sound: latency from an app playing to the viewer decoding it, bitrate of
    /// silence and of speech-like sound, and its CPU (all in this process, over loopback).
    Audio(AudioArgs),
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
    /// The impairment router's forwarder, run by `local --impair` and the tests inside a
    /// network namespace of its own (edgedesk_bench::impair::hop).
    #[command(hide = true)]
    ImpairHop {
        #[arg(long, default_value = "clean")]
        schedule: String,
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
struct CompareArgs {
    /// Targets, the first one the baseline of the ratios: edgedesk, gstreamer, selkies,
    /// selkies:websockets, whep:URL[|COMMAND], page:URL[|COMMAND] ({port}, {display}, {fps},
    /// {kbps} are filled in; COMMAND starts the server, with DISPLAY set).
    #[arg(required = true, value_parser = edgedesk_bench::compare::targets::TargetSpec::parse)]
    targets: Vec<edgedesk_bench::compare::targets::TargetSpec>,
    /// Runs of every target, alternating.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Seconds measured per target, view and run.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Display size, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    size: String,
    /// Frame rate of the stimulus and of the servers the tool starts.
    #[arg(long, default_value_t = 60)]
    fps: u32,
    /// Bitrate of the servers the tool starts (k or M suffix).
    #[arg(long, default_value = "8M")]
    bitrate: String,
    /// Which clients look: decoder (the headless client; WHEP targets), displayed (Chromium).
    #[arg(long, default_value = "decoder,displayed", value_delimiter = ',', value_parser = ["decoder", "displayed"])]
    views: Vec<String>,
    /// Codecs the headless client offers and edgedesk may send.
    #[arg(long, default_value = "h264", value_parser = parse_codecs)]
    codec: CodecList,
    /// The edgedesk binary (default: next to this one).
    #[arg(long)]
    edgedesk: Option<PathBuf>,
    /// Selkies' command (PyPI `selkies` in a venv).
    #[arg(long, env = "SELKIES_BIN", default_value = "selkies")]
    selkies_bin: PathBuf,
    /// Chromium's window for the displayed view, WIDTHxHEIGHT.
    #[arg(long, default_value = "1280x720")]
    viewport: String,
    /// Flag a measurement during which other processes used more than this % of a core.
    #[arg(long, default_value_t = 25.0)]
    disturbed_above: f64,
    /// Print the comparison as JSON.
    #[arg(long)]
    json: bool,
    /// Write compare.json and compare.html into this directory.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    quiet: bool,
}

#[derive(Args)]
struct AudioArgs {
    /// Tone bursts played for the latency.
    #[arg(long, default_value_t = 20)]
    bursts: usize,
    /// Flashes with a beep, for the A/V offset.
    #[arg(long, default_value_t = 10)]
    flashes: usize,
    /// Seconds of silence, and of speech-like sound, for bitrate and CPU.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Opus frame length, ms (10 or 20).
    #[arg(long, default_value_t = 10)]
    frame_ms: u32,
    /// Opus target bitrate, bit/s.
    #[arg(long, default_value_t = 96_000)]
    bitrate: u32,
    /// Opus application: audio, voip or lowdelay.
    #[arg(long, default_value = "audio")]
    application: String,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
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
    /// Busy content: a band of random blocks redrawn every frame (a video playing), so the
    /// stream takes all the bitrate it is given (to see congestion control at work).
    #[arg(long, conflicts_with = "idle")]
    busy: bool,
    /// edgedesk's --bitrate.
    #[arg(long, default_value = "8M")]
    bitrate: String,
    /// edgedesk's --encoder.
    #[arg(long, default_value = "auto")]
    encoder: String,
    /// The edgedesk binary (default: next to this one).
    #[arg(long)]
    edgedesk: Option<PathBuf>,
    /// Put edgedesk behind an impaired network (root; network namespaces and a TUN hop): a
    /// preset (clean, loss5, cap2m, step, wifi, cellular), `key=value,...` (loss, up-loss,
    /// delay, jitter, rate, up-rate, queue) or a schedule `PROFILE;PROFILE@SECONDS;...`.
    #[arg(long, value_name = "PROFILE")]
    impair: Option<String>,
    /// Measure edgedesk's own page in headless Chromium (what a user sees) instead of the
    /// headless client; clicks through XTest.
    #[arg(long)]
    browser: bool,
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
        Cmd::Compare(args) => rt.block_on(compare(args)),
        Cmd::Sessions(args) => rt.block_on(sessions(args)),
        Cmd::Audio(args) => rt.block_on(audio(args)),
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
        Cmd::ImpairHop { schedule } => {
            let schedule = edgedesk_bench::impair::Schedule::parse(&schedule)
                .map_err(|e| anyhow::anyhow!("--schedule: {e}"))?;
            edgedesk_bench::impair::hop::run(schedule).map_err(|e| anyhow::anyhow!("{e}"))
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
            _ if runner::fetch_host_timings(&args.whep).await.is_ok() => Clicks::Channel,
            _ => Clicks::Xtest(d.clone()),
        },
    };
    let measured = runner::measure_whep(
        target,
        stimulus.as_ref(),
        clicks,
        args.output.seconds,
        !args.output.quiet,
        settings,
        None,
    )
    .await?;
    print_report(&measured, &args.output)
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
    let mut settings = BTreeMap::new();
    settings.insert("stimulus_fps".into(), args.stimulus_fps.to_string());
    let measured = runner::measure_browser(
        BrowserConfig {
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
        },
        &stimulus,
        settings,
        None,
    )
    .await?;
    print_report(&measured, &args.output)
}

/// `WIDTHxHEIGHT`, by edgedesk's own rules (the sizes go to the servers the tool starts).
fn parse_size(text: &str) -> Result<(u32, u32)> {
    signaling::config::parse_size(text).map_err(|e| anyhow::anyhow!("--size: {e}"))
}

/// `8M`, `8000k`, `8000000` → kbit/s, by edgedesk's own rules.
fn kbps(text: &str) -> Result<u32> {
    let bps =
        signaling::config::parse_bitrate(text).map_err(|e| anyhow::anyhow!("--bitrate: {e}"))?;
    Ok((bps / 1000) as u32)
}

async fn compare(args: CompareArgs) -> Result<()> {
    use edgedesk_bench::compare::{self, figures::View};
    let (width, height) = parse_size(&args.size)?;
    let edgedesk = match &args.edgedesk {
        Some(p) => p.clone(),
        None => std::env::current_exe()?.with_file_name("edgedesk"),
    };
    let views = args
        .views
        .iter()
        .map(|v| match v.as_str() {
            "decoder" => View::Decoder,
            _ => View::Displayed,
        })
        .collect();
    let c = compare::run(compare::Options {
        targets: args.targets.clone(),
        views,
        runs: args.runs.max(1),
        seconds: args.seconds,
        width,
        height,
        fps: args.fps,
        kbps: kbps(&args.bitrate)?,
        codecs: args.codec.0.clone(),
        edgedesk,
        selkies: args.selkies_bin.clone(),
        viewport: args.viewport.clone(),
        disturbed_above: args.disturbed_above,
        quiet: args.quiet,
    })
    .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&c)?);
    } else {
        print!("{}", compare::text(&c));
    }
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(dir.join("compare.json"), serde_json::to_string_pretty(&c)?)?;
        std::fs::write(dir.join("compare.html"), compare::html::page(&c))?;
        eprintln!("wrote {0}/compare.json and {0}/compare.html", dir.display());
    }
    Ok(())
}

async fn sessions(args: SessionsArgs) -> Result<()> {
    let (width, height) = parse_size(&args.size)?;
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

async fn audio(args: AudioArgs) -> Result<()> {
    let settings = host::audio::AudioSettings {
        frame_ms: args.frame_ms,
        bitrate_bps: args.bitrate,
        mode: args
            .application
            .parse()
            .map_err(|e: String| anyhow!("--application: {e}"))?,
    };
    let r =
        edgedesk_bench::audio::measure(args.bursts, args.flashes, args.seconds, settings).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    println!(
        "audio: Opus {} ms frames, {} kbit/s target",
        r.frame_ms,
        r.bitrate_bps / 1000
    );
    println!(
        "  latency app → decoded   p50 {:.1} ms   p99 {:.1} ms   ({} bursts)",
        r.latency_p50_ms,
        r.latency_p99_ms,
        r.latencies_ms.len()
    );
    println!(
        "  silence                 {:.2} kbit/s, {:.1} packets/s",
        r.silence_kbps, r.silence_packets_per_s
    );
    println!(
        "  speech-like             {:.1} kbit/s, {:.1} packets/s",
        r.speech_kbps, r.speech_packets_per_s
    );
    println!(
        "  CPU                     {:.1} % of a core (encoder thread {:.1}, parec {:.1}, pulseaudio {:.1})",
        r.cpu_percent, r.cpu_encoder_percent, r.cpu_recorder_percent, r.cpu_server_percent
    );
    match r.av_offset_p50_ms {
        Some(p50) => {
            println!(
            "  A/V offset (sound − picture, sender clock)  p50 {p50:+.1} ms over {} flashes: {:?}",
            r.av_offsets_ms.len(),
            r.av_offsets_ms.iter().map(|v| (v * 10.0).round() / 10.0).collect::<Vec<_>>()
        )
        }
        None => println!("  A/V offset: no flash and beep were both seen"),
    }
    Ok(())
}

async fn local(args: LocalArgs) -> Result<()> {
    let (w, h) = parse_size(&args.size)?;
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
    let stimulus = Stimulus::start_with(
        &display.name(),
        if args.idle { 0 } else { args.fps },
        args.busy,
    )?;
    let extra: Vec<String> = [
        "--fps",
        &args.fps.to_string(),
        "--bitrate",
        &args.bitrate,
        "--encoder",
        &args.encoder,
        "--codecs",
        &codec_names(&codecs),
    ]
    .map(String::from)
    .to_vec();
    if let Some(spec) = &args.impair {
        edgedesk_bench::impair::Schedule::parse(spec).map_err(|e| anyhow!("--impair: {e}"))?;
        if let Some(why) = edgedesk_bench::impair::topology::unavailable() {
            bail!("--impair: {why}");
        }
    }
    let hop = std::env::current_exe()?;
    let started = runner::start_edgedesk_behind(
        &edgedesk,
        &display.name(),
        &extra,
        args.impair.as_deref().map(|p| (hop.as_path(), p)),
    )
    .await?;
    let mut settings = BTreeMap::new();
    for (k, v) in [
        ("mode", "local".to_string()),
        ("size", format!("{w}x{h}")),
        ("fps", args.fps.to_string()),
        ("bitrate", args.bitrate.clone()),
        ("encoder", args.encoder.clone()),
        ("display", "Xvfb".into()),
        ("edgedesk", edgedesk.display().to_string()),
        (
            "impair",
            args.impair.clone().unwrap_or_else(|| "none".into()),
        ),
    ] {
        settings.insert(k.to_string(), v);
    }
    settings.insert("idle".into(), args.idle.to_string());
    settings.insert("busy".into(), args.busy.to_string());
    let cpu = CpuClock::of(started.server.id());
    let target = Target {
        whep: started.whep.clone(),
        token: Some(started.token.clone()),
        codecs,
        // Behind the hop the server is reached through this side's veth.
        bind: if args.impair.is_some() {
            connect::DEFAULT_BIND
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            vec!["127.0.0.1:0".into()]
        },
        ice_servers: Vec::new(),
    };
    if args.browser {
        if args.output.codec.is_some() {
            bail!("--codec does not apply with --browser: the page negotiates its codec");
        }
        let clicks = if args.output.no_clicks {
            Clicks::Off
        } else {
            Clicks::Xtest(display.name())
        };
        let viewport = format!("{w}x{h}");
        let result = runner::measure_browser(
            BrowserConfig {
                url: Some(started.open.clone()),
                whep: None,
                token: None,
                selector: "auto".into(),
                viewport,
                chromium_args: Vec::new(),
                seconds: args.output.seconds,
                script: None,
                ready_timeout: 20.0,
                layout: stimulus.layout,
                clicks,
                progress: !args.output.quiet,
            },
            &stimulus,
            settings,
            cpu,
        )
        .await;
        drop(started);
        drop(stimulus);
        drop(display);
        return print_report(&result?, &args.output);
    }
    let clicks = if args.output.no_clicks {
        Clicks::Off
    } else {
        Clicks::Channel
    };
    let result = runner::measure_whep(
        target,
        Some(&stimulus),
        clicks,
        args.output.seconds,
        !args.output.quiet,
        settings,
        cpu,
    )
    .await;
    drop(started);
    drop(stimulus);
    drop(display);
    print_report(&result?, &args.output)
}

/// The table or JSON on stdout, and the files of --out.
fn print_report(measured: &Measured, output: &Output) -> Result<()> {
    let (report, m, host) = (&measured.report, &measured.raw, measured.host.as_deref());
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
