//! The tunnel driven end to end over in-memory sockets: the test plays the
//! browser on one side and the chat server on the other.

use super::*;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};
use tokio::task::JoinHandle;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;

const MASK: [u8; 4] = [0x12, 0x34, 0x56, 0x78];
const WAIT: Duration = Duration::from_secs(2);
/// The revocation promise: a revoked socket is closed well within this.
const PROMPT: Duration = Duration::from_secs(1);

/// The test plays the browser on `client` and the chat server on `upstream`.
struct Harness {
    client: DuplexStream,
    upstream: DuplexStream,
    shutdown: CancellationToken,
    task: JoinHandle<TunnelEnd>,
}

fn start(cfg: TunnelConfig, revoked: &RevokedSet) -> Harness {
    let (client, client_gate) = duplex(1 << 20);
    let (upstream_gate, upstream) = duplex(1 << 20);
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(tunnel(
        client_gate,
        upstream_gate,
        cfg,
        revoked.clone(),
        shutdown.clone(),
    ));
    Harness {
        client,
        upstream,
        shutdown,
        task,
    }
}

fn with_cookie(token: &str) -> TunnelConfig {
    TunnelConfig {
        cookie_token: Some(hash_token(token)),
        ..TunnelConfig::default()
    }
}

fn revoke(revoked: &RevokedSet, token: &str) {
    revoked.insert(&hash_token(token), u32::MAX);
}

/// The next message the upstream receives must be `login(call_id, decoy)`
/// with a decoy as long as `token`; returns the decoy.
async fn expect_decoy_login(upstream: &mut DuplexStream, call_id: &str, token: &str) -> String {
    let (header, payload) = next_frame(upstream).await;
    assert!(header.mask.is_some(), "re-encoded client frames are masked");
    let text = String::from_utf8(payload).unwrap();
    assert!(
        !text.contains(token),
        "the revoked token went upstream: {text}"
    );
    let expected_shape = login(call_id, &"?".repeat(token.len()));
    assert_eq!(text.len(), expected_shape.len(), "{text}");
    let logins = ddp::resume_logins(&text, false);
    assert_eq!(logins.len(), 1, "{text}");
    assert_eq!(logins[0].call_id, call_id);
    assert_eq!(logins[0].token.len(), token.len());
    assert_eq!(text, login(call_id, &logins[0].token));
    logins[0].token.clone()
}

fn login(call_id: &str, token: &str) -> String {
    format!(
        r#"{{"msg":"method","method":"login","params":[{{"resume":"{token}"}}],"id":"{call_id}"}}"#
    )
}

fn masked(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    frame::encode_frame(opcode, payload, Some(MASK))
}

/// A masked frame without FIN (a fragment that more frames follow).
fn fragment(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let mut bytes = masked(opcode, payload);
    bytes[0] &= 0x7F;
    bytes
}

fn server_frame(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    frame::encode_frame(opcode, payload, None)
}

/// Read one whole frame; the payload comes back unmasked.
async fn next_frame(stream: &mut DuplexStream) -> (FrameHeader, Vec<u8>) {
    tokio::time::timeout(WAIT, async {
        let mut head = Vec::new();
        let header = loop {
            if let Some(header) = frame::parse_header(&head).expect("a valid header") {
                break header;
            }
            head.push(stream.read_u8().await.expect("a header byte"));
        };
        let mut payload = vec![0; header.payload_len as usize];
        stream.read_exact(&mut payload).await.expect("the payload");
        if let Some(key) = header.mask {
            frame::apply_mask(&mut payload, key, 0);
        }
        (header, payload)
    })
    .await
    .expect("a frame in time")
}

async fn expect_close(stream: &mut DuplexStream, code: u16) {
    let (header, payload) = next_frame(stream).await;
    assert_eq!(header.opcode, OpCode::Close);
    assert_eq!(frame::close_code(&payload), Some(code));
}

async fn expect_eof(stream: &mut DuplexStream) {
    let mut rest = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut rest))
        .await
        .expect("EOF in time")
        .expect("a clean EOF");
    assert_eq!(rest, b"");
}

async fn ended(task: JoinHandle<TunnelEnd>) -> TunnelEnd {
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the tunnel ends in time")
        .expect("the tunnel task does not panic")
}

/// Proves the tunnel is still open and forwarding in both directions.
async fn assert_open(h: &mut Harness) {
    let ping = br#"{"msg":"ping","id":"p"}"#;
    h.client
        .write_all(&masked(OpCode::Text, ping))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut h.upstream).await.1, ping);
    let pong = br#"{"msg":"pong","id":"p"}"#;
    h.upstream
        .write_all(&server_frame(OpCode::Text, pong))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut h.client).await.1, pong);
}

#[tokio::test]
async fn frames_pass_through_byte_identical_both_ways() {
    let revoked = RevokedSet::new();
    let mut h = start(TunnelConfig::default(), &revoked);
    let sent = [
        masked(
            OpCode::Text,
            br#"{"msg":"connect","version":"1","support":["1"]}"#,
        ),
        masked(OpCode::Ping, b"hi"),
        masked(OpCode::Binary, &[0, 1, 2, 255]),
        fragment(OpCode::Text, &[b'x'; 300]),
        masked(OpCode::Continuation, &[b'y'; 70_000]),
    ]
    .concat();
    h.client.write_all(&sent).await.unwrap();
    let mut got = vec![0; sent.len()];
    h.upstream.read_exact(&mut got).await.unwrap();
    assert_eq!(got, sent);

    let back = [
        server_frame(OpCode::Text, br#"{"msg":"connected","session":"s1"}"#),
        server_frame(OpCode::Pong, b"hi"),
        server_frame(OpCode::Binary, &[7; 100_000]),
    ]
    .concat();
    h.upstream.write_all(&back).await.unwrap();
    let mut got = vec![0; back.len()];
    h.client.read_exact(&mut got).await.unwrap();
    assert_eq!(got, back);
    assert!(!h.task.is_finished());
}

#[tokio::test]
async fn real_websocket_peers_talk_and_close_through_the_tunnel() {
    let revoked = RevokedSet::new();
    let h = start(TunnelConfig::default(), &revoked);
    let mut browser = WebSocketStream::from_raw_socket(h.client, Role::Client, None).await;
    let mut server = WebSocketStream::from_raw_socket(h.upstream, Role::Server, None).await;

    browser
        .send(Message::text(login("1", "live")))
        .await
        .unwrap();
    let got = server.next().await.unwrap().unwrap();
    assert_eq!(got, Message::text(login("1", "live")));
    server.send(Message::text("echo")).await.unwrap();
    assert_eq!(
        browser.next().await.unwrap().unwrap(),
        Message::text("echo")
    );

    browser.close(None).await.unwrap();
    let seen = tokio::time::timeout(WAIT, server.next()).await.unwrap();
    assert!(matches!(seen, Some(Ok(Message::Close(_)))), "{seen:?}");
    // tungstenite sends its close reply on the next flush.
    server.flush().await.unwrap();
    let seen = tokio::time::timeout(WAIT, browser.next()).await.unwrap();
    assert!(matches!(seen, Some(Ok(Message::Close(_)))), "{seen:?}");
    drop(server);
    drop(browser);
    assert_eq!(ended(h.task).await, TunnelEnd::ClientClosed);
}

#[tokio::test]
async fn revoked_resume_login_goes_upstream_with_a_decoy_token() {
    let revoked = RevokedSet::new();
    revoke(&revoked, "dead-token");
    let mut h = start(TunnelConfig::default(), &revoked);

    h.client
        .write_all(&masked(OpCode::Text, login("7", "dead-token").as_bytes()))
        .await
        .unwrap();
    let first = expect_decoy_login(&mut h.upstream, "7", "dead-token").await;
    // The server answers the login itself; the gate writes nothing.
    let answer = r#"{"msg":"result","id":"7","error":{"error":403}}"#;
    h.upstream
        .write_all(&server_frame(OpCode::Text, answer.as_bytes()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut h.client).await.1, answer.as_bytes());
    // A second attempt gets a fresh decoy, and the socket stays open.
    h.client
        .write_all(&masked(OpCode::Text, login("8", "dead-token").as_bytes()))
        .await
        .unwrap();
    let again = expect_decoy_login(&mut h.upstream, "8", "dead-token").await;
    assert_ne!(first, again, "decoys are random");
    assert_open(&mut h).await;
    assert!(!h.task.is_finished());
}

#[tokio::test]
async fn sockjs_frame_keeps_every_message_and_only_its_revoked_token_changes() {
    let revoked = RevokedSet::new();
    revoke(&revoked, "dead-token");
    let mut h = start(TunnelConfig::default(), &revoked);
    let connect = r#"{"msg":"connect","version":"1","support":["1","pre2","pre1"]}"#;
    let sub = r#"{"msg":"sub","id":"s","name":"meteor.loginServiceConfiguration","params":[]}"#;
    let frame_text =
        ddp::sockjs_client_frame(&[connect.to_owned(), login("2", "dead-token"), sub.to_owned()]);
    h.client
        .write_all(&masked(OpCode::Text, frame_text.as_bytes()))
        .await
        .unwrap();

    let (header, payload) = next_frame(&mut h.upstream).await;
    assert_eq!(header.opcode, OpCode::Text);
    assert!(header.mask.is_some(), "re-encoded client frames are masked");
    let messages = ddp::sockjs_client_messages(&String::from_utf8(payload).unwrap()).unwrap();
    assert_eq!(messages.len(), 3);
    assert_eq!(messages[0], connect);
    assert_eq!(messages[2], sub);
    let logins = ddp::message_resume_logins(&messages[1]);
    assert_eq!(logins.len(), 1);
    assert_ne!(logins[0].token, "dead-token");
    assert_eq!(messages[1], login("2", &logins[0].token));
    assert_open(&mut h).await;
}

#[tokio::test]
async fn raw_ddp_is_inspected_whatever_the_path_suggested() {
    // sockjs-node serves raw DDP under /sockjs/websocket: the tunnel reads
    // every message both ways, so a plain login in a "SockJS" socket and a
    // SockJS frame in a "plain" socket are both caught.
    let revoked = RevokedSet::new();
    revoke(&revoked, "dead-token");
    let mut h = start(TunnelConfig::default(), &revoked);
    h.client
        .write_all(&masked(OpCode::Text, login("r", "dead-token").as_bytes()))
        .await
        .unwrap();
    expect_decoy_login(&mut h.upstream, "r", "dead-token").await;
    let framed = ddp::sockjs_client_frame(&[login("s", "dead-token")]);
    h.client
        .write_all(&masked(OpCode::Text, framed.as_bytes()))
        .await
        .unwrap();
    let (_, payload) = next_frame(&mut h.upstream).await;
    let text = String::from_utf8(payload).unwrap();
    assert!(!text.contains("dead-token"), "{text}");
    assert_eq!(ddp::resume_logins(&text, true).len(), 1);
}

#[tokio::test]
async fn fragmented_login_split_into_single_byte_reads_is_caught() {
    let revoked = RevokedSet::new();
    revoke(&revoked, "dead-token");
    let mut h = start(TunnelConfig::default(), &revoked);
    let text = login("9", "dead-token");
    let (a, rest) = text.as_bytes().split_at(20);
    let (b, c) = rest.split_at(25);
    let bytes = [
        fragment(OpCode::Text, a),
        masked(OpCode::Ping, b"keepalive"),
        fragment(OpCode::Continuation, b),
        masked(OpCode::Continuation, c),
    ]
    .concat();
    for byte in bytes {
        h.client.write_all(&[byte]).await.unwrap();
        tokio::task::yield_now().await;
    }

    // The ping goes ahead; the message follows whole, with a decoy.
    let (header, payload) = next_frame(&mut h.upstream).await;
    assert_eq!(
        (header.opcode, payload.as_slice()),
        (OpCode::Ping, &b"keepalive"[..])
    );
    expect_decoy_login(&mut h.upstream, "9", "dead-token").await;
    assert_open(&mut h).await;
}

#[tokio::test]
async fn binary_frame_login_is_caught_too() {
    let revoked = RevokedSet::new();
    revoke(&revoked, "dead-token");
    let mut h = start(TunnelConfig::default(), &revoked);
    h.client
        .write_all(&masked(OpCode::Binary, login("b", "dead-token").as_bytes()))
        .await
        .unwrap();
    let (header, _) = next_frame(&mut h.upstream).await;
    assert_eq!(header.opcode, OpCode::Binary, "the opcode is kept");
    assert_open(&mut h).await;
}

#[tokio::test]
async fn revoking_the_cookie_token_closes_with_1008_and_spares_other_sockets() {
    let revoked = RevokedSet::new();
    let victim = start(with_cookie("cookie-token"), &revoked);
    let mut bystander = start(with_cookie("other-token"), &revoked);
    let mut browser = WebSocketStream::from_raw_socket(victim.client, Role::Client, None).await;
    let mut victim_upstream = victim.upstream;

    revoke(&revoked, "cookie-token");
    let message = tokio::time::timeout(PROMPT, browser.next())
        .await
        .expect("closed within 1 s")
        .expect("a message")
        .expect("a clean close");
    let Message::Close(Some(close)) = message else {
        panic!("expected a close frame, got {message:?}");
    };
    assert_eq!(u16::from(close.code), 1008);
    assert_eq!(close.reason.as_str(), "session revoked");
    drop(browser);
    assert_eq!(
        tokio::time::timeout(PROMPT, victim.task)
            .await
            .unwrap()
            .unwrap(),
        TunnelEnd::Revoked
    );
    // The upstream is told too, then hung up on.
    expect_close(&mut victim_upstream, 1008).await;
    expect_eof(&mut victim_upstream).await;

    assert_open(&mut bystander).await;
    assert!(!bystander.task.is_finished());
}

#[tokio::test]
async fn revoking_a_token_learned_from_a_resume_login_closes_the_socket() {
    let revoked = RevokedSet::new();
    let mut h = start(TunnelConfig::default(), &revoked);
    let mut bystander = start(TunnelConfig::default(), &revoked);
    let sent = masked(OpCode::Text, login("1", "live-token").as_bytes());
    h.client.write_all(&sent).await.unwrap();
    let mut got = vec![0; sent.len()];
    h.upstream.read_exact(&mut got).await.unwrap();
    assert_eq!(got, sent, "an accepted login is forwarded unchanged");

    revoke(&revoked, "live-token");
    tokio::time::timeout(PROMPT, expect_close(&mut h.client, 1008))
        .await
        .expect("closed within 1 s");
    drop(h.client);
    assert_eq!(ended(h.task).await, TunnelEnd::Revoked);
    assert_open(&mut bystander).await;
}

#[tokio::test]
async fn revoking_a_token_the_server_granted_closes_the_socket() {
    let revoked = RevokedSet::new();
    let mut h = start(TunnelConfig::default(), &revoked);
    let result = r#"{"msg":"result","id":"1","result":{"id":"u1","token":"granted-token","tokenExpires":{"$date":1893456000000},"type":"password"}}"#;
    let frame_text = ddp::sockjs_server_frame(&[result.to_owned()]);
    h.upstream
        .write_all(&server_frame(OpCode::Text, frame_text.as_bytes()))
        .await
        .unwrap();
    assert_eq!(next_frame(&mut h.client).await.1, frame_text.as_bytes());

    revoke(&revoked, "granted-token");
    tokio::time::timeout(PROMPT, expect_close(&mut h.client, 1008))
        .await
        .expect("closed within 1 s");
    drop(h.client);
    assert_eq!(ended(h.task).await, TunnelEnd::Revoked);
}

#[tokio::test]
async fn an_already_revoked_cookie_token_closes_at_once() {
    let revoked = RevokedSet::new();
    revoke(&revoked, "cookie-token");
    let mut h = start(with_cookie("cookie-token"), &revoked);
    expect_close(&mut h.client, 1008).await;
    expect_eof(&mut h.client).await;
    drop(h.client);
    assert_eq!(ended(h.task).await, TunnelEnd::Revoked);
}

#[tokio::test]
async fn a_revocation_storm_closes_the_tunnel_of_its_token() {
    let revoked = RevokedSet::new();
    let mut h = start(with_cookie("cookie-token"), &revoked);
    assert_open(&mut h).await;
    // Thousands of other revocations first: they wake nobody here.
    for i in 0..5000 {
        revoke(&revoked, &format!("unrelated-{i}"));
    }
    revoke(&revoked, "cookie-token");
    tokio::time::timeout(PROMPT, expect_close(&mut h.client, 1008))
        .await
        .expect("closed within 1 s");
}

#[tokio::test]
async fn compressed_frame_is_refused_with_1002() {
    let revoked = RevokedSet::new();
    let mut h = start(TunnelConfig::default(), &revoked);
    let mut compressed = masked(OpCode::Text, b"\xf2\x48\xcd\xc9\xc9\x07\x00");
    compressed[0] |= 0x40; // RSV1
    h.client.write_all(&compressed).await.unwrap();
    expect_close(&mut h.client, 1002).await;
    drop(h.client);
    assert_eq!(
        ended(h.task).await,
        TunnelEnd::ProtocolError("reserved bits set without a negotiated extension")
    );
    // Nothing of the compressed frame reached the upstream.
    expect_close(&mut h.upstream, 1002).await;
    expect_eof(&mut h.upstream).await;
}

#[tokio::test]
async fn unmasked_client_frame_is_refused_with_1002() {
    let revoked = RevokedSet::new();
    let mut h = start(TunnelConfig::default(), &revoked);
    h.client
        .write_all(&server_frame(OpCode::Text, b"hello"))
        .await
        .unwrap();
    expect_close(&mut h.client, 1002).await;
    drop(h.client);
    assert_eq!(
        ended(h.task).await,
        TunnelEnd::ProtocolError("unmasked client frame")
    );
}

#[tokio::test]
async fn shutdown_closes_with_1001() {
    let revoked = RevokedSet::new();
    let mut h = start(TunnelConfig::default(), &revoked);
    assert_open(&mut h).await;
    h.shutdown.cancel();
    expect_close(&mut h.client, 1001).await;
    expect_close(&mut h.upstream, 1001).await;
    drop(h.client);
    assert_eq!(ended(h.task).await, TunnelEnd::Shutdown);
}

#[tokio::test]
async fn a_silent_tunnel_closes_with_1001_after_the_idle_timeout_and_traffic_keeps_it_open() {
    let revoked = RevokedSet::new();
    let idle = Duration::from_millis(300);
    let cfg = TunnelConfig {
        idle_timeout: Some(idle),
        ..TunnelConfig::default()
    };
    let mut h = start(cfg, &revoked);
    // Traffic every 100 ms, for three idle periods: still open.
    let started = tokio::time::Instant::now();
    let mut last_traffic = started;
    while started.elapsed() < idle * 3 {
        assert_open(&mut h).await;
        last_traffic = tokio::time::Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!h.task.is_finished());
    // Then silence: closed (1001) on both sides, never before the timeout.
    expect_close(&mut h.client, 1001).await;
    assert!(last_traffic.elapsed() >= idle);
    expect_close(&mut h.upstream, 1001).await;
    drop(h.client);
    assert_eq!(ended(h.task).await, TunnelEnd::Idle);
}

#[tokio::test]
async fn client_eof_is_passed_on_and_ends_the_tunnel() {
    let revoked = RevokedSet::new();
    let mut h = start(TunnelConfig::default(), &revoked);
    // Half a message, then the client vanishes: the half never goes up.
    h.client
        .write_all(&fragment(OpCode::Text, b"{\"msg\":"))
        .await
        .unwrap();
    drop(h.client);
    expect_eof(&mut h.upstream).await;
    drop(h.upstream);
    assert_eq!(ended(h.task).await, TunnelEnd::ClientClosed);
}

#[tokio::test]
async fn upstream_close_handshake_ends_the_tunnel() {
    let revoked = RevokedSet::new();
    let mut h = start(TunnelConfig::default(), &revoked);
    let close = frame::encode_close(1000, "bye", None);
    h.upstream.write_all(&close).await.unwrap();
    expect_close(&mut h.client, 1000).await;
    h.client
        .write_all(&frame::encode_close(1000, "", Some(MASK)))
        .await
        .unwrap();
    expect_close(&mut h.upstream, 1000).await;
    drop(h.upstream);
    expect_eof(&mut h.client).await;
    drop(h.client);
    assert_eq!(ended(h.task).await, TunnelEnd::UpstreamClosed);
}

#[tokio::test]
async fn message_over_the_inspect_limit_streams_through_unchanged() {
    let revoked = RevokedSet::new();
    let cfg = TunnelConfig {
        max_inspect_bytes: 64,
        ..TunnelConfig::default()
    };
    let mut h = start(cfg, &revoked);
    // Held at first, released once the second fragment crosses the limit.
    let sent = [
        fragment(OpCode::Text, &[b'a'; 40]),
        fragment(OpCode::Continuation, &[b'b'; 40]),
        masked(OpCode::Continuation, &[b'c'; 40]),
        masked(OpCode::Binary, &[9; 5000]),
    ]
    .concat();
    h.client.write_all(&sent).await.unwrap();
    let mut got = vec![0; sent.len()];
    h.upstream.read_exact(&mut got).await.unwrap();
    assert_eq!(got, sent);
    assert_open(&mut h).await;
}

fn small_limit() -> TunnelConfig {
    TunnelConfig {
        max_inspect_bytes: 64,
        ..TunnelConfig::default()
    }
}

fn padded_login(call_id: &str, token: &str) -> String {
    format!(
        r#"{{"msg":"method","method":"login","pad":"{}","params":[{{"resume":"{token}"}}],"id":"{call_id}"}}"#,
        "x".repeat(300)
    )
}

#[tokio::test]
async fn oversized_revoked_login_never_completes_upstream() {
    let revoked = RevokedSet::new();
    revoke(&revoked, "dead-token");
    let mut h = start(small_limit(), &revoked);
    let sent = masked(OpCode::Text, padded_login("1", "dead-token").as_bytes());
    h.client.write_all(&sent).await.unwrap();
    expect_close(&mut h.client, 1008).await;
    drop(h.client);
    assert_eq!(ended(h.task).await, TunnelEnd::Revoked);
    // The upstream got at most a cut-off prefix of the frame, then EOF.
    let mut got = Vec::new();
    tokio::time::timeout(WAIT, h.upstream.read_to_end(&mut got))
        .await
        .unwrap()
        .unwrap();
    assert!(got.len() < sent.len(), "the message was completed upstream");
    assert_eq!(got, sent[..got.len()]);
}

#[tokio::test]
async fn oversized_fragmented_sockjs_login_is_caught_across_the_limit() {
    let revoked = RevokedSet::new();
    revoke(&revoked, "dead-token");
    let mut h = start(small_limit(), &revoked);
    let text = ddp::sockjs_client_frame(&[padded_login("2", "dead-token")]);
    let pieces: Vec<&[u8]> = text.as_bytes().chunks(40).collect();
    let mut sent = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Text
        } else {
            OpCode::Continuation
        };
        if i + 1 == pieces.len() {
            sent.extend(masked(opcode, piece));
        } else {
            sent.extend(fragment(opcode, piece));
        }
    }
    for chunk in sent.chunks(7) {
        h.client.write_all(chunk).await.unwrap();
        tokio::task::yield_now().await;
    }
    expect_close(&mut h.client, 1008).await;
    drop(h.client);
    assert_eq!(ended(h.task).await, TunnelEnd::Revoked);
    let mut got = Vec::new();
    h.upstream.read_to_end(&mut got).await.unwrap();
    assert!(got.len() < sent.len(), "the message was completed upstream");
    assert_eq!(got, sent[..got.len()]);
}

#[tokio::test]
async fn oversized_live_login_streams_through_and_its_token_is_watched() {
    let revoked = RevokedSet::new();
    let mut h = start(small_limit(), &revoked);
    let sent = masked(OpCode::Text, padded_login("3", "live-token").as_bytes());
    h.client.write_all(&sent).await.unwrap();
    let mut got = vec![0; sent.len()];
    h.upstream.read_exact(&mut got).await.unwrap();
    assert_eq!(got, sent);

    revoke(&revoked, "live-token");
    tokio::time::timeout(PROMPT, expect_close(&mut h.client, 1008))
        .await
        .expect("closed within 1 s");
}
