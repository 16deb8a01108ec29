//! edgedesk's front door: the HTTP server (axum) with the WHEP endpoints, join-token checks,
//! and the embedded thin client. The binary `edgedesk` (src/main.rs) wires it to the host.

pub mod assets;
pub mod backend;
pub mod cli;
pub mod config;
pub mod http;
pub mod remote;
pub mod sessions;
pub mod tokens;
