//! The journal of raw OCPP frames. It takes a frame and our answer for
//! every message under load, so its layout is chosen for the write path:
//! a charger's CALL and our answer share one row (two inserts cost twice
//! one; the answer is a few dozen bytes); rows are keyed by the global sequence number, so every insert
//! appends to the end of the tree and a transaction dirties only the pages
//! it fills, and a row is a small binary header followed by the frame bytes
//! exactly as received (no JSON escaping of a JSON frame). A charger's
//! frames are found by walking back from its newest row (`frames_head`)
//! through each row's `prev` link; the head table has one small row per
//! charger, so keeping it current costs a few pages per transaction
//! however many chargers wrote. See docs/decisions.md.

use super::{Result, StoreError};
use crate::domain::{Direction, JournalEntry};
use chrono::{DateTime, Utc};
use redb::{ReadableTable, Table};

const ROW_VERSION: u8 = 1;
/// A charger's CALL and our answer to it.
const PAIR_VERSION: u8 = 2;
/// version, unix millis, direction, prev, charger length.
const HEADER: usize = 1 + 8 + 1 + 8 + 2;
/// A pair row's fields after the charger id: the answer's sequence number
/// and the length of the CALL.
const PAIR_TAIL: usize = 8 + 4;

/// A row: `[1][t: i64 ms LE][dir: 0 in | 1 out][prev seq: u64 LE, 0 = none]
/// [charger length: u16 LE][charger][frame]`.
pub(super) fn encode(t: DateTime<Utc>, dir: Direction, prev: u64, charger: &str, frame: &str) -> Vec<u8> {
    let id = &charger.as_bytes()[..charger.len().min(u16::MAX as usize)];
    let mut row = Vec::with_capacity(HEADER + id.len() + frame.len());
    row.push(ROW_VERSION);
    row.extend_from_slice(&t.timestamp_millis().to_le_bytes());
    row.push(match dir {
        Direction::In => 0,
        Direction::Out => 1,
    });
    row.extend_from_slice(&prev.to_le_bytes());
    row.extend_from_slice(&(id.len() as u16).to_le_bytes());
    row.extend_from_slice(id);
    row.extend_from_slice(frame.as_bytes());
    row
}

/// A pair row: `[2][t][0][prev][charger length][charger][answer seq: u64
/// LE][CALL length: u32 LE][CALL][answer]`, keyed by the CALL's sequence
/// number. The answer's number is later than any row the CALL caused.
fn encode_pair(call: &JournalEntry, answer: &JournalEntry, prev: u64) -> Vec<u8> {
    let mut row = encode(call.t, Direction::In, prev, &call.charger, "");
    row[0] = PAIR_VERSION;
    row.reserve(PAIR_TAIL + call.frame.len() + answer.frame.len());
    row.extend_from_slice(&answer.seq.to_le_bytes());
    row.extend_from_slice(&u32::try_from(call.frame.len()).unwrap_or(u32::MAX).to_le_bytes());
    row.extend_from_slice(call.frame.as_bytes());
    row.extend_from_slice(answer.frame.as_bytes());
    row
}

/// A decoded row and the link to the charger's previous one.
pub(super) struct Row {
    pub entry: JournalEntry,
    /// Our answer, in a pair row.
    pub answer: Option<JournalEntry>,
    pub prev: u64,
}

pub(super) fn decode(seq: u64, row: &[u8]) -> Result<Row> {
    let corrupt = |why: &str| StoreError::CorruptRow {
        table: "frames",
        key: seq,
        why: why.to_string(),
    };
    if row.len() < HEADER || !matches!(row[0], ROW_VERSION | PAIR_VERSION) {
        return Err(corrupt("unknown row version or short row"));
    }
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&row[i..i + 8]);
        b
    };
    let millis = i64::from_le_bytes(u64_at(1));
    let dir = match row[9] {
        0 => Direction::In,
        1 => Direction::Out,
        _ => return Err(corrupt("bad direction byte")),
    };
    let prev = u64::from_le_bytes(u64_at(10));
    let len = u16::from_le_bytes([row[18], row[19]]) as usize;
    let Some(id) = row.get(HEADER..HEADER + len) else {
        return Err(corrupt("charger id runs past the row"));
    };
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| corrupt("not UTF-8"));
    let t = DateTime::from_timestamp_millis(millis).ok_or_else(|| corrupt("time out of range"))?;
    let charger = text(id)?;
    let rest = &row[HEADER + len..];
    if row[0] == ROW_VERSION {
        return Ok(Row {
            entry: JournalEntry {
                seq,
                t,
                charger,
                dir,
                frame: text(rest)?,
            },
            answer: None,
            prev,
        });
    }
    let (Some(answer_seq), Some(call_len)) = (rest.first_chunk::<8>(), rest.get(8..PAIR_TAIL)) else {
        return Err(corrupt("pair row too short"));
    };
    let mut n = [0u8; 4];
    n.copy_from_slice(call_len);
    let frames = &rest[PAIR_TAIL..];
    let Some((call, answer)) = frames.split_at_checked(u32::from_le_bytes(n) as usize) else {
        return Err(corrupt("CALL runs past the row"));
    };
    Ok(Row {
        entry: JournalEntry {
            seq,
            t,
            charger: charger.clone(),
            dir: Direction::In,
            frame: text(call)?,
        },
        answer: Some(JournalEntry {
            seq: u64::from_le_bytes(*answer_seq),
            t,
            charger,
            dir: Direction::Out,
            frame: text(answer)?,
        }),
        prev,
    })
}

/// Appends one frame as row `seq`, linked to `prev`, the charger's newest
/// row until now; the caller moves the charger's head to `seq`.
pub(super) fn append(frames: &mut Table<u64, &[u8]>, prev: u64, entry: &JournalEntry) -> Result<()> {
    let row = encode(entry.t, entry.dir, prev, &entry.charger, &entry.frame);
    frames.insert(entry.seq, row.as_slice())?;
    Ok(())
}

/// Appends a CALL and our answer as one row keyed by the CALL's number.
pub(super) fn append_pair(
    frames: &mut Table<u64, &[u8]>,
    prev: u64,
    call: &JournalEntry,
    answer: &JournalEntry,
) -> Result<()> {
    frames.insert(call.seq, encode_pair(call, answer, prev).as_slice())?;
    Ok(())
}

/// The newest `limit` frames of a charger at or after `since`, oldest first.
pub(super) fn read(
    frames: &impl ReadableTable<u64, &'static [u8]>,
    heads: &impl ReadableTable<&'static str, u64>,
    charger: &str,
    since: Option<DateTime<Utc>>,
    limit: usize,
) -> Result<Vec<JournalEntry>> {
    let mut out = Vec::new();
    let mut next = heads.get(charger)?.map(|v| v.value()).unwrap_or(0);
    while next != 0 && out.len() < limit {
        let Some(bytes) = frames.get(next)? else {
            // Rows older than a retention cut are gone; the chain ends there.
            break;
        };
        let row = decode(next, bytes.value())?;
        if since.is_some_and(|s| row.entry.t < s) {
            break;
        }
        // Links always point back; a link that does not would loop.
        if row.prev >= next {
            return Err(StoreError::CorruptRow {
                table: "frames",
                key: next,
                why: format!("link to {} does not point back", row.prev),
            });
        }
        next = row.prev;
        // Newest first until the reversal below: the answer, then the CALL.
        out.extend(row.answer);
        if out.len() < limit {
            out.push(row.entry);
        }
    }
    out.reverse();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_round_trips_with_its_link() {
        let t: DateTime<Utc> = "2026-11-24T10:00:00.123Z".parse().unwrap();
        let frame = r#"[2,"1","Heartbeat",{"ü":"\"x\""}]"#;
        let bytes = encode(t, Direction::Out, 41, "CP-ü1", frame);
        let row = decode(42, &bytes).unwrap();
        assert_eq!(row.prev, 41);
        assert_eq!(
            row.entry,
            JournalEntry {
                seq: 42,
                t,
                charger: "CP-ü1".into(),
                dir: Direction::Out,
                frame: frame.into(),
            }
        );
    }

    #[test]
    fn damaged_rows_are_reported_not_misread() {
        let t: DateTime<Utc> = "2026-11-24T10:00:00Z".parse().unwrap();
        let good = encode(t, Direction::In, 0, "CP1", "[]");
        for bad in [&good[..5], &[9u8; 30][..]] {
            assert!(matches!(decode(1, bad), Err(StoreError::CorruptRow { .. })));
        }
        let mut long_id = good.clone();
        long_id[18] = 200;
        assert!(decode(1, &long_id).is_err());
    }

    fn entry(seq: u64, dir: Direction, frame: &str) -> JournalEntry {
        JournalEntry {
            seq,
            t: "2026-11-24T10:00:00.5Z".parse().unwrap(),
            charger: "CP-ü1".into(),
            dir,
            frame: frame.into(),
        }
    }

    #[test]
    fn a_call_and_its_answer_share_a_row_and_come_back_in_order() {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let def = redb::TableDefinition::<u64, &[u8]>::new("frames");
        let heads_def = redb::TableDefinition::<&str, u64>::new("frames_head");
        let w = db.begin_write().unwrap();
        {
            let mut frames = w.open_table(def).unwrap();
            let mut heads = w.open_table(heads_def).unwrap();
            append(&mut frames, 0, &entry(3, Direction::Out, r#"[2,"a","Reset",{}]"#)).unwrap();
            // The answer's number is after the event rows (5, 6) the CALL caused.
            let (call, answer) = (
                entry(4, Direction::In, r#"[2,"b","MeterValues",{"x":"é"}]"#),
                entry(7, Direction::Out, r#"[3,"b",{}]"#),
            );
            append_pair(&mut frames, 3, &call, &answer).unwrap();
            heads.insert("CP-ü1", 4).unwrap();
            let all = read(&frames, &heads, "CP-ü1", None, 10).unwrap();
            assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4, 7]);
            assert_eq!(all[1], call);
            assert_eq!(all[2], answer);
            let newest = read(&frames, &heads, "CP-ü1", None, 1).unwrap();
            assert_eq!(newest, std::slice::from_ref(&answer));
            let two = read(&frames, &heads, "CP-ü1", None, 2).unwrap();
            assert_eq!(two, [call, answer]);
        }
        w.commit().unwrap();
    }

    #[test]
    fn a_pair_row_whose_call_runs_past_it_is_reported() {
        let mut row = encode_pair(&entry(4, Direction::In, "[2]"), &entry(5, Direction::Out, "[3]"), 0);
        let at = HEADER + "CP-ü1".len() + 8;
        row[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
        assert!(matches!(decode(4, &row), Err(StoreError::CorruptRow { .. })));
        assert!(matches!(decode(4, &row[..at - 3]), Err(StoreError::CorruptRow { .. })));
    }
}
