//! Wall-clock time as Unix seconds/milliseconds (Redis expiries, TOTP steps).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn unix_secs() -> u64 {
    unix_ms() / 1000
}

/// Unix seconds as stored in the revoked set (valid until 2106).
pub fn unix_secs_u32() -> u32 {
    u32::try_from(unix_secs()).unwrap_or(u32::MAX)
}
