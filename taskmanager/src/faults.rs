//! Fault and pacing switches for Sluice's own tests, read from the environment. They exist
//! only with the `test-faults` feature, which the workspace's tests enable; release builds
//! have none.

#[cfg(feature = "test-faults")]
use std::sync::OnceLock;
use std::time::Duration;

/// `SLUICE_TEST_SOURCE_PACE=ROWS:MILLIS`: sources emit at most ROWS rows per batch and pause
/// MILLIS after each, so short test jobs live through several checkpoints.
#[cfg(feature = "test-faults")]
pub fn source_pace() -> Option<(usize, Duration)> {
    static PACE: OnceLock<Option<(usize, Duration)>> = OnceLock::new();
    *PACE.get_or_init(|| {
        let raw = std::env::var("SLUICE_TEST_SOURCE_PACE").ok()?;
        let (rows, millis) = raw.split_once(':')?;
        Some((rows.trim().parse().ok()?, Duration::from_millis(millis.trim().parse().ok()?)))
    })
}

/// Without the `test-faults` feature there is no pacing.
#[cfg(not(feature = "test-faults"))]
pub fn source_pace() -> Option<(usize, Duration)> {
    None
}
