//! QR codes drawn as inline SVG, with a mask scorer fast enough for every `/login`: what the
//! `qrcode` crate would draw, in a fraction of the time (docs/benchmarks.md); and the same
//! codes as PNG images, for saving on a phone and for WeChat's long-press recognition.

use leptos::prelude::*;

/// The QR code of `url` as inline SVG: one path of horizontal runs (a few KiB), scaled by CSS.
#[component]
pub fn QrSvg(url: String) -> impl IntoView {
    qr_path(&url).map(|(size, path)| {
        let (view_box, size) = (format!("0 0 {size} {size}"), size.to_string());
        view! {
            <svg xmlns="http://www.w3.org/2000/svg" viewBox=view_box shape-rendering="crispEdges">
                <rect width=size.clone() height=size fill="#fff" />
                <path fill="#000" d=path />
            </svg>
        }
    })
}

/// The QR code of `url` as an SVG document (the sandbox's `showqrcode`).
pub fn qr_svg(url: &str) -> String {
    view! { <QrSvg url=url.to_owned() /> }.to_html()
}

/// The side of `url`'s QR code in modules (with its quiet zone) and the SVG path of its dark
/// modules, or `None` (logged) if no code can hold it.
fn qr_path(url: &str) -> Option<(usize, String)> {
    let (width, colors) = match qr_modules(url) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "QR code could not be drawn");
            return None;
        }
    };
    // A 4-module quiet zone on every side, as scanners expect.
    let size = width + 8;
    let mut path = String::with_capacity(width * width);
    for (y, row) in colors.chunks(width).enumerate() {
        let mut x = 0;
        while x < width {
            if row[x] == qrcode::Color::Dark {
                let start = x;
                while x < width && row[x] == qrcode::Color::Dark {
                    x += 1;
                }
                // "M{x} {y}h{run}v1h-{run}z", without `format!`: a code has hundreds of runs,
                // and formatting them was a third of this function's time.
                let run = x - start;
                path.push('M');
                push_number(&mut path, start + 4);
                path.push(' ');
                push_number(&mut path, y + 4);
                path.push('h');
                push_number(&mut path, run);
                path.push_str("v1h-");
                push_number(&mut path, run);
                path.push('z');
            } else {
                x += 1;
            }
        }
    }
    Some((size, path))
}

// Pixels per module of a PNG: a login URL's code (41 modules, with the quiet zone 49) comes
// out at 392 px square, which WeChat's album scanner reads at once.
const PNG_SCALE: usize = 8;

/// The QR code of `url` as a PNG image (8-bit grey, 8 px per module, a 4-module quiet zone),
/// or `None` (logged) if no code can hold it.
pub fn qr_png(url: &str) -> Option<Vec<u8>> {
    let (width, colors) = match qr_modules(url) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = %e, "QR code could not be drawn");
            return None;
        }
    };
    let side = (width + 8) * PNG_SCALE;
    let mut pixels = vec![255u8; side * side];
    for (y, row) in colors.chunks(width).enumerate() {
        for (x, color) in row.iter().enumerate() {
            if *color != qrcode::Color::Dark {
                continue;
            }
            for dy in 0..PNG_SCALE {
                let start = ((y + 4) * PNG_SCALE + dy) * side + (x + 4) * PNG_SCALE;
                pixels[start..start + PNG_SCALE].fill(0);
            }
        }
    }
    let mut out = Vec::with_capacity(4096);
    let mut encoder = png::Encoder::new(&mut out, side as u32, side as u32);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let written = encoder
        .write_header()
        .and_then(|mut writer| writer.write_image_data(&pixels));
    match written {
        Ok(()) => Some(out),
        Err(e) => {
            tracing::error!(error = %e, "QR code PNG could not be encoded");
            None
        }
    }
}

/// Appends `n` in decimal.
fn push_number(out: &mut String, n: usize) {
    if n >= 10 {
        push_number(out, n / 10);
    }
    out.push(char::from(b'0' + (n % 10) as u8));
}

/// The modules of `url`'s QR code, row by row: exactly what `QrCode::new` draws (level M, the
/// same version, the mask with the lowest ISO 18004 penalty, first one on a tie), but the
/// penalties are computed here, on rows and columns held as bits. The crate's own scoring
/// allocates a closure per module and took ~1 ms per code, most of the CPU of a `/login`
/// (wxlogin-bench, docs/benchmarks.md); this takes ~10 µs per mask. Codes wider than 127
/// modules (URLs of over ~900 bytes, which no login needs) are left to the crate.
fn qr_modules(url: &str) -> qrcode::QrResult<(usize, Vec<qrcode::Color>)> {
    use qrcode::{
        EcLevel, bits,
        canvas::{Canvas, MaskPattern},
        ec,
    };
    // The order `Canvas::apply_best_mask` tries them in.
    const MASKS: [MaskPattern; 8] = [
        MaskPattern::Checkerboard,
        MaskPattern::HorizontalLines,
        MaskPattern::VerticalLines,
        MaskPattern::DiagonalLines,
        MaskPattern::LargeCheckerboard,
        MaskPattern::Fields,
        MaskPattern::Diamonds,
        MaskPattern::Meadow,
    ];
    let bits = bits::encode_auto(url.as_bytes(), EcLevel::M)?;
    let version = bits.version();
    if version.width() >= 128 {
        let code = qrcode::QrCode::with_error_correction_level(url.as_bytes(), EcLevel::M)?;
        return Ok((code.width(), code.to_colors()));
    }
    let (data, ecc) = ec::construct_codewords(&bits.into_bytes(), version, EcLevel::M)?;
    let mut canvas = Canvas::new(version, EcLevel::M);
    canvas.draw_all_functional_patterns();
    canvas.draw_data(&data, &ecc);
    let width = version.width() as usize;
    let mut best: Option<(u32, Vec<qrcode::Color>)> = None;
    for mask in MASKS {
        let mut masked = canvas.clone();
        masked.apply_mask(mask);
        let colors = masked.into_colors();
        let score = qr_penalty(&colors, width);
        if best.as_ref().is_none_or(|(min, _)| score < *min) {
            best = Some((score, colors));
        }
    }
    Ok((width, best.map(|(_, c)| c).unwrap_or_default()))
}

/// The mask penalty of a masked QR code (at most 127 modules wide), scored as the `qrcode`
/// crate scores it: runs of 5+ same-coloured modules (N1), 2×2 blocks (N2), finder-like
/// 1:1:3:1:1 patterns without 4 light modules on one side (N3), and the dark/light balance
/// (N4). Each row and column is one `u128` (bit x = module x, 1 = dark), so most of the work
/// is shifts and population counts.
fn qr_penalty(colors: &[qrcode::Color], width: usize) -> u32 {
    let full = (1u128 << width) - 1;
    let mut rows = vec![0u128; width];
    let mut columns = vec![0u128; width];
    for (i, color) in colors.iter().enumerate() {
        if *color == qrcode::Color::Dark {
            let (y, x) = (i / width, i % width);
            rows[y] |= 1 << x;
            columns[x] |= 1 << y;
        }
    }
    let mut score: u32 = rows
        .iter()
        .chain(&columns)
        .map(|&line| line_penalty(line, width))
        .sum();
    for pair in rows.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        // Bit x: modules x and x+1 of both rows, and of both rows at x, alike.
        let blocks = !(a ^ (a >> 1)) & !(b ^ (b >> 1)) & !(a ^ b) & (full >> 1);
        score += 3 * blocks.count_ones();
    }
    let dark_count: u32 = rows.iter().map(|r| r.count_ones()).sum();
    let ratio = dark_count * 200 / colors.len() as u32;
    score + ratio.abs_diff(100)
}

/// N1 and N3 of one row or column of `width` modules (bit x = module x, 1 = dark).
fn line_penalty(line: u128, width: usize) -> u32 {
    let full = (1u128 << width) - 1;
    // Bit x: modules x and x+1 alike. A run of L alike modules is L-1 set bits here, and
    // L-4 set bits in `five` (bit x: modules x..x+5 alike); it scores L-2.
    let alike = !(line ^ (line >> 1)) & (full >> 1);
    let five = alike & (alike >> 1) & (alike >> 2) & (alike >> 3);
    let run_starts = five & !(five << 1);
    let mut score = five.count_ones() + 2 * run_starts.count_ones();

    // Bit j: modules j..j+7 are dark, light, dark, dark, dark, light, dark.
    const FINDER: [bool; 7] = [true, false, true, true, true, false, true];
    let mut finders = full >> 6;
    for (k, dark) in FINDER.into_iter().enumerate() {
        let shifted = line >> k;
        finders &= if dark { shifted } else { !shifted };
    }
    while finders != 0 {
        let j = finders.trailing_zeros() as usize;
        finders &= finders - 1;
        // Up to 4 modules on each side, clipped to the line: scored when either side is
        // all light.
        let left_from = j.saturating_sub(4);
        let left = (line >> left_from) & ((1 << (j - left_from)) - 1);
        let right_to = (j + 11).min(width);
        let right = (line >> (j + 7)) & ((1 << (right_to - (j + 7))) - 1);
        if left == 0 || right == 0 {
            score += 40;
        }
    }
    score
}

#[cfg(test)]
mod tests {
    use super::qr_modules;

    #[test]
    fn qr_modules_draw_what_the_qrcode_crate_draws() {
        // Every version a login URL can need, many masks chosen, and codes too wide for the
        // bit rows (left to the crate).
        for len in (1..=200).step_by(3).chain([400, 1000, 1500]) {
            let url: String = (0..len)
                .map(|i| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789/:._-"[(i * 7 + len) % 41])
                })
                .collect();
            let ours = qr_modules(&url).unwrap();
            let theirs = qrcode::QrCode::new(url.as_bytes()).unwrap();
            assert_eq!(ours.0, theirs.width(), "width for {url}");
            assert_eq!(ours.1, theirs.to_colors(), "modules for {url}");
        }
    }

    #[test]
    fn the_png_decodes_to_the_url() {
        let url = "http://weixin.qq.com/q/02abcDEF_ghi-JKL";
        let png = super::qr_png(url).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(png));
        let mut reader = decoder.read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        let (w, h) = (info.width as usize, info.height as usize);
        let mut image = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| pixels[y * w + x]);
        let grids = image.detect_grids();
        assert_eq!(grids.len(), 1);
        assert_eq!(grids[0].decode().unwrap().1, url);
    }
}
