//! `roibin demo`, the README's main job: the lossless table, then the ROIBIN graph on
//! JUNGFRAU-like frames with its science check, and the pictures it points to.

use roibin_h5tests::{ok, roibin, scratch, stdout};

#[test]
fn the_demo_runs_both_halves_and_draws_its_pictures() {
    let dir = scratch("demo");
    let out = dir.join("out");
    let o = ok(roibin(&[
        "demo",
        "--out",
        out.to_str().unwrap(),
        "--frames",
        "2",
    ]));
    let text = stdout(&o);
    assert_eq!(text.matches("bit-exact").count(), 12, "{text}");
    let table = &text[text.find("ROIBIN on").expect("no ROIBIN part")..];
    let row = |label: &str| {
        table
            .lines()
            .find(|l| l.starts_with(label))
            .unwrap_or_else(|| panic!("no {label} row in\n{text}"))
            .to_string()
    };
    // ROIBIN keeps every peak pf8 finds on the originals and every window pixel, with masked
    // pixels kept (default) or filled; filling them costs less.
    let ratio = |r: &str| {
        r[12..]
            .split_whitespace()
            .next()
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    for label in ["roibin ", "roibin fill "] {
        let r = row(label);
        assert_eq!(r.matches("100.00%").count(), 2, "recall and precision: {r}");
        assert!(r.contains("yes ("), "window pixels not exact: {r}");
    }
    assert!(ratio(&row("roibin fill")) > ratio(&row("roibin ")));
    let sz = row("sz abs 90");
    assert!(sz.contains("no windows") && ratio(&sz) > 1.0, "{sz}");
    for (name, width) in [
        ("roibin_frame.png", 2 * 256 + 8),
        ("roibin_difference.png", 256),
    ] {
        let file = std::fs::File::open(out.join(name)).unwrap();
        let reader = png::Decoder::new(std::io::BufReader::new(file))
            .read_info()
            .unwrap();
        assert_eq!(
            (reader.info().width, reader.info().height),
            (width, 1024),
            "{name}"
        );
        assert!(text.contains(name), "the demo does not point to {name}");
    }
    let svg = std::fs::read_to_string(out.join("ratio_vs_speed.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<circle").count(),
        7,
        "4 lossless u16 graphs, 2 roibin, sz"
    );
}
