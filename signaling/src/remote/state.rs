//! A control plane's state directory (`--state-dir`): what a restarted control plane needs to
//! take its sessions back. It holds (all 0600 in a 0700 directory owned by this user):
//! - `control.sock`: the control socket hosts connect (and reconnect) to;
//! - `sessions.json`: the session registry, with each running session's host pid (written
//!   atomically on every change; ICE credentials are not in it);
//! - `token.key`, `revoked`, `operator.key`: the join-token key, revoked token ids and a
//!   generated operator key (see `edgedesk serve`).

use std::io::{self, Write as _};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sessions::SessionInfo;

/// Format version of `sessions.json`.
const FORMAT: u32 = 1;

/// One session as `sessions.json` keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SavedSession {
    pub info: SessionInfo,
    /// Its host process, while it runs.
    #[serde(default)]
    pub pid: Option<u32>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    format: u32,
    sessions: Vec<SavedSession>,
}

/// An opened state directory.
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
}

impl StateDir {
    /// Creates `dir` (0700) or opens it; refuses one that another user owns or that others
    /// may read.
    pub fn open(dir: &Path) -> io::Result<Self> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let meta = std::fs::metadata(dir)?;
        let me = std::fs::metadata("/proc/self")?.uid();
        if meta.uid() != me {
            return Err(io::Error::other(format!(
                "{} belongs to uid {}, not to this user ({me})",
                dir.display(),
                meta.uid()
            )));
        }
        if meta.mode() & 0o077 != 0 {
            return Err(io::Error::other(format!(
                "{} is open to other users (mode {:o}); it must be 0700",
                dir.display(),
                meta.mode() & 0o777
            )));
        }
        Ok(StateDir {
            dir: dir.to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    /// The sessions an earlier control plane saved (none when it saved nothing).
    pub(super) fn load(&self) -> io::Result<Vec<SavedSession>> {
        let path = self.dir.join("sessions.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        let saved: Saved = serde_json::from_str(&text)
            .map_err(|e| io::Error::other(format!("{}: {e}", path.display())))?;
        if saved.format != FORMAT {
            return Err(io::Error::other(format!(
                "{}: format {} (this version reads {FORMAT})",
                path.display(),
                saved.format
            )));
        }
        Ok(saved.sessions)
    }

    /// Replaces `sessions.json` (write a temporary file, then rename: never half written).
    pub(super) fn save(&self, sessions: Vec<SavedSession>) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(&Saved {
            format: FORMAT,
            sessions,
        })
        .map_err(io::Error::other)?;
        let tmp = self.dir.join("sessions.json.tmp");
        write_private(&tmp, &text)?;
        std::fs::rename(&tmp, self.dir.join("sessions.json"))
    }

    /// The secret kept in file `name`, made by `make` (and saved) the first time.
    pub fn secret(&self, name: &str, make: impl FnOnce() -> String) -> io::Result<String> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let secret = make();
        write_private(&path, secret.as_bytes())?;
        Ok(secret)
    }
}

/// Writes `data` to a new (or truncated) 0600 file at `path`.
fn write_private(path: &Path, data: &[u8]) -> io::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(data)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sessions::SessionState;

    fn tmp() -> PathBuf {
        std::env::temp_dir().join(format!(
            "edgedesk-state-test-{:016x}",
            rand::random::<u64>()
        ))
    }

    #[test]
    fn sessions_and_secrets_survive_a_reopen() {
        let dir = tmp();
        let s = StateDir::open(&dir).unwrap();
        assert!(s.load().unwrap().is_empty());
        let info = SessionInfo {
            id: "a".into(),
            state: SessionState::Running {
                display: ":30".into(),
            },
            created_unix_ms: 1,
            ttl_secs: 0,
            idle_timeout_secs: 0,
            spec: Default::default(),
        };
        s.save(vec![SavedSession {
            info: info.clone(),
            pid: Some(7),
        }])
        .unwrap();
        let key = s.secret("token.key", || "k1".into()).unwrap();
        let again = StateDir::open(&dir).unwrap();
        let loaded = again.load().unwrap();
        assert_eq!(loaded.len(), 1);
        assert_eq!(loaded[0].info, info);
        assert_eq!(loaded[0].pid, Some(7));
        assert_eq!(again.secret("token.key", || "k2".into()).unwrap(), key);
        let mode = std::fs::metadata(dir.join("sessions.json")).unwrap().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_directory_open_to_others_is_refused() {
        let dir = tmp();
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = StateDir::open(&dir).unwrap_err().to_string();
        assert!(e.contains("0700"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_damaged_registry_is_an_error_not_a_panic() {
        let dir = tmp();
        let s = StateDir::open(&dir).unwrap();
        std::fs::write(dir.join("sessions.json"), "{not json").unwrap();
        assert!(s.load().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
