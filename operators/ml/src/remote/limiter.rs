//! Flow control of requests to a model's API: an adaptive concurrency limit (halved on
//! 429, grown back by one per success up to `max-concurrent-operations`) and optional
//! request and token rate limits (token buckets over a minute).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// An adjustable limit on requests in flight.
#[derive(Debug)]
pub struct Concurrency {
    semaphore: Arc<Semaphore>,
    state: Mutex<LimitState>,
    max: usize,
}

#[derive(Debug)]
struct LimitState {
    limit: usize,
    lowest: usize,
    /// Permits to take out of circulation as they come back (after a decrease).
    debt: usize,
}

/// The right to have one request in flight.
pub struct Permit {
    permit: Option<OwnedSemaphorePermit>,
    owner: Arc<Concurrency>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.owner.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(permit) = self.permit.take() {
            if state.debt > 0 {
                state.debt -= 1;
                permit.forget();
            }
        }
    }
}

impl Concurrency {
    /// A limit starting at, and never above, `max`.
    pub fn new(max: usize) -> Arc<Self> {
        let max = max.max(1);
        Arc::new(Concurrency {
            semaphore: Arc::new(Semaphore::new(max)),
            state: Mutex::new(LimitState { limit: max, lowest: max, debt: 0 }),
            max,
        })
    }

    /// Waits for a free slot under the current limit.
    pub async fn acquire(self: &Arc<Self>) -> Permit {
        let permit = self.semaphore.clone().acquire_owned().await.ok();
        Permit { permit, owner: self.clone() }
    }

    /// The current limit.
    pub fn limit(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).limit
    }

    /// The lowest the limit has been.
    pub fn lowest(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).lowest
    }

    /// A 429: the limit halves (never below 1).
    pub fn decrease(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let target = (state.limit / 2).max(1);
        let cut = state.limit - target;
        state.limit = target;
        state.lowest = state.lowest.min(target);
        let forgotten = self.semaphore.forget_permits(cut);
        state.debt += cut - forgotten;
    }

    /// A success: the limit grows by one up to the maximum.
    pub fn increase(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.limit < self.max {
            state.limit += 1;
            if state.debt > 0 {
                state.debt -= 1;
            } else {
                self.semaphore.add_permits(1);
            }
        }
    }
}

/// A token bucket refilled at `per_minute` units a minute, holding at most a second's worth
/// (at least one request's worth).
#[derive(Debug)]
pub struct RateLimit {
    state: Mutex<Bucket>,
    per_second: f64,
    capacity: f64,
}

#[derive(Debug)]
struct Bucket {
    available: f64,
    refilled: Instant,
}

impl RateLimit {
    /// A bucket of `per_minute` units a minute.
    pub fn per_minute(per_minute: u64) -> Self {
        let per_second = per_minute.max(1) as f64 / 60.0;
        let capacity = per_second.max(1.0);
        RateLimit { state: Mutex::new(Bucket { available: capacity, refilled: Instant::now() }), per_second, capacity }
    }

    /// Takes `units`, waiting until the bucket holds them (a request larger than the
    /// bucket waits for a full bucket and leaves it in debt).
    pub async fn take(&self, units: f64) {
        loop {
            let wait = {
                let mut bucket = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                bucket.available =
                    (bucket.available + (now - bucket.refilled).as_secs_f64() * self.per_second).min(self.capacity);
                bucket.refilled = now;
                let needed = units.min(self.capacity);
                if bucket.available >= needed {
                    bucket.available -= units;
                    return;
                }
                Duration::from_secs_f64((needed - bucket.available) / self.per_second)
            };
            tokio::time::sleep(wait).await;
        }
    }

    /// Corrects an estimate after the fact (positive: more was used than taken).
    pub fn settle(&self, units: f64) {
        let mut bucket = self.state.lock().unwrap_or_else(|p| p.into_inner());
        bucket.available -= units;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_limit_halves_and_grows_back() {
        let c = Concurrency::new(8);
        let held: Vec<Permit> = acquire_n(&c, 8).await;
        c.decrease();
        assert_eq!(c.limit(), 4);
        drop(held);
        // Four permits went out of circulation as the held ones came back.
        let again = acquire_n(&c, 4).await;
        assert!(
            tokio::time::timeout(Duration::from_millis(20), c.acquire()).await.is_err(),
            "a fifth permit is over the limit"
        );
        c.increase();
        assert_eq!(c.limit(), 5);
        let fifth = tokio::time::timeout(Duration::from_millis(100), c.acquire()).await;
        assert!(fifth.is_ok());
        drop(again);
        for _ in 0..10 {
            c.increase();
        }
        assert_eq!(c.limit(), 8);
        c.decrease();
        c.decrease();
        c.decrease();
        c.decrease();
        assert_eq!(c.limit(), 1);
    }

    async fn acquire_n(c: &Arc<Concurrency>, n: usize) -> Vec<Permit> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(c.acquire().await);
        }
        out
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limits_pace_requests() {
        let limit = RateLimit::per_minute(120); // 2 a second
        let started = Instant::now();
        for _ in 0..6 {
            limit.take(1.0).await;
        }
        // Two were available at once; four more needed two seconds.
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1990) && elapsed <= Duration::from_millis(2100), "{elapsed:?}");
    }
}
