//! The little of HTTP/1.1 the central's observation port speaks (pure:
//! bytes in, a route or a status out; a status and a body in, bytes out).
//!
//! A request head is parsed with `httparse` once it is whole; until then
//! the caller keeps reading, up to [`MAX_HEAD`] bytes. Only `GET` of three
//! paths is served; everything else is answered with its status and the
//! connection is closed after every response (`Connection: close`), so
//! there is no keep-alive, no pipelining and no request body to track.
//!
//! # Format
//!
//! ```text
//! GET /metrics HTTP/1.1\r\n    -> 200, Prometheus text format 0.0.4
//! GET /status HTTP/1.1\r\n     -> 200, JSON
//! GET / HTTP/1.1\r\n           -> 200, the HTML page
//! ```
//!
//! A query string is ignored. Malformed head: 400; head past
//! [`MAX_HEAD`] or too many headers: 431; another method: 405 (with
//! `Allow: GET`); another path: 404.

/// The longest request head read; past it the answer is 431.
pub const MAX_HEAD: usize = 8 * 1024;

/// Headers parsed at most; more is 431 too.
const MAX_HEADERS: usize = 32;

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics`
    Metrics,
    /// `GET /status`
    Status,
    /// `GET /`
    Page,
}

/// The statuses the port answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    HeaderFieldsTooLarge,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::RequestTimeout => 408,
            Status::HeaderFieldsTooLarge => 431,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::RequestTimeout => "Request Timeout",
            Status::HeaderFieldsTooLarge => "Request Header Fields Too Large",
        }
    }
}

/// Parses what was read of a request: `Ok(None)` while the head is not
/// whole (read more), `Ok(Some(route))` for a request to serve, `Err` with
/// the status that answers anything else.
pub fn parse(input: &[u8]) -> Result<Option<Route>, Status> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(input) {
        Ok(httparse::Status::Partial) if input.len() >= MAX_HEAD => {
            Err(Status::HeaderFieldsTooLarge)
        }
        Ok(httparse::Status::Partial) => Ok(None),
        Ok(httparse::Status::Complete(n)) if n > MAX_HEAD => Err(Status::HeaderFieldsTooLarge),
        Ok(httparse::Status::Complete(_)) => {
            let path = request.path.unwrap_or("");
            let path = path.split_once('?').map_or(path, |(p, _)| p);
            let route = match path {
                "/metrics" => Route::Metrics,
                "/status" => Route::Status,
                "/" | "/index.html" => Route::Page,
                _ if !path.starts_with('/') => return Err(Status::BadRequest),
                _ => return Err(Status::NotFound),
            };
            if request.method != Some("GET") {
                return Err(Status::MethodNotAllowed);
            }
            Ok(Some(route))
        }
        Err(httparse::Error::TooManyHeaders) => Err(Status::HeaderFieldsTooLarge),
        Err(_) => Err(Status::BadRequest),
    }
}

/// A whole response: status line, headers, body; the connection closes
/// after it.
pub fn response(status: Status, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 160);
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n{}Connection: close\r\n\r\n",
        status.code(),
        status.reason(),
        body.len(),
        if status == Status::MethodNotAllowed {
            "Allow: GET\r\n"
        } else {
            ""
        }
    );
    out.extend_from_slice(head.as_bytes());
    out.extend_from_slice(body);
    out
}

/// The response for a request refused with `status`: a line of text.
pub fn refusal(status: Status) -> Vec<u8> {
    let body = format!("{} {}\n", status.code(), status.reason());
    response(status, "text/plain; charset=utf-8", body.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_paths_are_routed_and_a_query_is_ignored() {
        let get = |path: &str| parse(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        assert_eq!(get("/metrics"), Ok(Some(Route::Metrics)));
        assert_eq!(get("/status?x=1"), Ok(Some(Route::Status)));
        assert_eq!(get("/"), Ok(Some(Route::Page)));
        assert_eq!(get("/nope"), Err(Status::NotFound));
    }

    #[test]
    fn a_head_is_read_whole_at_every_split() {
        let whole = b"GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n";
        for at in 0..whole.len() {
            assert_eq!(parse(&whole[..at]), Ok(None), "split at {at}");
        }
        assert_eq!(parse(whole), Ok(Some(Route::Metrics)));
    }

    #[test]
    fn other_methods_malformed_and_huge_heads_get_their_status() {
        assert_eq!(
            parse(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Err(Status::MethodNotAllowed)
        );
        assert_eq!(
            parse(b"\x16\x03\x01\x02\x00\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            parse(b"GET /metrics HTTP/9\r\n\r\n"),
            Err(Status::BadRequest)
        );
        let mut huge = b"GET / HTTP/1.1\r\nX: ".to_vec();
        huge.resize(MAX_HEAD, b'a');
        assert_eq!(parse(&huge), Err(Status::HeaderFieldsTooLarge));
        let many: String = (0..40).map(|i| format!("H{i}: v\r\n")).collect();
        assert_eq!(
            parse(format!("GET / HTTP/1.1\r\n{many}\r\n").as_bytes()),
            Err(Status::HeaderFieldsTooLarge)
        );
    }

    #[test]
    fn a_response_says_its_length_and_that_the_connection_closes() {
        let r = String::from_utf8(response(Status::Ok, "text/plain", b"hello")).unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Length: 5\r\n") && r.contains("Connection: close\r\n"));
        assert!(r.ends_with("\r\n\r\nhello"));
        let r = String::from_utf8(refusal(Status::MethodNotAllowed)).unwrap();
        assert!(r.contains("Allow: GET\r\n"), "{r}");
    }
}
