//! Placeholder until the private redis-server harness lands.
#![allow(dead_code)]
pub struct RedisServer;
