//! Slot placement, as a pure function. A job needs as many slots as its largest vertex
//! parallelism: slot i holds subtask i of every vertex (slot sharing, as in Flink), so a
//! chain of vertices with equal parallelism keeps its data exchange inside each slot's
//! task manager where the partitioning allows. Slots are spread across task managers.

/// Free slots of one task manager, in registration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeSlots {
    /// Task manager id.
    pub task_manager: String,
    /// Slots not held by any job.
    pub free: u32,
}

/// Chooses a task manager for each of `required` slots, spreading them: each slot goes to
/// the task manager with the most free slots left (the earliest registered on a tie).
/// Returns `None` when there are not enough free slots.
pub fn place(required: u32, candidates: &[FreeSlots]) -> Option<Vec<String>> {
    let total: u64 = candidates.iter().map(|c| u64::from(c.free)).sum();
    if u64::from(required) > total {
        return None;
    }
    let mut free: Vec<u32> = candidates.iter().map(|c| c.free).collect();
    let mut placement = Vec::with_capacity(required as usize);
    for _ in 0..required {
        let (index, _) =
            free.iter().enumerate().max_by(|(ia, a), (ib, b)| a.cmp(b).then(ib.cmp(ia))).filter(|(_, f)| **f > 0)?;
        free[index] -= 1;
        placement.push(candidates[index].task_manager.clone());
    }
    Some(placement)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tms(free: &[u32]) -> Vec<FreeSlots> {
        free.iter().enumerate().map(|(i, &f)| FreeSlots { task_manager: format!("tm-{}", i + 1), free: f }).collect()
    }

    #[test]
    fn spreads_across_task_managers() {
        assert_eq!(place(4, &tms(&[2, 2])).unwrap(), vec!["tm-1", "tm-2", "tm-1", "tm-2"]);
        assert_eq!(place(3, &tms(&[1, 4])).unwrap(), vec!["tm-2", "tm-2", "tm-2"]);
        assert_eq!(place(4, &tms(&[1, 4])).unwrap(), vec!["tm-2", "tm-2", "tm-2", "tm-1"]);
    }

    #[test]
    fn too_few_slots_places_nothing() {
        assert_eq!(place(5, &tms(&[2, 2])), None);
        assert_eq!(place(1, &tms(&[])), None);
        assert_eq!(place(0, &tms(&[])), Some(vec![]));
    }
}
