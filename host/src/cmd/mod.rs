//! One module per subcommand.

pub mod compile;
pub mod inspect;
pub mod list;
pub mod run;

/// A current-thread tokio runtime with I/O and timers (WASI sockets need both).
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime, crate::Error> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?)
}
