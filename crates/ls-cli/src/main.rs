//! The `litestream` binary: a drop-in for Litestream 0.3.13's command line.

fn main() {}
