//! The runner's one background thread: it advances the epoch of every engine each
//! [`EPOCH_TICK`] and fires timers (the CLI's watchdog is one). One thread for both,
//! because a health check is a whole process and each thread costs it a measurable share
//! of its run time.

use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use wasmtime::Engine;

use crate::report::Failure;

/// How often the epoch advances; also how often spinning wasm yields to the executor.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The clock thread's handle; the thread ends by itself once this is dropped.
pub(crate) struct Clock(Arc<Mutex<ClockState>>);

/// What a timer does when it fires.
type Fire = Box<dyn FnOnce() + Send>;

/// What the clock thread serves.
#[derive(Default)]
struct ClockState {
    engines: Vec<Engine>,
    /// Pending timers, each with its own id: callers running probes concurrently each
    /// keep their own.
    timers: Vec<(u64, Instant, Fire)>,
    next_id: u64,
}

/// A timer set with [`Clock::at`]; dropping it cancels the timer if it has not fired.
#[must_use = "dropping the timer cancels it"]
pub struct Timer {
    id: u64,
    clock: Weak<Mutex<ClockState>>,
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(state) = self.clock.upgrade() {
            lock(&state).timers.retain(|(id, ..)| *id != self.id);
        }
    }
}

impl std::fmt::Debug for Timer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Timer").field("id", &self.id).finish()
    }
}

fn lock(state: &Mutex<ClockState>) -> MutexGuard<'_, ClockState> {
    state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Clock {
    /// Starts the thread; it holds only a weak reference, so it ends by itself once the
    /// clock is dropped.
    pub(crate) fn start() -> Result<Self, Failure> {
        let state = Arc::new(Mutex::new(ClockState::default()));
        let weak = Arc::downgrade(&state);
        std::thread::Builder::new()
            .name("clock".into())
            .spawn(move || {
                while let Some(state) = weak.upgrade() {
                    let due = {
                        let mut s = lock(&state);
                        for engine in &s.engines {
                            engine.increment_epoch();
                        }
                        let now = Instant::now();
                        let (due, pending) = std::mem::take(&mut s.timers)
                            .into_iter()
                            .partition::<Vec<_>, _>(|(_, at, _)| now >= *at);
                        s.timers = pending;
                        due
                    };
                    // Fired without the lock: a timer may exit the process, or set another.
                    drop(state);
                    for (_, _, fire) in due {
                        fire();
                    }
                    std::thread::sleep(EPOCH_TICK);
                }
            })
            .map_err(|e| Failure::Setup(format!("cannot start the clock thread: {e}")))?;
        Ok(Self(state))
    }

    /// Advances `engine`'s epoch every tick from now on.
    pub(crate) fn tick(&self, engine: Engine) {
        lock(&self.0).engines.push(engine);
    }

    /// Calls `fire` once, on the clock thread, at `at` (within a tick), unless the
    /// returned [`Timer`] or the clock is dropped first.
    pub(crate) fn at(&self, at: Instant, fire: impl FnOnce() + Send + 'static) -> Timer {
        let mut s = lock(&self.0);
        let id = s.next_id;
        s.next_id += 1;
        s.timers.push((id, at, Box::new(fire)));
        Timer {
            id,
            clock: Arc::downgrade(&self.0),
        }
    }
}

/// When a run must end: its start and its budget, taken once by whoever starts the run and
/// handed to everything that keeps time for it (the run itself, the caller's watchdog or
/// clock), so that all of them end it at the same instant.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    start: Instant,
    timeout: Duration,
}

impl Deadline {
    /// A run that started at `start` and may take `timeout`.
    pub fn new(start: Instant, timeout: Duration) -> Self {
        Deadline { start, timeout }
    }

    /// A run that starts now.
    pub fn from_now(timeout: Duration) -> Self {
        Deadline::new(Instant::now(), timeout)
    }

    /// The instant the run must have ended by.
    pub fn at(&self) -> Instant {
        self.start + self.timeout
    }

    /// The budget, as given (`--timeout`).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// How long the run has taken so far.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn timers_fire_once_each_and_a_dropped_timer_never() {
        let clock = Clock::start().unwrap();
        let fired = Arc::new(AtomicUsize::new(0));
        let soon = Instant::now() + Duration::from_millis(20);
        let timers: Vec<Timer> = (0..3)
            .map(|_| {
                let fired = fired.clone();
                clock.at(soon, move || {
                    fired.fetch_add(1, Ordering::SeqCst);
                })
            })
            .collect();
        let cancelled = {
            let fired = fired.clone();
            clock.at(soon, move || {
                fired.fetch_add(100, Ordering::SeqCst);
            })
        };
        drop(cancelled);
        let start = Instant::now();
        while fired.load(Ordering::SeqCst) < 3 && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(EPOCH_TICK * 3);
        assert_eq!(fired.load(Ordering::SeqCst), 3);
        drop(timers);
    }
}
