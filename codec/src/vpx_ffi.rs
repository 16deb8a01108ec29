//! The one place libvpx's C API is called (through `env-libvpx-sys`, bindings of libvpx
//! 1.12, Debian 12's). Everything here is safe to call: [`VpxContext`] owns an initialised
//! encoder context and destroys it on drop; pointers handed to libvpx live for the call.
//!
//! Calls, per libvpx's `vpx_encoder.h` / `vp8cx.h`: `vpx_codec_enc_config_default` →
//! adjust the config → `vpx_codec_enc_init_ver(…, VPX_ENCODER_ABI_VERSION)` →
//! `vpx_codec_control_` for speed and tools → per frame `vpx_codec_control_(VP8E_SET_ACTIVEMAP)`
//! and `vpx_codec_encode(…, VPX_DL_REALTIME)`, then `vpx_codec_get_cx_data` until it returns
//! null → `vpx_codec_destroy`. Rate changes go through `vpx_codec_enc_config_set`.

#![allow(unsafe_code)]

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint};

use vpx_sys as sys;

/// Which libvpx encoder (VP9 only for now; see `vpx_backend` for VP8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VpxCodec {
    Vp9,
}

/// The encoder configuration edgedesk sets (the rest stays libvpx's real-time default).
#[derive(Debug, Clone)]
pub(crate) struct VpxConfig {
    pub codec: VpxCodec,
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    /// Rate-control buffer, in milliseconds.
    pub buffer_ms: u32,
    pub threads: u32,
    /// Frames between forced keyframes; `None`: only on demand.
    pub keyframe_interval: Option<u32>,
}

/// One encoded frame.
pub(crate) struct VpxPacket {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// An open libvpx encoder.
pub(crate) struct VpxContext {
    ctx: Box<sys::vpx_codec_ctx_t>,
    cfg: sys::vpx_codec_enc_cfg_t,
}

// The context is used from one thread at a time (the encode thread); libvpx keeps no
// thread-affine state in it.
unsafe impl Send for VpxContext {}

impl VpxContext {
    /// Configures and opens an encoder; the error is libvpx's own message.
    pub(crate) fn open(c: &VpxConfig) -> Result<VpxContext, String> {
        // SAFETY: plain C calls with valid pointers; `cfg` is fully written by
        // vpx_codec_enc_config_default before use, `ctx` by vpx_codec_enc_init_ver (checked).
        unsafe {
            let iface = match c.codec {
                VpxCodec::Vp9 => sys::vpx_codec_vp9_cx(),
            };
            let mut cfg = MaybeUninit::<sys::vpx_codec_enc_cfg_t>::zeroed();
            let err = sys::vpx_codec_enc_config_default(iface, cfg.as_mut_ptr(), 0);
            if err != sys::VPX_CODEC_OK {
                return Err(format!("vpx_codec_enc_config_default: {}", err_name(err)));
            }
            let mut cfg = cfg.assume_init();
            cfg.g_w = c.width;
            cfg.g_h = c.height;
            cfg.g_timebase = sys::vpx_rational {
                num: 1,
                den: c.fps as c_int,
            };
            cfg.g_threads = c.threads;
            cfg.g_lag_in_frames = 0;
            cfg.g_pass = sys::vpx_enc_pass::VPX_RC_ONE_PASS;
            cfg.g_error_resilient = sys::VPX_ERROR_RESILIENT_DEFAULT;
            cfg.rc_end_usage = sys::vpx_rc_mode::VPX_CBR;
            cfg.rc_target_bitrate = c.bitrate_kbps;
            cfg.rc_dropframe_thresh = 0;
            cfg.rc_resize_allowed = 0;
            cfg.rc_min_quantizer = 4;
            cfg.rc_max_quantizer = 63;
            cfg.rc_undershoot_pct = 95;
            cfg.rc_overshoot_pct = 25;
            cfg.rc_buf_sz = c.buffer_ms;
            cfg.rc_buf_initial_sz = c.buffer_ms;
            cfg.rc_buf_optimal_sz = c.buffer_ms;
            match c.keyframe_interval {
                Some(k) => {
                    cfg.kf_mode = sys::vpx_kf_mode::VPX_KF_AUTO;
                    cfg.kf_min_dist = k;
                    cfg.kf_max_dist = k;
                }
                // VPX_KF_DISABLED (= VPX_KF_FIXED, 0): keyframes only when forced.
                None => cfg.kf_mode = sys::vpx_kf_mode::VPX_KF_FIXED,
            }
            let mut ctx = Box::new(MaybeUninit::<sys::vpx_codec_ctx_t>::zeroed().assume_init());
            let err = sys::vpx_codec_enc_init_ver(
                &mut *ctx,
                iface,
                &cfg,
                0,
                sys::VPX_ENCODER_ABI_VERSION as c_int,
            );
            if err != sys::VPX_CODEC_OK {
                let detail = error_of(&mut ctx);
                return Err(format!("vpx_codec_enc_init: {} ({detail})", err_name(err)));
            }
            Ok(VpxContext { ctx, cfg })
        }
    }

    /// `vpx_codec_control_(id, value)` for an integer control.
    pub(crate) fn control(
        &mut self,
        id: sys::vp8e_enc_control_id,
        value: c_int,
    ) -> Result<(), String> {
        // SAFETY: the context is initialised; integer controls take an int vararg.
        let err = unsafe { sys::vpx_codec_control_(&mut *self.ctx, id as c_int, value) };
        self.check(err, &format!("control {id:?}"))
    }

    /// Marks which 16x16 macroblocks may change in the next frame (`map`: one byte per
    /// macroblock, row-major, `rows` x `cols`, non-zero = active); `None`: all of them.
    /// Inactive macroblocks are coded as skipped at almost no cost.
    pub(crate) fn set_active_map(
        &mut self,
        map: Option<(&mut [u8], u32, u32)>,
    ) -> Result<(), String> {
        let mut m = match map {
            Some((bytes, rows, cols)) => {
                assert_eq!(bytes.len(), (rows * cols) as usize, "active map size");
                sys::vpx_active_map {
                    active_map: bytes.as_mut_ptr(),
                    rows: rows as c_uint,
                    cols: cols as c_uint,
                }
            }
            None => sys::vpx_active_map {
                active_map: std::ptr::null_mut(),
                rows: self.mb_rows(),
                cols: self.mb_cols(),
            },
        };
        // SAFETY: VP8E_SET_ACTIVEMAP takes a vpx_active_map_t*; it and its map outlive the
        // call (libvpx copies the map).
        let err = unsafe {
            sys::vpx_codec_control_(
                &mut *self.ctx,
                sys::vp8e_enc_control_id::VP8E_SET_ACTIVEMAP as c_int,
                &mut m as *mut sys::vpx_active_map,
            )
        };
        self.check(err, "VP8E_SET_ACTIVEMAP")
    }

    pub(crate) fn mb_rows(&self) -> u32 {
        self.cfg.g_h.div_ceil(16)
    }

    pub(crate) fn mb_cols(&self) -> u32 {
        self.cfg.g_w.div_ceil(16)
    }

    /// Encodes one I420 picture (`planes` Y, U, V with their `strides`, sized for the
    /// configured width and height) and returns the frames it produced.
    pub(crate) fn encode(
        &mut self,
        planes: [&[u8]; 3],
        strides: [usize; 3],
        pts: i64,
        force_keyframe: bool,
    ) -> Result<Vec<VpxPacket>, String> {
        let (w, h) = (self.cfg.g_w as usize, self.cfg.g_h as usize);
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        for (i, (p, s)) in planes.iter().zip(strides).enumerate() {
            let (row, rows) = if i == 0 { (w, h) } else { (cw, ch) };
            if s < row || p.len() < s * (rows - 1) + row {
                return Err(format!(
                    "plane {i}: {} bytes, stride {s}, for {w}x{h}",
                    p.len()
                ));
            }
        }
        // SAFETY: vpx_img_wrap only fills the struct; we then point its planes at our
        // buffers, which libvpx reads (never writes) during vpx_codec_encode and which
        // outlive the call. Packets are copied out before the next libvpx call.
        unsafe {
            let mut img = MaybeUninit::<sys::vpx_image_t>::zeroed();
            let wrapped = sys::vpx_img_wrap(
                img.as_mut_ptr(),
                sys::vpx_img_fmt::VPX_IMG_FMT_I420,
                w as c_uint,
                h as c_uint,
                1,
                planes[0].as_ptr() as *mut u8,
            );
            if wrapped.is_null() {
                return Err("vpx_img_wrap failed".into());
            }
            let mut img = img.assume_init();
            for i in 0..3 {
                img.planes[i] = planes[i].as_ptr() as *mut u8;
                img.stride[i] = strides[i] as c_int;
            }
            let flags = if force_keyframe {
                sys::VPX_EFLAG_FORCE_KF as sys::vpx_enc_frame_flags_t
            } else {
                0
            };
            let err = sys::vpx_codec_encode(
                &mut *self.ctx,
                &img,
                pts,
                1,
                flags,
                sys::VPX_DL_REALTIME as _,
            );
            self.check(err, "vpx_codec_encode")?;
            let mut out = Vec::new();
            let mut iter: sys::vpx_codec_iter_t = std::ptr::null();
            loop {
                let pkt = sys::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter);
                if pkt.is_null() {
                    break;
                }
                if (*pkt).kind != sys::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    continue;
                }
                let f = (*pkt).data.frame;
                let data = std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize).to_vec();
                out.push(VpxPacket {
                    data,
                    keyframe: f.flags & sys::VPX_FRAME_IS_KEY != 0,
                });
            }
            Ok(out)
        }
    }

    /// Applies a new target bitrate and frame rate without reopening (no keyframe).
    pub(crate) fn set_rate(&mut self, bitrate_kbps: u32, fps: u32) -> Result<(), String> {
        self.cfg.rc_target_bitrate = bitrate_kbps;
        self.cfg.g_timebase = sys::vpx_rational {
            num: 1,
            den: fps as c_int,
        };
        // SAFETY: the context is initialised and `cfg` is a complete configuration.
        let err = unsafe { sys::vpx_codec_enc_config_set(&mut *self.ctx, &self.cfg) };
        self.check(err, "vpx_codec_enc_config_set")
    }

    fn check(&mut self, err: sys::vpx_codec_err_t, what: &str) -> Result<(), String> {
        if err == sys::VPX_CODEC_OK {
            Ok(())
        } else {
            Err(format!(
                "{what}: {} ({})",
                err_name(err),
                error_of(&mut self.ctx)
            ))
        }
    }
}

impl Drop for VpxContext {
    fn drop(&mut self) {
        // SAFETY: initialised in `open`, destroyed once.
        unsafe {
            sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

fn err_name(err: sys::vpx_codec_err_t) -> String {
    format!("{err:?}")
}

/// libvpx's last error text for the context.
fn error_of(ctx: &mut sys::vpx_codec_ctx_t) -> String {
    // SAFETY: vpx_codec_error returns a static or context-owned C string (never null for an
    // initialised or failed-init context); copied at once. The detail may be null.
    unsafe {
        let mut s = CStr::from_ptr(sys::vpx_codec_error(ctx))
            .to_string_lossy()
            .into_owned();
        let detail = sys::vpx_codec_error_detail(ctx);
        if !detail.is_null() {
            s.push_str(": ");
            s.push_str(&CStr::from_ptr(detail).to_string_lossy());
        }
        s
    }
}
