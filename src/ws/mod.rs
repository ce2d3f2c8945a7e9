//! Websocket enforcement: the tunnel between an upgraded client socket and the
//! upstream, which refuses revoked DDP resume logins and closes sockets whose
//! token gets revoked (SPEC §3, §8).
//!
//! - [`frame`]: RFC 6455 framing, pure.
//! - [`ddp`]: DDP / SockJS message inspection, pure.
//! - [`pump`]: the tunnel itself.

pub mod ddp;
pub mod frame;
pub mod pump;

pub use pump::{TunnelConfig, TunnelEnd, tunnel};
