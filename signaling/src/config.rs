//! `edgedesk`'s command line, environment and configuration file: what `edgedesk serve` (the
//! control plane) and `edgedesk up` (the control plane and one session) take.
//!
//! Precedence, highest first: a command-line flag, its `EDGEDESK_*` variable, the key in the
//! `--config` TOML file, the default. A file key is the flag's name with `_` for `-`
//! (`--max-sessions` → `max_sessions`); the keys only `edgedesk up` has (its session) go in
//! an `[up]` table, which `serve` ignores. `signaling/edgedesk.example.toml` lists every key
//! with its default. An unknown key or a bad value fails at start, naming the file and the key.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use control::DEFAULT_MAX_CLIPBOARD_BYTES;

use crate::http::IceServer;

#[derive(Parser, Debug)]
#[command(
    name = "edgedesk",
    version,
    about = "A Linux desktop in any browser, over WebRTC",
    args_override_self = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the control plane: the operator API (/api/v1), console and WHEP; sessions are
    /// created through the API (or `edgedesk session create`).
    Serve(ServeArgs),
    /// Start a desktop session on this machine and serve it over HTTP + WebRTC (the control
    /// plane of `serve`, with one session started and its link printed).
    Up(UpArgs),
    /// Operate sessions through a running server's API (create, list, show, delete, token,
    /// revoke).
    Session {
        #[command(flatten)]
        server: crate::cli::ServerArgs,
        #[command(subcommand)]
        command: crate::cli::SessionCommand,
    },
}

/// The control plane's settings, and the defaults of the sessions it starts. Every key can
/// also come from the environment (EDGEDESK_*) or the `--config` file.
#[derive(Args, Debug)]
pub struct ServeArgs {
    /// TOML file with any of these settings (keys: the option names with _ for -).
    #[arg(long, env = "EDGEDESK_CONFIG")]
    pub config: Option<PathBuf>,
    /// HTTP listen address (the browser client, WHEP, API, console, health).
    #[arg(long, env = "EDGEDESK_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Directory for the control socket, session registry and keys; with it, sessions survive
    /// a restart of the control plane (their hosts wait --reconnect-grace for it).
    #[arg(long, env = "EDGEDESK_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Seconds a session's host keeps running without a control plane (with --state-dir).
    #[arg(long, env = "EDGEDESK_RECONNECT_GRACE", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub reconnect_grace: u64,
    /// Size of the virtual display, WIDTHxHEIGHT (ignored with --display).
    #[arg(long, env = "EDGEDESK_SIZE", default_value = "1920x1080", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Maximum frames per second sent (frames are only made when the screen changes).
    #[arg(long, env = "EDGEDESK_FPS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=240))]
    pub fps: u32,
    /// Video bitrate: bits per second, with an optional k/M suffix (e.g. 8M).
    #[arg(long, env = "EDGEDESK_BITRATE", default_value = "8M", value_parser = parse_bitrate)]
    pub bitrate: u64,
    /// Congestion control: gcc (transport-wide CC feedback, a GCC estimate per viewer, the
    /// encoder follows the slowest controlling viewer between --min-bitrate and --max-bitrate;
    /// --bitrate is where it starts) or off (a fixed --bitrate).
    #[arg(long, env = "EDGEDESK_CONGESTION", default_value = "gcc", value_parser = ["gcc", "off"])]
    pub congestion: String,
    /// The lowest bitrate congestion control may set.
    #[arg(long, env = "EDGEDESK_MIN_BITRATE", default_value = "300k", value_parser = parse_bitrate)]
    pub min_bitrate: u64,
    /// The highest bitrate congestion control may set (default: --bitrate).
    #[arg(long, env = "EDGEDESK_MAX_BITRATE", value_parser = parse_bitrate)]
    pub max_bitrate: Option<u64>,
    /// Which X server to start: auto (xorg where its dummy driver is installed, else xvfb),
    /// xvfb (fixed size) or xorg (Xorg + dummy driver: follows the browser window's size).
    #[arg(long, env = "EDGEDESK_DISPLAY_KIND", default_value = "auto", value_parser = parse_display_kind)]
    pub display_kind: String,
    /// Program started on a new display, after the window manager (shell words); "terminal"
    /// is a maximised xterm with a readable font; empty for none.
    #[arg(long, env = "EDGEDESK_APP", default_value = control::DEFAULT_APP)]
    pub app: String,
    /// Window manager started on a new display (shell words); "openbox" is openbox with a
    /// right-click menu, a panel (tint2, if installed) and a background; empty for none.
    #[arg(long, env = "EDGEDESK_WM", default_value = control::DEFAULT_WM)]
    pub wm: String,
    /// Encoder choice: auto, software, hardware, or a backend name such as ffmpeg:libx264.
    #[arg(long, env = "EDGEDESK_ENCODER", default_value = "auto")]
    pub encoder: String,
    /// Video codecs sessions send, in preference order (comma-separated: h264, vp9, av1,
    /// vp8, h265); each viewer gets the first its offer accepts.
    #[arg(long, env = "EDGEDESK_CODECS", default_value = "h264,vp9,av1,vp8,h265", value_parser = parse_codec_list)]
    pub codecs: CodecList,
    /// Local UDP address for WebRTC. A port other than 0 is one UDP port for every viewer
    /// (e.g. 0.0.0.0:3478); port 0 gives each viewer a port of its own. Several addresses
    /// (comma-separated) only with port 0. Default: the listen IP, port 0.
    #[arg(long = "udp", env = "EDGEDESK_UDP", value_delimiter = ',')]
    pub udp: Vec<String>,
    /// The address viewers are told to reach WebRTC at, for a host behind a 1:1 NAT (a cloud
    /// VM's public IP, a Kubernetes node's external address).
    #[arg(long = "public-ip", env = "EDGEDESK_PUBLIC_IP")]
    pub public_ip: Option<std::net::IpAddr>,
    /// STUN/TURN server for ICE, as URL[,username,credential] (repeatable).
    #[arg(
        long = "ice-server",
        env = "EDGEDESK_ICE_SERVERS",
        value_delimiter = ' '
    )]
    pub ice_servers: Vec<String>,
    /// TURN server URL handed to viewers with short-lived credentials from --turn-secret
    /// (repeatable, e.g. turn:turn.example.net:3478?transport=udp).
    #[arg(
        long = "turn-url",
        env = "EDGEDESK_TURN_URLS",
        value_delimiter = ',',
        requires = "turn_secret"
    )]
    pub turn_urls: Vec<String>,
    /// The TURN server's shared secret (coturn: use-auth-secret, static-auth-secret=…):
    /// each viewer gets its own credential, valid --turn-ttl seconds.
    #[arg(
        long,
        env = "EDGEDESK_TURN_SECRET",
        requires = "turn_urls",
        hide_env_values = true
    )]
    pub turn_secret: Option<String>,
    /// Seconds a minted TURN credential stays valid (a relay outlives it only until its next
    /// refresh, so this bounds how long a relayed viewer can stay).
    #[arg(long, env = "EDGEDESK_TURN_TTL", default_value_t = 43200, value_parser = clap::value_parser!(u64).range(60..=604800))]
    pub turn_ttl: u64,
    /// Most viewers a session accepts; more get 503.
    #[arg(long, env = "EDGEDESK_MAX_VIEWERS", default_value_t = 8)]
    pub max_viewers: usize,
    /// Clipboard sharing between the desktop and controlling viewers: both, to-client,
    /// to-server or off.
    #[arg(long, env = "EDGEDESK_CLIPBOARD", default_value = "both", value_parser = parse_clipboard)]
    pub clipboard: String,
    /// Sound: out (the desktop's sound to viewers), both (and controlling viewers'
    /// microphones into the session's default source) or off. Each session runs its own
    /// PulseAudio.
    #[arg(long, env = "EDGEDESK_AUDIO", default_value = "out", value_parser = parse_audio)]
    pub audio: String,
    /// Opus frame length of the sound, ms: 10 (lowest delay) or 20 (fewer packets).
    #[arg(long, env = "EDGEDESK_AUDIO_FRAME_MS", default_value_t = 10, value_parser = parse_audio_frame_ms)]
    pub audio_frame_ms: u32,
    /// Largest clipboard text either way, in bytes (longer texts are dropped whole).
    #[arg(long, env = "EDGEDESK_CLIPBOARD_MAX_BYTES", default_value_t = DEFAULT_MAX_CLIPBOARD_BYTES, value_parser = parse_clipboard_max)]
    pub clipboard_max_bytes: usize,
    /// File holding the operator key for the API (`/api/v1`); default: a random key, printed
    /// on an `Operator key:` line (kept in --state-dir, if given).
    #[arg(long, env = "EDGEDESK_OPERATOR_KEY_FILE")]
    pub operator_key_file: Option<PathBuf>,
    /// The operator key itself (prefer the file: a command line is visible to local users).
    #[arg(long, env = "EDGEDESK_OPERATOR_KEY", hide_env_values = true)]
    pub operator_key: Option<String>,
    /// Most sessions this node runs at once (the API answers 503 beyond).
    #[arg(long, env = "EDGEDESK_MAX_SESSIONS", default_value_t = crate::remote::DEFAULT_CAPACITY)]
    pub max_sessions: usize,
}

/// `edgedesk up`: [`ServeArgs`] and the session it starts.
#[derive(Args, Debug)]
pub struct UpArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// A fixed bearer token accepted for control (default: a random signed join token).
    #[arg(long, env = "EDGEDESK_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Stream an existing X display (e.g. :0) instead of starting one.
    #[arg(long, env = "EDGEDESK_DISPLAY")]
    pub display: Option<String>,
    /// Session name (the WHEP path is /whep/NAME).
    #[arg(long, env = "EDGEDESK_SESSION", default_value = "default")]
    pub session: String,
    /// Lifetime of the printed join token, in seconds.
    #[arg(long, env = "EDGEDESK_TOKEN_TTL", default_value_t = 12 * 3600)]
    pub token_ttl: u64,
}

/// Why the command line (or its config file) was refused.
#[derive(Debug)]
pub enum ParseError {
    /// Clap's own (also `--help` and `--version`: [`clap::Error::exit`] prints them).
    Clap(clap::Error),
    /// The config file: its path, the key and why.
    Config(String),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Clap(e) => write!(f, "{}", e.render()),
            ParseError::Config(m) => f.write_str(m),
        }
    }
}

/// Parses the command line `args` (with `args[0]` the program) after merging in the
/// `--config` file's keys (see the module docs).
pub fn parse<I, T>(args: I) -> Result<Cli, ParseError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
    let merged = with_config_file(&args).map_err(ParseError::Config)?;
    let matches = Cli::command()
        .try_get_matches_from(merged)
        .map_err(ParseError::Clap)?;
    Cli::from_arg_matches(&matches).map_err(ParseError::Clap)
}

/// `args` with the `--config` file's keys inserted right after the subcommand (so flags
/// given on the command line come later and win); keys whose variable is set are left out
/// (the environment wins over the file).
fn with_config_file(args: &[OsString]) -> Result<Vec<OsString>, String> {
    let Some(sub) = args.get(1).and_then(|a| a.to_str()) else {
        return Ok(args.to_vec());
    };
    if !matches!(sub, "serve" | "up") {
        return Ok(args.to_vec());
    }
    let mut file = std::env::var_os("EDGEDESK_CONFIG").map(PathBuf::from);
    let mut it = args.iter().skip(2);
    while let Some(a) = it.next() {
        let a = a.to_string_lossy();
        if a == "--config" {
            file = it.next().map(PathBuf::from);
        } else if let Some(v) = a.strip_prefix("--config=") {
            file = Some(PathBuf::from(v));
        } else if a == "--" {
            break;
        }
    }
    let Some(file) = file else {
        return Ok(args.to_vec());
    };
    let injected = config_args(&file, sub)?;
    let mut out = args[..2].to_vec();
    out.extend(injected.into_iter().map(OsString::from));
    out.extend_from_slice(&args[2..]);
    Ok(out)
}

/// The flags the config file `path` stands for, for subcommand `sub`, each checked alone.
pub fn config_args(path: &Path, sub: &str) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("config file {}: {e}", path.display()))?;
    let cli = Cli::command();
    let cmd = cli
        .find_subcommand(sub)
        .ok_or_else(|| format!("no subcommand {sub}"))?;
    // `[up]`: the keys of the session `edgedesk up` starts (`serve` ignores the table).
    let mut pairs: Vec<(&String, &toml::Value)> = Vec::new();
    for (key, value) in &table {
        match (key.as_str(), value) {
            ("up", toml::Value::Table(up)) => {
                if sub == "up" {
                    pairs.extend(up.iter());
                }
            }
            _ => pairs.push((key, value)),
        }
    }
    let mut out = Vec::new();
    for (key, value) in pairs {
        let long = key.replace('_', "-");
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()) && long != "config" && long != "help")
            .ok_or_else(|| {
                format!(
                    "config file {}: unknown key `{key}` for edgedesk {sub} (see signaling/edgedesk.example.toml)",
                    path.display()
                )
            })?;
        if arg.get_env().is_some_and(|v| std::env::var_os(v).is_some()) {
            continue;
        }
        let values: Vec<String> = match value {
            toml::Value::Array(items) => items
                .iter()
                .map(|v| scalar(v).ok_or(()))
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    format!(
                        "config file {}: key `{key}`: a list of strings or numbers expected",
                        path.display()
                    )
                })?,
            v => vec![scalar(v).ok_or_else(|| {
                format!(
                    "config file {}: key `{key}`: a string, number or boolean expected",
                    path.display()
                )
            })?],
        };
        for v in values {
            let flag = format!("--{long}={v}");
            // Each key alone, so that an error names it.
            Cli::command()
                .try_get_matches_from(["edgedesk", sub, &flag])
                .map_err(|e| {
                    let e = e.render().to_string();
                    let why = e
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .trim_start_matches("error: ");
                    format!("config file {}: key `{key}`: {why}", path.display())
                })?;
            out.push(flag);
        }
    }
    Ok(out)
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

pub fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("size must be WIDTHxHEIGHT, got {s:?}"))?;
    let w: u32 = w
        .trim()
        .parse()
        .map_err(|_| format!("bad width in {s:?}"))?;
    let h: u32 = h
        .trim()
        .parse()
        .map_err(|_| format!("bad height in {s:?}"))?;
    if !(64..=8192).contains(&w) || !(64..=8192).contains(&h) {
        return Err(format!("size {w}x{h} is outside 64x64 ..= 8192x8192"));
    }
    Ok((w, h))
}

pub fn parse_bitrate(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1_000),
        Some('m' | 'M') => (&s[..s.len() - 1], 1_000_000),
        _ => (s, 1),
    };
    let v: f64 = num.parse().map_err(|_| format!("bad bitrate {s:?}"))?;
    let bps = (v * mult as f64) as u64;
    if !(100_000..=500_000_000).contains(&bps) {
        return Err(format!("bitrate {bps} bit/s is outside 100k ..= 500M"));
    }
    Ok(bps)
}

fn parse_clipboard_max(s: &str) -> Result<usize, String> {
    let n: usize = s
        .trim()
        .parse()
        .map_err(|_| format!("bad byte count {s:?}"))?;
    // An X request (one ChangeProperty) must carry the text: stay well under 16 MiB.
    if !(1..=8 << 20).contains(&n) {
        return Err(format!("clipboard cap {n} is outside 1 ..= 8388608 bytes"));
    }
    Ok(n)
}

/// A `--codecs` list (see [`control::parse_codecs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecList(pub Vec<String>);

fn parse_codec_list(s: &str) -> Result<CodecList, String> {
    control::parse_codecs(s).map(CodecList)
}

/// `--clipboard`: one of [`control::CLIPBOARD_POLICIES`].
fn parse_clipboard(s: &str) -> Result<String, String> {
    if control::CLIPBOARD_POLICIES.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "clipboard policy must be one of {}, got {s:?}",
            control::CLIPBOARD_POLICIES.join(", ")
        ))
    }
}

/// `--audio`: one of [`control::AUDIO_MODES`].
fn parse_audio(s: &str) -> Result<String, String> {
    if control::AUDIO_MODES.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "audio must be one of {}, got {s:?}",
            control::AUDIO_MODES.join(", ")
        ))
    }
}

/// `--audio-frame-ms`: 10 or 20.
fn parse_audio_frame_ms(s: &str) -> Result<u32, String> {
    match s {
        "10" => Ok(10),
        "20" => Ok(20),
        _ => Err(format!("the Opus frame length is 10 or 20 ms, got {s:?}")),
    }
}

/// `--display-kind`: one of [`control::DISPLAY_KINDS`].
fn parse_display_kind(s: &str) -> Result<String, String> {
    if control::DISPLAY_KINDS.contains(&s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "display kind must be auto, xvfb or xorg, got {s:?}"
        ))
    }
}

/// `--ice-server URL[,username,credential]`.
pub fn parse_ice_server(s: &str) -> Result<IceServer, String> {
    let mut parts = s.split(',');
    let url = parts.next().unwrap_or_default().to_owned();
    if !(url.starts_with("stun:") || url.starts_with("turn:") || url.starts_with("turns:")) {
        return Err(format!(
            "ICE server {url:?} must start with stun:, turn: or turns:"
        ));
    }
    Ok(IceServer {
        urls: vec![url],
        username: parts.next().map(str::to_owned),
        credential: parts.next().map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const EXAMPLE: &str = include_str!("../edgedesk.example.toml");

    #[test]
    fn sizes_and_bitrates_parse_and_reject_nonsense() {
        assert_eq!(parse_size("1920x1080"), Ok((1920, 1080)));
        assert!(parse_size("0x0").is_err());
        assert!(parse_size("100000x100000").is_err());
        assert!(parse_size("big").is_err());
        assert_eq!(parse_bitrate("8M"), Ok(8_000_000));
        assert_eq!(parse_bitrate("2500k"), Ok(2_500_000));
        assert!(parse_bitrate("1").is_err());
        assert!(parse_bitrate("lots").is_err());
    }

    #[test]
    fn ice_servers_need_a_scheme() {
        assert!(parse_ice_server("stun:127.0.0.1:3478").is_ok());
        let t = parse_ice_server("turn:127.0.0.1:3478,u,p").unwrap();
        assert_eq!(t.username.as_deref(), Some("u"));
        assert!(parse_ice_server("http://x").is_err());
    }

    /// `up`'s options, as flags (`--size`), without --help/--version.
    fn up_flags() -> BTreeSet<String> {
        let cli = Cli::command();
        let up = cli.find_subcommand("up").expect("up subcommand");
        up.get_arguments()
            .filter_map(|a| a.get_long().map(|l| format!("--{l}")))
            .filter(|l| l != "--help")
            .collect()
    }

    /// The README's configuration table and the code list the same options and variables.
    #[test]
    fn readme_documents_every_option() {
        let readme = include_str!("../../README.md");
        let in_readme: BTreeSet<String> = readme
            .lines()
            .filter(|l| l.starts_with("| `--"))
            .filter_map(|l| l.split('`').nth(1).map(str::to_owned))
            .collect();
        assert_eq!(
            up_flags(),
            in_readme,
            "README configuration table vs `edgedesk up`"
        );
        let cli = Cli::command();
        for a in cli.find_subcommand("up").unwrap().get_arguments() {
            if let Some(env) = a.get_env() {
                let env = env.to_str().unwrap();
                assert!(
                    readme.contains(&format!("`{env}`")),
                    "{env} is not in the README"
                );
            }
        }
        assert!(readme.contains("signaling/edgedesk.example.toml"));
    }

    /// The example file names every key (set, or commented out where there is no default),
    /// and nothing else.
    #[test]
    fn the_example_config_lists_every_key() {
        let in_example: BTreeSet<String> = EXAMPLE
            .lines()
            .map(|l| l.trim_start_matches('#').trim())
            .filter_map(|l| l.split_once(" = ").map(|(k, _)| k.trim()))
            .filter(|k| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .map(|k| format!("--{}", k.replace('_', "-")))
            .collect();
        let mut want = up_flags();
        want.remove("--config");
        assert_eq!(
            in_example, want,
            "signaling/edgedesk.example.toml vs `edgedesk up`"
        );
    }

    fn example_file() -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "edgedesk-example-{:016x}.toml",
            rand::random::<u64>()
        ));
        std::fs::write(&p, EXAMPLE).unwrap();
        p
    }

    /// The example's values are the defaults: loading it changes nothing.
    #[test]
    fn the_example_config_holds_the_defaults() {
        let p = example_file();
        let with = parse(["edgedesk", "up", "--config", p.to_str().unwrap()]).unwrap();
        let without = parse(["edgedesk", "up"]).unwrap();
        let (Command::Up(mut with), Command::Up(without)) = (with.command, without.command) else {
            panic!("up")
        };
        with.serve.config = None;
        assert_eq!(format!("{with:?}"), format!("{without:?}"));
        std::fs::remove_file(p).unwrap();
    }

    fn write_config(text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!(
            "edgedesk-config-{:016x}.toml",
            rand::random::<u64>()
        ));
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn file_values_apply_and_flags_win() {
        let p = write_config(
            "fps = 30\nsize = \"800x600\"\nudp = [\"127.0.0.1:0\", \"127.0.0.1:5000\"]\n",
        );
        let cli = parse([
            "edgedesk",
            "serve",
            "--config",
            p.to_str().unwrap(),
            "--fps",
            "25",
        ])
        .unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("serve")
        };
        assert_eq!(s.fps, 25, "the flag wins");
        assert_eq!(s.size, (800, 600), "the file applies");
        assert_eq!(s.udp, vec!["127.0.0.1:0", "127.0.0.1:5000"]);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn bad_config_names_the_key_and_why() {
        for (text, key, why) in [
            ("fps = 0\n", "fps", "0"),
            ("size = \"big\"\n", "size", "WIDTHxHEIGHT"),
            ("colour = \"red\"\n", "colour", "unknown key"),
            ("listen = \"nowhere\"\n", "listen", "nowhere"),
            ("fps = [[1]]\n", "fps", "list"),
            ("max_sessions = \"many\"\n", "max_sessions", "many"),
        ] {
            let p = write_config(text);
            let e = parse(["edgedesk", "serve", "--config", p.to_str().unwrap()])
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("`{key}`")), "{text}: {e}");
            assert!(e.contains(why), "{text}: {e}");
            assert!(e.contains(p.to_str().unwrap()), "{text}: {e}");
            std::fs::remove_file(p).unwrap();
        }
        let p = write_config("fps = \n");
        let e = parse(["edgedesk", "serve", "--config", p.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("config file"), "{e}");
        std::fs::remove_file(p).unwrap();
        let e = parse(["edgedesk", "serve", "--config", "/nonexistent.toml"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent.toml"), "{e}");
    }

    #[test]
    fn the_up_table_is_for_up_only() {
        let p = write_config("fps = 30\n[up]\nsession = \"desk\"\n");
        let cli = parse(["edgedesk", "up", "--config", p.to_str().unwrap()]).unwrap();
        let Command::Up(u) = cli.command else {
            panic!("up")
        };
        assert_eq!((u.session.as_str(), u.serve.fps), ("desk", 30));
        let cli = parse(["edgedesk", "serve", "--config", p.to_str().unwrap()]).unwrap();
        let Command::Serve(s) = cli.command else {
            panic!("serve")
        };
        assert_eq!(s.fps, 30);
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn up_only_keys_are_refused_by_serve() {
        let p = write_config("session = \"x\"\n");
        let e = parse(["edgedesk", "serve", "--config", p.to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown key `session` for edgedesk serve"),
            "{e}"
        );
        std::fs::remove_file(p).unwrap();
    }
}
