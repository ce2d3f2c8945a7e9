//! Revocation enforcement: the in-memory revoked set and its sync with the store.

pub mod set;
pub mod sync;

pub use set::RevokedSet;
