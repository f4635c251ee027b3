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
        "us-east-1".into()
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
