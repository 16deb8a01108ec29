#!/usr/bin/env bash
# Measures, on one Xvfb display in one run:
#   1. edgedesk streaming a static screen to one viewer (idle CPU, bitrate);
#   2. edgedesk streaming a moving 1920x1080 picture (ffplay testsrc2 at 60 fps) to one viewer;
#   3. `ffmpeg -f x11grab ... -c:v libx264 -preset ultrafast -tune zerolatency` on the same
#      moving picture (the baseline), encoding to /dev/null.
# CPU is read from /proc (user+system time of the process) over the same window each time.
# Usage: scripts/measure-cpu.sh [seconds]   (release binaries are built first)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
secs="${1:-10}"
size=1920x1080
fps=60
cargo build -q --release -p edgedesk-signaling -p edgedesk-host -p edgedesk-bench --bins
ed="$root/target/release/edgedesk"
bench="$root/target/release/edgedesk-bench"
tmp="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

disp=":$((90 + RANDOM % 100))"
Xvfb "$disp" -screen 0 "${size}x24" -nolisten tcp -noreset >/dev/null 2>&1 &
pids+=($!)
for _ in $(seq 50); do xdpyinfo -display "$disp" >/dev/null 2>&1 && break; sleep 0.1; done

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"
# cpu_percent PID SECONDS: percent of one core used by PID over the window
cpu_percent() {
  local a b
  a="$(ticks "$1")"
  sleep "$2"
  b="$(ticks "$1")"
  awk -v a="$a" -v b="$b" -v hz="$hz" -v s="$2" 'BEGIN { printf "%.1f", (b - a) * 100 / (hz * s) }'
}

"$ed" up --display "$disp" --listen 127.0.0.1:0 --token measure --fps "$fps" --bitrate 8M >"$tmp/ed.out" 2>"$tmp/ed.err" &
edpid=$!
pids+=("$edpid")
for _ in $(seq 100); do grep -q '^WHEP: ' "$tmp/ed.out" && break; sleep 0.1; done
whep="$(sed -n 's/^WHEP: //p' "$tmp/ed.out")"

viewer() { "$bench" run --whep "$whep" --token measure --seconds "$1" --json >"$2" 2>>"$tmp/bench.err"; }

echo "display $disp ${size}, ${secs}s windows, 2-core machine"
# 1. idle: a viewer, a static screen
viewer "$((secs + 3))" "$tmp/idle.json" &
vpid=$!
sleep 2
idle="$(cpu_percent "$edpid" "$secs")"
wait "$vpid"
echo "edgedesk, static screen, 1 viewer:   ${idle}% of a core; viewer: $(jq -c '{first_frame_ms, fps, bitrate_kbps}' "$tmp/idle.json")"

# 2. moving picture
export DISPLAY="$disp"
ffplay -loglevel quiet -f lavfi -i "testsrc2=size=${size}:rate=${fps}" -noborder -left 0 -top 0 \
  -x 1920 -y 1080 -an >/dev/null 2>&1 </dev/null &
play=$!
pids+=("$play")
sleep 2
viewer "$((secs + 3))" "$tmp/moving.json" &
vpid=$!
sleep 2
moving="$(cpu_percent "$edpid" "$secs")"
playcpu="$(cpu_percent "$play" 2)"
wait "$vpid"
echo "edgedesk, moving 1080p60, 1 viewer:  ${moving}% of a core; viewer: $(jq -c '{first_frame_ms, fps, bitrate_kbps, lost_packets, decode_ms_mean}' "$tmp/moving.json")"
kill "$edpid"
wait "$edpid" 2>/dev/null || true

# 3. the ffmpeg baseline on the same moving picture
ffmpeg -loglevel fatal -f x11grab -framerate "$fps" -video_size "$size" -i "$disp" \
  -c:v libx264 -preset ultrafast -tune zerolatency -b:v 8M -progress "$tmp/ff.progress" -f null - </dev/null &
ff=$!
pids+=("$ff")
sleep 2
f0="$(grep '^frame=' "$tmp/ff.progress" | tail -1 | cut -d= -f2)"
base="$(cpu_percent "$ff" "$secs")"
f1="$(grep '^frame=' "$tmp/ff.progress" | tail -1 | cut -d= -f2)"
fffps="$(awk -v a="$f0" -v b="$f1" -v s="$secs" 'BEGIN { printf "%.1f", (b - a) / s }')"
echo "ffmpeg x11grab+libx264, moving 1080p60: ${base}% of a core at ${fffps} fps encoded (ffplay drawing the picture: ${playcpu}%)"
awk -v e="$moving" -v b="$base" 'BEGIN { if (b > 0) printf "ratio edgedesk/ffmpeg: %.2f\n", e / b }'
