//! `sluice sql`: an interactive SQL shell with history and multi-line statements. DDL
//! builds a session catalog; each INSERT, query or statement set becomes a job, submitted
//! to `--jobmanager` or run on an embedded mini-cluster started on first use.

use std::process::ExitCode;

use anyhow::Result;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;
use sluice_core::secrets::SecretSources;
use sluice_proto::SubmitJobRequest;
use sluice_sql::parser::parse_script;
use sluice_sql::{Outcome, PlanOptions, Session};

use super::client::{connect, JmClient};
use super::embedded::{wait_for_job, EmbeddedCluster};
use crate::ShellArgs;

const HELP: &str = "Statements end with ';' and may span lines. CREATE TABLE / VIEW / MODEL, DROP, \
ALTER MODEL, SHOW TABLES / VIEWS / MODELS, DESCRIBE, SHOW CREATE, SET, RESET, EXPLAIN, INSERT INTO, \
SELECT and statement sets work as in Flink SQL. Type 'quit;' to leave.";

/// True when `buffer` holds complete statements: it ends with ';' outside any string or
/// comment, and a statement set has reached its END.
pub fn is_complete(buffer: &str) -> bool {
    let mut in_string = false;
    let mut in_line_comment = false;
    let mut in_block_comment = false;
    let mut last = None;
    let chars: Vec<char> = buffer.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if in_line_comment {
            in_line_comment = c != '\n';
        } else if in_block_comment {
            if c == '*' && next == Some('/') {
                in_block_comment = false;
                i += 1;
            }
        } else if in_string {
            if c == '\'' {
                in_string = false;
            }
        } else if c == '\'' {
            in_string = true;
            last = Some(c);
        } else if c == '-' && next == Some('-') {
            in_line_comment = true;
        } else if c == '/' && next == Some('*') {
            in_block_comment = true;
        } else if !c.is_whitespace() {
            last = Some(c);
        }
        i += 1;
    }
    if in_string || in_block_comment || last != Some(';') {
        return false;
    }
    let upper = buffer.to_ascii_uppercase();
    let opens = upper.matches("STATEMENT SET").count();
    opens == 0 || upper.trim_end().trim_end_matches(';').trim_end().ends_with("END")
}

struct Target {
    remote: Option<String>,
    embedded: Option<EmbeddedCluster>,
    parallelism: u32,
}

impl Target {
    async fn client(&mut self) -> Result<(JmClient, bool)> {
        if let Some(address) = &self.remote {
            return Ok((connect(address).await?, false));
        }
        if self.embedded.is_none() {
            eprintln!("starting an embedded cluster ...");
            self.embedded = Some(
                EmbeddedCluster::start(1, self.parallelism.max(4), SecretSources::environment(), None, None).await?,
            );
        }
        let address = &self.embedded.as_ref().expect("started above").address;
        Ok((connect(address).await?, true))
    }
}

/// `sluice sql`.
pub async fn shell(args: ShellArgs) -> Result<ExitCode> {
    let mut editor = DefaultEditor::new()?;
    let history = std::env::var_os("HOME").map(|h| std::path::PathBuf::from(h).join(".sluice_history"));
    if let Some(path) = &history {
        let _ = editor.load_history(path);
    }
    let mut session = Session::new(PlanOptions { default_parallelism: args.parallelism, job_name: None });
    let mut target =
        Target { remote: args.jobmanager.clone(), embedded: None, parallelism: args.parallelism.unwrap_or(1) };
    println!("Sluice SQL shell. {HELP}");
    let mut buffer = String::new();
    loop {
        let prompt = if buffer.is_empty() { "sluice> " } else { "     -> " };
        let line = match editor.readline(prompt) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => {
                buffer.clear();
                continue;
            }
            Err(ReadlineError::Eof) => break,
            Err(e) => return Err(e.into()),
        };
        buffer.push_str(&line);
        buffer.push('\n');
        if !is_complete(&buffer) {
            continue;
        }
        let text = std::mem::take(&mut buffer);
        let _ = editor.add_history_entry(text.trim());
        let command = text.trim().trim_end_matches(';').trim().to_ascii_lowercase();
        match command.as_str() {
            "quit" | "exit" => break,
            "help" => {
                println!("{HELP}");
                continue;
            }
            _ => {}
        }
        if let Err(e) = execute(&mut session, &mut target, &text).await {
            eprintln!("[ERROR] {e:#}");
        }
    }
    if let Some(path) = &history {
        let _ = editor.save_history(path);
    }
    if let Some(cluster) = target.embedded.take() {
        cluster.stop().await;
    }
    Ok(ExitCode::SUCCESS)
}

async fn execute(session: &mut Session, target: &mut Target, text: &str) -> Result<()> {
    let statements = parse_script(text).map_err(|e| anyhow::anyhow!("{}", e.render(text)))?;
    for statement in statements {
        match session.execute(statement).map_err(|e| anyhow::anyhow!("{}", e.render(text)))? {
            Outcome::Done(message) => println!("[INFO] {message}"),
            Outcome::Text(output) => println!("{}", output.trim_end()),
            Outcome::Job(plan) => {
                let (mut client, embedded) = target.client().await?;
                let job_id = client
                    .submit_job(SubmitJobRequest { graph: Some(plan.graph), from_savepoint: String::new() })
                    .await?
                    .into_inner()
                    .job_id;
                println!("[INFO] submitted job {job_id}");
                if embedded {
                    // Rows of a query print here; wait so the prompt comes after them.
                    wait_for_job(&mut client, &job_id).await?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::is_complete;

    #[test]
    fn statements_complete_at_a_semicolon_outside_strings_and_comments() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1;  -- trailing comment\n"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT 1 -- ;\n"));
        assert!(!is_complete("CREATE TABLE t (\n  a INT"));
        assert!(!is_complete("BEGIN STATEMENT SET;\nINSERT INTO a SELECT 1;"));
        assert!(is_complete("BEGIN STATEMENT SET;\nINSERT INTO a SELECT 1;\nEND;"));
    }
}
