//! Shared pieces of the Thoth binaries.
