//! The audit's table (aligned columns, then a summary line) and its JSON.

use std::collections::BTreeMap;

use serde_json::json;

use super::{Row, Verdict, summary};

const HEADERS: [&str; 8] = [
    "NAMESPACE",
    "WORKLOAD",
    "CONTAINER",
    "IMAGE",
    "DIGEST",
    "POLICY",
    "VERDICT",
    "REASON",
];

/// A digest shortened as `kubectl` users read them: the algorithm and 12 hex digits.
fn short_digest(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algorithm, hex)) if hex.len() > 12 => format!("{algorithm}:{}", &hex[..12]),
        _ => digest.to_string(),
    }
}

/// The rows as a table, every column as wide as its widest cell, and a summary line.
pub fn render_table(rows: &[Row]) -> String {
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            [
                r.namespace.clone(),
                r.workload.clone(),
                r.container.clone(),
                r.image.clone(),
                short_digest(&r.digest),
                if r.policy.is_empty() {
                    "-".to_string()
                } else {
                    r.policy.clone()
                },
                r.verdict.as_str().to_string(),
                r.reason.replace('\n', " "),
            ]
        })
        .collect();
    let mut widths = HEADERS.map(str::len);
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<width$}  ", width = widths[i]));
            }
        }
        out.trim_end().to_string() + "\n"
    };
    let mut out = line(&HEADERS.map(str::to_string));
    for row in &cells {
        out.push_str(&line(row));
    }
    out.push_str(&summary_line(rows));
    out
}

fn summary_line(rows: &[Row]) -> String {
    let counts = summary(rows);
    let parts: Vec<String> = [Verdict::Pass, Verdict::Warn, Verdict::Fail, Verdict::Error]
        .iter()
        .map(|v| format!("{} {}", counts.get(v).copied().unwrap_or(0), v.as_str()))
        .collect();
    format!("{} rows: {}\n", rows.len(), parts.join(", "))
}

/// `{"rows": [...], "summary": {"pass": N, ...}}`.
pub fn render_json(rows: &[Row]) -> String {
    let counts: BTreeMap<&str, usize> = [Verdict::Pass, Verdict::Warn, Verdict::Fail, Verdict::Error]
        .iter()
        .map(|v| (v.as_str(), summary(rows).get(v).copied().unwrap_or(0)))
        .collect();
    let document = json!({"rows": rows, "summary": counts});
    serde_json::to_string_pretty(&document).unwrap_or_default() + "\n"
}
