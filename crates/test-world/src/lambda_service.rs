//! The Lambda service's Invoke API in front of moto, running the real function binaries: moto
//! keeps the functions' configuration (and answers every other Lambda call, which is passed on
//! to it) but runs no code without Docker. With `AWS_ENDPOINT_URL_LAMBDA` pointing here,
//! `./dev.sh invoke` and `./dev.sh redrive` run a stack's functions for real.
//!
//! - `POST /2015-03-31/functions/{name}/invocations`: the function named by the stack (its
//!   physical name holds its logical ID, `SourceCloudtrailCloudwatchLogsLambda`, say) runs as
//!   its binary with the environment moto holds for it, pointed at moto. `RequestResponse`
//!   answers with the result, or with `X-Amz-Function-Error: Unhandled` and the error.
//!   `Event` answers 202 and tries three times, as Lambda does, then sends the on-failure
//!   record Lambda sends to the function's on-failure destination, when one is given.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::serve::{Received, Reply, Server, reply};
use crate::{LambdaProcess, RuntimeApi, RuntimeApiOptions};

/// One function the service can run.
#[derive(Debug, Clone)]
pub struct Function {
    /// The crate name, e.g. `source-cloudtrail-cloudwatch-logs`.
    pub name: String,
    pub binary: PathBuf,
    /// Where its failed asynchronous invocations go (an SQS queue URL on moto), if anywhere.
    pub on_failure_queue: Option<String>,
}

pub struct ServiceOptions {
    pub moto_endpoint: String,
    /// The environment every function gets besides its own (AWS endpoint and credentials).
    pub base_env: Vec<(String, String)>,
    /// Overrides applied last (an unreachable `AWS_ENDPOINT_URL_SNS` plays an SNS outage).
    pub extra_env: Vec<(String, String)>,
    pub functions: Vec<Function>,
}

struct State {
    options: ServiceOptions,
    http: reqwest::Client,
    /// Made on first use, on the runtime that serves requests (a client made on another
    /// runtime can hang there).
    sqs: tokio::sync::OnceCell<aws_sdk_sqs::Client>,
}

pub struct LambdaService {
    server: Server,
}

impl LambdaService {
    pub fn start(options: ServiceOptions) -> LambdaService {
        let state = Arc::new(State {
            options,
            http: reqwest::Client::new(),
            sqs: tokio::sync::OnceCell::new(),
        });
        let server = Server::start("lambda-service", None, move |request| {
            let state = state.clone();
            async move { route(state, request).await }
        });
        LambdaService { server }
    }

    /// `http://127.0.0.1:PORT`, the value for `AWS_ENDPOINT_URL_LAMBDA`.
    pub fn endpoint_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.server.addr().port())
    }
}

/// `destination-slack` -> `DestinationSlack`, the prefix of its logical ID.
pub fn camel_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect()
}

async fn route(state: Arc<State>, request: Received) -> Reply {
    let path = request
        .path
        .split('?')
        .next()
        .unwrap_or_default()
        .to_owned();
    let invocation = path
        .strip_prefix("/2015-03-31/functions/")
        .and_then(|rest| rest.strip_suffix("/invocations"))
        .map(percent_decode);
    match (request.method.as_str(), invocation) {
        ("POST", Some(name)) => invoke(state, &name, request).await,
        _ => pass_to_moto(&state, request).await,
    }
}

async fn invoke(state: Arc<State>, name: &str, request: Received) -> Reply {
    let configuration = match function_configuration(&state, name).await {
        Ok(configuration) => configuration,
        Err(reply) => return reply,
    };
    let physical_name = configuration["FunctionName"]
        .as_str()
        .unwrap_or(name)
        .to_owned();
    let Some(function) = state
        .options
        .functions
        .iter()
        .find(|function| physical_name.contains(&format!("{}Lambda", camel_case(&function.name))))
        .cloned()
    else {
        return reply(
            404,
            &[("content-type", "application/json")],
            json!({"Type": "User", "message": format!("no binary for function {physical_name}")})
                .to_string(),
        );
    };
    let mut env: Vec<(String, String)> = state.options.base_env.clone();
    if let Some(variables) = configuration["Environment"]["Variables"].as_object() {
        env.extend(
            variables
                .iter()
                .map(|(key, value)| (key.clone(), value.as_str().unwrap_or_default().to_owned())),
        );
    }
    env.extend(state.options.extra_env.iter().cloned());
    let event: Value = match serde_json::from_slice(&request.body) {
        Ok(event) => event,
        Err(error) => {
            return reply(
                400,
                &[("content-type", "application/json")],
                json!({"Type": "User", "message": format!("the payload is not JSON: {error}")})
                    .to_string(),
            );
        }
    };
    let asynchronous = request
        .headers
        .iter()
        .any(|(key, value)| key.eq_ignore_ascii_case("x-amz-invocation-type") && value == "Event");
    let function_arn = configuration["FunctionArn"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if asynchronous {
        tokio::spawn(async move {
            invoke_asynchronously(&state, &function, &function_arn, env, event).await;
        });
        return reply(202, &[], "");
    }
    match run_once(&function, &physical_name, env, event).await {
        Ok(answer) => reply(
            200,
            &[
                ("content-type", "application/json"),
                ("x-amz-executed-version", "$LATEST"),
            ],
            answer.to_string(),
        ),
        Err(error) => reply(
            200,
            &[
                ("content-type", "application/json"),
                ("x-amz-function-error", "Unhandled"),
                ("x-amz-executed-version", "$LATEST"),
            ],
            json!({"errorType": error.0, "errorMessage": error.1}).to_string(),
        ),
    }
}

/// Runs the binary for one invocation: (errorType, errorMessage) when it fails.
async fn run_once(
    function: &Function,
    physical_name: &str,
    env: Vec<(String, String)>,
    event: Value,
) -> Result<Value, (String, String)> {
    let binary = function.binary.clone();
    let name = physical_name.to_owned();
    // The Runtime API and the process are synchronous pieces: keep them off this runtime.
    tokio::task::spawn_blocking(move || {
        let api = RuntimeApi::start_with(RuntimeApiOptions {
            function_name: name,
            deadline: Duration::from_secs(60),
            invoke_timeout: Duration::from_secs(120),
        });
        let process = LambdaProcess::spawn(&binary, &api, env);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("test-world: a runtime for one invocation");
        let answer = runtime.block_on(api.invoke(event));
        eprint!("{}", process.stop());
        answer.map_err(|error| (error.error_type, error.error_message))
    })
    .await
    .unwrap_or_else(|panic| Err(("Runtime.Panic".into(), panic.to_string())))
}

/// Lambda's asynchronous invocation: the first try and two retries, then the on-failure record.
async fn invoke_asynchronously(
    state: &State,
    function: &Function,
    function_arn: &str,
    env: Vec<(String, String)>,
    event: Value,
) {
    let request_id = format!("{:08x}-test-world-async", fastrand::u32(..));
    let mut last_error = (String::new(), String::new());
    for attempt in 1..=3 {
        match run_once(function, &function.name, env.clone(), event.clone()).await {
            Ok(_) => return,
            Err(error) => {
                eprintln!(
                    "test-world lambda-service: {} attempt {attempt} failed: {}",
                    function.name, error.1
                );
                last_error = error;
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let Some(queue_url) = &function.on_failure_queue else {
        eprintln!(
            "test-world lambda-service: {} gave up; it has no on-failure destination",
            function.name
        );
        return;
    };
    let record = json!({
        "version": "1.0",
        "timestamp": rfc3339_now(),
        "requestContext": {
            "requestId": request_id,
            "functionArn": format!("{function_arn}:$LATEST"),
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3,
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": last_error.0, "errorMessage": last_error.1},
    });
    let sqs = state
        .sqs
        .get_or_init(|| async {
            let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
                .region(aws_config::Region::new(crate::REGION))
                .endpoint_url(&state.options.moto_endpoint)
                .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                    "lambda-service",
                    "lambda-service",
                    None,
                    None,
                    "test-world",
                ))
                .load()
                .await;
            aws_sdk_sqs::Client::new(&config)
        })
        .await;
    if let Err(error) = sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(record.to_string())
        .send()
        .await
    {
        eprintln!("test-world lambda-service: the on-failure record was not sent: {error:?}");
    }
}

async fn function_configuration(state: &State, name: &str) -> Result<Value, Reply> {
    let url = format!(
        "{}/2015-03-31/functions/{}/configuration",
        state.options.moto_endpoint,
        percent_encode(name)
    );
    // moto tells services apart by the credential scope of the signature (which it does not
    // check).
    let authorization = format!(
        "AWS4-HMAC-SHA256 Credential=lambda-service/20260101/{}/lambda/aws4_request, SignedHeaders=host, Signature=0",
        crate::REGION
    );
    let answer = state
        .http
        .get(&url)
        .header("authorization", authorization)
        .send()
        .await
        .map_err(|error| reply(502, &[], format!("moto did not answer: {error}")))?;
    let status = answer.status().as_u16();
    let body = answer.bytes().await.unwrap_or_default();
    if status != 200 {
        return Err(reply(status, &[("content-type", "application/json")], body));
    }
    serde_json::from_slice(&body).map_err(|error| {
        reply(
            502,
            &[],
            format!("moto's configuration is not JSON: {error}"),
        )
    })
}

/// Every other Lambda call (UpdateFunctionCode, GetFunction...) is moto's.
async fn pass_to_moto(state: &State, request: Received) -> Reply {
    let url = format!("{}{}", state.options.moto_endpoint, request.path);
    let method =
        reqwest::Method::from_bytes(request.method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut forwarded = state.http.request(method, &url).body(request.body.clone());
    for (key, value) in &request.headers {
        if !["host", "content-length", "connection"].contains(&key.to_ascii_lowercase().as_str()) {
            forwarded = forwarded.header(key, value);
        }
    }
    match forwarded.send().await {
        Ok(answer) => {
            let status = answer.status().as_u16();
            let content_type = answer
                .headers()
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("application/json")
                .to_owned();
            let body = answer.bytes().await.unwrap_or_default();
            reply(status, &[("content-type", &content_type)], body)
        }
        Err(error) => reply(502, &[], format!("moto did not answer: {error}")),
    }
}

fn rfc3339_now() -> String {
    destination_slack::time::now_rfc3339()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && let Some(hex) = text.get(index + 1..index + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert_eq!(
            camel_case("source-cloudtrail-cloudwatch-logs"),
            "SourceCloudtrailCloudwatchLogs"
        );
        assert_eq!(camel_case("destination-slack"), "DestinationSlack");
        let arn =
            "arn:aws:lambda:us-east-1:123456789012:function:Stack-DestinationSlackLambda-AB12";
        assert_eq!(percent_decode(&percent_encode(arn)), arn);
        assert_eq!(percent_encode("a:b"), "a%3Ab");
        assert!(rfc3339_now().ends_with('Z'));
    }
}
