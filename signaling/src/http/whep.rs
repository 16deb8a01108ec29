//! The WHEP handlers. Each one checks the request in the order the [`crate::http`] docs give,
//! then makes at most one backend call.

use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::Span;

use super::headers::{
    bearer_token, content_type_is, IfMatch, CORS_ALLOW_HEADERS, CORS_MAX_AGE, SDP, TRICKLE,
};
use super::sdp::{check_offer, parse_trickle_fragment};
use super::{ApiError, AppState, MAX_FRAGMENT_BYTES, MAX_OFFER_BYTES};
use crate::backend::Role;

/// `Accept-Post` (not among `http`'s constants).
const ACCEPT_POST: HeaderName = HeaderName::from_static("accept-post");
/// `Accept-Patch` (not among `http`'s constants).
const ACCEPT_PATCH: HeaderName = HeaderName::from_static("accept-patch");

/// Whether `id` can be a session or viewer id: 1–128 URL-unreserved characters
/// (`A–Z a–z 0–9 - . _ ~`), not only dots. Such ids go into `Location` and logs unescaped.
fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
        && !id.bytes().all(|b| b == b'.')
}

/// The role the request's Bearer token grants for `session`.
fn authorize(state: &AppState, headers: &HeaderMap, session: &str) -> Result<Role, ApiError> {
    grant(state, headers, session).map(|g| g.role)
}

/// The role and token id the request's Bearer token grants for `session`.
fn grant(
    state: &AppState,
    headers: &HeaderMap,
    session: &str,
) -> Result<crate::tokens::Grant, ApiError> {
    let token = bearer_token(headers).ok_or(ApiError::MissingToken)?;
    state
        .tokens
        .verify_grant(token, session, SystemTime::now())
        .map_err(|err| {
            // The reason, never the token.
            tracing::debug!(reason = %err, "join token refused");
            ApiError::InvalidToken
        })
}

/// Read the whole body, at most `limit` bytes (413 beyond).
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    axum::body::to_bytes(body, limit).await.map_err(|err| {
        let inner = err.into_inner();
        if inner.is::<http_body_util::LengthLimitError>() {
            ApiError::PayloadTooLarge
        } else {
            tracing::debug!(error = %inner, "could not read request body");
            ApiError::BadRequest("could not read request body")
        }
    })
}

/// `POST /whep/{session}`: an SDP offer in, `201 Created` with the answer out.
#[tracing::instrument(name = "whep_post", skip_all, fields(session = tracing::field::Empty))]
pub(crate) async fn post_offer(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if !valid_id(&session) {
        return Err(ApiError::NotFound("unknown session"));
    }
    Span::current().record("session", session.as_str());
    let crate::tokens::Grant { role, token_id } = grant(&state, &headers, &session)?;
    if !content_type_is(&headers, SDP) {
        return Err(ApiError::UnsupportedMediaType(SDP));
    }
    let body = read_body(&headers, body, MAX_OFFER_BYTES).await?;
    let offer = check_offer(&body).map_err(|e| ApiError::BadRequest(e.as_str()))?;
    if !state.backend.has_session(&session) {
        return Err(ApiError::NotFound("unknown session"));
    }

    let answer = state
        .backend
        .create_viewer(&session, offer.to_owned(), role, token_id)
        .await?;
    if !valid_id(&answer.viewer_id) {
        return Err(ApiError::internal(format_args!(
            "backend returned an unusable viewer id ({} bytes)",
            answer.viewer_id.len()
        )));
    }
    let viewer = answer.viewer_id;
    tracing::info!(viewer = control::log_tag(&viewer), ?role, "viewer created");

    let location = format!("/whep/{session}/{viewer}");
    let etag = format!("\"{}\"", state.etags.etag(&session, &viewer));
    let mut res = (StatusCode::CREATED, answer.answer_sdp).into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(SDP));
    // Both values are built from checked ids and an unpadded base64url tag: always valid.
    h.insert(header::LOCATION, header_value(location)?);
    h.insert(header::ETAG, header_value(etag)?);
    h.insert(ACCEPT_PATCH, HeaderValue::from_static(TRICKLE));
    for link in state.ice.links(true) {
        h.append(header::LINK, link);
    }
    Ok(res)
}

fn header_value(s: String) -> Result<HeaderValue, ApiError> {
    HeaderValue::try_from(s).map_err(ApiError::internal)
}

/// `PATCH /whep/{session}/{viewer}`: trickle ICE candidates (RFC 8840), `204` when taken.
///
/// An ICE restart (`If-Match: *` with new `a=ice-ufrag`/`a=ice-pwd`) answers `501` for now.
#[tracing::instrument(
    name = "whep_patch",
    skip_all,
    fields(session = tracing::field::Empty, viewer = tracing::field::Empty)
)]
pub(crate) async fn patch_resource(
    State(state): State<AppState>,
    Path((session, viewer)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    check_resource_ids(&session, &viewer)?;
    authorize(&state, &headers, &session)?;
    if !content_type_is(&headers, TRICKLE) {
        return Err(ApiError::UnsupportedMediaType(TRICKLE));
    }
    let if_match = IfMatch::from_headers(&headers).ok_or(ApiError::PreconditionRequired)?;
    if !if_match.matches(&state.etags.etag(&session, &viewer)) {
        return Err(ApiError::PreconditionFailed);
    }
    let body = read_body(&headers, body, MAX_FRAGMENT_BYTES).await?;
    let fragment = parse_trickle_fragment(&body).map_err(|e| ApiError::BadRequest(e.as_str()))?;
    if if_match == IfMatch::Any && fragment.ice_ufrag.is_some() && fragment.ice_pwd.is_some() {
        return Err(ApiError::NotImplemented("ICE restart is not supported"));
    }
    let count = fragment.candidates.len();
    state
        .backend
        .add_candidates(&session, &viewer, fragment)
        .await?;
    tracing::debug!(candidates = count, "remote candidates added");
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /whep/{session}/{viewer}`: end the viewer, `200`.
#[tracing::instrument(
    name = "whep_delete",
    skip_all,
    fields(session = tracing::field::Empty, viewer = tracing::field::Empty)
)]
pub(crate) async fn delete_resource(
    State(state): State<AppState>,
    Path((session, viewer)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    check_resource_ids(&session, &viewer)?;
    authorize(&state, &headers, &session)?;
    state.backend.delete_viewer(&session, &viewer).await?;
    tracing::info!("viewer deleted");
    Ok(StatusCode::OK)
}

/// 404 unless both ids are well-formed; records them in the current span.
fn check_resource_ids(session: &str, viewer: &str) -> Result<(), ApiError> {
    if !valid_id(session) {
        return Err(ApiError::NotFound("unknown session"));
    }
    if !valid_id(viewer) {
        return Err(ApiError::NotFound("unknown viewer"));
    }
    let span = Span::current();
    span.record("session", session);
    span.record("viewer", viewer);
    Ok(())
}

/// `OPTIONS /whep/{session}`: CORS preflight and WHEP discovery (`Accept-Post`, ICE servers).
pub(crate) async fn options_endpoint(
    State(state): State<AppState>,
    Path(session): Path<String>,
    headers: HeaderMap,
) -> Response {
    options(
        &state,
        &session,
        &headers,
        "POST, OPTIONS",
        (ACCEPT_POST, SDP),
    )
}

/// `OPTIONS /whep/{session}/{viewer}`: CORS preflight for `PATCH`/`DELETE`.
pub(crate) async fn options_resource(
    State(state): State<AppState>,
    Path((session, _viewer)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    options(
        &state,
        &session,
        &headers,
        "PATCH, DELETE, OPTIONS",
        (ACCEPT_PATCH, TRICKLE),
    )
}

/// Always `204`: preflights carry no token, and failing them would hide the real error.
/// TURN credentials are listed only when the request carries a valid token anyway.
fn options(
    state: &AppState,
    session: &str,
    headers: &HeaderMap,
    methods: &'static str,
    accept: (HeaderName, &'static str),
) -> Response {
    let authorised = bearer_token(headers).is_some_and(|token| {
        state
            .tokens
            .verify(token, session, SystemTime::now())
            .is_ok()
    });
    let mut res = StatusCode::NO_CONTENT.into_response();
    let h = res.headers_mut();
    h.insert(header::ALLOW, HeaderValue::from_static(methods));
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(methods),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(CORS_ALLOW_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(CORS_MAX_AGE),
    );
    h.insert(accept.0, HeaderValue::from_static(accept.1));
    for link in state.ice.links(authorised) {
        h.append(header::LINK, link);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "s-1", "A_b.c~d", &"x".repeat(128), "0"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a%2f",
            "ü",
            &"x".repeat(129),
            "a\"b",
        ] {
            assert!(!valid_id(bad), "{bad}");
        }
    }
}
