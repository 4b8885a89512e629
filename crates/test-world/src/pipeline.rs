//! The stack's path for Messages, on moto, through the real binaries: the source publishes
//! CloudWatch Logs deliveries to the topic, the topic delivers them (raw) to the Slack function's
//! buffer queue, and instances of the Slack function are fed from the queue as its event source
//! mapping feeds them, all at once, as in the stack.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{
    Handled, LambdaProcess, MotoServer, Queue, QueuePoller, RuntimeApi, RuntimeApiOptions,
    feed_until_drained,
};

/// A topic and the two queues subscribed to it: the bulk lane and the priority lane.
pub struct Pipeline {
    pub topic: String,
    pub queue: Queue,
    pub priority_queue: Queue,
}

impl Pipeline {
    /// The queues get the topic's Messages raw, split by the template's filter policies on
    /// their severity (high and critical to the priority lane), as in the stack.
    pub async fn create(moto: &MotoServer, name: &str) -> Pipeline {
        let topic = moto.create_topic(name).await;
        let (bulk_policy, priority_policy) = crate::template::lane_filter_policies();
        let queue = moto
            .create_queue(
                &format!("{name}-DestinationSlackQueue"),
                Duration::from_secs(380),
            )
            .await;
        moto.subscribe_queue_filtered(&topic, &queue, Some(&bulk_policy))
            .await;
        let priority_queue = moto
            .create_queue(
                &format!("{name}-DestinationSlackPriorityQueue"),
                Duration::from_secs(361),
            )
            .await;
        moto.subscribe_queue_filtered(&topic, &priority_queue, Some(&priority_policy))
            .await;
        Pipeline {
            topic,
            queue,
            priority_queue,
        }
    }
}

/// What to send through, and how the Slack function is run.
pub struct Flow {
    pub source_binary: PathBuf,
    pub destination_binary: PathBuf,
    /// CloudWatch Logs deliveries for the source, invoked one after the other.
    pub deliveries: Vec<Value>,
    /// Between two deliveries.
    pub pause: Duration,
    /// Slack function instances fed at once (the mapping's MaximumConcurrency).
    pub instances: usize,
    pub batch_size: usize,
    /// How long a batch gathers after its first Message.
    pub window: Duration,
    /// The priority lane's mapping.
    pub priority: crate::template::Lane,
    /// EventBridge events for the EventBridge source, each invoked after the delivery of its
    /// number (0: before the first).
    pub events: Vec<(usize, Value)>,
    pub eventbridge_binary: Option<PathBuf>,
    /// The sources' environment besides moto's, the topic and the memory table.
    pub source_env: Vec<(String, String)>,
    /// The Slack function's environment besides moto's (webhook ciphertext, CA, pace).
    pub destination_env: Vec<(String, String)>,
    /// The other destinations, each fed from its own queue beside Slack's.
    pub others: Vec<OtherDestination>,
}

/// A destination besides Slack (Teams, PagerDuty, email), fed from a queue of its own as the
/// stack feeds it.
pub struct OtherDestination {
    /// `destination-teams`.
    pub function: String,
    pub binary: PathBuf,
    /// Its environment besides moto's.
    pub env: Vec<(String, String)>,
    pub queue: Queue,
    pub lane: crate::template::Lane,
}

impl OtherDestination {
    /// The destination as the stack deploys it: its queue subscribed to the topic with the
    /// filter policy of its minimum severity (MINIMUM_SEVERITY in `env`, or the template's
    /// default), its event source mapping and its pace (`DestinationPace`).
    pub async fn as_the_stack(
        moto: &MotoServer,
        topic: &str,
        function: &str,
        binary: PathBuf,
        mut env: Vec<(String, String)>,
    ) -> OtherDestination {
        let (entry, parameter, interval) = match function {
            "destination-teams" => ("Teams", "TeamsMinimumSeverity", "TEAMS_POST_INTERVAL_MS"),
            "destination-pagerduty" => (
                "PagerDuty",
                "PagerDutyMinimumSeverity",
                "PAGERDUTY_EVENT_INTERVAL_MS",
            ),
            "destination-email" => ("Email", "EmailMinimumSeverity", "EMAIL_SEND_INTERVAL_MS"),
            other => panic!("test-world: {other} is not one of the other destinations"),
        };
        let pace = crate::template::destination_pace(entry);
        let minimum = match env.iter().find(|(name, _)| name == "MINIMUM_SEVERITY") {
            Some((_, minimum)) => minimum.clone(),
            None => {
                let minimum = crate::template::parameter_default(parameter);
                env.push(("MINIMUM_SEVERITY".into(), minimum.clone()));
                minimum
            }
        };
        env.push((interval.into(), pace.post_interval.as_millis().to_string()));
        let queue = moto
            .create_queue(
                &format!("Activity-Aware-IDS-Local-Destination{entry}Queue"),
                Duration::from_secs(380),
            )
            .await;
        let policy = crate::template::minimum_severity_filter_policy(&minimum);
        moto.subscribe_queue_filtered(topic, &queue, Some(&policy))
            .await;
        OtherDestination {
            function: function.to_owned(),
            binary,
            env,
            queue,
            lane: pace.lane,
        }
    }
}

impl Flow {
    /// Deliveries half a second apart, and the Slack function run as the stack runs it (the
    /// template's SlackPace): its instances, batch size, batching window and post interval.
    pub fn as_the_stack(
        source_binary: PathBuf,
        destination_binary: PathBuf,
        deliveries: Vec<Value>,
        mut destination_env: Vec<(String, String)>,
    ) -> Flow {
        let pace = crate::template::slack_pace();
        destination_env.push((
            "SLACK_POST_INTERVAL_MS".into(),
            pace.post_interval.as_millis().to_string(),
        ));
        Flow {
            source_binary,
            destination_binary,
            deliveries,
            pause: Duration::from_millis(500),
            instances: pace.instances,
            batch_size: pace.batch_size,
            window: pace.window,
            priority: pace.priority,
            events: Vec::new(),
            eventbridge_binary: None,
            source_env: Vec::new(),
            destination_env,
            others: Vec::new(),
        }
    }

    /// Also sends these EventBridge events through the EventBridge source (its binary), each
    /// after the delivery of its number.
    pub fn with_events(mut self, eventbridge_binary: PathBuf, events: Vec<(usize, Value)>) -> Flow {
        self.eventbridge_binary = Some(eventbridge_binary);
        self.events = events;
        self
    }
}

/// What happened.
pub struct Flowed {
    /// The sources' answers: to each delivery, and to each EventBridge event after it.
    pub summaries: Vec<Value>,
    pub handled: Vec<Handled>,
    /// From the first delivery until the source had published them all.
    pub published_after: Duration,
    /// From the first delivery until the queue was empty.
    pub drained_after: Duration,
    pub source_output: String,
    pub destination_outputs: Vec<String>,
    /// What the other destinations' instances printed.
    pub other_outputs: Vec<String>,
    /// The peak resident memory of each Slack function instance, in bytes.
    pub destination_peak_rss: Vec<u64>,
}

impl Flowed {
    /// Messages the source published.
    pub fn published(&self) -> u64 {
        self.summaries
            .iter()
            .map(|summary| summary["published"].as_u64().unwrap_or(0))
            .sum()
    }
}

/// The event source mappings being played: each instance's Runtime API and the poller that
/// feeds it.
#[derive(Default)]
struct Mappings {
    instances: Vec<(Arc<RuntimeApi>, QueuePoller)>,
    /// Kept until the processes stop, so that none sees its Runtime API vanish.
    apis: Vec<Arc<RuntimeApi>>,
}

impl Mappings {
    /// `lane.instances` processes of `function`, each fed from `queue` in batches as `lane`'s
    /// mapping gathers them.
    async fn feed(
        &mut self,
        moto: &MotoServer,
        function: &str,
        binary: &Path,
        env: &[(String, String)],
        queue: &Queue,
        lane: crate::template::Lane,
    ) -> Vec<LambdaProcess> {
        let mut processes = Vec::new();
        for _ in 0..lane.instances {
            let api = Arc::new(RuntimeApi::start_with(RuntimeApiOptions {
                function_name: function.to_owned(),
                deadline: Duration::from_secs(60),
                invoke_timeout: Duration::from_secs(90),
            }));
            processes.push(LambdaProcess::spawn(binary, &api, env.to_vec()));
            self.apis.push(api.clone());
            let poller = QueuePoller::new(moto, queue.clone(), lane.batch_size, lane.window).await;
            self.instances.push((api, poller));
        }
        processes
    }
}

/// The stack's memory (familiar changes, events told, accounts and regions heard from).
pub const MEMORY_TABLE: &str = "ids-familiarity";

pub async fn run(moto: &MotoServer, pipeline: &Pipeline, flow: Flow) -> Result<Flowed, String> {
    let source_api = Arc::new(RuntimeApi::start_with(RuntimeApiOptions {
        function_name: "source-cloudtrail-cloudwatch-logs".into(),
        ..RuntimeApiOptions::default()
    }));
    let mut source_env = moto.lambda_env();
    source_env.push(("SNS_TOPIC".into(), pipeline.topic.clone()));
    // What the sources remember of routine changes, as the template gives them.
    let table = moto.create_familiarity_table(MEMORY_TABLE).await;
    source_env.push(("FAMILIARITY_TABLE".into(), table));
    source_env.extend(flow.source_env.iter().cloned());
    let source = LambdaProcess::spawn(&flow.source_binary, &source_api, source_env.clone());
    let eventbridge_api = Arc::new(RuntimeApi::start_with(RuntimeApiOptions {
        function_name: "source-eventbridge".into(),
        ..RuntimeApiOptions::default()
    }));
    let eventbridge = flow
        .eventbridge_binary
        .as_ref()
        .map(|binary| LambdaProcess::spawn(binary, &eventbridge_api, source_env));

    let mut env = moto.lambda_env();
    env.extend(flow.destination_env);
    let mut mappings = Mappings::default();
    let slack_lanes = [
        (
            &pipeline.queue,
            flow.instances,
            flow.batch_size,
            flow.window,
        ),
        (
            &pipeline.priority_queue,
            flow.priority.instances,
            flow.priority.batch_size,
            flow.priority.window,
        ),
    ];
    let mut processes = Vec::new();
    for (queue, count, batch_size, window) in slack_lanes {
        let lane = crate::template::Lane {
            instances: count,
            batch_size,
            window,
        };
        processes.extend(
            mappings
                .feed(
                    moto,
                    "destination-slack",
                    &flow.destination_binary,
                    &env,
                    queue,
                    lane,
                )
                .await,
        );
    }
    let mut other_processes = Vec::new();
    for other in &flow.others {
        let mut other_env = moto.lambda_env();
        other_env.extend(other.env.iter().cloned());
        let lane = crate::template::Lane {
            window: other.lane.window.min(flow.window),
            ..other.lane
        };
        other_processes.extend(
            mappings
                .feed(
                    moto,
                    &other.function,
                    &other.binary,
                    &other_env,
                    &other.queue,
                    lane,
                )
                .await,
        );
    }
    let Mappings { instances, apis } = mappings;

    let started = Instant::now();
    let feeding = {
        let api = source_api.clone();
        let eventbridge_api = eventbridge_api.clone();
        let (deliveries, pause, events) = (flow.deliveries, flow.pause, flow.events);
        tokio::spawn(async move {
            let mut summaries = Vec::new();
            let send_events = |after: usize| {
                let due: Vec<Value> = events
                    .iter()
                    .filter(|(number, _)| *number == after)
                    .map(|(_, event)| event.clone())
                    .collect();
                let api = eventbridge_api.clone();
                async move {
                    let mut answers = Vec::new();
                    for event in due {
                        answers.push(api.invoke(event).await.map_err(|error| {
                            format!("the EventBridge source failed after delivery {after}: {error}")
                        })?);
                    }
                    Ok::<_, String>(answers)
                }
            };
            summaries.extend(send_events(0).await?);
            for (number, delivery) in deliveries.into_iter().enumerate() {
                if number > 0 {
                    tokio::time::sleep(pause).await;
                }
                let summary = api.invoke(delivery).await.map_err(|error| {
                    format!("the source failed on delivery {}: {error}", number + 1)
                })?;
                summaries.push(summary);
                summaries.extend(send_events(number + 1).await?);
            }
            Ok::<_, String>((summaries, started.elapsed()))
        })
    };
    let feeding = Arc::new(feeding);
    let producers_done = {
        let feeding = feeding.clone();
        move || feeding.is_finished()
    };
    let handled = feed_until_drained(instances, producers_done).await;
    let drained_after = started.elapsed();
    let (summaries, published_after) = Arc::try_unwrap(feeding)
        .map_err(|_| "the source's task is still watched".to_owned())?
        .await
        .map_err(|error| format!("the source's task failed: {error}"))??;

    let destination_peak_rss = processes
        .iter()
        .map(|process| process.peak_rss_bytes().unwrap_or(0))
        .collect();
    let destination_outputs = processes.iter().map(LambdaProcess::stop).collect();
    let other_outputs = other_processes.iter().map(LambdaProcess::stop).collect();
    drop(apis);
    let mut source_output = source.stop();
    if let Some(eventbridge) = eventbridge {
        source_output.push_str(&eventbridge.stop());
    }
    Ok(Flowed {
        summaries,
        handled,
        published_after,
        drained_after,
        source_output,
        destination_outputs,
        other_outputs,
        destination_peak_rss,
    })
}
