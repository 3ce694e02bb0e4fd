//! Operator list state in checkpoints. A list is sent inline in the acknowledgement
//! when small; a list larger than `state.storage.fs.memory-threshold` (Flink's option,
//! default 20 KiB) is written in the asynchronous phase to one file in the checkpoint's
//! directory, and only its handle travels: the acknowledgement, the checkpoint metadata
//! and the restore request stay small however many rows an operator holds.
//!
//! A list file is `SLST`, a format version byte, then each entry as a little-endian u64
//! length and its bytes. On restore the file's checksum is verified before its entries are
//! read.

use sluice_core::{Distribution, OperatorError, OperatorList, OperatorState, StateInit};
use sluice_proto::{ListDistribution, OperatorListPart, OperatorListSnapshot, OperatorRestore, StateFile};

use sluice_storage::Location;

use crate::state::CheckpointStorage;

const MAGIC: &[u8; 4] = b"SLST";
const VERSION: u8 = 1;

type Result<T> = std::result::Result<T, OperatorError>;

/// The snapshot of `list`, inline.
pub fn inline(list: OperatorList) -> OperatorListSnapshot {
    OperatorListSnapshot {
        name: list.name,
        distribution: match list.distribution {
            Distribution::Split => ListDistribution::Split as i32,
            Distribution::Union => ListDistribution::Union as i32,
        },
        entry_count: list.entries.len() as u64,
        entries: list.entries,
        file: None,
    }
}

/// The snapshots of `state`'s lists, inline.
pub fn inline_all(state: OperatorState) -> Vec<OperatorListSnapshot> {
    state.lists.into_iter().map(inline).collect()
}

/// Bytes of entries held inline by `list`.
pub fn inline_bytes(list: &OperatorListSnapshot) -> u64 {
    list.entries.iter().map(|e| e.len() as u64).sum()
}

/// Moves `list`'s entries to a file of checkpoint `checkpoint_id` when they exceed
/// `threshold` bytes; `owner` names the file (task and operator). Returns the bytes written.
pub fn spill(
    list: &mut OperatorListSnapshot,
    storage: &CheckpointStorage,
    checkpoint_id: u64,
    owner: &str,
    threshold: u64,
) -> Result<u64> {
    if list.file.is_some() || inline_bytes(list) <= threshold {
        return Ok(0);
    }
    let file_name = format!("{owner}-{}.list", list.name);
    let mut bytes = Vec::with_capacity(inline_bytes(list) as usize + 8 * list.entries.len() + MAGIC.len() + 1);
    bytes.extend_from_slice(MAGIC);
    bytes.push(VERSION);
    for entry in &list.entries {
        bytes.extend_from_slice(&(entry.len() as u64).to_le_bytes());
        bytes.extend_from_slice(entry);
    }
    let size = bytes.len() as u64;
    let checksum = xxhash_rust::xxh3::xxh3_64(&bytes);
    let target = storage.checkpoint_dir(checkpoint_id).join(&file_name);
    target.put(bytes).map_err(|e| OperatorError::State(format!("checkpoint storage: {e}")))?;
    list.file =
        Some(StateFile { name: file_name.clone(), path: format!("chk-{checkpoint_id}/{file_name}"), size, checksum });
    list.entries.clear();
    Ok(size)
}

/// The state an operator starts from: the lists of `restore` (list files read and
/// checked, so this blocks), and whether and which checkpoint the job restored.
pub fn state_init(
    restore: Option<&OperatorRestore>,
    restored: bool,
    restored_checkpoint: u64,
    uid: &str,
) -> Result<StateInit> {
    let mut init = StateInit { restored, restored_checkpoint, operator_uid: uid.to_string(), ..Default::default() };
    for list in restore.iter().flat_map(|r| &r.lists) {
        let entries = init.lists.entry(list.name.clone()).or_default();
        for part in &list.parts {
            entries.extend(read_part(part)?);
        }
    }
    Ok(init)
}

/// The entries `part` gives: inline, or read from its file at its positions.
fn read_part(part: &OperatorListPart) -> Result<Vec<Vec<u8>>> {
    let Some(file) = &part.file else { return Ok(part.entries.clone()) };
    let stored = Location::parse(&file.path).map_err(|e| OperatorError::State(format!("checkpoint storage: {e}")))?;
    let bytes = stored.read().map_err(|e| OperatorError::State(format!("cannot read checkpoint file: {e}")))?;
    let damaged = |what: &str| {
        OperatorError::State(format!("checkpoint file '{}' is damaged: {what}; restore an older checkpoint", file.path))
    };
    if bytes.len() as u64 != file.size {
        return Err(damaged(&format!("it has {} bytes, the checkpoint recorded {}", bytes.len(), file.size)));
    }
    if xxhash_rust::xxh3::xxh3_64(&bytes) != file.checksum {
        return Err(damaged("its checksum does not match the checkpoint's"));
    }
    if bytes.len() < MAGIC.len() + 1 || &bytes[..MAGIC.len()] != MAGIC {
        return Err(damaged("it is not a list file"));
    }
    if bytes[MAGIC.len()] != VERSION {
        return Err(damaged(&format!("list file version {} is not {VERSION}", bytes[MAGIC.len()])));
    }
    let mut rest = &bytes[MAGIC.len() + 1..];
    let mut entries = Vec::new();
    let step = part.step.max(1);
    let mut position = 0u64;
    while !rest.is_empty() {
        let (len, tail) = rest.split_at_checked(8).ok_or_else(|| damaged("an entry's length is cut off"))?;
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        let (entry, tail) = tail.split_at_checked(len).ok_or_else(|| damaged("an entry is cut off"))?;
        if position >= part.first && (position - part.first).is_multiple_of(step) {
            entries.push(entry.to_vec());
        }
        rest = tail;
        position += 1;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::OperatorListRestore;

    fn list(entries: Vec<Vec<u8>>) -> OperatorListSnapshot {
        inline(OperatorList { name: "held".into(), distribution: Distribution::Split, entries })
    }

    #[test]
    fn small_lists_stay_inline_and_large_ones_are_read_back_from_their_file() {
        let dir = tempfile::tempdir().unwrap();
        let storage = CheckpointStorage { job_dir: Location::local(dir.path()) };
        let mut small = list(vec![vec![1; 10]]);
        assert_eq!(spill(&mut small, &storage, 3, "t-0-op", 100).unwrap(), 0);
        assert_eq!(small.entries.len(), 1, "under the threshold: inline");

        let entries: Vec<Vec<u8>> = (0..7u8).map(|i| vec![i; 30 + i as usize]).collect();
        let mut large = list(entries.clone());
        let written = spill(&mut large, &storage, 3, "t-0-op", 100).unwrap();
        assert!(large.entries.is_empty() && large.entry_count == 7);
        let mut file = large.file.clone().unwrap();
        assert_eq!(written, file.size);
        assert!(dir.path().join(&file.path).exists());
        file.path = dir.path().join(&file.path).display().to_string();

        let restore = |first, step, file: StateFile| OperatorRestore {
            uid: "op".into(),
            lists: vec![OperatorListRestore {
                name: "held".into(),
                parts: vec![
                    OperatorListPart { entries: vec![b"inline".to_vec()], ..Default::default() },
                    OperatorListPart { file: Some(file), first, step, ..Default::default() },
                ],
            }],
            keyed: Vec::new(),
        };
        let init = state_init(Some(&restore(1, 3, file.clone())), true, 3, "op").unwrap();
        let expected: Vec<Vec<u8>> =
            std::iter::once(b"inline".to_vec()).chain([1, 4].iter().map(|&i| entries[i].clone())).collect();
        assert_eq!(init.list("held"), expected.as_slice(), "positions 1 and 4 of the file, after the inline part");
        assert!(init.entries().is_empty(), "no default list was restored");

        // A damaged file is refused, not half read.
        let mut bytes = std::fs::read(&file.path).unwrap();
        bytes[20] ^= 0xff;
        std::fs::write(&file.path, &bytes).unwrap();
        let error = state_init(Some(&restore(0, 1, file)), true, 3, "op").unwrap_err().to_string();
        assert!(error.contains("checksum does not match"), "{error}");
    }
}
