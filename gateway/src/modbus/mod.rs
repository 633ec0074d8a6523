//! Modbus devices polled on a bus. Plain data first: what a field's registers
//! mean (`value`), which requests read a device's fields in as few transactions
//! as the protocol allows (`plan`), a device's fields and reads (`device`), and
//! when each poll is due (`schedule`). Then the I/O: one connection through
//! tokio-modbus (`transport`), the poller that owns it (`poller`), and what both
//! count for the status page (`stats`).

pub mod device;
pub mod plan;
pub mod poller;
pub mod schedule;
pub mod stats;
pub mod transport;
pub mod value;

pub use device::{Device, Field, Group, MapError, Read};
pub use plan::{plan, Kind, PlanError, Planned, Request, Wanted, MAX_BITS, MAX_REGISTERS};
pub use poller::Poller;
pub use schedule::{Due, Schedule};
pub use stats::{BusSnapshot, BusStats, DeviceSnapshot, DeviceStats, ExceptionCount};
pub use value::{FieldType, Order, ValueError};
