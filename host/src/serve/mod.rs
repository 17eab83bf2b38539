//! `serve`: the checks of a checks file, each run on its own interval in the background,
//! and their latest results over HTTP: `/livez` and `/readyz` (kube-apiserver's
//! conventions), `/health` (`application/health+json`) and `/metrics` (Prometheus); and
//! `/probe`, blackbox_exporter's endpoint, which runs a module of the file on request.
//!
//! Each check is a task that keeps its schedule; its runs (one after another, never two of
//! one check at once) are tasks on the runtime that runs guests, at most
//! `--max-check-runs` at once, each bounded by its own timeout, kept by the clock of the
//! runtime that answers requests: a hung or hostile check delays only its own result. The
//! HTTP side only reads the latest results: answering never waits for a check.
//!
//! - [`server`]: the two runtimes, the listener, hyper's connections, the signals (stop,
//!   reload) — what [`serve`] runs;
//! - [`fleet`]: the checks being run, and what a reload keeps, starts and stops;
//! - [`check`]: one check's schedule, runs and status;
//! - [`clock`]: one run on the guests' runtime, its timeout kept by the caller's clock;
//! - [`probe`]: `/probe`'s modules, requests and answers;
//! - [`endpoints`]: `/livez`, `/readyz`, `/health`; [`metrics`]: `/metrics`;
//! - [`logging`]: the server's log on stderr.

mod blackbox;
mod check;
mod clock;
mod endpoints;
mod fleet;
mod logging;
mod metrics;
mod probe;
mod server;

pub use check::{FleetRuntime, Served, Status};
pub use clock::{CLOCK_MARGIN, run_by_the_clock};
pub use endpoints::{Answer, TEXT, answer};
pub use fleet::{Fleet, MAX_CHECKS, Serving};
pub use logging::{flush_log, log};
pub use probe::{ProbeRequest, SCRAPE_OFFSET, ServedModule, probe_request};
pub use server::{Options, pull_deadline, serve};
