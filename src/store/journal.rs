//! The journal of raw OCPP frames. It takes two rows per message under
//! load (the frame and our answer), so its layout is chosen for the write
//! path: rows are keyed by the global sequence number, so every insert
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
/// version, unix millis, direction, prev, charger length.
const HEADER: usize = 1 + 8 + 1 + 8 + 2;

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

/// A decoded row and the link to the charger's previous one.
pub(super) struct Row {
    pub entry: JournalEntry,
    pub prev: u64,
}

pub(super) fn decode(seq: u64, row: &[u8]) -> Result<Row> {
    let corrupt = |why: &str| StoreError::CorruptRow {
        table: "frames",
        key: seq,
        why: why.to_string(),
    };
    if row.len() < HEADER || row[0] != ROW_VERSION {
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
    Ok(Row {
        entry: JournalEntry {
            seq,
            t,
            charger: text(id)?,
            dir,
            frame: text(&row[HEADER + len..])?,
        },
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
        out.push(row.entry);
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
}
