//! healthprobe: run WebAssembly health probes in-process under a deadline.
//!
//! The command line ([`cli`]) dispatches to one module per subcommand ([`cmd`]), which
//! resolves its [`settings`] and hands them to the [`runner`], usable on its own: it loads
//! a probe, links it against the host's [`imports`], runs it in a store holding the
//! per-run [`state`], and returns a [`report::Report`] that [`output`] renders.

pub mod activity;
pub mod bindings;
pub mod bundled;
#[cfg(feature = "compiler")]
pub mod cache;
pub mod checks;
pub mod cli;
pub mod cmd;
pub mod confine;
pub mod flags;
mod fsio;
pub mod imports;
pub mod limits;
#[cfg(feature = "compiler")]
pub mod oci;
#[cfg(not(feature = "compiler"))]
#[path = "oci/absent.rs"]
pub mod oci;
pub mod output;
pub mod params;
pub mod policy;
pub mod report;
pub mod runner;
pub mod sandbox;
pub mod serve;
pub mod settings;
mod state;
mod stdio;
pub mod text;
pub mod version;

pub use limits::Limits;
pub use report::{Failure, Report, Verdict};
pub use runner::{Deadline, ProbeSource, RunConfig, Runner};
pub use sandbox::Sandbox;

/// Exit status when a probe could not be run at all (never 2: Docker reserves it).
pub const EXIT_ERROR: u8 = 3;

/// Errors that end a command without a result of its own to print.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Writing the result failed (a closed or broken stdout).
    #[error("cannot write the result: {0}")]
    Io(#[from] std::io::Error),
}
