//! Websocket and DDP wire formats, pure (no I/O): what the enforcing tunnel
//! ([`crate::tunnel`]) and the SockJS/REST body inspection read.
//!
//! - [`frame`]: RFC 6455 framing.
//! - [`ddp`]: DDP / SockJS message inspection and rewriting.

pub mod ddp;
pub mod frame;
