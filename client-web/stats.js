// stats.js — turns RTCPeerConnection.getStats() reports into the figures of the stats overlay.
//
// summarize() is pure (a report and the previous sample in, figures out) so node unit tests can
// feed it hand-made reports; StatsSampler keeps the previous sample per peer connection. Rates
// and per-frame averages are deltas between two samples; the first sample has only totals.

/**
 * @typedef {object} StatsSummary
 * @property {number} at            sample time (ms, the report's timestamp)
 * @property {number|null} fps      frames per second (framesPerSecond, else Δ framesDecoded / Δt)
 * @property {number|null} bitrateKbps   video Δ bytesReceived, kbit/s
 * @property {number|null} rttMs    selected candidate pair currentRoundTripTime
 * @property {number|null} decodeMs      Δ totalDecodeTime / Δ framesDecoded
 * @property {number|null} jitterBufferMs  Δ jitterBufferDelay / Δ jitterBufferEmittedCount
 * @property {number|null} width
 * @property {number|null} height
 * @property {number} framesDecoded
 * @property {number} framesDropped
 * @property {number} packetsLost   video, cumulative
 * @property {number} packetsReceived  video, cumulative
 * @property {number} nackCount
 * @property {number} pliCount
 * @property {number} freezeCount
 * @property {number} freezeSeconds  totalFreezesDuration
 * @property {string|null} codec    e.g. "H264 42e01f" / "VP8"
 * @property {string|null} decoder  decoderImplementation, when Chromium shows it
 * @property {string|null} path     e.g. "udp host → prflx"
 * @property {object|null} audio    the sound's inbound stream: {levelDb, jitterMs, jitterBufferMs,
 *                                  packetsLost, packetsReceived, concealedPct, bitrateKbps}
 * @property {object} raw           totals kept for the next delta
 */

/** Computes a StatsSummary from a report (anything with .values() or forEach) and `prev`. */
export function summarize(report, prev = null) {
  const all = [];
  if (typeof report.values === 'function') for (const s of report.values()) all.push(s);
  else report.forEach((s) => all.push(s));
  const byId = new Map(all.map((s) => [s.id, s]));

  // The video stream with most data (there is one, unless the server sends several).
  const video = all
    .filter((s) => s.type === 'inbound-rtp' && (s.kind ?? s.mediaType) === 'video')
    .sort((a, b) => (b.bytesReceived ?? 0) - (a.bytesReceived ?? 0))[0];
  const pair = selectedPair(all, byId);
  const audio = all.find((s) => s.type === 'inbound-rtp' && (s.kind ?? s.mediaType) === 'audio' && (s.packetsReceived ?? 0) > 0);

  const raw = {
    at: video?.timestamp ?? pair?.timestamp ?? Date.now(),
    bytes: video?.bytesReceived ?? 0,
    framesDecoded: video?.framesDecoded ?? 0,
    decodeTime: video?.totalDecodeTime ?? 0,
    jbDelay: video?.jitterBufferDelay ?? 0,
    jbEmitted: video?.jitterBufferEmittedCount ?? 0,
    streamId: video?.id ?? null,
    audioBytes: audio?.bytesReceived ?? 0,
    audioJbDelay: audio?.jitterBufferDelay ?? 0,
    audioJbEmitted: audio?.jitterBufferEmittedCount ?? 0,
  };
  // Deltas only make sense against the same stream; a reconnect starts a new one.
  const base = prev && prev.streamId === raw.streamId && raw.at > prev.at ? prev : null;
  const dt = base ? (raw.at - base.at) / 1000 : 0;
  const dFrames = base ? raw.framesDecoded - base.framesDecoded : 0;
  const dEmitted = base ? raw.jbEmitted - base.jbEmitted : 0;

  const codec = video?.codecId ? byId.get(video.codecId) : null;
  const local = pair ? byId.get(pair.localCandidateId) : null;
  const remote = pair ? byId.get(pair.remoteCandidateId) : null;

  return {
    at: raw.at,
    fps: video?.framesPerSecond ?? (base && dt > 0 ? dFrames / dt : null),
    bitrateKbps: base && dt > 0 ? ((raw.bytes - base.bytes) * 8) / dt / 1000 : null,
    rttMs: pair?.currentRoundTripTime != null ? pair.currentRoundTripTime * 1000 : null,
    decodeMs: dFrames > 0 ? ((raw.decodeTime - base.decodeTime) / dFrames) * 1000 : null,
    jitterBufferMs: dEmitted > 0 ? ((raw.jbDelay - base.jbDelay) / dEmitted) * 1000 : null,
    width: video?.frameWidth ?? null,
    height: video?.frameHeight ?? null,
    framesDecoded: raw.framesDecoded,
    framesDropped: video?.framesDropped ?? 0,
    packetsLost: video?.packetsLost ?? 0,
    packetsReceived: video?.packetsReceived ?? 0,
    nackCount: video?.nackCount ?? 0,
    pliCount: video?.pliCount ?? 0,
    freezeCount: video?.freezeCount ?? 0,
    freezeSeconds: video?.totalFreezesDuration ?? 0,
    codec: codec ? codecLabel(codec) : null,
    decoder: video?.decoderImplementation ?? null,
    path: local && remote ? `${local.protocol ?? ''} ${local.candidateType} → ${remote.candidateType}`.trim() : null,
    audio: audio ? audioSummary(audio, raw, base, dt) : null,
    raw,
  };
}

function audioSummary(a, raw, base, dt) {
  const dEmitted = base ? raw.audioJbEmitted - base.audioJbEmitted : 0;
  const level = a.audioLevel; // 0..1, linear
  return {
    levelDb: level == null ? null : level > 0 ? 20 * Math.log10(level) : -Infinity,
    jitterMs: a.jitter != null ? a.jitter * 1000 : null,
    jitterBufferMs: dEmitted > 0 ? ((raw.audioJbDelay - base.audioJbDelay) / dEmitted) * 1000 : null,
    packetsLost: a.packetsLost ?? 0,
    packetsReceived: a.packetsReceived ?? 0,
    concealedPct: a.totalSamplesReceived ? (100 * (a.concealedSamples ?? 0)) / a.totalSamplesReceived : null,
    bitrateKbps: base && dt > 0 ? ((raw.audioBytes - base.audioBytes) * 8) / dt / 1000 : null,
  };
}

function selectedPair(all, byId) {
  const transport = all.find((s) => s.type === 'transport' && s.selectedCandidatePairId);
  if (transport) return byId.get(transport.selectedCandidatePairId) ?? null;
  return all.find((s) => s.type === 'candidate-pair' && (s.selected || (s.nominated && s.state === 'succeeded'))) ?? null;
}

function codecLabel(codec) {
  const name = (codec.mimeType ?? '').replace(/^video\//i, '');
  const profile = /profile-level-id=([0-9a-f]{6})/i.exec(codec.sdpFmtpLine ?? '');
  return profile ? `${name} ${profile[1]}` : name;
}

/** Samples one peer connection after another; deltas restart when the connection changes. */
export class StatsSampler {
  #pc = null;
  #prev = null;

  /** @param {RTCPeerConnection|null} pc  @returns {Promise<StatsSummary|null>} */
  async sample(pc) {
    if (!pc) return null;
    if (pc !== this.#pc) {
      this.#pc = pc;
      this.#prev = null;
    }
    const summary = summarize(await pc.getStats(), this.#prev);
    if (pc === this.#pc) this.#prev = summary.raw;
    return summary;
  }
}

/** bit/s as "2.50 Mbit/s" ("–" for 0: not known). */
function mbit(bps) {
  return bps ? `${(bps / 1e6).toFixed(2)} Mbit/s` : '–';
}

function audioRows(a, num) {
  const level = a.levelDb == null ? '–' : a.levelDb === -Infinity ? 'silent' : `${a.levelDb.toFixed(0)} dBFS`;
  return [
    ['Sound', `${level}, ${num(a.bitrateKbps, 0, ' kbit/s')}`],
    ['Sound jitter', `${num(a.jitterMs, 1, ' ms')} (buffer ${num(a.jitterBufferMs, 0, ' ms')})`],
    ['Sound lost', `${a.packetsLost} of ${a.packetsReceived + a.packetsLost}, ${num(a.concealedPct, 1, ' % concealed')}`],
  ];
}

/** Formats a summary as [label, value] rows for the overlay (`link`: the host's `linkStats`). */
export function formatRows(s) {
  const num = (v, digits = 0, unit = '') => (v == null || Number.isNaN(v) ? '–' : `${v.toFixed(digits)}${unit}`);
  const bitrate = s.bitrateKbps == null ? '–' : s.bitrateKbps >= 1000 ? `${(s.bitrateKbps / 1000).toFixed(2)} Mbit/s` : `${s.bitrateKbps.toFixed(0)} kbit/s`;
  return [
    ...(s.glassToGlass ? [['Glass-to-glass', `${s.glassToGlass.ms.toFixed(1)} ms (capture → compositor, ±${s.glassToGlass.uncertaintyMs.toFixed(1)})`]] : []),
    ['Resolution', s.width && s.height ? `${s.width}×${s.height}` : '–'],
    ['FPS', num(s.fps, 1)],
    ['Bitrate', bitrate],
    ['RTT', num(s.rttMs, 1, ' ms')],
    ['Decode', num(s.decodeMs, 2, ' ms/frame')],
    ['Jitter buffer', num(s.jitterBufferMs, 1, ' ms/frame')],
    ['Packets lost', `${s.packetsLost} of ${s.packetsReceived + s.packetsLost}`],
    ['Frames', `${s.framesDecoded} decoded, ${s.framesDropped} dropped`],
    ['NACK / PLI', `${s.nackCount} / ${s.pliCount}`],
    ['Freezes', `${s.freezeCount} (${(s.freezeSeconds ?? 0).toFixed(1)} s)`],
    ...(s.link ? [['Estimate / encoder', `${mbit(s.link.estimateBps)} / ${mbit(s.link.encoderBps)}`]] : []),
    ...(s.audio ? audioRows(s.audio, num) : [['Sound', 'none']]),
    ['Codec', s.codec ?? '–'],
    ...(s.decoder ? [['Decoder', s.decoder]] : []),
    ['Path', s.path ?? '–'],
  ];
}
