//! Hostile HTTP against the central's observation port (`METRICS_PORT`),
//! beside `tests/hostile.rs`'s agencies: malformed, oversized and slow
//! requests, other methods and paths get their status (or a close), the
//! port's connection cap refuses the next one, and all the while the agency
//! port answers at once: the one loop serves both, and is never stalled.

mod util;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use lottery::observe::endpoint::{MAX_HTTP_CONNECTIONS, REQUEST_TIMEOUT};
use lottery::wire::kind;
use util::{Central, Observer, get_winners_frame, parse_http, temp_dir};

/// A GET_WINNERS wait=0 on the agency port is answered NOT_READY well
/// within `within` (a bound for a stalled loop, not a speed measure).
fn agency_port_answers(central: &Central, within: Duration) {
    let mut peer = central.connect();
    peer.set_timeout(within);
    peer.send(&get_winners_frame(1, false));
    let frame = peer
        .try_recv()
        .expect("the agency port answers while the HTTP port is attacked");
    assert_eq!(frame.kind, kind::NOT_READY);
}

/// Everything the central sends on `stream` until it closes it (or
/// `wait` passes): `None` if it did not close.
fn read_to_close(stream: &mut TcpStream, wait: Duration) -> Option<Vec<u8>> {
    let deadline = Instant::now() + wait;
    let mut all = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return Some(all),
            Ok(n) => all.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return None;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // A reset: closed (what it sent before may be lost with it).
            Err(_) => return Some(all),
        }
    }
}

/// The status the central answered on `stream`, or `None` for a close
/// without a response.
fn answered(stream: &mut TcpStream, wait: Duration) -> Option<u16> {
    let bytes = read_to_close(stream, wait).expect("the central closes the connection");
    parse_http(&bytes).map(|r| r.status)
}

fn start(name: &str) -> (Central, Observer) {
    let dir = temp_dir(name);
    let port = util::free_port();
    let central = Central::start(&dir, 2, &[("METRICS_PORT", &port.to_string())]);
    (central, Observer::new(port))
}

#[test]
fn malformed_other_methods_and_unknown_paths_get_their_status() {
    let (central, observer) = start("http-statuses");
    for (request, want) in [
        (
            &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n"[..],
            400,
        ),
        (b"GET /metrics HTTP/7.1\r\n\r\n", 400),
        (b"GET\r\n\r\n", 400),
        (b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", 405),
        (b"DELETE / HTTP/1.1\r\n\r\n", 405),
        (b"GET /admin HTTP/1.1\r\n\r\n", 404),
        (b"GET /metrics HTTP/1.1\r\n\r\n", 200),
        (b"GET /status?x=1 HTTP/1.0\r\n\r\n", 200),
    ] {
        let r = observer.raw(request);
        assert_eq!(
            r.status,
            want,
            "{:?}: {r:?}",
            String::from_utf8_lossy(request)
        );
        assert!(r.head.contains("Connection: close"), "{}", r.head);
    }
    agency_port_answers(&central, Duration::from_secs(5));
}

#[test]
fn a_huge_request_head_is_refused_431_or_closed_and_the_loop_goes_on() {
    let (central, observer) = start("http-huge");
    let mut s = TcpStream::connect(&observer.addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nX-Filler: ").unwrap();
    // Far past the head's bound; the central may close before it all goes.
    let filler = vec![b'a'; 64 * 1024];
    let _ = s.write_all(&filler);
    let status = answered(&mut s, Duration::from_secs(5));
    assert!(matches!(status, Some(431) | None), "{status:?}");
    agency_port_answers(&central, Duration::from_secs(5));
    // Many headers, each small: 431 too.
    let many: String = (0..100).map(|i| format!("H{i}: v\r\n")).collect();
    let r = observer.raw(format!("GET /metrics HTTP/1.1\r\n{many}\r\n").as_bytes());
    assert_eq!(r.status, 431, "{r:?}");
    assert_eq!(observer.get("/metrics").status, 200);
}

#[test]
fn a_slow_request_gets_408_while_the_agency_port_keeps_answering() {
    let (central, observer) = start("http-slow");
    let mut slow = TcpStream::connect(&observer.addr).unwrap();
    slow.write_all(b"GET /metr").unwrap();
    let started = Instant::now();
    // While the slow request waits, the agency port and other scrapes are
    // answered, again and again.
    while started.elapsed() < REQUEST_TIMEOUT / 2 {
        agency_port_answers(&central, Duration::from_secs(2));
        assert_eq!(observer.get("/metrics").status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let status = answered(&mut slow, REQUEST_TIMEOUT + Duration::from_secs(5));
    assert_eq!(status, Some(408));
    assert!(started.elapsed() >= REQUEST_TIMEOUT);
}

#[test]
fn connections_past_the_cap_are_refused_and_the_cap_frees_up() {
    let (central, observer) = start("http-cap");
    let idle: Vec<TcpStream> = (0..MAX_HTTP_CONNECTIONS)
        .map(|_| TcpStream::connect(&observer.addr).unwrap())
        .collect();
    // The cap's connections are open: a scrape through one of them would
    // still be served, but one more is closed without an answer.
    agency_port_answers(&central, Duration::from_secs(5));
    let mut extra = TcpStream::connect(&observer.addr).unwrap();
    let _ = extra.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
    let got = read_to_close(&mut extra, Duration::from_secs(5)).expect("closed at the cap");
    assert!(
        parse_http(&got).is_none(),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    agency_port_answers(&central, Duration::from_secs(5));
    // Once the idle ones are gone, the port serves again.
    drop(idle);
    let deadline = Instant::now() + Duration::from_secs(10);
    let served = loop {
        let mut s = TcpStream::connect(&observer.addr).unwrap();
        let _ = s.write_all(b"GET /metrics HTTP/1.1\r\n\r\n");
        if let Some(bytes) = read_to_close(&mut s, Duration::from_secs(5))
            && let Some(r) = parse_http(&bytes)
        {
            break r;
        }
        assert!(Instant::now() < deadline, "the cap never freed up");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(served.status, 200);
    let m = util::Metrics(served.body);
    assert!(m.value("lottery_http_connections_refused_total") >= 1.0);
}
