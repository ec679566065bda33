//! A team of threads created once and reused for every training step. A step is a
//! fraction of a millisecond of work, so spawning threads per step or blocking in the
//! kernel at every phase would eat the gain.
//!
//! The leader (the thread that owns the [`Team`]) runs a step as a sequence of
//! phases ([`Phases::run`]); each phase is a list of work items, each item owning the
//! `&mut` parts of the buffers it writes (split in advance with `split_at_mut` and
//! `chunks_mut`), so the borrow checker proves that no two items write the same
//! memory. The leader publishes a phase, then leader and workers claim its items one
//! at a time until none is left, the leader from the front of the list and the
//! workers from the back, and the leader waits until every claimed item is finished
//! before the phase returns. Claiming from both ends gives a step's items a stable
//! home on two threads: the first item of a phase is the leader's and the last a
//! worker's whenever both run, so data that those items keep to themselves from step
//! to step (a share of the weights) stays in one core's cache.
//!
//! Nobody waits for a thread that has not started: on a busy machine, where a worker
//! may not get a core for milliseconds, the leader simply does the items itself, and
//! the step costs about what it costs on one thread (a fixed split with a barrier
//! would stall every phase until the descheduled thread ran again). The only wait is
//! for an item a worker has claimed and not yet finished; when that wait is long (the
//! worker lost its core mid-item), the leader runs the next steps alone, for longer
//! after each stall.
//!
//! Between phases and steps a worker polls for a short while, yielding its core to
//! any other program that wants it, and then parks, so an idle team costs no CPU.
//!
//! **The synchronisation point.** Items borrow the leader's data without `'static`
//! bounds, like [`std::thread::scope`] but without a spawn per phase: [`Phases::run`]
//! hands the workers a reference to the phase's work with its lifetime erased, and
//! does not return before every claimed item is finished, after which no worker can
//! claim one. Those are the module's only two `unsafe` blocks. A panic inside an item
//! aborts the process, since unwinding the leader would free data a worker may still
//! be using (the kernels check their slices before a step starts, so this is a bug,
//! not an input error).

use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long an idle worker polls before it parks: longer than the leader's work
/// between two steps, far shorter than anything a person would notice.
const IDLE_SPIN: Duration = Duration::from_micros(200);
/// How long the leader waits for a worker's item before it calls the worker stalled
/// (descheduled by a busy machine) and starts yielding.
const STALL: Duration = Duration::from_micros(100);
/// Steps the leader runs alone after the first stall, doubled at each further stall
/// up to [`MAX_SOLO`]: a worker that lost its core mid-item costs the leader a wait of
/// a whole scheduler time slice, which is worse than doing its share.
const MIN_SOLO: u32 = 8;
/// The most steps the leader runs alone before it tries the workers again.
const MAX_SOLO: u32 = 1024;

/// The most items a phase can have.
pub const MAX_ITEMS: usize = u16::MAX as usize;

/// The work of the current phase, called as `(thread, item)`, with its lifetime
/// erased (see the module docs); valid only while [`Phases::run`] runs.
type Job = &'static (dyn Fn(usize, usize) + Sync);

/// A value on a cache line of its own, so the threads polling one do not slow down
/// the writes to another.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded<T>(T);

/// The claim word: generation (32 bits) | front (16) | back (16). Items `front..back`
/// are unclaimed; the leader claims `front` (bumping it), a worker `back − 1`
/// (lowering `back`). One atomic word, so a claim (a compare-exchange) succeeds only
/// in the phase the claimer read. The generation grows by one per phase; it would
/// have to wrap (2³² phases) while a worker sat between its load and its
/// compare-exchange to confuse two phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Claim {
    generation: u32,
    front: usize,
    back: usize,
}

impl Claim {
    fn pack(self) -> u64 {
        (u64::from(self.generation) << 32) | ((self.front as u64) << 16) | self.back as u64
    }

    fn unpack(w: u64) -> Claim {
        Claim {
            generation: (w >> 32) as u32,
            front: ((w >> 16) & 0xffff) as usize,
            back: (w & 0xffff) as usize,
        }
    }
}

/// What the leader and the workers share.
#[derive(Debug, Default)]
struct Shared {
    /// The current phase's [`Claim`], packed.
    claim: Padded<AtomicU64>,
    /// Items of the current phase finished.
    done: Padded<AtomicUsize>,
    stop: AtomicBool,
    /// The current phase's [`Job`], written by the leader before it publishes the
    /// phase's claim word (Release) and read by a worker after it claimed an item of
    /// that phase (Acquire).
    job: AtomicPtr<Job>,
}

/// A leader and `threads − 1` workers that run the items of one phase at a time.
pub struct Team {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    generation: u32,
    /// Steps left to run on the leader alone, after a stall.
    solo: u32,
    /// Steps to run alone after the next stall.
    backoff: u32,
}

impl std::fmt::Debug for Team {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Team")
            .field("threads", &self.threads())
            .finish()
    }
}

impl Clone for Team {
    /// A new team of the same size (threads cannot be shared between two teams).
    fn clone(&self) -> Team {
        Team::new(self.threads())
    }
}

/// Aborts the process if dropped while unwinding: a panic inside a phase would
/// otherwise free (on the leader) data a worker may still use, or leave the leader
/// waiting for an item that never finishes (on a worker).
struct AbortOnPanic;

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("a thread panicked inside a parallel phase; aborting");
            std::process::abort();
        }
    }
}

/// The leader's handle inside [`Team::step`]: runs phases.
pub struct Phases<'t> {
    shared: &'t Shared,
    generation: &'t mut u32,
    /// Run every item on the leader, without publishing.
    alone: bool,
    /// Set when the leader waited longer than [`STALL`] for a worker.
    stalled: bool,
}

impl Phases<'_> {
    /// Runs `work(thread, item)` for every item, each exactly once, on whichever
    /// threads claim them (thread 0 is the leader), and returns when all are
    /// finished. The leader claims from the front of `items`, the workers from the
    /// back.
    ///
    /// # Panics
    /// If there are more than [`MAX_ITEMS`] items.
    pub fn run<T: Send>(&mut self, items: Vec<T>, work: impl Fn(usize, T) + Sync) {
        let count = items.len();
        assert!(count <= MAX_ITEMS, "too many items in one phase");
        if self.alone || count <= 1 {
            for item in items {
                work(0, item);
            }
            return;
        }
        let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
        let job = |thread: usize, index: usize| {
            // The claim word hands out each index once, so the lock is never contended.
            let item = slots[index]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            if let Some(item) = item {
                work(thread, item);
            }
        };
        let job: &(dyn Fn(usize, usize) + Sync + '_) = &job;
        // SAFETY: only the lifetime changes. A worker calls the job only while it
        // holds a claimed, unfinished item of this phase (see `work`), and this
        // function returns only after every item is claimed (`front == back`, so no
        // further claim can succeed in this generation) and every claimed item is
        // finished (`done == count`); so `job`, `slots` and `work` outlive every use.
        let job: Job =
            unsafe { std::mem::transmute::<&(dyn Fn(usize, usize) + Sync + '_), Job>(job) };
        let guard = AbortOnPanic;
        self.shared
            .job
            .store(&job as *const Job as *mut Job, Ordering::Relaxed);
        *self.generation = self.generation.wrapping_add(1);
        // Nobody touches `done` until they have claimed an item of the claim word
        // published below (Release), so the reset is ordered before every increment.
        self.shared.done.0.store(0, Ordering::Relaxed);
        let word = Claim {
            generation: *self.generation,
            front: 0,
            back: count,
        };
        self.shared.claim.0.store(word.pack(), Ordering::Release);
        while let Some(item) = claim(self.shared, End::Front) {
            job(0, item);
            self.shared.done.0.fetch_add(1, Ordering::Release);
        }
        let mut waiting: Option<Instant> = None;
        let mut polls = 0u32;
        while self.shared.done.0.load(Ordering::Acquire) < count {
            if self.stalled {
                thread::yield_now();
                continue;
            }
            spin_loop();
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(64)
                && waiting.get_or_insert_with(Instant::now).elapsed() >= STALL
            {
                self.stalled = true;
            }
        }
        self.shared
            .job
            .store(std::ptr::null_mut(), Ordering::Relaxed);
        drop(guard);
    }
}

/// Which end of a phase's list of items a thread claims from.
#[derive(Clone, Copy)]
enum End {
    /// The leader's.
    Front,
    /// The workers'.
    Back,
}

/// Claims the next item of the current phase from `end`, if any is left.
fn claim(shared: &Shared, end: End) -> Option<usize> {
    let mut w = shared.claim.0.load(Ordering::Acquire);
    loop {
        let c = Claim::unpack(w);
        if c.front >= c.back {
            return None;
        }
        // Bumps `front` or lowers `back`; fails if anyone claimed or published
        // meanwhile.
        let (item, next) = match end {
            End::Front => (c.front, w + (1 << 16)),
            End::Back => (c.back - 1, w - 1),
        };
        match shared
            .claim
            .0
            .compare_exchange_weak(w, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Some(item),
            Err(now) => w = now,
        }
    }
}

impl Team {
    /// A team of `threads` (at least 1): the calling thread and `threads − 1` workers,
    /// spawned now and parked until the first step.
    ///
    /// # Panics
    /// If the system cannot spawn a thread.
    pub fn new(threads: usize) -> Team {
        let threads = threads.max(1);
        let shared = Arc::new(Shared::default());
        let workers = (1..threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                thread::Builder::new()
                    .name(format!("mlp-kernels-{index}"))
                    .spawn(move || work(&shared, index))
                    .expect("cannot spawn a worker thread")
            })
            .collect();
        Team {
            shared,
            workers,
            generation: 0,
            solo: 0,
            backoff: MIN_SOLO,
        }
    }

    /// The threads that can run each phase's items, the caller included.
    pub fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `body`, whose [`Phases::run`] calls hand each phase's items to the team's
    /// threads; returns what `body` returns (every item has finished by then).
    pub fn step<R>(&mut self, body: impl FnOnce(&mut Phases<'_>) -> R) -> R {
        if self.workers.is_empty() || self.solo > 0 {
            self.solo = self.solo.saturating_sub(1);
            return body(&mut Phases {
                shared: &self.shared,
                generation: &mut self.generation,
                alone: true,
                stalled: false,
            });
        }
        for w in &self.workers {
            // Cheap when the worker is still polling: it only sets a flag.
            w.thread().unpark();
        }
        let mut phases = Phases {
            shared: &self.shared,
            generation: &mut self.generation,
            alone: false,
            stalled: false,
        };
        let out = body(&mut phases);
        if phases.stalled {
            self.solo = self.backoff;
            self.backoff = (self.backoff * 2).min(MAX_SOLO);
        } else {
            self.backoff = MIN_SOLO;
        }
        out
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for w in self.workers.drain(..) {
            w.thread().unpark();
            // A worker only ends by seeing `stop` (a panic in an item aborts), so this
            // cannot fail in practice; there is nothing to do if it does.
            let _ = w.join();
        }
    }
}

/// A worker's life: claim items and run them; when there are none, poll a little,
/// then park until the leader's next step.
fn work(shared: &Shared, index: usize) {
    let mut idle_since: Option<Instant> = None;
    let mut polls = 0u32;
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if let Some(item) = claim(shared, End::Back) {
            let guard = AbortOnPanic;
            let job = shared.job.load(Ordering::Acquire);
            // SAFETY: this thread holds a claimed, unfinished item of the phase whose
            // claim word it read; the leader stored that phase's job before publishing
            // the word (ordered by the claim's Acquire) and keeps it alive and
            // unchanged until this item is counted in `done` (see `Phases::run`).
            if let Some(job) = unsafe { job.as_ref() } {
                job(index, item);
            }
            shared.done.0.fetch_add(1, Ordering::Release);
            drop(guard);
            idle_since = None;
            continue;
        }
        // Nothing to claim: poll again soon, but give the core away if another
        // program wants it (on an idle machine `yield_now` returns at once). The
        // leader does not wait for items nobody claimed, so a late worker costs only
        // its share, while a spinning one would take CPU time from the leader on a
        // busy machine.
        thread::yield_now();
        // Reading the clock costs more than a poll: only every 64 polls.
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(64) {
            let since = *idle_since.get_or_insert_with(Instant::now);
            if since.elapsed() >= IDLE_SPIN {
                // Returns at once if the leader unparked us since the last park, so a
                // step that starts between the claim above and here is not missed.
                thread::park();
                idle_since = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn claims_pack_and_unpack() {
        let c = Claim {
            generation: u32::MAX,
            front: 17,
            back: MAX_ITEMS,
        };
        assert_eq!(Claim::unpack(c.pack()), c);
        assert_eq!(Claim::unpack(c.pack() + (1 << 16)).front, 18);
        assert_eq!(Claim::unpack(c.pack() - 1).back, MAX_ITEMS - 1);
    }

    #[test]
    fn the_leader_claims_from_the_front_and_workers_from_the_back() {
        let shared = Shared::default();
        let word = Claim {
            generation: 7,
            front: 0,
            back: 4,
        };
        shared.claim.0.store(word.pack(), Ordering::Relaxed);
        assert_eq!(claim(&shared, End::Back), Some(3));
        assert_eq!(claim(&shared, End::Front), Some(0));
        assert_eq!(claim(&shared, End::Front), Some(1));
        assert_eq!(claim(&shared, End::Back), Some(2));
        assert_eq!(claim(&shared, End::Back), None);
        assert_eq!(claim(&shared, End::Front), None);
    }

    /// Rounds per thread count: fewer under Miri, which runs every access checked.
    const ROUNDS: u32 = if cfg!(miri) { 4 } else { 100 };

    #[test]
    fn every_item_runs_once_with_its_own_data_and_phases_are_ordered() {
        for threads in 1..=3 {
            let mut team = Team::new(threads);
            for round in 0..ROUNDS {
                let mut cells = vec![0u32; 37];
                let mut sums = [0u32; 5];
                let runs = AtomicU32::new(0);
                team.step(|phases| {
                    // Phase 0: each item owns one cell (a `&mut`) and writes it.
                    let items: Vec<(usize, &mut u32)> = cells.iter_mut().enumerate().collect();
                    phases.run(items, |_thread, (i, cell)| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        *cell += round + i as u32;
                    });
                    // Phase 1 reads every cell: it sees phase 0's writes only if the
                    // phases are ordered.
                    let cells = &cells;
                    phases.run(sums.iter_mut().collect(), |_thread, sum: &mut u32| {
                        runs.fetch_add(1, Ordering::Relaxed);
                        *sum = cells.iter().sum();
                    });
                });
                let want: u32 = (0..37).map(|i| round + i).sum();
                for (i, &c) in cells.iter().enumerate() {
                    assert_eq!(c, round + i as u32);
                }
                assert!(sums.iter().all(|&s| s == want), "{threads} threads");
                assert_eq!(runs.load(Ordering::Relaxed), 42);
            }
        }
    }

    #[test]
    fn a_parked_team_wakes_up_and_workers_take_part() {
        let mut team = Team::new(2);
        let by_worker = AtomicU32::new(0);
        let pause = Duration::from_millis(if cfg!(miri) { 1 } else { 2 });
        for _ in 0..3 {
            // Long enough for the worker to stop polling and park.
            thread::sleep(Duration::from_millis(5));
            team.step(|phases| {
                phases.run(vec![(); 8], |thread, ()| {
                    if thread == 1 {
                        by_worker.fetch_add(1, Ordering::Relaxed);
                    }
                    thread::sleep(pause);
                })
            });
        }
        // The leader cannot have done all 24 items while the worker was awake.
        assert!(by_worker.load(Ordering::Relaxed) > 0);
    }
}
