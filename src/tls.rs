//! Process-wide rustls setup, shared by the listener, the upstream client and
//! Redis connections.

/// Two crypto providers are compiled in (ring via rustls, aws-lc-rs via
/// redis); rustls needs one chosen before any config is built.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
