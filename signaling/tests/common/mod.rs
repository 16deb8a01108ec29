//! Helpers shared by the tests that run the real `edgedesk` binary and look at the processes
//! it starts.
#![allow(dead_code)] // each test file uses its own subset

/// Processes whose environment has `DISPLAY=name` (the desktop's apps) or whose command line
/// is an X server for `name`.
pub fn on_display(name: &str) -> Vec<String> {
    let want_env = format!("DISPLAY={name}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let pid = entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let server = args
            .first()
            .is_some_and(|a| a.ends_with("Xorg") || a.ends_with("Xvfb"))
            && args.iter().any(|a| a == name);
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let app = environ.split(|&b| b == 0).any(|e| e == want_env.as_bytes());
        if server || app {
            found.push(format!("{pid} {}", args.join(" ")));
        }
    }
    found
}

/// Kills and reaps the child on drop, so a failing test leaves no server behind.
pub struct Killed(pub std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The pid of the `edgedesk-host` child of `parent`.
pub fn host_child(parent: u32) -> Option<u32> {
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
        // pid (comm) state ppid …
        let after = stat.rsplit_once(')')?.1;
        let ppid: u32 = after.split_whitespace().nth(1)?.parse().ok()?;
        (ppid == parent && stat.contains("(edgedesk-host)")).then_some(pid)
    })
}
