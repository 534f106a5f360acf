//! Waiting, written once: [`Backoff`] for retrying an operation, [`poll_until`] for waiting on a
//! condition with a deadline. Nothing in the project sleeps to synchronise with anything else.

use std::{future::Future, time::Duration};

/// Doubling delays between retries, from `initial` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { next: initial, max }
    }

    /// The delay before the next attempt, doubling the one after (up to the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.max);
        delay
    }

    /// Sleeps for [`Backoff::next_delay`].
    pub async fn wait(&mut self) {
        tokio::time::sleep(self.next_delay()).await;
    }

    /// The delay [`Backoff::wait`] would sleep next, without taking it.
    pub fn peek(&self) -> Duration {
        self.next
    }
}

/// Why [`poll_until`] returned without a value.
#[derive(Debug, thiserror::Error)]
pub enum PollError<E> {
    #[error("gave up after {waited:?} waiting for {what}")]
    TimedOut { what: String, waited: Duration },
    #[error(transparent)]
    Check(E),
}

impl PollError<anyhow::Error> {
    /// One error for either way a wait can end: the check's own, or the time-out naming what
    /// was waited for.
    pub fn into_anyhow(self) -> anyhow::Error {
        match self {
            Self::Check(error) => error,
            timed_out @ Self::TimedOut { .. } => anyhow::anyhow!(timed_out.to_string()),
        }
    }
}

/// Calls `check` every `every` until it yields `Some`, or fails once `deadline` has passed (the
/// error names `what`). An error from `check` ends the wait at once.
pub async fn poll_until<T, E, F, Fut>(
    what: &str,
    deadline: Duration,
    every: Duration,
    mut check: F,
) -> Result<T, PollError<E>>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let give_up = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await.map_err(PollError::Check)? {
            return Ok(value);
        }
        if tokio::time::Instant::now() >= give_up {
            return Err(PollError::TimedOut {
                what: what.to_owned(),
                waited: deadline,
            });
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_maximum() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(350));
        let delays: Vec<_> = (0..4).map(|_| backoff.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
    }

    #[tokio::test]
    async fn poll_until_returns_the_value_or_names_what_it_waited_for() {
        let mut calls = 0;
        let found: Result<u32, PollError<std::convert::Infallible>> = poll_until(
            "three calls",
            Duration::from_secs(1),
            Duration::from_millis(10),
            || {
                calls += 1;
                let value = (calls == 3).then_some(calls);
                async move { Ok(value) }
            },
        )
        .await;
        assert_eq!(found.ok(), Some(3));
        let never: Result<(), PollError<std::convert::Infallible>> = poll_until(
            "nothing",
            Duration::from_millis(100),
            Duration::from_millis(10),
            || async { Ok(None) },
        )
        .await;
        assert_eq!(
            never.err().map(|e| e.to_string()),
            Some("gave up after 100ms waiting for nothing".to_owned())
        );
    }
}
