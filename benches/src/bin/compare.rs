//! `cargo run --release -p riptide-benches --bin compare [-- --quick]`
//!
//! Runs every case in one process, alternating pools round by round so drift on a shared
//! machine hits all of them alike, and prints one Markdown table: ns/op median and
//! min–max per pool per case, and RipTide's ratio to the best peer (> 1 = RipTide faster).

use std::time::Duration;

use riptide_benches::*;

struct Row {
    case: &'static str,
    results: Vec<(&'static str, Vec<f64>)>,
}

fn per_op(d: Duration, ops: u64) -> f64 {
    d.as_nanos() as f64 / ops as f64
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let rounds = if quick { 5 } else { 15 };
    let scale = if quick { 1 } else { 4 };
    let args: Vec<String> = std::env::args().collect();
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .cloned();
    let want = |case: &str| only.as_deref().is_none_or(|o| case.contains(o));
    let mut rows = Vec::new();
    let mut floors: Vec<(&str, &str, Vec<f64>)> = Vec::new();

    // Case 1: uncontended sync checkout + return.
    if want("sync") {
        let ours = riptide_pool(4);
        let lop = lockfree_object_pool::LinearObjectPool::<u64>::new(|| 0, |v| *v = 0);
        let iters = 2_000_000 * scale;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        sync_uncontended::riptide(&ours, iters / 10);
        sync_uncontended::lockfree_object_pool(&lop, iters / 10);
        for _ in 0..rounds {
            a.push(per_op(sync_uncontended::riptide(&ours, iters), iters));
            b.push(per_op(
                sync_uncontended::lockfree_object_pool(&lop, iters),
                iters,
            ));
        }
        rows.push(Row {
            case: "sync get+drop, 1 thread",
            results: vec![("riptide", a), ("lockfree-object-pool", b)],
        });
    }

    // Case 2: uncontended async get().await + drop, current-thread runtime.
    if want("async") {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ours = riptide_pool(4);
        let dp = deadpool_pool(4);
        let iters = 500_000 * scale;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            a.push(per_op(async_uncontended::riptide(&rt, &ours, iters), iters));
            b.push(per_op(async_uncontended::deadpool(&rt, &dp, iters), iters));
        }
        rows.push(Row {
            case: "async get+drop, current-thread",
            results: vec![("riptide", a), ("deadpool", b)],
        });
    }

    // Case 3: 32 tasks share 4 objects on a 2-worker runtime, holding across a yield.
    if want("contended") {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let ours = riptide_pool(4);
        let dp = deadpool_pool(4);
        let per_task = 2_000 * scale;
        let ops = 32 * per_task;
        let (mut a, mut b, mut f, mut g) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..rounds {
            a.push(per_op(contended::riptide(&rt, &ours, 32, per_task), ops));
            b.push(per_op(contended::deadpool(&rt, &dp, 32, per_task), ops));
            f.push(per_op(contended_no_pool(&rt, 32, per_task), ops));
            g.push(per_op(contended_semaphore_only(&rt, 4, 32, per_task), ops));
        }
        rows.push(Row {
            case: "32 tasks, 4 objects, 2 workers",
            results: vec![("riptide", a), ("deadpool", b)],
        });
        floors.push(("32 tasks, 4 objects, 2 workers", "no pool (2 yields/op)", f));
        floors.push((
            "32 tasks, 4 objects, 2 workers",
            "bare tokio Semaphore(4), no objects",
            g,
        ));
    }

    println!(
        "rounds: {rounds}{}; cores: {}",
        if quick { " (--quick)" } else { "" },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!();
    println!("| case | pool | ns/op median | min – max | riptide vs best peer |");
    println!("| --- | --- | ---: | ---: | ---: |");
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
        let ours = meds[0].1;
        let best_peer = meds[1..].iter().map(|m| m.1).fold(f64::INFINITY, f64::min);
        println!(
            "| {} | **ratio** | | | **{:.2}×** |",
            row.case,
            best_peer / ours
        );
    }
    for (case, what, mut f) in floors {
        let (med, min, max) = summarize(&mut f);
        println!("| {case} | floor: {what} | {med:.1} | {min:.1} – {max:.1} | |");
    }
}
