//! The cases whose cost may grow with the pool, and the chart of them:
//!
//! - **scale**: with every object checked out, at 4 … 16,384 objects, (a) a non-waiting
//!   checkout that finds nothing, (b) a caller that starts waiting and gives up at once
//!   (its future polled once, then dropped), (c) one waiter served by one return (the
//!   waiter polls, a held object is returned, the waiter polls again and holds it);
//! - **oscillating**: `size + 1` tasks on `size` objects, each holding its object across
//!   one yield, so the wait queue keeps going from empty to one waiter and back.
//!
//! [`scale_svg`] draws the scale figures of a run (log axes) with plotters' SVG backend,
//! which writes text as SVG `<text>` elements: no font files or fontconfig are needed.

use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::peers::{AsyncPool, Get};
use crate::with_async_pool;

/// The pool sizes of the scale case.
pub const SCALE_SIZES: [usize; 4] = [4, 64, 1024, 16_384];
/// The pool sizes of the oscillating case.
pub const OSCILLATING_SIZES: [usize; 3] = [4, 64, 1024];
/// The pools of both cases, in table order (mobc is left out: it is far behind on every
/// other async case, and the peers a busy database pool is chosen from are these).
/// deadpool appears twice: as it comes (its waits have no deadline) and with the 30 s wait
/// deadline every other pool here has, which is the like-for-like comparison of a wait.
pub const SCALE_POOLS: [&str; 4] = ["riptide", "deadpool", "deadpool (30 s wait)", "bb8"];

/// One measurement of the scale case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScaleOp {
    /// A non-waiting checkout on an exhausted pool.
    TryGetEmpty,
    /// A caller starts waiting (first poll), then gives up (drop).
    RegisterCancel,
    /// A waiter registers, one object is returned, the waiter is served.
    HandOff,
}

impl ScaleOp {
    /// Every operation, in table order.
    pub const ALL: [ScaleOp; 3] = [
        ScaleOp::TryGetEmpty,
        ScaleOp::RegisterCancel,
        ScaleOp::HandOff,
    ];

    /// The operation's name in tables and on the chart.
    pub fn title(self) -> &'static str {
        match self {
            ScaleOp::TryGetEmpty => "exhausted try_get",
            ScaleOp::RegisterCancel => "a waiter registers, then cancels",
            ScaleOp::HandOff => "one waiter, one release, hand-off",
        }
    }
}

/// Runs `$run` (an expression timing `$n` operations, giving a `Duration`) with `$n`
/// doubled until one run takes at least `$budget`; gives ns per operation of that run.
macro_rules! calibrated {
    ($budget:expr, |$n:ident| $run:expr) => {{
        let mut $n: u64 = 8;
        loop {
            let d: Duration = $run;
            if d >= $budget || $n >= 1 << 26 {
                break d.as_nanos() as f64 / $n as f64;
            }
            $n *= 2;
        }
    }};
}

fn noop_cx() -> Context<'static> {
    Context::from_waker(Waker::noop())
}

/// `n` callers that each start waiting (one poll) and give up (drop).
async fn register_cancel<P: Get>(p: &P, n: u64) -> Duration {
    let mut cx = noop_cx();
    let t = Instant::now();
    for _ in 0..n {
        let mut f = pin!(p.get_elsewhere());
        assert!(
            f.as_mut().poll(&mut cx).is_pending(),
            "an exhausted pool served"
        );
    }
    t.elapsed()
}

/// `n` times: a caller starts waiting, one held object is returned, the caller is served
/// and holds it.
async fn hand_off<P: Get>(p: &P, held: &mut Vec<P::Guard>, n: u64) -> Duration {
    let mut cx = noop_cx();
    let t = Instant::now();
    for _ in 0..n {
        let mut f = pin!(p.get_elsewhere());
        assert!(
            f.as_mut().poll(&mut cx).is_pending(),
            "an exhausted pool served"
        );
        drop(held.pop());
        let g = loop {
            match f.as_mut().poll(&mut cx) {
                Poll::Ready(g) => break g,
                // A pool that hands over through its runtime (none of the peers here, so
                // far) gets the runtime's turn.
                Poll::Pending => tokio::task::yield_now().await,
            }
        };
        held.push(g);
    }
    t.elapsed()
}

/// Ns per operation of `op` on `pool` (`size` objects, every one checked out for the
/// measurement, returned afterwards); `None` when the pool has no such operation (bb8
/// has no non-waiting checkout).
pub fn scale_op(
    rt: &tokio::runtime::Runtime,
    pool: &AsyncPool,
    size: usize,
    op: ScaleOp,
    budget: Duration,
) -> Option<f64> {
    rt.block_on(async {
        with_async_pool!(pool, |p| {
            let mut held = Vec::with_capacity(size);
            for _ in 0..size {
                held.push(p.get_elsewhere().await);
            }
            let r = match op {
                ScaleOp::TryGetEmpty => try_get_empty(pool, budget).await,
                ScaleOp::RegisterCancel => {
                    Some(calibrated!(budget, |n| register_cancel(p, n).await))
                }
                ScaleOp::HandOff => Some(calibrated!(budget, |n| hand_off(p, &mut held, n).await)),
            };
            drop(held);
            r
        })
    })
}

/// The non-waiting checkout on an exhausted pool, per peer.
async fn try_get_empty(pool: &AsyncPool, budget: Duration) -> Option<f64> {
    match pool {
        AsyncPool::Riptide(p) => Some(calibrated!(budget, |n| {
            let t = Instant::now();
            for _ in 0..n {
                assert!(std::hint::black_box(p.try_get()).is_err());
            }
            t.elapsed()
        })),
        AsyncPool::Deadpool(p) | AsyncPool::DeadpoolWait(crate::peers::DeadpoolWait(p, _)) => {
            let to = deadpool::managed::Timeouts {
                wait: Some(Duration::ZERO),
                ..Default::default()
            };
            Some(calibrated!(budget, |n| {
                let t = Instant::now();
                for _ in 0..n {
                    assert!(p.timeout_get(&to).await.is_err());
                }
                t.elapsed()
            }))
        }
        AsyncPool::Bb8(_) | AsyncPool::Mobc(_) => None,
    }
}

/// One series of the chart: a pool's ns/op per pool size (`None`: not measured).
pub type Series = (&'static str, Vec<(usize, Option<f64>)>);

/// Draws the scale case's figures, one panel per operation, ns/op against pool size on
/// log axes, to an SVG file at `path`.
///
/// # Errors
/// The file cannot be written.
pub fn scale_svg(
    path: &Path,
    caption: &str,
    panels: &[(ScaleOp, Vec<Series>)],
) -> Result<(), Box<dyn std::error::Error>> {
    use plotters::prelude::*;

    const COLORS: [RGBColor; 4] = [
        RGBColor(214, 39, 40),
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(148, 103, 189),
    ];
    let root = SVGBackend::new(path, (1260, 460)).into_drawing_area();
    root.fill(&WHITE)?;
    let (top, body) = root.split_vertically(40);
    top.titled(caption, ("sans-serif", 18))?;
    let areas = body.split_evenly((1, panels.len().max(1)));
    for ((op, series), area) in panels.iter().zip(areas) {
        let values = series
            .iter()
            .flat_map(|(_, v)| v.iter().filter_map(|(_, y)| *y));
        let lo = values.clone().fold(f64::INFINITY, f64::min).max(0.1);
        let hi = values.fold(0.0, f64::max).max(lo * 10.0);
        let (x0, x1) = (2.0f64, 40_000.0f64);
        let mut chart = ChartBuilder::on(&area)
            .caption(op.title(), ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x0..x1).log_scale(), (lo / 2.0..hi * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("objects in the pool")
            .y_desc("ns per operation")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| {
                if *y >= 1000.0 {
                    format!("{:.0}k", y / 1000.0)
                } else {
                    format!("{y:.0}")
                }
            })
            .draw()?;
        for (k, (name, points)) in series.iter().enumerate() {
            let color = COLORS[k % COLORS.len()];
            let pts: Vec<(f64, f64)> = points
                .iter()
                .filter_map(|(x, y)| y.map(|y| (*x as f64, y)))
                .collect();
            if pts.is_empty() {
                continue;
            }
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
                });
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, color.filled())))?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .border_style(BLACK)
            .background_style(WHITE.mix(0.85))
            .draw()?;
    }
    root.present()?;
    Ok(())
}
