//! The `homeassistant:` list of a mapping file: the entities Home Assistant should
//! discover for the messages the mapping publishes.

use serde::Deserialize;

/// One entity, as written in a mapping file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaEntity {
    /// Shown in Home Assistant, e.g. `Kitchen temperature`.
    pub name: String,
    /// A topic this mapping publishes (no wildcards).
    pub state_topic: String,
    /// How to read the value from the payload, e.g. `{{ value_json.temperature }}`.
    pub value_template: Option<String>,
    /// `unit_of_measurement`, e.g. `°C`.
    pub unit: Option<String>,
    /// Home Assistant's device class, e.g. `temperature`, `humidity`, `door`.
    pub device_class: Option<String>,
    /// e.g. `measurement`.
    pub state_class: Option<String>,
    /// `sensor` (default) or `binary_sensor`.
    #[serde(default)]
    pub component: HaComponent,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HaComponent {
    #[default]
    Sensor,
    BinarySensor,
}

impl HaComponent {
    pub fn as_str(self) -> &'static str {
        match self {
            HaComponent::Sensor => "sensor",
            HaComponent::BinarySensor => "binary_sensor",
        }
    }
}
