//! A viewer's `input` data channel: decoding, rate limiting, view-only enforcement, pings,
//! resize requests and the clipboard in both directions (see [`input_channel`]).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, Notify};
use webrtc::data_channel::{DataChannel, DataChannelEvent};

use super::{SessionLinks, ViewerCounters};
use crate::clipboard::ClipboardUpdate;
use crate::input::protocol::{
    decode_client, op, split_clipboard, ClientMessage, ClipboardAssembler, DecodeError,
    HostMessage, Limits, NoticeCode, ResizeStatus, CLIPBOARD_PART_BYTES,
};
use crate::pipeline::Pipeline;

/// Most input messages a viewer may send per second; the rest are dropped and counted (a
/// 1000 Hz gaming mouse plus typing stays well below).
const MAX_INPUT_PER_SEC: u32 = 3000;

/// How often a viewer under congestion control is sent `linkStats`.
const LINK_STATS_EVERY: Duration = Duration::from_secs(1);

/// Serves the client's `input` data channel: decodes each message (see
/// [`crate::input::protocol`]), answers pings, drops and counts what is malformed, over the
/// rate limit or sent by a view-only peer, and hands the rest to the session's input thread.
/// Clipboard texts go both ways here, as the session's policy allows, to controlling viewers
/// only. The channel closing means the client left (a closed tab closes it at once, long
/// before ICE times out): whatever this viewer held is released and the viewer ends.
pub(super) async fn input_channel(
    dc: Arc<dyn DataChannel>,
    ctx: InputContext,
    counters: Arc<ViewerCounters>,
    stop: Arc<Notify>,
) {
    let InputContext {
        viewer,
        control,
        links,
        rtp_clock,
        estimate,
    } = ctx;
    reply(
        &dc,
        HostMessage::Clock {
            rtp_timestamp: rtp_clock.0,
            unix_ms: rtp_clock.1,
        },
    )
    .await;
    let clip_cfg = links.clipboard_config;
    let limits = Limits {
        max_clipboard_bytes: clip_cfg.max_bytes,
        ..Limits::default()
    };
    let mut assembler = ClipboardAssembler::new(clip_cfg.max_bytes);
    // Desktop clipboard changes for this viewer: controlling viewers, when the policy allows.
    let mut clip_rx = match &links.clipboard {
        Some(c) if control && clip_cfg.policy.to_client() => Some(c.subscribe()),
        _ => None,
    };
    // (start of the current second, units used, flood already reported this second)
    let mut window = (Instant::now(), 0u32, false);
    let mut told_view_only = false;
    // Under congestion control, the estimate and the encoder's bitrate for the stats overlay.
    let mut link_tick = tokio::time::interval(LINK_STATS_EVERY);
    link_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let congestion = estimate.is_some() && links.rate.is_some();
    loop {
        let ev = tokio::select! {
            ev = dc.poll() => match ev {
                Some(ev) => ev,
                None => break,
            },
            _ = link_tick.tick(), if congestion => {
                let estimate_bps = estimate.as_ref().and_then(|e| e.target()).unwrap_or(0);
                let encoder_bps = (links.rate.as_ref())
                    .map_or(0, |r| r.lock().unwrap_or_else(|e| e.into_inner()).current());
                let clamp = |b: u64| u32::try_from(b).unwrap_or(u32::MAX);
                let msg = HostMessage::LinkStats {
                    estimate_bps: clamp(estimate_bps),
                    encoder_bps: clamp(encoder_bps),
                };
                reply(&dc, msg).await;
                continue;
            }
            update = async { clip_rx.as_mut().expect("guarded").recv().await }, if clip_rx.is_some() => {
                match update {
                    Ok(u) => send_clipboard(&dc, &viewer, &u, &counters).await,
                    // Missed texts are stale: the next one is the newest.
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => clip_rx = None,
                }
                continue;
            }
        };
        let data = match ev {
            DataChannelEvent::OnMessage(m) => m.data,
            DataChannelEvent::OnClose => break,
            _ => continue,
        };
        let received = Instant::now();
        counters.input_messages.fetch_add(1, Ordering::Relaxed);
        if window.0.elapsed() >= Duration::from_secs(1) {
            window = (received, 0, false);
        }
        // Text costs one unit per character: typing it is the slow path on the host.
        window.1 += match data.first() {
            Some(&op::TEXT) => (data.len().saturating_sub(3) as u32).max(1),
            _ => 1,
        };
        if window.1 > MAX_INPUT_PER_SEC {
            counters.input_rate_limited.fetch_add(1, Ordering::Relaxed);
            if !std::mem::replace(&mut window.2, true) {
                tracing::warn!(
                    viewer = control::log_tag(&viewer),
                    "input flood: dropping messages for the rest of this second"
                );
                notice(&dc, NoticeCode::RateLimited).await;
            }
            continue;
        }
        let msg = match decode_client(&data, &limits) {
            Ok(m) => m,
            Err(e) => {
                counters.input_rejected.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(viewer = control::log_tag(&viewer), error = %e, "input message rejected");
                if e == DecodeError::TooLong
                    && matches!(data.first(), Some(&(op::CLIPBOARD | op::CLIPBOARD_PART)))
                {
                    // The text this part or end belongs to is refused whole.
                    assembler.reject();
                    if matches!(data.first(), Some(&op::CLIPBOARD)) {
                        let _ = assembler.finish("");
                        counters.clipboard_refused.fetch_add(1, Ordering::Relaxed);
                        notice(&dc, NoticeCode::ClipboardTooLarge).await;
                    }
                }
                continue;
            }
        };
        match msg {
            ClientMessage::Ping { seq, client_time } => {
                let host_time = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64() * 1e3)
                    .unwrap_or(0.0);
                reply(
                    &dc,
                    HostMessage::Pong {
                        seq,
                        client_time,
                        host_time,
                    },
                )
                .await;
            }
            ClientMessage::Heartbeat | ClientMessage::ReleaseAll if !control => {}
            ClientMessage::Resize { width, height, .. } if control => {
                let answer = resize_for(&links.resize, &links.pipeline, width, height).await;
                reply(&dc, answer).await;
            }
            ClientMessage::ClipboardPart { text } if control => assembler.part(&text),
            ClientMessage::Clipboard { text } if control => {
                let refused = match assembler.finish(&text) {
                    Err(_) => Some(NoticeCode::ClipboardTooLarge),
                    Ok(_) if !clip_cfg.policy.to_server() => Some(NoticeCode::ClipboardOff),
                    Ok(whole) => match &links.clipboard {
                        None => Some(NoticeCode::ClipboardOff),
                        Some(clip) => {
                            let (clip, origin) = (clip.clone(), viewer.clone());
                            let set =
                                tokio::task::spawn_blocking(move || clip.set(&whole, Some(origin)))
                                    .await;
                            match set {
                                Ok(Ok(())) => {
                                    counters.clipboard_received.fetch_add(1, Ordering::Relaxed);
                                    None
                                }
                                Ok(Err(e)) => {
                                    tracing::warn!(viewer = control::log_tag(&viewer), error = %e, "clipboard paste refused");
                                    Some(match e {
                                        crate::clipboard::ClipboardError::TooLarge { .. } => {
                                            NoticeCode::ClipboardTooLarge
                                        }
                                        _ => NoticeCode::ClipboardOff,
                                    })
                                }
                                Err(e) => {
                                    tracing::error!(error = %e, "clipboard task failed");
                                    Some(NoticeCode::ClipboardOff)
                                }
                            }
                        }
                    },
                };
                if let Some(code) = refused {
                    counters.clipboard_refused.fetch_add(1, Ordering::Relaxed);
                    notice(&dc, code).await;
                }
            }
            _ if !control => {
                counters.input_ignored.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut told_view_only, true) {
                    notice(&dc, NoticeCode::ViewOnly).await;
                }
            }
            msg => match &links.input {
                Some(input) => input.send(&viewer, msg, received),
                None => {
                    counters.input_ignored.fetch_add(1, Ordering::Relaxed);
                }
            },
        }
    }
    if control {
        if let Some(input) = &links.input {
            input.viewer_gone(&viewer);
        }
    }
    stop.notify_one();
}

/// Sends a clipboard text to the viewer (in parts when long), unless the viewer set it.
async fn send_clipboard(
    dc: &Arc<dyn DataChannel>,
    viewer: &Arc<str>,
    update: &ClipboardUpdate,
    counters: &ViewerCounters,
) {
    if update.origin.as_deref() == Some(&**viewer) {
        return;
    }
    let pieces = split_clipboard(&update.text, CLIPBOARD_PART_BYTES);
    let (last, parts) = pieces.split_last().expect("at least one piece");
    for part in parts {
        reply(
            dc,
            HostMessage::ClipboardPart {
                text: (*part).to_owned(),
            },
        )
        .await;
    }
    reply(
        dc,
        HostMessage::Clipboard {
            text: (*last).to_owned(),
        },
    )
    .await;
    counters.clipboard_sent.fetch_add(1, Ordering::Relaxed);
}

/// What a viewer's input task needs besides the channel.
pub(super) struct InputContext {
    pub viewer: Arc<str>,
    pub control: bool,
    pub links: SessionLinks,
    /// The viewer's video RTP timestamp at one moment, and that moment in Unix ms.
    pub rtp_clock: (u32, f64),
    /// The viewer's bandwidth estimate (congestion control on).
    pub estimate: Option<Arc<super::congestion::Estimate>>,
}

/// Applies a resize request (on a blocking thread: it runs xrandr) and says what happened.
async fn resize_for(
    display: &Option<String>,
    pipeline: &Weak<Pipeline>,
    width: u16,
    height: u16,
) -> HostMessage {
    let current = pipeline
        .upgrade()
        .and_then(|p| p.screen_size())
        .unwrap_or((1, 1));
    let result = |status, (w, h): (u32, u32)| HostMessage::ResizeResult {
        status,
        width: w.min(u16::MAX as u32) as u16,
        height: h.min(u16::MAX as u32) as u16,
    };
    let Some(display) = display.clone() else {
        return result(ResizeStatus::ScaledByClient, current);
    };
    let (w, h) = (u32::from(width), u32::from(height));
    match tokio::task::spawn_blocking(move || crate::resize::resize_display(&display, w, h)).await {
        Ok(Ok(applied)) => {
            tracing::info!(
                width = applied.0,
                height = applied.1,
                "display resized on request"
            );
            result(ResizeStatus::Applied, applied)
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "resize refused");
            result(ResizeStatus::Refused, current)
        }
        Err(e) => {
            tracing::error!(error = %e, "resize task failed");
            result(ResizeStatus::Refused, current)
        }
    }
}

async fn notice(dc: &Arc<dyn DataChannel>, code: NoticeCode) {
    reply(dc, HostMessage::Notice { code }).await;
}

async fn reply(dc: &Arc<dyn DataChannel>, msg: HostMessage) {
    match msg.encode() {
        Ok(bytes) => {
            if let Err(e) = dc.send(bytes::BytesMut::from(&bytes[..])).await {
                tracing::debug!(error = %e, "input channel reply failed");
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot encode a host message"),
    }
}
