//! Settings at their extremes: the largest durations a builder, a file or the environment
//! can give are limits that are never reached, not panics.

use std::sync::Arc;
use std::time::Duration;

use riptide_pool::{PartitionedPool, PoolConfig, Poolable};

struct Conn;
impl Poolable for Conn {}

use crate::common::{builder, Census};

/// `drain(Duration::MAX)`, "wait for as long as it takes", drains (here at once: nothing
/// is out) instead of overflowing `Instant + timeout`.
#[tokio::test]
async fn a_drain_without_a_limit_does_not_overflow() {
    let c = Arc::new(Census::default());
    let pool = builder(&c, Duration::ZERO).build().unwrap();
    drop(pool.get().await.unwrap());
    pool.drain(Duration::MAX).await.unwrap();
    assert!(pool.is_closed());

    let pp = PartitionedPool::builder(|_k: u32| async { Ok::<_, std::io::Error>(Conn) })
        .build()
        .unwrap();
    drop(pp.get(&1).await.unwrap());
    pp.drain(Duration::MAX).await.unwrap();
    assert!(pp.is_closed());
}

/// Every duration knob at `Duration::MAX` (from a file: the largest millisecond count)
/// builds, serves and keeps its object.
#[tokio::test]
async fn the_largest_durations_build_and_serve() {
    let cfg: PoolConfig = serde_json::from_str(&format!(
        r#"{{ "acquire_timeout": {m}, "create_timeout": {m}, "idle_timeout": {m},
             "max_lifetime": {m}, "leak_threshold": {m}, "reclaim_leaked": {m},
             "validation_interval": {m}, "starvation_threshold": {m},
             "circuit_cool_down": {m} }}"#,
        m = u64::MAX
    ))
    .unwrap();
    let c = Arc::new(Census::default());
    let pool = builder(&c, Duration::ZERO)
        .config(&cfg)
        .min_idle(1)
        .build()
        .unwrap();
    let g = pool.get().await.unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await; // a few maintenance passes
    drop(g);
    let g = pool.get().await.unwrap();
    drop(g);
    assert_eq!(
        pool.stats().destroyed,
        0,
        "no limit of Duration::MAX was reached"
    );
    let pool = builder(&c, Duration::ZERO)
        .acquire_timeout(Duration::MAX)
        .create_timeout(Duration::MAX)
        .idle_timeout(Duration::MAX)
        .max_lifetime(Duration::MAX)
        .leak_threshold(Duration::MAX)
        .reclaim_leaked(Duration::MAX)
        .validation_interval(Duration::MAX)
        .starvation_threshold(Duration::MAX)
        .circuit_breaker(1, Duration::MAX)
        .build()
        .unwrap();
    let held = pool.get().await.unwrap();
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(30)).await;
    drop(held);
    waiter.await.unwrap().unwrap();
}

/// A `PoolConfig` written out with its `Serialize` reads back as the same settings: a
/// sub-millisecond duration is not rounded down (to `0ms`, which `build` then refuses),
/// and `Duration::MAX` is not written as a number that no longer parses.
#[test]
fn a_written_config_reads_back_the_same() {
    let mut cfg = PoolConfig::default();
    for (acquire, idle) in [
        (Duration::from_micros(1500), Duration::from_nanos(1)),
        (Duration::from_micros(250), Duration::from_millis(250)),
        (Duration::MAX, Duration::new(1_234_567, 890_123_456)),
    ] {
        cfg.acquire_timeout = Some(acquire);
        cfg.idle_timeout = Some(Some(idle));
        let text = serde_json::to_string(&cfg).unwrap();
        let back: PoolConfig =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(back, cfg, "{text}");
    }
}

/// A readable duration is read exactly: what it says, to the nanosecond (a float would
/// round `1234567890123ms` to `1234567890.122999907s`).
#[test]
fn readable_durations_are_exact() {
    use riptide_pool::parse_duration;
    for (text, want) in [
        ("1234567890123ms", Duration::from_millis(1_234_567_890_123)),
        (
            "9007199254740993us",
            Duration::from_micros(9_007_199_254_740_993),
        ),
        (
            "9007199254740993s",
            Duration::from_secs(9_007_199_254_740_993),
        ),
        ("0.1s", Duration::from_millis(100)),
        ("2.675s", Duration::from_millis(2675)),
        ("1.000000001s", Duration::new(1, 1)),
        ("1.5h", Duration::from_secs(5400)),
        ("18446744073709551615.999999999s", Duration::MAX),
    ] {
        assert_eq!(parse_duration(text), Ok(want), "{text}");
    }
    for bad in [
        "18446744073709551616s",
        "1e3s",
        ".s",
        "1..5s",
        "-1s",
        "5",
        "",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}

/// A duration that does not parse says what is wrong with it: a sign, an exponent, a
/// digit separator or a hex prefix is a number the parser does not read, not "an unknown
/// unit" (before, `-1s` and `1e3s` were told to use ns, us, ms, s, m or h, which they do);
/// an empty value says it is empty, not that it "needs a unit".
#[test]
fn a_duration_that_does_not_parse_says_what_is_wrong() {
    use riptide_pool::parse_duration;
    for (bad, says) in [
        ("-1s", "negative"),
        ("-250ms", "negative"),
        ("1e3s", "not a number"),
        ("1_000ms", "not a number"),
        ("0x10s", "not a number"),
        ("+1s", "not a number"),
        ("\u{663}s", "not a number"),
        ("", "empty"),
        ("   ", "empty"),
        ("5 parsecs", "unknown unit"),
        ("5S", "unknown unit"),
    ] {
        let e = parse_duration(bad).unwrap_err();
        assert!(e.contains(says), "{bad:?}: {e}");
    }
    std::env::set_var("RIPTIDE_TEST_NEGATIVE_ACQUIRE_TIMEOUT", "-1s");
    let e = PoolConfig::from_env("RIPTIDE_TEST_NEGATIVE").unwrap_err();
    std::env::remove_var("RIPTIDE_TEST_NEGATIVE_ACQUIRE_TIMEOUT");
    assert_eq!(e.field(), "acquire_timeout", "{e}");
    assert!(e.to_string().contains("negative"), "{e}");
    let e = serde_json::from_str::<PoolConfig>(r#"{ "idle_timeout": "1e3s" }"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("1e3s") && e.contains("not a number"), "{e}");
}

/// A bad duration in a file says what is wrong with it, whatever JSON type it is: a
/// negative or fractional bare number is not "data did not match any variant".
#[test]
fn a_bad_duration_in_a_file_says_what_is_wrong() {
    for (json, says) in [
        (r#"{ "acquire_timeout": -5 }"#, "-5"),
        (r#"{ "acquire_timeout": 1.5 }"#, "1.5"),
        (r#"{ "idle_timeout": -1 }"#, "-1"),
        (r#"{ "idle_timeout": true }"#, "true"),
    ] {
        let e = serde_json::from_str::<PoolConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("duration") && e.contains(says) && !e.contains("variant"),
            "{json}: {e}"
        );
    }
}

/// Whatever is wrong with a value in a file, the error names its knob (serde's own
/// message for a derived field says only "expected usize at line 1 column 19").
#[test]
fn a_wrong_value_in_a_file_names_its_knob() {
    for (knob, value) in [
        ("max_size", r#""ten""#),
        ("max_size", "-1"),
        ("max_size", "1.5"),
        ("min_idle", "true"),
        ("max_uses", "[1]"),
        ("circuit_failures", "5000000000"),
        ("name", "7"),
        ("deadlock_detection", "1"),
        ("deadlock_detection", r#""loud""#),
        ("acquire_timeout", "true"),
        ("acquire_timeout", r#""5 parsecs""#),
        ("create_timeout", "-1"),
        ("validation_interval", "{}"),
        ("starvation_threshold", "0.5"),
        ("circuit_cool_down", r#""off""#),
        ("idle_timeout", "false"),
        ("max_lifetime", r#""soon""#),
        ("leak_threshold", "[]"),
        ("reclaim_leaked", "-3"),
    ] {
        let json = format!(r#"{{ "{knob}": {value} }}"#);
        let e = serde_json::from_str::<PoolConfig>(&json)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("`{knob}`")), "{json}: {e}");
    }
    // What is right still reads, `null` leaves a knob unset, and "off" switches a limit off.
    let cfg: PoolConfig = serde_json::from_str(
        r#"{ "max_size": 12, "min_idle": null, "name": "db", "idle_timeout": "off",
             "acquire_timeout": 250, "deadlock_detection": "Error", "circuit_failures": 3 }"#,
    )
    .unwrap();
    assert_eq!(cfg.max_size, Some(12));
    assert_eq!(cfg.min_idle, None);
    assert_eq!(cfg.name.as_deref(), Some("db"));
    assert_eq!(cfg.idle_timeout, Some(None));
    assert_eq!(cfg.acquire_timeout, Some(Duration::from_millis(250)));
    assert_eq!(cfg.circuit_failures, Some(3));
    assert_eq!(
        cfg.deadlock_detection,
        Some(riptide_pool::DeadlockDetection::Error)
    );
}

/// A partitioned pool's settings that make no sense are a `ConfigError` from `build()`
/// naming the knob, as a pool's are: not an error at every `get` (the partitions'
/// settings were first checked when a partition was made), and not an upkeep that runs
/// back to back (`remove_idle_partitions_after(ZERO)`).
#[tokio::test]
async fn a_partitioned_pool_checks_its_settings_at_build() {
    let make = |_k: u32| async { Ok::<_, std::io::Error>(Conn) };
    let e = PartitionedPool::builder(make)
        .acquire_timeout(Duration::ZERO)
        .build()
        .map(drop)
        .unwrap_err();
    assert_eq!(e.field(), "acquire_timeout", "{e}");
    // Any size set through `configure`, 0 included.
    for size in [0, 1, 5] {
        let e = PartitionedPool::builder(make)
            .configure(move |b| b.max_size(size))
            .build()
            .map(drop)
            .unwrap_err();
        assert_eq!(e.field(), "max_size", "{size}: {e}");
    }
    let e = PartitionedPool::builder(make)
        .configure(|b| b.min_idle(20))
        .build()
        .map(drop)
        .unwrap_err();
    assert_eq!(e.field(), "min_idle", "{e}");
    let e = PartitionedPool::builder(make)
        .idle_timeout(Duration::ZERO)
        .build()
        .map(drop)
        .unwrap_err();
    assert_eq!(e.field(), "idle_timeout", "{e}");
    // Zero, or below the pool's clock (which would have its upkeep thread spin).
    for d in [
        Duration::ZERO,
        Duration::from_nanos(1),
        Duration::from_micros(999),
    ] {
        let e = PartitionedPool::builder(make)
            .remove_idle_partitions_after(d)
            .build()
            .map(drop)
            .unwrap_err();
        assert_eq!(e.field(), "remove_idle_partitions_after", "{d:?}: {e}");
    }
    // What makes sense still builds and serves.
    let pp = PartitionedPool::builder(make)
        .partition_max_size(2)
        .configure(|b| b.min_idle(2))
        .remove_idle_partitions_after(Duration::from_secs(60))
        .build()
        .unwrap();
    drop(pp.get(&7).await.unwrap());
}

/// A number too large for its knob says so (it is a whole number), for every numeric
/// variable; on a 32-bit target a size above `usize::MAX` is refused, never truncated.
#[test]
fn a_number_too_large_for_its_variable_says_so() {
    for (suffix, value) in [
        ("MAX_SIZE", "18446744073709551616"),
        ("MIN_IDLE", "99999999999999999999"),
        ("MAX_USES", "18446744073709551616"),
        ("CIRCUIT_FAILURES", "4294967296"),
    ] {
        let prefix = format!("RIPTIDE_TEST_HUGE_{suffix}");
        std::env::set_var(format!("{prefix}_{suffix}"), value);
        let e = PoolConfig::from_env(&prefix).unwrap_err().to_string();
        std::env::remove_var(format!("{prefix}_{suffix}"));
        assert!(
            e.contains("too large") && !e.contains("not a whole number"),
            "{suffix}={value}: {e}"
        );
    }
}

/// Two pools configured side by side, one under `PREFIX`, the other under `PREFIX_2` (a
/// replica, a second tenant): the first pool's `from_env` must not take the second one's
/// knobs for misspellings of its own.
#[test]
fn a_sibling_prefix_is_not_a_misspelt_knob() {
    let vars = [
        ("RIPTIDE_TEST_SIBLING_MAX_SIZE", "4"),
        ("RIPTIDE_TEST_SIBLING_2_MAX_SIZE", "8"),
        ("RIPTIDE_TEST_SIBLING_2_NAME", "replica"),
    ];
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let first = PoolConfig::from_env("RIPTIDE_TEST_SIBLING");
    let second = PoolConfig::from_env("RIPTIDE_TEST_SIBLING_2");
    for (k, _) in vars {
        std::env::remove_var(k);
    }
    let first = first.unwrap_or_else(|e| panic!("RIPTIDE_TEST_SIBLING: {e}"));
    assert_eq!(first.max_size, Some(4));
    let second = second.unwrap_or_else(|e| panic!("RIPTIDE_TEST_SIBLING_2: {e}"));
    assert_eq!(second.max_size, Some(8));
}

/// `PREFIX_MAX_IDLE` (a knob other pools have) or `PREFIX_MIN_SIZE` is not a typo of
/// `MIN_IDLE` / `MAX_SIZE`: `from_env` must not tell the user to set the opposite limit.
#[test]
fn from_env_never_suggests_the_opposite_limit() {
    for (var, opposite) in [
        ("RIPTIDE_TEST_OPPOSITE_A_MAX_IDLE", "MIN_IDLE"),
        ("RIPTIDE_TEST_OPPOSITE_B_MIN_SIZE", "MAX_SIZE"),
    ] {
        let prefix = var.rsplitn(3, '_').nth(2).unwrap().to_owned();
        std::env::set_var(var, "10");
        let r = PoolConfig::from_env(&prefix);
        std::env::remove_var(var);
        if let Err(e) = r {
            assert!(
                !e.to_string()
                    .contains(&format!("did you mean {prefix}_{opposite}")),
                "{var}: {e}"
            );
        }
    }
}

/// `deadlock_detection` reads the same in a file as in the environment: `from_env` takes
/// `Error` or `WARN` (as the limits take `OFF` in both), so a file must too (before, a
/// file's `"Error"` was "unknown variant `Error`"); a value that is none of them names
/// the knob and the three it takes.
#[test]
fn deadlock_detection_reads_the_same_in_a_file_as_in_the_environment() {
    use riptide_pool::DeadlockDetection;
    std::env::set_var("RIPTIDE_TEST_DEADLOCK_CASE_DEADLOCK_DETECTION", "Error");
    let env = PoolConfig::from_env("RIPTIDE_TEST_DEADLOCK_CASE");
    std::env::remove_var("RIPTIDE_TEST_DEADLOCK_CASE_DEADLOCK_DETECTION");
    assert_eq!(
        env.unwrap().deadlock_detection,
        Some(DeadlockDetection::Error)
    );
    for (text, want) in [
        ("Error", DeadlockDetection::Error),
        ("ERROR", DeadlockDetection::Error),
        ("Warn", DeadlockDetection::Warn),
        ("off", DeadlockDetection::Off),
    ] {
        let json = format!(r#"{{ "deadlock_detection": "{text}" }}"#);
        let cfg: PoolConfig = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
        assert_eq!(cfg.deadlock_detection, Some(want), "{json}");
    }
    let e = serde_json::from_str::<PoolConfig>(r#"{ "deadlock_detection": "loud" }"#)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("deadlock_detection") && e.contains("loud") && e.contains("off, warn, error"),
        "{e}"
    );
    // What is written reads back.
    let mut cfg = PoolConfig::default();
    cfg.deadlock_detection = Some(DeadlockDetection::Error);
    let text = serde_json::to_string(&cfg).unwrap();
    assert_eq!(
        serde_json::from_str::<PoolConfig>(&text).unwrap(),
        cfg,
        "{text}"
    );
}

/// This process's resident memory, in bytes (Linux `/proc/self/statm`, 4 KiB pages).
fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: usize = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// A large `max_size` is a bound, not an allocation: building a pool of 16 M, growing it
/// to 32 M and using a hundred objects costs memory for those objects only (slots
/// allocated up front for the bound would take over a gigabyte).
#[test]
fn a_large_max_size_costs_memory_only_for_the_objects_used() {
    let before = resident_bytes();
    let pool = riptide_pool::Pool::custom(|| async { Ok::<_, std::io::Error>([0_u64; 2]) })
        .max_size(1 << 24)
        .build()
        .unwrap();
    pool.resize(1 << 25);
    let held: Vec<_> = (0..100).map(|_| pool.get_blocking().unwrap()).collect();
    let grown = resident_bytes().saturating_sub(before);
    drop(held);
    assert_eq!(pool.stats().idle, 100);
    assert!(
        grown < 64 << 20,
        "a pool of 100 objects with max_size 32 M took {} MiB",
        grown >> 20
    );
}

/// Creates racing past the slots a pool starts with each get a slot of their own: eight
/// threads take 256 objects each from one pool, all held at once, and no two guards share
/// an object; given back, every one is idle.
#[test]
fn creates_racing_past_the_first_slots_each_get_their_own() {
    const THREADS: usize = 8;
    const EACH: usize = 256;
    for _ in 0..3 {
        let pool = riptide_pool::Pool::custom(|| async { Ok::<_, std::io::Error>(0_u64) })
            .max_size(1 << 20)
            .build()
            .unwrap();
        let start = Arc::new(std::sync::Barrier::new(THREADS));
        let held: Vec<_> = (0..THREADS)
            .map(|_| {
                let (pool, start) = (pool.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    (0..EACH)
                        .map(|_| pool.get_blocking().unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let objects: std::collections::HashSet<*const u64> =
            held.iter().map(|g| std::ptr::from_ref::<u64>(g)).collect();
        assert_eq!(objects.len(), THREADS * EACH, "two guards share an object");
        let s = pool.stats();
        assert_eq!(
            (s.size, s.in_use, s.created),
            (THREADS * EACH, THREADS * EACH, 2048)
        );
        drop(held);
        let s = pool.stats();
        assert_eq!((s.size, s.idle), (THREADS * EACH, THREADS * EACH));
    }
}

/// `circuit_breaker_successes` configures the breaker and never turns one on: after
/// `no_circuit_breaker`, in either order, every create is attempted however many fail,
/// and a later `circuit_breaker` (or a file's `circuit_failures`) takes the count.
#[tokio::test]
async fn the_breakers_success_count_never_turns_it_back_on() {
    let failing = || async { Err::<Conn, _>(std::io::Error::other("backend down")) };
    for pool in [
        riptide_pool::Pool::builder(failing)
            .no_circuit_breaker()
            .circuit_breaker_successes(3)
            .build()
            .unwrap(),
        riptide_pool::Pool::builder(failing)
            .circuit_breaker_successes(3)
            .no_circuit_breaker()
            .build()
            .unwrap(),
    ] {
        for attempt in 0..12 {
            let r = pool.get().await;
            assert!(
                matches!(r, Err(riptide_pool::PoolError::Create(_))),
                "attempt {attempt}: {:?}",
                r.map(drop)
            );
        }
        assert_eq!(pool.circuit_state(), riptide_pool::CircuitState::Closed);
    }
    // Zero is still refused, with or without a breaker.
    let e = riptide_pool::Pool::builder(failing)
        .no_circuit_breaker()
        .circuit_breaker_successes(0)
        .build()
        .unwrap_err();
    assert_eq!(e.field(), "circuit_breaker_successes");
    // Turned on again later, the breaker takes the count and opens after its failures.
    let b = riptide_pool::Pool::builder(failing)
        .no_circuit_breaker()
        .circuit_breaker_successes(3)
        .circuit_breaker(2, Duration::from_secs(60));
    assert!(
        format!("{b:?}").contains("circuit: Some((2, 60s, 3))"),
        "{b:?}"
    );
    let pool = b.build().unwrap();
    for _ in 0..2 {
        assert!(pool.get().await.is_err());
    }
    let r = pool.get().await;
    assert!(
        matches!(r, Err(riptide_pool::PoolError::CircuitOpen { .. })),
        "{:?}",
        r.map(drop)
    );
}

/// The time limits run on the pool's millisecond clock: a limit below 1 ms would act as
/// zero (`max_lifetime(1ns)` with `min_idle(2)` made an object every few ms), so it is a
/// `ConfigError` naming the knob, as zero is. A leak reclaimed before it is even reported
/// makes no sense either.
#[test]
fn limits_below_the_clocks_resolution_are_refused() {
    let builder = |_| riptide_pool::Pool::builder(|| async { Ok::<_, std::io::Error>(Conn) });
    let make = ();
    let tiny = Duration::from_micros(999);
    type Knob = fn(riptide_pool::PoolBuilder<Conn>, Duration) -> riptide_pool::PoolBuilder<Conn>;
    let knobs: [(&str, Knob); 5] = [
        ("idle_timeout", |b, d| b.idle_timeout(d)),
        ("max_lifetime", |b, d| b.max_lifetime(d)),
        ("leak_threshold", |b, d| b.leak_threshold(d)),
        ("reclaim_leaked", |b, d| b.reclaim_leaked(d)),
        ("validation_interval", |b, d| b.validation_interval(d)),
    ];
    for (field, set) in knobs {
        for d in [Duration::from_nanos(1), tiny] {
            let e = set(builder(make), d).build().map(drop).unwrap_err();
            assert_eq!(e.field(), field, "{e}");
            assert!(e.to_string().contains("1ms"), "{e}");
        }
        set(builder(make), Duration::from_millis(1))
            .build()
            .unwrap();
    }
    // Zero still means "validate every checkout".
    builder(make)
        .validation_interval(Duration::ZERO)
        .build()
        .unwrap();
    // The same limits from a file or the environment are refused the same way.
    let mut cfg = PoolConfig::default();
    cfg.max_lifetime = Some(Some(tiny));
    let e = builder(make).config(&cfg).build().map(drop).unwrap_err();
    assert_eq!(e.field(), "max_lifetime", "{e}");
    let e = PartitionedPool::builder(|_k: u8| async { Ok::<_, std::io::Error>(Conn) })
        .configure(move |b| b.leak_threshold(tiny))
        .build()
        .map(drop)
        .unwrap_err();
    assert_eq!(e.field(), "leak_threshold", "{e}");

    let e = builder(make)
        .leak_threshold(Duration::from_secs(10))
        .reclaim_leaked(Duration::from_secs(5))
        .build()
        .map(drop)
        .unwrap_err();
    assert_eq!(e.field(), "reclaim_leaked", "{e}");
    assert!(e.to_string().contains("leak_threshold"), "{e}");
    for (report, reclaim) in [(Some(5), Some(5)), (Some(5), Some(60)), (None, Some(1))] {
        builder(make)
            .leak_threshold(report.map(Duration::from_secs))
            .reclaim_leaked(reclaim.map(Duration::from_secs))
            .build()
            .unwrap();
    }
}
