//! Checking job graphs a process receives (the planner builds them).

use sluice_proto::{JobGraph, Partitioning};

/// Checks the structure of a job graph received from elsewhere: vertex ids are dense,
/// parallelism is positive, edges join existing vertices forward, and forward edges join
/// equal parallelisms. Returns what is wrong.
pub fn check(graph: &JobGraph) -> std::result::Result<(), String> {
    if graph.vertices.is_empty() {
        return Err("the job has no operators".into());
    }
    for (i, v) in graph.vertices.iter().enumerate() {
        if v.id as usize != i {
            return Err(format!("vertex {} is listed at position {i}", v.id));
        }
        if v.parallelism == 0 {
            return Err(format!("vertex '{}' has parallelism 0", v.name));
        }
        if v.operators.is_empty() {
            return Err(format!("vertex '{}' has no operators", v.name));
        }
    }
    for e in &graph.edges {
        let (Some(from), Some(to)) =
            (graph.vertices.get(e.source_vertex as usize), graph.vertices.get(e.target_vertex as usize))
        else {
            return Err(format!("edge {} -> {} names a missing vertex", e.source_vertex, e.target_vertex));
        };
        if e.source_vertex >= e.target_vertex {
            return Err(format!("edge {} -> {} goes backwards", e.source_vertex, e.target_vertex));
        }
        if e.partitioning == Partitioning::Forward as i32 && from.parallelism != to.parallelism {
            return Err(format!("forward edge '{}' -> '{}' joins different parallelisms", from.name, to.name));
        }
    }
    Ok(())
}
