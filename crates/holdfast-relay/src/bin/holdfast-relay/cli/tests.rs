//! Command-line parsing.

use clap::Parser;

use super::*;

fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(std::iter::once("holdfast-relay").chain(args.iter().copied()))
}

fn token_request(args: &[&str]) -> Result<TokenRequest, String> {
    let mut all = vec!["token"];
    all.extend(args);
    match parse(&all).map_err(|e| e.to_string())?.command {
        Command::Token(args) => args.request().map_err(|e| e.to_string()),
        Command::Serve(_) | Command::RotateEpoch(_) => unreachable!(),
    }
}

#[test]
fn serve_defaults_to_loopback_and_files_in_the_working_directory() {
    let Command::Serve(args) = parse(&["serve"]).unwrap().command else {
        unreachable!()
    };
    assert_eq!(args.config(), ServerConfig::new());
    assert_eq!(args.config().listen.to_string(), "127.0.0.1:7700");
    assert_eq!(args.config().http.to_string(), "127.0.0.1:7701");
}

#[test]
fn serve_flags_reach_the_config() {
    let Command::Serve(args) = parse(&[
        "serve",
        "--max-connections",
        "7",
        "--max-frame-bytes",
        "4096",
        "--send-queue-frames",
        "3",
        "--idle-timeout-secs",
        "60",
        "--keepalive-secs",
        "20",
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
    ])
    .unwrap()
    .command
    else {
        unreachable!()
    };
    let config = args.config();
    assert_eq!(config.limits.connections_max, 7);
    assert_eq!(config.limits.frame_bytes_max, 4096);
    assert_eq!(config.limits.send_queue_frames_max, 3);
    assert_eq!(config.limits.idle_timeout, Duration::from_secs(60));
    assert_eq!(config.limits.keepalive_interval, Duration::from_secs(20));
    assert_eq!(
        config.tls,
        Some(TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into()
        })
    );
}

#[test]
fn tls_needs_both_files() {
    assert!(parse(&["serve", "--tls-cert", "c.pem"]).is_err());
    assert!(parse(&["serve", "--tls-key", "k.pem"]).is_err());
}

#[test]
fn token_spaces_take_a_role_each_or_one_for_all() {
    let space = |name: &str| SpaceId::new(name).unwrap();
    let request = token_request(&["--space", "a:write", "--space", "b,c", "--role", "read"]);
    let request = request.unwrap();
    let expected: BTreeMap<_, _> = [
        (space("a"), RoleClaim::Write),
        (space("b"), RoleClaim::Read),
        (space("c"), RoleClaim::Read),
    ]
    .into();
    assert_eq!(request.spaces, expected);
    assert_eq!(request.ttl, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(request.subject, "device");

    assert_eq!(request.not_before, None);

    let request = token_request(&["--space", "a:read", "--ttl", "90m", "--subject", "x"]);
    let request = request.unwrap();
    assert_eq!(request.ttl, Duration::from_secs(90 * 60));
    assert_eq!(request.subject, "x");
}

#[test]
fn token_not_before_is_a_duration_from_now() {
    let request = token_request(&["--space", "a:read", "--not-before", "1h"]).unwrap();
    assert_eq!(request.not_before, Some(Duration::from_secs(3600)));
    let request = token_request(&["--space", "a:read", "--not-before", "2d 3h"]).unwrap();
    assert_eq!(request.not_before, Some(Duration::from_secs(51 * 3600)));
    let error = token_request(&["--space", "a:read", "--not-before", "tomorrow"]).unwrap_err();
    assert!(error.contains("--not-before"), "{error}");
}

#[test]
fn token_refuses_what_it_cannot_grant() {
    let check = |args: &[&str], expected: &str| {
        let error = token_request(args).unwrap_err();
        assert!(error.contains(expected), "{args:?}: {error}");
    };
    check(&["--space", "a"], "give a role for a");
    check(&["--space", "a:owner"], "unknown role");
    check(&["--space", "a b:read"], "\"a b\"");
    check(&["--space", "a:read", "--ttl", "soon"], "soon");
    assert!(parse(&["token"]).is_err(), "a space is required");
}
