//! Integration tests of the `memcached` probe (being written).
