//! UDP driver (being written).
