//! The real `kms-encryption` binary, run through a local Lambda Runtime API as the handler of a
//! CloudFormation custom resource: it encrypts with moto's KMS and PUTs its answer to a
//! ResponseURL served by the local HTTPS stand-in (standing in for S3's pre-signed URL).

use std::time::Duration;

use serde_json::{Value, json};
use test_world::{
    DUMMY_SECRET_ACCESS_KEY, InvocationError, LambdaProcess, MotoServer, RecordedRequest,
    RuntimeApi, SlackAnswer, SlackSink, assert_no_secrets, events,
};

const BINARY: &str = env!("CARGO_BIN_EXE_kms-encryption");
const PLAIN_TEXT: &str =
    "https://hooks.slack.com/services/T00000000/B00000000/PlainTextSecretXXXXXXXX";
/// The pre-signed URL's signature: a credential, never to be shown.
const SIGNATURE: &str = "SignatureSecret0123456789abcdef";
/// The context the stack encrypts the webhook URL with.
const CONTEXT: [(&str, &str); 1] = [("purpose", "activity-aware-ids/slack-webhook-url")];
/// The stack of the requests test-world makes (its `cfn_request`).
const STACK_ID: &str = "arn:aws:cloudformation:us-east-1:123456789012:stack/Activity-Aware-IDS-Dev/5b4f3a10-0000-11ef-8000-0a1b2c3d4e5f";
const RESPONSE_PATH: &str = "/cfn-responses/arn%3Aaws%3Acloudformation%3Aus-east-1%3A123456789012%3Astack/Activity-Aware-IDS-Dev/request";

struct Encryption {
    process: LambdaProcess,
    api: RuntimeApi,
    sink: SlackSink,
    moto: MotoServer,
    key: String,
}

impl Encryption {
    async fn start() -> Encryption {
        let moto = MotoServer::start();
        let key = moto.create_kms_key().await;
        let sink = SlackSink::start();
        let api = RuntimeApi::start();
        let mut env = moto.lambda_env();
        env.push((
            "SSL_CERT_FILE".to_owned(),
            sink.ca_file().to_string_lossy().into_owned(),
        ));
        // The stand-in for S3's pre-signed URL is the one place answers may go.
        env.push((
            "ALLOWED_RESPONSE_URL_PREFIXES".to_owned(),
            sink.url("/cfn-responses/"),
        ));
        // The stack it serves, as the template tells it.
        env.push(("STACK_ID".to_owned(), STACK_ID.to_owned()));
        let process = LambdaProcess::spawn(BINARY, &api, env);
        Encryption {
            process,
            api,
            sink,
            moto,
            key,
        }
    }

    fn response_url(&self) -> String {
        self.sink.url(&format!(
            "{RESPONSE_PATH}?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Expires=7200&X-Amz-Signature={SIGNATURE}"
        ))
    }

    fn request(&self, request_type: &str, key_id: &str) -> Value {
        events::cfn_request(
            request_type,
            &self.response_url(),
            json!({
                "ServiceToken": "arn:aws:lambda:us-east-1:123456789012:function:kms-encryption",
                "KeyId": key_id,
                "PlainText": PLAIN_TEXT,
                "EncryptionContext": {"purpose": CONTEXT[0].1},
            }),
        )
    }

    /// Invokes; checks that neither the answer nor an error shows a secret.
    async fn invoke(&self, request: Value) -> Result<Value, InvocationError> {
        let answer = self.api.invoke(request).await;
        let shown = match &answer {
            Ok(value) => value.to_string(),
            Err(error) => error.to_string(),
        };
        assert_no_secrets("the invocation's result", &shown, &[PLAIN_TEXT, SIGNATURE]);
        answer
    }

    /// The one answer PUT to the ResponseURL since `before` requests.
    fn answer_after(&self, before: usize) -> (RecordedRequest, Value) {
        let requests = self.sink.requests();
        assert_eq!(
            requests.len(),
            before + 1,
            "exactly one answer per request: {requests:#?}"
        );
        let put = requests[before].clone();
        assert_eq!(put.method, "PUT");
        assert!(
            put.path.starts_with(RESPONSE_PATH) && put.path.contains(SIGNATURE),
            "PUT to the ResponseURL as given: {}",
            put.path
        );
        let body = put.body_json();
        (put, body)
    }

    fn finish(self) -> String {
        let output = self.process.stop();
        assert_no_secrets(
            "the function's output",
            &output,
            &[PLAIN_TEXT, SIGNATURE, DUMMY_SECRET_ACCESS_KEY],
        );
        output
    }
}

fn assert_protocol_fields(answer: &Value, request: &Value) {
    for echoed in ["StackId", "RequestId", "LogicalResourceId"] {
        assert_eq!(answer[echoed], request[echoed], "{echoed} echoed: {answer}");
    }
    assert!(
        answer["PhysicalResourceId"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "{answer}"
    );
    assert_eq!(answer["NoEcho"], true, "{answer}");
}

#[tokio::test]
async fn create_encrypts_the_plain_text_and_answers_success() {
    let world = Encryption::start().await;
    let request = world.request("Create", &world.key);
    let result = world.invoke(request.clone()).await.expect("answered");
    assert_eq!(result["Status"], "SUCCESS", "{result}");

    let (put, answer) = world.answer_after(0);
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_protocol_fields(&answer, &request);
    assert!(
        put.header("content-type").unwrap_or_default().is_empty(),
        "a pre-signed S3 PUT must not carry a content type the signature does not cover"
    );
    assert_no_secrets("the answer", &put.body_text(), &[PLAIN_TEXT]);
    let cipher_text = answer["Data"]["CipherText"]
        .as_str()
        .unwrap_or_else(|| panic!("no Data.CipherText: {answer}"));
    assert_eq!(
        world.moto.kms_decrypt(cipher_text, &CONTEXT).await,
        PLAIN_TEXT
    );
    world.finish();
}

#[tokio::test]
async fn update_encrypts_again_and_keeps_the_physical_id() {
    let world = Encryption::start().await;
    let alias_key = world.key.clone();
    let request = world.request("Update", &alias_key);
    world.invoke(request.clone()).await.expect("answered");
    let (_, answer) = world.answer_after(0);
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_protocol_fields(&answer, &request);
    assert_eq!(answer["PhysicalResourceId"], request["PhysicalResourceId"]);
    let cipher_text = answer["Data"]["CipherText"].as_str().expect("CipherText");
    assert_eq!(
        world.moto.kms_decrypt(cipher_text, &CONTEXT).await,
        PLAIN_TEXT
    );
    world.finish();
}

#[tokio::test]
async fn delete_succeeds_without_kms() {
    let world = Encryption::start().await;
    // The key does not exist: a Delete must not need it (nothing to undo).
    let request = world.request("Delete", "alias/deleted-long-ago");
    world.invoke(request.clone()).await.expect("answered");
    let (_, answer) = world.answer_after(0);
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_protocol_fields(&answer, &request);
    assert_eq!(answer["PhysicalResourceId"], request["PhysicalResourceId"]);
    assert!(
        answer["Data"].get("CipherText").is_none(),
        "nothing to return on Delete: {answer}"
    );
    world.finish();
}

#[tokio::test]
async fn a_bad_key_answers_failed_with_a_reason_so_the_stack_never_hangs() {
    let world = Encryption::start().await;
    let request = world.request("Create", "alias/no-such-key");
    let result = world.invoke(request.clone()).await.expect("answered");
    assert_eq!(result["Status"], "FAILED", "{result}");
    let (_, answer) = world.answer_after(0);
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert_protocol_fields(&answer, &request);
    let reason = answer["Reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("KMS") && reason.contains("alias/no-such-key"),
        "the reason should say that KMS could not use the key: {answer}"
    );
    assert!(answer["Data"].get("CipherText").is_none(), "{answer}");
    world.finish();
}

#[tokio::test]
async fn missing_properties_answer_failed() {
    let world = Encryption::start().await;
    let mut request = world.request("Create", &world.key);
    request["ResourceProperties"]
        .as_object_mut()
        .unwrap()
        .remove("PlainText");
    world.invoke(request.clone()).await.expect("answered");
    let (_, answer) = world.answer_after(0);
    assert_eq!(answer["Status"], "FAILED", "{answer}");
    assert!(
        answer["Reason"]
            .as_str()
            .is_some_and(|r| r.contains("PlainText")),
        "{answer}"
    );
    assert_protocol_fields(&answer, &request);
    world.finish();
}

#[tokio::test]
async fn an_unreachable_response_url_is_retried_then_fails_the_invocation() {
    let world = Encryption::start().await;
    world
        .sink
        .respond_with(vec![SlackAnswer::status(403, "SignatureDoesNotMatch"); 10]);
    let error = world
        .invoke(world.request("Create", &world.key))
        .await
        .expect_err("the answer could not be delivered");
    assert!(error.error_message.contains("403"), "{error}");
    let tries = world.sink.requests().len();
    assert!((2..=6).contains(&tries), "{tries} PUTs");
    assert!(world.process.is_running());
    world.finish();
}

#[tokio::test]
async fn a_slow_response_url_is_retried() {
    let world = Encryption::start().await;
    world.sink.respond_with(vec![
        SlackAnswer::ok().with_delay(Duration::from_secs(60)),
        SlackAnswer::ok(),
    ]);
    world
        .invoke(world.request("Create", &world.key))
        .await
        .expect("answered on the retry");
    let requests = world.sink.requests();
    assert_eq!(requests.len(), 2, "{requests:#?}");
    assert_eq!(
        requests[0].body, requests[1].body,
        "the same answer is retried"
    );
    world.finish();
}

#[tokio::test]
async fn the_cipher_text_decrypts_only_with_its_encryption_context() {
    let world = Encryption::start().await;
    world
        .invoke(world.request("Create", &world.key))
        .await
        .expect("answered");
    let (_, answer) = world.answer_after(0);
    let cipher_text = answer["Data"]["CipherText"].as_str().expect("CipherText");
    let kms = aws_sdk_kms::Client::new(&world.moto.sdk_config().await);
    let blob =
        base64::engine::Engine::decode(&base64::engine::general_purpose::STANDARD, cipher_text)
            .unwrap();
    let without_context = kms
        .decrypt()
        .ciphertext_blob(aws_sdk_kms::primitives::Blob::new(blob))
        .send()
        .await;
    assert!(
        without_context.is_err(),
        "decrypted without the encryption context"
    );
    world.finish();
}

/// An answer goes to CloudFormation's ResponseURL or nowhere: another URL is refused before
/// anything is encrypted or sent, and a redirect is not followed.
#[tokio::test]
async fn answers_go_nowhere_but_the_allowed_response_url() {
    let encryption = Encryption::start().await;
    let before = encryption.sink.requests().len();
    let mut request = encryption.request("Create", &encryption.key.clone());
    request["ResponseURL"] = json!(encryption.sink.url("/elsewhere/?X-Amz-Signature=x"));
    let error = encryption.invoke(request).await.expect_err("refused");
    assert!(
        error.error_message.contains("not CloudFormation's"),
        "{error}"
    );
    assert_eq!(encryption.sink.requests().len(), before, "nothing was sent");
    // Another stack's request (a direct invoke, to use the function as an encryption oracle)
    // is refused at the allowed URL too: nothing is encrypted or answered.
    let mut other = encryption.request("Create", &encryption.key.clone());
    other["StackId"] = json!("arn:aws:cloudformation:us-east-1:123456789012:stack/attacker/0000");
    let error = encryption.invoke(other).await.expect_err("refused");
    assert!(error.error_message.contains("not this stack's"), "{error}");
    assert_eq!(encryption.sink.requests().len(), before, "nothing was sent");
    // A redirect from the allowed URL is answered by nobody else.
    encryption.sink.respond_with(vec![
        SlackAnswer::redirect(
            &encryption.sink.url("/elsewhere/")
        );
        4
    ]);
    let error = encryption
        .invoke(encryption.request("Create", &encryption.key.clone()))
        .await;
    let after: Vec<String> = encryption.sink.requests()[before..]
        .iter()
        .map(|request| request.path.clone())
        .collect();
    assert!(
        after.iter().all(|path| path.starts_with("/cfn-responses/")),
        "{after:?} {error:?}"
    );
    encryption.finish();
}

/// The handler with clients built as `main` builds them, but trusting the stand-in's CA: Create
/// is encrypted and answered at the ResponseURL, and an answer meant for another URL is refused
/// before anything is encrypted or sent.
#[tokio::test]
async fn the_handler_in_process_answers_create_with_the_cipher_text_and_refuses_another_url() {
    use kms_encryption::{Config, CustomResourceError, handle};

    let moto = MotoServer::start();
    let key = moto.create_kms_key().await;
    let sink = SlackSink::start();
    let config = Config::with_response_url_prefixes(&sink.url("/cfn-responses/"));
    let kms = aws_sdk_kms::Client::new(&moto.sdk_config().await);
    let http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(sink.ca_pem().as_bytes()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let request = |response_url: String| {
        events::cfn_request(
            "Create",
            &response_url,
            json!({"KeyId": key, "PlainText": PLAIN_TEXT, "EncryptionContext": {"purpose": CONTEXT[0].1}}),
        )
    };
    let response_url = sink.url(&format!("{RESPONSE_PATH}?X-Amz-Signature={SIGNATURE}"));

    let created = request(response_url);
    let answered = handle(&kms, &http, &config, created.clone())
        .await
        .expect("answered");
    assert_eq!(answered.status, "SUCCESS");
    let [put] = sink.requests().try_into().expect("one answer");
    let answer = put.body_json();
    assert_eq!(answer["Status"], "SUCCESS", "{answer}");
    assert_protocol_fields(&answer, &created);
    assert_eq!(answer["PhysicalResourceId"], answered.physical_resource_id);
    let cipher_text = answer["Data"]["CipherText"].as_str().expect("CipherText");
    assert_eq!(moto.kms_decrypt(cipher_text, &CONTEXT).await, PLAIN_TEXT);

    let error = handle(
        &kms,
        &http,
        &config,
        request(sink.url("/elsewhere/?X-Amz-Signature=x")),
    )
    .await
    .expect_err("refused");
    assert!(
        matches!(error, CustomResourceError::ResponseUrlRefused),
        "{error}"
    );
    assert_eq!(sink.requests().len(), 1, "nothing more was sent");
}
