//! What users edit: the gateway file (`mqgate.yaml`) and the mapping files of its
//! mappings folder. Typed with serde (`deny_unknown_fields`, enums for every
//! choice), validated once at load, and every problem in every file reported
//! together, each with file, line, column and field path.

mod commands;
mod devices;
mod duration;
mod gateway;
mod homeassistant;
mod log;
mod mapping_file;
mod paths;
mod qos;
mod source;
mod status;
mod store;
mod upstream;
mod yaml;

pub use commands::{parse_expiry, CommandFrom, CommandsConfig};
pub use config_report::ConfigError;
pub use devices::{AbpKeys, DeviceConfig, DEFAULT_DEVICE_TOPIC};
pub use gateway::{GatewayConfig, GatewaySection};
pub use homeassistant::{HaComponent, HaEntity};
pub use log::LogConfig;
pub use mapping_file::{load_one as load_mapping_file, MappingFile, ScriptLimits};
pub use source::{
    DataBits, FlowControl, ModbusBus, ModbusSource, MqttBroker, MqttSource, OtherEvents, Parity,
    PayloadFormat, PollConfig, Polling, ReopenConfig, ReplayConfig, SemtechUdpConfig, SerialConfig,
    SourceConfig, SourceKind, StopBits,
};
pub use status::{StatusAuth, StatusConfig, StatusLimits, MAX_STATUS_CONNECTIONS};
pub use store::{parse_duration, Durability, Qos0WhileDown, StoreConfig, Synchronous, WhenFull};
pub use upstream::{BrokerUrl, UpstreamConfig, DEFAULT_MAX_INFLIGHT, MAX_INFLIGHT_LIMIT};
