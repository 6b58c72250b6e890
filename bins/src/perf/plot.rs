//! `--plot FILE.svg`: throughput against message size, the stack beside raw UDP multicast and
//! JGroups 2.12 when they ran, as an SVG chart (plotters). Two panels: messages per second
//! and MB/s, both on log scales; each point is the median of the repeats, with a bar from
//! the slowest to the fastest run when there were several. Tested by `tests` below (a
//! well-formed SVG holding every series) and by `bins/tests/perf.rs` (a sweep end to end).

use super::report::{Pair, median_f};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// One line of the chart: per message size, (lowest, median, highest) msgs/s over repeats.
struct Series {
    name: String,
    color: RGBColor,
    points: Vec<(f64, [f64; 3])>,
}

/// A series' figure in one repeat, if it ran.
type Pick = fn(&Pair) -> Option<f64>;

/// The series of `rows` (size, that size's repeats), in a fixed order: stack, raw, JGroups.
fn series(rows: &[(usize, Vec<Pair>)]) -> Vec<Series> {
    let label = rows.iter().flat_map(|(_, p)| p.first()).map(|p| p.stack.label.clone()).next().unwrap_or_default();
    let pick: [(String, RGBColor, Pick); 3] = [
        (format!("Thoth `{label}`"), RGBColor(0xc0, 0x39, 0x2b), |p| Some(p.stack.msgs_per_sec)),
        ("raw UDP multicast".into(), RGBColor(0x27, 0x60, 0x9e), |p| p.raw.as_ref().map(|r| r.msgs_per_sec)),
        ("JGroups 2.12".into(), RGBColor(0x1e, 0x84, 0x49), |p| p.jgroups),
    ];
    pick.into_iter()
        .map(|(name, color, f)| {
            let points = rows
                .iter()
                .filter_map(|(size, pairs)| {
                    let v: Vec<f64> = pairs.iter().filter_map(f).filter(|v| *v > 0.0).collect();
                    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
                    let hi = v.iter().copied().fold(0.0, f64::max);
                    (!v.is_empty()).then(|| (*size as f64, [lo, median_f(v), hi]))
                })
                .collect();
            Series { name, color, points }
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

/// Writes the chart of `rows` to `path`, titled `title`.
pub fn write(path: &Path, title: &str, rows: &[(usize, Vec<Pair>)]) -> Result<(), String> {
    let series = series(rows);
    if series.is_empty() {
        return Err("--plot: no figures to plot".into());
    }
    let err = |e: String| format!("--plot {}: {e}", path.display());
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let root = root.titled(title, ("sans-serif", 18)).map_err(|e| err(e.to_string()))?;
    let (left, right) = root.split_horizontally(600);
    let bars = rows.iter().any(|(_, p)| p.len() > 1);
    panel(&left, "messages per second (slowest receiver)", &series, bars, true, |_, v| v).map_err(err)?;
    panel(&right, "MB/s (10^6 bytes per second)", &series, bars, false, |size, v| v * size / 1e6).map_err(err)?;
    root.present().map_err(|e| err(e.to_string()))
}

/// One panel: every series' medians as a line through points, bars for the range, and (in
/// the first panel) the legend. The x axis is labelled at the sizes measured.
fn panel(
    area: &DrawingArea<SVGBackend, Shift>,
    y_desc: &str,
    series: &[Series],
    bars: bool,
    legend: bool,
    y: impl Fn(f64, f64) -> f64,
) -> Result<(), String> {
    let all = || series.iter().flat_map(|s| s.points.iter().flat_map(|(x, v)| v.iter().map(|&v| (*x, y(*x, v)))));
    let (x_lo, x_hi) = all().fold((f64::INFINITY, 0.0_f64), |(lo, hi), (x, _)| (lo.min(x), hi.max(x)));
    let (y_lo, y_hi) = all().fold((f64::INFINITY, 0.0_f64), |(lo, hi), (_, v)| (lo.min(v), hi.max(v)));
    let mut sizes: Vec<f64> = series.iter().flat_map(|s| s.points.iter().map(|p| p.0)).collect();
    sizes.sort_by(f64::total_cmp);
    sizes.dedup();
    let x = (x_lo / 1.5..x_hi * 1.5).log_scale().with_key_points(sizes);
    let mut chart = ChartBuilder::on(area)
        .margin(12)
        .x_label_area_size(42)
        .y_label_area_size(64)
        .build_cartesian_2d(x, (y_lo / 2.0..y_hi * 2.0).log_scale())
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .light_line_style(TRANSPARENT)
        .x_desc("message size (bytes)")
        .y_desc(y_desc)
        .x_label_formatter(&|x| si(*x))
        .y_label_formatter(&|v| si(*v))
        .draw()
        .map_err(|e| e.to_string())?;
    for s in series {
        let pts: Vec<(f64, f64)> = s.points.iter().map(|(x, v)| (*x, y(*x, v[1]))).collect();
        let color = s.color;
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| e.to_string())?
            .label(&s.name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled()))).map_err(|e| e.to_string())?;
        if bars {
            let bar = |(x, v): &(f64, [f64; 3])| {
                ErrorBar::new_vertical(*x, y(*x, v[0]), y(*x, v[1]), y(*x, v[2]), color.stroke_width(1), 8)
            };
            chart.draw_series(s.points.iter().map(bar)).map_err(|e| e.to_string())?;
        }
    }
    if !legend {
        return Ok(());
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(|e| e.to_string())
}

/// `1500` as `1.5k`, `2000000` as `2M`: short labels for log axes.
fn si(v: f64) -> String {
    let (d, unit) = match v.abs() {
        a if a >= 1e9 => (1e9, "G"),
        a if a >= 1e6 => (1e6, "M"),
        a if a >= 1e3 => (1e3, "k"),
        _ => (1.0, ""),
    };
    let x = v / d;
    if (x - x.round()).abs() < 0.05 { format!("{x:.0}{unit}") } else { format!("{x:.1}{unit}") }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perf::report::Stats;

    fn stats(label: &str, msgs_per_sec: f64) -> Stats {
        let mut s = Stats::new(label, 100, 1, 0, &[], false);
        s.msgs_per_sec = msgs_per_sec;
        s
    }

    fn pair(stack: f64, raw: f64, jgroups: Option<f64>) -> Pair {
        Pair { stack: stats("reliable", stack), raw: Some(stats("raw", raw)), insecure: None, jgroups }
    }

    #[test]
    fn series_are_medians_with_their_range() {
        let rows = vec![
            (64, vec![pair(100.0, 300.0, Some(50.0)), pair(140.0, 200.0, Some(70.0)), pair(120.0, 250.0, None)]),
            (1024, vec![pair(90.0, 120.0, None)]),
        ];
        let s = series(&rows);
        assert_eq!(
            s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["Thoth `reliable`", "raw UDP multicast", "JGroups 2.12"]
        );
        assert_eq!(s[0].points, [(64.0, [100.0, 120.0, 140.0]), (1024.0, [90.0, 90.0, 90.0])]);
        assert_eq!(s[1].points[0], (64.0, [200.0, 250.0, 300.0]));
        assert_eq!(s[2].points, [(64.0, [50.0, 60.0, 70.0])], "JGroups ran at 64 B only");
        let without: Vec<_> =
            rows.iter().map(|(n, p)| (*n, p.iter().map(|p| Pair { jgroups: None, ..p.clone() }).collect())).collect();
        assert_eq!(series(&without).len(), 2, "no JGroups line when it did not run");
        assert_eq!(
            (si(1500.0), si(2e6), si(64.0), si(60_000.0)),
            ("1.5k".into(), "2M".into(), "64".into(), "60k".into())
        );
    }

    /// The SVG parses as XML, with an `svg` root, the title, a legend entry per series and
    /// a line per series in each panel.
    #[test]
    fn writes_a_well_formed_svg() {
        let rows: Vec<(usize, Vec<Pair>)> = [64, 1024, 60_000]
            .iter()
            .map(|&n| (n, vec![pair(1e5, 2e5, Some(5e4)), pair(1.2e5, 1.8e5, Some(6e4))]))
            .collect();
        let path = std::env::temp_dir().join(format!("thoth-perf-plot-{}.svg", std::process::id()));
        write(&path, "thoth-perf test", &rows).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let doc = roxmltree::Document::parse(&text).expect("well-formed XML");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        let texts: Vec<&str> = doc.descendants().filter_map(|n| n.text()).collect();
        for w in ["thoth-perf test", "Thoth `reliable`", "raw UDP multicast", "JGroups 2.12", "message size (bytes)"] {
            assert!(texts.iter().any(|t| t.contains(w)), "no `{w}` in the SVG");
        }
        let lines = doc.descendants().filter(|n| n.has_tag_name("polyline")).count();
        assert!(lines >= 6, "a line per series in each panel, {lines} polylines");
        assert!(write(&path, "empty", &[]).is_err());
    }
}
