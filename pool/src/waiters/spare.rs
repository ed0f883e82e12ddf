//! One spare waiter cell per thread: a caller whose wait ends (it is served, gives up, or
//! its create is settled) leaves its cell here for the next wait on the same thread, so a
//! pool that keeps going from empty to one waiter and back does not allocate a cell per
//! wait. Cells are interchangeable (nothing in them belongs to a pool once retired).
//!
//! Off under the model checkers, whose threads are not the process's: there `take` finds
//! nothing and `retire` drops the cell (`Arc::get_mut` would also add an ordering edge of
//! its own to every model, one the protocol does not have).

use super::Waiter;
use crate::sync::Arc;

#[cfg(not(riptide_model))]
std::thread_local! {
    static SPARE: std::cell::Cell<Option<Arc<Waiter>>> = const { std::cell::Cell::new(None) };
}

/// This thread's spare cell, if it has one (none while its thread-locals are being
/// destroyed).
#[inline]
pub(super) fn take() -> Option<Arc<Waiter>> {
    #[cfg(not(riptide_model))]
    return SPARE.try_with(std::cell::Cell::take).ok().flatten();
    #[cfg(riptide_model)]
    None
}

/// Keeps `cell` as this thread's spare (dropping any earlier one), cleared by `clear`, if
/// nobody else holds it (a decider may still hold its clone for a moment: then the cell
/// is simply dropped).
#[cfg(not(riptide_model))]
#[inline]
pub(super) fn retire(mut cell: Arc<Waiter>, clear: impl FnOnce(&mut Waiter)) {
    if let Some(c) = Arc::get_mut(&mut cell) {
        clear(c);
        // After its thread-locals are gone, the cell is just dropped.
        let mut cell = Some(cell);
        let _ = SPARE.try_with(|s| s.set(cell.take()));
    }
}

/// Under the model checkers: the cell is dropped.
#[cfg(riptide_model)]
pub(super) fn retire(cell: Arc<Waiter>, _clear: impl FnOnce(&mut Waiter)) {
    drop(cell);
}
