//! Child processes that die with this one.
#![allow(unsafe_code)]

use std::io;
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command};
use std::sync::{mpsc, OnceLock};

/// Spawns `cmd` so that it gets SIGTERM when this process dies, even by SIGKILL: a `kill -9`
/// of edgedesk leaves no X server (nor app) behind, because the kernel delivers the signal and
/// no cleanup code of ours has to run (`PR_SET_PDEATHSIG`).
///
/// Linux sends that signal when the *thread* that forked the child exits, not the process; so
/// every such child is forked by one spawner thread that lives as long as the process (a
/// display started from a short-lived thread, such as a blocking task, must not die with it).
pub fn spawn_tied(cmd: &mut Command) -> io::Result<Child> {
    type Reply = mpsc::Sender<(Command, io::Result<Child>)>;
    static SPAWNER: OnceLock<mpsc::Sender<(Command, Reply)>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<(Command, Reply)>();
        std::thread::Builder::new()
            .name("edgedesk-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let child = spawn_dying_with_parent(&mut cmd);
                    let _ = reply.send((cmd, child));
                }
            })
            .expect("starting the spawner thread");
        tx
    });
    let (reply, answer) = mpsc::channel();
    let taken = std::mem::replace(cmd, Command::new("true"));
    spawner
        .send((taken, reply))
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    let (back, child) = answer
        .recv()
        .map_err(|_| io::Error::other("the spawner thread is gone"))?;
    *cmd = back;
    child
}

fn spawn_dying_with_parent(cmd: &mut Command) -> io::Result<Child> {
    // SAFETY: getpid(2) has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs between fork and exec and only calls async-signal-safe
    // functions (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGTERM as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died before the prctl: then nobody will signal us.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    cmd.spawn()
}

/// Spawns `cmd` to outlive this process: in its own process group (a Ctrl-C in this
/// process's terminal does not reach it) and without a parent-death signal. For session hosts
/// that wait for a restarted control plane; they end by themselves when none comes back.
pub fn spawn_detached(cmd: &mut Command) -> io::Result<Child> {
    cmd.process_group(0).spawn()
}

/// Whether process `pid` runs `program` (its argv\[0\] ends with it): a pid from an earlier
/// run may belong to another process by now.
pub fn runs(pid: u32, program: &str) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .and_then(|c| {
            c.split(|b| *b == 0)
                .next()
                .map(|a| String::from_utf8_lossy(a).ends_with(program))
        })
        .unwrap_or(false)
}

/// Sends SIGKILL to process `pid` (a host that did not end when asked).
pub fn kill(pid: u32) -> io::Result<()> {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
