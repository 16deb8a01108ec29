//! The session's own sound server: PulseAudio in a private directory, reachable only through
//! its socket there (mode 0700 directory, no TCP, no D-Bus, no shared memory), with
//!
//! * a null sink `desktop`, the default sink: what the session's apps play; its monitor is
//!   what viewers hear ([`MONITOR`]);
//! * a null sink `mic-in` that viewers' microphones are played into, and the source
//!   `microphone` remapped from its monitor, the default source: what an app records.
//!
//! The server runs in the foreground as our child ([`control::process::spawn_tied`]: it gets
//! SIGTERM when this process dies, even by SIGKILL). Dropping the [`SoundServer`] stops it and
//! removes its directory; a directory left by a killed host is swept by the control plane
//! (`edgedesk-audio-PID-*`). No sound server of the machine's is touched: the server gets its
//! own `HOME`, `XDG_RUNTIME_DIR` and `XDG_CONFIG_HOME`, loads no default script, and apps are
//! pointed at it with `PULSE_SERVER` ([`SoundServer::env`]).

use std::io;
use std::os::unix::fs::DirBuilderExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::display::{on_path, tail};

/// The sink the session's apps play into; viewers hear its monitor.
pub const SINK: &str = "desktop";
/// What the audio capture records.
pub const MONITOR: &str = "desktop.monitor";
/// The sink viewers' microphones are played into.
pub const MIC_SINK: &str = "mic-in";
/// The session's default source: the viewers' microphone, as apps record it.
pub const MIC_SOURCE: &str = "microphone";
/// The sample rate of every device (Opus's native rate: no resampling anywhere).
pub const RATE: u32 = 48_000;

/// How long the server may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long it may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Errors of starting the sound server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AudioServerError {
    #[error("no PulseAudio here ({program} not found; scripts/setup.sh installs pulseaudio and pulseaudio-utils)")]
    Missing { program: &'static str },
    #[error("cannot prepare the sound server's directory {path}: {source}")]
    Dir {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot start pulseaudio: {0}")]
    Spawn(#[source] io::Error),
    #[error("pulseaudio exited at start ({status}): {log}")]
    Exited { status: String, log: String },
    #[error("pulseaudio did not accept connections within {0:?}: {1}")]
    Timeout(Duration, String),
}

/// A running sound server (see the module docs). Dropping it stops the server.
pub struct SoundServer {
    child: Child,
    dir: PathBuf,
}

/// The server's start-up script: the devices of the module docs, and nothing else.
fn script(socket: &Path) -> String {
    format!(
        "load-module module-native-protocol-unix socket={socket} auth-anonymous=1\n\
         load-module module-null-sink sink_name={SINK} rate={RATE} channels=2 sink_properties=device.description=Desktop\n\
         load-module module-null-sink sink_name={MIC_SINK} rate={RATE} channels=2 sink_properties=device.description=Viewer-microphone\n\
         load-module module-remap-source master={MIC_SINK}.monitor source_name={MIC_SOURCE} source_properties=device.description=Microphone\n\
         set-default-sink {SINK}\n\
         set-default-source {MIC_SOURCE}\n",
        socket = socket.display()
    )
}

impl SoundServer {
    /// Starts a server in a new private directory under the temporary directory and waits
    /// until it accepts connections.
    pub fn start() -> Result<SoundServer, AudioServerError> {
        for program in ["pulseaudio", "parec", "pacat"] {
            if !on_path(program) {
                return Err(AudioServerError::Missing { program });
            }
        }
        let dir = std::env::temp_dir().join(format!(
            "edgedesk-audio-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        let dir_err = |source| AudioServerError::Dir {
            path: dir.display().to_string(),
            source,
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(dir_err)?;
        // From here on, dropping `guard` removes the directory if the start fails.
        let guard = DirGuard(Some(dir.clone()));
        let socket = dir.join("native");
        let script_path = dir.join("session.pa");
        std::fs::write(&script_path, script(&socket)).map_err(dir_err)?;
        let config = dir.join("config");
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&config)
            .map_err(dir_err)?;
        let log = std::fs::File::create(dir.join("server.log")).map_err(dir_err)?;
        let mut cmd = Command::new("pulseaudio");
        cmd.args([
            "--daemonize=no",
            "--system=no",
            "-n",
            "--use-pid-file=no",
            "--exit-idle-time=-1",
            "--disallow-exit",
            "--disallow-module-loading",
            "--disable-shm=yes",
            "--log-target=stderr",
            "--log-level=warning",
        ])
        .arg("--file")
        .arg(&script_path)
        .env("HOME", &dir)
        .env("XDG_RUNTIME_DIR", &dir)
        .env("XDG_CONFIG_HOME", &config)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("PULSE_SERVER")
        .env_remove("DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
        let mut child = control::process::spawn_tied(&mut cmd).map_err(AudioServerError::Spawn)?;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(AudioServerError::Exited {
                    status: status.to_string(),
                    log: tail(&dir.join("server.log"), 600),
                });
            }
            if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
                break;
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                return Err(AudioServerError::Timeout(
                    START_TIMEOUT,
                    tail(&dir.join("server.log"), 600),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::mem::forget(guard);
        tracing::info!(
            dir = %dir.display(),
            pid = child.id(),
            after_ms = started.elapsed().as_millis() as u64,
            "sound server started"
        );
        Ok(SoundServer { child, dir })
    }

    /// `PULSE_SERVER` for the session's apps and for our own clients (`parec`, `pacat`).
    pub fn pulse_server(&self) -> String {
        format!("unix:{}", self.socket().display())
    }

    /// The environment an app of the session gets: its sound goes to this server.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("PULSE_SERVER".to_owned(), self.pulse_server())]
    }

    /// The server's socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.join("native")
    }

    /// The server's private directory (removed when it stops).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the server still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for SoundServer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) has no memory-safety preconditions; the pid is our unreaped child.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_GRACE;
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            if let Ok(None) = self.child.try_wait() {
                tracing::warn!(
                    pid = self.child.id(),
                    "pulseaudio ignored SIGTERM; killing it"
                );
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove the sound server's directory");
        }
        tracing::debug!("sound server stopped");
    }
}

/// Removes a directory unless forgotten.
struct DirGuard(Option<PathBuf>);

impl Drop for DirGuard {
    fn drop(&mut self) {
        if let Some(d) = self.0.take() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_makes_the_session_devices_the_defaults() {
        let s = script(Path::new("/x/native"));
        assert!(s.starts_with("load-module module-native-protocol-unix socket=/x/native "));
        assert!(s.contains("set-default-sink desktop\n"));
        assert!(s.contains("set-default-source microphone\n"));
        assert!(s.contains("master=mic-in.monitor source_name=microphone"));
        // Only a socket in the private directory: no TCP listener.
        assert!(!s.contains("protocol-tcp"));
    }
}
