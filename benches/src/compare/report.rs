//! The comparison's output: markdown tables on stdout, and the same tables plus every raw
//! figure as JSON (`--out`).

use serde_json::{json, Value};

/// One table of the report.
pub struct Table {
    /// Its heading.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Cells, row by row.
    pub rows: Vec<Vec<String>>,
}

/// A target of the issue, checked.
pub struct Target {
    /// Which workload and what.
    pub name: String,
    /// What was measured, in words and numbers.
    pub measured: String,
    /// The target.
    pub target: String,
    /// Met, missed, or not measured in this run.
    pub met: Option<bool>,
}

/// Everything a run found.
#[derive(Default)]
pub struct Report {
    /// Tables in order.
    pub tables: Vec<Table>,
    /// Targets in order.
    pub targets: Vec<Target>,
    /// Raw figures by workload.
    pub raw: serde_json::Map<String, Value>,
    /// Things the reader must know (skipped peers, shared machine...).
    pub notes: Vec<String>,
}

impl Report {
    /// Adds a table and prints it at once, so a long run shows progress.
    pub fn table(&mut self, title: &str, header: &[&str], rows: Vec<Vec<String>>) {
        let table = Table {
            title: title.to_owned(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows,
        };
        println!("{}", markdown(&table));
        self.tables.push(table);
    }

    /// Adds a target.
    pub fn target(&mut self, name: &str, measured: String, target: &str, met: Option<bool>) {
        self.targets.push(Target {
            name: name.to_owned(),
            measured,
            target: target.to_owned(),
            met,
        });
    }

    /// Adds a note and prints it.
    pub fn note(&mut self, note: String) {
        println!("note: {note}");
        self.notes.push(note);
    }

    /// The targets as a table.
    pub fn targets_markdown(&self) -> String {
        let rows = self
            .targets
            .iter()
            .map(|t| {
                vec![
                    t.name.clone(),
                    t.measured.clone(),
                    t.target.clone(),
                    match t.met {
                        Some(true) => "met".into(),
                        Some(false) => "**missed**".into(),
                        None => "not measured".into(),
                    },
                ]
            })
            .collect();
        markdown(&Table {
            title: "Targets".into(),
            header: ["target", "measured (same run)", "goal", ""]
                .map(String::from)
                .to_vec(),
            rows,
        })
    }

    /// The whole report as JSON.
    pub fn json(&self, machine: Value, command: Vec<String>) -> Value {
        json!({
            "machine": machine,
            "command": command,
            "tables": self.tables.iter().map(|t| json!({
                "title": t.title,
                "header": t.header,
                "rows": t.rows,
            })).collect::<Vec<_>>(),
            "targets": self.targets.iter().map(|t| json!({
                "name": t.name,
                "measured": t.measured,
                "target": t.target,
                "met": t.met,
            })).collect::<Vec<_>>(),
            "notes": self.notes,
            "raw": self.raw,
        })
    }
}

/// A table in markdown, with its title as a bold line.
pub fn markdown(table: &Table) -> String {
    let mut out = format!("**{}**\n\n", table.title);
    out += &format!("| {} |\n", table.header.join(" | "));
    out += &format!("|{}\n", "---|".repeat(table.header.len()));
    for row in &table.rows {
        out += &format!("| {} |\n", row.join(" | "));
    }
    out
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: f64) -> String {
    let n = n.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// Bytes in B, KB or MB (powers of 1000).
pub fn bytes(n: f64) -> String {
    if n >= 10e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 10e3 {
        format!("{:.1} KB", n / 1e3)
    } else {
        format!("{} B", thousands(n))
    }
}

/// KiB as MiB.
pub fn mib(kib: f64) -> String {
    format!("{:.0} MiB", kib / 1024.0)
}

/// Seconds with a sensible precision.
pub fn secs(s: f64) -> String {
    if s >= 10.0 {
        format!("{s:.1} s")
    } else if s >= 0.1 {
        format!("{s:.2} s")
    } else {
        format!("{:.1} ms", s * 1e3)
    }
}

/// A ratio as `12.3×`.
pub fn ratio(r: f64) -> String {
    if !r.is_finite() {
        "—".into()
    } else if r >= 10.0 {
        format!("{r:.0}×")
    } else {
        format!("{r:.2}×")
    }
}
