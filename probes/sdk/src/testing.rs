//! Helpers for a probe's own `cargo test`, run natively (the SDK's [`tcp`](crate::tcp)
//! runs on `std::net` there, so a probe's logic can also be tested against a real server
//! on loopback).
//!
//! - [`Script`]: a scripted peer, a [`Link`] that replays the server's side of a
//!   conversation byte for byte and records what the probe wrote;
//! - [`params`]: the parameters as the SDK hands them to `check`, declared defaults filled
//!   in;
//! - [`invalid_param`] and [`assert_documented`]: the checks every probe's tests make of
//!   its parameters;
//! - `Healthprobe` and `built_component`: the probe's real component run by the real
//!   `healthprobe` binary, its `--format json` answer parsed, for an end-to-end test
//!   against a server (natively only), with `http_server` for a fixed answer on loopback.
//!
//! ```
//! use healthprobe_sdk::tcp::Link;
//! use healthprobe_sdk::testing::Script;
//!
//! // The server greets first, then answers the probe's one write; whole replies per read.
//! let mut peer = Script::new([b"+READY\r\n".to_vec(), b"+PONG\r\n".to_vec()]).chunk(64);
//! assert_eq!(peer.recv(64)?, b"+READY\r\n");
//! peer.send(b"PING\r\n")?;
//! assert_eq!(peer.recv(64)?, b"+PONG\r\n");
//! assert_eq!(peer.written(), [b"PING\r\n".to_vec()]);
//! # Ok::<(), healthprobe_sdk::tcp::TcpError>(())
//! ```

#[cfg(not(target_family = "wasm"))]
pub use harness::{Healthprobe, Run, built_component, http_server};
use std::collections::VecDeque;

use crate::tcp::{Link, TcpError};
use crate::{CheckError, Params, ProbeInfo};

/// A scripted peer: the first reply is there to be read before the probe writes anything
/// (a server that speaks first; give an empty one for a server that waits), and each
/// following reply is sent after the probe's next write. Reads hand out a few bytes at a
/// time ([`Script::chunk`]), so a probe's reassembly of messages split by the network is
/// tested too. Once the replies are read, the peer has closed the connection.
#[derive(Debug, Clone)]
pub struct Script {
    replies: VecDeque<Vec<u8>>,
    pending: Vec<u8>,
    written: Vec<Vec<u8>>,
    chunk: usize,
}

impl Script {
    /// A peer that sends `replies` as described above.
    pub fn new(replies: impl IntoIterator<Item = Vec<u8>>) -> Self {
        let mut replies: VecDeque<Vec<u8>> = replies.into_iter().collect();
        let pending = replies.pop_front().unwrap_or_default();
        Script {
            replies,
            pending,
            written: Vec::new(),
            chunk: 7,
        }
    }

    /// At most `n` bytes per read (7 unless set; at least 1).
    #[must_use]
    pub fn chunk(mut self, n: usize) -> Self {
        self.chunk = n.max(1);
        self
    }

    /// Every write of the probe, in order.
    pub fn written(&self) -> &[Vec<u8>] {
        &self.written
    }
}

impl Link for Script {
    fn send(&mut self, data: &[u8]) -> Result<(), TcpError> {
        self.written.push(data.to_vec());
        if let Some(next) = self.replies.pop_front() {
            self.pending.extend(next);
        }
        Ok(())
    }

    fn recv(&mut self, max: usize) -> Result<Vec<u8>, TcpError> {
        let n = max.min(self.chunk).min(self.pending.len());
        Ok(self.pending.drain(..n).collect())
    }
}

/// The parameters as the SDK hands them to `check`: `pairs`, with the defaults `info`
/// declares for the others.
pub fn params<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>, info: &ProbeInfo) -> Params {
    Params::from_pairs(pairs).with_defaults(&info.params)
}

/// The parameter a check refused and why; panics (failing the test) on anything else.
#[track_caller]
pub fn invalid_param<T: std::fmt::Debug>(result: Result<T, CheckError>) -> (String, String) {
    match result {
        Err(CheckError::InvalidParam(p)) => (p.name, p.reason),
        other => panic!("expected an invalid parameter, got {other:?}"),
    }
}

/// Asserts that `info` declares exactly the parameters `names`, in that order, and that
/// each description gives an example (as `healthprobe list` shows them to operators).
#[track_caller]
pub fn assert_documented(info: &ProbeInfo, names: &[&str]) {
    let declared: Vec<&str> = info.params.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(declared, names, "the parameters {} declares", info.name);
    for p in &info.params {
        assert!(
            p.description.contains("example"),
            "{}: the description of {} gives no example: {:?}",
            info.name,
            p.name,
            p.description
        );
    }
}

#[cfg(not(target_family = "wasm"))]
mod harness;
