//! The status API over HTTP (axum), read-only: `/api/status` (JSON), `/metrics`
//! (Prometheus text format) and `/healthz`.
//!
//! The stages publish their counters in shared atomics; a `Snapshot` reads them all
//! at one moment, and each route renders a snapshot. Nothing here changes the
//! gateway.

mod health;
mod metrics;
mod server;
mod snapshot;

pub use health::problems;
pub use metrics::render as render_metrics;
pub use server::{router, start};
pub use snapshot::{
    Evictions, GatewayInfo, MappingSnapshot, OutputSnapshot, Snapshot, SourceSnapshot,
    StoreSnapshot, Watched,
};
