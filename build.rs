//! Build script: records the git commit the binary is built from, for
//! `sessiongate --version` (`sessiongate 0.1.0 (1a2b3c4)`).
//!
//! Sets `SESSIONGATE_COMMIT` for the crate to one of:
//! - the value of `SESSIONGATE_COMMIT` in the build's environment, when set
//!   (a Docker build has no `.git`: `--build-arg SESSIONGATE_COMMIT=...`);
//! - `git rev-parse --short HEAD`, plus `-dirty` when the files the binary is
//!   built from (`src/`, `build.rs`, `Cargo.toml`, `Cargo.lock`) differ from
//!   that commit;
//! - `unknown` outside a git checkout of this crate (a tarball, a Docker
//!   build context without `.git/`) or without a usable `git`.
//!
//! It never fails the build: every git problem ends in `unknown`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What `-dirty` is about: the inputs of the binary, not the docs or tests.
const BUILD_INPUTS: [&str; 4] = ["src", "build.rs", "Cargo.toml", "Cargo.lock"];

fn main() {
    println!("cargo:rerun-if-env-changed=SESSIONGATE_COMMIT");
    for input in BUILD_INPUTS {
        println!("cargo:rerun-if-changed={input}");
    }
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let commit = from_env()
        .or_else(|| from_git(&manifest_dir))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=SESSIONGATE_COMMIT={commit}");
}

/// An explicit commit from the environment; ignored unless it is a short,
/// plain token (it ends up in a one-line version string).
fn from_env() -> Option<String> {
    let value = std::env::var("SESSIONGATE_COMMIT").ok()?;
    let value = value.trim();
    let plain = !value.is_empty()
        && value.len() <= 64
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    plain.then(|| value.to_string())
}

fn from_git(dir: &Path) -> Option<String> {
    // Only this crate's own checkout counts: a tarball unpacked inside some
    // other repository must not report that repository's commit.
    let toplevel = PathBuf::from(git(dir, &["rev-parse", "--show-toplevel"])?);
    if !same_dir(&toplevel, dir) {
        return None;
    }
    watch_git_metadata(dir);
    let hash = git(dir, &["rev-parse", "--short", "HEAD"])?;
    // --no-optional-locks: do not refresh (rewrite) the index, which other
    // git commands running at the same time would trip over.
    let mut args = vec![
        "--no-optional-locks",
        "status",
        "--porcelain",
        "--untracked-files=no",
        "--",
    ];
    args.extend(BUILD_INPUTS);
    let status = git(dir, &args)?;
    Some(if status.is_empty() {
        hash
    } else {
        format!("{hash}-dirty")
    })
}

/// Re-run when HEAD moves: a commit, a checkout, a reset. In a worktree `.git`
/// is a file and HEAD lives in its own git dir while branch refs live in the
/// common dir, so ask git where both are. Only existing files are named: cargo
/// re-runs the script on every build for a path that does not exist.
fn watch_git_metadata(dir: &Path) {
    let resolve = |path: String| {
        let path = PathBuf::from(path);
        if path.is_absolute() {
            path
        } else {
            dir.join(path)
        }
    };
    let Some(git_dir) = git(dir, &["rev-parse", "--git-dir"]).map(resolve) else {
        return;
    };
    let common_dir = git(dir, &["rev-parse", "--git-common-dir"])
        .map(resolve)
        .unwrap_or_else(|| git_dir.clone());
    let mut watched = vec![git_dir.join("HEAD"), common_dir.join("packed-refs")];
    if let Some(head_ref) = git(dir, &["symbolic-ref", "-q", "HEAD"]) {
        watched.push(common_dir.join(head_ref));
    }
    for path in watched.iter().filter(|p| p.is_file()) {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// One git command's trimmed stdout, `None` on any failure.
fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8(out.stdout)
        .ok()
        .map(|s| s.trim().to_string())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}
