//! The one error type of the HTTP layer: each variant is a status and a short text the client
//! may see. Details that the client must not see are logged where the error is made.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::backend::BackendError;

/// A failed request, as the client sees it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// 404: the session, viewer or path does not exist.
    #[error("{0}")]
    NotFound(&'static str),
    /// 401 with `WWW-Authenticate: Bearer`: no `Authorization: Bearer` header.
    #[error("missing token")]
    MissingToken,
    /// 401 with `WWW-Authenticate: Bearer error="invalid_token"`: the token was refused
    /// (the reason is logged at debug level, the token never).
    #[error("invalid token")]
    InvalidToken,
    /// 415: the body is not of the media type the route takes.
    #[error("unsupported media type, expected {0}")]
    UnsupportedMediaType(&'static str),
    /// 400: the body or a header is malformed.
    #[error("{0}")]
    BadRequest(&'static str),
    /// 413: the body is over the route's cap.
    #[error("request body too large")]
    PayloadTooLarge,
    /// 428: a `PATCH` without `If-Match`.
    #[error("If-Match required")]
    PreconditionRequired,
    /// 412: `If-Match` does not match the resource's ETag.
    #[error("ETag mismatch")]
    PreconditionFailed,
    /// 503 with `Retry-After`: the session cannot take another viewer now.
    #[error("session is full, retry later")]
    Unavailable {
        /// Seconds for `Retry-After`.
        retry_after_secs: u32,
    },
    /// 422: a well-formed request with a bad value; the text names the field.
    #[error("{0}")]
    Unprocessable(String),
    /// 409: the request conflicts with the resource's state.
    #[error("{0}")]
    Conflict(&'static str),
    /// 503 with `Retry-After`: the node runs as many sessions as it takes.
    #[error("no capacity for another session, retry later")]
    NodeFull {
        /// Seconds for `Retry-After`.
        retry_after_secs: u32,
    },
    /// 406: the offer has no video codec the session sends; the text lists both sides'.
    #[error("{0}")]
    NotAcceptable(String),
    /// 501: a feature the protocol allows that this server does not offer yet.
    #[error("{0}")]
    NotImplemented(&'static str),
    /// 500: the detail was logged when the error was made; the client sees "internal error".
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// Log `detail` (at error level, in the current request's span) and return
    /// [`ApiError::Internal`].
    pub(crate) fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::Internal
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MissingToken | Self::InvalidToken => StatusCode::UNAUTHORIZED,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::PreconditionRequired => StatusCode::PRECONDITION_REQUIRED,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::Unavailable { .. } | Self::NodeFull { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<BackendError> for ApiError {
    /// Map a backend failure; the text of `BadOffer` and `Internal` is logged, not sent.
    fn from(err: BackendError) -> Self {
        match err {
            BackendError::UnknownSession => Self::NotFound("unknown session"),
            BackendError::UnknownViewer => Self::NotFound("unknown viewer"),
            BackendError::Full { retry_after_secs } => Self::Unavailable { retry_after_secs },
            BackendError::BadOffer(detail) => {
                // The detail may quote the offer; keep it out of the default log level.
                tracing::debug!(error = %detail, "backend refused the offer");
                Self::BadRequest("malformed offer")
            }
            BackendError::NoCommonCodec(detail) => Self::NotAcceptable(detail),
            BackendError::Internal(detail) => Self::internal(detail),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_client_error() {
            tracing::debug!(status = status.as_u16(), reason = %self, "request refused");
        }
        let mut res = (status, self.to_string()).into_response();
        let headers = res.headers_mut();
        match self {
            Self::MissingToken => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::InvalidToken => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(r#"Bearer error="invalid_token""#),
                );
            }
            Self::Unavailable { retry_after_secs } | Self::NodeFull { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        res
    }
}
