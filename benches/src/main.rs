//! `edgedesk-bench`: the latency benchmark tool.
//!
//! Today it has `run`: a headless WHEP viewer that connects to any WHEP endpoint, receives and
//! decodes the video and reports time to first frame, received fps, bitrate, loss and decode
//! time. Frame-code latency (glass-to-glass, click-to-photon) and `local` are tracked in the
//! bench issue.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use codec::decoder::Decoder;
use codec::Codec;
use host::client::{whep_delete, whep_post, ViewerClient};

#[derive(Parser)]
#[command(
    name = "edgedesk-bench",
    version,
    about = "Measure a WebRTC desktop stream"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Connect to a WHEP endpoint as a headless viewer and report what arrives.
    Run {
        /// WHEP endpoint URL, e.g. http://127.0.0.1:8080/whep/default
        #[arg(long)]
        whep: String,
        /// Bearer token.
        #[arg(long, env = "EDGEDESK_TOKEN")]
        token: Option<String>,
        /// How long to watch after the first frame.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// What `run` measured.
#[derive(Debug, serde::Serialize)]
struct RunReport {
    /// From POSTing the offer to the first decoded frame.
    first_frame_ms: f64,
    frames_decoded: u64,
    seconds: f64,
    fps: f64,
    bitrate_kbps: f64,
    lost_packets: u64,
    frames_dropped: u64,
    decode_ms_mean: f64,
    width: u32,
    height: u32,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    match cli.command {
        Cmd::Run {
            whep,
            token,
            seconds,
            json,
        } => {
            let report = rt.block_on(run(whep, token, Duration::from_secs_f64(seconds)))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("first frame     {:>9.1} ms", report.first_frame_ms);
                println!(
                    "resolution      {:>9}",
                    format!("{}x{}", report.width, report.height)
                );
                println!("frames decoded  {:>9}", report.frames_decoded);
                println!("fps             {:>9.1}", report.fps);
                println!("bitrate         {:>9.0} kbit/s", report.bitrate_kbps);
                println!("lost packets    {:>9}", report.lost_packets);
                println!("frames dropped  {:>9}", report.frames_dropped);
                println!("decode          {:>9.2} ms/frame", report.decode_ms_mean);
            }
            Ok(())
        }
    }
}

async fn run(whep: String, token: Option<String>, watch: Duration) -> Result<RunReport> {
    let (mut client, offer) = ViewerClient::new(vec!["127.0.0.1:0".into()]).await?;
    let posted = Instant::now();
    let (w, t) = (whep.clone(), token.clone());
    let answer = tokio::task::spawn_blocking(move || whep_post(&w, t.as_deref(), &offer))
        .await?
        .with_context(|| format!("connecting to {whep}"))?;
    client.accept_answer(answer.answer_sdp.clone()).await?;
    let mut decoder = Decoder::new(Codec::H264)?;
    let mut first: Option<Instant> = None;
    let (mut frames, mut bytes, mut decode_time) = (0u64, 0u64, Duration::ZERO);
    let (mut width, mut height) = (0, 0);
    loop {
        let limit = match first {
            None => Duration::from_secs(10),
            Some(f) => match watch.checked_sub(f.elapsed()) {
                Some(left) => left,
                None => break,
            },
        };
        let Some(frame) = client.next_frame(limit).await else {
            if first.is_none() {
                anyhow::bail!("no video frame arrived within 10 s of the offer");
            }
            break;
        };
        let t = Instant::now();
        let decoded = decoder.decode(&frame.data)?;
        decode_time += t.elapsed();
        for d in decoded {
            first.get_or_insert_with(Instant::now);
            frames += 1;
            (width, height) = (d.width, d.height);
        }
        bytes += frame.bytes as u64;
    }
    let first = first.expect("checked above");
    let secs = first.elapsed().as_secs_f64();
    let c = client.counters();
    let report = RunReport {
        first_frame_ms: (first - posted).as_secs_f64() * 1e3,
        frames_decoded: frames,
        seconds: secs,
        fps: frames.saturating_sub(1) as f64 / secs.max(1e-9),
        bitrate_kbps: bytes as f64 * 8.0 / secs.max(1e-9) / 1e3,
        lost_packets: c.lost_packets,
        frames_dropped: c.frames_dropped,
        decode_ms_mean: decode_time.as_secs_f64() * 1e3 / frames.max(1) as f64,
        width,
        height,
    };
    let (url, t) = (answer.resource_url, token);
    let _ = tokio::task::spawn_blocking(move || whep_delete(&url, t.as_deref())).await;
    client.close().await;
    Ok(report)
}
