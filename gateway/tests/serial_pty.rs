//! The serial source on a pseudo-terminal pair: frames arrive; when the terminal
//! goes away the source waits with back-off (using almost no CPU) and reopens the
//! same path when it comes back.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{wait_until, waiting, WAIT};
use mqgate::frame::FramingConfig;
use mqgate::source::serial::{self, SerialSettings};
use mqgate::source::{DeviceSide, Feed, SourceState, SourceStatus};
use tokio::sync::{mpsc, watch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_port_is_reported_with_its_path_and_retried() {
    let path = std::env::temp_dir().join(format!("mqgate-no-such-port-{}", std::process::id()));
    let status = Arc::new(SourceStatus::new("missing"));
    let (tx, _rx) = mpsc::channel(1);
    let feed = Feed::new(
        "missing",
        FramingConfig::default().build(),
        status.clone(),
        tx,
        None,
    );
    let mut settings = SerialSettings::new(path.to_str().expect("utf-8"), 9600);
    settings.reopen_initial = Duration::from_millis(20);
    let (stop, shutdown) = watch::channel(false);
    let writer = serial::Writer::new(FramingConfig::default(), DeviceSide::none());
    let task = tokio::spawn(serial::run(
        settings,
        feed,
        writer,
        status.clone(),
        shutdown,
    ));
    wait_until("the source to report the missing port", || waiting(&status)).await;
    match status.state() {
        SourceState::Waiting { last_error, .. } => assert!(
            last_error.contains("mqgate-no-such-port"),
            "the error names the port: {last_error}"
        ),
        other => panic!("expected Waiting, got {other:?}"),
    }
    stop.send(true).expect("stop");
    tokio::time::timeout(WAIT, task)
        .await
        .expect("source stops")
        .expect("task");
}

/// Reads from the pseudo-terminal's master side until `want` bytes came.
fn read_exactly(master: &mut serialport::TTYPort, want: usize) -> Vec<u8> {
    use serialport::SerialPort;
    use std::io::Read;
    master
        .set_timeout(Duration::from_millis(100))
        .expect("a read timeout");
    let deadline = std::time::Instant::now() + WAIT;
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while got.len() < want {
        assert!(
            std::time::Instant::now() < deadline,
            "only {got:02x?} arrived, waiting for {want} bytes"
        );
        match master.read(&mut buf[..want - got.len()]) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read the terminal: {e}"),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_framing_writes_a_command_as_its_own_reader_would_read_it_while_frames_flow_up() {
    use mqgate::message::Part;
    use mqgate::source::{link, TxOutcome, TxRequest};
    use serialport::SerialPort as _;
    // (framing, the command's payload, the bytes the device must get, a frame the
    // device sends up meanwhile).
    let cases = vec![
        ("type: lines\nline_ending: crlf", b"SET 1".to_vec(), b"SET 1\r\n".to_vec(), b"up\n".to_vec()),
        (
            "type: lines\nnmea_checksum: true\nline_ending: crlf",
            b"$PMTK220,1000".to_vec(),
            b"$PMTK220,1000*1F\r\n".to_vec(),
            b"$PMTK001,220,3*30\r\n".to_vec(),
        ),
        (
            "type: binary\nsync: [0xAA, 0x55]\nlength: { offset: 2, width: 1, adjust: 2 }\nchecksum: { kind: crc16, algorithm: modbus, endian: little }",
            vec![0x01, 0x02],
            {
                // AA 55, the payload's length (the CRC is the `adjust`), the payload,
                // and a CRC-16/MODBUS over every byte before it, little-endian.
                let mut p = vec![0xAA, 0x55, 0x02, 0x01, 0x02];
                let crc = crc::Crc::<u16>::new(&crc::CRC_16_MODBUS).checksum(&p);
                p.extend_from_slice(&crc.to_le_bytes());
                p
            },
            {
                let mut p = vec![0xAA, 0x55, 0x02, 0x09, 0x08];
                let crc = crc::Crc::<u16>::new(&crc::CRC_16_MODBUS).checksum(&p);
                p.extend_from_slice(&crc.to_le_bytes());
                p
            },
        ),
        ("type: slip", vec![0xC0, 0x01, 0xDB], vec![0xC0, 0xDB, 0xDC, 0x01, 0xDB, 0xDD, 0xC0], vec![0xC0, 0x07, 0xC0]),
        ("type: cobs", vec![0x11, 0x00, 0x22], vec![0x00, 0x02, 0x11, 0x02, 0x22, 0x00], vec![0x00, 0x02, 0x07, 0x00]),
        ("type: idle_gap\nmin_gap_ms: 30", vec![0x41, 0x42], vec![0x41, 0x42], vec![0x55, 0x66]),
    ];
    for (framing_yaml, payload, expected, up) in cases {
        let framing: FramingConfig = serde_yaml_ng::from_str(framing_yaml).expect("a framing");
        assert!(framing.validate().is_empty(), "{framing_yaml}");
        let (master, slave) = serialport::TTYPort::pair().expect("a pseudo-terminal pair");
        let path = slave.name().expect("a path");
        drop(slave);
        let status = Arc::new(SourceStatus::new("dev"));
        let (tx, mut frames) = mpsc::channel(64);
        let feed = Feed::new("dev", framing.build(), status.clone(), tx, None);
        let (cmd_link, device) = link();
        let writer = serial::Writer::new(framing.clone(), device);
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(serial::run(
            SerialSettings::new(&path, 115_200),
            feed,
            writer,
            status.clone(),
            shutdown,
        ));
        let mut ready = cmd_link.ready.clone();
        tokio::time::timeout(WAIT, ready.wait_for(|r| *r))
            .await
            .expect("the port opens")
            .expect("the source runs");
        // A frame up, the command down, and another frame up after it.
        let mut master = test_support::pty::write_to_port(master, up.clone(), WAIT);
        let (reply, answer) = tokio::sync::oneshot::channel();
        let parts = vec![Part::bytes(bytes::Bytes::from(payload.clone()))];
        cmd_link
            .tx
            .send(TxRequest { parts, reply })
            .await
            .expect("the writer takes it");
        let got = tokio::task::spawn_blocking(move || {
            let got = read_exactly(&mut master, expected.len());
            (master, got, expected)
        })
        .await
        .expect("the reader");
        let (master, got, expected) = got;
        assert_eq!(got, expected, "{framing_yaml}: the bytes on the line");
        let outcome = tokio::time::timeout(WAIT, answer).await.expect("an answer");
        assert_eq!(outcome, Ok(TxOutcome::Sent), "{framing_yaml}");
        let _master = test_support::pty::write_to_port(master, up.clone(), WAIT);
        for n in 0..2 {
            let frame = tokio::time::timeout(WAIT, frames.recv())
                .await
                .unwrap_or_else(|_| panic!("{framing_yaml}: frame {n} up"))
                .expect("a frame");
            assert!(!frame.bytes.is_empty(), "{framing_yaml}");
        }
        stop.send(true).expect("stop");
        tokio::time::timeout(WAIT, task)
            .await
            .expect("stops")
            .expect("task");
    }
}
