use std::fs::File;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{dep_info_sources, listening, staleness, Staleness};

/// A file at `path` modified `secs` seconds after a fixed instant.
fn file_at(path: &Path, secs: u64) {
    let file = File::create(path).unwrap();
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs);
    file.set_modified(at).unwrap();
}

#[test]
fn a_binary_older_than_a_source_it_lists_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("holdfast-relay");
    let (main, lib) = (dir.path().join("main.rs"), dir.path().join("my lib.rs"));
    file_at(&main, 10);
    file_at(&lib, 20);
    assert_eq!(staleness(&bin), Some(Staleness::Missing(bin.clone())));
    file_at(&bin, 30);
    let dep_info = dir.path().join("holdfast-relay.d");
    assert_eq!(
        staleness(&bin),
        Some(Staleness::NoDepInfo(dep_info.clone()))
    );
    let escaped = lib.to_str().unwrap().replace(' ', "\\ ");
    let text = format!("{}: {} {escaped}\n", bin.display(), main.display());
    std::fs::write(&dep_info, text).unwrap();
    assert_eq!(staleness(&bin), None, "built after both sources");

    file_at(&lib, 40);
    let stale = staleness(&bin).unwrap();
    assert_eq!(
        stale,
        Staleness::Newer {
            bin: bin.clone(),
            source: lib.clone()
        }
    );
    assert!(stale
        .to_string()
        .ends_with("my lib.rs changed after it was built"));

    file_at(&bin, 50);
    assert_eq!(staleness(&bin), None, "rebuilt");
    std::fs::remove_file(&main).unwrap();
    assert_eq!(
        staleness(&bin),
        Some(Staleness::Gone {
            bin: bin.clone(),
            source: main
        })
    );
}

#[test]
fn dep_info_paths_are_read_with_their_escaped_spaces() {
    let text = "/t/holdfast-relay: /a/x.rs /b/with\\ space.rs  /c/y.rs\n\n";
    let paths: Vec<_> = dep_info_sources(text);
    let want: Vec<std::path::PathBuf> = ["/a/x.rs", "/b/with space.rs", "/c/y.rs"]
        .iter()
        .map(Into::into)
        .collect();
    assert_eq!(paths, want);
}

#[test]
fn the_readiness_line_gives_both_addresses() {
    let check = |line: &str| listening(line).map(|(ws, http)| (ws.to_string(), http.to_string()));
    let pair = |ws: &str, http: &str| Some((ws.to_owned(), http.to_owned()));
    assert_eq!(
        check("listening on ws://127.0.0.1:41234/ (sync) and http://127.0.0.1:41235/ (health, metrics)"),
        pair("127.0.0.1:41234", "127.0.0.1:41235")
    );
    assert_eq!(
        check("listening on wss://[::1]:7700/ (sync) and http://[::1]:7701/ (health, metrics)"),
        pair("[::1]:7700", "[::1]:7701")
    );
    assert_eq!(check("listening ws=127.0.0.1:1 http=127.0.0.1:2"), None);
    assert_eq!(
        check("listening on ftp://127.0.0.1:1/ and http://127.0.0.1:2/"),
        None
    );
}
