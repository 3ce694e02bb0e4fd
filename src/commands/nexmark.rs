//! `sluice nexmark generate`: writes the events a `nexmark` table with the same options
//! produces to JSON-lines files in the layout of Flink's Nexmark event table, so that
//! another engine (Flink reading them with its `filesystem` connector) gets exactly the
//! same input.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};

use anyhow::{bail, Context};
use sluice_connectors::nexmark::generator::Generator;
use sluice_connectors::nexmark::{generator_config, json::flink_event};
use sluice_core::options::Options;

use crate::NexmarkGenerateArgs;

/// Writes `args.events` events into `args.files` files under `args.out`: event `n` goes
/// to file `n % files`, so each file is in event-time order.
pub fn generate(args: NexmarkGenerateArgs) -> anyhow::Result<std::process::ExitCode> {
    let mut values = BTreeMap::new();
    for pair in &args.options {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("--option '{pair}': write KEY=VALUE, with the nexmark table's option names (e.g. first-event.rate=1000000)");
        };
        values.insert(key.trim().to_string(), value.trim().to_string());
    }
    values.insert("events.num".into(), args.events.to_string());
    let mut options = Options::new("sluice nexmark generate", &values);
    let config = generator_config(&mut options)?;
    options.finish()?;
    let generator = Generator::new(config);
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create {}", args.out.display()))?;
    let files = args.files.max(1);
    let mut writers = (0..files)
        .map(|i| {
            let path = args.out.join(format!("events-{i:03}.json"));
            File::create(&path).map(BufWriter::new).with_context(|| format!("cannot create {}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for n in 0..args.events {
        let writer = &mut writers[(n % files as u64) as usize];
        serde_json::to_writer(&mut *writer, &flink_event(&generator.event(n)))?;
        writer.write_all(b"\n")?;
    }
    for mut writer in writers {
        writer.flush()?;
    }
    println!("wrote {} events to {} file(s) in {}", args.events, files, args.out.display());
    Ok(std::process::ExitCode::SUCCESS)
}
