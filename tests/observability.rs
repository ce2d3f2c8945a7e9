//! `deploy/observability/`: every metric the Grafana dashboard and the alert
//! rules name is one a running gate exports, under the name Prometheus stores
//! it as (counters `_total`, histograms `_bucket`/`_sum`/`_count`), and every
//! label they match on is one those series carry. Renaming a metric or a label
//! without updating the dashboard and the rules fails here.
//! (`promtool check rules` / `test rules` check the PromQL itself:
//! scripts/validate-deploy.)

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;

/// Labels Prometheus attaches at scrape time, not the binary.
const TARGET_LABELS: [&str; 2] = ["job", "instance"];

fn observability_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/observability")
}

/// The shipped files whose names end with `suffix`, sorted.
fn shipped(suffix: &str) -> Vec<(String, String)> {
    let mut files: Vec<_> = std::fs::read_dir(observability_dir())
        .expect("deploy/observability exists")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.to_string_lossy().ends_with(suffix))
        .map(|path| {
            let text = std::fs::read_to_string(&path).expect("read shipped file");
            (path.display().to_string(), text)
        })
        .collect();
    files.sort();
    files
}

// ---- the exposition ------------------------------------------------------------

/// One scrape: family types (from `# TYPE`) and the samples.
#[derive(Debug, Default)]
struct Exposition {
    types: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

#[derive(Debug, PartialEq, Eq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: String,
}

impl Exposition {
    fn parse(text: &str) -> Exposition {
        let mut out = Exposition::default();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').expect("# TYPE name type");
                out.types.insert(name.to_string(), kind.to_string());
            } else if line.starts_with('#') || line.is_empty() {
                continue;
            } else {
                out.samples.push(parse_sample(line));
            }
        }
        out
    }

    /// Every series name a query can select after Prometheus scraped this:
    /// the samples seen, plus the names each declared family gets once it has
    /// a child (a labelled family shows only `# TYPE` until then).
    fn series_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.samples.iter().map(|s| s.name.clone()).collect();
        for (family, kind) in &self.types {
            let suffixes: &[&str] = match kind.as_str() {
                "counter" => &["_total", "_created"],
                "histogram" | "gaugehistogram" => &["_bucket", "_sum", "_count", "_created"],
                "summary" => &["", "_sum", "_count", "_created"],
                "info" => &["_info"],
                _ => &[""],
            };
            names.extend(suffixes.iter().map(|s| format!("{family}{s}")));
        }
        names
    }

    /// Label names of the samples of `series` (`None`: no sample to tell).
    fn label_names(&self, series: &str) -> Option<BTreeSet<String>> {
        let mut found = None;
        for sample in self.samples.iter().filter(|s| s.name == series) {
            found
                .get_or_insert_with(BTreeSet::new)
                .extend(sample.labels.keys().cloned());
        }
        found
    }

    fn has_sample(&self, series: &str, labels: &[(&str, &str)], value: &str) -> bool {
        let want = Sample {
            name: series.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: value.to_string(),
        };
        self.samples.contains(&want)
    }
}

/// `name{a="x",b="y"} value`; label values are unescaped.
fn parse_sample(line: &str) -> Sample {
    let name_end = line.find(['{', ' ']).expect("sample line has a value");
    let name = line[..name_end].to_string();
    let mut labels = BTreeMap::new();
    if line[name_end..].starts_with('{') {
        let mut chars = line[name_end + 1..].chars();
        loop {
            let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
            let key = key.trim_start_matches(',').trim().to_string();
            if key.is_empty() || key.starts_with('}') {
                break;
            }
            assert_eq!(chars.next(), Some('"'), "quoted label value in {line}");
            let mut value = String::new();
            loop {
                match chars.next().expect("closing quote") {
                    '"' => break,
                    '\\' => match chars.next().expect("escaped char") {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            }
            labels.insert(key, value);
            match chars.next() {
                Some(',') => continue,
                Some('}') => break,
                other => panic!("unexpected {other:?} after a label in {line}"),
            }
        }
    }
    let value = line.rsplit(' ').next().unwrap_or_default().to_string();
    Sample {
        name,
        labels,
        value,
    }
}

// ---- what the dashboard and the rules ask for ------------------------------------

/// A metric named in a query, with the labels its selector matches on.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reference {
    metric: String,
    matched_labels: BTreeSet<String>,
    source: String,
}

/// The `sessiongate_*` metric names of a PromQL expression (outside string
/// literals), each with the label names of its `{...}` matchers.
fn references(expr: &str, source: &str) -> Vec<Reference> {
    let chars: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = skip_string(&chars, i);
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if !word.starts_with("sessiongate_") {
                continue;
            }
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            let mut matched_labels = BTreeSet::new();
            if chars.get(j) == Some(&'{') {
                let (labels, end) = matcher_labels(&chars, j + 1, expr);
                matched_labels = labels;
                i = end;
            }
            out.push(Reference {
                metric: word,
                matched_labels,
                source: source.to_string(),
            });
        } else {
            i += 1;
        }
    }
    out
}

/// Index just past the string literal that starts at `start`.
fn skip_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() && chars[i] != quote {
        if chars[i] == '\\' && quote != '`' {
            i += 1;
        }
        i += 1;
    }
    i + 1
}

/// Label names of the matchers from `start` (just after `{`) to the closing
/// `}`; returns them and the index after the `}`.
fn matcher_labels(chars: &[char], start: usize, expr: &str) -> (BTreeSet<String>, usize) {
    let mut labels = BTreeSet::new();
    let mut i = start;
    loop {
        while i < chars.len() && (chars[i].is_whitespace() || chars[i] == ',') {
            i += 1;
        }
        match chars.get(i) {
            Some('}') => return (labels, i + 1),
            None => panic!("unclosed selector in {expr}"),
            _ => {}
        }
        let name_start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
            i += 1;
        }
        let name: String = chars[name_start..i].iter().collect();
        assert!(!name.is_empty(), "label name expected in {expr}");
        labels.insert(name);
        while i < chars.len() && matches!(chars[i], ' ' | '=' | '!' | '~') {
            i += 1;
        }
        assert!(
            matches!(chars.get(i), Some('"' | '\'' | '`')),
            "quoted matcher value expected in {expr}"
        );
        i = skip_string(chars, i);
    }
}

/// Every query string of a Grafana dashboard: panel targets' `expr` and the
/// template variables' `query` / `definition`.
fn dashboard_queries(json: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
    match json {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                let here = format!("{path}.{key}");
                match (key.as_str(), value) {
                    ("expr" | "query" | "definition", serde_json::Value::String(q)) => {
                        out.push((here, q.clone()))
                    }
                    _ => dashboard_queries(value, &here, out),
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                dashboard_queries(item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// `(rule name, expr)` of every rule in a Prometheus rules file. Reads the
/// YAML by indentation (no YAML crate here): `expr:` is either a one-line
/// scalar or a `|` / `>` block; a rule without an `expr:` fails the test.
fn rule_exprs(yaml: &str, file: &str) -> Vec<(String, String)> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut rules: Vec<(String, Option<String>)> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start().trim_start_matches("- ");
        let indent = line.len() - line.trim_start().len();
        i += 1;
        if let Some(name) = trimmed
            .strip_prefix("alert:")
            .or_else(|| trimmed.strip_prefix("record:"))
        {
            rules.push((name.trim().to_string(), None));
        } else if let Some(value) = trimmed.strip_prefix("expr:") {
            let value = value.trim();
            let expr = if value.starts_with('|') || value.starts_with('>') {
                let mut block = Vec::new();
                while i < lines.len() {
                    let next = lines[i];
                    let next_indent = next.len() - next.trim_start().len();
                    if !next.trim().is_empty() && next_indent <= indent {
                        break;
                    }
                    block.push(next.trim());
                    i += 1;
                }
                block.join("\n")
            } else {
                value.trim_matches(|c| c == '"' || c == '\'').to_string()
            };
            let rule = rules
                .last_mut()
                .unwrap_or_else(|| panic!("{file}: expr: before any rule"));
            assert!(rule.1.is_none(), "{file}: two exprs in rule {}", rule.0);
            rule.1 = Some(expr);
        }
    }
    rules
        .into_iter()
        .map(|(name, expr)| {
            let expr = expr.unwrap_or_else(|| panic!("{file}: rule {name} has no expr: line"));
            assert!(
                !expr.trim().is_empty(),
                "{file}: rule {name} has an empty expr"
            );
            (name, expr)
        })
        .collect()
}

/// Every reference of the shipped dashboards and rules files.
fn shipped_references() -> Vec<Reference> {
    let mut refs = Vec::new();
    let dashboards = shipped(".dashboard.json");
    assert!(
        !dashboards.is_empty(),
        "no *.dashboard.json in deploy/observability"
    );
    for (file, text) in &dashboards {
        let json: serde_json::Value = serde_json::from_str(text).expect("dashboard is JSON");
        let mut queries = Vec::new();
        dashboard_queries(&json, "", &mut queries);
        let targets = queries
            .iter()
            .filter(|(path, _)| path.ends_with(".expr"))
            .count();
        assert!(targets >= 10, "{file}: only {targets} panel queries found");
        for (path, query) in queries {
            refs.extend(references(&query, &format!("{file} {path}")));
        }
    }
    let rule_files = shipped(".rules.yml");
    assert!(
        !rule_files.is_empty(),
        "no *.rules.yml in deploy/observability"
    );
    for (file, text) in &rule_files {
        let rules = rule_exprs(text, file);
        assert!(rules.len() >= 6, "{file}: only {} rules found", rules.len());
        for (name, expr) in rules {
            refs.extend(references(&expr, &format!("{file} rule {name}")));
        }
    }
    refs
}

/// `sessiongate_*` words anywhere in the files (titles, descriptions,
/// annotations), which may also name a family as `# TYPE` declares it.
fn words_in_prose() -> BTreeMap<String, String> {
    let mut words = BTreeMap::new();
    for (file, text) in shipped(".dashboard.json")
        .into_iter()
        .chain(shipped(".rules.yml"))
    {
        for word in text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("sessiongate_"))
        {
            words
                .entry(word.to_string())
                .or_insert_with(|| file.clone());
        }
    }
    words
}

// ---- the gate ------------------------------------------------------------------------

/// Scrape until `ready(text)` holds, or fail after a few seconds.
async fn scrape_until(gate: &Gate, what: &str, ready: impl Fn(&str) -> bool) -> String {
    let mut text = String::new();
    let found = eventually(Duration::from_secs(10), async || {
        text = gate.metrics().await;
        ready(&text)
    })
    .await;
    assert!(found, "no {what} in:\n{text}");
    text
}

/// Traffic that makes the labelled families the queries filter on appear.
async fn drive_traffic(gate: &Gate) {
    let forwarded = send(
        gate.addr,
        with_body(request("GET", gate.addr, "/api/info"), ""),
    )
    .await
    .expect("forwarded request");
    assert_eq!(forwarded.status(), 200);
    // No X-User-Id / X-Auth-Token: row 1, answered without asking anyone.
    let logout = send(
        gate.addr,
        with_body(
            request("POST", gate.addr, "/api/v1/sessions/logout")
                .header("content-type", "application/json"),
            r#"{"sessionId":"abc"}"#,
        ),
    )
    .await
    .expect("logout request");
    assert_eq!(logout.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_alerts_name_is_exported() {
    let refs = shipped_references();
    let redis = RedisServer::start();
    let upstream = FakeUpstream::start().await;
    let gate = Gate::start(
        GateOptions::new(&upstream.url(), &redis.url()).toml("[logout]\ndeny_delay_ms = 0"),
    )
    .await;
    drive_traffic(&gate).await;

    let text = scrape_until(&gate, "logout outcome", |text| {
        text.contains("sessiongate_logout_outcomes_total{")
    })
    .await;
    let exposition = Exposition::parse(&text);
    // Every metric a query selects is a series this scrape gives Prometheus.
    let series = exposition.series_names();
    let mut problems = BTreeSet::new();
    for r in &refs {
        if !series.contains(&r.metric) {
            let family_hint = ["_bucket", "_sum", "_count", "_total"]
                .iter()
                .find_map(|s| r.metric.strip_suffix(s))
                .and_then(|family| {
                    exposition
                        .types
                        .get(family)
                        .map(|t| format!(" ({family} is a {t})"))
                })
                .unwrap_or_default();
            problems.insert(format!(
                "{}: {} is not exported{family_hint}",
                r.source, r.metric
            ));
            continue;
        }
        // Labels it matches on exist on its samples (when it has some).
        let Some(known) = exposition.label_names(&r.metric) else {
            continue;
        };
        for label in &r.matched_labels {
            let ok = known.contains(label)
                || TARGET_LABELS.contains(&label.as_str())
                || (label == "le" && r.metric.ends_with("_bucket"));
            if !ok {
                problems.insert(format!(
                    "{}: {} has no label {label} (it has {known:?})",
                    r.source, r.metric
                ));
            }
        }
    }
    // Prose may name a family as declared (`# TYPE`), or a series.
    for (word, file) in words_in_prose() {
        if !series.contains(&word) && !exposition.types.contains_key(&word) {
            problems.insert(format!("{file}: mentions {word}, which is not exported"));
        }
    }
    assert!(
        problems.is_empty(),
        "dashboard/rules out of step with the binary:\n{}\n\nscrape:\n{text}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );

    // The traffic above, counted exactly.
    for (series, labels, value) in [
        (
            "sessiongate_requests_total",
            &[("route", "other"), ("status", "200")][..],
            "1",
        ),
        (
            "sessiongate_requests_total",
            &[("route", "sessions_logout"), ("status", "401")][..],
            "1",
        ),
        (
            "sessiongate_logout_outcomes_total",
            &[("outcome", "unauthorized")][..],
            "1",
        ),
        ("sessiongate_ready", &[][..], "1"),
        ("sessiongate_redis_up", &[][..], "1"),
    ] {
        assert!(
            exposition.has_sample(series, labels, value),
            "expected {series}{labels:?} {value} in:\n{text}"
        );
    }

    // And they do use what matters (a parser that finds nothing proves nothing).
    let used: BTreeSet<&str> = refs.iter().map(|r| r.metric.as_str()).collect();
    for needed in [
        "sessiongate_requests_total",
        "sessiongate_request_duration_seconds_bucket",
        "sessiongate_revoked_token_requests_total",
        "sessiongate_logout_outcomes_total",
        "sessiongate_redis_up",
        "sessiongate_redis_reconnects_total",
        "sessiongate_websockets_open",
        "sessiongate_websockets_closed_by_revocation_total",
        "sessiongate_revocation_propagation_seconds_bucket",
        "sessiongate_revoked_tokens",
        "sessiongate_upstream_errors_total",
        "sessiongate_ready",
    ] {
        assert!(used.contains(needed), "nothing queries {needed}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_gauge_is_zero_until_the_revoked_set_first_syncs() {
    // Redis is down when the gate starts: not ready, and the gauge says so.
    let mut redis = RedisServer::start();
    redis.kill();
    let upstream = FakeUpstream::start().await;
    let mut opts = GateOptions::new(&upstream.url(), &redis.url());
    opts.wait_ready = false;
    let gate = Gate::start(opts).await;
    let text = gate.metrics().await;
    assert!(text.contains("\nsessiongate_ready 0\n"), "{text}");
    assert!(text.contains("\nsessiongate_redis_up 0\n"), "{text}");
    assert_eq!(
        admin_get(gate.admin, "/readyz").await.map(|(s, _)| s),
        Ok(503)
    );

    // Redis comes back on the same port: the first sync turns both to 1.
    redis.restart();
    let text = scrape_until(&gate, "sessiongate_ready 1", |text| {
        text.contains("\nsessiongate_ready 1\n")
    })
    .await;
    assert!(text.contains("\nsessiongate_redis_up 1\n"), "{text}");
    assert_eq!(
        admin_get(gate.admin, "/readyz").await.map(|(s, _)| s),
        Ok(200)
    );
}

#[test]
fn the_reference_parser_sees_what_promql_selects() {
    let refs = references(
        r#"sum by (le) (rate(sessiongate_a_bucket{job=~"$job", route="sessiongate_not_a_metric"}[5m])) / sessiongate_b_total"#,
        "t",
    );
    let got: Vec<(&str, Vec<&str>)> = refs
        .iter()
        .map(|r| {
            (
                r.metric.as_str(),
                r.matched_labels.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            ("sessiongate_a_bucket", vec!["job", "route"]),
            ("sessiongate_b_total", vec![]),
        ]
    );
    let rules = rule_exprs(
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sessiongate_x == 0\n        for: 1m\n      - alert: B\n        expr: |\n          sum(\n            sessiongate_y_total)\n        for: 1m\n",
        "t",
    );
    assert_eq!(
        rules,
        vec![
            ("A".to_string(), "sessiongate_x == 0".to_string()),
            ("B".to_string(), "sum(\nsessiongate_y_total)".to_string()),
        ]
    );
    let exposition = Exposition::parse(
        "# TYPE sessiongate_h histogram\n# TYPE sessiongate_c counter\nsessiongate_c_total{k=\"a\\\"b\"} 1\n# EOF\n",
    );
    assert_eq!(
        exposition.series_names().into_iter().collect::<Vec<_>>(),
        [
            "sessiongate_c_created",
            "sessiongate_c_total",
            "sessiongate_h_bucket",
            "sessiongate_h_count",
            "sessiongate_h_created",
            "sessiongate_h_sum",
        ]
    );
    assert_eq!(
        exposition.samples[0].labels.get("k").map(String::as_str),
        Some("a\"b")
    );
    assert_eq!(exposition.samples[0].value, "1");
}
