//! The stimulus: an X client that covers the screen and, every frame interval, draws the next
//! frame code (see [`crate::framecode`]) and moves a bar (so the encoder has real motion), then
//! records when the X server had the drawing (a round trip after the requests: the server
//! handles a client's requests in order). A click on it flips a large area between black and
//! white; the click's arrival and the flip's drawing are recorded too.
//!
//! Times are on the machine's monotonic clock ([`host::timing::mono_ns`]), the clock the host's
//! `/stats` uses, so the two line up when both run on one machine.
//!
//! ```text
//! ┌──────────────────────────────────────────────┐
//! │ ┌──────┐                                      │
//! │ │ code │      (grey)                          │
//! │ └──────┘                                      │
//! │                      ┌───────────────────────┐│
//! │   ▌ moving bar        │   click area          ││
//! │                      │   black ⇄ white        ││
//! │                      └───────────────────────┘│
//! └──────────────────────────────────────────────┘
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use host::timing::mono_ns;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    AtomEnum, ChangeGCAux, ClientMessageEvent, ConnectionExt, CreateGCAux, CreateWindowAux,
    EventMask, Rectangle, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

use crate::framecode::{self, Rect};

/// Where things are on a `width`×`height` screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    /// The frame code.
    pub code: Rect,
    /// The area a click flips between black and white.
    pub click: Rect,
    /// The band the moving bar runs along.
    pub bar: Rect,
}

impl Layout {
    pub fn new(width: u32, height: u32) -> Self {
        // A code of a third of the short side, in whole 8-pixel cells (≥ 16 px cells at
        // 360 lines and up); the click area is the lower right quarter.
        let side = (width.min(height) / 3 / 8 * 8).max(framecode::MIN_READ_SIZE);
        let m = side / 8;
        Layout {
            width,
            height,
            code: Rect::new(m, m, side, side),
            click: Rect::new(width / 2, height / 2, width / 2 - m, height / 2 - m),
            bar: Rect::new(m, height / 2, width / 2 - 2 * m, height / 2 - m),
        }
    }

    /// Where the viewer clicks: the middle of the click area.
    pub fn click_point(&self) -> (u32, u32) {
        (
            self.click.x + self.click.w / 2,
            self.click.y + self.click.h / 2,
        )
    }

    /// Where the viewer reads the click area's colour: away from the click point, where the
    /// host draws the mouse cursor into the picture.
    pub fn colour_point(&self) -> (u32, u32) {
        (
            self.click.x + self.click.w * 3 / 4,
            self.click.y + self.click.h * 3 / 4,
        )
    }
}

/// What the stimulus recorded.
#[derive(Debug, Default)]
pub struct Record {
    /// Frame code → when the X server had it drawn (ns, monotonic).
    pub drawn: HashMap<u32, u64>,
    /// Codes in drawing order, with their times (for "which code came next").
    pub order: Vec<(u32, u64)>,
    /// Clicks: (arrived at the stimulus, flip drawn, area now white).
    pub clicks: Vec<(u64, u64, bool)>,
    /// Frames that were drawn later than their slot (the stimulus itself fell behind).
    pub late: u64,
}

/// A running stimulus; dropping it stops it and destroys its window.
pub struct Stimulus {
    /// The X display it is shown on.
    pub display: String,
    pub layout: Layout,
    pub record: Arc<Mutex<Record>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    conn: Arc<RustConnection>,
    window: u32,
}

impl Stimulus {
    /// Covers `display` and starts drawing at `fps`; with `fps` 0 the code and the bar are
    /// drawn once and the screen stays still (only clicks change it: an idle desktop).
    pub fn start(display: &str, fps: u32) -> Result<Self> {
        Self::start_with(display, fps, false)
    }

    /// [`Stimulus::start`], and with `busy` a band of random grey blocks right of the code,
    /// redrawn every frame: content no encoder can compress (a video playing), so the stream
    /// uses whatever bitrate it is given.
    pub fn start_with(display: &str, fps: u32, busy: bool) -> Result<Self> {
        let (conn, screen) = RustConnection::connect(Some(display))
            .with_context(|| format!("stimulus: cannot open X display {display}"))?;
        let conn = Arc::new(conn);
        let s = &conn.setup().roots[screen];
        let (root, black, white) = (s.root, s.black_pixel, s.white_pixel);
        let (width, height) = (u32::from(s.width_in_pixels), u32::from(s.height_in_pixels));
        let layout = Layout::new(width, height);
        let window = conn.generate_id()?;
        conn.create_window(
            x11rb::COPY_DEPTH_FROM_PARENT,
            window,
            root,
            0,
            0,
            width as u16,
            height as u16,
            0,
            WindowClass::INPUT_OUTPUT,
            x11rb::COPY_FROM_PARENT,
            &CreateWindowAux::new()
                .override_redirect(1)
                .background_pixel(grey(&conn, screen))
                .event_mask(EventMask::BUTTON_PRESS | EventMask::EXPOSURE),
        )?
        .check()
        .context("stimulus: CreateWindow")?;
        conn.map_window(window)?.check()?;
        let gc = conn.generate_id()?;
        conn.create_gc(gc, window, &CreateGCAux::new().foreground(black))?
            .check()?;
        let record = Arc::new(Mutex::new(Record::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let colours = Colours {
            black,
            white,
            grey: grey(&conn, screen),
        };
        let painter = Painter {
            conn: conn.clone(),
            window,
            gc,
            layout,
            colours,
            click_white: Arc::new(AtomicBool::new(false)),
            busy,
        };
        painter.fill(layout.click, colours.black)?;
        painter.sync()?;
        let draw = {
            let (p, record, stop) = (painter.clone(), record.clone(), stop.clone());
            std::thread::Builder::new()
                .name("stimulus-draw".into())
                .spawn(move || {
                    if let Err(e) = p.draw_loop(fps, &record, &stop) {
                        eprintln!("stimulus: drawing stopped: {e:#}");
                    }
                })?
        };
        // The click thread draws with its own GC: colour changes of the two threads must not
        // interleave (a shared GC would sometimes fill the click area with the code's colour).
        let click_gc = conn.generate_id()?;
        conn.create_gc(click_gc, window, &CreateGCAux::new().foreground(black))?
            .check()?;
        let clicks = {
            let p = Painter {
                gc: click_gc,
                ..painter
            };
            let (record, stop) = (record.clone(), stop.clone());
            std::thread::Builder::new()
                .name("stimulus-click".into())
                .spawn(move || {
                    if let Err(e) = p.click_loop(&record, &stop) {
                        if !stop.load(Ordering::Relaxed) {
                            eprintln!("stimulus: click handling stopped: {e:#}");
                        }
                    }
                })?
        };
        Ok(Stimulus {
            display: display.to_owned(),
            layout,
            record,
            stop,
            threads: vec![draw, clicks],
            conn,
            window,
        })
    }
}

impl Drop for Stimulus {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the click thread out of wait_for_event (an event to our own window).
        let wake = ClientMessageEvent::new(32, self.window, AtomEnum::NONE, [0u32; 5]);
        let _ = self
            .conn
            .send_event(false, self.window, EventMask::NO_EVENT, wake);
        let _ = self.conn.flush();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let _ = self.conn.destroy_window(self.window);
        let _ = self.conn.flush();
    }
}

/// A mid grey (the background: neither code colour).
fn grey(conn: &RustConnection, screen: usize) -> u32 {
    let s = &conn.setup().roots[screen];
    // TrueColor 24-bit (Xvfb, Xorg): 0x808080.
    if s.root_depth >= 24 {
        0x0080_8080
    } else {
        s.white_pixel / 2
    }
}

#[derive(Clone, Copy)]
struct Colours {
    black: u32,
    white: u32,
    grey: u32,
}

#[derive(Clone)]
struct Painter {
    conn: Arc<RustConnection>,
    window: u32,
    gc: u32,
    layout: Layout,
    colours: Colours,
    click_white: Arc<AtomicBool>,
    busy: bool,
}

fn rect(r: Rect) -> Rectangle {
    Rectangle {
        x: r.x as i16,
        y: r.y as i16,
        width: r.w as u16,
        height: r.h as u16,
    }
}

impl Painter {
    fn fill(&self, r: Rect, colour: u32) -> Result<()> {
        self.fill_all(&[r], colour)
    }

    fn fill_all(&self, rects: &[Rect], colour: u32) -> Result<()> {
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(colour))?;
        let rs: Vec<Rectangle> = rects.iter().copied().map(rect).collect();
        self.conn.poly_fill_rectangle(self.window, self.gc, &rs)?;
        Ok(())
    }

    /// The busy band: 16-pixel blocks in one of eight greys, chosen at random each frame.
    fn noise(&self, state: &mut u64) -> Result<()> {
        const BLOCK: u32 = 16;
        let l = self.layout;
        let x0 = l.code.x + l.code.w + l.code.x;
        let (w, h) = (l.width.saturating_sub(x0 + l.code.x), l.code.h);
        let mut by_grey: Vec<Vec<Rect>> = vec![Vec::new(); 8];
        for by in 0..h / BLOCK {
            for bx in 0..w / BLOCK {
                *state ^= *state << 13;
                *state ^= *state >> 7;
                *state ^= *state << 17;
                by_grey[(*state >> 61) as usize].push(Rect::new(
                    x0 + bx * BLOCK,
                    l.code.y + by * BLOCK,
                    BLOCK,
                    BLOCK,
                ));
            }
        }
        for (k, rects) in by_grey.iter().enumerate() {
            let v = 0x10 + 0x1c * k as u32;
            self.fill_all(rects, v << 16 | v << 8 | v)?;
        }
        Ok(())
    }

    /// A round trip: when it returns, the server has executed every earlier request.
    fn sync(&self) -> Result<u64> {
        self.conn.get_input_focus()?.reply()?;
        Ok(mono_ns())
    }

    fn draw_loop(&self, fps: u32, record: &Mutex<Record>, stop: &AtomicBool) -> Result<()> {
        let still = fps == 0;
        let interval = Duration::from_secs_f64(1.0 / f64::from(fps.max(1)));
        let l = self.layout;
        let bar_w = (l.bar.w / 16).max(4);
        let mut next = Instant::now();
        let mut code: u32 = 1;
        let mut bar_x = 0u32;
        let mut noise_state = 0x2545_f491_4f6c_dd1du64;
        while !stop.load(Ordering::Relaxed) {
            // The code: black background, white cells.
            self.fill(l.code, self.colours.black)?;
            self.fill_all(&framecode::white_rects(l.code, code), self.colours.white)?;
            // The moving bar: erase the old one, draw the new one.
            let old = Rect::new(l.bar.x + bar_x, l.bar.y, bar_w, l.bar.h);
            bar_x = (bar_x + bar_w / 2) % (l.bar.w - bar_w);
            let new = Rect::new(l.bar.x + bar_x, l.bar.y, bar_w, l.bar.h);
            self.fill(old, self.colours.grey)?;
            self.fill(new, self.colours.white)?;
            if self.busy {
                self.noise(&mut noise_state)?;
            }
            let drawn = self.sync()?;
            {
                let mut r = record.lock().unwrap();
                r.drawn.insert(code, drawn);
                r.order.push((code, drawn));
            }
            if still {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                break;
            }
            code = code.wrapping_add(1);
            next += interval;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                record.lock().unwrap().late += 1;
                if now - next > interval * 4 {
                    next = now; // far behind: start the schedule again
                }
            }
        }
        Ok(())
    }

    fn click_loop(&self, record: &Mutex<Record>, stop: &AtomicBool) -> Result<()> {
        while !stop.load(Ordering::Relaxed) {
            match self.conn.wait_for_event()? {
                Event::ButtonPress(_) => {
                    let arrived = mono_ns();
                    let white = !self.click_white.load(Ordering::Relaxed);
                    self.click_white.store(white, Ordering::Relaxed);
                    let colour = if white {
                        self.colours.white
                    } else {
                        self.colours.black
                    };
                    self.fill(self.layout.click, colour)?;
                    let drawn = self.sync()?;
                    record.lock().unwrap().clicks.push((arrived, drawn, white));
                }
                Event::Expose(_) => {
                    let colour = if self.click_white.load(Ordering::Relaxed) {
                        self.colours.white
                    } else {
                        self.colours.black
                    };
                    self.fill(self.layout.click, colour)?;
                    self.conn.flush()?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_fit_the_screen_and_do_not_overlap() {
        for (w, h) in [
            (640, 360),
            (1280, 720),
            (1920, 1080),
            (3840, 2160),
            (7680, 4320),
        ] {
            let l = Layout::new(w, h);
            for r in [l.code, l.click, l.bar] {
                assert!(r.x + r.w <= w && r.y + r.h <= h, "{w}x{h}: {r:?}");
                assert!(r.w > 0 && r.h > 0);
            }
            assert!(
                l.code.w >= 120 && l.code.w % 8 == 0,
                "{w}x{h}: {:?}",
                l.code
            );
            assert!(
                l.code.y + l.code.h <= l.click.y,
                "code above the click area"
            );
            assert!(l.bar.x + l.bar.w <= l.click.x, "bar left of the click area");
            let (cx, cy) = l.click_point();
            assert!(cx > l.click.x && cy > l.click.y);
            let (px, py) = l.colour_point();
            assert!(px >= cx + 16 && py >= cy + 16 && px + 8 < w && py + 8 < h);
        }
    }
}
