//! Progress while a session runs: a spinner on a terminal, timestamped lines
//! otherwise (logs, CI, pipes). Always on stderr, so `--json` output stays clean.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use orchestrator_core::{Progress, SessionEvent, now_ms, rfc3339};

/// Draws session events.
pub struct Reporter {
    bar: Option<ProgressBar>,
}

impl Reporter {
    /// A spinner when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}")
                    .expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Self { bar }
    }

    /// Prints a line above the spinner, or with a time stamp.
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let stamp = rfc3339(now_ms());
                eprintln!("[{}] {text}", &stamp[11..19]);
            }
        }
    }

    /// Removes the spinner.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// The spinner's message, kept to one line of a narrow terminal.
    fn status(&self, text: String) {
        if let Some(bar) = &self.bar {
            let text = if text.chars().count() > 68 {
                let mut short: String = text.chars().take(67).collect();
                short.push('…');
                short
            } else {
                text
            };
            bar.set_message(text);
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish();
    }
}

impl Progress for Reporter {
    fn event(&self, event: &SessionEvent) {
        match event {
            SessionEvent::Created {
                session_id,
                services,
                clients,
            } => {
                self.line(&format!(
                    "session {session_id}: {} service(s) [{}], {} client(s) [{}]",
                    services.len(),
                    services.join(", "),
                    clients.len(),
                    clients.join(", ")
                ));
                self.status("submitting".into());
            }
            SessionEvent::Submitted { kind, name, job_id } => {
                self.line(&format!("{kind} {name}: submitted job {job_id}"));
            }
            SessionEvent::Adopted {
                kind,
                name,
                job_id,
                state,
            } => {
                self.line(&format!("{kind} {name}: job {job_id} attached ({state})"));
            }
            SessionEvent::Requeued {
                kind,
                name,
                job_id,
                state,
                retry,
                retries,
            } => {
                self.line(&format!(
                    "{kind} {name}: job {job_id} ended {state}; submitting it again (retry {retry} of {retries})"
                ));
            }
            SessionEvent::JobState {
                kind,
                name,
                job_id,
                state,
                node,
                reason,
            } => {
                let mut text = format!("{kind} {name}: job {job_id} {state}");
                if let Some(node) = node {
                    text.push_str(&format!(" on {node}"));
                }
                if let Some(reason) = reason.as_deref().filter(|r| *r != "None") {
                    text.push_str(&format!(" ({reason})"));
                }
                self.line(&text);
                self.status(format!("waiting: {kind} {name} {state}"));
            }
            SessionEvent::HealthAttempt {
                name,
                attempt,
                retries,
                response,
            } => {
                let text =
                    format!("service {name}: health check {attempt}/{retries} failed: {response}");
                if self.bar.is_some() {
                    self.status(text);
                } else if *attempt == 1 || attempt % 10 == 0 || attempt == retries {
                    self.line(&text);
                }
            }
            SessionEvent::Healthy { name, host, port } => {
                let at = port.map_or_else(|| host.clone(), |p| format!("{host}:{p}"));
                self.line(&format!("service {name}: healthy on {at}"));
                self.status("clients running".into());
            }
            SessionEvent::ClientDone {
                name,
                state,
                exit_code,
            } => {
                let code = exit_code
                    .map(|c| format!(" (exit code {c})"))
                    .unwrap_or_default();
                self.line(&format!("client {name}: {state}{code}"));
            }
            SessionEvent::Fetched { dir } => {
                self.line(&format!("outputs fetched to {dir}"));
                self.status("stopping services".into());
            }
            SessionEvent::Monitored {
                prometheus,
                targets,
                series,
                problems,
                dir,
            } => {
                for problem in problems {
                    self.line(&format!("monitoring: WARNING: {problem}"));
                }
                self.line(&format!(
                    "monitoring: Prometheus {prometheus} scraped {targets} target(s); {series} series in {dir}/prometheus.json, Grafana's provisioning in {dir}/grafana (not run here)"
                ));
            }
            SessionEvent::Stopped { services } => {
                self.line(&format!("stopped {services} service(s)"));
            }
            SessionEvent::ServiceDied { name, detail } => {
                self.line(&format!("service {name} DIED: {detail}"));
                self.status("waiting for the clients to end".into());
            }
            SessionEvent::CleaningUp { reason } => {
                self.line(&format!("cancelling the session's jobs: {reason}"));
                self.status("cleaning up".into());
            }
            _ => {}
        }
    }
}
