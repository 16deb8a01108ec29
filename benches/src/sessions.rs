//! `edgedesk-bench sessions`: what a session costs an operator's node, against a control
//! plane (`edgedesk serve`) it starts on this machine:
//! 1. **start**: `POST /api/v1/sessions` (the default desktop) → the first picture a viewer
//!    decodes, `--starts` times one after another (each deleted before the next);
//! 2. **idle cost**: memory (PSS of the host, X server, window manager, panel and app) and
//!    CPU of one idle session, without a viewer and with one;
//! 3. **capacity**: idle sessions are added one at a time, each with a viewer receiving its
//!    stream, and after each a probe session (the stimulus as its app, idle) measures
//!    click-to-photon; it stops at the first count whose p50 is `--limit-ms` or more, or at
//!    `--max-sessions`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use codec::decoder::Decoder;
use codec::Codec;
use host::client::{whep_post, ViewerClient};
use serde_json::{json, Value};

use crate::connect::Target;
use crate::measure::{measure, Clicks, Config};
use crate::stats::{Samples, Summary};
use crate::stimulus::{Layout, Record};

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    pub edgedesk: PathBuf,
    pub width: u32,
    pub height: u32,
    pub starts: usize,
    pub max_sessions: usize,
    pub limit_ms: f64,
    pub probe_seconds: f64,
    pub quiet: bool,
}

/// The figures.
#[derive(Debug, serde::Serialize)]
pub struct SessionsReport {
    pub size: String,
    /// POST → running (display, desktop and encoder up), ms.
    pub to_running_ms: Option<Summary>,
    /// POST → first decoded picture at a viewer that joined as soon as it ran, ms.
    pub to_first_frame_ms: Option<Summary>,
    pub idle_no_viewer: Cost,
    pub idle_one_viewer: Cost,
    /// Click-to-photon p50 with this many idle sessions (one viewer each) beside the probe.
    pub capacity: Vec<CapacityStep>,
    /// The most idle sessions beside the probe with a click-to-photon p50 under the limit.
    pub sessions_under_limit: usize,
    pub limit_ms: f64,
}

/// Memory and CPU of one session's processes.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Cost {
    /// Proportional set size, MiB (shared pages split between their users).
    pub pss_mib: f64,
    /// Resident set size, MiB (shared pages counted whole).
    pub rss_mib: f64,
    /// Per cent of one core, over the window.
    pub cpu_percent: f64,
    pub processes: usize,
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct CapacityStep {
    pub idle_sessions: usize,
    pub click_to_photon_p50_ms: Option<f64>,
    pub clicks: usize,
}

/// A child process ended (SIGTERM, then reaped) when dropped.
struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

struct Api {
    base: String,
    key: String,
}

impl Api {
    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let req = ureq::request(method, &format!("{}{path}", self.base))
            .set("Authorization", &format!("Bearer {}", self.key));
        let resp = match body {
            Some(b) => req
                .set("Content-Type", "application/json")
                .send_string(&b.to_string()),
            None => req.call(),
        };
        match resp {
            Ok(r) if r.status() == 204 => Ok(Value::Null),
            Ok(r) => Ok(serde_json::from_str(&r.into_string()?)?),
            Err(ureq::Error::Status(code, r)) => {
                bail!(
                    "{method} {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => bail!("{method} {path}: {e}"),
        }
    }

    /// Creates a session; waits until it runs. Its id and the time to running.
    fn create(&self, body: Value) -> Result<(String, Duration)> {
        let t0 = Instant::now();
        let s = self.call("POST", "/api/v1/sessions", Some(body))?;
        let id = s["id"].as_str().context("no id")?.to_owned();
        loop {
            let s = self.call("GET", &format!("/api/v1/sessions/{id}"), None)?;
            match s["state"].as_str() {
                Some("running") => return Ok((id, t0.elapsed())),
                Some("starting") if t0.elapsed() < Duration::from_secs(60) => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => bail!("session {id} did not start: {s}"),
            }
        }
    }

    /// A control token and the WHEP URL of session `id`.
    fn token(&self, id: &str) -> Result<(String, String)> {
        let t = self.call(
            "POST",
            &format!("/api/v1/sessions/{id}/tokens"),
            Some(json!({"role": "control"})),
        )?;
        Ok((
            t["token"].as_str().context("no token")?.to_owned(),
            t["whep_url"].as_str().context("no whep_url")?.to_owned(),
        ))
    }

    fn delete(&self, id: &str) -> Result<()> {
        self.call("DELETE", &format!("/api/v1/sessions/{id}"), None)
            .map(drop)
    }
}

/// Joins `whep` with `token`: the viewer.
async fn join(whep: &str, token: &str) -> Result<ViewerClient> {
    let (client, offer) = ViewerClient::new(vec!["127.0.0.1:0".into()]).await?;
    let (w, t) = (whep.to_owned(), token.to_owned());
    let answer = tokio::task::spawn_blocking(move || whep_post(&w, Some(&t), &offer)).await??;
    client.accept_answer(answer.answer_sdp).await?;
    Ok(client)
}

/// The pids of session `id`'s processes: its host, and what runs on its display.
fn session_pids(id: &str, display: &str) -> Vec<u32> {
    let want_env = format!("DISPLAY={display}");
    let want_arg = format!("--session\0{id}\0");
    let mut pids = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return pids;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let host = String::from_utf8_lossy(&cmdline).contains(&want_arg);
        let server = args
            .first()
            .is_some_and(|a| a.ends_with(b"Xorg") || a.ends_with(b"Xvfb"))
            && args.contains(&display.as_bytes());
        let environ = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let app = environ.split(|b| *b == 0).any(|v| v == want_env.as_bytes());
        if host || server || app {
            pids.push(pid);
        }
    }
    pids
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    let Some((_, after)) = stat.rsplit_once(')') else {
        return 0;
    };
    let f: Vec<&str> = after.split_whitespace().collect();
    // After the comm: state(0) ppid(1) … utime(11) stime(12).
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// (PSS, RSS) of `pid` in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    (field("Pss:"), field("Rss:"))
}

/// The cost of session `id`'s processes over `window`.
fn cost(id: &str, display: &str, window: Duration) -> Cost {
    // SAFETY: sysconf(3) has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let pids = session_pids(id, display);
    let before: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    std::thread::sleep(window);
    let after: u64 = pids.iter().map(|p| cpu_ticks(*p)).sum();
    let (pss, rss) = pids
        .iter()
        .map(|p| memory_kib(*p))
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    Cost {
        pss_mib: pss as f64 / 1024.0,
        rss_mib: rss as f64 / 1024.0,
        cpu_percent: (after.saturating_sub(before)) as f64 / hz / window.as_secs_f64() * 100.0,
        processes: pids.len(),
    }
}

/// A viewer that keeps receiving (and drops) its frames until the task is aborted.
fn drain(mut client: ViewerClient) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            client.next_frame(Duration::from_secs(3600)).await;
        }
    })
}

fn say(o: &Options, line: String) {
    if !o.quiet {
        eprintln!("{line}");
    }
}

/// Runs everything (see the module docs).
pub async fn run(o: Options) -> Result<SessionsReport> {
    let key = format!("bench-operator-key-{:016x}", host::timing::mono_ns());
    let size = format!("{}x{}", o.width, o.height);
    let mut child = Command::new(&o.edgedesk)
        .args(["serve", "--listen", "127.0.0.1:0", "--operator-key", &key])
        .args(["--size", &size, "--fps", "60"])
        .args(["--max-sessions", &(o.max_sessions + 2).to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", o.edgedesk.display()))?;
    let stdout = child.stdout.take().expect("piped");
    let _server = Server(child);
    let base = {
        use std::io::BufRead;
        let mut out = std::io::BufReader::new(stdout);
        let mut line = String::new();
        out.read_line(&mut line)?;
        let base = line
            .trim()
            .strip_prefix("API: ")
            .with_context(|| format!("edgedesk serve printed {line:?}"))?
            .trim_end_matches("/api/v1")
            .to_owned();
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        base
    };
    let api = Arc::new(Api { base, key });

    // 1. Start time.
    let (mut to_running, mut to_frame) = (Samples::new(), Samples::new());
    for i in 0..o.starts {
        let t0 = Instant::now();
        let a = api.clone();
        let (id, running) = tokio::task::spawn_blocking(move || a.create(json!({}))).await??;
        let a = api.clone();
        let sid = id.clone();
        let (token, whep) = tokio::task::spawn_blocking(move || a.token(&sid)).await??;
        let mut client = join(&whep, &token).await?;
        let mut decoder = Decoder::new(Codec::H264)?;
        let end = Instant::now() + Duration::from_secs(15);
        let mut first = None;
        while first.is_none() && Instant::now() < end {
            let Some(f) = client.next_frame(end - Instant::now()).await else {
                break;
            };
            if !decoder.decode(&f.data)?.is_empty() {
                first = Some(t0.elapsed());
            }
        }
        client.close().await;
        let a = api.clone();
        tokio::task::spawn_blocking(move || a.delete(&id)).await??;
        let first = first.context("no decoded picture within 15 s")?;
        to_running.push_duration_ms(running);
        to_frame.push_duration_ms(first);
        say(
            &o,
            format!(
                "start {}/{}: running after {:.0} ms, first decoded picture after {:.0} ms",
                i + 1,
                o.starts,
                running.as_secs_f64() * 1e3,
                first.as_secs_f64() * 1e3
            ),
        );
    }

    // 2. One idle session's cost.
    let a = api.clone();
    let (idle, _) = tokio::task::spawn_blocking(move || a.create(json!({}))).await??;
    let display = api.call("GET", &format!("/api/v1/sessions/{idle}"), None)?["display"]
        .as_str()
        .context("no display")?
        .to_owned();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (i2, d2) = (idle.clone(), display.clone());
    let idle_no_viewer =
        tokio::task::spawn_blocking(move || cost(&i2, &d2, Duration::from_secs(10))).await?;
    say(&o, format!("idle, no viewer: {idle_no_viewer:?}"));
    let a = api.clone();
    let i2 = idle.clone();
    let (token, whep) = tokio::task::spawn_blocking(move || a.token(&i2)).await??;
    let mut viewers = vec![drain(join(&whep, &token).await?)];
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (i2, d2) = (idle.clone(), display.clone());
    let idle_one_viewer =
        tokio::task::spawn_blocking(move || cost(&i2, &d2, Duration::from_secs(10))).await?;
    say(&o, format!("idle, one viewer: {idle_one_viewer:?}"));

    // 3. Capacity: the idle session above is the first; add one per step.
    let stimulus = std::env::current_exe()?;
    let mut capacity = Vec::new();
    let mut under = 0;
    let mut sessions = vec![idle];
    loop {
        let n = sessions.len();
        let step = probe(&api, &stimulus, o.width, o.height, o.probe_seconds).await?;
        let p50 = step.0;
        say(
            &o,
            format!(
                "{n} idle sessions with a viewer each: click-to-photon p50 {} over {} clicks",
                p50.map_or("-".into(), |v| format!("{v:.1} ms")),
                step.1
            ),
        );
        capacity.push(CapacityStep {
            idle_sessions: n,
            click_to_photon_p50_ms: p50,
            clicks: step.1,
        });
        match p50 {
            Some(v) if v < o.limit_ms => under = n,
            _ => break,
        }
        if n >= o.max_sessions {
            break;
        }
        let a = api.clone();
        let (id, _) = tokio::task::spawn_blocking(move || a.create(json!({}))).await??;
        let a = api.clone();
        let i2 = id.clone();
        let (token, whep) = tokio::task::spawn_blocking(move || a.token(&i2)).await??;
        viewers.push(drain(join(&whep, &token).await?));
        sessions.push(id);
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    for v in viewers {
        v.abort();
    }
    for id in sessions {
        let a = api.clone();
        let _ = tokio::task::spawn_blocking(move || a.delete(&id)).await;
    }
    Ok(SessionsReport {
        size,
        to_running_ms: to_running.summary(),
        to_first_frame_ms: to_frame.summary(),
        idle_no_viewer,
        idle_one_viewer,
        capacity,
        sessions_under_limit: under,
        limit_ms: o.limit_ms,
    })
}

/// A probe session (the stimulus, idle, as its app): click-to-photon p50 and the clicks.
async fn probe(
    api: &Arc<Api>,
    stimulus: &Path,
    width: u32,
    height: u32,
    seconds: f64,
) -> Result<(Option<f64>, usize)> {
    let command = format!("{} stimulus --fps 0", stimulus.display());
    let a = api.clone();
    let (id, _) =
        tokio::task::spawn_blocking(move || a.create(json!({ "command": command }))).await??;
    let a = api.clone();
    let i2 = id.clone();
    let (token, whep) = tokio::task::spawn_blocking(move || a.token(&i2)).await??;
    // The stimulus window needs a moment to map.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let m = measure(Config {
        target: Target {
            whep,
            token: Some(token),
            codecs: vec![codec::Codec::H264],
            bind: vec!["127.0.0.1:0".into()],
            ice_servers: Vec::new(),
        },
        seconds,
        stimulus: Some((
            Layout::new(width, height),
            Arc::new(Mutex::new(Record::default())),
        )),
        clicks: Clicks::Channel,
        progress: false,
    })
    .await;
    let a = api.clone();
    let _ = tokio::task::spawn_blocking(move || a.delete(&id)).await;
    let m = m?;
    let mut s = Samples::new();
    for c in &m.clicks {
        if let Some(seen) = c.seen_ns {
            s.push(seen.saturating_sub(c.sent_ns) as f64 / 1e6);
        }
    }
    Ok((s.percentile(50.0), m.clicks.len()))
}
