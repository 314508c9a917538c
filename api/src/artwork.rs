//! Artwork drawn for titles that have none: a poster (2:3) and a backdrop (16:9), each with a
//! motif from the title's first genre (a ringed planet for science fiction, a moon over
//! mountains for fantasy, shards for crime, bubbles for animation, …) placed and coloured from
//! the title's id, so no two titles look alike and a genre is recognisable at a glance.

use crate::web::escape;
use cinelog_projections::catalog::TitleCard;
use std::fmt::Write;

/// A small deterministic generator seeded from the title's id (xorshift64*).
struct Dice(u64);

impl Dice {
    fn for_title(id: &str) -> Dice {
        let seed = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Dice(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A whole number in `lo..hi`.
    fn within(&mut self, lo: u32, hi: u32) -> u32 {
        lo + (self.next() % u64::from(hi.saturating_sub(lo).max(1))) as u32
    }
}

/// The motif drawn for a genre.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Motif {
    Planet,
    Moon,
    Shards,
    Bubbles,
    Confetti,
    Horizon,
    Forest,
    Rays,
    Hearts,
    Waves,
}

/// The motif and the hue range (degrees) of a genre.
fn motif_of(genre: &str) -> (Motif, u32) {
    match genre {
        "Science Fiction" => (Motif::Planet, 200),
        "Fantasy" => (Motif::Moon, 260),
        "Crime" | "Mystery" | "Thriller" => (Motif::Shards, 215),
        "Animation" | "Family" | "Kids" => (Motif::Bubbles, 160),
        "Comedy" => (Motif::Confetti, 40),
        "Documentary" => (Motif::Horizon, 90),
        "Horror" => (Motif::Forest, 350),
        "Action" | "Adventure" => (Motif::Rays, 20),
        "Romance" => (Motif::Hearts, 330),
        _ => (Motif::Waves, 180),
    }
}

/// Draws the motif into a `w`×`h` canvas.
fn motif(out: &mut String, m: Motif, dice: &mut Dice, hue: u32, w: u32, h: u32) {
    let light = |d: &mut Dice| {
        format!(
            "hsl({},70%,{}%)",
            (hue + d.within(0, 60)) % 360,
            d.within(55, 75)
        )
    };
    match m {
        Motif::Planet => {
            for _ in 0..40 {
                let _ = write!(
                    out,
                    r##"<circle cx="{}" cy="{}" r="{}" fill="#fff" opacity=".{}"/>"##,
                    dice.within(0, w),
                    dice.within(0, h),
                    dice.within(1, 3),
                    dice.within(3, 9)
                );
            }
            let (cx, cy, r) = (
                dice.within(w / 4, w * 3 / 4),
                dice.within(h / 5, h / 2),
                dice.within(w / 6, w / 4),
            );
            let tilt = dice.within(0, 40) as i32 - 20;
            let _ = write!(
                out,
                r##"<circle cx="{cx}" cy="{cy}" r="{r}" fill="{}"/><ellipse cx="{cx}" cy="{cy}" rx="{}" ry="{}" fill="none" stroke="{}" stroke-width="6" opacity=".8" transform="rotate({tilt} {cx} {cy})"/>"##,
                light(dice),
                r * 9 / 5,
                r / 3,
                light(dice)
            );
        }
        Motif::Moon => {
            let _ = write!(
                out,
                r##"<circle cx="{}" cy="{}" r="{}" fill="#f4efd8" opacity=".9"/>"##,
                dice.within(w / 4, w * 3 / 4),
                dice.within(h / 8, h / 3),
                dice.within(w / 10, w / 6)
            );
            for layer in 0..3u32 {
                let base = h * (6 + layer) / 10;
                let mut path = format!("M0 {h} L0 {base}");
                let mut x = 0;
                while x < w {
                    x += dice.within(w / 8, w / 4);
                    let _ = write!(
                        path,
                        " L{} {}",
                        x.min(w),
                        base.saturating_sub(dice.within(h / 12, h / 4))
                    );
                }
                let _ = write!(
                    out,
                    r##"<path d="{path} L{w} {h} Z" fill="hsl({},35%,{}%)"/>"##,
                    hue + layer * 10,
                    12 + layer * 6
                );
            }
        }
        Motif::Shards => {
            for _ in 0..6 {
                let (x, y) = (dice.within(0, w), dice.within(0, h));
                let _ = write!(
                    out,
                    r##"<polygon points="{x},{y} {},{} {},{}" fill="{}" opacity=".{}"/>"##,
                    x + dice.within(20, w / 2),
                    y + dice.within(10, h / 4),
                    x + dice.within(0, w / 5),
                    y + dice.within(h / 5, h / 2),
                    light(dice),
                    dice.within(2, 5)
                );
            }
            let _ = write!(
                out,
                r##"<circle cx="{}" cy="{}" r="{}" fill="#fff" opacity=".08"/>"##,
                dice.within(0, w),
                dice.within(0, h / 2),
                w / 2
            );
        }
        Motif::Bubbles => {
            for _ in 0..14 {
                let _ = write!(
                    out,
                    r##"<circle cx="{}" cy="{}" r="{}" fill="{}" opacity=".{}"/>"##,
                    dice.within(0, w),
                    dice.within(0, h),
                    dice.within(w / 30, w / 7),
                    light(dice),
                    dice.within(4, 8)
                );
            }
        }
        Motif::Confetti => {
            for _ in 0..36 {
                let (x, y) = (dice.within(0, w), dice.within(0, h));
                let _ = write!(
                    out,
                    r##"<rect x="{x}" y="{y}" width="{}" height="{}" fill="hsl({},80%,60%)" transform="rotate({} {x} {y})"/>"##,
                    dice.within(6, 16),
                    dice.within(3, 7),
                    dice.within(0, 360),
                    dice.within(0, 180)
                );
            }
        }
        Motif::Horizon => {
            let sun_y = dice.within(h / 3, h / 2);
            let _ = write!(
                out,
                r##"<circle cx="{}" cy="{sun_y}" r="{}" fill="{}" opacity=".85"/>"##,
                dice.within(w / 4, w * 3 / 4),
                w / 6,
                light(dice)
            );
            for i in 0..8u32 {
                let y = sun_y + 10 + i * i * 4;
                let _ = write!(
                    out,
                    r##"<line x1="0" y1="{y}" x2="{w}" y2="{y}" stroke="#fff" stroke-width="{}" opacity=".25"/>"##,
                    1 + i / 3
                );
            }
        }
        Motif::Forest => {
            let _ = write!(
                out,
                r##"<circle cx="{}" cy="{}" r="{}" fill="#d8d0c0" opacity=".5"/>"##,
                dice.within(w / 5, w * 4 / 5),
                h / 6,
                w / 9
            );
            let mut x = 0;
            while x < w {
                let (tw, th) = (dice.within(w / 14, w / 8), dice.within(h / 4, h * 3 / 5));
                let _ = write!(
                    out,
                    r##"<polygon points="{},{h} {},{} {},{h}" fill="#050505" opacity=".85"/>"##,
                    x,
                    x + tw / 2,
                    h - th,
                    x + tw
                );
                x += tw * 2 / 3;
            }
        }
        Motif::Rays => {
            let (cx, cy) = (dice.within(0, w), dice.within(h / 2, h));
            for i in 0..12u32 {
                let a = (i * 30 + dice.within(0, 15)) as f64 * std::f64::consts::PI / 180.0;
                let (x, y) = (
                    cx as f64 + a.cos() * (w + h) as f64,
                    cy as f64 + a.sin() * (w + h) as f64,
                );
                let _ = write!(
                    out,
                    r##"<line x1="{cx}" y1="{cy}" x2="{x:.0}" y2="{y:.0}" stroke="{}" stroke-width="{}" opacity=".35"/>"##,
                    light(dice),
                    dice.within(4, 14)
                );
            }
        }
        Motif::Hearts => {
            for _ in 0..7 {
                let (x, y, s) = (dice.within(0, w), dice.within(0, h), dice.within(8, 28));
                let _ = write!(
                    out,
                    r##"<path d="M{x} {y} c-{s} -{s} -{} {} 0 {} c{} -{} {s} -{} 0 -{}" fill="{}" opacity=".5"/>"##,
                    s * 2,
                    s / 2,
                    s * 2,
                    s * 2,
                    s * 2 - s / 2,
                    s * 2 + s / 2,
                    s * 2,
                    light(dice)
                );
            }
        }
        Motif::Waves => {
            for i in 0..6u32 {
                let y = h / 3 + i * h / 12;
                let amp = dice.within(10, 40);
                let _ = write!(
                    out,
                    r##"<path d="M0 {y} Q {} {} {} {y} T {w} {y}" fill="none" stroke="{}" stroke-width="3" opacity=".5"/>"##,
                    w / 4,
                    y.saturating_sub(amp),
                    w / 2,
                    light(dice)
                );
            }
        }
    }
}

/// Name split into lines of about `per_line` characters.
fn lines(name: &str, per_line: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for word in name.split_whitespace() {
        match lines.last_mut() {
            Some(line) if line.chars().count() + word.chars().count() < per_line => {
                line.push(' ');
                line.push_str(word);
            }
            _ => lines.push(word.to_string()),
        }
    }
    lines
}

fn canvas(card: &TitleCard, w: u32, h: u32, with_name: bool) -> String {
    let genre = card.genres.first().map(String::as_str).unwrap_or("");
    let (m, base) = motif_of(genre);
    let mut dice = Dice::for_title(&card.id);
    let hue = (base + dice.within(0, 50)) % 360;
    let mut out = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}"><defs><linearGradient id="g" x1="0" y1="0" x2="{}" y2="1"><stop offset="0" stop-color="hsl({hue},50%,30%)"/><stop offset="1" stop-color="hsl({},55%,9%)"/></linearGradient><clipPath id="c"><rect width="{w}" height="{h}"/></clipPath></defs><rect width="{w}" height="{h}" fill="url(#g)"/><g clip-path="url(#c)">"##,
        dice.within(0, 2),
        (hue + 30) % 360,
    );
    motif(&mut out, m, &mut dice, hue, w, h);
    out.push_str("</g>");
    if with_name {
        let _ = write!(
            out,
            r##"<rect y="{}" width="{w}" height="{}" fill="#000" opacity=".35"/><g font-family="sans-serif" font-weight="700" fill="#fff">"##,
            h * 11 / 20,
            h * 9 / 20
        );
        for (i, l) in lines(&card.name, 14).iter().take(4).enumerate() {
            let _ = write!(
                out,
                r##"<text x="20" y="{}" font-size="26">{}</text>"##,
                h * 13 / 20 + i as u32 * 32,
                escape(l)
            );
        }
        let _ = write!(
            out,
            r##"</g><text x="20" y="{}" font-size="15" fill="#ddd" font-family="sans-serif">{} · {} · {}</text>"##,
            h - 24,
            card.year,
            escape(genre),
            escape(&card.maturity_rating)
        );
    }
    out.push_str("</svg>");
    out
}

/// A 300×450 poster with the title's name, year, genre and rating.
pub fn poster(card: &TitleCard) -> String {
    canvas(card, 300, 450, true)
}

/// A 1280×720 backdrop without text, for the home page's featured title.
pub fn backdrop(card: &TitleCard) -> String {
    canvas(card, 1280, 720, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn card(id: &str, genre: &str) -> TitleCard {
        TitleCard {
            id: id.into(),
            kind: "movie".into(),
            name: "Tin & <Foxes>".into(),
            year: 2016,
            genres: vec![genre.into()],
            maturity_rating: "7+".into(),
            runtime_mins: 90,
            synopsis: String::new(),
            popularity: 1.0,
            poster: String::new(),
            backdrop: String::new(),
            playable: true,
        }
    }

    #[test]
    fn each_title_gets_its_own_picture_and_names_stay_text() {
        let a = poster(&card("tin-foxes", "Animation"));
        assert_eq!(
            a,
            poster(&card("tin-foxes", "Animation")),
            "the same title draws the same"
        );
        assert_ne!(
            a,
            poster(&card("tin-foxes-2", "Animation")),
            "another id draws another"
        );
        assert_ne!(
            a,
            poster(&card("tin-foxes", "Horror")),
            "another genre draws another motif"
        );
        assert!(a.contains("Tin &amp; &lt;Foxes&gt;"), "{a}");
        assert!(!backdrop(&card("tin-foxes", "Animation")).contains("<text"));
    }

    #[test]
    fn every_genre_draws_valid_numbers() {
        for genre in [
            "Science Fiction",
            "Fantasy",
            "Crime",
            "Animation",
            "Comedy",
            "Documentary",
            "Horror",
            "Action",
            "Romance",
            "Western",
        ] {
            for id in ["a", "bb", "some-long-title-id-2024"] {
                let svg = poster(&card(id, genre));
                assert!(
                    svg.starts_with("<svg") && svg.ends_with("</svg>"),
                    "{genre}"
                );
                assert!(
                    !svg.contains("NaN") && !svg.contains("inf"),
                    "{genre}: {svg}"
                );
            }
        }
    }
}
