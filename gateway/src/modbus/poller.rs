//! The poller of one bus: a single task that owns the connection, runs each
//! device's polls on their schedules one transaction at a time (keeping the
//! line's silent interval between them), turns each poll into a frame, and
//! writes fields for commands between polls.
//!
//! A device that stops answering is marked unavailable after
//! `unavailable_after` polls in a row without an answer and is then only tried
//! every `unavailable_every`, with no retries, so that it does not steal the
//! bus from the others.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::device::{Device, Read};
use super::plan::Kind;
use super::schedule::{Due, Schedule};
use super::stats::{BusStats, DeviceStats};
use super::transport::{self, Answer, Done, Failure, Link, Op, Quiet};
use crate::backoff::Backoff;
use crate::config::{ModbusBus, ModbusSource, Polling};
use crate::frame::{Frame, Meta, Polled};
use crate::source::{DeviceSide, SourceState, SourceStatus, TxOutcome, TxRequest};

/// A poll that starts within this of its time is on time.
pub const GRACE: Duration = Duration::from_millis(5);

/// The poller of one bus.
#[derive(Debug)]
pub struct Poller {
    source: Arc<str>,
    bus: ModbusBus,
    polling: Polling,
    devices: Vec<DeviceState>,
    stats: Arc<BusStats>,
    /// Quiet time after each transaction: the RTU silent interval plus `turnaround`.
    gap: Duration,
    quiet: Quiet,
    tx: mpsc::Sender<Frame>,
    announce: Option<Announce>,
}

/// Where each device's availability is published (retained `online` / `offline`).
pub type Announce = crate::pipeline::ToStore;

#[derive(Debug)]
struct DeviceState {
    device: Device,
    /// One per group, in the device's group order.
    schedules: Vec<Schedule>,
    /// Polls in a row that got no answer at all.
    silent_polls: u32,
    available: bool,
    /// The availability last published (`None` before the first).
    announced: Option<bool>,
    /// While unavailable: when it is tried next.
    probe_at: Instant,
}

/// The bus broke (port gone, connection lost, answers out of step): reopen it.
#[derive(Debug)]
struct Broken(String);

/// What one poll's reads gave.
struct Reading {
    values: Map<String, Value>,
    registers: Map<String, Value>,
    errors: Vec<String>,
    /// Some read got an answer (values or an exception): the device is there.
    answered: bool,
}

impl Poller {
    pub fn new(source: &str, config: &ModbusSource, tx: mpsc::Sender<Frame>) -> Poller {
        let now = Instant::now();
        let n = config.devices.len().max(1) as u32;
        let devices = config
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| DeviceState {
                schedules: d
                    .groups
                    .iter()
                    .map(|g| {
                        // Devices of one period take turns across it instead of all asking at once.
                        let phase = g.every / n * i as u32;
                        Schedule::new(now, g.every, phase, GRACE)
                    })
                    .collect(),
                device: d.clone(),
                silent_polls: 0,
                available: true,
                announced: None,
                probe_at: now,
            })
            .collect();
        let gap = match &config.bus {
            ModbusBus::Rtu(serial) => {
                let bits =
                    1 + match serial.data_bits {
                        crate::config::DataBits::Five => 5,
                        crate::config::DataBits::Six => 6,
                        crate::config::DataBits::Seven => 7,
                        crate::config::DataBits::Eight => 8,
                    } + u32::from(serial.parity != crate::config::Parity::None)
                        + match serial.stop_bits {
                            crate::config::StopBits::One => 1,
                            crate::config::StopBits::Two => 2,
                        };
                transport::silent_interval(serial.baud, bits) + config.polling.turnaround
            }
            ModbusBus::Tcp { .. } => config.polling.turnaround,
        };
        Poller {
            source: Arc::from(source),
            bus: config.bus.clone(),
            polling: config.polling.clone(),
            stats: Arc::new(BusStats::new(&config.devices)),
            devices,
            gap,
            quiet: Quiet::new(),
            tx,
            announce: None,
        }
    }

    /// Publish each device's availability through `announce`.
    pub fn announce(&mut self, announce: Announce) {
        self.announce = Some(announce);
    }

    /// Publish device `d`'s availability if it changed since it was last published.
    async fn tell_availability(&mut self, d: usize) {
        let Some(a) = &self.announce else { return };
        let state = &mut self.devices[d];
        if state.announced == Some(state.available) {
            return;
        }
        state.announced = Some(state.available);
        let topic = crate::pipeline::discovery::device_availability_topic(
            &a.gateway_id,
            &self.source,
            &state.device.name,
        );
        let Ok(topic) = mqtt_proto::topic::TopicName::new(topic) else {
            return;
        };
        let payload: &'static [u8] = if state.available {
            b"online"
        } else {
            b"offline"
        };
        let batch = crate::pipeline::MessageBatch::new(
            a.durability,
            vec![crate::message::Message {
                topic,
                payload: bytes::Bytes::from_static(payload),
                qos: mqtt_proto::codec::QoS::AtLeastOnce,
                retain: true,
            }],
        );
        let _ = a.tx.send(batch).await;
    }

    /// The counters, for the status page.
    pub fn stats(&self) -> Arc<BusStats> {
        self.stats.clone()
    }

    /// Poll until shutdown, reopening the bus whenever it breaks.
    pub async fn run(
        mut self,
        mut device_side: DeviceSide,
        status: Arc<SourceStatus>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut backoff = Backoff::new(
            Duration::from_millis(self.polling.reopen.initial_ms),
            Duration::from_millis(self.polling.reopen.max_ms),
        );
        let mut opened_before = false;
        loop {
            let why = match transport::open(&self.bus, self.polling.timeout).await {
                Ok(link) => {
                    if opened_before {
                        SourceStatus::add(&status.reopens, 1);
                    }
                    opened_before = true;
                    backoff.reset();
                    info!(source = %self.source, "Modbus bus open");
                    status.set_state(SourceState::Connected {
                        since: SystemTime::now(),
                    });
                    device_side.set_ready(true);
                    match self.serve(link, &mut device_side, &mut shutdown).await {
                        None => break,
                        Some(Broken(why)) => why,
                    }
                }
                Err(why) => why,
            };
            warn!(source = %self.source, "{why}; reopening with back-off");
            status.set_waiting(why.clone());
            let delay = backoff.next_delay();
            let wait = async {
                tokio::select! {
                    _ = tokio::time::sleep(delay) => true,
                    _ = shutdown.changed() => false,
                }
            };
            let why = format!("source {}: {why}", self.source);
            if !device_side.refuse_during(&why, wait).await {
                break;
            }
        }
        device_side.set_ready(false);
        status.set_state(SourceState::Finished);
    }

    /// Poll and write over one open link until it breaks (`Some`) or shutdown (`None`).
    async fn serve(
        &mut self,
        mut link: Link,
        device_side: &mut DeviceSide,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Broken> {
        loop {
            let (d, g, at) = self.next_due();
            tokio::select! {
                biased;
                _ = shutdown.changed() => return None,
                TxRequest { parts, reply } = device_side.next() => {
                    let mut outcome = None;
                    for part in &parts {
                        match self.write(&mut link, &part.bytes, &part.options).await {
                            Ok(()) => {}
                            Err(WriteError::Refused(why)) => {
                                outcome = Some(TxOutcome::Rejected(why));
                                break;
                            }
                            Err(WriteError::Failed(why)) => {
                                outcome = Some(TxOutcome::Failed(format!("source {}: {why}", self.source)));
                                break;
                            }
                            Err(WriteError::Broken(why)) => {
                                let _ = reply.send(TxOutcome::Failed(format!("source {}: {why}", self.source)));
                                return Some(Broken(why));
                            }
                        }
                    }
                    let _ = reply.send(outcome.unwrap_or(TxOutcome::Sent));
                    continue;
                }
                _ = transport::sleep_until(at) => {}
            }
            if let Err(broken) = self.poll(&mut link, d, g).await {
                return Some(broken);
            }
        }
    }

    /// The device and group due first, and when.
    fn next_due(&self) -> (usize, usize, Instant) {
        let mut best = (0, 0, Instant::now() + Duration::from_secs(3600));
        for (d, state) in self.devices.iter().enumerate() {
            if !state.available {
                if state.probe_at < best.2 {
                    best = (d, 0, state.probe_at);
                }
                continue;
            }
            for (g, s) in state.schedules.iter().enumerate() {
                if s.next_at() < best.2 {
                    best = (d, g, s.next_at());
                }
            }
        }
        best
    }

    /// Run group `g` of device `d` if it is due.
    async fn poll(&mut self, link: &mut Link, d: usize, g: usize) -> Result<(), Broken> {
        let now = Instant::now();
        let stats = self.stats.clone();
        let ds = &stats.devices[d];
        let probing = !self.devices[d].available;
        if probing {
            if now < self.devices[d].probe_at {
                return Ok(());
            }
        } else {
            let s = &mut self.devices[d].schedules[g];
            let (late0, skipped0) = (s.late, s.skipped);
            match s.due(now) {
                Due::Wait(_) => return Ok(()),
                Due::Poll { .. } => {}
            }
            ds.add(&ds.late, s.late - late0);
            ds.add(&ds.skipped, s.skipped - skipped0);
        }
        let retries = if probing { 0 } else { self.polling.retries };
        let reads = self.devices[d].device.groups[g].reads.clone();
        let started = Instant::now();
        let reading = self.read_group(link, d, &reads, retries).await?;
        let latency = started.elapsed();
        let state = &mut self.devices[d];
        if !reading.answered {
            ds.add(&ds.polls_failed, 1);
            ds.set_error(reading.errors.first().cloned());
            state.silent_polls += 1;
            // Tried again in its own slot of its grid, so that it never takes
            // the others' times.
            let probe_at = state.schedules[0]
                .on_grid_from(now + self.polling.unavailable_every.saturating_sub(GRACE));
            if probing {
                state.probe_at = probe_at;
            } else if state.silent_polls >= self.polling.unavailable_after {
                state.available = false;
                ds.available.store(false, Ordering::Relaxed);
                state.probe_at = probe_at;
                warn!(
                    source = %self.source,
                    device = %state.device.name,
                    unit = state.device.unit,
                    "no answer to {} polls in a row: unavailable, tried every {:?} until it answers",
                    state.silent_polls,
                    self.polling.unavailable_every
                );
                self.tell_availability(d).await;
            }
            return Ok(());
        }
        if probing {
            info!(source = %self.source, device = %state.device.name, "answers again: available");
            state.available = true;
            ds.available.store(true, Ordering::Relaxed);
            // Back on its grid from here: times missed while it was away are
            // neither late nor skipped.
            let now = Instant::now();
            for s in &mut state.schedules {
                s.resume_from(now);
            }
        }
        state.silent_polls = 0;
        self.tell_availability(d).await;
        let ds = &stats.devices[d];
        ds.last_latency_us
            .store(latency.as_micros() as u64, Ordering::Relaxed);
        if reading.values.is_empty() {
            ds.add(&ds.polls_failed, 1);
            ds.set_error(reading.errors.first().cloned());
            return Ok(());
        }
        ds.add(&ds.polls_ok, 1);
        ds.set_error(reading.errors.first().cloned());
        let frame = self.frame(d, reading, latency);
        if self.tx.send(frame).await.is_err() {
            return Err(Broken("the pipeline has stopped".into()));
        }
        Ok(())
    }

    /// Read every request of a group; a failed read leaves its fields out.
    async fn read_group(
        &mut self,
        link: &mut Link,
        d: usize,
        reads: &[Read],
        retries: u32,
    ) -> Result<Reading, Broken> {
        let mut reading = Reading {
            values: Map::new(),
            registers: Map::new(),
            errors: Vec::new(),
            answered: false,
        };
        let unit = self.devices[d].device.unit;
        for read in reads {
            let op = Op::Read {
                kind: read.kind,
                address: read.address,
                count: read.count,
            };
            match self.transaction(link, d, retries, op).await? {
                Ok(Done::Written) => {}
                Ok(Done::Read(answer)) => {
                    reading.answered = true;
                    self.decode(d, read, answer, &mut reading);
                }
                Err(failure) => {
                    let device = &self.devices[d].device;
                    let names: Vec<&str> = read
                        .fields
                        .iter()
                        .map(|&i| device.fields[i].name.as_str())
                        .collect();
                    if let Failure::Exception(code) = failure {
                        reading.answered = true;
                        self.stats.devices[d].exception(code, &names);
                    }
                    let why = format!(
                        "device {} (unit {unit}): {} {}..{} ({}): {failure}",
                        device.name,
                        read.kind.as_str(),
                        read.address,
                        u32::from(read.address) + u32::from(read.count),
                        names.join(", ")
                    );
                    if self.devices[d].available {
                        warn!(source = %self.source, "{why}");
                    } else {
                        debug!(source = %self.source, "{why}");
                    }
                    reading.errors.push(why);
                }
            }
        }
        Ok(reading)
    }

    fn decode(&self, d: usize, read: &Read, answer: Answer, reading: &mut Reading) {
        let device = &self.devices[d].device;
        for &i in &read.fields {
            let f = &device.fields[i];
            let at = usize::from(f.address - read.address);
            match &answer {
                Answer::Bits(bits) => {
                    let bit = bits.get(at).copied().unwrap_or(false);
                    reading.values.insert(f.name.clone(), Value::Bool(bit));
                    reading.registers.insert(f.name.clone(), Value::Bool(bit));
                }
                Answer::Words(words) => match f.decode(read.address, words) {
                    Ok(v) => {
                        reading.values.insert(f.name.clone(), v);
                        let raw = &words[at..at + usize::from(f.count())];
                        reading.registers.insert(
                            f.name.clone(),
                            Value::Array(raw.iter().map(|w| Value::from(*w)).collect()),
                        );
                    }
                    Err(e) => reading.errors.push(format!("field {}: {e}", f.name)),
                },
            }
        }
    }

    /// One request with retries: `Ok(Err(_))` when the device did not give an
    /// answer in the end, `Err` when the bus broke.
    async fn transaction(
        &mut self,
        link: &mut Link,
        d: usize,
        retries: u32,
        op: Op<'_>,
    ) -> Result<Result<Done, Failure>, Broken> {
        let stats = self.stats.clone();
        let ds: &DeviceStats = &stats.devices[d];
        let mut attempt = 0;
        loop {
            self.quiet.wait().await;
            let t0 = Instant::now();
            let unit = self.devices[d].device.unit;
            let outcome = link.call(unit, op, self.polling.timeout).await;
            self.stats.transaction(t0.elapsed());
            self.quiet.hold(self.gap);
            let failure = match outcome {
                Ok(value) => return Ok(Ok(value)),
                Err(f) => f,
            };
            let again = attempt < retries;
            match &failure {
                Failure::Exception(5 | 6) if again => {
                    tokio::time::sleep(self.polling.busy_retry).await;
                }
                Failure::Exception(_) => return Ok(Err(failure)),
                Failure::Transport(why) => {
                    return Err(Broken(format!("{}: {why}", self.bus_name())))
                }
                Failure::NoAnswer | Failure::Crc | Failure::Garbled(_) => {
                    let counter = match failure {
                        Failure::NoAnswer => &ds.no_answer,
                        Failure::Crc => &ds.crc_errors,
                        _ => &ds.garbled,
                    };
                    ds.add(counter, 1);
                    if link.is_rtu() {
                        link.resync(self.gap).await;
                    } else if !matches!(failure, Failure::NoAnswer) {
                        // Answers out of step on TCP: start a new connection.
                        return Err(Broken(format!(
                            "{}: {failure}: reconnecting",
                            self.bus_name()
                        )));
                    }
                    if !again {
                        return Ok(Err(failure));
                    }
                }
            }
            attempt += 1;
            ds.add(&ds.retries, 1);
        }
    }

    fn frame(&self, d: usize, reading: Reading, latency: Duration) -> Frame {
        let device = &self.devices[d].device;
        let bytes = serde_json::to_vec(&Value::Object(reading.values.clone())).unwrap_or_default();
        let mut meta = Meta {
            port: Some(Arc::from(self.bus_name().as_str())),
            polled: Some(Arc::new(Polled {
                values: reading.values,
                registers: reading.registers,
            })),
            ..Meta::default()
        };
        meta.extra.insert("device".into(), device.name.clone());
        meta.extra.insert("unit".into(), device.unit.to_string());
        meta.extra.insert(
            "latency_ms".into(),
            format!("{:.3}", latency.as_secs_f64() * 1000.0),
        );
        if !reading.errors.is_empty() {
            meta.extra
                .insert("errors".into(), reading.errors.join("; "));
        }
        Frame {
            source: self.source.clone(),
            received_at: SystemTime::now(),
            bytes: bytes.into(),
            meta,
        }
    }

    fn bus_name(&self) -> String {
        match &self.bus {
            ModbusBus::Rtu(s) => s.path.clone(),
            ModbusBus::Tcp { host, .. } => host.clone(),
        }
    }
}

/// Why a write did not happen.
#[derive(Debug)]
enum WriteError {
    /// Refused before anything was sent: unknown device or field, read-only, a bad value.
    Refused(String),
    /// Sent, and the device did not confirm it.
    Failed(String),
    Broken(String),
}

impl Poller {
    /// A command's part: `{"device": ..., "field": ..., "value": ...}` written to
    /// the field, scaled and encoded with its type and order.
    async fn write(
        &mut self,
        link: &mut Link,
        bytes: &[u8],
        options: &Map<String, Value>,
    ) -> Result<(), WriteError> {
        if let Some(key) = options.keys().next() {
            return Err(WriteError::Refused(format!(
                "a Modbus source takes no transport option `{key}`"
            )));
        }
        let (d, field, value) = self.parse_write(bytes).map_err(WriteError::Refused)?;
        let device = &self.devices[d].device;
        let f = device.field(&field).cloned().ok_or_else(|| {
            let known: Vec<&str> = device.fields.iter().map(|f| f.name.as_str()).collect();
            WriteError::Refused(format!(
                "device {} has no field `{field}` (it has {})",
                device.name,
                known.join(", ")
            ))
        })?;
        if !f.writable() {
            return Err(WriteError::Refused(format!(
                "field `{}` of device {} is {} register: read-only",
                f.name,
                device.name,
                match f.kind {
                    Kind::Input => "an input",
                    _ => "a discrete input",
                }
            )));
        }
        let unit = device.unit;
        let name = device.name.clone();
        let retries = self.polling.retries;
        let outcome = if f.kind == Kind::Coil {
            let on = match &value {
                Value::Bool(b) => *b,
                Value::Number(n) if n.as_f64() == Some(0.0) => false,
                Value::Number(n) if n.as_f64() == Some(1.0) => true,
                other => {
                    return Err(WriteError::Refused(format!(
                        "coil `{}` takes true or false, got {other}",
                        f.name
                    )))
                }
            };
            let op = Op::WriteCoils {
                address: f.address,
                coils: &[on],
            };
            self.transaction(link, d, retries, op)
                .await
                .map_err(|Broken(why)| WriteError::Broken(why))?
                .map(|_| ())
        } else {
            let number = match &value {
                Value::Number(n) => n.as_f64().unwrap_or(f64::NAN),
                Value::Bool(b) => f64::from(u8::from(*b)),
                other => {
                    return Err(WriteError::Refused(format!(
                        "field `{}` takes a number, got {other}",
                        f.name
                    )))
                }
            };
            let mut words =
                f.ty.encode(number, f.order, f.scale, f.offset)
                    .map_err(|e| WriteError::Refused(format!("field `{}`: {e}", f.name)))?;
            if let crate::modbus::FieldType::Bits { from, width } = f.ty {
                // Only the field's bits change: read the register, merge, write it back.
                let op = Op::Read {
                    kind: Kind::Holding,
                    address: f.address,
                    count: 1,
                };
                let current = self
                    .transaction(link, d, retries, op)
                    .await
                    .map_err(|Broken(why)| WriteError::Broken(why))?
                    .map_err(|e| WriteError::Failed(format!("reading {}: {e}", f.name)))?;
                let Done::Read(Answer::Words(current)) = current else {
                    return Err(WriteError::Failed("a register read gave bits".into()));
                };
                let mask = (((1u32 << width) - 1) << from) as u16;
                words = vec![(current[0] & !mask) | (words[0] & mask)];
            }
            let op = Op::WriteRegisters {
                address: f.address,
                words: &words,
            };
            self.transaction(link, d, retries, op)
                .await
                .map_err(|Broken(why)| WriteError::Broken(why))?
                .map(|_| ())
        };
        let ds = &self.stats.devices[d];
        match outcome {
            Ok(()) => {
                ds.add(&ds.writes_ok, 1);
                info!(source = %self.source, device = %name, field = %f.name, %value, "written");
                Ok(())
            }
            Err(failure) => {
                ds.add(&ds.writes_failed, 1);
                if let Failure::Exception(code) = failure {
                    ds.exception(code, &[f.name.as_str()]);
                }
                Err(WriteError::Failed(format!(
                    "device {name} (unit {unit}) did not confirm writing {} = {value}: {failure}",
                    f.name
                )))
            }
        }
    }

    /// Which device, field and value a command names.
    fn parse_write(&self, bytes: &[u8]) -> Result<(usize, String, Value), String> {
        let body: Value = serde_json::from_slice(bytes).map_err(|e| {
            format!("a Modbus write is JSON like {{\"device\": \"meter\", \"field\": \"setpoint\", \"value\": 21.5}}: {e}")
        })?;
        let Value::Object(mut body) = body else {
            return Err("a Modbus write is a JSON object with `field` and `value`".into());
        };
        let d = match body.remove("device") {
            Some(Value::String(name)) => self
                .devices
                .iter()
                .position(|s| s.device.name == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = self
                        .devices
                        .iter()
                        .map(|s| s.device.name.as_str())
                        .collect();
                    format!(
                        "no device `{name}` on this bus (it has {})",
                        known.join(", ")
                    )
                })?,
            Some(other) => return Err(format!("`device` must be a name, got {other}")),
            None if self.devices.len() == 1 => 0,
            None => {
                return Err(format!(
                    "`device` is needed: this bus has {} devices",
                    self.devices.len()
                ))
            }
        };
        let field = match body.remove("field") {
            Some(Value::String(f)) => f,
            Some(other) => return Err(format!("`field` must be a name, got {other}")),
            None => return Err("`field` is missing".into()),
        };
        let value = body.remove("value").ok_or("`value` is missing")?;
        if let Some(key) = body.keys().next() {
            return Err(format!(
                "unknown key `{key}` (a write has device, field and value)"
            ));
        }
        Ok((d, field, value))
    }
}

#[cfg(test)]
mod tests {
    //! The poller's schedule on a paused clock: an in-memory RTU line with a
    //! device that answers units 1 and 2 at once and never answers unit 3.

    use super::*;
    use crate::config::{DataBits, FlowControl, Parity, ReopenConfig, SerialConfig, StopBits};
    use crate::modbus::{Field, FieldType, Order};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn device(name: &str, unit: u8) -> Device {
        let field = Field {
            name: "temperature".into(),
            kind: Kind::Input,
            address: 0,
            ty: FieldType::I16,
            order: Order::Abcd,
            scale: 0.1,
            offset: 0.0,
            unit: None,
            device_class: None,
            state_class: None,
            every: Duration::from_secs(1),
        };
        Device::build(name.into(), unit, None, vec![field], 10, false).unwrap()
    }

    fn crc(bytes: &[u8]) -> [u8; 2] {
        transport::MODBUS_CRC.checksum(bytes).to_le_bytes()
    }

    /// Reads 8-byte read requests; answers units 1 and 2 with 215, notes each
    /// request's unit and (virtual) time.
    async fn device_side(mut line: tokio::io::DuplexStream, seen: mpsc::Sender<(u8, Instant)>) {
        let mut req = [0u8; 8];
        while line.read_exact(&mut req).await.is_ok() {
            if seen.send((req[0], Instant::now())).await.is_err() {
                return;
            }
            if req[0] == 3 {
                continue;
            }
            let mut answer = vec![req[0], req[1], 2, 0x00, 0xD7];
            answer.extend_from_slice(&crc(&answer));
            if line.write_all(&answer).await.is_err() {
                return;
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn live_devices_keep_their_grid_while_a_dead_one_is_probed_less_and_less() {
        let config = ModbusSource {
            bus: ModbusBus::Rtu(SerialConfig {
                path: "/dev/null".into(),
                baud: 115_200,
                data_bits: DataBits::Eight,
                parity: Parity::None,
                stop_bits: StopBits::One,
                flow_control: FlowControl::None,
                reopen: ReopenConfig::default(),
                poll: Vec::new(),
            }),
            polling: Polling {
                timeout: Duration::from_millis(100),
                retries: 1,
                busy_retry: Duration::from_millis(100),
                turnaround: Duration::ZERO,
                unavailable_after: 2,
                unavailable_every: Duration::from_secs(3),
                reopen: ReopenConfig::default(),
            },
            devices: vec![device("a", 1), device("b", 2), device("dead", 3)],
        };
        let (frames_tx, mut frames) = mpsc::channel(100);
        let mut poller = Poller::new("bus", &config, frames_tx);
        let stats = poller.stats();
        let t0 = Instant::now();
        let (ours, theirs) = tokio::io::duplex(1024);
        // Room for every request of the 20 s below (about 60).
        let (seen_tx, mut seen) = mpsc::channel(256);
        tokio::spawn(device_side(theirs, seen_tx));
        let (_stop, mut shutdown) = watch::channel(false);
        let mut side = DeviceSide::none();
        tokio::spawn(async move {
            let link = transport::rtu_over(ours);
            poller.serve(link, &mut side, &mut shutdown).await;
        });
        // Twenty seconds of virtual time.
        tokio::time::sleep(Duration::from_secs(20) + Duration::from_millis(1)).await;
        let mut requests: Vec<(u8, Duration)> = Vec::new();
        while let Ok((unit, at)) = seen.try_recv() {
            requests.push((unit, at - t0));
        }
        // a and b: exactly on their grids (b a third of a second later), every second.
        for (unit, phase_us, count) in [(1u8, 0u64, 21), (2, 333_333, 20)] {
            let times: Vec<Duration> = requests
                .iter()
                .filter(|(u, _)| *u == unit)
                .map(|(_, t)| *t)
                .collect();
            assert_eq!(times.len(), count, "unit {unit}: {times:?}");
            for (k, t) in times.iter().enumerate() {
                let due = Duration::from_micros(phase_us + 1_000_000 * k as u64);
                assert!(
                    *t >= due && *t - due < Duration::from_millis(1),
                    "unit {unit} poll {k} at {t:?}, due at {due:?}"
                );
            }
        }
        // dead: polled at 0.666 s and 1.666 s (each asked twice: a retry), then
        // marked unavailable and tried once every 3 s.
        let dead: Vec<u128> = requests
            .iter()
            .filter(|(u, _)| *u == 3)
            .map(|(_, t)| t.as_millis())
            .collect();
        assert_eq!(dead.len(), 4 + 6, "{dead:?}");
        let probes: Vec<u128> = dead[4..].windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            probes.iter().all(|d| *d == 3000),
            "probes 3 s apart, in the dead device's own slot: {dead:?}"
        );
        let snap = stats.snapshot();
        assert_eq!(
            (snap.devices[0].late, snap.devices[0].skipped),
            (0, 0),
            "{snap:?}"
        );
        assert!(!snap.devices[2].available);
        assert_eq!(snap.devices[2].no_answer, 10);
        let mut values = 0;
        while let Ok(frame) = frames.try_recv() {
            assert_eq!(&frame.bytes[..], br#"{"temperature":21.5}"#);
            values += 1;
        }
        assert_eq!(values, 41);
    }
}
