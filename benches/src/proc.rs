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

/// CPU time of `pid` and every live process below it (reaped children included) (edgedesk runs each session in an
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

/// (parent pid, CPU ticks) of `pid`: its own utime + stime and its reaped children's
/// (cutime + cstime), so a helper that ended during a measurement still counts for its tree.
fn proc_stat(pid: u32) -> Option<(u32, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let mut ticks = 0.0;
    for i in 11..=14 {
        ticks += f.get(i)?.parse::<f64>().ok()?;
    }
    Some((f.get(1)?.parse().ok()?, ticks))
}

/// The machine's CPU use and this process tree's, from `/proc/stat` and `/proc/PID/stat`: what
/// else ran on the machine during a measurement. The tree is sampled every 200 ms by a thread,
/// every process's own time kept as last seen: a browser's helpers end without being reaped by
/// anything in the tree, and their time would otherwise vanish from it (and show as "other").
pub struct LoadClock {
    busy_ticks: f64,
    at: std::time::Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    sampler: Option<std::thread::JoinHandle<f64>>,
}

fn machine_busy_ticks() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu: Vec<f64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: busy = all − idle − iowait.
    let total: f64 = cpu.iter().take(8).sum();
    Some(total - cpu.get(3)? - cpu.get(4).copied().unwrap_or(0.0))
}

/// (pid, start time) → own utime + stime (ticks), for every live process in `root`'s tree.
fn tree_ticks(root: u32) -> std::collections::HashMap<(u32, u64), f64> {
    let mut procs = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(close) = stat.rfind(')') else {
                continue;
            };
            let f: Vec<&str> = stat[close + 2..].split(' ').collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
            if let (Some(ppid), Some(u), Some(s), Some(start)) = (num(1), num(11), num(12), num(19))
            {
                procs.push((pid, ppid as u32, u + s, start as u64));
            }
        }
    }
    let mut tree = vec![root];
    loop {
        let before = tree.len();
        for &(p, ppid, ..) in &procs {
            if !tree.contains(&p) && tree.contains(&ppid) {
                tree.push(p);
            }
        }
        if tree.len() == before {
            break;
        }
    }
    procs
        .into_iter()
        .filter(|(p, ..)| tree.contains(p))
        .map(|(p, _, ticks, start)| ((p, start), ticks))
        .collect()
}

impl LoadClock {
    pub fn start() -> Option<LoadClock> {
        use std::sync::atomic::Ordering;
        let busy_ticks = machine_busy_ticks()?;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let root = std::process::id();
        let sampler = std::thread::Builder::new()
            .name("load-clock".into())
            .spawn(move || {
                // Processes alive at the start count from their time then; later ones from 0.
                let base = tree_ticks(root);
                let mut last = base.clone();
                while !flag.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(200));
                    last.extend(tree_ticks(root));
                }
                last.extend(tree_ticks(root));
                last.iter()
                    .map(|(k, t)| t - base.get(k).copied().unwrap_or(0.0))
                    .sum()
            })
            .ok()?;
        Some(LoadClock {
            busy_ticks,
            at: std::time::Instant::now(),
            stop,
            sampler: Some(sampler),
        })
    }

    /// CPU used since [`LoadClock::start`] by processes outside this process tree, % of one
    /// core (this tree: the tool, and every server, browser and X server it started).
    pub fn other_percent(mut self) -> Option<f64> {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let ours_ticks = self.sampler.take()?.join().ok()?;
        let wall = self.at.elapsed().as_secs_f64();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let machine = (machine_busy_ticks()? - self.busy_ticks) / hz / wall * 100.0;
        let ours = ours_ticks / hz / wall * 100.0;
        Some((machine - ours).max(0.0))
    }
}

impl Drop for LoadClock {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(s) = self.sampler.take() {
            let _ = s.join();
        }
    }
}
