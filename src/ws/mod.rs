//! TEMPORARY stand-in for websocket inspection.
pub mod ddp {
    pub const LOGGED_OUT_ERROR: &str = r#"{"isClientSafe":true,"error":403,"reason":"You've been logged out by the server. Please log in again.","message":"You've been logged out by the server. Please log in again. [403]","errorType":"Meteor.Error"}"#;
    pub struct ResumeLogin {
        pub call_id: String,
        pub token: String,
    }
    pub fn resume_logins(_text: &str, _sockjs: bool) -> Vec<ResumeLogin> {
        Vec::new()
    }
}
pub mod pump {
    use crate::auth::TokenHash;
    use crate::revocation::RevokedSet;
    use tokio::io::{AsyncRead, AsyncWrite};
    pub struct TunnelConfig {
        pub sockjs: bool,
        pub cookie_token: Option<TokenHash>,
        pub max_inspect_bytes: usize,
    }
    pub enum TunnelEnd {
        ClientClosed,
        UpstreamClosed,
        Revoked,
        Shutdown,
        Io,
    }
    pub async fn tunnel<C, U>(
        mut client: C,
        mut upstream: U,
        _cfg: TunnelConfig,
        _revoked: RevokedSet,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> TunnelEnd
    where
        C: AsyncRead + AsyncWrite + Unpin + Send,
        U: AsyncRead + AsyncWrite + Unpin + Send,
    {
        tokio::select! {
            r = tokio::io::copy_bidirectional(&mut client, &mut upstream) => if r.is_ok() { TunnelEnd::ClientClosed } else { TunnelEnd::Io },
            _ = shutdown.cancelled() => TunnelEnd::Shutdown,
        }
    }
}
