//! Home Assistant discovery: the example JSON sensor mapping declares two entities;
//! once the gateway runs, their retained configs and `online` can be read back from
//! the embedded broker, as Home Assistant would.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use test_support::Scratch;

use mqgate::config::GatewayConfig;
use mqgate::pipeline;
use mqtt_proto::codec::QoS;
use serde_json::Value;
use tokio::sync::watch;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test]
async fn declared_entities_are_published_as_retained_discovery_configs_with_availability() {
    // Removed when dropped, last, after the gateway below.
    let scratch = Scratch::new("mqgate-ha");
    let dir = scratch.path();
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    let mapping = std::fs::read_to_string(workspace().join("mappings/json-sensor.yaml"))
        .unwrap()
        .replace(
            "../scripts/json-lines.rhai",
            &workspace()
                .join("scripts/json-lines.rhai")
                .display()
                .to_string(),
        );
    std::fs::write(dir.join("mappings/json-sensor.yaml"), mapping).unwrap();
    let file = dir.join("mqgate.yaml");
    std::fs::write(
        &file,
        format!(
            "gateway:\n  id: ha-test\n  state_dir: {}\nbroker:\n  listen: 127.0.0.1:0\n\
             sources:\n  - id: json-sensor\n    type: replay\n    file: {}\n    fast: true\n",
            dir.join("state").display(),
            workspace().join("tests/captures/json-sensor.log").display()
        ),
    )
    .unwrap();
    let config = GatewayConfig::load(&file).expect("the config loads");
    let (_stop, shutdown) = watch::channel(false);
    let running = pipeline::start(&config, None, None, None, shutdown)
        .await
        .expect("the gateway starts");
    let handle = running.broker.as_ref().expect("embedded broker").handle();

    // A late subscriber, as Home Assistant starting after the gateway: once the
    // embedded output has handed the broker the discovery messages and more.
    let stats = running.embedded.clone().expect("embedded output");
    tokio::time::timeout(Duration::from_secs(10), async {
        while stats.published.load(std::sync::atomic::Ordering::Relaxed) < 10 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the embedded output publishes");
    let mut got: BTreeMap<String, (String, bool)> = BTreeMap::new();
    let mut sub = handle
        .subscribe("homeassistant/#", QoS::AtLeastOnce)
        .await
        .unwrap();
    let mut status = handle
        .subscribe("mqgate/ha-test/status", QoS::AtLeastOnce)
        .await
        .unwrap();
    // The mapping declares two sensors and a button.
    while got.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("the discovery configs")
            .expect("open");
        got.insert(
            m.topic.to_string(),
            (String::from_utf8_lossy(&m.payload).into_owned(), m.retain),
        );
    }
    let (temp, retained) =
        &got["homeassistant/sensor/ha_test/json_sensor_kitchen_temperature/config"];
    assert!(retained, "discovery configs are retained");
    let v: Value = serde_json::from_str(temp).unwrap();
    assert_eq!(v["state_topic"], "sensors/json-sensor/bme280-kitchen");
    assert_eq!(v["value_template"], "{{ value_json.temperature }}");
    assert_eq!(v["unit_of_measurement"], "°C");
    assert_eq!(v["device_class"], "temperature");
    assert_eq!(v["availability_topic"], "mqgate/ha-test/status");
    assert!(got.contains_key("homeassistant/sensor/ha_test/json_sensor_kitchen_humidity/config"));
    let (button, _) = &got["homeassistant/button/ha_test/json_sensor_kitchen_sensor_blink/config"];
    let v: Value = serde_json::from_str(button).unwrap();
    assert_eq!(v["command_topic"], "cmd/json-sensor/led");
    assert_eq!(v["payload_press"], r#"{"led": "blink"}"#);
    assert!(v.get("state_topic").is_none());
    let online = tokio::time::timeout(Duration::from_secs(10), status.recv())
        .await
        .expect("the availability")
        .expect("open");
    assert_eq!(&online.payload[..], b"online");
    assert!(online.retain);
}
