//! Revocation enforcement: the in-memory revoked set and its sync with the store.

pub mod set;

pub use set::RevokedSet;
