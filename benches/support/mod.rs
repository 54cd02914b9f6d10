//! Shared by the bench binaries: reading back the estimates criterion wrote in this run, to
//! print each figure next to its baseline.

use std::path::PathBuf;
use std::time::SystemTime;

/// Where criterion writes its estimates: its own default, made explicit (`CRITERION_HOME`,
/// else `$CARGO_TARGET_DIR/criterion`, else `target/criterion` in the workspace).
pub fn criterion_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("criterion")
}

/// The median time (ns) of `group/function`, if it was measured after `since` (so a figure
/// left over from an earlier run is never shown).
pub fn median_ns(group: &str, function: &str, since: SystemTime) -> Option<f64> {
    let path = criterion_dir()
        .join(group)
        .join(function)
        .join("new")
        .join("estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < since {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// A time for the table, in ns.
pub fn ns(t: Option<f64>) -> String {
    t.map_or("-".to_owned(), |t| format!("{t:.0}"))
}

/// `a / b`, for the table.
pub fn ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_owned(),
    }
}
