//! The web SQL console: a page and two assets, built from `clients/web` into
//! `clients/web/dist`, embedded in the binary and served on the gRPC port, whose gRPC-Web
//! the console calls.
//!
//! The page and assets hold no data and are served to anyone; everything the console shows comes
//! from gRPC-Web calls, which pass the same authentication as any other call.

use std::net::SocketAddr;
use std::sync::LazyLock;

use std::task::{Context, Poll};

use bytes::Bytes;
use futures::future::{Either, Ready, ready};
use http::header::{
    ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_ENCODING, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG,
    IF_NONE_MATCH, REFERRER_POLICY, VARY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};
use tonic::body::Body;

const SCRIPT_PATH: &str = "/assets/console.js";
const STYLE_PATH: &str = "/assets/console.css";

/// Scripts, styles and calls come only from the broker itself; CodeMirror sets inline styles.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
                      connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

struct Asset {
    content_type: &'static str,
    body: &'static [u8],
    /// The same bytes gzip-compressed by the build, served to clients that accept gzip.
    gzipped: Option<&'static [u8]>,
    etag: HeaderValue,
    /// The gzipped representation's own tag (a strong tag names one encoding).
    gzipped_etag: HeaderValue,
}

impl Asset {
    fn new(
        content_type: &'static str,
        body: &'static [u8],
        gzipped: Option<&'static [u8]>,
    ) -> Asset {
        let digest = hex::encode(&Sha256::digest(body)[..12]);
        let tag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"{digest}{suffix}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("\"console\""))
        };
        Asset {
            content_type,
            body,
            gzipped,
            etag: tag(""),
            gzipped_etag: tag("-gzip"),
        }
    }

    fn respond(&self, request: &HeaderMap) -> Response<Body> {
        let mut response = Response::builder()
            .header(CONTENT_TYPE, self.content_type)
            // Revalidated on every load, so a new broker version is picked up at once.
            .header(CACHE_CONTROL, "no-cache")
            .header(VARY, "accept-encoding")
            .header(X_CONTENT_TYPE_OPTIONS, "nosniff")
            .header(CONTENT_SECURITY_POLICY, POLICY)
            .header(X_FRAME_OPTIONS, "DENY")
            .header(REFERRER_POLICY, "no-referrer");
        let (bytes, etag) = match self.gzipped {
            Some(gzipped) if accepts_gzip(request) => {
                response = response.header(CONTENT_ENCODING, "gzip");
                (gzipped, &self.gzipped_etag)
            }
            _ => (self.body, &self.etag),
        };
        response = response.header(ETAG, etag.clone());
        // Weak comparison, as If-None-Match asks: a proxy may have marked the tag weak.
        let unchanged = list_items(request, IF_NONE_MATCH)
            .map(|tag| tag.trim_start_matches("W/"))
            .any(|tag| tag == etag || tag == "*");
        let body = if unchanged {
            response = response.status(StatusCode::NOT_MODIFIED);
            Body::empty()
        } else {
            Body::new(Full::new(Bytes::from_static(bytes)))
        };
        response.body(body).unwrap_or_else(|_| {
            let mut failed = Response::new(Body::empty());
            *failed.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            failed
        })
    }
}

/// The items of a comma-separated list header, over all its lines, trimmed.
fn list_items(request: &HeaderMap, name: HeaderName) -> impl Iterator<Item = &str> {
    request
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

fn accepts_gzip(request: &HeaderMap) -> bool {
    list_items(request, ACCEPT_ENCODING).any(|coding| {
        let mut parts = coding.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| matches!(p.trim(), "q=0" | "q=0.0" | "q=0.00" | "q=0.000"));
        name.eq_ignore_ascii_case("gzip") && !refused
    })
}

static INDEX: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "text/html; charset=utf-8",
        include_bytes!("../../../clients/web/dist/index.html"),
        None,
    )
});
static SCRIPT: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "text/javascript; charset=utf-8",
        include_bytes!("../../../clients/web/dist/assets/console.js"),
        Some(include_bytes!(
            "../../../clients/web/dist/assets/console.js.gz"
        )),
    )
});
static STYLE: LazyLock<Asset> = LazyLock::new(|| {
    Asset::new(
        "text/css; charset=utf-8",
        include_bytes!("../../../clients/web/dist/assets/console.css"),
        None,
    )
});

/// Where people open the console, for the log line that says it is served.
pub(crate) fn url(local: SocketAddr, tls: bool) -> String {
    let scheme = if tls { "https" } else { "http" };
    format!("{scheme}://{local}/")
}

/// Serves the console's page and assets in front of gRPC-Web and authentication (which refuses
/// plain HTTP/1.1 requests); everything else goes on to the gRPC services.
#[derive(Clone, Copy)]
pub(crate) struct ConsoleLayer {
    enabled: bool,
}

impl ConsoleLayer {
    /// Creates the layer; with `enabled` false (`--web-console false`) it passes every
    /// request on.
    pub(crate) fn new(enabled: bool) -> ConsoleLayer {
        ConsoleLayer { enabled }
    }
}

impl<S> tower::Layer<S> for ConsoleLayer {
    type Service = ConsoleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ConsoleService {
            inner,
            enabled: self.enabled,
        }
    }
}

/// The service of [`ConsoleLayer`]: answers the console's page and assets itself and passes
/// everything else to `inner`.
#[derive(Clone)]
pub(crate) struct ConsoleService<S> {
    inner: S,
    enabled: bool,
}

impl<S> ConsoleService<S> {
    fn asset<B>(&self, request: &Request<B>) -> Option<&'static Asset> {
        if !self.enabled || !(request.method() == Method::GET || request.method() == Method::HEAD) {
            return None;
        }
        match request.uri().path() {
            "/" => Some(&INDEX),
            SCRIPT_PATH => Some(&SCRIPT),
            STYLE_PATH => Some(&STYLE),
            _ => None,
        }
    }
}

impl<S, B> tower::Service<Request<B>> for ConsoleService<S>
where
    S: tower::Service<Request<B>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        match self.asset(&request) {
            Some(asset) => {
                let mut response = asset.respond(request.headers());
                if request.method() == Method::HEAD {
                    *response.body_mut() = Body::empty();
                }
                Either::Left(ready(Ok(response)))
            }
            None => Either::Right(self.inner.call(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(http::header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn gzip_is_served_only_to_clients_that_accept_it() {
        assert!(accepts_gzip(&headers(&[(
            ACCEPT_ENCODING,
            "gzip, deflate, br"
        )])));
        assert!(accepts_gzip(&headers(&[(
            ACCEPT_ENCODING,
            "br;q=1.0, GZIP;q=0.5"
        )])));
        assert!(!accepts_gzip(&headers(&[(
            ACCEPT_ENCODING,
            "gzip;q=0, br"
        )])));
        assert!(!accepts_gzip(&headers(&[(ACCEPT_ENCODING, "identity")])));
        assert!(!accepts_gzip(&headers(&[])));
    }

    #[test]
    fn a_matching_etag_is_answered_not_modified() {
        let fresh = SCRIPT.respond(&headers(&[]));
        assert_eq!(fresh.status(), StatusCode::OK);
        let etag = fresh.headers()[ETAG].to_str().unwrap().to_owned();
        let again = SCRIPT.respond(&headers(&[(IF_NONE_MATCH, &format!("\"x\", {etag}"))]));
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let weak = SCRIPT.respond(&headers(&[(IF_NONE_MATCH, &format!("W/{etag}"))]));
        assert_eq!(weak.status(), StatusCode::NOT_MODIFIED);
        // The gzipped representation has its own tag: the plain one does not revalidate it.
        let gzipped = SCRIPT.respond(&headers(&[
            (ACCEPT_ENCODING, "gzip"),
            (IF_NONE_MATCH, &etag),
        ]));
        assert_eq!(gzipped.status(), StatusCode::OK);
        assert_ne!(gzipped.headers()[ETAG].to_str().unwrap(), etag);
    }
}
