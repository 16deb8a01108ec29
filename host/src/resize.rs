//! Resizing a session's X screen to what the viewer's window needs, through RandR.
//!
//! Only Xorg with the dummy driver can change size at run time (Xvfb 21.1 cannot; its viewers
//! get `scaledByClient` and the browser scales the picture). A new size is a new mode on the
//! dummy's output: `xrandr --newmode` (a mode line the dummy's clock limits accept),
//! `--addmode`, then `--output … --mode`, which also resizes the screen. The capturer notices
//! the change (RandR/ConfigureNotify) and the encoder is rebuilt at the new size, so the stream
//! follows without reconnecting.
//!
//! xrandr is used rather than raw RandR requests because it orders the screen-size and CRTC
//! changes correctly for growing and shrinking; a resize is rare (debounced by the client).

use std::process::{Command, Stdio};

/// Smallest and largest sizes a viewer may ask for.
pub const MIN_SIZE: (u32, u32) = (320, 240);
pub const MAX_SIZE: (u32, u32) = (7680, 4320);

/// Why a resize did not happen.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResizeError {
    #[error("size {0}x{1} is outside {min_w}x{min_h} ..= {max_w}x{max_h}", min_w = MIN_SIZE.0, min_h = MIN_SIZE.1, max_w = MAX_SIZE.0, max_h = MAX_SIZE.1)]
    OutOfRange(u32, u32),
    #[error("cannot run xrandr (install x11-xserver-utils): {0}")]
    Spawn(std::io::Error),
    #[error("xrandr {args}: {stderr}")]
    Xrandr { args: String, stderr: String },
    #[error("display {0} has no connected RandR output")]
    NoOutput(String),
}

/// The size a request maps to: clamped to the limits, rounded down to even (4:2:0 video).
pub fn fit(width: u32, height: u32) -> Result<(u32, u32), ResizeError> {
    if !(MIN_SIZE.0..=MAX_SIZE.0).contains(&width) || !(MIN_SIZE.1..=MAX_SIZE.1).contains(&height) {
        return Err(ResizeError::OutOfRange(width, height));
    }
    Ok((width & !1, height & !1))
}

/// Highest pixel clock used: the dummy driver refuses modes above its limit (a dummy's refresh
/// rate means nothing, so large sizes just get a low one).
const MAX_CLOCK_KHZ: u64 = 240_000;

/// `xrandr --newmode` arguments after the name: clock in MHz and the eight timings. Modest
/// blanking, 30 Hz, and never more than [`MAX_CLOCK_KHZ`].
pub fn mode_timings(w: u32, h: u32) -> Vec<String> {
    let (ht, vt) = (w + 192, h + 33);
    let clock_khz = (u64::from(ht) * u64::from(vt) * 30 / 1000).min(MAX_CLOCK_KHZ);
    let mut v = vec![format!("{}.{:03}", clock_khz / 1000, clock_khz % 1000)];
    v.extend([w, w + 48, w + 96, ht, h, h + 3, h + 8, vt].map(|x| x.to_string()));
    v
}

fn xrandr(display: &str, args: &[&str]) -> Result<String, ResizeError> {
    let out = Command::new("xrandr")
        .env("DISPLAY", display)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(ResizeError::Spawn)?;
    if !out.status.success() {
        return Err(ResizeError::Xrandr {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Resizes `display` (an Xorg-dummy server) to `width`x`height` (after [`fit`]); returns the
/// size applied. Blocking (runs xrandr): call from a blocking thread.
pub fn resize_display(display: &str, width: u32, height: u32) -> Result<(u32, u32), ResizeError> {
    let (w, h) = fit(width, height)?;
    let query = xrandr(display, &["--query"])?;
    let output = query
        .lines()
        .find(|l| l.contains(" connected"))
        .and_then(|l| l.split_whitespace().next())
        .ok_or_else(|| ResizeError::NoOutput(display.to_owned()))?
        .to_owned();
    let name = format!("edgedesk-{w}x{h}");
    // A mode made by an earlier resize is listed under its name; make it only once.
    if !query
        .lines()
        .any(|l| l.split_whitespace().next() == Some(name.as_str()))
    {
        let timings = mode_timings(w, h);
        let mut args = vec!["--newmode", name.as_str()];
        args.extend(timings.iter().map(String::as_str));
        xrandr(display, &args)?;
        xrandr(display, &["--addmode", &output, &name])?;
    }
    xrandr(display, &["--output", &output, "--mode", &name])?;
    Ok((w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_checked_and_evened() {
        assert_eq!(fit(1001, 601).unwrap(), (1000, 600));
        assert!(fit(10, 10).is_err());
        assert!(fit(100_000, 600).is_err());
    }

    #[test]
    fn timings_keep_a_low_clock() {
        let t = mode_timings(7680, 4320);
        let clock: f64 = t[0].parse().unwrap();
        assert!(clock <= 240.0, "{clock}");
        assert_eq!(t[1], "7680");
        assert_eq!(t.len(), 9);
    }
}
