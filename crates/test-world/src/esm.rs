//! Lambda's SQS event source mapping, played against a queue on moto (which runs no Lambda
//! code): batches gathered the way Lambda's poller gathers them, and a function's answer applied
//! the way Lambda applies it, deleting what succeeded and leaving the rest to come back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde_json::{Value, json};

use crate::InvocationError;
use crate::events::sqs_record;
use crate::moto::{MotoServer, Queue};

/// moto's ReceiveMessage and DeleteMessage take no lock: two receivers at once can get the same
/// messages, which SQS never does. Pollers of one queue take turns.
fn receive_lock(queue_url: &str) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    LOCKS
        .get_or_init(Default::default)
        .lock()
        .unwrap()
        .entry(queue_url.to_owned())
        .or_default()
        .clone()
}

/// Polls one queue as an event source mapping with a batch size and a batching window.
pub struct QueuePoller {
    sqs: aws_sdk_sqs::Client,
    queue: Queue,
    receiving: Arc<tokio::sync::Mutex<()>>,
    /// Most records in one batch (Lambda: up to 10,000).
    pub batch_size: usize,
    /// How long a batch keeps gathering after its first record (Lambda:
    /// MaximumBatchingWindowInSeconds).
    pub window: Duration,
}

/// One batch handed to a function.
pub struct Batch {
    /// The SQS event, as Lambda builds it.
    pub event: Value,
    /// (messageId, receiptHandle) of each record, in order.
    handles: Vec<(String, String)>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// The message IDs, in order.
    pub fn message_ids(&self) -> Vec<String> {
        self.handles.iter().map(|(id, _)| id.clone()).collect()
    }
}

/// What became of a batch once the function answered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Settled {
    /// Deleted from the queue: the function handled them.
    pub deleted: Vec<String>,
    /// Left in the queue: they come back after the visibility timeout.
    pub returned: Vec<String>,
}

impl QueuePoller {
    pub async fn new(moto: &MotoServer, queue: Queue, batch_size: usize, window: Duration) -> Self {
        QueuePoller {
            sqs: aws_sdk_sqs::Client::new(&moto.sdk_config().await),
            receiving: receive_lock(&queue.url),
            queue,
            batch_size,
            window,
        }
    }

    /// Waits up to `idle` for a first record, then gathers more until the batch is full or the
    /// window since the first one has passed. `None` when nothing came within `idle`.
    pub async fn next_batch(&self, idle: Duration) -> Option<Batch> {
        let first_by = Instant::now() + idle;
        let mut records = Vec::new();
        let mut handles = Vec::new();
        let mut window_ends: Option<Instant> = None;
        loop {
            let now = Instant::now();
            let until = window_ends.unwrap_or(first_by);
            if handles.len() >= self.batch_size || now >= until {
                break;
            }
            let room = (self.batch_size - handles.len()).min(10) as i32;
            // Short polls with a pause between empty ones: moto's long polls slow down every
            // other call it serves.
            let turn = self.receiving.lock().await;
            let received = self
                .sqs
                .receive_message()
                .queue_url(&self.queue.url)
                .max_number_of_messages(room)
                .wait_time_seconds(0)
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .unwrap_or_else(|e| panic!("test-world: moto ReceiveMessage: {e:?}"));
            drop(turn);
            let messages = received.messages.unwrap_or_default();
            if messages.is_empty() {
                tokio::time::sleep(
                    Duration::from_millis(200).min(until - Instant::now().min(until)),
                )
                .await;
            }
            for message in messages {
                let id = message.message_id.clone().unwrap_or_default();
                let handle = message.receipt_handle.clone().unwrap_or_default();
                let attribute = |name: MessageSystemAttributeName| {
                    message
                        .attributes
                        .as_ref()
                        .and_then(|attributes| attributes.get(&name))
                        .and_then(|value| value.parse::<u64>().ok())
                };
                let sent = attribute(MessageSystemAttributeName::SentTimestamp).unwrap_or(0);
                let receives =
                    attribute(MessageSystemAttributeName::ApproximateReceiveCount).unwrap_or(1);
                let mut record = sqs_record(
                    &id,
                    &handle,
                    message.body.as_deref().unwrap_or_default(),
                    sent,
                    receives as u32,
                );
                record["eventSourceARN"] = json!(self.queue.arn);
                records.push(record);
                handles.push((id, handle));
                window_ends.get_or_insert_with(|| Instant::now() + self.window);
            }
        }
        (!handles.is_empty()).then(|| Batch {
            event: json!({ "Records": records }),
            handles,
        })
    }

    /// Applies the function's answer: on success, deletes every record but those named in
    /// `batchItemFailures`; on an error, deletes nothing (the whole batch comes back).
    pub async fn settle(&self, batch: &Batch, answer: &Result<Value, InvocationError>) -> Settled {
        let failed: Vec<String> = match answer {
            Err(_) => batch.message_ids(),
            Ok(response) => response
                .get("batchItemFailures")
                .and_then(Value::as_array)
                .map(|failures| {
                    failures
                        .iter()
                        .filter_map(|failure| failure.get("itemIdentifier").and_then(Value::as_str))
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
        };
        let mut settled = Settled::default();
        let mut entries = Vec::new();
        for (id, handle) in &batch.handles {
            if failed.contains(id) {
                settled.returned.push(id.clone());
            } else {
                settled.deleted.push(id.clone());
                entries.push(
                    DeleteMessageBatchRequestEntry::builder()
                        .id(entries.len().to_string())
                        .receipt_handle(handle)
                        .build()
                        .expect("id and receipt handle are set"),
                );
            }
        }
        let _turn = self.receiving.lock().await;
        for chunk in entries.chunks(10) {
            let output = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.queue.url)
                .set_entries(Some(chunk.to_vec()))
                .send()
                .await
                .unwrap_or_else(|e| panic!("test-world: moto DeleteMessageBatch: {e:?}"));
            assert!(
                output.failed.is_empty(),
                "test-world: moto did not delete {} messages: {:?}",
                output.failed.len(),
                output.failed.first()
            );
        }
        settled
    }

    /// Messages in the queue, visible or not (in flight), as SQS approximates them.
    pub async fn depth(&self) -> (usize, usize) {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap_or_else(|e| panic!("test-world: moto GetQueueAttributes: {e:?}"))
            .attributes
            .unwrap_or_default();
        let count = |name: aws_sdk_sqs::types::QueueAttributeName| {
            attributes
                .get(&name)
                .and_then(|value| value.parse().ok())
                .unwrap_or(0)
        };
        (
            count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages),
            count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }
}

/// One batch a function instance was handed, and what became of it.
#[derive(Debug, Clone)]
pub struct Handled {
    /// The function the instance runs (its Runtime API's function name).
    pub function: String,
    /// The SQS event the instance was invoked with.
    pub event: Value,
    pub size: usize,
    pub answer: Result<Value, InvocationError>,
    pub settled: Settled,
}

/// Feeds function instances from their queue pollers, each instance one batch at a time, as an
/// event source mapping with that MaximumConcurrency does, until `producers_done()` says nothing
/// more will arrive and the queue is empty (nothing visible, nothing in flight). Returns every
/// batch handled, in the order they finished.
pub async fn feed_until_drained<F>(
    instances: Vec<(std::sync::Arc<crate::RuntimeApi>, QueuePoller)>,
    producers_done: F,
) -> Vec<Handled>
where
    F: Fn() -> bool + Clone + Send + Sync + 'static,
{
    let mut tasks = Vec::new();
    for (api, poller) in instances {
        let producers_done = producers_done.clone();
        tasks.push(tokio::spawn(async move {
            let mut handled = Vec::new();
            loop {
                match poller.next_batch(Duration::from_secs(2)).await {
                    Some(batch) => {
                        let answer = api.invoke(batch.event.clone()).await;
                        let settled = poller.settle(&batch, &answer).await;
                        handled.push(Handled {
                            function: api.options().function_name.clone(),
                            event: batch.event,
                            size: batch.handles.len(),
                            answer,
                            settled,
                        });
                    }
                    None if producers_done() && poller.depth().await == (0, 0) => break,
                    None => {}
                }
            }
            handled
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("test-world: a queue poller panicked"));
    }
    all
}
