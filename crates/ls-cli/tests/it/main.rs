//! The integration tests of the `litestream` binary: one test binary, a module per topic.

mod cloud;
mod compat;
mod config;
mod crash;
mod faults;
mod hardening;
mod help;
mod listing;
mod replicate;
mod restore;
mod support;
