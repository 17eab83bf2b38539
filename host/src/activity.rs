//! What a probe's host call is waiting for, recorded by the imports and read by the
//! runner: when the deadline drops a run, it is what the timeout message names.

use std::sync::{Arc, Mutex};

/// The host call a probe is blocked in, shared with the runner: when the deadline drops
/// the store, this is what is left to say what the probe was waiting for.
#[derive(Debug, Clone, Default)]
pub struct Activity(Arc<Mutex<Option<String>>>);

impl Activity {
    /// Records what the probe now waits for, or `None` once the call returned. Not a drop
    /// guard on purpose: when the deadline cancels the call, the record must survive the
    /// dropped future so the runner can name it.
    pub fn set(&self, what: Option<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = what;
    }

    /// Clears the record if it still says `what`: a request that ends in the background
    /// must not erase what another one recorded since.
    pub fn clear_if(&self, what: &str) {
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if current.as_deref() == Some(what) {
            *current = None;
        }
    }

    /// What the probe is waiting for, if it is in a host call that records it.
    pub fn current(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}
