//! Display lifecycle: a session's own X server (Xvfb, or Xorg with the dummy driver) and the
//! apps that run on it.
//!
//! [`VirtualDisplay::start`] validates the options, picks a free display number (unless one is
//! given), writes what the server needs into a private temporary directory (mode 0700: the
//! server's output and, for Xorg, its config and log), starts the server and waits until it
//! accepts connections *and* its lock file names it (so a server that lost a race for the
//! number is not mistaken for ours), then checks the extensions capture and input need
//! (MIT-SHM, DAMAGE, XFIXES, RANDR, XTEST).
//!
//! Dropping the [`VirtualDisplay`] stops everything it started: each app's process group gets
//! `SIGTERM` (then `SIGKILL` after a grace period), the server gets `SIGTERM` (then `SIGKILL`),
//! all of them are reaped, and the server's lock file and socket are gone afterwards.
//!
//! Xvfb cannot change size at run time; Xorg-dummy can (through RandR, e.g. `xrandr --newmode`
//! / `--addmode DUMMY0` / `--output DUMMY0 --mode`), within a virtual area of at least
//! 7680x4320.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use control::process::spawn_tied;
use x11rb::connection::{Connection, RequestConnection};
use x11rb::rust_connection::RustConnection;

/// Smallest accepted width or height.
pub const MIN_SIZE: u32 = 64;
/// Largest accepted width or height.
pub const MAX_SIZE: u32 = 16384;
/// Extensions every display must have (capture, cursor, resize, input injection).
pub const REQUIRED_EXTENSIONS: [&str; 5] = ["MIT-SHM", "DAMAGE", "XFIXES", "RANDR", "XTEST"];

/// Automatic display numbers are searched from here ...
const AUTO_FIRST: u32 = 20;
/// ... to here.
const AUTO_LAST: u32 = 999;
/// How many automatically picked numbers to try when a server loses the race for one.
const AUTO_ATTEMPTS: usize = 8;
/// How long a server or app gets to exit after `SIGTERM` before `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// Xorg-dummy's virtual area (and so its largest RandR size) is at least this big.
const DUMMY_MIN_VIRTUAL: (u32, u32) = (7680, 4320);
/// Highest pixel clock (kHz) used in the generated Xorg-dummy mode line.
const DUMMY_MAX_CLOCK_KHZ: u64 = 250_000;
/// Lowest pixel clock (kHz) of a generated mode line (the dummy driver rejects very low ones).
const DUMMY_MIN_CLOCK_KHZ: u64 = 12_000;

/// Which X server runs the display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DisplayKind {
    /// `Xvfb`: light, starts fast, fixed size.
    #[default]
    Xvfb,
    /// `Xorg` with `xserver-xorg-video-dummy`: resizable through RandR.
    XorgDummy,
}

impl DisplayKind {
    fn program(self) -> &'static str {
        match self {
            DisplayKind::Xvfb => "Xvfb",
            DisplayKind::XorgDummy => "Xorg",
        }
    }

    /// Whether this machine can start this kind: `Err` says what is missing.
    pub fn available(self) -> Result<(), String> {
        match self {
            DisplayKind::Xvfb if on_path("Xvfb") => Ok(()),
            DisplayKind::Xvfb => Err(format!("Xvfb is not installed ({})", self.install_hint())),
            DisplayKind::XorgDummy => {
                let xorg = XORG_PATHS.iter().any(|p| Path::new(p).exists()) || on_path("Xorg");
                let driver = Path::new(DUMMY_DRIVER).exists();
                match (xorg, driver) {
                    (true, true) => Ok(()),
                    (false, _) => Err(format!("Xorg is not installed ({})", self.install_hint())),
                    (true, false) => Err(format!(
                        "the Xorg dummy driver ({DUMMY_DRIVER}) is not installed ({})",
                        self.install_hint()
                    )),
                }
            }
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            DisplayKind::Xvfb => "apt-get install xvfb",
            DisplayKind::XorgDummy => {
                "apt-get install --no-install-recommends xserver-xorg-core xserver-xorg-video-dummy"
            }
        }
    }
}

/// Where Debian (and others) put the Xorg server binary.
const XORG_PATHS: [&str; 2] = ["/usr/lib/xorg/Xorg", "/usr/libexec/Xorg"];
/// The dummy video driver (`xserver-xorg-video-dummy`).
const DUMMY_DRIVER: &str = "/usr/lib/xorg/modules/drivers/dummy_drv.so";

/// How to start a [`VirtualDisplay`].
#[derive(Debug, Clone)]
pub struct DisplayOptions {
    /// Screen width in pixels, [`MIN_SIZE`]..=[`MAX_SIZE`]. Default 1920.
    pub width: u32,
    /// Screen height in pixels, [`MIN_SIZE`]..=[`MAX_SIZE`]. Default 1080.
    pub height: u32,
    /// Colour depth; only 24 is supported (capture reads 32-bit BGRX). Default 24.
    pub depth: u8,
    /// Display number (`:N`); `None` picks a free one. Default `None`.
    pub display: Option<u32>,
    /// Which server to run. Default [`DisplayKind::Xvfb`].
    pub kind: DisplayKind,
    /// How long the server may take to accept connections. Default 10 s.
    pub ready_timeout: Duration,
    /// Access control: start the server with an MIT-MAGIC-COOKIE-1 (`-auth`), added to the
    /// Xauthority file that `XAUTHORITY` names (which must be set: this process's own X
    /// connections, and everything started on the display, read it there), so no local
    /// process without the cookie can read the screen or type into it. Default `false`.
    pub auth: bool,
}

impl Default for DisplayOptions {
    fn default() -> Self {
        DisplayOptions {
            width: 1920,
            height: 1080,
            depth: 24,
            display: None,
            kind: DisplayKind::Xvfb,
            ready_timeout: Duration::from_secs(10),
            auth: false,
        }
    }
}

/// Errors of display lifecycle.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DisplayError {
    /// Width or height out of range.
    #[error("invalid display size {width}x{height}: width and height must be {MIN_SIZE}..={MAX_SIZE} pixels")]
    InvalidSize { width: u32, height: u32 },
    /// A depth other than 24.
    #[error("unsupported colour depth {0}: only 24 is supported")]
    UnsupportedDepth(u8),
    /// An explicit display number that is out of range.
    #[error("invalid display number {0}: must be 0..=65535")]
    InvalidNumber(u32),
    /// The requested display number is taken.
    #[error("X display :{0} is in use (/tmp/.X11-unix/X{0} or /tmp/.X{0}-lock exists)")]
    InUse(u32),
    /// No free number found.
    #[error("no free X display number in :{AUTO_FIRST}..=:{AUTO_LAST}")]
    NoFreeDisplay,
    /// The server program could not be run.
    #[error("cannot run {program}: {source} (install it: {hint})")]
    Spawn {
        program: String,
        hint: &'static str,
        #[source]
        source: io::Error,
    },
    /// Access control was asked for, but the cookie could not be set up.
    #[error("X access control for :{display}: {reason}")]
    Auth { display: u32, reason: String },
    /// The server exited before it accepted connections.
    #[error("{program} for :{display} exited ({status}) before accepting connections; its output ends with:\n{output_tail}")]
    Exited {
        program: &'static str,
        display: u32,
        status: ExitStatus,
        output_tail: String,
    },
    /// The server did not accept connections in time.
    #[error("{program} for :{display} did not accept connections within {timeout:?}; its output ends with:\n{output_tail}")]
    Timeout {
        program: &'static str,
        display: u32,
        timeout: Duration,
        output_tail: String,
    },
    /// The server came up at another size than requested (Xorg rejected the generated mode).
    #[error("{program} for :{display} came up at {actual_width}x{actual_height} instead of {width}x{height}; its output ends with:\n{output_tail}")]
    WrongSize {
        program: &'static str,
        display: u32,
        width: u32,
        height: u32,
        actual_width: u32,
        actual_height: u32,
        output_tail: String,
    },
    /// The server runs but lacks an extension edgedesk needs.
    #[error("X server :{display} lacks the {extension} extension")]
    MissingExtension {
        display: u32,
        extension: &'static str,
    },
    /// An app could not be started.
    #[error("cannot start {program} on :{display}: {source}")]
    App {
        program: String,
        display: u32,
        #[source]
        source: io::Error,
    },
    /// Other I/O around the server (temporary directory, config file, waiting).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> DisplayError {
    let what = what.into();
    move |source| DisplayError::Io { what, source }
}

/// A running X server owned by this process, and the apps started on it.
/// Dropping it stops them all (see the module docs).
#[derive(Debug)]
pub struct VirtualDisplay {
    number: u32,
    kind: DisplayKind,
    width: u32,
    height: u32,
    server: Child,
    /// Pids (= process group ids) of the apps started with [`VirtualDisplay::spawn_app`].
    apps: Mutex<Vec<u32>>,
    /// Environment every app started from now on gets (the session's sound server).
    app_env: Mutex<Vec<(String, String)>>,
    /// Private temporary directory (server output, Xorg config and log).
    dir: PathBuf,
}

fn socket_path(n: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X11-unix/X{n}"))
}

fn lock_path(n: u32) -> PathBuf {
    PathBuf::from(format!("/tmp/.X{n}-lock"))
}

fn in_use(n: u32) -> bool {
    socket_path(n).exists() || lock_path(n).exists()
}

/// The pid in an X server lock file (`None` if absent or unreadable).
fn lock_pid(n: u32) -> Option<u32> {
    fs::read_to_string(lock_path(n)).ok()?.trim().parse().ok()
}

/// The next display number that looks free. Numbers handed out in this process are not handed
/// out again soon (tests start displays in parallel before the servers create their locks).
fn pick_free_number() -> Option<u32> {
    static NEXT: AtomicU32 = AtomicU32::new(AUTO_FIRST);
    let span = AUTO_LAST - AUTO_FIRST + 1;
    for _ in 0..span {
        let n = AUTO_FIRST + (NEXT.fetch_add(1, Ordering::Relaxed) - AUTO_FIRST) % span;
        if !in_use(n) {
            return Some(n);
        }
    }
    None
}

/// Whether `program` is a file in one of `PATH`'s directories.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// The last `max` bytes of a file, as text (for error messages).
pub(crate) fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = fs::File::open(path) else {
        return String::from("(no output)");
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let _ = f.seek(SeekFrom::Start(len.saturating_sub(max)));
    let mut buf = Vec::new();
    if let Err(e) = f.read_to_end(&mut buf) {
        return format!("(cannot read {}: {e})", path.display());
    }
    let text = String::from_utf8_lossy(&buf).trim().to_string();
    if text.is_empty() {
        "(no output)".into()
    } else {
        text
    }
}

/// The log lines that mention mode `w`x`h` (why Xorg did not use it), if any.
fn mode_lines(log: &Path, w: u32, h: u32) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    let needle = format!("\"{w}x{h}\"");
    let lines: Vec<&str> = text.lines().filter(|l| l.contains(&needle)).collect();
    (!lines.is_empty()).then(|| lines.join("\n"))
}

/// Sends `sig` to process group `pgid`. `ESRCH` (already gone) is not an error.
fn signal_group(pgid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions; a negative pid addresses a group.
    if unsafe { libc::kill(-(pgid as libc::pid_t), sig) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, sig, error = %e, "signalling process group failed");
        }
    }
}

/// Reaps child `pid` if it has exited. `true` when it is gone (reaped now, or earlier by
/// someone else: `ECHILD`).
fn try_reap(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid(2) writes only into `status`, a valid c_int.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
    r != 0
}

/// Waits up to `grace` for `done()` to turn true, polling.
fn wait_until(grace: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + grace;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A mode line for `w`x`h` that the dummy driver accepts: modest blanking (but not the CVT
/// reduced-blanking signature, which Xorg rejects for a monitor without that option), a pixel
/// clock between [`DUMMY_MIN_CLOCK_KHZ`] (small sizes get a taller vertical total) and
/// [`DUMMY_MAX_CLOCK_KHZ`] (huge sizes get a refresh rate below 60 Hz; a dummy's refresh rate
/// means nothing).
fn dummy_modeline(w: u32, h: u32) -> String {
    let (hss, hse, ht) = (w + 48, w + 96, w + 192);
    let min_vt = (DUMMY_MIN_CLOCK_KHZ * 1000).div_ceil(u64::from(ht) * 60);
    let vt = u64::from(h + 33).max(min_vt);
    let (vss, vse) = (h + 3, h + 8);
    let clock_khz = (u64::from(ht) * vt * 60 / 1000).min(DUMMY_MAX_CLOCK_KHZ);
    format!(
        "Modeline \"{w}x{h}\" {}.{:03} {w} {hss} {hse} {ht} {h} {vss} {vse} {vt}",
        clock_khz / 1000,
        clock_khz % 1000
    )
}

/// Xorg config for the dummy driver at `w`x`h`, resizable up to the virtual area.
fn dummy_config(w: u32, h: u32) -> String {
    let vw = w.max(DUMMY_MIN_VIRTUAL.0);
    let vh = h.max(DUMMY_MIN_VIRTUAL.1);
    let video_ram_kb = u64::from(vw) * u64::from(vh) * 4 / 1024 + 4096;
    let mut c = String::new();
    let _ = write!(
        c,
        r#"# Written by edgedesk for one session's display.
Section "ServerFlags"
    Option "AutoAddDevices" "false"
    Option "AutoEnableDevices" "false"
    Option "DontVTSwitch" "true"
EndSection
Section "Device"
    Identifier "edgedesk-dummy"
    Driver "dummy"
    VideoRam {video_ram_kb}
EndSection
Section "Monitor"
    Identifier "edgedesk-monitor"
    HorizSync 1.0-1000.0
    VertRefresh 0.5-200.0
    {modeline}
EndSection
Section "Screen"
    Identifier "edgedesk-screen"
    Device "edgedesk-dummy"
    Monitor "edgedesk-monitor"
    DefaultDepth 24
    SubSection "Display"
        Depth 24
        Virtual {vw} {vh}
        Modes "{w}x{h}"
    EndSubSection
EndSection
"#,
        modeline = dummy_modeline(w, h),
    );
    c
}

fn validate(opts: &DisplayOptions) -> Result<(), DisplayError> {
    let ok = |v: u32| (MIN_SIZE..=MAX_SIZE).contains(&v);
    if !ok(opts.width) || !ok(opts.height) {
        return Err(DisplayError::InvalidSize {
            width: opts.width,
            height: opts.height,
        });
    }
    if opts.depth != 24 {
        return Err(DisplayError::UnsupportedDepth(opts.depth));
    }
    if let Some(n) = opts.display {
        if n > 65535 {
            return Err(DisplayError::InvalidNumber(n));
        }
    }
    Ok(())
}

/// Outcome of one attempt to start a server on one number.
enum Attempt {
    Ready(VirtualDisplay),
    /// Another server holds the number: try another one.
    Taken,
}

impl VirtualDisplay {
    /// Starts an X server as `opts` says and waits until it is usable. Errors say why, with the
    /// tail of the server's output when the server itself failed.
    pub fn start(opts: DisplayOptions) -> Result<VirtualDisplay, DisplayError> {
        validate(&opts)?;
        if let Some(n) = opts.display {
            if in_use(n) {
                return Err(DisplayError::InUse(n));
            }
            return match Self::try_start(&opts, n)? {
                Attempt::Ready(d) => Ok(d),
                Attempt::Taken => Err(DisplayError::InUse(n)),
            };
        }
        for _ in 0..AUTO_ATTEMPTS {
            let n = pick_free_number().ok_or(DisplayError::NoFreeDisplay)?;
            match Self::try_start(&opts, n)? {
                Attempt::Ready(d) => return Ok(d),
                Attempt::Taken => {
                    tracing::debug!(display = n, "display number taken, trying another")
                }
            }
        }
        Err(DisplayError::NoFreeDisplay)
    }

    /// Starts a `width`x`height` display of `kind`; `None` (auto) takes Xorg + dummy
    /// (resizable) where it is installed and starts, else Xvfb, saying why in one warning.
    pub fn start_kind(
        kind: Option<DisplayKind>,
        width: u32,
        height: u32,
        auth: bool,
    ) -> Result<VirtualDisplay, DisplayError> {
        let start = |kind| {
            VirtualDisplay::start(DisplayOptions {
                width,
                height,
                kind,
                auth,
                ..DisplayOptions::default()
            })
        };
        if let Some(kind) = kind {
            return start(kind);
        }
        match DisplayKind::XorgDummy.available().map(|()| start(DisplayKind::XorgDummy)) {
            Ok(Ok(d)) => return Ok(d),
            Ok(Err(e)) => tracing::warn!(
                "Xorg with the dummy driver did not start ({e}); using Xvfb: the desktop will not follow the browser window's size"
            ),
            Err(why) => tracing::warn!(
                "{why}; using Xvfb: the desktop will not follow the browser window's size"
            ),
        }
        start(DisplayKind::Xvfb)
    }

    fn try_start(opts: &DisplayOptions, n: u32) -> Result<Attempt, DisplayError> {
        let dir = std::env::temp_dir().join(format!(
            "edgedesk-display-{n}-{}-{:016x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(io_err(format!("cannot create {}", dir.display())))?;
        let result = Self::spawn_server(opts, n, &dir);
        if !matches!(result, Ok(Attempt::Ready(_))) {
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    fn spawn_server(opts: &DisplayOptions, n: u32, dir: &Path) -> Result<Attempt, DisplayError> {
        let name = format!(":{n}");
        let output_path = dir.join("server.out");
        let output = fs::File::create(&output_path)
            .map_err(io_err(format!("cannot create {}", output_path.display())))?;
        let output_err = output
            .try_clone()
            .map_err(io_err("cannot duplicate the server output file"))?;
        let program = opts.kind.program();
        let mut cmd = match opts.kind {
            DisplayKind::Xvfb => {
                let mut c = Command::new("Xvfb");
                c.arg(&name)
                    .args(["-screen", "0"])
                    .arg(format!("{}x{}x{}", opts.width, opts.height, opts.depth))
                    .args(["-nolisten", "tcp", "-noreset"]);
                for ext in REQUIRED_EXTENSIONS {
                    c.args(["+extension", ext]);
                }
                c
            }
            DisplayKind::XorgDummy => {
                let config = dir.join("xorg.conf");
                fs::write(&config, dummy_config(opts.width, opts.height))
                    .map_err(io_err(format!("cannot write {}", config.display())))?;
                let xorg = XORG_PATHS
                    .into_iter()
                    .find(|p| Path::new(p).exists())
                    .unwrap_or("Xorg");
                let mut c = Command::new(xorg);
                c.arg(&name)
                    .arg("-config")
                    .arg(&config)
                    .args(["-noreset", "-nolisten", "tcp", "-logfile"])
                    .arg(dir.join("Xorg.log"));
                c
            }
        };
        if opts.auth {
            let file = add_cookie(n).map_err(|reason| DisplayError::Auth { display: n, reason })?;
            cmd.arg("-auth").arg(file);
        }
        // The server stays in our process group, so whoever stops this process's group stops
        // the server too; and it gets SIGTERM if this process dies (even by SIGKILL).
        cmd.stdin(Stdio::null())
            .stdout(output)
            .stderr(output_err)
            .env_remove("DISPLAY");
        let server = spawn_tied(&mut cmd).map_err(|source| DisplayError::Spawn {
            program: program.to_owned(),
            hint: opts.kind.install_hint(),
            source,
        })?;
        let mut vd = VirtualDisplay {
            number: n,
            kind: opts.kind,
            width: opts.width,
            height: opts.height,
            server,
            apps: Mutex::new(Vec::new()),
            app_env: Mutex::new(Vec::new()),
            dir: dir.to_owned(),
        };
        // From here on, dropping `vd` stops the server (but would also remove `dir`,
        // which `try_start` does on failure anyway).
        let deadline = Instant::now() + opts.ready_timeout;
        let pid = vd.server.id();
        let output_tail = || tail(&output_path, 2048);
        loop {
            if let Some(status) = vd
                .server
                .try_wait()
                .map_err(io_err(format!("waiting for {program}")))?
            {
                let output_tail = output_tail();
                if output_tail.contains("already active") && opts.display.is_none() {
                    return Ok(Attempt::Taken);
                }
                return Err(DisplayError::Exited {
                    program,
                    display: n,
                    status,
                    output_tail,
                });
            }
            // Only our server's lock file counts; otherwise we might talk to a server that won
            // the race for this number while ours is about to give up.
            let lock = lock_pid(n);
            if lock.is_some_and(|p| p != pid) {
                std::thread::sleep(Duration::from_millis(20));
            } else if let Ok((conn, screen)) = RustConnection::connect(Some(&name)) {
                if lock == Some(pid) {
                    vd.check_server(&conn, screen)?;
                    if vd.size() != (opts.width, opts.height) {
                        let log = match opts.kind {
                            DisplayKind::XorgDummy => dir.join("Xorg.log"),
                            DisplayKind::Xvfb => output_path.clone(),
                        };
                        return Err(DisplayError::WrongSize {
                            program,
                            display: n,
                            width: opts.width,
                            height: opts.height,
                            actual_width: vd.width,
                            actual_height: vd.height,
                            output_tail: mode_lines(&log, opts.width, opts.height)
                                .unwrap_or_else(|| tail(&log, 2048)),
                        });
                    }
                    tracing::info!(
                        display = %name,
                        kind = ?opts.kind,
                        width = vd.width,
                        height = vd.height,
                        "X server ready"
                    );
                    return Ok(Attempt::Ready(vd));
                }
            }
            if Instant::now() >= deadline {
                return Err(DisplayError::Timeout {
                    program,
                    display: n,
                    timeout: opts.ready_timeout,
                    output_tail: output_tail(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Checks the extensions and records the real screen size.
    fn check_server(&mut self, conn: &RustConnection, screen: usize) -> Result<(), DisplayError> {
        for extension in REQUIRED_EXTENSIONS {
            let present = conn
                .extension_information(extension)
                .map_err(|e| DisplayError::Io {
                    what: format!("querying extension {extension} on :{}", self.number),
                    source: io::Error::other(e),
                })?
                .is_some();
            if !present {
                return Err(DisplayError::MissingExtension {
                    display: self.number,
                    extension,
                });
            }
        }
        let root = &conn.setup().roots[screen];
        self.width = u32::from(root.width_in_pixels);
        self.height = u32::from(root.height_in_pixels);
        Ok(())
    }

    /// The display name, e.g. `":42"` (what `DISPLAY` and [`crate::capture::X11Capturer`] take).
    pub fn name(&self) -> String {
        format!(":{}", self.number)
    }

    /// The display number `N` of `:N`.
    pub fn number(&self) -> u32 {
        self.number
    }

    /// Which server runs it.
    pub fn kind(&self) -> DisplayKind {
        self.kind
    }

    /// The screen size the server reported when it became ready (Xorg-dummy may be resized
    /// later; capture reports that as `CaptureStatus::Resized`).
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The display's private directory (mode 0700; removed with the display): for config
    /// files of what runs on it.
    pub fn private_dir(&self) -> &Path {
        &self.dir
    }

    /// The server's process id.
    pub fn server_pid(&self) -> u32 {
        self.server.id()
    }

    /// Starts `program` with `args` on this display (`DISPLAY` set, stdin from `/dev/null`,
    /// stdout/stderr inherited), in its own process group. See
    /// [`spawn_command`](Self::spawn_command) for who stops and reaps it.
    pub fn spawn_app<I, S>(
        &self,
        program: impl AsRef<OsStr>,
        args: I,
    ) -> Result<Child, DisplayError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        self.spawn_command(&mut cmd)
    }

    /// Adds `key=value` to the environment of every app started from now on (e.g.
    /// `PULSE_SERVER`, so the session's apps play into the session's sound server).
    pub fn set_app_env(&self, key: &str, value: &str) {
        let mut env = self.app_env.lock().unwrap_or_else(|p| p.into_inner());
        env.retain(|(k, _)| k != key);
        env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts `cmd` on this display: sets `DISPLAY` (and what [`Self::set_app_env`] added), puts it in its own process group, keeps
    /// the caller's stdio settings. The caller may wait on the returned [`Child`]; when the
    /// display is dropped, the app's whole process group is stopped and the app is reaped if
    /// the caller has not done so (a later `Child::wait` then reports `ECHILD`).
    pub fn spawn_command(&self, cmd: &mut Command) -> Result<Child, DisplayError> {
        cmd.env("DISPLAY", self.name())
            .env_remove("WAYLAND_DISPLAY")
            .process_group(0);
        for (k, v) in self
            .app_env
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
        {
            cmd.env(k, v);
        }
        let child = spawn_tied(cmd).map_err(|source| DisplayError::App {
            program: cmd.get_program().to_string_lossy().into_owned(),
            display: self.number,
            source,
        })?;
        self.apps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(child.id());
        Ok(child)
    }

    fn stop_server(&mut self) {
        let pid = self.server.id();
        if let Ok(Some(_)) = self.server.try_wait() {
            // Already reaped (it failed to start): its pid may belong to someone else now.
            return;
        }
        signal_group_or_pid(pid, libc::SIGTERM);
        let exited = wait_until(STOP_GRACE, || {
            matches!(self.server.try_wait(), Ok(Some(_)) | Err(_))
        });
        if !exited {
            tracing::warn!(
                display = self.number,
                pid,
                "X server ignored SIGTERM; killing it"
            );
            if let Err(e) = self.server.kill() {
                tracing::warn!(pid, error = %e, "killing the X server failed");
            }
            if let Err(e) = self.server.wait() {
                tracing::warn!(pid, error = %e, "reaping the X server failed");
            }
        }
        // A server that died hard leaves its lock and socket behind; remove them if ours.
        if lock_pid(self.number) == Some(pid) {
            for path in [lock_path(self.number), socket_path(self.number)] {
                if let Err(e) = fs::remove_file(&path) {
                    if e.kind() != io::ErrorKind::NotFound {
                        tracing::warn!(path = %path.display(), error = %e, "cannot remove");
                    }
                }
            }
        }
    }

    fn stop_apps(&mut self) {
        let apps = std::mem::take(self.apps.get_mut().unwrap_or_else(|p| p.into_inner()));
        if apps.is_empty() {
            return;
        }
        for &pid in &apps {
            signal_group(pid, libc::SIGTERM);
        }
        let mut left: Vec<u32> = apps;
        wait_until(STOP_GRACE, || {
            left.retain(|&pid| !try_reap(pid));
            left.is_empty()
        });
        for &pid in &left {
            tracing::warn!(
                display = self.number,
                pid,
                "app ignored SIGTERM; killing its process group"
            );
            signal_group(pid, libc::SIGKILL);
        }
        wait_until(STOP_GRACE, || {
            left.retain(|&pid| !try_reap(pid));
            left.is_empty()
        });
        for pid in left {
            tracing::warn!(display = self.number, pid, "app did not exit after SIGKILL");
        }
    }
}

/// The server shares our process group, so it is signalled by pid.
/// One Xauthority entry (the file format of libXau): FamilyWild (any host), display
/// `number`, MIT-MAGIC-COOKIE-1 with `cookie`.
pub fn xauth_entry(number: u32, cookie: &[u8]) -> Vec<u8> {
    let mut out = 0xffffu16.to_be_bytes().to_vec(); // FamilyWild
    let number = number.to_string();
    for field in [&b""[..], number.as_bytes(), b"MIT-MAGIC-COOKIE-1", cookie] {
        out.extend_from_slice(&(field.len() as u16).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

/// Appends a fresh cookie for display `number` to the file `XAUTHORITY` names (created 0600
/// if missing); returns the file, for the server's `-auth`.
fn add_cookie(number: u32) -> Result<PathBuf, String> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    static LOCK: Mutex<()> = Mutex::new(());
    let path = std::env::var_os("XAUTHORITY")
        .map(PathBuf::from)
        .ok_or("XAUTHORITY is not set (it must name this process's Xauthority file)")?;
    let cookie: [u8; 16] = rand::random();
    let _guard = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(&xauth_entry(number, &cookie)))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

fn signal_group_or_pid(pid: u32, sig: libc::c_int) {
    // SAFETY: kill(2) has no memory-safety preconditions.
    if unsafe { libc::kill(pid as libc::pid_t, sig) } < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pid, sig, error = %e, "signalling the X server failed");
        }
    }
}

impl Drop for VirtualDisplay {
    fn drop(&mut self) {
        self.stop_apps();
        self.stop_server();
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(
                dir = %self.dir.display(),
                error = %e,
                "cannot remove the display's temporary directory"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xauthority_entries_are_in_libxau_format() {
        let cookie: Vec<u8> = (1..=16).collect();
        let e = xauth_entry(21, &cookie);
        let mut want = vec![0xff, 0xff, 0, 0, 0, 2, b'2', b'1', 0, 18];
        want.extend_from_slice(b"MIT-MAGIC-COOKIE-1");
        want.extend_from_slice(&[0, 16]);
        want.extend_from_slice(&cookie);
        assert_eq!(e, want);
        // xauth (the reference reader) lists it as a wildcard entry for :21, if installed.
        let f = std::env::temp_dir().join(format!("edgedesk-xauth-test-{}", std::process::id()));
        std::fs::write(&f, &e).unwrap();
        if let Ok(out) = Command::new("xauth").arg("-f").arg(&f).arg("list").output() {
            let listed = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                listed.contains(":21  MIT-MAGIC-COOKIE-1  0102030405060708090a0b0c0d0e0f10"),
                "{listed}"
            );
        }
        let _ = std::fs::remove_file(&f);
    }

    #[test]
    fn rejects_absurd_options() {
        for (width, height) in [
            (0, 1080),
            (1920, 0),
            (16385, 100),
            (100, u32::MAX),
            (63, 64),
        ] {
            let opts = DisplayOptions {
                width,
                height,
                ..Default::default()
            };
            assert!(matches!(
                validate(&opts),
                Err(DisplayError::InvalidSize { .. })
            ));
        }
        let opts = DisplayOptions {
            depth: 16,
            ..Default::default()
        };
        assert!(matches!(
            validate(&opts),
            Err(DisplayError::UnsupportedDepth(16))
        ));
        let opts = DisplayOptions {
            display: Some(70000),
            ..Default::default()
        };
        assert!(matches!(
            validate(&opts),
            Err(DisplayError::InvalidNumber(70000))
        ));
        assert!(validate(&DisplayOptions::default()).is_ok());
    }

    #[test]
    fn dummy_modeline_keeps_the_clock_low() {
        assert_eq!(
            dummy_modeline(1920, 1080),
            "Modeline \"1920x1080\" 141.039 1920 1968 2016 2112 1080 1083 1088 1113"
        );
        for (w, h) in [(16384, 16384), (7680, 4320), (64, 64)] {
            let line = dummy_modeline(w, h);
            let clock: f64 = line.split_whitespace().nth(2).unwrap().parse().unwrap();
            assert!(clock <= DUMMY_MAX_CLOCK_KHZ as f64 / 1000.0, "{line}");
            assert!(clock >= DUMMY_MIN_CLOCK_KHZ as f64 / 1000.0, "{line}");
        }
        assert!(dummy_config(1280, 720).contains("Virtual 7680 4320"));
        assert!(dummy_config(10000, 720).contains("Virtual 10000 4320"));
    }
}
