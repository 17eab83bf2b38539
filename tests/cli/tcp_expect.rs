//! Integration tests of the `tcp_expect` probe (being written).
