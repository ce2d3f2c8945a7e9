//! Every integration test in one binary: the crate and its dependencies are
//! linked once, not once per file. Each module is one behaviour; run one with
//! `cargo test --test integration logout::`.

mod common;

mod capture;
mod cli;
mod clients;
mod demo;
mod forwarding;
mod hostile;
mod logout;
mod observability;
mod revocation;
mod rolling;
mod routers;
mod sentinel;
mod store;
mod tls_reload;
