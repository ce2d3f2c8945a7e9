//! The command-line interface as operators and scripts use it (SPEC §7, §8).

use crate::common;

use std::process::Command;

use common::*;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .env_remove("SESSIONGATE_TOTP_KEY")
        .env_remove("SESSIONGATE_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run sessiongate");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn check_config_prints_ok_for_a_valid_config() {
    let dir = tempfile::tempdir().unwrap();
    let key = write(&dir, "key", &format!("  {TEST_TOTP_KEY}\n"));
    let cfg = write(
        &dir,
        "c.toml",
        &format!("listen = \"127.0.0.1:8080\"\n[totp]\nkey_file = \"{key}\"\n"),
    );
    assert_eq!(
        run(&["check-config", "--config", &cfg], &[]),
        (0, "ok\n".into(), String::new())
    );
    // The shipped example is valid once a key is provided.
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml");
    assert_eq!(
        run(
            &["check-config", "--config", example],
            &[("SESSIONGATE_TOTP_KEY", TEST_TOTP_KEY)]
        ),
        (0, "ok\n".into(), String::new())
    );
}

#[test]
fn check_config_reports_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = write(&dir, "key", TEST_TOTP_KEY);
    let bad_key = write(&dir, "badkey", "not-hex");
    let cases = [
        (
            format!("listen = \"nope\"\n[totp]\nkey_file = \"{key}\""),
            "listen",
        ),
        (
            format!("upstream = \"ftp://x\"\n[totp]\nkey_file = \"{key}\""),
            "upstream",
        ),
        (
            format!("[redis]\nurl = \"http://x\"\n[totp]\nkey_file = \"{key}\""),
            "redis.url",
        ),
        (
            format!("[logout]\ndeny_delay_ms = \"soon\"\n[totp]\nkey_file = \"{key}\""),
            "logout.deny_delay_ms",
        ),
        (
            format!("[totp]\nkey_file = \"{key}\"\nbogus = 1"),
            "totp.bogus",
        ),
        (
            "[totp]\nkey_file = \"/nonexistent/key\"".to_string(),
            "totp.key_file",
        ),
        (format!("[totp]\nkey_file = \"{bad_key}\""), "totp.key_file"),
        (
            format!("[totp]\nkey_file = \"{key}\"\nremember_seconds = 90000"),
            "totp.remember_seconds",
        ),
        (
            format!("[totp]\nkey_file = \"{key}\"\nremember_seconds = -5"),
            "totp.remember_seconds",
        ),
        ("listen = \"127.0.0.1:1\"".to_string(), "totp.key_file"),
    ];
    for (text, key_name) in cases {
        let cfg = write(&dir, "c.toml", &text);
        let (code, out, err) = run(&["check-config", "--config", &cfg], &[]);
        assert_ne!(code, 0, "{text}");
        assert_eq!(out, "", "{text}");
        assert_eq!(err.lines().count(), 1, "exactly one line: {err:?}");
        assert!(err.contains(key_name), "{text:?} → {err:?}");
    }
    // A malformed key in the environment is named too, and never echoed.
    let cfg = write(&dir, "c.toml", "");
    let (code, _, err) = run(
        &["check-config", "--config", &cfg],
        &[("SESSIONGATE_TOTP_KEY", "zz-secret-zz")],
    );
    assert_ne!(code, 0);
    assert!(err.contains("SESSIONGATE_TOTP_KEY"), "{err}");
    assert!(!err.contains("zz-secret-zz"));
}

#[test]
fn help_lists_every_command() {
    let (code, out, _) = run(&["--help"], &[]);
    assert_eq!(code, 0);
    for command in ["serve", "check-config", "demo", "user", "totp", "session"] {
        assert!(out.contains(command), "{command} missing from --help");
    }
}

#[test]
fn version_prints_the_crate_version_and_the_commit() {
    let commit = env!("SESSIONGATE_COMMIT");
    let expected = format!("sessiongate {} ({commit})\n", env!("CARGO_PKG_VERSION"));
    for flag in ["--version", "-V"] {
        assert_eq!(
            run(&[flag], &[]),
            (0, expected.clone(), String::new()),
            "{flag}"
        );
    }
    // build.rs: a short hash, `-dirty` when the build inputs differ from it,
    // `unknown` outside git; or a plain token given as SESSIONGATE_COMMIT.
    let overridden = std::env::var_os("SESSIONGATE_COMMIT").is_some();
    let hash = commit.strip_suffix("-dirty").unwrap_or(commit);
    assert!(
        overridden
            || commit == "unknown"
            || (hash.len() >= 7 && hash.bytes().all(|b| b.is_ascii_hexdigit())),
        "{commit}"
    );
    // Built from a git checkout of this crate (`.git` is a directory, or a
    // file in a worktree): the commit is that checkout's HEAD.
    let checkout = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.git")).exists();
    let head = Command::new("git")
        .args([
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string());
    if let (true, false, Some(head)) = (checkout, overridden, head) {
        assert_eq!(hash, head);
    }
}

#[test]
fn admin_commands_work_against_redis() {
    let redis = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(
        &dir,
        "c.toml",
        &format!("[redis]\nurl = \"{}\"\n", redis.url()),
    );
    let env = [("SESSIONGATE_TOTP_KEY", TEST_TOTP_KEY)];
    let ok = |args: &[&str]| {
        let mut full = args.to_vec();
        full.extend(["--config", cfg.as_str()]);
        let (code, out, err) = run(&full, &env);
        assert_eq!(code, 0, "{args:?}: {err}");
        out
    };
    ok(&[
        "user",
        "put",
        "u1",
        "--username",
        "alice",
        "--roles",
        "admin,user",
    ]);

    // session add without --id prints only the new 17-character id; tokens may start with '-'.
    let id = ok(&[
        "session",
        "add",
        "--user",
        "u1",
        "--token=-starts-with-dash",
    ]);
    let id = id.trim_end_matches('\n');
    assert_eq!(id.len(), 17, "{id:?}");
    assert!(
        id.chars()
            .all(|c| "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz".contains(c))
    );
    assert_eq!(
        ok(&[
            "session",
            "add",
            "--user",
            "u1",
            "--token",
            "t2",
            "--id",
            "fixedId",
            "--ip",
            "10.1.2.3",
            "--user-agent",
            "curl/8"
        ]),
        "fixedId\n"
    );

    let list: serde_json::Value =
        serde_json::from_str(&ok(&["session", "list", "--user", "u1", "--json"])).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert!(
        !list.to_string().contains("starts-with-dash"),
        "tokens are never listed"
    );
    assert!(ok(&["session", "list"]).contains("fixedId"));

    // totp enroll prints the otpauth URI on a line of its own, then a QR code.
    let out = ok(&["totp", "enroll", "u1"]);
    let uri = out.lines().next().unwrap();
    assert!(
        uri.starts_with("otpauth://totp/sessiongate:alice?secret="),
        "{uri}"
    );
    assert!(
        uri.ends_with("&issuer=sessiongate&algorithm=SHA1&digits=6&period=30"),
        "{uri}"
    );
    assert!(out.lines().count() > 10, "QR code follows");

    // totp import and backup codes.
    ok(&["totp", "import", "u1", "--secret", "JBSWY3DPEHPK3PXP"]);
    let codes = ok(&["totp", "backup-codes", "u1"]);
    assert_eq!(codes.lines().count(), 10);
    assert!(codes.lines().all(|c| c.len() == 8));
    let (code, _, err) = run(
        &[
            "totp",
            "import",
            "u1",
            "--secret",
            "not base32!",
            "--config",
            &cfg,
        ],
        &env,
    );
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err}");

    // Revoke, then revoking again fails with one line.
    assert!(ok(&["session", "revoke", "fixedId"]).contains("revoked"));
    let (code, _, err) = run(&["session", "revoke", "fixedId", "--config", &cfg], &env);
    assert_ne!(code, 0);
    assert_eq!(err.lines().count(), 1, "{err}");
    let export = ok(&["revoked", "export"]);
    assert_eq!(export.lines().count(), 1);
    assert!(export.contains("tokenHash"));
}

#[test]
fn admin_commands_fail_in_one_line_when_redis_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write(&dir, "c.toml", "[redis]\nurl = \"redis://127.0.0.1:1/0\"\n");
    let (code, out, err) = run(&["session", "list", "--config", &cfg], &[]);
    assert_ne!(code, 0);
    assert_eq!(out, "");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("unavailable"), "{err}");
}
