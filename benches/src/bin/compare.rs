//! `cargo run --release -p riptide-benches --bin compare [-- --quick] [--only CASE[,CASE…]] [--svg PATH]`
//!
//! Runs every case in one process, alternating pools round by round so drift on a shared
//! machine hits all of them alike, and prints Markdown tables:
//! 1. ns/op median and min–max per pool per case, and RipTide's ratio to the best peer
//!    (> 1: RipTide is faster);
//! 2. tail latency of the wait (p50 / p99 / p99.9 / max) for W tasks on N objects;
//! 3. the priority mix (RipTide only);
//! 4. a cancellation storm: lost objects and hangs;
//! 5. memory: bytes of overhead per pooled object (the `memory` binary, run as a child).
//!
//! 6. scale: exhausted `try_get`, register + cancel and a one-waiter hand-off at 4 … 16,384
//!    objects (every object checked out), against deadpool and bb8, and its SVG chart
//!    (`--svg PATH`, default `docs/scale.svg` in the workspace);
//! 7. oscillating: `size + 1` tasks on pools of 4, 64 and 1,024 objects, each holding its
//!    object across one yield (the wait queue keeps going from empty to one waiter).
//!
//! CASE filters by substring of: sync, async, contended, threads, empty, regex, native, tail,
//! priority, storm, memory, scale, oscillating; several are separated by commas
//! (`--only scale,oscillating`).

use std::time::Duration;

use riptide_benches::peers::{AsyncPool, SyncPool};
use riptide_benches::scale::{self, ScaleOp};
use riptide_benches::*;

struct Row {
    case: String,
    results: Vec<(&'static str, Vec<f64>)>,
    /// Extra rows shown under the case (floors), not part of the ratio.
    floors: Vec<(&'static str, Vec<f64>)>,
}

fn per_op(d: Duration, ops: u64) -> f64 {
    d.as_nanos() as f64 / ops as f64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let only: Option<Vec<String>> =
        value("--only").map(|o| o.split(',').map(str::to_owned).collect());
    let want = |case: &str| {
        only.as_ref()
            .is_none_or(|o| o.iter().any(|o| case.contains(o.as_str())))
    };
    let svg = value("--svg").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scale.svg"),
        std::path::PathBuf::from,
    );
    let rounds = if quick { 5 } else { 15 };
    let scale: u64 = if quick { 1 } else { 4 };
    let mut rows: Vec<Row> = Vec::new();

    if want("sync") {
        let pools: Vec<SyncPool> = SYNC_POOLS.iter().map(|n| SyncPool::build(n, 4)).collect();
        let iters = 1_000_000 * scale;
        let mut res: Vec<Vec<f64>> = vec![Vec::new(); pools.len()];
        let (mut f1, mut f2) = (Vec::new(), Vec::new());
        for p in &pools {
            sync_uncontended(p, iters / 10);
        }
        for _ in 0..rounds {
            for (p, r) in pools.iter().zip(&mut res) {
                r.push(per_op(sync_uncontended(p, iters), iters));
            }
            f1.push(per_op(floor_cas_cas(iters), iters));
            f2.push(per_op(floor_cas_store(iters), iters));
        }
        rows.push(Row {
            case: "sync get+drop, 1 thread".into(),
            results: pools.iter().map(SyncPool::name).zip(res).collect(),
            floors: vec![
                ("floor: CAS + CAS on one word (RMW release)", f1),
                ("floor: CAS + store (no bookkeeping)", f2),
            ],
        });
    }

    if want("async") {
        let rt = current_thread();
        // RipTide also with deadlock detection off: what recording each checkout's holder
        // costs (the calls run in `block_on`, outside a task: the thread's id is used).
        let names: Vec<&'static str> = ASYNC_POOLS
            .iter()
            .copied()
            .chain(["riptide (detection off)"])
            .collect();
        let pools: Vec<AsyncPool> = names
            .iter()
            .map(|n| rt.block_on(AsyncPool::build(n, 4)))
            .collect();
        let iters = 200_000 * scale;
        let mut res: Vec<Vec<f64>> = vec![Vec::new(); pools.len()];
        for _ in 0..rounds {
            for (p, r) in pools.iter().zip(&mut res) {
                r.push(per_op(async_uncontended(&rt, p, iters), iters));
            }
        }
        rows.push(Row {
            case: "async get+drop, current-thread".into(),
            results: names.into_iter().zip(res).collect(),
            floors: vec![],
        });
    }

    if want("contended") {
        let rt = multi_thread(2);
        // RipTide also with deadlock detection off: a caller that must wait looks for a
        // checkout of its own first (`docs/architecture.md`, "Deadlock detection").
        let names: Vec<&'static str> = ASYNC_POOLS
            .iter()
            .copied()
            .chain(["riptide (detection off)"])
            .collect();
        let pools: Vec<AsyncPool> = names
            .iter()
            .map(|n| rt.block_on(AsyncPool::build(n, 4)))
            .collect();
        for tasks in [4usize, 32, 256] {
            let per_task = (64_000 * scale) / tasks as u64;
            let ops = per_task * tasks as u64;
            let mut res: Vec<Vec<f64>> = vec![Vec::new(); pools.len()];
            let (mut f0, mut f1, mut f2, mut f3) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for _ in 0..rounds {
                for (p, r) in pools.iter().zip(&mut res) {
                    r.push(per_op(contended(&rt, p, tasks, per_task, false).0, ops));
                }
                f0.push(per_op(contended_no_pool(&rt, tasks, per_task, 1), ops));
                f1.push(per_op(contended_no_pool(&rt, tasks, per_task, 2), ops));
                f2.push(per_op(
                    contended_semaphore_only(&rt, 4, tasks, per_task),
                    ops,
                ));
                f3.push(per_op(contended_fifo_only(&rt, 4, tasks, per_task), ops));
            }
            rows.push(Row {
                case: format!("contended async: {tasks} tasks, 4 objects, 2 workers"),
                results: names.iter().copied().zip(res).collect(),
                floors: vec![
                    ("floor: no pool (1 yield/op: the hold)", f0),
                    ("floor: no pool (2 yields/op)", f1),
                    ("floor: bare tokio Semaphore(4)", f2),
                    ("floor: plainest fair FIFO (mutex + queue, no objects)", f3),
                ],
            });
        }
    }

    if want("threads") {
        let pools: Vec<SyncPool> = SYNC_POOLS.iter().map(|n| SyncPool::build(n, 4)).collect();
        let per_thread = 100_000 * scale;
        let mut res: Vec<Vec<f64>> = vec![Vec::new(); pools.len()];
        for _ in 0..rounds {
            for (p, r) in pools.iter().zip(&mut res) {
                r.push(per_op(sync_contended(p, 4, per_thread), 4 * per_thread));
            }
        }
        rows.push(Row {
            case: "contended sync: 4 threads, 4 objects (object-pool, lockfree, opool never wait: they allocate)".into(),
            results: pools.iter().map(SyncPool::name).zip(res).collect(),
            floors: vec![],
        });
    }

    if want("empty") {
        let pools: Vec<SyncPool> = ["riptide", "r2d2", "object-pool", "opool"]
            .iter()
            .map(|n| SyncPool::build(n, 4))
            .collect();
        let rt = current_thread();
        let iters = 1_000_000 * scale;
        let mut res: Vec<Vec<f64>> = vec![Vec::new(); pools.len() + 1];
        for _ in 0..rounds {
            for (p, r) in pools.iter().zip(&mut res) {
                r.push(per_op(try_get_empty(p, 4, iters).unwrap(), iters));
            }
            res[pools.len()].push(per_op(
                deadpool_try_get_empty(&rt, 4, iters / 10),
                iters / 10,
            ));
        }
        let mut names: Vec<&'static str> = pools.iter().map(SyncPool::name).collect();
        names.push("deadpool");
        rows.push(Row {
            case: "try_get on an exhausted pool (fail path)".into(),
            results: names.into_iter().zip(res).collect(),
            floors: vec![],
        });
    }

    if want("regex") {
        let pool = riptide_pool::Pool::builder(|| async {
            Ok::<_, std::convert::Infallible>(new_matcher())
        })
        .max_size(2)
        .build()
        .unwrap();
        drop(pool.get_blocking().unwrap());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let iters = 20_000 * scale;
        for _ in 0..rounds {
            a.push(per_op(regex_pooled(&pool, iters), iters));
            b.push(per_op(regex_unpooled(iters / 100), iters / 100));
        }
        rows.push(Row {
            case: "expensive resource: 4-pattern RegexSet, match one line".into(),
            results: vec![("riptide (pooled)", a), ("no pool (compile per call)", b)],
            floors: vec![],
        });
    }

    if want("native") {
        use riptide_adapters::native::NativeExtractorType as K;
        let rt = current_thread();
        let pages = riptide_benches::native::pages(20);
        let pool = riptide_benches::native::pool();
        for (kind, case) in [
            (
                K::Regex,
                "native regex extractor: 4 patterns on a book page",
            ),
            (
                K::Css,
                "native CSS extractor: parse a book page, 2 selectors",
            ),
        ] {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            let iters = 20 * scale;
            for _ in 0..rounds {
                use riptide_benches::native::{per_call, pooled};
                a.push(per_op(pooled(&rt, &pool, kind, &pages, iters), iters));
                b.push(per_op(per_call(kind, &pages, iters), iters));
            }
            rows.push(Row {
                case: case.into(),
                results: vec![("riptide (pooled)", a), ("no pool (extractor per call)", b)],
                floors: vec![],
            });
        }
    }

    println!(
        "rounds: {rounds}{}; cores: {}; {}",
        if quick { " (--quick)" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        cpu_model()
    );
    if !rows.is_empty() {
        println!();
        println!("| case | pool | ns/op median | min – max | riptide vs best peer |");
        println!("| --- | --- | ---: | ---: | ---: |");
    }
    for mut row in rows {
        let mut meds = Vec::new();
        for (name, v) in &mut row.results {
            let (med, min, max) = summarize(v);
            meds.push((*name, med));
            println!(
                "| {} | {} | {:.1} | {:.1} – {:.1} | |",
                row.case, name, med, min, max
            );
        }
        for (name, v) in &mut row.floors {
            let (med, min, max) = summarize(v);
            println!(
                "| {} | {} | {:.1} | {:.1} – {:.1} | |",
                row.case, name, med, min, max
            );
        }
        let ours = meds[0].1;
        // RipTide's own variants (closures, detection off) are not peers.
        let best_peer = meds[1..]
            .iter()
            .filter(|m| !m.0.starts_with("riptide"))
            .map(|m| m.1)
            .fold(f64::INFINITY, f64::min);
        println!(
            "| {} | **ratio** | | | **{:.2}×** |",
            row.case,
            best_peer / ours
        );
    }

    if want("oscillating") {
        oscillating_table(quick);
    }
    if want("scale") {
        scale_table(quick, &svg);
    }
    if want("tail") {
        tail_latency(quick);
    }
    if want("priority") {
        priority_table(quick);
    }
    if want("storm") {
        storm_table(quick);
    }
    if want("memory") {
        memory_table();
    }
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn us(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1e6)
}

/// Tail latency of the wait, W tasks on N objects, 2 workers.
fn tail_latency(quick: bool) {
    let rt = multi_thread(2);
    let total: u64 = if quick { 20_000 } else { 100_000 };
    println!();
    println!("Wait time per checkout (µs), 2 workers, each checkout held across one yield:");
    println!();
    println!("| W tasks | N objects | pool | p50 | p99 | p99.9 | max |");
    println!("| ---: | ---: | --- | ---: | ---: | ---: | ---: |");
    for w in [8usize, 64, 512] {
        for n in [4usize, 8, 16] {
            let pools: Vec<AsyncPool> = ASYNC_POOLS
                .iter()
                .map(|p| rt.block_on(AsyncPool::build(p, n)))
                .collect();
            for p in &pools {
                let per_task = (total / w as u64).max(4);
                let (_, mut waits) = contended(&rt, p, w, per_task, true);
                println!(
                    "| {w} | {n} | {} | {} | {} | {} | {} |",
                    p.name(),
                    us(quantile(&mut waits, 0.5)),
                    us(quantile(&mut waits, 0.99)),
                    us(quantile(&mut waits, 0.999)),
                    us(quantile(&mut waits, 1.0)),
                );
            }
        }
    }
}

fn priority_table(quick: bool) {
    let rt = multi_thread(2);
    let per_task = if quick { 500 } else { 2_000 };
    let mut waits = priority_mix(&rt, 4, 32, per_task);
    println!();
    println!(
        "Priority mix (RipTide only): 32 tasks, 8 per priority, 4 objects, 2 workers; wait (µs):"
    );
    println!();
    println!("| priority | p50 | p99 | max |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, w) in ["Low", "Normal", "High", "Critical"].iter().zip(&mut waits) {
        println!(
            "| {name} | {} | {} | {} |",
            us(quantile(w, 0.5)),
            us(quantile(w, 0.99)),
            us(quantile(w, 1.0))
        );
    }
}

fn storm_table(quick: bool) {
    let rt = multi_thread(2);
    let dur = Duration::from_millis(if quick { 300 } else { 2_000 });
    println!();
    println!(
        "Cancellation storm: 64 tasks, 4 objects, timeouts 50–500 µs, a task aborted every 200 µs, {} ms:",
        dur.as_millis()
    );
    println!();
    println!("| pool | checkouts | aborted | hung tasks | objects lost |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for name in ASYNC_POOLS {
        let pool = rt.block_on(AsyncPool::build(name, 4));
        let r = cancellation_storm(&rt, &pool, 4, dur);
        println!(
            "| {name} | {} | {} | {} | {} |",
            r.ops, r.aborted, r.hangs, r.lost
        );
    }
}

/// Runs the `memory` binary (built beside this one): a counting allocator there would tax
/// every allocation of every pool here.
fn memory_table() {
    let exe = std::env::current_exe()
        .expect("current exe")
        .with_file_name("memory");
    match std::process::Command::new(&exe).output() {
        Ok(out) if out.status.success() => print!("{}", String::from_utf8_lossy(&out.stdout)),
        _ => println!(
            "\n(memory: build and run `cargo run --release -p riptide-benches --bin memory`)"
        ),
    }
}

/// The scale case (`benches/src/scale.rs`): every pool size and pool in each round, pools
/// alternating; a table of medians per operation, and the chart.
fn scale_table(quick: bool, svg: &std::path::Path) {
    let rt = current_thread();
    let rounds = if quick { 3 } else { 9 };
    let budget = Duration::from_millis(if quick { 2 } else { 5 });
    let pools: Vec<Vec<AsyncPool>> = scale::SCALE_SIZES
        .iter()
        .map(|&n| {
            scale::SCALE_POOLS
                .iter()
                .map(|p| rt.block_on(AsyncPool::build(p, n)))
                .collect()
        })
        .collect();
    // [op][size][pool] -> samples
    let mut res = vec![vec![vec![Vec::new(); scale::SCALE_POOLS.len()]; pools.len()]; 3];
    for _ in 0..rounds {
        for (o, op) in ScaleOp::ALL.iter().enumerate() {
            for (s, (size, row)) in scale::SCALE_SIZES.iter().zip(&pools).enumerate() {
                for (k, pool) in row.iter().enumerate() {
                    if let Some(ns) = scale::scale_op(&rt, pool, *size, *op, budget) {
                        res[o][s][k].push(ns);
                    }
                }
            }
        }
    }
    println!();
    println!(
        "Scale: every object checked out, current-thread runtime, ns per operation (median of {rounds}; — : the pool has no such operation):"
    );
    println!();
    print!("| operation | objects |");
    for p in scale::SCALE_POOLS {
        print!(" {p} |");
    }
    println!(" riptide / deadpool | riptide / deadpool (30 s wait) |");
    print!("| --- | ---: |");
    for _ in scale::SCALE_POOLS {
        print!(" ---: |");
    }
    println!(" ---: | ---: |");
    let mut panels = Vec::new();
    for (o, op) in ScaleOp::ALL.iter().enumerate() {
        let mut series: Vec<scale::Series> = scale::SCALE_POOLS
            .iter()
            .map(|p| (*p, Vec::new()))
            .collect();
        for (s, size) in scale::SCALE_SIZES.iter().enumerate() {
            print!("| {} | {size} |", op.title());
            let mut meds = Vec::new();
            for (k, samples) in res[o][s].iter_mut().enumerate() {
                let med = (!samples.is_empty()).then(|| summarize(samples).0);
                meds.push(med);
                series[k].1.push((*size, med));
                match med {
                    Some(m) => print!(" {m:.1} |"),
                    None => print!(" — |"),
                }
            }
            for peer in [1, 2] {
                match (meds[0], meds[peer]) {
                    (Some(r), Some(d)) => print!(" {:.2} |", r / d),
                    _ => print!(" |"),
                }
            }
            println!();
        }
        panels.push((*op, series));
    }
    let caption = format!(
        "Every object checked out: ns per operation against pool size (log axes; median of {rounds} rounds, one run)"
    );
    match scale::scale_svg(svg, &caption, &panels) {
        Ok(()) => println!("\n(chart: {})", svg.display()),
        Err(e) => println!("\n(chart not written to {}: {e})", svg.display()),
    }
}

/// The oscillating case: `size + 1` tasks on `size` objects, 2 workers, each checkout
/// held across one yield.
fn oscillating_table(quick: bool) {
    let rt = multi_thread(2);
    let rounds = if quick { 5 } else { 15 };
    let total: u64 = if quick { 32_000 } else { 128_000 };
    println!();
    println!(
        "Oscillating: size + 1 tasks on size objects, 2 workers, each checkout held across one yield; ns per checkout (median of {rounds}, min – max):"
    );
    println!();
    print!("| objects |");
    for p in scale::SCALE_POOLS {
        print!(" {p} |");
    }
    println!(" riptide vs best peer |");
    print!("| ---: |");
    for _ in scale::SCALE_POOLS {
        print!(" ---: |");
    }
    println!(" ---: |");
    for size in scale::OSCILLATING_SIZES {
        let pools: Vec<AsyncPool> = scale::SCALE_POOLS
            .iter()
            .map(|p| rt.block_on(AsyncPool::build(p, size)))
            .collect();
        let tasks = size + 1;
        let per_task = (total / tasks as u64).max(8);
        let ops = per_task * tasks as u64;
        let mut res: Vec<Vec<f64>> = vec![Vec::new(); pools.len()];
        for _ in 0..rounds {
            for (p, r) in pools.iter().zip(&mut res) {
                r.push(per_op(contended(&rt, p, tasks, per_task, false).0, ops));
            }
        }
        print!("| {size} |");
        let mut meds = Vec::new();
        for r in &mut res {
            let (med, min, max) = summarize(r);
            meds.push(med);
            print!(" {med:.1} ({min:.0} – {max:.0}) |");
        }
        let best_peer = meds[1..].iter().copied().fold(f64::INFINITY, f64::min);
        println!(" {:.2}× |", best_peer / meds[0]);
    }
}
