//! The server's log on stderr: whole lines, through a thread of their own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Writes one line of the server's log on stderr, whole (`eprintln!` writes each piece of
/// its format apart, so whatever reads the log could see half a line). Lines go through a
/// thread of their own: a stderr that is full (a reader that stopped reading) blocks that
/// thread alone, never a check or an answer, and lines that find the queue full are
/// dropped and counted in the next line that is written. A closed or broken stderr is
/// ignored (see `output::print_err`).
pub fn log(line: std::fmt::Arguments) {
    let log = Log::get();
    let dropped = log.dropped.swap(0, Ordering::Relaxed);
    let line = if dropped > 0 {
        format!("healthprobe serve: {line} ({dropped} log lines dropped: stderr was not read)\n")
    } else {
        format!("healthprobe serve: {line}\n")
    };
    match &log.queue {
        Some(queue) => {
            log.pending.fetch_add(1, Ordering::SeqCst);
            if queue.try_send(line).is_err() {
                log.pending.fetch_sub(1, Ordering::SeqCst);
                log.dropped.fetch_add(dropped + 1, Ordering::Relaxed);
            }
        }
        // No thread for the log: written here, which a full stderr may block.
        None => crate::output::print_err(&line),
    }
}

/// Waits until the lines logged so far are written, or `at_most` has passed (stderr may be
/// full): the last lines before the server exits.
pub fn flush_log(at_most: Duration) {
    let log = Log::get();
    let until = Instant::now() + at_most;
    while log.pending.load(Ordering::SeqCst) > 0 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The log's queue and its writer thread.
struct Log {
    queue: Option<std::sync::mpsc::SyncSender<String>>,
    /// Lines queued and not yet written.
    pending: Arc<AtomicUsize>,
    /// Lines dropped since the last one queued.
    dropped: AtomicU64,
}

impl Log {
    fn get() -> &'static Log {
        static LOG: std::sync::OnceLock<Log> = std::sync::OnceLock::new();
        LOG.get_or_init(|| {
            let (send, receive) = std::sync::mpsc::sync_channel::<String>(LOG_QUEUE);
            let pending = Arc::new(AtomicUsize::new(0));
            let written = pending.clone();
            let queue = std::thread::Builder::new()
                .name("log".into())
                .spawn(move || {
                    for line in receive {
                        crate::output::print_err(&line);
                        written.fetch_sub(1, Ordering::SeqCst);
                    }
                })
                .ok()
                .map(|_| send);
            Log {
                queue,
                pending,
                dropped: AtomicU64::new(0),
            }
        })
    }
}

/// Log lines waiting to be written before more are dropped.
const LOG_QUEUE: usize = 1024;
