//! A team of threads created once and reused for every training step. A step is only
//! about 100–200 µs of work, so spawning threads per step (tens of µs each) or
//! blocking in the kernel at every phase would eat the gain.
//!
//! The leader (the thread that owns the [`Team`]) runs a step as a sequence of phases;
//! each phase is a fixed list of work items, and every item's result is the same
//! whichever thread computes it. The leader publishes a phase, then leader and workers
//! claim its items one at a time until none is left, the leader from the front of the
//! list and the workers from the back, and the leader waits until every claimed item
//! is finished before it starts the next phase. Claiming from both ends gives a step's
//! items a stable home on two threads: the first item of a phase is the leader's and
//! the last a worker's whenever both run, so data that those items keep to themselves
//! from step to step (a share of the weights) stays in one core's cache.
//! So nobody waits for a thread that has not started: on a busy machine, where a worker
//! may not get a core for milliseconds, the leader simply does the items itself, and
//! the step costs about what it costs on one thread (a fixed split with a barrier would
//! stall every phase until the descheduled thread ran again; measured: an epoch took
//! 10 s instead of 0.9 s while two compilers ran). The only wait is for an item a worker
//! has claimed and not yet finished; when that wait is long (the worker lost its core
//! mid-item), the leader runs the next steps alone, for longer after each stall.
//!
//! Between phases and steps a worker polls for a short while (the leader only gathers
//! the next batch), yielding its core to any other program that wants it, and then
//! parks, so an idle trainer costs no CPU.
//!
//! Items borrow the leader's data (the model, the batch) without `'static` bounds,
//! like [`std::thread::scope`] but without a spawn per step: [`Team::run`] erases the
//! item function's lifetime and does not return before every claimed item is
//! finished, and after that no worker can claim one. A panic while a step runs aborts
//! the process, since unwinding the leader would free data a worker may still be
//! using (the kernels check their slices before a step starts, so this is a bug, not
//! an input error).

use std::cell::UnsafeCell;
use std::hint::spin_loop;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long an idle worker polls before it parks: longer than the leader's work
/// between two steps (gathering a batch, a few µs), far shorter than anything else.
const IDLE_SPIN: Duration = Duration::from_micros(200);
/// How long the leader waits for a worker's item before it calls the worker stalled
/// (descheduled by a busy machine: an item lasts about 10 µs) and starts yielding.
const STALL: Duration = Duration::from_micros(100);
/// Steps the leader runs alone after the first stall, doubled at each further stall
/// up to [`MAX_SOLO`]: a worker that lost its core mid-item costs the leader a wait of
/// a whole scheduler time slice (milliseconds), which is worse than doing its share.
const MIN_SOLO: u32 = 8;
/// The most steps the leader runs alone before it tries the workers again.
const MAX_SOLO: u32 = 1024;

/// What a team runs for each item: `(thread, phase, item)`, thread 0 the leader.
pub(crate) type Items<'a> = dyn Fn(usize, usize, usize) + Sync + 'a;

/// A value on a cache line of its own, so the threads polling one do not slow down
/// the writes to another.
#[repr(align(128))]
#[derive(Debug, Default)]
struct Padded<T>(T);

/// The claim word: generation (32 bits) | phase (8) | front (12) | back (12). Items
/// `front..back` are unclaimed; the leader claims `front` (bumping it), a worker
/// `back − 1` (lowering `back`). One atomic word, so a claim (a compare-exchange)
/// succeeds only in the phase the claimer read. The generation grows by one per
/// phase; it would have to wrap (2³² phases) while a worker sat between its load and
/// its compare-exchange to confuse two phases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Claim {
    generation: u32,
    phase: usize,
    front: usize,
    back: usize,
}

/// The most items a phase can have.
pub(crate) const MAX_ITEMS: usize = (1 << 12) - 1;
/// The most phases a step can have.
pub(crate) const MAX_PHASES: usize = 1 << 8;

impl Claim {
    fn pack(self) -> u64 {
        (u64::from(self.generation) << 32)
            | ((self.phase as u64) << 24)
            | ((self.front as u64) << 12)
            | self.back as u64
    }

    fn unpack(w: u64) -> Claim {
        Claim {
            generation: (w >> 32) as u32,
            phase: ((w >> 24) & 0xff) as usize,
            front: ((w >> 12) & 0xfff) as usize,
            back: (w & 0xfff) as usize,
        }
    }
}

/// The item function with its lifetime erased; valid only while [`Team::run`] runs.
#[derive(Clone, Copy)]
struct ItemsPtr(*const Items<'static>);

/// What the leader and the workers share.
struct Shared {
    /// The current phase's [`Claim`], packed.
    claim: Padded<AtomicU64>,
    /// Items of the current phase finished.
    done: Padded<AtomicUsize>,
    stop: AtomicBool,
    /// The current step's item function: written by the leader only between steps,
    /// when every item of the last phase is claimed and finished; read by a worker
    /// only after it has claimed an item of a phase published after that write.
    items: UnsafeCell<Option<ItemsPtr>>,
}

// SAFETY: `items` is the only field that is not `Sync`; its rules (above) order every
// read after the write it reads (the claim word is published with Release and read
// with Acquire) and every later write after the read (the leader sees the reader's
// item finished, through `done`, before it writes again). The pointee is `Sync`.
unsafe impl Sync for Shared {}
// SAFETY: as above; the pointer is only dereferenced while `Team::run` keeps the item
// function alive.
unsafe impl Send for Shared {}

/// A leader and `threads − 1` workers that run the items of one phase at a time.
pub(crate) struct Team {
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
    /// A new team of the same size (threads cannot be shared between two trainers).
    fn clone(&self) -> Team {
        Team::new(self.threads())
    }
}

/// Aborts the process if dropped while unwinding: a panic inside a step would
/// otherwise free (on the leader) data a worker may still use, or leave the leader
/// waiting for an item that never finishes (on a worker).
struct AbortOnPanic;

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        if thread::panicking() {
            eprintln!("mlp-train: a thread panicked inside a parallel training step; aborting");
            std::process::abort();
        }
    }
}

/// The leader's handle inside [`Team::run`]: runs phases.
pub(crate) struct Phases<'t> {
    shared: &'t Shared,
    items: &'t Items<'t>,
    generation: &'t mut u32,
    /// Run every item on the leader, without publishing.
    alone: bool,
    /// Set when the leader waited longer than [`STALL`] for a worker.
    stalled: bool,
}

impl Phases<'_> {
    /// Runs `items(thread, phase, i)` for every `i < count`, each exactly once, on
    /// whichever threads claim them, and returns when all are finished. Everything the
    /// items wrote is then visible to the caller and to the next phase.
    ///
    /// # Panics
    /// If `phase ≥ MAX_PHASES` or `count > MAX_ITEMS`.
    pub(crate) fn run(&mut self, phase: usize, count: usize) {
        assert!(phase < MAX_PHASES && count <= MAX_ITEMS, "phase too large");
        if self.alone {
            for i in 0..count {
                (self.items)(0, phase, i);
            }
            return;
        }
        *self.generation = self.generation.wrapping_add(1);
        // Nobody touches `done` until they have claimed an item of the claim word
        // published below (Release), so the reset is ordered before every increment.
        self.shared.done.0.store(0, Ordering::Relaxed);
        let word = Claim {
            generation: *self.generation,
            phase,
            front: 0,
            back: count,
        };
        self.shared.claim.0.store(word.pack(), Ordering::Release);
        while let Some((phase, item)) = claim(self.shared, End::Front) {
            (self.items)(0, phase, item);
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

/// Claims the next item of the current phase from `end`, if any is left: its phase
/// and index.
fn claim(shared: &Shared, end: End) -> Option<(usize, usize)> {
    let mut w = shared.claim.0.load(Ordering::Acquire);
    loop {
        let c = Claim::unpack(w);
        if c.front >= c.back {
            return None;
        }
        // Bumps `front` or lowers `back`; fails if anyone claimed or published
        // meanwhile.
        let (item, next) = match end {
            End::Front => (c.front, w + (1 << 12)),
            End::Back => (c.back - 1, w - 1),
        };
        match shared
            .claim
            .0
            .compare_exchange_weak(w, next, Ordering::AcqRel, Ordering::Acquire)
        {
            Ok(_) => return Some((c.phase, item)),
            Err(now) => w = now,
        }
    }
}

impl Team {
    /// A team of `threads` (at least 1): the calling thread and `threads − 1` workers,
    /// spawned now and parked until the first step.
    pub(crate) fn new(threads: usize) -> Team {
        let threads = threads.max(1);
        let shared = Arc::new(Shared {
            claim: Padded::default(),
            done: Padded::default(),
            stop: AtomicBool::new(false),
            items: UnsafeCell::new(None),
        });
        let workers = (1..threads)
            .map(|index| {
                let shared = Arc::clone(&shared);
                thread::Builder::new()
                    .name(format!("mlp-train-{index}"))
                    .spawn(move || work(&shared, index))
                    .expect("cannot spawn a training thread")
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

    /// The threads that can run each step's items, the caller included.
    pub(crate) fn threads(&self) -> usize {
        self.workers.len() + 1
    }

    /// Runs `body`, whose [`Phases::run`] calls hand the items of each phase to
    /// `items` on the team's threads; returns when `body` has returned (so every
    /// item has finished).
    pub(crate) fn run<R>(
        &mut self,
        items: &Items<'_>,
        body: impl FnOnce(&mut Phases<'_>) -> R,
    ) -> R {
        if self.workers.is_empty() || self.solo > 0 {
            self.solo = self.solo.saturating_sub(1);
            return body(&mut Phases {
                shared: &self.shared,
                items,
                generation: &mut self.generation,
                alone: true,
                stalled: false,
            });
        }
        let guard = AbortOnPanic;
        // SAFETY: only the lifetime changes. A worker dereferences the pointer only
        // while it holds a claimed, unfinished item of a phase of this call, and every
        // phase waits for all its items, so `items` outlives every use.
        let erased: *const Items<'static> =
            unsafe { std::mem::transmute(items as *const Items<'_>) };
        // SAFETY: every item of the previous call's phases has been claimed and
        // finished, so no worker reads `items` now (see `Shared`).
        unsafe { *self.shared.items.get() = Some(ItemsPtr(erased)) };
        for w in &self.workers {
            // Cheap when the worker is still spinning: it only sets a flag.
            w.thread().unpark();
        }
        let mut phases = Phases {
            shared: &self.shared,
            items,
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
        drop(guard);
        out
    }
}

impl Drop for Team {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        for w in self.workers.drain(..) {
            w.thread().unpark();
            // A worker only ends by seeing `stop` (a panic in a step aborts), so this
            // cannot fail in practice; there is nothing to do if it does.
            let _ = w.join();
        }
    }
}

/// A worker's life: claim items and run them; when there are none, spin a little,
/// then park until the leader's next step.
fn work(shared: &Shared, index: usize) {
    let mut idle_since: Option<Instant> = None;
    let mut polls = 0u32;
    loop {
        if shared.stop.load(Ordering::Acquire) {
            return;
        }
        if let Some((phase, item)) = claim(shared, End::Back) {
            let guard = AbortOnPanic;
            // SAFETY: this thread holds an unfinished item of a phase published after
            // the item function was written; the leader keeps it alive and unchanged
            // until the item is finished (see `Shared`).
            if let Some(ItemsPtr(items)) = unsafe { *shared.items.get() } {
                // SAFETY: as above.
                let items = unsafe { &*items };
                items(index, phase, item);
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
        // Reading the clock costs tens of ns: only every 64 polls.
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
            phase: 255,
            front: 17,
            back: MAX_ITEMS,
        };
        assert_eq!(Claim::unpack(c.pack()), c);
        assert_eq!(Claim::unpack(c.pack() + (1 << 12)).front, 18);
        assert_eq!(Claim::unpack(c.pack() - 1).back, MAX_ITEMS - 1);
    }

    #[test]
    fn the_leader_claims_from_the_front_and_workers_from_the_back() {
        let shared = Shared {
            claim: Padded::default(),
            done: Padded::default(),
            stop: AtomicBool::new(false),
            items: UnsafeCell::new(None),
        };
        let word = Claim {
            generation: 7,
            phase: 2,
            front: 0,
            back: 4,
        };
        shared.claim.0.store(word.pack(), Ordering::Relaxed);
        assert_eq!(claim(&shared, End::Back), Some((2, 3)));
        assert_eq!(claim(&shared, End::Front), Some((2, 0)));
        assert_eq!(claim(&shared, End::Front), Some((2, 1)));
        assert_eq!(claim(&shared, End::Back), Some((2, 2)));
        assert_eq!(claim(&shared, End::Back), None);
        assert_eq!(claim(&shared, End::Front), None);
    }

    #[test]
    fn every_item_runs_once_and_phases_are_ordered() {
        for threads in 1..=4 {
            let mut team = Team::new(threads);
            for round in 0..100u32 {
                // Phase 0 writes every cell; phase 1 reads all of them, so it sees
                // phase 0's writes only if the phases are ordered.
                let cells: Vec<AtomicU32> = (0..37).map(|_| AtomicU32::new(0)).collect();
                let sums: Vec<AtomicU32> = (0..5).map(|_| AtomicU32::new(0)).collect();
                let runs = AtomicU32::new(0);
                let items = |_t: usize, phase: usize, i: usize| {
                    runs.fetch_add(1, Ordering::Relaxed);
                    if phase == 0 {
                        cells[i].fetch_add(round + i as u32, Ordering::Relaxed);
                    } else {
                        let s = cells.iter().map(|c| c.load(Ordering::Relaxed)).sum();
                        sums[i].store(s, Ordering::Relaxed);
                    }
                };
                team.run(&items, |p| {
                    p.run(0, cells.len());
                    p.run(1, sums.len());
                });
                let want: u32 = (0..37).map(|i| round + i).sum();
                for (i, c) in cells.iter().enumerate() {
                    assert_eq!(c.load(Ordering::Relaxed), round + i as u32);
                }
                for s in &sums {
                    assert_eq!(s.load(Ordering::Relaxed), want, "{threads} threads");
                }
                assert_eq!(runs.load(Ordering::Relaxed), 42);
            }
        }
    }

    #[test]
    fn a_parked_team_wakes_up_and_workers_take_part() {
        let mut team = Team::new(2);
        let by_worker = AtomicU32::new(0);
        for _ in 0..3 {
            // Long enough for the worker to stop spinning and park.
            thread::sleep(Duration::from_millis(5));
            let items = |t: usize, _: usize, _: usize| {
                if t == 1 {
                    by_worker.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(2));
            };
            team.run(&items, |p| p.run(0, 8));
        }
        // The leader cannot have done all 24 items while the worker was awake.
        assert!(by_worker.load(Ordering::Relaxed) > 0);
    }
}
