//! The conventions deadpool, bb8, r2d2 and sqlx users bring: limits that can be switched
//! off, `retain` and `clear_idle`, per-object metadata in hooks, configuration from files
//! and the environment, the factory's own error back from `PoolError::Create`.

mod common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{builder, Census};
use riptide_pool::{ObjectMeta, Pool, PoolConfig, PoolError, Poolable, Pooled};

fn census() -> Arc<Census> {
    Arc::new(Census::default())
}

#[tokio::test]
async fn max_lifetime_none_turns_off_the_types_own_lifetime() {
    #[derive(Debug)]
    struct Short;
    impl Poolable for Short {
        const MAX_LIFETIME: Option<Duration> = Some(Duration::from_millis(20));
    }
    let make = || async { Ok::<_, std::io::Error>(Short) };
    let off = Pool::builder(make).max_lifetime(None).build().unwrap();
    let on = Pool::builder(make).build().unwrap();
    drop(off.get().await.unwrap());
    drop(on.get().await.unwrap());
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert!(off.try_get().is_ok(), "lifetime off: the object lives on");
    assert!(on.try_get().is_err(), "the type's own lifetime retired it");
}

#[tokio::test]
async fn idle_timeout_none_keeps_idle_objects() {
    let c = census();
    let pool = builder(&c, Duration::ZERO)
        .idle_timeout(None)
        .leak_threshold(Duration::from_millis(5)) // maintenance runs every ~1 ms
        .build()
        .unwrap();
    drop(pool.get().await.unwrap());
    tokio::time::sleep(Duration::from_millis(60)).await;
    assert_eq!(pool.stats().idle, 1);
}

#[tokio::test]
async fn retain_and_clear_idle_drop_idle_objects_only() {
    let c = census();
    let pool = builder(&c, Duration::ZERO).max_size(4).build().unwrap();
    assert_eq!(pool.warm_up(3).await.unwrap(), 3);
    let held = pool.get().await.unwrap();
    let keep_id = held.id;
    // Remove the idle objects with an even id; the held one is never looked at.
    let mut seen = Vec::new();
    let removed = pool.retain(|obj, meta| {
        assert_eq!(obj.id as u64 + 1, meta.id, "meta names the object");
        seen.push(meta.id);
        meta.id % 2 == 1
    });
    assert_eq!(seen.len(), 2, "only idle objects: {seen:?}");
    assert_eq!(removed, seen.iter().filter(|id| *id % 2 == 0).count());
    assert_eq!(held.id, keep_id);
    let left = pool.clear_idle();
    assert_eq!(pool.stats().idle, 0);
    assert_eq!(removed + left, 2);
    assert_eq!(
        c.live.load(Ordering::SeqCst),
        1,
        "only the held object is alive"
    );
    drop(held);
    common::assert_consistent(&pool);
}

#[tokio::test]
async fn retain_survives_a_panicking_predicate() {
    let c = census();
    let pool = builder(&c, Duration::ZERO).max_size(2).build().unwrap();
    pool.warm_up(2).await.unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pool.retain(|_, _| panic!("predicate"))
    }));
    assert!(r.is_err());
    assert_eq!(pool.stats().idle, 2, "the object looked at went back");
}

#[tokio::test]
async fn hooks_and_guards_see_the_objects_metadata() {
    // An object's age is derived from its expiry and its (jittered) lifetime: check it
    // with a lifetime, with a long one (the jitter's cap) and without one.
    for life in [
        Some(Duration::from_secs(100)),
        Some(Duration::from_secs(7200)),
        None,
    ] {
        metadata_seen_with(life).await;
    }
}

async fn metadata_seen_with(life: Option<Duration>) {
    let c = census();
    let seen: Arc<Mutex<Vec<(&'static str, ObjectMeta)>>> = Arc::default();
    let (s1, s2, s3) = (seen.clone(), seen.clone(), seen.clone());
    let pool = builder(&c, Duration::ZERO)
        .max_size(1)
        .max_lifetime(life)
        .post_create(move |_, m| {
            s1.lock().unwrap().push(("post_create", m));
            Box::pin(async { Ok(()) })
        })
        .pre_recycle(move |_, m| {
            s2.lock().unwrap().push(("pre_recycle", m));
            Box::pin(async { Ok(()) })
        })
        .on_release(move |_, m| {
            s3.lock().unwrap().push(("on_release", m));
            Ok(())
        })
        .build()
        .unwrap();
    let g = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let held = Pooled::metadata(&g);
    assert_eq!(held.uses, 1);
    assert!(held.held_for >= Duration::from_millis(20), "{held:?}");
    drop(g);
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(pool.get().await.unwrap());
    let seen = seen.lock().unwrap();
    let names: Vec<_> = seen.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["post_create", "on_release", "pre_recycle", "on_release"]
    );
    let (_, created) = seen[0];
    assert_eq!((created.uses, created.age), (0, Duration::ZERO));
    let (_, released) = seen[1];
    assert!(
        released.held_for >= Duration::from_millis(20),
        "{released:?}"
    );
    let (_, recycled) = seen[2];
    assert!(
        recycled.idle_for >= Duration::from_millis(20),
        "{recycled:?}"
    );
    // Exact to the coarse clock, whatever the object's lifetime jitter.
    assert!(
        (Duration::from_millis(40)..Duration::from_secs(5)).contains(&recycled.age),
        "{recycled:?}"
    );
    assert!(
        seen.iter().all(|(_, m)| m.id == created.id),
        "one object throughout"
    );
}

#[tokio::test]
async fn a_config_from_a_file_applies_what_it_sets() {
    let cfg: PoolConfig = serde_json::from_str(
        r#"{ "max_size": 3, "acquire_timeout": "250ms", "idle_timeout": "off",
             "max_lifetime": 60000, "circuit_failures": 0, "name": "orders" }"#,
    )
    .unwrap();
    assert_eq!(cfg.max_size, Some(3));
    assert_eq!(cfg.acquire_timeout, Some(Duration::from_millis(250)));
    assert_eq!(cfg.idle_timeout, Some(None));
    assert_eq!(cfg.max_lifetime, Some(Some(Duration::from_secs(60))));
    assert_eq!(cfg.min_idle, None);
    let c = census();
    let pool = builder(&c, Duration::ZERO).config(&cfg).build().unwrap();
    assert_eq!(pool.stats().max_size, 3);
    assert_eq!(pool.acquire_timeout(), Duration::from_millis(250));
    // A bad value names what is wrong.
    let bad = serde_json::from_str::<PoolConfig>(r#"{ "acquire_timeout": "5 parsecs" }"#)
        .unwrap_err()
        .to_string();
    assert!(bad.contains("5 parsecs"), "{bad}");
    let unknown = serde_json::from_str::<PoolConfig>(r#"{ "max_sise": 3 }"#)
        .unwrap_err()
        .to_string();
    assert!(unknown.contains("max_sise"), "{unknown}");
    // A configuration that makes no sense is still a ConfigError at build().
    let cfg: PoolConfig = serde_json::from_str(r#"{ "max_size": 0 }"#).unwrap();
    let e = builder(&c, Duration::ZERO)
        .config(&cfg)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "max_size");
}

#[test]
fn a_config_from_the_environment_names_a_bad_variable() {
    std::env::set_var("RIPTIDE_TEST_POOL_MAX_SIZE", "7");
    std::env::set_var("RIPTIDE_TEST_POOL_MAX_LIFETIME", "off");
    let cfg = PoolConfig::from_env("RIPTIDE_TEST_POOL").unwrap();
    assert_eq!(cfg.max_size, Some(7));
    assert_eq!(cfg.max_lifetime, Some(None));
    std::env::set_var("RIPTIDE_TEST_BAD_ACQUIRE_TIMEOUT", "soon");
    let e = PoolConfig::from_env("RIPTIDE_TEST_BAD").unwrap_err();
    assert!(
        e.to_string().contains("RIPTIDE_TEST_BAD_ACQUIRE_TIMEOUT"),
        "{e}"
    );
    assert_eq!(e.field(), "acquire_timeout");
}

#[tokio::test]
async fn the_factorys_own_error_comes_back_from_create() {
    #[derive(Debug)]
    struct AuthFailed {
        user: String,
    }
    impl std::fmt::Display for AuthFailed {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "password authentication failed for {}", self.user)
        }
    }
    impl std::error::Error for AuthFailed {}
    let pool: Pool<common::Obj> =
        Pool::builder(|| async { Err::<common::Obj, _>(AuthFailed { user: "app".into() }) })
            .build()
            .unwrap();
    let e = pool.get().await.unwrap_err();
    assert_eq!(e.create_error::<AuthFailed>().unwrap().user, "app");
    let owned: AuthFailed = e.into_create_error().unwrap();
    assert_eq!(owned.user, "app");
    assert!(matches!(
        PoolError::Timeout.into_create_error::<AuthFailed>(),
        Err(PoolError::Timeout)
    ));
}
