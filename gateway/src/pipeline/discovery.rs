//! Home Assistant MQTT discovery: the retained configs of the entities the mapping
//! files declare, published under `homeassistant/...` when the gateway starts, with
//! `mqgate/<gateway-id>/status` as their availability topic.

use bytes::Bytes;
use mqtt_proto::codec::QoS;
use mqtt_proto::topic::TopicName;
use serde_json::{json, Map, Value};

use crate::config::{GatewayConfig, HaComponent, HaEntity, SourceKind};
use crate::message::Message;

/// Lower-case letters, digits and `_`: an object id Home Assistant accepts.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') {
            out.push('_');
        }
    }
    out.trim_matches('_').to_string()
}

/// The status topic: `online` while the gateway runs (retained), `offline` otherwise.
pub fn status_topic(gateway_id: &str) -> String {
    format!("mqgate/{gateway_id}/status")
}

fn config_message(gateway_id: &str, source: &str, e: &HaEntity) -> Message {
    let device = json!({
        "identifiers": [format!("mqgate_{}_{}", slug(gateway_id), slug(source))],
        "name": format!("{gateway_id} {source}"),
        "manufacturer": "mqgate",
    });
    entity_config(gateway_id, &slug(source), e, device, None)
}

/// An entity's retained discovery config: its object id is `<prefix>_<name>`,
/// its device `device`; it is available while the gateway is, and, with
/// `also_available`, while that topic says `online` too.
fn entity_config(
    gateway_id: &str,
    prefix: &str,
    e: &HaEntity,
    device: Value,
    also_available: Option<String>,
) -> Message {
    let object = format!("{prefix}_{}", slug(&e.name));
    let mut payload = Map::new();
    payload.insert("name".into(), json!(e.name));
    payload.insert(
        "unique_id".into(),
        json!(format!("mqgate_{}_{object}", slug(gateway_id))),
    );
    match also_available {
        None => {
            payload.insert("availability_topic".into(), json!(status_topic(gateway_id)));
        }
        Some(topic) => {
            payload.insert(
                "availability".into(),
                json!([{"topic": status_topic(gateway_id)}, {"topic": topic}]),
            );
            payload.insert("availability_mode".into(), json!("all"));
        }
    }
    for (key, value) in [
        ("state_topic", &e.state_topic),
        ("command_topic", &e.command_topic),
        ("value_template", &e.value_template),
        ("unit_of_measurement", &e.unit),
        ("device_class", &e.device_class),
        ("state_class", &e.state_class),
        ("payload_on", &e.payload_on),
        ("payload_off", &e.payload_off),
        ("payload_press", &e.payload_press),
    ] {
        if let Some(v) = value {
            payload.insert(key.into(), json!(v));
        }
    }
    for (key, value) in [("min", e.min), ("max", e.max), ("step", e.step)] {
        if let Some(v) = value {
            payload.insert(key.into(), json!(v));
        }
    }
    if !e.options.is_empty() {
        payload.insert("options".into(), json!(e.options));
    }
    payload.insert("device".into(), device);
    Message {
        // Slugs and component names are lower-case words: valid topic levels.
        topic: TopicName::new(format!(
            "homeassistant/{}/{}/{object}/config",
            e.component.as_str(),
            slug(gateway_id)
        ))
        .expect("slugs are valid topic levels"),
        payload: Bytes::from(Value::Object(payload).to_string()),
        qos: QoS::AtLeastOnce,
        retain: true,
    }
}

/// Where a Modbus device's availability is published (retained `online` /
/// `offline`): `mqgate/<gateway>/<source>/<device>/availability`.
pub fn device_availability_topic(gateway_id: &str, source: &str, device: &str) -> String {
    format!("mqgate/{gateway_id}/{source}/{device}/availability")
}

/// An entity per field of each device of a Modbus source whose mapping
/// publishes polls as they are (no script): the state topic is the mapping's
/// template filled with the device, and each field comes with its unit and
/// classes from the register map (a profile or the device's own fields).
fn modbus_messages(config: &GatewayConfig) -> Vec<Message> {
    let id = &config.gateway.id;
    let mut out = Vec::new();
    for m in config.mappings.iter().filter(|m| m.script.is_none()) {
        let Some(source) = config.sources.iter().find(|s| s.id == m.source) else {
            continue;
        };
        let SourceKind::Modbus(bus) = &source.kind else {
            continue;
        };
        for device in &bus.devices {
            let topic = m
                .topic
                .replace("{source}", &source.id)
                .replace("{device}", &device.name)
                .replace("{unit}", &device.unit.to_string());
            if topic.contains('{') {
                // Filled from something only a poll knows: no fixed state topic.
                continue;
            }
            let mut dev = json!({
                "identifiers": [format!("mqgate_{}_{}_{}", slug(id), slug(&source.id), slug(&device.name))],
                "name": device.name,
                "manufacturer": "mqgate",
            });
            if let Some(profile) = &device.profile {
                dev["model"] = json!(profile);
            }
            let prefix = format!("{}_{}", slug(&source.id), slug(&device.name));
            let available = device_availability_topic(id, &source.id, &device.name);
            for f in &device.fields {
                let bool_field = matches!(f.ty, crate::modbus::FieldType::Bool);
                let value_template = if bool_field {
                    format!("{{{{ 'ON' if value_json.{} else 'OFF' }}}}", f.name)
                } else {
                    format!("{{{{ value_json.{} }}}}", f.name)
                };
                let entity = HaEntity {
                    name: f.name.clone(),
                    state_topic: Some(topic.clone()),
                    value_template: Some(value_template),
                    unit: f.unit.clone(),
                    device_class: f.device_class.clone(),
                    state_class: f.state_class.clone(),
                    component: if bool_field {
                        HaComponent::BinarySensor
                    } else {
                        HaComponent::Sensor
                    },
                    ..HaEntity::default()
                };
                out.push(entity_config(
                    id,
                    &prefix,
                    &entity,
                    dev.clone(),
                    Some(available.clone()),
                ));
            }
        }
    }
    out
}

/// The discovery configs of every mapping's entities (and of the Modbus
/// devices' fields), then `online` on the status topic; nothing when there is
/// no entity.
pub fn messages(config: &GatewayConfig) -> Vec<Message> {
    let id = &config.gateway.id;
    let mut out: Vec<Message> = config
        .mappings
        .iter()
        .flat_map(|m| {
            m.homeassistant
                .iter()
                .map(|e| config_message(id, &m.source, e))
        })
        .collect();
    out.extend(modbus_messages(config));
    if !out.is_empty() {
        out.push(Message {
            // The gateway id was checked at load: letters, digits, `_` and `-`.
            topic: TopicName::new(status_topic(id)).expect("the gateway id is a valid topic level"),
            payload: Bytes::from_static(b"online"),
            qos: QoS::AtLeastOnce,
            retain: true,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_ids_are_lower_case_words_joined_by_underscores() {
        assert_eq!(slug("Kitchen temperature"), "kitchen_temperature");
        assert_eq!(slug("json-sensor"), "json_sensor");
        assert_eq!(slug("  CO₂ (ppm) "), "co_ppm");
    }

    #[test]
    fn a_config_names_its_state_topic_unit_and_availability() {
        let e: HaEntity = serde_yaml_ng::from_str(
            "name: Kitchen temperature\nstate_topic: sensors/kitchen\n\
             value_template: '{{ value_json.temperature }}'\nunit: °C\ndevice_class: temperature\n",
        )
        .unwrap();
        let m = config_message("pi-1", "json-sensor", &e);
        assert_eq!(
            m.topic,
            "homeassistant/sensor/pi_1/json_sensor_kitchen_temperature/config"
        );
        assert!(m.retain);
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["state_topic"], "sensors/kitchen");
        assert_eq!(v["unit_of_measurement"], "°C");
        assert_eq!(v["availability_topic"], "mqgate/pi-1/status");
        assert_eq!(
            v["unique_id"],
            "mqgate_pi_1_json_sensor_kitchen_temperature"
        );
        assert!(v.get("state_class").is_none());
        assert!(v.get("command_topic").is_none());
    }

    #[test]
    fn a_switch_and_a_select_carry_their_command_topic_and_choices() {
        let e: HaEntity = serde_yaml_ng::from_str(
            "name: Pump\ncomponent: switch\ncommand_topic: cmd/relay/pump\n\
             state_topic: sensors/relay/pump\npayload_on: '{\"on\":true}'\npayload_off: '{\"on\":false}'\n",
        )
        .unwrap();
        let m = config_message("pi-1", "relay", &e);
        assert_eq!(m.topic, "homeassistant/switch/pi_1/relay_pump/config");
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        assert_eq!(v["command_topic"], "cmd/relay/pump");
        assert_eq!(v["payload_on"], "{\"on\":true}");
        let e: HaEntity = serde_yaml_ng::from_str(
            "name: Mode\ncomponent: select\ncommand_topic: cmd/relay/mode\noptions: [auto, manual]\n",
        )
        .unwrap();
        let v: Value =
            serde_json::from_slice(&config_message("pi-1", "relay", &e).payload).unwrap();
        assert_eq!(v["options"], json!(["auto", "manual"]));
        assert!(v.get("state_topic").is_none());
    }
}
