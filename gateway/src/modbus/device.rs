//! One device on a bus as the poller sees it: its fields, and the reads that
//! serve them, grouped by poll period. Built once from the configuration (a
//! profile's fields and the device's own), refused when the protocol cannot
//! read it.

use std::time::Duration;

use serde_json::Value;

use super::plan::{plan, Kind, PlanError, Wanted};
use super::value::{FieldType, Order, ValueError};

/// One named value of a device.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    pub kind: Kind,
    /// Its first register (0-based, as on the wire).
    pub address: u16,
    pub ty: FieldType,
    pub order: Order,
    pub scale: f64,
    pub offset: f64,
    /// Unit of measurement, for Home Assistant and the status page.
    pub unit: Option<String>,
    pub device_class: Option<String>,
    pub state_class: Option<String>,
    /// Its poll period.
    pub every: Duration,
}

impl Field {
    /// Registers (or bits) it spans.
    pub fn count(&self) -> u16 {
        match self.kind {
            Kind::Coil | Kind::Discrete => 1,
            Kind::Holding | Kind::Input => self.ty.registers(),
        }
    }

    /// Its value from the registers of the read that starts at `start`.
    pub fn decode(&self, start: u16, words: &[u16]) -> Result<Value, ValueError> {
        let at = usize::from(self.address - start);
        let regs = &words[at..at + usize::from(self.count())];
        self.ty.decode(regs, self.order, self.scale, self.offset)
    }

    /// Whether a command may write it.
    pub fn writable(&self) -> bool {
        matches!(self.kind, Kind::Holding | Kind::Coil)
    }
}

/// One read (function 1 to 4) and the fields it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Read {
    pub kind: Kind,
    pub address: u16,
    pub count: u16,
    /// Indexes into the device's fields.
    pub fields: Vec<usize>,
}

/// The fields of one poll period: each poll of it is one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub every: Duration,
    pub reads: Vec<Read>,
}

/// A device on a bus.
#[derive(Debug, Clone, PartialEq)]
pub struct Device {
    pub name: String,
    /// Its unit (slave) id, 1 to 247.
    pub unit: u8,
    /// The profile its fields came from, if any.
    pub profile: Option<String>,
    pub fields: Vec<Field>,
    pub groups: Vec<Group>,
}

/// Why a device's map cannot be read: a message, and the field it concerns.
#[derive(Debug, Clone, PartialEq)]
pub struct MapError {
    /// Index into the fields given to [`Device::build`].
    pub field: Option<usize>,
    pub message: String,
}

impl Device {
    /// Plans the reads of `fields`: merged across gaps of up to `max_gap`
    /// registers, or one per field.
    pub fn build(
        name: String,
        unit: u8,
        profile: Option<String>,
        fields: Vec<Field>,
        max_gap: u16,
        one_per_field: bool,
    ) -> Result<Device, MapError> {
        let index_of = |name: &str| fields.iter().position(|f| f.name == name);
        // `bits` fields of one register share it: the planner sees the register once.
        let mut wanted: Vec<Wanted> = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            if let FieldType::Bits { .. } = f.ty {
                // Read with whatever else covers its register: a whole-register
                // field, or the first `bits` field of that register.
                let covered = fields.iter().enumerate().any(|(j, g)| {
                    j != i
                        && g.kind == f.kind
                        && g.every == f.every
                        && g.address <= f.address
                        && u32::from(f.address) < u32::from(g.address) + u32::from(g.count())
                        && (!matches!(g.ty, FieldType::Bits { .. }) || j < i)
                });
                if covered {
                    continue;
                }
            }
            wanted.push(Wanted {
                name: f.name.clone(),
                kind: f.kind,
                address: f.address,
                count: f.count(),
                every_ms: f.every.as_millis() as u64,
            });
        }
        let planned = plan(&wanted, max_gap, one_per_field).map_err(|e| {
            let first = match &e {
                PlanError::TooWide { name, .. } | PlanError::OutOfRange { name, .. } => name,
                PlanError::Overlap { second, .. } => second,
            };
            MapError {
                field: index_of(first),
                message: e.to_string(),
            }
        })?;
        let mut groups: Vec<Group> = Vec::new();
        for request in planned {
            let every = Duration::from_millis(request.every_ms);
            let end = u32::from(request.address) + u32::from(request.count);
            let served = fields
                .iter()
                .enumerate()
                .filter(|(_, f)| {
                    f.kind == request.kind
                        && f.every == every
                        && f.address >= request.address
                        && u32::from(f.address) < end
                })
                .map(|(i, _)| i)
                .collect();
            let read = Read {
                kind: request.kind,
                address: request.address,
                count: request.count,
                fields: served,
            };
            match groups.iter_mut().find(|g| g.every == every) {
                Some(g) => g.reads.push(read),
                None => groups.push(Group {
                    every,
                    reads: vec![read],
                }),
            }
        }
        groups.sort_by_key(|g| g.every);
        Ok(Device {
            name,
            unit,
            profile,
            fields,
            groups,
        })
    }

    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.name == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: Kind, address: u16, ty: &str, every_s: u64) -> Field {
        Field {
            name: name.into(),
            kind,
            address,
            ty: FieldType::parse(ty).unwrap(),
            order: Order::Abcd,
            scale: 1.0,
            offset: 0.0,
            unit: None,
            device_class: None,
            state_class: None,
            every: Duration::from_secs(every_s),
        }
    }

    #[test]
    fn fields_are_grouped_by_period_and_bits_share_their_register_with_its_other_fields() {
        let fields = vec![
            field("voltage", Kind::Input, 0, "f32", 1),
            field("current", Kind::Input, 6, "f32", 1),
            field("mode", Kind::Holding, 10, "bits(0..4)", 1),
            field("alarm", Kind::Holding, 10, "bits(4..8)", 1),
            field("energy", Kind::Input, 342, "f32", 60),
            field("word", Kind::Holding, 10, "u16", 1),
            field("relay", Kind::Coil, 0, "bool", 1),
        ];
        // `word` is the whole register the bits are part of: read once.
        let d = Device::build("m".into(), 1, None, fields, 10, false).unwrap();
        assert_eq!(d.groups.len(), 2);
        assert_eq!(d.groups[0].every, Duration::from_secs(1));
        let reads: Vec<(Kind, u16, u16, Vec<usize>)> = d.groups[0]
            .reads
            .iter()
            .map(|r| (r.kind, r.address, r.count, r.fields.clone()))
            .collect();
        assert_eq!(
            reads,
            [
                (Kind::Holding, 10, 1, vec![2, 3, 5]),
                (Kind::Input, 0, 8, vec![0, 1]),
                (Kind::Coil, 0, 1, vec![6]),
            ]
        );
        assert_eq!(d.groups[1].reads[0].fields, vec![4]);
    }

    #[test]
    fn overlapping_fields_are_refused_with_the_field_but_views_of_bits_are_not() {
        // Two views of the same bits (a 4-bit mode and its lowest bit) are fine.
        let fields = vec![
            field("mode", Kind::Holding, 10, "bits(0..4)", 1),
            field("bit0", Kind::Holding, 10, "bits(0..1)", 1),
        ];
        let d = Device::build("m".into(), 1, None, fields, 10, false).unwrap();
        assert_eq!(d.groups[0].reads[0].fields, vec![0, 1]);

        let fields = vec![
            field("a", Kind::Holding, 10, "u32", 1),
            field("b", Kind::Holding, 11, "u16", 1),
        ];
        let e = Device::build("m".into(), 1, None, fields, 10, false).unwrap_err();
        assert_eq!(e.field, Some(1));
        assert!(e.message.contains("fields a and b overlap"), "{e:?}");
    }

    #[test]
    fn a_field_decodes_from_its_place_in_a_merged_read() {
        let f = field("current", Kind::Input, 6, "u32", 1);
        let words = [0, 0, 0, 0, 0, 0, 0x0001, 0x0002];
        assert_eq!(f.decode(0, &words).unwrap(), serde_json::json!(65538));
    }
}
