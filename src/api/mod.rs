//! Endpoints the gate answers itself.

pub mod body;
pub mod error;
pub mod logout;

pub use logout::LogoutApi;
