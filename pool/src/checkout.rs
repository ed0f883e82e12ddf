//! The checkout step: what runs on a reused object before a caller gets it.

use crate::shared::Shared;
use crate::stats::DestroyReason;

/// The checkout step on owned, reused slot `i`: `pre_recycle`, `Factory::validate` (if
/// idle at least `validation_interval`), `post_recycle`. `Err`: why it was rejected. A
/// panicking check is a failed check: the object is destroyed and the caller gets another;
/// the panic is reported, never passed to an unrelated caller.
pub(crate) async fn recycle<T: Send + 'static>(
    shared: &Shared<T>,
    i: usize,
) -> Result<(), DestroyReason> {
    let slot = shared.slot(i);
    let idle_ms = shared.coarse_ms().saturating_sub(slot.idle_since());
    let due = u128::from(idle_ms) >= shared.config().validation_interval.as_millis();
    let meta = shared.meta(i);
    // SAFETY: we own slot `i` (claimed, not yet handed to a guard), so this is the only
    // reference to the object until we return.
    let obj = unsafe { &mut *slot.obj() };
    let hooks = shared.hooks();
    let verdict = crate::rt::exec::CatchUnwind::new(async {
        if let Some(h) = &hooks.pre_recycle {
            if h(obj, meta).await.is_err() {
                return Some(DestroyReason::Rejected);
            }
        }
        if due && !shared.factory().validate(obj).await {
            return Some(DestroyReason::ValidationFailed);
        }
        if let Some(h) = &hooks.post_recycle {
            if h(obj, meta).await.is_err() {
                return Some(DestroyReason::Rejected);
            }
        }
        None
    })
    .await;
    match verdict {
        Ok(None) => Ok(()),
        Ok(Some(reason)) => Err(reason),
        Err(msg) => {
            crate::rt::trace::quietly(|| {
                tracing::error!(
                    pool = %shared.config().name,
                    panic = msg,
                    "riptide_pool: a checkout check (validate or a recycle hook) panicked"
                )
            });
            Err(DestroyReason::Panicked)
        }
    }
}
