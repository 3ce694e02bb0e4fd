//! A token bucket that paces rows per second (datagen's `rows-per-second`, a sink's
//! `sink.rows-per-second`).

use std::time::Duration;

use tokio::time::Instant;

/// Paces a stream of rows to a rate, allowing bursts of up to a tenth of a second.
#[derive(Debug)]
pub struct RateLimiter {
    rows_per_second: f64,
    capacity: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl RateLimiter {
    /// A limiter at `rows_per_second` (must be positive).
    pub fn new(rows_per_second: f64) -> Self {
        let capacity = (rows_per_second / 10.0).max(1.0);
        RateLimiter { rows_per_second, capacity, tokens: 0.0, refilled_at: Instant::now() }
    }

    fn refill(&mut self) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.refilled_at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rows_per_second).min(self.capacity);
        self.refilled_at = now;
    }

    /// Takes up to `max` rows that may be produced now; when none may, returns 0 and how
    /// long to wait for the next one.
    pub fn take_up_to(&mut self, max: u64) -> (u64, Duration) {
        self.refill();
        if self.tokens < 1.0 {
            let wait = (1.0 - self.tokens) / self.rows_per_second;
            return (0, Duration::from_secs_f64(wait));
        }
        let granted = (self.tokens.floor() as u64).min(max);
        self.tokens -= granted as f64;
        (granted, Duration::ZERO)
    }

    /// Waits until `rows` rows may pass (they are charged at once, so the rate holds on average).
    pub async fn acquire(&mut self, rows: u64) {
        self.refill();
        self.tokens -= rows as f64;
        if self.tokens < 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(-self.tokens / self.rows_per_second)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn paces_to_the_configured_rate() {
        let mut limiter = RateLimiter::new(10_000.0);
        let start = Instant::now();
        for _ in 0..10 {
            limiter.acquire(500).await;
        }
        let elapsed = start.elapsed().as_secs_f64();
        // 5,000 rows at 10,000/s: the limiter must have made us wait about half a second.
        assert!(elapsed >= 0.45, "5,000 rows at 10,000/s took only {elapsed}s");
    }

    #[tokio::test]
    async fn grants_nothing_until_tokens_accumulate() {
        let mut limiter = RateLimiter::new(100.0);
        let (granted, wait) = limiter.take_up_to(50);
        assert_eq!(granted, 0);
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(10));
        tokio::time::sleep(Duration::from_millis(120)).await;
        let (granted, _) = limiter.take_up_to(50);
        assert_eq!(granted, 10, "the burst is capped at a tenth of a second of rows");
    }
}
