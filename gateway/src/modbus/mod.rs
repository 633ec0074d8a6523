//! Modbus register maps, as plain data: what a field's registers mean (`value`),
//! which requests read a device's fields in as few transactions as the protocol
//! allows (`plan`), and when each poll is due (`schedule`). No I/O here: the
//! poller that will use them is not built yet.

pub mod plan;
pub mod schedule;
pub mod value;

pub use plan::{plan, Kind, PlanError, Planned, Request, Wanted, MAX_BITS, MAX_REGISTERS};
pub use schedule::{Due, Schedule};
pub use value::{FieldType, Order, ValueError};
