//! The checks being run, and a reload: which checks keep their task and results, which
//! start and which stop.

use std::collections::BTreeSet;
use std::sync::Arc;

use tokio::sync::oneshot;

use super::check::{FleetRuntime, Served};
use super::probe::ServedModule;
use crate::checks::Checks;

/// What the endpoints answer from: the checks being run and the modules of the checks
/// file as last (re)loaded.
#[derive(Debug)]
pub struct Serving {
    /// The checks being run.
    pub checks: Vec<Arc<Served>>,
    /// The `/probe` modules.
    pub modules: Vec<ServedModule>,
}

/// The checks being run. Each check is a task that keeps its schedule (timers only); its
/// runs are tasks on the runtime that runs guests, at most `--max-check-runs` at once, so
/// what the server holds (threads, pool slots, mappings) follows the runs in flight, not
/// the number of checks.
pub struct Fleet {
    runtime: FleetRuntime,
    /// Where the checks' schedules run.
    schedules: tokio::runtime::Handle,
    running: Vec<Running>,
}

/// A check and the handle that stops its task when dropped.
struct Running {
    served: Arc<Served>,
    _stop: oneshot::Sender<()>,
}

/// The most checks one checks file may hold: far more than one server runs well (the
/// README has the measured figures), few enough that a mistaken file is refused with a
/// reason instead of taking the server's memory.
pub const MAX_CHECKS: usize = 100_000;

impl Fleet {
    /// No checks running yet; their schedules will run on `schedules`.
    pub fn new(runtime: FleetRuntime, schedules: tokio::runtime::Handle) -> Self {
        Fleet {
            runtime,
            schedules,
            running: Vec::new(),
        }
    }

    /// Serves `checks` from now on: a check whose table (and TLS files) are unchanged keeps
    /// its task, schedule and results; a new or changed one starts (and runs at once); one
    /// no longer in the file stops, its run in progress dropped. Nothing changes if any of
    /// it fails. Returns what to serve and a line saying what changed.
    pub fn apply(
        &mut self,
        checks: Checks,
        grants: &crate::flags::GrantArgs,
    ) -> Result<(Arc<Serving>, String), crate::Failure> {
        if checks.checks.len() > MAX_CHECKS {
            return Err(crate::Failure::BadInput(format!(
                "{} checks in one file, more than the {MAX_CHECKS} one server runs; split \
                 them over several servers",
                checks.checks.len()
            )));
        }
        let modules = ServedModule::new(checks.modules, grants)?;
        let by_name: std::collections::HashMap<&str, usize> = self
            .running
            .iter()
            .enumerate()
            .map(|(i, r)| (r.served.name.as_str(), i))
            .collect();
        let mut kept = Vec::new();
        let mut started = Vec::new();
        for check in checks.checks {
            // Resolved whole, so a certificate rotated in place (same path, new content)
            // counts as a change.
            let served = Served::new(check, grants)?;
            match by_name.get(served.name.as_str()).copied().filter(|&i| {
                let r = &self.running[i].served;
                r.definition == served.definition
                    && r.config.sandbox.tls == served.config.sandbox.tls
            }) {
                Some(i) => kept.push(i),
                None => started.push(Arc::new(served)),
            }
        }
        let started: Vec<Running> = started
            .into_iter()
            .map(|served| self.start(served))
            .collect();
        let mut old: Vec<Option<Running>> = std::mem::take(&mut self.running)
            .into_iter()
            .map(Some)
            .collect();
        let mut running: Vec<Running> = kept.iter().filter_map(|&i| old[i].take()).collect();
        let stopped: Vec<Running> = old.into_iter().flatten().collect();
        let names = |list: &[Running]| -> BTreeSet<String> {
            list.iter().map(|r| r.served.name.clone()).collect()
        };
        let (new, gone) = (names(&started), names(&stopped));
        let mut changes = Vec::new();
        for (what, list) in [
            ("added", new.difference(&gone).collect::<Vec<_>>()),
            ("changed", new.intersection(&gone).collect()),
            ("removed", gone.difference(&new).collect()),
        ] {
            if !list.is_empty() {
                let list: Vec<&str> = list.into_iter().map(String::as_str).collect();
                changes.push(format!("{what} {}", list.join(", ")));
            }
        }
        // Dropping their stop handles ends the tasks of the checks not kept.
        drop(stopped);
        running.extend(started);
        running.sort_by(|a, b| a.served.name.cmp(&b.served.name));
        let summary = format!(
            "{} checks, {} modules{}",
            running.len(),
            modules.len(),
            if changes.is_empty() {
                String::new()
            } else {
                format!(" ({})", changes.join("; "))
            }
        );
        self.running = running;
        let serving = Serving {
            checks: self.running.iter().map(|r| r.served.clone()).collect(),
            modules,
        };
        Ok((Arc::new(serving), summary))
    }

    fn start(&self, served: Arc<Served>) -> Running {
        let (stop, stopped) = oneshot::channel();
        self.schedules
            .spawn(served.clone().run_until(self.runtime.clone(), stopped));
        Running {
            served,
            _stop: stop,
        }
    }
}
