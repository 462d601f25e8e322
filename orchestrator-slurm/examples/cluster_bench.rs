//! Side-by-side figures against the test cluster (`scripts/bench-cluster` runs this):
//!
//! 1. 100 sequential commands over the reused SSH connection, against 100 runs of the
//!    OpenSSH `ssh` client (a fresh connection each, as scripts that shell out do);
//! 2. one batched query of 200 jobs (`Slurm::query` over SSH), against one plain
//!    `squeue` call for the same jobs on the login node and one through the `ssh` client.
//!
//! Needs `eval "$(scripts/test-cluster env)"`. Prints medians over repeated rounds.

#![allow(clippy::print_stdout, missing_docs)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_slurm::{JobId, Scheduler, Slurm};
use orchestrator_ssh::{Shell, SshOptions, SshShell};

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} unset: eval \"$(scripts/test-cluster env)\" first"))
}

fn ssh_client(command: &str) -> Command {
    let mut c = Command::new("ssh");
    c.args([
        "-p",
        &env("ORCH_TEST_SSH_PORT"),
        "-i",
        &env("ORCH_TEST_SSH_KEY"),
    ])
    .args([
        "-o",
        &format!("UserKnownHostsFile={}", env("ORCH_TEST_KNOWN_HOSTS")),
    ])
    .args(["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes"])
    .arg(format!(
        "{}@{}",
        env("ORCH_TEST_SSH_USER"),
        env("ORCH_TEST_SSH_HOST")
    ))
    .arg(command);
    c
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let shell = Arc::new(SshShell::new(
        SshOptions::new(
            env("ORCH_TEST_SSH_HOST"),
            env("ORCH_TEST_SSH_USER"),
            env("ORCH_TEST_SSH_KEY"),
        )
        .port(env("ORCH_TEST_SSH_PORT").parse().expect("port"))
        .known_hosts(env("ORCH_TEST_KNOWN_HOSTS")),
    ));
    shell.connect().await.expect("connects");

    // 1. 100 commands.
    let (mut ours, mut theirs, mut ours_parallel) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..100 {
            assert!(shell.exec("true").await.expect("runs").success());
        }
        ours.push(t.elapsed());
        let t = Instant::now();
        let tasks: Vec<_> = (0..100)
            .map(|_| {
                let shell = shell.clone();
                tokio::spawn(async move { shell.exec("true").await })
            })
            .collect();
        for task in tasks {
            assert!(task.await.expect("joins").expect("runs").success());
        }
        ours_parallel.push(t.elapsed());
        let t = Instant::now();
        for _ in 0..100 {
            assert!(ssh_client("true").status().expect("ssh runs").success());
        }
        theirs.push(t.elapsed());
    }
    let (o, p, t) = (median(ours), median(ours_parallel), median(theirs));
    println!("100 commands (`true`), median of {rounds} rounds:");
    println!(
        "  SshShell, one reused connection, sequential   {:>10}  ({:.2} ms/command)",
        ms(o),
        o.as_secs_f64() * 10.0
    );
    println!(
        "  SshShell, one reused connection, 8 in flight  {:>10}  ({:.2} ms/command)",
        ms(p),
        p.as_secs_f64() * 10.0
    );
    println!(
        "  ssh client, a new connection each             {:>10}  ({:.2} ms/command)",
        ms(t),
        t.as_secs_f64() * 10.0
    );
    println!(
        "  speed-up: {:.1}x sequential, {:.1}x with 8 in flight",
        t.as_secs_f64() / o.as_secs_f64(),
        t.as_secs_f64() / p.as_secs_f64()
    );

    // 2. 200 jobs.
    let out = shell
        .exec("for i in $(seq 200); do sbatch --parsable --hold --job-name=orch-bench-q200 --output=/dev/null --wrap true || exit 1; done")
        .await
        .expect("submits");
    let ids: Vec<JobId> = out
        .stdout_lossy()
        .lines()
        .map(|l| JobId(l.trim().to_owned()))
        .collect();
    assert_eq!(ids.len(), 200, "{}", out.stderr_lossy());
    let list = ids.iter().map(JobId::as_str).collect::<Vec<_>>().join(",");
    let slurm = Slurm::new(shell.clone());
    let (mut batched, mut squeue_local, mut squeue_ssh) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds.max(10) {
        let t = Instant::now();
        let jobs = slurm.query(&ids).await.expect("queries");
        batched.push(t.elapsed());
        assert_eq!(jobs.len(), 200);
        let t = Instant::now();
        let o = Command::new("squeue")
            .args(["-h", "-t", "all", "-j", &list, "-o", "%i|%T|%N|%r"])
            .output()
            .expect("squeue");
        squeue_local.push(t.elapsed());
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 200);
        let t = Instant::now();
        let o = ssh_client(&format!("squeue -h -t all -j {list} -o '%i|%T|%N|%r'"))
            .output()
            .expect("ssh");
        squeue_ssh.push(t.elapsed());
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 200);
    }
    slurm.cancel(&ids).await.expect("cancels");
    let n = rounds.max(10);
    println!("state of 200 jobs, median of {n} rounds:");
    println!(
        "  Slurm::query over the reused SSH connection (1 command)  {:>10}",
        ms(median(batched))
    );
    println!(
        "  squeue on the login node itself (1 call)                 {:>10}",
        ms(median(squeue_local))
    );
    println!(
        "  squeue through a new ssh client connection               {:>10}",
        ms(median(squeue_ssh))
    );
    println!("  (one call per job would be 200 x the per-command cost above)");
}
