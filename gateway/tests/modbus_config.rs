//! Modbus sources in the configuration: register maps the protocol cannot read
//! and bad devices are refused with file, line and field, in the gateway file or
//! in the profile file; the shipped profiles load and plan.

use std::path::Path;

use mqgate::config::{ConfigError, GatewayConfig, SourceKind};
use mqgate::modbus::Kind;
use test_support::Scratch;

fn load(files: &[(&str, &str)]) -> (Scratch, Result<GatewayConfig, Vec<ConfigError>>) {
    let dir = Scratch::new("mqgate-modbus-config");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    let loaded = GatewayConfig::load(&dir.path().join("mqgate.yaml"));
    (dir, loaded)
}

fn errors(files: &[(&str, &str)]) -> Vec<ConfigError> {
    match load(files).1 {
        Ok(_) => panic!("expected errors, the config loaded"),
        Err(e) => e,
    }
}

/// A gateway file with one `modbus_tcp` source whose devices are `devices`
/// (YAML lines, indented under `devices:`).
fn gateway(devices: &str) -> String {
    format!(
        "gateway:\n  id: pi\nsources:\n  - id: bus\n    type: modbus_tcp\n    host: 127.0.0.1:502\n    devices:\n{devices}"
    )
}

fn find<'a>(errors: &'a [ConfigError], field: &str) -> &'a ConfigError {
    errors.iter().find(|e| e.field == field).unwrap_or_else(|| {
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        panic!("no error at {field}:\n{}", all.join("\n"))
    })
}

#[test]
fn a_map_the_protocol_cannot_read_is_refused_at_the_field_with_its_line() {
    let e = errors(&[(
        "mqgate.yaml",
        &gateway(
            "      - name: meter\n        unit: 0\n        fields:\n\
             \x20         - { name: a, register: holding, address: 10, type: u32 }\n\
             \x20         - { name: b, register: holding, address: 11 }\n\
             \x20         - { name: c, register: holding, address: 65535, type: u32 }\n\
             \x20         - { name: d, register: holding, address: 20, type: \"bits(12..17)\" }\n\
             \x20         - { name: e, register: coil, address: 0, type: u16 }\n\
             \x20         - { name: f, register: input, address: 0, type: f128 }\n",
        ),
    )]);
    let all: Vec<String> = e.iter().map(ToString::to_string).collect();
    let unit = find(&e, "sources[0].devices[0].unit");
    assert_eq!(unit.line, Some(9), "{unit}");
    assert!(unit.message.contains("broadcast"), "{unit}");
    let bits = find(&e, "sources[0].devices[0].fields[3].type");
    assert_eq!(bits.line, Some(14), "{bits}");
    assert!(bits.message.contains("bits 0..16"), "{bits}");
    let coil = find(&e, "sources[0].devices[0].fields[4].type");
    assert!(coil.message.contains("its type is bool"), "{coil}");
    let ty = find(&e, "sources[0].devices[0].fields[5].type");
    assert!(ty.message.contains("\"f128\" is not a type"), "{ty}");
    // A value serde refuses stops the reading of its source: that one alone.
    let e = errors(&[(
        "mqgate.yaml",
        &gateway(
            "      - name: meter\n        unit: 1\n        fields:\n\
             \x20         - { name: g, register: holding, address: 30, byte_order: ABDC }\n",
        ),
    )]);
    let order = find(&e, "sources[0].devices[0].fields[0].byte_order");
    assert!(
        order.message.contains("`ABCD`, `CDAB`, `BADC`, `DCBA`"),
        "{order}"
    );
    // Planning needs every field read: those errors come once the fields are.
    assert!(!all.iter().any(|m| m.contains("overlap")), "{all:?}");

    let e = errors(&[(
        "mqgate.yaml",
        &gateway(
            "      - name: meter\n        unit: 1\n        fields:\n\
             \x20         - { name: a, register: holding, address: 10, type: u32 }\n\
             \x20         - { name: b, register: holding, address: 11 }\n",
        ),
    )]);
    let overlap = find(&e, "sources[0].devices[0].fields[1]");
    assert_eq!(overlap.line, Some(12), "{overlap}");
    assert!(
        overlap.message.contains("fields a and b overlap"),
        "{overlap}"
    );
    let e = errors(&[(
        "mqgate.yaml",
        &gateway(
            "      - name: meter\n        unit: 1\n        fields:\n\
             \x20         - { name: c, register: holding, address: 65535, type: u32 }\n\
             \x20         - { name: s, register: holding, address: 0, type: string(250) }\n\
             \x20         - { name: t, register: input, address: 0, type: string(252) }\n",
        ),
    )]);
    let t = find(&e, "sources[0].devices[0].fields[2].type");
    assert!(t.message.contains("1 to 250 characters"), "{t}");
}

#[test]
fn devices_of_a_bus_are_checked_against_each_other_and_a_profile_must_exist() {
    let e = errors(&[(
        "mqgate.yaml",
        &gateway(
            "      - { name: meter, unit: 1, profile: nowhere }\n\
             \x20     - name: meter\n        unit: 1\n        fields: [{ name: a, register: input, address: 0 }]\n",
        ),
    )]);
    let profile = find(&e, "sources[0].devices[0].profile");
    assert!(
        profile.message.contains("profile `nowhere`")
            && profile.message.contains("profiles/nowhere.yaml"),
        "{profile}"
    );
    assert!(find(&e, "sources[0].devices[1].name")
        .message
        .contains("duplicate device name `meter`"));
    assert!(find(&e, "sources[0].devices[1].unit")
        .message
        .contains("unit 1 is also devices[0]"));
    let e = errors(&[(
        "mqgate.yaml",
        "gateway:\n  id: pi\nsources:\n  - id: bus\n    type: modbus_rtu\n    path: /dev/ttyUSB0\n    host: 1.2.3.4:502\n    framing: { type: lines }\n    devices: []\n",
    )]);
    assert!(find(&e, "sources[0].host").message.contains("modbus_tcp"));
    assert!(find(&e, "sources[0].devices")
        .message
        .contains("at least one device"));
    assert!(find(&e, "sources[0].framing")
        .message
        .contains("takes no framing"));
}

#[test]
fn a_bad_profile_is_reported_in_its_own_file_with_its_line_once_however_many_devices_use_it() {
    let profile = "description: a meter\nevery: 5s\nfields:\n\
                   \x20 - { name: voltage, register: input, address: 0, type: f32 }\n\
                   \x20 - { name: current, register: input, address: 1, type: f32 }\n\
                   \x20 - { name: power, register: inptu, address: 12, type: f32 }\n";
    let e = errors(&[
        (
            "mqgate.yaml",
            &gateway(
                "      - { name: m1, unit: 1, profile: meter }\n      - { name: m2, unit: 2, profile: meter }\n",
            ),
        ),
        ("profiles/meter.yaml", profile),
    ]);
    let all: Vec<String> = e.iter().map(ToString::to_string).collect();
    let bad = find(&e, "fields[2].register");
    assert_eq!(bad.file.file_name().unwrap(), "meter.yaml", "{bad}");
    assert_eq!(bad.line, Some(6), "{bad}");
    assert_eq!(
        e.iter()
            .filter(|e| e.file.file_name().unwrap() == "meter.yaml")
            .count(),
        1,
        "the profile's problem once, not per device: {all:?}"
    );
    // The devices say their profile cannot be used.
    assert!(find(&e, "sources[0].devices[0].profile")
        .message
        .contains("has errors"));

    // Fixed register name, but two fields overlap: refused in the profile too.
    let profile = profile.replace("inptu", "input");
    let e = errors(&[
        (
            "mqgate.yaml",
            &gateway("      - { name: m1, unit: 1, profile: meter }\n"),
        ),
        ("profiles/meter.yaml", &profile),
    ]);
    let overlap = find(&e, "fields[1]");
    assert_eq!(overlap.file.file_name().unwrap(), "meter.yaml");
    assert_eq!(overlap.line, Some(5), "{overlap}");
    assert!(overlap.message.contains("overlap"), "{overlap}");
}

#[test]
fn a_device_takes_its_profile_s_fields_and_periods_and_adds_its_own() {
    let profile = "every: 5s\nmax_gap: 4\nfields:\n\
                   \x20 - { name: voltage, register: input, address: 0, type: f32, unit: V, device_class: voltage }\n\
                   \x20 - { name: current, register: input, address: 6, type: f32 }\n\
                   groups:\n  - every: 60s\n    fields:\n\
                   \x20     - { name: energy, register: input, address: 342, type: f32, state_class: total_increasing }\n";
    let (_dir, loaded) = load(&[
        (
            "mqgate.yaml",
            &gateway(
                "      - { name: m1, unit: 1, profile: meter }\n\
                 \x20     - name: m2\n        unit: 2\n        profile: meter\n        every: 2s\n        fields:\n\
                 \x20         - { name: relay, register: coil, address: 0 }\n",
            ),
        ),
        ("profiles/meter.yaml", profile),
    ]);
    let config = loaded.unwrap_or_else(|e| panic!("{e:?}"));
    let SourceKind::Modbus(bus) = &config.sources[0].kind else {
        panic!("a Modbus source")
    };
    let m1 = &bus.devices[0];
    assert_eq!(m1.profile.as_deref(), Some("meter"));
    let periods: Vec<u64> = m1.groups.iter().map(|g| g.every.as_secs()).collect();
    assert_eq!(periods, [5, 60]);
    // voltage and current merged (gap 4 registers ≤ max_gap 4).
    assert_eq!(m1.groups[0].reads.len(), 1);
    assert_eq!(m1.groups[0].reads[0].count, 8);
    let m2 = &bus.devices[1];
    let periods: Vec<u64> = m2.groups.iter().map(|g| g.every.as_secs()).collect();
    assert_eq!(
        periods,
        [2, 60],
        "the device's every overrides the profile's"
    );
    let relay = m2.field("relay").unwrap();
    assert_eq!(relay.kind, Kind::Coil);
    assert_eq!(m2.field("voltage").unwrap().unit.as_deref(), Some("V"));
}

#[test]
fn every_shipped_profile_loads_and_plans() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dir = Scratch::new("mqgate-shipped-profiles");
    let mut devices = String::new();
    let mut names = Vec::new();
    for (i, entry) in std::fs::read_dir(root.join("profiles"))
        .unwrap()
        .enumerate()
    {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let name = path.file_stem().unwrap().to_str().unwrap().to_string();
        std::fs::create_dir_all(dir.path().join("profiles")).unwrap();
        std::fs::copy(
            &path,
            dir.path().join("profiles").join(path.file_name().unwrap()),
        )
        .unwrap();
        devices.push_str(&format!(
            "      - {{ name: d{i}, unit: {}, profile: {name} }}\n",
            i + 1
        ));
        names.push(name);
    }
    assert!(names.len() >= 3, "profiles shipped: {names:?}");
    std::fs::write(dir.path().join("mqgate.yaml"), gateway(&devices)).unwrap();
    let config = GatewayConfig::load(&dir.path().join("mqgate.yaml")).unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter().map(|e| e.to_string() + "\n").collect::<String>()
        )
    });
    let SourceKind::Modbus(bus) = &config.sources[0].kind else {
        panic!("a Modbus source")
    };
    for d in &bus.devices {
        assert!(!d.fields.is_empty(), "{}", d.name);
        for f in &d.fields {
            if f.state_class.as_deref() == Some("total_increasing") {
                assert!(
                    f.unit.is_some(),
                    "{}.{}: a counter has a unit",
                    d.name,
                    f.name
                );
            }
        }
    }
}
