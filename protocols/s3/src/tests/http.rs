//! The HTTP wiring: `s3_service` + `serve` on loopback, spoken to with raw
//! HTTP/1.1 (signed-request behaviour is tested with real clients in
//! interop-tests/).

use super::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub(super) async fn start(h: &Harness, domain: Option<&str>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = crate::s3_service(
        h.fs.clone(),
        h.ids.clone(),
        domain.map(str::to_string),
        "us-east-1".into(),
        crate::DEFAULT_STALL,
    )
    .unwrap();
    tokio::spawn(crate::serve(listener, service));
    addr
}

pub(super) async fn exchange(addr: std::net::SocketAddr, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn unsigned_requests_are_denied_and_unknown_keys_are_refused() {
    let h = Harness::new();
    let addr = start(&h, None).await;
    let r = exchange(
        addr,
        "GET /default/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
    assert!(r.contains("<Code>AccessDenied</Code>"), "{r}");

    let now = time::OffsetDateTime::now_utc();
    let date = format!(
        "{:04}{:02}{:02}",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        now.hour(),
        now.minute(),
        now.second()
    );
    let signed = "GET /default/x HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
        x-amz-date: STAMP\r\n\
        x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n\
        Authorization: AWS4-HMAC-SHA256 Credential=NOSUCHKEY/DATE/us-east-1/s3/aws4_request, \
        SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000\r\n\r\n"
        .replace("STAMP", &stamp)
        .replace("DATE", &date);
    let r = exchange(addr, &signed).await;
    assert!(r.contains("<Code>InvalidAccessKeyId</Code>"), "{r}");

    // A known key with a wrong signature.
    let wrong = signed.replace("NOSUCHKEY", ROOT);
    let r = exchange(addr, &wrong).await;
    assert!(r.contains("<Code>SignatureDoesNotMatch</Code>"), "{r}");
}

#[tokio::test]
async fn a_bad_virtual_host_domain_is_a_setup_error() {
    let h = Harness::new();
    assert!(crate::s3_service(
        h.fs.clone(),
        h.ids.clone(),
        Some("bad domain!".into()),
        "us-east-1".into(),
        crate::DEFAULT_STALL,
    )
    .is_err());
    let addr = start(&h, Some("s3.example.com")).await;
    let r = exchange(
        addr,
        "GET /x HTTP/1.1\r\nHost: default.s3.example.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 403"), "{r}");
}

/// Reads one response from `s`: its head, then a Content-Length body.
async fn read_response(s: &mut tokio::net::TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8; 1];
    while !out.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).await.unwrap(),
            1,
            "EOF in a response head"
        );
        out.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&out).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |n| n.trim().parse::<usize>().unwrap());
    let mut body = vec![0u8; length];
    s.read_exact(&mut body).await.unwrap();
    out.extend_from_slice(&body);
    String::from_utf8_lossy(&out).into_owned()
}

fn closes(response: &str) -> bool {
    response
        .to_ascii_lowercase()
        .contains("\r\nconnection: close\r\n")
}

#[tokio::test]
async fn an_answer_before_a_held_back_body_ends_the_connection() {
    let h = Harness::new();
    let addr = start(&h, None).await;
    // hyper heeds the last of several Expect headers.
    for expect in ["Expect: 100-continue", "Expect: x\r\nExpect: 100-Continue"] {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "PUT /default/x HTTP/1.1\r\nHost: 127.0.0.1\r\n{expect}\r\nContent-Length: 1\r\n\r\n"
        );
        s.write_all(head.as_bytes()).await.unwrap();
        let first = read_response(&mut s).await;
        assert!(first.starts_with("HTTP/1.1 403"), "{first}");
        assert!(closes(&first), "{expect}: {first}");
        // As botocore does after a final status: no body, the next request.
        // Its first byte must not be taken for the body.
        let _ = s
            .write_all(b"HEAD /default/y HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await;
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest).await; // EOF, or a reset
        assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    }
}

#[tokio::test]
async fn a_body_read_after_100_continue_keeps_the_connection() {
    let h = Harness::new();
    let addr = start(&h, None).await;
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    // The front reads a DeleteObjects body before s3s refuses the request.
    let body = "<Delete><Object><Key>a</Key></Object></Delete>";
    let head = format!(
        "POST /default?delete HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let go = read_response(&mut s).await;
    assert!(go.starts_with("HTTP/1.1 100 Continue"), "{go}");
    s.write_all(body.as_bytes()).await.unwrap();
    let answer = read_response(&mut s).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(!closes(&answer), "{answer}");
    s.write_all(b"GET /default/y HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let next = read_response(&mut s).await;
    assert!(next.starts_with("HTTP/1.1 403"), "{next}");
    assert!(next.contains("<Code>AccessDenied</Code>"), "{next}");
}
