//! Modbus register maps, as plain data: what a field's registers mean (`value`),
//! and which requests read a device's fields in as few transactions as the
//! protocol allows (`plan`). No I/O here: the poller that will use them is not
//! built yet.

pub mod plan;
pub mod value;

pub use plan::{plan, Kind, PlanError, Planned, Request, Wanted, MAX_BITS, MAX_REGISTERS};
pub use value::{FieldType, Order, ValueError};
