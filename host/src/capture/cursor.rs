//! The pointer sprite: X servers leave it out of `GetImage`, so capture draws it itself.
//!
//! The image comes from XFixes `GetCursorImage` (premultiplied ARGB, one `u32` per pixel) and is
//! cached until XFixes reports a `CursorNotify`; the position comes from `QueryPointer` with each
//! frame. [`CursorImage::blend_into`] composites it with the "over" operator.

/// A cached cursor sprite.
#[derive(Debug, Clone, Default)]
pub(crate) struct CursorImage {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) xhot: u32,
    pub(crate) yhot: u32,
    /// Premultiplied ARGB (`0xAARRGGBB`), row-major, `width * height` values.
    pub(crate) pixels: Vec<u32>,
}

impl CursorImage {
    /// The part of a `width` x `height` screen the sprite covers with its hotspot at (`x`, `y`).
    pub(crate) fn rect(&self, width: u32, height: u32, x: i32, y: i32) -> codec::Rect {
        let (left, top) = (x - self.xhot as i32, y - self.yhot as i32);
        let clamp = |v: i32| v.clamp(i16::MIN.into(), i16::MAX.into()) as i16;
        codec::Rect::from_x11(
            clamp(left),
            clamp(top),
            self.width.min(u16::MAX.into()) as u16,
            self.height.min(u16::MAX.into()) as u16,
            width,
            height,
        )
    }

    /// Draws the sprite with its hotspot at (`x`, `y`) over a BGRX image of `width` x `height`
    /// pixels with `stride` bytes per row, clipping at the edges.
    pub(crate) fn blend_into(
        &self,
        dst: &mut [u8],
        stride: usize,
        width: u32,
        height: u32,
        x: i32,
        y: i32,
    ) {
        if self.pixels.len() < (self.width * self.height) as usize {
            return;
        }
        let left = x - self.xhot as i32;
        let top = y - self.yhot as i32;
        // Visible part of the sprite, in sprite coordinates.
        let x0 = (-left).max(0);
        let y0 = (-top).max(0);
        let x1 = (self.width as i32).min(width as i32 - left);
        let y1 = (self.height as i32).min(height as i32 - top);
        if x0 >= x1 || y0 >= y1 {
            return;
        }
        for sy in y0..y1 {
            let src_row =
                &self.pixels[(sy as u32 * self.width) as usize..][x0 as usize..x1 as usize];
            let row_start = (top + sy) as usize * stride + (left + x0) as usize * 4;
            let dst_row = &mut dst[row_start..row_start + src_row.len() * 4];
            for (&argb, px) in src_row.iter().zip(dst_row.chunks_exact_mut(4)) {
                let a = argb >> 24;
                match a {
                    0 => {}
                    255 => {
                        px[0] = argb as u8;
                        px[1] = (argb >> 8) as u8;
                        px[2] = (argb >> 16) as u8;
                    }
                    _ => {
                        let inv = 255 - a;
                        for (c, shift) in [(0, 0), (1, 8), (2, 16)] {
                            let s = (argb >> shift) & 0xff;
                            let d = u32::from(px[c]);
                            // s + d * (1 - a), rounded; premultiplied s <= a keeps it <= 255.
                            px[c] = (s + (d * inv + 127) / 255).min(255) as u8;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(w: u32, h: u32, bgrx: [u8; 4]) -> Vec<u8> {
        bgrx.repeat((w * h) as usize)
    }

    fn px(buf: &[u8], w: u32, x: u32, y: u32) -> [u8; 4] {
        let o = ((y * w + x) * 4) as usize;
        [buf[o], buf[o + 1], buf[o + 2], buf[o + 3]]
    }

    #[test]
    fn opaque_transparent_and_half_pixels() {
        // 3x1 sprite: opaque red, transparent, 50 % white (premultiplied 0x80808080).
        let cur = CursorImage {
            width: 3,
            height: 1,
            xhot: 0,
            yhot: 0,
            pixels: vec![0xffff0000, 0x00000000, 0x80808080],
        };
        let mut buf = frame(4, 2, [0, 0, 200, 0]);
        cur.blend_into(&mut buf, 16, 4, 2, 1, 1);
        assert_eq!(px(&buf, 4, 0, 1), [0, 0, 200, 0]);
        assert_eq!(px(&buf, 4, 1, 1), [0, 0, 255, 0]);
        assert_eq!(px(&buf, 4, 2, 1), [0, 0, 200, 0]);
        // 0x80 + 200 * 127 / 255 = 128 + 100 = 228; blue/green 128 + 0.
        assert_eq!(px(&buf, 4, 3, 1), [128, 128, 228, 0]);
        // Untouched row.
        assert_eq!(px(&buf, 4, 1, 0), [0, 0, 200, 0]);
    }

    #[test]
    fn hotspot_and_clipping_at_every_edge() {
        let cur = CursorImage {
            width: 4,
            height: 4,
            xhot: 2,
            yhot: 2,
            pixels: vec![0xff00ff00; 16],
        };
        for (x, y) in [(0, 0), (-3, 1), (5, 5), (1, 100), (i32::MIN / 2, 0)] {
            let mut buf = frame(6, 6, [1, 2, 3, 4]);
            cur.blend_into(&mut buf, 24, 6, 6, x, y);
        }
        let mut buf = frame(6, 6, [1, 2, 3, 4]);
        cur.blend_into(&mut buf, 24, 6, 6, 0, 0);
        // Sprite covers (-2..2, -2..2): only (0..2, 0..2) is inside.
        assert_eq!(px(&buf, 6, 1, 1), [0, 255, 0, 4]);
        assert_eq!(px(&buf, 6, 2, 0), [1, 2, 3, 4]);
        assert_eq!(px(&buf, 6, 0, 2), [1, 2, 3, 4]);
        // The area reported as drawn is the same clipped square.
        assert_eq!(cur.rect(6, 6, 0, 0), codec::Rect::new(0, 0, 2, 2));
        assert_eq!(cur.rect(6, 6, 5, 5), codec::Rect::new(3, 3, 3, 3));
        assert!(cur.rect(6, 6, i32::MIN / 2, 0).is_empty());
        assert!(cur.rect(6, 6, 1, 100).is_empty());
    }
}
