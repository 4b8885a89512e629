//! Child processes (function binaries, moto) with their output captured and a kill on drop.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::runtime_api::RuntimeApi;

/// A child process whose stdout and stderr are appended, as they come, to one shared buffer.
pub(crate) struct ProcessShared {
    name: String,
    child: Mutex<Child>,
    output: Arc<Mutex<Vec<u8>>>,
    readers_done: Mutex<mpsc::Receiver<()>>,
}

impl ProcessShared {
    pub(crate) fn spawn(name: &str, mut command: Command) -> std::io::Result<Arc<Self>> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn()?;
        let output = Arc::new(Mutex::new(Vec::new()));
        let (done_tx, done_rx) = mpsc::channel();
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let output = output.clone();
            let done_tx = done_tx.clone();
            std::thread::Builder::new()
                .name(format!("test-world-output-{name}"))
                .spawn(move || {
                    drain(stream, &output);
                    let _ = done_tx.send(());
                })?;
        }
        Ok(Arc::new(ProcessShared {
            name: name.to_owned(),
            child: Mutex::new(child),
            output,
            readers_done: Mutex::new(done_rx),
        }))
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn output(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        self.child.lock().unwrap().try_wait().ok().flatten()
    }

    pub(crate) fn id(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// Kills (if still running) and reaps the process, then waits (bounded) for the output
    /// readers to reach end of file, so that `output()` holds everything it wrote.
    pub(crate) fn kill_and_collect(&self) {
        {
            let mut child = self.child.lock().unwrap();
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        let readers = self.readers_done.lock().unwrap();
        let give_up = Instant::now() + Duration::from_secs(5);
        for _ in 0..2 {
            let left = give_up.saturating_duration_since(Instant::now());
            if readers.recv_timeout(left).is_err() {
                break;
            }
        }
    }

    fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        let give_up = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            if Instant::now() >= give_up {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

fn drain(mut stream: Box<dyn Read + Send>, output: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 8192];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => output.lock().unwrap().extend_from_slice(&buf[..n]),
        }
    }
}

/// A function binary running against a [`RuntimeApi`], as Lambda would run a `bootstrap`.
///
/// The environment is cleared; the process gets `PATH`, `HOME`, `RUST_LOG` (only when set
/// here), the `AWS_LAMBDA_*` variables of the Runtime API, then `env`. No `AWS_*` variable of the
/// test process leaks in. Killed on drop.
pub struct LambdaProcess {
    shared: Arc<ProcessShared>,
    started: Instant,
}

impl LambdaProcess {
    /// Spawns `binary` with `AWS_LAMBDA_RUNTIME_API` pointing at `api`. Panics if it cannot start.
    pub fn spawn<K, V>(
        binary: impl AsRef<Path>,
        api: &RuntimeApi,
        env: impl IntoIterator<Item = (K, V)>,
    ) -> LambdaProcess
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let binary = binary.as_ref();
        let mut command = Command::new(binary);
        command.env_clear();
        for name in ["PATH", "HOME", "RUST_LOG", "RUST_BACKTRACE"] {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        command
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", &api.options().function_name)
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", api.options().function_name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test-world");
        for (key, value) in env {
            command.env(key.into(), value.into());
        }
        let name = binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| binary.display().to_string());
        let started = Instant::now();
        let shared = ProcessShared::spawn(&name, command)
            .unwrap_or_else(|e| panic!("test-world: cannot spawn {}: {e}", binary.display()));
        api.register_process(&shared);
        LambdaProcess { shared, started }
    }

    /// When the process was spawned (cold start = `RuntimeApi::first_poll() - started()`).
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.shared.id()
    }

    /// Everything the process wrote to stdout and stderr so far (interleaved as read).
    ///
    /// Output written just before an answer may still be in the pipe; use [`Self::stop`] for
    /// the complete output.
    pub fn output(&self) -> String {
        self.shared.output()
    }

    /// The process's peak resident set size so far (`VmHWM` of `/proc/<pid>/status`), in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64, String> {
        let path = format!("/proc/{}/status", self.id());
        let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        parse_vm_hwm(&status).ok_or_else(|| format!("{path} has no VmHWM line"))
    }

    /// Whether the process is still running.
    pub fn is_running(&self) -> bool {
        self.shared.exit_status().is_none()
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        self.shared.wait_exit(timeout)
    }

    /// Kills the process and returns its complete output.
    pub fn stop(&self) -> String {
        self.shared.kill_and_collect();
        self.shared.output()
    }
}

impl Drop for LambdaProcess {
    fn drop(&mut self) {
        self.shared.kill_and_collect();
    }
}

/// `VmHWM:   12345 kB` -> bytes.
fn parse_vm_hwm(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let mut words = line["VmHWM:".len()..].split_whitespace();
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_hwm_in_bytes() {
        assert_eq!(
            parse_vm_hwm("Name:\tx\nVmHWM:\t   11088 kB\nVmRSS:\t 1 kB\n"),
            Some(11_088 * 1024)
        );
        assert_eq!(parse_vm_hwm("VmRSS:\t 1 kB\n"), None);
        assert_eq!(parse_vm_hwm("VmHWM:\t 1 MB\n"), None);
    }
}
