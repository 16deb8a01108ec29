//! The WHEP side of the headless client: POST the offer, DELETE the resource.

use std::time::Duration;

use super::ClientError;

/// What a WHEP server answered.
#[derive(Debug, Clone)]
pub struct WhepAnswer {
    /// Absolute URL of the WHEP resource (for PATCH/DELETE).
    pub resource_url: String,
    pub etag: Option<String>,
    pub answer_sdp: String,
}

/// POSTs `offer` to a WHEP endpoint (blocking; call from `spawn_blocking`). `http://` only.
pub fn whep_post(
    endpoint: &str,
    token: Option<&str>,
    offer: &str,
) -> Result<WhepAnswer, ClientError> {
    let mut req = ureq::post(endpoint)
        .timeout(Duration::from_secs(10))
        .set("Content-Type", "application/sdp");
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let resp = match req.send_string(offer) {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let body = r.into_string().unwrap_or_default();
            return Err(ClientError::Protocol(format!(
                "WHEP server answered {code}: {}",
                body.trim()
            )));
        }
        Err(e) => {
            return Err(ClientError::Protocol(format!(
                "cannot reach {endpoint}: {e}"
            )))
        }
    };
    if resp.status() != 201 {
        return Err(ClientError::Protocol(format!(
            "WHEP server answered {} instead of 201",
            resp.status()
        )));
    }
    let location = resp
        .header("Location")
        .ok_or_else(|| ClientError::Protocol("WHEP answer has no Location".into()))?;
    let resource_url = resolve_url(endpoint, location);
    let etag = resp.header("ETag").map(str::to_owned);
    let answer_sdp = resp
        .into_string()
        .map_err(|e| ClientError::Protocol(format!("reading the answer: {e}")))?;
    Ok(WhepAnswer {
        resource_url,
        etag,
        answer_sdp,
    })
}

/// DELETEs a WHEP resource (blocking).
pub fn whep_delete(resource_url: &str, token: Option<&str>) -> Result<(), ClientError> {
    let mut req = ureq::delete(resource_url).timeout(Duration::from_secs(5));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    req.call()
        .map(|_| ())
        .map_err(|e| ClientError::Protocol(format!("DELETE {resource_url}: {e}")))
}

/// Resolves a `Location` header against the endpoint it came from.
pub fn resolve_url(base: &str, location: &str) -> String {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location.to_owned();
    }
    let scheme_end = base.find("://").map(|i| i + 3).unwrap_or(0);
    let host_end = base[scheme_end..]
        .find('/')
        .map(|i| scheme_end + i)
        .unwrap_or(base.len());
    if location.starts_with('/') {
        format!("{}{}", &base[..host_end], location)
    } else {
        let dir_end = base
            .rfind('/')
            .filter(|&i| i >= host_end)
            .unwrap_or(host_end);
        format!("{}/{}", &base[..dir_end], location)
    }
}

#[cfg(test)]
mod url_tests {
    use super::resolve_url;

    #[test]
    fn resolves_locations() {
        let b = "http://127.0.0.1:8080/whep/default";
        assert_eq!(
            resolve_url(b, "/whep/default/abc"),
            "http://127.0.0.1:8080/whep/default/abc"
        );
        assert_eq!(resolve_url(b, "abc"), "http://127.0.0.1:8080/whep/abc");
        assert_eq!(resolve_url(b, "https://x/y"), "https://x/y");
    }
}
