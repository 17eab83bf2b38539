//! One run of a probe for `serve`, on the runtime that runs guests, with its timeout kept by
//! the caller's clock.

use std::sync::Arc;
use std::time::Duration;

use crate::report::Report;
use crate::runner::{Deadline, ProbeSource, RunConfig, Runner};

/// How long past a run's timeout its caller waits for the run's own report before it
/// answers the timeout itself. The run ends at its deadline when its task is polled; this
/// covers the case where it is not, because every worker is busy with other guests.
pub const CLOCK_MARGIN: Duration = Duration::from_millis(200);

/// Runs one probe as a task on `probes`, the runtime that runs guests, and waits for it on
/// the caller's runtime: the timeout is kept by the caller's clock, not by the next time a
/// starved task is polled. With every worker busy with spinning guests (each yields at
/// every epoch tick, but hundreds take turns on two cores), a run whose deadline passed
/// may wait long for its turn; its caller answers `timeout after …` by the deadline plus
/// [`CLOCK_MARGIN`] and the run is dropped at its next turn.
pub async fn run_by_the_clock(
    probes: &tokio::runtime::Handle,
    runner: Arc<Runner>,
    source: ProbeSource,
    params: Vec<(String, String)>,
    config: RunConfig,
) -> Report {
    let deadline = Deadline::from_now(config.limits.timeout);
    let label = source.label();
    let task = probes.spawn(async move { runner.run(deadline, &source, &params, &config).await });
    let abort = task.abort_handle();
    // A run whose caller went away (a client that closed its connection) is dropped too.
    let _abort_on_drop = AbortOnDrop(abort.clone());
    let by = tokio::time::Instant::from_std(deadline.at() + CLOCK_MARGIN);
    match tokio::time::timeout_at(by, task).await {
        Ok(Ok(report)) => report,
        // A panic is a healthprobe bug; it fails this run, not the server.
        Ok(Err(_)) => Report::failed(
            &label,
            &crate::Failure::Setup("the run panicked (a healthprobe bug; please report it)".into()),
            deadline.elapsed(),
        ),
        Err(_) => {
            abort.abort();
            Report::failed(
                &label,
                &crate::Failure::Timeout {
                    after: deadline.timeout(),
                    during: None,
                },
                deadline.elapsed(),
            )
        }
    }
}

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
