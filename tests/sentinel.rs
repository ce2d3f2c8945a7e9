//! Sentinels protected apart from the data nodes: `redis.sentinel_password`
//! (and `sentinel_username`) authenticate to the Sentinels, the URL's
//! credentials to the data nodes.

use crate::common;

use std::time::Duration;

use common::redis_server::ServerConfig;
use common::*;
use sessiongate::store::{RedisOptions, Store};

fn options(url: &str, sentinel_auth: Option<(Option<String>, String)>) -> RedisOptions {
    RedisOptions {
        url: url.to_owned(),
        command_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        sentinel_auth,
        ..RedisOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sentinels_with_their_own_password_are_reached_with_sentinel_password() {
    // The data node wants one password, the Sentinel another.
    let master = RedisServer::start_with(ServerConfig {
        args: vec!["--requirepass".into(), "data-pw".into()],
        ..ServerConfig::default()
    });
    let sentinel = RedisServer::start_with(ServerConfig {
        sentinel_of: Some(("mymaster".into(), master.port())),
        args: vec!["--requirepass".into(), "sentinel-pw".into()],
        ..ServerConfig::default()
    });
    // The Sentinel needs the data node's password to monitor it.
    let set = sentinel.cmd_auth(
        "sentinel-pw",
        &["SENTINEL", "SET", "mymaster", "auth-pass", "data-pw"],
    );
    assert_eq!(set.text(), Some("OK"), "{set:?}");
    let url = format!(
        "redis+sentinel://:data-pw@127.0.0.1:{}/mymaster/0",
        sentinel.port()
    );

    let store = Store::redis(options(&url, Some((None, "sentinel-pw".into())))).expect("options");
    store
        .ping()
        .await
        .expect("reached through the protected Sentinel");

    // Without it the Sentinel refuses the lookup.
    let refused = Store::redis(options(&url, None)).expect("options");
    assert!(refused.ping().await.is_err());
    let wrong = Store::redis(options(&url, Some((None, "nope".into())))).expect("options");
    assert!(wrong.ping().await.is_err());

    // Sentinel credentials with a URL that is not a Sentinel one are refused
    // at once, naming the key (they would be silently unused).
    let misplaced = Store::redis(options(
        &format!("redis://127.0.0.1:{}/0", master.port()),
        Some((None, "sentinel-pw".into())),
    ))
    .expect_err("refused");
    assert!(
        misplaced.to_string().contains("redis.sentinel_password"),
        "{misplaced}"
    );
}
