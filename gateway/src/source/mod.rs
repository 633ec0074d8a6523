//! Sources: one task per configured source owns its device (or capture file),
//! reads bytes, frames them and sends `Frame`s down a bounded channel. A full
//! channel makes the source wait (back-pressure). Sources never know about MQTT.

mod feed;
pub mod gwmp;
pub mod link;
pub mod modem;
pub mod mqtt;
pub mod netserver;
pub mod poll;
pub mod replay;
pub mod serial;
mod status;

pub use feed::Feed;
pub use link::{link, CommandLink, DeviceSide, TxOutcome, TxRequest};
pub use status::{
    PollCounts, RadioDutyCycle, RecentFrame, SourceState, SourceStatus, PREVIEW_BYTES,
    RECENT_FRAMES,
};
