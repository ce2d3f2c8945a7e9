//! `sessiongate demo` as a newcomer runs it: start it, run every printed curl
//! command in order with a real `curl`, and compare with what it said each
//! would answer. Ctrl-C (SIGINT) exits cleanly.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[tokio::test(flavor = "multi_thread")]
async fn every_printed_curl_command_answers_as_printed() {
    assert!(
        Command::new("curl").arg("--version").output().is_ok(),
        "curl is needed for this test (CI installs it)"
    );
    let listen = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(bin())
        .args(["demo", "--listen", &listen, "--admin-listen", &admin])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the demo");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Read the walkthrough until its last line.
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !lines
        .iter()
        .any(|l: &String| l.contains("Ctrl-C stops the demo"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("demo did not print its walkthrough: {lines:?}"),
        }
    }

    let mut steps = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("curl ") {
            let expected = lines
                .get(i + 1)
                .and_then(|l| l.trim().strip_prefix("-> "))
                .expect("each curl line is followed by its answer");
            let (status, body) = expected.split_once(' ').expect("status and body");
            steps.push((line.clone(), status.to_string(), body.to_string()));
        }
    }
    assert!(steps.len() >= 3, "at least three curl commands: {lines:?}");
    for (command, status, body) in &steps {
        assert!(
            !command.contains('|') && !command.contains('<'),
            "no pipes or placeholders: {command}"
        );
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{command} -w '\\n%{{http_code}}'"))
            .output()
            .expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (got_body, got_status) = text.rsplit_once('\n').unwrap_or(("", text.as_str()));
        assert_eq!(
            (got_status, got_body),
            (status.as_str(), body.as_str()),
            "{command}"
        );
    }

    // Ctrl-C exits cleanly.
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "demo did not exit on SIGINT");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "demo exit status {status}");
}
