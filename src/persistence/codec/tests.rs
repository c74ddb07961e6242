use proptest::prelude::*;
use serde::{Deserialize, Serialize};

use super::*;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Sample {
    name: String,
    n: u64,
    tags: Vec<String>,
}

fn sample() -> Sample {
    Sample { name: "war-and-peace".into(), n: 1869, tags: vec!["novel".into(), "classic".into()] }
}

fn header() -> Header {
    Header { kind: RecordKind::Aggregate, schema: 3, version: 42 }
}

#[test]
fn a_record_round_trips_with_its_header() {
    let bytes = encode(header(), &sample(), 1024).unwrap();
    let (h, back): (Header, Sample) = decode(RecordKind::Aggregate, 3, &bytes).unwrap();
    assert_eq!(h, header());
    assert_eq!(back, sample());
    assert_eq!(peek(RecordKind::Aggregate, &bytes).unwrap().version, 42);
}

#[test]
fn every_single_flipped_bit_is_detected() {
    let bytes = encode(header(), &sample(), 1024).unwrap();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut bad = bytes.clone();
            bad[i] ^= 1 << bit;
            let r: Result<(Header, Sample), _> = decode(RecordKind::Aggregate, 3, &bad);
            assert!(r.is_err(), "flip of bit {bit} in byte {i} went unnoticed");
        }
    }
}

#[test]
fn short_foreign_and_future_records_are_typed_errors() {
    let bytes = encode(header(), &sample(), 1024).unwrap();
    assert_eq!(open(RecordKind::Aggregate, &bytes[..5]).unwrap_err(), CodecError::NotARecord("shorter than a header"));
    assert!(matches!(open(RecordKind::Inbox, &bytes), Err(CodecError::WrongKind { found: 1, .. })));
    let mut future = bytes.clone();
    future[2] = 9;
    assert_eq!(open(RecordKind::Aggregate, &future).unwrap_err(), CodecError::UnsupportedFormat(9));
    let r: Result<(Header, Sample), _> = decode(RecordKind::Aggregate, 4, &bytes);
    assert!(matches!(r, Err(CodecError::UnknownSchema { version: 3, .. })));
    let truncated = &bytes[..bytes.len() - 1];
    assert_eq!(open(RecordKind::Aggregate, truncated).unwrap_err(), CodecError::Checksum);
}

#[test]
fn oversized_values_are_refused_before_anything_is_written() {
    let big = Sample { name: "x".repeat(2000), n: 0, tags: vec![] };
    assert!(matches!(encode(header(), &big, 1024), Err(CodecError::TooLarge { .. })));
}

#[test]
fn trailing_bytes_in_a_body_are_refused() {
    let mut body = to_body("sample", &sample(), 1024).unwrap();
    body.push(0);
    assert!(matches!(from_body::<Sample>("sample", &body), Err(CodecError::Malformed { .. })));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = open(RecordKind::Aggregate, &bytes);
        let _: Result<(Header, Sample), _> = decode(RecordKind::Aggregate, 3, &bytes);
        let _ = from_body::<Sample>("sample", &bytes);
    }

    #[test]
    fn any_sample_round_trips(name in ".{0,40}", n in any::<u64>(), tags in prop::collection::vec(".{0,8}", 0..5), v in any::<u64>(), s in any::<u16>()) {
        let value = Sample { name, n, tags };
        let h = Header { kind: RecordKind::Aggregate, schema: s, version: v };
        let bytes = encode(h, &value, 4096).unwrap();
        let (h2, back): (Header, Sample) = decode(RecordKind::Aggregate, s, &bytes).unwrap();
        prop_assert_eq!(h2, h);
        prop_assert_eq!(back, value);
    }
}
