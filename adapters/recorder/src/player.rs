//! The player federate: replays a CSV file as the attributes of one object.
//!
//! The file has a header whose first column is `time_s` (exact decimal seconds; scientific
//! notation is shifted into a decimal, not computed) and whose
//! other columns are attribute names; each row gives the attributes' values from its time on.
//! An empty cell leaves that attribute out of the row's update. Times must increase.
//!
//! The player is time-regulating and time-constrained. Its lookahead is the smallest gap
//! between consecutive rows (counting from the start time to the first row) unless configured:
//! granted at one row's time it sends the next row stamped with that row's time, which is then
//! never below its bound. A row at the start time is sent without a timestamp inside the start
//! barrier, as the FMU adapters send their initial outputs. Rows after the stop time are not
//! played; the player then advances to the stop time and resigns.

use std::fmt;
use std::path::{Path, PathBuf};

use federate_sdk::hosted;
use federate_sdk::{
    Connector, Error as FederateError, Federate, ObjectModel, SimDuration, SimTime, Values,
};
use tracing::info;

/// A CSV file read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerTable {
    /// The file, for messages.
    pub file: PathBuf,
    /// Attribute names, in column order.
    pub columns: Vec<String>,
    /// Rows: time and one optional value per column.
    pub rows: Vec<(SimTime, Vec<Option<f64>>)>,
}

/// How the player takes part in the federation.
#[derive(Debug, Clone)]
pub struct PlayerConfig {
    /// The federation.
    pub federation: String,
    /// The player's federate name, also its object's name.
    pub name: String,
    /// Where the RTI is.
    pub connector: Connector,
    /// The object class whose attributes the columns are.
    pub class: String,
    /// When the run starts (rows before it are refused when loading).
    pub start: SimTime,
    /// When the run ends.
    pub stop: SimTime,
    /// The lookahead; `None` takes the smallest row gap.
    pub lookahead: Option<SimDuration>,
    /// The federates of the start barrier (the player included); empty: no barrier.
    pub expect: Vec<String>,
    /// The model to create the federation with; `None` derives it from the class and columns.
    pub model: Option<ObjectModel>,
}

/// Why a player could not load its file or play it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlayerError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file's content is wrong; the line says where.
    #[error("{}, line {line}: {message}", file.display())]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The lookahead does not fit the rows.
    #[error("player `{name}`: {message}")]
    Lookahead {
        /// The player.
        name: String,
        /// What is wrong, with the numbers.
        message: String,
    },
    /// The federation refused or lost the player.
    #[error(transparent)]
    Federate(#[from] FederateError),
}

impl PlayerTable {
    /// Reads and checks a CSV file.
    ///
    /// # Errors
    ///
    /// [`PlayerError::Io`], or [`PlayerError::Invalid`] naming the line.
    pub fn load(file: &Path) -> Result<Self, PlayerError> {
        let text = std::fs::read_to_string(file).map_err(|source| PlayerError::Io {
            file: file.to_path_buf(),
            source,
        })?;
        Self::parse(&text, file)
    }

    /// Parses CSV text; `file` names it in messages.
    ///
    /// # Errors
    ///
    /// [`PlayerError::Invalid`] naming the line.
    pub fn parse(text: &str, file: &Path) -> Result<Self, PlayerError> {
        let invalid = |line: usize, message: fmt::Arguments<'_>| PlayerError::Invalid {
            file: file.to_path_buf(),
            line,
            message: message.to_string(),
        };
        // Spreadsheets save CSV with a byte order mark, which would become part of `time_s`.
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let Some((header_line, header)) = lines.next() else {
            return Err(invalid(
                1,
                format_args!("empty file: write a header `time_s,<attribute>,...`"),
            ));
        };
        let mut header = header.split(',').map(str::trim);
        if header.next() != Some("time_s") {
            return Err(invalid(
                header_line,
                format_args!("the first column must be `time_s` (time in seconds)"),
            ));
        }
        let columns: Vec<String> = header.map(str::to_owned).collect();
        if columns.is_empty() {
            return Err(invalid(
                header_line,
                format_args!("no attribute columns after `time_s`"),
            ));
        }
        for (i, column) in columns.iter().enumerate() {
            if column.is_empty() || column.contains('.') || column.contains('"') {
                return Err(invalid(
                    header_line,
                    format_args!("column {} `{column}` is not an attribute name", i + 2),
                ));
            }
            if columns[..i].contains(column) {
                return Err(invalid(
                    header_line,
                    format_args!("column `{column}` appears twice"),
                ));
            }
        }

        let mut rows: Vec<(SimTime, Vec<Option<f64>>)> = Vec::new();
        for (line, text) in lines {
            let mut cells = text.split(',').map(str::trim);
            let time_cell = cells.next().unwrap_or("");
            // Exact decimal seconds, no float: "0.1" is exactly 100 ms. Scientific notation,
            // as data tools write small and large numbers, is shifted into a decimal first.
            let decimal = decimal_from_scientific(time_cell);
            let time: SimTime = format!("{}s", decimal.as_deref().unwrap_or(time_cell))
                .parse()
                .map_err(|e| {
                    invalid(
                        line,
                        format_args!("time_s `{time_cell}` is not a time in seconds: {e}"),
                    )
                })?;
            if let Some((previous, _)) = rows.last()
                && time <= *previous
            {
                return Err(invalid(
                    line,
                    format_args!("time {time} does not come after the previous row's {previous}"),
                ));
            }
            let mut values = Vec::with_capacity(columns.len());
            for column in &columns {
                let cell = cells.next().unwrap_or("");
                if cell.is_empty() {
                    values.push(None);
                    continue;
                }
                let value: f64 = cell.parse().map_err(|_| {
                    invalid(
                        line,
                        format_args!("`{cell}` in column `{column}` is not a number"),
                    )
                })?;
                values.push(Some(value));
            }
            if cells.next().is_some() {
                return Err(invalid(
                    line,
                    format_args!(
                        "more cells than the {} columns of the header",
                        columns.len() + 1
                    ),
                ));
            }
            rows.push((time, values));
        }
        if rows.is_empty() {
            return Err(invalid(
                header_line,
                format_args!("no rows after the header"),
            ));
        }
        Ok(Self {
            file: file.to_path_buf(),
            columns,
            rows,
        })
    }

    /// The smallest gap between consecutive rows up to `stop`, counting from `start` to the
    /// first row when that is later; `None` when there is no gap (a single row at the start).
    pub fn smallest_gap(&self, start: SimTime, stop: SimTime) -> Option<SimDuration> {
        let mut previous = start;
        let mut smallest: Option<SimDuration> = None;
        for (time, _) in self.rows.iter().filter(|(t, _)| *t <= stop) {
            if let Ok(gap) = time.duration_since(previous)
                && !gap.is_zero()
            {
                smallest = Some(smallest.map_or(gap, |s| s.min(gap)));
            }
            previous = *time;
        }
        smallest
    }

    /// The object model of the class with these columns as attributes.
    pub fn model(&self, class: &str) -> ObjectModel {
        ObjectModel::new().with_object_class(class, self.columns.iter().map(String::as_str))
    }
}

/// Plays `table` until the stop time. Returns a one-line summary.
///
/// # Errors
///
/// [`PlayerError`]; the player resigns before returning one after joining.
pub fn run(config: &PlayerConfig, table: &PlayerTable) -> Result<String, PlayerError> {
    let lookahead = lookahead(config, table)?;
    let model = config
        .model
        .clone()
        .unwrap_or_else(|| table.model(&config.class));
    let mut federate = Federate::builder(&config.federation, &config.name)
        .create_federation(model)
        .time_regulating(lookahead)
        .time_constrained()
        .join_blocking(config.connector.clone())?;
    let outcome = play(config, table, &mut federate);
    match outcome {
        Ok(summary) => {
            federate.resign()?;
            info!(player = %config.name, "{summary}");
            Ok(summary)
        }
        Err(error) => {
            let _ = federate.resign();
            Err(error)
        }
    }
}

fn lookahead(config: &PlayerConfig, table: &PlayerTable) -> Result<SimDuration, PlayerError> {
    let error = |message: String| PlayerError::Lookahead {
        name: config.name.clone(),
        message,
    };
    if let Some((first, _)) = table.rows.first()
        && *first < config.start
    {
        return Err(error(format!(
            "{} starts at {first}, before the run's start {}",
            table.file.display(),
            config.start
        )));
    }
    let gap = table.smallest_gap(config.start, config.stop);
    match (config.lookahead, gap) {
        (Some(l), _) if l.is_zero() => Err(error("lookahead must be positive".into())),
        (Some(l), Some(gap)) if l > gap => Err(error(format!(
            "lookahead {l} is longer than the smallest gap {gap} between rows of {}; a row \
             would have to be sent before the player's bound",
            table.file.display()
        ))),
        (Some(l), _) => Ok(l),
        (None, Some(gap)) => Ok(gap),
        // A single row at the start time: it goes out in the start barrier and the lookahead
        // only has to let the others run to the stop time.
        (None, None) => Ok(config
            .stop
            .duration_since(config.start)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or(SimDuration::TICK)),
    }
}

fn play(
    config: &PlayerConfig,
    table: &PlayerTable,
    federate: &mut federate_sdk::blocking::Federate,
) -> Result<String, PlayerError> {
    let paths: Vec<String> = table
        .columns
        .iter()
        .map(|c| format!("{}.{c}", config.class))
        .collect();
    let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
    federate.publish(&paths)?;
    let object = federate.register_object(&config.class, Some(&config.name))?;
    let values = |row: &[Option<f64>]| -> Result<Values, FederateError> {
        let mut values = Values::new();
        for (column, value) in table.columns.iter().zip(row) {
            if let Some(value) = value {
                values.insert(column, value)?;
            }
        }
        Ok(values)
    };

    let joined = federate.time();
    let mut rows = table
        .rows
        .iter()
        .filter(|(t, _)| *t <= config.stop)
        .peekable();
    let mut played = 0usize;
    let expected: Vec<&str> = config.expect.iter().map(String::as_str).collect();
    let initial = rows.next_if(|(t, _)| *t == config.start && config.start == joined);
    hosted::start_barrier(federate, &expected, |federate| {
        if let Some((_, row)) = initial {
            federate.update(&object, values(row)?, None)?;
        }
        Ok(())
    })?;
    played += usize::from(initial.is_some());
    for (time, row) in rows {
        federate.update(&object, values(row)?, Some(*time))?;
        federate.advance_to(*time)?;
        played += 1;
    }
    if federate.time() < config.stop {
        federate.advance_to(config.stop)?;
    }
    Ok(format!(
        "played {played} rows of {} to {}",
        table.file.display(),
        federate.time()
    ))
}

/// `1.5e-3` as `0.0015`, exactly (the digits are moved, not computed); `None` for text without
/// an exponent or that is not a number in scientific notation.
fn decimal_from_scientific(text: &str) -> Option<String> {
    let (mantissa, exponent) = text.split_once(['e', 'E'])?;
    let exponent: i32 = exponent.parse().ok().filter(|e: &i32| e.abs() <= 64)?;
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{whole}{fraction}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // The decimal point sits after `point` digits.
    let point = i32::try_from(whole.len()).ok()? + exponent;
    let text = if point <= 0 {
        let zeros = usize::try_from(-point).ok()?;
        format!("0.{}{digits}", "0".repeat(zeros))
    } else {
        let point = usize::try_from(point).ok()?;
        if point >= digits.len() {
            format!("{digits}{}", "0".repeat(point - digits.len()))
        } else {
            format!("{}.{}", &digits[..point], &digits[point..])
        }
    };
    Some(format!("{sign}{text}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> Result<PlayerTable, PlayerError> {
        PlayerTable::parse(text, Path::new("load.csv"))
    }

    #[test]
    fn reads_spreadsheet_csv_a_byte_order_mark_and_scientific_times() {
        let t = table("\u{feff}time_s,x\n0,1\n2.5e-1,2\n1E+1,3\n").unwrap();
        let times: Vec<SimTime> = t.rows.iter().map(|(time, _)| *time).collect();
        assert_eq!(
            times,
            [
                SimTime::ZERO,
                SimTime::from_millis(250).unwrap(),
                SimTime::from_secs(10).unwrap()
            ]
        );
        for (text, decimal) in [
            ("1e-3", "0.001"),
            ("-1.5e2", "-150"),
            ("12.5e-1", "1.25"),
            ("+7E0", "7"),
            ("3.14159e2", "314.159"),
        ] {
            assert_eq!(
                decimal_from_scientific(text).as_deref(),
                Some(decimal),
                "{text}"
            );
        }
        for text in ["1.5", "e3", "1e", "1ee3", "1.5.e3", "x1e3", "1e999"] {
            assert_eq!(decimal_from_scientific(text), None, "{text}");
        }
    }

    #[test]
    fn parses_rows_and_gaps() {
        let t = table("# base load\ntime_s,load_kw,price\n0,1.5,\n0.25,2,0.3\n1,,0.4\n").unwrap();
        assert_eq!(t.columns, ["load_kw", "price"]);
        assert_eq!(t.rows.len(), 3);
        assert_eq!(t.rows[0].1, [Some(1.5), None]);
        assert_eq!(t.rows[2].0, SimTime::from_secs(1).unwrap());
        let stop = SimTime::from_secs(10).unwrap();
        assert_eq!(
            t.smallest_gap(SimTime::ZERO, stop),
            Some(SimDuration::from_millis(250).unwrap())
        );
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            ("time,x\n0,1\n", "line 1"),
            ("time_s,x\n0,1\n0,2\n", "line 3"),
            ("time_s,x\n0,1\n1,abc\n", "line 3: `abc` in column `x`"),
            ("time_s,x\n0,1,2\n", "line 2"),
            ("time_s,x\n", "no rows"),
            ("time_s,a.b\n0,1\n", "line 1"),
        ];
        for (text, expected) in cases {
            let error = table(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
        }
    }
}
