//! Node.js programs in the tests (real client libraries and routers from
//! npm, pinned by each folder's package-lock.json).

use std::path::{Path, PathBuf};
use std::process::Command;

/// `tests/<name>`, with its npm dependencies installed, or `None` (after a
/// note on stderr) when Node.js is not on this machine and
/// `SESSIONGATE_REQUIRE_NODE` is unset. `./scripts/test` sets it, and
/// installs Node.js first where it is missing, so CI never skips.
pub fn project(name: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(name);
    let required = std::env::var_os("SESSIONGATE_REQUIRE_NODE").is_some();
    let has_node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_node {
        assert!(
            !required,
            "node is required (SESSIONGATE_REQUIRE_NODE) but not found"
        );
        eprintln!("SKIPPED: node not found; install Node.js to run tests/{name}");
        return None;
    }
    if !dir.join("node_modules/.package-lock.json").exists() {
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(&dir)
            .output()
            .expect("run npm");
        assert!(
            out.status.success(),
            "npm ci in tests/{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some(dir)
}
