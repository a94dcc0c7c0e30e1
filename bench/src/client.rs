//! One simulated browser: its session id, the proof cookie the server gave it, and calls to
//! server functions made exactly as the web client makes them (the session header, both
//! cookies, a JSON body).

use serde_json::Value;

pub const PROOF_COOKIE: &str = "__Host-confide_proof";

#[derive(Debug, Clone)]
pub struct Browser {
    pub sid: String,
    pub proof: Option<String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

/// What a server function answered.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    /// The JSON body, or the body as a JSON string if it was not JSON.
    pub body: Value,
    /// The answer set a proof cookie although the browser already held a different one:
    /// the server forgot the session and claimed its id afresh.
    pub proof_replaced: bool,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The answer `res` carries: its JSON body, or the body as a JSON string.
    async fn read(res: reqwest::Response, proof_replaced: bool) -> Result<Self, reqwest::Error> {
        let status = res.status().as_u16();
        let bytes = res.bytes().await?;
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok(Self {
            status,
            body,
            proof_replaced,
        })
    }

    /// The stable error code (`store_unavailable`, `busy`, …), or "" on success.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or("")
    }
}

impl Browser {
    /// A new browser profile with a fresh session id and no proof yet.
    pub fn new() -> Self {
        Self {
            sid: uuid::Uuid::new_v4().to_string(),
            proof: None,
        }
    }

    pub fn cookie(&self) -> String {
        match &self.proof {
            Some(p) => format!("__Host-confide_sid={}; {PROOF_COOKIE}={p}", self.sid),
            None => format!("__Host-confide_sid={}", self.sid),
        }
    }

    /// One call; an issued proof is kept, as a browser keeps the cookie.
    pub async fn request(
        &mut self,
        http: &reqwest::Client,
        base: &str,
        endpoint: &str,
        body: &Value,
    ) -> Result<Answer, reqwest::Error> {
        let res = http
            .post(format!("{base}/api/{endpoint}"))
            .header("x-confide-session", &self.sid)
            .header("cookie", self.cookie())
            .json(body)
            .send()
            .await?;
        let mut proof_replaced = false;
        for v in res.headers().get_all("set-cookie") {
            if let Some(rest) = v
                .to_str()
                .ok()
                .and_then(|s| s.strip_prefix(PROOF_COOKIE))
                .and_then(|s| s.strip_prefix('='))
                && let Some(issued) = rest.split(';').next().filter(|p| !p.is_empty())
            {
                proof_replaced |= self.proof.as_deref().is_some_and(|p| p != issued);
                self.proof = Some(issued.to_owned());
            }
        }
        Answer::read(res, proof_replaced).await
    }

    /// One call, any failure as text: for callers that only tell success from failure.
    pub async fn call(
        &mut self,
        http: &reqwest::Client,
        base: &str,
        endpoint: &str,
        body: Value,
    ) -> Result<Value, String> {
        let a = self
            .request(http, base, endpoint, &body)
            .await
            .map_err(|e| format!("{endpoint}: {e}"))?;
        if a.is_success() {
            Ok(a.body)
        } else {
            Err(format!("{endpoint}: {} {}", a.status, a.body))
        }
    }
}

impl Browser {
    /// Uploads `bytes` as `name` (`POST /api/files`), as the page does.
    pub async fn upload(
        &self,
        http: &reqwest::Client,
        base: &str,
        name: &str,
        bytes: Vec<u8>,
    ) -> Result<Answer, reqwest::Error> {
        let part = reqwest::multipart::Part::bytes(bytes).file_name(name.to_owned());
        let res = http
            .post(format!("{base}/api/files"))
            .header("x-confide-session", &self.sid)
            .header("cookie", self.cookie())
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await?;
        Answer::read(res, false).await
    }

    /// Downloads file `id`: the status and the bytes.
    pub async fn download(
        &self,
        http: &reqwest::Client,
        base: &str,
        id: &str,
    ) -> Result<(u16, Vec<u8>), reqwest::Error> {
        let res = http
            .get(format!("{base}/api/files/{id}"))
            .header("cookie", self.cookie())
            .send()
            .await?;
        let status = res.status().as_u16();
        Ok((status, res.bytes().await?.to_vec()))
    }
}

/// A short label for a request that got no answer.
pub fn transport_label(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect error"
    } else {
        "connection lost"
    }
}
