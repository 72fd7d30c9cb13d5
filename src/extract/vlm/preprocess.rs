//! Page image to model input: resize to the manifest's size (aspect not
//! kept, as the Florence-2 and SmolVLM processors do for one image), scale by
//! 1/255, normalise by mean/std, planar CHW. Pure.

use super::manifest::{resample_filter, ImageSpec};
use image::RgbImage;

/// Writes one page as `[3, H, W]` f32 into `out` (appending).
/// Errors on a zero-sized page.
pub fn push_pixels(img: &RgbImage, spec: &ImageSpec, out: &mut Vec<f32>) -> Result<(), String> {
    let [h, w] = spec.size;
    if img.width() == 0 || img.height() == 0 {
        return Err(format!("page image is {}x{}", img.width(), img.height()));
    }
    let filter = resample_filter(&spec.resample)
        .ok_or_else(|| format!("unknown resample {:?}", spec.resample))?;
    let resized;
    let src = if img.width() == w && img.height() == h {
        img
    } else {
        resized = image::imageops::resize(img, w, h, filter);
        &resized
    };
    let plane = (w as usize) * (h as usize);
    let start = out.len();
    out.resize(start + 3 * plane, 0.0);
    let dst = &mut out[start..];
    for (i, px) in src.pixels().enumerate() {
        for c in 0..3 {
            let v = f32::from(px.0[c]) / 255.0;
            dst[c * plane + i] = (v - spec.mean[c]) / spec.std[c];
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(size: [u32; 2]) -> ImageSpec {
        ImageSpec {
            size,
            mean: [0.5, 0.25, 0.0],
            std: [0.5, 0.25, 1.0],
            resample: "bicubic".into(),
            tiles: false,
            image_tokens: 1,
        }
    }

    #[test]
    fn normalises_planar() {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgb([255, 0, 51]));
        img.put_pixel(1, 0, image::Rgb([0, 255, 255]));
        let mut out = vec![9.0];
        push_pixels(&img, &spec([1, 2]), &mut out).unwrap();
        let want = [9.0, 1.0, -1.0, -1.0, 3.0, 0.2, 1.0];
        assert_eq!(out.len(), want.len());
        for (g, w) in out.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn resizes_to_height_width() {
        let img = RgbImage::from_pixel(10, 30, image::Rgb([128, 128, 128]));
        let mut out = Vec::new();
        push_pixels(&img, &spec([4, 8]), &mut out).unwrap();
        assert_eq!(out.len(), 3 * 4 * 8);
        assert!((out[0] - (128.0 / 255.0 - 0.5) / 0.5).abs() < 1e-3);
    }

    #[test]
    fn zero_sized_page_is_an_error() {
        let img = RgbImage::new(0, 5);
        let mut out = Vec::new();
        assert!(push_pixels(&img, &spec([4, 4]), &mut out).is_err());
        assert!(out.is_empty());
    }
}
