//! The thin web client (`client-web/`), embedded into the binary at compile time.
//!
//! `build.rs` walks `client-web/` and generates a sorted table of `include_bytes!` entries
//! (skipping `node_modules/`, `tests/`, `package*.json` and dot-files), so the binary needs no
//! files at run time and cargo rebuilds when the client changes.
//!
//! [`serve`] answers `GET`/`HEAD`: `/` and any `…/` serve that folder's `index.html`, other
//! paths the file of that name. Lookups only ever hit the embedded table, never the file
//! system; paths with `..`, `.`, empty or hidden segments, backslashes or percent-escapes are
//! refused with 404 before the lookup, as a second fence.

use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_assets.rs"));
}

/// One embedded file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Asset {
    /// Path relative to `client-web/`, with `/` separators (`index.html`, `js/app.js`).
    pub path: &'static str,
    /// The file's bytes.
    pub bytes: &'static [u8],
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
}

/// Paths of all embedded files, sorted.
pub fn paths() -> impl Iterator<Item = &'static str> {
    embedded::FILES.iter().map(|(p, _)| *p)
}

/// The embedded file a request path (`/`, `/index.html`, `/js/app.js`) names, if any.
pub fn get(request_path: &str) -> Option<Asset> {
    lookup(embedded::FILES, request_path)
}

/// [`get`] over any table; `table` must be sorted by path.
fn lookup(table: &'static [(&'static str, &'static [u8])], request_path: &str) -> Option<Asset> {
    let rel = request_path.strip_prefix('/').unwrap_or(request_path);
    let owned;
    let rel = if rel.is_empty() || rel.ends_with('/') {
        owned = format!("{rel}index.html");
        owned.as_str()
    } else {
        rel
    };
    let safe = rel
        .split('/')
        .all(|seg| !seg.is_empty() && !seg.starts_with('.') && !seg.contains(['\\', '%', '\0']));
    if !safe {
        return None;
    }
    let i = table.binary_search_by(|(p, _)| (*p).cmp(rel)).ok()?;
    let (path, bytes) = table[i];
    Some(Asset {
        path,
        bytes,
        content_type: content_type(path),
    })
}

/// The `Content-Type` for a file name, by extension; `application/octet-stream` when unknown.
pub fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" | "md" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Axum handler (used as the router's fallback): serve an embedded file, 404 otherwise.
pub async fn serve(method: Method, uri: Uri) -> Response {
    respond(get(uri.path()), &method)
}

fn respond(asset: Option<Asset>, method: &Method) -> Response {
    let Some(asset) = asset else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    if method != Method::GET && method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
            "method not allowed",
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(asset.content_type),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    static TABLE: &[(&str, &[u8])] = &[
        ("app.js", b"js"),
        ("index.html", b"<html>"),
        ("sub/index.html", b"sub"),
        ("sub/x.svg", b"<svg>"),
    ];

    #[test]
    fn lookup_finds_files_and_indexes() {
        assert_eq!(lookup(TABLE, "/").unwrap().path, "index.html");
        assert_eq!(lookup(TABLE, "").unwrap().path, "index.html");
        assert_eq!(lookup(TABLE, "/index.html").unwrap().bytes, b"<html>");
        assert_eq!(lookup(TABLE, "/sub/").unwrap().path, "sub/index.html");
        let js = lookup(TABLE, "/app.js").unwrap();
        assert_eq!(js.content_type, "text/javascript; charset=utf-8");
        assert_eq!(
            lookup(TABLE, "/sub/x.svg").unwrap().content_type,
            "image/svg+xml"
        );
    }

    #[test]
    fn lookup_refuses_unknown_and_traversal() {
        for p in [
            "/nope.js",
            "/sub",
            "/../index.html",
            "/sub/../index.html",
            "/./index.html",
            "//index.html",
            "/%2e%2e/index.html",
            "/sub\\x.svg",
            "/.git/config",
            "/index.html/",
            "/../../etc/passwd",
        ] {
            assert_eq!(lookup(TABLE, p), None, "{p}");
        }
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("a.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("a.JS"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.mjs"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("a.svg"), "image/svg+xml");
        assert_eq!(content_type("a.json"), "application/json");
        assert_eq!(content_type("LICENSE"), "application/octet-stream");
    }

    #[test]
    fn embedded_table_is_sorted_and_clean() {
        let paths: Vec<&str> = paths().collect();
        let mut sorted = paths.clone();
        sorted.sort();
        assert_eq!(paths, sorted, "binary search needs a sorted table");
        for p in paths {
            assert!(
                !p.starts_with("node_modules/") && !p.contains("/node_modules/"),
                "{p}"
            );
            assert!(!p.starts_with("tests/"), "{p}");
            assert!(!(p.starts_with("package") && p.ends_with(".json")), "{p}");
            assert_eq!(get(&format!("/{p}")).map(|a| a.path), Some(p));
        }
    }

    #[test]
    fn respond_sets_headers_and_methods() {
        let asset = lookup(TABLE, "/app.js");
        let res = respond(asset, &Method::GET);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-cache");
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            respond(asset, &Method::POST).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert_eq!(respond(None, &Method::GET).status(), StatusCode::NOT_FOUND);
    }
}
