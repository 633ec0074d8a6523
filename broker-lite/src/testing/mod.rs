//! Helpers for tests, here and in the workspace's end-to-end tests; built only
//! with the `testing` feature (never in the broker itself).

pub mod pki;
