//! The sweep's plots, as SVG files (plotters; text laid out with DejaVu Sans, built into the
//! binary: `fonts/DejaVuSans.ttf`, the font fontconfig picks for `sans-serif` on Debian, so the
//! files are what they were with the system font, on any machine, fonts installed or not).
//!
//! ```text
//!  SweepResult ──► utilization_vs_m.svg   utilisation vs M, one colour per DIM
//!                                         (solid: whole program, dashed: MATMULs alone;
//!                                         the legend beside the chart)
//!              ──► dim_scaling.svg        cycles | energy vs DIM for the sweep's workload
//!              ──► energy_breakdown.svg   pJ per useful MAC by component, one bar per DIM
//!              ──► roofline.svg           ops/cycle vs ops per link word: compute roofs per
//!                                         DIM, the link's roof, the simulated points
//! ```

use std::path::{Path, PathBuf};

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use thiserror::Error;

use super::sweep::{Series, SweepPoint, SweepResult};
use super::topology::{LayerReport, TopologyReport};

/// The plot files [`write_all`] writes, in order.
pub const PLOT_FILES: [&str; 4] =
    ["utilization_vs_m.svg", "dim_scaling.svg", "energy_breakdown.svg", "roofline.svg"];

/// A plot could not be drawn or written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{file}: {problem}")]
pub struct PlotError {
    /// The plot file.
    pub file: String,
    /// What went wrong (plotters' message, e.g. an unwritable file).
    pub problem: String,
}

/// DejaVu Sans (Bitstream Vera licence, `fonts/DejaVuSans-LICENSE.txt`).
static SANS: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");

/// Make `"sans-serif"`, the one font family the plots use, DejaVu Sans (once per process);
/// every public drawing function calls it first.
fn fonts(file: &str) -> Result<(), PlotError> {
    static REGISTERED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *REGISTERED
        .get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, SANS).is_ok());
    if ok {
        Ok(())
    } else {
        Err(PlotError { file: file.into(), problem: "the built-in font (DejaVu Sans) does not load".into() })
    }
}

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
type Draw<T> = Result<T, Box<dyn std::error::Error>>;

const SIZE: (u32, u32) = (900, 560);

fn colour(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    C[i % C.len()]
}

/// Draw the four plots of `result`: ([`PLOT_FILES`] name, SVG text) in order.
pub fn render_all(result: &SweepResult) -> Result<Vec<(&'static str, String)>, PlotError> {
    let draws: [fn(&SweepResult, &Area) -> Draw<()>; 4] =
        [utilization_vs_m, dim_scaling, energy_breakdown, roofline];
    let mut out = Vec::new();
    for (name, draw) in PLOT_FILES.into_iter().zip(draws) {
        fonts(name)?;
        let fail =
            |e: Box<dyn std::error::Error>| PlotError { file: name.to_string(), problem: e.to_string() };
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
            root.fill(&WHITE).map_err(|e| fail(Box::new(e)))?;
            draw(result, &root).map_err(fail)?;
            root.present().map_err(|e| fail(Box::new(e)))?;
        }
        out.push((name, svg));
    }
    Ok(out)
}

/// [`render_all`] and write the files into `dir` (created if missing); the paths written.
pub fn write_all(result: &SweepResult, dir: &Path) -> Result<Vec<PathBuf>, PlotError> {
    let io = |file: &Path, e: std::io::Error| PlotError {
        file: file.display().to_string(),
        problem: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    let mut paths = Vec::new();
    for (name, svg) in render_all(result)? {
        let path = dir.join(name);
        std::fs::write(&path, svg).map_err(|e| io(&path, e))?;
        paths.push(path);
    }
    Ok(paths)
}

fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)))
}

fn workload_text(r: &SweepResult) -> String {
    let (m, k, n) = r.gemm;
    format!("GEMM {m}x{k}x{n}")
}

/// A legend glyph of a dashed line, as wide as the solid ones (20 px).
fn dashed_glyph(
    style: ShapeStyle,
) -> impl Fn((i32, i32)) -> DashedPathElement<std::vec::IntoIter<(i32, i32)>, i32> {
    move |(x, y)| DashedPathElement::new(vec![(x, y), (x + 20, y)], 8, 4, style)
}

/// A legend in its own area (beside a chart, so it covers no data): one line per entry, a
/// solid or dashed glyph in the entry's colour and its label.
fn side_legend(area: &Area, top: i32, entries: &[(String, RGBColor, bool)]) -> Draw<()> {
    for (i, (label, c, dashed)) in entries.iter().enumerate() {
        let y = top + 24 * i as i32;
        if label.is_empty() {
            continue; // a gap between groups
        }
        let style = c.stroke_width(2);
        if *dashed {
            area.draw(&dashed_glyph(style)((6, y)))?;
        } else {
            area.draw(&PathElement::new(vec![(6, y), (26, y)], style))?;
        }
        area.draw(&Text::new(label.clone(), (34, y - 8), ("sans-serif", 15).into_font()))?;
    }
    Ok(())
}

fn utilization_vs_m(r: &SweepResult, root: &Area) -> Draw<()> {
    let (_, k, n) = r.gemm;
    let (lo, hi) = span(r.points.iter().filter(|p| p.series == Series::Unlimited).map(|p| p.gemm.0 as f64));
    let hi = hi.max(lo * 2.0);
    let (plot, side) = root.split_horizontally(SIZE.0 - 170);
    let mut chart = ChartBuilder::on(&plot)
        .caption(format!("Utilisation vs M (GEMM M x {k} x {n})"), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        // the data's span with a little room for the end markers; the legend sits beside
        .build_cartesian_2d((lo / 1.15..hi * 1.15).log_scale().base(2.0), 0.0..100.0)?;
    chart
        .configure_mesh()
        .max_light_lines(3)
        .x_desc("M (rows of X)")
        .y_desc("utilisation, % of DIM² MACs per cycle")
        .x_label_formatter(&|v| format!("{}", v.round()))
        .draw()?;
    let mut legend = Vec::new();
    for (i, dim) in r.dims().into_iter().enumerate() {
        let c = colour(i);
        let curve = r.curve(Series::Unlimited, dim);
        let whole: Vec<(f64, f64)> =
            curve.iter().map(|p| (p.gemm.0 as f64, 100.0 * p.estimate.utilization)).collect();
        let compute: Vec<(f64, f64)> =
            curve.iter().map(|p| (p.gemm.0 as f64, 100.0 * p.estimate.compute_utilization)).collect();
        chart.draw_series(LineSeries::new(whole, c.stroke_width(2)).point_size(3))?;
        chart.draw_series(DashedLineSeries::new(compute, 6, 4, c.stroke_width(2)))?;
        legend.push((format!("DIM {dim}"), c, false));
    }
    legend.push((String::new(), WHITE, false));
    legend.push(("whole program".to_string(), BLACK, false));
    legend.push(("MATMULs alone".to_string(), BLACK, true));
    side_legend(&side, 70, &legend)?;
    Ok(())
}

fn dim_scaling(r: &SweepResult, root: &Area) -> Draw<()> {
    let pts = r.per_dim();
    let (left, right) = root.split_horizontally(SIZE.0 / 2);
    let (dlo, dhi) = span(pts.iter().map(|p| p.dim as f64));
    let dhi = dhi.max(dlo * 2.0);
    let series = [
        (
            "whole program",
            Box::new(|p: &SweepPoint| p.estimate.cycles as f64) as Box<dyn Fn(&SweepPoint) -> f64>,
        ),
        ("MATMULs alone", Box::new(|p: &SweepPoint| p.estimate.compute_cycles as f64)),
        ("physical limit", Box::new(|p: &SweepPoint| p.estimate.physical_limit_cycles as f64)),
    ];
    let (clo, chi) = span(pts.iter().flat_map(|p| series.iter().map(move |(_, f)| f(p))));
    let mut chart = ChartBuilder::on(&left)
        .caption(format!("Cycles vs DIM ({})", workload_text(r)), ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((dlo..dhi).log_scale().base(2.0), (clo * 0.7..chi * 1.4).log_scale())?;
    chart
        .configure_mesh()
        .max_light_lines(3)
        .x_desc("DIM")
        .y_desc("cycles")
        .x_label_formatter(&|v| format!("{}", v.round()))
        .y_label_formatter(&|v| format!("{v:.0e}"))
        .draw()?;
    for (i, (name, f)) in series.iter().enumerate().rev() {
        let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.dim as f64, f(p))).collect();
        if *name == "physical limit" {
            // under the others: the MATMULs alone come within a few % of it
            let c = colour(7);
            chart
                .draw_series(DashedLineSeries::new(line, 4, 4, c.stroke_width(6)))?
                .label(*name)
                .legend(dashed_glyph(c.stroke_width(6)));
        } else {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(line, c.stroke_width(2)).point_size(3))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;

    let energy = |p: &SweepPoint| p.estimate.energy_pj * 1e-6;
    let compute_part = |p: &SweepPoint| {
        let e = &p.estimate.energy_breakdown_pj;
        (e.array + e.scratchpad + e.accumulators + e.activation) * 1e-6
    };
    let (elo, ehi) = span(pts.iter().flat_map(|p| [energy(p), compute_part(p)]));
    let mut chart = ChartBuilder::on(&right)
        .caption(
            format!("Energy vs DIM ({})", r.points.first().map_or("", |p| p.estimate.tech.as_str())),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((dlo..dhi).log_scale().base(2.0), (elo * 0.7..ehi * 1.4).log_scale())?;
    chart
        .configure_mesh()
        .max_light_lines(3)
        .x_desc("DIM")
        .y_desc("energy, µJ")
        .x_label_formatter(&|v| format!("{}", v.round()))
        .y_label_formatter(&|v| if *v >= 10.0 { format!("{v:.0}") } else { format!("{v:.2}") })
        .draw()?;
    for (i, (name, f)) in
        [("total", &energy as &dyn Fn(&SweepPoint) -> f64), ("array + memories + activation", &compute_part)]
            .into_iter()
            .enumerate()
    {
        let c = colour(i + 3);
        let line: Vec<(f64, f64)> = pts.iter().map(|p| (p.dim as f64, f(p))).collect();
        chart
            .draw_series(LineSeries::new(line, c.stroke_width(2)).point_size(3))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

fn energy_breakdown(r: &SweepResult, root: &Area) -> Draw<()> {
    let pts = r.per_dim();
    let per_mac = |p: &SweepPoint| -> Vec<(&'static str, f64)> {
        let macs = p.estimate.macs.max(1) as f64;
        p.estimate.energy_breakdown_pj.parts().iter().map(|&(n, e)| (n, e / macs)).collect()
    };
    let top = pts.iter().map(|p| per_mac(p).iter().map(|(_, e)| e).sum::<f64>()).fold(0.0, f64::max);
    let labels: Vec<String> = pts.iter().map(|p| format!("DIM {}", p.dim)).collect();
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!(
                "Energy per useful MAC by component ({}, {})",
                workload_text(r),
                pts.first().map_or("", |p| p.estimate.tech.as_str())
            ),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..(pts.len() as f64 - 0.5), 0.0..(top * 1.15).max(1e-9))?;
    chart
        .configure_mesh()
        .max_light_lines(3)
        .disable_x_mesh()
        .x_labels(pts.len().max(1))
        .x_label_formatter(&|v| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                labels.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_desc("pJ per useful MAC")
        .draw()?;
    let names: Vec<&str> =
        pts.first().map(|p| per_mac(p).iter().map(|(n, _)| *n).collect()).unwrap_or_default();
    for (ci, name) in names.iter().enumerate() {
        let c = colour(ci);
        let bars: Vec<Rectangle<(f64, f64)>> = pts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let parts = per_mac(p);
                let below: f64 = parts[..ci].iter().map(|(_, e)| e).sum();
                let x = i as f64;
                Rectangle::new([(x - 0.3, below), (x + 0.3, below + parts[ci].1)], c.filled())
            })
            .collect();
        chart
            .draw_series(bars)?
            .label(*name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.85)).border_style(BLACK).draw()?;
    Ok(())
}

/// Operations per word over the busier direction of the link, and ops per cycle achieved.
fn roofline_xy(p: &SweepPoint) -> (f64, f64) {
    let e = &p.estimate;
    let ops = 2.0 * e.macs as f64;
    (ops / e.words_in.max(e.words_out).max(1) as f64, ops / e.cycles.max(1) as f64)
}

fn roofline(r: &SweepResult, root: &Area) -> Draw<()> {
    let dims = r.dims();
    let linked: Vec<&SweepPoint> = r.points.iter().filter(|p| p.series == Series::Linked).collect();
    let (xlo, xhi) = span(linked.iter().map(|p| roofline_xy(p).0));
    let (xlo, xhi) = (xlo / 2.0, xhi * 2.0);
    let peak = |d: usize| 2.0 * (d * d) as f64;
    let (ylo, _) = span(linked.iter().map(|p| roofline_xy(p).1));
    let yhi = dims.iter().map(|&d| peak(d)).fold(1.0, f64::max) * 2.0;
    let ylo = (ylo / 2.0).min(r.roofline_link * xlo).max(1e-3);
    let (_, k, n) = r.gemm;
    let mut chart = ChartBuilder::on(root)
        .caption(
            format!("Roofline: host link {} words/cycle (GEMM M x {k} x {n}, M swept)", r.roofline_link),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((xlo..xhi).log_scale(), (ylo..yhi).log_scale())?;
    chart
        .configure_mesh()
        .max_light_lines(3)
        .x_desc("operational intensity: operations per word on the link (busier direction)")
        .y_desc("operations per cycle")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let f = r.roofline_link;
    chart
        .draw_series(LineSeries::new(
            [(xlo, f * xlo), ((yhi / f).min(xhi), (f * xhi).min(yhi))],
            BLACK.stroke_width(2),
        ))?
        .label(format!("link roof: {f} words/cycle x intensity"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.stroke_width(2)));
    chart
        .draw_series(std::iter::empty::<PathElement<(f64, f64)>>())?
        .label("compute roof of each DIM: 2·DIM² (dashed)")
        .legend(dashed_glyph(colour(7).stroke_width(2)));
    for (i, &dim) in dims.iter().enumerate() {
        let c = colour(i);
        chart.draw_series(DashedLineSeries::new(
            [(xlo, peak(dim)), (xhi, peak(dim))],
            6,
            4,
            c.stroke_width(1),
        ))?;
        let pts: Vec<(f64, f64)> = r.curve(Series::Linked, dim).iter().map(|p| roofline_xy(p)).collect();
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)).point_size(4))?
            .label(format!("DIM {dim} (roof 2·DIM² = {})", peak(dim)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

/// A simple line chart (one line with markers per series) written as SVG to `path`: for
/// plots outside the sweep, such as the demo's accuracy / cycles / energy against model and
/// array size.
pub fn line_chart(
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> Result<(), PlotError> {
    let file = path.display().to_string();
    fonts(&file)?;
    let fail = |e: Box<dyn std::error::Error>| PlotError { file: file.clone(), problem: e.to_string() };
    let draw = || -> Draw<()> {
        let root = SVGBackend::new(path, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        // a few integer x values (DIM 4, 8, 16; widths 16, 32, 64): one evenly spaced column
        // each, labelled with the value (a doubling sweep reads as a log2 axis)
        let mut distinct: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|&(x, _)| x)).collect();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        let categorical =
            !distinct.is_empty() && distinct.len() <= 12 && distinct.iter().all(|x| x.fract() == 0.0);
        let place = |x: f64| {
            if categorical {
                distinct.iter().position(|&d| d == x).unwrap_or(0) as f64
            } else {
                x
            }
        };
        let series: Vec<(&String, Vec<(f64, f64)>)> =
            series.iter().map(|(n, p)| (n, p.iter().map(|&(x, y)| (place(x), y)).collect())).collect();
        let points: Vec<(f64, f64)> = series.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        let (mut x0, mut x1, mut y0, mut y1) = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, 0f64);
        for &(x, y) in &points {
            x0 = x0.min(x);
            x1 = x1.max(x);
            y0 = y0.min(y);
            y1 = y1.max(y);
        }
        if !x0.is_finite() {
            (x0, x1, y0) = (0.0, 1.0, 0.0);
        }
        let pad = if categorical { 0.3 } else { ((x1 - x0) * 0.05).max(0.5) };
        // values far from zero (97-99 % accuracies): zoom to the data, or the line is flat
        let (lo, hi) = if y0 > 0.5 * y1 {
            let span = (y1 - y0).max(y1.abs() * 1e-3).max(1e-9);
            (y0 - 0.25 * span, y1 + 0.25 * span)
        } else {
            (0.0, (y1 * 1.1).max(1e-9))
        };
        let (xl, xh) = (x0 - pad, x1 + pad);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 22))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(72)
            .build_cartesian_2d(xl..xh, lo..hi)?;
        let label = |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 1e-6 && i >= 0.0 {
                distinct.get(i as usize).map_or_else(String::new, |d| format!("{d:.0}"))
            } else {
                String::new()
            }
        };
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(x_desc).y_desc(y_desc).max_light_lines(1);
        if categorical {
            mesh.x_labels(distinct.len()).x_label_formatter(&label);
        }
        mesh.draw()?;
        for (i, (name, pts)) in series.iter().enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            // filled dots for the first series, rings around them for the others: series that
            // coincide (int8 = float) stay visible
            if i == 0 {
                chart.draw_series(pts.iter().map(|&p| Circle::new(p, 4, c.filled())))?;
            } else {
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 4 + 3 * i as i32, c.stroke_width(2))))?;
            }
        }
        // the legend goes to a corner that holds no data point
        let in_corner = |right: bool, upper: bool| {
            points.iter().any(|&(x, y)| {
                let fx = (x - xl) / (xh - xl);
                let fy = (y - lo) / (hi - lo);
                (if right { fx > 0.55 } else { fx < 0.45 }) && (if upper { fy > 0.6 } else { fy < 0.4 })
            })
        };
        let position = [
            (true, true, SeriesLabelPosition::UpperRight),
            (false, true, SeriesLabelPosition::UpperLeft),
            (true, false, SeriesLabelPosition::LowerRight),
            (false, false, SeriesLabelPosition::LowerLeft),
        ]
        .into_iter()
        .find(|&(r, u, _)| !in_corner(r, u))
        .map_or(SeriesLabelPosition::UpperLeft, |(_, _, p)| p);
        chart
            .configure_series_labels()
            .position(position)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    };
    draw().map_err(fail)
}

/// The per-layer plot of a topology, as SVG text: cycles per layer above (bars: the whole
/// program, and inside it the MATMULs alone; the physical limit as a marker), utilisation per
/// layer below (whole program and MATMULs alone), layers in file order on the x axis.
pub fn topology_svg(report: &TopologyReport, title: &str) -> Result<String, PlotError> {
    fonts("topology plot")?;
    let fail =
        |e: Box<dyn std::error::Error>| PlotError { file: "topology plot".into(), problem: e.to_string() };
    let mut svg = String::new();
    {
        let n = report.layers.len();
        let width = (SIZE.0).max(60 + 18 * n as u32);
        let root = SVGBackend::with_string(&mut svg, (width, 860)).into_drawing_area();
        let draw = || -> Draw<()> {
            root.fill(&WHITE)?;
            let root = root.titled(title, ("sans-serif", 22))?;
            let (top, bottom) = root.split_vertically(450);
            topology_cycles(report, &top)?;
            topology_utilization(report, &bottom)?;
            root.present()?;
            Ok(())
        };
        draw().map_err(fail)?;
    }
    Ok(svg)
}

/// `1.5M`, `200k`, `12`: a tick label.
fn short(v: f64) -> String {
    let (scaled, unit) = match v.abs() {
        a if a >= 1e9 => (v / 1e9, "G"),
        a if a >= 1e6 => (v / 1e6, "M"),
        a if a >= 1e3 => (v / 1e3, "k"),
        _ => (v, ""),
    };
    let text = format!("{scaled:.1}");
    format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
}

/// The layer names under the x axis of `chart`, running down from it (every k-th when there are
/// more than 60); plotters' own axis labels centre rotated text on the tick.
fn draw_layer_names<Y: Ranged<ValueType = f64>>(
    report: &TopologyReport,
    chart: &ChartContext<SVGBackend, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    area: &Area,
    y_axis: f64,
) -> Draw<()> {
    let style = ("sans-serif", 11).into_font().transform(FontTransform::Rotate90).color(&BLACK);
    let every = report.layers.len().div_ceil(60).max(1);
    let (ox, oy) = area.get_base_pixel();
    for (i, l) in report.layers.iter().enumerate().step_by(every) {
        let (x, y) = chart.backend_coord(&(i as f64, y_axis));
        let name: String = l.name.chars().take(18).collect();
        // the text's top edge is its left side once rotated: shift by half the font height
        area.draw(&Text::new(name, (x - ox + 6, y - oy + 6), style.clone()))?;
    }
    Ok(())
}

fn topology_cycles(report: &TopologyReport, area: &Area) -> Draw<()> {
    let n = report.layers.len();
    let hi = report.layers.iter().map(|l| l.cycles.max(l.scalesim_cycles)).max().unwrap_or(1).max(1) as f64;
    let lo = report.layers.iter().map(|l| l.physical_limit_cycles.max(1)).min().unwrap_or(1) as f64;
    let mut chart = ChartBuilder::on(area)
        .caption("cycles per layer (log scale)", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(110)
        .y_label_area_size(80)
        // two decades above the highest bar leave room for the legend
        .build_cartesian_2d(-0.6..(n as f64 - 0.4), (lo / 2.0..hi * 100.0).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("cycles")
        .y_label_formatter(&|v| short(*v))
        .draw()?;
    draw_layer_names(report, &chart, area, lo / 2.0)?;
    let bar = |i: usize, v: u64, w: f64, style: ShapeStyle| {
        let x = i as f64;
        Rectangle::new([(x - w, lo / 2.0), (x + w, v.max(1) as f64)], style)
    };
    let (whole, compute) = (colour(0), colour(1));
    chart
        .draw_series(
            report.layers.iter().enumerate().map(|(i, l)| bar(i, l.cycles, 0.4, whole.mix(0.55).filled())),
        )?
        .label("whole program (cycles)")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], whole.mix(0.55).filled()));
    chart
        .draw_series(
            report.layers.iter().enumerate().map(|(i, l)| bar(i, l.compute_cycles, 0.25, compute.filled())),
        )?
        .label("MATMULs alone (compute_cycles)")
        .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], compute.filled()));
    let limit = colour(3);
    chart
        .draw_series(
            report.layers.iter().enumerate().map(|(i, l)| {
                Cross::new((i as f64, l.physical_limit_cycles as f64), 5, limit.stroke_width(2))
            }),
        )?
        .label("physical limit ⌈MACs / DIM²⌉")
        .legend(move |(x, y)| Cross::new((x + 7, y), 5, limit.stroke_width(2)));
    let scale = colour(2);
    chart
        .draw_series(
            report
                .layers
                .iter()
                .enumerate()
                .map(|(i, l)| TriangleMarker::new((i as f64, l.scalesim_cycles as f64), 5, scale.filled())),
        )?
        .label("SCALE-Sim formula")
        .legend(move |(x, y)| TriangleMarker::new((x + 7, y), 5, scale.filled()));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

fn topology_utilization(report: &TopologyReport, area: &Area) -> Draw<()> {
    let n = report.layers.len();
    let mut chart = ChartBuilder::on(area)
        .caption("utilisation per layer", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(110)
        .y_label_area_size(80)
        // room above 100 % for the legend
        .build_cartesian_2d(-0.6..(n as f64 - 0.4), 0.0..135.0)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("% of DIM² MACs per cycle")
        .y_label_formatter(&|v| if *v > 100.0 { String::new() } else { format!("{v:.0}") })
        .draw()?;
    draw_layer_names(report, &chart, area, 0.0)?;
    type Field = fn(&LayerReport) -> f64;
    let series: [(&str, Field, RGBColor); 2] = [
        ("whole program", |l| l.utilization, colour(0)),
        ("MATMULs alone", |l| l.compute_utilization, colour(1)),
    ];
    for (name, value, c) in series {
        let pts: Vec<(f64, f64)> =
            report.layers.iter().enumerate().map(|(i, l)| (i as f64, 100.0 * value(l))).collect();
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A doubling sweep gets one tick per value, labelled as an integer; close values far from
    /// zero are zoomed into; the legend avoids the data. Set `PROTOBRAIN_PLOT_DIR` to keep the
    /// SVGs (render with `rsvg-convert` and look at them).
    #[test]
    fn line_charts_tick_the_data_and_zoom_close_values() {
        let dir = tempfile::tempdir().unwrap();
        let out =
            std::env::var_os("PROTOBRAIN_PLOT_DIR").map_or_else(|| dir.path().to_path_buf(), Into::into);
        let dims = |ys: [f64; 3]| vec![(4.0, ys[0]), (8.0, ys[1]), (16.0, ys[2])];
        let path = out.join("dims.svg");
        let series = [
            ("a".to_string(), dims([0.039, 0.025, 0.019])),
            ("b".to_string(), dims([0.013, 0.0128, 0.0125])),
        ];
        line_chart(&path, "energy", "DIM", "µJ", &series).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let labels: Vec<&str> = svg
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        for want in ["4", "8", "16"] {
            assert!(labels.contains(&want), "no tick {want}: {labels:?}");
        }
        for unwanted in ["6", "4.0", "10", "12"] {
            assert!(!labels.contains(&unwanted), "a tick {unwanted} off the data: {labels:?}");
        }
        // 97.4 .. 98.4: the axis starts near the data, not at 0
        let path = out.join("accuracy.svg");
        let acc = vec![(16.0, 97.4), (32.0, 97.6), (64.0, 98.4)];
        line_chart(&path, "accuracy", "hidden", "%", &[("int8".into(), acc.clone()), ("float".into(), acc)])
            .unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        let labels: Vec<&str> = svg
            .split("</text>")
            .filter_map(|t| t.rsplit('>').next())
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .collect();
        assert!(!labels.contains(&"0") && !labels.contains(&"0.0"), "{labels:?}");
        assert!(labels.contains(&"97.6") || labels.contains(&"97.5"), "{labels:?}");
        assert!(labels.contains(&"int8") && labels.contains(&"float"), "{labels:?}");
    }
}
