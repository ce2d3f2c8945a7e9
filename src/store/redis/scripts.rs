//! The Lua scripts, one `.lua` file each under `scripts/`: each multi-key step
//! runs as one script (one round trip, atomic on the node that owns the keys).
//!
//! Every script starts with [`LUA_KEYS`], the Lua twin of [`Keys`], and
//! builds its key names from the prefix passed as `ARGV[1]`; `KEYS[1]` only
//! routes the call. In Cluster mode all keys share one hash slot (see
//! [`Keys::for_cluster`]) so the scripts, which compute some key names from
//! values they read, stay legal. Each file's header comment says what the
//! script does, its KEYS/ARGV and why it must be atomic.
//!
//! [`Keys`]: crate::store::keys::Keys
//! [`Keys::for_cluster`]: crate::store::keys::Keys::for_cluster

use ::redis::Script;

use crate::store::keys::LUA_KEYS;

const PRECHECK: &str = include_str!("scripts/precheck.lua");
/// The `revoke` function, prepended to [`COMMIT`] and [`REVOKE_CALL`].
const REVOKE: &str = include_str!("scripts/revoke.lua");
const COMMIT: &str = include_str!("scripts/commit.lua");
/// The revoke script's body after [`REVOKE`]. `KEYS[1]`: `session:<id>`;
/// ARGV: prefix, session id, logout by, revoked ttl s, now ms.
const REVOKE_CALL: &str = "return revoke(ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5])";
const ADD_SESSION: &str = include_str!("scripts/add_session.lua");
const PUT_USER: &str = include_str!("scripts/put_user.lua");
const SET_TOTP: &str = include_str!("scripts/set_totp.lua");
const SET_BACKUP: &str = include_str!("scripts/set_backup.lua");
const GET_USER: &str = include_str!("scripts/get_user.lua");
const SESSION_BY_TOKEN: &str = include_str!("scripts/session_by_token.lua");

pub(super) struct Scripts {
    pub precheck: Script,
    pub commit: Script,
    pub revoke: Script,
    pub add_session: Script,
    pub put_user: Script,
    pub set_totp: Script,
    pub set_backup: Script,
    pub get_user: Script,
    pub session_by_token: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        let with_keys = |file: &str| Script::new(&format!("{LUA_KEYS}{}", body(file)));
        let with_revoke = |rest: &str| Script::new(&format!("{LUA_KEYS}{}{rest}", body(REVOKE)));
        Self {
            precheck: with_keys(PRECHECK),
            commit: with_revoke(body(COMMIT)),
            revoke: with_revoke(REVOKE_CALL),
            add_session: with_keys(ADD_SESSION),
            put_user: with_keys(PUT_USER),
            set_totp: with_keys(SET_TOTP),
            set_backup: with_keys(SET_BACKUP),
            get_user: with_keys(GET_USER),
            session_by_token: with_keys(SESSION_BY_TOKEN),
        }
    }
}

/// A script file without its header: the leading `--` lines. The header is
/// for readers; leaving it out keeps comments out of the script Redis caches
/// and out of its SHA1, the name EVALSHA calls it by.
fn body(file: &str) -> &str {
    let mut rest = file;
    while rest.starts_with("--") {
        rest = rest.split_once('\n').map_or("", |(_, next)| next);
    }
    rest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_bodies_start_after_the_header() {
        assert_eq!(body("-- what\n--\n-- why\n\nreturn 1\n"), "\nreturn 1\n");
        assert_eq!(body("\nreturn 1\n"), "\nreturn 1\n");
        assert_eq!(body("-- only a header"), "");
        for file in [
            PRECHECK,
            REVOKE,
            COMMIT,
            ADD_SESSION,
            PUT_USER,
            SET_TOTP,
            SET_BACKUP,
            GET_USER,
            SESSION_BY_TOKEN,
        ] {
            assert!(file.starts_with("-- "), "every file has a header");
            assert!(body(file).starts_with('\n'), "a blank line ends the header");
        }
    }
}
