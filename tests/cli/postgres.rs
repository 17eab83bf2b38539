//! Integration tests of the `postgres` probe (being written).
