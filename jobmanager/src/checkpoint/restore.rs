//! Assigning a checkpoint's state to the subtasks of a job, at the job's current
//! parallelism (a pure function). Operators are matched by uid, their lists by name. A
//! list's entries are dealt round-robin over the old subtasks' entries in order (split) or
//! given to every subtask (union); entries stored in a list file are handed over as the
//! file and the positions to read. Keyed state goes by key group: each subtask gets the
//! handles overlapping the key groups it owns.

use sluice_storage::Location;

use sluice_core::keys::key_group_range;
use sluice_proto::{
    CheckpointMetadata, JobGraph, KeyedStateHandle, ListDistribution, OperatorListPart, OperatorListRestore,
    OperatorListSnapshot, OperatorRestore, OperatorSnapshot, StateFile, TaskRestore,
};

/// The state of every subtask of `graph` from `metadata`, whose file paths are relative
/// to `base`; paths in the result are absolute.
pub fn assign_state(
    metadata: &CheckpointMetadata,
    base: &Location,
    graph: &JobGraph,
    max_parallelism: u32,
) -> Result<Vec<TaskRestore>, String> {
    let known: std::collections::BTreeSet<&str> =
        graph.vertices.iter().flat_map(|v| &v.operators).map(|o| o.uid.as_str()).collect();
    for v in &metadata.vertices {
        for uid in &v.operator_uids {
            let has_state = v
                .subtasks
                .iter()
                .flat_map(|t| &t.operators)
                .any(|o| &o.uid == uid && (o.lists.iter().any(|l| entry_count(l) > 0) || o.keyed.is_some()));
            if has_state && !known.contains(uid.as_str()) {
                return Err(format!(
                    "checkpoint {} holds state of operator '{uid}', which this job does not have: \
                     restore it with the SQL it was taken from",
                    metadata.checkpoint_id
                ));
            }
        }
    }
    let mut restores = Vec::new();
    for vertex in &graph.vertices {
        let p = vertex.parallelism;
        let mut per_subtask: Vec<TaskRestore> =
            (0..p).map(|s| TaskRestore { vertex_id: vertex.id, subtask: s, operators: Vec::new() }).collect();
        for op in &vertex.operators {
            // The operator's snapshots in old subtask order.
            let snapshots: Vec<_> = metadata
                .vertices
                .iter()
                .flat_map(|v| &v.subtasks)
                .flat_map(|t| &t.operators)
                .filter(|o| o.uid == op.uid)
                .collect();
            if snapshots.is_empty() {
                continue;
            }
            let handles: Vec<&KeyedStateHandle> = snapshots.iter().filter_map(|o| o.keyed.as_ref()).collect();
            if let Some(h) = handles.iter().find(|h| h.max_parallelism != max_parallelism) {
                return Err(format!(
                    "checkpoint {} was taken with 'pipeline.max-parallelism' = {} but the job has {max_parallelism}; \
                     it must not change across a restore",
                    metadata.checkpoint_id, h.max_parallelism
                ));
            }
            for (s, restore) in per_subtask.iter_mut().enumerate() {
                let lists = list_names(&snapshots)
                    .into_iter()
                    .map(|name| OperatorListRestore {
                        name: name.to_string(),
                        parts: list_parts(&snapshots, name, s as u64, p.into(), base),
                    })
                    .collect();
                let (start, end) = key_group_range(s as u32, max_parallelism, p);
                let keyed = handles
                    .iter()
                    .filter(|h| h.key_group_start < end && start < h.key_group_end)
                    .map(|h| {
                        let mut h = (*h).clone();
                        for f in &mut h.files {
                            f.path = base.join(&f.path).to_string();
                        }
                        h
                    })
                    .collect();
                restore.operators.push(OperatorRestore { uid: op.uid.clone(), lists, keyed });
            }
        }
        restores.extend(per_subtask);
    }
    Ok(restores)
}

/// How many entries `list` holds, inline or in its file.
fn entry_count(list: &OperatorListSnapshot) -> u64 {
    if list.file.is_some() {
        list.entry_count
    } else {
        list.entries.len() as u64
    }
}

/// The names of the operator's lists, in the order first seen.
fn list_names<'a>(snapshots: &[&'a OperatorSnapshot]) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for list in snapshots.iter().flat_map(|o| &o.lists) {
        if !names.contains(&list.name.as_str()) {
            names.push(&list.name);
        }
    }
    names
}

/// What subtask `subtask` of `parallelism` gets of list `name`: for a split list, the
/// entries whose position in the old subtasks' concatenated lists is `subtask` modulo
/// `parallelism`; for a union list, all of them.
fn list_parts(
    snapshots: &[&OperatorSnapshot],
    name: &str,
    subtask: u64,
    parallelism: u64,
    base: &Location,
) -> Vec<OperatorListPart> {
    let lists: Vec<&OperatorListSnapshot> =
        snapshots.iter().flat_map(|o| &o.lists).filter(|l| l.name == name).collect();
    let union = lists.iter().any(|l| l.distribution == ListDistribution::Union as i32);
    let mut parts = Vec::new();
    let mut offset = 0;
    for list in lists {
        let count = entry_count(list);
        let (first, step) =
            if union { (0, 1) } else { ((subtask + parallelism - offset % parallelism) % parallelism, parallelism) };
        offset += count;
        if first >= count {
            continue;
        }
        parts.push(match &list.file {
            Some(file) => OperatorListPart {
                entries: Vec::new(),
                file: Some(StateFile { path: base.join(&file.path).to_string(), ..file.clone() }),
                first,
                step,
            },
            None => OperatorListPart {
                entries: list.entries.iter().skip(first as usize).step_by(step as usize).cloned().collect(),
                file: None,
                first: 0,
                step: 1,
            },
        });
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::{OperatorSpec, TaskSnapshot, Vertex, VertexSnapshot};

    fn inline(distribution: ListDistribution, entries: Vec<Vec<u8>>) -> OperatorListSnapshot {
        OperatorListSnapshot {
            name: "default".into(),
            distribution: distribution as i32,
            entry_count: entries.len() as u64,
            entries,
            file: None,
        }
    }

    /// The inline entries of list `name` restored to `operator`.
    fn inline_entries(operator: &OperatorRestore, name: &str) -> Vec<Vec<u8>> {
        operator
            .lists
            .iter()
            .filter(|l| l.name == name)
            .flat_map(|l| &l.parts)
            .flat_map(|p| p.entries.clone())
            .collect()
    }

    fn graph(parallelism: u32) -> JobGraph {
        let op = |uid: &str| OperatorSpec { name: uid.into(), uid: uid.into(), kind: None };
        JobGraph {
            vertices: vec![
                Vertex { id: 0, name: "src".into(), parallelism, operators: vec![op("0-src")] },
                Vertex { id: 1, name: "agg".into(), parallelism, operators: vec![op("1-agg"), op("2-sink")] },
            ],
            ..Default::default()
        }
    }

    fn checkpoint() -> CheckpointMetadata {
        let handle = |start, end| KeyedStateHandle {
            key_group_start: start,
            key_group_end: end,
            max_parallelism: 128,
            files: vec![StateFile { name: "1.sst".into(), path: format!("shared/{start}.sst"), size: 1, checksum: 0 }],
        };
        let subtask = |s: u32| TaskSnapshot {
            operators: vec![OperatorSnapshot {
                uid: "0-src".into(),
                lists: vec![inline(ListDistribution::Split, vec![vec![s as u8]])],
                ..Default::default()
            }],
        };
        let agg = |start, end, file: u8| TaskSnapshot {
            operators: vec![
                OperatorSnapshot { uid: "1-agg".into(), keyed: Some(handle(start, end)), ..Default::default() },
                OperatorSnapshot {
                    uid: "2-sink".into(),
                    lists: vec![inline(ListDistribution::Union, vec![vec![file]])],
                    keyed: None,
                },
            ],
        };
        CheckpointMetadata {
            checkpoint_id: 7,
            vertices: vec![
                VertexSnapshot {
                    vertex_id: 0,
                    parallelism: 2,
                    operator_uids: vec!["0-src".into()],
                    subtasks: vec![subtask(0), subtask(1)],
                },
                VertexSnapshot {
                    vertex_id: 1,
                    parallelism: 2,
                    operator_uids: vec!["1-agg".into(), "2-sink".into()],
                    subtasks: vec![agg(0, 64, 10), agg(64, 128, 11)],
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn rescaling_splits_lists_unions_commits_and_routes_key_groups() {
        let restores = assign_state(&checkpoint(), &Location::local("/store/job"), &graph(3), 128).unwrap();
        assert_eq!(restores.len(), 6);
        let find = |v: u32, s: u32, uid: &str| {
            restores
                .iter()
                .find(|r| r.vertex_id == v && r.subtask == s)
                .unwrap()
                .operators
                .iter()
                .find(|o| o.uid == uid)
                .unwrap()
                .clone()
        };
        assert_eq!(inline_entries(&find(0, 0, "0-src"), "default"), vec![vec![0]]);
        assert_eq!(inline_entries(&find(0, 1, "0-src"), "default"), vec![vec![1]]);
        assert!(inline_entries(&find(0, 2, "0-src"), "default").is_empty(), "more subtasks than splits");
        assert_eq!(
            inline_entries(&find(1, 2, "2-sink"), "default"),
            vec![vec![10], vec![11]],
            "union state goes to all"
        );
        // New ranges at 3: [0,43) [43,86) [86,128).
        assert_eq!(find(1, 0, "1-agg").keyed.len(), 1);
        assert_eq!(find(1, 1, "1-agg").keyed.len(), 2, "subtask 1 overlaps both old ranges");
        assert_eq!(find(1, 2, "1-agg").keyed[0].files[0].path, "/store/job/shared/64.sst");
    }

    #[test]
    fn unknown_operators_and_changed_key_groups_are_refused() {
        let mut other = graph(2);
        other.vertices[1].operators[0].uid = "1-different".into();
        let error = assign_state(&checkpoint(), &Location::local("/"), &other, 128).unwrap_err();
        assert!(error.contains("operator '1-agg'"), "{error}");
        let error = assign_state(&checkpoint(), &Location::local("/"), &graph(2), 256).unwrap_err();
        assert!(error.contains("pipeline.max-parallelism"), "{error}");
    }

    /// Entries in a list file are dealt as if they were inline: each new subtask reads the
    /// file at the positions that continue the round-robin over the old subtasks' lists.
    #[test]
    fn list_files_continue_the_round_robin_and_named_lists_keep_their_distribution() {
        let file = StateFile { name: "list".into(), path: "chk-7/0-src-1.list".into(), size: 40, checksum: 9 };
        let spilled = OperatorListSnapshot {
            name: "default".into(),
            distribution: ListDistribution::Split as i32,
            entries: Vec::new(),
            file: Some(file),
            entry_count: 4,
        };
        let commits =
            OperatorListSnapshot { name: "commits".into(), ..inline(ListDistribution::Union, vec![vec![99]]) };
        let mut metadata = checkpoint();
        metadata.vertices[0].subtasks[0].operators[0].lists =
            vec![inline(ListDistribution::Split, vec![vec![0], vec![1], vec![2]])];
        metadata.vertices[0].subtasks[1].operators[0].lists = vec![spilled, commits];
        let restores = assign_state(&metadata, &Location::local("/store/job"), &graph(2), 128).unwrap();
        let source =
            |s: u32| restores.iter().find(|r| r.vertex_id == 0 && r.subtask == s).unwrap().operators[0].clone();
        // Global positions: inline 0, 1, 2, then the file's 3, 4, 5, 6.
        assert_eq!(inline_entries(&source(0), "default"), vec![vec![0], vec![2]]);
        assert_eq!(inline_entries(&source(1), "default"), vec![vec![1]]);
        let file_part = |s: u32| {
            let op = source(s);
            let list = op.lists.iter().find(|l| l.name == "default").unwrap().clone();
            let part = list.parts.into_iter().find(|p| p.file.is_some()).unwrap();
            (part.file.unwrap().path, part.first, part.step)
        };
        assert_eq!(file_part(0), ("/store/job/chk-7/0-src-1.list".to_string(), 1, 2), "positions 4 and 6");
        assert_eq!(file_part(1), ("/store/job/chk-7/0-src-1.list".to_string(), 0, 2), "positions 3 and 5");
        assert_eq!(inline_entries(&source(0), "commits"), vec![vec![99]]);
        assert_eq!(inline_entries(&source(1), "commits"), vec![vec![99]], "a union list goes to every subtask");
    }
}
