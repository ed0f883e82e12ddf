//! The asymmetric barrier pair of the fast release (design: `docs/architecture.md`, "The
//! release store"). A release stores `IDLE`, runs [`light`], then reads the
//! pool's state word; whoever changes that word in a way a release must notice (the first
//! waiter, close, shrink, reclaim, a partition yielding) writes it, runs
//! [`heavy`], then inspects the slots. Each pair acts as two `SeqCst`
//! fences: at least one side sees the other's write, so no wake-up is lost.
//!
//! On Linux with `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` the light side is only a
//! compiler fence and the heavy side is the system call, which makes every running thread
//! of the process execute a full barrier (a thread that is not running passed one when it
//! was switched out). Elsewhere, when the call is refused (seccomp, old kernels), under
//! Miri, or with `RIPTIDE_POOL_NO_MEMBARRIER` set, both are `fence(SeqCst)`.

#[cfg(not(riptide_model))]
mod imp {
    use std::sync::atomic::{compiler_fence, fence, AtomicBool, Ordering};

    /// Set once, before the first pool exists, by [`init`]. Relaxed: every thread that
    /// uses a pool happens-after its creation, hence after `init`; a stale `false` would
    /// only make a light barrier a full fence.
    static ASYMMETRIC: AtomicBool = AtomicBool::new(false);

    /// Registers the process for expedited membarriers (once). Called by every pool
    /// constructor before the pool is shared.
    pub(crate) fn init() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            let ok = std::env::var_os("RIPTIDE_POOL_NO_MEMBARRIER").is_none() && sys::register();
            ASYMMETRIC.store(ok, Ordering::Relaxed);
            tracing::debug!(
                membarrier = ok,
                "riptide_pool: fast release uses {}",
                if ok {
                    "a compiler fence (membarrier registered)"
                } else {
                    "fence(SeqCst)"
                }
            );
        });
    }

    /// Whether the light side is a compiler fence only. Pools read it once, at build, and
    /// keep it beside their state word (one cache line fewer on the fast release).
    pub(crate) fn asymmetric() -> bool {
        ASYMMETRIC.load(Ordering::Relaxed)
    }

    /// The fast side, for a caller that read [`asymmetric`] after [`init`]: free with
    /// membarrier, else a full fence.
    #[inline]
    pub(crate) fn light(asymmetric: bool) {
        if asymmetric {
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
    }

    /// The slow side: a process-wide barrier (microseconds), or a full fence.
    pub(crate) fn heavy() {
        fence(Ordering::SeqCst);
        if ASYMMETRIC.load(Ordering::Relaxed) {
            sys::membarrier();
        }
    }

    #[cfg(all(target_os = "linux", not(miri)))]
    mod sys {
        const QUERY: libc::c_long = 0;
        const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

        fn call(cmd: libc::c_long) -> libc::c_long {
            // SAFETY: membarrier takes (cmd, flags, cpu_id) integers and touches no memory
            // of ours; an unknown command or a refusal only returns -1.
            unsafe {
                libc::syscall(
                    libc::SYS_membarrier,
                    cmd,
                    0 as libc::c_long,
                    0 as libc::c_long,
                )
            }
        }

        pub(super) fn register() -> bool {
            let supported = call(QUERY);
            supported >= 0
                && supported & PRIVATE_EXPEDITED != 0
                && call(REGISTER_PRIVATE_EXPEDITED) == 0
        }

        pub(super) fn membarrier() {
            // Registered in `init`: the kernel does not refuse it afterwards. If it ever
            // did, the light side's compiler fences would no longer pair with anything and
            // a wake-up could be lost; stop rather than risk that.
            if call(PRIVATE_EXPEDITED) != 0 {
                eprintln!("riptide_pool: membarrier failed after registration; aborting");
                std::process::abort();
            }
        }
    }

    #[cfg(not(all(target_os = "linux", not(miri))))]
    mod sys {
        pub(super) fn register() -> bool {
            false
        }
        pub(super) fn membarrier() {}
    }
}

/// Under a model checker both sides are `SeqCst` fences: the models check the protocol
/// that the asymmetric pair implements.
#[cfg(riptide_model)]
mod imp {
    use crate::sync::{fence, Ordering};
    pub(crate) fn init() {}
    pub(crate) fn asymmetric() -> bool {
        false
    }
    pub(crate) fn light(_: bool) {
        fence(Ordering::SeqCst);
    }
    pub(crate) fn heavy() {
        fence(Ordering::SeqCst);
    }
}

pub(crate) use imp::*;
