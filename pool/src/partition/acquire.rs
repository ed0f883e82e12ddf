//! Acquiring from a partition: [`PartitionAcquire`] (the options) and
//! [`PartitionAcquireFuture`], which runs an ordinary acquisition on the key's partition
//! and, if that partition is retired under it (`remove_idle_partitions`), tries again on
//! the key's new one.

use std::future::{Future, IntoFuture};
use std::hash::Hash;
use std::pin::Pin;
use std::task::Poll;

use super::{Part, PartitionedPool};
use crate::acquire::AcquireOptions;
use crate::error::PoolError;
use crate::{Acquire, AcquireFuture, Pooled};

/// An acquisition from a partition with options; await it (`IntoFuture`).
#[must_use = "an acquisition does nothing until awaited"]
pub struct PartitionAcquire<'a, K, T: Send + 'static> {
    pub(super) pool: &'a PartitionedPool<K, T>,
    pub(super) key: K,
    pub(super) opts: AcquireOptions,
}

impl<K: std::fmt::Debug, T: Send + 'static> std::fmt::Debug for PartitionAcquire<'_, K, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionAcquire")
            .field("key", &self.key)
            .field("options", &self.opts)
            .finish_non_exhaustive()
    }
}

impl<K, T> PartitionAcquire<'_, K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
    crate::acquire::option_setters!(
        priority: "Priority in the partition's wait queue (the key's `priority_boost` is \
            added).",
        timeout: "Overrides the acquire timeout for this call (`ZERO`: do not wait)."
    );
}

/// The future of a partition acquisition: `Send + 'static`.
///
/// # Cancel safety
///
/// Cancel-safe as [`AcquireFuture`](crate::AcquireFuture): dropping it before it completes
/// leaves its queue, gives back anything it had claimed or was creating on its key's
/// partition and on the global cap, and loses no object.
#[must_use = "futures do nothing unless polled"]
pub struct PartitionAcquireFuture<T: Send + 'static> {
    /// The acquisition on the key's current partition, or why there is none.
    current: Result<AcquireFuture<T>, Option<PoolError>>,
    /// Called when `current` ends in `Closed`: the next acquisition if the partition was
    /// retired under it (on the key's new partition), else `None`.
    retry: Option<RetryFn<T>>,
}

type RetryFn<T> = Box<dyn FnMut() -> Option<Result<AcquireFuture<T>, PoolError>> + Send>;

impl<T: Send + 'static> PartitionAcquireFuture<T> {
    /// How many callers of its partition will be served before this one, as things stand
    /// now; `None` unless it waits in the queue (see [`AcquireFuture::queue_position`]).
    #[must_use]
    pub fn queue_position(&self) -> Option<usize> {
        self.current.as_ref().ok()?.queue_position()
    }
}

impl<T: Send + 'static> Future for PartitionAcquireFuture<T> {
    type Output = Result<Pooled<T>, PoolError>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            let fut = match &mut this.current {
                Ok(f) => f,
                Err(e) => {
                    return Poll::Ready(Err(e.take().expect("polled after completion")));
                }
            };
            match Pin::new(fut).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(PoolError::Closed)) => {
                    match this.retry.as_mut().and_then(|r| r()) {
                        Some(Ok(next)) => this.current = Ok(next),
                        Some(Err(e)) => return Poll::Ready(Err(e)),
                        None => return Poll::Ready(Err(PoolError::Closed)),
                    }
                }
                Poll::Ready(r) => return Poll::Ready(r),
            }
        }
    }
}

impl<T: Send + 'static> std::fmt::Debug for PartitionAcquireFuture<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartitionAcquireFuture")
            .field("current", &self.current.as_ref().ok())
            .finish_non_exhaustive()
    }
}

impl<K, T> IntoFuture for PartitionAcquire<'_, K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
    type Output = Result<Pooled<T>, PoolError>;
    type IntoFuture = PartitionAcquireFuture<T>;

    /// Looks the key's partition up and runs the fast path at once (as `Pool::get`); the
    /// rest runs when polled. If the partition is removed before the acquisition is
    /// served (`remove_idle_partitions`), it tries again on the key's new partition.
    fn into_future(self) -> Self::IntoFuture {
        let mut part = match self.pool.part(&self.key) {
            Ok(p) => p,
            Err(e) => {
                return PartitionAcquireFuture {
                    current: Err(Some(e)),
                    retry: None,
                }
            }
        };
        let opts = self.opts;
        let first = on_part(&part, opts);
        let (pp, key) = (self.pool.clone(), self.key);
        let retry = move || {
            if pp.is_closed() || !part.pool.shared().was_retired() {
                return None;
            }
            pp.forget(&key, &part);
            Some(pp.part(&key).map(|p| {
                part = p;
                on_part(&part, opts)
            }))
        };
        PartitionAcquireFuture {
            current: Ok(first),
            retry: Some(Box::new(retry)),
        }
    }
}

/// An acquisition on one partition, with its priority boost applied.
fn on_part<T: Send + 'static>(part: &Part<T>, opts: AcquireOptions) -> crate::AcquireFuture<T> {
    Acquire {
        pool: &part.pool,
        opts: AcquireOptions {
            priority: opts.priority.boosted(part.boost),
            ..opts
        },
    }
    .into_future()
}
