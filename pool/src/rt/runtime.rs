//! The tokio runtimes the pool runs its work on: the one captured at `build()`, usable
//! only while it is alive ([`Runtime`], [`Liveness`]), and the pool's own runtime for the
//! creates no other runtime can be trusted to run ([`create_runtime`]).

use std::future::Future;

/// A tokio runtime captured at `build()`, usable while it is alive.
///
/// Liveness comes from a guard ([`Runtime::liveness`]) that the pool's maintenance task
/// holds: tokio drops every task when a runtime shuts down, and the guard's drop marks the
/// runtime gone. A tokio `Handle` itself cannot tell: spawning on the handle of a runtime
/// that is gone silently drops the task.
#[derive(Clone)]
pub(crate) struct Runtime {
    pub(super) handle: tokio::runtime::Handle,
    alive: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Runtime {
    /// The runtime current on this thread, if any.
    pub(crate) fn capture() -> Option<Self> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        Some(Runtime {
            handle,
            alive: std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true)),
        })
    }

    /// The handle, while the runtime is alive.
    pub(crate) fn handle(&self) -> Option<&tokio::runtime::Handle> {
        // Acquire: pairs with the guard's Release; a stale `true` is the same race as the
        // runtime shutting down just after this check, which spawning already tolerates.
        self.alive
            .load(std::sync::atomic::Ordering::Acquire)
            .then_some(&self.handle)
    }

    /// Whether it is a current-thread runtime (see [`is_current_thread`]).
    pub(crate) fn is_current_thread(&self) -> bool {
        is_current_thread(&self.handle)
    }

    /// Spawns `fut` on the runtime, handing it the guard that marks the runtime gone when
    /// the runtime drops the task (or when `fut` ends).
    pub(crate) fn spawn_with_liveness<F>(&self, fut: impl FnOnce(Liveness) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let guard = Liveness(self.alive.clone());
        self.handle.spawn(fut(guard));
    }
}

/// Marks its runtime gone when dropped (see [`Runtime`]).
pub(crate) struct Liveness(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Liveness {
    /// Marks the runtime gone now.
    pub(crate) fn mark_gone(&self) {
        // Release: pairs with `Runtime::handle`.
        self.0.store(false, std::sync::atomic::Ordering::Release);
    }
}

impl Drop for Liveness {
    fn drop(&mut self) {
        self.mark_gone();
    }
}

/// The pool's own runtime for creates no other runtime can be trusted to run (see
/// [`on_create_runtime`]): one per process, multi-thread with a single worker, built the
/// first time it is needed and never shut down. `None` if it could not be built.
pub(super) fn create_runtime() -> Option<&'static tokio::runtime::Runtime> {
    static CREATES: std::sync::OnceLock<Option<tokio::runtime::Runtime>> =
        std::sync::OnceLock::new();
    CREATES
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("riptide-pool-create")
                .enable_all()
                .build()
                .ok()
        })
        .as_ref()
}

/// Whether `h` is a current-thread runtime's (which runs its tasks only while its owner
/// drives it).
pub(super) fn is_current_thread(h: &tokio::runtime::Handle) -> bool {
    h.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread
}
