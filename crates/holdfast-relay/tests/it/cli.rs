//! The binary's command line: the token subcommand and the secret file.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{run, within, Relay, BIN};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_file_is_created_readable_by_its_owner_only() {
    let relay = Relay::start(&[]).await;
    let path = relay.dir.path().join("holdfast-relay.secret");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.trim().len(), 64, "32 bytes of hex");
    assert!(text.trim().bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(relay.dir.path().join("holdfast-relay.redb").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_database_is_private_under_umask_022() {
    use std::process::Stdio;

    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::process::Command;

    let dir = tempfile::tempdir().unwrap();
    let umask_022 = |command: &str| {
        let mut sh = Command::new("sh");
        sh.args(["-c", &format!("umask 022 && {command}"), BIN])
            .current_dir(dir.path());
        sh
    };
    // Under this umask a file made the ordinary way is readable by everyone...
    let touched = umask_022("touch plain").status().await.unwrap();
    assert!(touched.success());
    let mode = |name: &str| {
        let path = dir.path().join(name);
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode("plain"), 0o644);

    // ...and the relay's files are not.
    let mut relay = umask_022("exec \"$0\" serve --listen 127.0.0.1:0 --http 127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(relay.stdout.take().unwrap()).lines();
    let line = within("the readiness line", lines.next_line())
        .await
        .unwrap();
    assert!(line.is_some_and(|l| l.starts_with("listening")));
    assert_eq!(mode("holdfast-relay.redb"), 0o600);
    assert_eq!(mode("holdfast-relay.secret"), 0o600);
    relay.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_others_can_read_is_warned_about_at_start() {
    let mut relay = Relay::start(&[]).await;
    relay.terminate();
    assert!(relay.exit().await.success());
    assert!(!relay.log().contains("can be read by other users"));
    let dir = std::mem::replace(&mut relay.dir, tempfile::tempdir().unwrap());
    let data = dir.path().join("holdfast-relay.redb");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o644)).unwrap();

    let relay = Relay::start_in(dir, &[]).await;
    let log = relay.log();
    assert!(
        log.contains(
            "the database holdfast-relay.redb can be read by other users (mode 0644): \
             chmod 600 it"
        ),
        "{log}"
    );
    // A warning, not a refusal: the relay serves, and the file keeps its mode.
    let token = relay.token(&["team:read"]).await;
    relay.device(&token, &[&crate::space("team")]).await;
    let mode = std::fs::metadata(&data).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o644);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("holdfast-relay.secret");
    std::fs::write(&path, "ab".repeat(32)).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let output = run(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"],
    )
    .await;
    assert!(!output.status.success());
    assert!(
        output.stderr.contains("can be read by other users"),
        "{}",
        output.stderr
    );
    assert!(output.stdout.is_empty());

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&path, "abcd").unwrap();
    let output = run(dir.path(), &["token", "--space", "team:read"]).await;
    assert!(!output.status.success());
    assert!(
        output.stderr.contains("at least 32 are needed"),
        "{}",
        output.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_before_the_first_serve_creates_the_secret_the_relay_then_uses() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["token", "--space", "team:write"]).await;
    assert!(output.status.success(), "{}", output.stderr);
    assert!(
        output.stderr.contains("created the token secret"),
        "{}",
        output.stderr
    );
    let secret = dir.path().join("holdfast-relay.secret");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&secret).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let token = output.stdout.trim().to_owned();
    // A second token finds the secret and says nothing of it.
    let again = run(dir.path(), &["token", "--space", "team:write"]).await;
    assert!(
        again.status.success() && again.stderr.is_empty(),
        "{}",
        again.stderr
    );
    // The relay started in that directory accepts the first token.
    let relay = Relay::start_in(dir, &[]).await;
    let team = crate::space("team");
    let (mut device, _) = relay.device(&token, &[&team]).await;
    device.answers_ping(1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_names_roles_in_either_form_and_refuses_unknown_ones() {
    let relay = Relay::start(&[]).await;
    let ok = |args: &'static [&'static str]| {
        let dir = relay.dir.path().to_owned();
        async move { run(&dir, args).await }
    };
    let both = ok(&[
        "token",
        "--space",
        "a:write,b",
        "--role",
        "read",
        "--ttl",
        "2h",
    ])
    .await;
    assert!(both.status.success(), "{}", both.stderr);
    let bad = ok(&["token", "--space", "a:admin"]).await;
    assert!(!bad.status.success());
    assert!(bad.stderr.contains("unknown role"), "{}", bad.stderr);
    let missing = ok(&["token", "--space", "a"]).await;
    assert!(!missing.status.success());
    assert!(missing.stderr.contains("give a role"), "{}", missing.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_epoch_after_a_restore_makes_old_cursors_resync() {
    use holdfast_protocol::{Cursor, Frame};

    use crate::{entry, space, Doc};

    let mut relay = Relay::start(&[]).await;
    let team = space("team");
    let token = relay.token(&["team:write"]).await;
    let (mut device, epoch) = relay.device(&token, &[&team]).await;
    let mut doc = Doc::new();
    let push = Frame::Push {
        entries: vec![entry(&team, doc.record, vec![doc.change()])],
    };
    device.send(&push).await;
    device.frame_where(|f| matches!(f, Frame::Ack { .. })).await;
    relay.terminate();
    assert!(relay.exit().await.success());

    // The operator restored ./holdfast-relay.redb from a backup and rotates the epoch.
    let dir = std::mem::replace(&mut relay.dir, tempfile::tempdir().unwrap());
    let output = run(dir.path(), &["rotate-epoch"]).await;
    assert!(output.status.success(), "{}", output.stderr);
    assert!(output.stdout.starts_with("new epoch "), "{}", output.stdout);

    let relay = Relay::start_in(dir, &[]).await;
    let (mut device, new_epoch) = relay.device(&token, &[&team]).await;
    assert_ne!(new_epoch, epoch);
    let pull = Frame::Pull {
        space: team.clone(),
        cursor: Cursor { epoch, seq: 1 },
        max_bytes: 1 << 20,
    };
    device.send(&pull).await;
    let resync = device
        .frame_where(|f| matches!(f, Frame::Resync { .. }))
        .await;
    assert_eq!(
        resync,
        Frame::Resync {
            space: team,
            epoch: new_epoch
        }
    );

    // Without a database there is nothing to rotate, and none is created.
    let empty = tempfile::tempdir().unwrap();
    let output = run(empty.path(), &["rotate-epoch"]).await;
    assert!(!output.status.success());
    assert!(
        output.stderr.contains("does not exist"),
        "{}",
        output.stderr
    );
    assert!(!empty.path().join("holdfast-relay.redb").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_not_valid_yet_is_refused_until_its_not_before() {
    use holdfast_protocol::{ErrorCode, Frame};

    use crate::space;

    let relay = Relay::start(&[]).await;
    let dir = relay.dir.path();
    let args = ["token", "--space", "team:write", "--not-before", "1h"];
    let later = run(dir, &args).await;
    assert!(later.status.success(), "{}", later.stderr);
    let mut peer = relay.connect().await;
    match peer.hello(later.stdout.trim(), &[&space("team")]).await {
        Frame::Error { code, message } => {
            assert_eq!(code, ErrorCode::Unauthorized);
            assert!(message.contains("not valid before"), "{message}");
        }
        other => panic!("expected unauthorized, got {other:?}"),
    }

    let now = run(
        dir,
        &["token", "--space", "team:write", "--not-before", "0s"],
    )
    .await;
    assert!(now.status.success(), "{}", now.stderr);
    relay.device(now.stdout.trim(), &[&space("team")]).await;

    let bad = run(
        dir,
        &["token", "--space", "team:write", "--not-before", "later"],
    )
    .await;
    assert!(!bad.status.success());
    assert!(bad.stderr.contains("--not-before"), "{}", bad.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_mints_up_to_the_size_a_relay_reads_and_no_more() {
    use std::time::{Duration, SystemTime};

    use holdfast_protocol::limits::TOKEN_BYTES_MAX;
    use holdfast_protocol::SpaceId;
    use holdfast_relay::{mint_token, MintError, RoleClaim, TokenRequest};

    use crate::space;

    let relay = Relay::start(&[]).await;
    let dir = relay.dir.path();
    // The subject that makes the binary's token (one space, the default 30 days) exactly
    // `bytes` long: its length depends on the claims only, not on the secret or the clock.
    let subject_for = |bytes: usize| {
        let request = |n: usize| TokenRequest {
            subject: "s".repeat(n),
            spaces: [(SpaceId::new("team").unwrap(), RoleClaim::Write)].into(),
            not_before: None,
            ttl: Duration::from_secs(30 * 24 * 3600),
        };
        let length = |n| match mint_token(&relay.secret(), &request(n), SystemTime::now()) {
            Ok(token) => token.len(),
            Err(MintError::TooLarge { bytes, .. }) => bytes,
            Err(e) => panic!("{e}"),
        };
        let estimate = (bytes - length(0)) * 3 / 4;
        let n = (estimate - 4..estimate + 4)
            .find(|&n| length(n) == bytes)
            .expect("a subject of that length");
        "s".repeat(n)
    };

    let at_limit = subject_for(TOKEN_BYTES_MAX);
    let args = ["token", "--space", "team:write", "--subject", &at_limit];
    let ok = run(dir, &args).await;
    assert!(ok.status.success(), "{}", ok.stderr);
    let token = ok.stdout.trim();
    assert_eq!(token.len(), TOKEN_BYTES_MAX);
    relay.device(token, &[&space("team")]).await;

    let over = subject_for(TOKEN_BYTES_MAX + 1);
    let args = ["token", "--space", "team:write", "--subject", &over];
    let refused = run(dir, &args).await;
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty(), "no token is printed");
    assert_eq!(
        refused.stderr.trim(),
        "holdfast-relay: the token would be 8,193 bytes; a relay accepts at most 8,192: \
         grant fewer spaces per token"
    );
}
