//! The registry's ABP devices on a Semtech source: an uplink of a known DevAddr
//! is held for the dedup window (the copies other gateways heard gathered with
//! it), then checked against the device's session (MIC, frame counter) and
//! decrypted. An accepted uplink goes on as a frame of its application payload,
//! with meta `device`, `dev_eui`, `dev_addr`, `fport`, `fcnt`, `gateways` and
//! the best gateway's `rssi` / `snr`; its frame counter is kept in the store
//! first, so that a restart does not open the window to replays. A refused one
//! is counted by reason and dropped. Packets of other devices, joins and
//! anything that is not a data uplink pass through as before.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::config::DeviceConfig;
use crate::frame::Frame;
use crate::lorawan::{
    parse_data, verify_uplink, AbpSession, Dedup, DevAddr, Gathered, Reception, Refused,
    DEFAULT_WINDOW,
};
use crate::store::Store;

/// The store's name for a device's uplink counter.
fn counter_name(addr: DevAddr) -> String {
    format!("lorawan.fcnt.{addr}")
}
const COUNTER_PREFIX: &str = "lorawan.fcnt.";

/// What the ABP layer counted, for the status page.
#[derive(Debug, Default)]
pub struct AbpStats {
    /// Uplinks accepted and decrypted.
    pub accepted: AtomicU64,
    /// Copies of an uplink beyond the first (other gateways, repeats in the window).
    pub duplicates: AtomicU64,
    /// Data uplinks of a DevAddr the registry does not have (passed on as they are).
    pub unknown_dev_addr: AtomicU64,
    /// Refused, by reason (`bad_mic`, `replay`, `too_far_ahead`, ...).
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

/// [`AbpStats`] as the status API shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbpSnapshot {
    pub accepted: u64,
    pub duplicates: u64,
    pub unknown_dev_addr: u64,
    pub refused: BTreeMap<String, u64>,
}

impl AbpStats {
    fn refused(&self, why: &Refused) {
        let reason = match why {
            Refused::BadMic => "bad_mic",
            Refused::Replay { .. } => "replay",
            Refused::TooFarAhead { .. } => "too_far_ahead",
            Refused::Frame(_) => "malformed",
            Refused::Major(_) => "unknown_major",
            Refused::PortZeroWithFOpts => "fopts_on_port_0",
            Refused::Downlink | Refused::OtherDevice(_) => "other",
        };
        *self
            .refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    pub fn snapshot(&self) -> AbpSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        AbpSnapshot {
            accepted: get(&self.accepted),
            duplicates: get(&self.duplicates),
            unknown_dev_addr: get(&self.unknown_dev_addr),
            refused: self
                .refused
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
        }
    }
}

struct Device {
    name: String,
    dev_eui: Option<String>,
    session: AbpSession,
}

/// The ABP devices of one Semtech source, and the uplinks in their dedup window.
pub struct Abp {
    source: Arc<str>,
    devices: HashMap<DevAddr, Device>,
    dedup: Dedup,
    /// The first copy of each uplink in the window: its radio meta.
    firsts: HashMap<Bytes, Frame>,
    store: Option<Store>,
    stats: Arc<AbpStats>,
    refusals_log: log_limit::LogLimit,
}

impl std::fmt::Debug for Abp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Abp")
            .field("source", &self.source)
            .field("devices", &self.devices.len())
            .field("waiting", &self.firsts.len())
            .finish_non_exhaustive()
    }
}

impl Abp {
    /// The registry's ABP devices, with the counters the store kept for them.
    /// `None` when the registry has none.
    pub async fn new(source: &str, registry: &[DeviceConfig], store: Option<Store>) -> Option<Abp> {
        let mut devices: HashMap<DevAddr, Device> = registry
            .iter()
            .filter_map(|d| {
                let keys = d.abp.as_ref()?;
                Some((
                    keys.dev_addr,
                    Device {
                        name: d.name.clone(),
                        dev_eui: d.dev_eui.clone(),
                        session: AbpSession::new(
                            keys.dev_addr,
                            keys.nwk_s_key.clone(),
                            keys.app_s_key.clone(),
                        ),
                    },
                ))
            })
            .collect();
        if devices.is_empty() {
            return None;
        }
        if let Some(store) = &store {
            match store.counters(COUNTER_PREFIX).await {
                Ok(kept) => {
                    for (name, fcnt) in kept {
                        let dev = devices
                            .values_mut()
                            .find(|d| counter_name(d.session.dev_addr) == name);
                        if let (Some(dev), Ok(fcnt)) = (dev, u32::try_from(fcnt)) {
                            dev.session.fcnt_up = Some(fcnt);
                        }
                    }
                }
                Err(e) => warn!(source, "cannot read the LoRaWAN frame counters kept: {e}"),
            }
        }
        Some(Abp {
            source: Arc::from(source),
            devices,
            dedup: Dedup::new(DEFAULT_WINDOW),
            firsts: HashMap::new(),
            store,
            stats: Arc::new(AbpStats::default()),
            refusals_log: log_limit::LogLimit::default(),
        })
    }

    pub fn stats(&self) -> Arc<AbpStats> {
        self.stats.clone()
    }

    /// A received packet: handed back when it is not a known device's data
    /// uplink; else held for the dedup window.
    pub fn offer(&mut self, frame: Frame, now: Instant) -> Option<Frame> {
        let addr = match parse_data(&frame.bytes) {
            Ok(d) if d.is_uplink() => d.dev_addr,
            _ => return Some(frame),
        };
        if !self.devices.contains_key(&addr) {
            self.stats.unknown_dev_addr.fetch_add(1, Ordering::Relaxed);
            return Some(frame);
        }
        let reception = Reception {
            gateway: frame
                .meta
                .extra
                .get("gateway_eui")
                .cloned()
                .unwrap_or_default(),
            rssi: frame.meta.rssi,
            snr: frame.meta.snr,
        };
        match self.dedup.offer(now, &frame.bytes, reception) {
            crate::lorawan::Offered::First => {
                self.firsts.insert(frame.bytes.clone(), frame);
            }
            crate::lorawan::Offered::Copy => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            }
        }
        None
    }

    /// When the next dedup window closes.
    pub fn next_due(&self) -> Option<Instant> {
        self.dedup.next_due()
    }

    /// The uplinks whose window closed by `now`, checked: the accepted ones as
    /// frames of their payload, their counters kept in the store first.
    pub async fn due(&mut self, now: Instant) -> Vec<Frame> {
        let mut out = Vec::new();
        let mut counters = Vec::new();
        for gathered in self.dedup.due(now) {
            let Some(first) = self.firsts.remove(gathered.phy.as_slice()) else {
                continue;
            };
            if let Some((frame, counter)) = self.check(first, &gathered) {
                out.push(frame);
                counters.push(counter);
            }
        }
        if let (Some(store), false) = (&self.store, counters.is_empty()) {
            store.set_counters(counters).await;
        }
        out
    }

    fn check(&mut self, first: Frame, gathered: &Gathered) -> Option<(Frame, (String, u64))> {
        let addr = parse_data(&gathered.phy).ok()?.dev_addr;
        let device = self.devices.get_mut(&addr)?;
        let up = match verify_uplink(&device.session, &gathered.phy) {
            Ok(up) => up,
            Err(why) => {
                self.stats.refused(&why);
                if let Some(skipped) = self.refusals_log.check() {
                    warn!(
                        source = %self.source,
                        device = %device.name,
                        "uplink refused: {why}{}",
                        log_limit::suppressed(skipped)
                    );
                } else {
                    debug!(source = %self.source, device = %device.name, "uplink refused: {why}");
                }
                return None;
            }
        };
        device.session.accept(&up);
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let mut meta = first.meta;
        if let Some(best) = gathered.best() {
            meta.rssi = best.rssi;
            meta.snr = best.snr;
            meta.extra
                .insert("gateway_eui".into(), best.gateway.clone());
        }
        let gateways: Vec<&str> = gathered
            .receptions
            .iter()
            .map(|r| r.gateway.as_str())
            .collect();
        meta.extra
            .insert("gateways".into(), gathered.receptions.len().to_string());
        meta.extra.insert("gateway_euis".into(), gateways.join(","));
        meta.extra.insert("device".into(), device.name.clone());
        if let Some(eui) = &device.dev_eui {
            meta.extra.insert("dev_eui".into(), eui.clone());
        }
        meta.extra.insert(
            "dev_addr".into(),
            up.dev_addr.to_string().to_ascii_uppercase(),
        );
        meta.extra.insert("fcnt".into(), up.fcnt.to_string());
        if let Some(port) = up.fport {
            meta.extra.insert("fport".into(), port.to_string());
        }
        meta.extra
            .insert("confirmed".into(), up.confirmed.to_string());
        let frame = Frame {
            source: first.source,
            received_at: first.received_at,
            bytes: Bytes::from(up.payload),
            meta,
        };
        Some((frame, (counter_name(addr), u64::from(up.fcnt))))
    }
}
