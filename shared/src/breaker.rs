//! Circuit breakers, one per delivery destination.
//!
//! A [`Breaker`] is a small state machine:
//!
//! - **closed**: calls go through. It opens after
//!   [`BreakerPolicy::consecutive_failures`] failures in a row, or when at
//!   least [`BreakerPolicy::failure_ratio`] of the last
//!   [`BreakerPolicy::window`] calls failed (once it has seen
//!   [`BreakerPolicy::minimum_calls`]).
//! - **open**: every call is refused without touching the network, for
//!   [`BreakerPolicy::cool_down`].
//! - **half-open**: after the cool-down, one call (the probe) goes through
//!   and the others are still refused. The probe's success closes the
//!   breaker; its failure opens it for another cool-down. A probe that never
//!   reports back (its task was cancelled) is replaced after one cool-down.
//!
//! [`Breakers`] holds one breaker per key (the connector uses tenant and
//! destination URL, so one tenant's failing endpoint never affects another
//! tenant) and reports every state change so it can be logged and counted.
//! Time is passed in as `tokio::time::Instant`, so tests drive it with
//! paused time.

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Longest count-based window: outcomes are kept as bits of a `u64`.
pub const MAX_WINDOW: u32 = 64;

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BreakerPolicy {
    /// Failures in a row that open the breaker.
    pub consecutive_failures: u32,
    /// Share of failed calls in the window (0 to 1) that opens the breaker.
    pub failure_ratio: f64,
    /// Calls the window must hold before the ratio counts.
    pub minimum_calls: u32,
    /// How many of the most recent calls the ratio is taken over
    /// (1 to [`MAX_WINDOW`]).
    pub window: u32,
    /// How long an open breaker refuses calls before letting a probe through.
    pub cool_down: Duration,
}

impl Default for BreakerPolicy {
    /// Opens after 5 failures in a row or when half of the last 20 calls
    /// failed (with at least 20 seen); probes again after 30 s.
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            failure_ratio: 0.5,
            minimum_calls: 20,
            window: 20,
            cool_down: Duration::from_secs(30),
        }
    }
}

impl BreakerPolicy {
    fn window_mask(&self) -> u64 {
        match self.window.clamp(1, MAX_WINDOW) {
            MAX_WINDOW => u64::MAX,
            n => (1u64 << n) - 1,
        }
    }
}

/// A breaker's state, as logged and counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// One probe call is allowed through.
    HalfOpen,
}

impl State {
    /// `closed`, `open` or `half_open`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The state left.
    pub from: State,
    /// The state entered.
    pub to: State,
}

/// Permission to make one call. Hand it back with the call's outcome.
#[derive(Debug)]
#[must_use = "report the call's outcome with `record`"]
pub struct Permit {
    /// The probe's number, when this call is a half-open breaker's probe.
    probe: Option<u64>,
}

/// The breaker is open: the call was refused without being made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("circuit breaker open; next probe in {}ms", retry_in.as_millis())]
pub struct Refused {
    /// How long until a probe may go through (zero while a probe is out).
    pub retry_in: Duration,
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Closed {
        consecutive: u32,
        /// The last `calls` outcomes, newest in bit 0; 1 is a failure.
        outcomes: u64,
        calls: u32,
    },
    Open {
        until: Instant,
    },
    HalfOpen {
        probe_since: Instant,
        /// Which probe is out; a replaced probe's late outcome is ignored.
        probe: u64,
    },
}

const CLOSED: Inner = Inner::Closed {
    consecutive: 0,
    outcomes: 0,
    calls: 0,
};

/// One destination's breaker.
#[derive(Debug, Clone, Copy)]
pub struct Breaker {
    inner: Inner,
    probes: u64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            inner: CLOSED,
            probes: 0,
        }
    }
}

impl Breaker {
    /// The current state (an open breaker whose cool-down has ended still
    /// reads open until the next call asks).
    pub fn state(&self) -> State {
        match self.inner {
            Inner::Closed { .. } => State::Closed,
            Inner::Open { .. } => State::Open,
            Inner::HalfOpen { .. } => State::HalfOpen,
        }
    }

    /// Asks to make a call at `now`.
    pub fn acquire(
        &mut self,
        policy: &BreakerPolicy,
        now: Instant,
    ) -> (Result<Permit, Refused>, Option<Transition>) {
        match self.inner {
            Inner::Closed { .. } => (Ok(Permit { probe: None }), None),
            Inner::Open { until } if now < until => (
                Err(Refused {
                    retry_in: until - now,
                }),
                None,
            ),
            Inner::Open { .. } => (
                Ok(self.probe(now)),
                Some(Transition {
                    from: State::Open,
                    to: State::HalfOpen,
                }),
            ),
            Inner::HalfOpen { probe_since, .. }
                if now.duration_since(probe_since) < policy.cool_down =>
            {
                (Err(Refused::default()), None)
            }
            // The probe has been out a whole cool-down: its task was
            // probably cancelled. Send another; the first one's outcome,
            // should it still come, no longer counts.
            Inner::HalfOpen { .. } => (Ok(self.probe(now)), None),
        }
    }

    /// Reports the outcome of a permitted call. Outcomes of calls let
    /// through before the breaker opened are ignored once it is open.
    pub fn record(
        &mut self,
        policy: &BreakerPolicy,
        permit: Permit,
        success: bool,
        now: Instant,
    ) -> Option<Transition> {
        match self.inner {
            Inner::Closed {
                consecutive,
                outcomes,
                calls,
            } => {
                let consecutive = if success { 0 } else { consecutive + 1 };
                let outcomes = ((outcomes << 1) | u64::from(!success)) & policy.window_mask();
                let calls = (calls + 1).min(policy.window.clamp(1, MAX_WINDOW));
                let failures = outcomes.count_ones();
                let ratio_tripped = calls >= policy.minimum_calls
                    && f64::from(failures) >= policy.failure_ratio * f64::from(calls);
                if !success && (consecutive >= policy.consecutive_failures || ratio_tripped) {
                    self.open(policy, now, State::Closed)
                } else {
                    self.inner = Inner::Closed {
                        consecutive,
                        outcomes,
                        calls,
                    };
                    None
                }
            }
            Inner::HalfOpen { probe, .. } if permit.probe == Some(probe) => {
                if success {
                    self.inner = CLOSED;
                    Some(Transition {
                        from: State::HalfOpen,
                        to: State::Closed,
                    })
                } else {
                    self.open(policy, now, State::HalfOpen)
                }
            }
            Inner::HalfOpen { .. } | Inner::Open { .. } => None,
        }
    }

    fn probe(&mut self, now: Instant) -> Permit {
        self.probes += 1;
        self.inner = Inner::HalfOpen {
            probe_since: now,
            probe: self.probes,
        };
        Permit {
            probe: Some(self.probes),
        }
    }

    fn open(&mut self, policy: &BreakerPolicy, now: Instant, from: State) -> Option<Transition> {
        self.inner = Inner::Open {
            until: now + policy.cool_down,
        };
        Some(Transition {
            from,
            to: State::Open,
        })
    }

    /// True when the breaker is closed and remembers no failure: dropping
    /// it loses nothing.
    fn is_pristine(&self) -> bool {
        matches!(self.inner, Inner::Closed { outcomes: 0, .. })
    }
}

impl Default for Refused {
    fn default() -> Self {
        Self {
            retry_in: Duration::ZERO,
        }
    }
}

/// Breakers by key, shared by all the calls of a process.
#[derive(Debug)]
pub struct Breakers {
    policy: BreakerPolicy,
    max_entries: usize,
    map: Mutex<HashMap<String, Breaker>>,
}

impl Breakers {
    /// Most breakers kept by [`Breakers::new`]; past it, breakers that
    /// remember no failure are forgotten first.
    pub const DEFAULT_MAX_ENTRIES: usize = 10_000;

    /// An empty set of breakers sharing `policy`.
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            max_entries: Self::DEFAULT_MAX_ENTRIES,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The policy every breaker follows.
    pub fn policy(&self) -> &BreakerPolicy {
        &self.policy
    }

    /// The state of `key`'s breaker (closed when it has none).
    pub fn state(&self, key: &str) -> State {
        self.lock().get(key).map_or(State::Closed, Breaker::state)
    }

    /// Asks `key`'s breaker for a call at `now`.
    pub fn acquire(
        &self,
        key: &str,
        now: Instant,
    ) -> (Result<Permit, Refused>, Option<Transition>) {
        let mut map = self.lock();
        if let Some(breaker) = map.get_mut(key) {
            return breaker.acquire(&self.policy, now);
        }
        // An unseen destination is closed: no entry until something fails.
        (Ok(Permit { probe: None }), None)
    }

    /// Reports the outcome of a call `key`'s breaker permitted.
    pub fn record(
        &self,
        key: &str,
        permit: Permit,
        success: bool,
        now: Instant,
    ) -> Option<Transition> {
        let mut map = self.lock();
        if let Some(breaker) = map.get_mut(key) {
            let transition = breaker.record(&self.policy, permit, success, now);
            if breaker.is_pristine() {
                map.remove(key);
            }
            return transition;
        }
        if success {
            return None;
        }
        if map.len() >= self.max_entries {
            // Forget closed breakers first (they only remember a few
            // failures), then, if every slot is open or half-open, all of
            // them: memory stays bounded and they re-learn quickly.
            map.retain(|_, b| b.state() != State::Closed);
            if map.len() >= self.max_entries {
                map.clear();
            }
        }
        let mut breaker = Breaker::default();
        let transition = breaker.record(&self.policy, permit, success, now);
        map.insert(key.to_owned(), breaker);
        transition
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
        // A panic elsewhere cannot leave a breaker half-updated: every
        // update is a single assignment.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            consecutive_failures: 3,
            failure_ratio: 0.5,
            minimum_calls: 6,
            window: 6,
            cool_down: Duration::from_secs(10),
        }
    }

    fn call(b: &Breakers, key: &str, success: bool) -> Result<Option<Transition>, Refused> {
        let now = Instant::now();
        let (permit, t1) = b.acquire(key, now);
        let t2 = b.record(key, permit?, success, now);
        Ok(t2.or(t1))
    }

    fn to(state: State) -> impl Fn(&Option<Transition>) -> bool {
        move |t| t.is_some_and(|t| t.to == state)
    }

    #[tokio::test(start_paused = true)]
    async fn opens_after_consecutive_failures_and_refuses_without_calling() {
        let b = Breakers::new(policy());
        assert_eq!(call(&b, "a", false), Ok(None));
        assert_eq!(call(&b, "a", false), Ok(None));
        assert_eq!(
            call(&b, "a", false),
            Ok(Some(Transition {
                from: State::Closed,
                to: State::Open
            }))
        );
        assert_eq!(b.state("a"), State::Open);
        let refused = call(&b, "a", true).unwrap_err();
        assert_eq!(refused.retry_in, Duration::from_secs(10));
        // Another destination is unaffected.
        assert_eq!(call(&b, "b", true), Ok(None));
        assert_eq!(b.state("b"), State::Closed);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_resets_the_consecutive_count() {
        let b = Breakers::new(policy());
        for _ in 0..2 {
            call(&b, "a", false).unwrap();
            call(&b, "a", false).unwrap();
            call(&b, "a", true).unwrap();
        }
        // 4 failures of 6, but never 3 in a row: the ratio trips it now.
        assert!(to(State::Open)(&call(&b, "a", false).unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn ratio_needs_the_minimum_number_of_calls() {
        let b = Breakers::new(BreakerPolicy {
            consecutive_failures: 100,
            ..policy()
        });
        // F S F S F: 60% failed but only 5 calls.
        for i in 0..5 {
            assert_eq!(call(&b, "a", i % 2 == 1), Ok(None));
        }
        assert_eq!(b.state("a"), State::Closed);
        // Sixth call, a success: 3 of 6 failed, but a success never opens.
        assert_eq!(call(&b, "a", true), Ok(None));
        // Seventh, a failure: window S F S F S F... 3+ of 6 failed.
        assert!(to(State::Open)(&call(&b, "a", false).unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn old_outcomes_leave_the_window() {
        let b = Breakers::new(BreakerPolicy {
            consecutive_failures: 100,
            ..policy()
        });
        call(&b, "a", false).unwrap();
        call(&b, "a", false).unwrap();
        for _ in 0..5 {
            call(&b, "a", true).unwrap();
        }
        // The early failures have left the 6-call window: 2 of 6 is below.
        assert_eq!(call(&b, "a", false), Ok(None));
        assert_eq!(call(&b, "a", false), Ok(None));
        assert!(to(State::Open)(&call(&b, "a", false).unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn half_open_lets_one_probe_through_after_the_cool_down() {
        let b = Breakers::new(policy());
        for _ in 0..3 {
            call(&b, "a", false).unwrap();
        }
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(call(&b, "a", true).is_err(), "still cooling down");
        tokio::time::advance(Duration::from_millis(1)).await;

        let now = Instant::now();
        let (probe, t) = b.acquire("a", now);
        let probe = probe.unwrap();
        assert_eq!(
            t,
            Some(Transition {
                from: State::Open,
                to: State::HalfOpen
            })
        );
        // While the probe is out, everything else is refused.
        let (other, _) = b.acquire("a", now);
        assert_eq!(other.unwrap_err().retry_in, Duration::ZERO);

        let t = b.record("a", probe, true, now);
        assert_eq!(
            t,
            Some(Transition {
                from: State::HalfOpen,
                to: State::Closed
            })
        );
        assert_eq!(call(&b, "a", true), Ok(None));
        // Closed again with a clean count: it takes 3 failures to reopen.
        assert_eq!(call(&b, "a", false), Ok(None));
        assert_eq!(call(&b, "a", false), Ok(None));
        assert!(to(State::Open)(&call(&b, "a", false).unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failed_probe_reopens_for_a_full_cool_down() {
        let b = Breakers::new(policy());
        for _ in 0..3 {
            call(&b, "a", false).unwrap();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        let t = call(&b, "a", false).unwrap();
        assert_eq!(
            t,
            Some(Transition {
                from: State::HalfOpen,
                to: State::Open
            })
        );
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(call(&b, "a", true).is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(to(State::Closed)(&call(&b, "a", true).unwrap()));
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_probe_is_replaced_after_a_cool_down() {
        let b = Breakers::new(policy());
        for _ in 0..3 {
            call(&b, "a", false).unwrap();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        let (lost, _) = b.acquire("a", Instant::now());
        drop(lost.unwrap());
        tokio::time::advance(Duration::from_millis(9_999)).await;
        assert!(b.acquire("a", Instant::now()).0.is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        let (probe, _) = b.acquire("a", Instant::now());
        let t = b.record("a", probe.unwrap(), true, Instant::now());
        assert!(to(State::Closed)(&t));
    }

    #[tokio::test(start_paused = true)]
    async fn a_replaced_probe_that_reports_late_does_not_count() {
        let b = Breakers::new(policy());
        for _ in 0..3 {
            call(&b, "a", false).unwrap();
        }
        tokio::time::advance(Duration::from_secs(10)).await;
        let (slow, _) = b.acquire("a", Instant::now());
        tokio::time::advance(Duration::from_secs(10)).await;
        let (second, _) = b.acquire("a", Instant::now());
        // The first probe answers at last: ignored, still half-open.
        assert_eq!(b.record("a", slow.unwrap(), true, Instant::now()), None);
        assert_eq!(b.state("a"), State::HalfOpen);
        // The second one decides.
        let t = b.record("a", second.unwrap(), false, Instant::now());
        assert!(to(State::Open)(&t));
    }

    #[tokio::test(start_paused = true)]
    async fn late_outcomes_do_not_move_an_open_breaker() {
        let b = Breakers::new(policy());
        let now = Instant::now();
        let (late, _) = b.acquire("a", now);
        for _ in 0..3 {
            call(&b, "a", false).unwrap();
        }
        assert_eq!(b.record("a", late.unwrap(), true, now), None);
        assert_eq!(b.state("a"), State::Open);
    }

    #[tokio::test(start_paused = true)]
    async fn memory_is_bounded_and_healthy_destinations_take_none() {
        let mut b = Breakers::new(policy());
        b.max_entries = 4;
        for i in 0..100 {
            call(&b, &format!("ok-{i}"), true).unwrap();
        }
        assert_eq!(b.lock().len(), 0);
        for i in 0..10 {
            call(&b, &format!("bad-{i}"), false).unwrap();
        }
        assert!(b.lock().len() <= 4);
        // A destination that recovers is forgotten once its failures have
        // left the window.
        for _ in 0..5 {
            call(&b, "bad-9", true).unwrap();
        }
        assert!(b.lock().get("bad-9").is_some());
        call(&b, "bad-9", true).unwrap();
        assert!(b.lock().get("bad-9").is_none());
        // Closed breakers are forgotten before open ones.
        b.lock().clear();
        for _ in 0..3 {
            call(&b, "open", false).unwrap();
        }
        for i in 0..10 {
            call(&b, &format!("flaky-{i}"), false).unwrap();
        }
        assert_eq!(b.state("open"), State::Open);
    }

    #[test]
    fn window_mask_covers_the_window() {
        let p = |window| BreakerPolicy {
            window,
            ..BreakerPolicy::default()
        };
        assert_eq!(p(1).window_mask(), 1);
        assert_eq!(p(20).window_mask().count_ones(), 20);
        assert_eq!(p(64).window_mask(), u64::MAX);
        assert_eq!(p(500).window_mask(), u64::MAX);
    }
}
