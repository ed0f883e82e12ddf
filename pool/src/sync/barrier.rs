//! The asymmetric barrier pair of the fast release (design: `docs/architecture.md`, "Why
//! the fast path needs no lock and no fence"). A calm pool's release stores `IDLE`, runs
//! [`light`], then reads the pool's state word; whoever changes that word in a way such a
//! release must notice (the switch into scarce mode, close, shrink, reclaim, a partition
//! yielding) writes it, runs [`heavy`], then inspects the slots. Each pair acts as two
//! `SeqCst` fences: at least one side sees the other's write, so no wake-up is lost.
//!
//! On Linux with `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` the light side is only a
//! compiler fence and the heavy side is the system call, which makes every running thread
//! of the process execute a full barrier (a thread that is not running passed one when it
//! was switched out). Elsewhere, when the call is refused (seccomp, old kernels), under
//! Miri, or with `RIPTIDE_POOL_NO_MEMBARRIER` set, both are `fence(SeqCst)`.

/// How a pool's returns are ordered against the rare parties that must see them (a caller
/// that starts waiting on a calm pool, `close`, a shrinking `resize`, a leak reclaim, a
/// partition yielding capacity). Chosen process-wide with [`set_release_barrier`]; every
/// pool keeps the choice in force when it was built.
///
/// | | a return nobody waits for | the rare party |
/// | --- | --- | --- |
/// | `Membarrier` | a compiler fence (nothing) | `membarrier(2)`: every CPU running a thread of the process executes a barrier |
/// | `Fence` | `fence(SeqCst)` (a few ns) | `fence(SeqCst)` |
///
/// `docs/architecture.md` and `docs/benchmarks.md` give the figures and when each wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReleaseBarrier {
    /// The asymmetric pair (the default): on Linux with `membarrier(2)` available; pools
    /// built where it is not (other systems, seccomp refusing it, Miri) use `Fence`.
    #[default]
    Membarrier,
    /// A `fence(SeqCst)` on both sides: no system call and no interrupts to other CPUs,
    /// a few ns more per return. Also chosen by setting `RIPTIDE_POOL_NO_MEMBARRIER`.
    Fence,
}

/// Chooses the [`ReleaseBarrier`] of pools built from now on (pools already built keep
/// theirs, so switching is safe at any time). The `RIPTIDE_POOL_NO_MEMBARRIER`
/// environment variable, read when the first pool is built, chooses `Fence` as well.
///
/// ```
/// use riptide_pool::{release_barrier, set_release_barrier, ReleaseBarrier};
/// set_release_barrier(ReleaseBarrier::Fence);
/// assert_eq!(release_barrier(), ReleaseBarrier::Fence);
/// ```
pub fn set_release_barrier(b: ReleaseBarrier) {
    imp::choose(b == ReleaseBarrier::Fence);
}

/// The [`ReleaseBarrier`] a pool built now gets (`Fence` where `membarrier(2)` is
/// unavailable, whatever was chosen).
pub fn release_barrier() -> ReleaseBarrier {
    if for_new_pool() {
        ReleaseBarrier::Membarrier
    } else {
        ReleaseBarrier::Fence
    }
}

#[cfg(not(riptide_model))]
mod imp {
    use std::sync::atomic::{compiler_fence, fence, AtomicBool, Ordering};

    /// Whether the process is registered for expedited membarriers: set once, by the
    /// first [`for_new_pool`] that wants them.
    static REGISTERED: AtomicBool = AtomicBool::new(false);
    /// Whether the user chose `Fence` (`set_release_barrier`, or the environment variable
    /// read once, at the first pool). Relaxed, as `REGISTERED`: each pool reads both once,
    /// at build, and keeps what it read; the two sides of its pair come from that.
    static FENCE: AtomicBool = AtomicBool::new(false);
    static ONCE: std::sync::Once = std::sync::Once::new();

    fn init() {
        ONCE.call_once(|| {
            if std::env::var_os("RIPTIDE_POOL_NO_MEMBARRIER").is_some() {
                FENCE.store(true, Ordering::Relaxed);
            }
            if !FENCE.load(Ordering::Relaxed) {
                REGISTERED.store(sys::register(), Ordering::Relaxed);
            }
        });
    }

    pub(super) fn choose(fence: bool) {
        init();
        FENCE.store(fence, Ordering::Relaxed);
        if !fence && !REGISTERED.load(Ordering::Relaxed) {
            REGISTERED.store(sys::register(), Ordering::Relaxed);
        }
    }

    /// Whether a pool built now uses the asymmetric pair (the light side a compiler
    /// fence only). Pools read it once, at build, and keep it beside their state word:
    /// both sides of a pool's pair then always agree, whatever is chosen later.
    pub(crate) fn for_new_pool() -> bool {
        init();
        let asym = !FENCE.load(Ordering::Relaxed) && REGISTERED.load(Ordering::Relaxed);
        crate::rt::trace::quietly(|| {
            tracing::trace!(membarrier = asym, "riptide_pool: a pool's barrier pair")
        });
        asym
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

    /// The slow side, for a pool built with [`for_new_pool`] = `asymmetric`: a
    /// process-wide barrier (microseconds), or a full fence.
    pub(crate) fn heavy(asymmetric: bool) {
        fence(Ordering::SeqCst);
        if asymmetric {
            sys::membarrier();
        }
    }

    /// After an RMW (the scarce return's push), before a read that must not be ordered
    /// before it (I4). On x86 a locked instruction already is a full barrier, so only the
    /// compiler must be kept from moving the read; elsewhere a full fence.
    #[inline]
    pub(crate) fn after_rmw() {
        #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
        compiler_fence(Ordering::SeqCst);
        #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
        fence(Ordering::SeqCst);
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
    pub(super) fn choose(_: bool) {}
    pub(crate) fn for_new_pool() -> bool {
        false
    }
    pub(crate) fn light(_: bool) {
        fence(Ordering::SeqCst);
    }
    pub(crate) fn heavy(_: bool) {
        fence(Ordering::SeqCst);
    }
    pub(crate) fn after_rmw() {
        fence(Ordering::SeqCst);
    }
}

pub(crate) use imp::*;
