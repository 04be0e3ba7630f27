//! Small server-rendered SVG charts for the statistics page: no scripts, no inline styles
//! (the CSP forbids both), only presentation attributes and classes from style.css. Each chart
//! carries a `<title>`, `role="img"` and an `aria-label`; the page puts the same figures in a
//! table next to it for screen readers.

use std::fmt::Write;

/// One bar or point: its label on the x axis and its value; None = not shown (suppressed or
/// no data), drawn as `missing` text instead of a bar.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub label: String,
    pub value: Option<f64>,
}

/// What a chart shows.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    /// Short accessible name (becomes `<title>` and `aria-label`).
    pub title: &'a str,
    pub points: &'a [Point],
    /// Text in place of a value that is not shown (e.g. "<10").
    pub missing: &'a str,
    /// Values are shares from 0 to 1, shown as per cent.
    pub percent: bool,
}

// A narrow drawing (400 units) so text stays legible on a 360 px phone (~10 px) and is not
// oversized in the 40rem column on a desktop (~20 px).
const WIDTH: f64 = 400.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 40.0;
const RIGHT: f64 = 8.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;
/// At most this many labels under the x axis.
const MAX_X_LABELS: usize = 8;

/// Escapes text for XML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A "nice" upper end of the y axis (1, 2, 5 × 10^n) at or above `max`.
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|step| step * magnitude)
        .find(|candidate| *candidate >= max)
        .unwrap_or(10.0 * magnitude)
}

fn format_value(value: f64, percent: bool) -> String {
    if percent {
        format!("{:.0} %", value * 100.0)
    } else if value.fract() == 0.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.1}")
    }
}

/// The frame shared by both kinds: `<svg>`, title, axes and gridlines; returns the y scale.
fn open(chart: &Chart<'_>, kind: &str, out: &mut String) -> f64 {
    let max = if chart.percent {
        1.0
    } else {
        nice_max(
            chart
                .points
                .iter()
                .filter_map(|p| p.value)
                .fold(0.0, f64::max),
        )
    };
    let title = escape(chart.title);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart chart-{kind}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" \
         width=\"100%\" preserveAspectRatio=\"xMidYMid meet\" role=\"img\" aria-label=\"{title}\">\
         <title>{title}</title>"
    );
    let plot_height = HEIGHT - TOP - BOTTOM;
    for i in 0..=4 {
        let value = max * f64::from(i) / 4.0;
        let y = TOP + plot_height - plot_height * f64::from(i) / 4.0;
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"#ccc\" stroke-width=\"1\"/>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"12\" fill=\"#333\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 4.0,
            y + 4.0,
            escape(&format_value(value, chart.percent)),
        );
    }
    let _ = write!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#333\" stroke-width=\"1\"/>",
        TOP + plot_height,
        WIDTH - RIGHT,
        TOP + plot_height,
    );
    max
}

/// x positions: the centre of each slot and the slot width.
fn slots(n: usize) -> (f64, impl Fn(usize) -> f64) {
    let slot = (WIDTH - LEFT - RIGHT) / n.max(1) as f64;
    (slot, move |i: usize| LEFT + slot * (i as f64 + 0.5))
}

/// Labels under the axis, thinned so they do not overlap.
fn x_labels(points: &[Point], out: &mut String) {
    let (_, centre) = slots(points.len());
    let every = points.len().div_ceil(MAX_X_LABELS).max(1);
    for (i, point) in points.iter().enumerate() {
        if i % every != 0 {
            continue;
        }
        let _ = write!(
            out,
            "<text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"12\" fill=\"#333\">{}</text>",
            centre(i),
            HEIGHT - BOTTOM + 16.0,
            escape(&point.label),
        );
    }
}

/// A bar chart.
pub fn bar_chart(chart: &Chart<'_>) -> String {
    let mut out = String::new();
    let max = open(chart, "bar", &mut out);
    let plot_height = HEIGHT - TOP - BOTTOM;
    let (slot, centre) = slots(chart.points.len());
    let bar = (slot * 0.7).max(1.0);
    for (i, point) in chart.points.iter().enumerate() {
        let x = centre(i);
        match point.value {
            Some(value) => {
                let h = plot_height * (value / max).clamp(0.0, 1.0);
                let _ = write!(
                    out,
                    "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{h:.1}\" fill=\"#1f5f99\">\
                     <title>{}: {}</title></rect>",
                    x - bar / 2.0,
                    TOP + plot_height - h,
                    escape(&point.label),
                    escape(&format_value(value, chart.percent)),
                );
            }
            None => {
                let _ = write!(
                    out,
                    "<text class=\"missing\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\" font-size=\"10\" fill=\"#555\">{}</text>",
                    TOP + plot_height - 4.0,
                    escape(chart.missing),
                );
            }
        }
    }
    x_labels(chart.points, &mut out);
    out.push_str("</svg>");
    out
}

/// A line chart; missing points break the line.
pub fn line_chart(chart: &Chart<'_>) -> String {
    let mut out = String::new();
    let max = open(chart, "line", &mut out);
    let plot_height = HEIGHT - TOP - BOTTOM;
    let (_, centre) = slots(chart.points.len());
    let mut segments: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (i, point) in chart.points.iter().enumerate() {
        match point.value {
            Some(value) => {
                let y = TOP + plot_height - plot_height * (value / max).clamp(0.0, 1.0);
                if let Some(segment) = segments.last_mut() {
                    segment.push((centre(i), y));
                }
                let _ = write!(
                    out,
                    "<circle class=\"point\" cx=\"{:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"#1f5f99\"><title>{}: {}</title></circle>",
                    centre(i),
                    escape(&point.label),
                    escape(&format_value(value, chart.percent)),
                );
            }
            None => segments.push(Vec::new()),
        }
    }
    for segment in segments.iter().filter(|s| s.len() > 1) {
        let points: Vec<String> = segment
            .iter()
            .map(|(x, y)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            out,
            "<polyline class=\"line\" points=\"{}\" fill=\"none\" stroke=\"#1f5f99\" stroke-width=\"2\"/>",
            points.join(" ")
        );
    }
    x_labels(chart.points, &mut out);
    out.push_str("</svg>");
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn points() -> Vec<Point> {
        vec![
            Point {
                label: "10".into(),
                value: Some(12.0),
            },
            Point {
                label: "<&\"'>".into(),
                value: None,
            },
            Point {
                label: "80".into(),
                value: Some(40.0),
            },
        ]
    }

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).unwrap()
    }

    #[test]
    fn bar_chart_is_valid_accessible_svg_without_inline_styles() {
        let points = points();
        let svg = bar_chart(&Chart {
            title: "People waiting & more",
            points: &points,
            missing: "<10",
            percent: false,
        });
        let doc = parse(&svg);
        let root = doc.root_element();
        assert_eq!(root.tag_name().name(), "svg");
        assert_eq!(root.attribute("role"), Some("img"));
        assert_eq!(root.attribute("aria-label"), Some("People waiting & more"));
        let title = root.children().find(|n| n.has_tag_name("title")).unwrap();
        assert_eq!(title.text(), Some("People waiting & more"));
        let bars: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("rect"))
            .collect();
        assert_eq!(bars.len(), 2, "one bar per shown value");
        // The largest value reaches the nice maximum 50 of the axis: 40/50 of the plot.
        let h: f64 = bars[1].attribute("height").unwrap().parse().unwrap();
        assert!((h - 180.0 * 0.8).abs() < 0.2, "{h}");
        let texts: Vec<_> = root
            .descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .collect();
        assert!(texts.contains(&"<10"));
        assert!(texts.contains(&"<&\"'>"));
        assert!(texts.contains(&"50"));
        assert!(root.descendants().all(|n| n.attribute("style").is_none()));
        assert!(root.descendants().all(|n| !n.has_tag_name("script")));
    }

    #[test]
    fn line_chart_breaks_at_missing_points_and_shows_percent() {
        let mut points = points();
        points.push(Point {
            label: "90".into(),
            value: Some(0.5),
        });
        for p in &mut points {
            p.value = p.value.map(|v| (v / 100.0).min(1.0));
        }
        let svg = line_chart(&Chart {
            title: "Share",
            points: &points,
            missing: "–",
            percent: true,
        });
        let doc = parse(&svg);
        let lines: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("polyline"))
            .collect();
        // 12 %, gap, 40 %, 0.5 %: one segment of two points.
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].attribute("points").unwrap().split(' ').count(), 2);
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("circle"))
                .count(),
            3
        );
        assert!(svg.contains(">100 %<"));
    }

    #[test]
    fn empty_chart_is_still_valid() {
        let svg = bar_chart(&Chart {
            title: "Nothing",
            points: &[],
            missing: "<10",
            percent: false,
        });
        assert_eq!(parse(&svg).root_element().tag_name().name(), "svg");
    }

    #[test]
    fn nice_maxima() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(12.0), 20.0);
        assert_eq!(nice_max(40.0), 50.0);
        assert_eq!(nice_max(100.0), 100.0);
    }
}
