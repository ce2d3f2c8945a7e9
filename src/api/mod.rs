//! Endpoints the gate answers itself: the logout endpoint and the
//! device-management family.

pub mod body;
pub mod devices;
pub mod logout;

pub use devices::DevicesApi;
pub use logout::LogoutApi;
