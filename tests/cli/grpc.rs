//! Integration tests of the `grpc` probe (being written).
