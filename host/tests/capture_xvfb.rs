//! X11 capture against a real Xvfb (no mocks): pixels of a painted rectangle, damage-driven
//! frames, `Unchanged` on a static screen, the cursor, and the privacy of the SHM segment.
//!
//! Needs `Xvfb` (scripts/setup.sh installs it). Tests here run one at a time (`SERIAL`): the
//! SHM test counts this process's segments.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use codec::{PixelFormat, VideoFrame};
use edgedesk_host::capture::{CaptureStatus, X11Capturer};
use edgedesk_host::display::{DisplayError, DisplayOptions, VirtualDisplay};
use x11rb::connection::Connection;
use x11rb::protocol::xtest::ConnectionExt as _;

static SERIAL: Mutex<()> = Mutex::new(());

const RED: [u8; 3] = [0, 0, 255]; // B, G, R
const BLUE: [u8; 3] = [255, 0, 0];

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn xvfb(width: u32, height: u32) -> VirtualDisplay {
    VirtualDisplay::start(DisplayOptions {
        width,
        height,
        ..Default::default()
    })
    .unwrap_or_else(|e| panic!("cannot start Xvfb: {e}"))
}

/// A running `edgedesk-paint`.
struct Paint {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
}

impl Paint {
    fn start(d: &VirtualDisplay, rect: (i32, i32, u32, u32), color: &str) -> Paint {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgedesk-paint"));
        cmd.arg("--display")
            .arg(d.name())
            .arg("--rect")
            .arg(format!("{},{},{},{}", rect.0, rect.1, rect.2, rect.3))
            .args(["--color", color])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = d.spawn_command(&mut cmd).expect("start edgedesk-paint");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut p = Paint {
            child,
            stdin,
            lines,
        };
        p.expect("READY");
        p
    }

    fn expect(&mut self, want: &str) {
        let got = self
            .lines
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("edgedesk-paint: no {want:?} ({e})"));
        assert_eq!(got, want);
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to edgedesk-paint");
        self.stdin.flush().unwrap();
    }
}

impl Drop for Paint {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        let _ = self.child.wait();
    }
}

fn bgr(f: &VideoFrame, x: u32, y: u32) -> [u8; 3] {
    let p = f.bgra_at(x, y).expect("pixel inside the frame");
    [p[0], p[1], p[2]]
}

/// Captures until a frame arrives (damage may take a moment to be reported).
fn next_frame(cap: &mut X11Capturer, out: &mut VideoFrame) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match cap.capture(out, Duration::from_millis(500), false).unwrap() {
            CaptureStatus::Frame => return,
            CaptureStatus::Unchanged => assert!(Instant::now() < deadline, "no frame within 5 s"),
            s => panic!("unexpected {s:?}"),
        }
    }
}

/// Captures until the screen is quiet (a call returns `Unchanged`).
fn settle(cap: &mut X11Capturer, out: &mut VideoFrame) {
    for _ in 0..20 {
        if cap.capture(out, Duration::from_millis(200), false).unwrap() == CaptureStatus::Unchanged
        {
            return;
        }
    }
    panic!("the screen never became quiet");
}

/// Moves the pointer with XTest (as input injection will).
fn warp_pointer(display: &str, x: i16, y: i16) {
    let (conn, screen) = x11rb::connect(Some(display)).unwrap();
    let root = conn.setup().roots[screen].root;
    conn.xtest_fake_input(
        x11rb::protocol::xproto::MOTION_NOTIFY_EVENT,
        0,
        0,
        root,
        x,
        y,
        0,
    )
    .unwrap()
    .check()
    .unwrap();
}

#[test]
fn painted_rect_then_damage_then_unchanged() {
    let _s = serial();
    let d = xvfb(320, 240);
    // Keep the cursor (Xvfb starts it mid-screen) away from the sampled pixels.
    warp_pointer(&d.name(), 300, 220);
    let mut paint = Paint::start(&d, (20, 30, 100, 80), "FF0000");
    let mut cap = X11Capturer::connect(&d.name()).unwrap();
    assert_eq!(cap.size(), (320, 240));
    assert!(cap.uses_shm(), "MIT-SHM should be used on a local Xvfb");

    // A wrong-sized frame is reallocated to the screen size.
    let mut frame = VideoFrame::new(PixelFormat::I420, 2, 2);
    next_frame(&mut cap, &mut frame);
    assert_eq!(
        (frame.format, frame.width, frame.height),
        (PixelFormat::Bgra, 320, 240)
    );
    assert_eq!(frame.strides, vec![320 * 4]);
    for (x, y) in [(20, 30), (119, 109), (70, 70)] {
        assert_eq!(bgr(&frame, x, y), RED, "inside the rect at ({x},{y})");
    }
    for (x, y) in [(19, 30), (120, 109), (70, 29), (70, 110), (200, 100)] {
        assert_ne!(bgr(&frame, x, y), RED, "outside the rect at ({x},{y})");
    }
    let first_seq = frame.sequence;
    settle(&mut cap, &mut frame);

    // Damage makes a new frame.
    paint.send("color 0000FF");
    paint.expect("PAINTED");
    let before = Instant::now();
    next_frame(&mut cap, &mut frame);
    assert!(frame.sequence > first_seq);
    assert!(frame.captured_at >= before);
    assert_eq!(bgr(&frame, 70, 70), BLUE);
    assert_ne!(bgr(&frame, 200, 100), BLUE);

    // A move damages too, and the old place is repainted.
    paint.send("move 150,100");
    paint.send("sync");
    paint.expect("SYNCED");
    next_frame(&mut cap, &mut frame);
    settle(&mut cap, &mut frame);
    let mut frame2 = VideoFrame::new(PixelFormat::Bgra, 320, 240);
    assert_eq!(
        cap.capture(&mut frame2, Duration::ZERO, true).unwrap(),
        CaptureStatus::Frame
    );
    assert_eq!(bgr(&frame2, 160, 110), BLUE);
    assert_ne!(bgr(&frame2, 30, 40), BLUE);

    // A static screen: Unchanged, after about the timeout, leaving the frame alone.
    let seq = frame2.sequence;
    let t = Instant::now();
    let status = cap
        .capture(&mut frame2, Duration::from_millis(300), false)
        .unwrap();
    let waited = t.elapsed();
    assert_eq!(status, CaptureStatus::Unchanged);
    assert!(
        waited >= Duration::from_millis(290),
        "returned early: {waited:?}"
    );
    assert!(
        waited < Duration::from_millis(1000),
        "returned late: {waited:?}"
    );
    assert_eq!(frame2.sequence, seq);
    assert!(!cap.damage_pending().unwrap());

    // `force` captures a static screen at once.
    let t = Instant::now();
    assert_eq!(
        cap.capture(&mut frame2, Duration::from_secs(5), true)
            .unwrap(),
        CaptureStatus::Frame
    );
    assert!(t.elapsed() < Duration::from_millis(200));
    assert_eq!(frame2.sequence, seq + 1);
}

#[test]
fn cursor_motion_makes_frames_and_is_drawn() {
    let _s = serial();
    let d = xvfb(320, 240);
    let _paint = Paint::start(&d, (0, 0, 320, 240), "FF0000");
    warp_pointer(&d.name(), 300, 220);
    let mut cap = X11Capturer::connect(&d.name()).unwrap();
    let mut frame = VideoFrame::new(PixelFormat::Bgra, 320, 240);
    next_frame(&mut cap, &mut frame);
    settle(&mut cap, &mut frame);

    // Moving the pointer alone, on a static screen, produces a frame soon: at once through
    // XInput 2 raw motion events (Xvfb has them), not after a poll interval.
    assert!(
        cap.pointer_events(),
        "XInput 2 raw motion should be available on Xvfb"
    );
    let mut latencies = Vec::new();
    for (x, y) in [(10, 10), (200, 30), (100, 100)] {
        std::thread::sleep(Duration::from_millis(20));
        warp_pointer(&d.name(), x, y);
        let t = Instant::now();
        assert_eq!(
            cap.capture(&mut frame, Duration::from_secs(2), false)
                .unwrap(),
            CaptureStatus::Frame
        );
        latencies.push(t.elapsed());
    }
    // Polling alone (every 50 ms with XInput 2) would give 0-50 ms; events give ~0.3 ms.
    let mut sorted = latencies.clone();
    sorted.sort();
    assert!(
        sorted[1] < Duration::from_millis(15) && sorted[2] < Duration::from_millis(40),
        "cursor moves seen after {latencies:?}"
    );

    // The sprite is drawn around the hotspot (the window is all red; the cursor is not).
    let around = (-8i32..=8).flat_map(|dy| (-8i32..=8).map(move |dx| (dx, dy)));
    let not_red = around
        .filter(|&(dx, dy)| bgr(&frame, (100 + dx) as u32, (100 + dy) as u32) != RED)
        .count();
    assert!(
        not_red > 10,
        "cursor not drawn ({not_red} non-red pixels near the hotspot)"
    );
    // ... and not elsewhere.
    assert_eq!(bgr(&frame, 250, 50), RED);

    // Turned off, the cursor is not drawn and its motion is no reason for a frame.
    cap.set_draw_cursor(false);
    assert_eq!(
        cap.capture(&mut frame, Duration::ZERO, true).unwrap(),
        CaptureStatus::Frame
    );
    assert_eq!(bgr(&frame, 100, 100), RED);
    warp_pointer(&d.name(), 50, 50);
    assert_eq!(
        cap.capture(&mut frame, Duration::from_millis(200), false)
            .unwrap(),
        CaptureStatus::Unchanged
    );
}

/// `/proc/sysvipc/shm` rows created by this process: (shmid, perms).
fn our_segments() -> Vec<(u64, u32)> {
    let me = std::process::id().to_string();
    let text = std::fs::read_to_string("/proc/sysvipc/shm").expect("read /proc/sysvipc/shm");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (id, perms, cpid) = (col("shmid"), col("perms"), col("cpid"));
    lines
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f[cpid] == me)
        .map(|f| {
            (
                f[id].parse().unwrap(),
                u32::from_str_radix(f[perms], 8).unwrap(),
            )
        })
        .collect()
}

#[test]
fn shm_segment_is_private_and_removed() {
    let _s = serial();
    let d = xvfb(64, 64);
    let before = our_segments();
    let mut cap = X11Capturer::connect(&d.name()).unwrap();
    assert!(cap.uses_shm());
    let mut frame = VideoFrame::new(PixelFormat::Bgra, 64, 64);
    cap.capture(&mut frame, Duration::ZERO, true).unwrap();
    let ours: Vec<_> = our_segments()
        .into_iter()
        .filter(|s| !before.contains(s))
        .collect();
    assert_eq!(ours.len(), 1, "one segment per capturer: {ours:?}");
    for (id, perms) in &ours {
        assert_eq!(perms & 0o777, 0o600, "segment {id} has mode {perms:o}");
        // SHM_DEST (0o1000): IPC_RMID done, gone with the last detach.
        assert_ne!(
            perms & 0o1000,
            0,
            "segment {id} not marked for removal ({perms:o})"
        );
    }
    drop(cap);
    // The server detaches when it processes our disconnect.
    let deadline = Instant::now() + Duration::from_secs(5);
    while our_segments().iter().any(|s| ours.contains(s)) {
        assert!(Instant::now() < deadline, "segment still exists after drop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn absurd_display_options_are_errors() {
    for (width, height) in [
        (0, 0),
        (0, 600),
        (800, 0),
        (16385, 600),
        (800, 100_000),
        (1, 1),
    ] {
        let err = VirtualDisplay::start(DisplayOptions {
            width,
            height,
            ..Default::default()
        })
        .unwrap_err();
        assert!(matches!(err, DisplayError::InvalidSize { .. }), "{err}");
        assert!(err.to_string().contains("invalid display size"), "{err}");
    }
    let err = VirtualDisplay::start(DisplayOptions {
        depth: 8,
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("only 24"), "{err}");
}

#[test]
fn connecting_to_a_missing_display_is_a_clear_error() {
    let err = match X11Capturer::connect(":9876") {
        Ok(_) => panic!("connected to a display that should not exist"),
        Err(e) => e,
    };
    assert!(
        err.to_string().starts_with("cannot open X display :9876"),
        "{err}"
    );
}

/// Whole-root picture through plain `GetImage` on a connection of our own (no cursor), as
/// packed BGRX rows.
fn reference_image(conn: &impl Connection, root: u32, w: u16, h: u16) -> Vec<u8> {
    use x11rb::protocol::xproto::{ConnectionExt as _, ImageFormat};
    let reply = conn
        .get_image(ImageFormat::Z_PIXMAP, root, 0, 0, w, h, !0)
        .unwrap()
        .reply()
        .unwrap();
    reply.data
}

/// Pixels (x, y) where a captured BGRX frame and the reference differ (alpha ignored).
fn differing(frame: &VideoFrame, reference: &[u8]) -> Vec<(u32, u32)> {
    let w = frame.width as usize;
    let mut out = Vec::new();
    for (i, (a, b)) in frame.planes[0]
        .chunks_exact(4)
        .zip(reference.chunks_exact(4))
        .enumerate()
    {
        if a[..3] != b[..3] {
            out.push(((i % w) as u32, (i / w) as u32));
        }
    }
    out
}

/// Damage-following capture into a pool of three buffers (as the pipeline rotates them)
/// gives exactly the picture a whole grab gives, frame after frame of random drawing; each
/// frame says which rectangles changed (a small part of the screen), and the old cursor is
/// gone from a buffer that held it.
#[test]
fn damage_following_capture_equals_whole_grabs() {
    use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, Rectangle};
    let _s = serial();
    let (w, h) = (320u16, 240u16);
    let d = xvfb(w.into(), h.into());
    warp_pointer(&d.name(), 300, 220);
    let (conn, screen) = x11rb::connect(Some(&d.name())).unwrap();
    let root = conn.setup().roots[screen].root;
    let gc = conn.generate_id().unwrap();
    conn.create_gc(gc, root, &CreateGCAux::new()).unwrap();
    let mut cap = X11Capturer::connect(&d.name()).unwrap();
    cap.set_draw_cursor(false);
    let mut pool: Vec<VideoFrame> = (0..3)
        .map(|_| VideoFrame::new(PixelFormat::Bgra, w.into(), h.into()))
        .collect();
    let mut seed = 0x2545_f491u32;
    let mut rand = |n: u32| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        seed % n
    };
    let mut partial_frames = 0;
    for i in 0..40 {
        let mut drawn = Vec::new();
        for _ in 0..=rand(3) {
            let r = Rectangle {
                x: rand(u32::from(w) + 20) as i16 - 10,
                y: rand(u32::from(h) + 20) as i16 - 10,
                width: 1 + rand(60) as u16,
                height: 1 + rand(40) as u16,
            };
            let colour = rand(0xff_ffff);
            conn.change_gc(
                gc,
                &x11rb::protocol::xproto::ChangeGCAux::new().foreground(colour),
            )
            .unwrap();
            conn.poly_fill_rectangle(root, gc, &[r]).unwrap();
            drawn.push(r);
        }
        // The damage events reach the capturer before this round trip returns.
        conn.get_input_focus().unwrap().reply().unwrap();
        let frame = &mut pool[i % 3];
        assert_eq!(
            cap.capture(frame, Duration::from_secs(2), false).unwrap(),
            CaptureStatus::Frame
        );
        let reference = reference_image(&conn, root, w, h);
        let diff = differing(frame, &reference);
        assert!(
            diff.is_empty(),
            "frame {i} (buffer {}): {} pixels differ from a whole grab, first {:?}",
            i % 3,
            diff.len(),
            &diff[..diff.len().min(5)]
        );
        if let Some(damage) = &frame.damage {
            partial_frames += 1;
            assert_eq!(damage.since, frame.sequence - 1);
            let area: u64 = damage.rects.iter().map(|r| r.area()).sum();
            assert!(
                area < u64::from(w) * u64::from(h) / 2,
                "frame {i}: {damage:?}"
            );
            for r in &drawn {
                let r = codec::Rect::from_x11(r.x, r.y, r.width, r.height, w.into(), h.into());
                if r.is_empty() {
                    continue;
                }
                // Every drawn pixel is inside the reported rectangles.
                for (x, y) in [(r.x, r.y), (r.x + r.w - 1, r.y + r.h - 1)] {
                    let inside = |q: &codec::Rect| q.contains(&codec::Rect::new(x, y, 1, 1));
                    assert!(
                        damage.rects.iter().any(inside),
                        "frame {i}: ({x},{y}) not in {damage:?}"
                    );
                }
            }
        }
    }
    assert!(
        partial_frames >= 35,
        "only {partial_frames} of 40 frames said what changed"
    );
    // After an invalidation the whole root is grabbed and the change is unknown.
    cap.invalidate();
    let frame = &mut pool[0];
    cap.capture(frame, Duration::ZERO, true).unwrap();
    assert!(frame.damage.is_none());

    // With the cursor drawn: moving it leaves no sprite behind in any buffer of the pool.
    cap.set_draw_cursor(true);
    for (i, (x, y)) in [
        (50, 50),
        (250, 60),
        (120, 190),
        (280, 200),
        (200, 30),
        (30, 150),
    ]
    .into_iter()
    .enumerate()
    {
        warp_pointer(&d.name(), x, y);
        let frame = &mut pool[i % 3];
        assert_eq!(
            cap.capture(frame, Duration::from_secs(2), true).unwrap(),
            CaptureStatus::Frame
        );
        let reference = reference_image(&conn, root, w, h);
        let diff = differing(frame, &reference);
        // Only the sprite at the pointer differs (Xvfb's default cursor is 16x16).
        let stray: Vec<_> = diff
            .iter()
            .filter(|(px, py)| px.abs_diff(x as u32) > 24 || py.abs_diff(y as u32) > 24)
            .collect();
        assert!(
            stray.is_empty(),
            "move {i}: pixels differ away from the cursor: {:?}",
            &stray[..stray.len().min(5)]
        );
        assert!(!diff.is_empty(), "move {i}: cursor not drawn");
    }
}

/// An application draws a frame in several requests; the first one's damage wakes the
/// capture, and the rest, arriving within a fraction of a millisecond, land in the same frame
/// instead of a frame interval later.
#[test]
fn a_burst_of_drawing_lands_in_one_frame() {
    use x11rb::protocol::xproto::{ConnectionExt as _, CreateGCAux, Rectangle};
    let _s = serial();
    let d = xvfb(320, 240);
    warp_pointer(&d.name(), 300, 220);
    let mut cap = X11Capturer::connect(&d.name()).unwrap();
    cap.set_draw_cursor(false);
    let mut frame = VideoFrame::new(PixelFormat::Bgra, 320, 240);
    next_frame(&mut cap, &mut frame);
    settle(&mut cap, &mut frame);
    let mut whole = 0;
    for trial in 0..5u32 {
        let name = d.name();
        let colour = 0x10_20_30 * (trial + 1);
        let painter = std::thread::spawn(move || {
            let (conn, screen) = x11rb::connect(Some(&name)).unwrap();
            let root = conn.setup().roots[screen].root;
            let gc = conn.generate_id().unwrap();
            conn.create_gc(gc, root, &CreateGCAux::new().foreground(colour))
                .unwrap();
            conn.get_input_focus().unwrap().reply().unwrap();
            std::thread::sleep(Duration::from_millis(30));
            let fill = |x, y| {
                let r = Rectangle {
                    x,
                    y,
                    width: 20,
                    height: 20,
                };
                conn.poly_fill_rectangle(root, gc, &[r]).unwrap();
                conn.flush().unwrap();
            };
            fill(10, 10);
            std::thread::sleep(Duration::from_micros(60));
            fill(200, 150);
            conn.get_input_focus().unwrap().reply().unwrap();
        });
        assert_eq!(
            cap.capture(&mut frame, Duration::from_secs(2), false)
                .unwrap(),
            CaptureStatus::Frame
        );
        let want = [colour as u8, (colour >> 8) as u8, (colour >> 16) as u8];
        let (first, second) = (bgr(&frame, 15, 15), bgr(&frame, 205, 155));
        assert_eq!(first, want, "trial {trial}: the first rectangle is missing");
        whole += usize::from(second == want);
        painter.join().unwrap();
        settle(&mut cap, &mut frame);
    }
    // A descheduled painter may miss the window now and then; without the settling none
    // would make it.
    assert!(whole >= 3, "only {whole} of 5 frames held the whole burst");
}
