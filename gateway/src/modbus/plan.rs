//! Which requests read a device's fields: fields of the same kind and poll period
//! whose addresses are adjacent, or apart by at most `max_gap` unread registers,
//! share one request, up to the protocol's limit (125 registers, 2,000 coils or
//! discrete inputs per read, Modbus Application Protocol v1.1b3, §6.1–6.4); or one
//! request per field for devices that refuse larger reads. A map the protocol
//! cannot read (a field wider than one request, fields that overlap, an address
//! past 65,535) is refused with the fields' names.

/// Registers one read (function 3 or 4) may ask for.
pub const MAX_REGISTERS: u16 = 125;
/// Coils or discrete inputs one read (function 1 or 2) may ask for.
pub const MAX_BITS: u16 = 2000;

/// The four Modbus data tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Holding,
    Input,
    Coil,
    Discrete,
}

impl Kind {
    /// The most one read of this kind may ask for.
    pub fn max_per_read(self) -> u16 {
        match self {
            Kind::Holding | Kind::Input => MAX_REGISTERS,
            Kind::Coil | Kind::Discrete => MAX_BITS,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Holding => "holding",
            Kind::Input => "input",
            Kind::Coil => "coil",
            Kind::Discrete => "discrete",
        }
    }
}

/// One field to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub name: String,
    pub kind: Kind,
    /// Its first register (0-based protocol address).
    pub address: u16,
    /// Registers (or bits) it spans.
    pub count: u16,
    /// Its poll period.
    pub every_ms: u64,
}

/// One read, and the fields (indexes into the wanted list) it serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    pub address: u16,
    pub count: u16,
    pub every_ms: u64,
    pub fields: Vec<usize>,
}

/// The requests of a device.
pub type Planned = Vec<Request>;

/// A register map the protocol cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("field {name}: {count} {kind} registers do not fit one read (at most {max})")]
    TooWide {
        name: String,
        kind: &'static str,
        count: u16,
        max: u16,
    },
    #[error("field {name}: address {address} + {count} registers goes past 65,535")]
    OutOfRange {
        name: String,
        address: u16,
        count: u16,
    },
    #[error("fields {first} and {second} overlap ({kind} registers {from}..{to})")]
    Overlap {
        first: String,
        second: String,
        kind: &'static str,
        from: u32,
        to: u32,
    },
}

/// Plan the reads of `wanted`: merged as described above unless `one_per_field`.
pub fn plan(wanted: &[Wanted], max_gap: u16, one_per_field: bool) -> Result<Planned, PlanError> {
    for w in wanted {
        let max = w.kind.max_per_read();
        if w.count == 0 || w.count > max {
            return Err(PlanError::TooWide {
                name: w.name.clone(),
                kind: w.kind.as_str(),
                count: w.count,
                max,
            });
        }
        if u32::from(w.address) + u32::from(w.count) > 65_536 {
            return Err(PlanError::OutOfRange {
                name: w.name.clone(),
                address: w.address,
                count: w.count,
            });
        }
    }
    // Overlaps within a table, whatever the periods.
    let mut by_address: Vec<usize> = (0..wanted.len()).collect();
    by_address.sort_by_key(|&i| (wanted[i].kind, wanted[i].address));
    for pair in by_address.windows(2) {
        let (a, b) = (&wanted[pair[0]], &wanted[pair[1]]);
        let end = u32::from(a.address) + u32::from(a.count);
        if a.kind == b.kind && u32::from(b.address) < end {
            return Err(PlanError::Overlap {
                first: a.name.clone(),
                second: b.name.clone(),
                kind: a.kind.as_str(),
                from: u32::from(b.address),
                to: end.min(u32::from(b.address) + u32::from(b.count)),
            });
        }
    }
    let mut order: Vec<usize> = (0..wanted.len()).collect();
    order.sort_by_key(|&i| (wanted[i].kind, wanted[i].every_ms, wanted[i].address));
    let mut out: Planned = Vec::new();
    for i in order {
        let w = &wanted[i];
        let end = u32::from(w.address) + u32::from(w.count);
        if let Some(last) = out.last_mut().filter(|_| !one_per_field) {
            let last_end = u32::from(last.address) + u32::from(last.count);
            let joins = last.kind == w.kind
                && last.every_ms == w.every_ms
                && u32::from(w.address) <= last_end + u32::from(max_gap)
                && end - u32::from(last.address) <= u32::from(w.kind.max_per_read());
            if joins {
                last.count = (end - u32::from(last.address)) as u16;
                last.fields.push(i);
                continue;
            }
        }
        out.push(Request {
            kind: w.kind,
            address: w.address,
            count: w.count,
            every_ms: w.every_ms,
            fields: vec![i],
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(name: &str, kind: Kind, address: u16, count: u16, every_ms: u64) -> Wanted {
        Wanted {
            name: name.into(),
            kind,
            address,
            count,
            every_ms,
        }
    }

    #[test]
    fn adjacent_and_nearby_fields_of_one_table_and_period_share_a_read() {
        let w = [
            field("voltage", Kind::Input, 0, 2, 1000),
            field("current", Kind::Input, 6, 2, 1000),
            field("power", Kind::Input, 12, 2, 1000),
            field("energy", Kind::Input, 342, 2, 60_000),
            field("setpoint", Kind::Holding, 12, 1, 1000),
        ];
        let p = plan(&w, 4, false).unwrap();
        let reads: Vec<(Kind, u16, u16, Vec<usize>)> = p
            .iter()
            .map(|r| (r.kind, r.address, r.count, r.fields.clone()))
            .collect();
        assert_eq!(
            reads,
            [
                (Kind::Holding, 12, 1, vec![4]),
                (Kind::Input, 0, 14, vec![0, 1, 2]),
                (Kind::Input, 342, 2, vec![3]),
            ]
        );
        // A gap wider than max_gap splits, and one read per field when asked.
        assert_eq!(plan(&w, 3, false).unwrap().len(), 5);
        assert_eq!(plan(&w, 100, true).unwrap().len(), 5);
    }

    #[test]
    fn a_read_never_passes_the_protocols_limit() {
        let w: Vec<Wanted> = (0..100)
            .map(|i| field(&format!("r{i}"), Kind::Holding, i * 2, 2, 1000))
            .collect();
        let p = plan(&w, 0, false).unwrap();
        assert!(p.iter().all(|r| r.count <= MAX_REGISTERS), "{p:?}");
        assert_eq!(p.iter().map(|r| r.fields.len()).sum::<usize>(), 100);
        assert_eq!(
            p[0].count, 124,
            "62 two-register fields, not half of one more"
        );
        let coils: Vec<Wanted> = (0..3000)
            .map(|i| field(&format!("c{i}"), Kind::Coil, i, 1, 1000))
            .collect();
        let p = plan(&coils, 0, false).unwrap();
        assert_eq!(p.iter().map(|r| r.count).collect::<Vec<_>>(), [2000, 1000]);
    }

    #[test]
    fn maps_the_protocol_cannot_read_are_refused_by_field_name() {
        let e = plan(
            &[
                field("a", Kind::Holding, 10, 2, 1000),
                field("b", Kind::Holding, 11, 1, 5000),
            ],
            0,
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "fields a and b overlap (holding registers 11..12)"
        );
        let e = plan(&[field("name", Kind::Input, 0, 126, 1000)], 0, false).unwrap_err();
        assert!(e
            .to_string()
            .contains("126 input registers do not fit one read (at most 125)"));
        let e = plan(&[field("far", Kind::Input, 65_535, 2, 1000)], 0, false).unwrap_err();
        assert!(e.to_string().contains("past 65,535"));
        // The same address in two tables is no overlap.
        assert!(plan(
            &[
                field("h", Kind::Holding, 0, 1, 1000),
                field("i", Kind::Input, 0, 1, 1000)
            ],
            0,
            false
        )
        .is_ok());
    }
}
