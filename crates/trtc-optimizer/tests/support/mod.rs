//! The graph generators shared by the property tests (not a test target by itself).

pub mod build;
pub mod generator;
pub mod siblings;
