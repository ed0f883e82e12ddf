//! The WASM adapter against the real guest component built from `adapters/guest`, on real
//! pages (the toolchain's copy of The Rust Programming Language).

use riptide_adapters::corpus::{book_pages, file_url};
use riptide_adapters::doc::extract_doc;
use riptide_adapters::wasm::{
    CallMode, CircuitState, Diagnostic, WasmExtractorPool, WasmPoolConfig,
};
use riptide_adapters::{ConfigError, ExtractError, ExtractionMode};
use riptide_pool::PoolEvent;
use std::time::Duration;

/// Compiled components are cached here across the tests (and runs) of this target dir, so
/// only the first pool of a run pays for compiling the guest.
fn config() -> WasmPoolConfig {
    let mut c = WasmPoolConfig::default();
    c.cache_dir = Some(std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache"));
    c.max_instances = 2;
    c.initial_pool_size = 0;
    c.timeout = Duration::from_secs(30);
    c
}

async fn pool(c: WasmPoolConfig) -> WasmExtractorPool {
    WasmExtractorPool::new(c).await.unwrap()
}

/// Pages of the book concatenated to at least `bytes`: a real document that takes the guest
/// well over a millisecond to parse.
fn big_document(bytes: usize) -> String {
    let mut s = String::new();
    for (_, html) in book_pages(usize::MAX) {
        s.push_str(&html);
        if s.len() >= bytes {
            break;
        }
    }
    s
}

async fn agrees_with_native(mode: CallMode, pages: usize) {
    let mut c = config();
    c.call_mode = mode;
    c.fallback = false;
    let pool = pool(c).await;
    for (path, html) in book_pages(pages) {
        let url = file_url(&path);
        for m in [
            ExtractionMode::Article,
            ExtractionMode::Full,
            ExtractionMode::Metadata,
        ] {
            let wasm = pool.extract(&html, &url, m).await.unwrap();
            let native = extract_doc(&html, &url, m).unwrap();
            assert!(wasm.title.is_some(), "{}", path.display());
            assert_eq!(wasm, native, "{} {m:?}", path.display());
        }
    }
    let s = pool.stats();
    assert_eq!((s.failures, s.fallbacks), (0, 0));
    assert_eq!(s.succeeded, 3 * pages as u64);
    assert_eq!(s.instantiations, 3 * pages as u64, "a fresh store per call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guest_agrees_with_the_native_extractor_on_real_pages() {
    agrees_with_native(CallMode::Async, 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_blocking_call_mode_agrees_too() {
    agrees_with_native(CallMode::Blocking, 5).await;
}

#[tokio::test]
async fn a_fresh_store_per_call_leaks_no_state_and_reuse_mode_keeps_it() {
    let mut c = config();
    c.max_instances = 1;
    let fresh = pool(c.clone()).await;
    for _ in 0..4 {
        assert_eq!(fresh.diagnostic(Diagnostic::Bump).await.unwrap(), 1);
    }
    c.reuse_calls = 3;
    c.initial_pool_size = 1;
    let reuse = pool(c).await;
    let mut seen = Vec::new();
    for _ in 0..7 {
        seen.push(reuse.diagnostic(Diagnostic::Bump).await.unwrap());
    }
    assert_eq!(
        seen,
        [1, 2, 3, 1, 2, 3, 1],
        "state lives for `reuse_calls` calls, then a new instance"
    );
    let s = reuse.stats();
    // Instances: the warm-up's, and new ones at calls 4 and 7; the other five calls reused.
    assert_eq!((s.instantiations, s.reused_calls), (3, 5));
}

#[tokio::test]
async fn a_runaway_guest_is_stopped_at_its_deadline() {
    for mode in [CallMode::Async, CallMode::Blocking] {
        let mut c = config();
        c.call_mode = mode;
        c.timeout = Duration::from_millis(200);
        let pool = pool(c).await;
        match pool.diagnostic(Diagnostic::Spin(u64::MAX)).await {
            Err(ExtractError::Timeout(d)) => assert_eq!(d, Duration::from_millis(200)),
            other => panic!("{mode:?}: {other:?}"),
        }
        let s = pool.stats();
        assert_eq!((s.epoch_timeouts, s.failures), (1, 1), "{mode:?}");
        // The pool is fine afterwards: the interrupted store was dropped, not reused.
        assert_eq!(pool.diagnostic(Diagnostic::Bump).await.unwrap(), 1);
        assert_ne!(pool.diagnostic(Diagnostic::Spin(1000)).await.unwrap(), 0);
        assert_eq!(pool.stats().pool.in_use, 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extraction_past_its_deadline_falls_back_or_fails_per_config() {
    let big = big_document(3 << 20);
    let url = "https://doc.rust-lang.org/book/";
    let mut c = config();
    c.timeout = Duration::from_millis(1);
    let with_fallback = pool(c.clone()).await;
    let doc = with_fallback
        .extract(&big, url, ExtractionMode::Full)
        .await
        .unwrap();
    assert_eq!(
        doc,
        extract_doc(&big, url, ExtractionMode::Full).unwrap(),
        "the native answer"
    );
    let s = with_fallback.stats();
    assert_eq!((s.epoch_timeouts, s.fallbacks, s.succeeded), (1, 1, 0));

    c.fallback = false;
    let strict = pool(c).await;
    match strict.extract(&big, url, ExtractionMode::Full).await {
        Err(ExtractError::Timeout(d)) => assert_eq!(d, Duration::from_millis(1)),
        other => panic!("{other:?}"),
    }
    assert_eq!(strict.stats().fallbacks, 0);
}

#[tokio::test]
async fn memory_past_the_limit_fails_cleanly_and_is_counted() {
    let mut c = config();
    c.memory_limit_bytes = 16 << 20;
    c.fallback = false;
    let pool = pool(c).await;
    // The guest asks for 64 MiB; the store refuses the growth; the guest sees an allocation
    // failure and returns 0.
    assert_eq!(
        pool.diagnostic(Diagnostic::Allocate(64 << 20))
            .await
            .unwrap(),
        0
    );
    // Past the guest's 32-bit address space: refused, not truncated to 1 MiB and granted.
    assert_eq!(
        pool.diagnostic(Diagnostic::Allocate((1 << 32) + (1 << 20)))
            .await
            .unwrap(),
        0
    );
    let s = pool.stats();
    assert!(s.grow_failures >= 1, "{s:?}");
    assert!(s.peak_memory_pages <= 256, "never above 16 MiB: {s:?}");
    assert_ne!(
        pool.diagnostic(Diagnostic::Allocate(4 << 20))
            .await
            .unwrap(),
        0
    );
    // A document whose DOM does not fit: the guest's allocator aborts (a trap), counted.
    let big = big_document(6 << 20);
    match pool
        .extract(&big, "https://e.com/", ExtractionMode::Full)
        .await
    {
        Err(ExtractError::Guest(m)) => assert!(!m.is_empty()),
        other => panic!("{:?}", other.map(|d| d.text.len())),
    }
    let s2 = pool.stats();
    assert!(
        s2.grow_failures > s.grow_failures && s2.failures == 1,
        "{s2:?}"
    );
    // The host is unaffected, and the next call gets a fresh store.
    assert_eq!(pool.diagnostic(Diagnostic::Bump).await.unwrap(), 1);
}

#[tokio::test]
async fn the_breaker_opens_on_failures_falls_back_and_closes_after_a_good_trial() {
    let mut c = config();
    c.memory_limit_bytes = 4 << 20;
    c.breaker_failures = 2;
    // Long enough to outlast the second failure's native fallback on a loaded CI machine
    // (a debug-build parse of 3 MiB) and the rejected call after it.
    c.breaker_cool_down = Duration::from_secs(10);
    let pool = pool(c).await;
    let mut events = pool.events();
    let big = big_document(3 << 20);
    let (_, small) = book_pages(1).pop().unwrap();
    let url = "https://doc.rust-lang.org/book/";
    for _ in 0..2 {
        // Each fails in the guest (memory) and falls back to native.
        assert!(pool
            .extract(&big, url, ExtractionMode::Metadata)
            .await
            .is_ok());
    }
    let s = pool.stats();
    assert_eq!(
        (s.failures, s.fallbacks, s.circuit, s.circuit_opened),
        (2, 2, CircuitState::Open, 1)
    );
    // Open: the guest is not called at all.
    let doc = pool
        .extract(&small, url, ExtractionMode::Article)
        .await
        .unwrap();
    assert_eq!(
        doc,
        extract_doc(&small, url, ExtractionMode::Article).unwrap()
    );
    let s = pool.stats();
    assert_eq!(
        (s.circuit_rejections, s.fallbacks, s.guest_calls),
        (1, 3, 2)
    );
    let t = std::time::Instant::now();
    while pool.stats().circuit == CircuitState::Open {
        assert!(t.elapsed() < Duration::from_secs(30), "the cool-down ends");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(pool.stats().circuit, CircuitState::HalfOpen);
    pool.extract(&small, url, ExtractionMode::Article)
        .await
        .unwrap();
    let s = pool.stats();
    assert_eq!(
        (s.circuit, s.succeeded, s.fallbacks),
        (CircuitState::Closed, 1, 3)
    );
    assert_eq!(
        guest_breaker_events(&mut events),
        ["guest_breaker_opened", "guest_breaker_closed"]
    );

    let mut strict = config();
    strict.fallback = false;
    strict.breaker_failures = 1;
    strict.memory_limit_bytes = 4 << 20;
    let strict = WasmExtractorPool::new(strict).await.unwrap();
    assert!(matches!(
        strict.extract(&big, url, ExtractionMode::Full).await,
        Err(ExtractError::Guest(_))
    ));
    assert!(matches!(
        strict.extract(&small, url, ExtractionMode::Full).await,
        Err(ExtractError::CircuitOpen)
    ));
}

/// Waits (up to 30 s) until `done` holds for the pool's stats.
async fn until(
    pool: &WasmExtractorPool,
    what: &str,
    done: impl Fn(&riptide_adapters::wasm::WasmStats) -> bool,
) {
    let t = std::time::Instant::now();
    while !done(&pool.stats()) {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "{what}: {:?}",
            pool.stats()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn health_checks_probe_the_guest_and_close_the_breaker_without_a_caller() {
    let mut c = config();
    c.memory_limit_bytes = 4 << 20;
    c.breaker_failures = 1;
    c.breaker_successes = 2;
    c.breaker_cool_down = Duration::from_millis(300);
    c.health_check_interval = Some(Duration::from_millis(50));
    let pool = pool(c).await;
    let mut events = pool.events();
    until(&pool, "probes run on an idle pool", |s| {
        s.health_checks >= 2
    })
    .await;
    let s = pool.stats();
    assert_eq!(
        (
            s.health_check_failures,
            s.failures,
            s.circuit,
            s.extractions
        ),
        (0, 0, CircuitState::Closed, 0)
    );
    // One call the guest fails (memory) opens the breaker; the native extractor answers.
    let big = big_document(3 << 20);
    let probes_before = pool.stats().health_checks;
    assert!(pool
        .extract(
            &big,
            "https://doc.rust-lang.org/book/",
            ExtractionMode::Metadata
        )
        .await
        .is_ok());
    let opened = pool.stats();
    assert_eq!((opened.circuit_opened, opened.fallbacks), (1, 1));
    // Nobody calls again: after the cool-down, the probes are the trials, and two good ones
    // in a row close the breaker (perhaps already, while the fallback was parsing).
    until(&pool, "the probes close the breaker", |s| {
        s.circuit == CircuitState::Closed
    })
    .await;
    let s = pool.stats();
    assert_eq!((s.extractions, s.succeeded), (1, 0), "no caller's request");
    assert!(s.health_checks >= probes_before + 2, "{s:?}");
    assert_eq!(
        guest_breaker_events(&mut events),
        ["guest_breaker_opened", "guest_breaker_closed"]
    );
    // The task ends with the last handle: the instance pool sees no more checkouts.
    let instances = pool.pool().clone();
    drop(pool);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let acquired = instances.stats().acquired;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(instances.stats().acquired, acquired);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_is_bounded_by_the_instance_pool() {
    let pool = pool(config()).await;
    let pages = std::sync::Arc::new(book_pages(12));
    let mut tasks = Vec::new();
    for t in 0..8 {
        let (pool, pages) = (pool.clone(), pages.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..pages.len() {
                let (path, html) = &pages[(i + t) % pages.len()];
                let url = file_url(path);
                let doc = pool
                    .extract(html, &url, ExtractionMode::Article)
                    .await
                    .unwrap();
                assert_eq!(
                    doc,
                    extract_doc(html, &url, ExtractionMode::Article).unwrap()
                );
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let s = pool.stats();
    assert!(
        s.pool.size <= 2 && s.pool.in_use == 0 && s.pool.pending_acquisitions == 0,
        "{s:?}"
    );
    assert_eq!((s.succeeded, s.fallbacks), (96, 0));
}

#[tokio::test]
async fn a_call_abandoned_mid_flight_loses_nothing() {
    let mut c = config();
    c.max_instances = 1;
    c.reuse_calls = 100;
    c.timeout = Duration::from_secs(30);
    let pool = pool(c).await;
    assert_eq!(pool.diagnostic(Diagnostic::Bump).await.unwrap(), 1);
    // The caller gives up while the guest spins; the async call yields at each tick, so the
    // timeout fires, and the future (with its instance) is dropped.
    let r = tokio::time::timeout(
        Duration::from_millis(100),
        pool.diagnostic(Diagnostic::Spin(u64::MAX)),
    )
    .await;
    assert!(r.is_err(), "abandoned");
    let s = pool.stats();
    assert_eq!((s.pool.in_use, s.pool.size), (0, 1), "the slot came back");
    // The interrupted instance was not reused: a new one starts at 1.
    assert_eq!(pool.diagnostic(Diagnostic::Bump).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_starting_together_share_one_compile_cache_safely() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "wasm-cache-race-{}-{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    ));
    let mut c = config();
    c.cache_dir = Some(dir.clone());
    // Three pools compile at once and all write the cache: each must start.
    let starts: Vec<_> = (0..3)
        .map(|_| tokio::spawn(WasmExtractorPool::new(c.clone())))
        .collect();
    for s in starts {
        let pool = s.await.unwrap().unwrap();
        assert!(!pool.stats().startup.from_cache);
    }
    let later = pool(c).await;
    assert!(
        later.stats().startup.from_cache,
        "the next start loads the compiled guest"
    );
    assert_eq!(later.diagnostic(Diagnostic::Bump).await.unwrap(), 1);
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn bad_input_is_refused_without_a_failure() {
    let mut c = config();
    c.max_document_bytes = 1000;
    let pool = pool(c).await;
    match pool
        .extract(&"x".repeat(1001), "https://e.com/", ExtractionMode::Full)
        .await
    {
        Err(ExtractError::TooLarge {
            size: 1001,
            limit: 1000,
        }) => {}
        other => panic!("{other:?}"),
    }
    match pool
        .extract("<p>x</p>", "no url", ExtractionMode::Full)
        .await
    {
        Err(ExtractError::InvalidUrl { url, .. }) => assert_eq!(url, "no url"),
        other => panic!("{other:?}"),
    }
    let s = pool.stats();
    assert_eq!(
        (s.refused, s.failures, s.fallbacks, s.circuit),
        (2, 0, 0, CircuitState::Closed)
    );
}

#[tokio::test]
async fn config_from_env_and_validation() {
    // The only test in this binary that touches these variables.
    let set = |k: &str, v: Option<&str>| match v {
        Some(v) => std::env::set_var(k, v),
        None => std::env::remove_var(k),
    };
    let cores = std::thread::available_parallelism().unwrap().get();
    set("RIPTIDE_WASM_INSTANCES_PER_WORKER", Some("3"));
    set("RIPTIDE_WASM_INITIAL_POOL_SIZE", Some("2"));
    set("RIPTIDE_WASM_TIMEOUT_SECS", Some("0.5"));
    set("RIPTIDE_WASM_MEMORY_LIMIT_MB", Some("64"));
    set("CB_FAILURE_THRESHOLD", Some("3"));
    set("CB_SUCCESS_THRESHOLD", Some("2"));
    set("CB_TIMEOUT_MS", Some("1500"));
    set("HEALTH_CHECK_INTERVAL_MS", Some(" 250 "));
    let c = WasmPoolConfig::from_env().unwrap();
    assert_eq!(c.max_instances, 3 * cores);
    assert_eq!(c.initial_pool_size, 2);
    assert_eq!(c.timeout, Duration::from_millis(500));
    assert_eq!(c.memory_limit_bytes, 64 << 20);
    assert_eq!((c.breaker_failures, c.breaker_successes), (3, 2));
    assert_eq!(c.breaker_cool_down, Duration::from_millis(1500));
    assert_eq!(c.health_check_interval, Some(Duration::from_millis(250)));
    for (var, bad) in [
        ("RIPTIDE_WASM_INSTANCES_PER_WORKER", "0"),
        ("RIPTIDE_WASM_TIMEOUT_SECS", "soon"),
        ("RIPTIDE_WASM_TIMEOUT_SECS", "0"),
        ("RIPTIDE_WASM_MEMORY_LIMIT_MB", "-5"),
        ("CB_FAILURE_THRESHOLD", "five"),
        ("CB_FAILURE_THRESHOLD", "0"),
        ("CB_SUCCESS_THRESHOLD", "1.5"),
        ("CB_SUCCESS_THRESHOLD", "0"),
        ("CB_TIMEOUT_MS", "10s"),
        ("CB_TIMEOUT_MS", "-1"),
        ("HEALTH_CHECK_INTERVAL_MS", "often"),
        ("HEALTH_CHECK_INTERVAL_MS", "0"),
        // (2^44 + 16) MiB is past `usize` in bytes: an error, not a wrap to 16 MiB.
        ("RIPTIDE_WASM_MEMORY_LIMIT_MB", "17592186044432"),
    ] {
        let keep = std::env::var(var).unwrap();
        set(var, Some(bad));
        match WasmPoolConfig::from_env() {
            Err(e @ ConfigError::Env { var: v, .. }) => {
                assert_eq!(v, var);
                assert!(e.to_string().contains(var), "{e}");
            }
            other => panic!("{var}={bad}: {other:?}"),
        }
        set(var, Some(&keep));
    }
    set("RIPTIDE_WASM_INITIAL_POOL_SIZE", Some("100000"));
    assert!(matches!(
        WasmPoolConfig::from_env(),
        Err(ConfigError::Invalid {
            field: "initial_pool_size",
            ..
        })
    ));
    for k in [
        "RIPTIDE_WASM_INSTANCES_PER_WORKER",
        "RIPTIDE_WASM_INITIAL_POOL_SIZE",
        "RIPTIDE_WASM_TIMEOUT_SECS",
        "RIPTIDE_WASM_MEMORY_LIMIT_MB",
        "CB_FAILURE_THRESHOLD",
        "CB_SUCCESS_THRESHOLD",
        "CB_TIMEOUT_MS",
        "HEALTH_CHECK_INTERVAL_MS",
    ] {
        set(k, None);
    }
    assert_eq!(
        WasmPoolConfig::from_env().unwrap(),
        WasmPoolConfig::default()
    );
    // Instance counts past what the pooling allocator can be sized for (its core
    // instances are 8 per component instance, counted in a u32) are typed errors, not an
    // arithmetic overflow, whether set directly or through the per-core variable.
    for n in [WasmPoolConfig::MAX_INSTANCES + 1, 600_000_000, usize::MAX] {
        let mut c = config();
        c.max_instances = n;
        assert!(
            matches!(
                WasmExtractorPool::new(c).await,
                Err(ConfigError::Invalid {
                    field: "max_instances",
                    ..
                })
            ),
            "{n}"
        );
    }
    set(
        "RIPTIDE_WASM_INSTANCES_PER_WORKER",
        Some(&usize::MAX.to_string()),
    );
    assert!(matches!(
        WasmPoolConfig::from_env(),
        Err(ConfigError::Invalid {
            field: "max_instances",
            ..
        })
    ));
    set("RIPTIDE_WASM_INSTANCES_PER_WORKER", None);
    // A limit past a 32-bit memory's 4 GiB (which wasmtime's pooling allocator refuses
    // with a message of its own) is the field's error.
    set("RIPTIDE_WASM_MEMORY_LIMIT_MB", Some("8192"));
    assert!(matches!(
        WasmPoolConfig::from_env(),
        Err(ConfigError::Invalid {
            field: "memory_limit_bytes",
            ..
        })
    ));
    set("RIPTIDE_WASM_MEMORY_LIMIT_MB", None);
    let mut c = config();
    c.memory_limit_bytes = WasmPoolConfig::MAX_MEMORY_LIMIT_BYTES + 1;
    assert!(matches!(
        WasmExtractorPool::new(c).await,
        Err(ConfigError::Invalid {
            field: "memory_limit_bytes",
            ..
        })
    ));
    // The largest limits `validate` accepts build a pool that runs the guest: every
    // instance's address space reserved (two 4 GiB memories and their guards each).
    let mut c = config();
    c.max_instances = WasmPoolConfig::MAX_INSTANCES;
    c.memory_limit_bytes = WasmPoolConfig::MAX_MEMORY_LIMIT_BYTES;
    let p = WasmExtractorPool::new(c)
        .await
        .expect("the largest pool validate accepts");
    assert_eq!(p.diagnostic(Diagnostic::Bump).await.unwrap(), 1);
    drop(p);
    let mut c = config();
    c.reuse_calls = 0;
    assert!(matches!(
        WasmExtractorPool::new(c).await,
        Err(ConfigError::Invalid {
            field: "reuse_calls",
            ..
        })
    ));
    let mut c = config();
    c.max_document_bytes = 65 << 20;
    assert!(matches!(
        WasmExtractorPool::new(c).await,
        Err(ConfigError::Invalid {
            field: "max_document_bytes",
            ..
        })
    ));
    let mut c = config();
    c.memory_limit_bytes = 1 << 20;
    assert!(matches!(
        WasmExtractorPool::new(c).await,
        Err(ConfigError::Invalid {
            field: "memory_limit_bytes",
            ..
        })
    ));
    type Field = fn(&mut WasmPoolConfig);
    let zeroes: [(&str, Field); 4] = [
        ("breaker_failures", |c| c.breaker_failures = 0),
        ("breaker_successes", |c| c.breaker_successes = 0),
        ("breaker_cool_down", |c| {
            c.breaker_cool_down = Duration::ZERO
        }),
        ("health_check_interval", |c| {
            c.health_check_interval = Some(Duration::ZERO)
        }),
    ];
    for (name, zero) in zeroes {
        let mut c = config();
        zero(&mut c);
        match WasmExtractorPool::new(c).await {
            Err(ConfigError::Invalid { field, .. }) => assert_eq!(field, name),
            other => panic!("{name}: {other:?}"),
        }
    }
}

/// The names of the guest breaker's transitions among the events received so far.
fn guest_breaker_events(
    events: &mut tokio::sync::broadcast::Receiver<PoolEvent>,
) -> Vec<&'static str> {
    let mut got = Vec::new();
    while let Ok(e) = events.try_recv() {
        if let PoolEvent::Custom { source, name, .. } = e {
            if source == riptide_adapters::wasm::EVENT_SOURCE {
                got.push(name);
            }
        }
    }
    got
}

// ---- Hostile-user cases ----

/// A half-open breaker admits one trial at a time. A trial whose caller gives up (here while
/// it waits for the only instance) must give the trial back, or no caller — and no health
/// probe — is ever admitted again: the guest is cut off for good.
#[tokio::test]
async fn a_trial_call_abandoned_by_its_caller_does_not_wedge_the_breaker() {
    let mut c = config();
    c.max_instances = 1;
    c.memory_limit_bytes = 4 << 20;
    c.breaker_failures = 1;
    c.breaker_cool_down = Duration::from_millis(200);
    c.fallback = false;
    let pool = pool(c).await;
    let big = big_document(3 << 20);
    let (_, small) = book_pages(1).pop().unwrap();
    let url = "https://doc.rust-lang.org/book/";
    assert!(matches!(
        pool.extract(&big, url, ExtractionMode::Metadata).await,
        Err(ExtractError::Guest(_))
    ));
    until(&pool, "the cool-down ends", |s| {
        s.circuit == CircuitState::HalfOpen
    })
    .await;
    // The trial caller gives up while it waits for the only instance.
    let held = pool.pool().get().await.unwrap();
    let r = tokio::time::timeout(
        Duration::from_millis(100),
        pool.extract(&small, url, ExtractionMode::Article),
    )
    .await;
    assert!(r.is_err(), "abandoned");
    drop(held);
    // Another caller may try now: within a few cool-downs a good trial closes the breaker.
    let t = std::time::Instant::now();
    loop {
        match pool.extract(&small, url, ExtractionMode::Article).await {
            Ok(_) => break,
            Err(ExtractError::CircuitOpen) if t.elapsed() < Duration::from_secs(3) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!(
                "{:?} after {:?}: {:?}",
                other.map(|d| d.title),
                t.elapsed(),
                pool.stats()
            ),
        }
    }
    assert_eq!(pool.stats().circuit, CircuitState::Closed);
}

/// "An instance that trapped, timed out, or whose caller gave up mid-call is never reused"
/// — in the blocking call mode too, where the call runs on a blocking thread that outlives
/// the caller's future.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_call_abandoned_mid_flight_is_not_reused() {
    let mut c = config();
    c.call_mode = CallMode::Blocking;
    c.max_instances = 1;
    c.reuse_calls = 100;
    c.initial_pool_size = 1;
    let pool = pool(c).await;
    assert_eq!(pool.diagnostic(Diagnostic::Bump).await.unwrap(), 1);
    // Calibrate a spin that takes about 800 ms.
    let probe = 20_000_000u64;
    let t = std::time::Instant::now();
    pool.diagnostic(Diagnostic::Spin(probe)).await.unwrap();
    let per_round = t.elapsed().as_secs_f64() / probe as f64;
    let rounds = (0.8 / per_round) as u64;
    let r = tokio::time::timeout(
        Duration::from_millis(50),
        pool.diagnostic(Diagnostic::Spin(rounds)),
    )
    .await;
    assert!(r.is_err(), "abandoned");
    // The abandoned instance must not serve the next call: a new one starts at 1.
    assert_eq!(
        pool.diagnostic(Diagnostic::Bump).await.unwrap(),
        1,
        "the instance whose caller gave up was reused: {:?}",
        pool.stats()
    );
}

/// A very long `timeout` ("effectively none") passes `validate`; calls must then work, not
/// panic computing the deadline.
#[tokio::test]
async fn a_very_long_timeout_does_not_panic_the_call() {
    for mode in [CallMode::Async, CallMode::Blocking] {
        let mut c = config();
        c.call_mode = mode;
        c.timeout = Duration::MAX;
        let pool = match WasmExtractorPool::new(c).await {
            Err(ConfigError::Invalid { .. }) => continue,
            other => other.unwrap(),
        };
        let r = tokio::spawn({
            let pool = pool.clone();
            async move { pool.diagnostic(Diagnostic::Bump).await }
        })
        .await;
        match r {
            Ok(Ok(1)) => {}
            other => panic!("{mode:?}: {other:?}"),
        }
        assert_eq!(pool.stats().failures, 0, "{mode:?}");
    }
}

/// "Calls do not block the executor" — including the native fallback, which parses the whole
/// document: on a single-threaded runtime, a ticker task must keep running meanwhile.
#[tokio::test]
async fn the_native_fallback_does_not_block_the_executor() {
    let mut c = config();
    c.timeout = Duration::from_millis(1);
    let pool = pool(c).await;
    let big = big_document(3 << 20);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ticker = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut worst = Duration::ZERO;
            let mut last = std::time::Instant::now();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(1)).await;
                worst = worst.max(last.elapsed());
                last = std::time::Instant::now();
            }
            worst
        }
    });
    tokio::task::yield_now().await;
    let t = std::time::Instant::now();
    let doc = pool
        .extract(
            &big,
            "https://doc.rust-lang.org/book/",
            ExtractionMode::Full,
        )
        .await
        .unwrap();
    let took = t.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let worst = ticker.await.unwrap();
    assert!(!doc.text.is_empty());
    assert_eq!(pool.stats().fallbacks, 1);
    assert!(
        worst < Duration::from_millis(250),
        "the executor was blocked for {worst:?} (the extraction took {took:?})"
    );
}

/// "A trap, timeout or instantiation failure counts against the breaker ... In every such
/// case the native extractor answers": in reuse mode the warm instance is instantiated by
/// the instance pool's factory, and a failure there must not bypass fallback, breaker and
/// `failures` (forced here by the allocator exhaustion of the resize case above, which is
/// open: this checks only that such a failure is handled as documented).
#[tokio::test]
async fn a_warm_instantiation_failure_falls_back_like_any_other() {
    let mut c = config();
    c.max_instances = 1;
    c.reuse_calls = 10;
    let pool = pool(c).await;
    pool.pool().resize(5);
    // Three warm instances: the engine's pooling allocator (max_instances + 2) is full.
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.pool().get().await.unwrap());
    }
    let (_, small) = book_pages(1).pop().unwrap();
    let url = "https://doc.rust-lang.org/book/";
    let r = tokio::time::timeout(
        Duration::from_secs(20),
        pool.extract(&small, url, ExtractionMode::Article),
    )
    .await
    .expect("answers");
    let s = pool.stats();
    match r {
        Ok(doc) => assert_eq!(
            doc,
            extract_doc(&small, url, ExtractionMode::Article).unwrap()
        ),
        Err(e) => panic!("{e:?}; {s:?}"),
    }
    assert_eq!((s.fallbacks, s.failures), (1, 1), "{s:?}");
}

/// A page nested deeper than the guest's stack: the guest traps (an error of that call),
/// and the native fallback, on the blocking pool's 2 MiB threads, extracts it instead of
/// overflowing its stack and aborting the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_nested_too_deep_for_the_guest_is_answered_by_the_fallback() {
    let mut html = String::from("<html><body>");
    for _ in 0..200_000 {
        html.push_str("<span>x ");
    }
    html.push_str("</body></html>");
    let p = pool(config()).await;
    let doc = p
        .extract(&html, "https://e.com/", ExtractionMode::Full)
        .await
        .unwrap();
    assert_eq!(doc.text.matches('x').count(), 200_000);
    let s = p.stats();
    assert_eq!((s.failures, s.fallbacks), (1, 1), "{s:?}");
}

/// Drives `f` on this thread, with no tokio runtime (as another executor would).
fn block_by_hand<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

/// A caller on another executor (no tokio runtime current) is served in both call modes:
/// `Blocking` runs its call on a thread of its own there, rather than panicking for want
/// of tokio's blocking pool.
#[test]
fn callers_outside_tokio_are_served_in_both_call_modes() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    for mode in [CallMode::Async, CallMode::Blocking] {
        let mut c = config();
        c.call_mode = mode;
        let p = rt.block_on(WasmExtractorPool::new(c)).unwrap();
        let d = std::thread::spawn(move || {
            block_by_hand(p.extract(
                "<title>t</title><p>x</p>",
                "https://e.com/",
                ExtractionMode::Full,
            ))
        })
        .join()
        .unwrap_or_else(|_| panic!("{mode:?}: the caller panicked"))
        .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert_eq!(d.title.as_deref(), Some("t"), "{mode:?}");
    }
}

/// Bad input is the caller's error whatever the breaker's state: with the breaker open, a
/// page URL that does not parse is `InvalidUrl` and counted as refused, neither
/// `CircuitOpen` nor an answer from the fallback.
#[tokio::test]
async fn bad_input_is_refused_whatever_the_breaker_says() {
    for fallback in [true, false] {
        let mut c = config();
        c.breaker_failures = 1;
        c.timeout = Duration::from_millis(50);
        c.fallback = fallback;
        let pool = pool(c).await;
        let big = big_document(3 << 20);
        let _ = pool
            .extract(&big, "https://e.com/", ExtractionMode::Full)
            .await;
        assert_eq!(
            pool.stats().circuit,
            CircuitState::Open,
            "fallback={fallback}"
        );
        let before = pool.stats();
        let r = pool
            .extract("<p>x</p>", "no url", ExtractionMode::Full)
            .await;
        let s = pool.stats();
        assert!(
            matches!(r, Err(ExtractError::InvalidUrl { .. })),
            "fallback={fallback}: {r:?}"
        );
        assert_eq!(
            (s.refused - before.refused, s.fallbacks - before.fallbacks),
            (1, 0),
            "fallback={fallback}: {s:?}"
        );
    }
}

/// A page URL too long to be one is refused before the guest, where copying it in could
/// exhaust the guest's memory and count as the guest failing (opening the breaker).
#[tokio::test]
async fn an_oversized_url_is_refused_not_a_guest_failure() {
    let mut c = config();
    c.memory_limit_bytes = 8 << 20;
    c.breaker_failures = 1;
    c.fallback = false;
    let pool = pool(c).await;
    let url = format!("https://e.com/{}", "a".repeat(10 << 20));
    let r = pool
        .extract("<title>t</title>", &url, ExtractionMode::Full)
        .await;
    assert!(
        matches!(&r, Err(ExtractError::InvalidUrl { reason, .. }) if reason.contains("limit")),
        "{:?}",
        r.map(|d| d.title)
    );
    let s = pool.stats();
    assert_eq!(
        (s.failures, s.circuit, s.refused),
        (0, CircuitState::Closed, 1),
        "{s:?}"
    );
}

/// The native fallback runs at most `max_fallbacks` extractions at once: with the breaker
/// open and one allowed, six callers at once get one fallback answer, and the five that
/// cannot have a turn within `acquire_timeout` get the error that sent them there
/// (`CircuitOpen`), counted as shed. The unit comes back with the extraction: the next
/// caller falls back again. `Some(0)` is a config error.
#[tokio::test]
async fn fallbacks_are_bounded_by_max_fallbacks() {
    let mut c = config();
    c.max_fallbacks = Some(0);
    assert!(matches!(
        c.validate(),
        Err(ConfigError::Invalid {
            field: "max_fallbacks",
            ..
        })
    ));
    c.max_fallbacks = Some(WasmPoolConfig::MAX_INSTANCES + 1);
    assert!(matches!(
        c.validate(),
        Err(ConfigError::Invalid {
            field: "max_fallbacks",
            ..
        })
    ));
    c.max_fallbacks = Some(1);
    c.breaker_failures = 1;
    c.breaker_cool_down = Duration::from_secs(600);
    c.timeout = Duration::from_millis(50);
    c.acquire_timeout = Duration::from_millis(5);
    let pool = pool(c).await;
    let big = big_document(3 << 20);
    // The guest times out on it: the breaker opens.
    let _ = pool
        .extract(&big, "https://e.com/", ExtractionMode::Full)
        .await;
    assert_eq!(pool.stats().circuit, CircuitState::Open);
    let before = pool.stats();
    let calls = (0..6).map(|_| pool.extract(&big, "https://e.com/", ExtractionMode::Full));
    let results = futures_util::future::join_all(calls).await;
    let answered = results.iter().filter(|r| r.is_ok()).count();
    let shed = results
        .iter()
        .filter(|r| matches!(r, Err(ExtractError::CircuitOpen)))
        .count();
    let s = pool.stats();
    assert_eq!((answered, shed), (1, 5), "{s:?}");
    assert_eq!(
        (
            s.fallbacks - before.fallbacks,
            s.fallbacks_shed - before.fallbacks_shed
        ),
        (1, 5),
        "{s:?}"
    );
    let r = pool
        .extract("<title>t</title>", "https://e.com/", ExtractionMode::Full)
        .await;
    assert_eq!(r.unwrap().title.as_deref(), Some("t"));
    assert_eq!(pool.stats().fallbacks - before.fallbacks, 2);
}
