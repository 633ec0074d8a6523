//! The gateways a source has heard from: where each one's PULL_DATA came from
//! and when (a downlink goes back to that address, through the gateway's NAT),
//! which protocol version it speaks, which one carried the latest uplink, and
//! each one's duty-cycle budget. Plain state, no I/O; the time is passed in.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::airtime::{DutyCycle, Region};
use crate::source::{RadioDutyCycle, TxOutcome};

/// Gateways remembered at most: whoever reaches the port can make up EUIs.
/// When full, the one heard from longest ago is forgotten.
pub const MAX_GATEWAYS: usize = 256;

#[derive(Debug)]
struct Gateway {
    /// Where its latest PULL_DATA came from; `None` before its first.
    addr: Option<SocketAddr>,
    version: u8,
    last_pull: Option<Instant>,
    last_heard: Instant,
    duty: DutyCycle,
}

/// Where and how to send one gateway a downlink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub eui: String,
    pub addr: SocketAddr,
    pub version: u8,
}

/// The gateways of one source.
#[derive(Debug)]
pub struct Gateways {
    region: Region,
    /// Without a PULL_DATA for this long a gateway is gone.
    gone_after: Duration,
    known: HashMap<String, Gateway>,
    last_uplink: Option<String>,
}

impl Gateways {
    /// `keepalive`: the forwarders' PULL_DATA interval; three missed ones mean gone.
    pub fn new(region: Region, keepalive: Duration) -> Gateways {
        Gateways {
            region,
            gone_after: keepalive * 3,
            known: HashMap::new(),
            last_uplink: None,
        }
    }

    /// A PULL_DATA came from `addr`.
    pub fn pulled(&mut self, eui: &str, addr: SocketAddr, version: u8, now: Instant) {
        let g = self.entry(eui, now);
        g.addr = Some(addr);
        g.version = version;
        g.last_pull = Some(now);
    }

    /// A PUSH_DATA with at least one good packet came from `eui`.
    pub fn uplink(&mut self, eui: &str, now: Instant) {
        self.entry(eui, now);
        self.last_uplink = Some(eui.to_string());
    }

    fn entry(&mut self, eui: &str, now: Instant) -> &mut Gateway {
        if !self.known.contains_key(eui) && self.known.len() >= MAX_GATEWAYS {
            let oldest = self
                .known
                .iter()
                .min_by_key(|(_, g)| g.last_heard)
                .map(|(e, _)| e.clone());
            if let Some(oldest) = oldest {
                self.known.remove(&oldest);
            }
        }
        let region = self.region;
        let g = self
            .known
            .entry(eui.to_string())
            .or_insert_with(|| Gateway {
                addr: None,
                version: 2,
                last_pull: None,
                last_heard: now,
                duty: DutyCycle::new(region),
            });
        g.last_heard = now;
        g
    }

    /// The gateway a downlink goes to: the one the script named, else the
    /// configured one, else the one that carried the latest uplink, else the only
    /// one that has sent PULL_DATA. `Err` is the command's outcome: `NotReady`
    /// when the gateway has not sent PULL_DATA yet (the command waits for it),
    /// `Failed` when it is gone or the choice is not clear.
    pub fn choose(
        &self,
        named: Option<&str>,
        configured: Option<&str>,
        now: Instant,
    ) -> Result<Target, TxOutcome> {
        let eui = match named.or(configured).or(self.last_uplink.as_deref()) {
            Some(eui) => eui.to_string(),
            None => {
                let mut pulling: Vec<&String> = self
                    .known
                    .iter()
                    .filter(|(_, g)| g.addr.is_some())
                    .map(|(e, _)| e)
                    .collect();
                pulling.sort();
                match pulling.as_slice() {
                    [] => return Err(TxOutcome::NotReady("no gateway has sent PULL_DATA".into())),
                    [only] => only.to_string(),
                    several => {
                        let list: Vec<&str> = several.iter().take(8).map(|e| e.as_str()).collect();
                        return Err(TxOutcome::Failed(format!(
                            "{} gateways have sent PULL_DATA ({}) and none has sent an uplink \
                             yet: set `gateway_eui` in the source or the script",
                            several.len(),
                            list.join(", ")
                        )));
                    }
                }
            }
        };
        let Some(g) = self.known.get(&eui) else {
            return Err(TxOutcome::NotReady(format!(
                "gateway {eui} has not sent PULL_DATA"
            )));
        };
        let (Some(addr), Some(last_pull)) = (g.addr, g.last_pull) else {
            return Err(TxOutcome::NotReady(format!(
                "gateway {eui} has not sent PULL_DATA"
            )));
        };
        let silent = now.saturating_duration_since(last_pull);
        if silent > self.gone_after {
            return Err(TxOutcome::Failed(format!(
                "gateway {eui} is gone: no PULL_DATA for {} s (three keepalive intervals are {} s)",
                silent.as_secs(),
                self.gone_after.as_secs()
            )));
        }
        Ok(Target {
            eui,
            addr,
            version: g.version,
        })
    }

    /// Charge `airtime` on `frequency_hz` to the gateway's budget; `Err` is the
    /// `Rejected` text, starting `duty_cycle:`.
    pub fn charge(
        &mut self,
        eui: &str,
        frequency_hz: u64,
        airtime: Duration,
        now: Instant,
    ) -> Result<(), String> {
        let g = self.entry(eui, now);
        g.duty
            .try_take(frequency_hz, airtime, now)
            .map_err(|refusal| {
                let text = refusal.to_string();
                let rest = text.strip_prefix("duty cycle: ").unwrap_or(&text);
                format!(
                    "{}: gateway {eui}: {rest}",
                    crate::airtime::DutyCycleRefusal::REASON
                )
            })
    }

    /// Each gateway's budget at `now`, ordered by EUI; empty without a region.
    pub fn budgets(&self, now: Instant) -> Vec<RadioDutyCycle> {
        if self.region == Region::None {
            return Vec::new();
        }
        let mut all: Vec<RadioDutyCycle> = self
            .known
            .iter()
            .map(|(eui, g)| RadioDutyCycle {
                radio: eui.clone(),
                sub_bands: g.duty.budget(now),
            })
            .collect();
        all.sort_by(|a, b| a.radio.cmp(&b.radio));
        all
    }
}
