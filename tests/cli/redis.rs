//! Integration tests of the `redis` probe (being written).
