//! What a [`Pool`](crate::Pool) offers besides `get`, for one key of a partitioned pool:
//! a checkout that never waits, one for threads without a runtime, and warming a key up.

use std::future::Future;
use std::hash::Hash;

use super::{PartitionAcquire, PartitionedPool};
use crate::error::PoolError;
use crate::Pooled;

impl<K, T> PartitionedPool<K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
    /// An idle object of `key`'s partition now, or [`PoolError::Exhausted`], as
    /// [`Pool::try_get`](crate::Pool::try_get): never waits, never creates, and never
    /// evicts another key's object.
    ///
    /// # Errors
    /// `Exhausted` when none of `key`'s objects is idle (callers of `key` queued ahead
    /// count as none), also when `key` has no partition; `Closed`.
    #[track_caller]
    pub fn try_get(&self, key: &K) -> Result<Pooled<T>, PoolError> {
        let part = self.inner.map.load().get(key).cloned();
        match part {
            Some(part) => match part.pool.try_get() {
                // Retired as idle (it held nothing) while we looked: nothing to take.
                Err(PoolError::Closed) if !self.is_closed() => Err(PoolError::Exhausted),
                r => r,
            },
            None if self.is_closed() => Err(PoolError::Closed),
            None => Err(PoolError::Exhausted),
        }
    }

    /// [`get`](Self::get) for threads without a runtime, as
    /// [`Pool::get_blocking`](crate::Pool::get_blocking).
    ///
    /// # Errors
    /// As [`get`](Self::get).
    ///
    /// # Panics
    /// On a tokio runtime worker thread: use `get(..).await` there, or `spawn_blocking`.
    #[track_caller]
    pub fn get_blocking(&self, key: &K) -> Result<Pooled<T>, PoolError> {
        self.acquire(key).blocking()
    }

    /// Creates objects for `key` until `n` of its objects are idle, or its cap or the
    /// global cap is reached; returns how many it made. Warming up uses free global
    /// capacity only: it never evicts another key's idle object.
    ///
    /// # Errors
    /// The first create error (objects already made stay), or `Closed`.
    ///
    /// # Cancel safety
    /// Dropping the future loses nothing: a create in flight still puts its object into
    /// the key's partition.
    pub fn warm_up(
        &self,
        key: &K,
        n: usize,
    ) -> impl Future<Output = Result<usize, PoolError>> + Send + 'static {
        let (pp, key) = (self.clone(), key.clone());
        async move {
            loop {
                let part = pp.part(&key)?;
                match part.pool.warm_up(n).await {
                    // Retired as idle before it made anything: the key's next partition.
                    Err(PoolError::Closed)
                        if !pp.is_closed() && part.pool.shared().was_retired() =>
                    {
                        pp.forget(&key, &part);
                    }
                    r => return r,
                }
            }
        }
    }
}

impl<K, T> PartitionAcquire<'_, K, T>
where
    K: Clone + Eq + Hash + Send + Sync + 'static,
    T: Send + 'static,
{
    /// Acquires from a thread without an async runtime, waiting up to the timeout (the
    /// partition's `acquire_timeout` unless `.timeout(..)` says otherwise).
    ///
    /// # Errors
    /// As `.await`: `Timeout`, `Closed`, `Create`, `CircuitOpen`.
    ///
    /// # Panics
    /// On a tokio runtime worker thread (blocking there can deadlock the runtime): use
    /// `.await` there, or call this inside `tokio::task::spawn_blocking`.
    pub fn blocking(self) -> Result<Pooled<T>, PoolError> {
        let part = self.pool.part(&self.key)?;
        let timeout = self.opts.timeout;
        part.pool
            .shared()
            .block_on_acquire(timeout, || std::future::IntoFuture::into_future(self))
    }
}
