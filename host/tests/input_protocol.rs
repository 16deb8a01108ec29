//! The input protocol against its shared spec, `client-web/input-protocol.json` (the client's
//! `tests/input-protocol.test.mjs` checks the JS side against the same file). Fails when the doc
//! table in `src/input/protocol.rs`, the Rust code and the spec disagree.

use edgedesk_host::input::protocol::{
    decode_client, decode_host, index_from_code, key_code_from_index, Button, ClientMessage,
    DecodeError, HostMessage, Limits, NoticeCode, ResizeStatus, TouchPhase, CHANNEL_PROTOCOL,
    CLIPBOARD_PART_BYTES, DEFAULT_MAX_CLIPBOARD_BYTES, DEFAULT_MAX_TEXT_BYTES, KEY_CODES, VERSION,
};
use serde_json::{json, Value};

const SPEC: &str = include_str!("../../client-web/input-protocol.json");
const SOURCE: &str = include_str!("../src/input/protocol.rs");

fn spec() -> Value {
    serde_json::from_str(SPEC).expect("input-protocol.json is valid JSON")
}

fn str_of(v: &Value) -> &str {
    v.as_str()
        .unwrap_or_else(|| panic!("expected a string, got {v}"))
}

fn opcode_of(layout: &Value) -> u8 {
    let hex = str_of(&layout["opcode"]);
    u8::from_str_radix(hex.trim_start_matches("0x"), 16).expect("opcode like 0x01")
}

fn hex_decode(hex: &str) -> Vec<u8> {
    assert_eq!(hex.len() % 2, 0, "odd hex {hex}");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// (opcode, message name, [(field name, field type)]).
type Layout = (u8, String, Vec<(String, String)>);

/// The layouts of one direction, from the spec.
fn spec_layouts(spec: &Value, dir: &str) -> Vec<Layout> {
    spec[dir]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let fields = l["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| (str_of(&f["name"]).to_owned(), str_of(&f["type"]).to_owned()))
                .collect();
            (opcode_of(l), str_of(&l["name"]).to_owned(), fields)
        })
        .collect()
}

/// The same, parsed from the doc tables at the top of protocol.rs: rows like
/// "//! | `0x01` | `keyDown` | `code: u16` | meaning |".
fn doc_layouts() -> Vec<Layout> {
    SOURCE
        .lines()
        .filter(|l| l.starts_with("//! | `0x"))
        .map(|line| {
            let cells: Vec<&str> = line
                .split('|')
                .map(|c| c.trim().trim_matches('`'))
                .collect();
            let opcode = u8::from_str_radix(cells[1].trim_start_matches("0x"), 16).unwrap();
            let fields = if cells[3] == "—" {
                Vec::new()
            } else {
                cells[3]
                    .split(", ")
                    .map(|f| {
                        let (name, ty) =
                            f.split_once(": ").unwrap_or_else(|| panic!("field {f:?}"));
                        (name.to_owned(), ty.to_owned())
                    })
                    .collect()
            };
            (opcode, cells[2].to_owned(), fields)
        })
        .collect()
}

#[test]
fn doc_table_matches_spec() {
    let spec = spec();
    let mut from_spec = spec_layouts(&spec, "clientToHost");
    from_spec.extend(spec_layouts(&spec, "hostToClient"));
    assert_eq!(
        doc_layouts(),
        from_spec,
        "the doc table in protocol.rs and input-protocol.json differ"
    );
}

#[test]
fn constants_match_spec() {
    let spec = spec();
    assert_eq!(spec["version"], json!(VERSION));
    assert_eq!(spec["channelProtocol"], json!(CHANNEL_PROTOCOL));
    assert_eq!(
        spec["limits"]["maxTextBytes"],
        json!(DEFAULT_MAX_TEXT_BYTES)
    );
    assert_eq!(
        spec["limits"]["maxClipboardBytes"],
        json!(DEFAULT_MAX_CLIPBOARD_BYTES)
    );
    assert_eq!(
        spec["limits"]["clipboardPartBytes"],
        json!(CLIPBOARD_PART_BYTES)
    );
    let defaults = Limits::default();
    assert_eq!(defaults.max_text_bytes, DEFAULT_MAX_TEXT_BYTES);
    assert_eq!(defaults.max_clipboard_bytes, DEFAULT_MAX_CLIPBOARD_BYTES);

    assert_eq!(
        spec["keyCodes"],
        json!(KEY_CODES),
        "KEY_CODES differs from the spec's keyCodes"
    );
    for (i, code) in KEY_CODES.iter().enumerate() {
        let i = u16::try_from(i).unwrap();
        assert_eq!(
            (key_code_from_index(i), index_from_code(code)),
            (Some(*code), Some(i))
        );
    }

    let enums = &spec["enums"];
    let names = |all: Vec<(&str, u8)>| {
        all.into_iter()
            .map(|(n, v)| (n.to_owned(), json!(v)))
            .collect()
    };
    let check = |key: &str, all: serde_json::Map<String, Value>| {
        assert_eq!(enums[key].as_object().unwrap(), &all, "enum {key}");
    };
    check(
        "button",
        names(Button::ALL.iter().map(|b| (b.name(), b.as_u8())).collect()),
    );
    check(
        "touchPhase",
        names(
            TouchPhase::ALL
                .iter()
                .map(|p| (p.name(), p.as_u8()))
                .collect(),
        ),
    );
    check(
        "resizeStatus",
        names(
            ResizeStatus::ALL
                .iter()
                .map(|s| (s.name(), s.as_u8()))
                .collect(),
        ),
    );
    check(
        "notice",
        names(
            NoticeCode::KNOWN
                .iter()
                .map(|c| (c.name(), c.as_u8()))
                .collect(),
        ),
    );
}

/// The spec's JSON form of a message (what the JS side's decodeHost returns).
fn client_json(msg: &ClientMessage) -> Value {
    let t = msg.name();
    match msg {
        ClientMessage::KeyDown { key } | ClientMessage::KeyUp { key } => {
            json!({"type": t, "code": key.code()})
        }
        ClientMessage::KeysymDown { key, keysym } => {
            json!({"type": t, "code": key.code(), "keysym": keysym})
        }
        ClientMessage::Locks { flags } => json!({"type": t, "flags": flags}),
        ClientMessage::Text { text }
        | ClientMessage::Clipboard { text }
        | ClientMessage::ClipboardPart { text } => {
            json!({"type": t, "text": text})
        }
        ClientMessage::PointerAbs {
            x,
            y,
            width,
            height,
        } => {
            json!({"type": t, "x": x, "y": y, "width": width, "height": height})
        }
        ClientMessage::PointerRel { dx, dy } | ClientMessage::Wheel { dx, dy } => {
            json!({"type": t, "dx": dx, "dy": dy})
        }
        ClientMessage::ButtonDown { button } | ClientMessage::ButtonUp { button } => {
            json!({"type": t, "button": button.name()})
        }
        ClientMessage::Touch {
            phase,
            id,
            x,
            y,
            width,
            height,
        } => json!({
            "type": t, "phase": phase.name(), "id": id, "x": x, "y": y, "width": width, "height": height
        }),
        ClientMessage::Resize {
            width,
            height,
            dpr_percent,
        } => {
            json!({"type": t, "width": width, "height": height, "dprPercent": dpr_percent})
        }
        ClientMessage::Ping { seq, client_time } => {
            json!({"type": t, "seq": seq, "clientTime": client_time})
        }
        ClientMessage::Heartbeat | ClientMessage::ReleaseAll => json!({"type": t}),
    }
}

fn host_json(msg: &HostMessage) -> Value {
    let t = msg.name();
    match msg {
        HostMessage::Pong {
            seq,
            client_time,
            host_time,
        } => {
            json!({"type": t, "seq": seq, "clientTime": client_time, "hostTime": host_time})
        }
        HostMessage::Clipboard { text } | HostMessage::ClipboardPart { text } => {
            json!({"type": t, "text": text})
        }
        HostMessage::ResizeResult {
            status,
            width,
            height,
        } => {
            json!({"type": t, "status": status.name(), "width": width, "height": height})
        }
        HostMessage::Notice { code } => json!({"type": t, "code": code.name()}),
        HostMessage::Clock {
            rtp_timestamp,
            unix_ms,
        } => json!({"type": t, "rtpTimestamp": rtp_timestamp, "unixMs": unix_ms}),
        HostMessage::LinkStats {
            estimate_bps,
            encoder_bps,
        } => json!({"type": t, "estimateBps": estimate_bps, "encoderBps": encoder_bps}),
    }
}

/// JSON numbers compare by value: 0 and 0.0 are the same number to the spec.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

/// Encodes a spec message from the spec's layout alone, independently of protocol.rs, so that
/// the spec's own vectors are checked against its own table.
fn layout_encode(spec: &Value, dir: &str, msg: &Value) -> Vec<u8> {
    let layout = spec[dir]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == msg["type"])
        .unwrap_or_else(|| panic!("no {dir} layout for {msg}"));
    let mut out = vec![opcode_of(layout)];
    for field in layout["fields"].as_array().unwrap() {
        let value = &msg[str_of(&field["name"])];
        let int = || -> i64 {
            if field["table"] == "keyCodes" {
                let codes = spec["keyCodes"].as_array().unwrap();
                codes
                    .iter()
                    .position(|c| c == value)
                    .expect("code in keyCodes") as i64
            } else if let Some(e) = field["enum"].as_str() {
                spec["enums"][e][str_of(value)]
                    .as_i64()
                    .expect("enum value")
            } else {
                value.as_i64().expect("integer field")
            }
        };
        match str_of(&field["type"]) {
            "u8" => out.push(u8::try_from(int()).unwrap()),
            "u16" => out.extend(u16::try_from(int()).unwrap().to_le_bytes()),
            "i16" => out.extend(i16::try_from(int()).unwrap().to_le_bytes()),
            "u32" => out.extend(u32::try_from(int()).unwrap().to_le_bytes()),
            "f64" => out.extend(value.as_f64().unwrap().to_le_bytes()),
            "str16" => {
                out.extend(u16::try_from(str_of(value).len()).unwrap().to_le_bytes());
                out.extend(str_of(value).as_bytes());
            }
            "str32" => {
                out.extend(u32::try_from(str_of(value).len()).unwrap().to_le_bytes());
                out.extend(str_of(value).as_bytes());
            }
            other => panic!("unknown field type {other}"),
        }
    }
    out
}

#[test]
fn vectors_decode_and_reencode_exactly() {
    let spec = spec();
    let limits = Limits::default();
    let mut covered = Vec::new();
    for v in spec["vectors"].as_array().unwrap() {
        let (dir, hex, expected) = (str_of(&v["dir"]), str_of(&v["hex"]), &v["message"]);
        let bytes = hex_decode(hex);
        assert_eq!(
            hex_encode(&layout_encode(&spec, dir, expected)),
            hex,
            "spec vector vs spec layout: {expected}"
        );
        let (got, reencoded) = match dir {
            "clientToHost" => {
                let msg = decode_client(&bytes, &limits).unwrap_or_else(|e| panic!("{hex}: {e}"));
                (client_json(&msg), msg.encode().unwrap())
            }
            "hostToClient" => {
                let msg = decode_host(&bytes, &limits).unwrap_or_else(|e| panic!("{hex}: {e}"));
                (host_json(&msg), msg.encode().unwrap())
            }
            other => panic!("unknown dir {other}"),
        };
        assert!(
            same_json(&got, expected),
            "{hex}: decoded {got}, spec says {expected}"
        );
        assert_eq!(hex_encode(&reencoded), hex, "{expected} re-encoded");
        covered.push((dir.to_owned(), bytes[0]));
    }
    for dir in ["clientToHost", "hostToClient"] {
        for (opcode, name, _) in spec_layouts(&spec, dir) {
            assert!(
                covered.contains(&(dir.to_owned(), opcode)),
                "no test vector for {dir} {name}"
            );
        }
    }
}

fn decode_dir(dir: &str, bytes: &[u8]) -> Result<(), DecodeError> {
    let limits = Limits::default();
    match dir {
        "clientToHost" => decode_client(bytes, &limits).map(drop),
        "hostToClient" => decode_host(bytes, &limits).map(drop),
        other => panic!("unknown dir {other}"),
    }
}

#[test]
fn invalid_vectors_fail_as_specified() {
    let spec = spec();
    let kinds = spec["errors"].as_array().unwrap();
    for v in spec["invalid"].as_array().unwrap() {
        let (dir, hex, error) = (str_of(&v["dir"]), str_of(&v["hex"]), str_of(&v["error"]));
        assert!(kinds.contains(&v["error"]), "unknown error kind {error}");
        let got = decode_dir(dir, &hex_decode(hex));
        assert_eq!(
            got.as_ref().map_err(DecodeError::kind),
            Err(error),
            "{hex} ({}): {got:?}",
            v["why"]
        );
    }
}

#[test]
fn every_truncation_of_every_vector_is_truncated() {
    let spec = spec();
    for v in spec["vectors"].as_array().unwrap() {
        let (dir, bytes) = (str_of(&v["dir"]), hex_decode(str_of(&v["hex"])));
        assert_eq!(decode_dir(dir, &[]), Err(DecodeError::Empty));
        for cut in 1..bytes.len() {
            match decode_dir(dir, &bytes[..cut]) {
                Err(DecodeError::Truncated { opcode, need, got }) => {
                    assert_eq!((opcode, got), (bytes[0], cut));
                    assert!(need > cut && need <= bytes.len());
                }
                other => panic!("{} cut to {cut} bytes: {other:?}", v["hex"]),
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode_dir(dir, &longer),
            Err(DecodeError::TrailingBytes),
            "{}",
            v["hex"]
        );
    }
}
