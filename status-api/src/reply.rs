//! Bodies rendered once and served many times: [`Rendered`] holds the bytes, their `ETag`
//! and (made on first demand, once) a gzip copy; [`send`] answers a request from it with a
//! 304 when `If-None-Match` names the ETag, the gzip copy when `Accept-Encoding` allows
//! it, else the bytes as they are. Security headers are not added here but by the one
//! wrapper in [`crate::filters`].

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::io::Write;
use std::sync::OnceLock;

use bytes::Bytes;
use flate2::Compression;
use flate2::write::GzEncoder;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

/// Bodies smaller than this are sent as they are: gzip would save too little.
const GZIP_MIN: usize = 1024;

/// A body with its validator and its compressed copy.
#[derive(Debug)]
pub struct Rendered {
    pub body: Bytes,
    pub content_type: &'static str,
    /// Hash of the body: equal bodies have equal ETags, whenever they were rendered.
    pub hash: u64,
    etag: HeaderValue,
    etag_gzip: HeaderValue,
    gzip: OnceLock<Option<Bytes>>,
}

impl Rendered {
    pub fn new(body: Bytes, content_type: &'static str) -> Rendered {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(&body[..]);
        let tag = |suffix: &str| {
            HeaderValue::from_str(&format!("\"{hash:016x}-{:x}{suffix}\"", body.len()))
                .unwrap_or_else(|_| HeaderValue::from_static("\"\""))
        };
        Rendered {
            etag: tag(""),
            etag_gzip: tag("-gz"),
            hash,
            body,
            content_type,
            gzip: OnceLock::new(),
        }
    }

    pub fn etag(&self) -> &HeaderValue {
        &self.etag
    }

    /// The gzip copy, compressed on first demand and then kept; `None` for small bodies.
    pub fn gzip(&self) -> Option<&Bytes> {
        self.gzip
            .get_or_init(|| {
                if self.body.len() < GZIP_MIN {
                    return None;
                }
                let mut enc = GzEncoder::new(Vec::with_capacity(self.body.len() / 6), Compression::default());
                // Writing into a Vec cannot fail.
                enc.write_all(&self.body).ok()?;
                enc.finish().ok().map(Bytes::from)
            })
            .as_ref()
    }
}

/// The request headers that choose among a body's forms.
#[derive(Debug, Default, Clone, Copy)]
pub struct Wants<'a> {
    pub if_none_match: Option<&'a [u8]>,
    pub gzip: bool,
}

impl<'a> Wants<'a> {
    pub fn from_headers(h: &'a HeaderMap) -> Wants<'a> {
        Wants {
            if_none_match: h.get(header::IF_NONE_MATCH).map(|v| v.as_bytes()),
            gzip: h
                .get_all(header::ACCEPT_ENCODING)
                .iter()
                .any(|v| accepts_gzip(v.as_bytes())),
        }
    }
}

/// Whether an `Accept-Encoding` value allows gzip (`gzip`, `x-gzip` or `*` with q > 0).
pub fn accepts_gzip(v: &[u8]) -> bool {
    let Ok(v) = std::str::from_utf8(v) else {
        return false;
    };
    v.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let q = parts
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        q > 0.0
            && (coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") || coding == "*")
    })
}

/// Whether an `If-None-Match` value names this ETag (or is `*`). Weak comparison, as
/// RFC 9110 prescribes for `If-None-Match`.
pub fn etag_matches(if_none_match: &[u8], etag: &HeaderValue) -> bool {
    let Ok(v) = std::str::from_utf8(if_none_match) else {
        return false;
    };
    let Ok(mine) = etag.to_str() else {
        return false;
    };
    v.split(',').any(|t| {
        let t = t.trim();
        t == "*" || t.strip_prefix("W/").unwrap_or(t) == mine
    })
}

/// Answers with `r`: 304, gzip or plain.
pub fn send(r: &Rendered, wants: Wants) -> Response {
    let gz = if wants.gzip { r.gzip() } else { None };
    let etag = if gz.is_some() { &r.etag_gzip } else { &r.etag };
    let mut resp = if wants.if_none_match.is_some_and(|inm| etag_matches(inm, etag)) {
        let mut resp = Response::new(Bytes::new().into());
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        resp
    } else {
        let body = gz.unwrap_or(&r.body).clone();
        let mut resp = Response::new(body.into());
        resp.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(r.content_type));
        if gz.is_some() {
            resp.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        resp
    };
    let h = resp.headers_mut();
    h.insert(header::ETAG, etag.clone());
    h.insert(header::VARY, HeaderValue::from_static("Accept, Accept-Encoding"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big() -> Rendered {
        Rendered::new(Bytes::from("{\"a\":1}".repeat(400)), "application/json")
    }

    #[test]
    fn etags_follow_the_bytes() {
        let a = big();
        let b = big();
        assert_eq!(a.etag(), b.etag(), "same bytes, same tag, whenever rendered");
        let c = Rendered::new(Bytes::from_static(b"{}"), "application/json");
        assert_ne!(a.etag(), c.etag());
        let tag = a.etag().to_str().unwrap().to_string();
        assert!(etag_matches(tag.as_bytes(), a.etag()));
        assert!(etag_matches(format!("\"x\", W/{tag}").as_bytes(), a.etag()));
        assert!(etag_matches(b"*", a.etag()));
        assert!(!etag_matches(b"\"x\"", a.etag()));
    }

    #[test]
    fn negotiates_gzip_and_304() {
        assert!(accepts_gzip(b"gzip, deflate, br"));
        assert!(accepts_gzip(b"br;q=1.0, GZIP;q=0.5"));
        assert!(!accepts_gzip(b"gzip;q=0"));
        assert!(!accepts_gzip(b"identity"));
        let r = big();
        let plain = send(&r, Wants::default());
        assert_eq!(plain.status(), StatusCode::OK);
        assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
        let gz = send(
            &r,
            Wants {
                if_none_match: None,
                gzip: true,
            },
        );
        assert_eq!(gz.headers()[header::CONTENT_ENCODING], "gzip");
        assert_ne!(
            gz.headers()[header::ETAG],
            plain.headers()[header::ETAG],
            "one tag per form"
        );
        let compressed = r.gzip().unwrap().clone();
        assert!(compressed.len() < r.body.len() / 4);
        assert!(
            std::ptr::eq(r.gzip().unwrap(), r.gzip().unwrap()),
            "compressed once"
        );
        let mut d = flate2::read::GzDecoder::new(&compressed[..]);
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut d, &mut out).unwrap();
        assert_eq!(out, r.body);
        let tag = plain.headers()[header::ETAG].as_bytes().to_vec();
        let not_modified = send(
            &r,
            Wants {
                if_none_match: Some(&tag),
                gzip: false,
            },
        );
        assert_eq!(not_modified.status(), StatusCode::NOT_MODIFIED);
        let gz_tag = gz.headers()[header::ETAG].as_bytes().to_vec();
        let nm = send(
            &r,
            Wants {
                if_none_match: Some(&gz_tag),
                gzip: true,
            },
        );
        assert_eq!(nm.status(), StatusCode::NOT_MODIFIED);
        let small = Rendered::new(Bytes::from_static(b"{}"), "application/json");
        assert!(small.gzip().is_none());
        let s = send(
            &small,
            Wants {
                if_none_match: None,
                gzip: true,
            },
        );
        assert!(s.headers().get(header::CONTENT_ENCODING).is_none());
    }
}
