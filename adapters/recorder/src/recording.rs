//! What the recorder has received, and the files it becomes.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedtwin_core::SimTime;
use serde::Serialize;

use crate::{format_number, format_seconds};

/// Everything recorded so far. Rows are keyed by time, so whatever order values arrive in, the
/// files come out sorted; columns are sorted by name.
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Signal values: one row per timestamp, one entry per column with a value there.
    rows: BTreeMap<SimTime, BTreeMap<String, f64>>,
    /// Every signal column, with the recorded attribute (`Class.attribute`) it belongs to.
    columns: BTreeMap<String, String>,
    /// Interactions in delivery order: time, class, sender, parameters.
    interactions: Vec<InteractionRow>,
    /// Every parameter name seen, for the interaction file's header.
    parameters: BTreeSet<String>,
    /// Grants the recorder received.
    grants: u64,
    /// The recorder's last grant.
    last_grant: Option<SimTime>,
}

#[derive(Debug, Clone)]
struct InteractionRow {
    time: SimTime,
    class: String,
    sender: String,
    parameters: BTreeMap<String, String>,
}

/// The statistics of one column in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColumnSummary {
    /// The column.
    pub column: String,
    /// Number of values.
    pub count: usize,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Mean of the values (each row counts once, whatever its time step).
    pub mean: f64,
    /// The value at the latest time.
    pub last: f64,
}

#[derive(Debug, Serialize)]
struct Summary<'a> {
    wall_time_s: f64,
    grants: u64,
    last_grant_s: Option<String>,
    rows: usize,
    interactions: usize,
    columns: &'a [ColumnSummary],
}

/// The files a recording was written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// `signals.csv`.
    pub signals: PathBuf,
    /// `interactions.csv`.
    pub interactions: PathBuf,
    /// `summary.json`.
    pub summary: PathBuf,
}

impl Recording {
    /// An empty recording.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the value of `column` (an object's attribute) at `time`; a later value at the
    /// same time replaces an earlier one, as it would for a subscriber.
    pub fn signal(&mut self, time: SimTime, column: &str, attribute: &str, value: f64) {
        if !self.columns.contains_key(column) {
            self.columns.insert(column.to_owned(), attribute.to_owned());
        }
        self.rows
            .entry(time)
            .or_default()
            .insert(column.to_owned(), value);
    }

    /// Records an interaction with its parameters, already formatted.
    pub fn interaction(
        &mut self,
        time: SimTime,
        class: &str,
        sender: &str,
        parameters: BTreeMap<String, String>,
    ) {
        self.parameters.extend(parameters.keys().cloned());
        self.interactions.push(InteractionRow {
            time,
            class: class.to_owned(),
            sender: sender.to_owned(),
            parameters,
        });
    }

    /// Notes a grant (for the summary).
    pub fn grant(&mut self, time: SimTime) {
        self.grants += 1;
        self.last_grant = Some(time);
    }

    /// The signal columns, sorted.
    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.columns.keys().map(String::as_str)
    }

    /// The columns of each recorded attribute (`Class.attribute`), both sorted.
    pub fn columns_by_attribute(&self) -> BTreeMap<&str, Vec<&str>> {
        let mut by: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (column, attribute) in &self.columns {
            by.entry(attribute.as_str()).or_default().push(column);
        }
        by
    }

    /// The values of `column` in time order.
    pub fn series(&self, column: &str) -> Vec<(SimTime, f64)> {
        self.rows
            .iter()
            .filter_map(|(time, row)| row.get(column).map(|v| (*time, *v)))
            .collect()
    }

    /// Number of rows (distinct timestamps with a value).
    pub fn rows(&self) -> usize {
        self.rows.len()
    }

    /// Per-column statistics.
    pub fn summary(&self) -> Vec<ColumnSummary> {
        self.columns
            .keys()
            .filter_map(|column| {
                let values: Vec<f64> = self.series(column).into_iter().map(|(_, v)| v).collect();
                let last = *values.last()?;
                Some(ColumnSummary {
                    column: column.clone(),
                    count: values.len(),
                    min: values.iter().copied().fold(f64::INFINITY, f64::min),
                    max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    mean: values.iter().sum::<f64>() / values.len() as f64,
                    last,
                })
            })
            .collect()
    }

    /// Writes `signals.csv`, `interactions.csv` and `summary.json` into `dir` (created if
    /// missing); `wall` is the run's wall-clock time, for the summary.
    ///
    /// # Errors
    ///
    /// The operating system's error, with the file it concerns.
    pub fn write(&self, dir: &Path, wall: Duration) -> Result<Written, (PathBuf, io::Error)> {
        fs::create_dir_all(dir).map_err(|e| (dir.to_path_buf(), e))?;
        let written = Written {
            signals: dir.join("signals.csv"),
            interactions: dir.join("interactions.csv"),
            summary: dir.join("summary.json"),
        };
        let at = |path: &PathBuf| {
            let path = path.clone();
            move |e| (path, e)
        };
        self.write_signals(&written.signals)
            .map_err(at(&written.signals))?;
        self.write_interactions(&written.interactions)
            .map_err(at(&written.interactions))?;
        let columns = self.summary();
        let summary = Summary {
            wall_time_s: wall.as_secs_f64(),
            grants: self.grants,
            last_grant_s: self.last_grant.map(format_seconds),
            rows: self.rows.len(),
            interactions: self.interactions.len(),
            columns: &columns,
        };
        let text = serde_json::to_string_pretty(&summary).map_err(io::Error::other);
        text.and_then(|t| fs::write(&written.summary, t + "\n"))
            .map_err(at(&written.summary))?;
        Ok(written)
    }

    fn write_signals(&self, path: &Path) -> io::Result<()> {
        let mut out = BufWriter::new(fs::File::create(path)?);
        let mut header = vec!["time_s".to_owned()];
        header.extend(self.columns.keys().map(|c| csv_field(c)));
        writeln!(out, "{}", header.join(","))?;
        for (time, row) in &self.rows {
            let mut line = format_seconds(*time);
            for column in self.columns.keys() {
                line.push(',');
                if let Some(value) = row.get(column) {
                    line.push_str(&format_number(*value));
                }
            }
            writeln!(out, "{line}")?;
        }
        out.flush()
    }

    fn write_interactions(&self, path: &Path) -> io::Result<()> {
        let mut out = BufWriter::new(fs::File::create(path)?);
        let mut header = vec!["time_s".to_owned(), "class".to_owned(), "sender".to_owned()];
        header.extend(self.parameters.iter().map(|p| csv_field(p)));
        writeln!(out, "{}", header.join(","))?;
        for row in &self.interactions {
            let mut fields = vec![
                format_seconds(row.time),
                csv_field(&row.class),
                csv_field(&row.sender),
            ];
            for parameter in &self.parameters {
                fields.push(
                    row.parameters
                        .get(parameter)
                        .map_or_else(String::new, |v| csv_field(v)),
                );
            }
            writeln!(out, "{}", fields.join(","))?;
        }
        out.flush()
    }
}

/// Quotes a field that holds a comma, a quote or a line break (RFC 4180).
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_sorted_rows_and_columns_with_empty_cells() {
        let mut recording = Recording::new();
        let t = |ms| SimTime::from_millis(ms).unwrap();
        recording.signal(t(200), "b.x", "B.x", 2.0);
        recording.signal(t(100), "a.x", "A.x", 0.5);
        recording.signal(t(200), "a.x", "A.x", 1.5);
        let mut parameters = BTreeMap::new();
        parameters.insert("count".to_owned(), "3".to_owned());
        recording.interaction(t(100), "Ping", "ping", parameters);
        recording.grant(t(200));
        let dir = std::env::temp_dir().join(format!("fedtwin-recording-{}", std::process::id()));
        let written = recording.write(&dir, Duration::from_millis(5)).unwrap();
        let signals = fs::read_to_string(&written.signals).unwrap();
        assert_eq!(signals, "time_s,a.x,b.x\n0.1,0.5,\n0.2,1.5,2\n");
        let interactions = fs::read_to_string(&written.interactions).unwrap();
        assert_eq!(interactions, "time_s,class,sender,count\n0.1,Ping,ping,3\n");
        let summary: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(&written.summary).unwrap()).unwrap();
        assert_eq!(summary["columns"][0]["column"], "a.x");
        assert_eq!(summary["columns"][0]["mean"], 1.0);
        assert_eq!(summary["columns"][0]["last"], 1.5);
        assert_eq!(summary["grants"], 1);
        let _ = fs::remove_dir_all(dir);
    }
}
