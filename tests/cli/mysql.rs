//! Integration tests of the `mysql` probe (being written).
