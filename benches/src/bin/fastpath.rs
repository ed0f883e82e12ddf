//! `cargo run --release -p riptide-benches --bin fastpath -- [N] [direct|compare|sync] [warn|off]`:
//! the async fast path alone (`get().await` + drop, an idle object, a current-thread
//! runtime), N times, in one of two loops: `direct` calls `pool.get().await` in the loop
//! itself, as an application does; `compare` goes through `compare`'s generic loop
//! (`async_uncontended` over `AsyncPool`, awaiting `Get::get_one`). `sync` is the sync
//! fast path (`try_get` + drop) in a direct loop. Prints ns per checkout. Small enough to count instructions under callgrind (`valgrind
//! --tool=callgrind`, two values of N, the difference divided by their difference):
//! `docs/benchmarks.md` explains what the two loops showed.

use std::time::Instant;

use riptide_benches::peers::{AsyncPool, Res};
use riptide_pool::{DeadlockDetection, Pool};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(10_000_000, |s| s.parse().expect("N"));
    let lp = args.next().unwrap_or_else(|| "direct".into());
    let detection = match args.next().as_deref() {
        None | Some("warn") => DeadlockDetection::Warn,
        Some("off") => DeadlockDetection::Off,
        Some(other) => panic!("detection: warn or off, not {other}"),
    };
    let rt = riptide_benches::current_thread();
    let elapsed = match lp.as_str() {
        "direct" => rt.block_on(async {
            let pool = Pool::builder(|| async { Ok::<_, std::convert::Infallible>(Res(0)) })
                .max_size(4)
                .deadlock_detection(detection)
                .build()
                .unwrap();
            drop(pool.get().await.unwrap());
            let t = Instant::now();
            for _ in 0..n {
                let g = std::hint::black_box(pool.get().await.unwrap());
                drop(g);
            }
            t.elapsed()
        }),
        "compare" => {
            let name = match detection {
                DeadlockDetection::Off => "riptide (detection off)",
                _ => "riptide",
            };
            let pool = rt.block_on(AsyncPool::build(name, 4));
            riptide_benches::async_uncontended(&rt, &pool, n)
        }
        "sync" => {
            let pool = rt.block_on(async {
                Pool::builder(|| async { Ok::<_, std::convert::Infallible>(Res(0)) })
                    .max_size(4)
                    .deadlock_detection(detection)
                    .build()
                    .unwrap()
            });
            rt.block_on(async { drop(pool.get().await.unwrap()) });
            let t = Instant::now();
            for _ in 0..n {
                let g = std::hint::black_box(pool.try_get().unwrap());
                drop(g);
            }
            t.elapsed()
        }
        other => panic!("loop: direct, compare or sync, not {other}"),
    };
    println!(
        "{lp} loop, detection {detection:?}: {:.1} ns/op",
        elapsed.as_nanos() as f64 / n as f64
    );
}
