//! Integration tests of the `file` probe (being written).
