//! What the stub LLM server does with a request: how long it waits, which failure it
//! injects, and what it answers.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use rand::Rng;

/// How long the stub waits before answering.
#[derive(Debug, Clone, PartialEq)]
pub enum Latency {
    /// Always the same.
    Fixed(Duration),
    /// Uniform between two bounds.
    Uniform(Duration, Duration),
    /// Normal with a mean and a standard deviation (never below zero).
    Normal(Duration, Duration),
    /// Exponential with a mean.
    Exponential(Duration),
}

impl Latency {
    /// Parses `50ms`, `uniform:10ms..100ms`, `normal:50ms,10ms` or `exp:50ms`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let duration = |s: &str| {
            sluice_core::options::parse_duration(s.trim()).map_err(|e| anyhow::anyhow!("latency '{text}': {e}"))
        };
        Ok(match text.split_once(':') {
            None => Latency::Fixed(duration(text)?),
            Some(("uniform", range)) => {
                let (low, high) =
                    range.split_once("..").context("write uniform:LOW..HIGH, e.g. uniform:10ms..100ms")?;
                let (low, high) = (duration(low)?, duration(high)?);
                if high < low {
                    bail!("latency '{text}': the upper bound is below the lower bound");
                }
                Latency::Uniform(low, high)
            }
            Some(("normal", params)) => {
                let (mean, sd) = params.split_once(',').context("write normal:MEAN,STDDEV, e.g. normal:50ms,10ms")?;
                Latency::Normal(duration(mean)?, duration(sd)?)
            }
            Some(("exp", mean)) => Latency::Exponential(duration(mean)?),
            Some((kind, _)) => bail!("latency '{text}': unknown distribution '{kind}' (use uniform, normal or exp)"),
        })
    }

    /// One sample.
    pub fn sample(&self, rng: &mut impl Rng) -> Duration {
        match self {
            Latency::Fixed(d) => *d,
            Latency::Uniform(low, high) => low.mul_f64(1.0) + (*high - *low).mul_f64(rng.random::<f64>()),
            Latency::Normal(mean, sd) => {
                // Box-Muller.
                let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
                let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
                Duration::from_secs_f64((mean.as_secs_f64() + z * sd.as_secs_f64()).max(0.0))
            }
            Latency::Exponential(mean) => {
                Duration::from_secs_f64(-mean.as_secs_f64() * (1.0 - rng.random::<f64>()).ln())
            }
        }
    }
}

/// A failure the stub can inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// An HTTP error status with an error body (429 carries Retry-After).
    Status(u16),
    /// Never answer.
    Hang,
    /// 200 with a body that is not JSON.
    Malformed,
    /// 200 whose body breaks off in the middle.
    Truncated,
}

impl Fault {
    /// Parses `429`, `500`, `hang`, `malformed` or `truncated`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(match text.trim() {
            "hang" => Fault::Hang,
            "malformed" => Fault::Malformed,
            "truncated" => Fault::Truncated,
            code => match code.parse::<u16>() {
                Ok(c) if (400..600).contains(&c) => Fault::Status(c),
                _ => bail!("unknown fault '{code}': use an HTTP status (400-599), hang, malformed or truncated"),
            },
        })
    }
}

/// Random faults: `429=0.2,503=0.05,hang=0.01`.
pub fn parse_fault_rates(text: &str) -> anyhow::Result<Vec<(Fault, f64)>> {
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.trim().is_empty()) {
        let (fault, rate) =
            part.split_once('=').with_context(|| format!("'{part}': write FAULT=RATE, e.g. 429=0.2"))?;
        let rate: f64 = rate.trim().parse().with_context(|| format!("'{part}': the rate must be a number"))?;
        if !(0.0..=1.0).contains(&rate) {
            bail!("'{part}': the rate must be between 0 and 1");
        }
        out.push((Fault::parse(fault)?, rate));
    }
    Ok(out)
}

/// A fault asked for by the prompt itself: `[stub:400]` always, `[stub:429x2]` for the first
/// two requests with this prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Trigger {
    /// The fault.
    pub fault: Fault,
    /// How many requests with the prompt get it (None: all).
    pub times: Option<u32>,
}

/// The trigger written in `prompt`, if any.
pub fn trigger(prompt: &str) -> Option<Trigger> {
    let start = prompt.find("[stub:")? + "[stub:".len();
    let end = start + prompt[start..].find(']')?;
    let spec = &prompt[start..end];
    let (fault, times) = match spec.rsplit_once('x') {
        Some((f, n)) if n.chars().all(|c| c.is_ascii_digit()) && !n.is_empty() => (f, n.parse().ok()),
        _ => (spec, None),
    };
    Fault::parse(fault).ok().map(|fault| Trigger { fault, times })
}

/// What answers look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Answers {
    /// A function of the prompt: the same prompt always gets the same answer.
    Deterministic,
    /// A fresh random answer every time.
    Random,
    /// The prompt itself.
    Echo,
}

/// The answer text for `prompt`.
pub fn answer(mode: Answers, prompt: &str, rng: &mut impl Rng) -> String {
    match mode {
        Answers::Deterministic => format!("answer-{:016x}", xxhash_rust::xxh3::xxh3_64(prompt.as_bytes())),
        Answers::Random => format!("answer-{:016x}", rng.random::<u64>()),
        Answers::Echo => prompt.to_string(),
    }
}

/// A JSON-mode answer: an object with `answer`, `score` in [0, 1) and `label`.
pub fn json_answer(mode: Answers, prompt: &str, rng: &mut impl Rng) -> serde_json::Value {
    let text = answer(mode, prompt, rng);
    let hash = xxhash_rust::xxh3::xxh3_64(text.as_bytes());
    let score = (hash >> 11) as f64 / (1u64 << 53) as f64;
    serde_json::json!({"answer": text, "score": score, "label": if score >= 0.5 { "positive" } else { "negative" }})
}

/// A deterministic embedding of `text` with `dim` components in [-1, 1].
pub fn embedding(text: &str, dim: usize) -> Vec<f32> {
    (0..dim)
        .map(|i| {
            let h = xxhash_rust::xxh3::xxh3_64_with_seed(text.as_bytes(), i as u64);
            ((h >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// The stub's token count of a text: a quarter of its characters, rounded up.
pub fn tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// How often each triggered prompt was seen, for `[stub:FAULTxN]`.
#[derive(Debug, Default)]
pub struct TriggerCounts(Mutex<HashMap<u64, u32>>);

impl TriggerCounts {
    /// Counts one request with `prompt` and tells whether `trigger` applies to it.
    pub fn applies(&self, prompt: &str, trigger: Trigger) -> bool {
        let Some(times) = trigger.times else { return true };
        let mut counts = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let seen = counts.entry(xxhash_rust::xxh3::xxh3_64(prompt.as_bytes())).or_default();
        *seen += 1;
        *seen <= times
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_specs_parse_and_sample_in_range() {
        let mut rng = rand::rng();
        assert_eq!(Latency::parse("50ms").unwrap(), Latency::Fixed(Duration::from_millis(50)));
        let uniform = Latency::parse("uniform:10ms..20ms").unwrap();
        for _ in 0..100 {
            let d = uniform.sample(&mut rng);
            assert!(d >= Duration::from_millis(10) && d <= Duration::from_millis(20), "{d:?}");
        }
        assert!(Latency::parse("normal:50ms,5ms").unwrap().sample(&mut rng) < Duration::from_secs(1));
        assert!(Latency::parse("exp:1ms").is_ok());
        assert!(Latency::parse("uniform:20ms..10ms").is_err());
        assert!(Latency::parse("gamma:1ms").unwrap_err().to_string().contains("unknown distribution"));
    }

    #[test]
    fn faults_and_triggers_parse() {
        assert_eq!(
            parse_fault_rates("429=0.5,hang=0.01").unwrap(),
            vec![(Fault::Status(429), 0.5), (Fault::Hang, 0.01)]
        );
        assert!(parse_fault_rates("429=2").is_err());
        assert!(parse_fault_rates("teapot=0.1").is_err());
        assert_eq!(trigger("classify [stub:400] this"), Some(Trigger { fault: Fault::Status(400), times: None }));
        assert_eq!(trigger("x [stub:429x2]"), Some(Trigger { fault: Fault::Status(429), times: Some(2) }));
        assert_eq!(trigger("[stub:hang]"), Some(Trigger { fault: Fault::Hang, times: None }));
        assert_eq!(trigger("plain text"), None);
        let counts = TriggerCounts::default();
        let t = trigger("p [stub:503x2]").unwrap();
        assert_eq!(
            (0..4).map(|_| counts.applies("p [stub:503x2]", t)).collect::<Vec<_>>(),
            vec![true, true, false, false]
        );
    }

    #[test]
    fn deterministic_answers_repeat_and_random_ones_do_not() {
        let mut rng = rand::rng();
        assert_eq!(answer(Answers::Deterministic, "a", &mut rng), answer(Answers::Deterministic, "a", &mut rng));
        assert_ne!(answer(Answers::Deterministic, "a", &mut rng), answer(Answers::Deterministic, "b", &mut rng));
        assert_ne!(answer(Answers::Random, "a", &mut rng), answer(Answers::Random, "a", &mut rng));
        assert_eq!(embedding("x", 8), embedding("x", 8));
        assert!(embedding("x", 8).iter().all(|v| (-1.0..=1.0).contains(v)));
        assert_eq!(tokens("abcde"), 2);
    }
}
