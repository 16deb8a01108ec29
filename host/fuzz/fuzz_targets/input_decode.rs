//! Fuzzes the input protocol decoders with arbitrary bytes: they must never panic, and whatever
//! decodes must re-encode to exactly the same bytes (the encoding is canonical).
//!
//! The protocol module is pure (only `thiserror`), so it is compiled here straight from its source
//! file rather than through `edgedesk-host`, which would drag WebRTC, FFmpeg and X11 into an
//! instrumented build.
#![no_main]

#[allow(dead_code)]
#[path = "../../src/input/protocol.rs"]
mod protocol;

use libfuzzer_sys::fuzz_target;
use protocol::{decode_client, decode_host, Limits};

fuzz_target!(|data: &[u8]| {
    // Small caps as well as the defaults, so that the cap checks are reached by short inputs.
    for limits in [
        Limits::default(),
        Limits {
            max_text_bytes: 8,
            max_clipboard_bytes: 16,
        },
    ] {
        if let Ok(msg) = decode_client(data, &limits) {
            assert_eq!(msg.encode().expect("a decoded message encodes"), data);
        }
        if let Ok(msg) = decode_host(data, &limits) {
            assert_eq!(msg.encode().expect("a decoded message encodes"), data);
        }
    }
});
