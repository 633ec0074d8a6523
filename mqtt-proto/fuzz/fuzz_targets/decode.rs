//! Arbitrary bytes through the framer: no panic, and every packet that decodes
//! encodes to bytes that decode back to the same packet.

#![no_main]

use mqtt_proto::codec::{encode, encoded_len, read_packet};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;

const MAX_PACKET_SIZE: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    while let Ok(Some(packet)) = read_packet(&mut buf, MAX_PACKET_SIZE) {
        let mut wire = BytesMut::new();
        encode(&packet, &mut wire);
        assert_eq!(
            wire.len(),
            encoded_len(&packet),
            "encoded_len of {packet:?}"
        );
        match read_packet(&mut wire, usize::MAX) {
            Ok(Some(again)) => assert_eq!(again, packet),
            other => panic!("{packet:?} encoded to {wire:02x?}, which reads as {other:?}"),
        }
        assert!(wire.is_empty(), "bytes left after re-reading {packet:?}");
    }
});
