#!/usr/bin/env bash
# Installs what edgedesk needs on Debian 12, and only what is missing (idempotent, quiet when
# nothing is to do):
#   - apt packages for building (FFmpeg dev libraries, clang for bindgen, nasm, cmake) and for
#     running and testing (ffmpeg, Xvfb, Xorg dummy driver, openbox, tint2, xterm, Chromium, fonts,
#     GStreamer's webrtcbin for the bench tool's baseline, iproute2 for network namespaces,
#     PulseAudio for each session's sound);
#   - client-web's node packages (`npm ci`, when node_modules is missing or the lockfile changed);
#   - checks that a Rust toolchain (cargo) new enough for the workspace is on PATH.
# Runs as root, or as a user with sudo (apt only; npm runs as the calling user).
#
# Usage: scripts/setup.sh [--check]
#   --check   install nothing; list what is missing and exit 1 if anything is.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

build_pkgs=(pkg-config clang libclang-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
  libavdevice-dev libavfilter-dev libswresample-dev libvpx-dev nasm cmake)
runtime_pkgs=(jq ffmpeg xvfb xauth x11-utils x11-xserver-utils x11-xkb-utils xterm openbox tint2 chromium fonts-dejavu-core
  xserver-xorg-core xserver-xorg-video-dummy iproute2 util-linux
  # the session's sound server and its tools (pacat/parec/pactl)
  pulseaudio pulseaudio-utils
  # impaired-network tests: nftables (random loss), coturn (TURN relay)
  nftables coturn
  # the bench tool's baseline: GStreamer's webrtcbin as a WHEP server (benches/servers/)
  python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-nice gstreamer1.0-x)
node_min_major=20

check_only=0
case "${1:-}" in
  "") ;;
  --check) check_only=1 ;;
  -h | --help)
    sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  *)
    printf 'setup: unknown argument %q (try --help)\n' "$1" >&2
    exit 2
    ;;
esac

say() { printf 'setup: %s\n' "$*" >&2; }
die() {
  say "error: $*"
  exit 1
}

missing=() # human-readable list for --check and the final report

# ---- apt packages ------------------------------------------------------------------------------

pkg_installed() {
  # No pipe into `grep -q`: under pipefail, grep leaving early made dpkg die of SIGPIPE and an
  # installed package read as missing.
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == 'install ok installed' ]]
}

apt_wanted=("${build_pkgs[@]}" "${runtime_pkgs[@]}")
command -v node >/dev/null 2>&1 || apt_wanted+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_wanted+=(npm)

apt_missing=()
for pkg in "${apt_wanted[@]}"; do
  pkg_installed "$pkg" || apt_missing+=("$pkg")
done

if ((${#apt_missing[@]})); then
  if ((check_only)); then
    missing+=("apt: ${apt_missing[*]}")
  else
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian 12 (bookworm). Install by hand: ${apt_missing[*]}"
    as_root=()
    if ((EUID != 0)); then
      command -v sudo >/dev/null 2>&1 || die "not root and no sudo: run as root to install ${apt_missing[*]}"
      as_root=(sudo)
    fi
    say "installing ${#apt_missing[@]} apt package(s): ${apt_missing[*]}"
    log="$(mktemp -t edgedesk-setup-apt.XXXXXX)"
    if ! { "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
      "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${apt_missing[@]}"; } >"$log" 2>&1; then
      tail -n 25 "$log" >&2
      die "apt-get failed (full log: $log)"
    fi
    rm -f "$log"
  fi
fi

# ---- node and client-web packages -----------------------------------------------------------------

if command -v node >/dev/null 2>&1; then
  node_major="$(node -p 'process.versions.node.split(".")[0]')"
  if ((node_major < node_min_major)); then
    say "warning: node $(node --version) is older than $node_min_major (playwright-core needs >= $node_min_major);" \
      "install a newer one (e.g. NodeSource's nodejs_20.x apt repository)"
  fi
fi

client="$root/client-web"
stamp="$client/node_modules/.edgedesk-lock.sha256"
if [[ -f "$client/package-lock.json" ]]; then
  lock_sum="$(sha256sum "$client/package-lock.json" | cut -d' ' -f1)"
  if [[ ! -d "$client/node_modules" || ! -f "$stamp" || "$(cat "$stamp")" != "$lock_sum" ]]; then
    if ((check_only)); then
      missing+=("node packages: client-web/node_modules is missing or older than package-lock.json (npm ci)")
    elif ! command -v npm >/dev/null 2>&1; then
      die "npm not found (nor installed by apt); install node >= $node_min_major and npm"
    else
      log="$(mktemp -t edgedesk-setup-npm.XXXXXX)"
      if ! (cd "$client" && npm ci --no-audit --no-fund --loglevel=error) >"$log" 2>&1; then
        tail -n 25 "$log" >&2
        die "npm ci in client-web failed (full log: $log); it needs the npm registry"
      fi
      rm -f "$log"
      printf '%s\n' "$lock_sum" >"$stamp"
    fi
  fi
fi

# ---- Rust toolchain -------------------------------------------------------------------------------

if ! command -v cargo >/dev/null 2>&1 && [[ -x "${CARGO_HOME:-$HOME/.cargo}/bin/cargo" ]]; then
  say "note: cargo is in ${CARGO_HOME:-$HOME/.cargo}/bin but not on PATH; run: . \"${CARGO_HOME:-$HOME/.cargo}/env\""
  PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
fi
want_rust="$(sed -n 's/^rust-version *= *"\([0-9.]*\)".*/\1/p' "$root/Cargo.toml" 2>/dev/null | head -n 1)"
if ! command -v cargo >/dev/null 2>&1; then
  missing+=("cargo: no Rust toolchain on PATH. Install rustup:
      curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --component rustfmt,clippy
    (offline, Debian's 'apt-get install cargo' gives rustc 1.63, older than this workspace's ${want_rust:-minimum})")
else
  have_rust="$(rustc --version 2>/dev/null | cut -d' ' -f2)"
  if [[ -n "$want_rust" && -n "$have_rust" ]] &&
    [[ "$(printf '%s\n%s\n' "$want_rust" "${have_rust%%-*}" | sort -V | head -n 1)" != "$want_rust" ]]; then
    missing+=("rust: rustc $have_rust is older than the workspace's rust-version $want_rust (rustup update)")
  fi
  for component in fmt clippy; do
    cargo "$component" --version >/dev/null 2>&1 ||
      say "warning: 'cargo $component' is missing (rustup component add ${component/fmt/rustfmt})"
  done
fi

if ((${#missing[@]})); then
  for item in "${missing[@]}"; do say "missing: $item"; done
  exit 1
fi
