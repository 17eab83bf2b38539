//! Why a run failed, classified by the error's type (a trap code, a cap's typed error),
//! never by its text.

use wasmtime::component::ResourceTableError;
use wasmtime::{Store, Trap};

use crate::limits::{LimitExceeded, Limits};
use crate::report::Failure;
use crate::state::HostState;
use crate::text;

/// Classifies an error from inside the guest by its type.
pub(super) fn classify(err: wasmtime::Error, store: &Store<HostState>, limits: &Limits) -> Failure {
    if let Some(limit) = err.downcast_ref::<LimitExceeded>() {
        return Failure::Limit(*limit);
    }
    if let Some(limit) = store.data().limiter.exceeded() {
        return Failure::Limit(limit);
    }
    // The resource table is full: the probe holds more host resources than its cap.
    let table_full = err.chain().any(|e| {
        matches!(
            e.downcast_ref::<ResourceTableError>(),
            Some(ResourceTableError::Full)
        )
    });
    if table_full {
        let limit = LimitExceeded::Handles {
            limit: store.data().table.max_capacity(),
        };
        store.data().limiter.record(limit);
        return Failure::Limit(limit);
    }
    // Nothing about the probe: the runner's pools (see `engines::pool`) are all in use.
    if let Some(full) = err.downcast_ref::<wasmtime::PoolConcurrencyLimitError>() {
        return Failure::Setup(format!(
            "cannot start the probe: {full}; too many runs at once of a probe made of many \
             parts, lower --max-probes or --max-check-runs"
        ));
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure::OutOfFuel(limits.fuel),
        Some(Trap::Interrupt) => Failure::Timeout {
            after: limits.timeout,
            during: store.data().activity.current(),
        },
        Some(Trap::StackOverflow) => Failure::Trap("stack overflow".into()),
        Some(Trap::UnreachableCodeReached) => {
            Failure::Trap("wasm trap: unreachable (a panic or abort)".into())
        }
        Some(trap) => Failure::Trap(format!("wasm trap: {trap}")),
        // The root cause first: the context wasmtime adds is a wasm backtrace, which says
        // nothing to an operator and would push the cause off the end of the line.
        None => Failure::HostCall(text::one_line(&err.root_cause().to_string())),
    }
}

/// A Rust guest prints its panic message to stderr before trapping; naming it beats
/// "unreachable".
pub(super) fn with_panic_message(message: &str, stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.contains("panicked at") {
            let detail = lines.next().unwrap_or("").trim();
            let detail = if detail.is_empty() {
                line.trim()
            } else {
                detail
            };
            return format!("probe panicked: {detail}");
        }
    }
    message.to_string()
}
