//! The `holdfast-relay` binary: parses the command line and runs it; the work is in the
//! library.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

mod cli;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command};
use holdfast_relay::{Server, ServerConfig, ShutdownSignal};
use tracing_subscriber::EnvFilter;

/// Allocations from this size up are mapped on their own and unmapped when freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 256 << 10;

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

/// Pins glibc's mmap threshold. By default it rises to the size of the largest block
/// freed (up to 32 MiB), after which large blocks come from malloc's arenas and their
/// memory stays with the process once freed: each large frame a device sends (a 15 MiB
/// push, even a refused one) would leave the relay's resident memory tens of MiB higher,
/// per arena. With the threshold pinned, a large buffer is unmapped as soon as it is freed.
fn return_large_buffers_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before any thread
    // is started.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES);
    }
}

/// Raises the soft limit on open descriptors to the hard limit: every connection takes
/// one, and the default soft limit (often 1,024) is far below the connection limits.
/// Returns the limit in force (0 if unknown).
fn raise_descriptor_limit() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit and setrlimit write and read the struct passed, nothing else.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return 0;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: limit.rlim_max,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    return raised.rlim_cur;
                }
            }
        }
        limit.rlim_cur
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    0
}

fn serve(config: ServerConfig) -> anyhow::Result<()> {
    return_large_buffers_to_the_system();
    let descriptors = raise_descriptor_limit();
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
        tracing::info!(%ws, %http, scheme, descriptors, "listening");
        // The readiness line scripts and tests wait for, on stdout (logs go to stderr):
        // the addresses bound, which with port 0 differ on every start.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{}", ready_line(scheme, ws, http))?;
        stdout.flush()?;
        drop(stdout);
        server.run(signal.wait()).await?;
        Ok::<_, anyhow::Error>(())
    });
    runtime.shutdown_timeout(RUNTIME_SHUTDOWN_TIMEOUT);
    result
}

/// "listening on ws://127.0.0.1:7700/ (sync) and http://127.0.0.1:7701/ (health, metrics)":
/// one line for people, and for scripts (the two URLs are the words with "://").
fn ready_line(scheme: &str, ws: std::net::SocketAddr, http: std::net::SocketAddr) -> String {
    format!("listening on {scheme}://{ws}/ (sync) and http://{http}/ (health, metrics)")
}
