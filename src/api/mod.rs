//! Endpoints the gate answers itself.

pub mod body;
pub mod error;

use http::Request;
use hyper::body::Incoming;

use crate::body::Body;
use crate::proxy::ConnInfo;

/// `POST /api/v1/sessions/logout` (TEMPORARY stand-in).
#[derive(Clone, Default)]
pub struct LogoutApi {}

impl LogoutApi {
    pub async fn handle(&self, _req: Request<Incoming>, _conn: ConnInfo) -> http::Response<Body> {
        error::ApiError::StoreUnavailable.into_response()
    }
}
