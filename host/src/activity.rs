//! What a probe's host call is waiting for, recorded by the imports and read by the
//! runner: when the deadline drops a run, it is what the timeout message names.

use std::sync::{Arc, Mutex};

/// The host call a probe is blocked in, shared with the runner: when the deadline drops
/// the store, this is what is left to say what the probe was waiting for. A call that
/// returns at once and is then waited on through `wasi:io/poll` (a TCP connect, a name
/// lookup) is kept as the probe's last host call instead.
#[derive(Debug, Clone, Default)]
pub struct Activity(Arc<Mutex<Record>>);

#[derive(Debug, Default)]
struct Record {
    current: Option<String>,
    last: Option<String>,
}

impl Activity {
    fn record(&self) -> std::sync::MutexGuard<'_, Record> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records what the probe now waits for, or `None` once the call returned. Not a drop
    /// guard on purpose: when the deadline cancels the call, the record must survive the
    /// dropped future so the runner can name it.
    pub fn set(&self, what: Option<String>) {
        let mut record = self.record();
        if what.is_some() {
            record.last = None;
        }
        record.current = what;
    }

    /// Records the probe's last host call (`TCP connect to 127.0.0.1:6379`), named if the
    /// deadline comes while no other call is in flight.
    pub fn called(&self, what: String) {
        self.record().last = Some(what);
    }

    /// Clears the record if it still says `what`: a request that ends in the background
    /// must not erase what another one recorded since.
    pub fn clear_if(&self, what: &str) {
        let mut record = self.record();
        if record.current.as_deref() == Some(what) {
            record.current = None;
        }
    }

    /// What the probe is waiting for, if it is in a host call that records it, else the
    /// last host call it made that was recorded.
    pub fn current(&self) -> Option<String> {
        let record = self.record();
        record.current.clone().or_else(|| {
            (record.last.as_ref()).map(|last| format!("(the probe's last host call: {last})"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_in_flight_comes_before_the_last_call() {
        let a = Activity::default();
        assert_eq!(a.current(), None);
        a.called("TCP connect to 127.0.0.1:1".into());
        assert_eq!(
            a.current().as_deref(),
            Some("(the probe's last host call: TCP connect to 127.0.0.1:1)")
        );
        a.set(Some("waiting for the response of GET http://x/".into()));
        assert_eq!(
            a.current().as_deref(),
            Some("waiting for the response of GET http://x/")
        );
        a.set(None);
        assert_eq!(a.current(), None);
    }
}
