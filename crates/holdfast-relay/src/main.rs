//! The `holdfast-relay` binary: parses the command line and runs it; the work is in the
//! library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use holdfast_relay::cli::{Cli, Command};
use holdfast_relay::{Server, ServerConfig, ShutdownSignal};
use tracing_subscriber::EnvFilter;

/// Time blocking work (a store in flight) gets to finish once the server has stopped.
const RUNTIME_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Serve(args) => serve(args.config()),
        Command::Token(args) => args
            .mint()
            .map(|token| println!("{token}"))
            .map_err(anyhow::Error::from),
        Command::RotateEpoch(args) => args
            .run()
            .map(|epoch| {
                println!("new epoch {epoch}: cursors of devices are repaired, not trusted")
            })
            .map_err(anyhow::Error::from),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Plain words, with their causes, and no backtrace.
            eprintln!("holdfast-relay: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: ServerConfig) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let result = runtime.block_on(async {
        let signal = ShutdownSignal::install().context("could not install signal handlers")?;
        let server = Server::bind(config).await?;
        let (scheme, ws, http) = (server.scheme(), server.local_addr(), server.http_addr());
        tracing::info!(%ws, %http, scheme, "listening");
        // The readiness line scripts and tests wait for, on stdout (logs go to stderr).
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening {scheme}={ws} http={http}")?;
        stdout.flush()?;
        drop(stdout);
        server.run(signal.wait()).await?;
        Ok::<_, anyhow::Error>(())
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    result
}
