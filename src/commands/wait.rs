//! `sluice wait JOB --for running|finished|checkpoints=N --timeout D`: blocks until the
//! job gets there, so scripts and tests need no sleep-and-poll loops. Exits 0 when the
//! condition holds, 1 with the reason when the job ends without it or the time runs out.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use sluice_proto::JobState;

use super::client::{connect, fetch_status, state_word};
use crate::WaitArgs;

/// What `--for` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    Running,
    Finished,
    Checkpoints(u64),
}

impl Condition {
    fn parse(text: &str) -> Result<Self> {
        let text = text.trim().to_ascii_lowercase();
        Ok(match text.as_str() {
            "running" => Condition::Running,
            "finished" => Condition::Finished,
            _ => match text.strip_prefix("checkpoints=").map(str::parse::<u64>) {
                Some(Ok(n)) => Condition::Checkpoints(n),
                _ => bail!(
                    "--for '{text}' is not a condition; use running, finished or checkpoints=N (e.g. checkpoints=3)"
                ),
            },
        })
    }

    fn describe(self) -> String {
        match self {
            Condition::Running => "running".into(),
            Condition::Finished => "finished".into(),
            Condition::Checkpoints(n) => format!("{n} completed checkpoint(s)"),
        }
    }
}

/// `sluice wait`.
pub async fn wait(args: WaitArgs) -> Result<ExitCode> {
    let condition = Condition::parse(&args.condition)?;
    let timeout = sluice_core::options::parse_duration(&args.timeout)
        .map_err(|e| anyhow::anyhow!("--timeout '{}': {e}", args.timeout))?;
    let mut client = connect(&args.cluster.jobmanager).await?;
    let started = Instant::now();
    loop {
        let status = fetch_status(&mut client, &args.job).await?;
        let state = JobState::try_from(status.state).unwrap_or(JobState::Created);
        let completed = status.checkpoints.as_ref().map_or(0, |c| c.completed);
        let met = match condition {
            Condition::Running => state == JobState::Running,
            Condition::Finished => state == JobState::Finished,
            Condition::Checkpoints(n) => completed >= n,
        };
        if met {
            println!("{}", state_word(status.state));
            return Ok(ExitCode::SUCCESS);
        }
        if matches!(state, JobState::Finished | JobState::Failed | JobState::Canceled) {
            let why = if status.message.is_empty() { String::new() } else { format!(": {}", status.message) };
            bail!(
                "job {} ended {}{why} without being {} ({completed} checkpoint(s) completed)",
                args.job,
                state_word(status.state),
                condition.describe()
            );
        }
        if started.elapsed() >= timeout {
            bail!(
                "job {} is {} after {}, not yet {} ({completed} checkpoint(s) completed); wait longer with --timeout",
                args.job,
                state_word(status.state),
                args.timeout,
                condition.describe()
            );
        }
        tokio::time::sleep(Duration::from_millis(100).min(timeout.saturating_sub(started.elapsed()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_and_mistakes_say_what_is_accepted() {
        assert_eq!(Condition::parse("RUNNING").unwrap(), Condition::Running);
        assert_eq!(Condition::parse("checkpoints=3").unwrap(), Condition::Checkpoints(3));
        let e = Condition::parse("checkpoints=many").unwrap_err().to_string();
        assert!(e.contains("use running, finished or checkpoints=N"), "{e}");
    }
}
