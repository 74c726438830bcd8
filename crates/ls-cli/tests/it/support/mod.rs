//! Helpers shared by the integration tests: the Litestream 0.3.13 fixtures and the binaries
//! that run them.

pub(crate) mod cli;
pub(crate) mod faultproxy;
pub(crate) mod fixtures;
pub(crate) mod replicate;
