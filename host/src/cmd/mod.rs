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

/// Prints `error: PROBE: message` and returns exit status 3, for subcommands that stop
/// before anything ran.
pub(crate) fn bad_input(
    probe: &str,
    message: &str,
) -> Result<std::process::ExitCode, crate::Error> {
    println!(
        "{}",
        crate::output::error_line(&format!("{probe}: {message}"))
    );
    Ok(std::process::ExitCode::from(crate::EXIT_ERROR))
}
