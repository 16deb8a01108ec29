//! A server reachable only through a non-loopback address: a process started in a network
//! namespace of its own (`unshare --net`), joined to this one by a veth pair with a /24 of
//! 10.x addresses, this side its default route (as a router would be: this machine's other
//! addresses are reachable from inside, as Chromium's candidates on the default interface need).
//! The process is tied to the test (`PR_SET_PDEATHSIG`), so a killed test ends it too. The namespace lives exactly as long as its processes, so nothing is left
//! behind even when the test is killed: the kernel drops the namespace and the veth with it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A process group in its own network namespace.
pub struct Isolated {
    pub child: Child,
    /// The address inside the namespace (the server's).
    pub inside: String,
    /// This side's address on the veth.
    pub outside: String,
    veth: String,
}

/// Why a namespace cannot be made here (not root, no `unshare`/`ip`), or `None` when it can.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("network namespaces need root".into());
    }
    for tool in ["unshare", "ip"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false);
        if !found {
            return Some(format!("{tool} is not installed (util-linux, iproute2)"));
        }
    }
    None
}

fn netns_of(pid: u32) -> Option<std::path::PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Isolated {
    /// Starts `program args` in a new network namespace with loopback and one veth
    /// (`inside`/24; `{inside}` in an argument is replaced by that address); `stdout` is piped,
    /// stderr inherited.
    pub fn spawn(program: &Path, args: &[String], envs: &[(&str, &str)]) -> Result<Self, String> {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        let k = COUNT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // One /24 per namespace: second octet from the process, third from the count.
        let net = format!("10.{}.{}", 100 + pid % 100, k % 250);
        let (inside, outside) = (format!("{net}.2"), format!("{net}.1"));
        let veth = format!("edb{}n{k}", pid % 100_000);
        let script = format!(
            "i=0; while ! ip link show vx0 >/dev/null 2>&1; do i=$((i+1)); \
             [ $i -gt 500 ] && {{ echo 'no veth arrived' >&2; exit 97; }}; sleep 0.01; done; \
             ip link set lo up && ip addr add {inside}/24 dev vx0 && ip link set vx0 up \
             && ip route add default via {outside} && exec \"$@\""
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["--net", "--", "sh", "-c", &script, "sh"])
            .arg(program)
            .args(args.iter().map(|a| a.replace("{inside}", &inside)))
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = control::process::spawn_tied(&mut cmd).map_err(|e| format!("unshare: {e}"))?;
        let mut me = Isolated {
            inside,
            outside,
            veth,
            child,
        };
        // The peer must land in the child's namespace, so wait until it has one.
        let ours = netns_of(std::process::id());
        let deadline = Instant::now() + Duration::from_secs(5);
        while netns_of(me.child.id()) == ours {
            if Instant::now() > deadline || me.child.try_wait().ok().flatten().is_some() {
                return Err("the child did not enter a new network namespace".into());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let child_pid = me.child.id().to_string();
        ip(&[
            "link", "add", &me.veth, "type", "veth", "peer", "name", "vx0", "netns", &child_pid,
        ])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/24", me.outside),
            "dev",
            &me.veth,
        ])?;
        ip(&["link", "set", &me.veth, "up"])?;
        Ok(me)
    }

    /// Ends the process group (TERM, then KILL after 5 s).
    pub fn stop(&mut self) {
        let pgid = self.child.id() as i32;
        // SAFETY: signals to our own child's process group.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        // SAFETY: as above; the group may already be gone.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

impl Drop for Isolated {
    fn drop(&mut self) {
        self.stop();
        // Gone with the namespace already, unless something else still holds it.
        let _ = ip(&["link", "del", &self.veth]);
    }
}
