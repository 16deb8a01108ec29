//! The forwarder of the impairment router (`edgedesk-bench impair-hop`), run inside the
//! router's own network namespace (see [`super::topology`]).
//!
//! It makes two TUN devices, `c2s` and `s2c`, and routes every packet arriving from the client
//! side (`r0`) into `c2s` and every packet from the server side (`r1`) into `s2c` (policy
//! rules by input interface). What it reads from a TUN device goes through that direction's
//! [`Link`] and is written back into the same device when its time comes; the kernel then
//! sees it arrive on the TUN device and forwards it by the main table.
//!
//! Stdin takes commands, one per line: a profile (replaces the schedule from then on), or
//! `stats` (one JSON line on stdout with each direction's counters).

use super::link::{Link, LinkCounters};
use super::{Profile, Schedule};
use std::io::{BufRead, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::time::{Duration, Instant};

/// The client side's interface in the router namespace.
pub const CLIENT_IF: &str = "r0";
/// The server side's interface in the router namespace.
pub const SERVER_IF: &str = "r1";
/// What the hop prints on stdout once it forwards.
pub const READY: &str = "impair-hop ready";

const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;

#[repr(C)]
struct IfReq {
    name: [u8; 16],
    flags: libc::c_short,
    _pad: [u8; 22],
}

fn tun(name: &str) -> Result<OwnedFd, String> {
    // SAFETY: a plain open(2) of a device path; the fd is owned below.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(format!("/dev/net/tun: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: fd was just opened and nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut req = IfReq {
        name: [0; 16],
        flags: IFF_TUN | IFF_NO_PI,
        _pad: [0; 22],
    };
    req.name[..name.len()].copy_from_slice(name.as_bytes());
    // SAFETY: TUNSETIFF reads and writes an ifreq, which `req` is laid out as.
    if unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF, &mut req) } < 0 {
        return Err(format!(
            "TUNSETIFF {name}: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(fd)
}

fn sh(args: &[&str]) -> Result<(), String> {
    let out = Command::new(args[0])
        .args(&args[1..])
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

fn sysctl(key: &str, value: &str) -> Result<(), String> {
    let path = format!("/proc/sys/net/ipv4/{key}");
    std::fs::write(&path, value).map_err(|e| format!("{path}: {e}"))
}

/// Sets up the router namespace this process is in and forwards until killed.
pub fn run(schedule: Schedule) -> Result<(), String> {
    sysctl("ip_forward", "1")?;
    for conf in ["all", "default"] {
        sysctl(&format!("conf/{conf}/rp_filter"), "0")?;
    }
    sh(&["ip", "link", "set", "lo", "up"])?;
    let mut devices = Vec::new();
    for (name, from, table) in [("c2s", CLIENT_IF, "100"), ("s2c", SERVER_IF, "101")] {
        devices.push(tun(name)?);
        sh(&["ip", "link", "set", name, "up"])?;
        sysctl(&format!("conf/{name}/rp_filter"), "0")?;
        sh(&["ip", "rule", "add", "iif", from, "lookup", table])?;
        sh(&["ip", "route", "add", "default", "dev", name, "table", table])?;
    }
    println!("{READY}");
    let _ = std::io::stdout().flush();
    forward(&devices[0], &devices[1], schedule)
}

fn counters_json(c: &LinkCounters) -> serde_json::Value {
    serde_json::json!({
        "forwarded": c.forwarded, "bytes": c.bytes, "lost": c.lost, "queue_drops": c.queue_drops,
    })
}

fn forward(c2s: &OwnedFd, s2c: &OwnedFd, schedule: Schedule) -> Result<(), String> {
    let start = Instant::now();
    let first = schedule.at(Duration::ZERO);
    let seed = start.elapsed().as_nanos() as u64 ^ u64::from(std::process::id()) << 32;
    // Index 0: client → server (`up`), 1: server → client (`down`).
    let mut links = [
        Link::new(first.up, seed ^ 0x9e37_79b9),
        Link::new(first.down, seed ^ 0x7f4a_7c15),
    ];
    let fds = [c2s.as_raw_fd(), s2c.as_raw_fd()];
    let mut schedule = Some(schedule);
    let apply = |links: &mut [Link; 2], p: Profile| {
        links[0].set(p.up);
        links[1].set(p.down);
    };
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let (wake_r, wake_w) = {
        let mut p = [0; 2];
        // SAFETY: pipe2 fills the two-element array.
        if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } < 0 {
            return Err(format!("pipe: {}", std::io::Error::last_os_error()));
        }
        // SAFETY: both fds were just created and are owned here.
        unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) }
    };
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
            // SAFETY: a one-byte write to our own pipe.
            unsafe { libc::write(wake_w.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
        }
    });
    let mut buf = vec![0u8; 65_536];
    loop {
        let now = Instant::now();
        for (link, fd) in links.iter_mut().zip(fds) {
            while let Some(p) = link.pop_due(now) {
                // SAFETY: writes the packet's bytes to the TUN device.
                unsafe { libc::write(fd, p.as_ptr().cast(), p.len()) };
            }
        }
        if let Some(s) = &schedule {
            let elapsed = now - start;
            if s.0.iter().any(|(t, _)| *t <= elapsed) {
                apply(&mut links, s.at(elapsed));
            }
            if s.next_change(elapsed).is_none() {
                schedule = None;
            }
        }
        while let Ok(line) = lines.try_recv() {
            let line = line.trim();
            if line == "stats" {
                let j = serde_json::json!({
                    "up": counters_json(&links[0].counters),
                    "down": counters_json(&links[1].counters),
                });
                println!("{j}");
                let _ = std::io::stdout().flush();
            } else if !line.is_empty() {
                match Profile::parse(line) {
                    Ok(p) => {
                        schedule = None;
                        apply(&mut links, p);
                    }
                    Err(e) => eprintln!("impair-hop: {e}"),
                }
            }
        }
        let mut deadline: Option<Instant> = links.iter().filter_map(Link::next_release).min();
        if let Some(s) = &schedule {
            if let Some(t) = s.next_change(now - start) {
                deadline = Some(deadline.map_or(start + t, |d| d.min(start + t)));
            }
        }
        let wait = deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(200));
        let ts = libc::timespec {
            tv_sec: wait.as_secs() as libc::time_t,
            tv_nsec: wait.subsec_nanos() as libc::c_long,
        };
        let mut polls = [
            libc::pollfd {
                fd: fds[0],
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: fds[1],
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: wake_r.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: ppoll over three valid pollfds with a valid timeout.
        let n = unsafe { libc::ppoll(polls.as_mut_ptr(), 3, &ts, std::ptr::null()) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {e}"));
        }
        let now = Instant::now();
        for (i, link) in links.iter_mut().enumerate() {
            if polls[i].revents & libc::POLLIN == 0 {
                continue;
            }
            loop {
                // SAFETY: reads at most buf.len() bytes into buf.
                let r = unsafe { libc::read(fds[i], buf.as_mut_ptr().cast(), buf.len()) };
                if r <= 0 {
                    break;
                }
                link.push(now, buf[..r as usize].to_vec());
            }
        }
        if polls[2].revents & libc::POLLIN != 0 {
            let mut drain = [0u8; 64];
            // SAFETY: reads into a local buffer.
            while unsafe { libc::read(wake_r.as_raw_fd(), drain.as_mut_ptr().cast(), 64) } > 0 {}
        }
    }
}
