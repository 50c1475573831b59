//! A fixed set of threads for the blocking work of a download: hashing each
//! complete piece and writing the good ones.
//!
//! Tokio's blocking pool would do the same job, but it starts a new thread
//! whenever none is idle at the very moment a job arrives, and a thread that
//! has just finished a piece is not idle yet: one fast download grew about
//! ten threads on two cores, each with a cold cache, and ran about 5% slower
//! than with one thread per core. [`Workers`] keeps exactly `threads` of them.
//!
//! Jobs are not bounded here: the caller bounds them (`Shared` admits a
//! piece only with a permit of its verification semaphore). The threads end
//! when the last [`Workers`] handle is dropped and the queue is empty.

use std::{
    panic::{self, AssertUnwindSafe},
    sync::{mpsc, Arc, Mutex},
    thread,
};

type Job = Box<dyn FnOnce() + Send + 'static>;

pub struct Workers {
    jobs: mpsc::Sender<Job>,
}

impl Workers {
    /// Starts `threads` (at least one) threads named `name-N`. Fails only if
    /// the system refuses a new thread.
    pub fn new(name: &str, threads: usize) -> std::io::Result<Workers> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..threads.max(1) {
            let queue = queue.clone();
            let name = name.to_owned();
            thread::Builder::new()
                .name(format!("{name}-{n}"))
                .spawn(move || loop {
                    // The lock is held only to take a job, never while running it.
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(job) = next else {
                        return; // every sender is gone
                    };
                    // A job that panics (a bug) is logged; the thread goes on.
                    if panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
                        tracing::error!("a {name} job panicked");
                    }
                })?;
        }
        Ok(Workers { jobs })
    }

    /// Queues `job` for the next free thread.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) {
        // The threads end only once `self.jobs` is dropped and survive a
        // panicking job, so someone is always there to receive.
        let _ = self.jobs.send(Box::new(job));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::{
        collections::HashSet,
        sync::Condvar,
        time::{Duration, Instant},
    };

    /// A meeting point for `n` jobs that gives up after a timeout instead of
    /// hanging the test, as `std::sync::Barrier` would.
    struct Rendezvous {
        arrived: Mutex<usize>,
        all_here: Condvar,
        n: usize,
    }

    impl Rendezvous {
        fn new(n: usize) -> Arc<Self> {
            Arc::new(Rendezvous {
                arrived: Mutex::new(0),
                all_here: Condvar::new(),
                n,
            })
        }

        /// True if all `n` arrived within `timeout`.
        fn wait(&self, timeout: Duration) -> bool {
            let mut arrived = self.arrived.lock().unwrap();
            *arrived += 1;
            self.all_here.notify_all();
            let (arrived, _) = self
                .all_here
                .wait_timeout_while(arrived, timeout, |a| *a < self.n)
                .unwrap();
            *arrived >= self.n
        }
    }

    /// Threads of this process whose name starts with `prefix` (Linux).
    fn threads_named(prefix: &str) -> usize {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|name| name.starts_with(prefix))
            .count()
    }

    #[test]
    fn jobs_run_on_exactly_the_threads_asked_for() {
        let workers = Workers::new("exact", 3).unwrap();
        // Three jobs that can only finish together: each thread holds one.
        let meet = Rendezvous::new(3);
        let (done, results) = mpsc::channel();
        for _ in 0..3 {
            let (meet, done) = (meet.clone(), done.clone());
            workers.run(move || {
                let met = meet.wait(Duration::from_secs(10));
                done.send((thread::current().name().unwrap().to_owned(), met))
                    .unwrap();
            });
        }
        let got: Vec<(String, bool)> = (0..3)
            .map(|_| results.recv_timeout(Duration::from_secs(15)).unwrap())
            .collect();
        assert!(got.iter().all(|(_, met)| *met), "three at once: {got:?}");
        let names: HashSet<String> = got.into_iter().map(|(n, _)| n).collect();
        let expected: HashSet<String> = (0..3).map(|n| format!("exact-{n}")).collect();
        assert_eq!(names, expected);
        // And no fourth thread waits idle beside them.
        assert_eq!(threads_named("exact-"), 3);
        // More jobs than threads still all run, on the same threads.
        for _ in 0..20 {
            let done = done.clone();
            workers.run(move || {
                done.send((thread::current().name().unwrap().to_owned(), true))
                    .unwrap();
            });
        }
        for _ in 0..20 {
            let (name, _) = results.recv_timeout(Duration::from_secs(10)).unwrap();
            assert!(expected.contains(&name), "{name}");
        }
        assert_eq!(threads_named("exact-"), 3);
    }

    #[test]
    fn the_threads_work_in_parallel() {
        let workers = Workers::new("par", 2).unwrap();
        let meet = Rendezvous::new(2);
        let (done, results) = mpsc::channel();
        let started = Instant::now();
        for _ in 0..2 {
            let (meet, done) = (meet.clone(), done.clone());
            workers.run(move || {
                // Both jobs must be running at once to meet.
                done.send(meet.wait(Duration::from_secs(10))).unwrap();
            });
        }
        for _ in 0..2 {
            let met = results.recv_timeout(Duration::from_secs(15)).unwrap();
            assert!(
                met,
                "the two jobs never ran at once ({:?})",
                started.elapsed()
            );
        }
    }

    #[test]
    fn a_panicking_job_does_not_take_its_thread_with_it() {
        let workers = Workers::new("panic", 1).unwrap();
        workers.run(|| panic!("a job fails"));
        let (done, result) = mpsc::channel();
        workers.run(move || done.send(()).unwrap());
        assert!(
            result.recv_timeout(Duration::from_secs(5)).is_ok(),
            "the only thread still runs jobs"
        );
    }
}
