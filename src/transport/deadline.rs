//! Deadlines for the async transport that need no runtime timer.
//!
//! Tokio's timers panic on a runtime built without its time driver, and Tokio has no call
//! to ask for that driver first. So the transport times its exchanges here instead: one
//! background thread, started on first use, wakes each waiting exchange when its deadline
//! passes. It works on any runtime (or executor), and never panics.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The state shared by every [`Sleep`] and the timer thread.
struct Timer {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    /// The wakers of the sleeps that wait, by deadline (the id makes each key unique).
    waiting: BTreeMap<(Instant, u64), Waker>,
    next_id: u64,
    /// When the thread looks next (`None`: not until told): a new deadline wakes it only
    /// when it is earlier, so one request at a time costs no wake-up of the thread.
    looks_at: Option<Instant>,
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock (wakers are called after it is released).
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The thread's loop: wakes what is due, then waits for the next deadline (or a new,
    /// earlier one).
    fn run(&self) {
        let mut state = self.lock();
        let mut due = Vec::new();
        loop {
            let now = Instant::now();
            while let Some(entry) = state.waiting.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                due.push(entry.remove());
            }
            if !due.is_empty() {
                state.looks_at = Some(now);
                drop(state);
                due.drain(..).for_each(Waker::wake);
                state = self.lock();
                continue;
            }
            let next = state.waiting.keys().next().map(|&(at, _)| at);
            state.looks_at = next;
            state = match next {
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    let (state, _) = self
                        .changed
                        .wait_timeout(state, wait)
                        .unwrap_or_else(PoisonError::into_inner);
                    state
                }
                None => self
                    .changed
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner),
            };
        }
    }
}

/// The timer, its thread started on first use. A failure to start the thread is returned
/// (and tried again next time).
fn timer() -> io::Result<Arc<Timer>> {
    static TIMER: Mutex<Option<Arc<Timer>>> = Mutex::new(None);
    let mut slot = TIMER.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(timer) = &*slot {
        return Ok(Arc::clone(timer));
    }
    let timer = Arc::new(Timer {
        state: Mutex::new(State::default()),
        changed: Condvar::new(),
    });
    let for_thread = Arc::clone(&timer);
    std::thread::Builder::new()
        .name("direct-otp-deadline".into())
        .spawn(move || for_thread.run())?;
    *slot = Some(Arc::clone(&timer));
    Ok(timer)
}

/// A future that completes once `duration` has passed (never, if the deadline is past
/// the end of `Instant`). Dropping it forgets it.
pub(super) struct Sleep {
    at: Option<Instant>,
    key: Option<(Instant, u64)>,
    timer: Arc<Timer>,
}

impl Sleep {
    /// Fails only when the timer thread cannot be started.
    pub(super) fn new(duration: Duration) -> io::Result<Sleep> {
        Ok(Sleep {
            at: Instant::now().checked_add(duration),
            key: None,
            timer: timer()?,
        })
    }

    fn forget(&mut self) {
        if let Some(key) = self.key.take() {
            self.timer.lock().waiting.remove(&key);
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let Some(at) = this.at else {
            return Poll::Pending; // never due: nothing to wake
        };
        if Instant::now() >= at {
            this.forget();
            return Poll::Ready(());
        }
        let mut state = this.timer.lock();
        let key = match this.key {
            Some(key) => key,
            None => {
                let key = (at, state.next_id);
                state.next_id = state.next_id.wrapping_add(1);
                this.key = Some(key);
                key
            }
        };
        match state.waiting.get_mut(&key) {
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                state.waiting.insert(key, cx.waker().clone());
                // The thread sleeps until the deadline it knows: tell it about an earlier one.
                if state.looks_at.is_none_or(|next| at < next) {
                    state.looks_at = Some(at);
                    this.timer.changed.notify_one();
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.forget();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waiting(s: &Sleep) -> bool {
        s.key
            .is_some_and(|key| s.timer.lock().waiting.contains_key(&key))
    }

    #[test]
    fn a_sleep_is_woken_at_its_deadline_and_not_before() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let start = Instant::now();
        let mut late = Box::pin(Sleep::new(Duration::from_secs(3600)).unwrap());
        let mut soon = Box::pin(Sleep::new(Duration::from_millis(30)).unwrap());
        assert!(late.as_mut().poll(&mut cx).is_pending());
        // An earlier deadline registered after a later one: the thread is told.
        assert!(soon.as_mut().poll(&mut cx).is_pending());
        while count.0.load(Ordering::SeqCst) == 0 {
            assert!(start.elapsed() < Duration::from_secs(10), "never woken");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert!(soon.as_mut().poll(&mut cx).is_ready());
        assert!(!waiting(&soon), "a woken sleep is no longer waiting");
        assert!(late.as_mut().poll(&mut cx).is_pending());
        assert!(waiting(&late));
        let key = late.key.unwrap();
        let timer = Arc::clone(&late.timer);
        drop(late);
        assert!(
            !timer.lock().waiting.contains_key(&key),
            "a dropped sleep is forgotten"
        );
    }

    #[test]
    fn a_zero_sleep_is_ready_at_once_and_an_endless_one_never() {
        let mut cx = Context::from_waker(Waker::noop());
        let mut now = Box::pin(Sleep::new(Duration::ZERO).unwrap());
        assert!(now.as_mut().poll(&mut cx).is_ready());
        let mut never = Box::pin(Sleep::new(Duration::MAX).unwrap());
        assert!(never.as_mut().poll(&mut cx).is_pending());
        assert!(!waiting(&never));
    }
}
