//! The least a fair hand-off costs: a FIFO semaphore written as plainly as possible (one
//! `std` mutex around a permit count and a queue of waiter cells), with no objects, no
//! priorities, no timeouts, no statistics. It is a floor for the contended case, not a
//! pool: a release gives its permit straight to the oldest waiter and wakes it, and a new
//! caller queues behind anyone already waiting, which is the order every fair pool keeps.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// A fair (FIFO, no barging) counting semaphore.
pub struct FifoSemaphore {
    /// Free permits, and the waiters in arrival order.
    state: Mutex<(usize, VecDeque<Arc<Cell>>)>,
}

/// One waiter: whether it was given a permit, and whom to wake.
struct Cell {
    granted: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl FifoSemaphore {
    /// A semaphore with `permits` permits.
    pub fn new(permits: usize) -> Self {
        FifoSemaphore {
            state: Mutex::new((permits, VecDeque::new())),
        }
    }

    /// Waits for a permit; give it back with [`release`](Self::release).
    pub fn acquire(&self) -> Acquire<'_> {
        Acquire {
            sem: self,
            cell: None,
        }
    }

    /// Gives a permit to the oldest waiter (waking it), or back to the count.
    pub fn release(&self) {
        let mut st = self.state.lock().unwrap();
        match st.1.pop_front() {
            Some(cell) => {
                drop(st);
                // Release: pairs with the waiter's Acquire load of `granted`.
                cell.granted.store(true, Ordering::Release);
                if let Some(w) = cell.waker.lock().unwrap().take() {
                    w.wake();
                }
            }
            None => st.0 += 1,
        }
    }
}

/// The future of [`FifoSemaphore::acquire`]. Dropped while queued, it leaves the queue; dropped
/// after being granted but before completing, it passes the permit on.
pub struct Acquire<'a> {
    sem: &'a FifoSemaphore,
    cell: Option<Arc<Cell>>,
}

impl Future for Acquire<'_> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if let Some(cell) = &self.cell {
            // Acquire: pairs with `release`'s Release store.
            if !cell.granted.load(Ordering::Acquire) {
                *cell.waker.lock().unwrap() = Some(cx.waker().clone());
                // Granted between the load and storing the waker: nobody will wake us.
                if !cell.granted.load(Ordering::Acquire) {
                    return Poll::Pending;
                }
            }
            self.cell = None;
            return Poll::Ready(());
        }
        let mut st = self.sem.state.lock().unwrap();
        if st.1.is_empty() && st.0 > 0 {
            st.0 -= 1;
            return Poll::Ready(());
        }
        let cell = Arc::new(Cell {
            granted: AtomicBool::new(false),
            waker: Mutex::new(Some(cx.waker().clone())),
        });
        st.1.push_back(cell.clone());
        drop(st);
        self.cell = Some(cell);
        Poll::Pending
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else { return };
        let mut st = self.sem.state.lock().unwrap();
        // Under the lock `granted` is settled: `release` pops the cell before granting it.
        if let Some(i) = st.1.iter().position(|c| Arc::ptr_eq(c, &cell)) {
            st.1.remove(i);
        } else {
            drop(st);
            // Popped by a release: the permit is ours, so pass it on. Wait for the grant
            // store, which follows the pop (a spin of a few instructions at most).
            while !cell.granted.load(Ordering::Acquire) {
                std::hint::spin_loop();
            }
            self.sem.release();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn permits_are_never_exceeded_and_cancelled_waiters_lose_nothing() {
        use std::sync::atomic::AtomicUsize;
        let sem = Arc::new(FifoSemaphore::new(2));
        let inside = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..16)
            .map(|t| {
                let (sem, inside) = (sem.clone(), inside.clone());
                tokio::spawn(async move {
                    for i in 0..200 {
                        if (t + i) % 7 == 0 {
                            // Give up after one poll: the cancel path (or a permit at
                            // once, given back).
                            let once =
                                tokio::time::timeout(std::time::Duration::ZERO, sem.acquire());
                            if once.await.is_ok() {
                                sem.release();
                            }
                            continue;
                        }
                        sem.acquire().await;
                        assert!(inside.fetch_add(1, Ordering::SeqCst) < 2);
                        tokio::task::yield_now().await;
                        inside.fetch_sub(1, Ordering::SeqCst);
                        sem.release();
                    }
                })
            })
            .collect();
        // A lost permit shows as a hang: bound it.
        let all = async {
            for t in tasks {
                t.await.unwrap();
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(20), all)
            .await
            .expect("a permit was lost");
        let st = sem.state.lock().unwrap();
        assert_eq!((st.0, st.1.len()), (2, 0));
    }
}
