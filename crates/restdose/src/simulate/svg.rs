//! Stand-alone SVG charts for the report (own colours, no stylesheet: the files are opened
//! on their own or from Markdown). The web crate's charts are single-series and styled by the
//! page's CSS, so they do not fit here.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 50.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 30.0;
const BOTTOM: f64 = 40.0;
const COLOURS: &[&str] = &[
    "#1b6ca8", "#e07b00", "#c0392b", "#2e8b57", "#7d3c98", "#7f8c8d", "#b7950b", "#17a589",
];

pub struct Series {
    pub name: String,
    /// (x, y); x in the chart's own units.
    pub points: Vec<(f64, f64)>,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn nice_max(v: f64) -> f64 {
    if v <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if v <= step * magnitude {
            return step * magnitude;
        }
    }
    10.0 * magnitude
}

fn frame(out: &mut String, title: &str, x_label: &str, x_max: f64, y_max: f64) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{t}" font-family="sans-serif" font-size="11"><title>{t}</title><rect width="100%" height="100%" fill="white"/><text x="{LEFT}" y="18" font-size="13" font-weight="bold">{t}</text>"#,
        t = escape(title)
    );
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    for i in 0..=4 {
        let y = TOP + h - h * f64::from(i) / 4.0;
        let v = y_max * f64::from(i) / 4.0;
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{x2}" y1="{y:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{tx}" y="{ty:.1}" text-anchor="end">{v}</text>"##,
            x2 = LEFT + w,
            tx = LEFT - 4.0,
            ty = y + 4.0,
            v = if y_max <= 10.0 {
                format!("{v:.1}")
            } else {
                format!("{v:.0}")
            }
        );
    }
    for i in 0..=6 {
        let x = LEFT + w * f64::from(i) / 6.0;
        let v = x_max * f64::from(i) / 6.0;
        let _ = write!(
            out,
            r#"<text x="{x:.1}" y="{y}" text-anchor="middle">{v:.0}</text>"#,
            y = TOP + h + 14.0
        );
    }
    let _ = write!(
        out,
        r#"<text x="{x}" y="{y}" text-anchor="middle">{l}</text>"#,
        x = LEFT + w / 2.0,
        y = HEIGHT - 6.0,
        l = escape(x_label)
    );
}

fn legend(out: &mut String, series: &[Series]) {
    for (i, s) in series.iter().enumerate() {
        let y = TOP + 14.0 * i as f64;
        let _ = write!(
            out,
            r#"<rect x="{x}" y="{ry}" width="10" height="10" fill="{c}"/><text x="{tx}" y="{ty}">{n}</text>"#,
            x = WIDTH - RIGHT + 10.0,
            ry = y,
            c = COLOURS[i % COLOURS.len()],
            tx = WIDTH - RIGHT + 24.0,
            ty = y + 9.0,
            n = escape(&s.name)
        );
    }
}

/// Lines, one per series.
pub fn lines(title: &str, x_label: &str, series: &[Series]) -> String {
    let x_max = nice_max(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(0.0, f64::max),
    );
    let y_max = nice_max(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let mut out = String::new();
    frame(&mut out, title, x_label, x_max, y_max);
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    for (i, s) in series.iter().enumerate() {
        let points: Vec<String> = s
            .points
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", LEFT + w * x / x_max, TOP + h - h * y / y_max))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{c}" stroke-width="1.8" points="{p}"/>"#,
            c = COLOURS[i % COLOURS.len()],
            p = points.join(" ")
        );
        if s.points.len() == 1 {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{}"/>"#,
                LEFT + w * s.points[0].0 / x_max,
                TOP + h - h * s.points[0].1 / y_max,
                COLOURS[i % COLOURS.len()]
            );
        }
    }
    legend(&mut out, series);
    out.push_str("</svg>\n");
    out
}

/// Bars side by side per x value (x = 0, 1, 2, …), one colour per series.
pub fn bars(title: &str, x_label: &str, series: &[Series]) -> String {
    let n = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0 as usize + 1))
        .max()
        .unwrap_or(1);
    let y_max = nice_max(
        series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.1))
            .fold(0.0, f64::max),
    );
    let mut out = String::new();
    frame(&mut out, title, x_label, n as f64, y_max);
    let (w, h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let slot = w / n as f64;
    let bar = (slot * 0.8) / series.len().max(1) as f64;
    for (i, s) in series.iter().enumerate() {
        for (x, y) in &s.points {
            let bh = h * y / y_max;
            let _ = write!(
                out,
                r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{}"/>"#,
                LEFT + slot * x + slot * 0.1 + bar * i as f64,
                TOP + h - bh,
                bar.max(0.5),
                bh,
                COLOURS[i % COLOURS.len()]
            );
        }
    }
    legend(&mut out, series);
    out.push_str("</svg>\n");
    out
}
