//! Lambda's part for a stack's custom resource on moto, which runs no function code: the real
//! function binary handles the request moto waits for, and its answer is recorded on the way to
//! moto's ResponseURL, as CloudFormation's pre-signed URL would receive it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::serve::{Server, reply};
use crate::{LambdaProcess, RuntimeApi};

/// The answer's body, and the status the ResponseURL gave it.
type Recorded = (Vec<u8>, u16);

/// Runs `binary` on `request` and returns the answer it PUT to the request's ResponseURL (which
/// received it too, and whose status is checked).
pub async fn answer(
    binary: &Path,
    request: &Value,
    env: Vec<(String, String)>,
) -> Result<Value, String> {
    let response_url = request["ResponseURL"]
        .as_str()
        .ok_or("the request has no ResponseURL")?
        .to_owned();
    let after_host = response_url
        .splitn(4, '/')
        .nth(3)
        .map(|rest| format!("/{rest}"))
        .ok_or("the ResponseURL has no path")?;
    let recorded: Arc<Mutex<Option<Recorded>>> = Arc::default();
    let recorder = {
        let recorded = recorded.clone();
        let response_url = response_url.clone();
        let http = reqwest::Client::new();
        Server::start("custom-resource-recorder", None, move |put| {
            let recorded = recorded.clone();
            let response_url = response_url.clone();
            let http = http.clone();
            async move {
                // The pre-signed URL's signature covers no content type: none is passed on.
                let status = match http
                    .put(&response_url)
                    .header("content-type", "")
                    .body(put.body.clone())
                    .send()
                    .await
                {
                    Ok(answer) => answer.status().as_u16(),
                    Err(_) => 502,
                };
                *recorded.lock().unwrap() = Some((put.body.to_vec(), status));
                reply(status, &[], "")
            }
        })
    };
    let mut request = request.clone();
    let recorder_url = format!("http://{}/", recorder.addr());
    request["ResponseURL"] = Value::String(format!("http://{}{after_host}", recorder.addr()));

    // The function answers CloudFormation's URLs only; here, the recorder's.
    let mut env = env;
    env.push(("ALLOWED_RESPONSE_URL_PREFIXES".to_owned(), recorder_url));
    let api = RuntimeApi::start();
    let process = LambdaProcess::spawn(binary, &api, env);
    let invoked = api.invoke(request).await;
    eprint!("{}", process.stop());
    invoked.map_err(|error| format!("the function failed: {error}"))?;
    let (body, status) = recorded
        .lock()
        .unwrap()
        .take()
        .ok_or("the function answered nothing at the ResponseURL")?;
    if !(200..300).contains(&status) {
        return Err(format!("the ResponseURL refused the answer with {status}"));
    }
    serde_json::from_slice(&body).map_err(|error| format!("the answer is not JSON: {error}"))
}
