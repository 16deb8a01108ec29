//! CPU frame types. Capture produces [`PixelFormat::Bgra`]; software encoders take
//! [`PixelFormat::I420`]; the host converts in between when an encoder's
//! [`crate::Encoder::input_format`] asks for it.

use std::time::Instant;

/// Pixel layouts a frame can carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PixelFormat {
    /// One plane, 4 bytes per pixel, B,G,R,X in memory (X11 ZPixmap depth 24/32, little endian).
    Bgra,
    /// Three planes: full-size Y, then U and V at half width and half height (rounded up).
    I420,
    /// Two planes: full-size Y, then interleaved UV at half width and half height.
    Nv12,
}

/// A video frame in CPU memory.
///
/// `planes` holds one buffer per plane and `strides` the bytes per row of each. Widths and
/// heights may be odd; chroma planes are then `(w + 1) / 2` by `(h + 1) / 2`.
#[derive(Debug, Clone)]
pub struct VideoFrame {
    pub format: PixelFormat,
    pub width: u32,
    pub height: u32,
    pub planes: Vec<Vec<u8>>,
    pub strides: Vec<usize>,
    /// When the picture was taken (capture completed). Latency figures are measured from here.
    pub captured_at: Instant,
    /// Monotonic frame number assigned by the producer (from 1; 0: none yet).
    pub sequence: u64,
    /// Which pixels differ from an earlier frame of the same producer; `None`: any may.
    /// Consumers holding that earlier frame update only these rectangles.
    pub damage: Option<crate::damage::Damage>,
}

impl VideoFrame {
    /// A zeroed frame of the given format with tightly packed rows.
    pub fn new(format: PixelFormat, width: u32, height: u32) -> Self {
        let (w, h) = (width as usize, height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let (planes, strides) = match format {
            PixelFormat::Bgra => (vec![vec![0; w * 4 * h]], vec![w * 4]),
            PixelFormat::I420 => (
                vec![vec![0; w * h], vec![128; cw * ch], vec![128; cw * ch]],
                vec![w, cw, cw],
            ),
            PixelFormat::Nv12 => (
                vec![vec![0; w * h], vec![128; cw * 2 * ch]],
                vec![w, cw * 2],
            ),
        };
        VideoFrame {
            format,
            width,
            height,
            planes,
            strides,
            captured_at: Instant::now(),
            sequence: 0,
            damage: None,
        }
    }

    /// Bytes per row and rows of plane `i` that hold picture data.
    pub fn plane_size(&self, i: usize) -> (usize, usize) {
        let (w, h) = (self.width as usize, self.height as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        match (self.format, i) {
            (PixelFormat::Bgra, _) => (w * 4, h),
            (PixelFormat::I420, 0) | (PixelFormat::Nv12, 0) => (w, h),
            (PixelFormat::I420, _) => (cw, ch),
            (PixelFormat::Nv12, _) => (cw * 2, ch),
        }
    }

    /// Reads the BGRA pixel at (x, y); `None` for other formats or outside the frame.
    pub fn bgra_at(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if self.format != PixelFormat::Bgra || x >= self.width || y >= self.height {
            return None;
        }
        let o = y as usize * self.strides[0] + x as usize * 4;
        self.planes[0]
            .get(o..o + 4)
            .map(|p| [p[0], p[1], p[2], p[3]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn odd_sizes_round_chroma_up() {
        let f = VideoFrame::new(PixelFormat::I420, 5, 3);
        assert_eq!(f.plane_size(0), (5, 3));
        assert_eq!(f.plane_size(1), (3, 2));
        assert_eq!(f.planes[1].len(), 6);
    }

    #[test]
    fn bgra_at_reads_pixels() {
        let mut f = VideoFrame::new(PixelFormat::Bgra, 2, 2);
        f.planes[0][4..8].copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(f.bgra_at(1, 0), Some([1, 2, 3, 4]));
        assert_eq!(f.bgra_at(2, 0), None);
    }
}
