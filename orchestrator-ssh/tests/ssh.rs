//! `SshShell` against the real OpenSSH server of `scripts/test-cluster`, and
//! `LocalShell` against this machine. Start the cluster first:
//! `scripts/test-cluster up && eval "$(scripts/test-cluster env)"` (`.ci/run` does).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use orchestrator_ssh::{HostKeyPolicy, LocalShell, Shell, ShellError, SshOptions, SshShell, quote};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One variable of `scripts/test-cluster env`; a missing one is a setup error, said so.
fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: these tests need the test cluster. Run \
             `scripts/test-cluster up && eval \"$(scripts/test-cluster env)\"` (scripts/test does)"
        )
    })
}

fn options() -> SshOptions {
    SshOptions::new(
        env("ORCH_TEST_SSH_HOST"),
        env("ORCH_TEST_SSH_USER"),
        env("ORCH_TEST_SSH_KEY"),
    )
    .port(env("ORCH_TEST_SSH_PORT").parse().expect("port"))
    .known_hosts(env("ORCH_TEST_KNOWN_HOSTS"))
}

fn shell() -> SshShell {
    SshShell::new(options())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// A private sshd of the test cluster's configuration on its own port, owned by one
/// test, so that stopping it disturbs no other test.
struct PrivateSshd {
    port: u16,
    child: Option<Child>,
    known_hosts: PathBuf,
    _dir: tempfile::TempDir,
}

impl PrivateSshd {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let cluster = PathBuf::from(env("ORCH_TEST_CLUSTER_DIR"));
        let host_pub =
            std::fs::read_to_string(cluster.join("ssh/host_ed25519.pub")).expect("host key");
        let key: Vec<&str> = host_pub.split_whitespace().take(2).collect();
        let known_hosts = dir.path().join("known_hosts");
        std::fs::write(
            &known_hosts,
            format!("[127.0.0.1]:{port} {}\n", key.join(" ")),
        )
        .expect("write");
        let mut sshd = Self {
            port,
            child: None,
            known_hosts,
            _dir: dir,
        };
        sshd.spawn();
        sshd
    }

    fn spawn(&mut self) {
        let cluster = PathBuf::from(env("ORCH_TEST_CLUSTER_DIR"));
        let child = Command::new("/usr/sbin/sshd")
            .arg("-D")
            .arg("-f")
            .arg(cluster.join("ssh/sshd_config"))
            .arg("-o")
            .arg(format!("Port={}", self.port))
            .arg("-o")
            .arg(format!(
                "PidFile={}",
                self._dir.path().join("sshd.pid").display()
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "private sshd did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the listener and every session it forked: open connections drop.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("pkill")
                .args(["-TERM", "-P", &child.id().to_string()])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn options(&self) -> SshOptions {
        options()
            .port(self.port)
            .known_hosts(self.known_hosts.to_string_lossy())
    }
}

impl Drop for PrivateSshd {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn commands_reuse_one_connection_and_report_exit_codes() {
    let shell = shell();
    for i in 0..20 {
        let out = shell
            .exec(&format!("echo out{i}; echo err{i} >&2; exit {}", i % 4))
            .await
            .expect("runs");
        assert_eq!(out.stdout_lossy(), format!("out{i}\n"));
        assert_eq!(out.stderr_lossy(), format!("err{i}\n"));
        assert_eq!(out.exit_code, i % 4);
    }
    assert_eq!(shell.connections_opened(), 1);
    assert_eq!(shell.commands_run(), 20);
    let killed = shell.exec("kill -TERM $$").await.expect("runs");
    assert_eq!(killed.exit_code, 128 + 15, "death by SIGTERM reads as 143");
}

#[tokio::test]
async fn stdin_reaches_the_command_and_the_slurm_config_is_set() {
    let shell = shell();
    let out = shell
        .run("wc -c; cat >/dev/null", Some(&[7u8; 100_000]), None)
        .await
        .expect("runs");
    assert_eq!(out.stdout_lossy().trim(), "100000");
    let conf = shell.exec("echo $SLURM_CONF").await.expect("runs");
    assert!(
        conf.stdout_lossy().trim().ends_with("slurm.conf"),
        "{conf:?}"
    );
}

#[tokio::test]
async fn many_concurrent_commands_stay_under_max_sessions() {
    let shell = Arc::new(shell());
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let shell = shell.clone();
            tokio::spawn(async move { shell.exec(&format!("sleep 0.05; echo {i}")).await })
        })
        .collect();
    for (i, task) in tasks.into_iter().enumerate() {
        let out = task
            .await
            .expect("joins")
            .expect("runs despite MaxSessions 10");
        assert_eq!(out.stdout_lossy().trim(), i.to_string());
    }
    assert_eq!(shell.connections_opened(), 1);
}

#[tokio::test]
async fn files_go_up_and_come_back_byte_for_byte() {
    let shell = shell();
    let dir = format!(
        "{}/ssh-test-{}",
        env("ORCH_TEST_WORK_DIR"),
        std::process::id()
    );
    let path = format!("{dir}/sub dir/it's a file.bin");
    let contents: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    shell.write_file(&path, &contents).await.expect("uploads");
    assert_eq!(
        std::fs::read(&path).expect("the file is on the shared disk"),
        contents
    );
    assert_eq!(shell.read_file(&path).await.expect("downloads"), contents);

    let local = tempfile::tempdir().expect("tempdir");
    let copy = local.path().join("copy.bin");
    shell
        .download(&path, &copy)
        .await
        .expect("downloads to a file");
    assert_eq!(std::fs::read(&copy).expect("read"), contents);

    let missing = shell.read_file(&format!("{dir}/missing")).await;
    assert!(
        matches!(missing, Err(ShellError::CommandFailed { exit_code: 1, ref stderr, .. }) if stderr.contains("No such file")),
        "{missing:?}"
    );
    std::fs::remove_dir_all(&dir).expect("clean up");
}

#[tokio::test]
async fn hostile_values_reach_the_remote_command_literally() {
    let shell = shell();
    for value in [
        "it's",
        "\"q\"",
        "$(touch /tmp/pwned)",
        "`id`",
        "a; b",
        "line\nnext",
        " spaced ",
        "",
    ] {
        let out = shell
            .exec(&format!("printf %s {}", quote(value)))
            .await
            .expect("runs");
        assert_eq!(out.stdout_lossy(), value);
    }
}

#[tokio::test]
async fn a_tcp_stream_is_opened_from_the_login_node() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 5];
        socket.read_exact(&mut buf).await.expect("read");
        socket
            .write_all(&[b"echo:".as_slice(), &buf].concat())
            .await
            .expect("write");
    });
    let shell = shell();
    // By name, resolved on the login node.
    let mut stream = shell
        .connect_tcp("localhost", port)
        .await
        .expect("direct-tcpip");
    stream.write_all(b"hello").await.expect("send");
    let mut reply = vec![0u8; 10];
    stream.read_exact(&mut reply).await.expect("reply");
    assert_eq!(reply, b"echo:hello");
    server.await.expect("server");

    let closed = free_port();
    let refused = shell.connect_tcp("127.0.0.1", closed).await;
    assert!(
        matches!(refused, Err(ShellError::TcpConnect { port, .. }) if port == closed),
        "{:?}",
        refused.err()
    );
}

#[tokio::test]
async fn a_wrong_host_key_is_refused_before_anything_runs() {
    let shell = SshShell::new(options().known_hosts(env("ORCH_TEST_WRONG_KNOWN_HOSTS")));
    let err = shell
        .exec("touch /tmp/must-not-exist")
        .await
        .expect_err("refused");
    assert!(matches!(err, ShellError::HostKeyMismatch { .. }), "{err:?}");
    assert_eq!(shell.connections_opened(), 0);

    // Trusting new hosts does not extend to changed keys.
    let tofu = SshShell::new(
        options()
            .known_hosts(env("ORCH_TEST_WRONG_KNOWN_HOSTS"))
            .host_key_policy(HostKeyPolicy::TrustNew),
    );
    assert!(matches!(
        tofu.connect().await,
        Err(ShellError::HostKeyMismatch { .. })
    ));
}

#[tokio::test]
async fn an_unknown_host_is_refused_unless_trusting_new_hosts_is_asked_for() {
    let dir = tempfile::tempdir().expect("tempdir");
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(&known_hosts, "").expect("write");
    let strict = SshShell::new(options().known_hosts(known_hosts.to_string_lossy()));
    let err = strict.connect().await.expect_err("refused");
    assert!(matches!(err, ShellError::UnknownHost { .. }), "{err:?}");

    let missing = SshShell::new(options().known_hosts(dir.path().join("nope").to_string_lossy()));
    assert!(matches!(
        missing.connect().await,
        Err(ShellError::UnknownHost { .. })
    ));

    let tofu = SshShell::new(
        options()
            .known_hosts(known_hosts.to_string_lossy())
            .host_key_policy(HostKeyPolicy::TrustNew),
    );
    let out = tofu
        .exec("echo trusted")
        .await
        .expect("connects after recording the key");
    assert_eq!(out.stdout_lossy(), "trusted\n");
    let recorded = std::fs::read_to_string(&known_hosts).expect("read");
    let expected = std::fs::read_to_string(env("ORCH_TEST_KNOWN_HOSTS")).expect("read");
    assert_eq!(
        recorded.trim(),
        expected.trim(),
        "the recorded line is the server's real key"
    );
    // Now the strict shell knows it.
    assert!(strict.connect().await.is_ok());
}

#[tokio::test]
async fn a_key_the_server_does_not_accept_fails_authentication() {
    let o = SshOptions::new(
        env("ORCH_TEST_SSH_HOST"),
        env("ORCH_TEST_SSH_USER"),
        env("ORCH_TEST_WRONG_KEY"),
    )
    .port(env("ORCH_TEST_SSH_PORT").parse().expect("port"))
    .known_hosts(env("ORCH_TEST_KNOWN_HOSTS"));
    let err = SshShell::new(o).connect().await.expect_err("refused");
    assert!(
        matches!(err, ShellError::AuthenticationFailed { .. }),
        "{err:?}"
    );
    assert!(!err.is_transient());

    let no_key = SshOptions::new(
        env("ORCH_TEST_SSH_HOST"),
        env("ORCH_TEST_SSH_USER"),
        "/nonexistent/id_ed25519",
    )
    .port(env("ORCH_TEST_SSH_PORT").parse().expect("port"))
    .known_hosts(env("ORCH_TEST_KNOWN_HOSTS"));
    assert!(matches!(
        SshShell::new(no_key).connect().await,
        Err(ShellError::KeyFile { .. })
    ));
}

#[tokio::test]
async fn a_stopped_server_gives_a_connection_error_within_the_timeout() {
    let mut sshd = PrivateSshd::start();
    let options = sshd
        .options()
        .connect_timeout(Duration::from_secs(3))
        .reconnect(2, Duration::from_millis(100));
    sshd.stop();
    let started = Instant::now();
    let err = SshShell::new(options)
        .connect()
        .await
        .expect_err("nothing listens");
    assert!(
        matches!(err, ShellError::ConnectionRefused { .. }),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_unreachable_host_times_out() {
    // 10.99.0.99 is on the test cluster's own bridge, where no host answers.
    if !env("ORCH_TEST_NODES").contains("node1") {
        return; // single-node mode has no bridge
    }
    let shell = SshShell::new(
        SshOptions::new(
            "10.99.0.99",
            env("ORCH_TEST_SSH_USER"),
            env("ORCH_TEST_SSH_KEY"),
        )
        .known_hosts(env("ORCH_TEST_KNOWN_HOSTS"))
        .connect_timeout(Duration::from_millis(1500))
        .reconnect(1, Duration::from_millis(10)),
    );
    let started = Instant::now();
    let err = shell.connect().await.expect_err("nobody there");
    assert!(
        matches!(
            err,
            ShellError::Timeout { .. } | ShellError::Unreachable { .. }
        ),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_restarted_server_is_survived_by_reconnecting() {
    let mut sshd = PrivateSshd::start();
    let shell = SshShell::new(sshd.options().reconnect(6, Duration::from_millis(100)));
    assert_eq!(
        shell.exec("echo one").await.expect("first").stdout_lossy(),
        "one\n"
    );
    sshd.stop();
    sshd.spawn();
    assert_eq!(
        shell
            .exec("echo two")
            .await
            .expect("after the restart")
            .stdout_lossy(),
        "two\n"
    );
    assert_eq!(shell.connections_opened(), 2);
}

#[tokio::test]
async fn a_command_over_its_time_limit_times_out() {
    let shell = shell();
    let started = Instant::now();
    let err = shell
        .run("sleep 20", None, Some(Duration::from_millis(500)))
        .await
        .expect_err("too slow");
    assert!(matches!(err, ShellError::Timeout { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The connection is still good.
    assert!(shell.exec("true").await.expect("runs").success());
}

#[tokio::test]
async fn the_local_shell_behaves_the_same() {
    let shell = LocalShell::new();
    let out = shell
        .run("cat; echo err >&2; exit 5", Some(b"in"), None)
        .await
        .expect("runs");
    assert_eq!(
        (
            out.exit_code,
            out.stdout_lossy().as_ref(),
            out.stderr_lossy().as_ref()
        ),
        (5, "in", "err\n")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("a b/c'd");
    let path = path.to_str().expect("utf-8");
    shell.write_file(path, b"x\ny").await.expect("writes");
    assert_eq!(shell.read_file(path).await.expect("reads"), b"x\ny");
    let err = shell
        .run("sleep 20", None, Some(Duration::from_millis(300)))
        .await
        .expect_err("too slow");
    assert!(matches!(err, ShellError::Timeout { .. }));
    assert!(Path::new(path).exists());
    let killed = shell.exec("kill -TERM $$").await.expect("runs");
    assert_eq!(killed.exit_code, 143);
}
