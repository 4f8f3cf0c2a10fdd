//! `compare --quick` on tiny sizes, Holdfast and samod only (no npm needed): every
//! workload but the fan-out runs, finishes, and writes its JSON report. The typing
//! workload replays `tests/data/automerge-paper-first-1000.json.gz`, the first 1,000
//! edits of the `automerge-paper` trace (from `../shared/data/editing-traces/`, which a
//! clone of this repository alone does not have), with the text they produce.

use std::process::Command;

#[test]
fn quick_run_of_holdfast_and_samod_reports_every_workload() {
    let trace = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/automerge-paper-first-1000.json.gz"
    );
    let report = compare(&[
        "--only",
        "holdfast,samod",
        "--workloads",
        "1,2,3,4,6",
        "--n",
        "50",
        "--edits",
        "500",
        "--cold-records",
        "300",
        "--trace",
        trace,
        "--time-limit",
        "60",
    ]);
    let runs = report["raw"]["records"]
        .as_array()
        .expect("workload 1 runs");
    for system in ["holdfast", "samod"] {
        let run = runs
            .iter()
            .find(|r| r["system"] == system)
            .unwrap_or_else(|| panic!("no run of {system}"));
        assert_eq!(run["failure"], serde_json::Value::Null, "{system}: {run}");
        assert!(run["upload"]["bytes_up"].as_u64().unwrap_or(0) > 0, "{run}");
        assert!(
            run["reconnect_download"]["secs"].as_f64().is_some(),
            "{run}"
        );
    }
    for run in report["raw"]["typing"]["runs"]
        .as_array()
        .expect("typing runs")
    {
        assert_eq!(run["failure"], serde_json::Value::Null, "{run}");
    }
    assert!(
        report["raw"]["writes"]["store_single_us"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    assert!(
        report["raw"]["cold_open"]["store_secs"]
            .as_f64()
            .unwrap_or(0.0)
            > 0.0
    );
    let targets = report["targets"].as_array().expect("targets");
    assert!(targets.len() >= 5, "{targets:?}");
}

/// `HOLDFAST_COMPARE_NODE=1` (CI sets it, after `bash benches/compare/setup.sh`): the same
/// quick run with the automerge-repo peer on node, so the comparison's setup and its node
/// peer keep working from a fresh clone. Without the peer installed it fails, saying how
/// to install it.
#[test]
fn quick_run_with_the_node_peer() {
    if std::env::var_os("HOLDFAST_COMPARE_NODE").is_none() {
        eprintln!("HOLDFAST_COMPARE_NODE is not set: the node peer's quick run is left to CI");
        return;
    }
    let node_modules = concat!(env!("CARGO_MANIFEST_DIR"), "/compare/node/node_modules");
    assert!(
        std::path::Path::new(node_modules)
            .join("@automerge/automerge-repo")
            .exists(),
        "automerge-repo is not installed in {node_modules}: run `bash benches/compare/setup.sh` \
         (needs node 20 and npm)"
    );
    let report = compare(&[
        "--only",
        "holdfast,automerge-repo",
        "--workloads",
        "1,2",
        "--n",
        "50",
        "--time-limit",
        "120",
    ]);
    let runs = report["raw"]["records"]
        .as_array()
        .expect("workload 1 runs");
    let node = runs
        .iter()
        .find(|r| r["system"] == "automerge-repo")
        .unwrap_or_else(|| panic!("no run of automerge-repo in {runs:?}"));
    assert_eq!(node["failure"], serde_json::Value::Null, "{node}");
    assert!(
        node["upload"]["bytes_up"].as_u64().unwrap_or(0) > 0,
        "{node}"
    );
}

/// Runs `compare --quick` with `args` in a temporary directory and returns its JSON report.
fn compare(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("compare.json");
    let status = Command::new(env!("CARGO_BIN_EXE_compare"))
        .arg("--quick")
        .args(args)
        .arg("--out")
        .arg(&out)
        .arg("--work-dir")
        .arg(dir.path())
        .status()
        .expect("compare runs");
    assert!(status.success(), "compare failed: {status}");
    serde_json::from_str(&std::fs::read_to_string(&out).expect("the JSON report"))
        .expect("valid JSON")
}
