//! `Packet` -> bytes. Each call reserves the exact size once, then writes.
//!
//! The encoder trusts its input: packets come from the decoder or from the
//! broker itself. Strings longer than 65535 bytes or bodies over the 256 MiB
//! limit of the remaining length are caller bugs (checked in debug builds).

use bytes::{BufMut, BytesMut};

use super::{Connect, Packet, QoS, PROTOCOL_LEVEL_31};

/// Largest value the 4-byte remaining length can hold.
const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Append the wire form of `packet` to `out`.
pub fn encode(packet: &Packet, out: &mut BytesMut) {
    if let Packet::Publish(p) = packet {
        encode_publish(out, &p.topic, &p.payload, p.qos, p.retain, p.dup, p.pkid);
        return;
    }
    let body = body_len(packet);
    out.reserve(1 + varint_len(body) + body);
    out.put_u8(first_byte(packet));
    put_remaining_length(out, body);
    match packet {
        Packet::Connect(c) => put_connect(out, c),
        Packet::ConnAck(a) => {
            out.put_u8(u8::from(a.session_present));
            out.put_u8(a.code as u8);
        }
        Packet::PubAck(id)
        | Packet::PubRec(id)
        | Packet::PubRel(id)
        | Packet::PubComp(id)
        | Packet::UnsubAck(id) => out.put_u16(*id),
        Packet::Subscribe(s) => {
            out.put_u16(s.pkid);
            for (filter, qos) in &s.filters {
                put_str(out, filter);
                out.put_u8(*qos as u8);
            }
        }
        Packet::SubAck(s) => {
            out.put_u16(s.pkid);
            for code in &s.return_codes {
                out.put_u8(code.to_u8());
            }
        }
        Packet::Unsubscribe(u) => {
            out.put_u16(u.pkid);
            for filter in &u.filters {
                put_str(out, filter);
            }
        }
        Packet::Publish(_) | Packet::PingReq | Packet::PingResp | Packet::Disconnect => {}
    }
}

/// Bytes `encode` would write for `packet`, fixed header included.
pub fn encoded_len(packet: &Packet) -> usize {
    let body = body_len(packet);
    1 + varint_len(body) + body
}

/// Append a PUBLISH without building a `Packet` (the broker's hot path).
///
/// `pkid` is written only for QoS 1 and 2; `dup` is cleared for QoS 0, where
/// the standard forbids it [MQTT-3.3.1-2].
pub fn encode_publish(
    out: &mut BytesMut,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    retain: bool,
    dup: bool,
    pkid: u16,
) {
    debug_assert!(
        topic.len() <= usize::from(u16::MAX),
        "topic over 65535 bytes"
    );
    let body = publish_body_len(topic, payload.len(), qos);
    out.reserve(1 + varint_len(body) + body);
    out.put_u8(publish_first_byte(qos, retain, dup));
    put_remaining_length(out, body);
    put_str(out, topic);
    if qos != QoS::AtMostOnce {
        out.put_u16(pkid);
    }
    out.put_slice(payload);
}

fn publish_body_len(topic: &str, payload_len: usize, qos: QoS) -> usize {
    let pkid = if qos == QoS::AtMostOnce { 0 } else { 2 };
    2 + topic.len() + pkid + payload_len
}

fn publish_first_byte(qos: QoS, retain: bool, dup: bool) -> u8 {
    let dup = dup && qos != QoS::AtMostOnce;
    0x30 | u8::from(dup) << 3 | (qos as u8) << 1 | u8::from(retain)
}

fn first_byte(packet: &Packet) -> u8 {
    match packet {
        Packet::Connect(_) => 0x10,
        Packet::ConnAck(_) => 0x20,
        Packet::Publish(p) => publish_first_byte(p.qos, p.retain, p.dup),
        Packet::PubAck(_) => 0x40,
        Packet::PubRec(_) => 0x50,
        Packet::PubRel(_) => 0x62,
        Packet::PubComp(_) => 0x70,
        Packet::Subscribe(_) => 0x82,
        Packet::SubAck(_) => 0x90,
        Packet::Unsubscribe(_) => 0xA2,
        Packet::UnsubAck(_) => 0xB0,
        Packet::PingReq => 0xC0,
        Packet::PingResp => 0xD0,
        Packet::Disconnect => 0xE0,
    }
}

/// Length of everything after the fixed header.
fn body_len(packet: &Packet) -> usize {
    match packet {
        Packet::Connect(c) => connect_body_len(c),
        Packet::ConnAck(_)
        | Packet::PubAck(_)
        | Packet::PubRec(_)
        | Packet::PubRel(_)
        | Packet::PubComp(_)
        | Packet::UnsubAck(_) => 2,
        Packet::Publish(p) => publish_body_len(&p.topic, p.payload.len(), p.qos),
        Packet::Subscribe(s) => {
            2 + s
                .filters
                .iter()
                .map(|(f, _)| 2 + f.len() + 1)
                .sum::<usize>()
        }
        Packet::SubAck(s) => 2 + s.return_codes.len(),
        Packet::Unsubscribe(u) => 2 + u.filters.iter().map(|f| 2 + f.len()).sum::<usize>(),
        Packet::PingReq | Packet::PingResp | Packet::Disconnect => 0,
    }
}

fn protocol_name(level: u8) -> &'static str {
    if level == PROTOCOL_LEVEL_31 {
        "MQIsdp"
    } else {
        "MQTT"
    }
}

fn connect_body_len(c: &Connect) -> usize {
    let mut len = 2 + protocol_name(c.protocol_level).len() + 1 + 1 + 2 + 2 + c.client_id.len();
    if let Some(w) = &c.will {
        len += 2 + w.topic.len() + 2 + w.payload.len();
    }
    if let Some(u) = &c.username {
        len += 2 + u.len();
    }
    if let Some(p) = &c.password {
        len += 2 + p.len();
    }
    len
}

fn put_connect(out: &mut BytesMut, c: &Connect) {
    put_str(out, protocol_name(c.protocol_level));
    out.put_u8(c.protocol_level);
    let mut flags = u8::from(c.clean_session) << 1;
    if let Some(w) = &c.will {
        flags |= 0b100 | (w.qos as u8) << 3 | u8::from(w.retain) << 5;
    }
    flags |= u8::from(c.password.is_some()) << 6 | u8::from(c.username.is_some()) << 7;
    out.put_u8(flags);
    out.put_u16(c.keep_alive);
    put_str(out, &c.client_id);
    if let Some(w) = &c.will {
        put_str(out, &w.topic);
        put_bytes(out, &w.payload);
    }
    if let Some(u) = &c.username {
        put_str(out, u);
    }
    if let Some(p) = &c.password {
        put_bytes(out, p);
    }
}

fn put_str(out: &mut BytesMut, s: &str) {
    put_bytes(out, s.as_bytes());
}

fn put_bytes(out: &mut BytesMut, b: &[u8]) {
    debug_assert!(b.len() <= usize::from(u16::MAX), "field over 65535 bytes");
    out.put_u16(b.len() as u16);
    out.put_slice(b);
}

/// Bytes the remaining-length varint takes for `len`.
pub(super) fn varint_len(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Append `len` as a fixed header's remaining length (1 to 4 bytes, 7 bits each
/// [MQTT-2.2.3]): for writing a packet's header by hand, e.g. one that announces
/// more than will be sent.
pub fn put_remaining_length(out: &mut BytesMut, mut len: usize) {
    debug_assert!(len <= MAX_REMAINING_LENGTH, "packet body over 256 MiB");
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if len == 0 {
            break;
        }
    }
}
