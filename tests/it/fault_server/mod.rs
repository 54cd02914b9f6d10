//! A loopback HTTP/1.1 server that misbehaves on purpose, for the adapters' fault tests.
//!
//! Each request is answered by a script (`Fn(&Seen) -> Action`): answer normally, never
//! answer, reset or close in the middle of the body, drip the answer byte by byte. It runs
//! on a Tokio runtime of its own in a background thread, so blocking and async clients can
//! both use it; dropping it stops it and closes every connection.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A request as the server read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the server does with a request.
#[derive(Debug, Clone)]
pub enum Action {
    /// Answer with this status, extra headers and body (`content-length` framing), then close.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Answer with `chunked` framing, in chunks of `chunk` bytes.
    Chunked {
        status: u16,
        body: Vec<u8>,
        chunk: usize,
    },
    /// Keep the connection open and never answer.
    Silent,
    /// Send the head (declaring `declared` body bytes) and `sent` bytes of body, then reset
    /// the connection (`SO_LINGER` 0: an RST, not a FIN).
    ResetMidBody { declared: usize, sent: usize },
    /// As `ResetMidBody`, but close normally (a FIN): the body is just cut short.
    CloseMidBody { declared: usize, sent: usize },
    /// Write the whole answer one byte at a time, `every` apart.
    Drip {
        status: u16,
        body: Vec<u8>,
        every: Duration,
    },
}

impl Action {
    pub fn json(status: u16, body: impl Into<Vec<u8>>) -> Action {
        Action::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into(),
        }
    }

    pub fn redirect(status: u16, location: &str) -> Action {
        Action::Respond {
            status,
            headers: vec![("location".into(), location.into())],
            body: b"moved".to_vec(),
        }
    }
}

type Script = dyn Fn(&Seen) -> Action + Send + Sync;

pub struct FaultServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FaultServer {
    /// Serves `script` on `127.0.0.1:0`.
    pub fn start(script: impl Fn(&Seen) -> Action + Send + Sync + 'static) -> FaultServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script: Arc<Script> = Arc::new(script);
        let (seen2, stop2) = (Arc::clone(&seen), Arc::clone(&stop));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).unwrap();
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        continue;
                    };
                    if stop2.load(Ordering::SeqCst) {
                        break;
                    }
                    let (script, seen) = (Arc::clone(&script), Arc::clone(&seen2));
                    tokio::spawn(serve(stream, script, seen));
                }
            });
            // Dropping the runtime cancels every connection task and closes its socket.
        });
        FaultServer {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// Every request answered the same way.
    pub fn always(action: Action) -> FaultServer {
        FaultServer::start(move |_| action.clone())
    }

    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests read so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A base URL on which nothing listens: bind an ephemeral port, then close it.
pub fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

async fn serve(mut stream: TcpStream, script: Arc<Script>, seen: Arc<Mutex<Vec<Seen>>>) {
    let _ = stream.set_nodelay(true);
    let Some(request) = read_request(&mut stream).await else {
        return;
    };
    let action = script(&request);
    seen.lock().unwrap().push(request);
    let _ = act(&mut stream, action).await;
}

async fn act(stream: &mut TcpStream, action: Action) -> std::io::Result<()> {
    match action {
        Action::Respond {
            status,
            headers,
            body,
        } => {
            let mut out = head(status, &headers, Some(body.len()));
            out.extend_from_slice(&body);
            stream.write_all(&out).await?;
            stream.shutdown().await
        }
        Action::Chunked {
            status,
            body,
            chunk,
        } => {
            let headers = [("transfer-encoding".to_owned(), "chunked".to_owned())];
            stream.write_all(&head(status, &headers, None)).await?;
            for piece in body.chunks(chunk.max(1)) {
                stream
                    .write_all(format!("{:x}\r\n", piece.len()).as_bytes())
                    .await?;
                stream.write_all(piece).await?;
                stream.write_all(b"\r\n").await?;
            }
            stream.write_all(b"0\r\n\r\n").await?;
            stream.shutdown().await
        }
        Action::Silent => {
            // Hold the connection until the server stops.
            std::future::pending::<()>().await;
            Ok(())
        }
        Action::ResetMidBody { declared, sent } | Action::CloseMidBody { declared, sent } => {
            let reset = matches!(action, Action::ResetMidBody { .. });
            let mut out = head(200, &[], Some(declared));
            out.resize(out.len() + sent, b'{');
            stream.write_all(&out).await?;
            stream.flush().await?;
            // Let the client read the head and the start of the body first.
            tokio::time::sleep(Duration::from_millis(50)).await;
            if reset {
                #[allow(deprecated)] // SO_LINGER 0 does not block: it resets at once.
                stream.set_linger(Some(Duration::ZERO))?;
            }
            Ok(()) // the stream is dropped: RST or FIN
        }
        Action::Drip {
            status,
            body,
            every,
        } => {
            let mut out = head(status, &[], Some(body.len()));
            out.extend_from_slice(&body);
            for byte in out {
                stream.write_all(&[byte]).await?;
                stream.flush().await?;
                tokio::time::sleep(every).await;
            }
            stream.shutdown().await
        }
    }
}

fn head(status: u16, headers: &[(String, String)], length: Option<usize>) -> Vec<u8> {
    let reason = match status {
        200 => "OK",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        500 => "Internal Server Error",
        _ => "Whatever",
    };
    let mut out = format!("HTTP/1.1 {status} {reason}\r\nconnection: close\r\n");
    if let Some(n) = length {
        out.push_str(&format!("content-length: {n}\r\n"));
    }
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// Reads one request: head up to the blank line, then `content-length` bytes of body.
async fn read_request(stream: &mut TcpStream) -> Option<Seen> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buf.len() > 64 * 1024 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next()?.split(' ');
    let method = start.next()?.to_owned();
    let path = start.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}
