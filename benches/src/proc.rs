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

/// One process, from `/proc/PID/stat`.
#[derive(Debug, Clone)]
pub struct Proc {
    pub pid: u32,
    pub ppid: u32,
    /// The command name (`comm`).
    pub name: String,
    pub zombie: bool,
    /// Its own utime + stime, ticks.
    pub own_ticks: f64,
    /// Its reaped children's cutime + cstime, ticks.
    pub children_ticks: f64,
    /// Start time after boot, ticks: with the pid, names one process for good.
    pub start: u64,
}

fn read_proc(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) in parentheses.
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let f: Vec<&str> = stat[close + 2..].split(' ').collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok());
    Some(Proc {
        pid,
        ppid: num(1)? as u32,
        name: stat[open + 1..close].to_owned(),
        zombie: f.first() == Some(&"Z"),
        own_ticks: num(11)? + num(12)?,
        children_ticks: num(13)? + num(14)?,
        start: num(19)? as u64,
    })
}

/// `root` and every live process below it (zombies included; `root` first when it lives).
pub fn tree(root: u32) -> Vec<Proc> {
    let mut procs: Vec<Proc> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(read_proc)
        .collect();
    let mut members = vec![root];
    // Parents come before children in no particular order: sweep until nothing is added.
    loop {
        let before = members.len();
        for p in &procs {
            if !members.contains(&p.pid) && members.contains(&p.ppid) {
                members.push(p.pid);
            }
        }
        if members.len() == before {
            break;
        }
    }
    procs.retain(|p| members.contains(&p.pid));
    procs.sort_by_key(|p| p.pid != root);
    procs
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

/// CPU time of `pid` and every live process below it, each with its reaped children's
/// (edgedesk runs each session in an `edgedesk-host` child), in seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let t = tree(pid);
    if t.first().map(|p| p.pid) != Some(pid) {
        return None;
    }
    let ticks: f64 = t.iter().map(|p| p.own_ticks + p.children_ticks).sum();
    Some(ticks / clock_ticks())
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
    tree(root)
        .into_iter()
        .map(|p| ((p.pid, p.start), p.own_ticks))
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
        let hz = clock_ticks();
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
