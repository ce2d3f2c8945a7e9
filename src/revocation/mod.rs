//! Revocation enforcement: the in-memory revoked set and its sync with the store.

pub mod memo;
pub mod set;
pub mod sync;
pub mod watch;

pub use memo::CleanMemo;
pub use set::RevokedSet;
pub use watch::{Signal, TokenWatch};
