//! The session's current picture as a PNG, for the operator API (`GET
//! /api/v1/sessions/{id}/screenshot`) and the console's thumbnails: one forced MIT-SHM grab,
//! optionally shrunk by an integer box filter to at most `max_width`, encoded with the `png`
//! crate (fast compression: a thumbnail is made often).

use std::time::Duration;

use codec::{PixelFormat, VideoFrame};

use crate::capture::X11Capturer;

/// Grabs `display` and returns a PNG at most `max_width` wide (0: full size).
pub fn png(display: &str, max_width: u32) -> Result<Vec<u8>, String> {
    let mut cap = X11Capturer::connect(display).map_err(|e| e.to_string())?;
    let (w, h) = cap.size();
    let mut frame = VideoFrame::new(PixelFormat::Bgra, w, h);
    cap.capture(&mut frame, Duration::from_millis(200), true)
        .map_err(|e| e.to_string())?;
    let (w, h) = (frame.width as usize, frame.height as usize);
    let k = if max_width == 0 || w <= max_width as usize {
        1
    } else {
        w.div_ceil(max_width as usize)
    };
    let (ow, oh) = (w / k, h / k);
    let (src, stride) = (&frame.planes[0], frame.strides[0]);
    let mut rgb = vec![0u8; ow * oh * 3];
    let n = (k * k) as u32;
    for oy in 0..oh {
        for ox in 0..ow {
            let mut sum = [0u32; 3];
            for dy in 0..k {
                let row = &src[(oy * k + dy) * stride..];
                for dx in 0..k {
                    let p = &row[(ox * k + dx) * 4..];
                    // BGRA → RGB
                    sum[0] += u32::from(p[2]);
                    sum[1] += u32::from(p[1]);
                    sum[2] += u32::from(p[0]);
                }
            }
            let o = (oy * ow + ox) * 3;
            for c in 0..3 {
                rgb[o + c] = (sum[c] / n) as u8;
            }
        }
    }
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, ow as u32, oh as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut writer = enc.write_header().map_err(|e| e.to_string())?;
        writer.write_image_data(&rgb).map_err(|e| e.to_string())?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::display::{DisplayOptions, VirtualDisplay};

    /// Needs Xvfb: the PNG decodes to the requested size and shows the screen (black).
    #[test]
    fn a_screenshot_is_a_png_of_the_screen() {
        let d = VirtualDisplay::start(DisplayOptions {
            width: 640,
            height: 480,
            ..Default::default()
        })
        .unwrap();
        for (max, want) in [(0, (640, 480)), (320, (320, 240)), (300, (213, 160))] {
            let bytes = png(&d.name(), max).unwrap();
            let decoder = png::Decoder::new(&bytes[..]);
            let mut reader = decoder.read_info().unwrap();
            let mut buf = vec![0; reader.output_buffer_size()];
            let info = reader.next_frame(&mut buf).unwrap();
            assert_eq!((info.width, info.height), want, "max {max}");
            // An empty Xvfb is black but for the pointer, which capture draws in.
            let px = &buf[..info.buffer_size()];
            let black = px.iter().filter(|&&b| b == 0).count();
            assert!(
                black * 100 >= px.len() * 99,
                "{black} of {} bytes black",
                px.len()
            );
        }
    }
}
