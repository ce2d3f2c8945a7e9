//! sessiongate: a reverse-proxy enforcement sidecar for Rocket.Chat-compatible
//! chat servers.
//!
//! Module map:
//! - [`config`]: TOML + env + flags → validated `Config`
//! - [`app`]: wiring and lifecycle; [`server`]: listener, TLS, drain
//! - [`proxy`]: the forwarding pipeline; [`route`]: request classification
//! - [`api`]: the logout and device-management endpoints the gate answers itself
//! - [`capture`]: sessions learned from passing login traffic
//! - [`auth`], [`totp`]: identity, permissions, RFC 6238
//! - [`store`]: Redis (and in-memory) records; [`revocation`]: the revoked set
//! - [`ws`]: websocket inspection and enforcement
//! - [`admin`]: /healthz /readyz /metrics; [`demo`]: the zero-setup demo
#![forbid(unsafe_code)]

pub mod admin;
pub mod answers;
pub mod api;
pub mod app;
pub mod auth;
pub mod body;
pub mod capture;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod conn;
pub mod demo;
pub mod headers;
pub mod metrics;
pub mod proxy;
pub mod reload;
pub mod revocation;
pub mod route;
pub mod server;
pub mod store;
pub mod swap;
pub mod tls;
pub mod totp;
pub mod tunnel;
pub mod upstream;
pub mod verify;
pub mod ws;
