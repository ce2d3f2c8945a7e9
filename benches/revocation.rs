//! Revocation figures: propagation delay between two replicas through a real
//! private redis-server, the memory of 1,000,000 revoked entries, and the
//! hot-path cost of the revoked check with an empty and a full set.
//!
//! `cargo bench --bench revocation` runs the full sizes (1,000 revocations,
//! 1,000,000 entries). Under `cargo test` it runs a few-second smoke with small
//! sizes so CI keeps it working without judging figures.

#[path = "../tests/common/procfs.rs"]
mod procfs;
#[path = "../tests/common/redis_server.rs"]
mod redis_server;

use std::time::{Duration, Instant};

use sessiongate::auth::{decode_hash, encode_hash, hash_token};
use sessiongate::clock;
use sessiongate::revocation::RevokedSet;
use sessiongate::store::{FeedEvent, RedisOptions, SessionRecord, Store};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (revocations, entries, lookups) = if full {
        (1_000, 1_000_000, 5_000_000)
    } else {
        (50, 20_000, 100_000)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let lines = [
        runtime.block_on(propagation(revocations)),
        memory(entries),
        hot_path(entries, lookups),
    ];
    for line in &lines {
        println!("{line}");
    }
    // bench/run folds this section into bench/RESULTS.md.
    if let Ok(path) = std::env::var("BENCH_REVOCATION_OUT") {
        let mut text = String::from(
            "### Revocation (cargo bench --bench revocation; real redis-server, release build)\n\n",
        );
        for line in &lines {
            text.push_str(&format!("- {line}\n"));
        }
        std::fs::write(&path, text).expect("write BENCH_REVOCATION_OUT");
    }
}

/// Replica A revokes through the store (the same Lua script as the logout
/// endpoint); replica B follows the feed into its own RevokedSet. The delay is
/// from just before A's call to the moment B's set contains the hash.
async fn propagation(count: usize) -> String {
    let redis = redis_server::RedisServer::start();
    let options = RedisOptions {
        url: redis.url(),
        ..RedisOptions::default()
    };
    let a = Store::redis(options.clone()).expect("store A");
    let b = Store::redis(options).expect("store B");
    let set_b = RevokedSet::new();
    let mut feed = b.revocation_feed();
    match feed.recv().await {
        Some(FeedEvent::Snapshot(_)) => {}
        other => panic!("expected a snapshot first, got {other:?}"),
    }
    let follower = {
        let set_b = set_b.clone();
        tokio::spawn(async move {
            while let Some(event) = feed.recv().await {
                if let FeedEvent::Revoked {
                    hash,
                    expires_at_secs,
                    ..
                } = event
                {
                    set_b.insert(&hash, expires_at_secs);
                }
            }
        })
    };
    let mut delays = Vec::with_capacity(count);
    for i in 0..count {
        let token = format!("bench-token-{i}");
        let id = format!("benchSession{i:05}");
        let hash = hash_token(&token);
        a.add_session(&SessionRecord {
            id: id.clone(),
            user_id: "bench".into(),
            token_hash: encode_hash(&hash),
            ip: None,
            user_agent: None,
            device: None,
            login_at_ms: clock::unix_ms(),
            logout_at_ms: None,
            logout_by: None,
        })
        .await
        .expect("add session");
        let start = Instant::now();
        a.revoke_session(&id, "bench", 86_400, clock::unix_ms())
            .await
            .expect("revoke")
            .expect("revoked");
        while !set_b.contains(&hash) {
            tokio::task::yield_now().await;
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "revocation {i} never arrived"
            );
        }
        delays.push(start.elapsed());
    }
    follower.abort();
    delays.sort();
    let pct = |p: f64| delays[((delays.len() as f64 * p) as usize).min(delays.len() - 1)];
    format!(
        "propagation A→B over {count} revocations (revoke round trip + publish + apply): p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        delays[delays.len() - 1].as_secs_f64() * 1e3
    )
}

fn filled(entries: usize) -> RevokedSet {
    let set = RevokedSet::new();
    for i in 0..entries {
        set.insert(&hash_token(&format!("revoked-{i}")), u32::MAX);
    }
    set
}

fn memory(entries: usize) -> String {
    let before = procfs::rss_kib(std::process::id());
    let set = filled(entries);
    let after = procfs::rss_kib(std::process::id());
    assert_eq!(set.len(), entries);
    format!(
        "memory: {entries} revoked entries hold {:.1} MiB of RSS ({:.1} bytes/entry)",
        (after.saturating_sub(before)) as f64 / 1024.0,
        (after.saturating_sub(before)) as f64 * 1024.0 / entries as f64
    )
}

fn hot_path(entries: usize, lookups: usize) -> String {
    let probes: Vec<_> = (0..1024)
        .map(|i| hash_token(&format!("live-{i}")))
        .collect();
    let measure = |set: &RevokedSet| {
        let start = Instant::now();
        let mut hits = 0usize;
        for i in 0..lookups {
            hits += usize::from(set.contains(&probes[i % probes.len()]));
        }
        assert_eq!(hits, 0);
        start.elapsed().as_nanos() as f64 / lookups as f64
    };
    let empty = RevokedSet::new();
    let full = filled(entries);
    let token_hash = {
        let start = Instant::now();
        for i in 0..lookups / 10 {
            std::hint::black_box(hash_token(std::hint::black_box(
                &"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"[..(i % 3) + 40],
            )));
        }
        start.elapsed().as_nanos() as f64 / (lookups / 10) as f64
    };
    // Keep the decode path exercised too.
    assert!(decode_hash(&encode_hash(&probes[0])).is_some());
    format!(
        "hot path: contains() {:.1} ns on an empty set, {:.1} ns with {entries} entries; sha256 of a 43-byte token {:.1} ns",
        measure(&empty),
        measure(&full),
        token_hash
    )
}
