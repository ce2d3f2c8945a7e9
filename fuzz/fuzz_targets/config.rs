//! Config parsing never panics, and a config it accepts can be served: the
//! values the server hands to tokio/hyper at startup are within their bounds.
//!
//! Input: the TOML text; when it contains a NUL byte, the part after it is the
//! value of one environment override chosen by the byte after the NUL.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use sessiongate::config::{Config, Overrides};

const ENV_KEYS: [&str; 8] = [
    "SESSIONGATE_LISTEN",
    "SESSIONGATE_REDIS_URL",
    "SESSIONGATE_SERVER_TRUSTED_PROXIES",
    "SESSIONGATE_SERVER_MAX_CONNECTIONS",
    "SESSIONGATE_REVOCATION_TOKEN_LIFETIME_DAYS",
    "SESSIONGATE_LOGOUT_VERIFY_UNKNOWN_TOKENS",
    "SESSIONGATE_LOG_LEVEL",
    "SESSIONGATE_TOTP_WINDOW",
];

fuzz_target!(|data: &[u8]| {
    let (text, env_part) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], data.get(i + 1..)),
        None => (data, None),
    };
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let mut env = BTreeMap::new();
    if let Some([key, value @ ..]) = env_part {
        if let Ok(value) = std::str::from_utf8(value) {
            env.insert(
                ENV_KEYS[usize::from(*key) % ENV_KEYS.len()].to_string(),
                value.to_string(),
            );
        }
    }
    match Config::from_toml_str(text, &env, &Overrides::default()) {
        Ok(cfg) => {
            // tokio's Semaphore::new panics past MAX_PERMITS (server::serve).
            assert!(cfg.server.max_connections <= tokio::sync::Semaphore::MAX_PERMITS);
            assert!(cfg.server.max_connections > 0);
            // Durations must survive `Instant::now() + d` in timers and SystemTime math.
            let far = std::time::Duration::from_secs(1 << 40);
            assert!(cfg.revocation.token_lifetime <= far, "token lifetime");
        }
        Err(e) => {
            // One line naming the key (check-config prints exactly this).
            let line = e.to_string();
            assert!(!line.contains('\n'), "multi-line error: {line:?}");
            assert!(!e.key.is_empty());
        }
    }
});
