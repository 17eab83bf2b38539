//! Capture of the guest's stdout and stderr, capped.
//!
//! wasmtime-wasi's `MemoryOutputPipe` reports "closed" once full, which makes a Rust guest's
//! `println!` panic: a chatty probe would then fail for the wrong reason. This sink accepts
//! every write, keeps the first `cap` bytes and counts the rest.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

#[derive(Debug, Default)]
struct Buffer {
    kept: Vec<u8>,
    dropped: u64,
}

/// A capped, cloneable capture buffer usable as a WASI stdout or stderr.
#[derive(Debug, Clone)]
pub struct Capture {
    cap: usize,
    buf: Arc<Mutex<Buffer>>,
}

impl Capture {
    /// A capture that keeps at most `cap` bytes.
    pub fn new(cap: usize) -> Self {
        Self {
            cap,
            buf: Arc::default(),
        }
    }

    /// The bytes kept and how many more were discarded.
    pub fn contents(&self) -> (Vec<u8>, u64) {
        let b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        (b.kept.clone(), b.dropped)
    }

    fn write(&self, data: &[u8]) {
        let mut b = self.buf.lock().unwrap_or_else(|e| e.into_inner());
        let room = self.cap.saturating_sub(b.kept.len());
        let take = room.min(data.len());
        b.kept.extend_from_slice(&data[..take]);
        b.dropped += (data.len() - take) as u64;
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }

    // Direct, always-ready stream: the default adapter goes through a background task per
    // write, which makes a probe that floods its output slow for no reason.
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

/// How much the guest may write per call; writes are always accepted.
const WRITE_PERMIT: usize = 1 << 20;

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        Capture::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(WRITE_PERMIT)
    }
}

#[async_trait::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.write(data);
        Poll::Ready(Ok(data.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let c = Capture::new(4);
        c.write(b"abc");
        c.write(b"defgh");
        assert_eq!(c.contents(), (b"abcd".to_vec(), 4));
    }
}
