//! Bytes -> `Packet`, checking every rule of the standard that one packet can break.
//!
//! Works in both directions (server and client packets), so tests and load tools
//! can decode what a broker sends. Payloads and passwords are slices of the input
//! `Bytes`, never copies.

use bytes::{Buf, Bytes};

use super::{
    ConnAck, Connect, ConnectReturnCode, DecodeError, LastWill, Packet, Publish, QoS, SubAck,
    Subscribe, SubscribeReturnCode, Unsubscribe, PROTOCOL_LEVEL_31, PROTOCOL_LEVEL_311,
};
use crate::topic::{validate_topic_filter, validate_topic_name};

/// The spec's name for a packet type number; "reserved" for 0 and 15.
pub(super) fn packet_name(kind: u8) -> &'static str {
    match kind {
        1 => "CONNECT",
        2 => "CONNACK",
        3 => "PUBLISH",
        4 => "PUBACK",
        5 => "PUBREC",
        6 => "PUBREL",
        7 => "PUBCOMP",
        8 => "SUBSCRIBE",
        9 => "SUBACK",
        10 => "UNSUBSCRIBE",
        11 => "UNSUBACK",
        12 => "PINGREQ",
        13 => "PINGRESP",
        14 => "DISCONNECT",
        _ => "reserved",
    }
}

/// Check the first byte alone: packet type and flag bits. Framing calls this as
/// soon as the byte arrives, so garbage is refused before its body is awaited.
pub(super) fn check_fixed_header(header: u8) -> Result<(), DecodeError> {
    let kind = header >> 4;
    let flags = header & 0x0F;
    match kind {
        0 | 15 => Err(DecodeError::ReservedPacketType(kind)),
        3 => {
            let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::PublishQos3)?;
            if qos == QoS::AtMostOnce && flags & 0b1000 != 0 {
                return Err(DecodeError::PublishDupWithQos0);
            }
            Ok(())
        }
        6 | 8 | 10 if flags == 0b0010 => Ok(()),
        6 | 8 | 10 => Err(DecodeError::InvalidFlags {
            packet: packet_name(kind),
            flags,
        }),
        _ if flags == 0 => Ok(()),
        _ => Err(DecodeError::InvalidFlags {
            packet: packet_name(kind),
            flags,
        }),
    }
}

/// Decode one packet from its fixed-header byte and its body (the `remaining length` bytes).
pub fn decode(header: u8, body: Bytes) -> Result<Packet, DecodeError> {
    check_fixed_header(header)?;
    let kind = header >> 4;
    let mut r = Reader {
        buf: body,
        packet: packet_name(kind),
    };
    let packet = match kind {
        1 => Packet::Connect(connect(&mut r)?),
        2 => {
            r.expect_len(2)?;
            Packet::ConnAck(connack(&mut r)?)
        }
        3 => Packet::Publish(publish(header, &mut r)?),
        4..=7 | 11 => {
            r.expect_len(2)?;
            let pkid = r.pkid()?;
            match kind {
                4 => Packet::PubAck(pkid),
                5 => Packet::PubRec(pkid),
                6 => Packet::PubRel(pkid),
                7 => Packet::PubComp(pkid),
                _ => Packet::UnsubAck(pkid),
            }
        }
        8 => Packet::Subscribe(subscribe(&mut r)?),
        9 => Packet::SubAck(suback(&mut r)?),
        10 => Packet::Unsubscribe(unsubscribe(&mut r)?),
        _ => {
            r.expect_len(0)?;
            match kind {
                12 => Packet::PingReq,
                13 => Packet::PingResp,
                _ => Packet::Disconnect,
            }
        }
    };
    r.finish()?;
    Ok(packet)
}

fn connect(r: &mut Reader) -> Result<Connect, DecodeError> {
    let name = r.binary("protocol name")?;
    let level = r.u8("protocol level")?;
    match (&name[..], level) {
        (b"MQTT", PROTOCOL_LEVEL_311) | (b"MQIsdp", PROTOCOL_LEVEL_31) => {}
        (b"MQTT", _) | (b"MQIsdp", _) => return Err(DecodeError::UnsupportedProtocolLevel(level)),
        _ => {
            let shown = &name[..name.len().min(32)];
            return Err(DecodeError::InvalidProtocolName {
                name: String::from_utf8_lossy(shown).into_owned(),
                level,
            });
        }
    }

    let flags = r.u8("connect flags")?;
    if flags & 0b0000_0001 != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let clean_session = flags & 0b0000_0010 != 0;
    let will_flag = flags & 0b0000_0100 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0b0010_0000 != 0;
    let has_password = flags & 0b0100_0000 != 0;
    let has_username = flags & 0b1000_0000 != 0;
    if !will_flag && will_qos != 0 {
        return Err(DecodeError::WillQosWithoutWill);
    }
    if !will_flag && will_retain {
        return Err(DecodeError::WillRetainWithoutWill);
    }
    if has_password && !has_username {
        return Err(DecodeError::PasswordWithoutUsername);
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::WillQos3)?;

    let keep_alive = r.u16("keep alive")?;
    let client_id = r.string("client identifier")?;
    let will = if will_flag {
        let topic = r.string("will topic")?;
        validate_topic_name(&topic).map_err(DecodeError::InvalidWillTopic)?;
        let payload = r.binary("will message")?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string("user name")?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary("password")?)
    } else {
        None
    };
    Ok(Connect {
        protocol_level: level,
        clean_session,
        keep_alive,
        client_id,
        will,
        username,
        password,
    })
}

fn connack(r: &mut Reader) -> Result<ConnAck, DecodeError> {
    let flags = r.u8("acknowledge flags")?;
    if flags & 0b1111_1110 != 0 {
        return Err(DecodeError::ConnAckReservedFlags(flags));
    }
    let code = match r.u8("return code")? {
        0 => ConnectReturnCode::Accepted,
        1 => ConnectReturnCode::UnacceptableProtocolVersion,
        2 => ConnectReturnCode::IdentifierRejected,
        3 => ConnectReturnCode::ServerUnavailable,
        4 => ConnectReturnCode::BadUserNameOrPassword,
        5 => ConnectReturnCode::NotAuthorized,
        other => return Err(DecodeError::InvalidConnectReturnCode(other)),
    };
    Ok(ConnAck {
        session_present: flags & 1 != 0,
        code,
    })
}

fn publish(header: u8, r: &mut Reader) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((header >> 1) & 0b11).ok_or(DecodeError::PublishQos3)?;
    let topic = r.string("topic name")?;
    if topic.is_empty() {
        return Err(DecodeError::PublishTopicEmpty);
    }
    if topic.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(DecodeError::PublishTopicWildcard);
    }
    let pkid = if qos == QoS::AtMostOnce { 0 } else { r.pkid()? };
    Ok(Publish {
        dup: header & 0b1000 != 0,
        qos,
        retain: header & 0b0001 != 0,
        topic,
        pkid,
        payload: r.rest(),
    })
}

fn subscribe(r: &mut Reader) -> Result<Subscribe, DecodeError> {
    let pkid = r.pkid()?;
    if r.buf.is_empty() {
        return Err(DecodeError::SubscribeWithoutFilters);
    }
    let mut filters = Vec::new();
    while !r.buf.is_empty() {
        let filter = r.string("topic filter")?;
        validate_topic_filter(&filter).map_err(DecodeError::InvalidTopicFilter)?;
        let requested = r.u8("requested QoS")?;
        let qos = QoS::from_u8(requested).ok_or(DecodeError::InvalidRequestedQos(requested))?;
        filters.push((filter, qos));
    }
    Ok(Subscribe { pkid, filters })
}

fn suback(r: &mut Reader) -> Result<SubAck, DecodeError> {
    let pkid = r.pkid()?;
    let return_codes = r
        .rest()
        .iter()
        .map(|&code| match code {
            0x80 => Ok(SubscribeReturnCode::Failure),
            _ => QoS::from_u8(code)
                .map(SubscribeReturnCode::Success)
                .ok_or(DecodeError::InvalidSubAckReturnCode(code)),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SubAck { pkid, return_codes })
}

fn unsubscribe(r: &mut Reader) -> Result<Unsubscribe, DecodeError> {
    let pkid = r.pkid()?;
    if r.buf.is_empty() {
        return Err(DecodeError::UnsubscribeWithoutFilters);
    }
    let mut filters = Vec::new();
    while !r.buf.is_empty() {
        let filter = r.string("topic filter")?;
        validate_topic_filter(&filter).map_err(DecodeError::InvalidTopicFilter)?;
        filters.push(filter);
    }
    Ok(Unsubscribe { pkid, filters })
}

/// A cursor over one packet's body that names the packet and field in its errors.
struct Reader {
    buf: Bytes,
    packet: &'static str,
}

impl Reader {
    fn truncated(&self, field: &'static str) -> DecodeError {
        DecodeError::Truncated {
            packet: self.packet,
            field,
        }
    }

    fn expect_len(&self, expected: usize) -> Result<(), DecodeError> {
        if self.buf.len() == expected {
            Ok(())
        } else {
            Err(DecodeError::WrongRemainingLength {
                packet: self.packet,
                expected,
                actual: self.buf.len(),
            })
        }
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, DecodeError> {
        self.buf.try_get_u8().map_err(|_| self.truncated(field))
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, DecodeError> {
        self.buf.try_get_u16().map_err(|_| self.truncated(field))
    }

    fn pkid(&mut self) -> Result<u16, DecodeError> {
        match self.u16("packet identifier")? {
            0 => Err(DecodeError::ZeroPacketId {
                packet: self.packet,
            }),
            id => Ok(id),
        }
    }

    /// Two-byte length, then that many bytes, as a slice of the input.
    fn binary(&mut self, field: &'static str) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16(field)?);
        if self.buf.len() < len {
            return Err(self.truncated(field));
        }
        Ok(self.buf.split_to(len))
    }

    /// A UTF-8 encoded string: well-formed and free of U+0000 [MQTT-1.5.3].
    fn string(&mut self, field: &'static str) -> Result<String, DecodeError> {
        let raw = self.binary(field)?;
        let s = std::str::from_utf8(&raw).map_err(|_| DecodeError::InvalidUtf8 { field })?;
        if raw.contains(&0) {
            return Err(DecodeError::NullCharacter { field });
        }
        Ok(s.to_owned())
    }

    fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    fn finish(&self) -> Result<(), DecodeError> {
        match self.buf.len() {
            0 => Ok(()),
            extra => Err(DecodeError::TrailingBytes {
                packet: self.packet,
                extra,
            }),
        }
    }
}
