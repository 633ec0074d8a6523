//! Simulated LoRa modems on a pseudo-terminal: an RN2483 and a RAK3172 that answer
//! commands as their manuals say (see docs/modems.md), emit received packets,
//! record what they transmit, and misbehave on request (stop answering, send
//! garbage, reboot mid-stream, answer a transmission with an error).

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serialport::{SerialPort, TTYPort};

/// What the simulated radio sent over the air, oldest first.
pub(crate) type Air = Arc<Mutex<Vec<Vec<u8>>>>;

/// How the simulated modem answers its next transmission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxAnswer {
    /// Sent: `ok` then `radio_tx_ok`; `OK` then `+EVT:TXP2P DONE`.
    Done,
    /// Accepted, then it fails on air: `ok` then `radio_err` (RAK3172: `AT_ERROR`).
    Fails,
    /// Refused at once: `busy`; `AT_BUSY_ERROR`.
    Busy,
    /// No answer at all (the command interpreter hangs).
    Silent,
    /// The module restarts instead: its boot banner.
    Reboot,
}

/// A packet the simulated radio receives.
#[derive(Debug, Clone)]
pub(crate) struct Packet {
    pub payload: Vec<u8>,
    pub rssi: i32,
    pub snr: i32,
}

/// What the test asks the simulated modem to do.
enum Control {
    Packet(Packet),
    /// Write these bytes as they are.
    Raw(Vec<u8>),
    /// Swallow the next `n` commands without an answer (a hung modem).
    Mute(usize),
    /// Restart as after a power glitch: print the boot banner.
    Reboot,
    /// End of a receive window (RAK3172: `+EVT:RXP2P RECEIVE TIMEOUT`).
    RxTimeout,
    /// Answer the next transmission this way (later ones are sent again).
    NextTx(TxAnswer),
    Stop,
}

/// The behaviour of one kind of modem.
pub(crate) trait Model: Send + 'static {
    /// Answer one command line; the lines to write back.
    fn command(&mut self, line: &str) -> Vec<String>;
    /// The radio got a packet: the lines to write, or `None` while not receiving.
    fn packet(&mut self, p: &Packet) -> Option<Vec<String>>;
    /// The boot banner (the modem is not receiving afterwards).
    fn reboot(&mut self) -> Vec<String>;
    /// A receive window ended without a packet.
    fn rx_timeout(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// Answer the next transmission with `answer`.
    fn next_tx(&mut self, answer: TxAnswer);
}

/// A running simulated modem; its device is reachable through the symlink.
pub(crate) struct Sim {
    control: mpsc::Sender<Control>,
    /// Every command line it received, in order.
    pub commands: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Sim {
    /// A pseudo-terminal whose device is `link`, driven by `model`.
    pub(crate) fn start(link: &Path, model: impl Model) -> Sim {
        let master = super::plug(link);
        let (control, rx) = mpsc::channel();
        let commands = Arc::new(Mutex::new(Vec::new()));
        let log = commands.clone();
        let thread = std::thread::spawn(move || serve(master, model, rx, log));
        Sim {
            control,
            commands,
            thread: Some(thread),
        }
    }

    pub(crate) fn packet(&self, payload: &[u8], rssi: i32, snr: i32) {
        let p = Packet {
            payload: payload.to_vec(),
            rssi,
            snr,
        };
        let _ = self.control.send(Control::Packet(p));
    }

    pub(crate) fn raw(&self, bytes: &[u8]) {
        let _ = self.control.send(Control::Raw(bytes.to_vec()));
    }

    pub(crate) fn mute(&self, commands: usize) {
        let _ = self.control.send(Control::Mute(commands));
    }

    pub(crate) fn reboot(&self) {
        let _ = self.control.send(Control::Reboot);
    }

    pub(crate) fn rx_timeout(&self) {
        let _ = self.control.send(Control::RxTimeout);
    }

    /// Answer the next transmission with `answer` instead of sending it.
    pub(crate) fn next_tx(&self, answer: TxAnswer) {
        let _ = self.control.send(Control::NextTx(answer));
    }

    /// How many times `command` was received so far.
    pub(crate) fn count(&self, command: &str) -> usize {
        let log = self.commands.lock().expect("command log");
        log.iter().filter(|c| c.as_str() == command).count()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.control.send(Control::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    mut port: TTYPort,
    mut model: impl Model,
    control: mpsc::Receiver<Control>,
    log: Arc<Mutex<Vec<String>>>,
) {
    port.set_timeout(Duration::from_millis(10))
        .expect("pty timeout");
    let mut line = Vec::new();
    let mut buf = [0u8; 256];
    let mut muted = 0usize;
    // Packets the radio got while not receiving wait, so that none is lost in a test.
    let mut waiting: VecDeque<Packet> = VecDeque::new();
    // Bounded: a test ends long before.
    let end = Instant::now() + Duration::from_secs(300);
    while Instant::now() < end {
        let mut out: Vec<String> = Vec::new();
        match control.try_recv() {
            Ok(Control::Packet(p)) => waiting.push_back(p),
            Ok(Control::Raw(bytes)) => {
                let _ = port.write_all(&bytes);
            }
            Ok(Control::Mute(n)) => muted = n,
            Ok(Control::Reboot) => out.extend(model.reboot()),
            Ok(Control::RxTimeout) => out.extend(model.rx_timeout()),
            Ok(Control::NextTx(answer)) => model.next_tx(answer),
            Ok(Control::Stop) | Err(mpsc::TryRecvError::Disconnected) => return,
            Err(mpsc::TryRecvError::Empty) => {}
        }
        match port.read(&mut buf) {
            Ok(n) => {
                for &b in &buf[..n] {
                    if b == b'\r' || b == b'\n' {
                        if line.is_empty() {
                            continue;
                        }
                        let command = String::from_utf8_lossy(&line).into_owned();
                        line.clear();
                        log.lock().expect("command log").push(command.clone());
                        if muted > 0 {
                            muted -= 1;
                        } else {
                            out.extend(model.command(&command));
                        }
                    } else {
                        line.push(b);
                    }
                }
            }
            // Nobody has the device open (EIO), or nothing to read yet.
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
        // A hung modem's radio still hears packets; only its command interpreter is stuck.
        while let Some(p) = waiting.front() {
            match model.packet(p) {
                Some(lines) => {
                    out.extend(lines);
                    waiting.pop_front();
                }
                None => break,
            }
        }
        for l in out {
            let _ = port.write_all(format!("{l}\r\n").as_bytes());
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

/// An RN2483 (firmware 1.0.5) in raw radio mode.
pub(crate) struct Rn2483Model {
    receiving: bool,
    last: Option<Packet>,
    /// Firmware before 1.0.5 has no `radio get rssi`.
    pub old_firmware: bool,
    air: Air,
    next_tx: TxAnswer,
}

impl Rn2483Model {
    pub(crate) fn new() -> Rn2483Model {
        Rn2483Model {
            receiving: false,
            last: None,
            old_firmware: false,
            air: Air::default(),
            next_tx: TxAnswer::Done,
        }
    }

    /// What it transmits, as it transmits it.
    pub(crate) fn air(&self) -> Air {
        self.air.clone()
    }

    /// `radio tx <hex>`: the radio is busy while receiving.
    fn transmit(&mut self, data: &str) -> Vec<String> {
        let Some(bytes) = unhex(data).filter(|b| b.len() <= 255) else {
            return vec!["invalid_param".into()];
        };
        if self.receiving {
            return vec!["busy".into()];
        }
        let answer = std::mem::replace(&mut self.next_tx, TxAnswer::Done);
        let lines: &[&str] = match answer {
            TxAnswer::Done => &["ok", "radio_tx_ok"],
            TxAnswer::Fails => &["ok", "radio_err"],
            TxAnswer::Busy => return vec!["busy".into()],
            TxAnswer::Silent => return Vec::new(),
            TxAnswer::Reboot => return self.reboot(),
        };
        if answer == TxAnswer::Done {
            self.air.lock().expect("air log").push(bytes);
        }
        lines.iter().map(|l| l.to_string()).collect()
    }
}

pub(crate) const RN2483_BANNER: &str = "RN2483 1.0.5 Oct 31 2018 15:06:52";

impl Model for Rn2483Model {
    fn command(&mut self, line: &str) -> Vec<String> {
        let words: Vec<&str> = line.split_whitespace().collect();
        let answer = match words.as_slice() {
            ["sys", "reset"] | ["sys", "get", "ver"] => {
                self.receiving = false;
                RN2483_BANNER.to_string()
            }
            ["mac", "pause"] => "4294967245".into(),
            ["radio", "set", "sf", sf] => {
                let ok = matches!(*sf, "sf7" | "sf8" | "sf9" | "sf10" | "sf11" | "sf12");
                if ok { "ok" } else { "invalid_param" }.into()
            }
            ["radio", "set", _, _] => "ok".into(),
            ["radio", "rx", "0"] if self.receiving => "busy".into(),
            ["radio", "rx", "0"] => {
                self.receiving = true;
                "ok".into()
            }
            ["radio", "rxstop"] => {
                self.receiving = false;
                "ok".into()
            }
            ["radio", "tx", data] => return self.transmit(data),
            ["radio", "get", "snr"] => self.last.as_ref().map_or(0, |p| p.snr).to_string(),
            ["radio", "get", "rssi"] if self.old_firmware => "invalid_param".into(),
            ["radio", "get", "rssi"] => self.last.as_ref().map_or(-128, |p| p.rssi).to_string(),
            _ => "invalid_param".into(),
        };
        vec![answer]
    }

    fn packet(&mut self, p: &Packet) -> Option<Vec<String>> {
        if !self.receiving {
            return None;
        }
        // Continuous reception ends with the packet.
        self.receiving = false;
        self.last = Some(p.clone());
        Some(vec![format!("radio_rx  {}", hex(&p.payload))])
    }

    fn reboot(&mut self) -> Vec<String> {
        self.receiving = false;
        vec![RN2483_BANNER.into()]
    }

    fn next_tx(&mut self, answer: TxAnswer) {
        self.next_tx = answer;
    }
}

/// A RAK3172 with RUI3 firmware.
pub(crate) struct Rak3172Model {
    /// 0 = LoRa P2P, 1 = LoRaWAN.
    pub mode: u8,
    receiving: bool,
    /// Older firmware prints a packet as two lines.
    pub two_line_events: bool,
    air: Air,
    next_tx: TxAnswer,
}

impl Rak3172Model {
    pub(crate) fn new(mode: u8) -> Rak3172Model {
        Rak3172Model {
            mode,
            receiving: false,
            two_line_events: false,
            air: Air::default(),
            next_tx: TxAnswer::Done,
        }
    }

    /// What it transmits, as it transmits it.
    pub(crate) fn air(&self) -> Air {
        self.air.clone()
    }

    /// `AT+PSEND=<hex>`, as RUI3 checks it: even, at most 512 digits; refused
    /// while receiving.
    fn transmit(&mut self, data: &str) -> Vec<String> {
        let Some(bytes) = unhex(data).filter(|b| !b.is_empty() && b.len() <= 256) else {
            return vec!["AT_PARAM_ERROR".into()];
        };
        if self.receiving || self.mode != 0 {
            return vec!["AT_BUSY_ERROR".into()];
        }
        let answer = std::mem::replace(&mut self.next_tx, TxAnswer::Done);
        let lines: &[&str] = match answer {
            TxAnswer::Done => &["OK", "+EVT:TXP2P DONE"],
            TxAnswer::Fails => &["AT_ERROR"],
            TxAnswer::Busy => &["AT_BUSY_ERROR"],
            TxAnswer::Silent => return Vec::new(),
            TxAnswer::Reboot => return self.reboot(),
        };
        if answer == TxAnswer::Done {
            self.air.lock().expect("air log").push(bytes);
        }
        lines.iter().map(|l| l.to_string()).collect()
    }

    fn banner(&self) -> Vec<String> {
        vec![
            "RAKwireless RAK3172-E Example".into(),
            "------------------------------------------------------".into(),
            "Version: RUI_4.0.6_RAK3172-E".into(),
            match self.mode {
                0 => "Current Work Mode: LoRa P2P.".into(),
                _ => "Current Work Mode: LoRaWAN.".into(),
            },
        ]
    }
}

impl Model for Rak3172Model {
    fn command(&mut self, line: &str) -> Vec<String> {
        let ok = || vec!["OK".to_string()];
        match line {
            "AT" => ok(),
            "ATZ" => self.reboot(),
            "AT+NWM=?" => vec![format!("AT+NWM={}", self.mode), "OK".into()],
            "AT+NWM=0" if self.mode == 0 => ok(),
            "AT+NWM=0" => {
                self.mode = 0;
                self.reboot()
            }
            "AT+PRECV=0" => {
                self.receiving = false;
                ok()
            }
            "AT+PRECV=65534" if self.receiving => vec!["AT_BUSY_ERROR".into()],
            "AT+PRECV=65534" if self.mode == 0 => {
                self.receiving = true;
                ok()
            }
            _ if line.starts_with("AT+PSEND=") => self.transmit(&line["AT+PSEND=".len()..]),
            _ if line.starts_with("AT+P2P=") => {
                let fields: Vec<&str> = line["AT+P2P=".len()..].split(':').collect();
                let numbers = fields.iter().all(|f| f.parse::<u32>().is_ok());
                if fields.len() == 6 && numbers && !self.receiving && self.mode == 0 {
                    ok()
                } else {
                    vec!["AT_PARAM_ERROR".into()]
                }
            }
            _ => vec!["AT_ERROR".into()],
        }
    }

    fn packet(&mut self, p: &Packet) -> Option<Vec<String>> {
        if !self.receiving {
            return None;
        }
        Some(if self.two_line_events {
            vec![
                format!("+EVT:RXP2P, RSSI {}, SNR {}", p.rssi, p.snr),
                format!("+EVT:{}", hex(&p.payload)),
            ]
        } else {
            vec![format!(
                "+EVT:RXP2P:{}:{}:{}",
                p.rssi,
                p.snr,
                hex(&p.payload)
            )]
        })
    }

    fn reboot(&mut self) -> Vec<String> {
        self.receiving = false;
        self.banner()
    }

    fn rx_timeout(&mut self) -> Vec<String> {
        if !self.receiving {
            return Vec::new();
        }
        self.receiving = false;
        vec!["+EVT:RXP2P RECEIVE TIMEOUT".into()]
    }

    fn next_tx(&mut self, answer: TxAnswer) {
        self.next_tx = answer;
    }
}
