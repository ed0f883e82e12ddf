//! The shuttle backend of the sync facade (`--cfg riptide_shuttle`): its scheduler controls
//! atomics, locks and threads. Cells and the waker stay plain (`plain.rs`).

pub(crate) use shuttle::future::block_on;
pub(crate) use shuttle::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering,
};
pub(crate) use shuttle::thread;
pub(crate) use std::sync::Arc;

/// `shuttle::sync::Mutex` with the facade's poison-free `lock`.
pub(crate) type Mutex<T> = super::PoisonFree<shuttle::sync::Mutex<T>>;
pub(crate) type MutexGuard<'a, T> = shuttle::sync::MutexGuard<'a, T>;
super::poison_free!(shuttle::sync::Mutex, shuttle::sync::MutexGuard);

pub(crate) use super::plain::{AtomicWaker, HeldMut, UnsafeCell};
