//! The BER encoding LDAP messages use (RFC 4511, section 5.1): tag, length, value, with
//! definite lengths only.

/// A tag, a definite length and `value`.
pub fn tlv(tag: u8, value: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = value.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | u8::try_from(bytes.len()).unwrap_or(0));
        out.extend(bytes);
    }
    out.extend_from_slice(value);
    out
}

/// An INTEGER (or ENUMERATED with `tag` 0x0a) of a small non-negative value.
pub fn integer(tag: u8, n: u32) -> Vec<u8> {
    let mut bytes: Vec<u8> = n
        .to_be_bytes()
        .into_iter()
        .skip_while(|b| *b == 0)
        .collect();
    if bytes.first().is_none_or(|b| b & 0x80 != 0) {
        bytes.insert(0, 0);
    }
    tlv(tag, &bytes)
}

/// An element: its tag, its value, and how many bytes it took with its header.
pub type Element<'a> = (u8, &'a [u8], usize);

/// One element read from `bytes`; `None` if `bytes` ends before it does.
pub fn read(bytes: &[u8]) -> Result<Option<Element<'_>>, String> {
    let (Some(&tag), Some(&first)) = (bytes.first(), bytes.get(1)) else {
        return Ok(None);
    };
    let (len, header) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(format!("a BER length of {n} bytes"));
        }
        let Some(len_bytes) = bytes.get(2..2 + n) else {
            return Ok(None);
        };
        let len = len_bytes
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, 2 + n)
    };
    match bytes.get(header..header + len) {
        Some(value) => Ok(Some((tag, value, header + len))),
        None => Ok(None),
    }
}

/// The elements of a constructed value, in order.
pub fn elements(mut value: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let mut out = Vec::new();
    while !value.is_empty() {
        let (tag, inner, used) = read(value)?.ok_or_else(|| "an element cut short".to_string())?;
        out.push((tag, inner));
        value = &value[used..];
    }
    Ok(out)
}

/// A small non-negative INTEGER's value.
pub fn number(value: &[u8]) -> u32 {
    value
        .iter()
        .take(4)
        .fold(0u32, |acc, b| (acc << 8) | u32::from(*b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_short_and_long_round_trip() {
        assert_eq!(tlv(0x04, b"ab"), [0x04, 2, b'a', b'b']);
        let long = tlv(0x04, &[7; 300]);
        assert_eq!(&long[..4], [0x04, 0x82, 0x01, 0x2c]);
        let (tag, value, used) = read(&long).unwrap().unwrap();
        assert_eq!((tag, value.len(), used), (0x04, 300, 304));
        assert_eq!(read(&long[..100]).unwrap(), None);
        assert_eq!(integer(0x02, 3), [0x02, 1, 3]);
        assert_eq!(integer(0x02, 200), [0x02, 2, 0, 200]);
        assert_eq!(number(&[1, 0]), 256);
        assert!(read(&[0x30, 0x85, 0, 0, 0, 0, 1]).is_err());
    }
}
