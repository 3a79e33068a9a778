//! weft: a durable workflow host for WebAssembly components.
//!
//! Dependencies point one way: `api → runtime → {store, wasm} → history` (the domain, crate
//! `weft-core`); only `clock` reads wall time; `metrics` is counted from every layer,
//! `telemetry` exports the spans every layer makes.

pub mod api;
pub mod clock;
pub mod history;
pub mod metrics;
pub mod runtime;
pub mod store;
pub mod telemetry;
pub mod wasm;
