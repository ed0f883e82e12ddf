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
    ///
    /// It runs in the acquiring caller's task, bounded by its deadline. If the caller stops
    /// waiting first (deadline, cancellation), the check finishes in the background for up
    /// to a second more: passed, the object goes back to the pool; still running then, it
    /// is dropped and the object destroyed.
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

/// A reset given as a closure.
type ResetFn<T> = Box<dyn Fn(&mut T) + Send + Sync>;
/// A health check given as a closure.
type HealthFn<T> = Box<dyn Fn(&T) -> bool + Send + Sync>;

/// How a pool readies a returned object: `reset`, then `is_healthy` (false: destroy it).
/// From the object's [`Poolable`] impl (`Pool::builder`), or from closures given to the
/// builder (`Pool::custom`, or to override a `Poolable` impl); one call on every return.
pub(crate) struct Recycle<T> {
    /// Runs the reset and the health check; what the return path calls.
    pub(crate) run: fn(&Recycle<T>, &mut T) -> bool,
    reset: Option<ResetFn<T>>,
    healthy: Option<HealthFn<T>>,
    /// The object's own methods (no-ops for a type without a `Poolable` impl).
    own_reset: fn(&mut T),
    own_healthy: fn(&T) -> bool,
}

impl<T> Recycle<T> {
    /// The object's `Poolable` impl, called directly.
    pub(crate) fn poolable() -> Self
    where
        T: Poolable,
    {
        Recycle {
            run: |_, t| {
                t.reset();
                t.is_healthy()
            },
            reset: None,
            healthy: None,
            own_reset: T::reset,
            own_healthy: T::is_healthy,
        }
    }

    /// No reset and always healthy, until closures say otherwise.
    pub(crate) fn nothing() -> Self {
        Recycle {
            run: |_, _| true,
            reset: None,
            healthy: None,
            own_reset: |_| {},
            own_healthy: |_| true,
        }
    }

    fn by_parts(&mut self) {
        self.run = |r, t| {
            match &r.reset {
                Some(f) => f(t),
                None => (r.own_reset)(t),
            }
            match &r.healthy {
                Some(f) => f(t),
                None => (r.own_healthy)(t),
            }
        };
    }

    pub(crate) fn set_reset(&mut self, f: ResetFn<T>) {
        self.reset = Some(f);
        self.by_parts();
    }

    pub(crate) fn set_healthy(&mut self, f: HealthFn<T>) {
        self.healthy = Some(f);
        self.by_parts();
    }
}

/// Object-safe form of [`Factory`], so `Pool<T>` has one type parameter.
pub(crate) trait DynFactory<T>: Send + Sync + 'static {
    fn create(&self) -> BoxFuture<'_, Result<T, BoxError>>;
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

// ------------------------------------------------------------ types the crate pools

/// The std collections people pool are emptied on return and keep their allocation.
/// (A pool that should not keep a huge buffer caps it with `PoolBuilder::is_healthy`, e.g.
/// `.is_healthy(|v: &Vec<u8>| v.capacity() <= 1 << 20)`.)
macro_rules! cleared_on_return {
    ($($ty:ty => [$($g:ident),*]),* $(,)?) => {$(
        impl<$($g: Send + 'static),*> Poolable for $ty {
            /// Empties it (`clear`); the allocation is kept for the next user.
            fn reset(&mut self) {
                self.clear();
            }
        }
    )*};
}

cleared_on_return! {
    Vec<T> => [T],
    std::collections::VecDeque<T> => [T],
    std::collections::HashMap<K, V, S> => [K, V, S],
    std::collections::HashSet<T, S> => [T, S],
    std::collections::BTreeMap<K, V> => [K, V],
    std::collections::BTreeSet<T> => [T],
    std::collections::BinaryHeap<T> => [T],
}

impl Poolable for String {
    /// Empties it (`clear`); the allocation is kept for the next user.
    fn reset(&mut self) {
        self.clear();
    }
}

/// `bytes::BytesMut` (feature `bytes`): emptied on return.
#[cfg(feature = "bytes")]
#[cfg_attr(docsrs, doc(cfg(feature = "bytes")))]
impl Poolable for bytes::BytesMut {
    /// Empties it (`clear`); the allocation is kept for the next user.
    fn reset(&mut self) {
        self.clear();
    }
}

/// tokio's `TcpStream` (feature `net`, on by default): healthy while the connection is
/// usable for the next caller: the peer has not closed it, no error is pending, and no
/// unread bytes wait in it (a reply left unread would reach the next user).
#[cfg(all(feature = "net", not(riptide_model)))]
#[cfg_attr(docsrs, doc(cfg(feature = "net")))]
impl Poolable for tokio::net::TcpStream {
    fn is_healthy(&self) -> bool {
        socket_is_quiet(self)
    }
}

/// tokio's `UnixStream` (feature `net`, on Unix): healthy on the same terms as
/// `TcpStream`.
#[cfg(all(feature = "net", unix, not(riptide_model)))]
#[cfg_attr(docsrs, doc(cfg(feature = "net")))]
impl Poolable for tokio::net::UnixStream {
    fn is_healthy(&self) -> bool {
        socket_is_quiet(self)
    }
}

/// A connected stream socket with nothing to read and no error: a non-blocking one-byte
/// `MSG_PEEK` would block. End of stream (0), unread data (> 0) and any error but
/// "would block" all mean the connection is not fit for the next user.
#[cfg(all(feature = "net", unix, not(riptide_model)))]
fn socket_is_quiet(s: &impl std::os::fd::AsRawFd) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: `recv` writes at most 1 byte into `byte`, a live local buffer of 1 byte; the
    // descriptor is borrowed from a live socket for the duration of the call; `MSG_PEEK`
    // leaves the data in the socket and `MSG_DONTWAIT` makes the call return at once.
    let n = unsafe {
        libc::recv(
            s.as_raw_fd(),
            byte.as_mut_ptr().cast(),
            1,
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    n < 0 && {
        let e = std::io::Error::last_os_error();
        e.kind() == std::io::ErrorKind::WouldBlock
    }
}

/// Off Unix: a pending socket error makes the stream unhealthy.
#[cfg(all(feature = "net", not(unix), not(riptide_model)))]
fn socket_is_quiet(s: &tokio::net::TcpStream) -> bool {
    matches!(s.take_error(), Ok(None))
}
