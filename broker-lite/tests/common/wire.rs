//! Byte builders for MQTT packets, so a test controls every bit it sends.

/// The variable-length "remaining length" field.
pub(crate) fn remaining_length(n: usize) -> Vec<u8> {
    let mut out = bytes::BytesMut::new();
    mqtt_proto::codec::put_remaining_length(&mut out, n);
    out.to_vec()
}

/// A whole packet: fixed-header byte, remaining length, body.
pub(crate) fn frame(header: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![header];
    out.extend(remaining_length(body.len()));
    out.extend_from_slice(body);
    out
}

/// A length-prefixed byte field.
pub(crate) fn mqtt_bytes(b: &[u8]) -> Vec<u8> {
    let mut out = (b.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(b);
    out
}

/// A length-prefixed UTF-8 string field.
pub(crate) fn mqtt_str(s: &str) -> Vec<u8> {
    mqtt_bytes(s.as_bytes())
}

/// A will for `ConnectBytes`.
#[derive(Debug, Clone)]
pub(crate) struct Will {
    pub topic: String,
    pub payload: Vec<u8>,
    pub qos: u8,
    pub retain: bool,
}

/// A CONNECT packet with every field under the test's control.
#[derive(Debug, Clone)]
pub(crate) struct ConnectBytes {
    pub protocol_name: Vec<u8>,
    pub level: u8,
    pub clean_session: bool,
    pub keep_alive: u16,
    pub client_id: Vec<u8>,
    pub will: Option<Will>,
    pub username: Option<Vec<u8>>,
    pub password: Option<Vec<u8>>,
    /// Replaces the computed connect-flags byte when set.
    pub flags_override: Option<u8>,
}

impl ConnectBytes {
    /// MQTT 3.1.1, clean session, keep-alive off.
    pub(crate) fn new(client_id: &str) -> Self {
        ConnectBytes {
            protocol_name: b"MQTT".to_vec(),
            level: 4,
            clean_session: true,
            keep_alive: 0,
            client_id: client_id.as_bytes().to_vec(),
            will: None,
            username: None,
            password: None,
            flags_override: None,
        }
    }

    pub(crate) fn clean(mut self, clean: bool) -> Self {
        self.clean_session = clean;
        self
    }

    /// With a user name and a password.
    pub(crate) fn credentials(mut self, user: &str, password: &str) -> Self {
        self.username = Some(user.as_bytes().to_vec());
        self.password = Some(password.as_bytes().to_vec());
        self
    }

    pub(crate) fn keep_alive(mut self, secs: u16) -> Self {
        self.keep_alive = secs;
        self
    }

    pub(crate) fn will(mut self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> Self {
        self.will = Some(Will {
            topic: topic.to_string(),
            payload: payload.to_vec(),
            qos,
            retain,
        });
        self
    }

    /// The connect-flags byte these fields give.
    pub(crate) fn flags(&self) -> u8 {
        if let Some(f) = self.flags_override {
            return f;
        }
        let mut f = 0u8;
        if self.username.is_some() {
            f |= 0x80;
        }
        if self.password.is_some() {
            f |= 0x40;
        }
        if let Some(w) = &self.will {
            f |= 0x04 | (w.qos << 3);
            if w.retain {
                f |= 0x20;
            }
        }
        if self.clean_session {
            f |= 0x02;
        }
        f
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut body = mqtt_bytes(&self.protocol_name);
        body.push(self.level);
        body.push(self.flags());
        body.extend(self.keep_alive.to_be_bytes());
        body.extend(mqtt_bytes(&self.client_id));
        if let Some(w) = &self.will {
            body.extend(mqtt_str(&w.topic));
            body.extend(mqtt_bytes(&w.payload));
        }
        if let Some(u) = &self.username {
            body.extend(mqtt_bytes(u));
        }
        if let Some(p) = &self.password {
            body.extend(mqtt_bytes(p));
        }
        frame(0x10, &body)
    }
}

/// A PUBLISH with the given flags; the packet id is written only for QoS 1 and 2.
pub(crate) fn publish(
    topic: &str,
    payload: &[u8],
    qos: u8,
    retain: bool,
    dup: bool,
    pkid: u16,
) -> Vec<u8> {
    let header = 0x30 | (u8::from(dup) << 3) | (qos << 1) | u8::from(retain);
    let mut body = mqtt_str(topic);
    if qos > 0 {
        body.extend(pkid.to_be_bytes());
    }
    body.extend_from_slice(payload);
    frame(header, &body)
}

/// A SUBSCRIBE with (filter, requested QoS byte) pairs.
pub(crate) fn subscribe(pkid: u16, filters: &[(&str, u8)]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for (f, q) in filters {
        body.extend(mqtt_str(f));
        body.push(*q);
    }
    frame(0x82, &body)
}

pub(crate) fn unsubscribe(pkid: u16, filters: &[&str]) -> Vec<u8> {
    let mut body = pkid.to_be_bytes().to_vec();
    for f in filters {
        body.extend(mqtt_str(f));
    }
    frame(0xA2, &body)
}

pub(crate) fn puback(pkid: u16) -> Vec<u8> {
    frame(0x40, &pkid.to_be_bytes())
}

pub(crate) fn pubrec(pkid: u16) -> Vec<u8> {
    frame(0x50, &pkid.to_be_bytes())
}

pub(crate) fn pubrel(pkid: u16) -> Vec<u8> {
    frame(0x62, &pkid.to_be_bytes())
}

pub(crate) fn pubcomp(pkid: u16) -> Vec<u8> {
    frame(0x70, &pkid.to_be_bytes())
}

pub(crate) const PINGREQ: [u8; 2] = [0xC0, 0x00];
pub(crate) const DISCONNECT: [u8; 2] = [0xE0, 0x00];
