//! End-to-end test helpers: start processes, wait for ports.
