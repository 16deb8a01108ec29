//! Input injection latency on a private Xvfb (1280x720): for each kind of input, the time
//! until the `Injector` call returns (requests queued and flushed to the X socket) and until
//! an X client — a full-screen window with the focus in this process, on its own connection —
//! has received the event.
//!
//! ```text
//! cargo run --release -p edgedesk-host --example inject_timings [-- EVENTS]
//! ```

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use edgedesk_host::display::{DisplayOptions, VirtualDisplay};
use edgedesk_host::input::inject::Injector;
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ConnectionExt as _, CreateWindowAux, EventMask, InputFocus, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

const WIDTH: u16 = 1280;
const HEIGHT: u16 = 720;

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn summary(mut t: Vec<Duration>) -> String {
    t.sort_unstable();
    let p = |q: f64| us(t[((t.len() - 1) as f64 * q).round() as usize]);
    format!(
        "p50 {:7.1}  p99 {:7.1}  max {:7.1} µs",
        p(0.5),
        p(0.99),
        p(1.0)
    )
}

/// A full-screen window with the keyboard focus that receives key and motion events.
fn receiver(display: &str) -> Result<RustConnection> {
    let (conn, screen_num) = RustConnection::connect(Some(display))?;
    let root = conn.setup().roots[screen_num].root;
    let window = conn.generate_id()?;
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        window,
        root,
        0,
        0,
        WIDTH,
        HEIGHT,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new().override_redirect(1).event_mask(
            EventMask::KEY_PRESS
                | EventMask::KEY_RELEASE
                | EventMask::BUTTON_PRESS
                | EventMask::BUTTON_RELEASE
                | EventMask::POINTER_MOTION,
        ),
    )?
    .check()?;
    conn.map_window(window)?.check()?;
    conn.set_input_focus(InputFocus::PARENT, window, x11rb::CURRENT_TIME)?
        .check()?;
    Ok(conn)
}

/// Waits for the next input event that `accept` takes, skipping others.
fn wait_for(conn: &RustConnection, accept: impl Fn(&Event) -> bool) -> Result<()> {
    loop {
        let event = conn.wait_for_event()?;
        if let Event::Error(e) = event {
            bail!("X error: {e:?}");
        }
        if accept(&event) {
            return Ok(());
        }
    }
}

struct Series {
    name: &'static str,
    call: Vec<Duration>,
    received: Vec<Duration>,
}

/// Runs `inject(i)` `n` times (after a warm-up), each time waiting until the receiver has the
/// event `accept` takes.
fn measure(
    name: &'static str,
    n: usize,
    rx: &RustConnection,
    mut inject: impl FnMut(usize) -> Result<()>,
    accept: impl Fn(&Event) -> bool,
) -> Result<Series> {
    let mut s = Series {
        name,
        call: Vec::with_capacity(n),
        received: Vec::with_capacity(n),
    };
    for i in 0..n + 50 {
        let t0 = Instant::now();
        inject(i)?;
        let t1 = Instant::now();
        wait_for(rx, &accept).with_context(|| format!("{name}: event {i}"))?;
        let t2 = Instant::now();
        if i >= 50 {
            s.call.push(t1 - t0);
            s.received.push(t2 - t0);
        }
    }
    Ok(s)
}

fn main() -> Result<()> {
    let n: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(1000);
    let display = VirtualDisplay::start(DisplayOptions {
        width: u32::from(WIDTH),
        height: u32::from(HEIGHT),
        ..Default::default()
    })?;
    let rx = receiver(&display.name())?;
    let inj = std::cell::RefCell::new(Injector::connect(&display.name())?);
    let is_key = |e: &Event| matches!(e, Event::KeyPress(_) | Event::KeyRelease(_));
    let is_press = |e: &Event| matches!(e, Event::KeyPress(_));

    let mut all = vec![
        measure(
            "key() down/up",
            n,
            &rx,
            |i| Ok(inj.borrow_mut().key("KeyA", i % 2 == 0)?),
            is_key,
        )?,
        measure(
            "pointer_abs()",
            n,
            &rx,
            |i| {
                let x = 100 + (i % 2) as u32 * 10;
                inj.borrow_mut().pointer_abs(x, 50, 640, 360)?;
                Ok(())
            },
            |e| matches!(e, Event::MotionNotify(_)),
        )?,
        measure(
            "button() down/up",
            n,
            &rx,
            |i| Ok(inj.borrow_mut().button(0, i % 2 == 0)?),
            |e| matches!(e, Event::ButtonPress(_) | Event::ButtonRelease(_)),
        )?,
    ];
    // text(): one character per call; the press arrives first, the release is skipped.
    all.push(measure(
        "text(\"x\") keymap",
        n,
        &rx,
        |_| Ok(inj.borrow_mut().text("x")?),
        is_press,
    )?);
    all.push(measure(
        "text(\"ж\") spare",
        n,
        &rx,
        |_| Ok(inj.borrow_mut().text("ж")?),
        is_press,
    )?);
    inj.borrow_mut().release_all()?;

    println!("{n} events each, Xvfb {WIDTH}x{HEIGHT}; call = until the call returned (flushed), received = until the X client read the event");
    for s in all {
        println!("{:18} call     {}", s.name, summary(s.call));
        println!("{:18} received {}", "", summary(s.received));
    }
    Ok(())
}
