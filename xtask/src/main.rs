//! `cargo xtask`: the project's developer and CI tasks, in plain Rust.

fn main() {}
