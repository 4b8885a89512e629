//! `test-world`: the local world as a command, for `./dev.sh` and the stack test.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use test_world::lambda_service::{Function, LambdaService, ServiceOptions, camel_case};
use test_world::{LambdaProcess, MotoServer, RuntimeApi, RuntimeApiOptions, SlackSink};

const USAGE: &str = "usage:
  test-world local [--event FILE | --flood DENIALS | --respond | --org] [--all-destinations] --bin-dir DIR
      The whole pipeline on 127.0.0.1 (./dev.sh local): moto, the source, the buffer queue fed
      to the Slack function as its event source mapping does, and an HTTPS Slack stand-in
      (or the webhook in the environment variable SLACK_WEBHOOK_URL). Prints what Slack got.
      --respond: the responders first close a security group opened to the internet and
      quarantine a user probing with denials, in moto's EC2 and IAM.
      --org: the organisation's stack: events of two accounts in three regions through the
      central bus, a silent member region reported, a member account's open group closed.
      --all-destinations: Teams, PagerDuty (HTTPS stand-ins) and email (moto's SES) too, each
      from its own queue; prints what each received.
  test-world moto --endpoint-file PATH
      moto on a free port of 127.0.0.1 until SIGINT/SIGTERM; writes its URL once it answers.
  test-world slack-sink --ca-file PATH --url-file PATH --log-file PATH
      HTTPS Slack webhook stand-in on 127.0.0.1 (until SIGINT/SIGTERM). Writes the CA (PEM, for
      SSL_CERT_FILE) then the webhook URL once listening; appends every JSON body received,
      pretty-printed, to the log file and prints it to stdout.
  test-world invoke --binary PATH --event FILE [--env K=V]...
      Runs a Lambda function binary against a local Runtime API, invokes it once with the
      event, prints its JSON answer to stdout and its log output to stderr. Exit 1 (with
      errorType and errorMessage on stderr) when the function fails. The binary gets only
      PATH, HOME, RUST_LOG, the AWS_LAMBDA_* variables and the given --env.
  test-world lambda-service --endpoint-file PATH --moto URL --bin-dir DIR
                            [--on-failure FUNCTION=QUEUE_URL]... [--env K=V]...
      The Lambda Invoke API in front of moto, running the stack's functions (as the template
      lists them) from their binaries with the environment moto holds for them, until
      SIGINT/SIGTERM. Writes its URL (for AWS_ENDPOINT_URL_LAMBDA) once listening.
  test-world custom-resource --binary PATH --request FILE --answer-file PATH [--env K=V]...
      Runs the custom resource's function on a request moto waits for, passes its answer on
      to the request's ResponseURL and keeps a copy. Exit 1 unless the answer is SUCCESS.
  test-world lambda-zip FILE
      What a Lambda zip's bootstrap is: `bootstrap <arch> mode <octal> <bytes> bytes`.
  test-world make-events --out DIR
      Writes the ready invoke events of events/.
  test-world fuzz-seeds --out DIR
      Writes seed inputs for the fuzz targets into DIR/<target>/, from the CloudTrail corpus.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rest = args.get(1..).unwrap_or_default();
    let result = match args.first().map(String::as_str) {
        Some("local") => local(rest),
        Some("moto") => moto(rest),
        Some("slack-sink") => slack_sink(rest),
        Some("invoke") => invoke(rest),
        Some("lambda-service") => lambda_service(rest),
        Some("custom-resource") => custom_resource(rest),
        Some("lambda-zip") => lambda_zip(rest),
        Some("make-events") => make_events(rest),
        Some("fuzz-seeds") => fuzz_seeds(rest),
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => Err(format!("unknown or missing command\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("test-world: {message}");
            ExitCode::from(2)
        }
    }
}

/// `--name value` pairs; some may repeat.
struct Options {
    pairs: Vec<(String, String)>,
}

impl Options {
    fn parse(args: &[String], allowed: &[&str]) -> Result<Options, String> {
        let mut pairs = Vec::new();
        let mut iter = args.iter();
        while let Some(flag) = iter.next() {
            let name = flag
                .strip_prefix("--")
                .filter(|n| allowed.contains(n))
                .ok_or_else(|| format!("unexpected argument {flag:?}\n{USAGE}"))?;
            let value = iter
                .next()
                .ok_or_else(|| format!("--{name} needs a value\n{USAGE}"))?;
            pairs.push((name.to_owned(), value.clone()));
        }
        Ok(Options { pairs })
    }

    fn optional(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn one(&self, name: &str) -> Result<&str, String> {
        self.optional(name)
            .ok_or_else(|| format!("--{name} is required\n{USAGE}"))
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The `K=V` values of a repeatable option.
    fn pairs_of(&self, name: &str) -> Result<Vec<(String, String)>, String> {
        self.all(name)
            .map(|pair| {
                pair.split_once('=')
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .ok_or_else(|| format!("--{name} {pair:?} is not K=V"))
            })
            .collect()
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a tokio runtime: {e}"))
}

/// Writes through a temporary file and a rename, so that a reader waiting for `path` never sees
/// it half written.
fn write_atomically(path: &Path, contents: &str) -> Result<(), String> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, contents)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Blocks until SIGINT or SIGTERM.
fn wait_for_signal() -> Result<(), String> {
    runtime()?.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok(())
    })
}

fn local(args: &[String]) -> Result<ExitCode, String> {
    let respond = args.iter().any(|arg| arg == "--respond");
    let org = args.iter().any(|arg| arg == "--org");
    let all_destinations = args.iter().any(|arg| arg == "--all-destinations");
    let args: Vec<String> = args
        .iter()
        .filter(|arg| !["--respond", "--org", "--all-destinations"].contains(&arg.as_str()))
        .cloned()
        .collect();
    let options = Options::parse(&args, &["event", "flood", "bin-dir"])?;
    let input = match (
        options.optional("event"),
        options.optional("flood"),
        respond,
        org,
    ) {
        (Some(event), None, false, false) => test_world::local::Input::Event(PathBuf::from(event)),
        (None, Some(denials), false, false) => test_world::local::Input::Flood(
            denials
                .parse()
                .map_err(|_| format!("--flood needs a number of denials, not {denials:?}"))?,
        ),
        (None, None, true, false) => test_world::local::Input::Respond,
        (None, None, false, true) => test_world::local::Input::Org,
        _ => {
            return Err(format!(
                "give one of --event FILE, --flood DENIALS, --respond or --org\n{USAGE}"
            ));
        }
    };
    let webhook_url = std::env::var("SLACK_WEBHOOK_URL")
        .ok()
        .filter(|url| !url.is_empty());
    runtime()?.block_on(test_world::local::run(test_world::local::Options {
        input,
        bin_dir: PathBuf::from(options.one("bin-dir")?),
        webhook_url,
        all_destinations,
    }))?;
    Ok(ExitCode::SUCCESS)
}

fn moto(args: &[String]) -> Result<ExitCode, String> {
    let options = Options::parse(args, &["endpoint-file"])?;
    let endpoint_file = PathBuf::from(options.one("endpoint-file")?);
    let moto = MotoServer::start();
    write_atomically(&endpoint_file, &format!("{}\n", moto.endpoint_url()))?;
    wait_for_signal()?;
    drop(moto);
    Ok(ExitCode::SUCCESS)
}

fn slack_sink(args: &[String]) -> Result<ExitCode, String> {
    let options = Options::parse(args, &["ca-file", "url-file", "log-file"])?;
    let ca_file = PathBuf::from(options.one("ca-file")?);
    let url_file = PathBuf::from(options.one("url-file")?);
    let log_file = PathBuf::from(options.one("log-file")?);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_file)
        .map_err(|e| format!("cannot open {}: {e}", log_file.display()))?;

    let sink = SlackSink::start();
    let requests = sink.subscribe();
    write_atomically(&ca_file, sink.ca_pem())?;
    write_atomically(&url_file, &format!("{}\n", sink.webhook_url()))?;

    std::thread::spawn(move || {
        for request in requests {
            let text = match serde_json::from_slice::<serde_json::Value>(&request.body) {
                Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_default(),
                Err(_) => request.body_text(),
            };
            let entry = format!("{text}\n");
            if let Err(e) = log.write_all(entry.as_bytes()).and_then(|()| log.flush()) {
                eprintln!("test-world: cannot append to the log file: {e}");
            }
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(entry.as_bytes());
            let _ = stdout.flush();
        }
    });
    wait_for_signal()?;
    drop(sink);
    Ok(ExitCode::SUCCESS)
}

fn read_json(path: &str) -> Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    serde_json::from_str(&text).map_err(|e| format!("{path} is not JSON: {e}"))
}

fn invoke(args: &[String]) -> Result<ExitCode, String> {
    let options = Options::parse(args, &["binary", "event", "env"])?;
    let binary = PathBuf::from(options.one("binary")?);
    let event = read_json(options.one("event")?)?;
    let env = options.pairs_of("env")?;
    if !binary.is_file() {
        return Err(format!("no binary at {}", binary.display()));
    }
    let api = RuntimeApi::start_with(RuntimeApiOptions {
        function_name: function_name(&binary),
        ..RuntimeApiOptions::default()
    });
    let process = LambdaProcess::spawn(&binary, &api, env);
    let answer = runtime()?.block_on(api.invoke(event));
    eprint!("{}", process.stop());
    match answer {
        Ok(json) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&json).unwrap_or_default()
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            eprintln!("errorType: {}", err.error_type);
            eprintln!("errorMessage: {}", err.error_message);
            Ok(ExitCode::FAILURE)
        }
    }
}

fn lambda_service(args: &[String]) -> Result<ExitCode, String> {
    let options = Options::parse(
        args,
        &["endpoint-file", "moto", "bin-dir", "on-failure", "env"],
    )?;
    let endpoint_file = PathBuf::from(options.one("endpoint-file")?);
    let moto_endpoint = options.one("moto")?.trim_end_matches('/').to_owned();
    let bin_dir = PathBuf::from(options.one("bin-dir")?);
    let on_failure = options.pairs_of("on-failure")?;
    let functions = test_world::template::functions()
        .into_iter()
        .map(|name| Function {
            binary: bin_dir.join(&name),
            on_failure_queue: on_failure
                .iter()
                .find(|(function, _)| *function == name || *function == camel_case(&name))
                .map(|(_, queue)| queue.clone()),
            name,
        })
        .collect();
    let base_env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", moto_endpoint.as_str()),
        ("AWS_REGION", test_world::REGION),
        ("AWS_DEFAULT_REGION", test_world::REGION),
        ("AWS_ACCESS_KEY_ID", "lambda-service"),
        ("AWS_SECRET_ACCESS_KEY", "lambda-service"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let service = LambdaService::start(ServiceOptions {
        moto_endpoint,
        base_env,
        extra_env: options.pairs_of("env")?,
        functions,
    });
    write_atomically(&endpoint_file, &format!("{}\n", service.endpoint_url()))?;
    wait_for_signal()?;
    drop(service);
    Ok(ExitCode::SUCCESS)
}

fn custom_resource(args: &[String]) -> Result<ExitCode, String> {
    let options = Options::parse(args, &["binary", "request", "answer-file", "env"])?;
    let binary = PathBuf::from(options.one("binary")?);
    let request = read_json(options.one("request")?)?;
    let answer_file = PathBuf::from(options.one("answer-file")?);
    let answer = runtime()?.block_on(test_world::custom_resource::answer(
        &binary,
        &request,
        options.pairs_of("env")?,
    ))?;
    write_atomically(&answer_file, &answer.to_string())?;
    let status = answer["Status"].as_str().unwrap_or_default();
    println!("{status}");
    if status == "SUCCESS" {
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "the custom resource answered {status}: {}",
            answer["Reason"]
        );
        Ok(ExitCode::FAILURE)
    }
}

fn lambda_zip(args: &[String]) -> Result<ExitCode, String> {
    let [file] = args else {
        return Err(format!("give one zip file\n{USAGE}"));
    };
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {file}: {e}"))?;
    let bootstrap = test_world::zip::bootstrap_of(&bytes).map_err(|e| format!("{file}: {e}"))?;
    println!(
        "bootstrap {} mode {:o} {} bytes",
        bootstrap.architecture(),
        bootstrap.mode,
        bootstrap.size
    );
    Ok(ExitCode::SUCCESS)
}

fn make_events(args: &[String]) -> Result<ExitCode, String> {
    let options = Options::parse(args, &["out"])?;
    let out = PathBuf::from(options.one("out")?);
    for (name, event) in test_world::events::ready_events() {
        let text = serde_json::to_string_pretty(&event).expect("an event serialises");
        std::fs::write(out.join(name), format!("{text}\n"))
            .map_err(|e| format!("cannot write {}: {e}", out.join(name).display()))?;
        println!("{}", out.join(name).display());
    }
    Ok(ExitCode::SUCCESS)
}

fn fuzz_seeds(args: &[String]) -> Result<ExitCode, String> {
    let options = Options::parse(args, &["out"])?;
    let out = PathBuf::from(options.one("out")?);
    let seeds = test_world::payloads::fuzz_seeds();
    for (target, name, bytes) in &seeds {
        let dir = out.join(target);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        std::fs::write(dir.join(name), bytes)
            .map_err(|e| format!("cannot write {}: {e}", dir.join(name).display()))?;
    }
    println!("{} seeds in {}", seeds.len(), out.display());
    Ok(ExitCode::SUCCESS)
}

/// `target/lambda/<name>/bootstrap` (cargo lambda) -> `<name>`; otherwise the file name.
fn function_name(binary: &Path) -> String {
    let file = binary.file_name().map(|n| n.to_string_lossy().into_owned());
    match file.as_deref() {
        Some("bootstrap") | None => binary
            .parent()
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "function".to_owned()),
        Some(name) => name.to_owned(),
    }
}
