//! Unit tests of the acquisition future's layout.

/// Every `get().await` moves the future, so its size is paid on the fast path: the
/// slow states keep their large parts (timer entry, tracing span) boxed.
#[test]
fn the_acquisition_future_stays_small() {
    let size = std::mem::size_of::<super::AcquireFuture<u64>>();
    assert!(size <= 10 * std::mem::size_of::<usize>(), "{size} bytes");
}

/// A settled future's guard sits at offset 16 (see `Settled`).
#[test]
fn a_settled_guard_sits_at_offset_16() {
    use std::future::IntoFuture;

    struct Obj;
    impl crate::Poolable for Obj {}
    let pool = crate::Pool::builder(|| async { Ok::<_, std::io::Error>(Obj) })
        .max_size(1)
        .build()
        .unwrap();
    drop(pool.get_blocking().unwrap());
    let f = pool.acquire().into_future();
    let super::State::Ready(settled) = &*f.state else {
        panic!("an idle object did not settle the future at once")
    };
    let at = std::ptr::from_ref(&settled.guard) as usize - std::ptr::from_ref(&f) as usize;
    assert_eq!(at, 16);
}

/// A settled future's options survive packing into one word: every priority, and
/// timeouts from none through zero to the largest (saturated at about 146 years).
#[test]
fn packed_options_round_trip() {
    use super::options::AcquireOptions;
    use super::state::Packed;
    use crate::Priority;
    use std::time::Duration;
    let here = std::panic::Location::caller();
    let cap = Duration::from_nanos((1 << 62) - 2);
    for priority in [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Critical,
    ] {
        for (timeout, back) in [
            (None, None),
            (Some(Duration::ZERO), Some(Duration::ZERO)),
            (Some(Duration::from_nanos(1)), Some(Duration::from_nanos(1))),
            (Some(Duration::from_secs(30)), Some(Duration::from_secs(30))),
            (Some(Duration::MAX), Some(cap)),
        ] {
            let o = AcquireOptions {
                priority,
                timeout,
                location: here,
            };
            let u = Packed::new(&o).unpack(here);
            assert_eq!((u.priority, u.timeout), (priority, back));
        }
    }
}
