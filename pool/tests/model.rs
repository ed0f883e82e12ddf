//! Model-based random testing: random sequences of operations on a real pool, each checked
//! against a small reference model of what must hold, and shrunk to a minimal failing
//! sequence when something does not.
//!
//! Two machines:
//! - **pool**: `get`, `try_get`, `get_blocking`, waiters queued at random priorities
//!   (every other one first polled through another task's waker),
//!   return, unhealthy return, `discard`, `detach`, a forgotten guard, a panicking `reset`,
//!   a panicking `Drop`, `resize`, `close`, a failing factory (with the circuit breaker),
//!   the runtime shutting down under the pool, and, on half the pools, a checkout hook
//!   that passes, rejects or panics (each rejected object is dropped aside and replaced);
//!   and an acquisition future made at one step and polled or dropped at a later one, with
//!   anything in between (a future that claimed an idle object when it was made must not
//!   hand it out after `close`, and one dropped unpolled returns it);
//! - **partitions**: `get` per key under per-key and global caps (with eviction),
//!   return, `discard`, `remove_idle_partitions`, `close`. One key's objects are slow to
//!   drop and another's panic in `Drop`, so evictions (dropped aside) meet both, and a
//!   `get` whose deadline is shorter than its victim's drop times out while the eviction
//!   still frees its unit.
//!
//! After every step (and the objects it dropped aside) the pool's own figures must equal the model's: size, idle, in use,
//! callers waiting, created, destroyed, the breaker, objects alive; and every call's result
//! must be the one the model predicts (which waiter is served, in priority order, FIFO
//! within a level). No step may outlive its deadline (a watchdog).
//!
//! CI runs a bounded number of cases; `RIPTIDE_MODEL_CASES=20000 cargo test --release -p
//! riptide-pool --test model` runs for minutes.

use std::collections::BTreeMap;
use std::future::{Future, IntoFuture};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::Config;
use proptest_state_machine::{prop_state_machine, ReferenceStateMachine, StateMachineTest};
use riptide_pool::{CircuitState, PartitionedPool, Pool, PoolError, Poolable, Pooled, Priority};

fn cases() -> u32 {
    std::env::var("RIPTIDE_MODEL_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48)
}

/// A step bounded by `limit` must end within it plus this margin (a loaded CI machine).
const MARGIN: Duration = Duration::from_millis(750);

fn watchdog(t0: Instant, limit: Duration, what: &str) {
    let took = t0.elapsed();
    assert!(
        took <= limit + MARGIN,
        "{what}: took {took:?} with a {limit:?} deadline"
    );
}

// ------------------------------------------------------------------ the pooled object

#[derive(Default)]
struct Census {
    live: AtomicUsize,
}

struct Obj {
    healthy: bool,
    panic_in_reset: bool,
    panic_in_drop: bool,
    census: Arc<Census>,
}

impl Poolable for Obj {
    fn reset(&mut self) {
        if self.panic_in_reset {
            panic!("reset panicked (on purpose)");
        }
    }
    fn is_healthy(&self) -> bool {
        self.healthy
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        self.census.live.fetch_sub(1, Ordering::SeqCst);
        if self.panic_in_drop && !std::thread::panicking() {
            panic!("drop panicked (on purpose)");
        }
    }
}

fn quiet_panics() {
    // The model panics on purpose in `reset` and `Drop`: keep the output readable.
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let p = info.payload();
            let msg = p
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| p.downcast_ref::<String>().map(String::as_str));
            if !matches!(
                msg,
                Some(
                    "reset panicked (on purpose)"
                        | "drop panicked (on purpose)"
                        | "checkout hook panicked (on purpose)"
                )
            ) {
                prev(info);
            }
        }));
    });
}

// ------------------------------------------------------------------ the pool machine

const PRIORITIES: [Priority; 4] = [
    Priority::Low,
    Priority::Normal,
    Priority::High,
    Priority::Critical,
];

/// Consecutive create failures that open the breaker (its cool-down outlasts a case).
const BREAKER: u32 = 3;

/// A step's timeout: short when the model says it must time out (the wait is real), long
/// otherwise (a create runs on another thread, which a loaded machine may delay).
fn limit(expect: &Expect) -> Duration {
    if *expect == Expect::Timeout {
        Duration::from_millis(3)
    } else {
        Duration::from_secs(5)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Get,
    TryGet,
    GetBlocking,
    Return(usize),
    ReturnUnhealthy(usize),
    Discard(usize),
    Detach(usize),
    Forget(usize),
    PanicInReset(usize),
    PanicInDrop(usize),
    Resize(usize),
    Close,
    ClearIdle,
    Queue(Priority),
    QueueBlocking(Priority),
    FactoryFails(bool),
    NewRuntime,
    /// An acquisition future is made and kept, not polled.
    MakeFuture,
    /// The kept future is polled to its end.
    PollFuture,
    /// The kept future is dropped unpolled.
    DropFuture,
    /// What the pool's checkout hook (`pre_recycle`) does with reused objects from now on.
    Checkout(Verdict),
}

/// What the checkout hook does with a reused object.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Verdict {
    Pass,
    Reject,
    Panic,
}

/// What the last step must have returned.
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    Ok,
    Timeout,
    Exhausted,
    Closed,
    Create,
    CircuitOpen,
    Nothing,
}

/// What a kept, unpolled acquisition future did when it was made.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kept {
    /// It claimed an idle object (no checkout hook, nobody queued): the pool counts that
    /// object in use until the future is polled or dropped.
    Holds,
    /// It claimed nothing: its first poll acquires as a `get` would then.
    Later,
    /// The pool was closed: it fails with `Closed`.
    Failed,
}

/// How a queued waiter was served by the last step.
#[derive(Clone, Debug, PartialEq)]
enum Served {
    Object,
    Closed,
    CircuitOpen,
    Create,
    /// `Create` or `CircuitOpen`: several creates fail at once and race the breaker.
    Failed,
}

#[derive(Clone, Debug)]
struct Model {
    max: usize,
    /// The pool has a checkout hook (every reuse but `try_get`'s takes the slow path).
    hook: bool,
    verdict: Verdict,
    closed: bool,
    idle: usize,
    held: usize,
    forgotten: usize,
    /// The kept acquisition future, if any.
    kept: Option<Kept>,
    /// The last step destroyed an object aside (on another thread): the pool's figures
    /// may settle after the step returns.
    aside: bool,
    /// Queued waiters in arrival order: (priority, id, a blocking thread?).
    waiters: Vec<(Priority, u64, bool)>,
    next_waiter: u64,
    fail: bool,
    failures: u32,
    open: bool,
    created: u64,
    destroyed: u64,
    expect: Expect,
    served: Vec<(u64, Served)>,
}

impl Model {
    fn size(&self) -> usize {
        self.idle + self.in_use()
    }

    /// Objects checked out: held, forgotten, or claimed by the kept future.
    fn in_use(&self) -> usize {
        self.held + self.forgotten + usize::from(self.kept == Some(Kept::Holds))
    }

    /// A held object goes back: destroyed if the pool is closed or above `max_size`,
    /// else handed to the best waiter, else idle.
    fn give_back(&mut self) {
        let size_before = self.size();
        self.held -= 1;
        if self.closed || size_before > self.max {
            self.destroyed += 1;
            self.freed(size_before);
        } else if !self.waiters.is_empty() {
            let w = self.pop_best().expect("non-empty");
            self.held += 1;
            self.served.push((w, Served::Object));
        } else {
            self.idle += 1;
        }
    }

    /// The next waiter to serve: highest priority, then the oldest.
    fn pop_best(&mut self) -> Option<u64> {
        let best = (0..self.waiters.len()).max_by(|&a, &b| {
            let (pa, ia, _) = self.waiters[a];
            let (pb, ib, _) = self.waiters[b];
            pa.cmp(&pb).then(ib.cmp(&ia))
        })?;
        Some(self.waiters.remove(best).1)
    }

    /// A create for a caller (`Ok`) or its error; the breaker counts it.
    fn create(&mut self) -> Expect {
        if self.open {
            return Expect::CircuitOpen;
        }
        if self.fail {
            self.failures += 1;
            if self.failures >= BREAKER {
                self.open = true;
                // Queued waiters are failed when the breaker opens.
                while let Some(w) = self.pop_best() {
                    self.served.push((w, Served::CircuitOpen));
                }
            }
            return Expect::Create;
        }
        self.failures = 0;
        self.created += 1;
        Expect::Ok
    }

    /// One unit of capacity was freed (after an object was destroyed): the best waiter
    /// gets it and creates, unless the pool is closed or still above `max_size`.
    fn freed(&mut self, size_before: usize) {
        if self.closed || size_before > self.max {
            return;
        }
        self.grant_one();
    }

    /// The best waiter gets a unit of capacity and creates with it; true if that made an
    /// object. With the breaker open its create fails fast and the unit passes on, so
    /// every waiter fails. A failing factory fails it (`Create`) and the unit passes on,
    /// until the breaker opens and fails the rest.
    fn grant_one(&mut self) -> bool {
        let Some(w) = self.pop_best() else {
            return false;
        };
        if self.open {
            self.served.push((w, Served::CircuitOpen));
            while let Some(w) = self.pop_best() {
                self.served.push((w, Served::CircuitOpen));
            }
            return false;
        }
        if self.fail {
            self.served.push((w, Served::Create));
            self.failures += 1;
            if self.failures >= BREAKER {
                self.open = true;
                while let Some(w) = self.pop_best() {
                    self.served.push((w, Served::CircuitOpen));
                }
            } else {
                self.grant_one();
            }
            return false;
        }
        self.created += 1;
        self.failures = 0;
        self.held += 1;
        self.served.push((w, Served::Object));
        true
    }

    /// A caller's acquisition that may wait (the step runs alone: nothing is returned
    /// while it waits).
    fn acquire(&mut self) -> Expect {
        if self.closed {
            Expect::Closed
        } else if !self.waiters.is_empty() {
            Expect::Timeout // queued behind them; nobody returns anything meanwhile
        } else if self.idle > 0 && self.verdict != Verdict::Pass {
            // Every idle object is taken in turn, fails its checkout and is dropped aside;
            // then the caller creates. (An idle object means `size <= max`, so there is
            // room once one is gone.)
            self.destroyed += self.idle as u64;
            self.idle = 0;
            let r = self.create();
            if r == Expect::Ok {
                self.held += 1;
            }
            r
        } else if self.idle > 0 {
            self.idle -= 1;
            self.held += 1;
            Expect::Ok
        } else if self.size() < self.max {
            let r = self.create();
            if r == Expect::Ok {
                self.held += 1;
            }
            r
        } else {
            Expect::Timeout
        }
    }

    /// A held object is destroyed (unhealthy, discarded, detached, panicking reset).
    fn destroy_held(&mut self) {
        let size_before = self.size();
        self.held -= 1;
        self.destroyed += 1;
        self.freed(size_before);
    }
}

struct PoolMachine;

impl ReferenceStateMachine for PoolMachine {
    type State = Model;
    type Transition = Op;

    fn init_state() -> BoxedStrategy<Model> {
        (1usize..=4, any::<bool>())
            .prop_map(|(max, hook)| Model {
                max,
                hook,
                verdict: Verdict::Pass,
                closed: false,
                idle: 0,
                held: 0,
                forgotten: 0,
                kept: None,
                aside: false,
                waiters: Vec::new(),
                next_waiter: 0,
                fail: false,
                failures: 0,
                open: false,
                created: 0,
                destroyed: 0,
                expect: Expect::Nothing,
                served: Vec::new(),
            })
            .boxed()
    }

    fn transitions(_: &Model) -> BoxedStrategy<Op> {
        let i = 0usize..8;
        prop_oneof![
            6 => Just(Op::Get),
            2 => Just(Op::TryGet),
            2 => Just(Op::GetBlocking),
            8 => i.clone().prop_map(Op::Return),
            1 => i.clone().prop_map(Op::ReturnUnhealthy),
            1 => i.clone().prop_map(Op::Discard),
            1 => i.clone().prop_map(Op::Detach),
            1 => i.clone().prop_map(Op::Forget),
            1 => i.clone().prop_map(Op::PanicInReset),
            1 => i.prop_map(Op::PanicInDrop),
            2 => (1usize..=5).prop_map(Op::Resize),
            1 => Just(Op::Close),
            1 => Just(Op::ClearIdle),
            4 => (0usize..4).prop_map(|p| Op::Queue(PRIORITIES[p])),
            2 => (0usize..4).prop_map(|p| Op::QueueBlocking(PRIORITIES[p])),
            1 => any::<bool>().prop_map(Op::FactoryFails),
            1 => Just(Op::NewRuntime),
            2 => Just(Op::MakeFuture),
            2 => Just(Op::PollFuture),
            1 => Just(Op::DropFuture),
            2 => prop_oneof![
                Just(Verdict::Pass),
                Just(Verdict::Reject),
                Just(Verdict::Panic)
            ]
            .prop_map(Op::Checkout),
        ]
        .boxed()
    }

    fn preconditions(m: &Model, op: &Op) -> bool {
        match op {
            Op::Return(_)
            | Op::ReturnUnhealthy(_)
            | Op::Discard(_)
            | Op::Detach(_)
            | Op::Forget(_)
            | Op::PanicInReset(_)
            | Op::PanicInDrop(_) => m.held > 0,
            // Only a caller that really has to wait is queued. A waiter handed an object
            // its checkout rejects is not modelled: the unit the rejection frees goes to the
            // best caller queued at that moment, a race with the rejecting caller's return
            // to the queue.
            Op::Queue(_) | Op::QueueBlocking(_) => {
                !m.closed && m.idle == 0 && m.size() >= m.max && m.verdict == Verdict::Pass
            }
            Op::FactoryFails(_) => m.waiters.is_empty(),
            Op::Checkout(v) => m.hook && (*v == Verdict::Pass || m.waiters.is_empty()),
            Op::MakeFuture => m.kept.is_none(),
            Op::PollFuture | Op::DropFuture => m.kept.is_some(),
            _ => true,
        }
    }

    fn apply(mut m: Model, op: &Op) -> Model {
        m.expect = Expect::Nothing;
        m.served.clear();
        m.aside = false;
        match op {
            Op::Get | Op::GetBlocking => m.expect = m.acquire(),
            Op::TryGet => {
                m.expect = if m.closed {
                    Expect::Closed
                } else if !m.waiters.is_empty() || m.idle == 0 {
                    Expect::Exhausted
                } else {
                    m.idle -= 1;
                    m.held += 1;
                    Expect::Ok
                };
            }
            Op::Return(_) | Op::PanicInDrop(_) => m.give_back(),
            Op::ReturnUnhealthy(_) | Op::Discard(_) | Op::Detach(_) | Op::PanicInReset(_) => {
                m.destroy_held()
            }
            Op::Forget(_) => {
                m.held -= 1;
                m.forgotten += 1;
            }
            Op::Resize(n) => {
                if !m.closed {
                    m.max = *n;
                    if m.fail && !m.open && m.size() < m.max && !m.waiters.is_empty() {
                        // Several waiters get capacity at once and all their creates fail;
                        // which of them meet the breaker already open is a race.
                        while let Some(w) = m.pop_best() {
                            m.served.push((w, Served::Failed));
                            m.failures += 1;
                        }
                        m.open = m.failures >= BREAKER;
                    }
                    while m.size() < m.max && m.grant_one() {}
                    if m.size() > m.max {
                        let k = m.idle.min(m.size() - m.max);
                        m.idle -= k;
                        m.destroyed += k as u64;
                    }
                }
            }
            Op::ClearIdle => {
                // Waiters exist only while nothing is idle: nobody gets the freed units.
                m.destroyed += m.idle as u64;
                m.idle = 0;
            }
            Op::Close => {
                if !m.closed {
                    m.closed = true;
                    while let Some(w) = m.pop_best() {
                        m.served.push((w, Served::Closed));
                    }
                    m.destroyed += m.idle as u64;
                    m.idle = 0;
                }
            }
            Op::Queue(p) | Op::QueueBlocking(p) => {
                let blocking = matches!(op, Op::QueueBlocking(_));
                m.waiters.push((*p, m.next_waiter, blocking));
                m.next_waiter += 1;
            }
            Op::FactoryFails(f) => m.fail = *f,
            // Async waiters' tasks are dropped with their runtime (cancelled); blocking
            // waiters' threads wait on.
            Op::NewRuntime => m.waiters.retain(|w| w.2),
            Op::Checkout(v) => m.verdict = *v,
            Op::MakeFuture => {
                // The fast path at creation: an idle object that needs no checkout step.
                // (Callers queue only while nothing is idle.)
                m.kept = Some(if m.closed {
                    Kept::Failed
                } else if m.idle > 0 && !m.hook {
                    m.idle -= 1;
                    Kept::Holds
                } else {
                    Kept::Later
                });
            }
            Op::PollFuture => match m.kept.take().expect("a kept future") {
                Kept::Failed => m.expect = Expect::Closed,
                Kept::Later => m.expect = m.acquire(),
                Kept::Holds if m.closed => {
                    // Never handed out after `close`: destroyed aside.
                    m.expect = Expect::Closed;
                    m.destroyed += 1;
                    m.aside = true;
                }
                Kept::Holds => {
                    m.expect = Expect::Ok;
                    m.held += 1;
                }
            },
            Op::DropFuture => {
                if m.kept.take() == Some(Kept::Holds) {
                    // Its object goes back as a dropped guard's does.
                    m.held += 1;
                    m.give_back();
                }
            }
        }
        m
    }
}

struct Sut {
    rt: Option<tokio::runtime::Runtime>,
    pool: Pool<Obj>,
    held: Vec<Pooled<Obj>>,
    /// "Forgotten" guards: never dropped while the case runs, so the pool sees a guard
    /// that never comes back; dropped after the teardown's checks, so a long run does not
    /// leak a runtime's file descriptors per case (the pool keeps its build runtime's
    /// handle, which a truly forgotten guard would keep forever).
    forgotten: Vec<Pooled<Obj>>,
    kept: Option<riptide_pool::AcquireFuture<Obj>>,
    waiters: BTreeMap<u64, Waiting>,
    census: Arc<Census>,
    fail: Arc<AtomicBool>,
    /// The checkout hook's verdict: 0 pass, 1 reject, 2 panic.
    verdict: Arc<AtomicUsize>,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn kind<T>(r: &Result<T, PoolError>) -> Expect {
    match r {
        Ok(_) => Expect::Ok,
        Err(PoolError::Timeout) => Expect::Timeout,
        Err(PoolError::Exhausted) => Expect::Exhausted,
        Err(PoolError::Closed) => Expect::Closed,
        Err(PoolError::Create(_)) => Expect::Create,
        Err(PoolError::CircuitOpen { .. }) => Expect::CircuitOpen,
        Err(e) => panic!("unexpected error {e:?}"),
    }
}

/// A queued waiter: an async task, or a thread in `blocking()`.
enum Waiting {
    Task(tokio::task::JoinHandle<Result<Pooled<Obj>, PoolError>>),
    Thread(std::thread::JoinHandle<Result<Pooled<Obj>, PoolError>>),
}

impl Sut {
    /// Waits until `n` callers are queued, so the queue order is the model's.
    fn wait_queued(&self, n: usize) {
        let t0 = Instant::now();
        while self.pool.stats().pending_acquisitions < n {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "a waiter never queued"
            );
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("a runtime")
    }

    fn take(&mut self, i: usize) -> Pooled<Obj> {
        let n = self.held.len();
        self.held.swap_remove(i % n)
    }

    fn check(&mut self, r: Result<Pooled<Obj>, PoolError>, want: &Expect, op: &Op) {
        assert_eq!(
            &kind(&r),
            want,
            "{op:?} returned {r:?}",
            r = r.as_ref().map(|_| ())
        );
        if let Ok(g) = r {
            self.held.push(g);
        }
    }
}

impl StateMachineTest for PoolMachine {
    type SystemUnderTest = Sut;
    type Reference = PoolMachine;

    fn init_test(m: &Model) -> Sut {
        quiet_panics();
        let rt = runtime();
        let census = Arc::new(Census::default());
        let fail = Arc::new(AtomicBool::new(false));
        let verdict = Arc::new(AtomicUsize::new(0));
        let (c, f, v) = (census.clone(), fail.clone(), verdict.clone());
        let pool = rt.block_on(async {
            let builder = Pool::builder(move || {
                let (c, f) = (c.clone(), f.clone());
                async move {
                    if f.load(Ordering::SeqCst) {
                        return Err(std::io::Error::other("factory down (on purpose)"));
                    }
                    c.live.fetch_add(1, Ordering::SeqCst);
                    Ok(Obj {
                        healthy: true,
                        panic_in_reset: false,
                        panic_in_drop: false,
                        census: c,
                    })
                }
            })
            .max_size(m.max)
            .acquire_timeout(Duration::from_secs(60))
            .starvation_threshold(Duration::from_secs(3600))
            .circuit_breaker(BREAKER, Duration::from_secs(3600));
            if !m.hook {
                return builder.build().unwrap();
            }
            builder
                .pre_recycle(move |_, _| {
                    let v = v.load(Ordering::SeqCst);
                    Box::pin(async move {
                        match v {
                            0 => Ok(()),
                            1 => Err("rejected (on purpose)".into()),
                            _ => panic!("checkout hook panicked (on purpose)"),
                        }
                    })
                })
                .build()
                .unwrap()
        });
        Sut {
            rt: Some(rt),
            pool,
            held: Vec::new(),
            forgotten: Vec::new(),
            kept: None,
            waiters: BTreeMap::new(),
            census,
            fail,
            verdict,
        }
    }

    fn apply(mut s: Sut, m: &Model, op: Op) -> Sut {
        match &op {
            Op::Get => {
                let d = limit(&m.expect);
                let t0 = Instant::now();
                let r = s.rt().block_on(s.pool.acquire().timeout(d).into_future());
                watchdog(t0, d, "get");
                s.check(r, &m.expect, &op);
            }
            Op::GetBlocking => {
                let d = limit(&m.expect);
                let t0 = Instant::now();
                let r = s.pool.acquire().timeout(d).blocking();
                watchdog(t0, d, "get_blocking");
                s.check(r, &m.expect, &op);
            }
            Op::TryGet => {
                let r = s.pool.try_get();
                s.check(r, &m.expect, &op);
            }
            Op::Return(i) => drop(s.take(*i)),
            Op::ReturnUnhealthy(i) => {
                let mut g = s.take(*i);
                g.healthy = false;
                drop(g);
            }
            Op::Discard(i) => Pooled::discard(s.take(*i)),
            Op::Detach(i) => {
                let mut o = Pooled::detach(s.take(*i));
                o.panic_in_drop = false; // ours now: dropped by the test
                drop(o);
            }
            Op::Forget(i) => {
                let g = s.take(*i);
                s.forgotten.push(g);
            }
            Op::PanicInReset(i) => {
                let mut g = s.take(*i);
                g.panic_in_reset = true;
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(g)));
                assert!(
                    r.is_err(),
                    "reset's panic reaches the caller that dropped the guard"
                );
            }
            Op::PanicInDrop(i) => {
                // The object goes back armed: whichever path destroys it later (close,
                // resize, discard, an unhealthy return, the pool's drop) meets a panicking
                // `Drop`, which the pool catches.
                let mut g = s.take(*i);
                g.panic_in_drop = true;
                drop(g);
            }
            Op::Resize(n) => s.pool.resize(*n),
            Op::Close => s.pool.close(),
            Op::ClearIdle => {
                s.pool.clear_idle();
            }
            Op::Queue(p) => {
                let id = m.next_waiter - 1;
                let pool = s.pool.clone();
                let p = *p;
                let h = s.rt().spawn(async move {
                    let mut f = pool.acquire().priority(p).into_future();
                    if id % 2 == 0 {
                        // Every other waiter queues through another waker first, as a
                        // future moved between tasks does: its wait must then wake this
                        // task.
                        let noop = &mut std::task::Context::from_waker(std::task::Waker::noop());
                        if let std::task::Poll::Ready(r) = std::pin::Pin::new(&mut f).poll(noop) {
                            return r;
                        }
                    }
                    f.await
                });
                s.waiters.insert(id, Waiting::Task(h));
                s.wait_queued(m.waiters.len());
            }
            Op::QueueBlocking(p) => {
                let id = m.next_waiter - 1;
                let pool = s.pool.clone();
                let p = *p;
                let h = std::thread::spawn(move || {
                    pool.acquire()
                        .priority(p)
                        .timeout(Duration::from_secs(60))
                        .blocking()
                });
                s.waiters.insert(id, Waiting::Thread(h));
                s.wait_queued(m.waiters.len());
            }
            Op::FactoryFails(f) => s.fail.store(*f, Ordering::SeqCst),
            Op::Checkout(v) => s.verdict.store(*v as usize, Ordering::SeqCst),
            Op::NewRuntime => {
                s.waiters.retain(|_, w| matches!(w, Waiting::Thread(_)));
                drop(s.rt.take());
                s.rt = Some(runtime());
            }
            // Made outside any runtime: its fast path needs none.
            Op::MakeFuture => s.kept = Some(s.pool.acquire().into_future()),
            Op::PollFuture => {
                let f = s.kept.take().expect("a kept future");
                let d = limit(&m.expect);
                let t0 = Instant::now();
                // Its own timeout is the pool's (60 s); one the model says must time out
                // is given up after `d`, which cancels it as the pool's timeout would.
                let r = s
                    .rt()
                    .block_on(async { tokio::time::timeout(d, f).await })
                    .unwrap_or(Err(PoolError::Timeout));
                watchdog(t0, d, "a kept future");
                s.check(r, &m.expect, &op);
            }
            Op::DropFuture => drop(s.kept.take()),
        }
        // Collect what the step decided for queued waiters, in the model's order.
        for (id, want) in &m.served {
            let w = s.waiters.remove(id).expect("a queued waiter");
            let t0 = Instant::now();
            let r = match w {
                Waiting::Task(h) => s
                    .rt()
                    .block_on(async { tokio::time::timeout(Duration::from_secs(10), h).await })
                    .expect("a served waiter's task was never woken")
                    .expect("the waiter's task"),
                Waiting::Thread(h) => h.join().expect("the waiter's thread"),
            };
            watchdog(t0, Duration::ZERO, "a served waiter");
            let got = match &r {
                Ok(_) => Served::Object,
                Err(PoolError::Closed) => Served::Closed,
                Err(PoolError::CircuitOpen { .. }) => Served::CircuitOpen,
                Err(PoolError::Create(_)) => Served::Create,
                Err(e) => panic!("waiter {id} got {e:?}"),
            };
            let fits = got == *want
                || (*want == Served::Failed && matches!(got, Served::Create | Served::CircuitOpen));
            assert!(
                fits,
                "waiter {id} after {op:?}: got {got:?}, the model says {want:?}"
            );
            if let Ok(g) = r {
                s.held.push(g);
            }
        }
        s
    }

    fn check_invariants(s: &Sut, m: &Model) {
        let want = (
            m.max,
            m.size(),
            m.idle,
            m.in_use(),
            m.waiters.len(),
            m.created,
            m.destroyed,
        );
        let figures = || {
            let st = s.pool.stats();
            let got = (
                st.max_size,
                st.size,
                st.idle,
                st.in_use,
                st.pending_acquisitions,
                st.created,
                st.destroyed,
            );
            (got, s.census.live.load(Ordering::SeqCst))
        };
        let (mut got, mut live) = figures();
        // A rejected object, or one a kept future never handed out, is dropped aside, on
        // another thread: the step may end first. Everywhere else the figures are exact the
        // moment the step returns.
        let t0 = Instant::now();
        while (m.hook || m.aside)
            && (got != want || live != m.size())
            && t0.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(1));
            (got, live) = figures();
        }
        assert_eq!(
            got, want,
            "(max, size, idle, in_use, waiting, created, destroyed): pool {got:?}, model {want:?}"
        );
        assert_eq!(s.held.len(), m.held);
        assert_eq!(s.pool.is_closed(), m.closed);
        assert_eq!(
            s.pool.circuit_state() == CircuitState::Open,
            m.open,
            "breaker"
        );
        assert_eq!(
            live,
            m.size(),
            "objects alive must be exactly the pool's size: none lost, none leaked"
        );
    }

    fn teardown(mut s: Sut, m: Model) {
        // Forgotten guards keep their objects; everything else goes with the pool. Closing
        // first ends the blocking waiters' threads (they hold pool handles).
        s.pool.close();
        for (_, w) in std::mem::take(&mut s.waiters) {
            if let Waiting::Thread(h) = w {
                assert!(matches!(h.join().unwrap(), Err(PoolError::Closed)));
            }
        }
        s.held.clear();
        s.kept = None;
        drop(s.pool);
        drop(s.rt.take());
        let t0 = Instant::now();
        while s.census.live.load(Ordering::SeqCst) != m.forgotten {
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "objects alive after the pool was dropped: {}",
                s.census.live.load(Ordering::SeqCst)
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        // A guard that comes back after its pool closed and its runtime went: its object
        // is destroyed.
        s.forgotten.clear();
        assert_eq!(
            s.census.live.load(Ordering::SeqCst),
            0,
            "forgotten objects alive"
        );
    }
}

// ------------------------------------------------------------------ the partition machine

const KEYS: u8 = 3;
const PART_CAP: usize = 2;
const GLOBAL: usize = 4;
/// This key's objects panic in `Drop`.
const PANICKY: u8 = 1;
/// This key's objects take `SLOW_DROP` to drop.
const SLOW: u8 = 2;
const SLOW_DROP: Duration = Duration::from_millis(200);
/// A deadline well inside `SLOW_DROP`.
const SHORT: Duration = Duration::from_millis(20);

#[derive(Clone, Debug)]
enum POp {
    Get(u8),
    /// A `get` with a `SHORT` deadline that has to evict one of `SLOW`'s objects.
    GetShort(u8),
    Return(usize),
    Discard(usize),
    RemoveIdle,
    Close,
}

#[derive(Clone, Debug, Default)]
struct PModel {
    /// Per key: (exists, idle, held).
    keys: [(bool, usize, usize); KEYS as usize],
    /// Keys of held objects, in the order the SUT holds them.
    held: Vec<u8>,
    closed: bool,
    expect: Option<Expect>,
    removed: usize,
}

impl PModel {
    fn global(&self) -> usize {
        self.keys.iter().map(|k| k.1 + k.2).sum()
    }
    /// Other keys with idle objects: the eviction candidates for `k`.
    fn victims(&self, k: u8) -> Vec<usize> {
        (0..KEYS as usize)
            .filter(|&o| o != k as usize && self.keys[o].1 > 0)
            .collect()
    }
}

struct PartMachine;

impl ReferenceStateMachine for PartMachine {
    type State = PModel;
    type Transition = POp;

    fn init_state() -> BoxedStrategy<PModel> {
        Just(PModel::default()).boxed()
    }

    fn transitions(m: &PModel) -> BoxedStrategy<POp> {
        let ops = prop_oneof![
            6 => (0..KEYS).prop_map(POp::Get),
            // More of `SLOW`'s objects to evict.
            2 => Just(POp::Get(SLOW)),
            6 => (0usize..8).prop_map(POp::Return),
            1 => (0usize..8).prop_map(POp::Discard),
            2 => Just(POp::RemoveIdle),
            1 => Just(POp::Close),
        ];
        // A short get is drawn where its precondition holds, which random steps rarely
        // reach.
        let short: Vec<POp> = (0..KEYS)
            .map(POp::GetShort)
            .filter(|op| Self::preconditions(m, op))
            .collect();
        if short.is_empty() {
            ops.boxed()
        } else {
            prop_oneof![3 => ops, 1 => proptest::sample::select(short)].boxed()
        }
    }

    fn preconditions(m: &PModel, op: &POp) -> bool {
        match op {
            POp::Return(_) | POp::Discard(_) => !m.held.is_empty(),
            // Keep evictions unambiguous: the model cannot know which of two keys' idle
            // objects is the oldest on the pool's millisecond clock.
            POp::Get(k) => {
                let (_, idle, held) = m.keys[*k as usize];
                m.closed
                    || idle > 0
                    || idle + held >= PART_CAP
                    || m.global() < GLOBAL
                    || m.victims(*k).len() <= 1
            }
            POp::GetShort(k) => {
                let (_, idle, held) = m.keys[*k as usize];
                !m.closed
                    && idle == 0
                    && idle + held < PART_CAP
                    && m.global() >= GLOBAL
                    && m.victims(*k) == [SLOW as usize]
            }
            _ => true,
        }
    }

    fn apply(mut m: PModel, op: &POp) -> PModel {
        m.expect = None;
        m.removed = 0;
        match op {
            POp::Get(k) => {
                let ki = *k as usize;
                if m.closed {
                    m.expect = Some(Expect::Closed);
                    return m;
                }
                m.keys[ki].0 = true;
                let (_, idle, held) = m.keys[ki];
                m.expect = Some(if idle > 0 {
                    m.keys[ki].1 -= 1;
                    m.keys[ki].2 += 1;
                    m.held.push(*k);
                    Expect::Ok
                } else if idle + held >= PART_CAP {
                    Expect::Timeout
                } else if m.global() < GLOBAL {
                    m.keys[ki].2 += 1;
                    m.held.push(*k);
                    Expect::Ok
                } else if let Some(&v) = m.victims(*k).first() {
                    m.keys[v].1 -= 1; // the oldest idle object elsewhere makes room
                    m.keys[ki].2 += 1;
                    m.held.push(*k);
                    Expect::Ok
                } else {
                    Expect::Timeout
                });
            }
            POp::GetShort(k) => {
                // The victim's unit comes free only after its drop, past the deadline.
                m.keys[*k as usize].0 = true;
                m.keys[SLOW as usize].1 -= 1;
                m.expect = Some(Expect::Timeout);
            }
            POp::Return(i) | POp::Discard(i) => {
                let n = m.held.len();
                let k = m.held.swap_remove(i % n) as usize;
                m.keys[k].2 -= 1;
                if matches!(op, POp::Return(_)) && !m.closed {
                    m.keys[k].1 += 1;
                }
            }
            POp::RemoveIdle => {
                // A closed pool keeps its partitions (and their stats) as they are.
                for k in m.keys.iter_mut().filter(|_| !m.closed) {
                    if k.0 && k.1 + k.2 == 0 {
                        k.0 = false;
                        m.removed += 1;
                    }
                }
            }
            POp::Close => {
                m.closed = true;
                for k in &mut m.keys {
                    k.1 = 0;
                }
            }
        }
        m
    }
}

struct PSut {
    rt: tokio::runtime::Runtime,
    pp: PartitionedPool<u8, KeyObj>,
    held: Vec<Pooled<KeyObj>>,
    live: Arc<[AtomicUsize; KEYS as usize]>,
}

struct KeyObj {
    key: u8,
    live: Arc<[AtomicUsize; KEYS as usize]>,
}
impl Poolable for KeyObj {}
impl Drop for KeyObj {
    fn drop(&mut self) {
        if self.key == SLOW {
            std::thread::sleep(SLOW_DROP);
        }
        self.live[self.key as usize].fetch_sub(1, Ordering::SeqCst);
        if self.key == PANICKY && !std::thread::panicking() {
            panic!("an object of key {PANICKY} panicked in Drop (on purpose)");
        }
    }
}

impl StateMachineTest for PartMachine {
    type SystemUnderTest = PSut;
    type Reference = PartMachine;

    fn init_test(_: &PModel) -> PSut {
        let rt = runtime();
        let live: Arc<[AtomicUsize; KEYS as usize]> = Arc::new(Default::default());
        let l = live.clone();
        let pp = rt.block_on(async {
            PartitionedPool::builder(move |key: u8| {
                let live = l.clone();
                async move {
                    live[key as usize].fetch_add(1, Ordering::SeqCst);
                    Ok::<_, std::io::Error>(KeyObj { key, live })
                }
            })
            .partition_max_size(PART_CAP)
            .max_size(GLOBAL)
            .build()
            .unwrap()
        });
        PSut {
            rt,
            pp,
            held: Vec::new(),
            live,
        }
    }

    fn apply(mut s: PSut, m: &PModel, op: POp) -> PSut {
        match op {
            POp::Get(k) => {
                let want = m.expect.clone().expect("an expectation");
                let d = limit(&want);
                let t0 = Instant::now();
                let r = s.rt.block_on(s.pp.acquire(&k).timeout(d).into_future());
                watchdog(t0, d, "partition get");
                assert_eq!(
                    kind(&r),
                    want,
                    "get({k}) returned {:?}",
                    r.as_ref().map(|_| ())
                );
                if let Ok(g) = r {
                    assert_eq!(g.key, k);
                    s.held.push(g);
                }
            }
            POp::GetShort(k) => {
                let t0 = Instant::now();
                let r = s.rt.block_on(s.pp.acquire(&k).timeout(SHORT).into_future());
                watchdog(t0, SHORT, "partition get, short deadline");
                assert_eq!(kind(&r), Expect::Timeout, "get({k}) with a short deadline");
            }
            POp::Return(i) => {
                let n = s.held.len();
                drop(s.held.swap_remove(i % n));
            }
            POp::Discard(i) => {
                let n = s.held.len();
                Pooled::discard(s.held.swap_remove(i % n));
            }
            POp::RemoveIdle => assert_eq!(s.pp.remove_idle_partitions(), m.removed),
            POp::Close => s.pp.close(),
        }
        s
    }

    fn check_invariants(s: &PSut, m: &PModel) {
        // An eviction drops its object aside, and a slow one outlives a short deadline:
        // wait, up to 5 s, until every figure and every key's census agree with the
        // model, then check them (below) to name what does not.
        let agree = || {
            (0..KEYS).all(|k| {
                let (exists, idle, held) = m.keys[k as usize];
                let sized =
                    s.pp.stats(&k)
                        .map(|st| (st.size, st.idle, st.in_use) == (idle + held, idle, held));
                sized.unwrap_or(!exists) && s.live[k as usize].load(Ordering::SeqCst) == idle + held
            }) && s.pp.global_size() == m.global()
        };
        let t0 = Instant::now();
        while !agree() && t0.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut total = 0;
        for k in 0..KEYS {
            let (exists, idle, held) = m.keys[k as usize];
            let st = s.pp.stats(&k);
            assert_eq!(st.is_some(), exists, "partition {k} exists");
            if let Some(st) = st {
                assert_eq!(
                    (st.size, st.idle, st.in_use),
                    (idle + held, idle, held),
                    "key {k}"
                );
                assert!(st.size <= PART_CAP, "key {k} over its cap: {st:?}");
                total += st.size;
            }
            assert_eq!(
                s.live[k as usize].load(Ordering::SeqCst),
                idle + held,
                "objects alive for key {k}"
            );
        }
        assert_eq!(total, m.global());
        assert_eq!(s.pp.global_size(), m.global(), "global capacity in use");
        assert!(s.pp.global_size() <= GLOBAL);
        let keys: Vec<u8> = s.held.iter().map(|g| g.key).collect();
        let mut a = keys.clone();
        let mut b = m.held.clone();
        a.sort_unstable();
        b.sort_unstable();
        assert_eq!(a, b, "held objects per key");
    }
}

prop_state_machine! {
    #![proptest_config(Config {
        cases: cases(),
        // Steps whose precondition fails are drawn again (about ten per case): proptest's
        // default budget of 65,536 for the whole run would end a long run early.
        max_local_rejects: cases().saturating_mul(100).max(65_536),
        failure_persistence: None,
        .. Config::default()
    })]

    #[test]
    fn the_pool_matches_its_model(sequential 1..40 => PoolMachine);

    #[test]
    fn partitions_match_their_model(sequential 1..40 => PartMachine);
}
