//! An AWS endpoint that refuses some actions: it passes every request on to moto except those
//! whose Query-protocol `Action` is listed, which it answers as AWS answers a call that a
//! policy (an SCP, a permissions boundary) denies. For the responders' failure paths: moto
//! itself allows everything.

use crate::serve::{Received, Reply, Server, reply};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A refusing endpoint in front of moto; stops when dropped.
pub struct RefusingEndpoint {
    server: Server,
    refused: Arc<AtomicUsize>,
}

impl RefusingEndpoint {
    /// Forwards to `upstream` (moto's endpoint URL) everything but `refused_actions`, which get
    /// a 403 with the error `code` in the XML shape of EC2 (`Response/Errors/Error`) and IAM
    /// (`ErrorResponse/Error`) alike.
    pub fn start(upstream: &str, refused_actions: &[&str], code: &str) -> RefusingEndpoint {
        let upstream = upstream.trim_end_matches('/').to_owned();
        let actions: Vec<String> = refused_actions.iter().map(|a| (*a).to_owned()).collect();
        let code = code.to_owned();
        let refused = Arc::new(AtomicUsize::new(0));
        let count = refused.clone();
        let http = reqwest::Client::new();
        let server = Server::start("refusing-endpoint", None, move |request: Received| {
            let body = String::from_utf8_lossy(&request.body).into_owned();
            let action = body
                .split('&')
                .find_map(|pair| pair.strip_prefix("Action="))
                .unwrap_or_default();
            let refuse = actions.iter().any(|refused| refused == action);
            let upstream = upstream.clone();
            let code = code.clone();
            let http = http.clone();
            let count = count.clone();
            async move {
                if refuse {
                    count.fetch_add(1, Ordering::SeqCst);
                    let xml = format!(
                        "<ErrorResponse><Response><Errors><Error><Code>{code}</Code><Message>refused by the test world</Message></Error></Errors></Response></ErrorResponse>"
                    );
                    return reply(403, &[("content-type", "text/xml")], xml);
                }
                forward(&http, &upstream, request).await
            }
        });
        RefusingEndpoint { server, refused }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint_url(&self) -> String {
        format!("http://{}", self.server.addr())
    }

    /// How many requests it refused.
    pub fn refused(&self) -> usize {
        self.refused.load(Ordering::SeqCst)
    }
}

async fn forward(http: &reqwest::Client, upstream: &str, request: Received) -> Reply {
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut outgoing = http.request(method, format!("{upstream}{}", request.path));
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("host") && !name.eq_ignore_ascii_case("content-length") {
            outgoing = outgoing.header(name, value);
        }
    }
    match outgoing.body(request.body).send().await {
        Ok(response) => {
            let status = response.status().as_u16();
            let content_type = response
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("text/xml")
                .to_owned();
            let body = response.bytes().await.unwrap_or_default();
            reply(status, &[("content-type", &content_type)], body)
        }
        Err(error) => reply(
            502,
            &[],
            format!("test-world: moto did not answer: {error}"),
        ),
    }
}
