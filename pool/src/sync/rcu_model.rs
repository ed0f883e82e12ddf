//! The model checkers' [`Rcu`]: a mutex around the current version (natively it is
//! `arc-swap`), so the models see every read and update of a partitioned pool's map.

use super::Mutex;

/// The model checkers' [`Rcu`]: a mutex around the current version.
pub(crate) struct Rcu<T>(Mutex<std::sync::Arc<T>>);

impl<T> Rcu<T> {
    pub(crate) fn new(v: T) -> Self {
        Self(Mutex::new(std::sync::Arc::new(v)))
    }
    pub(crate) fn load(&self) -> std::sync::Arc<std::sync::Arc<T>> {
        std::sync::Arc::new(self.0.lock().clone())
    }
    pub(crate) fn update(&self, mut f: impl FnMut(&std::sync::Arc<T>) -> std::sync::Arc<T>) {
        let mut g = self.0.lock();
        *g = f(&g);
    }
}
