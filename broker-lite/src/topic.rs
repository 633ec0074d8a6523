//! Topic names and topic filters: validation and matching [MQTT-4.7].
