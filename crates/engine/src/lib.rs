//! The deterministic trading core.

pub mod indicators;
