//! Framer benchmark.

fn main() {}
