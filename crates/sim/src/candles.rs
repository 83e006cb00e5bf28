//! Candle aggregation (being written).
