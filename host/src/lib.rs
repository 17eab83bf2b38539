//! healthprobe: run WebAssembly health probes in-process under a deadline.
//!
//! The CLI (`cli`) parses arguments and calls one module per subcommand (`cmd`); the
//! [`runner`] loads and runs probes and is usable on its own.

pub mod bindings;
pub mod bundled;
#[cfg(feature = "compiler")]
pub mod cache;
pub mod cli;
pub mod cmd;
pub mod engine;
mod http;
pub mod limits;
mod lookup;
pub mod output;
pub mod params;
pub mod policy;
pub mod runner;
pub mod sandbox;
pub mod settings;
mod state;
mod stdio;

pub use runner::{Limits, ProbeSource, Report, RunConfig, Runner, Verdict};
pub use sandbox::Sandbox;

/// Exit status when a probe could not be run at all (PRODUCT.md; never 2).
pub const EXIT_ERROR: u8 = 3;

/// Errors that end the command before a probe produced a verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A runner failure (bad input or engine setup).
    #[error(transparent)]
    Run(#[from] runner::Failure),
    /// Writing the result failed.
    #[error("cannot write the result: {0}")]
    Io(#[from] std::io::Error),
    /// The network policy could not be built.
    #[error(transparent)]
    Policy(#[from] policy::HostGrantError),
}
