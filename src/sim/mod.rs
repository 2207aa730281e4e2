//! Simulated operator endpoints (being written).
