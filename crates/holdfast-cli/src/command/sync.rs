//! `sync`: the library's sync worker against a relay, once (`Store::sync_once`, with the
//! outbox draining shown as it goes) or live (`Store::sync`, a line per change of state)
//! until Ctrl-C or the deadline; a summary either way. A new store syncs the spaces its
//! token names.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use holdfast::{ConnectionState, SpaceId, Store, SyncConfig, SyncStatus};
use indicatif::ProgressBar;

use super::{count, say, show_progress, time_text};
use crate::cli::SyncArgs;
use crate::error::{Error, Result};
use crate::json::{self, SyncRunJson};

mod token;

/// How long `sync --once` may take when no `--deadline` is given.
pub const ONCE_DEADLINE_DEFAULT: Duration = Duration::from_secs(30);

/// How often progress is redrawn.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// `sync`.
pub fn sync(store: &Store, args: &SyncArgs, out: &mut dyn Write) -> Result<()> {
    let spaces = spaces(store, args, out)?;
    let config = SyncConfig::new(&args.relay, &args.token, spaces);
    let run = if args.once {
        once(store, config, args)?
    } else {
        live(store, config, args, out)?
    };
    if args.json {
        json::print(out, &run)?;
    } else {
        summary_text(&run, out)?;
    }
    match (&run.error, run.complete, args.once) {
        (Some(error), false, true) => Err(Error::Failed(format!(
            "Sync did not finish. {}{}",
            sentence(error),
            match run.pending + run.failed {
                0 => String::new(),
                n => format!(
                    " {} stay saved here and go out next time.",
                    count(n, "change")
                ),
            }
        ))),
        (Some(error), false, false) => {
            Err(Error::Failed(format!("Sync stopped. {}", sentence(error))))
        }
        _ => Ok(()),
    }
}

/// The spaces the store holds and those named with --space; for a new store with
/// neither, the spaces the token names, said on the way (on standard error with --json,
/// so standard output stays one JSON document).
fn spaces(store: &Store, args: &SyncArgs, out: &mut dyn Write) -> Result<Vec<SpaceId>> {
    let mut spaces: Vec<SpaceId> = store.spaces()?;
    for space in &args.spaces {
        if !spaces.contains(space) {
            spaces.push(space.clone());
        }
    }
    if !spaces.is_empty() {
        return Ok(spaces);
    }
    let Some(spaces) = token::spaces(&args.token) else {
        return Err(Error::input(
            "this store holds no space yet and the token names none: name the spaces to \
             sync with --space S",
        ));
    };
    let names: Vec<&str> = spaces.iter().map(SpaceId::as_str).collect();
    let line = format!(
        "This store holds no space yet: syncing {} {} named by the token.",
        if names.len() == 1 { "space" } else { "spaces" },
        names.join(", ")
    );
    if args.json {
        eprintln!("{line}");
    } else {
        say!(out, "{line}")?;
    }
    Ok(spaces)
}

/// `text` ending with a full stop.
fn sentence(text: &str) -> String {
    if text.ends_with(['.', '!', '?']) {
        text.to_owned()
    } else {
        format!("{text}.")
    }
}

/// One round before the deadline, on a thread, while the outbox draining is shown.
fn once(store: &Store, config: SyncConfig, args: &SyncArgs) -> Result<SyncRunJson> {
    let deadline = args
        .deadline
        .map_or(ONCE_DEADLINE_DEFAULT, Duration::from_secs);
    let started = Instant::now();
    let to_send = store.sync_summary()?.pending;
    let bar = if show_progress(args.json) {
        let bar = ProgressBar::new_spinner();
        bar.enable_steady_tick(PROGRESS_INTERVAL);
        bar
    } else {
        ProgressBar::hidden()
    };
    bar.set_message(format!("Syncing with {}…", config.url));
    let worker = store.clone();
    let thread = std::thread::spawn(move || worker.sync_once(config, started + deadline));
    while !thread.is_finished() {
        std::thread::sleep(PROGRESS_INTERVAL);
        if let Ok(now) = store.sync_summary() {
            let sent = to_send.saturating_sub(now.pending);
            bar.set_message(format!(
                "Syncing: {sent} of {} sent",
                count(to_send, "change")
            ));
        }
    }
    bar.finish_and_clear();
    let report = thread
        .join()
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    Ok(SyncRunJson {
        mode: "once",
        complete: report.complete,
        pushed: report.pushed,
        rejected: report.rejected,
        received: report.received,
        changes_applied: report.changes_applied,
        records_repaired: report.records_repaired,
        pending: report.pending,
        failed: report.failed,
        error: report.error,
        elapsed_ms: report.elapsed.as_millis() as u64,
    })
}

/// The background worker until Ctrl-C, the deadline, or a refusal only a person can fix;
/// prints each change of state unless JSON is wanted.
fn live(
    store: &Store,
    config: SyncConfig,
    args: &SyncArgs,
    out: &mut dyn Write,
) -> Result<SyncRunJson> {
    let started = Instant::now();
    let until = args.deadline.map(|s| started + Duration::from_secs(s));
    let interrupted = interrupt_flag();
    let url = config.url.clone();
    let handle = store.sync(config)?;
    let mut last: Option<SyncStatus> = None;
    let mut last_line = String::new();
    let mut refused = None;
    loop {
        if interrupted.load(Ordering::Relaxed) || until.is_some_and(|u| Instant::now() >= u) {
            break;
        }
        let (status, _) = handle.wait_for(Duration::from_millis(200), |s| last.as_ref() != Some(s));
        let line = status_line(&status, &url);
        if !args.json && line != last_line {
            say!(out, "{line}")?;
            last_line = line;
        }
        if let ConnectionState::Offline {
            reason,
            permanent: true,
        } = &status.connection
        {
            refused = Some(reason.clone());
            break;
        }
        last = Some(status);
    }
    let metrics = handle.metrics()?;
    let status = handle.status();
    handle.stop();
    Ok(SyncRunJson {
        mode: "live",
        complete: refused.is_none() && status.pending == 0 && status.failed == 0,
        pushed: metrics.entries_stored + metrics.entries_duplicate,
        rejected: metrics.entries_rejected,
        received: metrics.entries_received,
        changes_applied: metrics.changes_applied,
        records_repaired: metrics.records_repaired,
        pending: status.pending,
        failed: status.failed,
        error: refused.or(status.last_error),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// A flag raised by Ctrl-C, so a live sync stops cleanly and prints its summary.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let raised = flag.clone();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build();
    if let Ok(runtime) = runtime {
        std::thread::spawn(move || {
            if runtime.block_on(tokio::signal::ctrl_c()).is_ok() {
                raised.store(true, Ordering::Relaxed);
            }
        });
    }
    flag
}

/// The status in one line for people.
fn status_line(status: &SyncStatus, url: &str) -> String {
    let waiting = match status.pending {
        0 => String::new(),
        n => format!("; {} waiting to be sent", count(n, "change")),
    };
    match &status.connection {
        ConnectionState::Connecting => format!("Connecting to {url}…"),
        ConnectionState::Syncing => format!("Syncing{waiting}"),
        ConnectionState::Idle => {
            "Up to date; changes go out and come in as they happen (Ctrl-C to stop)".to_owned()
        }
        ConnectionState::Offline { reason, permanent } => {
            let next = match (permanent, status.next_retry_ms) {
                (true, _) => "; this needs you to act".to_owned(),
                (false, Some(ms)) => format!("; trying again at {}", time_text(ms)),
                (false, None) => String::new(),
            };
            format!("Offline: {reason}{next}{waiting}")
        }
        _ => format!("Sync state changed{waiting}"),
    }
}

fn summary_text(run: &SyncRunJson, out: &mut dyn Write) -> Result<()> {
    let secs = run.elapsed_ms as f64 / 1000.0;
    let verb = if run.complete { "Synced" } else { "Stopped" };
    let mut line = format!(
        "{verb} after {secs:.1} s: {} sent, {} from other devices applied",
        count(run.pushed, "change"),
        count(run.changes_applied, "new change"),
    );
    if run.rejected > 0 {
        line += &format!(", {} refused by the relay", run.rejected);
    }
    if run.records_repaired > 0 {
        line += &format!(", {} repaired", count(run.records_repaired, "record"));
    }
    line += &match (run.pending, run.failed) {
        (0, 0) => ". Nothing is waiting.".to_owned(),
        (p, 0) => format!(". {} still waiting.", count(p, "change")),
        (p, f) => format!(
            ". {} still waiting, {f} of them failed (see `holdfast outbox`).",
            count(p + f, "change")
        ),
    };
    say!(out, "{line}")
}
