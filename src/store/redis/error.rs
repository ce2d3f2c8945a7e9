//! Redis failures in the store's terms: which [`StoreError`] a failure is, and
//! whether the connection that produced it must be dropped.

use ::redis::{ErrorKind, RedisError, ServerErrorKind};

use crate::store::record::StoreError;

pub(super) fn unavailable(message: &str) -> StoreError {
    StoreError::Unavailable(message.to_owned())
}

pub(super) fn corrupt(message: &str) -> StoreError {
    StoreError::Corrupt(message.to_owned())
}

pub(super) fn config(message: &str) -> StoreError {
    StoreError::Config(message.to_owned())
}

/// A redis error in words. Redis errors never echo AUTH arguments.
pub(super) fn describe(e: &RedisError) -> String {
    e.to_string()
}

/// Map a Redis error to the store's, and say whether the connection should be
/// dropped (it may be dead, or point at a demoted master).
pub(super) fn classify(e: &RedisError) -> (StoreError, bool) {
    let text = describe(e);
    match e.kind() {
        ErrorKind::Parse | ErrorKind::UnexpectedReturnType => (StoreError::Corrupt(text), false),
        ErrorKind::Server(ServerErrorKind::ReadOnly | ServerErrorKind::MasterDown) => {
            (StoreError::Unavailable(text), true)
        }
        _ if e.code() == Some("WRONGTYPE") || text.contains("user_script") => {
            (StoreError::Corrupt(text), false)
        }
        _ => {
            let reconnect = e.is_io_error()
                || e.is_connection_dropped()
                || e.is_unrecoverable_error()
                || e.is_timeout()
                || e.is_connection_refusal();
            (StoreError::Unavailable(text), reconnect)
        }
    }
}
