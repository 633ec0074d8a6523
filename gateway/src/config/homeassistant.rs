//! The `homeassistant:` list of a mapping file: the entities Home Assistant should
//! discover for the messages the mapping publishes.

use serde::Deserialize;

/// One entity, as written in a mapping file.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaEntity {
    /// Shown in Home Assistant, e.g. `Kitchen temperature`.
    pub name: String,
    /// A topic this mapping publishes (no wildcards); needed by sensors and
    /// binary sensors, optional for the entities that send commands.
    pub state_topic: Option<String>,
    /// Where Home Assistant publishes the entity's commands (`switch`, `button`,
    /// `number`, `select`): a topic the mapping's `commands:` filter takes.
    pub command_topic: Option<String>,
    /// `switch`: what it publishes for on and off (Home Assistant's `ON` / `OFF`
    /// when left out).
    pub payload_on: Option<String>,
    pub payload_off: Option<String>,
    /// `button`: what it publishes when pressed (`PRESS` when left out).
    pub payload_press: Option<String>,
    /// `number`: its range and step.
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub step: Option<f64>,
    /// `select`: the choices.
    #[serde(default)]
    pub options: Vec<String>,
    /// How to read the value from the payload, e.g. `{{ value_json.temperature }}`.
    pub value_template: Option<String>,
    /// `unit_of_measurement`, e.g. `°C`.
    pub unit: Option<String>,
    /// Home Assistant's device class, e.g. `temperature`, `humidity`, `door`.
    pub device_class: Option<String>,
    /// e.g. `measurement`.
    pub state_class: Option<String>,
    /// `sensor` (default), `binary_sensor`, or one that sends commands:
    /// `switch`, `button`, `number`, `select`.
    #[serde(default)]
    pub component: HaComponent,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HaComponent {
    #[default]
    Sensor,
    BinarySensor,
    Switch,
    Button,
    Number,
    Select,
}

impl HaComponent {
    pub fn as_str(self) -> &'static str {
        match self {
            HaComponent::Sensor => "sensor",
            HaComponent::BinarySensor => "binary_sensor",
            HaComponent::Switch => "switch",
            HaComponent::Button => "button",
            HaComponent::Number => "number",
            HaComponent::Select => "select",
        }
    }

    /// Whether the entity sends commands (and so needs a `command_topic`).
    pub fn commands(self) -> bool {
        !matches!(self, HaComponent::Sensor | HaComponent::BinarySensor)
    }
}
