//! Outbound HTTP for activities, over `wasi:http`. Orchestrations that try it are refused by
//! the host.

use crate::Error;
use base64::Engine as _;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};
use wasip2::io::streams::StreamError;

/// An HTTP request being built.
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

/// A received response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// True for 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Request {
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers
            .push((name.to_ascii_lowercase(), value.as_bytes().to_vec()));
        self
    }

    /// HTTP basic authentication.
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        self.header("authorization", &format!("Basic {token}"))
    }

    /// An `application/x-www-form-urlencoded` body.
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.body = body.into_bytes();
        self.header("content-type", "application/x-www-form-urlencoded")
    }

    /// A JSON body.
    pub fn json(mut self, value: &impl serde::Serialize) -> Result<Self, Error> {
        self.body = serde_json::to_vec(value)?;
        Ok(self.header("content-type", "application/json"))
    }

    /// The headers as sent: those set, and the body's length.
    fn wire_headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut headers = self.headers.clone();
        headers.push((
            "content-length".to_string(),
            self.body.len().to_string().into_bytes(),
        ));
        headers
    }

    /// Sends the request and reads the whole response.
    pub fn send(self) -> Result<Response, Error> {
        let (scheme, authority, path) = split_url(&self.url)?;
        let headers = self.wire_headers();
        let fields = Fields::from_list(&headers)
            .map_err(|e| Error::new(format!("invalid header: {e:?}")))?;
        let request = OutgoingRequest::new(fields);
        let invalid = |what: &str| Error::new(format!("invalid {what} in '{}'", self.url));
        request
            .set_method(&self.method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(authority))
            .map_err(|()| invalid("authority"))?;
        request
            .set_path_with_query(Some(path))
            .map_err(|()| invalid("path"))?;
        let outgoing = request
            .body()
            .map_err(|()| Error::new("request body taken twice"))?;
        let future = outgoing_handler::handle(request, None)
            .map_err(|e| Error::with_kind("http", format!("{e:?}")))?;
        {
            let stream = outgoing
                .write()
                .map_err(|()| Error::new("request body stream taken twice"))?;
            for chunk in self.body.chunks(4096) {
                stream
                    .blocking_write_and_flush(chunk)
                    .map_err(|e| Error::with_kind("http", format!("writing body: {e:?}")))?;
            }
        }
        OutgoingBody::finish(outgoing, None)
            .map_err(|e| Error::with_kind("http", format!("{e:?}")))?;
        future.subscribe().block();
        let response = future
            .get()
            .ok_or_else(|| Error::new("response not ready after waiting"))?
            .map_err(|()| Error::new("response taken twice"))?
            .map_err(|e| Error::with_kind("http", format!("{e:?}")))?;
        let status = response.status();
        let incoming = response
            .consume()
            .map_err(|()| Error::new("response body taken twice"))?;
        let body = read_all(&incoming)?;
        drop(incoming);
        Ok(Response { status, body })
    }
}

/// The scheme, the authority and the path (with the query) of an `http` or `https` URL.
fn split_url(url: &str) -> Result<(Scheme, &str, &str), Error> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => (Scheme::Http, rest),
        Some(("https", rest)) => (Scheme::Https, rest),
        _ => return Err(Error::new(format!("unsupported URL '{url}'"))),
    };
    Ok(match rest.find('/') {
        Some(i) => (scheme, &rest[..i], &rest[i..]),
        None => (scheme, rest, "/"),
    })
}

fn read_all(body: &IncomingBody) -> Result<Vec<u8>, Error> {
    let stream = body
        .stream()
        .map_err(|()| Error::new("response stream taken twice"))?;
    let mut out = Vec::new();
    loop {
        match stream.blocking_read(64 * 1024) {
            Ok(chunk) => out.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(Error::with_kind(
                    "http",
                    format!("reading body: {}", e.to_debug_string()),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
        request
            .headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| std::str::from_utf8(v).expect("UTF-8 header"))
    }

    #[test]
    fn a_url_splits_into_scheme_authority_and_path_with_query() {
        let (scheme, authority, path) = split_url("https://api.example.com:8443/a/b?c=d").unwrap();
        assert!(matches!(scheme, Scheme::Https));
        assert_eq!(authority, "api.example.com:8443");
        assert_eq!(path, "/a/b?c=d");
        let (scheme, authority, path) = split_url("http://127.0.0.1:9000").unwrap();
        assert!(matches!(scheme, Scheme::Http));
        assert_eq!((authority, path), ("127.0.0.1:9000", "/"));
    }

    #[test]
    fn only_http_and_https_urls_are_sent() {
        for url in ["ftp://example.com/x", "example.com/x", ""] {
            let e = split_url(url).expect_err("refused");
            assert_eq!(e.message(), format!("unsupported URL '{url}'"));
        }
    }

    #[test]
    fn header_names_are_lowercased_and_the_body_length_is_sent() {
        let request = Request::post("http://h/").header("Idempotency-Key", "i-1/3");
        assert_eq!(header(&request, "idempotency-key"), Some("i-1/3"));
        let request = request.json(&serde_json::json!({ "a": 1 })).unwrap();
        let wire = request.wire_headers();
        let length = wire.iter().find(|(n, _)| n == "content-length").unwrap();
        assert_eq!(length.1, b"7");
        assert_eq!(request.body, br#"{"a":1}"#);
        assert_eq!(header(&request, "content-type"), Some("application/json"));
    }

    #[test]
    fn basic_auth_is_base64_of_user_colon_password() {
        let request = Request::get("https://h/").basic_auth("AC123", "secret");
        // base64("AC123:secret")
        assert_eq!(
            header(&request, "authorization"),
            Some("Basic QUMxMjM6c2VjcmV0")
        );
    }

    #[test]
    fn a_form_is_url_encoded() {
        let request = Request::post("https://h/").form(&[("To", "+1 425"), ("Body", "a&b=c")]);
        assert_eq!(
            std::str::from_utf8(&request.body).unwrap(),
            "To=%2B1+425&Body=a%26b%3Dc"
        );
        assert_eq!(
            header(&request, "content-type"),
            Some("application/x-www-form-urlencoded")
        );
    }

    #[test]
    fn a_response_is_a_success_for_2xx_only() {
        let response = |status| Response {
            status,
            body: b"ok \xff".to_vec(),
        };
        assert!(response(200).is_success() && response(299).is_success());
        assert!(!response(199).is_success() && !response(300).is_success());
        assert_eq!(response(500).text(), "ok \u{fffd}");
    }
}
