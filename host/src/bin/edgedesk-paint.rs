//! `edgedesk-paint`: a tiny X client for end-to-end tests. It shows one solid rectangle at an
//! exact place, so a test knows which pixels of a captured (or streamed) frame must have which
//! colour.
//!
//! ```text
//! edgedesk-paint --display :N --rect X,Y,W,H --color RRGGBB
//! ```
//!
//! The window is override-redirect (window managers leave it alone). Once it is mapped and
//! painted and the server has processed that (a round trip), `READY` is printed on stdout. Then
//! stdin takes one command per line:
//!
//! | command          | effect                                   | reply (stdout) |
//! |------------------|------------------------------------------|----------------|
//! | `color RRGGBB`   | repaint in that colour                   | `PAINTED`      |
//! | `move X,Y`       | move the window                          | none           |
//! | `sync`           | round trip (everything before it is in)  | `SYNCED`       |
//! | `quit` / EOF     | exit                                     | none           |
//!
//! Replies are printed after a round trip, i.e. once the server has executed the drawing.
//! Bad commands print `ERROR <reason>` on stderr and are otherwise ignored. Exposed parts are
//! repainted.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use x11rb::connection::Connection;
use x11rb::protocol::xproto::{
    ChangeGCAux, ChangeWindowAttributesAux, ConfigureWindowAux, ConnectionExt, CreateGCAux,
    CreateWindowAux, EventMask, Rectangle, WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

struct Args {
    display: String,
    rect: (i16, i16, u16, u16),
    color: u32,
}

fn parse_color(s: &str) -> Result<u32> {
    let s = s.trim_start_matches('#');
    if s.len() != 6 {
        bail!("colour must be RRGGBB, got {s:?}");
    }
    u32::from_str_radix(s, 16).with_context(|| format!("colour must be RRGGBB hex, got {s:?}"))
}

fn parse_ints<const N: usize>(s: &str, what: &str) -> Result<[i64; N]> {
    let parts: Vec<i64> = s
        .split(',')
        .map(|p| p.trim().parse::<i64>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{what} must be {N} comma-separated integers, got {s:?}"))?;
    parts
        .try_into()
        .map_err(|_| anyhow::anyhow!("{what} must be {N} comma-separated integers, got {s:?}"))
}

fn parse_pos(s: &str) -> Result<(i16, i16)> {
    let [x, y] = parse_ints::<2>(s, "position")?;
    Ok((i16::try_from(x)?, i16::try_from(y)?))
}

fn parse_args() -> Result<Args> {
    let mut display = std::env::var("DISPLAY").ok();
    let mut rect = None;
    let mut color = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--display" => display = Some(value()?),
            "--rect" => {
                let [x, y, w, h] = parse_ints::<4>(&value()?, "--rect")?;
                if w <= 0 || h <= 0 {
                    bail!("--rect width and height must be positive");
                }
                rect = Some((
                    i16::try_from(x)?,
                    i16::try_from(y)?,
                    u16::try_from(w)?,
                    u16::try_from(h)?,
                ));
            }
            "--color" => color = Some(parse_color(&value()?)?),
            "-h" | "--help" => {
                println!("usage: edgedesk-paint --display :N --rect X,Y,W,H --color RRGGBB");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?} (see --help)"),
        }
    }
    Ok(Args {
        display: display.context("--display is required (or set DISPLAY)")?,
        rect: rect.context("--rect X,Y,W,H is required")?,
        color: color.context("--color RRGGBB is required")?,
    })
}

/// The X side: one window, one GC.
struct Painter {
    conn: RustConnection,
    window: u32,
    gc: u32,
    size: (u16, u16),
    /// Current colour as a 0xRRGGBB value.
    color: AtomicU32,
    /// The screen's pixel channel masks (TrueColor) for turning RRGGBB into a pixel.
    masks: (u32, u32, u32),
}

impl Painter {
    fn pixel(&self, rgb: u32) -> u32 {
        // Scale each 8-bit channel into its mask (identity for the usual 24-bit visual).
        let chan = |v: u32, mask: u32| {
            if mask == 0 {
                return 0;
            }
            let bits = mask.count_ones();
            let v = if bits >= 8 {
                v << (bits - 8)
            } else {
                v >> (8 - bits)
            };
            (v << mask.trailing_zeros()) & mask
        };
        let (r, g, b) = ((rgb >> 16) & 0xff, (rgb >> 8) & 0xff, rgb & 0xff);
        chan(r, self.masks.0) | chan(g, self.masks.1) | chan(b, self.masks.2)
    }

    /// Fills the whole window with the current colour (also its background, so exposures that
    /// the server paints itself have it too).
    fn paint(&self) -> Result<()> {
        let pixel = self.pixel(self.color.load(Ordering::Acquire));
        self.conn.change_window_attributes(
            self.window,
            &ChangeWindowAttributesAux::new().background_pixel(pixel),
        )?;
        self.conn
            .change_gc(self.gc, &ChangeGCAux::new().foreground(pixel))?;
        self.conn.poly_fill_rectangle(
            self.window,
            self.gc,
            &[Rectangle {
                x: 0,
                y: 0,
                width: self.size.0,
                height: self.size.1,
            }],
        )?;
        Ok(())
    }

    /// Round trip: the server has executed everything sent before.
    fn sync(&self) -> Result<()> {
        self.conn.get_input_focus()?.reply()?;
        Ok(())
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    // A closed stdout means the test is gone; exit quietly then.
    if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
        std::process::exit(0);
    }
}

fn commands(p: &Painter) -> Result<()> {
    for line in std::io::stdin().lock().lines() {
        let line = line.context("reading stdin")?;
        let mut words = line.split_whitespace();
        let result = match (words.next(), words.next()) {
            (None, _) => Ok(()),
            (Some("quit"), _) => return Ok(()),
            (Some("color"), Some(c)) => parse_color(c).and_then(|c| {
                p.color.store(c, Ordering::Release);
                p.paint()?;
                p.sync()?;
                say("PAINTED");
                Ok(())
            }),
            (Some("move"), Some(pos)) => parse_pos(pos).and_then(|(x, y)| {
                p.conn.configure_window(
                    p.window,
                    &ConfigureWindowAux::new().x(i32::from(x)).y(i32::from(y)),
                )?;
                p.conn.flush()?;
                Ok(())
            }),
            (Some("sync"), _) => p.sync().map(|()| say("SYNCED")),
            (Some(cmd), _) => Err(anyhow::anyhow!("unknown or incomplete command {cmd:?}")),
        };
        if let Err(e) = result {
            if e.downcast_ref::<x11rb::errors::ConnectionError>().is_some()
                || e.downcast_ref::<x11rb::errors::ReplyError>().is_some()
            {
                return Err(e);
            }
            eprintln!("ERROR {e:#}");
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let (conn, screen_num) = RustConnection::connect(Some(&args.display))
        .with_context(|| format!("cannot open X display {}", args.display))?;
    let screen = &conn.setup().roots[screen_num];
    let visual = screen
        .allowed_depths
        .iter()
        .flat_map(|d| d.visuals.iter())
        .find(|v| v.visual_id == screen.root_visual)
        .context("root visual not found")?;
    let masks = (visual.red_mask, visual.green_mask, visual.blue_mask);
    let root = screen.root;
    let window = conn.generate_id()?;
    let gc = conn.generate_id()?;
    let (x, y, w, h) = args.rect;
    let painter = Painter {
        window,
        gc,
        size: (w, h),
        color: AtomicU32::new(args.color),
        masks,
        conn,
    };
    let pixel = painter.pixel(args.color);
    let conn = &painter.conn;
    conn.create_window(
        x11rb::COPY_DEPTH_FROM_PARENT,
        window,
        root,
        x,
        y,
        w,
        h,
        0,
        WindowClass::INPUT_OUTPUT,
        x11rb::COPY_FROM_PARENT,
        &CreateWindowAux::new()
            .override_redirect(1)
            .background_pixel(pixel)
            .event_mask(EventMask::EXPOSURE),
    )?
    .check()
    .context("CreateWindow")?;
    conn.create_gc(
        gc,
        window,
        &CreateGCAux::new().foreground(pixel).graphics_exposures(0),
    )?
    .check()
    .context("CreateGC")?;
    conn.map_window(window)?.check().context("MapWindow")?;
    painter.paint()?;
    painter.sync()?;
    say("READY");

    let painter = Arc::new(painter);
    let events = {
        let p = Arc::clone(&painter);
        std::thread::spawn(move || -> Result<()> {
            loop {
                match p.conn.wait_for_event()? {
                    Event::Expose(e) if e.count == 0 => {
                        p.paint()?;
                        p.conn.flush()?;
                    }
                    Event::Error(e) => bail!("X error: {e:?}"),
                    _ => {}
                }
            }
        })
    };
    let result = commands(&painter);
    if events.is_finished() {
        match events.join() {
            Ok(Err(e)) => return Err(e.context("event loop")),
            Err(_) => bail!("event loop panicked"),
            Ok(Ok(())) => {}
        }
    }
    result
}
