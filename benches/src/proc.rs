//! CPU time of process trees, from `/proc`.

/// CPU time of a process (its threads together) from `/proc/PID/stat`.
pub struct CpuClock {
    pid: u32,
    cpu_s: f64,
    at: std::time::Instant,
}

impl CpuClock {
    pub fn of(pid: u32) -> Option<Self> {
        Some(CpuClock {
            pid,
            cpu_s: cpu_seconds(pid)?,
            at: std::time::Instant::now(),
        })
    }

    /// Percent of one core used since [`CpuClock::of`].
    pub fn percent_since(&self) -> Option<f64> {
        let used = cpu_seconds(self.pid)? - self.cpu_s;
        Some(used / self.at.elapsed().as_secs_f64() * 100.0)
    }
}

/// utime + stime of `pid` and every live process below it (edgedesk runs each session in an
/// `edgedesk-host` child), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let own = proc_stat(pid)?;
    let mut procs = Vec::new();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        if let Some(p) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) {
            if let Some((ppid, ticks)) = proc_stat(p) {
                procs.push((p, ppid, ticks));
            }
        }
    }
    let mut tree = vec![pid];
    let mut ticks = own.1;
    // Parents come before children in no particular order: sweep until nothing is added.
    loop {
        let before = tree.len();
        for &(p, ppid, t) in &procs {
            if !tree.contains(&p) && tree.contains(&ppid) {
                tree.push(p);
                ticks += t;
            }
        }
        if tree.len() == before {
            break;
        }
    }
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    Some(ticks / hz as f64)
}

/// (parent pid, utime + stime in ticks) of `pid`.
fn proc_stat(pid: u32) -> Option<(u32, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some((f.get(1)?.parse().ok()?, ticks))
}
