//! Certificates renew without a restart: the listener's certificate and key
//! are re-read on SIGHUP and when the files change; new connections get the
//! new certificate, open ones keep working, and a broken new pair is refused
//! with one log line and a metric while the previous pair stays in use.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio_rustls::client::TlsStream;

/// A Redis nobody listens on: forwarding needs none.
const NO_REDIS: &str = "redis://127.0.0.1:1/0";

struct Pair {
    cert: rcgen::CertifiedKey,
}

impl Pair {
    fn new() -> Pair {
        Pair {
            cert: rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap(),
        }
    }

    fn der(&self) -> rustls_pki_types::CertificateDer<'static> {
        self.cert.cert.der().clone()
    }

    /// Replace the files as a Kubernetes Secret update or certbot would:
    /// write aside, then rename over.
    fn install(&self, dir: &std::path::Path) {
        for (name, text) in [
            ("cert.pem", self.cert.cert.pem()),
            ("key.pem", self.cert.key_pair.serialize_pem()),
        ] {
            let aside = dir.join(format!("{name}.new"));
            std::fs::write(&aside, text).unwrap();
            std::fs::rename(&aside, dir.join(name)).unwrap();
        }
    }
}

/// A TLS connection to the gate trusting every pair given; returns the stream
/// and the certificate the gate presented.
async fn connect(
    gate: &Gate,
    trusted: &[&Pair],
) -> (
    TlsStream<tokio::net::TcpStream>,
    rustls_pki_types::CertificateDer<'static>,
) {
    let trusted: Vec<_> = trusted.iter().map(|pair| pair.der()).collect();
    let tls = tls_connect(gate.addr, &trusted, &[]).await;
    let presented = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    (tls, presented)
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn http1(tls: TlsStream<tokio::net::TcpStream>) -> Sender {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn get(sender: &mut Sender, path: &str) -> u16 {
    sender.ready().await.expect("connection still open");
    let req = http::Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap();
    sender
        .send_request(req)
        .await
        .expect("answered")
        .status()
        .as_u16()
}

/// The certificate new connections get, polled until it is `want` or
/// `within` passes.
async fn presents(gate: &Gate, trusted: &[&Pair], want: &Pair, within: Duration) -> bool {
    eventually(within, async || {
        connect(gate, trusted).await.1 == want.der()
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn listener_certificate_reloads_on_sighup_and_on_change_and_keeps_the_old_one_when_broken() {
    let upstream = FakeUpstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (Pair::new(), Pair::new(), Pair::new());
    a.install(dir.path());
    let mut opts = GateOptions::new(&upstream.url(), NO_REDIS).toml(&format!(
        "[server]\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"",
        dir.path().join("cert.pem").display(),
        dir.path().join("key.pem").display()
    ));
    opts.wait_ready = false;
    let gate = Gate::start(opts.binary()).await;
    let all = [&a, &b, &c];

    let (tls, presented) = connect(&gate, &all).await;
    assert_eq!(presented, a.der());
    let mut open = http1(tls).await;
    assert_eq!(get(&mut open, "/before").await, 200);

    // SIGHUP: new connections get the new pair at once.
    b.install(dir.path());
    gate.signal("HUP");
    assert!(presents(&gate, &all, &b, Duration::from_secs(3)).await);
    // The connection made before keeps working.
    assert_eq!(get(&mut open, "/after-reload").await, 200);

    // A broken pair (a key that does not match) is refused: B stays.
    std::fs::write(dir.path().join("key.pem"), c.cert.key_pair.serialize_pem()).unwrap();
    gate.signal("HUP");
    let refused = eventually(Duration::from_secs(3), async || {
        gate.log()
            .contains("reload failed; keeping the previous one")
    })
    .await;
    assert!(refused, "{}", gate.log());
    let (_, presented) = connect(&gate, &all).await;
    assert_eq!(presented, b.der(), "the previous pair stays in use");
    let metrics = gate.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"sessiongate_tls_reloads_total{file="listener",outcome="error"}"#
        )
        .as_deref(),
        Some("1")
    );
    assert_eq!(
        metric(
            &metrics,
            r#"sessiongate_tls_reload_failing{file="listener"}"#
        )
        .as_deref(),
        Some("1")
    );
    assert_eq!(
        gate.log()
            .matches("reload failed; keeping the previous one")
            .count(),
        1,
        "one line per broken file"
    );

    // A good pair written without a signal is picked up by the file watch.
    c.install(dir.path());
    assert!(presents(&gate, &all, &c, Duration::from_secs(12)).await);
    let metrics = gate.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            r#"sessiongate_tls_reload_failing{file="listener"}"#
        )
        .as_deref(),
        Some("0")
    );
    assert_eq!(get(&mut open, "/still-open").await, 200);
}

/// An https upstream whose certificate the test can switch (new connections
/// get the new one).
async fn switchable_tls_upstream(
    first: &Pair,
) -> (u16, Arc<std::sync::RwLock<tokio_rustls::TlsAcceptor>>) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let acceptor = Arc::new(std::sync::RwLock::new(acceptor_for(first)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let current = acceptor.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = current.read().unwrap().clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                        Bytes::from_static(b"over tls"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (port, acceptor)
}

fn acceptor_for(pair: &Pair) -> tokio_rustls::TlsAcceptor {
    let key =
        rustls_pki_types::PrivateKeyDer::try_from(pair.cert.key_pair.serialize_der()).unwrap();
    let config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![pair.der()], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// `proxy.ca_file` is re-read too: after the upstream moves to a certificate
/// from another CA, the gate reaches it again as soon as the new CA bundle is
/// in place, without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn upstream_ca_bundle_reloads_without_a_restart() {
    let (x, y) = (Pair::new(), Pair::new());
    let (port, acceptor) = switchable_tls_upstream(&x).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("upstream-ca.pem");
    std::fs::write(&ca_path, x.cert.cert.pem()).unwrap();
    // A short pool idle time, so each step below dials a fresh connection.
    let mut opts = GateOptions::new(&format!("https://localhost:{port}"), NO_REDIS).toml(&format!(
        "[proxy]\nca_file = \"{}\"\npool_idle_timeout_ms = 50",
        ca_path.display()
    ));
    opts.wait_ready = false;
    let gate = Gate::start(opts.binary()).await;
    let status = async || {
        tokio::time::sleep(Duration::from_millis(200)).await;
        send(gate.addr, with_body(request("GET", gate.addr, "/ca"), ""))
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(status().await, 200);
    // The upstream now presents a certificate the gate's CA bundle does not know.
    *acceptor.write().unwrap() = acceptor_for(&y);
    assert_eq!(status().await, 502);
    let aside = dir.path().join("upstream-ca.pem.new");
    std::fs::write(&aside, y.cert.cert.pem()).unwrap();
    std::fs::rename(&aside, &ca_path).unwrap();
    gate.signal("HUP");
    let mut reached = false;
    for _ in 0..15 {
        if status().await == 200 {
            reached = true;
            break;
        }
    }
    assert!(reached, "{}", gate.log());
    assert_eq!(
        metric(
            &gate.metrics().await,
            r#"sessiongate_tls_reloads_total{file="upstream_ca",outcome="ok"}"#
        )
        .as_deref(),
        Some("1")
    );
}

/// `redis.tls_ca_file` is re-read too: a broken bundle is refused (the
/// previous one stays and the store keeps working); a good one is used from
/// the next connection.
#[tokio::test(flavor = "multi_thread")]
async fn redis_ca_bundle_reload_keeps_the_previous_one_when_broken() {
    use sessiongate::store::{RedisOptions, Store};
    let server = RedisServer::start_with(redis_server::ServerConfig {
        tls: true,
        ..redis_server::ServerConfig::default()
    });
    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("redis-ca.pem");
    std::fs::copy(server.ca_file(), &ca_path).unwrap();
    let store = Store::redis(RedisOptions {
        url: server.url(),
        tls_ca_file: Some(ca_path.clone()),
        command_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(2),
        ..RedisOptions::default()
    })
    .expect("options");
    store.ping().await.expect("reached over TLS");

    std::fs::write(&ca_path, "not a certificate\n").unwrap();
    let refused = store
        .reload_tls_ca()
        .expect_err("a broken bundle is refused");
    assert!(refused.to_string().contains("no certificate"), "{refused}");
    store
        .ping()
        .await
        .expect("the open connection is untouched");

    std::fs::copy(server.ca_file(), &ca_path).unwrap();
    store.reload_tls_ca().expect("a good bundle is taken");
    store.ping().await.expect("still reached");
}
