//! Command line: `serve | check-config | demo | user | totp | session | revoked | probe`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `sessiongate --version`: the crate version and the git commit it was built
/// from (`1a2b3c4`, `1a2b3c4-dirty`, or `unknown`; see `build.rs`).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("SESSIONGATE_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "sessiongate",
    version = VERSION,
    about = "Reverse-proxy enforcement sidecar for Rocket.Chat-compatible chat servers",
    long_about = "sessiongate sits in front of a Rocket.Chat-compatible server, answers \
POST /api/v1/sessions/logout itself (permission + TOTP), revokes the session in Redis, \
and refuses revoked tokens on every replica — HTTP and websockets — while forwarding \
everything else unchanged."
)]
pub struct Cli {
    /// Configuration file (TOML). Env: SESSIONGATE_CONFIG.
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "SESSIONGATE_CONFIG",
        value_name = "FILE"
    )]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the gate.
    Serve(ServeArgs),
    /// Validate the configuration: prints `ok`, or one line naming the bad key.
    CheckConfig,
    /// Run the gate with a built-in stand-in chat server and an in-memory store.
    Demo(DemoArgs),
    /// Users and their roles.
    #[command(subcommand)]
    User(UserCmd),
    /// TOTP secrets and backup codes.
    #[command(subcommand)]
    Totp(TotpCmd),
    /// Device sessions.
    #[command(subcommand)]
    Session(SessionCmd),
    /// The revoked-token set.
    #[command(subcommand)]
    Revoked(RevokedCmd),
    /// GET a URL and exit 0 on a 2xx answer (container health checks).
    Probe {
        #[arg(default_value = "http://127.0.0.1:9901/readyz")]
        url: String,
    },
}

#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// Client listener, overrides `listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Chat server URL, overrides `upstream`.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,
    /// Admin listener, overrides `admin.listen`.
    #[arg(long, value_name = "ADDR")]
    pub admin_listen: Option<String>,
    /// Redis URL, overrides `redis.url`.
    #[arg(long, value_name = "URL")]
    pub redis_url: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Gate listener.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Admin listener.
    #[arg(long, default_value = "127.0.0.1:9901", value_name = "ADDR")]
    pub admin_listen: String,
    /// Use this Redis instead of the in-memory store.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum UserCmd {
    /// Create or update a user (keeps its TOTP secret and backup codes).
    Put {
        user_id: String,
        /// Display name (shown by authenticator apps after `totp enroll`).
        #[arg(long)]
        username: Option<String>,
        /// Display name, shown as `_user.name` by sessions/list.all and info.admin.
        #[arg(long, allow_hyphen_values = true)]
        name: Option<String>,
        /// Comma-separated roles, e.g. admin,user.
        #[arg(long, value_delimiter = ',')]
        roles: Option<Vec<String>>,
    },
    /// Show a user (never its secret or codes).
    Show { user_id: String },
}

#[derive(Subcommand, Debug)]
pub enum TotpCmd {
    /// Store an existing base32 TOTP secret for a user (encrypted at rest).
    Import {
        user_id: String,
        /// The secret as base32 (what authenticator apps show).
        #[arg(long, allow_hyphen_values = true)]
        secret: String,
    },
    /// Generate a new secret; prints the otpauth:// URI and a QR code.
    Enroll { user_id: String },
    /// Replace the user's backup codes; prints 10 new codes, one per line.
    BackupCodes { user_id: String },
}

#[derive(Subcommand, Debug)]
pub enum SessionCmd {
    /// Record a session for a token; prints the session id.
    Add {
        /// The user the session belongs to.
        #[arg(long, allow_hyphen_values = true)]
        user: String,
        /// The login token (X-Auth-Token); only its SHA-256 is stored. Use --token=VALUE for values starting with '-'.
        #[arg(long, allow_hyphen_values = true)]
        token: String,
        /// Session id (default: a new 17-character Meteor-style id).
        #[arg(long, allow_hyphen_values = true)]
        id: Option<String>,
        /// Client IP shown in session listings.
        #[arg(long)]
        ip: Option<String>,
        /// User agent; parsed into the device fields.
        #[arg(long, allow_hyphen_values = true)]
        user_agent: Option<String>,
        /// The Host the login came to (Rocket.Chat's session `host`, e.g. chat.example.org).
        #[arg(long)]
        host: Option<String>,
    },
    /// List sessions, newest first.
    List {
        /// Only this user's sessions.
        #[arg(long, allow_hyphen_values = true)]
        user: Option<String>,
        /// One JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one session as JSON.
    Show {
        #[arg(allow_hyphen_values = true)]
        session_id: String,
    },
    /// Revoke a session: its token is refused everywhere from now on.
    Revoke {
        #[arg(allow_hyphen_values = true)]
        session_id: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RevokedCmd {
    /// Print every revoked token hash with its expiry (JSON lines).
    Export,
}
