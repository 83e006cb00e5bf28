//! Simulated live market (being written).
