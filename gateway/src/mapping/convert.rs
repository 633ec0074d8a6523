//! Values across the script boundary: a `Frame` as a Rhai map, JSON to and from Rhai
//! values, and a returned payload as bytes.

use bytes::Bytes;
use rhai::{Array, Blob, Dynamic, Map, FLOAT, INT};
use serde_json::Value;

use super::time::{rfc3339, unix_millis};
use crate::frame::{Frame, Meta};

/// The `frame` map a script receives (see the module documentation for its keys).
pub(super) fn frame_to_dynamic(frame: &Frame) -> Dynamic {
    let mut map = Map::new();
    map.insert("bytes".into(), Dynamic::from_blob(frame.bytes.to_vec()));
    let text = match std::str::from_utf8(&frame.bytes) {
        Ok(s) => Dynamic::from(s.to_string()),
        Err(_) => Dynamic::UNIT,
    };
    map.insert("text".into(), text);
    map.insert("source".into(), Dynamic::from(frame.source.to_string()));
    map.insert("time".into(), Dynamic::from(rfc3339(frame.received_at)));
    map.insert(
        "received_ms".into(),
        Dynamic::from_int(unix_millis(frame.received_at)),
    );
    map.insert("meta".into(), Dynamic::from_map(meta_to_map(&frame.meta)));
    if let Some(topic) = &frame.meta.topic {
        let levels: Array = topic
            .split('/')
            .map(|l| Dynamic::from(l.to_string()))
            .collect();
        map.insert("levels".into(), Dynamic::from_array(levels));
    }
    if let Some(polled) = &frame.meta.polled {
        map.insert(
            "values".into(),
            json_to_dynamic(Value::Object(polled.values.clone())),
        );
        map.insert(
            "registers".into(),
            json_to_dynamic(Value::Object(polled.registers.clone())),
        );
    }
    Dynamic::from_map(map)
}

fn meta_to_map(meta: &Meta) -> Map {
    let mut map = Map::new();
    for (k, v) in &meta.extra {
        map.insert(k.as_str().into(), Dynamic::from(v.clone()));
    }
    if let Some(v) = meta.rssi {
        map.insert("rssi".into(), Dynamic::from_float(v));
    }
    if let Some(v) = meta.snr {
        map.insert("snr".into(), Dynamic::from_float(v));
    }
    if let Some(v) = meta.frequency_hz {
        map.insert("frequency_hz".into(), Dynamic::from_int(v as INT));
    }
    if let Some(v) = &meta.datarate {
        map.insert("datarate".into(), Dynamic::from(v.clone()));
    }
    if let Some(v) = &meta.port {
        map.insert("port".into(), Dynamic::from(v.to_string()));
    }
    if let Some(v) = &meta.topic {
        map.insert("topic".into(), Dynamic::from(v.to_string()));
    }
    map
}

/// A parsed JSON value as Rhai values; integers that fit stay integers.
pub(super) fn json_to_dynamic(v: Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i),
            None => Dynamic::from_float(n.as_f64().unwrap_or(FLOAT::NAN)),
        },
        Value::String(s) => Dynamic::from(s),
        Value::Array(a) => Dynamic::from_array(a.into_iter().map(json_to_dynamic).collect()),
        Value::Object(o) => {
            let map: Map = o
                .into_iter()
                .map(|(k, v)| (k.into(), json_to_dynamic(v)))
                .collect();
            Dynamic::from_map(map)
        }
    }
}

/// Append `v` as compact JSON to `out`, written directly without building a tree.
/// Blobs become arrays of byte values; map keys come out sorted. A float that is not
/// finite, or a value of a type JSON cannot hold, is an error naming the type.
pub(super) fn write_json(v: &Dynamic, out: &mut Vec<u8>) -> Result<(), String> {
    write_nested(v, out, 0)
}

/// Deepest nesting of arrays and maps written as JSON (the same as serde_json reads).
pub(super) const MAX_JSON_DEPTH: usize = 128;

fn write_nested(v: &Dynamic, out: &mut Vec<u8>, depth: usize) -> Result<(), String> {
    if depth > MAX_JSON_DEPTH {
        return Err(format!("nested deeper than {MAX_JSON_DEPTH} levels"));
    }
    if v.is_unit() {
        out.extend_from_slice(b"null");
    } else if let Ok(b) = v.as_bool() {
        out.extend_from_slice(if b { b"true" } else { b"false" });
    } else if let Ok(i) = v.as_int() {
        write_int(i, out);
    } else if let Ok(f) = v.as_float() {
        if !f.is_finite() {
            return Err(format!("{f} cannot be written as JSON"));
        }
        serde_json::to_writer(&mut *out, &f).map_err(|e| e.to_string())?;
    } else if let Ok(c) = v.as_char() {
        let mut buf = [0u8; 4];
        write_str(c.encode_utf8(&mut buf), out)?;
    } else if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
        write_str(&s, out)?;
    } else if let Some(blob) = v.read_lock::<Blob>() {
        out.push(b'[');
        for (i, b) in blob.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_int(*b as INT, out);
        }
        out.push(b']');
    } else if let Some(array) = v.read_lock::<Array>() {
        out.push(b'[');
        for (i, x) in array.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_nested(x, out, depth + 1)?;
        }
        out.push(b']');
    } else if let Some(map) = v.read_lock::<Map>() {
        out.push(b'{');
        for (i, (k, x)) in map.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_str(k, out)?;
            out.push(b':');
            write_nested(x, out, depth + 1)?;
        }
        out.push(b'}');
    } else {
        return Err(format!(
            "a value of type {} has no JSON form",
            v.type_name()
        ));
    }
    Ok(())
}

fn write_str(s: &str, out: &mut Vec<u8>) -> Result<(), String> {
    serde_json::to_writer(out, s).map_err(|e| e.to_string())
}

fn write_int(i: INT, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = write!(out, "{i}");
}

/// A returned `payload`: map/array → JSON, string → as is, blob → bytes,
/// numbers and bools → their JSON text.
pub(super) fn payload_bytes(v: Dynamic) -> Result<Bytes, String> {
    if v.is_blob() {
        return Ok(Bytes::from(v.cast::<Blob>()));
    }
    if v.is_string() {
        let s = v.into_immutable_string().map_err(|t| t.to_string())?;
        return Ok(Bytes::copy_from_slice(s.as_bytes()));
    }
    if v.is_unit() {
        return Err("payload is () (use an empty string for an empty payload)".into());
    }
    let mut out = Vec::with_capacity(64);
    write_json(&v, &mut out).map_err(|e| format!("payload: {e}"))?;
    Ok(Bytes::from(out))
}

/// A placeholder value's text: strings as is, other scalars as printed.
pub(super) fn placeholder_text(v: &Dynamic) -> Result<String, String> {
    if v.is_string() || v.is_int() || v.is_float() || v.is_bool() || v.is_char() {
        Ok(v.to_string())
    } else {
        Err(format!(
            "a {} cannot fill a topic placeholder",
            v.type_name()
        ))
    }
}

/// What a JSON value is, for error messages ("a string", "an object"...).
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a bool",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
