//! The usual world: one gate on a private Redis, in front of a fake upstream.

use super::{FakeUpstream, Gate, GateOptions, RedisServer};

/// A gate, its Redis and its upstream; all stop on drop.
pub struct World {
    pub redis: RedisServer,
    pub upstream: FakeUpstream,
    pub gate: Gate,
}

impl World {
    /// An in-process gate with no logout deny delay; `logout` lines go under
    /// `[logout]` and may be followed by whole sections.
    pub async fn start(logout: &str) -> World {
        World::launch(logout, &[], false).await
    }

    /// [`World::start`] with extra environment variables for the gate.
    pub async fn start_with_env(logout: &str, env: &[(&str, &str)]) -> World {
        World::launch(logout, env, false).await
    }

    /// [`World::start`] with the real binary (see [`GateOptions::binary`]).
    pub async fn binary(logout: &str) -> World {
        World::launch(logout, &[], true).await
    }

    async fn launch(logout: &str, env: &[(&str, &str)], binary: bool) -> World {
        let redis = RedisServer::start();
        let upstream = FakeUpstream::start().await;
        let mut opts = GateOptions::new(&upstream.url(), &redis.url())
            .toml(&format!("[logout]\ndeny_delay_ms = 0\n{logout}"));
        opts.binary = binary;
        opts.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let gate = Gate::start(opts).await;
        World {
            redis,
            upstream,
            gate,
        }
    }
}
