//! Assigning a checkpoint's state to the subtasks of a job, at the job's current
//! parallelism (a pure function). Operators are matched by uid. Operator list state is
//! dealt round-robin (split) or given to every subtask (union); keyed state goes by key
//! group: each subtask gets the handles overlapping the key groups it owns.

use std::path::Path;

use sluice_operators::keys::key_group_range;
use sluice_proto::{CheckpointMetadata, JobGraph, KeyedStateHandle, ListDistribution, OperatorRestore, TaskRestore};

/// The state of every subtask of `graph` from `metadata`, whose file paths are relative
/// to `base`; paths in the result are absolute.
pub fn assign_state(metadata: &CheckpointMetadata, base: &Path, graph: &JobGraph, max_parallelism: u32) -> Result<Vec<TaskRestore>, String> {
    let known: std::collections::BTreeSet<&str> =
        graph.vertices.iter().flat_map(|v| &v.operators).map(|o| o.uid.as_str()).collect();
    for v in &metadata.vertices {
        for uid in &v.operator_uids {
            let has_state = v.subtasks.iter().flat_map(|t| &t.operators).any(|o| &o.uid == uid && (!o.list_state.is_empty() || o.keyed.is_some()));
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
            let union = snapshots.iter().any(|o| o.distribution == ListDistribution::Union as i32);
            let entries: Vec<&Vec<u8>> = snapshots.iter().flat_map(|o| &o.list_state).collect();
            let handles: Vec<&KeyedStateHandle> = snapshots.iter().filter_map(|o| o.keyed.as_ref()).collect();
            if let Some(h) = handles.iter().find(|h| h.max_parallelism != max_parallelism) {
                return Err(format!(
                    "checkpoint {} was taken with 'pipeline.max-parallelism' = {} but the job has {max_parallelism}; \
                     it must not change across a restore",
                    metadata.checkpoint_id, h.max_parallelism
                ));
            }
            for (s, restore) in per_subtask.iter_mut().enumerate() {
                let list_state = if union {
                    entries.iter().map(|e| e.to_vec()).collect()
                } else {
                    entries.iter().skip(s).step_by(p as usize).map(|e| e.to_vec()).collect()
                };
                let (start, end) = key_group_range(s as u32, max_parallelism, p);
                let keyed = handles
                    .iter()
                    .filter(|h| h.key_group_start < end && start < h.key_group_end)
                    .map(|h| {
                        let mut h = (*h).clone();
                        for f in &mut h.files {
                            f.path = base.join(&f.path).display().to_string();
                        }
                        h
                    })
                    .collect();
                restore.operators.push(OperatorRestore { uid: op.uid.clone(), list_state, keyed });
            }
        }
        restores.extend(per_subtask);
    }
    Ok(restores)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::{OperatorSnapshot, OperatorSpec, StateFile, TaskSnapshot, Vertex, VertexSnapshot};

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
            operators: vec![OperatorSnapshot { uid: "0-src".into(), list_state: vec![vec![s as u8]], ..Default::default() }],
        };
        let agg = |start, end, file: u8| TaskSnapshot {
            operators: vec![
                OperatorSnapshot { uid: "1-agg".into(), keyed: Some(handle(start, end)), ..Default::default() },
                OperatorSnapshot {
                    uid: "2-sink".into(),
                    list_state: vec![vec![file]],
                    distribution: ListDistribution::Union as i32,
                    keyed: None,
                },
            ],
        };
        CheckpointMetadata {
            checkpoint_id: 7,
            vertices: vec![
                VertexSnapshot { vertex_id: 0, parallelism: 2, operator_uids: vec!["0-src".into()], subtasks: vec![subtask(0), subtask(1)] },
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
        let restores = assign_state(&checkpoint(), Path::new("/store/job"), &graph(3), 128).unwrap();
        assert_eq!(restores.len(), 6);
        let find = |v: u32, s: u32, uid: &str| {
            restores.iter().find(|r| r.vertex_id == v && r.subtask == s).unwrap().operators.iter().find(|o| o.uid == uid).unwrap().clone()
        };
        assert_eq!(find(0, 0, "0-src").list_state, vec![vec![0]]);
        assert_eq!(find(0, 1, "0-src").list_state, vec![vec![1]]);
        assert!(find(0, 2, "0-src").list_state.is_empty(), "more subtasks than splits");
        assert_eq!(find(1, 2, "2-sink").list_state, vec![vec![10], vec![11]], "union state goes to all");
        // New ranges at 3: [0,43) [43,86) [86,128).
        assert_eq!(find(1, 0, "1-agg").keyed.len(), 1);
        assert_eq!(find(1, 1, "1-agg").keyed.len(), 2, "subtask 1 overlaps both old ranges");
        assert_eq!(find(1, 2, "1-agg").keyed[0].files[0].path, "/store/job/shared/64.sst");
    }

    #[test]
    fn unknown_operators_and_changed_key_groups_are_refused() {
        let mut other = graph(2);
        other.vertices[1].operators[0].uid = "1-different".into();
        let error = assign_state(&checkpoint(), Path::new("/"), &other, 128).unwrap_err();
        assert!(error.contains("operator '1-agg'"), "{error}");
        let error = assign_state(&checkpoint(), Path::new("/"), &graph(2), 256).unwrap_err();
        assert!(error.contains("pipeline.max-parallelism"), "{error}");
    }
}
