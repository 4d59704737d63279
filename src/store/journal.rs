//! The journal of raw OCPP frames. It takes a frame and our answer for
//! every message under load, so its layout is chosen for the write path:
//! a charger's CALL and our answer share one row (the answer is a few
//! dozen bytes); a row is a small binary header followed by the frame
//! bytes exactly as received (no JSON escaping of a JSON frame); and a
//! transaction's rows go into redb as blocks of up to 32 KiB keyed by
//! their first row's sequence number, so every insert appends to the end
//! of the tree and redb's per-insert work (rebuilding the leaf and the
//! branches above it) is paid once per block rather than once per
//! message. A charger's frames are found by walking back from its newest
//! row (`frames_head`) through each row's `prev` link; the head table has
//! one small row per charger, so keeping it current costs a few pages per
//! transaction however many chargers wrote. See docs/decisions.md.

use super::{Result, StoreError};
use crate::domain::{Direction, JournalEntry};
use chrono::{DateTime, Utc};
use redb::{ReadableTable, Table};
use std::ops::Range;

const ROW_VERSION: u8 = 1;
/// A charger's CALL and our answer to it.
const PAIR_VERSION: u8 = 2;
/// Several rows of one transaction, see [`Block`].
const BLOCK_VERSION: u8 = 3;
/// A block's bytes, kept under 32 KiB less room for redb's leaf header
/// so that a block fills one 32 KiB page.
const BLOCK_BYTES: usize = 32 * 1024 - 256;
/// A block's index entry: the row's sequence number and where it ends.
const BLOCK_ENTRY: usize = 8 + 4;
/// version, unix millis, direction, prev, charger length.
const HEADER: usize = 1 + 8 + 1 + 8 + 2;
/// A pair row's fields after the charger id: the answer's sequence number
/// and the length of the CALL.
const PAIR_TAIL: usize = 8 + 4;

/// A row: `[1][t: i64 ms LE][dir: 0 in | 1 out][prev seq: u64 LE, 0 = none]
/// [charger length: u16 LE][charger][frame]`.
pub(super) fn encode(t: DateTime<Utc>, dir: Direction, prev: u64, charger: &str, frame: &str) -> Vec<u8> {
    let mut row = Vec::with_capacity(HEADER + charger.len() + frame.len());
    encode_into(&mut row, t, dir, prev, charger, frame);
    row
}

fn encode_into(row: &mut Vec<u8>, t: DateTime<Utc>, dir: Direction, prev: u64, charger: &str, frame: &str) {
    let id = &charger.as_bytes()[..charger.len().min(u16::MAX as usize)];
    row.reserve(HEADER + id.len() + frame.len());
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
}

/// A pair row: `[2][t][0][prev][charger length][charger][answer seq: u64
/// LE][CALL length: u32 LE][CALL][answer]`, keyed by the CALL's sequence
/// number. The answer's number is later than any row the CALL caused.
#[cfg(test)]
fn encode_pair(call: &JournalEntry, answer: &JournalEntry, prev: u64) -> Vec<u8> {
    let mut row = Vec::new();
    encode_pair_into(&mut row, call, answer, prev);
    row
}

fn encode_pair_into(row: &mut Vec<u8>, call: &JournalEntry, answer: &JournalEntry, prev: u64) {
    let start = row.len();
    encode_into(row, call.t, Direction::In, prev, &call.charger, "");
    row[start] = PAIR_VERSION;
    row.reserve(PAIR_TAIL + call.frame.len() + answer.frame.len());
    row.extend_from_slice(&answer.seq.to_le_bytes());
    row.extend_from_slice(&u32::try_from(call.frame.len()).unwrap_or(u32::MAX).to_le_bytes());
    row.extend_from_slice(call.frame.as_bytes());
    row.extend_from_slice(answer.frame.as_bytes());
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

/// Appends one frame as its own row `seq`, linked to `prev`, the
/// charger's newest row until now (the schema migration, which writes
/// rows one by one); the caller moves the charger's head to `seq`.
pub(super) fn append(frames: &mut Table<u64, &[u8]>, prev: u64, entry: &JournalEntry) -> Result<()> {
    let row = encode(entry.t, entry.dir, prev, &entry.charger, &entry.frame);
    frames.insert(entry.seq, row.as_slice())?;
    Ok(())
}

/// The rows a transaction journals, gathered before they reach redb:
/// `[3][count: u32 LE][count × (seq: u64 LE, end: u32 LE)][rows]`, keyed
/// by the first row's number. A row ends at its `end` offset into the
/// rows and starts where the previous one ended; each is a version 1 or 2
/// row as [`encode`] and `encode_pair_into` write it. Rows come in rising
/// order and a block is written before the next one starts, so blocks
/// never overlap and a row is found in the block with the greatest key at
/// or below its number.
#[derive(Default)]
pub(super) struct Block {
    index: Vec<(u64, u32)>,
    rows: Vec<u8>,
}

impl Block {
    /// Adds one frame as row `entry.seq`, linked to `prev`.
    pub fn push(&mut self, frames: &mut Table<u64, &[u8]>, prev: u64, entry: &JournalEntry) -> Result<()> {
        let size = HEADER + entry.charger.len() + entry.frame.len();
        self.make_room(frames, size)?;
        encode_into(&mut self.rows, entry.t, entry.dir, prev, &entry.charger, &entry.frame);
        self.close_row(entry.seq)
    }

    /// Adds a CALL and our answer as one row keyed by the CALL's number.
    pub fn push_pair(
        &mut self,
        frames: &mut Table<u64, &[u8]>,
        prev: u64,
        call: &JournalEntry,
        answer: &JournalEntry,
    ) -> Result<()> {
        let size = HEADER + call.charger.len() + PAIR_TAIL + call.frame.len() + answer.frame.len();
        self.make_room(frames, size)?;
        encode_pair_into(&mut self.rows, call, answer, prev);
        self.close_row(call.seq)
    }

    /// Writes the gathered rows as one block, if there are any, straight
    /// into the page redb reserves for it.
    pub fn flush(&mut self, frames: &mut Table<u64, &[u8]>) -> Result<()> {
        let Some(&(first, _)) = self.index.first() else {
            return Ok(());
        };
        let mut slot = frames.insert_reserve(first, self.len())?;
        let block = slot.as_mut();
        block[0] = BLOCK_VERSION;
        block[1..5].copy_from_slice(&(self.index.len() as u32).to_le_bytes());
        let mut at = 5;
        for (seq, end) in &self.index {
            block[at..at + 8].copy_from_slice(&seq.to_le_bytes());
            block[at + 8..at + BLOCK_ENTRY].copy_from_slice(&end.to_le_bytes());
            at += BLOCK_ENTRY;
        }
        block[at..].copy_from_slice(&self.rows);
        self.index.clear();
        self.rows.clear();
        Ok(())
    }

    fn len(&self) -> usize {
        1 + 4 + self.index.len() * BLOCK_ENTRY + self.rows.len()
    }

    /// A row that would take the block past its size starts a new one (a
    /// row larger than a block gets a block of its own).
    fn make_room(&mut self, frames: &mut Table<u64, &[u8]>, row: usize) -> Result<()> {
        if !self.index.is_empty() && self.len() + BLOCK_ENTRY + row > BLOCK_BYTES {
            self.flush(frames)?;
        }
        // Grown once to a block's size rather than doubled along the way.
        self.rows.reserve(BLOCK_BYTES.max(row).saturating_sub(self.rows.len()));
        Ok(())
    }

    fn close_row(&mut self, seq: u64) -> Result<()> {
        let end = u32::try_from(self.rows.len()).map_err(|_| StoreError::CorruptRow {
            table: "frames",
            key: seq,
            why: "a row of 4 GiB or more".into(),
        })?;
        self.index.push((seq, end));
        Ok(())
    }
}

/// Where row `seq` lies in the block keyed `key`, if it is there.
fn in_block(key: u64, block: &[u8], seq: u64) -> Result<Option<Range<usize>>> {
    let corrupt = |why: &str| StoreError::CorruptRow {
        table: "frames",
        key,
        why: why.to_string(),
    };
    let Some(count) = block.get(1..5) else {
        return Err(corrupt("short block"));
    };
    let count = u32::from_le_bytes([count[0], count[1], count[2], count[3]]) as usize;
    let rows_at = count
        .checked_mul(BLOCK_ENTRY)
        .and_then(|n| n.checked_add(5))
        .filter(|&n| n <= block.len())
        .ok_or_else(|| corrupt("block index runs past the block"))?;
    let entry = |i: usize| {
        let e = &block[5 + i * BLOCK_ENTRY..5 + (i + 1) * BLOCK_ENTRY];
        let mut s = [0u8; 8];
        s.copy_from_slice(&e[..8]);
        (
            u64::from_le_bytes(s),
            u32::from_le_bytes([e[8], e[9], e[10], e[11]]) as usize,
        )
    };
    let (mut lo, mut hi) = (0, count);
    while lo < hi {
        let mid = (lo + hi) / 2;
        match entry(mid).0.cmp(&seq) {
            std::cmp::Ordering::Less => lo = mid + 1,
            std::cmp::Ordering::Greater => hi = mid,
            std::cmp::Ordering::Equal => {
                let start = if mid == 0 { 0 } else { entry(mid - 1).1 };
                let end = entry(mid).1;
                if start > end || rows_at + end > block.len() {
                    return Err(corrupt("block row runs past the block"));
                }
                return Ok(Some(rows_at + start..rows_at + end));
            }
        }
    }
    Ok(None)
}

/// Row `seq`, whether it is a row of its own or in a block; `None` when
/// it is not stored.
fn row_at(frames: &impl ReadableTable<u64, &'static [u8]>, seq: u64) -> Result<Option<Row>> {
    let Some(found) = frames.range(..=seq)?.next_back() else {
        return Ok(None);
    };
    let (key, value) = found?;
    let (key, bytes) = (key.value(), value.value());
    if bytes.first() == Some(&BLOCK_VERSION) {
        return match in_block(key, bytes, seq)? {
            Some(at) => decode(seq, &bytes[at]).map(Some),
            None => Ok(None),
        };
    }
    if key == seq {
        decode(seq, bytes).map(Some)
    } else {
        Ok(None)
    }
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
        let Some(row) = row_at(frames, next)? else {
            // A link to a row that is not there ends the chain.
            break;
        };
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
            let mut block = Block::default();
            block
                .push(&mut frames, 0, &entry(3, Direction::Out, r#"[2,"a","Reset",{}]"#))
                .unwrap();
            // The answer's number is after the event rows (5, 6) the CALL caused.
            let (call, answer) = (
                entry(4, Direction::In, r#"[2,"b","MeterValues",{"x":"é"}]"#),
                entry(7, Direction::Out, r#"[3,"b",{}]"#),
            );
            block.push_pair(&mut frames, 3, &call, &answer).unwrap();
            block.flush(&mut frames).unwrap();
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

    fn in_memory() -> redb::Database {
        redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap()
    }

    #[test]
    fn rows_spread_over_blocks_and_old_single_rows_read_back_as_one_chain() {
        let db = in_memory();
        let def = redb::TableDefinition::<u64, &[u8]>::new("frames");
        let heads_def = redb::TableDefinition::<&str, u64>::new("frames_head");
        let w = db.begin_write().unwrap();
        {
            let mut frames = w.open_table(def).unwrap();
            let mut heads = w.open_table(heads_def).unwrap();
            // Rows of before blocks existed, then three transactions' blocks.
            append(&mut frames, 0, &entry(1, Direction::In, "[old1]")).unwrap();
            append(&mut frames, 1, &entry(2, Direction::Out, "[old2]")).unwrap();
            let big = format!("[\"{}\"]", "x".repeat(BLOCK_BYTES));
            let mut block = Block::default();
            let mut prev = 2;
            let mut want: Vec<String> = vec!["[old1]".into(), "[old2]".into()];
            // Odd numbers only: the even ones are other tables' rows, so a
            // link to one of them lands inside a block's range but not on a row.
            for seq in (3..400).step_by(2) {
                let frame = if seq == 201 {
                    big.clone()
                } else {
                    format!("[2,\"{seq}\",\"Heartbeat\",{{\"pad\":\"{}\"}}]", "p".repeat(600))
                };
                block
                    .push(&mut frames, prev, &entry(seq, Direction::In, &frame))
                    .unwrap();
                want.push(frame);
                prev = seq;
                if seq % 101 == 0 {
                    block.flush(&mut frames).unwrap();
                }
            }
            block.flush(&mut frames).unwrap();
            heads.insert("CP-ü1", prev).unwrap();
            let blocks = frames.iter().unwrap().count();
            // Two old rows, the big row alone, and the rest several to a block.
            assert!((6..20).contains(&blocks), "{blocks} rows in the table");
            for row in frames.iter().unwrap() {
                let (_, v) = row.unwrap();
                assert!(v.value().len() <= BLOCK_BYTES || v.value().len() > big.len());
            }
            let all = read(&frames, &heads, "CP-ü1", None, 1000).unwrap();
            assert_eq!(all.iter().map(|e| e.frame.clone()).collect::<Vec<_>>(), want);
            assert!(row_at(&frames, 200).unwrap().is_none());
            assert!(row_at(&frames, 10_000).unwrap().is_none());
            assert_eq!(row_at(&frames, 201).unwrap().unwrap().entry.frame, big);
        }
        w.commit().unwrap();
    }

    #[test]
    fn a_damaged_block_is_reported_not_misread() {
        let db = in_memory();
        let def = redb::TableDefinition::<u64, &[u8]>::new("frames");
        let w = db.begin_write().unwrap();
        {
            let mut frames = w.open_table(def).unwrap();
            let mut block = Block::default();
            for seq in [5, 6] {
                block.push(&mut frames, 0, &entry(seq, Direction::In, "[2]")).unwrap();
            }
            block.flush(&mut frames).unwrap();
            let good = frames.get(5).unwrap().unwrap().value().to_vec();
            let mut huge_count = good.clone();
            huge_count[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
            let mut long_row = good.clone();
            long_row[5 + BLOCK_ENTRY + 8..5 + 2 * BLOCK_ENTRY].copy_from_slice(&9999u32.to_le_bytes());
            for bad in [&good[..3], &huge_count[..], &long_row[..]] {
                frames.insert(5, bad).unwrap();
                assert!(
                    matches!(row_at(&frames, 6), Err(StoreError::CorruptRow { .. })),
                    "{bad:?}"
                );
            }
        }
        w.commit().unwrap();
    }
}
