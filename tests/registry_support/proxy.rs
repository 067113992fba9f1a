//! A fault-injecting HTTP proxy in front of a registry: per rule, it answers a status itself
//! (500, 429 with Retry-After), cuts a response or a request body after some bytes, or flips
//! a byte of a response body. One request per connection (it forces `Connection: close`).

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Action {
    /// Answer this status without asking the registry.
    Status {
        status: u16,
        retry_after: Option<u32>,
    },
    /// Relay only this many bytes of the response body, then drop the connection.
    CutResponse { after: usize },
    /// Relay only this many bytes of the request body, then drop the connection.
    CutRequest { after: usize },
    /// Relay the response with its first body byte changed.
    Corrupt,
    /// Relay only this many bytes of the response body, then send nothing more until the
    /// client goes away (a client killed mid-download).
    Stall { after: usize },
}

/// Applies `action` to the next `times` requests whose method is `method`, whose path
/// contains `path` and whose Content-Length is at least `min_length`.
#[derive(Debug)]
pub struct Rule {
    pub method: &'static str,
    pub path: &'static str,
    pub action: Action,
    pub times: usize,
    pub min_length: u64,
    /// How often it fired.
    pub fired: AtomicUsize,
}

impl Rule {
    pub fn new(method: &'static str, path: &'static str, action: Action, times: usize) -> Rule {
        Rule {
            method,
            path,
            action,
            times,
            min_length: 0,
            fired: AtomicUsize::new(0),
        }
    }

    /// Only for requests with at least this much body.
    pub fn with_min_length(mut self, min_length: u64) -> Rule {
        self.min_length = min_length;
        self
    }
}

pub struct FaultProxy {
    pub host: String,
    pub rules: Arc<Mutex<Vec<Arc<Rule>>>>,
    /// The head of every request received, in order.
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FaultProxy {
    /// The heads of the requests received so far that `keep` accepts, in order.
    pub fn requests_where(&self, keep: impl Fn(&str) -> bool) -> Vec<String> {
        self.requests
            .lock()
            .map(|requests| requests.iter().filter(|head| keep(head)).cloned().collect())
            .unwrap_or_default()
    }

    pub fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("proxy port");
        listener.set_nonblocking(true).expect("nonblocking");
        let host = format!(
            "127.0.0.1:{}",
            listener.local_addr().expect("proxy addr").port()
        );
        let rules = Arc::new(Mutex::new(
            rules.into_iter().map(Arc::new).collect::<Vec<_>>(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (rules, stop, upstream, requests) = (
                rules.clone(),
                stop.clone(),
                upstream.to_string(),
                requests.clone(),
            );
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let (rules, upstream, requests) =
                                (rules.clone(), upstream.clone(), requests.clone());
                            std::thread::spawn(move || {
                                let _ = client.set_nonblocking(false);
                                let _ = handle(client, &upstream, &rules, &requests);
                            });
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        FaultProxy {
            host,
            rules,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    /// How often each rule fired, in order.
    pub fn fired(&self) -> Vec<usize> {
        self.rules
            .lock()
            .map(|rules| {
                rules
                    .iter()
                    .map(|r| r.fired.load(Ordering::SeqCst))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads an HTTP head (through the blank line) one byte at a time, so no body byte is taken.
fn read_head(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        head.push(byte[0]);
        if head.len() > 64 << 10 {
            return Err(io::Error::other("head too large"));
        }
    }
    Ok(head)
}

/// The head with `Connection: close` instead of any Connection header.
fn force_close(head: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        if !line.to_ascii_lowercase().starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    out.into_bytes()
}

fn copy_limited(from: &mut TcpStream, to: &mut TcpStream, limit: Option<usize>) -> io::Result<()> {
    let mut buf = vec![0u8; 64 << 10];
    let mut left = limit.unwrap_or(usize::MAX);
    while left > 0 {
        let want = buf.len().min(left);
        let n = from.read(&mut buf[..want])?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n])?;
        left -= n;
    }
    Ok(())
}

fn handle(
    mut client: TcpStream,
    upstream: &str,
    rules: &Mutex<Vec<Arc<Rule>>>,
    requests: &Mutex<Vec<String>>,
) -> io::Result<()> {
    let head = read_head(&mut client)?;
    if let Ok(mut requests) = requests.lock() {
        requests.push(String::from_utf8_lossy(&head).into_owned());
    }
    let request_line = String::from_utf8_lossy(&head)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let length: u64 = String::from_utf8_lossy(&head)
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let action = rules.lock().ok().and_then(|rules| {
        rules
            .iter()
            .find(|r| {
                r.method == method
                    && path.contains(r.path)
                    && length >= r.min_length
                    && r.fired.load(Ordering::SeqCst) < r.times
            })
            .map(|r| {
                r.fired.fetch_add(1, Ordering::SeqCst);
                r.action.clone()
            })
    });
    if let Some(Action::Status {
        status,
        retry_after,
    }) = &action
    {
        let retry = retry_after
            .map(|s| format!("Retry-After: {s}\r\n"))
            .unwrap_or_default();
        let body = r#"{"errors":[{"code":"UNAVAILABLE","message":"injected fault"}]}"#;
        write!(
            client,
            "HTTP/1.1 {status} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n{body}",
            body.len()
        )?;
        let _ = client.shutdown(Shutdown::Write);
        // Drain what the client still sends so it reads our answer instead of a reset.
        client.set_read_timeout(Some(Duration::from_secs(2)))?;
        let _ = io::copy(&mut client, &mut io::sink());
        return Ok(());
    }
    let mut server = TcpStream::connect(upstream)?;
    server.write_all(&force_close(&head))?;
    let request_limit = match &action {
        Some(Action::CutRequest { after }) => Some(*after),
        _ => None,
    };
    let uploader = {
        let (mut from, mut to) = (client.try_clone()?, server.try_clone()?);
        std::thread::spawn(move || {
            let _ = copy_limited(&mut from, &mut to, request_limit);
            if request_limit.is_some() {
                let _ = from.shutdown(Shutdown::Both);
                let _ = to.shutdown(Shutdown::Both);
            }
        })
    };
    let result = (|| -> io::Result<()> {
        let response_head = read_head(&mut server)?;
        client.write_all(&response_head)?;
        match &action {
            Some(Action::CutResponse { after }) => {
                copy_limited(&mut server, &mut client, Some(*after))?;
                let _ = client.shutdown(Shutdown::Both);
            }
            Some(Action::Stall { after }) => {
                copy_limited(&mut server, &mut client, Some(*after))?;
                // Until the client closes its end.
                let _ = io::copy(&mut client.try_clone()?, &mut io::sink());
            }
            Some(Action::Corrupt) => {
                let mut first = [0u8; 1];
                if server.read(&mut first)? == 1 {
                    client.write_all(&[first[0] ^ 0xff])?;
                }
                copy_limited(&mut server, &mut client, None)?;
            }
            _ => copy_limited(&mut server, &mut client, None)?,
        }
        Ok(())
    })();
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
    let _ = uploader.join();
    result
}
