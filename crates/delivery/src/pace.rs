//! Pacing posts to one endpoint. Each has a rate it takes (Slack about one post a second per
//! incoming webhook, short bursts allowed; a Teams webhook 4 requests a second; PagerDuty 120
//! events a minute per routing key), answers 429 with Retry-After beyond it, and may disable
//! an endpoint that keeps going. A token bucket keeps this function under its share of that
//! rate, and a 429 holds every post back until its Retry-After has passed.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// How fast one function instance may post to one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PaceLimit {
    /// One post per interval, sustained. With several instances posting to the same webhook at
    /// once, each takes interval = Slack's one second x the number of instances.
    pub interval: Duration,
    /// Posts that may go back to back after a quiet spell.
    pub burst: u32,
}

impl Default for PaceLimit {
    /// One post a second, no burst: Slack's sustained rate for one webhook and one poster.
    fn default() -> Self {
        PaceLimit {
            interval: Duration::from_secs(1),
            burst: 1,
        }
    }
}

/// When the next post may go, kept for the life of the container so that consecutive
/// invocations are paced together.
#[derive(Debug)]
pub struct Pacer {
    limit: PaceLimit,
    state: Mutex<PacerState>,
}

#[derive(Debug)]
struct PacerState {
    /// When the next post would be due at the sustained rate (the "theoretical arrival time" of
    /// the generic cell rate algorithm); posts may run ahead of it by the burst.
    due: Instant,
    /// Slack's Retry-After: nothing goes before this.
    held_until: Instant,
}

impl Pacer {
    pub fn new(limit: PaceLimit) -> Self {
        let now = Instant::now();
        Pacer {
            limit: PaceLimit {
                interval: limit.interval,
                burst: limit.burst.max(1),
            },
            state: Mutex::new(PacerState {
                due: now,
                held_until: now,
            }),
        }
    }

    pub fn limit(&self) -> PaceLimit {
        self.limit
    }

    /// How far ahead of the sustained rate a burst may run.
    fn burst_window(&self) -> Duration {
        self.limit.interval * (self.limit.burst - 1)
    }

    /// Takes the next slot: returns when it may be used, or `None` (taking nothing) when that
    /// is later than `not_after`.
    pub fn reserve(&self, not_after: Instant) -> Option<Instant> {
        self.reserve_at(Instant::now(), not_after)
    }

    /// [`Self::reserve`] as it would be at `now`.
    fn reserve_at(&self, now: Instant, not_after: Instant) -> Option<Instant> {
        let mut state = self
            .state
            .lock()
            .expect("the pacer's lock is never poisoned");
        let by_rate = state
            .due
            .checked_sub(self.burst_window())
            .map_or(now, |at| at.max(now));
        let at = by_rate.max(state.held_until);
        if at > not_after {
            return None;
        }
        state.due = state.due.max(at) + self.limit.interval;
        Some(at)
    }

    /// How many slots could be taken from now, none later than `not_after` (taking none).
    pub fn slots_before(&self, not_after: Instant) -> usize {
        self.slots_before_at(Instant::now(), not_after)
    }

    fn slots_before_at(&self, now: Instant, not_after: Instant) -> usize {
        let state = self
            .state
            .lock()
            .expect("the pacer's lock is never poisoned");
        let (mut due, held_until) = (state.due, state.held_until);
        drop(state);
        let mut slots = 0;
        // A function's deadline holds a few hundred slots at most.
        while slots < 10_000 {
            let by_rate = due
                .checked_sub(self.burst_window())
                .map_or(now, |at| at.max(now));
            let at = by_rate.max(held_until);
            if at > not_after {
                break;
            }
            due = due.max(at) + self.limit.interval;
            slots += 1;
        }
        slots
    }

    /// Waits for the next slot, unless it comes later than `not_after`.
    pub async fn wait_turn(&self, not_after: Instant) -> bool {
        match self.reserve(not_after) {
            Some(at) => {
                tokio::time::sleep_until(at).await;
                true
            }
            None => false,
        }
    }

    /// Slack said 429: no post before `retry_after` from now, and the burst is spent.
    pub fn hold_for(&self, retry_after: Duration) {
        self.hold_for_at(Instant::now(), retry_after);
    }

    fn hold_for_at(&self, now: Instant, retry_after: Duration) {
        let mut state = self
            .state
            .lock()
            .expect("the pacer's lock is never poisoned");
        let until = now + retry_after;
        state.held_until = state.held_until.max(until);
        state.due = state.due.max(until + self.burst_window());
    }
}

#[cfg(test)]
mod tests {
    // Slots are computed for given instants (no clock is read), so nothing here waits.
    use super::*;

    fn pacer(interval_ms: u64, burst: u32) -> Pacer {
        Pacer::new(PaceLimit {
            interval: Duration::from_millis(interval_ms),
            burst,
        })
    }

    fn far(start: Instant) -> Instant {
        start + Duration::from_secs(3600)
    }

    /// Offsets from `start` of `count` slots taken at `now`, in whole milliseconds.
    fn offsets(pacer: &Pacer, start: Instant, now: Instant, count: usize) -> Vec<u128> {
        (0..count)
            .map(|_| {
                let at = pacer.reserve_at(now, far(start)).unwrap();
                at.duration_since(start).as_millis()
            })
            .collect()
    }

    #[test]
    fn a_burst_goes_at_once_then_one_per_interval() {
        let pacer = pacer(1000, 3);
        let start = Instant::now();
        assert_eq!(
            offsets(&pacer, start, start, 6),
            [0, 0, 0, 1000, 2000, 3000]
        );
    }

    #[test]
    fn sustained_rate_never_exceeds_one_per_interval() {
        let pacer = pacer(1000, 3);
        let start = Instant::now();
        let slots = offsets(&pacer, start, start, 200);
        // In any window of N intervals, at most N + burst - 1 posts.
        for (i, &at) in slots.iter().enumerate() {
            let within_10s = slots[i..].iter().filter(|&&s| s < at + 10_000).count();
            assert!(
                within_10s <= 12,
                "{within_10s} posts within 10 s from {at} ms"
            );
        }
    }

    #[test]
    fn a_quiet_spell_refills_the_burst() {
        let pacer = pacer(1000, 2);
        let start = Instant::now();
        assert_eq!(offsets(&pacer, start, start, 3), [0, 0, 1000]);
        let later = start + Duration::from_secs(10);
        assert_eq!(offsets(&pacer, start, later, 3), [10_000, 10_000, 11_000]);
    }

    #[test]
    fn retry_after_holds_every_post_and_spends_the_burst() {
        let pacer = pacer(1000, 3);
        let start = Instant::now();
        pacer.hold_for_at(start, Duration::from_secs(5));
        assert_eq!(offsets(&pacer, start, start, 3), [5000, 6000, 7000]);
    }

    #[test]
    fn a_slot_past_the_deadline_is_not_taken() {
        let pacer = pacer(1000, 1);
        let start = Instant::now();
        assert!(
            pacer
                .reserve_at(start, start + Duration::from_millis(10))
                .is_some()
        );
        assert!(
            pacer
                .reserve_at(start, start + Duration::from_millis(500))
                .is_none()
        );
        // Refusing took nothing: the next slot is still one interval after the first.
        let at = pacer.reserve_at(start, far(start)).unwrap();
        assert_eq!(at.duration_since(start), Duration::from_secs(1));
    }

    #[test]
    fn the_slots_before_a_deadline_are_counted_without_being_taken() {
        let pacer = pacer(4000, 1);
        let start = Instant::now();
        let deadline = start + Duration::from_secs(56);
        assert_eq!(pacer.slots_before_at(start, deadline), 15);
        assert_eq!(
            pacer.slots_before_at(start, deadline),
            15,
            "nothing was taken"
        );
        pacer.reserve_at(start, deadline).unwrap();
        assert_eq!(pacer.slots_before_at(start, deadline), 14);
        pacer.hold_for_at(start, Duration::from_secs(50));
        assert_eq!(pacer.slots_before_at(start, deadline), 2);
        assert_eq!(pacer.slots_before_at(start, start), 0);
    }

    #[tokio::test]
    async fn wait_turn_sleeps_until_the_slot() {
        let pacer = pacer(100, 1);
        let start = Instant::now();
        assert!(pacer.wait_turn(far(start)).await);
        assert!(pacer.wait_turn(far(start)).await);
        assert!(start.elapsed() >= Duration::from_millis(100));
        assert!(!pacer.wait_turn(Instant::now()).await);
    }
}
