//! One module per subcommand, each owning its arguments.

pub mod compile;
pub mod inspect;
pub mod list;
pub mod run;
pub mod serve;
pub mod wit;

/// A current-thread tokio runtime with I/O and timers (WASI sockets need both).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, crate::report::Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| crate::report::Failure::Setup(format!("cannot start the async runtime: {e}")))
}
