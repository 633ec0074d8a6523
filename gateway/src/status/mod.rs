//! The status page and API over HTTP (axum), read-only: `/` (the page),
//! `/events` (live snapshots), `/api/status` (JSON), `/api/history` (the charts'
//! last hour), `/metrics` (Prometheus text format) and `/healthz`; optionally
//! behind a token or basic authentication; only for its own host names, over
//! connections bounded in number and time.
//!
//! The stages publish their counters in shared atomics, and so does the embedded
//! broker (broker-lite's `Metrics`); a `Snapshot` reads them all at one moment,
//! and each route renders a snapshot. Nothing here changes the gateway.

mod auth;
mod broker;
mod broker_metrics;
mod conns;
mod health;
mod history;
mod host;
mod metrics;
mod server;
mod snapshot;

pub use broker::{BrokerRefusals, BrokerSnapshot, WatchedBroker};
pub use health::problems;
pub use history::History;
pub use metrics::render as render_metrics;
pub use server::{bind, router, serve, start};
pub use snapshot::{
    Evictions, FramePreview, GatewayInfo, MappingSnapshot, OutputSnapshot, Reloads,
    ScriptErrorSnapshot, Snapshot, SourceSnapshot, StoreSnapshot, Watched,
};
