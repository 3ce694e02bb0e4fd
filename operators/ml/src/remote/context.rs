//! `max-context-size` and `context-overflow-action`, as Flink's OpenAI models have them: a
//! prompt whose tokens exceed the limit is cut to it (its tail or its head) or its row is
//! skipped, and the `-log` actions also log it (its token counts, never its text).
//!
//! Tokens are counted with the model's tiktoken encoding (`o200k_base` for the GPT-4o and
//! later families, `cl100k_base` for GPT-4 and GPT-3.5, by `model`); a model name tiktoken
//! does not know (another provider, a local gateway) is counted with `o200k_base`, which
//! approximates other BPE tokenizers to within a few percent.

use tiktoken_rs::CoreBPE;

/// What happens to a prompt over the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverflowAction {
    /// Keep the first `max` tokens.
    TruncateTail,
    /// Keep the last `max` tokens.
    TruncateHead,
    /// Skip the row: it gets no request and no output.
    Skip,
}

/// A prompt after the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fitted {
    /// Within the limit, as it was.
    Unchanged(String),
    /// Cut to the limit; it had `tokens` tokens.
    Truncated {
        /// The cut prompt.
        prompt: String,
        /// The prompt's tokens before the cut.
        tokens: usize,
    },
    /// Over the limit with `context-overflow-action` = `skipped`; it had `tokens` tokens.
    Skipped {
        /// The prompt's tokens.
        tokens: usize,
    },
}

/// The context limit of a model.
#[derive(Clone)]
pub struct ContextLimit {
    /// At most this many tokens per prompt.
    pub max_tokens: usize,
    /// What happens to a longer prompt.
    pub action: OverflowAction,
    /// Whether each overflow is logged.
    pub log: bool,
    bpe: &'static CoreBPE,
}

impl std::fmt::Debug for ContextLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContextLimit")
            .field("max_tokens", &self.max_tokens)
            .field("action", &self.action)
            .field("log", &self.log)
            .finish()
    }
}

impl ContextLimit {
    /// The limit of `max_tokens` with `action` (a `context-overflow-action` value:
    /// `truncated-tail`, `truncated-head`, `skipped`, each optionally with `-log`), counting
    /// tokens as model `model_name` does; None for an unknown action.
    pub fn new(max_tokens: usize, action: &str, model_name: &str) -> Option<Self> {
        let (base, log) = match action.strip_suffix("-log") {
            Some(base) => (base, true),
            None => (action, false),
        };
        let action = match base {
            "truncated-tail" => OverflowAction::TruncateTail,
            "truncated-head" => OverflowAction::TruncateHead,
            "skipped" => OverflowAction::Skip,
            _ => return None,
        };
        let bpe = tiktoken_rs::bpe_for_model(model_name).unwrap_or_else(|_| tiktoken_rs::o200k_base_singleton());
        Some(ContextLimit { max_tokens, action, log, bpe })
    }

    /// The tokens of `text`.
    pub fn tokens(&self, text: &str) -> usize {
        self.bpe.encode_ordinary(text).len()
    }

    /// `prompt` within the limit.
    pub fn fit(&self, prompt: String) -> Fitted {
        let tokens = self.bpe.encode_ordinary(&prompt);
        if tokens.len() <= self.max_tokens {
            return Fitted::Unchanged(prompt);
        }
        let count = tokens.len();
        let kept = match self.action {
            OverflowAction::Skip => return Fitted::Skipped { tokens: count },
            OverflowAction::TruncateTail => &tokens[..self.max_tokens],
            OverflowAction::TruncateHead => &tokens[count - self.max_tokens..],
        };
        // Tokens are byte sequences: a cut may split a character, whose bytes are dropped.
        let bytes = self.bpe.decode_bytes(kept).unwrap_or_default();
        let prompt = match self.action {
            OverflowAction::TruncateHead => {
                let start = bytes.iter().take_while(|b| (**b & 0xC0) == 0x80).count();
                String::from_utf8_lossy(&bytes[start..]).into_owned()
            }
            _ => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(e) => {
                    let valid = e.utf8_error().valid_up_to();
                    String::from_utf8_lossy(&e.into_bytes()[..valid]).into_owned()
                }
            },
        };
        Fitted::Truncated { prompt, tokens: count }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str =
        "The quick brown fox jumps over the lazy dog, then naps in the warm afternoon sun. Ünïcödé ✓ – done.";

    #[test]
    fn a_prompt_over_the_limit_is_cut_at_its_tail_or_head_or_skipped() {
        let tail = ContextLimit::new(8, "truncated-tail", "gpt-4o").unwrap();
        assert!(tail.tokens(TEXT) > 8);
        let Fitted::Truncated { prompt, tokens } = tail.fit(TEXT.into()) else { panic!() };
        assert_eq!(tokens, tail.tokens(TEXT));
        assert!(TEXT.starts_with(&prompt) && tail.tokens(&prompt) <= 8 && prompt.len() > 10, "{prompt:?}");

        let head = ContextLimit::new(8, "truncated-head-log", "gpt-4o").unwrap();
        assert!(head.log);
        let Fitted::Truncated { prompt, .. } = head.fit(TEXT.into()) else { panic!() };
        assert!(TEXT.ends_with(&prompt) && head.tokens(&prompt) <= 8 && prompt.len() > 5, "{prompt:?}");

        let skip = ContextLimit::new(8, "skipped", "some-local-model").unwrap();
        assert_eq!(skip.fit(TEXT.into()), Fitted::Skipped { tokens: skip.tokens(TEXT) });
        assert_eq!(skip.fit("short".into()), Fitted::Unchanged("short".into()));
        assert!(ContextLimit::new(8, "dropped", "gpt-4o").is_none());
    }

    /// Cutting inside a multi-byte character drops its bytes instead of producing U+FFFD.
    #[test]
    fn a_cut_inside_a_character_keeps_whole_characters() {
        let text = "✓✓✓✓✓✓✓✓✓✓✓✓";
        for action in ["truncated-tail", "truncated-head"] {
            for max in 1..6 {
                let limit = ContextLimit::new(max, action, "gpt-4").unwrap();
                if let Fitted::Truncated { prompt, .. } = limit.fit(text.into()) {
                    assert!(
                        !prompt.contains('\u{FFFD}') && prompt.chars().all(|c| c == '✓'),
                        "{action} {max}: {prompt:?}"
                    );
                }
            }
        }
    }
}
