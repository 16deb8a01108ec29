//! The pieces of `edgedesk-bench`, the latency benchmark tool: the stimulus X client that
//! draws frame codes, the frame code itself, the measuring WebRTC client, statistics, and the
//! report (table, JSON, HTML). The binary (`src/main.rs`) puts them together.

pub mod audio;
pub mod browser;
pub mod compare;
pub mod connect;
pub mod framecode;
pub mod impair;
pub mod measure;
pub mod proc;
pub mod report;
pub mod runner;
pub mod sessions;
pub mod stats;
pub mod stimulus;
