//! Every `unsafe` line of the crate lives here: FFmpeg's one-time set-up, its log routed into
//! `tracing`, the codec-context fields `ffmpeg-next` does not wrap, and VAAPI hardware frames.
//!
//! Each function keeps its unsafe block small and says why it is sound. The rest of the crate
//! uses these safe wrappers and `#![deny(unsafe_code)]` holds everywhere else.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::ptr;
use std::sync::Once;

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;

static INIT: Once = Once::new();

/// FFmpeg messages above this level of detail are dropped (AV_LOG_WARNING = 24).
const MAX_LEVEL: c_int = ffi::AV_LOG_WARNING;

thread_local! {
    /// While set, FFmpeg messages logged on this thread are collected here instead of being
    /// logged, so a failed open can report FFmpeg's own reason ("Cannot load libcuda.so.1").
    static CAPTURE: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Initialises FFmpeg once per process: registers codecs, sets the log level to warnings and
/// routes FFmpeg's log into `tracing` (target `ffmpeg`). Safe to call from any thread, any
/// number of times.
pub(crate) fn init() {
    INIT.call_once(|| {
        if let Err(e) = ffmpeg::init() {
            tracing::warn!(error = %e, "ffmpeg init reported an error");
        }
        ffmpeg::log::set_level(ffmpeg::log::Level::Warning);
        // SAFETY: `log_callback` matches the callback type FFmpeg expects, never unwinds and
        // only reads the arguments FFmpeg passes for the duration of the call.
        unsafe { ffi::av_log_set_callback(Some(log_callback)) };
    });
}

/// Runs `f` while collecting the FFmpeg messages logged on this thread; returns them with
/// `f`'s result (empty when FFmpeg said nothing). Nested calls keep the outer collection.
pub(crate) fn capture_log<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let outer = CAPTURE.with(|c| c.borrow_mut().replace(Vec::new()));
    let out = f();
    let lines = CAPTURE.with(|c| {
        let mut slot = c.borrow_mut();
        let lines = slot.take().unwrap_or_default();
        if let Some(mut outer) = outer {
            outer.extend(lines.iter().cloned());
            *slot = Some(outer);
        }
        lines
    });
    (out, lines)
}

/// FFmpeg's log callback. Must not unwind into C: every fallible step is checked and the
/// thread-local is only touched through `try_with` / `try_borrow_mut`.
unsafe extern "C" fn log_callback(
    avcl: *mut c_void,
    level: c_int,
    fmt: *const c_char,
    vl: *mut ffi::__va_list_tag,
) {
    if level > MAX_LEVEL || fmt.is_null() {
        return;
    }
    let mut buf = [0 as c_char; 1024];
    let mut print_prefix: c_int = 1;
    // SAFETY: FFmpeg hands us a valid format string and its matching argument list; the
    // formatter writes at most `buf.len()` bytes including the terminating NUL.
    let line = unsafe {
        ffi::av_log_format_line2(
            avcl,
            level,
            fmt,
            vl,
            buf.as_mut_ptr(),
            buf.len() as c_int,
            &mut print_prefix,
        );
        CStr::from_ptr(buf.as_ptr())
    };
    let line = line.to_string_lossy();
    let line = line.trim_end();
    if line.is_empty() {
        return;
    }
    let captured = CAPTURE
        .try_with(|c| match c.try_borrow_mut() {
            Ok(mut slot) => match slot.as_mut() {
                Some(lines) => {
                    lines.push(line.to_owned());
                    true
                }
                None => false,
            },
            Err(_) => false,
        })
        .unwrap_or(false);
    // x264 says this on every bitrate decrease: FFmpeg applies the new VBV maximum a moment
    // before the new average, and the pair is consistent again within the same frame.
    let benign = line.contains("max bitrate less than average bitrate");
    if captured || benign {
        tracing::debug!(target: "ffmpeg", "{line}");
    } else if level <= ffi::AV_LOG_ERROR {
        tracing::error!(target: "ffmpeg", "{line}");
    } else {
        tracing::warn!(target: "ffmpeg", "{line}");
    }
}

/// Sets the rate-control buffer (VBV) size in bits; `ffmpeg-next` has no setter for it.
/// libx264 and NVENC pick a changed value up on the next frame they are sent.
pub(crate) fn set_rc_buffer_size(ctx: &mut ffmpeg::codec::Context, bits: i32) {
    // SAFETY: `ctx` owns a valid AVCodecContext; `rc_buffer_size` is a plain int field that
    // FFmpeg reads only inside calls we make on this thread.
    unsafe { (*ctx.as_mut_ptr()).rc_buffer_size = bits };
}

/// Sets the minimum bitrate (`rc_min_rate`); `ffmpeg-next` has no setter for it. libvpx
/// chooses CBR only when it equals the target and maximum.
pub(crate) fn set_rc_min_rate(ctx: &mut ffmpeg::codec::Context, bps: u64) {
    // SAFETY: as in `set_rc_buffer_size`: a plain int64 field of a valid AVCodecContext.
    unsafe { (*ctx.as_mut_ptr()).rc_min_rate = bps.min(i64::MAX as u64) as i64 };
}

/// Makes sure `frame`'s buffers are not shared with an encoder still holding a reference
/// (copying them if they are) so we can write the next picture into them.
pub(crate) fn make_writable(frame: &mut ffmpeg::frame::Video) -> Result<(), ffmpeg::Error> {
    // SAFETY: `frame` owns a valid AVFrame with allocated buffers.
    let r = unsafe { ffi::av_frame_make_writable(frame.as_mut_ptr()) };
    if r < 0 {
        return Err(ffmpeg::Error::from(r));
    }
    Ok(())
}

/// A VAAPI device and a pool of its frames of one size, which VAAPI encoders require.
/// Owns one reference to each FFmpeg buffer and releases them on drop.
pub(crate) struct VaapiFrames {
    device: *mut ffi::AVBufferRef,
    frames: *mut ffi::AVBufferRef,
}

// SAFETY: the buffers are reference-counted FFmpeg objects owned by this value alone; FFmpeg
// does not tie them to the creating thread, and we never share the pointers.
unsafe impl Send for VaapiFrames {}

impl VaapiFrames {
    /// Opens the VAAPI device at `device` (a DRM render node) and a pool of NV12 surfaces of
    /// `width`x`height`.
    pub(crate) fn new(device: &str, width: u32, height: u32) -> Result<Self, ffmpeg::Error> {
        let path = CString::new(device).map_err(|_| ffmpeg::Error::InvalidData)?;
        let mut this = VaapiFrames {
            device: ptr::null_mut(),
            frames: ptr::null_mut(),
        };
        // SAFETY: out-pointers are valid; on failure FFmpeg leaves them null, and `Drop`
        // unrefs only non-null buffers. The frames context is filled in before init as the
        // hwcontext API requires.
        unsafe {
            let r = ffi::av_hwdevice_ctx_create(
                &mut this.device,
                ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI,
                path.as_ptr(),
                ptr::null_mut(),
                0,
            );
            if r < 0 {
                return Err(ffmpeg::Error::from(r));
            }
            this.frames = ffi::av_hwframe_ctx_alloc(this.device);
            if this.frames.is_null() {
                return Err(ffmpeg::Error::Other {
                    errno: ffmpeg::error::ENOMEM,
                });
            }
            let fc = (*this.frames).data as *mut ffi::AVHWFramesContext;
            (*fc).format = ffi::AVPixelFormat::AV_PIX_FMT_VAAPI;
            (*fc).sw_format = ffi::AVPixelFormat::AV_PIX_FMT_NV12;
            (*fc).width = width as c_int;
            (*fc).height = height as c_int;
            (*fc).initial_pool_size = 4;
            let r = ffi::av_hwframe_ctx_init(this.frames);
            if r < 0 {
                return Err(ffmpeg::Error::from(r));
            }
        }
        Ok(this)
    }

    /// Points the (not yet opened) encoder context at this frame pool.
    pub(crate) fn attach(&self, ctx: &mut ffmpeg::codec::Context) -> Result<(), ffmpeg::Error> {
        // SAFETY: `av_buffer_ref` returns a new reference (or null) that the codec context
        // takes ownership of and frees in `avcodec_free_context`.
        unsafe {
            let r = ffi::av_buffer_ref(self.frames);
            if r.is_null() {
                return Err(ffmpeg::Error::Other {
                    errno: ffmpeg::error::ENOMEM,
                });
            }
            let c = ctx.as_mut_ptr();
            ffi::av_buffer_unref(&mut (*c).hw_frames_ctx);
            (*c).hw_frames_ctx = r;
        }
        Ok(())
    }

    /// Copies a software NV12 frame into a fresh surface from the pool.
    pub(crate) fn upload(
        &self,
        src: &ffmpeg::frame::Video,
    ) -> Result<ffmpeg::frame::Video, ffmpeg::Error> {
        let mut hw = ffmpeg::frame::Video::empty();
        // SAFETY: `hw` is a valid empty AVFrame that `av_hwframe_get_buffer` fills with a
        // pooled surface; `src` is a valid software frame of the pool's size and format.
        unsafe {
            let r = ffi::av_hwframe_get_buffer(self.frames, hw.as_mut_ptr(), 0);
            if r < 0 {
                return Err(ffmpeg::Error::from(r));
            }
            let r = ffi::av_hwframe_transfer_data(hw.as_mut_ptr(), src.as_ptr(), 0);
            if r < 0 {
                return Err(ffmpeg::Error::from(r));
            }
        }
        Ok(hw)
    }
}

impl Drop for VaapiFrames {
    fn drop(&mut self) {
        // SAFETY: each pointer is null or a reference we own; unref nulls it.
        unsafe {
            ffi::av_buffer_unref(&mut self.frames);
            ffi::av_buffer_unref(&mut self.device);
        }
    }
}
