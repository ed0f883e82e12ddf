//! The two traits users implement: [`Poolable`] for the resource, [`Factory`] to make it.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::error::BoxError;

/// A resource that can live in a pool.
///
/// Every method has a default, so `impl Poolable for MyConn {}` is enough; or use
/// `#[derive(Poolable)]` (feature `derive`, on by default) to generate field resets.
pub trait Poolable: Send + Sized + 'static {
    /// Runs synchronously when a guard is dropped, before the object is idle again.
    fn reset(&mut self) {}
    /// Cheap check run after [`reset`](Poolable::reset) on return; an unhealthy object is
    /// destroyed instead of being reused.
    fn is_healthy(&self) -> bool {
        true
    }
    /// Checkouts after which an object is retired; the builder's `max_uses` overrides it.
    const MAX_USES: Option<u64> = None;
    /// Age after which an object is retired; the builder's `max_lifetime` overrides it.
    const MAX_LIFETIME: Option<Duration> = None;
}

/// Creates (and optionally validates) pooled objects.
///
/// Any `Fn() -> Fut + Send + Sync + 'static` closure with
/// `Fut: Future<Output = Result<T, E>> + Send` is a factory; clone captured state into an
/// `async move` block:
///
/// ```
/// # use riptide_pool::{Pool, Poolable};
/// # struct Conn(String); impl Poolable for Conn {}
/// let url = String::from("db://localhost");
/// let pool: Pool<Conn> = Pool::builder(move || {
///     let url = url.clone();
///     async move { Ok::<_, std::io::Error>(Conn(url)) }
/// })
/// .build()
/// .unwrap();
/// ```
pub trait Factory<T>: Send + Sync + 'static {
    /// The factory's error; it reaches callers as `PoolError::Create`.
    type Error: Into<BoxError>;
    /// Makes a new object.
    fn create(&self) -> impl Future<Output = Result<T, Self::Error>> + Send;
    /// Async check of an idle object before it is handed out (a ping); default: `true`.
    fn validate(&self, _obj: &mut T) -> impl Future<Output = bool> + Send {
        async { true }
    }
}

impl<T, E, F, Fut> Factory<T> for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send,
    E: Into<BoxError>,
{
    type Error = E;
    fn create(&self) -> impl Future<Output = Result<T, E>> + Send {
        self()
    }
}

pub(crate) type BoxFuture<'a, O> = Pin<Box<dyn Future<Output = O> + Send + 'a>>;

/// Object-safe form of [`Factory`], so `Pool<T>` has one type parameter.
pub(crate) trait DynFactory<T>: Send + Sync + 'static {
    fn create(&self) -> BoxFuture<'_, Result<T, BoxError>>;
    #[allow(dead_code)] // used by the lifecycle issue's checkout validation
    fn validate<'a>(&'a self, obj: &'a mut T) -> BoxFuture<'a, bool>;
}

impl<T: Send + 'static, F: Factory<T>> DynFactory<T> for F {
    fn create(&self) -> BoxFuture<'_, Result<T, BoxError>> {
        let fut = Factory::create(self);
        Box::pin(async move { fut.await.map_err(Into::into) })
    }
    fn validate<'a>(&'a self, obj: &'a mut T) -> BoxFuture<'a, bool> {
        Box::pin(Factory::validate(self, obj))
    }
}
