//! A local HTTP/1.1 server for tests of REST clients against exchanges written from an API's
//! published reference: it records every request (method, path, headers, body) and answers
//! each with what the test's responder returns. Each answer closes its connection.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request the stub received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `POST`, `GET`, …
    pub method: String,
    /// The path with its query.
    pub path: String,
    /// Headers, names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON (`Null` when empty or not JSON).
    pub body: serde_json::Value,
}

impl Recorded {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the responder is given and returns: the request and the ones before it (oldest first);
/// the status and JSON body of the answer.
pub type Responder = dyn Fn(&Recorded, &[Recorded]) -> (u16, String) + Send + Sync;

/// A running stub server.
#[derive(Clone, Debug)]
pub struct HttpStub {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    seen: Arc<Mutex<Vec<Recorded>>>,
}

impl HttpStub {
    /// Starts a stub answering with `respond`; it lives as long as the test's runtime.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start(
        respond: impl Fn(&Recorded, &[Recorded]) -> (u16, String) + Send + Sync + 'static,
    ) -> HttpStub {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a local port");
        let addr = listener.local_addr().expect("its address");
        let seen: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let respond: Arc<Responder> = Arc::new(respond);
        let log = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let (log, respond) = (Arc::clone(&log), Arc::clone(&respond));
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else {
                        return;
                    };
                    let (status, body) = {
                        let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
                        let answer = respond(&req, &log);
                        log.push(req);
                        answer
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        reason(status),
                        body.len()
                    );
                    let _ = sock.write_all(resp.as_bytes()).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        HttpStub {
            url: format!("http://{addr}"),
            seen,
        }
    }

    /// The requests received so far, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A stand-in of Milvus's REST import jobs (2.4+), answering as milvus.io's "Import (v2)"
/// reference documents: the n-th `create` returns job `job-<n>`; a progress request for a job
/// answers `Completed` with `importedRows` = the sum of `rows_of(first path)` over the files
/// that job's `create` listed; an unknown job id answers code 100 "job … not found".
pub async fn completing_import_jobs(
    rows_of: impl Fn(&str) -> u64 + Send + Sync + 'static,
) -> HttpStub {
    HttpStub::start(move |req: &Recorded, before| {
        let creates: Vec<&Recorded> = before
            .iter()
            .filter(|r| r.path.ends_with("/create"))
            .collect();
        if req.path.ends_with("/create") {
            let id = format!("job-{}", creates.len());
            return (
                200,
                serde_json::json!({"code": 0, "data": {"jobId": id}}).to_string(),
            );
        }
        let id = req.body["jobId"].as_str().unwrap_or_default().to_string();
        let n: usize = id.trim_start_matches("job-").parse().unwrap_or(usize::MAX);
        let Some(create) = creates.get(n) else {
            let missing =
                serde_json::json!({"code": 100, "message": format!("job {id} not found")});
            return (200, missing.to_string());
        };
        let rows: u64 = create.body["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|group| group[0].as_str())
            .map(&rows_of)
            .sum();
        let answer = serde_json::json!({"code": 0, "data": {
            "jobId": id, "collectionName": create.body["collectionName"], "state": "Completed",
            "progress": 100, "reason": "", "importedRows": rows, "totalRows": rows, "details": []
        }});
        (200, answer.to_string())
    })
    .await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = serde_json::from_slice(&buf[head_end..]).unwrap_or(serde_json::Value::Null);
    Some(Recorded {
        method,
        path,
        headers,
        body,
    })
}
