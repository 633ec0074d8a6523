use super::*;

/// One DER element with a definite length (short or long form).
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

fn attribute(oid: &[u8], tag: u8, value: &[u8]) -> Vec<u8> {
    tlv(SET, &tlv(SEQUENCE, &cat(&[tlv(OID, oid), tlv(tag, value)])))
}

/// A certificate shaped like a real one around `subject` (the RDN sequence's content).
fn certificate(subject: &[u8], with_version: bool) -> Vec<u8> {
    let algorithm = tlv(
        SEQUENCE,
        &tlv(OID, &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02]),
    );
    let issuer = tlv(SEQUENCE, &attribute(&CN_OID, UTF8_STRING, b"issuer CA"));
    let mut tbs = Vec::new();
    if with_version {
        tbs.extend(tlv(VERSION, &tlv(INTEGER, &[2])));
    }
    tbs.extend(tlv(INTEGER, &[0x01, 0x23]));
    tbs.extend(algorithm.clone());
    tbs.extend(issuer);
    tbs.extend(tlv(
        SEQUENCE,
        &cat(&[tlv(0x17, b"260101000000Z"), tlv(0x17, b"270101000000Z")]),
    ));
    tbs.extend(tlv(SEQUENCE, subject));
    tbs.extend(tlv(SEQUENCE, &[0u8; 200]));
    tlv(
        SEQUENCE,
        &cat(&[tlv(SEQUENCE, &tbs), algorithm, tlv(0x03, &[0, 1, 2])]),
    )
}

const O_OID: [u8; 3] = [0x55, 0x04, 0x0a];

#[test]
fn cn_after_other_attributes_is_found_not_the_issuers() {
    let subject = cat(&[
        attribute(&O_OID, UTF8_STRING, b"Acme"),
        attribute(&CN_OID, UTF8_STRING, b"sensor-7"),
    ]);
    let der = certificate(&subject, true);
    assert_eq!(subject_common_name(&der).as_deref(), Some("sensor-7"));
}

#[test]
fn cn_in_each_string_type_decodes() {
    let cases: [(u8, Vec<u8>, &str); 4] = [
        (UTF8_STRING, "capteur-é".as_bytes().to_vec(), "capteur-é"),
        (PRINTABLE_STRING, b"Printable 1".to_vec(), "Printable 1"),
        (IA5_STRING, b"ia5@example".to_vec(), "ia5@example"),
        (BMP_STRING, vec![0, b'b', 0, b'm', 0x00, 0xe9], "bmé"),
    ];
    for (tag, bytes, want) in cases {
        let der = certificate(&attribute(&CN_OID, tag, &bytes), true);
        assert_eq!(
            subject_common_name(&der).as_deref(),
            Some(want),
            "tag {tag:#x}"
        );
    }
}

#[test]
fn version_one_certificate_without_the_version_field_is_read() {
    let der = certificate(&attribute(&CN_OID, UTF8_STRING, b"v1"), false);
    assert_eq!(subject_common_name(&der).as_deref(), Some("v1"));
}

#[test]
fn long_form_lengths_are_read() {
    let long_name = "n".repeat(300);
    let der = certificate(&attribute(&CN_OID, UTF8_STRING, long_name.as_bytes()), true);
    assert_eq!(subject_common_name(&der), Some(long_name));
}

#[test]
fn certificates_without_a_usable_cn_give_none() {
    let no_cn = certificate(&attribute(&O_OID, UTF8_STRING, b"Acme"), true);
    let nul = certificate(&attribute(&CN_OID, UTF8_STRING, b"a\0b"), true);
    let bad_utf8 = certificate(&attribute(&CN_OID, UTF8_STRING, &[0xff, 0xfe]), true);
    let non_ascii_printable = certificate(&attribute(&CN_OID, PRINTABLE_STRING, &[0xe9]), true);
    let empty = certificate(&attribute(&CN_OID, UTF8_STRING, b""), true);
    let unknown_type = certificate(&attribute(&CN_OID, 0x14, b"teletex"), true);
    for (what, der) in [
        ("no CN", no_cn),
        ("NUL", nul),
        ("bad UTF-8", bad_utf8),
        ("non-ASCII printable", non_ascii_printable),
        ("empty", empty),
        ("teletex", unknown_type),
    ] {
        assert_eq!(subject_common_name(&der), None, "{what}");
    }
}

#[test]
fn every_truncation_of_a_certificate_gives_none_without_panicking() {
    let der = certificate(&attribute(&CN_OID, UTF8_STRING, b"sensor-7"), true);
    for len in 0..der.len() {
        assert_eq!(subject_common_name(&der[..len]), None, "cut at {len}");
    }
    assert_eq!(subject_common_name(&der).as_deref(), Some("sensor-7"));
}

#[test]
fn lengths_past_the_input_and_indefinite_lengths_are_refused() {
    assert_eq!(element(&[SEQUENCE, 0x85, 1, 0, 0, 0, 0]), None);
    assert_eq!(element(&[SEQUENCE, 0x80, 0, 0]), None);
    assert_eq!(element(&[SEQUENCE, 0x82, 0xff, 0xff, 0]), None);
    assert_eq!(element(&[0x1f, 0x01, 0x00]), None);
    assert_eq!(
        element(&[SEQUENCE, 0x01, 0x05, 0x09]),
        Some((SEQUENCE, &[5u8][..], &[9u8][..]))
    );
}
