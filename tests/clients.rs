//! Real DDP client libraries from npm, driven through the gate (SPEC §11):
//! `ddp` (node-ddp) on `/websocket` and on sockjs-node's raw
//! `/sockjs/websocket`, and `sockjs-client` (the transport Meteor's own
//! client uses) over its websocket and xhr-polling transports. Each logs in
//! with a revoked resume token, then with a live one on the same connection.

use crate::common;

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn real_ddp_clients_see_the_servers_error_then_log_in_again_on_the_same_socket() {
    let Some(dir) = common::node::project("clients") else {
        return;
    };
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let gate = Gate::start(GateOptions::new(&upstream.url(), &redis.url())).await;
    let dead = "rA3dY7kK0vL2mN5pQ8sT1uW4xZ6bC9eF0gH3jJ6kM9n";
    let live = "lV1eE2tT3oO4kK5eE6nN7xX8yY9zZ0aA1bB2cC3dD4e";
    let dead_id = cli_ok(
        &gate,
        &["session", "add", "--user", "u1", &format!("--token={dead}")],
    );
    cli_ok(
        &gate,
        &["session", "add", "--user", "u1", &format!("--token={live}")],
    );
    // The legacy server still holds both tokens: only the gate knows better.
    upstream.hold_ddp_token("u1", dead);
    upstream.hold_ddp_token("u1", live);
    cli_ok(&gate, &["session", "revoke", dead_id.trim()]);
    gate.wait_revoked_tokens(1).await;

    let out = tokio::process::Command::new("node")
        .arg("ddp_clients.js")
        .args([&gate.addr.to_string(), "u1", dead, live])
        .current_dir(&dir)
        .output()
        .await
        .expect("run node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "a client scenario failed:\n{stdout}");
    let passed = stdout
        .lines()
        .filter(|l| l.contains(r#""ok":true"#))
        .count();
    assert_eq!(passed, 4, "{stdout}");

    assert!(
        !upstream.ever_saw(dead),
        "the revoked token reached the server"
    );
    let decoys = upstream
        .ddp_received()
        .iter()
        .filter(|m| m.contains(r#""resume""#) && !m.contains(live))
        .count();
    assert_eq!(decoys, 4, "one decoy login per scenario");
    assert!(
        upstream.seen_path("xhr_send").len() >= 3,
        "xhr-polling was used"
    );
}
