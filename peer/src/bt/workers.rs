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
    use std::{collections::HashSet, sync::Barrier, time::Duration};

    #[test]
    fn jobs_run_on_exactly_the_threads_asked_for() {
        let workers = Workers::new("test", 2).unwrap();
        let (done, results) = mpsc::channel();
        for i in 0..50 {
            let done = done.clone();
            workers.run(move || {
                thread::sleep(Duration::from_millis(1));
                let name = thread::current().name().unwrap().to_owned();
                done.send((i, name)).unwrap();
            });
        }
        drop(done);
        let got: Vec<(i32, String)> = results.iter().collect();
        assert_eq!(got.len(), 50, "every job ran");
        let names: HashSet<String> = got.into_iter().map(|(_, n)| n).collect();
        assert!(names.len() <= 2, "no third thread: {names:?}");
        assert!(names.iter().all(|n| n.starts_with("test-")));
    }

    #[test]
    fn the_threads_work_in_parallel() {
        let workers = Workers::new("par", 2).unwrap();
        let meet = Arc::new(Barrier::new(3));
        for _ in 0..2 {
            let meet = meet.clone();
            workers.run(move || {
                meet.wait(); // both jobs must be running at once to pass
            });
        }
        meet.wait();
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
