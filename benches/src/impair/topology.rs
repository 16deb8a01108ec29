//! Three places joined in a line: the client (this network namespace), a router namespace
//! running the impairment hop, and the server (a process in a namespace of its own).
//!
//! ```text
//!  this namespace            router namespace (impair-hop)             server namespace
//!  edi…a 10.X.K.1 ─ veth ─ r0 10.X.K.2 ─[c2s/s2c TUN]─ r1 10.X.M.1 ─ veth ─ vx0 10.X.M.2
//! ```
//!
//! This namespace routes the server's /24 through the router; the server's default route is the
//! router, and the router's is this side, so every address of this machine the client gathers
//! candidates on is reachable from the server through the hop. Both processes are tied to the
//! caller (`PR_SET_PDEATHSIG`) and each namespace lives exactly as long as its process: a killed
//! test leaves no namespace, veth or route behind (the route goes with its veth).

use super::hop;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A server process behind an impaired link.
pub struct Impaired {
    pub server: Child,
    /// The server's address.
    pub inside: String,
    /// This side's address on the first veth.
    pub outside: String,
    router: Child,
    router_out: BufReader<ChildStdout>,
    stopped: bool,
}

/// Why the topology cannot be made here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root".into());
    }
    for tool in ["unshare", "nsenter", "ip"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} is not installed (util-linux, iproute2)"));
        }
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("/dev/net/tun is missing (no TUN support)".into());
    }
    None
}

fn run(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn netns_of(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
}

fn wait_for_new_netns(child: &mut Child) -> Result<(), String> {
    let ours = netns_of(std::process::id());
    let deadline = Instant::now() + Duration::from_secs(5);
    while netns_of(child.id()) == ours {
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            return Err("a child did not enter a new network namespace".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

fn end_group(child: &mut Child) {
    let pgid = child.id() as i32;
    // SAFETY: signals to our own child's process group.
    unsafe { libc::kill(-pgid, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(5);
    while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: as above; the group may already be gone.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

impl Impaired {
    /// Starts the hop (`hop_bin impair-hop --schedule SCHEDULE`, i.e. `edgedesk-bench`) and then
    /// `program args` behind it (`{inside}` in an argument becomes the server's address); the
    /// server's stdout is piped, stderr inherited.
    pub fn spawn(
        hop_bin: &Path,
        schedule: &str,
        program: &Path,
        args: &[String],
        envs: &[(&str, &str)],
    ) -> Result<Self, String> {
        super::Schedule::parse(schedule)?;
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let k = COUNT.fetch_add(1, Ordering::Relaxed) % 120;
        let pid = std::process::id();
        let x = 200 + pid % 50;
        let (outside, router_a) = (format!("10.{x}.{k}.1"), format!("10.{x}.{k}.2"));
        let server_net = format!("10.{x}.{}", 128 + k);
        let (router_b, inside) = (format!("{server_net}.1"), format!("{server_net}.2"));
        let veth = format!("edi{}a{k}", pid % 100_000);

        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--"])
            .arg(hop_bin)
            .args(["impair-hop", "--schedule", schedule])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let mut router =
            control::process::spawn_tied(&mut cmd).map_err(|e| format!("unshare: {e}"))?;
        let mut router_out = BufReader::new(router.stdout.take().expect("piped"));
        let mut line = String::new();
        if router_out.read_line(&mut line).map_err(|e| e.to_string())? == 0
            || line.trim() != hop::READY
        {
            end_group(&mut router);
            return Err(format!(
                "the impairment hop did not start (said {:?}; see its stderr)",
                line.trim()
            ));
        }
        let script = format!(
            "i=0; while ! ip link show vx0 >/dev/null 2>&1; do i=$((i+1)); \
             [ $i -gt 500 ] && {{ echo 'no veth arrived' >&2; exit 97; }}; sleep 0.01; done; \
             ip link set lo up && ip addr add {inside}/24 dev vx0 && ip link set vx0 up \
             && ip route add default via {router_b} && exec \"$@\""
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--", "sh", "-c", &script, "sh"])
            .arg(program)
            .args(args.iter().map(|a| a.replace("{inside}", &inside)))
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let server = match control::process::spawn_tied(&mut cmd) {
            Ok(c) => c,
            Err(e) => {
                end_group(&mut router);
                return Err(format!("unshare: {e}"));
            }
        };
        let mut me = Impaired {
            server,
            inside: inside.clone(),
            outside: outside.clone(),
            router,
            router_out,
            stopped: false,
        };
        wait_for_new_netns(&mut me.server)?;
        let (rpid, spid) = (me.router.id().to_string(), me.server.id().to_string());
        let nsenter = |rest: &[&str]| {
            let mut a = vec!["nsenter", "-t", &rpid, "-n"];
            a.extend_from_slice(rest);
            run(&a)
        };
        run(&[
            "ip",
            "link",
            "add",
            &veth,
            "type",
            "veth",
            "peer",
            "name",
            hop::CLIENT_IF,
            "netns",
            &rpid,
        ])?;
        run(&["ip", "addr", "add", &format!("{outside}/24"), "dev", &veth])?;
        run(&["ip", "link", "set", &veth, "up"])?;
        nsenter(&[
            "ip",
            "addr",
            "add",
            &format!("{router_a}/24"),
            "dev",
            hop::CLIENT_IF,
        ])?;
        nsenter(&["ip", "link", "set", hop::CLIENT_IF, "up"])?;
        nsenter(&[
            "ip",
            "link",
            "add",
            hop::SERVER_IF,
            "type",
            "veth",
            "peer",
            "name",
            "vx0",
            "netns",
            &spid,
        ])?;
        nsenter(&[
            "ip",
            "addr",
            "add",
            &format!("{router_b}/24"),
            "dev",
            hop::SERVER_IF,
        ])?;
        nsenter(&["ip", "link", "set", hop::SERVER_IF, "up"])?;
        nsenter(&["ip", "route", "add", "default", "via", &outside])?;
        run(&[
            "ip",
            "route",
            "add",
            &format!("{server_net}.0/24"),
            "via",
            &router_a,
        ])?;
        Ok(me)
    }

    /// Replaces the profile from now on (a profile as [`super::Profile::parse`] reads it).
    pub fn set(&mut self, profile: &str) -> Result<(), String> {
        super::Profile::parse(profile)?;
        let stdin = self
            .router
            .stdin
            .as_mut()
            .ok_or("the hop's stdin is gone")?;
        writeln!(stdin, "{profile}").map_err(|e| format!("impair-hop: {e}"))
    }

    /// Each direction's counters so far: `{"up": {...}, "down": {...}}` with `forwarded`,
    /// `bytes`, `lost` and `queue_drops`.
    pub fn stats(&mut self) -> Result<serde_json::Value, String> {
        let stdin = self
            .router
            .stdin
            .as_mut()
            .ok_or("the hop's stdin is gone")?;
        writeln!(stdin, "stats").map_err(|e| format!("impair-hop: {e}"))?;
        let mut line = String::new();
        self.router_out
            .read_line(&mut line)
            .map_err(|e| format!("impair-hop: {e}"))?;
        serde_json::from_str(&line).map_err(|e| format!("impair-hop stats {line:?}: {e}"))
    }

    /// Ends the server, then the hop (each TERM, then KILL after 5 s).
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        end_group(&mut self.server);
        end_group(&mut self.router);
    }
}

impl Drop for Impaired {
    fn drop(&mut self) {
        self.stop();
    }
}
