//! What a client can hold, against the real binary: a connection that never finishes its
//! request head is closed, a head may not grow without bound, and past the connection cap new
//! connections are closed at once while the ones already open keep the server usable.

use std::time::{Duration, Instant};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::{helpers::TestDatabase, ops::Process};

fn host(server: &Process) -> String {
    server.address.trim_start_matches("http://").to_owned()
}

/// Waits up to `limit` for the server to close `stream`; returns how long it took, or `None`
/// if it was still open (anything the server sends before closing is read and dropped).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(
            tokio::time::Instant::from_std(started + limit),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
        }
    }
}

/// `GET /healthz` on a fresh connection: the status, or `None` if the connection was closed
/// without an answer.
async fn healthz(host: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(host).await.ok()?;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
        .await
        .ok()?
        .ok()?;
    let text = String::from_utf8_lossy(&answer);
    text.split(' ').nth(1)?.parse().ok()
}

/// A database of the test's own (a file in `dir` on SQLite).
async fn temp_db(dir: &tempfile::TempDir) -> TestDatabase {
    TestDatabase::create(dir.path(), "conn.db").await
}

#[tokio::test]
async fn a_half_sent_head_and_an_idle_keep_alive_are_closed_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let database = temp_db(&dir).await;
    let server = Process::start_with(&database.url, &[("WXLOGIN_HEADER_TIMEOUT_SECONDS", "2")]);
    let host = host(&server);

    let mut half = TcpStream::connect(&host).await.unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let took = closed_within(&mut half, Duration::from_secs(6)).await;
    assert!(
        took.is_some_and(|t| t >= Duration::from_millis(1500)),
        "half a head: closed after {took:?}"
    );

    // A head trickled a byte at a time doesn't restart the clock.
    let mut trickle = TcpStream::connect(&host).await.unwrap();
    trickle
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut closed = false;
    while started.elapsed() < Duration::from_secs(6) {
        if trickle.write_all(b"X").await.is_err() {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(closed, "a trickled head is cut off");

    // A kept-alive connection that idles after its answer is closed too.
    let mut idle = TcpStream::connect(&host).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 200"));
    let took = closed_within(&mut idle, Duration::from_secs(6)).await;
    assert!(took.is_some(), "an idle keep-alive connection is closed");
}

#[tokio::test]
async fn a_request_head_over_16_kib_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let database = temp_db(&dir).await;
    let server = Process::start_with(&database.url, &[]);
    let mut stream = TcpStream::connect(host(&server)).await.unwrap();
    let big = "a".repeat(64 * 1024);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    // The server may close while we are still writing.
    let _ = stream.write_all(request.as_bytes()).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer);
    assert!(
        !text.starts_with("HTTP/1.1 200"),
        "a 64 KiB head was served: {text}"
    );
    // Ordinary requests are unaffected.
    assert_eq!(healthz(&host(&server)).await, Some(200));
}

#[tokio::test]
async fn past_the_connection_cap_new_connections_are_closed_until_a_slot_frees() {
    let dir = tempfile::tempdir().unwrap();
    let database = temp_db(&dir).await;
    let server = Process::start_with(
        &database.url,
        &[
            ("WXLOGIN_MAX_CONNECTIONS", "20"),
            ("WXLOGIN_HEADER_TIMEOUT_SECONDS", "60"),
        ],
    );
    let host = host(&server);
    assert_eq!(healthz(&host).await, Some(200));
    // That check's connection holds a slot until the server has seen it close; on a busy
    // machine that can take a moment, and one of the twenty below would be refused in its
    // place (and the extra one let in when it goes).
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Twenty connections that say nothing take every slot.
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(&host).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let mut extra = TcpStream::connect(&host).await.unwrap();
    let took = closed_within(&mut extra, Duration::from_secs(2)).await;
    assert!(
        took.is_some(),
        "a connection past the cap is closed at once"
    );
    assert_eq!(healthz(&host).await, None, "no answer while full");

    drop(held.pop());
    let answered = crate::helpers::poll(50, Duration::from_millis(100), || async {
        (healthz(&host).await == Some(200)).then_some(())
    })
    .await;
    assert!(answered.is_some(), "/healthz answers once a slot frees");
}
