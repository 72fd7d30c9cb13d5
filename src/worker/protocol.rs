//! The framed protocol between the pipeline and a render worker.
//!
//! Both directions carry frames:
//!
//! ```text
//! "DPW1"  header_len: u32 LE  payload_len: u64 LE  header (JSON)  payload (raw bytes)
//! ```
//!
//! The header is a [`Request`] (pipeline → worker) or a [`Reply`] (worker →
//! pipeline); the payload holds the PDF bytes of a request and the RGB8
//! pixels (rows top to bottom, no padding) of a rendered page. Floats of page
//! geometry travel as their IEEE-754 bits, so a NaN survives and in-process
//! and worker runs give bit-identical rows. The magic on every frame catches
//! a worker that wrote anything else to its stdout.

use crate::pdf::{Affine, LayerLine, PageInfo, TextLayer};
use crate::render::{DocFailure, RenderEvent, RenderSettings};
use crate::types::BBox;
use image::RgbImage;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

/// Protocol version, sent in [`Reply::Ready`]; a worker of another version
/// is refused.
/// Version 2 added page images for a VLM (`Request::Render::vlm_dpi`,
/// [`Reply::VlmImage`]); version 3 the text layer's font size and weight
/// per line ([`LayerLine::font_size`], [`LayerLine::bold`]); version 4 the
/// page image's pixel-to-points map (`Reply::VlmImage::to_points`, for
/// layout regions in PDF points).
pub const VERSION: u32 = 4;
const MAGIC: &[u8; 4] = b"DPW1";
/// Largest header accepted, bytes (a text layer of a dense page is well under
/// a megabyte).
const MAX_HEADER: u32 = 256 << 20;
/// Largest payload accepted, bytes: far above any PDF or page image the
/// limits let through, low enough to stop a garbled length at once.
const MAX_PAYLOAD: u64 = 64 << 30;

#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// The other side closed the pipe between frames.
    #[error("the pipe closed")]
    Closed,
    #[error("reading or writing the pipe: {0}")]
    Io(#[from] std::io::Error),
    #[error("bad frame: {0}")]
    Bad(String),
}

/// Pipeline → worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Read the PDF in the payload.
    Render {
        doc_id: String,
        settings: RenderSettings,
        /// Also send each page's image for a VLM at this resolution, dots
        /// per inch (see [`crate::render::render_pdf_for`]); `None`: none.
        #[serde(default)]
        vlm_dpi: Option<f32>,
    },
}

/// Worker → pipeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Reply {
    /// Sent once when the worker starts.
    Ready {
        version: u32,
        pid: u32,
    },
    Start {
        pages: u32,
    },
    TextPage {
        index: u32,
        info: WirePageInfo,
        layer: WireLayer,
        usable: bool,
        ms: f64,
    },
    /// The payload holds `width * height * 3` bytes of RGB8.
    Image {
        index: u32,
        info: WirePageInfo,
        width: u32,
        height: u32,
        #[serde(with = "bits")]
        to_points: [f32; 6],
        ms: f64,
    },
    PageError {
        index: u32,
        info: Option<WirePageInfo>,
        message: String,
        ms: f64,
    },
    /// A page's image for a VLM: the payload holds `width * height * 3`
    /// bytes of RGB8, or nothing when `error` says why there is no image.
    VlmImage {
        index: u32,
        width: u32,
        height: u32,
        error: Option<String>,
        /// [`Affine`] coefficients as IEEE-754 bits; PDF pages only.
        #[serde(default)]
        to_points: Option<[u32; 6]>,
        ms: f64,
    },
    /// Every page of the document was sent.
    Done,
    /// The document as a whole could not be read.
    Failed {
        failure: DocFailure,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct WirePageInfo {
    #[serde(with = "bits")]
    size_pt: [f32; 2],
    rotation: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireLine {
    text: String,
    #[serde(with = "bits")]
    bbox_px: [f32; 4],
    #[serde(with = "bits")]
    bbox_pt: [f32; 4],
    /// Points, as IEEE-754 bits.
    font_size: Option<u32>,
    bold: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WireLayer {
    lines: Vec<WireLine>,
    readable_chars: usize,
    unmapped_chars: usize,
}

/// `[f32; N]` as `[u32; N]` of IEEE-754 bits.
mod bits {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer, const N: usize>(v: &[f32; N], s: S) -> Result<S::Ok, S::Error> {
        v.map(f32::to_bits).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[f32; N], D::Error>
    where
        [u32; N]: Deserialize<'de>,
    {
        <[u32; N]>::deserialize(d).map(|b| b.map(f32::from_bits))
    }
}

fn bbox_to(b: &BBox) -> [f32; 4] {
    [b.x0, b.y0, b.x1, b.y1]
}

fn bbox_from(a: [f32; 4]) -> BBox {
    BBox {
        x0: a[0],
        y0: a[1],
        x1: a[2],
        y1: a[3],
    }
}

impl From<PageInfo> for WirePageInfo {
    fn from(i: PageInfo) -> Self {
        Self {
            size_pt: [i.width_pt, i.height_pt],
            rotation: i.rotation,
        }
    }
}

impl From<WirePageInfo> for PageInfo {
    fn from(w: WirePageInfo) -> Self {
        Self {
            width_pt: w.size_pt[0],
            height_pt: w.size_pt[1],
            rotation: w.rotation,
        }
    }
}

impl From<TextLayer> for WireLayer {
    fn from(l: TextLayer) -> Self {
        Self {
            lines: l
                .lines
                .into_iter()
                .map(|l| WireLine {
                    bbox_px: bbox_to(&l.bbox_px),
                    bbox_pt: bbox_to(&l.bbox_pt),
                    font_size: l.font_size.map(f32::to_bits),
                    bold: l.bold,
                    text: l.text,
                })
                .collect(),
            readable_chars: l.readable_chars,
            unmapped_chars: l.unmapped_chars,
        }
    }
}

impl From<WireLayer> for TextLayer {
    fn from(w: WireLayer) -> Self {
        Self {
            lines: w
                .lines
                .into_iter()
                .map(|l| LayerLine {
                    text: l.text,
                    bbox_px: bbox_from(l.bbox_px),
                    bbox_pt: bbox_from(l.bbox_pt),
                    font_size: l.font_size.map(f32::from_bits),
                    bold: l.bold,
                })
                .collect(),
            readable_chars: w.readable_chars,
            unmapped_chars: w.unmapped_chars,
        }
    }
}

/// A render event as a reply header and its payload.
pub fn event_to_reply(ev: RenderEvent) -> (Reply, Vec<u8>) {
    match ev {
        RenderEvent::Start { pages } => (Reply::Start { pages }, Vec::new()),
        RenderEvent::TextPage {
            index,
            info,
            layer,
            usable,
            ms,
        } => (
            Reply::TextPage {
                index,
                info: info.into(),
                layer: layer.into(),
                usable,
                ms,
            },
            Vec::new(),
        ),
        RenderEvent::Image {
            index,
            info,
            image,
            to_points,
            ms,
        } => (
            Reply::Image {
                index,
                info: info.into(),
                width: image.width(),
                height: image.height(),
                to_points: to_points.0,
                ms,
            },
            image.into_raw(),
        ),
        RenderEvent::PageError {
            index,
            info,
            message,
            ms,
        } => (
            Reply::PageError {
                index,
                info: info.map(Into::into),
                message,
                ms,
            },
            Vec::new(),
        ),
        RenderEvent::VlmImage {
            index,
            image,
            to_points,
            ms,
        } => match image {
            Ok(image) => (
                Reply::VlmImage {
                    index,
                    width: image.width(),
                    height: image.height(),
                    error: None,
                    to_points: to_points.map(|a| a.0.map(f32::to_bits)),
                    ms,
                },
                image.into_raw(),
            ),
            Err(message) => (
                Reply::VlmImage {
                    index,
                    width: 0,
                    height: 0,
                    error: Some(message),
                    to_points: None,
                    ms,
                },
                Vec::new(),
            ),
        },
    }
}

/// The RGB8 image of a payload, refused when its size does not match.
fn rgb(index: u32, width: u32, height: u32, payload: Vec<u8>) -> Result<RgbImage, ProtocolError> {
    let got = payload.len();
    RgbImage::from_raw(width, height, payload).ok_or_else(|| {
        ProtocolError::Bad(format!(
            "page {index}: {got} bytes of pixels for a {width}x{height} RGB image"
        ))
    })
}

/// The render event a reply carries; `Ok(None)` for the replies that are not
/// events (`Ready`, `Done`, `Failed`).
pub fn reply_to_event(
    reply: Reply,
    payload: Vec<u8>,
) -> Result<Option<RenderEvent>, ProtocolError> {
    Ok(Some(match reply {
        Reply::Start { pages } => RenderEvent::Start { pages },
        Reply::TextPage {
            index,
            info,
            layer,
            usable,
            ms,
        } => RenderEvent::TextPage {
            index,
            info: info.into(),
            layer: layer.into(),
            usable,
            ms,
        },
        Reply::Image {
            index,
            info,
            width,
            height,
            to_points,
            ms,
        } => RenderEvent::Image {
            index,
            info: info.into(),
            image: rgb(index, width, height, payload)?,
            to_points: Affine(to_points),
            ms,
        },
        Reply::VlmImage {
            index,
            width,
            height,
            error,
            to_points,
            ms,
        } => RenderEvent::VlmImage {
            index,
            image: match error {
                Some(message) => Err(message),
                None => Ok(rgb(index, width, height, payload)?),
            },
            to_points: to_points.map(|b| Affine(b.map(f32::from_bits))),
            ms,
        },
        Reply::PageError {
            index,
            info,
            message,
            ms,
        } => RenderEvent::PageError {
            index,
            info: info.map(Into::into),
            message,
            ms,
        },
        Reply::Ready { .. } | Reply::Done | Reply::Failed { .. } => return Ok(None),
    }))
}

/// Writes one frame (and does not flush).
pub fn write_frame<T: Serialize>(
    w: &mut impl Write,
    header: &T,
    payload: &[u8],
) -> Result<(), ProtocolError> {
    let head = serde_json::to_vec(header).map_err(|e| ProtocolError::Bad(e.to_string()))?;
    let head_len = u32::try_from(head.len())
        .ok()
        .filter(|n| *n <= MAX_HEADER)
        .ok_or_else(|| ProtocolError::Bad(format!("header of {} bytes", head.len())))?;
    let payload_len = payload.len() as u64;
    if payload_len > MAX_PAYLOAD {
        return Err(ProtocolError::Bad(format!(
            "payload of {payload_len} bytes"
        )));
    }
    w.write_all(MAGIC)?;
    w.write_all(&head_len.to_le_bytes())?;
    w.write_all(&payload_len.to_le_bytes())?;
    w.write_all(&head)?;
    w.write_all(payload)?;
    Ok(())
}

/// Reads one frame. [`ProtocolError::Closed`] when the pipe ends cleanly
/// before a frame; a pipe that ends inside one is an I/O error.
pub fn read_frame<T: serde::de::DeserializeOwned>(
    r: &mut impl Read,
) -> Result<(T, Vec<u8>), ProtocolError> {
    let mut fixed = [0u8; 16];
    let mut got = 0;
    while got < fixed.len() {
        match r.read(&mut fixed[got..]) {
            Ok(0) if got == 0 => return Err(ProtocolError::Closed),
            Ok(0) => {
                return Err(ProtocolError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    if &fixed[..4] != MAGIC {
        return Err(ProtocolError::Bad(format!(
            "no frame marker (got {:?})",
            String::from_utf8_lossy(&fixed[..4])
        )));
    }
    let mut n4 = [0u8; 4];
    n4.copy_from_slice(&fixed[4..8]);
    let head_len = u32::from_le_bytes(n4);
    let mut n8 = [0u8; 8];
    n8.copy_from_slice(&fixed[8..16]);
    let payload_len = u64::from_le_bytes(n8);
    if head_len > MAX_HEADER || payload_len > MAX_PAYLOAD {
        return Err(ProtocolError::Bad(format!(
            "frame of {head_len} + {payload_len} bytes"
        )));
    }
    let head = read_exactly(r, u64::from(head_len))?;
    let header = serde_json::from_slice(&head).map_err(|e| ProtocolError::Bad(e.to_string()))?;
    let payload = read_exactly(r, payload_len)?;
    Ok((header, payload))
}

/// Reads `len` bytes without trusting `len` for the allocation up front.
fn read_exactly(r: &mut impl Read, len: u64) -> Result<Vec<u8>, ProtocolError> {
    let mut buf = Vec::with_capacity(len.min(64 << 20) as usize);
    r.take(len).read_to_end(&mut buf)?;
    if buf.len() as u64 != len {
        return Err(ProtocolError::Io(std::io::ErrorKind::UnexpectedEof.into()));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::ErrorClass;

    fn roundtrip<T: Serialize + serde::de::DeserializeOwned>(
        h: &T,
        payload: &[u8],
    ) -> (T, Vec<u8>) {
        let mut buf = Vec::new();
        write_frame(&mut buf, h, payload).unwrap();
        let mut r = buf.as_slice();
        let out = read_frame(&mut r).unwrap();
        assert!(r.is_empty(), "bytes left after the frame");
        out
    }

    fn info() -> PageInfo {
        PageInfo {
            width_pt: 612.0,
            height_pt: 792.0,
            rotation: 90,
        }
    }

    #[test]
    fn events_survive_the_wire_bit_for_bit() {
        let layer = TextLayer {
            lines: vec![LayerLine {
                text: "Total: 12,50 € — ünïcode".into(),
                bbox_px: BBox {
                    x0: 0.1,
                    y0: f32::NAN,
                    x1: f32::INFINITY,
                    y1: -0.0,
                },
                bbox_pt: BBox {
                    x0: 1.0 / 3.0,
                    y0: 2.0,
                    x1: 3.0,
                    y1: 4.0,
                },
                font_size: Some(10.5),
                bold: true,
            }],
            readable_chars: 17,
            unmapped_chars: 2,
        };
        let ev = RenderEvent::TextPage {
            index: 3,
            info: info(),
            layer: layer.clone(),
            usable: true,
            ms: 1.25,
        };
        let (reply, payload) = event_to_reply(ev);
        let (reply, payload) = roundtrip(&reply, &payload);
        match reply_to_event(reply, payload).unwrap() {
            Some(RenderEvent::TextPage {
                index,
                info: i,
                layer: l,
                usable,
                ms,
            }) => {
                assert_eq!((index, i, usable, ms), (3, info(), true, 1.25));
                assert_eq!(l.lines[0].text, layer.lines[0].text);
                assert!(l.lines[0].bbox_px.y0.is_nan());
                assert_eq!(l.lines[0].bbox_px.x1, f32::INFINITY);
                assert!(l.lines[0].bbox_px.y1.is_sign_negative());
                assert_eq!(l.lines[0].bbox_pt, layer.lines[0].bbox_pt);
                assert_eq!((l.lines[0].font_size, l.lines[0].bold), (Some(10.5), true));
                assert_eq!((l.readable_chars, l.unmapped_chars), (17, 2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn images_come_back_with_their_pixels_and_affine() {
        let mut image = RgbImage::new(3, 2);
        image.put_pixel(2, 1, image::Rgb([1, 2, 3]));
        let a = Affine([0.36, 0.0, 0.0, 0.0, -0.36, 792.0]);
        let (reply, payload) = event_to_reply(RenderEvent::Image {
            index: 0,
            info: info(),
            image: image.clone(),
            to_points: a,
            ms: 0.5,
        });
        assert_eq!(payload.len(), 18);
        let (reply, payload) = roundtrip(&reply, &payload);
        match reply_to_event(reply, payload).unwrap() {
            Some(RenderEvent::Image {
                image: got,
                to_points,
                ..
            }) => {
                assert_eq!(got, image);
                assert_eq!(to_points, a);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vlm_images_and_their_errors_cross_the_wire() {
        let mut image = RgbImage::new(4, 3);
        image.put_pixel(3, 2, image::Rgb([9, 8, 7]));
        let a = Affine([0.48, 0.0, 0.0, 0.0, -0.48, 792.0]);
        for (sent, map) in [
            (Ok(image), Some(a)),
            (Err("cannot render: out of memory".to_string()), None),
        ] {
            let (reply, payload) = event_to_reply(RenderEvent::VlmImage {
                index: 2,
                image: sent.clone(),
                to_points: map,
                ms: 0.25,
            });
            let (reply, payload) = roundtrip(&reply, &payload);
            match reply_to_event(reply, payload).unwrap() {
                Some(RenderEvent::VlmImage {
                    index,
                    image,
                    to_points,
                    ms,
                }) => {
                    assert_eq!((index, ms), (2, 0.25));
                    assert_eq!(image, sent);
                    assert_eq!(to_points, map);
                }
                other => panic!("{other:?}"),
            }
        }
        let short = Reply::VlmImage {
            index: 0,
            width: 2,
            height: 2,
            error: None,
            to_points: None,
            ms: 0.0,
        };
        assert!(matches!(
            reply_to_event(short, vec![0; 11]),
            Err(ProtocolError::Bad(_))
        ));
    }

    #[test]
    fn a_version_1_request_reads_without_vlm_images() {
        let json = r#"{"type":"render","doc_id":"d","settings":{"dpi":200.0,"read_text_layer":true,"render_for_ocr":true,"min_text_layer_chars":8,"max_pages":10,"max_image_pixels":100}}"#;
        let req: Request = serde_json::from_str(json).unwrap();
        assert!(matches!(req, Request::Render { vlm_dpi: None, .. }));
    }

    #[test]
    fn a_short_image_payload_is_refused() {
        let reply = Reply::Image {
            index: 0,
            info: info().into(),
            width: 10,
            height: 10,
            to_points: [0.0; 6],
            ms: 0.0,
        };
        assert!(matches!(
            reply_to_event(reply, vec![0; 299]),
            Err(ProtocolError::Bad(_))
        ));
    }

    #[test]
    fn requests_and_control_replies_round_trip() {
        let settings = RenderSettings {
            dpi: 200.0,
            read_text_layer: true,
            render_for_ocr: false,
            min_text_layer_chars: 8,
            max_pages: 5000,
            max_image_pixels: 100_000_000,
            pages: Some((16, 32)),
        };
        let req = Request::Render {
            doc_id: "abc".into(),
            settings,
            vlm_dpi: Some(150.0),
        };
        assert_eq!(roundtrip(&req, b"%PDF-1.7"), (req, b"%PDF-1.7".to_vec()));
        for reply in [
            Reply::Ready { version: 1, pid: 7 },
            Reply::Done,
            Reply::Failed {
                failure: DocFailure::new(ErrorClass::Encrypted, "needs a password"),
            },
        ] {
            let (back, _) = roundtrip(&reply, &[]);
            assert_eq!(back, reply);
            assert!(reply_to_event(back, Vec::new()).unwrap().is_none());
        }
    }

    #[test]
    fn broken_streams_are_errors_not_panics() {
        struct Case {
            name: &'static str,
            bytes: Vec<u8>,
            closed: bool,
        }
        let mut good = Vec::new();
        write_frame(&mut good, &Reply::Done, b"xyz").unwrap();
        let mut huge = b"DPW1".to_vec();
        huge.extend_from_slice(&u32::MAX.to_le_bytes());
        huge.extend_from_slice(&0u64.to_le_bytes());
        let cases = [
            Case {
                name: "empty",
                bytes: Vec::new(),
                closed: true,
            },
            Case {
                name: "cut in the fixed part",
                bytes: good[..7].to_vec(),
                closed: false,
            },
            Case {
                name: "cut in the payload",
                bytes: good[..good.len() - 1].to_vec(),
                closed: false,
            },
            Case {
                name: "stray output",
                bytes: b"hello from a library\n and more text".to_vec(),
                closed: false,
            },
            Case {
                name: "garbled length",
                bytes: huge,
                closed: false,
            },
        ];
        for c in cases {
            let r = read_frame::<Reply>(&mut c.bytes.as_slice());
            match r {
                Err(ProtocolError::Closed) => assert!(c.closed, "{}", c.name),
                Err(_) => assert!(!c.closed, "{}", c.name),
                Ok(_) => panic!("{}: read a frame", c.name),
            }
        }
    }
}
