//! Integration tests of the `dns` probe (being written).
