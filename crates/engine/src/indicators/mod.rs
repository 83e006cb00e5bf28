//! Streaming indicators (being written).
