//! Lifecycle hooks: user code at the points an object passes through, each able to reject
//! it (return `Err`; the object is destroyed, or for `on_detach` kept in the pool).
//!
//! | hook | runs | kind | a rejection |
//! | --- | --- | --- | --- |
//! | `post_create` | after `Factory::create`, before first use | async | the create fails (`PoolError::Create`) |
//! | `pre_recycle` | on checkout of a reused object, before `Factory::validate` | async | object destroyed, caller gets another |
//! | `post_recycle` | on checkout of a reused object, after validation | async | object destroyed, caller gets another |
//! | `on_release` | when a guard is dropped, after `reset` and `is_healthy` | sync | object destroyed instead of reused |
//! | `on_detach` | in `Pooled::try_detach` / `detach` | sync | object stays in the pool |
//!
//! The recycle hooks run on `get().await`, `acquire().await` and `get_blocking()`; `try_get`
//! never waits, so it skips them (and validation).
//!
//! Every hook gets the object and its [`ObjectMeta`] (id, age, idle time, how long the
//! current checkout lasted, use count). Async hooks take the object by `&mut` and return a
//! boxed future borrowing it:
//!
//! ```
//! # use riptide_pool::{ObjectMeta, Pool, Poolable};
//! # use std::time::Duration;
//! # struct Conn { ready: bool } impl Poolable for Conn {}
//! let pool: Pool<Conn> = Pool::builder(|| async { Ok::<_, std::io::Error>(Conn { ready: false }) })
//!     .post_create(|c: &mut Conn, _: ObjectMeta| Box::pin(async move {
//!         c.ready = true; // e.g. `SET search_path ...`
//!         Ok(())
//!     }))
//!     // Rotate connections that were held for very long (a long transaction).
//!     .on_release(|c: &mut Conn, m: ObjectMeta| {
//!         if c.ready && m.held_for < Duration::from_secs(60) { Ok(()) } else { Err("rotate".into()) }
//!     })
//!     .build()
//!     .unwrap();
//! ```

use crate::error::BoxError;
use crate::traits::BoxFuture;
use crate::ObjectMeta;

/// An async hook: `for<'a> Fn(&'a mut T, ObjectMeta) -> BoxFuture<'a, Result<(), BoxError>>`.
pub type AsyncHook<T> =
    Box<dyn for<'a> Fn(&'a mut T, ObjectMeta) -> BoxFuture<'a, Result<(), BoxError>> + Send + Sync>;

/// A sync hook: `Fn(&mut T, ObjectMeta) -> Result<(), BoxError>`.
pub type SyncHook<T> = Box<dyn Fn(&mut T, ObjectMeta) -> Result<(), BoxError> + Send + Sync>;

pub(crate) struct Hooks<T> {
    /// `reset` and `is_healthy` on return (the object's `Poolable` impl, or closures).
    pub recycle: crate::traits::Recycle<T>,
    pub post_create: Option<AsyncHook<T>>,
    pub pre_recycle: Option<AsyncHook<T>>,
    pub post_recycle: Option<AsyncHook<T>>,
    pub on_release: Option<SyncHook<T>>,
    pub on_detach: Option<SyncHook<T>>,
}

impl<T> Default for Hooks<T> {
    fn default() -> Self {
        Hooks {
            recycle: crate::traits::Recycle::nothing(),
            post_create: None,
            pre_recycle: None,
            post_recycle: None,
            on_release: None,
            on_detach: None,
        }
    }
}

impl<T> Hooks<T> {
    /// Whether a checkout of a reused object must go through the async path.
    pub(crate) fn on_checkout(&self) -> bool {
        self.pre_recycle.is_some() || self.post_recycle.is_some()
    }
}
