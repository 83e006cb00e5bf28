//! Limit order book (being written).
