//! One module per subcommand, each owning its arguments.

pub mod compile;
pub mod inspect;
pub mod list;
pub mod new;
#[cfg(feature = "compiler")]
pub mod pull;
#[cfg(feature = "compiler")]
pub mod push;
pub mod run;
pub mod serve;
pub mod wit;

pub(crate) use crate::runner::runtime;
