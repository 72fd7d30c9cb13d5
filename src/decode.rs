//! Raster documents (PNG, JPEG, TIFF with many pages, WebP, BMP): decoding
//! under limits, with the EXIF orientation applied.

use crate::ingest::Kind;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits, RgbImage};
use std::io::Cursor;

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("image is {width}x{height} = {pixels} pixels, over the limit of {limit} (limits.max_image_megapixels)")]
    TooManyPixels {
        width: u32,
        height: u32,
        pixels: u64,
        limit: u64,
    },
    #[error("cannot decode image: {0}")]
    Corrupt(String),
    #[error("unsupported image: {0}")]
    Unsupported(String),
}

/// A decoded page image.
pub struct RasterPage {
    pub image: RgbImage,
    /// Clockwise rotation applied from the EXIF orientation, degrees.
    pub rotation: i32,
    /// Resolution recorded in the file, if any (not read yet: `None`).
    pub dpi: Option<f32>,
}

/// Number of pages in a raster document (TIFF may hold several; the others one).
pub fn page_count(kind: Kind, data: &[u8], max_pages: u32) -> Result<u32, DecodeError> {
    if kind != Kind::Tiff {
        return Ok(1);
    }
    let mut dec = tiff::decoder::Decoder::new(Cursor::new(data))
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let mut n = 1u32;
    while dec.more_images() && n <= max_pages {
        dec.next_image()
            .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
        n += 1;
    }
    Ok(n)
}

fn check_pixels(width: u32, height: u32, limit: u64) -> Result<(), DecodeError> {
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limit || width == 0 || height == 0 {
        if width == 0 || height == 0 {
            return Err(DecodeError::Corrupt(format!(
                "image has no pixels ({width}x{height})"
            )));
        }
        return Err(DecodeError::TooManyPixels {
            width,
            height,
            pixels,
            limit,
        });
    }
    Ok(())
}

/// Decodes page `index` of a raster document, refusing images over
/// `max_pixels` before any pixel buffer is allocated.
pub fn decode_page(
    kind: Kind,
    data: &[u8],
    index: u32,
    max_pixels: u64,
) -> Result<RasterPage, DecodeError> {
    if kind == Kind::Tiff && index > 0 {
        return decode_tiff_page(data, index, max_pixels);
    }
    let format = match kind {
        Kind::Png => image::ImageFormat::Png,
        Kind::Jpeg => image::ImageFormat::Jpeg,
        Kind::Tiff => image::ImageFormat::Tiff,
        Kind::Webp => image::ImageFormat::WebP,
        Kind::Bmp => image::ImageFormat::Bmp,
        other => return Err(DecodeError::Unsupported(format!("{other:?}"))),
    };
    let mut reader = ImageReader::new(Cursor::new(data));
    reader.set_format(format);
    let mut limits = Limits::default();
    // RGBA at 8 bits is the widest the decoders allocate for our inputs.
    limits.max_alloc = Some(max_pixels.saturating_mul(8));
    reader.limits(limits);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    check_pixels(w, h, max_pixels)?;
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img =
        DynamicImage::from_decoder(decoder).map_err(|e| DecodeError::Corrupt(e.to_string()))?;
    img.apply_orientation(orientation);
    Ok(RasterPage {
        image: img.to_rgb8(),
        rotation: orientation_degrees(orientation),
        dpi: None,
    })
}

fn orientation_degrees(o: image::metadata::Orientation) -> i32 {
    use image::metadata::Orientation::*;
    match o {
        Rotate90 | Rotate90FlipH => 90,
        Rotate180 | FlipVertical => 180,
        Rotate270 | Rotate270FlipH => 270,
        _ => 0,
    }
}

/// Later pages of a multi-page TIFF, through the tiff crate directly (the
/// image crate reads only the first).
fn decode_tiff_page(data: &[u8], index: u32, max_pixels: u64) -> Result<RasterPage, DecodeError> {
    use tiff::decoder::{Decoder, DecodingResult};
    use tiff::ColorType;
    let corrupt = |e: tiff::TiffError| DecodeError::Corrupt(e.to_string());
    let mut dec = Decoder::new(Cursor::new(data)).map_err(corrupt)?;
    dec.seek_to_image(index as usize).map_err(corrupt)?;
    let (w, h) = dec.dimensions().map_err(corrupt)?;
    check_pixels(w, h, max_pixels)?;
    let color = dec.colortype().map_err(corrupt)?;
    let white_is_zero = matches!(
        dec.find_tag(tiff::tags::Tag::PhotometricInterpretation),
        Ok(Some(v)) if v.clone().into_u16().ok() == Some(0)
    );
    let result = dec.read_image().map_err(corrupt)?;
    let samples: Vec<u8> = match result {
        DecodingResult::U8(v) => v,
        DecodingResult::U16(v) => v.iter().map(|s| (s >> 8) as u8).collect(),
        _ => {
            return Err(DecodeError::Unsupported(format!(
                "TIFF sample format of page {index}"
            )))
        }
    };
    let (w_us, h_us) = (w as usize, h as usize);
    let mut rgb = RgbImage::new(w, h);
    let channels = match color {
        ColorType::Gray(1) => {
            let stride = w_us.div_ceil(8);
            for y in 0..h_us {
                for x in 0..w_us {
                    let byte = samples.get(y * stride + x / 8).copied().unwrap_or(0);
                    let bit = (byte >> (7 - (x % 8))) & 1;
                    let v = if bit == 1 { 255 } else { 0 };
                    let v = if white_is_zero { 255 - v } else { v };
                    rgb.put_pixel(x as u32, y as u32, image::Rgb([v, v, v]));
                }
            }
            return Ok(RasterPage {
                image: rgb,
                rotation: 0,
                dpi: None,
            });
        }
        ColorType::Gray(_) => 1,
        ColorType::GrayA(_) => 2,
        ColorType::RGB(_) => 3,
        ColorType::RGBA(_) => 4,
        other => {
            return Err(DecodeError::Unsupported(format!(
                "TIFF colour type {other:?} on page {index}"
            )))
        }
    };
    if samples.len() < w_us * h_us * channels {
        return Err(DecodeError::Corrupt(format!(
            "TIFF page {index} has too few samples"
        )));
    }
    for (i, px) in rgb.pixels_mut().enumerate() {
        let s = &samples[i * channels..i * channels + channels];
        *px = match channels {
            1 | 2 => {
                let v = if white_is_zero { 255 - s[0] } else { s[0] };
                image::Rgb([v, v, v])
            }
            _ => image::Rgb([s[0], s[1], s[2]]),
        };
    }
    Ok(RasterPage {
        image: rgb,
        rotation: 0,
        dpi: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_pixel(w, h, image::Rgb([200, 10, 10]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn decodes_png() {
        let page = decode_page(Kind::Png, &png(30, 20), 0, 1_000_000).unwrap();
        assert_eq!(page.image.dimensions(), (30, 20));
        assert_eq!(page.image.get_pixel(3, 3).0, [200, 10, 10]);
    }

    #[test]
    fn refuses_too_many_pixels_before_decoding() {
        let err = match decode_page(Kind::Png, &png(100, 100), 0, 5_000) {
            Err(e) => e,
            Ok(_) => panic!("should refuse"),
        };
        assert!(matches!(
            err,
            DecodeError::TooManyPixels { pixels: 10_000, .. }
        ));
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        for kind in [Kind::Png, Kind::Jpeg, Kind::Tiff, Kind::Webp, Kind::Bmp] {
            let r = decode_page(kind, b"\x89PNG\r\n\x1a\nnot really", 0, 1_000_000);
            assert!(r.is_err(), "{kind:?}");
        }
        assert!(page_count(Kind::Tiff, b"II*\0garbage", 10).is_err());
    }
}
