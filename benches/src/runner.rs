//! What the subcommands share: starting edgedesk on a display, measuring one target with the
//! headless client or in Chromium, and edgedesk's host timings. Each measurement comes back as
//! a [`Measured`]: the report and the raw samples behind it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use host::timing::FrameTiming;

use crate::browser::BrowserConfig;
use crate::connect::Target;
use crate::measure::{self, Clicks, Config, Measurement};
use crate::proc::CpuClock;
use crate::report::{self, Report};
use crate::stats::Samples;
use crate::stimulus::{Record, Stimulus};

/// One target measured once.
pub struct Measured {
    pub report: Report,
    pub raw: Measurement,
    /// edgedesk's per-frame host timings, when the target is edgedesk.
    pub host: Option<Vec<FrameTiming>>,
}

/// A server process group, ended (SIGTERM to the group, then SIGKILL after 5 s) when dropped.
pub struct Server(pub Child);

impl Server {
    /// Spawns `cmd` as the leader of a new process group, to get SIGTERM when this process
    /// dies however it dies (`PR_SET_PDEATHSIG`): a killed bench leaves no server behind.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Server> {
        std::os::unix::process::CommandExt::process_group(cmd, 0);
        control::process::spawn_tied(cmd).map(Server)
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pgid = self.0.id() as i32;
        // SAFETY: signals to our own child's process group.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.0.try_wait().ok().flatten().is_none() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; the group may be gone already.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

/// The edgedesk process: on this machine's network, or behind the impairment hop.
pub enum ServerProcess {
    Local(Server),
    Impaired(Box<crate::impair::topology::Impaired>),
}

impl ServerProcess {
    pub fn child(&mut self) -> &mut Child {
        match self {
            ServerProcess::Local(s) => &mut s.0,
            ServerProcess::Impaired(i) => &mut i.server,
        }
    }

    pub fn id(&self) -> u32 {
        match self {
            ServerProcess::Local(s) => s.id(),
            ServerProcess::Impaired(i) => i.server.id(),
        }
    }
}

/// `edgedesk up` streaming a display, and what it printed.
pub struct Edgedesk {
    pub server: ServerProcess,
    pub whep: String,
    /// The page URL (`Open:`), token included.
    pub open: String,
    pub token: String,
}

/// Starts `edgedesk up --display DISPLAY --listen 127.0.0.1:0` with `extra` arguments and a
/// fresh control token; waits for its URLs.
pub async fn start_edgedesk(bin: &Path, display: &str, extra: &[String]) -> Result<Edgedesk> {
    start_edgedesk_behind(bin, display, extra, None).await
}

/// [`start_edgedesk`], or with `impair = (hop binary, schedule)` behind the impairment hop
/// (crate::impair): in a network namespace of its own, listening on its address there.
pub async fn start_edgedesk_behind(
    bin: &Path,
    display: &str,
    extra: &[String],
    impair: Option<(&Path, &str)>,
) -> Result<Edgedesk> {
    if !bin.exists() {
        anyhow::bail!(
            "{} not found: build it (cargo build --release -p edgedesk-signaling -p edgedesk-host) or pass --edgedesk",
            bin.display()
        );
    }
    let token = format!("bench-{:016x}", rand_u64());
    let (server, stdout) = match impair {
        None => {
            let mut server = Server::spawn(
                Command::new(bin)
                    .args(["up", "--display", display, "--listen", "127.0.0.1:0"])
                    .args(["--token", &token, "--session", "bench"])
                    .args(extra)
                    .stdin(Stdio::null())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null()),
            )
            .with_context(|| format!("starting {}", bin.display()))?;
            let stdout = server.0.stdout.take().expect("piped");
            (ServerProcess::Local(server), stdout)
        }
        Some((hop, schedule)) => {
            let mut args: Vec<String> = ["up", "--display", display, "--listen", "{inside}:0"]
                .into_iter()
                .chain(["--token", &token, "--session", "bench"])
                .map(String::from)
                .collect();
            args.extend(extra.iter().cloned());
            let mut i = crate::impair::topology::Impaired::spawn(hop, schedule, bin, &args, &[])
                .map_err(|e| anyhow::anyhow!("an impaired network: {e}"))?;
            let stdout = i.server.stdout.take().expect("piped");
            (ServerProcess::Impaired(Box::new(i)), stdout)
        }
    };
    // Read the URLs, then keep draining stdout until edgedesk exits (closing the pipe early
    // would make its next write fail).
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let (mut whep, mut open, mut tx) = (None, None, Some(tx));
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("WHEP: ") {
                whep = Some(url.to_owned());
            } else if let Some(url) = line.strip_prefix("Open: ") {
                open = Some(url.to_owned());
            }
            if let (Some(w), Some(o)) = (&whep, &open) {
                if let Some(tx) = tx.take() {
                    let _ = tx.send((w.clone(), o.clone()));
                }
            }
        }
    });
    let (whep, open) = rx
        .await
        .context("edgedesk exited without printing its WHEP and Open URLs")?;
    Ok(Edgedesk {
        server,
        whep,
        open,
        token,
    })
}

/// Measures a WHEP target with the headless client for `seconds`.
pub async fn measure_whep(
    target: Target,
    stimulus: Option<&Stimulus>,
    clicks: Clicks,
    seconds: f64,
    progress: bool,
    mut settings: BTreeMap<String, String>,
    server_cpu: Option<CpuClock>,
) -> Result<Measured> {
    settings.insert("seconds".into(), seconds.to_string());
    let whep = target.whep.clone();
    let config = Config {
        target,
        seconds,
        stimulus: stimulus.map(|s| (s.layout, Arc::clone(&s.record))),
        clicks: if stimulus.is_some() {
            clicks
        } else {
            Clicks::Off
        },
        progress,
    };
    let m = measure::measure(config).await?;
    settings.insert("codec".into(), m.codec.clone());
    let cpu_percent = server_cpu.and_then(|c| c.percent_since());
    let host = fetch_host_timings(&whep).await;
    let record = stimulus.map(|s| s.record.lock().unwrap());
    let mut report = report::analyse(
        &m,
        record.as_deref(),
        host.as_deref().map_err(Clone::clone),
        settings,
    );
    drop(record);
    report.server_cpu_percent = cpu_percent;
    Ok(Measured {
        report,
        raw: m,
        host: host.ok(),
    })
}

/// Measures a page (or the tool's WHEP page) in Chromium.
pub async fn measure_browser(
    config: BrowserConfig,
    stimulus: &Stimulus,
    mut settings: BTreeMap<String, String>,
    server_cpu: Option<CpuClock>,
) -> Result<Measured> {
    settings.insert("mode".into(), "browser".into());
    settings.insert("viewport".into(), config.viewport.clone());
    settings.insert("seconds".into(), config.seconds.to_string());
    let run = crate::browser::measure(config).await?;
    let mut extras = run.extras;
    if let Some(codec) = extras["chromium"]["codec"].as_str() {
        let name = codec.trim_start_matches("video/").to_ascii_lowercase();
        settings.insert("codec".into(), name);
    }
    let cpu_percent = server_cpu.and_then(|c| c.percent_since());
    let m = run.measurement;
    let record = stimulus.record.lock().unwrap();
    let presented = presented_latencies(&m, &run.presented_ns, &record);
    let mut report = report::analyse(
        &m,
        Some(&record),
        Err("browser mode: the server's stage timings are not read".into()),
        settings,
    );
    drop(record);
    extras["glass_to_glass_presented_ms"] = serde_json::to_value(presented.summary())?;
    if let Some(kbps) = extras["chromium"]["kbps"].as_f64() {
        report.bitrate_kbps = kbps;
    }
    report.browser = Some(extras);
    report.server_cpu_percent = cpu_percent;
    Ok(Measured {
        report,
        raw: m,
        host: None,
    })
}

/// Presented − drawn of each code's first presentation (codes drawn after the run began).
fn presented_latencies(m: &Measurement, presented: &[(u32, u64)], record: &Record) -> Samples {
    let mut seen = std::collections::HashSet::new();
    presented
        .iter()
        .filter(|(code, _)| seen.insert(*code))
        .filter_map(|(code, at)| {
            let drawn = *record.drawn.get(code).filter(|&&d| d >= m.start_ns)?;
            Some((*at as f64 - drawn as f64) / 1e6)
        })
        .collect()
}

/// The host's per-frame timings from edgedesk's `/stats` (next to the WHEP URL), for the
/// session the URL names; an explanation when there are none.
pub async fn fetch_host_timings(whep: &str) -> Result<Vec<FrameTiming>, String> {
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

pub fn rand_u64() -> u64 {
    let t = host::timing::mono_ns();
    t ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15
}
