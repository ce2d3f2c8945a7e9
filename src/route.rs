//! TEMPORARY stand-in; replaced by the canonicalizing classifier.
use http::{HeaderMap, Method, Uri};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceEndpoint {
    List,
    Info,
    LogoutMe,
    ListAll,
    InfoAdmin,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    SessionsLogout,
    Login,
    UserLogout,
    Websocket { sockjs: bool },
    SockJsSend,
    DeviceApi(DeviceEndpoint),
    Other,
}

impl Route {
    pub fn label(&self) -> &'static str {
        match self {
            Route::SessionsLogout => "sessions_logout",
            Route::Login => "login",
            Route::UserLogout => "user_logout",
            Route::Websocket { .. } => "websocket",
            Route::SockJsSend => "sockjs_send",
            Route::DeviceApi(_) => "device_api",
            Route::Other => "other",
        }
    }
}

pub fn classify(method: &Method, uri: &Uri, _headers: &HeaderMap) -> Route {
    if method == Method::POST && uri.path() == "/api/v1/sessions/logout" {
        Route::SessionsLogout
    } else {
        Route::Other
    }
}
