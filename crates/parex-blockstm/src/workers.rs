//! Helper threads that a calling thread keeps from one block to the next.
//!
//! # Lifecycle
//! The first [`on_workers`] call on a thread that asks for `n` workers starts that thread's
//! crew of `n - 1` helper threads, kept in a thread-local. Each call runs worker 0 on the
//! calling thread and workers `1..n` on helpers at the same time, and returns once all of them
//! have finished. A helper then spins for [`HELPER_SPIN`] (the block tail's call follows the
//! executor's within that time) and parks until the next call. A call for more workers starts
//! more helpers; fewer workers use the first of them. The helpers stop when their crew is
//! dropped (the calling thread's exit).
//!
//! ```text
//!   one helper:
//!             on_workers posts a job (posted += 1)        the job returns
//!   waiting ──────────────────────────────────────► running ──────────► waiting
//!     │  ▲                                                  (remaining -= 1;
//!     │  │ on_workers posts (unpark)                         the last unparks the caller)
//!     ▼  │
//!   parked      (waiting longer than HELPER_SPIN)
//!     │
//!     ▼ drop of the crew (quit, unpark)
//!   gone
//! ```
//!
//! Why: starting a thread cost this 2-vCPU VM about 40 µs before it ran and about 60-90 µs to
//! start and join, twice a block (the executor's workers, then the block tail's parts), and a
//! fresh thread faults in its stack and its allocator's pages. On a 100-transaction block that
//! is a large share of the block, and at 16 threads the calling thread would start 15 threads
//! in turn, twice per block. A rayon pool, tried first, took 25-55 µs to wake its threads even
//! when they had just finished a job; a helper that is still spinning takes a cache line's
//! transfer.
//!
//! # Invariants
//! - **I22** Every worker of a call runs at the same time as the others: the executor's workers
//!   wait for each other (a read waits for a lower transaction; every worker meets at the
//!   barrier). A call therefore gives each worker but the first a helper of its own, and a
//!   helper runs one job at a time. A call made from inside a call on the same thread (its
//!   helpers are then busy), or while the thread's locals are being destroyed (its crew may
//!   be gone), runs on threads started for it alone.
//! - **I23** Helpers belong to the process that started them: after a `fork`, the child's copy
//!   of the thread-local names threads that do not exist in it, so a crew started by another
//!   process is never used, and never dropped (its helpers' handles are the parent's); the
//!   child starts its own.
//! - **I24** A job's work and completion count live in the calling frame of `on_workers`,
//!   which returns only after every posted job has counted itself finished; a helper touches
//!   neither after counting.
//!
//! # Memory ordering
//! - `posted` (one per helper): the caller writes the helper's job slot, then increments
//!   `posted` with `Release`; the helper loads it with `Acquire` before reading the slot. The
//!   caller writes the slot again only after the job counted itself finished (below), after
//!   the helper's last read of it.
//! - `remaining` (one per call): each helper decrements it with `Release` after its work (whose
//!   results the caller then reads); the caller loads it with `Acquire` until it is 0.
//! - `quit`: `Release` store at the crew's drop, `Acquire` loads by the helper: it only asks
//!   the helper to stop, and publishes nothing.
//! - `Meeting::arrived`: see [`Meeting`].
//! - Parking uses `std::thread::park`/`unpark`, whose token makes a wake-up that comes before
//!   the park return it at once: a helper or caller parks only in a loop that re-checks its
//!   condition.

use std::cell::{RefCell, UnsafeCell};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Release};
use std::sync::{Arc, Mutex};
use std::thread::{Result as ThreadResult, Thread};
use std::time::{Duration, Instant};

/// How long an idle helper spins for the next job before it parks: the block tail's call
/// follows the executor's within it, and a parked helper takes a futex wake-up (tens of µs on a
/// VM) to start again.
pub const HELPER_SPIN: Duration = Duration::from_micros(500);

/// How long the caller spins for its helpers to finish before it parks: the executor's
/// workers finish together (they meet at a barrier), so the wait is usually short.
const CALLER_SPIN: Duration = Duration::from_micros(200);

/// One call's completion count and the thread to wake when it reaches 0 (I24).
struct Finished {
    remaining: AtomicUsize,
    caller: Thread,
}

/// A job posted to one helper: the call's work, as a pointer whose lifetime I24 guarantees,
/// and which worker the helper is.
#[derive(Clone, Copy)]
struct Job {
    work: *const (dyn Fn(usize) + Sync),
    worker: usize,
    finished: *const Finished,
}

/// What a helper and its crew share.
struct Slot {
    posted: AtomicU64,
    job: UnsafeCell<Option<Job>>,
    quit: AtomicBool,
}

// SAFETY: `job` is written by the caller only while the helper is not reading it (the
// `posted` handshake and I24), and a `Job`'s pointers are only dereferenced while the posting
// call waits (I24).
unsafe impl Sync for Slot {}
unsafe impl Send for Slot {}

struct Helper {
    slot: Arc<Slot>,
    thread: Thread,
}

/// A calling thread's helpers.
struct Crew {
    helpers: Vec<Helper>,
    /// The process that started them (I23).
    pid: u32,
}

impl Drop for Crew {
    fn drop(&mut self) {
        for helper in &self.helpers {
            helper.slot.quit.store(true, Release);
            helper.thread.unpark();
        }
    }
}

thread_local! {
    static CREW: RefCell<Option<Crew>> = const { RefCell::new(None) };
}

/// Runs `work(0)` on the calling thread and `work(1)`, ..., `work(workers - 1)` at the same
/// time on helper threads that the calling thread keeps between calls (I22). Returns each
/// worker's result in worker order, or the panic of a worker that panicked (as
/// `std::thread::JoinHandle::join` would). `workers` 0 runs nothing.
pub fn on_workers<R: Send>(
    workers: usize,
    work: impl Fn(usize) -> R + Sync,
) -> Vec<ThreadResult<R>> {
    let run = |worker: usize| catch_unwind(AssertUnwindSafe(|| work(worker)));
    if workers <= 1 {
        return (0..workers).map(run).collect();
    }
    let run = &run;
    let on_crew_of_this_thread = CREW.try_with(|cell| {
        // I22: re-entered while this thread's helpers are busy.
        let Ok(mut crew) = cell.try_borrow_mut() else {
            return on_scoped_threads(workers, run);
        };
        let pid = std::process::id();
        if crew.as_ref().is_some_and(|crew| crew.pid != pid) {
            // I23: another process's helpers.
            std::mem::forget(crew.take());
        }
        let crew = crew.get_or_insert_with(|| Crew {
            helpers: Vec::new(),
            pid,
        });
        while crew.helpers.len() < workers - 1 {
            match start_helper(crew.helpers.len() + 1) {
                Ok(helper) => crew.helpers.push(helper),
                // Threads refused: start them for this call alone.
                Err(_) => return on_scoped_threads(workers, run),
            }
        }
        on_crew(&crew.helpers[..workers - 1], run)
    });
    // Err: called while this thread's locals are being destroyed; no crew then.
    on_crew_of_this_thread.unwrap_or_else(|_| on_scoped_threads(workers, run))
}

/// Runs `run(0)` here and `run(1..)` on `helpers`, one each, and waits for all of them.
fn on_crew<R: Send>(
    helpers: &[Helper],
    run: impl Fn(usize) -> ThreadResult<R> + Sync,
) -> Vec<ThreadResult<R>> {
    let workers = helpers.len() + 1;
    let results: Vec<Mutex<Option<ThreadResult<R>>>> =
        (0..workers).map(|_| Mutex::new(None)).collect();
    let into_slot = |worker: usize| {
        let result = run(worker);
        if let Ok(mut slot) = results[worker].lock() {
            *slot = Some(result);
        }
    };
    let work: &(dyn Fn(usize) + Sync) = &into_slot;
    let finished = Finished {
        remaining: AtomicUsize::new(helpers.len()),
        caller: std::thread::current(),
    };
    for (at, helper) in helpers.iter().enumerate() {
        let job = Job {
            // SAFETY: only the lifetime is erased; I24 keeps `into_slot` alive while any
            // helper can call it.
            work: unsafe {
                std::mem::transmute::<
                    *const (dyn Fn(usize) + Sync + '_),
                    *const (dyn Fn(usize) + Sync),
                >(work)
            },
            worker: at + 1,
            finished: &finished,
        };
        // SAFETY: the helper reads its slot only after `posted` moves, and its previous job
        // counted itself finished before the previous call returned (I24): nobody reads the
        // slot now.
        unsafe { *helper.slot.job.get() = Some(job) };
        helper.slot.posted.fetch_add(1, Release);
        helper.thread.unpark();
    }
    work(0);
    // I24: return only once every helper is done with this frame.
    let since = Instant::now();
    let mut spins = 0u32;
    while finished.remaining.load(Acquire) != 0 {
        spins = spins.wrapping_add(1);
        if !spins.is_multiple_of(64) {
            std::hint::spin_loop();
        } else if since.elapsed() < CALLER_SPIN {
            // More threads than cores: let the helpers we wait for run.
            std::thread::yield_now();
        } else {
            // The last helper to finish unparks us; its token makes a wake-up that came
            // first return at once.
            std::thread::park();
        }
    }
    results
        .into_iter()
        .map(|slot| {
            slot.into_inner()
                .ok()
                .flatten()
                .unwrap_or_else(|| Err(Box::new("a worker's result was lost")))
        })
        .collect()
}

/// Starts helper number `number` (for its thread's name).
fn start_helper(number: usize) -> std::io::Result<Helper> {
    let slot = Arc::new(Slot {
        posted: AtomicU64::new(0),
        job: UnsafeCell::new(None),
        quit: AtomicBool::new(false),
    });
    let shared = Arc::clone(&slot);
    let handle = std::thread::Builder::new()
        .name(format!("parex-worker-{number}"))
        .spawn(move || help(&shared))?;
    Ok(Helper {
        slot,
        thread: handle.thread().clone(),
    })
}

/// A helper's life: wait for a job (spinning, then parked), run it, count it finished.
fn help(slot: &Slot) {
    let mut seen = 0u64;
    loop {
        let since = Instant::now();
        let mut spins = 0u32;
        loop {
            if slot.quit.load(Acquire) {
                return;
            }
            let posted = slot.posted.load(Acquire);
            if posted != seen {
                seen = posted;
                break;
            }
            spins = spins.wrapping_add(1);
            if !spins.is_multiple_of(64) {
                std::hint::spin_loop();
            } else if since.elapsed() < HELPER_SPIN {
                // More threads than cores: let the one that will post the next job run.
                std::thread::yield_now();
            } else {
                std::thread::park();
            }
        }
        // SAFETY: `posted` moved (Acquire) after the caller wrote the slot, and the caller
        // does not write it again before this job counts itself finished.
        let Some(job) = (unsafe { *slot.job.get() }) else {
            continue;
        };
        // SAFETY: I24: the posting call is waiting for this job, so its work is alive. The
        // work catches its own panics; this catch only keeps the helper alive if the slot
        // bookkeeping around it panics.
        let _ = catch_unwind(AssertUnwindSafe(|| unsafe { (*job.work)(job.worker) }));
        // SAFETY: as above: the call waits until this count reaches 0. Its thread handle is
        // cloned before the count, after which the frame may be gone (I24).
        let finished = unsafe { &*job.finished };
        let caller = finished.caller.clone();
        if finished.remaining.fetch_sub(1, Release) == 1 {
            caller.unpark();
        }
    }
}

/// A one-use meeting point for the `n` workers of one call: [`Meeting::wait`] returns once all
/// `n` have arrived. It spins (yielding after a while) rather than sleeping, because the
/// workers of a block arrive within microseconds of each other and a sleeping worker takes a
/// futex wake-up (tens of µs on a VM) to leave. `arrived` is incremented with `Release`
/// (everything a worker did before arriving is published) and loaded with `Acquire`.
pub struct Meeting {
    arrived: AtomicUsize,
    workers: usize,
}

impl Meeting {
    pub fn new(workers: usize) -> Self {
        Meeting {
            arrived: AtomicUsize::new(0),
            workers,
        }
    }

    /// Arrives, and waits until every worker has.
    pub fn wait(&self) {
        self.arrived.fetch_add(1, Release);
        let mut spins = 0u32;
        while self.arrived.load(Acquire) < self.workers {
            spins = spins.wrapping_add(1);
            if spins < 4096 {
                std::hint::spin_loop();
            } else {
                // More workers than cores, or one worker much later: let the others run.
                std::thread::yield_now();
            }
        }
    }
}

/// [`on_workers`] on threads started for this call alone.
fn on_scoped_threads<R: Send>(
    workers: usize,
    run: impl Fn(usize) -> ThreadResult<R> + Sync,
) -> Vec<ThreadResult<R>> {
    let run = &run;
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..workers)
            .map(|worker| scope.spawn(move || run(worker)))
            .collect();
        let mut results = Vec::with_capacity(workers);
        results.push(run(0));
        results.extend(
            handles
                .into_iter()
                .map(|handle| handle.join().and_then(|r| r)),
        );
        results
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn every_worker_runs_at_once_and_results_come_in_worker_order() {
        for workers in [0, 1, 2, 3, 5, 2] {
            // I22: a barrier of all workers only passes if each has a thread of its own.
            let barrier = Barrier::new(workers.max(1));
            let results = on_workers(workers, |worker| {
                barrier.wait();
                worker * 10
            });
            let results: Vec<usize> = results.into_iter().map(|r| r.unwrap()).collect();
            assert_eq!(results, (0..workers).map(|w| w * 10).collect::<Vec<_>>());
        }
    }

    #[test]
    fn helpers_are_kept_between_calls() {
        let names = || {
            on_workers(3, |_| std::thread::current().id())
                .into_iter()
                .map(|r| r.unwrap())
                .collect::<Vec<_>>()
        };
        let (mut first, mut second) = (names(), names());
        assert_eq!(first[0], std::thread::current().id());
        first.sort_by_key(|id| format!("{id:?}"));
        second.sort_by_key(|id| format!("{id:?}"));
        assert_eq!(first, second, "the same threads run the second call");
    }

    #[test]
    fn a_panicking_worker_is_reported_and_the_others_finish() {
        let results = on_workers(3, |worker| {
            if worker == 2 {
                panic!("worker two fails");
            }
            worker
        });
        assert_eq!(results[0].as_ref().ok(), Some(&0));
        assert_eq!(results[1].as_ref().ok(), Some(&1));
        assert!(results[2].is_err());
        // The helpers survive it.
        let again: Vec<usize> = on_workers(3, |w| w)
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(again, vec![0, 1, 2]);
    }

    /// A call from a thread-local's destructor, after the crew's own thread-local may be gone
    /// (destructors run in reverse order of first use: this one is used first, so it runs
    /// last), still runs every worker instead of panicking.
    #[test]
    fn a_call_from_a_thread_local_destructor_still_runs() {
        use std::sync::mpsc;
        struct CallsOnDrop(Option<mpsc::Sender<Vec<usize>>>);
        impl Drop for CallsOnDrop {
            fn drop(&mut self) {
                let results = on_workers(2, |worker| worker)
                    .into_iter()
                    .map(|r| r.unwrap_or(usize::MAX))
                    .collect();
                if let Some(sender) = self.0.take() {
                    let _ = sender.send(results);
                }
            }
        }
        thread_local! {
            static LATE: RefCell<CallsOnDrop> = const { RefCell::new(CallsOnDrop(None)) };
        }
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            LATE.with(|late| late.borrow_mut().0 = Some(sender));
            // The crew's thread-local, first used after LATE.
            assert_eq!(on_workers(2, |w| w).len(), 2);
        })
        .join()
        .unwrap();
        assert_eq!(receiver.recv().unwrap(), vec![0, 1]);
    }

    #[test]
    fn a_call_from_inside_a_call_runs_on_threads_of_its_own() {
        let results = on_workers(2, |outer| {
            let barrier = Barrier::new(2);
            let inner: Vec<usize> = on_workers(2, |inner| {
                barrier.wait();
                outer * 10 + inner
            })
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
            inner
        });
        let results: Vec<Vec<usize>> = results.into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(results, vec![vec![0, 1], vec![10, 11]]);
    }
}
