//! The one retry policy of the network sinks (MNS and `http`). Each
//! attempt's failure is classed as retry, throttle or permanent; retries
//! back off exponentially with equal jitter, throttling four times harder,
//! until the attempts configured in `[sinks.NAME.retry]` are spent. The
//! entries of a batch that fail on their own are retried on their own.

use std::future::Future;
use std::time::Duration;

use crate::breaker::Breaker;
use crate::config::RetryConfig;

/// What a failed attempt calls for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Retry with backoff (network errors, timeouts, 5xx).
    Retry,
    /// The peer asked us to slow down: back off harder, then retry.
    Throttle,
    /// Retrying cannot help: the dead-letter store at once.
    Permanent,
}

/// A failure that knows its class.
pub trait Classify {
    fn class(&self) -> Class;
}

/// How an answer is classed by its HTTP status alone (an unknown MNS code,
/// a body that is not MNS XML from a proxy or load balancer, a webhook's
/// answer): 429 is throttling, 408 and 5xx are transient, any other status
/// permanent.
pub fn status_class(status: u16) -> Class {
    match status {
        429 => Class::Throttle,
        408 | 500.. => Class::Retry,
        _ => Class::Permanent,
    }
}

impl RetryConfig {
    /// The wait before retry number `attempt` (1 = the first retry):
    /// exponential and capped, with equal jitter (uniform over the upper
    /// half of the step, so that every retry waits at least half its step,
    /// which throttling needs); throttling backs off four times harder.
    pub fn backoff(&self, attempt: u32, throttled: bool) -> Duration {
        let factor = if throttled { 4 } else { 1 };
        let base = self
            .initial_backoff_ms
            .saturating_mul(1 << attempt.clamp(1, 21).saturating_sub(1));
        let cap = base
            .saturating_mul(factor)
            .min(self.max_backoff_ms.saturating_mul(factor));
        Duration::from_millis(fastrand::u64(cap / 2..=cap.max(1)))
    }
}

/// Runs `attempt` until it succeeds, fails permanently, the attempts are
/// spent, or `breaker` opens: its value, or its last failure and the
/// attempts made. Each answer is recorded with the breaker.
pub async fn retry<T, E, Fut>(
    policy: &RetryConfig,
    sink: &str,
    breaker: Option<&Breaker>,
    mut attempt: impl FnMut() -> Fut,
) -> Result<T, (E, u32)>
where
    E: Classify + Clone + std::fmt::Display,
    Fut: Future<Output = Result<T, E>>,
{
    let mut one = retry_each(policy, sink, breaker, 1, |_| {
        let f = attempt();
        async move { f.await.map(|t| vec![Ok(t)]) }
    })
    .await;
    one.pop().expect("retry_each answers each of its entries")
}

/// Runs `attempt` over the `n` entries of a batch until each has succeeded,
/// failed permanently, or spent its attempts; each later attempt gets only
/// the entries still pending (their positions, ascending). An attempt
/// fails whole (`Err`) or answers each entry it was given, in order. Once
/// `breaker` is open, no retry waits: the pending entries end with their
/// last (transient) failure.
pub async fn retry_each<T, E, F, Fut>(
    policy: &RetryConfig,
    sink: &str,
    breaker: Option<&Breaker>,
    n: usize,
    mut attempt: F,
) -> Vec<Result<T, (E, u32)>>
where
    E: Classify + Clone + std::fmt::Display,
    F: FnMut(Vec<usize>) -> Fut,
    Fut: Future<Output = Result<Vec<Result<T, E>>, E>>,
{
    let mut results: Vec<Option<Result<T, (E, u32)>>> = (0..n).map(|_| None).collect();
    let mut pending: Vec<usize> = (0..n).collect();
    let mut tries = 0;
    while !pending.is_empty() {
        tries += 1;
        let last = tries >= policy.max_attempts;
        let answers = match attempt(pending.clone()).await {
            Ok(each) if each.len() == pending.len() => {
                // The peer answered, whatever each entry's fate.
                if let Some(b) = breaker {
                    b.record_up();
                }
                each
            }
            Ok(each) => panic!(
                "an attempt answered {} of its {} entries",
                each.len(),
                pending.len()
            ),
            Err(e) => {
                match (breaker, e.class()) {
                    (Some(b), Class::Retry) => b.record_down(&e.to_string()),
                    (Some(b), Class::Permanent) => b.record_up(),
                    (Some(b), Class::Throttle) => b.record_throttled(&e.to_string()),
                    (None, _) => {}
                }
                pending.iter().map(|_| Err(e.clone())).collect()
            }
        };
        let mut throttled = false;
        let mut again = Vec::new();
        for (&i, answer) in pending.iter().zip(answers) {
            match answer {
                Ok(t) => results[i] = Some(Ok(t)),
                Err(e) if e.class() == Class::Permanent => results[i] = Some(Err((e, tries))),
                Err(e) => {
                    throttled |= e.class() == Class::Throttle;
                    crate::log_limit::transient(sink, &e.to_string());
                    again.push((i, e));
                }
            }
        }
        let open = breaker.is_some_and(|b| !b.is_closed());
        if last || open {
            for (i, e) in again.drain(..) {
                results[i] = Some(Err((e, tries)));
            }
        }
        pending = again.into_iter().map(|(i, _)| i).collect();
        if !pending.is_empty() {
            // Counted per entry sent again.
            crate::count_retries(sink, pending.len() as u64);
            tokio::time::sleep(policy.backoff(tries, throttled)).await;
        }
    }
    results
        .into_iter()
        .map(|r| r.expect("every entry has a result once none is pending"))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    #[derive(Debug, Clone, PartialEq)]
    struct F(Class);

    impl Classify for F {
        fn class(&self) -> Class {
            self.0
        }
    }

    impl std::fmt::Display for F {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{:?}", self.0)
        }
    }

    fn fast(max_attempts: u32) -> RetryConfig {
        RetryConfig {
            max_attempts,
            initial_backoff_ms: 1,
            max_backoff_ms: 2,
        }
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let cfg = RetryConfig {
            max_attempts: 8,
            initial_backoff_ms: 100,
            max_backoff_ms: 1000,
        };
        for _ in 0..100 {
            let d1 = cfg.backoff(1, false).as_millis();
            assert!((50..=100).contains(&d1), "{d1}");
            let d3 = cfg.backoff(3, false).as_millis();
            assert!((200..=400).contains(&d3), "{d3}");
            let d9 = cfg.backoff(9, false).as_millis();
            assert!((500..=1000).contains(&d9), "{d9}");
            let t = cfg.backoff(1, true).as_millis();
            assert!((200..=400).contains(&t), "{t}");
        }
    }

    #[test]
    fn statuses_are_classed() {
        assert_eq!(status_class(429), Class::Throttle);
        for s in [408, 500, 502, 503, 504, 599] {
            assert_eq!(status_class(s), Class::Retry, "{s}");
        }
        for s in [400, 401, 403, 404, 413] {
            assert_eq!(status_class(s), Class::Permanent, "{s}");
        }
    }

    #[tokio::test]
    async fn retries_until_success_permanence_or_the_last_attempt() {
        let calls = RefCell::new(0);
        let r: Result<u32, (F, u32)> = retry(&fast(5), "t", None, || {
            *calls.borrow_mut() += 1;
            let n = *calls.borrow();
            async move {
                if n < 3 {
                    Err(F(Class::Throttle))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(r, Ok(3));
        let r: Result<(), _> =
            retry(&fast(5), "t", None, || async { Err(F(Class::Permanent)) }).await;
        assert_eq!(r, Err((F(Class::Permanent), 1)));
        let r: Result<(), _> = retry(&fast(4), "t", None, || async { Err(F(Class::Retry)) }).await;
        assert_eq!(r, Err((F(Class::Retry), 4)));
    }

    #[tokio::test]
    async fn batch_entries_are_retried_alone() {
        // Entry 0 succeeds, 1 fails permanently, 2 fails once then succeeds,
        // 3 always fails transiently; the second attempt fails whole.
        let seen = RefCell::new(Vec::new());
        let out: Vec<Result<usize, (F, u32)>> = retry_each(&fast(4), "t", None, 4, |pending| {
            seen.borrow_mut().push(pending.clone());
            let round = seen.borrow().len();
            async move {
                if round == 2 {
                    return Err(F(Class::Retry));
                }
                Ok(pending
                    .iter()
                    .map(|&i| match i {
                        0 => Ok(0),
                        1 => Err(F(Class::Permanent)),
                        2 if round == 1 => Err(F(Class::Retry)),
                        2 => Ok(2),
                        _ => Err(F(Class::Retry)),
                    })
                    .collect())
            }
        })
        .await;
        assert_eq!(
            *seen.borrow(),
            vec![vec![0, 1, 2, 3], vec![2, 3], vec![2, 3], vec![3]]
        );
        assert_eq!(
            out,
            vec![
                Ok(0),
                Err((F(Class::Permanent), 1)),
                Ok(2),
                Err((F(Class::Retry), 4))
            ]
        );
    }

    #[tokio::test]
    async fn an_open_breaker_ends_retries_at_once() {
        let b = Breaker::new(
            "t",
            crate::breaker::BreakerConfig {
                failures: 2,
                ..Default::default()
            },
        );
        let calls = RefCell::new(0);
        let r: Result<(), (F, u32)> = retry(&fast(8), "t", Some(&b), || {
            *calls.borrow_mut() += 1;
            async { Err(F(Class::Retry)) }
        })
        .await;
        // Two failures open it; the second attempt is the last.
        assert_eq!(r, Err((F(Class::Retry), 2)));
        assert_eq!(*calls.borrow(), 2);
        assert!(!b.is_closed());
    }
}
