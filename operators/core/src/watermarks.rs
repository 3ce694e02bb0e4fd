//! Combining the watermarks of a task's input channels, per input and overall, with idle
//! channels (Flink's `WatermarkStatus.IDLE`).
//!
//! A task has one or two inputs (a join has two), each fed by one or more channels. Each
//! channel's watermark only rises. An input's watermark is the minimum over its active
//! channels; the task's watermark is the minimum over every active channel. A channel is
//! active unless it has ended or announced that it is idle ([`Message::Idle`]); it becomes
//! active again with its next batch or watermark. So an idle partition or an input that
//! sees no data stops holding event time back, and when every channel is idle the task
//! is idle too and says so downstream. Emitted watermarks never go back: a channel that
//! wakes up behind the others delivers late rows, as in Flink.
//!
//! [`Message::Idle`]: crate::Message::Idle

/// What a change on one channel produced, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatermarkEvent {
    /// Input `input`'s watermark rose to `watermark`.
    Input {
        /// The input (0, or 1 for the second input of a two-input operator).
        input: usize,
        /// Its new watermark.
        watermark: i64,
    },
    /// The task's watermark (over all inputs) rose.
    Combined(i64),
    /// Every channel still open is idle.
    Idle,
}

#[derive(Debug, Clone)]
struct Channel {
    input: usize,
    watermark: i64,
    idle: bool,
    ended: bool,
}

impl Channel {
    fn active(&self) -> bool {
        !self.ended && !self.idle
    }
}

/// The watermark state of a task's input channels.
#[derive(Debug, Clone)]
pub struct WatermarkTracker {
    channels: Vec<Channel>,
    /// The watermark last emitted per input.
    inputs: Vec<i64>,
    combined: i64,
    idle: bool,
}

impl WatermarkTracker {
    /// A tracker of channels, each given by the input it feeds.
    pub fn new(channel_inputs: &[usize]) -> Self {
        let inputs = channel_inputs.iter().copied().max().map_or(1, |m| m + 1);
        WatermarkTracker {
            channels: channel_inputs
                .iter()
                .map(|&input| Channel { input, watermark: i64::MIN, idle: false, ended: false })
                .collect(),
            inputs: vec![i64::MIN; inputs],
            combined: i64::MIN,
            idle: false,
        }
    }

    /// How many inputs the channels feed.
    pub fn inputs(&self) -> usize {
        self.inputs.len()
    }

    /// The task's current watermark (`i64::MIN` before the first).
    pub fn combined(&self) -> i64 {
        self.combined
    }

    /// The watermark of `input` (`i64::MIN` before the first).
    pub fn input(&self, input: usize) -> i64 {
        self.inputs.get(input).copied().unwrap_or(i64::MIN)
    }

    /// Channel `channel` delivered a batch: it is active again.
    pub fn on_data(&mut self, channel: usize) {
        self.channels[channel].idle = false;
        self.idle = false;
    }

    /// Channel `channel` delivered watermark `watermark`.
    pub fn on_watermark(&mut self, channel: usize, watermark: i64) -> Vec<WatermarkEvent> {
        self.on_data(channel);
        let c = &mut self.channels[channel];
        c.watermark = c.watermark.max(watermark);
        self.advance()
    }

    /// Channel `channel` announced that it is idle.
    pub fn on_idle(&mut self, channel: usize) -> Vec<WatermarkEvent> {
        self.channels[channel].idle = true;
        self.advance()
    }

    /// Channel `channel` ended.
    pub fn on_end(&mut self, channel: usize) -> Vec<WatermarkEvent> {
        self.channels[channel].ended = true;
        self.advance()
    }

    fn advance(&mut self) -> Vec<WatermarkEvent> {
        let mut events = Vec::new();
        for input in 0..self.inputs.len() {
            let min = self.channels.iter().filter(|c| c.input == input && c.active()).map(|c| c.watermark).min();
            if let Some(min) = min.filter(|&m| m > self.inputs[input]) {
                self.inputs[input] = min;
                events.push(WatermarkEvent::Input { input, watermark: min });
            }
        }
        match self.channels.iter().filter(|c| c.active()).map(|c| c.watermark).min() {
            Some(min) if min > self.combined => {
                self.combined = min;
                events.push(WatermarkEvent::Combined(min));
            }
            Some(_) => {}
            None if !self.idle && self.channels.iter().any(|c| !c.ended) => {
                self.idle = true;
                events.push(WatermarkEvent::Idle);
            }
            None => {}
        }
        events
    }
}

/// A watermark as people read it: UTC time with milliseconds (`2020-04-15 08:05:00.000`),
/// `end` for the end of input (`i64::MAX`).
pub fn format_watermark(ms: i64) -> String {
    if ms == i64::MAX {
        return "end".into();
    }
    arrow::temporal_conversions::timestamp_ms_to_datetime(ms)
        .map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S%.3f").to_string())
}

#[cfg(test)]
mod tests {
    use super::WatermarkEvent::{Combined, Idle, Input};
    use super::*;

    #[test]
    fn each_input_and_the_task_follow_the_minimum_of_their_channels() {
        // Channels 0 and 1 feed input 0, channel 2 feeds input 1.
        let mut t = WatermarkTracker::new(&[0, 0, 1]);
        assert_eq!(t.on_watermark(0, 10), vec![]);
        assert_eq!(t.on_watermark(1, 5), vec![Input { input: 0, watermark: 5 }]);
        assert_eq!(t.on_watermark(2, 7), vec![Input { input: 1, watermark: 7 }, Combined(5)]);
        assert_eq!(t.on_watermark(1, 20), vec![Input { input: 0, watermark: 10 }, Combined(7)]);
        assert_eq!(t.on_watermark(1, 3), vec![], "a channel's watermark never goes back");
        assert_eq!((t.input(0), t.input(1), t.combined()), (10, 7, 7));
    }

    #[test]
    fn an_idle_channel_stops_holding_the_minimum_back_until_it_wakes() {
        let mut t = WatermarkTracker::new(&[0, 0, 1]);
        t.on_watermark(0, 100);
        t.on_watermark(2, 100);
        assert_eq!(t.combined(), i64::MIN, "channel 1 has said nothing yet");
        assert_eq!(t.on_idle(1), vec![Input { input: 0, watermark: 100 }, Combined(100)]);
        t.on_data(1);
        assert_eq!(t.on_watermark(0, 200), vec![], "channel 1 is active again, at its old watermark");
        assert_eq!(t.on_watermark(1, 150), vec![Input { input: 0, watermark: 150 }]);
        assert_eq!(t.on_watermark(2, 300), vec![Input { input: 1, watermark: 300 }, Combined(150)]);
    }

    #[test]
    fn when_every_open_channel_is_idle_the_task_is_idle_once() {
        let mut t = WatermarkTracker::new(&[0, 1]);
        assert_eq!(t.on_watermark(0, 1), vec![Input { input: 0, watermark: 1 }]);
        assert_eq!(t.on_end(1), vec![Combined(1)], "an ended input holds nothing back");
        assert_eq!(t.on_idle(0), vec![Idle]);
        assert_eq!(t.on_idle(0), vec![], "idle is said once");
        assert_eq!(t.on_watermark(0, 5), vec![Input { input: 0, watermark: 5 }, Combined(5)]);
        assert_eq!(t.on_idle(0), vec![Idle], "idle again after waking");
        assert_eq!(t.on_end(0), vec![], "ended channels are not idle");
    }

    #[test]
    fn watermarks_read_as_utc_times() {
        assert_eq!(super::format_watermark(1_586_937_900_123), "2020-04-15 08:05:00.123");
        assert_eq!(super::format_watermark(i64::MAX), "end");
    }
}
