//! End-to-end test helpers specific to mqgate: the `mqgate` binary, the feeder
//! and the relay, the sequence subscriber, the upstream Mosquitto that restarts,
//! the other brokers tested as upstream (aedes, amqtt, broker-lite), a browser
//! for the status page, lora-packet for the LoRaWAN crypto. Processes, scratch
//! folders, Mosquitto and certificates come from `test-support`.

pub mod brokers;
pub mod captures;
pub mod feeder;
pub mod http;
pub mod lora_packet;
pub mod modbus;
pub mod mqgate;
pub mod peers;
pub mod relay;
pub mod seqsub;
pub mod upstream;
pub mod webdriver;
