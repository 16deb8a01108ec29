//! X11 screen capture: whole-root MIT-SHM grabs, driven by XDamage, with the cursor drawn in.
//!
//! # One [`X11Capturer::capture`] call
//! 1. Drain the X events already queued: DAMAGE `DamageNotify` (the screen changed), XFixes
//!    `CursorNotify` (the cursor sprite changed: refetch it), RandR `ScreenChangeNotify` or a
//!    `ConfigureNotify` of the root window (maybe resized), XInput 2 `RawMotion` (the pointer may
//!    have moved), and X errors of earlier unchecked requests (returned as
//!    [`CaptureError::X11`]).
//! 2. If the root changed size: re-create the SHM segment and return
//!    [`CaptureStatus::Resized`]; the next call captures at the new size.
//! 3. If nothing changed and the call is not forced: sleep in `poll(2)` on the connection's
//!    socket until an event arrives or the timeout passes ([`CaptureStatus::Unchanged`]).
//! 4. Grab: `DamageSubtract`, `ShmGetImage` of what the caller's frame lacks (see below),
//!    `QueryPointer` (and `GetCursorImage` when the sprite changed) go out together and cost
//!    one round trip. Damage is subtracted *before* the image is taken (the server runs
//!    requests in order), so drawing that happens after the grab always raises a new
//!    `DamageNotify`. The image is copied into the caller's [`VideoFrame`] and the cursor is
//!    alpha-blended over it.
//!
//! # Only what changed
//! DAMAGE reports each newly damaged rectangle (`DeltaRectangles`). Every frame records what
//! it changed against the previous one (those rectangles plus the cursor's old and new place)
//! in a [`codec::DamageLog`] (the `tracker` module) and in [`VideoFrame::damage`], so
//! downstream stages convert and copy only that. A frame buffer handed back to [`X11Capturer::capture`] still holds the frame
//! whose `sequence` it carries: only the rectangles changed since then (and its own cursor)
//! are fetched into it, each with its own `ShmGetImage` into the segment. The whole root is
//! fetched (as up to 8 strips, copied out while the server fills the next) for a new buffer,
//! after [`X11Capturer::invalidate`] or a resize, and when the rectangles cover over half the
//! screen. Damage whose event arrives after a grab is fetched with the next frame, so a
//! consumer is at most that one frame behind, as with whole grabs.
//!
//! # Cursor motion
//! `GetImage` leaves the cursor out, and moving it damages nothing, so the capturer watches the
//! pointer itself. It selects XInput 2 `RawMotion` on the root (event driven: no CPU while the
//! pointer rests; XTest motion raises it too) and, on such an event, asks `QueryPointer` whether
//! the position differs from the one in the last frame. Because `XWarpPointer` raises no raw
//! event, it also polls `QueryPointer` every [`POINTER_POLL_XI2`] while waiting; without XInput 2
//! it polls every [`POINTER_POLL`]. Polls happen only while nothing else is pending.
//!
//! # Memory
//! One SHM segment of the screen's size, private to this process (see the `sys` module). The
//! frame's buffer is reused while its size matches, so a frame costs no large allocation (x11rb
//! allocates only the small reply packets). Plain `GetImage`, the fallback when MIT-SHM is
//! unavailable, receives each image in a new buffer.

mod cursor;
mod sys;
mod tracker;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use codec::{PixelFormat, Rect, RectSet, VideoFrame};
use x11rb::connection::{Connection, RequestConnection};
use x11rb::errors::{ConnectError, ConnectionError, ReplyError, ReplyOrIdError};
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::{self, ConnectionExt as _};
use x11rb::protocol::shm::{self, ConnectionExt as _};
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xinput::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{self, ConnectionExt as _};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;
use x11rb::x11_utils::X11Error;
use x11rb::NONE;

use cursor::CursorImage;
use sys::ShmSegment;
use tracker::DamageTracker;

/// How often the pointer position is polled while waiting, when XInput 2 raw events are not
/// available.
pub const POINTER_POLL: Duration = Duration::from_millis(4);
/// How often the pointer position is polled while waiting when XInput 2 raw motion events
/// report pointer movement (the poll only catches `XWarpPointer`).
pub const POINTER_POLL_XI2: Duration = Duration::from_millis(50);

/// What [`X11Capturer::capture`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptureStatus {
    /// A new picture is in the frame.
    Frame,
    /// The timeout passed without damage or cursor change; the frame is untouched.
    Unchanged,
    /// The screen changed size; the frame is untouched and the next call captures at this size.
    Resized { width: u32, height: u32 },
}

/// Errors of X11 capture.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The display could not be opened.
    #[error("cannot open X display {display}: {source}")]
    Connect {
        display: String,
        #[source]
        source: ConnectError,
    },
    /// The connection broke (server gone, I/O error, protocol parse error).
    #[error("X connection to {display} failed: {source}")]
    Connection {
        display: String,
        #[source]
        source: ConnectionError,
    },
    /// A request was answered with an X error (or the client ran out of X ids).
    #[error("X request {request} failed on {display}: {detail}")]
    Request {
        display: String,
        request: &'static str,
        detail: String,
    },
    /// An X error arrived for an unchecked request of an earlier frame.
    #[error("X error on {display}: {detail}")]
    X11 { display: String, detail: String },
    /// A required extension is missing.
    #[error("X display {display} lacks the {extension} extension, which capture needs")]
    MissingExtension {
        display: String,
        extension: &'static str,
    },
    /// The root window's pixel layout is not 32-bit BGRX.
    #[error("X display {display} has an unsupported pixel format: {detail}")]
    UnsupportedFormat { display: String, detail: String },
    /// The local SysV shared-memory segment could not be created or mapped.
    #[error("MIT-SHM segment of {bytes} bytes could not be created: {source}")]
    ShmCreate {
        bytes: usize,
        #[source]
        source: std::io::Error,
    },
    /// The X server refused to attach our segment, or it could not be marked for removal.
    #[error("MIT-SHM attach failed on {display}: {detail}")]
    ShmAttach { display: String, detail: String },
    /// `poll(2)` on the connection failed.
    #[error("waiting for X events on {display} failed: {source}")]
    Poll {
        display: String,
        #[source]
        source: std::io::Error,
    },
}

fn describe_x11_error(e: &X11Error) -> String {
    format!(
        "{:?} error (code {}) for request {}.{}, bad value {:#x}",
        e.error_kind, e.error_code, e.major_opcode, e.minor_opcode, e.bad_value
    )
}

fn reply_error(display: &str, request: &'static str, e: ReplyError) -> CaptureError {
    match e {
        ReplyError::ConnectionError(source) => CaptureError::Connection {
            display: display.to_owned(),
            source,
        },
        ReplyError::X11Error(x) => CaptureError::Request {
            display: display.to_owned(),
            request,
            detail: describe_x11_error(&x),
        },
    }
}

/// Attaches the display name and request to low-level errors.
trait Ctx<T> {
    fn ctx(self, display: &str, request: &'static str) -> Result<T, CaptureError>;
}

impl<T> Ctx<T> for Result<T, ConnectionError> {
    fn ctx(self, display: &str, request: &'static str) -> Result<T, CaptureError> {
        self.map_err(|e| reply_error(display, request, e.into()))
    }
}

impl<T> Ctx<T> for Result<T, ReplyError> {
    fn ctx(self, display: &str, request: &'static str) -> Result<T, CaptureError> {
        self.map_err(|e| reply_error(display, request, e))
    }
}

impl<T> Ctx<T> for Result<T, ReplyOrIdError> {
    fn ctx(self, display: &str, request: &'static str) -> Result<T, CaptureError> {
        self.map_err(|e| match e {
            ReplyOrIdError::ConnectionError(c) => reply_error(display, request, c.into()),
            ReplyOrIdError::X11Error(x) => reply_error(display, request, x.into()),
            ReplyOrIdError::IdsExhausted => CaptureError::Request {
                display: display.to_owned(),
                request,
                detail: "the client ran out of X resource ids".into(),
            },
        })
    }
}

/// How images are fetched.
enum Grab {
    /// MIT-SHM: the server writes into `seg`, attached there as `xid`.
    Shm { seg: ShmSegment, xid: shm::Seg },
    /// Plain `GetImage`, the image travels through the socket.
    Plain,
}

/// Replies of one frame's requests besides the image.
struct Fetched {
    /// When the (last part of the) image arrived.
    captured_at: Instant,
    pointer: Option<xproto::QueryPointerReply>,
    cursor: Option<xfixes::GetCursorImageReply>,
}

/// Pointer tracking between frames (see the module docs).
struct PointerWatch {
    /// XInput 2 raw motion events are selected.
    raw_events: bool,
    /// A raw motion event arrived since the last check.
    raw_motion: bool,
    /// When to poll next while waiting.
    next_poll: Instant,
    /// Where the cursor was drawn in the last frame (`None`: not on this screen).
    drawn_at: Option<(i16, i16)>,
}

impl PointerWatch {
    fn interval(&self) -> Duration {
        if self.raw_events {
            POINTER_POLL_XI2
        } else {
            POINTER_POLL
        }
    }
}

/// Captures the root window of one X display. See the module docs for how a call runs.
pub struct X11Capturer {
    conn: RustConnection,
    display: String,
    root: xproto::Window,
    width: u32,
    height: u32,
    /// Bytes per row of the images the server sends.
    stride: usize,
    /// Scanline padding of those images, in bits.
    scanline_pad: usize,
    damage: damage::Damage,
    grab: Grab,
    shm_supported: bool,
    shm_fallback_logged: bool,
    /// XFixes cursor support; `None` when the server lacks XFixes.
    cursor: Option<CursorImage>,
    draw_cursor: bool,
    /// The sprite must be refetched before it is drawn next.
    cursor_stale: bool,
    /// The sprite changed since the last frame.
    cursor_changed: bool,
    pointer: PointerWatch,
    /// Damage arrived since the last grab (starts true: the first call captures).
    damaged: bool,
    /// What changed between frames (see the module docs).
    tracker: DamageTracker,
    /// A resize may have happened; query the root geometry.
    size_check: bool,
    sequence: u64,
    /// When the last grab started (its requests went to the server).
    grab_started: Instant,
}

impl X11Capturer {
    /// Opens `display` (e.g. `":99"`), checks that its root is 32-bit BGRX, selects the events
    /// capture needs and sets up MIT-SHM (falling back to plain `GetImage`, with one warning, if
    /// MIT-SHM is missing or refuses our segment). DAMAGE is required; without XFixes the cursor
    /// is not drawn; RandR and XInput 2 are optional.
    pub fn connect(display: &str) -> Result<Self, CaptureError> {
        let d = display;
        let (conn, screen_num) =
            RustConnection::connect(Some(display)).map_err(|source| CaptureError::Connect {
                display: d.to_owned(),
                source,
            })?;
        let setup = conn.setup();
        let screen = &setup.roots[screen_num];
        let root = screen.root;
        let (width, height) = (
            u32::from(screen.width_in_pixels),
            u32::from(screen.height_in_pixels),
        );
        let scanline_pad =
            check_format(setup, screen).map_err(|detail| CaptureError::UnsupportedFormat {
                display: d.to_owned(),
                detail,
            })?;

        let missing = |extension| CaptureError::MissingExtension {
            display: d.to_owned(),
            extension,
        };
        let has = |name: &'static str| -> Result<bool, CaptureError> {
            Ok(conn.extension_information(name).ctx(d, name)?.is_some())
        };

        // DAMAGE (needs XFixes negotiated first: Subtract takes XFixes regions).
        if !has(damage::X11_EXTENSION_NAME)? {
            return Err(missing("DAMAGE"));
        }
        let cursor = if has(xfixes::X11_EXTENSION_NAME)? {
            conn.xfixes_query_version(5, 0)
                .ctx(d, "XFixesQueryVersion")?
                .reply()
                .ctx(d, "XFixesQueryVersion")?;
            conn.xfixes_select_cursor_input(root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)
                .ctx(d, "XFixesSelectCursorInput")?
                .check()
                .ctx(d, "XFixesSelectCursorInput")?;
            Some(CursorImage::default())
        } else {
            tracing::warn!(
                display = d,
                "no XFixes extension: the cursor will not be drawn"
            );
            None
        };
        conn.damage_query_version(1, 1)
            .ctx(d, "DamageQueryVersion")?
            .reply()
            .ctx(d, "DamageQueryVersion")?;
        let damage = conn.generate_id().ctx(d, "DamageCreate")?;
        conn.damage_create(damage, root, damage::ReportLevel::DELTA_RECTANGLES)
            .ctx(d, "DamageCreate")?
            .check()
            .ctx(d, "DamageCreate")?;

        // Resizes: ConfigureNotify on the root always works; RandR adds ScreenChangeNotify.
        conn.change_window_attributes(
            root,
            &xproto::ChangeWindowAttributesAux::new()
                .event_mask(xproto::EventMask::STRUCTURE_NOTIFY),
        )
        .ctx(d, "ChangeWindowAttributes")?
        .check()
        .ctx(d, "ChangeWindowAttributes")?;
        if has(randr::X11_EXTENSION_NAME)? {
            conn.randr_query_version(1, 2)
                .ctx(d, "RRQueryVersion")?
                .reply()
                .ctx(d, "RRQueryVersion")?;
            conn.randr_select_input(root, randr::NotifyMask::SCREEN_CHANGE)
                .ctx(d, "RRSelectInput")?
                .check()
                .ctx(d, "RRSelectInput")?;
        }

        // Pointer motion: XInput 2 raw events when there are any.
        let mut raw_events = false;
        if cursor.is_some() && has(xinput::X11_EXTENSION_NAME)? {
            let v = conn
                .xinput_xi_query_version(2, 0)
                .ctx(d, "XIQueryVersion")?
                .reply()
                .ctx(d, "XIQueryVersion")?;
            if v.major_version >= 2 {
                let mask = xinput::EventMask {
                    deviceid: 0, // XIAllDevices: includes the XTest slave devices.
                    mask: vec![xinput::XIEventMask::RAW_MOTION],
                };
                conn.xinput_xi_select_events(root, &[mask])
                    .ctx(d, "XISelectEvents")?
                    .check()
                    .ctx(d, "XISelectEvents")?;
                raw_events = true;
            }
        }
        if cursor.is_some() && !raw_events {
            tracing::info!(
                display = d,
                "no XInput 2: polling the pointer every {POINTER_POLL:?}"
            );
        }

        let shm_supported = has(shm::X11_EXTENSION_NAME)?;
        if shm_supported {
            conn.shm_query_version()
                .ctx(d, "ShmQueryVersion")?
                .reply()
                .ctx(d, "ShmQueryVersion")?;
        }

        let mut capturer = X11Capturer {
            conn,
            display: display.to_owned(),
            root,
            width,
            height,
            stride: stride_for(width, scanline_pad),
            scanline_pad,
            damage,
            grab: Grab::Plain,
            shm_supported,
            shm_fallback_logged: false,
            cursor,
            draw_cursor: true,
            cursor_stale: true,
            cursor_changed: false,
            pointer: PointerWatch {
                raw_events,
                raw_motion: false,
                next_poll: Instant::now(),
                drawn_at: None,
            },
            damaged: true,
            tracker: DamageTracker::new(),
            size_check: false,
            sequence: 0,
            grab_started: Instant::now(),
        };
        capturer.setup_grab()?;
        Ok(capturer)
    }

    /// The display name this capturer is connected to.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// The current screen size in pixels (what the next captured frame will have).
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Whether grabs go through MIT-SHM (false: plain `GetImage` fallback).
    pub fn uses_shm(&self) -> bool {
        matches!(self.grab, Grab::Shm { .. })
    }

    /// Whether XInput 2 raw motion events drive cursor tracking (false: polling only).
    pub fn pointer_events(&self) -> bool {
        self.pointer.raw_events
    }

    /// Draw the cursor into frames (default `true`; always off without XFixes). Turn it off when
    /// the viewer draws its own cursor.
    pub fn set_draw_cursor(&mut self, on: bool) {
        self.draw_cursor = on;
    }

    /// Drains queued X events and tells whether the next [`capture`](Self::capture) would
    /// return at once (damage, a cursor change or a possible resize is pending). Does not poll
    /// the pointer position.
    pub fn damage_pending(&mut self) -> Result<bool, CaptureError> {
        self.drain_events()?;
        Ok(self.damaged || self.cursor_changed || self.size_check)
    }

    /// Makes the next grab fetch the whole root and report its changes as unknown (a safety
    /// net against damage the server did not report; also what a resize does).
    pub fn invalidate(&mut self) {
        self.tracker.invalidate();
    }

    /// Waits up to `timeout` for damage (returns at once if damage is pending or `force`), then
    /// brings `out` up to date with the screen, reallocating it as [`PixelFormat::Bgra`] of the
    /// screen size if it does not match. `out` may be any buffer this capturer filled before
    /// (only what changed since is fetched) or a new one. On [`CaptureStatus::Frame`],
    /// `out.captured_at` is when the image arrived, `out.sequence` is this capturer's frame
    /// counter and `out.damage` what changed since the previous frame. A cursor move or shape
    /// change counts as damage.
    pub fn capture(
        &mut self,
        out: &mut VideoFrame,
        timeout: Duration,
        force: bool,
    ) -> Result<CaptureStatus, CaptureError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.drain_events()?;
            if let Some(status) = self.check_resize()? {
                return Ok(status);
            }
            if force || self.damaged || (self.cursor_changed && self.tracks_pointer()) {
                break;
            }
            let now = Instant::now();
            if self.tracks_pointer() && (self.pointer.raw_motion || now >= self.pointer.next_poll) {
                if self.pointer_moved()? {
                    break;
                }
                continue; // Events may have arrived during the round trip.
            }
            if now >= deadline {
                return Ok(CaptureStatus::Unchanged);
            }
            let mut wake = deadline;
            if self.tracks_pointer() {
                wake = wake.min(self.pointer.next_poll);
            }
            self.wait_readable(wake.saturating_duration_since(now))?;
        }
        if self.damaged {
            self.settle()?;
        }
        self.grab(out)
    }

    /// Lets a burst of drawing finish before the grab: an application draws a frame in several
    /// requests (a background, then text; a code, then a bar), and the first one's damage
    /// wakes the capture. While more damage keeps arriving less than [`SETTLE_GAP`] apart
    /// (at most [`SETTLE_MAX`] in all), wait for it, so the frame holds the whole drawing
    /// rather than its first part (the rest would follow a frame interval later).
    fn settle(&mut self) -> Result<(), CaptureError> {
        let until = Instant::now() + SETTLE_MAX;
        loop {
            let seen = self.tracker.events();
            let now = Instant::now();
            if now >= until {
                return Ok(());
            }
            self.wait_readable(SETTLE_GAP.min(until - now))?;
            self.drain_events()?;
            if self.tracker.events() == seen {
                return Ok(());
            }
        }
    }

    fn tracks_pointer(&self) -> bool {
        self.draw_cursor && self.cursor.is_some()
    }

    /// One `QueryPointer`: did the pointer move since the last frame?
    fn pointer_moved(&mut self) -> Result<bool, CaptureError> {
        let d = &self.display;
        let p = self
            .conn
            .query_pointer(self.root)
            .ctx(d, "QueryPointer")?
            .reply()
            .ctx(d, "QueryPointer")?;
        self.pointer.raw_motion = false;
        self.pointer.next_poll = Instant::now() + self.pointer.interval();
        let at = p.same_screen.then_some((p.root_x, p.root_y));
        Ok(at != self.pointer.drawn_at)
    }

    fn wait_readable(&self, timeout: Duration) -> Result<(), CaptureError> {
        self.conn.flush().ctx(&self.display, "flush")?;
        sys::wait_readable(self.conn.stream().as_fd(), timeout).map_err(|source| {
            CaptureError::Poll {
                display: self.display.clone(),
                source,
            }
        })
    }

    fn drain_events(&mut self) -> Result<(), CaptureError> {
        while let Some(event) = self.conn.poll_for_event().ctx(&self.display, "event")? {
            match event {
                Event::DamageNotify(e) => {
                    self.damaged = true;
                    let a = e.area;
                    let r = Rect::from_x11(a.x, a.y, a.width, a.height, self.width, self.height);
                    self.tracker.damaged(r);
                }
                Event::XfixesCursorNotify(_) => {
                    self.cursor_stale = true;
                    self.cursor_changed = true;
                }
                Event::RandrScreenChangeNotify(_) => self.size_check = true,
                Event::ConfigureNotify(e) if e.window == self.root => self.size_check = true,
                Event::XinputRawMotion(_) => self.pointer.raw_motion = true,
                Event::Error(e) => {
                    return Err(CaptureError::X11 {
                        display: self.display.clone(),
                        detail: describe_x11_error(&e),
                    })
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Handles a pending size check: on a real change, re-creates the SHM segment.
    fn check_resize(&mut self) -> Result<Option<CaptureStatus>, CaptureError> {
        if !std::mem::take(&mut self.size_check) {
            return Ok(None);
        }
        let d = &self.display;
        let geo = self
            .conn
            .get_geometry(self.root)
            .ctx(d, "GetGeometry")?
            .reply()
            .ctx(d, "GetGeometry")?;
        let (width, height) = (u32::from(geo.width), u32::from(geo.height));
        if (width, height) == (self.width, self.height) {
            return Ok(None);
        }
        tracing::debug!(display = %self.display, width, height, "root window resized");
        self.release_grab()?;
        self.width = width;
        self.height = height;
        self.stride = stride_for(width, self.scanline_pad);
        self.setup_grab()?;
        self.damaged = true;
        self.invalidate();
        Ok(Some(CaptureStatus::Resized { width, height }))
    }

    /// Sets up MIT-SHM for the current size, or the plain fallback (warning once).
    fn setup_grab(&mut self) -> Result<(), CaptureError> {
        self.grab = Grab::Plain;
        if !self.shm_supported {
            if !std::mem::replace(&mut self.shm_fallback_logged, true) {
                tracing::warn!(
                    display = %self.display,
                    "MIT-SHM unavailable: using plain GetImage (slower)"
                );
            }
            return Ok(());
        }
        match self.attach_shm() {
            Ok(grab) => self.grab = grab,
            Err(e @ (CaptureError::ShmCreate { .. } | CaptureError::ShmAttach { .. })) => {
                if !std::mem::replace(&mut self.shm_fallback_logged, true) {
                    tracing::warn!(
                        display = %self.display,
                        error = %e,
                        "using plain GetImage (slower)"
                    );
                }
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    fn attach_shm(&self) -> Result<Grab, CaptureError> {
        let d = &self.display;
        let bytes = self.stride * self.height as usize;
        let mut seg = ShmSegment::create(bytes)
            .map_err(|source| CaptureError::ShmCreate { bytes, source })?;
        let xid = self.conn.generate_id().ctx(d, "ShmAttach")?;
        let attach_failed = |detail: String| CaptureError::ShmAttach {
            display: d.clone(),
            detail,
        };
        match self
            .conn
            .shm_attach(xid, seg.id(), false)
            .ctx(d, "ShmAttach")?
            .check()
        {
            Ok(()) => {}
            Err(ReplyError::X11Error(x)) => return Err(attach_failed(describe_x11_error(&x))),
            Err(e) => return Err(reply_error(d, "ShmAttach", e)),
        }
        // Both sides are attached: from now on the segment dies with the last detach.
        if let Err(e) = seg.mark_removed() {
            let detached = self.conn.shm_detach(xid).ctx(d, "ShmDetach")?.check();
            detached.ctx(d, "ShmDetach")?;
            return Err(attach_failed(format!("IPC_RMID failed: {e}")));
        }
        Ok(Grab::Shm { seg, xid })
    }

    fn release_grab(&mut self) -> Result<(), CaptureError> {
        if let Grab::Shm { xid, .. } = std::mem::replace(&mut self.grab, Grab::Plain) {
            let d = &self.display;
            self.conn
                .shm_detach(xid)
                .ctx(d, "ShmDetach")?
                .check()
                .ctx(d, "ShmDetach")?;
        }
        Ok(())
    }

    /// Sends the requests of one frame, collects their replies and copies the image into
    /// `dst` (tightly packed BGRX rows of the current size): only `region`'s rectangles when
    /// given and MIT-SHM is in use, else the whole root.
    /// `Ok(Err(x))`: `ShmGetImage` failed with `BadMatch`, i.e. the root shrank meanwhile.
    ///
    /// With MIT-SHM the image is requested as horizontal strips that land in place in the
    /// segment; all requests go out at once and each strip is copied out while the server is
    /// still writing the next ones, so the server's copy and ours overlap when a second core is
    /// free (2 cores, Xvfb, 1080p: p50 about 1.0-1.5 ms with one request, 0.55-0.8 ms with 8
    /// strips). Damage was subtracted before the first strip, so drawing that lands between
    /// strips is captured again in the next frame.
    fn fetch(
        &self,
        dst: &mut [u8],
        region: Option<&[Rect]>,
    ) -> Result<Result<Fetched, X11Error>, CaptureError> {
        let (w, h) = (self.width as u16, self.height as u16);
        let d = &self.display;
        let conn = &self.conn;
        let row = usize::from(w) * 4;
        conn.damage_subtract(self.damage, NONE, NONE)
            .ctx(d, "DamageSubtract")?;
        let strips = strip_count(self.stride * usize::from(h)).min(usize::from(h).max(1));
        let strip_rows = usize::from(h).div_ceil(strips);
        let mut shm_cookies: [Option<_>; MAX_STRIPS] = std::array::from_fn(|_| None);
        let mut rect_cookies = Vec::new();
        let mut plain_cookie = None;
        match (&self.grab, region) {
            (Grab::Shm { xid, .. }, Some(rects)) => {
                // Each rectangle lands packed after the previous one in the segment (the
                // caller keeps their total under the segment's size).
                let z = u8::from(xproto::ImageFormat::Z_PIXMAP);
                let mut offset = 0;
                for r in rects.iter().filter(|r| !r.is_empty()) {
                    let (x, y) = (r.x as i16, r.y as i16);
                    let cookie = conn
                        .shm_get_image(
                            self.root,
                            x,
                            y,
                            r.w as u16,
                            r.h as u16,
                            !0,
                            z,
                            *xid,
                            offset as u32,
                        )
                        .ctx(d, "ShmGetImage")?;
                    let rstride = stride_for(r.w, self.scanline_pad);
                    rect_cookies.push((cookie, *r, offset, rstride));
                    offset += rstride * r.h as usize;
                }
            }
            (Grab::Shm { xid, .. }, None) => {
                let z = u8::from(xproto::ImageFormat::Z_PIXMAP);
                for (i, slot) in shm_cookies.iter_mut().enumerate().take(strips) {
                    let y0 = i * strip_rows;
                    let rows = strip_rows.min(usize::from(h) - y0);
                    if rows == 0 {
                        break;
                    }
                    let offset = (y0 * self.stride) as u32;
                    let cookie = conn
                        .shm_get_image(self.root, 0, y0 as i16, w, rows as u16, !0, z, *xid, offset)
                        .ctx(d, "ShmGetImage")?;
                    *slot = Some((cookie, y0, rows));
                }
            }
            (Grab::Plain, _) => {
                let z = xproto::ImageFormat::Z_PIXMAP;
                plain_cookie = Some(
                    conn.get_image(z, self.root, 0, 0, w, h, !0)
                        .ctx(d, "GetImage")?,
                );
            }
        }
        let draw_cursor = self.tracks_pointer();
        let pointer_cookie = match draw_cursor {
            true => Some(conn.query_pointer(self.root).ctx(d, "QueryPointer")?),
            false => None,
        };
        let cursor_cookie = match draw_cursor && self.cursor_stale {
            true => Some(
                conn.xfixes_get_cursor_image()
                    .ctx(d, "XFixesGetCursorImage")?,
            ),
            false => None,
        };

        let mut captured_at = Instant::now();
        if let (Grab::Shm { seg, .. }, Some(_)) = (&self.grab, region) {
            for (cookie, r, offset, rstride) in rect_cookies {
                let expected = rstride * r.h as usize;
                match cookie.reply() {
                    Ok(reply) if reply.size as usize == expected => {}
                    Ok(reply) => return Err(self.bad_size(reply.size as usize, expected)),
                    Err(ReplyError::X11Error(x))
                        if x.error_kind == x11rb::protocol::ErrorKind::Match =>
                    {
                        return Ok(Err(x));
                    }
                    Err(e) => return Err(reply_error(d, "ShmGetImage", e)),
                }
                captured_at = Instant::now();
                let src = seg.bytes(offset..offset + expected);
                let bytes = r.w as usize * 4;
                for (i, s) in src.chunks(rstride).enumerate() {
                    let o = (r.y as usize + i) * row + r.x as usize * 4;
                    dst[o..o + bytes].copy_from_slice(&s[..bytes]);
                }
            }
        } else if let Grab::Shm { seg, .. } = &self.grab {
            for (cookie, y0, rows) in shm_cookies.into_iter().map_while(|c| c) {
                let expected = rows * self.stride;
                match cookie.reply() {
                    Ok(r) if r.size as usize == expected => {}
                    Ok(r) => return Err(self.bad_size(r.size as usize, expected)),
                    Err(ReplyError::X11Error(x))
                        if x.error_kind == x11rb::protocol::ErrorKind::Match =>
                    {
                        return Ok(Err(x));
                    }
                    Err(e) => return Err(reply_error(d, "ShmGetImage", e)),
                }
                captured_at = Instant::now();
                let range = y0 * self.stride..(y0 + rows) * self.stride;
                copy_rows(
                    &mut dst[y0 * row..(y0 + rows) * row],
                    row,
                    seg.bytes(range),
                    self.stride,
                );
            }
        } else if let Some(c) = plain_cookie {
            let image = c.reply().ctx(d, "GetImage")?.data;
            captured_at = Instant::now();
            let expected = self.stride * usize::from(h);
            if image.len() < expected {
                return Err(self.bad_size(image.len(), expected));
            }
            copy_rows(dst, row, &image[..expected], self.stride);
        }
        let pointer = match pointer_cookie {
            Some(c) => Some(c.reply().ctx(d, "QueryPointer")?),
            None => None,
        };
        let cursor = match cursor_cookie {
            Some(c) => Some(c.reply().ctx(d, "XFixesGetCursorImage")?),
            None => None,
        };
        Ok(Ok(Fetched {
            captured_at,
            pointer,
            cursor,
        }))
    }

    /// When the last frame's grab started: the picture is the screen at about this moment
    /// (`captured_at` is when the image was in hand).
    pub fn grab_started(&self) -> Instant {
        self.grab_started
    }

    fn grab(&mut self, out: &mut VideoFrame) -> Result<CaptureStatus, CaptureError> {
        self.grab_started = Instant::now();
        let (fw, fh) = (self.width, self.height);
        let row = fw as usize * 4;
        if out.format != PixelFormat::Bgra
            || out.width != fw
            || out.height != fh
            || out.strides != [row]
            || out.planes.len() != 1
            || out.planes[0].len() != row * fh as usize
        {
            *out = VideoFrame::new(PixelFormat::Bgra, fw, fh);
        }
        let region = self.region_for(out.sequence);
        let dst = &mut out.planes[0];
        let fetched = match self.fetch(dst, region.as_ref().map(RectSet::rects))? {
            Ok(f) => f,
            Err(x) => {
                self.size_check = true;
                return self.check_resize()?.ok_or_else(|| CaptureError::Request {
                    display: self.display.clone(),
                    request: "ShmGetImage",
                    detail: describe_x11_error(&x),
                });
            }
        };
        if let Some(r) = fetched.cursor {
            let img = self.cursor.get_or_insert_with(CursorImage::default);
            img.width = u32::from(r.width);
            img.height = u32::from(r.height);
            img.xhot = u32::from(r.xhot);
            img.yhot = u32::from(r.yhot);
            img.pixels = r.cursor_image;
            self.cursor_stale = false;
        }
        self.pointer.drawn_at = None;
        let mut cursor_rect = None;
        if let (Some(p), Some(img)) = (fetched.pointer, &self.cursor) {
            if p.same_screen {
                let (x, y) = (p.root_x.into(), p.root_y.into());
                img.blend_into(dst, row, fw, fh, x, y);
                self.pointer.drawn_at = Some((p.root_x, p.root_y));
                cursor_rect = Some(img.rect(fw, fh, x, y)).filter(|r| !r.is_empty());
            }
        }
        self.pointer.raw_motion = false;
        self.pointer.next_poll = Instant::now() + self.pointer.interval();
        self.damaged = false;
        self.cursor_changed = false;
        self.sequence += 1;
        let damage = self.tracker.frame_done(self.sequence, cursor_rect);
        out.captured_at = fetched.captured_at;
        out.sequence = self.sequence;
        out.damage = damage;
        Ok(CaptureStatus::Frame)
    }

    /// The rectangles a buffer holding frame `held` lacks (`None`: fetch the whole root,
    /// as always without MIT-SHM).
    fn region_for(&self, held: u64) -> Option<RectSet> {
        if !matches!(self.grab, Grab::Shm { .. }) {
            return None;
        }
        self.tracker.region_for(held, self.width, self.height)
    }

    fn bad_size(&self, got: usize, expected: usize) -> CaptureError {
        CaptureError::UnsupportedFormat {
            display: self.display.clone(),
            detail: format!(
                "image of {got} bytes for {}x{} (expected {expected})",
                self.width, self.height
            ),
        }
    }
}

impl Drop for X11Capturer {
    fn drop(&mut self) {
        // The server frees all of this when the connection closes; say so explicitly anyway
        // and note (not fail) if the connection is already gone.
        let result = (|| {
            if let Grab::Shm { xid, .. } = self.grab {
                self.conn.shm_detach(xid)?;
            }
            self.conn.damage_destroy(self.damage)?;
            self.conn.flush()
        })();
        if let Err(e) = result {
            tracing::debug!(
                display = %self.display,
                error = %e,
                "capture cleanup on a closed connection"
            );
        }
    }
}

/// Damage arriving closer together than this is one burst of drawing: the grab waits for the
/// rest of it (at most [`SETTLE_MAX`]).
pub const SETTLE_GAP: Duration = Duration::from_micros(250);
/// The longest a burst of drawing is waited for.
pub const SETTLE_MAX: Duration = Duration::from_millis(2);

/// Most strips one SHM grab is split into (see [`X11Capturer::fetch`]).
const MAX_STRIPS: usize = 8;
/// Image bytes per strip (below this, one request).
const STRIP_BYTES: usize = 1 << 20;

/// How many strips an image of `bytes` is grabbed in: about one per [`STRIP_BYTES`].
fn strip_count(bytes: usize) -> usize {
    (bytes / STRIP_BYTES).clamp(1, MAX_STRIPS)
}

/// Copies rows of `row` bytes from `src` (rows `src_stride` apart) into packed `dst`.
fn copy_rows(dst: &mut [u8], row: usize, src: &[u8], src_stride: usize) {
    if src_stride == row {
        dst.copy_from_slice(&src[..dst.len()]);
    } else {
        for (d, s) in dst.chunks_exact_mut(row).zip(src.chunks(src_stride)) {
            d.copy_from_slice(&s[..row]);
        }
    }
}

/// Bytes per row of a 32-bit image `width` pixels wide with rows padded to `pad` bits.
fn stride_for(width: u32, pad: usize) -> usize {
    (width as usize * 32).div_ceil(pad) * pad / 8
}

/// Checks that root images are 32 bits per pixel BGRX (little-endian, 8-bit channels) and
/// returns the scanline padding in bits.
fn check_format(setup: &xproto::Setup, screen: &xproto::Screen) -> Result<usize, String> {
    let depth = screen.root_depth;
    if depth != 24 && depth != 32 {
        return Err(format!("root depth {depth}, need 24 or 32"));
    }
    let format = setup
        .pixmap_formats
        .iter()
        .find(|f| f.depth == depth)
        .ok_or_else(|| format!("no pixmap format for depth {depth}"))?;
    if format.bits_per_pixel != 32 {
        return Err(format!("{} bits per pixel, need 32", format.bits_per_pixel));
    }
    if setup.image_byte_order != xproto::ImageOrder::LSB_FIRST {
        return Err("big-endian image byte order".into());
    }
    let visual = screen
        .allowed_depths
        .iter()
        .flat_map(|d| d.visuals.iter())
        .find(|v| v.visual_id == screen.root_visual)
        .ok_or("root visual not found")?;
    if (visual.red_mask, visual.green_mask, visual.blue_mask) != (0xff0000, 0xff00, 0xff) {
        return Err(format!(
            "channel masks {:#x}/{:#x}/{:#x}, need 0xff0000/0xff00/0xff",
            visual.red_mask, visual.green_mask, visual.blue_mask
        ));
    }
    Ok(usize::from(format.scanline_pad).max(8))
}
