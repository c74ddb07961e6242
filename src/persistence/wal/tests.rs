use std::io::Write;

use super::*;

fn payload(n: u64) -> Vec<u8> {
    format!("batch {n}").repeat(usize::try_from(n % 7 + 1).unwrap()).into_bytes()
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    v.sort();
    v
}

#[test]
fn records_come_back_in_order_after_the_checkpoint_and_numbering_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, replay) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
    assert!(replay.is_empty());
    for n in 1..=10 {
        assert_eq!(wal.append(&payload(n)).unwrap(), n);
    }
    drop(wal);
    let (mut wal, replay) = Wal::open(dir.path(), 1 << 20, 4).unwrap();
    let got: Vec<(u64, Vec<u8>)> = replay.into_iter().map(|r| (r.seq, r.payload)).collect();
    let want: Vec<(u64, Vec<u8>)> = (5..=10).map(|n| (n, payload(n))).collect();
    assert_eq!(got, want);
    assert_eq!(wal.append(b"next").unwrap(), 11);
}

#[test]
fn a_torn_last_record_is_cut_off_and_appends_follow_the_last_whole_one() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
    for n in 1..=3 {
        wal.append(&payload(n)).unwrap();
    }
    drop(wal);
    // A crash in the middle of writing record 4: its header and half its payload reached disk.
    let seg = segments(dir.path()).pop().unwrap();
    let whole = std::fs::metadata(&seg).unwrap().len();
    let torn = encode_record(4, &payload(4)).unwrap();
    OpenOptions::new().append(true).open(&seg).unwrap().write_all(&torn[..torn.len() / 2]).unwrap();
    let (mut wal, replay) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
    assert_eq!(replay.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2, 3]);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), whole, "the torn bytes are gone");
    assert_eq!(wal.append(b"again").unwrap(), 4);
    drop(wal);
    let (_, replay) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
    assert_eq!(replay.last().map(|r| (r.seq, r.payload.clone())), Some((4, b"again".to_vec())));
}

#[test]
fn garbage_after_the_last_record_is_cut_off_too() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
    wal.append(b"one").unwrap();
    drop(wal);
    let seg = segments(dir.path()).pop().unwrap();
    OpenOptions::new().append(true).open(&seg).unwrap().write_all(&[0u8; 100]).unwrap();
    let (_, replay) = Wal::open(dir.path(), 1 << 20, 0).unwrap();
    assert_eq!(replay.len(), 1);
}

#[test]
fn a_bad_record_before_the_end_of_the_log_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    // Small segments: each record closes its segment, so record 2 sits in a closed segment.
    let (mut wal, _) = Wal::open(dir.path(), 16, 0).unwrap();
    for n in 1..=4 {
        wal.append(&payload(n)).unwrap();
    }
    drop(wal);
    let segs = segments(dir.path());
    assert!(segs.len() >= 3, "{segs:?}");
    let victim = &segs[1];
    let mut bytes = std::fs::read(victim).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xFF;
    std::fs::write(victim, bytes).unwrap();
    match Wal::open(dir.path(), 16, 0) {
        Err(WalError::Corrupt { path, .. }) => assert!(path.ends_with(&*victim.file_name().unwrap().to_string_lossy())),
        other => panic!("expected corruption, got {:?}", other.map(|(_, r)| r.len())),
    }
}

#[test]
fn a_missing_segment_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), 16, 0).unwrap();
    for n in 1..=4 {
        wal.append(&payload(n)).unwrap();
    }
    drop(wal);
    let segs = segments(dir.path());
    std::fs::remove_file(&segs[1]).unwrap();
    assert!(matches!(Wal::open(dir.path(), 16, 0), Err(WalError::Corrupt { .. })));
    // Nor may the log start after records the checkpoint does not cover.
    std::fs::remove_file(&segs[0]).unwrap();
    assert!(matches!(Wal::open(dir.path(), 16, 0), Err(WalError::Corrupt { .. })));
}

#[test]
fn segments_go_only_once_a_checkpoint_covers_all_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut wal, _) = Wal::open(dir.path(), 100, 0).unwrap();
    for n in 1..=12 {
        wal.append(&[n as u8; 40]).unwrap();
    }
    let before = wal.segment_count();
    assert!(before >= 4, "{before} segments");
    // Records 1..=5 are covered: only segments that end at or before 5 may go.
    wal.delete_through(5).unwrap();
    drop(wal);
    let (_, replay) = Wal::open(dir.path(), 100, 5).unwrap();
    assert_eq!(replay.iter().map(|r| r.seq).collect::<Vec<_>>(), (6..=12).collect::<Vec<_>>());
    // Everything covered: the log is empty, and numbering resumes after the checkpoint.
    let (mut wal, _) = Wal::open(dir.path(), 100, 5).unwrap();
    wal.delete_through(12).unwrap();
    assert_eq!(wal.segment_count(), 1);
    assert_eq!(wal.open_segment_len(), 0);
    assert_eq!(wal.append(b"x").unwrap(), 13);
    drop(wal);
    let (_, replay) = Wal::open(dir.path(), 100, 12).unwrap();
    assert_eq!(replay.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![13]);
}

#[test]
fn arbitrary_bytes_in_a_segment_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 7u64;
    for round in 0..200u64 {
        let _ = std::fs::remove_dir_all(dir.path());
        std::fs::create_dir_all(dir.path()).unwrap();
        let mut bytes = Vec::new();
        // Sometimes a valid record first, then noise, so the noise sits at the tail.
        if round % 2 == 0 {
            bytes.extend(encode_record(1, b"ok").unwrap());
        }
        for _ in 0..(round % 64) {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            bytes.push((seed >> 33) as u8);
        }
        std::fs::write(dir.path().join(segment_name(1)), &bytes).unwrap();
        if let Ok((_, replay)) = Wal::open(dir.path(), 1 << 20, 0) {
            assert!(replay.len() <= 1);
        }
    }
}
