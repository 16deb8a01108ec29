//! Display lifecycle against real X servers: start, apps, clean stop (no zombies, no lock
//! files), number clashes, and capture across an Xorg-dummy resize.
//!
//! Needs `Xvfb`, `xterm`, `openbox`, `xrandr`, and Xorg with the dummy driver
//! (scripts/setup.sh installs them all).

use std::path::Path;
use std::time::{Duration, Instant};

use codec::{PixelFormat, VideoFrame};
use edgedesk_host::capture::{CaptureStatus, X11Capturer};
use edgedesk_host::display::{DisplayError, DisplayKind, DisplayOptions, VirtualDisplay};

fn start(kind: DisplayKind, width: u32, height: u32) -> VirtualDisplay {
    VirtualDisplay::start(DisplayOptions {
        width,
        height,
        kind,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("cannot start {kind:?}: {e}"))
}

/// `true` while `pid` exists at all (a zombie counts: it has not been reaped).
fn exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn gone_soon(pid: u32) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while exists(pid) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

#[test]
fn xvfb_with_desktop_apps_stops_cleanly() {
    let d = start(DisplayKind::Xvfb, 640, 480);
    let n = d.number();
    assert_eq!(d.name(), format!(":{n}"));
    assert_eq!(d.size(), (640, 480));
    assert!(Path::new(&format!("/tmp/.X{n}-lock")).exists());
    assert!(Path::new(&format!("/tmp/.X11-unix/X{n}")).exists());
    let server = d.server_pid();

    // The demo desktop, plus an app that starts a child of its own (killed with the group).
    let openbox = d.spawn_app("openbox", ["--sm-disable"]).unwrap();
    let xterm = d.spawn_app("xterm", ["-e", "sleep 600"]).unwrap();
    let shell = d.spawn_app("sh", ["-c", "sleep 600 & wait"]).unwrap();
    let pids = [openbox.id(), xterm.id(), shell.id()];
    std::thread::sleep(Duration::from_millis(700));
    for pid in pids {
        assert!(exists(pid), "app {pid} died early");
    }
    // Apps really are on this display.
    let mut cap = X11Capturer::connect(&d.name()).unwrap();
    let mut frame = VideoFrame::new(PixelFormat::Bgra, 1, 1);
    assert_eq!(
        cap.capture(&mut frame, Duration::ZERO, true).unwrap(),
        CaptureStatus::Frame
    );
    drop(cap);

    drop((openbox, xterm, shell)); // the display reaps what the caller did not wait for
    drop(d);
    assert!(
        gone_soon(server),
        "X server {server} left running or unreaped"
    );
    for pid in pids {
        assert!(gone_soon(pid), "app {pid} left running or unreaped");
    }
    assert!(
        !Path::new(&format!("/tmp/.X{n}-lock")).exists(),
        "lock file left"
    );
    assert!(
        !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists(),
        "socket left"
    );
}

#[test]
fn parallel_starts_get_distinct_numbers_and_taken_numbers_are_refused() {
    let displays: Vec<VirtualDisplay> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| s.spawn(|| start(DisplayKind::Xvfb, 160, 120)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut numbers: Vec<u32> = displays.iter().map(|d| d.number()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), 3);

    let err = VirtualDisplay::start(DisplayOptions {
        width: 160,
        height: 120,
        display: Some(displays[0].number()),
        ..Default::default()
    })
    .unwrap_err();
    assert!(matches!(err, DisplayError::InUse(_)), "{err}");
    assert!(err.to_string().contains("is in use"), "{err}");
}

/// Switches an Xorg-dummy display to `w`x`h` through the host's resize path (xrandr).
fn xrandr_mode(display: &str, w: u32, h: u32) {
    let applied = edgedesk_host::resize::resize_display(display, w, h)
        .unwrap_or_else(|e| panic!("resize {display} to {w}x{h}: {e}"));
    assert_eq!(applied, (w, h));
}

#[test]
fn xorg_dummy_resize_is_reported_and_captured() {
    let d = start(DisplayKind::XorgDummy, 1024, 768);
    assert_eq!(d.size(), (1024, 768));
    let mut cap = X11Capturer::connect(&d.name()).unwrap();
    assert!(cap.uses_shm());
    let mut frame = VideoFrame::new(PixelFormat::Bgra, 1024, 768);
    assert_eq!(
        cap.capture(&mut frame, Duration::ZERO, true).unwrap(),
        CaptureStatus::Frame
    );

    for (w, h) in [(800, 600), (1920, 1080), (1366, 768)] {
        xrandr_mode(&d.name(), w, h);
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            match cap
                .capture(&mut frame, Duration::from_millis(500), false)
                .unwrap()
            {
                CaptureStatus::Resized { width, height } => break (width, height),
                _ => assert!(Instant::now() < deadline, "no Resized for {w}x{h}"),
            }
        };
        assert_eq!(status, (w, h));
        assert_eq!(cap.size(), (w, h));
        // The next call captures at the new size (damage is pending after a resize).
        assert_eq!(
            cap.capture(&mut frame, Duration::from_secs(1), false)
                .unwrap(),
            CaptureStatus::Frame
        );
        assert_eq!((frame.width, frame.height), (w, h));
        assert_eq!(frame.planes[0].len(), (w * h * 4) as usize);
    }
}
