//! Hand-built SVG charts (no plotting library, no system library): line charts over a
//! shared x axis and bar charts, with a legend. Output is a pure function of the input
//! (fixed float formatting with two decimals, fixed palette), so charts are
//! byte-identical across runs.
//!
//! Invariant: every text written into the SVG is XML-escaped ([`escape`]).

use std::fmt::Write as _;

const W: f64 = 760.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 190.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;

/// Colours used for series, in order (then repeated).
pub const PALETTE: [&str; 10] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf",
];

/// Escapes `&`, `<`, `>`, `"` and `'` for XML text and attributes.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

/// An x axis: its range, label and how ticks are labelled.
#[derive(Clone, Debug)]
pub struct Axis {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Axis title.
    pub label: String,
    /// Tick positions and their labels; empty = 5 evenly spaced numeric ticks.
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// A numeric axis with evenly spaced ticks.
    pub fn linear(min: f64, max: f64, label: impl Into<String>) -> Axis {
        Axis {
            min,
            max: if max > min { max } else { min + 1.0 },
            label: label.into(),
            ticks: Vec::new(),
        }
    }

    fn ticks(&self) -> Vec<(f64, String)> {
        if !self.ticks.is_empty() {
            return self.ticks.clone();
        }
        (0..=5)
            .map(|i| {
                let v = self.min + (self.max - self.min) * f64::from(i) / 5.0;
                (v, number(v))
            })
            .collect()
    }
}

fn number(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

fn header(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W:.0}\" height=\"{H:.0}\" viewBox=\"0 0 {W:.0} {H:.0}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{:.2}\" y=\"22\" font-size=\"15\" text-anchor=\"middle\">{}</text>\n",
        (LEFT + W - RIGHT) / 2.0,
        escape(title)
    );
}

fn frame(out: &mut String, x: &Axis, y: &Axis) {
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let _ = writeln!(
        out,
        "<rect x=\"{LEFT:.2}\" y=\"{TOP:.2}\" width=\"{pw:.2}\" height=\"{ph:.2}\" fill=\"none\" stroke=\"#444\"/>"
    );
    for (v, l) in x.ticks() {
        let px = LEFT + (v - x.min) / (x.max - x.min) * pw;
        if !(LEFT - 0.01..=LEFT + pw + 0.01).contains(&px) {
            continue;
        }
        let _ = writeln!(
            out,
            "<line x1=\"{px:.2}\" y1=\"{:.2}\" x2=\"{px:.2}\" y2=\"{:.2}\" stroke=\"#ddd\"/><text x=\"{px:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
            TOP,
            TOP + ph,
            TOP + ph + 16.0,
            escape(&l)
        );
    }
    for (v, l) in y.ticks() {
        let py = TOP + ph - (v - y.min) / (y.max - y.min) * ph;
        if !(TOP - 0.01..=TOP + ph + 0.01).contains(&py) {
            continue;
        }
        let _ = writeln!(
            out,
            "<line x1=\"{LEFT:.2}\" y1=\"{py:.2}\" x2=\"{:.2}\" y2=\"{py:.2}\" stroke=\"#ddd\"/><text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"end\">{}</text>",
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0,
            escape(&l)
        );
    }
    let _ = writeln!(
        out,
        "<text x=\"{:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
        LEFT + pw / 2.0,
        H - 18.0,
        escape(&x.label)
    );
    let _ = writeln!(
        out,
        "<text x=\"16\" y=\"{:.2}\" text-anchor=\"middle\" transform=\"rotate(-90 16 {:.2})\">{}</text>",
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        escape(&y.label)
    );
}

fn legend(out: &mut String, names: &[&str]) {
    let x = W - RIGHT + 14.0;
    for (i, n) in names.iter().enumerate() {
        let y = TOP + 10.0 + 18.0 * i as f64;
        let _ = writeln!(
            out,
            "<rect x=\"{x:.2}\" y=\"{:.2}\" width=\"14\" height=\"4\" fill=\"{}\"/><text x=\"{:.2}\" y=\"{:.2}\">{}</text>",
            y - 2.0,
            PALETTE[i % PALETTE.len()],
            x + 20.0,
            y + 4.0,
            escape(n)
        );
    }
}

/// A line chart: one polyline per series of `(x, y)` points.
pub fn line_chart(title: &str, x: &Axis, y: &Axis, series: &[(String, Vec<(f64, f64)>)]) -> String {
    let mut out = String::new();
    header(&mut out, title);
    frame(&mut out, x, y);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    for (i, (_, pts)) in series.iter().enumerate() {
        let mut d = String::new();
        for (k, &(vx, vy)) in pts.iter().enumerate() {
            let px = LEFT + ((vx - x.min) / (x.max - x.min)).clamp(0.0, 1.0) * pw;
            let py = TOP + ph - ((vy - y.min) / (y.max - y.min)).clamp(0.0, 1.0) * ph;
            let _ = write!(d, "{}{px:.2},{py:.2}", if k == 0 { "M" } else { " L" });
        }
        if d.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "<path d=\"{d}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\"/>",
            PALETTE[i % PALETTE.len()]
        );
    }
    let names: Vec<&str> = series.iter().map(|s| s.0.as_str()).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

/// A scatter chart: one dot per `(x, y)` point, plus reference polylines (legend).
pub fn scatter_chart(
    title: &str,
    x: &Axis,
    y: &Axis,
    points: &[(f64, f64)],
    lines: &[(String, Vec<(f64, f64)>)],
) -> String {
    let mut out = line_chart(title, x, y, lines);
    out.truncate(out.len() - "</svg>\n".len());
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    for &(vx, vy) in points {
        let px = LEFT + ((vx - x.min) / (x.max - x.min)).clamp(0.0, 1.0) * pw;
        let py = TOP + ph - ((vy - y.min) / (y.max - y.min)).clamp(0.0, 1.0) * ph;
        let _ = writeln!(
            out,
            "<circle cx=\"{px:.2}\" cy=\"{py:.2}\" r=\"1.8\" fill=\"#444\" fill-opacity=\"0.5\"/>"
        );
    }
    out.push_str("</svg>\n");
    out
}

/// A bar chart of one value per name (`None` = no bar, labelled `n/a`).
pub fn bar_chart(title: &str, y: &Axis, bars: &[(String, Option<f64>)]) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let x = Axis {
        min: 0.0,
        max: 1.0,
        label: String::new(),
        ticks: vec![(-1.0, String::new())],
    };
    frame(&mut out, &x, y);
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let n = bars.len().max(1) as f64;
    let slot = pw / n;
    for (i, (name, v)) in bars.iter().enumerate() {
        let cx = LEFT + slot * (i as f64 + 0.5);
        let label = match v {
            Some(v) => {
                let h = ((v - y.min) / (y.max - y.min)).clamp(0.0, 1.0) * ph;
                let _ = writeln!(
                    out,
                    "<rect x=\"{:.2}\" y=\"{:.2}\" width=\"{:.2}\" height=\"{h:.2}\" fill=\"{}\"/>",
                    cx - slot * 0.35,
                    TOP + ph - h,
                    slot * 0.7,
                    PALETTE[i % PALETTE.len()]
                );
                format!("{v:.3}")
            }
            None => "n/a".to_string(),
        };
        let _ = writeln!(
            out,
            "<text x=\"{cx:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
            TOP + ph
                - 4.0
                - match v {
                    Some(v) => ((v - y.min) / (y.max - y.min)).clamp(0.0, 1.0) * ph,
                    None => 0.0,
                },
            escape(&label)
        );
        let _ = writeln!(
            out,
            "<text x=\"{cx:.2}\" y=\"{:.2}\" text-anchor=\"middle\">{}</text>",
            TOP + ph + 16.0,
            escape(name)
        );
    }
    let names: Vec<&str> = bars.iter().map(|b| b.0.as_str()).collect();
    legend(&mut out, &names);
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_are_escaped_and_well_formed() {
        let s = line_chart(
            "a<b",
            &Axis::linear(0.0, 10.0, "t (s)"),
            &Axis::linear(0.0, 1.0, "share"),
            &[("p&q".into(), vec![(0.0, 0.0), (5.0, 0.5), (10.0, 2.0)])],
        );
        assert!(s.starts_with("<svg "));
        assert!(s.ends_with("</svg>\n"));
        assert!(s.contains("a&lt;b") && s.contains("p&amp;q"));
        assert!(
            s.contains("M70.00,360.00 L320.00,200.00 L570.00,40.00"),
            "{s}"
        );
        let b = bar_chart(
            "bars",
            &Axis::linear(0.0, 1.0, "ratio"),
            &[("x".into(), Some(0.5)), ("y".into(), None)],
        );
        assert!(b.contains("n/a") && b.contains("0.500"));
        assert_eq!(b.matches("<svg").count(), 1);
        assert_eq!(escape("\"'\u{1}"), "&quot;&apos; ");
    }
}
