//! `edgedesk session …`: the operator API from a shell. Readable tables for people, `--json`
//! for scripts; one clear line and a non-zero exit code for every failure:
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | done |
//! | 2 | bad arguments (also clap's own errors) |
//! | 3 | server unreachable |
//! | 4 | operator key missing or refused (401) |
//! | 5 | session not found (404) |
//! | 6 | the server refused the request (409, 422, 503, …): its message is printed |

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// Connection to the control plane.
#[derive(Args, Debug)]
pub struct ServerArgs {
    /// The control plane's base URL.
    #[arg(long, env = "EDGEDESK_SERVER", default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// File holding the operator key.
    #[arg(long, env = "EDGEDESK_OPERATOR_KEY_FILE")]
    pub operator_key_file: Option<PathBuf>,
    /// The operator key (prefer the file or the environment).
    #[arg(long, env = "EDGEDESK_OPERATOR_KEY", hide_env_values = true)]
    pub operator_key: Option<String>,
    /// Print the server's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum SessionCommand {
    /// Create a session; prints it (its id first).
    Create {
        /// WIDTHxHEIGHT.
        #[arg(long)]
        size: Option<String>,
        #[arg(long)]
        fps: Option<u32>,
        /// Bits per second.
        #[arg(long)]
        bitrate: Option<u64>,
        /// The program to run (`terminal`: the default terminal).
        #[arg(long)]
        command: Option<String>,
        /// auto, xvfb or xorg.
        #[arg(long)]
        display_kind: Option<String>,
        /// Seconds until the session ends by itself.
        #[arg(long)]
        ttl: Option<u64>,
        /// Seconds without a viewer after which the session ends.
        #[arg(long)]
        idle_timeout: Option<u64>,
        #[arg(long)]
        max_viewers: Option<usize>,
        /// both, to-client, to-server or off.
        #[arg(long)]
        clipboard: Option<String>,
        /// Sound: out (the desktop's, to viewers), both (and controlling viewers'
        /// microphones in) or off.
        #[arg(long)]
        audio: Option<String>,
        /// Also wait until it runs (or fails).
        #[arg(long)]
        wait: bool,
    },
    /// List the sessions.
    List,
    /// Show one session.
    Show { id: String },
    /// End a session (its processes, display and viewers).
    Delete { id: String },
    /// Mint a join token and link for a session (prints its id, for `revoke`).
    Token {
        id: String,
        /// control or view.
        #[arg(long, default_value = "control")]
        role: String,
        /// Lifetime in seconds.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Revoke a join token: refused from now on, the viewers that joined with it ended.
    Revoke {
        /// The session's id.
        id: String,
        /// The token's id (`Token id:` of `edgedesk session token`).
        token_id: String,
    },
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct CliError {
    pub code: i32,
    pub message: String,
}

fn fail(code: i32, message: impl Into<String>) -> CliError {
    CliError {
        code,
        message: message.into(),
    }
}

fn key(args: &ServerArgs) -> Result<String, CliError> {
    if let Some(path) = &args.operator_key_file {
        return std::fs::read_to_string(path)
            .map(|k| k.trim().to_owned())
            .map_err(|e| fail(2, format!("cannot read {}: {e}", path.display())));
    }
    args.operator_key.clone().ok_or_else(|| {
        fail(
            4,
            "no operator key: set EDGEDESK_OPERATOR_KEY or pass --operator-key-file",
        )
    })
}

/// `value` as one path segment: percent-encoded but for RFC 3986's unreserved characters (ids
/// are URL-safe base64, so they pass as they are). An empty one is a bad argument (exit 2).
fn segment(what: &str, value: &str) -> Result<String, CliError> {
    if value.is_empty() {
        return Err(fail(2, format!("the {what} is empty")));
    }
    Ok(value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect())
}

/// The line `revoke` prints for the server's `{revoked, viewers_ended}`.
fn revoked_text(answer: &Value) -> String {
    let ended = answer["viewers_ended"].as_u64().unwrap_or(0);
    format!(
        "token {} revoked, {ended} viewer{} ended",
        answer["revoked"].as_str().unwrap_or(""),
        if ended == 1 { "" } else { "s" }
    )
}

/// One request; the JSON answer (or `Value::Null` for an empty one).
fn call(
    args: &ServerArgs,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, CliError> {
    let url = format!("{}{path}", args.server.trim_end_matches('/'));
    let req = ureq::request(method, &url)
        .timeout(Duration::from_secs(30))
        .set("Authorization", &format!("Bearer {}", key(args)?));
    let res = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    match res {
        Ok(r) => {
            let text = r.into_string().unwrap_or_default();
            Ok(if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text)
                    .map_err(|e| fail(6, format!("unreadable answer: {e}")))?
            })
        }
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            Err(match code {
                401 => fail(4, "the server refused the operator key"),
                404 => fail(5, format!("not found: {}", text.trim())),
                _ => fail(6, format!("the server refused ({code}): {}", text.trim())),
            })
        }
        Err(e) => Err(fail(3, format!("cannot reach {}: {e}", args.server))),
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            r.iter()
                .zip(&widths)
                .map(|(cell, w)| format!("{cell:<w$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn session_row(s: &Value) -> Vec<String> {
    let str_of = |v: &Value| v.as_str().map(str::to_owned).unwrap_or_default();
    let spec = &s["spec"];
    vec![
        str_of(&s["id"]),
        str_of(&s["state"]),
        str_of(&s["display"]),
        format!("{}x{}@{}", spec["width"], spec["height"], spec["fps"]),
        str_of(&s["reason"]),
    ]
}

fn header() -> Vec<String> {
    ["ID", "STATE", "DISPLAY", "SIZE", "REASON"]
        .map(String::from)
        .to_vec()
}

/// Runs one `edgedesk session …` command; the text to print.
pub fn run(args: &ServerArgs, cmd: SessionCommand) -> Result<String, CliError> {
    let out = |v: &Value, text: String| {
        if args.json {
            serde_json::to_string_pretty(v).unwrap_or_default()
        } else {
            text
        }
    };
    match cmd {
        SessionCommand::Create {
            size,
            fps,
            bitrate,
            command,
            display_kind,
            ttl,
            idle_timeout,
            max_viewers,
            clipboard,
            audio,
            wait,
        } => {
            let mut body = json!({});
            let mut put = |k: &str, v: Value| {
                if !v.is_null() {
                    body[k] = v;
                }
            };
            put("size", json!(size));
            put("fps", json!(fps));
            put("bitrate", json!(bitrate));
            put("command", json!(command));
            put("display_kind", json!(display_kind));
            put("ttl_secs", json!(ttl));
            put("idle_timeout_secs", json!(idle_timeout));
            put("max_viewers", json!(max_viewers));
            put("clipboard", json!(clipboard));
            put("audio", json!(audio));
            let mut s = call(args, "POST", "/api/v1/sessions", Some(body))?;
            if wait {
                let id = s["id"].as_str().unwrap_or_default().to_owned();
                let deadline = std::time::Instant::now() + Duration::from_secs(60);
                while s["state"] == "starting" && std::time::Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                    s = call(args, "GET", &format!("/api/v1/sessions/{id}"), None)?;
                }
                if s["state"] == "failed" {
                    return Err(fail(
                        6,
                        format!(
                            "session {id} failed: {}",
                            s["reason"].as_str().unwrap_or("")
                        ),
                    ));
                }
            }
            Ok(out(&s, table(&[header(), session_row(&s)])))
        }
        SessionCommand::List => {
            let all = call(args, "GET", "/api/v1/sessions", None)?;
            let mut rows = vec![header()];
            rows.extend(all.as_array().into_iter().flatten().map(session_row));
            Ok(out(&all, table(&rows)))
        }
        SessionCommand::Show { id } => {
            let s = call(args, "GET", &format!("/api/v1/sessions/{id}"), None)?;
            Ok(out(&s, table(&[header(), session_row(&s)])))
        }
        SessionCommand::Delete { id } => {
            call(args, "DELETE", &format!("/api/v1/sessions/{id}"), None)?;
            Ok(out(
                &json!({"id": id, "state": "ended"}),
                format!("{id} ended"),
            ))
        }
        SessionCommand::Token { id, role, ttl } => {
            let mut body = json!({ "role": role });
            if let Some(t) = ttl {
                body["ttl_secs"] = json!(t);
            }
            let t = call(
                args,
                "POST",
                &format!("/api/v1/sessions/{id}/tokens"),
                Some(body),
            )?;
            let text = format!(
                "Join: {}\nWHEP: {}\nToken: {}\nToken id: {}\nRole: {}, expires at {} (Unix time)",
                t["join_url"].as_str().unwrap_or(""),
                t["whep_url"].as_str().unwrap_or(""),
                t["token"].as_str().unwrap_or(""),
                t["token_id"].as_str().unwrap_or(""),
                t["role"].as_str().unwrap_or(""),
                t["expires_unix"]
            );
            Ok(out(&t, text))
        }
        SessionCommand::Revoke { id, token_id } => {
            let path = format!(
                "/api/v1/sessions/{}/tokens/{}",
                segment("session id", &id)?,
                segment("token id", &token_id)?
            );
            let r = call(args, "DELETE", &path, None)?;
            Ok(out(&r, revoked_text(&r)))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use serde_json::json;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        command: SessionCommand,
    }

    #[test]
    fn revoke_takes_the_session_and_the_token_id() {
        let cli = Cli::try_parse_from(["session", "revoke", "S1", "T1"]).unwrap();
        assert!(matches!(
            cli.command,
            SessionCommand::Revoke { id, token_id } if id == "S1" && token_id == "T1"
        ));
        assert!(Cli::try_parse_from(["session", "revoke", "S1"]).is_err());
    }

    #[test]
    fn path_segments_are_encoded_and_never_empty() {
        let id = "3q2-7Xc9Rb0_aB~c.d";
        assert_eq!(
            segment("session id", id).unwrap(),
            id,
            "ids pass as they are"
        );
        assert_eq!(segment("token id", "a/b?c d").unwrap(), "a%2Fb%3Fc%20d");
        assert_eq!(segment("token id", "é").unwrap(), "%C3%A9");
        let err = segment("token id", "").unwrap_err();
        assert_eq!(
            (err.code, err.message.as_str()),
            (2, "the token id is empty")
        );
    }

    #[test]
    fn revoke_says_what_it_ended() {
        assert_eq!(
            revoked_text(&json!({"revoked": "T1", "viewers_ended": 1})),
            "token T1 revoked, 1 viewer ended"
        );
        assert_eq!(
            revoked_text(&json!({"revoked": "T1", "viewers_ended": 0})),
            "token T1 revoked, 0 viewers ended"
        );
    }
}
