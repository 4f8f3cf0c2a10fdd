//! `compare --quick` on tiny sizes, Holdfast and samod only (no npm needed): every
//! workload but the fan-out runs, finishes, and writes its JSON report. The typing
//! workload replays `tests/data/automerge-paper-first-1000.json.gz`, the first 1,000
//! edits of the `automerge-paper` trace (from `../shared/data/editing-traces/`, which a
//! clone of this repository alone does not have), with the text they produce.

use std::process::Command;

#[test]
fn quick_run_of_holdfast_and_samod_reports_every_workload() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let out = dir.path().join("compare.json");
    let status = Command::new(env!("CARGO_BIN_EXE_compare"))
        .args([
            "--quick",
            "--only",
            "holdfast,samod",
            "--workloads",
            "1,2,3,4,6",
        ])
        .args(["--n", "50", "--edits", "500", "--cold-records", "300"])
        .arg("--trace")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/automerge-paper-first-1000.json.gz"
        ))
        .args(["--time-limit", "60", "--out"])
        .arg(&out)
        .arg("--work-dir")
        .arg(dir.path())
        .status()
        .expect("compare runs");
    assert!(status.success(), "compare failed: {status}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).expect("the JSON report"))
            .expect("valid JSON");
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
