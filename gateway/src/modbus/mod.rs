//! Modbus register maps, as plain data: what a field's registers mean (`value`),
//! which requests read a device's fields in as few transactions as the protocol
//! allows (`plan`), and when each poll is due (`schedule`). No I/O here: the
//! poller that will use them is not built yet.

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
