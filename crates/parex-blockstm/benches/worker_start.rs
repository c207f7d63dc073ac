//! What it costs to put a block's workers to work: the calling thread's helper crew
//! (`parex_blockstm::workers::on_workers`) against threads started for each call.
//!
//! For each worker count and idle time before the call (the time between blocks, or between
//! a block's execution and its tail), the median over many calls of:
//! - *started*: from the call to the last helper running its work;
//! - *returned*: from the call to its return, the work being empty.
//!
//! `cargo bench -p parex-blockstm --bench worker_start` (add `-- <calls>` to change the count).

use parex_blockstm::workers::on_workers;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// Spins for `idle`, as a calling thread busy with something else would.
fn stay_busy(idle: Duration) {
    let since = Instant::now();
    while since.elapsed() < idle {
        std::hint::spin_loop();
    }
}

/// Runs one empty call on `workers` workers through `call`; returns (started, returned) in µs.
/// Work for every worker of one call.
type Work<'a> = &'a (dyn Fn(usize) + Sync);

/// A way to run one call's work on `workers` workers.
type Call = dyn Fn(usize, Work<'_>);

fn time_call(workers: usize, call: &Call) -> (f64, f64) {
    let latest_start = AtomicU64::new(0);
    let called = Instant::now();
    call(workers, &|worker| {
        if worker > 0 {
            latest_start.fetch_max(called.elapsed().as_nanos() as u64, Relaxed);
        }
    });
    let returned = called.elapsed().as_nanos() as f64 / 1e3;
    (latest_start.load(Relaxed) as f64 / 1e3, returned)
}

fn crew(workers: usize, work: Work<'_>) {
    on_workers(workers, work);
}

fn scoped(workers: usize, work: Work<'_>) {
    std::thread::scope(|scope| {
        let handles: Vec<_> = (1..workers).map(|w| scope.spawn(move || work(w))).collect();
        work(0);
        for handle in handles {
            let _ = handle.join();
        }
    });
}

fn main() {
    let calls: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(2_000);
    let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
    let mut counts = vec![2];
    if cpus > 2 {
        counts.push(cpus);
    }
    println!("{calls} calls each (median, µs); {cpus} CPUs");
    println!("workers  idle      crew started/returned   scoped started/returned");
    for &workers in &counts {
        for idle in [
            Duration::ZERO,
            Duration::from_micros(200),
            Duration::from_millis(2),
        ] {
            let (mut crew_runs, mut scoped_runs) = (Vec::new(), Vec::new());
            for i in 0..2 * calls {
                stay_busy(idle);
                // Alternate, so that both see the same host.
                if i % 2 == 0 {
                    crew_runs.push(time_call(workers, &crew));
                } else {
                    scoped_runs.push(time_call(workers, &scoped));
                }
            }
            let split = |runs: Vec<(f64, f64)>| {
                let (started, returned): (Vec<f64>, Vec<f64>) = runs.into_iter().unzip();
                (median(started), median(returned))
            };
            let (crew_started, crew_returned) = split(crew_runs);
            let (scoped_started, scoped_returned) = split(scoped_runs);
            println!(
                "{workers:>7}  {:>4} µs  {crew_started:>8.1} / {crew_returned:<8.1}        {scoped_started:>8.1} / {scoped_returned:<8.1}",
                idle.as_micros()
            );
        }
    }
}
