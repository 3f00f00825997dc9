//! SVG charts of a recording: one chart per recorded attribute, one line per object.
//!
//! SVG keeps text as text for the viewer to render, so charts need no font files on the
//! machine that makes them (a fresh Debian has none), unlike a bitmap backend.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::recording::Recording;

/// A chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[error("cannot draw {}: {message}", file.display())]
pub struct PlotError {
    /// The chart's file.
    pub file: PathBuf,
    /// The drawing backend's message.
    pub message: String,
}

/// Colours that stay distinguishable on white, cycled through the lines of a chart.
const PALETTE: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Writes `<Class.attribute>.svg` into `dir` for each recorded attribute with values and
/// returns the files written.
///
/// # Errors
///
/// [`PlotError`] naming the chart.
pub fn plot(recording: &Recording, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let mut files = Vec::new();
    for (attribute, columns) in recording.columns_by_attribute() {
        let series: Vec<(&str, Vec<(f64, f64)>)> = columns
            .iter()
            .map(|column| {
                let points = recording
                    .series(column)
                    .into_iter()
                    .map(|(t, v)| (t.as_secs_f64(), v))
                    .filter(|(_, v)| v.is_finite())
                    .collect();
                (*column, points)
            })
            .filter(|(_, points): &(&str, Vec<(f64, f64)>)| !points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let file = dir.join(format!("{}.svg", file_name(attribute)));
        chart(&file, attribute, &series).map_err(|message| PlotError {
            file: file.clone(),
            message,
        })?;
        files.push(file);
    }
    Ok(files)
}

fn chart(file: &Path, attribute: &str, series: &[(&str, Vec<(f64, f64)>)]) -> Result<(), String> {
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (mut t0, mut t1, mut v0, mut v1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for (t, v) in points {
        t0 = t0.min(*t);
        t1 = t1.max(*t);
        v0 = v0.min(*v);
        v1 = v1.max(*v);
    }
    // A flat signal or a single instant still needs an axis of some length.
    if t1 <= t0 {
        t1 = t0 + 1.0;
    }
    let margin = if v1 > v0 {
        (v1 - v0) * 0.05
    } else {
        v0.abs().max(1.0) * 0.1
    };
    let (v0, v1) = (v0 - margin, v1 + margin);

    let root = SVGBackend::new(file, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(&root)
        .caption(attribute, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(t0..t1, v0..v1)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("simulation time [s]")
        .y_desc(attribute)
        .draw()
        .map_err(|e| e.to_string())?;
    for (i, (column, points)) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?
            .label(*column)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())
}

/// A file name from an attribute path: letters, digits, `.`, `-` and `_` kept, the rest `_`.
fn file_name(attribute: &str) -> String {
    attribute
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use fedtwin_core::SimTime;

    #[test]
    fn draws_one_svg_per_attribute_with_legend_and_labels() {
        let mut recording = Recording::new();
        for i in 0..10 {
            let t = SimTime::from_millis(i * 100).unwrap();
            recording.signal(t, "mass.x", "Mass.State.x", (i as f64).sin());
            recording.signal(t, "mass.v", "Mass.State.v", (i as f64).cos());
        }
        let dir = std::env::temp_dir().join(format!("fedtwin-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let files = plot(&recording, &dir).unwrap();
        assert_eq!(files.len(), 2);
        let svg = std::fs::read_to_string(dir.join("Mass.State.x.svg")).unwrap();
        assert!(svg.contains("<svg"), "{svg}");
        assert!(svg.contains("simulation time [s]"), "x label");
        assert!(svg.contains("mass.x"), "legend");
        assert!(svg.contains("<polyline"), "line");
        let _ = std::fs::remove_dir_all(dir);
    }
}
