//! Text helpers shared by every message: durations and sizes the way operators write
//! them, error chains on one line, and cutting text to fit the output contract.

use std::time::Duration;

/// A duration the way operators write them: `2s`, `500ms`, `1.5s`.
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        format!("{}µs", d.as_micros())
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// A byte count in binary units: `64 MiB`.
pub fn size(bytes: u64) -> String {
    // Whole units are written the way flags take them.
    for (unit, name) in [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ] {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
    }
    bytesize::ByteSize::b(bytes).display().iec().to_string()
}

/// An error and its sources, joined with `: `.
pub fn chain(err: &wasmtime::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    one_line(&parts.join(": "))
}

/// An I/O error without the `(os error N)` suffix.
pub fn io_error(err: &std::io::Error) -> String {
    let s = err.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_lowercase(),
        None => s,
    }
}

/// At most `max` bytes of `s`, cut at a character boundary, with `…` when cut.
pub fn excerpt(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Newlines and control characters folded into spaces: the result is one line.
pub fn one_line(s: &str) -> String {
    s.split(|c: char| c.is_control())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_flags() {
        assert_eq!(duration(Duration::from_secs(2)), "2s");
        assert_eq!(duration(Duration::from_millis(500)), "500ms");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
    }

    #[test]
    fn excerpt_cuts_on_char_boundaries() {
        let s = "é".repeat(10);
        let e = excerpt(&s, 7);
        assert!(e.len() <= 7 && e.ends_with('…'), "{e}");
        assert_eq!(excerpt("abc", 3), "abc");
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size(64 * 1024 * 1024), "64 MiB");
        assert_eq!(size(1536), "1.5 KiB");
    }
}
