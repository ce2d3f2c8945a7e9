//! sessiongate: a reverse-proxy enforcement sidecar for Rocket.Chat-compatible
//! chat servers.
#![forbid(unsafe_code)]

pub mod auth;
pub mod revocation;
pub mod ws;
