//! A request rate for a bucket (`FILEGC_S3_REQUESTS_PER_SECOND`): requests
//! leave at most that often, evenly spaced, so that a large listing or
//! sweep stays under a provider's rate limit instead of meeting it and
//! backing off.
//!
//! Written on `tokio::time` rather than with a rate-limiting crate: the
//! crates sleep on timers of their own, which tokio's paused test clock
//! does not drive, so the spacing could only be tested by waiting.

use std::num::NonZeroU32;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::{sleep_until, Instant};

/// Spaces requests at most `rate` a second; shared by every clone of a bucket.
#[derive(Debug)]
pub struct Pace {
    /// The time between two requests.
    interval: Duration,
    /// The earliest time the next request may leave.
    next: Mutex<Instant>,
}

impl Pace {
    /// A pace of `rate` requests a second, the first one at once.
    pub fn new(rate: NonZeroU32) -> Pace {
        Pace {
            interval: Duration::from_secs(1) / rate.get(),
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for this request's turn.
    pub async fn wait(&self) {
        let turn = {
            let mut next = self.next.lock().await;
            // A pause (no requests for a while) earns no burst afterwards.
            let turn = (*next).max(Instant::now());
            *next = turn + self.interval;
            turn
        };
        sleep_until(turn).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_leave_evenly_spaced_and_a_pause_earns_no_burst() {
        let pace = Pace::new(NonZeroU32::new(10).unwrap());
        let start = Instant::now();
        let mut left = Vec::new();
        for _ in 0..5 {
            pace.wait().await;
            left.push(start.elapsed().as_millis());
        }
        assert_eq!(left, [0, 100, 200, 300, 400]);
        tokio::time::advance(Duration::from_secs(10)).await;
        let resumed = Instant::now();
        pace.wait().await;
        pace.wait().await;
        assert_eq!(resumed.elapsed().as_millis(), 100);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_requests_take_turns() {
        let pace = std::sync::Arc::new(Pace::new(NonZeroU32::new(4).unwrap()));
        let start = Instant::now();
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let pace = pace.clone();
                tokio::spawn(async move {
                    pace.wait().await;
                    start.elapsed().as_millis()
                })
            })
            .collect();
        let mut left = Vec::new();
        for task in tasks {
            left.push(task.await.unwrap());
        }
        left.sort_unstable();
        assert_eq!(left, [0, 250, 500, 750]);
    }
}
