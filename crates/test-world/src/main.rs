//! `test-world`: the local world as a command, for `./dev.sh local`.
//!
//! ```text
//! test-world slack-sink --ca-file PATH --url-file PATH --log-file PATH
//! test-world invoke --binary PATH --event FILE [--env K=V]...
//! ```

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use test_world::{LambdaProcess, RuntimeApi, RuntimeApiOptions, SlackSink};

const USAGE: &str = "usage:
  test-world slack-sink --ca-file PATH --url-file PATH --log-file PATH
      HTTPS Slack webhook stand-in on 127.0.0.1 (runs until SIGINT/SIGTERM). Writes the CA
      (PEM, for SSL_CERT_FILE) then the webhook URL once listening; appends every JSON body
      received, pretty-printed, to the log file and prints it to stdout.
  test-world invoke --binary PATH --event FILE [--env K=V]...
      Runs a Lambda function binary against a local Runtime API, invokes it once with the
      event, prints its JSON answer to stdout and its log output to stderr. Exit 1 (with
      errorType and errorMessage on stderr) when the function fails. The binary gets only
      PATH, HOME, RUST_LOG, the AWS_LAMBDA_* variables and the given --env.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("slack-sink") => slack_sink(&args[1..]),
        Some("invoke") => invoke(&args[1..]),
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

/// `--name value` pairs; `--env` may repeat.
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

    fn one(&self, name: &str) -> Result<&str, String> {
        self.pairs
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .ok_or_else(|| format!("--{name} is required\n{USAGE}"))
    }

    fn all(&self, name: &str) -> impl Iterator<Item = &str> {
        self.pairs
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
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

    runtime()?.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate()).map_err(|e| e.to_string())?;
        let mut int = signal(SignalKind::interrupt()).map_err(|e| e.to_string())?;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        Ok::<_, String>(())
    })?;
    drop(sink);
    Ok(ExitCode::SUCCESS)
}

fn invoke(args: &[String]) -> Result<ExitCode, String> {
    let options = Options::parse(args, &["binary", "event", "env"])?;
    let binary = PathBuf::from(options.one("binary")?);
    let event_file = options.one("event")?;
    let event_text = std::fs::read_to_string(event_file)
        .map_err(|e| format!("cannot read {event_file}: {e}"))?;
    let event: serde_json::Value =
        serde_json::from_str(&event_text).map_err(|e| format!("{event_file} is not JSON: {e}"))?;
    let env = options
        .all("env")
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| format!("--env {pair:?} is not K=V"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if !binary.is_file() {
        return Err(format!("no binary at {}", binary.display()));
    }

    let api = RuntimeApi::start_with(RuntimeApiOptions {
        function_name: function_name(&binary),
        ..RuntimeApiOptions::default()
    });
    let process = LambdaProcess::spawn(&binary, &api, env);
    let answer = runtime()?.block_on(api.invoke(event));
    let output = process.stop();
    eprint!("{output}");
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
